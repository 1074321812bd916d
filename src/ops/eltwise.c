/* eltwise.c - GELU (erf), tanh and ReLU through oneDNN eltwise primitives
 * over n values seen as one flat tensor. The backward primitive overwrites,
 * so it writes into scratch of the cached entry that is then added to dinp.
 * tanh's backward reads the output (oneDNN's tanh_use_dst_for_bwd). */
#include "dnnl_util.h"
#include "ops.h"

/* forward key dims {alg, n}; backward key dims {alg, n} */
struct eltwise_fwd {
    dnnl_primitive_t prim;
    dnnl_memory_t mem[2]; /* src, dst */
};
enum { EB_DATA, EB_DDST, EB_DSRC, EB_NMEM };
struct eltwise_bwd {
    dnnl_primitive_t prim;
    dnnl_memory_t mem[EB_NMEM];
    float *dsrc; /* scratch: the gradient before it is accumulated */
};

static void eltwise_fwd_destroy(void *p)
{
    struct eltwise_fwd *e = p;
    flava_dnnl_release(&e->prim, 1, e->mem, 2);
    flava_free(e);
}

static void eltwise_bwd_destroy(void *p)
{
    struct eltwise_bwd *e = p;
    flava_dnnl_release(&e->prim, 1, e->mem, EB_NMEM);
    flava_free(e->dsrc);
    flava_free(e);
}

static flava_status eltwise_fwd_desc(dnnl_eltwise_desc_t *d, dnnl_memory_desc_t *md,
                                     const flava_op_key *key)
{
    FLAVA_TRY(flava_dnnl_md(md, 1, &key->dims[1], NULL, dnnl_f32));
    FLAVA_DNNL(dnnl_eltwise_forward_desc_init(d, dnnl_forward_training,
                                              (dnnl_alg_kind_t)key->dims[0], md, 0.0f, 0.0f));
    return FLAVA_OK;
}

static flava_status eltwise_fwd_build(void *p, flava_ctx *ctx, const flava_op_key *key)
{
    struct eltwise_fwd *e = p;
    dnnl_eltwise_desc_t d;
    dnnl_memory_desc_t md;
    FLAVA_TRY(eltwise_fwd_desc(&d, &md, key));
    FLAVA_TRY(flava_dnnl_primitive(&e->prim, NULL, ctx, &d, NULL, NULL));
    FLAVA_TRY(flava_dnnl_memory(&e->mem[0], ctx, &md));
    return flava_dnnl_memory(&e->mem[1], ctx, &md);
}

static flava_status eltwise_bwd_build(void *p, flava_ctx *ctx, const flava_op_key *key)
{
    struct eltwise_bwd *e = p;
    dnnl_eltwise_desc_t fd, bd;
    dnnl_memory_desc_t md;
    FLAVA_TRY(eltwise_fwd_desc(&fd, &md, key));
    FLAVA_DNNL(dnnl_eltwise_backward_desc_init(&bd, (dnnl_alg_kind_t)key->dims[0], &md, &md,
                                               0.0f, 0.0f));
    FLAVA_TRY(flava_dnnl_backward_primitive(&e->prim, ctx, &fd, &bd));
    for (int i = 0; i < EB_NMEM; i++)
        FLAVA_TRY(flava_dnnl_memory(&e->mem[i], ctx, &md));
    FLAVA_TRY(flava_alloc((void **)&e->dsrc, (size_t)key->dims[1] * sizeof(float),
                          "eltwise backward scratch"));
    return flava_dnnl_bind(e->mem[EB_DSRC], e->dsrc);
}

static flava_status eltwise_forward(flava_ctx *ctx, const char *op, dnnl_alg_kind_t alg,
                                    float *out, const float *inp, int64_t n)
{
    if (n < 1)
        return FLAVA_ERROR(FLAVA_ERR_SHAPE, "%s: n=%lld, expected >= 1", op, (long long)n);
    flava_op_key key = {op, {alg, n}};
    struct eltwise_fwd *e;
    FLAVA_TRY(flava_dnnl_entry((void **)&e, ctx, &key, sizeof *e, eltwise_fwd_build,
                               eltwise_fwd_destroy));
    FLAVA_TRY(flava_dnnl_bind(e->mem[0], inp));
    FLAVA_TRY(flava_dnnl_bind(e->mem[1], out));
    dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, e->mem[0]}, {DNNL_ARG_DST, e->mem[1]}};
    return flava_dnnl_exec(ctx, e->prim, 2, args);
}

/* `data` is the forward input, or its output for a use_dst algorithm. */
static flava_status eltwise_backward(flava_ctx *ctx, const char *op, dnnl_alg_kind_t alg,
                                     float *dinp, const float *dout, const float *data, int64_t n)
{
    if (n < 1)
        return FLAVA_ERROR(FLAVA_ERR_SHAPE, "%s: n=%lld, expected >= 1", op, (long long)n);
    if (!dinp)
        return FLAVA_OK;
    flava_op_key key = {op, {alg, n}};
    struct eltwise_bwd *e;
    FLAVA_TRY(flava_dnnl_entry((void **)&e, ctx, &key, sizeof *e, eltwise_bwd_build,
                               eltwise_bwd_destroy));
    FLAVA_TRY(flava_dnnl_bind(e->mem[EB_DATA], data));
    FLAVA_TRY(flava_dnnl_bind(e->mem[EB_DDST], dout));
    int data_arg = alg == dnnl_eltwise_tanh_use_dst_for_bwd ? DNNL_ARG_DST : DNNL_ARG_SRC;
    dnnl_exec_arg_t args[] = {{data_arg, e->mem[EB_DATA]},
                              {DNNL_ARG_DIFF_DST, e->mem[EB_DDST]},
                              {DNNL_ARG_DIFF_SRC, e->mem[EB_DSRC]}};
    FLAVA_TRY(flava_dnnl_exec(ctx, e->prim, 3, args));
    flava_dnnl_accumulate(dinp, e->dsrc, n);
    return FLAVA_OK;
}

flava_status gelu_forward(flava_ctx *ctx, float *out, const float *inp, int64_t n)
{
    return eltwise_forward(ctx, "gelu_forward", dnnl_eltwise_gelu_erf, out, inp, n);
}

flava_status gelu_backward(flava_ctx *ctx, float *dinp, const float *dout, const float *inp,
                           int64_t n)
{
    return eltwise_backward(ctx, "gelu_backward", dnnl_eltwise_gelu_erf, dinp, dout, inp, n);
}

flava_status tanh_forward(flava_ctx *ctx, float *out, const float *inp, int64_t n)
{
    return eltwise_forward(ctx, "tanh_forward", dnnl_eltwise_tanh_use_dst_for_bwd, out, inp, n);
}

flava_status tanh_backward(flava_ctx *ctx, float *dinp, const float *dout, const float *out,
                           int64_t n)
{
    return eltwise_backward(ctx, "tanh_backward", dnnl_eltwise_tanh_use_dst_for_bwd, dinp, dout,
                            out, n);
}

flava_status relu_forward(flava_ctx *ctx, float *out, const float *inp, int64_t n)
{
    return eltwise_forward(ctx, "relu_forward", dnnl_eltwise_relu, out, inp, n);
}

flava_status relu_backward(flava_ctx *ctx, float *dinp, const float *dout, const float *inp,
                           int64_t n)
{
    return eltwise_backward(ctx, "relu_backward", dnnl_eltwise_relu, dinp, dout, inp, n);
}

/* softmax.c - softmax over the last axis through oneDNN's softmax
 * primitive; the backward overwrites, so it goes through scratch of the
 * cached entry and is then added to dinp. */
#include "dnnl_util.h"
#include "ops.h"

/* key dims {rows, cols} for both directions */
struct softmax_fwd {
    dnnl_primitive_t prim;
    dnnl_memory_t mem[2]; /* src, dst */
};
enum { SB_DST, SB_DDST, SB_DSRC, SB_NMEM };
struct softmax_bwd {
    dnnl_primitive_t prim;
    dnnl_memory_t mem[SB_NMEM];
    float *dsrc;
};

static void softmax_fwd_destroy(void *p)
{
    struct softmax_fwd *e = p;
    flava_dnnl_release(&e->prim, 1, e->mem, 2);
    flava_free(e);
}

static void softmax_bwd_destroy(void *p)
{
    struct softmax_bwd *e = p;
    flava_dnnl_release(&e->prim, 1, e->mem, SB_NMEM);
    flava_free(e->dsrc);
    flava_free(e);
}

static flava_status softmax_fwd_desc(dnnl_softmax_desc_t *d, dnnl_memory_desc_t *md,
                                     const flava_op_key *key)
{
    FLAVA_TRY(flava_dnnl_md(md, 2, key->dims, NULL, dnnl_f32));
    FLAVA_DNNL(dnnl_softmax_forward_desc_init(d, dnnl_forward_training, md, 1));
    return FLAVA_OK;
}

static flava_status softmax_fwd_build(void *p, flava_ctx *ctx, const flava_op_key *key)
{
    struct softmax_fwd *e = p;
    dnnl_softmax_desc_t d;
    dnnl_memory_desc_t md;
    FLAVA_TRY(softmax_fwd_desc(&d, &md, key));
    FLAVA_TRY(flava_dnnl_primitive(&e->prim, NULL, ctx, &d, NULL, NULL));
    FLAVA_TRY(flava_dnnl_memory(&e->mem[0], ctx, &md));
    return flava_dnnl_memory(&e->mem[1], ctx, &md);
}

static flava_status softmax_bwd_build(void *p, flava_ctx *ctx, const flava_op_key *key)
{
    struct softmax_bwd *e = p;
    dnnl_softmax_desc_t fd, bd;
    dnnl_memory_desc_t md;
    FLAVA_TRY(softmax_fwd_desc(&fd, &md, key));
    FLAVA_DNNL(dnnl_softmax_backward_desc_init(&bd, &md, &md, 1));
    FLAVA_TRY(flava_dnnl_backward_primitive(&e->prim, ctx, &fd, &bd));
    for (int i = 0; i < SB_NMEM; i++)
        FLAVA_TRY(flava_dnnl_memory(&e->mem[i], ctx, &md));
    FLAVA_TRY(flava_alloc((void **)&e->dsrc, (size_t)(key->dims[0] * key->dims[1]) * sizeof(float),
                          "softmax backward scratch"));
    return flava_dnnl_bind(e->mem[SB_DSRC], e->dsrc);
}

static flava_status check_sizes(const char *op, int rows, int cols)
{
    if (rows < 1 || cols < 1)
        return FLAVA_ERROR(FLAVA_ERR_SHAPE, "%s: rows=%d cols=%d, expected both >= 1", op, rows,
                           cols);
    return FLAVA_OK;
}

flava_status softmax_forward(flava_ctx *ctx, float *out, const float *inp, int rows, int cols)
{
    FLAVA_TRY(check_sizes("softmax_forward", rows, cols));
    flava_op_key key = {"softmax_forward", {rows, cols}};
    struct softmax_fwd *e;
    FLAVA_TRY(flava_dnnl_entry((void **)&e, ctx, &key, sizeof *e, softmax_fwd_build,
                               softmax_fwd_destroy));
    FLAVA_TRY(flava_dnnl_bind(e->mem[0], inp));
    FLAVA_TRY(flava_dnnl_bind(e->mem[1], out));
    dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, e->mem[0]}, {DNNL_ARG_DST, e->mem[1]}};
    return flava_dnnl_exec(ctx, e->prim, 2, args);
}

flava_status softmax_backward(flava_ctx *ctx, float *dinp, const float *dout, const float *out,
                              int rows, int cols)
{
    FLAVA_TRY(check_sizes("softmax_backward", rows, cols));
    if (!dinp)
        return FLAVA_OK;
    flava_op_key key = {"softmax_backward", {rows, cols}};
    struct softmax_bwd *e;
    FLAVA_TRY(flava_dnnl_entry((void **)&e, ctx, &key, sizeof *e, softmax_bwd_build,
                               softmax_bwd_destroy));
    FLAVA_TRY(flava_dnnl_bind(e->mem[SB_DST], out));
    FLAVA_TRY(flava_dnnl_bind(e->mem[SB_DDST], dout));
    dnnl_exec_arg_t args[] = {{DNNL_ARG_DST, e->mem[SB_DST]},
                              {DNNL_ARG_DIFF_DST, e->mem[SB_DDST]},
                              {DNNL_ARG_DIFF_SRC, e->mem[SB_DSRC]}};
    FLAVA_TRY(flava_dnnl_exec(ctx, e->prim, 3, args));
    flava_dnnl_accumulate(dinp, e->dsrc, (int64_t)rows * cols);
    return FLAVA_OK;
}

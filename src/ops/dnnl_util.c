/* dnnl_util.c - shared oneDNN boilerplate of the ops. */
#include "dnnl_util.h"

#include <string.h>

flava_status flava_dnnl_md(dnnl_memory_desc_t *md, int ndims, const int64_t *dims,
                           const int64_t *strides, dnnl_data_type_t dt)
{
    if (ndims < 1 || ndims > DNNL_MAX_NDIMS)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "memory descriptor with %d dims (1..%d allowed)", ndims,
                           DNNL_MAX_NDIMS);
    dnnl_dims_t d, s;
    int64_t step = 1;
    for (int i = ndims - 1; i >= 0; i--) {
        if (dims[i] < 1)
            return FLAVA_ERROR(FLAVA_ERR_SHAPE, "memory descriptor dim %d is %lld, expected >= 1",
                               i, (long long)dims[i]);
        d[i] = dims[i];
        s[i] = strides ? strides[i] : step;
        step *= dims[i];
    }
    FLAVA_DNNL(dnnl_memory_desc_init_by_strides(md, ndims, d, dt, s));
    return FLAVA_OK;
}

static flava_status make_attr(dnnl_primitive_attr_t attr, const flava_dnnl_attrs *a)
{
    if (a->scale != 0 && a->scale != 1)
        FLAVA_DNNL(dnnl_primitive_attr_set_output_scales(attr, 1, 0, &a->scale));
    if (a->nbinary == 0 && !a->eltwise && !a->accumulate)
        return FLAVA_OK;
    if (a->nbinary < 0 || a->nbinary > FLAVA_DNNL_MAX_BINARY)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "%d binary post-ops (at most %d)", a->nbinary,
                           FLAVA_DNNL_MAX_BINARY);
    dnnl_post_ops_t po;
    FLAVA_DNNL(dnnl_post_ops_create(&po));
    dnnl_status_t s = dnnl_success;
    for (int i = 0; i < a->nbinary && s == dnnl_success; i++)
        s = dnnl_post_ops_append_binary(po, dnnl_binary_add, a->binary_add[i]);
    if (a->eltwise && s == dnnl_success)
        s = dnnl_post_ops_append_eltwise(po, 1.0f, a->eltwise, 0.0f, 0.0f);
    if (a->accumulate && s == dnnl_success)
        s = dnnl_post_ops_append_sum(po, 1.0f);
    if (s == dnnl_success)
        s = dnnl_primitive_attr_set_post_ops(attr, po);
    dnnl_post_ops_destroy(po);
    FLAVA_DNNL(s);
    return FLAVA_OK;
}

flava_status flava_dnnl_primitive(dnnl_primitive_t *prim, dnnl_primitive_desc_t *pd,
                                  flava_ctx *ctx, const void *op_desc,
                                  const flava_dnnl_attrs *attrs,
                                  const_dnnl_primitive_desc_t hint)
{
    *prim = NULL;
    if (pd)
        *pd = NULL;
    dnnl_primitive_attr_t attr = NULL;
    if (attrs) {
        FLAVA_DNNL(dnnl_primitive_attr_create(&attr));
        flava_status st = make_attr(attr, attrs);
        if (st != FLAVA_OK) {
            dnnl_primitive_attr_destroy(attr);
            return st;
        }
    }
    dnnl_primitive_desc_t p = NULL;
    dnnl_status_t s = dnnl_primitive_desc_create(&p, op_desc, attr, flava_ctx_engine(ctx), hint);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    FLAVA_DNNL(s);
    s = dnnl_primitive_create(prim, p);
    if (s != dnnl_success || !pd)
        dnnl_primitive_desc_destroy(p);
    else
        *pd = p;
    FLAVA_DNNL(s);
    return FLAVA_OK;
}

flava_status flava_dnnl_backward_primitive(dnnl_primitive_t *prim, flava_ctx *ctx,
                                           const void *fwd_desc, const void *bwd_desc)
{
    *prim = NULL;
    dnnl_primitive_desc_t hint;
    FLAVA_DNNL(dnnl_primitive_desc_create(&hint, fwd_desc, NULL, flava_ctx_engine(ctx), NULL));
    flava_status s = flava_dnnl_primitive(prim, NULL, ctx, bwd_desc, NULL, hint);
    dnnl_primitive_desc_destroy(hint);
    return s;
}

static flava_status reorder_with(dnnl_primitive_t *prim, flava_ctx *ctx,
                                 const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *dst,
                                 const_dnnl_primitive_attr_t attr)
{
    *prim = NULL;
    dnnl_primitive_desc_t p;
    dnnl_engine_t eng = flava_ctx_engine(ctx);
    FLAVA_DNNL(dnnl_reorder_primitive_desc_create(&p, src, eng, dst, eng, attr));
    dnnl_status_t s = dnnl_primitive_create(prim, p);
    dnnl_primitive_desc_destroy(p);
    FLAVA_DNNL(s);
    return FLAVA_OK;
}

flava_status flava_dnnl_reorder(dnnl_primitive_t *prim, flava_ctx *ctx,
                                const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *dst)
{
    return reorder_with(prim, ctx, src, dst, NULL);
}

flava_status flava_dnnl_reorder_add(dnnl_primitive_t *prim, flava_ctx *ctx,
                                    const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *dst)
{
    *prim = NULL;
    dnnl_primitive_attr_t attr;
    FLAVA_DNNL(dnnl_primitive_attr_create(&attr));
    flava_status s = make_attr(attr, &(flava_dnnl_attrs){.accumulate = 1});
    if (s == FLAVA_OK)
        s = reorder_with(prim, ctx, src, dst, attr);
    dnnl_primitive_attr_destroy(attr);
    return s;
}

flava_status flava_dnnl_memory(dnnl_memory_t *mem, flava_ctx *ctx, const dnnl_memory_desc_t *md)
{
    *mem = NULL;
    FLAVA_DNNL(dnnl_memory_create(mem, md, flava_ctx_engine(ctx), DNNL_MEMORY_NONE));
    return FLAVA_OK;
}

flava_status flava_dnnl_bind(dnnl_memory_t mem, const void *data)
{
    FLAVA_DNNL(dnnl_memory_set_data_handle(mem, (void *)(uintptr_t)data));
    return FLAVA_OK;
}

flava_status flava_dnnl_run_reorder(flava_ctx *ctx, dnnl_primitive_t reorder, dnnl_memory_t src,
                                    dnnl_memory_t dst)
{
    dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}};
    return flava_dnnl_exec(ctx, reorder, 2, args);
}

flava_status flava_dnnl_run_matmul(flava_ctx *ctx, dnnl_primitive_t matmul, dnnl_memory_t src,
                                   dnnl_memory_t wei, dnnl_memory_t dst)
{
    dnnl_exec_arg_t args[] = {
        {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}};
    return flava_dnnl_exec(ctx, matmul, 3, args);
}

void flava_dnnl_release(dnnl_primitive_t *prims, int nprims, dnnl_memory_t *mems, int nmems)
{
    for (int i = nprims - 1; i >= 0; i--)
        if (prims[i])
            dnnl_primitive_destroy(prims[i]);
    for (int i = nmems - 1; i >= 0; i--)
        if (mems[i])
            dnnl_memory_destroy(mems[i]);
}

flava_status flava_dnnl_bf16_copy_init_md(flava_dnnl_bf16_copy *c, flava_ctx *ctx,
                                          const dnnl_memory_desc_t *src,
                                          const dnnl_memory_desc_t *dst)
{
    FLAVA_TRY(flava_alloc(&c->buf, dnnl_memory_desc_get_size(dst), "bf16 copy of a matmul input"));
    FLAVA_TRY(flava_dnnl_reorder(&c->reorder, ctx, src, dst));
    FLAVA_TRY(flava_dnnl_memory(&c->src, ctx, src));
    FLAVA_TRY(flava_dnnl_memory(&c->dst, ctx, dst));
    return flava_dnnl_bind(c->dst, c->buf);
}

flava_status flava_dnnl_bf16_copy_init(flava_dnnl_bf16_copy *c, flava_ctx *ctx, int64_t n)
{
    dnnl_memory_desc_t f32, bf16;
    FLAVA_TRY(flava_dnnl_md(&f32, 1, &n, NULL, dnnl_f32));
    FLAVA_TRY(flava_dnnl_md(&bf16, 1, &n, NULL, dnnl_bf16));
    return flava_dnnl_bf16_copy_init_md(c, ctx, &f32, &bf16);
}

flava_status flava_dnnl_bf16_copy_run(flava_dnnl_bf16_copy *c, flava_ctx *ctx, const float *src)
{
    FLAVA_TRY(flava_dnnl_bind(c->src, src));
    return flava_dnnl_run_reorder(ctx, c->reorder, c->src, c->dst);
}

void flava_dnnl_bf16_copy_release(flava_dnnl_bf16_copy *c)
{
    dnnl_memory_t mems[] = {c->src, c->dst};
    flava_dnnl_release(&c->reorder, 1, mems, 2);
    flava_free(c->buf);
}

flava_status flava_dnnl_entry(void **entry, flava_ctx *ctx, const flava_op_key *key, size_t size,
                              flava_dnnl_build_fn build, flava_op_entry_destroy destroy)
{
    *entry = flava_ctx_lookup(ctx, key);
    if (*entry)
        return FLAVA_OK;
    void *e;
    FLAVA_TRY(flava_alloc(&e, size, key->op));
    flava_status s = build(e, ctx, key);
    if (s != FLAVA_OK) {
        flava_error_context("building %s", key->op);
        destroy(e);
        return s;
    }
    FLAVA_TRY(flava_ctx_insert(ctx, key, e, destroy));
    *entry = e;
    return FLAVA_OK;
}

enum { U_IN, U_OUT, U_DATA, U_NMEM }; /* forward: src, dst; backward: diff_dst, diff_src, data */
struct unary_entry {
    dnnl_primitive_t prim;
    dnnl_memory_t mem[U_NMEM];
    float *scratch; /* backward: diff_src before it is accumulated */
};

static void unary_destroy(void *p)
{
    struct unary_entry *e = p;
    flava_dnnl_release(&e->prim, 1, e->mem, U_NMEM);
    flava_free(e->scratch);
    flava_free(e);
}

/* The cached entry of `key`, built on a miss: forward if bwd_desc is NULL. */
static flava_status unary_entry_get(struct unary_entry **out, flava_ctx *ctx,
                                    const flava_op_key *key, const void *fwd_desc,
                                    const void *bwd_desc, const dnnl_memory_desc_t *md)
{
    *out = flava_ctx_lookup(ctx, key);
    if (*out)
        return FLAVA_OK;
    struct unary_entry *e;
    FLAVA_TRY(flava_alloc((void **)&e, sizeof *e, key->op));
    flava_status s = bwd_desc ? flava_dnnl_backward_primitive(&e->prim, ctx, fwd_desc, bwd_desc)
                              : flava_dnnl_primitive(&e->prim, NULL, ctx, fwd_desc, NULL, NULL);
    for (int i = 0; i < U_NMEM && s == FLAVA_OK; i++)
        s = flava_dnnl_memory(&e->mem[i], ctx, md);
    if (s == FLAVA_OK && bwd_desc) {
        s = flava_alloc((void **)&e->scratch, dnnl_memory_desc_get_size(md), key->op);
        if (s == FLAVA_OK)
            s = flava_dnnl_bind(e->mem[U_OUT], e->scratch);
    }
    if (s != FLAVA_OK) {
        unary_destroy(e);
        return s;
    }
    FLAVA_TRY(flava_ctx_insert(ctx, key, e, unary_destroy));
    *out = e;
    return FLAVA_OK;
}

flava_status flava_dnnl_unary_forward(flava_ctx *ctx, const flava_op_key *key,
                                      const void *fwd_desc, const dnnl_memory_desc_t *md,
                                      float *out, const float *inp)
{
    struct unary_entry *e;
    FLAVA_TRY(unary_entry_get(&e, ctx, key, fwd_desc, NULL, md));
    FLAVA_TRY(flava_dnnl_bind(e->mem[U_IN], inp));
    FLAVA_TRY(flava_dnnl_bind(e->mem[U_OUT], out));
    dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, e->mem[U_IN]}, {DNNL_ARG_DST, e->mem[U_OUT]}};
    return flava_dnnl_exec(ctx, e->prim, 2, args);
}

flava_status flava_dnnl_unary_backward(flava_ctx *ctx, const flava_op_key *key,
                                       const void *fwd_desc, const void *bwd_desc,
                                       const dnnl_memory_desc_t *md, int data_arg, float *dinp,
                                       const float *dout, const float *data)
{
    struct unary_entry *e;
    FLAVA_TRY(unary_entry_get(&e, ctx, key, fwd_desc, bwd_desc, md));
    FLAVA_TRY(flava_dnnl_bind(e->mem[U_IN], dout));
    FLAVA_TRY(flava_dnnl_bind(e->mem[U_DATA], data));
    dnnl_exec_arg_t args[] = {{data_arg, e->mem[U_DATA]},
                              {DNNL_ARG_DIFF_DST, e->mem[U_IN]},
                              {DNNL_ARG_DIFF_SRC, e->mem[U_OUT]}};
    FLAVA_TRY(flava_dnnl_exec(ctx, e->prim, 3, args));
    flava_dnnl_accumulate(dinp, e->scratch,
                          (int64_t)(dnnl_memory_desc_get_size(md) / sizeof(float)));
    return FLAVA_OK;
}

void flava_dnnl_accumulate(float *dst, const float *src, int64_t n)
{
#pragma omp parallel for simd schedule(static) if (n > 16384)
    for (int64_t i = 0; i < n; i++)
        dst[i] += src[i];
}

int64_t flava_dnnl_float_dim(float v)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    return bits;
}

float flava_dnnl_dim_float(int64_t dim)
{
    uint32_t bits = (uint32_t)dim;
    float v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

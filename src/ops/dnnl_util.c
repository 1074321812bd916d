/* dnnl_util.c - shared oneDNN boilerplate of the ops. */
#include "dnnl_util.h"

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

flava_status flava_dnnl_reorder(dnnl_primitive_t *prim, flava_ctx *ctx,
                                const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *dst)
{
    *prim = NULL;
    dnnl_primitive_desc_t p;
    dnnl_engine_t eng = flava_ctx_engine(ctx);
    FLAVA_DNNL(dnnl_reorder_primitive_desc_create(&p, src, eng, dst, eng, NULL));
    dnnl_status_t s = dnnl_primitive_create(prim, p);
    dnnl_primitive_desc_destroy(p);
    FLAVA_DNNL(s);
    return FLAVA_OK;
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

void flava_dnnl_release(dnnl_primitive_t *prims, int nprims, dnnl_memory_t *mems, int nmems)
{
    for (int i = nprims - 1; i >= 0; i--)
        if (prims[i])
            dnnl_primitive_destroy(prims[i]);
    for (int i = nmems - 1; i >= 0; i--)
        if (mems[i])
            dnnl_memory_destroy(mems[i]);
}

void flava_dnnl_accumulate(float *dst, const float *src, int64_t n)
{
#pragma omp parallel for simd schedule(static) if (n > 16384)
    for (int64_t i = 0; i < n; i++)
        dst[i] += src[i];
}

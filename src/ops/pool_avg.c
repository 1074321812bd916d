/* pool_avg.c - global average pooling over H×W through oneDNN's average
 * pooling with a kernel as large as the input: [N,C,H,W] -> [N,C] (the
 * [N,C,1,1] output is dense, so the same memory). The backward primitive
 * overwrites, so it writes scratch of the cached entry, then added to dinp. */
#include "dnnl_util.h"
#include "nchw.h"
#include "ops.h"

/* key dims {N, C, H, W} */
enum { AP_SRC, AP_DST, AP_NMEM }; /* diff_src, diff_dst in backward */
struct avgpool_entry {
    dnnl_primitive_t prim;
    dnnl_memory_t mem[AP_NMEM];
    float *dsrc; /* backward scratch */
};

static void avgpool_destroy(void *p)
{
    struct avgpool_entry *e = p;
    flava_dnnl_release(&e->prim, 1, e->mem, AP_NMEM);
    flava_free(e->dsrc);
    flava_free(e);
}

static flava_status avgpool_descs(dnnl_memory_desc_t *src, dnnl_memory_desc_t *dst,
                                  dnnl_pooling_desc_t *fwd, dnnl_pooling_desc_t *bwd,
                                  const flava_op_key *key)
{
    int64_t ddims[4] = {key->dims[0], key->dims[1], 1, 1};
    FLAVA_TRY(flava_dnnl_md(src, 4, key->dims, NULL, dnnl_f32));
    FLAVA_TRY(flava_dnnl_md(dst, 4, ddims, NULL, dnnl_f32));
    dnnl_dims_t strides = {1, 1}, kernel = {key->dims[2], key->dims[3]}, pad = {0, 0};
    FLAVA_DNNL(dnnl_pooling_forward_desc_init(fwd, dnnl_forward_training,
                                              dnnl_pooling_avg_exclude_padding, src, dst, strides,
                                              kernel, pad, pad));
    if (bwd)
        FLAVA_DNNL(dnnl_pooling_backward_desc_init(bwd, dnnl_pooling_avg_exclude_padding, src, dst,
                                                   strides, kernel, pad, pad));
    return FLAVA_OK;
}

static flava_status avgpool_fwd_build(void *p, flava_ctx *ctx, const flava_op_key *key)
{
    struct avgpool_entry *e = p;
    dnnl_memory_desc_t src, dst;
    dnnl_pooling_desc_t fd;
    FLAVA_TRY(avgpool_descs(&src, &dst, &fd, NULL, key));
    FLAVA_TRY(flava_dnnl_primitive(&e->prim, NULL, ctx, &fd, NULL, NULL));
    FLAVA_TRY(flava_dnnl_memory(&e->mem[AP_SRC], ctx, &src));
    return flava_dnnl_memory(&e->mem[AP_DST], ctx, &dst);
}

static flava_status avgpool_bwd_build(void *p, flava_ctx *ctx, const flava_op_key *key)
{
    struct avgpool_entry *e = p;
    dnnl_memory_desc_t src, dst;
    dnnl_pooling_desc_t fd, bd;
    FLAVA_TRY(avgpool_descs(&src, &dst, &fd, &bd, key));
    FLAVA_TRY(flava_dnnl_backward_primitive(&e->prim, ctx, &fd, &bd));
    FLAVA_TRY(flava_dnnl_memory(&e->mem[AP_SRC], ctx, &src));
    FLAVA_TRY(flava_dnnl_memory(&e->mem[AP_DST], ctx, &dst));
    int64_t n = key->dims[0] * key->dims[1] * key->dims[2] * key->dims[3];
    FLAVA_TRY(flava_alloc((void **)&e->dsrc, (size_t)n * sizeof(float),
                          "average-pool input gradient"));
    return flava_dnnl_bind(e->mem[AP_SRC], e->dsrc);
}

flava_status avgpool_global_forward(flava_ctx *ctx, float *out, const float *inp,
                                    int N, int C, int H, int W)
{
    FLAVA_TRY(flava_check_nchw("avgpool_global_forward", N, C, H, W));
    flava_op_key key = {"avgpool_global_forward", {N, C, H, W}};
    struct avgpool_entry *e;
    FLAVA_TRY(flava_dnnl_entry((void **)&e, ctx, &key, sizeof *e, avgpool_fwd_build,
                               avgpool_destroy));
    FLAVA_TRY(flava_dnnl_bind(e->mem[AP_SRC], inp));
    FLAVA_TRY(flava_dnnl_bind(e->mem[AP_DST], out));
    dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, e->mem[AP_SRC]}, {DNNL_ARG_DST, e->mem[AP_DST]}};
    return flava_dnnl_exec(ctx, e->prim, 2, args);
}

flava_status avgpool_global_backward(flava_ctx *ctx, float *dinp, const float *dout,
                                     int N, int C, int H, int W)
{
    FLAVA_TRY(flava_check_nchw("avgpool_global_backward", N, C, H, W));
    if (!dinp)
        return FLAVA_OK;
    flava_op_key key = {"avgpool_global_backward", {N, C, H, W}};
    struct avgpool_entry *e;
    FLAVA_TRY(flava_dnnl_entry((void **)&e, ctx, &key, sizeof *e, avgpool_bwd_build,
                               avgpool_destroy));
    FLAVA_TRY(flava_dnnl_bind(e->mem[AP_DST], dout));
    dnnl_exec_arg_t args[] = {{DNNL_ARG_DIFF_DST, e->mem[AP_DST]},
                              {DNNL_ARG_DIFF_SRC, e->mem[AP_SRC]}};
    FLAVA_TRY(flava_dnnl_exec(ctx, e->prim, 2, args));
    flava_dnnl_accumulate(dinp, e->dsrc, (int64_t)N * C * H * W);
    return FLAVA_OK;
}

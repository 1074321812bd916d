/* pool.c - 2-D max pooling through oneDNN (NCHW, no padding). The forward
 * runs in training mode and leaves the argmax positions in the caller's
 * workspace; the backward routes the gradient through them. */
#include "ops.h"

#include <stdlib.h>

#include "dnnl_util.h"

typedef struct maxpool {
    dnnl_primitive_t fwd, bwd;
    dnnl_memory_t src, dst, ws, ddst, dsrc;
    size_t ws_bytes;
    float *dsrc_buf; /* the backward overwrites; ops.h wants +=, so it lands here first */
    int64_t nsrc;
} maxpool;

static void maxpool_destroy(void *p)
{
    maxpool *e = p;
    dnnl_primitive_t prims[2] = {e->fwd, e->bwd};
    dnnl_memory_t mems[5] = {e->src, e->dst, e->ws, e->ddst, e->dsrc};
    flava_dnnl_release(prims, 2, mems, 5);
    flava_free(e->dsrc_buf);
    free(e);
}

static flava_status maxpool_build(maxpool *e, flava_ctx *ctx, int N, int C, int H, int W, int k,
                                  int s)
{
    int OH = (H - k) / s + 1, OW = (W - k) / s + 1;
    int64_t sdims[4] = {N, C, H, W}, ddims[4] = {N, C, OH, OW};
    dnnl_memory_desc_t src, dst;
    FLAVA_TRY(flava_dnnl_md(&src, 4, sdims, NULL, dnnl_f32));
    FLAVA_TRY(flava_dnnl_md(&dst, 4, ddims, NULL, dnnl_f32));
    dnnl_dims_t strides = {s, s}, kernel = {k, k}, pad = {0, 0};
    dnnl_pooling_desc_t fd, bd;
    FLAVA_DNNL(dnnl_pooling_forward_desc_init(&fd, dnnl_forward_training, dnnl_pooling_max, &src,
                                              &dst, strides, kernel, pad, pad));
    FLAVA_DNNL(dnnl_pooling_backward_desc_init(&bd, dnnl_pooling_max, &src, &dst, strides, kernel,
                                               pad, pad));
    dnnl_primitive_desc_t hint;
    FLAVA_TRY(flava_dnnl_primitive(&e->fwd, &hint, ctx, &fd, NULL, NULL));
    const dnnl_memory_desc_t *ws = dnnl_primitive_desc_query_md(hint, dnnl_query_workspace_md, 0);
    e->ws_bytes = dnnl_memory_desc_get_size(ws);
    e->nsrc = (int64_t)N * C * H * W;
    flava_status st = flava_dnnl_memory(&e->ws, ctx, ws);
    if (st == FLAVA_OK)
        st = flava_dnnl_primitive(&e->bwd, NULL, ctx, &bd, NULL, hint);
    dnnl_primitive_desc_destroy(hint);
    FLAVA_TRY(st);
    FLAVA_TRY(flava_dnnl_memory(&e->src, ctx, &src));
    FLAVA_TRY(flava_dnnl_memory(&e->dst, ctx, &dst));
    FLAVA_TRY(flava_dnnl_memory(&e->ddst, ctx, &dst));
    FLAVA_TRY(flava_dnnl_memory(&e->dsrc, ctx, &src));
    FLAVA_TRY(flava_alloc((void **)&e->dsrc_buf, (size_t)e->nsrc * sizeof(float),
                          "max-pool input gradient"));
    return flava_dnnl_bind(e->dsrc, e->dsrc_buf);
}

static flava_status maxpool_get(maxpool **out, flava_ctx *ctx, int N, int C, int H, int W, int k,
                                int s)
{
    if (N < 1 || C < 1 || k < 1 || s < 1 || H < k || W < k)
        return FLAVA_ERROR(FLAVA_ERR_SHAPE,
                           "max-pool: N %d C %d H %d W %d kernel %d stride %d: sizes must be >= 1 "
                           "and the kernel no larger than the input",
                           N, C, H, W, k, s);
    flava_op_key key = {.op = "maxpool2d", .dims = {N, C, H, W, k, s}};
    maxpool *e = flava_ctx_lookup(ctx, &key);
    if (!e) {
        if (!(e = calloc(1, sizeof *e)))
            return FLAVA_ERROR(FLAVA_ERR_NOMEM, "max-pool: cannot allocate a cache entry");
        flava_status st = maxpool_build(e, ctx, N, C, H, W, k, s);
        if (st != FLAVA_OK) {
            maxpool_destroy(e);
            return st;
        }
        FLAVA_TRY(flava_ctx_insert(ctx, &key, e, maxpool_destroy));
    }
    *out = e;
    return FLAVA_OK;
}

/* 0 when the shape is invalid (the error is recorded) */
size_t maxpool2d_workspace_bytes(flava_ctx *ctx, int N, int C, int H, int W, int k, int s)
{
    maxpool *e;
    return maxpool_get(&e, ctx, N, C, H, W, k, s) == FLAVA_OK ? e->ws_bytes : 0;
}

flava_status maxpool2d_forward(flava_ctx *ctx, float *out, void *ws, const float *inp,
                               int N, int C, int H, int W, int k, int s)
{
    maxpool *e;
    FLAVA_TRY(maxpool_get(&e, ctx, N, C, H, W, k, s));
    FLAVA_TRY(flava_dnnl_bind(e->src, inp));
    FLAVA_TRY(flava_dnnl_bind(e->dst, out));
    FLAVA_TRY(flava_dnnl_bind(e->ws, ws));
    dnnl_exec_arg_t args[] = {
        {DNNL_ARG_SRC, e->src}, {DNNL_ARG_DST, e->dst}, {DNNL_ARG_WORKSPACE, e->ws}};
    return flava_dnnl_exec(ctx, e->fwd, 3, args);
}

flava_status maxpool2d_backward(flava_ctx *ctx, float *dinp, const float *dout, const void *ws,
                                int N, int C, int H, int W, int k, int s)
{
    maxpool *e;
    FLAVA_TRY(maxpool_get(&e, ctx, N, C, H, W, k, s));
    FLAVA_TRY(flava_dnnl_bind(e->ddst, dout));
    FLAVA_TRY(flava_dnnl_bind(e->ws, ws));
    dnnl_exec_arg_t args[] = {
        {DNNL_ARG_DIFF_DST, e->ddst}, {DNNL_ARG_WORKSPACE, e->ws}, {DNNL_ARG_DIFF_SRC, e->dsrc}};
    FLAVA_TRY(flava_dnnl_exec(ctx, e->bwd, 3, args));
    flava_dnnl_accumulate(dinp, e->dsrc_buf, e->nsrc);
    return FLAVA_OK;
}

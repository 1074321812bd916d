/* softmax.c - softmax over the last axis through oneDNN's softmax
 * primitive (flava_dnnl_unary_*: the backward goes through scratch and is
 * added to dinp). */
#include "dnnl_util.h"
#include "ops.h"

static flava_status softmax_descs(dnnl_softmax_desc_t *fwd, dnnl_softmax_desc_t *bwd,
                                  dnnl_memory_desc_t *md, const char *op, int rows, int cols)
{
    if (rows < 1 || cols < 1)
        return FLAVA_ERROR(FLAVA_ERR_SHAPE, "%s: rows=%d cols=%d, expected both >= 1", op, rows,
                           cols);
    FLAVA_TRY(flava_dnnl_md(md, 2, (int64_t[]){rows, cols}, NULL, dnnl_f32));
    FLAVA_DNNL(dnnl_softmax_forward_desc_init(fwd, dnnl_forward_training, md, 1));
    if (bwd)
        FLAVA_DNNL(dnnl_softmax_backward_desc_init(bwd, md, md, 1));
    return FLAVA_OK;
}

flava_status softmax_forward(flava_ctx *ctx, float *out, const float *inp, int rows, int cols)
{
    dnnl_softmax_desc_t fwd;
    dnnl_memory_desc_t md;
    FLAVA_TRY(softmax_descs(&fwd, NULL, &md, "softmax_forward", rows, cols));
    flava_op_key key = {"softmax_forward", {rows, cols}};
    return flava_dnnl_unary_forward(ctx, &key, &fwd, &md, out, inp);
}

flava_status softmax_backward(flava_ctx *ctx, float *dinp, const float *dout, const float *out,
                              int rows, int cols)
{
    dnnl_softmax_desc_t fwd, bwd;
    dnnl_memory_desc_t md;
    FLAVA_TRY(softmax_descs(&fwd, &bwd, &md, "softmax_backward", rows, cols));
    if (!dinp)
        return FLAVA_OK;
    flava_op_key key = {"softmax_backward", {rows, cols}};
    return flava_dnnl_unary_backward(ctx, &key, &fwd, &bwd, &md, DNNL_ARG_DST, dinp, dout, out);
}

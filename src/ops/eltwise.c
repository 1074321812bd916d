/* eltwise.c - GELU (erf), tanh and ReLU through oneDNN eltwise primitives
 * over n values seen as one flat tensor (flava_dnnl_unary_*: the backward
 * goes through scratch and is added to dinp). tanh's backward reads the
 * output (oneDNN's tanh_use_dst_for_bwd). */
#include "dnnl_util.h"
#include "ops.h"

/* key dims {n} under the op's name; the algorithm is fixed per name */
static flava_status eltwise_descs(dnnl_eltwise_desc_t *fwd, dnnl_eltwise_desc_t *bwd,
                                  dnnl_memory_desc_t *md, const char *op, dnnl_alg_kind_t alg,
                                  int64_t n)
{
    if (n < 1)
        return FLAVA_ERROR(FLAVA_ERR_SHAPE, "%s: n=%lld, expected >= 1", op, (long long)n);
    FLAVA_TRY(flava_dnnl_md(md, 1, &n, NULL, dnnl_f32));
    FLAVA_DNNL(dnnl_eltwise_forward_desc_init(fwd, dnnl_forward_training, alg, md, 0.0f, 0.0f));
    if (bwd)
        FLAVA_DNNL(dnnl_eltwise_backward_desc_init(bwd, alg, md, md, 0.0f, 0.0f));
    return FLAVA_OK;
}

static flava_status eltwise_forward(flava_ctx *ctx, const char *op, dnnl_alg_kind_t alg,
                                    float *out, const float *inp, int64_t n)
{
    dnnl_eltwise_desc_t fwd;
    dnnl_memory_desc_t md;
    FLAVA_TRY(eltwise_descs(&fwd, NULL, &md, op, alg, n));
    flava_op_key key = {op, {n}};
    return flava_dnnl_unary_forward(ctx, &key, &fwd, &md, out, inp);
}

/* `data` is the forward input, or its output for a use_dst algorithm. */
static flava_status eltwise_backward(flava_ctx *ctx, const char *op, dnnl_alg_kind_t alg,
                                     float *dinp, const float *dout, const float *data, int64_t n)
{
    dnnl_eltwise_desc_t fwd, bwd;
    dnnl_memory_desc_t md;
    FLAVA_TRY(eltwise_descs(&fwd, &bwd, &md, op, alg, n));
    if (!dinp)
        return FLAVA_OK;
    flava_op_key key = {op, {n}};
    int data_arg = alg == dnnl_eltwise_tanh_use_dst_for_bwd ? DNNL_ARG_DST : DNNL_ARG_SRC;
    return flava_dnnl_unary_backward(ctx, &key, &fwd, &bwd, &md, data_arg, dinp, dout, data);
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

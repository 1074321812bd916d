/* eltwise.c - GELU (erf), tanh, ReLU, swish (SiLU), quick GELU and sigmoid
 * through oneDNN eltwise primitives over n values seen as one flat tensor
 * (flava_dnnl_unary_*: the backward goes through scratch and is added to
 * dinp). tanh's and sigmoid's backward read the output (oneDNN's
 * *_use_dst_for_bwd). */
#include "dnnl_util.h"
#include "ops.h"

/* key dims {n, bits of alpha} under the op's name; the algorithm is fixed
 * per name, alpha is in the key so that the key alone says what was built */
static flava_op_key eltwise_key(const char *op, float alpha, int64_t n)
{
    flava_op_key key = {op, {n, flava_dnnl_float_dim(alpha)}};
    return key;
}

static flava_status eltwise_descs(dnnl_eltwise_desc_t *fwd, dnnl_eltwise_desc_t *bwd,
                                  dnnl_memory_desc_t *md, const char *op, dnnl_alg_kind_t alg,
                                  float alpha, int64_t n)
{
    if (n < 1)
        return FLAVA_ERROR(FLAVA_ERR_SHAPE, "%s: n=%lld, expected >= 1", op, (long long)n);
    FLAVA_TRY(flava_dnnl_md(md, 1, &n, NULL, dnnl_f32));
    FLAVA_DNNL(dnnl_eltwise_forward_desc_init(fwd, dnnl_forward_training, alg, md, alpha, 0.0f));
    if (bwd)
        FLAVA_DNNL(dnnl_eltwise_backward_desc_init(bwd, alg, md, md, alpha, 0.0f));
    return FLAVA_OK;
}

static flava_status eltwise_forward(flava_ctx *ctx, const char *op, dnnl_alg_kind_t alg,
                                    float alpha, float *out, const float *inp, int64_t n)
{
    dnnl_eltwise_desc_t fwd;
    dnnl_memory_desc_t md;
    FLAVA_TRY(eltwise_descs(&fwd, NULL, &md, op, alg, alpha, n));
    flava_op_key key = eltwise_key(op, alpha, n);
    return flava_dnnl_unary_forward(ctx, &key, &fwd, &md, out, inp);
}

/* `data` is the forward input, or its output for a use_dst algorithm. */
static flava_status eltwise_backward(flava_ctx *ctx, const char *op, dnnl_alg_kind_t alg,
                                     float alpha, float *dinp, const float *dout,
                                     const float *data, int64_t n)
{
    dnnl_eltwise_desc_t fwd, bwd;
    dnnl_memory_desc_t md;
    FLAVA_TRY(eltwise_descs(&fwd, &bwd, &md, op, alg, alpha, n));
    if (!dinp)
        return FLAVA_OK;
    flava_op_key key = eltwise_key(op, alpha, n);
    int use_dst = alg == dnnl_eltwise_tanh_use_dst_for_bwd ||
                  alg == dnnl_eltwise_logistic_use_dst_for_bwd;
    int data_arg = use_dst ? DNNL_ARG_DST : DNNL_ARG_SRC;
    return flava_dnnl_unary_backward(ctx, &key, &fwd, &bwd, &md, data_arg, dinp, dout, data);
}

flava_status gelu_forward(flava_ctx *ctx, float *out, const float *inp, int64_t n)
{
    return eltwise_forward(ctx, "gelu_forward", dnnl_eltwise_gelu_erf, 0.0f, out, inp, n);
}

flava_status gelu_backward(flava_ctx *ctx, float *dinp, const float *dout, const float *inp,
                           int64_t n)
{
    return eltwise_backward(ctx, "gelu_backward", dnnl_eltwise_gelu_erf, 0.0f, dinp, dout, inp,
                            n);
}

flava_status tanh_forward(flava_ctx *ctx, float *out, const float *inp, int64_t n)
{
    return eltwise_forward(ctx, "tanh_forward", dnnl_eltwise_tanh_use_dst_for_bwd, 0.0f, out, inp,
                           n);
}

flava_status tanh_backward(flava_ctx *ctx, float *dinp, const float *dout, const float *out,
                           int64_t n)
{
    return eltwise_backward(ctx, "tanh_backward", dnnl_eltwise_tanh_use_dst_for_bwd, 0.0f, dinp,
                            dout, out, n);
}

flava_status relu_forward(flava_ctx *ctx, float *out, const float *inp, int64_t n)
{
    return eltwise_forward(ctx, "relu_forward", dnnl_eltwise_relu, 0.0f, out, inp, n);
}

flava_status relu_backward(flava_ctx *ctx, float *dinp, const float *dout, const float *inp,
                           int64_t n)
{
    return eltwise_backward(ctx, "relu_backward", dnnl_eltwise_relu, 0.0f, dinp, dout, inp, n);
}

flava_status swish_forward(flava_ctx *ctx, float *out, const float *inp, int64_t n)
{
    return eltwise_forward(ctx, "swish_forward", dnnl_eltwise_swish, 1.0f, out, inp, n);
}

flava_status swish_backward(flava_ctx *ctx, float *dinp, const float *dout, const float *inp,
                            int64_t n)
{
    return eltwise_backward(ctx, "swish_backward", dnnl_eltwise_swish, 1.0f, dinp, dout, inp, n);
}

flava_status quick_gelu_forward(flava_ctx *ctx, float *out, const float *inp, int64_t n)
{
    return eltwise_forward(ctx, "quick_gelu_forward", dnnl_eltwise_swish, 1.702f, out, inp, n);
}

flava_status quick_gelu_backward(flava_ctx *ctx, float *dinp, const float *dout,
                                 const float *inp, int64_t n)
{
    return eltwise_backward(ctx, "quick_gelu_backward", dnnl_eltwise_swish, 1.702f, dinp, dout,
                            inp, n);
}

flava_status sigmoid_forward(flava_ctx *ctx, float *out, const float *inp, int64_t n)
{
    return eltwise_forward(ctx, "sigmoid_forward", dnnl_eltwise_logistic_use_dst_for_bwd, 0.0f,
                           out, inp, n);
}

flava_status sigmoid_backward(flava_ctx *ctx, float *dinp, const float *dout, const float *out,
                              int64_t n)
{
    return eltwise_backward(ctx, "sigmoid_backward", dnnl_eltwise_logistic_use_dst_for_bwd, 0.0f,
                            dinp, dout, out, n);
}

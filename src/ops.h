/* ops.h - the compute ops, each a forward/backward pair (llm.c style:
 * outputs first, then inputs, then sizes).
 *
 * Conventions for every op here:
 * - Tensors are float, row-major, contiguous unless said otherwise.
 * - Backward outputs ACCUMULATE (+=) into what they point to, so residual
 *   branches and shared weights add up without copies; pass NULL for a
 *   gradient that is not wanted. Callers zero gradients once per step.
 * - GEMM-shaped products, softmax, layer norm, GELU, tanh, ReLU, convolution
 *   and pooling run as oneDNN primitives cached per shape in the context
 *   (no allocation after the first call with a shape); the rest is plain C
 *   with OpenMP.
 * - With flava_ctx_precision() == FLAVA_PRECISION_BF16 the matmuls and the
 *   convolution forward read bf16 copies of their inputs and accumulate in
 *   f32; everything else is f32. */
#ifndef FLAVA_OPS_H
#define FLAVA_OPS_H

#include <stdint.h>

#include "ctx.h"
#include "status.h"

/* ---- linear: out[N,OC] = inp[N,C] · w[OC,C]ᵀ + b[OC]; b may be NULL ---- */
flava_status linear_forward(flava_ctx *ctx, float *out, const float *inp, const float *w,
                            const float *b, int N, int C, int OC);
/* gelu(linear) with GELU fused as a oneDNN post-op: for inference only (the
 * pre-activation that backward needs is not kept). */
flava_status linear_gelu_forward(flava_ctx *ctx, float *out, const float *inp, const float *w,
                                 const float *b, int N, int C, int OC);
flava_status linear_backward(flava_ctx *ctx, float *dinp, float *dw, float *db,
                             const float *dout, const float *inp, const float *w,
                             int N, int C, int OC);

/* ---- dropout: out = inp * mask, the mask 0 with probability p and 1/(1-p)
 * elsewhere, drawn from (seed, stream) alone (src/ops/dropout.c): the same
 * site gives the same mask in forward and backward. out may be inp. p = 0
 * is the identity; p outside [0, 1) is an error. ---- */
typedef struct flava_dropout {
    float p;
    uint64_t seed, stream;
} flava_dropout;
flava_status dropout_forward(float *out, const float *inp, int64_t n, const flava_dropout *d);
flava_status dropout_backward(float *dinp, const float *dout, int64_t n, const flava_dropout *d);
/* out_a = inp_a * mask and out_b = inp_b * mask in one pass under one mask,
 * the one dropout_forward applies (in place allowed): attention backward's
 * dropped probabilities and the gradient that flows back through them. */
flava_status dropout_forward_pair(float *out_a, const float *inp_a, float *out_b,
                                  const float *inp_b, int64_t n, const flava_dropout *d);

/* ---- attention core on a fused projection qkv[B,T,3C] = [q | k | v], each
 * C = NH heads of C/NH contiguous features. out[B,T,C] (heads concatenated)
 * = softmax(q·kᵀ/sqrt(C/NH) + mask)·v, where the mask removes keys whose
 * key_mask[B,T] is 0 (key_mask may be NULL) and, if causal, keys after the
 * query. Scale and mask are post-ops of the q·kᵀ matmul. att[B,NH,T,T]
 * keeps the probabilities for backward. With `drop` (NULL or p = 0: none)
 * the probabilities are dropped out before they weigh v (HF's
 * attention_probs_dropout), the mask over att's [B,NH,T,T] elements; att
 * keeps them undropped and backward draws the mask again. ---- */
flava_status attention_forward(flava_ctx *ctx, float *out, float *att, const float *qkv,
                               const float *key_mask, int causal, int B, int T, int C, int NH,
                               const flava_dropout *drop);
flava_status attention_backward(flava_ctx *ctx, float *dqkv, const float *dout,
                                const float *qkv, const float *att, int B, int T, int C, int NH,
                                const flava_dropout *drop);

/* ---- softmax over the last axis of [rows, cols] ---- */
flava_status softmax_forward(flava_ctx *ctx, float *out, const float *inp, int rows, int cols);
flava_status softmax_backward(flava_ctx *ctx, float *dinp, const float *dout, const float *out,
                              int rows, int cols);

/* ---- layer norm over the last axis of [N, C]; mean/var [N] (the biased
 * variance, as oneDNN keeps it) saved for backward, or both NULL for
 * inference ---- */
flava_status layernorm_forward(flava_ctx *ctx, float *out, float *mean, float *var,
                               const float *inp, const float *w, const float *b,
                               int N, int C, float eps);
flava_status layernorm_backward(flava_ctx *ctx, float *dinp, float *dw, float *db,
                                const float *dout, const float *inp, const float *w,
                                const float *mean, const float *var, int N, int C, float eps);

/* ---- elementwise activations over n values ---- */
flava_status gelu_forward(flava_ctx *ctx, float *out, const float *inp, int64_t n); /* erf GELU */
flava_status gelu_backward(flava_ctx *ctx, float *dinp, const float *dout, const float *inp,
                           int64_t n);
flava_status tanh_forward(flava_ctx *ctx, float *out, const float *inp, int64_t n);
flava_status tanh_backward(flava_ctx *ctx, float *dinp, const float *dout, const float *out,
                           int64_t n);
flava_status relu_forward(flava_ctx *ctx, float *out, const float *inp, int64_t n);
flava_status relu_backward(flava_ctx *ctx, float *dinp, const float *dout, const float *inp,
                           int64_t n);

/* ---- 2-D convolution, weights [OC, C/groups, KH, KW] as PyTorch stores
 * them, bias [OC] or NULL. src is NCHW unless src_nhwc; dst is NCHW unless
 * dst_nhwc (the patch embedding writes [N, OH*OW, OC] directly). ---- */
typedef struct flava_conv2d_dims {
    int N, C, H, W;      /* input */
    int OC, KH, KW;      /* filters */
    int stride, pad, groups;
    int src_nhwc, dst_nhwc;
    /* Asymmetric zero padding, as HF's EfficientNet/ALIGN put a ZeroPad2d
     * (TensorFlow "same") before a "valid" convolution: when any of the four
     * is nonzero they replace pad, which must then be 0. */
    int pad_top, pad_left, pad_bottom, pad_right;
} flava_conv2d_dims;
/* A ViT patch embedding: N images [N,C,size,size] (NCHW) through OC
 * filters of patch x patch at stride patch, no padding, output
 * [N, (size/patch)^2, OC] (NHWC). */
flava_conv2d_dims flava_conv2d_patches(int N, int C, int size, int patch, int OC);
int flava_conv2d_out_h(const flava_conv2d_dims *d);
int flava_conv2d_out_w(const flava_conv2d_dims *d);
flava_status conv2d_forward(flava_ctx *ctx, float *out, const float *inp, const float *w,
                            const float *b, const flava_conv2d_dims *d);
flava_status conv2d_backward(flava_ctx *ctx, float *dinp, float *dw, float *db,
                             const float *dout, const float *inp, const float *w,
                             const flava_conv2d_dims *d);

/* ---- max pooling, NCHW, kernel k, stride s, no padding; ws is oneDNN's
 * workspace of the argmax positions (size from maxpool2d_workspace_bytes) */
size_t maxpool2d_workspace_bytes(flava_ctx *ctx, int N, int C, int H, int W, int k, int s);
flava_status maxpool2d_forward(flava_ctx *ctx, float *out, void *ws, const float *inp,
                               int N, int C, int H, int W, int k, int s);
flava_status maxpool2d_backward(flava_ctx *ctx, float *dinp, const float *dout, const void *ws,
                                int N, int C, int H, int W, int k, int s);

/* ---- embedding lookup: out[N,C] = table[ids[n]]; an id outside [0,V) is
 * an error naming its position. Backward scatter-adds, deterministically. */
flava_status embedding_forward(float *out, const int32_t *ids, const float *table,
                               int N, int C, int V);
flava_status embedding_backward(float *dtable, const float *dout, const int32_t *ids,
                                int N, int C);

/* ---- L2 normalisation of rows (as torch.nn.functional.normalize, eps
 * 1e-12); norm[N] saved for backward ---- */
flava_status l2norm_forward(float *out, float *norm, const float *inp, int N, int C);
flava_status l2norm_backward(float *dinp, const float *dout, const float *out,
                             const float *norm, int N, int C);

/* ---- losses: a scalar mean; backward takes dloss (the scalar's gradient) */
/* cross-entropy over rows of logits[N,V], rows with label -100 ignored; the
 * mean is over the counted rows (*count, 0 gives loss 0). probs[N,V] kept. */
flava_status cross_entropy_forward(float *loss, int *count, float *probs, const float *logits,
                                   const int32_t *labels, int N, int V);
flava_status cross_entropy_backward(float *dlogits, float dloss, const float *probs,
                                    const int32_t *labels, int N, int V);
/* binary cross-entropy with logits, mean over all N*V elements */
flava_status bce_logits_forward(float *loss, const float *logits, const float *targets,
                                int N, int V);
flava_status bce_logits_backward(float *dlogits, float dloss, const float *logits,
                                 const float *targets, int N, int V);
/* mean squared error over n values */
flava_status mse_forward(float *loss, const float *pred, const float *target, int64_t n);
flava_status mse_backward(float *dpred, float dloss, const float *pred, const float *target,
                          int64_t n);

/* ================================================================
 * Ops of the CLIP and ALIGN families: for ALIGN's EfficientNet tower
 * batch norm, swish/SiLU, sigmoid, global average pooling and the
 * squeeze-and-excitation channel scale; CLIP's quick GELU. Same
 * conventions as above.
 * ================================================================ */

/* ---- batch norm over NCHW, statistics per channel over N, H, W (as
 * torch.nn.BatchNorm2d); w (gamma) and b (beta) are [C].
 * Training (mean and var not NULL): normalises with the batch statistics,
 * saved in mean/var [C] (var biased, what backward takes), and, when
 * running_mean/running_var are not NULL, updates them in place as torch
 * does: r = (1 - momentum) r + momentum s, with the unbiased variance
 * (N*H*W / (N*H*W - 1) times the biased one) for running_var.
 * Inference (mean and var NULL): normalises with running_mean/running_var,
 * which are only read; momentum is unused. ---- */
flava_status batchnorm2d_forward(flava_ctx *ctx, float *out, float *mean, float *var,
                                 float *running_mean, float *running_var, const float *inp,
                                 const float *w, const float *b, int N, int C, int H, int W,
                                 float eps, float momentum);
/* training: mean/var are the saved batch statistics and the gradient flows
 * through them; otherwise they are the running statistics, constants. */
flava_status batchnorm2d_backward(flava_ctx *ctx, float *dinp, float *dw, float *db,
                                  const float *dout, const float *inp, const float *w,
                                  const float *mean, const float *var, int N, int C, int H, int W,
                                  float eps, int training);

/* ---- swish / SiLU, x * sigmoid(x); CLIP's quick GELU, x * sigmoid(1.702 x)
 * (the same oneDNN swish with alpha 1.702); sigmoid, whose backward reads
 * its output. All over n values. ---- */
flava_status swish_forward(flava_ctx *ctx, float *out, const float *inp, int64_t n);
flava_status swish_backward(flava_ctx *ctx, float *dinp, const float *dout, const float *inp,
                            int64_t n);
flava_status quick_gelu_forward(flava_ctx *ctx, float *out, const float *inp, int64_t n);
flava_status quick_gelu_backward(flava_ctx *ctx, float *dinp, const float *dout,
                                 const float *inp, int64_t n);
flava_status sigmoid_forward(flava_ctx *ctx, float *out, const float *inp, int64_t n);
flava_status sigmoid_backward(flava_ctx *ctx, float *dinp, const float *dout, const float *out,
                              int64_t n);

/* ---- global average pooling: out[N,C] = mean over H×W of inp[N,C,H,W]
 * (nn.AdaptiveAvgPool2d(1), flattened) ---- */
flava_status avgpool_global_forward(flava_ctx *ctx, float *out, const float *inp,
                                    int N, int C, int H, int W);
flava_status avgpool_global_backward(flava_ctx *ctx, float *dinp, const float *dout,
                                     int N, int C, int H, int W);

/* ---- channel scale (squeeze-and-excitation): out[n,c,h,w] =
 * inp[n,c,h,w] * s[n,c]; backward dinp += dout * s, ds += sum over h,w of
 * dout * inp ---- */
flava_status channel_scale_forward(flava_ctx *ctx, float *out, const float *inp, const float *s,
                                   int N, int C, int H, int W);
flava_status channel_scale_backward(float *dinp, float *ds, const float *dout, const float *inp,
                                    const float *s, int N, int C, int H, int W);

#endif

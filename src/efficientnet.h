/* efficientnet.h - the EfficientNet image tower of ALIGN (HF
 * AlignVisionModel), forward and backward, batch norm in training mode
 * (batch statistics, running-stat update) or inference mode (running
 * statistics).
 *
 * Structure (HF modeling_align.py): stem = ZeroPad2d(0,1,0,1), 3x3 conv
 * stride 2, batch norm, swish; then MBConv blocks: [1x1 expansion conv, BN,
 * swish] (expand_ratio != 1), depthwise kxk conv (stride 2: TF-"same"
 * asymmetric zero padding, see depthwise_padding), BN, swish,
 * squeeze-excite (mean over HxW, 1x1 conv + swish, 1x1 conv + sigmoid,
 * channel scale), 1x1 projection conv, BN, and for the repeats of a stage
 * (stride 1, not the first block) element-wise dropout with rate
 * drop_connect_rate * block / blocks and the residual add. No top conv:
 * the pooled output is the mean over HxW of the last block, [B, C_last].
 *
 * Batch-norm momentum as HF has it: HF hands batch_norm_momentum (0.99)
 * straight to torch's BatchNorm2d, whose convention is r = (1 - m) r +
 * m batch, so the batch statistic gets weight 0.99 (TensorFlow's
 * EfficientNet means the reverse by 0.99). We follow HF, so running
 * statistics match an HF training run; the expansion batch norms, built by
 * HF without the config's momentum, use torch's default 0.1.
 *
 * Parameters go into the caller's table under HF names
 * (PREFIX.embeddings.convolution.weight, PREFIX.encoder.blocks.N...);
 * the running statistics into a second table (buffers: not trained, not
 * decayed), and the num_batches_tracked counters into an int64 array, one
 * per batch norm in declaration order. */
#ifndef FLAVA_EFFICIENTNET_H
#define FLAVA_EFFICIENTNET_H

#include <stddef.h>
#include <stdint.h>

#include "ctx.h"
#include "params.h"
#include "status.h"

enum { FLAVA_EFFNET_MAX_STAGES = 16, FLAVA_EFFNET_MAX_BLOCKS = 256 };

/* HF AlignVisionConfig fields. */
typedef struct flava_effnet_config {
    int num_channels, image_size, depth_divisor, hidden_dim;
    double width_coefficient, depth_coefficient, squeeze_expansion_ratio;
    double initializer_range, batch_norm_eps, batch_norm_momentum, drop_connect_rate;
    int nstages; /* entries of the per-stage lists */
    int kernel_sizes[FLAVA_EFFNET_MAX_STAGES], in_channels[FLAVA_EFFNET_MAX_STAGES],
        out_channels[FLAVA_EFFNET_MAX_STAGES], strides[FLAVA_EFFNET_MAX_STAGES],
        num_block_repeats[FLAVA_EFFNET_MAX_STAGES], expand_ratios[FLAVA_EFFNET_MAX_STAGES];
    int ndepthwise_padding;
    int depthwise_padding[FLAVA_EFFNET_MAX_BLOCKS]; /* blocks padded k//2 all round */
    char hidden_act[16], pooling_type[8];
} flava_effnet_config;

/* HF AlignVisionConfig defaults (EfficientNet-B7 widths, image_size 600). */
void flava_effnet_config_default(flava_effnet_config *c);
/* HF round_filters: channels scaled by width_coefficient, rounded to
 * depth_divisor, never more than 10% down. */
int flava_effnet_round_filters(const flava_effnet_config *c, int channels);
/* Checks what this implementation runs (swish, mean pooling, strides 1/2,
 * odd kernels, list lengths). */
flava_status flava_effnet_config_validate(const flava_effnet_config *c);

typedef struct flava_effnet_bn {
    size_t w, b;       /* in the parameter table */
    size_t mean, var;  /* running statistics, in the buffer table */
    int index;         /* its num_batches_tracked counter */
    int C;
    float momentum;    /* torch convention: r = (1 - m) r + m batch */
} flava_effnet_bn;

typedef struct flava_effnet_block {
    int in, exp, out, se; /* channels: input, expanded, output, squeeze */
    int k, stride, expand, residual;
    int pad_top, pad_left, pad_bottom, pad_right; /* of the depthwise conv */
    float drop;
    size_t expand_w, dw_w, se_reduce_w, se_reduce_b, se_expand_w, se_expand_b, proj_w;
    flava_effnet_bn expand_bn, dw_bn, proj_bn;
} flava_effnet_block;

typedef struct flava_effnet_acts flava_effnet_acts;

typedef struct flava_effnet {
    flava_effnet_config cfg;
    int stem_channels, out_channels, nblocks, nbn;
    size_t stem_w;
    flava_effnet_bn stem_bn;
    flava_effnet_block *blk; /* [nblocks] */
    flava_effnet_acts *acts; /* sized at first use for (B, H, W) */
} flava_effnet;

/* Declares the tower's parameters in `params` and its running statistics
 * in `buffers`, under PREFIX. */
flava_status flava_effnet_declare(flava_effnet *e, flava_param_table *params,
                                  flava_param_table *buffers, const flava_effnet_config *c,
                                  const char *prefix);
void flava_effnet_free(flava_effnet *e);

/* HF _init_weights: conv weights N(0, initializer_range), conv biases 0,
 * batch norm weight 1, bias 0, running mean 0, var 1, counters 0. */
void flava_effnet_init(const flava_effnet *e, float *params, float *buffers, int64_t *counters,
                       uint64_t seed);

/* The pooled output pooled[B, out_channels] of pixels[B, num_channels, H, W].
 * train: batch statistics, running statistics and counters updated, and
 * dropout on the residual branches with masks drawn from (dropout_seed,
 * block index) (src/ops/dropout.c). Otherwise running statistics, no
 * dropout. Activations are kept for flava_effnet_backward. */
flava_status flava_effnet_forward(flava_ctx *ctx, flava_effnet *e, float *pooled,
                                  const float *params, float *buffers, int64_t *counters,
                                  const float *pixels, int B, int H, int W, int train,
                                  uint64_t dropout_seed);
/* Accumulates every parameter gradient into grads from dpooled[B, C_last],
 * for the last forward (in its mode). */
flava_status flava_effnet_backward(flava_ctx *ctx, float *grads, const flava_effnet *e,
                                   const float *params, const float *buffers,
                                   const float *dpooled);

#endif

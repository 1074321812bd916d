/* codebook.h - the frozen image codebook that gives MIM its targets: the
 * DALL-E dVAE encoder that HuggingFace FLAVA ships as `image_codebook`
 * (FlavaImageCodebook), forward only.
 *
 * Architecture (HF modeling_flava.py, widths for hidden size h):
 *   input   conv 7x7 (pad 3), C -> h
 *   group_1 blocks h -> h,   max-pool 2x2
 *   group_2 blocks h -> 2h,  max-pool 2x2
 *   group_3 blocks 2h -> 4h, max-pool 2x2
 *   group_4 blocks 4h -> 8h  (no pool)
 *   output  relu, conv 1x1, 8h -> vocab logits
 * Each block: id_path(x) + post_gain * res_path(x), where res_path is
 * relu,conv3x3,relu,conv3x3,relu,conv3x3,relu,conv1x1 with hidden width
 * out/4, id_path is a 1x1 conv where the width changes (identity
 * otherwise) and post_gain = 1 / (num_groups * num_blocks_per_group)^2.
 * There are always four groups: HF's num_groups only enters post_gain.
 *
 * Input: codebook_pixel_values [B,C,H,W], NCHW, already mapped
 * 0.8x + 0.1 from [0,1] pixels. HF does that mapping (DALL-E's map_pixels,
 * eps 0.1) in FlavaImageProcessor, not in the model: resize to 112 with
 * LANCZOS, center-crop 112, scale 1/255, normalise with mean 0 / std 1
 * (a no-op), then map. H = W = 112 gives a 14x14 grid of codes, one per
 * 16x16 patch of the 224-px image.
 *
 * The convolutions follow the context's precision: under bf16 a code may
 * differ from the f32 one where the top two logits are close. */
#ifndef FLAVA_CODEBOOK_H
#define FLAVA_CODEBOOK_H

#include <stdint.h>

#include "ctx.h"
#include "status.h"

/* Field names as in HF FlavaImageCodebookConfig. */
typedef struct flava_codebook_config {
    int num_groups;           /* 4; sets post_gain only */
    int input_channels;       /* 3 */
    int num_blocks_per_group; /* 2 */
    int hidden_size;          /* 256 */
    int vocab_size;           /* 8192 */
} flava_codebook_config;

void flava_codebook_config_default(flava_codebook_config *cfg);

/* One named tensor of the frozen weights: HF's state_dict name (with the
 * `image_codebook.` prefix of FlavaForPreTraining; the standalone
 * facebook/flava-image-codebook checkpoint stores the same names without
 * it), its shape, and where it lives in the one float block. */
typedef struct flava_codebook_param {
    char name[96];
    int ndim;
    int64_t shape[4];
    int64_t offset; /* in floats, into flava_codebook_weights() */
    int64_t numel;
} flava_codebook_param;

typedef struct flava_codebook flava_codebook;

/* Builds the parameter table for `cfg` and allocates the (zeroed) weight
 * block; the caller fills it from a checkpoint through the table. */
flava_status flava_codebook_create(flava_codebook **out, const flava_codebook_config *cfg);
void flava_codebook_destroy(flava_codebook *cb);

/* The parameter table in HF state_dict order; *count gets its length. */
const flava_codebook_param *flava_codebook_params(const flava_codebook *cb, int *count);
/* The weight block all parameters point into; *numel gets its length. */
float *flava_codebook_weights(flava_codebook *cb, int64_t *numel);

/* Side of the code grid for an input side: three 2x2 pools, so n / 8. */
int flava_codebook_grid(int n);

/* ids[B, h*w] (row-major over the h x w grid, h = grid(H), w = grid(W)) =
 * argmax over the vocabulary of the logits, first index on ties as
 * torch.argmax. logits[B, vocab, h, w] is also written when not NULL.
 * Activation buffers are allocated on the first call with a batch shape
 * and reused while it stays the same. */
flava_status flava_codebook_forward(flava_ctx *ctx, flava_codebook *cb, int32_t *ids,
                                    float *logits, const float *pixels, int B, int H, int W);

#endif

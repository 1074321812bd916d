/* masking.h - the random corruptions of FLAVA's pretraining objectives,
 * all drawn from an explicit flava_rng (same seed, same masks).
 *
 * MLM, as HF's DataCollatorForLanguageModeling: each candidate token (not a
 * special id, not padding) is selected with probability mask_prob; a
 * selected token becomes [MASK] (80%), a random id from [0, vocab_size)
 * (10%) or stays (10%); labels hold the original id where selected, -100
 * elsewhere. Unlike HF, a sequence with candidates always gets at least one
 * selected token (one candidate drawn uniformly when none was), so no
 * sequence contributes nothing to the loss.
 *
 * MIM, as BEiT's MaskingGenerator with FLAVA's defaults: rectangles of
 * log-uniform aspect ratio and uniform area in [min_block, remaining] are
 * laid on the patch grid (10 attempts per block, each accepted only if it
 * adds between 1 and `remaining` new patches) until the target count is
 * reached or a block finds no place; so the count never exceeds the target
 * and falls short only when the last attempts all fail (on 14x14, 74.5 of
 * 75 on average, exactly 75 two times in three).
 *
 * ITM negatives: each sample's caption is swapped, with probability p, for
 * another sample's caption (never its own); itm_labels 0 where swapped. A
 * batch of one has no other caption: its sample stays a positive. */
#ifndef FLAVA_MASKING_H
#define FLAVA_MASKING_H

#include <stdint.h>

#include "rng.h"
#include "status.h"

enum { FLAVA_IGNORE_INDEX = -100 };

typedef struct flava_mlm_config {
    double mask_prob;           /* 0.15 */
    int32_t mask_id;
    int32_t vocab_size;         /* random replacements come from [0, vocab_size) */
    const int32_t *special_ids; /* never selected */
    int n_special;
} flava_mlm_config;

/* One sequence of T tokens; attention_mask 0 marks padding (NULL: none).
 * masked_ids may equal ids (in place). *n_selected may be NULL. */
flava_status flava_mlm_mask(int32_t *masked_ids, int32_t *labels, int64_t *n_selected,
                            const int32_t *ids, const float *attention_mask, int64_t T,
                            const flava_mlm_config *cfg, flava_rng *rng);

typedef struct flava_mim_config {
    int height, width;     /* patch grid */
    int num_masked;        /* target count */
    int min_block;         /* smallest block area drawn */
    int max_block;         /* largest block area drawn; 0 = num_masked */
    double min_aspect;     /* aspect ratio in [min_aspect, 1/min_aspect] */
    int attempts;          /* tries per block */
} flava_mim_config;

/* FLAVA's defaults (75 of 196 patches, blocks of at least 16, aspect
 * 0.3..1/0.3, 10 attempts), with the count and the minimum block scaled in
 * proportion to a height x width grid. */
flava_mim_config flava_mim_default_config(int height, int width);

/* bool_masked_pos: height*width bytes, row-major, 1 = masked. */
flava_status flava_mim_mask(uint8_t *bool_masked_pos, int *n_masked, const flava_mim_config *cfg,
                            flava_rng *rng);

/* caption_index[i]: which sample's caption goes with image i. */
flava_status flava_itm_negatives(int32_t *caption_index, int32_t *itm_labels, int B, double p,
                                 flava_rng *rng);

#endif

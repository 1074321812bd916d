/* batch.h - one batch of model inputs, named as HuggingFace FLAVA names its
 * forward arguments. The loader fills it; the model and heads read it.
 * Absent inputs are NULL. Buffers are owned by whoever allocated the batch
 * (the loader allocates once for the largest batch and reuses). */
#ifndef FLAVA_BATCH_H
#define FLAVA_BATCH_H

#include <stdint.h>

typedef struct flava_batch {
    int B;          /* samples in this batch */
    int image_size; /* H = W of pixel_values */
    int T;          /* text positions per sample */
    int P;          /* image patches per sample */

    float *pixel_values;           /* [B,3,H,W], normalised */
    float *codebook_pixel_values;  /* [B,3,112,112], mapped 0.8x+0.1 */
    uint8_t *bool_masked_pos;      /* [B,P], 1 = patch masked for MIM/MMM */
    int32_t *input_ids;            /* [B,T] */
    int32_t *input_ids_masked;     /* [B,T], MLM-corrupted ids */
    int32_t *token_type_ids;       /* [B,T] */
    float *attention_mask;         /* [B,T], 1 = token, 0 = padding */
    int32_t *mlm_labels;           /* [B,T], -100 where not predicted */
    int32_t *mim_labels;           /* [B,P], -100 where not masked */
    int32_t *itm_labels;           /* [B], 1 = caption matches image */
    unsigned heads;                /* bit h: head h feeds on this batch; 0: every enabled head */

    /* fine-tuning targets */
    float *vqa_targets;            /* [B,num_answers] soft scores */
    int32_t *class_labels;         /* [B] */
    float *regression_targets;     /* [B] (STS-B) */
} flava_batch;

#endif

/* heads.h - the head instances gathered by heads/registry.c. */
#ifndef FLAVA_HEADS_H
#define FLAVA_HEADS_H

#include "model.h"

extern const flava_head_ops flava_head_mim, flava_head_mlm, flava_head_itm,
    flava_head_contrastive, flava_head_mmm_image, flava_head_mmm_text, flava_head_vqa,
    flava_head_classify;

/* Looks up the parameters PREFIX + suffix[i], i < n: p[i] the tensor and
 * g[i] its gradient (NULL when the model has no gradients). */
void flava_head_params(const flava_head_io *io, const char *prefix, const char *const *suffix,
                       int n, float **p, float **g);

/* Gathers rows [idx[i]] of src[*, C] into dst[n, C]. */
void flava_rows_gather(float *dst, const float *src, const int32_t *idx, int n, int C);
/* Adds rows of src[n, C] into dst[idx[i], C]. */
void flava_rows_scatter_add(float *dst, const float *src, const int32_t *idx, int n, int C);

#endif

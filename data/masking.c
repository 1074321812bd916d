/* masking.c - MLM token corruption, BEiT block-wise MIM masks, ITM
 * negatives. */
#include "masking.h"

#include <math.h>
#include <string.h>

static int is_candidate(const flava_mlm_config *cfg, const float *attention_mask, int64_t t,
                        int32_t id)
{
    if (attention_mask && attention_mask[t] == 0.0f)
        return 0;
    for (int k = 0; k < cfg->n_special; k++)
        if (id == cfg->special_ids[k])
            return 0;
    return 1;
}

flava_status flava_mlm_mask(int32_t *masked_ids, int32_t *labels, int64_t *n_selected,
                            const int32_t *ids, const float *attention_mask, int64_t T,
                            const flava_mlm_config *cfg, flava_rng *rng)
{
    if (!(cfg->mask_prob >= 0 && cfg->mask_prob <= 1) || cfg->vocab_size <= 0)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "MLM: mask probability %g must lie in [0, 1] and the "
                           "vocabulary size %d be positive", cfg->mask_prob, cfg->vocab_size);
    int64_t selected = 0, candidates = 0;
    for (int64_t t = 0; t < T; t++) {
        int32_t id = ids[t];
        labels[t] = FLAVA_IGNORE_INDEX;
        masked_ids[t] = id;
        if (!is_candidate(cfg, attention_mask, t, id))
            continue;
        candidates++;
        if (flava_rng_uniform(rng) < cfg->mask_prob) {
            labels[t] = id;
            selected++;
        }
    }
    if (selected == 0 && candidates > 0 && cfg->mask_prob > 0) {
        int64_t pick = flava_rng_below(rng, (uint32_t)candidates);
        for (int64_t t = 0; t < T; t++)
            if (is_candidate(cfg, attention_mask, t, ids[t]) && pick-- == 0) {
                labels[t] = ids[t];
                selected = 1;
                break;
            }
    }
    for (int64_t t = 0; t < T; t++) {
        if (labels[t] == FLAVA_IGNORE_INDEX)
            continue;
        double u = flava_rng_uniform(rng);
        if (u < 0.8)
            masked_ids[t] = cfg->mask_id;
        else if (u < 0.9)
            masked_ids[t] = (int32_t)flava_rng_below(rng, (uint32_t)cfg->vocab_size);
    }
    if (n_selected)
        *n_selected = selected;
    return FLAVA_OK;
}

flava_mim_config flava_mim_default_config(int height, int width)
{
    /* FLAVA: 75 of 14x14 patches, blocks of at least 16. */
    double scale = (double)height * width / 196.0;
    flava_mim_config c = {
        .height = height,
        .width = width,
        .num_masked = (int)lround(75 * scale),
        .min_block = (int)lround(16 * scale),
        .max_block = 0,
        .min_aspect = 0.3,
        .attempts = 10,
    };
    if (c.min_block < 1)
        c.min_block = 1;
    return c;
}

/* One block: up to cfg->attempts rectangles, the first that adds between 1
 * and max_new patches is kept. Returns the number of patches added. */
static int mim_block(uint8_t *mask, const flava_mim_config *cfg, int max_new, flava_rng *rng)
{
    double log_lo = log(cfg->min_aspect), log_hi = -log(cfg->min_aspect);
    for (int attempt = 0; attempt < cfg->attempts; attempt++) {
        double area = cfg->min_block + (max_new - cfg->min_block) * flava_rng_uniform(rng);
        double aspect = exp(log_lo + (log_hi - log_lo) * flava_rng_uniform(rng));
        /* rint: half to even, as Python's round() in BEiT */
        int h = (int)rint(sqrt(area * aspect));
        int w = (int)rint(sqrt(area / aspect));
        if (w >= cfg->width || h >= cfg->height)
            continue;
        int top = (int)flava_rng_below(rng, (uint32_t)(cfg->height - h + 1));
        int left = (int)flava_rng_below(rng, (uint32_t)(cfg->width - w + 1));
        int fresh = 0;
        for (int i = top; i < top + h; i++)
            for (int j = left; j < left + w; j++)
                fresh += !mask[i * cfg->width + j];
        if (fresh == 0 || fresh > max_new)
            continue;
        for (int i = top; i < top + h; i++)
            for (int j = left; j < left + w; j++)
                mask[i * cfg->width + j] = 1;
        return fresh;
    }
    return 0;
}

flava_status flava_mim_mask(uint8_t *bool_masked_pos, int *n_masked, const flava_mim_config *cfg,
                            flava_rng *rng)
{
    int P = cfg->height * cfg->width;
    if (cfg->height < 1 || cfg->width < 1 || cfg->num_masked < 0 || cfg->num_masked > P ||
        cfg->min_block < 1 || !(cfg->min_aspect > 0 && cfg->min_aspect <= 1) || cfg->attempts < 1)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "MIM: grid %dx%d, %d masked, min block %d, aspect %g, "
                           "%d attempts: need a positive grid, 0 <= masked <= patches, min block "
                           ">= 1, 0 < aspect <= 1, attempts >= 1",
                           cfg->height, cfg->width, cfg->num_masked, cfg->min_block,
                           cfg->min_aspect, cfg->attempts);
    int max_block = cfg->max_block > 0 ? cfg->max_block : cfg->num_masked;
    memset(bool_masked_pos, 0, (size_t)P);
    int count = 0;
    while (count < cfg->num_masked) {
        int remaining = cfg->num_masked - count;
        int added = mim_block(bool_masked_pos, cfg, remaining < max_block ? remaining : max_block,
                              rng);
        if (added == 0)
            break;
        count += added;
    }
    if (n_masked)
        *n_masked = count;
    return FLAVA_OK;
}

flava_status flava_itm_negatives(int32_t *caption_index, int32_t *itm_labels, int B, double p,
                                 flava_rng *rng)
{
    if (B < 1 || !(p >= 0 && p <= 1))
        return FLAVA_ERROR(FLAVA_ERR_ARG, "ITM negatives: batch %d must be positive and the "
                           "probability %g lie in [0, 1]", B, p);
    for (int i = 0; i < B; i++) {
        caption_index[i] = i;
        itm_labels[i] = 1;
        if (B > 1 && flava_rng_uniform(rng) < p) {
            /* uniform over the other B-1 samples */
            int j = (int)flava_rng_below(rng, (uint32_t)(B - 1));
            caption_index[i] = j < i ? j : j + 1;
            itm_labels[i] = 0;
        }
    }
    return FLAVA_OK;
}

/* registry.c - every head, indexed by flava_head_id. */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "heads.h"

const flava_head_ops *const flava_heads[] = {
    [FLAVA_HEAD_MIM] = &flava_head_mim,
    [FLAVA_HEAD_MLM] = &flava_head_mlm,
    [FLAVA_HEAD_ITM] = &flava_head_itm,
    [FLAVA_HEAD_CONTRASTIVE] = &flava_head_contrastive,
    [FLAVA_HEAD_MMM_IMAGE] = &flava_head_mmm_image,
    [FLAVA_HEAD_MMM_TEXT] = &flava_head_mmm_text,
    [FLAVA_HEAD_VQA] = &flava_head_vqa,
    [FLAVA_HEAD_CLASSIFY] = &flava_head_classify,
};
static_assert(sizeof flava_heads / sizeof flava_heads[0] == FLAVA_NUM_HEADS,
              "every flava_head_id has a head and every head an id");

int flava_head_find(const char *name)
{
    for (int i = 0; i < FLAVA_NUM_HEADS; i++)
        if (!strcmp(flava_heads[i]->name, name))
            return i;
    return -1;
}

void flava_rows_gather(float *dst, const float *src, const int32_t *idx, int n, int C)
{
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++)
        memcpy(dst + (size_t)i * C, src + (size_t)idx[i] * C, (size_t)C * sizeof *dst);
}

void flava_rows_scatter_add(float *dst, const float *src, const int32_t *idx, int n, int C)
{
    /* rows are distinct within one call, so the loop parallelises */
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        float *d = dst + (size_t)idx[i] * C;
        const float *s = src + (size_t)i * C;
        for (int c = 0; c < C; c++)
            d[c] += s[c];
    }
}

void flava_head_params(const flava_head_io *io, const char *prefix, const char *const *suffix,
                       int n, float **p, float **g)
{
    for (int i = 0; i < n; i++) {
        char name[FLAVA_PARAM_NAME_MAX];
        snprintf(name, sizeof name, "%s%s", prefix, suffix[i]);
        p[i] = flava_model_param(io->model, name, &g[i]);
    }
}

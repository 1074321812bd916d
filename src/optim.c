/* optim.c - AdamW, gradient clipping and the learning-rate schedule. */
#include "optim.h"

#include <math.h>
#include <stdlib.h>

/* Each element as torch's single-tensor AdamW computes it: the scalars are
 * formed in double, as in Python, and applied in float. */
static void adamw_run(float *p, float *m, float *v, const float *g, int64_t begin, int64_t end,
                      float decay, float beta1, float one_minus_beta1, float beta2,
                      float one_minus_beta2, float bc2_sqrt, float eps, float step_size)
{
#pragma omp for schedule(static) nowait
    for (int64_t i = begin; i < end; i++) {
        float pi = p[i] * decay;
        float mi = m[i] * beta1 + g[i] * one_minus_beta1;
        float vi = v[i] * beta2 + g[i] * g[i] * one_minus_beta2;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        p[i] = pi - step_size * (mi / denom);
        m[i] = mi;
        v[i] = vi;
    }
}

flava_status flava_adamw_step(float *params, float *m, float *v, const float *grads,
                              const flava_param_range *no_decay, int n_no_decay, int64_t n,
                              double lr, int64_t step, const flava_adamw_config *cfg)
{
    if (step < 1 || n < 0 || n_no_decay < 0 || !(lr >= 0))
        return FLAVA_ERROR(FLAVA_ERR_ARG, "AdamW: step %lld, n %lld, lr %g: expected step >= 1, "
                           "n >= 0, lr >= 0", (long long)step, (long long)n, lr);
    int64_t at = 0;
    for (int r = 0; r < n_no_decay; r++) {
        const flava_param_range *nd = &no_decay[r];
        if (nd->offset < at || nd->count < 0 || nd->count > n - nd->offset)
            return FLAVA_ERROR(FLAVA_ERR_ARG,
                               "AdamW: no-decay range %d [%lld, +%lld) is out of order, overlapping "
                               "or outside the %lld parameters", r, (long long)nd->offset,
                               (long long)nd->count, (long long)n);
        at = nd->offset + nd->count;
    }
    double bc1 = 1.0 - pow(cfg->beta1, (double)step);
    double bc2 = 1.0 - pow(cfg->beta2, (double)step);
    const float decay = (float)(1.0 - lr * cfg->weight_decay);
    const float beta1 = (float)cfg->beta1, omb1 = (float)(1.0 - cfg->beta1);
    const float beta2 = (float)cfg->beta2, omb2 = (float)(1.0 - cfg->beta2);
    const float bc2_sqrt = (float)sqrt(bc2), eps = (float)cfg->eps;
    const float step_size = (float)(lr / bc1);
    /* One parallel region; the decayed stretches between the no-decay
     * ranges and the ranges themselves are shared out in turn. */
#pragma omp parallel
    {
        int64_t from = 0;
        for (int r = 0; r <= n_no_decay; r++) {
            int64_t to = r < n_no_decay ? no_decay[r].offset : n;
            adamw_run(params, m, v, grads, from, to, decay, beta1, omb1, beta2, omb2, bc2_sqrt,
                      eps, step_size);
            if (r < n_no_decay) {
                from = to + no_decay[r].count;
                adamw_run(params, m, v, grads, to, from, 1.0f, beta1, omb1, beta2, omb2,
                          bc2_sqrt, eps, step_size);
            }
        }
    }
    return FLAVA_OK;
}

/* Blocks of a size that depends on n only, summed in block order: the norm
 * has the same bits whatever the number of threads. */
enum { NORM_BLOCKS = 4096, NORM_MIN_BLOCK = 1 << 14 };

flava_status flava_grad_clip_norm(double *norm, float *grads, int64_t n, double max_norm)
{
    *norm = 0;
    if (n < 0 || !(max_norm > 0))
        return FLAVA_ERROR(FLAVA_ERR_ARG, "gradient clipping: n %lld, max_norm %g: expected "
                           "n >= 0 and max_norm > 0", (long long)n, max_norm);
    int64_t block = (n + NORM_BLOCKS - 1) / NORM_BLOCKS;
    if (block < NORM_MIN_BLOCK)
        block = NORM_MIN_BLOCK;
    int nblocks = (int)((n + block - 1) / block);
    double partial[NORM_BLOCKS];
#pragma omp parallel for schedule(static)
    for (int b = 0; b < nblocks; b++) {
        int64_t end = (int64_t)(b + 1) * block < n ? (int64_t)(b + 1) * block : n;
        double s = 0;
        for (int64_t i = (int64_t)b * block; i < end; i++)
            s += (double)grads[i] * grads[i];
        partial[b] = s;
    }
    double sum = 0;
    for (int b = 0; b < nblocks; b++)
        sum += partial[b];
    *norm = sqrt(sum);
    if (!isfinite(*norm))
        return FLAVA_ERROR(FLAVA_ERR_NUMERIC, "the gradient norm is %g (%lld gradients)", *norm,
                           (long long)n);
    double coef = max_norm / (*norm + 1e-6);
    if (coef < 1.0) {
        const float c = (float)coef;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++)
            grads[i] *= c;
    }
    return FLAVA_OK;
}

double flava_lr_cosine(int64_t step, int64_t warmup, int64_t total, double lr_max, double lr_min)
{
    if (step < warmup)
        return lr_max * (double)step / (double)warmup;
    double span = (double)(total - warmup > 1 ? total - warmup : 1);
    double progress = (double)(step - warmup) / span;
    if (progress > 1)
        progress = 1;
    return lr_min + (lr_max - lr_min) * 0.5 * (1.0 + cos(M_PI * progress));
}

flava_status flava_adamw_no_decay(flava_param_range **ranges, int *n, const flava_param_table *t)
{
    *n = 0;
    *ranges = calloc((size_t)t->n + 1, sizeof **ranges);
    if (!*ranges)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot allocate the no-decay ranges");
    for (int i = 0; i < t->n; i++) {
        const flava_param *p = &t->p[i];
        if (!p->no_decay)
            continue;
        flava_param_range *last = *n ? &(*ranges)[*n - 1] : NULL;
        if (last && last->offset + last->count == (int64_t)p->offset)
            last->count += (int64_t)p->numel; /* adjacent runs merge */
        else
            (*ranges)[(*n)++] = (flava_param_range){(int64_t)p->offset, (int64_t)p->numel};
    }
    return FLAVA_OK;
}

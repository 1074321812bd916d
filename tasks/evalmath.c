/* evalmath.c - see evalmath.h. */
#include "evalmath.h"

#include <math.h>
#include <string.h>

flava_status flava_ensemble_templates(float *out, const float *emb, int K, int T, int D)
{
    if (K < 1 || T < 1 || D < 1)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "ensemble of %d classes x %d templates x %d dims", K, T,
                           D);
    for (int k = 0; k < K; k++) {
        float *o = out + (size_t)k * D;
        memset(o, 0, sizeof(float) * (size_t)D);
        for (int t = 0; t < T; t++) {
            const float *e = emb + ((size_t)k * T + t) * D;
            double ss = 0;
            for (int d = 0; d < D; d++)
                ss += (double)e[d] * e[d];
            /* torch's F.normalize floor, so that a zero row stays zero */
            const double inv = 1.0 / fmax(sqrt(ss), 1e-12);
            for (int d = 0; d < D; d++)
                o[d] += (float)(e[d] * inv / T);
        }
        double ss = 0;
        for (int d = 0; d < D; d++)
            ss += (double)o[d] * o[d];
        const double inv = 1.0 / fmax(sqrt(ss), 1e-12);
        for (int d = 0; d < D; d++)
            o[d] = (float)(o[d] * inv);
    }
    return FLAVA_OK;
}

flava_status flava_standardize_fit(float *mean, float *std, const float *X, long N, int D)
{
    if (N < 1 || D < 1)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "standardising %ld samples of %d features", N, D);
#pragma omp parallel for schedule(static)
    for (int d = 0; d < D; d++) {
        double s = 0, ss = 0;
        for (long i = 0; i < N; i++)
            s += X[(size_t)i * D + d];
        const double mu = s / (double)N;
        for (long i = 0; i < N; i++) {
            const double v = X[(size_t)i * D + d] - mu;
            ss += v * v;
        }
        const double sd = sqrt(ss / (double)N);
        mean[d] = (float)mu;
        std[d] = sd > 0 ? (float)sd : 1.0f;
    }
    return FLAVA_OK;
}

void flava_standardize_apply(float *X, const float *mean, const float *std, long N, int D)
{
#pragma omp parallel for schedule(static)
    for (long i = 0; i < N; i++)
        for (int d = 0; d < D; d++)
            X[(size_t)i * D + d] = (X[(size_t)i * D + d] - mean[d]) / std[d];
}

double flava_topk_accuracy(const float *scores, const int32_t *labels, long N, int K, int k)
{
    long hit = 0;
    for (long i = 0; i < N; i++) {
        const float *s = scores + (size_t)i * K;
        const int32_t y = labels[i];
        if (y < 0 || y >= K)
            continue;
        int above = 0; /* classes ranked at or above the label */
        for (int c = 0; c < K; c++)
            above += c != y && !(s[c] < s[y]);
        hit += above < k;
    }
    return N ? (double)hit / (double)N : 0.0;
}

flava_status flava_log_grid(double *out, int n, double lo, double hi)
{
    if (n < 2 || !(lo > 0) || !(hi > lo))
        return FLAVA_ERROR(FLAVA_ERR_ARG, "log grid of %d values from %g to %g: expected n >= 2 "
                           "and 0 < lo < hi", n, lo, hi);
    const double a = log10(lo), b = log10(hi);
    for (int i = 0; i < n; i++)
        out[i] = pow(10.0, a + (b - a) * i / (n - 1));
    return FLAVA_OK;
}

int flava_argmax_f32(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        best = x[i] > x[best] ? i : best;
    return best;
}

int flava_argmax_first(const double *values, int n)
{
    int best = -1;
    for (int i = 0; i < n; i++)
        if (!isnan(values[i]) && (best < 0 || values[i] > values[best]))
            best = i;
    return best;
}

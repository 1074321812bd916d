/* metrics.c - accuracy, F1, Matthews, Pearson and Spearman. */
#include "metrics.h"

#include <math.h>
#include <stdlib.h>

static flava_status check_n(long n, const char *metric)
{
    if (n <= 0)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "%s of %ld examples: expected at least one", metric, n);
    return FLAVA_OK;
}

flava_status flava_metric_accuracy(double *out, const int32_t *pred, const int32_t *gold, long n)
{
    FLAVA_TRY(check_n(n, "accuracy"));
    long hit = 0;
    for (long i = 0; i < n; i++)
        hit += pred[i] == gold[i];
    *out = (double)hit / n;
    return FLAVA_OK;
}

flava_status flava_metric_f1(double *out, const int32_t *pred, const int32_t *gold, long n)
{
    FLAVA_TRY(check_n(n, "F1"));
    long tp = 0, fp = 0, fn = 0;
    for (long i = 0; i < n; i++) {
        if ((pred[i] != 0 && pred[i] != 1) || (gold[i] != 0 && gold[i] != 1))
            return FLAVA_ERROR(FLAVA_ERR_ARG, "F1: example %ld has prediction %d and label %d, "
                               "expected binary labels 0 or 1", i, pred[i], gold[i]);
        tp += pred[i] && gold[i];
        fp += pred[i] && !gold[i];
        fn += !pred[i] && gold[i];
    }
    *out = tp + fp + fn ? 2.0 * tp / (2.0 * tp + fp + fn) : 0.0;
    return FLAVA_OK;
}

flava_status flava_metric_matthews(double *out, const int32_t *pred, const int32_t *gold, long n)
{
    FLAVA_TRY(check_n(n, "Matthews correlation"));
    int32_t k = 0;
    for (long i = 0; i < n; i++) {
        if (pred[i] < 0 || gold[i] < 0)
            return FLAVA_ERROR(FLAVA_ERR_ARG, "Matthews correlation: example %ld has prediction "
                               "%d and label %d, expected class ids >= 0", i, pred[i], gold[i]);
        k = pred[i] >= k ? pred[i] + 1 : k;
        k = gold[i] >= k ? gold[i] + 1 : k;
    }
    double *t = calloc(2 * (size_t)k, sizeof(double)); /* true and predicted counts per class */
    if (!t)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "Matthews correlation: %d classes", k);
    double *p = t + k, correct = 0;
    for (long i = 0; i < n; i++) {
        t[gold[i]]++;
        p[pred[i]]++;
        correct += pred[i] == gold[i];
    }
    double s = (double)n, tp = 0, pp = 0, tt = 0;
    for (int32_t c = 0; c < k; c++) {
        tp += t[c] * p[c];
        pp += p[c] * p[c];
        tt += t[c] * t[c];
    }
    free(t);
    double cov_tp = correct * s - tp, cov_pp = s * s - pp, cov_tt = s * s - tt;
    *out = cov_pp * cov_tt == 0 ? 0.0 : cov_tp / sqrt(cov_tt * cov_pp);
    return FLAVA_OK;
}

static double pearson(const double *x, const double *y, long n)
{
    double mx = 0, my = 0;
    for (long i = 0; i < n; i++) {
        mx += x[i];
        my += y[i];
    }
    mx /= n;
    my /= n;
    double sxy = 0, sxx = 0, syy = 0;
    for (long i = 0; i < n; i++) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
        syy += (y[i] - my) * (y[i] - my);
    }
    if (sxx == 0 || syy == 0)
        return NAN;
    double r = sxy / sqrt(sxx * syy);
    return r > 1 ? 1 : r < -1 ? -1 : r;
}

/* Copies n floats into doubles, or ranks them (1-based, ties averaged). */
typedef struct ranked_value {
    float v;
    long i;
} ranked_value;

static int by_value(const void *a, const void *b)
{
    const ranked_value *x = a, *y = b;
    return (x->v > y->v) - (x->v < y->v);
}

static flava_status to_double(double *out, const float *v, long n, int ranked)
{
    if (!ranked) {
        for (long i = 0; i < n; i++)
            out[i] = v[i];
        return FLAVA_OK;
    }
    ranked_value *r = malloc(sizeof(ranked_value) * n);
    if (!r)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "ranking %ld values", n);
    for (long i = 0; i < n; i++)
        r[i] = (ranked_value){v[i], i};
    qsort(r, n, sizeof *r, by_value);
    for (long i = 0; i < n;) {
        long j = i + 1;
        while (j < n && r[j].v == r[i].v)
            j++;
        double avg = (i + 1 + j) / 2.0; /* mean of ranks i+1 .. j */
        for (long m = i; m < j; m++)
            out[r[m].i] = avg;
        i = j;
    }
    free(r);
    return FLAVA_OK;
}

static flava_status correlation(double *out, const float *x, const float *y, long n, int ranked)
{
    FLAVA_TRY(check_n(n, ranked ? "Spearman correlation" : "Pearson correlation"));
    for (long i = 0; i < n; i++)
        if (!isfinite(x[i]) || !isfinite(y[i]))
            return FLAVA_ERROR(FLAVA_ERR_NUMERIC, "correlation: example %ld has %g and %g, "
                               "expected finite values", i, x[i], y[i]);
    double *d = malloc(sizeof(double) * 2 * n);
    if (!d)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "correlation of %ld values", n);
    flava_status s = to_double(d, x, n, ranked);
    if (s == FLAVA_OK)
        s = to_double(d + n, y, n, ranked);
    if (s == FLAVA_OK)
        *out = pearson(d, d + n, n);
    free(d);
    return s;
}

flava_status flava_metric_pearson(double *out, const float *x, const float *y, long n)
{
    return correlation(out, x, y, n, 0);
}

flava_status flava_metric_spearman(double *out, const float *x, const float *y, long n)
{
    return correlation(out, x, y, n, 1);
}

/* loss.c - cross-entropy, binary cross-entropy with logits, mean squared
 * error. Each loss is a sum over rows or elements taken in a fixed number of
 * blocks (in double), each block summed in order and the blocks added in
 * order, so the value does not depend on the thread count. */
#include "ops.h"

#include <math.h>

enum { LOSS_BLOCKS = 64 };
static const int32_t IGNORE_LABEL = -100;

/* sum of term(i, p) over i in [0, n), the same bits for any thread count */
static double blocked_sum(int64_t n, double (*term)(int64_t i, const void *p), const void *p)
{
    double part[LOSS_BLOCKS];
#pragma omp parallel for schedule(static)
    for (int b = 0; b < LOSS_BLOCKS; b++) {
        double s = 0;
        for (int64_t i = n * b / LOSS_BLOCKS; i < n * (b + 1) / LOSS_BLOCKS; i++)
            s += term(i, p);
        part[b] = s;
    }
    double s = 0;
    for (int b = 0; b < LOSS_BLOCKS; b++)
        s += part[b];
    return s;
}

/* Rows whose label counts; a label neither -100 nor in [0,V) is an error. */
static flava_status count_labels(int *count, const int32_t *labels, int N, int V)
{
    int k = 0;
    for (int n = 0; n < N; n++) {
        if (labels[n] == IGNORE_LABEL)
            continue;
        if (labels[n] < 0 || labels[n] >= V)
            return FLAVA_ERROR(FLAVA_ERR_ARG,
                               "cross-entropy: label %d of row %d is neither -100 nor in [0, %d)",
                               labels[n], n, V);
        k++;
    }
    *count = k;
    return FLAVA_OK;
}

typedef struct ce_args {
    float *probs;
    const float *logits;
    const int32_t *labels;
    int V;
} ce_args;

/* Writes row i's softmax; returns its loss (0 if ignored). */
static double ce_row(int64_t i, const void *p)
{
    const ce_args *a = p;
    const float *x = a->logits + i * a->V;
    float *pr = a->probs + i * a->V;
    float mx = x[0];
    for (int v = 1; v < a->V; v++)
        mx = x[v] > mx ? x[v] : mx;
    double z = 0;
    for (int v = 0; v < a->V; v++) {
        float e = expf(x[v] - mx);
        pr[v] = e;
        z += e;
    }
    float inv = (float)(1.0 / z);
    for (int v = 0; v < a->V; v++)
        pr[v] *= inv;
    /* -log softmax = log-sum-exp - logit, never the log of an underflowed 0 */
    return a->labels[i] == IGNORE_LABEL ? 0.0 : log(z) + mx - x[a->labels[i]];
}

flava_status cross_entropy_forward(float *loss, int *count, float *probs, const float *logits,
                                   const int32_t *labels, int N, int V)
{
    FLAVA_TRY(count_labels(count, labels, N, V));
    ce_args a = {probs, logits, labels, V};
    double s = blocked_sum(N, ce_row, &a);
    *loss = *count ? (float)(s / *count) : 0.0f;
    return FLAVA_OK;
}

flava_status cross_entropy_backward(float *dlogits, float dloss, const float *probs,
                                    const int32_t *labels, int N, int V)
{
    int count;
    FLAVA_TRY(count_labels(&count, labels, N, V));
    if (count == 0)
        return FLAVA_OK;
    float scale = dloss / (float)count;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        if (labels[n] == IGNORE_LABEL)
            continue;
        const float *p = probs + (size_t)n * V;
        float *d = dlogits + (size_t)n * V;
        for (int v = 0; v < V; v++)
            d[v] += scale * p[v];
        d[labels[n]] -= scale;
    }
    return FLAVA_OK;
}

typedef struct pair_args {
    const float *x, *t;
} pair_args;

static double bce_term(int64_t i, const void *p)
{
    const pair_args *a = p;
    double x = a->x[i];
    /* max(x,0) - x t + log(1 + e^-|x|): no overflow for any x */
    return (x > 0 ? x : 0) - x * a->t[i] + log1p(exp(-fabs(x)));
}

flava_status bce_logits_forward(float *loss, const float *logits, const float *targets,
                                int N, int V)
{
    int64_t total = (int64_t)N * V;
    pair_args a = {logits, targets};
    *loss = total ? (float)(blocked_sum(total, bce_term, &a) / (double)total) : 0.0f;
    return FLAVA_OK;
}

flava_status bce_logits_backward(float *dlogits, float dloss, const float *logits,
                                 const float *targets, int N, int V)
{
    int64_t total = (int64_t)N * V;
    if (total == 0)
        return FLAVA_OK;
    float scale = (float)(dloss / (double)total);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < total; i++) {
        float x = logits[i];
        float e = expf(-fabsf(x));
        float sig = x >= 0 ? 1.0f / (1.0f + e) : e / (1.0f + e);
        dlogits[i] += scale * (sig - targets[i]);
    }
    return FLAVA_OK;
}

static double mse_term(int64_t i, const void *p)
{
    const pair_args *a = p;
    double d = (double)a->x[i] - a->t[i];
    return d * d;
}

flava_status mse_forward(float *loss, const float *pred, const float *target, int64_t n)
{
    pair_args a = {pred, target};
    *loss = n ? (float)(blocked_sum(n, mse_term, &a) / (double)n) : 0.0f;
    return FLAVA_OK;
}

flava_status mse_backward(float *dpred, float dloss, const float *pred, const float *target,
                          int64_t n)
{
    if (n == 0)
        return FLAVA_OK;
    float scale = (float)(2.0 * dloss / (double)n);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++)
        dpred[i] += scale * (pred[i] - target[i]);
    return FLAVA_OK;
}

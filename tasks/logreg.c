/* logreg.c - L-BFGS on the multinomial logistic-regression objective. The
 * two GEMM-shaped products (logits = X·Wᵀ and its gradient Gᵀ·X) go through
 * linear_forward/linear_backward; the optimiser's vectors are double. */
#include "logreg.h"

#include <math.h>
#include <string.h>

#include "ops.h"

enum { HISTORY = 10 };

struct problem {
    flava_ctx *ctx;
    const float *X;
    const int32_t *y;
    int N, D, K;
    double C;
    float *W, *b;      /* float copies of theta for the GEMMs */
    float *logits;     /* [N,K], then P - onehot */
    float *gW, *gb;    /* float gradient of the data term */
    double *row_ce;    /* [N], summed in order so the result is bit-reproducible */
};

/* f(theta) and its gradient; theta = [W (K*D) | b (K)]. */
static flava_status evaluate(struct problem *p, const double *theta, double *grad, double *f)
{
    const int KD = p->K * p->D;
    for (int i = 0; i < KD; i++)
        p->W[i] = (float)theta[i];
    for (int k = 0; k < p->K; k++)
        p->b[k] = (float)theta[KD + k];
    FLAVA_TRY(linear_forward(p->ctx, p->logits, p->X, p->W, p->b, p->N, p->D, p->K));
#pragma omp parallel for
    for (int n = 0; n < p->N; n++) {
        float *row = p->logits + (size_t)n * p->K;
        double mx = row[0], sum = 0;
        for (int k = 1; k < p->K; k++)
            mx = row[k] > mx ? row[k] : mx;
        for (int k = 0; k < p->K; k++)
            sum += exp(row[k] - mx);
        p->row_ce[n] = log(sum) + mx - row[p->y[n]];
        for (int k = 0; k < p->K; k++)
            row[k] = (float)(exp(row[k] - mx) / sum - (k == p->y[n]));
    }
    double ce = 0;
    for (int n = 0; n < p->N; n++)
        ce += p->row_ce[n];
    memset(p->gW, 0, sizeof(float) * (size_t)KD);
    memset(p->gb, 0, sizeof(float) * (size_t)p->K);
    FLAVA_TRY(linear_backward(p->ctx, NULL, p->gW, p->gb, p->logits, p->X, p->W, p->N, p->D, p->K));
    double reg = 0;
    for (int i = 0; i < KD; i++) {
        reg += theta[i] * theta[i];
        grad[i] = theta[i] + p->C * p->gW[i];
    }
    for (int k = 0; k < p->K; k++)
        grad[KD + k] = p->C * p->gb[k];
    *f = 0.5 * reg + p->C * ce;
    return FLAVA_OK;
}

static double dot(const double *a, const double *b, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static double max_abs(const double *a, int n)
{
    double m = 0;
    for (int i = 0; i < n; i++)
        m = fabs(a[i]) > m ? fabs(a[i]) : m;
    return m;
}

/* The L-BFGS loop proper: theta is updated in place. */
static flava_status lbfgs(struct problem *p, double *theta, int n, int max_iter, double tol,
                          double *work, int *iterations, double *fval)
{
    double *g = work, *d = g + n, *theta_new = d + n, *g_new = theta_new + n;
    double *S = g_new + n, *Y = S + (size_t)HISTORY * n, rho[HISTORY], alpha[HISTORY];
    int stored = 0, head = 0, it = 0;
    double f;
    FLAVA_TRY(evaluate(p, theta, g, &f));
    for (; it < max_iter && max_abs(g, n) > tol; it++) {
        /* two-loop recursion: d = -H g */
        for (int i = 0; i < n; i++)
            d[i] = -g[i];
        for (int j = 0; j < stored; j++) {
            int s = (head - 1 - j + HISTORY) % HISTORY;
            alpha[s] = rho[s] * dot(S + (size_t)s * n, d, n);
            for (int i = 0; i < n; i++)
                d[i] -= alpha[s] * Y[(size_t)s * n + i];
        }
        if (stored > 0) {
            int last = (head - 1 + HISTORY) % HISTORY;
            double gamma = dot(S + (size_t)last * n, Y + (size_t)last * n, n) /
                           dot(Y + (size_t)last * n, Y + (size_t)last * n, n);
            for (int i = 0; i < n; i++)
                d[i] *= gamma;
        }
        for (int j = stored - 1; j >= 0; j--) {
            int s = (head - 1 - j + HISTORY) % HISTORY;
            double beta = rho[s] * dot(Y + (size_t)s * n, d, n);
            for (int i = 0; i < n; i++)
                d[i] += (alpha[s] - beta) * S[(size_t)s * n + i];
        }
        double slope = dot(g, d, n);
        if (slope >= 0) { /* not a descent direction: restart from steepest descent */
            for (int i = 0; i < n; i++)
                d[i] = -g[i];
            slope = dot(g, d, n);
            stored = 0;
        }
        /* backtracking line search with the Armijo condition */
        double step = stored == 0 ? fmin(1.0, 1.0 / sqrt(-slope)) : 1.0, f_new = f;
        int accepted = 0;
        for (int ls = 0; ls < 40; ls++, step *= 0.5) {
            for (int i = 0; i < n; i++)
                theta_new[i] = theta[i] + step * d[i];
            FLAVA_TRY(evaluate(p, theta_new, g_new, &f_new));
            if (f_new <= f + 1e-4 * step * slope) {
                accepted = 1;
                break;
            }
        }
        if (!accepted)
            break; /* no decrease possible at float precision: converged as far as it goes */
        double *s_vec = S + (size_t)head * n, *y_vec = Y + (size_t)head * n;
        for (int i = 0; i < n; i++) {
            s_vec[i] = theta_new[i] - theta[i];
            y_vec[i] = g_new[i] - g[i];
        }
        double sy = dot(s_vec, y_vec, n);
        if (sy > 1e-12) { /* keep only pairs with positive curvature */
            rho[head] = 1.0 / sy;
            head = (head + 1) % HISTORY;
            stored = stored < HISTORY ? stored + 1 : HISTORY;
        }
        memcpy(theta, theta_new, sizeof(double) * (size_t)n);
        memcpy(g, g_new, sizeof(double) * (size_t)n);
        f = f_new;
    }
    *iterations = it;
    *fval = f;
    return FLAVA_OK;
}

flava_status flava_logreg_fit(flava_ctx *ctx, flava_logreg *model, const float *X,
                              const int32_t *y, int N, int D, int K, double C, int max_iter,
                              double tol)
{
    memset(model, 0, sizeof *model);
    if (N <= 0 || D <= 0 || K < 2 || !(C > 0))
        return FLAVA_ERROR(FLAVA_ERR_ARG,
                           "logistic regression needs samples, features, 2+ classes and C > 0 "
                           "(got N=%d D=%d K=%d C=%g)", N, D, K, C);
    for (int i = 0; i < N; i++)
        if (y[i] < 0 || y[i] >= K)
            return FLAVA_ERROR(FLAVA_ERR_ARG, "label %d of sample %d is outside [0, %d)", y[i], i, K);
    const int n = K * D + K;
    struct problem p = {.ctx = ctx, .X = X, .y = y, .N = N, .D = D, .K = K, .C = C};
    double *theta = NULL, *work = NULL;
    flava_status s;
    if ((s = flava_alloc((void **)&theta, sizeof(double) * (size_t)n, "logreg parameters")) ||
        (s = flava_alloc((void **)&work, sizeof(double) * (size_t)n * (4 + 2 * HISTORY), "L-BFGS history")) ||
        (s = flava_alloc((void **)&p.W, sizeof(float) * (size_t)K * D, "logreg weights")) ||
        (s = flava_alloc((void **)&p.b, sizeof(float) * (size_t)K, "logreg bias")) ||
        (s = flava_alloc((void **)&p.logits, sizeof(float) * (size_t)N * K, "logreg logits")) ||
        (s = flava_alloc((void **)&p.gW, sizeof(float) * (size_t)K * D, "logreg gradient")) ||
        (s = flava_alloc((void **)&p.gb, sizeof(float) * (size_t)K, "logreg bias gradient")) ||
        (s = flava_alloc((void **)&p.row_ce, sizeof(double) * (size_t)N, "logreg losses")))
        goto done;
    s = lbfgs(&p, theta, n, max_iter, tol, work, &model->iterations, &model->objective);
    if (s != FLAVA_OK)
        goto done;
    model->D = D;
    model->K = K;
    for (int i = 0; i < K * D; i++)
        p.W[i] = (float)theta[i];
    for (int k = 0; k < K; k++)
        p.b[k] = (float)theta[K * D + k];
    model->W = p.W;
    model->b = p.b;
    p.W = p.b = NULL;
done:
    flava_free(theta);
    flava_free(work);
    flava_free(p.W);
    flava_free(p.b);
    flava_free(p.logits);
    flava_free(p.gW);
    flava_free(p.gb);
    flava_free(p.row_ce);
    return s;
}

flava_status flava_logreg_predict(flava_ctx *ctx, int32_t *pred, float *probs,
                                  const flava_logreg *model, const float *X, int N)
{
    const int K = model->K;
    float *logits;
    FLAVA_TRY(flava_alloc((void **)&logits, sizeof(float) * (size_t)N * K, "logreg logits"));
    flava_status s = linear_forward(ctx, logits, X, model->W, model->b, N, model->D, K);
    if (s == FLAVA_OK) {
#pragma omp parallel for
        for (int n = 0; n < N; n++) {
            const float *row = logits + (size_t)n * K;
            int best = 0;
            for (int k = 1; k < K; k++)
                best = row[k] > row[best] ? k : best;
            pred[n] = best;
            if (probs) {
                double sum = 0;
                for (int k = 0; k < K; k++)
                    sum += exp((double)row[k] - row[best]);
                for (int k = 0; k < K; k++)
                    probs[(size_t)n * K + k] = (float)(exp((double)row[k] - row[best]) / sum);
            }
        }
    }
    flava_free(logits);
    return s;
}

void flava_logreg_free(flava_logreg *model)
{
    flava_free(model->W);
    flava_free(model->b);
    model->W = model->b = NULL;
}

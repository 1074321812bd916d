/* logreg.h - multinomial logistic regression with an L2 penalty, fitted by
 * L-BFGS: the solver behind the linear probe. The objective is
 * scikit-learn's LogisticRegression(penalty="l2", multi_class="multinomial"):
 *     0.5 * ||W||^2 + C * sum_i CE(softmax(W x_i + b), y_i)
 * (the bias is not penalised), so results can be checked against it. */
#ifndef FLAVA_LOGREG_H
#define FLAVA_LOGREG_H

#include <stdint.h>

#include "ctx.h"
#include "status.h"

typedef struct flava_logreg {
    int D, K;
    float *W; /* [K, D] */
    float *b; /* [K] */
    int iterations;   /* L-BFGS iterations the fit took */
    double objective; /* final value of the objective */
} flava_logreg;

/* Fits on X[N,D] with labels y[N] in [0,K). `C` is the inverse penalty.
 * Stops when the gradient's max-norm falls below tol or after max_iter. */
flava_status flava_logreg_fit(flava_ctx *ctx, flava_logreg *model, const float *X,
                              const int32_t *y, int N, int D, int K, double C, int max_iter,
                              double tol);
/* pred[N] = argmax class; probs[N,K] may be NULL. */
flava_status flava_logreg_predict(flava_ctx *ctx, int32_t *pred, float *probs,
                                  const flava_logreg *model, const float *X, int N);
void flava_logreg_free(flava_logreg *model);

#endif

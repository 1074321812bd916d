/* evalmath.h - the small numerical pieces of the evaluation tasks, kept
 * apart so that they are tested against double-precision references:
 * CLIP-style prompt ensembling, feature standardisation, top-k accuracy,
 * the log grid and the choice of the linear probe's C. */
#ifndef FLAVA_EVALMATH_H
#define FLAVA_EVALMATH_H

#include <stdint.h>

#include "status.h"

/* out[K,D]: for each class k, the mean over its T template embeddings
 * emb[k*T + t, D] after L2-normalising each, renormalised (CLIP's
 * zero-shot classifier). A zero mean stays zero. */
flava_status flava_ensemble_templates(float *out, const float *emb, int K, int T, int D);

/* mean[D] and std[D] of X[N,D] (population std; a constant feature gets
 * std 1, so that it maps to 0 rather than to NaN). */
flava_status flava_standardize_fit(float *mean, float *std, const float *X, long N, int D);
/* X[N,D] = (X - mean) / std in place. */
void flava_standardize_apply(float *X, const float *mean, const float *std, long N, int D);

/* Share of rows of scores[N,K] whose label is among the k highest scores;
 * ties count against the row (the label ranks below equal scores). */
double flava_topk_accuracy(const float *scores, const int32_t *labels, long N, int K, int k);

/* out[n]: n values from lo to hi evenly spaced in log10 (n >= 2; lo, hi > 0). */
flava_status flava_log_grid(double *out, int n, double lo, double hi);

/* The index of the largest of x[n] (ties: the first): a classifier's
 * prediction from its logits. */
int flava_argmax_f32(const float *x, int n);

/* The index of the largest value; ties go to the first (the smallest C on
 * an increasing grid: the stronger penalty). NaN never wins. -1 if none. */
int flava_argmax_first(const double *values, int n);

#endif

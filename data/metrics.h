/* metrics.h - the official GLUE metrics, computed in double precision with
 * the conventions of scikit-learn and scipy. */
#ifndef FLAVA_DATA_METRICS_H
#define FLAVA_DATA_METRICS_H

#include <stdint.h>

#include "status.h"

/* Fraction of i with pred[i] == gold[i]. */
flava_status flava_metric_accuracy(double *out, const int32_t *pred, const int32_t *gold, long n);
/* F1 of class 1 (sklearn f1_score, binary; 0 when there are no positives
 * predicted or true). Labels must be 0 or 1. */
flava_status flava_metric_f1(double *out, const int32_t *pred, const int32_t *gold, long n);
/* Matthews correlation (sklearn matthews_corrcoef, multiclass form; 0 when
 * either side is constant). Labels must be >= 0. */
flava_status flava_metric_matthews(double *out, const int32_t *pred, const int32_t *gold, long n);
/* Pearson r (scipy.stats.pearsonr; NaN when either side is constant). */
flava_status flava_metric_pearson(double *out, const float *x, const float *y, long n);
/* Spearman rho: Pearson r of the ranks, ties given their average rank
 * (scipy.stats.spearmanr). */
flava_status flava_metric_spearman(double *out, const float *x, const float *y, long n);

#endif

/* optim.h - the optimizer over flat arrays (llm.c style): AdamW as
 * torch.optim.AdamW, global-norm gradient clipping as
 * torch.nn.utils.clip_grad_norm_, and the learning-rate schedule (linear
 * warmup, cosine decay) of HF's get_cosine_schedule_with_warmup.
 *
 * Parameters, gradients and the two moments are each one contiguous block
 * of n floats laid out by the same table; the caller owns them (they go to
 * the optimizer checkpoint). Nothing here allocates. */
#ifndef FLAVA_OPTIM_H
#define FLAVA_OPTIM_H

#include <stdint.h>

#include "params.h"
#include "status.h"

typedef struct flava_adamw_config {
    double beta1, beta2, eps, weight_decay;
} flava_adamw_config;

/* torch.optim.AdamW's defaults. */
#define FLAVA_ADAMW_DEFAULTS ((flava_adamw_config){0.9, 0.999, 1e-8, 0.01})

/* A run of parameters [offset, offset + count) of the flat block. */
typedef struct flava_param_range {
    int64_t offset, count;
} flava_param_range;

/* The table's no_decay entries as sorted runs, adjacent ones merged:
 * *ranges (malloc'ed, free()) and their count *n. */
flava_status flava_adamw_no_decay(flava_param_range **ranges, int *n, const flava_param_table *t);

/* One AdamW step: `step` is this step's 1-based number (t of the bias
 * corrections), lr its learning rate. Elements inside the no_decay ranges
 * (sorted, disjoint: biases, LayerNorm weights...) get no weight decay,
 * the others p -= lr*wd*p before the Adam update. m and v start at zero. */
flava_status flava_adamw_step(float *params, float *m, float *v, const float *grads,
                              const flava_param_range *no_decay, int n_no_decay, int64_t n,
                              double lr, int64_t step, const flava_adamw_config *cfg);

/* Global L2 norm of grads[n] (in double, the same bits for any number of
 * threads) into *norm; if max_norm/(norm + 1e-6) < 1 the gradients are
 * scaled by it, as clip_grad_norm_ does. A non-finite norm leaves the
 * gradients alone and returns FLAVA_ERR_NUMERIC. */
flava_status flava_grad_clip_norm(double *norm, float *grads, int64_t n, double max_norm);

/* Learning rate of step `step` (0-based: the number of steps already
 * taken): lr_max*step/warmup during the warmup, then a half cosine from
 * lr_max down to lr_min at step `total`, lr_min after that. */
double flava_lr_cosine(int64_t step, int64_t warmup, int64_t total, double lr_max, double lr_min);

#endif

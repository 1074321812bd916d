/* taskutil.h - what the eval and fine-tune tasks share: the model and the
 * tokenizer of a run, per-sample features after an inference forward, and
 * the fine-tuning driver (a train loader for flava_train, an evaluation
 * pass over a labelled split that both `finetune` and `eval` use). */
#ifndef FLAVA_TASKUTIL_H
#define FLAVA_TASKUTIL_H

#include <stdint.h>

#include "loader.h"
#include "model.h"
#include "status.h"
#include "task.h"
#include "tokenizer.h"
#include "train.h"

/* The model of an eval run: [model] checkpoint is required; heads hs (all
 * off: the base model). With partial, checkpoint keys the model does not
 * have are skipped (a pretraining checkpoint's heads); without it the
 * checkpoint must hold exactly the model's keys, so a checkpoint without
 * the task's head is refused by name. */
flava_status flava_task_eval_model(flava_model **m, flava_run *run, const flava_head_set *hs,
                                   int partial);

/* Loads the tokenizer at path for model m (its pieces must fit the model's
 * text vocabulary) and the loader's text encoder over it. */
flava_status flava_task_tokenizer(flava_tokenizer **tok, flava_text_encoder *enc, const char *path,
                                  const flava_model *m);

/* The non-empty lines of a text file (trailing CR/LF removed): *lines[*n],
 * each and the array malloc'ed (flava_task_free_lines). An empty file is an
 * error. */
flava_status flava_task_read_lines(char ***lines, long *n, const char *path);
void flava_task_free_lines(char **lines, long n);

typedef enum flava_feature {
    FLAVA_FEATURE_IMAGE_EMBED, /* image_projection(CLS), L2-normalised (contrastive) */
    FLAVA_FEATURE_TEXT_EMBED,  /* text_projection(CLS), L2-normalised */
    FLAVA_FEATURE_IMAGE_CLS,   /* final (post-LN) image CLS state */
    FLAVA_FEATURE_IMAGE_POOLED /* image pooler output */
} flava_feature;

int flava_task_feature_dim(const flava_model *m, flava_feature f);

/* Features out[b->B, dim] of one batch after an inference forward of m;
 * scratch holds b->B * (hidden + projection_dim + 1) floats. */
flava_status flava_task_batch_features(float *out, float *scratch, flava_ctx *ctx, flava_model *m,
                                       const flava_batch *b, flava_feature f);

/* Features of every sample of src, in order: *out [*n, dim], flava_alloc'ed
 * (free with flava_free). Text sources need enc and max_text_len. */
flava_status flava_task_features(float **out, long *n, flava_run *run, flava_model *m,
                                 const flava_loader_source *src, const flava_text_encoder *enc,
                                 int max_text_len, int batch_size, flava_feature f);

/* ---- fine-tuning ---- */

typedef struct flava_ft {
    flava_run *run;
    flava_model *m;
    flava_head_id head;  /* whose logits the evaluation reads */
    int batch_size, grad_accum, eval_batch_size;
    int image_size;      /* 0: no pixel_values */
    int max_text_len;    /* 0: no texts */
    const flava_text_encoder *enc;
    flava_loader_source train, eval;
    flava_loader *loader; /* of train, opened by seek */
    /* The evaluation: score() sees the logits [B, ncols] of eval samples
     * first .. first+B-1, then finish() gives the metrics. */
    void *self;
    flava_status (*score)(void *self, const float *logits, int ncols, long first, int B);
    flava_status (*finish)(void *self, const char **names, double *values, int *n);
} flava_ft;

/* The loop's view of ft (seek, next, evaluate). */
flava_train_task flava_ft_task(flava_ft *ft);
/* One evaluation pass of ft->m over ft->eval (what the eval command runs). */
flava_status flava_ft_evaluate(flava_ft *ft, const char **names, double *values, int *n);
void flava_ft_close(flava_ft *ft);

/* The model of a fine-tuning task, mc being the run's model config with the
 * task's head settings: `finetune` starts from model.checkpoint when set
 * (partial: the new head keeps its fresh init) with the head's [heads]
 * loss weight, `eval` needs a checkpoint holding the head. */
flava_status flava_ft_model(flava_model **m, flava_run *run, const flava_config *mc,
                            const char *checkpoint, flava_head_id head, int eval);

/* Runs ft to the end: `finetune` trains with [train] (evaluating at the
 * end) and `eval` evaluates once, batches of train.batch_size; then writes
 * results.json with `metric`. */
flava_status flava_ft_finish(flava_ft *ft, int eval, const char *task, const char *dataset,
                             const char *metric, double t0);

/* results.json with `metric` (one of names[n]) as the task's figure; an
 * unknown metric is a config error naming those available. */
flava_status flava_task_results(flava_run *run, const char *command, const char *task,
                                const char *dataset, const char *metric, const char **names,
                                const double *values, int n, double t0);

#endif

/* taskutil.h - what the eval and fine-tune tasks share: the model and the
 * tokenizer of a run, per-sample features after an inference forward, and
 * the fine-tuning driver (a train loader for flava_train, an evaluation
 * pass over a labelled split that both `finetune` and `eval` use). */
#ifndef FLAVA_TASKUTIL_H
#define FLAVA_TASKUTIL_H

#include <stdint.h>

#include "family.h"
#include "loader.h"
#include "model.h"
#include "status.h"
#include "task.h"
#include "tokenizer.h"
#include "train.h"

/* The model of an embedding evaluation (zero-shot, retrieval, linear
 * probe), of any family: [model] checkpoint is required; checkpoint keys
 * the model does not have (a pretraining checkpoint's heads) are skipped. */
flava_status flava_task_eval_model(flava_family_model *fm, flava_run *run);

/* Loads the tokenizer at path for a model whose text vocabulary has
 * vocab_size pieces (the tokenizer's must fit) and the loader's text
 * encoder over it. */
flava_status flava_task_tokenizer(flava_tokenizer **tok, flava_text_encoder *enc, const char *path,
                                  int vocab_size);

/* The loader options of an evaluation pass over a model's images: its
 * pixel_values side and its family's preprocessing (in *spec, which must
 * outlive the loader). */
flava_loader_opts flava_task_eval_opts(flava_image_spec *spec, const flava_run *run,
                                       const flava_family_model *fm, int batch_size,
                                       int max_text_len);

/* The non-empty lines of a text file (trailing CR/LF removed): *lines[*n],
 * each and the array malloc'ed (flava_task_free_lines). An empty file is an
 * error. */
flava_status flava_task_read_lines(char ***lines, long *n, const char *path);
void flava_task_free_lines(char **lines, long n);

/* The image tower's features are the family's own kinds (flava_image_feature,
 * passed on as they are); the contrastive embeddings come after them. */
typedef enum flava_feature {
    FLAVA_FEATURE_IMAGE_CLS = FLAVA_IMAGE_CLS,       /* last_hidden_state[:, 0] */
    FLAVA_FEATURE_IMAGE_POOLED = FLAVA_IMAGE_POOLED, /* pooler_output */
    FLAVA_FEATURE_IMAGE_MEAN = FLAVA_IMAGE_MEAN,     /* last_hidden_state[:, 1:] averaged */
    FLAVA_FEATURE_IMAGE_EMBED, /* the family's image embedding, L2-normalised (contrastive) */
    FLAVA_FEATURE_TEXT_EMBED   /* its text embedding, L2-normalised */
} flava_feature;

int flava_task_feature_dim(const flava_family_model *fm, flava_feature f);

/* Features out[b->B, dim] of one batch, inference mode. */
flava_status flava_task_batch_features(float *out, flava_ctx *ctx, flava_family_model *fm,
                                       const flava_batch *b, flava_feature f);

/* Features of every sample of src, in order: *out [*n, dim], flava_alloc'ed
 * (free with flava_free). Text sources need enc and max_text_len. */
flava_status flava_task_features(float **out, long *n, flava_run *run, flava_family_model *fm,
                                 const flava_loader_source *src, const flava_text_encoder *enc,
                                 int max_text_len, int batch_size, flava_feature f);

/* ---- fine-tuning ---- */

typedef struct flava_ft {
    flava_run *run;
    flava_family_model *fm; /* the model being trained or evaluated */
    flava_head_id head;  /* whose logits the evaluation reads */
    int batch_size, grad_accum, eval_batch_size;
    int image_size;      /* 0: no pixel_values */
    int max_text_len;    /* 0: no texts */
    const flava_text_encoder *enc;
    flava_loader_source train, eval;
    flava_loader *loader; /* of train, opened by seek */
    flava_image_spec spec; /* the family's preprocessing (flava_ft_finish sets it) */
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

/* The model of a classification fine-tune (num_labels classes, 1: a
 * regression) on the features named by input ("image" or "text") for
 * model.family: FLAVA's classify head (flava_ft_model), or the dual
 * encoders' classifier (family.h). `eval` needs a checkpoint whose
 * classifier has these labels on this input. Free with
 * flava_family_destroy. */
flava_status flava_ft_classifier(flava_family_model *fm, flava_run *run, const char *input,
                                 int num_labels, int eval);

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

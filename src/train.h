/* train.h - the training loop that pretraining and every fine-tune task
 * share, and the parts of a run every task needs: the [train] keys, the
 * model of a run ([model] keys or a checkpoint), checkpoints and --resume.
 *
 * A task says only what is its own: where batches come from (a function of
 * the step, so a resumed run sees the same data), which heads it trains,
 * and, optionally, an evaluation. The loop does the rest: AdamW with linear
 * warmup and cosine decay, gradient accumulation and clipping, metrics
 * (loss, loss_info.<head>, lr, grad_norm, samples/s) every log_every steps,
 * evaluation every eval_every steps and at the end, a checkpoint
 * (RUN_DIR/checkpoints/step-N.safetensors + step-N.optim.safetensors)
 * every save_every steps, at the end (also as final.safetensors) and on
 * Ctrl-C, and a stop naming the step and the head when a loss is not
 * finite. Nothing is allocated inside the step loop.
 *
 * A fine-tune task's run(), in outline (tasks/pretrain.c is the full case):
 *   flava_train_config_read(&tc, run->cfg);
 *   flava_train_model_config(&mc, &ckpt, run);  mc.num_labels = ...;
 *   flava_train_heads(&hs, run->cfg, (flava_head_id[]){FLAVA_HEAD_CLASSIFY}, 1);
 *   flava_train_model_create(&m, run, &mc, &hs, ckpt, 1);
 *   flava_train(run, m, &tc, &(flava_train_task){self, seek, next, evaluate}, &res);
 *   flava_results_write(run->run_dir, ..., res.eval_names, res.eval_values, res.n_eval, ...);
 * where seek opens its loader at first_batch = step * tc.grad_accum and
 * next takes the loader's next batch. */
#ifndef FLAVA_TRAIN_H
#define FLAVA_TRAIN_H

#include <stdint.h>

#include "batch.h"
#include "cfg.h"
#include "family.h"
#include "model.h"
#include "optim.h"
#include "status.h"
#include "task.h"

typedef struct flava_train_config {
    int64_t steps, stop_after;
    int batch_size, grad_accum;
    double lr, min_lr, max_grad_norm;
    int64_t warmup_steps, eval_every, save_every, log_every;
    flava_adamw_config adamw;
} flava_train_config;

/* The common keys of `flava pretrain|finetune|eval`: [run], [model]
 * (family, checkpoint, and any HF config key of the family), [train],
 * [heads]. */
flava_status flava_train_register_keys(flava_cfg *cfg);
flava_status flava_train_config_read(flava_train_config *tc, flava_cfg *cfg);

/* The head weights of [heads] for the heads a task may use (ids[n]): a
 * head is enabled when its weight is not 0. */
flava_status flava_train_heads(flava_head_set *hs, flava_cfg *cfg, const flava_head_id *ids,
                               int n);

/* The model configuration of a run: the [model] checkpoint's (file or HF
 * folder) when it is set, HF's defaults otherwise, then the [model] keys
 * on top. *checkpoint is the path or NULL. */
flava_status flava_train_model_config(flava_config *mc, const char **checkpoint, flava_run *run);
/* Creates the model for mc and heads, initialised from the run's seed,
 * with the checkpoint's weights when there is one (partial: heads absent
 * from it keep their initial values). */
flava_status flava_train_model_create(flava_model **m, flava_run *run, const flava_config *mc,
                                      const flava_head_set *heads, const char *checkpoint,
                                      int partial);

/* The model family of a run: model.family, or the checkpoint's when that
 * is not set (a mismatch is an error); flava without either. */
flava_status flava_train_family(const flava_family_ops **ops, flava_run *run);
/* The model of a run for any family: model.family's config (the
 * checkpoint's when set, HF's defaults otherwise) with the [model] keys on
 * top, initialised from the run's seed, the checkpoint's weights loaded
 * (partial as in flava_train_model_create). heads: FLAVA's (NULL: its
 * pretraining heads). need_checkpoint: an evaluation, which refuses a run
 * without model.checkpoint. */
flava_status flava_train_family_create(flava_family_model *fm, flava_run *run,
                                       const flava_head_set *heads, int partial,
                                       int need_checkpoint);
/* The same with a task's own config settings (extra, may be NULL) after
 * the [model] keys: a fine-tune's num_labels and classifier_input. */
flava_status flava_train_family_create_with(flava_family_model *fm, flava_run *run,
                                            const flava_head_set *heads, int partial,
                                            int need_checkpoint,
                                            const flava_family_overrides *extra);

/* What a task gives the loop. */
typedef struct flava_train_task {
    void *self;
    /* Positions the data so that the next batch is the first of `step`
     * (0 on a fresh run, the checkpoint's step on --resume). */
    flava_status (*seek)(void *self, int64_t step);
    /* The batch of micro-batch `micro` of step `step` (0-based), valid
     * until the next call. */
    flava_status (*next)(void *self, const flava_batch **b, int64_t step, int micro);
    /* Optional: evaluates m after `step` steps into at most
     * FLAVA_TRAIN_MAX_METRICS named values (*n of them). */
    flava_status (*evaluate)(void *self, flava_family_model *m, int64_t step,
                             const char **names, double *values, int *n);
} flava_train_task;

enum { FLAVA_TRAIN_MAX_METRICS = 16 };

/* What a run ends with: the mean losses of its last log window, the
 * throughput and the last evaluation. */
typedef struct flava_train_result {
    int64_t steps;
    double loss, samples_per_s;
    double head_loss[FLAVA_NUM_HEADS]; /* NAN for heads that did not run */
    int n_eval;
    const char *eval_names[FLAVA_TRAIN_MAX_METRICS];
    double eval_values[FLAVA_TRAIN_MAX_METRICS];
} flava_train_result;

/* Trains m, a model of any family (gradients and moments allocated here),
 * for tc->steps steps: AdamW over m's table (no decay on its no_decay
 * entries), the family's after_step (CLIP's logit_scale clamp) after each
 * step; continuing from the newest checkpoint of the run directory when
 * run->resume is set. With run->bench_steps it only times that many steps
 * (after a warm-up step) and prints them (flava bench). */
flava_status flava_train(flava_run *run, flava_family_model *m, const flava_train_config *tc,
                         const flava_train_task *task, flava_train_result *res);

/* The newest checkpoints/step-N with its optimizer file in run_dir: *step
 * = N (0 and FLAVA_OK when there is none). */
flava_status flava_train_latest(const char *run_dir, int64_t *step);

#endif

/* glue.c - GLUE tasks (and corpora in a GLUE layout, such as the spam mails
 * in SST-2's): `flava finetune` trains the classifier head (MLP on the text
 * encoder's pooled CLS, or the CLIP and ALIGN text features, see
 * flava_ft_classifier; cross-entropy, or MSE for STS-B) from a pretrained
 * checkpoint on DIR/train.tsv; both it and `flava eval` (of a fine-tuned
 * checkpoint) score DIR/<eval_split>.tsv with the task's official metrics,
 * plus accuracy and F1 for two-class tasks, so that a GLUE-layout corpus
 * can report the metric its literature uses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glue.h"
#include "metrics.h"
#include "evalmath.h"
#include "taskutil.h"

static const flava_cfg_key glue_keys[] = {
    {"glue", "task", FLAVA_CFG_STRING, NULL,
     "cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte or wnli (the TSV layout)"},
    {"glue", "dir", FLAVA_CFG_STRING, NULL, "folder of the task's TSV files"},
    {"glue", "tokenizer", FLAVA_CFG_STRING, "", "WordPiece vocab.txt or SentencePiece .model"},
    {"glue", "train_split", FLAVA_CFG_STRING, "train", "finetune: the split trained on"},
    {"glue", "eval_split", FLAVA_CFG_STRING, "dev", "the split scored (it must have labels)"},
    {"glue", "max_text_len", FLAVA_CFG_INT, "128", "text positions per example"},
    {"glue", "metric", FLAVA_CFG_STRING, "",
     "the reported metric (empty: the task's first official metric; f1 or accuracy for any "
     "two-class task)"},
    {"glue", "limit", FLAVA_CFG_INT, "0", "first N evaluated examples only (0: all)"},
    {"glue", "dataset", FLAVA_CFG_STRING, "", "data set name in results.json (empty: the task)"},
};

typedef struct glue_task {
    flava_ft ft;
    flava_family_model m;
    flava_tokenizer *tok;
    flava_text_encoder enc;
    flava_glue_set train, test;
    const flava_glue_info *info;
    int32_t *pred;
    float *score;
    long n_scored;
} glue_task;

static flava_status glue_score_batch(void *self, const float *logits, int ncols, long first, int B)
{
    glue_task *g = self;
    const int want = g->info->num_labels ? g->info->num_labels : 1;
    if (ncols != want)
        return FLAVA_ERROR(FLAVA_ERR_SHAPE, "classifier logits have %d columns, %s needs %d",
                           ncols, g->info->name, want);
    for (int i = 0; i < B; i++) {
        const float *l = logits + (size_t)i * ncols;
        const int best = flava_argmax_f32(l, ncols);
        g->pred[first + i] = best;
        g->score[first + i] = l[0];
    }
    g->n_scored = first + B;
    return FLAVA_OK;
}

static flava_status glue_finish(void *self, const char **names, double *values, int *n)
{
    glue_task *g = self;
    flava_glue_set view = g->test;
    view.n = g->n_scored;
    double official[2];
    FLAVA_TRY(flava_glue_score(official, &view, g->pred, g->score));
    *n = 0;
    for (int i = 0; i < g->info->num_metrics; i++) {
        names[*n] = g->info->metrics[i];
        values[(*n)++] = official[i];
    }
    if (g->info->num_labels == 2) {
        double acc, f1;
        FLAVA_TRY(flava_metric_accuracy(&acc, g->pred, g->test.labels, view.n));
        FLAVA_TRY(flava_metric_f1(&f1, g->pred, g->test.labels, view.n));
        const char *extra[2] = {"accuracy", "f1"};
        const double ev[2] = {acc, f1};
        for (int k = 0; k < 2; k++) {
            int have = 0;
            for (int i = 0; i < *n; i++)
                have |= !strcmp(names[i], extra[k]);
            if (!have) {
                names[*n] = extra[k];
                values[(*n)++] = ev[k];
            }
        }
    }
    names[*n] = "examples";
    values[(*n)++] = (double)view.n;
    return FLAVA_OK;
}

static flava_status glue_inner(glue_task *g, flava_run *run, int eval, double t0)
{
    flava_cfg *cfg = run->cfg;
    const char *task_s, *dir, *tok, *train_split, *eval_split, *metric, *dataset;
    int64_t max_len, limit;
    FLAVA_TRY(flava_cfg_get_string(cfg, "glue", "task", &task_s));
    FLAVA_TRY(flava_cfg_get_string(cfg, "glue", "dir", &dir));
    FLAVA_TRY(flava_cfg_get_string(cfg, "glue", "tokenizer", &tok));
    FLAVA_TRY(flava_cfg_get_string(cfg, "glue", "train_split", &train_split));
    FLAVA_TRY(flava_cfg_get_string(cfg, "glue", "eval_split", &eval_split));
    FLAVA_TRY(flava_cfg_get_int(cfg, "glue", "max_text_len", &max_len));
    FLAVA_TRY(flava_cfg_get_string(cfg, "glue", "metric", &metric));
    FLAVA_TRY(flava_cfg_get_int(cfg, "glue", "limit", &limit));
    FLAVA_TRY(flava_cfg_get_string(cfg, "glue", "dataset", &dataset));
    flava_glue_task task;
    if (flava_glue_task_from_name(&task, task_s) != FLAVA_OK) {
        flava_error_context("%s: glue.task", flava_cfg_where(cfg, "glue", "task"));
        return FLAVA_ERR_CONFIG;
    }
    g->info = flava_glue_task_info(task);
    if (max_len < 2 || limit < 0)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "glue: max_text_len %lld >= 2 and limit %lld >= 0 "
                           "expected", (long long)max_len, (long long)limit);
    FLAVA_TRY(flava_glue_load(&g->test, task, dir, eval_split));
    if (!g->test.has_labels)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "glue.eval_split = '%s': %s/%s.tsv has no labels to "
                           "score against", eval_split, dir, eval_split);
    if (!eval)
        FLAVA_TRY(flava_glue_load(&g->train, task, dir, train_split));
    const long n_eval = limit && limit < g->test.n ? (long)limit : g->test.n;
    FLAVA_TRY(flava_alloc((void **)&g->pred, sizeof(int32_t) * (size_t)n_eval, "predictions"));
    FLAVA_TRY(flava_alloc((void **)&g->score, sizeof(float) * (size_t)n_eval, "predictions"));

    const int num_labels = g->info->num_labels ? g->info->num_labels : 1;
    if (flava_ft_classifier(&g->m, run, "text", num_labels, eval) != FLAVA_OK) {
        flava_error_context("glue task %s", g->info->name);
        return FLAVA_ERR_CONFIG;
    }
    if (max_len > g->m.max_text_len)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "glue.max_text_len %lld exceeds the model's "
                           "max_position_embeddings %d", (long long)max_len, g->m.max_text_len);
    FLAVA_TRY(flava_task_tokenizer(&g->tok, &g->enc, tok, g->m.vocab_size));
    if (!*metric)
        metric = g->info->metrics[0];
    flava_runlog_printf(&run->log, "glue %s: %ld train, %ld evaluated examples (%s)",
                        g->info->name, g->train.n, n_eval, eval_split);
    g->ft = (flava_ft){.run = run,
                       .fm = &g->m,
                       .head = FLAVA_HEAD_CLASSIFY,
                       .max_text_len = (int)max_len,
                       .enc = &g->enc,
                       .train = {.glue = &g->train},
                       .eval = {.n = n_eval, .glue = &g->test},
                       .self = g,
                       .score = glue_score_batch,
                       .finish = glue_finish};
    return flava_ft_finish(&g->ft, eval, "glue", *dataset ? dataset : g->info->name,
                           metric, t0);
}

static flava_status glue_run(flava_run *run, int eval)
{
    glue_task g = {0};
    flava_status s = glue_inner(&g, run, eval, flava_now());
    flava_ft_close(&g.ft);
    flava_family_destroy(&g.m);
    flava_tokenizer_free(g.tok);
    flava_glue_free(&g.train);
    flava_glue_free(&g.test);
    flava_free(g.pred);
    flava_free(g.score);
    return s;
}

static flava_status glue_finetune(flava_run *run) { return glue_run(run, 0); }
static flava_status glue_eval(flava_run *run) { return glue_run(run, 1); }

static flava_status glue_register_keys(flava_cfg *cfg)
{
    return flava_cfg_register_shared(cfg, glue_keys, (int)(sizeof glue_keys / sizeof *glue_keys));
}

const flava_task_ops flava_task_glue_finetune = {
    .name = "glue",
    .command = "finetune",
    .summary = "a GLUE task (or a corpus in a GLUE layout) on the text encoder",
    .register_keys = glue_register_keys,
    .run = glue_finetune,
};

const flava_task_ops flava_task_glue_eval = {
    .name = "glue",
    .command = "eval",
    .summary = "the official GLUE metrics of a fine-tuned checkpoint",
    .register_keys = glue_register_keys,
    .run = glue_eval,
};

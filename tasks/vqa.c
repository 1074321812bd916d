/* vqa.c - VQA: `flava finetune` trains the VQA head (an MLP on the
 * multimodal pooled output, BCE on soft scores) from a pretrained
 * checkpoint on VQAv2-format questions and annotations, with the answer
 * vocabulary built from the training answers (written to
 * RUN_DIR/answers.txt); `flava eval` scores a fine-tuned checkpoint. The
 * metric is the official VQA accuracy of the arg-max answer; as the official
 * evaluation, each evaluation also reports it per answer type, and writes
 * the answers to RUN_DIR/predictions.json in the official results format.
 * With training annotations it reports the question-type prior baseline
 * (prior_accuracy), which a model must beat to have looked at the image. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "evalmath.h"
#include "taskutil.h"
#include "vqa.h"

static const flava_cfg_key vqa_keys[] = {
    {"vqa", "tokenizer", FLAVA_CFG_STRING, "", "WordPiece vocab.txt or SentencePiece .model"},
    {"vqa", "train_questions", FLAVA_CFG_STRING, "", "VQAv2 questions JSON of the train split"},
    {"vqa", "train_annotations", FLAVA_CFG_STRING, "",
     "VQAv2 annotations JSON of the train split (eval: optional, for prior_accuracy)"},
    {"vqa", "train_images", FLAVA_CFG_STRING, "", "image folder of the train split"},
    {"vqa", "questions", FLAVA_CFG_STRING, NULL, "VQAv2 questions JSON of the evaluated split"},
    {"vqa", "annotations", FLAVA_CFG_STRING, NULL, "VQAv2 annotations JSON of the evaluated split"},
    {"vqa", "images", FLAVA_CFG_STRING, NULL, "image folder of the evaluated split"},
    {"vqa", "image_names", FLAVA_CFG_STRING, "png",
     "image file names: png (<image_id>.png, the scenes) or coco (COCO_<subtype>_<id>.jpg)"},
    {"vqa", "answers", FLAVA_CFG_STRING, "",
     "answer vocabulary, one a line (eval: required; finetune: built when empty)"},
    {"vqa", "answers_top_k", FLAVA_CFG_INT, "3129",
     "finetune: the K most frequent training answers form the vocabulary"},
    {"vqa", "max_text_len", FLAVA_CFG_INT, "32", "text positions per question"},
    {"vqa", "limit", FLAVA_CFG_INT, "0", "first N evaluated questions only (0: all)"},
    {"vqa", "dataset", FLAVA_CFG_STRING, "scenes", "data set name in results.json"},
};

typedef struct vqa_task {
    flava_ft ft;
    flava_model *m;
    flava_family_model fm; /* the training loop's view of m */
    flava_tokenizer *tok;
    flava_text_encoder enc;
    flava_vqa_set train, test;
    flava_vqa_vocab vocab;
    flava_vqa_prior prior; /* with training annotations (has_prior) */
    int has_prior;
    /* the evaluation under way */
    flava_vqa_tally tally;
    double prior_sum;
    const char **predicted; /* [test.n] vocabulary answers, for predictions.json */
    char names[2 * FLAVA_VQA_MAX_TYPES][64];
} vqa_task;

static flava_status vqa_score(void *self, const float *logits, int ncols, long first, int B)
{
    vqa_task *v = self;
    if (ncols != v->vocab.n)
        return FLAVA_ERROR(FLAVA_ERR_SHAPE, "VQA logits have %d answers, the vocabulary %d",
                           ncols, v->vocab.n);
    if (first == 0)
        v->tally = (flava_vqa_tally){0}, v->prior_sum = 0;
    for (int i = 0; i < B; i++) {
        const float *l = logits + (size_t)i * ncols;
        const flava_vqa_question *q = &v->test.q[first + i];
        double acc;
        v->predicted[first + i] = v->vocab.answers[flava_argmax_f32(l, ncols)];
        FLAVA_TRY(flava_vqa_accuracy(&acc, q, v->predicted[first + i]));
        FLAVA_TRY(flava_vqa_tally_add(&v->tally, q, acc));
        if (v->has_prior) {
            FLAVA_TRY(flava_vqa_accuracy(&acc, q, flava_vqa_prior_answer(&v->prior, q)));
            v->prior_sum += acc;
        }
    }
    return FLAVA_OK;
}

/* "yes/no" -> "yes_no": metric names stay plain identifiers. */
static void type_key(char *out, size_t cap, const char *prefix, const char *type)
{
    size_t n = (size_t)snprintf(out, cap, "%s", prefix);
    for (const char *c = type; *c && n + 1 < cap; c++)
        out[n++] = isalnum((unsigned char)*c) ? (char)tolower((unsigned char)*c) : '_';
    out[n] = '\0';
}

/* names[*k] = name, unless an answer type made it already. */
static flava_status add_metric(const char **names, double *values, int *k, const char *name,
                               double value)
{
    for (int i = 0; i < *k; i++)
        if (!strcmp(names[i], name))
            return FLAVA_ERROR(FLAVA_ERR_FORMAT, "the annotations' answer_type values clash: "
                               "the metric name %s comes twice", name);
    names[*k] = name;
    values[(*k)++] = value;
    return FLAVA_OK;
}

/* vqa_accuracy, questions, then per answer type (strcmp order)
 * vqa_accuracy_<type> and questions_<type>, questions_untyped if any,
 * prior_accuracy with a prior. */
_Static_assert(4 + 2 * FLAVA_VQA_MAX_TYPES <= FLAVA_TRAIN_MAX_METRICS, "VQA metrics");

static flava_status vqa_finish(void *self, const char **names, double *values, int *n)
{
    vqa_task *v = self;
    const flava_vqa_tally *t = &v->tally;
    const double count = t->n ? (double)t->n : 1;
    char line[1024];
    size_t len = (size_t)snprintf(line, sizeof line, "vqa: accuracy %.4f over %ld questions",
                                  t->sum / count, t->n);
    *n = 0;
    FLAVA_TRY(add_metric(names, values, n, "vqa_accuracy", t->sum / count));
    FLAVA_TRY(add_metric(names, values, n, "questions", (double)t->n));
    for (int i = 0; i < t->ntypes; i++) {
        const double acc = t->type_sum[i] / (double)t->type_n[i];
        type_key(v->names[2 * i], sizeof v->names[0], "vqa_accuracy_", t->type[i]);
        type_key(v->names[2 * i + 1], sizeof v->names[0], "questions_", t->type[i]);
        FLAVA_TRY(add_metric(names, values, n, v->names[2 * i], acc));
        FLAVA_TRY(add_metric(names, values, n, v->names[2 * i + 1], (double)t->type_n[i]));
        if (len < sizeof line)
            len += (size_t)snprintf(line + len, sizeof line - len, "%s %s %.4f (%ld)",
                                    i ? "," : ";", t->type[i], acc, t->type_n[i]);
    }
    if (t->untyped) {
        FLAVA_TRY(add_metric(names, values, n, "questions_untyped", (double)t->untyped));
        if (len < sizeof line)
            len += (size_t)snprintf(line + len, sizeof line - len, "; %ld without answer_type",
                                    t->untyped);
    }
    if (v->has_prior) {
        FLAVA_TRY(add_metric(names, values, n, "prior_accuracy", v->prior_sum / count));
        if (len < sizeof line)
            snprintf(line + len, sizeof line - len, "; question-type prior %.4f",
                     v->prior_sum / count);
    }
    flava_runlog_printf(&v->ft.run->log, "%s", line);
    char path[4200];
    snprintf(path, sizeof path, "%s/predictions.json", v->ft.run->run_dir);
    return flava_vqa_predictions_write(path, &v->test, v->predicted, t->n);
}

static flava_status vqa_inner(vqa_task *v, flava_run *run, int eval, double t0)
{
    flava_cfg *cfg = run->cfg;
    const char *tok, *tq, *ta, *ti, *q, *a, *im, *naming_s, *answers, *dataset;
    int64_t top_k, max_len, limit;
    FLAVA_TRY(flava_cfg_get_string(cfg, "vqa", "tokenizer", &tok));
    FLAVA_TRY(flava_cfg_get_string(cfg, "vqa", "train_questions", &tq));
    FLAVA_TRY(flava_cfg_get_string(cfg, "vqa", "train_annotations", &ta));
    FLAVA_TRY(flava_cfg_get_string(cfg, "vqa", "train_images", &ti));
    FLAVA_TRY(flava_cfg_get_string(cfg, "vqa", "questions", &q));
    FLAVA_TRY(flava_cfg_get_string(cfg, "vqa", "annotations", &a));
    FLAVA_TRY(flava_cfg_get_string(cfg, "vqa", "images", &im));
    FLAVA_TRY(flava_cfg_get_string(cfg, "vqa", "image_names", &naming_s));
    FLAVA_TRY(flava_cfg_get_string(cfg, "vqa", "answers", &answers));
    FLAVA_TRY(flava_cfg_get_int(cfg, "vqa", "answers_top_k", &top_k));
    FLAVA_TRY(flava_cfg_get_int(cfg, "vqa", "max_text_len", &max_len));
    FLAVA_TRY(flava_cfg_get_int(cfg, "vqa", "limit", &limit));
    FLAVA_TRY(flava_cfg_get_string(cfg, "vqa", "dataset", &dataset));
    flava_vqa_naming naming;
    if (!strcmp(naming_s, "png"))
        naming = FLAVA_VQA_PNG;
    else if (!strcmp(naming_s, "coco"))
        naming = FLAVA_VQA_COCO;
    else
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: vqa.image_names = '%s': expected png or coco",
                           flava_cfg_where(cfg, "vqa", "image_names"), naming_s);
    if (top_k < 1 || max_len < 2 || limit < 0)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "vqa: answers_top_k %lld >= 1, max_text_len %lld "
                           ">= 2, limit %lld >= 0 expected", (long long)top_k, (long long)max_len,
                           (long long)limit);
    if (eval && !*answers)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "vqa eval: set vqa.answers to the fine-tuning run's "
                           "answers.txt");
    if (!eval && (!*tq || !*ta || !*ti))
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "vqa finetune: set vqa.train_questions, "
                           "train_annotations and train_images");
    if (eval && *ta && !*tq)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "vqa eval: vqa.train_annotations (for the prior "
                           "baseline) needs vqa.train_questions too");
    FLAVA_TRY(flava_vqa_load(&v->test, q, a, im, naming));
    if (!(v->predicted = calloc((size_t)v->test.n, sizeof *v->predicted)))
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "answers of %ld questions", v->test.n);
    if (!eval) {
        FLAVA_TRY(flava_vqa_load(&v->train, tq, ta, ti, naming));
        if (*answers) {
            FLAVA_TRY(flava_vqa_vocab_read(&v->vocab, answers));
        } else {
            char path[4200];
            FLAVA_TRY(flava_vqa_vocab_build(&v->vocab, &v->train, (int)top_k));
            snprintf(path, sizeof path, "%s/answers.txt", run->run_dir);
            if (flava_dist_rank() == 0) { /* every rank builds the same vocabulary */
                FLAVA_TRY(flava_mkdirs(run->run_dir));
                FLAVA_TRY(flava_vqa_vocab_write(&v->vocab, path));
            }
        }
    } else {
        if (*ta) /* for the prior baseline, which needs no images */
            FLAVA_TRY(flava_vqa_load(&v->train, tq, ta, NULL, naming));
        FLAVA_TRY(flava_vqa_vocab_read(&v->vocab, answers));
    }
    if (v->train.n) {
        FLAVA_TRY(flava_vqa_prior_build(&v->prior, &v->train));
        v->has_prior = 1;
    }
    flava_config mc;
    const char *ck;
    FLAVA_TRY(flava_train_model_config(&mc, &ck, run));
    if (eval && mc.vqa_num_answers != v->vocab.n)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s has %d answers but the checkpoint %s has %s%d: "
                           "evaluate a checkpoint of `flava finetune` (task vqa) with its "
                           "answers.txt", answers, v->vocab.n, ck ? ck : "(none)",
                           mc.vqa_num_answers ? "a VQA head of " : "no VQA head, vqa_num_answers ",
                           mc.vqa_num_answers);
    mc.vqa_num_answers = v->vocab.n;
    FLAVA_TRY(flava_ft_model(&v->m, run, &mc, ck, FLAVA_HEAD_VQA, eval));
    if (max_len > mc.text.max_position_embeddings)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "vqa.max_text_len %lld exceeds the model's "
                           "max_position_embeddings %d", (long long)max_len,
                           mc.text.max_position_embeddings);
    FLAVA_TRY(flava_task_tokenizer(&v->tok, &v->enc, tok, v->m->cfg.text.vocab_size));
    flava_runlog_printf(&run->log, "vqa: %ld train, %ld evaluated questions, %d answers",
                        v->train.n, v->test.n, v->vocab.n);
    flava_family_wrap(&v->fm, flava_families[FLAVA_FAMILY_FLAVA], v->m);
    v->ft = (flava_ft){.run = run,
                       .fm = &v->fm,
                       .head = FLAVA_HEAD_VQA,
                       .image_size = mc.image.image_size,
                       .max_text_len = (int)max_len,
                       .enc = &v->enc,
                       .train = {.vqa = &v->train, .answers = &v->vocab},
                       .eval = {.n = limit && limit < v->test.n ? (long)limit : 0,
                                .vqa = &v->test},
                       .self = v,
                       .score = vqa_score,
                       .finish = vqa_finish};
    return flava_ft_finish(&v->ft, eval, "vqa", dataset, "vqa_accuracy", t0);
}

static flava_status vqa_run(flava_run *run, int eval)
{
    vqa_task v = {0};
    flava_status s = vqa_inner(&v, run, eval, flava_now());
    flava_ft_close(&v.ft);
    flava_model_destroy(v.m);
    flava_tokenizer_free(v.tok);
    flava_vqa_free(&v.train);
    flava_vqa_free(&v.test);
    flava_vqa_vocab_free(&v.vocab);
    flava_vqa_prior_free(&v.prior);
    free(v.predicted);
    return s;
}

static flava_status vqa_finetune(flava_run *run) { return vqa_run(run, 0); }
static flava_status vqa_eval(flava_run *run) { return vqa_run(run, 1); }

static flava_status vqa_register_keys(flava_cfg *cfg)
{
    return flava_cfg_register_shared(cfg, vqa_keys, (int)(sizeof vqa_keys / sizeof *vqa_keys));
}

const flava_task_ops flava_task_vqa_finetune = {
    .name = "vqa",
    .command = "finetune",
    .summary = "VQA head on VQAv2-format data (answer vocabulary from the training answers)",
    .register_keys = vqa_register_keys,
    .run = vqa_finetune,
};

const flava_task_ops flava_task_vqa_eval = {
    .name = "vqa",
    .command = "eval",
    .summary = "VQA accuracy, overall and per answer type, of a fine-tuned checkpoint",
    .register_keys = vqa_register_keys,
    .run = vqa_eval,
};

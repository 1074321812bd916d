/* zeroshot.c - CLIP-style zero-shot image classification: each class's
 * text embedding is the renormalised mean of its prompts' embeddings (one
 * prompt per template, "{}" replaced by the class name), each image is
 * scored by its contrastive embedding's cosine with every class; accuracy
 * and top-5 accuracy on an IDX test set (Fashion-MNIST, 28 -> 224 as the
 * image pipeline does). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evalmath.h"
#include "idx.h"
#include "ops.h"
#include "taskutil.h"

static const flava_cfg_key zeroshot_keys[] = {
    {"zeroshot", "tokenizer", FLAVA_CFG_STRING, "", "WordPiece vocab.txt or SentencePiece .model"},
    {"zeroshot", "classes", FLAVA_CFG_STRING, NULL,
     "class names, one a line, in label order (the phrase the prompts insert)"},
    {"zeroshot", "templates", FLAVA_CFG_LIST, "a photo of {}.",
     "prompt templates, each with one {} where the class name goes"},
    {"zeroshot", "images", FLAVA_CFG_STRING, NULL, "IDX images of the test set"},
    {"zeroshot", "labels", FLAVA_CFG_STRING, NULL, "IDX labels of the test set"},
    {"zeroshot", "limit", FLAVA_CFG_INT, "0", "use the first N test images only (0: all)"},
    {"zeroshot", "max_text_len", FLAVA_CFG_INT, "32", "text positions per prompt"},
    {"zeroshot", "batch_size", FLAVA_CFG_INT, "64", "samples per forward"},
    {"zeroshot", "dataset", FLAVA_CFG_STRING, "fashion-mnist", "data set name in results.json"},
};

enum { TOP_K = 5 };

/* prompts[K*T]: template t of class k at k*T + t. */
static flava_status make_prompts(char ***prompts, char *const *classes, long K,
                                 const char *const *templates, int T)
{
    for (int t = 0; t < T; t++) {
        const char *hole = strstr(templates[t], "{}");
        if (!hole || strstr(hole + 2, "{}"))
            return FLAVA_ERROR(FLAVA_ERR_CONFIG, "zeroshot.templates: '%s' must hold exactly one "
                               "{}", templates[t]);
    }
    /* calloc'ed, as flava_task_free_lines frees it */
    *prompts = calloc((size_t)(K * T), sizeof(char *));
    if (!*prompts)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "prompts");
    for (long k = 0; k < K; k++)
        for (int t = 0; t < T; t++) {
            const char *tp = templates[t], *hole = strstr(tp, "{}");
            const size_t len = strlen(tp) - 2 + strlen(classes[k]) + 1;
            char *p = malloc(len);
            if (!p)
                return FLAVA_ERROR(FLAVA_ERR_NOMEM, "prompt");
            snprintf(p, len, "%.*s%s%s", (int)(hole - tp), tp, classes[k], hole + 2);
            (*prompts)[k * T + t] = p;
        }
    return FLAVA_OK;
}

typedef struct zeroshot {
    flava_model *m;
    flava_tokenizer *tok;
    char **classes, **prompts;
    long K, nprompts;
    flava_idx_set test;
    float *text_emb, *class_emb, *img_emb, *scores;
} zeroshot;

static flava_status zeroshot_inner(zeroshot *z, flava_run *run, double t0)
{
    flava_cfg *cfg = run->cfg;
    const char *tok_path, *classes, *images, *labels, *dataset;
    const char *const *templates;
    int T;
    int64_t limit, max_len, bs;
    FLAVA_TRY(flava_cfg_get_string(cfg, "zeroshot", "tokenizer", &tok_path));
    FLAVA_TRY(flava_cfg_get_string(cfg, "zeroshot", "classes", &classes));
    FLAVA_TRY(flava_cfg_get_list(cfg, "zeroshot", "templates", &templates, &T));
    FLAVA_TRY(flava_cfg_get_string(cfg, "zeroshot", "images", &images));
    FLAVA_TRY(flava_cfg_get_string(cfg, "zeroshot", "labels", &labels));
    FLAVA_TRY(flava_cfg_get_int(cfg, "zeroshot", "limit", &limit));
    FLAVA_TRY(flava_cfg_get_int(cfg, "zeroshot", "max_text_len", &max_len));
    FLAVA_TRY(flava_cfg_get_int(cfg, "zeroshot", "batch_size", &bs));
    FLAVA_TRY(flava_cfg_get_string(cfg, "zeroshot", "dataset", &dataset));
    if (T < 1)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "zeroshot.templates: at least one template");
    if (bs < 1 || max_len < 2 || limit < 0)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "zeroshot: batch_size %lld, max_text_len %lld, "
                           "limit %lld: expected >= 1, >= 2, >= 0", (long long)bs,
                           (long long)max_len, (long long)limit);
    FLAVA_TRY(flava_task_read_lines(&z->classes, &z->K, classes));
    FLAVA_TRY(flava_idx_load(&z->test, images, labels));
    for (int64_t i = 0; i < z->test.n; i++)
        if (z->test.labels[i] >= z->K)
            return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: label %d of image %lld but %s names %ld "
                               "classes", labels, z->test.labels[i], (long long)i, classes, z->K);
    const flava_head_set none = {{0}, {0}};
    FLAVA_TRY(flava_task_eval_model(&z->m, run, &none, 1));
    if (max_len > z->m->cfg.text.max_position_embeddings)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "zeroshot.max_text_len %lld exceeds the model's "
                           "max_position_embeddings %d", (long long)max_len,
                           z->m->cfg.text.max_position_embeddings);
    flava_text_encoder enc;
    FLAVA_TRY(flava_task_tokenizer(&z->tok, &enc, tok_path, z->m));
    z->nprompts = z->K * T;
    FLAVA_TRY(make_prompts(&z->prompts, z->classes, z->K, templates, T));

    long n;
    flava_loader_source ps = {.n = z->nprompts, .texts = z->prompts};
    FLAVA_TRY(flava_task_features(&z->text_emb, &n, run, z->m, &ps, &enc, (int)max_len, (int)bs,
                                  FLAVA_FEATURE_TEXT_EMBED));
    const int D = z->m->cfg.projection_dim;
    FLAVA_TRY(flava_alloc((void **)&z->class_emb, sizeof(float) * (size_t)z->K * D, "classes"));
    FLAVA_TRY(flava_ensemble_templates(z->class_emb, z->text_emb, (int)z->K, T, D));

    flava_loader_source is = {.n = limit && limit < z->test.n ? (long)limit : 0,
                              .idx = &z->test};
    long N;
    FLAVA_TRY(flava_task_features(&z->img_emb, &N, run, z->m, &is, NULL, 0, (int)bs,
                                  FLAVA_FEATURE_IMAGE_EMBED));
    FLAVA_TRY(flava_alloc((void **)&z->scores, sizeof(float) * (size_t)N * z->K, "scores"));
    FLAVA_TRY(linear_forward(run->ctx, z->scores, z->img_emb, z->class_emb, NULL, (int)N, D,
                             (int)z->K));
    int32_t *gold = NULL;
    FLAVA_TRY(flava_alloc((void **)&gold, sizeof(int32_t) * (size_t)N, "labels"));
    for (long i = 0; i < N; i++)
        gold[i] = z->test.labels[i];
    const int k5 = z->K < TOP_K ? (int)z->K : TOP_K;
    const double acc = flava_topk_accuracy(z->scores, gold, N, (int)z->K, 1);
    const double top5 = flava_topk_accuracy(z->scores, gold, N, (int)z->K, k5);
    flava_free(gold);
    flava_runlog_printf(&run->log, "zero-shot: %ld images, %ld classes x %d templates: accuracy "
                        "%.4f, top-%d %.4f", N, z->K, T, acc, k5, top5);
    const char *names[] = {"accuracy", "top5_accuracy", "images", "classes", "templates"};
    const double values[] = {acc, top5, (double)N, (double)z->K, (double)T};
    return flava_task_results(run, "eval", "zeroshot", dataset, "accuracy", names, values, 5, t0);
}

static flava_status zeroshot_run(flava_run *run)
{
    zeroshot z = {0};
    flava_status s = zeroshot_inner(&z, run, flava_now());
    flava_model_destroy(z.m);
    flava_tokenizer_free(z.tok);
    flava_task_free_lines(z.classes, z.K);
    flava_task_free_lines(z.prompts, z.prompts ? z.nprompts : 0);
    flava_idx_set_free(&z.test);
    flava_free(z.text_emb);
    flava_free(z.class_emb);
    flava_free(z.img_emb);
    flava_free(z.scores);
    return s;
}

static flava_status zeroshot_register_keys(flava_cfg *cfg)
{
    return flava_cfg_register(cfg, zeroshot_keys,
                              (int)(sizeof zeroshot_keys / sizeof *zeroshot_keys));
}

const flava_task_ops flava_task_zeroshot = {
    .name = "zeroshot",
    .command = "eval",
    .summary = "zero-shot image classification by prompt ensembles (accuracy, top-5)",
    .register_keys = zeroshot_register_keys,
    .run = zeroshot_run,
};

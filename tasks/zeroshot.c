/* zeroshot.c - CLIP-style zero-shot image classification: each class's
 * text embedding is the renormalised mean of its prompts' embeddings (one
 * prompt per template, "{}" replaced by the class name), each image is
 * scored by its contrastive embedding's cosine with every class; accuracy
 * and top-5 accuracy on an IDX test set (Fashion-MNIST, 28 -> 224 as the
 * image pipeline does). With zeroshot.scene_size each item is shown as a
 * one-item scene instead, drawn into a cell as `flava data scenes` draws
 * it, so that a model pretrained on scenes sees its own distribution. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evalmath.h"
#include "idx.h"
#include "image.h"
#include "scenes.h"
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
    {"zeroshot", "scene_size", FLAVA_CFG_INT, "0",
     "0: each test image fills the model's input; N (even, >= 2 x the item side): each item "
     "is drawn, as `flava data scenes --size N` draws it, into one cell of an otherwise "
     "empty N x N 2x2 scene"},
    {"zeroshot", "scene_cells", FLAVA_CFG_LIST, "top left",
     "with scene_size: the cells the item is put in (top left, top right, bottom left, "
     "bottom right), one pass each; the class scores are averaged over them"},
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
    flava_family_model m;
    flava_tokenizer *tok;
    char **classes, **prompts;
    long K, nprompts;
    flava_idx_set test;
    flava_idx_set scenes;
    float *text_emb, *class_emb, *img_emb, *scores, *cell_scores;
} zeroshot;

static flava_status zeroshot_inner(zeroshot *z, flava_run *run, double t0)
{
    flava_cfg *cfg = run->cfg;
    const char *tok_path, *classes, *images, *labels, *dataset;
    const char *const *templates;
    const char *const *cell_list;
    int T, ncell_names;
    int64_t limit, max_len, bs, scene_size;
    FLAVA_TRY(flava_cfg_get_string(cfg, "zeroshot", "tokenizer", &tok_path));
    FLAVA_TRY(flava_cfg_get_string(cfg, "zeroshot", "classes", &classes));
    FLAVA_TRY(flava_cfg_get_list(cfg, "zeroshot", "templates", &templates, &T));
    FLAVA_TRY(flava_cfg_get_string(cfg, "zeroshot", "images", &images));
    FLAVA_TRY(flava_cfg_get_string(cfg, "zeroshot", "labels", &labels));
    FLAVA_TRY(flava_cfg_get_int(cfg, "zeroshot", "limit", &limit));
    FLAVA_TRY(flava_cfg_get_int(cfg, "zeroshot", "max_text_len", &max_len));
    FLAVA_TRY(flava_cfg_get_int(cfg, "zeroshot", "batch_size", &bs));
    FLAVA_TRY(flava_cfg_get_string(cfg, "zeroshot", "dataset", &dataset));
    FLAVA_TRY(flava_cfg_get_int(cfg, "zeroshot", "scene_size", &scene_size));
    FLAVA_TRY(flava_cfg_get_list(cfg, "zeroshot", "scene_cells", &cell_list, &ncell_names));
    int cells[FLAVA_SCENES_CELLS] = {0}, ncells = 0;
    if (scene_size)
        FLAVA_TRY(flava_scenes_cell_list(cells, &ncells, cell_list, ncell_names,
                                         "zeroshot.scene_cells"));
    if (T < 1)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "zeroshot.templates: at least one template");
    if (bs < 1 || max_len < 2 || limit < 0)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "zeroshot: batch_size %lld, max_text_len %lld, "
                           "limit %lld: expected >= 1, >= 2, >= 0", (long long)bs,
                           (long long)max_len, (long long)limit);
    FLAVA_TRY(flava_task_read_lines(&z->classes, &z->K, classes));
    FLAVA_TRY(flava_idx_load(&z->test, images, labels));
    if (scene_size)
        FLAVA_TRY(flava_scenes_check_size(scene_size, z->test.rows, z->test.cols,
                                          "zeroshot.scene_size"));
    for (int64_t i = 0; i < z->test.n; i++)
        if (z->test.labels[i] >= z->K)
            return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: label %d of image %lld but %s names %ld "
                               "classes", labels, z->test.labels[i], (long long)i, classes, z->K);
    FLAVA_TRY(flava_task_eval_model(&z->m, run));
    if (max_len > z->m.max_text_len)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "zeroshot.max_text_len %lld exceeds the model's "
                           "max_position_embeddings %d", (long long)max_len,
                           z->m.max_text_len);
    flava_text_encoder enc;
    FLAVA_TRY(flava_task_tokenizer(&z->tok, &enc, tok_path, z->m.vocab_size));
    z->nprompts = z->K * T;
    FLAVA_TRY(make_prompts(&z->prompts, z->classes, z->K, templates, T));

    long n;
    flava_loader_source ps = {.n = z->nprompts, .texts = z->prompts};
    FLAVA_TRY(flava_task_features(&z->text_emb, &n, run, &z->m, &ps, &enc, (int)max_len, (int)bs,
                                  FLAVA_FEATURE_TEXT_EMBED));
    const int D = z->m.embed_dim;
    FLAVA_TRY(flava_alloc((void **)&z->class_emb, sizeof(float) * (size_t)z->K * D, "classes"));
    FLAVA_TRY(flava_ensemble_templates(z->class_emb, z->text_emb, (int)z->K, T, D));

    const long n_img = limit && limit < z->test.n ? (long)limit : (long)z->test.n;
    long N = n_img;
    FLAVA_TRY(flava_alloc((void **)&z->scores, sizeof(float) * (size_t)N * z->K, "scores"));
    if (ncells > 1)
        FLAVA_TRY(flava_alloc((void **)&z->cell_scores, sizeof(float) * (size_t)N * z->K,
                              "cell scores"));
    /* without scenes, one pass over the items as they are */
    for (int pass = 0; pass < (scene_size ? ncells : 1); pass++) {
        flava_loader_source is = {.n = n_img, .idx = &z->test};
        if (scene_size) {
            flava_idx_set_free(&z->scenes);
            FLAVA_TRY(flava_scenes_one_item(&z->scenes, &z->test, n_img, scene_size, cells[pass],
                                            0, "zeroshot.scene_size"));
            is.idx = &z->scenes;
        }
        flava_free(z->img_emb);
        z->img_emb = NULL;
        FLAVA_TRY(flava_task_features(&z->img_emb, &N, run, &z->m, &is, NULL, 0, (int)bs,
                                      FLAVA_FEATURE_IMAGE_EMBED));
        FLAVA_TRY(linear_forward(run->ctx, pass ? z->cell_scores : z->scores, z->img_emb,
                                 z->class_emb, NULL, (int)N, D, (int)z->K));
        for (long i = 0; pass && i < N * z->K; i++)
            z->scores[i] += z->cell_scores[i];
    }
    /* the sum over cells ranks the classes as the mean does */
    int32_t *gold = NULL;
    FLAVA_TRY(flava_alloc((void **)&gold, sizeof(int32_t) * (size_t)N, "labels"));
    for (long i = 0; i < N; i++)
        gold[i] = z->test.labels[i];
    const int k5 = z->K < TOP_K ? (int)z->K : TOP_K;
    const double acc = flava_topk_accuracy(z->scores, gold, N, (int)z->K, 1);
    const double top5 = flava_topk_accuracy(z->scores, gold, N, (int)z->K, k5);
    flava_free(gold);
    flava_runlog_printf(&run->log, "zero-shot: %ld images (%s), %ld classes x %d templates: "
                        "accuracy %.4f, top-%d %.4f", N,
                        scene_size ? "one-item scenes" : "whole input", z->K, T, acc, k5, top5);
    const char *names[] = {"accuracy", "top5_accuracy", "images", "classes", "templates"};
    const double values[] = {acc, top5, (double)N, (double)z->K, (double)T};
    return flava_task_results(run, "eval", "zeroshot", dataset, "accuracy", names, values, 5, t0);
}

static flava_status zeroshot_run(flava_run *run)
{
    zeroshot z = {0};
    flava_status s = zeroshot_inner(&z, run, flava_now());
    flava_family_destroy(&z.m);
    flava_tokenizer_free(z.tok);
    flava_task_free_lines(z.classes, z.K);
    flava_task_free_lines(z.prompts, z.prompts ? z.nprompts : 0);
    flava_idx_set_free(&z.test);
    flava_free(z.text_emb);
    flava_free(z.class_emb);
    flava_free(z.img_emb);
    flava_free(z.scores);
    flava_free(z.cell_scores);
    flava_idx_set_free(&z.scenes);
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

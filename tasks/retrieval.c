/* retrieval.c - image <-> text retrieval by the contrastive embeddings:
 * recall@1/5/10 of image->text (an image's captions) and text->image, on an
 * image-text TSV (the scenes' test split). Rows naming the same image file
 * share one image. */
#include <stdlib.h>
#include <string.h>

#include "imagetext.h"
#include "ops.h"
#include "recall.h"
#include "taskutil.h"

static const flava_cfg_key retrieval_keys[] = {
    {"retrieval", "tokenizer", FLAVA_CFG_STRING, "", "WordPiece vocab.txt or SentencePiece .model"},
    {"retrieval", "captions", FLAVA_CFG_STRING, NULL, "image-text TSV of the test split"},
    {"retrieval", "image_key", FLAVA_CFG_STRING, FLAVA_IMAGETEXT_IMAGE_KEY, "image column"},
    {"retrieval", "caption_key", FLAVA_CFG_STRING, FLAVA_IMAGETEXT_CAPTION_KEY, "caption column"},
    {"retrieval", "limit", FLAVA_CFG_INT, "0", "use the first N rows only (0: all)"},
    {"retrieval", "max_text_len", FLAVA_CFG_INT, "64", "text positions per caption"},
    {"retrieval", "batch_size", FLAVA_CFG_INT, "64", "samples per forward"},
    {"retrieval", "dataset", FLAVA_CFG_STRING, "scenes", "data set name in results.json"},
};

typedef struct retrieval {
    flava_model *m;
    flava_tokenizer *tok;
    flava_imagetext pairs;
    float *img, *txt, *sim;
    int32_t *order, *txt_image, *image_row;
} retrieval;

static const flava_imagetext *sort_set; /* qsort has no context argument */

static int by_path(const void *a, const void *b)
{
    const int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    const int c = strcmp(sort_set->image_paths[i], sort_set->image_paths[j]);
    return c ? c : (i > j) - (i < j);
}

/* Groups rows by image file: txt_image[row] = image index, image_row[k] =
 * the first row of image k, images numbered in order of their first row.
 * Returns the number of images. */
static int group_images(retrieval *r, long n)
{
    int32_t *first = r->txt_image, *num = r->order;
    for (long i = 0; i < n; i++)
        r->order[i] = (int32_t)i;
    sort_set = &r->pairs;
    qsort(r->order, (size_t)n, sizeof *r->order, by_path);
    /* equal paths are adjacent and in row order: the group's first row leads */
    for (long k = 0; k < n; k++) {
        const int32_t i = r->order[k], prev = k ? r->order[k - 1] : -1;
        first[i] = k && !strcmp(r->pairs.image_paths[i], r->pairs.image_paths[prev]) ? first[prev]
                                                                                    : i;
    }
    int n_img = 0;
    for (long i = 0; i < n; i++)
        if (first[i] == i) {
            num[i] = n_img;
            r->image_row[n_img++] = (int32_t)i;
        }
    for (long i = 0; i < n; i++)
        first[i] = num[first[i]]; /* first[i] <= i: num of it is set and unchanged */
    return n_img;
}

static flava_status retrieval_inner(retrieval *r, flava_run *run, double t0)
{
    flava_cfg *cfg = run->cfg;
    const char *tok_path, *captions, *image_key, *caption_key, *dataset;
    int64_t limit, max_len, bs;
    FLAVA_TRY(flava_cfg_get_string(cfg, "retrieval", "tokenizer", &tok_path));
    FLAVA_TRY(flava_cfg_get_string(cfg, "retrieval", "captions", &captions));
    FLAVA_TRY(flava_cfg_get_string(cfg, "retrieval", "image_key", &image_key));
    FLAVA_TRY(flava_cfg_get_string(cfg, "retrieval", "caption_key", &caption_key));
    FLAVA_TRY(flava_cfg_get_int(cfg, "retrieval", "limit", &limit));
    FLAVA_TRY(flava_cfg_get_int(cfg, "retrieval", "max_text_len", &max_len));
    FLAVA_TRY(flava_cfg_get_int(cfg, "retrieval", "batch_size", &bs));
    FLAVA_TRY(flava_cfg_get_string(cfg, "retrieval", "dataset", &dataset));
    if (bs < 1 || max_len < 2 || limit < 0)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "retrieval: batch_size %lld, max_text_len %lld, "
                           "limit %lld: expected >= 1, >= 2, >= 0", (long long)bs,
                           (long long)max_len, (long long)limit);
    FLAVA_TRY(flava_imagetext_load(&r->pairs, captions, image_key, caption_key));
    const long n = limit && limit < r->pairs.n ? (long)limit : r->pairs.n;
    const flava_head_set none = {{0}, {0}};
    FLAVA_TRY(flava_task_eval_model(&r->m, run, &none, 1));
    if (max_len > r->m->cfg.text.max_position_embeddings)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "retrieval.max_text_len %lld exceeds the model's "
                           "max_position_embeddings %d", (long long)max_len,
                           r->m->cfg.text.max_position_embeddings);
    flava_text_encoder enc;
    FLAVA_TRY(flava_task_tokenizer(&r->tok, &enc, tok_path, r->m));

    FLAVA_TRY(flava_alloc((void **)&r->order, sizeof(int32_t) * (size_t)n, "row order"));
    FLAVA_TRY(flava_alloc((void **)&r->txt_image, sizeof(int32_t) * (size_t)n, "text images"));
    FLAVA_TRY(flava_alloc((void **)&r->image_row, sizeof(int32_t) * (size_t)n, "image rows"));
    const int n_img = group_images(r, n);

    const flava_loader_source src = {.n = n, .pairs = &r->pairs};
    long got;
    FLAVA_TRY(flava_task_features(&r->txt, &got, run, r->m, &src, &enc, (int)max_len, (int)bs,
                                  FLAVA_FEATURE_TEXT_EMBED));
    FLAVA_TRY(flava_task_features(&r->img, &got, run, r->m, &src, NULL, 0, (int)bs,
                                  FLAVA_FEATURE_IMAGE_EMBED));
    const int D = r->m->cfg.projection_dim;
    /* one embedding per image: its first row's (in place, k <= image_row[k]) */
    for (int k = 0; k < n_img; k++)
        memmove(r->img + (size_t)k * D, r->img + (size_t)r->image_row[k] * D,
                sizeof(float) * (size_t)D);
    FLAVA_TRY(flava_alloc((void **)&r->sim, sizeof(float) * (size_t)n_img * n, "similarities"));
    FLAVA_TRY(linear_forward(run->ctx, r->sim, r->img, r->txt, NULL, n_img, D, (int)n));
    static const int ks[3] = {1, 5, 10};
    double i2t[3], t2i[3];
    FLAVA_TRY(flava_recall_at_k(i2t, t2i, r->sim, r->txt_image, n_img, (int)n, ks, 3));
    flava_runlog_printf(&run->log, "retrieval: %d images, %ld texts: image->text R@1/5/10 "
                        "%.4f %.4f %.4f, text->image %.4f %.4f %.4f", n_img, n, i2t[0], i2t[1],
                        i2t[2], t2i[0], t2i[1], t2i[2]);
    const char *names[] = {"r1_mean", "i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1",
                           "t2i_r5",  "t2i_r10", "images", "texts"};
    const double values[] = {(i2t[0] + t2i[0]) / 2, i2t[0], i2t[1], i2t[2], t2i[0], t2i[1],
                             t2i[2], n_img, (double)n};
    return flava_task_results(run, "eval", "retrieval", dataset, "r1_mean", names, values, 9, t0);
}

static flava_status retrieval_run(flava_run *run)
{
    retrieval r = {0};
    flava_status s = retrieval_inner(&r, run, flava_now());
    flava_model_destroy(r.m);
    flava_tokenizer_free(r.tok);
    flava_imagetext_free(&r.pairs);
    flava_free(r.img);
    flava_free(r.txt);
    flava_free(r.sim);
    flava_free(r.order);
    flava_free(r.txt_image);
    flava_free(r.image_row);
    return s;
}

static flava_status retrieval_register_keys(flava_cfg *cfg)
{
    return flava_cfg_register(cfg, retrieval_keys,
                              (int)(sizeof retrieval_keys / sizeof *retrieval_keys));
}

const flava_task_ops flava_task_retrieval = {
    .name = "retrieval",
    .command = "eval",
    .summary = "image<->text retrieval by contrastive embeddings (R@1/5/10 both ways)",
    .register_keys = retrieval_register_keys,
    .run = retrieval_run,
};

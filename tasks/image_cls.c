/* image_cls.c - image classification: `flava finetune` trains the
 * classifier head (MLP on the image encoder's pooled CLS, or the CLIP and
 * ALIGN image features, see flava_ft_classifier; cross-entropy)
 * from a pretrained checkpoint on an IDX train set (Fashion-MNIST, 28 ->
 * 224 as the image pipeline does) and reports accuracy on the test set;
 * `flava eval` scores a fine-tuned checkpoint on the test set alone. */
#include <stdio.h>
#include <string.h>

#include "idx.h"
#include "evalmath.h"
#include "taskutil.h"

static const flava_cfg_key image_cls_keys[] = {
    {"image_cls", "images", FLAVA_CFG_STRING, NULL, "IDX images of the train set"},
    {"image_cls", "labels", FLAVA_CFG_STRING, NULL, "IDX labels of the train set"},
    {"image_cls", "test_images", FLAVA_CFG_STRING, NULL, "IDX images of the test set"},
    {"image_cls", "test_labels", FLAVA_CFG_STRING, NULL, "IDX labels of the test set"},
    {"image_cls", "num_labels", FLAVA_CFG_INT, "10", "classes (labels 0 .. num_labels-1)"},
    {"image_cls", "limit", FLAVA_CFG_INT, "0", "first N test images only (0: all)"},
    {"image_cls", "dataset", FLAVA_CFG_STRING, "fashion-mnist", "data set name in results.json"},
};

typedef struct image_cls {
    flava_ft ft;
    flava_family_model m;
    flava_idx_set train, test;
    long correct, count;
} image_cls;

static flava_status cls_score(void *self, const float *logits, int ncols, long first, int B)
{
    image_cls *c = self;
    if (first == 0)
        c->correct = c->count = 0;
    for (int i = 0; i < B; i++) {
        const float *l = logits + (size_t)i * ncols;
        const int best = flava_argmax_f32(l, ncols);
        c->correct += best == c->test.labels[first + i];
        c->count++;
    }
    return FLAVA_OK;
}

static flava_status cls_finish(void *self, const char **names, double *values, int *n)
{
    image_cls *c = self;
    names[0] = "accuracy";
    values[0] = c->count ? (double)c->correct / (double)c->count : 0;
    names[1] = "images";
    values[1] = (double)c->count;
    *n = 2;
    return FLAVA_OK;
}

static flava_status check_labels(const flava_idx_set *s, const char *path, int64_t K)
{
    for (int64_t i = 0; i < s->n; i++)
        if (s->labels[i] >= K)
            return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: label %d of item %lld, but "
                               "image_cls.num_labels is %lld", path, s->labels[i], (long long)i,
                               (long long)K);
    return FLAVA_OK;
}

static flava_status image_cls_inner(image_cls *c, flava_run *run, int eval, double t0)
{
    flava_cfg *cfg = run->cfg;
    const char *images, *labels, *timages, *tlabels, *dataset;
    int64_t K, limit;
    FLAVA_TRY(flava_cfg_get_string(cfg, "image_cls", "images", &images));
    FLAVA_TRY(flava_cfg_get_string(cfg, "image_cls", "labels", &labels));
    FLAVA_TRY(flava_cfg_get_string(cfg, "image_cls", "test_images", &timages));
    FLAVA_TRY(flava_cfg_get_string(cfg, "image_cls", "test_labels", &tlabels));
    FLAVA_TRY(flava_cfg_get_int(cfg, "image_cls", "num_labels", &K));
    FLAVA_TRY(flava_cfg_get_int(cfg, "image_cls", "limit", &limit));
    FLAVA_TRY(flava_cfg_get_string(cfg, "image_cls", "dataset", &dataset));
    if (K < 2 || K > 256 || limit < 0)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "image_cls: num_labels %lld in 2 .. 256 and limit "
                           "%lld >= 0 expected", (long long)K, (long long)limit);
    if (!eval) {
        FLAVA_TRY(flava_idx_load(&c->train, images, labels));
        FLAVA_TRY(check_labels(&c->train, labels, K));
    }
    FLAVA_TRY(flava_idx_load(&c->test, timages, tlabels));
    FLAVA_TRY(check_labels(&c->test, tlabels, K));
    FLAVA_TRY(flava_ft_classifier(&c->m, run, "image", (int)K, eval));
    c->ft = (flava_ft){.run = run,
                       .fm = &c->m,
                       .head = FLAVA_HEAD_CLASSIFY,
                       .image_size = c->m.image_size,
                       .train = {.idx = &c->train},
                       .eval = {.n = limit && limit < c->test.n ? (long)limit : 0,
                                .idx = &c->test},
                       .self = c,
                       .score = cls_score,
                       .finish = cls_finish};
    return flava_ft_finish(&c->ft, eval, "image_cls", dataset, "accuracy", t0);
}

static flava_status image_cls_run(flava_run *run, int eval)
{
    image_cls c = {0};
    flava_status s = image_cls_inner(&c, run, eval, flava_now());
    flava_ft_close(&c.ft);
    flava_family_destroy(&c.m);
    flava_idx_set_free(&c.train);
    flava_idx_set_free(&c.test);
    return s;
}

static flava_status image_cls_finetune(flava_run *run) { return image_cls_run(run, 0); }
static flava_status image_cls_eval(flava_run *run) { return image_cls_run(run, 1); }

static flava_status image_cls_register_keys(flava_cfg *cfg)
{
    return flava_cfg_register_shared(cfg, image_cls_keys,
                                     (int)(sizeof image_cls_keys / sizeof *image_cls_keys));
}

const flava_task_ops flava_task_image_cls = {
    .name = "image_cls",
    .command = "finetune",
    .summary = "image classification on IDX images (Fashion-MNIST), cross-entropy, accuracy",
    .register_keys = image_cls_register_keys,
    .run = image_cls_finetune,
};

const flava_task_ops flava_task_image_cls_eval = {
    .name = "image_cls",
    .command = "eval",
    .summary = "the test-set accuracy of a fine-tuned image classifier",
    .register_keys = image_cls_register_keys,
    .run = image_cls_eval,
};

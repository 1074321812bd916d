/* scenes.c - the scene generator behind `flava data scenes`. */
#include "scenes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "idx.h"
#include "image.h"
#include "rng.h"

enum { CELLS = FLAVA_SCENES_CELLS, ITEM = 28, NO_ITEM = -1 };

static const char *const cell_names[CELLS] = {"top left", "top right", "bottom left",
                                              "bottom right"};
/* What captions and answers call each class: singular noun phrase (with
 * article), bare answer, plural for counting questions. */
static const char *const item_phrase[FLAVA_IDX_CLASSES] = {
    "a t-shirt", "a pair of trousers", "a pullover", "a dress", "a coat",
    "a sandal",  "a shirt",            "a sneaker",  "a bag",   "an ankle boot",
};
static const char *const item_answer[FLAVA_IDX_CLASSES] = {
    "t-shirt", "trousers", "pullover", "dress", "coat",
    "sandal",  "shirt",    "sneaker",  "bag",   "ankle boot",
};
static const char *const item_plural[FLAVA_IDX_CLASSES] = {
    "t-shirts", "pairs of trousers", "pullovers", "dresses", "coats",
    "sandals",  "shirts",            "sneakers",  "bags",    "ankle boots",
};

typedef struct scene {
    int label[CELLS]; /* class per cell, NO_ITEM when empty */
    long item[CELLS]; /* index into the split's items */
} scene;

static flava_status make_dir(const char *path)
{
    if (mkdir(path, 0777) != 0 && errno != EEXIST)
        return FLAVA_ERROR(FLAVA_ERR_IO, "%s: cannot create directory: %s", path, strerror(errno));
    return FLAVA_OK;
}

static void draw_scene(scene *sc, flava_rng *r, const flava_idx_set *items)
{
    int cells[CELLS] = {0, 1, 2, 3};
    for (int i = CELLS - 1; i > 0; i--) { /* Fisher-Yates */
        int j = (int)flava_rng_below(r, (uint32_t)i + 1), t = cells[i];
        cells[i] = cells[j];
        cells[j] = t;
    }
    int count = 1 + (int)flava_rng_below(r, CELLS);
    for (int c = 0; c < CELLS; c++) {
        sc->label[c] = NO_ITEM;
        sc->item[c] = -1;
    }
    for (int k = 0; k < count; k++) {
        long it = (long)flava_rng_below(r, (uint32_t)items->n);
        sc->item[cells[k]] = it;
        sc->label[cells[k]] = items->labels[it];
    }
}

flava_status flava_scenes_draw_item(uint8_t *pix, uint8_t *cellbuf, int size, int cell,
                                    const uint8_t *item, int item_w, int item_h)
{
    const int half = size / 2, y0 = (cell / 2) * half, x0 = (cell % 2) * half;
    FLAVA_TRY(flava_image_resize(cellbuf, half, half, item, item_w, item_h, 1,
                                 FLAVA_RESAMPLE_BICUBIC));
    for (int y = 0; y < half; y++)
        memcpy(pix + (size_t)(y0 + y) * size + x0, cellbuf + (size_t)y * half, (size_t)half);
    return FLAVA_OK;
}

flava_status flava_scenes_cell_index(int *cell, const char *name, const char *key)
{
    for (int c = 0; c < CELLS; c++)
        if (!strcmp(name, cell_names[c])) {
            *cell = c;
            return FLAVA_OK;
        }
    return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: '%s', expected %s, %s, %s or %s", key, name,
                       cell_names[0], cell_names[1], cell_names[2], cell_names[3]);
}

flava_status flava_scenes_cell_list(int *cells, int *n, const char *const *names, int n_names,
                                    const char *key)
{
    if (n_names < 1 || n_names > CELLS)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: %d cells, expected 1 to %d", key, n_names,
                           CELLS);
    for (int i = 0; i < n_names; i++)
        FLAVA_TRY(flava_scenes_cell_index(&cells[i], names[i], key));
    *n = n_names;
    return FLAVA_OK;
}

flava_status flava_scenes_check_size(int64_t size, int item_rows, int item_cols, const char *key)
{
    if (size < 2 * (int64_t)item_rows || size < 2 * (int64_t)item_cols || size % 2 ||
        size > FLAVA_SCENES_MAX_SIZE)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s %lld: expected 0 (no scenes) or an even side "
                           "of at least twice the %dx%d items, at most %d", key, (long long)size,
                           item_rows, item_cols, FLAVA_SCENES_MAX_SIZE);
    return FLAVA_OK;
}

flava_status flava_scenes_one_item(flava_idx_set *out, const flava_idx_set *items, long n,
                                   int64_t size, int cell, uint64_t seed, const char *key)
{
    if (n < 0 || n > items->n || cell < FLAVA_SCENES_SEEDED_CELL || cell >= CELLS)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "one-item scenes of %ld of %lld items in cell %d", n,
                           (long long)items->n, cell);
    FLAVA_TRY(flava_scenes_check_size(size, items->rows, items->cols, key));
    if (n == 0)
        n = (long)items->n;
    const int side = (int)size;
    const size_t px = (size_t)side * side, item_px = (size_t)items->rows * items->cols;
    *out = (flava_idx_set){.n = n, .rows = side, .cols = side};
    uint8_t *cellbuf = NULL;
    /* zeroed: the scenes are black where no item is drawn */
    flava_status s = flava_alloc((void **)&out->images, px * (size_t)n, "one-item scenes");
    if (s == FLAVA_OK)
        s = flava_alloc((void **)&out->labels, (size_t)n, "one-item scene labels");
    if (s == FLAVA_OK)
        s = flava_alloc((void **)&cellbuf, (size_t)(side / 2) * (side / 2), "scene cell");
    for (long i = 0; i < n && s == FLAVA_OK; i++) {
        int c = cell;
        if (c == FLAVA_SCENES_SEEDED_CELL) {
            flava_rng r;
            flava_rng_init(&r, seed, (uint64_t)i);
            c = (int)flava_rng_below(&r, CELLS);
        }
        out->labels[i] = items->labels[i];
        s = flava_scenes_draw_item(out->images + px * (size_t)i, cellbuf, side, c,
                                   items->images + item_px * (size_t)i, items->cols, items->rows);
    }
    flava_free(cellbuf);
    if (s != FLAVA_OK)
        flava_idx_set_free(out);
    return s;
}

static flava_status render(uint8_t *pix, uint8_t *cellbuf, const scene *sc,
                           const flava_idx_set *items, int size)
{
    memset(pix, 0, (size_t)size * size);
    for (int c = 0; c < CELLS; c++)
        if (sc->label[c] != NO_ITEM)
            FLAVA_TRY(flava_scenes_draw_item(pix, cellbuf, size, c,
                                             items->images + (size_t)sc->item[c] * ITEM * ITEM,
                                             ITEM, ITEM));
    return FLAVA_OK;
}

/* "a sneaker in the top left, a coat in the top right and a bag in the
 * bottom right" */
static void caption(char *out, size_t cap, const scene *sc)
{
    int n = 0, total = 0;
    for (int c = 0; c < CELLS; c++)
        total += sc->label[c] != NO_ITEM;
    size_t len = 0;
    out[0] = '\0';
    for (int c = 0; c < CELLS; c++) {
        if (sc->label[c] == NO_ITEM)
            continue;
        const char *sep = n == 0 ? "" : n == total - 1 ? " and " : ", ";
        len += (size_t)snprintf(out + len, cap - len, "%s%s in the %s", sep,
                                item_phrase[sc->label[c]], cell_names[c]);
        n++;
    }
}

/* A class for a presence or count question: half the time one in the
 * scene, otherwise any class, so that "no" and "0" answers occur too. */
static int pick_class(const scene *sc, flava_rng *r)
{
    if (flava_rng_below(r, 2)) {
        int c = (int)flava_rng_below(r, CELLS);
        while (sc->label[c] == NO_ITEM)
            c = (c + 1) % CELLS;
        return sc->label[c];
    }
    return (int)flava_rng_below(r, FLAVA_IDX_CLASSES);
}

static flava_status add_question(cJSON *qs, cJSON *anns, int64_t image_id, int64_t qid,
                                 const char *question, const char *answer, const char *qtype,
                                 const char *atype)
{
    cJSON *q = cJSON_CreateObject(), *a = cJSON_CreateObject(), *answers = cJSON_CreateArray();
    if (!q || !a || !answers) {
        cJSON_Delete(q);
        cJSON_Delete(a);
        cJSON_Delete(answers);
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "scene question %lld", (long long)qid);
    }
    cJSON_AddItemToArray(qs, q);
    cJSON_AddItemToArray(anns, a);
    cJSON_AddNumberToObject(q, "image_id", (double)image_id);
    cJSON_AddStringToObject(q, "question", question);
    cJSON_AddNumberToObject(q, "question_id", (double)qid);
    cJSON_AddStringToObject(a, "question_type", qtype);
    cJSON_AddStringToObject(a, "multiple_choice_answer", answer);
    cJSON_AddItemToObject(a, "answers", answers);
    for (int k = 0; k < 10; k++) { /* ten answers per question, as VQAv2 collects */
        cJSON *one = cJSON_CreateObject();
        if (!one)
            return FLAVA_ERROR(FLAVA_ERR_NOMEM, "scene question %lld", (long long)qid);
        cJSON_AddItemToArray(answers, one);
        cJSON_AddStringToObject(one, "answer", answer);
        cJSON_AddStringToObject(one, "answer_confidence", "yes");
        cJSON_AddNumberToObject(one, "answer_id", k + 1);
    }
    cJSON_AddNumberToObject(a, "image_id", (double)image_id);
    cJSON_AddStringToObject(a, "answer_type", atype);
    cJSON_AddNumberToObject(a, "question_id", (double)qid);
    return FLAVA_OK;
}

static flava_status add_questions(cJSON *qs, cJSON *anns, const scene *sc, int64_t image_id,
                                  int nq, flava_rng *r)
{
    char q[160], a[32];
    for (int k = 0; k < nq; k++) {
        int64_t qid = image_id * 10 + k;
        if (k == 0) {
            int c = (int)flava_rng_below(r, CELLS);
            snprintf(q, sizeof q, "what is in the %s?", cell_names[c]);
            FLAVA_TRY(add_question(qs, anns, image_id, qid, q,
                                   sc->label[c] == NO_ITEM ? "nothing" : item_answer[sc->label[c]],
                                   "what is in the", "other"));
        } else if (k == 1) {
            int cls = pick_class(sc, r), found = 0;
            for (int c = 0; c < CELLS; c++)
                found |= sc->label[c] == cls;
            snprintf(q, sizeof q, "is there %s?", item_phrase[cls]);
            FLAVA_TRY(add_question(qs, anns, image_id, qid, q, found ? "yes" : "no",
                                   "is there a", "yes/no"));
        } else {
            int cls = pick_class(sc, r), count = 0;
            for (int c = 0; c < CELLS; c++)
                count += sc->label[c] == cls;
            snprintf(q, sizeof q, "how many %s are there?", item_plural[cls]);
            snprintf(a, sizeof a, "%d", count);
            FLAVA_TRY(add_question(qs, anns, image_id, qid, q, a, "how many", "number"));
        }
    }
    return FLAVA_OK;
}

static flava_status write_json(const char *dir, const char *name, cJSON *root)
{
    char path[4096 + 64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *text = cJSON_PrintUnformatted(root);
    if (!text)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s: cannot format the JSON", path);
    FILE *f = fopen(path, "w");
    flava_status s = FLAVA_OK;
    if (!f)
        s = FLAVA_ERROR(FLAVA_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    else if ((fputs(text, f) == EOF) | (fputc('\n', f) == EOF) | (fclose(f) != 0))
        s = FLAVA_ERROR(FLAVA_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    cJSON_free(text);
    return s;
}

static flava_status write_classes(const char *dir)
{
    char path[4096 + 32];
    snprintf(path, sizeof path, "%s/classes.txt", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return FLAVA_ERROR(FLAVA_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    for (int c = 0; c < FLAVA_IDX_CLASSES; c++)
        fprintf(f, "%s\n", flava_fashion_mnist_classes[c]);
    if (ferror(f) | fclose(f))
        return FLAVA_ERROR(FLAVA_ERR_IO, "%s: write failed", path);
    return FLAVA_OK;
}

/* The VQAv2 top-level objects, with the keys the official files carry. */
static cJSON *vqa_root(const char *split, const char *array_key, cJSON **array)
{
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return NULL;
    cJSON *info = cJSON_AddObjectToObject(root, "info");
    if (info)
        cJSON_AddStringToObject(info, "description", "flava generated Fashion-MNIST scenes");
    cJSON_AddStringToObject(root, "task_type", "Open-Ended");
    cJSON_AddStringToObject(root, "data_type", "fashion-mnist-scenes");
    cJSON_AddStringToObject(root, "data_subtype", split);
    *array = cJSON_AddArrayToObject(root, array_key);
    if (!*array) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

typedef struct split_out {
    const char *name;
    char dir[4096];
    FILE *tsv;
    cJSON *qroot, *aroot, *qs, *anns;
    uint8_t *pix, *cellbuf;
} split_out;

static flava_status write_scenes(split_out *o, const flava_scenes_opts *opts,
                                 const flava_idx_set *items, long n, uint64_t split_id)
{
    char path[4096 + 64], cap[512];
    FLAVA_TRY(make_dir(o->dir));
    snprintf(path, sizeof path, "%s/images", o->dir);
    FLAVA_TRY(make_dir(path));
    FLAVA_TRY(flava_alloc((void **)&o->pix, (size_t)opts->size * opts->size, "scene image"));
    FLAVA_TRY(flava_alloc((void **)&o->cellbuf, (size_t)opts->size * opts->size, "scene cell"));
    o->qroot = vqa_root(o->name, "questions", &o->qs);
    o->aroot = vqa_root(o->name, "annotations", &o->anns);
    if (!o->qroot || !o->aroot)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "scene JSON");
    snprintf(path, sizeof path, "%s/captions.tsv", o->dir);
    if (!(o->tsv = fopen(path, "w")))
        return FLAVA_ERROR(FLAVA_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    fprintf(o->tsv, "filepath\ttitle\n");
    for (long i = 0; i < n; i++) {
        flava_rng r;
        flava_rng_init(&r, opts->seed, split_id << 40 | (uint64_t)i);
        scene sc;
        draw_scene(&sc, &r, items);
        FLAVA_TRY(render(o->pix, o->cellbuf, &sc, items, opts->size));
        snprintf(path, sizeof path, "%s/images/%ld.png", o->dir, i);
        FLAVA_TRY(flava_image_write_png(path, o->pix, opts->size, opts->size, 1));
        caption(cap, sizeof cap, &sc);
        fprintf(o->tsv, "images/%ld.png\t%s\n", i, cap);
        FLAVA_TRY(add_questions(o->qs, o->anns, &sc, i, opts->questions, &r));
    }
    if (ferror(o->tsv))
        return FLAVA_ERROR(FLAVA_ERR_IO, "%s/captions.tsv: write failed", o->dir);
    FLAVA_TRY(write_json(o->dir, "questions.json", o->qroot));
    FLAVA_TRY(write_json(o->dir, "annotations.json", o->aroot));
    return write_classes(o->dir);
}

static flava_status generate_split(const flava_scenes_opts *opts, const char *split,
                                   const char *idx_prefix, long n, uint64_t split_id)
{
    char images[4096], labels[4096];
    snprintf(images, sizeof images, "%s/%s-images-idx3-ubyte.gz", opts->fashion_mnist_dir,
             idx_prefix);
    snprintf(labels, sizeof labels, "%s/%s-labels-idx1-ubyte.gz", opts->fashion_mnist_dir,
             idx_prefix);
    flava_idx_set items;
    FLAVA_TRY(flava_idx_load(&items, images, labels));
    flava_status s = FLAVA_OK;
    if (items.rows != ITEM || items.cols != ITEM)
        s = FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: %dx%d images, expected %dx%d", images, items.rows,
                        items.cols, ITEM, ITEM);
    split_out o = {.name = split};
    snprintf(o.dir, sizeof o.dir, "%s/%s", opts->out_dir, split);
    if (s == FLAVA_OK)
        s = write_scenes(&o, opts, &items, n, split_id);
    if (o.tsv && fclose(o.tsv) != 0 && s == FLAVA_OK)
        s = FLAVA_ERROR(FLAVA_ERR_IO, "%s/captions.tsv: write failed", o.dir);
    cJSON_Delete(o.qroot);
    cJSON_Delete(o.aroot);
    flava_free(o.pix);
    flava_free(o.cellbuf);
    flava_idx_set_free(&items);
    return s;
}

flava_status flava_scenes_generate(const flava_scenes_opts *opts)
{
    if (opts->size < 2 * ITEM || opts->size % 2)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "scene size %d, expected an even number >= %d",
                           opts->size, 2 * ITEM);
    if (opts->questions < 1 || opts->questions > 3)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "%d questions per scene, expected 1 to 3",
                           opts->questions);
    if (opts->n_train < 0 || opts->n_test < 0 || opts->n_train + opts->n_test == 0)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "%ld train and %ld test scenes, expected >= 0 each "
                           "and at least one in all", opts->n_train, opts->n_test);
    FLAVA_TRY(make_dir(opts->out_dir));
    if (opts->n_train)
        FLAVA_TRY(generate_split(opts, "train", "train", opts->n_train, 0));
    if (opts->n_test)
        FLAVA_TRY(generate_split(opts, "test", "t10k", opts->n_test, 1));
    return FLAVA_OK;
}

/* loader.c - the batch loader: a ring of batch slots filled by one producer
 * thread (each batch decoded by an OpenMP team), handed to the consumer in
 * order. */
#include "loader.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "rng.h"

typedef struct slot {
    flava_batch b;
    long g;              /* run-wide batch index held, -1 if none */
    int ready;
    flava_status status; /* of filling it; the message is in msg */
    char msg[2048];
} slot;

struct flava_loader {
    flava_loader_source src;
    flava_text_encoder enc;
    flava_loader_opts o;
    long batches; /* per epoch */
    long *perm;
    long perm_epoch;
    int nslots;
    slot *slots;
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    /* counted in this rank's batches; held: the one the consumer has, -1 if none */
    long next_fill, next_take, held;
};

long flava_loader_batches_per_epoch(const flava_loader *l) { return l->batches; }

static int has_images(const flava_loader *l) { return l->o.image_size > 0; }
static int has_text(const flava_loader *l) { return l->o.max_text_len > 0; }

static flava_status alloc_slot(slot *s, const flava_loader *l)
{
    flava_batch *b = &s->b;
    size_t B = (size_t)l->o.batch_size, T = (size_t)l->o.max_text_len;
    size_t S = (size_t)l->o.image_size, C = (size_t)l->o.codebook_size;
    s->g = -1;
    b->image_size = (int)S;
    b->T = (int)T;
    if (S)
        FLAVA_TRY(flava_alloc((void **)&b->pixel_values, sizeof(float) * B * 3 * S * S,
                              "pixel_values"));
    if (S && C)
        FLAVA_TRY(flava_alloc((void **)&b->codebook_pixel_values, sizeof(float) * B * 3 * C * C,
                              "codebook_pixel_values"));
    if (T) {
        FLAVA_TRY(flava_alloc((void **)&b->input_ids, sizeof(int32_t) * B * T, "input_ids"));
        FLAVA_TRY(flava_alloc((void **)&b->token_type_ids, sizeof(int32_t) * B * T,
                              "token_type_ids"));
        FLAVA_TRY(flava_alloc((void **)&b->attention_mask, sizeof(float) * B * T,
                              "attention_mask"));
    }
    const flava_glue_set *glue = l->src.glue;
    if (l->src.idx || (glue && glue->labels))
        FLAVA_TRY(flava_alloc((void **)&b->class_labels, sizeof(int32_t) * B, "class_labels"));
    if (glue && glue->scores)
        FLAVA_TRY(flava_alloc((void **)&b->regression_targets, sizeof(float) * B,
                              "regression_targets"));
    if (l->src.answers)
        FLAVA_TRY(flava_alloc((void **)&b->vqa_targets, sizeof(float) * B * l->src.answers->n,
                              "vqa_targets"));
    return FLAVA_OK;
}

static void free_slot(slot *s)
{
    flava_batch *b = &s->b;
    flava_free(b->pixel_values);
    flava_free(b->codebook_pixel_values);
    flava_free(b->input_ids);
    flava_free(b->token_type_ids);
    flava_free(b->attention_mask);
    flava_free(b->class_labels);
    flava_free(b->regression_targets);
    flava_free(b->vqa_targets);
}

/* The sample's image as RGB: decoded from its file, or the gray IDX item
 * replicated to three channels. */
static flava_status load_image(flava_image *img, const flava_loader *l, long k)
{
    if (l->src.pairs)
        return flava_image_read(img, l->src.pairs->image_paths[k]);
    if (l->src.vqa)
        return flava_image_read(img, l->src.vqa->q[k].image_path);
    const flava_idx_set *d = l->src.idx;
    size_t n = (size_t)d->rows * d->cols;
    FLAVA_TRY(flava_alloc((void **)&img->rgb, n * 3, "IDX image"));
    img->width = d->cols;
    img->height = d->rows;
    const uint8_t *g = d->images + (size_t)k * n;
    for (size_t i = 0; i < n; i++)
        img->rgb[3 * i] = img->rgb[3 * i + 1] = img->rgb[3 * i + 2] = g[i];
    return FLAVA_OK;
}

static flava_status fill_text(flava_batch *b, int i, const flava_loader *l, long k)
{
    int T = l->o.max_text_len, len = 0;
    int32_t *ids = b->input_ids + (size_t)i * T, *types = b->token_type_ids + (size_t)i * T;
    const flava_loader_source *src = &l->src;
    const char *a = src->pairs  ? src->pairs->captions[k]
                    : src->glue ? src->glue->text_a[k]
                    : src->vqa  ? src->vqa->q[k].question
                                : src->texts[k];
    const char *bb = src->glue && src->glue->text_b ? src->glue->text_b[k] : NULL;
    FLAVA_TRY(l->enc.encode(l->enc.self, ids, types, &len, T, a, bb));
    if (len < 0 || len > T)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "the text encoder returned %d ids, expected 0 to %d",
                           len, T);
    float *mask = b->attention_mask + (size_t)i * T;
    for (int t = 0; t < T; t++) {
        mask[t] = t < len ? 1.0f : 0.0f;
        if (t >= len) {
            ids[t] = l->enc.pad_id;
            types[t] = 0;
        }
    }
    return FLAVA_OK;
}

static flava_status fill_sample(flava_batch *b, int i, const flava_loader *l, long k)
{
    if (has_images(l)) {
        flava_image img = {0};
        int S = l->o.image_size, C = l->o.codebook_size;
        flava_status s = load_image(&img, l, k);
        if (s == FLAVA_OK)
            s = l->o.image_spec
                    ? flava_image_transform(b->pixel_values + (size_t)i * 3 * S * S, &img,
                                            l->o.image_spec)
                    : flava_image_preprocess(b->pixel_values + (size_t)i * 3 * S * S, &img, S,
                                             l->o.crop_shorter);
        if (s == FLAVA_OK && C)
            s = flava_image_codebook(b->codebook_pixel_values + (size_t)i * 3 * C * C, &img, C);
        flava_image_free(&img);
        FLAVA_TRY(s);
    }
    if (has_text(l))
        FLAVA_TRY(fill_text(b, i, l, k));
    if (b->class_labels)
        b->class_labels[i] = l->src.idx ? l->src.idx->labels[k] : l->src.glue->labels[k];
    if (b->regression_targets)
        b->regression_targets[i] = l->src.glue->scores[k];
    if (b->vqa_targets)
        flava_vqa_soft_scores(b->vqa_targets + (size_t)i * l->src.answers->n, l->src.answers,
                              &l->src.vqa->q[k]);
    return FLAVA_OK;
}

static void shuffle_for(flava_loader *l, long epoch)
{
    if (l->perm_epoch == epoch)
        return;
    for (long i = 0; i < l->src.n; i++)
        l->perm[i] = i;
    if (l->o.shuffle) {
        flava_rng r;
        flava_rng_init(&r, l->o.seed, (uint64_t)epoch);
        for (long i = l->src.n - 1; i > 0; i--) {
            long j = (long)(flava_rng_u64(&r) % (uint64_t)(i + 1)), t = l->perm[i];
            l->perm[i] = l->perm[j];
            l->perm[j] = t;
        }
    }
    l->perm_epoch = epoch;
}

/* The run-wide index of this rank's batch k. */
static long run_batch(const flava_loader *l, long k)
{
    return l->o.ranks > 1 ? k * l->o.ranks + l->o.rank : k;
}

/* Fills slot s with batch g; the first failing sample (lowest index, so
 * the message does not depend on thread timing) decides the error. */
static void fill_batch(flava_loader *l, slot *s, long g)
{
    long epoch = g / l->batches, first = (g % l->batches) * l->o.batch_size;
    shuffle_for(l, epoch);
    int B = (int)(l->src.n - first < l->o.batch_size ? l->src.n - first : l->o.batch_size);
    s->b.B = B;
    s->status = FLAVA_OK;
    int bad = B;
#pragma omp parallel for num_threads(l->o.threads) schedule(dynamic)
    for (int i = 0; i < B; i++) {
        long k = l->perm[first + i];
        flava_status st = fill_sample(&s->b, i, l, k);
        if (st != FLAVA_OK) {
#pragma omp critical(flava_loader_error)
            if (i < bad) {
                bad = i;
                s->status = st;
                snprintf(s->msg, sizeof s->msg, "batch %ld (epoch %ld), sample %ld: %s", g, epoch,
                         k, flava_error_message());
            }
        }
    }
}

static void *produce(void *arg)
{
    flava_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stop && l->next_fill - l->next_take >= l->nslots)
            pthread_cond_wait(&l->cv, &l->mu);
        if (l->stop)
            break;
        long g = l->next_fill;
        slot *s = &l->slots[g % l->nslots];
        pthread_mutex_unlock(&l->mu);
        fill_batch(l, s, run_batch(l, g));
        pthread_mutex_lock(&l->mu);
        s->g = g;
        s->ready = 1;
        l->next_fill++;
        pthread_cond_broadcast(&l->cv);
        if (s->status != FLAVA_OK)
            break; /* the consumer reports it; nothing after it is produced */
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

flava_status flava_loader_next(flava_loader *l, const flava_batch **batch, long *epoch,
                               long *step)
{
    pthread_mutex_lock(&l->mu);
    if (l->held >= 0) { /* the previous batch is given back */
        l->slots[l->held % l->nslots].ready = 0;
        l->next_take++;
        l->held = -1;
        pthread_cond_broadcast(&l->cv);
    }
    slot *s = &l->slots[l->next_take % l->nslots];
    while (!(s->ready && s->g == l->next_take))
        pthread_cond_wait(&l->cv, &l->mu);
    pthread_mutex_unlock(&l->mu);
    if (s->status != FLAVA_OK)
        return FLAVA_ERROR(s->status, "%s", s->msg); /* stays failed: the slot is not released */
    l->held = s->g;
    *batch = &s->b;
    *step = run_batch(l, s->g);
    *epoch = *step / l->batches;
    return FLAVA_OK;
}

/* The number of samples of the source's one set, or an error. */
static flava_status source_size(long *n, const flava_loader_source *src)
{
    int sets = !!src->idx + !!src->pairs + !!src->glue + !!src->vqa + !!src->texts;
    if (sets != 1)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "loader: %d data sets given, expected exactly one of "
                           "idx, pairs, glue, vqa, texts", sets);
    if (src->answers && (!src->vqa || src->vqa->n == 0 || src->vqa->q[0].n_answers == 0))
        return FLAVA_ERROR(FLAVA_ERR_ARG, "loader: an answer vocabulary needs an annotated VQA "
                           "set");
    if (src->texts && src->n <= 0)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "loader: texts need their count n, got %ld", src->n);
    long have = src->idx ? src->idx->n : src->pairs ? src->pairs->n
              : src->glue ? src->glue->n : src->vqa ? src->vqa->n : src->n;
    if (src->n < 0 || src->n > have || have <= 0)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "loader: %ld samples asked of a set of %ld, expected "
                           "1 to %ld (0: all)", src->n, have, have);
    *n = src->n ? src->n : have;
    return FLAVA_OK;
}

static flava_status check_opts(const flava_loader_source *src, const flava_text_encoder *enc,
                               const flava_loader_opts *o, long n)
{
    if (o->batch_size <= 0 || o->prefetch < 1 || o->threads < 1 || o->image_size < 0 ||
        o->codebook_size < 0 || o->max_text_len < 0 || o->first_batch < 0 || o->ranks < 0 ||
        o->rank < 0 || (o->rank && o->rank >= o->ranks))
        return FLAVA_ERROR(FLAVA_ERR_ARG, "loader: batch_size %d, prefetch %d, threads %d, "
                           "image_size %d, codebook_size %d, max_text_len %d, rank %d of %d: "
                           "expected positive batch size, prefetch and threads, no negative "
                           "sizes and a rank below the ranks",
                           o->batch_size, o->prefetch, o->threads, o->image_size,
                           o->codebook_size, o->max_text_len, o->rank, o->ranks);
    if (o->image_size && !src->idx && !src->pairs && !src->vqa)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "loader: image_size %d but the source has no images",
                           o->image_size);
    if (o->image_spec && o->image_spec->crop != o->image_size)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "loader: the image spec crops to %d, image_size is %d",
                           o->image_spec->crop, o->image_size);
    if (o->codebook_size && !o->image_size)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "loader: codebook_size needs image_size");
    if (o->max_text_len && src->idx)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "loader: max_text_len %d but the source has no texts",
                           o->max_text_len);
    if (o->max_text_len && (!enc || !enc->encode))
        return FLAVA_ERROR(FLAVA_ERR_ARG, "loader: texts need a text encoder");
    if (!o->image_size && !o->max_text_len)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "loader: neither images (image_size) nor texts "
                           "(max_text_len) asked for");
    if (o->drop_last && n < o->batch_size)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "loader: %ld samples make no full batch of %d", n,
                           o->batch_size);
    return FLAVA_OK;
}

flava_status flava_loader_open(flava_loader **loader, const flava_loader_source *src,
                               const flava_text_encoder *enc, const flava_loader_opts *opts)
{
    *loader = NULL;
    long n = 0;
    FLAVA_TRY(source_size(&n, src));
    FLAVA_TRY(check_opts(src, enc, opts, n));
    flava_loader *l = calloc(1, sizeof *l);
    if (!l)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "loader");
    l->src = *src;
    l->src.n = n;
    if (enc)
        l->enc = *enc;
    l->o = *opts;
    l->batches = opts->drop_last ? n / opts->batch_size
                                 : (n + opts->batch_size - 1) / opts->batch_size;
    l->perm_epoch = -1;
    l->held = -1;
    l->next_fill = l->next_take = opts->first_batch;
    l->nslots = opts->prefetch + 1; /* one held by the consumer, prefetch being filled */
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    flava_status s = FLAVA_OK;
    l->perm = malloc(sizeof(long) * n);
    l->slots = calloc((size_t)l->nslots, sizeof(slot));
    if (!l->perm || !l->slots)
        s = FLAVA_ERROR(FLAVA_ERR_NOMEM, "loader: %ld samples, %d slots", n, l->nslots);
    for (int i = 0; s == FLAVA_OK && i < l->nslots; i++)
        s = alloc_slot(&l->slots[i], l);
    if (s == FLAVA_OK) {
        if (pthread_create(&l->thread, NULL, produce, l) != 0)
            s = FLAVA_ERROR(FLAVA_ERR_NOMEM, "loader: cannot start the producer thread");
        else
            l->thread_started = 1;
    }
    if (s != FLAVA_OK) {
        flava_loader_close(l);
        return s;
    }
    *loader = l;
    return FLAVA_OK;
}

void flava_loader_close(flava_loader *l)
{
    if (!l)
        return;
    if (l->thread_started) {
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
    }
    for (int i = 0; l->slots && i < l->nslots; i++)
        free_slot(&l->slots[i]);
    free(l->slots);
    free(l->perm);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l);
}

/* loader.h - the batch loader: turns a data source (Fashion-MNIST IDX
 * images, image-text pairs, texts or text pairs) into flava_batch inputs,
 * decoding and preprocessing in OpenMP threads on a producer thread that
 * runs ahead of the consumer by a few batches.
 *
 * Batch g of the run holds the samples perm_e[(g mod batches) * B ...] where
 * e = g / batches and perm_e is a Fisher-Yates shuffle drawn from
 * flava_rng_init(seed, e): the batches depend on the seed alone, never on
 * the number of threads or on timing. */
#ifndef FLAVA_DATA_LOADER_H
#define FLAVA_DATA_LOADER_H

#include <stdint.h>

#include "batch.h"
#include "idx.h"
#include "imagetext.h"
#include "status.h"

/* One text (or text pair) to token ids; the tokenizer module supplies it.
 * Writes at most max_len ids and their token type ids, sets *len. Called
 * from several threads at once, so it must not modify shared state. */
typedef struct flava_text_encoder {
    flava_status (*encode)(void *self, int32_t *ids, int32_t *type_ids, int *len, int max_len,
                           const char *text_a, const char *text_b);
    void *self;
    int32_t pad_id; /* written after the last id; attention_mask is 0 there */
} flava_text_encoder;

typedef struct flava_loader_opts {
    int batch_size;
    int image_size;    /* pixel_values side (224); 0: no pixel_values */
    int codebook_size; /* codebook_pixel_values side (112); 0: none */
    int crop_shorter;  /* resize the shorter side and centre-crop (else squash) */
    int max_text_len;  /* T of input_ids; 0: no text */
    int shuffle;       /* 0: file order every epoch */
    int drop_last;     /* 1: skip the last partial batch of an epoch */
    int prefetch;      /* batches decoded ahead of the consumer, >= 1 */
    int threads;       /* decoding threads, >= 1 */
    uint64_t seed;
    long first_batch;  /* run-wide index of the first batch (resuming a run) */
} flava_loader_opts;

/* A source: what each sample holds. Only the pointers a kind needs are set;
 * the loader reads them and never takes ownership. */
typedef struct flava_loader_source {
    long n;
    const flava_idx_set *idx;        /* images (gray, any size) + class_labels */
    const flava_imagetext *pairs;    /* image_paths and captions */
    const char *const *text_a;       /* texts (e.g. GLUE sentences) */
    const char *const *text_b;       /* second texts of pairs, or NULL */
    const int32_t *class_labels;     /* per-sample labels for text sources, or NULL */
    const float *regression_targets; /* per-sample targets for text sources, or NULL */
} flava_loader_source;

typedef struct flava_loader flava_loader;

/* Images come from `idx` or `pairs` when opts->image_size > 0; texts from
 * `pairs` (captions) or text_a/text_b when opts->max_text_len > 0, which
 * then needs an encoder. Starts the producer thread. */
flava_status flava_loader_open(flava_loader **loader, const flava_loader_source *src,
                               const flava_text_encoder *enc, const flava_loader_opts *opts);
/* The next batch (valid until the next call); *epoch and *step say where it
 * is in the run. Waits for the producer if it is behind. */
flava_status flava_loader_next(flava_loader *loader, const flava_batch **batch, long *epoch,
                               long *step);
long flava_loader_batches_per_epoch(const flava_loader *loader);
void flava_loader_close(flava_loader *loader);

#endif

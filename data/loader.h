/* loader.h - the batch loader: turns a data source (Fashion-MNIST IDX
 * images, image-text pairs, GLUE, VQA, texts) into flava_batch inputs,
 * decoding and preprocessing in OpenMP threads on a producer thread that
 * runs ahead of the consumer by a few batches.
 *
 * Batch g of the run holds the samples perm_e[(g mod batches) * B ...] where
 * e = g / batches and perm_e is a Fisher-Yates shuffle drawn from
 * flava_rng_init(seed, e): the batches depend on the seed alone, never on
 * the number of threads or on timing. A loader of one of R data-parallel
 * ranks yields the run's batches rank, rank + R, rank + 2R, ... (batch k
 * of its own is the run's k * R + rank), so the ranks share each epoch as
 * PyTorch's DistributedSampler shares it. */
#ifndef FLAVA_DATA_LOADER_H
#define FLAVA_DATA_LOADER_H

#include <stdint.h>

#include "batch.h"
#include "glue.h"
#include "idx.h"
#include "image.h"
#include "imagetext.h"
#include "status.h"
#include "vqa.h"

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
    /* A model family's own preprocessing (its crop must be image_size);
     * NULL: BICUBIC, squash or crop_shorter, CLIP's mean and std. */
    const flava_image_spec *image_spec;
    int max_text_len;  /* T of input_ids; 0: no text */
    int shuffle;       /* 0: file order every epoch */
    int drop_last;     /* 1: skip the last partial batch of an epoch */
    int prefetch;      /* batches decoded ahead of the consumer, >= 1 */
    int threads;       /* decoding threads, >= 1 */
    uint64_t seed;
    long first_batch;  /* index of the first batch (resuming a run), in this rank's batches */
    int rank, ranks;   /* this rank of the data-parallel ranks (0 of 1: ranks 0 or 1) */
} flava_loader_opts;

/* A source: exactly one data set, read in place (the loader never takes
 * ownership). What a batch holds follows from the set and the options:
 *   idx    gray images -> pixel_values, labels -> class_labels
 *   pairs  images -> pixel_values, captions -> input_ids
 *   glue   sentence (pairs) -> input_ids, labels -> class_labels or
 *          regression_targets (STS-B); none for test splits
 *   vqa    images -> pixel_values, questions -> input_ids, and with an
 *          answer vocabulary the soft scores -> vqa_targets
 *   texts  plain texts -> input_ids (e.g. a corpus for MLM) */
typedef struct flava_loader_source {
    long n; /* samples used: the first n of the set (0: all; texts: required) */
    const flava_idx_set *idx;
    const flava_imagetext *pairs;
    const flava_glue_set *glue;
    const flava_vqa_set *vqa;
    const flava_vqa_vocab *answers; /* with vqa: fills vqa_targets */
    char *const *texts;
} flava_loader_source;

typedef struct flava_loader flava_loader;

/* Images are loaded when opts->image_size > 0, texts encoded when
 * opts->max_text_len > 0 (which needs an encoder); asking for what the
 * source does not have is an error. Starts the producer thread. */
flava_status flava_loader_open(flava_loader **loader, const flava_loader_source *src,
                               const flava_text_encoder *enc, const flava_loader_opts *opts);
/* The next batch (valid until the next call); *epoch and *step say where it
 * is in the run. Waits for the producer if it is behind. */
flava_status flava_loader_next(flava_loader *loader, const flava_batch **batch, long *epoch,
                               long *step);
long flava_loader_batches_per_epoch(const flava_loader *loader);
void flava_loader_close(flava_loader *loader);

#endif

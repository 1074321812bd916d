/* idx.h - IDX files (the MNIST / Fashion-MNIST layout), plain or gzip. */
#ifndef FLAVA_DATA_IDX_H
#define FLAVA_DATA_IDX_H

#include <stdint.h>

#include "status.h"

/* One unsigned-byte IDX array (dtype code 0x08). */
typedef struct flava_idx {
    int ndim;
    int64_t dims[4];
    uint8_t *data; /* dims[0] * ... * dims[ndim-1] bytes, flava_alloc'ed */
} flava_idx;

/* Reads an unsigned-byte IDX file with `ndim` dimensions (gzread reads
 * plain and gzip files alike); checks the magic, dtype code, dimensions and
 * that the file holds exactly the declared number of bytes. */
flava_status flava_idx_read(flava_idx *arr, const char *path, int ndim);
void flava_idx_free(flava_idx *arr);

/* A labelled image set: images [n, rows, cols], labels [n] in 0..9. */
typedef struct flava_idx_set {
    int64_t n;
    int rows, cols;
    uint8_t *images;
    uint8_t *labels;
} flava_idx_set;

#define FLAVA_IDX_CLASSES 10

/* Reads an images file and a labels file and checks they agree. */
flava_status flava_idx_load(flava_idx_set *set, const char *images_path, const char *labels_path);
void flava_idx_set_free(flava_idx_set *set);

/* The Fashion-MNIST class names, by label. */
extern const char *const flava_fashion_mnist_classes[FLAVA_IDX_CLASSES];

#endif

/* scenes.h - generated captioned scenes with VQA questions: Fashion-MNIST
 * items placed in a 2x2 grid (empty cells allowed), so that the image-text,
 * VQAv2 and image readers all run on real formats with real images. */
#ifndef FLAVA_DATA_SCENES_H
#define FLAVA_DATA_SCENES_H

#include <stdint.h>

#include "status.h"

typedef struct flava_scenes_opts {
    const char *fashion_mnist_dir; /* holds train-*-ubyte.gz and t10k-*-ubyte.gz */
    const char *out_dir;
    long n_train, n_test;          /* scenes per split */
    int size;                      /* image side in pixels, even, >= 56 */
    int questions;                 /* questions per scene, 1 to 3 */
    uint64_t seed;
} flava_scenes_opts;

/* Writes OUT/{train,test}/: images/<image_id>.png (gray), captions.tsv
 * (filepath, title), questions.json and annotations.json (VQAv2 format, ten
 * answers per question), classes.txt (the ten class names). Train scenes use
 * train items only, test scenes test items only. Scene i of a split draws
 * from its own RNG stream, so a scene does not depend on the split size. */
flava_status flava_scenes_generate(const flava_scenes_opts *opts);

#endif

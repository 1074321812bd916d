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

/* Draws one gray item (item_w x item_h) into cell `cell` (0 top left,
 * 1 top right, 2 bottom left, 3 bottom right) of a size x size scene `pix`:
 * bicubic resize to size/2 through cellbuf ((size/2)^2 bytes), then copied
 * in place. How the generator draws every item, so that other code (the
 * zero-shot task's one-item scenes) draws exactly the same pixels. */
flava_status flava_scenes_draw_item(uint8_t *pix, uint8_t *cellbuf, int size, int cell,
                                    const uint8_t *item, int item_w, int item_h);

#endif

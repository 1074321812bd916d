/* scenes.h - generated captioned scenes with VQA questions: Fashion-MNIST
 * items placed in a 2x2 grid (empty cells allowed), so that the image-text,
 * VQAv2 and image readers all run on real formats with real images. */
#ifndef FLAVA_DATA_SCENES_H
#define FLAVA_DATA_SCENES_H

#include <stdint.h>

#include "idx.h"
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

/* One-item scenes: each item of an IDX set alone in a cell of an otherwise
 * black 2x2 scene, so that a model pretrained on scenes sees single items
 * (pretraining's idx sources, the linear probe, zero-shot) at the scale
 * the scenes show them rather than upscaled to the whole input. */

enum { FLAVA_SCENES_CELLS = 4, FLAVA_SCENES_MAX_SIZE = 4096 };
/* flava_scenes_one_item's cell: each item's cell drawn from the seed */
#define FLAVA_SCENES_SEEDED_CELL (-1)

/* *cell: the index (as flava_scenes_draw_item numbers them) of the cell
 * called `name`: "top left", "top right", "bottom left" or "bottom right".
 * Another name is FLAVA_ERR_CONFIG naming `key` and the valid names. */
flava_status flava_scenes_cell_index(int *cell, const char *name, const char *key);

/* cells[*n] (room for FLAVA_SCENES_CELLS): the indices of names[n_names],
 * a config list `key` of 1 to FLAVA_SCENES_CELLS cell names. */
flava_status flava_scenes_cell_list(int *cells, int *n, const char *const *names, int n_names,
                                    const char *key);

/* Checks a one-item scene side for items_rows x items_cols items: even, at
 * least twice the item side, at most FLAVA_SCENES_MAX_SIZE; else
 * FLAVA_ERR_CONFIG naming `key`. */
flava_status flava_scenes_check_size(int64_t size, int item_rows, int item_cols,
                                     const char *key);

/* *out (allocated here, labels copied; flava_idx_set_free): the first n
 * items of `items` (n = 0: all), each drawn by flava_scenes_draw_item into
 * an otherwise black size x size scene: all in cell `cell`, or with
 * FLAVA_SCENES_SEEDED_CELL item i in the cell flava_rng_below(4) draws from
 * stream flava_rng_init(seed, i) (so an item's cell depends on the seed and
 * its index alone). `key` names the size in errors (check_size). */
flava_status flava_scenes_one_item(flava_idx_set *out, const flava_idx_set *items, long n,
                                   int64_t size, int cell, uint64_t seed, const char *key);

#endif

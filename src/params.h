/* params.h - the table of every parameter of a model (llm.c style).
 *
 * Each entry names one tensor (its HuggingFace state_dict key), its shape
 * and its offset in ONE contiguous block of floats. Gradients and the AdamW
 * moments are blocks of the same size indexed by the same offsets, so the
 * optimizer is one flat loop and a checkpoint is one walk over the table.
 * Tensors are packed in declaration order with no gaps, which is how the
 * q/k/v weights of a layer form one [3C, C] matrix. */
#ifndef FLAVA_PARAMS_H
#define FLAVA_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

enum { FLAVA_PARAM_NAME_MAX = 128, FLAVA_PARAM_MAX_DIMS = 4 };

typedef struct flava_param {
    char name[FLAVA_PARAM_NAME_MAX];
    /* A second key under which the same tensor is stored ("" if none):
     * HF ties `X_head.bias` and `X_head.decoder.bias`. */
    char alias[FLAVA_PARAM_NAME_MAX];
    int ndim;
    int64_t shape[FLAVA_PARAM_MAX_DIMS];
    size_t offset, numel;
    int no_decay; /* biases, LayerNorm, embeddings, tokens, logit_scale */
} flava_param;

typedef struct flava_param_table {
    flava_param *p;
    int n, cap;
    size_t total; /* floats in the block */
} flava_param_table;

void flava_params_init(flava_param_table *t);
void flava_params_free(flava_param_table *t);

/* Appends a tensor (ndim 0..4 dims given in `shape`); *offset receives its
 * offset in the block. A duplicate name is an error. */
flava_status flava_params_add(flava_param_table *t, size_t *offset, const char *name, int no_decay,
                              int ndim, const int64_t *shape);
/* Shorthands for the common ranks. */
flava_status flava_params_add1(flava_param_table *t, size_t *offset, const char *name,
                               int no_decay, int64_t d0);
flava_status flava_params_add2(flava_param_table *t, size_t *offset, const char *name,
                               int no_decay, int64_t d0, int64_t d1);
/* Sets the alias of the tensor at `offset` (see flava_param.alias). */
flava_status flava_params_alias(flava_param_table *t, size_t offset, const char *alias);

/* x[n] = std * standard normal draws, one RNG stream (seed, stream << 32 |
 * chunk) per 64K-value chunk: the same values for any number of threads.
 * Model families' initialisers draw each tensor this way (stream = its
 * index in the table). */
void flava_params_fill_normal(float *x, size_t n, double std, uint64_t seed, uint64_t stream);

/* The entry named `name` (either key), or NULL. */
const flava_param *flava_params_find(const flava_param_table *t, const char *name);

/* Marker for an absent optional tensor (a linear without bias). */
#define FLAVA_NO_PARAM ((size_t)-1)
/* base + offset, or NULL for FLAVA_NO_PARAM or a NULL base. */
static inline float *flava_param_ptr(float *base, size_t offset)
{
    return (base && offset != FLAVA_NO_PARAM) ? base + offset : NULL;
}

#endif

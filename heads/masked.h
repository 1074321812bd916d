/* masked.h - the masked-prediction head HF FLAVA uses for MLM, MIM and both
 * MMM parts: dense -> activation -> LayerNorm -> decoder + bias, on the
 * selected positions of one sequence, cross-entropy against the labels
 * (-100 ignored). The four heads differ only in the description below. */
#ifndef FLAVA_HEADS_MASKED_H
#define FLAVA_HEADS_MASKED_H

#include "model.h"

typedef enum { MASKED_IMAGE_LABELS, MASKED_TEXT_LABELS } masked_labels;
typedef enum {
    MASKED_SEQ_IMAGE,      /* image_masked: FLAVA's unimodal MIM */
    MASKED_SEQ_TEXT,       /* text_masked: unimodal MLM */
    MASKED_SEQ_MM_IMAGE,   /* multimodal_masked, positions 2 .. 2+P */
    MASKED_SEQ_MM_TEXT,    /* multimodal_masked, the last T positions */
} masked_seq;

typedef struct masked_head {
    const char *prefix;   /* "mlm_head", ... */
    masked_seq seq;
    masked_labels labels;
    int image_config;     /* 1: sizes from image_config, 0: text_config */
} masked_head;

flava_status masked_declare(const masked_head *h, flava_param_table *t, const flava_config *c);
size_t masked_mem_floats(const masked_head *h, const flava_config *c, int B, int T, int P);
int masked_max_rows(const masked_head *h, const flava_config *c, int B, int T, int P);
int masked_applies(const masked_head *h, const flava_head_io *io);
flava_status masked_forward(const masked_head *h, flava_head_state *st, const flava_head_io *io);
flava_status masked_backward(const masked_head *h, flava_head_state *st, const flava_head_io *io,
                             float dloss);

/* Defines one head's flava_head_ops around a const masked_head. */
#define MASKED_HEAD_OPS(var, desc, hname, lname)                                          \
    static flava_status var##_declare(flava_param_table *t, const flava_config *c)        \
    {                                                                                      \
        return masked_declare(&desc, t, c);                                                \
    }                                                                                      \
    static size_t var##_mem(const flava_config *c, int B, int T, int P)                   \
    {                                                                                      \
        return masked_mem_floats(&desc, c, B, T, P);                                       \
    }                                                                                      \
    static int var##_rows(const flava_config *c, int B, int T, int P)                     \
    {                                                                                      \
        return masked_max_rows(&desc, c, B, T, P);                                         \
    }                                                                                      \
    static int var##_applies(const flava_head_io *io) { return masked_applies(&desc, io); } \
    static flava_status var##_forward(flava_head_state *st, const flava_head_io *io)      \
    {                                                                                      \
        return masked_forward(&desc, st, io);                                              \
    }                                                                                      \
    static flava_status var##_backward(flava_head_state *st, const flava_head_io *io,     \
                                       float dloss)                                        \
    {                                                                                      \
        return masked_backward(&desc, st, io, dloss);                                      \
    }                                                                                      \
    const flava_head_ops var = {                                                           \
        .name = hname,                                                                     \
        .logits_name = lname,                                                              \
        .declare = var##_declare,                                                          \
        .mem_floats = var##_mem,                                                           \
        .max_rows = var##_rows,                                                            \
        .applies = var##_applies,                                                          \
        .forward = var##_forward,                                                          \
        .backward = var##_backward,                                                        \
    }

#endif

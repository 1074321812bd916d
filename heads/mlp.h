/* mlp.h - the fine-tuning classifier both VQA and classification use:
 * dense (C -> 2C) -> GELU -> LayerNorm -> decoder (2C -> K) on a pooled
 * output (tanh(dense(CLS)) of an encoder), as MMF's FLAVA heads do.
 * Parameters PREFIX.dense.*, PREFIX.LayerNorm.*, PREFIX.decoder.*. */
#ifndef FLAVA_HEADS_MLP_H
#define FLAVA_HEADS_MLP_H

#include "model.h"

typedef enum { MLP_LOSS_BCE_SCALED, MLP_LOSS_CE, MLP_LOSS_MSE } mlp_loss;

flava_status mlp_declare(flava_param_table *t, const char *prefix, int C, int K);
size_t mlp_mem_floats(int B, int C, int K);
/* Logits [B,K] of the pooled input [B,C]; with targets, the loss. */
flava_status mlp_forward(flava_head_state *st, const flava_head_io *io, const char *prefix,
                         const float *pooled, int C, int K, mlp_loss loss);
flava_status mlp_backward(flava_head_state *st, const flava_head_io *io, const char *prefix,
                          const float *pooled, float *dpooled, int C, int K, mlp_loss loss,
                          float dloss);

/* The same on a parameter table other than a flava_model's (the CLIP and
 * ALIGN families' classifier): its six tensors in declaration order and
 * their gradients (NULL without gradients; p[i] NULL if undeclared). */
enum { MLP_NPARAMS = 6 };
typedef struct mlp_params {
    float *p[MLP_NPARAMS], *g[MLP_NPARAMS];
} mlp_params;
void mlp_params_find(mlp_params *mp, const flava_param_table *t, float *params, float *grads,
                     const char *prefix);
/* st->mem holds mlp_mem_floats(b->B, C, K) floats. */
flava_status mlp_forward_params(flava_head_state *st, flava_ctx *ctx, const flava_batch *b,
                                const mlp_params *mp, const float *pooled, int C, int K,
                                mlp_loss loss);
/* Accumulates into dpooled[B,C] and the gradients. */
flava_status mlp_backward_params(flava_head_state *st, flava_ctx *ctx, const flava_batch *b,
                                 const mlp_params *mp, const float *pooled, float *dpooled,
                                 int C, int K, mlp_loss loss, float dloss);

#endif

/* encoder.h - one transformer encoder (a stack of self-attention blocks),
 * forward and backward, shared by every encoder of every model family.
 *
 * The block is parametrised rather than FLAVA-specific: pre-LN
 * (x += attn(LN(x)); x += mlp(LN(x)), FLAVA/ViT/CLIP) or post-LN
 * (x = LN(x + attn(x)); x = LN(x + mlp(x)), BERT), the MLP activation, the
 * LayerNorm eps, causal attention, and an optional final LayerNorm. The
 * q/k/v projections of a layer are one [3C, C] linear (their weights are
 * adjacent in the parameter block), so attention reads one fused
 * qkv[B,T,3C]. Dropout, in training passes only, sits where HF's BERT, ViT
 * and FLAVA layers have it: on the attention probabilities, on the
 * attention projection's and the MLP's outputs before their residual add,
 * and optionally on the input (the embeddings' dropout). Parameter names come from a naming scheme (printf formats
 * taking the prefix and the layer index), so one declaration function
 * serves HF FLAVA's names and other families' names alike. */
#ifndef FLAVA_ENCODER_H
#define FLAVA_ENCODER_H

#include <stddef.h>

#include "ctx.h"
#include "params.h"
#include "status.h"

typedef enum flava_activation {
    FLAVA_ACT_GELU = 0, /* exact (erf) GELU */
    FLAVA_ACT_RELU,
    FLAVA_ACT_QUICK_GELU, /* CLIP's x * sigmoid(1.702 x) */
} flava_activation;

/* Parses an HF `hidden_act` string ("gelu", "relu", "quick_gelu"). */
flava_status flava_activation_parse(flava_activation *out, const char *name);
/* The activation over n values, forward and (accumulating) backward. */
flava_status flava_act_forward(flava_ctx *ctx, flava_activation act, float *out,
                               const float *inp, int64_t n);
flava_status flava_act_backward(flava_ctx *ctx, flava_activation act, float *dinp,
                                const float *dout, const float *inp, int64_t n);

typedef struct flava_encoder_spec {
    int layers, hidden, heads, intermediate;
    float eps;
    flava_activation act;
    int pre_ln;   /* 1: pre-LN block; 0: post-LN block */
    int causal;   /* mask keys after the query */
    int final_ln; /* a LayerNorm after the last block */
    int qkv_bias;
    /* dropout probabilities of a training pass (HF's hidden_dropout_prob
     * and attention_probs_dropout_prob), and whether the hidden one also
     * applies to the input (x[0], after the caller's embedding) */
    float hidden_dropout, attention_dropout;
    int input_dropout;
} flava_encoder_spec;

/* Names of one layer's tensors as printf formats of (prefix, layer). Each
 * linear/LayerNorm is named by its stem; ".weight"/".bias" are appended. */
typedef struct flava_encoder_names {
    const char *q, *k, *v, *proj, *ln1, *ln2, *fc1, *fc2;
    const char *final_ln; /* format of (prefix) */
} flava_encoder_names;

/* HF FLAVA/ViT names: PREFIX.encoder.layer.N.attention.attention.query, ... */
extern const flava_encoder_names flava_encoder_names_hf_vit;

/* Offsets of one block's tensors in the parameter block. ln1 is the norm
 * before attention (pre-LN) or after it (post-LN); likewise ln2. */
typedef struct flava_block_offsets {
    size_t ln1_w, ln1_b, qkv_w, qkv_b, proj_w, proj_b;
    size_t ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b;
} flava_block_offsets;

typedef struct flava_encoder {
    flava_encoder_spec spec;
    flava_block_offsets *layer; /* [spec.layers] */
    size_t final_ln_w, final_ln_b;
} flava_encoder;

/* Declares the encoder's parameters under `prefix` in the table. */
flava_status flava_encoder_declare(flava_encoder *e, flava_param_table *t,
                                   const flava_encoder_spec *spec,
                                   const flava_encoder_names *names, const char *prefix);
void flava_encoder_free(flava_encoder *e);

/* Activations of one forward pass over [B,T] tokens (N = B*T rows), kept
 * for backward. Carved from the caller's arena by flava_encoder_acts_bind. */
typedef struct flava_encoder_acts {
    int B, T;
    const float *key_mask; /* [B,T] or NULL: 1 = attend, 0 = masked key */
    /* A training pass drops out with masks drawn from dropout_seed: stream 0
     * for the input, 1 + 3l, 2 + 3l and 3 + 3l for layer l's attention
     * probabilities, attention output and MLP output (src/ops/dropout.c).
     * Set by the caller before each forward; bind clears them. */
    int train;
    uint64_t dropout_seed;
    float *x;              /* [L+1][N,C]: x[0] the input, x[l+1] block l's output */
    float *ln1, *ln1_mean, *ln1_var; /* [L][N,C], [L][N] */
    float *qkv;                        /* [L][N,3C] */
    float *att;                        /* [L][B,NH,T,T] */
    float *attn;                       /* [L][N,C] heads concatenated, before proj */
    float *r1;                         /* [L][N,C] residual after attention */
    float *ln2, *ln2_mean, *ln2_var;  /* [L][N,C], [L][N] */
    float *fc1, *fc1_act;              /* [L][N,FF] */
    float *r2;                         /* post-LN only: [L][N,C] residual after MLP */
    float *out, *out_mean, *out_var;  /* final LN: [N,C], [N]; out == x[L] without it */
} flava_encoder_acts;

size_t flava_encoder_acts_floats(const flava_encoder_spec *s, int B, int T);
/* Points the activations into mem (flava_encoder_acts_floats(s,B,T) floats). */
void flava_encoder_acts_bind(flava_encoder_acts *a, const flava_encoder_spec *s, int B, int T,
                             float *mem);
/* x[L]: the last block's output, before the final LayerNorm. */
float *flava_encoder_last(const flava_encoder_acts *a, const flava_encoder_spec *s);

/* Backward scratch, shareable by every encoder run one after another. */
size_t flava_encoder_scratch_floats(const flava_encoder_spec *s, int B, int T);

/* Runs the stack on a->x[0] (filled by the caller; dropped out in place if
 * the spec says so). */
flava_status flava_encoder_forward(flava_ctx *ctx, const flava_encoder *e, const float *params,
                                   flava_encoder_acts *a);

/* Backward from dout (gradient of the final LN output, or NULL) and dlast
 * (gradient of x[L] from elsewhere, or NULL). Accumulates parameter
 * gradients into grads and the input's gradient into dx0 (if not NULL). */
flava_status flava_encoder_backward(flava_ctx *ctx, float *dx0, float *grads,
                                    const flava_encoder *e, const float *params,
                                    const flava_encoder_acts *a, const float *dout,
                                    const float *dlast, float *scratch);

#endif

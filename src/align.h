/* align.h - the ALIGN model family (HF AlignModel): an EfficientNet image
 * tower (efficientnet.h) and a BERT text tower (the shared encoder.h stack,
 * post-LN), trained contrastively.
 *
 * As HF AlignModel.forward: image_embeds = the tower's pooled output (mean
 * over HxW of the last block, no projection; its width must equal
 * projection_dim); text_embeds = text_projection(h[:, 0, :]) (the text
 * pooler exists in the checkpoint but is unused); both L2-normalised;
 * logits_per_text = T I^T / temperature, logits_per_image its transpose;
 * loss = (CE(logits_per_text) + CE(logits_per_image)) / 2, each cross-
 * entropy with targets arange(B) and label_smoothing 0.1.
 *
 * Checkpoints: safetensors under HF AlignModel state_dict keys, the batch
 * norm buffers included (running_mean, running_var, num_batches_tracked as
 * I64), the HF config JSON in __metadata__["config"]; an HF folder
 * (config.json + model.safetensors) reads too. */
#ifndef FLAVA_ALIGN_H
#define FLAVA_ALIGN_H

#include <stdint.h>

#include "ctx.h"
#include "efficientnet.h"
#include "encoder.h"
#include "params.h"
#include "status.h"

/* HF AlignTextConfig fields (BERT). */
typedef struct flava_align_text_config {
    int vocab_size, hidden_size, num_hidden_layers, num_attention_heads, intermediate_size;
    int max_position_embeddings, type_vocab_size, pad_token_id;
    char hidden_act[16], position_embedding_type[16];
    double hidden_dropout_prob, attention_probs_dropout_prob, initializer_range, layer_norm_eps;
} flava_align_text_config;

/* HF AlignConfig. */
typedef struct flava_align_config {
    flava_align_text_config text;
    flava_effnet_config vision;
    int projection_dim;
    double temperature_init_value, initializer_range;
    /* fine-tuning: num_labels > 0 adds the classifier MLP (heads/mlp.h,
     * `classifier.*`) on classifier_input's features: "image" the pooled
     * image features (image_embeds before normalisation), "text" the
     * [CLS] state of the text tower (last_hidden_state[:, 0]) */
    int num_labels;
    char classifier_input[16];
} flava_align_config;

/* HF defaults (kakaobrain/align-base but for its image_size 289). */
void flava_align_config_default(flava_align_config *c);
/* Updates c from HF config JSON (`text_config`, `vision_config` objects);
 * unknown keys are ignored as HF does, mistyped values are errors naming
 * `what` and the key. */
flava_status flava_align_config_from_json(flava_align_config *c, const char *json,
                                          const char *what);
/* c as HF config JSON (model_type "align"); *out is malloc'ed. */
flava_status flava_align_config_to_json(char **out, const flava_align_config *c);
flava_status flava_align_config_validate(const flava_align_config *c);

typedef struct flava_align_inputs {
    int B, T, H, W;
    const float *pixel_values;    /* [B, num_channels, H, W] */
    const int32_t *input_ids;     /* [B, T] */
    const float *attention_mask;  /* [B, T] 1 = token, 0 = padding; NULL = all tokens */
    const int32_t *token_type_ids; /* [B, T] or NULL = zeros */
} flava_align_inputs;

typedef struct flava_align_text_acts flava_align_text_acts;

typedef struct flava_align {
    flava_align_config cfg;
    flava_param_table table;   /* trainable parameters, HF keys */
    flava_param_table buffers; /* batch-norm running statistics, HF keys */
    float *params, *grads;     /* grads NULL until flava_align_alloc_grads */
    float *buf;                /* running statistics */
    int64_t *counters;         /* num_batches_tracked, one per batch norm */
    flava_effnet vision;
    flava_encoder text;
    size_t word, pos, type, emb_ln_w, emb_ln_b, pooler_w, pooler_b, proj_w, proj_b, temperature;

    /* The last flava_align_forward: [B, projection_dim] normalised
     * embeddings, [B, B] logits, the loss. */
    int B;
    float *text_embeds, *image_embeds, *logits_per_image, *logits_per_text;
    float loss;
    flava_align_text_acts *tacts; /* internal: text pass and head activations */
} flava_align;

flava_status flava_align_create(flava_align **out, const flava_align_config *c);
void flava_align_destroy(flava_align *m);
/* HF _init_weights with `seed`: linear/conv/embedding weights
 * N(0, initializer_range of their tower), the padding row 0, biases 0,
 * LayerNorm and batch norm 1/0 (running var 1), text_projection
 * Xavier-uniform, temperature = temperature_init_value. */
void flava_align_init_weights(flava_align *m, uint64_t seed);
flava_status flava_align_alloc_grads(flava_align *m);
void flava_align_zero_grads(flava_align *m);

/* HF get_image_features: the pooled image features [B, projection_dim],
 * not normalised, inference mode (running statistics). */
flava_status flava_align_encode_images(flava_ctx *ctx, flava_align *m, float *features,
                                       const float *pixel_values, int B, int H, int W);
/* HF get_text_features: text_projection of the [CLS] state, [B,
 * projection_dim], not normalised. */
flava_status flava_align_encode_texts(flava_ctx *ctx, flava_align *m, float *features,
                                      const int32_t *input_ids, const float *attention_mask,
                                      const int32_t *token_type_ids, int B, int T);

/* The contrastive forward over a batch of B image-text pairs. train: batch
 * norm with batch statistics, running statistics and counters updated,
 * the image tower's residual dropout and the text tower's BERT dropout
 * (text_config's hidden_dropout_prob and attention_probs_dropout_prob, 0.1
 * in align-base) with masks from `dropout_seed`; otherwise inference.
 * Fills m's outputs. */
flava_status flava_align_forward(flava_ctx *ctx, flava_align *m, const flava_align_inputs *in,
                                 int train, uint64_t dropout_seed);
/* Accumulates d loss / d parameter into m->grads for the last forward. */
flava_status flava_align_backward(flava_ctx *ctx, flava_align *m);

/* The towers one at a time, for a loss on their features (the
 * classifier's): the pooled image features [B, projection_dim] and the
 * text tower's [CLS] states [B, hidden_size] (train as in
 * flava_align_forward); the passes are kept for the backward functions,
 * which accumulate the tower's gradients from the gradient of those
 * features. */
flava_status flava_align_image_forward(flava_ctx *ctx, flava_align *m, float *features,
                                       const float *pixel_values, int B, int H, int W, int train,
                                       uint64_t dropout_seed);
flava_status flava_align_image_backward(flava_ctx *ctx, flava_align *m, const float *dfeatures);
flava_status flava_align_text_cls(flava_ctx *ctx, flava_align *m, float *cls,
                                  const int32_t *input_ids, const float *attention_mask,
                                  const int32_t *token_type_ids, int B, int T, int train,
                                  uint64_t dropout_seed);
flava_status flava_align_text_cls_backward(flava_ctx *ctx, flava_align *m, const float *dcls);

/* The config of a checkpoint file or HF folder, over the HF defaults. */
flava_status flava_align_read_config(flava_align_config *c, const char *path);
/* Loads every parameter and buffer; missing, unexpected and mis-shaped
 * keys are refused by name. */
flava_status flava_align_load_weights(flava_align *m, const char *path);
/* read_config + create + load_weights. */
flava_status flava_align_load(flava_align **out, const char *path);
flava_status flava_align_save(const flava_align *m, const char *path);

#endif

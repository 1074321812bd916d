/* clip.h - the CLIP family (HF CLIPModel): config, parameters under HF's
 * state_dict names, image and text towers, the contrastive loss, forward
 * and backward, HF initialisation, checkpoints.
 *
 * Both towers are the shared transformer encoder (encoder.h) as CLIP
 * configures it: pre-LN blocks, LayerNorm eps layer_norm_eps (1e-5),
 * quick_gelu or gelu, q/k/v/out projections with bias.
 * - text: token + position embeddings (no LayerNorm), causal attention
 *   with the padding keys masked too, final_layer_norm, pooled at the EOS
 *   position (argmax of input_ids when text_config.eos_token_id == 2, the
 *   original checkpoints; else the first eos_token_id), text_projection.
 * - vision: bias-free conv patch embedding, class_embedding prepended,
 *   position embeddings, pre_layrnorm (sic), the encoder, post_layernorm
 *   on the CLS state only, visual_projection.
 * - logits_per_text = exp(logit_scale) * text_embeds · image_embedsᵀ over
 *   L2-normalised embeddings, logits_per_image its transpose, loss =
 *   (CE over texts + CE over images) / 2 with the diagonal as labels.
 *
 * Checkpoints are safetensors with HF keys and this config's JSON (HF
 * CLIPConfig fields, model_type "clip") in __metadata__["config"], or an HF
 * folder (config.json + model.safetensors or shards). */
#ifndef FLAVA_CLIP_H
#define FLAVA_CLIP_H

#include <stdint.h>

#include "ctx.h"
#include "encoder.h"
#include "params.h"
#include "status.h"

typedef struct flava_clip_tower_config {
    int hidden_size, intermediate_size, num_hidden_layers, num_attention_heads;
    char hidden_act[16];
    double layer_norm_eps, initializer_range;
} flava_clip_tower_config;

typedef struct flava_clip_config {
    struct {
        flava_clip_tower_config enc;
        int vocab_size, max_position_embeddings, pad_token_id, bos_token_id, eos_token_id;
    } text;
    struct {
        flava_clip_tower_config enc;
        int image_size, patch_size, num_channels;
    } vision;
    int projection_dim;
    double logit_scale_init_value, initializer_factor;
    /* fine-tuning: num_labels > 0 adds the classifier MLP (heads/mlp.h,
     * `classifier.*`) on classifier_input's pooled features: "image" the
     * post_layernorm CLS state, "text" the final_layer_norm EOS state
     * (the towers' pooler_output, before the projections) */
    int num_labels;
    char classifier_input[16];
} flava_clip_config;

/* HF CLIPConfig defaults (openai/clip-vit-base-patch32). */
void flava_clip_config_default(flava_clip_config *c);
/* Updates c from HF config JSON (`text_config`, `vision_config`, then the
 * legacy `*_config_dict` overrides; unknown keys ignored). `what` names
 * the source in errors. */
flava_status flava_clip_config_from_json(flava_clip_config *c, const char *json,
                                         const char *what);
/* c as HF config JSON (model_type "clip"); *out is malloc'ed. */
flava_status flava_clip_config_to_json(char **out, const flava_clip_config *c);

/* Offsets of the towers' own tensors in the parameter block. */
typedef struct flava_clip_offsets {
    size_t token_embedding, text_position_embedding;
    size_t class_embedding, patch_embedding, vision_position_embedding;
    size_t pre_ln_w, pre_ln_b, post_ln_w, post_ln_b;
    size_t visual_projection, text_projection, logit_scale;
} flava_clip_offsets;

/* One tower's activations for a batch, kept for backward. */
typedef struct flava_clip_image_pass {
    int B;
    const float *pixels;      /* the caller's [B,C,H,W], read again by backward */
    float *patches;           /* [B,P,C] conv output */
    float *emb, *emb_mean, *emb_var; /* [B,S,C] embeddings before pre_layrnorm, its stats */
    flava_encoder_acts enc;   /* enc.x[0] = pre_layrnorm(emb) */
    float *cls, *pooled, *pooled_mean, *pooled_var; /* [B,C]: last[:,0], post_layernorm */
    float *proj, *embeds, *norm; /* [B,D] projection, normalised, [B] norms */
} flava_clip_image_pass;

typedef struct flava_clip_text_pass {
    int B, T;
    int32_t *ids;             /* [B,T] copy of input_ids */
    float *key_mask;          /* [B,T] attention_mask (ones when none given) */
    int32_t *eos;             /* [B] pooled position (after ids, one allocation) */
    flava_encoder_acts enc;   /* enc.x[0] = token + position embeddings */
    float *pooled;            /* [B,C] final_layer_norm output at eos */
    float *proj, *embeds, *norm;
} flava_clip_text_pass;

typedef struct flava_clip {
    flava_clip_config cfg;
    flava_param_table table;
    float *params, *grads; /* grads NULL until flava_clip_alloc_grads */
    flava_encoder text_enc, vision_enc;
    flava_clip_offsets off;

    /* per-tower arenas, grown to the largest batch seen */
    float *img_mem, *txt_mem;
    size_t img_floats, txt_floats, txt_ints;
    flava_clip_image_pass img;
    flava_clip_text_pass txt;

    /* the contrastive part of the last flava_clip_forward (in con_mem): B
     * pairs here, N = B times the data-parallel ranks in the logits (the
     * loss gathers every rank's embeddings, src/dist.h) */
    float *con_mem;
    size_t con_floats;
    int B, N;
    float *logits_per_image, *logits_per_text; /* [N,N] */
    float *probs_i, *probs_t;                  /* softmax rows of each, for backward */
    float loss;
} flava_clip;

/* Builds the parameter table for c and allocates the parameters (not
 * initialised). */
flava_status flava_clip_create(flava_clip **out, const flava_clip_config *c);
void flava_clip_destroy(flava_clip *m);
/* HF CLIPPreTrainedModel._init_weights, seeded (one stream per tensor). */
void flava_clip_init_weights(flava_clip *m, uint64_t seed);
/* Allocates (zeroed) gradients. */
flava_status flava_clip_alloc_grads(flava_clip *m);
/* Pointer to a parameter (and its gradient if grad) by HF name, or NULL. */
float *flava_clip_param(const flava_clip *m, const char *name, float **grad);

/* image_embeds[B,D] (L2-normalised, as CLIPModel outputs them) of
 * pixel_values[B,num_channels,image_size,image_size]; the pass is kept in
 * m->img for backward. out may be NULL (m->img.embeds holds them). */
flava_status flava_clip_encode_image(flava_ctx *ctx, flava_clip *m, float *out,
                                     const float *pixel_values, int B);
/* text_embeds[B,D] of input_ids[B,T]; attention_mask[B,T] (1 = token,
 * 0 = padding) may be NULL. Kept in m->txt. */
flava_status flava_clip_encode_text(flava_ctx *ctx, flava_clip *m, float *out,
                                    const int32_t *input_ids, const float *attention_mask,
                                    int B, int T);

/* Accumulates the image (text) tower's gradients from dpooled[B, C],
 * the gradient of the last encode's m->img.pooled (m->txt.pooled): the
 * backward of a loss on the pooled features, such as the classifier's. */
flava_status flava_clip_image_pooled_backward(flava_ctx *ctx, flava_clip *m, const float *dpooled);
flava_status flava_clip_text_pooled_backward(flava_ctx *ctx, flava_clip *m, const float *dpooled);

/* Both towers on B image-text pairs, then the logits and the loss
 * (m->logits_per_image, m->logits_per_text, m->loss). */
flava_status flava_clip_forward(flava_ctx *ctx, flava_clip *m, const float *pixel_values,
                                const int32_t *input_ids, const float *attention_mask, int B,
                                int T);
/* Backward of m->loss * dloss through the last flava_clip_forward (no
 * other encode in between; its pixel_values still valid: the patch
 * convolution's weight gradient reads them); gradients accumulate into
 * m->grads. The forward does not clamp logit_scale (HF does not); a
 * training loop clamps it after the step as OpenCLIP does. */
flava_status flava_clip_backward(flava_ctx *ctx, flava_clip *m, float dloss);

/* The contrastive loss over L2-normalised image[B,D] and text[B,D] with
 * logits = scale * text·imageᵀ (CLIP: scale = exp(logit_scale)):
 * logits_per_text[B,B], logits_per_image[B,B] (its transpose), the
 * softmax rows of both (probs_t, probs_i, kept for backward), the loss. */
flava_status flava_clip_contrastive_forward(flava_ctx *ctx, float *loss,
                                            float *logits_per_text, float *logits_per_image,
                                            float *probs_t, float *probs_i, const float *image,
                                            const float *text, float scale, int B, int D);
/* Accumulates dimage, dtext ([B,D]) and *dscale (d loss / d scale, may be
 * NULL) for d(loss) = dloss; ddot[B,B] is scratch (it receives d loss /
 * d (text·imageᵀ)). */
flava_status flava_clip_contrastive_backward(flava_ctx *ctx, float *dimage, float *dtext,
                                             float *dscale, float *ddot, float dloss,
                                             const float *probs_t, const float *probs_i,
                                             const float *logits_per_text, const float *image,
                                             const float *text, float scale, int B, int D);

/* Checkpoints (see the top of this file). load = read config + create +
 * init with seed + load weights; `partial` allows missing and unexpected
 * keys (they keep their initial values). */
flava_status flava_clip_load(flava_clip **out, const char *path, int partial, uint64_t seed);
flava_status flava_clip_save(const flava_clip *m, const char *path);

#endif

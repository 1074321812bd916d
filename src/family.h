/* family.h - the model families beside FLAVA (CLIP, ALIGN) behind one
 * interface, so that tasks and commands never switch on the family.
 *
 * A family is a `const flava_family_ops` in the registry flava_families[]
 * (one entry per flava_family_id, checked at compile time). A model of any
 * family is a flava_family_model: the family's own struct (impl) and the
 * parts every caller needs without knowing it: the parameter table and its
 * blocks (AdamW with the table's no-decay entries, clipping, checkpoints),
 * the loss of the last contrastive forward, the embedding widths.
 *
 * Every family encodes images and texts to L2-normalised embeddings in one
 * shared space (zero-shot, retrieval), gives image features for the linear
 * probe, runs the contrastive loss forward and backward on a batch of
 * image-text pairs (pixel_values, input_ids, attention_mask and, for ALIGN,
 * token_type_ids), and says which image preprocessing and which tokenizer
 * its checkpoints expect. */
#ifndef FLAVA_FAMILY_H
#define FLAVA_FAMILY_H

#include <stdint.h>

#include "batch.h"
#include "ctx.h"
#include "image.h"
#include "model.h"
#include "params.h"
#include "status.h"

typedef enum flava_family_id {
    FLAVA_FAMILY_FLAVA,
    FLAVA_FAMILY_CLIP,
    FLAVA_FAMILY_ALIGN,
    FLAVA_NUM_FAMILIES
} flava_family_id;

/* What a family's text tower reads. */
typedef enum flava_family_text {
    FLAVA_FAMILY_TEXT_WORDPIECE, /* BERT uncased vocab.txt: FLAVA, ALIGN */
    FLAVA_FAMILY_TEXT_CLIP_BPE,  /* CLIP byte-level BPE (vocab.json + merges.txt), 77 ids */
} flava_family_text;

/* Which image features the linear probe reads. */
typedef enum flava_image_feature {
    FLAVA_IMAGE_CLS,    /* last_hidden_state[:, 0], the CLS state (ALIGN has none: an error) */
    FLAVA_IMAGE_POOLED, /* pooler_output (FLAVA: its pooler, CLIP: post_layernorm of the CLS
                         * state, ALIGN: the mean-pooled last block) */
    FLAVA_IMAGE_MEAN    /* last_hidden_state[:, 1:] averaged over the patches, MAE's and
                         * BEiT's probe input (ALIGN: its pooled features, the same mean) */
} flava_image_feature;

typedef struct flava_family_ops flava_family_ops;

/* HF config fields set by a run or a command line: dotted names
 * (text_config.hidden_size) and their values as written. */
typedef struct flava_family_overrides {
    const char *const *keys, *const *values;
    const char *const *wheres; /* where each was set, for errors (may be NULL) */
    int n;
} flava_family_overrides;

typedef struct flava_family_model {
    const flava_family_ops *ops;
    void *impl; /* flava_model, flava_clip or flava_align */
    const flava_param_table *table;
    float *params, *grads; /* grads NULL until ops->alloc_grads */
    int embed_dim;         /* width of the normalised embeddings */
    int feature_dim;       /* width of the image features (linear probe) */
    int image_size;        /* pixel_values side the model takes */
    int patch_size;        /* of its patch embedding (ALIGN: image_size, no patches) */
    int max_text_len;      /* text positions the model takes at most */
    int vocab_size;
    float loss;            /* of the last forward */
    /* the unweighted loss of each head that ran in the last forward (the
     * dual encoders: the contrastive one) */
    float head_loss[FLAVA_NUM_HEADS];
    int head_ran[FLAVA_NUM_HEADS];
    /* and its logits [B, head_cols] (NULL when it has none) */
    const float *head_logits[FLAVA_NUM_HEADS];
    int head_cols[FLAVA_NUM_HEADS];
    /* Fine-tuning: the classifier's classes (0: the model has none; 1: a
     * regression, MSE) and the features it reads, "image" or "text".
     * FLAVA's is its classify head; the dual encoders' is the same MLP
     * (heads/mlp.h, `classifier.*`) on the tower's features (see ops
     * features), and then forward and backward run it instead of the
     * contrastive loss. */
    int num_labels;
    const char *classifier_input;
    struct flava_family_classifier *classifier; /* the dual encoders' working memory */
    /* ALIGN's dropout masks of a training forward come from (seed, steps):
     * create sets seed, each training forward counts steps, and the
     * training loop sets steps when it resumes */
    uint64_t seed, steps;
} flava_family_model;

struct flava_family_ops {
    const char *name; /* model.family value and the checkpoint's model_type */
    flava_family_text text;
    /* The heads `flava pretrain` may train (their [heads] weights apply):
     * FLAVA's six, the contrastive one for the dual encoders. */
    const flava_head_id *pretrain_heads;
    int n_pretrain_heads;
    /* The preprocessing of its HF image processor for a model whose
     * pixel_values are `size` wide. */
    void (*image)(flava_image_spec *out, int size);
    /* Creates the model: config = HF defaults, or the checkpoint's when
     * checkpoint is set, then the overrides on top (an unknown key is an
     * error); weights HF-initialised from seed, then the checkpoint's
     * (partial: missing and unexpected keys allowed). heads: FLAVA's heads
     * and loss weights (NULL: its pretraining heads); the dual encoders
     * have their contrastive loss only and ignore it. */
    flava_status (*create)(flava_family_model *fm, const char *checkpoint,
                           const flava_family_overrides *ov, const flava_head_set *heads,
                           int partial, uint64_t seed);
    void (*destroy)(flava_family_model *fm);
    /* Refreshes fm's view (table, blocks, widths) of fm->impl. */
    void (*fill)(flava_family_model *fm);
    /* Loads a checkpoint's weights (and ALIGN's batch-norm statistics)
     * into the model; partial as in create. */
    flava_status (*load)(flava_family_model *fm, const char *path, int partial);
    flava_status (*save)(const flava_family_model *fm, const char *path);
    flava_status (*alloc_grads)(flava_family_model *fm);
    /* emb[B, embed_dim], L2-normalised; inference mode. */
    flava_status (*encode_images)(flava_ctx *ctx, flava_family_model *fm, float *emb,
                                  const float *pixel_values, int B);
    flava_status (*encode_texts)(flava_ctx *ctx, flava_family_model *fm, float *emb,
                                 const int32_t *input_ids, const float *attention_mask,
                                 const int32_t *token_type_ids, int B, int T);
    /* Image features [B, feature_dim] for the linear probe, from HF's
     * vision tower outputs (see flava_image_feature). Inference mode. */
    flava_status (*image_features)(flava_ctx *ctx, flava_family_model *fm, float *out,
                                   const float *pixel_values, int B, flava_image_feature which);
    /* The loss of b into fm->loss and head_loss (train: training mode;
     * FLAVA: its heads, the dual encoders: the contrastive loss of b's
     * pairs), and its backward, accumulated into fm->grads. */
    flava_status (*forward)(flava_ctx *ctx, flava_family_model *fm, const flava_batch *b,
                            int train);
    flava_status (*backward)(flava_ctx *ctx, flava_family_model *fm, const flava_batch *b);
    /* The dual encoders' classifier input (NULL for FLAVA): features
     * [B, width] of b's images (text 0: CLIP the post_layernorm CLS state,
     * ALIGN the pooled features) or texts (text 1: CLIP the EOS state after
     * final_layer_norm, ALIGN the [CLS] state), in training mode when
     * train; the pass is kept for features_backward, which accumulates the
     * tower's gradients from dfeatures[B, width]. */
    flava_status (*features)(flava_ctx *ctx, flava_family_model *fm, float *out,
                             const flava_batch *b, int text, int train);
    flava_status (*features_backward)(flava_ctx *ctx, flava_family_model *fm,
                                      const float *dfeatures, int text);
    /* The last forward's outputs under HF names (text_embeds,
     * image_embeds, logits_per_image, logits_per_text, loss; FLAVA: its
     * FlavaForPreTrainingOutput fields): fills out[FLAVA_MAX_OUTPUTS] and
     * returns how many. */
    int (*outputs)(flava_family_model *fm, flava_output *out);
    /* The FLAVA config whose image geometry (image_size, patch_size,
     * num_channels) the batch reader checks inputs against: FLAVA's own,
     * the defaults with the tower's image geometry for the others. */
    void (*input_config)(const flava_family_model *fm, flava_config *c);
    /* After each optimizer step (CLIP clamps logit_scale); may be NULL. */
    void (*after_step)(flava_family_model *fm);
    /* Floating-point operations of a training step on b (forward x 3),
     * counting the encoders' GEMMs and attention. */
    double (*step_flops)(const flava_family_model *fm, const flava_batch *b);
};

extern const flava_family_ops *const flava_families[FLAVA_NUM_FAMILIES];

/* The family named `name`; an unknown name is a config error listing them. */
flava_status flava_family_find(const flava_family_ops **ops, const char *name);
/* The family of a checkpoint file or HF folder, from its config's
 * model_type ("flava" when it has none). */
flava_status flava_family_of_checkpoint(const flava_family_ops **ops, const char *path);

/* ops->create, and the free of what it made. */
flava_status flava_family_create(flava_family_model *fm, const flava_family_ops *ops,
                                 const char *checkpoint, const flava_family_overrides *ov,
                                 const flava_head_set *heads, int partial, uint64_t seed);
/* The contrastive-only head set: what encoding with FLAVA needs. */
extern const flava_head_set flava_family_contrastive_heads;
void flava_family_destroy(flava_family_model *fm);
/* A view of a model made elsewhere (impl stays the caller's: do not
 * destroy fm). */
void flava_family_wrap(flava_family_model *fm, const flava_family_ops *ops, void *impl);

/* Overrides as HF config JSON (vision_config.depth_coefficient = 1.0,
 * lists as "1,2,3"): numbers, true/false and comma lists of numbers as JSON
 * values, anything else as a string. *json is malloc'ed. */
flava_status flava_family_overrides_json(char **json, const flava_family_overrides *ov);

/* l2-normalises rows x[B, D] in place. */
void flava_family_normalise(float *x, int B, int D);

#endif

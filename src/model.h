/* model.h - the FLAVA model (HF FlavaForPreTraining): its configuration,
 * parameters, and the forward/backward of a pretraining or fine-tuning step.
 *
 * Configuration keys are HF FlavaConfig field names, nested as in HF's
 * config.json (`text_config.hidden_size`, ...); the defaults are HF's, i.e.
 * FLAVA-full. Parameter names and shapes are those of FlavaForPreTraining's
 * state_dict. Fine-tuning heads add `vqa_head.*` or `classifier.*`
 * (heads/vqa.c, heads/classify.c). */
#ifndef FLAVA_MODEL_H
#define FLAVA_MODEL_H

#include <stdint.h>

#include "batch.h"
#include "ctx.h"
#include "encoder.h"
#include "params.h"
#include "status.h"

typedef struct flava_encoder_config {
    int hidden_size, num_hidden_layers, num_attention_heads, intermediate_size;
    char hidden_act[16];
    double hidden_dropout_prob, attention_probs_dropout_prob;
    double initializer_range, layer_norm_eps;
    int qkv_bias;
} flava_encoder_config;

typedef struct flava_config {
    struct {
        flava_encoder_config enc;
        int image_size, patch_size, num_channels, mask_token, vocab_size;
    } image;
    struct {
        flava_encoder_config enc;
        int vocab_size, type_vocab_size, max_position_embeddings, pad_token_id;
        char position_embedding_type[16];
    } text;
    struct {
        flava_encoder_config enc;
        int use_cls_token;
    } multimodal;
    struct {
        int num_groups, input_channels, num_blocks_per_group, hidden_size, vocab_size, freeze;
        double initializer_range;
    } image_codebook;
    int hidden_size, projection_dim, init_codebook, ce_ignore_index;
    double layer_norm_eps, logit_scale_init_value, initializer_range;
    double mim_weight, mlm_weight, global_contrastive_weight, itm_weight, mmm_image_weight,
        mmm_text_weight;
    int global_backprop_contrastive, skip_unmasked_multimodal_encoder, return_loss;
    /* Fine-tuning heads (not HF FlavaConfig fields; written in the same JSON) */
    int vqa_num_answers;     /* answer vocabulary of heads/vqa.c */
    int num_labels;          /* classes of heads/classify.c (1 = regression, MSE) */
    char classifier_input[16]; /* "multimodal", "text" or "image": whose CLS */
} flava_config;

/* HF FlavaConfig defaults (FLAVA-full). */
void flava_config_default(flava_config *c);
/* Updates c from an HF config JSON text (unknown keys are ignored, as HF
 * configs carry many generic ones; `X_config_dict` overrides `X_config`).
 * `what` names the source in errors. */
flava_status flava_config_from_json(flava_config *c, const char *json, const char *what);
/* c as HF config JSON (model_type "flava"); *out is malloc'ed. */
flava_status flava_config_to_json(char **out, const flava_config *c);
/* Sets one field by its dotted HF name ("text_config.hidden_size",
 * "mim_weight"); an unknown key or a malformed value is an error. */
flava_status flava_config_set(flava_config *c, const char *key, const char *value);
/* Checks the configuration is one this implementation runs. */
flava_status flava_config_validate(const flava_config *c);

/* ---- heads ---- */
typedef enum flava_head_id {
    FLAVA_HEAD_MIM = 0,
    FLAVA_HEAD_MLM,
    FLAVA_HEAD_ITM,
    FLAVA_HEAD_CONTRASTIVE,
    FLAVA_HEAD_MMM_IMAGE,
    FLAVA_HEAD_MMM_TEXT,
    FLAVA_HEAD_VQA,
    FLAVA_HEAD_CLASSIFY,
    FLAVA_NUM_HEADS
} flava_head_id;

/* Which heads a run uses and their loss weights; a head not enabled
 * declares no parameters and costs no compute. */
typedef struct flava_head_set {
    int enabled[FLAVA_NUM_HEADS];
    double weight[FLAVA_NUM_HEADS];
} flava_head_set;

/* The six pretraining heads with the config's weights (weight 0 = off). */
void flava_head_set_pretraining(flava_head_set *h, const flava_config *c);

/* One encoder pass's final states, where heads read and write gradients. */
typedef struct flava_seq {
    const float *h; /* [B,S,C] final (post-LN) hidden states, NULL if not run */
    float *dh;      /* its gradient (NULL in forward-only runs) */
    int B, S, C;
} flava_seq;

typedef struct flava_model flava_model;

/* What a head gets to read: the batch, the passes, the positive pairs. */
typedef struct flava_head_io {
    flava_ctx *ctx;
    const flava_model *model;
    const flava_batch *batch;
    const float *params;
    float *grads;              /* NULL when not training */
    flava_seq image, text;     /* unmasked passes */
    flava_seq image_masked, text_masked, multimodal_masked;
    /* pooled outputs (tanh(dense(CLS))) of the masked-slot passes, which in
     * fine-tuning (no masks given) see the plain inputs, and their
     * gradients: [0] image, [1] text, [2] multimodal; NULL if not run */
    const float *pooled[3];
    float *dpooled[3];
    const uint8_t *pos_mask;   /* [B] positive pairs (ITM labels), or NULL = all */
    int unimodal_on_paired;    /* see flava_model.unimodal_on_paired */
} flava_head_io;

/* Per-head working memory: a float arena sized by the head for the
 * largest batch, and what forward leaves for backward and the caller. */
typedef struct flava_head_state {
    float *mem;
    size_t mem_floats;
    int32_t *rows;     /* [max rows] selected (batch,position) indices */
    int32_t *labels;   /* [max rows] their labels */
    int nrows;         /* rows this batch */
    int count;         /* rows counted by the loss */
    float loss;        /* unweighted loss of the last forward */
    const float *logits; /* [nrows, ncols] of the last forward */
    int ncols;
    const float *logits2; /* a second output (contrastive: per text), same shape */
    double correct;    /* metric numerator (e.g. correct predictions) */
} flava_head_state;

struct flava_head_ops {
    const char *name;   /* run-config name and `loss_info.<name>` */
    const char *logits_name;  /* HF output name of its logits */
    const char *logits2_name; /* of its second output, or NULL */
    /* Adds its parameters to the table (NULL: it has none). */
    flava_status (*declare)(flava_param_table *t, const flava_config *c);
    /* Floats of working memory for a batch of B samples, T tokens, P patches. */
    size_t (*mem_floats)(const flava_config *c, int B, int T, int P);
    /* Max rows (index/label entries) it selects. */
    int (*max_rows)(const flava_config *c, int B, int T, int P);
    /* Whether it runs on this batch (its inputs and labels are present). */
    int (*applies)(const flava_head_io *io);
    /* Computes logits and, with labels, the unweighted loss into st. */
    flava_status (*forward)(flava_head_state *st, const flava_head_io *io);
    /* Accumulates gradients given d(loss) = dloss. */
    flava_status (*backward)(flava_head_state *st, const flava_head_io *io, float dloss);
};
typedef struct flava_head_ops flava_head_ops;

/* heads/registry.c: indexed by flava_head_id. */
extern const flava_head_ops *const flava_heads[FLAVA_NUM_HEADS];
/* The id of a head by name, or -1. */
int flava_head_find(const char *name);

/* ---- the model ---- */
typedef struct flava_image_embed {
    size_t cls, mask, patch_w, patch_b, pos;
} flava_image_embed;
typedef struct flava_text_embed {
    size_t word, pos, type, ln_w, ln_b;
} flava_text_embed;
typedef struct flava_linear_off {
    size_t w, b;
} flava_linear_off;

/* Activations of one pass of one modality (carved from the model arena). */
typedef struct flava_image_pass {
    int ran;
    flava_encoder_acts enc;
    float *cls, *pooled_pre, *pooled; /* [B,C] */
    float *dout, *dlast, *dpooled;    /* gradients of out and x[L] [B,S,C], pooled [B,C] */
} flava_image_pass;
typedef struct flava_text_pass {
    int ran;
    const int32_t *ids;
    float *emb, *emb_mean, *emb_var;  /* [B,T,C] pre-LN sum, LN stats */
    flava_encoder_acts enc;
    float *cls, *pooled_pre, *pooled;
    float *dout, *dlast, *dpooled;
} flava_text_pass;
typedef struct flava_mm_pass {
    float *key_mask;                 /* [B,S] */
    float *img_proj, *txt_proj;      /* [B,Si,Cm], [B,T,Cm] */
    flava_encoder_acts enc;
    int ran;
    float *cls, *pooled_pre, *pooled;
    float *dout, *dpooled;
    float *out_pos; /* out's rows of the positive pairs (HF's filtered output) */
} flava_mm_pass;

struct flava_codebook;

struct flava_model {
    flava_config cfg;
    /* the frozen dVAE giving MIM targets when a batch has no mim_labels;
     * NULL unless the checkpoint has `image_codebook.*` weights */
    struct flava_codebook *codebook;
    flava_head_set heads;
    flava_param_table table;
    float *params, *grads; /* grads NULL until flava_model_alloc_grads */
    float *exp_avg, *exp_avg_sq; /* AdamW moments, NULL until flava_model_alloc_optim */
    struct flava_param_range *no_decay; /* merged no-decay runs of the table */
    int n_no_decay;

    /* Not HF: also run MIM/MLM on the masked unimodal passes of image-text
     * batches (the benchmark's "all six losses"; flava_ref's
     * unimodal_on_paired). */
    int unimodal_on_paired;

    flava_encoder image_enc, text_enc, mm_enc;
    flava_image_embed image_embed;
    flava_text_embed text_embed;
    size_t mm_cls;
    flava_linear_off image_pooler, text_pooler, mm_pooler;
    flava_linear_off image_projection, text_projection, image_to_mm, text_to_mm;
    size_t logit_scale;

    /* the activation arena, sized for the largest batch seen */
    float *arena;
    size_t arena_floats;
    int B, T, P;         /* shape the arena is laid out for */
    int cap_B, cap_T;    /* the largest it was allocated for */
    flava_image_pass img, img_m;
    flava_text_pass txt, txt_m;
    flava_mm_pass mm, mm_m;
    float *enc_scratch, *tmp_a, *tmp_b;
    /* the patch embedding, shared by both image passes (the mask replaces
     * patches after the convolution), and its gradient from both */
    float *patches, *dpatches; /* [B,P,C] */
    int32_t *zero_types;  /* [B,T] token types when the batch has none */
    uint8_t *pos_mask;    /* [B] */
    int32_t *codebook_labels; /* [B,P] MIM targets from the codebook */
    flava_batch view;     /* the batch the heads read (codebook labels filled in) */
    flava_head_state head[FLAVA_NUM_HEADS];
    int head_ran[FLAVA_NUM_HEADS];
    flava_head_io io;

    /* A training forward's dropout masks (the encoders' hidden_dropout_prob
     * and attention_probs_dropout_prob, where HF applies them) are drawn
     * from this seed, each pass its own stream; set before each forward. */
    uint64_t dropout_seed;

    /* results of the last forward */
    float loss;
    int has_loss;
};

/* Builds the model (parameter table, parameters allocated, not initialised)
 * for config c and the given heads (NULL = the pretraining heads). */
flava_status flava_model_create(flava_model **out, const flava_config *c,
                                const flava_head_set *heads);
void flava_model_destroy(flava_model *m);
/* HF's initialisation: normal(0, initializer_range) weights, zero biases,
 * unit LayerNorms, zero CLS/mask tokens and image positions, logit_scale =
 * logit_scale_init_value; seeded (one stream per tensor). */
void flava_model_init_weights(flava_model *m, uint64_t seed);
/* Sets the image patch positions (not the CLS row) to MAE's fixed 2-D
 * sin-cos table: the first half of the channels encode the column, the
 * second the row, each as sin then cos of pos * 10000^(-k / (hidden / 4)).
 * Needs image hidden_size divisible by 4. */
flava_status flava_model_init_positions_sincos(flava_model *m);
/* Allocates (zeroed) gradients for training. */
flava_status flava_model_alloc_grads(flava_model *m);
void flava_model_zero_grads(flava_model *m);
/* Allocates (zeroed) AdamW moments and the no-decay ranges. */
flava_status flava_model_alloc_optim(flava_model *m);
/* One AdamW step over every parameter (torch.optim.AdamW semantics, no
 * decay for the table's no_decay entries); `step` is 1-based. */
struct flava_adamw_config;
flava_status flava_model_adamw_step(flava_model *m, double lr, int64_t step,
                                    const struct flava_adamw_config *cfg);
/* Number of floats of parameters whose name starts with prefix. */
size_t flava_model_count(const flava_model *m, const char *prefix);
/* Pointer to a parameter (and its gradient if grads) by name, or NULL. */
float *flava_model_param(const flava_model *m, const char *name, float **grad);

/* Forward over a batch as HF FlavaForPreTraining (or the fine-tuning head)
 * runs it: unmasked and masked passes, heads, weighted total in m->loss.
 * With `train`, keeps what backward needs, clamps logit_scale and drops
 * out (masks from m->dropout_seed). */
flava_status flava_model_forward(flava_ctx *ctx, flava_model *m, const flava_batch *b, int train);
/* One named output of the last forward, as HF FlavaForPreTrainingOutput
 * names it (losses as `loss_info.<name>`, the multimodal sequences as
 * `*_embeddings`, each head's logits under its HF name). */
typedef struct flava_output {
    char name[64];
    const float *data;
    int ndim;
    int64_t shape[3];
    float value; /* a scalar's value (data points here) */
} flava_output;
enum { FLAVA_MAX_OUTPUTS = 32 };
/* Fills out[] (FLAVA_MAX_OUTPUTS entries) and returns how many. The
 * pointers stay valid until the next forward. */
int flava_model_outputs(flava_model *m, flava_output *out);

/* Backward of m->loss; gradients accumulate into m->grads. */
flava_status flava_model_backward(flava_ctx *ctx, flava_model *m, const flava_batch *b);

#endif

/* align.c - the ALIGN model (see align.h): configuration, parameters,
 * passes, contrastive loss, checkpoints. */
#include "align.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dist.h"
#include "mlp.h"
#include "ops.h"
#include "rng.h"
#include "safetensors.h"
#include "tsv.h"

/* HF AlignModel's contrastive_loss: cross_entropy(..., label_smoothing=0.1) */
#define ALIGN_LABEL_SMOOTHING 0.1

/* ================================================================ config */

void flava_align_config_default(flava_align_config *c)
{
    memset(c, 0, sizeof *c);
    flava_align_text_config *t = &c->text;
    t->vocab_size = 30522;
    t->hidden_size = 768;
    t->num_hidden_layers = 12;
    t->num_attention_heads = 12;
    t->intermediate_size = 3072;
    t->max_position_embeddings = 512;
    t->type_vocab_size = 2;
    t->pad_token_id = 0;
    snprintf(t->hidden_act, sizeof t->hidden_act, "gelu");
    snprintf(t->position_embedding_type, sizeof t->position_embedding_type, "absolute");
    t->hidden_dropout_prob = 0.1;
    t->attention_probs_dropout_prob = 0.1;
    t->initializer_range = 0.02;
    t->layer_norm_eps = 1e-12;
    flava_effnet_config_default(&c->vision);
    c->projection_dim = 640;
    c->temperature_init_value = 1.0;
    c->initializer_range = 0.02;
    snprintf(c->classifier_input, sizeof c->classifier_input, "image");
}

typedef enum { F_INT, F_DOUBLE, F_STR, F_LIST } field_type;

typedef struct field {
    const char *name;
    field_type type;
    size_t off;   /* in the section's struct */
    size_t count; /* F_LIST: offset of its int count; F_STR: buffer size */
    int max;      /* F_LIST: capacity */
} field;

#define TF(f, t) {#f, t, offsetof(flava_align_text_config, f), 0, 0}
#define TS(f) {#f, F_STR, offsetof(flava_align_text_config, f), sizeof(((flava_align_text_config *)0)->f), 0}
#define VF(f, t) {#f, t, offsetof(flava_effnet_config, f), 0, 0}
#define VS(f) {#f, F_STR, offsetof(flava_effnet_config, f), sizeof(((flava_effnet_config *)0)->f), 0}
#define VL(f, n, max) {#f, F_LIST, offsetof(flava_effnet_config, f), offsetof(flava_effnet_config, n), max}

static const field text_fields[] = {
    TF(vocab_size, F_INT), TF(hidden_size, F_INT), TF(num_hidden_layers, F_INT),
    TF(num_attention_heads, F_INT), TF(intermediate_size, F_INT),
    TF(max_position_embeddings, F_INT), TF(type_vocab_size, F_INT), TF(pad_token_id, F_INT),
    TS(hidden_act), TS(position_embedding_type), TF(hidden_dropout_prob, F_DOUBLE),
    TF(attention_probs_dropout_prob, F_DOUBLE), TF(initializer_range, F_DOUBLE),
    TF(layer_norm_eps, F_DOUBLE),
};
static const field vision_fields[] = {
    VF(num_channels, F_INT), VF(image_size, F_INT), VF(depth_divisor, F_INT),
    VF(hidden_dim, F_INT), VF(width_coefficient, F_DOUBLE), VF(depth_coefficient, F_DOUBLE),
    VF(squeeze_expansion_ratio, F_DOUBLE), VF(initializer_range, F_DOUBLE),
    VF(batch_norm_eps, F_DOUBLE), VF(batch_norm_momentum, F_DOUBLE),
    VF(drop_connect_rate, F_DOUBLE), VS(hidden_act), VS(pooling_type),
    VL(kernel_sizes, nstages, FLAVA_EFFNET_MAX_STAGES),
    VL(in_channels, nstages, FLAVA_EFFNET_MAX_STAGES),
    VL(out_channels, nstages, FLAVA_EFFNET_MAX_STAGES),
    VL(strides, nstages, FLAVA_EFFNET_MAX_STAGES),
    VL(num_block_repeats, nstages, FLAVA_EFFNET_MAX_STAGES),
    VL(expand_ratios, nstages, FLAVA_EFFNET_MAX_STAGES),
    VL(depthwise_padding, ndepthwise_padding, FLAVA_EFFNET_MAX_BLOCKS),
};
static const field top_fields[] = {
    {"projection_dim", F_INT, offsetof(flava_align_config, projection_dim), 0, 0},
    {"temperature_init_value", F_DOUBLE, offsetof(flava_align_config, temperature_init_value), 0,
     0},
    {"initializer_range", F_DOUBLE, offsetof(flava_align_config, initializer_range), 0, 0},
    {"num_labels", F_INT, offsetof(flava_align_config, num_labels), 0, 0},
    {"classifier_input", F_STR, offsetof(flava_align_config, classifier_input),
     sizeof(((flava_align_config *)0)->classifier_input), 0},
};

typedef struct section {
    const char *name; /* NULL = top level */
    const field *fields;
    int n;
    size_t base;
} section;

static const section sections[] = {
    {NULL, top_fields, (int)(sizeof top_fields / sizeof *top_fields), 0},
    {"text_config", text_fields, (int)(sizeof text_fields / sizeof *text_fields),
     offsetof(flava_align_config, text)},
    {"vision_config", vision_fields, (int)(sizeof vision_fields / sizeof *vision_fields),
     offsetof(flava_align_config, vision)},
};

static int is_int(const cJSON *v)
{
    return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) &&
           fabs(v->valuedouble) < 2147483648.0;
}

static flava_status read_field(char *base, const field *f, const cJSON *v, const char *sec,
                               const char *what)
{
    char *p = base + f->off;
    const char *s = sec ? sec : "";
    const char *dot = sec ? "." : "";
    switch (f->type) {
    case F_INT:
        if (!is_int(v))
            break;
        *(int *)p = (int)v->valuedouble;
        return FLAVA_OK;
    case F_DOUBLE:
        if (!cJSON_IsNumber(v))
            break;
        *(double *)p = v->valuedouble;
        return FLAVA_OK;
    case F_STR:
        if (!cJSON_IsString(v) || strlen(v->valuestring) >= f->count)
            break;
        snprintf(p, f->count, "%s", v->valuestring);
        return FLAVA_OK;
    case F_LIST: {
        int n = cJSON_GetArraySize(v);
        if (!cJSON_IsArray(v) || n > f->max)
            return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: %s%s%s: expected a list of at most %d "
                                                 "integers", what, s, dot, f->name, f->max);
        int i = 0;
        for (const cJSON *x = v->child; x; x = x->next, i++) {
            if (!is_int(x))
                return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: %s%s%s[%d] is not an integer", what, s,
                                   dot, f->name, i);
            ((int *)p)[i] = (int)x->valuedouble;
        }
        *(int *)(base + f->count) = n;
        return FLAVA_OK;
    }
    }
    return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: %s%s%s has the wrong type (expected %s)", what, s,
                       dot, f->name,
                       f->type == F_INT      ? "an integer"
                       : f->type == F_DOUBLE ? "a number"
                                             : "a short string");
}

/* The six per-stage lists share one length (HF indexes them together):
 * the lists a JSON object gives must agree, and a new length needs all
 * six. */
static flava_status check_stage_lists(const cJSON *obj, int current, const char *what)
{
    static const char *const lists[] = {"kernel_sizes", "in_channels",       "out_channels",
                                        "strides",      "num_block_repeats", "expand_ratios"};
    int len = -1;
    const char *first = NULL, *absent = NULL;
    for (int i = 0; i < 6; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, lists[i]);
        if (!cJSON_IsArray(v)) {
            absent = absent ? absent : lists[i];
            continue;
        }
        int n = cJSON_GetArraySize(v);
        if (len >= 0 && n != len)
            return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: vision_config.%s has %d entries, %s %d",
                               what, lists[i], n, first, len);
        len = n, first = first ? first : lists[i];
    }
    if (len >= 0 && len != current && absent)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG,
                           "%s: vision_config.%s has %d entries but vision_config.%s is not "
                           "given (it keeps %d)", what, first, len, absent, current);
    return FLAVA_OK;
}

flava_status flava_align_config_from_json(flava_align_config *c, const char *json,
                                          const char *what)
{
    cJSON *root = cJSON_Parse(json);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: the config is not a JSON object", what);
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    flava_status st = FLAVA_OK;
    if (cJSON_IsString(type) && strcmp(type->valuestring, "align"))
        st = FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: model_type '%s', expected 'align'", what,
                         type->valuestring);
    for (size_t k = 0; st == FLAVA_OK && k < sizeof sections / sizeof *sections; k++) {
        const section *s = &sections[k];
        const cJSON *obj = s->name ? cJSON_GetObjectItemCaseSensitive(root, s->name) : root;
        if (!obj || cJSON_IsNull(obj))
            continue;
        if (!cJSON_IsObject(obj)) {
            st = FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: %s is not an object", what, s->name);
            break;
        }
        if (s->base == offsetof(flava_align_config, vision))
            st = check_stage_lists(obj, c->vision.nstages, what);
        for (int j = 0; st == FLAVA_OK && j < s->n; j++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, s->fields[j].name);
            if (v && !cJSON_IsNull(v))
                st = read_field((char *)c + s->base, &s->fields[j], v, s->name, what);
        }
    }
    cJSON_Delete(root);
    return st;
}

flava_status flava_align_config_to_json(char **out, const flava_align_config *c)
{
    *out = NULL;
    cJSON *root = cJSON_CreateObject();
    int ok = root && cJSON_AddStringToObject(root, "model_type", "align");
    for (size_t k = 0; ok && k < sizeof sections / sizeof *sections; k++) {
        const section *s = &sections[k];
        cJSON *obj = s->name ? cJSON_AddObjectToObject(root, s->name) : root;
        ok = obj != NULL;
        const char *base = (const char *)c + s->base;
        for (int j = 0; ok && j < s->n; j++) {
            const field *f = &s->fields[j];
            const char *p = base + f->off;
            cJSON *v = NULL;
            switch (f->type) {
            case F_INT: v = cJSON_CreateNumber(*(const int *)p); break;
            case F_DOUBLE: v = cJSON_CreateNumber(*(const double *)p); break;
            case F_STR: v = cJSON_CreateString(p); break;
            case F_LIST: v = cJSON_CreateIntArray((const int *)p, *(const int *)(base + f->count));
                break;
            }
            ok = v && cJSON_AddItemToObject(obj, f->name, v);
            if (!ok)
                cJSON_Delete(v);
        }
    }
    if (ok)
        *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!*out)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot write the ALIGN config as JSON");
    return FLAVA_OK;
}

flava_status flava_align_config_validate(const flava_align_config *c)
{
    const flava_align_text_config *t = &c->text;
    flava_activation act;
    FLAVA_TRY(flava_activation_parse(&act, t->hidden_act));
    if (strcmp(t->position_embedding_type, "absolute"))
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "text_config.position_embedding_type '%s' is not "
                                             "supported (absolute)", t->position_embedding_type);
    if (t->vocab_size < 1 || t->max_position_embeddings < 1 || t->type_vocab_size < 1 ||
        t->num_hidden_layers < 0 || !(t->layer_norm_eps > 0))
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "text_config: vocab_size, max_position_embeddings, "
                                             "type_vocab_size and layer_norm_eps must be "
                                             "positive, num_hidden_layers not negative");
    if (!(t->hidden_dropout_prob >= 0 && t->hidden_dropout_prob < 1) ||
        !(t->attention_probs_dropout_prob >= 0 && t->attention_probs_dropout_prob < 1))
        return FLAVA_ERROR(FLAVA_ERR_CONFIG,
                           "text_config: hidden_dropout_prob %g, attention_probs_dropout_prob "
                           "%g: expected probabilities in [0, 1)",
                           t->hidden_dropout_prob, t->attention_probs_dropout_prob);
    if (c->num_labels < 0 ||
        (strcmp(c->classifier_input, "image") && strcmp(c->classifier_input, "text")))
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "num_labels %d >= 0 and classifier_input '%s' "
                           "image or text expected", c->num_labels, c->classifier_input);
    FLAVA_TRY(flava_effnet_config_validate(&c->vision));
    const flava_effnet_config *v = &c->vision;
    int last = flava_effnet_round_filters(v, v->out_channels[v->nstages - 1]);
    if (c->projection_dim != last)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG,
                           "projection_dim %d must equal the image tower's width %d "
                           "(round_filters(vision_config.out_channels[-1])): ALIGN compares the "
                           "pooled image features with the projected text directly",
                           c->projection_dim, last);
    return FLAVA_OK;
}

/* ================================================================ model */

struct flava_align_text_acts {
    int B, T;
    float *mem;
    const int32_t *ids, *types;
    int32_t *zero_types;
    float *emb, *emb_mean, *emb_var;
    flava_encoder_acts enc;
    float *cls, *proj, *tnorm, *pooled, *inorm; /* [B,C], [B,P], [B], [B,P], [B] */
    /* The contrastive loss is over K = B times the data-parallel ranks
     * pairs, every rank's embeddings gathered (src/dist.h). */
    float *proj_all, *pooled_all;                /* [K,P] */
    float *logits_t, *logits_i;                  /* [K,K] per text, per image */
    float *probs_t, *probs_i;                    /* [K,K] rows of each cross-entropy */
    /* backward */
    float *dL, *dS, *dtext_all, *dimage_all;     /* [K,K] x2, [K,P] x2 */
    float *dtext, *dimage, *dproj, *dpooled, *dcls; /* [B,P] x4, [B,C] */
    float *dout, *dx, *de, *scratch;
};

static const flava_encoder_names bert_names = {
    .q = "%s.encoder.layer.%d.attention.self.query",
    .k = "%s.encoder.layer.%d.attention.self.key",
    .v = "%s.encoder.layer.%d.attention.self.value",
    .proj = "%s.encoder.layer.%d.attention.output.dense",
    .ln1 = "%s.encoder.layer.%d.attention.output.LayerNorm",
    .ln2 = "%s.encoder.layer.%d.output.LayerNorm",
    .fc1 = "%s.encoder.layer.%d.intermediate.dense",
    .fc2 = "%s.encoder.layer.%d.output.dense",
    .final_ln = NULL,
};

static flava_status declare_all(flava_align *m)
{
    const flava_align_config *c = &m->cfg;
    const flava_align_text_config *t = &c->text;
    const int C = t->hidden_size;
    flava_param_table *tb = &m->table;
    FLAVA_TRY(flava_effnet_declare(&m->vision, tb, &m->buffers, &c->vision, "vision_model"));
    FLAVA_TRY(flava_params_add2(tb, &m->word, "text_model.embeddings.word_embeddings.weight", 1,
                                t->vocab_size, C));
    FLAVA_TRY(flava_params_add2(tb, &m->pos, "text_model.embeddings.position_embeddings.weight",
                                1, t->max_position_embeddings, C));
    FLAVA_TRY(flava_params_add2(tb, &m->type,
                                "text_model.embeddings.token_type_embeddings.weight", 1,
                                t->type_vocab_size, C));
    FLAVA_TRY(flava_params_add1(tb, &m->emb_ln_w, "text_model.embeddings.LayerNorm.weight", 1, C));
    FLAVA_TRY(flava_params_add1(tb, &m->emb_ln_b, "text_model.embeddings.LayerNorm.bias", 1, C));
    flava_encoder_spec spec = {.layers = t->num_hidden_layers,
                               .hidden = C,
                               .heads = t->num_attention_heads,
                               .intermediate = t->intermediate_size,
                               .eps = (float)t->layer_norm_eps,
                               .pre_ln = 0,
                               .causal = 0,
                               .final_ln = 0,
                               .qkv_bias = 1,
                               .hidden_dropout = (float)t->hidden_dropout_prob,
                               .attention_dropout = (float)t->attention_probs_dropout_prob,
                               .input_dropout = 1};
    FLAVA_TRY(flava_activation_parse(&spec.act, t->hidden_act));
    FLAVA_TRY(flava_encoder_declare(&m->text, tb, &spec, &bert_names, "text_model"));
    /* in the checkpoint, unused by AlignModel (its gradient stays 0) */
    FLAVA_TRY(flava_params_add2(tb, &m->pooler_w, "text_model.pooler.dense.weight", 0, C, C));
    FLAVA_TRY(flava_params_add1(tb, &m->pooler_b, "text_model.pooler.dense.bias", 1, C));
    FLAVA_TRY(flava_params_add2(tb, &m->proj_w, "text_projection.weight", 0, c->projection_dim,
                                C));
    FLAVA_TRY(flava_params_add1(tb, &m->proj_b, "text_projection.bias", 1, c->projection_dim));
    FLAVA_TRY(flava_params_add(tb, &m->temperature, "temperature", 1, 0, NULL));
    if (!c->num_labels)
        return FLAVA_OK;
    return mlp_declare(tb, "classifier", strcmp(c->classifier_input, "text") ? c->projection_dim
                                                                              : C,
                       c->num_labels);
}

flava_status flava_align_create(flava_align **out, const flava_align_config *c)
{
    *out = NULL;
    FLAVA_TRY(flava_align_config_validate(c));
    flava_align *m;
    FLAVA_TRY(flava_alloc((void **)&m, sizeof *m, "the ALIGN model"));
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    flava_params_init(&m->table);
    flava_params_init(&m->buffers);
    flava_status st = declare_all(m);
    if (st == FLAVA_OK)
        st = flava_alloc((void **)&m->params, m->table.total * sizeof(float), "ALIGN parameters");
    if (st == FLAVA_OK)
        st = flava_alloc((void **)&m->buf, m->buffers.total * sizeof(float),
                         "ALIGN batch-norm statistics");
    if (st == FLAVA_OK)
        st = flava_alloc((void **)&m->counters, (size_t)m->vision.nbn * sizeof(int64_t),
                         "ALIGN batch-norm counters");
    if (st != FLAVA_OK) {
        flava_align_destroy(m);
        return st;
    }
    memset(m->params, 0, m->table.total * sizeof(float));
    flava_align_init_weights(m, 0);
    *out = m;
    return FLAVA_OK;
}

static void text_acts_free(flava_align_text_acts *a)
{
    if (!a)
        return;
    flava_free(a->mem);
    flava_free(a->zero_types);
    flava_free(a);
}

void flava_align_destroy(flava_align *m)
{
    if (!m)
        return;
    text_acts_free(m->tacts);
    flava_effnet_free(&m->vision);
    flava_encoder_free(&m->text);
    flava_params_free(&m->table);
    flava_params_free(&m->buffers);
    flava_free(m->params);
    flava_free(m->grads);
    flava_free(m->buf);
    flava_free(m->counters);
    flava_free(m);
}

static void fill_normal(float *w, size_t n, flava_rng *r, double std)
{
    for (size_t i = 0; i < n; i++)
        w[i] = (float)(std * flava_rng_normal(r));
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

void flava_align_init_weights(flava_align *m, uint64_t seed)
{
    flava_effnet_init(&m->vision, m->params, m->buf, m->counters, seed);
    const double std = m->cfg.text.initializer_range;
    flava_rng r;
    /* the text tower and the classifier: one stream per tensor, so a
     * tensor's values do not depend on the others' sizes */
    for (int i = 0; i < m->table.n; i++) {
        const flava_param *p = &m->table.p[i];
        if (strncmp(p->name, "text_model.", 11) && strncmp(p->name, "classifier.", 11))
            continue;
        float *w = m->params + p->offset;
        flava_rng_init(&r, seed, 0x7e47000ull + (uint64_t)i);
        if (ends_with(p->name, "LayerNorm.weight"))
            for (size_t k = 0; k < p->numel; k++)
                w[k] = 1.0f;
        else if (ends_with(p->name, ".bias"))
            memset(w, 0, p->numel * sizeof *w);
        else
            fill_normal(w, p->numel, &r, std);
    }
    const int C = m->cfg.text.hidden_size, pad = m->cfg.text.pad_token_id;
    if (pad >= 0 && pad < m->cfg.text.vocab_size)
        memset(m->params + m->word + (size_t)pad * C, 0, (size_t)C * sizeof(float));
    /* AlignModel: text_projection Xavier-uniform, bias 0 */
    const int P = m->cfg.projection_dim;
    const double bound = sqrt(6.0 / (C + P));
    flava_rng_init(&r, seed, 0x9903ull);
    for (size_t k = 0; k < (size_t)P * C; k++)
        m->params[m->proj_w + k] = (float)(bound * (2.0 * flava_rng_uniform(&r) - 1.0));
    memset(m->params + m->proj_b, 0, (size_t)P * sizeof(float));
    m->params[m->temperature] = (float)m->cfg.temperature_init_value;
}

flava_status flava_align_alloc_grads(flava_align *m)
{
    if (!m->grads)
        FLAVA_TRY(flava_alloc((void **)&m->grads, m->table.total * sizeof(float),
                              "ALIGN gradients"));
    flava_align_zero_grads(m);
    return FLAVA_OK;
}

void flava_align_zero_grads(flava_align *m)
{
    if (m->grads)
        memset(m->grads, 0, m->table.total * sizeof(float));
}

/* ---- activations of the text pass and the head, sized per (B, T) ---- */

static size_t text_layout(flava_align_text_acts *a, const flava_align *m, float *mem)
{
    const size_t B = (size_t)a->B, T = (size_t)a->T, C = (size_t)m->cfg.text.hidden_size,
                 P = (size_t)m->cfg.projection_dim, N = B * T, K = B * (size_t)flava_dist_size();
    size_t n = 0;
#define TAKE(ptr, count) (mem ? (void)((ptr) = mem + n) : (void)0, n += (count))
    TAKE(a->emb, N * C);
    TAKE(a->emb_mean, N);
    TAKE(a->emb_var, N);
    float *enc = NULL;
    TAKE(enc, flava_encoder_acts_floats(&m->text.spec, a->B, a->T));
    if (mem)
        flava_encoder_acts_bind(&a->enc, &m->text.spec, a->B, a->T, enc);
    TAKE(a->cls, B * C);
    TAKE(a->proj, B * P);
    TAKE(a->tnorm, B);
    TAKE(a->pooled, B * P);
    TAKE(a->inorm, B);
    TAKE(a->proj_all, K * P);
    TAKE(a->pooled_all, K * P);
    TAKE(a->logits_t, K * K);
    TAKE(a->logits_i, K * K);
    TAKE(a->probs_t, K * K);
    TAKE(a->probs_i, K * K);
    TAKE(a->dL, K * K);
    TAKE(a->dS, K * K);
    TAKE(a->dtext_all, K * P);
    TAKE(a->dimage_all, K * P);
    TAKE(a->dtext, B * P);
    TAKE(a->dimage, B * P);
    TAKE(a->dproj, B * P);
    TAKE(a->dpooled, B * P);
    TAKE(a->dcls, B * C);
    TAKE(a->dout, N * C);
    TAKE(a->dx, N * C);
    TAKE(a->de, N * C);
    TAKE(a->scratch, flava_encoder_scratch_floats(&m->text.spec, a->B, a->T));
#undef TAKE
    return n;
}

static flava_status bind(flava_align *m, int B, int T)
{
    flava_align_text_acts *a = m->tacts;
    if (a && a->B == B && a->T == T)
        return FLAVA_OK;
    text_acts_free(a);
    m->tacts = NULL;
    FLAVA_TRY(flava_alloc((void **)&a, sizeof *a, "the ALIGN activations"));
    memset(a, 0, sizeof *a);
    m->tacts = a;
    a->B = B, a->T = T;
    size_t n = text_layout(a, m, NULL);
    FLAVA_TRY(flava_alloc((void **)&a->mem, n * sizeof(float), "the ALIGN activations"));
    text_layout(a, m, a->mem);
    FLAVA_TRY(flava_alloc((void **)&a->zero_types, (size_t)B * T * sizeof(int32_t),
                          "the token types"));
    memset(a->zero_types, 0, (size_t)B * T * sizeof(int32_t));
    m->B = B;
    m->text_embeds = a->proj;
    m->image_embeds = a->pooled;
    m->logits_per_text = a->logits_t;
    m->logits_per_image = a->logits_i;
    return FLAVA_OK;
}

#define PAR(off) (m->params + (off))
#define GRD(off) (m->grads + (off))

/* BERT embeddings, the post-LN encoder, text_projection of the [CLS] row:
 * a->proj [B, P], not normalised */
static flava_status text_forward(flava_ctx *ctx, flava_align *m, const int32_t *ids,
                                 const float *mask, const int32_t *types, int train,
                                 uint64_t dropout_seed)
{
    flava_align_text_acts *a = m->tacts;
    const flava_align_text_config *tc = &m->cfg.text;
    const int B = a->B, T = a->T, C = tc->hidden_size, N = B * T;
    if (T > tc->max_position_embeddings)
        return FLAVA_ERROR(FLAVA_ERR_SHAPE, "input_ids has %d positions, max_position_embeddings "
                                            "is %d", T, tc->max_position_embeddings);
    a->ids = ids;
    a->types = types ? types : a->zero_types;
    for (int n = 0; n < N; n++)
        if (a->types[n] < 0 || a->types[n] >= tc->type_vocab_size)
            return FLAVA_ERROR(FLAVA_ERR_ARG, "token_type_ids[%d][%d] = %d is outside [0, %d)",
                               n / T, n % T, a->types[n], tc->type_vocab_size);
    FLAVA_TRY(embedding_forward(a->emb, ids, PAR(m->word), N, C, tc->vocab_size));
    const float *type = PAR(m->type), *pos = PAR(m->pos);
    const int32_t *ty = a->types;
    float *emb = a->emb;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            emb[(size_t)n * C + c] += type[(size_t)ty[n] * C + c] + pos[(size_t)(n % T) * C + c];
    FLAVA_TRY(layernorm_forward(ctx, a->enc.x, a->emb_mean, a->emb_var, a->emb, PAR(m->emb_ln_w),
                                PAR(m->emb_ln_b), N, C, (float)tc->layer_norm_eps));
    a->enc.key_mask = mask;
    /* the image tower's blocks draw streams 0, 1, ... of dropout_seed: the
     * text tower's masks come from a seed of their own */
    flava_rng r;
    flava_rng_init(&r, dropout_seed, UINT64_MAX);
    a->enc.train = train;
    a->enc.dropout_seed = flava_rng_u64(&r);
    FLAVA_TRY(flava_encoder_forward(ctx, &m->text, m->params, &a->enc));
    for (int i = 0; i < B; i++)
        memcpy(a->cls + (size_t)i * C, a->enc.out + (size_t)i * T * C, (size_t)C * sizeof(float));
    return linear_forward(ctx, a->proj, a->cls, PAR(m->proj_w), PAR(m->proj_b), B, C,
                          m->cfg.projection_dim);
}

/* The text tower's backward from a->dcls. */
static flava_status cls_backward(flava_ctx *ctx, flava_align *m)
{
    flava_align_text_acts *a = m->tacts;
    const flava_align_text_config *tc = &m->cfg.text;
    const int B = a->B, T = a->T, C = tc->hidden_size, N = B * T;
    const size_t NC = (size_t)N * C;
    memset(a->dout, 0, NC * sizeof(float));
    for (int i = 0; i < B; i++)
        memcpy(a->dout + (size_t)i * T * C, a->dcls + (size_t)i * C, (size_t)C * sizeof(float));
    memset(a->dx, 0, NC * sizeof(float));
    FLAVA_TRY(flava_encoder_backward(ctx, a->dx, m->grads, &m->text, m->params, &a->enc, a->dout,
                                     NULL, a->scratch));
    memset(a->de, 0, NC * sizeof(float));
    FLAVA_TRY(layernorm_backward(ctx, a->de, GRD(m->emb_ln_w), GRD(m->emb_ln_b), a->dx, a->emb,
                                 PAR(m->emb_ln_w), a->emb_mean, a->emb_var, N, C,
                                 (float)tc->layer_norm_eps));
    FLAVA_TRY(embedding_backward(GRD(m->word), a->de, a->ids, N, C));
    /* nn.Embedding(padding_idx): the padding row never learns */
    if (tc->pad_token_id >= 0 && tc->pad_token_id < tc->vocab_size)
        memset(GRD(m->word) + (size_t)tc->pad_token_id * C, 0, (size_t)C * sizeof(float));
    FLAVA_TRY(embedding_backward(GRD(m->type), a->de, a->types, N, C));
    float *gpos = GRD(m->pos);
    const float *de = a->de;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++)
        for (int i = 0; i < B; i++)
            for (int c = 0; c < C; c++)
                gpos[(size_t)t * C + c] += de[((size_t)i * T + t) * C + c];
    return FLAVA_OK;
}

static flava_status text_backward(flava_ctx *ctx, flava_align *m)
{
    flava_align_text_acts *a = m->tacts;
    const int C = m->cfg.text.hidden_size;
    memset(a->dcls, 0, (size_t)a->B * C * sizeof(float));
    FLAVA_TRY(linear_backward(ctx, a->dcls, GRD(m->proj_w), GRD(m->proj_b), a->dproj, a->cls,
                              PAR(m->proj_w), a->B, C, m->cfg.projection_dim));
    return cls_backward(ctx, m);
}

/* ---- the contrastive head ---- */

/* torch cross_entropy(label_smoothing=eps, reduction mean) over the rows of
 * an [n, n] matrix (or of its transpose) with targets arange(n); the
 * softmax rows go to probs. */
static double smoothed_ce(float *probs, const float *logits, int n, int transpose, double eps)
{
    double loss = 0;
    for (int i = 0; i < n; i++) {
        double mx = -INFINITY, sum = 0, sumlog = 0;
        for (int j = 0; j < n; j++) {
            double v = transpose ? logits[(size_t)j * n + i] : logits[(size_t)i * n + j];
            mx = v > mx ? v : mx;
        }
        for (int j = 0; j < n; j++)
            sum += exp((transpose ? logits[(size_t)j * n + i] : logits[(size_t)i * n + j]) - mx);
        const double lse = mx + log(sum);
        for (int j = 0; j < n; j++) {
            double lp = (transpose ? logits[(size_t)j * n + i] : logits[(size_t)i * n + j]) - lse;
            probs[(size_t)i * n + j] = (float)exp(lp);
            sumlog += lp;
            if (j == i)
                loss -= (1.0 - eps) * lp;
        }
        loss -= eps / n * sumlog;
    }
    return loss / n;
}

flava_status flava_align_forward(flava_ctx *ctx, flava_align *m, const flava_align_inputs *in,
                                 int train, uint64_t dropout_seed)
{
    if (in->B < 1 || in->T < 1 || !in->pixel_values || !in->input_ids)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "ALIGN forward needs pixel_values and input_ids for "
                                          "B >= 1 pairs of T >= 1 tokens (B %d, T %d)",
                           in->B, in->T);
    FLAVA_TRY(bind(m, in->B, in->T));
    flava_align_text_acts *a = m->tacts;
    const int B = in->B, P = m->cfg.projection_dim;
    FLAVA_TRY(flava_effnet_forward(ctx, &m->vision, a->pooled, m->params, m->buf, m->counters,
                                   in->pixel_values, B, in->H, in->W, train, dropout_seed));
    FLAVA_TRY(text_forward(ctx, m, in->input_ids, in->attention_mask, in->token_type_ids, train,
                           dropout_seed));
    /* HF divides by the plain norm; the ops' F.normalize differs only for
     * a zero vector */
    FLAVA_TRY(l2norm_forward(a->proj, a->tnorm, a->proj, B, P));
    FLAVA_TRY(l2norm_forward(a->pooled, a->inorm, a->pooled, B, P));
    const float temp = m->params[m->temperature];
    if (!(temp != 0.0f) || !isfinite(temp))
        return FLAVA_ERROR(FLAVA_ERR_NUMERIC, "temperature is %g: the logits are undefined",
                           (double)temp);
    /* logits_per_text[i][j] = t_i . v_j / temperature, over every rank's pairs */
    const int K = B * flava_dist_size();
    FLAVA_TRY(flava_dist_gather_rows(a->proj_all, a->proj, B, P));
    FLAVA_TRY(flava_dist_gather_rows(a->pooled_all, a->pooled, B, P));
    float *per_text = m->logits_per_text, *per_image = m->logits_per_image;
    FLAVA_TRY(linear_forward(ctx, per_text, a->proj_all, a->pooled_all, NULL, K, P, K));
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++)
            per_text[(size_t)i * K + j] /= temp;
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++)
            per_image[(size_t)j * K + i] = per_text[(size_t)i * K + j];
    double lt = smoothed_ce(a->probs_t, per_text, K, 0, ALIGN_LABEL_SMOOTHING);
    double li = smoothed_ce(a->probs_i, per_text, K, 1, ALIGN_LABEL_SMOOTHING);
    m->loss = (float)((lt + li) / 2.0);
    return FLAVA_OK;
}

flava_status flava_align_backward(flava_ctx *ctx, flava_align *m)
{
    flava_align_text_acts *a = m->tacts;
    if (!a || !m->grads)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "ALIGN backward needs a forward pass and gradients "
                                          "(flava_align_alloc_grads)");
    const int B = a->B, P = m->cfg.projection_dim, K = B * flava_dist_size();
    const double eps = ALIGN_LABEL_SMOOTHING;
    const float temp = m->params[m->temperature];
    const float *per_text = m->logits_per_text;
    /* d loss / d logits_per_text: half of each direction's (p - q) / K,
     * q = (1 - eps) onehot + eps / K; the image rows are its columns */
    float *dL = a->dL, *dS = a->dS;
    double dtemp = 0;
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++) {
            double q = (i == j ? 1.0 - eps : 0.0) + eps / K;
            double g = 0.5 * ((a->probs_t[(size_t)i * K + j] - q) +
                              (a->probs_i[(size_t)j * K + i] - q)) / K;
            dL[(size_t)i * K + j] = (float)g;
            /* per_text = S / temp: d temp = -sum g * per_text / temp */
            dtemp -= g * per_text[(size_t)i * K + j] / temp;
        }
    m->grads[m->temperature] += (float)dtemp;
    for (int k = 0; k < K * K; k++)
        dS[k] = dL[k] / temp;
    memset(a->dtext_all, 0, (size_t)K * P * sizeof(float));
    memset(a->dimage_all, 0, (size_t)K * P * sizeof(float));
    FLAVA_TRY(linear_backward(ctx, a->dtext_all, a->dimage_all, NULL, dS, a->proj_all,
                              a->pooled_all, K, P, K));
    flava_dist_own_rows(a->dtext, a->dtext_all, B, P);
    flava_dist_own_rows(a->dimage, a->dimage_all, B, P);
    memset(a->dproj, 0, (size_t)B * P * sizeof(float));
    FLAVA_TRY(l2norm_backward(a->dproj, a->dtext, a->proj, a->tnorm, B, P));
    memset(a->dpooled, 0, (size_t)B * P * sizeof(float));
    FLAVA_TRY(l2norm_backward(a->dpooled, a->dimage, a->pooled, a->inorm, B, P));
    FLAVA_TRY(text_backward(ctx, m));
    return flava_effnet_backward(ctx, m->grads, &m->vision, m->params, m->buf, a->dpooled);
}

flava_status flava_align_encode_images(flava_ctx *ctx, flava_align *m, float *features,
                                       const float *pixel_values, int B, int H, int W)
{
    return flava_align_image_forward(ctx, m, features, pixel_values, B, H, W, 0, 0);
}

flava_status flava_align_image_forward(flava_ctx *ctx, flava_align *m, float *features,
                                       const float *pixel_values, int B, int H, int W, int train,
                                       uint64_t dropout_seed)
{
    return flava_effnet_forward(ctx, &m->vision, features, m->params, m->buf, m->counters,
                                pixel_values, B, H, W, train, dropout_seed);
}

flava_status flava_align_image_backward(flava_ctx *ctx, flava_align *m, const float *dfeatures)
{
    if (!m->grads)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "ALIGN image backward needs gradients "
                                          "(flava_align_alloc_grads)");
    return flava_effnet_backward(ctx, m->grads, &m->vision, m->params, m->buf, dfeatures);
}

/* The text tower alone on B texts (m->tacts keeps the pass). */
static flava_status text_pass(flava_ctx *ctx, flava_align *m, const int32_t *input_ids,
                              const float *attention_mask, const int32_t *token_type_ids, int B,
                              int T, int train, uint64_t dropout_seed)
{
    if (B < 1 || T < 1 || !input_ids)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "ALIGN text features need input_ids for B >= 1 texts "
                                          "of T >= 1 tokens (B %d, T %d)", B, T);
    FLAVA_TRY(bind(m, B, T));
    return text_forward(ctx, m, input_ids, attention_mask, token_type_ids, train, dropout_seed);
}

flava_status flava_align_encode_texts(flava_ctx *ctx, flava_align *m, float *features,
                                      const int32_t *input_ids, const float *attention_mask,
                                      const int32_t *token_type_ids, int B, int T)
{
    FLAVA_TRY(text_pass(ctx, m, input_ids, attention_mask, token_type_ids, B, T, 0, 0));
    memcpy(features, m->tacts->proj, (size_t)B * m->cfg.projection_dim * sizeof(float));
    return FLAVA_OK;
}

flava_status flava_align_text_cls(flava_ctx *ctx, flava_align *m, float *cls,
                                  const int32_t *input_ids, const float *attention_mask,
                                  const int32_t *token_type_ids, int B, int T, int train,
                                  uint64_t dropout_seed)
{
    FLAVA_TRY(text_pass(ctx, m, input_ids, attention_mask, token_type_ids, B, T, train,
                        dropout_seed));
    memcpy(cls, m->tacts->cls, (size_t)B * m->cfg.text.hidden_size * sizeof(float));
    return FLAVA_OK;
}

flava_status flava_align_text_cls_backward(flava_ctx *ctx, flava_align *m, const float *dcls)
{
    flava_align_text_acts *a = m->tacts;
    if (!a || !m->grads)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "ALIGN text backward needs a text pass and gradients "
                                          "(flava_align_alloc_grads)");
    memcpy(a->dcls, dcls, (size_t)a->B * m->cfg.text.hidden_size * sizeof(float));
    return cls_backward(ctx, m);
}

/* ================================================================ files */

/* The checkpoint: one safetensors file, or an HF folder holding
 * config.json and model.safetensors. */
typedef struct source {
    flava_st *st;
    char *config_json;
} source;

static void source_free(source *s)
{
    flava_st_free(s->st);
    flava_free(s->config_json);
    memset(s, 0, sizeof *s);
}

static flava_status source_open(source *s, const char *path)
{
    memset(s, 0, sizeof *s);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return FLAVA_ERROR(FLAVA_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return flava_st_read(&s->st, path);
    char p[4096];
    snprintf(p, sizeof p, "%s/config.json", path);
    size_t n;
    flava_status st = flava_file_read(&s->config_json, &n, p);
    snprintf(p, sizeof p, "%s/model.safetensors", path);
    if (st == FLAVA_OK)
        st = flava_st_read(&s->st, p);
    if (st != FLAVA_OK)
        source_free(s);
    return st;
}

flava_status flava_align_read_config(flava_align_config *c, const char *path)
{
    source s;
    FLAVA_TRY(source_open(&s, path));
    flava_align_config_default(c);
    const char *json = s.config_json ? s.config_json : flava_st_meta(s.st, "config");
    flava_status st = json ? flava_align_config_from_json(c, json, path)
                           : FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: no __metadata__[\"config\"] "
                                                           "(the model config)", path);
    source_free(&s);
    return st;
}

/* The counter of batch norm k: its running_mean key with
 * num_batches_tracked for running_mean. */
static void counter_name(char *buf, size_t n, const flava_align *m, int k)
{
    for (int i = 0; i < m->buffers.n; i++) {
        const char *name = m->buffers.p[i].name;
        if (!ends_with(name, ".running_mean") || k-- != 0)
            continue;
        snprintf(buf, n, "%.*s.num_batches_tracked", (int)(strlen(name) - 13), name);
        return;
    }
    buf[0] = '\0';
}

typedef struct namelist {
    char buf[1024];
    int count;
} namelist;

static void namelist_add(namelist *l, const char *name)
{
    size_t used = strlen(l->buf);
    if (l->count < 8 && used < sizeof l->buf - 1)
        snprintf(l->buf + used, sizeof l->buf - used, "%s%s", l->count ? ", " : "", name);
    l->count++;
}

static flava_status load_table(const flava_param_table *t, float *dst, const flava_st *st,
                               namelist *missing, namelist *bad)
{
    for (int i = 0; i < t->n; i++) {
        const flava_param *p = &t->p[i];
        const flava_st_tensor *x = flava_st_find(st, p->name);
        int same = x && x->ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++)
            same = x->shape[d] == p->shape[d];
        if (!x)
            namelist_add(missing, p->name);
        else if (!same)
            namelist_add(bad, p->name);
        else
            FLAVA_TRY(flava_st_to_f32(dst + p->offset, x));
    }
    return FLAVA_OK;
}

/* HF buffers that are not state: the text tower's position/type id tables */
static int is_ignored(const char *name)
{
    return ends_with(name, ".position_ids") || ends_with(name, ".token_type_ids");
}

flava_status flava_align_load_weights(flava_align *m, const char *path)
{
    source s;
    FLAVA_TRY(source_open(&s, path));
    namelist missing = {{0}, 0}, bad = {{0}, 0}, unexpected = {{0}, 0};
    flava_status st = load_table(&m->table, m->params, s.st, &missing, &bad);
    if (st == FLAVA_OK)
        st = load_table(&m->buffers, m->buf, s.st, &missing, &bad);
    char name[FLAVA_PARAM_NAME_MAX + 32];
    for (int k = 0; st == FLAVA_OK && k < m->vision.nbn; k++) {
        counter_name(name, sizeof name, m, k);
        const flava_st_tensor *x = flava_st_find(s.st, name);
        if (!x)
            namelist_add(&missing, name);
        else if (x->dtype != FLAVA_I64 || flava_st_numel(x) != 1)
            namelist_add(&bad, name);
        else
            memcpy(&m->counters[k], x->data, sizeof(int64_t));
    }
    for (int i = 0; st == FLAVA_OK && i < flava_st_count(s.st); i++) {
        const char *n = flava_st_get(s.st, i)->name;
        if (!flava_params_find(&m->table, n) && !flava_params_find(&m->buffers, n) &&
            !ends_with(n, ".num_batches_tracked") && !is_ignored(n))
            namelist_add(&unexpected, n);
    }
    source_free(&s);
    FLAVA_TRY(st);
    if (bad.count)
        return FLAVA_ERROR(FLAVA_ERR_SHAPE, "%s: %d tensor(s) of the wrong shape or dtype: %s%s",
                           path, bad.count, bad.buf, bad.count > 8 ? ", ..." : "");
    if (missing.count || unexpected.count)
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: %d missing key(s)%s%s%s; %d unexpected key(s)%s%s%s",
                           path, missing.count, missing.count ? ": " : "", missing.buf,
                           missing.count > 8 ? ", ..." : "", unexpected.count,
                           unexpected.count ? ": " : "", unexpected.buf,
                           unexpected.count > 8 ? ", ..." : "");
    return FLAVA_OK;
}

flava_status flava_align_load(flava_align **out, const char *path)
{
    *out = NULL;
    flava_align_config c;
    FLAVA_TRY(flava_align_read_config(&c, path));
    flava_align *m;
    FLAVA_TRY(flava_align_create(&m, &c));
    flava_status st = flava_align_load_weights(m, path);
    if (st != FLAVA_OK) {
        flava_align_destroy(m);
        return st;
    }
    *out = m;
    return FLAVA_OK;
}

flava_status flava_align_save(const flava_align *m, const char *path)
{
    const int np = m->table.n, nb = m->buffers.n, nc = m->vision.nbn, n = np + nb + nc;
    flava_st_tensor *t = NULL;
    char(*names)[FLAVA_PARAM_NAME_MAX + 32] = NULL;
    char *json = NULL;
    flava_status st = flava_alloc((void **)&t, (size_t)n * sizeof *t, "the checkpoint index");
    if (st == FLAVA_OK)
        st = flava_alloc((void **)&names, (size_t)(nc ? nc : 1) * sizeof *names,
                         "the checkpoint names");
    if (st == FLAVA_OK)
        st = flava_align_config_to_json(&json, &m->cfg);
    if (st == FLAVA_OK) {
        for (int i = 0; i < np + nb; i++) {
            const flava_param *p = i < np ? &m->table.p[i] : &m->buffers.p[i - np];
            const float *base = i < np ? m->params : m->buf;
            t[i] = (flava_st_tensor){.name = p->name, .dtype = FLAVA_F32, .ndim = p->ndim,
                                     .data = base + p->offset, .nbytes = p->numel * sizeof(float)};
            for (int d = 0; d < p->ndim; d++)
                t[i].shape[d] = p->shape[d];
        }
        for (int k = 0; k < nc; k++) {
            counter_name(names[k], sizeof names[k], m, k);
            t[np + nb + k] = (flava_st_tensor){.name = names[k], .dtype = FLAVA_I64, .ndim = 0,
                                               .data = &m->counters[k], .nbytes = sizeof(int64_t)};
        }
        const flava_st_kv meta[] = {{"config", json}, {"format", "pt"}};
        st = flava_st_write(path, t, n, meta, 2);
    }
    free(json); /* cJSON's */
    flava_free(names);
    flava_free(t);
    return st;
}

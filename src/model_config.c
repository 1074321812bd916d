/* model_config.c - the FLAVA configuration: HF FlavaConfig fields, their
 * defaults, and reading/writing HF config JSON. One table of fields drives
 * defaults, JSON in and out, and `key = value` overrides. */
#include "model.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { F_INT, F_BOOL, F_DOUBLE, F_STR } field_type;

typedef struct field {
    const char *name;
    field_type type;
    size_t off;
    double def;         /* default for numbers and booleans */
    const char *defstr; /* default for strings */
} field;

typedef struct section {
    const char *name;   /* "" = top level, else the nested object */
    const field *fields;
    int nfields;
    size_t base;        /* offset of the section's struct within flava_config */
} section;

#define ENC(sec, hs, nl, nh, is)                                                            \
    {"hidden_size", F_INT, offsetof(flava_encoder_config, hidden_size), hs, NULL},          \
    {"num_hidden_layers", F_INT, offsetof(flava_encoder_config, num_hidden_layers), nl, NULL}, \
    {"num_attention_heads", F_INT, offsetof(flava_encoder_config, num_attention_heads), nh,  \
     NULL},                                                                                 \
    {"intermediate_size", F_INT, offsetof(flava_encoder_config, intermediate_size), is, NULL}, \
    {"hidden_act", F_STR, offsetof(flava_encoder_config, hidden_act), 0, "gelu"},          \
    {"hidden_dropout_prob", F_DOUBLE, offsetof(flava_encoder_config, hidden_dropout_prob), 0, \
     NULL},                                                                                 \
    {"attention_probs_dropout_prob", F_DOUBLE,                                             \
     offsetof(flava_encoder_config, attention_probs_dropout_prob), 0, NULL},                \
    {"initializer_range", F_DOUBLE, offsetof(flava_encoder_config, initializer_range), 0.02, \
     NULL},                                                                                 \
    {"layer_norm_eps", F_DOUBLE, offsetof(flava_encoder_config, layer_norm_eps), 1e-12, NULL}, \
    {"qkv_bias", F_BOOL, offsetof(flava_encoder_config, qkv_bias), 1, NULL}

#define IMG(f) (offsetof(flava_config, image.f) - offsetof(flava_config, image))
#define TXT(f) (offsetof(flava_config, text.f) - offsetof(flava_config, text))
#define MMF(f) (offsetof(flava_config, multimodal.f) - offsetof(flava_config, multimodal))
#define CBK(f) (offsetof(flava_config, image_codebook.f) - offsetof(flava_config, image_codebook))
#define TOP(f) offsetof(flava_config, f)

static const field image_fields[] = {
    ENC(image, 768, 12, 12, 3072),
    {"image_size", F_INT, IMG(image_size), 224, NULL},
    {"patch_size", F_INT, IMG(patch_size), 16, NULL},
    {"num_channels", F_INT, IMG(num_channels), 3, NULL},
    {"mask_token", F_BOOL, IMG(mask_token), 1, NULL},
    {"vocab_size", F_INT, IMG(vocab_size), 8192, NULL},
};
static const field text_fields[] = {
    ENC(text, 768, 12, 12, 3072),
    {"vocab_size", F_INT, TXT(vocab_size), 30522, NULL},
    {"type_vocab_size", F_INT, TXT(type_vocab_size), 2, NULL},
    {"max_position_embeddings", F_INT, TXT(max_position_embeddings), 512, NULL},
    {"pad_token_id", F_INT, TXT(pad_token_id), 0, NULL},
    {"position_embedding_type", F_STR, TXT(position_embedding_type), 0, "absolute"},
};
static const field multimodal_fields[] = {
    ENC(multimodal, 768, 6, 12, 3072),
    {"use_cls_token", F_BOOL, MMF(use_cls_token), 1, NULL},
};
static const field codebook_fields[] = {
    {"num_groups", F_INT, CBK(num_groups), 4, NULL},
    {"input_channels", F_INT, CBK(input_channels), 3, NULL},
    {"num_blocks_per_group", F_INT, CBK(num_blocks_per_group), 2, NULL},
    {"hidden_size", F_INT, CBK(hidden_size), 256, NULL},
    {"vocab_size", F_INT, CBK(vocab_size), 8192, NULL},
    {"freeze", F_BOOL, CBK(freeze), 1, NULL},
    {"initializer_range", F_DOUBLE, CBK(initializer_range), 0.02, NULL},
};
static const field top_fields[] = {
    {"hidden_size", F_INT, TOP(hidden_size), 768, NULL},
    {"layer_norm_eps", F_DOUBLE, TOP(layer_norm_eps), 1e-12, NULL},
    {"projection_dim", F_INT, TOP(projection_dim), 768, NULL},
    {"init_codebook", F_BOOL, TOP(init_codebook), 1, NULL},
    {"logit_scale_init_value", F_DOUBLE, TOP(logit_scale_init_value), 2.6592, NULL},
    {"initializer_range", F_DOUBLE, TOP(initializer_range), 0.02, NULL},
    {"ce_ignore_index", F_INT, TOP(ce_ignore_index), -100, NULL},
    {"mim_weight", F_DOUBLE, TOP(mim_weight), 1, NULL},
    {"mlm_weight", F_DOUBLE, TOP(mlm_weight), 1, NULL},
    {"global_contrastive_weight", F_DOUBLE, TOP(global_contrastive_weight), 1, NULL},
    {"itm_weight", F_DOUBLE, TOP(itm_weight), 1, NULL},
    {"mmm_image_weight", F_DOUBLE, TOP(mmm_image_weight), 1, NULL},
    {"mmm_text_weight", F_DOUBLE, TOP(mmm_text_weight), 1, NULL},
    {"global_backprop_contrastive", F_BOOL, TOP(global_backprop_contrastive), 1, NULL},
    {"skip_unmasked_multimodal_encoder", F_BOOL, TOP(skip_unmasked_multimodal_encoder), 1,
     NULL},
    {"return_loss", F_BOOL, TOP(return_loss), 1, NULL},
    {"vqa_num_answers", F_INT, TOP(vqa_num_answers), 0, NULL},
    {"num_labels", F_INT, TOP(num_labels), 0, NULL},
    {"classifier_input", F_STR, TOP(classifier_input), 0, "multimodal"},
};

#define NF(a) ((int)(sizeof a / sizeof a[0]))
static const section sections[] = {
    {"", top_fields, NF(top_fields), 0},
    {"image_config", image_fields, NF(image_fields), offsetof(flava_config, image)},
    {"text_config", text_fields, NF(text_fields), offsetof(flava_config, text)},
    {"multimodal_config", multimodal_fields, NF(multimodal_fields),
     offsetof(flava_config, multimodal)},
    {"image_codebook_config", codebook_fields, NF(codebook_fields),
     offsetof(flava_config, image_codebook)},
};
enum { NSECTIONS = sizeof sections / sizeof sections[0] };

static void *field_ptr(flava_config *c, const section *s, const field *f)
{
    return (char *)c + s->base + f->off;
}

void flava_config_default(flava_config *c)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < NSECTIONS; i++) {
        const section *s = &sections[i];
        for (int j = 0; j < s->nfields; j++) {
            const field *f = &s->fields[j];
            void *p = field_ptr(c, s, f);
            switch (f->type) {
            case F_INT:
            case F_BOOL: *(int *)p = (int)f->def; break;
            case F_DOUBLE: *(double *)p = f->def; break;
            case F_STR: snprintf(p, 16, "%s", f->defstr); break;
            }
        }
    }
}

static flava_status set_from_json(flava_config *c, const section *s, const field *f,
                                  const cJSON *v, const char *what)
{
    void *p = field_ptr(c, s, f);
    const char *sep = s->name[0] ? "." : "";
    switch (f->type) {
    case F_BOOL:
        if (cJSON_IsBool(v)) {
            *(int *)p = cJSON_IsTrue(v);
            return FLAVA_OK;
        }
        break;
    case F_INT:
        if (cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) &&
            fabs(v->valuedouble) < 2e9) {
            *(int *)p = (int)v->valuedouble;
            return FLAVA_OK;
        }
        break;
    case F_DOUBLE:
        if (cJSON_IsNumber(v)) {
            *(double *)p = v->valuedouble;
            return FLAVA_OK;
        }
        break;
    case F_STR:
        if (cJSON_IsString(v) && strlen(v->valuestring) < 16) {
            snprintf(p, 16, "%s", v->valuestring);
            return FLAVA_OK;
        }
        break;
    }
    static const char *const tn[] = {"an integer", "a boolean", "a number",
                                     "a string (< 16 bytes)"};
    return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: %s%s%s must be %s", what, s->name, sep, f->name,
                       tn[f->type]);
}

static flava_status read_section(flava_config *c, const section *s, const cJSON *obj,
                                 const char *what)
{
    if (!obj)
        return FLAVA_OK;
    if (!cJSON_IsObject(obj))
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: %s must be an object", what, s->name);
    for (int j = 0; j < s->nfields; j++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, s->fields[j].name);
        if (v && !cJSON_IsNull(v))
            FLAVA_TRY(set_from_json(c, s, &s->fields[j], v, what));
    }
    return FLAVA_OK;
}

flava_status flava_config_from_json(flava_config *c, const char *json, const char *what)
{
    cJSON *root = cJSON_Parse(json);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: malformed JSON near '%.20s'", what,
                           at ? at : "?");
    }
    flava_status st = FLAVA_OK;
    if (!cJSON_IsObject(root))
        st = FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: the config must be a JSON object", what);
    for (int i = 0; st == FLAVA_OK && i < NSECTIONS; i++) {
        const section *s = &sections[i];
        if (!s->name[0]) {
            st = read_section(c, s, root, what);
            continue;
        }
        /* HF writes both `X_config` and the older `X_config_dict`; the
         * latter wins, as in FlavaConfig.__init__. */
        char dict[64];
        snprintf(dict, sizeof dict, "%s_dict", s->name);
        st = read_section(c, s, cJSON_GetObjectItemCaseSensitive(root, s->name), what);
        if (st == FLAVA_OK)
            st = read_section(c, s, cJSON_GetObjectItemCaseSensitive(root, dict), what);
    }
    cJSON_Delete(root);
    return st;
}

static flava_status add_field(cJSON *obj, const flava_config *c, const section *s,
                              const field *f)
{
    const void *p = (const char *)c + s->base + f->off;
    cJSON *v = NULL;
    switch (f->type) {
    case F_INT: v = cJSON_CreateNumber(*(const int *)p); break;
    case F_BOOL: v = cJSON_CreateBool(*(const int *)p); break;
    case F_DOUBLE: v = cJSON_CreateNumber(*(const double *)p); break;
    case F_STR: v = cJSON_CreateString(p); break;
    }
    if (!v || !cJSON_AddItemToObject(obj, f->name, v)) {
        cJSON_Delete(v);
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot build the config JSON (%s)", f->name);
    }
    return FLAVA_OK;
}

flava_status flava_config_to_json(char **out, const flava_config *c)
{
    *out = NULL;
    cJSON *root = cJSON_CreateObject();
    flava_status st = root ? FLAVA_OK : FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot build config JSON");
    if (st == FLAVA_OK && !cJSON_AddStringToObject(root, "model_type", "flava"))
        st = FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot build the config JSON");
    for (int i = 0; st == FLAVA_OK && i < NSECTIONS; i++) {
        const section *s = &sections[i];
        cJSON *obj = root;
        if (s->name[0]) {
            obj = cJSON_AddObjectToObject(root, s->name);
            if (!obj) {
                st = FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot build the config JSON");
                break;
            }
        }
        for (int j = 0; st == FLAVA_OK && j < s->nfields; j++)
            st = add_field(obj, c, s, &s->fields[j]);
    }
    if (st == FLAVA_OK) {
        *out = cJSON_PrintUnformatted(root);
        if (!*out)
            st = FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot print the config JSON");
    }
    cJSON_Delete(root);
    return st;
}

flava_status flava_config_set(flava_config *c, const char *key, const char *value)
{
    const char *dot = strchr(key, '.');
    size_t seclen = dot ? (size_t)(dot - key) : 0;
    const char *fname = dot ? dot + 1 : key;
    for (int i = 0; i < NSECTIONS; i++) {
        const section *s = &sections[i];
        if (strlen(s->name) != seclen || strncmp(s->name, key, seclen))
            continue;
        for (int j = 0; j < s->nfields; j++) {
            const field *f = &s->fields[j];
            if (strcmp(f->name, fname))
                continue;
            void *p = field_ptr(c, s, f);
            char *end = NULL;
            errno = 0;
            switch (f->type) {
            case F_BOOL:
                if (!strcmp(value, "true") || !strcmp(value, "1")) {
                    *(int *)p = 1;
                    return FLAVA_OK;
                }
                if (!strcmp(value, "false") || !strcmp(value, "0")) {
                    *(int *)p = 0;
                    return FLAVA_OK;
                }
                return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s = '%s': expected true or false", key,
                                   value);
            case F_INT: {
                long v = strtol(value, &end, 10);
                if (errno || end == value || *end || v < -2000000000L || v > 2000000000L)
                    return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s = '%s': expected an integer", key,
                                       value);
                *(int *)p = (int)v;
                return FLAVA_OK;
            }
            case F_DOUBLE: {
                double v = strtod(value, &end);
                if (errno || end == value || *end || !isfinite(v))
                    return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s = '%s': expected a number", key,
                                       value);
                *(double *)p = v;
                return FLAVA_OK;
            }
            case F_STR:
                if (strlen(value) >= 16)
                    return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s = '%s': longer than 15 bytes", key,
                                       value);
                snprintf(p, 16, "%s", value);
                return FLAVA_OK;
            }
        }
    }
    return FLAVA_ERROR(FLAVA_ERR_CONFIG, "unknown model config key '%s'", key);
}

static flava_status validate_encoder(const flava_encoder_config *e, const char *name)
{
    flava_activation act;
    if (e->hidden_size <= 0 || e->num_attention_heads <= 0 || e->num_hidden_layers < 0 ||
        e->intermediate_size <= 0 || e->hidden_size % e->num_attention_heads)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG,
                           "%s: hidden_size %d, num_attention_heads %d, num_hidden_layers %d, "
                           "intermediate_size %d (hidden_size must be a multiple of the heads)",
                           name, e->hidden_size, e->num_attention_heads, e->num_hidden_layers,
                           e->intermediate_size);
    if (!(e->layer_norm_eps > 0))
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s.layer_norm_eps must be positive", name);
    if (!(e->hidden_dropout_prob >= 0 && e->hidden_dropout_prob < 1) ||
        !(e->attention_probs_dropout_prob >= 0 && e->attention_probs_dropout_prob < 1))
        return FLAVA_ERROR(FLAVA_ERR_CONFIG,
                           "%s: hidden_dropout_prob %g, attention_probs_dropout_prob %g: "
                           "expected probabilities in [0, 1)",
                           name, e->hidden_dropout_prob, e->attention_probs_dropout_prob);
    flava_status st = flava_activation_parse(&act, e->hidden_act);
    if (st != FLAVA_OK)
        flava_error_context("%s", name);
    return st;
}

flava_status flava_config_validate(const flava_config *c)
{
    FLAVA_TRY(validate_encoder(&c->image.enc, "image_config"));
    FLAVA_TRY(validate_encoder(&c->text.enc, "text_config"));
    FLAVA_TRY(validate_encoder(&c->multimodal.enc, "multimodal_config"));
    if (c->image.patch_size <= 0 || c->image.image_size % c->image.patch_size ||
        c->image.num_channels <= 0 || c->image.vocab_size <= 0)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG,
                           "image_config: image_size %d must be a multiple of patch_size %d "
                           "(num_channels %d, vocab_size %d)",
                           c->image.image_size, c->image.patch_size, c->image.num_channels,
                           c->image.vocab_size);
    if (c->text.vocab_size <= 0 || c->text.type_vocab_size <= 0 ||
        c->text.max_position_embeddings <= 0)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG,
                           "text_config: vocab_size %d, type_vocab_size %d and "
                           "max_position_embeddings %d must be positive",
                           c->text.vocab_size, c->text.type_vocab_size,
                           c->text.max_position_embeddings);
    if (strcmp(c->text.position_embedding_type, "absolute"))
        return FLAVA_ERROR(FLAVA_ERR_CONFIG,
                           "text_config.position_embedding_type '%s': only 'absolute' is "
                           "supported",
                           c->text.position_embedding_type);
    if (!c->multimodal.use_cls_token)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG,
                           "multimodal_config.use_cls_token false is not supported (FLAVA's "
                           "ITM and MMM heads read the multimodal CLS)");
    if (c->projection_dim <= 0)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "projection_dim %d must be positive",
                           c->projection_dim);
    if (strcmp(c->classifier_input, "multimodal") && strcmp(c->classifier_input, "text") &&
        strcmp(c->classifier_input, "image"))
        return FLAVA_ERROR(FLAVA_ERR_CONFIG,
                           "classifier_input '%s': expected multimodal, text or image",
                           c->classifier_input);
    return FLAVA_OK;
}

/* clip.c - the CLIP family (see clip.h). */
#include "clip.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "dist.h"
#include "mlp.h"
#include "ops.h"

/* ---- config: HF CLIPConfig fields, one table drives defaults, JSON in
 * and JSON out ---- */

typedef enum { C_INT, C_DOUBLE, C_STR } ctype;

typedef struct cfield {
    const char *name;
    ctype type;
    size_t off; /* within flava_clip_config */
    double def;
    const char *defstr;
} cfield;

#define TOWER(sec, hs, is, nl, nh)                                                         \
    {"hidden_size", C_INT, offsetof(flava_clip_config, sec.enc.hidden_size), hs, NULL},    \
    {"intermediate_size", C_INT, offsetof(flava_clip_config, sec.enc.intermediate_size), is, \
     NULL},                                                                                \
    {"num_hidden_layers", C_INT, offsetof(flava_clip_config, sec.enc.num_hidden_layers), nl, \
     NULL},                                                                                \
    {"num_attention_heads", C_INT, offsetof(flava_clip_config, sec.enc.num_attention_heads), \
     nh, NULL},                                                                            \
    {"hidden_act", C_STR, offsetof(flava_clip_config, sec.enc.hidden_act), 0, "quick_gelu"}, \
    {"layer_norm_eps", C_DOUBLE, offsetof(flava_clip_config, sec.enc.layer_norm_eps), 1e-5,  \
     NULL},                                                                                \
    {"initializer_range", C_DOUBLE, offsetof(flava_clip_config, sec.enc.initializer_range),  \
     0.02, NULL}

#define TF(f) offsetof(flava_clip_config, text.f)
#define VF(f) offsetof(flava_clip_config, vision.f)
static const cfield text_fields[] = {
    TOWER(text, 512, 2048, 12, 8),
    {"vocab_size", C_INT, TF(vocab_size), 49408, NULL},
    {"max_position_embeddings", C_INT, TF(max_position_embeddings), 77, NULL},
    {"pad_token_id", C_INT, TF(pad_token_id), 1, NULL},
    {"bos_token_id", C_INT, TF(bos_token_id), 49406, NULL},
    {"eos_token_id", C_INT, TF(eos_token_id), 49407, NULL},
};
static const cfield vision_fields[] = {
    TOWER(vision, 768, 3072, 12, 12),
    {"image_size", C_INT, VF(image_size), 224, NULL},
    {"patch_size", C_INT, VF(patch_size), 32, NULL},
    {"num_channels", C_INT, VF(num_channels), 3, NULL},
};
static const cfield top_fields[] = {
    {"projection_dim", C_INT, offsetof(flava_clip_config, projection_dim), 512, NULL},
    {"logit_scale_init_value", C_DOUBLE, offsetof(flava_clip_config, logit_scale_init_value),
     2.6592, NULL},
    {"initializer_factor", C_DOUBLE, offsetof(flava_clip_config, initializer_factor), 1.0,
     NULL},
    {"num_labels", C_INT, offsetof(flava_clip_config, num_labels), 0, NULL},
    {"classifier_input", C_STR, offsetof(flava_clip_config, classifier_input), 0, "image"},
};

typedef struct csection {
    const char *name; /* "" = top level */
    const cfield *f;
    int n;
} csection;
#define NF(a) ((int)(sizeof a / sizeof a[0]))
/* The legacy `*_config_dict` objects override `*_config`, as HF reads them. */
static const csection sections[] = {
    {"", top_fields, NF(top_fields)},
    {"text_config", text_fields, NF(text_fields)},
    {"vision_config", vision_fields, NF(vision_fields)},
    {"text_config_dict", text_fields, NF(text_fields)},
    {"vision_config_dict", vision_fields, NF(vision_fields)},
};
enum { NSECTIONS = NF(sections), NWRITTEN = 3 /* the dicts are not written */ };

void flava_clip_config_default(flava_clip_config *c)
{
    memset(c, 0, sizeof *c);
    for (int s = 0; s < NWRITTEN; s++)
        for (int i = 0; i < sections[s].n; i++) {
            const cfield *f = &sections[s].f[i];
            char *p = (char *)c + f->off;
            if (f->type == C_INT)
                *(int *)p = (int)f->def;
            else if (f->type == C_DOUBLE)
                *(double *)p = f->def;
            else
                snprintf(p, sizeof c->text.enc.hidden_act, "%s", f->defstr);
        }
}

static flava_status set_field(flava_clip_config *c, const csection *s, const cfield *f,
                              const cJSON *v, const char *what)
{
    char *p = (char *)c + f->off;
    const char *dot = s->name[0] ? "." : "";
    if (f->type == C_STR) {
        if (!cJSON_IsString(v) || strlen(v->valuestring) >= sizeof c->text.enc.hidden_act)
            return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: %s%s%s must be a string of at most %zu bytes",
                               what, s->name, dot, f->name, sizeof c->text.enc.hidden_act - 1);
        snprintf(p, sizeof c->text.enc.hidden_act, "%s", v->valuestring);
        return FLAVA_OK;
    }
    if (!cJSON_IsNumber(v))
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: %s%s%s must be a number", what, s->name, dot,
                           f->name);
    if (f->type == C_DOUBLE) {
        *(double *)p = v->valuedouble;
        return FLAVA_OK;
    }
    if (v->valuedouble != floor(v->valuedouble) || fabs(v->valuedouble) > 2e9)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: %s%s%s is %g, expected an integer", what,
                           s->name, dot, f->name, v->valuedouble);
    *(int *)p = (int)v->valuedouble;
    return FLAVA_OK;
}

static flava_status validate_tower(const flava_clip_tower_config *t, const char *name,
                                   const char *what)
{
    flava_activation act;
    if (t->hidden_size <= 0 || t->intermediate_size <= 0 || t->num_hidden_layers < 0 ||
        t->num_attention_heads <= 0 || t->hidden_size % t->num_attention_heads)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG,
                           "%s: %s: hidden_size %d must be a positive multiple of "
                           "num_attention_heads %d (intermediate_size %d, num_hidden_layers %d)",
                           what, name, t->hidden_size, t->num_attention_heads,
                           t->intermediate_size, t->num_hidden_layers);
    if (!(t->layer_norm_eps > 0))
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: %s.layer_norm_eps is %g, expected > 0", what,
                           name, t->layer_norm_eps);
    flava_status st = flava_activation_parse(&act, t->hidden_act);
    if (st != FLAVA_OK)
        flava_error_context("%s: %s", what, name);
    return st;
}

static flava_status validate(const flava_clip_config *c, const char *what)
{
    FLAVA_TRY(validate_tower(&c->text.enc, "text_config", what));
    FLAVA_TRY(validate_tower(&c->vision.enc, "vision_config", what));
    if (c->text.vocab_size <= 0 || c->text.max_position_embeddings <= 0 ||
        c->projection_dim <= 0)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG,
                           "%s: vocab_size %d, max_position_embeddings %d and projection_dim %d "
                           "must be positive",
                           what, c->text.vocab_size, c->text.max_position_embeddings,
                           c->projection_dim);
    if (c->vision.patch_size <= 0 || c->vision.num_channels <= 0 ||
        c->vision.image_size < c->vision.patch_size)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG,
                           "%s: vision_config image_size %d, patch_size %d, num_channels %d: "
                           "expected positive sizes, image_size >= patch_size",
                           what, c->vision.image_size, c->vision.patch_size,
                           c->vision.num_channels);
    if (c->num_labels < 0 ||
        (strcmp(c->classifier_input, "image") && strcmp(c->classifier_input, "text")))
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: num_labels %d >= 0 and classifier_input "
                           "'%s' image or text expected", what, c->num_labels,
                           c->classifier_input);
    return FLAVA_OK;
}

flava_status flava_clip_config_from_json(flava_clip_config *c, const char *json,
                                         const char *what)
{
    cJSON *root = cJSON_Parse(json);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: the config is not a JSON object", what);
    }
    flava_status st = FLAVA_OK;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (cJSON_IsString(type) && strcmp(type->valuestring, "clip"))
        st = FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: model_type is '%s', expected 'clip'", what,
                         type->valuestring);
    for (int s = 0; st == FLAVA_OK && s < NSECTIONS; s++) {
        const csection *sec = &sections[s];
        const cJSON *obj = sec->name[0] ? cJSON_GetObjectItemCaseSensitive(root, sec->name)
                                        : root;
        if (!cJSON_IsObject(obj))
            continue; /* absent or null: the defaults stand */
        for (int i = 0; st == FLAVA_OK && i < sec->n; i++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, sec->f[i].name);
            if (v && !cJSON_IsNull(v))
                st = set_field(c, sec, &sec->f[i], v, what);
        }
    }
    cJSON_Delete(root);
    FLAVA_TRY(st);
    return validate(c, what);
}

flava_status flava_clip_config_to_json(char **out, const flava_clip_config *c)
{
    *out = NULL;
    cJSON *root = cJSON_CreateObject();
    int ok = root && cJSON_AddStringToObject(root, "model_type", "clip");
    for (int s = 0; ok && s < NWRITTEN; s++) {
        cJSON *obj = sections[s].name[0] ? cJSON_AddObjectToObject(root, sections[s].name) : root;
        ok = obj != NULL;
        for (int i = 0; ok && i < sections[s].n; i++) {
            const cfield *f = &sections[s].f[i];
            const char *p = (const char *)c + f->off;
            ok = f->type == C_STR      ? cJSON_AddStringToObject(obj, f->name, p) != NULL
                 : f->type == C_INT    ? cJSON_AddNumberToObject(obj, f->name, *(const int *)p)
                                          != NULL
                                       : cJSON_AddNumberToObject(obj, f->name,
                                                                 *(const double *)p) != NULL;
        }
    }
    if (ok)
        *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!*out)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot write the CLIP config as JSON");
    return FLAVA_OK;
}

/* ---- parameters ---- */

static const flava_encoder_names clip_names = {
    .q = "%s.encoder.layers.%d.self_attn.q_proj",
    .k = "%s.encoder.layers.%d.self_attn.k_proj",
    .v = "%s.encoder.layers.%d.self_attn.v_proj",
    .proj = "%s.encoder.layers.%d.self_attn.out_proj",
    .ln1 = "%s.encoder.layers.%d.layer_norm1",
    .ln2 = "%s.encoder.layers.%d.layer_norm2",
    .fc1 = "%s.encoder.layers.%d.mlp.fc1",
    .fc2 = "%s.encoder.layers.%d.mlp.fc2",
    .final_ln = "%s.final_layer_norm", /* the text tower's; vision has none */
};

static flava_encoder_spec tower_spec(const flava_clip_tower_config *t, int causal, int final_ln)
{
    flava_encoder_spec s = {0};
    s.layers = t->num_hidden_layers;
    s.hidden = t->hidden_size;
    s.heads = t->num_attention_heads;
    s.intermediate = t->intermediate_size;
    s.eps = (float)t->layer_norm_eps;
    s.pre_ln = 1;
    s.causal = causal;
    s.final_ln = final_ln;
    s.qkv_bias = 1;
    return s;
}

static flava_status declare(flava_clip *m)
{
    const flava_clip_config *c = &m->cfg;
    flava_param_table *t = &m->table;
    flava_clip_offsets *o = &m->off;
    const int Ct = c->text.enc.hidden_size, Cv = c->vision.enc.hidden_size,
              D = c->projection_dim, p = c->vision.patch_size;
    const int side = c->vision.image_size / p;
    flava_encoder_spec ts = tower_spec(&c->text.enc, 1, 1),
                       vs = tower_spec(&c->vision.enc, 0, 0);
    FLAVA_TRY(flava_activation_parse(&ts.act, c->text.enc.hidden_act));
    FLAVA_TRY(flava_activation_parse(&vs.act, c->vision.enc.hidden_act));

    FLAVA_TRY(flava_params_add2(t, &o->token_embedding,
                                "text_model.embeddings.token_embedding.weight", 1,
                                c->text.vocab_size, Ct));
    FLAVA_TRY(flava_params_add2(t, &o->text_position_embedding,
                                "text_model.embeddings.position_embedding.weight", 1,
                                c->text.max_position_embeddings, Ct));
    FLAVA_TRY(flava_encoder_declare(&m->text_enc, t, &ts, &clip_names, "text_model"));

    FLAVA_TRY(flava_params_add1(t, &o->class_embedding, "vision_model.embeddings.class_embedding",
                                1, Cv));
    const int64_t pw[4] = {Cv, c->vision.num_channels, p, p};
    FLAVA_TRY(flava_params_add(t, &o->patch_embedding,
                               "vision_model.embeddings.patch_embedding.weight", 0, 4, pw));
    FLAVA_TRY(flava_params_add2(t, &o->vision_position_embedding,
                                "vision_model.embeddings.position_embedding.weight", 1,
                                (int64_t)side * side + 1, Cv));
    FLAVA_TRY(flava_params_add1(t, &o->pre_ln_w, "vision_model.pre_layrnorm.weight", 1, Cv));
    FLAVA_TRY(flava_params_add1(t, &o->pre_ln_b, "vision_model.pre_layrnorm.bias", 1, Cv));
    FLAVA_TRY(flava_encoder_declare(&m->vision_enc, t, &vs, &clip_names, "vision_model"));
    FLAVA_TRY(flava_params_add1(t, &o->post_ln_w, "vision_model.post_layernorm.weight", 1, Cv));
    FLAVA_TRY(flava_params_add1(t, &o->post_ln_b, "vision_model.post_layernorm.bias", 1, Cv));

    FLAVA_TRY(flava_params_add2(t, &o->visual_projection, "visual_projection.weight", 0, D, Cv));
    FLAVA_TRY(flava_params_add2(t, &o->text_projection, "text_projection.weight", 0, D, Ct));
    FLAVA_TRY(flava_params_add(t, &o->logit_scale, "logit_scale", 1, 0, NULL));
    if (!c->num_labels)
        return FLAVA_OK;
    return mlp_declare(t, "classifier", strcmp(c->classifier_input, "text") ? Cv : Ct,
                       c->num_labels);
}

flava_status flava_clip_create(flava_clip **out, const flava_clip_config *c)
{
    *out = NULL;
    FLAVA_TRY(validate(c, "CLIP config"));
    flava_clip *m = calloc(1, sizeof *m);
    if (!m)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot allocate the CLIP model");
    m->cfg = *c;
    flava_params_init(&m->table);
    flava_status st = declare(m);
    if (st == FLAVA_OK)
        st = flava_alloc((void **)&m->params, m->table.total * sizeof(float), "CLIP parameters");
    if (st != FLAVA_OK) {
        flava_clip_destroy(m);
        return st;
    }
    *out = m;
    return FLAVA_OK;
}

void flava_clip_destroy(flava_clip *m)
{
    if (!m)
        return;
    flava_encoder_free(&m->text_enc);
    flava_encoder_free(&m->vision_enc);
    flava_params_free(&m->table);
    flava_free(m->params);
    flava_free(m->grads);
    flava_free(m->img_mem);
    flava_free(m->txt_mem);
    flava_free(m->txt.ids);
    flava_free(m->con_mem);
    free(m);
}

flava_status flava_clip_alloc_grads(flava_clip *m)
{
    if (m->grads)
        return FLAVA_OK;
    return flava_alloc((void **)&m->grads, m->table.total * sizeof(float), "CLIP gradients");
}

float *flava_clip_param(const flava_clip *m, const char *name, float **grad)
{
    const flava_param *p = flava_params_find(&m->table, name);
    if (grad)
        *grad = p && m->grads ? m->grads + p->offset : NULL;
    return p ? m->params + p->offset : NULL;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* HF _init_weights: the standard deviation of a tensor's normal init, or
 * (std < 0) the constant *fill. */
static double init_std(const flava_clip *m, const char *name, float *fill)
{
    const flava_clip_config *c = &m->cfg;
    const double f = c->initializer_factor;
    const int vision = !strncmp(name, "vision_model.", 13);
    const flava_clip_tower_config *t = vision ? &c->vision.enc : &c->text.enc;
    const double C = t->hidden_size, L2 = 2.0 * t->num_hidden_layers;
    if (!strcmp(name, "logit_scale")) {
        *fill = (float)c->logit_scale_init_value;
        return -1;
    }
    if (ends_with(name, ".bias")) {
        *fill = 0;
        return -1;
    }
    if (strstr(name, "layer_norm") || strstr(name, "layrnorm") || strstr(name, "layernorm") ||
        strstr(name, "LayerNorm")) {
        *fill = 1;
        return -1;
    }
    if (!strncmp(name, "classifier.", 11)) /* as FLAVA's classifier: normal(initializer_range) */
        return c->vision.enc.initializer_range * f;
    if (!strncmp(name, "text_model.embeddings.", 22)) /* token and position */
        return 0.02 * f;
    if (ends_with(name, "class_embedding"))
        return pow(C, -0.5) * f;
    if (strstr(name, "patch_embedding") || strstr(name, "position_embedding"))
        return c->vision.enc.initializer_range * f;
    if (strstr(name, "q_proj") || strstr(name, "k_proj") || strstr(name, "v_proj") ||
        strstr(name, "fc2"))
        return pow(C, -0.5) * pow(L2, -0.5) * f;
    if (strstr(name, "out_proj"))
        return pow(C, -0.5) * f;
    if (strstr(name, "fc1"))
        return pow(2 * C, -0.5) * f;
    if (!strcmp(name, "text_projection.weight"))
        return pow(c->text.enc.hidden_size, -0.5) * f;
    return pow(c->vision.enc.hidden_size, -0.5) * f; /* visual_projection */
}

void flava_clip_init_weights(flava_clip *m, uint64_t seed)
{
    for (int i = 0; i < m->table.n; i++) {
        const flava_param *p = &m->table.p[i];
        float *x = m->params + p->offset, fill = 0;
        const double std = init_std(m, p->name, &fill);
        if (std < 0) {
            for (size_t k = 0; k < p->numel; k++)
                x[k] = fill;
            continue;
        }
        flava_params_fill_normal(x, p->numel, std, seed, (uint64_t)i);
    }
}

/* ---- arenas ---- */

#define PAR(off) flava_param_ptr(m->params, (off))
#define GRD(off) flava_param_ptr(m->grads, (off))

static flava_status grow(float **mem, size_t *have, size_t need, const char *what)
{
    if (need <= *have)
        return FLAVA_OK;
    flava_free(*mem);
    *mem = NULL;
    *have = 0;
    FLAVA_TRY(flava_alloc((void **)mem, need * sizeof(float), what));
    *have = need;
    return FLAVA_OK;
}

/* Image arena: the forward activations, then backward scratch
 * (encoder scratch, dx [B,S,C], dlast [B,S,C], dpatch [B,P,C],
 * dcls/dpooled [B,C], dproj [B,D]). */
static size_t image_floats(const flava_clip *m, int B, size_t *fwd)
{
    const flava_clip_config *c = &m->cfg;
    const size_t side = (size_t)c->vision.image_size / c->vision.patch_size, P = side * side,
                 S = P + 1, C = c->vision.enc.hidden_size, D = c->projection_dim, b = B;
    *fwd = b * P * C + b * S * C + 2 * b * S +
           flava_encoder_acts_floats(&m->vision_enc.spec, B, (int)S) + 2 * b * C + 2 * b +
           2 * b * D + b;
    return *fwd + flava_encoder_scratch_floats(&m->vision_enc.spec, B, (int)S) +
           2 * b * S * C + b * P * C + 2 * b * C + b * D;
}

static flava_status bind_image(flava_clip *m, int B)
{
    size_t fwd;
    FLAVA_TRY(grow(&m->img_mem, &m->img_floats, image_floats(m, B, &fwd), "CLIP image arena"));
    const flava_clip_config *c = &m->cfg;
    const size_t side = (size_t)c->vision.image_size / c->vision.patch_size, P = side * side,
                 S = P + 1, C = c->vision.enc.hidden_size, D = c->projection_dim, b = B;
    flava_clip_image_pass *ip = &m->img;
    float *p = m->img_mem;
    ip->B = B;
    ip->patches = p, p += b * P * C;
    ip->emb = p, p += b * S * C;
    ip->emb_mean = p, p += b * S;
    ip->emb_var = p, p += b * S;
    ip->enc.key_mask = NULL;
    flava_encoder_acts_bind(&ip->enc, &m->vision_enc.spec, B, (int)S, p);
    p += flava_encoder_acts_floats(&m->vision_enc.spec, B, (int)S);
    ip->cls = p, p += b * C;
    ip->pooled = p, p += b * C;
    ip->pooled_mean = p, p += b;
    ip->pooled_var = p, p += b;
    ip->proj = p, p += b * D;
    ip->embeds = p, p += b * D;
    ip->norm = p;
    return FLAVA_OK;
}

/* Text arena: forward, then backward scratch (encoder scratch, dout and
 * dx0 [B,T,C], dpooled [B,C], dproj [B,D]). */
static size_t text_floats(const flava_clip *m, int B, int T, size_t *fwd)
{
    const size_t C = m->cfg.text.enc.hidden_size, D = m->cfg.projection_dim, b = B, N = b * T;
    *fwd = N + flava_encoder_acts_floats(&m->text_enc.spec, B, T) + b * C + 2 * b * D + b;
    return *fwd + flava_encoder_scratch_floats(&m->text_enc.spec, B, T) + 2 * N * C + b * C +
           b * D;
}

static flava_status bind_text(flava_clip *m, int B, int T)
{
    size_t fwd, need = text_floats(m, B, T, &fwd);
    flava_clip_text_pass *tp = &m->txt;
    const size_t nint = (size_t)B * T + B; /* ids, then eos */
    if (nint > m->txt_ints) {
        flava_free(tp->ids);
        tp->ids = NULL;
        m->txt_ints = 0;
        FLAVA_TRY(flava_alloc((void **)&tp->ids, nint * sizeof *tp->ids, "CLIP input_ids"));
        m->txt_ints = nint;
    }
    tp->eos = tp->ids + (size_t)B * T;
    FLAVA_TRY(grow(&m->txt_mem, &m->txt_floats, need, "CLIP text arena"));
    const size_t C = m->cfg.text.enc.hidden_size, D = m->cfg.projection_dim, b = B;
    float *p = m->txt_mem;
    tp->B = B;
    tp->T = T;
    tp->key_mask = p, p += b * T;
    flava_encoder_acts_bind(&tp->enc, &m->text_enc.spec, B, T, p);
    tp->enc.key_mask = tp->key_mask;
    p += flava_encoder_acts_floats(&m->text_enc.spec, B, T);
    tp->pooled = p, p += b * C;
    tp->proj = p, p += b * D;
    tp->embeds = p, p += b * D;
    tp->norm = p;
    return FLAVA_OK;
}

/* ---- towers ---- */

/* embeds[B,D] = L2-normalised pooled[B,C] · wᵀ; proj keeps the projection. */
static flava_status project_forward(flava_ctx *ctx, float *embeds, float *norm, float *proj,
                                    const float *pooled, const float *w, int B, int C, int D)
{
    FLAVA_TRY(linear_forward(ctx, proj, pooled, w, NULL, B, C, D));
    return l2norm_forward(embeds, norm, proj, B, D);
}

/* dpooled[B,C] (overwritten) and dw (accumulated) from dembeds; dproj
 * [B,D] is scratch. */
static flava_status project_backward(flava_ctx *ctx, float *dpooled, float *dw, float *dproj,
                                     const float *dembeds, const float *embeds,
                                     const float *norm, const float *pooled, const float *w,
                                     int B, int C, int D)
{
    memset(dproj, 0, (size_t)B * D * sizeof *dproj);
    FLAVA_TRY(l2norm_backward(dproj, dembeds, embeds, norm, B, D));
    memset(dpooled, 0, (size_t)B * C * sizeof *dpooled);
    return linear_backward(ctx, dpooled, dw, NULL, dproj, pooled, w, B, C, D);
}

static flava_conv2d_dims patch_dims(const flava_clip *m, int B)
{
    const flava_clip_config *c = &m->cfg;
    return flava_conv2d_patches(B, c->vision.num_channels, c->vision.image_size,
                                c->vision.patch_size, c->vision.enc.hidden_size);
}

flava_status flava_clip_encode_image(flava_ctx *ctx, flava_clip *m, float *out,
                                     const float *pixel_values, int B)
{
    if (B <= 0 || !pixel_values)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "CLIP image tower: %d images%s", B,
                           pixel_values ? "" : ", no pixel_values");
    FLAVA_TRY(bind_image(m, B));
    flava_clip_image_pass *ip = &m->img;
    const flava_clip_config *c = &m->cfg;
    const flava_clip_offsets *o = &m->off;
    const int side = c->vision.image_size / c->vision.patch_size, P = side * side, S = P + 1,
              C = c->vision.enc.hidden_size, D = c->projection_dim;
    const float eps = (float)c->vision.enc.layer_norm_eps;
    ip->pixels = pixel_values;
    flava_conv2d_dims d = patch_dims(m, B);
    FLAVA_TRY(conv2d_forward(ctx, ip->patches, pixel_values, PAR(o->patch_embedding), NULL, &d));
    const float *cls = PAR(o->class_embedding), *pos = PAR(o->vision_position_embedding);
#pragma omp parallel for collapse(2) schedule(static)
    for (int i = 0; i < B; i++)
        for (int s = 0; s < S; s++) {
            const float *src = s ? ip->patches + ((size_t)i * P + s - 1) * C : cls;
            float *dst = ip->emb + ((size_t)i * S + s) * C;
            for (int k = 0; k < C; k++)
                dst[k] = src[k] + pos[(size_t)s * C + k];
        }
    FLAVA_TRY(layernorm_forward(ctx, ip->enc.x, ip->emb_mean, ip->emb_var, ip->emb,
                                PAR(o->pre_ln_w), PAR(o->pre_ln_b), B * S, C, eps));
    FLAVA_TRY(flava_encoder_forward(ctx, &m->vision_enc, m->params, &ip->enc));
    const float *last = flava_encoder_last(&ip->enc, &m->vision_enc.spec);
    for (int i = 0; i < B; i++)
        memcpy(ip->cls + (size_t)i * C, last + (size_t)i * S * C, (size_t)C * sizeof *ip->cls);
    FLAVA_TRY(layernorm_forward(ctx, ip->pooled, ip->pooled_mean, ip->pooled_var, ip->cls,
                                PAR(o->post_ln_w), PAR(o->post_ln_b), B, C, eps));
    FLAVA_TRY(project_forward(ctx, ip->embeds, ip->norm, ip->proj, ip->pooled,
                              PAR(o->visual_projection), B, C, D));
    if (out)
        memcpy(out, ip->embeds, (size_t)B * D * sizeof *out);
    return FLAVA_OK;
}

/* HF's pooling position: argmax of the ids for the original configs
 * (eos_token_id 2), else the first eos_token_id (0 if none, as argmax of
 * all zeros gives). */
static int eos_position(const int32_t *ids, int T, int eos_token_id)
{
    int at = 0;
    for (int t = 0; t < T; t++) {
        if (eos_token_id == 2 ? ids[t] > ids[at] : ids[t] == eos_token_id)
            at = t;
        if (eos_token_id != 2 && ids[t] == eos_token_id)
            break;
    }
    return at;
}

flava_status flava_clip_encode_text(flava_ctx *ctx, flava_clip *m, float *out,
                                    const int32_t *input_ids, const float *attention_mask,
                                    int B, int T)
{
    const flava_clip_config *c = &m->cfg;
    if (B <= 0 || T <= 0 || !input_ids || T > c->text.max_position_embeddings)
        return FLAVA_ERROR(FLAVA_ERR_SHAPE,
                           "CLIP text tower: input_ids [%d, %d]%s; expected 1..%d positions "
                           "(text_config.max_position_embeddings)",
                           B, T, input_ids ? "" : " missing", c->text.max_position_embeddings);
    FLAVA_TRY(bind_text(m, B, T));
    flava_clip_text_pass *tp = &m->txt;
    const flava_clip_offsets *o = &m->off;
    const int C = c->text.enc.hidden_size, D = c->projection_dim, N = B * T;
    memcpy(tp->ids, input_ids, (size_t)N * sizeof *tp->ids);
    for (int n = 0; n < N; n++)
        tp->key_mask[n] = attention_mask ? attention_mask[n] : 1.0f;
    FLAVA_TRY(embedding_forward(tp->enc.x, tp->ids, PAR(o->token_embedding), N, C,
                                c->text.vocab_size));
    const float *pos = PAR(o->text_position_embedding);
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int k = 0; k < C; k++)
            tp->enc.x[(size_t)n * C + k] += pos[(size_t)(n % T) * C + k];
    FLAVA_TRY(flava_encoder_forward(ctx, &m->text_enc, m->params, &tp->enc));
    for (int i = 0; i < B; i++) {
        tp->eos[i] = eos_position(tp->ids + (size_t)i * T, T, c->text.eos_token_id);
        memcpy(tp->pooled + (size_t)i * C, tp->enc.out + ((size_t)i * T + tp->eos[i]) * C,
               (size_t)C * sizeof *tp->pooled);
    }
    FLAVA_TRY(project_forward(ctx, tp->embeds, tp->norm, tp->proj, tp->pooled,
                              PAR(o->text_projection), B, C, D));
    if (out)
        memcpy(out, tp->embeds, (size_t)B * D * sizeof *out);
    return FLAVA_OK;
}

/* The image arena's backward scratch after the forward activations. */
typedef struct image_scratch {
    float *scratch, *dx, *dlast, *dpatch, *dcls, *dpooled, *dproj;
} image_scratch;

static image_scratch image_scratch_of(flava_clip *m)
{
    const flava_clip_config *c = &m->cfg;
    const int B = m->img.B, side = c->vision.image_size / c->vision.patch_size, P = side * side,
              S = P + 1, C = c->vision.enc.hidden_size;
    const size_t bsc = (size_t)B * S * C;
    size_t fwd;
    image_floats(m, B, &fwd);
    image_scratch w;
    w.scratch = m->img_mem + fwd;
    w.dx = w.scratch + flava_encoder_scratch_floats(&m->vision_enc.spec, B, S);
    w.dlast = w.dx + bsc;
    w.dpatch = w.dlast + bsc;
    w.dcls = w.dpatch + (size_t)B * P * C;
    w.dpooled = w.dcls + (size_t)B * C;
    w.dproj = w.dpooled + (size_t)B * C;
    return w;
}

/* Accumulates the image tower's gradients from dembeds[B,D]. */
static flava_status image_backward(flava_ctx *ctx, flava_clip *m, const float *dembeds)
{
    const flava_clip_offsets *o = &m->off;
    flava_clip_image_pass *ip = &m->img;
    const image_scratch w = image_scratch_of(m);
    FLAVA_TRY(project_backward(ctx, w.dpooled, GRD(o->visual_projection), w.dproj, dembeds,
                               ip->embeds, ip->norm, ip->pooled, PAR(o->visual_projection),
                               ip->B, m->cfg.vision.enc.hidden_size, m->cfg.projection_dim));
    return flava_clip_image_pooled_backward(ctx, m, w.dpooled);
}

flava_status flava_clip_image_pooled_backward(flava_ctx *ctx, flava_clip *m, const float *dpooled)
{
    const flava_clip_config *c = &m->cfg;
    const flava_clip_offsets *o = &m->off;
    flava_clip_image_pass *ip = &m->img;
    const int B = ip->B, side = c->vision.image_size / c->vision.patch_size, P = side * side,
              S = P + 1, C = c->vision.enc.hidden_size;
    if (!m->grads || !B)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "CLIP image backward needs gradients and an image "
                           "pass");
    const float eps = (float)c->vision.enc.layer_norm_eps;
    const size_t bsc = (size_t)B * S * C;
    const image_scratch w = image_scratch_of(m);
    float *scratch = w.scratch, *dx = w.dx, *dlast = w.dlast, *dpatch = w.dpatch, *dcls = w.dcls;
    memset(dcls, 0, (size_t)B * C * sizeof *dcls);
    FLAVA_TRY(layernorm_backward(ctx, dcls, GRD(o->post_ln_w), GRD(o->post_ln_b), dpooled,
                                 ip->cls, PAR(o->post_ln_w), ip->pooled_mean, ip->pooled_var, B,
                                 C, eps));
    memset(dlast, 0, bsc * sizeof *dlast);
    for (int i = 0; i < B; i++)
        memcpy(dlast + (size_t)i * S * C, dcls + (size_t)i * C, (size_t)C * sizeof *dlast);
    memset(dx, 0, bsc * sizeof *dx);
    FLAVA_TRY(flava_encoder_backward(ctx, dx, m->grads, &m->vision_enc, m->params, &ip->enc, NULL,
                                     dlast, scratch));
    float *demb = dlast; /* dlast is spent */
    memset(demb, 0, bsc * sizeof *demb);
    FLAVA_TRY(layernorm_backward(ctx, demb, GRD(o->pre_ln_w), GRD(o->pre_ln_b), dx, ip->emb,
                                 PAR(o->pre_ln_w), ip->emb_mean, ip->emb_var, B * S, C, eps));
    float *gcls = GRD(o->class_embedding), *gpos = GRD(o->vision_position_embedding);
#pragma omp parallel for schedule(static)
    for (int k = 0; k < C; k++)
        for (int i = 0; i < B; i++)
            for (int s = 0; s < S; s++) {
                const float g = demb[((size_t)i * S + s) * C + k];
                gpos[(size_t)s * C + k] += g;
                if (s == 0)
                    gcls[k] += g;
            }
    for (int i = 0; i < B; i++)
        memcpy(dpatch + (size_t)i * P * C, demb + ((size_t)i * S + 1) * C,
               (size_t)P * C * sizeof *dpatch);
    flava_conv2d_dims d = patch_dims(m, B);
    return conv2d_backward(ctx, NULL, GRD(o->patch_embedding), NULL, dpatch, ip->pixels,
                           PAR(o->patch_embedding), &d);
}

/* The text arena's backward scratch: encoder scratch, dout, dx, dpooled,
 * dproj. */
static float *text_scratch(flava_clip *m)
{
    size_t fwd;
    text_floats(m, m->txt.B, m->txt.T, &fwd);
    return m->txt_mem + fwd;
}

/* Accumulates the text tower's gradients from dembeds[B,D]. */
static flava_status text_backward(flava_ctx *ctx, flava_clip *m, const float *dembeds)
{
    const flava_clip_offsets *o = &m->off;
    flava_clip_text_pass *tp = &m->txt;
    const int B = tp->B, T = tp->T, C = m->cfg.text.enc.hidden_size, N = B * T;
    float *dpooled = text_scratch(m) + flava_encoder_scratch_floats(&m->text_enc.spec, B, T) +
                     2 * (size_t)N * C;
    FLAVA_TRY(project_backward(ctx, dpooled, GRD(o->text_projection), dpooled + (size_t)B * C,
                               dembeds, tp->embeds, tp->norm, tp->pooled,
                               PAR(o->text_projection), B, C, m->cfg.projection_dim));
    return flava_clip_text_pooled_backward(ctx, m, dpooled);
}

flava_status flava_clip_text_pooled_backward(flava_ctx *ctx, flava_clip *m, const float *dpooled)
{
    const flava_clip_offsets *o = &m->off;
    flava_clip_text_pass *tp = &m->txt;
    const int B = tp->B, T = tp->T, C = m->cfg.text.enc.hidden_size, N = B * T;
    float *scratch = text_scratch(m);
    float *dout = scratch + flava_encoder_scratch_floats(&m->text_enc.spec, B, T);
    float *dx = dout + (size_t)N * C;
    if (!m->grads || !B)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "CLIP text backward needs gradients and a text pass");
    memset(dout, 0, (size_t)N * C * sizeof *dout);
    for (int i = 0; i < B; i++)
        memcpy(dout + ((size_t)i * T + tp->eos[i]) * C, dpooled + (size_t)i * C,
               (size_t)C * sizeof *dout);
    memset(dx, 0, (size_t)N * C * sizeof *dx);
    FLAVA_TRY(flava_encoder_backward(ctx, dx, m->grads, &m->text_enc, m->params, &tp->enc, dout,
                                     NULL, scratch));
    FLAVA_TRY(embedding_backward(GRD(o->token_embedding), dx, tp->ids, N, C));
    float *gpos = GRD(o->text_position_embedding);
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++)
        for (int i = 0; i < B; i++)
            for (int k = 0; k < C; k++)
                gpos[(size_t)t * C + k] += dx[((size_t)i * T + t) * C + k];
    return FLAVA_OK;
}

/* ---- contrastive loss ---- */

/* Row softmax of logits[B,B] into probs; returns the mean CE with the
 * diagonal as labels, in double. */
static double ce_diagonal(float *probs, const float *logits, int B)
{
    double loss = 0;
#pragma omp parallel for reduction(+ : loss) schedule(static)
    for (int i = 0; i < B; i++) {
        const float *z = logits + (size_t)i * B;
        double mx = z[0], sum = 0;
        for (int j = 1; j < B; j++)
            mx = z[j] > mx ? z[j] : mx;
        for (int j = 0; j < B; j++)
            sum += exp(z[j] - mx);
        for (int j = 0; j < B; j++)
            probs[(size_t)i * B + j] = (float)(exp(z[j] - mx) / sum);
        loss += log(sum) + mx - z[i];
    }
    return loss / B;
}

flava_status flava_clip_contrastive_forward(flava_ctx *ctx, float *loss,
                                            float *logits_per_text, float *logits_per_image,
                                            float *probs_t, float *probs_i, const float *image,
                                            const float *text, float scale, int B, int D)
{
    if (B <= 0 || D <= 0)
        return FLAVA_ERROR(FLAVA_ERR_SHAPE, "contrastive loss over %d pairs of %d features", B,
                           D);
    FLAVA_TRY(linear_forward(ctx, logits_per_text, text, image, NULL, B, D, B));
    for (int t = 0; t < B; t++)
        for (int i = 0; i < B; i++) {
            const float z = scale * logits_per_text[(size_t)t * B + i];
            logits_per_text[(size_t)t * B + i] = z;
            logits_per_image[(size_t)i * B + t] = z;
        }
    *loss = (float)((ce_diagonal(probs_t, logits_per_text, B) +
                     ce_diagonal(probs_i, logits_per_image, B)) / 2);
    return FLAVA_OK;
}

flava_status flava_clip_contrastive_backward(flava_ctx *ctx, float *dimage, float *dtext,
                                             float *dscale, float *ddot, float dloss,
                                             const float *probs_t, const float *probs_i,
                                             const float *logits_per_text, const float *image,
                                             const float *text, float scale, int B, int D)
{
    /* g[t][i] = d loss / d logits_per_text[t][i] from both CE terms:
     * (p_t[t][i] + p_i[i][t] - 2[t==i]) * dloss / (2B). logits = scale *
     * dot: dscale = sum g * dot, d dot = scale * g, then the matmul's
     * backward: dtext += ddot·image, dimage += ddotᵀ·text. */
    const double w = (double)dloss / (2.0 * B);
    double ds = 0;
    for (int t = 0; t < B; t++)
        for (int i = 0; i < B; i++) {
            const size_t ti = (size_t)t * B + i;
            const double g = w * ((double)probs_t[ti] + probs_i[(size_t)i * B + t] -
                                  2.0 * (t == i));
            ds += g * logits_per_text[ti] / scale;
            ddot[ti] = (float)(scale * g);
        }
    if (dscale)
        *dscale += (float)ds;
    return linear_backward(ctx, dtext, dimage, NULL, ddot, text, image, B, D, B);
}

/* ---- the model ---- */

flava_status flava_clip_forward(flava_ctx *ctx, flava_clip *m, const float *pixel_values,
                                const int32_t *input_ids, const float *attention_mask, int B,
                                int T)
{
    const int D = m->cfg.projection_dim, N = B * flava_dist_size();
    FLAVA_TRY(flava_clip_encode_image(ctx, m, NULL, pixel_values, B));
    FLAVA_TRY(flava_clip_encode_text(ctx, m, NULL, input_ids, attention_mask, B, T));
    /* logits and probabilities of both directions and d logits [N,N]; the
     * gathered embeddings and their gradients [N,D]; this rank's [B,D] */
    const size_t nn = (size_t)N * N, nd = (size_t)N * D, bd = (size_t)B * D;
    FLAVA_TRY(grow(&m->con_mem, &m->con_floats, 5 * nn + 4 * nd + 2 * bd, "CLIP logits"));
    m->B = B;
    m->N = N;
    m->logits_per_image = m->con_mem;
    m->logits_per_text = m->logits_per_image + nn;
    m->probs_i = m->logits_per_text + nn;
    m->probs_t = m->probs_i + nn;
    float *img_all = m->probs_t + 2 * nn, *txt_all = img_all + nd;
    FLAVA_TRY(flava_dist_gather_rows(img_all, m->img.embeds, B, D));
    FLAVA_TRY(flava_dist_gather_rows(txt_all, m->txt.embeds, B, D));
    const float scale = expf(m->params[m->off.logit_scale]);
    return flava_clip_contrastive_forward(ctx, &m->loss, m->logits_per_text, m->logits_per_image,
                                          m->probs_t, m->probs_i, img_all, txt_all, scale, N, D);
}

flava_status flava_clip_backward(flava_ctx *ctx, flava_clip *m, float dloss)
{
    if (!m->grads)
        return FLAVA_ERROR(FLAVA_ERR_ARG,
                           "CLIP backward without gradients (flava_clip_alloc_grads first)");
    const int B = m->B, D = m->cfg.projection_dim;
    if (!B || m->img.B != B || m->txt.B != B)
        return FLAVA_ERROR(FLAVA_ERR_ARG,
                           "CLIP backward: the last passes saw %d images and %d texts, not "
                           "the %d pairs of the last flava_clip_forward",
                           m->img.B, m->txt.B, B);
    const int N = m->N;
    const size_t nn = (size_t)N * N, nd = (size_t)N * D, bd = (size_t)B * D;
    float *ddot = m->probs_t + nn, *img_all = ddot + nn, *txt_all = img_all + nd;
    float *dimg_all = txt_all + nd, *dtxt_all = dimg_all + nd, *dimg = dtxt_all + nd,
          *dtxt = dimg + bd;
    memset(dimg_all, 0, 2 * nd * sizeof *dimg_all);
    const float scale = expf(m->params[m->off.logit_scale]);
    float dscale = 0;
    FLAVA_TRY(flava_clip_contrastive_backward(ctx, dimg_all, dtxt_all, &dscale, ddot, dloss,
                                              m->probs_t, m->probs_i, m->logits_per_text,
                                              img_all, txt_all, scale, N, D));
    m->grads[m->off.logit_scale] += dscale * scale; /* scale = exp(logit_scale) */
    flava_dist_own_rows(dimg, dimg_all, B, D);
    flava_dist_own_rows(dtxt, dtxt_all, B, D);
    FLAVA_TRY(image_backward(ctx, m, dimg));
    return text_backward(ctx, m, dtxt);
}

/* ---- checkpoints ---- */

flava_status flava_clip_load(flava_clip **out, const char *path, int partial, uint64_t seed)
{
    *out = NULL;
    char *json;
    FLAVA_TRY(flava_checkpoint_read_json(&json, path));
    flava_clip_config c;
    flava_clip_config_default(&c);
    flava_status st = flava_clip_config_from_json(&c, json, path);
    free(json);
    FLAVA_TRY(st);
    flava_clip *m;
    FLAVA_TRY(flava_clip_create(&m, &c));
    flava_clip_init_weights(m, seed);
    st = flava_checkpoint_load_table(&m->table, m->params, path, partial);
    if (st != FLAVA_OK) {
        flava_clip_destroy(m);
        return st;
    }
    *out = m;
    return FLAVA_OK;
}

flava_status flava_clip_save(const flava_clip *m, const char *path)
{
    char *json;
    FLAVA_TRY(flava_clip_config_to_json(&json, &m->cfg));
    flava_status st = flava_checkpoint_save_table(&m->table, m->params, json, path);
    free(json);
    return st;
}

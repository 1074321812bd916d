/* family.c - the FLAVA, CLIP and ALIGN entries of the family registry. */
#include "family.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "align.h"
#include "checkpoint.h"
#include "clip.h"
#include "dist.h"
#include "image.h"
#include "mlp.h"
#include "model.h"
#include "ops.h"

void flava_family_normalise(float *x, int B, int D)
{
    for (int i = 0; i < B; i++) {
        float *r = x + (size_t)i * D;
        double s = 0;
        for (int d = 0; d < D; d++)
            s += (double)r[d] * r[d];
        const float inv = (float)(1.0 / (sqrt(s) > 1e-12 ? sqrt(s) : 1e-12));
        for (int d = 0; d < D; d++)
            r[d] *= inv;
    }
}

/* ---- config overrides as JSON ---- */

static int is_number(const char *v)
{
    char *end;
    if (!*v)
        return 0;
    (void)strtod(v, &end);
    return !*end;
}

/* Appends to a growing string. */
typedef struct sbuf {
    char *s;
    size_t len, cap;
} sbuf;

static flava_status put(sbuf *b, const char *text, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = 2 * (b->len + n + 1) + 256;
        char *g = realloc(b->s, cap);
        if (!g)
            return FLAVA_ERROR(FLAVA_ERR_NOMEM, "config overrides");
        b->s = g;
        b->cap = cap;
    }
    memcpy(b->s + b->len, text, n);
    b->len += n;
    b->s[b->len] = '\0';
    return FLAVA_OK;
}

static flava_status puts_(sbuf *b, const char *text) { return put(b, text, strlen(text)); }

/* A value as JSON: number, boolean, list of numbers, or string. */
static flava_status put_value(sbuf *b, const char *v)
{
    if (is_number(v) || !strcmp(v, "true") || !strcmp(v, "false") || !strcmp(v, "null"))
        return puts_(b, v);
    if (strchr(v, ',')) {
        /* every item a number: a JSON list */
        char item[64];
        const char *p = v;
        int numbers = 1;
        while (numbers && *p) {
            const char *c = strchr(p, ',');
            size_t n = c ? (size_t)(c - p) : strlen(p);
            while (n && isspace((unsigned char)*p))
                p++, n--;
            numbers = n < sizeof item;
            if (numbers) {
                memcpy(item, p, n);
                item[n] = '\0';
                numbers = is_number(item);
            }
            p = c ? c + 1 : p + n;
        }
        if (numbers) {
            FLAVA_TRY(puts_(b, "["));
            FLAVA_TRY(puts_(b, v));
            return puts_(b, "]");
        }
    }
    FLAVA_TRY(puts_(b, "\""));
    for (const char *p = v; *p; p++) {
        if (*p == '"' || *p == '\\')
            FLAVA_TRY(puts_(b, "\\"));
        FLAVA_TRY(put(b, p, 1));
    }
    return puts_(b, "\"");
}

flava_status flava_family_overrides_json(char **json, const flava_family_overrides *ov)
{
    const char *const *keys = ov->keys, *const *values = ov->values;
    const int n = ov->n;
    /* top-level keys first, then one object per dotted prefix */
    sbuf b = {0};
    flava_status s = puts_(&b, "{");
    int first = 1;
    for (int i = 0; s == FLAVA_OK && i < n; i++) {
        if (strchr(keys[i], '.'))
            continue;
        s = puts_(&b, first ? "\"" : ",\"");
        first = 0;
        if (s == FLAVA_OK)
            s = puts_(&b, keys[i]);
        if (s == FLAVA_OK)
            s = puts_(&b, "\":");
        if (s == FLAVA_OK)
            s = put_value(&b, values[i]);
    }
    for (int i = 0; s == FLAVA_OK && i < n; i++) {
        const char *dot = strchr(keys[i], '.');
        if (!dot)
            continue;
        const size_t plen = (size_t)(dot - keys[i]);
        int seen = 0;
        for (int j = 0; j < i && !seen; j++)
            seen = !strncmp(keys[j], keys[i], plen) && keys[j][plen] == '.';
        if (seen)
            continue;
        if (strchr(dot + 1, '.')) {
            s = FLAVA_ERROR(FLAVA_ERR_CONFIG, "model.%s: at most one level of nesting "
                            "(text_config.hidden_size)", keys[i]);
            break;
        }
        s = puts_(&b, first ? "\"" : ",\"");
        first = 0;
        if (s == FLAVA_OK)
            s = put(&b, keys[i], plen);
        if (s == FLAVA_OK)
            s = puts_(&b, "\":{");
        int inner = 1;
        for (int j = i; s == FLAVA_OK && j < n; j++) {
            if (strncmp(keys[j], keys[i], plen) || keys[j][plen] != '.')
                continue;
            s = puts_(&b, inner ? "\"" : ",\"");
            inner = 0;
            if (s == FLAVA_OK)
                s = puts_(&b, keys[j] + plen + 1);
            if (s == FLAVA_OK)
                s = puts_(&b, "\":");
            if (s == FLAVA_OK)
                s = put_value(&b, values[j]);
        }
        if (s == FLAVA_OK)
            s = puts_(&b, "}");
    }
    if (s == FLAVA_OK)
        s = puts_(&b, "}");
    if (s != FLAVA_OK) {
        free(b.s);
        return s;
    }
    *json = b.s;
    return FLAVA_OK;
}

/* ---- shared ---- */

static const char *where(const flava_family_overrides *ov, int i)
{
    return ov->wheres && ov->wheres[i] ? ov->wheres[i] : "override";
}

/* Every override key names a field of the config JSON `full` (the
 * family's config written back after the overrides). */
static flava_status check_known(const char *full, const flava_family_overrides *ov,
                                const char *family)
{
    cJSON *root = cJSON_Parse(full);
    if (!root)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s config JSON", family);
    flava_status s = FLAVA_OK;
    for (int i = 0; s == FLAVA_OK && i < ov->n; i++) {
        char key[256];
        snprintf(key, sizeof key, "%s", ov->keys[i]);
        char *dot = strchr(key, '.');
        const cJSON *obj = root;
        if (dot) {
            *dot = '\0';
            obj = cJSON_GetObjectItemCaseSensitive(root, key);
        }
        if (!obj || !cJSON_GetObjectItemCaseSensitive(obj, dot ? dot + 1 : key))
            s = FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: model.%s is not a field of the %s config",
                            where(ov, i), ov->keys[i], family);
    }
    cJSON_Delete(root);
    return s;
}

static void fill_image(flava_image_spec *o, int resize, int crop, int shorter,
                       flava_resample filter, const float *mean, const float *std)
{
    o->resize = resize;
    o->crop = crop;
    o->shorter_side = shorter;
    o->filter = filter;
    memcpy(o->mean, mean, sizeof o->mean);
    memcpy(o->std, std, sizeof o->std);
}

/* Multiply-adds x2 of `layers` transformer blocks of width C, MLP width I,
 * over S positions per sample: the GEMMs (q/k/v/o and the MLP) and the
 * two attention products. */
static double encoder_flops(int layers, double C, double I, double S)
{
    return layers * (2 * S * (4 * C * C + 2 * C * I) + 4 * S * S * C);
}

/* A training forward's dropout masks: from the seed and the forward's
 * run-wide number (this rank's count, interleaved with the other ranks'). */
static uint64_t family_dropout_seed(flava_family_model *fm, int train)
{
    if (!train)
        return 0;
    const uint64_t forward = fm->steps++ * (uint64_t)flava_dist_size() + (uint64_t)flava_dist_rank();
    return (fm->seed << 32) ^ (forward + 1);
}

static const flava_head_id contrastive_head[] = {FLAVA_HEAD_CONTRASTIVE};

/* ================================================================ FLAVA */

static const flava_head_id flava_pretrain_heads[] = {
    FLAVA_HEAD_MIM,         FLAVA_HEAD_MLM,       FLAVA_HEAD_ITM,
    FLAVA_HEAD_CONTRASTIVE, FLAVA_HEAD_MMM_IMAGE, FLAVA_HEAD_MMM_TEXT};

static void flava_preprocessing(flava_image_spec *o, int size)
{
    /* FlavaImageProcessor: squash bicubic to size x size */
    fill_image(o, size, size, 0, FLAVA_RESAMPLE_BICUBIC, flava_image_mean, flava_image_std);
}

static void flava_fill(flava_family_model *fm)
{
    flava_model *m = fm->impl;
    fm->table = &m->table;
    fm->params = m->params;
    fm->grads = m->grads;
    fm->embed_dim = m->cfg.projection_dim;
    fm->feature_dim = m->cfg.image.enc.hidden_size;
    fm->image_size = m->cfg.image.image_size;
    fm->patch_size = m->cfg.image.patch_size;
    fm->max_text_len = m->cfg.text.max_position_embeddings;
    fm->vocab_size = m->cfg.text.vocab_size;
    fm->num_labels = m->heads.enabled[FLAVA_HEAD_CLASSIFY] ? m->cfg.num_labels : 0;
    fm->classifier_input = m->cfg.classifier_input;
}

const flava_head_set flava_family_contrastive_heads = {
    .enabled = {[FLAVA_HEAD_CONTRASTIVE] = 1}, .weight = {[FLAVA_HEAD_CONTRASTIVE] = 1}};

static void flava_destroy(flava_family_model *fm) { flava_model_destroy(fm->impl); }

static flava_status flava_load(flava_family_model *fm, const char *path, int partial)
{
    FLAVA_TRY(flava_checkpoint_load_weights(fm->impl, path, partial));
    flava_fill(fm);
    return FLAVA_OK;
}

static flava_status flava_create(flava_family_model *fm, const char *checkpoint,
                                 const flava_family_overrides *ov, const flava_head_set *heads,
                                 int partial, uint64_t seed)
{
    flava_config c;
    flava_config_default(&c);
    if (checkpoint)
        FLAVA_TRY(flava_checkpoint_read_config(&c, checkpoint));
    for (int i = 0; ov && i < ov->n; i++)
        if (flava_config_set(&c, ov->keys[i], ov->values[i]) != FLAVA_OK) {
            flava_error_context("%s: model.%s", where(ov, i), ov->keys[i]);
            return FLAVA_ERR_CONFIG;
        }
    FLAVA_TRY(flava_config_validate(&c));
    flava_model *m;
    FLAVA_TRY(flava_model_create(&m, &c, heads));
    fm->impl = m;
    flava_model_init_weights(m, seed);
    flava_fill(fm);
    return checkpoint ? flava_load(fm, checkpoint, partial) : FLAVA_OK;
}

static flava_status flava_save(const flava_family_model *fm, const char *path)
{
    return flava_checkpoint_save(fm->impl, path);
}

static flava_status flava_alloc_grads(flava_family_model *fm)
{
    FLAVA_TRY(flava_model_alloc_grads(fm->impl));
    flava_fill(fm);
    return FLAVA_OK;
}

/* The CLS rows of the last pass of one tower (final LN output) into cls. */
static void flava_cls(float *cls, const flava_encoder_acts *a, int C)
{
    for (int i = 0; i < a->B; i++)
        memcpy(cls + (size_t)i * C, a->out + (size_t)i * a->T * C, sizeof(float) * (size_t)C);
}

/* emb = normalise(projection(CLS)) of the tower that ran. */
static flava_status flava_embed(flava_ctx *ctx, flava_model *m, float *emb, int text, int B)
{
    const int C = text ? m->cfg.text.enc.hidden_size : m->cfg.image.enc.hidden_size;
    const int D = m->cfg.projection_dim;
    const char *w = text ? "flava.text_projection.weight" : "flava.image_projection.weight";
    const char *bias = text ? "flava.text_projection.bias" : "flava.image_projection.bias";
    float *cls;
    FLAVA_TRY(flava_alloc((void **)&cls, sizeof(float) * (size_t)B * (C + 1), "CLS states"));
    flava_cls(cls, text ? &m->txt.enc : &m->img.enc, C);
    flava_status s = linear_forward(ctx, emb, cls, flava_model_param(m, w, NULL),
                                    flava_model_param(m, bias, NULL), B, C, D);
    flava_free(cls);
    flava_family_normalise(emb, B, D);
    return s;
}

static flava_status flava_encode_images(flava_ctx *ctx, flava_family_model *fm, float *emb,
                                        const float *pixel_values, int B)
{
    flava_model *m = fm->impl;
    const int g = m->cfg.image.image_size / m->cfg.image.patch_size;
    flava_batch b = {.B = B, .image_size = m->cfg.image.image_size, .P = g * g,
                     .pixel_values = (float *)pixel_values};
    FLAVA_TRY(flava_model_forward(ctx, m, &b, 0));
    return flava_embed(ctx, m, emb, 0, B);
}

static flava_status flava_encode_texts(flava_ctx *ctx, flava_family_model *fm, float *emb,
                                       const int32_t *input_ids, const float *attention_mask,
                                       const int32_t *token_type_ids, int B, int T)
{
    flava_model *m = fm->impl;
    flava_batch b = {.B = B, .T = T, .input_ids = (int32_t *)input_ids,
                     .attention_mask = (float *)attention_mask,
                     .token_type_ids = (int32_t *)token_type_ids};
    FLAVA_TRY(flava_model_forward(ctx, m, &b, 0));
    return flava_embed(ctx, m, emb, 1, B);
}

/* The mean over rows 1..S-1 (the patches) of each sample's last[S, C]. */
static void mean_patches(float *out, const float *last, int B, int S, int C)
{
#pragma omp parallel for schedule(static)
    for (int i = 0; i < B; i++) {
        float *o = out + (size_t)i * C;
        for (int k = 0; k < C; k++)
            o[k] = 0;
        for (int s = 1; s < S; s++) {
            const float *row = last + ((size_t)i * S + s) * C;
            for (int k = 0; k < C; k++)
                o[k] += row[k];
        }
        for (int k = 0; k < C; k++)
            o[k] /= (float)(S - 1);
    }
}

static flava_status flava_image_features(flava_ctx *ctx, flava_family_model *fm, float *out,
                                         const float *pixel_values, int B,
                                         flava_image_feature which)
{
    flava_model *m = fm->impl;
    const int g = m->cfg.image.image_size / m->cfg.image.patch_size;
    flava_batch b = {.B = B, .image_size = m->cfg.image.image_size, .P = g * g,
                     .pixel_values = (float *)pixel_values};
    FLAVA_TRY(flava_model_forward(ctx, m, &b, 0));
    const int C = m->cfg.image.enc.hidden_size;
    if (which == FLAVA_IMAGE_POOLED)
        memcpy(out, m->img.pooled, sizeof(float) * (size_t)B * C);
    else if (which == FLAVA_IMAGE_MEAN)
        mean_patches(out, m->img.enc.out, B, m->img.enc.T, C);
    else
        flava_cls(out, &m->img.enc, C);
    return FLAVA_OK;
}

static double flava_flops(const flava_family_model *fm, const flava_batch *b)
{
    const flava_config *c = &((const flava_model *)fm->impl)->cfg;
    const double img = b->pixel_values ? b->P + 1 : 0, txt = b->input_ids ? b->T : 0;
#define ENC(e, S) encoder_flops((e).num_hidden_layers, (e).hidden_size, (e).intermediate_size, S)
    double f = 0;
    if (img)
        f += (b->bool_masked_pos ? 2 : 1) * ENC(c->image.enc, img);
    if (txt)
        f += (b->input_ids_masked ? 2 : 1) * ENC(c->text.enc, txt);
    if (img && txt)
        f += (c->skip_unmasked_multimodal_encoder ? 1 : 2) * ENC(c->multimodal.enc, 1 + img + txt);
#undef ENC
    return 3 * f * b->B; /* backward costs about twice the forward */
}

static flava_status flava_fwd(flava_ctx *ctx, flava_family_model *fm, const flava_batch *b,
                              int train)
{
    flava_model *m = fm->impl;
    /* the losses are kept on FLAVA_ERR_NUMERIC too: the loop names the
     * heads that went non-finite */
    m->dropout_seed = family_dropout_seed(fm, train);
    const flava_status st = flava_model_forward(ctx, m, b, train);
    fm->loss = m->loss;
    for (int h = 0; h < FLAVA_NUM_HEADS; h++) {
        fm->head_ran[h] = m->head_ran[h];
        fm->head_loss[h] = m->head[h].loss;
        fm->head_logits[h] = m->head_ran[h] ? m->head[h].logits : NULL;
        fm->head_cols[h] = m->head[h].ncols;
    }
    return st;
}

static flava_status flava_bwd(flava_ctx *ctx, flava_family_model *fm, const flava_batch *b)
{
    flava_model *m = fm->impl;
    return m->has_loss ? flava_model_backward(ctx, m, b) : FLAVA_OK;
}

static int flava_outs(flava_family_model *fm, flava_output *out)
{
    return flava_model_outputs(fm->impl, out);
}

static void flava_input_config(const flava_family_model *fm, flava_config *c)
{
    *c = ((const flava_model *)fm->impl)->cfg;
}

static const flava_family_ops family_flava = {
    .name = "flava",
    .text = FLAVA_FAMILY_TEXT_WORDPIECE,
    .pretrain_heads = flava_pretrain_heads,
    .n_pretrain_heads = (int)(sizeof flava_pretrain_heads / sizeof *flava_pretrain_heads),
    .image = flava_preprocessing,
    .create = flava_create,
    .destroy = flava_destroy,
    .fill = flava_fill,
    .load = flava_load,
    .save = flava_save,
    .alloc_grads = flava_alloc_grads,
    .encode_images = flava_encode_images,
    .encode_texts = flava_encode_texts,
    .image_features = flava_image_features,
    .forward = flava_fwd,
    .backward = flava_bwd,
    .outputs = flava_outs,
    .input_config = flava_input_config,
    .after_step = NULL, /* the model clamps logit_scale in its training forward */
    .step_flops = flava_flops,
};

/* ---- the dual encoders' classifier ---- */

struct flava_family_classifier {
    int K, C, text;
    mlp_loss loss;
    flava_head_state st; /* st.mem: the MLP's working memory */
    float *feat, *dfeat; /* [B, C] */
    int cap;             /* batch size the buffers hold */
};

static void classifier_free(struct flava_family_classifier *cl)
{
    if (!cl)
        return;
    flava_free(cl->st.mem);
    flava_free(cl->feat);
    free(cl);
}

/* Gives fm the classifier its config declares (num_labels > 0) on
 * features of width C_image or C_text. */
static flava_status classifier_open(flava_family_model *fm, int num_labels, const char *input,
                                    int C_image, int C_text)
{
    fm->num_labels = num_labels;
    fm->classifier_input = input;
    if (!num_labels)
        return FLAVA_OK;
    struct flava_family_classifier *cl = calloc(1, sizeof *cl);
    if (!cl)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "the classifier");
    cl->K = num_labels;
    cl->text = !strcmp(input, "text");
    cl->C = cl->text ? C_text : C_image;
    cl->loss = num_labels == 1 ? MLP_LOSS_MSE : MLP_LOSS_CE;
    fm->classifier = cl;
    return FLAVA_OK;
}

static flava_status classifier_bind(struct flava_family_classifier *cl, int B)
{
    if (B <= cl->cap)
        return FLAVA_OK;
    flava_free(cl->st.mem);
    flava_free(cl->feat);
    cl->st.mem = cl->feat = NULL;
    cl->cap = 0;
    cl->st.mem_floats = mlp_mem_floats(B, cl->C, cl->K);
    FLAVA_TRY(flava_alloc((void **)&cl->st.mem, cl->st.mem_floats * sizeof(float),
                          "the classifier"));
    FLAVA_TRY(flava_alloc((void **)&cl->feat, 2 * (size_t)B * cl->C * sizeof(float),
                          "the classifier features"));
    cl->dfeat = cl->feat + (size_t)B * cl->C;
    cl->cap = B;
    return FLAVA_OK;
}

/* The classifier on b's features: logits and, with labels, the loss. */
static flava_status classifier_fwd(flava_ctx *ctx, flava_family_model *fm, const flava_batch *b,
                                   int train)
{
    struct flava_family_classifier *cl = fm->classifier;
    if (cl->text ? !b->input_ids : !b->pixel_values)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "the %s classifier reads %s: the batch has none",
                           fm->ops->name, cl->text ? "input_ids" : "pixel_values");
    FLAVA_TRY(classifier_bind(cl, b->B));
    FLAVA_TRY(fm->ops->features(ctx, fm, cl->feat, b, cl->text, train));
    mlp_params mp;
    mlp_params_find(&mp, fm->table, fm->params, fm->grads, "classifier");
    FLAVA_TRY(mlp_forward_params(&cl->st, ctx, b, &mp, cl->feat, cl->C, cl->K, cl->loss));
    memset(fm->head_ran, 0, sizeof fm->head_ran);
    memset(fm->head_logits, 0, sizeof fm->head_logits);
    fm->loss = fm->head_loss[FLAVA_HEAD_CLASSIFY] = cl->st.loss;
    fm->head_ran[FLAVA_HEAD_CLASSIFY] = 1;
    fm->head_logits[FLAVA_HEAD_CLASSIFY] = cl->st.logits;
    fm->head_cols[FLAVA_HEAD_CLASSIFY] = cl->K;
    return FLAVA_OK;
}

static flava_status classifier_bwd(flava_ctx *ctx, flava_family_model *fm, const flava_batch *b)
{
    struct flava_family_classifier *cl = fm->classifier;
    if (!cl->st.count)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "classifier backward without labels in the batch");
    mlp_params mp;
    mlp_params_find(&mp, fm->table, fm->params, fm->grads, "classifier");
    memset(cl->dfeat, 0, (size_t)b->B * cl->C * sizeof *cl->dfeat);
    FLAVA_TRY(mlp_backward_params(&cl->st, ctx, b, &mp, cl->feat, cl->dfeat, cl->C, cl->K,
                                  cl->loss, 1.0f));
    return fm->ops->features_backward(ctx, fm, cl->dfeat, cl->text);
}

/* The classifier's outputs: logits [B, K] and the loss. */
static int classifier_outs(flava_family_model *fm, flava_output *out)
{
    const struct flava_family_classifier *cl = fm->classifier;
    memset(out, 0, 2 * sizeof *out);
    snprintf(out[0].name, sizeof out[0].name, "logits");
    out[0].data = cl->st.logits;
    out[0].ndim = 2;
    out[0].shape[0] = cl->st.nrows;
    out[0].shape[1] = cl->K;
    snprintf(out[1].name, sizeof out[1].name, "loss");
    out[1].data = &fm->loss;
    out[1].value = fm->loss;
    return 2;
}

/* ================================================================ CLIP */

static const float clip_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
static const float clip_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};

static void clip_preprocessing(flava_image_spec *o, int size)
{
    /* CLIPImageProcessor: shorter side bicubic to size, centre crop */
    fill_image(o, size, size, 1, FLAVA_RESAMPLE_BICUBIC, clip_mean, clip_std);
}

static void clip_fill(flava_family_model *fm)
{
    flava_clip *m = fm->impl;
    fm->table = &m->table;
    fm->params = m->params;
    fm->grads = m->grads;
    fm->embed_dim = m->cfg.projection_dim;
    fm->feature_dim = m->cfg.vision.enc.hidden_size;
    fm->image_size = m->cfg.vision.image_size;
    fm->patch_size = m->cfg.vision.patch_size;
    fm->max_text_len = m->cfg.text.max_position_embeddings;
    fm->vocab_size = m->cfg.text.vocab_size;
}

static void clip_destroy(flava_family_model *fm) { flava_clip_destroy(fm->impl); }

static flava_status clip_load(flava_family_model *fm, const char *path, int partial)
{
    return flava_checkpoint_load_table(fm->table, fm->params, path, partial);
}

static flava_status clip_create(flava_family_model *fm, const char *checkpoint,
                                const flava_family_overrides *ov, const flava_head_set *heads,
                                int partial, uint64_t seed)
{
    (void)heads;
    flava_clip_config c;
    flava_clip_config_default(&c);
    if (checkpoint) {
        char *json;
        FLAVA_TRY(flava_checkpoint_read_json(&json, checkpoint));
        flava_status s = flava_clip_config_from_json(&c, json, checkpoint);
        free(json);
        FLAVA_TRY(s);
    }
    if (ov && ov->n) {
        char *json, *full;
        FLAVA_TRY(flava_family_overrides_json(&json, ov));
        flava_status s = flava_clip_config_from_json(&c, json, "the config overrides");
        free(json);
        FLAVA_TRY(s);
        FLAVA_TRY(flava_clip_config_to_json(&full, &c));
        s = check_known(full, ov, "CLIP");
        free(full);
        FLAVA_TRY(s);
    }
    flava_clip *m;
    FLAVA_TRY(flava_clip_create(&m, &c));
    fm->impl = m;
    flava_clip_init_weights(m, seed);
    clip_fill(fm);
    FLAVA_TRY(classifier_open(fm, m->cfg.num_labels, m->cfg.classifier_input,
                              m->cfg.vision.enc.hidden_size, m->cfg.text.enc.hidden_size));
    return checkpoint ? clip_load(fm, checkpoint, partial) : FLAVA_OK;
}

static flava_status clip_save(const flava_family_model *fm, const char *path)
{
    return flava_clip_save(fm->impl, path);
}

static flava_status clip_alloc_grads(flava_family_model *fm)
{
    FLAVA_TRY(flava_clip_alloc_grads(fm->impl));
    clip_fill(fm);
    return FLAVA_OK;
}

static flava_status clip_encode_images(flava_ctx *ctx, flava_family_model *fm, float *emb,
                                       const float *pixel_values, int B)
{
    return flava_clip_encode_image(ctx, fm->impl, emb, pixel_values, B);
}

static flava_status clip_encode_texts(flava_ctx *ctx, flava_family_model *fm, float *emb,
                                      const int32_t *input_ids, const float *attention_mask,
                                      const int32_t *token_type_ids, int B, int T)
{
    (void)token_type_ids; /* CLIP has no token types */
    return flava_clip_encode_text(ctx, fm->impl, emb, input_ids, attention_mask, B, T);
}

static flava_status clip_image_features(flava_ctx *ctx, flava_family_model *fm, float *out,
                                        const float *pixel_values, int B,
                                        flava_image_feature which)
{
    flava_clip *m = fm->impl;
    FLAVA_TRY(flava_clip_encode_image(ctx, m, NULL, pixel_values, B));
    const int C = m->cfg.vision.enc.hidden_size;
    if (which == FLAVA_IMAGE_MEAN)
        mean_patches(out, flava_encoder_last(&m->img.enc, &m->vision_enc.spec), B, m->img.enc.T, C);
    else
        memcpy(out, which == FLAVA_IMAGE_POOLED ? m->img.pooled : m->img.cls,
               sizeof(float) * (size_t)B * C);
    return FLAVA_OK;
}

static flava_status need_pairs(const flava_batch *b, const char *family)
{
    if (!b->pixel_values || !b->input_ids)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "%s's contrastive loss needs image-text pairs: the "
                           "batch has no %s", family, b->pixel_values ? "input_ids" :
                           "pixel_values");
    return FLAVA_OK;
}

/* The dual encoders' one loss as the contrastive head's. */
static void contrastive_only(flava_family_model *fm, float loss)
{
    memset(fm->head_ran, 0, sizeof fm->head_ran);
    fm->loss = fm->head_loss[FLAVA_HEAD_CONTRASTIVE] = loss;
    fm->head_ran[FLAVA_HEAD_CONTRASTIVE] = 1;
}

static double clip_flops(const flava_family_model *fm, const flava_batch *b)
{
    const flava_clip_config *c = &((const flava_clip *)fm->impl)->cfg;
    const int g = c->vision.image_size / c->vision.patch_size;
    const flava_clip_tower_config *v = &c->vision.enc, *t = &c->text.enc;
    const double f = encoder_flops(v->num_hidden_layers, v->hidden_size, v->intermediate_size,
                                   g * g + 1) +
                     encoder_flops(t->num_hidden_layers, t->hidden_size, t->intermediate_size,
                                   b->T);
    return 3 * f * b->B;
}

static flava_status clip_fwd(flava_ctx *ctx, flava_family_model *fm, const flava_batch *b,
                             int train)
{
    if (fm->classifier)
        return classifier_fwd(ctx, fm, b, train);
    (void)train; /* CLIP has no dropout or batch norm */
    FLAVA_TRY(need_pairs(b, "CLIP"));
    flava_clip *m = fm->impl;
    FLAVA_TRY(flava_clip_forward(ctx, m, b->pixel_values, b->input_ids, b->attention_mask, b->B,
                                 b->T));
    contrastive_only(fm, m->loss);
    return FLAVA_OK;
}

static flava_status clip_bwd(flava_ctx *ctx, flava_family_model *fm, const flava_batch *b)
{
    if (fm->classifier)
        return classifier_bwd(ctx, fm, b);
    return flava_clip_backward(ctx, fm->impl, 1.0f); /* the pass kept what it needs */
}

static flava_status clip_features(flava_ctx *ctx, flava_family_model *fm, float *out,
                                  const flava_batch *b, int text, int train)
{
    (void)train; /* no dropout or batch norm */
    flava_clip *m = fm->impl;
    if (text) {
        FLAVA_TRY(flava_clip_encode_text(ctx, m, NULL, b->input_ids, b->attention_mask, b->B,
                                         b->T));
        memcpy(out, m->txt.pooled, sizeof(float) * (size_t)b->B * m->cfg.text.enc.hidden_size);
        return FLAVA_OK;
    }
    FLAVA_TRY(flava_clip_encode_image(ctx, m, NULL, b->pixel_values, b->B));
    memcpy(out, m->img.pooled, sizeof(float) * (size_t)b->B * m->cfg.vision.enc.hidden_size);
    return FLAVA_OK;
}

static flava_status clip_features_backward(flava_ctx *ctx, flava_family_model *fm,
                                           const float *dfeatures, int text)
{
    return text ? flava_clip_text_pooled_backward(ctx, fm->impl, dfeatures)
                : flava_clip_image_pooled_backward(ctx, fm->impl, dfeatures);
}

static void clip_after_step(flava_family_model *fm)
{
    /* OpenCLIP: logit_scale.clamp_(0, ln 100) after every optimizer step */
    flava_clip *m = fm->impl;
    float *s = m->params + m->off.logit_scale;
    const float hi = (float)log(100.0);
    *s = *s < 0 ? 0 : *s > hi ? hi : *s;
}

/* The five contrastive outputs every dual encoder has. */
static int pair_outputs(flava_output *out, const float *text, const float *image,
                        const float *per_image, const float *per_text, const float *loss, int B,
                        int D)
{
    const char *names[] = {"text_embeds", "image_embeds", "logits_per_image", "logits_per_text",
                           "loss"};
    const float *data[] = {text, image, per_image, per_text, loss};
    const int64_t cols[] = {D, D, B, B};
    for (int i = 0; i < 5; i++) {
        memset(&out[i], 0, sizeof out[i]);
        snprintf(out[i].name, sizeof out[i].name, "%s", names[i]);
        out[i].data = data[i];
        out[i].ndim = i < 4 ? 2 : 0;
        out[i].shape[0] = B;
        out[i].shape[1] = i < 4 ? cols[i] : 0;
        out[i].value = i < 4 ? 0 : *loss;
    }
    return 5;
}

static int clip_outs(flava_family_model *fm, flava_output *out)
{
    if (fm->classifier)
        return classifier_outs(fm, out);
    flava_clip *m = fm->impl;
    return pair_outputs(out, m->txt.embeds, m->img.embeds, m->logits_per_image,
                        m->logits_per_text, &m->loss, m->B, m->cfg.projection_dim);
}

/* The defaults with a tower's image geometry. */
static void geometry(flava_config *c, int size, int patch, int channels)
{
    flava_config_default(c);
    c->image.image_size = size;
    c->image.patch_size = patch;
    c->image.num_channels = channels;
}

static void clip_input_config(const flava_family_model *fm, flava_config *c)
{
    const flava_clip *m = fm->impl;
    geometry(c, m->cfg.vision.image_size, m->cfg.vision.patch_size, m->cfg.vision.num_channels);
}

static const flava_family_ops family_clip = {
    .name = "clip",
    .text = FLAVA_FAMILY_TEXT_CLIP_BPE,
    .pretrain_heads = contrastive_head,
    .n_pretrain_heads = 1,
    .image = clip_preprocessing,
    .create = clip_create,
    .destroy = clip_destroy,
    .fill = clip_fill,
    .load = clip_load,
    .save = clip_save,
    .alloc_grads = clip_alloc_grads,
    .encode_images = clip_encode_images,
    .encode_texts = clip_encode_texts,
    .image_features = clip_image_features,
    .features = clip_features,
    .features_backward = clip_features_backward,
    .forward = clip_fwd,
    .backward = clip_bwd,
    .outputs = clip_outs,
    .input_config = clip_input_config,
    .after_step = clip_after_step,
    .step_flops = clip_flops,
};

/* ================================================================ ALIGN */

static void align_preprocessing(flava_image_spec *o, int size)
{
    /* kakaobrain/align-base's EfficientNetImageProcessor: squash BILINEAR
     * to 346 x 346, centre crop 289, x/127.5 - 1 (= mean 0.5, std 0.5 on
     * x/255), no normalisation; the same ratio for other sizes */
    static const float half[3] = {0.5f, 0.5f, 0.5f};
    fill_image(o, (int)lround(size * 346.0 / 289.0), size, 0, FLAVA_RESAMPLE_BILINEAR, half,
               half);
}

static void align_fill(flava_family_model *fm)
{
    flava_align *m = fm->impl;
    fm->table = &m->table;
    fm->params = m->params;
    fm->grads = m->grads;
    fm->embed_dim = m->cfg.projection_dim;
    fm->feature_dim = m->cfg.projection_dim;
    fm->image_size = m->cfg.vision.image_size;
    fm->patch_size = m->cfg.vision.image_size;
    fm->max_text_len = m->cfg.text.max_position_embeddings;
    fm->vocab_size = m->cfg.text.vocab_size;
}

static void align_destroy(flava_family_model *fm) { flava_align_destroy(fm->impl); }

static flava_status align_load(flava_family_model *fm, const char *path, int partial)
{
    flava_align *m = fm->impl;
    if (!partial)
        return flava_align_load_weights(m, path);
    /* partial: whatever the file has of the parameters and statistics */
    FLAVA_TRY(flava_checkpoint_load_table(&m->table, m->params, path, 1));
    return flava_checkpoint_load_table(&m->buffers, m->buf, path, 1);
}

static flava_status align_create(flava_family_model *fm, const char *checkpoint,
                                 const flava_family_overrides *ov, const flava_head_set *heads,
                                 int partial, uint64_t seed)
{
    (void)heads;
    flava_align_config c;
    flava_align_config_default(&c);
    if (checkpoint)
        FLAVA_TRY(flava_align_read_config(&c, checkpoint));
    if (ov && ov->n) {
        char *json, *full;
        FLAVA_TRY(flava_family_overrides_json(&json, ov));
        flava_status s = flava_align_config_from_json(&c, json, "the config overrides");
        free(json);
        FLAVA_TRY(s);
        FLAVA_TRY(flava_align_config_to_json(&full, &c));
        s = check_known(full, ov, "ALIGN");
        free(full);
        FLAVA_TRY(s);
    }
    FLAVA_TRY(flava_align_config_validate(&c));
    flava_align *m;
    FLAVA_TRY(flava_align_create(&m, &c));
    fm->impl = m;
    flava_align_init_weights(m, seed);
    align_fill(fm);
    FLAVA_TRY(classifier_open(fm, m->cfg.num_labels, m->cfg.classifier_input,
                              m->cfg.projection_dim, m->cfg.text.hidden_size));
    return checkpoint ? align_load(fm, checkpoint, partial) : FLAVA_OK;
}

static flava_status align_save(const flava_family_model *fm, const char *path)
{
    return flava_align_save(fm->impl, path);
}

static flava_status align_alloc_grads(flava_family_model *fm)
{
    FLAVA_TRY(flava_align_alloc_grads(fm->impl));
    align_fill(fm);
    return FLAVA_OK;
}

static flava_status align_image_features(flava_ctx *ctx, flava_family_model *fm, float *out,
                                         const float *pixel_values, int B,
                                         flava_image_feature which)
{
    if (which == FLAVA_IMAGE_CLS)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "ALIGN's EfficientNet has no CLS state: use its "
                           "pooled (mean) features");
    flava_align *m = fm->impl;
    const int S = m->cfg.vision.image_size;
    return flava_align_encode_images(ctx, m, out, pixel_values, B, S, S);
}

static flava_status align_encode_images(flava_ctx *ctx, flava_family_model *fm, float *emb,
                                        const float *pixel_values, int B)
{
    FLAVA_TRY(align_image_features(ctx, fm, emb, pixel_values, B, FLAVA_IMAGE_POOLED));
    flava_family_normalise(emb, B, fm->embed_dim);
    return FLAVA_OK;
}

static flava_status align_encode_texts(flava_ctx *ctx, flava_family_model *fm, float *emb,
                                       const int32_t *input_ids, const float *attention_mask,
                                       const int32_t *token_type_ids, int B, int T)
{
    FLAVA_TRY(flava_align_encode_texts(ctx, fm->impl, emb, input_ids, attention_mask,
                                       token_type_ids, B, T));
    flava_family_normalise(emb, B, fm->embed_dim);
    return FLAVA_OK;
}

static flava_status align_fwd(flava_ctx *ctx, flava_family_model *fm, const flava_batch *b,
                              int train)
{
    if (fm->classifier)
        return classifier_fwd(ctx, fm, b, train);
    FLAVA_TRY(need_pairs(b, "ALIGN"));
    flava_align *m = fm->impl;
    const flava_align_inputs in = {.B = b->B, .T = b->T, .H = b->image_size,
                                   .W = b->image_size, .pixel_values = b->pixel_values,
                                   .input_ids = b->input_ids, .attention_mask = b->attention_mask,
                                   .token_type_ids = b->token_type_ids};
    FLAVA_TRY(flava_align_forward(ctx, m, &in, train, family_dropout_seed(fm, train)));
    contrastive_only(fm, m->loss);
    return FLAVA_OK;
}

static flava_status align_bwd(flava_ctx *ctx, flava_family_model *fm, const flava_batch *b)
{
    if (fm->classifier)
        return classifier_bwd(ctx, fm, b);
    return flava_align_backward(ctx, fm->impl);
}

static flava_status align_features(flava_ctx *ctx, flava_family_model *fm, float *out,
                                   const flava_batch *b, int text, int train)
{
    flava_align *m = fm->impl;
    if (text)
        return flava_align_text_cls(ctx, m, out, b->input_ids, b->attention_mask,
                                    b->token_type_ids, b->B, b->T, train,
                                    family_dropout_seed(fm, train));
    const int S = m->cfg.vision.image_size;
    return flava_align_image_forward(ctx, m, out, b->pixel_values, b->B, S, S, train,
                                     family_dropout_seed(fm, train));
}

static flava_status align_features_backward(flava_ctx *ctx, flava_family_model *fm,
                                            const float *dfeatures, int text)
{
    return text ? flava_align_text_cls_backward(ctx, fm->impl, dfeatures)
                : flava_align_image_backward(ctx, fm->impl, dfeatures);
}

static int align_outs(flava_family_model *fm, flava_output *out)
{
    if (fm->classifier)
        return classifier_outs(fm, out);
    flava_align *m = fm->impl;
    return pair_outputs(out, m->text_embeds, m->image_embeds, m->logits_per_image,
                        m->logits_per_text, &m->loss, m->B, m->cfg.projection_dim);
}

static void align_input_config(const flava_family_model *fm, flava_config *c)
{
    const flava_align *m = fm->impl;
    /* no patches: one "patch" the size of the image */
    geometry(c, m->cfg.vision.image_size, m->cfg.vision.image_size, m->cfg.vision.num_channels);
}

static const flava_family_ops family_align = {
    .name = "align",
    .text = FLAVA_FAMILY_TEXT_WORDPIECE,
    .pretrain_heads = contrastive_head,
    .n_pretrain_heads = 1,
    .image = align_preprocessing,
    .create = align_create,
    .destroy = align_destroy,
    .fill = align_fill,
    .load = align_load,
    .save = align_save,
    .alloc_grads = align_alloc_grads,
    .encode_images = align_encode_images,
    .encode_texts = align_encode_texts,
    .image_features = align_image_features,
    .features = align_features,
    .features_backward = align_features_backward,
    .forward = align_fwd,
    .backward = align_bwd,
    .outputs = align_outs,
    .input_config = align_input_config,
    .after_step = NULL, /* HF trains the temperature unclamped */
    .step_flops = NULL, /* not counted for EfficientNet: bench reports samples/s only */
};

/* ================================================================ registry */

const flava_family_ops *const flava_families[FLAVA_NUM_FAMILIES] = {
    [FLAVA_FAMILY_FLAVA] = &family_flava,
    [FLAVA_FAMILY_CLIP] = &family_clip,
    [FLAVA_FAMILY_ALIGN] = &family_align,
};
static_assert(sizeof flava_families / sizeof *flava_families == FLAVA_NUM_FAMILIES,
              "one registry entry per flava_family_id");

flava_status flava_family_find(const flava_family_ops **ops, const char *name)
{
    for (int i = 0; i < FLAVA_NUM_FAMILIES; i++)
        if (!strcmp(flava_families[i]->name, name)) {
            *ops = flava_families[i];
            return FLAVA_OK;
        }
    return FLAVA_ERROR(FLAVA_ERR_CONFIG, "model.family = '%s': expected flava, clip or align",
                       name);
}

flava_status flava_family_of_checkpoint(const flava_family_ops **ops, const char *path)
{
    char *json;
    FLAVA_TRY(flava_checkpoint_read_json(&json, path));
    /* "model_type": "<name>" anywhere at the top level of the config */
    const char *k = strstr(json, "\"model_type\"");
    char type[32] = "flava";
    if (k)
        sscanf(k, "\"model_type\" : \"%31[^\"]\"", type); /* spaces optional */
    free(json);
    flava_status s = flava_family_find(ops, type);
    if (s != FLAVA_OK)
        flava_error_context("%s: model_type", path);
    return s;
}

flava_status flava_family_create(flava_family_model *fm, const flava_family_ops *ops,
                                 const char *checkpoint, const flava_family_overrides *ov,
                                 const flava_head_set *heads, int partial, uint64_t seed)
{
    memset(fm, 0, sizeof *fm);
    fm->ops = ops;
    fm->seed = seed;
    flava_status s = ops->create(fm, checkpoint, ov, heads, partial, seed);
    if (s != FLAVA_OK)
        flava_family_destroy(fm);
    return s;
}

void flava_family_wrap(flava_family_model *fm, const flava_family_ops *ops, void *impl)
{
    memset(fm, 0, sizeof *fm);
    fm->ops = ops;
    fm->impl = impl;
    ops->fill(fm);
}

void flava_family_destroy(flava_family_model *fm)
{
    classifier_free(fm->classifier);
    if (fm->impl)
        fm->ops->destroy(fm);
    memset(fm, 0, sizeof *fm);
}

/* model.c - FLAVA (HF FlavaForPreTraining): parameters, initialisation and
 * the forward/backward of a step, as a list of op calls. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codebook.h"
#include "ops.h"
#include "optim.h"
#include "rng.h"

/* HF clamps logit_scale to [0, ln 100] in training */
#define LOGIT_SCALE_MAX 4.6052f

void flava_head_set_pretraining(flava_head_set *h, const flava_config *c)
{
    memset(h, 0, sizeof *h);
    const double w[] = {
        [FLAVA_HEAD_MIM] = c->mim_weight,
        [FLAVA_HEAD_MLM] = c->mlm_weight,
        [FLAVA_HEAD_ITM] = c->itm_weight,
        [FLAVA_HEAD_CONTRASTIVE] = c->global_contrastive_weight,
        [FLAVA_HEAD_MMM_IMAGE] = c->mmm_image_weight,
        [FLAVA_HEAD_MMM_TEXT] = c->mmm_text_weight,
    };
    for (int i = 0; i <= FLAVA_HEAD_MMM_TEXT; i++) {
        h->weight[i] = w[i];
        h->enabled[i] = w[i] > 0;
    }
}

/* ---- parameters ---- */

/* input_dropout: HF's image and text embeddings end in the hidden
 * dropout; the multimodal encoder's input has none. */
static flava_status encoder_spec(flava_encoder_spec *s, const flava_encoder_config *c,
                                 int input_dropout)
{
    memset(s, 0, sizeof *s);
    s->layers = c->num_hidden_layers;
    s->hidden = c->hidden_size;
    s->heads = c->num_attention_heads;
    s->intermediate = c->intermediate_size;
    s->eps = (float)c->layer_norm_eps;
    s->pre_ln = 1;
    s->final_ln = 1;
    s->qkv_bias = c->qkv_bias;
    s->hidden_dropout = (float)c->hidden_dropout_prob;
    s->attention_dropout = (float)c->attention_probs_dropout_prob;
    s->input_dropout = input_dropout;
    return flava_activation_parse(&s->act, c->hidden_act);
}

static flava_status declare_linear(flava_param_table *t, flava_linear_off *o, const char *stem,
                                   int out, int in)
{
    char n[FLAVA_PARAM_NAME_MAX];
    snprintf(n, sizeof n, "%s.weight", stem);
    FLAVA_TRY(flava_params_add2(t, &o->w, n, 0, out, in));
    snprintf(n, sizeof n, "%s.bias", stem);
    return flava_params_add1(t, &o->b, n, 1, out);
}

static flava_status declare_token(flava_param_table *t, size_t *off, const char *name, int n,
                                  int C)
{
    int64_t s[3] = {1, n, C};
    return flava_params_add(t, off, name, 1, 3, s);
}

static flava_status declare_all(flava_model *m)
{
    const flava_config *c = &m->cfg;
    flava_param_table *t = &m->table;
    flava_encoder_spec s;
    const int Ci = c->image.enc.hidden_size, Ct = c->text.enc.hidden_size,
              Cm = c->multimodal.enc.hidden_size, p = c->image.patch_size;
    const int P = (c->image.image_size / p) * (c->image.image_size / p);

    /* image model */
    flava_image_embed *ie = &m->image_embed;
    FLAVA_TRY(declare_token(t, &ie->cls, "flava.image_model.embeddings.cls_token", 1, Ci));
    ie->mask = FLAVA_NO_PARAM;
    if (c->image.mask_token)
        FLAVA_TRY(declare_token(t, &ie->mask, "flava.image_model.embeddings.mask_token", 1, Ci));
    int64_t ws[4] = {Ci, c->image.num_channels, p, p};
    FLAVA_TRY(flava_params_add(t, &ie->patch_w,
                               "flava.image_model.embeddings.patch_embeddings.projection.weight",
                               0, 4, ws));
    FLAVA_TRY(flava_params_add1(t, &ie->patch_b,
                                "flava.image_model.embeddings.patch_embeddings.projection.bias",
                                1, Ci));
    FLAVA_TRY(declare_token(t, &ie->pos, "flava.image_model.embeddings.position_embeddings",
                            P + 1, Ci));
    FLAVA_TRY(encoder_spec(&s, &c->image.enc, 1));
    FLAVA_TRY(flava_encoder_declare(&m->image_enc, t, &s, &flava_encoder_names_hf_vit,
                                    "flava.image_model"));
    FLAVA_TRY(declare_linear(t, &m->image_pooler, "flava.image_model.pooler.dense", Ci, Ci));

    /* text model */
    flava_text_embed *te = &m->text_embed;
    FLAVA_TRY(flava_params_add2(t, &te->word, "flava.text_model.embeddings.word_embeddings.weight",
                                1, c->text.vocab_size, Ct));
    FLAVA_TRY(flava_params_add2(t, &te->pos,
                                "flava.text_model.embeddings.position_embeddings.weight", 1,
                                c->text.max_position_embeddings, Ct));
    FLAVA_TRY(flava_params_add2(t, &te->type,
                                "flava.text_model.embeddings.token_type_embeddings.weight", 1,
                                c->text.type_vocab_size, Ct));
    FLAVA_TRY(flava_params_add1(t, &te->ln_w, "flava.text_model.embeddings.LayerNorm.weight", 1,
                                Ct));
    FLAVA_TRY(flava_params_add1(t, &te->ln_b, "flava.text_model.embeddings.LayerNorm.bias", 1,
                                Ct));
    FLAVA_TRY(encoder_spec(&s, &c->text.enc, 1));
    FLAVA_TRY(flava_encoder_declare(&m->text_enc, t, &s, &flava_encoder_names_hf_vit,
                                    "flava.text_model"));
    FLAVA_TRY(declare_linear(t, &m->text_pooler, "flava.text_model.pooler.dense", Ct, Ct));

    /* multimodal model */
    FLAVA_TRY(declare_token(t, &m->mm_cls, "flava.multimodal_model.cls_token", 1, Cm));
    FLAVA_TRY(encoder_spec(&s, &c->multimodal.enc, 0));
    FLAVA_TRY(flava_encoder_declare(&m->mm_enc, t, &s, &flava_encoder_names_hf_vit,
                                    "flava.multimodal_model"));
    FLAVA_TRY(declare_linear(t, &m->mm_pooler, "flava.multimodal_model.pooler.dense", Cm, Cm));

    /* projections and the contrastive temperature */
    FLAVA_TRY(declare_linear(t, &m->image_projection, "flava.image_projection", c->projection_dim,
                             Ci));
    FLAVA_TRY(declare_linear(t, &m->text_projection, "flava.text_projection", c->projection_dim,
                             Ct));
    FLAVA_TRY(flava_params_add(t, &m->logit_scale, "flava.logit_scale", 1, 0, NULL));
    FLAVA_TRY(declare_linear(t, &m->image_to_mm, "flava.image_to_mm_projection", Cm, Ci));
    FLAVA_TRY(declare_linear(t, &m->text_to_mm, "flava.text_to_mm_projection", Cm, Ct));

    for (int h = 0; h < FLAVA_NUM_HEADS; h++)
        if (m->heads.enabled[h] && flava_heads[h]->declare)
            FLAVA_TRY(flava_heads[h]->declare(t, c));
    return FLAVA_OK;
}

flava_status flava_model_create(flava_model **out, const flava_config *c,
                                const flava_head_set *heads)
{
    *out = NULL;
    FLAVA_TRY(flava_config_validate(c));
    flava_model *m = calloc(1, sizeof *m);
    if (!m)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot allocate the model");
    m->cfg = *c;
    if (heads)
        m->heads = *heads;
    else
        flava_head_set_pretraining(&m->heads, c);
    flava_params_init(&m->table);
    flava_status st = declare_all(m);
    if (st == FLAVA_OK)
        st = flava_alloc((void **)&m->params, m->table.total * sizeof(float), "the parameters");
    if (st != FLAVA_OK) {
        flava_model_destroy(m);
        return st;
    }
    *out = m;
    return FLAVA_OK;
}

static void free_acts(flava_model *m)
{
    flava_free(m->arena);
    m->arena = NULL;
    m->arena_floats = 0;
    flava_free(m->zero_types);
    m->zero_types = NULL;
    flava_free(m->pos_mask);
    m->pos_mask = NULL;
    flava_free(m->codebook_labels);
    m->codebook_labels = NULL;
    for (int h = 0; h < FLAVA_NUM_HEADS; h++) {
        flava_free(m->head[h].mem);
        flava_free(m->head[h].rows);
        flava_free(m->head[h].labels);
        memset(&m->head[h], 0, sizeof m->head[h]);
    }
    m->B = m->T = m->P = m->cap_B = m->cap_T = 0;
}

void flava_model_destroy(flava_model *m)
{
    if (!m)
        return;
    free_acts(m);
    flava_codebook_destroy(m->codebook);
    flava_encoder_free(&m->image_enc);
    flava_encoder_free(&m->text_enc);
    flava_encoder_free(&m->mm_enc);
    flava_params_free(&m->table);
    flava_free(m->params);
    flava_free(m->grads);
    flava_free(m->exp_avg);
    flava_free(m->exp_avg_sq);
    free(m->no_decay);
    free(m);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

void flava_model_init_weights(flava_model *m, uint64_t seed)
{
    const flava_config *c = &m->cfg;
    for (int i = 0; i < m->table.n; i++) {
        const flava_param *p = &m->table.p[i];
        float *x = m->params + p->offset;
        const char *n = p->name;
        float fill = NAN;
        if (!strcmp(n, "flava.logit_scale"))
            fill = (float)c->logit_scale_init_value;
        else if (ends_with(n, "bias") || ends_with(n, "_token") ||
                 !strcmp(n, "flava.image_model.embeddings.position_embeddings"))
            fill = 0;
        else if ((strstr(n, "layernorm") || strstr(n, "LayerNorm")) && ends_with(n, ".weight"))
            fill = 1;
        if (!isnan(fill)) {
            for (size_t k = 0; k < p->numel; k++)
                x[k] = fill;
            continue;
        }
        /* one stream per chunk of a tensor: the same values for any number
         * of threads */
        const size_t chunk = (size_t)1 << 16, nchunks = (p->numel + chunk - 1) / chunk;
#pragma omp parallel for schedule(dynamic)
        for (size_t ch = 0; ch < nchunks; ch++) {
            flava_rng r;
            flava_rng_init(&r, seed, ((uint64_t)i << 32) | ch);
            size_t end = (ch + 1) * chunk < p->numel ? (ch + 1) * chunk : p->numel;
            for (size_t k = ch * chunk; k < end; k++)
                x[k] = (float)(c->initializer_range * flava_rng_normal(&r));
        }
    }
    /* nn.Embedding(padding_idx=pad_token_id) starts with a zero padding row */
    const int pad = c->text.pad_token_id, Ct = c->text.enc.hidden_size;
    if (pad >= 0 && pad < c->text.vocab_size)
        memset(m->params + m->text_embed.word + (size_t)pad * Ct, 0, (size_t)Ct * sizeof(float));
}

flava_status flava_model_init_positions_sincos(flava_model *m)
{
    const int C = m->cfg.image.enc.hidden_size, G = m->cfg.image.image_size / m->cfg.image.patch_size;
    if (C % 4)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "sin-cos image positions need image_config.hidden_size "
                           "divisible by 4, got %d", C);
    const int F = C / 4; /* frequencies per coordinate */
    float *pos = m->params + m->image_embed.pos;
    for (int y = 0; y < G; y++)
        for (int x = 0; x < G; x++) {
            float *row = pos + (size_t)(1 + y * G + x) * C; /* row 0 is the CLS position */
            for (int k = 0; k < F; k++) {
                const double w = pow(10000.0, -(double)k / F);
                row[k] = (float)sin(x * w);
                row[F + k] = (float)cos(x * w);
                row[2 * F + k] = (float)sin(y * w);
                row[3 * F + k] = (float)cos(y * w);
            }
        }
    return FLAVA_OK;
}

flava_status flava_model_alloc_grads(flava_model *m)
{
    if (m->grads)
        return FLAVA_OK;
    return flava_alloc((void **)&m->grads, m->table.total * sizeof(float), "the gradients");
}

flava_status flava_model_alloc_optim(flava_model *m)
{
    if (m->exp_avg)
        return FLAVA_OK;
    const size_t n = m->table.total * sizeof(float);
    FLAVA_TRY(flava_alloc((void **)&m->exp_avg, n, "the AdamW first moments"));
    FLAVA_TRY(flava_alloc((void **)&m->exp_avg_sq, n, "the AdamW second moments"));
    return flava_adamw_no_decay(&m->no_decay, &m->n_no_decay, &m->table);
}

flava_status flava_model_adamw_step(flava_model *m, double lr, int64_t step,
                                    const flava_adamw_config *cfg)
{
    if (!m->grads || !m->exp_avg)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "AdamW step without gradients or moments");
    return flava_adamw_step(m->params, m->exp_avg, m->exp_avg_sq, m->grads, m->no_decay,
                            m->n_no_decay, (int64_t)m->table.total, lr, step, cfg);
}

void flava_model_zero_grads(flava_model *m)
{
    if (m->grads)
        memset(m->grads, 0, m->table.total * sizeof(float));
}

size_t flava_model_count(const flava_model *m, const char *prefix)
{
    size_t n = 0, k = strlen(prefix);
    for (int i = 0; i < m->table.n; i++)
        if (!strncmp(m->table.p[i].name, prefix, k))
            n += m->table.p[i].numel;
    return n;
}

float *flava_model_param(const flava_model *m, const char *name, float **grad)
{
    const flava_param *p = flava_params_find(&m->table, name);
    if (grad)
        *grad = p && m->grads ? m->grads + p->offset : NULL;
    return p ? m->params + p->offset : NULL;
}

/* ---- activation arena ---- */

static int image_seq(const flava_model *m) { return m->P + 1; }
static int mm_seq(const flava_model *m) { return 1 + m->P + 1 + m->T; }

/* Walks the arena layout: with mem NULL only counts floats. */
static size_t layout(flava_model *m, float *mem)
{
    const int B = m->B, T = m->T, P = m->P, Si = image_seq(m), Sm = mm_seq(m);
    const size_t Ci = m->cfg.image.enc.hidden_size, Ct = m->cfg.text.enc.hidden_size,
                 Cm = m->cfg.multimodal.enc.hidden_size;
    size_t n = 0;
#define TAKE(ptr, count)                   \
    do {                                   \
        if (mem)                           \
            (ptr) = mem + n;               \
        n += (count);                      \
    } while (0)
    flava_image_pass *ip[2] = {&m->img, &m->img_m};
    TAKE(m->patches, (size_t)B * P * Ci);
    TAKE(m->dpatches, (size_t)B * P * Ci);
    for (int k = 0; k < 2; k++) {
        float *a = NULL;
        TAKE(a, flava_encoder_acts_floats(&m->image_enc.spec, B, Si));
        if (mem)
            flava_encoder_acts_bind(&ip[k]->enc, &m->image_enc.spec, B, Si, a);
        TAKE(ip[k]->cls, B * Ci);
        TAKE(ip[k]->pooled_pre, B * Ci);
        TAKE(ip[k]->pooled, B * Ci);
        TAKE(ip[k]->dpooled, B * Ci);
        TAKE(ip[k]->dout, (size_t)B * Si * Ci);
        TAKE(ip[k]->dlast, (size_t)B * Si * Ci);
    }
    flava_text_pass *tp[2] = {&m->txt, &m->txt_m};
    for (int k = 0; k < 2; k++) {
        TAKE(tp[k]->emb, (size_t)B * T * Ct);
        TAKE(tp[k]->emb_mean, (size_t)B * T);
        TAKE(tp[k]->emb_var, (size_t)B * T);
        float *a = NULL;
        TAKE(a, flava_encoder_acts_floats(&m->text_enc.spec, B, T));
        if (mem)
            flava_encoder_acts_bind(&tp[k]->enc, &m->text_enc.spec, B, T, a);
        TAKE(tp[k]->cls, B * Ct);
        TAKE(tp[k]->pooled_pre, B * Ct);
        TAKE(tp[k]->pooled, B * Ct);
        TAKE(tp[k]->dpooled, B * Ct);
        TAKE(tp[k]->dout, (size_t)B * T * Ct);
        TAKE(tp[k]->dlast, (size_t)B * T * Ct);
    }
    /* the unmasked multimodal pass feeds no loss: room only when it runs */
    flava_mm_pass *mp[2] = {&m->mm_m, &m->mm};
    for (int k = 0; k < (m->cfg.skip_unmasked_multimodal_encoder ? 1 : 2); k++) {
        TAKE(mp[k]->key_mask, (size_t)B * Sm);
        TAKE(mp[k]->img_proj, (size_t)B * Si * Cm);
        TAKE(mp[k]->txt_proj, (size_t)B * T * Cm);
        float *a = NULL;
        TAKE(a, flava_encoder_acts_floats(&m->mm_enc.spec, B, Sm));
        if (mem)
            flava_encoder_acts_bind(&mp[k]->enc, &m->mm_enc.spec, B, Sm, a);
        TAKE(mp[k]->cls, B * Cm);
        TAKE(mp[k]->pooled_pre, B * Cm);
        TAKE(mp[k]->pooled, B * Cm);
        TAKE(mp[k]->dpooled, B * Cm);
        TAKE(mp[k]->dout, (size_t)B * Sm * Cm);
        TAKE(mp[k]->out_pos, (size_t)B * Sm * Cm);
    }
    size_t scratch = flava_encoder_scratch_floats(&m->image_enc.spec, B, Si);
    size_t s2 = flava_encoder_scratch_floats(&m->text_enc.spec, B, T);
    size_t s3 = flava_encoder_scratch_floats(&m->mm_enc.spec, B, Sm);
    scratch = s2 > scratch ? s2 : scratch;
    scratch = s3 > scratch ? s3 : scratch;
    TAKE(m->enc_scratch, scratch);
    size_t tmp = (size_t)B * Si * (Ci > Cm ? Ci : Cm);
    size_t t2 = (size_t)B * Sm * Cm, t3 = (size_t)B * T * Ct;
    tmp = t2 > tmp ? t2 : tmp;
    tmp = t3 > tmp ? t3 : tmp;
    TAKE(m->tmp_a, tmp);
    TAKE(m->tmp_b, tmp);
#undef TAKE
    return n;
}

/* Sizes the arena and the heads' memory for batches of B x (T, P) and
 * lays the arena out for this shape. Every size grows with B and T, so a
 * smaller batch (the last of an epoch) fits the memory of the largest
 * seen: only a larger one allocates. */
static flava_status bind(flava_model *m, int B, int T, int P)
{
    if (!m->arena || B > m->cap_B || T > m->cap_T || P != m->P) {
        const int capB = B > m->cap_B ? B : m->cap_B, capT = T > m->cap_T ? T : m->cap_T;
        free_acts(m);
        m->B = m->cap_B = capB, m->T = m->cap_T = capT, m->P = P;
        size_t n = layout(m, NULL);
        FLAVA_TRY(flava_alloc((void **)&m->arena, n * sizeof(float), "the activations"));
        m->arena_floats = n;
        FLAVA_TRY(flava_alloc((void **)&m->zero_types,
                              (size_t)capB * (capT ? capT : 1) * sizeof(int32_t),
                              "the token types"));
        FLAVA_TRY(flava_alloc((void **)&m->pos_mask, (size_t)capB, "the positive-pair mask"));
        FLAVA_TRY(flava_alloc((void **)&m->codebook_labels, (size_t)capB * P * sizeof(int32_t),
                              "the codebook labels"));
        for (int h = 0; h < FLAVA_NUM_HEADS; h++) {
            if (!m->heads.enabled[h])
                continue;
            flava_head_state *st = &m->head[h];
            const flava_head_ops *ops = flava_heads[h];
            st->mem_floats = ops->mem_floats(&m->cfg, capB, capT, P);
            size_t rows = (size_t)ops->max_rows(&m->cfg, capB, capT, P);
            FLAVA_TRY(flava_alloc((void **)&st->mem, st->mem_floats * sizeof(float), ops->name));
            FLAVA_TRY(flava_alloc((void **)&st->rows, rows * sizeof(int32_t), ops->name));
            FLAVA_TRY(flava_alloc((void **)&st->labels, rows * sizeof(int32_t), ops->name));
        }
        m->B = -1; /* lay out below */
    }
    if (B != m->B || T != m->T) {
        m->B = B, m->T = T;
        layout(m, m->arena);
    }
    return FLAVA_OK;
}

/* ---- passes ---- */

#define PAR(off) flava_param_ptr(m->params, (off))
#define GRD(off) flava_param_ptr(m->grads, (off))

static flava_conv2d_dims patch_dims(const flava_model *m, int B)
{
    flava_conv2d_dims d = {0};
    d.N = B;
    d.C = m->cfg.image.num_channels;
    d.H = d.W = m->cfg.image.image_size;
    d.OC = m->cfg.image.enc.hidden_size;
    d.KH = d.KW = d.stride = m->cfg.image.patch_size;
    d.groups = 1;
    d.dst_nhwc = 1;
    return d;
}

/* pooled = tanh(dense(out[:, 0])) */
static flava_status pooler_forward(flava_ctx *ctx, const flava_model *m, float *cls, float *pre,
                                   float *pooled, const float *out, const flava_linear_off *o,
                                   int B, int S, int C)
{
    for (int b = 0; b < B; b++)
        memcpy(cls + (size_t)b * C, out + (size_t)b * S * C, (size_t)C * sizeof *cls);
    FLAVA_TRY(linear_forward(ctx, pre, cls, PAR(o->w), PAR(o->b), B, C, C));
    return tanh_forward(ctx, pooled, pre, (int64_t)B * C);
}

/* adds the pooler's input gradient into dout[:, 0]; uses tmp [2,B,C] */
static flava_status pooler_backward(flava_ctx *ctx, flava_model *m, float *dout,
                                    const float *dpooled, const float *cls, const float *pooled,
                                    const flava_linear_off *o, int B, int S, int C, float *tmp)
{
    float *dpre = tmp, *dcls = tmp + (size_t)B * C;
    memset(tmp, 0, 2 * (size_t)B * C * sizeof *tmp);
    FLAVA_TRY(tanh_backward(ctx, dpre, dpooled, pooled, (int64_t)B * C));
    FLAVA_TRY(linear_backward(ctx, dcls, GRD(o->w), GRD(o->b), dpre, cls, PAR(o->w), B, C, C));
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            dout[(size_t)b * S * C + c] += dcls[(size_t)b * C + c];
    return FLAVA_OK;
}

/* One image pass over m->patches (computed once for both passes). */
static flava_status image_forward(flava_ctx *ctx, flava_model *m, flava_image_pass *ip,
                                  const uint8_t *masked)
{
    const int B = m->B, P = m->P, S = P + 1, C = m->cfg.image.enc.hidden_size;
    const flava_image_embed *e = &m->image_embed;
    if (masked && e->mask == FLAVA_NO_PARAM)
        return FLAVA_ERROR(FLAVA_ERR_ARG,
                           "bool_masked_pos given but image_config.mask_token is false");
    const float *cls = PAR(e->cls), *pos = PAR(e->pos), *mask = PAR(e->mask);
    float *x = ip->enc.x;
#pragma omp parallel for collapse(2) schedule(static)
    for (int i = 0; i < B; i++)
        for (int s = 0; s < S; s++) {
            const float *src = s == 0 ? cls
                               : (masked && masked[(size_t)i * P + s - 1])
                                   ? mask
                                   : m->patches + ((size_t)i * P + s - 1) * C;
            float *dst = x + ((size_t)i * S + s) * C;
            for (int c = 0; c < C; c++)
                dst[c] = src[c] + pos[(size_t)s * C + c];
        }
    ip->enc.key_mask = NULL;
    FLAVA_TRY(flava_encoder_forward(ctx, &m->image_enc, m->params, &ip->enc));
    FLAVA_TRY(pooler_forward(ctx, m, ip->cls, ip->pooled_pre, ip->pooled, ip->enc.out,
                             &m->image_pooler, B, S, C));
    ip->ran = 1;
    return FLAVA_OK;
}

/* Adds the pass's patch-embedding gradient into m->dpatches. */
static flava_status image_backward(flava_ctx *ctx, flava_model *m, flava_image_pass *ip,
                                   const uint8_t *masked, int use_pooled)
{
    const int B = m->B, P = m->P, S = P + 1, C = m->cfg.image.enc.hidden_size;
    const flava_image_embed *e = &m->image_embed;
    if (use_pooled)
        FLAVA_TRY(pooler_backward(ctx, m, ip->dout, ip->dpooled, ip->cls, ip->pooled,
                                  &m->image_pooler, B, S, C, m->tmp_a));
    float *dx = m->tmp_a;
    memset(dx, 0, (size_t)B * S * C * sizeof *dx);
    FLAVA_TRY(flava_encoder_backward(ctx, dx, m->grads, &m->image_enc, m->params, &ip->enc,
                                     ip->dout, ip->dlast, m->enc_scratch));
    float *gcls = GRD(e->cls), *gpos = GRD(e->pos), *gmask = GRD(e->mask);
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        for (int i = 0; i < B; i++) {
            for (int s = 0; s < S; s++) {
                float g = dx[((size_t)i * S + s) * C + c];
                gpos[(size_t)s * C + c] += g;
                if (s == 0)
                    gcls[c] += g;
                else if (masked && masked[(size_t)i * P + s - 1])
                    gmask[c] += g;
            }
        }
    }
#pragma omp parallel for collapse(2) schedule(static)
    for (int i = 0; i < B; i++)
        for (int p = 0; p < P; p++) {
            if (masked && masked[(size_t)i * P + p])
                continue; /* the mask token took this patch's place */
            float *dst = m->dpatches + ((size_t)i * P + p) * C;
            const float *src = dx + ((size_t)i * S + 1 + p) * C;
            for (int c = 0; c < C; c++)
                dst[c] += src[c];
        }
    return FLAVA_OK;
}

static flava_status text_forward(flava_ctx *ctx, flava_model *m, flava_text_pass *tp,
                                 const flava_batch *b, const int32_t *ids)
{
    const int B = m->B, T = m->T, C = m->cfg.text.enc.hidden_size, N = B * T;
    const flava_text_embed *e = &m->text_embed;
    const int32_t *types = b->token_type_ids ? b->token_type_ids : m->zero_types;
    tp->ids = ids;
    FLAVA_TRY(embedding_forward(tp->emb, ids, PAR(e->word), N, C, m->cfg.text.vocab_size));
    for (int n = 0; n < N; n++)
        if (types[n] < 0 || types[n] >= m->cfg.text.type_vocab_size)
            return FLAVA_ERROR(FLAVA_ERR_ARG, "token_type_ids[%d][%d] = %d is outside [0, %d)",
                               n / T, n % T, types[n], m->cfg.text.type_vocab_size);
    const float *type = PAR(e->type), *pos = PAR(e->pos);
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *dst = tp->emb + (size_t)n * C;
        const float *ty = type + (size_t)types[n] * C, *po = pos + (size_t)(n % T) * C;
        for (int c = 0; c < C; c++)
            dst[c] += ty[c] + po[c];
    }
    FLAVA_TRY(layernorm_forward(ctx, tp->enc.x, tp->emb_mean, tp->emb_var, tp->emb,
                                PAR(e->ln_w), PAR(e->ln_b), N, C,
                                (float)m->cfg.text.enc.layer_norm_eps));
    tp->enc.key_mask = b->attention_mask;
    FLAVA_TRY(flava_encoder_forward(ctx, &m->text_enc, m->params, &tp->enc));
    FLAVA_TRY(pooler_forward(ctx, m, tp->cls, tp->pooled_pre, tp->pooled, tp->enc.out,
                             &m->text_pooler, B, T, C));
    tp->ran = 1;
    return FLAVA_OK;
}

static flava_status text_backward(flava_ctx *ctx, flava_model *m, flava_text_pass *tp,
                                  const flava_batch *b, int use_pooled)
{
    const int B = m->B, T = m->T, C = m->cfg.text.enc.hidden_size, N = B * T;
    const flava_text_embed *e = &m->text_embed;
    const int32_t *types = b->token_type_ids ? b->token_type_ids : m->zero_types;
    if (use_pooled)
        FLAVA_TRY(pooler_backward(ctx, m, tp->dout, tp->dpooled, tp->cls, tp->pooled,
                                  &m->text_pooler, B, T, C, m->tmp_a));
    float *dx = m->tmp_a, *de = m->tmp_b;
    memset(dx, 0, (size_t)N * C * sizeof *dx);
    FLAVA_TRY(flava_encoder_backward(ctx, dx, m->grads, &m->text_enc, m->params, &tp->enc,
                                     tp->dout, tp->dlast, m->enc_scratch));
    memset(de, 0, (size_t)N * C * sizeof *de);
    FLAVA_TRY(layernorm_backward(ctx, de, GRD(e->ln_w), GRD(e->ln_b), dx, tp->emb, PAR(e->ln_w),
                                 tp->emb_mean, tp->emb_var, N, C,
                                 (float)m->cfg.text.enc.layer_norm_eps));
    FLAVA_TRY(embedding_backward(GRD(e->word), de, tp->ids, N, C));
    /* nn.Embedding(padding_idx): the padding row never learns */
    const int pad = m->cfg.text.pad_token_id;
    if (pad >= 0 && pad < m->cfg.text.vocab_size)
        memset(GRD(e->word) + (size_t)pad * C, 0, (size_t)C * sizeof(float));
    FLAVA_TRY(embedding_backward(GRD(e->type), de, types, N, C));
    float *gpos = GRD(e->pos);
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++)
        for (int i = 0; i < B; i++)
            for (int c = 0; c < C; c++)
                gpos[(size_t)t * C + c] += de[((size_t)i * T + t) * C + c];
    return FLAVA_OK;
}

static flava_status mm_forward(flava_ctx *ctx, flava_model *m, flava_mm_pass *mp,
                               const flava_image_pass *ip, const flava_text_pass *tp,
                               const flava_batch *b)
{
    const int B = m->B, T = m->T, Si = image_seq(m), S = mm_seq(m);
    const int Ci = m->cfg.image.enc.hidden_size, Ct = m->cfg.text.enc.hidden_size,
              C = m->cfg.multimodal.enc.hidden_size;
    FLAVA_TRY(linear_forward(ctx, mp->img_proj, flava_encoder_last(&ip->enc, &m->image_enc.spec),
                             PAR(m->image_to_mm.w), PAR(m->image_to_mm.b), B * Si, Ci, C));
    FLAVA_TRY(linear_forward(ctx, mp->txt_proj, flava_encoder_last(&tp->enc, &m->text_enc.spec),
                             PAR(m->text_to_mm.w), PAR(m->text_to_mm.b), B * T, Ct, C));
    const float *cls = PAR(m->mm_cls);
    float *x = mp->enc.x;
    for (int i = 0; i < B; i++) {
        float *row = x + (size_t)i * S * C;
        memcpy(row, cls, (size_t)C * sizeof *row);
        memcpy(row + C, mp->img_proj + (size_t)i * Si * C, (size_t)Si * C * sizeof *row);
        memcpy(row + (size_t)(1 + Si) * C, mp->txt_proj + (size_t)i * T * C,
               (size_t)T * C * sizeof *row);
        float *km = mp->key_mask + (size_t)i * S;
        for (int s = 0; s < 1 + Si; s++)
            km[s] = 1;
        for (int t = 0; t < T; t++)
            km[1 + Si + t] = b->attention_mask ? b->attention_mask[(size_t)i * T + t] : 1;
    }
    mp->enc.key_mask = mp->key_mask;
    FLAVA_TRY(flava_encoder_forward(ctx, &m->mm_enc, m->params, &mp->enc));
    FLAVA_TRY(pooler_forward(ctx, m, mp->cls, mp->pooled_pre, mp->pooled, mp->enc.out,
                             &m->mm_pooler, B, S, C));
    mp->ran = 1;
    return FLAVA_OK;
}

static flava_status mm_backward(flava_ctx *ctx, flava_model *m, flava_mm_pass *mp,
                                flava_image_pass *ip, flava_text_pass *tp, int use_pooled)
{
    const int B = m->B, T = m->T, Si = image_seq(m), S = mm_seq(m);
    const int Ci = m->cfg.image.enc.hidden_size, Ct = m->cfg.text.enc.hidden_size,
              C = m->cfg.multimodal.enc.hidden_size;
    if (use_pooled)
        FLAVA_TRY(pooler_backward(ctx, m, mp->dout, mp->dpooled, mp->cls, mp->pooled,
                                  &m->mm_pooler, B, S, C, m->tmp_a));
    float *dx = m->tmp_a, *dsplit = m->tmp_b;
    memset(dx, 0, (size_t)B * S * C * sizeof *dx);
    FLAVA_TRY(flava_encoder_backward(ctx, dx, m->grads, &m->mm_enc, m->params, &mp->enc,
                                     mp->dout, NULL, m->enc_scratch));
    float *gcls = GRD(m->mm_cls);
    for (int i = 0; i < B; i++)
        for (int c = 0; c < C; c++)
            gcls[c] += dx[(size_t)i * S * C + c];
    for (int i = 0; i < B; i++)
        memcpy(dsplit + (size_t)i * Si * C, dx + ((size_t)i * S + 1) * C,
               (size_t)Si * C * sizeof *dsplit);
    FLAVA_TRY(linear_backward(ctx, ip->dlast, GRD(m->image_to_mm.w), GRD(m->image_to_mm.b),
                              dsplit, flava_encoder_last(&ip->enc, &m->image_enc.spec),
                              PAR(m->image_to_mm.w), B * Si, Ci, C));
    for (int i = 0; i < B; i++)
        memcpy(dsplit + (size_t)i * T * C, dx + ((size_t)i * S + 1 + Si) * C,
               (size_t)T * C * sizeof *dsplit);
    return linear_backward(ctx, tp->dlast, GRD(m->text_to_mm.w), GRD(m->text_to_mm.b), dsplit,
                           flava_encoder_last(&tp->enc, &m->text_enc.spec), PAR(m->text_to_mm.w),
                           B * T, Ct, C);
}

/* ---- the step ---- */

static flava_seq seq_of(const flava_encoder_acts *a, float *dh, int ran, int C)
{
    flava_seq s = {0};
    if (ran) {
        s.h = a->out;
        s.dh = dh;
        s.B = a->B;
        s.S = a->T;
        s.C = C;
    }
    return s;
}

static flava_status check_batch(const flava_model *m, const flava_batch *b)
{
    const flava_config *c = &m->cfg;
    if (b->B <= 0)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "batch of %d samples", b->B);
    if (!b->pixel_values && !b->input_ids && !b->input_ids_masked)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "batch has neither pixel_values nor input_ids");
    if (b->pixel_values && b->image_size != c->image.image_size)
        return FLAVA_ERROR(FLAVA_ERR_SHAPE, "pixel_values are %dx%d, the model takes %dx%d",
                           b->image_size, b->image_size, c->image.image_size,
                           c->image.image_size);
    if ((b->input_ids || b->input_ids_masked) &&
        (b->T <= 0 || b->T > c->text.max_position_embeddings))
        return FLAVA_ERROR(FLAVA_ERR_SHAPE,
                           "input_ids have %d positions (1 .. max_position_embeddings %d)", b->T,
                           c->text.max_position_embeddings);
    return FLAVA_OK;
}

flava_status flava_model_forward(flava_ctx *ctx, flava_model *m, const flava_batch *b, int train)
{
    FLAVA_TRY(check_batch(m, b));
    const flava_config *c = &m->cfg;
    const int side = c->image.image_size / c->image.patch_size;
    const int has_text = b->input_ids || b->input_ids_masked;
    FLAVA_TRY(bind(m, b->B, has_text ? b->T : 0, side * side));

    /* The heads this batch feeds (b->heads narrows the enabled set), and
     * which passes run: all that HF runs, or in training what they read. */
    int on[FLAVA_NUM_HEADS], need_masked = 0;
    for (int h = 0; h < FLAVA_NUM_HEADS; h++) {
        on[h] = m->heads.enabled[h] && (!b->heads || (b->heads >> h & 1));
        need_masked |= on[h] && h != FLAVA_HEAD_CONTRASTIVE;
    }
    const int need_unmasked = on[FLAVA_HEAD_CONTRASTIVE];
    const int img = b->pixel_values != NULL;
    const int run_img_u = img && (!train || need_unmasked);
    const int run_txt_u = b->input_ids && (!train || need_unmasked);
    const int run_img_m = img && (!train || need_masked);
    const int run_txt_m = has_text && (!train || need_masked);
    m->img.ran = m->txt.ran = m->mm.ran = m->img_m.ran = m->txt_m.ran = m->mm_m.ran = 0;

    /* each pass its own masks, as each of HF's passes draws its own */
    flava_encoder_acts *passes[] = {&m->img.enc,   &m->img_m.enc, &m->txt.enc,
                                    &m->txt_m.enc, &m->mm.enc,    &m->mm_m.enc};
    for (int k = 0; k < (int)(sizeof passes / sizeof *passes); k++) {
        flava_rng r;
        flava_rng_init(&r, m->dropout_seed, (uint64_t)k);
        passes[k]->train = train;
        passes[k]->dropout_seed = flava_rng_u64(&r);
    }
    if (train && on[FLAVA_HEAD_CONTRASTIVE]) {
        float *s = m->params + m->logit_scale;
        *s = *s < 0 ? 0 : *s > LOGIT_SCALE_MAX ? LOGIT_SCALE_MAX : *s;
    }
    /* The parameters stay fixed until the backward is done (the inference
     * forward, if no backward follows): bf16 matmuls convert each weight
     * once per step, not at every use. */
    FLAVA_TRY(flava_ctx_set_weights(ctx, m->params, (int64_t)m->table.total));
    if (run_img_u || run_img_m) {
        flava_conv2d_dims d = patch_dims(m, b->B);
        FLAVA_TRY(conv2d_forward(ctx, m->patches, b->pixel_values, PAR(m->image_embed.patch_w),
                                 PAR(m->image_embed.patch_b), &d));
    }
    if (run_img_u)
        FLAVA_TRY(image_forward(ctx, m, &m->img, NULL));
    if (run_txt_u)
        FLAVA_TRY(text_forward(ctx, m, &m->txt, b, b->input_ids));
    if (run_img_u && run_txt_u && !c->skip_unmasked_multimodal_encoder)
        FLAVA_TRY(mm_forward(ctx, m, &m->mm, &m->img, &m->txt, b));
    if (run_img_m)
        FLAVA_TRY(image_forward(ctx, m, &m->img_m, b->bool_masked_pos));
    if (run_txt_m)
        FLAVA_TRY(text_forward(ctx, m, &m->txt_m, b,
                               b->input_ids_masked ? b->input_ids_masked : b->input_ids));
    if (m->img_m.ran && m->txt_m.ran)
        FLAVA_TRY(mm_forward(ctx, m, &m->mm_m, &m->img_m, &m->txt_m, b));

    /* MIM targets from the codebook when the batch brings none (HF) */
    m->view = *b;
    if (!b->mim_labels && (m->img_m.ran || m->mm_m.ran) && m->codebook &&
        b->codebook_pixel_values) {
        const int n = 8 * side; /* three 2x2 pools down to the patch grid */
        FLAVA_TRY(flava_codebook_forward(ctx, m->codebook, m->codebook_labels, NULL,
                                         b->codebook_pixel_values, b->B, n, n));
        m->view.mim_labels = m->codebook_labels;
    }

    const int Ci = c->image.enc.hidden_size, Ct = c->text.enc.hidden_size,
              Cm = c->multimodal.enc.hidden_size;
    flava_head_io *io = &m->io;
    memset(io, 0, sizeof *io);
    io->ctx = ctx;
    io->model = m;
    io->batch = &m->view;
    io->params = m->params;
    io->grads = m->grads;
    io->unimodal_on_paired = m->unimodal_on_paired;
    io->image = seq_of(&m->img.enc, m->img.dout, m->img.ran, Ci);
    io->text = seq_of(&m->txt.enc, m->txt.dout, m->txt.ran, Ct);
    io->image_masked = seq_of(&m->img_m.enc, m->img_m.dout, m->img_m.ran, Ci);
    io->text_masked = seq_of(&m->txt_m.enc, m->txt_m.dout, m->txt_m.ran, Ct);
    io->multimodal_masked = seq_of(&m->mm_m.enc, m->mm_m.dout, m->mm_m.ran, Cm);
    if (m->img_m.ran)
        io->pooled[0] = m->img_m.pooled, io->dpooled[0] = m->img_m.dpooled;
    if (m->txt_m.ran)
        io->pooled[1] = m->txt_m.pooled, io->dpooled[1] = m->txt_m.dpooled;
    if (m->mm_m.ran)
        io->pooled[2] = m->mm_m.pooled, io->dpooled[2] = m->mm_m.dpooled;

    /* ITM negatives leave MMM and the contrastive loss (HF's pos_mask) */
    if (on[FLAVA_HEAD_ITM] && b->itm_labels && m->mm_m.ran) {
        int any = 0;
        for (int i = 0; i < b->B; i++)
            any |= (m->pos_mask[i] = b->itm_labels[i] != 0);
        if (!any)
            memset(m->pos_mask, 1, (size_t)b->B);
        io->pos_mask = m->pos_mask;
    }

    m->loss = 0;
    m->has_loss = 0;
    for (int h = 0; h < FLAVA_NUM_HEADS; h++) {
        m->head_ran[h] = 0;
        if (!on[h] || !flava_heads[h]->applies(io))
            continue;
        FLAVA_TRY(flava_heads[h]->forward(&m->head[h], io));
        m->head_ran[h] = 1;
        if (m->head[h].count > 0) {
            m->loss += (float)(m->heads.weight[h] * m->head[h].loss);
            m->has_loss = 1;
        }
    }
    if (!train)
        FLAVA_TRY(flava_ctx_set_weights(ctx, NULL, 0));
    if (!isfinite(m->loss))
        return FLAVA_ERROR(FLAVA_ERR_NUMERIC, "the loss is %g", (double)m->loss);
    return FLAVA_OK;
}

static void add_output(flava_output *o, int *n, const char *name, const float *data, int ndim,
                       int64_t d0, int64_t d1, int64_t d2)
{
    flava_output *e = &o[(*n)++];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->data = data;
    e->ndim = ndim;
    e->shape[0] = d0, e->shape[1] = d1, e->shape[2] = d2;
}

static void add_scalar(flava_output *o, int *n, const char *name, float v)
{
    add_output(o, n, name, NULL, 0, 0, 0, 0);
    o[*n - 1].value = v;
    o[*n - 1].data = &o[*n - 1].value;
}

int flava_model_outputs(flava_model *m, flava_output *out)
{
    int n = 0;
    const flava_encoder_acts *a[5] = {&m->img.enc, &m->txt.enc, &m->mm.enc, &m->img_m.enc,
                                      &m->txt_m.enc};
    const int ran[5] = {m->img.ran, m->txt.ran, m->mm.ran, m->img_m.ran, m->txt_m.ran};
    const int C[5] = {m->cfg.image.enc.hidden_size, m->cfg.text.enc.hidden_size,
                      m->cfg.multimodal.enc.hidden_size, m->cfg.image.enc.hidden_size,
                      m->cfg.text.enc.hidden_size};
    static const char *const names[5] = {"image_embeddings", "text_embeddings",
                                         "multimodal_embeddings", "image_masked_embeddings",
                                         "text_masked_embeddings"};
    for (int k = 0; k < 5; k++)
        if (ran[k])
            add_output(out, &n, names[k], a[k]->out, 3, a[k]->B, a[k]->T, C[k]);
    if (m->mm_m.ran) {
        /* HF keeps the positive pairs only once ITM has filtered them */
        const int S = mm_seq(m), Cm = m->cfg.multimodal.enc.hidden_size;
        int rows = 0;
        for (int i = 0; i < m->B; i++) {
            if (m->io.pos_mask && !m->io.pos_mask[i])
                continue;
            memcpy(m->mm_m.out_pos + (size_t)rows * S * Cm, m->mm_m.enc.out + (size_t)i * S * Cm,
                   (size_t)S * Cm * sizeof(float));
            rows++;
        }
        add_output(out, &n, "multimodal_masked_embeddings", m->mm_m.out_pos, 3, rows, S, Cm);
    }
    for (int h = 0; h < FLAVA_NUM_HEADS; h++) {
        if (!m->head_ran[h])
            continue;
        const flava_head_state *st = &m->head[h];
        const flava_head_ops *ops = flava_heads[h];
        add_output(out, &n, ops->logits_name, st->logits, 2, st->nrows, st->ncols, 0);
        if (ops->logits2_name)
            add_output(out, &n, ops->logits2_name, st->logits2, 2, st->nrows, st->ncols, 0);
        if (st->count > 0) {
            char name[64];
            snprintf(name, sizeof name, "loss_info.%s", ops->name);
            add_scalar(out, &n, name, (float)(m->heads.weight[h] * st->loss));
        }
    }
    if (m->has_loss)
        add_scalar(out, &n, "loss", m->loss);
    return n;
}

static void zero_pass_grads(float *dout, float *dlast, float *dpooled, size_t n, size_t nb)
{
    memset(dout, 0, n * sizeof *dout);
    memset(dlast, 0, n * sizeof *dlast);
    memset(dpooled, 0, nb * sizeof *dpooled);
}

flava_status flava_model_backward(flava_ctx *ctx, flava_model *m, const flava_batch *b)
{
    if (!m->grads)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "backward without gradients (flava_model_alloc_grads)");
    const int B = m->B, T = m->T, Si = image_seq(m), Sm = mm_seq(m);
    const size_t Ci = m->cfg.image.enc.hidden_size, Ct = m->cfg.text.enc.hidden_size,
                 Cm = m->cfg.multimodal.enc.hidden_size;
    flava_image_pass *ip[2] = {&m->img, &m->img_m};
    flava_text_pass *tp[2] = {&m->txt, &m->txt_m};
    for (int k = 0; k < 2; k++) {
        if (ip[k]->ran)
            zero_pass_grads(ip[k]->dout, ip[k]->dlast, ip[k]->dpooled, (size_t)B * Si * Ci,
                            B * Ci);
        if (tp[k]->ran)
            zero_pass_grads(tp[k]->dout, tp[k]->dlast, tp[k]->dpooled, (size_t)B * T * Ct,
                            B * Ct);
    }
    if (m->mm_m.ran) {
        memset(m->mm_m.dout, 0, (size_t)B * Sm * Cm * sizeof(float));
        memset(m->mm_m.dpooled, 0, B * Cm * sizeof(float));
    }
    int use_pooled = 0; /* fine-tuning heads read the pooled outputs */
    for (int h = 0; h < FLAVA_NUM_HEADS; h++) {
        if (!m->head_ran[h] || m->head[h].count == 0)
            continue;
        FLAVA_TRY(flava_heads[h]->backward(&m->head[h], &m->io, (float)m->heads.weight[h]));
        use_pooled |= h == FLAVA_HEAD_VQA || h == FLAVA_HEAD_CLASSIFY;
    }
    if (m->mm_m.ran)
        FLAVA_TRY(mm_backward(ctx, m, &m->mm_m, &m->img_m, &m->txt_m, use_pooled));
    if (m->img.ran || m->img_m.ran)
        memset(m->dpatches, 0, (size_t)B * m->P * Ci * sizeof(float));
    for (int k = 0; k < 2; k++) {
        if (ip[k]->ran)
            FLAVA_TRY(image_backward(ctx, m, ip[k], k ? b->bool_masked_pos : NULL,
                                     k && use_pooled));
        if (tp[k]->ran)
            FLAVA_TRY(text_backward(ctx, m, tp[k], b, k && use_pooled));
    }
    if (m->img.ran || m->img_m.ran) { /* one convolution backward for both passes */
        flava_conv2d_dims d = patch_dims(m, B);
        FLAVA_TRY(conv2d_backward(ctx, NULL, GRD(m->image_embed.patch_w),
                                  GRD(m->image_embed.patch_b), m->dpatches, b->pixel_values,
                                  PAR(m->image_embed.patch_w), &d));
    }
    return flava_ctx_set_weights(ctx, NULL, 0); /* the optimizer step comes next */
}

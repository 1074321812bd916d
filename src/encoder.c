/* encoder.c - the transformer encoder stack, forward and backward. */
#include "encoder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

const flava_encoder_names flava_encoder_names_hf_vit = {
    .q = "%s.encoder.layer.%d.attention.attention.query",
    .k = "%s.encoder.layer.%d.attention.attention.key",
    .v = "%s.encoder.layer.%d.attention.attention.value",
    .proj = "%s.encoder.layer.%d.attention.output.dense",
    .ln1 = "%s.encoder.layer.%d.layernorm_before",
    .ln2 = "%s.encoder.layer.%d.layernorm_after",
    .fc1 = "%s.encoder.layer.%d.intermediate.dense",
    .fc2 = "%s.encoder.layer.%d.output.dense",
    .final_ln = "%s.layernorm",
};

flava_status flava_activation_parse(flava_activation *out, const char *name)
{
    if (!strcmp(name, "gelu")) {
        *out = FLAVA_ACT_GELU;
        return FLAVA_OK;
    }
    if (!strcmp(name, "relu")) {
        *out = FLAVA_ACT_RELU;
        return FLAVA_OK;
    }
    if (!strcmp(name, "quick_gelu")) {
        *out = FLAVA_ACT_QUICK_GELU;
        return FLAVA_OK;
    }
    return FLAVA_ERROR(FLAVA_ERR_CONFIG,
                       "hidden_act '%s' is not supported (gelu, relu, quick_gelu)", name);
}

/* name = format(prefix, layer) + suffix */
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#endif
static flava_status tensor_name(char *buf, size_t n, const char *fmt, const char *prefix,
                                int layer, const char *suffix)
{
    char stem[FLAVA_PARAM_NAME_MAX];
    int k = layer < 0 ? snprintf(stem, sizeof stem, fmt, prefix)
                      : snprintf(stem, sizeof stem, fmt, prefix, layer);
    if (k < 0 || (size_t)k >= sizeof stem || (size_t)snprintf(buf, n, "%s%s", stem, suffix) >= n)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "parameter name from '%s' with prefix '%s' too long",
                           fmt, prefix);
    return FLAVA_OK;
}
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

/* Declares STEM.weight [out, in] and STEM.bias [out] (if bias). */
static flava_status declare_linear(flava_param_table *t, size_t *w, size_t *b, const char *fmt,
                                   const char *prefix, int layer, int out, int in, int bias)
{
    char name[FLAVA_PARAM_NAME_MAX];
    FLAVA_TRY(tensor_name(name, sizeof name, fmt, prefix, layer, ".weight"));
    FLAVA_TRY(flava_params_add2(t, w, name, 0, out, in));
    *b = FLAVA_NO_PARAM;
    if (bias) {
        FLAVA_TRY(tensor_name(name, sizeof name, fmt, prefix, layer, ".bias"));
        FLAVA_TRY(flava_params_add1(t, b, name, 1, out));
    }
    return FLAVA_OK;
}

static flava_status declare_layernorm(flava_param_table *t, size_t *w, size_t *b,
                                      const char *fmt, const char *prefix, int layer, int C)
{
    char name[FLAVA_PARAM_NAME_MAX];
    FLAVA_TRY(tensor_name(name, sizeof name, fmt, prefix, layer, ".weight"));
    FLAVA_TRY(flava_params_add1(t, w, name, 1, C));
    FLAVA_TRY(tensor_name(name, sizeof name, fmt, prefix, layer, ".bias"));
    return flava_params_add1(t, b, name, 1, C);
}

flava_status flava_encoder_declare(flava_encoder *e, flava_param_table *t,
                                   const flava_encoder_spec *spec,
                                   const flava_encoder_names *names, const char *prefix)
{
    memset(e, 0, sizeof *e);
    const int C = spec->hidden, FF = spec->intermediate;
    if (spec->layers < 0 || C <= 0 || FF <= 0 || spec->heads <= 0 || C % spec->heads)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG,
                           "%s: hidden_size %d must be a positive multiple of "
                           "num_attention_heads %d (intermediate_size %d, layers %d)",
                           prefix, C, spec->heads, FF, spec->layers);
    e->spec = *spec;
    e->layer = calloc(spec->layers ? (size_t)spec->layers : 1, sizeof *e->layer);
    if (!e->layer)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s: cannot allocate %d layer records", prefix,
                           spec->layers);
    for (int l = 0; l < spec->layers; l++) {
        flava_block_offsets *o = &e->layer[l];
        size_t kw, vw, kb, vb;
        char name[FLAVA_PARAM_NAME_MAX];
        /* q, k, v weights adjacent (one [3C,C] matrix), then their biases
         * adjacent (one [3C] vector). */
        FLAVA_TRY(tensor_name(name, sizeof name, names->q, prefix, l, ".weight"));
        FLAVA_TRY(flava_params_add2(t, &o->qkv_w, name, 0, C, C));
        FLAVA_TRY(tensor_name(name, sizeof name, names->k, prefix, l, ".weight"));
        FLAVA_TRY(flava_params_add2(t, &kw, name, 0, C, C));
        FLAVA_TRY(tensor_name(name, sizeof name, names->v, prefix, l, ".weight"));
        FLAVA_TRY(flava_params_add2(t, &vw, name, 0, C, C));
        o->qkv_b = FLAVA_NO_PARAM;
        if (spec->qkv_bias) {
            FLAVA_TRY(tensor_name(name, sizeof name, names->q, prefix, l, ".bias"));
            FLAVA_TRY(flava_params_add1(t, &o->qkv_b, name, 1, C));
            FLAVA_TRY(tensor_name(name, sizeof name, names->k, prefix, l, ".bias"));
            FLAVA_TRY(flava_params_add1(t, &kb, name, 1, C));
            FLAVA_TRY(tensor_name(name, sizeof name, names->v, prefix, l, ".bias"));
            FLAVA_TRY(flava_params_add1(t, &vb, name, 1, C));
        }
        FLAVA_TRY(declare_linear(t, &o->proj_w, &o->proj_b, names->proj, prefix, l, C, C, 1));
        FLAVA_TRY(declare_linear(t, &o->fc1_w, &o->fc1_b, names->fc1, prefix, l, FF, C, 1));
        FLAVA_TRY(declare_linear(t, &o->fc2_w, &o->fc2_b, names->fc2, prefix, l, C, FF, 1));
        FLAVA_TRY(declare_layernorm(t, &o->ln1_w, &o->ln1_b, names->ln1, prefix, l, C));
        FLAVA_TRY(declare_layernorm(t, &o->ln2_w, &o->ln2_b, names->ln2, prefix, l, C));
    }
    e->final_ln_w = e->final_ln_b = FLAVA_NO_PARAM;
    if (spec->final_ln)
        FLAVA_TRY(declare_layernorm(t, &e->final_ln_w, &e->final_ln_b, names->final_ln, prefix,
                                    -1, C));
    return FLAVA_OK;
}

void flava_encoder_free(flava_encoder *e)
{
    free(e->layer);
    e->layer = NULL;
}

size_t flava_encoder_acts_floats(const flava_encoder_spec *s, int B, int T)
{
    const size_t N = (size_t)B * T, C = s->hidden, FF = s->intermediate, L = s->layers;
    const size_t att = (size_t)B * s->heads * T * T;
    size_t per_layer = 5 * N * C + 3 * N * C + att + 4 * N + 2 * N * FF;
    if (!s->pre_ln)
        per_layer += N * C;
    return (L + 1) * N * C + L * per_layer + N * C + 2 * N;
}

void flava_encoder_acts_bind(flava_encoder_acts *a, const flava_encoder_spec *s, int B, int T,
                             float *mem)
{
    const size_t N = (size_t)B * T, C = s->hidden, FF = s->intermediate, L = s->layers;
    const size_t att = (size_t)B * s->heads * T * T;
    const float *mask = a->key_mask;
    memset(a, 0, sizeof *a);
    a->B = B;
    a->T = T;
    a->key_mask = mask;
    float *p = mem;
#define TAKE(field, n) (a->field = p, p += (n))
    TAKE(x, (L + 1) * N * C);
    TAKE(ln1, L * N * C);
    TAKE(ln1_mean, L * N);
    TAKE(ln1_var, L * N);
    TAKE(qkv, L * 3 * N * C);
    TAKE(att, L * att);
    TAKE(attn, L * N * C);
    TAKE(r1, L * N * C);
    TAKE(ln2, L * N * C);
    TAKE(ln2_mean, L * N);
    TAKE(ln2_var, L * N);
    TAKE(fc1, L * N * FF);
    TAKE(fc1_act, L * N * FF);
    if (!s->pre_ln)
        TAKE(r2, L * N * C);
    TAKE(out, N * C);
    TAKE(out_mean, N);
    TAKE(out_var, N);
#undef TAKE
}

float *flava_encoder_last(const flava_encoder_acts *a, const flava_encoder_spec *s)
{
    return a->x + (size_t)s->layers * a->B * a->T * s->hidden;
}

size_t flava_encoder_scratch_floats(const flava_encoder_spec *s, int B, int T)
{
    const size_t N = (size_t)B * T, C = s->hidden;
    size_t wide = 3 * C > (size_t)s->intermediate ? 3 * C : (size_t)s->intermediate;
    return N * C + 2 * N * wide;
}

flava_status flava_act_forward(flava_ctx *ctx, flava_activation act, float *out,
                               const float *inp, int64_t n)
{
    switch (act) {
    case FLAVA_ACT_GELU:
        return gelu_forward(ctx, out, inp, n);
    case FLAVA_ACT_QUICK_GELU:
        return quick_gelu_forward(ctx, out, inp, n);
    case FLAVA_ACT_RELU:
        break;
    }
    return relu_forward(ctx, out, inp, n);
}

flava_status flava_act_backward(flava_ctx *ctx, flava_activation act, float *dinp,
                                const float *dout, const float *inp, int64_t n)
{
    switch (act) {
    case FLAVA_ACT_GELU:
        return gelu_backward(ctx, dinp, dout, inp, n);
    case FLAVA_ACT_QUICK_GELU:
        return quick_gelu_backward(ctx, dinp, dout, inp, n);
    case FLAVA_ACT_RELU:
        break;
    }
    return relu_backward(ctx, dinp, dout, inp, n);
}

static void add_inplace(float *y, const float *x, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        y[i] += x[i];
}

/* The dropout of one site of a pass (p 0 outside training). */
enum { DROP_INPUT, DROP_ATT, DROP_PROJ, DROP_MLP };
static flava_dropout site(const flava_encoder_spec *s, const flava_encoder_acts *a, int layer,
                          int kind)
{
    flava_dropout d = {.seed = a->dropout_seed};
    if (!a->train)
        return d;
    d.p = kind == DROP_ATT ? s->attention_dropout
          : kind == DROP_INPUT && !s->input_dropout ? 0.0f
                                                     : s->hidden_dropout;
    d.stream = kind == DROP_INPUT ? 0 : 3 * (uint64_t)layer + (uint64_t)kind;
    return d;
}

#define PP(off) flava_param_ptr((float *)params, (off))
#define GG(off) flava_param_ptr(grads, (off))

/* out = residual + drop(fc2(act(fc1(inp)))), keeping fc1 and act for
 * backward: the MLP of both the pre-LN and the post-LN block. */
static flava_status mlp_forward(flava_ctx *ctx, float *out, float *fc1, float *act,
                                const float *inp, const float *residual,
                                const flava_encoder_spec *s, const flava_block_offsets *o,
                                const float *params, int N, const flava_dropout *drop)
{
    const int C = s->hidden, FF = s->intermediate;
    FLAVA_TRY(linear_forward(ctx, fc1, inp, PP(o->fc1_w), PP(o->fc1_b), N, C, FF));
    FLAVA_TRY(flava_act_forward(ctx, s->act, act, fc1, (int64_t)N * FF));
    FLAVA_TRY(linear_forward(ctx, out, act, PP(o->fc2_w), PP(o->fc2_b), N, FF, C));
    FLAVA_TRY(dropout_forward(out, out, (int64_t)N * C, drop));
    add_inplace(out, residual, (size_t)N * C);
    return FLAVA_OK;
}

/* dfc1: from dout, the gradient of the MLP branch's output (after its
 * dropout), the gradient of fc1's output (N*FF, overwritten), fc2's
 * parameter gradients accumulated. tmp holds N*FF floats; dfc1 may be
 * dout's buffer (dout is read first). */
static flava_status mlp_backward_to_fc1(flava_ctx *ctx, float *dfc1, float *tmp, float *grads,
                                        const float *dout, const float *fc1, const float *act,
                                        const flava_encoder_spec *s,
                                        const flava_block_offsets *o, const float *params, int N,
                                        const flava_dropout *drop)
{
    const int C = s->hidden, FF = s->intermediate;
    const size_t NF = (size_t)N * FF;
    if (drop->p > 0) { /* the masked gradient in dfc1's buffer, which is N*FF >= N*C */
        FLAVA_TRY(dropout_forward(dfc1, dout, (int64_t)N * C, drop));
        dout = dfc1;
    }
    memset(tmp, 0, NF * sizeof *tmp);
    FLAVA_TRY(linear_backward(ctx, tmp, GG(o->fc2_w), GG(o->fc2_b), dout, act, PP(o->fc2_w), N,
                              FF, C));
    memset(dfc1, 0, NF * sizeof *dfc1);
    return flava_act_backward(ctx, s->act, dfc1, tmp, fc1, (int64_t)NF);
}

/* dqkv: from dout, the gradient of the attention branch's output (after
 * its dropout), the gradient of qkv (3*N*C, overwritten), the
 * projection's parameter gradients accumulated. tmp holds N*C floats; dqkv
 * may be dout's buffer. drop[0] is the probabilities' dropout, drop[1] the
 * projection output's. */
static flava_status attention_backward_to_qkv(flava_ctx *ctx, float *dqkv, float *tmp,
                                              float *grads, const float *dout, const float *qkv,
                                              const float *att, const float *attn, int B, int T,
                                              const flava_encoder_spec *s,
                                              const flava_block_offsets *o, const float *params,
                                              const flava_dropout drop[2])
{
    const int N = B * T, C = s->hidden;
    if (drop[1].p > 0) { /* the masked gradient in dqkv's buffer, which is 3*N*C */
        FLAVA_TRY(dropout_forward(dqkv, dout, (int64_t)N * C, &drop[1]));
        dout = dqkv;
    }
    memset(tmp, 0, (size_t)N * C * sizeof *tmp);
    FLAVA_TRY(linear_backward(ctx, tmp, GG(o->proj_w), GG(o->proj_b), dout, attn, PP(o->proj_w),
                              N, C, C));
    memset(dqkv, 0, 3 * (size_t)N * C * sizeof *dqkv);
    return attention_backward(ctx, dqkv, tmp, qkv, att, B, T, C, s->heads, &drop[0]);
}

flava_status flava_encoder_forward(flava_ctx *ctx, const flava_encoder *e, const float *params,
                                   flava_encoder_acts *a)
{
    const flava_encoder_spec *s = &e->spec;
    const int B = a->B, T = a->T, N = B * T, C = s->hidden, FF = s->intermediate, NH = s->heads;
    const size_t NC = (size_t)N * C, NF = (size_t)N * FF, att = (size_t)B * NH * T * T;
    const flava_dropout in_drop = site(s, a, 0, DROP_INPUT);
    FLAVA_TRY(dropout_forward(a->x, a->x, (int64_t)NC, &in_drop));
    for (int l = 0; l < s->layers; l++) {
        const flava_block_offsets *o = &e->layer[l];
        const flava_dropout att_drop = site(s, a, l, DROP_ATT), proj_drop = site(s, a, l, DROP_PROJ),
                            mlp_drop = site(s, a, l, DROP_MLP);
        float *x = a->x + l * NC, *y = a->x + (l + 1) * NC;
        float *ln1 = a->ln1 + l * NC, *m1 = a->ln1_mean + (size_t)l * N,
              *v1s = a->ln1_var + (size_t)l * N;
        float *qkv = a->qkv + 3 * l * NC, *att_l = a->att + l * att, *attn = a->attn + l * NC;
        float *r1 = a->r1 + l * NC, *ln2 = a->ln2 + l * NC, *m2 = a->ln2_mean + (size_t)l * N,
              *v2s = a->ln2_var + (size_t)l * N;
        float *fc1 = a->fc1 + l * NF, *act = a->fc1_act + l * NF;
        if (s->pre_ln) {
            FLAVA_TRY(layernorm_forward(ctx, ln1, m1, v1s, x, PP(o->ln1_w), PP(o->ln1_b), N, C,
                                        s->eps));
            FLAVA_TRY(linear_forward(ctx, qkv, ln1, PP(o->qkv_w), PP(o->qkv_b), N, C, 3 * C));
        } else {
            FLAVA_TRY(linear_forward(ctx, qkv, x, PP(o->qkv_w), PP(o->qkv_b), N, C, 3 * C));
        }
        FLAVA_TRY(attention_forward(ctx, attn, att_l, qkv, a->key_mask, s->causal, B, T, C, NH,
                                    &att_drop));
        FLAVA_TRY(linear_forward(ctx, r1, attn, PP(o->proj_w), PP(o->proj_b), N, C, C));
        FLAVA_TRY(dropout_forward(r1, r1, (int64_t)NC, &proj_drop));
        add_inplace(r1, x, NC);
        if (s->pre_ln) {
            FLAVA_TRY(layernorm_forward(ctx, ln2, m2, v2s, r1, PP(o->ln2_w), PP(o->ln2_b), N, C,
                                        s->eps));
            FLAVA_TRY(mlp_forward(ctx, y, fc1, act, ln2, r1, s, o, params, N, &mlp_drop));
        } else {
            float *r2 = a->r2 + l * NC;
            FLAVA_TRY(layernorm_forward(ctx, ln1, m1, v1s, r1, PP(o->ln1_w), PP(o->ln1_b), N, C,
                                        s->eps));
            FLAVA_TRY(mlp_forward(ctx, r2, fc1, act, ln1, ln1, s, o, params, N, &mlp_drop));
            FLAVA_TRY(layernorm_forward(ctx, y, m2, v2s, r2, PP(o->ln2_w), PP(o->ln2_b), N, C,
                                        s->eps));
        }
    }
    const float *last = a->x + (size_t)s->layers * NC;
    if (s->final_ln)
        return layernorm_forward(ctx, a->out, a->out_mean, a->out_var, last,
                                 PP(e->final_ln_w), PP(e->final_ln_b), N, C, s->eps);
    memcpy(a->out, last, NC * sizeof *a->out);
    return FLAVA_OK;
}

flava_status flava_encoder_backward(flava_ctx *ctx, float *dx0, float *grads,
                                    const flava_encoder *e, const float *params,
                                    const flava_encoder_acts *a, const float *dout,
                                    const float *dlast, float *scratch)
{
    const flava_encoder_spec *s = &e->spec;
    const int B = a->B, T = a->T, N = B * T, C = s->hidden, FF = s->intermediate, NH = s->heads;
    const size_t NC = (size_t)N * C, NF = (size_t)N * FF, att = (size_t)B * NH * T * T;
    const size_t wide = (size_t)N * (3 * C > FF ? 3 * C : FF);
    float *dx = scratch, *d1 = scratch + NC, *d2 = d1 + wide;

    /* dx = gradient of x[L] */
    memset(dx, 0, NC * sizeof *dx);
    const float *last = a->x + (size_t)s->layers * NC;
    if (dout && s->final_ln)
        FLAVA_TRY(layernorm_backward(ctx, dx, GG(e->final_ln_w), GG(e->final_ln_b), dout, last,
                                     PP(e->final_ln_w), a->out_mean, a->out_var, N, C, s->eps));
    else if (dout)
        add_inplace(dx, dout, NC);
    if (dlast)
        add_inplace(dx, dlast, NC);

    for (int l = s->layers - 1; l >= 0; l--) {
        const flava_block_offsets *o = &e->layer[l];
        const flava_dropout att_drop[2] = {site(s, a, l, DROP_ATT), site(s, a, l, DROP_PROJ)},
                            mlp_drop = site(s, a, l, DROP_MLP);
        const float *x = a->x + l * NC;
        const float *ln1 = a->ln1 + l * NC, *m1 = a->ln1_mean + (size_t)l * N,
                    *v1s = a->ln1_var + (size_t)l * N;
        const float *qkv = a->qkv + 3 * l * NC, *att_l = a->att + l * att,
                    *attn = a->attn + l * NC;
        const float *r1 = a->r1 + l * NC, *ln2 = a->ln2 + l * NC,
                    *m2 = a->ln2_mean + (size_t)l * N, *v2s = a->ln2_var + (size_t)l * N;
        const float *fc1 = a->fc1 + l * NF, *act = a->fc1_act + l * NF;
        if (s->pre_ln) {
            /* y = r1 + fc2(act(fc1(LN2(r1)))) */
            FLAVA_TRY(mlp_backward_to_fc1(ctx, d2, d1, grads, dx, fc1, act, s, o, params, N,
                                          &mlp_drop));
            memset(d1, 0, NC * sizeof *d1);
            FLAVA_TRY(linear_backward(ctx, d1, GG(o->fc1_w), GG(o->fc1_b), d2, ln2,
                                      PP(o->fc1_w), N, C, FF));
            FLAVA_TRY(layernorm_backward(ctx, dx, GG(o->ln2_w), GG(o->ln2_b), d1, r1,
                                         PP(o->ln2_w), m2, v2s, N, C, s->eps));
            /* r1 = x + proj(attention(qkv(LN1(x)))) */
            FLAVA_TRY(attention_backward_to_qkv(ctx, d2, d1, grads, dx, qkv, att_l, attn, B, T, s,
                                                o, params, att_drop));
            memset(d1, 0, NC * sizeof *d1);
            FLAVA_TRY(linear_backward(ctx, d1, GG(o->qkv_w), GG(o->qkv_b), d2, ln1,
                                      PP(o->qkv_w), N, C, 3 * C));
            FLAVA_TRY(layernorm_backward(ctx, dx, GG(o->ln1_w), GG(o->ln1_b), d1, x,
                                         PP(o->ln1_w), m1, v1s, N, C, s->eps));
        } else {
            const float *r2 = a->r2 + l * NC;
            /* y = LN2(r2), r2 = m + fc2(act(fc1(m))), m = LN1(r1) */
            memset(d1, 0, NC * sizeof *d1);
            FLAVA_TRY(layernorm_backward(ctx, d1, GG(o->ln2_w), GG(o->ln2_b), dx, r2,
                                         PP(o->ln2_w), m2, v2s, N, C, s->eps));
            memcpy(dx, d1, NC * sizeof *dx); /* dm from the residual */
            FLAVA_TRY(mlp_backward_to_fc1(ctx, d1, d2, grads, d1, fc1, act, s, o, params, N,
                                          &mlp_drop));
            FLAVA_TRY(linear_backward(ctx, dx, GG(o->fc1_w), GG(o->fc1_b), d1, ln1,
                                      PP(o->fc1_w), N, C, FF));
            memset(d1, 0, NC * sizeof *d1);
            FLAVA_TRY(layernorm_backward(ctx, d1, GG(o->ln1_w), GG(o->ln1_b), dx, r1,
                                         PP(o->ln1_w), m1, v1s, N, C, s->eps));
            memcpy(dx, d1, NC * sizeof *dx); /* dx from the residual */
            FLAVA_TRY(attention_backward_to_qkv(ctx, d1, d2, grads, d1, qkv, att_l, attn, B, T, s,
                                                o, params, att_drop));
            FLAVA_TRY(linear_backward(ctx, dx, GG(o->qkv_w), GG(o->qkv_b), d1, x,
                                      PP(o->qkv_w), N, C, 3 * C));
        }
    }
    if (dx0) {
        const flava_dropout in_drop = site(s, a, 0, DROP_INPUT);
        if (in_drop.p > 0)
            return dropout_backward(dx0, dx, (int64_t)NC, &in_drop);
        add_inplace(dx0, dx, NC);
    }
    return FLAVA_OK;
}

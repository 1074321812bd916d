/* efficientnet.c - ALIGN's EfficientNet tower: configuration, parameters,
 * forward and backward. */
#include "efficientnet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "rng.h"

void flava_effnet_config_default(flava_effnet_config *c)
{
    static const int k[] = {3, 3, 5, 3, 5, 5, 3}, in[] = {32, 16, 24, 40, 80, 112, 192},
                     out[] = {16, 24, 40, 80, 112, 192, 320}, s[] = {1, 2, 2, 2, 1, 2, 1},
                     rep[] = {1, 2, 2, 3, 3, 4, 1}, ex[] = {1, 6, 6, 6, 6, 6, 6};
    memset(c, 0, sizeof *c);
    c->num_channels = 3;
    c->image_size = 600;
    c->width_coefficient = 2.0;
    c->depth_coefficient = 3.1;
    c->depth_divisor = 8;
    c->nstages = 7;
    for (int i = 0; i < 7; i++) {
        c->kernel_sizes[i] = k[i];
        c->in_channels[i] = in[i];
        c->out_channels[i] = out[i];
        c->strides[i] = s[i];
        c->num_block_repeats[i] = rep[i];
        c->expand_ratios[i] = ex[i];
    }
    c->squeeze_expansion_ratio = 0.25;
    snprintf(c->hidden_act, sizeof c->hidden_act, "swish");
    c->hidden_dim = 2560;
    snprintf(c->pooling_type, sizeof c->pooling_type, "mean");
    c->initializer_range = 0.02;
    c->batch_norm_eps = 1e-3;
    c->batch_norm_momentum = 0.99;
    c->drop_connect_rate = 0.2;
}

int flava_effnet_round_filters(const flava_effnet_config *c, int channels)
{
    const int d = c->depth_divisor;
    double x = channels * c->width_coefficient;
    int r = (int)(x + d / 2.0) / d * d;
    if (r < d)
        r = d;
    if (r < 0.9 * x)
        r += d;
    return r;
}

static int stage_repeats(const flava_effnet_config *c, int i)
{
    return (int)ceil(c->depth_coefficient * c->num_block_repeats[i]);
}

flava_status flava_effnet_config_validate(const flava_effnet_config *c)
{
    if (strcmp(c->hidden_act, "swish") && strcmp(c->hidden_act, "silu"))
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "vision_config.hidden_act '%s' is not supported "
                                             "(swish, silu)", c->hidden_act);
    if (strcmp(c->pooling_type, "mean"))
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "vision_config.pooling_type '%s' is not supported "
                                             "(mean)", c->pooling_type);
    if (c->nstages < 1 || c->nstages > FLAVA_EFFNET_MAX_STAGES)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "vision_config: %d stages, expected 1..%d",
                           c->nstages, FLAVA_EFFNET_MAX_STAGES);
    if (c->num_channels < 1 || c->depth_divisor < 1 || c->hidden_dim < 1 ||
        !(c->width_coefficient > 0) || !(c->depth_coefficient > 0) ||
        !(c->batch_norm_eps > 0) || !(c->squeeze_expansion_ratio > 0) ||
        !(c->drop_connect_rate >= 0 && c->drop_connect_rate < 1) ||
        !(c->batch_norm_momentum >= 0 && c->batch_norm_momentum <= 1))
        return FLAVA_ERROR(FLAVA_ERR_CONFIG,
                           "vision_config: num_channels, depth_divisor, hidden_dim, "
                           "width/depth coefficients, batch_norm_eps and squeeze_expansion_ratio "
                           "must be positive, drop_connect_rate in [0, 1), batch_norm_momentum "
                           "in [0, 1]");
    int blocks = 0;
    for (int i = 0; i < c->nstages; i++) {
        if (c->kernel_sizes[i] < 1 || c->kernel_sizes[i] % 2 == 0)
            return FLAVA_ERROR(FLAVA_ERR_CONFIG, "vision_config.kernel_sizes[%d] = %d: odd "
                                                 "kernels only", i, c->kernel_sizes[i]);
        if (c->strides[i] != 1 && c->strides[i] != 2)
            return FLAVA_ERROR(FLAVA_ERR_CONFIG, "vision_config.strides[%d] = %d: 1 or 2 only", i,
                               c->strides[i]);
        if (c->in_channels[i] < 1 || c->out_channels[i] < 1 || c->expand_ratios[i] < 1 ||
            c->num_block_repeats[i] < 1)
            return FLAVA_ERROR(FLAVA_ERR_CONFIG, "vision_config: stage %d has a channel count, "
                                                 "expand ratio or repeat count below 1", i);
        blocks += stage_repeats(c, i);
    }
    if (blocks > FLAVA_EFFNET_MAX_BLOCKS)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "vision_config: %d blocks, at most %d", blocks,
                           FLAVA_EFFNET_MAX_BLOCKS);
    return FLAVA_OK;
}

/* ---- parameters ---- */

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#endif
static flava_status pname(char *buf, const char *prefix, int block, const char *fmt)
{
    char stem[FLAVA_PARAM_NAME_MAX];
    int n = snprintf(stem, sizeof stem, fmt, block);
    if (n < 0 || (size_t)n >= sizeof stem ||
        (size_t)snprintf(buf, FLAVA_PARAM_NAME_MAX, "%s.%s", prefix, stem) >= FLAVA_PARAM_NAME_MAX)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "parameter name under '%s' too long", prefix);
    return FLAVA_OK;
}
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

static flava_status declare_conv(flava_param_table *t, size_t *w, size_t *b, const char *prefix,
                                 int block, const char *stem, int oc, int ic, int k)
{
    char name[FLAVA_PARAM_NAME_MAX], full[FLAVA_PARAM_NAME_MAX + 8];
    FLAVA_TRY(pname(name, prefix, block, stem));
    snprintf(full, sizeof full, "%s.weight", name);
    const int64_t shape[4] = {oc, ic, k, k};
    FLAVA_TRY(flava_params_add(t, w, full, 0, 4, shape));
    if (b) {
        snprintf(full, sizeof full, "%s.bias", name);
        FLAVA_TRY(flava_params_add1(t, b, full, 1, oc));
    }
    return FLAVA_OK;
}

static flava_status declare_bn(flava_effnet *e, flava_effnet_bn *bn, flava_param_table *t,
                               flava_param_table *buf, const char *prefix, int block,
                               const char *stem, int C, double momentum)
{
    char name[FLAVA_PARAM_NAME_MAX], full[FLAVA_PARAM_NAME_MAX + 16];
    FLAVA_TRY(pname(name, prefix, block, stem));
    const struct {
        flava_param_table *t;
        size_t *off;
        const char *suffix;
    } parts[] = {{t, &bn->w, "weight"},
                 {t, &bn->b, "bias"},
                 {buf, &bn->mean, "running_mean"},
                 {buf, &bn->var, "running_var"}};
    for (int i = 0; i < 4; i++) {
        snprintf(full, sizeof full, "%s.%s", name, parts[i].suffix);
        FLAVA_TRY(flava_params_add1(parts[i].t, parts[i].off, full, 1, C));
    }
    bn->C = C;
    bn->momentum = (float)momentum;
    bn->index = e->nbn++;
    return FLAVA_OK;
}

/* The depthwise padding of HF AlignVisionDepthwiseLayer: stride 1 is
 * "same" (k//2 each side); stride 2 pads ZeroPad2d(correct_pad(k, adjust)),
 * i.e. (k//2 - 1) before and k//2 after unless the block is listed in
 * depthwise_padding. */
static void depthwise_pads(flava_effnet_block *b, const flava_effnet_config *c, int index)
{
    int h = b->k / 2, adjust = 1;
    for (int i = 0; i < c->ndepthwise_padding; i++)
        if (c->depthwise_padding[i] == index)
            adjust = 0;
    int before = (b->stride == 2 && adjust) ? h - 1 : h;
    b->pad_top = b->pad_left = before;
    b->pad_bottom = b->pad_right = h;
}

flava_status flava_effnet_declare(flava_effnet *e, flava_param_table *params,
                                  flava_param_table *buffers, const flava_effnet_config *c,
                                  const char *prefix)
{
    memset(e, 0, sizeof *e);
    FLAVA_TRY(flava_effnet_config_validate(c));
    e->cfg = *c;
    int total = 0;
    for (int i = 0; i < c->nstages; i++)
        total += stage_repeats(c, i);
    e->blk = calloc((size_t)total, sizeof *e->blk);
    if (!e->blk)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s: cannot allocate %d block records", prefix, total);
    e->nblocks = total;
    const double mom = c->batch_norm_momentum;
    e->stem_channels = flava_effnet_round_filters(c, 32);
    FLAVA_TRY(declare_conv(params, &e->stem_w, NULL, prefix, 0, "embeddings.convolution",
                           e->stem_channels, c->num_channels, 3));
    FLAVA_TRY(declare_bn(e, &e->stem_bn, params, buffers, prefix, 0, "embeddings.batchnorm",
                         e->stem_channels, mom));
    int n = 0;
    for (int i = 0; i < c->nstages; i++) {
        const int cin = flava_effnet_round_filters(c, c->in_channels[i]);
        const int cout = flava_effnet_round_filters(c, c->out_channels[i]);
        for (int j = 0; j < stage_repeats(c, i); j++, n++) {
            flava_effnet_block *b = &e->blk[n];
            b->in = j == 0 ? cin : cout;
            b->out = cout;
            b->stride = j == 0 ? c->strides[i] : 1;
            b->k = c->kernel_sizes[i];
            b->expand = c->expand_ratios[i] != 1;
            b->exp = b->in * c->expand_ratios[i];
            b->se = (int)(b->in * c->squeeze_expansion_ratio);
            if (b->se < 1)
                b->se = 1;
            b->residual = b->stride == 1 && j > 0; /* HF: stride 1 and not id_skip */
            b->drop = (float)(c->drop_connect_rate * n / total);
            depthwise_pads(b, c, n);
            if (b->expand) {
                FLAVA_TRY(declare_conv(params, &b->expand_w, NULL, prefix, n,
                                       "encoder.blocks.%d.expansion.expand_conv", b->exp, b->in,
                                       1));
                /* HF builds this one BatchNorm2d without the config's
                 * momentum: torch's default 0.1 */
                FLAVA_TRY(declare_bn(e, &b->expand_bn, params, buffers, prefix, n,
                                     "encoder.blocks.%d.expansion.expand_bn", b->exp, 0.1));
            }
            FLAVA_TRY(declare_conv(params, &b->dw_w, NULL, prefix, n,
                                   "encoder.blocks.%d.depthwise_conv.depthwise_conv", b->exp, 1,
                                   b->k));
            FLAVA_TRY(declare_bn(e, &b->dw_bn, params, buffers, prefix, n,
                                 "encoder.blocks.%d.depthwise_conv.depthwise_norm", b->exp, mom));
            FLAVA_TRY(declare_conv(params, &b->se_reduce_w, &b->se_reduce_b, prefix, n,
                                   "encoder.blocks.%d.squeeze_excite.reduce", b->se, b->exp, 1));
            FLAVA_TRY(declare_conv(params, &b->se_expand_w, &b->se_expand_b, prefix, n,
                                   "encoder.blocks.%d.squeeze_excite.expand", b->exp, b->se, 1));
            FLAVA_TRY(declare_conv(params, &b->proj_w, NULL, prefix, n,
                                   "encoder.blocks.%d.projection.project_conv", b->out, b->exp,
                                   1));
            FLAVA_TRY(declare_bn(e, &b->proj_bn, params, buffers, prefix, n,
                                 "encoder.blocks.%d.projection.project_bn", b->out, mom));
        }
    }
    e->out_channels = e->blk[total - 1].out;
    return FLAVA_OK;
}

static void init_bn(const flava_effnet_bn *bn, float *params, float *buffers, int64_t *counters)
{
    for (int c = 0; c < bn->C; c++) {
        params[bn->w + c] = 1.0f;
        params[bn->b + c] = 0.0f;
        buffers[bn->mean + c] = 0.0f;
        buffers[bn->var + c] = 1.0f;
    }
    counters[bn->index] = 0;
}

static void init_normal(float *w, size_t n, flava_rng *r, double std)
{
    for (size_t i = 0; i < n; i++)
        w[i] = (float)(std * flava_rng_normal(r));
}

void flava_effnet_init(const flava_effnet *e, float *params, float *buffers, int64_t *counters,
                       uint64_t seed)
{
    const double std = e->cfg.initializer_range;
    flava_rng r;
    flava_rng_init(&r, seed, 0);
    init_normal(params + e->stem_w, (size_t)e->stem_channels * e->cfg.num_channels * 9, &r, std);
    init_bn(&e->stem_bn, params, buffers, counters);
    for (int n = 0; n < e->nblocks; n++) {
        const flava_effnet_block *b = &e->blk[n];
        /* one stream per block: a block's weights do not depend on the
         * blocks before it */
        flava_rng_init(&r, seed, (uint64_t)n + 1);
        if (b->expand) {
            init_normal(params + b->expand_w, (size_t)b->exp * b->in, &r, std);
            init_bn(&b->expand_bn, params, buffers, counters);
        }
        init_normal(params + b->dw_w, (size_t)b->exp * b->k * b->k, &r, std);
        init_bn(&b->dw_bn, params, buffers, counters);
        init_normal(params + b->se_reduce_w, (size_t)b->se * b->exp, &r, std);
        memset(params + b->se_reduce_b, 0, (size_t)b->se * sizeof(float));
        init_normal(params + b->se_expand_w, (size_t)b->exp * b->se, &r, std);
        memset(params + b->se_expand_b, 0, (size_t)b->exp * sizeof(float));
        init_normal(params + b->proj_w, (size_t)b->out * b->exp, &r, std);
        init_bn(&b->proj_bn, params, buffers, counters);
    }
}

/* ---- activations ---- */

typedef struct bn_acts {
    float *pre, *out, *mean, *var; /* conv output, BN output, batch statistics */
} bn_acts;

typedef struct block_acts {
    int H, W, OH, OW;
    const float *in;
    bn_acts e, d, p;     /* expansion, depthwise, projection */
    float *e_act, *d_act;
    float *pool, *r, *r_act, *x, *s; /* squeeze-excite: [B,exp], [B,se] x2, [B,exp] x2 */
    float *se_out;
    float *out;
} block_acts;

struct flava_effnet_acts {
    int B, H, W, train;
    uint64_t dropout_seed;
    const float *pixels;
    float *mem;
    bn_acts stem;
    float *stem_act;
    block_acts *blk;
    float *g[4];  /* backward scratch, each the largest activation */
    float *gs[6]; /* backward scratch for the squeeze-excite vectors */
};

static int conv_out(int H, int k, int stride, int pad_before, int pad_after)
{
    return (H + pad_before + pad_after - k) / stride + 1;
}

/* Carves the activations for (B, H, W) from mem (NULL: only counts). */
static size_t layout(flava_effnet_acts *a, const flava_effnet *e, float *mem)
{
    const size_t B = (size_t)a->B;
    size_t n = 0, big = 0, small = 0;
#define TAKE(ptr, count) (mem ? (void)((ptr) = mem + n) : (void)0, n += (count))
    int H = conv_out(a->H, 3, 2, 0, 1), W = conv_out(a->W, 3, 2, 0, 1);
    size_t sz = B * e->stem_channels * H * W;
    TAKE(a->stem.pre, sz);
    TAKE(a->stem.out, sz);
    TAKE(a->stem_act, sz);
    TAKE(a->stem.mean, (size_t)e->stem_channels);
    TAKE(a->stem.var, (size_t)e->stem_channels);
    big = sz;
    for (int i = 0; i < e->nblocks; i++) {
        const flava_effnet_block *b = &e->blk[i];
        block_acts *ba = &a->blk[i];
        ba->H = H, ba->W = W;
        ba->OH = conv_out(H, b->k, b->stride, b->pad_top, b->pad_bottom);
        ba->OW = conv_out(W, b->k, b->stride, b->pad_left, b->pad_right);
        size_t ein = B * b->exp * H * W, eout = B * b->exp * ba->OH * ba->OW,
               pout = B * b->out * ba->OH * ba->OW;
        if (b->expand) {
            TAKE(ba->e.pre, ein);
            TAKE(ba->e.out, ein);
            TAKE(ba->e_act, ein);
            TAKE(ba->e.mean, (size_t)b->exp);
            TAKE(ba->e.var, (size_t)b->exp);
        }
        TAKE(ba->d.pre, eout);
        TAKE(ba->d.out, eout);
        TAKE(ba->d_act, eout);
        TAKE(ba->d.mean, (size_t)b->exp);
        TAKE(ba->d.var, (size_t)b->exp);
        TAKE(ba->pool, B * b->exp);
        TAKE(ba->r, B * b->se);
        TAKE(ba->r_act, B * b->se);
        TAKE(ba->x, B * b->exp);
        TAKE(ba->s, B * b->exp);
        TAKE(ba->se_out, eout);
        TAKE(ba->p.pre, pout);
        TAKE(ba->p.out, pout);
        TAKE(ba->p.mean, (size_t)b->out);
        TAKE(ba->p.var, (size_t)b->out);
        TAKE(ba->out, pout);
        big = ein > big ? ein : big;
        big = eout > big ? eout : big;
        big = pout > big ? pout : big;
        small = B * b->exp > small ? B * b->exp : small;
        H = ba->OH, W = ba->OW;
    }
    for (int k = 0; k < 4; k++)
        TAKE(a->g[k], big);
    for (int k = 0; k < 6; k++)
        TAKE(a->gs[k], small);
#undef TAKE
    return n;
}

static void acts_free(flava_effnet_acts *a)
{
    if (!a)
        return;
    flava_free(a->mem);
    flava_free(a->blk);
    flava_free(a);
}

void flava_effnet_free(flava_effnet *e)
{
    acts_free(e->acts);
    free(e->blk);
    memset(e, 0, sizeof *e);
}

static flava_status bind(flava_effnet *e, int B, int H, int W)
{
    flava_effnet_acts *a = e->acts;
    if (a && a->B == B && a->H == H && a->W == W)
        return FLAVA_OK;
    acts_free(a);
    e->acts = NULL;
    FLAVA_TRY(flava_alloc((void **)&a, sizeof *a, "the EfficientNet activations"));
    memset(a, 0, sizeof *a);
    e->acts = a;
    a->B = B, a->H = H, a->W = W;
    FLAVA_TRY(flava_alloc((void **)&a->blk, (size_t)e->nblocks * sizeof *a->blk,
                          "the EfficientNet block activations"));
    size_t n = layout(a, e, NULL);
    FLAVA_TRY(flava_alloc((void **)&a->mem, n * sizeof(float), "the EfficientNet activations"));
    layout(a, e, a->mem);
    return FLAVA_OK;
}

/* ---- forward ---- */

#define PP(off) ((float *)params + (off))

static flava_conv2d_dims conv_dims(int B, int C, int H, int W, int OC, int k, int stride,
                                   int groups, int pt, int pl, int pb, int pr)
{
    flava_conv2d_dims d = {.N = B, .C = C, .H = H, .W = W, .OC = OC, .KH = k, .KW = k,
                           .stride = stride, .groups = groups, .pad_top = pt, .pad_left = pl,
                           .pad_bottom = pb, .pad_right = pr};
    return d;
}

/* conv, then batch norm: training with batch statistics (updating the
 * running ones and the counter), or inference with the running ones */
static flava_status conv_bn_forward(flava_ctx *ctx, bn_acts *o, const float *inp,
                                    const float *params, float *buffers, int64_t *counters,
                                    size_t w, const flava_conv2d_dims *d,
                                    const flava_effnet_bn *bn, float eps, int train)
{
    FLAVA_TRY(conv2d_forward(ctx, o->pre, inp, PP(w), NULL, d));
    const int OH = flava_conv2d_out_h(d), OW = flava_conv2d_out_w(d);
    FLAVA_TRY(batchnorm2d_forward(ctx, o->out, train ? o->mean : NULL, train ? o->var : NULL,
                                  buffers + bn->mean, buffers + bn->var, o->pre, PP(bn->w),
                                  PP(bn->b), d->N, d->OC, OH, OW, eps, bn->momentum));
    if (train)
        counters[bn->index]++;
    return FLAVA_OK;
}

static flava_status se_forward(flava_ctx *ctx, block_acts *ba, const flava_effnet_block *b,
                               const float *params, int B)
{
    FLAVA_TRY(avgpool_global_forward(ctx, ba->pool, ba->d_act, B, b->exp, ba->OH, ba->OW));
    /* 1x1 convs on a 1x1 map are linears on [B, C] */
    FLAVA_TRY(linear_forward(ctx, ba->r, ba->pool, PP(b->se_reduce_w), PP(b->se_reduce_b), B,
                             b->exp, b->se));
    FLAVA_TRY(swish_forward(ctx, ba->r_act, ba->r, (int64_t)B * b->se));
    FLAVA_TRY(linear_forward(ctx, ba->x, ba->r_act, PP(b->se_expand_w), PP(b->se_expand_b), B,
                             b->se, b->exp));
    FLAVA_TRY(sigmoid_forward(ctx, ba->s, ba->x, (int64_t)B * b->exp));
    return channel_scale_forward(ctx, ba->se_out, ba->d_act, ba->s, B, b->exp, ba->OH, ba->OW);
}

/* Block n's residual-branch dropout: stream n of the pass's seed, over the
 * branch output in NCHW order (p 0 outside training or without a drop). */
static flava_dropout block_dropout(const flava_effnet_acts *a, const flava_effnet_block *b, int n)
{
    flava_dropout d = {.seed = a->dropout_seed, .stream = (uint64_t)n};
    if (a->train && b->residual)
        d.p = b->drop;
    return d;
}

flava_status flava_effnet_forward(flava_ctx *ctx, flava_effnet *e, float *pooled,
                                  const float *params, float *buffers, int64_t *counters,
                                  const float *pixels, int B, int H, int W, int train,
                                  uint64_t dropout_seed)
{
    if (B < 1 || H < 3 || W < 3)
        return FLAVA_ERROR(FLAVA_ERR_SHAPE, "pixel_values [%d, %d, %d, %d]: expected a batch of "
                                            "images of at least 3x3", B, e->cfg.num_channels, H,
                           W);
    FLAVA_TRY(bind(e, B, H, W));
    flava_effnet_acts *a = e->acts;
    a->train = train;
    a->dropout_seed = dropout_seed;
    a->pixels = pixels;
    const float eps = (float)e->cfg.batch_norm_eps;
    flava_conv2d_dims d =
        conv_dims(B, e->cfg.num_channels, H, W, e->stem_channels, 3, 2, 1, 0, 0, 1, 1);
    FLAVA_TRY(conv_bn_forward(ctx, &a->stem, pixels, params, buffers, counters, e->stem_w, &d,
                              &e->stem_bn, eps, train));
    const int SH = flava_conv2d_out_h(&d), SW = flava_conv2d_out_w(&d);
    FLAVA_TRY(swish_forward(ctx, a->stem_act, a->stem.out,
                            (int64_t)B * e->stem_channels * SH * SW));
    const float *x = a->stem_act;
    for (int n = 0; n < e->nblocks; n++) {
        const flava_effnet_block *b = &e->blk[n];
        block_acts *ba = &a->blk[n];
        ba->in = x;
        const size_t ein = (size_t)B * b->exp * ba->H * ba->W,
                     eout = (size_t)B * b->exp * ba->OH * ba->OW,
                     pout = (size_t)B * b->out * ba->OH * ba->OW;
        const float *dw_in = x;
        if (b->expand) {
            d = conv_dims(B, b->in, ba->H, ba->W, b->exp, 1, 1, 1, 0, 0, 0, 0);
            FLAVA_TRY(conv_bn_forward(ctx, &ba->e, x, params, buffers, counters, b->expand_w, &d,
                                      &b->expand_bn, eps, train));
            FLAVA_TRY(swish_forward(ctx, ba->e_act, ba->e.out, (int64_t)ein));
            dw_in = ba->e_act;
        }
        d = conv_dims(B, b->exp, ba->H, ba->W, b->exp, b->k, b->stride, b->exp, b->pad_top,
                      b->pad_left, b->pad_bottom, b->pad_right);
        FLAVA_TRY(conv_bn_forward(ctx, &ba->d, dw_in, params, buffers, counters, b->dw_w, &d,
                                  &b->dw_bn, eps, train));
        FLAVA_TRY(swish_forward(ctx, ba->d_act, ba->d.out, (int64_t)eout));
        FLAVA_TRY(se_forward(ctx, ba, b, params, B));
        d = conv_dims(B, b->exp, ba->OH, ba->OW, b->out, 1, 1, 1, 0, 0, 0, 0);
        FLAVA_TRY(conv_bn_forward(ctx, &ba->p, ba->se_out, params, buffers, counters, b->proj_w,
                                  &d, &b->proj_bn, eps, train));
        if (b->residual) {
            /* without dropout (inference) one pass: out = branch + input */
            const flava_dropout drop = block_dropout(a, b, n);
            const float *branch = ba->p.out, *in = x;
            if (drop.p > 0) {
                FLAVA_TRY(dropout_forward(ba->out, branch, (int64_t)pout, &drop));
                branch = ba->out;
            }
            float *out = ba->out;
#pragma omp parallel for schedule(static)
            for (size_t i = 0; i < pout; i++)
                out[i] = branch[i] + in[i];
        } else {
            memcpy(ba->out, ba->p.out, pout * sizeof(float));
        }
        x = ba->out;
    }
    const block_acts *last = &a->blk[e->nblocks - 1];
    /* HF pools with AvgPool2d(hidden_dim, ceil_mode=True): one window, the
     * mean over HxW, only while the map fits in it */
    if (last->OH > e->cfg.hidden_dim || last->OW > e->cfg.hidden_dim)
        return FLAVA_ERROR(FLAVA_ERR_SHAPE, "the last feature map is %dx%d, larger than "
                                            "vision_config.hidden_dim %d (the pooling window): "
                                            "images of %dx%d are too large for this config",
                           last->OH, last->OW, e->cfg.hidden_dim, H, W);
    return avgpool_global_forward(ctx, pooled, x, B, e->out_channels, last->OH, last->OW);
}

/* ---- backward ---- */

#define GG(off) (grads + (off))

/* conv + BN backward: dinp += d(conv input) from dout (the BN output's
 * gradient); tmp holds the conv output's gradient. */
static flava_status conv_bn_backward(flava_ctx *ctx, float *dinp, float *grads, float *tmp,
                                     const float *dout, const bn_acts *o, const float *inp,
                                     const float *params, const float *buffers, size_t w,
                                     const flava_conv2d_dims *d, const flava_effnet_bn *bn,
                                     float eps, int train)
{
    const int OH = flava_conv2d_out_h(d), OW = flava_conv2d_out_w(d);
    memset(tmp, 0, (size_t)d->N * d->OC * OH * OW * sizeof *tmp);
    FLAVA_TRY(batchnorm2d_backward(ctx, tmp, GG(bn->w), GG(bn->b), dout, o->pre, PP(bn->w),
                                   train ? o->mean : buffers + bn->mean,
                                   train ? o->var : buffers + bn->var, d->N, d->OC, OH, OW, eps,
                                   train));
    return conv2d_backward(ctx, dinp, GG(w), NULL, tmp, inp, PP(w), d);
}

static flava_status se_backward(flava_ctx *ctx, float *dact, float *grads,
                                const block_acts *ba, const flava_effnet_block *b,
                                const float *params, const float *dse_out, float *const *gs,
                                int B)
{
    const size_t be = (size_t)B * b->exp, bs = (size_t)B * b->se;
    float *ds = gs[0], *dx = gs[1], *dr_act = gs[2], *dr = gs[3], *dpool = gs[4];
    memset(ds, 0, be * sizeof *ds);
    FLAVA_TRY(channel_scale_backward(dact, ds, dse_out, ba->d_act, ba->s, B, b->exp, ba->OH,
                                     ba->OW));
    memset(dx, 0, be * sizeof *dx);
    FLAVA_TRY(sigmoid_backward(ctx, dx, ds, ba->s, (int64_t)be));
    memset(dr_act, 0, bs * sizeof *dr_act);
    FLAVA_TRY(linear_backward(ctx, dr_act, GG(b->se_expand_w), GG(b->se_expand_b), dx,
                              ba->r_act, PP(b->se_expand_w), B, b->se, b->exp));
    memset(dr, 0, bs * sizeof *dr);
    FLAVA_TRY(swish_backward(ctx, dr, dr_act, ba->r, (int64_t)bs));
    memset(dpool, 0, be * sizeof *dpool);
    FLAVA_TRY(linear_backward(ctx, dpool, GG(b->se_reduce_w), GG(b->se_reduce_b), dr, ba->pool,
                              PP(b->se_reduce_w), B, b->exp, b->se));
    return avgpool_global_backward(ctx, dact, dpool, B, b->exp, ba->OH, ba->OW);
}

flava_status flava_effnet_backward(flava_ctx *ctx, float *grads, const flava_effnet *e,
                                   const float *params, const float *buffers,
                                   const float *dpooled)
{
    const flava_effnet_acts *a = e->acts;
    if (!a || !a->pixels)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "EfficientNet backward without a forward pass");
    const int B = a->B, train = a->train;
    const float eps = (float)e->cfg.batch_norm_eps;
    float *gout = a->g[0], *gin = a->g[1], *t1 = a->g[2], *t2 = a->g[3];
    const block_acts *last = &a->blk[e->nblocks - 1];
    memset(gout, 0, (size_t)B * e->out_channels * last->OH * last->OW * sizeof *gout);
    FLAVA_TRY(avgpool_global_backward(ctx, gout, dpooled, B, e->out_channels, last->OH,
                                      last->OW));
    for (int n = e->nblocks - 1; n >= 0; n--) {
        const flava_effnet_block *b = &e->blk[n];
        const block_acts *ba = &a->blk[n];
        const size_t ein = (size_t)B * b->exp * ba->H * ba->W,
                     eout = (size_t)B * b->exp * ba->OH * ba->OW,
                     pout = (size_t)B * b->out * ba->OH * ba->OW,
                     xin = (size_t)B * b->in * ba->H * ba->W;
        /* gin: the block input's gradient, through the residual first */
        if (b->residual)
            memcpy(gin, gout, xin * sizeof *gin);
        else
            memset(gin, 0, xin * sizeof *gin);
        const flava_dropout drop = block_dropout(a, b, n);
        if (drop.p > 0) /* the branch's gradient: times the forward's mask */
            FLAVA_TRY(dropout_forward(gout, gout, (int64_t)pout, &drop));
        /* projection: se_out -> conv -> BN = gout */
        flava_conv2d_dims d = conv_dims(B, b->exp, ba->OH, ba->OW, b->out, 1, 1, 1, 0, 0, 0, 0);
        memset(t1, 0, eout * sizeof *t1);
        FLAVA_TRY(conv_bn_backward(ctx, t1, grads, t2, gout, &ba->p, ba->se_out, params, buffers,
                                   b->proj_w, &d, &b->proj_bn, eps, train));
        /* squeeze-excite: t1 = d(se_out) -> gout = d(d_act) */
        memset(gout, 0, eout * sizeof *gout);
        FLAVA_TRY(se_backward(ctx, gout, grads, ba, b, params, t1, a->gs, B));
        /* depthwise: dw_in -> conv -> BN -> swish = d_act */
        memset(t1, 0, eout * sizeof *t1);
        FLAVA_TRY(swish_backward(ctx, t1, gout, ba->d.out, (int64_t)eout));
        d = conv_dims(B, b->exp, ba->H, ba->W, b->exp, b->k, b->stride, b->exp, b->pad_top,
                      b->pad_left, b->pad_bottom, b->pad_right);
        if (!b->expand) {
            FLAVA_TRY(conv_bn_backward(ctx, gin, grads, t2, t1, &ba->d, ba->in, params, buffers,
                                       b->dw_w, &d, &b->dw_bn, eps, train));
        } else {
            memset(gout, 0, ein * sizeof *gout);
            FLAVA_TRY(conv_bn_backward(ctx, gout, grads, t2, t1, &ba->d, ba->e_act, params,
                                       buffers, b->dw_w, &d, &b->dw_bn, eps, train));
            memset(t1, 0, ein * sizeof *t1);
            FLAVA_TRY(swish_backward(ctx, t1, gout, ba->e.out, (int64_t)ein));
            d = conv_dims(B, b->in, ba->H, ba->W, b->exp, 1, 1, 1, 0, 0, 0, 0);
            FLAVA_TRY(conv_bn_backward(ctx, gin, grads, t2, t1, &ba->e, ba->in, params, buffers,
                                       b->expand_w, &d, &b->expand_bn, eps, train));
        }
        float *swap = gout;
        gout = gin;
        gin = swap;
    }
    /* stem: pixels -> conv -> BN -> swish = gout; no input gradient */
    flava_conv2d_dims d =
        conv_dims(B, e->cfg.num_channels, a->H, a->W, e->stem_channels, 3, 2, 1, 0, 0, 1, 1);
    const size_t ss = (size_t)B * e->stem_channels * flava_conv2d_out_h(&d) *
                      flava_conv2d_out_w(&d);
    memset(t1, 0, ss * sizeof *t1);
    FLAVA_TRY(swish_backward(ctx, t1, gout, a->stem.out, (int64_t)ss));
    return conv_bn_backward(ctx, NULL, grads, t2, t1, &a->stem, a->pixels, params, buffers,
                            e->stem_w, &d, &e->stem_bn, eps, train);
}

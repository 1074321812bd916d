/* codebook.c - the DALL-E dVAE encoder used as FLAVA's MIM target
 * (see codebook.h for the architecture). Frozen: forward only. */
#include "codebook.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

enum { GROUPS = 4, RES_CONVS = 4 };

typedef struct conv_layer {
    int cin, cout, k; /* k = 0: absent (identity id_path) */
    int weight;       /* index of the weight in the param table; bias follows */
} conv_layer;

typedef struct cb_block {
    int cin, cout;
    conv_layer id_path;
    conv_layer res[RES_CONVS];
} cb_block;

struct flava_codebook {
    flava_codebook_config cfg;
    float post_gain;
    conv_layer input, output;
    cb_block *blocks; /* GROUPS * num_blocks_per_group, group-major */
    flava_codebook_param *params;
    int nparams;
    float *weights;
    int64_t nweights;

    /* activations for the batch shape (B,H,W) they were sized for */
    int B, H, W;
    float *act[3]; /* ping-pong pair and the relu/id_path buffer */
    float *hid[2]; /* residual path's narrow activations */
    void *pool_ws;
};

void flava_codebook_config_default(flava_codebook_config *cfg)
{
    cfg->num_groups = 4;
    cfg->input_channels = 3;
    cfg->num_blocks_per_group = 2;
    cfg->hidden_size = 256;
    cfg->vocab_size = 8192;
}

int flava_codebook_grid(int n) { return n / 2 / 2 / 2; }

/* Appends the weight [cout,cin,k,k] and bias [cout] of one conv to the table. */
static void add_conv(flava_codebook *cb, conv_layer *c, const char *name, int cin, int cout,
                     int k)
{
    c->cin = cin;
    c->cout = cout;
    c->k = k;
    c->weight = cb->nparams;
    for (int j = 0; j < 2; j++) {
        flava_codebook_param *p = &cb->params[cb->nparams++];
        snprintf(p->name, sizeof p->name, "image_codebook.blocks.%s.%s", name,
                 j == 0 ? "weight" : "bias");
        p->ndim = j == 0 ? 4 : 1;
        p->shape[0] = cout;
        p->shape[1] = cin;
        p->shape[2] = k;
        p->shape[3] = k;
        p->numel = j == 0 ? (int64_t)cout * cin * k * k : cout;
        p->offset = cb->nweights;
        cb->nweights += p->numel;
    }
}

/* Widths of group g (0-based): h -> h, h -> 2h, 2h -> 4h, 4h -> 8h. */
static int group_in(const flava_codebook_config *c, int g)
{
    return c->hidden_size << (g > 0 ? g - 1 : 0);
}
static int group_out(const flava_codebook_config *c, int g) { return c->hidden_size << g; }

flava_status flava_codebook_create(flava_codebook **out, const flava_codebook_config *cfg)
{
    *out = NULL;
    /* hidden_size >= 4 so that the residual width out/4 is not 0 */
    if (cfg->num_groups < 1 || cfg->input_channels < 1 || cfg->num_blocks_per_group < 1 ||
        cfg->num_blocks_per_group > 1024 || cfg->hidden_size < 4 ||
        cfg->hidden_size > (1 << 20) || cfg->vocab_size < 1)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG,
                           "image codebook config: num_groups %d, input_channels %d, "
                           "num_blocks_per_group %d, hidden_size %d, vocab_size %d: expected "
                           "all positive, hidden_size in [4, 2^20], at most 1024 blocks per group",
                           cfg->num_groups, cfg->input_channels, cfg->num_blocks_per_group,
                           cfg->hidden_size, cfg->vocab_size);
    flava_codebook *cb = calloc(1, sizeof *cb);
    if (!cb)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot allocate the image codebook");
    cb->cfg = *cfg;
    int nb = cfg->num_blocks_per_group;
    float layers = (float)cfg->num_groups * (float)nb;
    cb->post_gain = 1.0f / (layers * layers);
    /* per block at most id_path + 4 convs, 2 tensors each; input and output */
    int maxp = 2 * (GROUPS * nb * (1 + RES_CONVS) + 2);
    cb->params = calloc((size_t)maxp, sizeof *cb->params);
    cb->blocks = calloc((size_t)GROUPS * nb, sizeof *cb->blocks);
    if (!cb->params || !cb->blocks) {
        flava_codebook_destroy(cb);
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot allocate the image codebook's tables");
    }

    char name[80];
    add_conv(cb, &cb->input, "input", cfg->input_channels, cfg->hidden_size, 7);
    for (int g = 0; g < GROUPS; g++) {
        for (int i = 0; i < nb; i++) {
            cb_block *bl = &cb->blocks[g * nb + i];
            bl->cin = i == 0 ? group_in(cfg, g) : group_out(cfg, g);
            bl->cout = group_out(cfg, g);
            int hid = bl->cout / 4;
            if (bl->cin != bl->cout) {
                snprintf(name, sizeof name, "group_%d.group.block_%d.id_path", g + 1, i + 1);
                add_conv(cb, &bl->id_path, name, bl->cin, bl->cout, 1);
            }
            for (int j = 0; j < RES_CONVS; j++) {
                snprintf(name, sizeof name, "group_%d.group.block_%d.res_path.path.conv_%d",
                         g + 1, i + 1, j + 1);
                add_conv(cb, &bl->res[j], name, j == 0 ? bl->cin : hid,
                         j == RES_CONVS - 1 ? bl->cout : hid, j == RES_CONVS - 1 ? 1 : 3);
            }
        }
    }
    add_conv(cb, &cb->output, "output.conv", group_out(cfg, GROUPS - 1), cfg->vocab_size, 1);

    flava_status s = flava_alloc((void **)&cb->weights, (size_t)cb->nweights * sizeof(float),
                                 "the image codebook's weights");
    if (s != FLAVA_OK) {
        flava_codebook_destroy(cb);
        return s;
    }
    *out = cb;
    return FLAVA_OK;
}

static void free_activations(flava_codebook *cb)
{
    for (int i = 0; i < 3; i++)
        flava_free(cb->act[i]);
    for (int i = 0; i < 2; i++)
        flava_free(cb->hid[i]);
    flava_free(cb->pool_ws);
    memset(cb->act, 0, sizeof cb->act);
    memset(cb->hid, 0, sizeof cb->hid);
    cb->pool_ws = NULL;
    cb->B = cb->H = cb->W = 0;
}

void flava_codebook_destroy(flava_codebook *cb)
{
    if (!cb)
        return;
    free_activations(cb);
    flava_free(cb->weights);
    free(cb->params);
    free(cb->blocks);
    free(cb);
}

const flava_codebook_param *flava_codebook_params(const flava_codebook *cb, int *count)
{
    *count = cb->nparams;
    return cb->params;
}

float *flava_codebook_weights(flava_codebook *cb, int64_t *numel)
{
    *numel = cb->nweights;
    return cb->weights;
}

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* Sizes every buffer for one batch shape, walking the architecture. */
static flava_status size_activations(flava_ctx *ctx, flava_codebook *cb, int B, int H, int W)
{
    if (cb->B == B && cb->H == H && cb->W == W)
        return FLAVA_OK;
    free_activations(cb);
    const flava_codebook_config *c = &cb->cfg;
    int64_t big = (int64_t)c->hidden_size * H * W, hid = 0;
    size_t ws = 0;
    int h = H, w = W;
    for (int g = 0; g < GROUPS; g++) {
        int cout = group_out(c, g);
        big = max64(big, (int64_t)cout * h * w);
        hid = max64(hid, (int64_t)(cout / 4) * h * w);
        if (g < GROUPS - 1) {
            size_t n = maxpool2d_workspace_bytes(ctx, B, cout, h, w, 2, 2);
            ws = n > ws ? n : ws;
            h /= 2;
            w /= 2;
        }
    }
    big = B * max64(big, (int64_t)c->vocab_size * h * w); /* logits land there too */
    hid *= B;
    for (int i = 0; i < 3; i++)
        FLAVA_TRY(flava_alloc((void **)&cb->act[i], (size_t)big * sizeof(float),
                              "codebook activations"));
    for (int i = 0; i < 2; i++)
        FLAVA_TRY(flava_alloc((void **)&cb->hid[i], (size_t)hid * sizeof(float),
                              "codebook residual activations"));
    FLAVA_TRY(flava_alloc(&cb->pool_ws, ws, "codebook max-pool workspace"));
    cb->B = B;
    cb->H = H;
    cb->W = W;
    return FLAVA_OK;
}

/* out = conv(inp), 'same' padding (k odd, pad k/2, stride 1), NCHW. */
static flava_status conv_same(flava_ctx *ctx, const flava_codebook *cb, const conv_layer *c,
                              float *out, const float *inp, int B, int H, int W)
{
    const flava_codebook_param *p = &cb->params[c->weight];
    flava_conv2d_dims d = {.N = B, .C = c->cin, .H = H, .W = W, .OC = c->cout, .KH = c->k,
                           .KW = c->k, .stride = 1, .pad = c->k / 2, .groups = 1};
    return conv2d_forward(ctx, out, inp, cb->weights + p[0].offset, cb->weights + p[1].offset,
                          &d);
}

/* y = id + gain * y: the block's residual sum (glue, plain C). */
static void add_scaled(float *y, const float *id, float gain, int64_t n)
{
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++)
        y[i] = id[i] + gain * y[i];
}

/* One block: reads *x, writes its result to *y, then swaps the two. */
static flava_status block_forward(flava_ctx *ctx, flava_codebook *cb, const cb_block *bl,
                                  float **x, float **y, int B, int H, int W)
{
    float *r = cb->act[2], *h0 = cb->hid[0], *h1 = cb->hid[1];
    int64_t hw = (int64_t)H * W;
    FLAVA_TRY(relu_forward(ctx, r, *x, B * bl->cin * hw));
    FLAVA_TRY(conv_same(ctx, cb, &bl->res[0], h0, r, B, H, W));
    for (int j = 1; j < RES_CONVS; j++) {
        FLAVA_TRY(relu_forward(ctx, h1, h0, B * bl->res[j].cin * hw));
        FLAVA_TRY(conv_same(ctx, cb, &bl->res[j], j == RES_CONVS - 1 ? *y : h0, h1, B, H, W));
    }
    const float *id = *x;
    if (bl->id_path.k) { /* r is free again once conv_1 has read it */
        FLAVA_TRY(conv_same(ctx, cb, &bl->id_path, r, *x, B, H, W));
        id = r;
    }
    add_scaled(*y, id, cb->post_gain, B * bl->cout * hw);
    float *t = *x;
    *x = *y;
    *y = t;
    return FLAVA_OK;
}

static void argmax_codes(int32_t *ids, const float *logits, int B, int V, int64_t hw)
{
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int64_t p = 0; p < hw; p++) {
            const float *l = logits + (int64_t)b * V * hw + p;
            int best = 0;
            for (int v = 1; v < V; v++)
                if (l[v * hw] > l[best * hw])
                    best = v;
            ids[b * hw + p] = best;
        }
    }
}

flava_status flava_codebook_forward(flava_ctx *ctx, flava_codebook *cb, int32_t *ids,
                                    float *logits, const float *pixels, int B, int H, int W)
{
    if (B < 1 || H < 8 || W < 8)
        return FLAVA_ERROR(FLAVA_ERR_SHAPE,
                           "codebook_pixel_values: shape [%d,%d,%d,%d], expected a batch of at "
                           "least one image of at least 8x8 pixels",
                           B, cb->cfg.input_channels, H, W);
    FLAVA_TRY(size_activations(ctx, cb, B, H, W));
    const flava_codebook_config *c = &cb->cfg;
    float *x = cb->act[0], *y = cb->act[1];
    FLAVA_TRY(conv_same(ctx, cb, &cb->input, x, pixels, B, H, W));
    int h = H, w = W, nb = c->num_blocks_per_group;
    for (int g = 0; g < GROUPS; g++) {
        for (int i = 0; i < nb; i++)
            FLAVA_TRY(block_forward(ctx, cb, &cb->blocks[g * nb + i], &x, &y, B, h, w));
        if (g < GROUPS - 1) {
            FLAVA_TRY(maxpool2d_forward(ctx, y, cb->pool_ws, x, B, group_out(c, g), h, w, 2, 2));
            float *t = x;
            x = y;
            y = t;
            h /= 2;
            w /= 2;
        }
    }
    float *r = cb->act[2], *out = logits ? logits : y;
    FLAVA_TRY(relu_forward(ctx, r, x, (int64_t)B * cb->output.cin * h * w));
    FLAVA_TRY(conv_same(ctx, cb, &cb->output, out, r, B, h, w));
    argmax_codes(ids, out, B, c->vocab_size, (int64_t)h * w);
    return FLAVA_OK;
}

/* mlp.c - the fine-tuning classifier MLP (see mlp.h). */
#include "mlp.h"

#include <stdio.h>
#include <string.h>

#include "heads.h"
#include "ops.h"

#define LN_EPS 1e-12f

flava_status mlp_declare(flava_param_table *t, const char *prefix, int C, int K)
{
    char n[FLAVA_PARAM_NAME_MAX];
    size_t off;
    if (K <= 0)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: %d outputs (set vqa_num_answers/num_labels)",
                           prefix, K);
    snprintf(n, sizeof n, "%s.dense.weight", prefix);
    FLAVA_TRY(flava_params_add2(t, &off, n, 0, 2 * C, C));
    snprintf(n, sizeof n, "%s.dense.bias", prefix);
    FLAVA_TRY(flava_params_add1(t, &off, n, 1, 2 * C));
    snprintf(n, sizeof n, "%s.LayerNorm.weight", prefix);
    FLAVA_TRY(flava_params_add1(t, &off, n, 1, 2 * C));
    snprintf(n, sizeof n, "%s.LayerNorm.bias", prefix);
    FLAVA_TRY(flava_params_add1(t, &off, n, 1, 2 * C));
    snprintf(n, sizeof n, "%s.decoder.weight", prefix);
    FLAVA_TRY(flava_params_add2(t, &off, n, 0, K, 2 * C));
    snprintf(n, sizeof n, "%s.decoder.bias", prefix);
    return flava_params_add1(t, &off, n, 1, K);
}

size_t mlp_mem_floats(int B, int C, int K)
{
    const size_t b = B, H = 2 * (size_t)C;
    return 6 * b * H + b * C + 2 * b + 3 * b * K;
}

struct layout {
    float *h1, *g, *t, *dA, *dB, *dC, *dX, *mean, *var, *logits, *probs, *dlogits;
};

static struct layout carve(float *p, int B, int C, int K)
{
    struct layout l;
    const size_t b = B, H = 2 * (size_t)C;
    l.h1 = p, p += b * H;
    l.g = p, p += b * H;
    l.t = p, p += b * H;
    l.dA = p, p += b * H;
    l.dB = p, p += b * H;
    l.dC = p, p += b * H;
    l.dX = p, p += b * C;
    l.mean = p, p += b;
    l.var = p, p += b;
    l.logits = p, p += b * K;
    l.probs = p, p += b * K;
    l.dlogits = p;
    return l;
}

enum { DENSE_W, DENSE_B, LN_W, LN_B, DEC_W, DEC_B };
static const char *const param_suffix[MLP_NPARAMS] = {".dense.weight",     ".dense.bias",
                                                      ".LayerNorm.weight", ".LayerNorm.bias",
                                                      ".decoder.weight",   ".decoder.bias"};

void mlp_params_find(mlp_params *mp, const flava_param_table *t, float *params, float *grads,
                     const char *prefix)
{
    for (int i = 0; i < MLP_NPARAMS; i++) {
        char name[FLAVA_PARAM_NAME_MAX];
        snprintf(name, sizeof name, "%s%s", prefix, param_suffix[i]);
        const flava_param *p = flava_params_find(t, name);
        mp->p[i] = p ? params + p->offset : NULL;
        mp->g[i] = p && grads ? grads + p->offset : NULL;
    }
}

flava_status mlp_forward(flava_head_state *st, const flava_head_io *io, const char *prefix,
                         const float *pooled, int C, int K, mlp_loss loss)
{
    mlp_params mp;
    flava_head_params(io, prefix, param_suffix, MLP_NPARAMS, mp.p, mp.g);
    return mlp_forward_params(st, io->ctx, io->batch, &mp, pooled, C, K, loss);
}

flava_status mlp_forward_params(flava_head_state *st, flava_ctx *ctx, const flava_batch *b,
                                const mlp_params *mp, const float *pooled, int C, int K,
                                mlp_loss loss)
{
    const int B = b->B, H = 2 * C;
    struct layout l = carve(st->mem, B, C, K);
    float *const *p = mp->p;
    st->nrows = B;
    st->ncols = K;
    st->logits = l.logits;
    st->loss = 0;
    st->count = 0;
    st->correct = 0;
    FLAVA_TRY(linear_forward(ctx, l.h1, pooled, p[DENSE_W], p[DENSE_B], B, C, H));
    FLAVA_TRY(gelu_forward(ctx, l.g, l.h1, (int64_t)B * H));
    FLAVA_TRY(layernorm_forward(ctx, l.t, l.mean, l.var, l.g, p[LN_W], p[LN_B], B, H,
                                LN_EPS));
    FLAVA_TRY(linear_forward(ctx, l.logits, l.t, p[DEC_W], p[DEC_B], B, H, K));
    switch (loss) {
    case MLP_LOSS_BCE_SCALED:
        if (!b->vqa_targets)
            return FLAVA_OK;
        FLAVA_TRY(bce_logits_forward(&st->loss, l.logits, b->vqa_targets, B, K));
        st->loss *= (float)K; /* MMF's logit_bce: the mean times the answers */
        st->count = B;
        for (int i = 0; i < B; i++) { /* VQA accuracy: the soft score of the argmax */
            int best = 0;
            for (int k = 1; k < K; k++)
                if (l.logits[(size_t)i * K + k] > l.logits[(size_t)i * K + best])
                    best = k;
            st->correct += b->vqa_targets[(size_t)i * K + best];
        }
        return FLAVA_OK;
    case MLP_LOSS_CE:
        if (!b->class_labels)
            return FLAVA_OK;
        FLAVA_TRY(cross_entropy_forward(&st->loss, &st->count, l.probs, l.logits,
                                        b->class_labels, B, K));
        for (int i = 0; i < B; i++) {
            int best = 0;
            for (int k = 1; k < K; k++)
                if (l.logits[(size_t)i * K + k] > l.logits[(size_t)i * K + best])
                    best = k;
            st->correct += best == b->class_labels[i];
        }
        return FLAVA_OK;
    case MLP_LOSS_MSE:
        if (!b->regression_targets)
            return FLAVA_OK;
        FLAVA_TRY(mse_forward(&st->loss, l.logits, b->regression_targets, B));
        st->count = B;
        return FLAVA_OK;
    }
    return FLAVA_OK;
}

flava_status mlp_backward(flava_head_state *st, const flava_head_io *io, const char *prefix,
                          const float *pooled, float *dpooled, int C, int K, mlp_loss loss,
                          float dloss)
{
    mlp_params mp;
    flava_head_params(io, prefix, param_suffix, MLP_NPARAMS, mp.p, mp.g);
    return mlp_backward_params(st, io->ctx, io->batch, &mp, pooled, dpooled, C, K, loss, dloss);
}

flava_status mlp_backward_params(flava_head_state *st, flava_ctx *ctx, const flava_batch *b,
                                 const mlp_params *mp, const float *pooled, float *dpooled,
                                 int C, int K, mlp_loss loss, float dloss)
{
    const int B = b->B, H = 2 * C;
    struct layout l = carve(st->mem, B, C, K);
    float *const *p = mp->p, *const *g = mp->g;
    const size_t BH = (size_t)B * H;
    memset(l.dlogits, 0, (size_t)B * K * sizeof *l.dlogits);
    switch (loss) {
    case MLP_LOSS_BCE_SCALED:
        FLAVA_TRY(bce_logits_backward(l.dlogits, dloss * (float)K, l.logits, b->vqa_targets, B,
                                      K));
        break;
    case MLP_LOSS_CE:
        FLAVA_TRY(cross_entropy_backward(l.dlogits, dloss, l.probs, b->class_labels, B, K));
        break;
    case MLP_LOSS_MSE:
        FLAVA_TRY(mse_backward(l.dlogits, dloss, l.logits, b->regression_targets, B));
        break;
    }
    memset(l.dA, 0, 3 * BH * sizeof *l.dA);
    FLAVA_TRY(linear_backward(ctx, l.dA, g[DEC_W], g[DEC_B], l.dlogits, l.t, p[DEC_W], B, H,
                              K));
    FLAVA_TRY(layernorm_backward(ctx, l.dB, g[LN_W], g[LN_B], l.dA, l.g, p[LN_W], l.mean,
                                 l.var, B, H, LN_EPS));
    FLAVA_TRY(gelu_backward(ctx, l.dC, l.dB, l.h1, (int64_t)BH));
    return linear_backward(ctx, dpooled, g[DENSE_W], g[DENSE_B], l.dC, pooled, p[DENSE_W], B,
                           C, H);
}

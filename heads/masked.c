/* masked.c - the shared masked-prediction head (see masked.h). */
#include "masked.h"

#include <stdio.h>
#include <string.h>

#include "heads.h"
#include "ops.h"

static const flava_encoder_config *head_enc(const masked_head *h, const flava_config *c)
{
    return h->image_config ? &c->image.enc : &c->text.enc;
}

static int head_vocab(const masked_head *h, const flava_config *c)
{
    return h->image_config ? c->image.vocab_size : c->text.vocab_size;
}

/* The sequence the head reads and the gradient it writes. */
static const flava_seq *head_seq(const masked_head *h, const flava_head_io *io)
{
    switch (h->seq) {
    case MASKED_SEQ_IMAGE: return &io->image_masked;
    case MASKED_SEQ_TEXT: return &io->text_masked;
    default: return &io->multimodal_masked;
    }
}

flava_status masked_declare(const masked_head *h, flava_param_table *t, const flava_config *c)
{
    const int C = head_enc(h, c)->hidden_size, V = head_vocab(h, c);
    const int in = h->seq == MASKED_SEQ_IMAGE ? c->image.enc.hidden_size
                   : h->seq == MASKED_SEQ_TEXT ? c->text.enc.hidden_size
                                               : c->multimodal.enc.hidden_size;
    if (in != C)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG,
                           "%s reads hidden states of size %d but is sized %d by %s_config "
                           "(as in HF); make the two hidden sizes equal",
                           h->prefix, in, C, h->image_config ? "image" : "text");
    char n[FLAVA_PARAM_NAME_MAX];
    size_t off, bias;
    snprintf(n, sizeof n, "%s.transform.dense.weight", h->prefix);
    FLAVA_TRY(flava_params_add2(t, &off, n, 0, C, C));
    snprintf(n, sizeof n, "%s.transform.dense.bias", h->prefix);
    FLAVA_TRY(flava_params_add1(t, &off, n, 1, C));
    snprintf(n, sizeof n, "%s.transform.LayerNorm.weight", h->prefix);
    FLAVA_TRY(flava_params_add1(t, &off, n, 1, C));
    snprintf(n, sizeof n, "%s.transform.LayerNorm.bias", h->prefix);
    FLAVA_TRY(flava_params_add1(t, &off, n, 1, C));
    snprintf(n, sizeof n, "%s.decoder.weight", h->prefix);
    FLAVA_TRY(flava_params_add2(t, &off, n, 0, V, C));
    snprintf(n, sizeof n, "%s.bias", h->prefix);
    FLAVA_TRY(flava_params_add1(t, &bias, n, 1, V));
    snprintf(n, sizeof n, "%s.decoder.bias", h->prefix);
    return flava_params_alias(t, bias, n);
}

int masked_max_rows(const masked_head *h, const flava_config *c, int B, int T, int P)
{
    (void)c;
    switch (h->seq) {
    case MASKED_SEQ_IMAGE: return B * (P + 1); /* the whole sequence without labels */
    case MASKED_SEQ_MM_IMAGE: return B * P;
    default: return B * T;
    }
}

size_t masked_mem_floats(const masked_head *h, const flava_config *c, int B, int T, int P)
{
    const size_t M = (size_t)masked_max_rows(h, c, B, T, P), C = head_enc(h, c)->hidden_size,
                 V = head_vocab(h, c);
    return 7 * M * C + 2 * M + 2 * M * V;
}

int masked_applies(const masked_head *h, const flava_head_io *io)
{
    switch (h->seq) {
    case MASKED_SEQ_IMAGE: /* unimodal: only without text (HF) */
        return io->image_masked.h && (!io->multimodal_masked.h || io->unimodal_on_paired);
    case MASKED_SEQ_TEXT:
        return io->text_masked.h && (!io->multimodal_masked.h || io->unimodal_on_paired);
    default: return io->multimodal_masked.h != NULL;
    }
}

struct layout {
    float *X, *h1, *g, *t, *mean, *var, *logits, *probs, *dA, *dB, *dX;
};

static struct layout carve(const masked_head *h, const flava_head_state *st,
                           const flava_config *c)
{
    const size_t M = (size_t)st->nrows, C = head_enc(h, c)->hidden_size, V = head_vocab(h, c);
    struct layout l;
    float *p = st->mem;
    l.X = p, p += M * C;
    l.h1 = p, p += M * C;
    l.g = p, p += M * C;
    l.t = p, p += M * C;
    l.dA = p, p += M * C;
    l.dB = p, p += M * C;
    l.dX = p, p += M * C;
    l.mean = p, p += M;
    l.var = p, p += M;
    l.logits = p, p += M * V;
    l.probs = p;
    return l;
}

/* Picks the rows (sample, position) the head predicts and their labels. */
static void select_rows(const masked_head *h, flava_head_state *st, const flava_head_io *io)
{
    const flava_batch *b = io->batch;
    const flava_seq *s = head_seq(h, io);
    const int P = io->image_masked.h ? io->image_masked.S - 1 : b->P;
    const int T = io->text_masked.h ? io->text_masked.S : b->T;
    const int32_t *labels = h->labels == MASKED_IMAGE_LABELS ? b->mim_labels : b->mlm_labels;
    int first, count;
    switch (h->seq) {
    case MASKED_SEQ_IMAGE: first = labels ? 1 : 0, count = labels ? P : s->S; break;
    case MASKED_SEQ_TEXT: first = 0, count = T; break;
    case MASKED_SEQ_MM_IMAGE: first = 2, count = P; break;
    default: first = s->S - T, count = T; break;
    }
    const int filter = h->seq == MASKED_SEQ_MM_IMAGE || h->seq == MASKED_SEQ_MM_TEXT;
    int n = 0;
    for (int i = 0; i < s->B; i++) {
        if (filter && io->pos_mask && !io->pos_mask[i])
            continue;
        for (int p = 0; p < count; p++) {
            int32_t lab = -1;
            if (labels) {
                lab = labels[(size_t)i * count + p];
                if (h->labels == MASKED_IMAGE_LABELS && b->bool_masked_pos &&
                    !b->bool_masked_pos[(size_t)i * count + p])
                    lab = -100;
                if (lab == -100)
                    continue;
            }
            st->rows[n] = (int32_t)((size_t)i * s->S + first + p);
            st->labels[n] = lab;
            n++;
        }
    }
    st->nrows = n;
}

enum { DENSE_W, DENSE_B, LN_W, LN_B, DEC_W, DEC_B, NPARAMS };
static const char *const param_suffix[NPARAMS] = {
    ".transform.dense.weight", ".transform.dense.bias", ".transform.LayerNorm.weight",
    ".transform.LayerNorm.bias", ".decoder.weight", ".bias"};

flava_status masked_forward(const masked_head *h, flava_head_state *st, const flava_head_io *io)
{
    const flava_config *c = &io->model->cfg;
    const flava_encoder_config *e = head_enc(h, c);
    const int C = e->hidden_size, V = head_vocab(h, c);
    const int32_t *labels = h->labels == MASKED_IMAGE_LABELS ? io->batch->mim_labels
                                                             : io->batch->mlm_labels;
    flava_activation act;
    FLAVA_TRY(flava_activation_parse(&act, e->hidden_act));
    select_rows(h, st, io);
    struct layout l = carve(h, st, c);
    st->logits = l.logits;
    st->ncols = V;
    st->loss = 0;
    st->count = 0;
    st->correct = 0;
    const int M = st->nrows;
    if (M == 0)
        return FLAVA_OK;
    float *p[NPARAMS], *g[NPARAMS];
    flava_head_params(io, h->prefix, param_suffix, NPARAMS, p, g);
    flava_rows_gather(l.X, head_seq(h, io)->h, st->rows, M, C);
    FLAVA_TRY(linear_forward(io->ctx, l.h1, l.X, p[DENSE_W], p[DENSE_B], M, C, C));
    FLAVA_TRY(flava_act_forward(io->ctx, act, l.g, l.h1, (int64_t)M * C));
    FLAVA_TRY(layernorm_forward(io->ctx, l.t, l.mean, l.var, l.g, p[LN_W], p[LN_B], M, C,
                                (float)e->layer_norm_eps));
    FLAVA_TRY(linear_forward(io->ctx, l.logits, l.t, p[DEC_W], p[DEC_B], M, C, V));
    if (!labels)
        return FLAVA_OK;
    FLAVA_TRY(cross_entropy_forward(&st->loss, &st->count, l.probs, l.logits, st->labels, M, V));
    double correct = 0;
#pragma omp parallel for reduction(+ : correct) schedule(static)
    for (int i = 0; i < M; i++) {
        const float *r = l.logits + (size_t)i * V;
        int best = 0;
        for (int v = 1; v < V; v++)
            if (r[v] > r[best])
                best = v;
        correct += best == st->labels[i];
    }
    st->correct = correct;
    return FLAVA_OK;
}

flava_status masked_backward(const masked_head *h, flava_head_state *st, const flava_head_io *io,
                             float dloss)
{
    const flava_config *c = &io->model->cfg;
    const flava_encoder_config *e = head_enc(h, c);
    const int C = e->hidden_size, V = head_vocab(h, c), M = st->nrows;
    if (M == 0 || st->count == 0)
        return FLAVA_OK;
    flava_activation act;
    FLAVA_TRY(flava_activation_parse(&act, e->hidden_act));
    struct layout l = carve(h, st, c);
    float *p[NPARAMS], *g[NPARAMS];
    flava_head_params(io, h->prefix, param_suffix, NPARAMS, p, g);
    float *dlogits = l.logits; /* the logits are not needed any more */
    const size_t MC = (size_t)M * C;
    memset(dlogits, 0, (size_t)M * V * sizeof *dlogits);
    FLAVA_TRY(cross_entropy_backward(dlogits, dloss, l.probs, st->labels, M, V));
    memset(l.dA, 0, MC * sizeof *l.dA);
    FLAVA_TRY(linear_backward(io->ctx, l.dA, g[DEC_W], g[DEC_B], dlogits, l.t, p[DEC_W], M, C,
                              V));
    memset(l.dB, 0, MC * sizeof *l.dB);
    FLAVA_TRY(layernorm_backward(io->ctx, l.dB, g[LN_W], g[LN_B], l.dA, l.g, p[LN_W], l.mean,
                                 l.var, M, C, (float)e->layer_norm_eps));
    memset(l.dA, 0, MC * sizeof *l.dA);
    FLAVA_TRY(flava_act_backward(io->ctx, act, l.dA, l.dB, l.h1, (int64_t)MC));
    memset(l.dX, 0, MC * sizeof *l.dX);
    FLAVA_TRY(linear_backward(io->ctx, l.dX, g[DENSE_W], g[DENSE_B], l.dA, l.X, p[DENSE_W], M, C,
                              C));
    flava_rows_scatter_add(head_seq(h, io)->dh, l.dX, st->rows, M, C);
    return FLAVA_OK;
}

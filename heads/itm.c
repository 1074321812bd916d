/* itm.c - image-text matching (HF `itm_head`): a pooler (dense, tanh) on
 * the masked multimodal CLS, then 2 logits (1 = the caption matches),
 * cross-entropy against itm_labels over every pair of the batch. */
#include <string.h>

#include "heads.h"
#include "ops.h"

static flava_status itm_declare(flava_param_table *t, const flava_config *c)
{
    const int C = c->multimodal.enc.hidden_size;
    size_t off;
    FLAVA_TRY(flava_params_add2(t, &off, "itm_head.pooler.dense.weight", 0, C, C));
    FLAVA_TRY(flava_params_add1(t, &off, "itm_head.pooler.dense.bias", 1, C));
    FLAVA_TRY(flava_params_add2(t, &off, "itm_head.seq_relationship.weight", 0, 2, C));
    return flava_params_add1(t, &off, "itm_head.seq_relationship.bias", 1, 2);
}

static size_t itm_mem(const flava_config *c, int B, int T, int P)
{
    (void)T, (void)P;
    return (size_t)B * (6 * (size_t)c->multimodal.enc.hidden_size + 6);
}

static int itm_rows(const flava_config *c, int B, int T, int P)
{
    (void)c, (void)T, (void)P;
    return B;
}

static int itm_applies(const flava_head_io *io) { return io->multimodal_masked.h != NULL; }

struct layout {
    float *cls, *pre, *pooled, *dcls, *dpre, *dpooled, *logits, *probs, *dlogits;
};

static struct layout carve(float *p, int B, int C)
{
    struct layout l;
    const size_t BC = (size_t)B * C;
    l.cls = p, p += BC;
    l.pre = p, p += BC;
    l.pooled = p, p += BC;
    l.dcls = p, p += BC;
    l.dpre = p, p += BC;
    l.dpooled = p, p += BC;
    l.logits = p, p += 2 * (size_t)B;
    l.probs = p, p += 2 * (size_t)B;
    l.dlogits = p;
    return l;
}

enum { POOL_W, POOL_B, SEQ_W, SEQ_B, NPARAMS };
static const char *const param_suffix[NPARAMS] = {".pooler.dense.weight", ".pooler.dense.bias",
                                                  ".seq_relationship.weight",
                                                  ".seq_relationship.bias"};

static flava_status itm_forward(flava_head_state *st, const flava_head_io *io)
{
    const flava_seq *s = &io->multimodal_masked;
    const int B = s->B, C = s->C;
    struct layout l = carve(st->mem, B, C);
    float *p[NPARAMS], *g[NPARAMS];
    flava_head_params(io, "itm_head", param_suffix, NPARAMS, p, g);
    for (int i = 0; i < B; i++) {
        st->rows[i] = (int32_t)((size_t)i * s->S);
        st->labels[i] = io->batch->itm_labels ? io->batch->itm_labels[i] : -100;
    }
    st->nrows = B;
    st->logits = l.logits;
    st->ncols = 2;
    st->loss = 0;
    st->count = 0;
    st->correct = 0;
    flava_rows_gather(l.cls, s->h, st->rows, B, C);
    FLAVA_TRY(linear_forward(io->ctx, l.pre, l.cls, p[POOL_W], p[POOL_B], B, C, C));
    FLAVA_TRY(tanh_forward(io->ctx, l.pooled, l.pre, (int64_t)B * C));
    FLAVA_TRY(linear_forward(io->ctx, l.logits, l.pooled, p[SEQ_W], p[SEQ_B], B, C, 2));
    if (!io->batch->itm_labels)
        return FLAVA_OK;
    FLAVA_TRY(cross_entropy_forward(&st->loss, &st->count, l.probs, l.logits, st->labels, B, 2));
    for (int i = 0; i < B; i++)
        st->correct += (l.logits[2 * i + 1] > l.logits[2 * i]) == (st->labels[i] == 1);
    return FLAVA_OK;
}

static flava_status itm_backward(flava_head_state *st, const flava_head_io *io, float dloss)
{
    const flava_seq *s = &io->multimodal_masked;
    const int B = s->B, C = s->C;
    if (st->count == 0)
        return FLAVA_OK;
    struct layout l = carve(st->mem, B, C);
    float *p[NPARAMS], *g[NPARAMS];
    flava_head_params(io, "itm_head", param_suffix, NPARAMS, p, g);
    const size_t BC = (size_t)B * C;
    memset(l.dlogits, 0, 2 * (size_t)B * sizeof *l.dlogits);
    FLAVA_TRY(cross_entropy_backward(l.dlogits, dloss, l.probs, st->labels, B, 2));
    memset(l.dpooled, 0, BC * sizeof *l.dpooled);
    FLAVA_TRY(linear_backward(io->ctx, l.dpooled, g[SEQ_W], g[SEQ_B], l.dlogits, l.pooled,
                              p[SEQ_W], B, C, 2));
    memset(l.dpre, 0, BC * sizeof *l.dpre);
    FLAVA_TRY(tanh_backward(io->ctx, l.dpre, l.dpooled, l.pooled, (int64_t)BC));
    memset(l.dcls, 0, BC * sizeof *l.dcls);
    FLAVA_TRY(linear_backward(io->ctx, l.dcls, g[POOL_W], g[POOL_B], l.dpre, l.cls, p[POOL_W], B,
                              C, C));
    flava_rows_scatter_add(s->dh, l.dcls, st->rows, B, C);
    return FLAVA_OK;
}

const flava_head_ops flava_head_itm = {
    .name = "itm",
    .logits_name = "itm_logits",
    .declare = itm_declare,
    .mem_floats = itm_mem,
    .max_rows = itm_rows,
    .applies = itm_applies,
    .forward = itm_forward,
    .backward = itm_backward,
};

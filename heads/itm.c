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

struct itm_params {
    float *pw, *pb, *sw, *sb, *gpw, *gpb, *gsw, *gsb;
};

static struct itm_params find_params(const flava_head_io *io)
{
    struct itm_params p;
    p.pw = flava_model_param(io->model, "itm_head.pooler.dense.weight", &p.gpw);
    p.pb = flava_model_param(io->model, "itm_head.pooler.dense.bias", &p.gpb);
    p.sw = flava_model_param(io->model, "itm_head.seq_relationship.weight", &p.gsw);
    p.sb = flava_model_param(io->model, "itm_head.seq_relationship.bias", &p.gsb);
    return p;
}

static flava_status itm_forward(flava_head_state *st, const flava_head_io *io)
{
    const flava_seq *s = &io->multimodal_masked;
    const int B = s->B, C = s->C;
    struct layout l = carve(st->mem, B, C);
    struct itm_params p = find_params(io);
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
    FLAVA_TRY(linear_forward(io->ctx, l.pre, l.cls, p.pw, p.pb, B, C, C));
    FLAVA_TRY(tanh_forward(io->ctx, l.pooled, l.pre, (int64_t)B * C));
    FLAVA_TRY(linear_forward(io->ctx, l.logits, l.pooled, p.sw, p.sb, B, C, 2));
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
    struct itm_params p = find_params(io);
    const size_t BC = (size_t)B * C;
    memset(l.dlogits, 0, 2 * (size_t)B * sizeof *l.dlogits);
    FLAVA_TRY(cross_entropy_backward(l.dlogits, dloss, l.probs, st->labels, B, 2));
    memset(l.dpooled, 0, BC * sizeof *l.dpooled);
    FLAVA_TRY(linear_backward(io->ctx, l.dpooled, p.gsw, p.gsb, l.dlogits, l.pooled, p.sw, B, C,
                              2));
    memset(l.dpre, 0, BC * sizeof *l.dpre);
    FLAVA_TRY(tanh_backward(io->ctx, l.dpre, l.dpooled, l.pooled, (int64_t)BC));
    memset(l.dcls, 0, BC * sizeof *l.dcls);
    FLAVA_TRY(linear_backward(io->ctx, l.dcls, p.gpw, p.gpb, l.dpre, l.cls, p.pw, B, C, C));
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

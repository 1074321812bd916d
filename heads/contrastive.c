/* contrastive.c - FLAVA's global contrastive loss: the unmasked passes'
 * final CLS states through flava.image_projection / flava.text_projection,
 * L2-normalised, logits = exp(flava.logit_scale) * image·text, loss = (CE
 * over each image's texts + CE over each text's images) / 2. With ITM
 * negatives in the batch only the positive pairs' rows count (all columns
 * stay), as HF does. The parameters belong to the base model.
 *
 * On R data-parallel ranks the normalised embeddings of every rank are
 * gathered and each rank computes the loss of the whole batch of N = R * B
 * pairs, as one process with that batch would (src/dist.h: gather with
 * gradient). */
#include <math.h>
#include <string.h>

#include "dist.h"
#include "heads.h"
#include "ops.h"

static size_t con_mem(const flava_config *c, int B, int T, int P)
{
    (void)T, (void)P;
    const size_t Ci = c->image.enc.hidden_size, Ct = c->text.enc.hidden_size,
                 D = c->projection_dim, b = B, n = b * (size_t)flava_dist_size();
    return 2 * b * (Ci + Ct) + 8 * b * D + 2 * b + 4 * n * D + 9 * n * n;
}

/* the image and text CLS rows of B samples; the labels of all N pairs and
 * this rank's before they are gathered */
static int con_rows(const flava_config *c, int B, int T, int P)
{
    (void)c, (void)T, (void)P;
    return 2 * B * flava_dist_size();
}

static int con_applies(const flava_head_io *io) { return io->image.h && io->text.h; }

/* Local [B, .] tensors, then the gathered [N, D] and [N, N] ones. */
struct layout {
    float *icls, *tcls, *dicls, *dtcls, *ip, *tp, *in, *tn, *dip, *dtp, *din, *dtn;
    float *inorm, *tnorm, *in_all, *tn_all, *din_all, *dtn_all;
    float *dot, *li, *lt, *pi, *pt, *gi, *gt, *oi, *ot;
};

static struct layout carve(float *p, int B, int Ci, int Ct, int D)
{
    struct layout l;
    const size_t b = B, bd = b * D, n = b * (size_t)flava_dist_size(), nd = n * D;
    l.icls = p, p += b * Ci;
    l.dicls = p, p += b * Ci;
    l.tcls = p, p += b * Ct;
    l.dtcls = p, p += b * Ct;
    l.ip = p, p += bd;
    l.tp = p, p += bd;
    l.in = p, p += bd;
    l.tn = p, p += bd;
    l.dip = p, p += bd;
    l.dtp = p, p += bd;
    l.din = p, p += bd;
    l.dtn = p, p += bd;
    l.inorm = p, p += b;
    l.tnorm = p, p += b;
    l.in_all = p, p += nd;
    l.tn_all = p, p += nd;
    l.din_all = p, p += nd;
    l.dtn_all = p, p += nd;
    l.dot = p, p += n * n;
    l.li = p, p += n * n;
    l.lt = p, p += n * n;
    l.pi = p, p += n * n;
    l.pt = p, p += n * n;
    l.gi = p, p += n * n;
    l.gt = p, p += n * n;
    l.oi = p, p += n * n;
    l.ot = p;
    return l;
}

enum { IMG_W, IMG_B, TXT_W, TXT_B, SCALE, NPARAMS };
static const char *const param_suffix[NPARAMS] = {
    ".image_projection.weight", ".image_projection.bias", ".text_projection.weight",
    ".text_projection.bias", ".logit_scale"};

static flava_status con_forward(flava_head_state *st, const flava_head_io *io)
{
    const int B = io->image.B, Ci = io->image.C, Ct = io->text.C;
    const int D = io->model->cfg.projection_dim, R = flava_dist_size(), N = B * R;
    struct layout l = carve(st->mem, B, Ci, Ct, D);
    float *p[NPARAMS], *g[NPARAMS];
    flava_head_params(io, "flava", param_suffix, NPARAMS, p, g);
    int32_t *irows = st->rows, *trows = st->rows + B, *mine = st->labels + N;
    for (int i = 0; i < B; i++) {
        irows[i] = (int32_t)((size_t)i * io->image.S);
        trows[i] = (int32_t)((size_t)i * io->text.S);
        mine[i] = (!io->pos_mask || io->pos_mask[i]) ? flava_dist_rank() * B + i : -100;
    }
    flava_rows_gather(l.icls, io->image.h, irows, B, Ci);
    flava_rows_gather(l.tcls, io->text.h, trows, B, Ct);
    FLAVA_TRY(linear_forward(io->ctx, l.ip, l.icls, p[IMG_W], p[IMG_B], B, Ci, D));
    FLAVA_TRY(linear_forward(io->ctx, l.tp, l.tcls, p[TXT_W], p[TXT_B], B, Ct, D));
    FLAVA_TRY(l2norm_forward(l.in, l.inorm, l.ip, B, D));
    FLAVA_TRY(l2norm_forward(l.tn, l.tnorm, l.tp, B, D));
    FLAVA_TRY(flava_dist_gather_rows(l.in_all, l.in, B, D));
    FLAVA_TRY(flava_dist_gather_rows(l.tn_all, l.tn, B, D));
    FLAVA_TRY(flava_dist_gather(st->labels, mine, (int64_t)B * (int64_t)sizeof *mine));
    FLAVA_TRY(linear_forward(io->ctx, l.dot, l.in_all, l.tn_all, NULL, N, D, N));
    const float s = expf(*p[SCALE]);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            l.li[i * N + j] = s * l.dot[i * N + j];
            l.lt[j * N + i] = s * l.dot[i * N + j];
        }
    int ci, ct;
    float lossi, losst;
    FLAVA_TRY(cross_entropy_forward(&lossi, &ci, l.pi, l.li, st->labels, N, N));
    FLAVA_TRY(cross_entropy_forward(&losst, &ct, l.pt, l.lt, st->labels, N, N));
    st->loss = (lossi + losst) / 2;
    st->count = ci;
    /* outputs: the counted rows, as HF indexes them with the positive mask */
    int n = 0;
    st->correct = 0;
    for (int i = 0; i < N; i++) {
        if (st->labels[i] < 0)
            continue;
        memcpy(l.oi + (size_t)n * N, l.li + (size_t)i * N, (size_t)N * sizeof *l.oi);
        memcpy(l.ot + (size_t)n * N, l.lt + (size_t)i * N, (size_t)N * sizeof *l.ot);
        int best = 0;
        for (int j = 1; j < N; j++)
            if (l.li[i * N + j] > l.li[i * N + best])
                best = j;
        st->correct += best == i;
        n++;
    }
    st->nrows = n;
    st->ncols = N;
    st->logits = l.oi;
    st->logits2 = l.ot;
    return FLAVA_OK;
}

static flava_status con_backward(flava_head_state *st, const flava_head_io *io, float dloss)
{
    const int B = io->image.B, Ci = io->image.C, Ct = io->text.C;
    const int D = io->model->cfg.projection_dim, R = flava_dist_size(), N = B * R;
    if (st->count == 0)
        return FLAVA_OK;
    struct layout l = carve(st->mem, B, Ci, Ct, D);
    float *p[NPARAMS], *g[NPARAMS];
    flava_head_params(io, "flava", param_suffix, NPARAMS, p, g);
    const size_t nn = (size_t)N * N, bd = (size_t)B * D, nd = (size_t)N * D;
    memset(l.gi, 0, nn * sizeof *l.gi);
    memset(l.gt, 0, nn * sizeof *l.gt);
    FLAVA_TRY(cross_entropy_backward(l.gi, dloss / 2, l.pi, st->labels, N, N));
    FLAVA_TRY(cross_entropy_backward(l.gt, dloss / 2, l.pt, st->labels, N, N));
    /* d logits_per_image[i][j] in total; logits = s * dot, s = exp(logit_scale) */
    const float s = expf(*p[SCALE]);
    double dscale = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            float dl = l.gi[i * N + j] + l.gt[j * N + i];
            dscale += (double)dl * l.li[i * N + j];
            l.gi[i * N + j] = s * dl; /* now d dot */
        }
    if (g[SCALE])
        *g[SCALE] += (float)dscale;
    memset(l.din_all, 0, nd * sizeof *l.din_all);
    memset(l.dtn_all, 0, nd * sizeof *l.dtn_all);
    FLAVA_TRY(linear_backward(io->ctx, l.din_all, l.dtn_all, NULL, l.gi, l.in_all, l.tn_all, N,
                              D, N));
    flava_dist_own_rows(l.din, l.din_all, B, D);
    flava_dist_own_rows(l.dtn, l.dtn_all, B, D);
    memset(l.dip, 0, bd * sizeof *l.dip);
    memset(l.dtp, 0, bd * sizeof *l.dtp);
    FLAVA_TRY(l2norm_backward(l.dip, l.din, l.in, l.inorm, B, D));
    FLAVA_TRY(l2norm_backward(l.dtp, l.dtn, l.tn, l.tnorm, B, D));
    memset(l.dicls, 0, (size_t)B * Ci * sizeof *l.dicls);
    memset(l.dtcls, 0, (size_t)B * Ct * sizeof *l.dtcls);
    FLAVA_TRY(linear_backward(io->ctx, l.dicls, g[IMG_W], g[IMG_B], l.dip, l.icls, p[IMG_W], B,
                              Ci, D));
    FLAVA_TRY(linear_backward(io->ctx, l.dtcls, g[TXT_W], g[TXT_B], l.dtp, l.tcls, p[TXT_W], B,
                              Ct, D));
    flava_rows_scatter_add(io->image.dh, l.dicls, st->rows, B, Ci);
    flava_rows_scatter_add(io->text.dh, l.dtcls, st->rows + B, B, Ct);
    return FLAVA_OK;
}

const flava_head_ops flava_head_contrastive = {
    .name = "global_contrastive",
    .logits_name = "contrastive_logits_per_image",
    .logits2_name = "contrastive_logits_per_text",
    .declare = NULL,
    .mem_floats = con_mem,
    .max_rows = con_rows,
    .applies = con_applies,
    .forward = con_forward,
    .backward = con_backward,
};

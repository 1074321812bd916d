/* attention.c - multi-head attention core on the fused projection
 * qkv[B,T,3C] as batched oneDNN matmuls over [B,NH,...] 4-D views.
 *
 * q, k, v and dout are copied head-major ([B,NH,T,hs] each, in the matmul
 * type: the bf16 conversion and the copy are one reorder), and dq, dk, dv
 * are computed into head-major f32 scratch that one reorder then adds into
 * dqkv: oneDNN 2.6 runs its brgemm (AVX512 / AMX) kernels only on dense
 * sources and non-accumulating destinations; on strided views of the fused
 * tensor it falls back to gemm:jit, measured 3-4x slower here in f32 and
 * bf16. The output is written in place, a strided view into out[B,T,C].
 *   forward:  att = softmax(scale · q·kᵀ + mask)   (scale: output scale,
 *             mask: a binary-add post-op, [B,1,1,T] for the key mask alone,
 *             [B,1,T,T] once causal: oneDNN 2.6 has fast kernels for
 *             those broadcasts but falls back to its reference matmul
 *             for [1,1,T,T]), out = att·v
 *   backward: datt = dout·vᵀ;  dv = attᵀ·dout;  ds = softmax_bwd(datt)
 *             dq = scale · ds·k;  dk = scale · dsᵀ·q;  dqkv += [dq | dk | dv]
 * With dropout, out = drop(att)·v: the dropped probabilities go to a
 * scratch copy (att stays what softmax backward needs), and backward draws
 * the mask again for dv = drop(att)ᵀ·dout and datt = drop(dout·vᵀ).
 * Masked keys get a large finite negative score, so their probability is
 * exactly 0 while a fully masked row stays finite. */
#include <math.h>

#include "dnnl_util.h"
#include "ops.h"

static const float mask_neg = -1e9f;

/* 4-D [B,NH,T,hs] head views (or [B,NH,hs,T] transposed) with the strides
 * `s` of b, h and t: token-major inside a [B,T,ld] tensor is {T*ld, hs, ld}
 * (f32 q, k, v, out and the gradients, used in place); head-major is
 * {NH*T*hs, T*hs, hs} (the bf16 copies, laid out so that oneDNN's AMX
 * batched kernels take them: those want dense sources). */
static flava_status head_view(dnnl_memory_desc_t *md, int64_t B, int64_t T, int64_t NH, int64_t hs,
                              const int64_t s[3], int transposed, dnnl_data_type_t dt)
{
    int64_t dims[4] = {B, NH, transposed ? hs : T, transposed ? T : hs};
    int64_t strides[4] = {s[0], s[1], transposed ? 1 : s[2], transposed ? s[2] : 1};
    return flava_dnnl_md(md, 4, dims, strides, dt);
}

/* x[B,T,parts*C] (parts 3 for qkv, 1 for dout) as the 5-D view
 * [parts,B,NH,T,hs] in f32 (token_major) or dense head-major in `dt`. */
static flava_status parts_view(dnnl_memory_desc_t *md, int64_t parts, int64_t B, int64_t T,
                               int64_t NH, int64_t hs, int token_major, dnnl_data_type_t dt)
{
    int64_t C = NH * hs, dims[5] = {parts, B, NH, T, hs};
    int64_t strides[5] = {C, T * parts * C, hs, parts * C, 1};
    return flava_dnnl_md(md, 5, dims, token_major ? strides : NULL, dt);
}

/* The head-major copy of x[B,T,parts*C] in `dt`: q, k and v (or the heads
 * of dout) each become dense. (A flava_dnnl_bf16_copy also serves for f32.) */
static flava_status head_major_copy(flava_dnnl_bf16_copy *c, flava_ctx *ctx, int64_t parts,
                                    int64_t B, int64_t T, int64_t NH, int64_t hs,
                                    dnnl_data_type_t dt)
{
    dnnl_memory_desc_t src, dst;
    FLAVA_TRY(parts_view(&src, parts, B, T, NH, hs, 1, dnnl_f32));
    FLAVA_TRY(parts_view(&dst, parts, B, T, NH, hs, 0, dt));
    return flava_dnnl_bf16_copy_init_md(c, ctx, &src, &dst);
}

/* [B,NH,T,T] scores, dense or read transposed */
static flava_status score_view(dnnl_memory_desc_t *md, int64_t B, int64_t T, int64_t NH,
                               int transposed, dnnl_data_type_t dt)
{
    int64_t dims[4] = {B, NH, T, T};
    int64_t strides[4] = {NH * T * T, T * T, transposed ? 1 : T, transposed ? T : 1};
    return flava_dnnl_md(md, 4, dims, strides, dt);
}

/* Binds `mem` to element `off` of `base`, whose elements are bf16 or f32. */
static flava_status bind_at(dnnl_memory_t mem, const void *base, int64_t off, int bf16)
{
    return flava_dnnl_bind(mem, (const char *)base + off * (bf16 ? 2 : 4));
}

/* The additive mask [B,rows,T] (rows T if causal, else 1): keys whose
 * key_mask is 0 (key_mask may be NULL) and, if causal, keys after the query
 * get mask_neg. */
static void fill_mask(float *mask, const float *key_mask, int causal, int64_t B, int64_t T)
{
    int64_t rows = causal ? T : 1;
#pragma omp parallel for schedule(static) if (B * rows * T > 65536)
    for (int64_t r = 0; r < B * rows; r++) {
        int64_t b = r / rows, i = r % rows;
        for (int64_t j = 0; j < T; j++) {
            int keep = (!key_mask || key_mask[b * T + j] != 0.0f) && (!causal || j <= i);
            mask[r * T + j] = keep ? 0.0f : mask_neg;
        }
    }
}

static flava_status check_sizes(const char *op, int B, int T, int C, int NH)
{
    if (B < 1 || T < 1 || C < 1 || NH < 1 || C % NH != 0)
        return FLAVA_ERROR(FLAVA_ERR_SHAPE,
                           "%s: B=%d T=%d C=%d NH=%d, expected all >= 1 and C divisible by NH",
                           op, B, T, C, NH);
    return FLAVA_OK;
}

/* ---- forward: key dims {B, T, C, NH, causal, has_mask, bf16, dropout} ---- */
enum { AF_QK, AF_SOFTMAX, AF_AV, AF_NPRIM };
enum { AF_Q, AF_KT, AF_ATT, AF_ATT16, AF_V, AF_OUT, AF_MASK, AF_NMEM };
struct attention_fwd {
    dnnl_primitive_t prim[AF_NPRIM];
    dnnl_memory_t mem[AF_NMEM];
    float *mask; /* additive, [B,T] or causal [B,T,T]; filled per call with a key mask */
    float *dropped;              /* dropout only: [B,NH,T,T] probabilities that weigh v */
    flava_dnnl_bf16_copy qkv_hm; /* head-major q, k, v in the matmul type */
    flava_dnnl_bf16_copy att16;  /* bf16 mode only */
};

static void attention_fwd_destroy(void *p)
{
    struct attention_fwd *e = p;
    flava_dnnl_release(e->prim, AF_NPRIM, e->mem, AF_NMEM);
    flava_free(e->mask);
    flava_free(e->dropped);
    flava_dnnl_bf16_copy_release(&e->qkv_hm);
    flava_dnnl_bf16_copy_release(&e->att16);
    flava_free(e);
}

static flava_status attention_fwd_build(void *p, flava_ctx *ctx, const flava_op_key *key)
{
    struct attention_fwd *e = p;
    int64_t B = key->dims[0], T = key->dims[1], C = key->dims[2], NH = key->dims[3];
    int causal = (int)key->dims[4], has_mask = (int)key->dims[5], bf16 = (int)key->dims[6];
    int dropout = (int)key->dims[7];
    int64_t hs = C / NH;
    dnnl_data_type_t dt = bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_memory_desc_t md[AF_NMEM];
    const int64_t out_tok[3] = {T * C, hs, C}, in[3] = {NH * T * hs, T * hs, hs};
    FLAVA_TRY(head_view(&md[AF_Q], B, T, NH, hs, in, 0, dt));
    FLAVA_TRY(head_view(&md[AF_KT], B, T, NH, hs, in, 1, dt));
    FLAVA_TRY(score_view(&md[AF_ATT], B, T, NH, 0, dnnl_f32));
    FLAVA_TRY(score_view(&md[AF_ATT16], B, T, NH, 0, dt));
    FLAVA_TRY(head_view(&md[AF_V], B, T, NH, hs, in, 0, dt));
    FLAVA_TRY(head_view(&md[AF_OUT], B, T, NH, hs, out_tok, 0, dnnl_f32));
    int64_t rows = causal ? T : 1;
    FLAVA_TRY(flava_dnnl_md(&md[AF_MASK], 4, (int64_t[]){B, 1, rows, T}, NULL, dnnl_f32));

    flava_dnnl_attrs qk_attrs = {.scale = 1.0f / sqrtf((float)hs)};
    if (has_mask || causal)
        qk_attrs.binary_add[qk_attrs.nbinary++] = &md[AF_MASK];
    dnnl_matmul_desc_t mm;
    FLAVA_DNNL(dnnl_matmul_desc_init(&mm, &md[AF_Q], &md[AF_KT], NULL, &md[AF_ATT]));
    FLAVA_TRY(flava_dnnl_primitive(&e->prim[AF_QK], NULL, ctx, &mm, &qk_attrs, NULL));
    dnnl_softmax_desc_t sm;
    FLAVA_DNNL(dnnl_softmax_forward_desc_init(&sm, dnnl_forward_training, &md[AF_ATT], 3));
    FLAVA_TRY(flava_dnnl_primitive(&e->prim[AF_SOFTMAX], NULL, ctx, &sm, NULL, NULL));
    FLAVA_DNNL(dnnl_matmul_desc_init(&mm, &md[AF_ATT16], &md[AF_V], NULL, &md[AF_OUT]));
    FLAVA_TRY(flava_dnnl_primitive(&e->prim[AF_AV], NULL, ctx, &mm, NULL, NULL));
    for (int i = 0; i < AF_NMEM; i++)
        FLAVA_TRY(flava_dnnl_memory(&e->mem[i], ctx, &md[i]));

    if (has_mask || causal) {
        FLAVA_TRY(flava_alloc((void **)&e->mask, (size_t)(B * rows * T) * sizeof(float),
                              "attention mask"));
        FLAVA_TRY(flava_dnnl_bind(e->mem[AF_MASK], e->mask));
        if (!has_mask)
            fill_mask(e->mask, NULL, 1, B, T);
    }
    FLAVA_TRY(head_major_copy(&e->qkv_hm, ctx, 3, B, T, NH, hs, dt));
    if (dropout)
        FLAVA_TRY(flava_alloc((void **)&e->dropped, (size_t)(B * NH * T * T) * sizeof(float),
                              "attention dropped probabilities"));
    if (bf16) {
        FLAVA_TRY(flava_dnnl_bf16_copy_init(&e->att16, ctx, B * NH * T * T));
        FLAVA_TRY(flava_dnnl_bind(e->mem[AF_ATT16], e->att16.buf));
    } else if (dropout) {
        FLAVA_TRY(flava_dnnl_bind(e->mem[AF_ATT16], e->dropped));
    }
    return FLAVA_OK;
}

static int dropping(const flava_dropout *drop) { return drop && drop->p > 0.0f; }

flava_status attention_forward(flava_ctx *ctx, float *out, float *att, const float *qkv,
                               const float *key_mask, int causal, int B, int T, int C, int NH,
                               const flava_dropout *drop)
{
    FLAVA_TRY(check_sizes("attention_forward", B, T, C, NH));
    int bf16 = flava_ctx_precision(ctx) == FLAVA_PRECISION_BF16, dropout = dropping(drop);
    flava_op_key key = {"attention_forward",
                        {B, T, C, NH, causal != 0, key_mask != NULL, bf16, dropout}};
    struct attention_fwd *e;
    FLAVA_TRY(flava_dnnl_entry((void **)&e, ctx, &key, sizeof *e, attention_fwd_build,
                               attention_fwd_destroy));
    dnnl_memory_t *m = e->mem;
    FLAVA_TRY(flava_dnnl_bf16_copy_run(&e->qkv_hm, ctx, qkv));
    const void *in = e->qkv_hm.buf;
    const int64_t part = (int64_t)B * T * C; /* where k starts, relative to q */
    FLAVA_TRY(bind_at(m[AF_Q], in, 0, bf16));
    FLAVA_TRY(bind_at(m[AF_KT], in, part, bf16));
    FLAVA_TRY(bind_at(m[AF_V], in, 2 * part, bf16));
    FLAVA_TRY(flava_dnnl_bind(m[AF_ATT], att));
    FLAVA_TRY(flava_dnnl_bind(m[AF_OUT], out));
    if (key_mask)
        fill_mask(e->mask, key_mask, causal != 0, B, T);

    dnnl_exec_arg_t qk[] = {{DNNL_ARG_SRC, m[AF_Q]},
                            {DNNL_ARG_WEIGHTS, m[AF_KT]},
                            {DNNL_ARG_DST, m[AF_ATT]},
                            {FLAVA_DNNL_ARG_BINARY(0), m[AF_MASK]}};
    FLAVA_TRY(flava_dnnl_exec(ctx, e->prim[AF_QK], key_mask || causal ? 4 : 3, qk));
    dnnl_exec_arg_t sm[] = {{DNNL_ARG_SRC, m[AF_ATT]}, {DNNL_ARG_DST, m[AF_ATT]}};
    FLAVA_TRY(flava_dnnl_exec(ctx, e->prim[AF_SOFTMAX], 2, sm));
    const float *weights = att;
    if (dropout) {
        FLAVA_TRY(dropout_forward(e->dropped, att, (int64_t)B * NH * T * T, drop));
        weights = e->dropped;
    }
    if (bf16)
        FLAVA_TRY(flava_dnnl_bf16_copy_run(&e->att16, ctx, weights));
    else if (!dropout)
        FLAVA_TRY(flava_dnnl_bind(m[AF_ATT16], att));
    return flava_dnnl_run_matmul(ctx, e->prim[AF_AV], m[AF_ATT16], m[AF_V], m[AF_OUT]);
}

/* ---- backward: key dims {B, T, C, NH, bf16, dropout} ---- */
enum { AB_DATT, AB_DV, AB_SOFTMAX, AB_DQ, AB_DK, AB_ADD, AB_NPRIM };
enum {
    AB_DOUT, AB_VT, AB_DATTM,   /* datt = dout·vᵀ */
    AB_ATT_T, AB_GV,            /* dv = attᵀ·dout */
    AB_ATT,                     /* softmax backward: ds = f(datt, att), in place in datt */
    AB_DS, AB_K, AB_GQ,         /* dq = scale · ds·k */
    AB_DS_T, AB_Q, AB_GK,       /* dk = scale · dsᵀ·q */
    AB_GRAD_HM, AB_DQKV,        /* dqkv += [dq | dk | dv] (head-major scratch) */
    AB_NMEM
};
struct attention_bwd {
    dnnl_primitive_t prim[AB_NPRIM];
    dnnl_memory_t mem[AB_NMEM];
    float *datt;    /* [B,NH,T,T] scratch: datt, then ds in place */
    float *dropped; /* dropout only: [B,NH,T,T] the probabilities that weighed v */
    float *grad_hm; /* [3,B,NH,T,hs] scratch: dq, dk, dv head-major */
    flava_dnnl_bf16_copy qkv_hm, dout_hm; /* head-major, in the matmul type */
    flava_dnnl_bf16_copy att16, ds16;     /* bf16 mode only */
};

static void attention_bwd_destroy(void *p)
{
    struct attention_bwd *e = p;
    flava_dnnl_release(e->prim, AB_NPRIM, e->mem, AB_NMEM);
    flava_free(e->datt);
    flava_free(e->dropped);
    flava_free(e->grad_hm);
    flava_dnnl_bf16_copy_release(&e->qkv_hm);
    flava_dnnl_bf16_copy_release(&e->dout_hm);
    flava_dnnl_bf16_copy_release(&e->att16);
    flava_dnnl_bf16_copy_release(&e->ds16);
    flava_free(e);
}

static flava_status attention_bwd_build(void *p, flava_ctx *ctx, const flava_op_key *key)
{
    struct attention_bwd *e = p;
    int64_t B = key->dims[0], T = key->dims[1], C = key->dims[2], NH = key->dims[3];
    int bf16 = (int)key->dims[4], dropout = (int)key->dims[5];
    int64_t hs = C / NH;
    dnnl_data_type_t dt = bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_memory_desc_t md[AB_NMEM];
    const int64_t in[3] = {NH * T * hs, T * hs, hs}, *dout = in;
    FLAVA_TRY(head_view(&md[AB_DOUT], B, T, NH, hs, dout, 0, dt));
    FLAVA_TRY(head_view(&md[AB_VT], B, T, NH, hs, in, 1, dt));
    FLAVA_TRY(score_view(&md[AB_DATTM], B, T, NH, 0, dnnl_f32));
    FLAVA_TRY(score_view(&md[AB_ATT_T], B, T, NH, 1, dt));
    FLAVA_TRY(head_view(&md[AB_GV], B, T, NH, hs, in, 0, dnnl_f32));
    FLAVA_TRY(score_view(&md[AB_ATT], B, T, NH, 0, dnnl_f32));
    FLAVA_TRY(score_view(&md[AB_DS], B, T, NH, 0, dt));
    FLAVA_TRY(head_view(&md[AB_K], B, T, NH, hs, in, 0, dt));
    FLAVA_TRY(head_view(&md[AB_GQ], B, T, NH, hs, in, 0, dnnl_f32));
    FLAVA_TRY(score_view(&md[AB_DS_T], B, T, NH, 1, dt));
    FLAVA_TRY(head_view(&md[AB_Q], B, T, NH, hs, in, 0, dt));
    FLAVA_TRY(head_view(&md[AB_GK], B, T, NH, hs, in, 0, dnnl_f32));
    FLAVA_TRY(parts_view(&md[AB_GRAD_HM], 3, B, T, NH, hs, 0, dnnl_f32));
    FLAVA_TRY(parts_view(&md[AB_DQKV], 3, B, T, NH, hs, 1, dnnl_f32));

    /* matmul i: src, weights, dst (all overwritten; dq, dk, dv are added
     * to dqkv afterwards) */
    const int mm[4][3] = {{AB_DOUT, AB_VT, AB_DATTM},
                          {AB_ATT_T, AB_DOUT, AB_GV},
                          {AB_DS, AB_K, AB_GQ},
                          {AB_DS_T, AB_Q, AB_GK}};
    const int prim[4] = {AB_DATT, AB_DV, AB_DQ, AB_DK};
    const float scale = 1.0f / sqrtf((float)hs);
    for (int i = 0; i < 4; i++) {
        dnnl_matmul_desc_t d;
        FLAVA_DNNL(dnnl_matmul_desc_init(&d, &md[mm[i][0]], &md[mm[i][1]], NULL, &md[mm[i][2]]));
        flava_dnnl_attrs attrs = {.scale = i >= 2 ? scale : 0.0f};
        FLAVA_TRY(flava_dnnl_primitive(&e->prim[prim[i]], NULL, ctx, &d, &attrs, NULL));
    }
    dnnl_softmax_desc_t fd, bd;
    FLAVA_DNNL(dnnl_softmax_forward_desc_init(&fd, dnnl_forward_training, &md[AB_ATT], 3));
    FLAVA_DNNL(dnnl_softmax_backward_desc_init(&bd, &md[AB_ATT], &md[AB_ATT], 3));
    FLAVA_TRY(flava_dnnl_backward_primitive(&e->prim[AB_SOFTMAX], ctx, &fd, &bd));
    FLAVA_TRY(flava_dnnl_reorder_add(&e->prim[AB_ADD], ctx, &md[AB_GRAD_HM], &md[AB_DQKV]));
    for (int i = 0; i < AB_NMEM; i++)
        FLAVA_TRY(flava_dnnl_memory(&e->mem[i], ctx, &md[i]));

    FLAVA_TRY(flava_alloc((void **)&e->datt, (size_t)(B * NH * T * T) * sizeof(float),
                          "attention datt"));
    FLAVA_TRY(flava_dnnl_bind(e->mem[AB_DATTM], e->datt));
    FLAVA_TRY(flava_alloc((void **)&e->grad_hm, (size_t)(3 * B * T * C) * sizeof(float),
                          "attention dq, dk, dv"));
    FLAVA_TRY(flava_dnnl_bind(e->mem[AB_GRAD_HM], e->grad_hm));
    FLAVA_TRY(bind_at(e->mem[AB_GQ], e->grad_hm, 0, 0));
    FLAVA_TRY(bind_at(e->mem[AB_GK], e->grad_hm, B * T * C, 0));
    FLAVA_TRY(bind_at(e->mem[AB_GV], e->grad_hm, 2 * B * T * C, 0));
    FLAVA_TRY(head_major_copy(&e->qkv_hm, ctx, 3, B, T, NH, hs, dt));
    FLAVA_TRY(head_major_copy(&e->dout_hm, ctx, 1, B, T, NH, hs, dt));
    FLAVA_TRY(flava_dnnl_bind(e->mem[AB_DOUT], e->dout_hm.buf));
    if (dropout)
        FLAVA_TRY(flava_alloc((void **)&e->dropped, (size_t)(B * NH * T * T) * sizeof(float),
                              "attention dropped probabilities"));
    if (!bf16 && dropout)
        FLAVA_TRY(flava_dnnl_bind(e->mem[AB_ATT_T], e->dropped));
    if (bf16) {
        FLAVA_TRY(flava_dnnl_bf16_copy_init(&e->att16, ctx, B * NH * T * T));
        FLAVA_TRY(flava_dnnl_bf16_copy_init(&e->ds16, ctx, B * NH * T * T));
        FLAVA_TRY(flava_dnnl_bind(e->mem[AB_ATT_T], e->att16.buf));
        FLAVA_TRY(flava_dnnl_bind(e->mem[AB_DS], e->ds16.buf));
        FLAVA_TRY(flava_dnnl_bind(e->mem[AB_DS_T], e->ds16.buf));
    } else {
        FLAVA_TRY(flava_dnnl_bind(e->mem[AB_DS], e->datt));
        FLAVA_TRY(flava_dnnl_bind(e->mem[AB_DS_T], e->datt));
    }
    return FLAVA_OK;
}

flava_status attention_backward(flava_ctx *ctx, float *dqkv, const float *dout,
                                const float *qkv, const float *att, int B, int T, int C, int NH,
                                const flava_dropout *drop)
{
    FLAVA_TRY(check_sizes("attention_backward", B, T, C, NH));
    if (!dqkv)
        return FLAVA_OK;
    int bf16 = flava_ctx_precision(ctx) == FLAVA_PRECISION_BF16, dropout = dropping(drop);
    flava_op_key key = {"attention_backward", {B, T, C, NH, bf16, dropout}};
    struct attention_bwd *e;
    FLAVA_TRY(flava_dnnl_entry((void **)&e, ctx, &key, sizeof *e, attention_bwd_build,
                               attention_bwd_destroy));
    dnnl_memory_t *m = e->mem;
    FLAVA_TRY(flava_dnnl_bf16_copy_run(&e->qkv_hm, ctx, qkv));
    FLAVA_TRY(flava_dnnl_bf16_copy_run(&e->dout_hm, ctx, dout));
    const void *in = e->qkv_hm.buf;
    const int64_t part = (int64_t)B * T * C; /* where k starts, relative to q */
    const int64_t scores = (int64_t)B * NH * T * T;
    if (!bf16 && !dropout)
        FLAVA_TRY(flava_dnnl_bind(m[AB_ATT_T], att));
    FLAVA_TRY(bind_at(m[AB_Q], in, 0, bf16));
    FLAVA_TRY(bind_at(m[AB_K], in, part, bf16));
    FLAVA_TRY(bind_at(m[AB_VT], in, 2 * part, bf16));
    FLAVA_TRY(flava_dnnl_bind(m[AB_ATT], att));
    FLAVA_TRY(flava_dnnl_bind(m[AB_DQKV], dqkv));

    FLAVA_TRY(flava_dnnl_run_matmul(ctx, e->prim[AB_DATT], m[AB_DOUT], m[AB_VT], m[AB_DATTM]));
    /* The dropped probabilities weigh v; the gradient of the undropped ones
     * is datt times the same mask: one pass draws it for both. */
    if (dropout)
        FLAVA_TRY(dropout_forward_pair(e->dropped, att, e->datt, e->datt, scores, drop));
    if (bf16)
        FLAVA_TRY(flava_dnnl_bf16_copy_run(&e->att16, ctx, dropout ? e->dropped : att));
    FLAVA_TRY(flava_dnnl_run_matmul(ctx, e->prim[AB_DV], m[AB_ATT_T], m[AB_DOUT], m[AB_GV]));
    dnnl_exec_arg_t sm[] = {{DNNL_ARG_DST, m[AB_ATT]},
                            {DNNL_ARG_DIFF_DST, m[AB_DATTM]},
                            {DNNL_ARG_DIFF_SRC, m[AB_DATTM]}};
    FLAVA_TRY(flava_dnnl_exec(ctx, e->prim[AB_SOFTMAX], 3, sm));
    if (bf16)
        FLAVA_TRY(flava_dnnl_bf16_copy_run(&e->ds16, ctx, e->datt));
    FLAVA_TRY(flava_dnnl_run_matmul(ctx, e->prim[AB_DQ], m[AB_DS], m[AB_K], m[AB_GQ]));
    FLAVA_TRY(flava_dnnl_run_matmul(ctx, e->prim[AB_DK], m[AB_DS_T], m[AB_Q], m[AB_GK]));
    return flava_dnnl_run_reorder(ctx, e->prim[AB_ADD], m[AB_GRAD_HM], m[AB_DQKV]);
}

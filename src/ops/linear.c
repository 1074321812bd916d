/* linear.c - fully connected layers as oneDNN matmuls.
 *
 * The weight w[OC,C] is read as the matmul's [C,OC] weights through a
 * transposed (strided) descriptor, so PyTorch's layout is used as stored.
 * oneDNN 2.6 has no matmul backward: the backward is three forward matmuls
 * on strided views, each accumulating into its gradient with a sum post-op:
 *   dinp[N,C] += dout[N,OC] · w[OC,C]
 *   dw[OC,C]  += doutᵀ[OC,N] · inp[N,C]
 *   db[1,OC]  += ones[1,N] · dout[N,OC]   (the column sums, kept in f32) */
#include "dnnl_util.h"
#include "ops.h"

static dnnl_data_type_t matmul_type(int bf16) { return bf16 ? dnnl_bf16 : dnnl_f32; }

/* ---- forward: key dims {N, C, OC, has_bias, gelu, bf16} ---- */
enum { LF_INP, LF_W, LF_BIAS, LF_OUT, LF_NMEM };
struct linear_fwd {
    dnnl_primitive_t matmul;
    dnnl_memory_t mem[LF_NMEM];
    flava_dnnl_bf16_copy inp16, w16; /* bf16 mode only */
};

static void linear_fwd_destroy(void *p)
{
    struct linear_fwd *e = p;
    flava_dnnl_release(&e->matmul, 1, e->mem, LF_NMEM);
    flava_dnnl_bf16_copy_release(&e->inp16);
    flava_dnnl_bf16_copy_release(&e->w16);
    flava_free(e);
}

static flava_status linear_fwd_build(void *p, flava_ctx *ctx, const flava_op_key *key)
{
    struct linear_fwd *e = p;
    int64_t N = key->dims[0], C = key->dims[1], OC = key->dims[2];
    int has_bias = (int)key->dims[3], gelu = (int)key->dims[4], bf16 = (int)key->dims[5];
    dnnl_data_type_t dt = matmul_type(bf16);
    dnnl_memory_desc_t md[LF_NMEM];
    FLAVA_TRY(flava_dnnl_md(&md[LF_INP], 2, (int64_t[]){N, C}, NULL, dt));
    FLAVA_TRY(flava_dnnl_md(&md[LF_W], 2, (int64_t[]){C, OC}, (int64_t[]){1, C}, dt));
    FLAVA_TRY(flava_dnnl_md(&md[LF_BIAS], 2, (int64_t[]){1, OC}, NULL, dnnl_f32));
    FLAVA_TRY(flava_dnnl_md(&md[LF_OUT], 2, (int64_t[]){N, OC}, NULL, dnnl_f32));
    dnnl_matmul_desc_t d;
    FLAVA_DNNL(dnnl_matmul_desc_init(&d, &md[LF_INP], &md[LF_W], has_bias ? &md[LF_BIAS] : NULL,
                                     &md[LF_OUT]));
    flava_dnnl_attrs attrs = {.eltwise = gelu ? dnnl_eltwise_gelu_erf : dnnl_alg_kind_undef};
    FLAVA_TRY(flava_dnnl_primitive(&e->matmul, NULL, ctx, &d, &attrs, NULL));
    for (int i = 0; i < LF_NMEM; i++)
        FLAVA_TRY(flava_dnnl_memory(&e->mem[i], ctx, &md[i]));
    if (bf16) {
        FLAVA_TRY(flava_dnnl_bf16_copy_init(&e->inp16, ctx, N * C));
        FLAVA_TRY(flava_dnnl_bf16_copy_init(&e->w16, ctx, OC * C));
        FLAVA_TRY(flava_dnnl_bind(e->mem[LF_INP], e->inp16.buf));
    }
    return FLAVA_OK;
}

/* Binds `mem` to the bf16 copy of w: the context's per-step copy of the
 * parameters (flava_ctx_bf16_weights), or else one made now in `own`. */
static flava_status bind_weights16(flava_ctx *ctx, dnnl_memory_t mem, flava_dnnl_bf16_copy *own,
                                   const float *w, int64_t n)
{
    const uint16_t *w16 = flava_ctx_bf16_weights(ctx, w, n);
    if (!w16) {
        FLAVA_TRY(flava_dnnl_bf16_copy_run(own, ctx, w));
        w16 = own->buf;
    }
    return flava_dnnl_bind(mem, w16);
}

static flava_status check_sizes(const char *op, int N, int C, int OC)
{
    if (N < 1 || C < 1 || OC < 1)
        return FLAVA_ERROR(FLAVA_ERR_SHAPE, "%s: sizes N=%d C=%d OC=%d, expected all >= 1", op, N,
                           C, OC);
    return FLAVA_OK;
}

static flava_status linear_run(flava_ctx *ctx, float *out, const float *inp, const float *w,
                               const float *b, int N, int C, int OC, int gelu)
{
    const char *op = gelu ? "linear_gelu_forward" : "linear_forward";
    FLAVA_TRY(check_sizes(op, N, C, OC));
    int bf16 = flava_ctx_precision(ctx) == FLAVA_PRECISION_BF16;
    flava_op_key key = {op, {N, C, OC, b != NULL, gelu, bf16}};
    struct linear_fwd *e;
    FLAVA_TRY(flava_dnnl_entry((void **)&e, ctx, &key, sizeof *e, linear_fwd_build,
                               linear_fwd_destroy));
    if (bf16) {
        FLAVA_TRY(flava_dnnl_bf16_copy_run(&e->inp16, ctx, inp));
        FLAVA_TRY(bind_weights16(ctx, e->mem[LF_W], &e->w16, w, (int64_t)OC * C));
    } else {
        FLAVA_TRY(flava_dnnl_bind(e->mem[LF_INP], inp));
        FLAVA_TRY(flava_dnnl_bind(e->mem[LF_W], w));
    }
    FLAVA_TRY(flava_dnnl_bind(e->mem[LF_OUT], out));
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, e->mem[LF_INP]},
                               {DNNL_ARG_WEIGHTS, e->mem[LF_W]},
                               {DNNL_ARG_DST, e->mem[LF_OUT]},
                               {DNNL_ARG_BIAS, e->mem[LF_BIAS]}};
    if (b)
        FLAVA_TRY(flava_dnnl_bind(e->mem[LF_BIAS], b));
    return flava_dnnl_exec(ctx, e->matmul, b ? 4 : 3, args);
}

flava_status linear_forward(flava_ctx *ctx, float *out, const float *inp, const float *w,
                            const float *b, int N, int C, int OC)
{
    return linear_run(ctx, out, inp, w, b, N, C, OC, 0);
}

flava_status linear_gelu_forward(flava_ctx *ctx, float *out, const float *inp, const float *w,
                                 const float *b, int N, int C, int OC)
{
    return linear_run(ctx, out, inp, w, b, N, C, OC, 1);
}

/* ---- backward: key dims {N, C, OC, bf16} ---- */
enum { LB_DINP, LB_DW, LB_DB, LB_NPRIM };
enum {
    LB_DOUT,   /* [N,OC], src of dinp, weights of db (f32) */
    LB_DOUT16, /* [N,OC] in the matmul type, src of dinp */
    LB_DOUT_T, /* [OC,N] view, src of dw */
    LB_W,      /* [OC,C], weights of dinp */
    LB_INP,    /* [N,C], weights of dw */
    LB_ONES,   /* [1,N], src of db */
    LB_GINP, LB_GW, LB_GB, LB_NMEM
};
struct linear_bwd {
    dnnl_primitive_t prim[LB_NPRIM];
    dnnl_memory_t mem[LB_NMEM];
    float *ones;
    flava_dnnl_bf16_copy dout16, w16, inp16; /* bf16 mode only */
};

static void linear_bwd_destroy(void *p)
{
    struct linear_bwd *e = p;
    flava_dnnl_release(e->prim, LB_NPRIM, e->mem, LB_NMEM);
    flava_dnnl_bf16_copy_release(&e->dout16);
    flava_dnnl_bf16_copy_release(&e->w16);
    flava_dnnl_bf16_copy_release(&e->inp16);
    flava_free(e->ones);
    flava_free(e);
}

static flava_status linear_bwd_build(void *p, flava_ctx *ctx, const flava_op_key *key)
{
    struct linear_bwd *e = p;
    int64_t N = key->dims[0], C = key->dims[1], OC = key->dims[2];
    int bf16 = (int)key->dims[3];
    dnnl_data_type_t dt = matmul_type(bf16);
    dnnl_memory_desc_t md[LB_NMEM];
    FLAVA_TRY(flava_dnnl_md(&md[LB_DOUT], 2, (int64_t[]){N, OC}, NULL, dnnl_f32));
    FLAVA_TRY(flava_dnnl_md(&md[LB_DOUT16], 2, (int64_t[]){N, OC}, NULL, dt));
    FLAVA_TRY(flava_dnnl_md(&md[LB_DOUT_T], 2, (int64_t[]){OC, N}, (int64_t[]){1, OC}, dt));
    FLAVA_TRY(flava_dnnl_md(&md[LB_W], 2, (int64_t[]){OC, C}, NULL, dt));
    FLAVA_TRY(flava_dnnl_md(&md[LB_INP], 2, (int64_t[]){N, C}, NULL, dt));
    FLAVA_TRY(flava_dnnl_md(&md[LB_ONES], 2, (int64_t[]){1, N}, NULL, dnnl_f32));
    FLAVA_TRY(flava_dnnl_md(&md[LB_GINP], 2, (int64_t[]){N, C}, NULL, dnnl_f32));
    FLAVA_TRY(flava_dnnl_md(&md[LB_GW], 2, (int64_t[]){OC, C}, NULL, dnnl_f32));
    FLAVA_TRY(flava_dnnl_md(&md[LB_GB], 2, (int64_t[]){1, OC}, NULL, dnnl_f32));
    const int src[LB_NPRIM] = {LB_DOUT16, LB_DOUT_T, LB_ONES};
    const int wei[LB_NPRIM] = {LB_W, LB_INP, LB_DOUT};
    const int dst[LB_NPRIM] = {LB_GINP, LB_GW, LB_GB};
    flava_dnnl_attrs acc = {.accumulate = 1};
    for (int i = 0; i < LB_NPRIM; i++) {
        dnnl_matmul_desc_t d;
        FLAVA_DNNL(dnnl_matmul_desc_init(&d, &md[src[i]], &md[wei[i]], NULL, &md[dst[i]]));
        FLAVA_TRY(flava_dnnl_primitive(&e->prim[i], NULL, ctx, &d, &acc, NULL));
    }
    for (int i = 0; i < LB_NMEM; i++)
        FLAVA_TRY(flava_dnnl_memory(&e->mem[i], ctx, &md[i]));
    FLAVA_TRY(flava_alloc((void **)&e->ones, (size_t)N * sizeof(float), "linear_backward ones"));
    for (int64_t i = 0; i < N; i++)
        e->ones[i] = 1.0f;
    FLAVA_TRY(flava_dnnl_bind(e->mem[LB_ONES], e->ones));
    if (bf16) {
        FLAVA_TRY(flava_dnnl_bf16_copy_init(&e->dout16, ctx, N * OC));
        FLAVA_TRY(flava_dnnl_bf16_copy_init(&e->w16, ctx, OC * C));
        FLAVA_TRY(flava_dnnl_bf16_copy_init(&e->inp16, ctx, N * C));
        FLAVA_TRY(flava_dnnl_bind(e->mem[LB_DOUT16], e->dout16.buf));
        FLAVA_TRY(flava_dnnl_bind(e->mem[LB_DOUT_T], e->dout16.buf));
        FLAVA_TRY(flava_dnnl_bind(e->mem[LB_INP], e->inp16.buf));
    }
    return FLAVA_OK;
}

flava_status linear_backward(flava_ctx *ctx, float *dinp, float *dw, float *db,
                             const float *dout, const float *inp, const float *w,
                             int N, int C, int OC)
{
    FLAVA_TRY(check_sizes("linear_backward", N, C, OC));
    int bf16 = flava_ctx_precision(ctx) == FLAVA_PRECISION_BF16;
    flava_op_key key = {"linear_backward", {N, C, OC, bf16}};
    struct linear_bwd *e;
    FLAVA_TRY(flava_dnnl_entry((void **)&e, ctx, &key, sizeof *e, linear_bwd_build,
                               linear_bwd_destroy));
    dnnl_memory_t *m = e->mem;
    FLAVA_TRY(flava_dnnl_bind(m[LB_DOUT], dout));
    if (bf16 && (dinp || dw))
        FLAVA_TRY(flava_dnnl_bf16_copy_run(&e->dout16, ctx, dout));
    if (!bf16) {
        FLAVA_TRY(flava_dnnl_bind(m[LB_DOUT16], dout));
        FLAVA_TRY(flava_dnnl_bind(m[LB_DOUT_T], dout));
        FLAVA_TRY(flava_dnnl_bind(m[LB_W], w));
        FLAVA_TRY(flava_dnnl_bind(m[LB_INP], inp));
    }
    if (dinp) {
        if (bf16)
            FLAVA_TRY(bind_weights16(ctx, m[LB_W], &e->w16, w, (int64_t)OC * C));
        FLAVA_TRY(flava_dnnl_bind(m[LB_GINP], dinp));
        FLAVA_TRY(flava_dnnl_run_matmul(ctx, e->prim[LB_DINP], m[LB_DOUT16], m[LB_W], m[LB_GINP]));
    }
    if (dw) {
        if (bf16)
            FLAVA_TRY(flava_dnnl_bf16_copy_run(&e->inp16, ctx, inp));
        FLAVA_TRY(flava_dnnl_bind(m[LB_GW], dw));
        FLAVA_TRY(flava_dnnl_run_matmul(ctx, e->prim[LB_DW], m[LB_DOUT_T], m[LB_INP], m[LB_GW]));
    }
    if (db) {
        FLAVA_TRY(flava_dnnl_bind(m[LB_GB], db));
        FLAVA_TRY(flava_dnnl_run_matmul(ctx, e->prim[LB_DB], m[LB_ONES], m[LB_DOUT], m[LB_GB]));
    }
    return FLAVA_OK;
}

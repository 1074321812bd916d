/* conv.c - 2-D convolution through oneDNN: forward, backward data and
 * backward weights (+ bias), groups, NCHW or NHWC on either side.
 *
 * The primitives choose their own layouts (format "any"); the caller's
 * tensors are reordered in and out only where the layouts differ. Backward
 * primitives overwrite their outputs, so gradients land in a buffer of the
 * entry and a reorder with a sum post-op adds them into the caller's. Each
 * of the three directions is cached separately, so an op that never needs
 * the input gradient (the patch embedding) never builds that primitive.
 * In bf16 precision the forward reads bf16 copies of input and weights
 * (f32 accumulation and output), like the matmuls; the backward is f32. */
#include "ops.h"

#include <stdlib.h>

#include "dnnl_util.h"

flava_conv2d_dims flava_conv2d_patches(int N, int C, int size, int patch, int OC)
{
    flava_conv2d_dims d = {0};
    d.N = N;
    d.C = C;
    d.H = d.W = size;
    d.OC = OC;
    d.KH = d.KW = d.stride = patch;
    d.groups = 1;
    d.dst_nhwc = 1;
    return d;
}

static int asymmetric(const flava_conv2d_dims *d)
{
    return d->pad_top || d->pad_left || d->pad_bottom || d->pad_right;
}

/* The padding before (top, left) and after (bottom, right) the input. */
static void pads(const flava_conv2d_dims *d, int64_t before[2], int64_t after[2])
{
    int a = asymmetric(d);
    before[0] = a ? d->pad_top : d->pad;
    before[1] = a ? d->pad_left : d->pad;
    after[0] = a ? d->pad_bottom : d->pad;
    after[1] = a ? d->pad_right : d->pad;
}

int flava_conv2d_out_h(const flava_conv2d_dims *d)
{
    int64_t b[2], a[2];
    pads(d, b, a);
    return (int)((d->H + b[0] + a[0] - d->KH) / d->stride + 1);
}

int flava_conv2d_out_w(const flava_conv2d_dims *d)
{
    int64_t b[2], a[2];
    pads(d, b, a);
    return (int)((d->W + b[1] + a[1] - d->KW) / d->stride + 1);
}

static flava_status check_dims(const flava_conv2d_dims *d)
{
    if (d->N < 1 || d->C < 1 || d->H < 1 || d->W < 1 || d->OC < 1 || d->KH < 1 || d->KW < 1 ||
        d->stride < 1 || d->pad < 0 || d->groups < 1)
        return FLAVA_ERROR(FLAVA_ERR_SHAPE,
                           "conv2d: N %d C %d H %d W %d OC %d KH %d KW %d stride %d pad %d "
                           "groups %d: sizes, stride and groups must be >= 1, pad >= 0",
                           d->N, d->C, d->H, d->W, d->OC, d->KH, d->KW, d->stride, d->pad,
                           d->groups);
    if (d->pad_top < 0 || d->pad_left < 0 || d->pad_bottom < 0 || d->pad_right < 0 ||
        (asymmetric(d) && d->pad))
        return FLAVA_ERROR(FLAVA_ERR_SHAPE,
                           "conv2d: pad %d, pad_top %d pad_left %d pad_bottom %d pad_right %d: "
                           "the four sides must be >= 0 and, when set, replace pad (then 0)",
                           d->pad, d->pad_top, d->pad_left, d->pad_bottom, d->pad_right);
    if (d->C % d->groups || d->OC % d->groups)
        return FLAVA_ERROR(FLAVA_ERR_SHAPE,
                           "conv2d: %d groups do not divide %d input and %d output channels",
                           d->groups, d->C, d->OC);
    int64_t b[2], a[2];
    pads(d, b, a);
    if (d->H + b[0] + a[0] < d->KH || d->W + b[1] + a[1] < d->KW)
        return FLAVA_ERROR(FLAVA_ERR_SHAPE,
                           "conv2d: kernel %dx%d larger than the padded input %lldx%lld",
                           d->KH, d->KW, (long long)(d->H + b[0] + a[0]),
                           (long long)(d->W + b[1] + a[1]));
    return FLAVA_OK;
}

/* bf16 forward when the context asks for it and the CPU has it. */
static int conv_bf16(const flava_ctx *ctx)
{
    return flava_ctx_precision(ctx) == FLAVA_PRECISION_BF16 && flava_ctx_has_bf16(ctx);
}

/* ---- the caller's tensors in the caller's layouts (f32) ---- */

static flava_status act_md(dnnl_memory_desc_t *md, int N, int C, int H, int W, int nhwc)
{
    int64_t dims[4] = {N, C, H, W};
    int64_t nchw_strides[4] = {(int64_t)C * H * W, (int64_t)H * W, W, 1};
    int64_t nhwc_strides[4] = {(int64_t)H * W * C, 1, (int64_t)W * C, C};
    return flava_dnnl_md(md, 4, dims, nhwc ? nhwc_strides : nchw_strides, dnnl_f32);
}

/* PyTorch's [OC, C/g, KH, KW] seen as oneDNN's [g, OC/g, C/g, KH, KW]. */
static flava_status weights_md(dnnl_memory_desc_t *md, const flava_conv2d_dims *d,
                               dnnl_data_type_t dt, int any)
{
    int g = d->groups;
    /* full dnnl_dims_t arrays: oneDNN's prototypes take DNNL_MAX_NDIMS entries */
    dnnl_dims_t grouped = {g, d->OC / g, d->C / g, d->KH, d->KW};
    dnnl_dims_t plain = {d->OC, d->C, d->KH, d->KW};
    const int64_t *p = g > 1 ? grouped : plain;
    int nd = g > 1 ? 5 : 4;
    if (any) {
        FLAVA_DNNL(dnnl_memory_desc_init_by_tag(md, nd, p, dt, dnnl_format_tag_any));
        return FLAVA_OK;
    }
    return flava_dnnl_md(md, nd, p, NULL, dt);
}

static flava_status any_md(dnnl_memory_desc_t *md, int N, int C, int H, int W,
                           dnnl_data_type_t dt)
{
    dnnl_dims_t dims = {N, C, H, W};
    FLAVA_DNNL(dnnl_memory_desc_init_by_tag(md, 4, dims, dt, dnnl_format_tag_any));
    return FLAVA_OK;
}

/* ---- one primitive argument: the caller's memory, and where the layouts
 * differ (or the argument is a gradient to accumulate) an inner memory in
 * a buffer of the entry with the reorder between them ---- */

typedef enum { ARG_IN, ARG_OUT, ARG_GRAD } arg_kind;

typedef struct conv_arg {
    dnnl_memory_t user, inner;     /* inner NULL: the primitive uses user */
    dnnl_primitive_t reorder;      /* user→inner (in), inner→user (out; += for grads) */
    void *buf;
} conv_arg;

static flava_status grad_reorder(dnnl_primitive_t *prim, flava_ctx *ctx,
                                 const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *dst)
{
    dnnl_primitive_attr_t attr;
    dnnl_post_ops_t po;
    FLAVA_DNNL(dnnl_primitive_attr_create(&attr));
    dnnl_status_t s = dnnl_post_ops_create(&po);
    if (s == dnnl_success) {
        s = dnnl_post_ops_append_sum(po, 1.0f);
        if (s == dnnl_success)
            s = dnnl_primitive_attr_set_post_ops(attr, po);
        dnnl_post_ops_destroy(po);
    }
    dnnl_primitive_desc_t pd = NULL;
    dnnl_engine_t eng = flava_ctx_engine(ctx);
    if (s == dnnl_success)
        s = dnnl_reorder_primitive_desc_create(&pd, src, eng, dst, eng, attr);
    dnnl_primitive_attr_destroy(attr);
    if (s == dnnl_success) {
        s = dnnl_primitive_create(prim, pd);
        dnnl_primitive_desc_destroy(pd);
    }
    FLAVA_DNNL(s);
    return FLAVA_OK;
}

static flava_status arg_init(conv_arg *a, flava_ctx *ctx, const dnnl_memory_desc_t *user_md,
                             const dnnl_memory_desc_t *inner_md, arg_kind kind, const char *what)
{
    FLAVA_TRY(flava_dnnl_memory(&a->user, ctx, user_md));
    if (kind != ARG_GRAD && dnnl_memory_desc_equal(user_md, inner_md))
        return FLAVA_OK;
    FLAVA_TRY(flava_alloc(&a->buf, dnnl_memory_desc_get_size(inner_md), what));
    FLAVA_TRY(flava_dnnl_memory(&a->inner, ctx, inner_md));
    FLAVA_TRY(flava_dnnl_bind(a->inner, a->buf));
    if (kind == ARG_IN)
        return flava_dnnl_reorder(&a->reorder, ctx, user_md, inner_md);
    if (kind == ARG_OUT)
        return flava_dnnl_reorder(&a->reorder, ctx, inner_md, user_md);
    return grad_reorder(&a->reorder, ctx, inner_md, user_md);
}

static dnnl_memory_t arg_mem(const conv_arg *a) { return a->inner ? a->inner : a->user; }

/* Binds the caller's pointer; an input is reordered into the inner memory. */
static flava_status arg_bind(flava_ctx *ctx, conv_arg *a, const void *data, arg_kind kind)
{
    FLAVA_TRY(flava_dnnl_bind(a->user, data));
    if (kind == ARG_IN && a->reorder)
        return flava_dnnl_run_reorder(ctx, a->reorder, a->user, a->inner);
    return FLAVA_OK;
}

/* After the primitive ran: moves (or adds) an output into the caller's. */
static flava_status arg_finish(flava_ctx *ctx, conv_arg *a)
{
    if (!a->reorder)
        return FLAVA_OK;
    return flava_dnnl_run_reorder(ctx, a->reorder, a->inner, a->user);
}

static void arg_release(conv_arg *a)
{
    dnnl_memory_t mems[2] = {a->user, a->inner};
    flava_dnnl_release(&a->reorder, 1, mems, 2);
    flava_free(a->buf);
}

/* ---- the three directions, one cached entry each ---- */

typedef enum { CONV_FWD, CONV_BWD_DATA, CONV_BWD_WEIGHTS } conv_dir;
static const char *const CONV_OP[3] = {"conv2d_fwd", "conv2d_bwd_data", "conv2d_bwd_weights"};

typedef enum { T_SRC, T_WEI, T_BIAS, T_DST } conv_tensor;

/* One primitive argument: which tensor, where the primitive descriptor
 * says its layout is, and which way it flows. */
typedef struct conv_slot {
    int arg;
    conv_tensor t;
    dnnl_query_t query;
    int index;
    arg_kind kind;
    const char *what;
} conv_slot;

/* The caller passes pointers in this order; the bias slot is last and only
 * there when there is a bias. */
static const conv_slot CONV_SLOTS[3][4] = {
    [CONV_FWD] = {{DNNL_ARG_SRC, T_SRC, dnnl_query_src_md, 0, ARG_IN, "conv2d input"},
                  {DNNL_ARG_WEIGHTS, T_WEI, dnnl_query_weights_md, 0, ARG_IN, "conv2d weights"},
                  {DNNL_ARG_DST, T_DST, dnnl_query_dst_md, 0, ARG_OUT, "conv2d output"},
                  {DNNL_ARG_BIAS, T_BIAS, dnnl_query_weights_md, 1, ARG_IN, "conv2d bias"}},
    [CONV_BWD_DATA] = {{DNNL_ARG_DIFF_DST, T_DST, dnnl_query_diff_dst_md, 0, ARG_IN,
                        "conv2d output gradient"},
                       {DNNL_ARG_WEIGHTS, T_WEI, dnnl_query_weights_md, 0, ARG_IN,
                        "conv2d weights"},
                       {DNNL_ARG_DIFF_SRC, T_SRC, dnnl_query_diff_src_md, 0, ARG_GRAD,
                        "conv2d input gradient"}},
    [CONV_BWD_WEIGHTS] = {{DNNL_ARG_DIFF_DST, T_DST, dnnl_query_diff_dst_md, 0, ARG_IN,
                           "conv2d output gradient"},
                          {DNNL_ARG_SRC, T_SRC, dnnl_query_src_md, 0, ARG_IN, "conv2d input"},
                          {DNNL_ARG_DIFF_WEIGHTS, T_WEI, dnnl_query_diff_weights_md, 0, ARG_GRAD,
                           "conv2d weight gradient"},
                          {DNNL_ARG_DIFF_BIAS, T_BIAS, dnnl_query_diff_weights_md, 1, ARG_GRAD,
                           "conv2d bias gradient"}},
};

typedef struct conv_op {
    dnnl_primitive_t prim;
    conv_dir dir;
    int nslots;
    conv_arg a[4];
} conv_op;

static void conv_op_destroy(void *p)
{
    conv_op *e = p;
    for (int i = e->nslots - 1; i >= 0; i--)
        arg_release(&e->a[i]);
    flava_dnnl_release(&e->prim, 1, NULL, 0);
    free(e);
}

/* Descriptors: the caller's tensors (f32, their layouts) and the
 * primitive's ("any" layout; forward inputs in bf16 when asked). */
typedef struct conv_mds {
    dnnl_memory_desc_t user[4]; /* by conv_tensor */
    dnnl_memory_desc_t src, wei, dst;
    dnnl_dims_t strides, pad_l, pad_r;
} conv_mds;

static flava_status conv_mds_init(conv_mds *m, const flava_conv2d_dims *d, int bf16)
{
    int OH = flava_conv2d_out_h(d), OW = flava_conv2d_out_w(d);
    dnnl_data_type_t in_dt = bf16 ? dnnl_bf16 : dnnl_f32;
    int64_t oc = d->OC;
    FLAVA_TRY(act_md(&m->user[T_SRC], d->N, d->C, d->H, d->W, d->src_nhwc));
    FLAVA_TRY(act_md(&m->user[T_DST], d->N, d->OC, OH, OW, d->dst_nhwc));
    FLAVA_TRY(weights_md(&m->user[T_WEI], d, dnnl_f32, 0));
    FLAVA_TRY(flava_dnnl_md(&m->user[T_BIAS], 1, &oc, NULL, dnnl_f32));
    FLAVA_TRY(any_md(&m->src, d->N, d->C, d->H, d->W, in_dt));
    FLAVA_TRY(any_md(&m->dst, d->N, d->OC, OH, OW, dnnl_f32));
    FLAVA_TRY(weights_md(&m->wei, d, in_dt, 1));
    m->strides[0] = m->strides[1] = d->stride;
    pads(d, m->pad_l, m->pad_r);
    return FLAVA_OK;
}

/* The forward primitive: the forward op itself, and the backward's hint. */
static flava_status fwd_prim(dnnl_primitive_t *prim, dnnl_primitive_desc_t *pd, flava_ctx *ctx,
                             const conv_mds *m, int bias)
{
    dnnl_convolution_desc_t cd;
    FLAVA_DNNL(dnnl_convolution_forward_desc_init(&cd, dnnl_forward_training,
                                                  dnnl_convolution_direct, &m->src, &m->wei,
                                                  bias ? &m->user[T_BIAS] : NULL, &m->dst,
                                                  m->strides, m->pad_l, m->pad_r));
    return flava_dnnl_primitive(prim, pd, ctx, &cd, NULL, NULL);
}

static flava_status bwd_prim(conv_op *e, dnnl_primitive_desc_t *pd, flava_ctx *ctx,
                             const conv_mds *m, int bias)
{
    dnnl_primitive_t fwd;
    dnnl_primitive_desc_t hint;
    FLAVA_TRY(fwd_prim(&fwd, &hint, ctx, m, bias));
    dnnl_convolution_desc_t cd;
    dnnl_status_t s =
        e->dir == CONV_BWD_DATA
            ? dnnl_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct, &m->src,
                                                       &m->wei, &m->dst, m->strides, m->pad_l,
                                                       m->pad_r)
            : dnnl_convolution_backward_weights_desc_init(
                  &cd, dnnl_convolution_direct, &m->src, &m->wei, bias ? &m->user[T_BIAS] : NULL,
                  &m->dst, m->strides, m->pad_l, m->pad_r);
    flava_status st = s == dnnl_success
                          ? flava_dnnl_primitive(&e->prim, pd, ctx, &cd, NULL, hint)
                          : FLAVA_ERROR(FLAVA_ERR_DNNL, "%s descriptor: %s", CONV_OP[e->dir],
                                        flava_dnnl_status_str(s));
    dnnl_primitive_desc_destroy(hint);
    dnnl_primitive_destroy(fwd);
    return st;
}

static flava_status conv_op_build(conv_op *e, flava_ctx *ctx, const flava_conv2d_dims *d,
                                  int bias, int bf16)
{
    conv_mds m;
    FLAVA_TRY(conv_mds_init(&m, d, bf16));
    dnnl_primitive_desc_t pd = NULL;
    if (e->dir == CONV_FWD)
        FLAVA_TRY(fwd_prim(&e->prim, &pd, ctx, &m, bias));
    else
        FLAVA_TRY(bwd_prim(e, &pd, ctx, &m, bias));
    flava_status st = FLAVA_OK;
    for (int i = 0; i < e->nslots && st == FLAVA_OK; i++) {
        const conv_slot *sl = &CONV_SLOTS[e->dir][i];
        st = arg_init(&e->a[i], ctx, &m.user[sl->t],
                      dnnl_primitive_desc_query_md(pd, sl->query, sl->index), sl->kind, sl->what);
    }
    dnnl_primitive_desc_destroy(pd);
    return st;
}

/* Runs one direction on the caller's pointers (in CONV_SLOTS order; a NULL
 * gradient is computed into the entry and not added anywhere). */
static flava_status conv_run(flava_ctx *ctx, conv_dir dir, const flava_conv2d_dims *d, int bias,
                             int bf16, const void *const *ptr)
{
    int64_t pb[2], pa[2];
    pads(d, pb, pa);
    /* two non-negative ints per dim: lossless */
    flava_op_key key = {.op = CONV_OP[dir],
                        .dims = {d->N, d->C, d->H, d->W, d->OC, d->KH, d->KW, d->stride,
                                 pb[0] | pb[1] << 32, d->groups, d->src_nhwc, d->dst_nhwc, bias,
                                 bf16, pa[0] | pa[1] << 32}};
    conv_op *e = flava_ctx_lookup(ctx, &key);
    if (!e) {
        if (!(e = calloc(1, sizeof *e)))
            return FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s: cannot allocate a cache entry", key.op);
        e->dir = dir;
        e->nslots = 3 + bias;
        flava_status st = conv_op_build(e, ctx, d, bias, bf16);
        if (st != FLAVA_OK) {
            conv_op_destroy(e);
            return st;
        }
        FLAVA_TRY(flava_ctx_insert(ctx, &key, e, conv_op_destroy));
    }
    dnnl_exec_arg_t args[4];
    for (int i = 0; i < e->nslots; i++) {
        FLAVA_TRY(arg_bind(ctx, &e->a[i], ptr[i], CONV_SLOTS[dir][i].kind));
        args[i].arg = CONV_SLOTS[dir][i].arg;
        args[i].memory = arg_mem(&e->a[i]);
    }
    FLAVA_TRY(flava_dnnl_exec(ctx, e->prim, e->nslots, args));
    for (int i = 0; i < e->nslots; i++)
        if (CONV_SLOTS[dir][i].kind != ARG_IN && ptr[i])
            FLAVA_TRY(arg_finish(ctx, &e->a[i]));
    return FLAVA_OK;
}

flava_status conv2d_forward(flava_ctx *ctx, float *out, const float *inp, const float *w,
                            const float *b, const flava_conv2d_dims *d)
{
    FLAVA_TRY(check_dims(d));
    const void *ptr[4] = {inp, w, out, b};
    return conv_run(ctx, CONV_FWD, d, b != NULL, conv_bf16(ctx), ptr);
}

flava_status conv2d_backward(flava_ctx *ctx, float *dinp, float *dw, float *db,
                             const float *dout, const float *inp, const float *w,
                             const flava_conv2d_dims *d)
{
    FLAVA_TRY(check_dims(d));
    /* Backward stays f32 in either precision: at the patch-embedding shape
     * oneDNN 2.6's bf16 (AMX) kernels with 3 input channels were slower than
     * f32, by ~100x for the input gradient. */
    if (dinp) {
        const void *ptr[3] = {dout, w, dinp};
        FLAVA_TRY(conv_run(ctx, CONV_BWD_DATA, d, 0, 0, ptr));
    }
    if (dw || db) {
        /* one primitive computes both; an unwanted one stays in the entry */
        const void *ptr[4] = {dout, inp, dw, db};
        FLAVA_TRY(conv_run(ctx, CONV_BWD_WEIGHTS, d, db != NULL, 0, ptr));
    }
    return FLAVA_OK;
}

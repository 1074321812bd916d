/* conv.c - 2-D convolution through oneDNN: forward, backward data and
 * backward weights (+ bias), groups, NCHW or NHWC on either side.
 *
 * The primitives choose their own layouts (format "any"); the caller's
 * tensors are reordered in and out only where the layouts differ. Backward
 * primitives overwrite their outputs, so gradients land in a buffer of the
 * entry and a reorder with a sum post-op adds them into the caller's. Each
 * of the three directions is cached separately, so an op that never needs
 * the input gradient (the patch embedding) never builds that primitive. */
#include "ops.h"

#include <stdlib.h>

#include "dnnl_util.h"

int flava_conv2d_out_h(const flava_conv2d_dims *d)
{
    return (d->H + 2 * d->pad - d->KH) / d->stride + 1;
}

int flava_conv2d_out_w(const flava_conv2d_dims *d)
{
    return (d->W + 2 * d->pad - d->KW) / d->stride + 1;
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
    if (d->C % d->groups || d->OC % d->groups)
        return FLAVA_ERROR(FLAVA_ERR_SHAPE,
                           "conv2d: %d groups do not divide %d input and %d output channels",
                           d->groups, d->C, d->OC);
    if (d->H + 2 * d->pad < d->KH || d->W + 2 * d->pad < d->KW)
        return FLAVA_ERROR(FLAVA_ERR_SHAPE,
                           "conv2d: kernel %dx%d larger than the padded input %dx%d",
                           d->KH, d->KW, d->H + 2 * d->pad, d->W + 2 * d->pad);
    return FLAVA_OK;
}

/* bf16 compute when the context asks for it and the CPU has it. */
static int conv_bf16(const flava_ctx *ctx)
{
    return flava_ctx_precision(ctx) == FLAVA_PRECISION_BF16 && flava_ctx_has_bf16(ctx);
}

static flava_op_key conv_key(const char *op, const flava_conv2d_dims *d, int bias, int bf16)
{
    flava_op_key k = {.op = op,
                      .dims = {d->N, d->C, d->H, d->W, d->OC, d->KH, d->KW, d->stride, d->pad,
                               d->groups, d->src_nhwc, d->dst_nhwc, bias, bf16}};
    return k;
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
    /* dnnl_dims_t: oneDNN reads all DNNL_MAX_NDIMS entries */
    dnnl_dims_t dims = {g, d->OC / g, d->C / g, d->KH, d->KW};
    const int64_t *p = g > 1 ? dims : dims + 1;
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

/* ---- op descriptors, shared by the three directions ---- */

typedef struct conv_mds {
    dnnl_memory_desc_t src, wei, bias, dst;  /* the caller's, f32 */
    /* for the primitives: inputs in the compute type, results in f32 */
    dnnl_memory_desc_t src_in, wei_in, dst_in, src_out, wei_out, dst_out;
    dnnl_dims_t strides, pad;
} conv_mds;

static flava_status conv_mds_init(conv_mds *m, const flava_conv2d_dims *d, int bf16)
{
    int OH = flava_conv2d_out_h(d), OW = flava_conv2d_out_w(d);
    dnnl_data_type_t in_dt = bf16 ? dnnl_bf16 : dnnl_f32;
    int64_t oc = d->OC;
    FLAVA_TRY(act_md(&m->src, d->N, d->C, d->H, d->W, d->src_nhwc));
    FLAVA_TRY(act_md(&m->dst, d->N, d->OC, OH, OW, d->dst_nhwc));
    FLAVA_TRY(weights_md(&m->wei, d, dnnl_f32, 0));
    FLAVA_TRY(flava_dnnl_md(&m->bias, 1, &oc, NULL, dnnl_f32));
    FLAVA_TRY(any_md(&m->src_in, d->N, d->C, d->H, d->W, in_dt));
    FLAVA_TRY(any_md(&m->src_out, d->N, d->C, d->H, d->W, dnnl_f32));
    FLAVA_TRY(any_md(&m->dst_in, d->N, d->OC, OH, OW, in_dt));
    FLAVA_TRY(any_md(&m->dst_out, d->N, d->OC, OH, OW, dnnl_f32));
    FLAVA_TRY(weights_md(&m->wei_in, d, in_dt, 1));
    FLAVA_TRY(weights_md(&m->wei_out, d, dnnl_f32, 1));
    m->strides[0] = m->strides[1] = d->stride;
    m->pad[0] = m->pad[1] = d->pad;
    return FLAVA_OK;
}

/* The forward primitive descriptor: the forward op itself, and the hint of
 * the backward ones. */
static flava_status fwd_pd(dnnl_primitive_t *prim, dnnl_primitive_desc_t *pd, flava_ctx *ctx,
                           const conv_mds *m, int bias)
{
    dnnl_convolution_desc_t cd;
    FLAVA_DNNL(dnnl_convolution_forward_desc_init(&cd, dnnl_forward_training,
                                                  dnnl_convolution_direct, &m->src_in, &m->wei_in,
                                                  bias ? &m->bias : NULL, &m->dst_out, m->strides,
                                                  m->pad, m->pad));
    return flava_dnnl_primitive(prim, pd, ctx, &cd, NULL, NULL);
}

static const dnnl_memory_desc_t *query(const_dnnl_primitive_desc_t pd, dnnl_query_t what)
{
    return dnnl_primitive_desc_query_md(pd, what, 0);
}

/* ---- the cache: one entry per direction and shape ---- */

typedef flava_status (*conv_build_fn)(void *entry, flava_ctx *ctx, const flava_conv2d_dims *d,
                                      int bias, int bf16);

static flava_status conv_entry(void **out, flava_ctx *ctx, const char *op, size_t size,
                               conv_build_fn build, flava_op_entry_destroy destroy,
                               const flava_conv2d_dims *d, int bias, int bf16)
{
    flava_op_key key = conv_key(op, d, bias, bf16);
    void *e = flava_ctx_lookup(ctx, &key);
    if (!e) {
        if (!(e = calloc(1, size)))
            return FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s: cannot allocate a cache entry", op);
        flava_status st = build(e, ctx, d, bias, bf16);
        if (st != FLAVA_OK) {
            destroy(e);
            return st;
        }
        FLAVA_TRY(flava_ctx_insert(ctx, &key, e, destroy));
    }
    *out = e;
    return FLAVA_OK;
}

/* ---- forward ---- */

typedef struct conv_fwd {
    dnnl_primitive_t prim;
    conv_arg src, wei, bias, dst;
} conv_fwd;

static void conv_fwd_destroy(void *p)
{
    conv_fwd *e = p;
    arg_release(&e->dst);
    arg_release(&e->bias);
    arg_release(&e->wei);
    arg_release(&e->src);
    flava_dnnl_release(&e->prim, 1, NULL, 0);
    free(e);
}

static flava_status conv_fwd_build(void *entry, flava_ctx *ctx, const flava_conv2d_dims *d,
                                   int bias, int bf16)
{
    conv_fwd *e = entry;
    conv_mds m;
    FLAVA_TRY(conv_mds_init(&m, d, bf16));
    dnnl_primitive_desc_t pd;
    FLAVA_TRY(fwd_pd(&e->prim, &pd, ctx, &m, bias));
    flava_status st =
        arg_init(&e->src, ctx, &m.src, query(pd, dnnl_query_src_md), ARG_IN, "conv2d input");
    if (st == FLAVA_OK)
        st = arg_init(&e->wei, ctx, &m.wei, query(pd, dnnl_query_weights_md), ARG_IN,
                      "conv2d weights");
    if (st == FLAVA_OK && bias)
        st = arg_init(&e->bias, ctx, &m.bias, &m.bias, ARG_IN, "conv2d bias");
    if (st == FLAVA_OK)
        st = arg_init(&e->dst, ctx, &m.dst, query(pd, dnnl_query_dst_md), ARG_OUT,
                      "conv2d output");
    dnnl_primitive_desc_destroy(pd);
    return st;
}

flava_status conv2d_forward(flava_ctx *ctx, float *out, const float *inp, const float *w,
                            const float *b, const flava_conv2d_dims *d)
{
    FLAVA_TRY(check_dims(d));
    int bias = b != NULL, bf16 = conv_bf16(ctx);
    void *entry;
    FLAVA_TRY(conv_entry(&entry, ctx, "conv2d_fwd", sizeof(conv_fwd), conv_fwd_build,
                         conv_fwd_destroy, d, bias, bf16));
    conv_fwd *e = entry;
    FLAVA_TRY(arg_bind(ctx, &e->src, inp, ARG_IN));
    FLAVA_TRY(arg_bind(ctx, &e->wei, w, ARG_IN));
    if (bias)
        FLAVA_TRY(arg_bind(ctx, &e->bias, b, ARG_IN));
    FLAVA_TRY(arg_bind(ctx, &e->dst, out, ARG_OUT));
    dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, arg_mem(&e->src)},
                              {DNNL_ARG_WEIGHTS, arg_mem(&e->wei)},
                              {DNNL_ARG_DST, arg_mem(&e->dst)},
                              {DNNL_ARG_BIAS, bias ? arg_mem(&e->bias) : NULL}};
    FLAVA_TRY(flava_dnnl_exec(ctx, e->prim, bias ? 4 : 3, args));
    return arg_finish(ctx, &e->dst);
}

/* ---- backward data: dinp += convᵀ(dout, w) ---- */

typedef struct conv_bwd_data {
    dnnl_primitive_t prim;
    conv_arg ddst, wei, dsrc;
} conv_bwd_data;

static void conv_bwd_data_destroy(void *p)
{
    conv_bwd_data *e = p;
    arg_release(&e->dsrc);
    arg_release(&e->wei);
    arg_release(&e->ddst);
    flava_dnnl_release(&e->prim, 1, NULL, 0);
    free(e);
}

static flava_status conv_bwd_data_build(void *entry, flava_ctx *ctx,
                                        const flava_conv2d_dims *d, int bias, int bf16)
{
    conv_bwd_data *e = entry;
    (void)bias; /* the input gradient does not depend on it */
    conv_mds m;
    FLAVA_TRY(conv_mds_init(&m, d, bf16));
    dnnl_primitive_t fwd;
    dnnl_primitive_desc_t hint, pd = NULL;
    FLAVA_TRY(fwd_pd(&fwd, &hint, ctx, &m, 0));
    dnnl_convolution_desc_t cd;
    flava_status st = FLAVA_OK;
    dnnl_status_t s = dnnl_convolution_backward_data_desc_init(
        &cd, dnnl_convolution_direct, &m.src_out, &m.wei_in, &m.dst_in, m.strides, m.pad, m.pad);
    if (s != dnnl_success)
        st = FLAVA_ERROR(FLAVA_ERR_DNNL, "conv2d backward data descriptor: %s",
                         flava_dnnl_status_str(s));
    if (st == FLAVA_OK)
        st = flava_dnnl_primitive(&e->prim, &pd, ctx, &cd, NULL, hint);
    if (st == FLAVA_OK)
        st = arg_init(&e->ddst, ctx, &m.dst, query(pd, dnnl_query_diff_dst_md), ARG_IN,
                      "conv2d output gradient");
    if (st == FLAVA_OK)
        st = arg_init(&e->wei, ctx, &m.wei, query(pd, dnnl_query_weights_md), ARG_IN,
                      "conv2d weights");
    if (st == FLAVA_OK)
        st = arg_init(&e->dsrc, ctx, &m.src, query(pd, dnnl_query_diff_src_md), ARG_GRAD,
                      "conv2d input gradient");
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    dnnl_primitive_desc_destroy(hint);
    dnnl_primitive_destroy(fwd);
    return st;
}

/* ---- backward weights: dw += ..., db += sum of dout ---- */

typedef struct conv_bwd_weights {
    dnnl_primitive_t prim;
    conv_arg src, ddst, dwei, dbias;
} conv_bwd_weights;

static void conv_bwd_weights_destroy(void *p)
{
    conv_bwd_weights *e = p;
    arg_release(&e->dbias);
    arg_release(&e->dwei);
    arg_release(&e->ddst);
    arg_release(&e->src);
    flava_dnnl_release(&e->prim, 1, NULL, 0);
    free(e);
}

static flava_status conv_bwd_weights_build(void *entry, flava_ctx *ctx,
                                           const flava_conv2d_dims *d, int bias, int bf16)
{
    conv_bwd_weights *e = entry;
    conv_mds m;
    FLAVA_TRY(conv_mds_init(&m, d, bf16));
    dnnl_primitive_t fwd;
    dnnl_primitive_desc_t hint, pd = NULL;
    FLAVA_TRY(fwd_pd(&fwd, &hint, ctx, &m, bias));
    dnnl_convolution_desc_t cd;
    flava_status st = FLAVA_OK;
    dnnl_status_t s = dnnl_convolution_backward_weights_desc_init(
        &cd, dnnl_convolution_direct, &m.src_in, &m.wei_out, bias ? &m.bias : NULL, &m.dst_in,
        m.strides, m.pad, m.pad);
    if (s != dnnl_success)
        st = FLAVA_ERROR(FLAVA_ERR_DNNL, "conv2d backward weights descriptor: %s",
                         flava_dnnl_status_str(s));
    if (st == FLAVA_OK)
        st = flava_dnnl_primitive(&e->prim, &pd, ctx, &cd, NULL, hint);
    if (st == FLAVA_OK)
        st = arg_init(&e->src, ctx, &m.src, query(pd, dnnl_query_src_md), ARG_IN, "conv2d input");
    if (st == FLAVA_OK)
        st = arg_init(&e->ddst, ctx, &m.dst, query(pd, dnnl_query_diff_dst_md), ARG_IN,
                      "conv2d output gradient");
    if (st == FLAVA_OK)
        st = arg_init(&e->dwei, ctx, &m.wei, query(pd, dnnl_query_diff_weights_md), ARG_GRAD,
                      "conv2d weight gradient");
    if (st == FLAVA_OK && bias)
        st = arg_init(&e->dbias, ctx, &m.bias, &m.bias, ARG_GRAD, "conv2d bias gradient");
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    dnnl_primitive_desc_destroy(hint);
    dnnl_primitive_destroy(fwd);
    return st;
}

flava_status conv2d_backward(flava_ctx *ctx, float *dinp, float *dw, float *db,
                             const float *dout, const float *inp, const float *w,
                             const flava_conv2d_dims *d)
{
    FLAVA_TRY(check_dims(d));
    int bf16 = conv_bf16(ctx);
    if (dinp) {
        void *entry;
        FLAVA_TRY(conv_entry(&entry, ctx, "conv2d_bwd_data", sizeof(conv_bwd_data), conv_bwd_data_build,
                             conv_bwd_data_destroy, d, 0, bf16));
        conv_bwd_data *e = entry;
        FLAVA_TRY(arg_bind(ctx, &e->ddst, dout, ARG_IN));
        FLAVA_TRY(arg_bind(ctx, &e->wei, w, ARG_IN));
        FLAVA_TRY(arg_bind(ctx, &e->dsrc, dinp, ARG_GRAD));
        dnnl_exec_arg_t args[] = {{DNNL_ARG_DIFF_DST, arg_mem(&e->ddst)},
                                  {DNNL_ARG_WEIGHTS, arg_mem(&e->wei)},
                                  {DNNL_ARG_DIFF_SRC, arg_mem(&e->dsrc)}};
        FLAVA_TRY(flava_dnnl_exec(ctx, e->prim, 3, args));
        FLAVA_TRY(arg_finish(ctx, &e->dsrc));
    }
    if (dw || db) {
        /* the primitive computes both; the one not wanted stays in the entry */
        int bias = db != NULL;
        void *entry;
        FLAVA_TRY(conv_entry(&entry, ctx, "conv2d_bwd_weights", sizeof(conv_bwd_weights),
                             conv_bwd_weights_build, conv_bwd_weights_destroy, d, bias, bf16));
        conv_bwd_weights *e = entry;
        FLAVA_TRY(arg_bind(ctx, &e->src, inp, ARG_IN));
        FLAVA_TRY(arg_bind(ctx, &e->ddst, dout, ARG_IN));
        FLAVA_TRY(arg_bind(ctx, &e->dwei, dw, ARG_GRAD));
        if (bias)
            FLAVA_TRY(arg_bind(ctx, &e->dbias, db, ARG_GRAD));
        dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, arg_mem(&e->src)},
                                  {DNNL_ARG_DIFF_DST, arg_mem(&e->ddst)},
                                  {DNNL_ARG_DIFF_WEIGHTS, arg_mem(&e->dwei)},
                                  {DNNL_ARG_DIFF_BIAS, bias ? arg_mem(&e->dbias) : NULL}};
        FLAVA_TRY(flava_dnnl_exec(ctx, e->prim, bias ? 4 : 3, args));
        if (dw)
            FLAVA_TRY(arg_finish(ctx, &e->dwei));
        if (bias)
            FLAVA_TRY(arg_finish(ctx, &e->dbias));
    }
    return FLAVA_OK;
}

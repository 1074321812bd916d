/* check_ops_rest.c - convolution, max pooling, embedding, L2 normalisation
 * and the losses, each forward against a plain double-precision loop and
 * each backward against central finite differences of that loop (loss =
 * sum(out * R) for a random R).
 *
 * Every backward is called twice on gradient buffers that start from random
 * values: the check is on (g - g0) / 2, so it fails if an op overwrites
 * instead of accumulating. */
#include "testutil.h"

#include <omp.h>
#include <string.h>

#include "safetensors.h"

/* ---- helpers ---- */

static float *fvec(int64_t n, uint64_t seed, float lo, float hi)
{
    float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof *x);
    ck_assert_ptr_nonnull(x);
    test_fill(x, n, seed, lo, hi);
    return x;
}

static double *dvec(const float *x, int64_t n)
{
    double *d = malloc((size_t)(n > 0 ? n : 1) * sizeof *d);
    ck_assert_ptr_nonnull(d);
    for (int64_t i = 0; i < n; i++)
        d[i] = x ? x[i] : 0.0;
    return d;
}

static float *fcopy(const float *x, int64_t n)
{
    float *y = malloc((size_t)(n > 0 ? n : 1) * sizeof *y);
    ck_assert_ptr_nonnull(y);
    memcpy(y, x, (size_t)n * sizeof *y);
    return y;
}

/* g := (g - g0) / 2, the gradient of one call if two calls accumulated. */
static void one_call(float *g, const float *g0, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        g[i] = (g[i] - g0[i]) / 2;
}

static double dot(const double *a, const double *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* The reference loss as a function of its (double) inputs, which the
 * gradient check perturbs in place. */
typedef double (*ref_loss_fn)(void *p);

enum { MAX_PROBES = 48 };

/* Compares grad[i] with the central difference of f in x[i], for all i if
 * n <= MAX_PROBES, otherwise for MAX_PROBES seeded random i. */
static void check_fd(const char *name, const float *grad, double *x, int64_t n, ref_loss_fn f,
                     void *p, double h, double rtol, double atol)
{
    flava_rng r;
    flava_rng_init(&r, 99, (uint64_t)n);
    int probes = n <= MAX_PROBES ? (int)n : MAX_PROBES;
    for (int k = 0; k < probes; k++) {
        int64_t i = n <= MAX_PROBES ? k : (int64_t)flava_rng_below(&r, (uint64_t)n);
        double keep = x[i];
        x[i] = keep + h;
        double lp = f(p);
        x[i] = keep - h;
        double lm = f(p);
        x[i] = keep;
        double fd = (lp - lm) / (2 * h);
        ck_assert_msg(fabs(grad[i] - fd) <= atol + rtol * fabs(fd),
                      "%s[%lld]: backward %.9g, finite difference %.9g", name, (long long)i,
                      (double)grad[i], fd);
    }
}

static flava_ctx *ctx;

static void ctx_setup(void)
{
    ck_assert_int_eq(flava_ctx_create(&ctx, FLAVA_PRECISION_F32), FLAVA_OK);
}

static void ctx_teardown(void) { flava_ctx_destroy(ctx); }

/* ---- convolution ---- */

static int64_t act_at(int n, int c, int h, int w, int C, int H, int W, int nhwc)
{
    return nhwc ? (((int64_t)n * H + h) * W + w) * C + c : (((int64_t)n * C + c) * H + h) * W + w;
}

static void conv_ref(double *out, const double *inp, const double *w, const double *b,
                     const flava_conv2d_dims *d)
{
    int OH = flava_conv2d_out_h(d), OW = flava_conv2d_out_w(d);
    int cg = d->C / d->groups, og = d->OC / d->groups;
    for (int n = 0; n < d->N; n++)
        for (int oc = 0; oc < d->OC; oc++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    double s = b ? b[oc] : 0;
                    int g = oc / og;
                    for (int ci = 0; ci < cg; ci++)
                        for (int kh = 0; kh < d->KH; kh++)
                            for (int kw = 0; kw < d->KW; kw++) {
                                int ih = oh * d->stride - d->pad + kh;
                                int iw = ow * d->stride - d->pad + kw;
                                if (ih < 0 || ih >= d->H || iw < 0 || iw >= d->W)
                                    continue;
                                s += w[(((int64_t)oc * cg + ci) * d->KH + kh) * d->KW + kw] *
                                     inp[act_at(n, g * cg + ci, ih, iw, d->C, d->H, d->W,
                                                d->src_nhwc)];
                            }
                    out[act_at(n, oc, oh, ow, d->OC, OH, OW, d->dst_nhwc)] = s;
                }
}

typedef struct conv_case {
    const flava_conv2d_dims *d;
    double *inp, *w, *b, *out, *R;
    int64_t nout;
} conv_case;

static double conv_loss(void *p)
{
    conv_case *c = p;
    conv_ref(c->out, c->inp, c->w, c->b, c->d);
    return dot(c->out, c->R, c->nout);
}

/* Forward against conv_ref, then every gradient against finite differences. */
static void run_conv(const flava_conv2d_dims *d, int bias, double rtol, double atol)
{
    int OH = flava_conv2d_out_h(d), OW = flava_conv2d_out_w(d);
    int64_t nin = (int64_t)d->N * d->C * d->H * d->W;
    int64_t nw = (int64_t)d->OC * (d->C / d->groups) * d->KH * d->KW;
    int64_t nout = (int64_t)d->N * d->OC * OH * OW;
    float *inp = fvec(nin, 1, -1, 1), *w = fvec(nw, 2, -1, 1), *b = fvec(d->OC, 3, -1, 1);
    float *out = fvec(nout, 4, 0, 0), *R = fvec(nout, 5, -1, 1);
    float *dinp0 = fvec(nin, 6, -1, 1), *dw0 = fvec(nw, 7, -1, 1), *db0 = fvec(d->OC, 8, -1, 1);
    float *dinp = fcopy(dinp0, nin), *dw = fcopy(dw0, nw), *db = fcopy(db0, d->OC);

    ck_assert_int_eq(conv2d_forward(ctx, out, inp, w, bias ? b : NULL, d), FLAVA_OK);
    conv_case c = {d, dvec(inp, nin), dvec(w, nw), bias ? dvec(b, d->OC) : NULL,
                   dvec(NULL, nout), dvec(R, nout), nout};
    conv_loss(&c);
    ck_assert_close(out, c.out, nout, rtol, atol, "conv2d out");

    for (int k = 0; k < 2; k++)
        ck_assert_int_eq(conv2d_backward(ctx, dinp, dw, bias ? db : NULL, R, inp, w, d), FLAVA_OK);
    one_call(dinp, dinp0, nin);
    one_call(dw, dw0, nw);
    one_call(db, db0, d->OC);
    check_fd("conv2d dinp", dinp, c.inp, nin, conv_loss, &c, 1e-6, rtol, atol);
    check_fd("conv2d dw", dw, c.w, nw, conv_loss, &c, 1e-6, rtol, atol);
    if (bias)
        check_fd("conv2d db", db, c.b, d->OC, conv_loss, &c, 1e-6, rtol, atol);

    free(c.inp), free(c.w), free(c.b), free(c.out), free(c.R);
    free(inp), free(w), free(b), free(out), free(R);
    free(dinp0), free(dw0), free(db0), free(dinp), free(dw), free(db);
}

/* padding; stride with a non-square kernel and NHWC input; groups with NHWC
 * output; depthwise (channel multiplier 2) NHWC to NHWC; batch 1 */
static const struct conv_test {
    flava_conv2d_dims d;
    int bias;
} conv_tests[] = {
    {{.N = 2, .C = 3, .H = 7, .W = 6, .OC = 5, .KH = 3, .KW = 3, .stride = 1, .pad = 1,
      .groups = 1}, 1},
    {{.N = 1, .C = 4, .H = 9, .W = 8, .OC = 6, .KH = 3, .KW = 2, .stride = 2, .pad = 0,
      .groups = 1, .src_nhwc = 1}, 0},
    {{.N = 2, .C = 6, .H = 5, .W = 5, .OC = 4, .KH = 3, .KW = 3, .stride = 1, .pad = 1,
      .groups = 2, .dst_nhwc = 1}, 1},
    {{.N = 3, .C = 4, .H = 8, .W = 7, .OC = 8, .KH = 3, .KW = 3, .stride = 2, .pad = 1,
      .groups = 4, .src_nhwc = 1, .dst_nhwc = 1}, 1},
};

START_TEST(test_conv)
{
    run_conv(&conv_tests[_i].d, conv_tests[_i].bias, 1e-4, 1e-5);
}
END_TEST

START_TEST(test_conv_bf16)
{
    if (!flava_ctx_has_bf16(ctx))
        return;
    flava_ctx_set_precision(ctx, FLAVA_PRECISION_BF16);
    flava_conv2d_dims d = {.N = 2, .C = 8, .H = 6, .W = 6, .OC = 4, .KH = 3, .KW = 3,
                           .stride = 1, .pad = 1, .groups = 1, .dst_nhwc = 1};
    /* inputs rounded to 8 mantissa bits: about 72 terms of ±2^-9 relative */
    run_conv(&d, 1, 3e-2, 3e-2);
}
END_TEST

/* Only the wanted gradients are computed; NULL ones are left alone. */
START_TEST(test_conv_null_gradients)
{
    flava_conv2d_dims d = {.N = 1, .C = 2, .H = 5, .W = 5, .OC = 3, .KH = 2, .KW = 2,
                           .stride = 1, .pad = 0, .groups = 1};
    int64_t nin = 50, nw = 24, nout = 48;
    float *inp = fvec(nin, 1, -1, 1), *w = fvec(nw, 2, -1, 1), *R = fvec(nout, 3, -1, 1);
    float *a_in = fvec(nin, 0, 0, 0), *a_w = fvec(nw, 0, 0, 0), *a_b = fvec(3, 0, 0, 0);
    float *b_in = fvec(nin, 0, 0, 0), *b_w = fvec(nw, 0, 0, 0), *b_b = fvec(3, 0, 0, 0);
    ck_assert_int_eq(conv2d_backward(ctx, a_in, a_w, a_b, R, inp, w, &d), FLAVA_OK);
    ck_assert_int_eq(conv2d_backward(ctx, b_in, NULL, NULL, R, inp, w, &d), FLAVA_OK);
    ck_assert_int_eq(conv2d_backward(ctx, NULL, b_w, NULL, R, inp, w, &d), FLAVA_OK);
    ck_assert_int_eq(conv2d_backward(ctx, NULL, NULL, b_b, R, inp, w, &d), FLAVA_OK);
    ck_assert_mem_eq(a_in, b_in, (size_t)nin * sizeof(float));
    ck_assert_mem_eq(a_w, b_w, (size_t)nw * sizeof(float));
    for (int i = 0; i < 3; i++)
        ck_assert_float_eq_tol(a_b[i], b_b[i], 1e-6f);
    free(inp), free(w), free(R), free(a_in), free(a_w), free(a_b), free(b_in), free(b_w),
        free(b_b);
}
END_TEST

/* FLAVA's patch embedding: 3x224x224, 16x16 patches, 384 channels, written
 * as [N, 196, 384]. A few elements of each result against double loops. */
START_TEST(test_conv_patch_embedding)
{
    flava_conv2d_dims d = {.N = 1, .C = 3, .H = 224, .W = 224, .OC = 384, .KH = 16, .KW = 16,
                           .stride = 16, .pad = 0, .groups = 1, .dst_nhwc = 1};
    const int P = 14, K = 16, OC = 384, C = 3, H = 224;
    int64_t nin = (int64_t)C * H * H, nw = (int64_t)OC * C * K * K, nout = (int64_t)P * P * OC;
    ck_assert_int_eq(flava_conv2d_out_h(&d), P);
    ck_assert_int_eq(flava_conv2d_out_w(&d), P);
    float *inp = fvec(nin, 1, -1, 1), *w = fvec(nw, 2, -0.05f, 0.05f), *b = fvec(OC, 3, -1, 1);
    float *out = fvec(nout, 0, 0, 0), *R = fvec(nout, 4, -1, 1);
    float *dinp = fvec(nin, 0, 0, 0), *dw = fvec(nw, 0, 0, 0), *db = fvec(OC, 0, 0, 0);
    ck_assert_int_eq(conv2d_forward(ctx, out, inp, w, b, &d), FLAVA_OK);
    ck_assert_int_eq(conv2d_backward(ctx, dinp, dw, db, R, inp, w, &d), FLAVA_OK);
    flava_rng r;
    flava_rng_init(&r, 5, 0);
    for (int k = 0; k < 64; k++) {
        int p = (int)flava_rng_below(&r, P * P), oc = (int)flava_rng_below(&r, OC);
        double s = b[oc];
        for (int c = 0; c < C; c++)
            for (int kh = 0; kh < K; kh++)
                for (int kw = 0; kw < K; kw++)
                    s += (double)w[((oc * C + c) * K + kh) * K + kw] *
                         inp[((int64_t)c * H + (p / P) * K + kh) * H + (p % P) * K + kw];
        ck_assert_close(&out[(int64_t)p * OC + oc], &s, 1, 1e-4, 1e-5, "patch out");

        /* kernel = stride: each input pixel feeds one patch */
        int c = (int)flava_rng_below(&r, C), y = (int)flava_rng_below(&r, H),
            x = (int)flava_rng_below(&r, H);
        int64_t patch = (int64_t)(y / K) * P + x / K;
        double gi = 0;
        for (int o = 0; o < OC; o++)
            gi += (double)R[patch * OC + o] * w[((o * C + c) * K + y % K) * K + x % K];
        ck_assert_close(&dinp[((int64_t)c * H + y) * H + x], &gi, 1, 1e-4, 1e-5, "patch dinp");

        int kh = (int)flava_rng_below(&r, K), kw = (int)flava_rng_below(&r, K);
        double gw = 0, gb = 0;
        for (int q = 0; q < P * P; q++) {
            gw += (double)R[(int64_t)q * OC + oc] *
                  inp[((int64_t)c * H + (q / P) * K + kh) * H + (q % P) * K + kw];
            gb += R[(int64_t)q * OC + oc];
        }
        ck_assert_close(&dw[((oc * C + c) * K + kh) * K + kw], &gw, 1, 1e-4, 1e-5, "patch dw");
        ck_assert_close(&db[oc], &gb, 1, 1e-4, 1e-5, "patch db");
    }
    free(inp), free(w), free(b), free(out), free(R), free(dinp), free(dw), free(db);
}
END_TEST

START_TEST(test_conv_bad_shapes)
{
    float x[64] = {0};
    flava_conv2d_dims d = {.N = 1, .C = 3, .H = 4, .W = 4, .OC = 4, .KH = 3, .KW = 3,
                           .stride = 1, .pad = 0, .groups = 2};
    ck_assert_int_eq(conv2d_forward(ctx, x, x, x, NULL, &d), FLAVA_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "groups"));
    d.groups = 1;
    d.KH = 5;
    ck_assert_int_eq(conv2d_backward(ctx, x, x, NULL, x, x, x, &d), FLAVA_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "kernel"));
    d.KH = 3;
    d.stride = 0;
    ck_assert_int_eq(conv2d_forward(ctx, x, x, x, NULL, &d), FLAVA_ERR_SHAPE);
}
END_TEST

/* ---- max pooling ---- */

typedef struct pool_case {
    int N, C, H, W, k, s;
    double *inp, *out, *R;
    int64_t nout;
} pool_case;

static double pool_loss(void *p)
{
    pool_case *c = p;
    int OH = (c->H - c->k) / c->s + 1, OW = (c->W - c->k) / c->s + 1;
    for (int nc = 0; nc < c->N * c->C; nc++)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
                double m = -INFINITY;
                for (int i = 0; i < c->k; i++)
                    for (int j = 0; j < c->k; j++) {
                        double v = c->inp[((int64_t)nc * c->H + oh * c->s + i) * c->W +
                                          ow * c->s + j];
                        m = v > m ? v : m;
                    }
                c->out[((int64_t)nc * OH + oh) * OW + ow] = m;
            }
    return dot(c->out, c->R, c->nout);
}

static void run_pool(int N, int C, int H, int W, int k, int s)
{
    int OH = (H - k) / s + 1, OW = (W - k) / s + 1;
    int64_t nin = (int64_t)N * C * H * W, nout = (int64_t)N * C * OH * OW;
    /* distinct values 1e-3 apart in random order: no ties, and a finite
     * difference step of 1e-6 never changes a window's argmax */
    float *inp = fvec(nin, 0, 0, 0);
    flava_rng r;
    flava_rng_init(&r, 11, 0);
    for (int64_t i = 0; i < nin; i++)
        inp[i] = (float)i * 1e-3f;
    for (int64_t i = nin - 1; i > 0; i--) {
        int64_t j = (int64_t)flava_rng_below(&r, (uint64_t)i + 1);
        float t = inp[i];
        inp[i] = inp[j];
        inp[j] = t;
    }
    float *out = fvec(nout, 0, 0, 0), *R = fvec(nout, 12, -1, 1);
    float *dinp0 = fvec(nin, 13, -1, 1), *dinp = fcopy(dinp0, nin);
    size_t wsb = maxpool2d_workspace_bytes(ctx, N, C, H, W, k, s);
    ck_assert_uint_gt(wsb, 0);
    void *ws = malloc(wsb);
    ck_assert_int_eq(maxpool2d_forward(ctx, out, ws, inp, N, C, H, W, k, s), FLAVA_OK);
    pool_case c = {N, C, H, W, k, s, dvec(inp, nin), dvec(NULL, nout), dvec(R, nout), nout};
    pool_loss(&c);
    ck_assert_close(out, c.out, nout, 0, 1e-30, "maxpool out"); /* a max is exact */
    for (int t = 0; t < 2; t++)
        ck_assert_int_eq(maxpool2d_backward(ctx, dinp, R, ws, N, C, H, W, k, s), FLAVA_OK);
    one_call(dinp, dinp0, nin);
    check_fd("maxpool dinp", dinp, c.inp, nin, pool_loss, &c, 1e-6, 1e-5, 1e-6);
    free(c.inp), free(c.out), free(c.R), free(inp), free(out), free(R), free(dinp0), free(dinp),
        free(ws);
}

START_TEST(test_maxpool_disjoint_uneven) { run_pool(2, 3, 7, 9, 2, 2); }
END_TEST

START_TEST(test_maxpool_overlapping) { run_pool(1, 2, 9, 8, 3, 2); }
END_TEST

START_TEST(test_maxpool_bad_shape)
{
    float x[16] = {0};
    ck_assert_int_eq(maxpool2d_forward(ctx, x, x, x, 1, 1, 2, 2, 3, 1), FLAVA_ERR_SHAPE);
    ck_assert_uint_eq(maxpool2d_workspace_bytes(ctx, 1, 1, 2, 2, 3, 1), 0);
}
END_TEST

/* ---- embedding ---- */

enum { EMB_N = 41, EMB_C = 150, EMB_V = 7 }; /* C spans three column strips */

static const int32_t *emb_ids(void)
{
    static int32_t ids[EMB_N];
    for (int n = 0; n < EMB_N; n++)
        ids[n] = (n * 5 + n / 3) % EMB_V; /* every row used several times */
    return ids;
}

typedef struct emb_case {
    const int32_t *ids;
    double *table, *R;
} emb_case;

static double emb_loss(void *p)
{
    emb_case *c = p;
    double s = 0;
    for (int n = 0; n < EMB_N; n++)
        for (int j = 0; j < EMB_C; j++)
            s += c->table[c->ids[n] * EMB_C + j] * c->R[n * EMB_C + j];
    return s;
}

START_TEST(test_embedding)
{
    const int32_t *ids = emb_ids();
    float *table = fvec(EMB_V * EMB_C, 1, -1, 1), *out = fvec(EMB_N * EMB_C, 0, 0, 0);
    float *R = fvec(EMB_N * EMB_C, 2, -1, 1), *g0 = fvec(EMB_V * EMB_C, 3, -1, 1);
    float *g = fcopy(g0, EMB_V * EMB_C);
    ck_assert_int_eq(embedding_forward(out, ids, table, EMB_N, EMB_C, EMB_V), FLAVA_OK);
    for (int n = 0; n < EMB_N; n++)
        ck_assert_mem_eq(out + n * EMB_C, table + ids[n] * EMB_C, EMB_C * sizeof(float));
    for (int t = 0; t < 2; t++)
        ck_assert_int_eq(embedding_backward(g, R, ids, EMB_N, EMB_C), FLAVA_OK);
    one_call(g, g0, EMB_V * EMB_C);
    emb_case c = {ids, dvec(table, EMB_V * EMB_C), dvec(R, EMB_N * EMB_C)};
    check_fd("embedding dtable", g, c.table, EMB_V * EMB_C, emb_loss, &c, 1e-6, 1e-5, 1e-5);
    free(c.table), free(c.R), free(table), free(out), free(R), free(g0), free(g);
}
END_TEST

/* The scatter-add and the loss sums give the same bits with one thread and
 * with two. */
START_TEST(test_deterministic_across_threads)
{
    const int32_t *ids = emb_ids();
    enum { RN = 300, RV = 7 };
    float *R = fvec(EMB_N * EMB_C, 2, -1, 1), *x = fvec(RN * RV, 3, -5, 5);
    float *t = fvec(RN * RV, 4, 0, 1), *probs = fvec(RN * RV, 0, 0, 0);
    int32_t labels[RN];
    for (int n = 0; n < RN; n++)
        labels[n] = n % 3 ? n % RV : -100;
    float *g[2], loss[2][3];
    int count;
    int threads = omp_get_max_threads();
    for (int k = 0; k < 2; k++) {
        omp_set_num_threads(k + 1);
        g[k] = fvec(EMB_V * EMB_C, 0, 0, 0);
        ck_assert_int_eq(embedding_backward(g[k], R, ids, EMB_N, EMB_C), FLAVA_OK);
        ck_assert_int_eq(cross_entropy_forward(&loss[k][0], &count, probs, x, labels, RN, RV),
                         FLAVA_OK);
        ck_assert_int_eq(bce_logits_forward(&loss[k][1], x, t, RN, RV), FLAVA_OK);
        ck_assert_int_eq(mse_forward(&loss[k][2], x, t, RN * RV), FLAVA_OK);
    }
    omp_set_num_threads(threads);
    ck_assert_mem_eq(g[0], g[1], EMB_V * EMB_C * sizeof(float));
    ck_assert_mem_eq(loss[0], loss[1], sizeof loss[0]);
    free(R), free(x), free(t), free(probs), free(g[0]), free(g[1]);
}
END_TEST

START_TEST(test_embedding_bad_id)
{
    float table[6] = {0}, out[6];
    int32_t ids[3] = {0, 2, 3};
    ck_assert_int_eq(embedding_forward(out, ids, table, 3, 2, 3), FLAVA_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "id 3 at position 2"));
    ids[2] = 1;
    ids[1] = -4;
    ck_assert_int_eq(embedding_forward(out, ids, table, 3, 2, 3), FLAVA_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "id -4 at position 1"));
    ck_assert_int_eq(embedding_backward(table, out, ids, 3, 2), FLAVA_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "position 1"));
}
END_TEST

/* ---- L2 normalisation ---- */

enum { L2_N = 4, L2_C = 9 };
static const double L2_EPS = 1e-12;

typedef struct l2_case {
    double *inp, *R;
} l2_case;

static double l2_loss(void *p)
{
    l2_case *c = p;
    double s = 0;
    for (int n = 0; n < L2_N; n++) {
        double ss = 0;
        for (int j = 0; j < L2_C; j++)
            ss += c->inp[n * L2_C + j] * c->inp[n * L2_C + j];
        double r = fmax(sqrt(ss), L2_EPS);
        for (int j = 0; j < L2_C; j++)
            s += c->inp[n * L2_C + j] / r * c->R[n * L2_C + j];
    }
    return s;
}

START_TEST(test_l2norm)
{
    float *inp = fvec(L2_N * L2_C, 1, -2, 2), *out = fvec(L2_N * L2_C, 0, 0, 0);
    float *R = fvec(L2_N * L2_C, 2, -1, 1), *g0 = fvec(L2_N * L2_C, 3, -1, 1), norm[L2_N];
    float *g = fcopy(g0, L2_N * L2_C);
    ck_assert_int_eq(l2norm_forward(out, norm, inp, L2_N, L2_C), FLAVA_OK);
    for (int t = 0; t < 2; t++)
        ck_assert_int_eq(l2norm_backward(g, R, out, norm, L2_N, L2_C), FLAVA_OK);
    one_call(g, g0, L2_N * L2_C);
    l2_case c = {dvec(inp, L2_N * L2_C), dvec(R, L2_N * L2_C)};
    double ref[L2_N * L2_C];
    for (int n = 0; n < L2_N; n++) {
        double ss = 0;
        for (int j = 0; j < L2_C; j++)
            ss += c.inp[n * L2_C + j] * c.inp[n * L2_C + j];
        for (int j = 0; j < L2_C; j++)
            ref[n * L2_C + j] = c.inp[n * L2_C + j] / sqrt(ss);
    }
    ck_assert_close(out, ref, L2_N * L2_C, 1e-6, 1e-7, "l2norm out");
    check_fd("l2norm dinp", g, c.inp, L2_N * L2_C, l2_loss, &c, 1e-6, 1e-5, 1e-6);
    free(c.inp), free(c.R), free(inp), free(out), free(R), free(g0), free(g);
}
END_TEST

/* A row shorter than eps is divided by eps, as torch's normalize does. */
START_TEST(test_l2norm_tiny_row)
{
    float inp[3] = {3e-13f, 0, -4e-13f}, out[3], norm[1], g[3] = {1, 1, 1}, R[3] = {1, -2, 0.5f};
    ck_assert_int_eq(l2norm_forward(out, norm, inp, 1, 3), FLAVA_OK);
    ck_assert_float_eq_tol(out[0], 0.3f, 1e-6f);
    ck_assert_float_eq_tol(out[2], -0.4f, 1e-6f);
    ck_assert_int_eq(l2norm_backward(g, R, out, norm, 1, 3), FLAVA_OK);
    ck_assert_double_eq_tol(g[1], 1 - 2e12, 1e6);
    ck_assert_double_eq_tol(g[2], 1 + 0.5e12, 1e6);
}
END_TEST

/* ---- losses ---- */

enum { CE_N = 6, CE_V = 5 };
static const int32_t ce_labels[CE_N] = {2, -100, 0, 4, 1, 3};

typedef struct loss_case {
    double *x, *t;
    double dloss;
    int64_t n;
} loss_case;

static double ce_ref(void *p)
{
    loss_case *c = p;
    double s = 0;
    int k = 0;
    for (int n = 0; n < CE_N; n++) {
        if (ce_labels[n] == -100)
            continue;
        const double *x = c->x + n * CE_V;
        double m = x[0], z = 0;
        for (int v = 1; v < CE_V; v++)
            m = fmax(m, x[v]);
        for (int v = 0; v < CE_V; v++)
            z += exp(x[v] - m);
        s += m + log(z) - x[ce_labels[n]];
        k++;
    }
    return c->dloss * s / k;
}

START_TEST(test_cross_entropy)
{
    float *x = fvec(CE_N * CE_V, 1, -3, 3), probs[CE_N * CE_V], loss;
    for (int v = 0; v < CE_V; v++)
        x[3 * CE_V + v] += 90; /* expf(90) overflows float: needs the max shift */
    float *g0 = fvec(CE_N * CE_V, 2, -1, 1), *g = fcopy(g0, CE_N * CE_V);
    int count;
    ck_assert_int_eq(cross_entropy_forward(&loss, &count, probs, x, ce_labels, CE_N, CE_V),
                     FLAVA_OK);
    ck_assert_int_eq(count, CE_N - 1);
    loss_case c = {dvec(x, CE_N * CE_V), NULL, 1.0, CE_N * CE_V};
    double ref = ce_ref(&c);
    ck_assert_close(&loss, &ref, 1, 1e-6, 1e-7, "cross-entropy loss");
    double pref[CE_N * CE_V];
    for (int n = 0; n < CE_N; n++) {
        double z = 0;
        for (int v = 0; v < CE_V; v++)
            z += exp(c.x[n * CE_V + v] - c.x[n * CE_V]);
        for (int v = 0; v < CE_V; v++)
            pref[n * CE_V + v] = exp(c.x[n * CE_V + v] - c.x[n * CE_V]) / z;
    }
    ck_assert_close(probs, pref, CE_N * CE_V, 1e-6, 1e-7, "cross-entropy probs");
    c.dloss = 0.7;
    for (int t = 0; t < 2; t++)
        ck_assert_int_eq(cross_entropy_backward(g, 0.7f, probs, ce_labels, CE_N, CE_V), FLAVA_OK);
    one_call(g, g0, CE_N * CE_V);
    check_fd("cross-entropy dlogits", g, c.x, CE_N * CE_V, ce_ref, &c, 1e-6, 1e-5, 1e-6);
    free(c.x), free(x), free(g0), free(g);
}
END_TEST

START_TEST(test_cross_entropy_all_ignored_and_bad_label)
{
    float x[4] = {1, 2, 3, 4}, probs[4], g[4] = {0}, loss = -1;
    int32_t labels[2] = {-100, -100};
    int count = -1;
    ck_assert_int_eq(cross_entropy_forward(&loss, &count, probs, x, labels, 2, 2), FLAVA_OK);
    ck_assert_int_eq(count, 0);
    ck_assert_float_eq(loss, 0);
    ck_assert_int_eq(cross_entropy_backward(g, 1, probs, labels, 2, 2), FLAVA_OK);
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq(g[i], 0);
    labels[1] = 2;
    ck_assert_int_eq(cross_entropy_forward(&loss, &count, probs, x, labels, 2, 2), FLAVA_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "label 2 of row 1"));
    ck_assert_int_eq(cross_entropy_backward(g, 1, probs, labels, 2, 2), FLAVA_ERR_ARG);
}
END_TEST

enum { BCE_N = 4, BCE_V = 6 };

static double bce_ref(void *p)
{
    loss_case *c = p;
    double s = 0;
    for (int64_t i = 0; i < c->n; i++) {
        double x = c->x[i];
        /* log(1 + e^x) - x t, with log(1 + e^x) = x + log(1 + e^-x) for x > 0 */
        s += (x > 0 ? x + log1p(exp(-x)) : log1p(exp(x))) - x * c->t[i];
    }
    return c->dloss * s / (double)c->n;
}

START_TEST(test_bce_logits)
{
    const int n = BCE_N * BCE_V;
    float *x = fvec(n, 1, -4, 4), *t = fvec(n, 2, 0, 1), loss;
    x[3] = 100; /* e^100 overflows float */
    x[7] = -100;
    t[5] = 1;
    t[6] = 0;
    float *g0 = fvec(n, 3, -1, 1), *g = fcopy(g0, n);
    ck_assert_int_eq(bce_logits_forward(&loss, x, t, BCE_N, BCE_V), FLAVA_OK);
    loss_case c = {dvec(x, n), dvec(t, n), 1.0, n};
    double ref = bce_ref(&c);
    ck_assert_close(&loss, &ref, 1, 1e-6, 1e-7, "bce loss");
    c.dloss = -1.3;
    for (int k = 0; k < 2; k++)
        ck_assert_int_eq(bce_logits_backward(g, -1.3f, x, t, BCE_N, BCE_V), FLAVA_OK);
    one_call(g, g0, n);
    check_fd("bce dlogits", g, c.x, n, bce_ref, &c, 1e-6, 1e-5, 1e-6);
    free(c.x), free(c.t), free(x), free(t), free(g0), free(g);
}
END_TEST

static double mse_ref(void *p)
{
    loss_case *c = p;
    double s = 0;
    for (int64_t i = 0; i < c->n; i++)
        s += (c->x[i] - c->t[i]) * (c->x[i] - c->t[i]);
    return c->dloss * s / (double)c->n;
}

START_TEST(test_mse)
{
    const int n = 17;
    float *x = fvec(n, 1, -2, 2), *t = fvec(n, 2, -2, 2), loss;
    float *g0 = fvec(n, 3, -1, 1), *g = fcopy(g0, n);
    ck_assert_int_eq(mse_forward(&loss, x, t, n), FLAVA_OK);
    loss_case c = {dvec(x, n), dvec(t, n), 1.0, n};
    double ref = mse_ref(&c);
    ck_assert_close(&loss, &ref, 1, 1e-6, 1e-7, "mse loss");
    c.dloss = 0.4;
    for (int k = 0; k < 2; k++)
        ck_assert_int_eq(mse_backward(g, 0.4f, x, t, n), FLAVA_OK);
    one_call(g, g0, n);
    check_fd("mse dpred", g, c.x, n, mse_ref, &c, 1e-6, 1e-5, 1e-6);
    free(c.x), free(c.t), free(x), free(t), free(g0), free(g);
}
END_TEST

/* ---- the same ops against PyTorch (tests/reference/ops_rest_fixtures.py) ---- */

static flava_st *fx;

static void fx_setup(void)
{
    char path[4096];
    ctx_setup();
    ck_assert_int_eq(flava_st_read(&fx, test_path(path, sizeof path,
                                                  "tests/fixtures/ops_rest.safetensors")),
                     FLAVA_OK);
}

static void fx_teardown(void)
{
    flava_st_free(fx);
    ctx_teardown();
}

static const flava_st_tensor *fx_tensor(const char *prefix, const char *name, int64_t n)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", prefix, name);
    const flava_st_tensor *t = flava_st_find(fx, key);
    ck_assert_msg(t != NULL, "fixture tensor %s missing", key);
    ck_assert_msg(flava_st_numel(t) == n, "fixture tensor %s has %lld elements, expected %lld",
                  key, (long long)flava_st_numel(t), (long long)n);
    return t;
}

static float *fx_f32(const char *prefix, const char *name, int64_t n)
{
    float *x = fvec(n, 0, 0, 0);
    ck_assert_int_eq(flava_st_to_f32(x, fx_tensor(prefix, name, n)), FLAVA_OK);
    return x;
}

static int32_t *fx_i32(const char *prefix, const char *name, int64_t n)
{
    int32_t *x = malloc((size_t)n * sizeof *x);
    ck_assert_ptr_nonnull(x);
    ck_assert_int_eq(flava_st_to_i32(x, fx_tensor(prefix, name, n)), FLAVA_OK);
    return x;
}

/* got ≈ PyTorch's to 1e-5 relative (1e-6 absolute near 0); prints the worst. */
static void fx_match(const char *prefix, const char *name, const float *got, int64_t n)
{
    float *want = fx_f32(prefix, name, n);
    double *ref = dvec(want, n);
    char what[128];
    snprintf(what, sizeof what, "%s.%s vs torch", prefix, name);
    int64_t where;
    printf("%-32s worst %.3g of tolerance\n", what, test_worst(got, ref, n, 1e-5, 1e-6, &where));
    ck_assert_close(got, ref, n, 1e-5, 1e-6, what);
    free(want), free(ref);
}

static void fx_conv(const char *prefix, const flava_conv2d_dims *d)
{
    int64_t nin = (int64_t)d->N * d->C * d->H * d->W;
    int64_t nw = (int64_t)d->OC * (d->C / d->groups) * d->KH * d->KW;
    int64_t nout = (int64_t)d->N * d->OC * flava_conv2d_out_h(d) * flava_conv2d_out_w(d);
    float *x = fx_f32(prefix, "x", nin), *w = fx_f32(prefix, "w", nw);
    float *b = fx_f32(prefix, "b", d->OC), *R = fx_f32(prefix, "R", nout);
    float *y = fvec(nout, 0, 0, 0), *dx = fvec(nin, 0, 0, 0), *dw = fvec(nw, 0, 0, 0),
          *db = fvec(d->OC, 0, 0, 0);
    ck_assert_int_eq(conv2d_forward(ctx, y, x, w, b, d), FLAVA_OK);
    ck_assert_int_eq(conv2d_backward(ctx, dx, dw, db, R, x, w, d), FLAVA_OK);
    fx_match(prefix, "y", y, nout);
    fx_match(prefix, "dx", dx, nin);
    fx_match(prefix, "dw", dw, nw);
    fx_match(prefix, "db", db, d->OC);
    free(x), free(w), free(b), free(R), free(y), free(dx), free(dw), free(db);
}

START_TEST(test_torch_conv)
{
    flava_conv2d_dims grouped = {.N = 2, .C = 4, .H = 9, .W = 8, .OC = 6, .KH = 3, .KW = 3,
                                 .stride = 2, .pad = 1, .groups = 2};
    flava_conv2d_dims depthwise = {.N = 1, .C = 4, .H = 7, .W = 7, .OC = 4, .KH = 3, .KW = 3,
                                   .stride = 1, .pad = 1, .groups = 4, .src_nhwc = 1,
                                   .dst_nhwc = 1};
    flava_conv2d_dims patch = {.N = 2, .C = 3, .H = 32, .W = 32, .OC = 16, .KH = 8, .KW = 8,
                               .stride = 8, .pad = 0, .groups = 1, .dst_nhwc = 1};
    fx_conv("conv_grouped", &grouped);
    fx_conv("conv_depthwise", &depthwise);
    fx_conv("conv_patch", &patch);
}
END_TEST

START_TEST(test_torch_maxpool)
{
    const char *names[2] = {"maxpool_2s2", "maxpool_3s2"};
    const int N = 2, C = 3, H = 8, W = 9;
    for (int i = 0; i < 2; i++) {
        int k = 2 + i, s = 2, OH = (H - k) / s + 1, OW = (W - k) / s + 1;
        int64_t nin = N * C * H * W, nout = N * C * OH * OW;
        float *x = fx_f32(names[i], "x", nin), *R = fx_f32(names[i], "R", nout);
        float *y = fvec(nout, 0, 0, 0), *dx = fvec(nin, 0, 0, 0);
        void *ws = malloc(maxpool2d_workspace_bytes(ctx, N, C, H, W, k, s));
        ck_assert_int_eq(maxpool2d_forward(ctx, y, ws, x, N, C, H, W, k, s), FLAVA_OK);
        ck_assert_int_eq(maxpool2d_backward(ctx, dx, R, ws, N, C, H, W, k, s), FLAVA_OK);
        fx_match(names[i], "y", y, nout);
        fx_match(names[i], "dx", dx, nin);
        free(x), free(R), free(y), free(dx), free(ws);
    }
}
END_TEST

START_TEST(test_torch_embedding_l2norm)
{
    const int N = 23, C = 70, V = 11;
    int32_t *ids = fx_i32("embedding", "ids", N);
    float *table = fx_f32("embedding", "table", V * C), *R = fx_f32("embedding", "R", N * C);
    float *y = fvec(N * C, 0, 0, 0), *dt = fvec(V * C, 0, 0, 0);
    ck_assert_int_eq(embedding_forward(y, ids, table, N, C, V), FLAVA_OK);
    ck_assert_int_eq(embedding_backward(dt, R, ids, N, C), FLAVA_OK);
    fx_match("embedding", "y", y, N * C);
    fx_match("embedding", "dtable", dt, V * C);
    free(ids), free(table), free(R), free(y), free(dt);

    const int LN = 5, LC = 33;
    float *x = fx_f32("l2norm", "x", LN * LC), *LR = fx_f32("l2norm", "R", LN * LC);
    float *ly = fvec(LN * LC, 0, 0, 0), *dx = fvec(LN * LC, 0, 0, 0), norm[5];
    ck_assert_int_eq(l2norm_forward(ly, norm, x, LN, LC), FLAVA_OK);
    ck_assert_int_eq(l2norm_backward(dx, LR, ly, norm, LN, LC), FLAVA_OK);
    fx_match("l2norm", "y", ly, LN * LC);
    fx_match("l2norm", "dx", dx, LN * LC);
    free(x), free(LR), free(ly), free(dx);
}
END_TEST

START_TEST(test_torch_losses)
{
    float loss, *R, *g;
    const int N = 7, V = 10;
    float *logits = fx_f32("cross_entropy", "logits", N * V), probs[7 * 10];
    int32_t *labels = fx_i32("cross_entropy", "labels", N);
    int count;
    R = fx_f32("cross_entropy", "R", 1);
    g = fvec(N * V, 0, 0, 0);
    ck_assert_int_eq(cross_entropy_forward(&loss, &count, probs, logits, labels, N, V), FLAVA_OK);
    ck_assert_int_eq(count, N - 1);
    ck_assert_int_eq(cross_entropy_backward(g, R[0], probs, labels, N, V), FLAVA_OK);
    fx_match("cross_entropy", "loss", &loss, 1);
    fx_match("cross_entropy", "dlogits", g, N * V);
    free(logits), free(labels), free(R), free(g);

    const int BN = 4, BV = 9;
    float *bl = fx_f32("bce", "logits", BN * BV), *bt = fx_f32("bce", "targets", BN * BV);
    R = fx_f32("bce", "R", 1);
    g = fvec(BN * BV, 0, 0, 0);
    ck_assert_int_eq(bce_logits_forward(&loss, bl, bt, BN, BV), FLAVA_OK);
    ck_assert_int_eq(bce_logits_backward(g, R[0], bl, bt, BN, BV), FLAVA_OK);
    fx_match("bce", "loss", &loss, 1);
    fx_match("bce", "dlogits", g, BN * BV);
    free(bl), free(bt), free(R), free(g);

    const int M = 31;
    float *p = fx_f32("mse", "pred", M), *t = fx_f32("mse", "target", M);
    R = fx_f32("mse", "R", 1);
    g = fvec(M, 0, 0, 0);
    ck_assert_int_eq(mse_forward(&loss, p, t, M), FLAVA_OK);
    ck_assert_int_eq(mse_backward(g, R[0], p, t, M), FLAVA_OK);
    fx_match("mse", "loss", &loss, 1);
    fx_match("mse", "dpred", g, M);
    free(p), free(t), free(R), free(g);
}
END_TEST

static Suite *make_ops_rest_suite(void)
{
    Suite *s = suite_create("ops_rest");
    TCase *tc = tcase_create("conv_pool");
    tcase_add_checked_fixture(tc, ctx_setup, ctx_teardown);
    tcase_add_loop_test(tc, test_conv, 0, (int)(sizeof conv_tests / sizeof conv_tests[0]));
    tcase_add_test(tc, test_conv_bf16);
    tcase_add_test(tc, test_conv_null_gradients);
    tcase_add_test(tc, test_conv_patch_embedding);
    tcase_add_test(tc, test_conv_bad_shapes);
    tcase_add_test(tc, test_maxpool_disjoint_uneven);
    tcase_add_test(tc, test_maxpool_overlapping);
    tcase_add_test(tc, test_maxpool_bad_shape);
    suite_add_tcase(s, tc);

    tc = tcase_create("glue");
    tcase_add_test(tc, test_embedding);
    tcase_add_test(tc, test_deterministic_across_threads);
    tcase_add_test(tc, test_embedding_bad_id);
    tcase_add_test(tc, test_l2norm);
    tcase_add_test(tc, test_l2norm_tiny_row);
    tcase_add_test(tc, test_cross_entropy);
    tcase_add_test(tc, test_cross_entropy_all_ignored_and_bad_label);
    tcase_add_test(tc, test_bce_logits);
    tcase_add_test(tc, test_mse);
    suite_add_tcase(s, tc);

    tc = tcase_create("torch");
    tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
    tcase_add_test(tc, test_torch_conv);
    tcase_add_test(tc, test_torch_maxpool);
    tcase_add_test(tc, test_torch_embedding_l2norm);
    tcase_add_test(tc, test_torch_losses);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return test_run(make_ops_rest_suite()); }

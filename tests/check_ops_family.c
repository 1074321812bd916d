/* check_ops_family.c - the ops of ALIGN's EfficientNet tower: batch norm
 * (training with the running-stat update, inference), swish, CLIP's quick
 * GELU and sigmoid,
 * global average pooling, the squeeze-and-excitation channel scale and
 * convolutions with asymmetric ("same") padding.
 *
 * Each forward is checked against a double-precision loop, each backward
 * against central finite differences of that loop (loss = sum(out * R) for
 * a random R), on odd shapes. Gradient buffers start from random values and
 * every backward runs twice, so an op that overwrites instead of
 * accumulating fails. Last, everything against PyTorch autograd fixtures
 * (tests/reference/ops_family_fixtures.py) to 1e-5 relative. */
#include "testutil.h"

#include "safetensors.h"

#define OK(call) ck_assert_int_eq((call), FLAVA_OK)

static flava_ctx *ctx;

static void ctx_setup(void) { OK(flava_ctx_create(&ctx, FLAVA_PRECISION_F32)); }
static void ctx_teardown(void) { flava_ctx_destroy(ctx); }

static float *rnd(int64_t n, uint64_t seed, float lo, float hi)
{
    float *x = malloc((size_t)n * sizeof *x);
    ck_assert_ptr_nonnull(x);
    test_fill(x, n, seed, lo, hi);
    return x;
}

static double *widen(const float *x, int64_t n)
{
    double *d = calloc((size_t)n, sizeof *d);
    ck_assert_ptr_nonnull(d);
    for (int64_t i = 0; x && i < n; i++)
        d[i] = x[i];
    return d;
}

/* ---- the reference harness: an op as a double function of up to four
 * inputs, its loss sum(out * R), and finite differences of that loss ---- */

enum { MAX_IN = 4, PROBES = 40 };

typedef struct shape {
    int N, C, H, W;
    double eps;
    int training;
    const double *rmean, *rvar; /* the running statistics of inference */
    const flava_conv2d_dims *conv;
} shape;

typedef void (*ref_fn)(double *out, double *const *in, const shape *s);

typedef struct refcase {
    ref_fn ref;
    const shape *s;
    double *in[MAX_IN];
    double *out, *R;
    int64_t nout;
} refcase;

static double ref_loss(refcase *c)
{
    c->ref(c->out, c->in, c->s);
    double l = 0;
    for (int64_t i = 0; i < c->nout; i++)
        l += c->out[i] * c->R[i];
    return l;
}

/* got = (after two backward calls - start) / 2 is compared with the central
 * difference of the loss in input `k` at up to PROBES evenly spread points. */
static void fd_check(refcase *c, int k, int64_t n, const float *after, const float *start,
                     const char *name, double rtol, double atol)
{
    int64_t probes = n < PROBES ? n : PROBES;
    for (int64_t p = 0; p < probes; p++) {
        int64_t i = p * n / probes;
        double keep = c->in[k][i], h = 1e-6 * (1 + fabs(keep));
        c->in[k][i] = keep + h;
        double lp = ref_loss(c);
        c->in[k][i] = keep - h;
        double lm = ref_loss(c);
        c->in[k][i] = keep;
        double fd = (lp - lm) / (2 * h), got = ((double)after[i] - start[i]) / 2;
        ck_assert_msg(fabs(got - fd) <= atol + rtol * fabs(fd),
                      "%s[%lld]: backward %.9g, finite difference %.9g", name, (long long)i, got,
                      fd);
    }
}

/* ---- batch norm ---- */

static void bn_stats(double *mean, double *var, const double *x, const shape *s)
{
    int64_t hw = (int64_t)s->H * s->W, cnt = s->N * hw;
    for (int c = 0; c < s->C; c++) {
        double m = 0, v = 0;
        for (int n = 0; n < s->N; n++)
            for (int64_t i = 0; i < hw; i++)
                m += x[((int64_t)n * s->C + c) * hw + i];
        m /= cnt;
        for (int n = 0; n < s->N; n++)
            for (int64_t i = 0; i < hw; i++) {
                double d = x[((int64_t)n * s->C + c) * hw + i] - m;
                v += d * d;
            }
        mean[c] = m;
        var[c] = v / cnt;
    }
}

/* in: x, gamma, beta */
static void bn_ref(double *out, double *const *in, const shape *s)
{
    double mean[64], var[64];
    ck_assert_int_le(s->C, 64);
    if (s->training)
        bn_stats(mean, var, in[0], s);
    int64_t hw = (int64_t)s->H * s->W;
    for (int n = 0; n < s->N; n++)
        for (int c = 0; c < s->C; c++) {
            double m = s->training ? mean[c] : s->rmean[c];
            double v = s->training ? var[c] : s->rvar[c];
            double k = in[1][c] / sqrt(v + s->eps);
            for (int64_t i = 0; i < hw; i++) {
                int64_t j = ((int64_t)n * s->C + c) * hw + i;
                out[j] = (in[0][j] - m) * k + in[2][c];
            }
        }
}

static void run_batchnorm(int N, int C, int H, int W, int training, float momentum)
{
    int64_t n = (int64_t)N * C * H * W;
    shape s = {N, C, H, W, 1e-3, training, NULL, NULL, NULL};
    float *x = rnd(n, 1, -2, 3), *w = rnd(C, 2, 0.5f, 1.5f), *b = rnd(C, 3, -1, 1);
    float *rm = rnd(C, 4, -0.5f, 0.5f), *rv = rnd(C, 5, 0.5f, 1.5f);
    float *rm0 = rnd(C, 4, -0.5f, 0.5f), *rv0 = rnd(C, 5, 0.5f, 1.5f);
    float *out = rnd(n, 6, 0, 0), *mean = rnd(C, 7, 0, 0), *var = rnd(C, 8, 0, 0);
    float *R = rnd(n, 9, -1, 1);
    float *dx0 = rnd(n, 10, -1, 1), *dw0 = rnd(C, 11, -1, 1), *db0 = rnd(C, 12, -1, 1);
    float *dx = rnd(n, 10, -1, 1), *dw = rnd(C, 11, -1, 1), *db = rnd(C, 12, -1, 1);
    double *drm = widen(rm, C), *drv = widen(rv, C);
    s.rmean = drm;
    s.rvar = drv;

    OK(batchnorm2d_forward(ctx, out, training ? mean : NULL, training ? var : NULL, rm, rv, x, w,
                           b, N, C, H, W, (float)s.eps, momentum));
    refcase c = {bn_ref, &s, {widen(x, n), widen(w, C), widen(b, C)}, widen(NULL, n),
                 widen(R, n), n};
    ref_loss(&c);
    ck_assert_close(out, c.out, n, 1e-5, 1e-5, "batchnorm out");
    if (training) {
        double *m = widen(NULL, C), *v = widen(NULL, C), *erm = widen(NULL, C),
               *erv = widen(NULL, C);
        bn_stats(m, v, c.in[0], &s);
        ck_assert_close(mean, m, C, 1e-5, 1e-6, "batchnorm mean");
        ck_assert_close(var, v, C, 1e-5, 1e-6, "batchnorm var");
        double cnt = (double)N * H * W;
        for (int k = 0; k < C; k++) { /* torch: unbiased variance in the running stat */
            erm[k] = (1 - momentum) * (double)rm0[k] + momentum * m[k];
            erv[k] = (1 - momentum) * (double)rv0[k] + momentum * v[k] * cnt / (cnt - 1);
        }
        ck_assert_close(rm, erm, C, 1e-5, 1e-6, "batchnorm running_mean");
        ck_assert_close(rv, erv, C, 1e-5, 1e-6, "batchnorm running_var");
        free(m), free(v), free(erm), free(erv);
    } else {
        ck_assert_close(rm, drm, C, 0, 1e-30, "batchnorm running_mean untouched");
        ck_assert_close(rv, drv, C, 0, 1e-30, "batchnorm running_var untouched");
    }

    const float *smean = training ? mean : rm, *svar = training ? var : rv;
    for (int k = 0; k < 2; k++)
        OK(batchnorm2d_backward(ctx, dx, dw, db, R, x, w, smean, svar, N, C, H, W, (float)s.eps,
                                training));
    fd_check(&c, 0, n, dx, dx0, "batchnorm dinp", 1e-4, 1e-5);
    fd_check(&c, 1, C, dw, dw0, "batchnorm dw", 1e-4, 1e-5);
    fd_check(&c, 2, C, db, db0, "batchnorm db", 1e-4, 1e-5);

    for (int k = 0; k < 3; k++)
        free(c.in[k]);
    free(c.out), free(c.R), free(drm), free(drv);
    free(x), free(w), free(b), free(rm), free(rv), free(rm0), free(rv0), free(out), free(mean);
    free(var), free(R), free(dx0), free(dw0), free(db0), free(dx), free(dw), free(db);
}

START_TEST(test_batchnorm_training)
{
    run_batchnorm(3, 5, 3, 7, 1, 0.1f);
    run_batchnorm(2, 3, 1, 1, 1, 0.99f); /* one pixel per image: statistics across the batch */
}
END_TEST

START_TEST(test_batchnorm_inference) { run_batchnorm(2, 6, 5, 3, 0, 0.1f); }
END_TEST

START_TEST(test_batchnorm_errors)
{
    float x[8] = {0}, w[2] = {1, 1}, b[2] = {0}, o[8], m[2], v[2], r[2] = {0}, q[2] = {1, 1};
    /* inference without running statistics */
    ck_assert_int_eq(batchnorm2d_forward(ctx, o, NULL, NULL, NULL, NULL, x, w, b, 1, 2, 2, 2,
                                         1e-3f, 0.1f), FLAVA_ERR_ARG);
    /* mean without var */
    ck_assert_int_eq(batchnorm2d_forward(ctx, o, m, NULL, r, q, x, w, b, 1, 2, 2, 2, 1e-3f, 0.1f),
                     FLAVA_ERR_ARG);
    /* one value per channel cannot be trained on (torch refuses too) */
    ck_assert_int_eq(batchnorm2d_forward(ctx, o, m, v, r, q, x, w, b, 1, 2, 1, 1, 1e-3f, 0.1f),
                     FLAVA_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "N*H*W = 1"));
    ck_assert_int_eq(batchnorm2d_forward(ctx, o, m, v, r, q, x, w, b, 1, 2, 2, 2, 1e-3f, 1.5f),
                     FLAVA_ERR_ARG);
    ck_assert_int_eq(batchnorm2d_forward(ctx, o, m, v, r, q, x, w, b, 1, 0, 2, 2, 1e-3f, 0.1f),
                     FLAVA_ERR_SHAPE);
    ck_assert_int_eq(batchnorm2d_backward(ctx, o, NULL, NULL, x, x, w, m, v, 1, 2, 2, 2, 0, 1),
                     FLAVA_ERR_SHAPE);
    /* training without running statistics (track_running_stats=False) is fine */
    OK(batchnorm2d_forward(ctx, o, m, v, NULL, NULL, x, w, b, 1, 2, 2, 2, 1e-3f, 0.1f));
}
END_TEST

/* ---- swish, quick GELU, sigmoid ---- */

static double sigm(double x) { return 1 / (1 + exp(-x)); }

static void swish_ref(double *out, double *const *in, const shape *s)
{
    for (int i = 0; i < s->N; i++)
        out[i] = in[0][i] * sigm(in[0][i]);
}

static void quick_gelu_ref(double *out, double *const *in, const shape *s)
{
    for (int i = 0; i < s->N; i++)
        out[i] = in[0][i] * sigm(1.702 * in[0][i]);
}

static void sigmoid_ref(double *out, double *const *in, const shape *s)
{
    for (int i = 0; i < s->N; i++)
        out[i] = sigm(in[0][i]);
}

typedef flava_status (*act_fwd)(flava_ctx *, float *, const float *, int64_t);
typedef flava_status (*act_bwd)(flava_ctx *, float *, const float *, const float *, int64_t);

typedef struct activation {
    const char *name;
    ref_fn ref;
    act_fwd fwd;
    act_bwd bwd;
    int bwd_reads_out; /* else the input */
} activation;

static const activation activations[] = {
    {"swish", swish_ref, swish_forward, swish_backward, 0},
    {"quick_gelu", quick_gelu_ref, quick_gelu_forward, quick_gelu_backward, 0},
    {"sigmoid", sigmoid_ref, sigmoid_forward, sigmoid_backward, 1},
};

START_TEST(test_activation)
{
    enum { n = 301 };
    const activation *a = &activations[_i];
    shape s = {.N = n};
    float *x = rnd(n, 21, -9, 9), *out = rnd(n, 22, 0, 0), *R = rnd(n, 23, -1, 1);
    float *d0 = rnd(n, 24, -1, 1), *d = rnd(n, 24, -1, 1);
    refcase c = {a->ref, &s, {widen(x, n)}, widen(NULL, n), widen(R, n), n};
    ref_loss(&c);
    OK(a->fwd(ctx, out, x, n));
    ck_assert_close(out, c.out, n, 1e-5, 1e-6, a->name);
    for (int k = 0; k < 2; k++)
        OK(a->bwd(ctx, d, R, a->bwd_reads_out ? out : x, n));
    fd_check(&c, 0, n, d, d0, a->name, 1e-4, 1e-6);
    ck_assert_int_eq(a->fwd(ctx, out, x, 0), FLAVA_ERR_SHAPE);
    OK(a->bwd(ctx, NULL, R, x, n));
    free(c.in[0]), free(c.out), free(c.R), free(x), free(out), free(R), free(d0), free(d);
}
END_TEST

/* ---- global average pooling and the channel scale ---- */

static void avgpool_ref(double *out, double *const *in, const shape *s)
{
    int64_t hw = (int64_t)s->H * s->W;
    for (int64_t p = 0; p < (int64_t)s->N * s->C; p++) {
        double sum = 0;
        for (int64_t i = 0; i < hw; i++)
            sum += in[0][p * hw + i];
        out[p] = sum / hw;
    }
}

START_TEST(test_avgpool_global)
{
    enum { N = 3, C = 5, H = 7, W = 3, n = N * C * H * W };
    shape s = {N, C, H, W, 0, 0, NULL, NULL, NULL};
    float *x = rnd(n, 31, -2, 2), *out = rnd(N * C, 32, 0, 0), *R = rnd(N * C, 33, -1, 1);
    float *d0 = rnd(n, 34, -1, 1), *d = rnd(n, 34, -1, 1);
    refcase c = {avgpool_ref, &s, {widen(x, n)}, widen(NULL, N * C), widen(R, N * C), N * C};
    ref_loss(&c);
    OK(avgpool_global_forward(ctx, out, x, N, C, H, W));
    ck_assert_close(out, c.out, N * C, 1e-5, 1e-6, "avgpool out");
    for (int k = 0; k < 2; k++)
        OK(avgpool_global_backward(ctx, d, R, N, C, H, W));
    fd_check(&c, 0, n, d, d0, "avgpool dinp", 1e-5, 1e-6);
    ck_assert_int_eq(avgpool_global_forward(ctx, out, x, N, C, 0, W), FLAVA_ERR_SHAPE);
    free(c.in[0]), free(c.out), free(c.R), free(x), free(out), free(R), free(d0), free(d);
}
END_TEST

static void scale_ref(double *out, double *const *in, const shape *s)
{
    int64_t hw = (int64_t)s->H * s->W;
    for (int64_t p = 0; p < (int64_t)s->N * s->C; p++)
        for (int64_t i = 0; i < hw; i++)
            out[p * hw + i] = in[0][p * hw + i] * in[1][p];
}

START_TEST(test_channel_scale)
{
    enum { N = 2, C = 7, H = 5, W = 3, n = N * C * H * W };
    shape s = {N, C, H, W, 0, 0, NULL, NULL, NULL};
    float *x = rnd(n, 41, -2, 2), *sc = rnd(N * C, 42, 0, 1), *out = rnd(n, 43, 0, 0);
    float *R = rnd(n, 44, -1, 1), *dx0 = rnd(n, 45, -1, 1), *dx = rnd(n, 45, -1, 1);
    float *ds0 = rnd(N * C, 46, -1, 1), *ds = rnd(N * C, 46, -1, 1);
    refcase c = {scale_ref, &s, {widen(x, n), widen(sc, N * C)}, widen(NULL, n), widen(R, n), n};
    ref_loss(&c);
    OK(channel_scale_forward(ctx, out, x, sc, N, C, H, W));
    ck_assert_close(out, c.out, n, 1e-6, 1e-7, "channel_scale out");
    for (int k = 0; k < 2; k++)
        OK(channel_scale_backward(dx, ds, R, x, sc, N, C, H, W));
    fd_check(&c, 0, n, dx, dx0, "channel_scale dinp", 1e-5, 1e-6);
    fd_check(&c, 1, N * C, ds, ds0, "channel_scale ds", 1e-5, 1e-6);
    OK(channel_scale_backward(NULL, NULL, R, x, sc, N, C, H, W));
    ck_assert_int_eq(channel_scale_forward(ctx, out, x, sc, 0, C, H, W), FLAVA_ERR_SHAPE);
    free(c.in[0]), free(c.in[1]), free(c.out), free(c.R), free(x), free(sc), free(out), free(R);
    free(dx0), free(dx), free(ds0), free(ds);
}
END_TEST

/* ---- convolution with asymmetric padding: the reference pads explicitly,
 * as HF's ZeroPad2d does, then runs a "valid" convolution ---- */

/* in: x, w (NCHW, [OC, C/g, KH, KW]) */
static void conv_valid_ref(double *out, double *const *in, const shape *s)
{
    const flava_conv2d_dims *d = s->conv;
    int PH = d->H + d->pad_top + d->pad_bottom, PW = d->W + d->pad_left + d->pad_right;
    int OH = (PH - d->KH) / d->stride + 1, OW = (PW - d->KW) / d->stride + 1;
    int cg = d->C / d->groups, og = d->OC / d->groups;
    double *xp = calloc((size_t)d->N * d->C * PH * PW, sizeof *xp);
    ck_assert_ptr_nonnull(xp);
    for (int n = 0; n < d->N; n++)
        for (int c = 0; c < d->C; c++)
            for (int h = 0; h < d->H; h++)
                for (int w = 0; w < d->W; w++)
                    xp[(((int64_t)n * d->C + c) * PH + h + d->pad_top) * PW + w + d->pad_left] =
                        in[0][(((int64_t)n * d->C + c) * d->H + h) * d->W + w];
    for (int n = 0; n < d->N; n++)
        for (int oc = 0; oc < d->OC; oc++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    double acc = 0;
                    for (int ci = 0; ci < cg; ci++)
                        for (int kh = 0; kh < d->KH; kh++)
                            for (int kw = 0; kw < d->KW; kw++)
                                acc += in[1][(((int64_t)oc * cg + ci) * d->KH + kh) * d->KW + kw] *
                                       xp[(((int64_t)n * d->C + oc / og * cg + ci) * PH +
                                           oh * d->stride + kh) * PW + ow * d->stride + kw];
                    out[(((int64_t)n * d->OC + oc) * OH + oh) * OW + ow] = acc;
                }
    free(xp);
}

static void run_conv_asym(const flava_conv2d_dims *d)
{
    int OH = flava_conv2d_out_h(d), OW = flava_conv2d_out_w(d);
    int64_t nx = (int64_t)d->N * d->C * d->H * d->W, nw = (int64_t)d->OC * d->C / d->groups *
                                                         d->KH * d->KW;
    int64_t ny = (int64_t)d->N * d->OC * OH * OW;
    shape s = {.conv = d};
    float *x = rnd(nx, 51, -1, 1), *w = rnd(nw, 52, -1, 1), *out = rnd(ny, 53, 0, 0);
    float *R = rnd(ny, 54, -1, 1), *dx0 = rnd(nx, 55, -1, 1), *dx = rnd(nx, 55, -1, 1);
    float *dw0 = rnd(nw, 56, -1, 1), *dw = rnd(nw, 56, -1, 1);
    refcase c = {conv_valid_ref, &s, {widen(x, nx), widen(w, nw)}, widen(NULL, ny), widen(R, ny),
                 ny};
    ref_loss(&c);
    OK(conv2d_forward(ctx, out, x, w, NULL, d));
    ck_assert_close(out, c.out, ny, 1e-5, 1e-5, "conv2d asymmetric out");
    for (int k = 0; k < 2; k++)
        OK(conv2d_backward(ctx, dx, dw, NULL, R, x, w, d));
    fd_check(&c, 0, nx, dx, dx0, "conv2d asymmetric dinp", 1e-4, 1e-5);
    fd_check(&c, 1, nw, dw, dw0, "conv2d asymmetric dw", 1e-4, 1e-5);
    free(c.in[0]), free(c.in[1]), free(c.out), free(c.R), free(x), free(w), free(out), free(R);
    free(dx0), free(dx), free(dw0), free(dw);
}

START_TEST(test_conv_stem_padding)
{
    /* EfficientNet's stem: ZeroPad2d((0, 1, 0, 1)), 3x3 stride 2 */
    flava_conv2d_dims d = {.N = 2, .C = 3, .H = 9, .W = 8, .OC = 4, .KH = 3, .KW = 3,
                           .stride = 2, .groups = 1, .pad_bottom = 1, .pad_right = 1};
    ck_assert_int_eq(flava_conv2d_out_h(&d), 4);
    ck_assert_int_eq(flava_conv2d_out_w(&d), 4);
    run_conv_asym(&d);
}
END_TEST

START_TEST(test_conv_depthwise_same_padding)
{
    /* depthwise 5x5 stride 2 behind correct_pad(5, adjust=True) = (1, 2, 1, 2) */
    flava_conv2d_dims d = {.N = 2, .C = 6, .H = 8, .W = 7, .OC = 6, .KH = 5, .KW = 5,
                           .stride = 2, .groups = 6, .pad_top = 1, .pad_left = 1,
                           .pad_bottom = 2, .pad_right = 2};
    run_conv_asym(&d);
    /* all four sides equal: the same as the symmetric pad */
    flava_conv2d_dims e = {.N = 1, .C = 4, .H = 5, .W = 6, .OC = 4, .KH = 3, .KW = 3,
                           .stride = 1, .groups = 4, .pad_top = 1, .pad_left = 1,
                           .pad_bottom = 1, .pad_right = 1};
    run_conv_asym(&e);
}
END_TEST

START_TEST(test_conv_same_matches_symmetric)
{
    flava_conv2d_dims a = {.N = 1, .C = 2, .H = 5, .W = 4, .OC = 3, .KH = 3, .KW = 3,
                           .stride = 1, .pad = 1, .groups = 1};
    flava_conv2d_dims b = a;
    b.pad = 0;
    b.pad_top = b.pad_left = b.pad_bottom = b.pad_right = 1;
    float *x = rnd(40, 61, -1, 1), *w = rnd(54, 62, -1, 1), *ya = rnd(60, 63, 0, 0);
    float *yb = rnd(60, 64, 0, 0);
    OK(conv2d_forward(ctx, ya, x, w, NULL, &a));
    OK(conv2d_forward(ctx, yb, x, w, NULL, &b));
    ck_assert_mem_eq(ya, yb, 60 * sizeof *ya);
    free(x), free(w), free(ya), free(yb);
}
END_TEST

START_TEST(test_conv_padding_errors)
{
    float x[16] = {0}, w[9] = {0}, y[16];
    flava_conv2d_dims d = {.N = 1, .C = 1, .H = 4, .W = 4, .OC = 1, .KH = 3, .KW = 3,
                           .stride = 1, .pad = 1, .groups = 1, .pad_bottom = 1};
    ck_assert_int_eq(conv2d_forward(ctx, y, x, w, NULL, &d), FLAVA_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "replace pad"));
    d.pad = 0;
    d.pad_left = -1;
    ck_assert_int_eq(conv2d_forward(ctx, y, x, w, NULL, &d), FLAVA_ERR_SHAPE);
    /* a kernel larger than the one-sided padded input */
    flava_conv2d_dims e = {.N = 1, .C = 1, .H = 1, .W = 1, .OC = 1, .KH = 3, .KW = 3,
                           .stride = 1, .groups = 1, .pad_bottom = 1, .pad_right = 1};
    ck_assert_int_eq(conv2d_forward(ctx, y, x, w, NULL, &e), FLAVA_ERR_SHAPE);
}
END_TEST

/* ---- against PyTorch ---- */

static flava_st *fx;

static float *load(const char *name, int64_t n)
{
    const flava_st_tensor *t = flava_st_find(fx, name);
    ck_assert_msg(t != NULL, "ops_family.safetensors has no %s", name);
    ck_assert_int_eq(flava_st_numel(t), n);
    float *p = malloc((size_t)n * sizeof *p);
    ck_assert_ptr_nonnull(p);
    OK(flava_st_to_f32(p, t));
    return p;
}

/* got ≈ the fixture `name` to 1e-5 relative (1e-6 absolute near zero) */
static void match(const char *name, const float *got, int64_t n)
{
    float *ref = load(name, n);
    double *d = widen(ref, n);
    ck_assert_close(got, d, n, 1e-5, 1e-6, name);
    free(ref), free(d);
}

static float *zeros(int64_t n)
{
    float *p = calloc((size_t)n, sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

#define NAME(prefix, field) (snprintf(name, sizeof name, "%s.%s", (prefix), (field)), name)

static void torch_batchnorm_train(const char *tag, float momentum)
{
    enum { N = 3, C = 5, H = 4, W = 3, n = N * C * H * W };
    char name[64];
    float *x = load(NAME(tag, "inp"), n), *w = load(NAME(tag, "w"), C);
    float *b = load(NAME(tag, "b"), C), *dout = load(NAME(tag, "dout"), n);
    float *rm = load(NAME(tag, "running_mean_in"), C), *rv = load(NAME(tag, "running_var_in"), C);
    float *out = zeros(n), *mean = zeros(C), *var = zeros(C);
    float *dx = zeros(n), *dw = zeros(C), *db = zeros(C);
    OK(batchnorm2d_forward(ctx, out, mean, var, rm, rv, x, w, b, N, C, H, W, 1e-3f, momentum));
    match(NAME(tag, "out"), out, n);
    match(NAME(tag, "mean"), mean, C);
    match(NAME(tag, "var"), var, C);
    match(NAME(tag, "running_mean_out"), rm, C);
    match(NAME(tag, "running_var_out"), rv, C);
    OK(batchnorm2d_backward(ctx, dx, dw, db, dout, x, w, mean, var, N, C, H, W, 1e-3f, 1));
    match(NAME(tag, "dinp"), dx, n);
    match(NAME(tag, "dw"), dw, C);
    match(NAME(tag, "db"), db, C);
    free(x), free(w), free(b), free(dout), free(rm), free(rv), free(out), free(mean), free(var);
    free(dx), free(dw), free(db);
}

static void torch_conv(const char *tag, const flava_conv2d_dims *d)
{
    char name[64];
    int64_t nx = (int64_t)d->N * d->C * d->H * d->W;
    int64_t nw = (int64_t)d->OC * d->C / d->groups * d->KH * d->KW;
    int64_t ny = (int64_t)d->N * d->OC * flava_conv2d_out_h(d) * flava_conv2d_out_w(d);
    float *x = load(NAME(tag, "inp"), nx), *w = load(NAME(tag, "w"), nw);
    float *dout = load(NAME(tag, "dout"), ny), *y = zeros(ny), *dx = zeros(nx), *dw = zeros(nw);
    OK(conv2d_forward(ctx, y, x, w, NULL, d));
    match(NAME(tag, "out"), y, ny);
    OK(conv2d_backward(ctx, dx, dw, NULL, dout, x, w, d));
    match(NAME(tag, "dinp"), dx, nx);
    match(NAME(tag, "dw"), dw, nw);
    free(x), free(w), free(dout), free(y), free(dx), free(dw);
}

START_TEST(test_against_torch)
{
    char path[4096], name[64];
    OK(flava_st_read(&fx, test_path(path, sizeof path, "tests/fixtures/ops_family.safetensors")));
    torch_batchnorm_train("bn_train", 0.1f);
    torch_batchnorm_train("bn_train99", 0.99f);

    { /* batch norm, inference */
        enum { N = 2, C = 4, H = 3, W = 5, n = N * C * H * W };
        float *x = load("bn_eval.inp", n), *w = load("bn_eval.w", C), *b = load("bn_eval.b", C);
        float *rm = load("bn_eval.running_mean", C), *rv = load("bn_eval.running_var", C);
        float *dout = load("bn_eval.dout", n), *y = zeros(n), *dx = zeros(n), *dw = zeros(C);
        float *db = zeros(C);
        OK(batchnorm2d_forward(ctx, y, NULL, NULL, rm, rv, x, w, b, N, C, H, W, 1e-3f, 0.1f));
        match("bn_eval.out", y, n);
        OK(batchnorm2d_backward(ctx, dx, dw, db, dout, x, w, rm, rv, N, C, H, W, 1e-3f, 0));
        match("bn_eval.dinp", dx, n);
        match("bn_eval.dw", dw, C);
        match("bn_eval.db", db, C);
        free(x), free(w), free(b), free(rm), free(rv), free(dout), free(y), free(dx), free(dw);
        free(db);
    }
    { /* SiLU, quick GELU and sigmoid, in the order of activations[] */
        enum { n = 37 };
        const char *tags[3] = {"silu", "quick_gelu", "sigmoid"};
        for (int k = 0; k < 3; k++) {
            const activation *a = &activations[k];
            float *x = load(NAME(tags[k], "inp"), n), *dout = load(NAME(tags[k], "dout"), n);
            float *y = zeros(n), *dx = zeros(n);
            OK(a->fwd(ctx, y, x, n));
            match(NAME(tags[k], "out"), y, n);
            OK(a->bwd(ctx, dx, dout, a->bwd_reads_out ? y : x, n));
            match(NAME(tags[k], "dinp"), dx, n);
            free(x), free(dout), free(y), free(dx);
        }
    }
    { /* global average pooling */
        enum { N = 2, C = 3, H = 5, W = 7, n = N * C * H * W };
        float *x = load("avgpool.inp", n), *dout = load("avgpool.dout", N * C);
        float *y = zeros(N * C), *dx = zeros(n);
        OK(avgpool_global_forward(ctx, y, x, N, C, H, W));
        match("avgpool.out", y, N * C);
        OK(avgpool_global_backward(ctx, dx, dout, N, C, H, W));
        match("avgpool.dinp", dx, n);
        free(x), free(dout), free(y), free(dx);
    }
    { /* squeeze-and-excitation scale */
        enum { N = 2, C = 4, H = 3, W = 5, n = N * C * H * W };
        float *x = load("se.inp", n), *s = load("se.s", N * C), *dout = load("se.dout", n);
        float *y = zeros(n), *dx = zeros(n), *ds = zeros(N * C);
        OK(channel_scale_forward(ctx, y, x, s, N, C, H, W));
        match("se.out", y, n);
        OK(channel_scale_backward(dx, ds, dout, x, s, N, C, H, W));
        match("se.dinp", dx, n);
        match("se.ds", ds, N * C);
        free(x), free(s), free(dout), free(y), free(dx), free(ds);
    }
    flava_conv2d_dims stem = {.N = 2, .C = 3, .H = 9, .W = 8, .OC = 4, .KH = 3, .KW = 3,
                              .stride = 2, .groups = 1, .pad_bottom = 1, .pad_right = 1};
    torch_conv("conv_stem", &stem);
    flava_conv2d_dims dw = {.N = 2, .C = 6, .H = 8, .W = 7, .OC = 6, .KH = 5, .KW = 5,
                            .stride = 2, .groups = 6, .pad_top = 1, .pad_left = 1,
                            .pad_bottom = 2, .pad_right = 2};
    torch_conv("conv_dw", &dw);
    flava_st_free(fx);
}
END_TEST

static Suite *make_ops_family_suite(void)
{
    Suite *s = suite_create("ops_family");
    TCase *tc = tcase_create("efficientnet");
    tcase_add_checked_fixture(tc, ctx_setup, ctx_teardown);
    tcase_add_test(tc, test_batchnorm_training);
    tcase_add_test(tc, test_batchnorm_inference);
    tcase_add_test(tc, test_batchnorm_errors);
    tcase_add_loop_test(tc, test_activation, 0, sizeof activations / sizeof *activations);
    tcase_add_test(tc, test_avgpool_global);
    tcase_add_test(tc, test_channel_scale);
    tcase_add_test(tc, test_conv_stem_padding);
    tcase_add_test(tc, test_conv_depthwise_same_padding);
    tcase_add_test(tc, test_conv_same_matches_symmetric);
    tcase_add_test(tc, test_conv_padding_errors);
    tcase_add_test(tc, test_against_torch);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return test_run(make_ops_family_suite()); }

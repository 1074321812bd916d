/* check_ops_dense.c - the dense oneDNN ops (linear, attention, softmax,
 * layer norm, GELU/tanh/ReLU): forward against double-precision loops,
 * backward against central differences of those loops, accumulation,
 * bf16 against f32, error paths, and a tiny pre-LN transformer that learns. */
#include "testutil.h"

#include <string.h>

#include "safetensors.h"

static flava_ctx *ctx;

static void setup(void)
{
    ck_assert_int_eq(flava_ctx_create(&ctx, FLAVA_PRECISION_F32), FLAVA_OK);
}

static void teardown(void)
{
    flava_ctx_destroy(ctx);
    ctx = NULL;
}

#define OK(call) ck_assert_msg((call) == FLAVA_OK, "%s: %s", #call, flava_error_message())

static float *fzeros(int64_t n)
{
    float *p = calloc((size_t)n, sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

static float *frand(int64_t n, uint64_t seed, float lo, float hi)
{
    float *p = fzeros(n);
    test_fill(p, n, seed, lo, hi);
    return p;
}

static double *dcopy(const float *x, int64_t n)
{
    double *p = malloc((size_t)n * sizeof *p);
    ck_assert_ptr_nonnull(p);
    for (int64_t i = 0; i < n; i++)
        p[i] = x[i];
    return p;
}

static double max_abs(const double *x, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++)
        m = fmax(m, fabs(x[i]));
    return m;
}

/* ---- double-precision references ---- */

static void ref_linear(double *out, const double *inp, const double *w, const double *b, int N,
                       int C, int OC)
{
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = b ? b[o] : 0.0;
            for (int c = 0; c < C; c++)
                s += inp[(int64_t)n * C + c] * w[(int64_t)o * C + c];
            out[(int64_t)n * OC + o] = s;
        }
}

static double ref_gelu(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }

static void ref_softmax_row(double *out, const double *inp, int cols)
{
    double mx = -INFINITY, s = 0;
    for (int j = 0; j < cols; j++)
        mx = fmax(mx, inp[j]);
    for (int j = 0; j < cols; j++)
        s += out[j] = exp(inp[j] - mx);
    for (int j = 0; j < cols; j++)
        out[j] /= s;
}

/* att (may be NULL) [B,NH,T,T]; masked keys are left out of the softmax */
static void ref_attention(double *out, double *att, const double *qkv, const float *mask,
                          int causal, int B, int T, int C, int NH)
{
    int hs = C / NH;
    double *row = malloc((size_t)T * sizeof *row), *p = malloc((size_t)T * sizeof *p);
    ck_assert_ptr_nonnull(row);
    ck_assert_ptr_nonnull(p);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const double *q = qkv + ((int64_t)b * T + t) * 3 * C + h * hs;
                double mx = -INFINITY, s = 0;
                for (int u = 0; u < T; u++) {
                    const double *k = qkv + ((int64_t)b * T + u) * 3 * C + C + h * hs;
                    int keep = (!mask || mask[b * T + u] != 0) && (!causal || u <= t);
                    double d = 0;
                    for (int j = 0; j < hs; j++)
                        d += q[j] * k[j];
                    row[u] = keep ? d / sqrt((double)hs) : -INFINITY;
                    mx = fmax(mx, row[u]);
                }
                for (int u = 0; u < T; u++)
                    s += p[u] = row[u] == -INFINITY ? 0.0 : exp(row[u] - mx);
                for (int u = 0; u < T; u++)
                    p[u] /= s;
                if (att)
                    memcpy(att + (((int64_t)b * NH + h) * T + t) * T, p, (size_t)T * sizeof *p);
                for (int j = 0; j < hs; j++) {
                    double o = 0;
                    for (int u = 0; u < T; u++)
                        o += p[u] * qkv[((int64_t)b * T + u) * 3 * C + 2 * C + h * hs + j];
                    out[((int64_t)b * T + t) * C + h * hs + j] = o;
                }
            }
    free(row);
    free(p);
}

static void ref_layernorm(double *out, double *mean, double *var, const double *inp,
                          const double *w, const double *b, int N, int C, double eps)
{
    for (int n = 0; n < N; n++) {
        const double *x = inp + (int64_t)n * C;
        double m = 0, v = 0;
        for (int c = 0; c < C; c++)
            m += x[c];
        m /= C;
        for (int c = 0; c < C; c++)
            v += (x[c] - m) * (x[c] - m);
        v /= C;
        for (int c = 0; c < C; c++)
            out[(int64_t)n * C + c] = (x[c] - m) / sqrt(v + eps) * w[c] + b[c];
        if (mean)
            mean[n] = m;
        if (var)
            var[n] = v;
    }
}

/* ---- gradient checking: loss = sum(out * R) of a double reference ---- */

enum { ACT_GELU, ACT_TANH, ACT_RELU };
typedef struct problem {
    void (*forward)(const struct problem *p, double *out, double *const *in);
    int64_t nout;
    int N, C, OC, B, T, NH, causal, act;
    const float *mask;
    double eps;
    const double *R;
    double *out; /* scratch of nout */
} problem;

static double problem_loss(const problem *p, double *const *in)
{
    p->forward(p, p->out, in);
    double s = 0;
    for (int64_t i = 0; i < p->nout; i++)
        s += p->out[i] * p->R[i];
    return s;
}

/* Compares grad[i] of input `which` with central differences at up to 24
 * positions spread over its n values. */
static void check_grad(const char *name, const float *grad, const problem *p, double **in,
                       int which, int64_t n, double rtol, double atol)
{
    enum { PROBES = 24 };
    float got[PROBES];
    double fd[PROBES];
    int np = n < PROBES ? (int)n : PROBES;
    for (int k = 0; k < np; k++) {
        int64_t i = (int64_t)k * n / np + (k * 7) % (n / np > 0 ? n / np : 1);
        double save = in[which][i], h = 1e-5 * fmax(1.0, fabs(save));
        in[which][i] = save + h;
        double lp = problem_loss(p, in);
        in[which][i] = save - h;
        double lm = problem_loss(p, in);
        in[which][i] = save;
        fd[k] = (lp - lm) / (2 * h);
        got[k] = grad[i];
    }
    ck_assert_close(got, fd, np, rtol, atol, name);
}

/* ---- linear ---- */

static void linear_problem_fwd(const problem *p, double *out, double *const *in)
{
    ref_linear(out, in[0], in[1], in[2], p->N, p->C, p->OC);
}

static void check_linear(int N, int C, int OC, int bias)
{
    float *inp = frand((int64_t)N * C, 1, -1, 1), *w = frand((int64_t)OC * C, 2, -0.5f, 0.5f);
    float *b = bias ? frand(OC, 3, -1, 1) : NULL;
    float *out = fzeros((int64_t)N * OC), *R = frand((int64_t)N * OC, 4, -1, 1);
    double *din[3] = {dcopy(inp, (int64_t)N * C), dcopy(w, (int64_t)OC * C),
                      bias ? dcopy(b, OC) : NULL};
    double *ref = malloc((size_t)N * OC * sizeof *ref);
    OK(linear_forward(ctx, out, inp, w, b, N, C, OC));
    ref_linear(ref, din[0], din[1], din[2], N, C, OC);
    ck_assert_close(out, ref, (int64_t)N * OC, 1e-4, 1e-5, "linear out");
    OK(linear_gelu_forward(ctx, out, inp, w, b, N, C, OC));
    for (int64_t i = 0; i < (int64_t)N * OC; i++)
        ref[i] = ref_gelu(ref[i]);
    ck_assert_close(out, ref, (int64_t)N * OC, 1e-4, 1e-5, "linear_gelu out");

    float *dinp = fzeros((int64_t)N * C), *dw = fzeros((int64_t)OC * C);
    float *db = bias ? fzeros(OC) : NULL;
    OK(linear_backward(ctx, dinp, dw, db, R, inp, w, N, C, OC));
    double *dR = dcopy(R, (int64_t)N * OC);
    problem p = {.forward = linear_problem_fwd, .nout = (int64_t)N * OC, .N = N, .C = C,
                 .OC = OC, .R = dR, .out = ref};
    check_grad("linear dinp", dinp, &p, din, 0, (int64_t)N * C, 1e-4, 1e-5);
    check_grad("linear dw", dw, &p, din, 1, (int64_t)OC * C, 1e-4, 1e-5);
    if (bias)
        check_grad("linear db", db, &p, din, 2, OC, 1e-4, 1e-5);
    for (int i = 0; i < 3; i++)
        free(din[i]);
    free(inp), free(w), free(b), free(out), free(R), free(ref), free(dinp), free(dw), free(db);
    free(dR);
}

START_TEST(test_linear)
{
    check_linear(197, 64, 40, 1);
    check_linear(1, 7, 3, 0);
    check_linear(33, 19, 50, 1);
}
END_TEST

START_TEST(test_linear_backward_accumulates)
{
    const int N = 20, C = 12, OC = 9;
    float *inp = frand(N * C, 5, -1, 1), *w = frand(OC * C, 6, -1, 1), *dout = frand(N * OC, 7, -1, 1);
    float *g1[3] = {fzeros(N * C), fzeros(OC * C), fzeros(OC)};
    float *g2[3] = {fzeros(N * C), fzeros(OC * C), fzeros(OC)};
    OK(linear_backward(ctx, g1[0], g1[1], g1[2], dout, inp, w, N, C, OC));
    OK(linear_backward(ctx, g2[0], g2[1], g2[2], dout, inp, w, N, C, OC));
    OK(linear_backward(ctx, g2[0], g2[1], g2[2], dout, inp, w, N, C, OC));
    /* only the wanted gradients are touched */
    OK(linear_backward(ctx, NULL, g2[1], NULL, dout, inp, w, N, C, OC));
    OK(linear_backward(ctx, NULL, g2[1], NULL, dout, inp, w, N, C, OC));
    const int64_t n[3] = {N * C, OC * C, OC};
    for (int k = 0; k < 3; k++) {
        double *twice = dcopy(g1[k], n[k]);
        for (int64_t i = 0; i < n[k]; i++)
            twice[i] *= k == 1 ? 4 : 2;
        ck_assert_close(g2[k], twice, n[k], 1e-6, 1e-7, "linear gradient accumulated");
        free(twice);
        free(g1[k]);
        free(g2[k]);
    }
    free(inp), free(w), free(dout);
}
END_TEST

/* ---- attention ---- */

static void attention_problem_fwd(const problem *p, double *out, double *const *in)
{
    ref_attention(out, NULL, in[0], p->mask, p->causal, p->B, p->T, p->C, p->NH);
}

static void check_attention(int B, int T, int C, int NH, const float *mask, int causal)
{
    int64_t nqkv = (int64_t)B * T * 3 * C, nout = (int64_t)B * T * C, natt = (int64_t)B * NH * T * T;
    float *qkv = frand(nqkv, 11, -1, 1), *out = fzeros(nout), *att = fzeros(natt);
    float *R = frand(nout, 12, -1, 1), *dqkv = fzeros(nqkv);
    double *dq = dcopy(qkv, nqkv), *ref = malloc((size_t)nout * sizeof *ref);
    double *ratt = malloc((size_t)natt * sizeof *ratt);
    OK(attention_forward(ctx, out, att, qkv, mask, causal, B, T, C, NH, NULL));
    ref_attention(ref, ratt, dq, mask, causal, B, T, C, NH);
    ck_assert_close(out, ref, nout, 1e-4, 1e-5, "attention out");
    ck_assert_close(att, ratt, natt, 1e-4, 1e-6, "attention probabilities");
    for (int64_t i = 0; i < natt; i++)
        if (ratt[i] == 0)
            ck_assert_msg(att[i] == 0.0f, "masked key %lld has probability %g", (long long)i,
                          (double)att[i]);

    OK(attention_backward(ctx, dqkv, R, qkv, att, B, T, C, NH, NULL));
    double *dR = dcopy(R, nout);
    problem p = {.forward = attention_problem_fwd, .nout = nout, .B = B, .T = T, .C = C,
                 .NH = NH, .causal = causal, .mask = mask, .R = dR, .out = ref};
    double *in[1] = {dq};
    check_grad("attention dqkv", dqkv, &p, in, 0, nqkv, 1e-3, 1e-5);
    /* and each of the q, k, v regions of the first row and of a middle row */
    for (int part = 0; part < 3; part++) {
        float g[8];
        double fd[8];
        for (int j = 0; j < 8; j++) {
            int64_t i = (int64_t)(T / 2) * 3 * C + part * C + j * (C / 8);
            double save = dq[i], h = 1e-5;
            dq[i] = save + h;
            double lp = problem_loss(&p, in);
            dq[i] = save - h;
            double lm = problem_loss(&p, in);
            dq[i] = save;
            fd[j] = (lp - lm) / (2 * h);
            g[j] = dqkv[i];
        }
        ck_assert_close(g, fd, 8, 1e-3, 1e-5, part == 0 ? "dq" : part == 1 ? "dk" : "dv");
    }
    free(qkv), free(out), free(att), free(R), free(dqkv), free(dq), free(ref), free(ratt);
    free(dR);
}

START_TEST(test_attention_padding_mask)
{
    /* batch 0 unpadded, batch 1 with its last 60 keys padded; head size 64 */
    const int B = 2, T = 197;
    float *mask = fzeros(B * T);
    for (int t = 0; t < T; t++) {
        mask[t] = 1;
        mask[T + t] = t < T - 60;
    }
    check_attention(B, T, 128, 2, mask, 0);
    free(mask);
}
END_TEST

START_TEST(test_attention_causal_and_batch1)
{
    float mask[13] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0};
    check_attention(1, 13, 16, 2, NULL, 1);
    check_attention(1, 13, 16, 2, mask, 1);
    check_attention(1, 5, 12, 3, NULL, 0);
}
END_TEST

START_TEST(test_attention_backward_accumulates)
{
    const int B = 2, T = 9, C = 8, NH = 2;
    float *qkv = frand(B * T * 3 * C, 21, -1, 1), *out = fzeros(B * T * C);
    float *att = fzeros(B * NH * T * T), *dout = frand(B * T * C, 22, -1, 1);
    float *g1 = fzeros(B * T * 3 * C), *g2 = fzeros(B * T * 3 * C);
    OK(attention_forward(ctx, out, att, qkv, NULL, 0, B, T, C, NH, NULL));
    OK(attention_backward(ctx, g1, dout, qkv, att, B, T, C, NH, NULL));
    OK(attention_backward(ctx, g2, dout, qkv, att, B, T, C, NH, NULL));
    OK(attention_backward(ctx, g2, dout, qkv, att, B, T, C, NH, NULL));
    double *twice = dcopy(g1, B * T * 3 * C);
    for (int i = 0; i < B * T * 3 * C; i++)
        twice[i] *= 2;
    ck_assert_close(g2, twice, B * T * 3 * C, 1e-6, 1e-7, "attention dqkv accumulated");
    free(qkv), free(out), free(att), free(dout), free(g1), free(g2), free(twice);
}
END_TEST

/* ---- softmax, layer norm, activations ---- */

static void softmax_problem_fwd(const problem *p, double *out, double *const *in)
{
    for (int r = 0; r < p->N; r++)
        ref_softmax_row(out + (int64_t)r * p->C, in[0] + (int64_t)r * p->C, p->C);
}

START_TEST(test_softmax)
{
    const int rows = 5, cols = 197;
    float *x = frand(rows * cols, 31, -4, 4), *y = fzeros(rows * cols);
    float *R = frand(rows * cols, 32, -1, 1), *dx = fzeros(rows * cols);
    double *dx_in = dcopy(x, rows * cols), *ref = malloc(rows * cols * sizeof *ref);
    double *in[1] = {dx_in};
    problem p = {.forward = softmax_problem_fwd, .nout = rows * cols, .N = rows, .C = cols,
                 .R = dcopy(R, rows * cols), .out = ref};
    OK(softmax_forward(ctx, y, x, rows, cols));
    softmax_problem_fwd(&p, ref, in);
    ck_assert_close(y, ref, rows * cols, 1e-5, 1e-7, "softmax out");
    dx[0] = 1; /* accumulates onto what is there */
    OK(softmax_backward(ctx, dx, R, y, rows, cols));
    dx[0] -= 1;
    check_grad("softmax dinp", dx, &p, in, 0, rows * cols, 1e-4, 1e-6);
    free(x), free(y), free(R), free(dx), free(dx_in), free(ref), free((void *)p.R);
}
END_TEST

static void layernorm_problem_fwd(const problem *p, double *out, double *const *in)
{
    ref_layernorm(out, NULL, NULL, in[0], in[1], in[2], p->N, p->C, p->eps);
}

START_TEST(test_layernorm)
{
    const int N = 7, C = 96;
    const float eps = 1e-5f;
    float *x = frand(N * C, 41, -2, 3), *w = frand(C, 42, 0.5f, 1.5f), *b = frand(C, 43, -1, 1);
    float *y = fzeros(N * C), *y2 = fzeros(N * C), *mean = fzeros(N), *var = fzeros(N);
    float *R = frand(N * C, 44, -1, 1);
    double *in[3] = {dcopy(x, N * C), dcopy(w, C), dcopy(b, C)};
    double *ref = malloc(N * C * sizeof *ref), rmean[7], rvar[7];
    OK(layernorm_forward(ctx, y, mean, var, x, w, b, N, C, eps));
    ref_layernorm(ref, rmean, rvar, in[0], in[1], in[2], N, C, eps);
    ck_assert_close(y, ref, N * C, 1e-4, 1e-5, "layernorm out");
    ck_assert_close(mean, rmean, N, 1e-5, 1e-6, "layernorm mean");
    ck_assert_close(var, rvar, N, 1e-5, 1e-6, "layernorm var");
    OK(layernorm_forward(ctx, y2, NULL, NULL, x, w, b, N, C, eps)); /* inference */
    ck_assert_close(y2, ref, N * C, 1e-4, 1e-5, "layernorm inference out");
    OK(layernorm_forward(ctx, y2, mean, var, x, w, b, N, C, 1e-12f)); /* FLAVA's eps */
    ref_layernorm(ref, NULL, NULL, in[0], in[1], in[2], N, C, 1e-12);
    ck_assert_close(y2, ref, N * C, 1e-4, 1e-5, "layernorm out, eps 1e-12");
    OK(layernorm_forward(ctx, y, mean, var, x, w, b, N, C, eps));

    float *dx = fzeros(N * C), *dw = fzeros(C), *db = fzeros(C);
    OK(layernorm_backward(ctx, dx, dw, db, R, x, w, mean, var, N, C, eps));
    problem p = {.forward = layernorm_problem_fwd, .nout = N * C, .N = N, .C = C, .eps = eps,
                 .R = dcopy(R, N * C), .out = ref};
    check_grad("layernorm dinp", dx, &p, in, 0, N * C, 1e-3, 1e-5);
    check_grad("layernorm dw", dw, &p, in, 1, C, 1e-4, 1e-5);
    check_grad("layernorm db", db, &p, in, 2, C, 1e-4, 1e-5);
    /* a second call adds the same again */
    double *twice = dcopy(dw, C);
    for (int c = 0; c < C; c++)
        twice[c] *= 2;
    OK(layernorm_backward(ctx, NULL, dw, NULL, R, x, w, mean, var, N, C, eps));
    ck_assert_close(dw, twice, C, 1e-6, 1e-7, "layernorm dw accumulated");
    for (int i = 0; i < 3; i++)
        free(in[i]);
    free(x), free(w), free(b), free(y), free(y2), free(mean), free(var), free(R), free(ref);
    free(dx), free(dw), free(db), free(twice), free((void *)p.R);
}
END_TEST

static double ref_act(int act, double x)
{
    return act == ACT_GELU ? ref_gelu(x) : act == ACT_TANH ? tanh(x) : x > 0 ? x : 0;
}

static void act_problem_fwd(const problem *p, double *out, double *const *in)
{
    for (int64_t i = 0; i < p->nout; i++)
        out[i] = ref_act(p->act, in[0][i]);
}

START_TEST(test_activations)
{
    const int n = 1001;
    float *x = frand(n, 51, -4, 4), *y = fzeros(n), *R = frand(n, 52, -1, 1), *dx = fzeros(n);
    for (int i = 0; i < n; i++) /* keep ReLU's kink out of the differences */
        if (fabsf(x[i]) < 1e-3f)
            x[i] = 0.5f;
    double *dxin = dcopy(x, n), *ref = malloc(n * sizeof *ref), *in[1] = {dxin};
    const char *names[3] = {"gelu", "tanh", "relu"};
    for (int act = 0; act < 3; act++) {
        problem p = {.forward = act_problem_fwd, .nout = n, .act = act, .R = dcopy(R, n),
                     .out = ref};
        flava_status s = act == ACT_GELU   ? gelu_forward(ctx, y, x, n)
                         : act == ACT_TANH ? tanh_forward(ctx, y, x, n)
                                           : relu_forward(ctx, y, x, n);
        ck_assert_int_eq(s, FLAVA_OK);
        act_problem_fwd(&p, ref, in);
        ck_assert_close(y, ref, n, 1e-5, 1e-6, names[act]);
        memset(dx, 0, n * sizeof *dx);
        s = act == ACT_GELU   ? gelu_backward(ctx, dx, R, x, n)
            : act == ACT_TANH ? tanh_backward(ctx, dx, R, y, n)
                              : relu_backward(ctx, dx, R, x, n);
        ck_assert_int_eq(s, FLAVA_OK);
        check_grad(names[act], dx, &p, in, 0, n, 1e-4, 1e-6);
        free((void *)p.R);
    }
    free(x), free(y), free(R), free(dx), free(dxin), free(ref);
}
END_TEST

/* ---- bf16 matmuls against f32 ---- */

/* |a - b| within 2% of b's largest magnitude: bf16 keeps 8 mantissa bits */
static void assert_bf16_close(const float *a, const float *b, int64_t n, const char *name)
{
    double *ref = dcopy(b, n);
    ck_assert_close(a, ref, n, 0.0, 0.02 * max_abs(ref, n), name);
    free(ref);
}

START_TEST(test_bf16_matches_f32)
{
    if (!flava_ctx_has_bf16(ctx)) /* bf16 matmuls need AVX512-BF16 or AMX */
        return;
    const int N = 64, C = 96, OC = 80, B = 2, T = 17, H = 32, NH = 4;
    float *inp = frand(N * C, 61, -1, 1), *w = frand(OC * C, 62, -0.3f, 0.3f);
    float *b = frand(OC, 63, -1, 1), *dout = frand(N * OC, 64, -1, 1);
    float *out[2], *dinp[2], *dw[2], *db[2];
    float *qkv = frand(B * T * 3 * H, 65, -1, 1), *ado = frand(B * T * H, 66, -1, 1);
    float mask[2 * 17];
    for (int i = 0; i < B * T; i++)
        mask[i] = i % T < 14 || i < T;
    float *aout[2], *att[2], *dqkv[2], *dout_drop[2], *dqkv_drop[2];
    const flava_dropout drop = {.p = 0.25f, .seed = 9, .stream = 4};
    for (int k = 0; k < 2; k++) {
        flava_ctx_set_precision(ctx, k ? FLAVA_PRECISION_BF16 : FLAVA_PRECISION_F32);
        out[k] = fzeros(N * OC), dinp[k] = fzeros(N * C), dw[k] = fzeros(OC * C);
        db[k] = fzeros(OC);
        OK(linear_forward(ctx, out[k], inp, w, b, N, C, OC));
        OK(linear_backward(ctx, dinp[k], dw[k], db[k], dout, inp, w, N, C, OC));
        aout[k] = fzeros(B * T * H), att[k] = fzeros(B * NH * T * T);
        dqkv[k] = fzeros(B * T * 3 * H);
        OK(attention_forward(ctx, aout[k], att[k], qkv, mask, 1, B, T, H, NH, NULL)); /* causal too */
        OK(attention_backward(ctx, dqkv[k], ado, qkv, att[k], B, T, H, NH, NULL));
        /* with dropout: its own buffers in both precisions */
        dout_drop[k] = fzeros(B * T * H), dqkv_drop[k] = fzeros(B * T * 3 * H);
        OK(attention_forward(ctx, dout_drop[k], att[k], qkv, mask, 1, B, T, H, NH, &drop));
        OK(attention_backward(ctx, dqkv_drop[k], ado, qkv, att[k], B, T, H, NH, &drop));
    }
    assert_bf16_close(out[1], out[0], N * OC, "bf16 linear out");
    assert_bf16_close(dinp[1], dinp[0], N * C, "bf16 linear dinp");
    assert_bf16_close(dw[1], dw[0], OC * C, "bf16 linear dw");
    assert_bf16_close(db[1], db[0], OC, "bf16 linear db");
    assert_bf16_close(aout[1], aout[0], B * T * H, "bf16 attention out");
    assert_bf16_close(att[1], att[0], B * NH * T * T, "bf16 attention probabilities");
    assert_bf16_close(dqkv[1], dqkv[0], B * T * 3 * H, "bf16 attention dqkv");
    assert_bf16_close(dout_drop[1], dout_drop[0], B * T * H, "bf16 attention out, dropout");
    assert_bf16_close(dqkv_drop[1], dqkv_drop[0], B * T * 3 * H, "bf16 attention dqkv, dropout");
    /* and bf16 really is in use: results differ from f32 */
    int differ = 0;
    for (int i = 0; i < N * OC; i++)
        differ += out[1][i] != out[0][i];
    ck_assert_int_gt(differ, N * OC / 4);
    for (int k = 0; k < 2; k++) {
        free(out[k]), free(dinp[k]), free(dw[k]), free(db[k]), free(aout[k]), free(att[k]);
        free(dqkv[k]), free(dout_drop[k]), free(dqkv_drop[k]);
    }
    free(inp), free(w), free(b), free(dout), free(qkv), free(ado);
}
END_TEST

/* Dropout: the share dropped is p (within 5 standard deviations), the
 * rest scaled by exactly 1/(1-p); a site's mask is the same every time
 * (backward multiplies by the mask forward used, accumulating; the pair
 * form applies it to two tensors, one of them in place) and another stream's
 * is not; p = 0 is the identity and p outside [0, 1) an error. */
START_TEST(test_dropout)
{
    const int64_t n = 100001; /* odd: the last draw's low half unused */
    float *x = frand(n, 71, 0.5f, 1.5f), *y = fzeros(n), *y2 = fzeros(n), *g = fzeros(n);
    const flava_dropout d = {.p = 0.3f, .seed = 5, .stream = 2}, other = {.p = 0.3f, .seed = 5,
                                                                          .stream = 3};
    OK(dropout_forward(y, x, n, &d));
    int64_t dropped = 0;
    for (int64_t i = 0; i < n; i++) {
        if (y[i] == 0.0f)
            dropped++;
        else
            ck_assert_float_eq(y[i], x[i] * (1.0f / 0.7f));
    }
    const double share = (double)dropped / n, sd = sqrt(0.3 * 0.7 / n);
    ck_assert_msg(fabs(share - 0.3) < 5 * sd, "dropped %.4f, expected 0.3", share);
    for (int64_t i = 0; i < n; i++)
        g[i] = 1.0f;
    OK(dropout_backward(g, x, n, &d));
    for (int64_t i = 0; i < n; i++)
        ck_assert_float_eq(g[i], 1.0f + y[i]);
    float *a = fzeros(n), *z = frand(n, 72, -1.0f, 1.0f), *zd = fzeros(n);
    OK(dropout_forward(zd, z, n, &d));
    OK(dropout_forward_pair(a, x, z, z, n, &d));
    for (int64_t i = 0; i < n; i++) {
        ck_assert_float_eq(a[i], y[i]);
        ck_assert_float_eq(z[i], zd[i]);
    }
    OK(dropout_forward(y2, x, n, &other));
    int64_t same = 0;
    for (int64_t i = 0; i < n; i++)
        same += (y2[i] == 0.0f) == (y[i] == 0.0f);
    ck_assert_int_lt(same, n * 7 / 10); /* independent masks agree on 0.58 of the elements */
    const flava_dropout none = {.p = 0.0f}, bad = {.p = 1.0f};
    OK(dropout_forward(y2, x, n, &none));
    OK(dropout_forward_pair(a, zd, z, x, n, &none));
    for (int64_t i = 0; i < n; i++) {
        ck_assert_float_eq(y2[i], x[i]);
        ck_assert_float_eq(a[i], zd[i]);
        ck_assert_float_eq(z[i], x[i]);
    }
    ck_assert_int_eq(dropout_forward(y2, x, n, &bad), FLAVA_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "expected 0 <= p < 1"));
    ck_assert_int_eq(dropout_forward_pair(a, x, z, z, n, &bad), FLAVA_ERR_ARG);
    free(x), free(y), free(y2), free(g), free(a), free(z), free(zd);
}
END_TEST

/* The bf16 value nearest to x (ties to even), found by comparing the two
 * truncation neighbours in double: independent of the bit trick in ctx.c. */
static uint16_t ref_bf16(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    uint32_t lo = u & 0xffff0000u, hi = lo + 0x10000u;
    float flo, fhi;
    memcpy(&flo, &lo, sizeof flo);
    memcpy(&fhi, &hi, sizeof fhi);
    double dlo = fabs((double)x - flo), dhi = fabs((double)fhi - x);
    if (dlo < dhi || (dlo == dhi && !((lo >> 16) & 1)))
        return (uint16_t)(lo >> 16);
    return (uint16_t)(hi >> 16);
}

/* flava_ctx_set_weights: parameters converted once per declared version
 * give the same matmuls as converting at every call, a new version is seen,
 * and pointers outside the block are converted per call as before. */
START_TEST(test_bf16_weight_copies)
{
    if (!flava_ctx_has_bf16(ctx))
        return;
    enum { N = 40, C = 256, OC = 96, NW = 40000, OFF = 9001 }; /* w spans 3 chunks */
    float *blk = frand(NW, 71, -0.3f, 0.3f), *inp = frand(N * C, 72, -1, 1);
    float *dout = frand(N * OC, 73, -1, 1), *w = blk + OFF;
    float *ref = fzeros(N * OC), *got = fzeros(N * OC), *dref = fzeros(N * C), *dgot = fzeros(N * C);
    flava_ctx_set_precision(ctx, FLAVA_PRECISION_BF16);
    for (int version = 0; version < 2; version++) {
        OK(flava_ctx_set_weights(ctx, NULL, 0)); /* per-call conversion */
        ck_assert_ptr_null(flava_ctx_bf16_weights(ctx, w, OC * C));
        memset(dref, 0, N * C * sizeof *dref);
        memset(dgot, 0, N * C * sizeof *dgot);
        OK(linear_forward(ctx, ref, inp, w, NULL, N, C, OC));
        OK(linear_backward(ctx, dref, NULL, NULL, dout, inp, w, N, C, OC));
        OK(flava_ctx_set_weights(ctx, blk, NW));
        OK(linear_forward(ctx, got, inp, w, NULL, N, C, OC));
        OK(linear_backward(ctx, dgot, NULL, NULL, dout, inp, w, N, C, OC));
        ck_assert_mem_eq(got, ref, N * OC * sizeof *got);
        ck_assert_mem_eq(dgot, dref, N * C * sizeof *dgot);
        const uint16_t *w16 = flava_ctx_bf16_weights(ctx, w, OC * C);
        ck_assert_ptr_nonnull(w16);
        for (int i = 0; i < OC * C; i++)
            ck_assert_msg(w16[i] == ref_bf16(w[i]), "weight %d: bf16 %04x, expected %04x", i,
                          w16[i], ref_bf16(w[i]));
        for (int i = 0; i < NW; i++) /* the next version: every weight changes */
            blk[i] = -2.5f * blk[i] + 0.01f;
    }
    /* rounding ties go to even; NaN stays NaN */
    blk[0] = 1.0f + 0x1p-8f, blk[1] = 1.0f + 3 * 0x1p-8f, blk[2] = NAN;
    OK(flava_ctx_set_weights(ctx, blk, NW));
    const uint16_t *t = flava_ctx_bf16_weights(ctx, blk, 3);
    ck_assert_uint_eq(t[0], 0x3f80);
    ck_assert_uint_eq(t[1], 0x3f82);
    ck_assert_uint_eq(t[2] & 0x7f80, 0x7f80);
    ck_assert_uint_ne(t[2] & 0x7f, 0);
    /* outside the block, or running past its end: not served */
    ck_assert_ptr_null(flava_ctx_bf16_weights(ctx, inp, 10));
    ck_assert_ptr_null(flava_ctx_bf16_weights(ctx, blk + NW - 5, 10));
    ck_assert_int_eq(flava_ctx_set_weights(ctx, NULL, 5), FLAVA_ERR_ARG);
    free(blk), free(inp), free(dout), free(ref), free(got), free(dref), free(dgot);
}
END_TEST

/* ---- against PyTorch (tests/reference/ops_dense_fixtures.py) ---- */

static float *fixture(const flava_st *st, const char *name, int64_t n)
{
    const flava_st_tensor *t = flava_st_find(st, name);
    ck_assert_msg(t != NULL, "ops_dense.safetensors has no %s", name);
    ck_assert_int_eq(flava_st_numel(t), n);
    float *p = fzeros(n);
    OK(flava_st_to_f32(p, t));
    return p;
}

/* got ≈ the fixture `name` to 1e-5 relative (1e-6 absolute near zero) */
static void match(const flava_st *st, const char *name, const float *got, int64_t n)
{
    float *ref = fixture(st, name, n);
    double *d = dcopy(ref, n);
    ck_assert_close(got, d, n, 1e-5, 1e-6, name);
    free(ref);
    free(d);
}

static void match_attention(const flava_st *st, const char *prefix, const float *qkv,
                            const float *mask, int causal)
{
    enum { B = 2, T = 6, C = 8, NH = 2 };
    char name[64];
    float out[B * T * C], att[B * NH * T * T], dqkv[B * T * 3 * C] = {0};
    OK(attention_forward(ctx, out, att, qkv, mask, causal, B, T, C, NH, NULL));
    snprintf(name, sizeof name, "%s.out", prefix);
    match(st, name, out, B * T * C);
    snprintf(name, sizeof name, "%s.att", prefix);
    match(st, name, att, B * NH * T * T);
    snprintf(name, sizeof name, "%s.dout", prefix);
    float *dout = fixture(st, name, B * T * C);
    OK(attention_backward(ctx, dqkv, dout, qkv, att, B, T, C, NH, NULL));
    snprintf(name, sizeof name, "%s.dqkv", prefix);
    match(st, name, dqkv, B * T * 3 * C);
    free(dout);
}

START_TEST(test_matches_pytorch)
{
    char path[4096];
    flava_st *st;
    OK(flava_st_read(&st, test_path(path, sizeof path, "tests/fixtures/ops_dense.safetensors")));

    float *x = fixture(st, "linear.inp", 7 * 12), *w = fixture(st, "linear.w", 5 * 12);
    float *b = fixture(st, "linear.b", 5), *dout = fixture(st, "linear.dout", 7 * 5);
    float y[7 * 5], dx[7 * 12] = {0}, dw[5 * 12] = {0}, db[5] = {0};
    OK(linear_forward(ctx, y, x, w, b, 7, 12, 5));
    match(st, "linear.out", y, 7 * 5);
    OK(linear_gelu_forward(ctx, y, x, w, b, 7, 12, 5));
    match(st, "linear.gelu_out", y, 7 * 5);
    OK(linear_backward(ctx, dx, dw, db, dout, x, w, 7, 12, 5));
    match(st, "linear.dinp", dx, 7 * 12);
    match(st, "linear.dw", dw, 5 * 12);
    match(st, "linear.db", db, 5);
    free(x), free(w), free(b), free(dout);

    float *qkv = fixture(st, "attention.qkv", 2 * 6 * 24), *mask = fixture(st, "attention.mask", 12);
    match_attention(st, "attention", qkv, mask, 0);
    match_attention(st, "attention_causal", qkv, NULL, 1);
    free(qkv), free(mask);

    x = fixture(st, "softmax.inp", 36), dout = fixture(st, "softmax.dout", 36);
    float sy[36], sdx[36] = {0};
    OK(softmax_forward(ctx, sy, x, 4, 9));
    match(st, "softmax.out", sy, 36);
    OK(softmax_backward(ctx, sdx, dout, sy, 4, 9));
    match(st, "softmax.dinp", sdx, 36);
    free(x), free(dout);

    x = fixture(st, "layernorm.inp", 80), w = fixture(st, "layernorm.w", 16);
    b = fixture(st, "layernorm.b", 16), dout = fixture(st, "layernorm.dout", 80);
    float ly[80], mean[5], var[5], ldx[80] = {0}, ldw[16] = {0}, ldb[16] = {0};
    OK(layernorm_forward(ctx, ly, mean, var, x, w, b, 5, 16, 1e-12f));
    match(st, "layernorm.out", ly, 80);
    match(st, "layernorm.mean", mean, 5);
    match(st, "layernorm.var", var, 5);
    OK(layernorm_backward(ctx, ldx, ldw, ldb, dout, x, w, mean, var, 5, 16, 1e-12f));
    match(st, "layernorm.dinp", ldx, 80);
    match(st, "layernorm.dw", ldw, 16);
    match(st, "layernorm.db", ldb, 16);
    free(x), free(w), free(b), free(dout);

    const char *acts[3] = {"gelu", "tanh", "relu"};
    for (int a = 0; a < 3; a++) {
        char name[32];
        snprintf(name, sizeof name, "%s.inp", acts[a]);
        x = fixture(st, name, 50);
        snprintf(name, sizeof name, "%s.dout", acts[a]);
        dout = fixture(st, name, 50);
        float ay[50], adx[50] = {0};
        flava_status s = a == ACT_GELU   ? gelu_forward(ctx, ay, x, 50)
                         : a == ACT_TANH ? tanh_forward(ctx, ay, x, 50)
                                         : relu_forward(ctx, ay, x, 50);
        ck_assert_int_eq(s, FLAVA_OK);
        snprintf(name, sizeof name, "%s.out", acts[a]);
        match(st, name, ay, 50);
        s = a == ACT_GELU   ? gelu_backward(ctx, adx, dout, x, 50)
            : a == ACT_TANH ? tanh_backward(ctx, adx, dout, ay, 50)
                            : relu_backward(ctx, adx, dout, x, 50);
        ck_assert_int_eq(s, FLAVA_OK);
        snprintf(name, sizeof name, "%s.dinp", acts[a]);
        match(st, name, adx, 50);
        free(x), free(dout);
    }
    flava_st_free(st);
}
END_TEST

/* ---- a tiny two-layer pre-LN transformer encoder learns a toy task:
 * every position must output the mean of its sequence's inputs, which
 * needs attention to mix positions and the MLP to cancel the residual. */

enum { TB = 4, TT = 8, TN = TB * TT, TC = 16, TNH = 2, TH = 32, TL = 2 };
enum { P_LN1W, P_LN1B, P_WQKV, P_BQKV, P_WO, P_BO, P_LN2W, P_LN2B, P_W1, P_B1, P_W2, P_B2, P_COUNT };
static const int64_t tsize[P_COUNT] = {TC, TC, 3 * TC * TC, 3 * TC, TC * TC, TC,
                                       TC, TC, TH * TC,     TH,     TC * TH, TC};
static const float teps = 1e-5f;

typedef struct tlayer {
    float *p[P_COUNT], *g[P_COUNT];
    float ln1[TN * TC], mean1[TN], var1[TN], qkv[TN * 3 * TC], a[TN * TC];
    float att[TB * TNH * TT * TT], x1[TN * TC], ln2[TN * TC], mean2[TN], var2[TN];
    float h[TN * TH], hg[TN * TH];
} tlayer;

static void tlayer_forward(tlayer *l, float *y, const float *x)
{
    OK(layernorm_forward(ctx, l->ln1, l->mean1, l->var1, x, l->p[P_LN1W], l->p[P_LN1B], TN, TC,
                         teps));
    OK(linear_forward(ctx, l->qkv, l->ln1, l->p[P_WQKV], l->p[P_BQKV], TN, TC, 3 * TC));
    OK(attention_forward(ctx, l->a, l->att, l->qkv, NULL, 0, TB, TT, TC, TNH, NULL));
    OK(linear_forward(ctx, l->x1, l->a, l->p[P_WO], l->p[P_BO], TN, TC, TC));
    for (int i = 0; i < TN * TC; i++)
        l->x1[i] += x[i];
    OK(layernorm_forward(ctx, l->ln2, l->mean2, l->var2, l->x1, l->p[P_LN2W], l->p[P_LN2B], TN,
                         TC, teps));
    OK(linear_forward(ctx, l->h, l->ln2, l->p[P_W1], l->p[P_B1], TN, TC, TH));
    OK(gelu_forward(ctx, l->hg, l->h, TN * TH));
    OK(linear_forward(ctx, y, l->hg, l->p[P_W2], l->p[P_B2], TN, TH, TC));
    for (int i = 0; i < TN * TC; i++)
        y[i] += l->x1[i];
}

/* dx += the gradient through the layer of dy; parameter gradients add up */
static void tlayer_backward(tlayer *l, float *dx, const float *dy, const float *x)
{
    static float dx1[TN * TC], dhg[TN * TH], dh[TN * TH], dln2[TN * TC], da[TN * TC];
    static float dqkv[TN * 3 * TC], dln1[TN * TC];
    memcpy(dx1, dy, sizeof dx1);
    memset(dhg, 0, sizeof dhg), memset(dh, 0, sizeof dh), memset(dln2, 0, sizeof dln2);
    memset(da, 0, sizeof da), memset(dqkv, 0, sizeof dqkv), memset(dln1, 0, sizeof dln1);
    OK(linear_backward(ctx, dhg, l->g[P_W2], l->g[P_B2], dy, l->hg, l->p[P_W2], TN, TH, TC));
    OK(gelu_backward(ctx, dh, dhg, l->h, TN * TH));
    OK(linear_backward(ctx, dln2, l->g[P_W1], l->g[P_B1], dh, l->ln2, l->p[P_W1], TN, TC, TH));
    OK(layernorm_backward(ctx, dx1, l->g[P_LN2W], l->g[P_LN2B], dln2, l->x1, l->p[P_LN2W],
                          l->mean2, l->var2, TN, TC, teps));
    for (int i = 0; i < TN * TC; i++)
        dx[i] += dx1[i];
    OK(linear_backward(ctx, da, l->g[P_WO], l->g[P_BO], dx1, l->a, l->p[P_WO], TN, TC, TC));
    OK(attention_backward(ctx, dqkv, da, l->qkv, l->att, TB, TT, TC, TNH, NULL));
    OK(linear_backward(ctx, dln1, l->g[P_WQKV], l->g[P_BQKV], dqkv, l->ln1, l->p[P_WQKV], TN, TC,
                       3 * TC));
    OK(layernorm_backward(ctx, dx, l->g[P_LN1W], l->g[P_LN1B], dln1, x, l->p[P_LN1W], l->mean1,
                          l->var1, TN, TC, teps));
}

START_TEST(test_tiny_transformer_learns)
{
    /* parameters and gradients each in one block, as the model keeps them */
    int64_t total = 0;
    for (int k = 0; k < P_COUNT; k++)
        total += TL * tsize[k];
    float *params = fzeros(total), *grads = fzeros(total);
    static tlayer layers[TL];
    flava_rng rng;
    flava_rng_init(&rng, 7, 0);
    int64_t off = 0;
    for (int l = 0; l < TL; l++)
        for (int k = 0; k < P_COUNT; k++) {
            layers[l].p[k] = params + off;
            layers[l].g[k] = grads + off;
            int64_t fan_in = k == P_W2 ? TH : TC;
            for (int64_t i = 0; i < tsize[k]; i++)
                params[off + i] = k == P_LN1W || k == P_LN2W ? 1.0f
                                  : k == P_WQKV || k == P_WO || k == P_W1 || k == P_W2
                                      ? (float)((2 * flava_rng_uniform(&rng) - 1) / sqrt((double)fan_in))
                                      : 0.0f;
            off += tsize[k];
        }
    static float x[TL + 1][TN * TC], dx[TL + 1][TN * TC], target[TN * TC];
    test_fill(x[0], TN * TC, 8, -1, 1);
    for (int b = 0; b < TB; b++)
        for (int c = 0; c < TC; c++) {
            double m = 0;
            for (int t = 0; t < TT; t++)
                m += x[0][(b * TT + t) * TC + c];
            for (int t = 0; t < TT; t++)
                target[(b * TT + t) * TC + c] = (float)(m / TT);
        }
    const float lr = 0.5f;
    double first = 0, last = 0;
    for (int step = 0; step < 50; step++) {
        for (int l = 0; l < TL; l++)
            tlayer_forward(&layers[l], x[l + 1], x[l]);
        double loss = 0;
        for (int i = 0; i < TN * TC; i++) {
            double d = x[TL][i] - target[i];
            loss += d * d / (TN * TC);
            dx[TL][i] = (float)(2 * d / (TN * TC));
        }
        if (step == 0)
            first = loss;
        last = loss;
        memset(grads, 0, (size_t)total * sizeof *grads);
        for (int l = TL - 1; l >= 0; l--) {
            memset(dx[l], 0, sizeof dx[l]);
            tlayer_backward(&layers[l], dx[l], dx[l + 1], x[l]);
        }
        for (int64_t i = 0; i < total; i++)
            params[i] -= lr * grads[i];
    }
    ck_assert_msg(last < 0.1 * first, "loss went from %g to %g", first, last);
    free(params);
    free(grads);
}
END_TEST

/* ---- error paths ---- */

START_TEST(test_bad_sizes_are_errors)
{
    float x[16] = {0}, y[16] = {0}, m[4] = {0}, v[4] = {0};
    ck_assert_int_eq(linear_forward(ctx, y, x, x, NULL, 0, 4, 4), FLAVA_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "linear_forward"));
    ck_assert_int_eq(linear_backward(ctx, y, y, y, x, x, x, 4, -1, 4), FLAVA_ERR_SHAPE);
    ck_assert_int_eq(attention_forward(ctx, y, y, x, NULL, 0, 1, 2, 6, 4, NULL), FLAVA_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "divisible"));
    ck_assert_int_eq(attention_backward(ctx, y, x, x, x, 1, 0, 4, 2, NULL), FLAVA_ERR_SHAPE);
    ck_assert_int_eq(softmax_forward(ctx, y, x, 0, 4), FLAVA_ERR_SHAPE);
    ck_assert_int_eq(layernorm_forward(ctx, y, m, NULL, x, x, x, 4, 4, 1e-5f), FLAVA_ERR_ARG);
    ck_assert_int_eq(layernorm_forward(ctx, y, m, v, x, x, x, 4, 4, 0.0f), FLAVA_ERR_SHAPE);
    ck_assert_int_eq(gelu_forward(ctx, y, x, 0), FLAVA_ERR_SHAPE);
}
END_TEST

Suite *make_ops_dense_suite(void);
Suite *make_ops_dense_suite(void)
{
    Suite *s = suite_create("ops_dense");
    TCase *tc = tcase_create("ops");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_linear);
    tcase_add_test(tc, test_linear_backward_accumulates);
    tcase_add_test(tc, test_attention_padding_mask);
    tcase_add_test(tc, test_attention_causal_and_batch1);
    tcase_add_test(tc, test_attention_backward_accumulates);
    tcase_add_test(tc, test_softmax);
    tcase_add_test(tc, test_layernorm);
    tcase_add_test(tc, test_activations);
    tcase_add_test(tc, test_dropout);
    tcase_add_test(tc, test_bf16_matches_f32);
    tcase_add_test(tc, test_bf16_weight_copies);
    tcase_add_test(tc, test_matches_pytorch);
    tcase_add_test(tc, test_tiny_transformer_learns);
    tcase_add_test(tc, test_bad_sizes_are_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return test_run(make_ops_dense_suite()); }

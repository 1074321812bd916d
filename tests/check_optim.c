/* check_optim.c - AdamW, clipping and the schedule against PyTorch
 * (tests/reference/optim_fixtures.py) and against double-precision loops. */
#include "testutil.h"

#include <omp.h>
#include <string.h>

#include "optim.h"

/* The fixture's flat layout: w[4,5] b[5] w2[3,4] ln[5]; b and ln get no decay. */
enum { NP = 42, STEPS = 5 };
static const flava_param_range no_decay[] = {{20, 5}, {37, 5}};

static flava_st *open_fixture(void)
{
    char path[512];
    flava_st *st;
    ck_assert_int_eq(flava_st_read(&st, test_path(path, sizeof path,
                                                   "tests/fixtures/optim_reference.safetensors")),
                     FLAVA_OK);
    return st;
}

static void to_double(double *d, const float *f, int n)
{
    for (int i = 0; i < n; i++)
        d[i] = f[i];
}

START_TEST(test_matches_torch_adamw)
{
    flava_st *st = open_fixture();
    float p[NP], m[NP] = {0}, v[NP] = {0}, g[NP];
    float grads[STEPS][NP], want[STEPS][NP], norms[STEPS], lrs[STEPS], m_ref[NP], v_ref[NP];
    ck_assert_int_eq(flava_st_load_f32(p, st, "params0", 1, (const int64_t[]){NP}), FLAVA_OK);
    ck_assert_int_eq(flava_st_load_f32(&grads[0][0], st, "grads", 2, (const int64_t[]){STEPS, NP}), FLAVA_OK);
    ck_assert_int_eq(flava_st_load_f32(&want[0][0], st, "params", 2, (const int64_t[]){STEPS, NP}), FLAVA_OK);
    ck_assert_int_eq(flava_st_load_f32(norms, st, "norms", 1, (const int64_t[]){STEPS}), FLAVA_OK);
    ck_assert_int_eq(flava_st_load_f32(lrs, st, "lrs", 1, (const int64_t[]){STEPS}), FLAVA_OK);
    ck_assert_int_eq(flava_st_load_f32(m_ref, st, "exp_avg", 1, (const int64_t[]){NP}), FLAVA_OK);
    ck_assert_int_eq(flava_st_load_f32(v_ref, st, "exp_avg_sq", 1, (const int64_t[]){NP}), FLAVA_OK);
    flava_st_free(st);

    const flava_adamw_config cfg = {.beta1 = 0.9, .beta2 = 0.95, .eps = 1e-6, .weight_decay = 0.1};
    double ref[NP], worst_p = 0, worst_norm = 0;
    int64_t where;
    int clipped = 0;
    for (int t = 1; t <= STEPS; t++) {
        memcpy(g, grads[t - 1], sizeof g);
        double norm;
        ck_assert_int_eq(flava_grad_clip_norm(&norm, g, NP, 1.0), FLAVA_OK);
        ck_assert_double_eq_tol(norm, norms[t - 1], 1e-6 * norms[t - 1]);
        worst_norm = fmax(worst_norm, fabs(norm - norms[t - 1]) / norms[t - 1]);
        clipped += norm > 1.0;
        double lr = flava_lr_cosine(t - 1, 2, STEPS, 0.05, 0.0);
        ck_assert_double_eq_tol(lr, lrs[t - 1], 1e-6 * 0.05); /* stored as float */
        ck_assert_int_eq(flava_adamw_step(p, m, v, g, no_decay, 2, NP, lr, t, &cfg), FLAVA_OK);
        to_double(ref, want[t - 1], NP);
        ck_assert_close(p, ref, NP, 1e-6, 1e-6, "params");
        worst_p = fmax(worst_p, test_worst(p, ref, NP, 1e-6, 1e-6, &where));
    }
    ck_assert_int_eq(clipped, 3); /* and two steps left alone */
    to_double(ref, m_ref, NP);
    ck_assert_close(m, ref, NP, 1e-6, 1e-7, "exp_avg");
    to_double(ref, v_ref, NP);
    ck_assert_close(v, ref, NP, 1e-6, 1e-12, "exp_avg_sq");
    printf("AdamW vs torch: worst params error %.3g of (1e-6 + 1e-6|p|), worst norm rel. error %.3g\n",
           worst_p, worst_norm);
}
END_TEST

START_TEST(test_schedule_matches_lambdalr)
{
    flava_st *st = open_fixture();
    float want[31];
    ck_assert_int_eq(flava_st_load_f32(want, st, "schedule", 1, (const int64_t[]){31}), FLAVA_OK);
    flava_st_free(st);
    for (int s = 0; s <= 30; s++)
        ck_assert_msg(fabs(flava_lr_cosine(s, 7, 30, 3e-4, 0.0) - want[s]) <= 1e-6 * 3e-4,
                      "step %d: %.9g, LambdaLR %.9g", s, flava_lr_cosine(s, 7, 30, 3e-4, 0.0),
                      (double)want[s]);
}
END_TEST

START_TEST(test_schedule_with_minimum)
{
    const double hi = 1e-3, lo = 1e-5;
    ck_assert_double_eq(flava_lr_cosine(0, 10, 110, hi, lo), 0.0);
    ck_assert_double_eq_tol(flava_lr_cosine(5, 10, 110, hi, lo), hi / 2, 1e-18);
    ck_assert_double_eq_tol(flava_lr_cosine(10, 10, 110, hi, lo), hi, 1e-18);
    ck_assert_double_eq_tol(flava_lr_cosine(60, 10, 110, hi, lo), (hi + lo) / 2, 1e-18);
    ck_assert_double_eq_tol(flava_lr_cosine(35, 10, 110, hi, lo),
                            lo + (hi - lo) * (1 + cos(M_PI / 4)) / 2, 1e-18);
    ck_assert_double_eq_tol(flava_lr_cosine(110, 10, 110, hi, lo), lo, 1e-18);
    ck_assert_double_eq_tol(flava_lr_cosine(500, 10, 110, hi, lo), lo, 1e-18); /* stays */
    ck_assert_double_eq_tol(flava_lr_cosine(0, 0, 100, hi, lo), hi, 1e-18);     /* no warmup */
    for (int s = 11; s < 110; s++) /* decreasing */
        ck_assert(flava_lr_cosine(s, 10, 110, hi, lo) < flava_lr_cosine(s - 1, 10, 110, hi, lo));
}
END_TEST

START_TEST(test_clip_norm_in_double_and_deterministic)
{
    const int64_t n = 300001; /* several norm blocks, one partial */
    float *g = malloc(sizeof *g * (size_t)n), *g2 = malloc(sizeof *g2 * (size_t)n);
    test_fill(g, n, 7, -1e-3f, 1e-3f);
    g[12345] = 3e4f; /* a large value next to many small ones: float sums lose these */
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (double)g[i] * g[i];
    double want = sqrt(s);

    memcpy(g2, g, sizeof *g * (size_t)n);
    double norm1, norm2;
    omp_set_num_threads(1);
    ck_assert_int_eq(flava_grad_clip_norm(&norm1, g2, n, 1e9), FLAVA_OK); /* no clipping */
    ck_assert(!memcmp(g, g2, sizeof *g * (size_t)n));
    omp_set_num_threads(2);
    ck_assert_int_eq(flava_grad_clip_norm(&norm2, g2, n, 1e9), FLAVA_OK);
    ck_assert_double_eq_tol(norm1, want, 1e-12 * want);
    ck_assert(memcmp(&norm1, &norm2, sizeof norm1) == 0); /* same bits, 1 or 2 threads */

    ck_assert_int_eq(flava_grad_clip_norm(&norm1, g2, n, 2.0), FLAVA_OK);
    double scale = 2.0 / (want + 1e-6);
    for (int64_t i = 0; i < n; i += 997)
        ck_assert_float_eq(g2[i], g[i] * (float)scale);
    ck_assert_int_eq(flava_grad_clip_norm(&norm2, g2, n, 2.0), FLAVA_OK);
    ck_assert_double_eq_tol(norm2, 2.0, 1e-5);

    g[77] = NAN;
    memcpy(g2, g, sizeof *g * (size_t)n);
    ck_assert_int_eq(flava_grad_clip_norm(&norm1, g2, n, 1.0), FLAVA_ERR_NUMERIC);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "gradient norm is nan"));
    ck_assert(!memcmp(g, g2, sizeof *g * (size_t)n)); /* left alone */
    ck_assert_int_eq(flava_grad_clip_norm(&norm1, g2, n, 0.0), FLAVA_ERR_ARG);
    free(g);
    free(g2);
}
END_TEST

/* With zero gradients and moments the Adam part is zero: what is left is
 * the decay, on the decayed elements only. */
START_TEST(test_adamw_decay_mask)
{
    float p[NP], p0[NP], m[NP] = {0}, v[NP] = {0}, g[NP] = {0};
    test_fill(p0, NP, 3, -2, 2);
    memcpy(p, p0, sizeof p);
    const flava_adamw_config cfg = FLAVA_ADAMW_DEFAULTS;
    ck_assert_int_eq(flava_adamw_step(p, m, v, g, no_decay, 2, NP, 0.5, 1, &cfg), FLAVA_OK);
    for (int i = 0; i < NP; i++) {
        int nd = (i >= 20 && i < 25) || i >= 37;
        ck_assert_float_eq(p[i], nd ? p0[i] : p0[i] * (float)(1 - 0.5 * 0.01));
    }
}
END_TEST

START_TEST(test_adamw_rejects_bad_arguments)
{
    float p[NP] = {0}, m[NP] = {0}, v[NP] = {0}, g[NP] = {0};
    const flava_adamw_config cfg = FLAVA_ADAMW_DEFAULTS;
    const flava_param_range overlap[] = {{10, 5}, {12, 2}}, outside[] = {{40, 5}},
                            unsorted[] = {{30, 1}, {10, 1}};
    ck_assert_int_eq(flava_adamw_step(p, m, v, g, overlap, 2, NP, 1e-3, 1, &cfg), FLAVA_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "no-decay range 1 [12, +2)"));
    ck_assert_int_eq(flava_adamw_step(p, m, v, g, outside, 1, NP, 1e-3, 1, &cfg), FLAVA_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "outside the 42 parameters"));
    ck_assert_int_eq(flava_adamw_step(p, m, v, g, unsorted, 2, NP, 1e-3, 1, &cfg), FLAVA_ERR_ARG);
    ck_assert_int_eq(flava_adamw_step(p, m, v, g, NULL, 0, NP, 1e-3, 0, &cfg), FLAVA_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "step 0"));
    ck_assert_int_eq(flava_adamw_step(p, m, v, g, NULL, 0, NP, NAN, 1, &cfg), FLAVA_ERR_ARG);
}
END_TEST

static Suite *make_optim_suite(void)
{
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("optim");
    tcase_add_test(tc, test_matches_torch_adamw);
    tcase_add_test(tc, test_schedule_matches_lambdalr);
    tcase_add_test(tc, test_schedule_with_minimum);
    tcase_add_test(tc, test_clip_norm_in_double_and_deterministic);
    tcase_add_test(tc, test_adamw_decay_mask);
    tcase_add_test(tc, test_adamw_rejects_bad_arguments);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return test_run(make_optim_suite()); }

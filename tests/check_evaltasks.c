/* check_evaltasks.c - the math of the eval tasks (tasks/evalmath.h) against
 * double-precision loops written here: prompt ensembling, feature
 * standardisation, top-k accuracy, the C grid and its choice. */
#include <math.h>

#include "testutil.h"

#include "checkpoint.h"
#include "evalmath.h"
#include "taskutil.h"

START_TEST(test_ensemble_matches_double)
{
    enum { K = 3, T = 4, D = 7 };
    float emb[K * T * D], out[K * D];
    test_fill(emb, K * T * D, 11, -2.0f, 2.0f);
    /* one template embedding zero: it contributes nothing, as F.normalize */
    for (int d = 0; d < D; d++)
        emb[(1 * T + 2) * D + d] = 0;
    ck_assert_int_eq(flava_ensemble_templates(out, emb, K, T, D), FLAVA_OK);
    double ref[K * D];
    for (int k = 0; k < K; k++) {
        double mean[D] = {0};
        for (int t = 0; t < T; t++) {
            const float *e = emb + (k * T + t) * D;
            double n = 0;
            for (int d = 0; d < D; d++)
                n += (double)e[d] * e[d];
            n = sqrt(n);
            for (int d = 0; d < D; d++)
                mean[d] += n > 0 ? e[d] / n / T : 0;
        }
        double n = 0;
        for (int d = 0; d < D; d++)
            n += mean[d] * mean[d];
        n = sqrt(n);
        for (int d = 0; d < D; d++)
            ref[k * D + d] = mean[d] / n;
    }
    ck_assert_close(out, ref, K * D, 1e-5, 1e-7, "class embeddings");
    /* unit norm, and not the plain mean: class 0 differs from its mean */
    for (int k = 0; k < K; k++) {
        double n = 0;
        for (int d = 0; d < D; d++)
            n += (double)out[k * D + d] * out[k * D + d];
        ck_assert_double_eq_tol(n, 1.0, 1e-5);
    }
    ck_assert_int_eq(flava_ensemble_templates(out, emb, 0, T, D), FLAVA_ERR_ARG);
}
END_TEST

START_TEST(test_ensemble_weights_templates_equally)
{
    /* a long and a short vector in orthogonal directions: the normalised
     * mean is at 45 degrees whatever their lengths */
    const float emb[2 * 2] = {100.0f, 0.0f, 0.0f, 0.01f};
    float out[2];
    ck_assert_int_eq(flava_ensemble_templates(out, emb, 1, 2, 2), FLAVA_OK);
    ck_assert_float_eq_tol(out[0], (float)(1 / sqrt(2.0)), 1e-6f);
    ck_assert_float_eq_tol(out[1], (float)(1 / sqrt(2.0)), 1e-6f);
}
END_TEST

START_TEST(test_standardize_matches_double)
{
    enum { N = 37, D = 5 };
    float X[N * D], mean[D], std[D];
    test_fill(X, N * D, 5, -3.0f, 7.0f);
    for (int i = 0; i < N; i++)
        X[i * D + 3] = 4.5f; /* constant feature */
    double rm[D], rs[D], ref[N * D];
    for (int d = 0; d < D; d++) {
        double s = 0, ss = 0;
        for (int i = 0; i < N; i++)
            s += X[i * D + d];
        rm[d] = s / N;
        for (int i = 0; i < N; i++)
            ss += (X[i * D + d] - rm[d]) * (X[i * D + d] - rm[d]);
        rs[d] = sqrt(ss / N);
        for (int i = 0; i < N; i++)
            ref[i * D + d] = rs[d] > 0 ? (X[i * D + d] - rm[d]) / rs[d] : 0;
    }
    ck_assert_int_eq(flava_standardize_fit(mean, std, X, N, D), FLAVA_OK);
    rs[3] = 1; /* the constant feature keeps std 1 */
    ck_assert_close(mean, rm, D, 1e-6, 1e-6, "means");
    ck_assert_close(std, rs, D, 1e-6, 1e-7, "stds");
    flava_standardize_apply(X, mean, std, N, D);
    ck_assert_close(X, ref, N * D, 1e-5, 1e-6, "standardised features");
    ck_assert_int_eq(flava_standardize_fit(mean, std, X, 0, D), FLAVA_ERR_ARG);
}
END_TEST

START_TEST(test_topk_hand_checked)
{
    /* 4 rows, 4 classes */
    const float s[4 * 4] = {
        0.9f, 0.1f, 0.2f, 0.3f, /* label 0: rank 0 */
        0.5f, 0.4f, 0.6f, 0.1f, /* label 1: 0.5, 0.6 above -> rank 2 */
        0.3f, 0.3f, 0.1f, 0.0f, /* label 1: tie with class 0 -> rank 1 */
        0.1f, 0.2f, 0.3f, 0.0f, /* label 3: rank 3 */
    };
    const int32_t y[4] = {0, 1, 1, 3};
    ck_assert_double_eq_tol(flava_topk_accuracy(s, y, 4, 4, 1), 0.25, 1e-12);
    ck_assert_double_eq_tol(flava_topk_accuracy(s, y, 4, 4, 2), 0.5, 1e-12);
    ck_assert_double_eq_tol(flava_topk_accuracy(s, y, 4, 4, 3), 0.75, 1e-12);
    ck_assert_double_eq_tol(flava_topk_accuracy(s, y, 4, 4, 4), 1.0, 1e-12);
}
END_TEST

START_TEST(test_grid_and_choice)
{
    double g[5];
    ck_assert_int_eq(flava_log_grid(g, 5, 1e-3, 10.0), FLAVA_OK);
    for (int i = 0; i < 5; i++)
        ck_assert_double_eq_tol(g[i], pow(10.0, -3.0 + i), 1e-12 * pow(10.0, -3.0 + i) + 1e-15);
    ck_assert_int_eq(flava_log_grid(g, 1, 1e-3, 10.0), FLAVA_ERR_ARG);
    ck_assert_int_eq(flava_log_grid(g, 3, 0.0, 10.0), FLAVA_ERR_ARG);
    ck_assert_int_eq(flava_log_grid(g, 3, 5.0, 1.0), FLAVA_ERR_ARG);
    /* held-out accuracies: the best is shared by C[1] and C[3]; the smaller
     * C (stronger penalty) wins; NaN (a failed fit) never does */
    const double acc[5] = {0.5, 0.8, NAN, 0.8, 0.7};
    ck_assert_int_eq(flava_argmax_first(acc, 5), 1);
    const double nan2[2] = {NAN, NAN};
    ck_assert_int_eq(flava_argmax_first(nan2, 2), -1);
    const float logits[4] = {-1.0f, 2.5f, 0.0f, 2.5f};
    ck_assert_int_eq(flava_argmax_f32(logits, 4), 1);
    ck_assert_int_eq(flava_argmax_f32(logits, 1), 0);
}
END_TEST

/* The embeddings zero-shot and retrieval rank by are the contrastive
 * head's: exp(logit_scale) * image_embed . text_embed must give PyTorch's
 * contrastive_logits_per_image of the tiny fixture (rows: the positive
 * pairs, columns: every text). */
START_TEST(test_embeddings_match_pytorch_contrastive_logits)
{
    char p[4096];
    flava_model *m;
    flava_status s = flava_checkpoint_load(
        &m, test_path(p, sizeof p, "tests/fixtures/flava_tiny_model.safetensors"), NULL, 0, 1);
    ck_assert_msg(s == FLAVA_OK, "%s", flava_error_message());
    flava_ctx *ctx;
    ck_assert_int_eq(flava_ctx_create(&ctx, FLAVA_PRECISION_F32), FLAVA_OK);
    flava_st *in, *ref;
    ck_assert_int_eq(flava_st_read(&in, test_path(p, sizeof p,
                     "tests/fixtures/flava_tiny_image_text_inputs.safetensors")), FLAVA_OK);
    ck_assert_int_eq(flava_st_read(&ref, test_path(p, sizeof p,
                     "tests/fixtures/flava_tiny_image_text_outputs.safetensors")), FLAVA_OK);
    flava_batch b;
    ck_assert_int_eq(flava_batch_read(&b, in, &m->cfg), FLAVA_OK);
    enum { B = 3, D = 24, POS = 2 };
    ck_assert_int_eq(b.B, B);
    ck_assert_int_eq(m->cfg.projection_dim, D);
    float img[B * D], txt[B * D], scratch[B * (32 + D + 1)], want[POS * B];
    ck_assert_int_eq(flava_task_batch_features(img, scratch, ctx, m, &b, FLAVA_FEATURE_IMAGE_EMBED),
                     FLAVA_OK);
    ck_assert_int_eq(flava_task_batch_features(txt, scratch, ctx, m, &b, FLAVA_FEATURE_TEXT_EMBED),
                     FLAVA_OK);
    ck_assert_int_eq(flava_st_load_f32(want, ref, "contrastive_logits_per_image", 2,
                                       (const int64_t[]){POS, B}), FLAVA_OK);
    const double scale = exp(*flava_model_param(m, "flava.logit_scale", NULL));
    double got[POS * B];
    for (int i = 0, r = 0; i < B; i++) {
        if (!b.itm_labels[i])
            continue;
        ck_assert_int_lt(r, POS);
        for (int j = 0; j < B; j++) {
            double dot = 0;
            for (int d = 0; d < D; d++)
                dot += (double)img[i * D + d] * txt[j * D + d];
            got[r * B + j] = scale * dot;
        }
        r++;
    }
    float gotf[POS * B];
    double wantd[POS * B];
    for (int k = 0; k < POS * B; k++)
        gotf[k] = (float)got[k], wantd[k] = want[k];
    ck_assert_close(gotf, wantd, POS * B, 1e-4, 1e-5, "contrastive logits per image");
    flava_batch_free(&b);
    flava_st_free(in);
    flava_st_free(ref);
    flava_model_destroy(m);
    flava_ctx_destroy(ctx);
}
END_TEST

static Suite *make_evaltasks_suite(void)
{
    Suite *s = suite_create("evaltasks");
    TCase *tc = tcase_create("math");
    tcase_add_test(tc, test_ensemble_matches_double);
    tcase_add_test(tc, test_ensemble_weights_templates_equally);
    tcase_add_test(tc, test_standardize_matches_double);
    tcase_add_test(tc, test_topk_hand_checked);
    tcase_add_test(tc, test_grid_and_choice);
    suite_add_tcase(s, tc);
    TCase *emb = tcase_create("embeddings");
    tcase_add_test(emb, test_embeddings_match_pytorch_contrastive_logits);
    suite_add_tcase(s, emb);
    return s;
}

int main(void) { return test_run(make_evaltasks_suite()); }

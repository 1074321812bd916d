/* check_tasks.c - the numerical pieces of the evaluation tasks. */
#include "testutil.h"

#include "logreg.h"
#include "recall.h"
#include "safetensors.h"

/* 3 images, 5 texts (image 0 has two captions). Ranks worked out by hand. */
START_TEST(test_recall_hand_checked)
{
    const float sim[3 * 5] = {
        /*        t0    t1    t2    t3    t4 */
        /* i0 */ 0.9f, 0.1f, 0.8f, 0.95f, 0.0f, /* best correct t0 (0.9): t3 above -> rank 1 */
        /* i1 */ 0.2f, 0.7f, 0.1f, 0.3f, 0.6f,  /* t1 correct, top -> rank 0 */
        /* i2 */ 0.5f, 0.3f, 0.4f, 0.2f, 0.1f,  /* t3,t4 correct, best 0.2: t0,t1,t2 above -> 3 */
    };
    const int32_t txt_image[5] = {0, 1, 0, 2, 2};
    const int ks[3] = {1, 2, 5};
    double i2t[3], t2i[3];
    ck_assert_int_eq(flava_recall_at_k(i2t, t2i, sim, txt_image, 3, 5, ks, 3), FLAVA_OK);
    /* image ranks 1, 0, 3 */
    ck_assert_double_eq_tol(i2t[0], 1.0 / 3, 1e-12);
    ck_assert_double_eq_tol(i2t[1], 2.0 / 3, 1e-12);
    ck_assert_double_eq_tol(i2t[2], 1.0, 1e-12);
    /* text ranks: t0 own 0.9 -> 0; t1 own 0.7 -> 0; t2 own 0.8 -> 0;
     * t3 own 0.2 (i2): i0 0.95, i1 0.3 above -> 2; t4 own 0.1: i1 0.6 above, i0 0.0 not -> 1 */
    ck_assert_double_eq_tol(t2i[0], 3.0 / 5, 1e-12);
    ck_assert_double_eq_tol(t2i[1], 4.0 / 5, 1e-12);
    ck_assert_double_eq_tol(t2i[2], 1.0, 1e-12);
}
END_TEST

START_TEST(test_recall_ties_count_against_query)
{
    const float sim[2 * 2] = {1.0f, 1.0f, 1.0f, 1.0f};
    const int32_t txt_image[2] = {0, 1};
    const int ks[1] = {1};
    double i2t, t2i;
    ck_assert_int_eq(flava_recall_at_k(&i2t, &t2i, sim, txt_image, 2, 2, ks, 1), FLAVA_OK);
    ck_assert_double_eq(i2t, 0.0);
    ck_assert_double_eq(t2i, 0.0);
}
END_TEST

START_TEST(test_recall_rejects_bad_image_index)
{
    const float sim[2] = {0, 0};
    const int32_t txt_image[2] = {0, 3};
    const int ks[1] = {1};
    double i2t, t2i;
    ck_assert_int_eq(flava_recall_at_k(&i2t, &t2i, sim, txt_image, 1, 2, ks, 1), FLAVA_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "text 1 names image 3"));
}
END_TEST

/* The solver against scikit-learn's LogisticRegression (lbfgs, tol 1e-12)
 * on the same data: coefficients, intercepts and probabilities. */
START_TEST(test_logreg_matches_sklearn)
{
    enum { N = 300, D = 6, K = 4 };
    char path[512];
    flava_st *st;
    ck_assert_int_eq(flava_st_read(&st, test_path(path, sizeof path, "tests/fixtures/logreg.safetensors")),
                     FLAVA_OK);
    static float X[N * D], coef[K * D], intercept[K], probs_ref[N * K], C;
    static int32_t y[N];
    const int64_t sx[2] = {N, D}, sy[1] = {N}, sc[2] = {K, D}, si[1] = {K}, sp[2] = {N, K}, s1[1] = {1};
    ck_assert_int_eq(flava_st_load_f32(X, st, "X", 2, sx), FLAVA_OK);
    ck_assert_int_eq(flava_st_load_i32(y, st, "y", 1, sy), FLAVA_OK);
    ck_assert_int_eq(flava_st_load_f32(coef, st, "coef", 2, sc), FLAVA_OK);
    ck_assert_int_eq(flava_st_load_f32(intercept, st, "intercept", 1, si), FLAVA_OK);
    ck_assert_int_eq(flava_st_load_f32(probs_ref, st, "probs", 2, sp), FLAVA_OK);
    ck_assert_int_eq(flava_st_load_f32(&C, st, "C", 1, s1), FLAVA_OK);
    flava_st_free(st);

    flava_ctx *ctx;
    ck_assert_int_eq(flava_ctx_create(&ctx, FLAVA_PRECISION_F32), FLAVA_OK);
    flava_logreg m;
    ck_assert_int_eq(flava_logreg_fit(ctx, &m, X, y, N, D, K, C, 1000, 1e-5), FLAVA_OK);
    /* sklearn's multinomial coefficients are defined up to a common shift
     * per feature only without a penalty; with L2 they are unique. */
    double ref[K * D], refb[K], refp[N * K];
    for (int i = 0; i < K * D; i++)
        ref[i] = coef[i];
    for (int k = 0; k < K; k++)
        refb[k] = intercept[k];
    for (int i = 0; i < N * K; i++)
        refp[i] = probs_ref[i];
    ck_assert_close(m.W, ref, K * D, 1e-3, 1e-4, "logreg coef");
    ck_assert_close(m.b, refb, K, 1e-3, 1e-4, "logreg intercept");
    static float probs[N * K];
    static int32_t pred[N];
    ck_assert_int_eq(flava_logreg_predict(ctx, pred, probs, &m, X, N), FLAVA_OK);
    ck_assert_close(probs, refp, N * K, 1e-3, 1e-5, "logreg probabilities");
    for (int n = 0; n < N; n++) { /* argmax agrees with the probabilities */
        int best = 0;
        for (int k = 1; k < K; k++)
            best = probs[n * K + k] > probs[n * K + best] ? k : best;
        ck_assert_int_eq(pred[n], best);
    }
    flava_logreg_free(&m);

    /* bad labels are refused, naming the sample */
    y[5] = K;
    ck_assert_int_eq(flava_logreg_fit(ctx, &m, X, y, N, D, K, C, 10, 1e-5), FLAVA_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "label 4 of sample 5"));
    flava_ctx_destroy(ctx);
}
END_TEST

static Suite *make_tasks_suite(void)
{
    Suite *s = suite_create("tasks");
    TCase *tc = tcase_create("recall");
    tcase_add_test(tc, test_recall_hand_checked);
    tcase_add_test(tc, test_recall_ties_count_against_query);
    tcase_add_test(tc, test_recall_rejects_bad_image_index);
    suite_add_tcase(s, tc);
    TCase *lr = tcase_create("logreg");
    tcase_add_test(lr, test_logreg_matches_sklearn);
    suite_add_tcase(s, lr);
    return s;
}

int main(void) { return test_run(make_tasks_suite()); }

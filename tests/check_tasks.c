/* check_tasks.c - the numerical pieces of the evaluation tasks. */
#include "testutil.h"

#include "recall.h"

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

static Suite *make_tasks_suite(void)
{
    Suite *s = suite_create("tasks");
    TCase *tc = tcase_create("recall");
    tcase_add_test(tc, test_recall_hand_checked);
    tcase_add_test(tc, test_recall_ties_count_against_query);
    tcase_add_test(tc, test_recall_rejects_bad_image_index);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return test_run(make_tasks_suite()); }

/* check_core.c - status messages, the RNG and the primitive cache. */
#include "testutil.h"

#include <string.h>
#include <unistd.h>

#include "runlog.h"

START_TEST(test_error_message_names_place)
{
    flava_error_clear();
    flava_status s = FLAVA_ERROR(FLAVA_ERR_CONFIG, "run.cfg:%d: unknown key '%s'", 7, "lr");
    ck_assert_int_eq(s, FLAVA_ERR_CONFIG);
    ck_assert_str_eq(flava_error_message(), "run.cfg:7: unknown key 'lr'");
    ck_assert_ptr_nonnull(strstr(flava_error_where(), "check_core.c:"));
    flava_error_context("loading %s", "x.cfg");
    ck_assert_str_eq(flava_error_message(), "loading x.cfg: run.cfg:7: unknown key 'lr'");
}
END_TEST

START_TEST(test_rng_streams_repeat_and_differ)
{
    flava_rng a, b, c;
    flava_rng_init(&a, 42, 0);
    flava_rng_init(&b, 42, 0);
    flava_rng_init(&c, 42, 1);
    int same_c = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = flava_rng_u64(&a);
        ck_assert_uint_eq(x, flava_rng_u64(&b));
        same_c += x == flava_rng_u64(&c);
    }
    ck_assert_int_eq(same_c, 0);
}
END_TEST

START_TEST(test_rng_moments)
{
    flava_rng r;
    flava_rng_init(&r, 1, 2);
    double s = 0, s2 = 0, u = 0;
    int counts[10] = {0};
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        double z = flava_rng_normal(&r);
        s += z;
        s2 += z * z;
        u += flava_rng_uniform(&r);
        counts[flava_rng_below(&r, 10)]++;
    }
    ck_assert_double_eq_tol(s / n, 0.0, 0.01);
    ck_assert_double_eq_tol(s2 / n, 1.0, 0.02);
    ck_assert_double_eq_tol(u / n, 0.5, 0.005);
    for (int k = 0; k < 10; k++)
        ck_assert_int_gt(counts[k], n / 10 - 1000);
}
END_TEST

static int destroyed;
static void count_destroy(void *e)
{
    destroyed++;
    free(e);
}

START_TEST(test_cache_lookup_insert_grow)
{
    flava_ctx *ctx;
    ck_assert_int_eq(flava_ctx_create(&ctx, FLAVA_PRECISION_F32), FLAVA_OK);
    destroyed = 0;
    const int n = 1000; /* forces several rehashes */
    for (int i = 0; i < n; i++) {
        flava_op_key k = {.op = (i % 2) ? "odd" : "even", .dims = {i, 3 * i}};
        ck_assert_ptr_null(flava_ctx_lookup(ctx, &k));
        int *e = malloc(sizeof *e);
        *e = i;
        ck_assert_int_eq(flava_ctx_insert(ctx, &k, e, count_destroy), FLAVA_OK);
    }
    for (int i = 0; i < n; i++) {
        flava_op_key k = {.op = (i % 2) ? "odd" : "even", .dims = {i, 3 * i}};
        int *e = flava_ctx_lookup(ctx, &k);
        ck_assert_ptr_nonnull(e);
        ck_assert_int_eq(*e, i);
        flava_op_key other = {.op = (i % 2) ? "even" : "odd", .dims = {i, 3 * i}};
        ck_assert_ptr_null(flava_ctx_lookup(ctx, &other));
    }
    flava_ctx_destroy(ctx);
    ck_assert_int_eq(destroyed, n);
}
END_TEST

START_TEST(test_runlog_writes_metrics_and_log)
{
    char dir[] = "/tmp/flava-runlog-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char run[256], path[300];
    snprintf(run, sizeof run, "%s/a/b/run", dir);
    flava_runlog rl;
    ck_assert_int_eq(flava_runlog_open(&rl, run, 0, 10), FLAVA_OK);
    const char *names[2] = {"loss", "loss_info.mlm"};
    const double values[2] = {2.5, 0.125};
    ck_assert_int_eq(flava_runlog_metrics(&rl, 3, names, values, 2), FLAVA_OK);
    flava_runlog_printf(&rl, "hello %d", 42);
    flava_runlog_close(&rl);

    char line[256];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    fclose(f);
    ck_assert_str_eq(line, "{\"step\": 3, \"loss\": 2.5, \"loss_info.mlm\": 0.125}\n");
    snprintf(path, sizeof path, "%s/log.txt", run);
    f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    fclose(f);
    ck_assert_ptr_nonnull(strstr(line, "hello 42"));

    /* a file where a directory should be */
    snprintf(path, sizeof path, "%s/metrics.jsonl/x", run);
    ck_assert_int_eq(flava_mkdirs(path), FLAVA_ERR_IO);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

static Suite *make_core_suite(void)
{
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_error_message_names_place);
    tcase_add_test(tc, test_rng_streams_repeat_and_differ);
    tcase_add_test(tc, test_rng_moments);
    tcase_add_test(tc, test_cache_lookup_insert_grow);
    tcase_add_test(tc, test_runlog_writes_metrics_and_log);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return test_run(make_core_suite()); }

/* testutil.h - shared helpers for the Check suites: fixture paths, seeded
 * fills, and comparisons that report the worst element. */
#ifndef FLAVA_TESTUTIL_H
#define FLAVA_TESTUTIL_H

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flava.h"

/* Path of a file under the source tree (FLAVA_SRCDIR, set by make check). */
static inline const char *test_path(char *buf, size_t n, const char *rel)
{
    const char *root = getenv("FLAVA_SRCDIR");
    snprintf(buf, n, "%s/%s", root ? root : FLAVA_SRCDIR, rel);
    return buf;
}

static inline void test_fill(float *x, int64_t n, uint64_t seed, float lo, float hi)
{
    flava_rng r;
    flava_rng_init(&r, seed, 0);
    for (int64_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * (float)flava_rng_uniform(&r);
}

/* Largest |a-b| / (atol + rtol*|b|) over n elements: <= 1 means close. */
static inline double test_worst(const float *a, const double *b, int64_t n, double rtol,
                                double atol, int64_t *where)
{
    double worst = 0;
    *where = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]) / (atol + rtol * fabs(b[i]));
        if (!(e <= worst)) { /* also catches NaN */
            worst = isnan(e) ? INFINITY : e;
            *where = i;
        }
    }
    return worst;
}

/* Asserts a[i] ≈ ref[i] for all i, naming the tensor and the worst element. */
#define ck_assert_close(a, ref, n, rtol, atol, name)                                   \
    do {                                                                               \
        int64_t w_;                                                                    \
        double e_ = test_worst((a), (ref), (n), (rtol), (atol), &w_);                  \
        ck_assert_msg(e_ <= 1.0, "%s: element %lld is %.9g, expected %.9g (rtol %g atol %g)", \
                      (name), (long long)w_, (double)(a)[w_], (double)(ref)[w_],       \
                      (double)(rtol), (double)(atol));                                 \
    } while (0)

/* Runs a suite, returns the process exit status. */
static inline int test_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif

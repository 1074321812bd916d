/* kmeans.c - the k-means patch codebook (see kmeans.h). */
#include "kmeans.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "rng.h"
#include "safetensors.h"

/* Rows per GEMM of the assignment: bounds the score buffer to CHUNK x K. */
enum { CHUNK = 1024 };
static const double PATCH_EPS = 1e-6;

struct flava_kmeans {
    int K, C, patch, D;
    float *centroids; /* [K, D] */
    double *cc;       /* ||c_k||^2 */
    double cmax;      /* max_k ||c_k|| */
    float *scores;    /* [CHUNK, K] */
    /* patches of the last batch shape given to flava_kmeans_assign */
    float *rows;
    int64_t rows_cap;
};

static int64_t grid_patches(int H, int W, int p) { return (int64_t)(H / p) * (W / p); }

flava_status flava_kmeans_patches(float *out, const float *images, int N, int C, int H, int W,
                                  int patch)
{
    if (N < 1 || C < 1 || patch < 1 || H < patch || W < patch || H % patch || W % patch)
        return FLAVA_ERROR(FLAVA_ERR_SHAPE,
                           "k-means patches: images [%d,%d,%d,%d] with patch %d: expected H and "
                           "W positive multiples of the patch size",
                           N, C, H, W, patch);
    int gw = W / patch;
    int64_t per = grid_patches(H, W, patch), D = (int64_t)C * patch * patch;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < N * per; r++) {
        int64_t n = r / per, q = r % per;
        int py = (int)(q / gw) * patch, px = (int)(q % gw) * patch;
        float *o = out + r * D;
        double s = 0, s2 = 0;
        for (int c = 0; c < C; c++)
            for (int y = 0; y < patch; y++) {
                const float *src = images + (((n * C + c) * H) + py + y) * (int64_t)W + px;
                float *dst = o + ((int64_t)c * patch + y) * patch;
                for (int x = 0; x < patch; x++) {
                    dst[x] = src[x];
                    s += src[x];
                    s2 += (double)src[x] * src[x];
                }
            }
        double mean = s / (double)D, var = s2 / (double)D - mean * mean;
        double rstd = 1.0 / sqrt((var > 0 ? var : 0) + PATCH_EPS);
        for (int64_t i = 0; i < D; i++)
            o[i] = (float)((o[i] - mean) * rstd);
    }
    return FLAVA_OK;
}

static flava_status kmeans_new(flava_kmeans **out, int K, int C, int patch)
{
    *out = NULL;
    if (K < 1 || C < 1 || patch < 1 || (int64_t)C * patch * patch > (1 << 24))
        return FLAVA_ERROR(FLAVA_ERR_ARG,
                           "k-means codebook: K %d, %d channels, patch %d: expected all positive",
                           K, C, patch);
    flava_kmeans *km = calloc(1, sizeof *km);
    if (!km)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot allocate the k-means codebook");
    km->K = K;
    km->C = C;
    km->patch = patch;
    km->D = C * patch * patch;
    flava_status s = flava_alloc((void **)&km->centroids,
                                 (size_t)K * km->D * sizeof(float), "k-means centroids");
    if (s == FLAVA_OK)
        s = flava_alloc((void **)&km->cc, (size_t)K * sizeof(double), "k-means centroid norms");
    if (s == FLAVA_OK)
        s = flava_alloc((void **)&km->scores, (size_t)CHUNK * K * sizeof(float),
                        "k-means scores");
    if (s != FLAVA_OK) {
        flava_kmeans_destroy(km);
        return s;
    }
    *out = km;
    return FLAVA_OK;
}

void flava_kmeans_destroy(flava_kmeans *km)
{
    if (!km)
        return;
    flava_free(km->centroids);
    flava_free(km->cc);
    flava_free(km->scores);
    flava_free(km->rows);
    free(km);
}

const float *flava_kmeans_centroids(const flava_kmeans *km, int *K, int *C, int *patch)
{
    *K = km->K;
    *C = km->C;
    *patch = km->patch;
    return km->centroids;
}

/* Double-precision sums in LANES interleaved partial sums: a fixed order
 * (so the same result on any thread count) that still vectorises. */
enum { LANES = 8 };

static double sqdist(const float *a, const float *b, int D)
{
    double acc[LANES] = {0};
    int i = 0;
    for (; i + LANES <= D; i += LANES)
        for (int l = 0; l < LANES; l++) {
            double d = (double)a[i + l] - b[i + l];
            acc[l] += d * d;
        }
    for (; i < D; i++) {
        double d = (double)a[i] - b[i];
        acc[0] += d * d;
    }
    double s = 0;
    for (int l = 0; l < LANES; l++)
        s += acc[l];
    return s;
}

static double sqnorm(const float *a, int D)
{
    double acc[LANES] = {0};
    int i = 0;
    for (; i + LANES <= D; i += LANES)
        for (int l = 0; l < LANES; l++)
            acc[l] += (double)a[i + l] * a[i + l];
    for (; i < D; i++)
        acc[0] += (double)a[i] * a[i];
    double s = 0;
    for (int l = 0; l < LANES; l++)
        s += acc[l];
    return s;
}

/* Refreshes ||c_k||^2 and max ||c_k|| after the centroids change. */
static void centroid_norms(flava_kmeans *km)
{
    double m = 0;
    for (int k = 0; k < km->K; k++) {
        km->cc[k] = sqnorm(km->centroids + (int64_t)k * km->D, km->D);
        m = km->cc[k] > m ? km->cc[k] : m;
    }
    km->cmax = sqrt(m);
}

/* Bound on |x.c computed - x.c| / (||x|| ||c||) for the GEMM: f32
 * accumulation over D terms, plus the bf16 rounding of both inputs when
 * the context runs matmuls in bf16. */
static double gemm_rel_error(flava_ctx *ctx, int D)
{
    double acc = 1.01 * D * ldexp(1.0, -24);
    if (flava_ctx_precision(ctx) == FLAVA_PRECISION_BF16)
        acc += ldexp(1.0, -7) + ldexp(1.0, -14);
    return acc;
}

flava_status flava_kmeans_nearest(flava_ctx *ctx, flava_kmeans *km, int32_t *ids,
                                  const float *patches, int64_t M)
{
    const int K = km->K, D = km->D;
    const double gamma = gemm_rel_error(ctx, D);
    for (int64_t r0 = 0; r0 < M; r0 += CHUNK) {
        int n = (int)(M - r0 < CHUNK ? M - r0 : CHUNK);
        const float *X = patches + r0 * D;
        FLAVA_TRY(linear_forward(ctx, km->scores, X, km->centroids, NULL, n, D, K));
#pragma omp parallel for schedule(static)
        for (int i = 0; i < n; i++) {
            const float *x = X + (int64_t)i * D, *s = km->scores + (int64_t)i * K;
            double xx = sqnorm(x, D), best = INFINITY;
            for (int k = 0; k < K; k++) {
                double d = xx - 2.0 * s[k] + km->cc[k];
                best = d < best ? d : best;
            }
            /* Every centroid whose true distance could be the smallest lies
             * within twice the GEMM's error of the approximate best. */
            double thr = best + 4.0 * gamma * sqrt(xx) * km->cmax +
                         1e-12 * (xx + km->cmax * km->cmax);
            int arg = 0;
            double exact = INFINITY;
            for (int k = 0; k < K; k++) {
                if (!(xx - 2.0 * s[k] + km->cc[k] <= thr))
                    continue;
                double d = sqdist(x, km->centroids + (int64_t)k * D, D);
                if (d < exact) {
                    exact = d;
                    arg = k;
                }
            }
            ids[r0 + i] = arg;
        }
    }
    return FLAVA_OK;
}

/* k-means++: each next centroid is a point drawn with probability
 * proportional to its squared distance to the nearest centroid so far. */
static void seed_plus_plus(flava_kmeans *km, double *mind, const float *X, int64_t M,
                           flava_rng *rng)
{
    const int D = km->D;
    for (int k = 0; k < km->K; k++) {
        int64_t pick;
        double total = 0;
        for (int64_t i = 0; k > 0 && i < M; i++)
            total += mind[i];
        double u = flava_rng_uniform(rng);
        if (total > 0) { /* the first index whose running sum passes u * total */
            double target = u * total, run = 0;
            pick = -1;
            for (int64_t i = 0; i < M; i++) {
                if (mind[i] <= 0)
                    continue; /* never a point that is already a centroid */
                pick = i; /* the last candidate, should rounding leave run <= target */
                run += mind[i];
                if (run > target)
                    break;
            }
        } else { /* first draw, or fewer distinct points than K */
            pick = (int64_t)(u * (double)M);
            pick = pick < M ? pick : M - 1;
        }
        float *c = km->centroids + (int64_t)k * D;
        memcpy(c, X + pick * D, (size_t)D * sizeof(float));
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < M; i++) {
            double d = sqdist(X + i * D, c, D);
            mind[i] = (k == 0 || d < mind[i]) ? d : mind[i];
        }
    }
}

/* Centroid = mean of its points, summed in index order (counting sort by
 * label first) so that the result does not depend on the thread count.
 * sums holds D doubles per thread. */
static void update_centroids(flava_kmeans *km, const float *X, const int32_t *label,
                             int64_t M, int64_t *start, int64_t *order, double *sums)
{
    const int K = km->K, D = km->D;
    memset(start, 0, (size_t)(K + 1) * sizeof *start);
    for (int64_t i = 0; i < M; i++)
        start[label[i] + 1]++;
    for (int k = 0; k < K; k++)
        start[k + 1] += start[k];
    for (int64_t i = 0; i < M; i++)
        order[start[label[i]]++] = i;
    for (int k = K; k > 0; k--) /* the fill advanced each start to the next */
        start[k] = start[k - 1];
    start[0] = 0;
#pragma omp parallel
    {
        double *sum = sums + (int64_t)omp_get_thread_num() * D;
#pragma omp for schedule(dynamic, 16)
        for (int k = 0; k < K; k++) {
            int64_t a = start[k], b = start[k + 1];
            if (a == b)
                continue; /* an empty cluster keeps its centroid */
            memset(sum, 0, (size_t)D * sizeof *sum);
            for (int64_t j = a; j < b; j++) {
                const float *x = X + order[j] * D;
                for (int d = 0; d < D; d++)
                    sum[d] += x[d];
            }
            float *c = km->centroids + (int64_t)k * D;
            for (int d = 0; d < D; d++)
                c[d] = (float)(sum[d] / (double)(b - a));
        }
    }
}

flava_status flava_kmeans_fit(flava_ctx *ctx, flava_kmeans **out, const float *patches,
                              int64_t M, int C, int patch, int K, int iters, uint64_t seed)
{
    *out = NULL;
    if (M < K || iters < 0)
        return FLAVA_ERROR(FLAVA_ERR_ARG,
                           "k-means fit: %lld patches for %d centroids and %d iterations: "
                           "expected at least one patch per centroid",
                           (long long)M, K, iters);
    flava_kmeans *km;
    FLAVA_TRY(kmeans_new(&km, K, C, patch));
    const int D = km->D, threads = omp_get_max_threads();
    double *mind = NULL, *sums = NULL;
    int32_t *label = NULL, *prev = NULL;
    int64_t *start = NULL, *order = NULL;
    flava_status s = flava_alloc((void **)&mind, (size_t)M * sizeof *mind, "k-means distances");
    if (s == FLAVA_OK)
        s = flava_alloc((void **)&label, (size_t)M * sizeof *label, "k-means labels");
    if (s == FLAVA_OK)
        s = flava_alloc((void **)&prev, (size_t)M * sizeof *prev, "k-means labels");
    if (s == FLAVA_OK)
        s = flava_alloc((void **)&order, (size_t)M * sizeof *order, "k-means order");
    if (s == FLAVA_OK)
        s = flava_alloc((void **)&start, (size_t)(K + 1) * sizeof *start, "k-means offsets");
    if (s == FLAVA_OK)
        s = flava_alloc((void **)&sums, (size_t)threads * D * sizeof *sums, "k-means sums");
    if (s == FLAVA_OK) {
        flava_rng rng;
        flava_rng_init(&rng, seed, 0);
        seed_plus_plus(km, mind, patches, M, &rng);
        centroid_norms(km);
    }
    for (int it = 0; s == FLAVA_OK && it < iters; it++) {
        s = flava_kmeans_nearest(ctx, km, label, patches, M);
        if (s != FLAVA_OK || (it > 0 && memcmp(label, prev, (size_t)M * sizeof *label) == 0))
            break; /* converged: the centroids are already these labels' means */
        update_centroids(km, patches, label, M, start, order, sums);
        centroid_norms(km);
        int32_t *t = label;
        label = prev;
        prev = t;
    }
    flava_free(mind);
    flava_free(label);
    flava_free(prev);
    flava_free(order);
    flava_free(start);
    flava_free(sums);
    if (s != FLAVA_OK) {
        flava_kmeans_destroy(km);
        return s;
    }
    *out = km;
    return FLAVA_OK;
}

flava_status flava_kmeans_assign(flava_ctx *ctx, flava_kmeans *km, int32_t *ids,
                                 const float *images, int B, int H, int W)
{
    int64_t rows = B * grid_patches(H, W, km->patch);
    if (rows > km->rows_cap) {
        flava_free(km->rows);
        km->rows = NULL;
        km->rows_cap = 0;
        FLAVA_TRY(flava_alloc((void **)&km->rows, (size_t)rows * km->D * sizeof(float),
                              "k-means patches"));
        km->rows_cap = rows;
    }
    FLAVA_TRY(flava_kmeans_patches(km->rows, images, B, km->C, H, W, km->patch));
    return flava_kmeans_nearest(ctx, km, ids, km->rows, rows);
}

flava_status flava_kmeans_save(const flava_kmeans *km, const char *path)
{
    flava_st_tensor t = {.name = FLAVA_KMEANS_TENSOR, .dtype = FLAVA_F32, .ndim = 4,
                         .shape = {km->K, km->C, km->patch, km->patch},
                         .data = km->centroids,
                         .nbytes = (size_t)km->K * km->D * sizeof(float)};
    return flava_st_write(path, &t, 1, NULL, 0);
}

flava_status flava_kmeans_load(flava_kmeans **out, const char *path)
{
    *out = NULL;
    flava_st *st;
    FLAVA_TRY(flava_st_read(&st, path));
    const flava_st_tensor *t;
    const int64_t any[4] = {-1, -1, -1, -1};
    flava_status s = flava_st_expect(&t, st, FLAVA_KMEANS_TENSOR, 4, any);
    flava_kmeans *km = NULL;
    if (s == FLAVA_OK && (t->shape[2] != t->shape[3] || t->shape[0] > INT32_MAX ||
                          t->shape[1] > INT32_MAX || t->shape[2] > INT32_MAX))
        s = FLAVA_ERROR(FLAVA_ERR_SHAPE, "%s: tensor %s has shape [%lld, %lld, %lld, %lld], "
                        "expected [K, C, p, p]", path, FLAVA_KMEANS_TENSOR,
                        (long long)t->shape[0], (long long)t->shape[1], (long long)t->shape[2],
                        (long long)t->shape[3]);
    if (s == FLAVA_OK)
        s = kmeans_new(&km, (int)t->shape[0], (int)t->shape[1], (int)t->shape[2]);
    if (s == FLAVA_OK)
        s = flava_st_to_f32(km->centroids, t);
    flava_st_free(st);
    if (s != FLAVA_OK) {
        flava_kmeans_destroy(km);
        flava_error_context("loading the k-means codebook from %s", path);
        return s;
    }
    centroid_norms(km);
    *out = km;
    return FLAVA_OK;
}

/* check_codebook.c - MIM targets: the dVAE image codebook against the torch
 * reference (tests/reference/codebook_fixtures.py), and the k-means patch
 * codebook against double-precision brute force. */
#include "testutil.h"

#include <omp.h>
#include <string.h>
#include <unistd.h>

#include "codebook.h"
#include "kmeans.h"
#include "safetensors.h"

static flava_ctx *ctx;

static void setup(void) { ck_assert_int_eq(flava_ctx_create(&ctx, FLAVA_PRECISION_F32), FLAVA_OK); }
static void teardown(void) { flava_ctx_destroy(ctx); }

#define OK(call) ck_assert_msg((call) == FLAVA_OK, "%s: %s", #call, flava_error_message())

/* ---------------------------------------------------------------- dVAE */

START_TEST(test_codebook_param_table_is_hf)
{
    flava_codebook_config cfg;
    flava_codebook_config_default(&cfg);
    flava_codebook *cb;
    OK(flava_codebook_create(&cb, &cfg));
    int n;
    const flava_codebook_param *p = flava_codebook_params(cb, &n);
    int64_t numel;
    flava_codebook_weights(cb, &numel);
    /* 3 groups gain an id_path conv, 32 more convs in the blocks, input and
     * output: 37 convs of 2 tensors. 53,786,240 floats as counted from HF's
     * module definitions. */
    ck_assert_int_eq(n, 74);
    ck_assert_int_eq(numel, 53786240);
    ck_assert_str_eq(p[0].name, "image_codebook.blocks.input.weight");
    ck_assert_int_eq(p[0].shape[0], 256);
    ck_assert_int_eq(p[0].shape[1], 3);
    ck_assert_int_eq(p[0].shape[2], 7);
    ck_assert_str_eq(p[2].name, "image_codebook.blocks.group_1.group.block_1.res_path.path.conv_1.weight");
    ck_assert_int_eq(p[2].shape[0], 64);
    int64_t off = 0;
    int found_id = 0;
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(p[i].offset, off); /* packed in table order */
        off += p[i].numel;
        if (!strcmp(p[i].name, "image_codebook.blocks.group_2.group.block_1.id_path.weight")) {
            found_id = 1;
            ck_assert_int_eq(p[i].ndim, 4);
            ck_assert_int_eq(p[i].shape[0], 512);
            ck_assert_int_eq(p[i].shape[1], 256);
            ck_assert_int_eq(p[i].shape[2], 1);
        }
        ck_assert_ptr_null(strstr(p[i].name, "group_1.group.block_1.id_path"));
        ck_assert_ptr_null(strstr(p[i].name, "block_2.id_path"));
    }
    ck_assert(found_id);
    ck_assert_str_eq(p[n - 1].name, "image_codebook.blocks.output.conv.bias");
    ck_assert_int_eq(p[n - 1].ndim, 1);
    ck_assert_int_eq(p[n - 1].shape[0], 8192);
    ck_assert_int_eq(p[n - 2].shape[1], 2048);
    ck_assert_int_eq(flava_codebook_grid(112), 14);
    flava_codebook_destroy(cb);
}
END_TEST

/* Loads the tiny fixture's weights through the parameter table. */
static flava_codebook *load_tiny(flava_st **st)
{
    char path[4096];
    OK(flava_st_read(st, test_path(path, sizeof path, "tests/fixtures/codebook_tiny.safetensors")));
    flava_codebook_config cfg = {.num_groups = 4, .input_channels = 3, .num_blocks_per_group = 2,
                                 .hidden_size = 8, .vocab_size = 32};
    flava_codebook *cb;
    OK(flava_codebook_create(&cb, &cfg));
    int n;
    const flava_codebook_param *p = flava_codebook_params(cb, &n);
    int64_t numel;
    float *w = flava_codebook_weights(cb, &numel);
    for (int i = 0; i < n; i++)
        OK(flava_st_load_f32(w + p[i].offset, *st, p[i].name, p[i].ndim, p[i].shape));
    return cb;
}

START_TEST(test_codebook_matches_torch)
{
    enum { B = 2, C = 3, S = 32, V = 32, G = 4 };
    flava_st *st;
    flava_codebook *cb = load_tiny(&st);
    static float pixels[B * C * S * S], logits[B * V * G * G], ref[B * V * G * G];
    static int32_t ref_ids[B * G * G], ids[B * G * G], ids2[B * G * G];
    OK(flava_st_load_f32(pixels, st, "codebook_pixel_values", 4, (int64_t[]){B, C, S, S}));
    OK(flava_st_load_f32(ref, st, "logits", 4, (int64_t[]){B, V, G, G}));
    OK(flava_st_load_i32(ref_ids, st, "ids", 2, (int64_t[]){B, G * G}));

    OK(flava_codebook_forward(ctx, cb, ids, logits, pixels, B, S, S));
    double refd[B * V * G * G], scale = 0;
    for (int i = 0; i < B * V * G * G; i++) {
        refd[i] = ref[i];
        scale = fabs(ref[i]) > scale ? fabs(ref[i]) : scale;
    }
    double worst = 0;
    for (int i = 0; i < B * V * G * G; i++) {
        double e = fabs(logits[i] - refd[i]) / (fabs(refd[i]) + 1e-3 * scale);
        worst = e > worst ? e : worst;
    }
    printf("codebook tiny: worst logit |err| / (|ref| + 1e-3 max|ref|) = %.3g, max|ref| %.3g\n",
           worst, scale);
    ck_assert_close(logits, refd, B * V * G * G, 1e-4, 1e-4 * scale, "logits");
    int compared = 0;
    for (int b = 0; b < B; b++)
        for (int q = 0; q < G * G; q++) {
            double top = -INFINITY, second = -INFINITY;
            for (int v = 0; v < V; v++) {
                double l = refd[(b * V + v) * G * G + q];
                if (l > top) {
                    second = top;
                    top = l;
                } else if (l > second) {
                    second = l;
                }
            }
            if (top - second <= 1e-5)
                continue;
            compared++;
            ck_assert_int_eq(ids[b * G * G + q], ref_ids[b * G * G + q]);
        }
    ck_assert_int_ge(compared, B * G * G - 2);

    /* again without logits, then a batch of one: same codes */
    OK(flava_codebook_forward(ctx, cb, ids2, NULL, pixels, B, S, S));
    ck_assert_mem_eq(ids2, ids, sizeof ids);
    OK(flava_codebook_forward(ctx, cb, ids2, NULL, pixels + C * S * S, 1, S, S));
    ck_assert_mem_eq(ids2, ids + G * G, G * G * sizeof(int32_t));

    /* all-zero weights: every logit ties at 0 and, as torch.argmax, the
     * first code wins */
    int64_t numel;
    float *w = flava_codebook_weights(cb, &numel);
    memset(w, 0, sizeof(float) * numel);
    OK(flava_codebook_forward(ctx, cb, ids2, NULL, pixels, B, S, S));
    for (int i = 0; i < B * G * G; i++)
        ck_assert_int_eq(ids2[i], 0);
    flava_codebook_destroy(cb);
    flava_st_free(st);
}
END_TEST

START_TEST(test_codebook_errors)
{
    flava_codebook_config cfg;
    flava_codebook_config_default(&cfg);
    cfg.hidden_size = 2;
    flava_codebook *cb;
    ck_assert_int_eq(flava_codebook_create(&cb, &cfg), FLAVA_ERR_CONFIG);
    ck_assert_ptr_null(cb);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "hidden_size 2"));

    flava_st *st;
    cb = load_tiny(&st);
    float pixels[3 * 4 * 4] = {0};
    int32_t ids[1];
    ck_assert_int_eq(flava_codebook_forward(ctx, cb, ids, NULL, pixels, 1, 4, 4), FLAVA_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "codebook_pixel_values"));
    flava_codebook_destroy(cb);
    flava_st_free(st);

    /* a checkpoint whose tensor has the wrong shape is refused by name */
    char path[4096];
    OK(flava_st_read(&st, test_path(path, sizeof path, "tests/fixtures/codebook_tiny.safetensors")));
    float w[16 * 3 * 7 * 7];
    ck_assert_int_eq(flava_st_load_f32(w, st, "image_codebook.blocks.input.weight", 4,
                                       (int64_t[]){16, 3, 7, 7}),
                     FLAVA_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "image_codebook.blocks.input.weight"));
    flava_st_free(st);
}
END_TEST

/* ---------------------------------------------------------------- k-means */

enum { KC = 3, KP = 4, KD = KC * KP * KP };

/* n points around each of k random centres, cluster-major; centres ~N(0,1),
 * noise uniform in +-spread. */
static float *make_clusters(int k, int n, float spread, uint64_t seed)
{
    float *x = malloc(sizeof(float) * k * n * KD);
    flava_rng r;
    flava_rng_init(&r, seed, 0);
    float centre[KD];
    for (int c = 0; c < k; c++) {
        for (int d = 0; d < KD; d++)
            centre[d] = (float)flava_rng_normal(&r);
        for (int i = 0; i < n; i++)
            for (int d = 0; d < KD; d++)
                x[((int64_t)c * n + i) * KD + d] =
                    centre[d] + spread * (float)(2 * flava_rng_uniform(&r) - 1);
    }
    return x;
}

static int brute_nearest(const float *x, const float *cent, int K)
{
    int best = 0;
    double bd = INFINITY;
    for (int k = 0; k < K; k++) {
        double s = 0;
        for (int d = 0; d < KD; d++) {
            double t = (double)x[d] - cent[k * KD + d];
            s += t * t;
        }
        if (s < bd) {
            bd = s;
            best = k;
        }
    }
    return best;
}

START_TEST(test_kmeans_recovers_clusters)
{
    enum { K = 6, N = 60 };
    float *x = make_clusters(K, N, 0.05f, 11);
    flava_kmeans *km;
    OK(flava_kmeans_fit(ctx, &km, x, K * N, KC, KP, K, 20, 5));
    static int32_t ids[K * N];
    OK(flava_kmeans_nearest(ctx, km, ids, x, K * N));
    int used[K] = {0};
    int k_, c_, p_;
    const float *cent = flava_kmeans_centroids(km, &k_, &c_, &p_);
    ck_assert_int_eq(k_, K);
    ck_assert_int_eq(c_, KC);
    ck_assert_int_eq(p_, KP);
    for (int c = 0; c < K; c++) {
        int label = ids[c * N];
        ck_assert(!used[label]); /* one centroid per true cluster */
        used[label] = 1;
        double mean[KD] = {0};
        for (int i = 0; i < N; i++) {
            ck_assert_int_eq(ids[c * N + i], label);
            for (int d = 0; d < KD; d++)
                mean[d] += x[(c * N + i) * KD + d] / (double)N;
        }
        ck_assert_close(cent + label * KD, mean, KD, 1e-5, 1e-6, "centroid");
    }
    flava_kmeans_destroy(km);
    free(x);
}
END_TEST

START_TEST(test_kmeans_deterministic_across_threads)
{
    enum { K = 16, N = 40 };
    float *x = make_clusters(K / 2, N * 2, 0.8f, 3); /* overlapping: K > clusters */
    flava_kmeans *a, *b, *c;
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    OK(flava_kmeans_fit(ctx, &a, x, K * N, KC, KP, K, 10, 99));
    omp_set_num_threads(2);
    OK(flava_kmeans_fit(ctx, &b, x, K * N, KC, KP, K, 10, 99));
    OK(flava_kmeans_fit(ctx, &c, x, K * N, KC, KP, K, 10, 100));
    omp_set_num_threads(nt);
    int k_, c_, p_;
    const float *ca = flava_kmeans_centroids(a, &k_, &c_, &p_);
    const float *cb = flava_kmeans_centroids(b, &k_, &c_, &p_);
    const float *cc = flava_kmeans_centroids(c, &k_, &c_, &p_);
    ck_assert_mem_eq(ca, cb, sizeof(float) * K * KD);
    ck_assert(memcmp(ca, cc, sizeof(float) * K * KD) != 0); /* the seed matters */
    flava_kmeans_destroy(a);
    flava_kmeans_destroy(b);
    flava_kmeans_destroy(c);
    free(x);
}
END_TEST

/* Assignment equals the double brute force everywhere, in f32 and in bf16
 * (the GEMM only shortlists; the shortlist is re-scored exactly). More
 * rows than one GEMM chunk, so the partial last chunk is covered. */
START_TEST(test_kmeans_nearest_matches_brute_force)
{
    enum { K = 37, M = 2500 };
    float *train = make_clusters(K, 8, 1.0f, 21);
    float *q = make_clusters(50, M / 50, 1.5f, 22);
    flava_kmeans *km;
    OK(flava_kmeans_fit(ctx, &km, train, K * 8, KC, KP, K, 3, 1));
    int k_, c_, p_;
    const float *cent = flava_kmeans_centroids(km, &k_, &c_, &p_);
    static int32_t ids[M];
    for (int prec = 0; prec < 2; prec++) {
        if (prec == 1 && !flava_ctx_has_bf16(ctx))
            break;
        flava_ctx_set_precision(ctx, prec ? FLAVA_PRECISION_BF16 : FLAVA_PRECISION_F32);
        OK(flava_kmeans_nearest(ctx, km, ids, q, M));
        for (int i = 0; i < M; i++)
            ck_assert_msg(ids[i] == brute_nearest(q + (int64_t)i * KD, cent, K),
                          "row %d (precision %d): %d, brute force %d", i, prec, ids[i],
                          brute_nearest(q + (int64_t)i * KD, cent, K));
    }
    flava_ctx_set_precision(ctx, FLAVA_PRECISION_F32);
    flava_kmeans_destroy(km);
    free(train);
    free(q);
}
END_TEST

START_TEST(test_kmeans_patches_and_assign)
{
    enum { B = 2, H = 8, W = 12, G = (H / KP) * (W / KP) };
    static float img[B * KC * H * W], rows[B * G * KD];
    test_fill(img, B * KC * H * W, 5, -2.f, 2.f);
    OK(flava_kmeans_patches(rows, img, B, KC, H, W, KP));
    for (int b = 0; b < B; b++)
        for (int g = 0; g < G; g++) {
            int py = g / (W / KP) * KP, px = g % (W / KP) * KP;
            double v[KD], m = 0, s2 = 0;
            for (int c = 0; c < KC; c++)
                for (int y = 0; y < KP; y++)
                    for (int x = 0; x < KP; x++) {
                        v[(c * KP + y) * KP + x] = img[((b * KC + c) * H + py + y) * W + px + x];
                        m += v[(c * KP + y) * KP + x] / KD;
                    }
            for (int d = 0; d < KD; d++)
                s2 += (v[d] - m) * (v[d] - m) / KD;
            for (int d = 0; d < KD; d++)
                v[d] = (v[d] - m) / sqrt(s2 + 1e-6);
            ck_assert_close(rows + (b * G + g) * KD, v, KD, 1e-5, 1e-6, "patch");
        }
    ck_assert_int_eq(flava_kmeans_patches(rows, img, B, KC, 10, W, KP), FLAVA_ERR_SHAPE);

    flava_kmeans *km;
    OK(flava_kmeans_fit(ctx, &km, rows, B * G, KC, KP, 5, 5, 2));
    int k_, c_, p_;
    const float *cent = flava_kmeans_centroids(km, &k_, &c_, &p_);
    int32_t ids[B * G];
    for (int rep = 0; rep < 2; rep++) { /* second call reuses the patch buffer */
        OK(flava_kmeans_assign(ctx, km, ids, img, B, H, W));
        for (int i = 0; i < B * G; i++)
            ck_assert_int_eq(ids[i], brute_nearest(rows + i * KD, cent, 5));
    }
    flava_kmeans_destroy(km);
}
END_TEST

static const char *tmp_path(char *buf, size_t n, const char *name)
{
    const char *dir = getenv("FLAVA_BUILDDIR");
    snprintf(buf, n, "%s/%s.%d.safetensors", dir ? dir : ".", name, (int)getpid());
    return buf;
}

START_TEST(test_kmeans_save_load)
{
    enum { K = 7, N = 20 };
    float *x = make_clusters(K, N, 0.3f, 8);
    flava_kmeans *km, *back;
    OK(flava_kmeans_fit(ctx, &km, x, K * N, KC, KP, K, 5, 4));
    char path[4096];
    tmp_path(path, sizeof path, "check_codebook_kmeans");
    OK(flava_kmeans_save(km, path));
    OK(flava_kmeans_load(&back, path));
    int k1, c1, p1, k2, c2, p2;
    const float *a = flava_kmeans_centroids(km, &k1, &c1, &p1);
    const float *b = flava_kmeans_centroids(back, &k2, &c2, &p2);
    ck_assert_int_eq(k1, k2);
    ck_assert_int_eq(c1, c2);
    ck_assert_int_eq(p1, p2);
    ck_assert_mem_eq(a, b, sizeof(float) * K * KD);
    static int32_t i1[K * N], i2[K * N];
    OK(flava_kmeans_nearest(ctx, km, i1, x, K * N));
    OK(flava_kmeans_nearest(ctx, back, i2, x, K * N));
    ck_assert_mem_eq(i1, i2, sizeof i1);
    flava_kmeans_destroy(back);

    /* centroids 2 and 5 identical: their points go to the lower index */
    static float dup[K * KD];
    memcpy(dup, a, sizeof dup);
    memcpy(dup + 5 * KD, dup + 2 * KD, sizeof(float) * KD);
    flava_st_tensor d = {.name = FLAVA_KMEANS_TENSOR, .dtype = FLAVA_F32, .ndim = 4,
                         .shape = {K, KC, KP, KP}, .data = dup, .nbytes = sizeof dup};
    OK(flava_st_write(path, &d, 1, NULL, 0));
    OK(flava_kmeans_load(&back, path));
    OK(flava_kmeans_nearest(ctx, back, i2, dup + 2 * KD, 1));
    ck_assert_int_eq(i2[0], 2);
    flava_kmeans_destroy(back);

    /* the wrong tensor name, a wrong rank, a missing file */
    flava_st_tensor t = {.name = "centroids", .dtype = FLAVA_F32, .ndim = 4,
                         .shape = {K, KC, KP, KP}, .data = a, .nbytes = sizeof(float) * K * KD};
    OK(flava_st_write(path, &t, 1, NULL, 0));
    ck_assert_int_eq(flava_kmeans_load(&back, path), FLAVA_ERR_FORMAT);
    ck_assert_ptr_null(back);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), FLAVA_KMEANS_TENSOR));
    t.name = FLAVA_KMEANS_TENSOR;
    t.ndim = 2;
    t.shape[1] = KD;
    OK(flava_st_write(path, &t, 1, NULL, 0));
    ck_assert_int_eq(flava_kmeans_load(&back, path), FLAVA_ERR_SHAPE);
    t.ndim = 4;
    t.shape[1] = KC;
    t.shape[3] = 2 * KP;
    t.shape[2] = KP / 2; /* same element count, not square */
    OK(flava_st_write(path, &t, 1, NULL, 0));
    ck_assert_int_eq(flava_kmeans_load(&back, path), FLAVA_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "expected [K, C, p, p]"));
    unlink(path);
    ck_assert_int_ne(flava_kmeans_load(&back, path), FLAVA_OK);

    ck_assert_int_eq(flava_kmeans_fit(ctx, &back, x, 3, KC, KP, 4, 5, 1), FLAVA_ERR_ARG);
    flava_kmeans_destroy(km);
    free(x);
}
END_TEST

static Suite *make_codebook_suite(void)
{
    Suite *s = suite_create("codebook");
    TCase *dvae = tcase_create("dvae");
    tcase_add_checked_fixture(dvae, setup, teardown);
    tcase_add_test(dvae, test_codebook_param_table_is_hf);
    tcase_add_test(dvae, test_codebook_matches_torch);
    tcase_add_test(dvae, test_codebook_errors);
    suite_add_tcase(s, dvae);
    TCase *km = tcase_create("kmeans");
    tcase_add_checked_fixture(km, setup, teardown);
    tcase_add_test(km, test_kmeans_recovers_clusters);
    tcase_add_test(km, test_kmeans_deterministic_across_threads);
    tcase_add_test(km, test_kmeans_nearest_matches_brute_force);
    tcase_add_test(km, test_kmeans_patches_and_assign);
    tcase_add_test(km, test_kmeans_save_load);
    suite_add_tcase(s, km);
    return s;
}

int main(void) { return test_run(make_codebook_suite()); }

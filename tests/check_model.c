/* check_model.c - the FLAVA model against the PyTorch reference fixtures
 * (tests/reference/make_flava_fixtures.py): every output, loss and
 * parameter gradient of the image-text, image-only and text-only batches,
 * 3 AdamW steps, checkpoint round trips and their error paths, and a
 * FLAVA-full forward pass. */
#include "testutil.h"

#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "model.h"
#include "optim.h"
#include "safetensors.h"

static const char *fixture(char *buf, size_t n, const char *name)
{
    char rel[256];
    snprintf(rel, sizeof rel, "tests/fixtures/%s", name);
    return test_path(buf, n, rel);
}

/* Worst |a - ref| / (|ref| + 1e-2 max|ref| + floor) over the tensor:
 * relative, with near-zero entries judged against the tensor's magnitude
 * and `floor` (gradients that are zero in exact arithmetic, e.g. of key
 * biases, come out as float rounding noise). */
static double worst_rel(const float *a, const float *ref, int64_t n, double floor,
                        double *scale_out, int64_t *at)
{
    double scale = 0, worst = 0;
    for (int64_t i = 0; i < n; i++)
        scale = fabs(ref[i]) > scale ? fabs(ref[i]) : scale;
    *at = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - ref[i]) / (fabs(ref[i]) + 1e-2 * scale + floor + 1e-30);
        if (!(e <= worst)) {
            worst = isnan(e) ? INFINITY : e;
            *at = i;
        }
    }
    *scale_out = scale;
    return worst;
}

static char worst_name[256]; /* the tensor of the worst error so far */

static void expect_close(const char *what, const float *a, const flava_st_tensor *t, double rtol,
                         double floor, double *worst_seen)
{
    int64_t n = flava_st_numel(t);
    float *ref = malloc((size_t)(n ? n : 1) * sizeof *ref);
    ck_assert_ptr_nonnull(ref);
    ck_assert_int_eq(flava_st_to_f32(ref, t), FLAVA_OK);
    double scale;
    int64_t at;
    double w = worst_rel(a, ref, n, floor, &scale, &at);
    if (w > *worst_seen) {
        *worst_seen = w;
        snprintf(worst_name, sizeof worst_name, "%s", t->name);
    }
    ck_assert_msg(w <= rtol, "%s %s: element %lld is %.9g, expected %.9g (rel err %.3g > %.1g)",
                  what, t->name, (long long)at, (double)a[at], (double)ref[at], w, rtol);
    free(ref);
}

static flava_model *load_tiny(flava_ctx **ctx)
{
    char p[4096];
    flava_model *m;
    flava_status s = flava_checkpoint_load(&m, fixture(p, sizeof p, "flava_tiny_model.safetensors"),
                                           NULL, 0, 1);
    ck_assert_msg(s == FLAVA_OK, "%s (%s)", flava_error_message(), flava_error_where());
    /* the fixtures also carry the unmasked multimodal pass */
    m->cfg.skip_unmasked_multimodal_encoder = 0;
    ck_assert_int_eq(flava_ctx_create(ctx, FLAVA_PRECISION_F32), FLAVA_OK);
    return m;
}

static void read_batch(flava_batch *b, flava_st **in, const flava_model *m, const char *name)
{
    char p[4096], f[128];
    snprintf(f, sizeof f, "flava_tiny_%s_inputs.safetensors", name);
    ck_assert_int_eq(flava_st_read(in, fixture(p, sizeof p, f)), FLAVA_OK);
    flava_status s = flava_batch_read(b, *in, &m->cfg);
    ck_assert_msg(s == FLAVA_OK, "%s (%s)", flava_error_message(), flava_error_where());
}

/* Forward (all HF outputs), then a training forward + backward; every
 * tensor of the outputs fixture is compared. */
static void check_batch(const char *name)
{
    flava_ctx *ctx;
    flava_model *m = load_tiny(&ctx);
    flava_batch b;
    flava_st *in, *ref;
    read_batch(&b, &in, m, name);
    char p[4096], f[128];
    snprintf(f, sizeof f, "flava_tiny_%s_outputs.safetensors", name);
    ck_assert_int_eq(flava_st_read(&ref, fixture(p, sizeof p, f)), FLAVA_OK);

    flava_status s = flava_model_forward(ctx, m, &b, 0);
    ck_assert_msg(s == FLAVA_OK, "%s (%s)", flava_error_message(), flava_error_where());
    flava_output out[FLAVA_MAX_OUTPUTS];
    int n = flava_model_outputs(m, out);
    double worst_out = 0, worst_grad = 0;
    int compared = 0;
    for (int i = 0; i < n; i++) {
        const flava_st_tensor *t = flava_st_find(ref, out[i].name);
        ck_assert_msg(t != NULL, "%s: output %s is not in the fixture", name, out[i].name);
        int64_t numel = 1;
        for (int d = 0; d < out[i].ndim; d++) {
            ck_assert_msg(t->shape[d] == out[i].shape[d], "%s: %s dim %d is %lld, expected %lld",
                          name, out[i].name, d, (long long)out[i].shape[d],
                          (long long)t->shape[d]);
            numel *= out[i].shape[d];
        }
        ck_assert_int_eq(numel, flava_st_numel(t));
        expect_close(name, out[i].data, t, 1e-4, 0, &worst_out);
        compared++;
    }
    /* every output of the fixture has a counterpart */
    for (int i = 0; i < flava_st_count(ref); i++) {
        const char *rn = flava_st_get(ref, i)->name;
        if (!strncmp(rn, "grad.", 5) || !strncmp(rn, "codebook_", 9))
            continue;
        int found = 0;
        for (int k = 0; k < n; k++)
            found |= !strcmp(out[k].name, rn);
        ck_assert_msg(found, "%s: fixture output %s not produced", name, rn);
    }
    const flava_st_tensor *cl = flava_st_find(ref, "codebook_labels");
    if (cl) {
        int32_t *want = malloc((size_t)flava_st_numel(cl) * sizeof *want);
        ck_assert_int_eq(flava_st_to_i32(want, cl), FLAVA_OK);
        for (int64_t i = 0; i < flava_st_numel(cl); i++)
            ck_assert_msg(m->codebook_labels[i] == want[i], "codebook label %lld: %d, expected %d",
                          (long long)i, m->codebook_labels[i], want[i]);
        free(want);
    }

    ck_assert_int_eq(flava_model_alloc_grads(m), FLAVA_OK);
    flava_model_zero_grads(m);
    s = flava_model_forward(ctx, m, &b, 1);
    ck_assert_msg(s == FLAVA_OK, "%s (%s)", flava_error_message(), flava_error_where());
    const flava_st_tensor *loss = flava_st_find(ref, "loss");
    expect_close(name, &m->loss, loss, 1e-4, 0, &worst_out);
    s = flava_model_backward(ctx, m, &b);
    ck_assert_msg(s == FLAVA_OK, "%s (%s)", flava_error_message(), flava_error_where());
    int grads = 0;
    worst_name[0] = 0;
    for (int i = 0; i < m->table.n; i++) {
        const flava_param *pp = &m->table.p[i];
        char gname[256];
        snprintf(gname, sizeof gname, "grad.%s", pp->name);
        const flava_st_tensor *t = flava_st_find(ref, gname);
        ck_assert_msg(t != NULL, "%s: no %s in the fixture", name, gname);
        ck_assert_int_eq(flava_st_numel(t), (int64_t)pp->numel);
        expect_close(name, m->grads + pp->offset, t, 1e-3, 1e-4, &worst_grad);
        grads++;
    }
    printf("%s: %d outputs worst rel err %.3g; %d gradients worst rel err %.3g (%s)\n", name,
           compared, worst_out, grads, worst_grad, worst_name);
    flava_st_free(ref);
    flava_st_free(in);
    flava_batch_free(&b);
    flava_model_destroy(m);
    flava_ctx_destroy(ctx);
}

START_TEST(test_image_text_batch) { check_batch("image_text"); }
END_TEST

START_TEST(test_image_batch) { check_batch("image"); }
END_TEST

START_TEST(test_text_batch) { check_batch("text"); }
END_TEST

Suite *make_model_suite(void);
Suite *make_model_suite(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("parity");
    tcase_add_test(tc, test_image_text_batch);
    tcase_add_test(tc, test_image_batch);
    tcase_add_test(tc, test_text_batch);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return test_run(make_model_suite()); }

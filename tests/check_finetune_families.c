/* check_finetune_families.c - the CLIP and ALIGN classifiers (family.h):
 * classifier.* added to the family's table on a partial load of the
 * PyTorch fixture checkpoints, and the gradient of the classifier's loss
 * through the classifier MLP and the feature-gradient path of the tower it
 * reads (CLIP: post_layernorm CLS / EOS state; ALIGN: pooled image
 * features / text [CLS] state) against central finite differences of the
 * loss; the other tower and the contrastive parameters get no gradient;
 * the classifier's outputs, and a batch without the features it reads. */
#include "testutil.h"

#include <math.h>

#include "family.h"

#define OK(call)                                                                           \
    do {                                                                                   \
        flava_status s_ = (call);                                                          \
        ck_assert_msg(s_ == FLAVA_OK, "%s: %s (%s)", #call, flava_error_message(),         \
                      flava_error_where());                                                \
    } while (0)

enum { B = 3, T = 6, K = 3 };

typedef struct setup {
    flava_ctx *ctx;
    flava_family_model fm;
    flava_batch b;
    float *pixels, mask[B * T];
    int32_t ids[B * T], types[B * T], labels[B];
} setup;

static void open_model(setup *s, const char *family, const char *checkpoint, const char *input)
{
    char p[4096], rel[256];
    snprintf(rel, sizeof rel, "tests/fixtures/%s", checkpoint);
    const flava_family_ops *ops;
    OK(flava_family_find(&ops, family));
    const char *keys[] = {"num_labels", "classifier_input"};
    const char *values[] = {"3", input};
    const flava_family_overrides ov = {keys, values, NULL, 2};
    OK(flava_ctx_create(&s->ctx, FLAVA_PRECISION_F32));
    OK(flava_family_create(&s->fm, ops, test_path(p, sizeof p, rel), &ov, NULL, 1, 7));
    OK(s->fm.ops->alloc_grads(&s->fm));
    const int S = s->fm.image_size;
    s->pixels = malloc(sizeof(float) * B * 3 * S * S);
    ck_assert_ptr_nonnull(s->pixels);
    test_fill(s->pixels, (int64_t)B * 3 * S * S, 11, -1.5f, 1.5f);
    for (int i = 0; i < B * T; i++) {
        s->ids[i] = 3 + (i * 7 + i / T) % (s->fm.vocab_size - 4);
        s->types[i] = 0;
        s->mask[i] = i % T < T - (i / T) ? 1.0f : 0.0f; /* some padding */
    }
    for (int i = 0; i < B; i++)
        s->labels[i] = (i + 1) % K;
    s->b = (flava_batch){.B = B, .T = T, .image_size = S, .pixel_values = s->pixels,
                         .input_ids = s->ids, .attention_mask = s->mask,
                         .token_type_ids = s->types, .class_labels = s->labels};
}

static void close_model(setup *s)
{
    flava_family_destroy(&s->fm);
    flava_ctx_destroy(s->ctx);
    free(s->pixels);
}

static double loss_at(setup *s)
{
    OK(s->fm.ops->forward(s->ctx, &s->fm, &s->b, 0));
    return s->fm.loss;
}

/* The analytic gradient of a few entries of each tensor whose name starts
 * with one of `checked` (the largest and some spread ones) against central
 * differences; tensors starting with `zero` have no gradient. Returns the
 * worst relative error. */
static double check_grads(setup *s, const char *const *checked, int n_checked,
                          const char *zero)
{
    flava_family_model *fm = &s->fm;
    memset(fm->grads, 0, fm->table->total * sizeof(float));
    const double L = loss_at(s);
    ck_assert(isfinite(L) && L > 0);
    ck_assert(fm->head_ran[FLAVA_HEAD_CLASSIFY] && !fm->head_ran[FLAVA_HEAD_CONTRASTIVE]);
    OK(fm->ops->backward(s->ctx, fm, &s->b));
    double worst = 0;
    int tensors = 0, nonzero = 0;
    for (int t = 0; t < fm->table->n; t++) {
        const flava_param *p = &fm->table->p[t];
        const float *g = fm->grads + p->offset;
        if (zero && !strncmp(p->name, zero, strlen(zero)))
            for (size_t k = 0; k < p->numel; k++)
                ck_assert_msg(g[k] == 0.0f, "%s[%zu] has gradient %g", p->name, k, (double)g[k]);
        int want = 0;
        for (int c = 0; c < n_checked; c++)
            want |= !strncmp(p->name, checked[c], strlen(checked[c]));
        if (!want || tensors == 8) /* the first eight keep the test short */
            continue;
        tensors++;
        size_t best = 0;
        for (size_t k = 1; k < p->numel; k++)
            best = fabsf(g[k]) > fabsf(g[best]) ? k : best;
        const size_t idx[3] = {best, p->numel / 2, p->numel - 1};
        for (int j = 0; j < 3; j++) {
            float *x = fm->params + p->offset + idx[j];
            const float x0 = *x, h = 2e-3f * (fabsf(x0) > 1 ? fabsf(x0) : 1);
            *x = x0 + h;
            const double lp = loss_at(s);
            *x = x0 - h;
            const double lm = loss_at(s);
            *x = x0;
            const double fd = (lp - lm) / (2.0 * ((double)(x0 + h) - x0));
            const double an = g[idx[j]];
            const double err = fabs(an - fd) / (fabs(fd) + 2e-3);
            nonzero += fabs(an) > 1e-6;
            ck_assert_msg(err < 0.05, "%s[%zu]: analytic %g, finite differences %g", p->name,
                          idx[j], an, fd);
            worst = err > worst ? err : worst;
        }
    }
    ck_assert_int_gt(tensors, 2);
    ck_assert_int_gt(nonzero, tensors); /* the gradients checked are not all 0 */
    return worst;
}

static void run_check(const char *family, const char *checkpoint, const char *input,
                      const char *tower, const char *other)
{
    setup s;
    open_model(&s, family, checkpoint, input);
    ck_assert_int_eq(s.fm.num_labels, K);
    ck_assert_str_eq(s.fm.classifier_input, input);
    const char *checked[] = {"classifier.", tower};
    const double worst = check_grads(&s, checked, 2, other);
    printf("%s %s classifier: worst relative gradient error %.2e\n", family, input, worst);
    /* the classifier's outputs: logits [B, K] and the loss */
    flava_output o[FLAVA_MAX_OUTPUTS];
    ck_assert_int_eq(s.fm.ops->outputs(&s.fm, o), 2);
    ck_assert_str_eq(o[0].name, "logits");
    ck_assert_int_eq(o[0].shape[0], B);
    ck_assert_int_eq(o[0].shape[1], K);
    ck_assert_ptr_eq(o[0].data, s.fm.head_logits[FLAVA_HEAD_CLASSIFY]);
    /* a batch without the features the classifier reads */
    flava_batch none = s.b;
    if (!strcmp(input, "text"))
        none.input_ids = NULL;
    else
        none.pixel_values = NULL;
    ck_assert_int_eq(s.fm.ops->forward(s.ctx, &s.fm, &none, 0), FLAVA_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "the batch has none"));
    close_model(&s);
}

START_TEST(test_clip_image)
{
    run_check("clip", "clip_tiny_quick_gelu_model.safetensors", "image", "vision_model.",
              "text_model.");
}
END_TEST

START_TEST(test_clip_text)
{
    run_check("clip", "clip_tiny_quick_gelu_model.safetensors", "text", "text_model.",
              "vision_model.");
}
END_TEST

START_TEST(test_align_image)
{
    run_check("align", "align_tiny_model.safetensors", "image", "vision_model.", "text_model.");
}
END_TEST

START_TEST(test_align_text)
{
    run_check("align", "align_tiny_model.safetensors", "text", "text_model.", "vision_model.");
}
END_TEST

/* A config the classifier refuses. */
START_TEST(test_bad_input)
{
    char p[4096];
    const flava_family_ops *ops;
    OK(flava_family_find(&ops, "clip"));
    const char *keys[] = {"num_labels", "classifier_input"};
    const char *values[] = {"3", "audio"};
    const flava_family_overrides ov = {keys, values, NULL, 2};
    flava_family_model fm;
    ck_assert_int_eq(flava_family_create(&fm, ops,
                                         test_path(p, sizeof p,
                                                   "tests/fixtures/"
                                                   "clip_tiny_quick_gelu_model.safetensors"),
                                         &ov, NULL, 1, 7),
                     FLAVA_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "classifier_input 'audio'"));
}
END_TEST

static Suite *make_finetune_families_suite(void)
{
    Suite *s = suite_create("finetune_families");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_clip_image);
    tcase_add_test(tc, test_clip_text);
    tcase_add_test(tc, test_align_image);
    tcase_add_test(tc, test_align_text);
    tcase_add_test(tc, test_bad_input);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return test_run(make_finetune_families_suite()); }

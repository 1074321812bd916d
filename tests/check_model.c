/* check_model.c - the FLAVA model against the PyTorch reference fixtures
 * (tests/reference/make_flava_fixtures.py): every output, loss and
 * parameter gradient of the image-text, image-only and text-only batches,
 * 3 AdamW steps, checkpoint round trips and their error paths, and a
 * FLAVA-full forward pass. */
#include "testutil.h"

#include <math.h>
#include <string.h>
#include <sys/stat.h>
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

static char worst_name[256]; /* the tensor of the worst error so far */

static void expect_close(const char *what, const float *a, const flava_st_tensor *t, double rtol,
                         double floor, double *worst_seen)
{
    int64_t n = flava_st_numel(t);
    float *ref = malloc((size_t)(n ? n : 1) * sizeof *ref);
    ck_assert_ptr_nonnull(ref);
    ck_assert_int_eq(flava_st_to_f32(ref, t), FLAVA_OK);
    int64_t at;
    double w = flava_rel_error(a, ref, n, floor, &at);
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

/* 3 AdamW steps on the image-text batch: the losses before each step and
 * every parameter after the third. */
/* A batch that feeds the contrastive loss alone (b.heads) runs the two
 * unmasked unimodal passes only, and its contrastive loss and gradients are
 * those of the full step's contrastive term (no ITM labels: every pair
 * positive). */
START_TEST(test_batch_heads_narrow)
{
    flava_ctx *ctx;
    flava_model *m = load_tiny(&ctx);
    m->cfg.skip_unmasked_multimodal_encoder = 1; /* as in pretraining */
    flava_batch b;
    flava_st *in;
    read_batch(&b, &in, m, "image_text");
    flava_free(b.itm_labels);
    b.itm_labels = NULL;
    ck_assert_int_eq(flava_model_alloc_grads(m), FLAVA_OK);
    flava_status s = flava_model_forward(ctx, m, &b, 1);
    ck_assert_msg(s == FLAVA_OK, "%s (%s)", flava_error_message(), flava_error_where());
    ck_assert(m->img_m.ran && m->txt_m.ran && m->mm_m.ran);
    const double full = m->head[FLAVA_HEAD_CONTRASTIVE].loss;
    b.heads = 1u << FLAVA_HEAD_CONTRASTIVE;
    flava_model_zero_grads(m);
    s = flava_model_forward(ctx, m, &b, 1);
    ck_assert_msg(s == FLAVA_OK, "%s (%s)", flava_error_message(), flava_error_where());
    ck_assert(m->img.ran && m->txt.ran && !m->img_m.ran && !m->txt_m.ran && !m->mm_m.ran);
    for (int h = 0; h < FLAVA_NUM_HEADS; h++)
        ck_assert_int_eq(m->head_ran[h], h == FLAVA_HEAD_CONTRASTIVE);
    ck_assert_msg(fabs(m->loss - full) <= 1e-6 * fabs(full), "contrastive alone %.9g, in the "
                  "full step %.9g", (double)m->loss, full);
    ck_assert_int_eq(flava_model_backward(ctx, m, &b), FLAVA_OK);
    /* the multimodal encoder fed no head: no gradient reaches it */
    double mm = 0, proj = 0;
    for (int i = 0; i < m->table.n; i++) {
        const flava_param *pp = &m->table.p[i];
        for (size_t k = 0; k < pp->numel; k++) {
            const double g = fabs(m->grads[pp->offset + k]);
            if (strstr(pp->name, "multimodal_model."))
                mm += g;
            if (strstr(pp->name, "image_projection"))
                proj += g;
        }
    }
    ck_assert_msg(mm == 0 && proj > 0, "gradient mass: multimodal %g, image projection %g", mm,
                  proj);
    flava_st_free(in);
    flava_batch_free(&b);
    flava_model_destroy(m);
    flava_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_adamw_three_steps)
{
    flava_ctx *ctx;
    flava_model *m = load_tiny(&ctx);
    m->cfg.skip_unmasked_multimodal_encoder = 1;
    flava_batch b;
    flava_st *in, *ref;
    read_batch(&b, &in, m, "image_text");
    char p[4096];
    ck_assert_int_eq(flava_st_read(&ref, fixture(p, sizeof p, "flava_tiny_adamw.safetensors")),
                     FLAVA_OK);
    ck_assert_int_eq(flava_model_alloc_grads(m), FLAVA_OK);
    ck_assert_int_eq(flava_model_alloc_optim(m), FLAVA_OK);
    const flava_adamw_config cfg = FLAVA_ADAMW_DEFAULTS;
    float losses[3];
    for (int step = 1; step <= 3; step++) {
        flava_model_zero_grads(m);
        flava_status s = flava_model_forward(ctx, m, &b, 1);
        ck_assert_msg(s == FLAVA_OK, "%s", flava_error_message());
        losses[step - 1] = m->loss;
        ck_assert_int_eq(flava_model_backward(ctx, m, &b), FLAVA_OK);
        ck_assert_int_eq(flava_model_adamw_step(m, 1e-3, step, &cfg), FLAVA_OK);
    }
    double worst = 0;
    expect_close("adamw", losses, flava_st_find(ref, "loss"), 1e-4, 0, &worst);
    printf("adamw: losses %.6f %.6f %.6f, worst rel err %.3g\n", losses[0], losses[1],
           losses[2], worst);
    worst = 0;
    for (int i = 0; i < m->table.n; i++) {
        const flava_param *pp = &m->table.p[i];
        char name[256];
        snprintf(name, sizeof name, "param.%s", pp->name);
        const flava_st_tensor *t = flava_st_find(ref, name);
        ck_assert_msg(t != NULL, "no %s", name);
        /* A key bias shifts every score of a query row alike: its exact
         * gradient is 0 and both sides hold rounding noise, which Adam's
         * m/sqrt(v) turns into steps of +-lr with arbitrary signs. */
        if (strstr(pp->name, "attention.attention.key.bias"))
            continue;
        expect_close("adamw", m->params + pp->offset, t, 1e-4, 1e-2, &worst);
    }
    printf("adamw: parameters after 3 steps worst rel err %.3g (%s)\n", worst, worst_name);
    flava_st_free(ref);
    flava_st_free(in);
    flava_batch_free(&b);
    flava_model_destroy(m);
    flava_ctx_destroy(ctx);
}
END_TEST

/* bf16 matmuls: the image-text losses stay near the exact ones. The tiny
 * model's weights (std 0.2) make bf16 rounding grow through the layers:
 * the worst loss is off by ~3%, the total by ~1%. */
START_TEST(test_bf16_losses)
{
    flava_ctx *ctx;
    flava_model *m = load_tiny(&ctx);
    flava_ctx_set_precision(ctx, FLAVA_PRECISION_BF16);
    flava_batch b;
    flava_st *in, *ref;
    read_batch(&b, &in, m, "image_text");
    char p[4096];
    ck_assert_int_eq(
        flava_st_read(&ref, fixture(p, sizeof p, "flava_tiny_image_text_outputs.safetensors")),
        FLAVA_OK);
    ck_assert_int_eq(flava_model_forward(ctx, m, &b, 0), FLAVA_OK);
    flava_output out[FLAVA_MAX_OUTPUTS];
    int n = flava_model_outputs(m, out), losses = 0;
    for (int i = 0; i < n; i++) {
        if (strncmp(out[i].name, "loss", 4))
            continue;
        float want;
        ck_assert_int_eq(flava_st_to_f32(&want, flava_st_find(ref, out[i].name)), FLAVA_OK);
        ck_assert_msg(fabsf(out[i].value - want) <= 0.05f * fabsf(want), "bf16 %s: %g, expected %g",
                      out[i].name, out[i].value, want);
        losses++;
    }
    ck_assert_int_eq(losses, 5);
    flava_st_free(ref);
    flava_st_free(in);
    flava_batch_free(&b);
    flava_model_destroy(m);
    flava_ctx_destroy(ctx);
}
END_TEST

/* Fine-tuning heads (tests/reference/finetune_fixtures.py): VQA on the
 * multimodal pooled output, classification on the image CLS, regression on
 * the text CLS: logits, loss and the gradients the fixture holds. */
static void check_finetune(const char *name, flava_head_id id, const char *key,
                           const char *value, const char *input)
{
    char p[4096], f[128];
    flava_config c;
    ck_assert_int_eq(flava_checkpoint_read_config(
                         &c, fixture(p, sizeof p, "flava_tiny_model.safetensors")),
                     FLAVA_OK);
    ck_assert_int_eq(flava_config_set(&c, key, value), FLAVA_OK);
    ck_assert_int_eq(flava_config_set(&c, "classifier_input", input), FLAVA_OK);
    flava_head_set heads = {{0}, {0}};
    heads.enabled[id] = 1;
    heads.weight[id] = 1;
    flava_model *m;
    ck_assert_int_eq(flava_model_create(&m, &c, &heads), FLAVA_OK);
    flava_model_init_weights(m, 3);
    /* the pretraining checkpoint has no such head: a partial load */
    flava_status s = flava_checkpoint_load_weights(m, p, 0);
    ck_assert_int_eq(s, FLAVA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "missing"));
    ck_assert_int_eq(flava_checkpoint_load_weights(m, p, 1), FLAVA_OK);
    snprintf(f, sizeof f, "finetune_tiny_%s.safetensors", name);
    flava_st *ref;
    ck_assert_int_eq(flava_st_read(&ref, fixture(p, sizeof p, f)), FLAVA_OK);
    int nhead = 0;
    for (int i = 0; i < flava_st_count(ref); i++) {
        const flava_st_tensor *t = flava_st_get(ref, i);
        if (strncmp(t->name, "param.", 6))
            continue;
        const flava_param *pp = flava_params_find(&m->table, t->name + 6);
        ck_assert_msg(pp != NULL, "%s: no parameter %s", name, t->name + 6);
        ck_assert_int_eq(flava_st_numel(t), (int64_t)pp->numel);
        ck_assert_int_eq(flava_st_to_f32(m->params + pp->offset, t), FLAVA_OK);
        nhead++;
    }
    ck_assert_int_eq(nhead, 6);
    flava_batch b;
    s = flava_batch_read(&b, ref, &m->cfg);
    ck_assert_msg(s == FLAVA_OK, "%s", flava_error_message());
    flava_ctx *ctx;
    ck_assert_int_eq(flava_ctx_create(&ctx, FLAVA_PRECISION_F32), FLAVA_OK);
    ck_assert_int_eq(flava_model_alloc_grads(m), FLAVA_OK);
    s = flava_model_forward(ctx, m, &b, 1);
    ck_assert_msg(s == FLAVA_OK, "%s", flava_error_message());
    ck_assert(m->head_ran[id] && m->has_loss);
    double worst = 0, worst_grad = 0;
    expect_close(name, m->head[id].logits, flava_st_find(ref, "logits"), 1e-4, 0, &worst);
    expect_close(name, &m->loss, flava_st_find(ref, "loss"), 1e-4, 0, &worst);
    ck_assert_int_eq(flava_model_backward(ctx, m, &b), FLAVA_OK);
    int ngrad = 0;
    for (int i = 0; i < flava_st_count(ref); i++) {
        const flava_st_tensor *t = flava_st_get(ref, i);
        if (strncmp(t->name, "grad.", 5))
            continue;
        const flava_param *pp = flava_params_find(&m->table, t->name + 5);
        ck_assert_msg(pp != NULL, "%s: no parameter %s", name, t->name + 5);
        expect_close(name, m->grads + pp->offset, t, 1e-3, 1e-4, &worst_grad);
        ngrad++;
    }
    printf("%s: logits and loss worst rel err %.3g, %d gradients worst %.3g\n", name, worst,
           ngrad, worst_grad);
    flava_batch_free(&b);
    flava_st_free(ref);
    flava_model_destroy(m);
    flava_ctx_destroy(ctx);
}

START_TEST(test_finetune_vqa)
{
    check_finetune("vqa", FLAVA_HEAD_VQA, "vqa_num_answers", "5", "multimodal");
}
END_TEST

START_TEST(test_finetune_classify)
{
    check_finetune("classify", FLAVA_HEAD_CLASSIFY, "num_labels", "4", "image");
}
END_TEST

START_TEST(test_finetune_regress)
{
    check_finetune("regress", FLAVA_HEAD_CLASSIFY, "num_labels", "1", "text");
}
END_TEST

/* A smaller batch after a larger one reuses the arena (no allocation) and
 * gives what a fresh model gives. */
START_TEST(test_smaller_batch_reuses_arena)
{
    flava_ctx *ctx, *ctx2;
    flava_model *m = load_tiny(&ctx), *fresh = load_tiny(&ctx2);
    flava_batch b;
    flava_st *in;
    read_batch(&b, &in, m, "image_text");
    ck_assert_int_eq(flava_model_forward(ctx, m, &b, 0), FLAVA_OK);
    float *arena = m->arena;
    flava_batch two = b;
    two.B = 2;
    ck_assert_int_eq(flava_model_forward(ctx, m, &two, 0), FLAVA_OK);
    ck_assert_ptr_eq(m->arena, arena);
    ck_assert_int_eq(flava_model_forward(ctx2, fresh, &two, 0), FLAVA_OK);
    flava_output a[FLAVA_MAX_OUTPUTS], f[FLAVA_MAX_OUTPUTS];
    int na = flava_model_outputs(m, a), nf = flava_model_outputs(fresh, f);
    ck_assert_int_eq(na, nf);
    for (int i = 0; i < na; i++) {
        ck_assert_str_eq(a[i].name, f[i].name);
        int64_t n = 1;
        for (int d = 0; d < a[i].ndim; d++) {
            ck_assert_int_eq(a[i].shape[d], f[i].shape[d]);
            n *= a[i].shape[d];
        }
        ck_assert_msg(!memcmp(a[i].data, f[i].data, (size_t)n * sizeof(float)), "%s differs",
                      a[i].name);
    }
    flava_st_free(in);
    flava_batch_free(&b);
    flava_model_destroy(m);
    flava_model_destroy(fresh);
    flava_ctx_destroy(ctx2);
    flava_ctx_destroy(ctx);
}
END_TEST

/* The encoder against a fixture of tests/reference/encoder_fixtures.py:
 * output, input gradient and parameter gradients of sum(y * dout). A
 * fixture with a dropout_seed is a training pass with its dropout. */
static void check_encoder_fixture(const char *file, flava_encoder_spec spec)
{
    enum { L = 2, C = 8, NH = 2, FF = 16, B = 2, T = 5 };
    char p[4096];
    flava_st *ref;
    ck_assert_int_eq(flava_st_read(&ref, fixture(p, sizeof p, file)), FLAVA_OK);
    spec.layers = L, spec.hidden = C, spec.heads = NH, spec.intermediate = FF;
    spec.eps = 1e-5f, spec.qkv_bias = 1;
    const char *seed = flava_st_meta(ref, "dropout_seed");
    if (seed) {
        spec.hidden_dropout = strtof(flava_st_meta(ref, "hidden_dropout"), NULL);
        spec.attention_dropout = strtof(flava_st_meta(ref, "attention_dropout"), NULL);
        spec.input_dropout = 1;
    }
    flava_param_table t;
    flava_params_init(&t);
    flava_encoder e;
    ck_assert_int_eq(flava_encoder_declare(&e, &t, &spec, &flava_encoder_names_hf_vit, "enc"),
                     FLAVA_OK);
    float *params = calloc(t.total, sizeof *params), *grads = calloc(t.total, sizeof *grads);
    for (int i = 0; i < t.n; i++)
        ck_assert_int_eq(flava_st_load_f32(params + t.p[i].offset, ref, t.p[i].name, t.p[i].ndim,
                                           t.p[i].shape),
                         FLAVA_OK);
    flava_encoder_acts a = {0};
    float *mem = calloc(flava_encoder_acts_floats(&spec, B, T), sizeof *mem);
    float *scratch = calloc(flava_encoder_scratch_floats(&spec, B, T), sizeof *scratch);
    float key_mask[B * T], dout[B * T * C], dx[B * T * C] = {0};
    flava_encoder_acts_bind(&a, &spec, B, T, mem);
    int64_t sh[3] = {B, T, C}, shm[2] = {B, T};
    ck_assert_int_eq(flava_st_load_f32(a.x, ref, "x", 3, sh), FLAVA_OK);
    ck_assert_int_eq(flava_st_load_f32(key_mask, ref, "key_mask", 2, shm), FLAVA_OK);
    ck_assert_int_eq(flava_st_load_f32(dout, ref, "dout", 3, sh), FLAVA_OK);
    a.key_mask = key_mask;
    a.train = seed != NULL;
    a.dropout_seed = seed ? strtoull(seed, NULL, 10) : 0;
    flava_ctx *ctx;
    ck_assert_int_eq(flava_ctx_create(&ctx, FLAVA_PRECISION_F32), FLAVA_OK);
    ck_assert_int_eq(flava_encoder_forward(ctx, &e, params, &a), FLAVA_OK);
    double worst = 0, worst_grad = 0;
    expect_close(file, a.out, flava_st_find(ref, "out"), 1e-4, 0, &worst);
    ck_assert_int_eq(flava_encoder_backward(ctx, dx, grads, &e, params, &a, dout, NULL, scratch),
                     FLAVA_OK);
    expect_close(file, dx, flava_st_find(ref, "dx"), 1e-3, 1e-4, &worst_grad);
    for (int i = 0; i < t.n; i++) { /* gradients here are O(1): a floor of 1e-3 */
        char name[256];
        snprintf(name, sizeof name, "grad.%s", t.p[i].name);
        expect_close(file, grads + t.p[i].offset, flava_st_find(ref, name), 1e-3, 1e-3,
                     &worst_grad);
    }
    printf("encoder %s: output worst rel err %.3g, gradients %.3g\n", file, worst, worst_grad);
    flava_ctx_destroy(ctx);
    free(mem);
    free(scratch);
    free(params);
    free(grads);
    flava_encoder_free(&e);
    flava_params_free(&t);
    flava_st_free(ref);
}

/* FLAVA's unused configuration: post-LN, ReLU, causal with a key mask, no
 * final LN. */
START_TEST(test_encoder_post_ln)
{
    check_encoder_fixture("encoder_postln.safetensors",
                          (flava_encoder_spec){.act = FLAVA_ACT_RELU, .pre_ln = 0, .causal = 1});
}
END_TEST

/* Dropout as HF's FLAVA (pre-LN, final LN) and BERT (post-LN) layers
 * apply it, the masks drawn by the fixture's own splitmix64: dropping at
 * another place, with another scale or another mask fails. */
START_TEST(test_encoder_dropout)
{
    check_encoder_fixture("encoder_dropout_preln.safetensors",
                          (flava_encoder_spec){.act = FLAVA_ACT_GELU, .pre_ln = 1, .final_ln = 1});
    check_encoder_fixture("encoder_dropout_postln.safetensors",
                          (flava_encoder_spec){.act = FLAVA_ACT_GELU, .pre_ln = 0});
}
END_TEST

/* Config: HF JSON in (the `X_config_dict` spelling overrides `X_config`),
 * JSON out and back, dotted overrides, and their errors. */
/* MAE's 2-D sin-cos table, written out from its definition: column in the
 * first half of the channels, row in the second, sin before cos. */
START_TEST(test_positions_sincos)
{
    char p[4096];
    flava_config c;
    ck_assert_int_eq(flava_checkpoint_read_config(
                         &c, fixture(p, sizeof p, "flava_tiny_model.safetensors")),
                     FLAVA_OK);
    flava_model *m;
    ck_assert_int_eq(flava_model_create(&m, &c, NULL), FLAVA_OK);
    flava_model_init_weights(m, 3);
    const flava_param *pe = flava_params_find(&m->table, "flava.image_model.embeddings.position_embeddings");
    const flava_param *pw = flava_params_find(&m->table, "flava.image_model.embeddings.patch_embeddings.projection.weight");
    ck_assert_ptr_nonnull(pe);
    ck_assert_ptr_nonnull(pw);
    const float w0 = m->params[pw->offset];
    ck_assert_int_eq(flava_model_init_positions_sincos(m), FLAVA_OK);
    const int C = c.image.enc.hidden_size, G = c.image.image_size / c.image.patch_size, F = C / 4;
    const float *pos = m->params + pe->offset;
    for (int k = 0; k < C; k++)
        ck_assert_float_eq(pos[k], 0.0f); /* the CLS row stays */
    for (int i = 0; i < G * G; i++)
        for (int k = 0; k < C; k++) {
            const int coord = k < 2 * F ? i % G : i / G, f = k % F;
            const double angle = coord * exp(-f * log(10000.0) / F);
            const double want = (k / F) % 2 ? cos(angle) : sin(angle);
            ck_assert_msg(fabs(pos[(size_t)(1 + i) * C + k] - want) < 1e-6,
                          "patch %d channel %d: %g, expected %g", i, k, pos[(size_t)(1 + i) * C + k], want);
        }
    ck_assert_float_eq(m->params[pw->offset], w0); /* nothing else moves */
    flava_model_destroy(m);
    /* a width the table cannot split in four */
    ck_assert_int_eq(flava_config_set(&c, "image_config.hidden_size", "34"), FLAVA_OK);
    ck_assert_int_eq(flava_config_set(&c, "multimodal_config.hidden_size", "34"), FLAVA_OK);
    ck_assert_int_eq(flava_config_set(&c, "text_config.hidden_size", "34"), FLAVA_OK);
    ck_assert_msg(flava_model_create(&m, &c, NULL) == FLAVA_OK, "%s", flava_error_message());
    ck_assert_int_eq(flava_model_init_positions_sincos(m), FLAVA_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "divisible by 4, got 34"));
    flava_model_destroy(m);
}
END_TEST

START_TEST(test_config_json)
{
    flava_config c, d;
    flava_config_default(&c);
    ck_assert_int_eq(c.image.enc.num_hidden_layers, 12);
    ck_assert_int_eq(c.multimodal.enc.num_hidden_layers, 6);
    ck_assert_int_eq(c.projection_dim, 768);
    const char *json = "{\"architectures\": [\"FlavaForPreTraining\"], \"projection_dim\": 24,"
                       " \"text_config\": {\"hidden_size\": 64, \"vocab_size\": 99},"
                       " \"text_config_dict\": {\"hidden_size\": 32},"
                       " \"image_config\": {\"qkv_bias\": false, \"hidden_act\": \"relu\"}}";
    ck_assert_int_eq(flava_config_from_json(&c, json, "test.json"), FLAVA_OK);
    ck_assert_int_eq(c.projection_dim, 24);
    ck_assert_int_eq(c.text.enc.hidden_size, 32);
    ck_assert_int_eq(c.text.vocab_size, 99);
    ck_assert_int_eq(c.image.enc.qkv_bias, 0);
    ck_assert_str_eq(c.image.enc.hidden_act, "relu");
    char *out;
    ck_assert_int_eq(flava_config_to_json(&out, &c), FLAVA_OK);
    flava_config_default(&d);
    ck_assert_int_eq(flava_config_from_json(&d, out, "round trip"), FLAVA_OK);
    ck_assert_int_eq(memcmp(&c, &d, sizeof c), 0);
    free(out);
    ck_assert_int_eq(flava_config_set(&c, "multimodal_config.num_hidden_layers", "3"), FLAVA_OK);
    ck_assert_int_eq(c.multimodal.enc.num_hidden_layers, 3);
    ck_assert_int_eq(flava_config_set(&c, "mlm_weight", "0.5"), FLAVA_OK);
    ck_assert_int_eq(flava_config_set(&c, "text_config.hiden_size", "3"), FLAVA_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "text_config.hiden_size"));
    ck_assert_int_eq(flava_config_set(&c, "image_config.patch_size", "x"), FLAVA_ERR_CONFIG);
    ck_assert_int_eq(flava_config_from_json(&c, "{\"projection_dim\": \"big\"}", "bad.json"),
                     FLAVA_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "bad.json: projection_dim"));
    ck_assert_int_eq(flava_config_from_json(&c, "{\"projection_dim\": ", "cut.json"),
                     FLAVA_ERR_FORMAT);
    flava_config_default(&c);
    c.image.enc.num_attention_heads = 7;
    ck_assert_int_eq(flava_config_validate(&c), FLAVA_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "image_config"));
}
END_TEST

static const char *tmp_path(char *buf, size_t n, const char *name)
{
    const char *dir = getenv("FLAVA_BUILDDIR");
    snprintf(buf, n, "%s/check_model_%d_%s", dir ? dir : ".", (int)getpid(), name);
    return buf;
}

static long file_bytes(const char *path, unsigned char **data)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *data = malloc((size_t)n);
    ck_assert_int_eq(fread(*data, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return n;
}

/* save -> load -> save: identical bytes, identical parameters, codebook kept */
START_TEST(test_checkpoint_round_trip)
{
    flava_ctx *ctx;
    flava_model *m = load_tiny(&ctx);
    char a[4096], b2[4096];
    tmp_path(a, sizeof a, "a.safetensors");
    tmp_path(b2, sizeof b2, "b.safetensors");
    ck_assert_int_eq(flava_checkpoint_save(m, a), FLAVA_OK);
    flava_model *m2;
    flava_status s = flava_checkpoint_load(&m2, a, NULL, 0, 7);
    ck_assert_msg(s == FLAVA_OK, "%s", flava_error_message());
    ck_assert_ptr_nonnull(m2->codebook);
    ck_assert_int_eq(m2->table.total, m->table.total);
    ck_assert_int_eq(memcmp(m2->params, m->params, m->table.total * sizeof(float)), 0);
    ck_assert_int_eq(flava_checkpoint_save(m2, b2), FLAVA_OK);
    unsigned char *da, *db;
    long na = file_bytes(a, &da), nb = file_bytes(b2, &db);
    ck_assert_int_eq(na, nb);
    ck_assert_int_eq(memcmp(da, db, (size_t)na), 0);
    /* the tied bias is stored under both names */
    flava_st *st;
    ck_assert_int_eq(flava_st_read(&st, a), FLAVA_OK);
    ck_assert_ptr_nonnull(flava_st_find(st, "mlm_head.bias"));
    ck_assert_ptr_nonnull(flava_st_find(st, "mlm_head.decoder.bias"));
    ck_assert_ptr_nonnull(flava_st_meta(st, "config"));
    flava_st_free(st);

    /* optimizer state round trip */
    ck_assert_int_eq(flava_model_alloc_optim(m), FLAVA_OK);
    test_fill(m->exp_avg, (int64_t)m->table.total, 1, -1, 1);
    test_fill(m->exp_avg_sq, (int64_t)m->table.total, 2, 0, 1);
    ck_assert_int_eq(flava_checkpoint_save_optim(&m->table, m->exp_avg, m->exp_avg_sq, 42,
                                                 0x123456789abcdefull, 3, b2),
                     FLAVA_OK);
    ck_assert_int_eq(flava_model_alloc_optim(m2), FLAVA_OK);
    int64_t step;
    uint64_t rng;
    int ranks;
    s = flava_checkpoint_load_optim(&m2->table, m2->exp_avg, m2->exp_avg_sq, &step, &rng, &ranks,
                                    b2);
    ck_assert_msg(s == FLAVA_OK, "%s", flava_error_message());
    ck_assert_int_eq(step, 42);
    ck_assert_uint_eq(rng, 0x123456789abcdefull);
    ck_assert_int_eq(ranks, 3);
    ck_assert_int_eq(memcmp(m2->exp_avg, m->exp_avg, m->table.total * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(m2->exp_avg_sq, m->exp_avg_sq, m->table.total * sizeof(float)), 0);
    free(da);
    free(db);
    unlink(a);
    unlink(b2);
    flava_model_destroy(m2);
    flava_model_destroy(m);
    flava_ctx_destroy(ctx);
}
END_TEST

/* Writes the model's tensors except `drop`, with `alter` replaced by a
 * tensor of dtype/shape given, plus an `extra` key if not NULL. */
static void write_variant(const flava_model *m, const char *path, const char *drop,
                          const char *alter, flava_dtype dtype, int64_t d0, const char *extra)
{
    flava_st_tensor *t = calloc((size_t)m->table.n + 1, sizeof *t);
    static int64_t junk[4096];
    int n = 0;
    for (int i = 0; i < m->table.n; i++) {
        const flava_param *p = &m->table.p[i];
        if (drop && !strcmp(p->name, drop))
            continue;
        flava_st_tensor *e = &t[n++];
        e->name = p->name;
        e->dtype = FLAVA_F32;
        e->ndim = p->ndim;
        memcpy(e->shape, p->shape, sizeof p->shape);
        e->data = m->params + p->offset;
        e->nbytes = p->numel * sizeof(float);
        if (alter && !strcmp(p->name, alter)) {
            e->dtype = dtype;
            e->ndim = 1;
            e->shape[0] = d0;
            e->data = junk;
            e->nbytes = (size_t)d0 * flava_dtype_size(dtype);
        }
    }
    if (extra) {
        flava_st_tensor *e = &t[n++];
        e->name = extra;
        e->dtype = FLAVA_F32;
        e->ndim = 1;
        e->shape[0] = 4;
        e->data = junk;
        e->nbytes = 16;
    }
    char *json;
    ck_assert_int_eq(flava_config_to_json(&json, &m->cfg), FLAVA_OK);
    flava_st_kv meta = {"config", json};
    ck_assert_int_eq(flava_st_write(path, t, n, &meta, 1), FLAVA_OK);
    free(json);
    free(t);
}

static void expect_load_error(const char *path, int partial, flava_status want,
                              const char *needle)
{
    flava_model *m;
    flava_status s = flava_checkpoint_load(&m, path, NULL, partial, 1);
    ck_assert_msg(s == want, "loading %s: status %s (%s), expected %s", path,
                  flava_status_name(s), flava_error_message(), flava_status_name(want));
    ck_assert_msg(strstr(flava_error_message(), needle), "message '%s' lacks '%s'",
                  flava_error_message(), needle);
}

START_TEST(test_checkpoint_errors)
{
    flava_ctx *ctx;
    flava_model *m = load_tiny(&ctx);
    char p[4096], q[4096];
    tmp_path(p, sizeof p, "bad.safetensors");
    const char *w = "flava.text_projection.weight";

    write_variant(m, p, w, NULL, FLAVA_F32, 0, NULL);
    expect_load_error(p, 0, FLAVA_ERR_FORMAT, w);
    /* a partial load accepts the missing key (it keeps its initial value) */
    flava_model *pm;
    ck_assert_int_eq(flava_checkpoint_load(&pm, p, NULL, 1, 1), FLAVA_OK);
    flava_model_destroy(pm);

    write_variant(m, p, NULL, NULL, FLAVA_F32, 0, "vqa_head.surprise");
    expect_load_error(p, 0, FLAVA_ERR_FORMAT, "vqa_head.surprise");

    write_variant(m, p, NULL, w, FLAVA_F32, 7, NULL);
    expect_load_error(p, 0, FLAVA_ERR_SHAPE, w);
    expect_load_error(p, 1, FLAVA_ERR_SHAPE, w); /* partial never allows a wrong shape */

    const flava_param *pw = flava_params_find(&m->table, w);
    write_variant(m, p, NULL, w, FLAVA_I64, (int64_t)pw->numel, NULL);
    flava_model *wm;
    flava_status s = flava_checkpoint_load(&wm, p, NULL, 0, 1);
    ck_assert_int_ne(s, FLAVA_OK); /* 1-D I64 of the right size: dtype or shape refused */
    ck_assert_msg(strstr(flava_error_message(), w), "%s", flava_error_message());

    /* truncated and corrupted files */
    tmp_path(q, sizeof q, "good.safetensors");
    ck_assert_int_eq(flava_checkpoint_save(m, q), FLAVA_OK);
    unsigned char *d;
    long n = file_bytes(q, &d);
    FILE *f = fopen(p, "wb");
    fwrite(d, 1, (size_t)n / 2, f);
    fclose(f);
    s = flava_checkpoint_load(&wm, p, NULL, 0, 1);
    ck_assert_int_ne(s, FLAVA_OK);
    ck_assert_msg(strstr(flava_error_message(), p), "%s", flava_error_message());
    d[12] = '!'; /* inside the JSON header */
    f = fopen(p, "wb");
    fwrite(d, 1, (size_t)n, f);
    fclose(f);
    s = flava_checkpoint_load(&wm, p, NULL, 0, 1);
    ck_assert_int_ne(s, FLAVA_OK);
    ck_assert_msg(strstr(flava_error_message(), p), "%s", flava_error_message());
    free(d);
    unlink(p);
    unlink(q);
    flava_model_destroy(m);
    flava_ctx_destroy(ctx);
}
END_TEST

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* A HuggingFace folder: config.json + model.safetensors (no metadata), then
 * the same weights in two BF16 shards listed by model.safetensors.index.json. */
START_TEST(test_checkpoint_hf_folder)
{
    flava_ctx *ctx;
    flava_model *m = load_tiny(&ctx);
    char dir[4096], p[4200];
    tmp_path(dir, sizeof dir, "hf");
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    char *json;
    ck_assert_int_eq(flava_config_to_json(&json, &m->cfg), FLAVA_OK);
    snprintf(p, sizeof p, "%s/config.json", dir);
    write_text(p, json);
    free(json);

    /* one file, F32, the tied bias under one name only (as HF saves it),
     * the base model's keys without `flava.` (as a HF FlavaModel has them) */
    flava_st_tensor *t = calloc((size_t)m->table.n, sizeof *t);
    uint16_t *bf = malloc(m->table.total * sizeof *bf);
    for (size_t i = 0; i < m->table.total; i++) { /* round to nearest even */
        uint32_t u;
        memcpy(&u, &m->params[i], 4);
        bf[i] = (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
    }
    for (int i = 0; i < m->table.n; i++) {
        const flava_param *pp = &m->table.p[i];
        t[i].name = strncmp(pp->name, "flava.", 6) ? pp->name : pp->name + 6;
        t[i].dtype = FLAVA_F32;
        t[i].ndim = pp->ndim;
        memcpy(t[i].shape, pp->shape, sizeof pp->shape);
        t[i].data = m->params + pp->offset;
        t[i].nbytes = pp->numel * 4;
    }
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    ck_assert_int_eq(flava_st_write(p, t, m->table.n, NULL, 0), FLAVA_OK);
    flava_model *h;
    flava_status s = flava_checkpoint_load(&h, dir, NULL, 0, 1);
    ck_assert_msg(s == FLAVA_OK, "%s", flava_error_message());
    ck_assert_int_eq(memcmp(h->params, m->params, m->table.total * 4), 0);
    flava_model_destroy(h);
    unlink(p);

    /* two BF16 shards and an index */
    int half = m->table.n / 2;
    for (int i = 0; i < m->table.n; i++) {
        t[i].dtype = FLAVA_BF16;
        t[i].data = bf + m->table.p[i].offset;
        t[i].nbytes = m->table.p[i].numel * 2;
    }
    char idx[65536] = "{\"metadata\": {}, \"weight_map\": {";
    for (int i = 0; i < m->table.n; i++) {
        size_t k = strlen(idx);
        snprintf(idx + k, sizeof idx - k, "%s\"%s\": \"model-0000%d-of-00002.safetensors\"",
                 i ? ", " : "", t[i].name, i < half ? 1 : 2);
    }
    strcat(idx, "}}");
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    write_text(p, idx);
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", dir);
    ck_assert_int_eq(flava_st_write(p, t, half, NULL, 0), FLAVA_OK);
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
    ck_assert_int_eq(flava_st_write(p, t + half, m->table.n - half, NULL, 0), FLAVA_OK);
    s = flava_checkpoint_load(&h, dir, NULL, 0, 1);
    ck_assert_msg(s == FLAVA_OK, "%s", flava_error_message());
    for (size_t i = 0; i < m->table.total; i++) {
        uint32_t u = (uint32_t)bf[i] << 16;
        float want;
        memcpy(&want, &u, 4);
        ck_assert_msg(h->params[i] == want, "element %zu: %g, expected %g", i, h->params[i],
                      want);
        ck_assert(fabsf(h->params[i] - m->params[i]) <= 4e-3f * fabsf(m->params[i]) + 1e-30f);
    }
    flava_model_destroy(h);
    unlink(p);
    /* a shard gone: the error names it */
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", dir);
    unlink(p);
    s = flava_checkpoint_load(&h, dir, NULL, 1, 1);
    ck_assert_int_ne(s, FLAVA_OK);
    ck_assert_msg(strstr(flava_error_message(), "model-00001-of-00002"), "%s",
                  flava_error_message());
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/config.json", dir);
    unlink(p);
    rmdir(dir);
    free(t);
    free(bf);
    flava_model_destroy(m);
    flava_ctx_destroy(ctx);
}
END_TEST

/* FLAVA-full (HF defaults): the parameter count and one forward pass. */
START_TEST(test_flava_full_forward)
{
    flava_config c;
    flava_config_default(&c);
    flava_head_set none = {{0}, {0}};
    flava_model *m;
    ck_assert_int_eq(flava_model_create(&m, &c, &none), FLAVA_OK);
    size_t enc = flava_model_count(m, "flava.");
    printf("FLAVA-full: %zu parameters in flava.* (%.1fM)\n", enc, enc / 1e6);
    ck_assert_uint_ge(enc, 240000000);
    ck_assert_uint_le(enc, 242000000);
    double t0 = flava_now();
    flava_model_init_weights(m, 1);
    double t1 = flava_now();
    flava_ctx *ctx;
    ck_assert_int_eq(flava_ctx_create(&ctx, FLAVA_PRECISION_F32), FLAVA_OK);
    flava_batch b = {0};
    b.B = 1;
    b.image_size = 224;
    b.T = 16;
    b.P = 196;
    b.pixel_values = malloc(3 * 224 * 224 * sizeof(float));
    b.input_ids = calloc(16, sizeof(int32_t));
    test_fill(b.pixel_values, 3 * 224 * 224, 3, -2, 2);
    for (int t = 0; t < 16; t++)
        b.input_ids[t] = 100 + 37 * t;
    /* forward-only skips nothing: unmasked image/text + masked with multimodal */
    flava_status s = flava_model_forward(ctx, m, &b, 0);
    ck_assert_msg(s == FLAVA_OK, "%s", flava_error_message());
    ck_assert(m->mm_m.ran && m->img.ran && m->txt.ran);
    printf("FLAVA-full: init %.1f s, forward (batch 1, both passes) %.1f s\n", t1 - t0,
           flava_now() - t1);
    const float *o = m->mm_m.enc.out;
    for (int i = 0; i < (1 + 197 + 16) * 768; i++)
        ck_assert(isfinite(o[i]));
    free(b.pixel_values);
    free(b.input_ids);
    flava_model_destroy(m);
    flava_ctx_destroy(ctx);
}
END_TEST

Suite *make_model_suite(void);
Suite *make_model_suite(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("parity");
    tcase_add_test(tc, test_image_text_batch);
    tcase_add_test(tc, test_positions_sincos);
    tcase_add_test(tc, test_image_batch);
    tcase_add_test(tc, test_text_batch);
    tcase_add_test(tc, test_batch_heads_narrow);
    tcase_add_test(tc, test_adamw_three_steps);
    tcase_add_test(tc, test_bf16_losses);
    tcase_add_test(tc, test_finetune_vqa);
    tcase_add_test(tc, test_finetune_classify);
    tcase_add_test(tc, test_finetune_regress);
    suite_add_tcase(s, tc);
    tcase_add_test(tc, test_encoder_post_ln);
    tcase_add_test(tc, test_encoder_dropout);
    tcase_add_test(tc, test_smaller_batch_reuses_arena);
    tcase_add_test(tc, test_config_json);
    tc = tcase_create("checkpoint");
    tcase_add_test(tc, test_checkpoint_round_trip);
    tcase_add_test(tc, test_checkpoint_errors);
    tcase_add_test(tc, test_checkpoint_hf_folder);
    suite_add_tcase(s, tc);
    tc = tcase_create("full");
    tcase_add_test(tc, test_flava_full_forward);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return test_run(make_model_suite()); }

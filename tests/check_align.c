/* check_align.c - the ALIGN family against this project's PyTorch
 * reference (tests/reference/align_ref.py, fixtures from
 * make_align_fixtures.py): outputs, loss, every parameter gradient and the
 * batch-norm statistics after a training step, in training and inference
 * mode; checkpoints (round trip, a missing key, a wrong shape); init. */
#include "testutil.h"

#include <sys/stat.h>
#include <unistd.h>

#include "align.h"

/* worst |a - ref| / (|ref| + 5e-2 max|ref|): relative, with entries below
 * 5% of the tensor's peak judged against that (a logit near 0 is a
 * cancellation in f32). A tensor that is exactly zero (max|ref| < 1e-12:
 * the key biases' gradients, which softmax ignores, and a batch-norm bias
 * feeding only batch norms in training mode) has no scale of its own: its
 * entries are judged against `zero_scale` instead. */
static double rel_err(const float *a, const float *ref, int64_t n, double zero_scale,
                      int64_t *at)
{
    double mx = 0, worst = 0;
    for (int64_t i = 0; i < n; i++)
        mx = fabs(ref[i]) > mx ? fabs(ref[i]) : mx;
    const double floor = mx < 1e-12 ? zero_scale : 5e-2 * mx;
    *at = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - ref[i]) / (fabs(ref[i]) + floor + 1e-30);
        if (!(e <= worst)) {
            worst = isnan(e) ? INFINITY : e;
            *at = i;
        }
    }
    return worst;
}

static flava_st *open_fixture(const char *rel)
{
    char path[4096];
    flava_st *st = NULL;
    ck_assert_msg(flava_st_read(&st, test_path(path, sizeof path, rel)) == FLAVA_OK, "%s",
                  flava_error_message());
    return st;
}

static const float *fixture_f32(const flava_st *st, const char *name, int64_t n, float *buf)
{
    const flava_st_tensor *t = flava_st_find(st, name);
    ck_assert_msg(t != NULL, "fixture tensor %s missing", name);
    ck_assert_int_eq(flava_st_numel(t), n);
    ck_assert_int_eq(flava_st_to_f32(buf, t), FLAVA_OK);
    return buf;
}

/* compares n values of `a` with the fixture's `name`, printing the worst */
static double compare(const flava_st *ref, const char *name, const float *a, int64_t n,
                      double tol, double zero_scale)
{
    float *r = malloc((size_t)n * sizeof *r);
    ck_assert_ptr_nonnull(r);
    fixture_f32(ref, name, n, r);
    int64_t at;
    double e = rel_err(a, r, n, zero_scale, &at);
    ck_assert_msg(e <= tol, "%s: element %lld is %.9g, expected %.9g (relative error %.3g > %g)",
                  name, (long long)at, (double)a[at], (double)r[at], e, tol);
    if (getenv("ALIGN_VERBOSE")) { /* every tensor, for the report */
        double mx = 0, ma = 0;
        for (int64_t i = 0; i < n; i++)
            mx = fmax(mx, fabs(r[i])), ma = fmax(ma, fabs((double)a[i] - r[i]));
        printf("  %-70s max|ref| %.3e max abs err %.2e rel %.2e\n", name, mx, ma, e);
    }
    free(r);
    return e;
}

typedef struct inputs {
    flava_align_inputs in;
    float *pixels, *mask;
    int32_t *ids, *types;
} inputs;

static void read_inputs(inputs *x)
{
    flava_st *st = open_fixture("tests/fixtures/align_tiny_inputs.safetensors");
    const flava_st_tensor *p = flava_st_find(st, "pixel_values"), *ids = flava_st_find(st, "input_ids");
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(ids);
    int B = (int)p->shape[0], H = (int)p->shape[2], W = (int)p->shape[3], T = (int)ids->shape[1];
    x->pixels = malloc(flava_st_numel(p) * sizeof(float));
    x->ids = malloc((size_t)B * T * sizeof(int32_t));
    x->types = malloc((size_t)B * T * sizeof(int32_t));
    x->mask = malloc((size_t)B * T * sizeof(float));
    int32_t *m = malloc((size_t)B * T * sizeof(int32_t));
    ck_assert_int_eq(flava_st_to_f32(x->pixels, p), FLAVA_OK);
    ck_assert_int_eq(flava_st_to_i32(x->ids, ids), FLAVA_OK);
    ck_assert_int_eq(flava_st_to_i32(x->types, flava_st_find(st, "token_type_ids")), FLAVA_OK);
    ck_assert_int_eq(flava_st_to_i32(m, flava_st_find(st, "attention_mask")), FLAVA_OK);
    for (int i = 0; i < B * T; i++)
        x->mask[i] = (float)m[i];
    free(m);
    flava_st_free(st);
    x->in = (flava_align_inputs){.B = B, .T = T, .H = H, .W = W, .pixel_values = x->pixels,
                                 .input_ids = x->ids, .attention_mask = x->mask,
                                 .token_type_ids = x->types};
}

static void free_inputs(inputs *x)
{
    free(x->pixels);
    free(x->ids);
    free(x->types);
    free(x->mask);
}

static flava_align *load_tiny(void)
{
    char path[4096];
    flava_align *m = NULL;
    ck_assert_msg(flava_align_load(&m, test_path(path, sizeof path,
                                                 "tests/fixtures/align_tiny_model.safetensors")) ==
                      FLAVA_OK,
                  "%s", flava_error_message());
    return m;
}

/* A context, the tiny model and the fixture inputs. */
typedef struct rig {
    flava_ctx *ctx;
    flava_align *m;
    inputs x;
} rig;

static void rig_open(rig *r)
{
    ck_assert_int_eq(flava_ctx_create(&r->ctx, FLAVA_PRECISION_F32), FLAVA_OK);
    r->m = load_tiny();
    read_inputs(&r->x);
}

static void rig_close(rig *r)
{
    free_inputs(&r->x);
    flava_align_destroy(r->m);
    flava_ctx_destroy(r->ctx);
}

/* One forward + backward in `mode`, everything compared with the fixture. */
static void check_step(int train)
{
    rig r;
    rig_open(&r);
    flava_ctx *ctx = r.ctx;
    flava_align *m = r.m;
    inputs x = r.x;
    flava_st *ref = open_fixture(train ? "tests/fixtures/align_tiny_train.safetensors"
                                       : "tests/fixtures/align_tiny_eval.safetensors");
    const char *seed = flava_st_meta(ref, "dropout_seed");
    ck_assert_ptr_nonnull(seed);
    ck_assert_int_eq(flava_align_alloc_grads(m), FLAVA_OK);
    ck_assert_msg(flava_align_forward(ctx, m, &x.in, train, strtoull(seed, NULL, 10)) == FLAVA_OK,
                  "%s", flava_error_message());
    const int B = x.in.B, P = m->cfg.projection_dim;
    double worst = 0, e;
    worst = fmax(worst, compare(ref, "text_embeds", m->text_embeds, (int64_t)B * P, 1e-4, 0));
    worst = fmax(worst, compare(ref, "image_embeds", m->image_embeds, (int64_t)B * P, 1e-4, 0));
    worst = fmax(worst, compare(ref, "logits_per_image", m->logits_per_image, (int64_t)B * B, 1e-4, 0));
    worst = fmax(worst, compare(ref, "loss", &m->loss, 1, 1e-4, 0));
    ck_assert_msg(flava_align_backward(ctx, m) == FLAVA_OK, "%s", flava_error_message());
    double gworst = 0;
    const char *gname = "";
    for (int i = 0; i < m->table.n; i++) {
        const flava_param *p = &m->table.p[i];
        char name[FLAVA_PARAM_NAME_MAX + 8];
        snprintf(name, sizeof name, "grad.%s", p->name);
        e = compare(ref, name, m->grads + p->offset, (int64_t)p->numel, 1e-3, 1e-3);
        if (e > gworst)
            gworst = e, gname = p->name;
    }
    /* the running statistics: updated by the training step, untouched by
     * inference (then compared with the model file's) */
    flava_st *model = open_fixture("tests/fixtures/align_tiny_model.safetensors");
    double bworst = 0;
    for (int i = 0; i < m->buffers.n; i++) {
        const flava_param *p = &m->buffers.p[i];
        bworst = fmax(bworst, compare(train ? ref : model, p->name, m->buf + p->offset,
                                      (int64_t)p->numel, 1e-4, 0));
    }
    for (int k = 0; k < m->vision.nbn; k++)
        ck_assert_int_eq(m->counters[k], train ? 6 : 5);
    printf("check_align %s: outputs/loss worst %.2e, gradients worst %.2e (%s), "
           "running stats worst %.2e\n",
           train ? "train" : "eval", worst, gworst, gname, bworst);
    flava_st_free(model);
    flava_st_free(ref);
    rig_close(&r);
}

START_TEST(test_train_step_matches_reference) { check_step(1); }
END_TEST

START_TEST(test_inference_matches_reference) { check_step(0); }
END_TEST

/* get_image_features / get_text_features: the unnormalised embeddings;
 * normalised, they are the inference outputs. */
START_TEST(test_encode_matches_forward)
{
    rig r;
    rig_open(&r);
    flava_ctx *ctx = r.ctx;
    flava_align *m = r.m;
    inputs x = r.x;
    const int B = x.in.B, P = m->cfg.projection_dim;
    float *img = malloc((size_t)B * P * sizeof *img), *txt = malloc((size_t)B * P * sizeof *txt);
    ck_assert_int_eq(flava_align_encode_images(ctx, m, img, x.pixels, B, x.in.H, x.in.W), FLAVA_OK);
    ck_assert_int_eq(flava_align_encode_texts(ctx, m, txt, x.ids, x.mask, x.types, B, x.in.T),
                     FLAVA_OK);
    float norm[8];
    ck_assert_int_eq(l2norm_forward(img, norm, img, B, P), FLAVA_OK);
    ck_assert_int_eq(l2norm_forward(txt, norm, txt, B, P), FLAVA_OK);
    flava_st *ref = open_fixture("tests/fixtures/align_tiny_eval.safetensors");
    compare(ref, "image_embeds", img, (int64_t)B * P, 1e-4, 0);
    compare(ref, "text_embeds", txt, (int64_t)B * P, 1e-4, 0);
    /* encoding is inference: no statistic moved */
    for (int k = 0; k < m->vision.nbn; k++)
        ck_assert_int_eq(m->counters[k], 5);
    flava_st_free(ref);
    free(img);
    free(txt);
    rig_close(&r);
}
END_TEST

static void tmp_path(char *buf, size_t n, const char *tag)
{
    snprintf(buf, n, "%s/check_align_%s_%d.safetensors", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             tag, (int)getpid());
}

START_TEST(test_checkpoint_round_trip)
{
    flava_align *m = load_tiny();
    char path[4096];
    tmp_path(path, sizeof path, "rt");
    ck_assert_msg(flava_align_save(m, path) == FLAVA_OK, "%s", flava_error_message());
    flava_align *r = NULL;
    ck_assert_msg(flava_align_load(&r, path) == FLAVA_OK, "%s", flava_error_message());
    unlink(path);
    ck_assert_int_eq(r->table.total, m->table.total);
    ck_assert_int_eq(memcmp(r->params, m->params, m->table.total * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(r->buf, m->buf, m->buffers.total * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(r->counters, m->counters, (size_t)m->vision.nbn * sizeof(int64_t)), 0);
    ck_assert_int_eq(r->cfg.vision.nstages, 3);
    ck_assert_int_eq(r->cfg.vision.ndepthwise_padding, 1);
    ck_assert_int_eq(r->cfg.vision.depthwise_padding[0], 4);
    ck_assert(r->cfg.vision.width_coefficient == 0.25);
    ck_assert_int_eq(r->cfg.text.num_hidden_layers, 2);
    flava_align_destroy(r);
    flava_align_destroy(m);
}
END_TEST

/* An HF folder: config.json + model.safetensors. */
START_TEST(test_load_hf_folder)
{
    flava_st *st = open_fixture("tests/fixtures/align_tiny_model.safetensors");
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/check_align_hf_%d", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (int)getpid());
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(flava_st_meta(st, "config"), f);
    fclose(f);
    int n = flava_st_count(st);
    flava_st_tensor *t = malloc((size_t)n * sizeof *t);
    for (int i = 0; i < n; i++)
        t[i] = *flava_st_get(st, i);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    ck_assert_int_eq(flava_st_write(path, t, n, NULL, 0), FLAVA_OK);
    flava_align *m = NULL;
    flava_status s = flava_align_load(&m, dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    rmdir(dir);
    ck_assert_msg(s == FLAVA_OK, "%s", flava_error_message());
    flava_align *ref = load_tiny();
    ck_assert_int_eq(memcmp(m->params, ref->params, ref->table.total * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(m->buf, ref->buf, ref->buffers.total * sizeof(float)), 0);
    flava_align_destroy(ref);
    flava_align_destroy(m);
    free(t);
    flava_st_free(st);
}
END_TEST

/* Rewrites the tiny model without `drop`, or with `reshape` given the
 * wrong shape, and expects the load to fail naming it. */
static void check_bad_checkpoint(const char *drop, const char *reshape, flava_status want)
{
    flava_st *st = open_fixture("tests/fixtures/align_tiny_model.safetensors");
    int n = flava_st_count(st), k = 0;
    flava_st_tensor *t = malloc((size_t)n * sizeof *t);
    for (int i = 0; i < n; i++) {
        const flava_st_tensor *x = flava_st_get(st, i);
        if (drop && !strcmp(x->name, drop))
            continue;
        t[k] = *x;
        if (reshape && !strcmp(x->name, reshape)) {
            t[k].ndim = 1;
            t[k].shape[0] = flava_st_numel(x);
        }
        k++;
    }
    ck_assert_int_eq(k, drop ? n - 1 : n);
    flava_st_kv meta = {"config", flava_st_meta(st, "config")};
    char path[4096];
    tmp_path(path, sizeof path, "bad");
    ck_assert_int_eq(flava_st_write(path, t, k, &meta, 1), FLAVA_OK);
    flava_align *m = NULL;
    flava_status s = flava_align_load(&m, path);
    unlink(path);
    ck_assert_int_eq(s, want);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(flava_error_message(), drop ? drop : reshape) != NULL, "%s",
                  flava_error_message());
    free(t);
    flava_st_free(st);
}

START_TEST(test_load_refuses_missing_key)
{
    check_bad_checkpoint("vision_model.encoder.blocks.3.squeeze_excite.reduce.bias", NULL,
                         FLAVA_ERR_FORMAT);
    check_bad_checkpoint("vision_model.encoder.blocks.2.expansion.expand_bn.running_var", NULL,
                         FLAVA_ERR_FORMAT);
    check_bad_checkpoint("vision_model.embeddings.batchnorm.num_batches_tracked", NULL,
                         FLAVA_ERR_FORMAT);
    check_bad_checkpoint(NULL, "text_model.encoder.layer.1.attention.self.key.weight",
                         FLAVA_ERR_SHAPE);
}
END_TEST

START_TEST(test_config_defaults_and_errors)
{
    flava_align_config c;
    flava_align_config_default(&c);
    /* align-base: EfficientNet-B7 widths x2, last stage 640 = projection_dim */
    ck_assert_int_eq(flava_align_config_validate(&c), FLAVA_OK);
    ck_assert_int_eq(flava_effnet_round_filters(&c.vision, 32), 64);
    ck_assert_int_eq(flava_effnet_round_filters(&c.vision, 320), 640);
    ck_assert_int_eq(flava_align_config_from_json(&c, "{\"projection_dim\": 512}", "cfg"),
                     FLAVA_OK);
    ck_assert_int_eq(flava_align_config_validate(&c), FLAVA_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "projection_dim 512"));
    flava_align_config_default(&c);
    ck_assert_int_eq(flava_align_config_from_json(
                         &c, "{\"vision_config\": {\"kernel_sizes\": [3, 5], \"strides\": [1]}}",
                         "cfg"),
                     FLAVA_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "vision_config.strides"));
    ck_assert_int_eq(flava_align_config_from_json(
                         &c, "{\"vision_config\": {\"kernel_sizes\": [3, 5]}}", "cfg"),
                     FLAVA_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "vision_config.in_channels"));
    ck_assert_int_eq(flava_align_config_from_json(
                         &c, "{\"text_config\": {\"hidden_size\": \"big\"}}", "cfg"),
                     FLAVA_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "text_config.hidden_size"));
    ck_assert_int_eq(flava_align_config_from_json(&c, "{\"model_type\": \"clip\"}", "cfg"),
                     FLAVA_ERR_CONFIG);
}
END_TEST

/* HF _init_weights: N(0, 0.02) weights, batch norm 1/0 with running 0/1,
 * padding row 0, Xavier-uniform text_projection, temperature 1. */
START_TEST(test_init_as_hf)
{
    flava_align *m = load_tiny();
    flava_align_init_weights(m, 7);
    const flava_param *conv = flava_params_find(&m->table,
                                                "vision_model.encoder.blocks.3.expansion.expand_conv.weight");
    const flava_param *q = flava_params_find(&m->table,
                                             "text_model.encoder.layer.0.attention.self.query.weight");
    ck_assert_ptr_nonnull(conv);
    ck_assert_ptr_nonnull(q);
    const flava_param *ps[2] = {conv, q};
    for (int k = 0; k < 2; k++) {
        double s = 0, s2 = 0;
        const float *w = m->params + ps[k]->offset;
        for (size_t i = 0; i < ps[k]->numel; i++)
            s += w[i], s2 += (double)w[i] * w[i];
        double n = (double)ps[k]->numel, sd = sqrt(s2 / n - (s / n) * (s / n));
        ck_assert_msg(fabs(sd - 0.02) < 0.004 && fabs(s / n) < 0.004, "%s: mean %g std %g",
                      ps[k]->name, s / n, sd);
    }
    const flava_param *bnw = flava_params_find(&m->table,
                                               "vision_model.encoder.blocks.5.projection.project_bn.weight");
    const flava_param *rv = flava_params_find(&m->buffers,
                                              "vision_model.encoder.blocks.5.projection.project_bn.running_var");
    for (size_t i = 0; i < bnw->numel; i++) {
        ck_assert(m->params[bnw->offset + i] == 1.0f);
        ck_assert(m->params[bnw->offset + bnw->numel + i] == 0.0f); /* its bias */
        ck_assert(m->buf[rv->offset + i] == 1.0f);
    }
    for (int k = 0; k < m->vision.nbn; k++)
        ck_assert_int_eq(m->counters[k], 0);
    for (int c = 0; c < m->cfg.text.hidden_size; c++)
        ck_assert(m->params[m->word + c] == 0.0f);
    const int P = m->cfg.projection_dim, C = m->cfg.text.hidden_size;
    double bound = sqrt(6.0 / (P + C)), mx = 0;
    for (int i = 0; i < P * C; i++)
        mx = fmax(mx, fabs(m->params[m->proj_w + i]));
    ck_assert(mx <= bound && mx > 0.9 * bound);
    ck_assert(m->params[m->temperature] == 1.0f);
    flava_align_destroy(m);
}
END_TEST

/* A few plain gradient steps in training mode (new dropout masks each
 * step) lower the loss on a fixed batch: the gradients train. */
START_TEST(test_gradient_steps_lower_loss)
{
    rig r;
    rig_open(&r);
    flava_ctx *ctx = r.ctx;
    flava_align *m = r.m;
    inputs x = r.x;
    ck_assert_int_eq(flava_align_alloc_grads(m), FLAVA_OK);
    float first = 0, last = 0;
    for (int step = 0; step < 8; step++) {
        flava_align_zero_grads(m);
        ck_assert_int_eq(flava_align_forward(ctx, m, &x.in, 1, 100 + (uint64_t)step), FLAVA_OK);
        ck_assert_int_eq(flava_align_backward(ctx, m), FLAVA_OK);
        if (step == 0)
            first = m->loss;
        last = m->loss;
        for (size_t i = 0; i < m->table.total; i++)
            m->params[i] -= 0.05f * m->grads[i];
    }
    printf("check_align: 8 gradient steps, loss %.4f -> %.4f\n", (double)first, (double)last);
    ck_assert_msg(last < 0.8f * first, "loss %g -> %g", (double)first, (double)last);
    rig_close(&r);
}
END_TEST

/* bf16 precision (matmuls and the conv forward in bf16 where the CPU has
 * it): the loss and logits stay near the exact ones. */
START_TEST(test_bf16_near_exact)
{
    rig r;
    rig_open(&r);
    flava_ctx_set_precision(r.ctx, FLAVA_PRECISION_BF16);
    ck_assert_int_eq(flava_align_forward(r.ctx, r.m, &r.x.in, 0, 0), FLAVA_OK);
    flava_st *ref = open_fixture("tests/fixtures/align_tiny_eval.safetensors");
    float want[9], loss;
    const int B = r.x.in.B;
    fixture_f32(ref, "loss", 1, &loss);
    fixture_f32(ref, "logits_per_image", (int64_t)B * B, want);
    double worst = 0;
    for (int i = 0; i < B * B; i++)
        worst = fmax(worst, fabs(r.m->logits_per_image[i] - want[i]));
    printf("check_align bf16 (has bf16: %d): loss %.5f (exact %.5f), logits max abs err %.2e\n",
           flava_ctx_has_bf16(r.ctx), (double)r.m->loss, (double)loss, worst);
    ck_assert(fabsf(r.m->loss - loss) <= 0.02f * loss);
    ck_assert(worst <= 0.05);
    flava_st_free(ref);
    rig_close(&r);
}
END_TEST

Suite *make_align_suite(void);
Suite *make_align_suite(void)
{
    Suite *s = suite_create("align");
    TCase *tc = tcase_create("align");
    tcase_add_test(tc, test_train_step_matches_reference);
    tcase_add_test(tc, test_inference_matches_reference);
    tcase_add_test(tc, test_encode_matches_forward);
    tcase_add_test(tc, test_checkpoint_round_trip);
    tcase_add_test(tc, test_load_refuses_missing_key);
    tcase_add_test(tc, test_load_hf_folder);
    tcase_add_test(tc, test_config_defaults_and_errors);
    tcase_add_test(tc, test_init_as_hf);
    tcase_add_test(tc, test_gradient_steps_lower_loss);
    tcase_add_test(tc, test_bf16_near_exact);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return test_run(make_align_suite()); }

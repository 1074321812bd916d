/* check_family.c - the family interface: the registry and checkpoint
 * detection, each family's normalised embeddings and contrastive forward
 * against the PyTorch fixtures (CLIP: clip_tiny_*, ALIGN: align_tiny_*),
 * CLIP's logit_scale clamp, the probe features (FLAVA's against HF's
 * last_hidden_state), the preprocessing each family declares (and
 * what it makes of a real image against PIL), config
 * overrides as HF JSON (and misspelt keys refused), the CLIP BPE behind the
 * tokenizer interface against the tokenizer's own fixture, and a training
 * run of the shared loop on CLIP that lowers the loss. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <unistd.h>

#include "clip.h"
#include "family.h"
#include "image.h"
#include "safetensors.h"
#include "tokenizer.h"
#include "train.h"

#define OK(call)                                                                           \
    do {                                                                                   \
        flava_status s_ = (call);                                                          \
        ck_assert_msg(s_ == FLAVA_OK, "%s: %s (%s)", #call, flava_error_message(),         \
                      flava_error_where());                                                \
    } while (0)

static const char *fx(char *buf, size_t n, const char *name)
{
    char rel[256];
    snprintf(rel, sizeof rel, "tests/fixtures/%s", name);
    return test_path(buf, n, rel);
}

/* A fixture tensor as doubles (malloc'ed). */
static double *ref(const flava_st *st, const char *name, int64_t *n)
{
    const flava_st_tensor *t = flava_st_find(st, name);
    ck_assert_msg(t != NULL, "the fixture has no %s", name);
    *n = flava_st_numel(t);
    float *f = malloc(sizeof(float) * (size_t)*n);
    double *d = malloc(sizeof(double) * (size_t)*n);
    ck_assert(f && d);
    OK(flava_st_to_f32(f, t));
    for (int64_t i = 0; i < *n; i++)
        d[i] = f[i];
    free(f);
    return d;
}

/* fm: a fixture model of the given family, all its tensors loaded. */
static const flava_family_ops *fixture_model(flava_family_model *fm, flava_family_id family,
                                             const char *name)
{
    char p[4096];
    const flava_family_ops *ops = flava_families[family];
    OK(flava_family_create(fm, ops, fx(p, sizeof p, name), NULL, NULL, 0, 0));
    return ops;
}

START_TEST(test_registry)
{
    for (int i = 0; i < FLAVA_NUM_FAMILIES; i++) {
        const flava_family_ops *ops;
        OK(flava_family_find(&ops, flava_families[i]->name));
        ck_assert_ptr_eq(ops, flava_families[i]);
        ck_assert(ops->create && ops->encode_images && ops->encode_texts && ops->forward &&
                  ops->backward && ops->outputs && ops->n_pretrain_heads >= 1);
    }
    const flava_family_ops *ops;
    ck_assert_int_eq(flava_family_find(&ops, "bert"), FLAVA_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "'bert'"));
    char p[4096];
    OK(flava_family_of_checkpoint(&ops, fx(p, sizeof p, "clip_tiny_gelu_model.safetensors")));
    ck_assert_str_eq(ops->name, "clip");
    OK(flava_family_of_checkpoint(&ops, fx(p, sizeof p, "align_tiny_model.safetensors")));
    ck_assert_str_eq(ops->name, "align");
    OK(flava_family_of_checkpoint(&ops, fx(p, sizeof p, "flava_tiny_model.safetensors")));
    ck_assert_str_eq(ops->name, "flava");
    ck_assert_int_ne(flava_family_of_checkpoint(&ops, fx(p, sizeof p, "none.safetensors")),
                     FLAVA_OK);
}
END_TEST

/* The dual encoders: encode_images/encode_texts give the fixture's
 * normalised embeddings (unit rows), forward its logits and loss. */
static void check_embeddings(const char *family, const char *model, const char *inputs,
                             const char *outputs)
{
    char p[4096];
    const flava_family_ops *ops;
    OK(flava_family_find(&ops, family));
    flava_family_model fm;
    OK(flava_family_create(&fm, ops, fx(p, sizeof p, model), NULL, NULL, 0, 0));
    flava_st *in, *out;
    OK(flava_st_read(&in, fx(p, sizeof p, inputs)));
    OK(flava_st_read(&out, fx(p, sizeof p, outputs)));
    flava_config geometry;
    ops->input_config(&fm, &geometry);
    flava_batch b;
    OK(flava_batch_read(&b, in, &geometry));
    flava_ctx *ctx;
    OK(flava_ctx_create(&ctx, FLAVA_PRECISION_F32));
    const int B = b.B, D = fm.embed_dim;
    float *img = malloc(sizeof(float) * (size_t)B * D);
    float *txt = malloc(sizeof(float) * (size_t)B * D);
    OK(ops->encode_images(ctx, &fm, img, b.pixel_values, B));
    OK(ops->encode_texts(ctx, &fm, txt, b.input_ids, b.attention_mask, b.token_type_ids, B, b.T));
    int64_t n;
    double *want = ref(out, "image_embeds", &n);
    ck_assert_int_eq(n, (int64_t)B * D);
    ck_assert_close(img, want, n, 1e-4, 1e-6, "image_embeds");
    free(want);
    want = ref(out, "text_embeds", &n);
    ck_assert_close(txt, want, n, 1e-4, 1e-6, "text_embeds");
    free(want);
    for (int i = 0; i < B; i++) {
        double s = 0;
        for (int d = 0; d < D; d++)
            s += (double)img[i * D + d] * img[i * D + d];
        ck_assert_double_eq_tol(s, 1.0, 1e-5);
    }
    /* the contrastive forward, inference mode, under HF output names */
    OK(ops->forward(ctx, &fm, &b, 0));
    flava_output o[FLAVA_MAX_OUTPUTS];
    const int no = ops->outputs(&fm, o);
    ck_assert_int_eq(no, 5);
    ck_assert_str_eq(o[2].name, "logits_per_image");
    want = ref(out, "logits_per_image", &n);
    ck_assert_int_eq(n, (int64_t)B * B);
    ck_assert_close(o[2].data, want, n, 1e-4, 1e-5, "logits_per_image");
    free(want);
    want = ref(out, "loss", &n);
    ck_assert_double_eq_tol(fm.loss, want[0], 1e-5 * fabs(want[0]));
    ck_assert(fm.head_ran[FLAVA_HEAD_CONTRASTIVE]);
    ck_assert_float_eq(fm.head_loss[FLAVA_HEAD_CONTRASTIVE], fm.loss);
    free(want);
    free(img);
    free(txt);
    flava_batch_free(&b);
    flava_st_free(in);
    flava_st_free(out);
    flava_ctx_destroy(ctx);
    flava_family_destroy(&fm);
}

START_TEST(test_clip_embeddings)
{
    check_embeddings("clip", "clip_tiny_quick_gelu_model.safetensors",
                     "clip_tiny_quick_gelu_io.safetensors", "clip_tiny_quick_gelu_io.safetensors");
}
END_TEST

START_TEST(test_align_embeddings)
{
    check_embeddings("align", "align_tiny_model.safetensors", "align_tiny_inputs.safetensors",
                     "align_tiny_eval.safetensors");
}
END_TEST

START_TEST(test_clip_clamp_and_features)
{
    flava_family_model fm;
    const flava_family_ops *ops = fixture_model(&fm, FLAVA_FAMILY_CLIP,
                                                "clip_tiny_gelu_model.safetensors");
    const flava_param *ls = flava_params_find(fm.table, "logit_scale");
    ck_assert_ptr_nonnull(ls);
    fm.params[ls->offset] = 7.0f;
    ops->after_step(&fm);
    ck_assert_float_eq_tol(fm.params[ls->offset], (float)log(100.0), 1e-6);
    fm.params[ls->offset] = -0.5f;
    ops->after_step(&fm);
    ck_assert_float_eq(fm.params[ls->offset], 0.0f);
    fm.params[ls->offset] = 2.0f;
    ops->after_step(&fm);
    ck_assert_float_eq(fm.params[ls->offset], 2.0f);
    /* the probe features: CLS before and after post_layernorm, hidden wide */
    ck_assert_int_eq(fm.feature_dim, 24);
    enum { B = 2, S = 16 };
    float px[B * 3 * S * S], cls[B * 24], pooled[B * 24];
    test_fill(px, B * 3 * S * S, 5, -1, 1);
    flava_ctx *ctx;
    OK(flava_ctx_create(&ctx, FLAVA_PRECISION_F32));
    OK(ops->image_features(ctx, &fm, cls, px, B, FLAVA_IMAGE_CLS));
    OK(ops->image_features(ctx, &fm, pooled, px, B, FLAVA_IMAGE_POOLED));
    /* pooled = post_layernorm(cls), eps 1e-5, in double */
    const float *w = fm.params + flava_params_find(fm.table, "vision_model.post_layernorm.weight")
                                     ->offset;
    const float *bias = fm.params +
                        flava_params_find(fm.table, "vision_model.post_layernorm.bias")->offset;
    double want[B * 24];
    for (int i = 0; i < B; i++) {
        double m = 0, v = 0;
        for (int c = 0; c < 24; c++)
            m += cls[i * 24 + c];
        m /= 24;
        for (int c = 0; c < 24; c++)
            v += (cls[i * 24 + c] - m) * (cls[i * 24 + c] - m);
        v /= 24;
        for (int c = 0; c < 24; c++)
            want[i * 24 + c] = (cls[i * 24 + c] - m) / sqrt(v + 1e-5) * w[c] + bias[c];
    }
    ck_assert_close(pooled, want, B * 24, 1e-4, 1e-5, "pooled");
    /* mean: the last block's patch rows (after the CLS row) averaged */
    float mean[B * 24];
    OK(ops->image_features(ctx, &fm, mean, px, B, FLAVA_IMAGE_MEAN));
    const flava_clip *m = fm.impl;
    const int T = (S / m->cfg.vision.patch_size) * (S / m->cfg.vision.patch_size) + 1;
    const float *last = flava_encoder_last(&m->img.enc, &m->vision_enc.spec);
    for (int i = 0; i < B; i++)
        for (int c = 0; c < 24; c++) {
            double acc = 0;
            for (int t = 1; t < T; t++)
                acc += last[((size_t)i * T + t) * 24 + c];
            want[i * 24 + c] = acc / (T - 1);
        }
    ck_assert_close(mean, want, B * 24, 1e-5, 1e-6, "mean");
    flava_ctx_destroy(ctx);
    flava_family_destroy(&fm);
}
END_TEST

/* FLAVA's probe features against HF's last_hidden_state of the image
 * model (the fixture's image_embeddings [B, 17, 32]): cls its row 0, mean
 * its 16 patch rows averaged in double. */
START_TEST(test_flava_probe_features)
{
    char p[4096];
    flava_family_model fm;
    const flava_family_ops *ops = fixture_model(&fm, FLAVA_FAMILY_FLAVA,
                                                "flava_tiny_model.safetensors");
    flava_st *in, *out;
    OK(flava_st_read(&in, fx(p, sizeof p, "flava_tiny_image_inputs.safetensors")));
    OK(flava_st_read(&out, fx(p, sizeof p, "flava_tiny_image_outputs.safetensors")));
    flava_config geometry;
    ops->input_config(&fm, &geometry);
    flava_batch b;
    OK(flava_batch_read(&b, in, &geometry));
    enum { B = 2, S = 17, C = 32 };
    ck_assert_int_eq(b.B, B);
    ck_assert_int_eq(fm.feature_dim, C);
    int64_t n;
    double *last = ref(out, "image_embeddings", &n);
    ck_assert_int_eq(n, B * S * C);
    double want_cls[B * C], want_mean[B * C];
    for (int i = 0; i < B; i++)
        for (int c = 0; c < C; c++) {
            double m = 0;
            for (int s = 1; s < S; s++)
                m += last[((size_t)i * S + s) * C + c];
            want_mean[i * C + c] = m / (S - 1);
            want_cls[i * C + c] = last[(size_t)i * S * C + c];
        }
    flava_ctx *ctx;
    OK(flava_ctx_create(&ctx, FLAVA_PRECISION_F32));
    float cls[B * C], mean[B * C];
    OK(ops->image_features(ctx, &fm, cls, b.pixel_values, B, FLAVA_IMAGE_CLS));
    OK(ops->image_features(ctx, &fm, mean, b.pixel_values, B, FLAVA_IMAGE_MEAN));
    ck_assert_close(cls, want_cls, B * C, 1e-4, 1e-5, "cls");
    ck_assert_close(mean, want_mean, B * C, 1e-4, 1e-5, "mean");
    free(last);
    flava_batch_free(&b);
    flava_st_free(in);
    flava_st_free(out);
    flava_ctx_destroy(ctx);
    flava_family_destroy(&fm);
}
END_TEST

START_TEST(test_image_specs)
{
    flava_image_spec s;
    flava_families[FLAVA_FAMILY_FLAVA]->image(&s, 224);
    ck_assert(s.resize == 224 && s.crop == 224 && !s.shorter_side &&
              s.filter == FLAVA_RESAMPLE_BICUBIC);
    ck_assert_float_eq_tol(s.mean[0], 0.48145466f, 1e-7);
    flava_families[FLAVA_FAMILY_CLIP]->image(&s, 224);
    ck_assert(s.resize == 224 && s.crop == 224 && s.shorter_side &&
              s.filter == FLAVA_RESAMPLE_BICUBIC);
    ck_assert_float_eq_tol(s.std[2], 0.27577711f, 1e-7);
    /* kakaobrain/align-base: 346 squash bilinear, crop 289, [-1, 1] */
    flava_families[FLAVA_FAMILY_ALIGN]->image(&s, 289);
    ck_assert(s.resize == 346 && s.crop == 289 && !s.shorter_side &&
              s.filter == FLAVA_RESAMPLE_BILINEAR);
    ck_assert(s.mean[1] == 0.5f && s.std[1] == 0.5f);
    ck_assert_int_eq(flava_families[FLAVA_FAMILY_CLIP]->text, FLAVA_FAMILY_TEXT_CLIP_BPE);
    ck_assert_int_eq(flava_families[FLAVA_FAMILY_ALIGN]->text, FLAVA_FAMILY_TEXT_WORDPIECE);
}
END_TEST

/* Each family's preprocessing of a real image gives what PIL and numpy
 * make by its HF processor's steps (tests/reference/family_fixtures.py). */
START_TEST(test_preprocessing_matches_pil)
{
    char p[4096];
    flava_image img;
    OK(flava_image_read(&img, fx(p, sizeof p, "image/rgb320x256.png")));
    flava_st *st;
    OK(flava_st_read(&st, fx(p, sizeof p, "family_preprocess.safetensors")));
    enum { S = 28 };
    float out[3 * S * S];
    for (int i = 0; i < FLAVA_NUM_FAMILIES; i++) {
        flava_image_spec spec;
        flava_families[i]->image(&spec, S);
        OK(flava_image_transform(out, &img, &spec));
        int64_t n;
        double *want = ref(st, flava_families[i]->name, &n);
        ck_assert_int_eq(n, 3 * S * S);
        ck_assert_close(out, want, n, 1e-5, 1e-5, flava_families[i]->name);
        free(want);
    }
    flava_image_spec bad = {20, 28, 0, FLAVA_RESAMPLE_BILINEAR, {0}, {1, 1, 1}};
    ck_assert_int_eq(flava_image_transform(out, &img, &bad), FLAVA_ERR_ARG);
    flava_st_free(st);
    flava_image_free(&img);
}
END_TEST

START_TEST(test_overrides)
{
    const char *keys[] = {"projection_dim", "text_config.hidden_act", "vision_config.strides",
                          "text_config.hidden_size", "logit_scale_init_value"};
    const char *values[] = {"16", "quick_gelu", "1, 2,2", "48", "2.5"};
    const flava_family_overrides ov = {keys, values, NULL, 5};
    char *json;
    OK(flava_family_overrides_json(&json, &ov));
    ck_assert_str_eq(json, "{\"projection_dim\":16,\"logit_scale_init_value\":2.5,"
                           "\"text_config\":{\"hidden_act\":\"quick_gelu\",\"hidden_size\":48},"
                           "\"vision_config\":{\"strides\":[1, 2,2]}}");
    cJSON *parsed = cJSON_Parse(json);
    ck_assert_ptr_nonnull(parsed);
    cJSON_Delete(parsed);
    free(json);
    /* applied: a CLIP over the fixture's config; a misspelt key refused */
    char p[4096];
    const char *k2[] = {"text_config.intermediate_size"}, *v2[] = {"40"};
    const flava_family_overrides ov2 = {k2, v2, NULL, 1};
    flava_family_model fm;
    OK(flava_family_create(&fm, flava_families[FLAVA_FAMILY_CLIP], NULL, &ov2, NULL, 0, 1));
    ck_assert_ptr_nonnull(flava_params_find(fm.table, "text_model.encoder.layers.0.mlp.fc1.bias"));
    ck_assert_int_eq(flava_params_find(fm.table, "text_model.encoder.layers.0.mlp.fc1.bias")
                         ->shape[0], 40);
    flava_family_destroy(&fm);
    const char *k3[] = {"text_config.hiden_size"}, *v3[] = {"8"};
    const flava_family_overrides ov3 = {k3, v3, NULL, 1};
    ck_assert_int_eq(flava_family_create(&fm, flava_families[FLAVA_FAMILY_ALIGN],
                                         fx(p, sizeof p, "align_tiny_model.safetensors"), &ov3,
                                         NULL, 0, 1),
                     FLAVA_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "hiden_size is not a field of the ALIGN"));
    ck_assert_ptr_null(fm.impl);
    const char *k4[] = {"a.b.c"}, *v4[] = {"1"};
    const flava_family_overrides ov4 = {k4, v4, NULL, 1};
    ck_assert_int_eq(flava_family_overrides_json(&json, &ov4), FLAVA_ERR_CONFIG);
}
END_TEST

/* The CLIP BPE through the tokenizer interface gives clip.tokenize's
 * layout (the tokenizer fixture's input_ids with HF's <|endoftext|>
 * padding), and refuses pairs. */
START_TEST(test_clip_bpe_tokenizer)
{
    char p[4096];
    flava_tokenizer *tok;
    OK(flava_tokenizer_load(&tok, fx(p, sizeof p, "clip_bpe")));
    ck_assert_int_eq(tok->kind, FLAVA_TOKENIZER_CLIP_BPE);
    ck_assert_int_eq(tok->vocab_size, 902);
    FILE *f = fopen(fx(p, sizeof p, "clip_bpe/expected.json"), "r");
    ck_assert_ptr_nonnull(f);
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    cJSON *cases = cJSON_Parse(text);
    ck_assert_ptr_nonnull(cases);
    int checked = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases)
    {
        const cJSON *ids = cJSON_GetObjectItem(c, "input_ids");
        const char *t = cJSON_GetObjectItem(c, "text")->valuestring;
        const int T = cJSON_GetArraySize(ids);
        int32_t got[FLAVA_CLIP_CONTEXT_LENGTH], types[FLAVA_CLIP_CONTEXT_LENGTH];
        float mask[FLAVA_CLIP_CONTEXT_LENGTH];
        int64_t nt;
        ck_assert_int_eq(T, FLAVA_CLIP_CONTEXT_LENGTH);
        if (flava_tokenizer_encode(got, types, mask, &nt, tok, t, NULL, T) != FLAVA_OK)
            continue; /* texts the tokenizer refuses (invalid UTF-8) are its suite's */
        ck_assert_int_eq(nt, cJSON_GetObjectItem(c, "n_tokens")->valueint);
        for (int i = 0; i < T; i++) {
            ck_assert_int_eq(got[i], cJSON_GetArrayItem(ids, i)->valueint);
            ck_assert_int_eq(types[i], 0);
            ck_assert_float_eq(mask[i], i < nt ? 1.0f : 0.0f);
        }
        checked++;
    }
    ck_assert_int_gt(checked, 3);
    cJSON_Delete(cases);
    int32_t ids[8], types[8];
    float mask[8];
    ck_assert_int_eq(flava_tokenizer_encode(ids, types, mask, NULL, tok, "a", "b", 8),
                     FLAVA_ERR_ARG);
    flava_tokenizer_free(tok);
}
END_TEST

/* ---- the shared loop on CLIP ---- */

typedef struct pairs {
    flava_batch b;
} pairs;

static flava_status pairs_seek(void *self, int64_t step)
{
    (void)self, (void)step;
    return FLAVA_OK;
}

static flava_status pairs_next(void *self, const flava_batch **b, int64_t step, int micro)
{
    (void)step, (void)micro;
    *b = &((pairs *)self)->b;
    return FLAVA_OK;
}

START_TEST(test_loop_trains_clip)
{
    char p[4096], dir[] = "/tmp/check_family.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    flava_family_model fm;
    const flava_family_ops *ops = fixture_model(&fm, FLAVA_FAMILY_CLIP,
                                                "clip_tiny_quick_gelu_model.safetensors");
    flava_st *in;
    OK(flava_st_read(&in, fx(p, sizeof p, "clip_tiny_quick_gelu_io.safetensors")));
    flava_config geometry;
    ops->input_config(&fm, &geometry);
    pairs data;
    OK(flava_batch_read(&data.b, in, &geometry));
    flava_run run = {.run_dir = dir, .seed = 3, .threads = 2};
    OK(flava_ctx_create(&run.ctx, FLAVA_PRECISION_F32));
    OK(flava_runlog_open(&run.log, dir, 0, 0));
    OK(ops->forward(run.ctx, &fm, &data.b, 0));
    const float before = fm.loss;
    const flava_train_config tc = {.steps = 15, .batch_size = data.b.B, .grad_accum = 1,
                                   .lr = 5e-3, .max_grad_norm = 1.0, .log_every = 5,
                                   .adamw = FLAVA_ADAMW_DEFAULTS};
    const flava_train_task task = {&data, pairs_seek, pairs_next, NULL};
    flava_train_result res;
    OK(flava_train(&run, &fm, &tc, &task, &res));
    OK(ops->forward(run.ctx, &fm, &data.b, 0));
    ck_assert_msg(fm.loss < 0.7f * before, "loss %g -> %g", before, fm.loss);
    ck_assert(!isnan(res.head_loss[FLAVA_HEAD_CONTRASTIVE]));
    const float s = fm.params[flava_params_find(fm.table, "logit_scale")->offset];
    ck_assert(s >= 0 && s <= (float)log(100.0) + 1e-6f);
    /* the saved final model is the trained one */
    snprintf(p, sizeof p, "%s/checkpoints/final.safetensors", dir);
    flava_family_model again;
    OK(flava_family_create(&again, ops, p, NULL, NULL, 0, 0));
    ck_assert_int_eq(memcmp(again.params, fm.params, fm.table->total * sizeof(float)), 0);
    flava_family_destroy(&again);
    flava_runlog_close(&run.log);
    flava_ctx_destroy(run.ctx);
    flava_batch_free(&data.b);
    flava_st_free(in);
    flava_family_destroy(&fm);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

static Suite *make_family_suite(void)
{
    Suite *s = suite_create("family");
    TCase *tc = tcase_create("family");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_registry);
    tcase_add_test(tc, test_clip_embeddings);
    tcase_add_test(tc, test_align_embeddings);
    tcase_add_test(tc, test_clip_clamp_and_features);
    tcase_add_test(tc, test_flava_probe_features);
    tcase_add_test(tc, test_image_specs);
    tcase_add_test(tc, test_preprocessing_matches_pil);
    tcase_add_test(tc, test_overrides);
    tcase_add_test(tc, test_clip_bpe_tokenizer);
    tcase_add_test(tc, test_loop_trains_clip);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return test_run(make_family_suite()); }

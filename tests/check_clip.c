/* check_clip.c - the CLIP family against this project's plain-torch CLIP
 * (tests/reference/make_clip_fixtures.py): embeddings, logits and loss to
 * 1e-4 relative, every parameter gradient to 1e-3, in a quick_gelu config
 * (argmax pooling) and a gelu config (first-EOS pooling); towers run alone
 * on other batch sizes; HF init rules; checkpoint round trip, HF folder, and
 * load errors (missing key, wrong shape, bad config); contrastive training
 * lowers the loss. (The quick_gelu op is tested in check_ops_family.) */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "clip.h"
#include "optim.h"
#include "safetensors.h"

static const char *fixture(char *buf, size_t n, const char *tag, const char *kind)
{
    char rel[256];
    snprintf(rel, sizeof rel, "tests/fixtures/clip_tiny_%s_%s.safetensors", tag, kind);
    return test_path(buf, n, rel);
}

#define OK(call)                                                                           \
    do {                                                                                   \
        flava_status s_ = (call);                                                          \
        ck_assert_msg(s_ == FLAVA_OK, "%s: %s (%s)", #call, flava_error_message(),         \
                      flava_error_where());                                                \
    } while (0)

static flava_clip *load(const char *tag)
{
    char p[4096];
    flava_clip *m;
    OK(flava_clip_load(&m, fixture(p, sizeof p, tag, "model"), 0, 7));
    return m;
}

/* The io file's tensor as floats (malloc'ed), with its element count. */
static float *io_f32(const flava_st *io, const char *name, int64_t *n)
{
    const flava_st_tensor *t = flava_st_find(io, name);
    ck_assert_msg(t != NULL, "fixture lacks %s", name);
    *n = flava_st_numel(t);
    float *x = malloc((size_t)*n * sizeof *x);
    ck_assert_ptr_nonnull(x);
    OK(flava_st_to_f32(x, t));
    return x;
}

/* Worst relative error (flava_rel_error) of a against the fixture's
 * `name`; `floor` absorbs values that are zero in exact arithmetic (the
 * k_proj bias gradients: softmax ignores a shift shared by all keys). */
static double rel_err(const float *a, const flava_st *io, const char *name, int64_t expect_n,
                      double floor, int64_t *at)
{
    int64_t n;
    float *ref = io_f32(io, name, &n);
    ck_assert_msg(n == expect_n, "%s: %lld elements, expected %lld", name, (long long)n,
                  (long long)expect_n);
    double e = flava_rel_error(a, ref, n, floor, at);
    free(ref);
    return e;
}

typedef struct inputs {
    int32_t *ids;
    float *mask, *pixels;
    int B, T;
} inputs;

static void read_inputs(inputs *in, const flava_st *io)
{
    const flava_st_tensor *t = flava_st_find(io, "input_ids");
    ck_assert_ptr_nonnull(t);
    in->B = (int)t->shape[0];
    in->T = (int)t->shape[1];
    in->ids = malloc((size_t)in->B * in->T * sizeof *in->ids);
    ck_assert_ptr_nonnull(in->ids);
    OK(flava_st_to_i32(in->ids, t));
    int32_t *mask = malloc((size_t)in->B * in->T * sizeof *mask);
    in->mask = malloc((size_t)in->B * in->T * sizeof *in->mask);
    ck_assert(mask && in->mask);
    OK(flava_st_to_i32(mask, flava_st_find(io, "attention_mask")));
    for (int i = 0; i < in->B * in->T; i++)
        in->mask[i] = (float)mask[i];
    free(mask);
    int64_t n;
    in->pixels = io_f32(io, "pixel_values", &n);
}

static void free_inputs(inputs *in)
{
    free(in->ids);
    free(in->mask);
    free(in->pixels);
}

/* Forward and backward against the fixture; prints the worst errors. */
static void check_parity(const char *tag)
{
    char p[4096];
    flava_ctx *ctx;
    OK(flava_ctx_create(&ctx, FLAVA_PRECISION_F32));
    flava_clip *m = load(tag);
    flava_st *io;
    OK(flava_st_read(&io, fixture(p, sizeof p, tag, "io")));
    inputs in;
    read_inputs(&in, io);
    const int B = in.B, D = m->cfg.projection_dim;

    OK(flava_clip_alloc_grads(m));
    OK(flava_clip_forward(ctx, m, in.pixels, in.ids, in.mask, B, in.T));
    const struct {
        const char *name;
        const float *data;
        int64_t n;
    } outs[] = {
        {"text_embeds", m->txt.embeds, (int64_t)B * D},
        {"image_embeds", m->img.embeds, (int64_t)B * D},
        {"logits_per_image", m->logits_per_image, (int64_t)B * B},
        {"logits_per_text", m->logits_per_text, (int64_t)B * B},
        {"loss", &m->loss, 1},
    };
    double worst_out = 0;
    for (size_t k = 0; k < sizeof outs / sizeof outs[0]; k++) {
        int64_t at;
        double e = rel_err(outs[k].data, io, outs[k].name, outs[k].n, 1e-6, &at);
        ck_assert_msg(e <= 1e-4, "%s %s: element %lld off by %.3g relative", tag, outs[k].name,
                      (long long)at, e);
        worst_out = e > worst_out ? e : worst_out;
    }

    OK(flava_clip_backward(ctx, m, 1.0f));
    double worst_grad = 0;
    const char *worst_name = "";
    int ngrads = 0;
    for (int i = 0; i < flava_st_count(io); i++)
        ngrads += !strncmp(flava_st_get(io, i)->name, "grad.", 5);
    ck_assert_int_eq(ngrads, m->table.n); /* one gradient per parameter, no more */
    for (int i = 0; i < m->table.n; i++) {
        const flava_param *prm = &m->table.p[i];
        char name[FLAVA_PARAM_NAME_MAX + 8];
        snprintf(name, sizeof name, "grad.%s", prm->name);
        int64_t at;
        double e = rel_err(m->grads + prm->offset, io, name, (int64_t)prm->numel, 1e-4, &at);
        ck_assert_msg(e <= 1e-3, "%s %s: element %lld off by %.3g relative", tag, name,
                      (long long)at, e);
        if (e > worst_grad) {
            worst_grad = e;
            worst_name = prm->name;
        }
    }
    printf("clip %s: worst output error %.2e, worst gradient error %.2e (%s)\n", tag, worst_out,
           worst_grad, worst_name);

    /* the towers alone, on other batch sizes, give the same rows */
    float emb[4 * 64];
    ck_assert_int_le(B * D, 4 * 64);
    OK(flava_clip_encode_text(ctx, m, emb, in.ids + in.T, in.mask + in.T, B - 1, in.T));
    int64_t at;
    float *ref;
    int64_t n;
    ref = io_f32(io, "text_embeds", &n);
    ck_assert_msg(flava_rel_error(emb, ref + D, (int64_t)(B - 1) * D, 1e-6, &at) <= 1e-4,
                  "text tower on rows 1..%d", B - 1);
    free(ref);
    OK(flava_clip_encode_image(ctx, m, emb, in.pixels, 2));
    ref = io_f32(io, "image_embeds", &n);
    ck_assert_msg(flava_rel_error(emb, ref, 2 * (int64_t)D, 1e-6, &at) <= 1e-4,
                  "image tower on rows 0..1");
    free(ref);
    /* a backward that does not follow a paired forward is refused */
    ck_assert_int_eq(flava_clip_backward(ctx, m, 1.0f), FLAVA_ERR_ARG);

    free_inputs(&in);
    flava_st_free(io);
    flava_clip_destroy(m);
    flava_ctx_destroy(ctx);
}

START_TEST(test_parity_quick_gelu) { check_parity("quick_gelu"); }
END_TEST

START_TEST(test_parity_gelu) { check_parity("gelu"); }
END_TEST

/* Each tensor's initial values follow the HF rule the reference states
 * (io metadata "init"): constants exactly, normals with the rule's std
 * (within sampling error) and mean 0. Same seed, same values. */
START_TEST(test_init_rules)
{
    char p[4096];
    flava_clip *m = load("quick_gelu");
    flava_st *io;
    OK(flava_st_read(&io, fixture(p, sizeof p, "quick_gelu", "io")));
    cJSON *rules = cJSON_Parse(flava_st_meta(io, "init"));
    ck_assert_ptr_nonnull(rules);
    flava_clip_init_weights(m, 11);
    for (int i = 0; i < m->table.n; i++) {
        const flava_param *prm = &m->table.p[i];
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(rules, prm->name);
        ck_assert_msg(cJSON_GetArraySize(r) == 2, "no init rule for %s", prm->name);
        const char *kind = cJSON_GetArrayItem(r, 0)->valuestring;
        const double v = cJSON_GetArrayItem(r, 1)->valuedouble;
        const float *x = m->params + prm->offset;
        if (!strcmp(kind, "const")) {
            for (size_t k = 0; k < prm->numel; k++)
                ck_assert_msg(x[k] == (float)v, "%s[%zu] = %g, expected %g", prm->name, k,
                              (double)x[k], v);
            continue;
        }
        double s1 = 0, s2 = 0;
        for (size_t k = 0; k < prm->numel; k++) {
            s1 += x[k];
            s2 += (double)x[k] * x[k];
        }
        const double n = (double)prm->numel, sd = sqrt(s2 / n);
        /* 5 sigma of the sample std's and mean's sampling errors */
        ck_assert_msg(fabs(sd / v - 1) < 5 / sqrt(2 * n), "%s: std %g, expected %g",
                      prm->name, sd, v);
        ck_assert_msg(fabs(s1 / n) < 5 * v / sqrt(n), "%s: mean %g", prm->name, s1 / n);
    }
    float first = m->params[m->table.p[0].offset];
    flava_clip_init_weights(m, 11);
    ck_assert(first == m->params[m->table.p[0].offset]);
    flava_clip_init_weights(m, 12);
    ck_assert(first != m->params[m->table.p[0].offset]);
    cJSON_Delete(rules);
    flava_st_free(io);
    flava_clip_destroy(m);
}
END_TEST

static void tmp_name(char *buf, size_t n, const char *what)
{
    const char *dir = getenv("FLAVA_BUILDDIR");
    snprintf(buf, n, "%s/check_clip_%s_%ld", dir ? dir : ".", what, (long)getpid());
}

/* Saved, loaded back: same config, same parameters, bit for bit; an HF
 * folder (config.json + model.safetensors) loads too. */
START_TEST(test_checkpoint_round_trip)
{
    flava_clip *m = load("gelu"), *back;
    char path[4096], dir[4096], file[4200];
    tmp_name(path, sizeof path, "save.safetensors");
    OK(flava_clip_save(m, path));
    OK(flava_clip_load(&back, path, 0, 99));
    ck_assert_int_eq(memcmp(&back->cfg, &m->cfg, sizeof m->cfg), 0);
    ck_assert_uint_eq(back->table.total, m->table.total);
    ck_assert_int_eq(memcmp(back->params, m->params, m->table.total * sizeof(float)), 0);
    flava_clip_destroy(back);

    tmp_name(dir, sizeof dir, "hf");
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    snprintf(file, sizeof file, "%s/model.safetensors", dir);
    ck_assert_int_eq(rename(path, file), 0);
    char *json;
    OK(flava_clip_config_to_json(&json, &m->cfg));
    snprintf(file, sizeof file, "%s/config.json", dir);
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fputs(json, f);
    fclose(f);
    free(json);
    OK(flava_clip_load(&back, dir, 0, 99));
    ck_assert_int_eq(memcmp(back->params, m->params, m->table.total * sizeof(float)), 0);
    flava_clip_destroy(back);
    unlink(file);
    snprintf(file, sizeof file, "%s/model.safetensors", dir);
    unlink(file);
    rmdir(dir);
    flava_clip_destroy(m);
}
END_TEST

/* A copy of the quick_gelu model without `drop`, with `reshape` given the
 * wrong shape, and with the given config JSON (NULL = the original). */
static void write_variant(const char *out, const char *drop, const char *reshape,
                          const char *config)
{
    char p[4096];
    flava_st *st;
    OK(flava_st_read(&st, fixture(p, sizeof p, "quick_gelu", "model")));
    int n = flava_st_count(st), k = 0;
    flava_st_tensor *t = calloc((size_t)n, sizeof *t);
    ck_assert_ptr_nonnull(t);
    for (int i = 0; i < n; i++) {
        const flava_st_tensor *s = flava_st_get(st, i);
        if (drop && !strcmp(s->name, drop))
            continue;
        t[k] = *s;
        if (reshape && !strcmp(s->name, reshape)) { /* same bytes, other shape */
            t[k].ndim = 2;
            t[k].shape[0] = 1;
            t[k].shape[1] = flava_st_numel(s);
        }
        k++;
    }
    flava_st_kv meta = {"config", config ? config : flava_st_meta(st, "config")};
    OK(flava_st_write(out, t, k, &meta, 1));
    free(t);
    flava_st_free(st);
}

static void expect_load_error(const char *path, flava_status code, const char *needle)
{
    flava_clip *m = (flava_clip *)1;
    flava_status s = flava_clip_load(&m, path, 0, 1);
    ck_assert_int_eq(s, code);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(flava_error_message(), needle), "error '%s' does not name '%s'",
                  flava_error_message(), needle);
}

START_TEST(test_load_errors)
{
    char path[4096];
    tmp_name(path, sizeof path, "bad.safetensors");
    const char *key = "vision_model.encoder.layers.1.self_attn.k_proj.bias";
    write_variant(path, key, NULL, NULL);
    expect_load_error(path, FLAVA_ERR_FORMAT, key);
    /* the same file loads partially; the key keeps its initial zeros */
    flava_clip *m;
    OK(flava_clip_load(&m, path, 1, 1));
    float *b = flava_clip_param(m, key, NULL);
    ck_assert(b && b[0] == 0.0f);
    flava_clip_destroy(m);

    write_variant(path, NULL, "text_projection.weight", NULL);
    expect_load_error(path, FLAVA_ERR_SHAPE, "text_projection.weight");

    write_variant(path, NULL, NULL,
                  "{\"model_type\":\"clip\",\"text_config\":{\"hidden_size\":32,"
                  "\"hidden_act\":\"swish\"}}");
    expect_load_error(path, FLAVA_ERR_CONFIG, "swish");
    write_variant(path, NULL, NULL, "{\"vision_config\":{\"patch_size\":4.5}}");
    expect_load_error(path, FLAVA_ERR_CONFIG, "vision_config.patch_size");
    write_variant(path, NULL, NULL, "{\"model_type\":\"flava\"}");
    expect_load_error(path, FLAVA_ERR_CONFIG, "flava");
    unlink(path);
    expect_load_error(path, FLAVA_ERR_IO, path);
}
END_TEST

/* Contrastive training end to end: AdamW over the one parameter block
 * (flat, as a task drives it) lowers the loss on the fixture batch. */
START_TEST(test_training_lowers_loss)
{
    char p[4096];
    flava_ctx *ctx;
    OK(flava_ctx_create(&ctx, FLAVA_PRECISION_F32));
    flava_clip *m = load("quick_gelu");
    flava_st *io;
    OK(flava_st_read(&io, fixture(p, sizeof p, "quick_gelu", "io")));
    inputs in;
    read_inputs(&in, io);
    OK(flava_clip_alloc_grads(m));
    const size_t n = m->table.total;
    float *mom = calloc(2 * n, sizeof *mom);
    ck_assert_ptr_nonnull(mom);
    flava_adamw_config cfg = FLAVA_ADAMW_DEFAULTS;
    cfg.weight_decay = 0;
    float first = 0;
    for (int step = 1; step <= 15; step++) {
        memset(m->grads, 0, n * sizeof *m->grads);
        OK(flava_clip_forward(ctx, m, in.pixels, in.ids, in.mask, in.B, in.T));
        if (step == 1)
            first = m->loss;
        OK(flava_clip_backward(ctx, m, 1.0f));
        OK(flava_adamw_step(m->params, mom, mom + n, m->grads, NULL, 0, (int64_t)n, 3e-3, step,
                            &cfg));
    }
    OK(flava_clip_forward(ctx, m, in.pixels, in.ids, in.mask, in.B, in.T));
    printf("clip training: loss %.4f -> %.4f after 15 AdamW steps\n", (double)first,
           (double)m->loss);
    ck_assert_msg(m->loss < 0.5f * first, "loss %g -> %g", (double)first, (double)m->loss);
    free(mom);
    free_inputs(&in);
    flava_st_free(io);
    flava_clip_destroy(m);
    flava_ctx_destroy(ctx);
}
END_TEST

/* HF defaults; `*_config` then the legacy `*_config_dict` overrides; null
 * values and absent sections keep the defaults; JSON out and in again. */
START_TEST(test_config_json)
{
    flava_clip_config c, d;
    flava_clip_config_default(&c);
    ck_assert_int_eq(c.text.enc.hidden_size, 512);
    ck_assert_int_eq(c.vision.enc.hidden_size, 768);
    ck_assert_int_eq(c.vision.patch_size, 32);
    ck_assert_int_eq(c.text.eos_token_id, 49407);
    ck_assert_str_eq(c.vision.enc.hidden_act, "quick_gelu");
    OK(flava_clip_config_from_json(&c,
                                   "{\"model_type\":\"clip\",\"projection_dim\":64,"
                                   "\"text_config\":{\"hidden_size\":64,\"num_attention_heads\":8,"
                                   "\"eos_token_id\":2,\"hidden_act\":null},"
                                   "\"text_config_dict\":{\"hidden_size\":128},"
                                   "\"vision_config\":null,\"vision_config_dict\":null}",
                                   "test"));
    ck_assert_int_eq(c.text.enc.hidden_size, 128);
    ck_assert_int_eq(c.text.enc.num_attention_heads, 8);
    ck_assert_int_eq(c.text.eos_token_id, 2);
    ck_assert_int_eq(c.projection_dim, 64);
    ck_assert_str_eq(c.text.enc.hidden_act, "quick_gelu");
    ck_assert_int_eq(c.vision.enc.num_hidden_layers, 12);
    char *json;
    OK(flava_clip_config_to_json(&json, &c));
    flava_clip_config_default(&d);
    OK(flava_clip_config_from_json(&d, json, "round trip"));
    free(json);
    ck_assert_int_eq(memcmp(&c, &d, sizeof c), 0);
    ck_assert_int_eq(flava_clip_config_from_json(&d, "[1]", "array"), FLAVA_ERR_CONFIG);
    ck_assert_int_eq(flava_clip_config_from_json(&d, "{\"text_config\":{\"hidden_size\":30}}",
                                                 "heads"),
                     FLAVA_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "num_attention_heads"));
}
END_TEST

/* Bad inputs are refused with the position or size named. */
START_TEST(test_input_errors)
{
    flava_ctx *ctx;
    OK(flava_ctx_create(&ctx, FLAVA_PRECISION_F32));
    flava_clip *m = load("gelu");
    int32_t ids[13] = {48, 3, 4, 50, 49};
    ck_assert_int_eq(flava_clip_encode_text(ctx, m, NULL, ids, NULL, 1, 5), FLAVA_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "50"));
    ck_assert_int_eq(flava_clip_encode_text(ctx, m, NULL, ids, NULL, 1, 13), FLAVA_ERR_SHAPE);
    ck_assert_int_eq(flava_clip_encode_image(ctx, m, NULL, NULL, 1), FLAVA_ERR_ARG);
    flava_clip_destroy(m);
    flava_ctx_destroy(ctx);
}
END_TEST

static Suite *make_clip_suite(void)
{
    Suite *s = suite_create("clip");
    TCase *tc = tcase_create("clip");
    tcase_add_test(tc, test_parity_quick_gelu);
    tcase_add_test(tc, test_parity_gelu);
    tcase_add_test(tc, test_training_lowers_loss);
    tcase_add_test(tc, test_init_rules);
    tcase_add_test(tc, test_config_json);
    tcase_add_test(tc, test_checkpoint_round_trip);
    tcase_add_test(tc, test_load_errors);
    tcase_add_test(tc, test_input_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return test_run(make_clip_suite()); }

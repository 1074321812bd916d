/* check_train.c - the run framework: config templates ([data.*] sections,
 * the open [model] section), results.json, and the training loop on a
 * tiny MLM model (gradient accumulation, schedule, evaluation and
 * checkpoint cadence, Ctrl-C, non-finite losses). */
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoint.h"
#include "task.h"
#include "testutil.h"
#include "train.h"

static char tmpdir[256];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/check_train.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* ---- config templates ---- */

static const flava_cfg_key tkeys[] = {
    {"run", "task", FLAVA_CFG_STRING, "x", "task"},
    {"model", "*", FLAVA_CFG_STRING, NULL, "HF names"},
    {"data.*", "kind", FLAVA_CFG_STRING, NULL, "kind"},
    {"data.*", "weight", FLAVA_CFG_FLOAT, "1", "weight"},
};

START_TEST(test_cfg_templates)
{
    make_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/t.cfg", tmpdir);
    FILE *f = fopen(path, "w");
    fputs("[model]\ntext_config.hidden_size = 64\nhidden_size = 32\n"
          "[data.b]\nkind = text\n[data.a]\nkind = idx\nweight = 0.5\n", f);
    fclose(f);
    flava_cfg *c;
    ck_assert_int_eq(flava_cfg_create(&c), FLAVA_OK);
    ck_assert_int_eq(flava_cfg_register(c, tkeys, 4), FLAVA_OK);
    ck_assert_int_eq(flava_cfg_register_shared(c, tkeys, 4), FLAVA_OK); /* shared: no error */
    ck_assert_int_eq(flava_cfg_register(c, tkeys, 1), FLAVA_ERR_ARG);  /* still refused */
    ck_assert_int_eq(flava_cfg_load(c, path), FLAVA_OK);
    ck_assert_int_eq(flava_cfg_set(c, "model.text_config.num_hidden_layers=3"), FLAVA_OK);
    ck_assert_int_eq(flava_cfg_set(c, "data.c.kind=imagetext"), FLAVA_OK);
    const char *names[4];
    ck_assert_int_eq(flava_cfg_sections(c, "data.*", names, 4), 3);
    ck_assert_str_eq(names[0], "data.b");
    ck_assert_str_eq(names[1], "data.a");
    ck_assert_str_eq(names[2], "data.c");
    double w;
    const char *s;
    ck_assert_int_eq(flava_cfg_get_float(c, "data.a", "weight", &w), FLAVA_OK);
    ck_assert_double_eq(w, 0.5);
    ck_assert_int_eq(flava_cfg_get_float(c, "data.b", "weight", &w), FLAVA_OK);
    ck_assert_double_eq(w, 1.0); /* the template's default */
    ck_assert_int_eq(flava_cfg_get_string(c, "data.c", "kind", &s), FLAVA_OK);
    ck_assert_str_eq(s, "imagetext");
    const char *keys[4], *values[4], *wheres[4];
    ck_assert_int_eq(flava_cfg_open_keys(c, "model", keys, values, wheres, 4), 3);
    ck_assert_str_eq(keys[0], "text_config.hidden_size");
    ck_assert_str_eq(values[0], "64");
    ck_assert_ptr_nonnull(strstr(wheres[0], "t.cfg:2"));
    ck_assert_str_eq(keys[2], "text_config.num_hidden_layers");
    ck_assert_str_eq(wheres[2], "-s");
    /* a typo in an instance names the nearest key; dots only in open sections */
    ck_assert_int_eq(flava_cfg_set(c, "data.a.wieght=2"), FLAVA_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "nearest known key: data.a.weight"));
    ck_assert_int_eq(flava_cfg_set(c, "dat.a.kind=x"), FLAVA_ERR_CONFIG);
    /* the written config loads back, without the templates */
    char out[512];
    snprintf(out, sizeof out, "%s/out.ini", tmpdir);
    ck_assert_int_eq(flava_cfg_write(c, out), FLAVA_OK);
    const char *text = slurp(out);
    ck_assert_ptr_null(strstr(text, "*"));
    ck_assert_ptr_nonnull(strstr(text, "[data.c]\nkind = imagetext\nweight = 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "text_config.num_hidden_layers = 3"));
    flava_cfg *c2;
    ck_assert_int_eq(flava_cfg_create(&c2), FLAVA_OK);
    ck_assert_int_eq(flava_cfg_register(c2, tkeys, 4), FLAVA_OK);
    ck_assert_int_eq(flava_cfg_load(c2, out), FLAVA_OK);
    ck_assert_int_eq(flava_cfg_sections(c2, "data.*", names, 4), 3);
    ck_assert_int_eq(flava_cfg_open_keys(c2, "model", keys, values, wheres, 4), 3);
    flava_cfg_free(c2);
    char *json;
    ck_assert_int_eq(flava_cfg_to_json(c, &json), FLAVA_OK);
    ck_assert_ptr_nonnull(strstr(json, "\"data.a\":{\"kind\":\"idx\",\"weight\":0.5}"));
    ck_assert_ptr_null(strstr(json, "*"));
    free(json);
    flava_cfg_free(c);
    remove_tmpdir();
}
END_TEST

START_TEST(test_results_json)
{
    make_tmpdir();
    const char *names[] = {"accuracy", "loss"};
    const double values[] = {0.875, 0.25};
    ck_assert_int_eq(flava_results_write(tmpdir, "eval", "linprobe", "fmnist", "accuracy", names,
                                         values, 2, 1.5), FLAVA_OK);
    char path[512];
    snprintf(path, sizeof path, "%s/results.json", tmpdir);
    cJSON *j = cJSON_Parse(slurp(path));
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "command")->valuestring, "eval");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "task")->valuestring, "linprobe");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "dataset")->valuestring, "fmnist");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "metric")->valuestring, "accuracy");
    ck_assert_double_eq(cJSON_GetObjectItem(j, "value")->valuedouble, 0.875);
    ck_assert_double_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "metrics"), "loss")->valuedouble,
                        0.25);
    ck_assert_double_eq(cJSON_GetObjectItem(j, "wall_seconds")->valuedouble, 1.5);
    cJSON_Delete(j);
    ck_assert_int_eq(flava_results_write(tmpdir, "eval", "x", "d", "f1", names, values, 2, 0),
                     FLAVA_ERR_ARG);
    ck_assert_int_eq(flava_results_write("/nonexistent/dir", "eval", "x", "d", "loss", names,
                                         values, 2, 0), FLAVA_ERR_IO);
    remove_tmpdir();
}
END_TEST

/* ---- the loop on a tiny MLM model ---- */

enum { B = 4, T = 8, V = 40 };

typedef struct fake {
    flava_batch b;
    int32_t ids[B * T], masked[B * T], labels[B * T], types[B * T];
    float amask[B * T];
    int64_t seek_step, nexts, evals, eval_steps[8];
    int64_t interrupt_at; /* raise SIGINT while giving this step's batch (-1: never) */
} fake;

static flava_status fake_seek(void *self, int64_t step)
{
    ((fake *)self)->seek_step = step;
    return FLAVA_OK;
}

/* The same batch every micro-batch of a step; another one each step. */
static flava_status fake_next(void *self, const flava_batch **b, int64_t step, int micro)
{
    fake *f = self;
    (void)micro;
    f->nexts++;
    if (step == f->interrupt_at)
        raise(SIGINT);
    for (int i = 0; i < B * T; i++) {
        f->ids[i] = 5 + (int32_t)((i * 7 + step * 3) % (V - 5));
        int pick = (i + step) % 3 == 0;
        f->masked[i] = pick ? 4 : f->ids[i];
        f->labels[i] = pick ? f->ids[i] : -100;
        f->amask[i] = 1;
        f->types[i] = 0;
    }
    f->b = (flava_batch){.B = B, .T = T, .input_ids = f->ids, .input_ids_masked = f->masked,
                         .mlm_labels = f->labels, .attention_mask = f->amask,
                         .token_type_ids = f->types};
    *b = &f->b;
    return FLAVA_OK;
}

static flava_status fake_eval(void *self, flava_model *m, int64_t step, const char **names,
                              double *values, int *n)
{
    fake *f = self;
    (void)m;
    f->eval_steps[f->evals++ % 8] = step;
    names[0] = "eval.step";
    values[0] = (double)step;
    *n = 1;
    return FLAVA_OK;
}

static flava_model *tiny_model(void)
{
    flava_config c;
    flava_config_default(&c);
    const char *set[][2] = {
        {"hidden_size", "16"}, {"projection_dim", "16"}, {"text_config.vocab_size", "40"},
        {"text_config.hidden_size", "16"}, {"text_config.num_hidden_layers", "1"},
        {"text_config.num_attention_heads", "2"}, {"text_config.intermediate_size", "32"},
        {"text_config.max_position_embeddings", "8"}, {"image_config.hidden_size", "16"},
        {"image_config.num_hidden_layers", "1"}, {"image_config.num_attention_heads", "2"},
        {"image_config.intermediate_size", "32"}, {"image_config.image_size", "8"},
        {"image_config.patch_size", "4"}, {"image_config.vocab_size", "8"},
        {"multimodal_config.hidden_size", "16"}, {"multimodal_config.num_hidden_layers", "1"},
        {"multimodal_config.num_attention_heads", "2"},
        {"multimodal_config.intermediate_size", "32"},
    };
    for (size_t i = 0; i < sizeof set / sizeof *set; i++)
        ck_assert_int_eq(flava_config_set(&c, set[i][0], set[i][1]), FLAVA_OK);
    flava_head_set hs = {0};
    hs.enabled[FLAVA_HEAD_MLM] = 1;
    hs.weight[FLAVA_HEAD_MLM] = 1;
    flava_model *m;
    ck_assert_int_eq(flava_model_create(&m, &c, &hs), FLAVA_OK);
    flava_model_init_weights(m, 3);
    return m;
}

static flava_train_config tiny_train(int64_t steps, int accum)
{
    return (flava_train_config){.steps = steps, .batch_size = B, .grad_accum = accum, .lr = 1e-2,
                                .min_lr = 1e-4, .max_grad_norm = 1.0, .warmup_steps = 2,
                                .log_every = 1, .adamw = FLAVA_ADAMW_DEFAULTS};
}

/* Trains a fresh tiny model in its own run directory under tmpdir. */
static flava_status train_in(const char *name, flava_model **m, fake *f,
                             const flava_train_config *tc, flava_train_result *res, int resume)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", tmpdir, name);
    flava_run run = {.run_dir = dir, .seed = 9, .threads = 2, .resume = resume};
    ck_assert_int_eq(flava_ctx_create(&run.ctx, FLAVA_PRECISION_F32), FLAVA_OK);
    ck_assert_int_eq(flava_runlog_open(&run.log, dir, 0, 0), FLAVA_OK);
    if (!*m)
        *m = tiny_model();
    const flava_train_task task = {f, fake_seek, fake_next, fake_eval};
    flava_status s = flava_train(&run, *m, tc, &task, res);
    flava_runlog_close(&run.log);
    flava_ctx_destroy(run.ctx);
    return s;
}

START_TEST(test_loop_accumulation_schedule)
{
    make_tmpdir();
    flava_model *a = NULL, *b = NULL;
    fake fa = {.interrupt_at = -1}, fb = {.interrupt_at = -1};
    flava_train_result ra, rb;
    flava_train_config ta = tiny_train(5, 1), tb = tiny_train(5, 2);
    ta.eval_every = 2;
    tb.eval_every = 2;
    ta.save_every = 2;
    ck_assert_int_eq(train_in("a", &a, &fa, &ta, &ra, 0), FLAVA_OK);
    ck_assert_int_eq(train_in("b", &b, &fb, &tb, &rb, 0), FLAVA_OK);
    /* two equal micro-batches averaged are the one batch (up to the
     * order of the gradient sums) */
    ck_assert_int_eq(fa.nexts, 5);
    ck_assert_int_eq(fb.nexts, 10);
    double worst = 0;
    for (size_t i = 0; i < a->table.total; i++)
        worst = fmax(worst, fabs((double)a->params[i] - b->params[i]));
    ck_assert_double_le(worst, 1e-5);
    ck_assert_double_eq_tol(ra.loss, rb.loss, 1e-5);
    /* and the loop did train: the parameters moved */
    flava_model *init = tiny_model();
    double moved = 0;
    for (size_t i = 0; i < a->table.total; i++)
        moved = fmax(moved, fabs((double)a->params[i] - init->params[i]));
    ck_assert_double_gt(moved, 1e-3);
    flava_model_destroy(init);
    ck_assert(!isnan(ra.head_loss[FLAVA_HEAD_MLM]) && isnan(ra.head_loss[FLAVA_HEAD_MIM]));
    /* evaluation at 2, 4 and the end; checkpoints at 2, 4 and the end */
    ck_assert_int_eq(fa.evals, 3);
    ck_assert_int_eq(fa.eval_steps[0], 2);
    ck_assert_int_eq(fa.eval_steps[1], 4);
    ck_assert_int_eq(fa.eval_steps[2], 5);
    int64_t latest;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/a", tmpdir);
    ck_assert_int_eq(flava_train_latest(dir, &latest), FLAVA_OK);
    ck_assert_int_eq(latest, 5);
    char path[600];
    struct stat st;
    snprintf(path, sizeof path, "%s/a/checkpoints/step-2.optim.safetensors", tmpdir);
    ck_assert_int_eq(stat(path, &st), 0);
    snprintf(path, sizeof path, "%s/a/checkpoints/step-3.safetensors", tmpdir);
    ck_assert_int_ne(stat(path, &st), 0);
    /* metrics: the lr of each step is the cosine schedule's */
    snprintf(path, sizeof path, "%s/a/metrics.jsonl", tmpdir);
    const char *text = slurp(path);
    int lines = 0;
    for (const char *p = text; (p = strstr(p, "\"lr\": ")); p++, lines++) {
        double lr = strtod(p + 6, NULL);
        ck_assert_double_eq_tol(lr, flava_lr_cosine(lines, 2, 5, 1e-2, 1e-4), 1e-9);
    }
    ck_assert_int_eq(lines, 5);
    ck_assert_ptr_nonnull(strstr(text, "\"step\": 4, \"eval.step\": 4"));
    ck_assert_ptr_nonnull(strstr(text, "\"loss_info.mlm\": "));
    /* the saved final model is the trained one */
    snprintf(path, sizeof path, "%s/a/checkpoints/final.safetensors", tmpdir);
    flava_model *c = tiny_model();
    ck_assert_int_eq(flava_checkpoint_load_weights(c, path, 0), FLAVA_OK);
    ck_assert_int_eq(memcmp(a->params, c->params, a->table.total * sizeof(float)), 0);
    flava_model_destroy(a);
    flava_model_destroy(b);
    flava_model_destroy(c);
    remove_tmpdir();
}
END_TEST

START_TEST(test_loop_interrupt_resume)
{
    make_tmpdir();
    flava_model *a = NULL, *b = NULL;
    fake fa = {.interrupt_at = -1}, fb = {.interrupt_at = 2};
    flava_train_result r;
    flava_train_config tc = tiny_train(6, 1);
    /* Ctrl-C during step 3 (0-based 2): that step finishes, is saved, and
     * the loop stops with FLAVA_ERR_INTERRUPTED. In a child, as the flag
     * stays set for the rest of a process; forked first, as OpenMP does
     * not survive a fork. */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        flava_status s = train_in("split", &b, &fb, &tc, &r, 0);
        _exit(s == FLAVA_ERR_INTERRUPTED && strstr(flava_error_message(), "after step 3") ? 0 : 1);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    fb.interrupt_at = -1;
    ck_assert_int_eq(train_in("straight", &a, &fa, &tc, &r, 0), FLAVA_OK);
    ck_assert_int_eq(train_in("split", &b, &fb, &tc, &r, 1), FLAVA_OK);
    ck_assert_int_eq(fb.seek_step, 3);
    ck_assert_int_eq(memcmp(a->params, b->params, a->table.total * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(a->exp_avg_sq, b->exp_avg_sq, a->table.total * sizeof(float)), 0);
    flava_model_destroy(a);
    flava_model_destroy(b);
    remove_tmpdir();
}
END_TEST

START_TEST(test_loop_nonfinite)
{
    make_tmpdir();
    flava_model *m = tiny_model();
    float *w = flava_model_param(m, "flava.text_model.embeddings.word_embeddings.weight", NULL);
    ck_assert_ptr_nonnull(w);
    for (int i = 0; i < 40 * 16; i++)
        w[i] = INFINITY;
    fake f = {.interrupt_at = -1};
    flava_train_result r;
    flava_train_config tc = tiny_train(3, 1);
    ck_assert_int_eq(train_in("nan", &m, &f, &tc, &r, 0), FLAVA_ERR_NUMERIC);
    const char *msg = flava_error_message();
    ck_assert_ptr_nonnull(strstr(msg, "step 1: the loss is"));
    ck_assert_ptr_nonnull(strstr(msg, "(mlm = "));
    flava_model_destroy(m);
    /* nothing to resume from */
    m = NULL;
    ck_assert_int_eq(train_in("empty", &m, &f, &tc, &r, 1), FLAVA_ERR_IO);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "no checkpoint to resume from"));
    flava_model_destroy(m);
    remove_tmpdir();
}
END_TEST

Suite *make_train_suite(void);
Suite *make_train_suite(void)
{
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("train");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_cfg_templates);
    tcase_add_test(tc, test_results_json);
    tcase_add_test(tc, test_loop_accumulation_schedule);
    tcase_add_test(tc, test_loop_interrupt_resume);
    tcase_add_test(tc, test_loop_nonfinite);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(make_train_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

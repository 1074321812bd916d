/* check_sweep.c - sweep files: grid expansion, run names, config errors,
 * results.json, and the tables. */
#include <cjson/cJSON.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "sweep.h"

static char dir[256];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void write_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/check_sweep.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    write_file("a.cfg", "[eval]\n");
    write_file("b.cfg", "[train]\n");
}

static void teardown(void) { nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* Loads `text` as s.cfg in the test folder. */
static flava_status load_text(flava_sweep **s, const char *text, const char *const *ov, int nov)
{
    char path[512];
    write_file("s.cfg", text);
    snprintf(path, sizeof path, "%s/s.cfg", dir);
    return flava_sweep_load(s, path, ov, nov);
}

/* The load fails with FLAVA_ERR_CONFIG and a message holding each of want[]. */
static void expect_error(const char *text, const char *const *ov, int nov, const char *want1,
                         const char *want2)
{
    flava_sweep *s = NULL;
    flava_status st = load_text(&s, text, ov, nov);
    ck_assert_msg(st == FLAVA_ERR_CONFIG, "expected a config error for:\n%s\ngot %d (%s)", text, st,
                  flava_error_message());
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(flava_error_message(), want1), "'%s' not in: %s", want1, flava_error_message());
    if (want2)
        ck_assert_msg(strstr(flava_error_message(), want2), "'%s' not in: %s", want2,
                      flava_error_message());
}

static void expect_sets(const flava_sweep_run *r, const char *const *want, int n)
{
    ck_assert_int_eq(r->nsets, n);
    for (int i = 0; i < n; i++)
        ck_assert_str_eq(r->sets[i], want[i]);
}

START_TEST(test_grid_expansion)
{
    flava_sweep *s;
    ck_assert_int_eq(load_text(&s,
                               "[run.zs]\ncommand = eval\nconfig = a.cfg\n"
                               "[grid.g]\ncommand = finetune\nconfig = b.cfg\n"
                               "set = data.batch=8\nresume = yes\n"
                               "vary = optim.lr = 1e-4 | 3e-4, train.seed=0|1|2\n",
                               NULL, 0),
                     FLAVA_OK);
    ck_assert_int_eq(s->nruns, 7);
    /* the first axis varies slowest, in the file's order */
    static const char *const names[] = {"zs", "g-lr=1e-4-seed=0", "g-lr=1e-4-seed=1",
                                        "g-lr=1e-4-seed=2", "g-lr=3e-4-seed=0", "g-lr=3e-4-seed=1",
                                        "g-lr=3e-4-seed=2"};
    for (int i = 0; i < 7; i++)
        ck_assert_str_eq(s->runs[i].name, names[i]);
    expect_sets(&s->runs[0], NULL, 0);
    ck_assert(!s->runs[0].resume);
    ck_assert(s->runs[1].resume);
    ck_assert_str_eq(s->runs[5].command, "finetune");
    expect_sets(&s->runs[5], (const char *const[]){"data.batch=8", "optim.lr=3e-4", "train.seed=1"}, 3);
    ck_assert_int_eq(s->runs[5].nvaried, 2);
    /* hyper-parameter columns */
    ck_assert_int_eq(s->nparams, 2);
    ck_assert_str_eq(s->param_keys[0], "optim.lr");
    ck_assert_str_eq(s->param_keys[1], "train.seed");
    ck_assert_ptr_null(s->runs[0].params[0]);
    ck_assert_str_eq(s->runs[5].params[0], "3e-4");
    ck_assert_str_eq(s->runs[5].params[1], "1");
    /* paths: absolute, relative to the sweep file */
    char want[600];
    char *real = realpath(dir, NULL);
    snprintf(want, sizeof want, "%s/b.cfg", real);
    ck_assert_str_eq(s->runs[3].config, want);
    snprintf(want, sizeof want, "%s/sweep-out/g-lr=1e-4-seed=2", real);
    ck_assert_str_eq(s->runs[3].dir, want);
    char *self = realpath("/proc/self/exe", NULL); /* this program, by its path */
    ck_assert_str_eq(s->program, self);
    free(self);
    ck_assert_int_eq(s->parallel, 1);
    ck_assert_int_eq(s->formats, FLAVA_SWEEP_MD | FLAVA_SWEEP_CSV | FLAVA_SWEEP_JSON);
    free(real);
    flava_sweep_free(s);
}
END_TEST

START_TEST(test_grid_columns_union)
{
    flava_sweep *s;
    ck_assert_int_eq(load_text(&s,
                               "[grid.a]\ncommand = eval\nconfig = a.cfg\nvary = optim.lr=1|2\n"
                               "[grid.b]\ncommand = eval\nconfig = a.cfg\n"
                               "vary = train.seed=7, optim.lr=5\n",
                               NULL, 0),
                     FLAVA_OK);
    ck_assert_int_eq(s->nruns, 3);
    ck_assert_str_eq(s->runs[2].name, "b-seed=7-lr=5");
    ck_assert_int_eq(s->nparams, 2);
    ck_assert_str_eq(s->param_keys[0], "optim.lr");
    ck_assert_str_eq(s->param_keys[1], "train.seed");
    ck_assert_str_eq(s->runs[1].params[0], "2");
    ck_assert_ptr_null(s->runs[1].params[1]);
    ck_assert_str_eq(s->runs[2].params[0], "5");
    ck_assert_str_eq(s->runs[2].params[1], "7");
    flava_sweep_free(s);
}
END_TEST

START_TEST(test_run_names)
{
    flava_sweep *s;
    /* same short key in two sections: the full key names the run; a value
     * with characters unfit for a folder name gets _ for them */
    ck_assert_int_eq(load_text(&s,
                               "[grid.n]\ncommand = eval\nconfig = a.cfg\n"
                               "vary = train.seed=1, data.seed=2, data.path=x/y z|o/lr=1/m\n",
                               NULL, 0),
                     FLAVA_OK);
    ck_assert_int_eq(s->nruns, 2);
    ck_assert_str_eq(s->runs[0].name, "n-train.seed=1-data.seed=2-path=x_y_z");
    ck_assert_str_eq(s->runs[1].name, "n-train.seed=1-data.seed=2-path=o_lr=1_m");
    expect_sets(&s->runs[0], (const char *const[]){"train.seed=1", "data.seed=2", "data.path=x/y z"}, 3);
    flava_sweep_free(s);
}
END_TEST

START_TEST(test_set_items_and_overrides)
{
    flava_sweep *s;
    const char *ov[] = {"sweep.parallel=3", "run.r.set=eval.ks=1,5,10, eval.batch=4", "sweep.out=o"};
    ck_assert_int_eq(load_text(&s,
                               "[sweep]\nparallel = 2\nformat = csv\n"
                               "[run.r]\ncommand = eval\nconfig = a.cfg\nset = x.y=1\n",
                               ov, 3),
                     FLAVA_OK);
    ck_assert_int_eq(s->parallel, 3);
    ck_assert_int_eq(s->formats, FLAVA_SWEEP_CSV);
    /* items without = continue the value before them */
    expect_sets(&s->runs[0], (const char *const[]){"eval.ks=1,5,10", "eval.batch=4"}, 2);
    /* a path given with -s is relative to the working directory */
    char *cwd = getcwd(NULL, 0), want[600];
    snprintf(want, sizeof want, "%s/o", cwd);
    ck_assert_str_eq(s->out, want);
    free(cwd);
    char **argv;
    ck_assert_int_eq(flava_sweep_argv(&argv, s, 0, "--resume"), FLAVA_OK);
    /* the sweep's threads first: the run's own sets may override them */
    snprintf(want, sizeof want, "run.threads=%d", s->threads);
    char *self = realpath("/proc/self/exe", NULL);
    const char *expected[] = {self, "eval", "-c", s->runs[0].config, "-s", want, "-s",
                              "eval.ks=1,5,10", "-s", "eval.batch=4", "-s", NULL, "--resume"};
    for (int i = 0; i < 13; i++)
        if (expected[i])
            ck_assert_str_eq(argv[i], expected[i]);
    free(self);
    snprintf(want, sizeof want, "run.dir=%s", s->runs[0].dir);
    ck_assert_str_eq(argv[11], want);
    ck_assert_ptr_null(argv[13]);
    free(argv);
    flava_sweep_free(s);
}
END_TEST

START_TEST(test_threads)
{
    /* side by side runs share the cores unless told otherwise */
    char *saved = getenv("OMP_NUM_THREADS") ? strdup(getenv("OMP_NUM_THREADS")) : NULL;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    const char *text = "[sweep]\nparallel = 2\n[run.r]\ncommand = eval\nconfig = a.cfg\n";
    flava_sweep *s;
    unsetenv("OMP_NUM_THREADS");
    ck_assert_int_eq(load_text(&s, text, NULL, 0), FLAVA_OK);
    ck_assert_int_eq(s->threads, cores >= 2 ? cores / 2 : 1);
    flava_sweep_free(s);
    setenv("OMP_NUM_THREADS", "5", 1);
    ck_assert_int_eq(load_text(&s, text, NULL, 0), FLAVA_OK);
    ck_assert_int_eq(s->threads, 5); /* the environment's */
    flava_sweep_free(s);
    ck_assert_int_eq(load_text(&s, text, (const char *const[]){"sweep.threads=7"}, 1), FLAVA_OK);
    ck_assert_int_eq(s->threads, 7);
    flava_sweep_free(s);
    if (saved)
        setenv("OMP_NUM_THREADS", saved, 1);
    else
        unsetenv("OMP_NUM_THREADS");
    free(saved);
}
END_TEST

static const char *const run_ok = "[run.r]\ncommand = eval\nconfig = a.cfg\n";

START_TEST(test_config_errors)
{
    /* unknown key: file, line, nearest key */
    expect_error("[run.r]\ncommand = eval\nconfg = a.cfg\n", NULL, 0, "s.cfg:3",
                 "nearest known key: run.r.config");
    expect_error("[sweep]\nparalel = 2\n[run.r]\ncommand = eval\nconfig = a.cfg\n", NULL, 0, "s.cfg:2",
                 "sweep.parallel");
    /* unknown section */
    expect_error("[rnu.r]\ncommand = eval\n", NULL, 0, "s.cfg:1", "unknown section [rnu.r]");
    /* a config that does not exist: the line of the key */
    expect_error("[run.r]\ncommand = eval\n\nconfig = nothere.cfg\n", NULL, 0, "s.cfg:4", "nothere.cfg");
    expect_error("[grid.g]\ncommand = eval\nconfig = nothere.cfg\nvary = a.b=1\n", NULL, 0, "s.cfg:3",
                 "cannot read");
    /* commands and required keys */
    expect_error("[run.r]\ncommand = train\nconfig = a.cfg\n", NULL, 0, "s.cfg:2",
                 "expected pretrain, finetune or eval");
    expect_error("[run.r]\nconfig = a.cfg\n", NULL, 0, "run.r.command is required", NULL);
    expect_error("[grid.g]\ncommand = eval\nconfig = a.cfg\n", NULL, 0, "grid.g.vary is required", NULL);
    expect_error("[grid.g]\ncommand = eval\nconfig = a.cfg\nvary =\n", NULL, 0, "s.cfg:4",
                 "vary is empty");
    /* the [sweep] section */
    expect_error("[sweep]\nparallel = 0\n[run.r]\ncommand = eval\nconfig = a.cfg\n", NULL, 0,
                 "s.cfg:2", "expected 1 to");
    expect_error("[sweep]\nformat = md, html\n[run.r]\ncommand = eval\nconfig = a.cfg\n", NULL, 0,
                 "s.cfg:2", "unknown format 'html'");
    expect_error("[sweep]\nprogram = nothere.sh\n[run.r]\ncommand = eval\nconfig = a.cfg\n", NULL, 0,
                 "s.cfg:2", "cannot execute");
    expect_error("[sweep]\nthreads = -1\n[run.r]\ncommand = eval\nconfig = a.cfg\n", NULL, 0,
                 "s.cfg:2", "expected 0 to 4096");
    expect_error("[sweep]\ngrace = -1\n[run.r]\ncommand = eval\nconfig = a.cfg\n", NULL, 0, "s.cfg:2",
                 "grace");
    expect_error("[sweep]\nout = x\n", NULL, 0, "nothing to run", NULL);
    /* set and vary items */
    expect_error("[run.r]\ncommand = eval\nconfig = a.cfg\nset = lr=1\n", NULL, 0, "s.cfg:4",
                 "'lr=1' is not section.key=value");
    expect_error("[run.r]\ncommand = eval\nconfig = a.cfg\nset = 5, a.b=1\n", NULL, 0, "s.cfg:4",
                 "'5' is not section.key=value");
    expect_error("[run.r]\ncommand = eval\nconfig = a.cfg\nset = run.dir=/tmp\n", NULL, 0, "s.cfg:4",
                 "run.dir is set by the sweep");
    expect_error("[run.r]\ncommand = eval\nconfig = a.cfg\nset = a.b=1, a.b=2\n", NULL, 0, "s.cfg:4",
                 "a.b is given twice");
    expect_error("[grid.g]\ncommand = eval\nconfig = a.cfg\nset = a.b=1\nvary = a.b=2|3\n", NULL, 0,
                 "s.cfg:5", "a.b is both set and varied");
    expect_error("[grid.g]\ncommand = eval\nconfig = a.cfg\nvary = a.b=2|2\n", NULL, 0, "s.cfg:4",
                 "lists '2' twice");
    expect_error("[grid.g]\ncommand = eval\nconfig = a.cfg\nvary = a.b=2||3\n", NULL, 0, "s.cfg:4",
                 "empty value");
    expect_error("[grid.g]\ncommand = eval\nconfig = a.cfg\nvary = a.b=2|3; c.d=0|1\n", NULL, 0,
                 "s.cfg:4", "value '3; c.d=0' has a ';': separate the keys with commas");
    expect_error("[grid.g]\ncommand = eval\nconfig = a.cfg\nvary = a.b=2|3;c.d=0|1\n", NULL, 0,
                 "s.cfg:4", "value '3;c.d=0' has a ';'");
    expect_error("[grid.g]\ncommand = eval\nconfig = a.cfg\nvary = a.b=1|2|3|4|5|6|7|8|9|10,"
                 "c.d=1|2|3|4|5|6|7|8|9|10, e.f=1|2|3|4|5|6|7|8|9|10, g.h=1|2|3|4|5|6|7|8|9|10|11\n",
                 NULL, 0, "s.cfg:4", "more than 10000 grid points");
    /* names: folders under out, unique */
    expect_error("[run..x]\ncommand = eval\nconfig = a.cfg\n", NULL, 0, "s.cfg:1",
                 "must start with a letter");
    expect_error("[grid.g]\ncommand = eval\nconfig = a.cfg\nvary = a.p=x/y|x_y\n", NULL, 0,
                 "run name 'g-p=x_y' is taken already", "s.cfg:4");
    expect_error("[run.g-p=1]\n", NULL, 0, "s.cfg:1", "bad section name");
    expect_error("[run.results.md]\ncommand = eval\nconfig = a.cfg\n", NULL, 0, "s.cfg:1",
                 "taken by the tables");
    /* overrides */
    expect_error(run_ok, (const char *const[]){"run.r.comand=eval"}, 1, "-s run.r.comand=eval",
                 "nearest known key: run.r.command");
    expect_error(run_ok, (const char *const[]){"run.q.command=eval"}, 1, "unknown section [run.q]", NULL);
}
END_TEST

START_TEST(test_sweep_file_missing)
{
    flava_sweep *s;
    char path[512];
    snprintf(path, sizeof path, "%s/none.cfg", dir);
    ck_assert_int_eq(flava_sweep_load(&s, path, NULL, 0), FLAVA_ERR_IO);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "none.cfg"));
}
END_TEST

static const char *const good_json =
    "{\"command\": \"eval\", \"task\": \"zeroshot\", \"dataset\": \"fashion-mnist\",\n"
    " \"metric\": \"accuracy\", \"value\": 0.812,\n"
    " \"metrics\": {\"accuracy\": 0.812, \"top5\": 0.97}, \"wall_seconds\": 41.2}";

START_TEST(test_result_parse)
{
    flava_sweep_result r;
    ck_assert_int_eq(flava_sweep_result_parse(&r, good_json, "r.json"), FLAVA_OK);
    ck_assert_str_eq(r.command, "eval");
    ck_assert_str_eq(r.task, "zeroshot");
    ck_assert_str_eq(r.dataset, "fashion-mnist");
    ck_assert_str_eq(r.metric, "accuracy");
    ck_assert_double_eq(r.value, 0.812);
    ck_assert_double_eq(r.wall_seconds, 41.2);
    ck_assert_int_eq(r.nmetrics, 2);
    ck_assert_str_eq(r.names[1], "top5");
    ck_assert_double_eq(r.values[1], 0.97);
    flava_sweep_result_free(&r);
    char path[512];
    snprintf(path, sizeof path, "%s/none.json", dir);
    ck_assert_int_eq(flava_sweep_result_read(&r, path), FLAVA_ERR_IO);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "none.json"));
}
END_TEST

/* good_json with `from` replaced by `to`, which must fail naming `want`. */
static void expect_bad_result(const char *from, const char *to, const char *want)
{
    char text[1024];
    const char *at = strstr(good_json, from);
    ck_assert_ptr_nonnull(at);
    snprintf(text, sizeof text, "%.*s%s%s", (int)(at - good_json), good_json, to, at + strlen(from));
    flava_sweep_result r;
    ck_assert_msg(flava_sweep_result_parse(&r, text, "r.json") == FLAVA_ERR_FORMAT, "accepted: %s", text);
    ck_assert_msg(strstr(flava_error_message(), want) && strstr(flava_error_message(), "r.json"),
                  "'%s' not in: %s", want, flava_error_message());
    ck_assert_ptr_null(r.task);
    ck_assert_int_eq(r.nmetrics, 0);
}

START_TEST(test_result_errors)
{
    expect_bad_result("\"eval\"", "\"train\"", "expected pretrain, finetune or eval");
    expect_bad_result("\"command\": \"eval\", ", "", "\"command\" must be a non-empty string");
    expect_bad_result("\"zeroshot\"", "3", "\"task\" must be a non-empty string");
    expect_bad_result("\"fashion-mnist\"", "\"\"", "\"dataset\" must be");
    expect_bad_result("\"metric\": \"accuracy\", ", "", "\"metric\" must be");
    expect_bad_result("\"value\": 0.812", "\"value\": \"0.812\"", "\"value\" must be a finite number");
    expect_bad_result("\"value\": 0.812", "\"value\": 0.9", "\"value\" is 0.9");
    expect_bad_result("\"accuracy\": 0.812, ", "", "the metric 'accuracy' is not in \"metrics\"");
    expect_bad_result("0.97", "null", "\"metrics.top5\" must be a finite number");
    expect_bad_result("{\"accuracy\": 0.812, \"top5\": 0.97}", "[0.812]", "\"metrics\" must be an object");
    expect_bad_result("41.2", "-1", "\"wall_seconds\" is negative");
    expect_bad_result(", \"wall_seconds\": 41.2", "", "\"wall_seconds\" must be");
    expect_bad_result("}", "", "not valid JSON");
    expect_bad_result(good_json, "[]", "expected a JSON object");
}
END_TEST

static char *table(flava_status (*write)(const flava_sweep *, FILE *), const flava_sweep *s)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(write(s, f), FLAVA_OK);
    fclose(f);
    return text;
}

/* A sweep of a run and a 2-point grid: ok, failed (a | and a , in the
 * message), interrupted, with results set by hand. */
static flava_sweep *table_sweep(void)
{
    flava_sweep *s;
    ck_assert_int_eq(load_text(&s,
                               "[run.zs]\ncommand = eval\nconfig = a.cfg\n"
                               "[grid.g]\ncommand = finetune\nconfig = b.cfg\nvary = optim.lr=1e-4|3e-4\n",
                               NULL, 0),
                     FLAVA_OK);
    ck_assert_int_eq(flava_sweep_result_parse(&s->runs[0].result, good_json, "r.json"), FLAVA_OK);
    s->runs[0].state = FLAVA_SWEEP_OK;
    s->runs[0].wall_seconds = 99; /* the run's own figure wins */
    s->runs[1].state = FLAVA_SWEEP_FAILED;
    s->runs[1].error = strdup("exit status 3: loss \"NaN\" | stop, now");
    s->runs[1].wall_seconds = 2.25;
    s->runs[2].state = FLAVA_SWEEP_INTERRUPTED;
    s->runs[2].wall_seconds = 0.5;
    return s;
}

START_TEST(test_table_md)
{
    flava_sweep *s = table_sweep();
    char *md = table(flava_sweep_table_md, s);
    ck_assert_str_eq(md,
                     "| run | task | dataset | metric | value | optim.lr | status | wall time |\n"
                     "|---|---|---|---|---:|---|---|---:|\n"
                     "| zs | zeroshot | fashion-mnist | accuracy | 0.812 |  | ok | 41.2 s |\n"
                     "| g-lr=1e-4 |  |  |  |  | 1e-4 | failed: exit status 3: loss \"NaN\" \\| stop, now | 2.2 s |\n"
                     "| g-lr=3e-4 |  |  |  |  | 3e-4 | interrupted | 0.5 s |\n");
    free(md);
    flava_sweep_free(s);
}
END_TEST

START_TEST(test_table_csv)
{
    flava_sweep *s = table_sweep();
    s->runs[2].state = FLAVA_SWEEP_PENDING;
    char *csv = table(flava_sweep_table_csv, s);
    ck_assert_str_eq(csv,
                     "run,command,task,dataset,metric,value,optim.lr,status,error,wall_seconds\r\n"
                     "zs,eval,zeroshot,fashion-mnist,accuracy,0.812,,ok,,41.200\r\n"
                     "g-lr=1e-4,finetune,,,,,1e-4,failed,\"exit status 3: loss \"\"NaN\"\" | stop, now\",2.250\r\n"
                     "g-lr=3e-4,finetune,,,,,3e-4,not run,,\r\n");
    free(csv);
    flava_sweep_free(s);
}
END_TEST

START_TEST(test_table_json)
{
    flava_sweep *s = table_sweep();
    char *json = table(flava_sweep_table_json, s);
    cJSON *root = cJSON_Parse(json);
    ck_assert_ptr_nonnull(root);
    cJSON *runs = cJSON_GetObjectItem(root, "runs");
    ck_assert_int_eq(cJSON_GetArraySize(runs), 3);
    cJSON *zs = cJSON_GetArrayItem(runs, 0), *bad = cJSON_GetArrayItem(runs, 1);
    ck_assert_str_eq(cJSON_GetObjectItem(zs, "run")->valuestring, "zs");
    ck_assert_str_eq(cJSON_GetObjectItem(zs, "status")->valuestring, "ok");
    ck_assert_double_eq(cJSON_GetObjectItem(zs, "value")->valuedouble, 0.812);
    ck_assert_double_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(zs, "metrics"), "top5")->valuedouble, 0.97);
    ck_assert_str_eq(cJSON_GetObjectItem(bad, "status")->valuestring, "failed");
    ck_assert_str_eq(cJSON_GetObjectItem(bad, "error")->valuestring, "exit status 3: loss \"NaN\" | stop, now");
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(bad, "params"), "optim.lr")->valuestring, "1e-4");
    ck_assert_double_eq(cJSON_GetObjectItem(bad, "wall_seconds")->valuedouble, 2.25);
    ck_assert_ptr_null(cJSON_GetObjectItem(bad, "value"));
    cJSON_Delete(root);
    free(json);
    flava_sweep_free(s);
}
END_TEST

START_TEST(test_scan_complete_runs)
{
    flava_sweep *s;
    ck_assert_int_eq(load_text(&s, "[sweep]\nout = o\n[run.a]\ncommand = eval\nconfig = a.cfg\n"
                                   "[run.b]\ncommand = eval\nconfig = a.cfg\n[run.c]\ncommand = pretrain\nconfig = a.cfg\n",
                               NULL, 0),
                     FLAVA_OK);
    ck_assert_int_eq(mkdir(s->out, 0777), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(mkdir(s->runs[i].dir, 0777), 0);
    write_file("o/a/results.json", good_json);
    write_file("o/b/results.json", "{\"command\": \"eval\"");  /* half written: runs again */
    write_file("o/c/results.json", good_json);                 /* eval's results for a pretrain run */
    ck_assert_int_eq(flava_sweep_scan(s), FLAVA_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "is the result of 'eval', not 'pretrain'"));
    write_file("o/c/results.json", "");
    ck_assert_int_eq(flava_sweep_scan(s), FLAVA_OK);
    ck_assert_int_eq(s->runs[0].state, FLAVA_SWEEP_OK);
    ck_assert(s->runs[0].earlier);
    ck_assert_str_eq(s->runs[0].result.task, "zeroshot");
    ck_assert_int_eq(s->runs[1].state, FLAVA_SWEEP_PENDING);
    ck_assert_int_eq(s->runs[2].state, FLAVA_SWEEP_PENDING);
    /* a complete run whose command line differs is not this sweep's */
    write_file("o/a/command.txt", "/bin/flava eval -c /elsewhere.cfg -s run.dir=/x\n");
    ck_assert_int_eq(flava_sweep_scan(s), FLAVA_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "was run with another command"));
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "s.cfg:3"));
    flava_sweep_free(s);
}
END_TEST

START_TEST(test_describe)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_int_eq(flava_sweep_describe(f), FLAVA_OK);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(text, "[grid.NAME]"));
    ck_assert_ptr_nonnull(strstr(text, "parallel = 1"));
    ck_assert_ptr_nonnull(strstr(text, "vary = (required)"));
    free(text);
}
END_TEST

static Suite *make_sweep_suite(void)
{
    Suite *s = suite_create("sweep");
    TCase *tc = tcase_create("sweep");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_grid_expansion);
    tcase_add_test(tc, test_grid_columns_union);
    tcase_add_test(tc, test_run_names);
    tcase_add_test(tc, test_set_items_and_overrides);
    tcase_add_test(tc, test_threads);
    tcase_add_test(tc, test_config_errors);
    tcase_add_test(tc, test_sweep_file_missing);
    tcase_add_test(tc, test_result_parse);
    tcase_add_test(tc, test_result_errors);
    tcase_add_test(tc, test_table_md);
    tcase_add_test(tc, test_table_csv);
    tcase_add_test(tc, test_table_json);
    tcase_add_test(tc, test_scan_complete_runs);
    tcase_add_test(tc, test_describe);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return test_run(make_sweep_suite()); }

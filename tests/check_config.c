/* check_config.c - INI run configuration: parsing, types, overrides, every
 * error path, unread-key warnings, the key listing and the written config. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"

static const flava_cfg_key keys[] = {
    {"model", "hidden_size", FLAVA_CFG_INT, "768", "width of every encoder"},
    {"model", "layer_norm_eps", FLAVA_CFG_FLOAT, "1e-12", "LayerNorm epsilon"},
    {"model", "name", FLAVA_CFG_STRING, "flava-full", "model name"},
    {"optim", "lr", FLAVA_CFG_FLOAT, "1e-4", "peak learning rate"},
    {"optim", "warmup_steps", FLAVA_CFG_INT, "1000", "linear warmup steps"},
    {"optim", "no_decay", FLAVA_CFG_LIST, "bias,LayerNorm.weight", "names without weight decay"},
    {"optim", "name", FLAVA_CFG_STRING, "adamw", "optimizer"},
    {"data.scenes", "count", FLAVA_CFG_INT, "100", "scenes to generate"},
    {"data.scenes", "grid", FLAVA_CFG_BOOL, "false", "compose items on a grid"},
    {"data.scenes", "path", FLAVA_CFG_STRING, NULL, "output directory"},
    {"data.scenes", "items", FLAVA_CFG_LIST, "", "item classes to use"},
};
enum { NKEYS = sizeof keys / sizeof keys[0] };

static char dir[256], path[512];

static flava_cfg *make_cfg(void)
{
    flava_cfg *c;
    ck_assert_int_eq(flava_cfg_create(&c), FLAVA_OK);
    ck_assert_int_eq(flava_cfg_register(c, keys, NKEYS), FLAVA_OK);
    return c;
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/flava_cfg_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/run.cfg", dir);
}

static void teardown(void)
{
    char p[600];
    snprintf(p, sizeof p, "%s/out.cfg", dir);
    unlink(p);
    unlink(path);
    rmdir(dir);
}

static void write_text(const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* Loads `text` into a fresh configuration: the status, the message in msg. */
static flava_status load_text(const char *text)
{
    write_text(text);
    flava_cfg *c = make_cfg();
    flava_error_clear();
    flava_status s = flava_cfg_load(c, path);
    flava_cfg_free(c);
    return s;
}

#define ck_assert_msg_has(needle) \
    ck_assert_msg(strstr(flava_error_message(), (needle)) != NULL, "'%s' does not say '%s'", \
                  flava_error_message(), (needle))

START_TEST(test_load_values_types_defaults)
{
    write_text("# a run\n"
               "; another comment\n"
               "\n"
               "[model]\n"
               "  hidden_size=64   # small\n"
               "name = tiny model ;with a comment\n"
               "\t[data.scenes]\t\n"
               "count = -12\n"
               "grid = Yes\n"
               "path = /data/scenes#1\n"
               "items =  shirt , bag,boot \n"
               "[optim]\n"
               "lr = 3E-4\n"
               "no_decay =\n");
    flava_cfg *c = make_cfg();
    ck_assert_int_eq(flava_cfg_load(c, path), FLAVA_OK);
    int64_t i;
    double d;
    bool b;
    const char *str;
    const char *const *items;
    int n;
    ck_assert_int_eq(flava_cfg_get_int(c, "model", "hidden_size", &i), FLAVA_OK);
    ck_assert_int_eq(i, 64);
    ck_assert_int_eq(flava_cfg_get_float(c, "model", "layer_norm_eps", &d), FLAVA_OK);
    ck_assert_double_eq(d, 1e-12); /* default */
    ck_assert_int_eq(flava_cfg_get_string(c, "model", "name", &str), FLAVA_OK);
    ck_assert_str_eq(str, "tiny model");
    ck_assert_int_eq(flava_cfg_get_int(c, "data.scenes", "count", &i), FLAVA_OK);
    ck_assert_int_eq(i, -12);
    ck_assert_int_eq(flava_cfg_get_bool(c, "data.scenes", "grid", &b), FLAVA_OK);
    ck_assert(b);
    ck_assert_int_eq(flava_cfg_get_string(c, "data.scenes", "path", &str), FLAVA_OK);
    ck_assert_str_eq(str, "/data/scenes#1"); /* # inside a word is no comment */
    ck_assert_int_eq(flava_cfg_get_list(c, "data.scenes", "items", &items, &n), FLAVA_OK);
    ck_assert_int_eq(n, 3);
    ck_assert_str_eq(items[0], "shirt");
    ck_assert_str_eq(items[1], "bag");
    ck_assert_str_eq(items[2], "boot");
    ck_assert_int_eq(flava_cfg_get_float(c, "optim", "lr", &d), FLAVA_OK);
    ck_assert_double_eq(d, 3e-4);
    ck_assert_int_eq(flava_cfg_get_list(c, "optim", "no_decay", &items, &n), FLAVA_OK);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(flava_cfg_get_int(c, "optim", "warmup_steps", &i), FLAVA_OK);
    ck_assert_int_eq(i, 1000);

    char want[1300]; /* room for two paths of up to 512 bytes */
    snprintf(want, sizeof want, "%s:13", path);
    ck_assert_str_eq(flava_cfg_where(c, "optim", "lr"), want);
    ck_assert_str_eq(flava_cfg_where(c, "optim", "warmup_steps"), "default");
    ck_assert_ptr_null(flava_cfg_where(c, "optim", "nope"));
    flava_cfg_free(c);
}
END_TEST

START_TEST(test_overrides)
{
    write_text("[optim]\nlr = 0.5\n");
    flava_cfg *c = make_cfg();
    ck_assert_int_eq(flava_cfg_load(c, path), FLAVA_OK);
    ck_assert_int_eq(flava_cfg_set(c, "optim.lr=0.25"), FLAVA_OK);
    ck_assert_int_eq(flava_cfg_set(c, " optim.lr = 0.25 "), FLAVA_OK);
    ck_assert_int_eq(flava_cfg_set(c, "data.scenes.count=7"), FLAVA_OK);
    ck_assert_int_eq(flava_cfg_set(c, "data.scenes.count=9"), FLAVA_OK); /* the last wins */
    ck_assert_int_eq(flava_cfg_set(c, "model.name=a=b"), FLAVA_OK);
    double d;
    int64_t i;
    const char *str;
    ck_assert_int_eq(flava_cfg_get_float(c, "optim", "lr", &d), FLAVA_OK);
    ck_assert_double_eq(d, 0.25);
    ck_assert_str_eq(flava_cfg_where(c, "optim", "lr"), "-s");
    ck_assert_int_eq(flava_cfg_get_int(c, "data.scenes", "count", &i), FLAVA_OK);
    ck_assert_int_eq(i, 9);
    ck_assert_int_eq(flava_cfg_get_string(c, "model", "name", &str), FLAVA_OK);
    ck_assert_str_eq(str, "a=b");

    static const struct {
        const char *arg, *expect;
    } bad[] = {
        {"optim.lr", "-s optim.lr: expected section.key=value"},
        {"lr=1", "-s lr=1: expected section.key=value"},
        {".lr=1", "expected section.key=value"},
        {"optim.=1", "expected section.key=value"},
        {"optim.lr=fast", "-s optim.lr=fast: optim.lr = 'fast': expected a finite number"},
        {"optim.warmup_stesp=5", "unknown key 'warmup_stesp' in [optim]; nearest known key: optim.warmup_steps"},
        {"optimizer.lr=1", "-s optimizer.lr=1: unknown section [optimizer]; nearest known section: [optim]"},
        {"model.name=a #b", "expected a comment character"},
        {"model.name=a\nb", "expected a line break"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        ck_assert_int_eq(flava_cfg_set(c, bad[k].arg), FLAVA_ERR_CONFIG);
        ck_assert_msg_has(bad[k].expect);
    }
    ck_assert_int_eq(flava_cfg_get_float(c, "optim", "lr", &d), FLAVA_OK);
    ck_assert_double_eq(d, 0.25); /* failed overrides change nothing */
    flava_cfg_free(c);
}
END_TEST

typedef struct bad_file {
    const char *text, *expect; /* expect follows "run.cfg:" */
} bad_file;

static const bad_file bad_files[] = {
    {"[optm]\nlr = 1\n", "1: unknown section [optm]; nearest known section: [optim]"},
    {"[optim]\nlrr = 1\n", "2: unknown key 'lrr' in [optim]; nearest known key: optim.lr"},
    {"[data.scenes]\nlr = 1\n", "2: unknown key 'lr' in [data.scenes]; nearest known key: optim.lr"},
    {"[optim]\nnam = x\n", "2: unknown key 'nam' in [optim]; nearest known key: optim.name"},
    {"[data.scene]\n", "1: unknown section [data.scene]; nearest known section: [data.scenes]"},
    {"[model]\nhidden_size = 12x\n", "2: model.hidden_size = '12x': expected an integer"},
    {"[model]\nhidden_size = 1.5\n", "2: model.hidden_size = '1.5': expected an integer"},
    {"[model]\nhidden_size = 99999999999999999999\n", "2: model.hidden_size = '99999999999999999999': expected an integer (int64)"},
    {"[model]\nhidden_size =\n", "2: model.hidden_size = '': expected an integer"},
    {"[model]\nlayer_norm_eps = small\n", "2: model.layer_norm_eps = 'small': expected a finite number"},
    {"[model]\nlayer_norm_eps = inf\n", "2: model.layer_norm_eps = 'inf': expected a finite number"},
    {"[model]\nlayer_norm_eps = 1e999\n", "2: model.layer_norm_eps = '1e999': expected a finite"},
    {"[data.scenes]\ngrid = maybe\n", "2: data.scenes.grid = 'maybe': expected true or false"},
    {"[data.scenes]\nitems = a,,b\n", "2: data.scenes.items = 'a,,b': expected a comma-separated list"},
    {"[data.scenes]\nitems = a,\n", "2: data.scenes.items = 'a,': expected a comma-separated list without empty items"},
    {"[optim]\nlr 0.1\n", "2: expected 'key = value' or '[section]', got 'lr 0.1'"},
    {"[optim\n", "1: malformed section header '[optim': expected [name]"},
    {"[op tim]\n", "1: bad section name '[op tim]'"},
    {"[]\n", "1: bad section name '[]'"},
    {"lr = 0.1\n[optim]\n", "1: key 'lr' comes before any [section]"},
    {"[optim]\n= 0.1\n", "2: bad key name ''"},
    {"[optim]\nl r = 0.1\n", "2: bad key name 'l r'"},
    {"[optim]\nlr = 0.1\n\n[model]\n[optim]\nlr = 0.2\n",
     "6: optim.lr is set a second time (first at line 2)"},
};

START_TEST(test_bad_files)
{
    const bad_file *b = &bad_files[_i];
    ck_assert_int_eq(load_text(b->text), FLAVA_ERR_CONFIG);
    char want[800];
    snprintf(want, sizeof want, "%s:%s", path, b->expect);
    ck_assert_msg_has(want);
}
END_TEST

START_TEST(test_io_and_nul_errors)
{
    flava_cfg *c = make_cfg();
    ck_assert_int_eq(flava_cfg_load(c, "/nonexistent/run.cfg"), FLAVA_ERR_IO);
    ck_assert_msg_has("cannot open config file /nonexistent/run.cfg");
    FILE *f = fopen(path, "wb");
    fwrite("[optim]\nlr = 1\0x\n", 1, 17, f);
    fclose(f);
    ck_assert_int_eq(flava_cfg_load(c, path), FLAVA_ERR_CONFIG);
    char want[1300]; /* room for two paths of up to 512 bytes */
    snprintf(want, sizeof want, "%s:2: NUL byte", path);
    ck_assert_msg_has(want);
    flava_cfg_free(c);
}
END_TEST

START_TEST(test_required_and_misuse)
{
    flava_cfg *c = make_cfg();
    const char *str;
    int64_t i;
    double d;
    ck_assert_int_eq(flava_cfg_get_string(c, "data.scenes", "path", &str), FLAVA_ERR_CONFIG);
    ck_assert_msg_has("config key data.scenes.path is required (output directory) and was not set");
    ck_assert_int_eq(flava_cfg_get_int(c, "optim", "lr", &i), FLAVA_ERR_ARG);
    ck_assert_msg_has("'optim.lr' has type float, read as int");
    ck_assert_int_eq(flava_cfg_get_float(c, "optim", "beta1", &d), FLAVA_ERR_ARG);
    ck_assert_msg_has("'optim.beta1' is not registered");
    ck_assert_int_eq(flava_cfg_register(c, keys + 3, 1), FLAVA_ERR_ARG);
    ck_assert_msg_has("'optim.lr' is registered twice");
    static const flava_cfg_key bad_default[] = {{"x", "n", FLAVA_CFG_INT, "ten", "a count"}};
    ck_assert_int_eq(flava_cfg_register(c, bad_default, 1), FLAVA_ERR_ARG);
    ck_assert_msg_has("config key 'x.n': default 'ten' is not an integer");
    static const flava_cfg_key no_help[] = {{"x", "n", FLAVA_CFG_INT, "1", NULL}};
    ck_assert_int_eq(flava_cfg_register(c, no_help, 1), FLAVA_ERR_ARG);
    flava_cfg_free(c);

    /* With nothing registered, any section is unknown. */
    ck_assert_int_eq(flava_cfg_create(&c), FLAVA_OK);
    write_text("[optim]\n");
    ck_assert_int_eq(flava_cfg_load(c, path), FLAVA_ERR_CONFIG);
    ck_assert_msg_has("unknown section [optim] (no keys are registered)");
    flava_cfg_free(c);
}
END_TEST

/* Runs `call` with mf_ a memstream whose text ends in buf. */
#define CAPTURE(buf, len, call)                       \
    do {                                              \
        FILE *mf_ = open_memstream(&(buf), &(len));   \
        ck_assert_ptr_nonnull(mf_);                   \
        call;                                         \
        fclose(mf_);                                  \
    } while (0)

START_TEST(test_warn_unread)
{
    write_text("[optim]\nlr = 1\nwarmup_steps = 3\n[model]\nname = m\n");
    flava_cfg *c = make_cfg();
    ck_assert_int_eq(flava_cfg_load(c, path), FLAVA_OK);
    ck_assert_int_eq(flava_cfg_set(c, "data.scenes.count=4"), FLAVA_OK);
    double d;
    int64_t i;
    ck_assert_int_eq(flava_cfg_get_float(c, "optim", "lr", &d), FLAVA_OK);
    ck_assert_int_eq(flava_cfg_get_int(c, "model", "hidden_size", &i), FLAVA_OK); /* default */
    char *out = NULL;
    size_t len = 0;
    int n = 0;
    CAPTURE(out, len, n = flava_cfg_warn_unread(c, mf_));
    ck_assert_int_eq(n, 3);
    char want[1300]; /* room for two paths of up to 512 bytes */
    snprintf(want, sizeof want,
             "warning: %s:5: model.name is set but never read\n"
             "warning: %s:3: optim.warmup_steps is set but never read\n"
             "warning: -s: data.scenes.count is set but never read\n", path, path);
    ck_assert_str_eq(out, want);
    free(out);
    flava_cfg_free(c);
}
END_TEST

START_TEST(test_describe_write_and_json)
{
    flava_cfg *c = make_cfg();
    char *out = NULL;
    size_t len = 0;
    CAPTURE(out, len, flava_cfg_describe(c, mf_));
    ck_assert_ptr_nonnull(strstr(out, "[model]\n  hidden_size = 768"));
    ck_assert_ptr_nonnull(strstr(out, "# int: width of every encoder\n"));
    ck_assert_ptr_nonnull(strstr(out, "\n[data.scenes]\n"));
    ck_assert_ptr_nonnull(strstr(out, "path = (required)"));
    ck_assert_ptr_nonnull(strstr(out, "# list: names without weight decay"));
    int sections = 0;
    for (char *p = out; (p = strchr(p, '[')); p++)
        sections += p == out || p[-1] == '\n';
    ck_assert_int_eq(sections, 3); /* each section once */
    free(out);

    write_text("[optim]\nlr = 2.5e-4\nno_decay = bias, ln\n");
    ck_assert_int_eq(flava_cfg_load(c, path), FLAVA_OK);
    ck_assert_int_eq(flava_cfg_set(c, "data.scenes.grid=on"), FLAVA_OK);
    char out_path[600];
    snprintf(out_path, sizeof out_path, "%s/out.cfg", dir);
    ck_assert_int_eq(flava_cfg_write(c, out_path), FLAVA_OK);

    /* The written file loads again to the same values, and says the
     * required key is missing rather than inventing one. */
    flava_cfg *back = make_cfg();
    ck_assert_int_eq(flava_cfg_load(back, out_path), FLAVA_OK);
    for (int k = 0; k < NKEYS; k++) {
        const flava_cfg_key *key = &keys[k];
        if (key->def == NULL) {
            const char *s;
            ck_assert_int_eq(flava_cfg_get_string(back, key->section, key->key, &s),
                             FLAVA_ERR_CONFIG);
            continue;
        }
        ck_assert_ptr_nonnull(strstr(flava_cfg_where(back, key->section, key->key), out_path));
    }
    double d;
    bool b;
    const char *const *items;
    int n;
    ck_assert_int_eq(flava_cfg_get_float(back, "optim", "lr", &d), FLAVA_OK);
    ck_assert_double_eq(d, 2.5e-4);
    ck_assert_int_eq(flava_cfg_get_bool(back, "data.scenes", "grid", &b), FLAVA_OK);
    ck_assert(b);
    ck_assert_int_eq(flava_cfg_get_list(back, "optim", "no_decay", &items, &n), FLAVA_OK);
    ck_assert_int_eq(n, 2);
    ck_assert_str_eq(items[1], "ln");
    ck_assert_int_eq(flava_cfg_get_list(back, "data.scenes", "items", &items, &n), FLAVA_OK);
    ck_assert_int_eq(n, 0);
    flava_cfg_free(back);

    /* And as JSON, typed. */
    char *json;
    ck_assert_int_eq(flava_cfg_to_json(c, &json), FLAVA_OK);
    cJSON *root = cJSON_Parse(json);
    ck_assert_ptr_nonnull(root);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *optim = cJSON_GetObjectItemCaseSensitive(root, "optim");
    const cJSON *scenes = cJSON_GetObjectItemCaseSensitive(root, "data.scenes");
    ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(model, "hidden_size")->valuedouble, 768);
    ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(model, "layer_norm_eps")->valuedouble, 1e-12);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(model, "name")->valuestring, "flava-full");
    ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(optim, "lr")->valuedouble, 2.5e-4);
    const cJSON *nd = cJSON_GetObjectItemCaseSensitive(optim, "no_decay");
    ck_assert_int_eq(cJSON_GetArraySize(nd), 2);
    ck_assert_str_eq(cJSON_GetArrayItem(nd, 1)->valuestring, "ln");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(scenes, "grid")));
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(scenes, "items")), 0);
    ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(scenes, "path")); /* required, unset */
    ck_assert_int_eq(cJSON_GetArraySize(root), 3);
    cJSON_Delete(root);
    free(json);

    ck_assert_int_eq(flava_cfg_write(c, "/nonexistent/out.cfg"), FLAVA_ERR_IO);
    ck_assert_msg_has("cannot create /nonexistent/out.cfg");
    flava_cfg_free(c);
}
END_TEST

static Suite *make_config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_load_values_types_defaults);
    tcase_add_test(tc, test_overrides);
    tcase_add_loop_test(tc, test_bad_files, 0, (int)(sizeof bad_files / sizeof bad_files[0]));
    tcase_add_test(tc, test_io_and_nul_errors);
    tcase_add_test(tc, test_required_and_misuse);
    tcase_add_test(tc, test_warn_unread);
    tcase_add_test(tc, test_describe_write_and_json);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return test_run(make_config_suite()); }

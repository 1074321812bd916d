/* sweep.c - a sweep file's runs as child processes, one results table. */
#include "sweep.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cfg.h"
#include "runlog.h"
#include "tsv.h"

enum { MAX_GRID_POINTS = 10000, MAX_PARALLEL = 256, ERROR_LINE_MAX = 300 };

static const char *const commands[] = {"pretrain", "finetune", "eval"};

static const flava_cfg_key sweep_keys[] = {
    {"sweep", "out", FLAVA_CFG_STRING, "sweep-out",
     "folder of the run folders and the tables, relative to the sweep file"},
    {"sweep", "parallel", FLAVA_CFG_INT, "1", "how many runs go at a time"},
    {"sweep", "program", FLAVA_CFG_STRING, "",
     "the program run, relative to the sweep file; empty: this flava (another program must "
     "take flava's arguments, --check included)"},
    {"sweep", "format", FLAVA_CFG_LIST, "md,csv,json", "tables written as out/results.*: md, csv, json"},
    {"sweep", "threads", FLAVA_CFG_INT, "0",
     "threads of each run (given to it as run.threads, which its own set can still override); "
     "0: OMP_NUM_THREADS if set, else cores / parallel"},
    {"sweep", "grace", FLAVA_CFG_FLOAT, "30",
     "seconds the running runs get to stop after Ctrl-C before they are killed"},
    {"sweep", "mpirun", FLAVA_CFG_STRING, "mpirun",
     "the launcher of runs with ranks > 1 and its options, split at spaces; -np RANKS and the "
     "run's command follow"},
};

/* The keys of a [run.NAME] section (the first RUN_KEYS) and of a
 * [grid.NAME] section (all); the section is filled in per instance. */
enum { RUN_KEYS = 5, GRID_KEYS = 6, MAX_RANKS = 4096 };
static const flava_cfg_key section_keys[GRID_KEYS] = {
    {NULL, "command", FLAVA_CFG_STRING, NULL, "pretrain, finetune or eval"},
    {NULL, "config", FLAVA_CFG_STRING, NULL, "the run's config file, relative to the sweep file"},
    {NULL, "set", FLAVA_CFG_LIST, "",
     "section.key=value overrides passed as -s; an item without = continues the value before the comma"},
    {NULL, "resume", FLAVA_CFG_BOOL, "false",
     "an incomplete run is resumed with --resume instead of started again"},
    {NULL, "ranks", FLAVA_CFG_INT, "1",
     "data-parallel ranks of a pretrain or finetune run: more than 1 starts it with "
     "`sweep.mpirun -np RANKS`, each rank with the run's threads / RANKS"},
    {NULL, "vary", FLAVA_CFG_LIST, NULL,
     "section.key=v1|v2|...: the grid is the cartesian product of these lists"},
};

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static flava_status format_string(char **out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static flava_status format_string(char **out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(out, fmt, ap);
    va_end(ap);
    if (n < 0) {
        *out = NULL;
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot format a string");
    }
    return FLAVA_OK;
}

static bool is_command(const char *c)
{
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(c, commands[i]))
            return true;
    return false;
}

static void free_strings(char **a, int n)
{
    for (int i = 0; a && i < n; i++)
        free(a[i]);
    free(a);
}

/* ---- results.json ---- */

void flava_sweep_result_free(flava_sweep_result *r)
{
    free(r->command);
    free(r->task);
    free(r->dataset);
    free(r->metric);
    free_strings(r->names, r->nmetrics);
    free(r->values);
    memset(r, 0, sizeof *r);
}

static flava_status json_string(char **out, const cJSON *root, const char *key, const char *where)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!cJSON_IsString(v) || !*v->valuestring)
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: \"%s\" must be a non-empty string", where, key);
    return flava_strdup(out, v->valuestring);
}

static flava_status json_number(double *out, const cJSON *v, const char *key, const char *where)
{
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: \"%s\" must be a finite number", where, key);
    *out = v->valuedouble;
    return FLAVA_OK;
}

static flava_status parse_result(flava_sweep_result *r, const cJSON *root, const char *where)
{
    if (!cJSON_IsObject(root))
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: expected a JSON object", where);
    FLAVA_TRY(json_string(&r->command, root, "command", where));
    if (!is_command(r->command))
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: \"command\" is '%s': expected pretrain, finetune or eval",
                           where, r->command);
    FLAVA_TRY(json_string(&r->task, root, "task", where));
    FLAVA_TRY(json_string(&r->dataset, root, "dataset", where));
    FLAVA_TRY(json_string(&r->metric, root, "metric", where));
    FLAVA_TRY(json_number(&r->value, cJSON_GetObjectItemCaseSensitive(root, "value"), "value", where));
    FLAVA_TRY(json_number(&r->wall_seconds, cJSON_GetObjectItemCaseSensitive(root, "wall_seconds"),
                          "wall_seconds", where));
    if (r->wall_seconds < 0)
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: \"wall_seconds\" is negative", where);
    const cJSON *metrics = cJSON_GetObjectItemCaseSensitive(root, "metrics");
    if (!cJSON_IsObject(metrics))
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: \"metrics\" must be an object of numbers", where);
    int n = cJSON_GetArraySize(metrics);
    r->names = calloc((size_t)n + 1, sizeof *r->names);
    r->values = calloc((size_t)n + 1, sizeof *r->values);
    if (!r->names || !r->values)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s: cannot hold %d metrics", where, n);
    const cJSON *m;
    bool found = false;
    cJSON_ArrayForEach(m, metrics) {
        char key[256];
        snprintf(key, sizeof key, "metrics.%s", m->string);
        FLAVA_TRY(json_number(&r->values[r->nmetrics], m, key, where));
        FLAVA_TRY(flava_strdup(&r->names[r->nmetrics], m->string));
        double v = r->values[r->nmetrics++];
        if (strcmp(m->string, r->metric))
            continue;
        found = true;
        /* value repeats metrics[metric]; allow for printing to fewer digits */
        if (fabs(v - r->value) > 1e-6 * fmax(1.0, fabs(v)))
            return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: \"value\" is %.17g but metrics.%s is %.17g",
                               where, r->value, r->metric, v);
    }
    if (!found)
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: the metric '%s' is not in \"metrics\"", where,
                           r->metric);
    return FLAVA_OK;
}

flava_status flava_sweep_result_parse(flava_sweep_result *r, const char *json, const char *where)
{
    memset(r, 0, sizeof *r);
    cJSON *root = cJSON_Parse(json);
    if (!root)
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: not valid JSON (near byte %td)", where,
                           cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() - json : (ptrdiff_t)0);
    flava_status s = parse_result(r, root, where);
    cJSON_Delete(root);
    if (s != FLAVA_OK)
        flava_sweep_result_free(r);
    return s;
}

flava_status flava_sweep_result_read(flava_sweep_result *r, const char *path)
{
    memset(r, 0, sizeof *r);
    char *text;
    size_t n;
    FLAVA_TRY(flava_file_read(&text, &n, path));
    flava_status s = flava_sweep_result_parse(r, text, path);
    flava_free(text);
    return s;
}

static cJSON *result_json(const flava_sweep_result *r)
{
    cJSON *o = cJSON_CreateObject(), *m = NULL;
    bool ok = o && cJSON_AddStringToObject(o, "command", r->command) &&
              cJSON_AddStringToObject(o, "task", r->task) &&
              cJSON_AddStringToObject(o, "dataset", r->dataset) &&
              cJSON_AddStringToObject(o, "metric", r->metric) &&
              cJSON_AddNumberToObject(o, "value", r->value) &&
              (m = cJSON_AddObjectToObject(o, "metrics")) &&
              cJSON_AddNumberToObject(o, "wall_seconds", r->wall_seconds);
    for (int i = 0; ok && i < r->nmetrics; i++)
        ok = cJSON_AddNumberToObject(m, r->names[i], r->values[i]) != NULL;
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* ---- loading ---- */

void flava_sweep_free(flava_sweep *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->nruns; i++) {
        flava_sweep_run *r = &s->runs[i];
        free(r->name);
        free(r->where);
        free(r->command);
        free(r->config);
        free(r->dir);
        free_strings(r->sets, r->nsets);
        free(r->params);
        free(r->error);
        flava_sweep_result_free(&r->result);
    }
    free(s->runs);
    free_strings(s->param_keys, s->nparams);
    free(s->path);
    free(s->out);
    free(s->program);
    free_strings(s->launcher, s->nlauncher);
    free(s);
}

/* A [run.NAME] or [grid.NAME] header of the sweep file. */
typedef struct section_ref {
    char *section;
    int line;
    bool grid;
    flava_cfg_key keys[GRID_KEYS];
} section_ref;

typedef struct loader {
    flava_sweep *s;
    flava_cfg *cfg;
    section_ref *refs;
    int nrefs;
    char *base;   /* the sweep file's folder, absolute */
    char *cwd;
} loader;

static char *trim(char *p)
{
    while (isspace((unsigned char)*p))
        p++;
    size_t n = strlen(p);
    while (n && isspace((unsigned char)p[n - 1]))
        p[--n] = '\0';
    return p;
}

/* Collects the run and grid sections so that their keys can be registered
 * before the file is loaded (cfg knows only registered sections). Everything
 * else about the syntax is left to flava_cfg_load. */
static flava_status scan_sections(loader *ld, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return FLAVA_ERROR(FLAVA_ERR_IO, "cannot open sweep file %s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0;
    flava_status st = FLAVA_OK;
    while (st == FLAVA_OK && getline(&line, &cap, f) >= 0) {
        lineno++;
        for (char *p = line; *p; p++) /* comments as cfg.c cuts them */
            if ((*p == '#' || *p == ';') && (p == line || isspace((unsigned char)p[-1]))) {
                *p = '\0';
                break;
            }
        char *t = trim(line);
        size_t n = strlen(t);
        if (n < 2 || t[0] != '[' || t[n - 1] != ']')
            continue;
        t[n - 1] = '\0';
        char *name = trim(t + 1);
        bool grid = !strncmp(name, "grid.", 5);
        if (!grid && strncmp(name, "run.", 4))
            continue;
        bool seen = false;
        for (int i = 0; i < ld->nrefs; i++)
            seen |= !strcmp(ld->refs[i].section, name);
        if (seen)
            continue;
        section_ref *grown = realloc(ld->refs, sizeof *grown * (size_t)(ld->nrefs + 1));
        if (!grown) {
            st = FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s:%d: out of memory", path, lineno);
            break;
        }
        ld->refs = grown;
        section_ref *ref = &ld->refs[ld->nrefs];
        *ref = (section_ref){.line = lineno, .grid = grid};
        if ((st = flava_strdup(&ref->section, name)) != FLAVA_OK)
            break;
        ld->nrefs++;
        for (int k = 0; k < GRID_KEYS; k++) {
            ref->keys[k] = section_keys[k];
            ref->keys[k].section = ref->section;
        }
    }
    free(line);
    fclose(f);
    return st;
}

/* A path from key section.key: relative to the sweep file's folder when it
 * comes from the file (or is the default), to the working directory when it
 * comes from -s; made absolute without touching the file system. */
static flava_status resolve_path(char **out, const loader *ld, const char *section, const char *key,
                                 const char *value)
{
    if (value[0] == '/')
        return flava_strdup(out, value);
    const char *base = !strcmp(flava_cfg_where(ld->cfg, section, key), "-s") ? ld->cwd : ld->base;
    return format_string(out, "%s/%s", base, value);
}

/* The list items of `key` as section.key=value assignments: an item
 * without '=' continues the previous value (which had a comma in it). */
static flava_status assignments(char ***out, int *n, const loader *ld, const char *section,
                                const char *key)
{
    const char *const *items;
    int nitems;
    *out = NULL;
    *n = 0;
    FLAVA_TRY(flava_cfg_get_list(ld->cfg, section, key, &items, &nitems));
    const char *where = flava_cfg_where(ld->cfg, section, key);
    char **a = calloc((size_t)nitems + 1, sizeof *a);
    if (!a)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s: out of memory", where);
    *out = a;
    for (int i = 0; i < nitems; i++) {
        if (!strchr(items[i], '=')) {
            if (*n == 0)
                return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: %s.%s: '%s' is not section.key=value",
                                   where, section, key, items[i]);
            char *joined;
            FLAVA_TRY(format_string(&joined, "%s,%s", a[*n - 1], items[i]));
            free(a[*n - 1]);
            a[*n - 1] = joined;
            continue;
        }
        const char *eq = strchr(items[i], '=');
        char *name = strndup(items[i], (size_t)(eq - items[i]));
        if (!name)
            return FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s: out of memory", where);
        char *k = trim(name), *dot = strrchr(k, '.');
        flava_status st = FLAVA_OK;
        if (!dot || dot == k || !dot[1] || strchr(k, ' '))
            st = FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: %s.%s: '%s' is not section.key=value", where,
                             section, key, items[i]);
        else if (!strcmp(k, "run.dir"))
            st = FLAVA_ERROR(FLAVA_ERR_CONFIG,
                             "%s: %s.%s: run.dir is set by the sweep (out/RUN_NAME), not by the runs",
                             where, section, key);
        for (int j = 0; st == FLAVA_OK && j < *n; j++)
            if (!strncmp(a[j], k, strlen(k)) && a[j][strlen(k)] == '=')
                st = FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: %s.%s: %s is given twice", where, section,
                                 key, k);
        if (st == FLAVA_OK) {
            char *v = strdup(eq + 1);
            st = v ? format_string(&a[*n], "%s=%s", k, trim(v))
                   : FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s: out of memory", where);
            free(v);
        }
        free(name);
        FLAVA_TRY(st);
        (*n)++;
    }
    return FLAVA_OK;
}

/* Length of the section.key part of an assignment. */
static size_t key_len(const char *assignment) { return (size_t)(strchr(assignment, '=') - assignment); }

static flava_status add_param_key(flava_sweep *s, const char *assignment)
{
    size_t n = key_len(assignment);
    for (int j = 0; j < s->nparams; j++)
        if (strlen(s->param_keys[j]) == n && !strncmp(s->param_keys[j], assignment, n))
            return FLAVA_OK;
    char **grown = realloc(s->param_keys, sizeof *grown * (size_t)(s->nparams + 1));
    if (!grown)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot add a hyper-parameter column");
    s->param_keys = grown;
    if (!(grown[s->nparams] = strndup(assignment, n)))
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot add a hyper-parameter column");
    s->nparams++;
    return FLAVA_OK;
}

/* One varied hyper-parameter of a grid: key and its values. */
typedef struct axis {
    char *key;       /* section.key */
    const char *label; /* what the run names show: the key, or section.key if ambiguous */
    char **values;
    int n;
} axis;

static void free_axes(axis *ax, int n)
{
    for (int i = 0; ax && i < n; i++) {
        free(ax[i].key);
        free_strings(ax[i].values, ax[i].n);
    }
    free(ax);
}

/* Splits section.key=v1|v2|... into an axis. */
static flava_status parse_axis(axis *a, const char *assignment, const char *where)
{
    size_t kl = key_len(assignment);
    if (!(a->key = strndup(assignment, kl)))
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s: out of memory", where);
    const char *p = assignment + kl + 1;
    for (;;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        char *v = strndup(p, len);
        char **grown = v ? realloc(a->values, sizeof *grown * (size_t)(a->n + 1)) : NULL;
        if (!grown) {
            free(v);
            return FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s: out of memory", where);
        }
        a->values = grown;
        a->values[a->n++] = v;
        char *t = trim(v);
        memmove(v, t, strlen(t) + 1);
        if (!*v)
            return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: vary %s has an empty value (in '%s')", where,
                               a->key, assignment);
        if (strchr(v, ';')) /* keys run together, a.b=1|2; c.d=3 (a value may hold '=': paths) */
            return FLAVA_ERROR(FLAVA_ERR_CONFIG,
                               "%s: vary %s: value '%s' has a ';': separate the keys with commas",
                               where, a->key, v);
        for (int i = 0; i < a->n - 1; i++)
            if (!strcmp(a->values[i], v))
                return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: vary %s lists '%s' twice", where, a->key, v);
        if (!bar)
            return FLAVA_OK;
        p = bar + 1;
    }
}

/* A run or grid name must make a plain folder name under out. */
static flava_status check_name(const char *name, const char *where, const char *section)
{
    if (!*name || !(isalnum((unsigned char)name[0]) || name[0] == '_'))
        return FLAVA_ERROR(FLAVA_ERR_CONFIG,
                           "%s: [%s]: the name after the dot must start with a letter, digit or _",
                           where, section);
    return FLAVA_OK;
}

/* What a [run.NAME] or [grid.NAME] section gives each of its runs besides
 * the command, the config and the sets. */
typedef struct run_opts {
    bool resume;
    int ranks;
} run_opts;

/* Appends a run; it takes sets (nsets of them, the last nvaried the grid
 * point). */
static flava_status add_run(flava_sweep *s, char *name, const char *where, const char *command,
                            const char *config, char **sets, int nsets, int nvaried,
                            const run_opts *o)
{
    flava_sweep_run *grown = realloc(s->runs, sizeof *grown * (size_t)(s->nruns + 1));
    if (!grown) {
        free(name);
        free_strings(sets, nsets);
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s: cannot add run", where);
    }
    s->runs = grown;
    flava_sweep_run *r = &s->runs[s->nruns++];
    *r = (flava_sweep_run){.name = name, .sets = sets, .nsets = nsets, .nvaried = nvaried,
                           .resume = o->resume, .ranks = o->ranks, .pid = -1};
    FLAVA_TRY(flava_strdup(&r->where, where));
    FLAVA_TRY(flava_strdup(&r->command, command));
    FLAVA_TRY(flava_strdup(&r->config, config));
    return format_string(&r->dir, "%s/%s", s->out, name);
}

/* Characters of a value that may go into a folder name; others become _. */
static void append_sanitized(char *dst, const char *v)
{
    dst += strlen(dst);
    for (; *v; v++)
        *dst++ = isalnum((unsigned char)*v) || strchr("._+-=", *v) ? *v : '_';
    *dst = '\0';
}

/* The runs of a grid: one per point of the product, the first axis
 * varying slowest; named NAME-label=value-... */
static flava_status expand_grid(flava_sweep *s, const loader *ld, const section_ref *ref,
                                const char *command, const char *config, char **sets, int nsets,
                                const run_opts *o)
{
    const char *where = flava_cfg_where(ld->cfg, ref->section, "vary");
    char **vary;
    int nvary;
    flava_status st = assignments(&vary, &nvary, ld, ref->section, "vary");
    axis *ax = st == FLAVA_OK ? calloc((size_t)nvary + 1, sizeof *ax) : NULL;
    if (st == FLAVA_OK && !ax)
        st = FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s: out of memory", where);
    if (st == FLAVA_OK && nvary == 0)
        st = FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: [%s] vary is empty: a grid varies at least one key",
                         where, ref->section);
    long points = 1;
    for (int a = 0; st == FLAVA_OK && a < nvary; a++) {
        st = parse_axis(&ax[a], vary[a], where);
        for (int j = 0; st == FLAVA_OK && j < nsets; j++)
            if (key_len(sets[j]) == strlen(ax[a].key) && !strncmp(sets[j], ax[a].key, strlen(ax[a].key)))
                st = FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: [%s] %s is both set and varied", where,
                                 ref->section, ax[a].key);
        if (st == FLAVA_OK && (points *= ax[a].n) > MAX_GRID_POINTS)
            st = FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: [%s] has more than %d grid points", where,
                             ref->section, MAX_GRID_POINTS);
    }
    /* the short key names the runs unless two axes share it */
    for (int a = 0; st == FLAVA_OK && a < nvary; a++) {
        const char *shortk = strrchr(ax[a].key, '.') + 1;
        ax[a].label = shortk;
        for (int b = 0; b < nvary; b++)
            if (b != a && !strcmp(shortk, strrchr(ax[b].key, '.') + 1))
                ax[a].label = ax[a].key;
        st = add_param_key(s, vary[a]);
    }
    size_t name_cap = strlen(ref->section) + 1;
    for (int a = 0; a < nvary && ax; a++) {
        size_t longest = 0;
        for (int v = 0; v < ax[a].n; v++)
            longest = strlen(ax[a].values[v]) > longest ? strlen(ax[a].values[v]) : longest;
        name_cap += strlen(ax[a].key) + longest + 2;
    }
    for (long p = 0; st == FLAVA_OK && p < points; p++) {
        char **point = calloc((size_t)(nsets + nvary), sizeof *point);
        char *name = malloc(name_cap);
        if (!point || !name) {
            free(point);
            free(name);
            st = FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s: out of memory", where);
            break;
        }
        strcpy(name, strchr(ref->section, '.') + 1);
        for (int j = 0; st == FLAVA_OK && j < nsets; j++)
            st = flava_strdup(&point[j], sets[j]);
        long rest = p;
        for (int a = nvary - 1; a >= 0; a--) { /* mixed radix, last axis fastest */
            const char *v = ax[a].values[rest % ax[a].n];
            rest /= ax[a].n;
            if (st == FLAVA_OK)
                st = format_string(&point[nsets + a], "%s=%s", ax[a].key, v);
        }
        if (st != FLAVA_OK) {
            free(name);
            free_strings(point, nsets + nvary);
            break;
        }
        for (int a = 0; a < nvary; a++) {
            strcat(name, "-");
            strcat(name, ax[a].label);
            strcat(name, "=");
            append_sanitized(name, strchr(point[nsets + a], '=') + 1);
        }
        st = add_run(s, name, where, command, config, point, nsets + nvary, nvary, o);
    }
    free_axes(ax, nvary);
    free_strings(vary, nvary);
    return st;
}

/* The words of `text`, split at spaces and tabs. */
static flava_status split_words(char ***out, int *n, const char *text)
{
    *out = NULL;
    *n = 0;
    int cap = 0;
    for (const char *p = text; *p;) {
        p += strspn(p, " \t");
        size_t len = strcspn(p, " \t");
        if (!len)
            break;
        if (*n == cap) {
            cap = cap ? 2 * cap : 4;
            char **grown = realloc(*out, sizeof *grown * (size_t)cap);
            if (!grown)
                return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot split '%s'", text);
            *out = grown;
        }
        if (!((*out)[*n] = strndup(p, len)))
            return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot split '%s'", text);
        (*n)++;
        p += len;
    }
    return FLAVA_OK;
}

/* The [sweep] section. */
static flava_status load_sweep_section(const loader *ld)
{
    flava_sweep *s = ld->s;
    flava_cfg *c = ld->cfg;
    const char *out, *program;
    int64_t parallel;
    FLAVA_TRY(flava_cfg_get_string(c, "sweep", "out", &out));
    if (!*out)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: sweep.out is empty", flava_cfg_where(c, "sweep", "out"));
    FLAVA_TRY(resolve_path(&s->out, ld, "sweep", "out", out));
    FLAVA_TRY(flava_cfg_get_int(c, "sweep", "parallel", &parallel));
    if (parallel < 1 || parallel > MAX_PARALLEL)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: sweep.parallel = %lld: expected 1 to %d",
                           flava_cfg_where(c, "sweep", "parallel"), (long long)parallel, MAX_PARALLEL);
    s->parallel = (int)parallel;
    int64_t threads;
    FLAVA_TRY(flava_cfg_get_int(c, "sweep", "threads", &threads));
    if (threads < 0 || threads > 4096)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: sweep.threads = %lld: expected 0 to 4096",
                           flava_cfg_where(c, "sweep", "threads"), (long long)threads);
    /* runs side by side must not each take every core; a run's own
     * run.threads (2 by default) would otherwise win over OMP_NUM_THREADS */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    const char *env = getenv("OMP_NUM_THREADS");
    const long from_env = env ? strtol(env, NULL, 10) : 0;
    if (threads == 0 && from_env > 0)
        threads = from_env < 4096 ? from_env : 4096;
    if (threads == 0)
        threads = cores > s->parallel ? cores / s->parallel : 1;
    s->threads = (int)threads;
    FLAVA_TRY(flava_cfg_get_float(c, "sweep", "grace", &s->grace));
    if (s->grace < 0)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: sweep.grace = %g: expected seconds >= 0",
                           flava_cfg_where(c, "sweep", "grace"), s->grace);
    const char *mpirun;
    FLAVA_TRY(flava_cfg_get_string(c, "sweep", "mpirun", &mpirun));
    FLAVA_TRY(split_words(&s->launcher, &s->nlauncher, mpirun));
    if (s->nlauncher == 0)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: sweep.mpirun is empty: expected the launcher of "
                           "runs with ranks > 1 (mpirun)", flava_cfg_where(c, "sweep", "mpirun"));
    FLAVA_TRY(flava_cfg_get_string(c, "sweep", "program", &program));
    if (!*program) { /* this flava, by its path: a launcher would read /proc/self/exe as itself */
        s->program = realpath("/proc/self/exe", NULL);
        if (!s->program)
            FLAVA_TRY(flava_strdup(&s->program, "/proc/self/exe"));
    }
    else
        FLAVA_TRY(resolve_path(&s->program, ld, "sweep", "program", program));
    if (access(s->program, X_OK) != 0)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: sweep.program: cannot execute %s: %s",
                           flava_cfg_where(c, "sweep", "program"), s->program, strerror(errno));
    const char *const *formats;
    int nformats;
    FLAVA_TRY(flava_cfg_get_list(c, "sweep", "format", &formats, &nformats));
    for (int i = 0; i < nformats; i++) {
        int bit = !strcmp(formats[i], "md") ? FLAVA_SWEEP_MD
                  : !strcmp(formats[i], "csv") ? FLAVA_SWEEP_CSV
                  : !strcmp(formats[i], "json") ? FLAVA_SWEEP_JSON : 0;
        if (!bit)
            return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: sweep.format: unknown format '%s': expected md, csv or json",
                               flava_cfg_where(c, "sweep", "format"), formats[i]);
        s->formats |= bit;
    }
    return FLAVA_OK;
}

/* One [run.NAME] or [grid.NAME] section. */
static flava_status load_section(const loader *ld, const section_ref *ref)
{
    flava_cfg *c = ld->cfg;
    char where[4200];
    snprintf(where, sizeof where, "%s:%d", ld->s->path, ref->line);
    const char *name = strchr(ref->section, '.') + 1;
    FLAVA_TRY(check_name(name, where, ref->section));
    const char *command, *config;
    run_opts o;
    int64_t ranks;
    FLAVA_TRY(flava_cfg_get_string(c, ref->section, "command", &command));
    if (!is_command(command))
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: %s.command = '%s': expected pretrain, finetune or eval",
                           flava_cfg_where(c, ref->section, "command"), ref->section, command);
    FLAVA_TRY(flava_cfg_get_string(c, ref->section, "config", &config));
    FLAVA_TRY(flava_cfg_get_bool(c, ref->section, "resume", &o.resume));
    FLAVA_TRY(flava_cfg_get_int(c, ref->section, "ranks", &ranks));
    if (ranks < 1 || ranks > MAX_RANKS || (ranks > 1 && !strcmp(command, "eval")))
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: %s.ranks = %lld: expected 1 to %d, and 1 for "
                           "eval (an evaluation runs in one process)",
                           flava_cfg_where(c, ref->section, "ranks"), ref->section,
                           (long long)ranks, MAX_RANKS);
    o.ranks = (int)ranks;
    char *joined, *real;
    FLAVA_TRY(resolve_path(&joined, ld, ref->section, "config", config));
    real = realpath(joined, NULL);
    if (!real || access(real, R_OK) != 0) {
        flava_status e = FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: %s.config: cannot read %s: %s",
                                     flava_cfg_where(c, ref->section, "config"), ref->section,
                                     joined, strerror(errno));
        free(joined);
        free(real);
        return e;
    }
    free(joined);
    char **sets;
    int nsets;
    flava_status st = assignments(&sets, &nsets, ld, ref->section, "set");
    if (st == FLAVA_OK && ref->grid) {
        st = expand_grid(ld->s, ld, ref, command, real, sets, nsets, &o);
        free_strings(sets, nsets);
    } else if (st == FLAVA_OK) {
        char *run_name = strdup(name);
        st = run_name ? add_run(ld->s, run_name, where, command, real, sets, nsets, 0, &o)
                      : FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s: out of memory", where);
    } else
        free_strings(sets, nsets);
    free(real);
    return st;
}

/* Names must be unique: they are folders, next to the tables. */
static flava_status check_unique(const flava_sweep *s)
{
    for (int i = 0; i < s->nruns; i++) {
        if (!strncmp(s->runs[i].name, "results.", 8))
            return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: run name '%s' is taken by the tables (results.*)",
                               s->runs[i].where, s->runs[i].name);
        for (int j = 0; j < i; j++)
            if (!strcmp(s->runs[i].name, s->runs[j].name))
                return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: run name '%s' is taken already (%s)",
                                   s->runs[i].where, s->runs[i].name, s->runs[j].where);
    }
    return FLAVA_OK;
}

/* The hyper-parameter columns of each run: pointers to its varied values. */
static flava_status fill_params(flava_sweep *s)
{
    for (int i = 0; i < s->nruns; i++) {
        flava_sweep_run *r = &s->runs[i];
        r->params = calloc((size_t)s->nparams + 1, sizeof *r->params);
        if (!r->params)
            return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot hold the hyper-parameters of %s", r->name);
        for (int k = r->nsets - r->nvaried; k < r->nsets; k++)
            for (int j = 0; j < s->nparams; j++)
                if (key_len(r->sets[k]) == strlen(s->param_keys[j]) &&
                    !strncmp(r->sets[k], s->param_keys[j], strlen(s->param_keys[j])))
                    r->params[j] = strchr(r->sets[k], '=') + 1;
    }
    return FLAVA_OK;
}

static flava_status register_keys(loader *ld)
{
    FLAVA_TRY(flava_cfg_register(ld->cfg, sweep_keys, (int)(sizeof sweep_keys / sizeof *sweep_keys)));
    for (int i = 0; i < ld->nrefs; i++)
        FLAVA_TRY(flava_cfg_register(ld->cfg, ld->refs[i].keys, ld->refs[i].grid ? GRID_KEYS : RUN_KEYS));
    return FLAVA_OK;
}

static flava_status load(loader *ld, const char *path, const char *const *overrides, int noverrides)
{
    flava_sweep *s = ld->s;
    FLAVA_TRY(flava_strdup(&s->path, path));
    FLAVA_TRY(scan_sections(ld, path));
    char *copy = strdup(path);
    char *dir = copy ? realpath(dirname(copy), NULL) : NULL;
    free(copy);
    ld->base = dir;
    ld->cwd = getcwd(NULL, 0);
    if (!ld->base || !ld->cwd)
        return FLAVA_ERROR(FLAVA_ERR_IO, "cannot resolve the folder of %s: %s", path, strerror(errno));
    FLAVA_TRY(flava_cfg_create(&ld->cfg));
    FLAVA_TRY(register_keys(ld));
    FLAVA_TRY(flava_cfg_load(ld->cfg, path));
    for (int i = 0; i < noverrides; i++)
        FLAVA_TRY(flava_cfg_set(ld->cfg, overrides[i]));
    FLAVA_TRY(load_sweep_section(ld));
    if (ld->nrefs == 0)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: no [run.NAME] or [grid.NAME] section: nothing to run", path);
    for (int i = 0; i < ld->nrefs; i++)
        FLAVA_TRY(load_section(ld, &ld->refs[i]));
    FLAVA_TRY(check_unique(s));
    return fill_params(s);
}

flava_status flava_sweep_load(flava_sweep **out, const char *path, const char *const *overrides,
                              int noverrides)
{
    *out = NULL;
    loader ld = {.s = calloc(1, sizeof *ld.s)};
    if (!ld.s)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot allocate a sweep");
    flava_status st = load(&ld, path, overrides, noverrides);
    flava_cfg_free(ld.cfg); /* before the key tables it points to */
    for (int i = 0; i < ld.nrefs; i++)
        free(ld.refs[i].section);
    free(ld.refs);
    free(ld.base);
    free(ld.cwd);
    if (st != FLAVA_OK) {
        flava_sweep_free(ld.s);
        return st;
    }
    *out = ld.s;
    return FLAVA_OK;
}

/* ---- command lines ---- */

flava_status flava_sweep_argv(char ***argv, const flava_sweep *s, int i, const char *flag)
{
    const flava_sweep_run *r = &s->runs[i];
    /* run.threads before the run's own sets, which may override it; the
     * ranks of a run share its threads */
    char threads[32];
    const int per_rank = s->threads / r->ranks;
    snprintf(threads, sizeof threads, "run.threads=%d", per_rank > 1 ? per_rank : 1);
    const char *fixed[] = {s->program, r->command, "-c", r->config, "-s", threads};
    int nfixed = 6, argc = nfixed + 2 * r->nsets + 2 + (flag != NULL);
    size_t bytes = sizeof(char *) * (size_t)(argc + 1);
    for (int k = 0; k < nfixed; k++)
        bytes += strlen(fixed[k]) + 1;
    for (int k = 0; k < r->nsets; k++)
        bytes += strlen(r->sets[k]) + 4;
    bytes += strlen("run.dir=") + strlen(r->dir) + 4 + (flag ? strlen(flag) + 1 : 0);
    char **a = malloc(bytes);
    if (!a)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot build the command of %s", r->name);
    char *p = (char *)(a + argc + 1);
    int n = 0;
#define PUT(...) (a[n++] = p, p += sprintf(p, __VA_ARGS__) + 1)
    for (int k = 0; k < nfixed; k++)
        PUT("%s", fixed[k]);
    for (int k = 0; k < r->nsets; k++) {
        PUT("-s");
        PUT("%s", r->sets[k]);
    }
    PUT("-s");
    PUT("run.dir=%s", r->dir);
    if (flag)
        PUT("%s", flag);
#undef PUT
    a[n] = NULL;
    *argv = a;
    return FLAVA_OK;
}

/* What starts run i: argv itself, or for a run of several ranks the
 * launcher's words, -np, the ranks (written into np) and argv. A new array
 * (of the same strings) is freed by the caller when it is not argv. */
static flava_status with_launcher(char ***out, const flava_sweep *s, int i, char **argv,
                                  char np[16])
{
    const flava_sweep_run *r = &s->runs[i];
    *out = argv;
    if (r->ranks <= 1)
        return FLAVA_OK;
    int n = 0;
    while (argv[n])
        n++;
    char **a = malloc(sizeof *a * (size_t)(s->nlauncher + 2 + n + 1));
    if (!a)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot build the command of %s", r->name);
    int k = 0;
    for (int j = 0; j < s->nlauncher; j++)
        a[k++] = s->launcher[j];
    snprintf(np, 16, "%d", r->ranks);
    a[k++] = "-np";
    a[k++] = np;
    for (int j = 0; j <= n; j++)
        a[k++] = argv[j];
    *out = a;
    return FLAVA_OK;
}

/* argv[from..] as one line a shell reads back: words with anything but
 * safe characters go in single quotes. */
static flava_status quote_args(char **out, char *const *argv, int from)
{
    size_t cap = 1;
    for (int i = from; argv[i]; i++)
        cap += 4 * strlen(argv[i]) + 3;
    char *line = malloc(cap), *p = line;
    if (!line)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot format a command line");
    for (int i = from; argv[i]; i++) {
        if (i > from)
            *p++ = ' ';
        bool plain = argv[i][0] != '\0';
        for (const char *c = argv[i]; *c; c++)
            plain &= isalnum((unsigned char)*c) || strchr("-_./=+,:@%", *c);
        if (plain) {
            p = stpcpy(p, argv[i]);
            continue;
        }
        *p++ = '\'';
        for (const char *c = argv[i]; *c; c++)
            p = *c == '\'' ? stpcpy(p, "'\\''") : (*p = *c, p + 1);
        *p++ = '\'';
    }
    *p = '\0';
    *out = line;
    return FLAVA_OK;
}

/* The line saved as RUN_DIR/command.txt: the program (the real path when it
 * is this flava) and the arguments, without --resume. */
static flava_status command_line(char **out, const flava_sweep *s, int i)
{
    char **argv, *args = NULL, *program = NULL;
    FLAVA_TRY(flava_sweep_argv(&argv, s, i, NULL));
    flava_status st = quote_args(&args, argv, 1);
    if (st == FLAVA_OK) {
        char *real = realpath(s->program, NULL);
        char *prog_argv[2] = {real ? real : s->program, NULL};
        char **started = NULL, np[16];
        st = with_launcher(&started, s, i, prog_argv, np);
        if (st == FLAVA_OK)
            st = quote_args(&program, started, 0);
        if (started != prog_argv)
            free(started);
        free(real);
    }
    if (st == FLAVA_OK)
        st = format_string(out, "%s %s", program, args);
    free(program);
    free(args);
    free(argv);
    return st;
}

/* ---- running ---- */

static flava_status run_file(char *buf, size_t n, const flava_sweep_run *r, const char *file)
{
    if (snprintf(buf, n, "%s/%s", r->dir, file) >= (int)n)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "path too long: %s/%s", r->dir, file);
    return FLAVA_OK;
}

/* Drops " -s run.threads=N" from a command line: the threads a run had
 * do not make it another run. */
static void drop_threads(char *line)
{
    static const char key[] = " -s run.threads=";
    char *p = strstr(line, key);
    if (!p)
        return;
    char *end = p + strlen(key);
    while (isdigit((unsigned char)*end))
        end++;
    memmove(p, end, strlen(end) + 1);
}

/* Whether a complete run's command.txt holds the command the sweep would
 * run now (the program may differ: a rebuilt flava is the same run; so may
 * the threads). */
static flava_status check_same_command(const flava_sweep *s, int i)
{
    const flava_sweep_run *r = &s->runs[i];
    char path[4200], *saved, **argv, *args = NULL;
    FLAVA_TRY(run_file(path, sizeof path, r, "command.txt"));
    if (access(path, F_OK) != 0)
        return FLAVA_OK;
    size_t n;
    FLAVA_TRY(flava_file_read(&saved, &n, path));
    flava_status st = flava_sweep_argv(&argv, s, i, NULL);
    if (st == FLAVA_OK) {
        st = quote_args(&args, argv, 1);
        free(argv);
    }
    if (st == FLAVA_OK) {
        char *t = trim(saved);
        drop_threads(t);
        drop_threads(args);
        size_t m = strlen(args);
        n = strlen(t);
        if (n <= m || strcmp(t + n - m, args) || t[n - m - 1] != ' ')
            st = FLAVA_ERROR(FLAVA_ERR_CONFIG,
                             "%s: run %s is complete but was run with another command (%s): remove "
                             "%s to run it again, or rename the run",
                             r->where, r->name, path, r->dir);
    }
    free(args);
    flava_free(saved);
    return st;
}

flava_status flava_sweep_scan(flava_sweep *s)
{
    for (int i = 0; i < s->nruns; i++) {
        flava_sweep_run *r = &s->runs[i];
        char path[4200];
        FLAVA_TRY(run_file(path, sizeof path, r, "results.json"));
        flava_sweep_result_free(&r->result);
        r->state = FLAVA_SWEEP_PENDING;
        r->earlier = false;
        if (access(path, F_OK) != 0)
            continue;
        if (flava_sweep_result_read(&r->result, path) != FLAVA_OK)
            continue; /* incomplete: it runs again */
        if (strcmp(r->result.command, r->command)) {
            flava_status e = FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: run %s: %s is the result of '%s', not '%s'",
                                         r->where, r->name, path, r->result.command, r->command);
            flava_sweep_result_free(&r->result);
            return e;
        }
        FLAVA_TRY(check_same_command(s, i));
        r->state = FLAVA_SWEEP_OK;
        r->earlier = true;
    }
    return FLAVA_OK;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Why a run failed, from the end of its output.log: the last line with
 * "error:" (flava's error line, which FLAVA_DEBUG follows with another),
 * else the last non-empty line; shortened. */
static void last_log_line(char *line, size_t n, const flava_sweep_run *r)
{
    char path[4200], tail[4096];
    snprintf(line, n, "(no output)");
    if (run_file(path, sizeof path, r, "output.log") != FLAVA_OK)
        return;
    FILE *f = fopen(path, "rb");
    if (!f)
        return;
    size_t got = 0;
    if (fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        long from = size > (long)sizeof tail - 1 ? size - (long)sizeof tail + 1 : 0;
        if (fseek(f, from, SEEK_SET) == 0)
            got = fread(tail, 1, sizeof tail - 1, f);
    }
    fclose(f);
    tail[got] = '\0';
    for (size_t i = 0; i < got; i++) /* a progress line redrawn with \r counts as lines */
        if (tail[i] == '\r' || tail[i] == '\0')
            tail[i] = '\n';
    char *end = tail + got;
    while (end > tail && isspace((unsigned char)end[-1]))
        *--end = '\0';
    if (end == tail)
        return;
    char *last = end, *start = end;
    while (last > tail && last[-1] != '\n')
        last--;
    for (char *p = tail; (p = strstr(p, "error:")); p++)
        start = p;
    if (start == end)
        start = last;
    while (start > tail && start[-1] != '\n')
        start--;
    char *eol = strchr(start, '\n');
    if (eol)
        *eol = '\0';
    snprintf(line, n, "%s", trim(start));
}

static void set_error(flava_sweep_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(flava_sweep_run *r, const char *fmt, ...)
{
    free(r->error);
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&r->error, fmt, ap) < 0)
        r->error = NULL;
    va_end(ap);
}

/* In a forked child: standard input, output and error from in_fd, out_fd
 * and err_fd (each where it is not -1), then the run's program. */
_Noreturn static void exec_run(char **argv, int in_fd, int out_fd, int err_fd)
{
    const int fds[3] = {in_fd, out_fd, err_fd};
    for (int k = 0; k < 3; k++)
        if (fds[k] >= 0)
            dup2(fds[k], k);
    execvp(argv[0], argv); /* a launcher is found on PATH */
    dprintf(2, "flava sweep: cannot execute %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

/* Prepares run i's folder and starts it. */
static flava_status launch(flava_sweep *s, int i, FILE *log)
{
    flava_sweep_run *r = &s->runs[i];
    struct stat st;
    bool exists = stat(r->dir, &st) == 0, resume = r->resume && exists;
    if (exists && !resume && nftw(r->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return FLAVA_ERROR(FLAVA_ERR_IO, "cannot clear the incomplete run %s: %s", r->dir, strerror(errno));
    FLAVA_TRY(flava_mkdirs(r->dir));
    char path[4200], *line, *text;
    FLAVA_TRY(command_line(&line, s, i));
    flava_status stt = format_string(&text, "%s\n", line);
    free(line);
    FLAVA_TRY(stt);
    stt = run_file(path, sizeof path, r, "command.txt");
    if (stt == FLAVA_OK)
        stt = flava_file_write_atomic(path, text);
    free(text);
    FLAVA_TRY(stt);
    FLAVA_TRY(run_file(path, sizeof path, r, "output.log"));
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (resume ? O_APPEND : O_TRUNC), 0666);
    if (fd < 0)
        return FLAVA_ERROR(FLAVA_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    char **argv = NULL, **started = NULL, np[16];
    flava_status sa = flava_sweep_argv(&argv, s, i, resume ? "--resume" : NULL);
    if (sa == FLAVA_OK)
        sa = with_launcher(&started, s, i, argv, np);
    if (sa != FLAVA_OK || null_fd < 0) {
        close(fd);
        if (null_fd >= 0)
            close(null_fd);
        free(argv);
        return sa != FLAVA_OK ? sa : FLAVA_ERROR(FLAVA_ERR_IO, "cannot open /dev/null: %s", strerror(errno));
    }
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        /* Its own process group: a terminal's Ctrl-C reaches the sweep only,
         * which forwards it once; and it dies with the sweep. */
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(127);
        exec_run(started, null_fd, fd, fd);
    }
    int fork_errno = errno;
    if (started != argv)
        free(started);
    free(argv);
    close(fd);
    close(null_fd);
    if (pid < 0)
        return FLAVA_ERROR(FLAVA_ERR_IO, "cannot start run %s: fork: %s", r->name, strerror(fork_errno));
    setpgid(pid, pid); /* both sides, whichever runs first */
    r->pid = pid;
    r->state = FLAVA_SWEEP_RUNNING;
    r->t_start = now_seconds();
    fprintf(log, "sweep: %s started%s (pid %d)\n", r->name, resume ? ", resuming" : "", (int)pid);
    return FLAVA_OK;
}

flava_status flava_sweep_check(const flava_sweep *s, FILE *log)
{
    char names[1024] = "";
    size_t len = 0;
    int bad = 0;
    for (int i = 0; i < s->nruns; i++) {
        const flava_sweep_run *r = &s->runs[i];
        if (r->earlier)
            continue;
        char **argv;
        FLAVA_TRY(flava_sweep_argv(&argv, s, i, "--check"));
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            int null_fd = open("/dev/null", O_RDWR);
            exec_run(argv, null_fd, null_fd, -1);
        }
        int fork_errno = errno, status = 0;
        free(argv);
        if (pid < 0)
            return FLAVA_ERROR(FLAVA_ERR_IO, "cannot check run %s: fork: %s", r->name,
                               strerror(fork_errno));
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        if (flava_interrupted())
            return FLAVA_ERROR(FLAVA_ERR_INTERRUPTED, "interrupted while checking the runs: no run "
                               "was started");
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
            continue;
        fprintf(log, "sweep: run %s (%s) does not check: its error is above\n", r->name, r->where);
        if (len < sizeof names)
            len += (size_t)snprintf(names + len, sizeof names - len, "%s%s", bad ? ", " : "",
                                    r->name);
        bad++;
    }
    if (bad)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%d run%s of the sweep %s not check (%s): no run was "
                           "started", bad, bad == 1 ? "" : "s", bad == 1 ? "does" : "do", names);
    return FLAVA_OK;
}

/* Records how run r ended. */
static void finish(flava_sweep_run *r, int status, bool stopping)
{
    r->wall_seconds = now_seconds() - r->t_start;
    r->pid = -1;
    char line[ERROR_LINE_MAX];
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        char path[4200];
        flava_status st = run_file(path, sizeof path, r, "results.json");
        if (st == FLAVA_OK)
            st = flava_sweep_result_read(&r->result, path);
        if (st == FLAVA_OK && strcmp(r->result.command, r->command)) {
            set_error(r, "%s is the result of '%s', not '%s'", path, r->result.command, r->command);
            flava_sweep_result_free(&r->result);
            r->state = FLAVA_SWEEP_FAILED;
            return;
        }
        if (st != FLAVA_OK) {
            set_error(r, "exit status 0 but %s", flava_error_message());
            r->state = FLAVA_SWEEP_FAILED;
            return;
        }
        r->state = FLAVA_SWEEP_OK;
        return;
    }
    if (stopping) {
        r->state = FLAVA_SWEEP_INTERRUPTED;
        if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
            set_error(r, "killed at the end of the grace period");
        return;
    }
    last_log_line(line, sizeof line, r);
    r->state = FLAVA_SWEEP_FAILED;
    if (WIFEXITED(status))
        set_error(r, "exit status %d: %s", WEXITSTATUS(status), line);
    else
        set_error(r, "killed by signal %d: %s", WTERMSIG(status), line);
}

static void report_end(const flava_sweep_run *r, FILE *log, int done, int n)
{
    if (r->state == FLAVA_SWEEP_OK)
        fprintf(log, "sweep: [%d/%d] %s: ok, %s = %.4f (%.1f s)\n", done, n, r->name, r->result.metric,
                r->result.value, r->wall_seconds);
    else
        fprintf(log, "sweep: [%d/%d] %s: %s: %s\n", done, n, r->name,
                r->state == FLAVA_SWEEP_INTERRUPTED ? "interrupted" : "FAILED",
                r->error ? r->error : "");
}

/* Sends sig to every running run's process group. */
static void signal_runs(const flava_sweep *s, int sig)
{
    for (int i = 0; i < s->nruns; i++)
        if (s->runs[i].state == FLAVA_SWEEP_RUNNING && s->runs[i].pid > 0)
            kill(-s->runs[i].pid, sig);
}

/* Holds OUT/.sweep.lock so that two sweeps never share a folder. */
static flava_status lock_out(int *fd, const flava_sweep *s)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/.sweep.lock", s->out);
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (*fd < 0)
        return FLAVA_ERROR(FLAVA_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    if (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
        close(*fd);
        *fd = -1;
        return FLAVA_ERROR(FLAVA_ERR_IO, "another sweep is running in %s (%s is locked)", s->out, path);
    }
    return FLAVA_OK;
}

/* The launch-and-reap loop; returns with no run running. */
static flava_status run_all(flava_sweep *s, FILE *log, int *done)
{
    int next = 0, running = 0;
    bool stopping = false, killed = false;
    double deadline = 0;
    flava_status st = FLAVA_OK;
    for (;;) {
        if (!stopping && (flava_interrupted() || st != FLAVA_OK)) {
            stopping = true;
            deadline = now_seconds() + s->grace;
            if (running)
                fprintf(log, "sweep: stopping; %d run%s get %.0f s to finish\n", running,
                        running == 1 ? "" : "s", s->grace);
            signal_runs(s, SIGINT);
        }
        while (!stopping && running < s->parallel && next < s->nruns) {
            if (s->runs[next].state == FLAVA_SWEEP_PENDING) {
                if ((st = launch(s, next, log)) != FLAVA_OK)
                    break;
                running++;
            }
            next++;
        }
        if (st != FLAVA_OK && !stopping)
            continue; /* stop the others first */
        if (running == 0)
            break;
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            for (int i = 0; i < s->nruns; i++) {
                flava_sweep_run *r = &s->runs[i];
                if (r->pid != pid || r->state != FLAVA_SWEEP_RUNNING)
                    continue;
                finish(r, status, stopping);
                running--;
                report_end(r, log, ++*done, s->nruns);
                flava_status w = flava_sweep_write_tables(s);
                if (st == FLAVA_OK)
                    st = w;
            }
        }
        if (pid < 0 && errno != EINTR && errno != ECHILD && st == FLAVA_OK)
            st = FLAVA_ERROR(FLAVA_ERR_IO, "waitpid: %s", strerror(errno));
        if (stopping && !killed && now_seconds() > deadline) {
            signal_runs(s, SIGKILL);
            killed = true;
        }
        struct timespec nap = {0, 50 * 1000 * 1000}; /* a poll, so Ctrl-C is never missed */
        nanosleep(&nap, NULL);
    }
    return st;
}

flava_status flava_sweep_execute(flava_sweep *s, FILE *log, int *nfailed)
{
    *nfailed = 0;
    int lock = -1;
    FLAVA_TRY(flava_mkdirs(s->out));
    FLAVA_TRY(lock_out(&lock, s));
    flava_status st = flava_sweep_scan(s);
    if (st == FLAVA_OK)
        st = flava_sweep_check(s, log);
    int done = 0;
    for (int i = 0; i < s->nruns; i++)
        done += s->runs[i].earlier;
    if (st == FLAVA_OK) {
        fprintf(log, "sweep: %d runs, %d complete already, %d at a time", s->nruns, done, s->parallel);
        fprintf(log, " with %d thread%s each", s->threads, s->threads == 1 ? "" : "s");
        fprintf(log, "; output in %s\n", s->out);
        st = flava_sweep_write_tables(s);
    }
    if (st == FLAVA_OK)
        st = run_all(s, log, &done);
    for (int i = 0; i < s->nruns; i++)
        *nfailed += s->runs[i].state == FLAVA_SWEEP_FAILED;
    flava_status w = flava_sweep_write_tables(s);
    close(lock);
    FLAVA_TRY(st);
    FLAVA_TRY(w);
    int complete = 0;
    for (int i = 0; i < s->nruns; i++)
        complete += s->runs[i].state == FLAVA_SWEEP_OK;
    if (flava_interrupted())
        return FLAVA_ERROR(FLAVA_ERR_INTERRUPTED, "interrupted: %d of %d runs complete; the same "
                           "command continues the sweep", complete, s->nruns);
    return FLAVA_OK;
}

/* ---- tables ---- */

static const char *status_text(const flava_sweep_run *r)
{
    switch (r->state) {
    case FLAVA_SWEEP_PENDING: return "not run";
    case FLAVA_SWEEP_RUNNING: return "running";
    case FLAVA_SWEEP_OK: return "ok";
    case FLAVA_SWEEP_FAILED: return "failed";
    case FLAVA_SWEEP_INTERRUPTED: return "interrupted";
    }
    return "?";
}

/* A finished run's wall time: the run's own figure when it succeeded. */
static double wall_of(const flava_sweep_run *r)
{
    return r->state == FLAVA_SWEEP_OK ? r->result.wall_seconds : r->wall_seconds;
}

static bool has_wall(const flava_sweep_run *r)
{
    return r->state == FLAVA_SWEEP_OK || r->state == FLAVA_SWEEP_FAILED ||
           r->state == FLAVA_SWEEP_INTERRUPTED;
}

/* A Markdown cell: | would end it. */
static void md_cell(FILE *f, const char *v)
{
    fputs(" ", f);
    for (; v && *v; v++)
        if (*v == '|')
            fputs("\\|", f);
        else
            fputc(*v, f);
    fputs(" |", f);
}

flava_status flava_sweep_table_md(const flava_sweep *s, FILE *f)
{
    fputs("| run | task | dataset | metric | value |", f);
    for (int j = 0; j < s->nparams; j++)
        md_cell(f, s->param_keys[j]);
    fputs(" status | wall time |\n|---|---|---|---|---:|", f);
    for (int j = 0; j < s->nparams; j++)
        fputs("---|", f);
    fputs("---|---:|\n", f);
    for (int i = 0; i < s->nruns; i++) {
        const flava_sweep_run *r = &s->runs[i];
        bool ok = r->state == FLAVA_SWEEP_OK;
        char value[64] = "", wall[64] = "", status[ERROR_LINE_MAX + 64];
        if (ok)
            snprintf(value, sizeof value, "%.4g", r->result.value);
        if (has_wall(r))
            snprintf(wall, sizeof wall, "%.1f s", wall_of(r));
        snprintf(status, sizeof status, "%s%s%s", status_text(r), r->error && !ok ? ": " : "",
                 r->error && !ok ? r->error : "");
        fputs("|", f);
        md_cell(f, r->name);
        md_cell(f, ok ? r->result.task : "");
        md_cell(f, ok ? r->result.dataset : "");
        md_cell(f, ok ? r->result.metric : "");
        md_cell(f, value);
        for (int j = 0; j < s->nparams; j++)
            md_cell(f, r->params[j]);
        md_cell(f, status);
        md_cell(f, wall);
        fputs("\n", f);
    }
    return ferror(f) ? FLAVA_ERROR(FLAVA_ERR_IO, "cannot write the Markdown table") : FLAVA_OK;
}

/* The shortest of %.15g..%.17g that reads back as v. */
static void shortest(char *buf, size_t n, double v)
{
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, n, "%.*g", digits, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

/* A CSV field (RFC 4180): quoted when it holds a comma, quote or line break. */
static void csv_field(FILE *f, const char *v, bool last)
{
    v = v ? v : "";
    if (strpbrk(v, ",\"\r\n")) {
        fputc('"', f);
        for (; *v; v++) {
            if (*v == '"')
                fputc('"', f);
            fputc(*v, f);
        }
        fputc('"', f);
    } else
        fputs(v, f);
    fputs(last ? "\r\n" : ",", f);
}

flava_status flava_sweep_table_csv(const flava_sweep *s, FILE *f)
{
    const char *head[] = {"run", "command", "task", "dataset", "metric", "value"};
    for (size_t k = 0; k < sizeof head / sizeof *head; k++)
        csv_field(f, head[k], false);
    for (int j = 0; j < s->nparams; j++)
        csv_field(f, s->param_keys[j], false);
    csv_field(f, "status", false);
    csv_field(f, "error", false);
    csv_field(f, "wall_seconds", true);
    for (int i = 0; i < s->nruns; i++) {
        const flava_sweep_run *r = &s->runs[i];
        bool ok = r->state == FLAVA_SWEEP_OK;
        char value[64] = "", wall[64] = "";
        if (ok)
            shortest(value, sizeof value, r->result.value);
        if (has_wall(r))
            snprintf(wall, sizeof wall, "%.3f", wall_of(r));
        csv_field(f, r->name, false);
        csv_field(f, r->command, false);
        csv_field(f, ok ? r->result.task : "", false);
        csv_field(f, ok ? r->result.dataset : "", false);
        csv_field(f, ok ? r->result.metric : "", false);
        csv_field(f, value, false);
        for (int j = 0; j < s->nparams; j++)
            csv_field(f, r->params[j], false);
        csv_field(f, status_text(r), false);
        csv_field(f, ok ? "" : r->error, false);
        csv_field(f, wall, true);
    }
    return ferror(f) ? FLAVA_ERROR(FLAVA_ERR_IO, "cannot write the CSV table") : FLAVA_OK;
}

static cJSON *run_json(const flava_sweep *s, const flava_sweep_run *r)
{
    bool ok = r->state == FLAVA_SWEEP_OK;
    cJSON *o = ok ? result_json(&r->result) : cJSON_CreateObject(), *params = NULL;
    bool good = o && cJSON_AddStringToObject(o, "run", r->name) &&
                (ok || cJSON_AddStringToObject(o, "command", r->command)) &&
                cJSON_AddStringToObject(o, "config", r->config) &&
                (params = cJSON_AddObjectToObject(o, "params")) &&
                cJSON_AddStringToObject(o, "status", status_text(r)) &&
                cJSON_AddBoolToObject(o, "earlier", r->earlier);
    for (int j = 0; good && j < s->nparams; j++)
        good = !r->params[j] || cJSON_AddStringToObject(params, s->param_keys[j], r->params[j]);
    if (good && !ok && r->error)
        good = cJSON_AddStringToObject(o, "error", r->error) != NULL;
    if (good && !ok && has_wall(r))
        good = cJSON_AddNumberToObject(o, "wall_seconds", r->wall_seconds) != NULL;
    if (!good) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

flava_status flava_sweep_table_json(const flava_sweep *s, FILE *f)
{
    cJSON *root = cJSON_CreateObject(), *runs = NULL;
    bool good = root && cJSON_AddStringToObject(root, "sweep", s->path) &&
                (runs = cJSON_AddArrayToObject(root, "runs"));
    for (int i = 0; good && i < s->nruns; i++) {
        cJSON *r = run_json(s, &s->runs[i]);
        good = r && cJSON_AddItemToArray(runs, r);
    }
    char *text = good ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!text)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot build the JSON table");
    fprintf(f, "%s\n", text);
    free(text);
    return ferror(f) ? FLAVA_ERROR(FLAVA_ERR_IO, "cannot write the JSON table") : FLAVA_OK;
}

flava_status flava_sweep_write_tables(const flava_sweep *s)
{
    static const struct {
        int bit;
        const char *name;
        flava_status (*write)(const flava_sweep *, FILE *);
    } tables[] = {
        {FLAVA_SWEEP_MD, "results.md", flava_sweep_table_md},
        {FLAVA_SWEEP_CSV, "results.csv", flava_sweep_table_csv},
        {FLAVA_SWEEP_JSON, "results.json", flava_sweep_table_json},
    };
    for (size_t k = 0; k < sizeof tables / sizeof *tables; k++) {
        if (!(s->formats & tables[k].bit))
            continue;
        char path[4200], *text = NULL;
        size_t len = 0;
        snprintf(path, sizeof path, "%s/%s", s->out, tables[k].name);
        FILE *mem = open_memstream(&text, &len);
        if (!mem)
            return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot build %s", path);
        flava_status st = tables[k].write(s, mem);
        fclose(mem);
        if (st == FLAVA_OK)
            st = flava_file_write_atomic(path, text);
        free(text);
        FLAVA_TRY(st);
    }
    return FLAVA_OK;
}

flava_status flava_sweep_describe(FILE *f)
{
    section_ref refs[2] = {{.section = "run.NAME"}, {.section = "grid.NAME", .grid = true}};
    for (int r = 0; r < 2; r++)
        for (int k = 0; k < GRID_KEYS; k++) {
            refs[r].keys[k] = section_keys[k];
            refs[r].keys[k].section = refs[r].section;
        }
    loader ld = {.refs = refs, .nrefs = 2};
    flava_status st = flava_cfg_create(&ld.cfg);
    if (st == FLAVA_OK)
        st = register_keys(&ld);
    if (st == FLAVA_OK)
        flava_cfg_describe(ld.cfg, f);
    flava_cfg_free(ld.cfg);
    return st;
}

/* cfg.c - INI run configuration with registered, typed keys. */
#include "cfg.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct entry {
    const flava_cfg_key *k;
    char *value;  /* NULL: not set, the default applies */
    char *where;  /* "file:line" or "-s" when set */
    int load_id;  /* which flava_cfg_load set it (0: -s), for duplicates */
    int line;
    bool read;
    char *list_buf; /* list items split in place, built on first read */
    char **items;
    int nitems;
    flava_cfg_key *own; /* a key made from a template (data.*, model.*), owned */
} entry;

struct flava_cfg {
    entry *e;
    int n, cap;
    int loads;
};

static const char *const type_names[] = {
    [FLAVA_CFG_INT] = "int", [FLAVA_CFG_FLOAT] = "float", [FLAVA_CFG_STRING] = "string",
    [FLAVA_CFG_BOOL] = "bool", [FLAVA_CFG_LIST] = "list",
};

flava_status flava_cfg_create(flava_cfg **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? FLAVA_OK : FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot allocate a configuration");
}

static void clear_list(entry *e)
{
    free(e->list_buf);
    free(e->items);
    e->list_buf = NULL;
    e->items = NULL;
    e->nitems = 0;
}

void flava_cfg_free(flava_cfg *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n; i++) {
        free(c->e[i].value);
        free(c->e[i].where);
        clear_list(&c->e[i]);
        if (c->e[i].own) {
            free((char *)c->e[i].own->section);
            free((char *)c->e[i].own->key);
            free(c->e[i].own);
        }
    }
    free(c->e);
    free(c);
}

/* ---- values ---- */

static bool parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (!strcasecmp(v, yes[i]))
            return *out = true, true;
        if (!strcasecmp(v, no[i]))
            return *out = false, true;
    }
    return false;
}

/* Empty, or items separated by commas, none of them blank. */
static bool list_ok(const char *v)
{
    if (!*v)
        return true;
    for (const char *p = v;; p++) {
        while (isspace((unsigned char)*p))
            p++;
        if (!*p || *p == ',')
            return false;
        if (!(p = strchr(p, ',')))
            return true;
    }
}

/* NULL if v is a valid `type`, else what was expected. */
static const char *type_problem(flava_cfg_type type, const char *v)
{
    char *end;
    bool b;
    switch (type) {
    case FLAVA_CFG_INT:
        errno = 0;
        (void)strtoll(v, &end, 10);
        return *v && !*end && errno == 0 ? NULL : "an integer (int64)";
    case FLAVA_CFG_FLOAT: {
        errno = 0;
        double d = strtod(v, &end);
        return *v && !*end && errno != ERANGE && isfinite(d) ? NULL : "a finite number";
    }
    case FLAVA_CFG_BOOL:
        return parse_bool(v, &b) ? NULL : "true or false (or yes/no, on/off, 1/0)";
    case FLAVA_CFG_LIST:
        return list_ok(v) ? NULL : "a comma-separated list without empty items";
    case FLAVA_CFG_STRING:
        return NULL;
    }
    return "a known type";
}

/* A value that the INI syntax could not carry back (for flava_cfg_write). */
static const char *text_problem(const char *v)
{
    if (v[0] && (isspace((unsigned char)v[0]) || isspace((unsigned char)v[strlen(v) - 1])))
        return "leading or trailing spaces";
    for (const char *p = v; *p; p++) {
        if (*p == '\n' || *p == '\r')
            return "a line break";
        if ((*p == '#' || *p == ';') && (p == v || isspace((unsigned char)p[-1])))
            return "a comment character (# or ;) at its start or after a space";
    }
    return NULL;
}

/* ---- registry ---- */

static entry *find(const flava_cfg *c, const char *section, const char *key)
{
    for (int i = 0; i < c->n; i++) {
        const flava_cfg_key *k = c->e[i].k;
        if (!strcmp(k->section, section) && !strcmp(k->key, key))
            return &c->e[i];
    }
    return NULL;
}

/* Templates: a key of a pattern section `X.*` stands for that key in every
 * section `X.NAME` a file names; a key `*` makes its section open (any key,
 * dots allowed, a string). Neither is a value of its own. */
static bool is_pattern(const char *section) { return strchr(section, '*') != NULL; }
static bool is_template(const flava_cfg_key *k)
{
    return is_pattern(k->section) || !strcmp(k->key, "*");
}

/* Whether section is an instance of pattern `X.*`. */
static bool instance_of(const char *pattern, const char *section)
{
    size_t n = strlen(pattern);
    return n >= 2 && !strcmp(pattern + n - 2, ".*") && !strncmp(pattern, section, n - 1) &&
           section[n - 1] && !is_pattern(section);
}

static bool section_known(const flava_cfg *c, const char *section)
{
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->e[i].k->section, section) || instance_of(c->e[i].k->section, section))
            return true;
    return false;
}

static bool section_open(const flava_cfg *c, const char *section)
{
    return find(c, section, "*") != NULL;
}

static flava_status grow(flava_cfg *c)
{
    if (c->n < c->cap)
        return FLAVA_OK;
    int cap = c->cap ? 2 * c->cap : 64;
    entry *e = realloc(c->e, sizeof *e * (size_t)cap);
    if (!e)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot grow the configuration");
    c->e = e;
    c->cap = cap;
    return FLAVA_OK;
}

/* Adds an owned copy of template t under section.key. */
static flava_status add_instance(flava_cfg *c, const flava_cfg_key *t, const char *section,
                                 const char *key)
{
    FLAVA_TRY(grow(c));
    flava_cfg_key *k = malloc(sizeof *k);
    char *sec = strdup(section), *name = strdup(key);
    if (!k || !sec || !name) {
        free(k);
        free(sec);
        free(name);
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot add config key %s.%s", section, key);
    }
    *k = *t;
    k->section = sec;
    k->key = name;
    c->e[c->n++] = (entry){.k = k, .own = k};
    return FLAVA_OK;
}

/* The entry of section.key, made from a template when there is one:
 * all keys of a pattern section at once, or one key of an open section.
 * NULL with FLAVA_OK when no template covers it. */
static flava_status find_or_make(entry **out, flava_cfg *c, const char *section, const char *key)
{
    *out = find(c, section, key);
    if (*out)
        return FLAVA_OK;
    int n = c->n;
    bool made = false;
    for (int i = 0; i < n; i++)
        if (instance_of(c->e[i].k->section, section) && !find(c, section, c->e[i].k->key)) {
            FLAVA_TRY(add_instance(c, c->e[i].k, section, c->e[i].k->key));
            made = true;
        }
    const entry *open = made ? NULL : find(c, section, "*");
    if (open)
        FLAVA_TRY(add_instance(c, open->k, section, key));
    *out = find(c, section, key);
    return FLAVA_OK;
}

flava_status flava_cfg_register(flava_cfg *c, const flava_cfg_key *keys, int n)
{
    for (int i = 0; i < n; i++) {
        const flava_cfg_key *k = &keys[i];
        if (!k->section || !k->key || !*k->section || !*k->key ||
            (unsigned)k->type > FLAVA_CFG_LIST || !k->help)
            return FLAVA_ERROR(FLAVA_ERR_ARG, "config key %d of the table is incomplete", i);
        if (find(c, k->section, k->key))
            return FLAVA_ERROR(FLAVA_ERR_ARG, "config key '%s.%s' is registered twice", k->section,
                               k->key);
        const char *bad = k->def ? type_problem(k->type, k->def) : NULL;
        if (!bad && k->def)
            bad = text_problem(k->def);
        if (bad)
            return FLAVA_ERROR(FLAVA_ERR_ARG, "config key '%s.%s': default '%s' is not %s",
                               k->section, k->key, k->def, bad);
        if (!strcmp(k->key, "*") && k->type != FLAVA_CFG_STRING)
            return FLAVA_ERROR(FLAVA_ERR_ARG, "open section [%s] must take strings", k->section);
        FLAVA_TRY(grow(c));
        c->e[c->n++] = (entry){.k = k};
    }
    return FLAVA_OK;
}

flava_status flava_cfg_register_shared(flava_cfg *c, const flava_cfg_key *keys, int n)
{
    for (int i = 0; i < n; i++) {
        bool same = false;
        for (int j = 0; j < c->n && !same; j++)
            same = c->e[j].k == &keys[i];
        if (!same)
            FLAVA_TRY(flava_cfg_register(c, &keys[i], 1));
    }
    return FLAVA_OK;
}

/* ---- nearest names, for the error messages ---- */

enum { LEV_MAX = 127 };

/* Edit distance (insert, delete, substitute) on the first LEV_MAX bytes. */
static int levenshtein(const char *a, const char *b)
{
    size_t la = strnlen(a, LEV_MAX), lb = strnlen(b, LEV_MAX);
    int row[LEV_MAX + 1];
    for (size_t j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The registered key closest to section.key: the key name counts double,
 * so that a right key in the wrong section wins over a typo. */
static const flava_cfg_key *nearest_key(const flava_cfg *c, const char *section, const char *key)
{
    const flava_cfg_key *best = NULL;
    int best_score = 0;
    for (int i = 0; i < c->n; i++) {
        const flava_cfg_key *k = c->e[i].k;
        int score = 2 * levenshtein(key, k->key) + (strcmp(section, k->section) != 0);
        if (!best || score < best_score) {
            best = k;
            best_score = score;
        }
    }
    return best;
}

static const char *nearest_section(const flava_cfg *c, const char *section)
{
    const char *best = NULL;
    int best_d = 0;
    for (int i = 0; i < c->n; i++) {
        int d = levenshtein(section, c->e[i].k->section);
        if (!best || d < best_d) {
            best = c->e[i].k->section;
            best_d = d;
        }
    }
    return best;
}

static flava_status unknown_section(const flava_cfg *c, const char *where, const char *section)
{
    const char *near = nearest_section(c, section);
    if (!near)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: unknown section [%s] (no keys are registered)",
                           where, section);
    return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: unknown section [%s]; nearest known section: [%s]",
                       where, section, near);
}

static flava_status unknown_key(const flava_cfg *c, const char *where, const char *section,
                                const char *key)
{
    const flava_cfg_key *near = nearest_key(c, section, key);
    return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: unknown key '%s' in [%s]; nearest known key: %s.%s",
                       where, key, section, near->section, near->key);
}

/* ---- setting ---- */

/* Checks v for e's type and stores it with its origin; `where` places
 * the errors. */
static flava_status set_value(entry *e, const char *v, const char *where, const char *origin,
                              int load_id, int line)
{
    const flava_cfg_key *k = e->k;
    const char *bad = type_problem(k->type, v);
    if (!bad)
        bad = text_problem(v);
    if (bad)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: %s.%s = '%s': expected %s", where, k->section,
                           k->key, v, bad);
    char *value = strdup(v), *w = strdup(origin);
    if (!value || !w) {
        free(value);
        free(w);
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s: cannot store %s.%s", where, k->section, k->key);
    }
    free(e->value);
    free(e->where);
    clear_list(e);
    e->value = value;
    e->where = w;
    e->load_id = load_id;
    e->line = line;
    return FLAVA_OK;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* Cuts a comment: # or ; at the start or after whitespace. */
static void cut_comment(char *s)
{
    for (char *p = s; *p; p++)
        if ((*p == '#' || *p == ';') && (p == s || isspace((unsigned char)p[-1]))) {
            *p = '\0';
            return;
        }
}

static bool is_name(const char *s, bool dots)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && !(dots && *s == '.'))
            return false;
    return true;
}

/* One line of an INI file; section is the current [section] (a buffer of
 * the line's size at least). */
static flava_status parse_line(flava_cfg *c, char *line, char *section, const char *path,
                               int lineno)
{
    char where[1024];
    snprintf(where, sizeof where, "%s:%d", path, lineno);
    cut_comment(line);
    char *s = trim(line);
    if (!*s)
        return FLAVA_OK;
    if (*s == '[') {
        size_t n = strlen(s);
        if (s[n - 1] != ']')
            return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: malformed section header '%s': expected [name]",
                               where, s);
        s[n - 1] = '\0';
        char *name = trim(s + 1);
        if (!is_name(name, true))
            return FLAVA_ERROR(FLAVA_ERR_CONFIG,
                               "%s: bad section name '[%s]': expected letters, digits, _ - and dots",
                               where, name);
        if (!section_known(c, name))
            return unknown_section(c, where, name);
        strcpy(section, name);
        return FLAVA_OK;
    }
    char *eq = strchr(s, '=');
    if (!eq)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: expected 'key = value' or '[section]', got '%s'",
                           where, s);
    *eq = '\0';
    char *key = trim(s), *value = trim(eq + 1);
    if (!is_name(key, *section && section_open(c, section)))
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: bad key name '%s'", where, key);
    if (!*section)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: key '%s' comes before any [section]", where, key);
    entry *e;
    FLAVA_TRY(find_or_make(&e, c, section, key));
    if (!e)
        return unknown_key(c, where, section, key);
    if (e->load_id == c->loads && e->line > 0)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: %s.%s is set a second time (first at line %d)",
                           where, section, key, e->line);
    return set_value(e, value, where, where, c->loads, lineno);
}

flava_status flava_cfg_load(flava_cfg *c, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return FLAVA_ERROR(FLAVA_ERR_IO, "cannot open config file %s: %s", path, strerror(errno));
    c->loads++;
    char *line = NULL, *section = NULL;
    size_t cap = 0, section_cap = 0;
    ssize_t len;
    int lineno = 0;
    flava_status s = FLAVA_OK;
    while (s == FLAVA_OK && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (strlen(line) != (size_t)len) {
            s = FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s:%d: NUL byte in the line", path, lineno);
            break;
        }
        if (section_cap < cap) { /* the section name is at most a line long */
            char *grown = realloc(section, cap);
            if (!grown) {
                s = FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s:%d: out of memory", path, lineno);
                break;
            }
            if (!section)
                grown[0] = '\0';
            section = grown;
            section_cap = cap;
        }
        s = parse_line(c, line, section, path, lineno);
    }
    if (s == FLAVA_OK && ferror(f))
        s = FLAVA_ERROR(FLAVA_ERR_IO, "cannot read config file %s", path);
    free(line);
    free(section);
    fclose(f);
    return s;
}

flava_status flava_cfg_set(flava_cfg *c, const char *assignment)
{
    char where[1024];
    snprintf(where, sizeof where, "-s %s", assignment);
    const char *eq = strchr(assignment, '=');
    const char *dot = NULL;
    for (const char *p = assignment; eq && p < eq; p++)
        if (*p == '.')
            dot = p;
    if (!eq || !dot || dot == assignment || dot + 1 == eq)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: expected section.key=value", where);
    /* In an open section the key may hold dots: model.text_config.hidden_size */
    const char *first = strchr(assignment, '.');
    if (first != dot) {
        char head[256];
        snprintf(head, sizeof head, "%.*s", (int)(first - assignment), assignment);
        if (section_open(c, head))
            dot = first;
    }
    /* Spaces around the names and the value are dropped, as in a file. */
    char *copy = strdup(assignment);
    if (!copy)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s: out of memory", where);
    copy[dot - assignment] = copy[eq - assignment] = '\0';
    char *section = trim(copy), *key = trim(copy + (dot - assignment) + 1);
    char *value = trim(copy + (eq - assignment) + 1);
    flava_status s;
    if (!section_known(c, section))
        s = unknown_section(c, where, section);
    else {
        entry *e;
        s = find_or_make(&e, c, section, key);
        if (s == FLAVA_OK)
            s = e ? set_value(e, value, where, "-s", 0, 0) : unknown_key(c, where, section, key);
    }
    free(copy);
    return s;
}

/* ---- reading ---- */

static flava_status lookup(const char **value, entry **out, flava_cfg *c, const char *section,
                           const char *key, flava_cfg_type type)
{
    entry *e = find(c, section, key);
    if (!e)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "config key '%s.%s' is not registered", section, key);
    if (e->k->type != type)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "config key '%s.%s' has type %s, read as %s", section, key,
                           type_names[e->k->type], type_names[type]);
    e->read = true;
    *value = e->value ? e->value : e->k->def;
    if (!*value)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "config key %s.%s is required (%s) and was not set",
                           section, key, e->k->help);
    if (out)
        *out = e;
    return FLAVA_OK;
}

flava_status flava_cfg_get_int(flava_cfg *c, const char *section, const char *key, int64_t *out)
{
    const char *v;
    FLAVA_TRY(lookup(&v, NULL, c, section, key, FLAVA_CFG_INT));
    *out = strtoll(v, NULL, 10);
    return FLAVA_OK;
}

flava_status flava_cfg_get_float(flava_cfg *c, const char *section, const char *key, double *out)
{
    const char *v;
    FLAVA_TRY(lookup(&v, NULL, c, section, key, FLAVA_CFG_FLOAT));
    *out = strtod(v, NULL);
    return FLAVA_OK;
}

flava_status flava_cfg_get_bool(flava_cfg *c, const char *section, const char *key, bool *out)
{
    const char *v;
    FLAVA_TRY(lookup(&v, NULL, c, section, key, FLAVA_CFG_BOOL));
    parse_bool(v, out);
    return FLAVA_OK;
}

flava_status flava_cfg_get_string(flava_cfg *c, const char *section, const char *key,
                                  const char **out)
{
    return lookup(out, NULL, c, section, key, FLAVA_CFG_STRING);
}

/* A list value split at the commas into trimmed items, in *buf (a copy of
 * v) and *items; false if out of memory. */
static bool split_list(char **buf, char ***items, int *n, const char *v)
{
    int count = *v ? 1 : 0;
    for (const char *p = v; *p; p++)
        count += *p == ',';
    *buf = strdup(v);
    *items = calloc((size_t)count + 1, sizeof **items);
    if (!*buf || !*items) {
        free(*buf);
        free(*items);
        *buf = NULL;
        *items = NULL;
        return false;
    }
    char *p = *buf;
    for (int i = 0; i < count; i++) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        (*items)[i] = trim(p);
        if (comma)
            p = comma + 1;
    }
    *n = count;
    return true;
}

flava_status flava_cfg_get_list(flava_cfg *c, const char *section, const char *key,
                                const char *const **items, int *n)
{
    const char *v;
    entry *e;
    FLAVA_TRY(lookup(&v, &e, c, section, key, FLAVA_CFG_LIST));
    if (!e->list_buf && !split_list(&e->list_buf, &e->items, &e->nitems, v))
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot split config list %s.%s", section, key);
    *items = (const char *const *)e->items;
    *n = e->nitems;
    return FLAVA_OK;
}

const char *flava_cfg_where(const flava_cfg *c, const char *section, const char *key)
{
    const entry *e = find(c, section, key);
    return !e ? NULL : e->where ? e->where : "default";
}

int flava_cfg_warn_unread(const flava_cfg *c, FILE *f)
{
    int n = 0;
    for (int i = 0; i < c->n; i++) {
        const entry *e = &c->e[i];
        if (e->value && !e->read) {
            fprintf(f, "warning: %s: %s.%s is set but never read\n", e->where, e->k->section,
                    e->k->key);
            n++;
        }
    }
    return n;
}

/* ---- listing and writing ---- */

/* Whether entry i is the first of its section: listings go section by
 * section in the order of first registration. */
static int first_of_section(const flava_cfg *c, int i)
{
    for (int j = 0; j < i; j++)
        if (!strcmp(c->e[j].k->section, c->e[i].k->section))
            return 0;
    return 1;
}

int flava_cfg_sections(const flava_cfg *c, const char *pattern, const char **names, int max)
{
    int n = 0;
    for (int i = 0; i < c->n; i++) {
        const char *sec = c->e[i].k->section;
        if (!instance_of(pattern, sec) || !first_of_section(c, i))
            continue;
        if (n < max)
            names[n] = sec;
        n++;
    }
    return n;
}

int flava_cfg_open_keys(flava_cfg *c, const char *section, const char **keys,
                        const char **values, const char **wheres, int max)
{
    int n = 0;
    for (int i = 0; i < c->n; i++) {
        entry *e = &c->e[i];
        if (!e->own || strcmp(e->k->section, section) || !e->value)
            continue;
        e->read = true;
        if (n < max) {
            keys[n] = e->k->key;
            values[n] = e->value;
            wheres[n] = e->where;
        }
        n++;
    }
    return n;
}

void flava_cfg_describe(const flava_cfg *c, FILE *f)
{
    for (int i = 0; i < c->n; i++) {
        if (!first_of_section(c, i))
            continue;
        const char *section = c->e[i].k->section;
        fprintf(f, "%s[%s]\n", i ? "\n" : "", section);
        for (int j = i; j < c->n; j++) {
            const flava_cfg_key *k = c->e[j].k;
            if (strcmp(k->section, section))
                continue;
            char lhs[256];
            if (!strcmp(k->key, "*"))
                snprintf(lhs, sizeof lhs, "<any key> = value");
            else
                snprintf(lhs, sizeof lhs, "%s = %s", k->key, k->def ? k->def : "(required)");
            fprintf(f, "  %-36s # %s: %s\n", lhs, type_names[k->type], k->help);
        }
    }
}

flava_status flava_cfg_write(const flava_cfg *c, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return FLAVA_ERROR(FLAVA_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    fprintf(f, "# the resolved configuration: defaults, files and -s overrides\n");
    for (int i = 0; i < c->n; i++) {
        if (!first_of_section(c, i))
            continue;
        const char *section = c->e[i].k->section;
        if (is_pattern(section))
            continue;
        fprintf(f, "\n[%s]\n", section);
        for (int j = i; j < c->n; j++) {
            const entry *e = &c->e[j];
            if (strcmp(e->k->section, section) || is_template(e->k))
                continue;
            const char *v = e->value ? e->value : e->k->def;
            if (v)
                fprintf(f, "%s = %s\n", e->k->key, v);
            else
                fprintf(f, "# %s = (required, not set)\n", e->k->key);
        }
    }
    int failed = ferror(f);
    if (fclose(f) != 0 || failed)
        return FLAVA_ERROR(FLAVA_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    return FLAVA_OK;
}

/* One value as its JSON type; values were checked when set. */
static cJSON *json_value(const flava_cfg_key *k, const char *v)
{
    bool b = false;
    switch (k->type) {
    case FLAVA_CFG_INT:
    case FLAVA_CFG_FLOAT:
        return cJSON_CreateNumber(strtod(v, NULL));
    case FLAVA_CFG_BOOL:
        parse_bool(v, &b);
        return cJSON_CreateBool(b);
    case FLAVA_CFG_LIST: {
        char *buf, **items;
        int n;
        if (!split_list(&buf, &items, &n, v))
            return NULL;
        cJSON *a = cJSON_CreateStringArray((const char *const *)items, n);
        free(buf);
        free(items);
        return a;
    }
    case FLAVA_CFG_STRING:
        break;
    }
    return cJSON_CreateString(v);
}

flava_status flava_cfg_to_json(const flava_cfg *c, char **out)
{
    *out = NULL;
    cJSON *root = cJSON_CreateObject();
    bool ok = root != NULL;
    for (int i = 0; ok && i < c->n; i++) {
        const flava_cfg_key *k = c->e[i].k;
        const char *v = c->e[i].value ? c->e[i].value : k->def;
        if (!v || is_template(k))
            continue;
        cJSON *section = cJSON_GetObjectItemCaseSensitive(root, k->section);
        if (!section)
            section = cJSON_AddObjectToObject(root, k->section);
        cJSON *value = section ? json_value(k, v) : NULL;
        ok = value && cJSON_AddItemToObject(section, k->key, value);
        if (!ok)
            cJSON_Delete(value);
    }
    if (ok)
        *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!*out)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot build the configuration as JSON");
    return FLAVA_OK;
}

/* checkpoint.c - model and optimizer files (see checkpoint.h). */
#include "checkpoint.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "codebook.h"

/* ---- reading: one file or a HF folder of shards ---- */

typedef struct source {
    flava_st **files;
    int nfiles;
    char *config_json; /* config.json of a folder, NULL for a file */
} source;

static void source_free(source *s)
{
    for (int i = 0; i < s->nfiles; i++)
        flava_st_free(s->files[i]);
    free(s->files);
    free(s->config_json);
    memset(s, 0, sizeof *s);
}

static flava_status read_text(char **out, const char *path)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return FLAVA_ERROR(FLAVA_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    flava_status st = FLAVA_OK;
    char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0)
        st = FLAVA_ERROR(FLAVA_ERR_IO, "cannot size %s: %s", path, strerror(errno));
    if (st == FLAVA_OK && !(buf = malloc((size_t)n + 1)))
        st = FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot allocate %ld bytes for %s", n, path);
    if (st == FLAVA_OK && fread(buf, 1, (size_t)n, f) != (size_t)n)
        st = FLAVA_ERROR(FLAVA_ERR_IO, "cannot read %s", path);
    fclose(f);
    if (st != FLAVA_OK) {
        free(buf);
        return st;
    }
    buf[n] = 0;
    *out = buf;
    return FLAVA_OK;
}

static flava_status add_file(source *s, const char *path)
{
    flava_st **f = realloc(s->files, (size_t)(s->nfiles + 1) * sizeof *f);
    if (!f)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot list checkpoint shards");
    s->files = f;
    FLAVA_TRY(flava_st_read(&s->files[s->nfiles], path));
    s->nfiles++;
    return FLAVA_OK;
}

/* The shards of a HF index: each distinct file of its weight_map. */
static flava_status add_shards(source *s, const char *dir, const char *index_path)
{
    char *text;
    FLAVA_TRY(read_text(&text, index_path));
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *map = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(map)) {
        cJSON_Delete(root);
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: no \"weight_map\" object", index_path);
    }
    flava_status st = FLAVA_OK;
    const cJSON *e;
    cJSON_ArrayForEach(e, map)
    {
        if (!cJSON_IsString(e) || strchr(e->valuestring, '/')) {
            st = FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: weight_map[\"%s\"] is not a shard file name",
                             index_path, e->string);
            break;
        }
        int seen = 0;
        for (const cJSON *p = map->child; p != e; p = p->next)
            seen |= !strcmp(p->valuestring, e->valuestring);
        if (seen)
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->valuestring);
        if ((st = add_file(s, path)) != FLAVA_OK)
            break;
    }
    cJSON_Delete(root);
    return st;
}

static flava_status source_open(source *s, const char *path)
{
    memset(s, 0, sizeof *s);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return FLAVA_ERROR(FLAVA_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    flava_status st;
    if (!S_ISDIR(sb.st_mode)) {
        st = add_file(s, path);
    } else {
        char p[4096];
        snprintf(p, sizeof p, "%s/config.json", path);
        st = read_text(&s->config_json, p);
        snprintf(p, sizeof p, "%s/model.safetensors", path);
        if (st == FLAVA_OK && stat(p, &sb) == 0) {
            st = add_file(s, p);
        } else if (st == FLAVA_OK) {
            snprintf(p, sizeof p, "%s/model.safetensors.index.json", path);
            if (stat(p, &sb) == 0)
                st = add_shards(s, path, p);
            else
                st = FLAVA_ERROR(FLAVA_ERR_IO,
                                 "%s: neither model.safetensors nor model.safetensors.index.json",
                                 path);
        }
    }
    if (st != FLAVA_OK)
        source_free(s);
    return st;
}

static const flava_st_tensor *source_find(const source *s, const char *name, const flava_st **in)
{
    for (int i = 0; i < s->nfiles; i++) {
        const flava_st_tensor *t = flava_st_find(s->files[i], name);
        if (t) {
            if (in)
                *in = s->files[i];
            return t;
        }
    }
    return NULL;
}

/* The config JSON: a folder's config.json, else the metadata "config". */
static flava_status source_json(const char **json, const source *s, const char *path)
{
    *json = s->config_json ? s->config_json : flava_st_meta(s->files[0], "config");
    if (!*json)
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: no __metadata__[\"config\"] (the model config)",
                           path);
    return FLAVA_OK;
}

static flava_status source_config(flava_config *c, const source *s, const char *path)
{
    flava_config_default(c);
    const char *json;
    FLAVA_TRY(source_json(&json, s, path));
    return flava_config_from_json(c, json, path);
}

flava_status flava_checkpoint_read_config(flava_config *c, const char *path)
{
    source s;
    FLAVA_TRY(source_open(&s, path));
    flava_status st = source_config(c, &s, path);
    source_free(&s);
    return st;
}

flava_status flava_checkpoint_read_json(char **json, const char *path)
{
    *json = NULL;
    source s;
    FLAVA_TRY(source_open(&s, path));
    const char *text;
    flava_status st = source_json(&text, &s, path);
    if (st == FLAVA_OK && !(*json = strdup(text)))
        st = FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s: cannot copy the config JSON", path);
    source_free(&s);
    return st;
}

/* ---- loading weights ---- */

/* A growing ", "-separated list of names for the error message. */
typedef struct namelist {
    char buf[2048];
    int count;
} namelist;

/* Adds "name" or, with a shape, "name (expected shape)". */
static void namelist_add(namelist *l, const char *name, const char *expected)
{
    size_t used = strlen(l->buf);
    if (l->count < 12 && used < sizeof l->buf - 1)
        snprintf(l->buf + used, sizeof l->buf - used, "%s%s%s%s%s", l->count ? ", " : "", name,
                 expected ? " (expected " : "", expected ? expected : "", expected ? ")" : "");
    l->count++;
}

static int same_shape(const flava_st_tensor *t, int ndim, const int64_t *shape)
{
    if (t->ndim != ndim)
        return 0;
    for (int d = 0; d < ndim; d++)
        if (t->shape[d] != shape[d])
            return 0;
    return 1;
}

/* HF buffers that are not parameters */
static int is_buffer(const char *name)
{
    size_t n = strlen(name);
    return (n > 13 && !strcmp(name + n - 13, ".position_ids")) ||
           (n > 15 && !strcmp(name + n - 15, ".token_type_ids"));
}

static flava_status load_tensor(float *dst, const flava_st_tensor *t, const char *file)
{
    flava_status st = flava_st_to_f32(dst, t);
    if (st != FLAVA_OK)
        flava_error_context("%s", file);
    return st;
}

static flava_status codebook_config_of(flava_codebook_config *cc, const flava_config *c)
{
    flava_codebook_config_default(cc);
    cc->num_groups = c->image_codebook.num_groups;
    cc->input_channels = c->image_codebook.input_channels;
    cc->num_blocks_per_group = c->image_codebook.num_blocks_per_group;
    cc->hidden_size = c->image_codebook.hidden_size;
    cc->vocab_size = c->image_codebook.vocab_size;
    return FLAVA_OK;
}

static flava_status load_codebook(flava_model *m, const source *s, const char *path,
                                  namelist *missing, namelist *bad)
{
    flava_codebook_config cc;
    FLAVA_TRY(codebook_config_of(&cc, &m->cfg));
    if (!m->codebook)
        FLAVA_TRY(flava_codebook_create(&m->codebook, &cc));
    int n;
    const flava_codebook_param *p = flava_codebook_params(m->codebook, &n);
    int64_t total;
    float *w = flava_codebook_weights(m->codebook, &total);
    for (int i = 0; i < n; i++) {
        const flava_st *in;
        const flava_st_tensor *t = source_find(s, p[i].name, &in);
        char shape[64];
        if (!t) {
            namelist_add(missing, p[i].name, NULL);
        } else if (!same_shape(t, p[i].ndim, p[i].shape)) {
            flava_st_format_shape(shape, sizeof shape, p[i].ndim, p[i].shape);
            namelist_add(bad, p[i].name, shape);
        } else {
            FLAVA_TRY(load_tensor(w + p[i].offset, t, flava_st_path(in)));
        }
    }
    (void)path;
    return FLAVA_OK;
}

/* Loads every tensor of table t found in s into params, listing the
 * missing, mis-shaped and unexpected keys. A key may also be stored
 * without the table's `optional` prefix (if not NULL: "flava." for a HF
 * FlavaModel checkpoint). Keys starting with `aside` (if not NULL) are
 * neither loaded nor unexpected, *has_aside tells if any. */
static flava_status load_table(const source *s, const flava_param_table *tab, float *params,
                               const char *optional, const char *aside, int *has_aside,
                               namelist *missing, namelist *bad, namelist *unexpected)
{
    const size_t nopt = optional ? strlen(optional) : 0;
    for (int i = 0; i < tab->n; i++) {
        const flava_param *p = &tab->p[i];
        const flava_st *in = NULL;
        const flava_st_tensor *t = source_find(s, p->name, &in);
        if (!t && p->alias[0])
            t = source_find(s, p->alias, &in);
        if (!t && nopt && !strncmp(p->name, optional, nopt))
            t = source_find(s, p->name + nopt, &in);
        char shape[64];
        if (!t) {
            namelist_add(missing, p->name, NULL);
        } else if (!same_shape(t, p->ndim, p->shape)) {
            flava_st_format_shape(shape, sizeof shape, p->ndim, p->shape);
            namelist_add(bad, p->name, shape);
        } else {
            FLAVA_TRY(load_tensor(params + p->offset, t, flava_st_path(in)));
        }
    }
    *has_aside = 0;
    for (int f = 0; f < s->nfiles; f++) {
        for (int i = 0; i < flava_st_count(s->files[f]); i++) {
            const char *name = flava_st_get(s->files[f], i)->name;
            char prefixed[FLAVA_PARAM_NAME_MAX + 8];
            snprintf(prefixed, sizeof prefixed, "%s%s", nopt ? optional : "", name);
            if (aside && !strncmp(name, aside, strlen(aside)))
                *has_aside = 1;
            else if (!flava_params_find(tab, name) && !flava_params_find(tab, prefixed) &&
                     !is_buffer(name))
                namelist_add(unexpected, name, NULL);
        }
    }
    return FLAVA_OK;
}

/* Refuses mis-shaped tensors, and missing or unexpected keys unless partial. */
static flava_status load_verdict(const char *path, const namelist *missing,
                                 const namelist *unexpected, const namelist *bad, int partial)
{
    if (bad->count)
        return FLAVA_ERROR(FLAVA_ERR_SHAPE, "%s: %d tensor(s) of the wrong shape: %s%s", path,
                           bad->count, bad->buf, bad->count > 12 ? ", ..." : "");
    if (!partial && (missing->count || unexpected->count))
        return FLAVA_ERROR(FLAVA_ERR_FORMAT,
                           "%s: %d missing key(s)%s%s%s; %d unexpected key(s)%s%s%s "
                           "(a partial load allows both)",
                           path, missing->count, missing->count ? ": " : "", missing->buf,
                           missing->count > 12 ? ", ..." : "", unexpected->count,
                           unexpected->count ? ": " : "", unexpected->buf,
                           unexpected->count > 12 ? ", ..." : "");
    return FLAVA_OK;
}

flava_status flava_checkpoint_load_table(const flava_param_table *t, float *params,
                                         const char *path, int partial)
{
    source s;
    FLAVA_TRY(source_open(&s, path));
    namelist missing = {{0}, 0}, unexpected = {{0}, 0}, bad = {{0}, 0};
    int unused;
    flava_status st =
        load_table(&s, t, params, NULL, NULL, &unused, &missing, &bad, &unexpected);
    source_free(&s);
    FLAVA_TRY(st);
    return load_verdict(path, &missing, &unexpected, &bad, partial);
}

flava_status flava_checkpoint_load_weights(flava_model *m, const char *path, int partial)
{
    source s;
    FLAVA_TRY(source_open(&s, path));
    namelist missing = {{0}, 0}, unexpected = {{0}, 0}, bad = {{0}, 0};
    int has_codebook = 0;
    flava_status st = load_table(&s, &m->table, m->params, "flava.", "image_codebook.",
                                 &has_codebook, &missing, &bad, &unexpected);
    if (st == FLAVA_OK && has_codebook)
        st = load_codebook(m, &s, path, &missing, &bad);
    source_free(&s);
    FLAVA_TRY(st);
    return load_verdict(path, &missing, &unexpected, &bad, partial);
}

flava_status flava_checkpoint_load(flava_model **out, const char *path,
                                   const flava_head_set *heads, int partial, uint64_t seed)
{
    *out = NULL;
    flava_config c;
    FLAVA_TRY(flava_checkpoint_read_config(&c, path));
    flava_model *m;
    FLAVA_TRY(flava_model_create(&m, &c, heads));
    flava_model_init_weights(m, seed);
    flava_status st = flava_checkpoint_load_weights(m, path, partial);
    if (st != FLAVA_OK) {
        flava_model_destroy(m);
        return st;
    }
    *out = m;
    return FLAVA_OK;
}

/* ---- writing ---- */

/* The table's tensors from params (and, with block2, a second copy from
 * block2 under prefix2, the first then under "exp_avg."), plus the
 * codebook's if not NULL. */
static flava_status write_tensors(const flava_param_table *tab, const float *params,
                                  struct flava_codebook *codebook, const char *path,
                                  const char *prefix2, const float *block2,
                                  const flava_st_kv *meta, int nmeta)
{
    /* two passes over the table (prefixed copies for the optimizer file) */
    int ncb = 0;
    const flava_codebook_param *cb = NULL;
    const float *cbw = NULL;
    if (codebook) {
        cb = flava_codebook_params(codebook, &ncb);
        int64_t total;
        cbw = flava_codebook_weights(codebook, &total);
    }
    const int per = block2 ? 2 : 1;
    size_t n = 0;
    for (int i = 0; i < tab->n; i++)
        n += (size_t)per * (tab->p[i].alias[0] ? 2 : 1);
    n += (size_t)ncb;
    flava_st_tensor *t = calloc(n ? n : 1, sizeof *t);
    char(*names)[2 * FLAVA_PARAM_NAME_MAX] = calloc(n ? n : 1, sizeof *names);
    if (!t || !names) {
        free(t);
        free(names);
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot list %zu tensors for %s", n, path);
    }
    size_t k = 0;
    for (int pass = 0; pass < per; pass++) {
        const float *base = pass ? block2 : params;
        for (int i = 0; i < tab->n; i++) {
            const flava_param *p = &tab->p[i];
            for (int a = 0; a < (p->alias[0] ? 2 : 1); a++) {
                const char *key = a ? p->alias : p->name;
                if (block2)
                    snprintf(names[k], sizeof names[k], "%s%s", pass ? prefix2 : "exp_avg.", key);
                else
                    snprintf(names[k], sizeof names[k], "%s", key);
                t[k].name = names[k];
                t[k].dtype = FLAVA_F32;
                t[k].ndim = p->ndim;
                memcpy(t[k].shape, p->shape, sizeof p->shape);
                t[k].data = base + p->offset;
                t[k].nbytes = p->numel * sizeof(float);
                k++;
            }
        }
    }
    for (int i = 0; i < ncb; i++, k++) {
        t[k].name = cb[i].name;
        t[k].dtype = FLAVA_F32;
        t[k].ndim = cb[i].ndim;
        memcpy(t[k].shape, cb[i].shape, sizeof cb[i].shape);
        t[k].data = cbw + cb[i].offset;
        t[k].nbytes = (size_t)cb[i].numel * sizeof(float);
    }
    flava_status st = flava_st_write(path, t, (int)k, meta, nmeta);
    free(t);
    free(names);
    return st;
}

flava_status flava_checkpoint_save(const flava_model *m, const char *path)
{
    char *json;
    FLAVA_TRY(flava_config_to_json(&json, &m->cfg));
    flava_st_kv meta = {"config", json};
    flava_status st = write_tensors(&m->table, m->params, m->codebook, path, NULL, NULL, &meta, 1);
    free(json);
    return st;
}

flava_status flava_checkpoint_save_table(const flava_param_table *t, const float *params,
                                         const char *config_json, const char *path)
{
    flava_st_kv meta = {"config", config_json};
    return write_tensors(t, params, NULL, path, NULL, NULL, &meta, 1);
}

flava_status flava_checkpoint_save_optim(const flava_param_table *t, const float *exp_avg,
                                         const float *exp_avg_sq, int64_t step,
                                         uint64_t rng_state, int ranks, const char *path)
{
    char sstep[32], srng[32], sranks[16];
    snprintf(sstep, sizeof sstep, "%" PRId64, step);
    snprintf(srng, sizeof srng, "%" PRIu64, rng_state);
    snprintf(sranks, sizeof sranks, "%d", ranks);
    const flava_st_kv meta[] = {{"ranks", sranks}, {"rng_state", srng}, {"step", sstep}};
    /* exp_avg.<key> from the first block, exp_avg_sq.<key> from the second:
     * write_tensors walks the table once per block */
    return write_tensors(t, exp_avg, NULL, path, "exp_avg_sq.", exp_avg_sq, meta, 3);
}

static flava_status meta_u64(uint64_t *out, const flava_st *st, const char *key)
{
    const char *v = flava_st_meta(st, key);
    char *end = NULL;
    errno = 0;
    unsigned long long x = v ? strtoull(v, &end, 10) : 0;
    if (!v || errno || end == v || *end)
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: __metadata__[\"%s\"] is %s%s%s",
                           flava_st_path(st), key, v ? "'" : "missing", v ? v : "",
                           v ? "', not an unsigned integer" : "");
    *out = x;
    return FLAVA_OK;
}

flava_status flava_checkpoint_load_optim(const flava_param_table *t, float *exp_avg,
                                         float *exp_avg_sq, int64_t *step,
                                         uint64_t *rng_state, int *ranks, const char *path)
{
    flava_st *st;
    FLAVA_TRY(flava_st_read(&st, path));
    uint64_t s = 0, r_ranks = 1;
    flava_status r = meta_u64(&s, st, "step");
    if (r == FLAVA_OK)
        r = meta_u64(rng_state, st, "rng_state");
    if (r == FLAVA_OK && flava_st_meta(st, "ranks"))
        r = meta_u64(&r_ranks, st, "ranks");
    if (r == FLAVA_OK && (r_ranks < 1 || r_ranks > INT_MAX))
        r = FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: __metadata__[\"ranks\"] is %llu, expected 1 or more",
                        path, (unsigned long long)r_ranks);
    *step = (int64_t)s;
    *ranks = (int)r_ranks;
    for (int pass = 0; r == FLAVA_OK && pass < 2; pass++) {
        float *dst = pass ? exp_avg_sq : exp_avg;
        for (int i = 0; r == FLAVA_OK && i < t->n; i++) {
            const flava_param *p = &t->p[i];
            char name[2 * FLAVA_PARAM_NAME_MAX];
            snprintf(name, sizeof name, "%s%s", pass ? "exp_avg_sq." : "exp_avg.", p->name);
            r = flava_st_load_f32(dst + p->offset, st, name, p->ndim, p->shape);
        }
    }
    flava_st_free(st);
    return r;
}

/* ---- batches of HF-named inputs ---- */

void flava_batch_free(flava_batch *b)
{
    flava_free(b->pixel_values);
    flava_free(b->codebook_pixel_values);
    flava_free(b->bool_masked_pos);
    flava_free(b->input_ids);
    flava_free(b->input_ids_masked);
    flava_free(b->token_type_ids);
    flava_free(b->attention_mask);
    flava_free(b->mlm_labels);
    flava_free(b->mim_labels);
    flava_free(b->itm_labels);
    flava_free(b->vqa_targets);
    flava_free(b->class_labels);
    flava_free(b->regression_targets);
    memset(b, 0, sizeof *b);
}

/* Reads `name` if present, checking its leading dims against want[0..n)
 * (-1 = any, set from the tensor); its total size must be the product of
 * want[] and `per` trailing elements. */
static flava_status read_input(void **dst, int as_float, const flava_st *st, const char *name,
                               int64_t *lead, int nlead, int64_t trailing)
{
    const flava_st_tensor *t = flava_st_find(st, name);
    if (!t)
        return FLAVA_OK;
    if (t->ndim < nlead)
        return FLAVA_ERROR(FLAVA_ERR_SHAPE, "%s: %s has %d dimensions, expected at least %d",
                           flava_st_path(st), name, t->ndim, nlead);
    for (int d = 0; d < nlead; d++) {
        if (lead[d] < 0)
            lead[d] = t->shape[d];
        else if (lead[d] != t->shape[d])
            return FLAVA_ERROR(FLAVA_ERR_SHAPE, "%s: %s has size %lld in dimension %d, expected "
                               "%lld (as the other inputs)",
                               flava_st_path(st), name, (long long)t->shape[d], d,
                               (long long)lead[d]);
    }
    int64_t n = flava_st_numel(t);
    int64_t expect = trailing;
    for (int d = 0; d < nlead; d++)
        expect *= lead[d];
    if (trailing > 0 && n != expect)
        return FLAVA_ERROR(FLAVA_ERR_SHAPE, "%s: %s has %lld elements, expected %lld",
                           flava_st_path(st), name, (long long)n, (long long)expect);
    void *p;
    FLAVA_TRY(flava_alloc(&p, (size_t)(n ? n : 1) * 4, name));
    flava_status s = as_float ? flava_st_to_f32(p, t) : flava_st_to_i32(p, t);
    if (s != FLAVA_OK) {
        flava_free(p);
        flava_error_context("%s: %s", flava_st_path(st), name);
        return s;
    }
    *dst = p;
    return FLAVA_OK;
}

flava_status flava_batch_read(flava_batch *b, const flava_st *st, const flava_config *c)
{
    memset(b, 0, sizeof *b);
    const int side = c->image.image_size / c->image.patch_size;
    int64_t bt[2] = {-1, -1}; /* batch, text length */
    int64_t img[1] = {-1};
    flava_status s = FLAVA_OK;
    const int64_t chw = (int64_t)c->image.num_channels * c->image.image_size * c->image.image_size;
    void *mask = NULL, *bmp = NULL;
#define IN(field, f, nl, tr) \
    if (s == FLAVA_OK)       \
        s = read_input((void **)&b->field, f, st, #field, bt, nl, tr);
    IN(input_ids, 0, 2, 1);
    IN(input_ids_masked, 0, 2, 1);
    IN(token_type_ids, 0, 2, 1);
    IN(mlm_labels, 0, 2, 1);
    /* attention_mask: HF passes it as integers; the model wants floats */
    const flava_st_tensor *am = flava_st_find(st, "attention_mask");
    const int am_float = am && (am->dtype == FLAVA_F32 || am->dtype == FLAVA_BF16);
    if (s == FLAVA_OK)
        s = read_input(&mask, am_float, st, "attention_mask", bt, 2, 1);
    if (s == FLAVA_OK && mask && !am_float) {
        int32_t *iv = mask;
        float *fv = mask; /* same size: converted in place */
        for (int64_t i = 0; i < bt[0] * bt[1]; i++)
            fv[i] = (float)iv[i];
    }
    b->attention_mask = mask;
    img[0] = bt[0];
    if (s == FLAVA_OK)
        s = read_input((void **)&b->pixel_values, 1, st, "pixel_values", img, 1, chw);
    if (s == FLAVA_OK)
        s = read_input((void **)&b->mim_labels, 0, st, "mim_labels", img, 1,
                       (int64_t)side * side);
    if (s == FLAVA_OK)
        s = read_input(&bmp, 0, st, "bool_masked_pos", img, 1, (int64_t)side * side);
    if (s == FLAVA_OK)
        s = read_input((void **)&b->codebook_pixel_values, 1, st, "codebook_pixel_values", img, 1,
                       (int64_t)c->image_codebook.input_channels * 64 * side * side);
    if (s == FLAVA_OK)
        s = read_input((void **)&b->itm_labels, 0, st, "itm_labels", img, 1, 1);
    if (s == FLAVA_OK)
        s = read_input((void **)&b->vqa_targets, 1, st, "vqa_targets", img, 1, c->vqa_num_answers);
    const flava_st_tensor *lab = flava_st_find(st, "labels");
    if (s == FLAVA_OK && lab)
        s = lab->dtype == FLAVA_F32 || lab->dtype == FLAVA_BF16
                ? read_input((void **)&b->regression_targets, 1, st, "labels", img, 1, 1)
                : read_input((void **)&b->class_labels, 0, st, "labels", img, 1, 1);
#undef IN
    if (s == FLAVA_OK && bmp) { /* bytes for the model */
        int32_t *w = bmp;
        int64_t n = img[0] * side * side;
        s = flava_alloc((void **)&b->bool_masked_pos, (size_t)n, "bool_masked_pos");
        for (int64_t i = 0; s == FLAVA_OK && i < n; i++)
            b->bool_masked_pos[i] = w[i] != 0;
    }
    flava_free(bmp);
    if (s == FLAVA_OK && img[0] < 0)
        s = FLAVA_ERROR(FLAVA_ERR_ARG, "%s: neither pixel_values nor input_ids",
                        flava_st_path(st));
    if (s != FLAVA_OK) {
        flava_batch_free(b);
        return s;
    }
    b->B = (int)img[0];
    b->T = bt[1] > 0 ? (int)bt[1] : 0;
    b->P = side * side;
    b->image_size = c->image.image_size;
    return FLAVA_OK;
}

double flava_rel_error(const float *a, const float *ref, int64_t n, double floor, int64_t *at)
{
    double scale = 0, worst = 0;
    for (int64_t i = 0; i < n; i++)
        scale = fabs(ref[i]) > scale ? fabs(ref[i]) : scale;
    *at = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - ref[i]) / (fabs(ref[i]) + 1e-2 * scale + floor + 1e-30);
        if (!(e <= worst)) { /* NaN counts as infinitely wrong */
            worst = isnan(e) ? INFINITY : e;
            *at = i;
        }
    }
    return worst;
}

/* safetensors.c - validated reader (mmap) and atomic, deterministic writer. */
#include "safetensors.h"

#include "tsv.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The data are little-endian on disk and used in place. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "flava assumes a little-endian host");

/* Same bound as the reference implementation: beyond this a header length
 * is garbage, not a header. */
#define HEADER_MAX ((uint64_t)100000000)
/* JSON numbers are doubles: larger integers are not exact. */
#define JSON_INT_MAX 9007199254740992.0

static const char *const dtype_names[FLAVA_DTYPE_COUNT] = {
    [FLAVA_F32] = "F32", [FLAVA_BF16] = "BF16", [FLAVA_I64] = "I64",
    [FLAVA_I32] = "I32", [FLAVA_U8] = "U8",     [FLAVA_BOOL] = "BOOL",
};
static const size_t dtype_sizes[FLAVA_DTYPE_COUNT] = {
    [FLAVA_F32] = 4, [FLAVA_BF16] = 2, [FLAVA_I64] = 8,
    [FLAVA_I32] = 4, [FLAVA_U8] = 1,   [FLAVA_BOOL] = 1,
};

size_t flava_dtype_size(flava_dtype dtype)
{
    return (unsigned)dtype < FLAVA_DTYPE_COUNT ? dtype_sizes[dtype] : 0;
}

const char *flava_dtype_name(flava_dtype dtype)
{
    return (unsigned)dtype < FLAVA_DTYPE_COUNT ? dtype_names[dtype] : "?";
}

int64_t flava_st_numel(const flava_st_tensor *t)
{
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= t->shape[d];
    return n;
}

/* numel × element size, or -1 if a dimension is negative or it overflows. */
static int64_t checked_nbytes(const int64_t *shape, int ndim, size_t elem)
{
    int64_t n = (int64_t)elem;
    for (int d = 0; d < ndim; d++)
        if (shape[d] < 0 || __builtin_mul_overflow(n, shape[d], &n))
            return -1;
    return n;
}

const char *flava_st_format_shape(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t used = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < ndim && used < n; d++)
        used += (size_t)snprintf(buf + used, n - used, "%s%lld", d ? ", " : "",
                                 (long long)shape[d]);
    if (used < n)
        snprintf(buf + used, n - used, "]");
    return buf;
}

/* ------------------------------------------------------------------ reader */

struct flava_st {
    char *path;
    void *map;
    size_t map_len;
    int n;
    flava_st_tensor *tensors; /* sorted by name; names owned */
    int nmeta;
    flava_st_kv *meta;        /* sorted by key; strings owned */
};

static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp(((const flava_st_tensor *)a)->name, ((const flava_st_tensor *)b)->name);
}

static int cmp_kv_key(const void *a, const void *b)
{
    return strcmp(((const flava_st_kv *)a)->key, ((const flava_st_kv *)b)->key);
}

void flava_st_free(flava_st *st)
{
    if (!st)
        return;
    for (int i = 0; i < st->n; i++)
        free((char *)st->tensors[i].name);
    for (int i = 0; i < st->nmeta; i++) {
        free((char *)st->meta[i].key);
        free((char *)st->meta[i].value);
    }
    free(st->tensors);
    free(st->meta);
    if (st->map)
        munmap(st->map, st->map_len);
    free(st->path);
    free(st);
}

/* A JSON number that is an exact integer in [0, 2^53]; else -1. A negative
 * integer gives -2 so that the caller can say "negative". */
static int64_t json_uint(const cJSON *v)
{
    if (!cJSON_IsNumber(v))
        return -1;
    double d = v->valuedouble;
    if (!(d >= -JSON_INT_MAX && d <= JSON_INT_MAX) || d != (double)(int64_t)d)
        return -1;
    return d < 0 ? -2 : (int64_t)d;
}

static flava_status parse_metadata(flava_st *st, const cJSON *obj)
{
    const char *path = st->path;
    if (!cJSON_IsObject(obj))
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: __metadata__ is not an object of strings", path);
    int n = cJSON_GetArraySize(obj);
    st->meta = calloc((size_t)n + 1, sizeof *st->meta);
    if (!st->meta)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s: cannot allocate the metadata", path);
    for (const cJSON *kv = obj->child; kv; kv = kv->next) {
        if (!cJSON_IsString(kv))
            return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: metadata key '%s' has a value that is not a string",
                               path, kv->string);
        flava_st_kv *m = &st->meta[st->nmeta];
        m->key = strdup(kv->string);
        m->value = strdup(kv->valuestring);
        if (m->key)
            st->nmeta++; /* owned from here on, even if value failed */
        if (!m->key || !m->value)
            return FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s: cannot copy metadata key '%s'", path, kv->string);
    }
    qsort(st->meta, (size_t)st->nmeta, sizeof *st->meta, cmp_kv_key);
    for (int i = 1; i < st->nmeta; i++)
        if (!strcmp(st->meta[i - 1].key, st->meta[i].key))
            return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: metadata key '%s' appears twice", path,
                               st->meta[i].key);
    return FLAVA_OK;
}

/* Fills t (name excepted) from one header entry; begin/end are offsets in
 * the data area of data_len bytes. */
static flava_status parse_entry(flava_st_tensor *t, int64_t *begin, int64_t *end,
                                const char *path, const cJSON *e, const unsigned char *data,
                                uint64_t data_len)
{
    const char *name = e->string;
    if (!cJSON_IsObject(e))
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: tensor '%s': entry is not an object", path, name);
    const cJSON *dtype = NULL, *shape = NULL, *offsets = NULL;
    for (const cJSON *f = e->child; f; f = f->next) {
        if (!strcmp(f->string, "dtype") && !dtype)
            dtype = f;
        else if (!strcmp(f->string, "shape") && !shape)
            shape = f;
        else if (!strcmp(f->string, "data_offsets") && !offsets)
            offsets = f;
        else
            return FLAVA_ERROR(FLAVA_ERR_FORMAT,
                               "%s: tensor '%s': unexpected or repeated field '%s' (expected dtype, shape, data_offsets)",
                               path, name, f->string);
    }
    if (!dtype || !shape || !offsets)
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: tensor '%s': missing field '%s'", path, name,
                           !dtype ? "dtype" : !shape ? "shape" : "data_offsets");

    if (!cJSON_IsString(dtype))
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: tensor '%s': dtype is not a string", path, name);
    int k = 0;
    while (k < FLAVA_DTYPE_COUNT && strcmp(dtype_names[k], dtype->valuestring))
        k++;
    if (k == FLAVA_DTYPE_COUNT)
        return FLAVA_ERROR(FLAVA_ERR_FORMAT,
                           "%s: tensor '%s': unsupported dtype '%s' (flava reads F32, BF16, I64, I32, U8, BOOL)",
                           path, name, dtype->valuestring);
    t->dtype = (flava_dtype)k;

    if (!cJSON_IsArray(shape))
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: tensor '%s': shape is not an array", path, name);
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > FLAVA_ST_MAX_DIMS)
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: tensor '%s': %d dimensions, at most %d supported",
                           path, name, ndim, FLAVA_ST_MAX_DIMS);
    t->ndim = 0;
    for (const cJSON *d = shape->child; d; d = d->next) {
        int64_t v = json_uint(d);
        if (v < 0)
            return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: tensor '%s': dimension %d is %s", path, name,
                               t->ndim, v == -2 ? "negative" : "not a non-negative integer");
        t->shape[t->ndim++] = v;
    }
    int64_t nbytes = checked_nbytes(t->shape, t->ndim, dtype_sizes[k]);
    if (nbytes < 0)
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: tensor '%s': shape overflows the size of a tensor",
                           path, name);

    if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2)
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: tensor '%s': data_offsets is not [begin, end]",
                           path, name);
    *begin = json_uint(offsets->child);
    *end = json_uint(offsets->child->next);
    if (*begin < 0 || *end < 0 || *end < *begin)
        return FLAVA_ERROR(FLAVA_ERR_FORMAT,
                           "%s: tensor '%s': data_offsets must be integers 0 <= begin <= end", path,
                           name);
    if ((uint64_t)*end > data_len)
        return FLAVA_ERROR(FLAVA_ERR_FORMAT,
                           "%s: tensor '%s': data_offsets [%lld, %lld] run past the data area (%llu bytes)",
                           path, name, (long long)*begin, (long long)*end,
                           (unsigned long long)data_len);
    if (*end - *begin != nbytes) {
        char sh[256];
        flava_st_format_shape(sh, sizeof sh, t->ndim, t->shape);
        return FLAVA_ERROR(FLAVA_ERR_FORMAT,
                           "%s: tensor '%s': data_offsets span %lld bytes but %s %s takes %lld", path,
                           name, (long long)(*end - *begin), dtype_names[k], sh,
                           (long long)nbytes);
    }
    t->data = data + *begin;
    t->nbytes = (size_t)nbytes;
    return FLAVA_OK;
}

typedef struct span {
    int64_t begin, end;
    const char *name;
} span;

static int cmp_span(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

/* The tensors must tile the data area exactly, as the reference reader
 * demands: an overlap or a hole means a corrupt or hand-edited header. */
static flava_status check_tiling(span *spans, int n, const char *path, uint64_t data_len)
{
    qsort(spans, (size_t)n, sizeof *spans, cmp_span);
    int64_t at = 0;
    const char *prev = NULL;
    for (int i = 0; i < n; i++) {
        if (spans[i].begin < at)
            return FLAVA_ERROR(FLAVA_ERR_FORMAT,
                               "%s: tensors '%s' [%lld, %lld) and '%s' [%lld, %lld) overlap", path,
                               prev, (long long)spans[i - 1].begin, (long long)spans[i - 1].end,
                               spans[i].name, (long long)spans[i].begin, (long long)spans[i].end);
        if (spans[i].begin > at)
            return FLAVA_ERROR(FLAVA_ERR_FORMAT,
                               "%s: %lld unused bytes before tensor '%s' at data offset %lld", path,
                               (long long)(spans[i].begin - at), spans[i].name, (long long)at);
        at = spans[i].end;
        prev = spans[i].name;
    }
    if ((uint64_t)at != data_len)
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: %llu unused bytes after the last tensor", path,
                           (unsigned long long)(data_len - (uint64_t)at));
    return FLAVA_OK;
}

static flava_status parse_header(flava_st *st, const cJSON *root, const unsigned char *data,
                                 uint64_t data_len)
{
    const char *path = st->path;
    if (!cJSON_IsObject(root))
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: the JSON header is not an object", path);
    int total = cJSON_GetArraySize(root);
    st->tensors = calloc((size_t)total + 1, sizeof *st->tensors);
    span *spans = calloc((size_t)total + 1, sizeof *spans);
    if (!st->tensors || !spans) {
        free(spans);
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s: cannot allocate %d tensor entries", path, total);
    }
    flava_status s = FLAVA_OK;
    int seen_meta = 0;
    for (const cJSON *e = root->child; e && s == FLAVA_OK; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            s = seen_meta++ ? FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: __metadata__ appears twice", path)
                            : parse_metadata(st, e);
            continue;
        }
        flava_st_tensor *t = &st->tensors[st->n];
        span *sp = &spans[st->n];
        s = parse_entry(t, &sp->begin, &sp->end, path, e, data, data_len);
        if (s != FLAVA_OK)
            break;
        if (!(t->name = strdup(e->string))) {
            s = FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s: cannot copy tensor name '%s'", path, e->string);
            break;
        }
        sp->name = t->name;
        st->n++;
    }
    if (s == FLAVA_OK) {
        qsort(st->tensors, (size_t)st->n, sizeof *st->tensors, cmp_tensor_name);
        for (int i = 1; i < st->n && s == FLAVA_OK; i++)
            if (!strcmp(st->tensors[i - 1].name, st->tensors[i].name))
                s = FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: tensor '%s' appears twice", path,
                                st->tensors[i].name);
    }
    if (s == FLAVA_OK)
        s = check_tiling(spans, st->n, path, data_len);
    free(spans);
    return s;
}

static flava_status map_file(flava_st *st)
{
    const char *path = st->path;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return FLAVA_ERROR(FLAVA_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    flava_status s = FLAVA_OK;
    if (fstat(fd, &sb) != 0)
        s = FLAVA_ERROR(FLAVA_ERR_IO, "cannot stat %s: %s", path, strerror(errno));
    else if (!S_ISREG(sb.st_mode))
        s = FLAVA_ERROR(FLAVA_ERR_IO, "%s is not a regular file", path);
    else if (sb.st_size < 8)
        s = FLAVA_ERROR(FLAVA_ERR_FORMAT,
                        "%s: %lld bytes is too short for a safetensors file (the header length alone takes 8)",
                        path, (long long)sb.st_size);
    if (s == FLAVA_OK) {
        void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED)
            s = FLAVA_ERROR(FLAVA_ERR_IO, "cannot map %s: %s", path, strerror(errno));
        else {
            st->map = m;
            st->map_len = (size_t)sb.st_size;
        }
    }
    close(fd);
    return s;
}

flava_status flava_st_read(flava_st **out, const char *path)
{
    *out = NULL;
    flava_st *st = calloc(1, sizeof *st);
    if (!st || !(st->path = strdup(path))) {
        free(st);
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot allocate a reader for %s", path);
    }
    flava_status s = map_file(st);
    if (s != FLAVA_OK) {
        flava_st_free(st);
        return s;
    }
    const unsigned char *bytes = st->map;
    uint64_t hlen;
    memcpy(&hlen, bytes, 8);
    uint64_t avail = (uint64_t)st->map_len - 8;
    if (hlen > HEADER_MAX)
        s = FLAVA_ERROR(FLAVA_ERR_FORMAT,
                        "%s: header length %llu is absurd (more than %llu bytes): not a safetensors file?",
                        path, (unsigned long long)hlen, (unsigned long long)HEADER_MAX);
    else if (hlen > avail)
        s = FLAVA_ERROR(FLAVA_ERR_FORMAT,
                        "%s: header length %llu runs past the end of the file (%llu bytes after the length): truncated?",
                        path, (unsigned long long)hlen, (unsigned long long)avail);
    else if (hlen < 2 || bytes[8] != '{')
        s = FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: the header does not start with a JSON object", path);
    if (s != FLAVA_OK) {
        flava_st_free(st);
        return s;
    }
    const char *json = (const char *)bytes + 8;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, (size_t)hlen, &end, 0);
    if (!root) {
        s = FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: invalid JSON in the header near byte %lld of %llu",
                        path, end ? (long long)(end - json) : -1LL, (unsigned long long)hlen);
    } else {
        /* Only the space padding may follow the JSON object. */
        for (const char *p = end; p < json + hlen && s == FLAVA_OK; p++)
            if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
                s = FLAVA_ERROR(FLAVA_ERR_FORMAT,
                                "%s: unexpected bytes after the JSON header at byte %lld", path,
                                (long long)(p - json));
        if (s == FLAVA_OK)
            s = parse_header(st, root, bytes + 8 + hlen, avail - hlen);
        cJSON_Delete(root);
    }
    if (s != FLAVA_OK) {
        flava_st_free(st);
        return s;
    }
    *out = st;
    return FLAVA_OK;
}

const char *flava_st_path(const flava_st *st) { return st->path; }
int flava_st_count(const flava_st *st) { return st->n; }
int flava_st_meta_count(const flava_st *st) { return st->nmeta; }

const flava_st_tensor *flava_st_get(const flava_st *st, int i)
{
    return i >= 0 && i < st->n ? &st->tensors[i] : NULL;
}

const flava_st_kv *flava_st_meta_get(const flava_st *st, int i)
{
    return i >= 0 && i < st->nmeta ? &st->meta[i] : NULL;
}

const flava_st_tensor *flava_st_find(const flava_st *st, const char *name)
{
    flava_st_tensor key = {.name = name};
    return bsearch(&key, st->tensors, (size_t)st->n, sizeof key, cmp_tensor_name);
}

const char *flava_st_meta(const flava_st *st, const char *key)
{
    if (!st->nmeta)
        return NULL; /* st->meta is NULL: bsearch wants an array */
    flava_st_kv k = {.key = key};
    const flava_st_kv *m = bsearch(&k, st->meta, (size_t)st->nmeta, sizeof k, cmp_kv_key);
    return m ? m->value : NULL;
}

flava_status flava_st_expect(const flava_st_tensor **out, const flava_st *st, const char *name,
                             int ndim, const int64_t *shape)
{
    *out = NULL;
    const flava_st_tensor *t = flava_st_find(st, name);
    if (!t)
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: no tensor '%s'", st->path, name);
    int ok = t->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++)
        ok = shape[d] < 0 || shape[d] == t->shape[d];
    if (!ok) {
        char got[256], want[256];
        flava_st_format_shape(got, sizeof got, t->ndim, t->shape);
        flava_st_format_shape(want, sizeof want, ndim, shape);
        return FLAVA_ERROR(FLAVA_ERR_SHAPE, "%s: tensor '%s' has shape %s, expected %s (-1 = any)",
                           st->path, name, got, want);
    }
    *out = t;
    return FLAVA_OK;
}

flava_status flava_st_to_f32(float *dst, const flava_st_tensor *t)
{
    int64_t n = flava_st_numel(t);
    const unsigned char *src = t->data;
    switch (t->dtype) {
    case FLAVA_F32:
        memcpy(dst, src, t->nbytes);
        return FLAVA_OK;
    case FLAVA_BF16:
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            uint32_t bits = (uint32_t)h << 16;
            memcpy(&dst[i], &bits, 4);
        }
        return FLAVA_OK;
    default:
        return FLAVA_ERROR(FLAVA_ERR_SHAPE, "tensor '%s' has dtype %s, expected F32 or BF16",
                           t->name, flava_dtype_name(t->dtype));
    }
}

flava_status flava_st_to_i32(int32_t *dst, const flava_st_tensor *t)
{
    int64_t n = flava_st_numel(t);
    const unsigned char *src = t->data;
    switch (t->dtype) {
    case FLAVA_I32:
        memcpy(dst, src, t->nbytes);
        return FLAVA_OK;
    case FLAVA_I64:
        for (int64_t i = 0; i < n; i++) {
            int64_t v;
            memcpy(&v, src + 8 * i, 8);
            if (v < INT32_MIN || v > INT32_MAX)
                return FLAVA_ERROR(FLAVA_ERR_SHAPE,
                                   "tensor '%s': element %lld is %lld, outside the int32 range",
                                   t->name, (long long)i, (long long)v);
            dst[i] = (int32_t)v;
        }
        return FLAVA_OK;
    case FLAVA_U8:
    case FLAVA_BOOL:
        for (int64_t i = 0; i < n; i++)
            dst[i] = src[i];
        return FLAVA_OK;
    default:
        return FLAVA_ERROR(FLAVA_ERR_SHAPE, "tensor '%s' has dtype %s, expected I64, I32, U8 or BOOL",
                           t->name, flava_dtype_name(t->dtype));
    }
}

/* Shapes with a -1 are for flava_st_expect: dst's size would be unknown. */
static flava_status expect_exact(const flava_st_tensor **out, const flava_st *st,
                                 const char *name, int ndim, const int64_t *shape)
{
    for (int d = 0; d < ndim; d++)
        if (shape[d] < 0)
            return FLAVA_ERROR(FLAVA_ERR_ARG, "loading tensor '%s': shape has a wildcard", name);
    return flava_st_expect(out, st, name, ndim, shape);
}

/* The one body of flava_st_load_f32 and flava_st_load_i32. */
static flava_status load_as(void *dst, int f32, const flava_st *st, const char *name, int ndim,
                            const int64_t *shape)
{
    const flava_st_tensor *t;
    FLAVA_TRY(expect_exact(&t, st, name, ndim, shape));
    flava_status s = f32 ? flava_st_to_f32(dst, t) : flava_st_to_i32(dst, t);
    if (s != FLAVA_OK)
        flava_error_context("%s", st->path);
    return s;
}

flava_status flava_st_load_f32(float *dst, const flava_st *st, const char *name, int ndim,
                               const int64_t *shape)
{
    return load_as(dst, 1, st, name, ndim, shape);
}

flava_status flava_st_load_i32(int32_t *dst, const flava_st *st, const char *name, int ndim,
                               const int64_t *shape)
{
    return load_as(dst, 0, st, name, ndim, shape);
}

/* ------------------------------------------------------------------ writer */

static void sb_puts(flava_strbuf *b, const char *s) { flava_strbuf_add(b, s, strlen(s)); }

static void sb_printf(flava_strbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void sb_printf(flava_strbuf *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    flava_strbuf_add(b, tmp, (size_t)n);
}

/* A JSON string escaped as Python's json.dumps does (for ASCII text the
 * header equals tests/reference/st.py's byte for byte); other UTF-8 bytes
 * pass through. */
static void sb_json_string(flava_strbuf *b, const char *s)
{
    sb_puts(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': sb_puts(b, "\\\""); break;
        case '\\': sb_puts(b, "\\\\"); break;
        case '\n': sb_puts(b, "\\n"); break;
        case '\r': sb_puts(b, "\\r"); break;
        case '\t': sb_puts(b, "\\t"); break;
        case '\b': sb_puts(b, "\\b"); break;
        case '\f': sb_puts(b, "\\f"); break;
        default:
            if (*p < 0x20)
                sb_printf(b, "\\u%04x", (unsigned)*p);
            else
                flava_strbuf_add(b, (const char *)p, 1);
        }
    }
    sb_puts(b, "\"");
}

static flava_status check_write_input(const char *path, const flava_st_tensor *tensors, int n,
                                      const flava_st_kv *meta, int nmeta)
{
    if (n < 0 || nmeta < 0 || (n && !tensors) || (nmeta && !meta))
        return FLAVA_ERROR(FLAVA_ERR_ARG, "writing %s: bad tensor or metadata list", path);
    for (int i = 0; i < n; i++) {
        const flava_st_tensor *t = &tensors[i];
        if (!t->name || !t->name[0] || !strcmp(t->name, "__metadata__"))
            return FLAVA_ERROR(FLAVA_ERR_ARG, "writing %s: tensor %d has no usable name ('%s')",
                               path, i, t->name ? t->name : "(null)");
        if ((unsigned)t->dtype >= FLAVA_DTYPE_COUNT || t->ndim < 0 || t->ndim > FLAVA_ST_MAX_DIMS)
            return FLAVA_ERROR(FLAVA_ERR_ARG, "writing %s: tensor '%s' has a bad dtype or ndim",
                               path, t->name);
        int64_t nbytes = checked_nbytes(t->shape, t->ndim, dtype_sizes[t->dtype]);
        if (nbytes < 0 || (uint64_t)nbytes != t->nbytes || (nbytes && !t->data)) {
            char sh[256];
            flava_st_format_shape(sh, sizeof sh, t->ndim, t->shape);
            return FLAVA_ERROR(FLAVA_ERR_ARG,
                               "writing %s: tensor '%s' (%s %s) comes with %zu bytes of data%s",
                               path, t->name, dtype_names[t->dtype], sh, t->nbytes,
                               t->data || !nbytes ? "" : " at NULL");
        }
    }
    for (int i = 0; i < nmeta; i++)
        if (!meta[i].key || !meta[i].value)
            return FLAVA_ERROR(FLAVA_ERR_ARG, "writing %s: metadata entry %d has a NULL key or value",
                               path, i);
    return FLAVA_OK;
}

static int cmp_tensor_ptr(const void *a, const void *b)
{
    return strcmp((*(const flava_st_tensor *const *)a)->name,
                  (*(const flava_st_tensor *const *)b)->name);
}

static int cmp_kv_ptr(const void *a, const void *b)
{
    return strcmp((*(const flava_st_kv *const *)a)->key, (*(const flava_st_kv *const *)b)->key);
}

/* The padded header, with tensors and metadata in name order. */
static flava_status build_header(flava_strbuf *b, const char *path,
                                 const flava_st_tensor **order, int n,
                                 const flava_st_kv **morder, int nmeta)
{
    for (int i = 1; i < n; i++)
        if (!strcmp(order[i - 1]->name, order[i]->name))
            return FLAVA_ERROR(FLAVA_ERR_ARG, "writing %s: tensor '%s' given twice", path,
                               order[i]->name);
    for (int i = 1; i < nmeta; i++)
        if (!strcmp(morder[i - 1]->key, morder[i]->key))
            return FLAVA_ERROR(FLAVA_ERR_ARG, "writing %s: metadata key '%s' given twice", path,
                               morder[i]->key);
    sb_puts(b, "{");
    long long offset = 0;
    for (int i = 0; i < n; i++) {
        const flava_st_tensor *t = order[i];
        if (i)
            sb_puts(b, ",");
        sb_json_string(b, t->name);
        sb_puts(b, ":{\"dtype\":\"");
        sb_puts(b, dtype_names[t->dtype]);
        sb_puts(b, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++)
            sb_printf(b, d ? ",%lld" : "%lld", (long long)t->shape[d]);
        sb_printf(b, "],\"data_offsets\":[%lld,", offset);
        offset += (long long)t->nbytes;
        sb_printf(b, "%lld]}", offset);
    }
    if (nmeta) {
        sb_puts(b, n ? ",\"__metadata__\":{" : "\"__metadata__\":{");
        for (int i = 0; i < nmeta; i++) {
            if (i)
                sb_puts(b, ",");
            sb_json_string(b, morder[i]->key);
            sb_puts(b, ":");
            sb_json_string(b, morder[i]->value);
        }
        sb_puts(b, "}");
    }
    sb_puts(b, "}");
    while (b->n % 8)
        sb_puts(b, " ");
    if (b->oom)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "writing %s: cannot allocate the header", path);
    return FLAVA_OK;
}

static flava_status write_all(int fd, const void *p, size_t n, const char *tmp)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return FLAVA_ERROR(FLAVA_ERR_IO, "cannot write %s: %s", tmp,
                               w < 0 ? strerror(errno) : "no progress");
        c += w;
        n -= (size_t)w;
    }
    return FLAVA_OK;
}

static flava_status write_file(const char *tmp, const flava_strbuf *header,
                               const flava_st_tensor **order, int n)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return FLAVA_ERROR(FLAVA_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    unsigned char len8[8];
    uint64_t hlen = header->n;
    memcpy(len8, &hlen, 8);
    flava_status s = write_all(fd, len8, 8, tmp);
    if (s == FLAVA_OK)
        s = write_all(fd, header->p, header->n, tmp);
    for (int i = 0; i < n && s == FLAVA_OK; i++)
        s = write_all(fd, order[i]->data, order[i]->nbytes, tmp);
    if (s == FLAVA_OK && fsync(fd) != 0)
        s = FLAVA_ERROR(FLAVA_ERR_IO, "cannot fsync %s: %s", tmp, strerror(errno));
    if (close(fd) != 0 && s == FLAVA_OK)
        s = FLAVA_ERROR(FLAVA_ERR_IO, "cannot close %s: %s", tmp, strerror(errno));
    return s;
}

/* Makes the rename durable. */
static flava_status sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot allocate the directory of %s", path);
    flava_status s = FLAVA_OK;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0)
        s = FLAVA_ERROR(FLAVA_ERR_IO, "cannot fsync directory %s after writing %s: %s", dir, path,
                        strerror(errno));
    if (fd >= 0)
        close(fd);
    free(dir);
    return s;
}

flava_status flava_st_write(const char *path, const flava_st_tensor *tensors, int n,
                            const flava_st_kv *meta, int nmeta)
{
    FLAVA_TRY(check_write_input(path, tensors, n, meta, nmeta));
    const flava_st_tensor **order = calloc((size_t)n + 1, sizeof *order);
    const flava_st_kv **morder = calloc((size_t)nmeta + 1, sizeof *morder);
    int len = snprintf(NULL, 0, "%s.tmp.%ld", path, (long)getpid());
    char *tmp = malloc((size_t)len + 1);
    flava_strbuf header = {0};
    flava_status s = FLAVA_OK;
    if (!order || !morder || !tmp)
        s = FLAVA_ERROR(FLAVA_ERR_NOMEM, "writing %s: out of memory", path);
    if (s == FLAVA_OK) {
        snprintf(tmp, (size_t)len + 1, "%s.tmp.%ld", path, (long)getpid());
        for (int i = 0; i < n; i++)
            order[i] = &tensors[i];
        for (int i = 0; i < nmeta; i++)
            morder[i] = &meta[i];
        qsort(order, (size_t)n, sizeof *order, cmp_tensor_ptr);
        qsort(morder, (size_t)nmeta, sizeof *morder, cmp_kv_ptr);
        s = build_header(&header, path, order, n, morder, nmeta);
    }
    if (s == FLAVA_OK) {
        s = write_file(tmp, &header, order, n);
        if (s == FLAVA_OK && rename(tmp, path) != 0)
            s = FLAVA_ERROR(FLAVA_ERR_IO, "cannot rename %s to %s: %s", tmp, path,
                            strerror(errno));
        if (s != FLAVA_OK)
            unlink(tmp);
        else
            s = sync_parent_dir(path);
    }
    free(header.p);
    free(tmp);
    free(morder);
    free(order);
    return s;
}

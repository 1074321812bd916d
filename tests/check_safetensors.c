/* check_safetensors.c - the safetensors reader and writer: round trips of
 * every dtype, a fixture written by PyTorch (tests/reference/st_fixture.py),
 * byte-identical rewrites, malformed files and the atomic write. */
#include "testutil.h"

#include <dirent.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/flava_st_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void remove_dir(void)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            if (rmdir(p) != 0)
                unlink(p);
        }
    closedir(d);
    rmdir(dir);
}

static const char *in_dir(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", dir, name);
    return buf;
}

/* The whole file; *n its size. */
static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc((size_t)len + 1);
    ck_assert_uint_eq(fread(p, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return p;
}

static void spit(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    fclose(f);
}

static int count_temp_files(void)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

static flava_st_tensor view(const char *name, flava_dtype dtype, int ndim, const int64_t *shape,
                            const void *data)
{
    flava_st_tensor t = {.name = name, .dtype = dtype, .ndim = ndim, .data = data};
    for (int d = 0; d < ndim; d++)
        t.shape[d] = shape[d];
    t.nbytes = (size_t)flava_st_numel(&t) * flava_dtype_size(dtype);
    return t;
}

START_TEST(test_roundtrip_every_dtype)
{
    make_dir();
    float f32[6] = {1.5f, -2.25f, 3e-8f, -0.0f, 65504.f, 1e30f};
    uint16_t bf16[4] = {0x3f80, 0xc040, 0x0001, 0x7f7f};
    int64_t i64[3] = {INT64_MIN, -1, INT64_MAX};
    int32_t i32[2] = {INT32_MIN, INT32_MAX};
    uint8_t u8[5] = {0, 1, 127, 128, 255};
    uint8_t b[3] = {1, 0, 1};
    float scalar = 42.f;
    const int64_t s23[] = {2, 3}, s4[] = {4}, s3[] = {3}, s2[] = {1, 2, 1}, s5[] = {5},
                  s31[] = {3, 1}, s00[] = {0, 7};
    flava_st_tensor in[] = {
        view("w.f32", FLAVA_F32, 2, s23, f32),  view("w.bf16", FLAVA_BF16, 1, s4, bf16),
        view("ids.i64", FLAVA_I64, 1, s3, i64), view("ids.i32", FLAVA_I32, 3, s2, i32),
        view("px.u8", FLAVA_U8, 1, s5, u8),     view("m.bool", FLAVA_BOOL, 2, s31, b),
        view("scalar", FLAVA_F32, 0, NULL, &scalar), view("empty", FLAVA_I64, 2, s00, NULL),
    };
    const int n = (int)(sizeof in / sizeof in[0]);
    flava_st_kv meta[] = {{"format", "pt"}, {"config", "{\"a\": \"b\\n\"}\t\x01"}, {"empty", ""}};
    char path[512];
    ck_assert_int_eq(flava_st_write(in_dir(path, sizeof path, "rt.safetensors"), in, n, meta, 3),
                     FLAVA_OK);
    flava_st *st;
    ck_assert_int_eq(flava_st_read(&st, path), FLAVA_OK);
    ck_assert_int_eq(flava_st_count(st), n);
    for (int i = 0; i < n; i++) {
        const flava_st_tensor *t = flava_st_find(st, in[i].name);
        ck_assert_msg(t != NULL, "tensor %s lost", in[i].name);
        ck_assert_int_eq(t->dtype, in[i].dtype);
        ck_assert_int_eq(t->ndim, in[i].ndim);
        for (int d = 0; d < t->ndim; d++)
            ck_assert_int_eq(t->shape[d], in[i].shape[d]);
        ck_assert_uint_eq(t->nbytes, in[i].nbytes);
        ck_assert(t->nbytes == 0 || !memcmp(t->data, in[i].data, t->nbytes));
    }
    for (int i = 1; i < n; i++) /* name order */
        ck_assert_int_lt(strcmp(flava_st_get(st, i - 1)->name, flava_st_get(st, i)->name), 0);
    ck_assert_ptr_null(flava_st_get(st, n));
    ck_assert_ptr_null(flava_st_find(st, "w"));
    ck_assert_int_eq(flava_st_meta_count(st), 3);
    for (int i = 0; i < 3; i++)
        ck_assert_str_eq(flava_st_meta(st, meta[i].key), meta[i].value);
    ck_assert_str_eq(flava_st_meta_get(st, 0)->key, "config");
    ck_assert_ptr_null(flava_st_meta(st, "missing"));
    float back[4];
    ck_assert_int_eq(flava_st_load_f32(back, st, "w.bf16", 1, s4), FLAVA_OK);
    ck_assert_float_eq(back[0], 1.0f);
    ck_assert_float_eq(back[1], -3.0f);
    ck_assert_float_eq(back[2], ldexpf(1.f, -133)); /* smallest bf16 subnormal */
    ck_assert_float_eq(back[3], 0x1.fep127f);     /* largest finite bf16 */
    int32_t mask[3];
    ck_assert_int_eq(flava_st_load_i32(mask, st, "m.bool", 2, s31), FLAVA_OK);
    ck_assert(mask[0] == 1 && mask[1] == 0 && mask[2] == 1);
    flava_st_free(st);

    /* No tensors, no metadata: the smallest valid file. */
    ck_assert_int_eq(flava_st_write(path, NULL, 0, NULL, 0), FLAVA_OK);
    size_t len;
    unsigned char *bytes = slurp(path, &len);
    ck_assert_uint_eq(len, 16);
    ck_assert(!memcmp(bytes + 8, "{}      ", 8));
    free(bytes);
    ck_assert_int_eq(flava_st_read(&st, path), FLAVA_OK);
    ck_assert_int_eq(flava_st_count(st), 0);
    ck_assert_int_eq(flava_st_meta_count(st), 0);
    ck_assert_ptr_null(flava_st_meta(st, "format"));
    ck_assert_ptr_null(flava_st_find(st, "x"));
    flava_st_free(st);
    remove_dir();
}
END_TEST

/* Values written by PyTorch; the formulas are those of st_fixture.py. */
START_TEST(test_reads_pytorch_fixture)
{
    char path[512];
    flava_st *st;
    ck_assert_int_eq(flava_st_read(&st, test_path(path, sizeof path,
                                                   "tests/fixtures/st_reference.safetensors")),
                     FLAVA_OK);
    ck_assert_int_eq(flava_st_count(st), 10);
    ck_assert_str_eq(flava_st_meta(st, "format"), "pt");
    ck_assert_str_eq(flava_st_meta(st, "config"), "{\"hidden_size\": 8, \"name\": \"tiny \\\"quoted\\\"\"}");

    float a[24];
    ck_assert_int_eq(flava_st_load_f32(a, st, "a.f32", 3, (const int64_t[]){2, 3, 4}), FLAVA_OK);
    for (int k = 0; k < 24; k++) /* bit exact */
        ck_assert_float_eq(a[k], (float)((k - 11.5) / 7));

    float bf[24], bf_ref[24];
    const int64_t s46[] = {4, 6};
    ck_assert_int_eq(flava_st_load_f32(bf, st, "b.bf16", 2, s46), FLAVA_OK);
    ck_assert_int_eq(flava_st_load_f32(bf_ref, st, "b.bf16_as_f32", 2, s46), FLAVA_OK);
    ck_assert(!memcmp(bf, bf_ref, sizeof bf)); /* torch's own bf16 -> f32 */
    double ref[24];
    for (int k = 0; k < 24; k++)
        ref[k] = sin(k);
    ck_assert_close(bf, ref, 24, 1.0 / 256, 1e-30, "b.bf16 vs sin"); /* 8-bit mantissa */

    int32_t ids[6];
    ck_assert_int_eq(flava_st_load_i32(ids, st, "c.i64", 2, (const int64_t[]){3, 2}), FLAVA_OK);
    for (int k = 0; k < 6; k++)
        ck_assert_int_eq(ids[k], k * 1000 - 2500);
    ck_assert_int_eq(flava_st_load_i32(ids, st, "c.i64_big", 1, (const int64_t[]){2}),
                     FLAVA_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "c.i64_big"));
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "-1099511627776"));
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "st_reference.safetensors"));

    ck_assert_int_eq(flava_st_load_i32(ids, st, "d.i32", 1, (const int64_t[]){5}), FLAVA_OK);
    for (int k = 0; k < 5; k++)
        ck_assert_int_eq(ids[k], k * -7 + 3);
    int32_t u8[10];
    ck_assert_int_eq(flava_st_load_i32(u8, st, "e.u8", 1, (const int64_t[]){10}), FLAVA_OK);
    for (int k = 0; k < 10; k++)
        ck_assert_int_eq(u8[k], k * 29 % 256);
    ck_assert_int_eq(flava_st_load_i32(ids, st, "f.bool", 2, (const int64_t[]){2, 3}), FLAVA_OK);
    for (int k = 0; k < 6; k++)
        ck_assert_int_eq(ids[k], k % 3 == 0);

    float scalar;
    ck_assert_int_eq(flava_st_load_f32(&scalar, st, "g.scalar", 0, NULL), FLAVA_OK);
    ck_assert_float_eq(scalar, 2.6592f);
    const flava_st_tensor *t;
    ck_assert_int_eq(flava_st_expect(&t, st, "h.empty", 2, (const int64_t[]){-1, 3}), FLAVA_OK);
    ck_assert_int_eq(t->shape[0], 0);
    ck_assert_int_eq(flava_st_numel(t), 0);
    flava_st_free(st);
}
END_TEST

/* Every tensor of a reader, as writer input. */
static void rewrite(const flava_st *st, const char *path)
{
    int n = flava_st_count(st), nmeta = flava_st_meta_count(st);
    flava_st_tensor *ts = malloc(sizeof *ts * (size_t)(n + 1));
    flava_st_kv *kv = malloc(sizeof *kv * (size_t)(nmeta + 1));
    /* reversed, so that the writer has to sort */
    for (int i = 0; i < n; i++)
        ts[i] = *flava_st_get(st, n - 1 - i);
    for (int i = 0; i < nmeta; i++)
        kv[i] = *flava_st_meta_get(st, nmeta - 1 - i);
    ck_assert_int_eq(flava_st_write(path, ts, n, kv, nmeta), FLAVA_OK);
    free(ts);
    free(kv);
}

START_TEST(test_rewrite_is_byte_identical)
{
    make_dir();
    char ref_path[512], p1[512], p2[512];
    test_path(ref_path, sizeof ref_path, "tests/fixtures/st_reference.safetensors");
    flava_st *st;
    ck_assert_int_eq(flava_st_read(&st, ref_path), FLAVA_OK);
    rewrite(st, in_dir(p1, sizeof p1, "one.safetensors"));
    flava_st_free(st);
    ck_assert_int_eq(flava_st_read(&st, p1), FLAVA_OK);
    rewrite(st, in_dir(p2, sizeof p2, "two.safetensors"));
    flava_st_free(st);
    size_t n0, n1, n2;
    unsigned char *b0 = slurp(ref_path, &n0), *b1 = slurp(p1, &n1), *b2 = slurp(p2, &n2);
    /* The Python writer and ours agree on every byte, so the layout
     * (sorted names, packed data, space padding to 8) is the same. */
    ck_assert_uint_eq(n1, n0);
    ck_assert(!memcmp(b0, b1, n0));
    ck_assert_uint_eq(n2, n1);
    ck_assert(!memcmp(b1, b2, n1));
    uint64_t hlen;
    memcpy(&hlen, b1, 8);
    ck_assert_uint_eq(hlen % 8, 0);
    free(b0);
    free(b1);
    free(b2);
    remove_dir();
}
END_TEST

/* A file made of an 8-byte length, a header and data_len bytes of data. */
static void write_raw(const char *path, uint64_t hlen, const char *header, size_t data_len)
{
    size_t h = strlen(header);
    unsigned char *buf = calloc(8 + h + data_len + 1, 1);
    memcpy(buf, &hlen, 8);
    memcpy(buf + 8, header, h);
    for (size_t i = 0; i < data_len; i++)
        buf[8 + h + i] = (unsigned char)i;
    spit(path, buf, 8 + h + data_len);
    free(buf);
}

typedef struct bad_case {
    const char *header;
    size_t data_len;
    long long hlen; /* -1: the header's length */
    const char *expect;
} bad_case;

static const bad_case bad_cases[] = {
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, 4096,
     "runs past the end of the file"},
    {"{}", 0, 1LL << 50, "is absurd"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],", 0, -1, "invalid JSON in the header"},
    {"[1, 2]", 0, -1, "does not start with a JSON object"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}xyz", 4, -1,
     "unexpected bytes after the JSON header"},
    {"{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, -1,
     "tensor 'a': unsupported dtype 'F16'"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2,-3],\"data_offsets\":[0,0]}}", 0, -1,
     "tensor 'a': dimension 1 is negative"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,0]}}", 0, -1,
     "tensor 'a': dimension 0 is not a non-negative integer"},
    {"{\"a\":{\"dtype\":\"I64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8, -1,
     "tensor 'a': shape overflows"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, -1,
     "tensor 'a': data_offsets span 8 bytes but F32 [3] takes 12"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 8, -1,
     "tensor 'a': data_offsets [4, 12] run past the data area (8 bytes)"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, -1,
     "tensor 'a': data_offsets must be integers 0 <= begin <= end"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, -1,
     "tensor 'a': data_offsets is not [begin, end]"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, -1,
     "tensors 'a' [0, 8) and 'b' [4, 12) overlap"},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
     "\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]}}", 4, -1,
     "tensor 'a' appears twice"},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]}}", 4, -1,
     "2 unused bytes before tensor 'a'"},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 5, -1,
     "3 unused bytes after the last tensor"},
    {"{\"__metadata__\":{\"format\":\"pt\",\"step\":12}}", 0, -1,
     "metadata key 'step' has a value that is not a string"},
    {"{\"__metadata__\":[\"pt\"]}", 0, -1, "__metadata__ is not an object"},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[2]}}", 2, -1, "tensor 'a': missing field 'data_offsets'"},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2],\"x\":1}}", 2, -1,
     "tensor 'a': unexpected or repeated field 'x'"},
    {"{\"a\":[1]}", 0, -1, "tensor 'a': entry is not an object"},
};

START_TEST(test_malformed_files)
{
    make_dir();
    char path[512];
    in_dir(path, sizeof path, "bad.safetensors");
    const bad_case *c = &bad_cases[_i];
    uint64_t hlen = c->hlen < 0 ? strlen(c->header) : (uint64_t)c->hlen;
    write_raw(path, hlen, c->header, c->data_len);
    flava_st *st = (flava_st *)&st;
    flava_error_clear();
    ck_assert_int_eq(flava_st_read(&st, path), FLAVA_ERR_FORMAT);
    ck_assert_ptr_null(st);
    const char *msg = flava_error_message();
    ck_assert_msg(strstr(msg, c->expect) != NULL, "case %d: '%s' does not say '%s'", _i, msg,
                  c->expect);
    ck_assert_msg(strstr(msg, path) != NULL, "case %d: '%s' does not name the file", _i, msg);
    remove_dir();
}
END_TEST

START_TEST(test_truncated_and_missing_files)
{
    make_dir();
    char ref_path[512], path[512];
    size_t n;
    unsigned char *b = slurp(test_path(ref_path, sizeof ref_path,
                                       "tests/fixtures/st_reference.safetensors"), &n);
    flava_st *st;
    spit(in_dir(path, sizeof path, "cut.safetensors"), b, n - 4);
    ck_assert_int_eq(flava_st_read(&st, path), FLAVA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "'g.scalar': data_offsets [340, 344] run past"));
    spit(path, b, 100); /* cut inside the header */
    ck_assert_int_eq(flava_st_read(&st, path), FLAVA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "runs past the end of the file"));
    spit(path, b, 5);
    ck_assert_int_eq(flava_st_read(&st, path), FLAVA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "5 bytes is too short"));
    free(b);
    ck_assert_int_eq(flava_st_read(&st, in_dir(path, sizeof path, "absent.safetensors")),
                     FLAVA_ERR_IO);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), path));
    ck_assert_int_eq(flava_st_read(&st, dir), FLAVA_ERR_IO);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "not a regular file"));
    remove_dir();
}
END_TEST

/* The reference implementation puts __metadata__ first and may pad the
 * header to any length with spaces; offsets need no alignment. */
START_TEST(test_reads_other_writers_layout)
{
    make_dir();
    char path[512];
    const char header[] = "{\"__metadata__\":{\"format\":\"pt\"},"
                          "\"b\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]},"
                          "\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[3,7]}}   ";
    unsigned char file[8 + sizeof header - 1 + 7];
    uint64_t hlen = sizeof header - 1;
    memcpy(file, &hlen, 8);
    memcpy(file + 8, header, hlen);
    const unsigned char data[7] = {1, 2, 3, 0x80, 0x3f, 0x00, 0xc0}; /* bf16 1.0, -2.0 */
    memcpy(file + 8 + hlen, data, 7);
    spit(in_dir(path, sizeof path, "hf.safetensors"), file, sizeof file);
    flava_st *st;
    ck_assert_int_eq(flava_st_read(&st, path), FLAVA_OK);
    ck_assert_str_eq(flava_st_meta(st, "format"), "pt");
    ck_assert_str_eq(flava_st_get(st, 0)->name, "a");
    float a[2];
    ck_assert_int_eq(flava_st_load_f32(a, st, "a", 1, (const int64_t[]){2}), FLAVA_OK);
    ck_assert_float_eq(a[0], 1.0f);
    ck_assert_float_eq(a[1], -2.0f);
    int32_t b[3];
    ck_assert_int_eq(flava_st_load_i32(b, st, "b", 1, (const int64_t[]){3}), FLAVA_OK);
    ck_assert(b[0] == 1 && b[1] == 2 && b[2] == 3);
    flava_st_free(st);
    remove_dir();
}
END_TEST

START_TEST(test_expect_names_tensor_and_shapes)
{
    char path[512];
    flava_st *st;
    ck_assert_int_eq(flava_st_read(&st, test_path(path, sizeof path,
                                                   "tests/fixtures/st_reference.safetensors")),
                     FLAVA_OK);
    const flava_st_tensor *t = (const flava_st_tensor *)&t;
    ck_assert_int_eq(flava_st_expect(&t, st, "a.f32", 2, (const int64_t[]){2, 12}),
                     FLAVA_ERR_SHAPE);
    ck_assert_ptr_null(t);
    ck_assert_ptr_nonnull(strstr(flava_error_message(),
                                 "tensor 'a.f32' has shape [2, 3, 4], expected [2, 12]"));
    ck_assert_ptr_nonnull(strstr(flava_error_message(), path));
    ck_assert_int_eq(flava_st_expect(&t, st, "a.f32", 3, (const int64_t[]){2, 4, 3}),
                     FLAVA_ERR_SHAPE);
    ck_assert_int_eq(flava_st_expect(&t, st, "a.f32", 3, (const int64_t[]){-1, 3, -1}), FLAVA_OK);
    ck_assert_str_eq(t->name, "a.f32");
    ck_assert_int_eq(flava_st_expect(&t, st, "nope", 1, (const int64_t[]){1}), FLAVA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "no tensor 'nope'"));

    float f[6];
    ck_assert_int_eq(flava_st_load_f32(f, st, "c.i64", 2, (const int64_t[]){3, 2}), FLAVA_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(flava_error_message(),
                                 "tensor 'c.i64' has dtype I64, expected F32 or BF16"));
    ck_assert_ptr_nonnull(strstr(flava_error_message(), path));
    int32_t i[24];
    ck_assert_int_eq(flava_st_load_i32(i, st, "a.f32", 3, (const int64_t[]){2, 3, 4}), FLAVA_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "tensor 'a.f32' has dtype F32, expected I64"));
    ck_assert_int_eq(flava_st_load_f32(f, st, "a.f32", 3, (const int64_t[]){2, -1, 4}), FLAVA_ERR_ARG);
    flava_st_free(st);
}
END_TEST

START_TEST(test_writer_rejects_bad_input)
{
    make_dir();
    char path[512];
    in_dir(path, sizeof path, "w.safetensors");
    float x[4] = {0};
    const int64_t s4[] = {4};
    flava_st_tensor t[2] = {view("x", FLAVA_F32, 1, s4, x), view("x", FLAVA_F32, 1, s4, x)};
    ck_assert_int_eq(flava_st_write(path, t, 2, NULL, 0), FLAVA_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "tensor 'x' given twice"));
    t[1].name = "__metadata__";
    ck_assert_int_eq(flava_st_write(path, t, 2, NULL, 0), FLAVA_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "no usable name"));
    t[0].nbytes = 12;
    ck_assert_int_eq(flava_st_write(path, t, 1, NULL, 0), FLAVA_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "tensor 'x' (F32 [4]) comes with 12 bytes"));
    t[0].nbytes = 16;
    t[0].shape[0] = -4;
    ck_assert_int_eq(flava_st_write(path, t, 1, NULL, 0), FLAVA_ERR_ARG);
    t[0].shape[0] = 4;
    flava_st_kv kv[2] = {{"k", "1"}, {"k", "2"}};
    ck_assert_int_eq(flava_st_write(path, t, 1, kv, 2), FLAVA_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "metadata key 'k' given twice"));
    ck_assert_int_eq(access(path, F_OK), -1); /* nothing was created */
    ck_assert_int_eq(count_temp_files(), 0);
    remove_dir();
}
END_TEST

START_TEST(test_atomic_write)
{
    make_dir();
    char path[512];
    in_dir(path, sizeof path, "model.safetensors");
    enum { N = 1 << 18 };
    float *x = calloc(N, sizeof *x);
    const int64_t sn[] = {N}, s1[] = {1};
    flava_st_tensor small = view("x", FLAVA_F32, 1, s1, x);
    ck_assert_int_eq(flava_st_write(path, &small, 1, NULL, 0), FLAVA_OK);
    ck_assert_int_eq(count_temp_files(), 0);
    size_t n_before;
    unsigned char *before = slurp(path, &n_before);

    /* A write that fails half way (file size limit, 1 MB of data to write)
     * leaves the old file as it was and no temporary behind. */
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 64 * 1024;
    signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    flava_st_tensor big = view("x", FLAVA_F32, 1, sn, x);
    flava_status s = flava_st_write(path, &big, 1, NULL, 0);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, SIG_DFL);
    ck_assert_int_eq(s, FLAVA_ERR_IO);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "cannot write"));
    ck_assert_ptr_nonnull(strstr(flava_error_message(), path));
    ck_assert_int_eq(count_temp_files(), 0);
    size_t n_after;
    unsigned char *after = slurp(path, &n_after);
    ck_assert_uint_eq(n_after, n_before);
    ck_assert(!memcmp(before, after, n_before));
    free(after);

    /* A target that cannot be replaced (a directory): the rename fails. */
    char sub[512];
    ck_assert_int_eq(mkdir(in_dir(sub, sizeof sub, "sub.safetensors"), 0755), 0);
    char inner[600];
    snprintf(inner, sizeof inner, "%s/keep", sub);
    spit(inner, "x", 1);
    ck_assert_int_eq(flava_st_write(sub, &small, 1, NULL, 0), FLAVA_ERR_IO);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "cannot rename"));
    ck_assert_int_eq(count_temp_files(), 0);
    unlink(inner);

    /* A directory that does not exist. */
    char nodir[600];
    snprintf(nodir, sizeof nodir, "%s/none/m.safetensors", dir);
    ck_assert_int_eq(flava_st_write(nodir, &small, 1, NULL, 0), FLAVA_ERR_IO);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "cannot create"));

    /* And a normal replacement takes effect. */
    ck_assert_int_eq(flava_st_write(path, &big, 1, NULL, 0), FLAVA_OK);
    flava_st *st;
    ck_assert_int_eq(flava_st_read(&st, path), FLAVA_OK);
    ck_assert_int_eq(flava_st_find(st, "x")->shape[0], N);
    flava_st_free(st);
    ck_assert_int_eq(count_temp_files(), 0);
    free(before);
    free(x);
    remove_dir();
}
END_TEST

static Suite *make_safetensors_suite(void)
{
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("safetensors");
    tcase_add_test(tc, test_roundtrip_every_dtype);
    tcase_add_test(tc, test_reads_pytorch_fixture);
    tcase_add_test(tc, test_rewrite_is_byte_identical);
    tcase_add_loop_test(tc, test_malformed_files, 0, (int)(sizeof bad_cases / sizeof bad_cases[0]));
    tcase_add_test(tc, test_truncated_and_missing_files);
    tcase_add_test(tc, test_reads_other_writers_layout);
    tcase_add_test(tc, test_expect_names_tensor_and_shapes);
    tcase_add_test(tc, test_writer_rejects_bad_input);
    tcase_add_test(tc, test_atomic_write);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return test_run(make_safetensors_suite()); }

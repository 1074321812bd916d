/* idx.c - IDX reader: a 4-byte magic (0, 0, dtype, ndim), ndim big-endian
 * 32-bit dimensions, then the bytes. */
#include "idx.h"

#include <errno.h>
#include <string.h>

#include <zlib.h>

const char *const flava_fashion_mnist_classes[FLAVA_IDX_CLASSES] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot",
};

/* IDX files beyond this are refused (Fashion-MNIST's largest is 47 MB). */
#define MAX_BYTES (1LL << 32)

void flava_idx_free(flava_idx *arr)
{
    flava_free(arr->data);
    memset(arr, 0, sizeof *arr);
}

/* Reads exactly n bytes or says why not. */
static flava_status read_exact(gzFile f, void *buf, size_t n, const char *path, const char *what)
{
    size_t got = 0;
    while (got < n) {
        unsigned chunk = n - got > (1u << 30) ? (1u << 30) : (unsigned)(n - got);
        int r = gzread(f, (char *)buf + got, chunk);
        if (r < 0) {
            int zerr;
            const char *msg = gzerror(f, &zerr);
            return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: corrupt data while reading %s: %s", path,
                               what, msg);
        }
        if (r == 0)
            return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: truncated: %s needs %zu bytes, the file "
                               "ends after %zu", path, what, n, got);
        got += (size_t)r;
    }
    return FLAVA_OK;
}

static flava_status read_body(flava_idx *arr, gzFile f, const char *path, int ndim)
{
    uint8_t head[4];
    FLAVA_TRY(read_exact(f, head, 4, path, "the magic number"));
    if (head[0] != 0 || head[1] != 0)
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: bad magic %02x %02x %02x %02x, expected an IDX "
                           "file starting 00 00", path, head[0], head[1], head[2], head[3]);
    if (head[2] != 0x08)
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: dtype code 0x%02x, expected 0x08 (unsigned "
                           "byte)", path, head[2]);
    if (head[3] != ndim)
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: %d dimensions, expected %d (%s)", path, head[3],
                           ndim, ndim == 1 ? "a labels file" : "an images file");
    int64_t total = 1;
    for (int d = 0; d < ndim; d++) {
        uint8_t b[4];
        FLAVA_TRY(read_exact(f, b, 4, path, "the dimensions"));
        arr->dims[d] = (int64_t)b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3];
        if (arr->dims[d] == 0)
            return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: dimension %d is 0, expected a positive "
                               "size", path, d);
        total *= arr->dims[d];
        if (total > MAX_BYTES)
            return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: declares more than %lld bytes", path,
                               MAX_BYTES);
    }
    arr->ndim = ndim;
    FLAVA_TRY(flava_alloc((void **)&arr->data, (size_t)total, path));
    FLAVA_TRY(read_exact(f, arr->data, (size_t)total, path, "the data"));
    char extra;
    int r = gzread(f, &extra, 1);
    if (r != 0)
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: %s after the %lld declared data bytes", path,
                           r > 0 ? "trailing bytes" : "corrupt data", (long long)total);
    return FLAVA_OK;
}

flava_status flava_idx_read(flava_idx *arr, const char *path, int ndim)
{
    memset(arr, 0, sizeof *arr);
    if (ndim < 1 || ndim > 4)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "%s: cannot read %d dimensions (1 to 4)", path, ndim);
    gzFile f = gzopen(path, "rb");
    if (!f)
        return FLAVA_ERROR(FLAVA_ERR_IO, "%s: cannot open: %s", path,
                           errno ? strerror(errno) : "out of memory");
    flava_status s = read_body(arr, f, path, ndim);
    gzclose(f);
    if (s != FLAVA_OK)
        flava_idx_free(arr);
    return s;
}

void flava_idx_set_free(flava_idx_set *set)
{
    flava_free(set->images);
    flava_free(set->labels);
    memset(set, 0, sizeof *set);
}

flava_status flava_idx_load(flava_idx_set *set, const char *images_path, const char *labels_path)
{
    memset(set, 0, sizeof *set);
    flava_idx im, lb;
    FLAVA_TRY(flava_idx_read(&im, images_path, 3));
    flava_status s = flava_idx_read(&lb, labels_path, 1);
    if (s != FLAVA_OK) {
        flava_idx_free(&im);
        return s;
    }
    if (im.dims[0] != lb.dims[0]) {
        s = FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s has %lld images but %s has %lld labels, expected "
                        "equal counts", images_path, (long long)im.dims[0], labels_path,
                        (long long)lb.dims[0]);
        goto fail;
    }
    for (int64_t i = 0; i < lb.dims[0]; i++)
        if (lb.data[i] >= FLAVA_IDX_CLASSES) {
            s = FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: record %lld has label %d, expected 0 to %d",
                            labels_path, (long long)i, lb.data[i], FLAVA_IDX_CLASSES - 1);
            goto fail;
        }
    set->n = im.dims[0];
    set->rows = (int)im.dims[1];
    set->cols = (int)im.dims[2];
    set->images = im.data;
    set->labels = lb.data;
    return FLAVA_OK;
fail:
    flava_idx_free(&im);
    flava_idx_free(&lb);
    return s;
}

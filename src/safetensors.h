/* safetensors.h - reading and writing safetensors files, and the dtype enum
 * shared by the rest of the code.
 *
 * The format: an 8-byte little-endian header length N, N bytes of JSON
 * ({name: {"dtype", "shape", "data_offsets": [begin, end]}, optional
 * "__metadata__": {string: string}}), then the data area; offsets are
 * relative to the data area. The reader validates everything and names the
 * file and the tensor or key in every error. The writer sorts the names,
 * packs the data, pads the header to 8 bytes with spaces and replaces the
 * target atomically; the same input gives the same bytes. */
#ifndef FLAVA_SAFETENSORS_H
#define FLAVA_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef enum flava_dtype {
    FLAVA_F32,
    FLAVA_BF16,
    FLAVA_I64,
    FLAVA_I32,
    FLAVA_U8,
    FLAVA_BOOL, /* one byte per element, 0 or 1 */
} flava_dtype;
enum { FLAVA_DTYPE_COUNT = FLAVA_BOOL + 1 };

size_t flava_dtype_size(flava_dtype dtype);
const char *flava_dtype_name(flava_dtype dtype); /* the safetensors spelling, "F32" */

enum { FLAVA_ST_MAX_DIMS = 8 };

/* One tensor. From a reader, `data` points into the mapped file (read-only,
 * valid until flava_st_free, possibly unaligned: copy it or use the
 * flava_st_to_* helpers). For the writer, the caller fills it. */
typedef struct flava_st_tensor {
    const char *name;
    flava_dtype dtype;
    int ndim;
    int64_t shape[FLAVA_ST_MAX_DIMS];
    const void *data;
    size_t nbytes;
} flava_st_tensor;

typedef struct flava_st_kv {
    const char *key;
    const char *value;
} flava_st_kv;

typedef struct flava_st flava_st;

/* Maps and validates `path`. */
flava_status flava_st_read(flava_st **out, const char *path);
void flava_st_free(flava_st *st);

const char *flava_st_path(const flava_st *st);
int flava_st_count(const flava_st *st);
const flava_st_tensor *flava_st_get(const flava_st *st, int i); /* in name order */
const flava_st_tensor *flava_st_find(const flava_st *st, const char *name); /* NULL if absent */
int flava_st_meta_count(const flava_st *st);
const flava_st_kv *flava_st_meta_get(const flava_st *st, int i); /* in key order */
const char *flava_st_meta(const flava_st *st, const char *key);  /* NULL if absent */

int64_t flava_st_numel(const flava_st_tensor *t);
/* "[2, 3]" into buf (truncated to n bytes); returns buf. */
const char *flava_st_format_shape(char *buf, size_t n, int ndim, const int64_t *shape);

/* Finds `name` and checks its shape against shape[ndim] (an entry -1
 * accepts any size); FLAVA_ERR_SHAPE or FLAVA_ERR_FORMAT (absent) naming
 * the file and the tensor otherwise. */
flava_status flava_st_expect(const flava_st_tensor **out, const flava_st *st, const char *name,
                             int ndim, const int64_t *shape);

/* Converting copies of a tensor's numel elements: to float from F32 or BF16;
 * to int32 from I64 (range-checked), I32, U8 or BOOL. Other dtypes are a
 * FLAVA_ERR_SHAPE naming the tensor. */
flava_status flava_st_to_f32(float *dst, const flava_st_tensor *t);
flava_status flava_st_to_i32(int32_t *dst, const flava_st_tensor *t);

/* flava_st_expect + flava_st_to_*: dst holds the product of shape[]. */
flava_status flava_st_load_f32(float *dst, const flava_st *st, const char *name, int ndim,
                               const int64_t *shape);
flava_status flava_st_load_i32(int32_t *dst, const flava_st *st, const char *name, int ndim,
                               const int64_t *shape);

/* Writes tensors[n] and metadata meta[nmeta] (either may be empty) to
 * `path` via `path.tmp.<pid>`, fsync and rename; on failure the target is
 * untouched and no temporary file is left. */
flava_status flava_st_write(const char *path, const flava_st_tensor *tensors, int n,
                            const flava_st_kv *meta, int nmeta);

#endif

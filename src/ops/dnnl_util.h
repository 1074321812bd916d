/* dnnl_util.h - the oneDNN boilerplate shared by the ops: memory descriptors
 * from dims and strides, primitives from an op descriptor plus a few common
 * attributes, memory objects whose data handle is set per call, reorders,
 * and accumulation for primitives that can only overwrite.
 *
 * The pattern of an op: on the first call with a shape it builds its
 * primitives and handle-less memory objects (flava_dnnl_memory) into an entry
 * stored in the context cache; every call then binds the caller's pointers
 * (flava_dnnl_bind) and executes (flava_dnnl_exec). */
#ifndef FLAVA_DNNL_UTIL_H
#define FLAVA_DNNL_UTIL_H

#include <stdint.h>

#include "ctx.h"
#include "status.h"

/* A descriptor of `ndims` dims of type `dt`; strides NULL means dense
 * row-major. Strided views (transposes, heads inside a fused tensor) are
 * how the ops avoid copies. */
flava_status flava_dnnl_md(dnnl_memory_desc_t *md, int ndims, const int64_t *dims,
                           const int64_t *strides, dnnl_data_type_t dt);

enum { FLAVA_DNNL_MAX_BINARY = 2 };

/* Attributes applied after a primitive's main computation, in this order:
 * output scale, binary adds, eltwise, sum. A zeroed spec means none. */
typedef struct flava_dnnl_attrs {
    float scale;             /* output scale; 0 means 1 */
    int nbinary;             /* binary-add post-ops with these src1 layouts */
    const dnnl_memory_desc_t *binary_add[FLAVA_DNNL_MAX_BINARY];
    dnnl_alg_kind_t eltwise; /* eltwise post-op (alpha 0, beta 0), or 0 */
    int accumulate;          /* a sum post-op: dst = result + dst */
} flava_dnnl_attrs;

/* Binary post-op `i` is passed at execution under this argument index. */
#define FLAVA_DNNL_ARG_BINARY(i) (DNNL_ARG_ATTR_MULTIPLE_POST_OP(i) | DNNL_ARG_SRC_1)

/* Creates the primitive for an initialised op descriptor (a dnnl_*_desc_t),
 * with `attrs` (NULL: none) and, for backward, the forward primitive
 * descriptor as `hint`. If pd is not NULL the primitive descriptor is
 * returned there (the caller destroys it), e.g. to serve as a hint. */
flava_status flava_dnnl_primitive(dnnl_primitive_t *prim, dnnl_primitive_desc_t *pd,
                                  flava_ctx *ctx, const void *op_desc,
                                  const flava_dnnl_attrs *attrs,
                                  const_dnnl_primitive_desc_t hint);

/* The backward primitive of `bwd_desc`, with the primitive descriptor of
 * `fwd_desc` (its forward) as the hint oneDNN requires. */
flava_status flava_dnnl_backward_primitive(dnnl_primitive_t *prim, flava_ctx *ctx,
                                           const void *fwd_desc, const void *bwd_desc);

/* A reorder (layout or data type conversion) from src to dst. */
flava_status flava_dnnl_reorder(dnnl_primitive_t *prim, flava_ctx *ctx,
                                const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *dst);

/* A reorder from src that adds into dst (a sum post-op): dst += src in
 * dst's layout. */
flava_status flava_dnnl_reorder_add(dnnl_primitive_t *prim, flava_ctx *ctx,
                                    const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *dst);

/* A memory object with no data; flava_dnnl_bind gives it its data per call. */
flava_status flava_dnnl_memory(dnnl_memory_t *mem, flava_ctx *ctx, const dnnl_memory_desc_t *md);
/* Points `mem` at `data`; oneDNN takes non-const handles even for inputs. */
flava_status flava_dnnl_bind(dnnl_memory_t mem, const void *data);

/* Runs a reorder primitive from `src` to `dst` (both bound). */
flava_status flava_dnnl_run_reorder(flava_ctx *ctx, dnnl_primitive_t reorder, dnnl_memory_t src,
                                    dnnl_memory_t dst);

/* Runs a matmul without extra arguments on bound src, weights and dst. */
flava_status flava_dnnl_run_matmul(flava_ctx *ctx, dnnl_primitive_t matmul, dnnl_memory_t src,
                                   dnnl_memory_t wei, dnnl_memory_t dst);

/* Destroys arrays of primitives and memory objects (NULL entries skipped). */
void flava_dnnl_release(dnnl_primitive_t *prims, int nprims, dnnl_memory_t *mems, int nmems);

/* A bf16 copy of an f32 tensor of n values, made per call by a reorder
 * into a buffer owned by the copy: how the matmuls read bf16 inputs. */
typedef struct flava_dnnl_bf16_copy {
    dnnl_primitive_t reorder;
    dnnl_memory_t src, dst;
    void *buf; /* the bf16 values */
} flava_dnnl_bf16_copy;
flava_status flava_dnnl_bf16_copy_init(flava_dnnl_bf16_copy *c, flava_ctx *ctx, int64_t n);
/* The same from an f32 layout `src` into a bf16 layout `dst` of the same
 * dims, so that the copy can also rearrange (e.g. into what a faster
 * kernel wants). */
flava_status flava_dnnl_bf16_copy_init_md(flava_dnnl_bf16_copy *c, flava_ctx *ctx,
                                          const dnnl_memory_desc_t *src,
                                          const dnnl_memory_desc_t *dst);
/* Converts `src` into c->buf. */
flava_status flava_dnnl_bf16_copy_run(flava_dnnl_bf16_copy *c, flava_ctx *ctx, const float *src);
void flava_dnnl_bf16_copy_release(flava_dnnl_bf16_copy *c);

/* The cached entry of an op for `key`: looked up, or else allocated
 * (`size` zeroed bytes), built by `build` (which reads its sizes from
 * key->dims) and inserted. `destroy` must cope with a partly built entry
 * and frees the entry itself (flava_free). */
typedef flava_status (*flava_dnnl_build_fn)(void *entry, flava_ctx *ctx, const flava_op_key *key);
flava_status flava_dnnl_entry(void **entry, flava_ctx *ctx, const flava_op_key *key, size_t size,
                              flava_dnnl_build_fn build, flava_op_entry_destroy destroy);

/* Ops from one tensor to one of the same layout whose backward primitive
 * overwrites (eltwise, softmax). The caller initialises the descriptors on
 * every call (cheap, no allocation); they are used only the first time a
 * key is seen, to build the cached primitive. The backward runs into
 * scratch of the entry that is then added to dinp; `data_arg` is what the
 * backward reads besides diff_dst (DNNL_ARG_SRC or DNNL_ARG_DST). */
flava_status flava_dnnl_unary_forward(flava_ctx *ctx, const flava_op_key *key,
                                      const void *fwd_desc, const dnnl_memory_desc_t *md,
                                      float *out, const float *inp);
flava_status flava_dnnl_unary_backward(flava_ctx *ctx, const flava_op_key *key,
                                       const void *fwd_desc, const void *bwd_desc,
                                       const dnnl_memory_desc_t *md, int data_arg, float *dinp,
                                       const float *dout, const float *data);

/* A float kept bit-exact in an op key's dims (an eps, an alpha), so that the
 * key alone says what was built, and read back by the build. */
int64_t flava_dnnl_float_dim(float v);
float flava_dnnl_dim_float(int64_t dim);

/* dst[i] += src[i]: the accumulate convention of ops.h for primitives that
 * can only overwrite their output. */
void flava_dnnl_accumulate(float *dst, const float *src, int64_t n);

#endif

/* ctx.h - the compute context: oneDNN engine and stream, the precision of
 * matmuls, and the cache of primitives built once per shape.
 *
 * An op looks its shape up in the cache (flava_ctx_lookup); on a miss it
 * builds its primitives, memory objects and scratch buffers once and stores
 * them (flava_ctx_insert). Later calls with the same shape only set data
 * handles and execute: no allocation in the step loop. */
#ifndef FLAVA_CTX_H
#define FLAVA_CTX_H

#include <stdint.h>
#include <oneapi/dnnl/dnnl.h>

#include "status.h"

typedef enum flava_precision {
    FLAVA_PRECISION_F32 = 0,
    FLAVA_PRECISION_BF16, /* matmuls in bf16 (f32 accumulation), all else f32 */
} flava_precision;

typedef struct flava_ctx flava_ctx;

/* The key of one cached op instance: the op's name (a string literal), its
 * dimensions and any flags that change the primitive. Unused dims stay 0. */
enum { FLAVA_OP_KEY_DIMS = 16 };
typedef struct flava_op_key {
    const char *op;
    int64_t dims[FLAVA_OP_KEY_DIMS];
} flava_op_key;

typedef void (*flava_op_entry_destroy)(void *entry);

flava_status flava_ctx_create(flava_ctx **out, flava_precision precision);
void flava_ctx_destroy(flava_ctx *ctx);

dnnl_engine_t flava_ctx_engine(const flava_ctx *ctx);
dnnl_stream_t flava_ctx_stream(const flava_ctx *ctx);
flava_precision flava_ctx_precision(const flava_ctx *ctx);
void flava_ctx_set_precision(flava_ctx *ctx, flava_precision precision);
/* True when this CPU runs bf16 matmuls natively (AVX512-BF16 or AMX). */
int flava_ctx_has_bf16(const flava_ctx *ctx);

/* Returns the cached entry for `key`, or NULL. */
void *flava_ctx_lookup(flava_ctx *ctx, const flava_op_key *key);
/* Stores `entry` under `key`; the cache owns it from then on and calls
 * `destroy` on it in flava_ctx_destroy (also when this call fails). */
flava_status flava_ctx_insert(flava_ctx *ctx, const flava_op_key *key, void *entry,
                              flava_op_entry_destroy destroy);

/* bf16 copies of the parameters, made once per weight version instead of
 * at every matmul call. flava_ctx_set_weights declares that the n floats at
 * `base` (the model's parameter block) stay allocated and unchanged until
 * the next call of it; flava_ctx_set_weights(ctx, NULL, 0) ends the
 * declaration (the model does so at the end of its backward, or of an
 * inference forward, so that freed memory is never served). While declared,
 * flava_ctx_bf16_weights returns the bf16 copy of w[0..n) when that lies
 * inside the block, converting (round to nearest even) only the parts not
 * yet converted since the declaration; otherwise NULL, and the caller
 * converts w itself. The copy's memory grows with the largest block
 * declared and is kept, so a training loop allocates nothing per step. */
flava_status flava_ctx_set_weights(flava_ctx *ctx, const float *base, int64_t n);
const uint16_t *flava_ctx_bf16_weights(flava_ctx *ctx, const float *w, int64_t n);

/* Time spent inside oneDNN primitives (executions through flava_dnnl_exec),
 * for the benchmark's "share of the step in oneDNN". */
double flava_ctx_dnnl_seconds(const flava_ctx *ctx);
void flava_ctx_reset_dnnl_seconds(flava_ctx *ctx);

/* Executes one primitive on the context's stream and waits for it. */
flava_status flava_dnnl_exec(flava_ctx *ctx, dnnl_primitive_t prim, int nargs,
                             const dnnl_exec_arg_t *args);

/* Wraps a oneDNN call: on failure records the call's text and oneDNN's
 * status string and returns FLAVA_ERR_DNNL from the enclosing function. */
const char *flava_dnnl_status_str(dnnl_status_t s);
#define FLAVA_DNNL(call)                                                          \
    do {                                                                          \
        dnnl_status_t flava_dnnl_s_ = (call);                                     \
        if (flava_dnnl_s_ != dnnl_success)                                        \
            return FLAVA_ERROR(FLAVA_ERR_DNNL, "%s failed: %s", #call,            \
                               flava_dnnl_status_str(flava_dnnl_s_));             \
    } while (0)

/* Wall clock in seconds (monotonic). */
double flava_now(void);

#endif

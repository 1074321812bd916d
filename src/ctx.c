/* ctx.c - oneDNN engine/stream and the per-shape primitive cache. */
#include "ctx.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <oneapi/dnnl/dnnl_debug.h>

struct cache_slot {
    flava_op_key key;
    uint64_t hash;
    void *entry;
    flava_op_entry_destroy destroy;
};

struct flava_ctx {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    flava_precision precision;
    int has_bf16;
    struct cache_slot *slots; /* open addressing, power-of-two size */
    size_t nslots, used;
    double dnnl_seconds;
    /* bf16 shadow of the declared parameter block (flava_ctx_set_weights):
     * chunk i is current when chunk_version[i] == version. */
    const float *weights; /* NULL: none declared */
    int64_t nweights, capacity;
    uint16_t *weights16;
    uint32_t *chunk_version, version;
};

enum { WEIGHT_CHUNK = 16384 }; /* floats converted together */

double flava_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *flava_dnnl_status_str(dnnl_status_t s) { return dnnl_status2str(s); }

static uint64_t key_hash(const flava_op_key *key)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const char *c = key->op; *c; c++)
        h = (h ^ (uint8_t)*c) * 1099511628211ull;
    for (int i = 0; i < FLAVA_OP_KEY_DIMS; i++) {
        uint64_t d = (uint64_t)key->dims[i];
        for (int b = 0; b < 8; b++)
            h = (h ^ ((d >> (8 * b)) & 0xff)) * 1099511628211ull;
    }
    return h;
}

static int key_equal(const flava_op_key *a, const flava_op_key *b)
{
    return strcmp(a->op, b->op) == 0 && memcmp(a->dims, b->dims, sizeof a->dims) == 0;
}

flava_status flava_ctx_create(flava_ctx **out, flava_precision precision)
{
    *out = NULL;
    flava_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot allocate the compute context");
    dnnl_status_t s = dnnl_engine_create(&ctx->engine, dnnl_cpu, 0);
    if (s == dnnl_success)
        s = dnnl_stream_create(&ctx->stream, ctx->engine, dnnl_stream_default_flags);
    if (s != dnnl_success) {
        flava_ctx_destroy(ctx);
        return FLAVA_ERROR(FLAVA_ERR_DNNL, "cannot create the oneDNN CPU engine: %s",
                           dnnl_status2str(s));
    }
    ctx->nslots = 256;
    ctx->slots = calloc(ctx->nslots, sizeof *ctx->slots);
    if (!ctx->slots) {
        flava_ctx_destroy(ctx);
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot allocate the primitive cache");
    }
    /* oneDNN picks bf16 kernels when the ISA has them; ask which ISA it sees. */
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    ctx->has_bf16 = isa == dnnl_cpu_isa_avx512_core_bf16 || isa == dnnl_cpu_isa_avx512_core_amx;
    ctx->precision = precision;
    *out = ctx;
    return FLAVA_OK;
}

void flava_ctx_destroy(flava_ctx *ctx)
{
    if (!ctx)
        return;
    for (size_t i = 0; i < ctx->nslots && ctx->slots; i++)
        if (ctx->slots[i].entry && ctx->slots[i].destroy)
            ctx->slots[i].destroy(ctx->slots[i].entry);
    free(ctx->slots);
    free(ctx->weights16);
    free(ctx->chunk_version);
    if (ctx->stream)
        dnnl_stream_destroy(ctx->stream);
    if (ctx->engine)
        dnnl_engine_destroy(ctx->engine);
    free(ctx);
}

dnnl_engine_t flava_ctx_engine(const flava_ctx *ctx) { return ctx->engine; }
dnnl_stream_t flava_ctx_stream(const flava_ctx *ctx) { return ctx->stream; }
flava_precision flava_ctx_precision(const flava_ctx *ctx) { return ctx->precision; }
void flava_ctx_set_precision(flava_ctx *ctx, flava_precision p) { ctx->precision = p; }
int flava_ctx_has_bf16(const flava_ctx *ctx) { return ctx->has_bf16; }
double flava_ctx_dnnl_seconds(const flava_ctx *ctx) { return ctx->dnnl_seconds; }
void flava_ctx_reset_dnnl_seconds(flava_ctx *ctx) { ctx->dnnl_seconds = 0; }

void *flava_ctx_lookup(flava_ctx *ctx, const flava_op_key *key)
{
    uint64_t h = key_hash(key);
    for (size_t i = h & (ctx->nslots - 1);; i = (i + 1) & (ctx->nslots - 1)) {
        struct cache_slot *slot = &ctx->slots[i];
        if (!slot->entry)
            return NULL;
        if (slot->hash == h && key_equal(&slot->key, key))
            return slot->entry;
    }
}

static void slot_place(struct cache_slot *slots, size_t nslots, const struct cache_slot *src)
{
    size_t i = src->hash & (nslots - 1);
    while (slots[i].entry)
        i = (i + 1) & (nslots - 1);
    slots[i] = *src;
}

flava_status flava_ctx_insert(flava_ctx *ctx, const flava_op_key *key, void *entry,
                              flava_op_entry_destroy destroy)
{
    if (2 * (ctx->used + 1) > ctx->nslots) {
        size_t n = 2 * ctx->nslots;
        struct cache_slot *slots = calloc(n, sizeof *slots);
        if (!slots) {
            if (destroy)
                destroy(entry);
            return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot grow the primitive cache to %zu slots", n);
        }
        for (size_t i = 0; i < ctx->nslots; i++)
            if (ctx->slots[i].entry)
                slot_place(slots, n, &ctx->slots[i]);
        free(ctx->slots);
        ctx->slots = slots;
        ctx->nslots = n;
    }
    struct cache_slot slot = {.key = *key, .hash = key_hash(key), .entry = entry, .destroy = destroy};
    slot_place(ctx->slots, ctx->nslots, &slot);
    ctx->used++;
    return FLAVA_OK;
}

flava_status flava_ctx_set_weights(flava_ctx *ctx, const float *base, int64_t n)
{
    if (n < 0 || (n > 0 && !base))
        return FLAVA_ERROR(FLAVA_ERR_ARG, "flava_ctx_set_weights: %lld weights at %p",
                           (long long)n, (const void *)base);
    ctx->weights = NULL;
    ctx->nweights = 0;
    if (n > ctx->capacity) { /* the copy only ever grows: no allocation per step */
        free(ctx->weights16);
        free(ctx->chunk_version);
        ctx->capacity = 0;
        ctx->weights16 = malloc((size_t)n * sizeof *ctx->weights16);
        ctx->chunk_version = calloc((size_t)((n + WEIGHT_CHUNK - 1) / WEIGHT_CHUNK),
                                    sizeof *ctx->chunk_version);
        if (!ctx->weights16 || !ctx->chunk_version)
            return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot allocate a bf16 copy of %lld weights",
                               (long long)n);
        ctx->capacity = n;
    }
    /* A new version makes every chunk stale; version 0 marks chunks never
     * converted, so on wrap-around start afresh. */
    if (++ctx->version == 0) {
        if (ctx->chunk_version)
            memset(ctx->chunk_version, 0,
                   (size_t)((ctx->capacity + WEIGHT_CHUNK - 1) / WEIGHT_CHUNK) *
                       sizeof *ctx->chunk_version);
        ctx->version = 1;
    }
    if (n > 0) {
        ctx->weights = base;
        ctx->nweights = n;
    }
    return FLAVA_OK;
}

/* f32 to bf16, rounding to nearest even; NaNs stay (quiet) NaNs. */
static void to_bf16(uint16_t *dst, const float *src, int64_t n)
{
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &src[i], sizeof u);
        uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
        dst[i] = (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? (u >> 16) | 0x40u : rounded);
    }
}

const uint16_t *flava_ctx_bf16_weights(flava_ctx *ctx, const float *w, int64_t n)
{
    /* addresses compared as integers: w may point anywhere */
    uintptr_t a = (uintptr_t)w, base_a = (uintptr_t)ctx->weights;
    if (!ctx->weights || n < 1 || a < base_a || (a - base_a) % sizeof(float) != 0 ||
        (int64_t)((a - base_a) / sizeof(float)) > ctx->nweights - n)
        return NULL;
    const int64_t off = (int64_t)((a - base_a) / sizeof(float));
    const int64_t first = off / WEIGHT_CHUNK, last = (off + n - 1) / WEIGHT_CHUNK;
    const float *base = ctx->weights;
    uint16_t *base16 = ctx->weights16;
    uint32_t *cv = ctx->chunk_version, version = ctx->version;
    const int64_t total = ctx->nweights;
#pragma omp parallel for schedule(static) if (last - first >= 4)
    for (int64_t i = first; i <= last; i++) {
        if (cv[i] == version)
            continue;
        int64_t lo = i * WEIGHT_CHUNK, len = total - lo < WEIGHT_CHUNK ? total - lo : WEIGHT_CHUNK;
        to_bf16(base16 + lo, base + lo, len);
        cv[i] = version;
    }
    return base16 + off;
}

flava_status flava_dnnl_exec(flava_ctx *ctx, dnnl_primitive_t prim, int nargs,
                             const dnnl_exec_arg_t *args)
{
    double t0 = flava_now();
    FLAVA_DNNL(dnnl_primitive_execute(prim, ctx->stream, nargs, args));
    FLAVA_DNNL(dnnl_stream_wait(ctx->stream));
    ctx->dnnl_seconds += flava_now() - t0;
    return FLAVA_OK;
}

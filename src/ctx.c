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
};

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

flava_status flava_dnnl_exec(flava_ctx *ctx, dnnl_primitive_t prim, int nargs,
                             const dnnl_exec_arg_t *args)
{
    double t0 = flava_now();
    FLAVA_DNNL(dnnl_primitive_execute(prim, ctx->stream, nargs, args));
    FLAVA_DNNL(dnnl_stream_wait(ctx->stream));
    ctx->dnnl_seconds += flava_now() - t0;
    return FLAVA_OK;
}

/* layernorm.c - layer norm over the last axis through oneDNN's
 * layer_normalization primitive with separate scale and shift. oneDNN
 * saves mean and variance (not 1/std): those are what backward takes.
 * The backward primitive overwrites its outputs, so they go through
 * scratch of the cached entry and are then added to dinp, dw and db. */
#include <string.h>

#include "dnnl_util.h"
#include "ops.h"

/* key dims {N, C, bits of eps, training} (forward), {N, C, bits of eps} (backward) */
enum { LN_SRC, LN_DST, LN_MEAN, LN_VAR, LN_SCALE, LN_SHIFT, LN_NFMEM };
enum { LN_DDST = LN_NFMEM, LN_DSCALE, LN_DSHIFT, LN_NMEM }; /* LN_DST is diff_src in backward */
struct layernorm_entry {
    dnnl_primitive_t prim;
    dnnl_memory_t mem[LN_NMEM];
    float *dsrc, *dscale, *dshift; /* backward scratch */
};

static void layernorm_destroy(void *p)
{
    struct layernorm_entry *e = p;
    flava_dnnl_release(&e->prim, 1, e->mem, LN_NMEM);
    flava_free(e->dsrc);
    flava_free(e->dscale);
    flava_free(e->dshift);
    flava_free(e);
}

static const unsigned ln_flags = dnnl_use_scale | dnnl_use_shift;

static float key_eps(const flava_op_key *key)
{
    uint32_t bits = (uint32_t)key->dims[2];
    float eps;
    memcpy(&eps, &bits, sizeof eps);
    return eps;
}

static int64_t eps_bits(float eps)
{
    uint32_t bits;
    memcpy(&bits, &eps, sizeof bits);
    return bits;
}

/* Descriptors of data [N,C], statistics [N] and scale/shift [C]. */
static flava_status layernorm_mds(dnnl_memory_desc_t *data, dnnl_memory_desc_t *stat,
                                  dnnl_memory_desc_t *param, const flava_op_key *key)
{
    FLAVA_TRY(flava_dnnl_md(data, 2, key->dims, NULL, dnnl_f32));
    FLAVA_TRY(flava_dnnl_md(stat, 1, &key->dims[0], NULL, dnnl_f32));
    return flava_dnnl_md(param, 1, &key->dims[1], NULL, dnnl_f32);
}

static flava_status layernorm_fwd_build(void *p, flava_ctx *ctx, const flava_op_key *key)
{
    struct layernorm_entry *e = p;
    dnnl_memory_desc_t data, stat, param;
    FLAVA_TRY(layernorm_mds(&data, &stat, &param, key));
    dnnl_layer_normalization_desc_t d;
    dnnl_prop_kind_t prop = key->dims[3] ? dnnl_forward_training : dnnl_forward_inference;
    FLAVA_DNNL(dnnl_layer_normalization_forward_desc_init(&d, prop, &data, &stat, key_eps(key),
                                                          ln_flags));
    FLAVA_TRY(flava_dnnl_primitive(&e->prim, NULL, ctx, &d, NULL, NULL));
    const dnnl_memory_desc_t *md[LN_NFMEM] = {&data, &data, &stat, &stat, &param, &param};
    for (int i = 0; i < LN_NFMEM; i++)
        FLAVA_TRY(flava_dnnl_memory(&e->mem[i], ctx, md[i]));
    return FLAVA_OK;
}

static flava_status layernorm_bwd_build(void *p, flava_ctx *ctx, const flava_op_key *key)
{
    struct layernorm_entry *e = p;
    dnnl_memory_desc_t data, stat, param;
    FLAVA_TRY(layernorm_mds(&data, &stat, &param, key));
    dnnl_layer_normalization_desc_t fd, bd;
    float eps = key_eps(key);
    FLAVA_DNNL(dnnl_layer_normalization_forward_desc_init(&fd, dnnl_forward_training, &data, &stat,
                                                          eps, ln_flags));
    FLAVA_DNNL(dnnl_layer_normalization_backward_desc_init(&bd, dnnl_backward, &data, &data, &stat,
                                                           eps, ln_flags));
    FLAVA_TRY(flava_dnnl_backward_primitive(&e->prim, ctx, &fd, &bd));
    const dnnl_memory_desc_t *md[LN_NMEM] = {&data, &data,  &stat,  &stat, &param,
                                             &param, &data, &param, &param};
    for (int i = 0; i < LN_NMEM; i++)
        FLAVA_TRY(flava_dnnl_memory(&e->mem[i], ctx, md[i]));
    int64_t N = key->dims[0], C = key->dims[1];
    FLAVA_TRY(flava_alloc((void **)&e->dsrc, (size_t)(N * C) * sizeof(float), "layernorm dinp"));
    FLAVA_TRY(flava_alloc((void **)&e->dscale, (size_t)C * sizeof(float), "layernorm dw"));
    FLAVA_TRY(flava_alloc((void **)&e->dshift, (size_t)C * sizeof(float), "layernorm db"));
    FLAVA_TRY(flava_dnnl_bind(e->mem[LN_DST], e->dsrc));
    FLAVA_TRY(flava_dnnl_bind(e->mem[LN_DSCALE], e->dscale));
    return flava_dnnl_bind(e->mem[LN_DSHIFT], e->dshift);
}

static flava_status check_sizes(const char *op, int N, int C, float eps)
{
    if (N < 1 || C < 1 || !(eps > 0))
        return FLAVA_ERROR(FLAVA_ERR_SHAPE, "%s: N=%d C=%d eps=%g, expected N, C >= 1, eps > 0",
                           op, N, C, (double)eps);
    return FLAVA_OK;
}

flava_status layernorm_forward(flava_ctx *ctx, float *out, float *mean, float *var,
                               const float *inp, const float *w, const float *b,
                               int N, int C, float eps)
{
    FLAVA_TRY(check_sizes("layernorm_forward", N, C, eps));
    if ((mean == NULL) != (var == NULL))
        return FLAVA_ERROR(FLAVA_ERR_ARG, "layernorm_forward: mean and var must both be given "
                                          "(training) or both be NULL (inference)");
    int training = mean != NULL;
    flava_op_key key = {"layernorm_forward", {N, C, eps_bits(eps), training}};
    struct layernorm_entry *e;
    FLAVA_TRY(flava_dnnl_entry((void **)&e, ctx, &key, sizeof *e, layernorm_fwd_build,
                               layernorm_destroy));
    const void *data[LN_NFMEM] = {inp, out, mean, var, w, b};
    const int arg[LN_NFMEM] = {DNNL_ARG_SRC,      DNNL_ARG_DST,   DNNL_ARG_MEAN,
                               DNNL_ARG_VARIANCE, DNNL_ARG_SCALE, DNNL_ARG_SHIFT};
    dnnl_exec_arg_t args[LN_NFMEM];
    int n = 0;
    for (int i = 0; i < LN_NFMEM; i++) {
        if (!data[i])
            continue;
        FLAVA_TRY(flava_dnnl_bind(e->mem[i], data[i]));
        args[n++] = (dnnl_exec_arg_t){arg[i], e->mem[i]};
    }
    return flava_dnnl_exec(ctx, e->prim, n, args);
}

flava_status layernorm_backward(flava_ctx *ctx, float *dinp, float *dw, float *db,
                                const float *dout, const float *inp, const float *w,
                                const float *mean, const float *var, int N, int C, float eps)
{
    FLAVA_TRY(check_sizes("layernorm_backward", N, C, eps));
    if (!dinp && !dw && !db)
        return FLAVA_OK;
    flava_op_key key = {"layernorm_backward", {N, C, eps_bits(eps)}};
    struct layernorm_entry *e;
    FLAVA_TRY(flava_dnnl_entry((void **)&e, ctx, &key, sizeof *e, layernorm_bwd_build,
                               layernorm_destroy));
    dnnl_memory_t *m = e->mem;
    FLAVA_TRY(flava_dnnl_bind(m[LN_SRC], inp));
    FLAVA_TRY(flava_dnnl_bind(m[LN_DDST], dout));
    FLAVA_TRY(flava_dnnl_bind(m[LN_MEAN], mean));
    FLAVA_TRY(flava_dnnl_bind(m[LN_VAR], var));
    FLAVA_TRY(flava_dnnl_bind(m[LN_SCALE], w));
    dnnl_exec_arg_t args[] = {
        {DNNL_ARG_SRC, m[LN_SRC]},           {DNNL_ARG_DIFF_DST, m[LN_DDST]},
        {DNNL_ARG_MEAN, m[LN_MEAN]},         {DNNL_ARG_VARIANCE, m[LN_VAR]},
        {DNNL_ARG_SCALE, m[LN_SCALE]},       {DNNL_ARG_DIFF_SRC, m[LN_DST]},
        {DNNL_ARG_DIFF_SCALE, m[LN_DSCALE]}, {DNNL_ARG_DIFF_SHIFT, m[LN_DSHIFT]},
        {DNNL_ARG_SHIFT, m[LN_SHIFT]}};
    /* oneDNN 2.6 wants a shift argument in backward although no gradient
     * depends on it; w (of the same size, only read) stands in for it. */
    FLAVA_TRY(flava_dnnl_bind(m[LN_SHIFT], w));
    FLAVA_TRY(flava_dnnl_exec(ctx, e->prim, 9, args));
    if (dinp)
        flava_dnnl_accumulate(dinp, e->dsrc, (int64_t)N * C);
    if (dw)
        flava_dnnl_accumulate(dw, e->dscale, C);
    if (db)
        flava_dnnl_accumulate(db, e->dshift, C);
    return FLAVA_OK;
}

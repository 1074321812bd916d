/* batchnorm.c - 2-D batch norm (NCHW, statistics per channel) through
 * oneDNN's batch_normalization primitive with separate scale and shift.
 * Training normalises with the batch statistics, which oneDNN writes to the
 * caller's mean/var (the biased variance); the running statistics are then
 * updated here as torch does. Inference passes the running statistics as
 * global stats. The backward primitive overwrites, so its results go
 * through scratch of the cached entry and are added to the caller's. */
#include <string.h>

#include "dnnl_util.h"
#include "nchw.h"
#include "ops.h"

/* key dims {N, C, H, W, bits of eps, training} for both directions */
enum { BN_SRC, BN_DST, BN_MEAN, BN_VAR, BN_SCALE, BN_SHIFT, BN_NFMEM };
enum { BN_DDST = BN_NFMEM, BN_DSCALE, BN_DSHIFT, BN_NMEM }; /* BN_DST is diff_src in backward */
struct batchnorm_entry {
    dnnl_primitive_t prim;
    dnnl_memory_t mem[BN_NMEM];
    float *dsrc, *dscale, *dshift; /* backward scratch */
};

static void batchnorm_destroy(void *p)
{
    struct batchnorm_entry *e = p;
    flava_dnnl_release(&e->prim, 1, e->mem, BN_NMEM);
    flava_free(e->dsrc);
    flava_free(e->dscale);
    flava_free(e->dshift);
    flava_free(e);
}

static flava_op_key bn_key(const char *op, int N, int C, int H, int W, float eps, int training)
{
    flava_op_key key = {op, {N, C, H, W, flava_dnnl_float_dim(eps), training}};
    return key;
}

static float bn_eps(const flava_op_key *key) { return flava_dnnl_dim_float(key->dims[4]); }

/* Training uses the batch statistics; otherwise they are given (global). */
static unsigned bn_flags(const flava_op_key *key)
{
    return dnnl_use_scale | dnnl_use_shift | (key->dims[5] ? 0u : (unsigned)dnnl_use_global_stats);
}

/* Descriptors of data [N,C,H,W] and of statistics and parameters [C], and
 * the forward op descriptor (the backward's hint). */
static flava_status bn_descs(dnnl_memory_desc_t *data, dnnl_memory_desc_t *chan,
                             dnnl_batch_normalization_desc_t *fwd, const flava_op_key *key)
{
    FLAVA_TRY(flava_dnnl_md(data, 4, key->dims, NULL, dnnl_f32));
    FLAVA_TRY(flava_dnnl_md(chan, 1, &key->dims[1], NULL, dnnl_f32));
    dnnl_prop_kind_t prop = key->dims[5] ? dnnl_forward_training : dnnl_forward_inference;
    FLAVA_DNNL(dnnl_batch_normalization_forward_desc_init(fwd, prop, data, bn_eps(key),
                                                          bn_flags(key)));
    return FLAVA_OK;
}

static flava_status bn_fwd_build(void *p, flava_ctx *ctx, const flava_op_key *key)
{
    struct batchnorm_entry *e = p;
    dnnl_memory_desc_t data, chan;
    dnnl_batch_normalization_desc_t d;
    FLAVA_TRY(bn_descs(&data, &chan, &d, key));
    FLAVA_TRY(flava_dnnl_primitive(&e->prim, NULL, ctx, &d, NULL, NULL));
    const dnnl_memory_desc_t *md[BN_NFMEM] = {&data, &data, &chan, &chan, &chan, &chan};
    for (int i = 0; i < BN_NFMEM; i++)
        FLAVA_TRY(flava_dnnl_memory(&e->mem[i], ctx, md[i]));
    return FLAVA_OK;
}

static flava_status bn_bwd_build(void *p, flava_ctx *ctx, const flava_op_key *key)
{
    struct batchnorm_entry *e = p;
    dnnl_memory_desc_t data, chan;
    dnnl_batch_normalization_desc_t fd, bd;
    FLAVA_TRY(bn_descs(&data, &chan, &fd, key));
    FLAVA_DNNL(dnnl_batch_normalization_backward_desc_init(&bd, dnnl_backward, &data, &data,
                                                           bn_eps(key), bn_flags(key)));
    FLAVA_TRY(flava_dnnl_backward_primitive(&e->prim, ctx, &fd, &bd));
    const dnnl_memory_desc_t *md[BN_NMEM] = {&data, &data, &chan, &chan, &chan,
                                             &chan, &data, &chan, &chan};
    for (int i = 0; i < BN_NMEM; i++)
        FLAVA_TRY(flava_dnnl_memory(&e->mem[i], ctx, md[i]));
    int64_t n = key->dims[0] * key->dims[1] * key->dims[2] * key->dims[3], C = key->dims[1];
    FLAVA_TRY(flava_alloc((void **)&e->dsrc, (size_t)n * sizeof(float), "batchnorm dinp"));
    FLAVA_TRY(flava_alloc((void **)&e->dscale, (size_t)C * sizeof(float), "batchnorm dw"));
    FLAVA_TRY(flava_alloc((void **)&e->dshift, (size_t)C * sizeof(float), "batchnorm db"));
    FLAVA_TRY(flava_dnnl_bind(e->mem[BN_DST], e->dsrc));
    FLAVA_TRY(flava_dnnl_bind(e->mem[BN_DSCALE], e->dscale));
    return flava_dnnl_bind(e->mem[BN_DSHIFT], e->dshift);
}

static flava_status check_sizes(const char *op, int N, int C, int H, int W, float eps)
{
    FLAVA_TRY(flava_check_nchw(op, N, C, H, W));
    if (!(eps > 0))
        return FLAVA_ERROR(FLAVA_ERR_SHAPE, "%s: eps=%g, expected > 0", op, (double)eps);
    return FLAVA_OK;
}

/* r = (1 - m) r + m s, in double as torch's running-stat update is exact
 * to float rounding; var is scaled to the unbiased estimate. */
static void update_running(float *running_mean, float *running_var, const float *mean,
                           const float *var, int C, int64_t count, float momentum)
{
    double unbias = (double)count / (double)(count - 1), m = momentum;
    for (int c = 0; c < C; c++) {
        running_mean[c] = (float)((1 - m) * running_mean[c] + m * mean[c]);
        running_var[c] = (float)((1 - m) * running_var[c] + m * var[c] * unbias);
    }
}

flava_status batchnorm2d_forward(flava_ctx *ctx, float *out, float *mean, float *var,
                                 float *running_mean, float *running_var, const float *inp,
                                 const float *w, const float *b, int N, int C, int H, int W,
                                 float eps, float momentum)
{
    const char *op = "batchnorm2d_forward";
    FLAVA_TRY(check_sizes(op, N, C, H, W, eps));
    if ((mean == NULL) != (var == NULL) || (running_mean == NULL) != (running_var == NULL))
        return FLAVA_ERROR(FLAVA_ERR_ARG, "%s: mean and var, and running_mean and running_var, "
                                          "must each be both given or both NULL", op);
    int training = mean != NULL;
    if (!training && !running_mean)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "%s: inference (mean and var NULL) needs the running "
                                          "statistics", op);
    int64_t count = (int64_t)N * H * W;
    if (training && count < 2)
        return FLAVA_ERROR(FLAVA_ERR_SHAPE, "%s: training needs more than one value per channel "
                                            "(N*H*W = %lld)", op, (long long)count);
    if (training && running_mean && !(momentum >= 0 && momentum <= 1))
        return FLAVA_ERROR(FLAVA_ERR_ARG, "%s: momentum %g, expected in [0, 1]", op,
                           (double)momentum);
    flava_op_key key = bn_key(op, N, C, H, W, eps, training);
    struct batchnorm_entry *e;
    FLAVA_TRY(flava_dnnl_entry((void **)&e, ctx, &key, sizeof *e, bn_fwd_build,
                               batchnorm_destroy));
    const void *data[BN_NFMEM] = {inp, out, training ? mean : running_mean,
                                  training ? var : running_var, w, b};
    const int arg[BN_NFMEM] = {DNNL_ARG_SRC,      DNNL_ARG_DST,   DNNL_ARG_MEAN,
                               DNNL_ARG_VARIANCE, DNNL_ARG_SCALE, DNNL_ARG_SHIFT};
    dnnl_exec_arg_t args[BN_NFMEM];
    for (int i = 0; i < BN_NFMEM; i++) {
        FLAVA_TRY(flava_dnnl_bind(e->mem[i], data[i]));
        args[i] = (dnnl_exec_arg_t){arg[i], e->mem[i]};
    }
    FLAVA_TRY(flava_dnnl_exec(ctx, e->prim, BN_NFMEM, args));
    if (training && running_mean)
        update_running(running_mean, running_var, mean, var, C, count, momentum);
    return FLAVA_OK;
}

flava_status batchnorm2d_backward(flava_ctx *ctx, float *dinp, float *dw, float *db,
                                  const float *dout, const float *inp, const float *w,
                                  const float *mean, const float *var, int N, int C, int H, int W,
                                  float eps, int training)
{
    FLAVA_TRY(check_sizes("batchnorm2d_backward", N, C, H, W, eps));
    if (!dinp && !dw && !db)
        return FLAVA_OK;
    flava_op_key key = bn_key("batchnorm2d_backward", N, C, H, W, eps, training != 0);
    struct batchnorm_entry *e;
    FLAVA_TRY(flava_dnnl_entry((void **)&e, ctx, &key, sizeof *e, bn_bwd_build,
                               batchnorm_destroy));
    dnnl_memory_t *m = e->mem;
    FLAVA_TRY(flava_dnnl_bind(m[BN_SRC], inp));
    FLAVA_TRY(flava_dnnl_bind(m[BN_DDST], dout));
    FLAVA_TRY(flava_dnnl_bind(m[BN_MEAN], mean));
    FLAVA_TRY(flava_dnnl_bind(m[BN_VAR], var));
    FLAVA_TRY(flava_dnnl_bind(m[BN_SCALE], w));
    /* as in layernorm.c: oneDNN 2.6 wants a shift argument in backward that
     * no gradient reads; w (same size, only read) stands in for it */
    FLAVA_TRY(flava_dnnl_bind(m[BN_SHIFT], w));
    dnnl_exec_arg_t args[] = {
        {DNNL_ARG_SRC, m[BN_SRC]},           {DNNL_ARG_DIFF_DST, m[BN_DDST]},
        {DNNL_ARG_MEAN, m[BN_MEAN]},         {DNNL_ARG_VARIANCE, m[BN_VAR]},
        {DNNL_ARG_SCALE, m[BN_SCALE]},       {DNNL_ARG_DIFF_SRC, m[BN_DST]},
        {DNNL_ARG_DIFF_SCALE, m[BN_DSCALE]}, {DNNL_ARG_DIFF_SHIFT, m[BN_DSHIFT]},
        {DNNL_ARG_SHIFT, m[BN_SHIFT]}};
    FLAVA_TRY(flava_dnnl_exec(ctx, e->prim, 9, args));
    if (dinp)
        flava_dnnl_accumulate(dinp, e->dsrc, (int64_t)N * C * H * W);
    if (dw)
        flava_dnnl_accumulate(dw, e->dscale, C);
    if (db)
        flava_dnnl_accumulate(db, e->dshift, C);
    return FLAVA_OK;
}

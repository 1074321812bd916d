/* scale.c - the squeeze-and-excitation channel scale: every H×W plane of
 * inp[N,C,H,W] times its s[n,c]. Forward is a oneDNN binary multiply with
 * s broadcast as [N,C,1,1]; backward is plain C (dinp is a product, ds a
 * per-plane dot product summed in double). */
#include "dnnl_util.h"
#include "nchw.h"
#include "ops.h"

/* key dims {N, C, H, W} */
enum { CS_SRC0, CS_SRC1, CS_DST, CS_NMEM };
struct channel_scale_entry {
    dnnl_primitive_t prim;
    dnnl_memory_t mem[CS_NMEM];
};

static void channel_scale_destroy(void *p)
{
    struct channel_scale_entry *e = p;
    flava_dnnl_release(&e->prim, 1, e->mem, CS_NMEM);
    flava_free(e);
}

static flava_status channel_scale_build(void *p, flava_ctx *ctx, const flava_op_key *key)
{
    struct channel_scale_entry *e = p;
    int64_t sdims[4] = {key->dims[0], key->dims[1], 1, 1};
    dnnl_memory_desc_t data, scale;
    FLAVA_TRY(flava_dnnl_md(&data, 4, key->dims, NULL, dnnl_f32));
    FLAVA_TRY(flava_dnnl_md(&scale, 4, sdims, NULL, dnnl_f32));
    dnnl_binary_desc_t d;
    FLAVA_DNNL(dnnl_binary_desc_init(&d, dnnl_binary_mul, &data, &scale, &data));
    FLAVA_TRY(flava_dnnl_primitive(&e->prim, NULL, ctx, &d, NULL, NULL));
    const dnnl_memory_desc_t *md[CS_NMEM] = {&data, &scale, &data};
    for (int i = 0; i < CS_NMEM; i++)
        FLAVA_TRY(flava_dnnl_memory(&e->mem[i], ctx, md[i]));
    return FLAVA_OK;
}

flava_status channel_scale_forward(flava_ctx *ctx, float *out, const float *inp, const float *s,
                                   int N, int C, int H, int W)
{
    FLAVA_TRY(flava_check_nchw("channel_scale_forward", N, C, H, W));
    flava_op_key key = {"channel_scale_forward", {N, C, H, W}};
    struct channel_scale_entry *e;
    FLAVA_TRY(flava_dnnl_entry((void **)&e, ctx, &key, sizeof *e, channel_scale_build,
                               channel_scale_destroy));
    FLAVA_TRY(flava_dnnl_bind(e->mem[CS_SRC0], inp));
    FLAVA_TRY(flava_dnnl_bind(e->mem[CS_SRC1], s));
    FLAVA_TRY(flava_dnnl_bind(e->mem[CS_DST], out));
    dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC_0, e->mem[CS_SRC0]},
                              {DNNL_ARG_SRC_1, e->mem[CS_SRC1]},
                              {DNNL_ARG_DST, e->mem[CS_DST]}};
    return flava_dnnl_exec(ctx, e->prim, 3, args);
}

flava_status channel_scale_backward(float *dinp, float *ds, const float *dout, const float *inp,
                                    const float *s, int N, int C, int H, int W)
{
    FLAVA_TRY(flava_check_nchw("channel_scale_backward", N, C, H, W));
    int64_t planes = (int64_t)N * C, hw = (int64_t)H * W;
#pragma omp parallel for schedule(static) if (planes * hw > 16384)
    for (int64_t p = 0; p < planes; p++) {
        const float *g = dout + p * hw, *x = inp + p * hw;
        if (dinp) {
            float *dx = dinp + p * hw;
            for (int64_t i = 0; i < hw; i++)
                dx[i] += g[i] * s[p];
        }
        if (ds) {
            double acc = 0;
            for (int64_t i = 0; i < hw; i++)
                acc += (double)g[i] * x[i];
            ds[p] += (float)acc;
        }
    }
    return FLAVA_OK;
}

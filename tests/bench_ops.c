/* bench_ops.c - GFLOP/s of the dense ops at the bench-small shapes (tokens
 * 16x197, hidden 384, MLP 1536, 6 heads), forward and backward, f32 and
 * bf16, next to oneDNN's matmul limit on this machine (a large square
 * matmul). Flops are nominal: 2 per multiply-add for the products; for the
 * memory-bound ops a small per-element count, given in the table.
 * Each row gives the fastest call in wall time and in process CPU time
 * (both threads; run with OMP_WAIT_POLICY=passive so that waiting threads
 * sleep and the CPU column is the work, whatever else runs on the machine).
 * Usage: bench_ops [seconds per row, default 0.3] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "flava.h"

enum { B = 16, T = 197, N = B * T, C = 384, M = 1536, NH = 6, BIG = 2048 };

typedef struct bufs {
    float *x, *y, *dx, *dy, *w, *dw, *b, *db, *qkv, *dqkv, *att, *mean, *var, *mask;
} bufs;

typedef flava_status (*bench_fn)(flava_ctx *ctx, bufs *s, int arg);

static flava_status lin_fwd(flava_ctx *ctx, bufs *s, int oc)
{
    return linear_forward(ctx, s->y, s->x, s->w, s->b, N, C, oc);
}
static flava_status lin_gelu_fwd(flava_ctx *ctx, bufs *s, int oc)
{
    return linear_gelu_forward(ctx, s->y, s->x, s->w, s->b, N, C, oc);
}
static flava_status lin_bwd(flava_ctx *ctx, bufs *s, int oc)
{
    return linear_backward(ctx, s->dx, s->dw, s->db, s->dy, s->x, s->w, N, C, oc);
}
/* fc2: 1536 -> 384 */
static flava_status fc2_fwd(flava_ctx *ctx, bufs *s, int oc)
{
    return linear_forward(ctx, s->y, s->x, s->w, s->b, N, M, oc);
}
static flava_status fc2_bwd(flava_ctx *ctx, bufs *s, int oc)
{
    return linear_backward(ctx, s->dx, s->dw, s->db, s->dy, s->x, s->w, N, M, oc);
}
/* BERT's and FLAVA's attention_probs_dropout_prob */
static const flava_dropout att_drop = {.p = 0.1f, .seed = 1, .stream = 1};
static flava_status attn_fwd(flava_ctx *ctx, bufs *s, int masked)
{
    return attention_forward(ctx, s->y, s->att, s->qkv, masked ? s->mask : NULL, 0, B, T, C, NH, NULL);
}
static flava_status attn_drop_fwd(flava_ctx *ctx, bufs *s, int unused)
{
    (void)unused;
    return attention_forward(ctx, s->y, s->att, s->qkv, NULL, 0, B, T, C, NH, &att_drop);
}
static flava_status attn_bwd(flava_ctx *ctx, bufs *s, int dropout)
{
    return attention_backward(ctx, s->dqkv, s->dy, s->qkv, s->att, B, T, C, NH,
                              dropout ? &att_drop : NULL);
}
static flava_status ln_fwd(flava_ctx *ctx, bufs *s, int unused)
{
    (void)unused;
    return layernorm_forward(ctx, s->y, s->mean, s->var, s->x, s->w, s->b, N, C, 1e-12f);
}
static flava_status ln_bwd(flava_ctx *ctx, bufs *s, int unused)
{
    (void)unused;
    return layernorm_backward(ctx, s->dx, s->dw, s->db, s->dy, s->x, s->w, s->mean, s->var, N, C,
                              1e-12f);
}
static flava_status sm_fwd(flava_ctx *ctx, bufs *s, int unused)
{
    (void)unused;
    return softmax_forward(ctx, s->y, s->att, B * NH * T, T);
}
static flava_status sm_bwd(flava_ctx *ctx, bufs *s, int unused)
{
    (void)unused;
    return softmax_backward(ctx, s->dx, s->dy, s->att, B * NH * T, T);
}
static flava_status gelu_f(flava_ctx *ctx, bufs *s, int unused)
{
    (void)unused;
    return gelu_forward(ctx, s->y, s->x, (int64_t)N * M);
}
static flava_status gelu_b(flava_ctx *ctx, bufs *s, int unused)
{
    (void)unused;
    return gelu_backward(ctx, s->dx, s->dy, s->x, (int64_t)N * M);
}
static flava_status big_matmul(flava_ctx *ctx, bufs *s, int n)
{
    return linear_forward(ctx, s->y, s->x, s->w, NULL, n, n, n);
}
/* the patch embedding: 16x3x224x224, 16x16 patches -> [16, 196, 384] */
static const flava_conv2d_dims patch = {.N = B, .C = 3, .H = 224, .W = 224, .OC = C, .KH = 16,
                                        .KW = 16, .stride = 16, .groups = 1, .dst_nhwc = 1};
static flava_status patch_fwd(flava_ctx *ctx, bufs *s, int unused)
{
    (void)unused;
    return conv2d_forward(ctx, s->y, s->x, s->w, s->b, &patch);
}
/* weights and bias only (pixels need no gradient), or with the input's */
static flava_status patch_bwd(flava_ctx *ctx, bufs *s, int with_dinp)
{
    return conv2d_backward(ctx, with_dinp ? s->dx : NULL, s->dw, s->db, s->dy, s->x, s->w, &patch);
}

typedef struct row {
    const char *name, *shape;
    bench_fn fn;
    int arg;
    double flops;
    int matmul; /* run in bf16 too */
} row;

/* Process CPU seconds (all threads): on a shared machine, with
 * OMP_WAIT_POLICY=passive, the work of a call whatever the load. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The fastest call of r at precision p in wall time (best[0]) and in CPU
 * time (best[1]), over about `budget` seconds after a first call that
 * builds the primitives: minima, not means, since a loaded machine only
 * ever adds time. Returns -1 on failure. */
static int measure(double best[2], flava_ctx *ctx, bufs *s, const row *r, int p, double budget)
{
    flava_ctx_set_precision(ctx, p ? FLAVA_PRECISION_BF16 : FLAVA_PRECISION_F32);
    int reps = 0;
    double start = 0;
    best[0] = best[1] = -1;
    for (;;) {
        double t0 = flava_now(), c0 = cpu_now();
        if (r->fn(ctx, s, r->arg) != FLAVA_OK) {
            fprintf(stderr, "bench_ops: %s: %s\n", r->name, flava_error_message());
            return -1;
        }
        double t1 = flava_now(), c1 = cpu_now();
        if (reps++ == 0) {
            start = t1;
            continue;
        }
        if (best[0] < 0 || t1 - t0 < best[0])
            best[0] = t1 - t0;
        if (best[1] < 0 || c1 - c0 < best[1])
            best[1] = c1 - c0;
        if (reps >= 3 && t1 - start >= budget)
            return 0;
    }
}

/* Prints one line per precision; limit[p] > 0 adds the share of it. */
static int run_row(flava_ctx *ctx, bufs *s, const row *r, double budget, double *limit)
{
    for (int p = 0; p <= r->matmul; p++) {
        double best[2];
        if (measure(best, ctx, s, r, p, budget) < 0)
            return 1;
        double gf = r->flops / best[0] * 1e-9;
        printf("%-22s %-18s %-5s %9.3f %9.3f %9.1f", r->name, r->shape, p ? "bf16" : "f32",
               1e3 * best[0], 1e3 * best[1], gf);
        if (r->matmul && limit[p] > 0)
            printf(" %8.0f%%", 100.0 * gf / limit[p]);
        else if (r->matmul) /* the first row is the limit itself */
            limit[p] = gf;
        printf("\n");
    }
    return 0;
}

static float *buffer(int64_t n)
{
    float *p = malloc((size_t)n * sizeof *p);
    if (p)
        for (int64_t i = 0; i < n; i++)
            p[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    return p;
}

int main(int argc, char **argv)
{
    double budget = argc > 1 ? atof(argv[1]) : 0.3;
    flava_ctx *ctx;
    if (flava_ctx_create(&ctx, FLAVA_PRECISION_F32) != FLAVA_OK) {
        fprintf(stderr, "bench_ops: %s\n", flava_error_message());
        return 1;
    }
    int64_t big = (int64_t)BIG * BIG, act = (int64_t)N * M, att = (int64_t)B * NH * T * T;
    int64_t most = act > big ? act : big, qkv = 3 * (int64_t)N * C;
    bufs s = {buffer(most), buffer(most), buffer(most), buffer(most), buffer(big),
              buffer(big), buffer(M), buffer(M), buffer(qkv), buffer(qkv), buffer(att),
              buffer(N), buffer(N), buffer((int64_t)B * T)};
    float *all[] = {s.x, s.y, s.dx, s.dy, s.w, s.dw, s.b, s.db, s.qkv, s.dqkv, s.att, s.mean,
                    s.var, s.mask};
    const size_t nall = sizeof all / sizeof all[0];
    int rc = 0;
    for (size_t i = 0; i < nall; i++)
        if (!all[i])
            rc = 1;
    if (rc)
        fprintf(stderr, "bench_ops: out of memory\n");
    for (int i = 0; i < B * T && !rc; i++)
        s.mask[i] = i % T < 180;

    const double attn_flops = 4.0 * B * T * T * C; /* q·kᵀ and att·v */
    const double conv_patch = 2.0 * B * (T - 1) * C * 3 * 16 * 16;
    const double lin_qkv = 2.0 * N * C * 3 * C, lin_o = 2.0 * N * C * C, lin_m = 2.0 * N * C * M;
    const row rows[] = {
        {"oneDNN matmul limit", "2048^3", big_matmul, BIG, 2.0 * BIG * BIG * BIG, 1},
        {"linear qkv fwd", "3152x384->1152", lin_fwd, 3 * C, lin_qkv, 1},
        {"linear qkv bwd", "3152x384->1152", lin_bwd, 3 * C, 2 * lin_qkv, 1},
        {"linear out fwd", "3152x384->384", lin_fwd, C, lin_o, 1},
        {"linear out bwd", "3152x384->384", lin_bwd, C, 2 * lin_o, 1},
        {"linear fc1 fwd", "3152x384->1536", lin_fwd, M, lin_m, 1},
        {"linear+gelu fc1 fwd", "3152x384->1536", lin_gelu_fwd, M, lin_m, 1},
        {"linear fc1 bwd", "3152x384->1536", lin_bwd, M, 2 * lin_m, 1},
        {"linear fc2 fwd", "3152x1536->384", fc2_fwd, C, lin_m, 1},
        {"linear fc2 bwd", "3152x1536->384", fc2_bwd, C, 2 * lin_m, 1},
        {"attention fwd", "16x197, 6x64", attn_fwd, 0, attn_flops, 1},
        {"attention fwd masked", "16x197, 6x64", attn_fwd, 1, attn_flops, 1},
        {"attention bwd", "16x197, 6x64", attn_bwd, 0, 2 * attn_flops, 1},
        {"attention fwd drop.1", "16x197, 6x64", attn_drop_fwd, 0, attn_flops, 1},
        {"attention bwd drop.1", "16x197, 6x64", attn_bwd, 1, 2 * attn_flops, 1},
        {"conv patch fwd", "16x3x224^2/16->384", patch_fwd, 0, conv_patch, 1},
        {"conv patch bwd w+b", "16x3x224^2/16->384", patch_bwd, 0, conv_patch, 0},
        {"conv patch bwd all", "16x3x224^2/16->384", patch_bwd, 1, 2 * conv_patch, 0},
        {"layernorm fwd (8/el)", "3152x384", ln_fwd, 0, 8.0 * N * C, 0},
        {"layernorm bwd (12/el)", "3152x384", ln_bwd, 0, 12.0 * N * C, 0},
        {"softmax fwd (4/el)", "18912x197", sm_fwd, 0, 4.0 * att, 0},
        {"softmax bwd (4/el)", "18912x197", sm_bwd, 0, 4.0 * att, 0},
        {"gelu fwd (10/el)", "3152x1536", gelu_f, 0, 10.0 * act, 0},
        {"gelu bwd (12/el)", "3152x1536", gelu_b, 0, 12.0 * act, 0},
    };
    double limit[2] = {0, 0};
    if (!rc)
        printf("%-22s %-18s %-5s %9s %9s %9s %9s\n", "op", "shape", "prec", "ms", "cpu ms",
               "GFLOP/s", "of limit");
    for (size_t i = 0; i < sizeof rows / sizeof rows[0] && !rc; i++)
        rc = run_row(ctx, &s, &rows[i], budget, limit);
    for (size_t i = 0; i < nall; i++)
        free(all[i]);
    flava_ctx_destroy(ctx);
    return rc;
}

/* bench_step.c - benchmark (not a test): samples/s of full FLAVA
 * pretraining steps of the config bench-small (tests/reference/bench_ref.py
 * measures PyTorch on the same step): an image-text batch of 16, unmasked
 * and masked passes, all six losses (MIM/MLM on the masked unimodal passes
 * too), MIM labels given, backward, AdamW. Prints the median step time,
 * samples/s and the share of the step inside oneDNN primitives, in f32 and
 * in bf16.
 *
 * usage: bench_step [STEPS [WARMUP]]   (defaults 3 and 1; OMP_NUM_THREADS) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "model.h"
#include "optim.h"
#include "rng.h"

enum { B = 16, T = 32, H = 384 };

static void die(flava_status s, const char *what)
{
    if (s == FLAVA_OK)
        return;
    fprintf(stderr, "bench_step: %s: %s\n", what, flava_error_message());
    exit(1);
}

static void config(flava_config *c)
{
    flava_config_default(c);
    c->hidden_size = H;
    flava_encoder_config *e[3] = {&c->image.enc, &c->text.enc, &c->multimodal.enc};
    for (int i = 0; i < 3; i++) {
        e[i]->hidden_size = H;
        e[i]->num_attention_heads = 6;
        e[i]->intermediate_size = 4 * H;
        e[i]->num_hidden_layers = i == 2 ? 3 : 6;
    }
    c->init_codebook = 0;
}

/* bench_ref.py's batch: 40% of patches and 15% of tokens masked, some
 * padding, one ITM negative in four. */
static void make_batch(flava_batch *b, const flava_config *c)
{
    const int P = 196, V = c->text.vocab_size;
    memset(b, 0, sizeof *b);
    b->B = B, b->T = T, b->P = P, b->image_size = 224;
    b->pixel_values = malloc((size_t)B * 3 * 224 * 224 * sizeof(float));
    b->input_ids = malloc(B * T * sizeof(int32_t));
    b->input_ids_masked = malloc(B * T * sizeof(int32_t));
    b->token_type_ids = calloc(B * T, sizeof(int32_t));
    b->attention_mask = malloc(B * T * sizeof(float));
    b->mlm_labels = malloc(B * T * sizeof(int32_t));
    b->bool_masked_pos = malloc(B * P);
    b->mim_labels = malloc(B * P * sizeof(int32_t));
    b->itm_labels = malloc(B * sizeof(int32_t));
    flava_rng r;
    flava_rng_init(&r, 0, 0);
    for (size_t i = 0; i < (size_t)B * 3 * 224 * 224; i++)
        b->pixel_values[i] = (float)flava_rng_normal(&r);
    for (int i = 0; i < B; i++) {
        b->itm_labels[i] = i % 4 != 3;
        for (int t = 0; t < T; t++) {
            int k = i * T + t, on = t < T - i % 8;
            int id = on ? (t == 0 ? 101 : 5 + (int)flava_rng_below(&r, (uint32_t)V - 5)) : 0;
            int pick = on && (t == 1 || flava_rng_uniform(&r) < 0.15);
            b->attention_mask[k] = (float)on;
            b->input_ids[k] = id;
            b->input_ids_masked[k] = pick ? 103 : id;
            b->mlm_labels[k] = pick ? id : -100;
        }
        for (int p = 0; p < P; p++) {
            b->bool_masked_pos[i * P + p] = flava_rng_uniform(&r) < 0.4;
            b->mim_labels[i * P + p] = (int32_t)flava_rng_below(&r, 8192);
        }
    }
}

/* CPU seconds of the process so far (user + system): on a shared machine
 * the wall clock says more about the neighbours than about us. */
static double cpu_seconds(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + 1e-6 * (double)u.ru_utime.tv_usec +
           (double)u.ru_stime.tv_sec + 1e-6 * (double)u.ru_stime.tv_usec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int steps = argc > 1 ? atoi(argv[1]) : 3, warmup = argc > 2 ? atoi(argv[2]) : 1;
    if (steps < 1 || steps > 1000 || warmup < 0) {
        fprintf(stderr, "usage: bench_step [STEPS [WARMUP]]\n");
        return 2;
    }
    flava_config c;
    config(&c);
    flava_model *m;
    die(flava_model_create(&m, &c, NULL), "model");
    m->unimodal_on_paired = 1;
    flava_model_init_weights(m, 0);
    die(flava_model_alloc_grads(m), "gradients");
    die(flava_model_alloc_optim(m), "optimizer");
    flava_batch b;
    make_batch(&b, &c);
    flava_ctx *ctx;
    die(flava_ctx_create(&ctx, FLAVA_PRECISION_F32), "context");
    printf("bench-small: %.1fM parameters, batch %d, %s\n", m->table.total / 1e6, B,
           flava_ctx_has_bf16(ctx) ? "bf16 native" : "no native bf16");
    const flava_adamw_config ac = FLAVA_ADAMW_DEFAULTS;
    double *times = malloc((size_t)steps * sizeof *times);
    int64_t step = 0;
    for (int prec = 0; prec < 2; prec++) {
        flava_ctx_set_precision(ctx, prec ? FLAVA_PRECISION_BF16 : FLAVA_PRECISION_F32);
        double dnnl = 0, total = 0, cpu = 0;
        for (int i = 0; i < warmup + steps; i++) {
            flava_ctx_reset_dnnl_seconds(ctx);
            double t0 = flava_now(), c0 = cpu_seconds();
            flava_model_zero_grads(m);
            die(flava_model_forward(ctx, m, &b, 1), "forward");
            double t1 = flava_now();
            die(flava_model_backward(ctx, m, &b), "backward");
            double t2 = flava_now();
            die(flava_model_adamw_step(m, 1e-3, ++step, &ac), "AdamW");
            double dt = flava_now() - t0;
            if (getenv("BENCH_VERBOSE"))
                printf("  step %d: forward %.3f s, backward %.3f s, zero+AdamW %.3f s, oneDNN "
                       "%.3f s\n",
                       i, t1 - t0, t2 - t1, dt - (t2 - t0), flava_ctx_dnnl_seconds(ctx));
            if (i >= warmup) {
                cpu += cpu_seconds() - c0;
                times[i - warmup] = dt;
                dnnl += flava_ctx_dnnl_seconds(ctx);
                total += dt;
            }
        }
        qsort(times, (size_t)steps, sizeof *times, cmp_double);
        double med = times[steps / 2];
        printf("%s: median step %.3f s over %d steps -> %.2f samples/s, %.0f%% in oneDNN; "
               "%.1f CPU s per step (loss %.3f:",
               prec ? "bf16" : "f32 ", med, steps, B / med, 100 * dnnl / total, cpu / steps,
               m->loss);
        for (int h = 0; h < FLAVA_NUM_HEADS; h++)
            if (m->head_ran[h])
                printf(" %s=%.3f", flava_heads[h]->name, m->head[h].loss);
        printf(")\n");
    }
    free(times);
    flava_ctx_destroy(ctx);
    free(b.pixel_values);
    free(b.input_ids);
    free(b.input_ids_masked);
    free(b.token_type_ids);
    free(b.attention_mask);
    free(b.mlm_labels);
    free(b.bool_masked_pos);
    free(b.mim_labels);
    free(b.itm_labels);
    flava_model_destroy(m);
    return 0;
}

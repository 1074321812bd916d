/* dropout.c - inverted dropout with masks that are drawn again, not kept.
 *
 * Element i of a site's mask comes from draw i/2 of flava_rng_init(seed,
 * stream) (its high 32 bits for even i, its low 32 bits for odd i): it is
 * kept, scaled by 1/(1-p), where those 32 bits are at least p * 2^32, and
 * zeroed elsewhere. A mask is a function of (seed, stream, i) alone, so
 * backward draws it again instead of storing a tensor per site, and the
 * threads fill it in any order. tests/reference/encoder_fixtures.py draws
 * the same masks. */
#include "ops.h"
#include "rng.h"

static flava_status check_dropout(const char *op, const flava_dropout *d, int64_t n)
{
    if (!(d->p >= 0.0f && d->p < 1.0f))
        return FLAVA_ERROR(FLAVA_ERR_ARG, "%s: dropout probability %g, expected 0 <= p < 1", op,
                           (double)d->p);
    if (n < 0)
        return FLAVA_ERROR(FLAVA_ERR_SHAPE, "%s: n=%lld, expected >= 0", op, (long long)n);
    return FLAVA_OK;
}

/* AVX-512 (x86-64-v4) has 64-bit vector multiplies: splitmix64 in vectors
 * runs at copy speed, 2.4x the scalar loop on this code's benchmark. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#define VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "default")))
#else
#define VECTOR_CLONES
#endif

static inline float kept(uint64_t bits, uint64_t threshold, float keep)
{
    return bits >= threshold ? keep : 0.0f;
}

/* Pairs [k0, k1): y = x * mask (y += with accumulate), and y2 = x2 * mask
 * under the same draws when y2 is given; element 2k from the high 32 bits
 * of draw k, element 2k + 1 from its low 32 bits. */
VECTOR_CLONES
static void scale_pairs(float *y, const float *x, float *y2, const float *x2, int64_t k0,
                        int64_t k1, flava_rng r, uint64_t threshold, float keep, int accumulate)
{
    if (accumulate) {
#pragma omp simd
        for (int64_t k = k0; k < k1; k++) {
            const uint64_t u = flava_rng_draw(&r, (uint64_t)k);
            y[2 * k] += x[2 * k] * kept(u >> 32, threshold, keep);
            y[2 * k + 1] += x[2 * k + 1] * kept(u & 0xffffffffu, threshold, keep);
        }
    } else if (y2) {
#pragma omp simd
        for (int64_t k = k0; k < k1; k++) {
            const uint64_t u = flava_rng_draw(&r, (uint64_t)k);
            const float m0 = kept(u >> 32, threshold, keep);
            const float m1 = kept(u & 0xffffffffu, threshold, keep);
            y[2 * k] = x[2 * k] * m0;
            y[2 * k + 1] = x[2 * k + 1] * m1;
            y2[2 * k] = x2[2 * k] * m0;
            y2[2 * k + 1] = x2[2 * k + 1] * m1;
        }
    } else {
#pragma omp simd
        for (int64_t k = k0; k < k1; k++) {
            const uint64_t u = flava_rng_draw(&r, (uint64_t)k);
            y[2 * k] = x[2 * k] * kept(u >> 32, threshold, keep);
            y[2 * k + 1] = x[2 * k + 1] * kept(u & 0xffffffffu, threshold, keep);
        }
    }
}

static void copy_or_add(float *y, const float *x, int64_t n, int accumulate)
{
    if (y == x && !accumulate)
        return;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++)
        y[i] = accumulate ? y[i] + x[i] : x[i];
}

/* y[i] = x[i] * scale_i (y[i] += ... if accumulate), and y2[i] = x2[i] *
 * scale_i if y2 is given (never with accumulate) */
static void apply(float *y, const float *x, float *y2, const float *x2, int64_t n,
                  const flava_dropout *d, int accumulate)
{
    if (d->p == 0.0f) { /* the identity */
        copy_or_add(y, x, n, accumulate);
        if (y2)
            copy_or_add(y2, x2, n, 0);
        return;
    }
    flava_rng r;
    flava_rng_init(&r, d->seed, d->stream);
    const uint64_t threshold = (uint64_t)((double)d->p * 4294967296.0);
    const float keep = 1.0f / (1.0f - d->p);
    const int64_t pairs = n / 2, chunk = 8192;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t k0 = 0; k0 < pairs; k0 += chunk)
        scale_pairs(y, x, y2, x2, k0, k0 + chunk < pairs ? k0 + chunk : pairs, r, threshold,
                    keep, accumulate);
    if (n % 2) { /* the last element: the high half of draw `pairs` */
        const float m = kept(flava_rng_draw(&r, (uint64_t)pairs) >> 32, threshold, keep);
        y[n - 1] = accumulate ? y[n - 1] + x[n - 1] * m : x[n - 1] * m;
        if (y2)
            y2[n - 1] = x2[n - 1] * m;
    }
}

flava_status dropout_forward(float *out, const float *inp, int64_t n, const flava_dropout *d)
{
    FLAVA_TRY(check_dropout("dropout_forward", d, n));
    apply(out, inp, NULL, NULL, n, d, 0);
    return FLAVA_OK;
}

flava_status dropout_forward_pair(float *out_a, const float *inp_a, float *out_b,
                                  const float *inp_b, int64_t n, const flava_dropout *d)
{
    FLAVA_TRY(check_dropout("dropout_forward_pair", d, n));
    apply(out_a, inp_a, out_b, inp_b, n, d, 0);
    return FLAVA_OK;
}

flava_status dropout_backward(float *dinp, const float *dout, int64_t n, const flava_dropout *d)
{
    FLAVA_TRY(check_dropout("dropout_backward", d, n));
    if (dinp)
        apply(dinp, dout, NULL, NULL, n, d, 1);
    return FLAVA_OK;
}

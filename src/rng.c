/* rng.c - splitmix64 and what is drawn from it. */
#include "rng.h"

#include <math.h>

void flava_rng_init(flava_rng *r, uint64_t seed, uint64_t stream)
{
    r->state = flava_rng_mix(seed ^ flava_rng_mix(stream + FLAVA_RNG_GOLDEN));
}

uint64_t flava_rng_u64(flava_rng *r)
{
    r->state += FLAVA_RNG_GOLDEN;
    return flava_rng_mix(r->state);
}

uint32_t flava_rng_below(flava_rng *r, uint32_t n)
{
    /* Lemire's multiply-shift; the bias is below 2^-32 for our n. */
    return (uint32_t)(((flava_rng_u64(r) >> 32) * (uint64_t)n) >> 32);
}

double flava_rng_uniform(flava_rng *r) { return (double)(flava_rng_u64(r) >> 11) * 0x1.0p-53; }

double flava_rng_normal(flava_rng *r)
{
    double u1 = flava_rng_uniform(r), u2 = flava_rng_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

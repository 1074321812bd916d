/* rng.c - splitmix64 and what is drawn from it. */
#include "rng.h"

#include <math.h>

static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void flava_rng_init(flava_rng *r, uint64_t seed, uint64_t stream)
{
    r->state = mix(seed ^ mix(stream + 0x9e3779b97f4a7c15ull));
}

uint64_t flava_rng_u64(flava_rng *r)
{
    r->state += 0x9e3779b97f4a7c15ull;
    return mix(r->state);
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

/* rng.h - the one random number generator (splitmix64). Every random choice
 * (init, masks, data order, dropout) draws from an explicit state derived
 * from the run's seed, so the same seed gives the same run. Independent
 * streams (one per sample, per worker, per purpose) come from
 * flava_rng_init(seed, stream), never from shared state. */
#ifndef FLAVA_RNG_H
#define FLAVA_RNG_H

#include <stdint.h>

typedef struct flava_rng {
    uint64_t state;
} flava_rng;

/* splitmix64's output function and its state increment */
static inline uint64_t flava_rng_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
#define FLAVA_RNG_GOLDEN 0x9e3779b97f4a7c15ull

void flava_rng_init(flava_rng *r, uint64_t seed, uint64_t stream);
uint64_t flava_rng_u64(flava_rng *r);
/* Draw k (from 0) of r's stream without advancing r: what the (k+1)-th
 * flava_rng_u64 would return, so that threads can fill a long mask in any
 * order (inline: dropout draws one per two elements). */
static inline uint64_t flava_rng_draw(const flava_rng *r, uint64_t k)
{
    return flava_rng_mix(r->state + (k + 1) * FLAVA_RNG_GOLDEN);
}
uint32_t flava_rng_below(flava_rng *r, uint32_t n); /* uniform in [0, n) */
double flava_rng_uniform(flava_rng *r);             /* uniform in [0, 1) */
double flava_rng_normal(flava_rng *r);              /* standard normal */

#endif

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

void flava_rng_init(flava_rng *r, uint64_t seed, uint64_t stream);
uint64_t flava_rng_u64(flava_rng *r);
uint32_t flava_rng_below(flava_rng *r, uint32_t n); /* uniform in [0, n) */
double flava_rng_uniform(flava_rng *r);             /* uniform in [0, 1) */
double flava_rng_normal(flava_rng *r);              /* standard normal */

#endif

/* Random numbers: xoshiro256** seeded through splitmix64, state held by the caller
 * (one generator per runtime context, never a C global). */
#ifndef RECUR_RNG_H
#define RECUR_RNG_H

#include <stdint.h>

typedef struct rc_rng {
  uint64_t s[4];
  int has_spare; /* Box-Muller produces normals in pairs */
  double spare;
} rc_rng;

void rc_rng_seed(rc_rng *r, uint64_t seed);
uint64_t rc_rng_next(rc_rng *r);
double rc_rng_uniform(rc_rng *r); /* [0, 1) with 53 random bits */
double rc_rng_normal(rc_rng *r);  /* standard normal */
/* Uniform integer in [0, n) without modulo bias. */
uint64_t rc_rng_below(rc_rng *r, uint64_t n);

#endif

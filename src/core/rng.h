// rng.h: small deterministic random number generator (xoshiro-style
// splitmix64 core). State is one uint64 so it can be checkpointed.
#ifndef QS_CORE_RNG_H
#define QS_CORE_RNG_H
#include <stdint.h>

typedef struct { uint64_t s; } qs_rng;

void qs_rng_seed(qs_rng *r, uint64_t seed);
uint64_t qs_rng_u64(qs_rng *r);
uint32_t qs_rng_u32(qs_rng *r);
float qs_rng_uniform(qs_rng *r);          // [0,1)
float qs_rng_normal(qs_rng *r);           // N(0,1), Box-Muller
uint64_t qs_rng_below(qs_rng *r, uint64_t n); // uniform in [0,n), n>0

#endif

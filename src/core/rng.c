// rng.c: splitmix64 generator; deterministic across platforms.
#include "core/rng.h"
#include <math.h>

void qs_rng_seed(qs_rng *r, uint64_t seed) { r->s = seed ^ 0x9E3779B97F4A7C15ull; }

uint64_t qs_rng_u64(qs_rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint32_t qs_rng_u32(qs_rng *r) { return (uint32_t)(qs_rng_u64(r) >> 32); }

float qs_rng_uniform(qs_rng *r) { return (qs_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

float qs_rng_normal(qs_rng *r) {
    double u1 = ((qs_rng_u64(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    double u2 = (qs_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

uint64_t qs_rng_below(qs_rng *r, uint64_t n) { return n ? qs_rng_u64(r) % n : 0; }

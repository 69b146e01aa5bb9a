// half.c: float32 <-> float16 / bfloat16 (see half.h).
#include "io/half.h"

#include <string.h>

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float float_of(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t qs_f32_to_bf16(float f) {
    uint32_t u = bits_of(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u); // NaN: keep it quiet
    u += 0x7fffu + ((u >> 16) & 1u); // round to nearest, ties to even (carries into the exponent)
    return (uint16_t)(u >> 16);
}

float qs_bf16_to_f32(uint16_t h) { return float_of((uint32_t)h << 16); }

uint16_t qs_f32_to_f16(float f) {
    const uint32_t u = bits_of(f), sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);   // NaN
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);  // rounds to >= 65520: inf
    if (a < 0x38800000u) {                                    // below 2^-14: subnormal or zero
        if (a < 0x33000000u) return (uint16_t)sign;           // below 2^-25: rounds to 0
        // value = m * 2^(e-150) with the implicit bit; f16 subnormal unit is 2^-24
        const uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u, shift = 126 - e; // 14..24
        uint32_t q = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return (uint16_t)(sign | q);
    }
    // normal: rebias exponent (127 -> 15), keep 10 mantissa bits, RNE on the 13 dropped
    uint32_t v = a - 0x38000000u; // exponent - 112
    v += 0xfffu + ((v >> 13) & 1u);
    return (uint16_t)(sign | (v >> 13));
}

float qs_f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) { // zero or subnormal: m * 2^-24
        float v = (float)m * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    if (e == 31) return float_of(sign | 0x7f800000u | (m << 13));
    return float_of(sign | ((e + 112) << 23) | (m << 13));
}

void qs_f32_to_half_n(uint16_t *dst, const float *src, size_t n, int bf) {
    if (bf)
        for (size_t i = 0; i < n; i++) dst[i] = qs_f32_to_bf16(src[i]);
    else
        for (size_t i = 0; i < n; i++) dst[i] = qs_f32_to_f16(src[i]);
}

// test_half.c: float32 -> float16 / bfloat16 conversions (src/io/half.c)
// against the definition of round-to-nearest-even: the result decodes to a
// representable value nearest to the input (in double arithmetic), ties go
// to the even code, values at or past the overflow midpoint become inf, NaN
// stays NaN. Checked exhaustively on every code, the midpoints between
// neighbouring codes and one float ulp on either side of them (ties,
// subnormals, the normal/subnormal boundary, overflow), plus random floats;
// also against the compiler's _Float16 conversion where it has one.
#include "testutil.h"

#include <stdint.h>

#include "io/half.h"

static float f_of(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t u_of(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

// Independent decoders (formulas, not bit tricks): value of a code as a double.
static double dec16(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

static double decbf(uint16_t h) {
    int s = h >> 15, e = (h >> 7) & 255, m = h & 127;
    double v = e == 0 ? ldexp(m, -133) : e == 255 ? (m ? NAN : INFINITY) : ldexp(128 + m, e - 134);
    return s ? -v : v;
}

// Checks that code r is the round-to-nearest-even encoding of x.
static void check_rne(float x, uint16_t r, int bf) {
    double (*dec)(uint16_t) = bf ? decbf : dec16;
    const double xv = x, got = dec(r);
    if (isnan(x)) {
        if (!isnan(got)) fail_msg("%s(NaN %08x) = %04x is not NaN", bf ? "bf16" : "f16", u_of(x), r);
        return;
    }
    if (signbit(got) != signbit(xv) && !(got == 0 && xv == 0))
        fail_msg("%s(%a) = %04x: wrong sign", bf ? "bf16" : "f16", xv, r);
    if (isinf(got)) { // only at or past the midpoint between the largest finite code and 2^(emax+1)
        const double maxf = bf ? decbf(0x7f7f) : dec16(0x7bff), next = bf ? ldexp(1, 128) : 65536.0;
        if (!(fabs(xv) >= (maxf + next) / 2))
            fail_msg("%s(%a) = inf but %a is representable nearer", bf ? "bf16" : "f16", xv, maxf);
        return;
    }
    // neighbours of r in magnitude (same sign)
    const uint16_t mag = r & 0x7fff, sign = r & 0x8000;
    const double err = fabs(xv - got);
    const uint16_t nb[2] = {(uint16_t)(sign | (mag ? mag - 1 : 0)), (uint16_t)(sign | (mag + 1))};
    for (int k = 0; k < 2; k++) {
        double alt = dec(nb[k]);
        if (isinf(alt) || nb[k] == r) continue;
        double e2 = fabs(xv - alt);
        if (e2 < err) fail_msg("%s(%a) = %04x (%a) but %04x (%a) is nearer", bf ? "bf16" : "f16", xv, r, got, nb[k], alt);
        if (e2 == err && (mag & 1)) fail_msg("%s(%a): tie went to the odd code %04x", bf ? "bf16" : "f16", xv, r);
    }
    if (mag == 0 && fabs(xv) >= (bf ? decbf(1) : dec16(1)) / 2 && !(fabs(xv) == (bf ? decbf(1) : dec16(1)) / 2))
        fail_msg("%s(%a) flushed to zero", bf ? "bf16" : "f16", xv);
}

static uint16_t enc(float x, int bf) { return bf ? qs_f32_to_bf16(x) : qs_f32_to_f16(x); }
static float back(uint16_t h, int bf) { return bf ? qs_bf16_to_f32(h) : qs_f16_to_f32(h); }

// Every code decodes exactly and encodes back to itself; the midpoints between
// neighbouring codes (ties) and one float ulp either side round correctly.
static void exhaustive(int bf) {
    for (uint32_t c = 0; c < 65536; c++) {
        const uint16_t h = (uint16_t)c;
        const float f = back(h, bf);
        const double want = bf ? decbf(h) : dec16(h);
        if (isnan(want)) {
            assert_true(isnan(f));
            assert_true(isnan(back(enc(f, bf), bf)));
            continue;
        }
        if ((double)f != want) fail_msg("%s decode %04x: %a, want %a", bf ? "bf16" : "f16", h, (double)f, want);
        if (enc(f, bf) != h) fail_msg("%s round trip %04x -> %a -> %04x", bf ? "bf16" : "f16", h, (double)f, enc(f, bf));
        if ((h & 0x7fff) >= (bf ? 0x7f80 : 0x7c00)) continue;
        // midpoint to the next code up in magnitude (exact in float: both formats have fewer bits)
        const double up = bf ? decbf((uint16_t)(h + 1)) : dec16((uint16_t)(h + 1));
        const double mid = isinf(up) ? (bf ? copysign(ldexp(255, 120), want) : copysign(65520.0, want)) : (want + up) / 2;
        if (want == 0 && up == 0) continue;
        const float m = (float)mid;
        assert_true((double)m == mid);
        check_rne(m, enc(m, bf), bf);
        check_rne(nextafterf(m, 0), enc(nextafterf(m, 0), bf), bf);
        check_rne(nextafterf(m, INFINITY), enc(nextafterf(m, INFINITY), bf), bf);
        check_rne(nextafterf(m, -INFINITY), enc(nextafterf(m, -INFINITY), bf), bf);
    }
}

static void test_f16_exhaustive(void **state) { (void)state; exhaustive(0); }
static void test_bf16_exhaustive(void **state) { (void)state; exhaustive(1); }

// Named cases: the values a reader can check by hand.
static void test_named_cases(void **state) {
    (void)state;
    assert_int_equal(qs_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(qs_f32_to_f16(-2.0f), 0xc000);
    assert_int_equal(qs_f32_to_f16(65504.0f), 0x7bff);                  // largest finite
    assert_int_equal(qs_f32_to_f16(65519.996f), 0x7bff);                // below the overflow midpoint
    assert_int_equal(qs_f32_to_f16(65520.0f), 0x7c00);                  // the midpoint ties to even: inf
    assert_int_equal(qs_f32_to_f16(1e9f), 0x7c00);
    assert_int_equal(qs_f32_to_f16(-INFINITY), 0xfc00);
    assert_int_equal(qs_f32_to_f16(ldexpf(1, -24)), 0x0001);            // smallest subnormal
    assert_int_equal(qs_f32_to_f16(ldexpf(1, -25)), 0x0000);            // half of it: tie to even 0
    assert_int_equal(qs_f32_to_f16(ldexpf(3, -26)), 0x0001);            // 0.75 ulp: up
    assert_int_equal(qs_f32_to_f16(ldexpf(3, -25)), 0x0002);            // 1.5 ulp: tie to even 2
    assert_int_equal(qs_f32_to_f16(ldexpf(1023, -24) + ldexpf(1, -25)), 0x0400); // -> smallest normal
    assert_int_equal(qs_f32_to_f16(1.0f + ldexpf(1, -11)), 0x3c00);     // tie between 1 and 1+2^-10: even
    assert_int_equal(qs_f32_to_f16(1.0f + 3 * ldexpf(1, -11)), 0x3c02); // tie: to the even 1+2^-9
    assert_int_equal(qs_f32_to_f16(-0.0f), 0x8000);
    assert_int_equal(qs_f32_to_f16(ldexpf(1, -140)), 0x0000);           // float subnormal -> 0
    assert_true((qs_f32_to_f16(NAN) & 0x7fff) > 0x7c00);
    assert_int_equal(qs_f32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(qs_f32_to_bf16(f_of(0x3f808000)), 0x3f80);         // tie: even
    assert_int_equal(qs_f32_to_bf16(f_of(0x3f818000)), 0x3f82);         // tie: even (up)
    assert_int_equal(qs_f32_to_bf16(f_of(0x3f808001)), 0x3f81);
    assert_int_equal(qs_f32_to_bf16(f_of(0x7f7fffff)), 0x7f80);         // FLT_MAX rounds to inf
    assert_int_equal(qs_f32_to_bf16(f_of(0x00000001)), 0x0000);         // float subnormals
    assert_int_equal(qs_f32_to_bf16(f_of(0x00008000)), 0x0000);         // tie to even 0
    assert_int_equal(qs_f32_to_bf16(f_of(0x00018000)), 0x0002);
    assert_int_equal(qs_f32_to_bf16(-INFINITY), 0xff80);
    const uint16_t qn = qs_f32_to_bf16(f_of(0x7f800001)); // signalling NaN: must not become inf
    assert_true((qn & 0x7f80) == 0x7f80 && (qn & 0x7f) != 0);
    assert_true(isnan(qs_bf16_to_f32(qs_f32_to_bf16(-NAN))));
    assert_true(isnan(qs_f16_to_f32(qs_f32_to_f16(f_of(0x7f800001)))));
    assert_true(qs_f16_to_f32(0x0001) == ldexpf(1, -24));
    assert_true(qs_f16_to_f32(0x83ff) == -ldexpf(1023, -24));
    uint16_t out[4];
    const float in[4] = {1.0f, -2.0f, 0.5f, 65504.0f};
    qs_f32_to_half_n(out, in, 4, 0);
    assert_int_equal(out[3], 0x7bff);
    qs_f32_to_half_n(out, in, 4, 1);
    assert_int_equal(out[1], 0xc000);
}

// Random floats of every magnitude, by the nearest-even definition, and by the
// compiler's own float -> _Float16 conversion where there is one.
static void test_random(void **state) {
    (void)state;
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 2000000; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        const float x = f_of((uint32_t)s);
        const uint16_t h = qs_f32_to_f16(x), b = qs_f32_to_bf16(x);
        check_rne(x, h, 0);
        check_rne(x, b, 1);
#ifdef __FLT16_MAX__
        if (!isnan(x)) {
            _Float16 c = (_Float16)x;
            uint16_t cu;
            memcpy(&cu, &c, 2);
            if (cu != h) fail_msg("f16(%a): %04x, the compiler's _Float16 says %04x", (double)x, h, cu);
        }
#endif
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_named_cases),
        cmocka_unit_test(test_f16_exhaustive),
        cmocka_unit_test(test_bf16_exhaustive),
        cmocka_unit_test(test_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

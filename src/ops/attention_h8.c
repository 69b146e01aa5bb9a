// attention_h8.c: the thought attention's forward for head size 8 (stories260K),
// query by query in vector registers (see attention.c for the GEMM path it replaces).
#include "ops/attention_impl.h"
#include <string.h>

// ---- head size 8: the forward query by query in registers ------------------------
// With hd = 8 (stories260K) a score is 8 multiply-adds, too short an inner dimension for
// the score GEMM. The forward instead walks each query's visible prefix keys 16 at a
// time in vector registers (GCC/Clang vector extensions, lowered to what the target
// has): scores and their max, then probabilities and outputs (8% faster per layer than
// the GEMMs). The same for the backward (dq, dkt, dvt in one pass) measured 15-20%
// slower than its GEMMs, which keep the dkt/dvt sums in registers: it stays on them.
// Builds without AVX-512 (the sanitizer and fuzzing builds) pass these vectors
// differently, and compilers warn about the ABI; that matters only across translation
// units, and the functions below are all static.
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpsabi"
#elif defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
typedef float v16f __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));
typedef uint32_t v16u __attribute__((vector_size(64)));
#define H8 8

static inline v16f v16_load(const float *p) {
    v16f v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void v16_store(float *p, v16f v) { memcpy(p, &v, sizeof v); }
static inline v16i v16i_load(const int32_t *p) {
    v16i v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline v16f v16_splat(float x) { return (v16f){0} + x; }
static inline v16f v16_select(v16i m, v16f a, v16f b) { return (v16f)(((v16i)a & m) | ((v16i)b & ~m)); }

// qs_exp_neg on 16 lanes, the same operations in the same order.
static inline v16f v16_exp_neg(v16f x) {
    const v16f xc = v16_select(x < v16_splat(-87.0f), v16_splat(-87.0f), x);
    const v16f t = xc * 1.44269504f + 12582912.0f;
    const v16f n = t - 12582912.0f;
    const v16f r = xc - n * 0.693145752f - n * 1.42860677e-6f;
    v16f p = 1.0f + r * (1.0f + r * (0.5f + r * (0.166666672f + r * (0.0416666418f +
                                                                      r * (0.00833336077f + r * 0.00139304355f)))));
    p = (v16f)((v16u)p + (((v16u)t - 0x4B400000u) << 23));
    return v16_select(x == x, p, x);
}

static inline float v16_sum(v16f v) {
    float s = 0.0f;
    for (int u = 0; u < 16; u++) s += v[u];
    return s;
}

static inline float v16_max(v16f v) {
    float m = v[0];
    for (int u = 1; u < 16; u++) m = v[u] > m ? v[u] : m;
    return m;
}

// Lanes j0 .. j0+15 that are visible: lo <= j < hi and not masked out (keep).
static inline v16i v16_visible(const int32_t *keep, int j0, int lo, int hi) {
    const v16i j = (v16i){0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15} + j0;
    return (j >= (v16i){0} + lo) & (j < (v16i){0} + hi) & v16i_load(keep + j0);
}

// keep[j] = -1 where prefix key j of row r is not padding (mask), for j < P; 0 up to Pp.
void attn_keep_row(int32_t *keep, const attn_shape *s, int r, int P, int Pp) {
    const int *mrow = s->mask ? s->mask + (size_t)r * s->T : NULL;
    for (int j = 0; j < P; j++) keep[j] = !mrow || mrow[j] ? -1 : 0;
    for (int j = P; j < Pp; j++) keep[j] = 0;
}

// The forward of query qv over its prefix keys j in [lo, hi) (kt, vt: [8][Pp]) in two
// passes: prefix_scores_h8 writes the scaled scores into row (Pp floats of scratch)
// and returns their max over the visible keys (-inf: none); prefix_values_h8, given
// m0 (the max with the own-thought keys), sets ob[c] = sum_j exp(s_j - m0) v_j[c] and
// returns sum_j exp(s_j - m0).
static float prefix_scores_h8(float *row, const float *qv, const float *kt, const int32_t *keep, int Pp, int lo,
                              int hi, float scale) {
    v16f mv = v16_splat(-INFINITY);
    for (int j0 = lo / 16 * 16; j0 < hi; j0 += 16) {
        v16f a = v16_splat(0.0f);
        for (int c = 0; c < H8; c++) a += qv[c] * v16_load(kt + (size_t)c * Pp + j0);
        a *= scale;
        v16_store(row + j0, a);
        mv = v16_select(v16_visible(keep, j0, lo, hi) & (a > mv), a, mv);
    }
    return v16_max(mv);
}

static float prefix_values_h8(float *ob, const float *row, const float *vt, const int32_t *keep, int Pp, int lo,
                              int hi, float m0) {
    v16f lv = v16_splat(0.0f), oa[H8];
    for (int c = 0; c < H8; c++) oa[c] = v16_splat(0.0f);
    for (int j0 = lo / 16 * 16; j0 < hi; j0 += 16) {
        const v16f p = v16_select(v16_visible(keep, j0, lo, hi), v16_exp_neg(v16_load(row + j0) - m0), v16_splat(0.0f));
        lv += p;
        for (int c = 0; c < H8; c++) oa[c] += p * v16_load(vt + (size_t)c * Pp + j0);
    }
    for (int c = 0; c < H8; c++) ob[c] = v16_sum(oa[c]);
    return v16_sum(lv);
}

// block_forward (attention.c) for head size 8, query by query (see prefix_scores_h8).
void attn_block_forward_h8(attn_buf *b, float *out, float *lse, const float *kt, const float *vt, int Pp, int n,
                           int Pb, int ia, const attn_shape *s, float scale) {
    const size_t ostride = (size_t)b->D * H8; // per position in ko, vo
    for (int k = 0; k < n; k++) {
        const int i = b->pos[k], d = b->pass[k];
        const float *qv = b->qb + (size_t)k * H8;
        float *po = b->po + (size_t)k * b->D, ob[H8];
        int lo, hi;
        prefix_range(s, i, d, Pb, &lo, &hi);
        float mx = prefix_scores_h8(b->p, qv, kt, b->keep, Pp, lo, hi, scale);
        attn_own_scores(po, qv, b->ko + (i - ia) * ostride, s, d, scale);
        for (int e = 1; e <= d; e++) mx = po[e] > mx ? po[e] : mx;
        const float m0 = mx == -INFINITY ? 0.0f : mx; // no visible key: every entry becomes 0
        float l = prefix_values_h8(ob, b->p, vt, b->keep, Pp, lo, hi, m0);
        for (int e = 1; e <= d; e++) {
            po[e] = po[e] == -INFINITY ? 0.0f : qs_exp_neg(po[e] - m0);
            l += po[e];
        }
        const size_t qh = b->qh[k];
        own_values(out + qh * H8, ob, po, mx == -INFINITY ? 0.0f : 1.0f / l, b->vo + (i - ia) * ostride, d, H8);
        lse[qh] = mx == -INFINITY ? -INFINITY : mx + logf(l);
    }
}

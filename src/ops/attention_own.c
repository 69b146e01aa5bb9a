// attention_own.c: the own-thought keys of the thought attention (attention.c): a
// query of pass d at position i also sees the keys of passes 1..d at position i.
// In the cache those lie one pass plane apart (for stories260K 32 KB, a power-of-two
// stride that thrashed L1 and L2 when read query by query), so they are copied out
// per block of positions first, plane by plane, each plane read in order.
#include "ops/attention_impl.h"
#include <string.h>

// Own-thought keys or values (passes 1..D-1) of positions i .. i+n-1 of (row r, kv
// head g) into dst [n][D][hd], one pass plane after the other (each read in order).
static inline __attribute__((always_inline)) void own_gather_hd(float *dst, const float *c, const attn_shape *s,
                                                                int D, int r, int g, int i, int n, int hd) {
    for (int e = 1; e < D; e++)
        for (int k = 0; k < n; k++)
            copy(dst + ((size_t)k * D + e) * hd, kv_at(c, s, e, r, i + k, g), hd);
}

void attn_own_gather(float *dst, const float *c, const attn_shape *s, int D, int r, int g, int i, int n) {
    WITH_HD(s->hd, own_gather_hd(dst, c, s, D, r, g, i, n, HD_));
}

// The reverse of own_gather, adding: c (passes 1..D-1 at those positions) += src.
static void own_scatter_add(float *c, const float *src, const attn_shape *s, int D, int r, int g, int i, int n) {
    const int hd = s->hd;
    for (int e = 1; e < D; e++)
        for (int k = 0; k < n; k++) {
            float *t = (float *)kv_at(c, s, e, r, i + k, g);
            const float *x = src + ((size_t)k * D + e) * hd;
#pragma omp simd
            for (int u = 0; u < hd; u++) t[u] += x[u];
        }
}

// Like own_gather, transposed per position, rows of Dp: dst [n][hd][Dp].
static void own_gather_t(float *dst, const float *c, const attn_shape *s, int D, int Dp, int r, int g, int i,
                         int n) {
    const int hd = s->hd;
    for (int e = 1; e < D; e++)
        for (int k = 0; k < n; k++) {
            const float *x = kv_at(c, s, e, r, i + k, g);
            float *t = dst + (size_t)k * hd * Dp + e;
            for (int u = 0; u < hd; u++) t[(size_t)u * Dp] = x[u];
        }
}

// The reverse of own_gather_t, adding.
static void own_scatter_add_t(float *c, const float *src, const attn_shape *s, int D, int Dp, int r, int g, int i,
                              int n) {
    const int hd = s->hd;
    for (int e = 1; e < D; e++)
        for (int k = 0; k < n; k++) {
            float *t = (float *)kv_at(c, s, e, r, i + k, g);
            const float *x = src + (size_t)k * hd * Dp + e;
            for (int u = 0; u < hd; u++) t[u] += x[(size_t)u * Dp];
        }
}

// sc[e] = qv . key e for every slot e < Dp, from keys transposed per position, kT
// [hd][Dp]: one vector operation per head element across all keys (the backward).
// (16 keys at a time, their sums in a register: summed in sc, they waited on its stores)
static inline __attribute__((always_inline)) void own_dots(float *sc, const float *qv, const float *kT, int Dp,
                                                           int hd) {
    for (int e0 = 0; e0 < Dp; e0 += 16) {
        float acc[16] = {0.0f};
        for (int c = 0; c < hd; c++) {
            const float qc = qv[c], *kr = kT + (size_t)c * Dp + e0;
#pragma omp simd
            for (int u = 0; u < 16; u++) acc[u] += qc * kr[u];
        }
        for (int u = 0; u < 16; u++) sc[e0 + u] = acc[u];
    }
}

// Scaled scores of query qv (pass d) on its own-thought keys ko (passes 1..d at its
// position, gathered: key e at ko + e*hd) into po[1..d], -inf outside the window.
// (Key by key here: the forward's queries see at most d keys; across keys, as in the
// backward, measured slower.)
static inline __attribute__((always_inline)) void own_scores_hd(float *po, const float *qv, const float *ko,
                                                                const attn_shape *s, int d, float scale, int hd) {
    const int lo = own_lo(s, d);
    for (int e = 1; e <= d; e++) po[e] = e >= lo ? dot(qv, ko + (size_t)e * hd, hd) * scale : -INFINITY;
}

void attn_own_scores(float *po, const float *qv, const float *ko, const attn_shape *s, int d, float scale) {
    WITH_HD(s->hd, own_scores_hd(po, qv, ko, s, d, scale, HD_));
}

// Backward of query qv (pass d, position i; output gradient go, lse L, Dq) over its
// own-thought keys (passes 1..d at position i), key by key, p recomputed from L. Key
// e is at k0 + e*es, its value, key and value gradients at the same offset from v0,
// dk0, dv0 (es: the cache's pass plane, or hd in gathered copies).
static inline __attribute__((always_inline)) void own_keys_hd(float *gq, float *dk0, float *dv0, const float *qv,
                                                              const float *go, const float *k0, const float *v0,
                                                              size_t es, const attn_shape *s, int i, int d,
                                                              float L, float Dq, float scale, int hd) {
    float acc[HD_MAX]; // gq's sum in registers (see own_values_hd)
    for (int c = 0; c < hd; c++) acc[c] = 0.0f;
    for (int e = 1; e <= d; e++) {
        if (!in_window(s, i, d, i + e)) continue;
        const size_t o = e * es;
        const float p = qs_exp_neg(dot(qv, k0 + o, hd) * scale - L);
        key_backward(acc, dk0 + o, dv0 + o, k0 + o, v0 + o, qv, go, p, Dq, scale, hd);
    }
    for (int c = 0; c < hd; c++) gq[c] += acc[c];
}

void attn_own_keys_backward(float *gq, float *dk0, float *dv0, const float *qv, const float *go, const float *k0,
                              const float *v0, size_t es, const attn_shape *s, int i, int d, float L, float Dq,
                              float scale) {
    WITH_HD(s->hd, own_keys_hd(gq, dk0, dv0, qv, go, k0, v0, es, s, i, d, L, Dq, scale, HD_));
}

// Backward of query qv (pass d; output gradient go, lse L, Dq) over its own-thought
// keys e in [lo, d], vectorised across all Dp key slots (the others get p = 0): kT,
// vT, dkT, dvT [hd][Dp] transposed per position, ko [D][hd] for dq; sc: 2*Dp floats.
//   p = exp(q.k * scale - L);  ds = p * (go.v - Dq) * scale;
//   dq += ds k;  dk += ds q;  dv += p go.
static inline __attribute__((always_inline)) void own_keys_t_hd(float *gq, float *dkT, float *dvT, const float *qv,
                                                                const float *go, const float *ko, const float *kT,
                                                                const float *vT, float *sc, int Dp, int lo, int d,
                                                                float L, float Dq, float scale, int hd) {
    float *p = sc, *ds = sc + Dp, acc[HD_MAX];
    own_dots(p, qv, kT, Dp, hd);
    own_dots(ds, go, vT, Dp, hd);
#pragma omp simd
    for (int e = 0; e < Dp; e++) {
        const float pe = e >= lo && e <= d ? qs_exp_neg(p[e] * scale - L) : 0.0f;
        p[e] = pe;
        ds[e] = pe * (ds[e] - Dq) * scale;
    }
    for (int c = 0; c < hd; c++) {
        const float qc = qv[c], gc = go[c];
        float *dkr = dkT + (size_t)c * Dp, *dvr = dvT + (size_t)c * Dp;
#pragma omp simd
        for (int e = 0; e < Dp; e++) dkr[e] += ds[e] * qc, dvr[e] += p[e] * gc;
    }
    for (int c = 0; c < hd; c++) acc[c] = 0.0f;
    for (int e = lo; e <= d; e++) axpy(acc, ds[e], ko + (size_t)e * hd, hd);
    for (int c = 0; c < hd; c++) gq[c] += acc[c];
}

static void own_keys_t(float *gq, float *dkT, float *dvT, const float *qv, const float *go, const float *ko,
                       const float *kT, const float *vT, float *sc, int Dp, int lo, int d, float L, float Dq,
                       float scale, int hd) {
    WITH_HD(hd, own_keys_t_hd(gq, dkT, dvT, qv, go, ko, kT, vT, sc, Dp, lo, d, L, Dq, scale, HD_));
}

// Own-thought keys of the queries of (row r, kv head g) at positions i0+a ..
// i0+a+nb-1 (nb <= b->no), passes d0..d0+nd-1: keys, values and their gradients
// through gathered copies, the queries pass by pass (each pass plane read in order).
void attn_own_block_backward(attn_buf *b, float *dq, float *dkc, float *dvc, const float *dout, const float *q,
                               const float *kc, const float *vc, const float *out, const float *lse,
                               const attn_shape *s, int d0, int nd, int i0, int ni, int r, int g, int a, int nb,
                               float scale) {
    const int D = b->D, Dp = b->Dp, hd = s->hd, nh = s->nh, rep = s->nh / s->nkv, across = hd <= OWN_ACROSS_HD;
    const size_t n = (size_t)nb * D * hd, nt = (size_t)nb * Dp * hd;
    attn_own_gather(b->ko, kc, s, D, r, g, i0 + a, nb);
    if (across) {
        own_gather_t(b->kT, kc, s, D, Dp, r, g, i0 + a, nb);
        own_gather_t(b->vT, vc, s, D, Dp, r, g, i0 + a, nb);
        memset(b->dkT, 0, sizeof(float) * nt), memset(b->dvT, 0, sizeof(float) * nt);
    } else {
        attn_own_gather(b->vo, vc, s, D, r, g, i0 + a, nb);
        memset(b->dko, 0, sizeof(float) * n), memset(b->dvo, 0, sizeof(float) * n);
    }
    for (int dd = d0 == 0 ? 1 : 0; dd < nd; dd++) { // pass 0 has no own-thought key
        const int d = d0 + dd, lo = own_lo(s, d);
        if (lo > d) continue;
        for (int ii = a; ii < a + nb; ii++)
            for (int h = g * rep; h < (g + 1) * rep; h++) {
                const size_t qh = (((size_t)dd * s->R + r) * ni + ii) * nh + h;
                const size_t o = (size_t)(ii - a) * D * hd, ot = (size_t)(ii - a) * Dp * hd;
                const float L = lse[qh];
                if (L == -INFINITY) continue;
                const float *go = dout + qh * hd, Dq = dot(go, out + qh * hd, hd);
                if (across)
                    own_keys_t(dq + qh * hd, b->dkT + ot, b->dvT + ot, q + qh * hd, go, b->ko + o, b->kT + ot,
                               b->vT + ot, b->os, Dp, lo, d, L, Dq, scale, hd);
                else
                    attn_own_keys_backward(dq + qh * hd, b->dko + o, b->dvo + o, q + qh * hd, go, b->ko + o, b->vo + o,
                                      hd, s, i0 + ii, d, L, Dq, scale);
            }
    }
    if (across) {
        own_scatter_add_t(dkc, b->dkT, s, D, Dp, r, g, i0 + a, nb);
        own_scatter_add_t(dvc, b->dvT, s, D, Dp, r, g, i0 + a, nb);
    } else {
        own_scatter_add(dkc, b->dko, s, D, r, g, i0 + a, nb);
        own_scatter_add(dvc, b->dvo, s, D, r, g, i0 + a, nb);
    }
}


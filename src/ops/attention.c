// attention.c: grouped-query attention with the Quiet-STaR thought structure
// (see ops.h). Instead of a dense T x T*(d+1) mask, each query walks exactly
// its visible keys: i+1 prefix keys of pass 0 plus d keys of its own thought.
// The forward keeps only the log-sum-exp per (query, head); the backward
// recomputes the probabilities from it. Scores live in a per-thread buffer
// so the exponentials and dot products vectorise.
//
// The prefix keys (pass 0) are shared by every query of a row, in every pass.
// For blocks of many queries (training, prefill) they are first transposed
// per (row, kv head) to [hd][P], so a query's prefix scores, its output and
// all the backward products are loops over key positions that vectorise for
// any head size (head_dim 8 in stories260K), instead of one short dot
// product per key. Own-thought keys (at most D-1 per query) go key by key.
#include "ops/ops.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define HD_MAX 512
// blocks with at least this many queries per row use the transposed prefix
#define TRANSPOSE_MIN_QUERIES 4

static inline __attribute__((always_inline)) float dot(const float *a, const float *b, int n) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int k = 0; k < n; k++) s += a[k] * b[k];
    return s;
}

static inline __attribute__((always_inline)) void axpy(float *restrict y, float a, const float *restrict x, int n) {
#pragma omp simd
    for (int k = 0; k < n; k++) y[k] += a * x[k];
}

// exp(x) for x <= 0 (scores minus their max), vectorisable: 2^n * p(r) with
// a degree-6 polynomial on r in [-ln2/2, ln2/2]; relative error ~2e-7.
static inline __attribute__((always_inline)) float exp_neg(float x) {
    x = x < -87.0f ? -87.0f : x;
    float n = (x * 1.44269504f + 12582912.0f) - 12582912.0f; // round to nearest
    float r = x - n * 0.693145752f - n * 1.42860677e-6f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.166666672f + r * (0.0416666418f + r * (0.00833336077f + r * 0.00139304355f)))));
    union { float f; int32_t i; } u = {.f = p};
    u.i += (int32_t)n * (1 << 23); // scale by 2^n (n >= -126 after the clamp)
    return u.f;
}

// Pointer to the key/value of (pass e, row r, position j, kv head g).
static inline const float *kv_at(const float *c, const attn_shape *s, int e, int r, int j, int g) {
    return c + (((size_t)e * s->R + r) * s->T + j) * (size_t)(s->nkv * s->hd) + (size_t)g * s->hd;
}

// Visible keys of query (d, r, i): k < i+1 are prefix keys (pass 0, position
// k), k >= i+1 are own-thought keys (pass k-i, position i).
static inline const float *key_ptr(const float *c, const attn_shape *s, int r, int i, int g, int k) {
    return k <= i ? kv_at(c, s, 0, r, k, g) : kv_at(c, s, k - i, r, i, g);
}

// Sliding window: query (pass d, position i) has position id i+d; visible key
// k (prefix key k at id k, or own-thought key of pass k-i at id k) is hidden
// when the id difference i+d-k reaches the window.
static inline int in_window(const attn_shape *s, int i, int d, int k) {
    return s->window <= 0 || i + d - k < s->window;
}

// Scaled scores of one query over its n = i+1+d visible keys; masked prefix
// keys get -INF. Returns the maximum.
static inline __attribute__((always_inline)) float scores(float *sc, const float *qv, const float *kc, const attn_shape *s, int r, int i, int d, int g,
                    float scale) {
    const int n = i + 1 + d, hd = s->hd;
    const int *mrow = s->mask ? s->mask + (size_t)r * s->T : NULL;
    float mx = -INFINITY;
    for (int k = 0; k < n; k++) {
        if (k <= i && mrow && !mrow[k]) { sc[k] = -INFINITY; continue; }
        if (!in_window(s, i, d, k)) { sc[k] = -INFINITY; continue; }
        sc[k] = dot(qv, key_ptr(kc, s, r, i, g, k), hd) * scale;
        mx = sc[k] > mx ? sc[k] : mx;
    }
    return mx;
}

// Prefix keys or values (pass 0) of every (row, kv head), transposed:
// t[((r*nkv + g)*hd + c)*P + j] = cache(0, r, j, g)[c] for j < P. NULL when
// out of memory (the callers then go key by key).
static float *transpose_prefix(const float *c, const attn_shape *s, int P) {
    const int R = s->R, nkv = s->nkv, hd = s->hd;
    float *t = malloc(sizeof(float) * (size_t)R * nkv * hd * P);
    if (!t) return NULL;
#pragma omp parallel for collapse(2)
    for (int r = 0; r < R; r++)
        for (int g = 0; g < nkv; g++) {
            float *dst = t + ((size_t)r * nkv + g) * hd * P;
            for (int j = 0; j < P; j++) {
                const float *src = kv_at(c, s, 0, r, j, g);
                for (int k = 0; k < hd; k++) dst[(size_t)k * P + j] = src[k];
            }
        }
    return t;
}

// Transposed prefix keys and values for a block of nq queries per row, or
// both NULL: few queries (generation: transposing would cost as much as the
// attention itself) or out of memory. Then the callers go key by key.
static void prefix_for_block(const float *kc, const float *vc, const attn_shape *s, int nq, int P, float **kt,
                             float **vt) {
    *kt = *vt = NULL;
    if (nq < TRANSPOSE_MIN_QUERIES) return;
    *kt = transpose_prefix(kc, s, P);
    *vt = *kt ? transpose_prefix(vc, s, P) : NULL;
    if (!*vt) free(*kt), *kt = NULL;
}

// Scaled scores of query (d, r, i) over its visible keys, the prefix part
// from the transposed keys kt [hd][P] of (r, g). Returns the maximum.
static inline __attribute__((always_inline)) float scores_t(float *sc, const float *qv, const float *kt, int P,
                                                            const float *kc, const attn_shape *s, int r, int i,
                                                            int d, int g, float scale) {
    const int np = i + 1, hd = s->hd;
    for (int j = 0; j < np; j++) sc[j] = 0.0f;
    for (int k = 0; k < hd; k++) {
        const float qk = qv[k] * scale, *row = kt + (size_t)k * P;
#pragma omp simd
        for (int j = 0; j < np; j++) sc[j] += qk * row[j];
    }
    if (s->mask) {
        const int *mrow = s->mask + (size_t)r * s->T;
        for (int j = 0; j < np; j++) if (!mrow[j]) sc[j] = -INFINITY;
    }
    if (s->window > 0) // prefix keys j with i+d-j >= W are outside the window
        for (int j = 0; j < np && i + d - j >= s->window; j++) sc[j] = -INFINITY;
    for (int e = 1; e <= d; e++)
        sc[i + e] = in_window(s, i, d, i + e) ? dot(qv, kv_at(kc, s, e, r, i, g), hd) * scale : -INFINITY;
    float mx = -INFINITY;
    for (int k = 0; k < np + d; k++) mx = sc[k] > mx ? sc[k] : mx;
    return mx;
}

void attention_forward(float *out, float *lse, const float *q, const float *kc, const float *vc,
                       const attn_shape *s, int d0, int nd, int i0, int ni) {
    const int R = s->R, T = s->T, nh = s->nh, hd = s->hd, rep = s->nh / s->nkv, nkv = s->nkv;
    const int nmax = T + d0 + nd, P = i0 + ni;
    const float scale = 1.0f / sqrtf((float)hd);
    float *kt, *vt;
    prefix_for_block(kc, vc, s, nd * ni, P, &kt, &vt);
#pragma omp parallel
    {
        float *sc = malloc(sizeof(float) * nmax);
#pragma omp for collapse(3) schedule(dynamic, 4)
        for (int dd = 0; dd < nd; dd++)
            for (int r = 0; r < R; r++)
                for (int ii = 0; ii < ni; ii++) {
                    const int d = d0 + dd, i = i0 + ii, n = i + 1 + d;
                    const size_t qi = ((size_t)dd * R + r) * ni + ii; // query token index
                    for (int h = 0; h < nh; h++) {
                        const int g = h / rep;
                        const float *qv = q + (qi * nh + h) * hd;
                        const float *ktg = kt ? kt + ((size_t)r * nkv + g) * hd * P : NULL;
                        const float *vtg = vt ? vt + ((size_t)r * nkv + g) * hd * P : NULL;
                        float *o = out + (qi * nh + h) * hd;
                        memset(o, 0, sizeof(float) * hd);
                        float mx = ktg ? scores_t(sc, qv, ktg, P, kc, s, r, i, d, g, scale)
                                       : scores(sc, qv, kc, s, r, i, d, g, scale);
                        if (mx == -INFINITY) { // no visible key
                            lse[qi * nh + h] = -INFINITY;
                            continue;
                        }
                        float l = 0.0f;
#pragma omp simd reduction(+ : l)
                        for (int k = 0; k < n; k++) {
                            sc[k] = sc[k] == -INFINITY ? 0.0f : exp_neg(sc[k] - mx);
                            l += sc[k];
                        }
                        const float inv = 1.0f / l;
                        if (vtg) {
                            for (int c = 0; c < hd; c++) { // prefix: o[c] = sum_j p_j v_j[c]
                                const float *row = vtg + (size_t)c * P;
                                float a = 0.0f;
#pragma omp simd reduction(+ : a)
                                for (int j = 0; j <= i; j++) a += sc[j] * row[j];
                                o[c] = a * inv;
                            }
                            for (int e = 1; e <= d; e++) axpy(o, sc[i + e] * inv, kv_at(vc, s, e, r, i, g), hd);
                        } else {
                            for (int k = 0; k < n; k++)
                                if (sc[k] != 0.0f) axpy(o, sc[k] * inv, key_ptr(vc, s, r, i, g, k), hd);
                        }
                        lse[qi * nh + h] = mx + logf(l);
                    }
                }
        free(sc);
    }
    free(kt), free(vt);
}

// Backward of one key (pass e, position j) seen with probability p.
static inline __attribute__((always_inline)) void key_backward(float *gq, float *dk, float *dv, const float *kv,
                                                               const float *vv, const float *qv, const float *go,
                                                               float p, float Dq, float scale, int hd) {
    const float ds = p * (dot(go, vv, hd) - Dq) * scale;
    axpy(dv, p, go, hd);
    axpy(dk, ds, qv, hd);
    axpy(gq, ds, kv, hd);
}

// With p = exp(score - lse) and Dq = dout . out:
//   dv += p * dout;  ds = p * (dout . v - Dq);  dq += ds*scale*k;  dk += ds*scale*q.
// Work is split by (row, kv head), which owns its slice of dkc/dvc. For
// blocks of many queries the prefix keys go through the transposed layout
// (dk, dv accumulated transposed per work item and added to the cache slice
// at its end); own-thought keys, and every key of small blocks, one by one.
void attention_backward(float *dq, float *dkc, float *dvc, const float *dout, const float *q,
                        const float *kc, const float *vc, const float *out, const float *lse,
                        const attn_shape *s, int d0, int nd, int i0, int ni) {
    const int R = s->R, T = s->T, nh = s->nh, hd = s->hd, nkv = s->nkv, rep = s->nh / s->nkv;
    const int nmax = T + d0 + nd, P = i0 + ni;
    const float scale = 1.0f / sqrtf((float)hd);
    float *kt, *vt;
    prefix_for_block(kc, vc, s, nd * ni, P, &kt, &vt);
#pragma omp parallel
    {
        float *sc = malloc(sizeof(float) * nmax), *dp = malloc(sizeof(float) * nmax);
        float *dkt = kt ? malloc(sizeof(float) * (size_t)hd * P) : NULL;
        float *dvt = kt ? malloc(sizeof(float) * (size_t)hd * P) : NULL;
#pragma omp for collapse(2) schedule(dynamic, 1)
        for (int r = 0; r < R; r++)
            for (int g = 0; g < nkv; g++) {
                const float *ktg = kt ? kt + ((size_t)r * nkv + g) * hd * P : NULL;
                const float *vtg = kt ? vt + ((size_t)r * nkv + g) * hd * P : NULL;
                if (kt) {
                    memset(dkt, 0, sizeof(float) * (size_t)hd * P);
                    memset(dvt, 0, sizeof(float) * (size_t)hd * P);
                }
                for (int dd = 0; dd < nd; dd++)
                    for (int ii = 0; ii < ni; ii++) {
                        const int d = d0 + dd, i = i0 + ii, np = i + 1, n = np + d;
                        const size_t qi = ((size_t)dd * R + r) * ni + ii;
                        for (int h = g * rep; h < (g + 1) * rep; h++) {
                            const size_t qh = qi * nh + h;
                            const float L = lse[qh];
                            if (L == -INFINITY) continue;
                            const float *qv = q + qh * hd, *go = dout + qh * hd;
                            float *gq = dq + qh * hd;
                            const float Dq = dot(go, out + qh * hd, hd);
                            if (ktg) scores_t(sc, qv, ktg, P, kc, s, r, i, d, g, scale);
                            else scores(sc, qv, kc, s, r, i, d, g, scale);
#pragma omp simd
                            for (int k = 0; k < n; k++) sc[k] = sc[k] == -INFINITY ? 0.0f : exp_neg(sc[k] - L);
                            // keys done one by one: all of them, or only the own-thought ones
                            int k0 = 0;
                            if (ktg) { // prefix keys, vectorised over positions j
                                k0 = np;
                                for (int j = 0; j < np; j++) dp[j] = 0.0f;
                                for (int c = 0; c < hd; c++) { // dp_j = dout . v_j
                                    const float gc = go[c], *row = vtg + (size_t)c * P;
#pragma omp simd
                                    for (int j = 0; j < np; j++) dp[j] += gc * row[j];
                                }
#pragma omp simd
                                for (int j = 0; j < np; j++) dp[j] = sc[j] * (dp[j] - Dq) * scale; // ds_j
                                for (int c = 0; c < hd; c++) {
                                    const float *krow = ktg + (size_t)c * P;
                                    float *dkrow = dkt + (size_t)c * P, *dvrow = dvt + (size_t)c * P;
                                    const float gc = go[c], qc = qv[c];
                                    float a = 0.0f;
#pragma omp simd reduction(+ : a)
                                    for (int j = 0; j < np; j++) {
                                        a += dp[j] * krow[j];
                                        dvrow[j] += sc[j] * gc;
                                        dkrow[j] += dp[j] * qc;
                                    }
                                    gq[c] += a;
                                }
                            }
                            for (int k = k0; k < n; k++) {
                                if (sc[k] == 0.0f) continue;
                                float *dk = (float *)key_ptr(dkc, s, r, i, g, k);
                                float *dv = (float *)key_ptr(dvc, s, r, i, g, k);
                                key_backward(gq, dk, dv, key_ptr(kc, s, r, i, g, k), key_ptr(vc, s, r, i, g, k), qv,
                                             go, sc[k], Dq, scale, hd);
                            }
                        }
                    }
                if (kt)
                    for (int j = 0; j < P; j++) { // transposed prefix gradients into the cache slice
                        float *dk = (float *)kv_at(dkc, s, 0, r, j, g), *dv = (float *)kv_at(dvc, s, 0, r, j, g);
                        for (int c = 0; c < hd; c++) dk[c] += dkt[(size_t)c * P + j], dv[c] += dvt[(size_t)c * P + j];
                    }
            }
        free(sc), free(dp), free(dkt), free(dvt);
    }
    free(kt), free(vt);
}

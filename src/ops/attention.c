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

// Positions per block of the GEMM paths: the queries of a block see prefix keys
// j <= its last position, so the score matrices waste at most a block's triangle.
#define POS_BLOCK 64

// Per-thread buffers of the GEMM paths, for blocks of up to nq queries over up to P
// prefix keys (D passes): gathered queries, output gradients and outputs or prefix
// dq [nq, hd]; probabilities and score gradients [nq, P]; own-thought probabilities
// [nq, D]; dkt, dvt [hd, P]: the transposed prefix gradients of the current (row,
// kv head); per query its Dq, lse, index qh (query token * nh + head), position, pass.
typedef struct {
    float *qb, *gob, *ob, *p, *ds, *po, *dkt, *dvt, *Dq, *L;
    size_t *qh;
    int *pos, *pass;
    int D; // row length of po
} attn_buf;

static void buf_free(attn_buf *b) {
    free(b->qb), free(b->gob), free(b->ob), free(b->p), free(b->ds), free(b->po), free(b->dkt), free(b->dvt);
    free(b->Dq), free(b->L), free(b->qh), free(b->pos), free(b->pass);
    memset(b, 0, sizeof *b);
}

// bwd: also the backward's buffers (gob, ds, dkt, dvt). 0 when out of memory.
static int buf_alloc(attn_buf *b, size_t nq, int hd, int P, int D, int bwd) {
    memset(b, 0, sizeof *b);
    const size_t f = sizeof(float);
    b->D = D;
    b->qb = malloc(nq * hd * f), b->ob = malloc(nq * hd * f), b->p = malloc(nq * P * f), b->po = malloc(nq * D * f);
    b->Dq = malloc(nq * f), b->L = malloc(nq * f), b->qh = malloc(nq * sizeof(size_t));
    b->pos = malloc(nq * sizeof(int)), b->pass = malloc(nq * sizeof(int));
    int ok = b->qb && b->ob && b->p && b->po && b->Dq && b->L && b->qh && b->pos && b->pass;
    if (bwd) {
        b->gob = malloc(nq * hd * f), b->ds = malloc(nq * P * f);
        b->dkt = malloc((size_t)hd * P * f), b->dvt = malloc((size_t)hd * P * f);
        ok = ok && b->gob && b->ds && b->dkt && b->dvt;
    }
    if (!ok) buf_free(b);
    return ok;
}

// Gathers the queries of kv head g, row r, positions i0+a .. i0+a+nb-1, all passes,
// into b (q rows, index, position, pass). With dout (the backward): only those with a
// visible key (lse > -inf), with their dout rows, Dq = dout . out and lse. Returns how many.
static int gather_block(attn_buf *b, const float *q, const float *dout, const float *out, const float *lse,
                        const attn_shape *s, int d0, int nd, int i0, int ni, int r, int g, int a, int nb) {
    const int nh = s->nh, hd = s->hd, rep = s->nh / s->nkv;
    int n = 0;
    for (int dd = 0; dd < nd; dd++)
        for (int ii = a; ii < a + nb; ii++)
            for (int h = g * rep; h < (g + 1) * rep; h++) {
                const size_t qh = (((size_t)dd * s->R + r) * ni + ii) * nh + h;
                if (dout && lse[qh] == -INFINITY) continue; // no visible key: no gradient
                memcpy(b->qb + (size_t)n * hd, q + qh * hd, sizeof(float) * hd);
                if (dout) {
                    memcpy(b->gob + (size_t)n * hd, dout + qh * hd, sizeof(float) * hd);
                    b->Dq[n] = dot(dout + qh * hd, out + qh * hd, hd);
                    b->L[n] = lse[qh];
                }
                b->qh[n] = qh, b->pos[n] = i0 + ii, b->pass[n] = d0 + dd;
                n++;
            }
    return n;
}

// Prefix keys j in [*lo, *hi) can be visible to the query at (pass d, position i)
// among the first Pb: j <= i and inside the window (the padding mask aside).
static inline void prefix_range(const attn_shape *s, int i, int d, int Pb, int *lo, int *hi) {
    *hi = i + 1 < Pb ? i + 1 : Pb;
    const int l = s->window > 0 ? i + d - s->window + 1 : 0; // i + d - j < W
    *lo = l < 0 ? 0 : l > *hi ? *hi : l;
}

// Runs STMT with HD_ the head size hd, a compile-time constant for the head sizes of the
// models we run (stories260K: 8; 64 and 128 for the others), so the inlined short dot
// products and updates of the own-thought keys become a few full-width vector operations.
#define WITH_HD(hd, STMT)                                                                                  \
    do {                                                                                                   \
        switch (hd) {                                                                                      \
        case 8: { const int HD_ = 8; STMT; } break;                                                        \
        case 64: { const int HD_ = 64; STMT; } break;                                                      \
        case 128: { const int HD_ = 128; STMT; } break;                                                    \
        default: { const int HD_ = (hd); STMT; }                                                           \
        }                                                                                                  \
    } while (0)

// Scaled scores of query qv (pass d, row r, position i) on its own-thought keys
// (passes 1..d at i) into po[0..d-1], -inf outside the window.
static inline __attribute__((always_inline)) void own_scores_hd(float *po, const float *qv, const float *kc,
                                                                const attn_shape *s, int r, int i, int d, int g,
                                                                float scale, int hd) {
    for (int e = 1; e <= d; e++)
        po[e - 1] = in_window(s, i, d, i + e) ? dot(qv, kv_at(kc, s, e, r, i, g), hd) * scale : -INFINITY;
}

static void own_scores(float *po, const float *qv, const float *kc, const attn_shape *s, int r, int i, int d, int g,
                       float scale) {
    WITH_HD(s->hd, own_scores_hd(po, qv, kc, s, r, i, d, g, scale, HD_));
}

// o = (ob + sum_e po[e-1] * v_e) * inv: a query's prefix output plus its own-thought
// values (passes 1..d at position i), normalised.
static inline __attribute__((always_inline)) void own_values_hd(float *o, const float *ob, const float *po, float inv,
                                                                const float *vc, const attn_shape *s, int r, int i,
                                                                int d, int g, int hd) {
    for (int c = 0; c < hd; c++) o[c] = ob[c];
    for (int e = 1; e <= d; e++)
        if (po[e - 1] != 0.0f) axpy(o, po[e - 1], kv_at(vc, s, e, r, i, g), hd);
    for (int c = 0; c < hd; c++) o[c] *= inv;
}

static void own_values(float *o, const float *ob, const float *po, float inv, const float *vc, const attn_shape *s,
                       int r, int i, int d, int g) {
    WITH_HD(s->hd, own_values_hd(o, ob, po, inv, vc, s, r, i, d, g, HD_));
}

// Softmax of one gathered query k: its prefix scores (row of b->p, Pb keys) and own-
// thought scores (row of b->po, d keys) become probabilities, unnormalised (exp(x -
// max), invisible keys 0); returns the max and sets *l to their sum (max -inf: no key).
static float block_softmax(attn_buf *b, int k, int Pb, const float *kc, const attn_shape *s, int r, int g,
                           float scale, float *l) {
    const int i = b->pos[k], d = b->pass[k], hd = s->hd, D = b->D;
    const int *mrow = s->mask ? s->mask + (size_t)r * s->T : NULL;
    float *row = b->p + (size_t)k * Pb, *po = b->po + (size_t)k * D;
    const float *qv = b->qb + (size_t)k * hd;
    int lo, hi;
    prefix_range(s, i, d, Pb, &lo, &hi);
    if (mrow)
        for (int j = lo; j < hi; j++)
            if (!mrow[j]) row[j] = -INFINITY;
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int j = lo; j < hi; j++) mx = row[j] > mx ? row[j] : mx;
    own_scores(po, qv, kc, s, r, i, d, g, scale);
    for (int e = 0; e < d; e++) mx = po[e] > mx ? po[e] : mx;
    const float m0 = mx == -INFINITY ? 0.0f : mx; // no visible key: every entry becomes 0
    float sum = 0.0f;
    for (int j = 0; j < lo; j++) row[j] = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int j = lo; j < hi; j++) {
        row[j] = row[j] == -INFINITY ? 0.0f : qs_exp_neg(row[j] - m0);
        sum += row[j];
    }
    for (int e = 0; e < d; e++) {
        po[e] = po[e] == -INFINITY ? 0.0f : qs_exp_neg(po[e] - m0);
        sum += po[e];
    }
    for (int j = hi; j < Pb; j++) row[j] = 0.0f;
    *l = sum;
    return mx;
}

// Forward of one block of positions of (row r, kv head g) as GEMMs over its n
// gathered queries and Pb prefix keys (kt, vt: the transposed prefix [hd][P]):
// scores Q Kt * scale, own-thought keys one by one, softmax, out = (P Vt^T + own) / l.
static void block_forward(attn_buf *b, float *out, float *lse, const float *kc, const float *vc, const float *kt,
                          const float *vt, int P, int n, int Pb, const attn_shape *s, int r, int g, float scale) {
    const int hd = s->hd;
    qs_sgemm(0, 0, n, Pb, hd, scale, b->qb, hd, kt, P, 0.0f, b->p, Pb);
    for (int k = 0; k < n; k++) {
        float l;
        const float mx = block_softmax(b, k, Pb, kc, s, r, g, scale, &l);
        b->L[k] = mx == -INFINITY ? -INFINITY : mx + logf(l);
        b->Dq[k] = mx == -INFINITY ? 0.0f : 1.0f / l; // (the backward's Dq slot holds 1/l here)
    }
    qs_sgemm(0, 1, n, hd, Pb, 1.0f, b->p, Pb, vt, P, 0.0f, b->ob, hd);
    for (int k = 0; k < n; k++) {
        const size_t qh = b->qh[k];
        const int i = b->pos[k], d = b->pass[k];
        float *o = out + qh * hd;
        const float *ob = b->ob + (size_t)k * hd, *po = b->po + (size_t)k * b->D, inv = b->Dq[k];
        own_values(o, ob, po, inv, vc, s, r, i, d, g);
        lse[qh] = b->L[k];
    }
}

// Every query one by one over its keys (blocks of few queries: generation, where
// transposing the prefix would cost as much as the attention; or out of memory).
static void keys_forward(float *out, float *lse, const float *q, const float *kc, const float *vc,
                         const attn_shape *s, int d0, int nd, int i0, int ni, float scale) {
    const int R = s->R, T = s->T, nh = s->nh, hd = s->hd, rep = s->nh / s->nkv, nmax = T + d0 + nd;
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
                        float *o = out + (qi * nh + h) * hd;
                        memset(o, 0, sizeof(float) * hd);
                        if (!sc) { lse[qi * nh + h] = NAN; continue; } // out of memory: poisoned, not wrong
                        const float mx = scores(sc, q + (qi * nh + h) * hd, kc, s, r, i, d, g, scale);
                        if (mx == -INFINITY) { // no visible key
                            lse[qi * nh + h] = -INFINITY;
                            continue;
                        }
                        float l = 0.0f;
#pragma omp simd reduction(+ : l)
                        for (int k = 0; k < n; k++) {
                            sc[k] = sc[k] == -INFINITY ? 0.0f : qs_exp_neg(sc[k] - mx);
                            l += sc[k];
                        }
                        const float inv = 1.0f / l;
                        for (int k = 0; k < n; k++)
                            if (sc[k] != 0.0f) axpy(o, sc[k] * inv, key_ptr(vc, s, r, i, g, k), hd);
                        lse[qi * nh + h] = mx + logf(l);
                    }
                }
        free(sc);
    }
}

// Blocks of many queries: per (row, kv head), POS_BLOCK positions (all passes and
// heads of the group) at a time through block_forward; work items (or threads)
// without memory for the buffers go key by key.
void attention_forward(float *out, float *lse, const float *q, const float *kc, const float *vc,
                       const attn_shape *s, int d0, int nd, int i0, int ni) {
    const int R = s->R, hd = s->hd, nkv = s->nkv, rep = s->nh / s->nkv, P = i0 + ni;
    const float scale = 1.0f / sqrtf((float)hd);
    float *kt, *vt;
    prefix_for_block(kc, vc, s, nd * ni, P, &kt, &vt);
    if (!kt) {
        keys_forward(out, lse, q, kc, vc, s, d0, nd, i0, ni, scale);
        return;
    }
    int fallback = 0;
#pragma omp parallel reduction(| : fallback)
    {
        attn_buf b;
        const int ok = buf_alloc(&b, (size_t)nd * (ni < POS_BLOCK ? ni : POS_BLOCK) * rep, hd, P, d0 + nd, 0);
        fallback = !ok;
#pragma omp for collapse(2) schedule(dynamic, 1)
        for (int r = 0; r < R; r++)
            for (int g = 0; g < nkv; g++) {
                if (!ok) continue;
                const float *ktg = kt + ((size_t)r * nkv + g) * hd * P, *vtg = vt + ((size_t)r * nkv + g) * hd * P;
                for (int a = 0; a < ni; a += POS_BLOCK) {
                    const int nb = ni - a < POS_BLOCK ? ni - a : POS_BLOCK;
                    const int n = gather_block(&b, q, NULL, NULL, NULL, s, d0, nd, i0, ni, r, g, a, nb);
                    block_forward(&b, out, lse, kc, vc, ktg, vtg, P, n, i0 + a + nb, s, r, g, scale);
                }
            }
        if (ok) buf_free(&b);
    }
    free(kt), free(vt);
    if (fallback) keys_forward(out, lse, q, kc, vc, s, d0, nd, i0, ni, scale); // all again, key by key
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

// Backward of query qh (pass d, row r, position i) over its own-thought keys
// (passes 1..d at position i), key by key, p recomputed from the lse L.
static inline __attribute__((always_inline)) void own_keys_hd(float *dq, float *dkc, float *dvc, const float *q,
                                                              const float *go, const float *kc, const float *vc,
                                                              const attn_shape *s, size_t qh, int r, int i, int d,
                                                              int g, float L, float Dq, float scale, int hd) {
    const float *qv = q + qh * hd;
    for (int e = 1; e <= d; e++) {
        if (!in_window(s, i, d, i + e)) continue;
        const float *kv = kv_at(kc, s, e, r, i, g);
        const float p = qs_exp_neg(dot(qv, kv, hd) * scale - L);
        key_backward(dq + qh * hd, (float *)kv_at(dkc, s, e, r, i, g), (float *)kv_at(dvc, s, e, r, i, g), kv,
                     kv_at(vc, s, e, r, i, g), qv, go, p, Dq, scale, hd);
    }
}

static void own_keys_backward(float *dq, float *dkc, float *dvc, const float *q, const float *go, const float *kc,
                              const float *vc, const attn_shape *s, size_t qh, int r, int i, int d, int g, float L,
                              float Dq, float scale) {
    WITH_HD(s->hd, own_keys_hd(dq, dkc, dvc, q, go, kc, vc, s, qh, r, i, d, g, L, Dq, scale, HD_));
}

// Rows of p (n queries x Pb prefix keys, scaled scores on entry) become
// probabilities exp(score - lse); 0 where the key is invisible.
static void prefix_probs(float *p, const attn_buf *b, int n, int Pb, const attn_shape *s, int r) {
    const int *mrow = s->mask ? s->mask + (size_t)r * s->T : NULL;
    for (int k = 0; k < n; k++) {
        float *row = p + (size_t)k * Pb;
        const float L = b->L[k];
        int lo, hi;
        prefix_range(s, b->pos[k], b->pass[k], Pb, &lo, &hi);
        for (int j = 0; j < lo; j++) row[j] = 0.0f;
#pragma omp simd
        for (int j = lo; j < hi; j++) row[j] = qs_exp_neg(row[j] - L);
        for (int j = hi; j < Pb; j++) row[j] = 0.0f;
        if (mrow)
            for (int j = lo; j < hi; j++)
                if (!mrow[j]) row[j] = 0.0f;
    }
}

// One block of positions of (row r, kv head g) as GEMMs over its n queries and
// Pb prefix keys (kt, vt: the transposed prefix [hd][P]):
//   p = exp(Q Kt * scale - lse);  ds = p * (dO Vt - Dq) * scale;
//   dq += ds K;  dKt += Q^T ds;  dVt += dO^T p;
// then each query's own-thought keys one by one.
static void block_backward(attn_buf *b, float *dq, float *dkc, float *dvc, const float *q, const float *dout,
                           const float *kc, const float *vc, const float *kt, const float *vt, int P, int n, int Pb,
                           const attn_shape *s, int r, int g, float scale) {
    const int hd = s->hd;
    float *p = b->p, *ds = b->ds;
    qs_sgemm(0, 0, n, Pb, hd, scale, b->qb, hd, kt, P, 0.0f, p, Pb);
    prefix_probs(p, b, n, Pb, s, r);
    qs_sgemm(0, 0, n, Pb, hd, 1.0f, b->gob, hd, vt, P, 0.0f, ds, Pb);
    for (int k = 0; k < n; k++) {
        float *dr = ds + (size_t)k * Pb;
        const float *pr = p + (size_t)k * Pb, Dq = b->Dq[k];
#pragma omp simd
        for (int j = 0; j < Pb; j++) dr[j] = pr[j] * (dr[j] - Dq) * scale;
    }
    qs_sgemm(0, 1, n, hd, Pb, 1.0f, ds, Pb, kt, P, 0.0f, b->ob, hd);
    qs_sgemm(1, 0, hd, Pb, n, 1.0f, b->qb, hd, ds, Pb, 1.0f, b->dkt, P);
    qs_sgemm(1, 0, hd, Pb, n, 1.0f, b->gob, hd, p, Pb, 1.0f, b->dvt, P);
    for (int k = 0; k < n; k++) {
        const size_t qh = b->qh[k];
        axpy(dq + qh * hd, 1.0f, b->ob + (size_t)k * hd, hd);
        own_keys_backward(dq, dkc, dvc, q, dout + qh * hd, kc, vc, s, qh, r, b->pos[k], b->pass[k], g, b->L[k],
                          b->Dq[k], scale);
    }
}

// Every query of (row r, kv head g) key by key (blocks of few queries, or no memory
// for the GEMM path).
static void keys_backward(float *dq, float *dkc, float *dvc, const float *dout, const float *q, const float *kc,
                          const float *vc, const float *out, const float *lse, const attn_shape *s, int d0, int nd,
                          int i0, int ni, int r, int g, float scale) {
    const int nh = s->nh, hd = s->hd, rep = s->nh / s->nkv;
    for (int dd = 0; dd < nd; dd++)
        for (int ii = 0; ii < ni; ii++)
            for (int h = g * rep; h < (g + 1) * rep; h++) {
                const int d = d0 + dd, i = i0 + ii;
                const size_t qh = (((size_t)dd * s->R + r) * ni + ii) * nh + h;
                const float L = lse[qh];
                if (L == -INFINITY) continue;
                const float *qv = q + qh * hd, *go = dout + qh * hd;
                const float Dq = dot(go, out + qh * hd, hd);
                const int *mrow = s->mask ? s->mask + (size_t)r * s->T : NULL;
                for (int j = 0; j <= i; j++) { // prefix keys
                    if ((mrow && !mrow[j]) || !in_window(s, i, d, j)) continue;
                    const float *kv = kv_at(kc, s, 0, r, j, g);
                    const float p = qs_exp_neg(dot(qv, kv, hd) * scale - L);
                    key_backward(dq + qh * hd, (float *)kv_at(dkc, s, 0, r, j, g), (float *)kv_at(dvc, s, 0, r, j, g),
                                 kv, kv_at(vc, s, 0, r, j, g), qv, go, p, Dq, scale, hd);
                }
                own_keys_backward(dq, dkc, dvc, q, go, kc, vc, s, qh, r, i, d, g, L, Dq, scale);
            }
}

// Work is split by (row, kv head), which owns its slice of dkc/dvc. For blocks of
// many queries the prefix keys go through GEMMs over the transposed prefix, a block
// of POS_BLOCK positions (all passes and heads of the group) at a time, dk and dv
// accumulated transposed per work item and added to the cache slice at its end;
// own-thought keys, and every key of small blocks, one by one.
void attention_backward(float *dq, float *dkc, float *dvc, const float *dout, const float *q,
                        const float *kc, const float *vc, const float *out, const float *lse,
                        const attn_shape *s, int d0, int nd, int i0, int ni) {
    const int R = s->R, hd = s->hd, nkv = s->nkv, rep = s->nh / s->nkv, P = i0 + ni;
    const float scale = 1.0f / sqrtf((float)hd);
    const int nbmax = ni < POS_BLOCK ? ni : POS_BLOCK;
    float *kt, *vt;
    prefix_for_block(kc, vc, s, nd * ni, P, &kt, &vt);
#pragma omp parallel
    {
        attn_buf b;
        const int gemm = kt && buf_alloc(&b, (size_t)nd * nbmax * rep, hd, P, d0 + nd, 1);
#pragma omp for collapse(2) schedule(dynamic, 1)
        for (int r = 0; r < R; r++)
            for (int g = 0; g < nkv; g++) {
                if (!gemm) {
                    keys_backward(dq, dkc, dvc, dout, q, kc, vc, out, lse, s, d0, nd, i0, ni, r, g, scale);
                    continue;
                }
                const float *ktg = kt + ((size_t)r * nkv + g) * hd * P, *vtg = vt + ((size_t)r * nkv + g) * hd * P;
                memset(b.dkt, 0, sizeof(float) * (size_t)hd * P);
                memset(b.dvt, 0, sizeof(float) * (size_t)hd * P);
                for (int a = 0; a < ni; a += POS_BLOCK) {
                    const int nb = ni - a < POS_BLOCK ? ni - a : POS_BLOCK, Pb = i0 + a + nb;
                    const int n = gather_block(&b, q, dout, out, lse, s, d0, nd, i0, ni, r, g, a, nb);
                    if (n) block_backward(&b, dq, dkc, dvc, q, dout, kc, vc, ktg, vtg, P, n, Pb, s, r, g, scale);
                }
                for (int j = 0; j < P; j++) { // transposed prefix gradients into the cache slice
                    float *dk = (float *)kv_at(dkc, s, 0, r, j, g), *dv = (float *)kv_at(dvc, s, 0, r, j, g);
                    for (int c = 0; c < hd; c++) dk[c] += b.dkt[(size_t)c * P + j], dv[c] += b.dvt[(size_t)c * P + j];
                }
            }
        if (gemm) buf_free(&b);
    }
    free(kt), free(vt);
}

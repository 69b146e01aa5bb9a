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
// all the backward products are GEMMs over key positions instead of one short
// dot product per key; with head size 8 (stories260K) the forward instead walks
// each query's keys 16 at a time in vector registers. Own-thought keys (at most
// D-1 per query) come from copies gathered per block of positions: in the cache
// a position's thought keys lie one pass plane apart, a power-of-two stride at
// which reading them query by query thrashed the caches.
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

// y = x for one head-sized row (a call to memcpy costs more than the copy).
static inline __attribute__((always_inline)) void copy(float *restrict y, const float *restrict x, int n) {
#pragma omp simd
    for (int k = 0; k < n; k++) y[k] = x[k];
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

// Row length of the transposed prefix of P keys: P rounded up to whole vectors of
// 16 (the head-size-8 kernels read 16 keys at a time).
static inline int prefix_stride(int P) { return (P + 15) / 16 * 16; }

// Prefix keys or values (pass 0) of every (row, kv head), transposed:
// t[((r*nkv + g)*hd + c)*Pp + j] = cache(0, r, j, g)[c] for j < P, 0 for P <= j < Pp
// (Pp = prefix_stride(P)). NULL when out of memory (the callers then go key by key).
static float *transpose_prefix(const float *c, const attn_shape *s, int P) {
    const int R = s->R, nkv = s->nkv, hd = s->hd, Pp = prefix_stride(P);
    float *t = malloc(sizeof(float) * (size_t)R * nkv * hd * Pp);
    if (!t) return NULL;
#pragma omp parallel for collapse(2)
    for (int r = 0; r < R; r++)
        for (int g = 0; g < nkv; g++) {
            float *dst = t + ((size_t)r * nkv + g) * hd * Pp;
            for (int j = 0; j < P; j++) {
                const float *src = kv_at(c, s, 0, r, j, g);
                for (int k = 0; k < hd; k++) dst[(size_t)k * Pp + j] = src[k];
            }
            for (int k = 0; k < hd; k++)
                for (int j = P; j < Pp; j++) dst[(size_t)k * Pp + j] = 0.0f;
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
// The backward takes the queries of a block in chunks of whole passes with about
// this many prefix scores per chunk, so its probability and score-gradient
// matrices stay in cache.
#define BWD_SCORES 65536
// Floats per gathered own-thought array of the backward ([positions][D][hd]).
#define OWN_FLOATS 8192
// Heads up to this size take their own-thought keys in the backward across the keys
// (kT, vT below: a short dot product per key would waste most of a vector); larger
// ones key by key (each key's products already fill vectors, and the padding of the
// keys to whole vectors measured slower at head size 64).
#define OWN_ACROSS_HD 8

// Per-thread buffers of the GEMM paths, for blocks of up to nq queries over up to P
// prefix keys (P: the row length of the transposed prefix) and D passes:
// - gathered queries, output gradients, and outputs or prefix dq: qb, gob, ob [nq, hd];
// - prefix probabilities and score gradients p, ds [nq, P]; own-thought probabilities
//   po [nq, D] (the key of pass e in slot e);
// - dkt, dvt [hd, P]: the transposed prefix gradients of the current (row, kv head);
// - per query its Dq, lse L, index qh (query token * nh + head), position, pass;
// - own-thought keys and values of up to no positions, passes e = 1..D-1 (slot 0
//   unused): ko, vo [position][D][hd] in the forward; in the backward ko, and for
//   heads up to OWN_ACROSS_HD kT, vT and the gradients dkT, dvT transposed per
//   position, [position][hd][Dp], rows padded with zeros to Dp (a multiple of 16) so
//   the loops across keys are whole vectors (os: 2*Dp floats of scratch); for larger
//   heads vo and the gradients dko, dvo, laid out like ko.
typedef struct {
    float *qb, *gob, *ob, *p, *ds, *po, *dkt, *dvt, *Dq, *L, *ko, *vo, *kT, *vT, *dkT, *dvT, *dko, *dvo, *os;
    int32_t *keep; // [P]: -1 for the current row's prefix keys not masked out (padding), else 0
    size_t *qh;
    int *pos, *pass;
    int D;  // row length of po, ko and vo
    int Dp; // row length of kT, vT, dkT, dvT
    int no; // positions of the own-thought arrays
} attn_buf;

static void buf_free(attn_buf *b) {
    free(b->qb), free(b->gob), free(b->ob), free(b->p), free(b->ds), free(b->po), free(b->dkt), free(b->dvt);
    free(b->Dq), free(b->L), free(b->qh), free(b->pos), free(b->pass);
    free(b->ko), free(b->vo), free(b->kT), free(b->vT), free(b->dkT), free(b->dvT), free(b->dko), free(b->dvo);
    free(b->os), free(b->keep);
    memset(b, 0, sizeof *b);
}

// bwd: the backward's buffers (also gob, ds, dkt, dvt). 0 when out of memory.
static int buf_alloc(attn_buf *b, size_t nq, int hd, int P, int D, int no, int bwd) {
    memset(b, 0, sizeof *b);
    const int Dp = (D + 15) / 16 * 16;
    const size_t f = sizeof(float), nown = (size_t)no * D * hd * f, nownt = (size_t)no * Dp * hd;
    b->D = D, b->Dp = Dp, b->no = no;
    b->qb = malloc(nq * hd * f), b->ob = malloc(nq * hd * f), b->p = malloc(nq * P * f), b->po = malloc(nq * D * f);
    b->Dq = malloc(nq * f), b->L = malloc(nq * f), b->qh = malloc(nq * sizeof(size_t));
    b->pos = malloc(nq * sizeof(int)), b->pass = malloc(nq * sizeof(int));
    b->ko = malloc(nown), b->keep = malloc((size_t)P * sizeof(int32_t));
    int ok = b->qb && b->ob && b->p && b->po && b->Dq && b->L && b->qh && b->pos && b->pass && b->ko && b->keep;
    if (bwd) {
        b->gob = malloc(nq * hd * f), b->ds = malloc(nq * P * f);
        b->dkt = malloc((size_t)hd * P * f), b->dvt = malloc((size_t)hd * P * f);
        ok = ok && b->gob && b->ds && b->dkt && b->dvt;
        if (hd <= OWN_ACROSS_HD) {
            b->kT = calloc(nownt, f), b->vT = calloc(nownt, f); // (the padding stays 0)
            b->dkT = malloc(nownt * f), b->dvT = malloc(nownt * f), b->os = malloc(2 * (size_t)Dp * f);
            ok = ok && b->kT && b->vT && b->dkT && b->dvT && b->os;
        } else {
            b->vo = malloc(nown), b->dko = malloc(nown), b->dvo = malloc(nown);
            ok = ok && b->vo && b->dko && b->dvo;
        }
    } else {
        b->vo = malloc(nown);
        ok = ok && b->vo;
    }
    if (!ok) buf_free(b);
    return ok;
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

// Own-thought keys or values (passes 1..D-1) of positions i .. i+n-1 of (row r, kv
// head g) into dst [n][D][hd], one pass plane after the other (each read in order).
static inline __attribute__((always_inline)) void own_gather_hd(float *dst, const float *c, const attn_shape *s,
                                                                int D, int r, int g, int i, int n, int hd) {
    for (int e = 1; e < D; e++)
        for (int k = 0; k < n; k++)
            copy(dst + ((size_t)k * D + e) * hd, kv_at(c, s, e, r, i + k, g), hd);
}

static void own_gather(float *dst, const float *c, const attn_shape *s, int D, int r, int g, int i, int n) {
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

// Gathers the queries of kv head g, row r, positions i0+a .. i0+a+nb-1, passes
// d0+dlo .. d0+dhi-1, into b (q rows, index, position, pass). With dout (the backward): only those with a
// visible key (lse > -inf), with their dout rows, Dq = dout . out and lse. Returns how many.
static inline __attribute__((always_inline)) int gather_block_hd(attn_buf *b, const float *q, const float *dout,
                                                                 const float *out, const float *lse,
                                                                 const attn_shape *s, int d0, int dlo, int dhi,
                                                                 int i0, int ni, int r, int g, int a, int nb,
                                                                 int hd) {
    const int nh = s->nh, rep = s->nh / s->nkv;
    int n = 0;
    for (int dd = dlo; dd < dhi; dd++)
        for (int ii = a; ii < a + nb; ii++)
            for (int h = g * rep; h < (g + 1) * rep; h++) {
                const size_t qh = (((size_t)dd * s->R + r) * ni + ii) * nh + h;
                if (dout && lse[qh] == -INFINITY) continue; // no visible key: no gradient
                copy(b->qb + (size_t)n * hd, q + qh * hd, hd);
                if (dout) {
                    copy(b->gob + (size_t)n * hd, dout + qh * hd, hd);
                    b->Dq[n] = dot(dout + qh * hd, out + qh * hd, hd);
                    b->L[n] = lse[qh];
                }
                b->qh[n] = qh, b->pos[n] = i0 + ii, b->pass[n] = d0 + dd;
                n++;
            }
    return n;
}

static int gather_block(attn_buf *b, const float *q, const float *dout, const float *out, const float *lse,
                        const attn_shape *s, int d0, int dlo, int dhi, int i0, int ni, int r, int g, int a,
                        int nb) {
    int n;
    WITH_HD(s->hd, n = gather_block_hd(b, q, dout, out, lse, s, d0, dlo, dhi, i0, ni, r, g, a, nb, HD_));
    return n;
}

// Prefix keys j in [*lo, *hi) can be visible to the query at (pass d, position i)
// among the first Pb: j <= i and inside the window (the padding mask aside).
static inline void prefix_range(const attn_shape *s, int i, int d, int Pb, int *lo, int *hi) {
    *hi = i + 1 < Pb ? i + 1 : Pb;
    const int l = s->window > 0 ? i + d - s->window + 1 : 0; // i + d - j < W
    *lo = l < 0 ? 0 : l > *hi ? *hi : l;
}


// Own-thought keys e in [own_lo, d] of a query in pass d are inside the window.
static inline int own_lo(const attn_shape *s, int d) {
    const int l = s->window > 0 ? d - s->window + 1 : 1; // d - e < W
    return l < 1 ? 1 : l;
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

static void own_scores(float *po, const float *qv, const float *ko, const attn_shape *s, int d, float scale) {
    WITH_HD(s->hd, own_scores_hd(po, qv, ko, s, d, scale, HD_));
}

// o = (ob + sum_e po[e] * v_e) * inv: a query's prefix output plus its own-thought
// values vo (passes 1..d at its position, gathered like ko), normalised.
// The sum is kept in acc (registers for the compiled head sizes), not in o: adding
// into the output row key by key stalled on its own stores.
static inline __attribute__((always_inline)) void own_values_hd(float *o, const float *ob, const float *po, float inv,
                                                                const float *vo, int d, int hd) {
    float acc[HD_MAX];
    for (int c = 0; c < hd; c++) acc[c] = ob[c];
    for (int e = 1; e <= d; e++)
        if (po[e] != 0.0f) axpy(acc, po[e], vo + (size_t)e * hd, hd);
    for (int c = 0; c < hd; c++) o[c] = acc[c] * inv;
}

static inline __attribute__((always_inline)) void own_values(float *o, const float *ob, const float *po, float inv,
                                                             const float *vo, int d, int hd) {
    WITH_HD(hd, own_values_hd(o, ob, po, inv, vo, d, HD_));
}

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

// qs_exp_neg on 16 lanes, the same operations in the same order (the same bits).
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
static void keep_row(int32_t *keep, const attn_shape *s, int r, int P, int Pp) {
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

// Softmax of one gathered query k: its prefix scores (row of b->p, Pb keys) and own-
// thought scores (row of b->po, slots 1..d; ko: the gathered keys of its position) become
// probabilities, unnormalised (exp(x - max), invisible keys 0); returns the max and
// sets *l to their sum (max -inf: no key).
static float block_softmax(attn_buf *b, int k, int Pb, const float *ko, const attn_shape *s, int r, float scale,
                           float *l) {
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
    own_scores(po, qv, ko, s, d, scale);
    for (int e = 1; e <= d; e++) mx = po[e] > mx ? po[e] : mx;
    const float m0 = mx == -INFINITY ? 0.0f : mx; // no visible key: every entry becomes 0
    float sum = 0.0f;
    for (int j = 0; j < lo; j++) row[j] = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int j = lo; j < hi; j++) {
        row[j] = row[j] == -INFINITY ? 0.0f : qs_exp_neg(row[j] - m0);
        sum += row[j];
    }
    for (int e = 1; e <= d; e++) {
        po[e] = po[e] == -INFINITY ? 0.0f : qs_exp_neg(po[e] - m0);
        sum += po[e];
    }
    for (int j = hi; j < Pb; j++) row[j] = 0.0f;
    *l = sum;
    return mx;
}

// Forward of one block of positions (from ia) of (row r, kv head g) as GEMMs over its
// n gathered queries and Pb prefix keys (kt, vt: the transposed prefix [hd][P]):
// scores Q Kt * scale, own-thought keys from their gathered copies (b->ko, b->vo),
// softmax, out = (P Vt^T + own) / l.
// block_forward for head size 8, query by query (see prefix_scores_h8).
static void block_forward_h8(attn_buf *b, float *out, float *lse, const float *kt, const float *vt, int Pp, int n,
                             int Pb, int ia, const attn_shape *s, float scale) {
    const size_t ostride = (size_t)b->D * H8; // per position in ko, vo
    for (int k = 0; k < n; k++) {
        const int i = b->pos[k], d = b->pass[k];
        const float *qv = b->qb + (size_t)k * H8;
        float *po = b->po + (size_t)k * b->D, ob[H8];
        int lo, hi;
        prefix_range(s, i, d, Pb, &lo, &hi);
        float mx = prefix_scores_h8(b->p, qv, kt, b->keep, Pp, lo, hi, scale);
        own_scores(po, qv, b->ko + (i - ia) * ostride, s, d, scale);
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

static void block_forward(attn_buf *b, float *out, float *lse, const float *kt, const float *vt, int P, int n,
                          int Pb, int ia, const attn_shape *s, int r, float scale) {
    const int hd = s->hd;
    if (hd == H8) {
        block_forward_h8(b, out, lse, kt, vt, P, n, Pb, ia, s, scale);
        return;
    }
    const size_t ostride = (size_t)b->D * hd; // per position in ko, vo
    qs_sgemm(0, 0, n, Pb, hd, scale, b->qb, hd, kt, P, 0.0f, b->p, Pb);
    for (int k = 0; k < n; k++) {
        float l;
        const float mx = block_softmax(b, k, Pb, b->ko + (b->pos[k] - ia) * ostride, s, r, scale, &l);
        b->L[k] = mx == -INFINITY ? -INFINITY : mx + logf(l);
        b->Dq[k] = mx == -INFINITY ? 0.0f : 1.0f / l; // (the backward's Dq slot holds 1/l here)
    }
    qs_sgemm(0, 1, n, hd, Pb, 1.0f, b->p, Pb, vt, P, 0.0f, b->ob, hd);
    for (int k = 0; k < n; k++) {
        const size_t qh = b->qh[k];
        float *o = out + qh * hd;
        const float *ob = b->ob + (size_t)k * hd, *po = b->po + (size_t)k * b->D, inv = b->Dq[k];
        own_values(o, ob, po, inv, b->vo + (b->pos[k] - ia) * ostride, b->pass[k], hd);
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
    const int R = s->R, hd = s->hd, nkv = s->nkv, rep = s->nh / s->nkv, P = i0 + ni, Pp = prefix_stride(P);
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
        const int nbmax = ni < POS_BLOCK ? ni : POS_BLOCK;
        const int ok = buf_alloc(&b, (size_t)nd * nbmax * rep, hd, Pp, d0 + nd, nbmax, 0);
        fallback = !ok;
#pragma omp for collapse(2) schedule(dynamic, 1)
        for (int r = 0; r < R; r++)
            for (int g = 0; g < nkv; g++) {
                if (!ok) continue;
                const float *ktg = kt + ((size_t)r * nkv + g) * hd * Pp, *vtg = vt + ((size_t)r * nkv + g) * hd * Pp;
                keep_row(b.keep, s, r, P, Pp);
                for (int a = 0; a < ni; a += POS_BLOCK) {
                    const int nb = ni - a < POS_BLOCK ? ni - a : POS_BLOCK;
                    const int n = gather_block(&b, q, NULL, NULL, NULL, s, d0, 0, nd, i0, ni, r, g, a, nb);
                    own_gather(b.ko, kc, s, d0 + nd, r, g, i0 + a, nb);
                    own_gather(b.vo, vc, s, d0 + nd, r, g, i0 + a, nb);
                    block_forward(&b, out, lse, ktg, vtg, Pp, n, i0 + a + nb, i0 + a, s, r, scale);
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

static void own_keys_backward(float *gq, float *dk0, float *dv0, const float *qv, const float *go, const float *k0,
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
static void own_block_backward(attn_buf *b, float *dq, float *dkc, float *dvc, const float *dout, const float *q,
                               const float *kc, const float *vc, const float *out, const float *lse,
                               const attn_shape *s, int d0, int nd, int i0, int ni, int r, int g, int a, int nb,
                               float scale) {
    const int D = b->D, Dp = b->Dp, hd = s->hd, nh = s->nh, rep = s->nh / s->nkv, across = hd <= OWN_ACROSS_HD;
    const size_t n = (size_t)nb * D * hd, nt = (size_t)nb * Dp * hd;
    own_gather(b->ko, kc, s, D, r, g, i0 + a, nb);
    if (across) {
        own_gather_t(b->kT, kc, s, D, Dp, r, g, i0 + a, nb);
        own_gather_t(b->vT, vc, s, D, Dp, r, g, i0 + a, nb);
        memset(b->dkT, 0, sizeof(float) * nt), memset(b->dvT, 0, sizeof(float) * nt);
    } else {
        own_gather(b->vo, vc, s, D, r, g, i0 + a, nb);
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
                    own_keys_backward(dq + qh * hd, b->dko + o, b->dvo + o, q + qh * hd, go, b->ko + o, b->vo + o,
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
//   dq += ds K;  dKt += Q^T ds;  dVt += dO^T p.
static void block_backward(attn_buf *b, float *dq, const float *kt, const float *vt, int P, int n, int Pb,
                           const attn_shape *s, int r, float scale) {
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
    for (int k = 0; k < n; k++) axpy(dq + b->qh[k] * hd, 1.0f, b->ob + (size_t)k * hd, hd);
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
                const size_t o = (size_t)(r * s->T + i) * s->nkv * hd + (size_t)g * hd; // pass 0 of (r, i, g)
                own_keys_backward(dq + qh * hd, dkc + o, dvc + o, qv, go, kc + o, vc + o,
                                  (size_t)s->R * s->T * s->nkv * hd, s, i, d, L, Dq, scale);
            }
}

// Work is split by (row, kv head), which owns its slice of dkc/dvc. For blocks of
// many queries the prefix keys go through GEMMs over the transposed prefix, a block
// of POS_BLOCK positions (a chunk of passes, all heads of the group) at a time, dk
// and dv accumulated transposed per work item and added to the cache slice at its
// end; then the own-thought keys one by one, from copies gathered per block of
// positions. Every key of small blocks goes one by one from the cache.
void attention_backward(float *dq, float *dkc, float *dvc, const float *dout, const float *q,
                        const float *kc, const float *vc, const float *out, const float *lse,
                        const attn_shape *s, int d0, int nd, int i0, int ni) {
    const int R = s->R, hd = s->hd, nkv = s->nkv, rep = s->nh / s->nkv, P = i0 + ni, Pp = prefix_stride(P);
    const float scale = 1.0f / sqrtf((float)hd);
    const int D = d0 + nd, nbmax = ni < POS_BLOCK ? ni : POS_BLOCK;
    int pc = BWD_SCORES / P / (nbmax * rep); // passes per chunk of queries
    pc = pc < 1 ? 1 : pc > nd ? nd : pc;
    int no = OWN_FLOATS / ((hd <= OWN_ACROSS_HD ? (D + 15) / 16 * 16 : D) * hd); // positions per own-thought block
    no = no < 1 ? 1 : no > ni ? ni : no;
    float *kt, *vt;
    prefix_for_block(kc, vc, s, nd * ni, P, &kt, &vt);
#pragma omp parallel
    {
        attn_buf b;
        const int gemm = kt && buf_alloc(&b, (size_t)pc * nbmax * rep, hd, Pp, D, no, 1);
#pragma omp for collapse(2) schedule(dynamic, 1)
        for (int r = 0; r < R; r++)
            for (int g = 0; g < nkv; g++) {
                if (!gemm) {
                    keys_backward(dq, dkc, dvc, dout, q, kc, vc, out, lse, s, d0, nd, i0, ni, r, g, scale);
                    continue;
                }
                const float *ktg = kt + ((size_t)r * nkv + g) * hd * Pp, *vtg = vt + ((size_t)r * nkv + g) * hd * Pp;
                memset(b.dkt, 0, sizeof(float) * (size_t)hd * Pp);
                memset(b.dvt, 0, sizeof(float) * (size_t)hd * Pp);
                for (int a = 0; a < ni; a += POS_BLOCK) {
                    const int nb = ni - a < POS_BLOCK ? ni - a : POS_BLOCK, Pb = i0 + a + nb;
                    for (int dlo = 0; dlo < nd; dlo += pc) {
                        const int dhi = dlo + pc < nd ? dlo + pc : nd;
                        const int n = gather_block(&b, q, dout, out, lse, s, d0, dlo, dhi, i0, ni, r, g, a, nb);
                        if (n) block_backward(&b, dq, ktg, vtg, Pp, n, Pb, s, r, scale);
                    }
                }
                if (D > 1)
                    for (int a = 0; a < ni; a += no)
                        own_block_backward(&b, dq, dkc, dvc, dout, q, kc, vc, out, lse, s, d0, nd, i0, ni, r, g, a,
                                           ni - a < no ? ni - a : no, scale);
                for (int j = 0; j < P; j++) { // transposed prefix gradients into the cache slice
                    float *dk = (float *)kv_at(dkc, s, 0, r, j, g), *dv = (float *)kv_at(dvc, s, 0, r, j, g);
                    for (int c = 0; c < hd; c++) dk[c] += b.dkt[(size_t)c * Pp + j], dv[c] += b.dvt[(size_t)c * Pp + j];
                }
            }
        if (gemm) buf_free(&b);
    }
    free(kt), free(vt);
}

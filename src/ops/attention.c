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
//
// This file: the prefix keys and the entry points; the own-thought keys are in
// attention_own.c, the head-size-8 forward in attention_h8.c (attention_impl.h).
#include "ops/attention_impl.h"
#include <stdlib.h>
#include <string.h>

// blocks with at least this many queries per row use the transposed prefix
#define TRANSPOSE_MIN_QUERIES 4

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

void attn_buf_free(attn_buf *b) {
    free(b->qb), free(b->gob), free(b->ob), free(b->p), free(b->ds), free(b->po), free(b->dkt), free(b->dvt);
    free(b->Dq), free(b->L), free(b->qh), free(b->pos), free(b->pass);
    free(b->ko), free(b->vo), free(b->kT), free(b->vT), free(b->dkT), free(b->dvT), free(b->dko), free(b->dvo);
    free(b->os), free(b->keep);
    memset(b, 0, sizeof *b);
}

int attn_buf_alloc(attn_buf *b, size_t nq, int hd, int P, int D, int no, int bwd) {
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
    if (!ok) attn_buf_free(b);
    return ok;
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
    attn_own_scores(po, qv, ko, s, d, scale);
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
static void block_forward(attn_buf *b, float *out, float *lse, const float *kt, const float *vt, int P, int n,
                          int Pb, int ia, const attn_shape *s, int r, float scale) {
    const int hd = s->hd;
    if (hd == 8) {
        attn_block_forward_h8(b, out, lse, kt, vt, P, n, Pb, ia, s, scale);
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
        const int ok = attn_buf_alloc(&b, (size_t)nd * nbmax * rep, hd, Pp, d0 + nd, nbmax, 0);
        fallback = !ok;
#pragma omp for collapse(2) schedule(dynamic, 1)
        for (int r = 0; r < R; r++)
            for (int g = 0; g < nkv; g++) {
                if (!ok) continue;
                const float *ktg = kt + ((size_t)r * nkv + g) * hd * Pp, *vtg = vt + ((size_t)r * nkv + g) * hd * Pp;
                attn_keep_row(b.keep, s, r, P, Pp);
                for (int a = 0; a < ni; a += POS_BLOCK) {
                    const int nb = ni - a < POS_BLOCK ? ni - a : POS_BLOCK;
                    const int n = gather_block(&b, q, NULL, NULL, NULL, s, d0, 0, nd, i0, ni, r, g, a, nb);
                    attn_own_gather(b.ko, kc, s, d0 + nd, r, g, i0 + a, nb);
                    attn_own_gather(b.vo, vc, s, d0 + nd, r, g, i0 + a, nb);
                    block_forward(&b, out, lse, ktg, vtg, Pp, n, i0 + a + nb, i0 + a, s, r, scale);
                }
            }
        if (ok) attn_buf_free(&b);
    }
    free(kt), free(vt);
    if (fallback) keys_forward(out, lse, q, kc, vc, s, d0, nd, i0, ni, scale); // all again, key by key
}

// With p = exp(score - lse) and Dq = dout . out:
//   dv += p * dout;  ds = p * (dout . v - Dq);  dq += ds*scale*k;  dk += ds*scale*q.

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
                attn_own_keys_backward(dq + qh * hd, dkc + o, dvc + o, qv, go, kc + o, vc + o,
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
        const int gemm = kt && attn_buf_alloc(&b, (size_t)pc * nbmax * rep, hd, Pp, D, no, 1);
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
                        attn_own_block_backward(&b, dq, dkc, dvc, dout, q, kc, vc, out, lse, s, d0, nd, i0, ni, r, g, a,
                                           ni - a < no ? ni - a : no, scale);
                for (int j = 0; j < P; j++) { // transposed prefix gradients into the cache slice
                    float *dk = (float *)kv_at(dkc, s, 0, r, j, g), *dv = (float *)kv_at(dvc, s, 0, r, j, g);
                    for (int c = 0; c < hd; c++) dk[c] += b.dkt[(size_t)c * Pp + j], dv[c] += b.dvt[(size_t)c * Pp + j];
                }
            }
        if (gemm) attn_buf_free(&b);
    }
    free(kt), free(vt);
}

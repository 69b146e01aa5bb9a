// attention_impl.h: private to src/ops/attention*.c. What the thought attention's
// three files share: the cache layout helpers, the per-thread block buffers, the
// head-size dispatch, the small force-inlined row operations, and the functions one
// file calls in another:
//   attention.c      the prefix keys (pass 0) as GEMMs over the transposed prefix,
//                    the key-by-key paths, and the entry points of ops.h;
//   attention_own.c  the own-thought keys (passes 1..d at the query's position),
//                    gathered per block of positions;
//   attention_h8.c   the head-size-8 forward in vector registers.
#ifndef QS_ATTENTION_IMPL_H
#define QS_ATTENTION_IMPL_H
#include "ops/ops.h"
#include <math.h>
#include <stdint.h>
#include <stddef.h>

#define HD_MAX 512

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

// ---- attention.c
// Per-thread buffers (above) for nq queries; bwd: the backward's buffers (also gob, ds, dkt, dvt). 0 when out of memory.
int attn_buf_alloc(attn_buf *b, size_t nq, int hd, int P, int D, int no, int bwd);
void attn_buf_free(attn_buf *b);

// ---- attention_own.c (each documented at its definition)
void attn_own_gather(float *dst, const float *c, const attn_shape *s, int D, int r, int g, int i, int n);
void attn_own_scores(float *po, const float *qv, const float *ko, const attn_shape *s, int d, float scale);
void attn_own_keys_backward(float *gq, float *dk0, float *dv0, const float *qv, const float *go, const float *k0,
                            const float *v0, size_t es, const attn_shape *s, int i, int d, float L, float Dq,
                            float scale);
void attn_own_block_backward(attn_buf *b, float *dq, float *dkc, float *dvc, const float *dout, const float *q,
                             const float *kc, const float *vc, const float *out, const float *lse,
                             const attn_shape *s, int d0, int nd, int i0, int ni, int r, int g, int a, int nb,
                             float scale);

// ---- attention_h8.c
void attn_keep_row(int32_t *keep, const attn_shape *s, int r, int P, int Pp);
// The forward of a block's n gathered queries with head size 8 (attn_block_forward's
// replacement there), query by query in vector registers.
void attn_block_forward_h8(attn_buf *b, float *out, float *lse, const float *kt, const float *vt, int Pp, int n,
                           int Pb, int ia, const attn_shape *s, float scale);

#endif

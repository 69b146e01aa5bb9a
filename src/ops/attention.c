// attention.c: grouped-query attention with the Quiet-STaR thought structure
// (see ops.h). Instead of a dense T x T*(d+1) mask, each query walks exactly
// its visible keys: i+1 prefix keys of pass 0 plus d keys of its own thought.
// The forward uses an online softmax and saves only the log-sum-exp per
// (query, head); the backward recomputes the probabilities from it.
#include "ops/ops.h"
#include <math.h>
#include <string.h>

#define HD_MAX 512

static inline float dot(const float *a, const float *b, int n) {
    float s = 0.0f;
    for (int k = 0; k < n; k++) s += a[k] * b[k];
    return s;
}

static inline void axpy(float *y, float a, const float *x, int n) {
    for (int k = 0; k < n; k++) y[k] += a * x[k];
}

// Pointer to the key/value of (pass e, row r, position j, kv head g).
static inline const float *kv_at(const float *c, const attn_shape *s, int e, int r, int j, int g) {
    return c + (((size_t)e * s->R + r) * s->T + j) * (size_t)(s->nkv * s->hd) + (size_t)g * s->hd;
}

void attention_forward(float *out, float *lse, const float *q, const float *kc, const float *vc,
                       const attn_shape *s, int d0, int nd, int i0, int ni) {
    const int R = s->R, T = s->T, nh = s->nh, hd = s->hd, rep = s->nh / s->nkv;
    const float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for collapse(3) schedule(dynamic, 4)
    for (int dd = 0; dd < nd; dd++)
        for (int r = 0; r < R; r++)
            for (int ii = 0; ii < ni; ii++) {
                const int d = d0 + dd, i = i0 + ii;
                const size_t qi = ((size_t)dd * R + r) * ni + ii; // query token index
                for (int h = 0; h < nh; h++) {
                    const float *qv = q + (qi * nh + h) * hd;
                    float *o = out + (qi * nh + h) * hd;
                    const int g = h / rep;
                    float acc[HD_MAX], m = -INFINITY, l = 0.0f;
                    memset(acc, 0, sizeof(float) * hd);
                    // visible keys: prefix j <= i of pass 0, then own thought passes 1..d
                    for (int kk = 0; kk <= i + d; kk++) {
                        int e = kk <= i ? 0 : kk - i, j = kk <= i ? kk : i;
                        if (e == 0 && s->mask && !s->mask[(size_t)r * T + j]) continue;
                        float sc = dot(qv, kv_at(kc, s, e, r, j, g), hd) * scale;
                        if (sc > m) {
                            float f = expf(m - sc); // 0 on the first key (m = -inf)
                            l *= f;
                            for (int k = 0; k < hd; k++) acc[k] *= f;
                            m = sc;
                        }
                        float p = expf(sc - m);
                        l += p;
                        axpy(acc, p, kv_at(vc, s, e, r, j, g), hd);
                    }
                    if (l == 0.0f) { // no visible key
                        memset(o, 0, sizeof(float) * hd);
                        lse[qi * nh + h] = -INFINITY;
                        continue;
                    }
                    for (int k = 0; k < hd; k++) o[k] = acc[k] / l;
                    lse[qi * nh + h] = m + logf(l);
                }
            }
}

// With p = exp(score - lse) and Dq = dout . out:
//   dv += p * dout;  ds = p * (dout . v - Dq);  dq += ds*scale*k;  dk += ds*scale*q.
void attention_backward(float *dq, float *dkc, float *dvc, const float *dout, const float *q,
                        const float *kc, const float *vc, const float *out, const float *lse,
                        const attn_shape *s, int d0, int nd, int i0, int ni) {
    const int R = s->R, T = s->T, nh = s->nh, hd = s->hd, nkv = s->nkv, rep = s->nh / s->nkv;
    const float scale = 1.0f / sqrtf((float)hd);
    // each (row, kv head) owns its slice of dkc/dvc: no two threads write the same key
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
    for (int r = 0; r < R; r++)
        for (int g = 0; g < nkv; g++)
            for (int dd = 0; dd < nd; dd++)
                for (int ii = 0; ii < ni; ii++) {
                    const int d = d0 + dd, i = i0 + ii;
                    const size_t qi = ((size_t)dd * R + r) * ni + ii;
                    for (int h = g * rep; h < (g + 1) * rep; h++) {
                        const size_t qh = qi * nh + h;
                        const float L = lse[qh];
                        if (L == -INFINITY) continue;
                        const float *qv = q + qh * hd, *go = dout + qh * hd;
                        float *gq = dq + qh * hd;
                        const float Dq = dot(go, out + qh * hd, hd);
                        for (int kk = 0; kk <= i + d; kk++) {
                            int e = kk <= i ? 0 : kk - i, j = kk <= i ? kk : i;
                            if (e == 0 && s->mask && !s->mask[(size_t)r * T + j]) continue;
                            const float *kv = kv_at(kc, s, e, r, j, g), *vv = kv_at(vc, s, e, r, j, g);
                            float p = expf(dot(qv, kv, hd) * scale - L);
                            float ds = p * (dot(go, vv, hd) - Dq) * scale;
                            axpy((float *)kv_at(dvc, s, e, r, j, g), p, go, hd);
                            axpy((float *)kv_at(dkc, s, e, r, j, g), ds, qv, hd);
                            axpy(gq, ds, kv, hd);
                        }
                    }
                }
}

// mixhead.c: forward/backward of the Quiet-STaR mixing ("talk") head.
#include "quietstar/mixhead.h"
#include "ops/ops.h"

#include <math.h>
#include <string.h>

static void relu_inplace(float *x, size_t n) {
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void mixhead_forward_mm(const qs_mm *mm, const qs_ptrs *p, int H, int N, const float *hb, const float *ht,
                        int sigmoid, qs_mix_acts *a, float *hm) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        memcpy(a->cat + (size_t)n * 2 * H, hb + (size_t)n * H, H * sizeof(float));
        memcpy(a->cat + (size_t)n * 2 * H + H, ht + (size_t)n * H, H * sizeof(float));
    }
    matmul_forward_mm(mm, a->a1, a->cat, p->head_w1, p->head_b1, N, 2 * H, H); // (N,2H) -> (N,H)
    relu_inplace(a->a1, (size_t)N * H);
    matmul_forward_mm(mm, a->a2, a->a1, p->head_w2, p->head_b2, N, H, H);
    relu_inplace(a->a2, (size_t)N * H);
    matmul_forward_mm(mm, a->w, a->a2, p->head_w3, NULL, N, H, 1); // (N,H) -> (N,1)
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        float w = sigmoid ? 1.0f / (1.0f + expf(-a->w[n])) : a->w[n];
        a->w[n] = w;
        const float *b = hb + (size_t)n * H, *t = ht + (size_t)n * H;
        float *o = hm + (size_t)n * H;
        for (int c = 0; c < H; c++) o[c] = (1.0f - w) * b[c] + w * t[c];
    }
}

void mixhead_backward_mm(const qs_mm *mm, const qs_ptrs *p, const qs_ptrs *g, int H, int N, const float *hb,
                         const float *ht, const float *dhm, int sigmoid, qs_mix_acts *a, float *dhb, float *dht) {
    // hm = (1-w) hb + w ht: dhb += (1-w) dhm, dht += w dhm, dw = dhm . (ht - hb)
    // dw is then taken back through the sigmoid (if any); stored in a->w's place
    // would lose w, so dw goes to the first column of a->da temporarily.
    float *dw = a->dcat; // [N] scratch (dcat is rebuilt below)
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *b = hb + (size_t)n * H, *t = ht + (size_t)n * H, *d = dhm + (size_t)n * H;
        float w = a->w[n], s = 0.0f;
        for (int c = 0; c < H; c++) {
            dhb[(size_t)n * H + c] += (1.0f - w) * d[c];
            dht[(size_t)n * H + c] += w * d[c];
            s += d[c] * (t[c] - b[c]);
        }
        dw[n] = sigmoid ? s * w * (1.0f - w) : s;
    }
    // w = a2 . W3: dW3 += dw^T a2, da2 = dw * W3, through relu (a2 > 0)
    float *da2 = a->da;
    memset(da2, 0, (size_t)N * H * sizeof(float));
    matmul_backward_mm(mm, da2, g->head_w3, NULL, dw, a->a2, p->head_w3, N, H, 1);
#pragma omp parallel for
    for (size_t i = 0; i < (size_t)N * H; i++)
        if (a->a2[i] <= 0.0f) da2[i] = 0.0f;
    // a2 = relu(a1 W2^T + b2)
    float *da1 = a->dcat; // reuse: [N,H] fits in [N,2H]
    memset(da1, 0, (size_t)N * H * sizeof(float));
    matmul_backward_mm(mm, da1, g->head_w2, g->head_b2, da2, a->a1, p->head_w2, N, H, H);
#pragma omp parallel for
    for (size_t i = 0; i < (size_t)N * H; i++)
        if (a->a1[i] <= 0.0f) da1[i] = 0.0f;
    // a1 = relu(cat W1^T + b1): dcat = da1 W1 (into a->da as [N,2H] won't fit) -> compute
    // into a second pass: first copy da1 to a->da ([N,H]) then fill dcat.
    memcpy(a->da, da1, (size_t)N * H * sizeof(float));
    memset(a->dcat, 0, (size_t)N * 2 * H * sizeof(float));
    matmul_backward_mm(mm, a->dcat, g->head_w1, g->head_b1, a->da, a->cat, p->head_w1, N, 2 * H, H);
#pragma omp parallel for
    for (int n = 0; n < N; n++)
        for (int c = 0; c < H; c++) {
            dhb[(size_t)n * H + c] += a->dcat[(size_t)n * 2 * H + c];
            dht[(size_t)n * H + c] += a->dcat[(size_t)n * 2 * H + H + c];
        }
}

void mixhead_forward(const qs_ptrs *p, int H, int N, const float *hb, const float *ht, int sigmoid,
                     qs_mix_acts *a, float *hm) {
    mixhead_forward_mm(NULL, p, H, N, hb, ht, sigmoid, a, hm);
}

void mixhead_backward(const qs_ptrs *p, const qs_ptrs *g, int H, int N, const float *hb, const float *ht,
                      const float *dhm, int sigmoid, qs_mix_acts *a, float *dhb, float *dht) {
    mixhead_backward_mm(NULL, p, g, H, N, hb, ht, dhm, sigmoid, a, dhb, dht);
}

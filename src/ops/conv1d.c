// conv1d.c: GPT-2's Conv1D (a linear layer whose weight is stored [in, out],
// transposed vs nn.Linear) and the learned position embedding.
#include "ops/ops.h"

// out (N,OC) = inp (N,C) @ weight (C, ldw)[:, :OC] + bias (OC)
void conv1d_forward_mm(const qs_mm *mm, float *out, const float *inp, const float *weight, int ldw,
                       const float *bias, int N, int C, int OC) {
    if (bias) {
#pragma omp parallel for
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) out[(size_t)n * OC + o] = bias[o];
    }
    qs_gemm(mm, 0, 0, N, OC, C, 1.0f, inp, C, weight, ldw, bias ? 1.0f : 0.0f, out, OC);
}

void conv1d_forward(float *out, const float *inp, const float *weight, int ldw, const float *bias, int N, int C,
                    int OC) {
    conv1d_forward_mm(NULL, out, inp, weight, ldw, bias, N, C, OC);
}

void conv1d_backward_mm(const qs_mm *mm, float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, int ldw, int N, int C, int OC) {
    // dinp (N,C) += dout (N,OC) @ weight[:, :OC]^T
    if (dinp) qs_gemm(mm, 0, 1, N, C, OC, 1.0f, dout, OC, weight, ldw, 1.0f, dinp, C);
    // dweight (C,OC) += inp^T (C,N) @ dout (N,OC)
    if (dweight) qs_gemm(mm, 1, 0, C, OC, N, 1.0f, inp, C, dout, OC, 1.0f, dweight, ldw);
    if (dbias) {
#pragma omp parallel for
        for (int o = 0; o < OC; o++) {
            double s = 0;
            for (int n = 0; n < N; n++) s += dout[(size_t)n * OC + o];
            dbias[o] += (float)s;
        }
    }
}

void conv1d_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int ldw, int N, int C, int OC) {
    conv1d_backward_mm(NULL, dinp, dweight, dbias, dout, inp, weight, ldw, N, C, OC);
}

void posembed_forward(float *x, const int *pos, const float *wpe, int N, int C) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *p = wpe + (pos ? (size_t)pos[n] * C : 0);
        float *xn = x + (size_t)n * C;
        for (int c = 0; c < C; c++) xn[c] += p[c];
    }
}

// layernorm.c: LayerNorm with bias (GPT-2), y = (x - mean) * rstd * w + b.
#include "ops/ops.h"
#include <math.h>

void layernorm_forward(float *out, float *mean, float *rstd, const float *x, const float *w, const float *b,
                       int N, int C, float eps) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *xn = x + (size_t)n * C;
        float *on = out + (size_t)n * C;
        float m = 0.0f;
        for (int c = 0; c < C; c++) m += xn[c];
        m /= C;
        float v = 0.0f;
        for (int c = 0; c < C; c++) v += (xn[c] - m) * (xn[c] - m);
        float r = 1.0f / sqrtf(v / C + eps);
        for (int c = 0; c < C; c++) on[c] = (xn[c] - m) * r * w[c] + b[c];
        if (mean) mean[n] = m;
        if (rstd) rstd[n] = r;
    }
}

// With xh = (x - mean) * r and g = dout * w:
//   dx += r * (g - mean(g) - xh * mean(g * xh));  dw += dout * xh;  db += dout.
void layernorm_backward(float *dx, float *dw, float *db, const float *dout, const float *x, const float *w,
                        const float *mean, const float *rstd, int N, int C) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *xn = x + (size_t)n * C, *dn = dout + (size_t)n * C;
        float *dxn = dx + (size_t)n * C;
        const float m = mean[n], r = rstd[n];
        float sg = 0.0f, sgx = 0.0f;
        for (int c = 0; c < C; c++) {
            float g = dn[c] * w[c];
            sg += g;
            sgx += g * (xn[c] - m) * r;
        }
        sg /= C, sgx /= C;
        for (int c = 0; c < C; c++) dxn[c] += r * (dn[c] * w[c] - sg - (xn[c] - m) * r * sgx);
    }
    if (dw || db) {
#pragma omp parallel for
        for (int c = 0; c < C; c++) {
            float sw = 0.0f, sb = 0.0f;
            for (int n = 0; n < N; n++) {
                float d = dout[(size_t)n * C + c];
                sw += d * (x[(size_t)n * C + c] - mean[n]) * rstd[n];
                sb += d;
            }
            if (dw) dw[c] += sw;
            if (db) db[c] += sb;
        }
    }
}

// rmsnorm.c: RMSNorm, y = x / sqrt(mean(x^2) + eps) * w.
#include "ops/ops.h"
#include <math.h>

void rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int N, int C, float eps) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *xn = x + (size_t)n * C;
        float *on = out + (size_t)n * C;
        float ss = 0.0f;
        for (int c = 0; c < C; c++) ss += xn[c] * xn[c];
        float r = 1.0f / sqrtf(ss / C + eps);
        for (int c = 0; c < C; c++) on[c] = xn[c] * r * w[c];
        if (rstd) rstd[n] = r;
    }
}

// With xh = x*r: dx = r * (g - xh * mean(g*xh)), g = dout*w; dw += dout*xh.
void rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x, const float *w,
                      const float *rstd, int N, int C) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *xn = x + (size_t)n * C, *dn = dout + (size_t)n * C;
        float *dxn = dx + (size_t)n * C;
        float r = rstd[n], dot = 0.0f;
        for (int c = 0; c < C; c++) dot += dn[c] * w[c] * xn[c] * r;
        dot /= C;
        for (int c = 0; c < C; c++) dxn[c] += r * (dn[c] * w[c] - xn[c] * r * dot);
    }
    if (dw) {
#pragma omp parallel for
        for (int c = 0; c < C; c++) {
            float s = 0.0f;
            for (int n = 0; n < N; n++) s += dout[(size_t)n * C + c] * x[(size_t)n * C + c] * rstd[n];
            dw[c] += s;
        }
    }
}

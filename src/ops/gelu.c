// gelu.c: GELU, tanh approximation (GPT-2's "gelu_new" / "gelu_pytorch_tanh"):
// y = 0.5 x (1 + tanh(s (x + 0.044715 x^3))), s = sqrt(2/pi).
#include "ops/ops.h"
#include <math.h>

#define GELU_S 0.7978845608028654f // sqrt(2/pi)
#define GELU_A 0.044715f

void gelu_forward(float *out, const float *x, size_t n) {
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        out[i] = 0.5f * v * (1.0f + tanhf(GELU_S * (v + GELU_A * v * v * v)));
    }
}

// y' = 0.5 (1 + t) + 0.5 x (1 - t^2) s (1 + 3 a x^2), t = tanh(s (x + a x^3))
void gelu_backward(float *dx, const float *dout, const float *x, size_t n) {
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) {
        float v = x[i], t = tanhf(GELU_S * (v + GELU_A * v * v * v));
        float d = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * GELU_S * (1.0f + 3.0f * GELU_A * v * v);
        dx[i] += dout[i] * d;
    }
}

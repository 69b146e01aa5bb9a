// swiglu.c: the SwiGLU gate of the Llama MLP, silu(gate) * up.
#include "ops/ops.h"

void swiglu_forward(float *out, const float *gate, const float *up, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = gate[i] * qs_sigmoid(gate[i]) * up[i];
}

// silu(g) = g*s, s = sigmoid(g); silu'(g) = s * (1 + g*(1-s))
void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up,
                     size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        const float g = gate[i], s = qs_sigmoid(g);
        dgate[i] += dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
        dup[i] += dout[i] * g * s;
    }
}

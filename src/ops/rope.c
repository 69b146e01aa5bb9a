// rope.c: rotary position embedding (rotate-half layout, as Hugging Face).
#include "ops/ops.h"
#include <math.h>

void rope_tables(float *cos_t, float *sin_t, int max_pos, int hd, float theta) {
    int half = hd / 2;
    for (int j = 0; j < half; j++) {
        // same float arithmetic as llama2.c's run.c: 1 / theta^(2j/hd)
        float freq = 1.0f / powf(theta, (float)(2 * j) / (float)hd);
        for (int p = 0; p < max_pos; p++) {
            float val = (float)p * freq;
            cos_t[(size_t)p * half + j] = cosf(val);
            sin_t[(size_t)p * half + j] = sinf(val);
        }
    }
}

static void rotate(float *x, const int *pos, const float *cos_t, const float *sin_t, int N, int nh, int hd,
                   float sign) {
    int half = hd / 2;
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *c = cos_t + (size_t)pos[n] * half, *s = sin_t + (size_t)pos[n] * half;
        for (int h = 0; h < nh; h++) {
            float *v = x + ((size_t)n * nh + h) * hd;
            for (int j = 0; j < half; j++) {
                float a = v[j], b = v[j + half], sn = sign * s[j];
                v[j] = a * c[j] - b * sn;
                v[j + half] = b * c[j] + a * sn;
            }
        }
    }
}

void rope_forward(float *x, const int *pos, const float *cos_t, const float *sin_t, int N, int nh, int hd) {
    rotate(x, pos, cos_t, sin_t, N, nh, hd, 1.0f);
}

// The rotation is orthogonal: its transpose is the rotation by -angle.
void rope_backward(float *dx, const int *pos, const float *cos_t, const float *sin_t, int N, int nh, int hd) {
    rotate(dx, pos, cos_t, sin_t, N, nh, hd, -1.0f);
}

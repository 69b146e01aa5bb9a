// rope.c: rotary position embedding (rotate-half layout, as Hugging Face).
#include "ops/ops.h"
#include <math.h>

void rope_tables(float *cos_t, float *sin_t, int max_pos, int hd, float theta) {
    float inv[256];
    int half = hd / 2;
    for (int j = 0; j < half && j < 256; j++)
        // same float arithmetic as llama2.c's run.c: 1 / theta^(2j/hd)
        inv[j] = 1.0f / powf(theta, (float)(2 * j) / (float)hd);
    rope_tables_freq(cos_t, sin_t, max_pos, hd, inv);
}

void rope_inv_freq(float *inv, int hd, float theta, const rope_scaling_t *sc) {
    const int half = hd / 2;
    for (int j = 0; j < half; j++) inv[j] = 1.0f / powf(theta, (float)(2 * j) / (float)hd);
    if (!sc || sc->type == 0) return;
    if (sc->type == 1) { // linear: positions divided by factor
        for (int j = 0; j < half; j++) inv[j] /= sc->factor;
        return;
    }
    // llama3 (HF _compute_llama3_parameters), in float32 like torch
    const float old = (float)sc->orig_max;
    const double low_wl = (double)sc->orig_max / sc->low_ff, high_wl = (double)sc->orig_max / sc->high_ff;
    for (int j = 0; j < half; j++) {
        const float wl = (float)(2.0 * M_PI) / inv[j];
        float f = (double)wl > low_wl ? inv[j] / sc->factor : inv[j];
        if (!((double)wl < high_wl) && !((double)wl > low_wl)) {
            const float smooth = (old / wl - sc->low_ff) / (sc->high_ff - sc->low_ff);
            f = (1.0f - smooth) * f / sc->factor + smooth * f;
        }
        inv[j] = f;
    }
}

void rope_tables_freq(float *cos_t, float *sin_t, int max_pos, int hd, const float *inv) {
    int half = hd / 2;
    for (int j = 0; j < half; j++) {
        float freq = inv[j];
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

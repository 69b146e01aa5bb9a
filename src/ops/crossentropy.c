// crossentropy.c: softmax cross-entropy over a vocabulary, fused. The max, the
// exponentials (qs_exp_neg) and their double sum run across the row in vector
// registers (with libm's expf per logit they were scalar: about 2% of a 135M step).
#include "ops/ops.h"
#include <math.h>

static float row_max(const float *z, int V) {
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int v = 0; v < V; v++) mx = z[v] > mx ? z[v] : mx;
    return mx;
}

static float row_lse(const float *z, int V) {
    const float mx = row_max(z, V);
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int v = 0; v < V; v++) s += (double)qs_exp_neg(z[v] - mx);
    return mx + (float)log(s);
}

void crossentropy_forward(float *losses, const float *logits, const int *targets, int N, int V) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *z = logits + (size_t)n * V;
        losses[n] = targets[n] < 0 ? 0.0f : row_lse(z, V) - z[targets[n]];
    }
}

void crossentropy_backward(float *dlogits, const float *logits, const int *targets, const float *dloss,
                           int N, int V) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *z = logits + (size_t)n * V;
        float *dz = dlogits + (size_t)n * V;
        if (targets[n] < 0) {
            for (int v = 0; v < V; v++) dz[v] = 0.0f;
            continue;
        }
        // softmax with one exp per logit (dz may alias z: each v reads z[v] first)
        const float mx = row_max(z, V);
        double s = 0.0;
#pragma omp simd reduction(+ : s)
        for (int v = 0; v < V; v++) {
            dz[v] = qs_exp_neg(z[v] - mx);
            s += (double)dz[v];
        }
        const float g = dloss[n], gs = (float)(g / s);
#pragma omp simd
        for (int v = 0; v < V; v++) dz[v] *= gs;
        dz[targets[n]] -= g;
    }
}

double qs_logits_entropy(const float *z, int V) {
    float mx = -INFINITY;
    for (int v = 0; v < V; v++) mx = QS_MAX(mx, z[v]);
    double s = 0.0, sz = 0.0; // H = log(s) - sum(e*(z-mx))/s
    for (int v = 0; v < V; v++) {
        double e = exp((double)z[v] - mx);
        s += e, sz += e * ((double)z[v] - mx);
    }
    return log(s) - sz / s;
}

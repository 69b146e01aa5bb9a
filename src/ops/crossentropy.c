// crossentropy.c: softmax cross-entropy over a vocabulary, fused.
#include "ops/ops.h"
#include <math.h>

static float row_lse(const float *z, int V) {
    float mx = -INFINITY;
    for (int v = 0; v < V; v++) mx = z[v] > mx ? z[v] : mx;
    double s = 0.0;
    for (int v = 0; v < V; v++) s += expf(z[v] - mx);
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
        float mx = -INFINITY;
        for (int v = 0; v < V; v++) mx = z[v] > mx ? z[v] : mx;
        double s = 0.0;
        for (int v = 0; v < V; v++) s += dz[v] = expf(z[v] - mx);
        const float g = dloss[n], gs = (float)(g / s);
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

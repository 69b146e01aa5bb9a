// embedding.c: token embedding lookup.
#include "ops/ops.h"
#include <string.h>

void embedding_forward(float *out, const int *tokens, const float *table, int N, int C) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) memcpy(out + (size_t)n * C, table + (size_t)tokens[n] * C, C * sizeof(float));
}

void embedding_backward(float *dtable, const float *dout, const int *tokens, int N, int C) {
    for (int n = 0; n < N; n++) {
        float *d = dtable + (size_t)tokens[n] * C;
        const float *g = dout + (size_t)n * C;
        for (int c = 0; c < C; c++) d[c] += g[c];
    }
}

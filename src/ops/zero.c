// zero.c: x[0..n) = 0 with the whole thread team. The backward clears several
// gradient buffers per layer (MBs each); cleared by one thread, the others spun.
#include "ops/ops.h"
#include <string.h>

#define ZERO_CHUNK 16384 // floats per piece (64 KB)

void qs_zero(float *x, size_t n) {
    const long pieces = (long)((n + ZERO_CHUNK - 1) / ZERO_CHUNK);
#pragma omp parallel for schedule(static) if (pieces > 4)
    for (long k = 0; k < pieces; k++) {
        const size_t a = (size_t)k * ZERO_CHUNK, len = n - a < ZERO_CHUNK ? n - a : ZERO_CHUNK;
        memset(x + a, 0, len * sizeof(float));
    }
}

// matmul_dnnl.h: oneDNN matmul primitives behind qs_sgemm / qs_gemm_bf16
// (internal to src/ops; compiled only with QS_HAVE_DNNL).
#ifndef QS_OPS_MATMUL_DNNL_H
#define QS_OPS_MATMUL_DNNL_H

#include <stddef.h>

// Primitives kept at most; when a new shape finds the cache full, the ones
// not running are dropped.
#define QS_DNNL_CACHE_MAX 768

// C[M,N] = alpha * op(A) @ op(B) + beta * C (row-major, the qs_sgemm
// contract) with A, B fp32 (bf16 = 0) or bf16 (bf16 = 1), C fp32, M, N, K >= 1.
// Returns 0 when done, -1 when oneDNN could not do it (C untouched: the
// caller falls back to OpenBLAS).
int qs_dnnl_gemm(int bf16, int transA, int transB, int M, int N, int K, float alpha, const void *A, int lda,
                 const void *B, int ldb, float beta, float *C, int ldc);
// Primitives created so far.
size_t qs_dnnl_primitives(void);
// Destroys the cached primitives, the engine and the calling thread's stream.
void qs_dnnl_release(void);

#endif

// matmul_dnnl.h: oneDNN matmul primitives behind qs_sgemm / qs_gemm_bf16
// (internal to src/ops; compiled only with QS_HAVE_DNNL).
#ifndef QS_OPS_MATMUL_DNNL_H
#define QS_OPS_MATMUL_DNNL_H

#include <stddef.h>
#include <stdint.h>

// Primitives kept at most; when a new shape finds the cache full, the ones
// not running are dropped.
#define QS_DNNL_CACHE_MAX 768

// C[M,N] = alpha * op(A) @ op(B) + beta * C (row-major, the qs_sgemm
// contract) with A, B fp32 (bf16 = 0) or bf16 (bf16 = 1), C fp32, M, N, K >= 1.
// Returns 0 when done, -1 when oneDNN could not do it (C untouched: the
// caller falls back to OpenBLAS).
int qs_dnnl_gemm(int bf16, int transA, int transB, int M, int N, int K, float alpha, const void *A, int lda,
                 const void *B, int ldb, float beta, float *C, int ldc);
// C[M,N] = alpha * A @ B^T + beta * C with A bf16 [M,K] (lda) and B a bf16 weight
// [N,K] (ldb) read from its copy in oneDNN's blocked layout, packed on first use
// and again whenever gen (the generation of the bf16 weights B lies in; 0: unknown)
// changes. Returns 0 when done, -1 when not done this way (C untouched).
int qs_dnnl_gemm_packed(int M, int N, int K, float alpha, const void *A, int lda, const void *B, int ldb,
                        uint64_t gen, float beta, float *C, int ldc);
// Drops the packed copies of the weights lying in p[0..bytes).
void qs_dnnl_forget(const void *p, size_t bytes);
// Bytes held by packed weights.
size_t qs_dnnl_packed_bytes(void);
// Primitives created so far.
size_t qs_dnnl_primitives(void);
// Destroys the cached primitives, the engine and the calling thread's stream.
void qs_dnnl_release(void);

#endif

// matmul.c: every matrix product in qstar goes through qs_sgemm / qs_gemm.
// Backends: oneDNN matmul primitives (matmul_dnnl.c) when built with oneDNN
// (QS_HAVE_DNNL), else OpenBLAS; OpenBLAS also takes any product oneDNN
// declines. bf16 GEMMs (qs_gemm with a bf16 qs_mm) read the weights from the
// model's bf16 copy and round the other operands to bf16 in the call (in a
// per-thread scratch); on OpenBLAS they run as fp32 products of the
// bf16-rounded operands (exact: a bf16 product fits in fp32).
#include "ops/ops.h"
#include "ops/matmul_dnnl.h"

#include <cblas.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

enum { BK_UNSET = -1, BK_OPENBLAS = 0, BK_DNNL = 1 };
static atomic_int g_backend = BK_UNSET;

#ifdef QS_HAVE_DNNL
#define HAVE_DNNL 1
#else
#define HAVE_DNNL 0
#endif

static int parse_backend(const char *s) {
    if (!s || !*s) return BK_UNSET;
    if (!strcmp(s, "openblas")) return BK_OPENBLAS;
    if (!strcmp(s, "onednn") || !strcmp(s, "dnnl")) return BK_DNNL;
    return -2;
}

static void release_at_exit(void) { qs_matmul_release(); }

static int backend(void) {
    int b = atomic_load(&g_backend);
    if (b != BK_UNSET) return b;
    int want = parse_backend(getenv("QSTAR_MATMUL")); // bad values: the default (the CLI reports them)
    b = want == BK_OPENBLAS || !HAVE_DNNL ? BK_OPENBLAS : BK_DNNL;
    int expected = BK_UNSET;
    if (atomic_compare_exchange_strong(&g_backend, &expected, b) && HAVE_DNNL) atexit(release_at_exit);
    return atomic_load(&g_backend);
}

const char *qs_matmul_backend(void) { return backend() == BK_DNNL ? "onednn" : "openblas"; }

qs_status qs_matmul_set_backend(const char *name) {
    int want = parse_backend(name);
    if (want == -2)
        return qs_error(QS_ERR_ARG, "matmul backend '%s' unknown (expected openblas or onednn)", name);
    if (want == BK_UNSET) want = parse_backend(getenv("QSTAR_MATMUL"));
    if (want == -2)
        return qs_error(QS_ERR_ARG, "QSTAR_MATMUL='%s' unknown (expected openblas or onednn)", getenv("QSTAR_MATMUL"));
    if (want == BK_DNNL && !HAVE_DNNL)
        return qs_error(QS_ERR_UNSUPPORTED, "matmul backend onednn: qstar was built without oneDNN (libdnnl-dev)");
    if (want == BK_UNSET) want = HAVE_DNNL ? BK_DNNL : BK_OPENBLAS;
    backend(); // registers the exit hook once
    atomic_store(&g_backend, want);
    return QS_OK;
}

void qs_gemm_forget(const void *p, size_t bytes) {
#ifdef QS_HAVE_DNNL
    qs_dnnl_forget(p, bytes);
#else
    (void)p, (void)bytes;
#endif
}

size_t qs_gemm_packed_bytes(void) {
#ifdef QS_HAVE_DNNL
    return qs_dnnl_packed_bytes();
#else
    return 0;
#endif
}

size_t qs_matmul_primitives(void) {
#ifdef QS_HAVE_DNNL
    return qs_dnnl_primitives();
#else
    return 0;
#endif
}

// ---- per-thread scratch: bf16 casts (slots 0, 1), fp32 copies (2, 3), the
// bf16 output gradient shared by a linear layer's two backward products (4)
enum { N_SCRATCH = 5 };
static _Thread_local struct { void *p; size_t cap; } tl_scratch[N_SCRATCH];

static void *scratch(int slot, size_t bytes) {
    if (bytes > tl_scratch[slot].cap) {
        free(tl_scratch[slot].p);
        tl_scratch[slot].p = malloc(bytes);
        tl_scratch[slot].cap = tl_scratch[slot].p ? bytes : 0;
    }
    return tl_scratch[slot].p;
}

void qs_matmul_release(void) {
#ifdef QS_HAVE_DNNL
    qs_dnnl_release();
#endif
    for (int i = 0; i < N_SCRATCH; i++) {
        free(tl_scratch[i].p);
        tl_scratch[i].p = NULL;
        tl_scratch[i].cap = 0;
    }
}

void qs_bf16_from_f32(qs_bf16 *dst, const float *src, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) dst[i] = qs_bf16_round(src[i]);
}

const char *qs_precision_name(qs_precision p) { return p == QS_PREC_BF16 ? "bf16" : "fp32"; }

qs_status qs_precision_parse(const char *s, qs_precision *p) {
    if (s && !strcmp(s, "fp32")) *p = QS_PREC_FP32;
    else if (s && !strcmp(s, "bf16")) *p = QS_PREC_BF16;
    else return qs_error(QS_ERR_ARG, "precision '%s' unknown (expected fp32 or bf16)", s ? s : "");
    return QS_OK;
}

// C = beta * C (beta 0: zero, C not read): the product of an empty sum.
static void scale_c(int M, int N, float beta, float *C, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float *c = C + (size_t)i * ldc + j;
            *c = beta == 0.0f ? 0.0f : beta * *c;
        }
}

void qs_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (backend() == BK_DNNL) {
        if (K <= 0 || alpha == 0.0f) { scale_c(M, N, beta, C, ldc); return; }
#ifdef QS_HAVE_DNNL
        if (qs_dnnl_gemm(0, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) == 0) return;
#endif
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, M, N,
                K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// rows x cols bf16 matrix with leading dimension ld -> packed fp32 (ld = cols)
static float *widen(int slot, const qs_bf16 *X, int rows, int cols, int ld) {
    float *y = scratch(slot, (size_t)rows * cols * sizeof(float));
    if (!y) return NULL;
#pragma omp parallel for schedule(static) if ((size_t)rows * cols > 65536)
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) y[(size_t)r * cols + c] = qs_bf16_widen(X[(size_t)r * ld + c]);
    return y;
}

// rows x cols fp32 matrix with leading dimension ld -> packed bf16 (ld = cols)
static qs_bf16 *narrow(int slot, const float *X, int rows, int cols, int ld) {
    qs_bf16 *y = scratch(slot, (size_t)rows * cols * sizeof(qs_bf16));
    if (!y) return NULL;
#pragma omp parallel for schedule(static) if ((size_t)rows * cols > 65536)
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) y[(size_t)r * cols + c] = qs_bf16_round(X[(size_t)r * ld + c]);
    return y;
}

void qs_gemm_bf16(int transA, int transB, int M, int N, int K, float alpha, const qs_bf16 *A, int lda,
                  const qs_bf16 *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) { scale_c(M, N, beta, C, ldc); return; }
#ifdef QS_HAVE_DNNL
    if (backend() == BK_DNNL && qs_dnnl_gemm(1, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) == 0)
        return;
#endif
    const int ar = transA ? K : M, ac = transA ? M : K, br = transB ? N : K, bc = transB ? K : N;
    const float *a = widen(2, A, ar, ac, lda), *b = widen(3, B, br, bc, ldb);
    if (!a || !b) { // out of memory for the copies: the product element by element
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                float s = 0.0f;
                for (int k = 0; k < K; k++)
                    s += qs_bf16_widen(transA ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]) *
                         qs_bf16_widen(transB ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]);
                float *c = C + (size_t)i * ldc + j;
                *c = alpha * s + (beta == 0.0f ? 0.0f : beta * *c);
            }
        return;
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, M, N,
                K, alpha, a, ac, b, bc, beta, C, ldc);
}

// the bf16 copy of X when X lies in mm's parameter buffer, else NULL
static const qs_bf16 *shadow_of(const qs_mm *mm, const float *X) {
    if (!mm->params16) return NULL;
    uintptr_t x = (uintptr_t)X, p = (uintptr_t)mm->params;
    if (x < p || x >= p + mm->numel * sizeof(float)) return NULL;
    return mm->params16 + (x - p) / sizeof(float);
}

// bf16 qs_gemm (M, N, K >= 1) where op(A) and/or op(B) may come already
// rounded to bf16 (a16 / b16 with leading dimensions la16 / lb16, else NULL).
static void gemm_bf16_with(const qs_mm *mm, int transA, int transB, int M, int N, int K, float alpha,
                           const float *A, int lda, const qs_bf16 *a16, int la16, const float *B, int ldb,
                           const qs_bf16 *b16, int lb16, float beta, float *C, int ldc) {
    const qs_bf16 *a = a16 ? a16 : shadow_of(mm, A), *b = b16 ? b16 : shadow_of(mm, B);
    int la = a16 ? la16 : lda, lb = b16 ? lb16 : ldb;
    if (!a) {
        const int r = transA ? K : M, c = transA ? M : K;
        a = narrow(0, A, r, c, lda), la = c;
    }
#ifdef QS_HAVE_DNNL
    // X W^T with W a weight of the bf16 copy: W read packed (once per generation)
    if (a && !b16 && b && !transA && transB && mm->gen && backend() == BK_DNNL &&
        qs_dnnl_gemm_packed(M, N, K, alpha, a, la, b, lb, mm->gen, beta, C, ldc) == 0)
        return;
#endif
    if (!b) {
        const int r = transB ? N : K, c = transB ? K : N;
        b = narrow(1, B, r, c, ldb), lb = c;
    }
    if (!a || !b) { // out of memory for the bf16 copies: fp32
        qs_sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    qs_gemm_bf16(transA, transB, M, N, K, alpha, a, la, b, lb, beta, C, ldc);
}

void qs_gemm(const qs_mm *mm, int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc) {
    if (!mm || mm->prec != QS_PREC_BF16 || M <= 0 || N <= 0 || K <= 0) {
        qs_sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    gemm_bf16_with(mm, transA, transB, M, N, K, alpha, A, lda, NULL, 0, B, ldb, NULL, 0, beta, C, ldc);
}

// ---- linear layers ------------------------------------------------------------

// out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias (OC)
void matmul_forward_mm(const qs_mm *mm, float *out, const float *inp, const float *weight, const float *bias,
                       int N, int C, int OC) {
    if (bias) {
#pragma omp parallel for
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) out[(size_t)n * OC + o] = bias[o];
    }
    qs_gemm(mm, 0, 1, N, OC, C, 1.0f, inp, C, weight, C, bias ? 1.0f : 0.0f, out, OC);
}

void matmul_forward_shared_mm(const qs_mm *mm, const float *inp, int N, int C, int n, const qs_linear *lin) {
    // bf16: inp rounded once for all n products
    const qs_bf16 *x16 = NULL;
    if (mm && mm->prec == QS_PREC_BF16 && n > 1 && N > 0 && C > 0) x16 = narrow(4, inp, N, C, C);
    for (int k = 0; k < n; k++) {
        const qs_linear *l = &lin[k];
        if (!x16 || l->OC <= 0) {
            matmul_forward_mm(mm, l->out, inp, l->weight, l->bias, N, C, l->OC);
            continue;
        }
        if (l->bias) {
#pragma omp parallel for
            for (int r = 0; r < N; r++)
                for (int o = 0; o < l->OC; o++) l->out[(size_t)r * l->OC + o] = l->bias[o];
        }
        gemm_bf16_with(mm, 0, 1, N, l->OC, C, 1.0f, inp, C, x16, C, l->weight, C, NULL, 0, l->bias ? 1.0f : 0.0f,
                       l->out, l->OC);
    }
}

void matmul_backward_mm(const qs_mm *mm, float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, int N, int C, int OC) {
    // bf16 with both products: dout rounded once for the two
    const qs_bf16 *d16 = NULL;
    if (mm && mm->prec == QS_PREC_BF16 && dinp && dweight && N > 0 && C > 0 && OC > 0)
        d16 = narrow(4, dout, N, OC, OC);
    // dinp (N,C) += dout (N,OC) @ weight (OC,C)
    if (dinp && d16) gemm_bf16_with(mm, 0, 0, N, C, OC, 1.0f, dout, OC, d16, OC, weight, C, NULL, 0, 1.0f, dinp, C);
    else if (dinp) qs_gemm(mm, 0, 0, N, C, OC, 1.0f, dout, OC, weight, C, 1.0f, dinp, C);
    // dweight (OC,C) += dout^T (OC,N) @ inp (N,C)
    if (dweight && d16) gemm_bf16_with(mm, 1, 0, OC, C, N, 1.0f, dout, OC, d16, OC, inp, C, NULL, 0, 1.0f, dweight, C);
    else if (dweight) qs_gemm(mm, 1, 0, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
    if (dbias) {
#pragma omp parallel for
        for (int o = 0; o < OC; o++) {
            double s = 0;
            for (int n = 0; n < N; n++) s += dout[(size_t)n * OC + o];
            dbias[o] += (float)s;
        }
    }
}

void matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C,
                    int OC) {
    matmul_forward_mm(NULL, out, inp, weight, bias, N, C, OC);
}

void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int C, int OC) {
    matmul_backward_mm(NULL, dinp, dweight, dbias, dout, inp, weight, N, C, OC);
}

// test_matmul.c: the GEMM backends against a naive double-precision product.
// qs_sgemm (the cblas_sgemm contract: transposes, leading dimensions larger
// than the rows, alpha, beta, beta = 0 never reading C, padding of C left
// alone) on OpenBLAS and on oneDNN; bf16 GEMMs against the double product of
// the bf16-rounded operands; the bf16 copy of a parameter buffer is what
// qs_gemm reads for operands inside it; oneDNN creates one primitive per shape.
#include "testutil.h"
#include "core/rng.h"
#include "ops/ops.h"
#include "ops/matmul_dnnl.h"

#include <stdint.h>

static int have_dnnl(void) {
    if (qs_matmul_set_backend("onednn") == QS_OK) return 1;
    assert_non_null(strstr(qstar_last_error(), "without oneDNN"));
    return 0;
}

static const char *backends[] = {"openblas", "onednn"};

// element (i,j) of op(X) for row-major X with leading dimension ld
static double at(const float *X, int trans, int ld, int i, int j) {
    return trans ? X[(size_t)j * ld + i] : X[(size_t)i * ld + j];
}

static float *rand_buf(qs_rng *r, size_t n, float scale) {
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = scale * qs_rng_normal(r);
    return x;
}

typedef struct {
    int ta, tb, M, N, K, lda, ldb, ldc;
    float alpha, beta;
} gcase;

// Checks C (after the call) against the double product; C0 is C before it.
// Per element |err| <= 1e-5 * (|alpha| sum|a b| + |beta c0|) + 1e-7. The
// padding columns of C must be unchanged.
static void check_c(const char *what, const gcase *g, const float *A, const float *B, const float *C0,
                    const float *C) {
    for (int i = 0; i < g->M; i++) {
        for (int j = 0; j < g->N; j++) {
            double s = 0, sa = 0;
            for (int k = 0; k < g->K; k++) {
                double p = at(A, g->ta, g->lda, i, k) * at(B, g->tb, g->ldb, k, j);
                s += p, sa += fabs(p);
            }
            const size_t ij = (size_t)i * g->ldc + j;
            double c0 = g->beta == 0.0f ? 0.0 : (double)C0[ij];
            double want = g->alpha * s + g->beta * c0;
            double tol = 1e-5 * (fabs(g->alpha) * sa + fabs(g->beta * c0)) + 1e-7;
            if (!(fabs(C[ij] - want) <= tol))
                fail_msg("%s ta%d tb%d M%d N%d K%d lda%d ldb%d ldc%d alpha %g beta %g: C[%d,%d] = %.9g, want %.9g",
                         what, g->ta, g->tb, g->M, g->N, g->K, g->lda, g->ldb, g->ldc, g->alpha, g->beta, i, j,
                         C[ij], want);
        }
        for (int j = g->N; j < g->ldc; j++)
            if (memcmp(&C[(size_t)i * g->ldc + j], &C0[(size_t)i * g->ldc + j], sizeof(float)))
                fail_msg("%s: padding C[%d,%d] was written", what, i, j);
    }
}

static void run_sgemm_case(const gcase *g, qs_rng *r) {
    const int ar = g->ta ? g->K : g->M, br = g->tb ? g->N : g->K;
    float *A = rand_buf(r, (size_t)ar * g->lda, 1.0f), *B = rand_buf(r, (size_t)br * g->ldb, 1.0f);
    float *C0 = rand_buf(r, (size_t)g->M * g->ldc, 1.0f), *C = malloc((size_t)g->M * g->ldc * sizeof(float));
    if (g->beta == 0.0f) // beta = 0 must not read C: NaN there must not leak
        for (int i = 0; i < g->M; i++)
            for (int j = 0; j < g->N; j++) C0[(size_t)i * g->ldc + j] = NAN;
    for (int b = 0; b < 2; b++) {
        if (qs_matmul_set_backend(backends[b]) != QS_OK) continue;
        memcpy(C, C0, (size_t)g->M * g->ldc * sizeof(float));
        qs_sgemm(g->ta, g->tb, g->M, g->N, g->K, g->alpha, A, g->lda, B, g->ldb, g->beta, C, g->ldc);
        check_c(backends[b], g, A, B, C0, C);
    }
    free(A), free(B), free(C0), free(C);
}

static void test_sgemm_contract(void **state) {
    (void)state;
    qs_rng r;
    qs_rng_seed(&r, 11);
    const int dims[][3] = {{1, 1, 1}, {1, 7, 5}, {5, 1, 9}, {3, 17, 2}, {33, 65, 31}, {70, 9, 129}, {17, 130, 67}};
    const float ab[][2] = {{1.0f, 0.0f}, {1.0f, 1.0f}, {-0.5f, 0.25f}, {2.5f, 0.0f}};
    int n = 0;
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++)
        for (int t = 0; t < 4; t++)
            for (size_t a = 0; a < sizeof ab / sizeof ab[0]; a++) {
                gcase g = {t & 1, t >> 1, dims[d][0], dims[d][1], dims[d][2], 0, 0, 0, ab[a][0], ab[a][1]};
                const int pad = (int)(d + a) % 3 * 2; // leading dimensions beyond the row length
                g.lda = (g.ta ? g.M : g.K) + pad;
                g.ldb = (g.tb ? g.K : g.N) + pad;
                g.ldc = g.N + (pad ? pad + 1 : 0);
                run_sgemm_case(&g, &r);
                n++;
            }
    // a column block of a wider matrix (GPT-2's fused c_attn): B = W[:, 8:8+N] of a [K, 3N] weight
    gcase g = {0, 0, 9, 8, 12, 12, 24, 8, 1.0f, 1.0f};
    run_sgemm_case(&g, &r);
    print_message("%d sgemm cases on %s\n", n + 1, have_dnnl() ? "openblas and onednn" : "openblas");
    assert_int_equal(qs_matmul_set_backend(NULL), QS_OK);
}

// bf16 GEMM against the double product of the same bf16 values: only the
// fp32 accumulation differs, so the bound is the fp32 one.
static void test_bf16_gemm(void **state) {
    (void)state;
    qs_rng r;
    qs_rng_seed(&r, 12);
    const int dims[][3] = {{1, 5, 7}, {13, 1, 33}, {31, 47, 65}, {64, 96, 200}};
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++)
        for (int t = 0; t < 4; t++) {
            gcase g = {t & 1, t >> 1, dims[d][0], dims[d][1], dims[d][2], 0, 0, 0, 0.75f, t == 3 ? 0.5f : 0.0f};
            g.lda = (g.ta ? g.M : g.K) + (int)d, g.ldb = (g.tb ? g.K : g.N) + 1, g.ldc = g.N + 2;
            const size_t na = (size_t)(g.ta ? g.K : g.M) * g.lda, nb = (size_t)(g.tb ? g.N : g.K) * g.ldb;
            float *A = rand_buf(&r, na, 1.0f), *B = rand_buf(&r, nb, 0.1f);
            float *C0 = rand_buf(&r, (size_t)g.M * g.ldc, 1.0f), *C = malloc((size_t)g.M * g.ldc * sizeof(float));
            qs_bf16 *A16 = malloc(na * sizeof(qs_bf16)), *B16 = malloc(nb * sizeof(qs_bf16));
            qs_bf16_from_f32(A16, A, na);
            qs_bf16_from_f32(B16, B, nb);
            for (size_t i = 0; i < na; i++) A[i] = qs_bf16_widen(A16[i]); // the values the GEMM sees
            for (size_t i = 0; i < nb; i++) B[i] = qs_bf16_widen(B16[i]);
            for (int b = 0; b < 2; b++) {
                if (qs_matmul_set_backend(backends[b]) != QS_OK) continue;
                memcpy(C, C0, (size_t)g.M * g.ldc * sizeof(float));
                qs_gemm_bf16(g.ta, g.tb, g.M, g.N, g.K, g.alpha, A16, g.lda, B16, g.ldb, g.beta, C, g.ldc);
                check_c(backends[b], &g, A, B, C0, C);
            }
            free(A), free(B), free(C0), free(C), free(A16), free(B16);
        }
    assert_int_equal(qs_matmul_set_backend(NULL), QS_OK);
}

// qs_gemm in bf16 rounds its fp32 operands (1 + 2^-10 is 1 in bf16) and reads
// an operand that lies in the parameter buffer from its bf16 copy.
static void test_bf16_mm(void **state) {
    (void)state;
    enum { M = 6, N = 5, K = 40 };
    float act[M * K], params[64 + N * K], C[M * N], Cf[M * N];
    qs_bf16 params16[64 + N * K];
    for (int i = 0; i < M * K; i++) act[i] = 1.0f + 1.0f / 1024.0f;
    for (int i = 0; i < 64 + N * K; i++) params[i] = 1.0f;
    for (int i = 0; i < 64 + N * K; i++) params16[i] = qs_bf16_round(2.0f); // a copy that differs on purpose
    const float *W = params + 64;                                              // weight [N,K] inside params
    qs_mm fp = {QS_PREC_FP32, params, params16, 64 + N * K, 0};
    qs_mm bf = {QS_PREC_BF16, params, params16, 64 + N * K, 0};
    qs_mm bf_nocopy = {QS_PREC_BF16, NULL, NULL, 0, 0};
    for (int b = 0; b < 2; b++) {
        if (qs_matmul_set_backend(backends[b]) != QS_OK) continue;
        qs_gemm(&fp, 0, 1, M, N, K, 1.0f, act, K, W, K, 0.0f, Cf, N);
        for (int i = 0; i < M * N; i++) assert_float_equal(Cf[i], K * (1.0f + 1.0f / 1024.0f), 1e-4);
        qs_gemm(&bf_nocopy, 0, 1, M, N, K, 1.0f, act, K, W, K, 0.0f, C, N); // both operands rounded here
        for (int i = 0; i < M * N; i++) assert_true(C[i] == (float)K);
        qs_gemm(&bf, 0, 1, M, N, K, 1.0f, act, K, W, K, 0.0f, C, N); // W read from the copy (2.0)
        for (int i = 0; i < M * N; i++) assert_true(C[i] == 2.0f * K);
        matmul_forward_mm(&bf, C, act, W, NULL, M, K, N); // the linear layer on the same path
        for (int i = 0; i < M * N; i++) assert_true(C[i] == 2.0f * K);
    }
    // rounding: to nearest, ties to even; NaN stays NaN; overflow to inf
    assert_true(qs_bf16_widen(qs_bf16_round(1.0f + 1.0f / 256.0f)) == 1.0f);            // tie -> even (1.0)
    assert_true(qs_bf16_widen(qs_bf16_round(1.0f + 3.0f / 256.0f)) == 1.0f + 4.0f / 256.0f); // tie -> even
    assert_true(qs_bf16_widen(qs_bf16_round(1.0f + 1.5f / 256.0f)) == 1.0f + 2.0f / 256.0f);
    assert_true(isnan(qs_bf16_widen(qs_bf16_round(NAN))));
    assert_true(isinf(qs_bf16_widen(qs_bf16_round(3.4e38f))));
    assert_int_equal(qs_matmul_set_backend(NULL), QS_OK);
}

// Several linear layers on one input (the input rounded once in bf16) give
// exactly what separate matmul_forward_mm calls give.
static void test_shared_input(void **state) {
    (void)state;
    enum { N = 19, C = 24, O1 = 7, O2 = 33 };
    qs_rng r;
    qs_rng_seed(&r, 13);
    float *params = rand_buf(&r, O1 * C + O2 * C + O1, 0.5f), *x = rand_buf(&r, N * C, 1.0f);
    qs_bf16 *p16 = malloc((O1 * C + O2 * C + O1) * sizeof(qs_bf16));
    qs_bf16_from_f32(p16, params, O1 * C + O2 * C + O1);
    const float *w1 = params, *w2 = params + O1 * C, *b1 = params + O1 * C + O2 * C;
    float a1[N * O1], a2[N * O2], s1[N * O1], s2[N * O2];
    for (int prec = 0; prec < 2; prec++)
        for (int b = 0; b < 2; b++) {
            if (qs_matmul_set_backend(backends[b]) != QS_OK) continue;
            qs_mm mm = {prec ? QS_PREC_BF16 : QS_PREC_FP32, params, p16, O1 * C + O2 * C + O1, 0};
            const qs_linear lin[2] = {{a1, w1, b1, O1}, {a2, w2, NULL, O2}};
            matmul_forward_shared_mm(&mm, x, N, C, 2, lin);
            matmul_forward_mm(&mm, s1, x, w1, b1, N, C, O1);
            matmul_forward_mm(&mm, s2, x, w2, NULL, N, C, O2);
            assert_memory_equal(a1, s1, sizeof a1);
            assert_memory_equal(a2, s2, sizeof a2);
        }
    free(params), free(x), free(p16);
    assert_int_equal(qs_matmul_set_backend(NULL), QS_OK);
}

// oneDNN: X W^T with W a weight of the bf16 copy (qs_mm.gen set) reads W packed into
// the blocked layout, once per generation: the same products as the plain path
// (gen 0), bit for bit, also for shapes that are not whole blocks, after the
// weights change (a new generation), and nothing is kept after qs_gemm_forget.
static void test_packed_weights(void **state) {
    (void)state;
    if (!have_dnnl()) {
        skip();
        return;
    }
    static const int shapes[][3] = {{1, 64, 64}, {5, 33, 24}, {130, 100, 70}, {128, 192, 576}};
    qs_rng r;
    qs_rng_seed(&r, 21);
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
        const int M = shapes[t][0], N = shapes[t][1], K = shapes[t][2];
        const size_t np = 16 + (size_t)N * K;
        float *params = rand_buf(&r, np, 0.5f), *x = rand_buf(&r, (size_t)M * K, 1.0f);
        float *c0 = rand_buf(&r, (size_t)M * N, 1.0f), *c1 = malloc((size_t)M * N * sizeof(float));
        float *want = malloc((size_t)M * N * sizeof(float));
        qs_bf16 *p16 = malloc(np * sizeof(qs_bf16));
        qs_bf16_from_f32(p16, params, np);
        const float *W = params + 16;
        for (int gen = 1; gen <= 2; gen++) {
            if (gen == 2) // the weights change: a new generation packs them again
                for (size_t i = 0; i < np; i++) p16[i] = qs_bf16_round(-0.5f * qs_bf16_widen(p16[i]));
            const qs_mm plain = {QS_PREC_BF16, params, p16, np, 0}, packed = {QS_PREC_BF16, params, p16, np, (uint64_t)gen};
            for (int beta = 0; beta < 2; beta++) {
                memcpy(want, c0, (size_t)M * N * sizeof(float));
                memcpy(c1, c0, (size_t)M * N * sizeof(float));
                qs_gemm(&plain, 0, 1, M, N, K, 0.75f, x, K, W, K, (float)beta, want, N);
                qs_gemm(&packed, 0, 1, M, N, K, 0.75f, x, K, W, K, (float)beta, c1, N);
                assert_memory_equal(c1, want, (size_t)M * N * sizeof(float));
            }
        }
        assert_true(qs_gemm_packed_bytes() >= (size_t)N * K * sizeof(qs_bf16));
        qs_gemm_forget(p16, np * sizeof(qs_bf16));
        assert_int_equal(qs_gemm_packed_bytes(), 0);
        free(params), free(x), free(c0), free(c1), free(want), free(p16);
    }
    assert_int_equal(qs_matmul_set_backend(NULL), QS_OK);
}

// oneDNN: one primitive per (shape, transposes, strides, dtype, alpha, beta).
static void test_primitive_cache(void **state) {
    (void)state;
    if (!have_dnnl()) {
        print_message("SKIP: built without oneDNN; no primitive cache\n");
        skip();
    }
    enum { M = 37, N = 41, K = 43 };
    static float A[M * K], B[K * N], C[M * N];
    static qs_bf16 A16[M * K], B16[K * N];
    const size_t n0 = qs_matmul_primitives();
    qs_sgemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
    assert_int_equal(qs_matmul_primitives(), n0 + 1);
    qs_sgemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N); // same shape: cached
    assert_int_equal(qs_matmul_primitives(), n0 + 1);
    qs_sgemm(0, 0, M, N, K, 1.0f, A, K, B, N, 1.0f, C, N); // beta 1: another primitive
    qs_sgemm(0, 1, M, N - 1, K, 1.0f, A, K, B, K, 0.0f, C, N); // transposed B, N-1
    assert_int_equal(qs_matmul_primitives(), n0 + 3);
    qs_gemm_bf16(0, 0, M, N, K, 1.0f, A16, K, B16, N, 0.0f, C, N); // bf16: another
    qs_gemm_bf16(0, 0, M, N, K, 1.0f, A16, K, B16, N, 0.0f, C, N);
    assert_int_equal(qs_matmul_primitives(), n0 + 4);
    assert_string_equal(qs_matmul_backend(), "onednn");
    qs_matmul_release(); // the cache is rebuilt on demand
    qs_sgemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
    assert_int_equal(qs_matmul_primitives(), n0 + 5);
}

// More shapes than the cache holds: every product stays right, and a shape
// used before the cache was flushed gets a new primitive.
static void test_cache_full(void **state) {
    (void)state;
    if (!have_dnnl()) {
        print_message("SKIP: built without oneDNN; no primitive cache\n");
        skip();
    }
    enum { N = 3, K = 5, MMAX = QS_DNNL_CACHE_MAX + 40 };
    static float A[MMAX * K], B[K * N], C[MMAX * N];
    for (int i = 0; i < MMAX * K; i++) A[i] = (float)(i % 7) - 3.0f;
    for (int i = 0; i < K * N; i++) B[i] = (float)(i % 5) - 2.0f;
    qs_matmul_release();
    const size_t n0 = qs_matmul_primitives();
    for (int M = 1; M <= MMAX; M++) {
        qs_sgemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
        for (int i = 0; i < M; i += 17)
            for (int j = 0; j < N; j++) {
                double s = 0;
                for (int k = 0; k < K; k++) s += (double)A[i * K + k] * B[k * N + j];
                assert_true(C[i * N + j] == (float)s); // small integers: exact
            }
    }
    assert_int_equal(qs_matmul_primitives(), n0 + MMAX);
    qs_sgemm(0, 0, 1, N, K, 1.0f, A, K, B, N, 0.0f, C, N); // M = 1 was dropped with the others
    assert_int_equal(qs_matmul_primitives(), n0 + MMAX + 1);
    qs_sgemm(0, 0, MMAX, N, K, 1.0f, A, K, B, N, 0.0f, C, N); // made after the flush: kept
    assert_int_equal(qs_matmul_primitives(), n0 + MMAX + 1);
    qs_matmul_release();
}

static void test_backend_choice(void **state) {
    (void)state;
    assert_int_equal(qs_matmul_set_backend("cublas"), QS_ERR_ARG);
    assert_non_null(strstr(qstar_last_error(), "cublas"));
    assert_int_equal(qs_matmul_set_backend("openblas"), QS_OK);
    assert_string_equal(qs_matmul_backend(), "openblas");
    assert_string_equal(qstar_omp_wait_policy(), "passive"); // OpenBLAS's threads: no spinning
    if (have_dnnl()) {
        assert_int_equal(qs_matmul_set_backend("onednn"), QS_OK);
        assert_null(qstar_omp_wait_policy()); // oneDNN on OpenMP alone: libgomp's default
        assert_int_equal(qs_matmul_set_backend("openblas"), QS_OK);
    }
    qs_precision p = QS_PREC_FP32;
    assert_int_equal(qs_precision_parse("bf16", &p), QS_OK);
    assert_int_equal(p, QS_PREC_BF16);
    assert_string_equal(qs_precision_name(p), "bf16");
    assert_int_equal(qs_precision_parse("fp16", &p), QS_ERR_ARG);
    assert_non_null(strstr(qstar_last_error(), "fp16"));
    assert_int_equal(qs_matmul_set_backend(NULL), QS_OK);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgemm_contract), cmocka_unit_test(test_bf16_gemm),
        cmocka_unit_test(test_bf16_mm),        cmocka_unit_test(test_shared_input),
        cmocka_unit_test(test_primitive_cache), cmocka_unit_test(test_packed_weights),
        cmocka_unit_test(test_cache_full),     cmocka_unit_test(test_backend_choice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

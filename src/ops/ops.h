// ops.h: the transformer's operations, each a *_forward / *_backward pair on
// flat float buffers (row-major). Backward functions ACCUMULATE into their
// gradient outputs (+=), as in llm.c, unless stated otherwise. Shapes are
// given as [rows, cols]; N counts tokens.
#ifndef QS_OPS_H
#define QS_OPS_H

#include <stddef.h>
#include <stdint.h>
#include "core/qs.h"

// exp(x) for x <= 0, vectorisable (no libm call): 2^n * p(r) with a degree-6
// polynomial on r in [-ln2/2, ln2/2]; relative error ~2e-7. Inputs below -87
// give exp(-87) ~ 1.6e-38 (callers treat that as 0); NaN gives NaN. The integer
// n is read from the bits of the rounding sum and 2^n applied in unsigned
// arithmetic, so no input, NaN included, is undefined behaviour.
static inline __attribute__((always_inline)) float qs_exp_neg(float x) {
    const float xc = x < -87.0f ? -87.0f : x;
    union { float f; uint32_t u; } t = {.f = xc * 1.44269504f + 12582912.0f}; // 1.5*2^23 + round(x/ln2)
    const float n = t.f - 12582912.0f;
    const float r = xc - n * 0.693145752f - n * 1.42860677e-6f;
    union { float f; uint32_t u; } p = {
        .f = 1.0f + r * (1.0f + r * (0.5f + r * (0.166666672f + r * (0.0416666418f + r * (0.00833336077f + r * 0.00139304355f)))))};
    p.u += (t.u - 0x4B400000u) << 23; // scale by 2^n (n >= -126 after the clamp)
    return x == x ? p.f : x;
}

// sigmoid(x) = 1 / (1 + exp(-x)) through qs_exp_neg(-|x|), vectorisable.
static inline __attribute__((always_inline)) float qs_sigmoid(float x) {
    const float e = qs_exp_neg(x < 0 ? x : -x);
    return (x < 0 ? e : 1.0f) / (1.0f + e);
}

// ---- zero.c ---------------------------------------------------------------
// x[0..n) = 0, split over the OpenMP team when large (the backward's gradient buffers).
void qs_zero(float *x, size_t n);

// ---- matmul.c -------------------------------------------------------------
// C[M,N] = alpha * op(A) @ op(B) + beta * C, row-major (cblas_sgemm contract;
// beta = 0 never reads C). Runs on the matmul backend: oneDNN matmul
// primitives (matmul_dnnl.c, cached per shape) when built with oneDNN, else
// OpenBLAS; env QSTAR_MATMUL=openblas|onednn chooses at run time.
void qs_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);

// bf16 (bfloat16, the top 16 bits of an fp32, rounded to nearest even).
typedef uint16_t qs_bf16;
static inline qs_bf16 qs_bf16_round(float f) {
    union { float f; uint32_t u; } v = {f};
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (qs_bf16)((v.u >> 16) | 0x40); // NaN stays NaN
    return (qs_bf16)((v.u + 0x7fffu + ((v.u >> 16) & 1u)) >> 16);
}
static inline float qs_bf16_widen(qs_bf16 h) {
    union { uint32_t u; float f; } v = {(uint32_t)h << 16};
    return v.f;
}
void qs_bf16_from_f32(qs_bf16 *dst, const float *src, size_t n);

// Precision of the large GEMMs (a runtime option of the model, see model.h).
typedef enum { QS_PREC_FP32 = 0, QS_PREC_BF16 = 1 } qs_precision;
const char *qs_precision_name(qs_precision p); // "fp32" | "bf16"
qs_status qs_precision_parse(const char *s, qs_precision *p);

// How qs_gemm runs: precision, and for bf16 the bf16 copy (params16, same
// layout) of a parameter buffer params[0..numel): an operand that lies inside
// params is read from the copy; any other operand (an activation) is rounded
// to bf16 inside the call. NULL = fp32.
typedef struct {
    qs_precision prec;
    const float *params;
    const qs_bf16 *params16;
    size_t numel;
    uint64_t gen; // generation of params16's contents (new at every cast; 0: unknown): on oneDNN
                  // the weights of X W^T products are packed once per generation
} qs_mm;
// Drops what the GEMMs keep for the bf16 weights in p[0..bytes) (their packed
// copies): call before freeing or reusing such a buffer.
void qs_gemm_forget(const void *p, size_t bytes);
// Bytes held by packed copies of bf16 weights.
size_t qs_gemm_packed_bytes(void);

// qs_sgemm with mm's precision: in bf16, op(A) and op(B) are bf16, products
// are accumulated in fp32 and C stays fp32.
void qs_gemm(const qs_mm *mm, int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc);
// The same on bf16 operands.
void qs_gemm_bf16(int transA, int transB, int M, int N, int K, float alpha, const qs_bf16 *A, int lda,
                  const qs_bf16 *B, int ldb, float beta, float *C, int ldc);

// The matmul backend in use: "onednn" or "openblas".
const char *qs_matmul_backend(void);
// Chooses the backend: "openblas", "onednn" (or "dnnl"); NULL or "" = the
// default (env QSTAR_MATMUL, else oneDNN when built with it). Not while GEMMs run.
qs_status qs_matmul_set_backend(const char *name);
// oneDNN primitives created so far (each cached (shape, transposes, strides,
// dtype, alpha, beta, threads) is created once); 0 without oneDNN.
size_t qs_matmul_primitives(void);
// Frees the primitive cache and the calling thread's scratch (also at exit).
// Not while GEMMs run.
void qs_matmul_release(void);
// out[N,OC] = inp[N,C] @ weight[OC,C]^T (+ bias[OC]); bias may be NULL.
void matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C,
                    int OC);
// dinp[N,C] += dout[N,OC] @ weight; dweight[OC,C] += dout^T @ inp;
// dbias[OC] += column sums of dout. Any of dinp/dweight/dbias may be NULL.
void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int C, int OC);
// The same with mm's precision (NULL: fp32).
void matmul_forward_mm(const qs_mm *mm, float *out, const float *inp, const float *weight, const float *bias,
                       int N, int C, int OC);
void matmul_backward_mm(const qs_mm *mm, float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, int N, int C, int OC);
// n linear layers on the same input: lin[k].out[N,OC] = inp[N,C] @ weight^T
// (+ bias), as n matmul_forward_mm calls; in bf16 inp is rounded once for all.
typedef struct {
    float *out;
    const float *weight, *bias; // bias may be NULL
    int OC;
} qs_linear;
void matmul_forward_shared_mm(const qs_mm *mm, const float *inp, int N, int C, int n, const qs_linear *lin);

// ---- rmsnorm.c ------------------------------------------------------------
// out[N,C] = x * rstd * w with rstd[n] = 1/sqrt(mean(x[n]^2) + eps) (saved).
void rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int N, int C, float eps);
// dx[N,C] += ..., dw[C] += ... (dw may be NULL)
void rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x, const float *w,
                      const float *rstd, int N, int C);

// ---- rope.c ---------------------------------------------------------------
// Rotary embedding, Hugging Face rotate-half convention: for j < hd/2 the
// pair (x[j], x[j+hd/2]) is rotated by angle pos * theta^(-2j/hd).
// Tables cos/sin are [max_pos, hd/2], computed in float like llama2.c/HF.
void rope_tables(float *cos_t, float *sin_t, int max_pos, int hd, float theta);
// Inverse frequencies inv[hd/2] as Hugging Face computes them in float32:
// default theta^(-2j/hd); type 1 "linear": divided by factor; type 2 "llama3"
// (_compute_llama3_parameters): wavelengths 2pi/inv longer than
// orig_max/low_ff divided by factor, shorter than orig_max/high_ff kept, the
// band between interpolated with smooth = (orig_max/wavelen - low_ff)/(high_ff - low_ff).
typedef struct { int type; float factor, low_ff, high_ff; int orig_max; } rope_scaling_t;
void rope_inv_freq(float *inv, int hd, float theta, const rope_scaling_t *sc);
// rope_tables with the given inverse frequencies (angle = (float)pos * inv[j]).
void rope_tables_freq(float *cos_t, float *sin_t, int max_pos, int hd, const float *inv);
// In place on x[N, nh, hd] with position pos[n].
void rope_forward(float *x, const int *pos, const float *cos_t, const float *sin_t, int N, int nh, int hd);
// In place on the gradient dx[N, nh, hd] (applies the transposed rotation).
void rope_backward(float *dx, const int *pos, const float *cos_t, const float *sin_t, int N, int nh, int hd);

// ---- swiglu.c -------------------------------------------------------------
// out[n] = silu(gate[n]) * up[n], elementwise over n values.
void swiglu_forward(float *out, const float *gate, const float *up, size_t n);
// dgate += dout * up * silu'(gate); dup += dout * silu(gate)
void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up,
                     size_t n);

// ---- embedding.c ----------------------------------------------------------
// out[N,C] = table[tokens[n]]
void embedding_forward(float *out, const int *tokens, const float *table, int N, int C);
// dtable[tokens[n]] += dout[n]   (deterministic, serial over n)
void embedding_backward(float *dtable, const float *dout, const int *tokens, int N, int C);

// ---- crossentropy.c -------------------------------------------------------
// losses[n] = -log softmax(logits[n])[targets[n]]; targets[n] < 0 => 0 (ignored).
void crossentropy_forward(float *losses, const float *logits, const int *targets, int N, int V);
// dlogits[n] = dloss[n] * (softmax(logits[n]) - onehot(targets[n])), OVERWRITING
// dlogits (may alias logits). Rows with targets[n] < 0 get zeros.
void crossentropy_backward(float *dlogits, const float *logits, const int *targets, const float *dloss,
                           int N, int V);
// Entropy in nats of softmax(logits[V]) (computed in double).
double qs_logits_entropy(const float *logits, int V);

// ---- attention.c ----------------------------------------------------------
// Grouped-query attention over a KV cache with the Quiet-STaR visibility.
// Cache kc/vc: [D, R, T, nkv*hd] (pass-major). The query at (pass d, row r,
// position i) sees pass-0 keys of row r at j <= i with mask[r*T+j] != 0
// (mask NULL = all visible), and for d >= 1 the keys of passes 1..d at (r,i).
// Query head h uses kv head h / (nh/nkv). Scale 1/sqrt(hd).
typedef struct {
    int R, T;          // rows and positions of the cache
    int nh, nkv, hd;   // heads, kv heads, head size
    const int *mask;   // [R,T] or NULL
    int window;        // sliding window W (0 = none): query at position id p sees keys at
                       // position id p' only if p - p' < W; position ids are i + pass
} attn_shape;
// Computes queries for passes d0..d0+nd-1, rows 0..R-1, positions i0..i0+ni-1:
// q, out: [nd, R, ni, nh*hd]; lse: [nd, R, ni, nh] (log-sum-exp of the scaled
// scores, saved so the backward recomputes probabilities instead of storing
// them). A query with no visible key gets out = 0, lse = -INF.
void attention_forward(float *out, float *lse, const float *q, const float *kc, const float *vc,
                       const attn_shape *s, int d0, int nd, int i0, int ni);
// Backward of the same call: dq [nd,R,ni,nh*hd] += ...; dkc, dvc (cache-shaped
// [D,R,T,nkv*hd]) += ... . Parallel over (row, kv head), so no races.
void attention_backward(float *dq, float *dkc, float *dvc, const float *dout, const float *q,
                        const float *kc, const float *vc, const float *out, const float *lse,
                        const attn_shape *s, int d0, int nd, int i0, int ni);

#endif

// ---- GPT-2 ops --------------------------------------------------------------
// ---- layernorm.c ------------------------------------------------------------
// out[N,C] = (x - mean) * rstd * w + b, rstd = 1/sqrt(var + eps) (biased
// variance, as torch); mean[N], rstd[N] saved when non-NULL.
void layernorm_forward(float *out, float *mean, float *rstd, const float *x, const float *w, const float *b,
                       int N, int C, float eps);
// dx[N,C] += ..., dw[C] += ..., db[C] += ... (dw, db may be NULL)
void layernorm_backward(float *dx, float *dw, float *db, const float *dout, const float *x, const float *w,
                        const float *mean, const float *rstd, int N, int C);

// ---- gelu.c -----------------------------------------------------------------
// out[n] = gelu_tanh(x[n]) (GPT-2 "gelu_new"), elementwise over n values.
void gelu_forward(float *out, const float *x, size_t n);
// dx += dout * gelu_tanh'(x)
void gelu_backward(float *dx, const float *dout, const float *x, size_t n);

// ---- conv1d.c ---------------------------------------------------------------
// GPT-2 Conv1D: weight stored [C, ldw] (in, out); columns 0..OC-1 are used, so
// a column block of the fused c_attn weight is passed as (weight + off, 3H).
// out[N,OC] = inp[N,C] @ weight[:, :OC] (+ bias[OC]); bias may be NULL.
void conv1d_forward(float *out, const float *inp, const float *weight, int ldw, const float *bias, int N, int C,
                    int OC);
// dinp[N,C] += dout @ weight^T; dweight[C, :OC] += inp^T @ dout; dbias += column
// sums of dout. Any of dinp/dweight/dbias may be NULL.
void conv1d_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int ldw, int N, int C, int OC);
// The same with mm's precision (NULL: fp32).
void conv1d_forward_mm(const qs_mm *mm, float *out, const float *inp, const float *weight, int ldw,
                       const float *bias, int N, int C, int OC);
void conv1d_backward_mm(const qs_mm *mm, float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, int ldw, int N, int C, int OC);
// x[N,C] += wpe[pos[n]] (learned positions; the backward is embedding_backward
// of the same gradient with pos as the ids). pos NULL: adds row 0 to every
// token (a bias).
void posembed_forward(float *x, const int *pos, const float *wpe, int N, int C);

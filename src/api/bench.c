// bench.c: public API: benchmarks (qstar.h "Benchmarks"): the timed work of
// bench/bench_qstar.c (`make bench`), one model shape or checkpoint, the LM
// step or the Quiet-STaR step, and the GEMM yardstick.
#include "api/api.h"
#include "core/rng.h"
#include "model/transformer.h"
#include "model/workspace.h"
#include "ops/ops.h"
#include "train/adamw.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

QSTAR_API qstar_bench_params qstar_bench_params_default(void) {
    qstar_bench_params p = {.kind = QSTAR_BENCH_LM, .shape = NULL, .model_path = NULL, .B = 1, .T = 64,
                            .n_ahead = 12, .n_talk = 4, .n_passes = 2, .warmup = 1, .iters = 3, .seed = 1234,
                            .precision = QSTAR_FP32, .n_threads = 0};
    return p;
}

static double cpu_now(void) { // CPU seconds of the whole process (all threads)
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static long peak_rss_kb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss; // kilobytes on Linux
}

static long cur_rss_kb(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
        fclose(f);
    }
    return rss * 4; // 4 KiB pages
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, int n) {
    double s[QSTAR_BENCH_MAX_ITERS];
    if (n <= 0) return 0.0;
    if (n > QSTAR_BENCH_MAX_ITERS) n = QSTAR_BENCH_MAX_ITERS;
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_d);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

// Each time field of it[0..n) as its median; loss: the last step's.
static qstar_bench_iter median_iter(const qstar_bench_iter *it, int n) {
    qstar_bench_iter m = {0};
    if (n <= 0) return m;
    double v[QSTAR_BENCH_MAX_ITERS];
#define MED(field) do { for (int k = 0; k < n; k++) v[k] = it[k].field; m.field = median(v, n); } while (0)
    MED(seconds); MED(cpu_seconds); MED(step_s); MED(adamw_s); MED(think_s); MED(talk_s); MED(backward_s);
#undef MED
    m.loss = it[n - 1].loss;
    return m;
}

static qs_status check_params(const qstar_bench_params *p) {
    if (!p) return qs_error(QS_ERR_ARG, "qstar_bench: NULL params");
    if (!p->model_path && !p->shape) return qs_error(QS_ERR_ARG, "qstar_bench: no shape and no model_path");
    if (p->kind != QSTAR_BENCH_LM && p->kind != QSTAR_BENCH_QSTAR)
        return qs_error(QS_ERR_ARG, "qstar_bench: unknown kind %d", (int)p->kind);
    if (p->iters < 1 || p->iters > QSTAR_BENCH_MAX_ITERS || p->warmup < 0 || p->B < 1 || p->T < 2)
        return qs_error(QS_ERR_ARG, "qstar_bench: B %d, T %d, warmup %d, iters %d (need B >= 1, T >= 2, "
                        "warmup >= 0, 1 <= iters <= %d)", p->B, p->T, p->warmup, p->iters, QSTAR_BENCH_MAX_ITERS);
    if (p->precision != QSTAR_FP32 && p->precision != QSTAR_BF16)
        return qs_error(QS_ERR_ARG, "qstar_bench: unknown precision %d", (int)p->precision);
    return QS_OK;
}

static qs_status shape_config(qs_config *c, const char *shape) {
    if (!strcmp(shape, "260k")) {
        qs_config_default_260k(c);
    } else if (!strcmp(shape, "135m")) {
        *c = (qs_config){.arch = QS_ARCH_LLAMA, .dim = 576, .hidden_dim = 1536, .n_layers = 30, .n_heads = 9,
                         .n_kv_heads = 3, .head_dim = 64, .vocab_size = 49152, .max_seq_len = 2048,
                         .rope_theta = 10000.0f, .norm_eps = 1e-5f, .tied_embeddings = 1, .qkv_bias = 0,
                         .bos_id = 1, .eos_id = 2};
    } else {
        return qs_error(QS_ERR_ARG, "qstar_bench: unknown shape '%s' (135m or 260k)", shape);
    }
    return QS_OK;
}

// The model of p: loaded (real weights) or random-init of p->shape, with the
// Quiet-STaR tensors initialised per SPEC when absent (with_qs).
static qs_status bench_model(qs_model *m, const qstar_bench_params *p, int with_qs) {
    int present = 0;
    qs_status st = QS_OK;
    memset(m, 0, sizeof *m);
    if (p->model_path) {
        qs_load_info info = {0};
        QS_TRY(qs_model_load(m, p->model_path, &info));
        present = info.qs_present;
        qs_load_info_free(&info);
        if (with_qs && !m->has_quietstar && (st = qs_model_add_quietstar(m)) != QS_OK) goto fail;
    } else {
        qs_config c;
        QS_TRY(shape_config(&c, p->shape));
        QS_TRY(qs_model_create(m, &c, with_qs));
        qs_model_init_random(m, p->seed);
    }
    if (with_qs && present != 7) {
        qs_qstar_opts o;
        qs_qstar_opts_default(&o);
        if ((st = qs_qstar_init_tensors(m, &o, -1, present, p->seed + 1)) != QS_OK) goto fail;
    }
    m->precision = p->precision == QSTAR_BF16 ? QS_PREC_BF16 : QS_PREC_FP32;
    return QS_OK;
fail:
    qs_model_free(m);
    return qs_error_prefix(st, "qstar_bench: %s", p->model_path ? p->model_path : p->shape);
}

static void random_tokens(int *tok, size_t n, int V, uint64_t seed) {
    qs_rng r;
    qs_rng_seed(&r, seed);
    for (size_t k = 0; k < n; k++) tok[k] = (int)qs_rng_below(&r, (uint64_t)V);
}

// Records step `it` (of warmup + iters) and tells the caller; nonzero: stop.
static int record(const qstar_bench_params *p, qstar_bench_iter *rec, int it, qstar_bench_result *r,
                  qstar_bench_cb cb, void *user) {
    rec->warmup = it < p->warmup;
    rec->index = rec->warmup ? it : it - p->warmup;
    if (!rec->warmup) r->iter[rec->index] = *rec;
    r->loss = rec->loss;
    return cb && cb(user, rec) != 0;
}

static qs_status run_lm(qs_model *m, const qstar_bench_params *p, qstar_bench_cb cb, void *user,
                        qstar_bench_result *r) {
    const int B = p->B, T = p->T;
    qs_workspace *ws = NULL;
    QS_TRY(qs_workspace_create(&ws, &m->cfg, B, T, 1));
    float *grads = qs_calloc(m->layout.numel, sizeof(float), "bench gradients");
    int *tok = qs_malloc((size_t)B * T * sizeof(int), "bench tokens");
    qs_status st = grads && tok ? QS_OK : QS_ERR_NOMEM;
    if (st == QS_OK) random_tokens(tok, (size_t)B * T, m->cfg.vocab_size, p->seed + 7);
    for (int it = 0; st == QS_OK && it < p->warmup + p->iters; it++) {
        qstar_bench_iter rec = {0};
        qs_zero(grads, m->layout.numel);
        double t0 = qs_now(), c0 = cpu_now();
        st = qs_lm_step(m, ws, tok, NULL, B, T, &rec.loss, NULL, grads, 1.0f, NULL);
        rec.seconds = rec.step_s = qs_now() - t0;
        rec.cpu_seconds = cpu_now() - c0;
        if (st == QS_OK && record(p, &rec, it, r, cb, user))
            st = qs_error(QS_ERR_INTERRUPTED, "qstar_bench: stopped by the caller");
    }
    r->work_bytes = qs_workspace_bytes(ws);
    free(grads), free(tok);
    qs_workspace_free(ws);
    return st;
}

static qs_status run_qstar(qs_model *m, const qstar_bench_params *p, qstar_bench_cb cb, void *user,
                           qstar_bench_result *r) {
    const int B = p->B, T = p->T;
    qs_qstar_opts o;
    qs_qstar_opts_default(&o);
    o.n_ahead = p->n_ahead, o.n_talk = p->n_talk, o.n_passes = p->n_passes;
    r->n_ahead = o.n_ahead, r->n_talk = o.n_talk, r->n_passes = o.n_passes;
    qs_qstar *q = NULL;
    QS_TRY(qs_qstar_create(&q, m, &o, B, T));
    qs_adamw opt;
    qs_status st = qs_adamw_create(&opt, m->layout.numel);
    if (st != QS_OK) { qs_qstar_free(q); return st; }
    // the released run's optimizer: lr 1e-6, betas (0.9, 0.999), eps 1e-8, wd 0.001, clip 1.0
    qs_adamw_hparams hp = {.lr = 1e-6f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.001f};
    float *grads = qs_calloc(m->layout.numel, sizeof(float), "bench gradients");
    int *tok = qs_malloc((size_t)B * T * sizeof(int), "bench tokens");
    if (!grads || !tok) st = QS_ERR_NOMEM;
    if (st == QS_OK) random_tokens(tok, (size_t)B * T, m->cfg.vocab_size, p->seed + 7);
    qs_rng rng;
    qs_rng_seed(&rng, p->seed + 11);
    qs_qstar_out res;
    for (int it = 0; st == QS_OK && it < p->warmup + p->iters; it++) {
        qstar_bench_iter rec = {0};
        double t0 = qs_now(), c0 = cpu_now();
        qs_zero(grads, m->layout.numel);
        st = qs_qstar_step(q, m, tok, NULL, NULL, &rng, grads, 1.0f, &res);
        if (st != QS_OK) break;
        double t1 = qs_now();
        hp.grad_scale = qs_clip_factor(qs_grad_norm(grads, m->layout.numel), 1.0f); // clipped in the update
        qs_adamw_step(&opt, &m->layout, m->params, grads, &hp, hp.lr);
        qs_model_touch(m); // bf16: the weights' bf16 copy is refreshed at the next step
        double t2 = qs_now();
        rec.cpu_seconds = cpu_now() - c0;
        rec.seconds = t2 - t0, rec.step_s = t1 - t0, rec.adamw_s = t2 - t1;
        rec.think_s = res.t_think, rec.talk_s = res.t_talk, rec.backward_s = res.t_backward;
        rec.loss = res.loss_lm;
        if (record(p, &rec, it, r, cb, user)) st = qs_error(QS_ERR_INTERRUPTED, "qstar_bench: stopped by the caller");
    }
    r->layers_kept = qs_qstar_layers_kept(q);
    r->work_bytes = qs_qstar_bytes(q);
    free(grads), free(tok);
    qs_adamw_free(&opt);
    qs_qstar_free(q);
    return st;
}

// Model FLOPs of one step, counted as bench/run_bench.py counts them (so
// GFLOP/s compares implementations doing the same job): backward = 2x
// forward, no recompute.
static double bench_flops(const qs_config *c, const qstar_bench_params *p) {
    const double H = c->dim, F = c->hidden_dim, L = c->n_layers, nh = c->n_heads, nkv = c->n_kv_heads;
    const double V = c->vocab_size, hd = (double)(c->dim / c->n_heads), B = p->B, T = p->T;
    const double lin = L * (2 * H * nh * hd + 2 * H * nkv * hd + 3 * H * F); // q,o + k,v + gate,up,down
    if (p->kind == QSTAR_BENCH_LM) {
        const double N = B * T;
        return 3 * (2 * lin * N + L * 4 * nh * hd * B * T * (T + 1) / 2 + 2 * N * H * V);
    }
    const double R = B * p->n_passes, D = p->n_ahead + p->n_talk - 1, nT = p->n_ahead - 3, N = R * T;
    double keys = 0;
    for (int d = 0; d < (int)D; d++) keys += R * (T * (T + 1) / 2 + T * d);
    const double model = 3 * (2 * lin * N * D + L * 4 * nh * hd * keys);
    const double head = ((1 + p->n_talk + 2 * nT) + 2 * (1 + p->n_talk + nT)) * 2 * N * H * V;
    const double mix = p->n_talk * 3 * 2 * N * (3 * H * H + H);
    return model + head + mix;
}

QSTAR_API qs_status qstar_bench_run(const qstar_bench_params *params, qstar_bench_cb on_iter, void *user,
                                    qstar_bench_result *out) {
    if (!out) return qs_error(QS_ERR_ARG, "qstar_bench_run: NULL result");
    memset(out, 0, sizeof *out);
    QS_TRY(check_params(params));
    const qstar_bench_params *p = params;
    qs_api_set_threads(p->n_threads);
    QS_TRY(qs_matmul_set_backend(NULL));
    qs_model m;
    const int quietstar = p->kind == QSTAR_BENCH_QSTAR;
    QS_TRY(bench_model(&m, p, quietstar));
    out->rss_after_load_kb = cur_rss_kb();
    out->n_params = m.layout.numel;
    out->iters = p->iters;
    out->flops = bench_flops(&m.cfg, p);
    qs_status st = quietstar ? run_qstar(&m, p, on_iter, user, out) : run_lm(&m, p, on_iter, user, out);
    qs_model_free(&m);
    out->median = median_iter(out->iter, p->iters);
    out->median_s = out->median.seconds;
    out->peak_rss_kb = peak_rss_kb();
    return st;
}

QSTAR_API qs_status qstar_bench_save_model(const qstar_bench_params *params, const char *dir, size_t *n_params) {
    if (!dir || !dir[0]) return qs_error(QS_ERR_ARG, "qstar_bench_save_model: no directory");
    QS_TRY(check_params(params));
    qs_model m;
    QS_TRY(bench_model(&m, params, 1));
    qs_status st = qs_model_save_dir(&m, dir, NULL, NULL);
    if (n_params) *n_params = m.layout.numel;
    qs_model_free(&m);
    return st;
}

// One timed round: 4 products C = A B^T in precision prec.
static double gemm_round(qs_precision prec, int M, int N, int K, const float *A, const float *B,
                         const qs_bf16 *A16, const qs_bf16 *B16, float *C) {
    double t0 = qs_now();
    for (int rep = 0; rep < 4; rep++) {
        if (prec == QS_PREC_BF16) qs_gemm_bf16(0, 1, M, N, K, 1.0f, A16, K, B16, K, 0.0f, C, N);
        else qs_sgemm(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C, N);
    }
    return qs_now() - t0;
}

QSTAR_API qs_status qstar_bench_sgemm(int M, int N, int K, qstar_precision precision, int n_threads, int iters,
                                      double *gflops, double *median_gflops) {
    if (M < 1 || N < 1 || K < 1 || M > 65536 || N > 65536 || K > 65536 || iters < 1 || !gflops)
        return qs_error(QS_ERR_ARG, "qstar_bench_sgemm: M %d, N %d, K %d must be in [1, 65536], iters %d >= 1",
                        M, N, K, iters);
    if (precision != QSTAR_FP32 && precision != QSTAR_BF16)
        return qs_error(QS_ERR_ARG, "qstar_bench_sgemm: unknown precision %d", (int)precision);
    qs_api_set_threads(n_threads);
    QS_TRY(qs_matmul_set_backend(NULL));
    const qs_precision prec = precision == QSTAR_BF16 ? QS_PREC_BF16 : QS_PREC_FP32;
    const size_t na = (size_t)M * K, nb = (size_t)N * K, nc = (size_t)M * N;
    float *A = qs_malloc(na * sizeof(float), "sgemm A"), *B = qs_malloc(nb * sizeof(float), "sgemm B");
    float *C = qs_malloc(nc * sizeof(float), "sgemm C");
    qs_bf16 *A16 = qs_malloc(na * sizeof(qs_bf16), "sgemm A (bf16)"), *B16 = qs_malloc(nb * sizeof(qs_bf16), "sgemm B (bf16)");
    qs_status st = A && B && C && A16 && B16 ? QS_OK : QS_ERR_NOMEM;
    if (st == QS_OK) {
        qs_rng r;
        qs_rng_seed(&r, 1234);
        for (size_t k = 0; k < na; k++) A[k] = qs_rng_uniform(&r) - 0.5f;
        for (size_t k = 0; k < nb; k++) B[k] = qs_rng_uniform(&r) - 0.5f;
        // bf16: the yardstick is the bf16 GEMM (bf16 inputs, fp32 accumulation)
        const qs_mm mm = {prec, NULL, NULL, 0, 0};
        qs_gemm(&mm, 0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C, N); // warm-up
        qs_bf16_from_f32(A16, A, na);
        qs_bf16_from_f32(B16, B, nb);
        double t[QSTAR_BENCH_MAX_ITERS];
        const int nt = iters < QSTAR_BENCH_MAX_ITERS ? iters : QSTAR_BENCH_MAX_ITERS;
        for (int it = 0; it < iters; it++) {
            double dt = gemm_round(prec, M, N, K, A, B, A16, B16, C);
            gflops[it] = 4 * 2.0 * M * N * K / (dt > 0 ? dt : 1e-9) / 1e9;
            if (it < nt) t[it] = 4 * 2.0 * M * N * K / (gflops[it] * 1e9); // the round time, as the caller sees it
        }
        if (median_gflops) *median_gflops = 4 * 2.0 * M * N * K / median(t, nt) / 1e9;
    }
    free(A), free(B), free(C), free(A16), free(B16);
    return st;
}

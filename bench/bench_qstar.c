// bench_qstar.c: the qstar side of `make bench` (scripts/bench.sh).
//
// One measurement per process, so each run's peak RSS is its own. Results go
// to stdout as ONE line of JSON; progress goes to stderr.
//
//   bench_qstar save  (--shape 135m|260k | --load PATH) --out DIR [--seed S]
//       writes the model (with Quiet-STaR tensors initialised per SPEC) as an
//       HF model directory, so the PyTorch reference uses identical weights.
//   bench_qstar lm    (--shape S | --load PATH) --B 4 --T 256 [--warmup 1 --iters 3]
//       language-model forward+backward (qs_lm_step with gradients).
//   bench_qstar step  (--model DIR | --shape S | --load PATH) --B --T
//                     [--n-ahead 12 --n-talk 4 --n-passes 2 --warmup 1 --iters 3]
//       one full Quiet-STaR training step: qs_qstar_step (thoughts sampled),
//       global grad-norm clip 1.0, qs_adamw_step (paper hyper-parameters).
//   bench_qstar calib [--iters N]
//       sgemm throughput of this machine right now (1024^3 products through
//       qs_sgemm), the yardstick for the GFLOP/s the tables print.
//       Its JSON has the step's own phase timers (qs_qstar_out): think (the
//       D forward passes with thought sampling), talk (losses, rewards and
//       policy: the lm_head work) and backward, and the layers whose
//       activations were kept from forward to backward.
//
// Shapes: 135m = SmolLM-135M (hidden 576, 30 layers, 9 heads, 3 kv heads,
// MLP 1536, vocab 49152, tied, rope_theta 10000); 260k = stories260K (dim 64,
// hidden 172, 5 layers, 8 heads, 4 kv heads, vocab 512, tied).
#include "core/rng.h"
#include "io/model_io.h"
#include "model/model.h"
#include "model/transformer.h"
#include "model/workspace.h"
#include "ops/ops.h"
#include "quietstar/qstar.h"
#include "train/adamw.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
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
    double s[64];
    if (n <= 0) return 0.0;
    if (n > 64) n = 64;
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_d);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

static void die(const char *what) {
    fprintf(stderr, "bench_qstar: %s: %s\n", what, qstar_last_error());
    exit(1);
}

typedef struct {
    const char *mode, *shape, *load, *model, *out;
    qs_precision prec; // --precision fp32|bf16
    int B, T, warmup, iters, n_ahead, n_talk, n_passes;
    unsigned long long seed;
} args_t;

static void usage(void) {
    fprintf(stderr, "usage: bench_qstar save|lm|step|calib [--shape 135m|260k] [--load PATH] [--model DIR]\n"
                    "       [--out DIR] [--B N] [--T N] [--warmup N] [--iters N] [--n-ahead N] [--n-talk N]\n"
                    "       [--n-passes N] [--seed S] [--precision fp32|bf16]\n"
                    "       (env QSTAR_MATMUL=openblas|onednn picks the GEMM backend)\n");
    exit(2);
}

static args_t parse(int argc, char **argv) {
    args_t a = {.B = 1, .T = 64, .warmup = 1, .iters = 3, .n_ahead = 12, .n_talk = 4, .n_passes = 2, .seed = 1234};
    if (argc < 2) usage();
    a.mode = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *k = argv[i];
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(k, "--shape")) a.shape = v;
        else if (!strcmp(k, "--load")) a.load = v;
        else if (!strcmp(k, "--model")) a.model = v;
        else if (!strcmp(k, "--out")) a.out = v;
        else if (!strcmp(k, "--B")) a.B = atoi(v);
        else if (!strcmp(k, "--T")) a.T = atoi(v);
        else if (!strcmp(k, "--warmup")) a.warmup = atoi(v);
        else if (!strcmp(k, "--iters")) a.iters = atoi(v);
        else if (!strcmp(k, "--n-ahead")) a.n_ahead = atoi(v);
        else if (!strcmp(k, "--n-talk")) a.n_talk = atoi(v);
        else if (!strcmp(k, "--n-passes")) a.n_passes = atoi(v);
        else if (!strcmp(k, "--seed")) a.seed = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--precision")) { if (qs_precision_parse(v, &a.prec) != QS_OK) usage(); }
        else usage();
    }
    if (a.iters < 1 || a.iters > 64 || a.warmup < 0 || a.B < 1 || a.T < 2) usage();
    if (qs_matmul_set_backend(NULL) != QS_OK) die("QSTAR_MATMUL");
    return a;
}

static void shape_config(qs_config *c, const char *shape) {
    if (!strcmp(shape, "260k")) {
        qs_config_default_260k(c);
    } else if (!strcmp(shape, "135m")) {
        *c = (qs_config){.arch = QS_ARCH_LLAMA, .dim = 576, .hidden_dim = 1536, .n_layers = 30, .n_heads = 9,
                         .n_kv_heads = 3, .head_dim = 64, .vocab_size = 49152, .max_seq_len = 2048,
                         .rope_theta = 10000.0f, .norm_eps = 1e-5f, .tied_embeddings = 1, .qkv_bias = 0,
                         .bos_id = 1, .eos_id = 2};
    } else {
        fprintf(stderr, "bench_qstar: unknown shape '%s' (135m or 260k)\n", shape);
        exit(2);
    }
}

// Model from --model DIR / --load PATH (real weights) or --shape (random init),
// with the Quiet-STaR tensors initialised per SPEC when absent.
static void get_model(qs_model *m, const args_t *a, int with_qs) {
    int present = 0;
    const char *path = a->model ? a->model : a->load;
    if (path) {
        qs_load_info info = {0};
        if (qs_model_load(m, path, &info) != QS_OK) die(path);
        present = info.qs_present;
        qs_load_info_free(&info);
        if (with_qs && !m->has_quietstar && qs_model_add_quietstar(m) != QS_OK) die("add quietstar");
    } else {
        if (!a->shape) usage();
        qs_config c;
        shape_config(&c, a->shape);
        if (qs_model_create(m, &c, with_qs) != QS_OK) die("model create");
        qs_model_init_random(m, a->seed);
    }
    if (with_qs && present != 7) {
        qs_qstar_opts o;
        qs_qstar_opts_default(&o);
        if (qs_qstar_init_tensors(m, &o, -1, present, a->seed + 1) != QS_OK) die("init quietstar tensors");
    }
    m->precision = a->prec;
    fprintf(stderr, "  matmul %s, precision %s\n", qs_matmul_backend(), qs_precision_name(m->precision));
}

// "precision" and "matmul" fields of the JSON lines
static void print_precision(const qs_model *m) {
    printf("\"precision\":\"%s\",\"matmul\":\"%s\",", qs_precision_name(m->precision), qs_matmul_backend());
}

static void random_tokens(int *tok, size_t n, int V, unsigned long long seed) {
    qs_rng r;
    qs_rng_seed(&r, seed);
    for (size_t k = 0; k < n; k++) tok[k] = (int)qs_rng_below(&r, (uint64_t)V);
}

static void print_times(const char *key, const double *t, int n) {
    printf("\"%s\":[", key);
    for (int k = 0; k < n; k++) printf("%s%.6f", k ? "," : "", t[k]);
    printf("]");
}

static int mode_save(const args_t *a) {
    if (!a->out) usage();
    qs_model m;
    get_model(&m, a, 1);
    if (qs_model_save_dir(&m, a->out, NULL, NULL) != QS_OK) die(a->out);
    printf("{\"mode\":\"save\",\"out\":\"%s\",\"params\":%zu}\n", a->out, m.layout.numel);
    qs_model_free(&m);
    return 0;
}

static int mode_lm(const args_t *a) {
    qs_model m;
    get_model(&m, a, 0);
    const int B = a->B, T = a->T;
    long rss_load = cur_rss_kb();
    qs_workspace *ws;
    if (qs_workspace_create(&ws, &m.cfg, B, T, 1) != QS_OK) die("workspace");
    float *grads = calloc(m.layout.numel, sizeof(float));
    int *tok = malloc((size_t)B * T * sizeof(int));
    if (!grads || !tok) { fprintf(stderr, "out of memory\n"); return 1; }
    random_tokens(tok, (size_t)B * T, m.cfg.vocab_size, a->seed + 7);
    double t[64], cpu[64];
    float loss = 0;
    for (int it = 0; it < a->warmup + a->iters; it++) {
        memset(grads, 0, m.layout.numel * sizeof(float));
        double t0 = now(), c0 = cpu_now();
        if (qs_lm_step(&m, ws, tok, NULL, B, T, &loss, NULL, grads, 1.0f, NULL) != QS_OK) die("lm step");
        double dt = now() - t0;
        if (it >= a->warmup) cpu[it - a->warmup] = cpu_now() - c0;
        fprintf(stderr, "  qstar lm %s %d: %.3f s  loss %.4f\n", it < a->warmup ? "warmup" : "iter",
                it < a->warmup ? it : it - a->warmup, dt, loss);
        if (it >= a->warmup) t[it - a->warmup] = dt;
    }
    double med = median(t, a->iters);
    printf("{\"mode\":\"lm\",\"impl\":\"qstar\",\"B\":%d,\"T\":%d,\"params\":%zu,", B, T, m.layout.numel);
    print_precision(&m);
    print_times("times", t, a->iters);
    printf(",");
    print_times("cpu_times", cpu, a->iters);
    printf(",\"median_s\":%.6f,\"tokens_per_s\":%.3f,\"loss\":%.6f,\"workspace_bytes\":%zu,"
           "\"rss_after_load_kb\":%ld,\"peak_rss_kb\":%ld}\n",
           med, (double)B * T / med, loss, qs_workspace_bytes(ws), rss_load, peak_rss_kb());
    free(grads), free(tok);
    qs_workspace_free(ws);
    qs_model_free(&m);
    return 0;
}

static void step_opts(qs_qstar_opts *o, const args_t *a) {
    qs_qstar_opts_default(o);
    o->n_ahead = a->n_ahead, o->n_talk = a->n_talk, o->n_passes = a->n_passes;
}

static int mode_step(const args_t *a) {
    qs_model m;
    get_model(&m, a, 1);
    long rss_load = cur_rss_kb();
    const int B = a->B, T = a->T;
    qs_qstar_opts o;
    step_opts(&o, a);
    qs_qstar *q;
    if (qs_qstar_create(&q, &m, &o, B, T) != QS_OK) die("qstar create");
    qs_adamw opt;
    if (qs_adamw_create(&opt, m.layout.numel) != QS_OK) die("adamw");
    // the released run's optimizer: lr 1e-6, betas (0.9, 0.999), eps 1e-8, wd 0.001, clip 1.0
    qs_adamw_hparams hp = {.lr = 1e-6f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.001f};
    float *grads = calloc(m.layout.numel, sizeof(float));
    int *tok = malloc((size_t)B * T * sizeof(int));
    if (!grads || !tok) { fprintf(stderr, "out of memory\n"); return 1; }
    random_tokens(tok, (size_t)B * T, m.cfg.vocab_size, a->seed + 7);
    qs_rng rng;
    qs_rng_seed(&rng, a->seed + 11);
    double tt[64], ts[64], to[64], cpu[64], tth[64], tta[64], tbw[64];
    qs_qstar_out res;
    for (int it = 0; it < a->warmup + a->iters; it++) {
        double t0 = now(), c0 = cpu_now();
        memset(grads, 0, m.layout.numel * sizeof(float));
        if (qs_qstar_step(q, &m, tok, NULL, NULL, &rng, grads, 1.0f, &res) != QS_OK) die("qstar step");
        double t1 = now();
        qs_clip_grad_norm(grads, m.layout.numel, 1.0f);
        qs_adamw_step(&opt, &m.layout, m.params, grads, &hp, hp.lr);
        qs_model_touch(&m); // bf16: the weights' bf16 copy is refreshed at the next step
        double t2 = now();
        if (it >= a->warmup) cpu[it - a->warmup] = cpu_now() - c0;
        fprintf(stderr, "  qstar step %s %d: %.3f s (think %.3f, talk %.3f, backward %.3f, clip+adamw %.3f)"
                "  loss %.4f\n", it < a->warmup ? "warmup" : "iter", it < a->warmup ? it : it - a->warmup,
                t2 - t0, res.t_think, res.t_talk, res.t_backward, t2 - t1, res.loss_lm);
        if (it >= a->warmup) {
            int j = it - a->warmup;
            tt[j] = t2 - t0, ts[j] = t1 - t0, to[j] = t2 - t1;
            tth[j] = res.t_think, tta[j] = res.t_talk, tbw[j] = res.t_backward;
        }
    }
    printf("{\"mode\":\"step\",\"impl\":\"qstar\",\"B\":%d,\"T\":%d,\"n_ahead\":%d,\"n_talk\":%d,\"n_passes\":%d,"
           "\"params\":%zu,",
           B, T, o.n_ahead, o.n_talk, o.n_passes, m.layout.numel);
    print_precision(&m);
    print_times("times", tt, a->iters);
    printf(",");
    print_times("cpu_times", cpu, a->iters);
    printf(",\"median_s\":%.6f,\"fwd_bwd_median_s\":%.6f,\"adamw_median_s\":%.6f,\"think_s\":%.6f,"
           "\"talk_s\":%.6f,\"backward_s\":%.6f,\"layers_kept\":%d,\"loss_lm\":%.6f,"
           "\"step_bytes\":%zu,\"rss_after_load_kb\":%ld,\"peak_rss_kb\":%ld}\n",
           median(tt, a->iters), median(ts, a->iters), median(to, a->iters), median(tth, a->iters),
           median(tta, a->iters), median(tbw, a->iters), qs_qstar_layers_kept(q), res.loss_lm, qs_qstar_bytes(q),
           rss_load, peak_rss_kb());
    free(grads), free(tok);
    qs_adamw_free(&opt);
    qs_qstar_free(q);
    qs_model_free(&m);
    return 0;
}

static int mode_calib(const args_t *a) {
    const int n = 1024;
    float *A = malloc(sizeof(float) * n * n), *B = malloc(sizeof(float) * n * n), *C = malloc(sizeof(float) * n * n);
    if (!A || !B || !C) { fprintf(stderr, "out of memory\n"); return 1; }
    qs_rng r;
    qs_rng_seed(&r, a->seed);
    for (size_t k = 0; k < (size_t)n * n; k++) A[k] = qs_rng_uniform(&r) - 0.5f, B[k] = qs_rng_uniform(&r) - 0.5f;
    // --precision bf16: the yardstick is the bf16 GEMM (bf16 inputs, fp32 accumulation)
    const qs_mm mm = {a->prec, NULL, NULL, 0};
    qs_gemm(&mm, 0, 1, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n); // warm-up
    qs_bf16 *A16 = malloc(sizeof(qs_bf16) * n * n), *B16 = malloc(sizeof(qs_bf16) * n * n);
    if (!A16 || !B16) { fprintf(stderr, "out of memory\n"); return 1; }
    qs_bf16_from_f32(A16, A, (size_t)n * n);
    qs_bf16_from_f32(B16, B, (size_t)n * n);
    double t[64];
    for (int it = 0; it < a->iters; it++) {
        double t0 = now();
        for (int rep = 0; rep < 4; rep++) {
            if (a->prec == QS_PREC_BF16) qs_gemm_bf16(0, 1, n, n, n, 1.0f, A16, n, B16, n, 0.0f, C, n);
            else qs_sgemm(0, 1, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
        }
        t[it] = now() - t0;
    }
    free(A16), free(B16);
    double best = t[0];
    for (int it = 1; it < a->iters; it++) best = t[it] < best ? t[it] : best;
    printf("{\"mode\":\"calib\",\"precision\":\"%s\",\"matmul\":\"%s\",\"sgemm_gflops_median\":%.3f,\"sgemm_gflops_best\":%.3f}\n",
           qs_precision_name(a->prec), qs_matmul_backend(), 4 * 2.0 * n * n * n / median(t, a->iters) / 1e9,
           4 * 2.0 * n * n * n / best / 1e9);
    free(A), free(B), free(C);
    return 0;
}

int main(int argc, char **argv) {
    args_t a = parse(argc, argv);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!strcmp(a.mode, "save")) return mode_save(&a);
    if (!strcmp(a.mode, "lm")) return mode_lm(&a);
    if (!strcmp(a.mode, "step")) return mode_step(&a);
    if (!strcmp(a.mode, "calib")) return mode_calib(&a);
    usage();
    return 2;
}

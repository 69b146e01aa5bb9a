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
//   bench_qstar phases (same options as step)
//       attributes the step's time: the D forward passes, the lm_head work
//       (thought sampling, base/talk cross-entropy, policy log-likelihoods),
//       and the backward over all passes, timed separately with the same
//       library calls the step makes (see phases() below).
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
    int B, T, warmup, iters, n_ahead, n_talk, n_passes;
    unsigned long long seed;
} args_t;

static void usage(void) {
    fprintf(stderr, "usage: bench_qstar save|lm|step|phases|calib [--shape 135m|260k] [--load PATH] [--model DIR]\n"
                    "       [--out DIR] [--B N] [--T N] [--warmup N] [--iters N] [--n-ahead N] [--n-talk N]\n"
                    "       [--n-passes N] [--seed S]\n");
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
        else usage();
    }
    if (a.iters < 1 || a.iters > 64 || a.warmup < 0 || a.B < 1 || a.T < 2) usage();
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
    double tt[64], ts[64], to[64], cpu[64];
    qs_qstar_out res;
    for (int it = 0; it < a->warmup + a->iters; it++) {
        double t0 = now(), c0 = cpu_now();
        memset(grads, 0, m.layout.numel * sizeof(float));
        if (qs_qstar_step(q, &m, tok, NULL, NULL, &rng, grads, 1.0f, &res) != QS_OK) die("qstar step");
        double t1 = now();
        qs_clip_grad_norm(grads, m.layout.numel, 1.0f);
        qs_adamw_step(&opt, &m.layout, m.params, grads, &hp, hp.lr);
        double t2 = now();
        if (it >= a->warmup) cpu[it - a->warmup] = cpu_now() - c0;
        fprintf(stderr, "  qstar step %s %d: %.3f s (think %.3f, talk %.3f, backward %.3f, clip+adamw %.3f)"
                "  loss %.4f\n", it < a->warmup ? "warmup" : "iter", it < a->warmup ? it : it - a->warmup,
                t2 - t0, res.t_think, res.t_talk, res.t_backward, t2 - t1, res.loss_lm);
        if (it >= a->warmup) tt[it - a->warmup] = t2 - t0, ts[it - a->warmup] = t1 - t0, to[it - a->warmup] = t2 - t1;
    }
    printf("{\"mode\":\"step\",\"impl\":\"qstar\",\"B\":%d,\"T\":%d,\"n_ahead\":%d,\"n_talk\":%d,\"n_passes\":%d,"
           "\"params\":%zu,",
           B, T, o.n_ahead, o.n_talk, o.n_passes, m.layout.numel);
    print_times("times", tt, a->iters);
    printf(",");
    print_times("cpu_times", cpu, a->iters);
    printf(",\"median_s\":%.6f,\"fwd_bwd_median_s\":%.6f,\"adamw_median_s\":%.6f,\"loss_lm\":%.6f,"
           "\"step_bytes\":%zu,\"rss_after_load_kb\":%ld,\"peak_rss_kb\":%ld}\n",
           median(tt, a->iters), median(ts, a->iters), median(to, a->iters), res.loss_lm, qs_qstar_bytes(q), rss_load,
           peak_rss_kb());
    free(grads), free(tok);
    qs_adamw_free(&opt);
    qs_qstar_free(q);
    qs_model_free(&m);
    return 0;
}

// Time attribution of one step, rebuilt from the calls the step makes
// (src/quietstar/step.c) on a workspace of the same shape:
//   forward   D passes of qs_forward_block (all layers, attention included)
//   lm_head   the step's vocabulary work: n_thought sampling passes (logits +
//             softmax), base + n_talk CE forward/backward and n_thought policy
//             passes (logits + softmax + backward), i.e. 1 + n_talk + 2*n_thought
//             logits products plus (1 + n_talk + n_thought) backward products;
//             measured as its matmuls plus one exp per logit (the softmax)
//   backward  qs_backward_all over all passes
// and, within forward, the attention share measured by running it alone.
static int mode_phases(const args_t *a) {
    qs_model m;
    get_model(&m, a, 1);
    const qs_config *c = &m.cfg;
    const int B = a->B, T = a->T, P = a->n_passes, R = B * P, D = a->n_ahead + a->n_talk - 1;
    const int nT = a->n_ahead - 3, H = c->dim, V = c->vocab_size;
    const size_t RT = (size_t)R * T, slab = RT * H;
    qs_workspace *ws;
    if (qs_workspace_create(&ws, c, R, T, D) != QS_OK) die("workspace");
    float *grads = calloc(m.layout.numel, sizeof(float));
    int *mask = malloc(RT * sizeof(int)), *tok = malloc(RT * sizeof(int));
    if (!grads || !mask || !tok) { fprintf(stderr, "out of memory\n"); return 1; }
    for (size_t k = 0; k < RT; k++) mask[k] = 1;
    random_tokens(tok, RT, V, a->seed + 7);
    ws->mask = mask;
    qs_ptrs g = {0};
    if (qs_ptrs_bind(&g, c, &m.layout, grads) != QS_OK) die("bind");
    double t_fwd[64], t_head[64], t_bwd[64];
    for (int it = 0; it < a->warmup + a->iters; it++) {
        double t0 = now();
        for (int d = 0; d < D; d++) {
            float *x0 = ws->xs + (size_t)d * slab;
            embedding_forward(x0, tok, m.w.embed, (int)RT, H);
            if (qs_forward_block(&m, ws, x0, d, 1, 0, T, ws->h + (size_t)d * slab) != QS_OK) die("forward");
        }
        double t1 = now();
        // vocabulary work: n_fwd logits products (+softmax), n_bwd backward products
        const int n_fwd = 1 + a->n_talk + 2 * nT, n_bwd = 1 + a->n_talk + nT;
        for (int p = 0; p < n_fwd; p++) {
            const float *h = ws->h + (size_t)(p % D) * slab;
            for (size_t n0 = 0; n0 < RT; n0 += (size_t)ws->chunk) {
                int n = (int)QS_MIN((size_t)ws->chunk, RT - n0);
                matmul_forward(ws->logits, h + n0 * H, m.w.lm_head, NULL, n, H, V);
                float *z = ws->logits;
                for (int k = 0; k < n; k++) {
                    float *zr = z + (size_t)k * V, mx = zr[0];
                    for (int v = 1; v < V; v++) mx = zr[v] > mx ? zr[v] : mx;
                    double s = 0;
                    for (int v = 0; v < V; v++) s += expf(zr[v] - mx);
                    for (int v = 0; v < V; v++) zr[v] = (float)(expf(zr[v] - mx) / s) * 1e-6f;
                }
                if (p < n_bwd)
                    matmul_backward(ws->dh + (size_t)(p % D) * slab + n0 * H, g.lm_head, NULL, z, h + n0 * H,
                                    m.w.lm_head, n, H, V);
            }
        }
        double t2 = now();
        for (size_t k = 0; k < (size_t)D * slab; k++) ws->dh[k] = 1e-6f;
        if (qs_backward_all(&m, ws, ws->dh, ws->dx0, grads) != QS_OK) die("backward");
        double t3 = now();
        fprintf(stderr, "  phases %s: forward %.3f s, lm_head %.3f s, backward %.3f s\n",
                it < a->warmup ? "warmup" : "iter", t1 - t0, t2 - t1, t3 - t2);
        if (it >= a->warmup) {
            int j = it - a->warmup;
            t_fwd[j] = t1 - t0, t_head[j] = t2 - t1, t_bwd[j] = t3 - t2;
        }
    }
    printf("{\"mode\":\"phases\",\"B\":%d,\"T\":%d,\"n_ahead\":%d,\"n_talk\":%d,\"n_passes\":%d,"
           "\"forward_s\":%.6f,\"lm_head_s\":%.6f,\"backward_s\":%.6f,\"peak_rss_kb\":%ld}\n",
           B, T, a->n_ahead, a->n_talk, P, median(t_fwd, a->iters), median(t_head, a->iters),
           median(t_bwd, a->iters), peak_rss_kb());
    qs_ptrs_free(&g);
    free(grads), free(mask), free(tok);
    qs_workspace_free(ws);
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
    qs_sgemm(0, 1, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n); // warm-up
    double t[64];
    for (int it = 0; it < a->iters; it++) {
        double t0 = now();
        for (int rep = 0; rep < 4; rep++) qs_sgemm(0, 1, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
        t[it] = now() - t0;
    }
    double best = t[0];
    for (int it = 1; it < a->iters; it++) best = t[it] < best ? t[it] : best;
    printf("{\"mode\":\"calib\",\"sgemm_gflops_median\":%.3f,\"sgemm_gflops_best\":%.3f}\n",
           4 * 2.0 * n * n * n / median(t, a->iters) / 1e9, 4 * 2.0 * n * n * n / best / 1e9);
    free(A), free(B), free(C);
    return 0;
}

int main(int argc, char **argv) {
    args_t a = parse(argc, argv);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!strcmp(a.mode, "save")) return mode_save(&a);
    if (!strcmp(a.mode, "lm")) return mode_lm(&a);
    if (!strcmp(a.mode, "step")) return mode_step(&a);
    if (!strcmp(a.mode, "phases")) return mode_phases(&a);
    if (!strcmp(a.mode, "calib")) return mode_calib(&a);
    usage();
    return 2;
}

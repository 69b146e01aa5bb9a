// bench_qstar.c: the qstar side of `make bench` (scripts/bench.sh).
//
// One measurement per process, so each run's peak RSS is its own. Results go
// to stdout as ONE line of JSON; progress goes to stderr.
//
//   bench_qstar save  (--shape 135m|260k | --load PATH) --out DIR [--seed S]
//       writes the model (with Quiet-STaR tensors initialised per SPEC) as an
//       HF model directory, so the PyTorch reference uses identical weights.
//   bench_qstar lm    (--shape S | --load PATH) --B 4 --T 256 [--warmup 1 --iters 3]
//       language-model forward+backward (qstar_bench_run, QSTAR_BENCH_LM).
//   bench_qstar step  (--model DIR | --shape S | --load PATH) --B --T
//                     [--n-ahead 12 --n-talk 4 --n-passes 2 --warmup 1 --iters 3]
//       one full Quiet-STaR training step (qstar_bench_run, QSTAR_BENCH_QSTAR):
//       thoughts sampled, global grad-norm clip 1.0, AdamW (paper hyper-parameters).
//   bench_qstar calib [--iters N]
//       sgemm throughput of this machine right now (1024^3 products,
//       qstar_bench_sgemm), the yardstick for the GFLOP/s the tables print.
//   The step's JSON has its own phase timers: think (the
//       D forward passes with thought sampling), talk (losses, rewards and
//       policy: the lm_head work) and backward, and the layers whose
//       activations were kept from forward to backward.
//
// Shapes: 135m = SmolLM-135M (hidden 576, 30 layers, 9 heads, 3 kv heads,
// MLP 1536, vocab 49152, tied, rope_theta 10000); 260k = stories260K (dim 64,
// hidden 172, 5 layers, 8 heads, 4 kv heads, vocab 512, tied).
// Only the public API (include/qstar.h): the timed work is libqstar's
// qstar_bench_run / qstar_bench_save_model / qstar_bench_sgemm; this program
// parses the command line and prints. It runs with the OpenMP wait policy
// the qstar CLI chooses (qstar_omp_wait_policy) unless OMP_WAIT_POLICY is set.
#include <qstar.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void die(const char *what) {
    fprintf(stderr, "bench_qstar: %s: %s\n", what, qstar_last_error());
    exit(1);
}

typedef struct {
    const char *mode, *out;
    qstar_bench_params p;
} args_t;

static void usage(void) {
    fprintf(stderr, "usage: bench_qstar save|lm|step|calib [--shape 135m|260k] [--load PATH] [--model DIR]\n"
                    "       [--out DIR] [--B N] [--T N] [--warmup N] [--iters N] [--n-ahead N] [--n-talk N]\n"
                    "       [--n-passes N] [--seed S] [--precision fp32|bf16]\n"
                    "       (env QSTAR_MATMUL=openblas|onednn picks the GEMM backend)\n");
    exit(2);
}

static args_t parse(int argc, char **argv) {
    args_t a = {.p = qstar_bench_params_default()};
    const char *model = NULL, *load = NULL;
    qstar_bench_params *p = &a.p;
    if (argc < 2) usage();
    a.mode = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *k = argv[i];
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(k, "--shape")) p->shape = v;
        else if (!strcmp(k, "--load")) load = v;
        else if (!strcmp(k, "--model")) model = v;
        else if (!strcmp(k, "--out")) a.out = v;
        else if (!strcmp(k, "--B")) p->B = atoi(v);
        else if (!strcmp(k, "--T")) p->T = atoi(v);
        else if (!strcmp(k, "--warmup")) p->warmup = atoi(v);
        else if (!strcmp(k, "--iters")) p->iters = atoi(v);
        else if (!strcmp(k, "--n-ahead")) p->n_ahead = atoi(v);
        else if (!strcmp(k, "--n-talk")) p->n_talk = atoi(v);
        else if (!strcmp(k, "--n-passes")) p->n_passes = atoi(v);
        else if (!strcmp(k, "--seed")) p->seed = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--precision")) { if (qstar_precision_parse(v, &p->precision) != QS_OK) usage(); }
        else usage();
    }
    p->model_path = model ? model : load;
    if (p->iters < 1 || p->iters > QSTAR_BENCH_MAX_ITERS || p->warmup < 0 || p->B < 1 || p->T < 2) usage();
    if (qstar_matmul_backend(NULL) != QS_OK) die("QSTAR_MATMUL");
    return a;
}

// The model comes from --model DIR / --load PATH or --shape (random init).
static void need_model(const args_t *a) {
    if (a->p.model_path) return;
    if (!a->p.shape) usage();
    if (strcmp(a->p.shape, "260k") && strcmp(a->p.shape, "135m")) {
        fprintf(stderr, "bench_qstar: unknown shape '%s' (135m or 260k)\n", a->p.shape);
        exit(2);
    }
}

static const char *backend(void) {
    const char *name = "?";
    qstar_matmul_backend(&name);
    return name;
}

// "precision" and "matmul" fields of the JSON lines
static void print_precision(qstar_precision p) {
    printf("\"precision\":\"%s\",\"matmul\":\"%s\",", qstar_precision_name(p), backend());
}

static void print_times(const char *key, const double *t, int n) {
    printf("\"%s\":[", key);
    for (int k = 0; k < n; k++) printf("%s%.6f", k ? "," : "", t[k]);
    printf("]");
}

static int mode_save(const args_t *a) {
    if (!a->out) usage();
    need_model(a);
    size_t n_params = 0;
    fprintf(stderr, "  matmul %s, precision %s\n", backend(), qstar_precision_name(a->p.precision));
    if (qstar_bench_save_model(&a->p, a->out, &n_params) != QS_OK) die(a->out);
    printf("{\"mode\":\"save\",\"out\":\"%s\",\"params\":%zu}\n", a->out, n_params);
    return 0;
}

static int print_iter(void *user, const qstar_bench_iter *it) {
    const qstar_bench_kind kind = *(const qstar_bench_kind *)user;
    if (kind == QSTAR_BENCH_LM)
        fprintf(stderr, "  qstar lm %s %d: %.3f s  loss %.4f\n", it->warmup ? "warmup" : "iter", it->index,
                it->seconds, it->loss);
    else
        fprintf(stderr, "  qstar step %s %d: %.3f s (think %.3f, talk %.3f, backward %.3f, clip+adamw %.3f)"
                "  loss %.4f\n", it->warmup ? "warmup" : "iter", it->index, it->seconds, it->think_s, it->talk_s,
                it->backward_s, it->adamw_s, it->loss);
    return 0;
}

// Column `field` of the timed steps into v[].
#define COLUMN(v, r, field) for (int k_ = 0; k_ < (r)->iters; k_++) (v)[k_] = (r)->iter[k_].field

static int mode_run(args_t *a, qstar_bench_kind kind) {
    need_model(a);
    a->p.kind = kind;
    qstar_bench_result *r = malloc(sizeof *r);
    if (!r) { fprintf(stderr, "out of memory\n"); return 1; }
    fprintf(stderr, "  matmul %s, precision %s\n", backend(), qstar_precision_name(a->p.precision));
    if (qstar_bench_run(&a->p, print_iter, &kind, r) != QS_OK) die(kind == QSTAR_BENCH_LM ? "lm step" : "qstar step");
    const int B = a->p.B, T = a->p.T, n = r->iters;
    double t[QSTAR_BENCH_MAX_ITERS], cpu[QSTAR_BENCH_MAX_ITERS];
    COLUMN(t, r, seconds);
    COLUMN(cpu, r, cpu_seconds);
    if (kind == QSTAR_BENCH_LM)
        printf("{\"mode\":\"lm\",\"impl\":\"qstar\",\"B\":%d,\"T\":%d,\"params\":%zu,", B, T, r->n_params);
    else
        printf("{\"mode\":\"step\",\"impl\":\"qstar\",\"B\":%d,\"T\":%d,\"n_ahead\":%d,\"n_talk\":%d,\"n_passes\":%d,"
               "\"params\":%zu,", B, T, r->n_ahead, r->n_talk, r->n_passes, r->n_params);
    print_precision(a->p.precision);
    print_times("times", t, n);
    printf(",");
    print_times("cpu_times", cpu, n);
    const qstar_bench_iter *md = &r->median;
    if (kind == QSTAR_BENCH_LM) {
        printf(",\"median_s\":%.6f,\"tokens_per_s\":%.3f,\"loss\":%.6f,\"workspace_bytes\":%zu,"
               "\"rss_after_load_kb\":%ld,\"peak_rss_kb\":%ld}\n",
               r->median_s, (double)B * T / r->median_s, r->loss, r->work_bytes, r->rss_after_load_kb, r->peak_rss_kb);
    } else {
        printf(",\"median_s\":%.6f,\"fwd_bwd_median_s\":%.6f,\"adamw_median_s\":%.6f,\"think_s\":%.6f,"
               "\"talk_s\":%.6f,\"backward_s\":%.6f,\"layers_kept\":%d,\"loss_lm\":%.6f,"
               "\"step_bytes\":%zu,\"rss_after_load_kb\":%ld,\"peak_rss_kb\":%ld}\n",
               r->median_s, md->step_s, md->adamw_s, md->think_s, md->talk_s, md->backward_s, r->layers_kept,
               r->loss, r->work_bytes, r->rss_after_load_kb, r->peak_rss_kb);
    }
    free(r);
    return 0;
}

static int mode_calib(const args_t *a) {
    const int n = 1024, iters = a->p.iters;
    double g[QSTAR_BENCH_MAX_ITERS];
    // --precision bf16: the yardstick is the bf16 GEMM (bf16 inputs, fp32 accumulation)
    double med;
    if (qstar_bench_sgemm(n, n, n, a->p.precision, 0, iters, g, &med) != QS_OK) die("sgemm");
    double best = g[0];
    for (int it = 1; it < iters; it++) best = g[it] > best ? g[it] : best;
    printf("{\"mode\":\"calib\",\"precision\":\"%s\",\"matmul\":\"%s\",\"sgemm_gflops_median\":%.3f,\"sgemm_gflops_best\":%.3f}\n",
           qstar_precision_name(a->p.precision), backend(), med, best);
    return 0;
}

int main(int argc, char **argv) {
    const char *policy = qstar_omp_wait_policy(); // as tools/qstar.c: read when libgomp loads
    if (policy && !getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", policy, 1);
        execv("/proc/self/exe", argv); // returns only on failure: run as is
    }
    args_t a = parse(argc, argv);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!strcmp(a.mode, "save")) return mode_save(&a);
    if (!strcmp(a.mode, "lm")) return mode_run(&a, QSTAR_BENCH_LM);
    if (!strcmp(a.mode, "step")) return mode_run(&a, QSTAR_BENCH_QSTAR);
    if (!strcmp(a.mode, "calib")) return mode_calib(&a);
    usage();
    return 2;
}

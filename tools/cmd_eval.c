// cmd_eval.c: `qstar eval`: mean negative log-likelihood (nats/token) and
// perplexity of a text or JSONL file (--data), the same held-out NLL with and
// without thoughts (--task nll), and the zero-shot GSM8K / CommonsenseQA
// evaluations (--task gsm8k|csqa). Every document starts with BOS; all are
// packed into one token stream that is cut into non-overlapping windows of
// --seq-len tokens (the last one shorter); each window predicts its own next
// tokens (T-1 targets per full window). `--data` and `--task nll` run the
// same library function (qstar_eval_nll); flags and printing over the public
// API only.
#include "cli.h"

#include <math.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: qstar eval --model PATH --data FILE [options]\n\n"
            "  --model PATH         qstar model directory (tokenizer.bin inside) or llama2.c .bin\n"
            "  --tokenizer FILE     llama2.c tokenizer (required for a .bin model)\n"
            "  --data FILE          text (documents separated by blank lines) or JSONL\n"
            "                       (.jsonl/.json/.ndjson); a `qstar prepare` directory: its held-out split\n"
            "  --field NAME         JSONL field holding the document (default \"text\")\n"
            "  --seq-len T          window length (default and maximum: the model's max_seq_len)\n"
            "  --batch B            windows per forward pass (default: about 4096 tokens per batch)\n"
            "  --limit-tokens N     evaluate only the first N tokens of the stream\n"
            "  --precision P        GEMM precision: fp32 or bf16 (bf16 inputs, fp32 accumulation;\n"
            "                       also for --task) (fp32)\n\n"
            "Prints to stdout:\n  nll: X nats/token\n  ppl: X\n  tokens: N   (tokens scored)\n\n"
            "usage: qstar eval --task gsm8k|csqa|nll --model PATH [options]\n\n"
            "  --task gsm8k         GSM8K test set, the paper's zero-shot protocol (docs/algorithm.md):\n"
            "                       \"Q: question\\nA: number\\n\", softmax restricted to digits +\n"
            "                       newline at each answer token; score = product of the true\n"
            "                       tokens' probabilities; accuracy = mean score\n"
            "  --task csqa          CommonsenseQA dev set, same with A-E + newline\n"
            "  --task nll           held-out NLL of --data without and with thoughts (eval mode:\n"
            "                       one thought per position), overall and on the hardest 10%%/20%%\n"
            "                       of tokens by base NLL\n"
            "  --data FILE          default for gsm8k/csqa: $QSTAR_DATA/gsm8k/test.jsonl,\n"
            "                       $QSTAR_DATA/csqa/dev_rand_split.jsonl\n"
            "  --think / --no-think with or without thoughts (default: with, for a Quiet-STaR\n"
            "                       checkpoint; --no-think gives the baseline)\n"
            "  --n-ahead N          thought length incl. start/end (default: the checkpoint's)\n"
            "  --tau-sample X       thought sampling temperature (default: the checkpoint's)\n"
            "  --greedy-thoughts    argmax thought tokens\n"
            "%s"
            "  --think-at STR       (nll) think only where the text so far ends with STR (e.g.\n"
            "                       \"A: \"), and score the next --n-talk tokens from that one\n"
            "                       thought's talk passes (true tokens fed after it), as training\n"
            "                       scores a thought; other tokens get the base prediction\n"
            "  --n-talk K           tokens scored from a --think-at thought (default: the\n"
            "                       checkpoint's n_talk)\n"
            "  --limit N            only the first N examples (gsm8k/csqa)\n"
            "  --seed S             thought sampling seed (default 1234)\n"
            "  --out FILE.json      results as JSON (task, n, accuracy, exact_match, think, n_ahead,\n"
            "                       per-example scores)\n"
            "  --tokens-out FILE    (nll) one JSON line per scored token: id, text, base and think\n"
            "                       NLL, base entropy, whether it thought, mixing weight, thought\n"
            "                       tokens and text\n"
            "  --force              replace an --out / --tokens-out file that holds a model,\n"
            "                       checkpoint or log (refused otherwise; checked before any work)\n"
            "With thoughts, --task nll also prints the thought gain (base - think NLL) with its\n"
            "95%% interval (t-interval over windows of each window's mean per-token gain) and\n"
            "says whether it is within noise (the interval contains 0).\n", cli_think_when_help);
}

// Estimated seconds left after `done` of `total` units in `elapsed` seconds.
static double eta(double elapsed, size_t done, size_t total) {
    return done ? elapsed / (double)done * (double)(total - (done < total ? done : total)) : 0.0;
}

typedef struct {
    double t0;
    int tty, seq_len, batch;
    int with_nll;         // --data: the running NLL and tok/s in the line
} progress_ctx;

// The first call (no window yet) says what a prepared directory gives.
static void data_line(const char *path, const qstar_eval_progress *p) {
    if (p->prepared)
        fprintf(stderr, "%s: a prepared directory: scoring its %s split (%zu documents, %zu tokens)\n", path,
                p->heldout ? "held-out" : "training", p->n_docs, p->n_stream_tokens);
}

static const char *progress_path;

static int on_progress(void *ud, const qstar_eval_progress *p) {
    const progress_ctx *c = ud;
    if (p->windows_done == 0) {
        data_line(progress_path, p);
        return 0;
    }
    const size_t done = p->windows_done, nw = p->windows_total;
    const double el = cli_wall_seconds() - c->t0, nll = p->n_tokens ? p->nll_base : 0.0;
    if (c->with_nll && c->tty)
        fprintf(stderr, "\reval: window %zu/%zu  nll %.4f  %.0f tok/s  ETA %.0fs   ", done, nw, nll,
                (double)done * c->seq_len / (el > 1e-9 ? el : 1e-9), eta(el, done, nw));
    else if (c->with_nll && (done == nw || (done / (size_t)c->batch) % 50 == 0))
        fprintf(stderr, "eval: window %zu/%zu  nll %.4f  ETA %.0fs\n", done, nw, nll, eta(el, done, nw));
    else if (!c->with_nll && c->tty)
        fprintf(stderr, "\reval: window %zu/%zu  %.1f s  ETA %.0fs   ", done, nw, el, eta(el, done, nw));
    else if (!c->with_nll && (done == nw || done % 50 == 0))
        fprintf(stderr, "eval: window %zu/%zu  %.1f s  ETA %.0fs\n", done, nw, el, eta(el, done, nw));
    return 0;
}

// Window length and batch as qstar eval has always chosen them; 2 (printed) when --seq-len is too long.
static int window_settings(const qstar_model *m, int think, long *T, long *B) {
    qstar_config cfg;
    if (qstar_model_config(m, &cfg) != QS_OK) return cli_fail("eval");
    if (*T == 0) *T = cfg.max_seq_len;
    if (*T > cfg.max_seq_len)
        return cli_usage_error("eval", "--seq-len %ld exceeds the model's max_seq_len %d", *T, cfg.max_seq_len);
    if (*B == 0) *B = (think ? 1024 : 4096) / *T > 1 ? (think ? 1024 : 4096) / *T : 1;
    return 0;
}

// Runs qstar_eval_nll with the progress line; returns the exit code.
static int run_nll(qstar_model *m, qstar_eval_params *ep, int with_nll, qstar_eval_result *r) {
    progress_ctx pc = {.t0 = cli_wall_seconds(), .tty = cli_is_tty(), .seq_len = ep->seq_len, .batch = ep->batch,
                       .with_nll = with_nll};
    progress_path = ep->data_path;
    ep->progress = on_progress, ep->progress_user = &pc;
    qs_status st = qstar_eval_nll(m, ep, r);
    if (pc.tty) fprintf(stderr, "\n");
    return st == QS_OK ? 0 : cli_fail("eval");
}

static int eval_task(int argc, char **argv);

int cmd_eval(int argc, char **argv) {
    const char *C = "eval";
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--task")) return eval_task(argc, argv);
    const char *model_path = NULL, *tok_path = NULL, *precision = NULL;
    long T = 0, B = 0, limit = 0;
    qstar_eval_params ep = qstar_eval_params_default();
    for (int i = 1; i < argc; i++) {
        int r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if ((r = cli_str(argc, argv, &i, "--model", &model_path)) ||
            (r = cli_str(argc, argv, &i, "--tokenizer", &tok_path)) ||
            (r = cli_str(argc, argv, &i, "--data", &ep.data_path)) ||
            (r = cli_str(argc, argv, &i, "--field", &ep.data_field)) ||
            (r = cli_str(argc, argv, &i, "--precision", &precision)) ||
            (r = cli_int(argc, argv, &i, "--seq-len", &T, 2, 1L << 24)) ||
            (r = cli_int(argc, argv, &i, "--batch", &B, 1, 1L << 16)) ||
            (r = cli_int(argc, argv, &i, "--limit-tokens", &limit, 1, 0x7fffffffffffffffL))) {
            if (r < 0) return 2;
            continue;
        }
        return cli_usage_error(C, "unknown option '%s'", argv[i]);
    }
    if (!model_path) return cli_usage_error(C, "--model is required");
    if (!ep.data_path) return cli_usage_error(C, "--data is required");
    if (cli_precision_flag(C, precision, &ep.precision)) return 2;
    ep.think = 0, ep.limit_tokens = limit;
    qstar_model_params mp = qstar_model_params_default();
    mp.tokenizer_path = tok_path;
    qstar_model *m;
    if (qstar_model_load(model_path, &mp, &m) != QS_OK) return cli_fail(C);
    int rc = window_settings(m, 0, &T, &B);
    ep.seq_len = (int)T, ep.batch = (int)B;
    qstar_eval_result r;
    if (rc == 0 && (rc = run_nll(m, &ep, 1, &r)) == 0) {
        printf("nll: %.4f nats/token\nppl: %.4f\ntokens: %ld\n", r.nll_base, exp(r.nll_base), r.n_tokens);
        cli_print_backend(ep.precision); // after the run's own lines (errors stay one line)
    }
    qstar_model_free(m);
    return rc;
}

// ---------------------------------------------------------------------------
// --task gsm8k | csqa | nll

typedef struct {
    const char *model, *tokenizer, *data, *task, *out, *tokens_out, *field, *precision;
    long limit, seed, n_ahead, T, B, limit_tokens;
    double tau_sample;
    int think, greedy, force, when_given, is_nll;
    float min_entropy;
    int random_thoughts;
    const char *think_at;
    long n_talk;
    qstar_precision prec;
} task_args;

static int parse_task_flags(int argc, char **argv, task_args *a) {
    for (int i = 1; i < argc; i++) {
        int r;
        if (!strcmp(argv[i], "--random-thoughts")) { a->random_thoughts = 1, a->when_given = 1; continue; }
        if ((r = cli_think_when(argc, argv, &i, &a->min_entropy))) {
            if (r < 0) return 2;
            a->when_given = 1;
            continue;
        }
        if (!strcmp(argv[i], "--think")) { a->think = 1; continue; }
        if (!strcmp(argv[i], "--force")) { a->force = 1; continue; }
        if (!strcmp(argv[i], "--no-think")) { a->think = 0; continue; }
        if (!strcmp(argv[i], "--greedy-thoughts")) { a->greedy = 1; continue; }
        if ((r = cli_str(argc, argv, &i, "--model", &a->model)) ||
            (r = cli_str(argc, argv, &i, "--tokenizer", &a->tokenizer)) ||
            (r = cli_str(argc, argv, &i, "--data", &a->data)) ||
            (r = cli_str(argc, argv, &i, "--task", &a->task)) ||
            (r = cli_str(argc, argv, &i, "--out", &a->out)) ||
            (r = cli_str(argc, argv, &i, "--tokens-out", &a->tokens_out)) ||
            (r = cli_str(argc, argv, &i, "--precision", &a->precision)) ||
            (r = cli_str(argc, argv, &i, "--field", &a->field)) ||
            (r = cli_str(argc, argv, &i, "--think-at", &a->think_at)) ||
            (r = cli_int(argc, argv, &i, "--n-talk", &a->n_talk, 1, 64)) ||
            (r = cli_int(argc, argv, &i, "--limit", &a->limit, 1, 0x7fffffffffffffffL)) ||
            (r = cli_int(argc, argv, &i, "--seed", &a->seed, 0, 0x7fffffffffffffffL)) ||
            (r = cli_int(argc, argv, &i, "--n-ahead", &a->n_ahead, 3, 256)) ||
            (r = cli_float(argc, argv, &i, "--tau-sample", &a->tau_sample, 1e-6, 1e6)) ||
            (r = cli_int(argc, argv, &i, "--seq-len", &a->T, 3, 1L << 24)) ||
            (r = cli_int(argc, argv, &i, "--batch", &a->B, 1, 1L << 16)) ||
            (r = cli_int(argc, argv, &i, "--limit-tokens", &a->limit_tokens, 1, 0x7fffffffffffffffL))) {
            if (r < 0) return 2;
            continue;
        }
        return cli_usage_error("eval", "unknown option '%s'", argv[i]);
    }
    return -1;
}

// Flag combinations; returns -1 to go on, else the exit code (2: usage).
static int check_task_flags(task_args *a) {
    const char *C = "eval";
    if (!strcmp(a->task, "nll")) a->is_nll = 1;
    else if (strcmp(a->task, "gsm8k") && strcmp(a->task, "csqa"))
        return cli_usage_error(C, "--task expects gsm8k, csqa or nll, got '%s'", a->task);
    if (!a->model) return cli_usage_error(C, "--model is required");
    if (cli_precision_flag(C, a->precision, &a->prec)) return 2;
    if (a->is_nll && !a->data) return cli_usage_error(C, "--task nll needs --data FILE");
    if (!a->is_nll && (a->tokens_out || a->T || a->B || a->limit_tokens || a->field))
        return cli_usage_error(C, "--tokens-out, --seq-len, --batch, --limit-tokens and --field are for --task nll");
    if (a->is_nll && a->limit) return cli_usage_error(C, "--limit is for gsm8k/csqa (use --limit-tokens with nll)");
    if (a->think_at && !a->think_at[0]) return cli_usage_error(C, "--think-at needs a non-empty text");
    if (a->n_talk && !a->think_at) return cli_usage_error(C, "--n-talk is for --think-at");
    if (a->think_at && a->min_entropy > -INFINITY) return cli_usage_error(C, "--think-at and --think-when exclude each other");
    if (a->think_at) a->when_given = 1;
    if (!a->is_nll && a->when_given)
        return cli_usage_error(C, "--think-when, --think-at and --random-thoughts are for --task nll");
    if (a->think == 0 && a->when_given)
        return cli_usage_error(C, "--think-when, --think-at and --random-thoughts contradict --no-think");
    if (a->think == 0 && (a->n_ahead || a->tau_sample > 0 || a->greedy))
        return cli_usage_error(C, "thought options (--n-ahead, --tau-sample, --greedy-thoughts) contradict --no-think");
    return -1;
}

// Whether the flags fit the model; prints why not (exit code 1) or returns 0. *think: resolved.
static int check_task_model(const qstar_model *m, const task_args *a, int *think) {
    qstar_config cfg;
    if (qstar_model_config(m, &cfg) != QS_OK) return cli_fail("eval");
    if (a->think == 1 && !cfg.has_quietstar) {
        fprintf(stderr, "qstar eval: --think needs a Quiet-STaR checkpoint, but %s has no (complete) Quiet-STaR tensors\n",
                a->model);
        return 1;
    }
    *think = a->think < 0 ? cfg.has_quietstar : a->think;
    if (!*think && (a->n_ahead || a->tau_sample > 0 || a->greedy)) {
        fprintf(stderr, "qstar eval: %s has no Quiet-STaR tensors: thought options need a Quiet-STaR checkpoint\n",
                a->model);
        return 1;
    }
    if (!*think && a->when_given) {
        fprintf(stderr, "qstar eval: %s has no Quiet-STaR tensors: --think-when/--think-at/--random-thoughts need a Quiet-STaR "
                        "checkpoint\n", a->model);
        return 1;
    }
    return 0;
}

static void print_nll(const task_args *a, const qstar_eval_result *s) {
    const int think = s->think;
    printf("tokens: %ld   windows of %d   thoughts: %s", s->n_tokens, s->seq_len, think ? "on" : "off");
    if (think)
        printf(" (n_ahead %d, n_thought %d, %s)", s->n_ahead, s->n_ahead - 3,
               a->think_at ? "one thought after each --think-at text" : "one thought per position");
    // gain = base - think: positive when the thoughts help (the same sign in train, viz and the demo)
    printf("\n%-14s %10s %10s %10s\n", "NLL (nats)", "base", "think", "gain");
    const double rows[3][2] = {{s->nll_base, s->nll_think}, {s->hard20_base, s->hard20_think},
                               {s->hard10_base, s->hard10_think}};
    const char *names[3] = {"all tokens", "hardest 20%", "hardest 10%"};
    for (int k = 0; k < 3; k++) {
        if (think) printf("%-14s %10.4f %10.4f %+10.4f\n", names[k], rows[k][0], rows[k][1], rows[k][0] - rows[k][1]);
        else printf("%-14s %10.4f %10s %10s\n", names[k], rows[k][0], "-", "-");
    }
    if (!think) return;
    printf("mean mixing weight: %.4f\n", s->mix_mean);
    char nt[32] = "n_talk (the checkpoint's)";
    if (a->n_talk) snprintf(nt, sizeof nt, "%ld", a->n_talk);
    if (a->think_at)
        printf("thinking: %s after each \"%s\", the next %s tokens from its talk passes; %.1f%% of tokens "
               "scored after a thought\n", a->random_thoughts ? "random thought tokens" : "a sampled thought",
               a->think_at, nt, 100.0 * s->think_frac);
    else if (a->when_given)
        printf("thinking: %s%s, thoughts at %.1f%% of tokens\n",
               a->random_thoughts ? "random thought tokens" : "sampled thoughts",
               a->min_entropy > -INFINITY ? " where base entropy > threshold" : "", 100.0 * s->think_frac);
    printf("thought gain (base - think): %+.4f nats/token, 95%% interval [%+.4f, %+.4f] over %ld windows\n", s->gain,
           s->gain - s->gain_ci95, s->gain + s->gain_ci95, s->gain_windows);
    if (!isfinite(s->gain_ci95)) printf("thought gain: too few windows for an interval\n");
    else if (fabs(s->gain) <= s->gain_ci95) printf("thought gain: within noise (the 95%% interval contains 0)\n");
    else printf("thought gain: %s beyond noise (the 95%% interval excludes 0)\n", s->gain > 0 ? "positive," : "negative,");
}

static qstar_eval_params nll_params(const task_args *a) {
    qstar_eval_params ep = qstar_eval_params_default();
    ep.data_path = a->data, ep.data_field = a->field, ep.limit_tokens = a->limit_tokens;
    ep.think = a->think, ep.n_ahead = (int)a->n_ahead, ep.tau_sample = (float)a->tau_sample;
    ep.greedy_thoughts = a->greedy, ep.seed = (uint64_t)a->seed, ep.precision = a->prec;
    ep.think_min_entropy = a->min_entropy, ep.random_thoughts = a->random_thoughts;
    ep.think_at = a->think_at, ep.n_talk = (int)a->n_talk;
    ep.out_path = a->out, ep.tokens_path = a->tokens_out, ep.force = a->force;
    return ep;
}

static qstar_task_params task_params(const task_args *a) {
    qstar_task_params tp = qstar_task_params_default();
    tp.task = a->task, tp.data_path = a->data, tp.limit = a->limit, tp.think = a->think;
    tp.n_ahead = (int)a->n_ahead, tp.tau_sample = (float)a->tau_sample, tp.greedy_thoughts = a->greedy;
    tp.seed = (uint64_t)a->seed, tp.precision = a->prec, tp.out_path = a->out, tp.force = a->force;
    return tp;
}

static int run_task_nll(qstar_model *m, const task_args *a, int think) {
    qstar_eval_params ep = nll_params(a);
    ep.think = think;
    long T = a->T, B = a->B;
    int rc = window_settings(m, think, &T, &B);
    if (rc) return rc;
    ep.seq_len = (int)T, ep.batch = (int)B;
    qstar_eval_result r;
    if ((rc = run_nll(m, &ep, 0, &r)) == 0) print_nll(a, &r);
    return rc;
}

typedef struct {
    const task_args *a;
    double t0, sum_score;
    long total, n, n_exact;
    int tty;
} task_progress;

static int on_example(void *ud, long index, double score, int exact) {
    task_progress *c = ud;
    c->n = index + 1, c->sum_score += score, c->n_exact += exact != 0;
    const double el = cli_wall_seconds() - c->t0;
    const long n = c->n;
    if (c->tty)
        fprintf(stderr, "\reval %s: %ld/%ld  paper score %.4f  exact %.4f  %.1f s  ETA %.0fs   ", c->a->task, n,
                c->total, c->sum_score / n, (double)c->n_exact / n, el, eta(el, (size_t)n, (size_t)c->total));
    else if (n % 100 == 0 || n == c->total)
        fprintf(stderr, "eval %s: %ld/%ld  paper score %.4f  exact %.4f  %.1f s  ETA %.0fs\n", c->a->task, n, c->total,
                c->sum_score / n, (double)c->n_exact / n, el, eta(el, (size_t)n, (size_t)c->total));
    return 0;
}

static int run_zero_shot(qstar_model *m, const task_args *a) {
    qstar_task_params tp = task_params(a);
    task_progress pc = {.a = a, .t0 = cli_wall_seconds(), .tty = cli_is_tty()};
    if (qstar_task_count(&tp, &pc.total) != QS_OK) return cli_fail("eval");
    qstar_task_result r;
    qs_status st = qstar_eval_task(m, &tp, on_example, &pc, &r);
    if (pc.tty) fprintf(stderr, "\n");
    if (st != QS_OK) return cli_fail("eval");
    const double secs = cli_wall_seconds() - pc.t0;
    qstar_config cfg;
    qstar_model_config(m, &cfg);
    printf("task: %s   examples: %ld   thoughts: %s", a->task, r.n, r.think ? "on" : "off");
    if (r.think) printf(" (n_ahead %d, n_thought %d)", r.n_ahead, r.n_ahead - 3);
    // the paper's metric multiplies the answer tokens' restricted probabilities (CSQA: letter and
    // newline), so it is far below an accuracy: printed beside what a uniform guess would score
    printf("\npaper score (mean product of the restricted answer-token probabilities, the paper's metric): %.4f "
           "(uniform chance %.4f)\n", r.accuracy, r.accuracy_chance);
    printf("%s probability (restricted, first answer token alone): %.4f (uniform chance %.4f)\n",
           strcmp(a->task, "csqa") ? "first-digit" : "letter-only", r.first_token_prob, r.first_token_chance);
    printf("exact match (restricted argmax right at every answer token): %.4f\n", r.exact_match);
    if (r.truncated)
        printf("truncated prompts: %ld (question cut from the front to %d tokens)\n", r.truncated, cfg.max_seq_len);
    if (r.off_set) printf("answer tokens outside the valid set: %ld\n", r.off_set);
    fprintf(stderr, "eval %s: %.1f s (%.1f examples/s)\n", a->task, secs, r.n / (secs > 1e-9 ? secs : 1e-9));
    return 0;
}

static int eval_task(int argc, char **argv) {
    task_args a = {.seed = 1234, .think = -1, .min_entropy = -INFINITY};
    int rc = parse_task_flags(argc, argv, &a);
    if (rc >= 0) return rc;
    if ((rc = check_task_flags(&a)) >= 0) return rc;
    // settings and outputs are checked before any work: a bad --out must not cost the whole evaluation
    qstar_eval_params ep = nll_params(&a);
    qstar_task_params tp = task_params(&a);
    if ((a.is_nll ? qstar_eval_check(&ep) : qstar_task_check(&tp)) != QS_OK) return cli_fail("eval");
    qstar_model_params mp = qstar_model_params_default();
    mp.tokenizer_path = a.tokenizer;
    qstar_model *m;
    if (qstar_model_load(a.model, &mp, &m) != QS_OK) return cli_fail("eval");
    int think = 0;
    if ((rc = check_task_model(m, &a, &think)) == 0) rc = a.is_nll ? run_task_nll(m, &a, think) : run_zero_shot(m, &a);
    if (rc == 0) cli_print_backend(a.prec); // after the run's own lines (errors stay one line)
    qstar_model_free(m);
    return rc;
}

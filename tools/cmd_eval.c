// cmd_eval.c: `qstar eval`: mean negative log-likelihood (nats/token) and
// perplexity of a text or JSONL file. Every document starts with BOS; all are
// packed into one token stream that is cut into non-overlapping windows of
// --seq-len tokens (the last one shorter); each window predicts its own next
// tokens (T-1 targets per full window).
#include "data/shards.h"
#include "cli_internal.h"
#include "io/outpath.h"
#include "data/dataset.h"
#include "io/model_io.h"
#include "model/transformer.h"
#include "model/workspace.h"
#include "tokenizer/tokenizer.h"
#include "quietstar/evaltask.h"

#include <cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <omp.h>

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

// The held-out split of a `qstar prepare` directory (mapped), ids checked
// against the model's vocabulary. Returns 0, or prints why and returns 1.
static int load_prepared(const char *C, const char *path, int vocab, qs_dataset *ds, qs_token_stream *s) {
    if (qs_shards_load(ds, path, 0) != QS_OK) return cli_fail(C);
    *s = ds->val.n_tokens ? ds->val : ds->train;
    fprintf(stderr, "%s: a prepared directory: scoring its %s split (%zu documents, %zu tokens)\n", path,
            ds->val.n_tokens ? "held-out" : "training", s->n_docs, s->n_tokens);
    for (size_t i = 0; i < s->n_tokens; i++)
        if (qs_stream_token(s, i) >= vocab) {
            fprintf(stderr, "qstar %s: %s: token id %d at %zu is outside the model's vocabulary (%d)\n", C, path,
                    qs_stream_token(s, i), i, vocab);
            return 1;
        }
    return 0;
}

// The whole of a text/JSONL file as one token stream (no held-out split),
// cut to `limit` tokens when limit > 0; a `qstar prepare` directory: its
// held-out split. Returns 0, or prints why and returns 1.
static int load_stream(const char *C, const char *path, const qs_tokenizer *tok, const char *field, long limit,
                       int vocab, qs_dataset *ds, qs_token_stream *s) {
    if (qs_shards_is_dir(path)) {
        if (load_prepared(C, path, vocab, ds, s)) return 1;
        if (limit > 0 && (size_t)limit < s->n_tokens) s->n_tokens = (size_t)limit;
        return 0;
    }
    qs_dataset_opts dopt = qs_dataset_opts_default();
    dopt.val_frac = 0.0; // everything in one stream
    dopt.field = field;
    if (field) dopt.format = QS_DATA_JSONL;
    if (qs_dataset_load(ds, path, tok, &dopt) != QS_OK) return cli_fail(C);
    *s = ds->train;
    if (limit > 0 && (size_t)limit < s->n_tokens) s->n_tokens = (size_t)limit;
    return 0;
}

// Estimated seconds left after `done` of `total` units in `elapsed` seconds.
static double eta(double elapsed, size_t done, size_t total) {
    return done ? elapsed / (double)done * (double)(total - QS_MIN(done, total)) : 0.0;
}

static int eval_task(int argc, char **argv);

int cmd_eval(int argc, char **argv) {
    const char *C = "eval";
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--task")) return eval_task(argc, argv);
    const char *model_path = NULL, *tok_path = NULL, *data_path = NULL, *field = NULL, *precision = NULL;
    long T = 0, B = 0, limit = 0;
    for (int i = 1; i < argc; i++) {
        int r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if ((r = cli_str(argc, argv, &i, "--model", &model_path)) ||
            (r = cli_str(argc, argv, &i, "--tokenizer", &tok_path)) ||
            (r = cli_str(argc, argv, &i, "--data", &data_path)) ||
            (r = cli_str(argc, argv, &i, "--field", &field)) ||
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
    if (!data_path) return cli_usage_error(C, "--data is required");
    qs_precision prec;
    if (cli_precision(C, precision, &prec)) return 2;

    qs_model m;
    qs_load_info info;
    if (qs_model_load(&m, model_path, &info) != QS_OK) return cli_fail(C);
    m.precision = prec;
    int rc = 0;
    qs_tokenizer *tok = NULL;
    qs_dataset ds;
    memset(&ds, 0, sizeof ds);
    qs_workspace *ws = NULL;
    int *tokens = NULL, *mask = NULL;
    if (T == 0) T = m.cfg.max_seq_len;
    if (T > m.cfg.max_seq_len) {
        rc = cli_usage_error(C, "--seq-len %ld exceeds the model's max_seq_len %d", T, m.cfg.max_seq_len);
        goto out;
    }
    if (B == 0) B = QS_MAX(1, 4096 / T);
    if ((rc = cli_load_tokenizer(C, model_path, &info, m.cfg.vocab_size, &tok_path, &tok)) != 0) goto out;
    qs_token_stream s;
    if ((rc = load_stream(C, data_path, tok, field, limit, m.cfg.vocab_size, &ds, &s)) != 0) goto out;
    if (qs_workspace_create_ex(&ws, &m.cfg, (int)B, (int)T, 1, 0) != QS_OK) {
        rc = cli_fail(C);
        goto out;
    }
    tokens = malloc((size_t)B * T * sizeof *tokens);
    mask = malloc((size_t)B * T * sizeof *mask);
    if (!tokens || !mask) {
        fprintf(stderr, "qstar %s: out of memory for a %ldx%ld batch\n", C, B, T);
        rc = 1;
        goto out;
    }
    const size_t nw = qs_stream_n_windows(&s, (int)T);
    const int tty = cli_is_tty();
    double total = 0.0, t0 = qs_now();
    long count = 0;
    for (size_t w = 0; w < nw; w += (size_t)B) {
        double nll;
        long n;
        if (qs_stream_eval_batch(&s, w, (int)B, (int)T, tokens, mask, NULL) != QS_OK ||
            qs_lm_nll(&m, ws, tokens, mask, (int)B, (int)T, &nll, &n) != QS_OK) {
            if (tty) fprintf(stderr, "\n");
            rc = cli_fail(C);
            goto out;
        }
        total += nll;
        count += n;
        size_t done = QS_MIN(w + (size_t)B, nw);
        double el = qs_now() - t0;
        if (tty)
            fprintf(stderr, "\reval: window %zu/%zu  nll %.4f  %.0f tok/s  ETA %.0fs   ", done, nw,
                    count ? total / count : 0.0, (double)done * T / QS_MAX(el, 1e-9), eta(el, done, nw));
        else if (done == nw || (w / (size_t)B) % 50 == 49)
            fprintf(stderr, "eval: window %zu/%zu  nll %.4f  ETA %.0fs\n", done, nw, count ? total / count : 0.0,
                    eta(el, done, nw));
    }
    if (tty) fprintf(stderr, "\n");
    if (count == 0) {
        fprintf(stderr, "qstar %s: %s: no tokens to score (every window holds a single token)\n", C, data_path);
        rc = 1;
        goto out;
    }
    double mean = total / (double)count;
    printf("nll: %.4f nats/token\nppl: %.4f\ntokens: %ld\n", mean, exp(mean), count);
out:
    if (rc == 0) cli_print_matmul(&m); // after the run's own lines (errors stay one line)
    free(tokens);
    free(mask);
    qs_workspace_free(ws);
    qs_dataset_free(&ds);
    qs_tokenizer_free(tok);
    qs_load_info_free(&info);
    qs_model_free(&m);
    return rc;
}

// ---------------------------------------------------------------------------
// --task gsm8k | csqa | nll

static int progress_tty(void *ud, size_t done, size_t total) {
    const double *t0 = ud;
    const double el = qs_now() - *t0;
    if (cli_is_tty())
        fprintf(stderr, "\reval: window %zu/%zu  %.1f s  ETA %.0fs   ", done, total, el, eta(el, done, total));
    else if (done == total || done % 50 == 0)
        fprintf(stderr, "eval: window %zu/%zu  %.1f s  ETA %.0fs\n", done, total, el, eta(el, done, total));
    return 0;
}

// JSON string of a token/thought text (cJSON escapes; invalid UTF-8 is
// replaced so that the output stays valid JSON).
static char *clean_utf8(const char *s) {
    size_t n = strlen(s);
    char *o = malloc(3 * n + 1), *p = o;
    if (!o) return NULL;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        int len = u[i] < 0x80 ? 1 : (u[i] >> 5) == 6 ? 2 : (u[i] >> 4) == 14 ? 3 : (u[i] >> 3) == 30 ? 4 : 0;
        int ok = len > 0 && i + len <= n;
        for (int k = 1; ok && k < len; k++) ok = (u[i + k] & 0xC0) == 0x80;
        if (ok) {
            memcpy(p, u + i, len), p += len, i += len;
        } else {
            memcpy(p, "\xEF\xBF\xBD", 3), p += 3, i++;
        }
    }
    *p = 0;
    return o;
}

static void add_text(cJSON *obj, const char *key, const char *text) {
    char *c = clean_utf8(text);
    cJSON_AddStringToObject(obj, key, c ? c : "");
    free(c);
}

static int write_json(const char *C, const char *path, cJSON *root) {
    char *txt = cJSON_Print(root);
    if (!txt) {
        fprintf(stderr, "qstar %s: out of memory for the JSON results\n", C);
        return 1;
    }
    size_t n = strlen(txt);
    txt[n] = '\n';
    qs_status st = qs_write_file_atomic(path, txt, n + 1);
    free(txt);
    if (st != QS_OK) return cli_fail(C);
    return 0;
}

static void thought_text(const qs_tokenizer *tok, int prev, const int *th, int n, char *out, size_t cap) {
    size_t k = 0;
    out[0] = 0;
    for (int u = 0; u < n; u++) {
        const char *p = qs_tokenizer_piece(tok, prev, th[u]);
        size_t l = strlen(p);
        if (k + l + 1 > cap) break;
        memcpy(out + k, p, l + 1);
        k += l;
        prev = th[u];
    }
}

static int eval_task(int argc, char **argv) {
    const char *C = "eval";
    const char *model_path = NULL, *tok_path = NULL, *data_path = NULL, *task_s = NULL, *out_path = NULL,
               *tokens_out = NULL, *field = NULL, *precision = NULL;
    long limit = 0, seed = 1234, n_ahead = 0, T = 0, B = 0, limit_tokens = 0;
    double tau_sample = 0;
    int think = -1, greedy = 0, force = 0, when_given = 0;
    qs_think_ctl ctl = qs_think_ctl_default();
    for (int i = 1; i < argc; i++) {
        int r;
        if (!strcmp(argv[i], "--random-thoughts")) { ctl.random_thoughts = 1; when_given = 1; continue; }
        if ((r = cli_think_when(argc, argv, &i, &ctl.min_entropy))) {
            if (r < 0) return 2;
            when_given = 1;
            continue;
        }
        if (!strcmp(argv[i], "--think")) { think = 1; continue; }
        if (!strcmp(argv[i], "--force")) { force = 1; continue; }
        if (!strcmp(argv[i], "--no-think")) { think = 0; continue; }
        if (!strcmp(argv[i], "--greedy-thoughts")) { greedy = 1; continue; }
        if ((r = cli_str(argc, argv, &i, "--model", &model_path)) ||
            (r = cli_str(argc, argv, &i, "--tokenizer", &tok_path)) ||
            (r = cli_str(argc, argv, &i, "--data", &data_path)) ||
            (r = cli_str(argc, argv, &i, "--task", &task_s)) ||
            (r = cli_str(argc, argv, &i, "--out", &out_path)) ||
            (r = cli_str(argc, argv, &i, "--tokens-out", &tokens_out)) ||
            (r = cli_str(argc, argv, &i, "--precision", &precision)) ||
            (r = cli_str(argc, argv, &i, "--field", &field)) ||
            (r = cli_int(argc, argv, &i, "--limit", &limit, 1, 0x7fffffffffffffffL)) ||
            (r = cli_int(argc, argv, &i, "--seed", &seed, 0, 0x7fffffffffffffffL)) ||
            (r = cli_int(argc, argv, &i, "--n-ahead", &n_ahead, 3, 256)) ||
            (r = cli_float(argc, argv, &i, "--tau-sample", &tau_sample, 1e-6, 1e6)) ||
            (r = cli_int(argc, argv, &i, "--seq-len", &T, 3, 1L << 24)) ||
            (r = cli_int(argc, argv, &i, "--batch", &B, 1, 1L << 16)) ||
            (r = cli_int(argc, argv, &i, "--limit-tokens", &limit_tokens, 1, 0x7fffffffffffffffL))) {
            if (r < 0) return 2;
            continue;
        }
        return cli_usage_error(C, "unknown option '%s'", argv[i]);
    }
    int is_nll = 0;
    qs_task task = QS_TASK_GSM8K;
    if (!strcmp(task_s, "gsm8k")) task = QS_TASK_GSM8K;
    else if (!strcmp(task_s, "csqa")) task = QS_TASK_CSQA;
    else if (!strcmp(task_s, "nll")) is_nll = 1;
    else return cli_usage_error(C, "--task expects gsm8k, csqa or nll, got '%s'", task_s);
    if (!model_path) return cli_usage_error(C, "--model is required");
    qs_precision prec;
    if (cli_precision(C, precision, &prec)) return 2;
    if (is_nll && !data_path) return cli_usage_error(C, "--task nll needs --data FILE");
    if (!is_nll && (tokens_out || T || B || limit_tokens || field))
        return cli_usage_error(C, "--tokens-out, --seq-len, --batch, --limit-tokens and --field are for --task nll");
    if (is_nll && limit) return cli_usage_error(C, "--limit is for gsm8k/csqa (use --limit-tokens with nll)");
    if (!is_nll && when_given) return cli_usage_error(C, "--think-when and --random-thoughts are for --task nll");
    if (think == 0 && when_given) return cli_usage_error(C, "--think-when and --random-thoughts contradict --no-think");
    if (think == 0 && (n_ahead || tau_sample > 0 || greedy))
        return cli_usage_error(C, "thought options (--n-ahead, --tau-sample, --greedy-thoughts) contradict --no-think");
    // outputs are checked before any work: a bad --out must not cost the whole evaluation
    if (out_path && qs_out_check(out_path, QS_OUT_FILE, force) != QS_OK) return cli_fail(C);
    if (tokens_out && qs_out_check(tokens_out, QS_OUT_FILE, force) != QS_OK) return cli_fail(C);
    char defpath[4096];
    if (!data_path) {
        const char *d = getenv("QSTAR_DATA");
        if (!d || !*d) {
            fprintf(stderr, "qstar %s: no --data given and QSTAR_DATA is not set\n", C);
            return 1;
        }
        snprintf(defpath, sizeof defpath, "%s/%s", d,
                 task == QS_TASK_GSM8K ? "gsm8k/test.jsonl" : "csqa/dev_rand_split.jsonl");
        data_path = defpath;
    }

    qs_model m;
    qs_load_info info;
    if (qs_model_load(&m, model_path, &info) != QS_OK) return cli_fail(C);
    m.precision = prec;
    int rc = 0;
    qs_tokenizer *tok = NULL;
    int *valid = NULL, n_valid = 0;
    qs_task_scorer *sc = NULL;
    FILE *df = NULL, *tf = NULL;
    char *line = NULL;
    size_t line_cap = 0;
    cJSON *root = NULL;
    qs_dataset ds;
    memset(&ds, 0, sizeof ds);
    qs_nll_tokens rec = {0};
    const int has_qs = m.has_quietstar && info.qs_present == 7;
    if (think == 1 && !has_qs) {
        fprintf(stderr, "qstar %s: --think needs a Quiet-STaR checkpoint, but %s has no (complete) Quiet-STaR tensors\n",
                C, model_path);
        rc = 1;
        goto out;
    }
    if (think < 0) think = has_qs;
    if (!think && (n_ahead || tau_sample > 0 || greedy)) {
        fprintf(stderr, "qstar %s: %s has no Quiet-STaR tensors: thought options need a Quiet-STaR checkpoint\n", C, model_path);
        rc = 1;
        goto out;
    }
    if ((rc = cli_load_tokenizer(C, model_path, &info, m.cfg.vocab_size, &tok_path, &tok)) != 0) goto out;
    qs_qstar_opts qo;
    if ((rc = cli_thought_opts(C, has_qs ? info.quietstar_json : NULL, tok, n_ahead, tau_sample, greedy, &qo)) != 0)
        goto out;
    const int tty = cli_is_tty();
    const double t0 = qs_now();
    root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "task", task_s);
    add_text(root, "model", model_path);
    add_text(root, "data", data_path);
    cJSON_AddBoolToObject(root, "think", think);
    if (think) {
        cJSON_AddNumberToObject(root, "n_ahead", qo.n_ahead);
        cJSON_AddNumberToObject(root, "n_thought", qo.n_ahead - 3);
        cJSON_AddNumberToObject(root, "tau_sample", qo.tau_sample);
        cJSON_AddStringToObject(root, "mixing", qo.mixing == QS_MIX_SIGMOID ? "sigmoid" : "linear");
    } else {
        cJSON_AddNullToObject(root, "n_ahead");
    }
    cJSON_AddNumberToObject(root, "seed", (double)seed);

    if (is_nll) {
        if (T == 0) T = m.cfg.max_seq_len;
        if (T > m.cfg.max_seq_len) {
            rc = cli_usage_error(C, "--seq-len %ld exceeds the model's max_seq_len %d", T, m.cfg.max_seq_len);
            goto out;
        }
        if (B == 0) B = QS_MAX(1, (think ? 1024 : 4096) / T);
        qs_token_stream s;
        if ((rc = load_stream(C, data_path, tok, field, limit_tokens, m.cfg.vocab_size, &ds, &s)) != 0) goto out;
        qs_rng rng;
        qs_rng_seed(&rng, (uint64_t)seed);
        qs_nll_summary sum;
        if (!think && when_given) {
            fprintf(stderr, "qstar %s: %s has no Quiet-STaR tensors: --think-when/--random-thoughts need a Quiet-STaR checkpoint\n", C, model_path);
            rc = 1;
            goto out;
        }
        qs_status st = qs_nll_eval_ctl(&m, &s, think ? &qo : NULL, think, &ctl, (int)B, (int)T, &rng, &rec,
                                       progress_tty, (void *)&t0, &sum);
        if (tty) fprintf(stderr, "\n");
        if (st != QS_OK) {
            rc = cli_fail(C);
            goto out;
        }
        if (sum.n_tokens == 0) {
            fprintf(stderr, "qstar %s: %s: no tokens to score\n", C, data_path);
            rc = 1;
            goto out;
        }
        printf("tokens: %ld   windows of %ld   thoughts: %s", sum.n_tokens, T, think ? "on" : "off");
        if (think) printf(" (n_ahead %d, n_thought %d, one thought per position)", qo.n_ahead, qo.n_ahead - 3);
        // gain = base - think: positive when the thoughts help (the same sign in train, viz and the demo)
        printf("\n%-14s %10s %10s %10s\n", "NLL (nats)", "base", "think", "gain");
        const double rows[3][2] = {{sum.nll_base, sum.nll_think}, {sum.hard20_base, sum.hard20_think},
                                   {sum.hard10_base, sum.hard10_think}};
        const char *names[3] = {"all tokens", "hardest 20%", "hardest 10%"};
        for (int k = 0; k < 3; k++) {
            if (think)
                printf("%-14s %10.4f %10.4f %+10.4f\n", names[k], rows[k][0], rows[k][1], rows[k][0] - rows[k][1]);
            else
                printf("%-14s %10.4f %10s %10s\n", names[k], rows[k][0], "-", "-");
        }
        if (think) printf("mean mixing weight: %.4f\n", sum.mix_mean);
        if (think && when_given)
            printf("thinking: %s%s, thoughts at %.1f%% of tokens\n", ctl.random_thoughts ? "random thought tokens" : "sampled thoughts",
                   ctl.min_entropy > -INFINITY ? " where base entropy > threshold" : "", 100.0 * sum.think_frac);
        if (think) {
            printf("thought gain (base - think): %+.4f nats/token, 95%% interval [%+.4f, %+.4f] over %ld windows\n",
                   sum.gain, sum.gain - sum.gain_ci95, sum.gain + sum.gain_ci95, sum.gain_windows);
            if (!isfinite(sum.gain_ci95)) printf("thought gain: too few windows for an interval\n");
            else if (fabs(sum.gain) <= sum.gain_ci95) printf("thought gain: within noise (the 95%% interval contains 0)\n");
            else printf("thought gain: %s beyond noise (the 95%% interval excludes 0)\n", sum.gain > 0 ? "positive," : "negative,");
        }
        cJSON_AddNumberToObject(root, "n", (double)sum.n_tokens);
        cJSON_AddNumberToObject(root, "seq_len", (double)T);
        cJSON_AddNumberToObject(root, "nll_base", sum.nll_base);
        cJSON_AddNumberToObject(root, "hard20_nll_base", sum.hard20_base);
        cJSON_AddNumberToObject(root, "hard10_nll_base", sum.hard10_base);
        if (think) {
            cJSON_AddNumberToObject(root, "nll_think", sum.nll_think);
            cJSON_AddNumberToObject(root, "hard20_nll_think", sum.hard20_think);
            cJSON_AddNumberToObject(root, "hard10_nll_think", sum.hard10_think);
            cJSON_AddNumberToObject(root, "mix_mean", sum.mix_mean);
            cJSON_AddNumberToObject(root, "gain", sum.nll_base - sum.nll_think); // base - think: > 0 = thoughts help
            cJSON_AddNumberToObject(root, "gain_window_mean", sum.gain);
            cJSON_AddNumberToObject(root, "gain_ci95", isfinite(sum.gain_ci95) ? sum.gain_ci95 : -1);
            cJSON_AddNumberToObject(root, "gain_windows", (double)sum.gain_windows);
            cJSON_AddNumberToObject(root, "think_frac", sum.think_frac);
            cJSON_AddBoolToObject(root, "random_thoughts", ctl.random_thoughts);
            if (ctl.min_entropy > -INFINITY) cJSON_AddNumberToObject(root, "think_when_entropy", ctl.min_entropy);
        }
        if (tokens_out) {
            qs_afile af;
            if (qs_afile_open(&af, tokens_out) != QS_OK) {
                rc = cli_fail(C);
                goto out;
            }
            char tt[4096];
            qs_status ws = QS_OK;
            for (size_t k = 0; k < rec.n && ws == QS_OK; k++) {
                const qs_nll_token *t = &rec.t[k];
                cJSON *o = cJSON_CreateObject();
                cJSON_AddNumberToObject(o, "window", (double)t->window);
                cJSON_AddNumberToObject(o, "pos", t->pos);
                cJSON_AddNumberToObject(o, "id", t->token);
                add_text(o, "text", qs_tokenizer_piece(tok, t->prev, t->token));
                cJSON_AddNumberToObject(o, "nll_base", t->nll_base);
                cJSON_AddNumberToObject(o, "entropy", t->entropy);
                if (think) {
                    cJSON_AddBoolToObject(o, "thought_on", t->thought_on);
                    cJSON_AddNumberToObject(o, "nll_think", t->nll_think);
                    cJSON_AddNumberToObject(o, "mix", t->mix_w);
                    const int *th = rec.thoughts + t->thought;
                    cJSON_AddItemToObject(o, "thought", cJSON_CreateIntArray(th, rec.n_thought));
                    thought_text(tok, t->prev, th, rec.n_thought, tt, sizeof tt);
                    add_text(o, "thought_text", tt);
                } else {
                    cJSON_AddNullToObject(o, "nll_think");
                }
                char *txt = cJSON_PrintUnformatted(o);
                cJSON_Delete(o);
                if (!txt) { ws = qs_error(QS_ERR_NOMEM, "out of memory"); break; }
                ws = qs_afile_write(&af, txt, strlen(txt));
                if (ws == QS_OK) ws = qs_afile_write(&af, "\n", 1);
                free(txt);
            }
            if (ws == QS_OK) ws = qs_afile_commit(&af);
            if (ws != QS_OK) {
                qs_afile_abort(&af);
                rc = cli_fail(C);
                goto out;
            }
        }
        cJSON_AddNumberToObject(root, "seconds", qs_now() - t0);
        if (out_path) rc = write_json(C, out_path, root);
        goto out;
    }

    // ---- gsm8k / csqa ----
    if (qs_task_valid_tokens(tok, qs_task_chars(task), &valid, &n_valid) != QS_OK) {
        rc = cli_fail(C);
        goto out;
    }
    const int max_len = m.cfg.max_seq_len;
    if (qs_task_scorer_create(&sc, &m, think ? &qo : NULL, think, max_len) != QS_OK) {
        rc = cli_fail(C);
        goto out;
    }
    df = fopen(data_path, "r");
    if (!df) {
        fprintf(stderr, "qstar %s: cannot open %s: %s\n", C, data_path, strerror(errno));
        rc = 1;
        goto out;
    }
    // count the examples for the progress line
    long total = 0;
    {
        ssize_t len;
        while ((len = getline(&line, &line_cap, df)) > 0) {
            int blank = 1;
            for (ssize_t k = 0; k < len && blank; k++) blank = isspace((unsigned char)line[k]) != 0;
            total += !blank;
        }
        rewind(df);
        if (limit && total > limit) total = limit;
    }
    cJSON *exs = cJSON_CreateArray();
    cJSON_AddItemToObject(root, "examples", exs);
    double sum_score = 0, sum_first = 0, sum_chance = 0;
    long n = 0, n_exact = 0, n_trunc = 0, n_off = 0, lineno = 0;
    ssize_t len;
    // Single-position forwards throughout: OpenMP threads would only add fork/join.
    const int omp_saved = omp_get_max_threads();
    omp_set_num_threads(1);
    while ((!limit || n < limit) && (len = getline(&line, &line_cap, df)) > 0) {
        lineno++;
        int blank = 1;
        for (ssize_t k = 0; k < len && blank; k++) blank = isspace((unsigned char)line[k]) != 0;
        if (blank) continue;
        qs_task_prompt pr;
        qs_task_item it;
        qs_task_result res;
        if (qs_task_parse_line(task, line, &pr) != QS_OK) {
            fprintf(stderr, "qstar %s: %s:%ld: %s\n", C, data_path, lineno, qstar_last_error());
            rc = 1;
            break;
        }
        if (qs_task_encode(tok, &pr, 1, max_len, &it) != QS_OK) {
            fprintf(stderr, "qstar %s: %s:%ld: %s\n", C, data_path, lineno, qstar_last_error());
            qs_task_prompt_free(&pr);
            rc = 1;
            break;
        }
        // each example has its own thought stream: --limit N scores the
        // first N exactly as the full run does
        qs_rng rng;
        qs_rng_seed(&rng, (uint64_t)seed * 0x9E3779B97F4A7C15ull + (uint64_t)n + 1);
        qs_status st = qs_task_score(sc, &it, valid, n_valid, &rng, &res);
        if (st != QS_OK) {
            fprintf(stderr, "qstar %s: %s:%ld: %s\n", C, data_path, lineno, qstar_last_error());
            qs_task_item_free(&it);
            qs_task_prompt_free(&pr);
            rc = 1;
            break;
        }
        sum_score += res.score;
        sum_first += res.prob[0];
        sum_chance += qs_task_chance(n_valid, res.n_ans);
        n_exact += res.exact;
        n_trunc += it.truncated > 0;
        n_off += res.off_set;
        n++;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "index", (double)(n - 1));
        cJSON_AddNumberToObject(e, "line", (double)lineno);
        add_text(e, "answer", pr.answer);
        cJSON_AddNumberToObject(e, "score", res.score);
        cJSON_AddBoolToObject(e, "exact", res.exact);
        cJSON_AddNumberToObject(e, "n_tokens", it.n);
        if (it.truncated) cJSON_AddNumberToObject(e, "truncated", it.truncated);
        double probs[QS_TASK_MAX_ANS];
        int na = QS_MIN(res.n_ans, QS_TASK_MAX_ANS);
        for (int k = 0; k < na; k++) probs[k] = res.prob[k];
        cJSON_AddItemToObject(e, "token_probs", cJSON_CreateDoubleArray(probs, na));
        if (think) {
            for (int k = 0; k < na; k++) probs[k] = res.mix_w[k];
            cJSON_AddItemToObject(e, "mix", cJSON_CreateDoubleArray(probs, na));
        }
        cJSON_AddItemToArray(exs, e);
        qs_task_item_free(&it);
        qs_task_prompt_free(&pr);
        const double el = qs_now() - t0;
        if (tty)
            fprintf(stderr, "\reval %s: %ld/%ld  %s %.4f  exact %.4f  %.1f s  ETA %.0fs   ", task_s, n, total,
                    qs_task_metric_name(task), sum_score / n, (double)n_exact / n, el, eta(el, (size_t)n, (size_t)total));
        else if (n % 100 == 0 || n == total)
            fprintf(stderr, "eval %s: %ld/%ld  %s %.4f  exact %.4f  %.1f s  ETA %.0fs\n", task_s, n, total,
                    qs_task_metric_name(task), sum_score / n, (double)n_exact / n, el, eta(el, (size_t)n, (size_t)total));
    }
    omp_set_num_threads(omp_saved);
    if (tty) fprintf(stderr, "\n");
    if (rc) goto out;
    if (n == 0) {
        fprintf(stderr, "qstar %s: %s: no examples\n", C, data_path);
        rc = 1;
        goto out;
    }
    const double secs = qs_now() - t0;
    printf("task: %s   examples: %ld   thoughts: %s", task_s, n, think ? "on" : "off");
    if (think) printf(" (n_ahead %d, n_thought %d)", qo.n_ahead, qo.n_ahead - 3);
    // the paper's metric multiplies the answer tokens' restricted probabilities (CSQA: letter and
    // newline), so it is far below an accuracy: printed beside what a uniform guess would score
    printf("\n%s (mean product of the restricted answer-token probabilities, the paper's metric): %.4f "
           "(uniform chance %.4f)\n", qs_task_metric_name(task), sum_score / n, sum_chance / n);
    printf("%s probability (restricted, first answer token alone): %.4f (uniform chance %.4f)\n",
           task == QS_TASK_CSQA ? "letter-only" : "first-digit", sum_first / n, qs_task_chance(n_valid, 1));
    printf("exact match (restricted argmax right at every answer token): %.4f\n", (double)n_exact / n);
    if (n_trunc) printf("truncated prompts: %ld (question cut from the front to %d tokens)\n", n_trunc, max_len);
    if (n_off) printf("answer tokens outside the valid set: %ld\n", n_off);
    fprintf(stderr, "eval %s: %.1f s (%.1f examples/s)\n", task_s, secs, n / QS_MAX(secs, 1e-9));
    cJSON_AddNumberToObject(root, "n", (double)n);
    cJSON_AddNumberToObject(root, "accuracy", sum_score / n); // = paper_score (kept for older readers)
    cJSON_AddNumberToObject(root, "paper_score", sum_score / n);
    cJSON_AddNumberToObject(root, "paper_score_chance", sum_chance / n);
    cJSON_AddNumberToObject(root, "first_token_chance", qs_task_chance(n_valid, 1));
    cJSON_AddNumberToObject(root, "exact_match", (double)n_exact / n);
    cJSON_AddNumberToObject(root, "first_token_prob", sum_first / n);
    cJSON_AddNumberToObject(root, "truncated", (double)n_trunc);
    cJSON_AddNumberToObject(root, "off_set_tokens", (double)n_off);
    cJSON_AddNumberToObject(root, "seconds", secs);
    // the examples array goes last for readability
    cJSON_DetachItemViaPointer(root, exs);
    cJSON_AddItemToObject(root, "examples", exs);
    if (out_path) rc = write_json(C, out_path, root);
out:
    if (rc == 0) cli_print_matmul(&m); // after the run's own lines (errors stay one line)
    if (df) fclose(df);
    if (tf) fclose(tf);
    free(line);
    cJSON_Delete(root);
    qs_nll_tokens_free(&rec);
    qs_dataset_free(&ds);
    qs_task_scorer_free(sc);
    free(valid);
    qs_tokenizer_free(tok);
    qs_load_info_free(&info);
    qs_model_free(&m);
    return rc;
}

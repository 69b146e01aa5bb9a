// cmd_eval.c: `qstar eval`: mean negative log-likelihood (nats/token) and
// perplexity of a text or JSONL file. Every document starts with BOS; all are
// packed into one token stream that is cut into non-overlapping windows of
// --seq-len tokens (the last one shorter); each window predicts its own next
// tokens (T-1 targets per full window).
#include "cli.h"
#include "data/dataset.h"
#include "io/model_io.h"
#include "model/transformer.h"
#include "model/workspace.h"
#include "tokenizer/tokenizer.h"

#include <math.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: qstar eval --model PATH --data FILE [options]\n\n"
            "  --model PATH         qstar model directory (tokenizer.bin inside) or llama2.c .bin\n"
            "  --tokenizer FILE     llama2.c tokenizer (required for a .bin model)\n"
            "  --data FILE          text (documents separated by blank lines) or JSONL\n"
            "                       (.jsonl/.json/.ndjson)\n"
            "  --field NAME         JSONL field holding the document (default \"text\")\n"
            "  --seq-len T          window length (default and maximum: the model's max_seq_len)\n"
            "  --batch B            windows per forward pass (default: about 4096 tokens per batch)\n"
            "  --limit-tokens N     evaluate only the first N tokens of the stream\n\n"
            "Prints to stdout:\n  nll: X nats/token\n  ppl: X\n  tokens: N   (tokens scored)\n");
}

int cmd_eval(int argc, char **argv) {
    const char *C = "eval";
    const char *model_path = NULL, *tok_path = NULL, *data_path = NULL, *field = NULL;
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

    qs_model m;
    qs_load_info info;
    if (qs_model_load(&m, model_path, &info) != QS_OK) return cli_fail(C);
    int rc = 0;
    qs_tokenizer *tok = NULL;
    qs_dataset ds;
    memset(&ds, 0, sizeof ds);
    qs_workspace *ws = NULL;
    int *tokens = NULL, *mask = NULL;
    if (!tok_path) tok_path = info.tokenizer_path[0] ? info.tokenizer_path : NULL;
    if (!tok_path) {
        fprintf(stderr, "qstar %s: %s has no tokenizer.bin; pass --tokenizer FILE\n", C, model_path);
        rc = 1;
        goto out;
    }
    if (T == 0) T = m.cfg.max_seq_len;
    if (T > m.cfg.max_seq_len) {
        rc = cli_usage_error(C, "--seq-len %ld exceeds the model's max_seq_len %d", T, m.cfg.max_seq_len);
        goto out;
    }
    if (B == 0) B = QS_MAX(1, 4096 / T);
    if (qs_tokenizer_load(&tok, tok_path, m.cfg.vocab_size) != QS_OK) {
        rc = cli_fail(C);
        goto out;
    }
    qs_dataset_opts dopt = qs_dataset_opts_default();
    dopt.val_frac = 0.0; // everything in one stream
    dopt.field = field;
    if (field) dopt.format = QS_DATA_JSONL;
    if (qs_dataset_load(&ds, data_path, tok, &dopt) != QS_OK) {
        rc = cli_fail(C);
        goto out;
    }
    qs_token_stream s = ds.train;
    if (limit > 0 && (size_t)limit < s.n_tokens) s.n_tokens = (size_t)limit;
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
        if (tty) {
            size_t done = QS_MIN(w + (size_t)B, nw);
            fprintf(stderr, "\reval: window %zu/%zu  nll %.4f  %.0f tok/s   ", done, nw,
                    count ? total / count : 0.0, (double)done * T / QS_MAX(qs_now() - t0, 1e-9));
        }
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
    free(tokens);
    free(mask);
    qs_workspace_free(ws);
    qs_dataset_free(&ds);
    qs_tokenizer_free(tok);
    qs_load_info_free(&info);
    qs_model_free(&m);
    return rc;
}

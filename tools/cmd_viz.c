// cmd_viz.c: `qstar viz`: an HTML page showing, token by token, how much
// the thought before each token changed its log-likelihood (the paper's
// Figure 1), with the thought and mixing weight on hover/click. Flags and
// printing over the public API (qstar_viz_write).
#include "cli.h"

#include <errno.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: qstar viz --model CKPT --text FILE --out page.html [options]\n\n"
            "  --model CKPT         Quiet-STaR checkpoint (model directory with a \"quietstar\" config)\n"
            "  --tokenizer FILE     llama2.c tokenizer (default: the checkpoint's tokenizer.bin)\n"
            "  --text FILE          UTF-8 text to show (BOS is prepended)\n"
            "  --out FILE           the HTML page to write (self-contained: no network access); a\n"
            "                       model, checkpoint or log file there is refused unless --force\n"
            "  --force              replace such a file\n"
            "  --max-tokens N       use the first N tokens (default and maximum: max_seq_len)\n"
            "  --n-ahead N          thought length incl. start/end (default: the checkpoint's)\n"
            "  --tau-sample X       thought sampling temperature (default: the checkpoint's)\n"
            "  --greedy-thoughts    argmax thought tokens\n"
            "  --seed S             thought sampling seed (default 1234)\n\n"
            "Each token is coloured by NLL without thought - NLL after the thought sampled at the\n"
            "position before it (green: the thought helped, red: it hurt).\n");
}

// The whole text file, NUL-terminated (malloc'd); NULL after printing why.
static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "qstar viz: %s: cannot open: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0, k;
    char *s = malloc(cap);
    while (s && (k = fread(s + n, 1, cap - n - 1, f)) > 0) {
        n += k;
        if (n + 1 == cap) {
            char *t = cap < ((size_t)1 << 30) ? realloc(s, cap * 2) : NULL;
            if (!t) free(s);
            s = t, cap *= 2;
        }
    }
    const int err = ferror(f);
    fclose(f);
    if (!s || err) {
        fprintf(stderr, "qstar viz: cannot read %s%s\n", path, s ? "" : ": too large or out of memory");
        free(s);
        return NULL;
    }
    s[n] = 0;
    if (strlen(s) != n) {
        fprintf(stderr, "qstar viz: %s contains a NUL byte\n", path);
        free(s);
        return NULL;
    }
    return s;
}

int cmd_viz(int argc, char **argv) {
    const char *C = "viz";
    const char *model_path = NULL, *tok_path = NULL, *text_path = NULL, *out_path = NULL;
    long max_tokens = 0, seed = 1234, n_ahead = 0;
    double tau_sample = 0;
    qstar_viz_params vp = qstar_viz_params_default();
    for (int i = 1; i < argc; i++) {
        int r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--greedy-thoughts")) { vp.greedy_thoughts = 1; continue; }
        if (!strcmp(argv[i], "--force")) { vp.force = 1; continue; }
        if ((r = cli_str(argc, argv, &i, "--model", &model_path)) ||
            (r = cli_str(argc, argv, &i, "--tokenizer", &tok_path)) ||
            (r = cli_str(argc, argv, &i, "--text", &text_path)) ||
            (r = cli_str(argc, argv, &i, "--out", &out_path)) ||
            (r = cli_int(argc, argv, &i, "--max-tokens", &max_tokens, 3, 1L << 24)) ||
            (r = cli_int(argc, argv, &i, "--seed", &seed, 0, 0x7fffffffffffffffL)) ||
            (r = cli_int(argc, argv, &i, "--n-ahead", &n_ahead, 3, 256)) ||
            (r = cli_float(argc, argv, &i, "--tau-sample", &tau_sample, 1e-6, 1e6))) {
            if (r < 0) return 2;
            continue;
        }
        return cli_usage_error(C, "unknown option '%s'", argv[i]);
    }
    if (!model_path) return cli_usage_error(C, "--model is required");
    if (!text_path) return cli_usage_error(C, "--text is required");
    if (!out_path || !*out_path) return cli_usage_error(C, "--out is required");
    vp.max_tokens = (int)max_tokens, vp.seed = (uint64_t)seed, vp.n_ahead = (int)n_ahead;
    vp.tau_sample = (float)tau_sample;
    const char *base = strrchr(text_path, '/');
    vp.title = base ? base + 1 : text_path;
    if (qstar_viz_check(out_path, &vp) != QS_OK) return cli_fail(C); // before any work

    qstar_model_params mp = qstar_model_params_default();
    mp.tokenizer_path = tok_path;
    qstar_model *m;
    if (qstar_model_load(model_path, &mp, &m) != QS_OK) return cli_fail(C);
    qstar_config cfg;
    int rc = 0;
    char *text = NULL;
    if (qstar_model_config(m, &cfg) != QS_OK) {
        rc = cli_fail(C);
    } else if (!cfg.has_quietstar) {
        fprintf(stderr, "qstar %s: %s has no Quiet-STaR tensors: viz needs a Quiet-STaR checkpoint\n", C, model_path);
        rc = 1;
    } else if (!(text = read_text(text_path))) {
        rc = 1;
    } else {
        const double t0 = cli_wall_seconds();
        qstar_viz_result r;
        if (qstar_viz_write(m, text, &vp, out_path, &r) != QS_OK) {
            fprintf(stderr, "qstar %s: %s: %s\n", C, text_path, qstar_last_error());
            rc = 1;
        } else {
            fprintf(stderr, "qstar %s: wrote %s (%d tokens, NLL %.4f without thought, %.4f after, gain %+.4f, %.1f s)\n",
                    C, out_path, r.n_tokens, r.nll_base, r.nll_think, r.gain, cli_wall_seconds() - t0);
        }
    }
    free(text);
    qstar_model_free(m);
    return rc;
}

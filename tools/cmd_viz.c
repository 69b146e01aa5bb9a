// cmd_viz.c: `qstar viz`: an HTML page showing, token by token, how much
// the thought before each token changed its log-likelihood (the paper's
// Figure 1), with the thought and mixing weight on hover/click.
#include "cli_internal.h"
#include "io/model_io.h"
#include "io/outpath.h"
#include "quietstar/evaltask.h"
#include "quietstar/viz.h"
#include "tokenizer/tokenizer.h"

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

int cmd_viz(int argc, char **argv) {
    const char *C = "viz";
    const char *model_path = NULL, *tok_path = NULL, *text_path = NULL, *out_path = NULL;
    long max_tokens = 0, seed = 1234, n_ahead = 0;
    double tau_sample = 0;
    int greedy = 0, force = 0;
    for (int i = 1; i < argc; i++) {
        int r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--greedy-thoughts")) { greedy = 1; continue; }
        if (!strcmp(argv[i], "--force")) { force = 1; continue; }
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
    if (qs_out_check(out_path, QS_OUT_FILE, force) != QS_OK) return cli_fail(C); // before any work

    qs_model m;
    qs_load_info info;
    if (qs_model_load(&m, model_path, &info) != QS_OK) return cli_fail(C);
    int rc = 0;
    qs_tokenizer *tok = NULL;
    unsigned char *text = NULL;
    int *ids = NULL;
    qs_nll_tokens rec = {0};
    FILE *f = NULL;
    char tmp[4200];
    tmp[0] = 0;
    if (!(m.has_quietstar && info.qs_present == 7)) {
        fprintf(stderr, "qstar %s: %s has no Quiet-STaR tensors: viz needs a Quiet-STaR checkpoint\n", C, model_path);
        rc = 1;
        goto out;
    }
    if ((rc = cli_load_tokenizer(C, model_path, &info, m.cfg.vocab_size, &tok_path, &tok)) != 0) goto out;
    qs_qstar_opts qo;
    if ((rc = cli_thought_opts(C, info.quietstar_json, tok, n_ahead, tau_sample, greedy, &qo)) != 0) goto out;
    size_t len;
    if (qs_read_file(text_path, &text, &len) != QS_OK) {
        rc = cli_fail(C);
        goto out;
    }
    char *s = realloc(text, len + 1);
    if (!s) {
        fprintf(stderr, "qstar %s: out of memory\n", C);
        rc = 1;
        goto out;
    }
    text = (unsigned char *)s;
    s[len] = 0;
    if (strlen(s) != len) {
        fprintf(stderr, "qstar %s: %s contains a NUL byte\n", C, text_path);
        rc = 1;
        goto out;
    }
    while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' ' || s[len - 1] == '\t')) s[--len] = 0;
    if (max_tokens == 0 || max_tokens > m.cfg.max_seq_len) max_tokens = m.cfg.max_seq_len;
    int n = 0;
    ids = malloc((len + 3) * sizeof *ids);
    if (!ids) {
        fprintf(stderr, "qstar %s: out of memory\n", C);
        rc = 1;
        goto out;
    }
    if (qs_tokenizer_encode(tok, s, 1, 0, ids, (int)(len + 3), &n) != QS_OK) {
        fprintf(stderr, "qstar %s: %s: %s\n", C, text_path, qstar_last_error());
        rc = 1;
        goto out;
    }
    if (n > max_tokens) n = (int)max_tokens;
    if (n < 3) {
        fprintf(stderr, "qstar %s: %s: the text needs at least 2 tokens\n", C, text_path);
        rc = 1;
        goto out;
    }
    qs_rng rng;
    qs_rng_seed(&rng, (uint64_t)seed);
    double t0 = qs_now();
    if (qs_viz_compute(&m, &qo, ids, n, &rng, &rec) != QS_OK) {
        rc = cli_fail(C);
        goto out;
    }
    char sub[4600];
    snprintf(sub, sizeof sub, "model %s | n_ahead %d (n_thought %d), tau_sample %g, %s mixing, seed %ld", model_path,
             qo.n_ahead, qo.n_ahead - 3, (double)qo.tau_sample, qo.mixing == QS_MIX_SIGMOID ? "sigmoid" : "linear",
             seed);
    const char *base = strrchr(text_path, '/');
    qs_viz_page page = {.title = base ? base + 1 : text_path, .subtitle = sub, .n_ahead = qo.n_ahead};
    snprintf(tmp, sizeof tmp, "%s.tmp", out_path);
    f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "qstar %s: cannot write %s: %s\n", C, tmp, strerror(errno));
        tmp[0] = 0;
        rc = 1;
        goto out;
    }
    qs_status st = qs_viz_write_html(f, tok, ids, n, &rec, &page);
    int cerr = fclose(f);
    f = NULL;
    if (st != QS_OK || cerr != 0 || rename(tmp, out_path) != 0) {
        fprintf(stderr, "qstar %s: cannot write %s%s%s\n", C, out_path, st != QS_OK ? ": " : "",
                st != QS_OK ? qstar_last_error() : "");
        rc = 1;
        goto out;
    }
    tmp[0] = 0;
    double sb = 0, sk = 0;
    for (size_t k = 0; k < rec.n; k++) sb += rec.t[k].nll_base, sk += rec.t[k].nll_think;
    fprintf(stderr, "qstar %s: wrote %s (%zu tokens, NLL %.4f without thought, %.4f after, gain %+.4f, %.1f s)\n", C,
            out_path, rec.n, sb / rec.n, sk / rec.n, (sb - sk) / rec.n, qs_now() - t0);
out:
    if (f) fclose(f);
    if (tmp[0]) remove(tmp);
    qs_nll_tokens_free(&rec);
    free(ids);
    free(text);
    qs_tokenizer_free(tok);
    qs_load_info_free(&info);
    qs_model_free(&m);
    return rc;
}

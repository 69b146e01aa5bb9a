// cli_internal.c: TRANSITIONAL helpers of the CLI that still use libqstar's
// internal types (src/). Each goes away when the last command using it calls
// the public API (include/qstar.h) instead; then this file is deleted.
#include "cli_internal.h"

#include <math.h>
#include <unistd.h>

int cli_load_tokenizer(const char *cmd, const char *model_path, const qs_load_info *info, int vocab_size,
                       const char **tok_path, qs_tokenizer **tok) {
    // a model directory's tokenizer.json comes first (then the loader's tokenizer.bin)
    static char json_path[4200];
    if (!*tok_path && model_path) {
        snprintf(json_path, sizeof json_path, "%s/tokenizer.json", model_path);
        if (access(json_path, R_OK) == 0) *tok_path = json_path;
    }
    if (!*tok_path && info->tokenizer_path[0]) *tok_path = info->tokenizer_path;
    if (!*tok_path) {
        fprintf(stderr, "qstar %s: %s has no tokenizer.json or tokenizer.bin; pass --tokenizer FILE\n", cmd, model_path);
        return 1;
    }
    if (qs_tokenizer_open(tok, *tok_path, vocab_size) != QS_OK) return cli_fail(cmd);
    return 0;
}

int cli_precision(const char *cmd, const char *s, qs_precision *p) {
    if (qs_precision_parse(s ? s : "fp32", p) != QS_OK) return cli_usage_error(cmd, "--precision: %s", qstar_last_error());
    if (qs_matmul_set_backend(NULL) != QS_OK) {
        fprintf(stderr, "qstar %s: %s\n", cmd, qstar_last_error());
        return 2;
    }
    return 0;
}

void cli_print_matmul(const qs_model *m) {
    fprintf(stderr, "matmul: %s, precision %s\n", qs_matmul_backend(), qs_precision_name(m->precision));
}

// (from qs_flags.c, whose Quiet-STaR option parser is now the library's options table)
int cli_thought_opts(const char *cmd, const char *qs_json, const qs_tokenizer *tok, long n_ahead, double tau_sample,
                     int greedy, qs_qstar_opts *qo) {
    // the library's rule (the public API uses the same)
    if (qs_qstar_opts_for_inference(qs_json, tok, (int)n_ahead, (float)tau_sample, greedy, qo) != QS_OK)
        return cli_fail(cmd);
    return 0;
}

int cli_think_when(int argc, char **argv, int *i, float *min_entropy) {
    const char *s;
    int r = cli_str(argc, argv, i, "--think-when", &s);
    if (r <= 0) return r;
    if (!strcmp(s, "always")) { *min_entropy = -INFINITY; return 1; }
    char *e = NULL;
    double x = strncmp(s, "entropy>", 8) ? NAN : strtod(s + 8, &e);
    if (!isfinite(x) || !e || e == s + 8 || *e) {
        fprintf(stderr, "qstar %s: --think-when expects entropy>X (X in nats) or always, got '%s'\n", argv[0], s);
        return -1;
    }
    *min_entropy = (float)x;
    return 1;
}

const char *cli_think_when_help =
    "  --think-when entropy>X  base pass first; think only at positions whose base prediction\n"
    "                       entropy (nats) exceeds X, elsewhere use the base prediction\n"
    "                       (always: at every position, the default)\n"
    "  --random-thoughts    thought tokens drawn uniformly from the vocabulary instead of\n"
    "                       from the model (content control: same start/end, length, head)\n";

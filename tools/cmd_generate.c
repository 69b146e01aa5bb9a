// cmd_generate.c: `qstar generate`: stream text from a model (llama2.c run.c
// semantics: prompt with BOS, stop at BOS or after --max-tokens positions).
#include "cli.h"
#include "io/model_io.h"
#include "model/generate.h"
#include "tokenizer/tokenizer.h"

#include <ctype.h>
#include <time.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: qstar generate --model PATH [options]\n\n"
            "  --model PATH         qstar model directory (tokenizer.bin inside) or llama2.c .bin\n"
            "  --tokenizer FILE     llama2.c tokenizer (required for a .bin model)\n"
            "  --prompt TEXT        text to continue (default: empty, start from BOS)\n"
            "  --max-tokens N       total positions incl. the prompt, like run.c -n\n"
            "                       (default 256; 0 or more than the model's max_seq_len = max_seq_len)\n"
            "  --temperature X      0 = greedy (default 1.0)\n"
            "  --top-p P            nucleus sampling in (0,1); 0 or 1 = off (default 0.9)\n"
            "  --seed S             sampler seed (default: time-based)\n\n"
            "Prints the text to stdout and \"achieved tok/s: X\" to stderr.\n");
}

// Prints a piece, skipping single unprintable bytes (run.c's safe_printf).
static int print_piece(void *ud, int token, const char *piece) {
    (void)ud, (void)token;
    if (!piece || !piece[0]) return 0;
    if (!piece[1]) {
        unsigned char b = (unsigned char)piece[0];
        if (!(isprint(b) || isspace(b))) return 0;
    }
    fputs(piece, stdout);
    fflush(stdout);
    return 0;
}

int cmd_generate(int argc, char **argv) {
    const char *C = "generate";
    const char *model_path = NULL, *tok_path = NULL, *prompt = "";
    long steps = 256, seed = -1;
    double temperature = 1.0, top_p = 0.9;
    for (int i = 1; i < argc; i++) {
        int r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if ((r = cli_str(argc, argv, &i, "--model", &model_path)) ||
            (r = cli_str(argc, argv, &i, "--tokenizer", &tok_path)) ||
            (r = cli_str(argc, argv, &i, "--prompt", &prompt)) ||
            (r = cli_int(argc, argv, &i, "--max-tokens", &steps, 0, 1L << 30)) ||
            (r = cli_float(argc, argv, &i, "--temperature", &temperature, 0.0, 1e6)) ||
            (r = cli_float(argc, argv, &i, "--top-p", &top_p, 0.0, 1.0)) ||
            (r = cli_int(argc, argv, &i, "--seed", &seed, 0, 0x7fffffffffffffffL))) {
            if (r < 0) return 2;
            continue;
        }
        return cli_usage_error(C, "unknown option '%s'", argv[i]);
    }
    if (!model_path) return cli_usage_error(C, "--model is required");

    qs_model m;
    qs_load_info info;
    if (qs_model_load(&m, model_path, &info) != QS_OK) return cli_fail(C);
    if (!tok_path) tok_path = info.tokenizer_path[0] ? info.tokenizer_path : NULL;
    int rc = 0;
    qs_tokenizer *tok = NULL;
    int *ids = NULL;
    if (!tok_path) {
        fprintf(stderr, "qstar %s: %s has no tokenizer.bin; pass --tokenizer FILE\n", C, model_path);
        rc = 1;
        goto out;
    }
    if (qs_tokenizer_load(&tok, tok_path, m.cfg.vocab_size) != QS_OK) {
        rc = cli_fail(C);
        goto out;
    }
    size_t cap = strlen(prompt) + 3;
    ids = malloc(cap * sizeof *ids);
    int n_ids = 0;
    if (!ids) {
        fprintf(stderr, "qstar %s: out of memory\n", C);
        rc = 1;
        goto out;
    }
    if (qs_tokenizer_encode(tok, prompt, 1, 0, ids, (int)QS_MIN(cap, 0x7fffffff), &n_ids) != QS_OK) {
        rc = cli_fail(C);
        goto out;
    }
    qs_gen_opts o = qs_gen_opts_default();
    o.steps = (int)steps;
    o.temperature = (float)temperature;
    o.top_p = (float)top_p;
    o.seed = seed >= 0 ? (uint64_t)seed : (uint64_t)time(NULL);
    qs_gen_stats stats;
    if (qs_generate(&m, tok, ids, n_ids, &o, print_piece, NULL, &stats) != QS_OK) {
        printf("\n");
        fflush(stdout);
        rc = cli_fail(C);
        goto out;
    }
    printf("\n");
    fflush(stdout);
    if (stats.n_positions > 1) fprintf(stderr, "achieved tok/s: %f\n", stats.tok_per_s);
out:
    free(ids);
    qs_tokenizer_free(tok);
    qs_load_info_free(&info);
    qs_model_free(&m);
    return rc;
}

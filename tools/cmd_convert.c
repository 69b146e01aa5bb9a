// cmd_convert.c: `qstar convert`: a llama2.c checkpoint (+ its tokenizer)
// into a qstar model directory (config.json, model.safetensors, tokenizer.bin).
#include "cli.h"
#include "io/model_io.h"
#include "tokenizer/tokenizer.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: qstar convert --model FILE.bin --tokenizer tok.bin --out DIR\n\n"
            "  --model PATH         llama2.c checkpoint (or a qstar model directory)\n"
            "  --tokenizer FILE     llama2.c tokenizer, copied to DIR/tokenizer.bin\n"
            "                       (default: the model directory's own tokenizer.bin)\n"
            "  --out DIR            output directory (created if needed)\n");
}

int cmd_convert(int argc, char **argv) {
    const char *C = "convert";
    const char *model_path = NULL, *tok_path = NULL, *out_dir = NULL;
    for (int i = 1; i < argc; i++) {
        int r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if ((r = cli_str(argc, argv, &i, "--model", &model_path)) ||
            (r = cli_str(argc, argv, &i, "--tokenizer", &tok_path)) ||
            (r = cli_str(argc, argv, &i, "--out", &out_dir))) {
            if (r < 0) return 2;
            continue;
        }
        return cli_usage_error(C, "unknown option '%s'", argv[i]);
    }
    if (!model_path) return cli_usage_error(C, "--model is required");
    if (!out_dir || !*out_dir) return cli_usage_error(C, "--out is required");

    qs_model m;
    qs_load_info info;
    if (qs_model_load(&m, model_path, &info) != QS_OK) return cli_fail(C);
    int rc = 0;
    if (!tok_path) tok_path = info.tokenizer_path[0] ? info.tokenizer_path : NULL;
    if (!tok_path) {
        fprintf(stderr, "qstar %s: %s has no tokenizer.bin; pass --tokenizer FILE\n", C, model_path);
        rc = 1;
        goto out;
    }
    // check that the tokenizer is valid and fits the model before copying it
    qs_tokenizer *tok = NULL;
    if (qs_tokenizer_load(&tok, tok_path, m.cfg.vocab_size) != QS_OK) {
        rc = cli_fail(C);
        goto out;
    }
    qs_tokenizer_free(tok);
    if (qs_model_save_dir(&m, out_dir, tok_path, info.quietstar_json) != QS_OK) {
        rc = cli_fail(C);
        goto out;
    }
    fprintf(stderr, "qstar %s: wrote %s (%d layers, dim %d, vocab %d, %zu parameters)\n", C, out_dir,
            m.cfg.n_layers, m.cfg.dim, m.cfg.vocab_size, m.layout.numel);
out:
    qs_load_info_free(&info);
    qs_model_free(&m);
    return rc;
}

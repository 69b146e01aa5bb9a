// cmd_convert.c: `qstar convert`: a llama2.c checkpoint (+ its tokenizer)
// into a qstar model directory (config.json, model.safetensors, tokenizer.bin).
// Flag parsing and printing over the public API (qstar_convert).
#include "cli.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: qstar convert --model FILE.bin --tokenizer tok.bin --out DIR\n\n"
            "  --model PATH         llama2.c checkpoint (or a qstar model directory)\n"
            "  --tokenizer FILE     tokenizer.json (+ the tokenizer_config.json beside it), tokenizer.model\n"
            "                       or llama2.c tokenizer, copied into DIR (default: the model's own)\n"
            "  --out DIR            output directory (created if needed; an existing non-empty one\n"
            "                       is refused unless --force)\n"
            "  --force              replace DIR completely (written beside it, then swapped in)\n"
            "  --dtype T            weights written as bf16, f16 or f32 (default: the input's)\n"
            "  --add-quietstar      add freshly initialised Quiet-STaR tensors (docs/algorithm.md:\n"
            "                       start/end = E[first token of \"---\"] / 100, talk head N(0,0.02)\n"
            "                       with a zero output layer) and a config.json \"quietstar\" block;\n"
            "                       tensors the model already has are kept. Quiet-STaR options\n"
            "                       (--n-ahead N, --n-talk K, --mixing, --thought-init STR, ...)\n"
            "                       go into that block\n"
            "  --seed S             talk head init seed (default 1)\n"
            "  --talk-head-std X    testing aid: talk head output layer N(0, X) instead of 0, so\n"
            "                       that thoughts change the predictions of an untrained head\n");
}

// Flags into p; 0, or the exit code after printing the error.
static int parse(int argc, char **argv, qstar_convert_params *p) {
    const char *C = "convert";
    long seed = 1;
    double head_std = 0.0;
    for (int i = 1; i < argc; i++) {
        int r;
        if (!strcmp(argv[i], "--add-quietstar")) { p->add_quietstar = 1; continue; }
        if (!strcmp(argv[i], "--force")) { p->force = 1; continue; }
        if ((r = cli_int(argc, argv, &i, "--seed", &seed, 0, 0x7fffffffffffffffL)) ||
            (r = cli_float(argc, argv, &i, "--talk-head-std", &head_std, 0.0, 1e3)) ||
            (r = cli_str(argc, argv, &i, "--model", &p->model_path)) ||
            (r = cli_str(argc, argv, &i, "--tokenizer", &p->tokenizer_path)) ||
            (r = cli_str(argc, argv, &i, "--out", &p->out_dir)) ||
            (r = cli_str(argc, argv, &i, "--dtype", &p->dtype))) {
            if (r < 0) return 2;
            continue;
        }
        if (cli_thought_flag(C, argc, argv, &i, &p->thought)) return 2; // the library's table
    }
    p->seed = (uint64_t)seed;
    p->talk_head_std = (float)head_std;
    return 0;
}

int cmd_convert(int argc, char **argv) {
    const char *C = "convert";
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
    qstar_convert_params p = qstar_convert_params_default();
    int rc = parse(argc, argv, &p);
    qstar_convert_result r;
    qs_status st = rc ? QS_OK : qstar_convert(&p, &r);
    qstar_train_options_free(p.thought);
    if (rc) return rc;
    if (st != QS_OK) return st == QS_ERR_ARG ? cli_usage_error(C, "%s", qstar_last_error()) : cli_fail(C);
    if (r.added_quietstar)
        fprintf(stderr, "qstar %s: Quiet-STaR tensors: n_ahead %d (n_thought %d), thought init token %d%s\n", C,
                r.n_ahead, r.n_ahead - 3, r.thought_init_id, r.thought_init_id < 0 ? " (mean embedding)" : "");
    fprintf(stderr, "qstar %s: wrote %s (%d layers, dim %d, vocab %d, %zu parameters)\n", C, p.out_dir, r.n_layers,
            r.dim, r.vocab_size, r.n_params);
    return 0;
}

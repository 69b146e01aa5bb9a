// cmd_convert.c: `qstar convert`: a llama2.c checkpoint (+ its tokenizer)
// into a qstar model directory (config.json, model.safetensors, tokenizer.bin).
#include "cli_internal.h"
#include "io/model_io.h"
#include "io/outpath.h"
#include "quietstar/evaltask.h"
#include "quietstar/qstar.h"
#include "tokenizer/tokenizer.h"

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

int cmd_convert(int argc, char **argv) {
    const char *C = "convert";
    const char *model_path = NULL, *tok_path = NULL, *out_dir = NULL, *dtype = NULL;
    int add_qs = 0, qs_flags = 0, force = 0;
    long seed = 1;
    double head_std = 0.0;
    qs_qstar_opts qo;
    qs_qstar_opts_default(&qo);
    for (int i = 1; i < argc; i++) {
        int r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--add-quietstar")) {
            add_qs = 1;
            continue;
        }
        if (!strcmp(argv[i], "--force")) {
            force = 1;
            continue;
        }
        if ((r = cli_qstar_flag(argc, argv, &i, &qo))) {
            if (r < 0) return 2;
            qs_flags = 1;
            continue;
        }
        if ((r = cli_int(argc, argv, &i, "--seed", &seed, 0, 0x7fffffffffffffffL)) ||
            (r = cli_float(argc, argv, &i, "--talk-head-std", &head_std, 0.0, 1e3)) ||
            (r = cli_str(argc, argv, &i, "--model", &model_path)) ||
            (r = cli_str(argc, argv, &i, "--tokenizer", &tok_path)) ||
            (r = cli_str(argc, argv, &i, "--out", &out_dir)) ||
            (r = cli_str(argc, argv, &i, "--dtype", &dtype))) {
            if (r < 0) return 2;
            continue;
        }
        return cli_usage_error(C, "unknown option '%s'", argv[i]);
    }
    if (!model_path) return cli_usage_error(C, "--model is required");
    if (!out_dir || !*out_dir) return cli_usage_error(C, "--out is required");
    if ((qs_flags || head_std > 0) && !add_qs) return cli_usage_error(C, "Quiet-STaR options need --add-quietstar");
    if (dtype && qs_save_dtype_parse(dtype) < 0) return cli_usage_error(C, "--dtype expects bf16, f16 or f32, got '%s'", dtype);

    if (qs_out_check(out_dir, QS_OUT_MODEL_DIR, force) != QS_OK) return cli_fail(C);
    qs_model m;
    qs_load_info info;
    if (qs_model_load(&m, model_path, &info) != QS_OK) return cli_fail(C);
    m.save_master = 0; // the 16-bit weights are the export: no fp32 master copy beside them
    if (dtype) m.save_dtype = qs_save_dtype_parse(dtype);
    int rc = 0;
    // check that the tokenizer is valid and fits the model before copying it
    qs_tokenizer *tok = NULL;
    if ((rc = cli_load_tokenizer(C, model_path, &info, m.cfg.vocab_size, &tok_path, &tok)) != 0) goto out;
    char *qs_json = NULL;
    if (add_qs) {
        // keep the settings of a checkpoint that has some, then apply the flags
        qs_qstar_opts base;
        qs_qstar_opts_default(&base);
        if (info.quietstar_json && !qs_flags && qs_qstar_opts_from_json(info.quietstar_json, &base) == QS_OK) qo = base;
        const int init_id = qs_thought_init_id(tok, qo.thought_init); // the library's one rule
        if (qs_qstar_opts_validate(&qo, 0) != QS_OK ||
            qs_qstar_init_tensors(&m, &qo, init_id, m.has_quietstar ? info.qs_present : 0, (uint64_t)seed) != QS_OK ||
            qs_qstar_opts_to_json(&qo, &qs_json) != QS_OK) {
            qs_tokenizer_free(tok);
            rc = cli_fail(C);
            goto out;
        }
        if (head_std > 0 && !(m.has_quietstar && (info.qs_present & 4))) {
            qs_rng r;
            qs_rng_seed(&r, (uint64_t)seed ^ 0x5eedull);
            for (int c = 0; c < m.cfg.dim; c++) m.w.head_w3[c] = (float)head_std * qs_rng_normal(&r);
        }
        fprintf(stderr, "qstar %s: Quiet-STaR tensors: n_ahead %d (n_thought %d), thought init token %d%s\n", C,
                qo.n_ahead, qo.n_ahead - 3, init_id, init_id < 0 ? " (mean embedding)" : "");
    }
    qs_tokenizer_free(tok);
    // written beside DIR, then swapped in whole: an old DIR is replaced completely or not at all
    char fresh[4300];
    snprintf(fresh, sizeof fresh, "%.4096s.tmp-convert", out_dir);
    if (qs_remove_tree(fresh) != QS_OK || qs_model_save_dir(&m, fresh, tok_path, qs_json ? qs_json : info.quietstar_json) != QS_OK ||
        qs_dir_replace(fresh, out_dir) != QS_OK) {
        rc = cli_fail(C);
        qs_remove_tree(fresh); // best effort: DIR itself is untouched
        free(qs_json);
        goto out;
    }
    free(qs_json);
    fprintf(stderr, "qstar %s: wrote %s (%d layers, dim %d, vocab %d, %zu parameters)\n", C, out_dir,
            m.cfg.n_layers, m.cfg.dim, m.cfg.vocab_size, m.layout.numel);
out:
    qs_load_info_free(&info);
    qs_model_free(&m);
    return rc;
}

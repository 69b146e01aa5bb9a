// cmd_generate.c: `qstar generate`: stream text from a model (llama2.c run.c
// semantics: prompt with BOS, stop at BOS or after --max-tokens positions).
// With a Quiet-STaR checkpoint it thinks before every token (SPEC section 6)
// unless --no-think is given.
#include "cli_internal.h"
#include "io/model_io.h"
#include "model/generate.h"
#include "quietstar/evaltask.h"
#include "quietstar/think.h"
#include "tokenizer/tokenizer.h"

#include <ctype.h>
#include <time.h>
#include <unistd.h>

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
            "  --seed S             sampler seed (default: time-based)\n"
            "  --precision P        GEMM precision: fp32 or bf16 (bf16 inputs, fp32 accumulation) (fp32)\n\n"
            "Thinking (Quiet-STaR checkpoints: config.json \"quietstar\" + start/end/talk-head tensors):\n"
            "  --think              a thought before every generated token (the default for such\n"
            "                       checkpoints; an error for a model without Quiet-STaR tensors)\n"
            "  --no-think           the same model without thoughts\n"
            "  --n-ahead N          thought length incl. start/end (default: the checkpoint's)\n"
            "  --tau-sample X       thought sampling temperature (default: the checkpoint's)\n"
            "  --greedy-thoughts    argmax thought tokens\n"
            "  --show-thoughts      print each thought before the token it produced: dimmed on a\n"
            "                       terminal, as [thought text] otherwise\n"
            "%s"
            "  --compare            also time runs without thoughts of the same length and print\n"
            "                       \"thought overhead: X.XXx time per token (ideal n_ahead = N)\"\n"
            "                       (process CPU time per token, then the wall-clock ratio)\n\n"
            "Prints the text to stdout and \"achieved tok/s: X\" to stderr (with --think-when also\n"
            "\"thoughts: K of N tokens\").\n", cli_think_when_help);
}

// Prints a piece, skipping single unprintable bytes (run.c's safe_printf).
// CPU seconds used by this process (all threads).
static double cpu_seconds(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) return 0.0;
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void put_piece(const char *piece, int escape_nl) {
    if (!piece || !piece[0]) return;
    if (!piece[1]) {
        unsigned char b = (unsigned char)piece[0];
        if (!(isprint(b) || isspace(b))) return;
    }
    if (!escape_nl) {
        fputs(piece, stdout);
        return;
    }
    for (const char *c = piece; *c; c++) {
        if (*c == '\n') fputs("\\n", stdout);
        else if (*c == '\r' || *c == '\t') fputc(' ', stdout);
        else fputc(*c, stdout);
    }
}

// Text of generated tokens from non-llama2.c tokenizers goes through a
// streaming decoder, which prints only complete UTF-8 characters (byte-level
// BPE pieces may split one); llama2.c output stays exactly run.c's.
static qs_tok_stream out_stream;
static int use_stream;

static void put_token(int token, const char *piece) {
    char buf[4096];
    size_t n = 0;
    if (use_stream && qs_tok_stream_push(&out_stream, token, buf, sizeof buf, &n) == QS_OK) fwrite(buf, 1, n, stdout);
    else put_piece(piece, 0);
}

static int print_piece(void *ud, int token, const char *piece) {
    (void)ud;
    put_token(token, piece);
    fflush(stdout);
    return 0;
}

typedef struct {
    const qs_tokenizer *tok;
    int show, tty;
    int prev;      // the last token (context of the next thought)
} think_ctx;

static int print_think(void *ud, int token, const char *piece, const int *thought, int n_thought, float w) {
    (void)w;
    think_ctx *c = ud;
    if (c->show && thought && n_thought > 0) {
        fputs(c->tty ? "\033[2m" : "[", stdout);
        int prev = c->prev;
        for (int u = 0; u < n_thought; u++) {
            put_piece(qs_tokenizer_piece(c->tok, prev, thought[u]), 1);
            prev = thought[u];
        }
        fputs(c->tty ? "\033[0m" : "]", stdout);
    }
    put_token(token, piece);
    fflush(stdout);
    c->prev = token;
    return 0;
}

int cmd_generate(int argc, char **argv) {
    const char *C = "generate";
    const char *model_path = NULL, *tok_path = NULL, *prompt = "", *precision = NULL;
    long steps = 256, seed = -1, n_ahead = 0;
    double temperature = 1.0, top_p = 0.9, tau_sample = 0.0;
    int think = -1, show = 0, compare = 0, greedy_thoughts = 0, when_given = 0;
    qs_think_ctl ctl = qs_think_ctl_default();
    for (int i = 1; i < argc; i++) {
        int r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--think")) { think = 1; continue; }
        if (!strcmp(argv[i], "--no-think")) { think = 0; continue; }
        if (!strcmp(argv[i], "--show-thoughts")) { show = 1; continue; }
        if (!strcmp(argv[i], "--compare")) { compare = 1; continue; }
        if (!strcmp(argv[i], "--greedy-thoughts")) { greedy_thoughts = 1; continue; }
        if (!strcmp(argv[i], "--random-thoughts")) { ctl.random_thoughts = 1; when_given = 1; continue; }
        if ((r = cli_think_when(argc, argv, &i, &ctl.min_entropy))) {
            if (r < 0) return 2;
            when_given = 1;
            continue;
        }
        if ((r = cli_str(argc, argv, &i, "--model", &model_path)) ||
            (r = cli_str(argc, argv, &i, "--tokenizer", &tok_path)) ||
            (r = cli_str(argc, argv, &i, "--prompt", &prompt)) ||
            (r = cli_str(argc, argv, &i, "--precision", &precision)) ||
            (r = cli_int(argc, argv, &i, "--max-tokens", &steps, 0, 1L << 30)) ||
            (r = cli_float(argc, argv, &i, "--temperature", &temperature, 0.0, 1e6)) ||
            (r = cli_float(argc, argv, &i, "--top-p", &top_p, 0.0, 1.0)) ||
            (r = cli_int(argc, argv, &i, "--seed", &seed, 0, 0x7fffffffffffffffL)) ||
            (r = cli_int(argc, argv, &i, "--n-ahead", &n_ahead, 3, 256)) ||
            (r = cli_float(argc, argv, &i, "--tau-sample", &tau_sample, 1e-6, 1e6))) {
            if (r < 0) return 2;
            continue;
        }
        return cli_usage_error(C, "unknown option '%s'", argv[i]);
    }
    if (!model_path) return cli_usage_error(C, "--model is required");
    qs_precision prec;
    if (cli_precision(C, precision, &prec)) return 2;
    if (think == 0 && (show || compare || n_ahead || tau_sample > 0 || greedy_thoughts || when_given))
        return cli_usage_error(C, "--show-thoughts, --compare, --n-ahead, --tau-sample, --greedy-thoughts, --think-when and --random-thoughts need thinking (drop --no-think)");

    qs_model m;
    qs_load_info info;
    if (qs_model_load(&m, model_path, &info) != QS_OK) return cli_fail(C);
    m.precision = prec;
    int rc = 0;
    qs_tokenizer *tok = NULL;
    int *ids = NULL;
    const int has_qs = m.has_quietstar && info.qs_present == 7;
    if (think == 1 && !has_qs) {
        fprintf(stderr, "qstar %s: --think needs a Quiet-STaR checkpoint, but %s has %s (train one with qstar train, "
                        "or add fresh ones with qstar convert --add-quietstar)\n", C, model_path,
                m.has_quietstar ? "only some of the Quiet-STaR tensors" : "no Quiet-STaR tensors");
        rc = 1;
        goto out;
    }
    if (think < 0) think = has_qs;
    if (!think && (show || compare || n_ahead || tau_sample > 0 || greedy_thoughts || when_given)) {
        fprintf(stderr, "qstar %s: %s has no Quiet-STaR tensors: thought options need a Quiet-STaR checkpoint\n", C,
                model_path);
        rc = 1;
        goto out;
    }
    if ((rc = cli_load_tokenizer(C, model_path, &info, m.cfg.vocab_size, &tok_path, &tok)) != 0) goto out;
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
    if (n_ids == 0) {
        fprintf(stderr, "qstar %s: the tokenizer has no BOS token; give a non-empty --prompt\n", C);
        rc = 1;
        goto out;
    }
    use_stream = strcmp(qs_tokenizer_kind_name(tok), "llama2c") != 0;
    qs_tok_stream_init(&out_stream, tok);
    out_stream.prev = ids[n_ids - 1];
    // the generation loop prints the tokens after position 0 (run.c: BOS there); with a
    // tokenizer that has no BOS (Qwen) position 0 is the prompt's first token: print it
    if (ids[0] != qs_tokenizer_bos(tok)) put_token(ids[0], qs_tokenizer_piece(tok, ids[0], ids[0]));
    qs_gen_opts o = qs_gen_opts_default();
    o.steps = (int)steps;
    o.temperature = (float)temperature;
    o.top_p = (float)top_p;
    o.seed = seed >= 0 ? (uint64_t)seed : (uint64_t)time(NULL);
    // meta tokens of a vocabulary that has them are never emitted
    int meta[2];
    const int n_meta = qs_task_meta_tokens(tok, meta);
    o.banned = meta, o.n_banned = n_meta;
    qs_gen_stats stats;
    if (!has_qs) { // a plain model: exactly run.c's generation
        if (qs_generate(&m, tok, ids, n_ids, &o, print_piece, NULL, &stats) != QS_OK) {
            printf("\n");
            fflush(stdout);
            rc = cli_fail(C);
            goto out;
        }
        printf("\n");
        fflush(stdout);
        if (stats.n_positions > 1) fprintf(stderr, "achieved tok/s: %f\n", stats.tok_per_s);
        goto out;
    }
    qs_qstar_opts qo;
    if ((rc = cli_thought_opts(C, info.quietstar_json, tok, n_ahead, tau_sample, greedy_thoughts, &qo)) != 0) goto out;
    think_ctx ctx = {.tok = tok, .show = show, .tty = isatty(1), .prev = ids[n_ids - 1]};
    const double c0 = cpu_seconds();
    qs_status st = qs_generate_think_ctl(&m, tok, ids, n_ids, &o, &qo, think, &ctl, print_think, &ctx, &stats);
    const double cpu_think = cpu_seconds() - c0;
    printf("\n");
    fflush(stdout);
    if (st != QS_OK) {
        rc = cli_fail(C);
        goto out;
    }
    if (stats.n_positions > 1)
        fprintf(stderr, "achieved tok/s: %f (%s, %d tokens)\n", stats.tok_per_s,
                think ? "thinking" : "no thoughts", stats.n_positions - 1);
    if (think && when_given)
        fprintf(stderr, "thoughts: %d of %d generated tokens\n", stats.n_thoughts, stats.n_generated);
    if (think && compare && stats.n_positions > 1 && stats.seconds > 0) {
        // The same number of positions without thoughts (BOS, the stop
        // token, is banned so that the run cannot end early), repeated until
        // it has run about as long as the thinking run: on a shared machine
        // both then see the same mix of load. Time per token is compared on
        // process CPU time (what this process computed) and wall time.
        qs_gen_opts o2 = o;
        int ban2[3] = {meta[0], meta[1], m.cfg.bos_id};
        ban2[n_meta] = m.cfg.bos_id;
        o2.banned = ban2, o2.n_banned = n_meta + 1;
        o2.steps = stats.n_positions;
        o2.stop_token = m.cfg.bos_id;
        double wall0 = 0, cpu0 = 0, w_start = qs_now(), c_start = cpu_seconds();
        long pos0 = 0;
        int reps = 0;
        do {
            qs_gen_stats s2;
            if (qs_generate_think(&m, tok, ids, n_ids, &o2, &qo, 0, NULL, NULL, &s2) != QS_OK) {
                rc = cli_fail(C);
                goto out;
            }
            wall0 += s2.seconds;
            pos0 += s2.n_positions - 1;
            reps++;
        } while (qs_now() - w_start < 0.5 * stats.seconds && reps < 64);
        cpu0 = cpu_seconds() - c_start;
        if (pos0 > 0 && wall0 > 0 && cpu0 > 0) {
            const long pos1 = stats.n_positions - 1;
            // CPU time covers whole calls: per position of each call
            const double cpu_ratio = (cpu_think / stats.n_positions) / (cpu0 / (pos0 + reps));
            const double wall_ratio = (stats.seconds / pos1) / (wall0 / pos0);
            fprintf(stderr, "no-think tok/s: %f (%d tokens, %d runs)\n", pos0 / wall0, stats.n_positions - 1, reps);
            fprintf(stderr, "thought overhead: %.2fx time per token (ideal n_ahead = %d); wall clock %.2fx\n",
                    cpu_ratio, qo.n_ahead, wall_ratio);
        }
    }
out:
    if (rc == 0) cli_print_matmul(&m); // after the run's own lines (errors stay one line)
    free(ids);
    qs_tokenizer_free(tok);
    qs_load_info_free(&info);
    qs_model_free(&m);
    return rc;
}

// cmd_generate.c: `qstar generate`: stream text from a model (llama2.c run.c
// semantics: prompt with BOS, stop at BOS or after --max-tokens positions).
// With a Quiet-STaR checkpoint it thinks before every token (SPEC section 6)
// unless --no-think is given. Flags and printing over the public API
// (qstar_generate_ex).
#include "cli.h"

#include <ctype.h>
#include <math.h>
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
            "  --think-at STR       think only where the text so far ends with STR (e.g. \"A: \"); that\n"
            "                       thought also produces the next --n-talk tokens through its talk\n"
            "                       passes, as training scores it; elsewhere no thought\n"
            "  --n-talk K           tokens produced from a --think-at thought (default: the\n"
            "                       checkpoint's n_talk)\n"
            "  --compare            also time runs without thoughts of the same length and print\n"
            "                       \"thought overhead: X.XXx time per token (ideal n_ahead = N)\"\n"
            "                       (process CPU time per token, then the wall-clock ratio)\n\n"
            "Prints the text to stdout and \"achieved tok/s: X\" to stderr (with --think-when also\n"
            "\"thoughts: K of N tokens\").\n", cli_think_when_help);
}

// Prints a thought piece, skipping single unprintable bytes (run.c's
// safe_printf), newlines escaped.
static void put_thought_piece(const char *piece) {
    if (!piece || !piece[0]) return;
    if (!piece[1] && !(isprint((unsigned char)piece[0]) || isspace((unsigned char)piece[0]))) return;
    for (const char *c = piece; *c; c++) {
        if (*c == '\n') fputs("\\n", stdout);
        else if (*c == '\r' || *c == '\t') fputc(' ', stdout);
        else fputc(*c, stdout);
    }
}

typedef struct {
    const qstar_model *m;
    int show, tty;
} print_ctx;

// The token's text (t->text is exactly what generate prints), after its thought with --show-thoughts.
static int print_token(void *ud, const qstar_token *t) {
    const print_ctx *c = ud;
    if (c->show && t->thought && t->n_thought > 0) {
        fputs(c->tty ? "\033[2m" : "[", stdout);
        int prev = t->prev;
        for (int u = 0; u < t->n_thought; u++) {
            put_thought_piece(qstar_token_text(c->m, prev, t->thought[u]));
            prev = t->thought[u];
        }
        fputs(c->tty ? "\033[0m" : "]", stdout);
    }
    fputs(t->text, stdout);
    fflush(stdout);
    return 0;
}

// --compare: the same number of positions without thoughts (BOS, the stop
// token, is never sampled, so the run cannot end early), repeated until it has
// run about as long as the thinking run: on a shared machine both then see the
// same mix of load. Time per token is compared on process CPU time (what this
// process computed) and on wall time.
static int compare(qstar_model *m, const char *prompt, const qstar_gen_params *gp, const qstar_gen_stats *st,
                   double cpu_think) {
    qstar_gen_params p2 = *gp;
    p2.think = 0, p2.no_stop = 1, p2.max_tokens = st->n_positions;
    p2.n_ahead = 0, p2.tau_sample = 0, p2.greedy_thoughts = 0, p2.random_thoughts = 0;
    p2.think_min_entropy = -INFINITY, p2.think_at = NULL, p2.n_talk = 0;
    double wall0 = 0, w_start = cli_wall_seconds(), c_start = cli_cpu_seconds();
    long pos0 = 0;
    int reps = 0;
    do {
        qstar_gen_stats s2;
        if (qstar_generate_ex(m, prompt, &p2, NULL, NULL, &s2) != QS_OK) return cli_fail("generate");
        wall0 += s2.seconds;
        pos0 += s2.n_positions - 1;
        reps++;
    } while (cli_wall_seconds() - w_start < 0.5 * st->seconds && reps < 64);
    const double cpu0 = cli_cpu_seconds() - c_start;
    if (pos0 > 0 && wall0 > 0 && cpu0 > 0) {
        const long pos1 = st->n_positions - 1;
        // CPU time covers whole calls: per position of each call
        const double cpu_ratio = (cpu_think / st->n_positions) / (cpu0 / (pos0 + reps));
        const double wall_ratio = (st->seconds / pos1) / (wall0 / pos0);
        fprintf(stderr, "no-think tok/s: %f (%d tokens, %d runs)\n", pos0 / wall0, st->n_positions - 1, reps);
        fprintf(stderr, "thought overhead: %.2fx time per token (ideal n_ahead = %d); wall clock %.2fx\n", cpu_ratio,
                st->n_ahead, wall_ratio);
    }
    return 0;
}

typedef struct {
    const char *model, *tokenizer, *prompt, *precision;
    long steps, seed, n_ahead, n_talk;
    double temperature, top_p, tau_sample;
    int think, show, compare, greedy, when_given;
    qstar_gen_params gp;
} gen_args;

// Parses argv into *a; returns -1 to go on, else the exit code.
static int parse(int argc, char **argv, gen_args *a) {
    for (int i = 1; i < argc; i++) {
        int r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--think")) { a->think = 1; continue; }
        if (!strcmp(argv[i], "--no-think")) { a->think = 0; continue; }
        if (!strcmp(argv[i], "--show-thoughts")) { a->show = 1; continue; }
        if (!strcmp(argv[i], "--compare")) { a->compare = 1; continue; }
        if (!strcmp(argv[i], "--greedy-thoughts")) { a->greedy = 1; continue; }
        if (!strcmp(argv[i], "--random-thoughts")) { a->gp.random_thoughts = 1, a->when_given = 1; continue; }
        if ((r = cli_think_when(argc, argv, &i, &a->gp.think_min_entropy))) {
            if (r < 0) return 2;
            a->when_given = 1;
            continue;
        }
        if ((r = cli_str(argc, argv, &i, "--model", &a->model)) ||
            (r = cli_str(argc, argv, &i, "--tokenizer", &a->tokenizer)) ||
            (r = cli_str(argc, argv, &i, "--prompt", &a->prompt)) ||
            (r = cli_str(argc, argv, &i, "--precision", &a->precision)) ||
            (r = cli_str(argc, argv, &i, "--think-at", &a->gp.think_at)) ||
            (r = cli_int(argc, argv, &i, "--n-talk", &a->n_talk, 1, 64)) ||
            (r = cli_int(argc, argv, &i, "--max-tokens", &a->steps, 0, 1L << 30)) ||
            (r = cli_float(argc, argv, &i, "--temperature", &a->temperature, 0.0, 1e6)) ||
            (r = cli_float(argc, argv, &i, "--top-p", &a->top_p, 0.0, 1.0)) ||
            (r = cli_int(argc, argv, &i, "--seed", &a->seed, 0, 0x7fffffffffffffffL)) ||
            (r = cli_int(argc, argv, &i, "--n-ahead", &a->n_ahead, 3, 256)) ||
            (r = cli_float(argc, argv, &i, "--tau-sample", &a->tau_sample, 1e-6, 1e6))) {
            if (r < 0) return 2;
            continue;
        }
        return cli_usage_error("generate", "unknown option '%s'", argv[i]);
    }
    if (!a->model) return cli_usage_error("generate", "--model is required");
    if (cli_precision_flag("generate", a->precision, &a->gp.precision)) return 2;
    if (a->gp.think_at && !a->gp.think_at[0]) return cli_usage_error("generate", "--think-at needs a non-empty text");
    if (a->n_talk && !a->gp.think_at) return cli_usage_error("generate", "--n-talk is for --think-at");
    if (a->gp.think_at && a->gp.think_min_entropy > -INFINITY)
        return cli_usage_error("generate", "--think-at and --think-when exclude each other");
    a->gp.n_talk = (int)a->n_talk;
    if (a->gp.think_at) a->when_given = 1;
    if (a->think == 0 && (a->show || a->compare || a->n_ahead || a->tau_sample > 0 || a->greedy || a->when_given))
        return cli_usage_error("generate", "--show-thoughts, --compare, --n-ahead, --tau-sample, --greedy-thoughts, "
                               "--think-when, --think-at and --random-thoughts need thinking (drop --no-think)");
    return -1;
}

// Whether the flags fit the model; prints why not (exit code 1) or returns 0.
static int check_model(const qstar_model *m, const gen_args *a) {
    qstar_config cfg;
    if (qstar_model_config(m, &cfg) != QS_OK) return cli_fail("generate");
    if (a->think == 1 && !cfg.has_quietstar) {
        fprintf(stderr, "qstar generate: --think needs a Quiet-STaR checkpoint, but %s has no (complete) Quiet-STaR "
                        "tensors (train one with qstar train, or add fresh ones with qstar convert --add-quietstar)\n",
                a->model);
        return 1;
    }
    if (!cfg.has_quietstar && (a->show || a->compare || a->n_ahead || a->tau_sample > 0 || a->greedy || a->when_given)) {
        fprintf(stderr, "qstar generate: %s has no Quiet-STaR tensors: thought options need a Quiet-STaR checkpoint\n",
                a->model);
        return 1;
    }
    return 0;
}

int cmd_generate(int argc, char **argv) {
    gen_args a = {.prompt = "", .steps = 256, .seed = -1, .temperature = 1.0, .top_p = 0.9, .think = -1,
                  .gp = qstar_gen_params_default()};
    int rc = parse(argc, argv, &a);
    if (rc >= 0) return rc;
    qstar_model_params mp = qstar_model_params_default();
    mp.tokenizer_path = a.tokenizer;
    qstar_model *m;
    if (qstar_model_load(a.model, &mp, &m) != QS_OK) return cli_fail("generate");
    if ((rc = check_model(m, &a)) != 0) {
        qstar_model_free(m);
        return rc;
    }
    qstar_config cfg;
    qstar_model_config(m, &cfg);
    qstar_gen_params *gp = &a.gp;
    gp->max_tokens = (int)a.steps, gp->temperature = (float)a.temperature, gp->top_p = (float)a.top_p;
    gp->seed = a.seed >= 0 ? (uint64_t)a.seed : (uint64_t)time(NULL);
    gp->think = a.think, gp->n_ahead = (int)a.n_ahead, gp->tau_sample = (float)a.tau_sample;
    gp->greedy_thoughts = a.greedy;
    print_ctx pc = {.m = m, .show = a.show, .tty = isatty(1)};
    qstar_gen_stats st;
    const double c0 = cli_cpu_seconds();
    qs_status s = qstar_generate_ex(m, a.prompt, gp, print_token, &pc, &st);
    const double cpu_think = cli_cpu_seconds() - c0;
    printf("\n");
    fflush(stdout);
    if (s != QS_OK) rc = cli_fail("generate");
    else if (st.n_positions > 1 && !cfg.has_quietstar) fprintf(stderr, "achieved tok/s: %f\n", st.tok_per_s);
    else if (st.n_positions > 1)
        fprintf(stderr, "achieved tok/s: %f (%s, %d tokens)\n", st.tok_per_s, st.think ? "thinking" : "no thoughts",
                st.n_positions - 1);
    if (rc == 0 && st.think && a.when_given)
        fprintf(stderr, "thoughts: %d of %d generated tokens\n", st.n_thoughts, st.n_generated);
    if (rc == 0 && st.think && a.compare && st.n_positions > 1 && st.seconds > 0)
        rc = compare(m, a.prompt, gp, &st, cpu_think);
    if (rc == 0) cli_print_backend(gp->precision); // after the run's own lines (errors stay one line)
    qstar_model_free(m);
    return rc;
}

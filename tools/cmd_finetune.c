// cmd_finetune.c: `qstar finetune` (plain language-model training) and
// `qstar train` (Quiet-STaR training, SPEC.md). Flag parsing and printing
// over the public API: every setting goes by name to qstar_train_params_set
// (the library's one options table), the run is qstar_trainer_create /
// qstar_trainer_run (checkpoints, JSONL log, resume, MPI ranks, output-dir
// rules); train_log.c prints the progress. Both commands share it: `train`
// adds the Quiet-STaR options.
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L // sigaction
#endif
#include "cli.h"
#include "train_log.h"

#include <math.h>
#include <signal.h>

static const char *CMD = "finetune";
static int g_quietstar = 0; // 1 for `qstar train`
static qstar_trainer *volatile g_trainer; // the run SIGINT stops
static volatile sig_atomic_t g_stop = 0;

static void on_sigint(int sig) {
    (void)sig;
    g_stop = 1;
    if (g_trainer) qstar_trainer_request_stop(g_trainer); // async-signal-safe: sets a flag
}

static void help(void) {
    if (g_quietstar)
        printf("usage: qstar train (--model PATH | --config FILE | --resume DIR) --data FILE --out DIR [options]\n"
               "\n"
               "Quiet-STaR training (think, talk, learn): thoughts after every token,\n"
               "a mixing head, LM loss + REINFORCE. Every option of `qstar finetune`, with\n"
               "small-model defaults: --batch 4 --seq-len 128 --lr 1e-4 --weight-decay 0.001,\n"
               "--policy-beta 1 (measured on stories260K; the paper's 1e6 degrades small models).\n\n");
    else
        printf("usage: qstar finetune (--model PATH | --config FILE | --resume DIR) --data FILE --out DIR [options]\n"
               "\n"
               "Plain language-model training (next-token loss) with AdamW, from a model\n"
               "(directory or llama2.c .bin) or from random init (a Hugging Face config.json).\n\n");
    fputs(qstar_train_options_help(g_quietstar), stdout);
    if (g_quietstar)
        printf("\nthought-length curriculum (train):\n"
               "  --curriculum SPEC      thought-length curriculum \"n_ahead:n_talk:lr:steps,...\": one stage\n"
               "                         after the other, each from the previous stage's checkpoint;\n"
               "                         stage k writes DIR/stage<k> (the result: DIR/stage<last>/ckpt)\n"
               "                         (replaces --n-ahead/--n-talk/--lr/--steps; no --resume)\n");
    printf("\nCtrl-C finishes the current step, saves a checkpoint and exits 0; continue with\n"
           "`qstar %s --resume DIR`.\n", CMD);
}

// Every flag into p (by name, through the library's table); --print-every is
// the CLI's own. Returns 0, or the exit code after printing the error.
static int parse(int argc, char **argv, qstar_train_params *p, long *print_every, int *out_given) {
    for (int i = 1; i < argc; i++) {
        const char *name = strncmp(argv[i], "--", 2) ? NULL : argv[i] + 2;
        const int kind = name ? qstar_train_option_kind(name) : -1;
        if (kind < 0) return cli_usage_error(CMD, "unknown argument '%s'", argv[i]);
        if (kind > 0 && i + 1 >= argc) return cli_usage_error(CMD, "%s needs a value", argv[i]);
        const char *value = kind > 0 ? argv[++i] : NULL;
        if (qstar_train_params_set(p, name, value) != QS_OK) return cli_usage_error(CMD, "%s", qstar_last_error());
        if (!strcmp(name, "out") || !strcmp(name, "resume")) *out_given = 1;
    }
    if (!*out_given) return cli_usage_error(CMD, "--out DIR is required");
    char buf[32];
    if (qstar_train_params_get(p, "print-every", buf, sizeof buf) == QS_OK && buf[0]) *print_every = atol(buf);
    return 0;
}

static void print_summary(const qstar_train_summary *s) {
    if (isfinite(s->nll_first)) printf("initial held-out NLL: %.4f (step %ld)\n", s->nll_first, s->step_first);
    else printf("initial held-out NLL: n/a (no held-out data)\n");
    if (isfinite(s->nll_last) && s->interrupted && s->step_last != s->step)
        printf("final held-out NLL:   %.4f (step %ld; stopped at step %ld before evaluating again)\n", s->nll_last,
               s->step_last, s->step);
    else if (isfinite(s->nll_last)) printf("final held-out NLL:   %.4f (step %ld)\n", s->nll_last, s->step_last);
    else printf("final held-out NLL:   n/a\n");
    printf("steps: %ld of %ld (%ld in this run, %ld skipped), time: %.1f s\n", s->step, s->total, s->steps_run,
           s->skipped, s->seconds);
    if (s->ckpt_dir[0]) printf("checkpoint: %s\n", s->ckpt_dir);
    if (s->interrupted) printf("stopped early; continue with: qstar %s --resume %s\n", CMD, s->out_dir);
}

// Trains with Ctrl-C (and, under mpirun, SIGTERM) asking the trainer to stop.
static qs_status train(qstar_trainer *t, int n_ranks) {
    struct sigaction sa, old_sa, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND; // a second Ctrl-C kills the process
    g_trainer = t;
    sigaction(SIGINT, &sa, &old_sa);
    if (n_ranks > 1) sigaction(SIGTERM, &sa, &old_term); // mpirun turns Ctrl-C into SIGTERM for the ranks
    qs_status st = qstar_trainer_run(t);
    sigaction(SIGINT, &old_sa, NULL);
    if (n_ranks > 1) sigaction(SIGTERM, &old_term, NULL);
    g_trainer = NULL;
    return st;
}

static int run(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            help();
            return 0;
        }
    qstar_train_params p = qstar_train_params_default();
    p.quietstar = g_quietstar;
    long print_every = 10;
    int out_given = 0, rc = parse(argc, argv, &p, &print_every, &out_given);
    if (rc != 0) {
        qstar_train_params_free(&p);
        return rc;
    }
    progress pr = {.cmd = CMD, .quietstar = g_quietstar, .tty = cli_is_tty(), .print_every = print_every};
    p.progress = train_log_event;
    p.progress_user = &pr;
    qstar_trainer *t = NULL;
    qs_status st = qstar_trainer_create(&p, &t);
    char plan_flag[8];
    qstar_train_params_get(&p, "plan", plan_flag, sizeof plan_flag);
    qstar_train_params_free(&p);
    if (st != QS_OK) {
        train_log_end_line(&pr);
        rc = st == QS_ERR_ARG ? cli_usage_error(CMD, "%s", qstar_last_error()) : cli_fail(CMD);
        qstar_mpi_abort(rc); // under mpirun the other ranks would wait for this one
        return rc;
    }
    int n_ranks = 1;
    const int rank = qstar_trainer_rank(t, &n_ranks);
    if (plan_flag[0] == '1') { // on paper only
        fputs(qstar_trainer_plan(t), stdout);
        qstar_trainer_free(t);
        return 0;
    }
    st = train(t, n_ranks);
    train_log_end_line(&pr);
    if (st != QS_OK) {
        if (n_ranks > 1) fprintf(stderr, "qstar %s: rank %d of %d: ", CMD, rank, n_ranks);
        rc = cli_fail(CMD);
        qstar_trainer_free(t);
        qstar_mpi_abort(rc);
        return rc;
    }
    qstar_train_summary sum;
    if (rank == 0 && qstar_trainer_summary(t, &sum) == QS_OK) print_summary(&sum);
    qstar_trainer_free(t);
    return 0;
}

int cmd_finetune(int argc, char **argv) {
    CMD = "finetune", g_quietstar = 0;
    return run(argc, argv);
}

// --curriculum: the stages run one after the other through run(), each with
// the command line minus --curriculum/--model/--config/--out, plus the
// stage's --n-ahead/--n-talk/--lr/--steps, --model = the previous stage's
// checkpoint (the first: the given --model or --config) and its own --out.
static int run_curriculum(int argc, char **argv, const char *spec) {
    qstar_curriculum_stage cu[32];
    int n_stages = 0;
    if (qstar_curriculum_parse(spec, cu, 32, &n_stages) != QS_OK) return cli_usage_error(CMD, "%s", qstar_last_error());
    const char *model = NULL, *config = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        static const char *const clash[] = {"--resume", "--n-ahead", "--n-talk", "--lr", "--steps", "--stop-after"};
        for (size_t k = 0; k < sizeof clash / sizeof clash[0]; k++)
            if (!strcmp(argv[i], clash[k])) return cli_usage_error(CMD, "--curriculum sets the stages; drop %s", clash[k]);
        if (i + 1 < argc && !strcmp(argv[i], "--model")) model = argv[i + 1];
        if (i + 1 < argc && !strcmp(argv[i], "--config")) config = argv[i + 1];
        if (i + 1 < argc && !strcmp(argv[i], "--out")) out = argv[i + 1];
    }
    if (!out) return cli_usage_error(CMD, "--out DIR is required");
    if (!model == !config) return cli_usage_error(CMD, "give exactly one of --model PATH or --config FILE");
    char **av = calloc((size_t)argc + 16, sizeof *av);
    char prev[4400] = "", dir[4200], na[32], nt[32], lr[32], st[32];
    if (!av) { fprintf(stderr, "qstar %s: out of memory\n", CMD); return 1; }
    int rc = 0;
    for (int k = 0; k < n_stages && rc == 0; k++) {
        int n = 0;
        av[n++] = argv[0];
        for (int i = 1; i < argc; i++) {
            if (!strcmp(argv[i], "--curriculum") || !strcmp(argv[i], "--model") || !strcmp(argv[i], "--config") ||
                !strcmp(argv[i], "--out")) { i++; continue; }
            av[n++] = argv[i];
        }
        snprintf(dir, sizeof dir, "%s/stage%d", out, k + 1);
        snprintf(na, sizeof na, "%d", cu[k].n_ahead), snprintf(nt, sizeof nt, "%d", cu[k].n_talk);
        snprintf(lr, sizeof lr, "%.9g", (double)cu[k].lr), snprintf(st, sizeof st, "%ld", cu[k].steps);
        const char *extra[] = {k ? "--model" : model ? "--model" : "--config", k ? prev : model ? model : config,
                               "--out", dir, "--n-ahead", na, "--n-talk", nt, "--lr", lr, "--steps", st};
        for (size_t e = 0; e < sizeof extra / sizeof extra[0]; e++) av[n++] = (char *)extra[e];
        av[n] = NULL;
        fprintf(stderr, "curriculum stage %d/%d: n_ahead %d, n_talk %d, lr %g, %ld steps -> %s\n", k + 1, n_stages,
                cu[k].n_ahead, cu[k].n_talk, (double)cu[k].lr, cu[k].steps, dir);
        rc = run(n, av);
        snprintf(prev, sizeof prev, "%s/ckpt", dir);
        if (rc == 0 && g_stop) { fprintf(stderr, "qstar %s: curriculum interrupted after stage %d\n", CMD, k + 1); rc = 1; }
    }
    free(av);
    return rc;
}

int cmd_train(int argc, char **argv) {
    CMD = "train", g_quietstar = 1;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return run(argc, argv);
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--curriculum")) return run_curriculum(argc, argv, argv[i + 1]);
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--curriculum")) return cli_usage_error(CMD, "--curriculum needs a value");
    return run(argc, argv);
}

// qstar.c: the command-line tool. Thin: each command parses its flags and
// calls libqstar; only this layer prints and chooses exit codes.
#include "cli.h"

#include <unistd.h>

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"generate", cmd_generate, "generate text from a model (greedy or sampled)"},
    {"eval", cmd_eval, "mean NLL / perplexity of a text or JSONL file"},
    {"train", cmd_train, "Quiet-STaR training: thoughts, mixing head, REINFORCE"},
    {"finetune", cmd_finetune, "plain language-model training (from a checkpoint or random init)"},
    {"dump-step", cmd_dump_step, "one Quiet-STaR step on a batch: losses, rewards and every gradient to safetensors"},
    {"viz", cmd_viz, "HTML page: each token coloured by how much its thought changed its likelihood"},
    {"plot", cmd_plot, "PNG charts (gnuplot) of a Quiet-STaR training log"},
    {"tokenize", cmd_tokenize, "text -> token ids (or ids -> text with --decode) with any supported tokenizer"},
    {"convert", cmd_convert, "convert a llama2.c model + tokenizer into a qstar model directory"},
    {"prepare", cmd_prepare, "tokenize corpora once into a token directory that train/finetune map (bigger than memory)"},
};

static void usage(FILE *f) {
    fprintf(f, "qstar %s: Quiet-STaR in C: train and run language models that think before they speak\n\n"
               "usage: qstar COMMAND [options]   (qstar COMMAND --help for its options)\n\ncommands:\n",
            QSTAR_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv) {
    // The wait policy that suits the matmul backend (passive for OpenBLAS,
    // see qstar_omp_wait_policy) is read when libgomp loads, so set it and
    // re-execute once; an explicit OMP_WAIT_POLICY from the user is kept.
    const char *policy = qstar_omp_wait_policy();
    if (policy && !getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", policy, 1);
        execv("/proc/self/exe", argv); // returns only on failure: run as is
    }
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("qstar %s\n", QSTAR_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "qstar: unknown command '%s' (see qstar --help)\n", argv[1]);
    return 2;
}

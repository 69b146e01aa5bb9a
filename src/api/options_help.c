// options_help.c: the --help text of the training settings
// (qstar_train_options_help, qstar_thought_options_help), made from the
// options table's help lines (options.c), group by group.
#include "api/options.h"
#include "train/dist.h"

#include <stdio.h>
#include <string.h>

static const struct {
    int first, last; // table entries [first, last]
    const char *head, *tail;
} groups[] = {
    {QO_PRESET, QO_EMA_DECAY, "Quiet-STaR (train):\n",
     "Held-out evaluation reports base NLL and thought-mixed NLL side by side (eval mode:\n"
     "n_passes 1, n_talk 1). Checkpoints hold the learned meta embeddings and mixing head,\n"
     "which are never re-initialised on load, and a \"quietstar\" block in config.json.\n\n"},
    {QO_MODEL, QO_FORCE, "model and data:\n", "\n"},
    {QO_STEPS, QO_ACT_BUDGET, "optimisation:\n", "\n"},
    {QO_EVAL_EVERY, QO_PRINT_EVERY, "evaluation, logging, checkpoints:\n", "\n"},
    {QO_ZERO, QO_BANDWIDTH,
     "several processes (MPI, data parallel): mpirun -np N qstar train|finetune ...\n"
     "  The global batch (--batch x --grad-accum) is the same whatever N; each rank computes\n"
     "  a block of the micro-batches and gradients are summed over ranks in a fixed order\n"
     "  (same N: byte-identical runs; N a power of two <= --grad-accum: the bits of one\n"
     "  process). Rank 0 logs and checkpoints; --resume works with another N. Use\n"
     "  --grad-accum a multiple of N to keep every rank busy.\n",
     NULL},
};

static size_t add(char *t, size_t cap, size_t len, const char *s) {
    int n = snprintf(t + len, len < cap ? cap - len : 0, "%s", s);
    return n > 0 ? len + (size_t)n : len;
}

static size_t add_entries(char *t, size_t cap, size_t len, int first, int last) {
    for (int k = first; k <= last; k++) len = add(t, cap, len, qo_table[k].help);
    return len;
}

QSTAR_API const char *qstar_train_options_help(int quietstar) {
    static char text[2][12288];
    char *t = text[quietstar != 0];
    const size_t cap = sizeof text[0];
    if (t[0]) return t;
    size_t len = 0;
    for (size_t g = quietstar ? 0 : 1; g < sizeof groups / sizeof groups[0]; g++) {
        len = add(t, cap, len, groups[g].head);
        len = add_entries(t, cap, len, groups[g].first, groups[g].last);
        if (groups[g].tail) len = add(t, cap, len, groups[g].tail);
    }
    add(t, cap, len, qs_dist_built_with_mpi() ? "  this build: with MPI (Open MPI)\n"
                                              : "  this build: without MPI (install openmpi-bin libopenmpi-dev and rebuild)\n");
    return t;
}

QSTAR_API const char *qstar_thought_options_help(void) {
    static char text[4096];
    if (!text[0]) add_entries(text, sizeof text, 0, QO_FIRST_THOUGHT, QO_COUNT - 1);
    return text;
}

// qs_flags.c: the Quiet-STaR options shared by `train` and `dump-step`.
#include "cli_internal.h"
#include "quietstar/qstar.h"

#include <math.h>

int cli_qstar_flag(int argc, char **argv, int *i, void *opts) {
    qs_qstar_opts *o = opts;
    long v;
    double x;
    const char *s;
    int r;
#define INT(name, field, lo, hi) if ((r = cli_int(argc, argv, i, name, &v, lo, hi))) { if (r > 0) o->field = (int)v; return r; }
#define FLT(name, field, lo, hi) if ((r = cli_float(argc, argv, i, name, &x, lo, hi))) { if (r > 0) o->field = (float)x; return r; }
    INT("--n-ahead", n_ahead, 3, 256);
    INT("--n-talk", n_talk, 1, QS_MAX_TALK);
    INT("--n-passes", n_passes, 1, 64);
    FLT("--base-loss-weight", base_loss_weight, 0, 1);
    FLT("--policy-beta", policy_beta, 0, 1e12);
    FLT("--tau-sample", tau_sample, 1e-6, 1e6);
    FLT("--tau-rl", tau_rl, 1e-6, 1e6);
    FLT("--embedding-scale", embedding_scale, 1e-6, 1e6);
    FLT("--ema-decay", ema_decay, 0, 0.999999);
#undef INT
#undef FLT
    if (!strcmp(argv[*i], "--no-clamp")) { o->clamp_negative_rewards = 0; return 1; }
    if (!strcmp(argv[*i], "--clamp")) { o->clamp_negative_rewards = 1; return 1; }
    if (!strcmp(argv[*i], "--greedy-thoughts")) { o->greedy_thoughts = 1; return 1; }
    if ((r = cli_str(argc, argv, i, "--mixing", &s))) {
        if (r < 0) return r;
        if (!strcmp(s, "linear")) o->mixing = QS_MIX_LINEAR;
        else if (!strcmp(s, "sigmoid")) o->mixing = QS_MIX_SIGMOID;
        else { fprintf(stderr, "qstar %s: --mixing expects linear or sigmoid, got '%s'\n", argv[0], s); return -1; }
        return 1;
    }
    if ((r = cli_str(argc, argv, i, "--reward-baseline", &s))) {
        if (r < 0) return r;
        if (!strcmp(s, "mean")) o->reward_baseline = QS_BASELINE_MEAN;
        else if (!strcmp(s, "ema")) o->reward_baseline = QS_BASELINE_EMA;
        else { fprintf(stderr, "qstar %s: --reward-baseline expects mean or ema, got '%s'\n", argv[0], s); return -1; }
        return 1;
    }
    if ((r = cli_str(argc, argv, i, "--thought-init-end", &s))) {
        if (r < 0) return r;
        if (strlen(s) >= sizeof o->thought_init_end) { fprintf(stderr, "qstar %s: --thought-init-end too long\n", argv[0]); return -1; }
        snprintf(o->thought_init_end, sizeof o->thought_init_end, "%s", s);
        return 1;
    }
    if ((r = cli_str(argc, argv, i, "--thought-init", &s))) {
        if (r < 0) return r;
        if (strlen(s) >= sizeof o->thought_init) { fprintf(stderr, "qstar %s: --thought-init too long\n", argv[0]); return -1; }
        snprintf(o->thought_init, sizeof o->thought_init, "%s", s);
        return 1;
    }
    return 0;
}

const char *cli_qstar_help =
    "Quiet-STaR options (defaults: the released code's, see docs/algorithm.md):\n"
    "  --n-ahead N            thought length incl. start/end, n_thought = N-3 sampled tokens (12)\n"
    "  --n-talk K             true tokens predicted after each thought (4)\n"
    "  --n-passes P           thoughts sampled per position (2)\n"
    "  --base-loss-weight W   weight of the base NLL in L_lm; talk gets 1-W (0.5)\n"
    "  --policy-beta B        weight of the REINFORCE loss (1e6)\n"
    "  --tau-sample X         thought sampling temperature (1)\n"
    "  --tau-rl X             temperature of the policy log-likelihoods (3)\n"
    "  --no-clamp             keep negative advantages (default: clamp at 0)\n"
    "  --embedding-scale S    start/end embedding = S * parameter (100)\n"
    "  --thought-init STR     start/end init from E[first token of STR] / S (\"---\")\n"
    "  --thought-init-end STR  end init from STR instead (train only; default: as the start)\n"
    "  --mixing linear|sigmoid  mixing weight unbounded (released) or sigmoid (linear)\n"
    "  --greedy-thoughts      argmax thoughts instead of sampling\n"
    "  --reward-baseline mean|ema  reward baseline: mean = the released one (reward minus its\n"
    "                         mean over the n_passes thoughts); ema = RLP-style: reward = talk\n"
    "                         log-likelihood minus that of an EMA copy of the model without\n"
    "                         thoughts (works with --n-passes 1) (mean)\n"
    "  --ema-decay D          EMA copy = D * EMA + (1-D) * weights after each update; it starts\n"
    "                         from the weights when a run (or --resume) starts (0.99)\n";

// cmd_finetune.c: `qstar finetune` (plain language-model training) and
// `qstar train` (Quiet-STaR training, SPEC.md), from a checkpoint or from
// random init, with held-out evaluation, checkpoints, SIGINT handling and
// exact resume. The loop itself is libqstar's trainer; this file parses
// flags and sets the run up; train_log.c prints progress and writes the
// JSONL log. Both commands share it:
// `train` adds the Quiet-STaR options and logs its quantities.
#include "cli_internal.h"
#include "train_log.h"

#include <cJSON.h>
#include <errno.h>
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/dataset.h"
#include "io/model_io.h"
#include "io/outpath.h"
#include "tokenizer/tokenizer.h"
#include "train/checkpoint.h"
#include "train/trainer.h"
#include "train/run.h"
#include "train/curriculum.h"
#include "train/dist.h"
#include "quietstar/qstar.h"
#include "quietstar/evaltask.h"

static const char *CMD = "finetune";
static int g_quietstar = 0; // 1 for `qstar train`

// Defaults that differ between fine-tuning a trained model (--model) and
// training from random init (--config). The random-init ones were tuned on
// the stories260K shape / TinyStories: held-out NLL below 2.5 after ~300
// steps (1.2M tokens), 2.07 after 800.
#define DEFAULT_LR_MODEL 5e-4
#define DEFAULT_LR_RANDOM 5e-3
#define DEFAULT_BATCH_MODEL 32
#define DEFAULT_BATCH_RANDOM 16

#define HELP_MPI                                                                                     \
    "several processes (MPI, data parallel): mpirun -np N qstar train|finetune ...\n"                 \
    "  The global batch (--batch x --grad-accum) is the same whatever N; each rank computes\n"         \
    "  a block of the micro-batches and gradients are summed over ranks in a fixed order\n"          \
    "  (same N: byte-identical runs; N a power of two <= --grad-accum: the bits of one\n"            \
    "  process). Rank 0 logs and checkpoints; --resume works with another N. Use\n"                 \
    "  --grad-accum a multiple of N to keep every rank busy.\n"                                     \
    "  --zero 1             shard the AdamW moments over the ranks (same results)\n"                \
    "  --plan               print the run's plan (parameters, all-reduce volume per step,\n"       \
    "                       communication time) and exit without training\n"                     \
    "  --ranks N            ranks to plan for (default: this run's)\n"                            \
    "  --bandwidth G        link bandwidth for the plan, Gbit/s (10)\n"

static void help_mpi_build(void) {
    printf("  this build: %s\n", qs_dist_built_with_mpi() ? "with MPI (Open MPI)"
                                                          : "without MPI (install openmpi-bin libopenmpi-dev and rebuild)");
}

static void help_train(void) {
    printf("usage: qstar train (--model PATH | --config FILE | --resume DIR) --data FILE --out DIR [options]\n"
           "\n"
           "Quiet-STaR training (think, talk, learn): thoughts after every token,\n"
           "a mixing head, LM loss + REINFORCE. Takes every option of `qstar finetune`\n"
           "(optimisation, evaluation, checkpoints, --resume; see qstar finetune --help) with\n"
           "small-model defaults: --batch 4 --seq-len 128 --lr 1e-4 --weight-decay 0.001,\n"
           "--policy-beta 1 (measured on stories260K; the paper's 1e6 degrades small models),\n"
           "plus:\n"
           "  --preset paper         the released run (docs/algorithm.md): n_ahead 12, n_talk 4,\n"
           "                         n_passes 2, batch 8, seq-len 256, lr 1e-6, betas (0.9, 0.999),\n"
           "                         weight decay 0.001, 20 warmup steps then constant, clip 1.0,\n"
           "                         100 steps (flags given after it override it)\n"
           "  --show-thoughts N      decoded thoughts printed/logged per step (2)\n"
           "  --curriculum SPEC      thought-length curriculum \"n_ahead:n_talk:lr:steps,...\": one stage\n"
           "                         after the other, each from the previous stage's checkpoint;\n"
           "                         stage k writes DIR/stage<k> (the result: DIR/stage<last>/ckpt)\n"
           "                         (replaces --n-ahead/--n-talk/--lr/--steps; no --resume)\n"
           "%s"
           "\n%s"
           "\nHeld-out evaluation reports base NLL and thought-mixed NLL side by side (eval mode:\n"
           "n_passes 1, n_talk 1). Checkpoints hold the learned meta embeddings and mixing head,\n"
           "which are never re-initialised on load, and a \"quietstar\" block in config.json.\n",
           cli_precision_help, cli_qstar_help);
    printf("\n%s", HELP_MPI);
    help_mpi_build();
}

static void help(void) {
    if (g_quietstar) { help_train(); return; }
    printf(
        "usage: qstar finetune (--model PATH | --config FILE | --resume DIR) --data FILE --out DIR [options]\n"
        "\n"
        "Plain language-model training (next-token loss) with AdamW, from a model\n"
        "(directory or llama2.c .bin) or from random init (a Hugging Face config.json).\n"
        "\n"
        "model and data:\n"
        "  --model PATH         model directory or llama2.c .bin to start from\n"
        "  --config FILE        config.json: random init (seeded by --seed) instead\n"
        "  --tokenizer FILE     tokenizer.json, tokenizer.model or llama2.c tokenizer (default: the\n"
        "                       model directory's own); copied into the checkpoints\n"
        "  --dtype T            checkpoint weights as bf16, f16 or f32 (default: the model's); with\n"
        "                       16-bit weights the exact fp32 ones go to master_weights.safetensors\n"
        "  --data FILE          text (documents separated by blank lines) or JSONL, or a\n"
        "                       directory made by `qstar prepare` (mapped, its own held-out split)\n"
        "  --field NAME         JSONL field holding the text (text)\n"
        "  --val-frac F         fraction of documents held out for evaluation (0.05)\n"
        "  --out DIR            run directory: DIR/ckpt (checkpoint), DIR/log.jsonl; a non-empty\n"
        "                       DIR is refused unless --force or --resume DIR; DIR/qstar.lock keeps\n"
        "                       a second run off it while this one runs\n"
        "  --force              start a fresh run in a non-empty DIR (its checkpoint is replaced\n"
        "                       whole at the first save, its log restarted)\n"
        "  --resume DIR         continue the run in DIR (or checkpoint DIR) exactly where it\n"
        "                       stopped; its settings are reused unless given again\n"
        "\n"
        "optimisation:\n"
        "  --steps N            optimizer steps (1000)\n"
        "  --batch B            sequences per micro-batch (%d with --model, %d with --config)\n"
        "  --seq-len T          tokens per sequence (256)\n"
        "  --grad-accum K       micro-batches per step (1)\n"
        "  --lr X               peak learning rate (%g with --model, %g with --config)\n"
        "  --min-lr X           final learning rate of the cosine decay (0.1 * lr)\n"
        "  --warmup N           linear warmup steps (min(100, steps/10))\n"
        "  --weight-decay X     AdamW decoupled weight decay (0.1)\n"
        "  --beta1 X --beta2 X  AdamW betas (0.9, 0.95)\n"
        "  --eps X              AdamW epsilon (1e-8)\n"
        "  --clip X             max global gradient norm, 0 = off (1.0)\n"
        "  --seed S             random init and data sampling seed (1337)\n"
        "  --threads N          threads (default: all cores); resume with the same count\n"
        "                       for bit-identical results\n"
        "  --precision P        GEMM precision: fp32, or bf16 (bf16 inputs, fp32 accumulation;\n"
        "                       weights, gradients and optimizer state stay fp32) (fp32)\n"
        "\n"
        "evaluation, logging, checkpoints:\n"
        "  --eval-every N       held-out NLL every N steps, 0 = start and end only (100)\n"
        "  --eval-batches N     batches of sequential held-out windows per eval, 0 = all (20)\n"
        "  --save-every N       checkpoint every N steps, 0 = at the end only (500)\n"
        "  --stop-after N       stop with a checkpoint after step N, as if interrupted\n"
        "  --log FILE           JSONL log, one object per step / eval (DIR/log.jsonl)\n"
        "  --print-every N      progress line every N steps when stderr is not a terminal (10)\n"
        "\n"
        "Ctrl-C finishes the current step, saves a checkpoint and exits 0; continue with\n"
        "`qstar finetune --resume DIR`.\n"
        "\n%s",
        DEFAULT_BATCH_MODEL, DEFAULT_BATCH_RANDOM, DEFAULT_LR_MODEL, DEFAULT_LR_RANDOM, HELP_MPI);
    help_mpi_build();
}

// ---------------------------------------------------------------------------
// Options: a table, so that a resumed run can take unset ones from the
// checkpoint's train_args.json.

typedef enum { O_STR, O_INT, O_FLT } otype;

typedef struct {
    const char *flag;  // "--steps"
    otype type;
    double lo, hi;     // range of numbers
    int stored;        // saved in train_args.json and reused by --resume
    int set;           // given on the command line (or taken from train_args.json)
    const char *s;
    long i;
    double f;
} opt;

enum {
    F_MODEL, F_CONFIG, F_DATA, F_OUT, F_TOKENIZER, F_FIELD, F_LOG, F_RESUME, F_DTYPE, F_PRECISION,
    F_STEPS, F_BATCH, F_SEQ, F_ACCUM, F_WARMUP, F_EVAL_EVERY, F_EVAL_BATCHES, F_SAVE_EVERY, F_SEED,
    F_THREADS, F_STOP_AFTER, F_PRINT_EVERY,
    F_LR, F_MIN_LR, F_WD, F_BETA1, F_BETA2, F_EPS, F_CLIP, F_VAL_FRAC,
    F_COUNT
};

#define BIG 1e15
static opt opts_template[F_COUNT] = {
    [F_MODEL] = {"--model", O_STR, 0, 0, 0, 0, 0, 0, 0},
    [F_CONFIG] = {"--config", O_STR, 0, 0, 0, 0, 0, 0, 0},
    [F_DATA] = {"--data", O_STR, 0, 0, 1, 0, 0, 0, 0},
    [F_OUT] = {"--out", O_STR, 0, 0, 0, 0, 0, 0, 0},
    [F_TOKENIZER] = {"--tokenizer", O_STR, 0, 0, 0, 0, 0, 0, 0},
    [F_FIELD] = {"--field", O_STR, 0, 0, 1, 0, 0, 0, 0},
    [F_LOG] = {"--log", O_STR, 0, 0, 0, 0, 0, 0, 0},
    [F_RESUME] = {"--resume", O_STR, 0, 0, 0, 0, 0, 0, 0},
    [F_DTYPE] = {"--dtype", O_STR, 0, 0, 1, 0, 0, 0, 0},
    [F_PRECISION] = {"--precision", O_STR, 0, 0, 1, 0, 0, 0, 0},
    [F_STEPS] = {"--steps", O_INT, 1, BIG, 1, 0, 0, 0, 0},
    [F_BATCH] = {"--batch", O_INT, 1, 1 << 20, 1, 0, 0, 0, 0},
    [F_SEQ] = {"--seq-len", O_INT, 2, 1 << 24, 1, 0, 0, 0, 0},
    [F_ACCUM] = {"--grad-accum", O_INT, 1, 1 << 20, 1, 0, 0, 0, 0},
    [F_WARMUP] = {"--warmup", O_INT, 0, BIG, 1, 0, 0, 0, 0},
    [F_EVAL_EVERY] = {"--eval-every", O_INT, 0, BIG, 1, 0, 0, 0, 0},
    [F_EVAL_BATCHES] = {"--eval-batches", O_INT, 0, 1 << 30, 1, 0, 0, 0, 0},
    [F_SAVE_EVERY] = {"--save-every", O_INT, 0, BIG, 1, 0, 0, 0, 0},
    [F_SEED] = {"--seed", O_INT, 0, 9007199254740991.0, 1, 0, 0, 0, 0},
    [F_THREADS] = {"--threads", O_INT, 1, 4096, 1, 0, 0, 0, 0},
    [F_STOP_AFTER] = {"--stop-after", O_INT, 1, BIG, 0, 0, 0, 0, 0},
    [F_PRINT_EVERY] = {"--print-every", O_INT, 1, BIG, 0, 0, 0, 0, 0},
    [F_LR] = {"--lr", O_FLT, 0, 100, 1, 0, 0, 0, 0},
    [F_MIN_LR] = {"--min-lr", O_FLT, 0, 100, 1, 0, 0, 0, 0},
    [F_WD] = {"--weight-decay", O_FLT, 0, 100, 1, 0, 0, 0, 0},
    [F_BETA1] = {"--beta1", O_FLT, 0, 1, 1, 0, 0, 0, 0},
    [F_BETA2] = {"--beta2", O_FLT, 0, 1, 1, 0, 0, 0, 0},
    [F_EPS] = {"--eps", O_FLT, 0, 1, 1, 0, 0, 0, 0},
    [F_CLIP] = {"--clip", O_FLT, 0, 1e9, 1, 0, 0, 0, 0},
    [F_VAL_FRAC] = {"--val-frac", O_FLT, 0, 1, 1, 0, 0, 0, 0},
};

// 1 parsed, 0 not a known flag, -1 bad value (message printed)
static int parse_one(opt *o, int argc, char **argv, int *i) {
    for (int k = 0; k < F_COUNT; k++) {
        int r;
        if (o[k].type == O_STR) r = cli_str(argc, argv, i, o[k].flag, &o[k].s);
        else if (o[k].type == O_INT) r = cli_int(argc, argv, i, o[k].flag, &o[k].i, (long)o[k].lo, (long)o[k].hi);
        else r = cli_float(argc, argv, i, o[k].flag, &o[k].f, o[k].lo, o[k].hi);
        if (r) {
            if (r > 0) o[k].set = 1;
            return r;
        }
    }
    return 0;
}

// Takes the stored options the command line did not set from train_args.json.
static int load_args(opt *o, const char *path, char **strings, int *n_strings) {
    unsigned char *text = NULL;
    size_t n = 0;
    if (qs_read_file(path, &text, &n) != QS_OK) return cli_fail(CMD);
    cJSON *root = cJSON_Parse((const char *)text);
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        fprintf(stderr, "qstar %s: %s: not a JSON object\n", CMD, path);
        return 1;
    }
    for (int k = 0; k < F_COUNT; k++) {
        if (!o[k].stored || o[k].set) continue;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, o[k].flag + 2);
        if (!v) continue;
        if (o[k].type == O_STR && cJSON_IsString(v)) {
            strings[*n_strings] = strdup(v->valuestring);
            o[k].s = strings[(*n_strings)++];
            o[k].set = 1;
        } else if (o[k].type != O_STR && cJSON_IsNumber(v) && v->valuedouble >= o[k].lo && v->valuedouble <= o[k].hi) {
            if (o[k].type == O_INT) o[k].i = (long)v->valuedouble;
            else o[k].f = v->valuedouble;
            o[k].set = 1;
        } else {
            cJSON_Delete(root);
            fprintf(stderr, "qstar %s: %s: bad value for '%s'\n", CMD, path, o[k].flag + 2);
            return 1;
        }
    }
    cJSON_Delete(root);
    return 0;
}

static char *args_json(const opt *o) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    for (int k = 0; k < F_COUNT; k++) {
        if (!o[k].stored || !o[k].set) continue;
        if (o[k].type == O_STR) cJSON_AddStringToObject(root, o[k].flag + 2, o[k].s);
        else cJSON_AddNumberToObject(root, o[k].flag + 2, o[k].type == O_INT ? (double)o[k].i : o[k].f);
    }
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    return s;
}

// ---------------------------------------------------------------------------

static volatile sig_atomic_t g_stop = 0;
static void on_sigint(int sig) {
    (void)sig;
    g_stop = 1;
}

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int same_dir(const char *a, const char *b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

// The released run (SPEC section 4): optimisation settings (the ones not
// given as flags; its thought settings are applied by the library's run setup).
static void apply_paper_preset(opt *o) {
    struct { int k; double v; } p[] = {{F_BATCH, 8}, {F_SEQ, 256}, {F_STEPS, 100}, {F_WARMUP, 20},
                                       {F_LR, 1e-6}, {F_MIN_LR, 1e-6}, {F_BETA1, 0.9}, {F_BETA2, 0.999},
                                       {F_EPS, 1e-8}, {F_WD, 0.001}, {F_CLIP, 1.0}};
    for (size_t k = 0; k < sizeof p / sizeof p[0]; k++) {
        if (o[p[k].k].set) continue;
        if (o[p[k].k].type == O_INT) o[p[k].k].i = (long)p[k].v;
        else o[p[k].k].f = p[k].v;
        o[p[k].k].set = 1;
    }
}

// The Quiet-STaR flags given, applied again over the checkpoint's settings
// (the library's run setup calls this last).
typedef struct {
    int argc;
    char **argv;
    const int *at;
    int n;
} cli_qs_flags;

static int apply_qs_flags(void *ud, qs_qstar_opts *qo) {
    const cli_qs_flags *f = ud;
    int beta = 0;
    for (int k = 0; k < f->n; k++) {
        int j = f->at[k];
        if (!strcmp(f->argv[j], "--policy-beta")) beta = 1;
        (void)cli_qstar_flag(f->argc, f->argv, &j, qo); // parsed once already: cannot fail
    }
    return beta;
}

static void print_note(void *ud, const char *msg) {
    (void)ud;
    fprintf(stderr, "%s\n", msg);
}

// --- data parallel (mpirun) flags and the plan
typedef struct {
    long zero, ranks;
    int plan;
    double gbit;
} dist_flags;

static int parse_dist_flag(int argc, char **argv, int *i, dist_flags *f) {
    int r;
    if (!strcmp(argv[*i], "--plan")) {
        f->plan = 1;
        return 1;
    }
    if ((r = cli_int(argc, argv, i, "--zero", &f->zero, 0, 1)) != 0) return r;
    if ((r = cli_int(argc, argv, i, "--ranks", &f->ranks, 1, 1 << 20)) != 0) return r;
    return cli_float(argc, argv, i, "--bandwidth", &f->gbit, 1e-3, 1e6);
}

// Communication per optimizer step: the fixed-order reduction sends and receives
// 2 x 4 bytes x params x (N-1)/N per rank (reduce-scatter + all-gather, dist.h).
static void print_plan(FILE *f, size_t numel, int N, const dist_flags *df, const qs_train_opts *to) {
    const double bytes = qs_dist_step_bytes(numel, N), gbit = df->gbit > 0 ? df->gbit : 10;
    const int per_rank = (to->grad_accum + N - 1) / N;
    fprintf(f, "data parallel: %d rank%s; micro-batches per step %d (at most %d per rank)%s%s\n", N, N == 1 ? "" : "s",
            to->grad_accum, per_rank, to->grad_accum % N ? "; --grad-accum not a multiple of the ranks: some idle" : "",
            df->zero ? "; --zero 1: AdamW moments sharded" : "");
    fprintf(f, "all-reduce per step: %zu fp32 gradients = %.1f MB; each rank sends and receives %.1f MB "
               "(reduce-scatter + all-gather), about %.1f ms at %g Gbit/s\n",
            numel, 4.0 * (double)numel / 1e6, bytes / 1e6, bytes * 8.0 / (gbit * 1e9) * 1e3, gbit);
}

static qs_out_lock out_lock;

static int run(int argc, char **argv) {
    opt o[F_COUNT];
    memcpy(o, opts_template, sizeof o);
    qs_qstar_opts qo;
    qs_qstar_opts_default(&qo);
    int preset_paper = 0, n_talk_given = 0, force = 0;
    dist_flags df = {0, 0, 0, 10};
    qs_dist *dist = NULL;
    long show_thoughts = 2;
    // argv positions of the Quiet-STaR flags: applied again over the checkpoint's settings
    int *qs_flag_at = calloc((size_t)argc + 1, sizeof(int)), n_qs_flags = 0;
    if (!qs_flag_at) { fprintf(stderr, "qstar %s: out of memory\n", CMD); return 1; }
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            help();
            free(qs_flag_at);
            return 0;
        }
    for (int i = 1; i < argc; i++) {
        const int at = i;
        if (!strcmp(argv[i], "--force")) { force = 1; continue; }
        int r = parse_one(o, argc, argv, &i);
        if (r == 0) r = parse_dist_flag(argc, argv, &i, &df);
        if (r == 0 && g_quietstar) {
            const char *ps = NULL;
            if ((r = cli_str(argc, argv, &i, "--preset", &ps)) > 0) {
                if (strcmp(ps, "paper")) {
                    free(qs_flag_at);
                    return cli_usage_error(CMD, "--preset expects 'paper', got '%s'", ps);
                }
                preset_paper = 1;
            } else if (r == 0 && (r = cli_int(argc, argv, &i, "--show-thoughts", &show_thoughts, 0, 64)) != 0) {
            } else if (r == 0 && (r = cli_qstar_flag(argc, argv, &i, &qo)) > 0) {
                if (!strcmp(argv[at], "--n-talk")) n_talk_given = 1;
                qs_flag_at[n_qs_flags++] = at;
            }
        }
        if (r < 0) {
            fprintf(stderr, "(see qstar %s --help)\n", CMD);
            free(qs_flag_at);
            return 2;
        }
        if (r == 0) {
            free(qs_flag_at);
            return cli_usage_error(CMD, "unknown argument '%s'", argv[i]);
        }
    }
    if (preset_paper) apply_paper_preset(o); // optimisation flags given win over the preset
    if (g_quietstar) { // small-model defaults for Quiet-STaR training
        if (!o[F_BATCH].set && !o[F_RESUME].set) o[F_BATCH].i = 4, o[F_BATCH].set = 1;
        if (!o[F_SEQ].set && !o[F_RESUME].set) o[F_SEQ].i = 128, o[F_SEQ].set = 1;
        if (!o[F_LR].set && !o[F_RESUME].set) o[F_LR].f = 1e-4, o[F_LR].set = 1;
        if (!o[F_WD].set && !o[F_RESUME].set) o[F_WD].f = 0.001, o[F_WD].set = 1;
        if (!o[F_EVAL_BATCHES].set && !o[F_RESUME].set) o[F_EVAL_BATCHES].i = 8, o[F_EVAL_BATCHES].set = 1;
        if (!o[F_EVAL_EVERY].set && !o[F_RESUME].set) o[F_EVAL_EVERY].i = 50, o[F_EVAL_EVERY].set = 1;
    }
    // --- where the model comes from
    char ckpt_dir[4096] = "", run_dir[4096] = "";
    char *strings[F_COUNT];
    int n_strings = 0, rc = 0;
    if (o[F_RESUME].set) {
        if (o[F_MODEL].set || o[F_CONFIG].set) {
            rc = cli_usage_error(CMD, "--resume takes the model from the checkpoint; drop --model/--config");
            goto free_strings;
        }
        if (qs_checkpoint_locate(o[F_RESUME].s, ckpt_dir, sizeof ckpt_dir, run_dir, sizeof run_dir) != QS_OK) {
            rc = cli_fail(CMD);
            goto free_strings;
        }
        // its weights and settings must be the ones its train_state was saved with
        if (qs_checkpoint_check(ckpt_dir) != QS_OK) {
            rc = cli_fail(CMD);
            goto free_strings;
        }
        char args_path[4200];
        snprintf(args_path, sizeof args_path, "%s/%s", ckpt_dir, QS_TRAIN_ARGS_FILE);
        struct stat sb;
        if (stat(args_path, &sb) == 0 && (rc = load_args(o, args_path, strings, &n_strings)) != 0) goto free_strings;
        if (!o[F_OUT].set) {
            o[F_OUT].s = run_dir;
            o[F_OUT].set = 1;
        }
    } else {
        if (o[F_MODEL].set == o[F_CONFIG].set) {
            rc = cli_usage_error(CMD, "give exactly one of --model PATH, --config FILE or --resume DIR");
            goto free_strings;
        }
    }
    if (!o[F_DATA].set) { rc = cli_usage_error(CMD, "--data FILE is required"); goto free_strings; }
    if (o[F_DTYPE].set && qs_save_dtype_parse(o[F_DTYPE].s) < 0) {
        rc = cli_usage_error(CMD, "--dtype expects bf16, f16 or f32, got '%s'", o[F_DTYPE].s);
        goto free_strings;
    }
    if (!o[F_OUT].set) { rc = cli_usage_error(CMD, "--out DIR is required"); goto free_strings; }
    // --- numeric settings and their defaults
    qs_train_opts to = qs_train_opts_default();
    if (o[F_STEPS].set) to.steps = o[F_STEPS].i;
    to.batch = o[F_BATCH].set ? (int)o[F_BATCH].i : o[F_CONFIG].set ? DEFAULT_BATCH_RANDOM : DEFAULT_BATCH_MODEL;
    const int seq_given = o[F_SEQ].set;
    if (seq_given) to.seq_len = (int)o[F_SEQ].i;
    if (o[F_ACCUM].set) to.grad_accum = (int)o[F_ACCUM].i;
    double lr = o[F_LR].set ? o[F_LR].f : o[F_CONFIG].set ? DEFAULT_LR_RANDOM : DEFAULT_LR_MODEL;
    if (!(lr > 0)) { rc = cli_usage_error(CMD, "--lr must be positive"); goto free_strings; }
    to.lr = (float)lr;
    to.min_lr = o[F_MIN_LR].set ? (float)o[F_MIN_LR].f : 0.1f * to.lr;
    to.warmup = o[F_WARMUP].set ? o[F_WARMUP].i : QS_MIN(100, to.steps / 10);
    if (o[F_WD].set) to.weight_decay = (float)o[F_WD].f;
    if (o[F_BETA1].set) to.beta1 = (float)o[F_BETA1].f;
    if (o[F_BETA2].set) to.beta2 = (float)o[F_BETA2].f;
    if (o[F_EPS].set) to.eps = (float)o[F_EPS].f;
    if (o[F_CLIP].set) to.clip = (float)o[F_CLIP].f;
    if (o[F_EVAL_EVERY].set) to.eval_every = o[F_EVAL_EVERY].i;
    if (o[F_EVAL_BATCHES].set) to.eval_batches = (int)o[F_EVAL_BATCHES].i;
    if (o[F_SAVE_EVERY].set) to.save_every = o[F_SAVE_EVERY].i;
    if (o[F_STOP_AFTER].set) to.stop_after = o[F_STOP_AFTER].i;
    if (to.beta1 >= 1 || to.beta2 >= 1) { rc = cli_usage_error(CMD, "--beta1 and --beta2 must be below 1"); goto free_strings; }
    if (!(to.eps > 0)) { rc = cli_usage_error(CMD, "--eps must be positive"); goto free_strings; }
    double val_frac = o[F_VAL_FRAC].set ? o[F_VAL_FRAC].f : 0.05;
    if (val_frac >= 1) { rc = cli_usage_error(CMD, "--val-frac must be below 1 (nothing left to train on)"); goto free_strings; }
    if (qs_train_opts_validate(&to) != QS_OK) { rc = cli_usage_error(CMD, "%s", qstar_last_error()); goto free_strings; }
    if (g_quietstar && n_talk_given && to.seq_len < qo.n_talk + 2) { // before loading anything
        rc = cli_usage_error(CMD, "--seq-len %d is too short for --n-talk %d (a window needs at least n_talk + 2 tokens)",
                             to.seq_len, qo.n_talk);
        goto free_strings;
    }
    qs_precision prec;
    if ((rc = cli_precision(CMD, o[F_PRECISION].set ? o[F_PRECISION].s : NULL, &prec)) != 0) goto free_strings;
    o[F_PRECISION].s = qs_precision_name(prec), o[F_PRECISION].set = 1; // stored: --resume keeps it
    uint64_t seed = o[F_SEED].set ? (uint64_t)o[F_SEED].i : 1337;
    if (!df.plan && qs_dist_init(&dist, (int)df.zero) != QS_OK) { rc = cli_fail(CMD); goto free_strings; }
    const int rank = qs_dist_rank(dist), n_ranks = qs_dist_size(dist);
    if (df.zero && n_ranks == 1 && !df.plan) fprintf(stderr, "qstar %s: --zero 1 in one process: nothing to shard\n", CMD);
    if (o[F_THREADS].set) {
        omp_set_num_threads((int)o[F_THREADS].i);
        openblas_set_num_threads((int)o[F_THREADS].i);
    } else if (n_ranks > 1) { // the cores are shared by the ranks of this machine
        const char *ls = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
        const int local = ls && atoi(ls) > 0 ? atoi(ls) : n_ranks, th = QS_MAX(1, omp_get_num_procs() / local);
        omp_set_num_threads(th);
        openblas_set_num_threads(th);
    }
    // record the effective values, so that --resume continues with the same ones
    o[F_STEPS].i = to.steps; o[F_BATCH].i = to.batch; o[F_SEQ].i = to.seq_len; o[F_ACCUM].i = to.grad_accum;
    o[F_LR].f = to.lr; o[F_MIN_LR].f = to.min_lr; o[F_WARMUP].i = to.warmup; o[F_WD].f = to.weight_decay;
    o[F_BETA1].f = to.beta1; o[F_BETA2].f = to.beta2; o[F_EPS].f = to.eps; o[F_CLIP].f = to.clip;
    o[F_EVAL_EVERY].i = to.eval_every; o[F_EVAL_BATCHES].i = to.eval_batches; o[F_SAVE_EVERY].i = to.save_every;
    o[F_VAL_FRAC].f = val_frac; o[F_SEED].i = (long)seed; o[F_THREADS].i = omp_get_max_threads();
    for (int k = F_STEPS; k < F_COUNT; k++)
        if (k != F_STOP_AFTER && k != F_PRINT_EVERY) o[k].set = 1;
    // the data path is stored absolute, so --resume works from another directory
    char data_abs[PATH_MAX];
    if (realpath(o[F_DATA].s, data_abs)) o[F_DATA].s = data_abs;
    const char *out = o[F_OUT].s;

    // --- refuse to clobber another run (or a model), check that DIR is writable, and lock it:
    // all before any work. Resuming into the run's own directory is not clobbering.
    // Under mpirun rank 0 alone checks, creates and locks DIR (it alone writes there).
    const int same_run = o[F_RESUME].set && is_dir(out) && same_dir(out, run_dir);
    const int out_created = rank == 0 && !is_dir(out);
    if (rank == 0 &&
        (qs_out_check(out, QS_OUT_RUN_DIR, force || same_run) != QS_OK ||
         (o[F_LOG].set && qs_out_check(o[F_LOG].s, QS_OUT_FILE, force || o[F_RESUME].set) != QS_OK) ||
         qs_mkdir_p(out) != QS_OK || qs_out_lock_acquire(&out_lock, out) != QS_OK)) {
        rc = cli_fail(CMD);
        if (out_created) rmdir(out);
        if (n_ranks > 1) qs_dist_abort(dist, rc); // the other ranks would wait for this one
        goto free_strings;
    }

    // --- model, tokenizer, data, Quiet-STaR settings and tensors, trainer: the library's run setup
    qs_run run;
    memset(&run, 0, sizeof run);
    qs_model *mp = &run.m;
    qs_trainer *trp = &run.tr;
    FILE *logf = NULL;
    char *aj = NULL;
    rc = 1;
    cli_qs_flags qf = {argc, argv, qs_flag_at, n_qs_flags};
    qs_run_spec spec = {.model_path = o[F_MODEL].set ? o[F_MODEL].s : NULL,
                        .config_path = o[F_CONFIG].set ? o[F_CONFIG].s : NULL,
                        .resume_ckpt = o[F_RESUME].set ? ckpt_dir : NULL,
                        .tokenizer_path = o[F_TOKENIZER].s, .data_path = o[F_DATA].s,
                        .dtype = o[F_DTYPE].set ? o[F_DTYPE].s : NULL,
                        .field = o[F_FIELD].set ? o[F_FIELD].s : NULL, .val_frac = val_frac, .seed = seed,
                        .n_threads = o[F_THREADS].set ? (int)o[F_THREADS].i : 0, .to = to, .seq_given = seq_given,
                        .quietstar = g_quietstar, .preset_paper = preset_paper, .apply_qs = apply_qs_flags,
                        .apply_ud = &qf, .note = rank == 0 ? print_note : NULL, .dist = dist};
    if (qs_run_setup(&run, &spec) != QS_OK) {
        if (run.usage_error) rc = cli_usage_error(CMD, "%s", qstar_last_error());
        else cli_fail(CMD);
        goto done;
    }
    to = run.tr.o;
    run.m.precision = prec; // a runtime option: the bf16 weight copy is made on first use
    o[F_SEQ].i = to.seq_len;
    qs_qstar_opts qo_run = run.qo;
    const char *tok_path = run.tok_path;
    char *qs_json = run.qs_json;
    qs_tokenizer *tok = run.tok;
    if (rank == 0) {
        fprintf(stderr, "model: %zu parameters; %ld steps x %d x %d x %d tokens, lr %g -> %g, warmup %ld, %d threads\n",
                mp->layout.numel, to.steps, to.batch, to.seq_len, to.grad_accum, (double)to.lr, (double)to.min_lr,
                to.warmup, omp_get_max_threads());
        cli_print_matmul(mp);
        fprintf(stderr, "optimizer: AdamW betas (%g, %g), eps %g, weight decay %g, grad-norm clip %g%s\n",
                (double)to.beta1, (double)to.beta2, (double)to.eps, (double)to.weight_decay, (double)to.clip,
                preset_paper ? " (--preset paper: the released run)" : "");
        if (n_ranks > 1 && !df.plan) print_plan(stderr, mp->layout.numel, df.ranks ? (int)df.ranks : n_ranks, &df, &to);
    }
    if (df.plan) { // on paper only
        print_plan(stdout, mp->layout.numel, df.ranks ? (int)df.ranks : n_ranks, &df, &to);
        rc = 0;
        goto done;
    }

    // --- log (rank 0 alone)
    if (qs_mkdir_p(out) != QS_OK) { cli_fail(CMD); goto done; }
    char log_default[4200];
    snprintf(log_default, sizeof log_default, "%s/log.jsonl", out);
    const char *log_path = o[F_LOG].set ? o[F_LOG].s : log_default;
    if (rank == 0) {
        if (o[F_RESUME].set && train_log_trim(CMD, log_path, trp->step) != 0) goto done;
        logf = fopen(log_path, o[F_RESUME].set ? "a" : "w");
        if (!logf) {
            fprintf(stderr, "qstar %s: %s: cannot open the log for writing: %s\n", CMD, log_path, strerror(errno));
            goto done;
        }
    }
    aj = args_json(o);
    if (!aj) { fprintf(stderr, "qstar %s: out of memory\n", CMD); goto done; }

    // --- train
    progress pr = {.cmd = CMD, .quietstar = g_quietstar, .log = logf, .log_path = log_path, .tty = cli_is_tty(),
                   .print_every = o[F_PRINT_EVERY].set ? o[F_PRINT_EVERY].i : 10,
                   .tok = tok, .show_thoughts = (int)show_thoughts, .n_passes = qo_run.n_passes};
    qs_train_run_opts ro = {.out_dir = out, .tokenizer_path = tok_path, .quietstar_json = qs_json,
                            .args_json = aj, .cb = rank == 0 ? train_log_event : NULL, .cb_ctx = &pr,
                            .stop = &g_stop};
    struct sigaction sa, old_sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND; // a second Ctrl-C kills the process
    sigaction(SIGINT, &sa, &old_sa);
    struct sigaction old_term; // mpirun turns Ctrl-C into SIGTERM for the ranks
    if (n_ranks > 1) sigaction(SIGTERM, &sa, &old_term);
    qs_train_summary sum;
    qs_status st = qs_trainer_run(trp, &ro, &sum);
    sigaction(SIGINT, &old_sa, NULL);
    if (n_ranks > 1) sigaction(SIGTERM, &old_term, NULL);
    train_log_end_line(&pr);
    if (st != QS_OK) {
        if (n_ranks > 1) fprintf(stderr, "qstar %s: rank %d of %d: ", CMD, rank, n_ranks);
        cli_fail(CMD);
        goto done;
    }
    if (rank != 0) { rc = 0; goto done; }

    // --- summary
    if (isfinite(sum.nll_first)) printf("initial held-out NLL: %.4f (step %ld)\n", sum.nll_first, sum.step_first);
    else printf("initial held-out NLL: n/a (no held-out data)\n");
    if (isfinite(sum.nll_last) && sum.interrupted && sum.step_last != trp->step)
        printf("final held-out NLL:   %.4f (step %ld; stopped at step %ld before evaluating again)\n", sum.nll_last,
               sum.step_last, trp->step);
    else if (isfinite(sum.nll_last)) printf("final held-out NLL:   %.4f (step %ld)\n", sum.nll_last, sum.step_last);
    else printf("final held-out NLL:   n/a\n");
    printf("steps: %ld of %ld (%ld in this run, %ld skipped), time: %.1f s\n", trp->step, to.steps, sum.steps_run,
           sum.skipped, sum.seconds);
    if (sum.ckpt_dir[0]) printf("checkpoint: %s\n", sum.ckpt_dir);
    if (sum.interrupted) printf("stopped early; continue with: qstar %s --resume %s\n", CMD, out);
    rc = 0;
done:
    if (logf && fclose(logf) != 0 && rc == 0) {
        fprintf(stderr, "qstar %s: warning: cannot write the log\n", CMD);
    }
    free(aj);
    qs_run_free(&run);
    if (rank == 0) qs_out_lock_release(&out_lock);
    if (rc != 0 && out_created) { // nothing of a failed fresh run stays behind
        char lp[4200], ck[4200];
        snprintf(lp, sizeof lp, "%s/log.jsonl", out);
        snprintf(ck, sizeof ck, "%s/ckpt", out);
        if (!is_dir(ck)) unlink(lp);
        rmdir(out); // only if nothing else is left
    }
    if (rc != 0 && n_ranks > 1) qs_dist_abort(dist, rc); // the other ranks would wait for this one
free_strings:
    qs_dist_free(dist);
    for (int k = 0; k < n_strings; k++) free(strings[k]);
    free(qs_flag_at);
    return rc;
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
    qs_curriculum cu;
    if (qs_curriculum_parse(spec, strlen(spec), &cu) != QS_OK) return cli_usage_error(CMD, "%s", qstar_last_error());
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
    for (int k = 0; k < cu.n && rc == 0; k++) {
        int n = 0;
        av[n++] = argv[0];
        for (int i = 1; i < argc; i++) {
            if (!strcmp(argv[i], "--curriculum") || !strcmp(argv[i], "--model") || !strcmp(argv[i], "--config") ||
                !strcmp(argv[i], "--out")) { i++; continue; }
            av[n++] = argv[i];
        }
        snprintf(dir, sizeof dir, "%s/stage%d", out, k + 1);
        snprintf(na, sizeof na, "%d", cu.s[k].n_ahead), snprintf(nt, sizeof nt, "%d", cu.s[k].n_talk);
        snprintf(lr, sizeof lr, "%.9g", (double)cu.s[k].lr), snprintf(st, sizeof st, "%ld", cu.s[k].steps);
        const char *extra[] = {k ? "--model" : model ? "--model" : "--config", k ? prev : model ? model : config,
                               "--out", dir, "--n-ahead", na, "--n-talk", nt, "--lr", lr, "--steps", st};
        for (size_t e = 0; e < sizeof extra / sizeof extra[0]; e++) av[n++] = (char *)extra[e];
        av[n] = NULL;
        fprintf(stderr, "curriculum stage %d/%d: n_ahead %d, n_talk %d, lr %g, %ld steps -> %s\n", k + 1, cu.n,
                cu.s[k].n_ahead, cu.s[k].n_talk, (double)cu.s[k].lr, cu.s[k].steps, dir);
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

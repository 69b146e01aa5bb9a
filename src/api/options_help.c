// options_help.c: the --help text of the training settings
// (qstar_train_options_help): the options table's entries (options.h), by group.
#include "api/options.h"
#include "train/dist.h"

#include <stdio.h>

static const char COMMON[] =
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
    "  --batch B            sequences per micro-batch (32 with --model, 16 with --config; train: 4)\n"
    "  --seq-len T          tokens per sequence (256; train: 128)\n"
    "  --grad-accum K       micro-batches per step (1)\n"
    "  --lr X               peak learning rate (0.0005 with --model, 0.005 with --config; train: 1e-4)\n"
    "  --min-lr X           final learning rate of the cosine decay (0.1 * lr)\n"
    "  --warmup N           linear warmup steps (min(100, steps/10))\n"
    "  --weight-decay X     AdamW decoupled weight decay (0.1; train: 0.001)\n"
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
    "  --eval-every N       held-out NLL every N steps, 0 = start and end only (100; train: 50)\n"
    "  --eval-batches N     batches of sequential held-out windows per eval, 0 = all (20; train: 8)\n"
    "  --save-every N       checkpoint every N steps, 0 = at the end only (500)\n"
    "  --stop-after N       stop with a checkpoint after step N, as if interrupted\n"
    "  --log FILE           JSONL log, one object per step / eval (DIR/log.jsonl)\n"
    "  --print-every N      progress line every N steps when stderr is not a terminal (10)\n";

static const char QSTAR[] =
    "Quiet-STaR (train):\n"
    "  --preset paper         the released run (docs/algorithm.md): n_ahead 12, n_talk 4,\n"
    "                         n_passes 2, batch 8, seq-len 256, lr 1e-6, betas (0.9, 0.999),\n"
    "                         weight decay 0.001, 20 warmup steps then constant, clip 1.0,\n"
    "                         100 steps (flags given after it override it)\n"
    "  --show-thoughts N      decoded thoughts logged per step (2)\n"
    "  --curriculum SPEC      thought-length curriculum \"n_ahead:n_talk:lr:steps,...\": one stage\n"
    "                         after the other, each from the previous stage's checkpoint;\n"
    "                         stage k writes DIR/stage<k> (the result: DIR/stage<last>/ckpt)\n"
    "                         (replaces --n-ahead/--n-talk/--lr/--steps; no --resume)\n";

static const char THOUGHT[] =
    "  --n-ahead N            thought length incl. start/end, n_thought = N-3 sampled tokens (12)\n"
    "  --n-talk K             true tokens predicted after each thought (4)\n"
    "  --n-passes P           thoughts sampled per position (2)\n"
    "  --base-loss-weight W   weight of the base NLL in L_lm; talk gets 1-W (0.5)\n"
    "  --policy-beta B        weight of the REINFORCE loss (1 for a fresh run: the paper's 1e6\n"
    "                         degrades small models; a resumed run keeps its own)\n"
    "  --tau-sample X         thought sampling temperature (1)\n"
    "  --tau-rl X             temperature of the policy log-likelihoods (3)\n"
    "  --no-clamp             keep negative advantages (default: clamp at 0; --clamp)\n"
    "  --embedding-scale S    start/end embedding = S * parameter (100)\n"
    "  --thought-init STR     start/end init from E[first non-space token of STR] / S (\"---\")\n"
    "  --thought-init-end STR  end init from STR instead (default: as the start)\n"
    "  --mixing linear|sigmoid  mixing weight unbounded (released) or sigmoid (linear)\n"
    "  --greedy-thoughts      argmax thoughts instead of sampling\n"
    "  --reward-baseline mean|ema  reward baseline: mean = the released one (reward minus its\n"
    "                         mean over the n_passes thoughts); ema = RLP-style: reward = talk\n"
    "                         log-likelihood minus that of an EMA copy of the model without\n"
    "                         thoughts (works with --n-passes 1) (mean)\n"
    "  --ema-decay D          EMA copy = D * EMA + (1-D) * weights after each update; it starts\n"
    "                         from the weights when a run (or --resume) starts (0.99)\n";

static const char QSTAR_END[] =
    "Held-out evaluation reports base NLL and thought-mixed NLL side by side (eval mode:\n"
    "n_passes 1, n_talk 1). Checkpoints hold the learned meta embeddings and mixing head,\n"
    "which are never re-initialised on load, and a \"quietstar\" block in config.json.\n";

static const char MPI_HELP[] =
    "several processes (MPI, data parallel): mpirun -np N qstar train|finetune ...\n"
    "  The global batch (--batch x --grad-accum) is the same whatever N; each rank computes\n"
    "  a block of the micro-batches and gradients are summed over ranks in a fixed order\n"
    "  (same N: byte-identical runs; N a power of two <= --grad-accum: the bits of one\n"
    "  process). Rank 0 logs and checkpoints; --resume works with another N. Use\n"
    "  --grad-accum a multiple of N to keep every rank busy.\n"
    "  --zero 1             shard the AdamW moments over the ranks (same results)\n"
    "  --plan               print the run's plan (parameters, all-reduce volume per step,\n"
    "                       communication time) and exit without training\n"
    "  --ranks N            ranks to plan for (default: this run's)\n"
    "  --bandwidth G        link bandwidth for the plan, Gbit/s (10)\n";

QSTAR_API const char *qstar_train_options_help(int quietstar) {
    static char text[2][8192];
    char *t = text[quietstar != 0];
    if (!t[0])
        snprintf(text[quietstar != 0], sizeof text[0], "%s%s%s%s%s\n%s  this build: %s\n", quietstar ? QSTAR : "",
                 quietstar ? THOUGHT : "", quietstar ? QSTAR_END : "", quietstar ? "\n" : "", COMMON, MPI_HELP,
                 qs_dist_built_with_mpi() ? "with MPI (Open MPI)"
                                          : "without MPI (install openmpi-bin libopenmpi-dev and rebuild)");
    return t;
}

QSTAR_API const char *qstar_thought_options_help(void) { return THOUGHT; }

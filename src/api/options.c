// options.c: THE table of training settings and its parser (options.h):
// `qstar finetune` / `qstar train` flags, qstar_train_params_set,
// train_args.json (written with each checkpoint, read on resume), the
// Python Trainer's keywords and the mode defaults all go through it.
#include "api/options.h"
#include "quietstar/qstar.h"
#include "io/model_io.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BIG 1e15
#define SEED_MAX 9007199254740991.0

const qo_def qo_table[QO_COUNT] = {
    [QO_MODEL] = {"model", QO_STR, 0, 0, NULL, 0,
     "  --model PATH         model directory or llama2.c .bin to start from\n"},
    [QO_CONFIG] = {"config", QO_STR, 0, 0, NULL, 0,
     "  --config FILE        config.json: random init (seeded by --seed) instead\n"},
    [QO_RESUME] = {"resume", QO_STR, 0, 0, NULL, 0,
     "  --resume DIR         continue the run in DIR (or checkpoint DIR) exactly where it\n"
     "                       stopped; its settings are reused unless given again\n"},
    [QO_TOKENIZER] = {"tokenizer", QO_STR, 0, 0, NULL, 0,
     "  --tokenizer FILE     tokenizer.json, tokenizer.model or llama2.c tokenizer (default: the\n"
     "                       model directory's own); copied into the checkpoints\n"},
    [QO_DTYPE] = {"dtype", QO_STR, 0, 0, "bf16|f16|f32", 1,
     "  --dtype T            checkpoint weights as bf16, f16 or f32 (default: the model's); with\n"
     "                       16-bit weights the exact fp32 ones go to master_weights.safetensors\n"},
    [QO_DATA] = {"data", QO_STR, 0, 0, NULL, 1,
     "  --data FILE          text (documents separated by blank lines) or JSONL, or a\n"
     "                       directory made by `qstar prepare` (mapped, its own held-out split)\n"},
    [QO_FIELD] = {"field", QO_STR, 0, 0, NULL, 1,
     "  --field NAME         JSONL field holding the text (text)\n"},
    [QO_VAL_FRAC] = {"val-frac", QO_FLT, 0, 1, NULL, 1,
     "  --val-frac F         fraction of documents held out for evaluation (0.05)\n"},
    [QO_OUT] = {"out", QO_STR, 0, 0, NULL, 0,
     "  --out DIR            run directory: DIR/ckpt (checkpoint), DIR/log.jsonl; a non-empty\n"
     "                       DIR is refused unless --force or --resume DIR; DIR/qstar.lock keeps\n"
     "                       a second run off it while this one runs\n"},
    [QO_FORCE] = {"force", QO_FLAG, 0, 0, NULL, 0,
     "  --force              start a fresh run in a non-empty DIR (its checkpoint is replaced\n"
     "                       whole at the first save, its log restarted)\n"},
    [QO_STEPS] = {"steps", QO_INT, 1, BIG, NULL, 1,
     "  --steps N            optimizer steps (1000)\n"},
    [QO_BATCH] = {"batch", QO_INT, 1, 1 << 20, NULL, 1,
     "  --batch B            sequences per micro-batch (32 with --model, 16 with --config; train: 4)\n"},
    [QO_SEQ] = {"seq-len", QO_INT, 2, 1 << 24, NULL, 1,
     "  --seq-len T          tokens per sequence (256; train: 128)\n"},
    [QO_ACCUM] = {"grad-accum", QO_INT, 1, 1 << 20, NULL, 1,
     "  --grad-accum K       micro-batches per step (1)\n"},
    [QO_LR] = {"lr", QO_FLT, 0, 100, NULL, 1,
     "  --lr X               peak learning rate (5e-4 with --model, 5e-3 with --config; train: 1e-4)\n"},
    [QO_MIN_LR] = {"min-lr", QO_FLT, 0, 100, NULL, 1,
     "  --min-lr X           final learning rate of the cosine decay (0.1 * lr)\n"},
    [QO_WARMUP] = {"warmup", QO_INT, 0, BIG, NULL, 1,
     "  --warmup N           linear warmup steps (min(100, steps/10))\n"},
    [QO_WD] = {"weight-decay", QO_FLT, 0, 100, NULL, 1,
     "  --weight-decay X     AdamW decoupled weight decay (0.1; train: 0.001)\n"},
    [QO_BETA1] = {"beta1", QO_FLT, 0, 1, NULL, 1,
     "  --beta1 X --beta2 X  AdamW betas (0.9, 0.95)\n"},
    [QO_BETA2] = {"beta2", QO_FLT, 0, 1, NULL, 1,
     ""},
    [QO_EPS] = {"eps", QO_FLT, 0, 1, NULL, 1,
     "  --eps X              AdamW epsilon (1e-8)\n"},
    [QO_CLIP] = {"clip", QO_FLT, 0, 1e9, NULL, 1,
     "  --clip X             max global gradient norm, 0 = off (1.0)\n"},
    [QO_SEED] = {"seed", QO_INT, 0, SEED_MAX, NULL, 1,
     "  --seed S             random init and data sampling seed (1337)\n"},
    [QO_THREADS] = {"threads", QO_INT, 1, 4096, NULL, 1,
     "  --threads N          threads (default: all cores); resume with the same count\n"
     "                       for bit-identical results\n"},
    [QO_PRECISION] = {"precision", QO_ENUM, 0, 0, "fp32|bf16", 1,
     "  --precision P        GEMM precision: fp32, or bf16 (bf16 inputs, fp32 accumulation;\n"
     "                       weights, gradients and optimizer state stay fp32) (fp32)\n"},
    [QO_ACT_BUDGET] = {"act-budget-mb", QO_FLT, 0, 1e9, NULL, 1,
     "  --act-budget-mb M    memory for layer activations kept from the forward for the\n"
     "                       backward (the others are recomputed: same results, more time);\n"
     "                       0 recomputes every layer (768)\n"},
    [QO_EVAL_EVERY] = {"eval-every", QO_INT, 0, BIG, NULL, 1,
     "  --eval-every N       held-out NLL every N steps, 0 = start and end only (100; train: 50)\n"},
    [QO_EVAL_BATCHES] = {"eval-batches", QO_INT, 0, 1 << 30, NULL, 1,
     "  --eval-batches N     batches of sequential held-out windows per eval, 0 = all (20; train: 8)\n"},
    [QO_SAVE_EVERY] = {"save-every", QO_INT, 0, BIG, NULL, 1,
     "  --save-every N       checkpoint every N steps, 0 = at the end only (500)\n"},
    [QO_STOP_AFTER] = {"stop-after", QO_INT, 1, BIG, NULL, 0,
     "  --stop-after N       stop with a checkpoint after step N, as if interrupted\n"},
    [QO_LOG] = {"log", QO_STR, 0, 0, NULL, 0,
     "  --log FILE           JSONL log, one object per step / eval (DIR/log.jsonl)\n"},
    [QO_PRINT_EVERY] = {"print-every", QO_INT, 1, BIG, NULL, 0,
     "  --print-every N      progress line every N steps when stderr is not a terminal (10;\n"
     "                       for the caller's display: the library only keeps it)\n"},
    [QO_ZERO] = {"zero", QO_INT, 0, 1, NULL, 0,
     "  --zero 1             shard the AdamW moments over the ranks (same results)\n"},
    [QO_PLAN] = {"plan", QO_FLAG, 0, 0, NULL, 0,
     "  --plan               print the run's plan and exit without training: peak memory of\n"
     "                       one process by term (weights, optimizer, activations, KV cache\n"
     "                       of all passes, logits, ...), FLOPs per step, and under MPI the\n"
     "                       all-reduce volume per step and its time (every run prints the\n"
     "                       peak in its header and stops at once if it cannot fit)\n"},
    [QO_RANKS] = {"ranks", QO_INT, 1, 1 << 20, NULL, 0,
     "  --ranks N            ranks to plan for (default: this run's)\n"},
    [QO_BANDWIDTH] = {"bandwidth", QO_FLT, 1e-3, 1e6, NULL, 0,
     "  --bandwidth G        link bandwidth for the plan, Gbit/s (10)\n"},
    [QO_PRESET] = {"preset", QO_ENUM, 0, 0, "paper", 0,
     "  --preset paper         the released run (docs/algorithm.md): n_ahead 12, n_talk 4,\n"
     "                         n_passes 2, batch 8, seq-len 256, lr 1e-6, betas (0.9, 0.999),\n"
     "                         weight decay 0.001, 20 warmup steps then constant, clip 1.0,\n"
     "                         100 steps (flags given after it override it)\n"},
    [QO_SHOW_THOUGHTS] = {"show-thoughts", QO_INT, 0, 64, NULL, 0,
     "  --show-thoughts N      decoded thoughts logged per step (2)\n"},
    [QO_N_AHEAD] = {"n-ahead", QO_INT, 3, 256, NULL, 0,
     "  --n-ahead N            thought length incl. start/end, n_thought = N-3 sampled tokens (12)\n"},
    [QO_N_TALK] = {"n-talk", QO_INT, 1, 64, NULL, 0,
     "  --n-talk K             true tokens predicted after each thought (4)\n"},
    [QO_N_PASSES] = {"n-passes", QO_INT, 1, 64, NULL, 0,
     "  --n-passes P           thoughts sampled per position (2)\n"},
    [QO_BASE_LOSS_WEIGHT] = {"base-loss-weight", QO_FLT, 0, 1, NULL, 0,
     "  --base-loss-weight W   weight of the base NLL in L_lm; talk gets 1-W (0.5)\n"},
    [QO_POLICY_BETA] = {"policy-beta", QO_FLT, 0, 1e12, NULL, 0,
     "  --policy-beta B        weight of the REINFORCE loss (1e6; a fresh `qstar train` run: 1,\n"
     "                         the paper's 1e6 degrades small models; a resumed run keeps its own)\n"},
    [QO_TAU_SAMPLE] = {"tau-sample", QO_FLT, 1e-6, 1e6, NULL, 0,
     "  --tau-sample X         thought sampling temperature (1)\n"},
    [QO_TAU_RL] = {"tau-rl", QO_FLT, 1e-6, 1e6, NULL, 0,
     "  --tau-rl X             temperature of the policy log-likelihoods (3)\n"},
    [QO_NO_CLAMP] = {"no-clamp", QO_FLAG, 0, 0, NULL, 0,
     "  --no-clamp             keep negative advantages (default: clamp at 0)\n"},
    [QO_CLAMP] = {"clamp", QO_FLAG, 0, 0, NULL, 0,
     "  --clamp                clamp negative advantages at 0 (the default)\n"},
    [QO_EMBEDDING_SCALE] = {"embedding-scale", QO_FLT, 1e-6, 1e6, NULL, 0,
     "  --embedding-scale S    start/end embedding = S * parameter (100)\n"},
    [QO_THOUGHT_INIT] = {"thought-init", QO_STR, 0, 63, NULL, 0,
     "  --thought-init STR     start/end init from E[first non-space token of STR] / S (\"---\")\n"},
    [QO_THOUGHT_INIT_END] = {"thought-init-end", QO_STR, 0, 63, NULL, 0,
     "  --thought-init-end STR  end init from STR instead (default: as the start)\n"},
    [QO_MIXING] = {"mixing", QO_ENUM, 0, 0, "linear|sigmoid", 0,
     "  --mixing linear|sigmoid  mixing weight unbounded (released) or sigmoid (linear)\n"},
    [QO_GREEDY_THOUGHTS] = {"greedy-thoughts", QO_FLAG, 0, 0, NULL, 0,
     "  --greedy-thoughts      argmax thoughts instead of sampling\n"},
    [QO_REWARD_BASELINE] = {"reward-baseline", QO_ENUM, 0, 0, "mean|ema", 0,
     "  --reward-baseline mean|ema  reward baseline: mean = the released one (reward minus its\n"
     "                         mean over the n_passes thoughts); ema = RLP-style: reward = talk\n"
     "                         log-likelihood minus that of an EMA copy of the model without\n"
     "                         thoughts (works with --n-passes 1) (mean)\n"},
    [QO_EMA_DECAY] = {"ema-decay", QO_FLT, 0, 0.999999, NULL, 0,
     "  --ema-decay D          EMA copy = D * EMA + (1-D) * weights after each update; it starts\n"
     "                         from the weights of a fresh run and is saved in checkpoints\n"
     "                         (ema.safetensors), so --resume continues it exactly (0.99)\n"},
};

int qo_find(const char *name) {
    if (!name) return -1;
    for (int k = 0; k < QO_COUNT; k++)
        if (!strcmp(qo_table[k].name, name)) return k;
    return -1;
}

// Index of s in "a|b|c", or -1.
static int enum_index(const char *choices, const char *s) {
    size_t n = strlen(s);
    int idx = 0;
    for (const char *c = choices; *c; idx++) {
        const char *e = strchr(c, '|');
        size_t len = e ? (size_t)(e - c) : strlen(c);
        if (len == n && !strncmp(c, s, n)) return idx;
        if (!e) break;
        c = e + 1;
    }
    return -1;
}

// "--mixing expects linear or sigmoid", "--dtype expects bf16, f16 or f32"
static qs_status choices_error(int k, const char *s) {
    char list[96];
    size_t len = 0;
    const char *c = qo_table[k].choices;
    while (*c && len + 8 < sizeof list) {
        const char *e = strchr(c, '|');
        const size_t n = e ? (size_t)(e - c) : strlen(c);
        const char *sep = !e ? "" : strchr(e + 1, '|') ? ", " : " or ";
        len += (size_t)snprintf(list + len, sizeof list - len, "%.*s%s", (int)n, c, sep);
        if (len >= sizeof list) len = sizeof list - 1;
        c = e ? e + 1 : c + n;
    }
    return qs_error(QS_ERR_ARG, "--%s expects %s, got '%s'", qo_table[k].name, list, s);
}

qs_status qo_set_str(qo_val *v, int k, const char *s) {
    const qo_def *d = &qo_table[k];
    if (!s) return qs_error(QS_ERR_ARG, "--%s needs a value", d->name);
    if (k == QO_DTYPE) { // also its spellings "bfloat16", "fp16", "float32", ...
        if (qs_save_dtype_parse(s) < 0) return choices_error(k, s);
    } else if (d->type == QO_ENUM) {
        int idx = enum_index(d->choices, s);
        if (idx < 0) return choices_error(k, s);
        v->i = idx;
    } else if (d->hi > 0 && strlen(s) > (size_t)d->hi) {
        return qs_error(QS_ERR_ARG, "--%s is too long (at most %g bytes)", d->name, d->hi);
    }
    char *c = strdup(s);
    if (!c) return qs_error(QS_ERR_NOMEM, "out of memory");
    free(v->s);
    v->s = c;
    v->set = 1;
    return QS_OK;
}

qs_status qo_set_num(qo_val *v, int k, double x) {
    const qo_def *d = &qo_table[k];
    if (d->type == QO_INT) {
        if (!(x >= d->lo && x <= d->hi) || x != floor(x))
            return qs_error(QS_ERR_ARG, "--%s expects an integer in [%.0f, %.0f], got %.17g", d->name, d->lo, d->hi, x);
        v->i = (long)x;
    } else if (d->type == QO_FLT) {
        if (!isfinite(x) || x < d->lo || x > d->hi)
            return qs_error(QS_ERR_ARG, "--%s expects a number in [%g, %g], got %g", d->name, d->lo, d->hi, x);
        v->f = x;
    } else if (d->type == QO_FLAG) {
        v->i = x != 0;
        v->set = x != 0;
        return QS_OK;
    } else {
        return qs_error(QS_ERR_ARG, "--%s expects text, not a number", d->name);
    }
    v->set = 1;
    return QS_OK;
}

qs_status qo_parse(qo_val *v, int k, const char *value) {
    const qo_def *d = &qo_table[k];
    if (d->type == QO_STR || d->type == QO_ENUM) return qo_set_str(v, k, value);
    if (d->type == QO_FLAG) {
        if (!value || !*value || !strcmp(value, "1") || !strcmp(value, "true")) return qo_set_num(v, k, 1);
        if (!strcmp(value, "0") || !strcmp(value, "false")) return qo_set_num(v, k, 0);
        return qs_error(QS_ERR_ARG, "--%s is a switch: give true/1 or false/0, got '%s'", d->name, value);
    }
    if (!value) return qs_error(QS_ERR_ARG, "--%s needs a value", d->name);
    char *end;
    errno = 0;
    if (d->type == QO_INT) {
        long x = strtol(value, &end, 10);
        if (errno || *end || end == value || x < (long)d->lo || (double)x > d->hi)
            return qs_error(QS_ERR_ARG, "--%s expects an integer in [%ld, %ld], got '%s'", d->name, (long)d->lo,
                            (long)d->hi, value);
        v->i = x;
    } else {
        double x = strtod(value, &end);
        if (errno || *end || end == value || !isfinite(x) || x < d->lo || x > d->hi)
            return qs_error(QS_ERR_ARG, "--%s expects a number in [%g, %g], got '%s'", d->name, d->lo, d->hi, value);
        v->f = x;
    }
    v->set = 1;
    return QS_OK;
}

void qo_clear(qo_val *v) {
    for (int k = 0; k < QO_COUNT; k++) free(v[k].s);
    memset(v, 0, sizeof(qo_val) * QO_COUNT);
}

qs_status qo_copy(qo_val *dst, const qo_val *src) {
    memcpy(dst, src, sizeof(qo_val) * QO_COUNT);
    for (int k = 0; k < QO_COUNT; k++) dst[k].s = NULL;
    for (int k = 0; k < QO_COUNT; k++)
        if (src[k].s && !(dst[k].s = strdup(src[k].s))) {
            qo_clear(dst);
            return qs_error(QS_ERR_NOMEM, "out of memory");
        }
    return QS_OK;
}

char *qo_args_json(const qo_val *v) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    for (int k = 0; k < QO_COUNT; k++) {
        const qo_def *d = &qo_table[k];
        if (!d->stored || !v[k].set) continue;
        char num[40]; // exact: a seed of 16 digits, an lr read back bit for bit
        if (d->type == QO_INT) snprintf(num, sizeof num, "%ld", v[k].i);
        else if (d->type == QO_FLT && strtod((snprintf(num, sizeof num, "%.15g", v[k].f), num), NULL) != v[k].f)
            snprintf(num, sizeof num, "%.17g", v[k].f);
        if (d->type == QO_STR || d->type == QO_ENUM) cJSON_AddStringToObject(root, d->name, v[k].s);
        else cJSON_AddRawToObject(root, d->name, num);
    }
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    return s;
}

qs_status qo_load_args(qo_val *v, const char *json, size_t n, const char *path) {
    cJSON *root = cJSON_ParseWithLength(json, n);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return qs_error(QS_ERR_FORMAT, "%s: not a JSON object", path);
    }
    qs_status st = QS_OK;
    for (int k = 0; k < QO_COUNT && st == QS_OK; k++) {
        const qo_def *d = &qo_table[k];
        if (!d->stored || v[k].set) continue;
        const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, d->name);
        if (!j) continue;
        const int is_str = d->type == QO_STR || d->type == QO_ENUM;
        if (is_str && cJSON_IsString(j)) st = qo_set_str(&v[k], k, j->valuestring);
        else if (!is_str && cJSON_IsNumber(j)) st = qo_set_num(&v[k], k, j->valuedouble);
        else st = QS_ERR_FORMAT;
        if (st != QS_OK) st = qs_error(QS_ERR_FORMAT, "%s: bad value for '%s'", path, d->name);
    }
    cJSON_Delete(root);
    return st;
}

static void def_num(qo_val *v, int k, double x) {
    if (v[k].set) return;
    if (qo_table[k].type == QO_INT) v[k].i = (long)x;
    else v[k].f = x;
    v[k].set = 1;
}

// The mode defaults: finetune --model, finetune --config (random init) and
// Quiet-STaR train (small-model settings, measured on stories260K).
static const struct {
    int k;
    double model, config, qstar; // NAN: the trainer's own default (qs_train_opts_default)
} mode_defaults[] = {
    {QO_BATCH, 32, 16, 4},         {QO_SEQ, NAN, NAN, 128},         {QO_LR, 5e-4, 5e-3, 1e-4},
    {QO_WD, NAN, NAN, 0.001},      {QO_EVAL_BATCHES, NAN, NAN, 8}, {QO_EVAL_EVERY, NAN, NAN, 50},
    {QO_VAL_FRAC, 0.05, 0.05, 0.05}, {QO_SEED, 1337, 1337, 1337},
};

void qo_qstar_defaults(qo_val *v) {
    for (size_t j = 0; j < sizeof mode_defaults / sizeof mode_defaults[0]; j++)
        if (!isnan(mode_defaults[j].qstar) && mode_defaults[j].k != QO_VAL_FRAC && mode_defaults[j].k != QO_SEED)
            def_num(v, mode_defaults[j].k, mode_defaults[j].qstar);
}

void qo_fallback_defaults(qo_val *v) {
    const int random_init = v[QO_CONFIG].set;
    for (size_t j = 0; j < sizeof mode_defaults / sizeof mode_defaults[0]; j++) {
        const double x = random_init ? mode_defaults[j].config : mode_defaults[j].model;
        if (!isnan(x)) def_num(v, mode_defaults[j].k, x);
    }
}

void qo_paper_preset(qo_val *v) {
    static const struct { int k; double x; } p[] = {
        {QO_BATCH, 8}, {QO_SEQ, 256}, {QO_STEPS, 100}, {QO_WARMUP, 20}, {QO_LR, 1e-6}, {QO_MIN_LR, 1e-6},
        {QO_BETA1, 0.9}, {QO_BETA2, 0.999}, {QO_EPS, 1e-8}, {QO_WD, 0.001}, {QO_CLIP, 1.0}};
    for (size_t k = 0; k < sizeof p / sizeof p[0]; k++) def_num(v, p[k].k, p[k].x);
}

int qo_apply_thought(const qo_val *v, qs_qstar_opts *qo) {
    const struct { int k; int *i; float *f; } num[] = {
        {QO_N_AHEAD, &qo->n_ahead, NULL}, {QO_N_TALK, &qo->n_talk, NULL}, {QO_N_PASSES, &qo->n_passes, NULL},
        {QO_BASE_LOSS_WEIGHT, NULL, &qo->base_loss_weight}, {QO_POLICY_BETA, NULL, &qo->policy_beta},
        {QO_TAU_SAMPLE, NULL, &qo->tau_sample}, {QO_TAU_RL, NULL, &qo->tau_rl},
        {QO_EMBEDDING_SCALE, NULL, &qo->embedding_scale}, {QO_EMA_DECAY, NULL, &qo->ema_decay}};
    for (size_t j = 0; j < sizeof num / sizeof num[0]; j++) {
        if (!v[num[j].k].set) continue;
        if (num[j].i) *num[j].i = (int)v[num[j].k].i;
        else *num[j].f = (float)v[num[j].k].f;
    }
    if (v[QO_NO_CLAMP].set) qo->clamp_negative_rewards = 0;
    if (v[QO_CLAMP].set) qo->clamp_negative_rewards = 1;
    if (v[QO_GREEDY_THOUGHTS].set) qo->greedy_thoughts = 1;
    if (v[QO_MIXING].set) qo->mixing = v[QO_MIXING].i ? QS_MIX_SIGMOID : QS_MIX_LINEAR;
    if (v[QO_REWARD_BASELINE].set) qo->reward_baseline = v[QO_REWARD_BASELINE].i ? QS_BASELINE_EMA : QS_BASELINE_MEAN;
    if (v[QO_THOUGHT_INIT].set) snprintf(qo->thought_init, sizeof qo->thought_init, "%s", v[QO_THOUGHT_INIT].s);
    if (v[QO_THOUGHT_INIT_END].set)
        snprintf(qo->thought_init_end, sizeof qo->thought_init_end, "%s", v[QO_THOUGHT_INIT_END].s);
    return v[QO_POLICY_BETA].set;
}

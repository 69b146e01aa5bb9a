// options.h: THE table of training settings (`qstar finetune` / `qstar
// train` flags, qstar_train_params_set names, train_args.json keys, Python
// Trainer keywords): one parser for all of them (options.c). Only src/api/
// includes this.
#ifndef QS_API_OPTIONS_H
#define QS_API_OPTIONS_H

#include "qstar.h"
#include "core/qs.h"
#include "quietstar/qstar.h"

typedef enum { QO_STR, QO_INT, QO_FLT, QO_FLAG, QO_ENUM } qo_type;

enum {
    // model and data
    QO_MODEL, QO_CONFIG, QO_RESUME, QO_TOKENIZER, QO_DTYPE, QO_DATA, QO_FIELD, QO_VAL_FRAC, QO_OUT, QO_FORCE,
    // optimisation
    QO_STEPS, QO_BATCH, QO_SEQ, QO_ACCUM, QO_LR, QO_MIN_LR, QO_WARMUP, QO_WD, QO_BETA1, QO_BETA2, QO_EPS, QO_CLIP,
    QO_SEED, QO_THREADS, QO_PRECISION, QO_ACT_BUDGET,
    // evaluation, logging, checkpoints
    QO_EVAL_EVERY, QO_EVAL_BATCHES, QO_SAVE_EVERY, QO_STOP_AFTER, QO_LOG, QO_PRINT_EVERY,
    // data parallel
    QO_ZERO, QO_PLAN, QO_RANKS, QO_BANDWIDTH,
    // Quiet-STaR (train only)
    QO_PRESET, QO_SHOW_THOUGHTS, QO_N_AHEAD, QO_N_TALK, QO_N_PASSES, QO_BASE_LOSS_WEIGHT, QO_POLICY_BETA,
    QO_TAU_SAMPLE, QO_TAU_RL, QO_NO_CLAMP, QO_CLAMP, QO_EMBEDDING_SCALE, QO_THOUGHT_INIT, QO_THOUGHT_INIT_END,
    QO_MIXING, QO_GREEDY_THOUGHTS, QO_REWARD_BASELINE, QO_EMA_DECAY,
    QO_COUNT
};
#define QO_FIRST_QSTAR QO_PRESET
#define QO_FIRST_THOUGHT QO_N_AHEAD // the thought settings (the "quietstar" block)

typedef struct {
    const char *name;    // as the CLI spells the flag, without "--"
    qo_type type;
    double lo, hi;       // INT / FLT range; STR: maximum length (hi > 0)
    const char *choices; // ENUM: "a|b|c"
    int stored;          // kept in train_args.json and reused by a resumed run
    const char *help;    // its --help line(s)
} qo_def;

typedef struct {
    int set;   // given (or taken from train_args.json / a preset / a mode default)
    char *s;   // STR / ENUM (owned)
    long i;    // INT / FLAG / ENUM index
    double f;  // FLT
} qo_val;

struct qstar_train_options {
    qo_val v[QO_COUNT];
};

extern const qo_def qo_table[QO_COUNT];

// Index of `name` (without "--"), or -1.
int qo_find(const char *name);
// Parses `value` for option k into v (range-checked; the message names the flag
// and the allowed range). FLAG: value NULL, "", "1" or "true" sets it, "0" or
// "false" clears it.
qs_status qo_parse(qo_val *v, int k, const char *value);
qs_status qo_set_num(qo_val *v, int k, double x);
qs_status qo_set_str(qo_val *v, int k, const char *s);
void qo_clear(qo_val *v); // frees the strings of QO_COUNT values
qs_status qo_copy(qo_val *dst, const qo_val *src);

// train_args.json: the stored options that are set, and back (the stored ones
// not set in v are taken from the JSON text; bad values are an error naming path).
char *qo_args_json(const qo_val *v);
qs_status qo_load_args(qo_val *v, const char *json, size_t n, const char *path);

// Mode defaults of the options not set. qo_qstar_defaults: the Quiet-STaR
// small-model settings (a fresh `train` run, before train_args.json);
// qo_fallback_defaults: after it, finetune --model / --config (random init)
// batch and lr, val-frac and seed (the rest: qs_train_opts_default).
void qo_qstar_defaults(qo_val *v);
void qo_fallback_defaults(qo_val *v);
// --preset paper: the released run's optimisation settings not given.
void qo_paper_preset(qo_val *v);
// The thought settings given (n-ahead ... ema-decay) over *qo (a qs_qstar_opts);
// returns 1 if policy-beta was given.
int qo_apply_thought(const qo_val *v, qs_qstar_opts *qo);

#endif

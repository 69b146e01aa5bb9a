// run.h: setting a training run up (what `qstar finetune`, `qstar train` and
// qstar_trainer_create share): the model (from a checkpoint, a model file or
// random init from a config.json), its tokenizer, the Quiet-STaR settings
// and tensors, the data and the trainer, restored from a checkpoint on
// resume. The loop is qs_trainer_run (trainer.h).
#ifndef QS_TRAIN_RUN_H
#define QS_TRAIN_RUN_H

#include "data/dataset.h"
#include "io/model_io.h"
#include "tokenizer/tokenizer.h"
#include "train/plan.h"
#include "train/trainer.h"

typedef struct {
    // where the model comes from: exactly one of the three
    const char *model_path;     // model directory / llama2.c .bin / any qs_model_load format
    const char *config_path;    // config.json: random init seeded by `seed`
    const char *resume_ckpt;    // a checkpoint directory (qs_checkpoint_locate's ckpt_dir)
    const char *tokenizer_path; // NULL: the one beside the model
    const char *data_path;
    const char *field;          // JSONL field (NULL: "text")
    double val_frac;
    uint64_t seed;
    int n_threads;              // data encoder threads (0: OpenMP default)
    qs_train_opts to;           // resolved settings (quietstar/qs/seed are filled in here)
    int seq_given;              // 0: seq_len is a default and is cut to the model's max positions
    int quietstar;              // Quiet-STaR training
    int preset_paper;           // --preset paper: the released run's thought settings
    const char *dtype;          // checkpoint weights: "bf16", "f16" or "f32" (NULL: the model's own)
    // Applies the caller's explicit Quiet-STaR settings over the checkpoint's
    // (called last); returns 1 if it set policy_beta. May be NULL.
    int (*apply_qs)(void *ud, qs_qstar_opts *qo);
    void *apply_ud;
    // One-line notes for the user ("quietstar: initialised start end ...").
    void (*note)(void *ud, const char *msg);
    void *note_ud;
    struct qs_dist *dist;       // data-parallel run over MPI ranks (train/dist.h); NULL: one process
    // The memory plan (train/plan.h), made once the model and data are loaded and
    // checked against the available memory before the trainer allocates anything.
    int act_budget_given;       // 1: act_budget_mb is the caller's (--act-budget-mb)
    double act_budget_mb;       // MB of layer activations kept for the backward (0: recompute all)
    qs_precision precision;     // the run's GEMM precision
    int plan_ranks, plan_zero;  // processes to plan for, --zero
    int plan_only;              // 1: plan and stop: no trainer (qstar train --plan)
} qs_run_spec;

typedef struct {
    qs_model m;
    qs_load_info info;
    qs_tokenizer *tok;
    char tok_path[4096];
    char *qs_json;        // the run's "quietstar" block (Quiet-STaR) or the model's
    qs_qstar_opts qo;     // the resolved Quiet-STaR settings
    qs_dataset ds;
    qs_trainer tr;
    int have_trainer;
    int usage_error;      // set with a failure that is the caller's settings (CLI exit 2)
    qs_plan plan;         // the memory and compute plan of one process
} qs_run;

// Loads and sets everything up. On failure *r is released (qs_run_free is
// still safe) and the message is in qstar_last_error().
qs_status qs_run_setup(qs_run *r, const qs_run_spec *s);
void qs_run_free(qs_run *r);

#endif

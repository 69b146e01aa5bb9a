// trainer.h: the plain language-model training loop (AdamW, gradient
// accumulation, clipping, warmup + cosine schedule, held-out evaluation,
// periodic atomic checkpoints, exact resume). It never prints: progress is
// reported through a callback.
//
// One optimizer step: zero the gradients; for each of grad_accum micro-batches
// draw `batch` random windows of `seq_len` tokens from the training stream
// (ds->rng) and accumulate the gradient of the mean next-token loss scaled by
// 1/grad_accum, summed as a balanced binary tree over the micro-batches
// (halves split at the midpoint; so data-parallel ranks holding whole
// subtrees reproduce the same sums, dist.h; ceil(log2 grad_accum) extra
// gradient buffers); clip the global norm; lr = qs_lr_schedule(step, lr, min_lr,
// warmup, steps); AdamW update. If the loss or the gradient norm is not
// finite the update is skipped (a QS_TEV_WARN event) and no checkpoint is
// written at that step. Results are bit-for-bit reproducible for the same
// data, options, seed and thread count, including across a save / resume.
#ifndef QS_TRAIN_TRAINER_H
#define QS_TRAIN_TRAINER_H

#include <signal.h>
#include <stdint.h>
#include "data/dataset.h"
#include "model/transformer.h"
#include "train/adamw.h"
#include "train/checkpoint.h"
#include "quietstar/qstar.h"

typedef struct {
    long steps;         // optimizer steps in the schedule (>= 1)
    int batch;          // rows per micro-batch (>= 1)
    int seq_len;        // tokens per row (2 .. max_position_embeddings)
    int grad_accum;     // micro-batches per step (>= 1)
    float lr, min_lr;   // peak and final learning rate
    long warmup;        // linear warmup steps
    float beta1, beta2, eps, weight_decay;
    float clip;         // max global gradient norm (0: no clipping)
    long eval_every;    // held-out eval every N steps (0: only at the start and the end)
    int eval_batches;   // batches of `batch` sequential windows per eval (0: the whole held-out stream)
    long save_every;    // checkpoint every N steps (0: only at the end)
    long stop_after;    // stop with a checkpoint once this step is reached (0: run to `steps`)
    int quietstar;      // 1: Quiet-STaR training (SPEC.md): thoughts, talk head, REINFORCE
    qs_qstar_opts qs;   // Quiet-STaR options (used when quietstar = 1)
    uint64_t seed;      // Quiet-STaR: thought sampling seed (step k uses seed ^ k)
} qs_train_opts;

// steps 1000, batch 32, seq_len 256, grad_accum 1, lr 5e-4, min_lr 5e-5,
// warmup 100, betas (0.9, 0.95), eps 1e-8, weight_decay 0.1, clip 1.0,
// eval_every 100, eval_batches 20, save_every 500, stop_after 0.
qs_train_opts qs_train_opts_default(void);
// Range checks; the message names the offending option.
qs_status qs_train_opts_validate(const qs_train_opts *o);

typedef enum {
    QS_TEV_STEP = 0, // an optimizer step finished
    QS_TEV_EVAL = 1, // a held-out evaluation finished
    QS_TEV_WARN = 2, // something the user should know (skipped update, data mismatch on resume)
    QS_TEV_SAVE = 3  // a checkpoint was written (message: its directory)
} qs_train_event_kind;

typedef struct {
    qs_train_event_kind kind;
    long step;          // steps done (after the step, for STEP)
    long total;         // opts.steps
    float loss;         // STEP: mean training loss of the step
    float lr;           // STEP: learning rate used
    float grad_norm;    // STEP: global norm before clipping
    int skipped;        // STEP: 1 if the update was skipped (non-finite)
    double tok_per_s;   // STEP: training tokens per second in this run
    double elapsed;     // seconds since qs_trainer_run started
    double eta;         // STEP: estimated seconds to the end
    double val_nll;     // EVAL: mean held-out NLL per token (Quiet-STaR: base, no thought)
    double val_nll_think; // EVAL (Quiet-STaR): thought-mixed NLL, eval mode (1 pass, 1 talk token)
    long val_tokens;    // EVAL: tokens it averages over
    const qs_qstar_out *qs; // STEP (Quiet-STaR): loss parts, rewards, mixing weights and the
                        // sampled thoughts of the step's last micro-batch
    const int *tokens;  // STEP (Quiet-STaR): that micro-batch's tokens [batch, seq_len]
    const char *message; // WARN: text; SAVE: checkpoint directory
} qs_train_event;

typedef void (*qs_train_cb)(void *ctx, const qs_train_event *ev);

#define QS_GRAD_TREE_MAX 21 // grad_accum <= 2^20 (the CLI's limit)

typedef struct {
    qs_model *model;     // borrowed; updated in place
    qs_dataset *data;    // borrowed; data->rng is the sampler state
    qs_train_opts o;
    qs_adamw opt;
    float *grads;        // layout.numel
    qs_layout opt_layout; // the model layout without Quiet-STaR tensors (shallow copy)
    qs_workspace *ws;    // training, batch x seq_len
    qs_workspace *ws_eval; // inference, batch x seq_len
    int *tokens, *mask;  // [batch, seq_len]
    qs_qstar *qstep;     // Quiet-STaR: training step (NULL in plain LM mode)
    qs_qstar *qeval;     // Quiet-STaR: eval-mode step (1 pass, 1 talk token, forward only)
    qs_qstar_out qout;   // Quiet-STaR: results of the last micro-batch
    long step;           // optimizer steps done
    uint64_t data_pos;   // training windows drawn
    long saved_step;     // step of the last checkpoint written or loaded (-1: none)
    char warning[512];   // pending warning (from restore), reported by qs_trainer_run
    struct qs_dist *dist; // data-parallel over MPI ranks (dist.h); NULL: one process
    float *gtree[QS_GRAD_TREE_MAX]; // ceil(log2 grad_accum) buffers of layout.numel: the micro-batch sum's levels
    // Quiet-STaR with the EMA reward baseline (o.qs.reward_baseline == QS_BASELINE_EMA):
    // an exponential moving average of the weights, used without thoughts to score
    // each batch (qs_qstar_set_ref_nll). Initialised from the weights at the first
    // step of a fresh run; checkpoints keep it (QS_TRAIN_EMA_FILE) and a resume
    // loads it (one saved without it starts again from the weights, with a warning);
    // after every applied update ema = d * ema + (1-d) * weights, d = o.qs.ema_decay.
    qs_model ema;        // params NULL when unused
    int ema_ready;
    qs_workspace *ws_ref; // inference, batch x seq_len
    float *ref_nll;      // [batch, seq_len]
} qs_trainer;

// Checks the options against the model (seq_len <= max positions) and the data
// (token ids < vocab, a non-empty training stream) and allocates everything.
qs_status qs_trainer_init(qs_trainer *t, qs_model *m, qs_dataset *ds, const qs_train_opts *o);
void qs_trainer_free(qs_trainer *t);

// One optimizer step as described above. `ev` (may be NULL) receives a STEP event
// (loss, lr, grad_norm, skipped; no timing).
qs_status qs_trainer_step(qs_trainer *t, qs_train_event *ev);

// Mean held-out NLL per token over the first opts.eval_batches x batch
// sequential windows of data->val (all of it if eval_batches is 0). With an
// empty held-out stream *nll is NaN and *n_tokens 0. In Quiet-STaR mode
// *nll_think (may be NULL) receives the thought-mixed NLL on the same tokens.
qs_status qs_trainer_eval(qs_trainer *t, double *nll, double *nll_think, long *n_tokens);

// The state to checkpoint now / restoring one (moments, step, sampler).
void qs_trainer_state(const qs_trainer *t, qs_train_state *s);
// Loads ckpt_dir/train_state.safetensors into the trainer (its model must
// already hold the checkpoint's weights); refuses a state whose fingerprint
// does not match the directory's weights and settings. A training stream of a different
// length than the checkpoint's is reported as a warning at the next run.
qs_status qs_trainer_restore(qs_trainer *t, const char *ckpt_dir);

typedef struct {
    const char *out_dir;          // checkpoints go to out_dir/ckpt; NULL: none
    const char *tokenizer_path;   // copied into each checkpoint (may be NULL)
    const char *quietstar_json;   // stored in each checkpoint's config.json (may be NULL)
    const char *args_json;        // stored as ckpt/train_args.json (may be NULL)
    qs_train_cb cb;               // progress events (may be NULL)
    void *cb_ctx;
    volatile sig_atomic_t *stop;  // when it becomes nonzero: finish the step, checkpoint, return
} qs_train_run_opts;

typedef struct {
    double nll_first, nll_last;   // held-out NLL at the start and at the end of this run (NaN: none)
    long step_first, step_last;   // steps done at those evaluations
    long steps_run;               // steps done by this call
    long skipped;                 // updates skipped (non-finite)
    double seconds;               // wall time of this call
    int interrupted;              // 1: stopped by *stop or stop_after before opts.steps
    char ckpt_dir[4096];          // last checkpoint written ("" if none)
} qs_train_summary;

// Runs from t->step to opts.steps: evaluation at the start, every eval_every
// steps and at the end; checkpoints every save_every steps and at the end (or
// when stopped). Returns QS_OK also when stopped early (summary->interrupted).
qs_status qs_trainer_run(qs_trainer *t, const qs_train_run_opts *ro, qs_train_summary *sum);

// dst[i] += src[i] (how gradients of micro-batches are added).
void qs_grads_add(float *dst, const float *src, size_t n);
// Zeroes t->grads, draws the step's grad_accum micro-batches in order and
// leaves in t->grads the balanced-tree sum (see qs_trainer_step) of the
// gradients of those in [lo, hi); *loss_sum = the sum of their losses.
qs_status qs_trainer_grad_sum(qs_trainer *t, int lo, int hi, double *loss_sum);

// --- data parallel (dist.h, dist_step.c) ---
// Makes t one rank of a data-parallel run (d may be NULL: nothing to do).
// Call after qs_trainer_init and any qs_trainer_restore; with --zero 1 the
// AdamW moments are cut to this rank's chunk. The trainer borrows d.
qs_status qs_trainer_set_dist(qs_trainer *t, struct qs_dist *d);
// qs_trainer_step over the ranks (qs_trainer_step calls it when t->dist is set).
qs_status qs_trainer_step_dist(qs_trainer *t, qs_train_event *ev);
// What follows every optimizer step, single process or data parallel: the bf16 copy of
// the weights and the EMA baseline model follow the update (unless skipped), the step
// count advances, and *ev (if not NULL) describes the step.
void qs_trainer_step_done(qs_trainer *t, qs_train_event *ev, float loss, float lr, float norm, int skip);
// The full AdamW state for a checkpoint: *opt points at t->opt, or with
// --zero 1 at *tmp (gathered on rank 0; free it with qs_adamw_free).
qs_status qs_trainer_dist_moments(qs_trainer *t, qs_adamw *tmp, const qs_adamw **opt);

#endif

// qstar.h: public API of libqstar, Quiet-STaR in C.
//
// libqstar loads, runs, scores and trains language models that think before
// they speak (Zelikman et al. 2024, "Quiet-STaR"). Everything a program needs
// is in this one header; link with `pkg-config --cflags --libs qstar`
// (libqstar.so, or libqstar.a with `pkg-config --static`).
//
// Conventions
//   - Every function that can fail returns a qs_status; on failure a one-line
//     message (naming the file, tensor or parameter involved) is available
//     from qstar_last_error() in the same thread. The library never prints to
//     stdout/stderr and never exits the process.
//   - Objects are opaque handles (qstar_model, qstar_trainer) created from a
//     params struct that you first fill with its *_default() function, so
//     fields added later keep a sensible value.
//   - Every exported symbol starts with qstar_ (QSTAR_API); types and status
//     codes start with qstar_ / qs_ / QS_.
//   - Programs should run with OMP_WAIT_POLICY=passive (spinning OpenMP
//     threads fight OpenBLAS's on small machines).
//
// Example: greedy continuation of a prompt, with thoughts when the model is a
// Quiet-STaR checkpoint (see examples/generate.c and examples/train.c):
//
//     #include <qstar.h>
//     #include <stdio.h>
//
//     static int print_token(void *user, const qstar_token *t) {
//         (void)user;
//         fputs(t->text, stdout);  // t->thought_text: the thought before it
//         return 0;                // nonzero stops the generation
//     }
//
//     int main(void) {
//         qstar_model *m;
//         qstar_model_params mp = qstar_model_params_default();
//         if (qstar_model_load("stories260K.bin", &mp, &m) != QS_OK) {
//             fprintf(stderr, "%s\n", qstar_last_error());
//             return 1;
//         }
//         qstar_gen_params gp = qstar_gen_params_default();
//         gp.temperature = 0;  // greedy
//         qstar_generate(m, "Once upon a time", &gp, print_token, NULL);
//         qstar_model_free(m);
//         return 0;
//     }
//
// (mp.tokenizer_path names the tokenizer of a llama2.c .bin: "tok512.bin".)
#ifndef QSTAR_H
#define QSTAR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QSTAR_VERSION "0.1.0"
#define QSTAR_VERSION_MAJOR 0

#if defined(_WIN32)
#define QSTAR_API
#else
#define QSTAR_API __attribute__((visibility("default")))
#endif

typedef enum {
    QS_OK = 0,
    QS_ERR_IO = 1,        // a file could not be opened, read or written
    QS_ERR_FORMAT = 2,    // a file's contents are malformed, truncated or inconsistent
    QS_ERR_ARG = 3,       // an argument or option is out of range or inconsistent
    QS_ERR_NOMEM = 4,     // an allocation failed
    QS_ERR_NUMERIC = 5,   // a non-finite value where a finite one is required
    QS_ERR_UNSUPPORTED = 6, // a valid input that qstar does not handle (yet)
    QS_ERR_INTERRUPTED = 7  // stopped on request (e.g. SIGINT)
} qs_status;

// Message for the last error in this thread ("" if none).
QSTAR_API const char *qstar_last_error(void);
// Short name of a status code ("io", "format", ...).
QSTAR_API const char *qstar_status_name(qs_status st);
// QSTAR_VERSION of the library actually linked.
QSTAR_API const char *qstar_version(void);

// Matrix products: fp32, or bf16 inputs with fp32 accumulation (master
// weights, gradients and optimizer state stay fp32).
typedef enum { QSTAR_FP32 = 0, QSTAR_BF16 = 1 } qstar_precision;
// "fp32" | "bf16" -> *out; anything else is QS_ERR_ARG.
QSTAR_API qs_status qstar_precision_parse(const char *s, qstar_precision *out);
QSTAR_API const char *qstar_precision_name(qstar_precision p);
// Chooses the matmul backend from the environment variable QSTAR_MATMUL
// (openblas | onednn; unset: onednn when the library was built with it) and
// gives its name; QS_ERR_ARG when QSTAR_MATMUL names no available backend.
QSTAR_API qs_status qstar_matmul_backend(const char **name);

// ---------------------------------------------------------------------------
// Models

typedef struct qstar_model qstar_model;

typedef struct {
    const char *tokenizer_path; // NULL: the model's own (DIR/tokenizer.json, then tokenizer.bin);
                                // required for a llama2.c .bin (like the CLI's --tokenizer)
    int n_threads;              // > 0: OpenMP and BLAS threads for everything (0: leave as is)
} qstar_model_params;

QSTAR_API qstar_model_params qstar_model_params_default(void);

// Loads a model in any format the qstar CLI reads: a model directory
// (config.json + model.safetensors), a llama2.c .bin, ... and its tokenizer.
// A Quiet-STaR checkpoint (qstar train, qstar convert --add-quietstar) keeps
// its thought settings. *out is NULL on failure.
QSTAR_API qs_status qstar_model_load(const char *path, const qstar_model_params *params, qstar_model **out);
// Writes a model directory (config.json, model.safetensors, the tokenizer
// when it is a llama2.c file) at `dir`; each file atomically.
QSTAR_API qs_status qstar_model_save(const qstar_model *m, const char *dir);
QSTAR_API void qstar_model_free(qstar_model *m);

typedef struct {
    const char *arch;     // "llama", "mistral", "qwen2", "gpt2"
    int dim, hidden_dim, n_layers, n_heads, n_kv_heads, head_dim;
    int vocab_size, max_seq_len;
    int bos_id, eos_id;
    size_t n_params;      // floats in the parameter buffer
    int has_quietstar;    // every Quiet-STaR tensor is present: the model can think
    int n_ahead;          // thought length incl. start/end of its settings (0 without)
} qstar_config;

QSTAR_API qs_status qstar_model_config(const qstar_model *m, qstar_config *out);

// Text -> token ids. With add_bos the tokenizer's BOS comes first (as the CLI
// does for prompts and data). Writes at most cap ids; *n_out receives the
// count needed (> cap is QS_ERR_ARG, nothing partial is promised).
QSTAR_API qs_status qstar_tokenize(const qstar_model *m, const char *text, int add_bos, int *ids, int cap,
                                   int *n_out);
// Token ids -> text (BOS/EOS give no text). Writes a NUL-terminated string of
// at most cap-1 bytes into out; *len_out (may be NULL) receives its length.
QSTAR_API qs_status qstar_detokenize(const qstar_model *m, const int *ids, int n, char *out, size_t cap,
                                     size_t *len_out);
// The text of one token when it follows `prev` (-1: none), as generation prints it.
QSTAR_API const char *qstar_token_text(const qstar_model *m, int prev, int token);

// ---------------------------------------------------------------------------
// Generation (llama2.c run.c semantics: the prompt starts with BOS, the run
// stops at BOS or after max_tokens positions, prompt included)

typedef struct {
    int max_tokens;       // total positions incl. the prompt (256; 0 = the model's max_seq_len)
    float temperature;    // 0 = greedy (1.0)
    float top_p;          // nucleus in (0,1); 0 or 1 = off (0.9)
    uint64_t seed;        // sampler and thought seed (0)
    int think;            // -1: think if the model is a Quiet-STaR checkpoint (default); 0: no; 1: yes
    int n_ahead;          // thought length incl. start/end; 0 = the checkpoint's
    float tau_sample;     // thought sampling temperature; 0 = the checkpoint's
    int greedy_thoughts;  // 1: argmax thought tokens
} qstar_gen_params;

QSTAR_API qstar_gen_params qstar_gen_params_default(void);

typedef struct {
    int token;                // the generated token id
    const char *text;         // its text, exactly as `qstar generate` prints it (may be "")
    const int *thought;       // the thought that produced it (NULL without)
    int n_thought;            // its length (n_ahead - 3), 0 without
    const char *thought_text; // the thought decoded ("" without)
    float mix_weight;         // mixing weight of the thought (0 without)
    int generated;            // 0: a prompt token being replayed, 1: sampled
} qstar_token;

// Called for each token after the first (the pointers are valid during the
// call only). Return nonzero to stop.
typedef int (*qstar_token_cb)(void *user, const qstar_token *t);

// Continues `prompt` (UTF-8; "" = start from BOS). `on_token` may be NULL.
QSTAR_API qs_status qstar_generate(qstar_model *m, const char *prompt, const qstar_gen_params *params,
                                   qstar_token_cb on_token, void *user);

// ---------------------------------------------------------------------------
// Scoring: per-token NLL without and with thoughts (what `qstar viz` shows and
// `qstar eval --task nll --tokens-out` writes; the same code)

typedef struct {
    int think;            // -1: with thoughts if the model can think (default); 0: no; 1: yes
    int n_ahead;          // 0 = the checkpoint's
    float tau_sample;     // 0 = the checkpoint's
    int greedy_thoughts;
    uint64_t seed;        // thought seed (1234, as qstar eval)
    int seq_len;          // window length (0 = the model's max_seq_len)
    int batch;            // windows per forward (0 = as qstar eval: 4096/seq_len, 1024/seq_len thinking)
} qstar_score_params;

QSTAR_API qstar_score_params qstar_score_params_default(void);

// Caller-allocated per-token outputs: entry i is about tokens[i] predicted
// from tokens[0..i-1] (in its window); entries that are not predicted (i = 0
// and the first token of each window) are NaN (thoughts -1).
typedef struct {
    float *nll_base;      // [n] NLL without a thought (may be NULL)
    float *nll_think;     // [n] NLL after the thought at i-1 (NaN without thoughts; may be NULL)
    float *mix_weight;    // [n] mixing weight of that thought (0 without; may be NULL)
    int *thoughts;        // [n * thought_cap] the thought before token i, -1 padded (may be NULL)
    int thought_cap;      // ids per position in thoughts[]
    // filled in:
    int n_thought;        // thought length used (0 without thoughts)
    int n_scored;         // tokens scored
    double mean_base, mean_think; // means over the scored tokens (mean_think NaN without)
} qstar_score_out;

QSTAR_API qs_status qstar_score(qstar_model *m, const int *tokens, int n, const qstar_score_params *params,
                                qstar_score_out *out);

// ---------------------------------------------------------------------------
// Training: plain language modelling (`qstar finetune`) and Quiet-STaR
// (`qstar train`) run the same library code as the CLI.

typedef struct qstar_trainer qstar_trainer;

typedef enum {
    QSTAR_EV_STEP = 0, QSTAR_EV_EVAL = 1, QSTAR_EV_WARN = 2, QSTAR_EV_SAVE = 3,
    QSTAR_EV_NOTE = 4     // a line about the run's setup (message), as the CLI prints it
} qstar_event_kind;

typedef struct {
    qstar_event_kind kind;
    long step, total;     // steps done, steps in the schedule
    float loss, lr, grad_norm; // STEP
    int skipped;          // STEP: update skipped (non-finite)
    double val_nll, val_nll_think; // EVAL (think: Quiet-STaR only, else NaN)
    float loss_lm, loss_base, policy_loss, reward_mean, mix_mean; // STEP, Quiet-STaR
    const char *message;  // WARN, NOTE: text; SAVE: checkpoint directory
    double tok_per_s;     // STEP (qstar_trainer_run): training tokens per second in this run
    double elapsed;       // seconds since qstar_trainer_run started
    double eta;           // STEP (qstar_trainer_run): estimated seconds to the end
    long val_tokens;      // EVAL: held-out tokens averaged over (0: no held-out data)
    float loss_talk;      // STEP, Quiet-STaR: NLL of the first talk token after the thought
} qstar_progress;

// Return nonzero to stop (qstar_trainer_run then checkpoints and returns QS_OK).
// Under mpirun it is called on rank 0 only.
typedef int (*qstar_progress_cb)(void *user, const qstar_progress *p);

// Settings given by name (qstar_train_params_set); owned by the library.
typedef struct qstar_train_options qstar_train_options;

typedef struct {
    int quietstar;             // 0: plain LM (finetune), 1: Quiet-STaR (train)
    const char *model_path;    // start from this model (any format), or
    const char *config_path;   // random init from a config.json, or
    const char *resume_dir;    // continue a run (its DIR or DIR/ckpt): settings left at -1 / NULL,
                               // and its seed, val_frac and threads, come from its train_args.json
    const char *tokenizer_path; // NULL: the model's own
    const char *data_path;     // text (documents separated by blank lines) or JSONL
    const char *data_field;    // JSONL field (NULL: "text")
    const char *out_dir;       // checkpoints go to out_dir/ckpt (NULL: qstar_trainer_run saves nothing)
    double val_frac;           // held-out fraction of documents (0.05)
    uint64_t seed;             // init, data and thought seed (1337)
    int n_threads;             // > 0: threads (0: leave as is)
    // Optimisation: -1 (what *_default() sets) means the CLI's default for
    // the mode, e.g. batch 32 / lr 5e-4 for finetune --model, batch 16 / lr
    // 5e-3 for --config, batch 4 / seq_len 128 / lr 1e-4 / weight decay 0.001
    // / eval_batches 8 / eval_every 50 for Quiet-STaR; see qstar finetune --help.
    long steps;
    int batch, seq_len, grad_accum;
    float lr, min_lr, weight_decay, beta1, beta2, eps, clip;
    long warmup, eval_every, save_every;
    int eval_batches;
    // Quiet-STaR: 0 (or NULL) = the checkpoint's setting, else the SPEC
    // default (policy_beta: the small-model default 1 for a fresh run)
    int n_ahead, n_talk, n_passes;
    float policy_beta;
    const char *thought_init;  // start/end init text (see qstar_thought_init_token)
    qstar_progress_cb progress;
    void *progress_user;
    qstar_train_options *options; // settings given by name; NULL (the default) = none
} qstar_train_params;

QSTAR_API qstar_train_params qstar_train_params_default(void);

// Any training setting by the name of its CLI flag without "--" (THE options
// table of `qstar train` / `qstar finetune`, train_args.json and the Python
// Trainer): "model", "data", "out", "force", "steps", "lr", "seq-len",
// "precision", "dtype", "log", "stop-after", "zero", "plan", "ranks",
// "bandwidth", and with quietstar = 1 (set it first) "n-ahead", "n-talk",
// "preset", "show-thoughts", "mixing", "reward-baseline", "thought-init",
// "no-clamp", ... (see qstar_train_options_help). Switches take NULL, "",
// "1"/"true" (on) or "0"/"false" (off). The value is checked at once:
// QS_ERR_ARG with a message naming the flag and its allowed values for a bad
// value or an unknown name. A setting given by name wins over its field in
// the struct. Storage is allocated on the first call: release it with
// qstar_train_params_free (the trainer keeps its own copy).
//   Rules the trainer then follows, as the CLI: a non-empty out_dir is refused
// unless "force" (or it is the run being resumed), and out_dir/qstar.lock
// keeps other runs off it while the trainer lives; the JSONL log goes to
// "log" (default out_dir/log.jsonl; none without out_dir); under mpirun the
// ranks train data-parallel, rank 0 alone logs, saves and gets callbacks.
QSTAR_API qs_status qstar_train_params_set(qstar_train_params *p, const char *name, const char *value);
// The value of a setting given by name, as text ("" if not given). QS_ERR_ARG for an unknown name.
QSTAR_API qs_status qstar_train_params_get(const qstar_train_params *p, const char *name, char *buf, size_t cap);
QSTAR_API void qstar_train_params_free(qstar_train_params *p);
// 1 if the setting `name` takes a value, 0 if it is a switch ("force", "plan",
// "no-clamp", ...), -1 if there is no such setting.
QSTAR_API int qstar_train_option_kind(const char *name);
// The --help text of the settings (quietstar 1: with the Quiet-STaR ones).
QSTAR_API const char *qstar_train_options_help(int quietstar);

// Loads the model, tokenizer and data and sets the run up exactly as
// `qstar finetune` / `qstar train` do with the same settings; the setup's
// lines ("data: ...", "model: ...") go to the callback as QSTAR_EV_NOTE.
// QS_ERR_ARG means the settings given are wrong (the CLI's usage errors);
// anything else (missing files, bad data) has another status. With "plan"
// no MPI context is started: read qstar_trainer_plan, do not run.
QSTAR_API qs_status qstar_trainer_create(const qstar_train_params *params, qstar_trainer **out);
// One optimizer step; *p (may be NULL) receives its STEP record (also sent to the callback).
QSTAR_API qs_status qstar_trainer_step(qstar_trainer *t, qstar_progress *p);
// Held-out NLL (Quiet-STaR: base and thought-mixed, eval mode) as the CLI logs it.
QSTAR_API qs_status qstar_trainer_eval(qstar_trainer *t, double *nll, double *nll_think);
// Writes a checkpoint (model, optimizer and data state, settings) to dir/ckpt;
// dir NULL = params.out_dir. *ckpt_dir (may be NULL, cap bytes) receives its path.
QSTAR_API qs_status qstar_trainer_save(qstar_trainer *t, const char *dir, char *ckpt_dir, size_t cap);
// Loads a checkpoint of this run (weights, optimizer, data position) into t.
QSTAR_API qs_status qstar_trainer_resume(qstar_trainer *t, const char *dir);
// Runs to params.steps like the CLI: evaluations, checkpoints, progress.
QSTAR_API qs_status qstar_trainer_run(qstar_trainer *t);
QSTAR_API long qstar_trainer_steps_done(const qstar_trainer *t);
// The model being trained, for generating or scoring with it mid-run (owned by
// the trainer: valid until qstar_trainer_free; never pass it to qstar_model_free).
QSTAR_API qstar_model *qstar_trainer_model(qstar_trainer *t);
QSTAR_API void qstar_trainer_free(qstar_trainer *t);

// Asks a running qstar_trainer_run to finish the current step, checkpoint and
// return QS_OK (summary: interrupted). Async-signal-safe (it sets a flag): a
// SIGINT handler may call it. The library installs no signal handler itself.
QSTAR_API void qstar_trainer_request_stop(qstar_trainer *t);

typedef struct {
    double nll_first, nll_last;   // held-out NLL at the start and at the end of the run (NaN: none)
    long step_first, step_last;   // steps done at those evaluations
    long steps_run, skipped;      // steps done by the run, updates skipped (non-finite)
    double seconds;               // wall time of the run
    int interrupted;              // stopped (request_stop, the callback, "stop-after") before the end
    long step, total;             // steps done, steps in the schedule
    char ckpt_dir[4096];          // last checkpoint written ("" if none)
    char out_dir[4096];           // the run directory ("" if none)
} qstar_train_summary;

// The summary of the last qstar_trainer_run (QS_ERR_ARG if none ran).
QSTAR_API qs_status qstar_trainer_summary(const qstar_trainer *t, qstar_train_summary *out);
// The data-parallel plan: parameters, all-reduce volume per step and its time
// at "bandwidth" Gbit/s for "ranks" ranks (default: this run's), as text.
QSTAR_API const char *qstar_trainer_plan(const qstar_trainer *t);
// This process's rank under mpirun (0 in a single process); *n_ranks (may be NULL) the count.
QSTAR_API int qstar_trainer_rank(const qstar_trainer *t, int *n_ranks);
// 1 if the library was built with MPI (data-parallel training under mpirun).
QSTAR_API int qstar_mpi_available(void);
// Under mpirun, after qstar_trainer_create or qstar_trainer_run failed on this
// rank: ends every rank of the job with `code` (MPI_Abort; the others would
// wait for this one forever). Does nothing in a single process.
QSTAR_API void qstar_mpi_abort(int code);

// Thought settings by name for qstar_convert and qstar_dump_step (the
// Quiet-STaR part of the same options table): "n-ahead", "n-talk", "n-passes",
// "base-loss-weight", "policy-beta", "tau-sample", "tau-rl", "no-clamp",
// "clamp", "embedding-scale", "thought-init", "thought-init-end", "mixing",
// "greedy-thoughts", "reward-baseline", "ema-decay". *opts is allocated on the
// first call (release with qstar_train_options_free). QS_ERR_ARG names the flag
// and its range for a bad value, and any other name.
QSTAR_API qs_status qstar_thought_option_set(qstar_train_options **opts, const char *name, const char *value);
QSTAR_API void qstar_train_options_free(qstar_train_options *opts);
// The --help lines of those settings.
QSTAR_API const char *qstar_thought_options_help(void);
// THE thought_init rule (train, convert --add-quietstar, dump-step): the id of
// the first token of `text`'s encoding (no BOS) that is not only whitespace, so
// a SentencePiece dummy-prefix piece is skipped ("---" with tok512: 464 "-");
// -1 (= the mean embedding row) for NULL/"" or whitespace only.
QSTAR_API int qstar_thought_init_token(const qstar_model *m, const char *text);

// `qstar dump-step`: one Quiet-STaR step on a given batch with given (or
// sampled) thought tokens, losses and every parameter gradient written as
// safetensors (the interface other implementations are checked against).
typedef struct {
    const char *model_path;   // model directory (Quiet-STaR tensors it lacks are initialised)
    const char *batch_path;   // safetensors: input_ids [B,T], optional attention_mask [B,T], thought_ids
    const char *out_path;     // safetensors written (refused if it exists, unless force)
    int force;
    uint64_t seed;            // thought sampling seed when the batch has none (1)
    int thought_init_id;      // init token of absent start/end embeddings: -2 = the rule over
                              // "thought-init" with the tokenizer beside the model (default), -1 mean row
    qstar_train_options *thought; // thought settings by name (qstar_thought_option_set); NULL: defaults
} qstar_dump_step_params;

typedef struct {
    float loss, loss_lm, loss_base, policy_loss;
    int n_ahead, n_thought, n_talk, n_passes;
} qstar_dump_step_result;

QSTAR_API qstar_dump_step_params qstar_dump_step_params_default(void);
QSTAR_API qs_status qstar_dump_step(const qstar_dump_step_params *p, qstar_dump_step_result *out);

// A thought-length curriculum "n_ahead:n_talk:lr:steps,..." (qstar train
// --curriculum): stages in order, each trained from the previous checkpoint.
typedef struct {
    int n_ahead, n_talk;
    float lr;
    long steps;
} qstar_curriculum_stage;
// Parses spec into at most cap stages (*n: how many). QS_ERR_ARG naming the stage and field.
QSTAR_API qs_status qstar_curriculum_parse(const char *spec, qstar_curriculum_stage *stages, int cap, int *n);

// ---------------------------------------------------------------------------
// Zero-shot tasks of the paper: GSM8K and CommonsenseQA (`qstar eval --task`)

typedef struct {
    const char *task;      // "gsm8k" or "csqa"
    const char *data_path; // JSONL (NULL: $QSTAR_DATA/gsm8k/test.jsonl or csqa/dev_rand_split.jsonl)
    long limit;            // first N examples (0: all)
    int think;             // -1: if the model can think; 0; 1
    int n_ahead;           // 0 = the checkpoint's
    float tau_sample;      // 0 = the checkpoint's
    int greedy_thoughts;
    uint64_t seed;         // 1234
} qstar_task_params;

QSTAR_API qstar_task_params qstar_task_params_default(void);

typedef struct {
    long n;                 // examples scored
    double accuracy;        // mean product of restricted answer-token probabilities
    double exact_match;     // restricted argmax right at every answer token
    double first_token_prob; // mean restricted probability of the first answer token
    long truncated;         // prompts cut from the front
    long off_set;           // answer tokens outside the valid set
    int think;              // thoughts were used
} qstar_task_result;

// Called after each example with its index, score and exactness; nonzero stops.
typedef int (*qstar_task_cb)(void *user, long index, double score, int exact);

QSTAR_API qs_status qstar_eval_task(qstar_model *m, const qstar_task_params *params, qstar_task_cb on_example,
                                    void *user, qstar_task_result *out);

// ---------------------------------------------------------------------------
// Tokenizers on their own (`qstar tokenize`, `qstar prepare`)

// ---------------------------------------------------------------------------
// Model conversion (`qstar convert`)

typedef struct {
    const char *model_path;     // llama2.c .bin, model directory, ... (any qstar_model_load format)
    const char *tokenizer_path; // copied into out_dir (NULL: the model's own: DIR/tokenizer.json, then
                                // the tokenizer beside it); checked against the model's vocabulary first
    const char *out_dir;        // model directory written (config.json, model.safetensors, tokenizer)
    int force;                  // replace a non-empty out_dir (written beside it, then swapped in whole)
    const char *dtype;          // weights as "bf16", "f16" or "f32" (NULL: the input's)
    int add_quietstar;          // add fresh Quiet-STaR tensors (start/end from the thought_init rule,
                                // talk head N(0, 0.02) with a zero output layer; tensors present are
                                // kept) and a config.json "quietstar" block
    uint64_t seed;              // talk head init seed (1)
    float talk_head_std;        // testing aid: talk head output layer N(0, std) instead of 0 (0)
    qstar_train_options *thought; // thought settings by name for the block (qstar_thought_option_set;
                                  // needs add_quietstar); NULL: a checkpoint's own, else the defaults
} qstar_convert_params;

typedef struct {
    int n_layers, dim, vocab_size;
    size_t n_params;
    int added_quietstar;        // the Quiet-STaR block was written
    int n_ahead;                // its thought length
    int thought_init_id;        // the start/end init token (-1: mean embedding row)
} qstar_convert_result;

QSTAR_API qstar_convert_params qstar_convert_params_default(void);
// Checks out_dir first (nothing is loaded when it would be refused), then
// converts; an old out_dir is replaced completely or not at all.
QSTAR_API qs_status qstar_convert(const qstar_convert_params *p, qstar_convert_result *out);

// ---------------------------------------------------------------------------
// Output paths: the overwrite rules every qstar command follows

// ---------------------------------------------------------------------------
// Benchmarks (`make bench`)

#ifdef __cplusplus
}
#endif
#endif

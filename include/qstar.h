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
//   - Programs should run with the OMP_WAIT_POLICY qstar_omp_wait_policy()
//     names (passive on the OpenBLAS backend), set before libgomp loads.
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
// The OMP_WAIT_POLICY that suits that backend: "passive" for OpenBLAS (OpenMP
// threads spinning after each parallel region fight OpenBLAS's own threads for
// the cores: 2-3x slower steps on 2 cores), NULL for oneDNN (it runs on the
// same OpenMP threads, and libgomp's default short spin before sleeping saves
// the wake-up of every small parallel region: a stories260K step 15-20% faster
// than with passive). libgomp reads the variable when it loads, so set it
// before (the qstar CLI re-executes itself once with it).
QSTAR_API const char *qstar_omp_wait_policy(void);

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
    float think_min_entropy; // think only before tokens whose base prediction has an entropy above
                          // this many nats, elsewhere the plain prediction; -INFINITY (the
                          // default) = before every token (see qstar_think_when_parse)
    int random_thoughts;  // 1: thought tokens drawn uniformly from the vocabulary (a content control)
    const char *think_at; // think only where the text so far (prompt and output) ends with this string
                          // (e.g. "A: "); that thought then also produces the next n_talk - 1 tokens
                          // through its talk passes, as training scores a thought; elsewhere the plain
                          // prediction (NULL: a thought before every token)
    int n_talk;           // tokens produced from a think_at thought (0: the checkpoint's n_talk)
    qstar_precision precision; // GEMM precision of this run (QSTAR_FP32)
    int no_stop;          // 1: never stop early: BOS is not sampled, all max_tokens positions run
} qstar_gen_params;

QSTAR_API qstar_gen_params qstar_gen_params_default(void);
// The CLI's --think-when: "always" -> -INFINITY, "entropy>X" -> X (nats);
// anything else is QS_ERR_ARG.
QSTAR_API qs_status qstar_think_when_parse(const char *s, float *min_entropy);

typedef struct {
    int token;                // the generated token id
    const char *text;         // its text, exactly as `qstar generate` prints it (may be "")
    const int *thought;       // the thought that produced it (NULL without)
    int n_thought;            // its length (n_ahead - 3), 0 without
    const char *thought_text; // the thought decoded ("" without)
    float mix_weight;         // mixing weight of the thought (0 without)
    int generated;            // 0: a prompt token being replayed, 1: sampled
    int prev;                 // the token before it (-1: none): the context of its and the thought's text
} qstar_token;

// Called for each token after the first, and for the first too when it is
// not BOS (a tokenizer without one), i.e. for every token whose text
// `qstar generate` prints (the pointers are valid during the call only).
// Return nonzero to stop.
typedef int (*qstar_token_cb)(void *user, const qstar_token *t);

// Continues `prompt` (UTF-8; "" = start from BOS). `on_token` may be NULL.
QSTAR_API qs_status qstar_generate(qstar_model *m, const char *prompt, const qstar_gen_params *params,
                                   qstar_token_cb on_token, void *user);

typedef struct {
    int n_positions;      // positions run, prompt included (run.c's final pos)
    int n_generated;      // tokens sampled (not forced by the prompt)
    int n_thoughts;       // sampled tokens that came after a thought
    int think;            // thoughts were on
    int n_ahead;          // their length incl. start/end (0 without)
    double seconds;       // wall time after the first position (run.c's timer)
    double tok_per_s;     // (n_positions - 1) / seconds, as run.c reports (0 if unmeasurable)
} qstar_gen_stats;

// qstar_generate that also fills *stats (may be NULL; filled on failure too).
QSTAR_API qs_status qstar_generate_ex(qstar_model *m, const char *prompt, const qstar_gen_params *params,
                                      qstar_token_cb on_token, void *user, qstar_gen_stats *stats);

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
    qstar_precision precision; // GEMM precision (QSTAR_FP32)
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

// `qstar viz`: a self-contained HTML page (no network access) showing each
// token of a text coloured by NLL without thought - NLL after the thought
// sampled at the position before it (green: the thought helped), with the
// thought and mixing weight on hover/click (the paper's Figure 1).
typedef struct {
    int max_tokens;       // the first N tokens, BOS included (0 or more than max_seq_len: max_seq_len)
    int n_ahead;          // 0 = the checkpoint's
    float tau_sample;     // 0 = the checkpoint's
    int greedy_thoughts;
    uint64_t seed;        // thought seed (1234)
    qstar_precision precision;
    const char *title;    // page heading, e.g. the text file's name (NULL: none)
    int force;            // replace a file at the path that holds a model, checkpoint or log
} qstar_viz_params;

QSTAR_API qstar_viz_params qstar_viz_params_default(void);

typedef struct {
    int n_tokens;         // tokens shown (scored)
    int n_ahead;          // thought length used
    double nll_base, nll_think, gain; // means over them; gain = base - think
} qstar_viz_result;

// Whether `path` may receive the page (the overwrite rules of every qstar
// output: a model, checkpoint or log file there needs p->force, a directory
// never; its directory must exist): call it before loading the model.
QSTAR_API qs_status qstar_viz_check(const char *path, const qstar_viz_params *p);
// Scores `text` (UTF-8, BOS prepended, trailing whitespace dropped; at least
// 2 tokens) with thoughts and writes the page to `path` atomically. The
// model must be a Quiet-STaR checkpoint. *out (may be NULL) gets the means.
QSTAR_API qs_status qstar_viz_write(qstar_model *m, const char *text, const qstar_viz_params *p, const char *path,
                                    qstar_viz_result *out);

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
    qstar_precision precision; // GEMM precision (QSTAR_FP32)
    const char *out_path;  // results as JSON (task, n, accuracy, exact_match, think, n_ahead, per-example
                           // scores; `qstar eval --out`), written atomically (NULL: none)
    int force;             // replace a file at out_path that holds a model, checkpoint or log
} qstar_task_params;

QSTAR_API qstar_task_params qstar_task_params_default(void);
// The settings and out_path checked without a model (call it before loading one).
QSTAR_API qs_status qstar_task_check(const qstar_task_params *params);
// The number of examples that qstar_eval_task will score (non-blank lines of
// the data file, at most limit).
QSTAR_API qs_status qstar_task_count(const qstar_task_params *params, long *n);

typedef struct {
    long n;                 // examples scored
    double accuracy;        // mean product of restricted answer-token probabilities
    double exact_match;     // restricted argmax right at every answer token
    double first_token_prob; // mean restricted probability of the first answer token
    long truncated;         // prompts cut from the front
    long off_set;           // answer tokens outside the valid set
    int think;              // thoughts were used
    int n_ahead;            // their length incl. start/end (0 without)
    float tau_sample;       // their sampling temperature (0 without)
    const char *mixing;     // "linear" or "sigmoid" ("" without)
    double accuracy_chance; // mean over the examples of what a uniform guess over the valid tokens scores
    double first_token_chance; // 1 / the number of valid answer tokens
} qstar_task_result;

// Called after each example with its index, score and exactness; nonzero stops.
typedef int (*qstar_task_cb)(void *user, long index, double score, int exact);

QSTAR_API qs_status qstar_eval_task(qstar_model *m, const qstar_task_params *params, qstar_task_cb on_example,
                                    void *user, qstar_task_result *out);

// ---------------------------------------------------------------------------
// Evaluation: held-out NLL of a data file without and with thoughts (`qstar
// eval --data` and `qstar eval --task nll` run this one function). Every
// document starts with BOS; all are packed into one token stream cut into
// non-overlapping windows of seq_len tokens; each window predicts its own
// next tokens.

typedef struct {
    size_t windows_done, windows_total;
    long n_tokens;          // tokens scored so far
    double nll_base;        // their mean NLL without thoughts
    // the data (also in the first call, made before any window with windows_done 0):
    int prepared;           // data_path is a `qstar prepare` directory ...
    int heldout;            // ... of which the held-out split is scored (0: its training split)
    size_t n_docs, n_stream_tokens; // documents and tokens of the stream
} qstar_eval_progress;

// Called before the first batch and after each; nonzero stops (QS_ERR_INTERRUPTED).
typedef int (*qstar_eval_cb)(void *user, const qstar_eval_progress *p);

typedef struct {
    const char *data_path;  // text (documents separated by blank lines), JSONL (.jsonl/.json/.ndjson),
                            // or a `qstar prepare` directory (its held-out split)
    const char *data_field; // JSONL field of the document (NULL: "text"; given: the file is JSONL)
    long limit_tokens;      // only the first N tokens of the stream (0: all)
    int seq_len;            // window length (0: the model's max_seq_len)
    int batch;              // windows per forward (0: 4096/seq_len, thinking 1024/seq_len)
    int think;              // -1: with thoughts if the model can think (default); 0: no; 1: yes
    int n_ahead;            // 0 = the checkpoint's
    float tau_sample;       // 0 = the checkpoint's
    int greedy_thoughts;
    uint64_t seed;          // thought seed (1234)
    float think_min_entropy; // think only where the base entropy exceeds this (-INFINITY: everywhere)
    int random_thoughts;    // 1: uniformly random thought tokens (a content control)
    const char *think_at;   // think only where the text so far ends with this string (e.g. "A: ") and score
                            // the next n_talk tokens from that one thought's talk passes, as training scores
                            // a thought; other tokens take the base prediction (NULL: a thought at every
                            // position, each token scored from the thought just before it)
    int n_talk;             // tokens scored from a think_at thought (0: the checkpoint's n_talk)
    qstar_precision precision;
    const char *out_path;   // results as JSON (`qstar eval --task nll --out`; NULL: none)
    const char *tokens_path; // one JSON line per scored token: window, pos, id, text, nll_base,
                            // entropy, thought_on, talk, nll_think, mix, thought, thought_text (NULL: none)
    int force;              // replace such a file that holds a model, checkpoint or log
    qstar_eval_cb progress;
    void *progress_user;
} qstar_eval_params;

QSTAR_API qstar_eval_params qstar_eval_params_default(void);

typedef struct {
    long n_tokens;          // tokens scored
    int seq_len, batch;     // as used
    int think;              // thoughts were used
    int n_ahead;            // their length incl. start/end (0 without)
    float tau_sample;       // (0 without)
    const char *mixing;     // "linear" or "sigmoid" ("" without)
    double nll_base, nll_think;       // mean NLL (nats/token); nll_think NaN without thoughts
    double hard20_base, hard20_think; // means over the 20% of tokens with the highest base NLL
    double hard10_base, hard10_think; // ... 10%
    double mix_mean;        // mean mixing weight
    double think_frac;      // fraction of tokens predicted after a thought
    double gain, gain_ci95; // thought gain base - think: mean over windows of each window's mean, and the
                            // half-width of its 95% t-interval (NaN with fewer than 2 windows)
    long gain_windows;
    double seconds;
} qstar_eval_result;

// Settings and output files checked without a model (call it before loading one).
QSTAR_API qs_status qstar_eval_check(const qstar_eval_params *params);
QSTAR_API qs_status qstar_eval_nll(qstar_model *m, const qstar_eval_params *params, qstar_eval_result *out);

// ---------------------------------------------------------------------------
// Tokenizers on their own (`qstar tokenize`, `qstar prepare`)

typedef struct qstar_tokenizer qstar_tokenizer;

typedef struct {
    int vocab_size;       // llama2.c .bin only: pieces to read (0: to the end of the file, as the CLI)
} qstar_tokenizer_params;

QSTAR_API qstar_tokenizer_params qstar_tokenizer_params_default(void);

// Opens a tokenizer from any source qstar reads: tokenizer.json (with
// tokenizer_config.json beside it), a SentencePiece tokenizer.model, a
// llama2.c tokenizer.bin, a GGUF file, or a model directory holding one of
// them (tokenizer.json, then tokenizer.model, then tokenizer.bin). *out is
// NULL on failure.
QSTAR_API qs_status qstar_tokenizer_load(const char *path, const qstar_tokenizer_params *params,
                                         qstar_tokenizer **out);
QSTAR_API void qstar_tokenizer_free(qstar_tokenizer *t);
// The tokenizer a model loaded with (borrowed: valid while the model is,
// never pass it to qstar_tokenizer_free).
QSTAR_API const qstar_tokenizer *qstar_model_tokenizer(const qstar_model *m);

typedef struct {
    int vocab_size;
    int bos_id, eos_id;   // -1 when the tokenizer has none (Qwen3 has no BOS)
    int add_bos, add_eos; // what its configuration adds with special tokens on (`qstar tokenize --special`)
    const char *kind;     // "llama2c", "spm", "bpe-bytelevel", "bpe-spm"
} qstar_tokenizer_info;

QSTAR_API qs_status qstar_tokenizer_get_info(const qstar_tokenizer *t, qstar_tokenizer_info *out);
QSTAR_API int qstar_tokenizer_vocab_size(const qstar_tokenizer *t);

// UTF-8 text -> ids, BOS first with add_bos, EOS last with add_eos (nothing
// when the tokenizer has none). Writes at most cap ids; *n_out receives the
// count needed (> cap is QS_ERR_ARG). Invalid UTF-8 is QS_ERR_FORMAT naming
// the byte offset.
QSTAR_API qs_status qstar_tokenizer_encode(const qstar_tokenizer *t, const char *text, int add_bos, int add_eos,
                                           int *ids, int cap, int *n_out);
// The same into a malloc'ed array: free *ids with qstar_tokenizer_ids_free.
QSTAR_API qs_status qstar_tokenizer_encode_alloc(const qstar_tokenizer *t, const char *text, int add_bos,
                                                 int add_eos, int **ids, int *n_out);
QSTAR_API void qstar_tokenizer_ids_free(int *ids);
// Ids -> text (BOS/EOS and other special tokens give no text, so
// decode(encode(s, add_bos)) == s). Writes a NUL-terminated string of at most
// cap-1 bytes; *len_out (may be NULL) receives its length. An id outside the
// vocabulary is QS_ERR_ARG.
QSTAR_API qs_status qstar_tokenizer_decode(const qstar_tokenizer *t, const int *ids, int n, char *out, size_t cap,
                                           size_t *len_out);

// Streaming decoder (what `qstar tokenize --decode` and generation print):
// ids go in one at a time, only complete UTF-8 characters come out (a partial
// one is held until its bytes arrive; invalid bytes become U+FFFD).
typedef struct qstar_decoder qstar_decoder;
// specials: 1 = special tokens produce their text too (so decoding an encoding
// made with them gives the text back), 0 = they produce none.
QSTAR_API qs_status qstar_decoder_create(const qstar_tokenizer *t, int specials, qstar_decoder **out);
// Writes the text `token` completes into out (NUL-terminated; cap >= 64 + the
// longest piece is always enough, smaller is QS_ERR_ARG) and its length into *n.
QSTAR_API qs_status qstar_decoder_push(qstar_decoder *d, int token, char *out, size_t cap, size_t *n);
// Emits what is still held (U+FFFD for an incomplete sequence).
QSTAR_API qs_status qstar_decoder_flush(qstar_decoder *d, char *out, size_t cap, size_t *n);
QSTAR_API void qstar_decoder_free(qstar_decoder *d);

// Writes the tokenizer of the GGUF file at gguf_path into directory `dir`
// (created if missing; its parent must exist) as a Hugging Face directory
// holds it: tokenizer.model (a `llama` vocabulary) or tokenizer.json (`gpt2`),
// and tokenizer_config.json (`qstar tokenize --export`).
QSTAR_API qs_status qstar_tokenizer_export(const char *gguf_path, const char *dir);

// `qstar prepare`: text / JSONL corpora -> a token directory that
// qstar_train_params.data_path (and the CLI's --data) accept: tokens.bin,
// docs.idx, meta.json; streaming, in parallel, with the held-out split of
// the last documents.
typedef struct {
    const char *tokenizer_path;        // any source qstar_tokenizer_load reads, or
    const qstar_tokenizer *tokenizer;  // an open one (used when not NULL)
    const char *const *inputs;         // text / JSONL files, concatenated in this order
    int n_inputs;
    const char *out_dir;               // created if missing (its parent must exist); must not hold a prepared corpus
    const char *field;                 // JSONL field (NULL: "text")
    double val_frac;                   // held-out fraction of the documents (0.05)
    int n_threads;                     // > 0: encoder threads (0: all cores)
} qstar_prepare_params;

QSTAR_API qstar_prepare_params qstar_prepare_params_default(void);

typedef struct {
    uint64_t docs, tokens;  // so far
    double seconds;         // since the start
    int file, n_files;      // file being read (0-based); file == n_files: finished
} qstar_prepare_progress;

// Called every ~65k documents and once at the end.
typedef void (*qstar_prepare_cb)(void *user, const qstar_prepare_progress *p);

typedef struct {
    int width;                          // bytes per token in tokens.bin: 2 or 4
    int vocab_size;
    uint64_t n_tokens, n_docs;
    uint64_t train_docs, train_tokens;  // the held-out split is the rest
} qstar_prepare_result;

// on_progress and out may be NULL.
QSTAR_API qs_status qstar_prepare(const qstar_prepare_params *params, qstar_prepare_cb on_progress, void *user,
                                  qstar_prepare_result *out);

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

// What a path is about to receive; decides what may be replaced.
typedef enum {
    QSTAR_OUT_FILE = 0,      // one output file: may replace a plain file, but not a directory, nor a
                             // model or checkpoint file (or any file of a model directory) unless force
    QSTAR_OUT_MODEL_DIR = 1, // a model directory: an existing non-empty directory needs force
    QSTAR_OUT_RUN_DIR = 2,   // a training run directory: non-empty needs force; one a live run holds: refused
    QSTAR_OUT_DIR = 3        // any other output directory (charts): non-empty needs force
} qstar_out_kind;

// Before any work: refuses (QS_ERR_IO, naming the path, what it holds and
// that --force replaces it) to replace work unless `force`, then checks that
// the path can be created and written (a probe file in it or in its nearest
// existing parent). Nothing is changed on disk.
QSTAR_API qs_status qstar_out_check(const char *path, qstar_out_kind kind, int force);
// 1 when dir holds config.json, model.safetensors or a training state.
QSTAR_API int qstar_is_model_dir(const char *dir);
// Creates dir and its missing parents (mkdir -p).
QSTAR_API qs_status qstar_mkdir_p(const char *dir);
// Writes n bytes to path atomically: a reader sees the old file or the whole
// new one (path.tmp, fsync, rename, fsync of the directory).
QSTAR_API qs_status qstar_write_file_atomic(const char *path, const void *data, size_t n);
// Reads a whole file (at most max bytes, else QS_ERR_FORMAT naming it) into
// *data (malloc'ed and NUL-terminated; free with qstar_file_free).
QSTAR_API qs_status qstar_read_file(const char *path, size_t max, char **data, size_t *n);
QSTAR_API void qstar_file_free(char *data);

// Streamed atomic write: open writes to path.tmp; commit makes it `path` in
// one step; abort (also after a failed write or commit) removes path.tmp.
// Every handle ends with commit or abort, which free it.
typedef struct qstar_afile qstar_afile;
QSTAR_API qs_status qstar_afile_open(const char *path, qstar_afile **out);
QSTAR_API qs_status qstar_afile_write(qstar_afile *f, const void *data, size_t n);
QSTAR_API qs_status qstar_afile_commit(qstar_afile *f);
QSTAR_API void qstar_afile_abort(qstar_afile *f);

// Puts the freshly written directory `fresh` in place of `dst` in one step
// (the old contents are then removed completely).
QSTAR_API qs_status qstar_dir_replace(const char *fresh, const char *dst);
// Removes a directory tree (rm -rf); a missing path is not an error.
QSTAR_API qs_status qstar_remove_tree(const char *path);

// ---------------------------------------------------------------------------
// Benchmarks (`make bench`): the timed work of bench/bench_qstar.c

typedef enum {
    QSTAR_BENCH_LM = 0,     // language-model forward+backward
    QSTAR_BENCH_QSTAR = 1   // one Quiet-STaR training step: thoughts sampled, forward, backward,
                            // global grad-norm clip 1.0 and AdamW (the released run's lr 1e-6,
                            // betas 0.9/0.999, eps 1e-8, weight decay 0.001)
} qstar_bench_kind;

typedef struct {
    qstar_bench_kind kind;
    const char *shape;          // random init: "260k" (stories260K) or "135m" (SmolLM-135M), or
    const char *model_path;     // real weights from any model qstar loads (used when not NULL)
    int B, T;                   // batch and sequence length (1, 64)
    int n_ahead, n_talk, n_passes; // QSTAR: thought settings (12, 4, 2)
    int warmup, iters;          // untimed and timed steps (1, 3; iters <= QSTAR_BENCH_MAX_ITERS)
    uint64_t seed;              // init, tokens and thoughts (1234)
    qstar_precision precision;  // GEMM precision (fp32)
    int n_threads;              // > 0: OpenMP and BLAS threads (0: leave as is)
} qstar_bench_params;

#define QSTAR_BENCH_MAX_ITERS 64

QSTAR_API qstar_bench_params qstar_bench_params_default(void);

// One step as it finishes (warmup steps too).
typedef struct {
    int index;          // 0-based among the warmup steps, then among the timed ones
    int warmup;         // 1: an untimed warm-up step
    double seconds;     // wall time of the whole step
    double cpu_seconds; // CPU time of the process (all threads) during it
    double step_s;      // QSTAR: think + talk + backward; LM: = seconds
    double adamw_s;     // QSTAR: clip + AdamW
    double think_s, talk_s, backward_s; // QSTAR: the step's phase timers
    float loss;         // LM loss / QSTAR loss_lm
} qstar_bench_iter;

// Return nonzero to stop (QS_ERR_INTERRUPTED).
typedef int (*qstar_bench_cb)(void *user, const qstar_bench_iter *it);

typedef struct {
    size_t n_params;            // floats in the parameter buffer
    int n_ahead, n_talk, n_passes; // QSTAR: as run
    int iters;
    qstar_bench_iter iter[QSTAR_BENCH_MAX_ITERS]; // the timed steps
    double median_s;            // median wall time per step (= median.seconds)
    qstar_bench_iter median;    // each time of iter[] as its median over the timed steps
    double flops;               // model FLOPs per step (run_bench.py's count: LM 3x forward; QSTAR the
                                // D passes, lm_head products and mixing head, backward 2x forward)
    float loss;                 // of the last step
    int layers_kept;            // QSTAR: layers whose activations stay from forward to backward
    size_t work_bytes;          // LM: workspace bytes; QSTAR: the step's buffers
    long rss_after_load_kb;     // resident memory once the model is built
    long peak_rss_kb;           // peak resident memory of the process
} qstar_bench_result;

// Builds the model of params (random init, or loaded; Quiet-STaR tensors
// initialised per SPEC when absent) and runs warmup + iters steps on random
// tokens; on_iter may be NULL.
QSTAR_API qs_status qstar_bench_run(const qstar_bench_params *params, qstar_bench_cb on_iter, void *user,
                                    qstar_bench_result *out);
// Writes the model of params (with Quiet-STaR tensors initialised per SPEC)
// as a model directory, so another implementation can use identical weights.
QSTAR_API qs_status qstar_bench_save_model(const qstar_bench_params *params, const char *dir, size_t *n_params);
// GEMM throughput right now (the yardstick): C[M,N] = A[M,K] B[N,K]^T in
// `precision` (bf16: bf16 inputs, fp32 accumulation) after one warm-up;
// gflops[i] (i < iters) is the rate of round i of 4 products; *median_gflops
// (may be NULL) the rate of the median round time.
QSTAR_API qs_status qstar_bench_sgemm(int M, int N, int K, qstar_precision precision, int n_threads, int iters,
                                      double *gflops, double *median_gflops);

#ifdef __cplusplus
}
#endif
#endif

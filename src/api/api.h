// api.h: internals of the public API (include/qstar.h): the handle types and
// the helpers its files share. Only src/api/ includes this.
#ifndef QS_API_API_H
#define QS_API_API_H

#include "qstar.h"
#include "io/model_io.h"
#include "quietstar/qstar.h"
#include "tokenizer/tokenizer.h"
#include "train/run.h"

struct qstar_model {
    qs_model own;          // the model when loaded by qstar_model_load
    qs_model *m;           // &own, or the trainer's model
    qs_tokenizer *tok;
    int own_tok;           // 1: tok is freed with the model
    char tok_path[4096];
    char *qs_json;         // the "quietstar" settings block (NULL: none)
    int own_json;
    int qs_present;        // Quiet-STaR tensors present (bitmask, 7 = all)
    char path[4096];       // where it was loaded from ("" for a trainer's model)
};

struct qstar_trainer {
    qs_run run;
    qstar_model view;      // qstar_trainer_model: borrows run.m / run.tok
    char *out_dir;
    char *args_json;       // train_args.json of the checkpoints (the CLI's keys)
    qstar_progress_cb cb;
    void *cb_user;
    struct qs_train_ext *ext; // settings by name, ranks, lock, log, stop (api/train_ext.h)
};

// 1 when the model holds every Quiet-STaR tensor and can think.
int qs_api_can_think(const qstar_model *m);
// Thought settings as the CLI's generate/eval/viz take them: SPEC defaults <
// the checkpoint's block < n_ahead/tau_sample/greedy when given (0 = not
// given); the vocabulary's meta tokens banned; validated.
qs_status qs_api_thought_opts(const qstar_model *m, int n_ahead, float tau_sample, int greedy, qs_qstar_opts *qo);
// think -1/0/1 -> 0/1 for this model (1 on a model that cannot think is an error).
qs_status qs_api_resolve_think(const qstar_model *m, int think, int *out);
// Sets OpenMP and BLAS threads when n > 0.
void qs_api_set_threads(int n);

// ---- inference helpers (generate.c, score.c, task.c, eval.c, viz.c)
// Sets the model's GEMM precision for one call; *saved receives the old one
// (restore with q->m->precision = saved).
qs_status qs_api_precision(qstar_model *q, qstar_precision p, qs_precision *saved);
// The output-file rules of every qstar command (io/outpath.h) for an
// optional output file (NULL: nothing to check).
qs_status qs_api_out_check(const char *path, int force);
// Adds text to a JSON object as a string, invalid UTF-8 replaced by U+FFFD.
struct cJSON;
void qs_api_json_text(struct cJSON *obj, const char *key, const char *text);
// Writes a JSON document (pretty, newline-terminated) to path atomically.
qs_status qs_api_json_write(const char *path, const struct cJSON *root);
// The "quietstar" thought settings of a results JSON: n_ahead, n_thought,
// tau_sample, mixing (n_ahead null without thoughts).
void qs_api_json_thoughts(struct cJSON *obj, int think, const qs_qstar_opts *qo);
// The public think_at / n_talk / think_min_entropy parameters of `fn`
// (qstar_eval_nll, qstar_generate): QS_ERR_ARG naming the problem.
qs_status qs_api_think_at_check(const char *fn, const char *think_at, int n_talk, float min_entropy);

#endif

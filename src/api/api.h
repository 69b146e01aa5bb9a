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

#endif

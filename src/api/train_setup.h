// train_setup.h: resolving a training run's settings (train_setup.c) from
// qstar_train_params and the options table (options.h). Only src/api/ includes this.
#ifndef QS_API_TRAIN_SETUP_H
#define QS_API_TRAIN_SETUP_H

#include "api/options.h"
#include "ops/ops.h"
#include "train/trainer.h"

typedef struct {
    qs_train_opts to;   // resolved numbers (defaults filled in)
    int seq_given;      // 0: seq_len is a default and is cut to the model's max positions
    qs_precision prec;
    char ckpt[4096];    // a resumed run: its checkpoint and run directories
    char run_dir[4096];
} qs_tset;

// The struct's fields, then the settings given by name, into v (QO_COUNT values; qo_clear frees).
qs_status qs_tset_values(const qstar_train_params *p, qo_val *v);
// Preset, mode defaults, a resumed run's checkpoint and train_args.json, checks
// (QS_ERR_ARG: the settings are wrong), the matmul backend.
qs_status qs_tset_resolve(qo_val *v, int quietstar, qs_tset *r);
// The effective values after setup, for train_args.json.
void qs_tset_record(qo_val *v, const qs_train_opts *to, int threads);

#endif

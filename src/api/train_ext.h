// train_ext.h: the parts of a qstar_trainer that the CLI's run needs beyond
// the loop (api.h's struct qstar_trainer points at one): its settings by name
// (options.h), MPI ranks, the output directory's lock, the JSONL log, the
// stop request and the last run's summary. Only src/api/ includes this.
#ifndef QS_API_TRAIN_EXT_H
#define QS_API_TRAIN_EXT_H

#include <signal.h>
#include <stdio.h>
#include "api/options.h"
#include "io/outpath.h"
#include "train/dist.h"
#include "train/trainer.h"

struct qs_train_ext {
    qo_val v[QO_COUNT];       // the run's settings, effective values (train_args.json)
    int quietstar;
    qs_dist *dist;            // MPI ranks (NULL: one process)
    int rank, n_ranks;
    qs_out_lock lock;
    int out_created;          // this run created out_dir (removed again if it fails)
    int failed;
    FILE *log;                // JSONL log (rank 0; NULL: none)
    char log_path[4200];
    int log_failed;
    int show_thoughts, n_passes;
    volatile sig_atomic_t stop;
    char plan[4096];
    qs_train_summary sum;
    int have_sum;
};

// JSONL log (trainlog.c): before resuming from the checkpoint at `step` keeps
// only the complete records up to it (*dropped: how many went); opens path
// (append on resume). Writes the record of an event; 0, or -1 if the write
// failed (the first time only).
qs_status qs_tlog_trim(const char *path, long step, size_t *dropped);
int qs_tlog_event(struct qs_train_ext *x, const qs_tokenizer *tok, const qs_train_event *ev);

#endif

// train_log.h: progress output of `qstar train` / `qstar finetune`: the
// progress line on a terminal (step, loss, tokens/s, ETA), plain lines
// otherwise, and the JSONL log (one record per step and per evaluation).
#ifndef QS_TRAIN_LOG_H
#define QS_TRAIN_LOG_H

#include <stdio.h>
#include "tokenizer/tokenizer.h"
#include "train/trainer.h"

typedef struct {
    const char *cmd;         // "train" or "finetune", for messages
    int quietstar;           // 1: log the Quiet-STaR quantities (train)
    FILE *log;
    const char *log_path;
    int tty;
    long print_every;
    double last_print;
    int line_open; // a \r progress line is on the terminal
    int log_failed;
    const qs_tokenizer *tok; // decodes sampled thoughts (train)
    int show_thoughts;       // thoughts decoded per step (train)
    int n_passes;            // thoughts per position (train): expanded row r is batch row r / n_passes
} progress;

// The trainer's event callback (ctx: a progress).
void train_log_event(void *ctx, const qs_train_event *ev);
// Clears an open progress line before other output.
void train_log_end_line(progress *p);
// Before resuming from the checkpoint at `step`: keeps only the complete
// records of the log at path up to that step. 0, or prints why and returns 1.
int train_log_trim(const char *cmd, const char *path, long step);

#endif

// train_log.h: progress output of `qstar train` / `qstar finetune`: the
// progress line on a terminal (step, loss, tokens/s, ETA), plain lines
// otherwise, and the run's notes and warnings (the JSONL log is the
// library's: qstar_train_params_set(p, "log", ...)).
#ifndef QS_TRAIN_LOG_H
#define QS_TRAIN_LOG_H

#include <stdio.h>
#include "qstar.h"

typedef struct {
    const char *cmd;         // "train" or "finetune", for messages
    int quietstar;           // 1: print the Quiet-STaR quantities (train)
    int tty;
    long print_every;
    double last_print;
    int line_open; // a \r progress line is on the terminal
} progress;

// The trainer's progress callback (user: a progress); returns 0.
int train_log_event(void *user, const qstar_progress *ev);
// Clears an open progress line before other output.
void train_log_end_line(progress *p);

#endif

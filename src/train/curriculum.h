// curriculum.h: a thought-length curriculum for Quiet-STaR training (as in
// Fast Quiet-STaR): stages of (n_ahead, n_talk, lr, steps), each trained from
// the checkpoint the previous stage ended with. Written as text
//   "n_ahead:n_talk:lr:steps,n_ahead:n_talk:lr:steps,..."
// e.g. "6:4:1e-4:100,10:4:1e-4:100,14:4:5e-5:200".
#ifndef QS_TRAIN_CURRICULUM_H
#define QS_TRAIN_CURRICULUM_H

#include <stddef.h>
#include "core/qs.h"

#define QS_MAX_STAGES 32

typedef struct {
    int n_ahead;  // 3 .. 256
    int n_talk;   // 1 .. 64
    float lr;     // (0, 100]
    long steps;   // 1 .. 1e12
} qs_curriculum_stage;

typedef struct {
    int n;
    qs_curriculum_stage s[QS_MAX_STAGES];
} qs_curriculum;

// Parses `len` bytes of `text` (need not be NUL-terminated). Whitespace around
// fields is allowed; anything else that is not a stage is an error naming the
// stage and the field.
qs_status qs_curriculum_parse(const char *text, size_t len, qs_curriculum *c);

#endif

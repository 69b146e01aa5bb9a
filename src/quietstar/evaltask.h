// evaltask.h: TRANSITIONAL umbrella of the evaluation headers, for files
// outside the inference code that still include it; include the header of
// the concern instead: task_data.h (GSM8K/CSQA files, prompts, answer
// tokens), task_score.h (restricted probabilities, the task scorer),
// nll_eval.h (held-out NLL with and without thoughts).
#ifndef QS_QUIETSTAR_EVALTASK_H
#define QS_QUIETSTAR_EVALTASK_H

#include "quietstar/nll_eval.h"
#include "quietstar/task_data.h"
#include "quietstar/task_score.h"

#endif

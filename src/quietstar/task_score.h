// task_score.h: scoring GSM8K / CommonsenseQA examples (SPEC.md section 5;
// the protocol is described in task_data.h): the softmax restricted to the
// task's valid tokens at each answer token, without or with one thought at
// each answer position (eval mode).
#ifndef QS_QUIETSTAR_TASK_SCORE_H
#define QS_QUIETSTAR_TASK_SCORE_H

#include "core/rng.h"
#include "model/model.h"
#include "quietstar/qstar.h"
#include "quietstar/task_data.h"

// Probability of `target` under softmax(logits) restricted to valid[n]
// (renormalised). If target is not in valid[] the restricted set is
// valid[] + {target} (and *in_set = 0). *is_argmax (may be NULL) = target
// has the largest logit in that set (first one on ties).
double qs_restricted_prob(const float *logits, const int *valid, int n, int target, int *is_argmax,
                          int *in_set);

// ---- scoring ----

typedef struct qs_task_scorer qs_task_scorer;

// `o` NULL or think == 0: plain logits (the model needs no Quiet-STaR
// tensors). Otherwise thoughts with o->n_ahead, tau_sample, ... Sequences up
// to max_len tokens.
qs_status qs_task_scorer_create(qs_task_scorer **s, const qs_model *m, const qs_qstar_opts *o, int think,
                                int max_len);
void qs_task_scorer_free(qs_task_scorer *s);

#define QS_TASK_MAX_ANS 32

typedef struct {
    double score;      // product of the restricted probabilities
    int exact;         // restricted argmax right at every answer token
    int n_ans;         // answer tokens scored (at most QS_TASK_MAX_ANS recorded below)
    int off_set;       // answer tokens that were not in the valid set
    double prob[QS_TASK_MAX_ANS];
    float mix_w[QS_TASK_MAX_ANS]; // mixing weight of the thought (0 without thoughts)
} qs_task_result;

// Scores one encoded example. Thoughts are sampled with `rng`.
qs_status qs_task_score(qs_task_scorer *s, const qs_task_item *it, const int *valid, int n_valid, qs_rng *rng,
                        qs_task_result *r);

#endif

// nll_eval.h: held-out NLL of a token stream with and without thoughts:
// THE evaluation behind `qstar eval --data`, `qstar eval --task nll`, `qstar
// viz` and the public qstar_eval_nll / qstar_score. Without thoughts every
// token's NLL comes from the model's qs_lm_token_nll (transformer.h), the
// function plain-LM training evaluates with too.
#ifndef QS_QUIETSTAR_NLL_EVAL_H
#define QS_QUIETSTAR_NLL_EVAL_H

#include <stddef.h>
#include "core/rng.h"
#include "data/dataset.h"
#include "model/model.h"
#include "quietstar/qstar.h"
#include "quietstar/think.h"

// ---- held-out NLL with and without thoughts ----

// One scored token of a window: tokens[pos] predicted from positions < pos.
typedef struct {
    int token;       // the predicted token
    int prev;        // the token before it (for decoding)
    long window;     // window index
    int pos;         // position in the window (>= 1)
    float nll_base;  // without a thought (the plain LM path: qs_lm_token_nll_ent)
    float nll_think; // after the thought at pos-1 (NAN without thoughts)
    float mix_w;     // mixing weight of that thought (0 without)
    size_t thought;  // offset of its n_thought tokens in qs_nll_tokens.thoughts
    float entropy;   // entropy (nats) of the base prediction at pos-1 (NAN when the caller keeps no records
                     // and no threshold needs it)
    int thought_on;  // 1: nll_think is after a thought; 0: no thought here (nll_think = nll_base or NAN)
    int talk;        // talk pass k that scored it: 0 = the thought just before it; k > 0 (think_at) = the
                     // thought k+1 tokens back, with the k tokens between fed after it; -1: no thought
} qs_nll_token;

typedef struct {
    qs_nll_token *t;
    size_t n, cap;
    int *thoughts;   // n * n_thought ids
    size_t th_cap;
    int n_thought;
} qs_nll_tokens;

void qs_nll_tokens_free(qs_nll_tokens *r);

typedef struct {
    long n_tokens;
    double nll_base, nll_think;       // means over all scored tokens (think NAN without thoughts)
    double hard10_base, hard10_think; // means over the 10% of tokens with the highest base NLL
    double hard20_base, hard20_think; // ... 20%
    double mix_mean;
    double think_frac;                // fraction of tokens predicted after a thought
    double gain, gain_ci95;           // base - think NLL: mean over windows of each window's mean, 95% half-width
    long gain_windows;                // windows it averages over (interval NAN with fewer than 2)
} qs_nll_summary;

// Two-sided 95% quantile of Student's t with df degrees of freedom.
double qs_t95(long df);

// Called after each batch with windows done / total, and the tokens scored so
// far with the sum of their base NLL; nonzero stops (QS_ERR_INTERRUPTED).
typedef int (*qs_progress_fn)(void *ud, size_t done, size_t total, long n_tokens, double nll_sum);

// Evaluates the stream in non-overlapping windows of T tokens (as
// qs_stream_eval_batch), B windows per step. Every token's base NLL is the
// model's plain LM forward (qs_lm_token_nll_ent, the model's precision). With
// `o` and think != 0 the model's Quiet-STaR step runs in eval mode (n_passes
// 1, n_talk 1, forward only) and gives the thought-mixed NLL of every token
// too. Every scored token is appended to `rec` (may be NULL).
qs_status qs_nll_eval(const qs_model *m, const qs_token_stream *s, const qs_qstar_opts *o, int think, int B, int T,
                      qs_rng *rng, qs_nll_tokens *rec, qs_progress_fn progress, void *ud, qs_nll_summary *sum);
// The same with a thinking policy (think.h; NULL = always, sampled thoughts):
// the base pass runs first and gives each token's base entropy; tokens whose
// entropy is not above ctl->min_entropy take the base NLL as their think NLL
// (mixing weight 0, thought_on 0); ctl->random_thoughts forces uniformly
// random thought tokens (drawn from rng) in place of sampled ones;
// ctl->think_at thinks only after that text and scores the next ctl->n_talk
// tokens from the thought's talk passes (think.h; not with min_entropy).
// A thought's record gives the position it was sampled at through `talk`.
qs_status qs_nll_eval_ctl(const qs_model *m, const qs_token_stream *s, const qs_qstar_opts *o, int think,
                          const qs_think_ctl *ctl, int B, int T, qs_rng *rng, qs_nll_tokens *rec,
                          qs_progress_fn progress, void *ud, qs_nll_summary *sum);
// The summary of a list of scored tokens (hardest-token means etc.).
void qs_nll_summarize(const qs_nll_tokens *rec, int think, qs_nll_summary *sum);

#endif

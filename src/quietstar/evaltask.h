// evaltask.h: the zero-shot evaluations of the Quiet-STaR paper (SPEC.md
// section 5) and held-out NLL with and without thoughts.
//
// GSM8K and CommonsenseQA: every example becomes one teacher-forced prompt
//   GSM8K  "Q: " + question + "\nA: " + final_number + "\n"
//   CSQA   "Q: " + stem + "\n(A) text\n(B) text\n...(E) text\nA: " + letter + "\n"
// (BOS prepended). The answer tokens are those that start at or after the
// byte just past "\nA:"; for GSM8K a first answer token that is only
// whitespace (the space) is skipped. For each answer token the softmax is
// restricted to the task's valid tokens (digits and newline / A-E and
// newline), renormalised, and the probability of the true token taken; the
// example's score is the product over its answer tokens, "accuracy" the mean
// score, exact match = the restricted argmax is right at every answer token.
// With thoughts, the prediction for x[i+1] is the mixed logits after one
// thought at position i (eval mode: one thought per position, n_talk 1).
#ifndef QS_QUIETSTAR_EVALTASK_H
#define QS_QUIETSTAR_EVALTASK_H

#include <stddef.h>
#include "core/rng.h"
#include "data/dataset.h"
#include "model/model.h"
#include "quietstar/qstar.h"
#include "quietstar/think.h"
#include "tokenizer/tokenizer.h"

typedef enum { QS_TASK_GSM8K = 0, QS_TASK_CSQA = 1 } qs_task;

const char *qs_task_name(qs_task t);
// What the paper reports (the mean restricted probability product above) is
// not an accuracy: it is printed as "paper score" beside its uniform-chance
// value, the probability of the first answer token (CSQA: the letter) alone,
// and exact match.
const char *qs_task_metric_name(qs_task t);
// The score of a uniform guess over n_valid tokens at n_ans answer tokens:
// (1/n_valid)^n_ans.
double qs_task_chance(int n_valid, int n_ans);
// The characters whose tokens are valid answers: "0123456789\n" or "ABCDE\n".
const char *qs_task_chars(qs_task t);

// ---- options stored in a checkpoint's config.json "quietstar" object ----

// (The "quietstar" options JSON: qs_qstar_opts_from_json / _to_json in quietstar/qstar.h.)
// Ids of the vocabulary pieces "<|startthought|>" / "<|endthought|>" that
// exist (0, 1 or 2 of them), written to ids[]; returns the count.
int qs_task_meta_tokens(const qs_tokenizer *tok, int ids[2]);

// ---- prompts ----

typedef struct {
    char *prompt;      // malloc'd prompt text (see above)
    size_t answer_off; // byte offset of the answer text (just past "\nA:")
    char answer[64];   // the gold answer ("1234", "B")
} qs_task_prompt;

// GSM8K final answer: the text after the last "#### ", surrounding whitespace
// and every comma removed ("#### 1,234" -> "1234"). Error if there is none
// or it does not fit in cap bytes.
qs_status qs_gsm8k_final_number(const char *answer_field, char *out, size_t cap);
qs_status qs_gsm8k_prompt(const char *question, const char *final_number, qs_task_prompt *p);
// labels[k]/texts[k] for the n choices, in file order; key = the answer label.
qs_status qs_csqa_prompt(const char *stem, const char *const *labels, const char *const *texts, int n,
                         const char *key, qs_task_prompt *p);
// One JSONL line of the task's data file (GSM8K: question/answer; CSQA:
// answerKey, question.stem, question.choices[].label/.text).
qs_status qs_task_parse_line(qs_task task, const char *line, qs_task_prompt *p);
void qs_task_prompt_free(qs_task_prompt *p);

// ---- tokens ----

// Valid answer tokens: every vocabulary piece that, with one leading space
// removed, is exactly one character of `chars` ("5", " 5"), plus byte-fallback
// tokens: the newline byte <0x0A> always, and the byte token of any other
// character that no piece spells. (Byte tokens of characters that have a
// piece are never produced by the tokenizer, so they are left out.)
// Ascending, malloc'd into *ids. Error if a character has no token at all.
qs_status qs_task_valid_tokens(const qs_tokenizer *tok, const char *chars, int **ids, int *n);

typedef struct {
    int *tokens;   // BOS + prompt tokens (left-truncated to max_len if needed)
    int n;
    int *pos;      // positions i whose next token tokens[i+1] is a scored answer token
    int n_ans;
    int truncated; // prompt tokens dropped after BOS to fit max_len
} qs_task_item;

// Encodes p->prompt with BOS; answer tokens = tokens starting at or after
// p->answer_off; `skip_space` drops a first answer token that is only
// whitespace. If the sequence is longer than max_len, tokens after BOS are
// dropped from the front (the answer is kept).
qs_status qs_task_encode(const qs_tokenizer *tok, const qs_task_prompt *p, int skip_space, int max_len,
                         qs_task_item *it);
void qs_task_item_free(qs_task_item *it);

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

// ---- held-out NLL with and without thoughts ----

// One scored token of a window: tokens[pos] predicted from positions < pos.
typedef struct {
    int token;       // the predicted token
    int prev;        // the token before it (for decoding)
    long window;     // window index
    int pos;         // position in the window (>= 1)
    float nll_base;  // without a thought
    float nll_think; // after the thought at pos-1 (NAN without thoughts)
    float mix_w;     // mixing weight of that thought (0 without)
    size_t thought;  // offset of its n_thought tokens in qs_nll_tokens.thoughts
    float entropy;   // entropy (nats) of the base prediction at pos-1
    int thought_on;  // 1: nll_think is after a thought; 0: no thought here (nll_think = nll_base or NAN)
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

// Called after each batch with windows done / total; nonzero stops (QS_ERR_INTERRUPTED).
typedef int (*qs_progress_fn)(void *ud, size_t done, size_t total);

// Evaluates the stream in non-overlapping windows of T tokens (as
// qs_stream_eval_batch), B windows per step. With `o` and think != 0 the
// model's Quiet-STaR step runs in eval mode (n_passes 1, n_talk 1, forward
// only) and gives the thought-mixed NLL of every token too. Every scored
// token is appended to `rec` (may be NULL).
qs_status qs_nll_eval(const qs_model *m, const qs_token_stream *s, const qs_qstar_opts *o, int think, int B, int T,
                      qs_rng *rng, qs_nll_tokens *rec, qs_progress_fn progress, void *ud, qs_nll_summary *sum);
// The same with a thinking policy (think.h; NULL = always, sampled thoughts):
// the base pass runs first and gives each token's base entropy; tokens whose
// entropy is not above ctl->min_entropy take the base NLL as their think NLL
// (mixing weight 0, thought_on 0); ctl->random_thoughts forces uniformly
// random thought tokens (drawn from rng) in place of sampled ones.
qs_status qs_nll_eval_ctl(const qs_model *m, const qs_token_stream *s, const qs_qstar_opts *o, int think,
                          const qs_think_ctl *ctl, int B, int T, qs_rng *rng, qs_nll_tokens *rec,
                          qs_progress_fn progress, void *ud, qs_nll_summary *sum);
// The summary of a list of scored tokens (hardest-token means etc.).
void qs_nll_summarize(const qs_nll_tokens *rec, int think, qs_nll_summary *sum);

#endif

// task_data.h: the task files of the zero-shot evaluations of the
// Quiet-STaR paper (SPEC.md section 5): records, prompts, answer tokens.
// (Scoring: task_score.h.)
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
#ifndef QS_QUIETSTAR_TASK_DATA_H
#define QS_QUIETSTAR_TASK_DATA_H

#include <stddef.h>
#include "core/qs.h"
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

#endif

// think.h: thinking at inference (SPEC.md section 6). The prefix's base pass
// is cached; to produce token i+1 one thought runs at position i only (start,
// n_ahead-3 sampled tokens, end), each pass attending to the prefix cache and
// to the thought's own earlier tokens; the end-of-thought hidden state is
// mixed with h_0[i] by the talk head and the next token is sampled from the
// mixed logits. The thought's keys/values live in the cache slots of passes
// 1..n_ahead-1, which no later base-pass query can see, and are overwritten
// by the next thought: the prefix cache is exactly that of a plain forward.
#ifndef QS_QUIETSTAR_THINK_H
#define QS_QUIETSTAR_THINK_H

#include "model/generate.h"
#include "quietstar/qstar.h"

typedef struct qs_thinker qs_thinker;

// A thinker for sequences of up to max_len positions. Uses o->n_ahead,
// o->tau_sample, o->greedy_thoughts, o->embedding_scale, o->mixing and
// o->banned. The model must have its Quiet-STaR tensors.
qs_status qs_thinker_create(qs_thinker **t, const qs_model *m, const qs_qstar_opts *o, int max_len);
// The same with n_talk - 1 talk passes after each thought (qs_thinker_talk).
qs_status qs_thinker_create_talk(qs_thinker **t, const qs_model *m, const qs_qstar_opts *o, int max_len, int n_talk);
void qs_thinker_free(qs_thinker *t);
// Base pass of `token` at position `pos` (positions must come in order 0,1,...).
qs_status qs_thinker_feed(qs_thinker *t, int token, int pos);
// Logits at the last fed position without a thought: logits[V].
void qs_thinker_plain_logits(qs_thinker *t, float *logits);
// One thought at the last fed position; writes the mixed logits [V], the
// thought tokens [n_ahead-3] and the mixing weight. Thought tokens are drawn
// with `rng` from softmax(z / tau_sample) with banned ids excluded; with rng
// NULL the caller's thought[] tokens are used as they are (forced).
qs_status qs_thinker_think(qs_thinker *t, qs_rng *rng, float *logits, int *thought, float *mix_w);
// A talk pass of the last thought, run at column `col` (SPEC section 2): the
// last fed token x[col+k] (k = last fed position - col, 1 <= k < n_talk) at
// pass n_ahead-1+k of that column, which sees the prefix up to col, the
// thought and the talk tokens before it; its hidden state mixed with the base
// state of position col+k gives the logits [V] of position col+k+1 -- what
// training's talk pass k predicts. Call it for k = 1, 2, ... in order.
qs_status qs_thinker_talk(qs_thinker *t, int col, float *logits, float *mix_w);
// The workspace (tests compare its pass-0 cache with a plain forward's).
struct qs_workspace *qs_thinker_workspace(qs_thinker *t);

// Called for each emitted token with its text, the thought that produced it
// (NULL and 0 without thinking or for prompt tokens) and the mixing weight.
typedef qs_gen_token_fn qs_think_callback;

// Generation like qs_generate (the model's loop, qs_generate_from, with a
// thinker as its logits source), a thought before every sampled token when
// `think` is nonzero; qo's banned ids are never emitted either way. Thought tokens
// use their own RNG stream (seeded from opts->seed), so printing thoughts or
// not never changes the text.
qs_status qs_generate_think(const qs_model *m, const qs_tokenizer *tok, const int *prompt, int n_prompt,
                            const qs_gen_opts *opts, const qs_qstar_opts *qo, int think, qs_think_callback cb,
                            void *ud, qs_gen_stats *out);

// Where and what to think at inference.
//   min_entropy: think only at positions whose base prediction (softmax of
//     the plain logits, all V tokens) has an entropy above this many nats;
//     elsewhere the plain logits are used (no thought, no thought RNG draw).
//     -INFINITY (the default) = a thought at every position.
//   random_thoughts: the n_ahead-3 thought tokens are drawn uniformly from
//     the vocabulary (banned ids excluded) instead of from the model: a
//     content control (start/end, mixing head and length kept, content not).
//   think_at: think only at the positions where the decoded text so far ends
//     with this string (decoded with `tok`; in qs_nll_eval_ctl within each
//     window), and predict the next n_talk tokens from that one thought, the
//     k-th by its talk pass k (SPEC section 2: the tokens after the thought
//     fed after it, mixed with the base state at their position) -- how
//     training scores a thought; other tokens take the base prediction. In
//     generation the tokens after the thought are the generated ones, and
//     the callback gets the thought for each of them. NULL: off. Not with
//     min_entropy.
typedef struct {
    float min_entropy;
    int random_thoughts;
    const char *think_at;
    const struct qs_tokenizer *tok;
    int n_talk;
} qs_think_ctl;

qs_think_ctl qs_think_ctl_default(void);
// The think_at settings of a policy (text of 1..255 bytes, tokenizer, n_talk
// 1..QS_MAX_TALK, no entropy threshold): QS_OK without think_at.
qs_status qs_think_ctl_check(const qs_think_ctl *c);

// Where a think_at text ends: the decoded text's last bytes, token by token,
// as qs_tokenizer_decode has it (BOS/EOS add no text).
typedef struct {
    char tail[256];
    size_t n;
} qs_anchor;
// Appends `token` (after `prev`, -1 at the start); 1 if the text now ends with
// `at` and the token added text (a token adding none is no new anchor).
int qs_anchor_push(qs_anchor *a, const struct qs_tokenizer *tok, const char *at, int prev, int token);
// (The entropy of a prediction: qs_logits_entropy in ops/ops.h.)
// A token drawn uniformly from [0,V) minus the banned ids, from `coin` in [0,1).
int qs_random_thought_token(int V, const int *banned, int n_banned, float coin);
// qs_generate_think with a thinking policy (ctl NULL = the default: always).
// out->n_thoughts counts the positions that thought.
qs_status qs_generate_think_ctl(const qs_model *m, const qs_tokenizer *tok, const int *prompt, int n_prompt,
                                const qs_gen_opts *opts, const qs_qstar_opts *qo, int think, const qs_think_ctl *ctl,
                                qs_think_callback cb, void *ud, qs_gen_stats *out);

#endif

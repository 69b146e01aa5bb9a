// generate.h: autoregressive generation with a KV cache, following llama2.c's
// run.c `generate` step for step: position pos runs token `token`; while the
// prompt lasts the next token is forced (prompt[pos+1]), afterwards it is
// sampled; generation stops when the next token is BOS or `steps` positions
// have run. Every next token (prompt tokens after the first included) is
// handed to the callback with its decoded text, so printing the pieces
// reproduces run.c's output.
#ifndef QS_MODEL_GENERATE_H
#define QS_MODEL_GENERATE_H

#include "model/model.h"
#include "tokenizer/tokenizer.h"

typedef struct {
    int steps;          // total positions, prompt included (run.c -n); <= 0 or > max_seq_len => max_seq_len
    float temperature;  // 0 = greedy
    float top_p;        // nucleus; outside (0,1) = off
    uint64_t seed;      // sampler seed
    const int *banned;  // token ids never sampled (may be NULL)
    int n_banned;
    int stop_token;     // stop when the next token is this id; -1 = the model's bos_id (run.c: 1)
} qs_gen_opts;

typedef struct {
    int n_positions;    // positions run (run.c's final pos)
    int n_generated;    // tokens sampled (not forced by the prompt) and emitted
    int stopped;        // 0 steps reached, 1 stop token, 2 callback asked to stop
    double seconds;     // wall time after the first position (run.c's timer)
    double tok_per_s;   // (n_positions - 1) / seconds, as run.c reports; 0 if unmeasurable
    int n_thoughts;     // sampled tokens whose logits came with a thought (source's next() gave one)
} qs_gen_stats;

// Called for each emitted token with its text (qs_tokenizer_piece(tok, prev,
// token); NULL when no tokenizer was given). Return nonzero to stop.
typedef int (*qs_gen_callback)(void *ud, int token, const char *piece);

// Called for each emitted token with its text, the thought that produced it
// (NULL and 0 without thinking or for prompt tokens) and its mixing weight.
// Return nonzero to stop.
typedef int (*qs_gen_token_fn)(void *ud, int token, const char *piece, const int *thought, int n_thought,
                               float mix_w);

// Where the logits of the next token come from. The generation loop below
// is the model's; a caller that thinks before each token (the Quiet-STaR
// layer above) plugs in here, so the model layer never calls up into it.
//   begin(ctx, max_len)    once, before position 0 (sequences up to max_len)
//   feed(ctx, token, pos)  runs `token` at `pos` (0, 1, 2, ... in order)
//   next(ctx, logits, &thought, &n_thought, &mix_w)
//                          logits[V] of the token after the last fed one
//                          (only for sampled tokens, not for the prompt's)
//   end(ctx)               once, after the last position (also on errors)
typedef struct {
    void *ctx;
    qs_status (*begin)(void *ctx, int max_len);
    qs_status (*feed)(void *ctx, int token, int pos);
    qs_status (*next)(void *ctx, float *logits, const int **thought, int *n_thought, float *mix_w);
    void (*end)(void *ctx);
} qs_gen_source;

// steps 256, temperature 1, top_p 0.9, seed 0, no bans, stop_token -1.
qs_gen_opts qs_gen_opts_default(void);

// `prompt` holds n_prompt >= 1 token ids (normally starting with BOS).
// `tok` may be NULL. `cb` may be NULL. `out` may be NULL.
qs_status qs_generate(const qs_model *m, const qs_tokenizer *tok, const int *prompt, int n_prompt,
                      const qs_gen_opts *opts, qs_gen_callback cb, void *ud, qs_gen_stats *out);
// The loop itself: like qs_generate with the next-token logits from `src`
// (NULL: the plain forward with a KV cache).
qs_status qs_generate_from(const qs_model *m, const qs_tokenizer *tok, const int *prompt, int n_prompt,
                           const qs_gen_opts *opts, const qs_gen_source *src, qs_gen_token_fn cb, void *ud,
                           qs_gen_stats *out);

#endif

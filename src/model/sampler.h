// sampler.h: choosing the next token from a row of logits, as llama2.c's
// run.c does: greedy argmax at temperature 0; otherwise softmax(logits / T)
// and either plain multinomial sampling (top_p <= 0 or >= 1) or nucleus
// (top-p) sampling. Randomness comes from a qs_rng, so a seed reproduces a
// run. Token ids can be banned (never sampled): their logits become -inf
// before anything else (used for the Quiet-STaR meta tokens).
#ifndef QS_MODEL_SAMPLER_H
#define QS_MODEL_SAMPLER_H

#include "core/qs.h"
#include "core/rng.h"

typedef struct {
    float prob;
    int index;
} qs_prob_index;

typedef struct {
    int vocab_size;
    float temperature;        // 0 = greedy
    float top_p;              // in (0,1) = nucleus; otherwise sample the full distribution
    qs_rng rng;
    qs_prob_index *probindex; // [vocab_size] scratch for top-p
    unsigned char *banned;    // [vocab_size] 1 = never sample, or NULL (none banned)
    int n_banned;
} qs_sampler;

// temperature >= 0 and finite; top_p finite (values outside (0,1) mean "off").
qs_status qs_sampler_init(qs_sampler *s, int vocab_size, float temperature, float top_p, uint64_t seed);
void qs_sampler_free(qs_sampler *s);
// Bans `n` token ids (each in [0, vocab_size)); cumulative over calls. It is
// an error to ban every token.
qs_status qs_sampler_ban(qs_sampler *s, const int *ids, int n);
// Samples a token from logits[vocab_size]; the logits are overwritten
// (scaled and turned into probabilities, like run.c's `sample`).
int qs_sampler_sample(qs_sampler *s, float *logits);

// Building blocks (run.c semantics); `probs` must sum to 1, coin in [0,1).
int qs_sample_argmax(const float *x, int n);
int qs_sample_mult(const float *probs, int n, float coin);
int qs_sample_topp(const float *probs, int n, float top_p, qs_prob_index *probindex, float coin);
// In-place softmax of x[n] (max-subtracted; -inf entries become 0).
void qs_softmax_inplace(float *x, int n);

// The one thought-token sampler (Quiet-STaR training step and thinking at
// inference): banned ids get logit -inf, then the argmax when `greedy`, else
// the first v whose cumulative unnormalised mass exp((z[v] - max) / tau)
// exceeds coin * total (coin uniform in [0,1); the caller draws it so that
// rows sampled in parallel use coins drawn serially). z[V] is overwritten.
int qs_sample_thought(float *z, int V, const int *banned, int n_banned, float tau, int greedy, float coin);

#endif

// qstar.h: the Quiet-STaR training step (SPEC.md sections 1-3): think
// (thought passes with the diagonal visibility), talk (mixing head over the
// base and post-thought hidden states), learn (LM loss + REINFORCE).
#ifndef QS_QUIETSTAR_H
#define QS_QUIETSTAR_H

#include "core/rng.h"
#include "model/model.h"

#define QS_MAX_TALK 64
#define QS_MAX_BANNED 8
// policy_beta for training small models (measured on stories260K: the SPEC's 1e6,
// tuned for Mistral-7B at lr 1e-6, lets REINFORCE swamp the LM loss of a tiny model).
#define QS_SMALL_POLICY_BETA 1.0f

typedef enum { QS_MIX_LINEAR = 0, QS_MIX_SIGMOID = 1 } qs_mixing;
// Reward baseline. MEAN (released): R = sum_k nll_0[i+k] - nll_k[i] with the
// current model's base NLL, advantage = R minus its mean over the n_passes
// thoughts of the position. EMA (RLP-style): R = sum_k nll_ema[i+k] - nll_k[i]
// where nll_ema is the NLL of the same true tokens under an exponential moving
// average of the model without thoughts (given per batch with
// qs_qstar_set_ref_nll; the trainer keeps the EMA copy), advantage = R (the
// EMA no-thought likelihood is the baseline; works with n_passes 1).
typedef enum { QS_BASELINE_MEAN = 0, QS_BASELINE_EMA = 1 } qs_baseline;

typedef struct {
    int n_ahead;              // 12: thought = start + (n_ahead-3) sampled tokens + end
    int n_talk;               // 4: true tokens predicted after each thought
    int n_passes;             // 2: thoughts sampled per position
    float base_loss_weight;   // 0.5: weight of the base NLL in L_lm (talk gets 1-w)
    float policy_beta;        // 1e6: weight of the REINFORCE loss
    float tau_sample;         // 1: sampling temperature of thought tokens
    float tau_rl;             // 3: temperature of the policy log-likelihoods
    int clamp_negative_rewards; // 1: advantage = max(advantage, 0)
    float embedding_scale;    // 100: start/end embedding = scale * parameter
    qs_mixing mixing;         // linear (released: unbounded w) or sigmoid
    int greedy_thoughts;      // 0: sample thoughts; 1: argmax
    char thought_init[64];    // "---": start/end init from E[id(first token of this)]
    int banned[QS_MAX_BANNED];// vocabulary ids never sampled (meta tokens present in a vocab)
    int n_banned;
    qs_baseline reward_baseline; // MEAN (released) or EMA (see above)
    float ema_decay;          // 0.99: EMA copy = decay * EMA + (1-decay) * weights after each update
    char thought_init_end[64];// "": the end embedding is initialised like the start; else from this text
                              // by the same rule (qstar train only; see qs_qstar_init_end)
    double act_budget_mb;     // < 0 (default): QS_STORE_ACTS_DEFAULT; else MB of layer activations the
                              // step keeps from forward to backward (0: recompute every layer).
                              // A run-time setting: not in config.json (--act-budget-mb)
    int forward_only;         // run-time: the step never computes gradients (held-out evaluation):
                              // no layer inputs, activations or gradient buffers are allocated
} qs_qstar_opts;

void qs_qstar_opts_default(qs_qstar_opts *o);
qs_status qs_qstar_opts_validate(const qs_qstar_opts *o, int T);
static inline int qs_n_thought(const qs_qstar_opts *o) { return o->n_ahead - 3; }

// The options as the "quietstar" object of config.json (malloc'd JSON text
// in *json), and back: known keys (n_ahead, n_talk, n_passes,
// base_loss_weight, policy_beta, tau_sample, tau_rl, clamp_negative_rewards,
// embedding_scale, mixing "linear"/"sigmoid", greedy_thoughts, thought_init)
// are read into *o, absent ones keep their value; NULL json is no change. Bad
// JSON or a bad value is an error.
qs_status qs_qstar_opts_to_json(const qs_qstar_opts *o, char **json);
qs_status qs_qstar_opts_from_json(const char *json, qs_qstar_opts *o);

// Initialises the Quiet-STaR tensors of `m` that are NOT flagged in
// `present` (bitmask as qs_load_info.qs_present: 1 start, 2 end, 4 talk head):
// start/end = E[init_id] / embedding_scale (mean embedding row if init_id < 0),
// talk_head.0.0/0.2 weights N(0, 0.02), biases 0, talk_head.0.4 = 0.
qs_status qs_qstar_init_tensors(qs_model *m, const qs_qstar_opts *o, int init_id, int present, uint64_t seed);

// THE thought_init rule (convert --add-quietstar, train, dump-step and the
// public API all use it): `text` is encoded without BOS/EOS and the first
// token whose raw piece is not only whitespace is taken, so a
// SentencePiece-style dummy-prefix piece (" " in llama2.c tokenizers, "\xe2\x96\x81"
// in tokenizer.json ones) is skipped: "---" with stories260K's tok512 gives
// 464 ("-"), not 410 (" "). Returns -1 (= the mean embedding row) for
// a NULL/empty text, no tokenizer, or a text of whitespace tokens only.
struct qs_tokenizer;
int qs_thought_init_id(const struct qs_tokenizer *tok, const char *text);
// Re-initialises only the end-of-thought embedding: E[end_id] / embedding_scale
// (the mean embedding row if end_id < 0), for o->thought_init_end.
qs_status qs_qstar_init_end(qs_model *m, const qs_qstar_opts *o, int end_id);

// Ids of the vocabulary pieces "<|startthought|>" / "<|endthought|>" that
// exist (0, 1 or 2 of them), written to ids[]; returns the count. Such meta
// tokens are never sampled, in thoughts or in text.
int qs_task_meta_tokens(const struct qs_tokenizer *tok, int ids[2]);

// The thought settings for thinking at inference (generate, eval, viz, the
// public API): SPEC defaults < a checkpoint's "quietstar" block (qs_json, may
// be NULL) < n_ahead / tau_sample / greedy when given (0 = not given); the
// vocabulary's meta tokens (<|startthought|>, <|endthought|>) banned; validated.
qs_status qs_qstar_opts_for_inference(const char *qs_json, const struct qs_tokenizer *tok, int n_ahead,
                                      float tau_sample, int greedy, qs_qstar_opts *o);

// Results of one step. Arrays point into the step's buffers (valid until the
// next call).
typedef struct {
    float loss, loss_lm, loss_base, policy_loss;
    float loss_talk[QS_MAX_TALK];
    float reward_mean, advantage_mean, mix_mean, mix_std;
    int R, T, n_thought, n_talk;
    // wall seconds of the step's phases: think (the D forward passes with
    // thought sampling), talk (losses, rewards, policy: the lm_head work),
    // backward (through every pass and the input embeddings)
    double t_think, t_talk, t_backward;
    const float *reward;      // [R, T-1-n_talk] raw reward
    const float *advantage;   // [R, T-1-n_talk] after baseline and clamp
    const float *mix_weight;  // [n_talk, R, T]
    const int *thoughts;      // [R, n_thought, T] sampled thought tokens
    const float *nll_base;    // [R, T] per-token base NLL (0 where no target)
    const float *nll_talk;    // [n_talk, R, T] per-token thought-mixed NLL
} qs_qstar_out;

typedef struct qs_qstar qs_qstar;

// Step state for batches of B rows x T positions (R = B*n_passes expanded rows).
qs_status qs_qstar_create(qs_qstar **q, const qs_model *m, const qs_qstar_opts *o, int B, int T);
void qs_qstar_free(qs_qstar *q);
size_t qs_qstar_bytes(const qs_qstar *q);
// Layers whose activations the step keeps from forward to backward (the
// others are recomputed; budget: o->act_budget_mb, see workspace.h).
int qs_qstar_layers_kept(const qs_qstar *q);
// Bytes of the activation budget o->act_budget_mb.
size_t qs_qstar_act_budget(const qs_qstar_opts *o);

// What qs_qstar_create(m, o, B, T) allocates, by part, without allocating
// (the same code counts instead; the memory planner, train/plan.c).
struct qs_ws_plan;
typedef struct {
    size_t kv_cache, layer_inputs, stored_acts, scratch, logits; // its workspace (workspace.h)
    size_t step;          // the step's own forward buffers: thoughts, rewards, mixing head, post-thought states
    size_t grads;         // gradient buffers (workspace and step): a forward-only (eval) step never touches them
    size_t total;
    int layers_kept, layers_total;
} qs_qstar_plan;
qs_status qs_qstar_plan_bytes(const qs_config *c, const qs_qstar_opts *o, int B, int T, qs_qstar_plan *out);

// The reference (EMA, no-thought) per-token NLL of the next batch, for the
// EMA reward baseline: nll[b*T+i] = -log p_ema(tokens[b,i+1] | tokens[b,..i])
// ([B,T]; non-finite entries, i.e. no target, count as 0). Copied; used by
// every following qs_qstar_step until set again. A step with the EMA baseline
// and no reference set is an error.
qs_status qs_qstar_set_ref_nll(qs_qstar *q, const float *nll);

// One step on tokens [B,T] with optional mask [B,T]. Thought tokens are
// sampled with `rng`, or taken from `forced` [R, n_thought, T] when non-NULL.
// With `grads` non-NULL, grad_scale * dL/dparams is ACCUMULATED into it.
qs_status qs_qstar_step(qs_qstar *q, const qs_model *m, const int *tokens, const int *mask,
                        const int *forced, qs_rng *rng, float *grads, float grad_scale, qs_qstar_out *out);

#endif

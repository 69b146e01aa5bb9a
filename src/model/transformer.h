// transformer.h: forward and backward of the Llama-family transformer over
// "passes" (see SPEC.md): the KV cache holds, per layer, the keys/values of
// pass 0 (the text) and of thought passes 1..D-1 for every (row, position).
// A query at (pass d, row r, position i) sees pass-0 keys of row r at
// positions j <= i with mask[r,j] = 1, plus (d >= 1) the keys of passes 1..d
// at the same (r, i). With D = 1 this is ordinary causal attention with
// right padding, so plain language modelling is the special case D = 1.
// Position ids are i + d.
#ifndef QS_MODEL_TRANSFORMER_H
#define QS_MODEL_TRANSFORMER_H

#include "model/model.h"

typedef struct qs_workspace qs_workspace;

// Workspace for R rows x T positions x D passes (KV caches, saved layer
// inputs, scratch). Allocation is checked; sizes are reported in the error.
qs_status qs_workspace_create(qs_workspace **ws, const qs_config *c, int R, int T, int D);
void qs_workspace_free(qs_workspace *ws);
size_t qs_workspace_bytes(const qs_workspace *ws);

// Plain language modelling on tokens [B,T] with optional mask [B,T]
// (1 = real token, 0 = right padding; NULL = all real).
// loss = mean over (b,i), i < T-1, mask[b,i+1] = 1 of CE(logits[b,i], tokens[b,i+1]).
// If `grads` is non-NULL (layout.numel floats) the gradient of the loss is
// ACCUMULATED into it (scaled by `grad_scale`, e.g. 1/accum_steps).
// If `logits` is non-NULL it receives [B,T,V]. `n_targets` (may be NULL)
// receives the number of target tokens in the mean.
qs_status qs_lm_step(const qs_model *m, qs_workspace *ws, const int *tokens, const int *mask, int B,
                     int T, float *loss, float *logits, float *grads, float grad_scale, int *n_targets);

// Sum of per-token NLL (no mean) and count, for evaluation: THE held-out NLL
// without thoughts (plain LM training's qs_trainer_eval, and through
// quietstar/nll_eval.c `qstar eval --data`, `qstar eval --task nll
// --no-think` and qstar_score). qs_lm_token_nll also gives each token's NLL:
// nll[b*T+i] (may be NULL) = -log p(tokens[b,i+1] | tokens[b,0..i]), NaN
// where there is no target; qs_lm_token_nll_ent also entropy[b*T+i] (may be
// NULL) = the entropy (nats) of that prediction (at every position).
qs_status qs_lm_nll(const qs_model *m, qs_workspace *ws, const int *tokens, const int *mask, int B, int T,
                    double *nll_sum, long *n_tokens);
qs_status qs_lm_token_nll(const qs_model *m, qs_workspace *ws, const int *tokens, const int *mask, int B, int T,
                          float *nll, double *nll_sum, long *n_tokens);
qs_status qs_lm_token_nll_ent(const qs_model *m, qs_workspace *ws, const int *tokens, const int *mask, int B, int T,
                              float *nll, float *entropy, double *nll_sum, long *n_tokens);

#endif

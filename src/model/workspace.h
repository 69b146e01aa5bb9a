// workspace.h: the memory a forward/backward needs, allocated once: creation,
// the memory plan, and the few buffers other layers compute in. Its layout is
// private to src/model/ (workspace_impl.h).
#ifndef QS_MODEL_WORKSPACE_H
#define QS_MODEL_WORKSPACE_H

#include "model/transformer.h"

// The buffers of a workspace other layers compute in (the Quiet-STaR step's
// heads and losses; everything else of the workspace is private to src/model).
typedef struct {
    float *xs;            // [L+1][D,R,T,H] layer inputs (training); xs[0 .. D*R*T*H) = the input embeddings
    float *h;             // [n_max,H] final hidden states (after the final norm)
    float *dh, *dx0;      // [n_max,H] gradients w.r.t. h and the input embeddings (training)
    float *logits;        // [chunk,V] lm_head scratch
    float *losses;        // [chunk] scratch
    int *targets;         // [n_max] scratch
    int chunk;            // tokens per lm_head chunk
    size_t n_max;         // tokens per block
} qs_ws_bufs;
qs_ws_bufs qs_workspace_bufs(qs_workspace *ws);
// The validity mask [R,T] of the batch the next forward sees (NULL: all valid).
void qs_workspace_set_mask(qs_workspace *ws, const int *mask);
// Layers whose activations are kept from forward to backward.
int qs_workspace_layers_kept(const qs_workspace *ws);

// Workspace kinds (qs_workspace_create_ex's `training`): INFERENCE: one pass
// of R*T tokens at a time; TRAINING: D passes of R*T tokens with the layer
// inputs and gradient scratch of a backward; PASSES: D passes without a
// backward (the held-out evaluation of the Quiet-STaR step): only the
// layer-0 input slot of each pass, no gradient buffers.
enum { QS_WS_INFERENCE = 0, QS_WS_TRAINING = 1, QS_WS_PASSES = 2 };
qs_status qs_workspace_create_ex(qs_workspace **ws, const qs_config *c, int R, int T, int D, int training);
// Keeps the activations of as many layers as fit in max_bytes (layers 0, 1,
// ...) from the forward, so the backward need not recompute them (each kept
// layer saves its six projections and its attention forward: about a quarter
// of its training compute). Returns the number of layers kept.
// qs_workspace_create does this with QS_STORE_ACTS_DEFAULT bytes,
// qs_workspace_create_budget with the caller's (0 = never; the CLI's
// --act-budget-mb). The default keeps every layer of small models and bounds
// the extra memory of big ones.
#define QS_STORE_ACTS_DEFAULT ((size_t)768 << 20)
qs_status qs_workspace_create_budget(qs_workspace **ws, const qs_config *c, int R, int T, int D, size_t act_budget);

// The bytes a training (or inference) workspace of this shape allocates, by
// part, computed by the allocation code itself without allocating (the
// memory planner, train/plan.c).
typedef struct qs_ws_plan {
    size_t kv_cache;      // keys and values of every pass, all layers
    size_t layer_inputs;  // residual stream at each layer input (training)
    size_t stored_acts;   // activations kept from forward to backward (act_budget)
    size_t scratch;       // one layer's activations and gradients, RoPE tables, ...
    size_t logits;        // the lm_head chunk
    size_t grads;         // gradient scratch of one layer (training; untouched by a forward-only use)
    size_t total;
    int layers_kept, layers_total;
} qs_ws_plan;
qs_status qs_workspace_plan(const qs_config *c, int R, int T, int D, int training, size_t act_budget,
                            qs_ws_plan *out);

// Forward of a block of tokens: passes d0..d0+nd-1, all rows, positions
// i0..i0+ni-1, input embeddings x0 [nd,R,ni,H]; fills the KV cache; writes
// final hidden states h_out [nd,R,ni,H] (may be NULL). With ni == T in a
// training workspace the layer inputs are saved for qs_backward_all.
qs_status qs_forward_block(const qs_model *m, qs_workspace *ws, const float *x0, int d0, int nd, int i0,
                           int ni, float *h_out);
// Backward over all D passes: dh [D,R,T,H] gradient w.r.t. the final hidden
// states; writes dx0 [D,R,T,H], the gradient w.r.t. the input embeddings;
// accumulates parameter gradients into `grads` (model layout).
qs_status qs_backward_all(const qs_model *m, qs_workspace *ws, const float *dh, float *dx0, float *grads);

#endif

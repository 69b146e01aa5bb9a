// workspace.h: the memory a forward/backward needs, allocated once.
// Internal to libqstar (the Quiet-STaR step and generation use it directly).
#ifndef QS_MODEL_WORKSPACE_H
#define QS_MODEL_WORKSPACE_H

#include "model/transformer.h"

// Activations of one layer for a block of up to n_max tokens.
typedef struct {
    float *xn, *rstd1;     // [N,H], [N]  attention rmsnorm
    float *q, *k, *v;      // [N,qd], [N,kvd], [N,kvd] (q,k after RoPE)
    float *att, *lse;      // [N,qd], [N,nh]          attention output, log-sum-exp
    float *x2;             // [N,H]  residual after attention
    float *xn2, *rstd2;    // [N,H], [N]  MLP rmsnorm
    float *gate, *up, *act; // [N,F]
    float *mean1, *mean2;  // [N] LayerNorm means (GPT-2; gate = c_fc output, act = gelu(gate), up unused)
} qs_layer_acts;

// Gradient scratch for one layer over all passes (training only).
typedef struct {
    float *dact, *dgate, *dup; // [N,F]
    float *dxn;                // [N,H]
    float *datt, *dq;          // [N,qd]
    float *dk, *dv;            // [N,kvd] (cache order)
} qs_grad_scratch;

struct qs_workspace {
    qs_config c;
    int R, T, D;          // rows, positions, passes
    int training;         // 1: keeps layer inputs and gradient scratch
    size_t n_max;         // tokens per block = D*R*T (training) or R*T (inference)
    int max_pos;          // RoPE table size - 1
    const int *mask;      // [R,T] validity mask of the current batch, or NULL
    float *kc, *vc;       // [L][D,R,T,kvd] KV cache
    size_t kv_layer;      // floats per layer in kc/vc
    float *xs;            // [L+1][D,R,T,H] residual stream at each layer input (training)
    size_t xs_layer;
    float *cos_t, *sin_t; // [max_pos+1, hd/2]
    int *pos;             // [n_max] position ids of the current block
    qs_layer_acts a;
    qs_layer_acts *stored; // [n_stored] activations of layers 0..n_stored-1 for all D*R*T
                           // tokens; the backward recomputes the other layers from their input
    int n_stored;
    qs_grad_scratch g;
    float *tmp_a, *tmp_b; // [n_max,H] ping-pong buffers
    float *h;             // [n_max,H] final hidden states (after final norm)
    float *dh, *dx0;      // [n_max,H] gradients w.r.t. h and the input embeddings
    int chunk;            // tokens per lm_head chunk
    float *logits;        // [chunk,V]
    float *losses;        // [chunk]
    int *targets;         // [n_max]
    size_t bytes;         // total allocated
    struct qs_ws_plan *plan; // qs_workspace_plan: count, do not allocate
    size_t *plan_part;
};

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

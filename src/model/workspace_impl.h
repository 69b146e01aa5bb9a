// workspace_impl.h: the layout of the forward/backward workspace. PRIVATE to
// src/model/ (and to white-box tests of it): everything else sees the opaque
// qs_workspace of transformer.h and the accessors of workspace.h.
#ifndef QS_MODEL_WORKSPACE_IMPL_H
#define QS_MODEL_WORKSPACE_IMPL_H

#include "model/workspace.h"

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
    int training;         // QS_WS_*: TRAINING keeps layer inputs and gradient scratch
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

#endif

// params.h: the parameter table. All parameters of a model live in ONE
// contiguous float buffer; a layout lists each named tensor (Hugging Face
// names) with its shape and offset. Gradients and AdamW moments use buffers of
// the same layout, so the optimizer, checkpointing and an all-reduce are each
// a single loop/call over `numel` floats (as in llm.c).
#ifndef QS_MODEL_PARAMS_H
#define QS_MODEL_PARAMS_H

#include "core/qs.h"
#include "model/config.h"

#define QS_NAME_MAX 96

typedef struct {
    char name[QS_NAME_MAX]; // HF tensor name, e.g. "model.layers.3.self_attn.q_proj.weight"
    int ndim;
    int64_t shape[4];
    size_t offset;          // in floats, from the start of the buffer
    size_t numel;
    int no_decay;           // 1 for norms, biases, meta embeddings: AdamW skips weight decay
} qs_tensor_info;

typedef struct {
    qs_tensor_info *t;
    int n, cap;
    size_t numel;           // total floats
} qs_layout;

qs_status qs_layout_add(qs_layout *L, const char *name, int ndim, const int64_t *shape, int no_decay);
int qs_layout_find(const qs_layout *L, const char *name); // index or -1
void qs_layout_free(qs_layout *L);

// Pointers into one buffer laid out as the model's layout (weights, grads, ...).
// HF conventions: projections are [out, in] row-major; RoPE is rotate-half.
typedef struct {
    float *attn_norm;          // [H]            input_layernorm
    float *wq, *wk, *wv;       // [nh*hd,H], [nkv*hd,H], [nkv*hd,H]
    float *bq, *bk, *bv;       // biases or NULL (qkv_bias)
    float *wo;                 // [H, nh*hd]
    float *mlp_norm;           // [H]            post_attention_layernorm
    float *w_gate, *w_up;      // [F,H]
    float *w_down;             // [H,F]
    // GPT-2 (attn_norm/mlp_norm are ln_1/ln_2 weights; the Llama matrices are NULL).
    // Conv1D weights are kept as stored: [in, out].
    float *ln1_b, *ln2_b;      // [H]            ln_1.bias, ln_2.bias
    float *c_attn_w, *c_attn_b; // [H,3H], [3H]  attn.c_attn (fused q|k|v columns)
    float *c_proj_w, *c_proj_b; // [H,H], [H]    attn.c_proj
    float *fc_w, *fc_b;        // [H,F], [F]     mlp.c_fc
    float *mproj_w, *mproj_b;  // [F,H], [H]     mlp.c_proj
} qs_layer_ptrs;

typedef struct {
    float *embed;              // [V,H]
    qs_layer_ptrs *layer;      // [n_layers]
    float *final_norm;         // [H]
    float *lm_head;            // [V,H]; == embed when tied
    // Quiet-STaR tensors (NULL when the model has none), released-code names:
    float *start_emb;          // [2,H] start_embedding (row 0 used)
    float *end_emb;            // [2,H] end_embedding   (row 0 used)
    float *head_w1, *head_b1;  // [H,2H], [H]  talk_head.0.0
    float *head_w2, *head_b2;  // [H,H],  [H]  talk_head.0.2
    float *head_w3;            // [1,H]        talk_head.0.4 (no bias)
    // GPT-2: embed = transformer.wte, final_norm = transformer.ln_f.weight
    float *wpe;                // [max_seq_len,H] transformer.wpe (NULL for RoPE models)
    float *final_norm_b;       // [H]            transformer.ln_f.bias
} qs_ptrs;

// Builds the layout of a Llama-family or GPT-2 model (+ Quiet-STaR tensors if asked).
qs_status qs_layout_build(qs_layout *L, const qs_config *c, int with_quietstar);
// Points `p` into `base` according to the layout (allocates p->layer).
qs_status qs_ptrs_bind(qs_ptrs *p, const qs_config *c, const qs_layout *L, float *base);
void qs_ptrs_free(qs_ptrs *p);
// Tensor `name` of a checkpoint file -> layout index (-1: not in the layout).
// GPT-2: also finds names without the "transformer." prefix (old checkpoints).
int qs_layout_find_hf(const qs_layout *L, const qs_config *c, const char *name);
// 1 for buffers of HF checkpoints that are not parameters and are skipped on
// load (GPT-2 attn.bias / attn.masked_bias causal masks).
int qs_layout_ignored_hf(const qs_config *c, const char *name);

#endif

// config.h: hyper-parameters of a Llama/Mistral/Qwen2-family transformer.
#ifndef QS_MODEL_CONFIG_H
#define QS_MODEL_CONFIG_H

#include "core/qs.h"

typedef enum { QS_ARCH_LLAMA = 0, QS_ARCH_MISTRAL = 1, QS_ARCH_QWEN2 = 2, QS_ARCH_GPT2 = 3 } qs_arch;

typedef struct {
    qs_arch arch;        // which HF architecture name to write back out
    int dim;             // hidden size H
    int hidden_dim;      // MLP intermediate size
    int n_layers;
    int n_heads;
    int n_kv_heads;      // grouped-query attention: n_heads % n_kv_heads == 0
    int head_dim;        // dim / n_heads
    int vocab_size;      // V
    int max_seq_len;     // max_position_embeddings
    float rope_theta;    // 10000 for llama2.c
    float norm_eps;      // RMSNorm epsilon (1e-5 llama2.c, 1e-6 Qwen2)
    int tied_embeddings; // 1: lm_head shares the token embedding matrix
    int qkv_bias;        // 1: q/k/v projections have biases (Qwen2)
    int bos_id, eos_id;  // special token ids (llama2.c: 1, 2)
    // ---- appended: Mistral sliding window, Llama-3.x rope_scaling ----
    int sliding_window;  // Mistral: a query at position p sees keys at p' with p - p' < W; 0 = none
    int rope_scaling;    // QS_ROPE_DEFAULT (none), QS_ROPE_LINEAR or QS_ROPE_LLAMA3
    float rope_factor;   // linear / llama3 "factor"
    float rope_low_freq_factor, rope_high_freq_factor; // llama3
    int rope_orig_max_pos; // llama3 "original_max_position_embeddings"
    // GPT-2 (arch QS_ARCH_GPT2): LayerNorm with bias (eps norm_eps), learned
    // positions wpe [max_seq_len, H] (n_positions), Conv1D weights [in, out],
    // biases everywhere, GELU tanh MLP of hidden_dim (n_inner), no RoPE
    // (rope_theta unused), n_kv_heads == n_heads.
} qs_config;

enum { QS_ROPE_DEFAULT = 0, QS_ROPE_LINEAR = 1, QS_ROPE_LLAMA3 = 2 };

// Checks every field for consistency; names the offending field on error.
// `src` names where the config came from (file path) for the message.
qs_status qs_config_validate(const qs_config *c, const char *src);
// A llama2.c-style default config with the shape of stories260K.
void qs_config_default_260k(qs_config *c);

#endif

// config.c: validation and defaults for qs_config.
#include "model/config.h"

#include <math.h>

qs_status qs_config_validate(const qs_config *c, const char *src) {
    const char *s = src ? src : "config";
#define CHECK(cond, ...) do { if (!(cond)) return qs_error(QS_ERR_FORMAT, __VA_ARGS__); } while (0)
    CHECK(c->dim > 0 && c->dim <= 65536, "%s: hidden size %d out of range", s, c->dim);
    CHECK(c->hidden_dim > 0 && c->hidden_dim <= 1 << 20, "%s: intermediate size %d out of range", s, c->hidden_dim);
    CHECK(c->n_layers > 0 && c->n_layers <= 1024, "%s: num_hidden_layers %d out of range", s, c->n_layers);
    CHECK(c->n_heads > 0 && c->n_heads <= 1024, "%s: num_attention_heads %d out of range", s, c->n_heads);
    CHECK(c->n_kv_heads > 0 && c->n_kv_heads <= c->n_heads, "%s: num_key_value_heads %d out of range (1..%d)", s, c->n_kv_heads, c->n_heads);
    CHECK(c->n_heads % c->n_kv_heads == 0, "%s: num_attention_heads %d not a multiple of num_key_value_heads %d", s, c->n_heads, c->n_kv_heads);
    CHECK(c->dim % c->n_heads == 0, "%s: hidden size %d not divisible by num_attention_heads %d", s, c->dim, c->n_heads);
    CHECK(c->head_dim == c->dim / c->n_heads, "%s: head_dim %d must equal hidden_size/num_attention_heads = %d", s, c->head_dim, c->dim / c->n_heads);
    CHECK(c->arch == QS_ARCH_GPT2 || c->head_dim % 2 == 0, "%s: head_dim %d must be even for RoPE", s, c->head_dim);
    CHECK(c->head_dim <= 512, "%s: head_dim %d above the supported maximum of 512", s, c->head_dim);
    CHECK(c->vocab_size > 0 && c->vocab_size <= 1 << 24, "%s: vocab_size %d out of range", s, c->vocab_size);
    CHECK(c->max_seq_len > 0 && c->max_seq_len <= 1 << 22, "%s: max_position_embeddings %d out of range", s, c->max_seq_len);
    CHECK(c->rope_theta > 0 && isfinite(c->rope_theta), "%s: rope_theta %g out of range (positive, finite)", s, (double)c->rope_theta);
    CHECK(c->norm_eps > 0 && c->norm_eps < 1, "%s: rms_norm_eps %g out of range", s, (double)c->norm_eps);
    CHECK(c->bos_id >= -1 && c->bos_id < c->vocab_size, "%s: bos_token_id %d out of range", s, c->bos_id);
    CHECK(c->eos_id >= -1 && c->eos_id < c->vocab_size, "%s: eos_token_id %d out of range", s, c->eos_id);
    CHECK(c->sliding_window >= 0, "%s: sliding_window %d must be positive (or null)", s, c->sliding_window);
    CHECK(c->rope_scaling >= QS_ROPE_DEFAULT && c->rope_scaling <= QS_ROPE_LLAMA3, "%s: rope_scaling type %d unknown", s, c->rope_scaling);
    if (c->rope_scaling != QS_ROPE_DEFAULT)
        CHECK(c->rope_factor >= 1.0f && c->rope_factor <= 1e6f, "%s: rope_scaling.factor %g must be in [1, 1e6]", s, (double)c->rope_factor);
    if (c->rope_scaling == QS_ROPE_LLAMA3) {
        CHECK(c->rope_low_freq_factor > 0 && isfinite(c->rope_high_freq_factor) && c->rope_high_freq_factor > c->rope_low_freq_factor,
              "%s: rope_scaling needs 0 < low_freq_factor (%g) < high_freq_factor (%g)", s,
              (double)c->rope_low_freq_factor, (double)c->rope_high_freq_factor);
        CHECK(c->rope_orig_max_pos > 0, "%s: rope_scaling.original_max_position_embeddings %d must be positive", s, c->rope_orig_max_pos);
    }
    CHECK(c->arch != QS_ARCH_GPT2 || c->n_kv_heads == c->n_heads, "%s: GPT-2 has no grouped-query attention (n_kv_heads %d != n_head %d)", s, c->n_kv_heads, c->n_heads);
#undef CHECK
    return QS_OK;
}

void qs_config_default_260k(qs_config *c) {
    *c = (qs_config){.arch = QS_ARCH_LLAMA, .dim = 64, .hidden_dim = 172, .n_layers = 5,
                     .n_heads = 8, .n_kv_heads = 4, .head_dim = 8, .vocab_size = 512,
                     .max_seq_len = 512, .rope_theta = 10000.0f, .norm_eps = 1e-5f,
                     .tied_embeddings = 1, .qkv_bias = 0, .bos_id = 1, .eos_id = 2};
}

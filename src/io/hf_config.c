// hf_config.c: Hugging Face config.json (Llama / Mistral / Qwen2) <-> qs_config.
#include "io/model_io.h"
#include "io/fileutil.h"

#include <cJSON.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct { const char *arch, *model_type; } ARCH[] = {
    [QS_ARCH_LLAMA] = {"LlamaForCausalLM", "llama"},
    [QS_ARCH_MISTRAL] = {"MistralForCausalLM", "mistral"},
    [QS_ARCH_QWEN2] = {"Qwen2ForCausalLM", "qwen2"},
};

// Keys read below.
static const char *const HANDLED[] = {
    "architectures", "model_type", "hidden_size", "intermediate_size", "num_hidden_layers",
    "num_attention_heads", "num_key_value_heads", "head_dim", "vocab_size", "max_position_embeddings",
    "rope_theta", "rms_norm_eps", "tie_word_embeddings", "attention_bias", "mlp_bias", "bos_token_id",
    "eos_token_id", "hidden_act", "sliding_window", "use_sliding_window", "rope_scaling",
    "rope_parameters", "quantization_config", "quietstar"};

// Keys of real HF configs that do not change the computation we do: ignored.
static const char *const HARMLESS[] = {
    "_name_or_path", "transformers_version", "torch_dtype", "dtype", "initializer_range", "use_cache",
    "pretraining_tp", "attention_dropout", "pad_token_id", "max_window_layers", "layer_types", "auto_map",
    "use_mrope", "_attn_implementation_autoset", "output_attentions", "output_hidden_states", "return_dict",
    "torchscript", "use_bfloat16", "tf_legacy_loss", "pruned_heads", "chunk_size_feed_forward",
    "is_encoder_decoder", "is_decoder", "add_cross_attention", "tie_encoder_decoder",
    "cross_attention_hidden_size", "max_length", "min_length", "do_sample", "early_stopping", "num_beams",
    "num_beam_groups", "diversity_penalty", "temperature", "top_k", "top_p", "typical_p",
    "repetition_penalty", "length_penalty", "no_repeat_ngram_size", "encoder_no_repeat_ngram_size",
    "bad_words_ids", "num_return_sequences", "output_scores", "return_dict_in_generate",
    "forced_bos_token_id", "forced_eos_token_id", "remove_invalid_values",
    "exponential_decay_length_penalty", "suppress_tokens", "begin_suppress_tokens", "finetuning_task",
    "id2label", "label2id", "tokenizer_class", "prefix", "sep_token_id", "decoder_start_token_id",
    "task_specific_params", "problem_type", "num_labels"};

// Keys of the released Quiet-STaR checkpoint (ezelikman/quietstar-8-ahead,
// its configuration_mistral.py): accepted and kept on save. The booleans
// select head variants; qstar computes the one the released run used
// (quiet-star-train.py: concatenated [base; thought] input, complex (3-layer)
// weighted talk head, lm_head as the shallow think head, talk heads merged),
// so they must hold those values (read_released). max_thoughts is
// n_ahead + n_ahead_talk + 1 in the authors' scripts.
static const char *const RELEASED_QS[] = {
    "max_thoughts", "merged_talk_heads", "merged_lm_and_talk_heads", "merged_lm_and_think_heads",
    "use_concat_talk_head", "use_shallow_think", "use_shallow_talk", "use_complex_think_head",
    "use_complex_talk_head", "use_weighted_talk_head"};
static const int RELEASED_QS_VALUE[] = {-1, 1, 0, 1, 1, 1, 0, 0, 1, 1};

static int in_list(const char *k, const char *const *list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(k, list[i]) == 0) return 1;
    return 0;
}
#define IN(k, list) in_list(k, list, sizeof list / sizeof *list)

static const cJSON *get(const cJSON *root, const char *key) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    return j && !cJSON_IsNull(j) ? j : NULL; // JSON null == absent
}

// 1: an integer that fits in int; 0: not an integer; -1: an integer out of range.
static int as_int(const cJSON *j, int *out) {
    if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble) || j->valuedouble != floor(j->valuedouble)) return 0;
    if (fabs(j->valuedouble) > 2147483647.0) return -1;
    *out = (int)j->valuedouble;
    return 1;
}

static qs_status int_error(int r, const cJSON *j, const char *path, const char *key) {
    if (r < 0) return qs_error(QS_ERR_FORMAT, "%s: field '%s' = %.17g is out of range (at most 2147483647 in magnitude)",
                               path, key, j->valuedouble);
    return qs_error(QS_ERR_FORMAT, "%s: field '%s' must be an integer", path, key);
}

// Integer field; absent (or null) -> keeps *out unless required.
static qs_status get_int(const cJSON *root, const char *path, const char *key, int required, int *out) {
    const cJSON *j = get(root, key);
    if (!j) return required ? qs_error(QS_ERR_FORMAT, "%s: missing field '%s'", path, key) : QS_OK;
    int r = as_int(j, out);
    return r == 1 ? QS_OK : int_error(r, j, path, key);
}

// A number that is finite as a float (what is written back must read back).
static qs_status float_value(const cJSON *j, const char *path, const char *key, float *out) {
    if (!cJSON_IsNumber(j)) return qs_error(QS_ERR_FORMAT, "%s: field '%s' must be a number", path, key);
    if (!isfinite(j->valuedouble) || fabs(j->valuedouble) > FLT_MAX)
        return qs_error(QS_ERR_FORMAT, "%s: field '%s' = %g is out of range (beyond a 32-bit float)", path, key,
                        j->valuedouble);
    *out = (float)j->valuedouble;
    return QS_OK;
}

static qs_status get_float(const cJSON *root, const char *path, const char *key, float *out) {
    const cJSON *j = get(root, key);
    return j ? float_value(j, path, key, out) : QS_OK;
}

static qs_status get_bool(const cJSON *root, const char *path, const char *key, int *out) {
    const cJSON *j = get(root, key);
    if (!j) return QS_OK;
    if (!cJSON_IsBool(j)) return qs_error(QS_ERR_FORMAT, "%s: field '%s' must be true or false", path, key);
    *out = cJSON_IsTrue(j);
    return QS_OK;
}

// bos/eos: an integer or a list of integers (first taken); null -> -1.
static qs_status get_token(const cJSON *root, const char *path, const char *key, int *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j) return QS_OK;
    if (cJSON_IsNull(j)) { *out = -1; return QS_OK; }
    if (cJSON_IsArray(j)) {
        for (const cJSON *x = j->child; x; x = x->next)
            if (!cJSON_IsNumber(x)) return qs_error(QS_ERR_FORMAT, "%s: field '%s' must hold integers", path, key);
        if (!j->child) { *out = -1; return QS_OK; }
        j = j->child;
    }
    int r = as_int(j, out);
    if (r < 0) return int_error(r, j, path, key);
    if (!r) return qs_error(QS_ERR_FORMAT, "%s: field '%s' must be an integer or a list of integers", path, key);
    return QS_OK;
}

static qs_status read_arch(const cJSON *root, const char *path, qs_arch *arch) {
    const cJSON *a = get(root, "architectures"), *mt = get(root, "model_type");
    if (mt && !cJSON_IsString(mt)) return qs_error(QS_ERR_FORMAT, "%s: field 'model_type' must be a string", path);
    const char *name = NULL;
    if (a) {
        if (!cJSON_IsArray(a) || !cJSON_IsString(a->child))
            return qs_error(QS_ERR_FORMAT, "%s: field 'architectures' must be a non-empty list of strings", path);
        name = a->child->valuestring;
    } else if (!mt) {
        return qs_error(QS_ERR_FORMAT, "%s: missing field 'architectures'", path);
    }
    for (int i = 0; i < 3; i++) {
        int ok = name ? strcmp(name, ARCH[i].arch) == 0 : strcmp(mt->valuestring, ARCH[i].model_type) == 0;
        if (!ok) continue;
        if (mt && strcmp(mt->valuestring, ARCH[i].model_type) != 0)
            return qs_error(QS_ERR_FORMAT, "%s: model_type '%s' does not match architecture %s", path,
                            mt->valuestring, ARCH[i].arch);
        *arch = (qs_arch)i;
        return QS_OK;
    }
    return qs_error(QS_ERR_UNSUPPORTED,
                    "%s: unsupported architecture '%s' (supported: LlamaForCausalLM, MistralForCausalLM, "
                    "Qwen2ForCausalLM)", path, name ? name : mt->valuestring);
}

// Mistral "sliding_window" (null = none): applied in the attention. Qwen2's
// per-layer windows (use_sliding_window true) are not supported; Llama has none.
static qs_status read_sliding_window(const cJSON *root, const char *path, qs_config *c) {
    int use_sw = c->arch != QS_ARCH_QWEN2, sw = 0;
    QS_TRY(get_bool(root, path, "use_sliding_window", &use_sw));
    QS_TRY(get_int(root, path, "sliding_window", 0, &sw));
    if (!use_sw || !get(root, "sliding_window")) return QS_OK;
    if (sw < 1) return qs_error(QS_ERR_FORMAT, "%s: field 'sliding_window' must be a positive integer or null", path);
    if (c->arch == QS_ARCH_MISTRAL) {
        c->sliding_window = sw;
        return QS_OK;
    }
    if (sw < c->max_seq_len)
        return qs_error(QS_ERR_UNSUPPORTED, "%s: sliding_window %d < max_position_embeddings %d is not supported for %s",
                        path, sw, c->max_seq_len, ARCH[c->arch].arch);
    return QS_OK;
}

static qs_status rope_number(const cJSON *rs, const char *path, const char *key, int required, double *out) {
    const cJSON *j = get(rs, key);
    if (!j) return required ? qs_error(QS_ERR_FORMAT, "%s: missing field 'rope_scaling.%s'", path, key) : QS_OK;
    if (!cJSON_IsNumber(j)) return qs_error(QS_ERR_FORMAT, "%s: field 'rope_scaling.%s' must be a number", path, key);
    if (!isfinite(j->valuedouble) || fabs(j->valuedouble) > FLT_MAX)
        return qs_error(QS_ERR_FORMAT, "%s: field 'rope_scaling.%s' = %g is out of range", path, key, j->valuedouble);
    *out = j->valuedouble;
    return QS_OK;
}

// "rope_scaling": null, {"rope_type" (or "type"): "default"}, "linear"
// {factor} or "llama3" {factor, low_freq_factor, high_freq_factor,
// original_max_position_embeddings} (HF _compute_llama3_parameters).
static qs_status read_rope_scaling(const cJSON *root, const char *path, qs_config *c) {
    const cJSON *rs = get(root, "rope_scaling");
    if (!rs) return QS_OK;
    if (!cJSON_IsObject(rs)) return qs_error(QS_ERR_FORMAT, "%s: field 'rope_scaling' must be an object or null", path);
    const cJSON *t = get(rs, "rope_type");
    if (!t) t = get(rs, "type");
    if (!t || !cJSON_IsString(t))
        return qs_error(QS_ERR_FORMAT, "%s: field 'rope_scaling.rope_type' must be a string", path);
    const char *ty = t->valuestring;
    if (!strcmp(ty, "default")) return QS_OK;
    if (strcmp(ty, "linear") && strcmp(ty, "llama3"))
        return qs_error(QS_ERR_UNSUPPORTED, "%s: rope_scaling.rope_type '%s' is not supported (supported: default, linear, llama3)",
                        path, ty);
    double f = 0, lo = 0, hi = 0, om = 0;
    QS_TRY(rope_number(rs, path, "factor", 1, &f));
    c->rope_scaling = strcmp(ty, "linear") ? QS_ROPE_LLAMA3 : QS_ROPE_LINEAR;
    c->rope_factor = (float)f;
    if (c->rope_scaling == QS_ROPE_LLAMA3) {
        QS_TRY(rope_number(rs, path, "low_freq_factor", 1, &lo));
        QS_TRY(rope_number(rs, path, "high_freq_factor", 1, &hi));
        QS_TRY(rope_number(rs, path, "original_max_position_embeddings", 1, &om));
        if (om != floor(om) || om < 1 || om > 1 << 24)
            return qs_error(QS_ERR_FORMAT, "%s: field 'rope_scaling.original_max_position_embeddings' must be a positive integer", path);
        c->rope_low_freq_factor = (float)lo, c->rope_high_freq_factor = (float)hi, c->rope_orig_max_pos = (int)om;
    }
    return QS_OK;
}

// The released Quiet-STaR keys: head variants other than the released one
// are errors; without a "quietstar" block, max_thoughts gives the thought
// length as n_ahead = max_thoughts - 1 - n_talk with qstar's default n_talk 4
// (the released run's n_ahead_talk), written as a quietstar block.
static qs_status read_released(const cJSON *root, const char *path, char **qs_json) {
    for (size_t i = 1; i < sizeof RELEASED_QS / sizeof *RELEASED_QS; i++) {
        int b = RELEASED_QS_VALUE[i];
        QS_TRY(get_bool(root, path, RELEASED_QS[i], &b));
        if (b != RELEASED_QS_VALUE[i])
            return qs_error(QS_ERR_UNSUPPORTED, "%s: %s %s is not supported (the released Quiet-STaR head is %s)", path,
                            RELEASED_QS[i], b ? "true" : "false", RELEASED_QS_VALUE[i] ? "true" : "false");
    }
    int mt = 0;
    QS_TRY(get_int(root, path, "max_thoughts", 0, &mt));
    if (!get(root, "max_thoughts")) return QS_OK;
    if (mt < 3 + 1 + 1 || mt > 1 << 16)
        return qs_error(QS_ERR_FORMAT, "%s: field 'max_thoughts' must be an integer in [5, 65536] (n_ahead + n_talk + 1)",
                        path);
    if (!qs_json || get(root, "quietstar")) return QS_OK;
    const int n_talk = mt - 1 - 3 >= 4 ? 4 : mt - 1 - 3;
    char buf[96];
    snprintf(buf, sizeof buf, "{\"n_ahead\":%d,\"n_talk\":%d}", mt - 1 - n_talk, n_talk);
    *qs_json = strdup(buf);
    return *qs_json ? QS_OK : qs_error(QS_ERR_NOMEM, "%s: out of memory", path);
}

// Keys that must hold a particular value for the model to be one we compute.
static qs_status check_features(const cJSON *root, const char *path, qs_config *c) {
    const cJSON *j;
    if ((j = get(root, "hidden_act")) && (!cJSON_IsString(j) || strcmp(j->valuestring, "silu") != 0))
        return qs_error(QS_ERR_UNSUPPORTED, "%s: hidden_act must be \"silu\"", path);
    QS_TRY(read_rope_scaling(root, path, c));
    if (get(root, "quantization_config"))
        return qs_error(QS_ERR_UNSUPPORTED, "%s: quantized checkpoints (quantization_config) are not supported", path);
    if ((j = get(root, "rope_parameters"))) { // newer transformers: {"rope_type": "default", "rope_theta": x}
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "rope_type");
        if (!cJSON_IsObject(j) || (t && (!cJSON_IsString(t) || strcmp(t->valuestring, "default") != 0)))
            return qs_error(QS_ERR_UNSUPPORTED, "%s: rope_parameters other than rope_type \"default\" are not supported", path);
        const cJSON *th = get(j, "rope_theta");
        if (th) QS_TRY(float_value(th, path, "rope_parameters.rope_theta", &c->rope_theta));
    }
    int b = 0;
    QS_TRY(get_bool(root, path, "mlp_bias", &b));
    if (b) return qs_error(QS_ERR_UNSUPPORTED, "%s: mlp_bias true is not supported", path);
    QS_TRY(get_bool(root, path, "attention_bias", &b));
    if (b && c->arch != QS_ARCH_QWEN2)
        return qs_error(QS_ERR_UNSUPPORTED, "%s: attention_bias true (biases on q/k/v/o) is not supported", path);
    return read_sliding_window(root, path, c);
}


// ---------------------------------------------------------------------------
// GPT-2 (GPT2LMHeadModel): its own key names, read and written here.

static const char *const GPT2_HANDLED[] = {
    "architectures", "model_type", "n_embd", "n_layer", "n_head", "n_positions", "n_ctx", "n_inner",
    "vocab_size", "layer_norm_epsilon", "activation_function", "tie_word_embeddings", "bos_token_id",
    "eos_token_id", "scale_attn_weights", "scale_attn_by_inverse_layer_idx", "add_cross_attention",
    "quietstar"};
// Dropout, sequence-summary head (not part of the LM) and precision knobs: no effect on our computation.
static const char *const GPT2_HARMLESS[] = {
    "attn_pdrop", "embd_pdrop", "resid_pdrop", "summary_activation", "summary_first_dropout",
    "summary_proj_to_labels", "summary_type", "summary_use_proj", "reorder_and_upcast_attn",
    "n_special", "predict_special_tokens", "gradient_checkpointing"};

static int is_gpt2(const cJSON *root) {
    const cJSON *a = get(root, "architectures"), *mt = get(root, "model_type");
    if (cJSON_IsArray(a) && cJSON_IsString(a->child)) return strcmp(a->child->valuestring, "GPT2LMHeadModel") == 0;
    return !a && cJSON_IsString(mt) && strcmp(mt->valuestring, "gpt2") == 0;
}

static qs_status gpt2_features(const cJSON *root, const char *path) {
    const cJSON *j = get(root, "model_type");
    if (j && (!cJSON_IsString(j) || strcmp(j->valuestring, "gpt2") != 0))
        return qs_error(QS_ERR_FORMAT, "%s: model_type must be \"gpt2\" for GPT2LMHeadModel", path);
    if ((j = get(root, "activation_function")) &&
        (!cJSON_IsString(j) || (strcmp(j->valuestring, "gelu_new") && strcmp(j->valuestring, "gelu_pytorch_tanh"))))
        return qs_error(QS_ERR_UNSUPPORTED, "%s: activation_function %s%s%s is not supported (only \"gelu_new\" or "
                        "\"gelu_pytorch_tanh\")", path, cJSON_IsString(j) ? "\"" : "",
                        cJSON_IsString(j) ? j->valuestring : "(not a string)", cJSON_IsString(j) ? "\"" : "");
    int b = 1;
    QS_TRY(get_bool(root, path, "scale_attn_weights", &b));
    if (!b) return qs_error(QS_ERR_UNSUPPORTED, "%s: scale_attn_weights false is not supported", path);
    b = 0;
    QS_TRY(get_bool(root, path, "scale_attn_by_inverse_layer_idx", &b));
    if (b) return qs_error(QS_ERR_UNSUPPORTED, "%s: scale_attn_by_inverse_layer_idx true is not supported", path);
    QS_TRY(get_bool(root, path, "add_cross_attention", &b));
    if (b) return qs_error(QS_ERR_UNSUPPORTED, "%s: add_cross_attention true is not supported", path);
    return QS_OK;
}

static qs_status gpt2_quietstar(const cJSON *root, const char *path, char **qs_json) {
    const cJSON *q = get(root, "quietstar");
    if (!q) return QS_OK;
    if (!cJSON_IsObject(q)) return qs_error(QS_ERR_FORMAT, "%s: field 'quietstar' must be an object", path);
    if (!qs_json) return QS_OK;
    char *s = cJSON_PrintUnformatted(q);
    *qs_json = s ? strdup(s) : NULL;
    cJSON_free(s);
    return *qs_json ? QS_OK : qs_error(QS_ERR_NOMEM, "%s: out of memory", path);
}

static qs_status read_gpt2(const cJSON *root, const char *path, qs_config *c, char **qs_json) {
    memset(c, 0, sizeof *c);
    c->arch = QS_ARCH_GPT2;
    for (const cJSON *k = root->child; k; k = k->next) {
        if (cJSON_GetObjectItemCaseSensitive(root, k->string) != k)
            return qs_error(QS_ERR_FORMAT, "%s: field '%s' appears twice", path, k->string);
        if (!IN(k->string, GPT2_HANDLED) && !IN(k->string, GPT2_HARMLESS) && !IN(k->string, HARMLESS))
            return qs_error(QS_ERR_FORMAT, "%s: unknown field '%s'", path, k->string);
    }
    QS_TRY(gpt2_features(root, path));
    QS_TRY(get_int(root, path, "n_embd", 1, &c->dim));
    QS_TRY(get_int(root, path, "n_layer", 1, &c->n_layers));
    QS_TRY(get_int(root, path, "n_head", 1, &c->n_heads));
    QS_TRY(get_int(root, path, "vocab_size", 1, &c->vocab_size));
    c->max_seq_len = -1;
    QS_TRY(get_int(root, path, "n_ctx", 0, &c->max_seq_len));
    QS_TRY(get_int(root, path, "n_positions", c->max_seq_len < 0, &c->max_seq_len)); // n_positions sizes wpe
    // n_inner null => 4 * n_embd (an n_embd too large for that fails validation below)
    c->hidden_dim = c->dim > 0 && c->dim <= INT_MAX / 4 ? 4 * c->dim : 0;
    QS_TRY(get_int(root, path, "n_inner", 0, &c->hidden_dim));
    c->n_kv_heads = c->n_heads;
    c->head_dim = c->n_heads > 0 ? c->dim / c->n_heads : 0;
    c->rope_theta = 10000.0f; // unused (no RoPE)
    c->norm_eps = 1e-5f;
    QS_TRY(get_float(root, path, "layer_norm_epsilon", &c->norm_eps));
    c->tied_embeddings = 1;
    QS_TRY(get_bool(root, path, "tie_word_embeddings", &c->tied_embeddings));
    c->bos_id = c->eos_id = c->vocab_size > 50256 ? 50256 : -1; // GPT2Config defaults
    QS_TRY(get_token(root, path, "bos_token_id", &c->bos_id));
    QS_TRY(get_token(root, path, "eos_token_id", &c->eos_id));
    QS_TRY(gpt2_quietstar(root, path, qs_json));
    return qs_config_validate(c, path);
}

static qs_status parse(const cJSON *root, const char *path, qs_config *c, char **qs_json) {
    if (!cJSON_IsObject(root)) return qs_error(QS_ERR_FORMAT, "%s: not a JSON object", path);
    if (is_gpt2(root)) return read_gpt2(root, path, c, qs_json);
    memset(c, 0, sizeof *c);
    QS_TRY(read_arch(root, path, &c->arch));
    for (const cJSON *k = root->child; k; k = k->next) {
        if (cJSON_GetObjectItemCaseSensitive(root, k->string) != k)
            return qs_error(QS_ERR_FORMAT, "%s: field '%s' appears twice", path, k->string);
        if (!IN(k->string, HANDLED) && !IN(k->string, HARMLESS) && !IN(k->string, RELEASED_QS))
            return qs_error(QS_ERR_FORMAT, "%s: unknown field '%s'", path, k->string);
    }
    QS_TRY(get_int(root, path, "hidden_size", 1, &c->dim));
    QS_TRY(get_int(root, path, "intermediate_size", 1, &c->hidden_dim));
    QS_TRY(get_int(root, path, "num_hidden_layers", 1, &c->n_layers));
    QS_TRY(get_int(root, path, "num_attention_heads", 1, &c->n_heads));
    c->n_kv_heads = c->n_heads;
    QS_TRY(get_int(root, path, "num_key_value_heads", 0, &c->n_kv_heads));
    QS_TRY(get_int(root, path, "vocab_size", 1, &c->vocab_size));
    QS_TRY(get_int(root, path, "max_position_embeddings", 1, &c->max_seq_len));
    c->head_dim = c->n_heads > 0 ? c->dim / c->n_heads : 0;
    int hd = c->head_dim;
    QS_TRY(get_int(root, path, "head_dim", 0, &hd));
    if (hd != c->head_dim)
        return qs_error(QS_ERR_UNSUPPORTED, "%s: head_dim %d differs from hidden_size/num_attention_heads = %d",
                        path, hd, c->head_dim);
    c->rope_theta = 10000.0f;
    QS_TRY(get_float(root, path, "rope_theta", &c->rope_theta));
    c->norm_eps = 1e-6f;
    QS_TRY(get_float(root, path, "rms_norm_eps", &c->norm_eps));
    QS_TRY(get_bool(root, path, "tie_word_embeddings", &c->tied_embeddings));
    c->qkv_bias = c->arch == QS_ARCH_QWEN2;
    c->bos_id = c->arch == QS_ARCH_QWEN2 ? -1 : 1;
    c->eos_id = c->arch == QS_ARCH_QWEN2 ? -1 : 2;
    QS_TRY(get_token(root, path, "bos_token_id", &c->bos_id));
    QS_TRY(get_token(root, path, "eos_token_id", &c->eos_id));
    QS_TRY(check_features(root, path, c));
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(root, "quietstar");
    if (q && !cJSON_IsNull(q)) {
        if (!cJSON_IsObject(q)) return qs_error(QS_ERR_FORMAT, "%s: field 'quietstar' must be an object", path);
        if (qs_json) {
            char *s = cJSON_PrintUnformatted(q);
            *qs_json = s ? strdup(s) : NULL;
            cJSON_free(s);
            if (!*qs_json) return qs_error(QS_ERR_NOMEM, "%s: out of memory", path);
        }
    }
    QS_TRY(read_released(root, path, qs_json));
    return qs_config_validate(c, path);
}

qs_status qs_hf_config_parse(qs_config *c, const char *text, size_t n, const char *path, char **quietstar_json) {
    if (quietstar_json) *quietstar_json = NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, n, &end, 0);
    qs_status st;
    if (!root) {
        size_t at = end && end >= text ? (size_t)(end - text) : 0;
        st = qs_error(QS_ERR_FORMAT, "%s: invalid JSON near byte %zu", path, at);
    } else {
        st = parse(root, path, c, quietstar_json);
    }
    cJSON_Delete(root);
    if (st != QS_OK && quietstar_json) {
        free(*quietstar_json);
        *quietstar_json = NULL;
    }
    return st;
}

qs_status qs_hf_config_read(qs_config *c, const char *path, char **quietstar_json) {
    if (quietstar_json) *quietstar_json = NULL;
    unsigned char *buf;
    size_t n;
    QS_TRY(qs_read_file_max(path, QS_CONFIG_FILE_CAP, "config file", &buf, &n));
    qs_status st = qs_hf_config_parse(c, (const char *)buf, n, path, quietstar_json);
    free(buf);
    return st;
}

// A float as the shortest decimal that reads back as the same float.
static cJSON *float_number(float v) {
    char s[32];
    for (int p = 1; p <= 9; p++) {
        snprintf(s, sizeof s, "%.*g", p, (double)v);
        if (strtof(s, NULL) == v) break;
    }
    return cJSON_CreateNumber(strtod(s, NULL));
}

// rope_scaling as HF writes it (null for the default rotary embedding).
static cJSON *rope_scaling_json(const qs_config *c) {
    if (c->rope_scaling == QS_ROPE_DEFAULT) return cJSON_CreateNull();
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "rope_type", c->rope_scaling == QS_ROPE_LINEAR ? "linear" : "llama3");
    cJSON_AddItemToObject(o, "factor", float_number(c->rope_factor));
    if (c->rope_scaling == QS_ROPE_LLAMA3) {
        cJSON_AddItemToObject(o, "low_freq_factor", float_number(c->rope_low_freq_factor));
        cJSON_AddItemToObject(o, "high_freq_factor", float_number(c->rope_high_freq_factor));
        cJSON_AddNumberToObject(o, "original_max_position_embeddings", c->rope_orig_max_pos);
    }
    return o;
}

static cJSON *token(int id) { return id < 0 ? cJSON_CreateNull() : cJSON_CreateNumber(id); }

// Writes the JSON text of r (consumed) to `path`, or returns it in *text_out when not NULL.
static qs_status write_json_file(cJSON *r, const char *path, char **text_out) {
    char *text = cJSON_Print(r);
    cJSON_Delete(r);
    size_t n = text ? strlen(text) : 0;
    char *out = text ? malloc(n + 2) : NULL;
    if (!out) {
        cJSON_free(text);
        return qs_error(QS_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(out, text, n);
    out[n] = '\n';
    out[n + 1] = 0;
    cJSON_free(text);
    if (text_out) {
        *text_out = out;
        return QS_OK;
    }
    qs_status st = qs_write_file_atomic(path, out, n + 1);
    free(out);
    return st;
}

// The quietstar block as a JSON object (NULL text: *out NULL).
static qs_status quietstar_object(const char *quietstar_json, const char *path, cJSON **out) {
    *out = NULL;
    if (!quietstar_json) return QS_OK;
    cJSON *qs = cJSON_Parse(quietstar_json);
    if (!cJSON_IsObject(qs)) {
        cJSON_Delete(qs);
        return qs_error(QS_ERR_ARG, "%s: the quietstar settings are not a JSON object", path);
    }
    *out = qs;
    return QS_OK;
}

// GPT2Config keys (what transformers writes), so the directory loads in HF.
static qs_status build_gpt2(const qs_config *c, const char *path, const char *quietstar_json, cJSON **out) {
    QS_TRY(qs_config_validate(c, path));
    cJSON *qs = NULL;
    QS_TRY(quietstar_object(quietstar_json, path, &qs));
    cJSON *r = cJSON_CreateObject();
    const char *arch[1] = {"GPT2LMHeadModel"};
    cJSON_AddItemToObject(r, "architectures", cJSON_CreateStringArray(arch, 1));
    cJSON_AddStringToObject(r, "model_type", "gpt2");
    cJSON_AddStringToObject(r, "activation_function", "gelu_new");
    cJSON_AddNumberToObject(r, "n_embd", c->dim);
    cJSON_AddNumberToObject(r, "n_layer", c->n_layers);
    cJSON_AddNumberToObject(r, "n_head", c->n_heads);
    cJSON_AddNumberToObject(r, "n_inner", c->hidden_dim);
    cJSON_AddNumberToObject(r, "n_positions", c->max_seq_len);
    cJSON_AddNumberToObject(r, "n_ctx", c->max_seq_len);
    cJSON_AddNumberToObject(r, "vocab_size", c->vocab_size);
    cJSON_AddItemToObject(r, "layer_norm_epsilon", float_number(c->norm_eps));
    cJSON_AddBoolToObject(r, "tie_word_embeddings", c->tied_embeddings);
    cJSON_AddBoolToObject(r, "scale_attn_weights", 1);
    cJSON_AddBoolToObject(r, "scale_attn_by_inverse_layer_idx", 0);
    cJSON_AddBoolToObject(r, "reorder_and_upcast_attn", 0);
    cJSON_AddNumberToObject(r, "attn_pdrop", 0.1);
    cJSON_AddNumberToObject(r, "embd_pdrop", 0.1);
    cJSON_AddNumberToObject(r, "resid_pdrop", 0.1);
    cJSON_AddItemToObject(r, "bos_token_id", token(c->bos_id));
    cJSON_AddItemToObject(r, "eos_token_id", token(c->eos_id));
    cJSON_AddNumberToObject(r, "initializer_range", 0.02);
    cJSON_AddBoolToObject(r, "use_cache", 1);
    cJSON_AddStringToObject(r, "torch_dtype", "float32");
    if (qs) cJSON_AddItemToObject(r, "quietstar", qs);
    *out = r;
    return QS_OK;
}

static qs_status build_llama(const qs_config *c, const char *path, const char *quietstar_json, cJSON **out) {
    QS_TRY(qs_config_validate(c, path));
    if ((int)c->arch < 0 || (int)c->arch > 2) return qs_error(QS_ERR_ARG, "%s: unknown architecture %d", path, c->arch);
    if (c->qkv_bias != (c->arch == QS_ARCH_QWEN2))
        return qs_error(QS_ERR_UNSUPPORTED, "%s: %s %s q/k/v biases", path, ARCH[c->arch].arch,
                        c->qkv_bias ? "cannot have" : "requires");
    cJSON *qs = NULL;
    QS_TRY(quietstar_object(quietstar_json, path, &qs));
    cJSON *r = cJSON_CreateObject();
    const char *arch[1] = {ARCH[c->arch].arch};
    cJSON_AddItemToObject(r, "architectures", cJSON_CreateStringArray(arch, 1));
    cJSON_AddStringToObject(r, "model_type", ARCH[c->arch].model_type);
    cJSON_AddStringToObject(r, "hidden_act", "silu");
    cJSON_AddNumberToObject(r, "hidden_size", c->dim);
    cJSON_AddNumberToObject(r, "intermediate_size", c->hidden_dim);
    cJSON_AddNumberToObject(r, "num_hidden_layers", c->n_layers);
    cJSON_AddNumberToObject(r, "num_attention_heads", c->n_heads);
    cJSON_AddNumberToObject(r, "num_key_value_heads", c->n_kv_heads);
    cJSON_AddNumberToObject(r, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(r, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(r, "max_position_embeddings", c->max_seq_len);
    cJSON_AddItemToObject(r, "rope_theta", float_number(c->rope_theta));
    cJSON_AddItemToObject(r, "rms_norm_eps", float_number(c->norm_eps));
    cJSON_AddItemToObject(r, "rope_scaling", rope_scaling_json(c));
    cJSON_AddBoolToObject(r, "tie_word_embeddings", c->tied_embeddings);
    if (c->arch == QS_ARCH_QWEN2) {
        cJSON_AddBoolToObject(r, "use_sliding_window", 0);
        cJSON_AddNumberToObject(r, "max_window_layers", c->n_layers);
    } else {
        cJSON_AddBoolToObject(r, "attention_bias", 0);
    }
    if (c->arch == QS_ARCH_LLAMA) cJSON_AddBoolToObject(r, "mlp_bias", 0);
    if (c->arch == QS_ARCH_MISTRAL && c->sliding_window > 0) cJSON_AddNumberToObject(r, "sliding_window", c->sliding_window);
    else if (c->arch == QS_ARCH_MISTRAL) cJSON_AddNullToObject(r, "sliding_window");
    cJSON_AddNumberToObject(r, "attention_dropout", 0.0);
    cJSON_AddItemToObject(r, "bos_token_id", token(c->bos_id));
    cJSON_AddItemToObject(r, "eos_token_id", token(c->eos_id));
    cJSON_AddNumberToObject(r, "initializer_range", 0.02);
    cJSON_AddBoolToObject(r, "use_cache", 1);
    cJSON_AddStringToObject(r, "torch_dtype", "float32");
    if (qs) cJSON_AddItemToObject(r, "quietstar", qs);
    *out = r;
    return QS_OK;
}

// The original config's keys with ours replacing theirs (in its order), ours
// that it lacks appended. Takes ownership of `ours`; returns the tree to write.
static cJSON *merge_into_original(cJSON *ours, const char *orig_json) {
    cJSON *o = orig_json ? cJSON_Parse(orig_json) : NULL;
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return ours;
    }
    // qstar never changes these; the original spelling (rope "type", eos id lists) stays
    static const char *const KEEP[] = {"rope_scaling", "bos_token_id", "eos_token_id"};
    while (ours->child) {
        cJSON *item = cJSON_DetachItemViaPointer(ours, ours->child);
        const cJSON *theirs = cJSON_GetObjectItemCaseSensitive(o, item->string);
        if (!theirs) cJSON_AddItemToObject(o, item->string, item); // (copies the key)
        else if (IN(item->string, KEEP)) cJSON_Delete(item);
        else cJSON_ReplaceItemViaPointer(o, (cJSON *)theirs, item); // keeps item's key
    }
    cJSON_Delete(ours);
    return o;
}

// max_thoughts (released Quiet-STaR config) = n_ahead + n_talk + 1 of the quietstar block.
static void sync_max_thoughts(cJSON *r) {
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(r, "quietstar");
    cJSON *mt = cJSON_GetObjectItemCaseSensitive(r, "max_thoughts");
    const cJSON *na = q ? cJSON_GetObjectItemCaseSensitive(q, "n_ahead") : NULL;
    const cJSON *nt = q ? cJSON_GetObjectItemCaseSensitive(q, "n_talk") : NULL;
    if (cJSON_IsNumber(mt) && cJSON_IsNumber(na) && cJSON_IsNumber(nt))
        cJSON_SetNumberValue(mt, na->valuedouble + nt->valuedouble + 1);
}

qs_status qs_hf_config_write_merged(const qs_config *c, const char *path, const char *quietstar_json,
                                    const char *orig_json, const char *torch_dtype) {
    cJSON *r = NULL;
    QS_TRY(c->arch == QS_ARCH_GPT2 ? build_gpt2(c, path, quietstar_json, &r) : build_llama(c, path, quietstar_json, &r));
    if (torch_dtype) cJSON_ReplaceItemInObjectCaseSensitive(r, "torch_dtype", cJSON_CreateString(torch_dtype));
    r = merge_into_original(r, orig_json);
    sync_max_thoughts(r);
    return write_json_file(r, path, NULL);
}

qs_status qs_hf_config_write(const qs_config *c, const char *path, const char *quietstar_json) {
    return qs_hf_config_write_merged(c, path, quietstar_json, NULL, NULL);
}

qs_status qs_hf_config_to_text(const qs_config *c, const char *quietstar_json, char **text) {
    *text = NULL;
    cJSON *r = NULL;
    QS_TRY(c->arch == QS_ARCH_GPT2 ? build_gpt2(c, "config.json", quietstar_json, &r)
                                   : build_llama(c, "config.json", quietstar_json, &r));
    return write_json_file(r, "config.json", text);
}

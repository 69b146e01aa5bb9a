// gguf_model.c: a Llama-family model from a GGUF file (llama.cpp naming).
// `general.architecture` selects the key prefix ("llama" or "qwen2"); the
// hyper-parameters come from <arch>.* keys, the vocabulary size from
// token_embd.weight. Tensor names map to the HF layout:
//   token_embd.weight -> model.embed_tokens.weight, output_norm.weight ->
//   model.norm.weight, output.weight -> lm_head.weight (absent: tied),
//   blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate,
//   ffn_up, ffn_down} -> model.layers.N.{input_layernorm, self_attn.q_proj, ...}.
// A ggml tensor of dims [ne0, ne1] is the row-major [ne1, ne0] HF matrix.
// llama.cpp's converter permutes the q/k rows of Llama models to the
// interleaved RoPE layout; they are permuted back to rotate-half here
// (qwen2 GGUFs keep the rotate-half order). Every shape is compared with the
// config before anything is allocated.
#include "io/gguf.h"
#include "io/model_io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Integer metadata "<arch>.<suffix>" within [lo, hi]; absent -> *out unchanged
// unless `required`.
static qs_status arch_int(const qs_gguf *g, const char *arch, const char *suffix, int required, int64_t lo,
                          int64_t hi, int *out) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    if (!qs_gguf_find(g, key)) {
        if (required) return qs_error(QS_ERR_FORMAT, "%s: metadata '%s' is missing", g->path, key);
        return QS_OK;
    }
    int64_t v;
    QS_TRY(qs_gguf_get_i64(g, key, &v));
    if (v < lo || v > hi)
        return qs_error(QS_ERR_FORMAT, "%s: metadata '%s' = %lld is out of range [%lld, %lld]", g->path, key,
                        (long long)v, (long long)lo, (long long)hi);
    *out = (int)v;
    return QS_OK;
}

static qs_status arch_float(const qs_gguf *g, const char *arch, const char *suffix, float *out) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return qs_gguf_opt_f32(g, key, out);
}

// Architecture name -> qs_arch (UNSUPPORTED for anything else).
static qs_status read_arch(const qs_gguf *g, char *arch, size_t n, qs_arch *a) {
    qs_gguf_str s;
    QS_TRY(qs_gguf_get_str(g, "general.architecture", &s));
    snprintf(arch, n, "%.*s", (int)QS_MIN(s.len, n - 1), s.s);
    if (strlen(arch) != s.len || s.len >= n)
        return qs_error(QS_ERR_UNSUPPORTED, "%s: metadata 'general.architecture': unsupported architecture", g->path);
    if (!strcmp(arch, "llama")) *a = QS_ARCH_LLAMA;
    else if (!strcmp(arch, "qwen2")) *a = QS_ARCH_QWEN2;
    else
        return qs_error(QS_ERR_UNSUPPORTED,
                        "%s: metadata 'general.architecture': architecture '%s' is not supported (llama, qwen2)",
                        g->path, arch);
    return QS_OK;
}

static qs_status rope_checks(const qs_gguf *g, const char *arch, const qs_config *c) {
    int rot = c->head_dim, kl = c->head_dim, vl = c->head_dim;
    QS_TRY(arch_int(g, arch, "rope.dimension_count", 0, 1, 1 << 20, &rot));
    QS_TRY(arch_int(g, arch, "attention.key_length", 0, 1, 1 << 20, &kl));
    QS_TRY(arch_int(g, arch, "attention.value_length", 0, 1, 1 << 20, &vl));
    if (rot != c->head_dim || kl != c->head_dim || vl != c->head_dim)
        return qs_error(QS_ERR_UNSUPPORTED,
                        "%s: metadata '%s.rope.dimension_count'/'attention.key_length'/'value_length' (%d/%d/%d) differ "
                        "from the head size %d: partial rotary or odd head sizes are not supported",
                        g->path, arch, rot, kl, vl, c->head_dim);
    char key[160];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    qs_gguf_str st = {"none", 4};
    if (qs_gguf_find(g, key)) QS_TRY(qs_gguf_get_str(g, key, &st));
    if (!(st.len == 4 && !memcmp(st.s, "none", 4)))
        return qs_error(QS_ERR_UNSUPPORTED, "%s: metadata '%s' = '%.*s': RoPE scaling in GGUF files is not supported",
                        g->path, key, (int)QS_MIN(st.len, 64), st.s);
    if (qs_gguf_find_tensor(g, "rope_freqs.weight"))
        return qs_error(QS_ERR_UNSUPPORTED, "%s: tensor 'rope_freqs.weight' (Llama-3 RoPE scaling) is not supported",
                        g->path);
    return QS_OK;
}

static qs_status read_config(const qs_gguf *g, qs_config *c) {
    char arch[64];
    memset(c, 0, sizeof *c);
    QS_TRY(read_arch(g, arch, sizeof arch, &c->arch));
    QS_TRY(arch_int(g, arch, "embedding_length", 1, 1, 65536, &c->dim));
    QS_TRY(arch_int(g, arch, "feed_forward_length", 1, 1, 1 << 20, &c->hidden_dim));
    QS_TRY(arch_int(g, arch, "block_count", 1, 1, 1024, &c->n_layers));
    QS_TRY(arch_int(g, arch, "attention.head_count", 1, 1, 1024, &c->n_heads));
    c->n_kv_heads = c->n_heads;
    QS_TRY(arch_int(g, arch, "attention.head_count_kv", 0, 1, 1024, &c->n_kv_heads));
    QS_TRY(arch_int(g, arch, "context_length", 1, 1, 1 << 22, &c->max_seq_len));
    c->rope_theta = 10000.0f;
    c->norm_eps = 1e-5f;
    QS_TRY(arch_float(g, arch, "rope.freq_base", &c->rope_theta));
    char key[160];
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", arch);
    QS_TRY(qs_gguf_get_f32(g, key, &c->norm_eps));
    if (c->dim % c->n_heads != 0)
        return qs_error(QS_ERR_FORMAT, "%s: metadata '%s.embedding_length' %d is not a multiple of '%s.attention.head_count' %d",
                        g->path, arch, c->dim, arch, c->n_heads);
    c->head_dim = c->dim / c->n_heads;
    QS_TRY(rope_checks(g, arch, c));
    const qs_gguf_tensor *emb = qs_gguf_find_tensor(g, "token_embd.weight");
    if (!emb) return qs_error(QS_ERR_FORMAT, "%s: tensor 'token_embd.weight' is missing", g->path);
    if (emb->n_dims != 2 || emb->ne[0] != c->dim || emb->ne[1] < 1 || emb->ne[1] > 1 << 24)
        return qs_error(QS_ERR_FORMAT, "%s: tensor 'token_embd.weight' has dims [%lld, %lld] (n_dims %d), expected [%d, vocab]",
                        g->path, (long long)emb->ne[0], (long long)emb->ne[1], emb->n_dims, c->dim);
    c->vocab_size = (int)emb->ne[1];
    QS_TRY(arch_int(g, arch, "vocab_size", 0, c->vocab_size, c->vocab_size, &c->vocab_size));
    c->tied_embeddings = qs_gguf_find_tensor(g, "output.weight") == NULL;
    c->qkv_bias = qs_gguf_find_tensor(g, "blk.0.attn_q.bias") != NULL;
    c->bos_id = 1;
    c->eos_id = 2;
    if (c->arch == QS_ARCH_QWEN2) c->bos_id = c->eos_id = -1;
    QS_TRY(qs_gguf_opt_i32(g, "tokenizer.ggml.bos_token_id", &c->bos_id));
    QS_TRY(qs_gguf_opt_i32(g, "tokenizer.ggml.eos_token_id", &c->eos_id));
    return qs_config_validate(c, g->path);
}

// HF layout name -> GGUF tensor name (0 if the name has no GGUF counterpart).
static int gguf_name(const char *hf, char *out, size_t n) {
    static const char *const MAP[][2] = {
        {"input_layernorm.weight", "attn_norm.weight"},      {"self_attn.q_proj.weight", "attn_q.weight"},
        {"self_attn.k_proj.weight", "attn_k.weight"},        {"self_attn.v_proj.weight", "attn_v.weight"},
        {"self_attn.q_proj.bias", "attn_q.bias"},            {"self_attn.k_proj.bias", "attn_k.bias"},
        {"self_attn.v_proj.bias", "attn_v.bias"},            {"self_attn.o_proj.weight", "attn_output.weight"},
        {"post_attention_layernorm.weight", "ffn_norm.weight"}, {"mlp.gate_proj.weight", "ffn_gate.weight"},
        {"mlp.up_proj.weight", "ffn_up.weight"},             {"mlp.down_proj.weight", "ffn_down.weight"}};
    if (!strcmp(hf, "model.embed_tokens.weight")) return snprintf(out, n, "token_embd.weight") > 0;
    if (!strcmp(hf, "model.norm.weight")) return snprintf(out, n, "output_norm.weight") > 0;
    if (!strcmp(hf, "lm_head.weight")) return snprintf(out, n, "output.weight") > 0;
    int l, k = 0;
    if (sscanf(hf, "model.layers.%d.%n", &l, &k) != 1 || k == 0) return 0;
    for (size_t i = 0; i < sizeof MAP / sizeof *MAP; i++)
        if (!strcmp(hf + k, MAP[i][0])) return snprintf(out, n, "blk.%d.%s", l, MAP[i][1]) > 0;
    return 0;
}

static int is_qs_tensor(const char *n) {
    return !strcmp(n, "start_embedding") || !strcmp(n, "end_embedding") || !strncmp(n, "talk_head.", 10);
}

// Every layout tensor present with the right dims, every GGUF tensor used.
static qs_status check_tensors(const qs_gguf *g, const qs_layout *L) {
    uint64_t used = 0;
    for (int i = 0; i < L->n; i++) {
        const qs_tensor_info *ti = &L->t[i];
        char gn[QS_NAME_MAX + 32];
        if (is_qs_tensor(ti->name)) continue;
        if (!gguf_name(ti->name, gn, sizeof gn))
            return qs_error(QS_ERR_UNSUPPORTED, "%s: no GGUF name for parameter '%s'", g->path, ti->name);
        const qs_gguf_tensor *t = qs_gguf_find_tensor(g, gn);
        if (!t) return qs_error(QS_ERR_FORMAT, "%s: tensor '%s' is missing", g->path, gn);
        int same = t->n_dims == ti->ndim;
        for (int d = 0; d < ti->ndim && same; d++) same = t->ne[d] == ti->shape[ti->ndim - 1 - d];
        if (!same) {
            long long e0 = ti->shape[ti->ndim - 1], e1 = ti->ndim > 1 ? ti->shape[0] : 1;
            return qs_error(QS_ERR_FORMAT, "%s: tensor '%s' has dims [%lld, %lld] (n_dims %d) but the config implies [%lld, %lld]",
                            g->path, gn, (long long)t->ne[0], (long long)t->ne[1], t->n_dims, e0, e1);
        }
        used++;
    }
    for (uint64_t i = 0; used != g->n_tensors && i < g->n_tensors; i++) { // name the first unused tensor
        int in_layout = 0;
        for (int k = 0; k < L->n && !in_layout; k++) {
            char gn[QS_NAME_MAX + 32];
            in_layout = gguf_name(L->t[k].name, gn, sizeof gn) && !strcmp(gn, g->t[i].name);
        }
        if (!in_layout)
            return qs_error(QS_ERR_UNSUPPORTED, "%s: tensor '%s' is not part of the model qstar builds from this config",
                            g->path, g->t[i].name);
    }
    return QS_OK;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static qs_status load_weights(qs_model *m, const qs_gguf *g) {
    const qs_config *c = &m->cfg;
    float *tmp = NULL;
    qs_status st = QS_OK;
    for (int i = 0; i < m->layout.n && st == QS_OK; i++) {
        const qs_tensor_info *ti = &m->layout.t[i];
        char gn[QS_NAME_MAX + 32];
        if (is_qs_tensor(ti->name) || !gguf_name(ti->name, gn, sizeof gn)) continue;
        const qs_gguf_tensor *t = qs_gguf_find_tensor(g, gn);
        int is_q = ends_with(gn, ".attn_q.weight"), is_k = ends_with(gn, ".attn_k.weight");
        float *dst = m->params + ti->offset;
        if (c->arch != QS_ARCH_LLAMA || (!is_q && !is_k)) {
            st = qs_gguf_tensor_f32(g, t, dst);
            continue;
        }
        if (!tmp && !(tmp = qs_malloc((size_t)c->dim * c->dim * sizeof(float), "GGUF q/k rows"))) // q, k: <= [H, H]
            return QS_ERR_NOMEM;
        st = qs_gguf_tensor_f32(g, t, tmp);
        if (st == QS_OK) qs_rope_permute_rows(dst, tmp, is_q ? c->n_heads : c->n_kv_heads, c->head_dim, c->dim, 1);
    }
    free(tmp);
    return st;
}

qs_status qs_gguf_load_model(qs_model *m, const char *path) {
    memset(m, 0, sizeof *m);
    qs_gguf *g;
    QS_TRY(qs_gguf_open(path, &g));
    qs_config c;
    qs_layout L = {0};
    qs_status st = read_config(g, &c);
    if (st == QS_OK) st = qs_layout_build(&L, &c, 0);
    if (st == QS_OK) st = check_tensors(g, &L);
    qs_layout_free(&L);
    if (st == QS_OK) st = qs_model_create(m, &c, 0);
    if (st == QS_OK) {
        st = load_weights(m, g);
        if (st != QS_OK) qs_model_free(m);
    }
    qs_gguf_free(g);
    return st;
}

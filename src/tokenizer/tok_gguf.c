// tok_gguf.c: the tokenizer stored in a GGUF file's tokenizer.ggml.* metadata
// (read with the GGUF parser of src/io/gguf.h) -> a qs_tok_spec -> a tokenizer.
//
//   tokenizer.ggml.model   "llama" -> QS_TOK_SPM_SCORES (tokens, scores,
//                          token_type), "gpt2" -> QS_TOK_BPE_BYTELEVEL (tokens,
//                          merges "a b"); anything else is QS_ERR_UNSUPPORTED
//   tokenizer.ggml.pre     gpt2 only: the pre-tokenizer regexes (llama.cpp's
//                          names, see pre_table); an unknown name is an error
//   tokenizer.ggml.token_type  GGUF numbering = qs_tok_type. CONTROL tokens are
//                          special (no text in decode) and, as in llama.cpp
//                          without parse_special, not matched in the text;
//                          USER_DEFINED tokens are matched in the text first.
//   tokenizer.ggml.{bos,eos,unknown,padding}_token_id (llama defaults: 1, 2, 0),
//   add_bos_token,
//   add_eos_token, add_space_prefix (llama; default true).
#include "tokenizer/tok_gguf.h"
#include "tokenizer/tok_internal.h"

#include <stdlib.h>
#include <string.h>

// llama.cpp's pre-tokenizer names and the regexes they select.
static const char *const pre_default[] = {
    // LLAMA_VOCAB_PRE_TYPE_DEFAULT: four splits in sequence
    "[\\p{P}\\$\\+<=>\\^~\\|]+",
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
    "\\p{N}+",
    "[0-9][0-9][0-9]",
};

static const struct {
    const char *name, *as; // as: the qs_tok_pre_regex name ("default": pre_default)
    int ignore_merges;
} pre_table[] = {
    {"default", "default", 0}, {"gpt-2", "gpt2", 0}, {"gpt2", "gpt2", 0}, {"phi-2", "gpt2", 0},
    {"roberta-bpe", "gpt2", 0}, {"llama-bpe", "llama-bpe", 1}, {"llama3", "llama-bpe", 1},
    {"llama-v3", "llama-bpe", 1}, {"smaug-bpe", "llama-bpe", 0}, {"qwen2", "qwen2", 0},
};

qs_status qs_tok_gguf_pre(const char *file, const char *pre, const char *const **rx, int *n, int *ignore_merges) {
    if (!pre) pre = "default"; // llama.cpp: a missing name means "default"
    for (size_t k = 0; k < sizeof pre_table / sizeof pre_table[0]; k++) {
        if (strcmp(pre, pre_table[k].name) != 0) continue;
        *ignore_merges = pre_table[k].ignore_merges;
        if (!strcmp(pre_table[k].as, "default")) {
            *rx = pre_default;
            *n = (int)(sizeof pre_default / sizeof pre_default[0]);
        } else {
            *rx = qs_tok_pre_regex(pre_table[k].as, n);
        }
        return QS_OK;
    }
    return qs_error(QS_ERR_UNSUPPORTED,
                    "%s: tokenizer.ggml.pre \"%s\" is not a pre-tokenizer qstar knows (default, gpt-2, phi-2, roberta-bpe, llama-bpe, llama3, smaug-bpe, qwen2)",
                    file, pre);
}

void qs_tok_gguf_free(qs_tok_gguf *h) {
    free(h->pieces);
    free(h->lens);
    free(h->scores);
    free(h->types);
    free(h->merges);
    free(h->added);
    free(h->added_arena);
    memset(h, 0, sizeof *h);
}

// An optional token id key: absent -> def (if < n, else -1); 0xFFFFFFFF/-1 -> -1;
// else in [0, n).
static qs_status opt_id(const qs_gguf *g, const char *key, int n, int def, int *out) {
    *out = def < n ? def : -1;
    const qs_gguf_kv *kv = qs_gguf_find(g, key);
    if (!kv) return QS_OK;
    *out = -1;
    int64_t v = 0;
    QS_TRY(qs_gguf_get_i64(g, key, &v));
    if (v == -1 || v == 0xFFFFFFFFLL) return QS_OK;
    if (v < 0 || v >= n)
        return qs_error(QS_ERR_FORMAT, "%s: %s = %lld is outside the %d tokens", g->path, key, (long long)v, n);
    *out = (int)v;
    return QS_OK;
}

// Copies a string value into buf (NUL-terminated, truncated).
static void str_copy(char *buf, size_t cap, qs_gguf_str s) {
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    memcpy(buf, s.s, n);
    buf[n] = 0;
}

// tokens (+ scores, token_type): the vocabulary part shared by both models.
static qs_status read_vocab(const qs_gguf *g, qs_tok_gguf *h, int need_scores) {
    const qs_gguf_str *tok = NULL;
    size_t n = 0;
    QS_TRY(qs_gguf_get_arr_str(g, "tokenizer.ggml.tokens", &tok, &n));
    if (n == 0 || n > (size_t)1 << 24)
        return qs_error(QS_ERR_FORMAT, "%s: tokenizer.ggml.tokens has %zu entries (want 1 .. 16777216)", g->path, n);
    h->n = (int)n;
    h->pieces = malloc(n * sizeof *h->pieces);
    h->lens = malloc(n * sizeof *h->lens);
    if (!h->pieces || !h->lens) return qs_error(QS_ERR_NOMEM, "%s: out of memory for %zu tokens", g->path, n);
    for (size_t i = 0; i < n; i++) {
        if (tok[i].len >= (1 << 20))
            return qs_error(QS_ERR_FORMAT, "%s: tokenizer.ggml.tokens[%zu] of %zu bytes is too long", g->path, i,
                            tok[i].len);
        h->pieces[i] = tok[i].s ? tok[i].s : "";
        h->lens[i] = (int)tok[i].len;
    }
    size_t m = 0;
    if (need_scores) {
        QS_TRY(qs_gguf_get_arr_f32(g, "tokenizer.ggml.scores", &h->scores, &m));
        if (m != n)
            return qs_error(QS_ERR_FORMAT, "%s: tokenizer.ggml.scores has %zu entries for %zu tokens", g->path, m, n);
    }
    if (qs_gguf_find(g, "tokenizer.ggml.token_type")) {
        QS_TRY(qs_gguf_get_arr_i32(g, "tokenizer.ggml.token_type", &h->types, &m));
        if (m != n)
            return qs_error(QS_ERR_FORMAT, "%s: tokenizer.ggml.token_type has %zu entries for %zu tokens", g->path, m,
                            n);
        for (size_t i = 0; i < n; i++)
            if (h->types[i] < 0 || h->types[i] > 6)
                return qs_error(QS_ERR_FORMAT, "%s: tokenizer.ggml.token_type[%zu] = %d is not a token type (0-6)",
                                g->path, i, h->types[i]);
    }
    return QS_OK;
}

// gpt2: merges, pre-tokenizer, user-defined tokens as added tokens.
static qs_status read_bpe(const qs_gguf *g, qs_tok_gguf *h, qs_tok_spec *s) {
    const qs_gguf_str *mg = NULL;
    size_t n = 0;
    QS_TRY(qs_gguf_get_arr_str(g, "tokenizer.ggml.merges", &mg, &n));
    if (n > (size_t)1 << 24) return qs_error(QS_ERR_FORMAT, "%s: tokenizer.ggml.merges has %zu entries", g->path, n);
    // the spec wants NUL-terminated "a b" strings: copy them into one arena
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) bytes += mg[i].len + 1;
    h->merges = malloc(n * sizeof *h->merges + bytes + 1);
    if (!h->merges) return qs_error(QS_ERR_NOMEM, "%s: out of memory for %zu merges", g->path, n);
    char *p = (char *)(h->merges + n);
    for (size_t i = 0; i < n; i++) {
        if (mg[i].len) memcpy(p, mg[i].s, mg[i].len);
        p[mg[i].len] = 0;
        if (memchr(p, 0, mg[i].len))
            return qs_error(QS_ERR_FORMAT, "%s: tokenizer.ggml.merges[%zu] contains a NUL byte", g->path, i);
        h->merges[i] = p;
        p += mg[i].len + 1;
    }
    s->n_merges = (int)n;
    s->merges = (const char *const *)h->merges;
    qs_gguf_str pre = {0};
    if (qs_gguf_find(g, "tokenizer.ggml.pre")) QS_TRY(qs_gguf_get_str(g, "tokenizer.ggml.pre", &pre));
    str_copy(h->pre, sizeof h->pre, pre.s ? pre : (qs_gguf_str){"default", 7});
    QS_TRY(qs_tok_gguf_pre(g->path, h->pre, &s->pre_regex, &s->n_pre_regex, &s->ignore_merges));
    int n_user = 0;
    for (int i = 0; h->types && i < h->n; i++) n_user += h->types[i] == QS_TOKT_USER_DEFINED && h->lens[i] > 0;
    if (n_user) {
        h->added = calloc((size_t)n_user, sizeof *h->added);
        if (!h->added) return qs_error(QS_ERR_NOMEM, "%s: out of memory", g->path);
        for (int i = 0; i < h->n; i++)
            if (h->types[i] == QS_TOKT_USER_DEFINED && h->lens[i] > 0)
                h->added[s->n_added++] = (qs_tok_added){.content = h->pieces[i], .id = i};
        s->added = h->added;
    }
    return QS_OK;
}

// The GGUF's pieces are not NUL-terminated; added tokens need C strings.
static qs_status nul_terminate_added(const qs_gguf *g, qs_tok_gguf *h, qs_tok_spec *s) {
    if (!s->n_added) return QS_OK;
    size_t bytes = 0;
    for (int k = 0; k < s->n_added; k++) bytes += (size_t)h->lens[h->added[k].id] + 1;
    char *arena = malloc(bytes);
    if (!arena) return qs_error(QS_ERR_NOMEM, "%s: out of memory", g->path);
    h->added_arena = arena;
    for (int k = 0; k < s->n_added; k++) {
        int id = h->added[k].id;
        memcpy(arena, h->pieces[id], (size_t)h->lens[id]);
        arena[h->lens[id]] = 0;
        h->added[k].content = arena;
        arena += h->lens[id] + 1;
    }
    return QS_OK;
}

qs_status qs_tok_gguf_spec(const qs_gguf *g, qs_tok_spec *s, qs_tok_gguf *h) {
    memset(h, 0, sizeof *h);
    qs_tok_spec_init(s);
    s->name = g->path;
    if (!qs_gguf_find(g, "tokenizer.ggml.model"))
        return qs_error(QS_ERR_FORMAT, "%s: tokenizer.ggml.model is missing (the file has no tokenizer)", g->path);
    qs_gguf_str model;
    QS_TRY(qs_gguf_get_str(g, "tokenizer.ggml.model", &model));
    str_copy(h->model, sizeof h->model, model);
    int llama = !strcmp(h->model, "llama"), gpt2 = !strcmp(h->model, "gpt2");
    if ((!llama && !gpt2) || (model.len && memchr(model.s, 0, model.len)))
        return qs_error(QS_ERR_UNSUPPORTED, "%s: tokenizer.ggml.model \"%s\" is not supported (only llama and gpt2)",
                        g->path, h->model);
    QS_TRY(read_vocab(g, h, llama));
    s->kind = llama ? QS_TOK_SPM_SCORES : QS_TOK_BPE_BYTELEVEL;
    s->n_vocab = h->n;
    s->pieces = h->pieces;
    s->piece_lens = h->lens;
    s->scores = h->scores;
    s->types = h->types;
    // llama.cpp's defaults for SentencePiece vocabularies: unk 0, bos 1, eos 2
    QS_TRY(opt_id(g, "tokenizer.ggml.bos_token_id", h->n, llama ? 1 : -1, &s->bos_id));
    QS_TRY(opt_id(g, "tokenizer.ggml.eos_token_id", h->n, llama ? 2 : -1, &s->eos_id));
    QS_TRY(opt_id(g, "tokenizer.ggml.unknown_token_id", h->n, llama ? 0 : -1, &s->unk_id));
    QS_TRY(opt_id(g, "tokenizer.ggml.padding_token_id", h->n, -1, &s->pad_id));
    s->add_bos = llama;
    s->add_prefix_space = llama;
    QS_TRY(qs_gguf_opt_bool(g, "tokenizer.ggml.add_bos_token", &s->add_bos));
    QS_TRY(qs_gguf_opt_bool(g, "tokenizer.ggml.add_eos_token", &s->add_eos));
    if (llama) {
        QS_TRY(qs_gguf_opt_bool(g, "tokenizer.ggml.add_space_prefix", &s->add_prefix_space));
        // byte fallback: llama.cpp uses <0xXX> pieces whenever they exist
        s->byte_fallback = 1;
        return QS_OK;
    }
    QS_TRY(read_bpe(g, h, s));
    return nul_terminate_added(g, h, s);
}

qs_status qs_tokenizer_from_gguf(qs_tokenizer **out, const qs_gguf *g) {
    if (!out || !g) return qs_error(QS_ERR_ARG, "qs_tokenizer_from_gguf: NULL argument");
    *out = NULL;
    qs_tok_spec s;
    qs_tok_gguf h;
    qs_status st = qs_tok_gguf_spec(g, &s, &h);
    if (st == QS_OK) st = qs_tokenizer_from_spec(out, &s);
    qs_tok_gguf_free(&h);
    return st;
}

qs_status qs_tokenizer_parse_gguf(qs_tokenizer **out, const unsigned char *buf, size_t n, const char *name) {
    if (!out) return qs_error(QS_ERR_ARG, "qs_tokenizer_parse_gguf: NULL argument");
    *out = NULL;
    qs_gguf *g = NULL;
    QS_TRY(qs_gguf_parse(buf, n, name ? name : "gguf", &g));
    qs_status st = qs_tokenizer_from_gguf(out, g);
    qs_gguf_free(g);
    return st;
}

qs_status qs_tokenizer_open_gguf(qs_tokenizer **out, const char *path) {
    if (!out || !path) return qs_error(QS_ERR_ARG, "qs_tokenizer_open_gguf: NULL argument");
    *out = NULL;
    qs_gguf *g = NULL;
    QS_TRY(qs_gguf_open(path, &g));
    qs_status st = qs_tokenizer_from_gguf(out, g);
    qs_gguf_free(g);
    return st;
}

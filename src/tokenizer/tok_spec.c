// tok_spec.c: qs_tok_spec -> qs_tokenizer (the common vocabulary part; the
// BPE model is built by tok_bpe.c), and the pre-tokenizer regexes llama.cpp
// selects by tokenizer.ggml.pre name.
#include "tokenizer/tok_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// The GPT-2 split (Hugging Face ByteLevel use_regex), Llama-3 and Qwen2.
static const char *const pre_gpt2[] = {
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
};
static const char *const pre_llama3[] = {
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
};
static const char *const pre_qwen2[] = {
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
};

const char *const *qs_tok_pre_regex(const char *pre_name, int *n) {
    if (n) *n = 1;
    if (pre_name && (!strcmp(pre_name, "llama-bpe") || !strcmp(pre_name, "llama3") ||
                     !strcmp(pre_name, "llama-v3") || !strcmp(pre_name, "smaug-bpe")))
        return pre_llama3;
    if (pre_name && !strcmp(pre_name, "qwen2")) return pre_qwen2;
    return pre_gpt2;
}

void qs_tok_spec_init(qs_tok_spec *s) {
    memset(s, 0, sizeof *s);
    s->bos_id = s->eos_id = s->unk_id = s->pad_id = -1;
}

static const char *spec_name(const qs_tok_spec *s) { return s->name ? s->name : "tokenizer"; }

static int piece_len(const qs_tok_spec *s, int i) {
    return s->piece_lens ? s->piece_lens[i] : (s->pieces[i] ? (int)strnlen(s->pieces[i], 1 << 20) : -1);
}

// Validates counts, ids and pieces of the vocabulary.
static qs_status check_spec(const qs_tok_spec *s) {
    const char *nm = spec_name(s);
    if (s->kind != QS_TOK_BPE_BYTELEVEL && s->kind != QS_TOK_BPE_SPM && s->kind != QS_TOK_SPM_SCORES)
        return qs_error(QS_ERR_UNSUPPORTED, "%s: unknown tokenizer kind %d", nm, (int)s->kind);
    if (s->n_vocab < 1 || !s->pieces) return qs_error(QS_ERR_FORMAT, "%s: empty vocabulary", nm);
    if (s->kind == QS_TOK_SPM_SCORES && !s->scores)
        return qs_error(QS_ERR_FORMAT, "%s: score-based tokenizer without scores", nm);
    for (int i = 0; i < s->n_vocab; i++) {
        int len = piece_len(s, i);
        if (!s->pieces[i] || len < 0 || len >= (1 << 20))
            return qs_error(QS_ERR_FORMAT, "%s: vocabulary piece %d is missing or too long", nm, i);
        if (memchr(s->pieces[i], 0, (size_t)len))
            return qs_error(QS_ERR_FORMAT, "%s: vocabulary piece %d contains a NUL byte", nm, i);
        if (s->scores && !isfinite(s->scores[i]))
            return qs_error(QS_ERR_FORMAT, "%s: score of token %d is not finite", nm, i);
    }
    const int ids[4] = {s->bos_id, s->eos_id, s->unk_id, s->pad_id};
    const char *what[4] = {"bos", "eos", "unk", "pad"};
    for (int k = 0; k < 4; k++)
        if (ids[k] < -1 || ids[k] >= s->n_vocab)
            return qs_error(QS_ERR_FORMAT, "%s: %s token id %d outside the vocabulary [0, %d)", nm, what[k], ids[k],
                            s->n_vocab);
    for (int k = 0; k < s->n_added; k++)
        if (!s->added[k].content || s->added[k].id < 0 || s->added[k].id >= s->n_vocab)
            return qs_error(QS_ERR_FORMAT, "%s: added_tokens[%d]: id %d outside the vocabulary [0, %d)", nm, k,
                            s->added[k].id, s->n_vocab);
    return QS_OK;
}

// Length of `p` after replacing every U+2581 by ' ' (in place into dst if non-NULL).
static int metaspace_to_space(const char *p, int len, char *dst) {
    int m = 0;
    for (int i = 0; i < len; i++) {
        if (i + 2 < len && (unsigned char)p[i] == 0xE2 && (unsigned char)p[i + 1] == 0x96 &&
            (unsigned char)p[i + 2] == 0x81) {
            if (dst) dst[m] = ' ';
            m++;
            i += 2;
        } else {
            if (dst) dst[m] = p[i];
            m++;
        }
    }
    return m;
}

static int hexv(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

// Copies the vocabulary (SPM_SCORES: U+2581 -> ' ', as llama2.c files store it).
static qs_status copy_vocab(qs_tokenizer *t, const qs_tok_spec *s) {
    int n = s->n_vocab, spm = s->kind == QS_TOK_SPM_SCORES;
    size_t bytes = 0;
    for (int i = 0; i < n; i++) bytes += (size_t)piece_len(s, i) + 1;
    t->vocab_size = n;
    t->pieces = qs_malloc((size_t)n * sizeof *t->pieces, "tokenizer pieces");
    t->lens = qs_malloc((size_t)n * sizeof *t->lens, "tokenizer lengths");
    t->arena = qs_malloc(bytes, "tokenizer arena");
    t->sorted = qs_malloc((size_t)n * sizeof *t->sorted, "tokenizer index");
    t->special = qs_calloc((size_t)n, 1, "tokenizer special flags");
    if (s->scores) t->scores = qs_malloc((size_t)n * sizeof *t->scores, "tokenizer scores");
    if (!t->pieces || !t->lens || !t->arena || !t->sorted || !t->special || (s->scores && !t->scores))
        return QS_ERR_NOMEM;
    char *p = t->arena;
    for (int i = 0; i < n; i++) {
        int len = piece_len(s, i);
        int m = spm ? metaspace_to_space(s->pieces[i], len, p) : (memcpy(p, s->pieces[i], (size_t)len), len);
        p[m] = 0;
        t->pieces[i] = p;
        t->lens[i] = m;
        t->longest = QS_MAX(t->longest, m);
        t->sorted[i] = (qs_tok_index){.str = p, .len = m, .id = i};
        if (s->scores) t->scores[i] = s->scores[i];
        int type = s->types ? s->types[i] : QS_TOKT_NORMAL;
        if (type == QS_TOKT_CONTROL) t->special[i] = 1;
        // <0xXX> byte tokens (type BYTE, or any type when the piece has that form)
        if (m == 6 && !memcmp(p, "<0x", 3) && p[5] == '>' && hexv(p[3]) >= 0 && hexv(p[4]) >= 0) {
            int b = hexv(p[3]) * 16 + hexv(p[4]);
            if (t->byte_id[b] < 0) t->byte_id[b] = i;
        }
        p += m + 1;
    }
    qs_tok_index_sort(t->sorted, n);
    for (int b = 0; b < 256; b++) {
        t->byte_pieces[b * 2] = (char)b;
        t->byte_pieces[b * 2 + 1] = '\0';
    }
    for (int k = 0; k < s->n_added; k++)
        if (s->added[k].special) t->special[s->added[k].id] = 1;
    return QS_OK;
}

// Longest first, then by id: the first match at a position is the longest.
static int cmp_user_len(const void *a, const void *b) {
    const qs_tok_index *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}


// Whether encoding may cut the text before each space that follows a
// non-space: true when no piece that merging can produce or start from has a
// space after a non-space (SentencePiece vocabularies: spaces only lead a
// piece), " " itself is a normal piece (so no unk run crosses a cut), and no
// user-defined piece holds a space.
static void sp_split_check(qs_tokenizer *t) {
    int sp = qs_tok_lookup(t, " ", 1);
    // (UNUSED pieces: their resegmentation depends on the global merge order)
    t->sp_split = sp >= 0 && t->sp_class[sp] == QS_SPC_NORMAL && t->n_sp_unused == 0;
    for (int i = 0; t->sp_split && i < t->vocab_size; i++) {
        if (t->sp_class[i] == QS_SPC_NOMERGE) continue;
        const char *p = t->pieces[i];
        int k = 0;
        while (k < t->lens[i] && p[k] == ' ') k++;
        if (k < t->lens[i] && memchr(p + k, ' ', (size_t)(t->lens[i] - k))) t->sp_split = 0;
    }
}

// SentencePiece classes of the pieces of an SPM_SCORES spec (see tok_spec.h).
static qs_status sp_classes(qs_tokenizer *t, const qs_tok_spec *s) {
    QS_TRY(qs_tok_hash_build(t));
    t->sp_mode = 1;
    t->sp_remove_ws = s->remove_extra_whitespaces;
    if (s->precompiled_charsmap_len > 0) {
        QS_TRY(qs_tok_charsmap_check(s->precompiled_charsmap, s->precompiled_charsmap_len, spec_name(s)));
        t->sp_charsmap = qs_malloc(s->precompiled_charsmap_len, "tokenizer charsmap");
        if (!t->sp_charsmap) return QS_ERR_NOMEM;
        memcpy(t->sp_charsmap, s->precompiled_charsmap, s->precompiled_charsmap_len);
        t->sp_charsmap_len = s->precompiled_charsmap_len;
    }
    t->sp_class = qs_calloc((size_t)t->vocab_size, 1, "tokenizer piece classes");
    if (!t->sp_class) return QS_ERR_NOMEM;
    int n_user = 0;
    for (int i = 0; i < t->vocab_size; i++) {
        int ty = s->types ? s->types[i] : QS_TOKT_NORMAL;
        // typed vocabularies (tokenizer.model, GGUF) write spaces as U+2581: a piece
        // with a real space can never match there (llama2.c-style specs use ' ')
        if (s->types && memchr(s->pieces[i], ' ', (size_t)piece_len(s, i))) t->sp_class[i] = QS_SPC_NOMERGE;
        else if (ty == QS_TOKT_USER_DEFINED && t->lens[i] > 0) t->sp_class[i] = QS_SPC_USER, n_user++;
        else if (ty == QS_TOKT_UNUSED) t->sp_class[i] = QS_SPC_UNUSED, t->n_sp_unused++;
        else if (ty == QS_TOKT_CONTROL || ty == QS_TOKT_UNKNOWN || ty == QS_TOKT_BYTE)
            t->sp_class[i] = QS_SPC_NOMERGE;
    }
    if (t->n_sp_unused) {
        t->sp_unused_slot = qs_malloc((size_t)t->vocab_size * sizeof(int), "tokenizer unused pieces");
        if (!t->sp_unused_slot) return QS_ERR_NOMEM;
        for (int i = 0, k = 0; i < t->vocab_size; i++)
            t->sp_unused_slot[i] = t->sp_class[i] == QS_SPC_UNUSED ? k++ : -1;
    }
    sp_split_check(t);
    if (n_user == 0) return QS_OK;
    qs_tok_index *idx = qs_malloc((size_t)n_user * sizeof *idx, "tokenizer user-defined pieces");
    t->sp_user = qs_malloc((size_t)n_user * sizeof *t->sp_user, "tokenizer user-defined pieces");
    if (!idx || !t->sp_user) { free(idx); return QS_ERR_NOMEM; }
    for (int i = 0; i < t->vocab_size; i++)
        if (t->sp_class[i] == QS_SPC_USER) idx[t->n_sp_user++] = (qs_tok_index){.str = t->pieces[i], .len = t->lens[i], .id = i};
    qsort(idx, (size_t)n_user, sizeof *idx, cmp_user_len);
    for (int k = 0; k < n_user; k++) t->sp_user[k] = idx[k].id;
    free(idx);
    return QS_OK;
}

qs_status qs_tokenizer_from_spec(qs_tokenizer **out, const qs_tok_spec *s) {
    if (!out || !s) return qs_error(QS_ERR_ARG, "qs_tokenizer_from_spec: NULL argument");
    *out = NULL;
    QS_TRY(check_spec(s));
    qs_tokenizer *t = qs_calloc(1, sizeof *t, "tokenizer");
    if (!t) return QS_ERR_NOMEM;
    t->kind = s->kind;
    t->bos_id = s->bos_id;
    t->eos_id = s->eos_id;
    t->unk_id = s->unk_id;
    t->pad_id = s->pad_id;
    t->add_bos = s->add_bos;
    t->add_eos = s->add_eos;
    t->add_prefix_space = s->add_prefix_space;
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    qs_status st = copy_vocab(t, s);
    if (st == QS_OK && s->kind == QS_TOK_SPM_SCORES) {
        t->max_token_length = QS_MAX(t->longest, 1);
        t->strip_after_bos = s->add_prefix_space;
        st = sp_classes(t, s);
    } else if (st == QS_OK) {
        st = qs_tok_bpe_build(t, s);
    }
    if (st != QS_OK) {
        qs_tokenizer_free(t);
        return st == QS_ERR_NOMEM ? qs_error_prefix(st, "%s", spec_name(s)) : st;
    }
    *out = t;
    return QS_OK;
}

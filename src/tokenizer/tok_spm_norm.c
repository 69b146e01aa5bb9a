// tok_spm_norm.c: SentencePiece's normalizer (normalizer.cc) for the
// score-based tokenizers in SentencePiece mode: the precompiled_charsmap
// (nmt_nfkc, nfkc, ... rules compiled into a darts-clone double-array trie
// over UTF-8 bytes plus a table of NUL-terminated replacement strings),
// remove_extra_whitespaces, the dummy prefix and whitespace escaping.
//
// Blob layout: u32 (little-endian) trie size in bytes, the trie (u32 units),
// then the replacement strings. A unit packs: bit 8 has_leaf, bits 0-7 (and
// bit 31) the label, bits 10-31 (shifted by 8 more if bit 9) the offset; a
// leaf's value (bits 0-30) is the replacement's byte offset in the strings.
// Every unit index and value is checked before use.
//
// The normalized text uses ' ' for SentencePiece's U+2581 (escaped spaces and
// U+2581 characters alike), as the vocabulary does.
#include "tokenizer/tok_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

qs_status qs_tok_charsmap_check(const unsigned char *cm, size_t n, const char *name) {
    if (n < 4) return qs_error(QS_ERR_FORMAT, "%s: normalizer_spec.precompiled_charsmap of %zu bytes is truncated", name, n);
    uint32_t trie = rd32(cm);
    if (trie < 4 || trie % 4 != 0 || trie > n - 4)
        return qs_error(QS_ERR_FORMAT, "%s: normalizer_spec.precompiled_charsmap: trie size %u does not fit its %zu bytes",
                        name, trie, n);
    if (n - 4 - trie == 0 || cm[n - 1] != 0)
        return qs_error(QS_ERR_FORMAT, "%s: normalizer_spec.precompiled_charsmap: replacement strings are not NUL-terminated",
                        name);
    return QS_OK;
}

// Longest rule of the charsmap matching a prefix of s[0..n): its length (0:
// none) and replacement (*rep, NUL-terminated inside the blob).
static size_t charsmap_match(const qs_tokenizer *t, const char *s, size_t n, const char **rep) {
    const unsigned char *cm = t->sp_charsmap;
    size_t n_units = rd32(cm) / 4, n_str = t->sp_charsmap_len - 4 - n_units * 4;
    const unsigned char *units = cm + 4, *strs = units + n_units * 4;
#define UNIT(i) rd32(units + (size_t)(i) * 4)
#define OFFSET(u) (((u) >> 10) << (((u) & (1u << 9)) >> 6))
    size_t best = 0, pos = OFFSET(UNIT(0));
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        pos ^= c;
        if (pos >= n_units) break;
        uint32_t u = UNIT(pos);
        if ((u & (0x80000000u | 0xFFu)) != c) break;
        pos ^= OFFSET(u);
        if (pos >= n_units) break;
        if ((u >> 8) & 1) {
            uint32_t v = UNIT(pos) & 0x7FFFFFFFu;
            if (v < n_str) { best = i + 1; *rep = (const char *)strs + v; }
        }
    }
#undef UNIT
#undef OFFSET
    return best;
}

// The id of the longest user-defined piece at s[0..n), or -1.
int qs_tok_sp_user_match(const qs_tokenizer *t, const char *s, size_t n) {
    for (int k = 0; k < t->n_sp_user; k++) {
        int id = t->sp_user[k];
        if ((size_t)t->lens[id] <= n && !memcmp(s, t->pieces[id], (size_t)t->lens[id])) return id;
    }
    return -1;
}

// The normalized form (*p, *pl bytes) of the next unit of s[0..n) and the
// bytes it consumes: a user-defined piece as is, a charsmap rule, or one
// character as is (s is valid UTF-8).
static size_t norm_prefix(const qs_tokenizer *t, const char *s, size_t n, const char **p, size_t *pl) {
    int id = t->n_sp_user ? qs_tok_sp_user_match(t, s, n) : -1;
    if (id >= 0) {
        *p = s;
        *pl = (size_t)t->lens[id];
        return *pl;
    }
    size_t m = t->sp_charsmap ? charsmap_match(t, s, n, p) : 0;
    if (m > 0) {
        *pl = strlen(*p);
        return m;
    }
    unsigned char c = (unsigned char)s[0];
    m = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    *p = s;
    *pl = m <= n ? m : n;
    return *pl;
}

typedef struct {
    char *p;
    size_t n, cap;
} nbuf;

static int nb_put(nbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap * 2 + n + 16;
        char *q = realloc(b->p, cap);
        if (!q) return 0;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    return 1;
}

// Appends a normalized unit, spaces and U+2581 both as ' '.
static int put_escaped(nbuf *b, const char *p, size_t pl) {
    for (size_t k = 0; k < pl; k++) {
        if (k + 2 < pl && (unsigned char)p[k] == 0xE2 && (unsigned char)p[k + 1] == 0x96 &&
            (unsigned char)p[k + 2] == 0x81) {
            if (!nb_put(b, " ", 1)) return 0;
            k += 2;
        } else if (!nb_put(b, p + k, 1)) {
            return 0;
        }
    }
    return 1;
}

qs_status qs_tok_sp_normalize(const qs_tokenizer *t, const char *s, size_t len, char **out, size_t *n_out) {
    nbuf b = {.p = malloc(len + 16), .n = 0, .cap = len + 16};
    if (!b.p) return qs_error(QS_ERR_NOMEM, "encode: out of memory normalizing %zu bytes", len);
    const char *p;
    size_t pl, i = 0;
    int rm = t->sp_remove_ws, ok = 1;
    // leading (normalized) spaces
    while (rm && i < len) {
        size_t c = norm_prefix(t, s + i, len - i, &p, &pl);
        if (!(pl == 1 && p[0] == ' ')) break;
        i += c;
    }
    if (i < len && t->add_prefix_space) ok = nb_put(&b, " ", 1);
    int prev_space = rm;
    while (ok && i < len) {
        i += norm_prefix(t, s + i, len - i, &p, &pl);
        if (prev_space)
            while (pl > 0 && p[0] == ' ') p++, pl--;
        if (pl > 0) {
            ok = put_escaped(&b, p, pl);
            prev_space = p[pl - 1] == ' ';
        }
        if (!rm) prev_space = 0;
    }
    if (rm)
        while (b.n > 0 && b.p[b.n - 1] == ' ') b.n--; // trailing U+2581 (spaces and U+2581 characters)
    if (!ok) {
        free(b.p);
        return qs_error(QS_ERR_NOMEM, "encode: out of memory normalizing %zu bytes", len);
    }
    b.p[b.n] = 0;
    *out = b.p;
    *n_out = b.n;
    return QS_OK;
}

// tokenizer.c: loading, saving, lookup and decoding of llama2.c tokenizers.
// Encoding lives in encode.c.
//
// File format (little-endian, as written by llama2.c's tokenizer.py):
//   int32 max_token_length
//   then, for each of the vocab_size tokens:
//     float32 score, int32 len, len bytes of the piece (no NUL terminator)
// The file does not record vocab_size; the model supplies it.
//
// Unlike llama2.c we validate everything while loading, so that encode and
// decode can trust the vocabulary: lengths in range, pieces without NUL bytes
// (llama2.c treats them as C strings), finite scores, no truncation and no
// trailing bytes.
#include "tokenizer/tok_internal.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QS_TOK_MAX_LEN_LIMIT 65536 // sanity bound on max_token_length

// ----------------------------------------------------------------------------
// little-endian helpers

static int32_t rd_i32(const unsigned char *p) {
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    int32_t v;
    memcpy(&v, &u, 4);
    return v;
}

static float rd_f32(const unsigned char *p) {
    int32_t bits = rd_i32(p);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static void wr_i32(unsigned char *p, int32_t v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    p[0] = (unsigned char)u;
    p[1] = (unsigned char)(u >> 8);
    p[2] = (unsigned char)(u >> 16);
    p[3] = (unsigned char)(u >> 24);
}

static void wr_f32(unsigned char *p, float f) {
    int32_t bits;
    memcpy(&bits, &f, 4); // keeps the exact bits (e.g. -0.0) for byte-identical saves
    wr_i32(p, bits);
}

// ----------------------------------------------------------------------------
// loading

// Validates token `i` at offset *off of buf[size], sets its length and
// advances *off past it.
static qs_status check_token(const unsigned char *buf, size_t size, size_t *off, int i, int mtl,
                             const char *path, int *len_out) {
    size_t left = size - *off;
    if (left < 8)
        return qs_error(QS_ERR_FORMAT, "%s: truncated at token %d: need 8 bytes for its score and length, %zu left",
                        path, i, left);
    float score = rd_f32(buf + *off);
    int32_t len = rd_i32(buf + *off + 4);
    left -= 8;
    if (!isfinite(score)) return qs_error(QS_ERR_FORMAT, "%s: token %d: score is not finite", path, i);
    if (len < 0) return qs_error(QS_ERR_FORMAT, "%s: token %d: negative piece length %d", path, i, (int)len);
    if (len > mtl)
        return qs_error(QS_ERR_FORMAT, "%s: token %d: piece length %d exceeds max_token_length %d", path, i,
                        (int)len, mtl);
    if ((size_t)len > left)
        return qs_error(QS_ERR_FORMAT, "%s: truncated at token %d: piece of %d bytes but only %zu bytes left",
                        path, i, (int)len, left);
    if (memchr(buf + *off + 8, 0, (size_t)len))
        return qs_error(QS_ERR_FORMAT, "%s: token %d: piece contains a NUL byte", path, i);
    *off += 8 + (size_t)len;
    *len_out = len;
    return QS_OK;
}

// First pass: validates the header and every token, counting tokens (all of
// them when vocab_size == 0) and the bytes of all pieces.
static qs_status scan(const unsigned char *buf, size_t size, const char *path, int vocab_size, int *count,
                      size_t *bytes, int *longest) {
    if (size < 4)
        return qs_error(QS_ERR_FORMAT, "%s: %zu bytes is too short for a tokenizer header", path, size);
    int mtl = rd_i32(buf);
    if (mtl < 1 || mtl > QS_TOK_MAX_LEN_LIMIT)
        return qs_error(QS_ERR_FORMAT, "%s: max_token_length %d out of range [1, %d]", path, mtl,
                        QS_TOK_MAX_LEN_LIMIT);
    size_t off = 4;
    int n = 0;
    *bytes = 0;
    *longest = 0;
    while (vocab_size > 0 ? n < vocab_size : off < size) {
        if (n == INT_MAX) return qs_error(QS_ERR_FORMAT, "%s: too many tokens", path);
        int len = 0;
        QS_TRY(check_token(buf, size, &off, n, mtl, path, &len));
        *bytes += (size_t)len;
        *longest = QS_MAX(*longest, len);
        n++;
    }
    if (off < size)
        return qs_error(QS_ERR_FORMAT, "%s: %zu trailing bytes after %d tokens (wrong vocab_size?)", path,
                        size - off, n);
    if (n < 3)
        return qs_error(QS_ERR_FORMAT, "%s: only %d tokens; a llama2.c vocabulary starts with <unk>, <s>, </s>",
                        path, n);
    *count = n;
    return QS_OK;
}

// Orders pieces by their bytes (memcmp, shorter first on a common prefix:
// the same order as strcmp for NUL-free pieces), then by id.
static int compare_index(const void *a, const void *b) {
    const qs_tok_index *x = a, *y = b;
    int c = memcmp(x->str, y->str, (size_t)QS_MIN(x->len, y->len));
    if (c != 0) return c;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

// Second pass: copies the already validated tokens into t.
static qs_status fill(qs_tokenizer *t, const unsigned char *buf, int n, size_t bytes) {
    t->vocab_size = n;
    t->max_token_length = rd_i32(buf);
    t->pieces = qs_malloc((size_t)n * sizeof *t->pieces, "tokenizer pieces");
    t->lens = qs_malloc((size_t)n * sizeof *t->lens, "tokenizer lengths");
    t->scores = qs_malloc((size_t)n * sizeof *t->scores, "tokenizer scores");
    t->arena = qs_malloc(bytes + (size_t)n, "tokenizer arena");
    t->sorted = qs_malloc((size_t)n * sizeof *t->sorted, "tokenizer index");
    if (!t->pieces || !t->lens || !t->scores || !t->arena || !t->sorted) return QS_ERR_NOMEM;
    size_t off = 4;
    char *p = t->arena;
    for (int i = 0; i < n; i++) {
        t->scores[i] = rd_f32(buf + off);
        t->lens[i] = rd_i32(buf + off + 4);
        memcpy(p, buf + off + 8, (size_t)t->lens[i]);
        p[t->lens[i]] = '\0';
        t->pieces[i] = p;
        t->sorted[i] = (qs_tok_index){.str = p, .len = t->lens[i], .id = i};
        p += t->lens[i] + 1;
        off += 8 + (size_t)t->lens[i];
    }
    qsort(t->sorted, (size_t)n, sizeof *t->sorted, compare_index);
    for (int b = 0; b < 256; b++) {
        t->byte_pieces[b * 2] = (char)b;
        t->byte_pieces[b * 2 + 1] = '\0';
    }
    return QS_OK;
}

// Sets the llama2.c conventions: BOS 1, EOS 2, <0xXX> = byte + 3.
static void llama2c_defaults(qs_tokenizer *t) {
    t->kind = QS_TOK_SPM_SCORES;
    t->llama2c = 1;
    t->bos_id = QS_TOK_BOS;
    t->eos_id = QS_TOK_EOS;
    t->unk_id = 0;
    t->pad_id = -1;
    t->add_bos = 1;
    t->add_eos = 0;
    t->add_prefix_space = 1;
    t->strip_after_bos = 1;
    for (int b = 0; b < 256; b++) t->byte_id[b] = QS_TOK_BYTE0 + b < t->vocab_size ? QS_TOK_BYTE0 + b : -1;
}

qs_status qs_tokenizer_parse_llama2c(qs_tokenizer **out, const unsigned char *buf, size_t size, int vocab_size,
                                     const char *name) {
    if (!name) name = "tokenizer";
    if (!out || (!buf && size > 0)) return qs_error(QS_ERR_ARG, "qs_tokenizer_parse_llama2c: NULL argument");
    *out = NULL;
    if (vocab_size < 0) return qs_error(QS_ERR_ARG, "%s: negative vocab_size %d", name, vocab_size);
    size_t bytes = 0;
    int n = 0, longest = 0;
    QS_TRY(scan(buf, size, name, vocab_size, &n, &bytes, &longest));
    qs_tokenizer *t = qs_calloc(1, sizeof *t, "tokenizer");
    if (!t) return QS_ERR_NOMEM;
    t->longest = longest;
    qs_status st = fill(t, buf, n, bytes);
    if (st != QS_OK) {
        qs_tokenizer_free(t);
        return qs_error_prefix(st, "%s", name);
    }
    llama2c_defaults(t);
    *out = t;
    return QS_OK;
}

qs_status qs_tokenizer_load(qs_tokenizer **out, const char *path, int vocab_size) {
    if (!out || !path) return qs_error(QS_ERR_ARG, "qs_tokenizer_load: NULL argument");
    *out = NULL;
    if (vocab_size < 0) return qs_error(QS_ERR_ARG, "%s: negative vocab_size %d", path, vocab_size);
    unsigned char *buf = NULL;
    size_t size = 0;
    QS_TRY(qs_tok_read_file(path, "tokenizer", &buf, &size));
    qs_status st = qs_tokenizer_parse_llama2c(out, buf, size, vocab_size, path);
    free(buf);
    return st;
}

void qs_tokenizer_free(qs_tokenizer *t) {
    if (!t) return;
    free(t->pieces);
    free(t->lens);
    free(t->scores);
    free(t->arena);
    free(t->sorted);
    free(t->special);
    free(t->dec);
    free(t->dec_len);
    free(t->dec_arena);
    free(t->dec_sorted);
    free(t->sp_class);
    free(t->sp_user);
    free(t->sp_unused_slot);
    free(t->hash);
    free(t->sp_charsmap);
    qs_tok_bpe_free(t->bpe);
    free(t);
}

// ----------------------------------------------------------------------------
// saving

qs_status qs_tokenizer_save(const qs_tokenizer *t, const char *path) {
    if (!t || !path) return qs_error(QS_ERR_ARG, "qs_tokenizer_save: NULL argument");
    if (t->kind != QS_TOK_SPM_SCORES || !t->scores)
        return qs_error(QS_ERR_UNSUPPORTED, "%s: only score-based tokenizers can be saved as llama2.c files (this one is %s)",
                        path, qs_tokenizer_kind_name(t));
    // build the whole file in memory, then write it at once
    size_t size = 4;
    for (int i = 0; i < t->vocab_size; i++) size += 8 + (size_t)t->lens[i];
    unsigned char *buf = qs_malloc(size, "tokenizer file");
    if (!buf) return qs_error_prefix(QS_ERR_NOMEM, "%s", path);
    wr_i32(buf, t->max_token_length);
    size_t off = 4;
    for (int i = 0; i < t->vocab_size; i++) {
        wr_f32(buf + off, t->scores[i]);
        wr_i32(buf + off + 4, t->lens[i]);
        memcpy(buf + off + 8, t->pieces[i], (size_t)t->lens[i]);
        off += 8 + (size_t)t->lens[i];
    }
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(buf);
        return qs_error(QS_ERR_IO, "%s: cannot open for writing: %s", path, strerror(errno));
    }
    size_t wrote = fwrite(buf, 1, size, f);
    int err = wrote != size ? errno : 0;
    free(buf);
    if (fclose(f) != 0 && !err) err = errno ? errno : EIO;
    if (wrote != size || err)
        return qs_error(QS_ERR_IO, "%s: error writing tokenizer: %s", path, strerror(err ? err : EIO));
    return QS_OK;
}

// ----------------------------------------------------------------------------
// queries

int qs_tokenizer_vocab_size(const qs_tokenizer *t) { return t ? t->vocab_size : 0; }
int qs_tokenizer_bos(const qs_tokenizer *t) { return t ? t->bos_id : -1; }
int qs_tokenizer_eos(const qs_tokenizer *t) { return t ? t->eos_id : -1; }
int qs_tokenizer_add_bos(const qs_tokenizer *t) { return t && t->bos_id >= 0 ? t->add_bos : 0; }
int qs_tokenizer_add_eos(const qs_tokenizer *t) { return t && t->eos_id >= 0 ? t->add_eos : 0; }

const char *qs_tokenizer_kind_name(const qs_tokenizer *t) {
    if (!t) return "none";
    switch (t->kind) {
    case QS_TOK_SPM_SCORES: return t->llama2c ? "llama2c" : "spm";
    case QS_TOK_BPE_BYTELEVEL: return "bpe-bytelevel";
    case QS_TOK_BPE_SPM: return "bpe-spm";
    default: return "none";
    }
}

int qs_tokenizer_is_special(const qs_tokenizer *t, int token) {
    if (!t || token < 0 || token >= t->vocab_size) return 0;
    if (token == t->bos_id || token == t->eos_id) return 1;
    return t->special ? t->special[token] : 0;
}

void qs_tok_index_sort(qs_tok_index *idx, int n) { qsort(idx, (size_t)n, sizeof *idx, compare_index); }

int qs_tok_index_find(const qs_tok_index *idx, int n, const char *str, int len) {
    // lower bound of (str, len, id = -1) in the sorted index, then an equality check
    qs_tok_index key = {.str = str, .len = len, .id = -1};
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (compare_index(&idx[mid], &key) < 0) lo = mid + 1;
        else hi = mid;
    }
    if (lo < n && idx[lo].len == len && memcmp(idx[lo].str, str, (size_t)len) == 0) return idx[lo].id;
    return -1;
}

static unsigned piece_hash(const char *s, int len) {
    unsigned h = 2166136261u; // FNV-1a
    for (int i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

qs_status qs_tok_hash_build(qs_tokenizer *t) {
    unsigned cap = 1024;
    while (cap < 2u * (unsigned)t->vocab_size && cap < (1u << 30)) cap *= 2;
    int *h = qs_malloc((size_t)cap * sizeof *h, "tokenizer hash");
    if (!h) return QS_ERR_NOMEM;
    for (unsigned k = 0; k < cap; k++) h[k] = -1;
    for (int i = 0; i < t->vocab_size; i++) {
        unsigned k = piece_hash(t->pieces[i], t->lens[i]) & (cap - 1);
        int dup = 0;
        for (; h[k] >= 0; k = (k + 1) & (cap - 1))
            if (t->lens[h[k]] == t->lens[i] && !memcmp(t->pieces[h[k]], t->pieces[i], (size_t)t->lens[i])) { dup = 1; break; }
        if (!dup) h[k] = i;
    }
    free(t->hash);
    free(t->sp_charsmap);
    t->hash = h;
    t->hash_mask = cap - 1;
    return QS_OK;
}

int qs_tok_lookup(const qs_tokenizer *t, const char *str, int len) {
    if (!t->hash) return qs_tok_index_find(t->sorted, t->vocab_size, str, len);
    for (unsigned k = piece_hash(str, len) & t->hash_mask; t->hash[k] >= 0; k = (k + 1) & t->hash_mask) {
        int id = t->hash[k];
        if (t->lens[id] == len && !memcmp(t->pieces[id], str, (size_t)len)) return id;
    }
    return -1;
}

int qs_tokenizer_find(const qs_tokenizer *t, const char *piece) {
    if (!t || !piece) return -1;
    size_t len = strlen(piece);
    if (len > 0x7fffffff) return -1;
    int id = len <= (size_t)t->longest ? qs_tok_lookup(t, piece, (int)len) : -1;
    if (id < 0 && t->dec_sorted) id = qs_tok_index_find(t->dec_sorted, t->vocab_size, piece, (int)len);
    return id;
}

const char *qs_tokenizer_raw_piece(const qs_tokenizer *t, int token) {
    if (!t || token < 0 || token >= t->vocab_size) return NULL;
    return t->pieces[token];
}

// ----------------------------------------------------------------------------
// decoding

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// The byte value of a piece of the exact form "<0xXX>", or -1.
static int byte_token_value(const char *p) {
    if (strncmp(p, "<0x", 3) != 0) return -1;
    int hi = hex_digit(p[3]); // a NUL gives -1, so we never read past the end
    if (hi < 0) return -1;
    int lo = hex_digit(p[4]);
    if (lo < 0 || p[5] != '>' || p[6] != '\0') return -1;
    return hi * 16 + lo;
}

const char *qs_tokenizer_piece(const qs_tokenizer *t, int prev, int token) {
    if (!t || token < 0 || token >= t->vocab_size) return "";
    if (t->dec) {
        // BPE kinds: the decoder's text, precomputed per token
        const char *d = t->dec[token];
        if (t->strip_after_bos && (prev < 0 || prev == t->bos_id) && d[0] == ' ') d++;
        return d;
    }
    const char *piece = t->pieces[token];
    // after BOS, sentencepiece strips the leading space (llama2.c PR #89)
    // (SentencePiece models: also at the start of a decode)
    if ((prev == t->bos_id || (prev < 0 && t->sp_mode)) && t->strip_after_bos && piece[0] == ' ') piece++;
    // byte-fallback tokens like "<0x0A>" stand for the raw byte
    int b = byte_token_value(piece);
    if (b >= 0) piece = t->byte_pieces + b * 2;
    return piece;
}

qs_status qs_tokenizer_decode(const qs_tokenizer *t, const int *tokens, int n, char *out, size_t cap) {
    if (!t || (!tokens && n > 0) || !out || n < 0 || cap == 0)
        return qs_error(QS_ERR_ARG, "qs_tokenizer_decode: bad arguments");
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        int tok = tokens[i];
        if (tok < 0 || tok >= t->vocab_size)
            return qs_error(QS_ERR_ARG, "decode: token %d at position %d is outside the vocabulary [0, %d)", tok,
                            i, t->vocab_size);
        // BOS and EOS are control tokens: they mark the text, they are not text
        if (qs_tokenizer_is_special(t, tok)) continue;
        const char *piece = qs_tokenizer_piece(t, i > 0 ? tokens[i - 1] : -1, tok);
        size_t len = strlen(piece), room = cap - 1 - used;
        if (len > room) len = room; // truncate, keeping out NUL-terminated
        memcpy(out + used, piece, len);
        used += len;
        out[used] = '\0';
    }
    return QS_OK;
}

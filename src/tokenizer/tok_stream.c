// tok_stream.c: streaming decoder. Token pieces of byte-level BPE (and
// <0xXX> byte tokens) may end in the middle of a UTF-8 character; the stream
// emits only complete, valid characters and holds back an unfinished one.
#include "tokenizer/tok_internal.h"

#include <string.h>

// Classifies the bytes s[0..n), n >= 1: the length (1-4) of the valid UTF-8
// character they start with, 0 if they are a valid but incomplete prefix of
// one, -1 if s[0] starts no valid character (then it is replaced by U+FFFD).
static int utf8_class(const unsigned char *s, size_t n) {
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    int len;
    if (c < 0x80) return 1;
    else if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) len = 3;
    else if (c >= 0xF0 && c <= 0xF4) len = 4;
    else return -1;
    if (c == 0xE0) lo = 0xA0;
    else if (c == 0xED) hi = 0x9F;
    else if (c == 0xF0) lo = 0x90;
    else if (c == 0xF4) hi = 0x8F;
    for (int k = 1; k < len; k++) {
        if ((size_t)k >= n) return 0;
        unsigned char b = s[k];
        if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return -1;
    }
    return len;
}

void qs_tok_stream_init(qs_tok_stream *s, const qs_tokenizer *t) {
    memset(s, 0, sizeof *s);
    s->t = t;
    s->prev = -1;
}

static const char replacement[] = "\xEF\xBF\xBD";

// Emits the complete characters of the held bytes followed by src[0..n),
// keeping an unfinished tail in s->pend.
static qs_status feed(qs_tok_stream *s, const unsigned char *src, size_t n, char *out, size_t cap, size_t *n_out) {
    size_t used = 0;
    unsigned char win[4];
    size_t i = 0; // index into the virtual concatenation pend + src
    size_t total = (size_t)s->n_pend + n;
    while (i < total) {
        size_t k = 0;
        for (; k < 4 && i + k < total; k++)
            win[k] = i + k < (size_t)s->n_pend ? s->pend[i + k] : src[i + k - (size_t)s->n_pend];
        int c = utf8_class(win, k);
        if (c == 0) break; // incomplete: hold the rest (at most 3 bytes)
        const unsigned char *piece = c > 0 ? win : (const unsigned char *)replacement;
        size_t len = c > 0 ? (size_t)c : 3;
        if (used + len + 1 > cap) return qs_error(QS_ERR_ARG, "decode stream: output buffer of %zu bytes is too small", cap);
        memcpy(out + used, piece, len);
        used += len;
        i += c > 0 ? (size_t)c : 1;
    }
    // keep total - i (< 4) unfinished bytes
    unsigned char keep[8];
    size_t m = 0;
    for (size_t j = i; j < total; j++) keep[m++] = j < (size_t)s->n_pend ? s->pend[j] : src[j - (size_t)s->n_pend];
    memcpy(s->pend, keep, m);
    s->n_pend = (int)m;
    out[used] = 0;
    *n_out = used;
    return QS_OK;
}

qs_status qs_tok_stream_push(qs_tok_stream *s, int token, char *out, size_t cap, size_t *n) {
    if (!s || !s->t || !out || !n || cap == 0) return qs_error(QS_ERR_ARG, "qs_tok_stream_push: bad arguments");
    *n = 0;
    out[0] = 0;
    const char *piece = "";
    if (token >= 0 && token < qs_tokenizer_vocab_size(s->t) && (s->specials || !qs_tokenizer_is_special(s->t, token)))
        piece = qs_tokenizer_piece(s->t, s->prev, token);
    s->prev = token;
    return feed(s, (const unsigned char *)piece, strlen(piece), out, cap, n);
}

qs_status qs_tok_stream_flush(qs_tok_stream *s, char *out, size_t cap, size_t *n) {
    if (!s || !out || !n || cap == 0) return qs_error(QS_ERR_ARG, "qs_tok_stream_flush: bad arguments");
    size_t used = 0;
    // an unfinished character becomes one U+FFFD
    if (s->n_pend > 0) {
        if (cap < 4) return qs_error(QS_ERR_ARG, "decode stream: output buffer of %zu bytes is too small", cap);
        memcpy(out, replacement, 3);
        used = 3;
    }
    s->n_pend = 0;
    out[used] = 0;
    *n = used;
    return QS_OK;
}

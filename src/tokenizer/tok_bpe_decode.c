// tok_bpe_decode.c: the decoded text of every BPE token, computed once by
// running the decoder steps over the token's piece: ByteLevel (GPT-2
// unicode chars -> bytes), Replace, ByteFallback (<0xXX> -> byte), Strip,
// Metaspace. Steps after Fuse see the whole text, so a Strip there (or the
// Metaspace prefix) only removes the leading space of the first token:
// t->strip_after_bos.
#include "tokenizer/tok_bpe.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    char *p;
    size_t n, cap;
} sbuf;

static int sb_put(sbuf *s, const void *d, size_t n) {
    if (s->n + n + 1 > s->cap) {
        size_t c = s->cap ? s->cap : 256;
        while (c < s->n + n + 1) c *= 2;
        char *q = realloc(s->p, c);
        if (!q) return 0;
        s->p = q;
        s->cap = c;
    }
    memcpy(s->p + s->n, d, n);
    s->n += n;
    s->p[s->n] = 0;
    return 1;
}

static int hexv(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

// One decoder step on in[0..n) -> out (reset first).
static int dec_step(const qs_bpe *b, const qs_tok_op *op, const char *in, size_t n, sbuf *out) {
    out->n = 0;
    if (op->kind == QS_TOKD_BYTELEVEL) {
        for (size_t i = 0; i < n;) {
            unsigned char c = (unsigned char)in[i];
            int len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
            if (i + (size_t)len > n) len = (int)(n - i);
            int u = len == 1 ? c : len == 2 ? ((c & 0x1F) << 6) | ((unsigned char)in[i + 1] & 0x3F) : 0x10000;
            if (u < 512 && b->u2b[u] >= 0) {
                unsigned char byte = (unsigned char)b->u2b[u];
                if (!sb_put(out, &byte, 1)) return 0;
            } else if (!sb_put(out, in + i, (size_t)len)) {
                return 0;
            }
            i += (size_t)len;
        }
        return sb_put(out, "", 0);
    }
    if (op->kind == QS_TOKD_BYTEFALLBACK && n == 6 && !memcmp(in, "<0x", 3) && in[5] == '>' && hexv(in[3]) >= 0 &&
        hexv(in[4]) >= 0) {
        unsigned char byte = (unsigned char)(hexv(in[3]) * 16 + hexv(in[4]));
        return sb_put(out, &byte, 1);
    }
    if ((op->kind == QS_TOKD_REPLACE || op->kind == QS_TOKD_METASPACE) && op->a && op->a[0]) {
        const char *to = op->kind == QS_TOKD_REPLACE ? op->b : " ";
        size_t al = strlen(op->a), tl = strlen(to);
        for (size_t i = 0; i < n;) {
            if (i + al <= n && !memcmp(in + i, op->a, al)) {
                if (!sb_put(out, to, tl)) return 0;
                i += al;
            } else {
                if (!sb_put(out, in + i, 1)) return 0;
                i++;
            }
        }
        return sb_put(out, "", 0);
    }
    if (op->kind == QS_TOKD_STRIP && op->a) {
        size_t cl = strlen(op->a), lo = 0, hi = n;
        for (int k = 0; k < op->flag1 && lo + cl <= hi && !memcmp(in + lo, op->a, cl); k++) lo += cl;
        for (int k = 0; k < op->flag2 && hi >= lo + cl && !memcmp(in + hi - cl, op->a, cl); k++) hi -= cl;
        return sb_put(out, in + lo, hi - lo);
    }
    return sb_put(out, in, n); // Fuse, or a step that leaves this token as it is
}

// Runs the decoder steps before Fuse over one token; the steps after it
// are per-text, so only their leading-space removal is recorded.
static int decode_token(qs_tokenizer *t, const qs_bpe *b, int id, sbuf *x, sbuf *y) {
    x->n = 0;
    if (!sb_put(x, t->pieces[id], (size_t)t->lens[id])) return 0;
    int fused = 0;
    for (int i = 0; i < b->n_dec; i++) {
        const qs_tok_op *op = &b->dec[i];
        if (op->kind == QS_TOKD_FUSE) { fused = 1; continue; }
        if (op->kind == QS_TOKD_STRIP && fused) {
            if (op->flag1 > 0) t->strip_after_bos = 1;
            continue;
        }
        if (op->kind == QS_TOKD_METASPACE && op->flag1 != QS_TOK_PREPEND_NEVER) t->strip_after_bos = 1;
        if (!dec_step(b, op, x->p, x->n, y)) return 0;
        sbuf tmp = *x; *x = *y; *y = tmp;
    }
    return 1;
}

qs_status qs_tok_bpe_build_decoder(qs_tokenizer *t, qs_bpe *b, const char *name) {
    int n = t->vocab_size;
    sbuf x = {0}, y = {0}, all = {0};
    size_t *off = qs_malloc((size_t)n * sizeof *off, "decoder offsets");
    t->dec = qs_malloc((size_t)n * sizeof *t->dec, "decoder texts");
    t->dec_len = qs_malloc((size_t)n * sizeof *t->dec_len, "decoder texts");
    t->dec_sorted = qs_malloc((size_t)n * sizeof *t->dec_sorted, "decoder index");
    int ok = off && t->dec && t->dec_len && t->dec_sorted;
    for (int i = 0; ok && i < n; i++) {
        ok = decode_token(t, b, i, &x, &y);
        if (!ok) break;
        off[i] = all.n;
        t->dec_len[i] = (int)x.n;
        ok = sb_put(&all, x.p, x.n) && sb_put(&all, "", 1);
    }
    free(x.p);
    free(y.p);
    if (!ok) {
        free(off);
        free(all.p);
        return qs_error(QS_ERR_NOMEM, "%s: out of memory building the decoder", name);
    }
    t->dec_arena = all.p;
    for (int i = 0; i < n; i++) {
        t->dec[i] = all.p + off[i];
        t->dec_sorted[i] = (qs_tok_index){.str = t->dec[i], .len = t->dec_len[i], .id = i};
    }
    free(off);
    qs_tok_index_sort(t->dec_sorted, n);
    return QS_OK;
}

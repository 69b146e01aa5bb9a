// tok_bpe_encode.c: BPE encoding. The text is cut at added tokens (longest
// match through a trie); each other segment is normalized (utf8proc),
// pre-tokenized into words (PCRE2 splits, ByteLevel byte mapping,
// Metaspace), and every word is merged by rank (a heap over adjacent pairs,
// lowest rank first, leftmost on ties) with a per-call word -> ids cache.
#include "tokenizer/tok_bpe.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

typedef struct { char *p; size_t n, cap; } buf_t;
typedef struct { int *v; int n, cap; } ids_t;
typedef struct { size_t off, len; } word_t;
typedef struct { word_t *v; int n, cap; } words_t;

static int bput(buf_t *b, const void *d, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 1024;
        while (c < b->n + n + 1) c *= 2;
        char *q = realloc(b->p, c);
        if (!q) return 0;
        b->p = q;
        b->cap = c;
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
    b->p[b->n] = 0;
    return 1;
}

static int ipush(ids_t *a, int id) {
    if (a->n == a->cap) {
        int c = a->cap ? a->cap * 2 : 256;
        int *q = realloc(a->v, (size_t)c * sizeof *q);
        if (!q) return 0;
        a->v = q;
        a->cap = c;
    }
    a->v[a->n++] = id;
    return 1;
}

static int wpush(words_t *w, size_t off, size_t len) {
    if (len == 0) return 1;
    if (w->n == w->cap) {
        int c = w->cap ? w->cap * 2 : 64;
        word_t *q = realloc(w->v, (size_t)c * sizeof *q);
        if (!q) return 0;
        w->v = q;
        w->cap = c;
    }
    w->v[w->n++] = (word_t){off, len};
    return 1;
}

#define NOMEM() qs_error(QS_ERR_NOMEM, "encode: out of memory")

// word cache: open addressing on FNV-1a of the word bytes
typedef struct { size_t off, len; int ids_off, n_ids; } cache_slot;
typedef struct {
    cache_slot *slot; size_t mask; size_t used;
    buf_t keys; ids_t ids;
} word_cache;

static uint64_t fnv(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

// ----------------------------------------------------------------------------
// normalizer

static int norm_utf8proc(buf_t *io, int kind) {
    utf8proc_option_t opt = UTF8PROC_STABLE;
    if (kind == QS_TOKN_NFC) opt |= UTF8PROC_COMPOSE;
    else if (kind == QS_TOKN_NFKC) opt |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
    else if (kind == QS_TOKN_NFD) opt |= UTF8PROC_DECOMPOSE;
    else if (kind == QS_TOKN_NFKD) opt |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
    if (io->n == 0) return 1;
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)io->p, (utf8proc_ssize_t)io->n, &dst, opt);
    if (m < 0) return 0;
    io->n = 0;
    int ok = bput(io, dst, (size_t)m);
    free(dst);
    return ok;
}

static int norm_lower(buf_t *io, buf_t *tmp) {
    tmp->n = 0;
    for (size_t i = 0; i < io->n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)io->p + i, (utf8proc_ssize_t)(io->n - i), &cp);
        if (l <= 0) return 0;
        utf8proc_uint8_t e[4];
        utf8proc_ssize_t k = utf8proc_encode_char(utf8proc_tolower(cp), e);
        if (!bput(tmp, e, (size_t)k)) return 0;
        i += (size_t)l;
    }
    buf_t x = *io; *io = *tmp; *tmp = x;
    return 1;
}

static int replace_all(buf_t *io, buf_t *tmp, const char *a, const char *b) {
    size_t al = strlen(a), bl = strlen(b);
    tmp->n = 0;
    if (!bput(tmp, "", 0)) return 0;
    for (size_t i = 0; i < io->n;) {
        if (al && i + al <= io->n && !memcmp(io->p + i, a, al)) {
            if (!bput(tmp, b, bl)) return 0;
            i += al;
        } else {
            if (!bput(tmp, io->p + i, 1)) return 0;
            i++;
        }
    }
    buf_t x = *io; *io = *tmp; *tmp = x;
    return 1;
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

static int normalize(const qs_bpe *b, buf_t *io, buf_t *tmp) {
    for (int i = 0; i < b->n_norm; i++) {
        const qs_tok_op *op = &b->norm[i];
        int ok = 1;
        switch (op->kind) {
        case QS_TOKN_NFC: case QS_TOKN_NFKC: case QS_TOKN_NFD: case QS_TOKN_NFKD: ok = norm_utf8proc(io, op->kind); break;
        case QS_TOKN_LOWERCASE: ok = norm_lower(io, tmp); break;
        case QS_TOKN_PREPEND:
            if (io->n > 0) {
                tmp->n = 0;
                ok = bput(tmp, op->a, strlen(op->a)) && bput(tmp, io->p, io->n);
                buf_t x = *io; *io = *tmp; *tmp = x;
            }
            break;
        case QS_TOKN_REPLACE: ok = replace_all(io, tmp, op->a, op->b); break;
        case QS_TOKN_STRIP: {
            size_t lo = 0, hi = io->n;
            while (op->flag1 && lo < hi && is_ws(io->p[lo])) lo++;
            while (op->flag2 && hi > lo && is_ws(io->p[hi - 1])) hi--;
            memmove(io->p, io->p + lo, hi - lo);
            io->n = hi - lo;
            io->p[io->n] = 0;
            break;
        }
        default: break;
        }
        if (!ok) return 0;
    }
    return 1;
}

// ----------------------------------------------------------------------------
// pre-tokenizer

typedef struct {
    const qs_tokenizer *t;
    const qs_bpe *b;
    pcre2_match_data *md;
    buf_t ar, tmp;     // word arena, scratch
    words_t w, w2;     // current words, next words
    int *tok, *nxt, *prv; int sym_cap;
    struct cand { int rank, left, right, lid, rid, merged; } *heap; int heap_cap;
    word_cache cache;
} enc_ctx;

// Splits every word by regex `re` with HF behavior `beh` (QS_TOK_SPLIT_*).
static qs_status split_words(enc_ctx *c, pcre2_code *re, int beh, int invert) {
    c->w2.n = 0;
    for (int wi = 0; wi < c->w.n; wi++) {
        size_t base = c->w.v[wi].off, n = c->w.v[wi].len, pos = 0, last = 0;
        int pending_merge_next = -1; // index in w2 of a MergedWithNext piece to extend
        while (pos <= n) {
            int rc = pcre2_match(re, (PCRE2_SPTR)(c->ar.p + base), n, pos, PCRE2_NO_UTF_CHECK, c->md, NULL);
            if (rc < 0) break;
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
            size_t s = ov[0], e = ov[1];
            if (e == s) { // empty match: step one character
                pos = s + 1;
                while (pos < n && ((unsigned char)c->ar.p[base + pos] & 0xC0) == 0x80) pos++;
                if (s >= n) break;
                continue;
            }
            if (invert) { // the matches are the separators
                if (!wpush(&c->w2, base + last, s - last)) return NOMEM();
                if (beh != QS_TOK_SPLIT_REMOVED && !wpush(&c->w2, base + s, e - s)) return NOMEM();
            } else if (beh == QS_TOK_SPLIT_ISOLATED || beh == QS_TOK_SPLIT_REMOVED) {
                if (!wpush(&c->w2, base + last, s - last)) return NOMEM();
                if (beh == QS_TOK_SPLIT_ISOLATED && !wpush(&c->w2, base + s, e - s)) return NOMEM();
            } else if (beh == QS_TOK_SPLIT_MERGED_PREV) {
                if (!wpush(&c->w2, base + last, e - last)) return NOMEM();
            } else if (beh == QS_TOK_SPLIT_MERGED_NEXT) {
                if (pending_merge_next >= 0) c->w2.v[pending_merge_next].len = s - (c->w2.v[pending_merge_next].off - base);
                else if (!wpush(&c->w2, base + last, s - last)) return NOMEM();
                if (!wpush(&c->w2, base + s, e - s)) return NOMEM();
                pending_merge_next = c->w2.n - 1;
            } else { // Contiguous: adjacent matches form one piece
                if (s == last && c->w2.n > 0 && last > 0 && c->w2.v[c->w2.n - 1].off + c->w2.v[c->w2.n - 1].len == base + s)
                    c->w2.v[c->w2.n - 1].len += e - s;
                else {
                    if (!wpush(&c->w2, base + last, s - last)) return NOMEM();
                    if (!wpush(&c->w2, base + s, e - s)) return NOMEM();
                }
            }
            last = pos = e;
        }
        if (pending_merge_next >= 0 && last <= n) {
            c->w2.v[pending_merge_next].len = n - (c->w2.v[pending_merge_next].off - base);
        } else if (!wpush(&c->w2, base + last, n - last)) return NOMEM();
    }
    words_t x = c->w; c->w = c->w2; c->w2 = x;
    return QS_OK;
}

// Rewrites word wi as prefix + its bytes (each mapped through the GPT-2
// table if `map`, or with ' ' replaced by `repl` if repl != NULL).
static qs_status rewrite_word(enc_ctx *c, int wi, const char *prefix, int map, const char *repl) {
    size_t off = c->w.v[wi].off, n = c->w.v[wi].len, start = c->ar.n;
    if (prefix && !bput(&c->ar, prefix, strlen(prefix))) return NOMEM();
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)c->ar.p[off + i];
        int ok = map ? bput(&c->ar, c->b->b2u[ch], (size_t)c->b->b2u_len[ch])
                     : repl && ch == ' ' ? bput(&c->ar, repl, strlen(repl)) : bput(&c->ar, &ch, 1);
        if (!ok) return NOMEM();
    }
    c->w.v[wi] = (word_t){start, c->ar.n - start};
    return QS_OK;
}

static qs_status pre_tokenize(enc_ctx *c, int first_segment) {
    const qs_bpe *b = c->b;
    int mapped = 0;
    for (int i = 0; i < b->n_pre; i++) {
        const qs_tok_op *op = &b->pre[i];
        if (op->kind == QS_TOKP_SPLIT) QS_TRY(split_words(c, b->re[i], op->flag1, op->flag3));
        else if (op->kind == QS_TOKP_DIGITS) QS_TRY(split_words(c, b->re[i], QS_TOK_SPLIT_ISOLATED, 0));
        else if (op->kind == QS_TOKP_WHITESPACE_SPLIT) QS_TRY(split_words(c, b->re[i], QS_TOK_SPLIT_REMOVED, 0));
        else if (op->kind == QS_TOKP_BYTELEVEL) {
            if (op->flag1)
                for (int k = 0; k < c->w.n; k++)
                    if (c->ar.p[c->w.v[k].off] != ' ') QS_TRY(rewrite_word(c, k, " ", 0, NULL));
            if (op->flag2) QS_TRY(split_words(c, b->re[i], QS_TOK_SPLIT_ISOLATED, 0));
            for (int k = 0; k < c->w.n; k++) QS_TRY(rewrite_word(c, k, NULL, 1, NULL));
            mapped = 1;
        } else if (op->kind == QS_TOKP_METASPACE) {
            const char *r = op->a;
            size_t rl = strlen(r);
            for (int k = 0; k < c->w.n; k++) {
                int pre = op->flag1 == QS_TOK_PREPEND_ALWAYS || (op->flag1 == QS_TOK_PREPEND_FIRST && first_segment && k == 0);
                if (pre && c->w.v[k].len >= rl && !memcmp(c->ar.p + c->w.v[k].off, r, rl)) pre = 0;
                if (pre && c->ar.p[c->w.v[k].off] == ' ') pre = 0; // the space itself becomes the replacement
                QS_TRY(rewrite_word(c, k, pre ? r : NULL, 0, r));
            }
            if (op->flag2) QS_TRY(split_words(c, b->re[i], QS_TOK_SPLIT_MERGED_NEXT, 0));
        }
    }
    if (b->bytelevel && !mapped)
        for (int k = 0; k < c->w.n; k++) QS_TRY(rewrite_word(c, k, NULL, 1, NULL));
    return QS_OK;
}

// ----------------------------------------------------------------------------
// BPE merges of one word

static int better(const struct cand *a, const struct cand *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static void hpush(enc_ctx *c, int *hn, struct cand x) {
    int i = (*hn)++;
    while (i > 0 && better(&x, &c->heap[(i - 1) / 2])) { c->heap[i] = c->heap[(i - 1) / 2]; i = (i - 1) / 2; }
    c->heap[i] = x;
}

static struct cand hpop(enc_ctx *c, int *hn) {
    struct cand top = c->heap[0], last = c->heap[--*hn];
    int i = 0;
    for (;;) {
        int k = 2 * i + 1;
        if (k >= *hn) break;
        if (k + 1 < *hn && better(&c->heap[k + 1], &c->heap[k])) k++;
        if (!better(&c->heap[k], &last)) break;
        c->heap[i] = c->heap[k];
        i = k;
    }
    if (*hn > 0) c->heap[i] = last;
    return top;
}

static void consider(enc_ctx *c, int *hn, int l, int r) {
    const qs_bpe_merge *m = qs_bpe_find_merge(c->b, c->tok[l], c->tok[r]);
    if (m) hpush(c, hn, (struct cand){m->rank, l, r, c->tok[l], c->tok[r], m->merged});
}

static qs_status grow_syms(enc_ctx *c, size_t n) {
    if (n <= (size_t)c->sym_cap) return QS_OK;
    if (n > 0x3fffffff) return qs_error(QS_ERR_ARG, "encode: word of %zu bytes is too long", n);
    int cap = (int)n * 2;
    int *a = realloc(c->tok, (size_t)cap * sizeof(int)), *b2 = a ? realloc(c->nxt, (size_t)cap * sizeof(int)) : NULL;
    if (a) c->tok = a;
    if (b2) c->nxt = b2;
    int *p = b2 ? realloc(c->prv, (size_t)cap * sizeof(int)) : NULL;
    if (p) c->prv = p;
    struct cand *h = p ? realloc(c->heap, (size_t)cap * 3 * sizeof *h) : NULL;
    if (!h) return NOMEM();
    c->heap = h;
    c->sym_cap = cap;
    return QS_OK;
}

// Initial symbols: one per character in the vocabulary, else <0xXX> bytes
// (byte_fallback) or unk (fused if fuse_unk).
static qs_status initial_symbols(enc_ctx *c, const char *s, size_t n, int *count) {
    const qs_tokenizer *t = c->t;
    int m = 0, last_unk = 0;
    for (size_t i = 0; i < n;) {
        unsigned char ch = (unsigned char)s[i];
        size_t l = ch < 0x80 ? 1 : ch < 0xE0 ? 2 : ch < 0xF0 ? 3 : 4;
        if (i + l > n) l = n - i;
        int id = qs_tok_lookup(t, s + i, (int)l);
        if (id >= 0) { c->tok[m++] = id; last_unk = 0; }
        else {
            int all = c->b->byte_fallback;
            for (size_t k = 0; all && k < l; k++) all = t->byte_id[(unsigned char)s[i + k]] >= 0;
            if (all) {
                for (size_t k = 0; k < l; k++) c->tok[m++] = t->byte_id[(unsigned char)s[i + k]];
                last_unk = 0;
            } else if (t->unk_id >= 0) {
                if (!(c->b->fuse_unk && last_unk)) c->tok[m++] = t->unk_id;
                last_unk = 1;
            } else {
                return qs_error(QS_ERR_UNSUPPORTED, "encode: \"%.*s\" has no token and the vocabulary has no unk token",
                                (int)l, s + i);
            }
        }
        i += l;
    }
    *count = m;
    return QS_OK;
}

static qs_status bpe_word(enc_ctx *c, const char *s, size_t n, ids_t *out) {
    if (c->b->ignore_merges && n <= (size_t)c->t->longest) {
        int id = qs_tok_lookup(c->t, s, (int)n);
        if (id >= 0) return ipush(out, id) ? QS_OK : NOMEM();
    }
    QS_TRY(grow_syms(c, n + 1));
    int m = 0, hn = 0;
    QS_TRY(initial_symbols(c, s, n, &m));
    for (int i = 0; i < m; i++) { c->prv[i] = i - 1; c->nxt[i] = i + 1 < m ? i + 1 : -1; }
    for (int i = 0; i + 1 < m; i++) consider(c, &hn, i, i + 1);
    while (hn > 0) {
        struct cand x = hpop(c, &hn);
        if (c->nxt[x.left] != x.right || c->tok[x.left] != x.lid || c->tok[x.right] != x.rid) continue;
        c->tok[x.left] = x.merged;
        c->tok[x.right] = -1;
        int after = c->nxt[x.right];
        c->nxt[x.left] = after;
        if (after >= 0) c->prv[after] = x.left;
        if (c->prv[x.left] >= 0) consider(c, &hn, c->prv[x.left], x.left);
        if (after >= 0) consider(c, &hn, x.left, after);
    }
    for (int i = 0; i >= 0 && i < m; i = c->nxt[i])
        if (!ipush(out, c->tok[i])) return NOMEM();
    return QS_OK;
}

// bpe_word through the cache (words up to 256 bytes).
static qs_status cached_word(enc_ctx *c, const char *s, size_t n, ids_t *out) {
    word_cache *wc = &c->cache;
    if (n > 256) return bpe_word(c, s, n, out);
    if (wc->used * 2 >= wc->mask) { // (re)build bigger
        size_t cap = wc->mask ? (wc->mask + 1) * 2 : 4096;
        cache_slot *ns = calloc(cap, sizeof *ns);
        if (!ns) return bpe_word(c, s, n, out);
        for (size_t i = 0; wc->slot && i <= wc->mask; i++) {
            if (!wc->slot[i].len) continue;
            size_t h = fnv(wc->keys.p + wc->slot[i].off, wc->slot[i].len) & (cap - 1);
            while (ns[h].len) h = (h + 1) & (cap - 1);
            ns[h] = wc->slot[i];
        }
        free(wc->slot);
        wc->slot = ns;
        wc->mask = cap - 1;
    }
    size_t h = fnv(s, n) & wc->mask;
    for (; wc->slot[h].len; h = (h + 1) & wc->mask) {
        cache_slot *e = &wc->slot[h];
        if (e->len == n && !memcmp(wc->keys.p + e->off, s, n)) {
            for (int k = 0; k < e->n_ids; k++)
                if (!ipush(out, wc->ids.v[e->ids_off + k])) return NOMEM();
            return QS_OK;
        }
    }
    int before = out->n;
    QS_TRY(bpe_word(c, s, n, out));
    size_t koff = wc->keys.n;
    int ioff = wc->ids.n;
    if (!bput(&wc->keys, s, n)) return QS_OK;
    for (int k = before; k < out->n; k++)
        if (!ipush(&wc->ids, out->v[k])) return QS_OK;
    wc->slot[h] = (cache_slot){koff, n, ioff, out->n - before};
    wc->used++;
    return QS_OK;
}

// ----------------------------------------------------------------------------
// segments between added tokens

static qs_status encode_segment(enc_ctx *c, const char *s, size_t n, int first, ids_t *out) {
    if (n == 0) return QS_OK;
    c->ar.n = 0;
    if (!bput(&c->ar, s, n) || !bput(&c->tmp, "", 0)) return NOMEM();
    if (!normalize(c->b, &c->ar, &c->tmp)) return NOMEM();
    // the regexes match with PCRE2_NO_UTF_CHECK: the text was checked, but the normalizers' strings come
    // from the file (an invalid Prepend string made the JIT read out of bounds; found by fuzzing)
    if (qs_tok_utf8_check(c->ar.p, c->ar.n) != QS_OK)
        return qs_error(QS_ERR_FORMAT, "tokenizer: the normalized text is not valid UTF-8 (a normalizer of the "
                        "tokenizer inserts invalid UTF-8)");
    c->w.n = 0;
    if (!wpush(&c->w, 0, c->ar.n)) return NOMEM();
    QS_TRY(pre_tokenize(c, first));
    for (int k = 0; k < c->w.n; k++) {
        // words are offsets into ar, which cached_word does not touch
        QS_TRY(cached_word(c, c->ar.p + c->w.v[k].off, c->w.v[k].len, out));
    }
    return QS_OK;
}

static int word_byte(char ch) {
    unsigned char u = (unsigned char)ch;
    return u >= 0x80 || (u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || u == '_';
}

static qs_status encode_text(enc_ctx *c, const char *text, size_t len, ids_t *out) {
    const qs_bpe *b = c->b;
    size_t pos = 0, seg = 0;
    while (pos < len) {
        size_t ml = 0;
        int k = qs_bpe_match_added(b, text + pos, len - pos, &ml);
        const qs_tok_added *a = k >= 0 ? &b->added[k] : NULL;
        if (a && a->single_word && ((pos > 0 && word_byte(text[pos - 1])) || (pos + ml < len && word_byte(text[pos + ml]))))
            a = NULL;
        if (!a) { pos++; continue; }
        size_t end = pos;
        if (a->lstrip) while (end > seg && is_ws(text[end - 1])) end--;
        QS_TRY(encode_segment(c, text + seg, end - seg, seg == 0, out));
        if (!ipush(out, a->id)) return NOMEM();
        pos += ml;
        if (a->rstrip) while (pos < len && is_ws(text[pos])) pos++;
        seg = pos;
    }
    return encode_segment(c, text + seg, len - seg, seg == 0, out);
}

static void ctx_free(enc_ctx *c) {
    if (c->md) pcre2_match_data_free(c->md);
    free(c->ar.p); free(c->tmp.p); free(c->w.v); free(c->w2.v);
    free(c->tok); free(c->nxt); free(c->prv); free(c->heap);
    free(c->cache.slot); free(c->cache.keys.p); free(c->cache.ids.v);
}

qs_status qs_tok_bpe_encode(const qs_tokenizer *t, const char *text, int bos, int eos, int **out, int *n_out,
                            int *cap) {
    *out = NULL;
    *n_out = 0;
    if (cap) *cap = 0;
    size_t len = strlen(text);
    QS_TRY(qs_tok_utf8_check(text, len));
    enc_ctx c = {.t = t, .b = t->bpe};
    ids_t ids = {0};
    c.md = pcre2_match_data_create(4, NULL);
    qs_status st = c.md ? QS_OK : NOMEM();
    if (st == QS_OK && bos && t->bos_id >= 0 && !ipush(&ids, t->bos_id)) st = NOMEM();
    if (st == QS_OK) st = encode_text(&c, text, len, &ids);
    if (st == QS_OK && eos && t->eos_id >= 0 && !ipush(&ids, t->eos_id)) st = NOMEM();
    if (st == QS_OK && !ids.v && !ipush(&ids, 0)) st = NOMEM(); // non-NULL result for empty text
    ctx_free(&c);
    if (st != QS_OK) { free(ids.v); return st; }
    if (ids.v && ids.n == 1 && !(bos && t->bos_id >= 0) && !(eos && t->eos_id >= 0) && len == 0) ids.n = 0;
    *out = ids.v;
    *n_out = ids.n;
    if (cap) *cap = ids.cap;
    return QS_OK;
}

// encode.c: text -> token ids, with the exact results of llama2.c's run.c
// `encode`:
//   1. optional BOS; if the text is non-empty, the dummy-prefix token for " ";
//   2. one token per UTF-8 codepoint if the vocabulary has it, else one
//      <0xXX> byte-fallback token (id byte + 3) per byte;
//   3. repeatedly merge the adjacent pair whose concatenated pieces form the
//      vocabulary piece with the highest score (the leftmost such pair on
//      ties), until no adjacent pair forms a vocabulary piece;
//   4. optional EOS.
// Differences from llama2.c, all on inputs where it misbehaves: invalid UTF-8
// is rejected (llama2.c does not validate), and a missing " " piece or byte
// token falls back to bytes / is an error instead of writing an invalid id.
//
// Step 3 in run.c rescans every pair after every merge (quadratic). We keep
// the candidate pairs in a max-heap ordered by (score, position) instead, so
// long texts encode in O(n log n); the merge order, and hence the result, is
// the same: each step merges the best-scoring current pair, leftmost first.
#include "tokenizer/tok_internal.h"

#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------
// UTF-8

// Length (1-4) of the well-formed UTF-8 sequence at s[off] of s[len]
// (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
// On malformed input sets the error message, giving the byte offset, and
// returns 0.
int qs_tok_utf8_len(const unsigned char *s, size_t len, size_t off) {
    unsigned char c = s[off];
    int n;
    unsigned char lo = 0x80, hi = 0xBF; // allowed range of the second byte
    if (c < 0x80) return 1;
    else if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) n = 3;
    else if (c >= 0xF0 && c <= 0xF4) n = 4;
    else {
        qs_error(QS_ERR_FORMAT, "encode: invalid UTF-8 at byte offset %zu: byte 0x%02X cannot start a character",
                 off, c);
        return 0;
    }
    if (c == 0xE0) lo = 0xA0;      // else overlong
    else if (c == 0xED) hi = 0x9F; // else a UTF-16 surrogate
    else if (c == 0xF0) lo = 0x90; // else overlong
    else if (c == 0xF4) hi = 0x8F; // else above U+10FFFF
    for (int k = 1; k < n; k++) {
        if (off + k >= len) {
            qs_error(QS_ERR_FORMAT, "encode: invalid UTF-8 at byte offset %zu: truncated %d-byte sequence at end of text",
                     off, n);
            return 0;
        }
        unsigned char b = s[off + k];
        if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) {
            qs_error(QS_ERR_FORMAT, "encode: invalid UTF-8 at byte offset %zu: byte 0x%02X in a %d-byte sequence starting at offset %zu",
                     off + k, b, n, off);
            return 0;
        }
    }
    return n;
}

// ----------------------------------------------------------------------------
// initial tokens

// Appends the token for the codepoint s[0..n), or its byte-fallback tokens.
// `off` is its offset in the text (for messages).
static qs_status push_codepoint(const qs_tokenizer *t, const char *s, int n, size_t off, int *out, int *count) {
    int id = qs_tok_lookup(t, s, n);
    if (id >= 0) {
        out[(*count)++] = id;
        return QS_OK;
    }
    for (int i = 0; i < n; i++) {
        int b = (unsigned char)s[i];
        if (t->byte_id[b] < 0)
            return qs_error(QS_ERR_UNSUPPORTED,
                            "encode: byte 0x%02X at offset %zu has no token and the %d-token vocabulary has no <0x%02X> byte fallback",
                            b, off + i, t->vocab_size, b);
        out[(*count)++] = t->byte_id[b];
    }
    return QS_OK;
}

// ----------------------------------------------------------------------------
// BPE merging

// A candidate merge of the adjacent tokens at nodes `left` and `right`
// (positions in the initial token array), whose ids were lid and rid.
typedef struct {
    float score;
    int left, right;
    int lid, rid;
    int merged; // id of the concatenated piece
} merge_cand;

typedef struct {
    merge_cand *heap;
    int n;
    char *buf; // concatenation buffer, 2 * longest + 1 bytes
    int *rev;  // SentencePiece: per UNUSED piece, the (left, right) ids of the last pair queued to form it
} merge_queue;

// True if a should be merged before b: higher score, then leftmost (node
// indices keep the left-to-right order of the current tokens).
static int better(const merge_cand *a, const merge_cand *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(merge_queue *q, merge_cand c) {
    int i = q->n++;
    while (i > 0 && better(&c, &q->heap[(i - 1) / 2])) {
        q->heap[i] = q->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    q->heap[i] = c;
}

static merge_cand heap_pop(merge_queue *q) {
    merge_cand top = q->heap[0], last = q->heap[--q->n];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= q->n) break;
        if (c + 1 < q->n && better(&q->heap[c + 1], &q->heap[c])) c++;
        if (!better(&q->heap[c], &last)) break;
        q->heap[i] = q->heap[c];
        i = c;
    }
    if (q->n > 0) q->heap[i] = last;
    return top;
}

static int sp_mergeable(const qs_tokenizer *t, int id) {
    return t->sp_class[id] == QS_SPC_NORMAL || t->sp_class[id] == QS_SPC_UNUSED;
}

// Queues the merge of nodes l and r if their concatenation is in the vocabulary.
// Like run.c, a pair only qualifies if its score beats -1e10.
static void consider_pair(const qs_tokenizer *t, merge_queue *q, const int *tok, int l, int r) {
    int a = tok[l], b = tok[r];
    int la = t->lens[a], lb = t->lens[b];
    memcpy(q->buf, t->pieces[a], (size_t)la);
    memcpy(q->buf + la, t->pieces[b], (size_t)lb);
    int id = qs_tok_lookup(t, q->buf, la + lb);
    if (id < 0 || !(t->scores[id] > (float)-1e10)) return;
    // SentencePiece: control/unknown/byte/user-defined pieces never merge
    if (t->sp_class && (!sp_mergeable(t, a) || !sp_mergeable(t, b) || !sp_mergeable(t, id))) return;
    heap_push(q, (merge_cand){.score = t->scores[id], .left = l, .right = r, .lid = a, .rid = b, .merged = id});
    if (q->rev && t->sp_class[id] == QS_SPC_UNUSED) {
        int k = t->sp_unused_slot[id];
        q->rev[2 * k] = a;
        q->rev[2 * k + 1] = b;
    }
}

// Buffers of merge_run, kept across the words of one text.
typedef struct {
    int *next, *prev;
    merge_cand *heap;
    char *buf;
    int *rev, *stack; // UNUSED pieces (tokenizers that have some)
    int cap;
} merge_ws;

static void merge_ws_free(merge_ws *w) {
    free(w->next); free(w->prev); free(w->heap); free(w->buf); free(w->rev); free(w->stack);
    *w = (merge_ws){0};
}

// Room for n tokens: n-1 initial pairs plus at most 2 new pairs per merge.
static qs_status merge_ws_reserve(merge_ws *w, const qs_tokenizer *t, int n) {
    if (n <= w->cap && w->buf) return QS_OK;
    int cap = QS_MAX(n, w->cap * 2);
    merge_ws_free(w);
    w->next = qs_malloc((size_t)cap * sizeof(int), "encode links");
    w->prev = qs_malloc((size_t)cap * sizeof(int), "encode links");
    w->heap = qs_malloc((size_t)3 * (size_t)cap * sizeof(merge_cand), "encode merge heap");
    w->buf = qs_malloc((size_t)t->longest * 2 + 1, "encode buffer");
    if (t->n_sp_unused) {
        w->rev = qs_malloc((size_t)t->n_sp_unused * 2 * sizeof(int), "encode resegmentation");
        w->stack = qs_malloc(((size_t)cap + 2) * sizeof(int), "encode resegmentation");
    }
    if (!w->next || !w->prev || !w->heap || !w->buf || (t->n_sp_unused && (!w->rev || !w->stack))) {
        merge_ws_free(w);
        return QS_ERR_NOMEM;
    }
    w->cap = cap;
    return QS_OK;
}

// SentencePiece's resegmentation: every UNUSED piece among tok[0..m) is
// replaced by the pair last queued to form it, recursively. The pieces of
// each pair spell the piece, so the result has at most n (the number of
// initial symbols) tokens. Returns the new count.
static int resegment(const qs_tokenizer *t, int *tok, int m, int n, merge_ws *w) {
    int *src = w->prev, *stack = w->stack, o = 0;
    memcpy(src, tok, (size_t)m * sizeof *tok);
    for (int i = 0; i < m; i++) {
        int sp = 0;
        stack[sp++] = src[i];
        while (sp > 0) {
            int x = stack[--sp], k = t->sp_unused_slot[x];
            // the bounds only guard against the impossible (a pair that does not spell its piece)
            if (k >= 0 && w->rev[2 * k] >= 0 && sp + 2 <= n + 1 && o + sp + 2 <= n) {
                stack[sp++] = w->rev[2 * k + 1];
                stack[sp++] = w->rev[2 * k];
            } else {
                tok[o++] = x;
            }
        }
    }
    return o;
}

// Merges tok[0..*n) in place. A merged-away node gets id -1; `next`/`prev`
// link the live nodes.
static qs_status merge_run(const qs_tokenizer *t, int *tok, int *n_io, merge_ws *w) {
    int n = *n_io;
    if (n < 2) return QS_OK;
    QS_TRY(merge_ws_reserve(w, t, n));
    int *next = w->next, *prev = w->prev;
    merge_queue q = {.heap = w->heap, .n = 0, .buf = w->buf, .rev = w->rev};
    for (int k = 0; w->rev && k < 2 * t->n_sp_unused; k++) w->rev[k] = -1;
    for (int i = 0; i < n; i++) {
        prev[i] = i - 1;
        next[i] = i + 1 < n ? i + 1 : -1;
    }
    for (int i = 0; i + 1 < n; i++) consider_pair(t, &q, tok, i, i + 1);
    while (q.n > 0) {
        merge_cand c = heap_pop(&q);
        // skip stale candidates: a side was merged away or changed since queued
        if (next[c.left] != c.right || tok[c.left] != c.lid || tok[c.right] != c.rid) continue;
        tok[c.left] = c.merged;
        tok[c.right] = -1;
        int after = next[c.right];
        next[c.left] = after;
        if (after >= 0) prev[after] = c.left;
        if (prev[c.left] >= 0) consider_pair(t, &q, tok, prev[c.left], c.left);
        if (after >= 0) consider_pair(t, &q, tok, c.left, after);
    }
    // compact the live nodes, which are in order
    int m = 0;
    for (int i = 0; i < n; i++)
        if (tok[i] >= 0) tok[m++] = tok[i];
    *n_io = w->rev ? resegment(t, tok, m, n, w) : m;
    return QS_OK;
}

static qs_status merge_all(const qs_tokenizer *t, int *tok, int *n_io) {
    merge_ws w = {0};
    qs_status st = merge_run(t, tok, n_io, &w);
    merge_ws_free(&w);
    return st;
}

// ----------------------------------------------------------------------------

qs_status qs_tok_utf8_check(const char *text, size_t len) {
    const unsigned char *s = (const unsigned char *)text;
    for (size_t off = 0; off < len;) {
        int n = qs_tok_utf8_len(s, len, off);
        if (n == 0) return QS_ERR_FORMAT;
        off += (size_t)n;
    }
    return QS_OK;
}

// ----------------------------------------------------------------------------
// SentencePiece mode (tokenizer.model, GGUF `llama`)

// Initial symbols of the normalized text s[0..n): user-defined pieces whole,
// else one normal piece per character, else its <0xXX> bytes, else unk (a
// run of unknown characters gives one unk, as SentencePiece does).
static qs_status sp_symbols(const qs_tokenizer *t, const char *s, size_t n, int *out, int *count) {
    int last_unk = 0;
    for (size_t off = 0; off < n;) {
        int id = t->n_sp_user ? qs_tok_sp_user_match(t, s + off, n - off) : -1;
        if (id >= 0) {
            out[(*count)++] = id;
            off += (size_t)t->lens[id];
            last_unk = 0;
            continue;
        }
        int l = qs_tok_utf8_len((const unsigned char *)s, n, off);
        if (l == 0) return QS_ERR_FORMAT;
        id = qs_tok_lookup(t, s + off, l);
        int all = 1;
        for (int k = 0; k < l; k++) all = all && t->byte_id[(unsigned char)s[off + k]] >= 0;
        if (id >= 0 && (!t->sp_class || sp_mergeable(t, id))) {
            out[(*count)++] = id;
            last_unk = 0;
        } else if (all) {
            for (int k = 0; k < l; k++) out[(*count)++] = t->byte_id[(unsigned char)s[off + k]];
            last_unk = 0;
        } else if (t->unk_id >= 0) {
            if (!last_unk) out[(*count)++] = t->unk_id;
            last_unk = 1;
        } else {
            return qs_error(QS_ERR_UNSUPPORTED, "encode: \"%.*s\" has no token, no <0xXX> byte fallback and no unk token",
                            l, s + off);
        }
        off += (size_t)l;
    }
    return QS_OK;
}

static qs_status encode_sp(const qs_tokenizer *t, const char *text, size_t len, int bos, int eos, int *out,
                           int cap, int *n_out) {
    char *norm = NULL;
    size_t n = 0;
    QS_TRY(qs_tok_sp_normalize(t, text, len, &norm, &n));
    const char *s = norm;
    // at most one token per byte of the normalized text
    size_t need = (bos != 0) + n + (eos != 0);
    if (cap < 0 || (size_t)cap < need) {
        free(norm);
        return qs_error(QS_ERR_ARG, "encode: room for %d tokens, but the normalized text may need %zu", cap, need);
    }
    int count = 0;
    if (bos) out[count++] = t->bos_id;
    // Words are merged one at a time when no piece can span the start of a
    // space run (t->sp_split): the merges of one never touch another, so the
    // result is that of the global merge order, with a small cache-friendly heap.
    qs_status st = QS_OK;
    merge_ws ws = {0};
    for (size_t start = 0, k = 1; st == QS_OK && start < n; k++) {
        if (k < n && !(t->sp_split && s[k] == ' ' && s[k - 1] != ' ')) continue;
        int c0 = count;
        st = sp_symbols(t, s + start, k - start, out, &count);
        int m = count - c0;
        if (st == QS_OK) st = merge_run(t, out + c0, &m, &ws);
        count = c0 + m;
        start = k;
    }
    merge_ws_free(&ws);
    free(norm);
    if (st != QS_OK) return st;
    if (eos) out[count++] = t->eos_id;
    *n_out = count;
    return QS_OK;
}

qs_status qs_tok_encode_spm(const qs_tokenizer *t, const char *text, int bos, int eos, int *out, int cap,
                            int *n_out) {
    *n_out = 0;
    size_t len = strlen(text);
    if (t->bos_id < 0) bos = 0;
    if (t->eos_id < 0) eos = 0;
    if (t->sp_mode) {
        QS_TRY(qs_tok_utf8_check(text, len));
        return encode_sp(t, text, len, bos, eos, out, cap, n_out);
    }
    // at most: BOS, dummy prefix, one token per byte, EOS
    size_t need = (bos != 0) + (len > 0) + len + (eos != 0);
    if (cap < 0 || (size_t)cap < need)
        return qs_error(QS_ERR_ARG, "encode: room for %d tokens, but %zu bytes of text may need %zu", cap, len,
                        need);
    // validate all of the text first, so errors leave no partial output
    QS_TRY(qs_tok_utf8_check(text, len));
    const unsigned char *s = (const unsigned char *)text;
    int count = 0;
    if (bos) out[count++] = t->bos_id;
    // add_dummy_prefix: sentencepiece prepends a space to non-empty text
    if (len > 0 && t->add_prefix_space) QS_TRY(push_codepoint(t, " ", 1, 0, out, &count));
    for (size_t off = 0; off < len;) {
        int n = qs_tok_utf8_len(s, len, off);
        QS_TRY(push_codepoint(t, text + off, n, off, out, &count));
        off += (size_t)n;
    }
    // run.c merges over the whole array, BOS included
    QS_TRY(merge_all(t, out, &count));
    if (eos) out[count++] = t->eos_id;
    *n_out = count;
    return QS_OK;
}

qs_status qs_tokenizer_encode(const qs_tokenizer *t, const char *text, int bos, int eos, int *out, int cap,
                              int *n_out) {
    if (!t || !text || !out || !n_out) return qs_error(QS_ERR_ARG, "qs_tokenizer_encode: NULL argument");
    *n_out = 0;
    if (t->kind == QS_TOK_SPM_SCORES) return qs_tok_encode_spm(t, text, bos, eos, out, cap, n_out);
    int *ids = NULL, n = 0;
    QS_TRY(qs_tokenizer_encode_alloc(t, text, bos, eos, &ids, &n));
    if (cap < 0 || n > cap) {
        free(ids);
        return qs_error(QS_ERR_ARG, "encode: room for %d tokens, but the text has %d", cap, n);
    }
    memcpy(out, ids, (size_t)n * sizeof *ids);
    free(ids);
    *n_out = n;
    return QS_OK;
}

qs_status qs_tokenizer_encode_alloc(const qs_tokenizer *t, const char *text, int bos, int eos, int **out,
                                    int *n_out) {
    if (!t || !text || !out || !n_out) return qs_error(QS_ERR_ARG, "qs_tokenizer_encode_alloc: NULL argument");
    *out = NULL;
    *n_out = 0;
    if (t->kind != QS_TOK_SPM_SCORES) {
        int cap = 0;
        return qs_tok_bpe_encode(t, text, bos, eos, out, n_out, &cap);
    }
    size_t len = strlen(text);
    if (len > 0x7ffffff0) return qs_error(QS_ERR_ARG, "encode: text of %zu bytes is too long", len);
    size_t room = len + 3;
    if (t->sp_charsmap) { // charsmap rules may lengthen the text: normalize once to size the output
        char *norm = NULL;
        size_t n = 0;
        QS_TRY(qs_tok_utf8_check(text, len));
        QS_TRY(qs_tok_sp_normalize(t, text, len, &norm, &n));
        free(norm);
        if (n > 0x7ffffff0) return qs_error(QS_ERR_ARG, "encode: normalized text of %zu bytes is too long", n);
        room = QS_MAX(room, n + 3);
    }
    int cap = (int)room;
    int *ids = qs_malloc((size_t)cap * sizeof *ids, "encoded tokens");
    if (!ids) return QS_ERR_NOMEM;
    qs_status st = qs_tok_encode_spm(t, text, bos, eos, ids, cap, n_out);
    if (st != QS_OK) { free(ids); *n_out = 0; return st; }
    *out = ids;
    return QS_OK;
}

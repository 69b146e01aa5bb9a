// tok_bpe.c: BPE tokenizers (byte-level GPT-2/Llama-3/Qwen2 and
// SentencePiece-style with byte fallback): building the merge table, the
// compiled pre-tokenizer regexes (PCRE2, UTF + UCP, JIT), the added-token
// trie and every token's decoded text. Encoding is in tok_bpe_encode.c.
#include "tokenizer/tok_bpe.h"

#include <stdlib.h>
#include <string.h>

static const char *const gpt2_regex =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static uint64_t mix(uint64_t k) { return (k * 0x9E3779B97F4A7C15ull) >> 17; }

const qs_bpe_merge *qs_bpe_find_merge(const qs_bpe *b, int l, int r) {
    uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
    for (size_t h = mix(key) & b->mmask;; h = (h + 1) & b->mmask) {
        const qs_bpe_merge *m = &b->merges[h];
        if (m->rank < 0) return NULL;
        if (m->key == key) return m;
    }
}

static qs_status build_merges(qs_tokenizer *t, qs_bpe *b, const qs_tok_spec *s) {
    const char *nm = s->name ? s->name : "tokenizer";
    if (s->n_merges < 0 || (!s->merges && !(s->merge_left && s->merge_right) && s->n_merges > 0))
        return qs_error(QS_ERR_FORMAT, "%s: merges: missing", nm);
    size_t cap = 16;
    while (cap < (size_t)s->n_merges * 2) cap *= 2;
    b->merges = qs_malloc(cap * sizeof *b->merges, "merge table");
    char *buf = qs_malloc((size_t)t->longest * 2 + 8, "merge buffer");
    if (!b->merges || !buf) { free(buf); return QS_ERR_NOMEM; }
    for (size_t i = 0; i < cap; i++) b->merges[i].rank = -1;
    b->mmask = cap - 1;
    for (int k = 0; k < s->n_merges; k++) {
        const char *l = s->merge_left ? s->merge_left[k] : s->merges[k], *r;
        size_t ll, rl;
        if (s->merge_left) { r = s->merge_right[k]; ll = l ? strlen(l) : 0; rl = r ? strlen(r) : 0; }
        else {
            const char *sp = l ? strchr(l, ' ') : NULL;
            if (!sp) { free(buf); return qs_error(QS_ERR_FORMAT, "%s: merges[%d] is not \"a b\"", nm, k); }
            ll = (size_t)(sp - l); r = sp + 1; rl = strlen(r);
        }
        if (!l || !r || ll == 0 || rl == 0 || ll > (size_t)t->longest || rl > (size_t)t->longest) {
            free(buf);
            return qs_error(QS_ERR_FORMAT, "%s: merges[%d]: a side is empty or not in the vocabulary", nm, k);
        }
        int li = qs_tok_lookup(t, l, (int)ll), ri = qs_tok_lookup(t, r, (int)rl);
        memcpy(buf, l, ll);
        memcpy(buf + ll, r, rl);
        int mi = ll + rl <= (size_t)t->longest ? qs_tok_lookup(t, buf, (int)(ll + rl)) : -1;
        if (li < 0 || ri < 0 || mi < 0) {
            free(buf);
            return qs_error(QS_ERR_FORMAT, "%s: merges[%d] \"%.*s %.*s\": %s is not in the vocabulary", nm, k, (int)QS_MIN(ll, 40), l,
                            (int)QS_MIN(rl, 40), r, li < 0 ? "left piece" : ri < 0 ? "right piece" : "merged piece");
        }
        uint64_t key = ((uint64_t)(uint32_t)li << 32) | (uint32_t)ri;
        size_t h = mix(key) & b->mmask;
        while (b->merges[h].rank >= 0 && b->merges[h].key != key) h = (h + 1) & b->mmask;
        if (b->merges[h].rank < 0) b->merges[h] = (qs_bpe_merge){.key = key, .rank = k, .merged = mi};
    }
    free(buf);
    return QS_OK;
}

// GPT-2 bytes_to_unicode: printable Latin-1 bytes map to themselves, the
// others to U+0100 onwards in byte order.
static void build_bytemap(qs_bpe *b) {
    int n = 0;
    for (int i = 0; i < 512; i++) b->u2b[i] = -1;
    for (int c = 0; c < 256; c++) {
        int printable = (c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255);
        int u = printable ? c : 256 + n++;
        b->u2b[u] = c;
        unsigned char *o = b->b2u[c];
        if (u < 0x80) { o[0] = (unsigned char)u; b->b2u_len[c] = 1; }
        else { o[0] = (unsigned char)(0xC0 | (u >> 6)); o[1] = (unsigned char)(0x80 | (u & 0x3F)); b->b2u_len[c] = 2; }
    }
}

static qs_status compile_regex(qs_bpe *b, const char *rx, int literal, const char *nm, pcre2_code **out) {
    int err = 0;
    PCRE2_SIZE off = 0;
    // the pattern comes from the file: PCRE2 checks its UTF-8 (invalid bytes crashed the compiler; found by fuzzing)
    uint32_t opts = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0);
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)rx, PCRE2_ZERO_TERMINATED, opts, &err, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof msg);
        return qs_error(QS_ERR_FORMAT, "%s: pre_tokenizer regex \"%.60s\": %s at offset %zu", nm, rx, (const char *)msg, (size_t)off);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); // falls back to the interpreter if JIT is unavailable
    (void)b;
    *out = re;
    return QS_OK;
}

static char *dupstr(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

static qs_status copy_op(qs_tok_op *dst, const qs_tok_op *src) {
    *dst = *src;
    dst->a = dupstr(src->a);
    dst->b = dupstr(src->b);
    if ((src->a && !dst->a) || (src->b && !dst->b)) return qs_error(QS_ERR_NOMEM, "out of memory copying tokenizer steps");
    return QS_OK;
}

// Pipelines: the spec's own, or the defaults of its kind (tok_spec.h).
static qs_status build_pipeline(qs_bpe *b, const qs_tok_spec *s, int bytelevel) {
    int expl = s->explicit_pipeline || s->n_norm || s->n_pre || s->n_dec;
    if (s->n_norm < 0 || s->n_norm > QS_TOK_MAX_OPS || s->n_pre < 0 || s->n_pre > QS_TOK_MAX_OPS || s->n_dec < 0 ||
        s->n_dec > QS_TOK_MAX_OPS)
        return qs_error(QS_ERR_ARG, "%s: pipeline step counts out of range", s->name ? s->name : "tokenizer");
    if (expl) {
        for (int i = 0; i < s->n_norm; i++) QS_TRY(copy_op(&b->norm[b->n_norm++], &s->norm[i]));
        for (int i = 0; i < s->n_pre; i++) QS_TRY(copy_op(&b->pre[b->n_pre++], &s->pre[i]));
        for (int i = 0; i < s->n_dec; i++) QS_TRY(copy_op(&b->dec[b->n_dec++], &s->dec[i]));
        return QS_OK;
    }
    if (bytelevel) {
        int n = s->n_pre_regex;
        const char *const *rx = s->pre_regex;
        if (n <= 0 || !rx) rx = qs_tok_pre_regex(NULL, &n);
        for (int i = 0; i < n && i < QS_TOK_MAX_OPS - 1; i++)
            QS_TRY(copy_op(&b->pre[b->n_pre++], &(qs_tok_op){.kind = QS_TOKP_SPLIT, .a = rx[i]}));
        QS_TRY(copy_op(&b->pre[b->n_pre++], &(qs_tok_op){.kind = QS_TOKP_BYTELEVEL, .flag1 = s->add_prefix_space}));
        QS_TRY(copy_op(&b->dec[b->n_dec++], &(qs_tok_op){.kind = QS_TOKD_BYTELEVEL}));
        return QS_OK;
    }
    const char *ms = "\xE2\x96\x81";
    if (s->add_prefix_space) QS_TRY(copy_op(&b->norm[b->n_norm++], &(qs_tok_op){.kind = QS_TOKN_PREPEND, .a = ms}));
    QS_TRY(copy_op(&b->norm[b->n_norm++], &(qs_tok_op){.kind = QS_TOKN_REPLACE, .a = " ", .b = ms}));
    QS_TRY(copy_op(&b->dec[b->n_dec++], &(qs_tok_op){.kind = QS_TOKD_REPLACE, .a = ms, .b = " "}));
    QS_TRY(copy_op(&b->dec[b->n_dec++], &(qs_tok_op){.kind = QS_TOKD_BYTEFALLBACK}));
    QS_TRY(copy_op(&b->dec[b->n_dec++], &(qs_tok_op){.kind = QS_TOKD_FUSE}));
    if (s->add_prefix_space)
        QS_TRY(copy_op(&b->dec[b->n_dec++], &(qs_tok_op){.kind = QS_TOKD_STRIP, .a = " ", .flag1 = 1}));
    return QS_OK;
}

static qs_status build_regexes(qs_bpe *b, const char *nm) {
    for (int i = 0; i < b->n_pre; i++) {
        qs_tok_op *op = &b->pre[i];
        if (op->kind == QS_TOKP_SPLIT) QS_TRY(compile_regex(b, op->a, op->flag2, nm, &b->re[i]));
        else if (op->kind == QS_TOKP_BYTELEVEL && op->flag2) QS_TRY(compile_regex(b, gpt2_regex, 0, nm, &b->re[i]));
        else if (op->kind == QS_TOKP_DIGITS) QS_TRY(compile_regex(b, op->flag1 ? "\\p{N}" : "\\p{N}+", 0, nm, &b->re[i]));
        else if (op->kind == QS_TOKP_WHITESPACE_SPLIT) QS_TRY(compile_regex(b, "\\s+", 0, nm, &b->re[i]));
        else if (op->kind == QS_TOKP_METASPACE) QS_TRY(compile_regex(b, op->a ? op->a : "\xE2\x96\x81", 1, nm, &b->re[i]));
        else if (op->kind < QS_TOKP_SPLIT || op->kind > QS_TOKP_WHITESPACE_SPLIT)
            return qs_error(QS_ERR_FORMAT, "%s: pre-tokenizer step %d has unknown kind %d", nm, i, op->kind);
    }
    return QS_OK;
}

// Added-token trie: children are linked lists (byte, first child, sibling).
static int trie_child(qs_bpe *b, int node, unsigned char c, int create) {
    for (int k = b->trie[node].child; k >= 0; k = b->trie[k].sibling)
        if (b->trie[k].c == c) return k;
    if (!create) return -1;
    if (b->n_trie == b->cap_trie) {
        int ncap = b->cap_trie ? b->cap_trie * 2 : 256;
        qs_bpe_trie *bigger = realloc(b->trie, (size_t)ncap * sizeof *bigger);
        if (!bigger) return -2;
        b->trie = bigger;
        b->cap_trie = ncap;
    }
    int k = b->n_trie++;
    b->trie[k] = (qs_bpe_trie){.c = c, .child = -1, .sibling = b->trie[node].child, .added = -1};
    b->trie[node].child = k;
    return k;
}

static qs_status build_added(qs_bpe *b, const qs_tok_spec *s) {
    b->n_added = s->n_added;
    if (s->n_added == 0) return QS_OK;
    b->added = qs_calloc((size_t)s->n_added, sizeof *b->added, "added tokens");
    if (!b->added) return QS_ERR_NOMEM;
    if (b->n_trie == 0) {
        b->trie = malloc(256 * sizeof *b->trie);
        if (!b->trie) return qs_error(QS_ERR_NOMEM, "out of memory for the added-token trie");
        b->cap_trie = 256;
        b->n_trie = 1;
        b->trie[0] = (qs_bpe_trie){.child = -1, .sibling = -1, .added = -1};
    }
    for (int k = 0; k < s->n_added; k++) {
        b->added[k] = s->added[k];
        b->added[k].content = dupstr(s->added[k].content);
        if (!b->added[k].content) return qs_error(QS_ERR_NOMEM, "out of memory for added tokens");
        const unsigned char *p = (const unsigned char *)b->added[k].content;
        int node = 0;
        for (; *p; p++) {
            node = trie_child(b, node, *p, 1);
            if (node < 0) return qs_error(QS_ERR_NOMEM, "out of memory for the added-token trie");
        }
        if (b->trie[node].added < 0) b->trie[node].added = k;
        b->first_byte[(unsigned char)b->added[k].content[0]] = 1;
    }
    return QS_OK;
}

int qs_bpe_match_added(const qs_bpe *b, const char *s, size_t n, size_t *len) {
    if (b->n_added == 0 || !b->first_byte[(unsigned char)s[0]]) return -1;
    int node = 0, best = -1;
    for (size_t i = 0; i < n; i++) {
        int k = b->trie[node].child;
        while (k >= 0 && b->trie[k].c != (unsigned char)s[i]) k = b->trie[k].sibling;
        if (k < 0) break;
        node = k;
        if (b->trie[node].added >= 0) { best = b->trie[node].added; *len = i + 1; }
    }
    return best;
}

void qs_tok_bpe_free(qs_bpe *b) {
    if (!b) return;
    free(b->merges);
    for (int i = 0; i < QS_TOK_MAX_OPS; i++) {
        if (b->re[i]) pcre2_code_free(b->re[i]);
        free((char *)b->norm[i].a); free((char *)b->norm[i].b);
        free((char *)b->pre[i].a); free((char *)b->pre[i].b);
        free((char *)b->dec[i].a); free((char *)b->dec[i].b);
    }
    for (int k = 0; k < b->n_added; k++)
        if (b->added) free((char *)b->added[k].content);
    free(b->added);
    free(b->trie);
    free(b);
}

qs_status qs_tok_bpe_build(qs_tokenizer *t, const qs_tok_spec *s) {
    const char *nm = s->name ? s->name : "tokenizer";
    qs_bpe *b = qs_calloc(1, sizeof *b, "BPE model");
    if (!b) return QS_ERR_NOMEM;
    t->bpe = b;
    b->bytelevel = s->kind == QS_TOK_BPE_BYTELEVEL;
    b->ignore_merges = s->ignore_merges;
    b->byte_fallback = s->byte_fallback;
    b->fuse_unk = s->fuse_unk;
    build_bytemap(b);
    QS_TRY(build_merges(t, b, s));
    QS_TRY(build_pipeline(b, s, b->bytelevel));
    QS_TRY(build_regexes(b, nm));
    QS_TRY(build_added(b, s));
    return qs_tok_bpe_build_decoder(t, b, nm);
}

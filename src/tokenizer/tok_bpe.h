// tok_bpe.h: the BPE model state shared by tok_bpe.c (building) and
// tok_bpe_encode.c (encoding, decoder texts). Private to src/tokenizer/.
#ifndef QS_TOK_BPE_H
#define QS_TOK_BPE_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdint.h>

#include "tokenizer/tok_internal.h"

typedef struct {
    uint64_t key; // left id << 32 | right id
    int rank;     // -1 = empty slot
    int merged;
} qs_bpe_merge;

typedef struct {
    unsigned char c;
    int child, sibling;
    int added; // index into added[], or -1
} qs_bpe_trie;

struct qs_bpe {
    int bytelevel, ignore_merges, byte_fallback, fuse_unk;
    qs_bpe_merge *merges; // open addressing, mmask + 1 slots
    size_t mmask;
    unsigned char b2u[256][2]; // GPT-2 byte -> unicode char (UTF-8)
    int b2u_len[256];
    int u2b[512];              // codepoint -> byte, or -1
    int n_norm, n_pre, n_dec;
    qs_tok_op norm[QS_TOK_MAX_OPS], pre[QS_TOK_MAX_OPS], dec[QS_TOK_MAX_OPS]; // owned strings
    pcre2_code *re[QS_TOK_MAX_OPS]; // compiled regex of pre[i] (if it splits)
    int n_added;
    qs_tok_added *added;       // owned contents
    qs_bpe_trie *trie;
    int n_trie, cap_trie;
    unsigned char first_byte[256];
};

const qs_bpe_merge *qs_bpe_find_merge(const qs_bpe *b, int l, int r);
// Longest added token at s[0..n): its index (and *len), or -1.
int qs_bpe_match_added(const qs_bpe *b, const char *s, size_t n, size_t *len);
// Computes t->dec / dec_len / dec_sorted / strip_after_bos from b->dec.
qs_status qs_tok_bpe_build_decoder(qs_tokenizer *t, qs_bpe *b, const char *name);

#endif

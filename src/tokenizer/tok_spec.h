// tok_spec.h: a neutral in-memory description of a tokenizer, filled by any
// loader (tokenizer.json, GGUF tokenizer.ggml.* metadata, SentencePiece
// tokenizer.model) and turned into a qs_tokenizer by qs_tokenizer_from_spec.
//
// Everything in a spec is borrowed: qs_tokenizer_from_spec copies what it
// keeps, so the loader may free its buffers afterwards. Unused pointers stay
// NULL and counts 0 (qs_tok_spec_init sets every field to "absent").
//
// Kinds:
//   QS_TOK_BPE_BYTELEVEL  GPT-2 / Llama-3 / Qwen2 byte-level BPE: text is
//                         split by the pre-tokenizer regexes, each piece's
//                         bytes are mapped through the GPT-2 byte-to-unicode
//                         table, then merged by merge rank.
//   QS_TOK_BPE_SPM        SentencePiece-style BPE with merge ranks and
//                         <0xXX> byte fallback (Llama-2 / Mistral / TinyLlama
//                         tokenizer.json): " " -> U+2581, optional prefix U+2581.
//   QS_TOK_SPM_SCORES     SentencePiece score-based merges (llama2.c run.c,
//                         llama.cpp llama-spm): greedy merge of the adjacent
//                         pair whose concatenation has the highest score.
//
// Pipelines: a loader that knows the exact steps (tokenizer.json) lists them
// in norm/pre/dec. When n_norm, n_pre and n_dec are all 0, from_spec uses the
// defaults of the kind:
//   BPE_BYTELEVEL: pre = Split(r) for each r in pre_regex (if none: the GPT-2
//                  regex), then ByteLevel(add_prefix_space); dec = ByteLevel.
//   BPE_SPM:       norm = Prepend(U+2581) if add_prefix_space, Replace(" ", U+2581);
//                  dec = Replace(U+2581, " "), ByteFallback, Fuse,
//                  Strip(" ", 1, 0) if add_prefix_space.
//   SPM_SCORES:    llama2.c behaviour (dummy prefix " " if add_prefix_space,
//                  byte fallback through <0xXX> pieces).
#ifndef QS_TOK_SPEC_H
#define QS_TOK_SPEC_H

#include <stddef.h>
#include "core/qs.h"
#include "tokenizer/tokenizer.h"

typedef enum {
    QS_TOK_NONE = 0,
    QS_TOK_BPE_BYTELEVEL = 1,
    QS_TOK_BPE_SPM = 2,
    QS_TOK_SPM_SCORES = 3,
} qs_tok_kind;

// Token types, with the values of GGUF tokenizer.ggml.token_type (llama.cpp
// LLAMA_TOKEN_TYPE_*), so a GGUF loader can pass its array through.
typedef enum {
    QS_TOKT_UNDEFINED = 0,
    QS_TOKT_NORMAL = 1,
    QS_TOKT_UNKNOWN = 2,
    QS_TOKT_CONTROL = 3,
    QS_TOKT_USER_DEFINED = 4,
    QS_TOKT_UNUSED = 5,
    QS_TOKT_BYTE = 6,
} qs_tok_type;

// An added token (tokenizer.json "added_tokens"): matched in the raw text
// before normalization and the model. `special` tokens are control tokens
// (skipped by decode with skip_special); the others are user-defined text.
typedef struct {
    const char *content; // UTF-8, NUL-terminated
    int id;
    int special, lstrip, rstrip, single_word, normalized;
} qs_tok_added;

// Normalizer steps (applied in order to the text outside added tokens).
typedef enum {
    QS_TOKN_NFC = 1, QS_TOKN_NFKC, QS_TOKN_NFD, QS_TOKN_NFKD, QS_TOKN_LOWERCASE,
    QS_TOKN_PREPEND, // a = string to prepend (to non-empty text)
    QS_TOKN_REPLACE, // replace every occurrence of string a by b
    QS_TOKN_STRIP,   // strip whitespace: flag1 = left, flag2 = right
} qs_tok_norm_kind;

// Pre-tokenizer steps (applied in order, each splitting the current pieces).
typedef enum {
    QS_TOKP_SPLIT = 1,  // a = PCRE2 regex (or literal if flag2), flag1 = behavior (QS_TOK_SPLIT_*), flag3 = invert
    QS_TOKP_BYTELEVEL,  // flag1 = add_prefix_space, flag2 = use_regex (GPT-2 regex split first)
    QS_TOKP_METASPACE,  // a = replacement (U+2581), flag1 = prepend scheme (QS_TOK_PREPEND_*), flag2 = split
    QS_TOKP_DIGITS,     // flag1 = individual_digits
    QS_TOKP_WHITESPACE_SPLIT, // split on whitespace, dropping it
} qs_tok_pre_kind;

enum { QS_TOK_SPLIT_ISOLATED = 0, QS_TOK_SPLIT_REMOVED, QS_TOK_SPLIT_MERGED_PREV, QS_TOK_SPLIT_MERGED_NEXT,
       QS_TOK_SPLIT_CONTIGUOUS };
enum { QS_TOK_PREPEND_ALWAYS = 0, QS_TOK_PREPEND_FIRST, QS_TOK_PREPEND_NEVER };

// Decoder steps (applied in order to the token strings of a decode).
typedef enum {
    QS_TOKD_BYTELEVEL = 1, // GPT-2 unicode chars -> bytes
    QS_TOKD_REPLACE,       // replace string a by b in each token string
    QS_TOKD_BYTEFALLBACK,  // <0xXX> tokens -> raw bytes
    QS_TOKD_FUSE,          // concatenate (no-op for qstar's byte output)
    QS_TOKD_STRIP,         // a = single character; flag1 = count at start, flag2 = count at end
    QS_TOKD_METASPACE,     // a = replacement; flag1 = prepend scheme (strip the leading space it added)
} qs_tok_dec_kind;

typedef struct {
    int kind;       // one of the QS_TOKN_/QS_TOKP_/QS_TOKD_ values of its list
    const char *a;  // string argument (NUL-terminated UTF-8) or NULL
    const char *b;
    int flag1, flag2, flag3;
} qs_tok_op;

#define QS_TOK_MAX_OPS 16

typedef struct qs_tok_spec {
    qs_tok_kind kind;
    const char *name; // for error messages (file name), may be NULL

    // vocabulary: n_vocab pieces, ids 0..n_vocab-1. piece_lens may be NULL
    // (then strlen). For BPE kinds pieces are in the model's own alphabet
    // (byte-level: GPT-2 unicode chars; SPM: U+2581 for space, <0xXX> bytes).
    int n_vocab;
    const char *const *pieces;
    const int *piece_lens;
    const float *scores;   // SPM_SCORES: required; otherwise may be NULL
    const int *types;      // qs_tok_type per id, may be NULL (all normal)

    // merges (BPE kinds), in rank order (rank = index). Either "a b" strings
    // split at the first space (GGUF tokenizer.ggml.merges, old tokenizer.json)
    // or separate left/right arrays (new tokenizer.json [a, b] pairs).
    int n_merges;
    const char *const *merges;
    const char *const *merge_left, *const *merge_right;

    // pre-tokenizer regexes for the default BPE_BYTELEVEL pipeline (each an
    // "Isolated" Split, in order); see qs_tok_pre_regex for llama.cpp names.
    int n_pre_regex;
    const char *const *pre_regex;

    // added / special tokens, matched before the model (longest match first)
    int n_added;
    const qs_tok_added *added;

    int bos_id, eos_id, unk_id, pad_id; // -1 = none
    int add_bos, add_eos;               // what encode with "special" adds
    int add_prefix_space;               // SPM dummy prefix / ByteLevel add_prefix_space
    int ignore_merges;                  // BPE: a word that is itself a vocab piece is one token
    int byte_fallback;                  // BPE_SPM: unknown chars -> <0xXX> tokens
    int fuse_unk;                       // consecutive unknowns -> one unk

    // explicit pipeline (tokenizer.json): used as given when
    // explicit_pipeline is set or any list is non-empty; else the defaults of `kind`
    int explicit_pipeline;
    int n_norm, n_pre, n_dec;
    qs_tok_op norm[QS_TOK_MAX_OPS];
    qs_tok_op pre[QS_TOK_MAX_OPS];
    qs_tok_op dec[QS_TOK_MAX_OPS];

    // SPM_SCORES: SentencePiece normalizer remove_extra_whitespaces (strip
    // leading/trailing spaces, collapse runs of spaces). For SPM_SCORES specs,
    // types CONTROL/UNKNOWN/BYTE are never produced by merging, UNUSED pieces
    // are split back after merging and USER_DEFINED pieces are matched whole
    // in the text first (SentencePiece).
    int remove_extra_whitespaces;
    // SPM_SCORES: SentencePiece normalizer_spec.precompiled_charsmap (NULL/0: identity)
    const unsigned char *precompiled_charsmap;
    size_t precompiled_charsmap_len;
    const char *normalizer_name; // informational (written to tokenizer.model), may be NULL
} qs_tok_spec;

// Sets every field to "absent": ids -1, pointers NULL, counts and flags 0.
void qs_tok_spec_init(qs_tok_spec *s);

// Builds a tokenizer from a spec (validated: counts, ids in range, merges
// naming vocabulary pieces, regexes compiling). Errors name spec->name and
// the field.
qs_status qs_tokenizer_from_spec(qs_tokenizer **out, const qs_tok_spec *s);

// The pre-tokenizer regex list for a llama.cpp tokenizer.ggml.pre name:
// "gpt2" (and "default", NULL, unknown names: the GPT-2 regex), "llama-bpe" /
// "llama3", "qwen2". Sets *n to the count; the strings are static.
const char *const *qs_tok_pre_regex(const char *pre_name, int *n);

#endif

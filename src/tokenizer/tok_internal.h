// tok_internal.h: the qs_tokenizer struct and helpers shared by the files of
// src/tokenizer/ (private to it):
//   tokenizer.c  llama2.c files: parse/load/save, lookup, piece/decode
//   encode.c     score-based SentencePiece encoding (llama2.c run.c) + UTF-8
//   tok_spec.c   qs_tok_spec -> qs_tokenizer, llama.cpp pre-tokenizer regexes
//   tok_open.c   qs_tokenizer_open: files, directories, bounded reads
//   tok_json.c   tokenizer.json (+ tokenizer_config.json) -> qs_tok_spec
//   tok_bpe.c    BPE encoding (byte-level and SentencePiece-style)
//   tok_stream.c streaming UTF-8-safe decoding
//   tok_spm_model.c / tok_spm_write.c  SentencePiece tokenizer.model in / out
//   tok_spm_norm.c SentencePiece normalizer (precompiled charsmap, whitespace)
//   tok_gguf.c   GGUF tokenizer.ggml.* -> qs_tok_spec; tok_export.c writes it out
#ifndef QS_TOK_INTERNAL_H
#define QS_TOK_INTERNAL_H

#include "tokenizer/tokenizer.h"
#include "tokenizer/tok_spec.h"

#define QS_TOK_BOS 1   // <s>, as hard-coded by llama2.c
#define QS_TOK_EOS 2   // </s>
#define QS_TOK_BYTE0 3 // id of <0x00>: byte b falls back to token b + 3

#define QS_TOK_FILE_CAP ((size_t)256 << 20) // bounded reads of tokenizer files

// One entry of the vocabulary sorted by piece bytes (ties by id), for lookups.
typedef struct {
    const char *str;
    int len;
    int id;
} qs_tok_index;

typedef struct qs_bpe qs_bpe; // BPE model state (tok_bpe.c)

struct qs_tokenizer {
    qs_tok_kind kind;     // QS_TOK_SPM_SCORES for llama2.c files
    int llama2c;          // loaded from a llama2.c file (save supported)
    int vocab_size;
    int max_token_length; // header value, written back verbatim by save
    int longest;          // longest piece actually present (sizes merge buffers)
    char **pieces;        // pieces[i]: NUL-terminated copy of piece i (inside arena)
    int *lens;            // lens[i]: byte length of piece i
    float *scores;        // merge scores (score-based kind)
    char *arena;          // all pieces, each followed by a NUL
    qs_tok_index *sorted; // vocabulary sorted by (bytes, id)
    char byte_pieces[512]; // "b\0" for every byte b: what <0xXX> tokens decode to
    int bos_id, eos_id, unk_id, pad_id; // -1 = none
    int add_bos, add_eos, add_prefix_space;
    int byte_id[256];     // id of the <0xXX> token of byte b, or -1
    unsigned char *special; // special[i]: 1 for control tokens (no text in decode), may be NULL
    // decoded text of every token (BPE kinds): dec[i] of dec_len[i] bytes
    char **dec;
    int *dec_len;
    char *dec_arena;
    qs_tok_index *dec_sorted; // tokens sorted by decoded text (for find)
    int strip_after_bos;      // decoder drops one leading space of the first piece
    qs_bpe *bpe;
    // SentencePiece semantics for score-based tokenizers built from a spec
    // (tokenizer.model, GGUF `llama`); llama2.c files keep run.c's exact ones.
    int sp_mode;              // U+2581 in text = space; unknown char -> bytes, else unk (fused)
    int sp_remove_ws;         // normalizer remove_extra_whitespaces
    unsigned char *sp_class;  // per token: QS_SPC_* (NULL: all normal)
    int *sp_user;             // ids of the user-defined pieces, longest first
    int n_sp_user;
    int *sp_unused_slot;      // per token: index among the UNUSED pieces, or -1 (NULL if none)
    int n_sp_unused;
    int sp_split;             // no mergeable piece has a space after a non-space (see encode.c)
    unsigned char *sp_charsmap; // normalizer precompiled_charsmap (validated copy), may be NULL
    size_t sp_charsmap_len;
    int *hash;                // open-addressing piece -> id table (hash_mask + 1 slots, -1 empty), may be NULL
    unsigned hash_mask;
};

// sp_class values: how a piece takes part in SentencePiece encoding.
// UNUSED pieces are merged into like normal ones, then split back into the
// pair that formed them (SentencePiece's resegmentation).
enum { QS_SPC_NORMAL = 0, QS_SPC_NOMERGE = 1, QS_SPC_USER = 2, QS_SPC_UNUSED = 3 };

// Id of the piece with exactly these `len` bytes (lowest id if the vocabulary
// has duplicates), or -1.
int qs_tok_lookup(const qs_tokenizer *t, const char *str, int len);
// SentencePiece normalization (tok_spm_norm.c) of valid UTF-8 s[0..len):
// charsmap rules, remove_extra_whitespaces, dummy prefix; spaces and U+2581
// both come out as ' '. *out is malloc'ed and NUL-terminated.
qs_status qs_tok_sp_normalize(const qs_tokenizer *t, const char *s, size_t len, char **out, size_t *n_out);
// Id of the longest user-defined piece at s[0..n), or -1.
int qs_tok_sp_user_match(const qs_tokenizer *t, const char *s, size_t n);
// Validates a precompiled_charsmap blob (error names `name` and the field).
qs_status qs_tok_charsmap_check(const unsigned char *cm, size_t n, const char *name);
// Builds t->hash over t->pieces (lowest id wins for duplicates), so lookups
// are O(1) instead of a binary search. QS_ERR_NOMEM leaves t->hash NULL.
qs_status qs_tok_hash_build(qs_tokenizer *t);
// Sorts an index of (str, len, id) and looks up in one (same order as lookup).
void qs_tok_index_sort(qs_tok_index *idx, int n);
int qs_tok_index_find(const qs_tok_index *idx, int n, const char *str, int len);

// Length (1-4) of the well-formed UTF-8 sequence at s[off] of s[len], or 0
// after setting an error naming the byte offset.
int qs_tok_utf8_len(const unsigned char *s, size_t len, size_t off);
// Validates all of s[0..len) as UTF-8 (error names the byte offset).
qs_status qs_tok_utf8_check(const char *s, size_t len);

// Reads at most QS_TOK_FILE_CAP bytes of `path` (error if larger). `what`
// names the file kind in messages. The buffer gets a NUL after the data.
qs_status qs_tok_read_file(const char *path, const char *what, unsigned char **out, size_t *size);

// The score-based encoder (encode.c) for t->kind == QS_TOK_SPM_SCORES.
qs_status qs_tok_encode_spm(const qs_tokenizer *t, const char *text, int bos, int eos, int *out, int cap,
                            int *n_out);
// BPE kinds (tok_bpe.c).
qs_status qs_tok_bpe_build(qs_tokenizer *t, const qs_tok_spec *s);
void qs_tok_bpe_free(qs_bpe *b);
qs_status qs_tok_bpe_encode(const qs_tokenizer *t, const char *text, int bos, int eos, int **out, int *n_out,
                            int *cap);

#endif

// tokenizer.h: the tokenizer interface. One opaque qs_tokenizer type with
// several implementations behind it:
//   - llama2.c tokenizers (tokenizer.bin / tok512.bin): a vocabulary of
//     byte-string pieces with merge scores. Encoding follows llama2.c's run.c
//     exactly (dummy-prefix space, greedy merge of the best-scoring pair,
//     <0xXX> byte fallback); decoding follows its `decode` (leading space
//     stripped after BOS, byte tokens turned back into raw bytes). The same
//     score-based encoder serves SentencePiece vocabularies from a spec.
//   - Hugging Face tokenizer.json: byte-level BPE (GPT-2, Llama-3, Qwen2/3)
//     and SentencePiece-style BPE with byte fallback (Llama-2, Mistral).
//   - any other source filling a qs_tok_spec (tok_spec.h): GGUF,
//     tokenizer.model (tok_sources.h).
#ifndef QS_TOKENIZER_H
#define QS_TOKENIZER_H

#include <stddef.h>
#include "core/qs.h"

typedef struct qs_tokenizer qs_tokenizer;

// Opens the tokenizer at `path`: a tokenizer.json (tokenizer_config.json
// beside it is read for add_bos_token / add_eos_token / bos_token /
// eos_token), a SentencePiece tokenizer.model, a .gguf, a llama2.c .bin, or
// a directory holding one of them (tokenizer.json, then tokenizer.model,
// then tokenizer.bin). `vocab_size` is only used by llama2.c files (0 = all).
qs_status qs_tokenizer_open(qs_tokenizer **out, const char *path, int vocab_size);
// Parses a tokenizer.json held in memory (json[0..n)), with the optional
// tokenizer_config.json text (config may be NULL). `name` names the source in
// error messages (e.g. the file path).
qs_status qs_tokenizer_parse_json(qs_tokenizer **out, const char *json, size_t n, const char *config, size_t n2,
                                  const char *name);
// Parses a llama2.c tokenizer held in memory; see qs_tokenizer_load.
qs_status qs_tokenizer_parse_llama2c(qs_tokenizer **out, const unsigned char *buf, size_t n, int vocab_size,
                                     const char *name);
// Parses a SentencePiece tokenizer.model (protobuf ModelProto) held in
// memory: BPE models (Llama-2, Mistral; identity or precompiled-charsmap
// normalizers such as nmt_nfkc); others are QS_ERR_UNSUPPORTED naming the field. Every varint and length is checked.
qs_status qs_tokenizer_parse_model_proto(qs_tokenizer **out, const unsigned char *buf, size_t n, const char *name);

// Loads a llama2.c tokenizer file. `vocab_size` is the model's vocabulary size
// (the file has no count of its own); pass 0 to read pieces until end of file.
// Every length and piece is validated; a truncated file is an error naming `path`.
qs_status qs_tokenizer_load(qs_tokenizer **out, const char *path, int vocab_size);
void qs_tokenizer_free(qs_tokenizer *t);
// Writes the tokenizer in the same llama2.c format (byte-identical round
// trip). Only for score-based (llama2.c / SentencePiece-scores) tokenizers;
// others are QS_ERR_UNSUPPORTED.
qs_status qs_tokenizer_save(const qs_tokenizer *t, const char *path);

int qs_tokenizer_vocab_size(const qs_tokenizer *t);
// BOS / EOS ids (1 and 2 for llama2.c tokenizers), -1 when the tokenizer
// has none (Qwen3 has no BOS). Encode's `bos`/`eos` add nothing then.
int qs_tokenizer_bos(const qs_tokenizer *t);
int qs_tokenizer_eos(const qs_tokenizer *t);
// What the tokenizer's configuration adds with "special tokens" on
// (tokenizer_config.json add_bos_token / add_eos_token, the
// post-processor template, GGUF add_bos/add_eos). llama2.c: bos 1, eos 0.
int qs_tokenizer_add_bos(const qs_tokenizer *t);
int qs_tokenizer_add_eos(const qs_tokenizer *t);
// Short name of the implementation: "llama2c", "spm", "bpe-bytelevel", "bpe-spm".
const char *qs_tokenizer_kind_name(const qs_tokenizer *t);
// 1 if `token` is a control/special token (BOS, EOS, added special tokens):
// decode produces no text for it.
int qs_tokenizer_is_special(const qs_tokenizer *t, int token);

// Encodes UTF-8 `text` into at most `cap` token ids (cap >= strlen+3 is
// always enough for llama2.c tokenizers; for tokenizer.json ones a
// normalizer may expand text, so too small a cap is QS_ERR_ARG: use
// qs_tokenizer_encode_alloc when unsure).
// Invalid UTF-8 is an error (QS_ERR_FORMAT) saying at which byte offset; a
// byte with no token (vocabulary without <0xXX> fallback) is QS_ERR_UNSUPPORTED.
qs_status qs_tokenizer_encode(const qs_tokenizer *t, const char *text, int bos, int eos,
                              int *out, int cap, int *n_out);
// Like qs_tokenizer_encode, into a malloc'ed array (*out, free with free()).
qs_status qs_tokenizer_encode_alloc(const qs_tokenizer *t, const char *text, int bos, int eos, int **out,
                                    int *n_out);
// The text of `token` when it follows `prev` (llama2.c decode semantics).
// Returns a pointer valid until the tokenizer is freed (byte tokens use an
// internal table). Out-of-range ids give "".
const char *qs_tokenizer_piece(const qs_tokenizer *t, int prev, int token);
// Raw vocabulary piece (no decode processing), or NULL if out of range.
const char *qs_tokenizer_raw_piece(const qs_tokenizer *t, int token);
// Decodes `n` tokens into `out` (NUL-terminated, truncated to cap-1 bytes):
// the concatenation of qs_tokenizer_piece(t, tokens[i-1], tokens[i]), with
// BOS and EOS producing no text, so decode(encode(s, bos=1)) == s. An id
// outside the vocabulary is QS_ERR_ARG.
qs_status qs_tokenizer_decode(const qs_tokenizer *t, const int *tokens, int n, char *out, size_t cap);
// Id of the exact piece `piece`, or -1. For tokenizer.json tokenizers the
// piece is looked up both as written in the vocabulary and as the text it
// decodes to (so "<|im_end|>" and " the" both work for byte-level BPE).
int qs_tokenizer_find(const qs_tokenizer *t, const char *piece);

// Streaming decoder for generation: feed ids one at a time; it emits only
// complete UTF-8 characters, holding a partial sequence until the bytes
// that complete it arrive (invalid bytes become U+FFFD). Safe for any id
// sequence: ids outside the vocabulary produce no text.
typedef struct {
    const qs_tokenizer *t;
    int prev;                // previous token id (-1 at start)
    int n_pend;              // bytes held back
    unsigned char pend[8];
    int specials;            // 1: special tokens produce their text (default 0: none)
} qs_tok_stream;
void qs_tok_stream_init(qs_tok_stream *s, const qs_tokenizer *t);
// Appends the text of `token` to out (NUL-terminated, at most cap-1 bytes;
// cap >= 64 + the longest piece is always enough) and sets *n to its length.
// Returns QS_ERR_ARG if cap is too small.
qs_status qs_tok_stream_push(qs_tok_stream *s, int token, char *out, size_t cap, size_t *n);
// Emits what is still held (as U+FFFD for each incomplete sequence).
qs_status qs_tok_stream_flush(qs_tok_stream *s, char *out, size_t cap, size_t *n);

#endif

// tokenizer.h: llama2.c tokenizers (tokenizer.bin / tok512.bin): a vocabulary
// of byte-string pieces with merge scores. Encoding follows llama2.c's
// run.c exactly (dummy-prefix space, greedy merge of the best-scoring pair,
// <0xXX> byte fallback); decoding follows its `decode` (leading space stripped
// after BOS, byte tokens turned back into raw bytes).
#ifndef QS_TOKENIZER_H
#define QS_TOKENIZER_H

#include <stddef.h>
#include "core/qs.h"

typedef struct qs_tokenizer qs_tokenizer;

// Loads a llama2.c tokenizer file. `vocab_size` is the model's vocabulary size
// (the file has no count of its own); pass 0 to read pieces until end of file.
// Every length and piece is validated; a truncated file is an error naming `path`.
qs_status qs_tokenizer_load(qs_tokenizer **out, const char *path, int vocab_size);
void qs_tokenizer_free(qs_tokenizer *t);
// Writes the tokenizer in the same llama2.c format (byte-identical round trip).
qs_status qs_tokenizer_save(const qs_tokenizer *t, const char *path);

int qs_tokenizer_vocab_size(const qs_tokenizer *t);
int qs_tokenizer_bos(const qs_tokenizer *t); // 1 for llama2.c tokenizers
int qs_tokenizer_eos(const qs_tokenizer *t); // 2

// Encodes UTF-8 `text` into at most `cap` token ids (needs cap >= strlen+3).
// Invalid UTF-8 is an error (QS_ERR_FORMAT) saying at which byte offset; a
// byte with no token (vocabulary without <0xXX> fallback) is QS_ERR_UNSUPPORTED.
qs_status qs_tokenizer_encode(const qs_tokenizer *t, const char *text, int bos, int eos,
                              int *out, int cap, int *n_out);
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
// Id of the exact piece `piece`, or -1.
int qs_tokenizer_find(const qs_tokenizer *t, const char *piece);

#endif

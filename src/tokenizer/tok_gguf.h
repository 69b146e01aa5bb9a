// tok_gguf.h: the tokenizer of a GGUF file (tokenizer.ggml.* metadata) as a
// qs_tok_spec, for tok_gguf.c (loading) and tok_export.c (writing it out as
// tokenizer.model / tokenizer.json). Private to src/tokenizer/.
#ifndef QS_TOK_GGUF_H
#define QS_TOK_GGUF_H

#include <stdint.h>
#include "io/gguf.h"
#include "tokenizer/tok_spec.h"

// What a spec filled from a GGUF borrows (freed by qs_tok_gguf_free after the
// spec is no longer used). Pieces point into the GGUF buffer (not
// NUL-terminated: use lens).
typedef struct {
    int n;
    const char **pieces;
    int *lens;
    float *scores;
    int32_t *types;
    const char **merges;   // "a b", NUL-terminated (one allocation with their bytes)
    qs_tok_added *added;   // USER_DEFINED tokens (gpt2)
    char *added_arena;
    char model[32];        // tokenizer.ggml.model
    char pre[64];          // tokenizer.ggml.pre (gpt2; "default" when absent)
} qs_tok_gguf;

// Fills `s` from g's tokenizer.ggml.* keys; `h` holds what s borrows (free
// it with qs_tok_gguf_free, also after an error). Errors name the file and key.
qs_status qs_tok_gguf_spec(const qs_gguf *g, qs_tok_spec *s, qs_tok_gguf *h);
void qs_tok_gguf_free(qs_tok_gguf *h);
// The regexes (and ignore_merges) of a llama.cpp tokenizer.ggml.pre name
// (NULL = "default"); an unknown name is QS_ERR_UNSUPPORTED naming `file`.
qs_status qs_tok_gguf_pre(const char *file, const char *pre, const char *const **rx, int *n, int *ignore_merges);
// The tokenizer of a parsed GGUF.
qs_status qs_tokenizer_from_gguf(qs_tokenizer **out, const qs_gguf *g);

#endif

// tok_internal.h: the qs_tokenizer struct and helpers shared by tokenizer.c
// (load/save/lookup/decode) and encode.c (UTF-8 + BPE merging). Private to
// src/tokenizer/.
#ifndef QS_TOK_INTERNAL_H
#define QS_TOK_INTERNAL_H

#include "tokenizer/tokenizer.h"

#define QS_TOK_BOS 1   // <s>, as hard-coded by llama2.c
#define QS_TOK_EOS 2   // </s>
#define QS_TOK_BYTE0 3 // id of <0x00>: byte b falls back to token b + 3

// One entry of the vocabulary sorted by piece bytes (ties by id), for lookups.
typedef struct {
    const char *str;
    int len;
    int id;
} qs_tok_index;

struct qs_tokenizer {
    int vocab_size;
    int max_token_length; // header value, written back verbatim by save
    int longest;          // longest piece actually present (sizes merge buffers)
    char **pieces;        // pieces[i]: NUL-terminated copy of piece i (inside arena)
    int *lens;            // lens[i]: byte length of piece i
    float *scores;        // merge scores
    char *arena;          // all pieces, each followed by a NUL
    qs_tok_index *sorted; // vocabulary sorted by (bytes, id)
    char byte_pieces[512]; // "b\0" for every byte b: what <0xXX> tokens decode to
};

// Id of the piece with exactly these `len` bytes (lowest id if the vocabulary
// has duplicates), or -1.
int qs_tok_lookup(const qs_tokenizer *t, const char *str, int len);

#endif

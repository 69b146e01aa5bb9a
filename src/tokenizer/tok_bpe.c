// tok_bpe.c: BPE encoding (byte-level and SentencePiece-style).
#include "tokenizer/tok_internal.h"

#include <stdlib.h>

struct qs_bpe {
    int unused;
};

qs_status qs_tok_bpe_build(qs_tokenizer *t, const qs_tok_spec *s) {
    (void)t;
    return qs_error(QS_ERR_UNSUPPORTED, "%s: BPE tokenizers are not implemented yet", s->name ? s->name : "tokenizer");
}

void qs_tok_bpe_free(qs_bpe *b) { free(b); }

qs_status qs_tok_bpe_encode(const qs_tokenizer *t, const char *text, int bos, int eos, int **out, int *n_out,
                            int *cap) {
    (void)t; (void)text; (void)bos; (void)eos; (void)out; (void)n_out; (void)cap;
    return qs_error(QS_ERR_UNSUPPORTED, "encode: BPE tokenizers are not implemented yet");
}

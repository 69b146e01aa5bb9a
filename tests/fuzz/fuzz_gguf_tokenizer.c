// fuzz_gguf_tokenizer.c: libFuzzer target for the tokenizer read from a GGUF
// held in memory (qs_tokenizer_parse_gguf: the GGUF parser, then the
// tokenizer.ggml.* keys); a parsed tokenizer also encodes and decodes a text.
#include <stdint.h>
#include <stdlib.h>

#include "tokenizer/tok_sources.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
    qs_tokenizer *t = NULL;
    if (qs_tokenizer_parse_gguf(&t, d, n, "fuzz.gguf") != QS_OK) return 0;
    int *ids = NULL, m = 0;
    if (qs_tokenizer_encode_alloc(t, "  Hello w\xC3\xB6rld 123 <s>\n", 1, 1, &ids, &m) == QS_OK) {
        char out[256];
        (void)qs_tokenizer_decode(t, ids, m, out, sizeof out);
        free(ids);
    }
    qs_tokenizer_free(t);
    return 0;
}

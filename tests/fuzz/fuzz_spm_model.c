// fuzz_spm_model.c: libFuzzer target for the SentencePiece tokenizer.model
// parser (qs_tokenizer_parse_model_proto); a parsed model also encodes and
// decodes a fixed text.
#include <stdint.h>
#include <stdlib.h>

#include "tokenizer/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
    qs_tokenizer *t = NULL;
    if (qs_tokenizer_parse_model_proto(&t, d, n, "fuzz.model") != QS_OK) return 0;
    int *ids = NULL, m = 0;
    if (qs_tokenizer_encode_alloc(t, "  Hello w\xC3\xB6rld \xE2\x96\x81 <s>\n", 1, 1, &ids, &m) == QS_OK) {
        char out[256];
        (void)qs_tokenizer_decode(t, ids, m, out, sizeof out);
        free(ids);
    }
    qs_tokenizer_free(t);
    return 0;
}

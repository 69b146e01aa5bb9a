// fuzz_tokenizer_json.c: a Hugging Face tokenizer.json through
// qs_tokenizer_parse_json; an accepted tokenizer encodes and decodes a fixed
// text (its pre-tokenizer regexes, normalizers and decoders run).
#include "fuzz_common.h"
#include "tokenizer/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
    qs_tokenizer *t = NULL;
    if (qs_tokenizer_parse_json(&t, (const char *)d, n, NULL, 0, "tokenizer.json") != QS_OK) return 0;
    int ids[256], k = 0;
    if (qs_tokenizer_encode(t, "Hello world! 123 caf\xc3\xa9 \xe2\x80\x94 <s>\n", 1, 1, ids, 256, &k) == QS_OK) {
        char out[4096];
        (void)qs_tokenizer_decode(t, ids, k, out, sizeof out);
    }
    qs_tokenizer_free(t);
    return 0;
}

// fuzz_llama2c_tokenizer.c: a llama2.c tokenizer.bin through
// qs_tokenizer_parse_llama2c (vocabulary size from the first input byte: 0 =
// read to the end); an accepted tokenizer encodes and decodes a fixed text.
#include "fuzz_common.h"
#include "tokenizer/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
    if (n < 1) return 0;
    qs_tokenizer *t = NULL;
    if (qs_tokenizer_parse_llama2c(&t, d + 1, n - 1, d[0] % 64, "tokenizer.bin") != QS_OK) return 0;
    int ids[256], k = 0;
    if (qs_tokenizer_encode(t, "Once upon a time, 12 cats\n", 1, 1, ids, 256, &k) == QS_OK) {
        char out[4096];
        (void)qs_tokenizer_decode(t, ids, k, out, sizeof out);
    }
    qs_tokenizer_free(t);
    return 0;
}

// fuzz_llama2c_model.c: a llama2.c checkpoint through qs_llama2c_parse. An
// accepted model round-trips: qs_llama2c_save_mem then parse gives the same
// config and the same parameter bytes.
#include "fuzz_common.h"
#include "io/model_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
    qs_model a, b;
    if (qs_llama2c_parse(&a, d, n, "fuzz.bin") != QS_OK) return 0;
    unsigned char *out = NULL;
    size_t on = 0;
    FUZZ_CHECK(qs_llama2c_save_mem(&a, &out, &on) == QS_OK, "a loaded model cannot be saved");
    FUZZ_CHECK(on == n, "saved %zu bytes, loaded %zu", on, n);
    FUZZ_CHECK(qs_llama2c_parse(&b, out, on, "saved.bin") == QS_OK, "the saved model does not load");
    FUZZ_CHECK(!memcmp(&a.cfg, &b.cfg, sizeof a.cfg), "config differs after a round trip");
    FUZZ_CHECK(a.layout.numel == b.layout.numel && !memcmp(a.params, b.params, a.layout.numel * sizeof(float)),
               "parameters differ after a round trip");
    free(out);
    qs_model_free(&a);
    qs_model_free(&b);
    return 0;
}

// fuzz_train_state.c: a checkpoint's train_state.safetensors through
// qs_train_state_parse for a fixed tiny model (the one seed_train_state.c
// writes seeds for).
#include "fuzz_common.h"
#include "train/checkpoint.h"
#include "fuzz_tiny_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
    static qs_model m;
    static qs_adamw a;
    static int ready = 0;
    if (!ready) {
        if (fuzz_tiny_model(&m) != QS_OK || qs_adamw_create(&a, m.layout.numel) != QS_OK) abort();
        ready = 1;
    }
    qs_train_state s;
    (void)qs_train_state_parse(d, n, "train_state.safetensors", &m, &s, &a);
    return 0;
}

// seed_train_state.c (built by `make fuzz`, not a harness): writes a valid
// train_state.safetensors of the tiny model of fuzz_train_state.c to argv[1].
#include <stdio.h>
#include "train/checkpoint.h"
#include "fuzz_tiny_model.h"

int main(int argc, char **argv) {
    qs_model m;
    qs_adamw a;
    if (argc != 2 || fuzz_tiny_model(&m) != QS_OK || qs_adamw_create(&a, m.layout.numel) != QS_OK) return 1;
    for (size_t i = 0; i < m.layout.numel; i++) a.m[i] = 0.001f * (float)i, a.v[i] = 1e-6f * (float)i;
    qs_train_state s = {.step = 7, .adam_step = 6, .rng = 42, .data_pos = 9, .data_tokens = 1000,
                        .numel = m.layout.numel, .layout_hash = qs_layout_hash(&m.layout), .fingerprint = 5};
    int rc = qs_train_state_save(argv[1], &s, &a) == QS_OK ? 0 : 1;
    qs_adamw_free(&a);
    qs_model_free(&m);
    return rc;
}

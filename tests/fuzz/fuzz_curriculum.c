// libFuzzer target: the curriculum parser (train/curriculum.h) on arbitrary bytes.
#include <stddef.h>
#include <stdint.h>
#include "train/curriculum.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
    qs_curriculum c;
    (void)qs_curriculum_parse((const char *)d, n, &c);
    return 0;
}

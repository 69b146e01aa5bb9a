// fuzz_common.h: helpers shared by the libFuzzer harnesses (tests/fuzz/fuzz_*.c).
// Each harness defines LLVMFuzzerTestOneInput, calls one parse-from-memory
// entry point of libqstar and frees what it got; where a value is written back,
// it also checks load -> save -> load equality and aborts (a finding) if not.
#ifndef QS_FUZZ_COMMON_H
#define QS_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qstar.h"

// A NUL-terminated copy of the input (parsers of text take C strings).
static inline char *fuzz_cstr(const uint8_t *d, size_t n) {
    char *s = malloc(n + 1);
    if (!s) abort();
    if (n) memcpy(s, d, n);
    s[n] = 0;
    return s;
}

// A failed round trip is a finding: print what differs and abort.
#define FUZZ_CHECK(cond, ...)                                                                         \
    do {                                                                                              \
        if (!(cond)) {                                                                                \
            fprintf(stderr, "round trip: " __VA_ARGS__);                                              \
            fprintf(stderr, " (%s:%d; last error: %s)\n", __FILE__, __LINE__, qstar_last_error());  \
            abort();                                                                                  \
        }                                                                                             \
    } while (0)

#endif

// replay.c: a main() for the fuzz harnesses without libFuzzer, so that any C
// compiler can replay files through them (tests/cli/fuzz_regress.sh runs every
// past finding and the seed corpora this way in `make test`).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) { perror(argv[i]); return 2; }
        size_t cap = 1 << 16, n = 0;
        uint8_t *b = malloc(cap);
        size_t got;
        while (b && (got = fread(b + n, 1, cap - n, f)) > 0) {
            n += got;
            if (n == cap) b = realloc(b, cap *= 2);
        }
        fclose(f);
        if (!b) return 2;
        LLVMFuzzerTestOneInput(b, n);
        free(b);
    }
    return 0;
}

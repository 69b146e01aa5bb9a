// fuzz_shards_meta.c: libFuzzer target for a token directory's meta.json
// parser (qs_shards_parse_meta, src/data/shards.h).
#include <stdint.h>
#include <stdlib.h>

#include "data/shards.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
    qs_shards_meta m;
    if (qs_shards_parse_meta((const char *)d, n, "fuzz/meta.json", &m) == QS_OK) {
        // the parser promises these
        if (m.n_docs > m.n_tokens || m.train_docs > m.n_docs || m.train_tokens > m.n_tokens) abort();
        if (m.width != 2 && m.width != 4) abort();
    }
    return 0;
}

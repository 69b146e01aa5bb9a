// fuzz_gguf.c: libFuzzer target for the GGUF parser (qs_gguf_parse) and what
// reads the parsed file: typed accessors, string/number arrays, and the
// dequantisation of every tensor (small ones, to keep iterations fast).
#include <stdint.h>
#include <stdlib.h>

#include "io/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
    qs_gguf *g = NULL;
    if (qs_gguf_parse(d, n, "fuzz.gguf", &g) != QS_OK) return 0;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const char *k = g->kv[i].key;
        uint32_t u;
        int32_t s;
        int64_t l;
        float f;
        int b;
        qs_gguf_str str;
        const qs_gguf_str *strs;
        float *fa = NULL;
        int32_t *ia = NULL;
        size_t cnt;
        (void)qs_gguf_get_u32(g, k, &u);
        (void)qs_gguf_get_i32(g, k, &s);
        (void)qs_gguf_get_i64(g, k, &l);
        (void)qs_gguf_get_f32(g, k, &f);
        (void)qs_gguf_get_bool(g, k, &b);
        (void)qs_gguf_get_str(g, k, &str);
        if (qs_gguf_get_arr_str(g, k, &strs, &cnt) == QS_OK && cnt) {
            volatile char c = strs[cnt - 1].len ? strs[cnt - 1].s[strs[cnt - 1].len - 1] : 0;
            (void)c;
        }
        if (qs_gguf_get_arr_f32(g, k, &fa, &cnt) == QS_OK) free(fa);
        if (qs_gguf_get_arr_i32(g, k, &ia, &cnt) == QS_OK) free(ia);
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const qs_gguf_tensor *t = &g->t[i];
        if (t->numel == 0 || t->numel > (1u << 20)) continue;
        float *out = malloc((size_t)t->numel * sizeof *out);
        if (out) (void)qs_gguf_tensor_f32(g, t, out);
        free(out);
    }
    qs_gguf_free(g);
    return 0;
}

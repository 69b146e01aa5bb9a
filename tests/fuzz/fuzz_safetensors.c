// fuzz_safetensors.c: qs_st_parse on arbitrary bytes; every tensor of an
// accepted file is converted (qs_st_read_f32 / _i32 where its dtype allows),
// and the file round-trips: written back with qs_st_writer_to_mem and parsed
// again, it holds the same tensors (names, dtypes, shapes, bytes).
#include "fuzz_common.h"
#include "io/safetensors.h"

static void read_all(const qs_safetensors *st) {
    for (int i = 0; i < st->n; i++) {
        const qs_st_tensor *t = &st->t[i];
        void *buf = malloc(t->numel ? t->numel * 4 : 4);
        if (!buf) abort();
        if (t->dtype == QS_DT_I32 || t->dtype == QS_DT_I64) (void)qs_st_read_i32(st, t, buf);
        else (void)qs_st_read_f32(st, t, buf);
        free(buf);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
    qs_safetensors st;
    if (qs_st_parse(&st, d, n, "fuzz.safetensors") != QS_OK) return 0;
    read_all(&st);
    qs_st_writer w = {0};
    qs_status s = QS_OK;
    for (int i = 0; i < st.n && s == QS_OK; i++) {
        const qs_st_tensor *t = &st.t[i];
        s = qs_st_writer_add(&w, t->name, t->dtype, t->ndim, t->shape, st.data + t->begin);
    }
    unsigned char *out = NULL;
    size_t on = 0;
    if (s == QS_OK) s = qs_st_writer_to_mem(&w, &out, &on);
    if (s == QS_OK) { // names longer than the writer's limit are refused there, which is fine
        qs_safetensors b;
        FUZZ_CHECK(qs_st_parse(&b, out, on, "rewritten") == QS_OK, "the written file does not parse");
        FUZZ_CHECK(b.n == st.n, "%d tensors became %d", st.n, b.n);
        for (int i = 0; i < st.n; i++) {
            const qs_st_tensor *x = &st.t[i], *y = &b.t[i];
            FUZZ_CHECK(!strcmp(x->name, y->name) && x->dtype == y->dtype && x->ndim == y->ndim, "tensor %s", x->name);
            FUZZ_CHECK(!memcmp(x->shape, y->shape, sizeof x->shape[0] * (size_t)x->ndim), "shape of %s", x->name);
            FUZZ_CHECK(x->end - x->begin == y->end - y->begin &&
                           !memcmp(st.data + x->begin, b.data + y->begin, x->end - x->begin),
                       "bytes of %s", x->name);
        }
        qs_st_close(&b);
    }
    free(out);
    qs_st_writer_free(&w);
    qs_st_close(&st);
    return 0;
}

// fuzz_dataset.c: text and JSONL datasets through qs_dataset_load_mem with a
// byte-per-token encoder. The first input byte picks the format (text or
// JSONL), the JSONL field ("text" or the nested "a.b") and the held-out
// fraction; batches are then drawn from both streams.
#include "fuzz_common.h"
#include "core/rng.h"
#include "data/dataset.h"

static qs_status bytes_enc(void *ctx, const char *text, int *out, int cap, int *n_out) {
    (void)ctx;
    int n = 0;
    for (; text[n] && n < cap; n++) out[n] = (unsigned char)text[n];
    *n_out = n;
    return text[n] ? QS_ERR_ARG : QS_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
    if (n < 1) return 0;
    qs_dataset_opts o = qs_dataset_opts_default();
    o.format = d[0] & 1 ? QS_DATA_JSONL : QS_DATA_TEXT;
    o.field = d[0] & 2 ? "a.b" : NULL;
    o.val_frac = (d[0] >> 2) / 64.0 * 0.5;
    o.n_threads = 1;
    qs_dataset ds;
    if (qs_dataset_load_mem(&ds, d + 1, n - 1, "fuzz.data", bytes_enc, NULL, &o) != QS_OK) return 0;
    int tok[4 * 8], mask[4 * 8];
    qs_rng r;
    qs_rng_seed(&r, 1);
    if (ds.train.n_tokens) (void)qs_stream_sample(&ds.train, &r, 4, 8, tok, mask, NULL);
    if (ds.val.n_tokens) (void)qs_stream_eval_batch(&ds.val, 0, 4, 8, tok, mask, NULL);
    qs_dataset_free(&ds);
    return 0;
}

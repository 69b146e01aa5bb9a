// libFuzzer target: train_args.json (a resumed run's settings) read through the
// options table (src/api/options.h) from arbitrary bytes; whatever it accepts
// is written back and must read back to the same values.
#include "fuzz_common.h"
#include "api/options.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
    qo_val v[QO_COUNT], w[QO_COUNT];
    memset(v, 0, sizeof v);
    memset(w, 0, sizeof w);
    if (qo_load_args(v, (const char *)d, n, "train_args.json") == QS_OK) {
        char *json = qo_args_json(v);
        if (json) {
            FUZZ_CHECK(qo_load_args(w, json, strlen(json), "again") == QS_OK, "written train_args.json refused");
            for (int k = 0; k < QO_COUNT; k++) {
                FUZZ_CHECK(v[k].set == w[k].set, "option %s set %d vs %d", qo_table[k].name, v[k].set, w[k].set);
                FUZZ_CHECK(v[k].i == w[k].i, "option %s: %ld vs %ld", qo_table[k].name, v[k].i, w[k].i);
                FUZZ_CHECK(v[k].f == w[k].f, "option %s: %.17g vs %.17g", qo_table[k].name, v[k].f, w[k].f);
                FUZZ_CHECK(!v[k].s == !w[k].s && (!v[k].s || !strcmp(v[k].s, w[k].s)), "option %s text", qo_table[k].name);
            }
            free(json);
        }
    }
    qo_clear(v);
    qo_clear(w);
    return 0;
}

// fuzz_quietstar_opts.c: the config.json "quietstar" object through
// qs_qstar_opts_from_json; accepted options round-trip through
// qs_qstar_opts_to_json unchanged.
#include "fuzz_common.h"
#include "quietstar/qstar.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
    char *s = fuzz_cstr(d, n), *js = NULL;
    qs_qstar_opts a, b;
    qs_qstar_opts_default(&a);
    if (qs_qstar_opts_from_json(s, &a) == QS_OK) {
        FUZZ_CHECK(qs_qstar_opts_to_json(&a, &js) == QS_OK, "accepted options cannot be written");
        qs_qstar_opts_default(&b);
        FUZZ_CHECK(qs_qstar_opts_from_json(js, &b) == QS_OK, "written options do not load: %s", js);
        FUZZ_CHECK(!memcmp(&a, &b, sizeof a), "options differ after a round trip: %s", js);
    }
    free(js);
    free(s);
    return 0;
}

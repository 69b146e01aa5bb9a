// fuzz_config.c: config.json (Llama / Mistral / Qwen2 / GPT-2, with its
// "quietstar" block) through qs_hf_config_parse. An accepted config
// round-trips: qs_hf_config_to_text then parse gives the same qs_config and
// the same quietstar block (a value written as inf or null would not load).
#include "fuzz_common.h"
#include "io/model_io.h"
#include "quietstar/qstar.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
    qs_config a, b;
    char *qa = NULL, *qb = NULL, *text = NULL;
    if (qs_hf_config_parse(&a, (const char *)d, n, "config.json", &qa) != QS_OK) return 0;
    if (qa) { // the quietstar block as the CLI reads it
        qs_qstar_opts o;
        qs_qstar_opts_default(&o);
        (void)qs_qstar_opts_from_json(qa, &o);
    }
    qs_status s = qs_hf_config_to_text(&a, qa, &text);
    if (s == QS_OK) {
        FUZZ_CHECK(qs_hf_config_parse(&b, text, strlen(text), "rewritten", &qb) == QS_OK, "written config does not load: %s",
                   text);
        FUZZ_CHECK(!memcmp(&a, &b, sizeof a), "config differs after a round trip: %s", text);
        FUZZ_CHECK((!qa && !qb) || (qa && qb && !strcmp(qa, qb)), "quietstar block differs");
    } else {
        // what cannot be written must be what the writer refuses on purpose (q/k/v bias rules)
        FUZZ_CHECK(s == QS_ERR_UNSUPPORTED || s == QS_ERR_ARG, "writer failed with %d", (int)s);
    }
    free(text);
    free(qa);
    free(qb);
    return 0;
}

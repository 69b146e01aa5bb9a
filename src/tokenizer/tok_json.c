// tok_json.c: Hugging Face tokenizer.json (+ tokenizer_config.json) -> qs_tok_spec.
#include "tokenizer/tok_internal.h"

qs_status qs_tokenizer_parse_json(qs_tokenizer **out, const char *json, size_t n, const char *config, size_t n2,
                                  const char *name) {
    (void)json; (void)n; (void)config; (void)n2;
    if (out) *out = NULL;
    return qs_error(QS_ERR_UNSUPPORTED, "%s: tokenizer.json support is not implemented yet", name ? name : "tokenizer.json");
}

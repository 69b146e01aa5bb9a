// tok_hooks.c: placeholders for the tokenizer sources declared in
// tok_sources.h that are not built yet (the GGUF / tokenizer.model loaders
// replace this file with their real implementations).
#include "tokenizer/tok_sources.h"

qs_status qs_tokenizer_open_gguf(qs_tokenizer **out, const char *path) {
    if (out) *out = NULL;
    return qs_error(QS_ERR_UNSUPPORTED, "%s: GGUF tokenizers are not supported in this build yet",
                    path ? path : "(null)");
}

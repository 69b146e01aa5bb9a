// tok_hooks.c: placeholders for the tokenizer sources declared in
// tok_sources.h that are not built yet (the GGUF / tokenizer.model loaders
// replace this file with their real implementations).
#include "tokenizer/tok_sources.h"

qs_status qs_tokenizer_open_model_proto(qs_tokenizer **out, const char *path) {
    if (out) *out = NULL;
    return qs_error(QS_ERR_UNSUPPORTED, "%s: SentencePiece tokenizer.model files are not supported in this build yet",
                    path ? path : "(null)");
}

qs_status qs_tokenizer_open_gguf(qs_tokenizer **out, const char *path) {
    if (out) *out = NULL;
    return qs_error(QS_ERR_UNSUPPORTED, "%s: GGUF tokenizers are not supported in this build yet",
                    path ? path : "(null)");
}

qs_status qs_tokenizer_export_gguf(const char *gguf_path, const char *dir) {
    (void)dir;
    return qs_error(QS_ERR_UNSUPPORTED, "%s: writing a GGUF file's tokenizer into a model directory is not supported "
                    "in this build yet", gguf_path ? gguf_path : "(null)");
}

// tok_sources.h: tokenizer sources implemented outside the tokenizer.json /
// llama2.c code (by the GGUF and SentencePiece-protobuf loaders), called by
// qs_tokenizer_open. Until those land, tok_hooks.c provides versions that
// return QS_ERR_UNSUPPORTED; the loader that implements them replaces it.
#ifndef QS_TOK_SOURCES_H
#define QS_TOK_SOURCES_H

#include "core/qs.h"
#include "tokenizer/tokenizer.h"

// A SentencePiece tokenizer.model (protobuf ModelProto) file.
qs_status qs_tokenizer_open_model_proto(qs_tokenizer **out, const char *path);
// The tokenizer stored in a GGUF file's tokenizer.ggml.* metadata.
qs_status qs_tokenizer_open_gguf(qs_tokenizer **out, const char *path);
// Writes the tokenizer of a GGUF file into the model directory `dir` in the
// Hugging Face layout (used by qs_model_save_dir when the source is a .gguf).
qs_status qs_tokenizer_export_gguf(const char *gguf_path, const char *dir);

#endif

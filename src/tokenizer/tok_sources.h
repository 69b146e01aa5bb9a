// tok_sources.h: tokenizer sources beyond tokenizer.json / llama2.c files,
// called by qs_tokenizer_open: SentencePiece tokenizer.model files
// (tok_spm_model.c, written by tok_spm_write.c) and the tokenizer of a GGUF
// file (tok_gguf.c, exported to a model directory by tok_export.c).
#ifndef QS_TOK_SOURCES_H
#define QS_TOK_SOURCES_H

#include <stddef.h>
#include "core/qs.h"
#include "tokenizer/tokenizer.h"

struct qs_tok_spec;

// A SentencePiece tokenizer.model (protobuf ModelProto) file; a
// tokenizer_config.json beside it sets add_bos_token / add_eos_token.
qs_status qs_tokenizer_open_model_proto(qs_tokenizer **out, const char *path);
// The tokenizer stored in a GGUF file's tokenizer.ggml.* metadata.
qs_status qs_tokenizer_open_gguf(qs_tokenizer **out, const char *path);
// The same from a GGUF file held in memory (buf must hold the whole file).
qs_status qs_tokenizer_parse_gguf(qs_tokenizer **out, const unsigned char *buf, size_t n, const char *name);

// A SentencePiece ModelProto (BPE; the spec's precompiled_charsmap, else an
// identity normalizer) for a QS_TOK_SPM_SCORES spec: pieces as the spec has them (U+2581 for spaces, <0xXX> bytes),
// scores, types (NULL: all NORMAL; 0 is written as NORMAL), byte_fallback,
// add_prefix_space (add_dummy_prefix), remove_extra_whitespaces, and the
// unk/bos/eos/pad ids with their pieces. *buf is malloc'ed (free it).
qs_status qs_tok_model_proto_build(const struct qs_tok_spec *s, unsigned char **buf, size_t *n);
// The same, written to `path`.
qs_status qs_tokenizer_write_model_proto(const struct qs_tok_spec *s, const char *path);

// Writes the tokenizer of the GGUF file at gguf_path into the directory `dir`
// (which must exist) the way a Hugging Face model directory holds it: a
// `llama` vocabulary as dir/tokenizer.model, a `gpt2` one as dir/tokenizer.json
// (vocab, merges, the pre-tokenizer regexes of its `pre` name, ByteLevel
// decoder); both with dir/tokenizer_config.json (bos/eos/unk tokens,
// add_bos_token, add_eos_token).
qs_status qs_tokenizer_export_gguf(const char *gguf_path, const char *dir);

#endif

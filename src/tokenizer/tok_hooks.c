// tok_hooks.c: placeholders for tokenizer sources declared in tok_sources.h
// that are not built yet. tokenizer.model (tok_spm_model.c) and GGUF
// (tok_gguf.c) loaders are real now; nothing is left here.
#include "tokenizer/tok_sources.h"

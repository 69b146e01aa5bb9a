// model_io.h: loading and saving whole models.
//
// A qstar model directory (Hugging Face layout) holds:
//   config.json        LlamaForCausalLM / MistralForCausalLM / Qwen2ForCausalLM /
//                      GPT2LMHeadModel fields, plus an optional "quietstar" object
//                      (thought settings); on save, the keys of the config.json the
//                      model was loaded from are kept (qs_model.src_config)
//   model.safetensors  F32, F16 or BF16 tensors with HF names (+ Quiet-STaR tensors
//                      under the released code's names: start_embedding,
//                      end_embedding, talk_head.0.{0,2,4}.*)
//   master_weights.safetensors  (optional) the exact F32 weights beside 16-bit ones,
//                      written by training checkpoints (qs_model.save_master) and
//                      preferred on load when they round to model.safetensors
//                      exactly (else ignored), so that resuming stays exact
//   the tokenizer      copied byte-for-byte: tokenizer.json + tokenizer_config.json
//                      (+ special_tokens_map.json), or tokenizer.model, or the
//                      llama2.c tokenizer.bin
// A llama2.c checkpoint (.bin, legacy 7 x int32 header) can be loaded too; its
// q/k rows (interleaved RoPE) are permuted to the internal rotate-half layout.
#ifndef QS_IO_MODEL_IO_H
#define QS_IO_MODEL_IO_H

#include "model/model.h"

typedef struct {
    char tokenizer_path[4096]; // tokenizer found beside the model ("" if none): the
                               // directory's tokenizer.json, else tokenizer.model, else tokenizer.bin
    char *quietstar_json;      // the config.json "quietstar" object as JSON text (malloc'd) or NULL
    int qs_present;            // bitmask of Quiet-STaR tensors present in the file:
                               // 1 start_embedding, 2 end_embedding, 4 talk_head (all 5 tensors)
    int dtype;                 // qs_dtype of model.safetensors' weights (F32 for llama2.c files)
} qs_load_info;

#define QS_MASTER_WEIGHTS_FILE "master_weights.safetensors"

// Loads a model directory, a path to a config.json's directory, or a llama2.c
// .bin file (detected by the path being a regular file). If the file holds any
// Quiet-STaR tensor the model is created with them (absent ones left zero and
// reported through info->qs_present). `info` may be NULL.
qs_status qs_model_load(qs_model *m, const char *path, qs_load_info *info);
void qs_load_info_free(qs_load_info *info);

// Saves a model directory at `dir` (created if needed). Each file is written
// atomically (temp file + fsync + rename). `tokenizer_path` (may be NULL: the
// tokenizer files in dir are left as they are) is a tokenizer file or a
// directory holding one: a tokenizer.json (or any *.json) is copied as
// tokenizer.json with the tokenizer_config.json / special_tokens_map.json
// beside it, a *.model as tokenizer.model (+ those two), a .gguf's tokenizer
// is exported (qs_tokenizer_export_gguf), any other file is copied as the
// llama2.c tokenizer.bin; tokenizer files of another kind already in dir are
// removed. `quietstar_json` (may be NULL) is stored as the "quietstar" object
// of config.json. The weights are written as m->save_dtype (F32 / F16 / BF16,
// round to nearest even; torch_dtype in config.json says which) plus, with
// m->save_master and a 16-bit dtype, master_weights.safetensors (F32).
qs_status qs_model_save_dir(const qs_model *m, const char *dir, const char *tokenizer_path,
                            const char *quietstar_json);
// Parses "bf16" / "f16" / "f32" (also "bfloat16", "float16", "float32",
// "fp16", "fp32") into a qs_dtype for qs_model.save_dtype; -1 if unknown.
int qs_save_dtype_parse(const char *s);

// llama2.c legacy checkpoint read/write (read is used by qs_model_load).
// Save needs a model without q/k/v biases, rope_theta 10000 and rms_norm_eps
// 1e-5 (the values llama2.c assumes); Quiet-STaR tensors are not stored. The
// unused freq_cis tables are written as cosf/sinf(pos / theta^(2j/hd)) in
// float, which can differ by 1 ulp from the ones PyTorch wrote; every other
// byte of a load -> save round trip equals the original file.
qs_status qs_llama2c_load(qs_model *m, const char *path);
qs_status qs_llama2c_save(const qs_model *m, const char *path);
// Row permutation of a [n_heads*hd, cols] q/k matrix between the interleaved
// RoPE layout (llama2.c, llama.cpp's GGUF) and rotate-half (HF): to_hf = 1
// moves interleaved rows (2j, 2j+1) of each head to (j, j + hd/2).
void qs_rope_permute_rows(float *dst, const float *src, int n_heads, int hd, int cols, int to_hf);

// GGUF model (llama / qwen2 architectures; see gguf_model.c): config from the
// <arch>.* keys, tensors dequantised to float32, q/k rows of Llama models
// permuted back to rotate-half. Used by qs_model_load for files that start
// with the GGUF magic.
qs_status qs_gguf_load_model(qs_model *m, const char *path);

// The same from / to memory (`name` names the buffer in messages; the saved
// bytes are malloc'd).
qs_status qs_llama2c_parse(qs_model *m, const unsigned char *data, size_t n, const char *name);
qs_status qs_llama2c_save_mem(const qs_model *m, unsigned char **out, size_t *n);

// config.json read/write (HF field names; unknown architectures and bad
// values are errors naming the file and field).
qs_status qs_hf_config_read(qs_config *c, const char *path, char **quietstar_json);
// The same from memory (`path` names the source in messages; text need not
// be NUL-terminated), and the JSON text qs_hf_config_write writes (malloc'd,
// NUL-terminated).
qs_status qs_hf_config_parse(qs_config *c, const char *text, size_t n, const char *path, char **quietstar_json);
qs_status qs_hf_config_to_text(const qs_config *c, const char *quietstar_json, char **text);
#define QS_CONFIG_FILE_CAP ((size_t)16 << 20) // config.json larger than this is refused before reading
qs_status qs_hf_config_write(const qs_config *c, const char *path, const char *quietstar_json);
// Same, on top of the original config.json text `orig_json` (may be NULL): its
// keys stay (in its order), the ones qstar writes replace theirs (except
// bos/eos_token_id and rope_scaling, kept as spelled), new ones are added;
// torch_dtype (may be NULL: "float32") names the written weights' dtype.
// The released Quiet-STaR key max_thoughts, when the original has it, is set
// to n_ahead + n_talk + 1 of `quietstar_json` (as quiet-star-train.py does).
qs_status qs_hf_config_write_merged(const qs_config *c, const char *path, const char *quietstar_json,
                                    const char *orig_json, const char *torch_dtype);

// (whole-file reads, atomic writes and mkdir -p: io/fileutil.h)

#endif

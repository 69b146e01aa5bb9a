// model_io.h: loading and saving whole models.
//
// A qstar model directory (Hugging Face layout) holds:
//   config.json        LlamaForCausalLM / MistralForCausalLM / Qwen2ForCausalLM fields,
//                      plus an optional "quietstar" object (thought settings)
//   model.safetensors  F32 tensors with HF names (+ Quiet-STaR tensors under the
//                      released code's names: start_embedding, end_embedding,
//                      talk_head.0.{0,2,4}.*)
//   tokenizer.bin      llama2.c tokenizer (copied byte-for-byte) when known
// A llama2.c checkpoint (.bin, legacy 7 x int32 header) can be loaded too; its
// q/k rows (interleaved RoPE) are permuted to the internal rotate-half layout.
#ifndef QS_IO_MODEL_IO_H
#define QS_IO_MODEL_IO_H

#include "model/model.h"

typedef struct {
    char tokenizer_path[4096]; // tokenizer found beside the model ("" if none)
    char *quietstar_json;      // the config.json "quietstar" object as JSON text (malloc'd) or NULL
    int qs_present;            // bitmask of Quiet-STaR tensors present in the file:
                               // 1 start_embedding, 2 end_embedding, 4 talk_head (all 5 tensors)
} qs_load_info;

// Loads a model directory, a path to a config.json's directory, or a llama2.c
// .bin file (detected by the path being a regular file). If the file holds any
// Quiet-STaR tensor the model is created with them (absent ones left zero and
// reported through info->qs_present). `info` may be NULL.
qs_status qs_model_load(qs_model *m, const char *path, qs_load_info *info);
void qs_load_info_free(qs_load_info *info);

// Saves a model directory at `dir` (created if needed). Each file is written
// atomically (temp file + fsync + rename). `tokenizer_path` (may be NULL) is
// copied as dir/tokenizer.bin; `quietstar_json` (may be NULL) is stored as
// the "quietstar" object of config.json.
qs_status qs_model_save_dir(const qs_model *m, const char *dir, const char *tokenizer_path,
                            const char *quietstar_json);

// llama2.c legacy checkpoint read/write (read is used by qs_model_load).
// Save needs a model without q/k/v biases, rope_theta 10000 and rms_norm_eps
// 1e-5 (the values llama2.c assumes); Quiet-STaR tensors are not stored. The
// unused freq_cis tables are written as cosf/sinf(pos / theta^(2j/hd)) in
// float, which can differ by 1 ulp from the ones PyTorch wrote; every other
// byte of a load -> save round trip equals the original file.
qs_status qs_llama2c_load(qs_model *m, const char *path);
qs_status qs_llama2c_save(const qs_model *m, const char *path);
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

// Atomic file write helper: writes `n` bytes to path.tmp, fsyncs, renames
// over `path` and fsyncs the directory.
qs_status qs_write_file_atomic(const char *path, const void *data, size_t n);
// Reads a whole file into a malloc'd buffer.
qs_status qs_read_file(const char *path, unsigned char **data, size_t *n);
// The same, refusing (QS_ERR_FORMAT, naming the file, `what` and the limit)
// a file larger than `max` bytes before reading it.
qs_status qs_read_file_max(const char *path, size_t max, const char *what, unsigned char **data, size_t *n);

// Streaming atomic write (what qs_write_file_atomic is built on): open writes
// to path.tmp; commit flushes, fsyncs, renames over `path` and fsyncs the
// directory; abort (also safe after a failed write/commit) removes path.tmp.
typedef struct {
    void *fp;   // FILE * of the temp file (NULL when closed)
    char *path; // final path
    char *tmp;  // path.tmp
} qs_afile;
qs_status qs_afile_open(qs_afile *f, const char *path);
qs_status qs_afile_write(qs_afile *f, const void *data, size_t n);
qs_status qs_afile_commit(qs_afile *f);
void qs_afile_abort(qs_afile *f);
// Creates `dir` and its missing parents (like mkdir -p).
qs_status qs_mkdir_p(const char *dir);

#endif

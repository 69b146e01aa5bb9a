// gguf.h: read llama.cpp GGUF files (versions 2 and 3; little-endian).
//
// Layout: "GGUF" magic, u32 version, u64 tensor count, u64 metadata count,
// the metadata (key string, u32 value type, value), the tensor infos (name,
// u32 n_dims, u64 dims[n_dims], u32 ggml type, u64 offset), padding to
// `general.alignment` (default 32), then the tensor data. A string is a u64
// byte length followed by the bytes (no terminating NUL); an array is a u32
// element type, a u64 count and the elements.
//
// The parser works from memory (qs_gguf_parse) and validates every length,
// count and offset before use: counts must fit in the bytes left, strings and
// arrays inside the buffer, tensor types known, dims products without
// overflow, each tensor's bytes aligned and inside the data section. Errors
// name the file and the field. All strings handed out point into the buffer
// and are NOT NUL-terminated (use the length); keys and tensor names are
// NUL-terminated copies.
#ifndef QS_IO_GGUF_H
#define QS_IO_GGUF_H

#include <stddef.h>
#include <stdint.h>
#include "core/qs.h"

// Metadata value types (numbering of the GGUF format).
typedef enum {
    QS_GGUF_U8 = 0, QS_GGUF_I8 = 1, QS_GGUF_U16 = 2, QS_GGUF_I16 = 3, QS_GGUF_U32 = 4, QS_GGUF_I32 = 5,
    QS_GGUF_F32 = 6, QS_GGUF_BOOL = 7, QS_GGUF_STRING = 8, QS_GGUF_ARRAY = 9, QS_GGUF_U64 = 10,
    QS_GGUF_I64 = 11, QS_GGUF_F64 = 12
} qs_gguf_vtype;

// Tensor types (ggml numbering) that qstar knows the block size of.
enum {
    QS_GGML_F32 = 0, QS_GGML_F16 = 1, QS_GGML_Q4_0 = 2, QS_GGML_Q4_1 = 3, QS_GGML_Q5_0 = 6, QS_GGML_Q5_1 = 7,
    QS_GGML_Q8_0 = 8, QS_GGML_Q8_1 = 9, QS_GGML_Q2_K = 10, QS_GGML_Q3_K = 11, QS_GGML_Q4_K = 12,
    QS_GGML_Q5_K = 13, QS_GGML_Q6_K = 14, QS_GGML_Q8_K = 15, QS_GGML_I8 = 24, QS_GGML_I16 = 25,
    QS_GGML_I32 = 26, QS_GGML_I64 = 27, QS_GGML_F64 = 28, QS_GGML_BF16 = 30
};

typedef struct {
    const char *s; // points into the buffer; not NUL-terminated
    size_t len;
} qs_gguf_str;

typedef struct {
    char *key;          // NUL-terminated copy
    qs_gguf_vtype type;
    // scalars: the value (integers in i or u, both set when representable;
    // floats in f; bool in u as 0/1); strings: str
    int64_t i;
    uint64_t u;
    double f;
    int is_signed_neg;  // integer value is negative (only i is meaningful)
    qs_gguf_str str;
    // arrays: element type, count, first element in the buffer, and for
    // string arrays a table of all elements (malloc'd)
    qs_gguf_vtype arr_type;
    uint64_t arr_n;
    const uint8_t *arr_data;
    qs_gguf_str *arr_strs;
} qs_gguf_kv;

typedef struct {
    char *name;           // NUL-terminated copy
    int n_dims;           // 1..4
    int64_t ne[4];        // ggml order: ne[0] is the contiguous (row) length; unused dims are 1
    uint32_t type;        // QS_GGML_*
    uint64_t offset;      // relative to the data section
    uint64_t numel, nbytes;
    const uint8_t *data;  // points into the buffer
} qs_gguf_tensor;

typedef struct {
    char *path;           // display name given to parse/open (copy)
    uint32_t version;
    uint64_t n_kv, n_tensors;
    qs_gguf_kv *kv;
    qs_gguf_tensor *t;
    uint32_t alignment;   // general.alignment or 32
    size_t data_offset;   // start of the data section in the buffer
    const uint8_t *buf;   // the whole file
    size_t buf_len;
    void *map;            // owned mapping / buffer (open only)
    size_t map_len;
    int map_is_mmap;
} qs_gguf;

// Parses `buf` (n bytes; `name` is used in messages). The result refers to
// `buf`, which must outlive it. On error *out is NULL.
qs_status qs_gguf_parse(const uint8_t *buf, size_t n, const char *name, qs_gguf **out);
// Maps (read-only) and parses a file; the result owns the mapping.
qs_status qs_gguf_open(const char *path, qs_gguf **out);
void qs_gguf_free(qs_gguf *g);
// 1 if the file at path starts with the GGUF magic (0 if not or unreadable).
int qs_gguf_is_gguf_file(const char *path);

// ---- metadata ----
const qs_gguf_kv *qs_gguf_find(const qs_gguf *g, const char *key); // NULL if absent
const char *qs_gguf_vtype_name(qs_gguf_vtype t);
// Typed getters: error (naming the file and key) when the key is missing, has
// a different type or its value does not fit. Integer getters accept any
// integer type whose value fits; f32/f64 accept float types (and integers);
// bool accepts bool only; str accepts string only.
qs_status qs_gguf_get_u32(const qs_gguf *g, const char *key, uint32_t *out);
qs_status qs_gguf_get_i32(const qs_gguf *g, const char *key, int32_t *out);
qs_status qs_gguf_get_i64(const qs_gguf *g, const char *key, int64_t *out);
qs_status qs_gguf_get_f32(const qs_gguf *g, const char *key, float *out);
qs_status qs_gguf_get_bool(const qs_gguf *g, const char *key, int *out);
qs_status qs_gguf_get_str(const qs_gguf *g, const char *key, qs_gguf_str *out);
// Same, but an absent key leaves *out unchanged and returns QS_OK.
qs_status qs_gguf_opt_u32(const qs_gguf *g, const char *key, uint32_t *out);
qs_status qs_gguf_opt_i32(const qs_gguf *g, const char *key, int32_t *out);
qs_status qs_gguf_opt_f32(const qs_gguf *g, const char *key, float *out);
qs_status qs_gguf_opt_bool(const qs_gguf *g, const char *key, int *out);
// Arrays. str: *out points at the file's internal table (do not free).
// f32 / i32: *out is malloc'd (free it); elements of any numeric type are
// converted (i32: integers that fit, error otherwise; f32: floats and integers).
qs_status qs_gguf_get_arr_str(const qs_gguf *g, const char *key, const qs_gguf_str **out, size_t *n);
qs_status qs_gguf_get_arr_f32(const qs_gguf *g, const char *key, float **out, size_t *n);
qs_status qs_gguf_get_arr_i32(const qs_gguf *g, const char *key, int32_t **out, size_t *n);

// ---- tensors ----
const qs_gguf_tensor *qs_gguf_find_tensor(const qs_gguf *g, const char *name); // NULL if absent
// Name ("F32", "Q8_0", ...) of a tensor type, or NULL if unknown.
const char *qs_ggml_type_name(uint32_t type);
// Block size in elements and bytes of a known type (0 if unknown).
int qs_ggml_type_size(uint32_t type, uint32_t *block_elems, uint32_t *block_bytes);
// Dequantises a tensor to float32 (`out` holds numel floats). Supported:
// F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K; other types are UNSUPPORTED errors
// naming the file, the tensor and the type.
qs_status qs_gguf_tensor_f32(const qs_gguf *g, const qs_gguf_tensor *t, float *out);

#endif

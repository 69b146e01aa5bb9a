// safetensors.h: read and write the safetensors format
// (8-byte little-endian header length N, N bytes of JSON header, raw data).
// Reading validates everything: header length within the file, JSON well
// formed, every dtype known, every shape non-negative and consistent with its
// byte range, every [begin,end) offset inside the data section and ordered
// without overlap. Errors name the file and the offending tensor.
#ifndef QS_IO_SAFETENSORS_H
#define QS_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "core/qs.h"
#include "model/config.h"

typedef enum { QS_DT_F32, QS_DT_F16, QS_DT_BF16, QS_DT_I32, QS_DT_I64, QS_DT_F64, QS_DT_I8, QS_DT_U8, QS_DT_BOOL } qs_dtype;

typedef struct {
    char *name;
    qs_dtype dtype;
    int ndim;
    int64_t shape[8];
    size_t numel;
    size_t begin, end; // byte offsets relative to the data section
} qs_st_tensor;

typedef struct {
    char *path;
    qs_st_tensor *t;     // sorted by name (qs_st_find is a binary search)
    int n;
    unsigned char *data; // data section (file contents after the header)
    size_t data_len;
    unsigned char *file; // whole file buffer (owned)
    size_t file_len;
    int borrowed;        // 1: `file` belongs to the caller (qs_st_parse)
} qs_safetensors;

// Name ("F32", ...) and element size in bytes of a dtype.
const char *qs_dtype_name(qs_dtype dt);
size_t qs_dtype_size(qs_dtype dt);

// Maps the file read-only and validates the header (see above).
qs_status qs_st_open(qs_safetensors *st, const char *path);
void qs_st_close(qs_safetensors *st);
// The same validation on a buffer the caller keeps alive until qs_st_close
// (`name` names it in messages).
qs_status qs_st_parse(qs_safetensors *st, const unsigned char *data, size_t len, const char *name);
// Compares every tensor of `st` that the layout of config `c` (with the
// Quiet-STaR tensors when with_quietstar) names with the shape the config
// implies, before anything is allocated for the model: error naming the file,
// the tensor and both shapes.
qs_status qs_st_check_config(const qs_safetensors *st, const qs_config *c, int with_quietstar);
const qs_st_tensor *qs_st_find(const qs_safetensors *st, const char *name); // NULL if absent
// Converts to float32 (F32/F16/BF16/F64 accepted). `out` has numel floats.
qs_status qs_st_read_f32(const qs_safetensors *st, const qs_st_tensor *t, float *out);
// Converts to int32 (I32/I64 accepted, I64 values must fit).
qs_status qs_st_read_i32(const qs_safetensors *st, const qs_st_tensor *t, int32_t *out);

// Writer: collect tensors (data is copied at add time or referenced until
// write? -> referenced: `data` must stay valid until qs_st_writer_write),
// then write the file atomically (temp file, fsync, rename).
typedef struct {
    char name[128];
    qs_dtype dtype;  // QS_DT_F32 or QS_DT_I32 or QS_DT_I64
    int ndim;
    int64_t shape[8];
    const void *data;
} qs_st_wtensor;

typedef struct {
    qs_st_wtensor *t;
    int n, cap;
} qs_st_writer;

qs_status qs_st_writer_add(qs_st_writer *w, const char *name, qs_dtype dtype, int ndim,
                           const int64_t *shape, const void *data);
qs_status qs_st_writer_write(qs_st_writer *w, const char *path);
// The file's bytes in memory (malloc'd) instead.
qs_status qs_st_writer_to_mem(const qs_st_writer *w, unsigned char **out, size_t *n);
void qs_st_writer_free(qs_st_writer *w);

#endif

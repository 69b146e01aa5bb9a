// gguf.c: GGUF v2/v3 parser (from memory), file open, metadata accessors.
// Every length, count and offset is checked against the bytes left before
// it is used; messages name the file and the field.
#include "io/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    const uint8_t *b;
    size_t n, pos;
    const char *name;
} reader;

static size_t left(const reader *r) { return r->n - r->pos; }

static qs_status need(const reader *r, size_t k, const char *what) {
    if (k > left(r))
        return qs_error(QS_ERR_FORMAT, "%s: %s: needs %zu bytes at offset %zu but only %zu are left (truncated file?)",
                        r->name, what, k, r->pos, left(r));
    return QS_OK;
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

static qs_status rd_u32(reader *r, uint32_t *v, const char *what) {
    QS_TRY(need(r, 4, what));
    *v = le32(r->b + r->pos);
    r->pos += 4;
    return QS_OK;
}

static qs_status rd_u64(reader *r, uint64_t *v, const char *what) {
    QS_TRY(need(r, 8, what));
    *v = le64(r->b + r->pos);
    r->pos += 8;
    return QS_OK;
}

static qs_status rd_str(reader *r, qs_gguf_str *s, const char *what) {
    uint64_t len;
    QS_TRY(rd_u64(r, &len, what));
    if (len > left(r))
        return qs_error(QS_ERR_FORMAT, "%s: %s: string length %llu exceeds the %zu bytes left at offset %zu", r->name,
                        what, (unsigned long long)len, left(r), r->pos);
    s->s = (const char *)r->b + r->pos;
    s->len = (size_t)len;
    r->pos += (size_t)len;
    return QS_OK;
}

// A NUL-terminated copy of a key or tensor name (no embedded NUL allowed).
static qs_status dup_name(const reader *r, const qs_gguf_str *s, char **out, const char *what) {
    if (s->len == 0) return qs_error(QS_ERR_FORMAT, "%s: %s is empty", r->name, what);
    if (memchr(s->s, 0, s->len)) return qs_error(QS_ERR_FORMAT, "%s: %s contains a NUL byte", r->name, what);
    *out = qs_malloc(s->len + 1, what);
    if (!*out) return QS_ERR_NOMEM;
    memcpy(*out, s->s, s->len);
    (*out)[s->len] = 0;
    return QS_OK;
}

// Encoded size of a fixed-size value type (0 for string/array, -1 if unknown).
static int vsize(uint32_t t) {
    switch (t) {
    case QS_GGUF_U8: case QS_GGUF_I8: case QS_GGUF_BOOL: return 1;
    case QS_GGUF_U16: case QS_GGUF_I16: return 2;
    case QS_GGUF_U32: case QS_GGUF_I32: case QS_GGUF_F32: return 4;
    case QS_GGUF_U64: case QS_GGUF_I64: case QS_GGUF_F64: return 8;
    case QS_GGUF_STRING: case QS_GGUF_ARRAY: return 0;
    default: return -1;
    }
}

const char *qs_gguf_vtype_name(qs_gguf_vtype t) {
    static const char *const N[] = {"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
                                    "bool", "string", "array", "uint64", "int64", "float64"};
    return (unsigned)t < sizeof N / sizeof *N ? N[t] : "unknown";
}

// Decodes a fixed-size scalar at p into kv's i/u/f fields.
static void decode_scalar(qs_gguf_kv *kv, uint32_t t, const uint8_t *p) {
    uint64_t u = 0;
    int64_t i = 0;
    switch (t) {
    case QS_GGUF_U8: case QS_GGUF_BOOL: u = p[0]; i = (int64_t)u; break;
    case QS_GGUF_I8: i = (int8_t)p[0]; break;
    case QS_GGUF_U16: u = (uint64_t)p[0] | (uint64_t)p[1] << 8; i = (int64_t)u; break;
    case QS_GGUF_I16: i = (int16_t)(uint16_t)(p[0] | p[1] << 8); break;
    case QS_GGUF_U32: u = le32(p); i = (int64_t)u; break;
    case QS_GGUF_I32: i = (int32_t)le32(p); break;
    case QS_GGUF_U64: u = le64(p); i = u > INT64_MAX ? INT64_MAX : (int64_t)u; break;
    case QS_GGUF_I64: i = (int64_t)le64(p); break;
    case QS_GGUF_F32: { uint32_t b = le32(p); float f; memcpy(&f, &b, 4); kv->f = f; return; }
    case QS_GGUF_F64: { uint64_t b = le64(p); double d; memcpy(&d, &b, 8); kv->f = d; return; }
    default: return;
    }
    if (t == QS_GGUF_I8 || t == QS_GGUF_I16 || t == QS_GGUF_I32 || t == QS_GGUF_I64) {
        kv->is_signed_neg = i < 0;
        u = i < 0 ? 0 : (uint64_t)i;
    }
    kv->i = i;
    kv->u = u;
    kv->f = kv->is_signed_neg ? (double)i : (double)u;
}

static qs_status parse_array(reader *r, qs_gguf_kv *kv, const char *what) {
    uint32_t et;
    uint64_t cnt;
    QS_TRY(rd_u32(r, &et, what));
    int es = vsize(et);
    if (es < 0 || et == QS_GGUF_ARRAY)
        return qs_error(QS_ERR_FORMAT, "%s: %s: unsupported array element type %u", r->name, what, et);
    QS_TRY(rd_u64(r, &cnt, what));
    size_t min = et == QS_GGUF_STRING ? 8 : (size_t)es; // bytes per element at least
    if (cnt > left(r) / min)
        return qs_error(QS_ERR_FORMAT, "%s: %s: array count %llu of %s cannot fit in the %zu bytes left at offset %zu",
                        r->name, what, (unsigned long long)cnt, qs_gguf_vtype_name(et), left(r), r->pos);
    kv->arr_type = (qs_gguf_vtype)et;
    kv->arr_n = cnt;
    kv->arr_data = r->b + r->pos;
    if (et != QS_GGUF_STRING) {
        r->pos += (size_t)cnt * (size_t)es;
        return QS_OK;
    }
    kv->arr_strs = qs_calloc(cnt ? (size_t)cnt : 1, sizeof *kv->arr_strs, what);
    if (!kv->arr_strs) return QS_ERR_NOMEM;
    char ew[320];
    for (uint64_t k = 0; k < cnt; k++) {
        if (r->pos + 8 <= r->n && le64(r->b + r->pos) <= left(r) - 8) { // fast path, no message formatting
            kv->arr_strs[k].len = (size_t)le64(r->b + r->pos);
            kv->arr_strs[k].s = (const char *)r->b + r->pos + 8;
            r->pos += 8 + kv->arr_strs[k].len;
            continue;
        }
        snprintf(ew, sizeof ew, "%.280s element %llu", what, (unsigned long long)k);
        QS_TRY(rd_str(r, &kv->arr_strs[k], ew));
    }
    return QS_OK;
}

static qs_status parse_kv(reader *r, qs_gguf_kv *kv, uint64_t idx) {
    char what[320];
    qs_gguf_str key;
    snprintf(what, sizeof what, "metadata #%llu key", (unsigned long long)idx);
    QS_TRY(rd_str(r, &key, what));
    QS_TRY(dup_name(r, &key, &kv->key, what));
    snprintf(what, sizeof what, "metadata '%.200s' (#%llu)", kv->key, (unsigned long long)idx);
    uint32_t t;
    QS_TRY(rd_u32(r, &t, what));
    int es = vsize(t);
    if (es < 0) return qs_error(QS_ERR_FORMAT, "%s: %s: unknown value type %u", r->name, what, t);
    kv->type = (qs_gguf_vtype)t;
    if (t == QS_GGUF_STRING) return rd_str(r, &kv->str, what);
    if (t == QS_GGUF_ARRAY) return parse_array(r, kv, what);
    QS_TRY(need(r, (size_t)es, what));
    if (t == QS_GGUF_BOOL && r->b[r->pos] > 1)
        return qs_error(QS_ERR_FORMAT, "%s: %s: bool value %u is neither 0 nor 1", r->name, what, r->b[r->pos]);
    decode_scalar(kv, t, r->b + r->pos);
    r->pos += (size_t)es;
    return QS_OK;
}

static const struct {
    uint32_t type, blk, bytes;
    const char *name;
} TYPES[] = {
    {QS_GGML_F32, 1, 4, "F32"},        {QS_GGML_F16, 1, 2, "F16"},        {QS_GGML_Q4_0, 32, 18, "Q4_0"},
    {QS_GGML_Q4_1, 32, 20, "Q4_1"},    {QS_GGML_Q5_0, 32, 22, "Q5_0"},    {QS_GGML_Q5_1, 32, 24, "Q5_1"},
    {QS_GGML_Q8_0, 32, 34, "Q8_0"},    {QS_GGML_Q8_1, 32, 36, "Q8_1"},    {QS_GGML_Q2_K, 256, 84, "Q2_K"},
    {QS_GGML_Q3_K, 256, 110, "Q3_K"},  {QS_GGML_Q4_K, 256, 144, "Q4_K"},  {QS_GGML_Q5_K, 256, 176, "Q5_K"},
    {QS_GGML_Q6_K, 256, 210, "Q6_K"},  {QS_GGML_Q8_K, 256, 292, "Q8_K"},  {QS_GGML_I8, 1, 1, "I8"},
    {QS_GGML_I16, 1, 2, "I16"},        {QS_GGML_I32, 1, 4, "I32"},        {QS_GGML_I64, 1, 8, "I64"},
    {QS_GGML_F64, 1, 8, "F64"},        {QS_GGML_BF16, 1, 2, "BF16"},
};

int qs_ggml_type_size(uint32_t type, uint32_t *block_elems, uint32_t *block_bytes) {
    for (size_t i = 0; i < sizeof TYPES / sizeof *TYPES; i++)
        if (TYPES[i].type == type) {
            if (block_elems) *block_elems = TYPES[i].blk;
            if (block_bytes) *block_bytes = TYPES[i].bytes;
            return 1;
        }
    if (block_elems) *block_elems = 0;
    if (block_bytes) *block_bytes = 0;
    return 0;
}

const char *qs_ggml_type_name(uint32_t type) {
    for (size_t i = 0; i < sizeof TYPES / sizeof *TYPES; i++)
        if (TYPES[i].type == type) return TYPES[i].name;
    return NULL;
}

// Dims, element count and byte size of one tensor info (checked for overflow).
static qs_status tensor_shape(reader *r, qs_gguf_tensor *t, const char *what) {
    uint32_t nd;
    QS_TRY(rd_u32(r, &nd, what));
    if (nd < 1 || nd > 4)
        return qs_error(QS_ERR_FORMAT, "%s: %s: n_dims %u is outside 1..4", r->name, what, nd);
    t->n_dims = (int)nd;
    for (int d = 0; d < 4; d++) t->ne[d] = 1;
    uint64_t numel = 1;
    for (uint32_t d = 0; d < nd; d++) {
        uint64_t v;
        QS_TRY(rd_u64(r, &v, what));
        if (v > (uint64_t)INT64_MAX || (v && numel > (uint64_t)INT64_MAX / v))
            return qs_error(QS_ERR_FORMAT, "%s: %s: dims overflow (dim %u = %llu makes the element count too large)",
                            r->name, what, d, (unsigned long long)v);
        t->ne[d] = (int64_t)v;
        numel *= v;
    }
    t->numel = numel;
    return QS_OK;
}

static qs_status parse_tensor_info(reader *r, qs_gguf_tensor *t, uint64_t idx) {
    char what[320];
    qs_gguf_str nm;
    snprintf(what, sizeof what, "tensor #%llu name", (unsigned long long)idx);
    QS_TRY(rd_str(r, &nm, what));
    QS_TRY(dup_name(r, &nm, &t->name, what));
    snprintf(what, sizeof what, "tensor '%.200s' (#%llu)", t->name, (unsigned long long)idx);
    QS_TRY(tensor_shape(r, t, what));
    QS_TRY(rd_u32(r, &t->type, what));
    uint32_t blk, bytes;
    if (!qs_ggml_type_size(t->type, &blk, &bytes))
        return qs_error(QS_ERR_FORMAT, "%s: %s: unknown tensor type %u", r->name, what, t->type);
    if (t->ne[0] % blk != 0)
        return qs_error(QS_ERR_FORMAT, "%s: %s: row length %lld is not a multiple of the %s block size %u", r->name,
                        what, (long long)t->ne[0], qs_ggml_type_name(t->type), blk);
    uint64_t blocks = t->numel / blk;
    if (blocks > UINT64_MAX / 2 / bytes)
        return qs_error(QS_ERR_FORMAT, "%s: %s: dims overflow (byte size too large)", r->name, what);
    t->nbytes = blocks * bytes;
    return rd_u64(r, &t->offset, what);
}

// Checks alignment, then each tensor's data range inside the data section.
static qs_status place_tensors(reader *r, qs_gguf *g) {
    const qs_gguf_kv *a = qs_gguf_find(g, "general.alignment");
    g->alignment = 32;
    if (a) {
        if (a->type != QS_GGUF_U32)
            return qs_error(QS_ERR_FORMAT, "%s: metadata 'general.alignment' has type %s, expected uint32", r->name,
                            qs_gguf_vtype_name(a->type));
        if (a->u == 0 || (a->u & (a->u - 1)) != 0)
            return qs_error(QS_ERR_FORMAT, "%s: metadata 'general.alignment' = %llu is not a power of two", r->name,
                            (unsigned long long)a->u);
        g->alignment = (uint32_t)a->u;
    }
    size_t pad = (g->alignment - r->pos % g->alignment) % g->alignment;
    if (g->n_tensors > 0 && pad > left(r))
        return qs_error(QS_ERR_FORMAT, "%s: data section: padding to %u bytes runs past the end of the file", r->name,
                        g->alignment);
    g->data_offset = g->n_tensors > 0 ? r->pos + pad : r->pos;
    size_t dlen = r->n - QS_MIN(g->data_offset, r->n);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        qs_gguf_tensor *t = &g->t[i];
        if (t->offset % g->alignment != 0)
            return qs_error(QS_ERR_FORMAT, "%s: tensor '%s': offset %llu is not a multiple of the alignment %u", r->name,
                            t->name, (unsigned long long)t->offset, g->alignment);
        if (t->offset > dlen || t->nbytes > dlen - t->offset)
            return qs_error(QS_ERR_FORMAT,
                            "%s: tensor '%s': offset %llu + %llu bytes runs past the end of the data section (%zu bytes)",
                            r->name, t->name, (unsigned long long)t->offset, (unsigned long long)t->nbytes, dlen);
        t->data = r->b + g->data_offset + t->offset;
    }
    return QS_OK;
}

static int cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// Duplicate keys or tensor names are errors (sorted copy of the names: n log n).
static qs_status check_unique(const qs_gguf *g, int tensors) {
    uint64_t n = tensors ? g->n_tensors : g->n_kv;
    if (n < 2) return QS_OK;
    char **v = qs_malloc((size_t)n * sizeof *v, "GGUF names");
    if (!v) return QS_ERR_NOMEM;
    for (uint64_t i = 0; i < n; i++) v[i] = tensors ? g->t[i].name : g->kv[i].key;
    qsort(v, (size_t)n, sizeof *v, cmp_name);
    qs_status st = QS_OK;
    for (uint64_t i = 1; i < n && st == QS_OK; i++)
        if (strcmp(v[i - 1], v[i]) == 0)
            st = qs_error(QS_ERR_FORMAT, "%s: %s '%s' appears twice", g->path, tensors ? "tensor" : "metadata key", v[i]);
    free(v);
    return st;
}

static qs_status parse_header(reader *r, qs_gguf *g) {
    QS_TRY(need(r, 4, "magic"));
    if (memcmp(r->b, "GGUF", 4) != 0) return qs_error(QS_ERR_FORMAT, "%s: magic: not a GGUF file", r->name);
    r->pos = 4;
    QS_TRY(rd_u32(r, &g->version, "version"));
    if (g->version != 2 && g->version != 3)
        return qs_error(QS_ERR_FORMAT, "%s: version: GGUF version %u is not supported (only 2 and 3)", r->name,
                        g->version);
    QS_TRY(rd_u64(r, &g->n_tensors, "tensor count"));
    QS_TRY(rd_u64(r, &g->n_kv, "metadata count"));
    // minimal encodings: a kv is 8 (key length) + 1 + 4 (type) + 1; a tensor info is 8 + 1 + 4 + 8 + 4 + 8
    if (g->n_kv > left(r) / 14)
        return qs_error(QS_ERR_FORMAT, "%s: metadata count %llu cannot fit in the %zu bytes left", r->name,
                        (unsigned long long)g->n_kv, left(r));
    if (g->n_tensors > left(r) / 33)
        return qs_error(QS_ERR_FORMAT, "%s: tensor count %llu cannot fit in the %zu bytes left", r->name,
                        (unsigned long long)g->n_tensors, left(r));
    return QS_OK;
}

static qs_status parse_all(reader *r, qs_gguf *g) {
    QS_TRY(parse_header(r, g));
    g->kv = qs_calloc(g->n_kv ? (size_t)g->n_kv : 1, sizeof *g->kv, "GGUF metadata");
    g->t = qs_calloc(g->n_tensors ? (size_t)g->n_tensors : 1, sizeof *g->t, "GGUF tensor infos");
    if (!g->kv || !g->t) return QS_ERR_NOMEM;
    uint64_t nkv = g->n_kv, nt = g->n_tensors;
    g->n_kv = g->n_tensors = 0; // counts of entries parsed so far (what free releases)
    for (uint64_t i = 0; i < nkv; i++) {
        g->n_kv = i + 1;
        QS_TRY(parse_kv(r, &g->kv[i], i));
    }
    for (uint64_t i = 0; i < nt; i++) {
        g->n_tensors = i + 1;
        QS_TRY(parse_tensor_info(r, &g->t[i], i));
    }
    QS_TRY(check_unique(g, 0));
    QS_TRY(check_unique(g, 1));
    return place_tensors(r, g);
}

qs_status qs_gguf_parse(const uint8_t *buf, size_t n, const char *name, qs_gguf **out) {
    *out = NULL;
    if (!name) name = "(gguf)";
    qs_gguf *g = qs_calloc(1, sizeof *g, "GGUF");
    if (!g) return QS_ERR_NOMEM;
    size_t nl = strlen(name);
    g->path = qs_malloc(nl + 1, "GGUF name");
    if (!g->path) { free(g); return QS_ERR_NOMEM; }
    memcpy(g->path, name, nl + 1);
    g->buf = buf;
    g->buf_len = n;
    reader r = {buf, buf ? n : 0, 0, g->path};
    qs_status st = parse_all(&r, g);
    if (st != QS_OK) {
        qs_gguf_free(g);
        return st;
    }
    *out = g;
    return QS_OK;
}

void qs_gguf_free(qs_gguf *g) {
    if (!g) return;
    for (uint64_t i = 0; g->kv && i < g->n_kv; i++) {
        free(g->kv[i].key);
        free(g->kv[i].arr_strs);
    }
    for (uint64_t i = 0; g->t && i < g->n_tensors; i++) free(g->t[i].name);
    free(g->kv);
    free(g->t);
    if (g->map && g->map_is_mmap) munmap(g->map, g->map_len);
    else free(g->map);
    free(g->path);
    free(g);
}

qs_status qs_gguf_open(const char *path, qs_gguf **out) {
    *out = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return qs_error(QS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return qs_error(QS_ERR_IO, "%s: not a regular file", path);
    }
    size_t n = (size_t)sb.st_size;
    void *map = NULL;
    int is_mmap = 0;
    if (n > 0) {
        map = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            close(fd);
            return qs_error(QS_ERR_IO, "%s: cannot map %zu bytes: %s", path, n, strerror(errno));
        }
        is_mmap = 1;
    }
    close(fd);
    qs_status st = qs_gguf_parse(map, n, path, out);
    if (st != QS_OK) {
        if (is_mmap) munmap(map, n);
        return st;
    }
    (*out)->map = map;
    (*out)->map_len = n;
    (*out)->map_is_mmap = is_mmap;
    return QS_OK;
}

int qs_gguf_is_gguf_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char h[4];
    int ok = fread(h, 1, 4, f) == 4 && memcmp(h, "GGUF", 4) == 0;
    fclose(f);
    return ok;
}

const qs_gguf_kv *qs_gguf_find(const qs_gguf *g, const char *key) {
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key && strcmp(g->kv[i].key, key) == 0) return &g->kv[i];
    return NULL;
}

const qs_gguf_tensor *qs_gguf_find_tensor(const qs_gguf *g, const char *name) {
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (g->t[i].name && strcmp(g->t[i].name, name) == 0) return &g->t[i];
    return NULL;
}

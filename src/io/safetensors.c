// safetensors.c: validating reader (mmap) and atomic writer of .safetensors.
#include "io/safetensors.h"
#include "io/model_io.h"
#include "model/params.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include "io/half.h"
#include "io/fileutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_HEADER ((uint64_t)100 << 20) // as in the reference implementation
#define MAX_JSON_INT 9007199254740992.0  // 2^53: larger integers are not exact in JSON doubles

static const struct { const char *name; size_t size; } DT[] = {
    [QS_DT_F32] = {"F32", 4}, [QS_DT_F16] = {"F16", 2}, [QS_DT_BF16] = {"BF16", 2},
    [QS_DT_I32] = {"I32", 4}, [QS_DT_I64] = {"I64", 8}, [QS_DT_F64] = {"F64", 8},
    [QS_DT_I8] = {"I8", 1},   [QS_DT_U8] = {"U8", 1},   [QS_DT_BOOL] = {"BOOL", 1},
};
#define N_DT ((int)(sizeof DT / sizeof DT[0]))

// dtypes of the format that qstar does not read (QS_ERR_UNSUPPORTED, not FORMAT)
static const char *const OTHER_DT[] = {"I16", "U16", "U32", "U64", "F8_E4M3", "F8_E5M2",
                                       "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64"};

const char *qs_dtype_name(qs_dtype dt) { return (int)dt >= 0 && (int)dt < N_DT ? DT[dt].name : "?"; }
size_t qs_dtype_size(qs_dtype dt) { return (int)dt >= 0 && (int)dt < N_DT ? DT[dt].size : 0; }

// A JSON number holding an exact non-negative integer.
static int json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return 0;
    double d = j->valuedouble;
    if (!(d >= 0 && d <= MAX_JSON_INT) || d != floor(d)) return 0;
    *out = (uint64_t)d;
    return 1;
}

static qs_status parse_entry(qs_st_tensor *t, const cJSON *e, const char *path, size_t data_len) {
    const char *nm = t->name;
#define BAD(st, ...) return qs_error(st, "%s: tensor '%s': " __VA_ARGS__)
    if (!cJSON_IsObject(e)) BAD(QS_ERR_FORMAT, "header entry is not an object", path, nm);
    for (const cJSON *k = e->child; k; k = k->next)
        if (strcmp(k->string, "dtype") && strcmp(k->string, "shape") && strcmp(k->string, "data_offsets"))
            BAD(QS_ERR_FORMAT, "unknown header field '%s'", path, nm, k->string);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt)) BAD(QS_ERR_FORMAT, "missing or non-string 'dtype'", path, nm);
    int d = -1;
    for (int i = 0; i < N_DT; i++)
        if (strcmp(dt->valuestring, DT[i].name) == 0) d = i;
    if (d < 0) {
        for (size_t i = 0; i < sizeof OTHER_DT / sizeof *OTHER_DT; i++)
            if (strcmp(dt->valuestring, OTHER_DT[i]) == 0)
                BAD(QS_ERR_UNSUPPORTED, "dtype %s is not supported", path, nm, dt->valuestring);
        BAD(QS_ERR_FORMAT, "unknown dtype '%s'", path, nm, dt->valuestring);
    }
    t->dtype = (qs_dtype)d;
    if (!cJSON_IsArray(sh)) BAD(QS_ERR_FORMAT, "missing or non-array 'shape'", path, nm);
    int nd = cJSON_GetArraySize(sh);
    if (nd > 8) BAD(QS_ERR_UNSUPPORTED, "shape has %d dimensions (at most 8 supported)", path, nm, nd);
    t->ndim = nd;
    t->numel = 1;
    int i = 0;
    for (const cJSON *x = sh->child; x; x = x->next, i++) {
        uint64_t v;
        if (!json_uint(x, &v)) BAD(QS_ERR_FORMAT, "shape[%d] is not a non-negative integer", path, nm, i);
        t->shape[i] = (int64_t)v;
        if (v && t->numel > SIZE_MAX / v) BAD(QS_ERR_FORMAT, "shape overflows the address space", path, nm);
        t->numel *= (size_t)v;
    }
    uint64_t b, en;
    if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2 || !json_uint(of->child, &b) ||
        !json_uint(of->child->next, &en))
        BAD(QS_ERR_FORMAT, "'data_offsets' must be [begin, end] non-negative integers", path, nm);
    if (b > en) BAD(QS_ERR_FORMAT, "data_offsets [%llu,%llu] have begin > end", path, nm,
                    (unsigned long long)b, (unsigned long long)en);
    if (en > data_len)
        BAD(QS_ERR_FORMAT, "data_offsets [%llu,%llu] exceed data section of %zu bytes", path, nm,
            (unsigned long long)b, (unsigned long long)en, data_len);
    size_t es = DT[d].size;
    if (t->numel > SIZE_MAX / es) // never print a wrapped byte count
        BAD(QS_ERR_FORMAT, "shape holds %zu %s elements, more bytes than the address space", path, nm, t->numel,
            DT[d].name);
    if (en - b != t->numel * es)
        BAD(QS_ERR_FORMAT, "data_offsets [%llu,%llu] hold %llu bytes but %zu %s elements need %zu", path,
            nm, (unsigned long long)b, (unsigned long long)en, (unsigned long long)(en - b), t->numel,
            DT[d].name, t->numel * es);
#undef BAD
    t->begin = (size_t)b;
    t->end = (size_t)en;
    return QS_OK;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const qs_st_tensor *)a)->name, ((const qs_st_tensor *)b)->name);
}
static int cmp_begin(const void *a, const void *b) {
    const qs_st_tensor *x = *(const qs_st_tensor *const *)a, *y = *(const qs_st_tensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

// Tensor names unique; byte ranges of non-empty tensors disjoint.
static qs_status check_layout(qs_safetensors *st) {
    qsort(st->t, (size_t)st->n, sizeof *st->t, cmp_name);
    for (int i = 1; i < st->n; i++)
        if (strcmp(st->t[i - 1].name, st->t[i].name) == 0)
            return qs_error(QS_ERR_FORMAT, "%s: tensor '%s' appears twice in the header", st->path, st->t[i].name);
    if (st->n < 2) return QS_OK;
    qs_st_tensor **by = malloc((size_t)st->n * sizeof *by);
    if (!by) return qs_error(QS_ERR_NOMEM, "%s: out of memory", st->path);
    for (int i = 0; i < st->n; i++) by[i] = &st->t[i];
    qsort(by, (size_t)st->n, sizeof *by, cmp_begin);
    qs_status s = QS_OK;
    const qs_st_tensor *prev = NULL;
    for (int i = 0; i < st->n && s == QS_OK; i++) {
        if (by[i]->begin == by[i]->end) continue;
        if (prev && by[i]->begin < prev->end)
            s = qs_error(QS_ERR_FORMAT, "%s: tensor '%s': data_offsets [%zu,%zu] overlap tensor '%s' [%zu,%zu]",
                         st->path, by[i]->name, by[i]->begin, by[i]->end, prev->name, prev->begin, prev->end);
        prev = by[i];
    }
    free(by);
    return s;
}

static qs_status parse_header(qs_safetensors *st, const char *js, size_t n) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(js, n, &end, 0);
    if (!root) {
        size_t at = end && end >= js && end <= js + n ? (size_t)(end - js) : 0;
        return qs_error(QS_ERR_FORMAT, "%s: header is not valid JSON (error near byte %zu of %zu)", st->path,
                        at, n);
    }
    for (const char *p = end; p < js + n; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(root);
            return qs_error(QS_ERR_FORMAT, "%s: header has trailing bytes after the JSON object", st->path);
        }
    qs_status s = QS_OK;
    if (!cJSON_IsObject(root)) {
        s = qs_error(QS_ERR_FORMAT, "%s: header is not a JSON object", st->path);
        goto done;
    }
    int cnt = 0;
    for (const cJSON *e = root->child; e; e = e->next) cnt += strcmp(e->string, "__metadata__") != 0;
    st->t = calloc(cnt ? (size_t)cnt : 1, sizeof *st->t);
    if (!st->t) { s = qs_error(QS_ERR_NOMEM, "%s: out of memory", st->path); goto done; }
    for (const cJSON *e = root->child; e && s == QS_OK; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) continue; // free-form: ignored
        qs_st_tensor *t = &st->t[st->n];
        t->name = strdup(e->string);
        if (!t->name) { s = qs_error(QS_ERR_NOMEM, "%s: out of memory", st->path); break; }
        st->n++;
        s = parse_entry(t, e, st->path, st->data_len);
    }
    if (s == QS_OK) s = check_layout(st);
done:
    cJSON_Delete(root);
    return s;
}

static qs_status parse_file(qs_safetensors *st);

qs_status qs_st_open(qs_safetensors *st, const char *path) {
    memset(st, 0, sizeof *st);
    st->path = strdup(path);
    if (!st->path) return qs_error(QS_ERR_NOMEM, "%s: out of memory", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        qs_status s = qs_error(QS_ERR_IO, "%s: cannot open: %s", path, fd < 0 ? strerror(errno) : "not a regular file");
        if (fd >= 0) close(fd);
        qs_st_close(st);
        return s;
    }
    size_t len = (size_t)sb.st_size;
    if (len < 8) {
        close(fd);
        qs_st_close(st);
        return qs_error(QS_ERR_FORMAT, "%s: file is %zu bytes, too short for a safetensors header", path, len);
    }
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        qs_status s = qs_error(QS_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
        qs_st_close(st);
        return s;
    }
    st->file = map;
    st->file_len = len;
    qs_status s = parse_file(st);
    if (s != QS_OK) qs_st_close(st);
    return s;
}

qs_status qs_st_parse(qs_safetensors *st, const unsigned char *data, size_t len, const char *name) {
    memset(st, 0, sizeof *st);
    st->path = strdup(name ? name : "safetensors");
    if (!st->path) return qs_error(QS_ERR_NOMEM, "out of memory");
    if (len < 8) {
        qs_st_close(st);
        return qs_error(QS_ERR_FORMAT, "%s: %zu bytes, too short for a safetensors header", name, len);
    }
    st->file = (unsigned char *)data;
    st->file_len = len;
    st->borrowed = 1;
    qs_status s = parse_file(st);
    if (s != QS_OK) qs_st_close(st);
    return s;
}

// Header length, header and data section of st->file (file_len >= 8).
static qs_status parse_file(qs_safetensors *st) {
    const char *path = st->path;
    size_t len = st->file_len;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | st->file[i];
    qs_status s = QS_OK;
    if (n > len - 8)
        s = qs_error(QS_ERR_FORMAT, "%s: header length %llu exceeds the %zu bytes after the length field", path,
                     (unsigned long long)n, len - 8);
    else if (n > MAX_HEADER)
        s = qs_error(QS_ERR_FORMAT, "%s: header length %llu is unreasonably large", path, (unsigned long long)n);
    else if (n < 2)
        s = qs_error(QS_ERR_FORMAT, "%s: header length %llu is too small for a JSON object", path,
                     (unsigned long long)n);
    if (s == QS_OK) {
        st->data = st->file + 8 + n;
        st->data_len = len - 8 - (size_t)n;
        s = parse_header(st, (const char *)st->file + 8, (size_t)n);
    }
    return s;
}

void qs_st_close(qs_safetensors *st) {
    for (int i = 0; i < st->n; i++) free(st->t[i].name);
    free(st->t);
    free(st->path);
    if (st->file && !st->borrowed) munmap(st->file, st->file_len);
    memset(st, 0, sizeof *st);
}

const qs_st_tensor *qs_st_find(const qs_safetensors *st, const char *name) {
    // entries are sorted by name after qs_st_open
    qs_st_tensor key = {.name = (char *)name};
    return bsearch(&key, st->t, (size_t)st->n, sizeof *st->t, cmp_name);
}

qs_status qs_st_read_f32(const qs_safetensors *st, const qs_st_tensor *t, float *out) {
    const unsigned char *p = st->data + t->begin;
    switch (t->dtype) {
    case QS_DT_F32: memcpy(out, p, t->numel * 4); return QS_OK;
    case QS_DT_F16:
    case QS_DT_BF16:
        for (size_t i = 0; i < t->numel; i++) {
            uint16_t h = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
            if (t->dtype == QS_DT_F16) out[i] = qs_f16_to_f32(h);
            else { uint32_t u = (uint32_t)h << 16; memcpy(&out[i], &u, 4); }
        }
        return QS_OK;
    case QS_DT_F64:
        for (size_t i = 0; i < t->numel; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            out[i] = (float)d;
        }
        return QS_OK;
    default:
        return qs_error(QS_ERR_FORMAT, "%s: tensor '%s': dtype %s where a floating-point tensor is required",
                        st->path, t->name, qs_dtype_name(t->dtype));
    }
}

qs_status qs_st_read_i32(const qs_safetensors *st, const qs_st_tensor *t, int32_t *out) {
    const unsigned char *p = st->data + t->begin;
    if (t->dtype == QS_DT_I32) {
        memcpy(out, p, t->numel * 4);
        return QS_OK;
    }
    if (t->dtype != QS_DT_I64)
        return qs_error(QS_ERR_FORMAT, "%s: tensor '%s': dtype %s where an integer (I32/I64) tensor is required",
                        st->path, t->name, qs_dtype_name(t->dtype));
    for (size_t i = 0; i < t->numel; i++) {
        int64_t v;
        memcpy(&v, p + 8 * i, 8);
        if (v < INT32_MIN || v > INT32_MAX)
            return qs_error(QS_ERR_FORMAT, "%s: tensor '%s': element %zu = %lld does not fit in int32", st->path,
                            t->name, i, (long long)v);
        out[i] = (int32_t)v;
    }
    return QS_OK;
}

// ---- shapes against a config ----

static void shape_text(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++) k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

qs_status qs_st_check_config(const qs_safetensors *st, const qs_config *c, int with_quietstar) {
    qs_layout L;
    memset(&L, 0, sizeof L);
    QS_TRY(qs_layout_build(&L, c, with_quietstar)); // names and shapes only: nothing of the model's size
    qs_status s = QS_OK;
    for (int i = 0; i < st->n && s == QS_OK; i++) {
        const qs_st_tensor *t = &st->t[i];
        int k = qs_layout_find_hf(&L, c, t->name);
        if (k < 0) continue; // unknown / ignored names: the loader decides
        const qs_tensor_info *w = &L.t[k];
        int same = t->ndim == w->ndim;
        for (int d = 0; d < w->ndim && same; d++) same = t->shape[d] == w->shape[d];
        if (!same) {
            char a[160], b[160];
            shape_text(a, sizeof a, t->ndim, t->shape);
            shape_text(b, sizeof b, w->ndim, w->shape);
            s = qs_error(QS_ERR_FORMAT, "%s: tensor '%s' has shape %s but the config implies %s", st->path, t->name, a, b);
        }
    }
    qs_layout_free(&L);
    return s;
}

// ---- writer ----

qs_status qs_st_writer_add(qs_st_writer *w, const char *name, qs_dtype dtype, int ndim, const int64_t *shape,
                           const void *data) {
    if (strlen(name) >= sizeof w->t->name) return qs_error(QS_ERR_ARG, "tensor name too long: '%s'", name);
    if ((int)dtype < 0 || (int)dtype >= N_DT) return qs_error(QS_ERR_ARG, "tensor '%s': bad dtype", name);
    if (ndim < 0 || ndim > 8) return qs_error(QS_ERR_ARG, "tensor '%s': %d dimensions (0..8 allowed)", name, ndim);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0) return qs_error(QS_ERR_ARG, "tensor '%s': negative shape[%d]", name, i);
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->t[i].name, name) == 0) return qs_error(QS_ERR_ARG, "tensor '%s' added twice", name);
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 32;
        qs_st_wtensor *t = realloc(w->t, (size_t)cap * sizeof *t);
        if (!t) return qs_error(QS_ERR_NOMEM, "out of memory adding tensor '%s'", name);
        w->t = t;
        w->cap = cap;
    }
    qs_st_wtensor *t = &w->t[w->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->data = data;
    return QS_OK;
}

static size_t wbytes(const qs_st_wtensor *t) {
    size_t n = DT[t->dtype].size;
    for (int i = 0; i < t->ndim; i++) n *= (size_t)t->shape[i];
    return n;
}

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

// The 8-byte length and JSON header (padded to 8 bytes) of the file w describes.
static qs_status build_header(const qs_st_writer *w, const char *path, char **hdr_out, size_t *hlen_out) {
    char *hdr = NULL;
    size_t hlen = 0, off = 0;
    FILE *m = open_memstream(&hdr, &hlen);
    if (!m) return qs_error(QS_ERR_NOMEM, "%s: out of memory building the header", path);
    fputs("{\"__metadata__\":{\"format\":\"pt\"}", m);
    for (int i = 0; i < w->n; i++) {
        const qs_st_wtensor *t = &w->t[i];
        fputc(',', m);
        json_string(m, t->name);
        fprintf(m, ":{\"dtype\":\"%s\",\"shape\":[", DT[t->dtype].name);
        for (int d = 0; d < t->ndim; d++) fprintf(m, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        size_t nb = wbytes(t);
        fprintf(m, "],\"data_offsets\":[%zu,%zu]}", off, off + nb);
        off += nb;
    }
    fputc('}', m);
    while ((ftell(m) & 7) != 0) fputc(' ', m); // data section starts 8-byte aligned
    if (fclose(m) != 0 || !hdr) {
        free(hdr);
        return qs_error(QS_ERR_NOMEM, "%s: out of memory building the header", path);
    }
    *hdr_out = hdr;
    *hlen_out = hlen;
    return QS_OK;
}

qs_status qs_st_writer_to_mem(const qs_st_writer *w, unsigned char **out, size_t *n) {
    *out = NULL;
    *n = 0;
    char *hdr;
    size_t hlen;
    QS_TRY(build_header(w, "safetensors", &hdr, &hlen));
    size_t total = 8 + hlen;
    for (int i = 0; i < w->n; i++) total += wbytes(&w->t[i]);
    unsigned char *b = malloc(total ? total : 1);
    if (!b) {
        free(hdr);
        return qs_error(QS_ERR_NOMEM, "out of memory for a %zu-byte safetensors file", total);
    }
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    memcpy(b + 8, hdr, hlen);
    size_t off = 8 + hlen;
    for (int i = 0; i < w->n; i++) {
        size_t k = wbytes(&w->t[i]);
        if (k) memcpy(b + off, w->t[i].data, k);
        off += k;
    }
    free(hdr);
    *out = b;
    *n = total;
    return QS_OK;
}

qs_status qs_st_writer_write(qs_st_writer *w, const char *path) {
    char *hdr;
    size_t hlen;
    QS_TRY(build_header(w, path, &hdr, &hlen));
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    qs_afile f;
    qs_status s = qs_afile_open(&f, path);
    if (s == QS_OK) s = qs_afile_write(&f, len8, 8);
    if (s == QS_OK) s = qs_afile_write(&f, hdr, hlen);
    for (int i = 0; i < w->n && s == QS_OK; i++) s = qs_afile_write(&f, w->t[i].data, wbytes(&w->t[i]));
    free(hdr);
    if (s == QS_OK) return qs_afile_commit(&f);
    if (f.fp) qs_afile_abort(&f);
    return s;
}

void qs_st_writer_free(qs_st_writer *w) {
    free(w->t);
    memset(w, 0, sizeof *w);
}

// gguf_meta.c: typed accessors for GGUF metadata (scalars, strings, arrays).
// Errors name the file and the key.
#include "io/gguf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int is_int_type(qs_gguf_vtype t) {
    return t == QS_GGUF_U8 || t == QS_GGUF_I8 || t == QS_GGUF_U16 || t == QS_GGUF_I16 || t == QS_GGUF_U32 ||
           t == QS_GGUF_I32 || t == QS_GGUF_U64 || t == QS_GGUF_I64;
}

static qs_status lookup(const qs_gguf *g, const char *key, const qs_gguf_kv **kv) {
    *kv = qs_gguf_find(g, key);
    if (!*kv) return qs_error(QS_ERR_FORMAT, "%s: metadata '%s' is missing", g->path, key);
    return QS_OK;
}

static qs_status wrong_type(const qs_gguf *g, const qs_gguf_kv *kv, const char *want) {
    return qs_error(QS_ERR_FORMAT, "%s: metadata '%s' has type %s, expected %s", g->path, kv->key,
                    qs_gguf_vtype_name(kv->type), want);
}

// Integer value in [lo, hi] (kv must be an integer scalar).
static qs_status int_in(const qs_gguf *g, const qs_gguf_kv *kv, int64_t lo, int64_t hi, int64_t *out) {
    if (!is_int_type(kv->type)) return wrong_type(g, kv, "an integer");
    int fits = kv->is_signed_neg ? kv->i >= lo : kv->u <= (uint64_t)hi && (int64_t)kv->u >= lo;
    if (!fits) {
        if (kv->is_signed_neg)
            return qs_error(QS_ERR_FORMAT, "%s: metadata '%s' = %lld is out of range", g->path, kv->key, (long long)kv->i);
        return qs_error(QS_ERR_FORMAT, "%s: metadata '%s' = %llu is out of range", g->path, kv->key,
                        (unsigned long long)kv->u);
    }
    *out = kv->is_signed_neg ? kv->i : (int64_t)kv->u;
    return QS_OK;
}

qs_status qs_gguf_get_u32(const qs_gguf *g, const char *key, uint32_t *out) {
    const qs_gguf_kv *kv;
    int64_t v = 0;
    QS_TRY(lookup(g, key, &kv));
    QS_TRY(int_in(g, kv, 0, UINT32_MAX, &v));
    *out = (uint32_t)v;
    return QS_OK;
}

qs_status qs_gguf_get_i32(const qs_gguf *g, const char *key, int32_t *out) {
    const qs_gguf_kv *kv;
    int64_t v = 0;
    QS_TRY(lookup(g, key, &kv));
    QS_TRY(int_in(g, kv, INT32_MIN, INT32_MAX, &v));
    *out = (int32_t)v;
    return QS_OK;
}

qs_status qs_gguf_get_i64(const qs_gguf *g, const char *key, int64_t *out) {
    const qs_gguf_kv *kv;
    QS_TRY(lookup(g, key, &kv));
    return int_in(g, kv, INT64_MIN, INT64_MAX, out);
}

qs_status qs_gguf_get_f32(const qs_gguf *g, const char *key, float *out) {
    const qs_gguf_kv *kv;
    QS_TRY(lookup(g, key, &kv));
    if (kv->type != QS_GGUF_F32 && kv->type != QS_GGUF_F64 && !is_int_type(kv->type))
        return wrong_type(g, kv, "a number");
    if (!isfinite(kv->f) || fabs(kv->f) > 3.4e38)
        return qs_error(QS_ERR_FORMAT, "%s: metadata '%s' = %g is not a finite float32", g->path, key, kv->f);
    *out = (float)kv->f;
    return QS_OK;
}

qs_status qs_gguf_get_bool(const qs_gguf *g, const char *key, int *out) {
    const qs_gguf_kv *kv;
    QS_TRY(lookup(g, key, &kv));
    if (kv->type != QS_GGUF_BOOL) return wrong_type(g, kv, "bool");
    *out = kv->u != 0;
    return QS_OK;
}

qs_status qs_gguf_get_str(const qs_gguf *g, const char *key, qs_gguf_str *out) {
    const qs_gguf_kv *kv;
    QS_TRY(lookup(g, key, &kv));
    if (kv->type != QS_GGUF_STRING) return wrong_type(g, kv, "string");
    *out = kv->str;
    return QS_OK;
}

qs_status qs_gguf_opt_u32(const qs_gguf *g, const char *key, uint32_t *out) {
    return qs_gguf_find(g, key) ? qs_gguf_get_u32(g, key, out) : QS_OK;
}
qs_status qs_gguf_opt_i32(const qs_gguf *g, const char *key, int32_t *out) {
    return qs_gguf_find(g, key) ? qs_gguf_get_i32(g, key, out) : QS_OK;
}
qs_status qs_gguf_opt_f32(const qs_gguf *g, const char *key, float *out) {
    return qs_gguf_find(g, key) ? qs_gguf_get_f32(g, key, out) : QS_OK;
}
qs_status qs_gguf_opt_bool(const qs_gguf *g, const char *key, int *out) {
    return qs_gguf_find(g, key) ? qs_gguf_get_bool(g, key, out) : QS_OK;
}

static qs_status lookup_arr(const qs_gguf *g, const char *key, const qs_gguf_kv **kv) {
    QS_TRY(lookup(g, key, kv));
    if ((*kv)->type != QS_GGUF_ARRAY) return wrong_type(g, *kv, "array");
    return QS_OK;
}

qs_status qs_gguf_get_arr_str(const qs_gguf *g, const char *key, const qs_gguf_str **out, size_t *n) {
    const qs_gguf_kv *kv;
    QS_TRY(lookup_arr(g, key, &kv));
    if (kv->arr_type != QS_GGUF_STRING)
        return qs_error(QS_ERR_FORMAT, "%s: metadata '%s' is an array of %s, expected an array of string", g->path,
                        key, qs_gguf_vtype_name(kv->arr_type));
    *out = kv->arr_strs;
    *n = (size_t)kv->arr_n;
    return QS_OK;
}

// Element k of a numeric array, decoded like a scalar.
static qs_gguf_kv element(const qs_gguf_kv *kv, size_t k) {
    static const int SZ[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    qs_gguf_kv e = {0};
    int es = SZ[kv->arr_type];
    const uint8_t *p = kv->arr_data + k * (size_t)es;
    uint64_t raw = 0;
    for (int b = 0; b < es; b++) raw |= (uint64_t)p[b] << (8 * b);
    e.type = kv->arr_type;
    switch (kv->arr_type) {
    case QS_GGUF_I8: e.i = (int8_t)raw; break;
    case QS_GGUF_I16: e.i = (int16_t)raw; break;
    case QS_GGUF_I32: e.i = (int32_t)raw; break;
    case QS_GGUF_I64: e.i = (int64_t)raw; break;
    case QS_GGUF_F32: { uint32_t b = (uint32_t)raw; float f; memcpy(&f, &b, 4); e.f = f; return e; }
    case QS_GGUF_F64: { double d; memcpy(&d, &raw, 8); e.f = d; return e; }
    default: e.u = raw; e.i = raw > INT64_MAX ? INT64_MAX : (int64_t)raw; e.f = (double)raw; return e;
    }
    e.is_signed_neg = e.i < 0;
    e.u = e.i < 0 ? 0 : (uint64_t)e.i;
    e.f = (double)e.i;
    return e;
}

static int is_num_type(qs_gguf_vtype t) { return is_int_type(t) || t == QS_GGUF_F32 || t == QS_GGUF_F64 || t == QS_GGUF_BOOL; }

static qs_status lookup_num_arr(const qs_gguf *g, const char *key, const qs_gguf_kv **kv, size_t esz, void **buf) {
    QS_TRY(lookup_arr(g, key, kv));
    if (!is_num_type((*kv)->arr_type))
        return qs_error(QS_ERR_FORMAT, "%s: metadata '%s' is an array of %s, expected numbers", g->path, key,
                        qs_gguf_vtype_name((*kv)->arr_type));
    *buf = qs_malloc(((size_t)(*kv)->arr_n ? (size_t)(*kv)->arr_n : 1) * esz, key);
    return *buf ? QS_OK : QS_ERR_NOMEM;
}

qs_status qs_gguf_get_arr_f32(const qs_gguf *g, const char *key, float **out, size_t *n) {
    const qs_gguf_kv *kv;
    float *v = NULL;
    *out = NULL;
    QS_TRY(lookup_num_arr(g, key, &kv, sizeof *v, (void **)&v));
    for (size_t k = 0; k < kv->arr_n; k++) v[k] = (float)element(kv, k).f;
    *out = v;
    *n = (size_t)kv->arr_n;
    return QS_OK;
}

qs_status qs_gguf_get_arr_i32(const qs_gguf *g, const char *key, int32_t **out, size_t *n) {
    const qs_gguf_kv *kv;
    int32_t *v = NULL;
    *out = NULL;
    QS_TRY(lookup_num_arr(g, key, &kv, sizeof *v, (void **)&v));
    for (size_t k = 0; k < kv->arr_n; k++) {
        qs_gguf_kv e = element(kv, k);
        int ok = kv->arr_type == QS_GGUF_F32 || kv->arr_type == QS_GGUF_F64
                     ? 0
                     : (e.is_signed_neg ? e.i >= INT32_MIN : e.u <= INT32_MAX);
        if (!ok) {
            free(v);
            return qs_error(QS_ERR_FORMAT, "%s: metadata '%s' element %zu is not an int32 value", g->path, key, k);
        }
        v[k] = (int32_t)(e.is_signed_neg ? e.i : (int64_t)e.u);
    }
    *out = v;
    *n = (size_t)kv->arr_n;
    return QS_OK;
}

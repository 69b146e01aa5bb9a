// tok_spm_model.c: SentencePiece tokenizer.model files (a protobuf
// ModelProto) -> a QS_TOK_SPM_SCORES spec -> a tokenizer.
//
// The protobuf wire format is read by a minimal decoder (varints,
// length-delimited fields, fixed32/fixed64; unknown fields skipped by their
// wire type; every length checked against the bytes left in its message).
// Fields used (sentencepiece_model.proto):
//   ModelProto       1 pieces (repeated), 2 trainer_spec, 3 normalizer_spec
//   SentencePiece    1 piece, 2 score (float), 3 type (NORMAL 1, UNKNOWN 2,
//                    CONTROL 3, USER_DEFINED 4, UNUSED 5, BYTE 6: GGUF's numbering)
//   TrainerSpec      3 model_type (UNIGRAM 1, BPE 2, WORD 3, CHAR 4),
//                    24 treat_whitespace_as_suffix, 35 byte_fallback,
//                    40 unk_id, 41 bos_id, 42 eos_id, 43 pad_id
//   NormalizerSpec   1 name, 2 precompiled_charsmap, 3 add_dummy_prefix,
//                    4 remove_extra_whitespaces, 5 escape_whitespaces
// Supported: BPE models with any normalizer SentencePiece compiles into a
// precompiled_charsmap (identity: Llama-2, Mistral, TinyLlama; nmt_nfkc,
// nfkc, nfkc_cf, ...: applied by tok_spm_norm.c). UNIGRAM / WORD / CHAR
// models, escape_whitespaces off and treat_whitespace_as_suffix are
// QS_ERR_UNSUPPORTED errors naming the file and the field.
#include "tokenizer/tok_internal.h"
#include "tokenizer/tok_sources.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PB_VARINT = 0, PB_I64 = 1, PB_LEN = 2, PB_I32 = 5 };

// A message being read: p[off..end) of the file, `msg` its path for errors.
typedef struct {
    const unsigned char *p;
    size_t off, end;
    const char *name; // the file
    const char *msg;  // "ModelProto", "pieces[3]", "trainer_spec", ...
} pb_in;

static qs_status pb_varint(pb_in *r, const char *field, uint64_t *v) {
    uint64_t x = 0;
    size_t start = r->off;
    for (int i = 0; i < 10; i++) {
        if (r->off >= r->end)
            return qs_error(QS_ERR_FORMAT, "%s: %s.%s: truncated varint at byte offset %zu", r->name, r->msg, field,
                            start);
        unsigned char b = r->p[r->off++];
        if (i == 9 && b > 1)
            return qs_error(QS_ERR_FORMAT, "%s: %s.%s: varint at byte offset %zu overflows 64 bits", r->name, r->msg,
                            field, start);
        x |= (uint64_t)(b & 0x7F) << (7 * i);
        if (!(b & 0x80)) {
            *v = x;
            return QS_OK;
        }
    }
    return qs_error(QS_ERR_FORMAT, "%s: %s.%s: varint at byte offset %zu is too long", r->name, r->msg, field, start);
}

// The next field's number and wire type.
static qs_status pb_key(pb_in *r, int *field, int *wire) {
    size_t at = r->off;
    uint64_t k = 0;
    QS_TRY(pb_varint(r, "(field key)", &k));
    if ((k >> 3) == 0 || (k >> 3) > 0x1FFFFFFF)
        return qs_error(QS_ERR_FORMAT, "%s: %s: invalid field number %llu at byte offset %zu", r->name, r->msg,
                        (unsigned long long)(k >> 3), at);
    *field = (int)(k >> 3);
    *wire = (int)(k & 7);
    return QS_OK;
}

static qs_status pb_need(pb_in *r, const char *field, size_t n) {
    if (r->end - r->off < n)
        return qs_error(QS_ERR_FORMAT, "%s: %s.%s: %zu bytes needed at byte offset %zu, only %zu left in %s", r->name,
                        r->msg, field, n, r->off, r->end - r->off, r->msg);
    return QS_OK;
}

// A length-delimited field: its bytes p[*start .. *start + *len).
static qs_status pb_len(pb_in *r, const char *field, size_t *start, size_t *len) {
    uint64_t n = 0;
    QS_TRY(pb_varint(r, field, &n));
    if (n > r->end - r->off)
        return qs_error(QS_ERR_FORMAT, "%s: %s.%s: length %llu at byte offset %zu runs past the end of %s (%zu bytes left)",
                        r->name, r->msg, field, (unsigned long long)n, r->off, r->msg, r->end - r->off);
    *start = r->off;
    *len = (size_t)n;
    r->off += (size_t)n;
    return QS_OK;
}

static qs_status pb_skip(pb_in *r, int field, int wire) {
    char f[32];
    snprintf(f, sizeof f, "(field %d)", field);
    size_t s = 0, n = 0;
    switch (wire) {
    case PB_VARINT: { uint64_t v; return pb_varint(r, f, &v); }
    case PB_I64: QS_TRY(pb_need(r, f, 8)); r->off += 8; return QS_OK;
    case PB_I32: QS_TRY(pb_need(r, f, 4)); r->off += 4; return QS_OK;
    case PB_LEN: return pb_len(r, f, &s, &n);
    default:
        return qs_error(QS_ERR_FORMAT, "%s: %s: field %d has wire type %d (groups and unknown wire types are not supported)",
                        r->name, r->msg, field, wire);
    }
}

static qs_status pb_expect(pb_in *r, const char *field, int wire, int want) {
    if (wire != want)
        return qs_error(QS_ERR_FORMAT, "%s: %s.%s has wire type %d, expected %d", r->name, r->msg, field, wire, want);
    return QS_OK;
}

// int32 / enum fields (negative values are 10-byte sign-extended varints).
static qs_status pb_int32(pb_in *r, const char *field, int wire, int *out) {
    QS_TRY(pb_expect(r, field, wire, PB_VARINT));
    uint64_t v = 0;
    QS_TRY(pb_varint(r, field, &v));
    int64_t sv = (int64_t)v;
    if (sv < INT32_MIN || sv > INT32_MAX)
        return qs_error(QS_ERR_FORMAT, "%s: %s.%s: value %lld is outside the int32 range", r->name, r->msg, field,
                        (long long)sv);
    *out = (int)sv;
    return QS_OK;
}

static qs_status pb_bool(pb_in *r, const char *field, int wire, int *out) {
    QS_TRY(pb_expect(r, field, wire, PB_VARINT));
    uint64_t v = 0;
    QS_TRY(pb_varint(r, field, &v));
    *out = v != 0;
    return QS_OK;
}

static qs_status pb_float(pb_in *r, const char *field, int wire, float *out) {
    QS_TRY(pb_expect(r, field, wire, PB_I32));
    QS_TRY(pb_need(r, field, 4));
    const unsigned char *b = r->p + r->off;
    uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    memcpy(out, &u, 4);
    r->off += 4;
    return QS_OK;
}

static qs_status pb_bytes(pb_in *r, const char *field, int wire, const char **s, size_t *n) {
    QS_TRY(pb_expect(r, field, wire, PB_LEN));
    size_t start = 0;
    QS_TRY(pb_len(r, field, &start, n));
    *s = (const char *)r->p + start;
    return QS_OK;
}

// The sub-message in field `field` of r, named `msg`.
static qs_status pb_sub(pb_in *r, const char *field, int wire, const char *msg, pb_in *sub) {
    QS_TRY(pb_expect(r, field, wire, PB_LEN));
    size_t start = 0, n = 0;
    QS_TRY(pb_len(r, field, &start, &n));
    *sub = (pb_in){.p = r->p, .off = start, .end = start + n, .name = r->name, .msg = msg};
    return QS_OK;
}

// ----------------------------------------------------------------------------
// ModelProto

typedef struct {
    int n, cap;
    const char **piece;
    int *len;
    float *score;
    int *type;
    int model_type, byte_fallback, unk_id, bos_id, eos_id, pad_id, ws_suffix;
    const char *norm_name, *charsmap;
    size_t norm_name_len, charsmap_len;
    int add_dummy_prefix, remove_ws, escape_ws;
} spm_model;

static void spm_free(spm_model *m) {
    free(m->piece);
    free(m->len);
    free(m->score);
    free(m->type);
}

static qs_status spm_grow(spm_model *m, const char *name) {
    if (m->n < m->cap) return QS_OK;
    if (m->cap >= INT_MAX / 4) return qs_error(QS_ERR_FORMAT, "%s: too many pieces", name);
    int cap = m->cap ? m->cap * 2 : 1024;
    const char **p = realloc(m->piece, (size_t)cap * sizeof *p);
    if (p) m->piece = p;
    int *l = p ? realloc(m->len, (size_t)cap * sizeof *l) : NULL;
    if (l) m->len = l;
    float *s = l ? realloc(m->score, (size_t)cap * sizeof *s) : NULL;
    if (s) m->score = s;
    int *t = s ? realloc(m->type, (size_t)cap * sizeof *t) : NULL;
    if (t) m->type = t;
    if (!t) return qs_error(QS_ERR_NOMEM, "%s: out of memory for %d pieces", name, cap);
    m->cap = cap;
    return QS_OK;
}

// One SentencePiece message: pieces[i].
static qs_status parse_piece(spm_model *m, pb_in *r) {
    QS_TRY(spm_grow(m, r->name));
    int i = m->n, field = 0, wire = 0;
    const char *s = NULL;
    size_t len = 0;
    m->score[i] = 0;
    m->type[i] = 1; // NORMAL
    while (r->off < r->end) {
        QS_TRY(pb_key(r, &field, &wire));
        if (field == 1) QS_TRY(pb_bytes(r, "piece", wire, &s, &len));
        else if (field == 2) QS_TRY(pb_float(r, "score", wire, &m->score[i]));
        else if (field == 3) QS_TRY(pb_int32(r, "type", wire, &m->type[i]));
        else QS_TRY(pb_skip(r, field, wire));
    }
    if (!s || len == 0) return qs_error(QS_ERR_FORMAT, "%s: %s.piece is missing or empty", r->name, r->msg);
    if (len >= (1 << 20)) return qs_error(QS_ERR_FORMAT, "%s: %s.piece of %zu bytes is too long", r->name, r->msg, len);
    if (m->type[i] < 1 || m->type[i] > 6)
        return qs_error(QS_ERR_FORMAT, "%s: %s.type %d is not a SentencePiece piece type (1-6)", r->name, r->msg,
                        m->type[i]);
    m->piece[i] = s;
    m->len[i] = (int)len;
    m->n++;
    return QS_OK;
}

static qs_status parse_trainer(spm_model *m, pb_in *r) {
    int field = 0, wire = 0;
    while (r->off < r->end) {
        QS_TRY(pb_key(r, &field, &wire));
        switch (field) {
        case 3: QS_TRY(pb_int32(r, "model_type", wire, &m->model_type)); break;
        case 24: QS_TRY(pb_bool(r, "treat_whitespace_as_suffix", wire, &m->ws_suffix)); break;
        case 35: QS_TRY(pb_bool(r, "byte_fallback", wire, &m->byte_fallback)); break;
        case 40: QS_TRY(pb_int32(r, "unk_id", wire, &m->unk_id)); break;
        case 41: QS_TRY(pb_int32(r, "bos_id", wire, &m->bos_id)); break;
        case 42: QS_TRY(pb_int32(r, "eos_id", wire, &m->eos_id)); break;
        case 43: QS_TRY(pb_int32(r, "pad_id", wire, &m->pad_id)); break;
        default: QS_TRY(pb_skip(r, field, wire));
        }
    }
    return QS_OK;
}

static qs_status parse_normalizer(spm_model *m, pb_in *r) {
    int field = 0, wire = 0;
    while (r->off < r->end) {
        QS_TRY(pb_key(r, &field, &wire));
        switch (field) {
        case 1: QS_TRY(pb_bytes(r, "name", wire, &m->norm_name, &m->norm_name_len)); break;
        case 2: QS_TRY(pb_bytes(r, "precompiled_charsmap", wire, &m->charsmap, &m->charsmap_len)); break;
        case 3: QS_TRY(pb_bool(r, "add_dummy_prefix", wire, &m->add_dummy_prefix)); break;
        case 4: QS_TRY(pb_bool(r, "remove_extra_whitespaces", wire, &m->remove_ws)); break;
        case 5: QS_TRY(pb_bool(r, "escape_whitespaces", wire, &m->escape_ws)); break;
        default: QS_TRY(pb_skip(r, field, wire));
        }
    }
    return QS_OK;
}

static qs_status parse_model(spm_model *m, const unsigned char *buf, size_t n, const char *name) {
    pb_in r = {.p = buf, .off = 0, .end = n, .name = name, .msg = "ModelProto"}, sub;
    char msg[48];
    int field = 0, wire = 0;
    while (r.off < r.end) {
        QS_TRY(pb_key(&r, &field, &wire));
        if (field == 1) {
            snprintf(msg, sizeof msg, "pieces[%d]", m->n);
            QS_TRY(pb_sub(&r, msg, wire, msg, &sub));
            QS_TRY(parse_piece(m, &sub));
        } else if (field == 2) {
            QS_TRY(pb_sub(&r, "trainer_spec", wire, "trainer_spec", &sub));
            QS_TRY(parse_trainer(m, &sub));
        } else if (field == 3) {
            QS_TRY(pb_sub(&r, "normalizer_spec", wire, "normalizer_spec", &sub));
            QS_TRY(parse_normalizer(m, &sub));
        } else {
            QS_TRY(pb_skip(&r, field, wire)); // self_test_data, denormalizer_spec, extensions
        }
    }
    return QS_OK;
}

static const char *model_type_name(int t) {
    return t == 1 ? "UNIGRAM" : t == 2 ? "BPE" : t == 3 ? "WORD" : t == 4 ? "CHAR" : "unknown";
}

// What qstar does not implement, and ids outside the vocabulary.
static qs_status check_model(const spm_model *m, const char *name) {
    if (m->n == 0) return qs_error(QS_ERR_FORMAT, "%s: ModelProto.pieces is empty (not a SentencePiece model?)", name);
    if (m->model_type != 2)
        return qs_error(m->model_type >= 1 && m->model_type <= 4 ? QS_ERR_UNSUPPORTED : QS_ERR_FORMAT,
                        "%s: trainer_spec.model_type %d (%s) is not supported: only BPE SentencePiece models are",
                        name, m->model_type, model_type_name(m->model_type));
    if (m->ws_suffix)
        return qs_error(QS_ERR_UNSUPPORTED, "%s: trainer_spec.treat_whitespace_as_suffix is not supported", name);
    if (m->charsmap_len > 0) QS_TRY(qs_tok_charsmap_check((const unsigned char *)m->charsmap, m->charsmap_len, name));
    if (!m->escape_ws)
        return qs_error(QS_ERR_UNSUPPORTED, "%s: normalizer_spec.escape_whitespaces false is not supported", name);
    const int ids[4] = {m->unk_id, m->bos_id, m->eos_id, m->pad_id};
    const char *what[4] = {"unk_id", "bos_id", "eos_id", "pad_id"};
    for (int k = 0; k < 4; k++)
        if (ids[k] < -1 || ids[k] >= m->n)
            return qs_error(QS_ERR_FORMAT, "%s: trainer_spec.%s %d is outside the %d pieces", name, what[k], ids[k],
                            m->n);
    return QS_OK;
}

qs_status qs_tokenizer_parse_model_proto(qs_tokenizer **out, const unsigned char *buf, size_t n, const char *name) {
    if (!name) name = "tokenizer.model";
    if (!out || (!buf && n > 0)) return qs_error(QS_ERR_ARG, "qs_tokenizer_parse_model_proto: NULL argument");
    *out = NULL;
    spm_model m = {.model_type = 1, .unk_id = 0, .bos_id = 1, .eos_id = 2, .pad_id = -1,
                   .add_dummy_prefix = 1, .remove_ws = 1, .escape_ws = 1};
    qs_status st = parse_model(&m, buf, n, name);
    if (st == QS_OK) st = check_model(&m, name);
    if (st == QS_OK) {
        qs_tok_spec s;
        qs_tok_spec_init(&s);
        s.kind = QS_TOK_SPM_SCORES;
        s.name = name;
        s.n_vocab = m.n;
        s.pieces = m.piece;
        s.piece_lens = m.len;
        s.scores = m.score;
        s.types = m.type;
        s.unk_id = m.unk_id;
        s.bos_id = m.bos_id;
        s.eos_id = m.eos_id;
        s.pad_id = m.pad_id;
        s.add_bos = 1; // Hugging Face LlamaTokenizer's default; tokenizer_config.json may say otherwise
        s.add_prefix_space = m.add_dummy_prefix;
        s.remove_extra_whitespaces = m.remove_ws;
        s.byte_fallback = m.byte_fallback;
        s.precompiled_charsmap = (const unsigned char *)m.charsmap;
        s.precompiled_charsmap_len = m.charsmap_len;
        char nm[64];
        snprintf(nm, sizeof nm, "%.*s", (int)QS_MIN(m.norm_name_len, sizeof nm - 1), m.norm_name ? m.norm_name : "");
        s.normalizer_name = m.norm_name ? nm : NULL;
        st = qs_tokenizer_from_spec(out, &s);
    }
    spm_free(&m);
    return st;
}

// add_bos_token / add_eos_token of a tokenizer_config.json beside `path`.
static qs_status apply_config(qs_tokenizer *t, const char *path) {
    const char *slash = strrchr(path, '/');
    char cfg[4096];
    int k = slash ? snprintf(cfg, sizeof cfg, "%.*s/tokenizer_config.json", (int)(slash - path), path)
                  : snprintf(cfg, sizeof cfg, "tokenizer_config.json");
    FILE *f = k > 0 && (size_t)k < sizeof cfg ? fopen(cfg, "rb") : NULL;
    if (!f) return QS_OK;
    fclose(f);
    unsigned char *buf = NULL;
    size_t n = 0;
    QS_TRY(qs_tok_read_file(cfg, "tokenizer_config.json", &buf, &n));
    cJSON *j = cJSON_ParseWithLength((const char *)buf, n);
    free(buf);
    if (!j) return qs_error(QS_ERR_FORMAT, "%s: invalid JSON", cfg);
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "add_bos_token");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "add_eos_token");
    if (cJSON_IsBool(b)) t->add_bos = cJSON_IsTrue(b);
    if (cJSON_IsBool(e)) t->add_eos = cJSON_IsTrue(e);
    cJSON_Delete(j);
    return QS_OK;
}

qs_status qs_tokenizer_open_model_proto(qs_tokenizer **out, const char *path) {
    if (!out || !path) return qs_error(QS_ERR_ARG, "qs_tokenizer_open_model_proto: NULL argument");
    *out = NULL;
    unsigned char *buf = NULL;
    size_t n = 0;
    QS_TRY(qs_tok_read_file(path, "tokenizer.model", &buf, &n));
    qs_status st = qs_tokenizer_parse_model_proto(out, buf, n, path);
    free(buf);
    if (st == QS_OK && (st = apply_config(*out, path)) != QS_OK) {
        qs_tokenizer_free(*out);
        *out = NULL;
    }
    return st;
}

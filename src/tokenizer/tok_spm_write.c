// tok_spm_write.c: a SentencePiece tokenizer.model (protobuf ModelProto) from
// a QS_TOK_SPM_SCORES spec: a BPE model (with the spec's precompiled_charsmap
// if any, else identity normalization), the
// fields tok_spm_model.c reads (and the piece names of the special ids, which
// SentencePiece's own loader uses for bos_id() / eos_id()).
#include "tokenizer/tok_internal.h"
#include "tokenizer/tok_sources.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    unsigned char *p;
    size_t n, cap;
    int oom;
} pb_out;

static void put(pb_out *o, const void *d, size_t n) {
    if (o->oom) return;
    if (o->n + n > o->cap) {
        size_t cap = o->cap ? o->cap : 256;
        while (cap < o->n + n) cap *= 2;
        unsigned char *p = realloc(o->p, cap);
        if (!p) { o->oom = 1; return; }
        o->p = p;
        o->cap = cap;
    }
    if (n) memcpy(o->p + o->n, d, n);
    o->n += n;
}

static void put_varint(pb_out *o, uint64_t v) {
    unsigned char b[10];
    int n = 0;
    do {
        b[n] = (unsigned char)(v & 0x7F);
        v >>= 7;
        if (v) b[n] |= 0x80;
        n++;
    } while (v);
    put(o, b, (size_t)n);
}

static void put_key(pb_out *o, int field, int wire) { put_varint(o, (uint64_t)field << 3 | (uint64_t)wire); }

static void put_bytes(pb_out *o, int field, const void *d, size_t n) {
    put_key(o, field, 2);
    put_varint(o, n);
    put(o, d, n);
}

// int32 / enum / bool: negative values as 10-byte two's complement, as protobuf does.
static void put_int(pb_out *o, int field, int64_t v) {
    put_key(o, field, 0);
    put_varint(o, (uint64_t)v);
}

static void put_float(pb_out *o, int field, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    unsigned char b[4] = {(unsigned char)u, (unsigned char)(u >> 8), (unsigned char)(u >> 16), (unsigned char)(u >> 24)};
    put_key(o, field, 5);
    put(o, b, 4);
}

static void put_msg(pb_out *o, int field, pb_out *sub) {
    if (sub->oom) o->oom = 1;
    put_bytes(o, field, sub->p, sub->n);
    free(sub->p);
    *sub = (pb_out){0};
}

static size_t plen(const qs_tok_spec *s, int i) {
    return s->piece_lens ? (size_t)s->piece_lens[i] : strlen(s->pieces[i]);
}

static int is_byte_piece(const char *p, size_t n) {
    return n == 6 && !memcmp(p, "<0x", 3) && p[5] == '>' && strchr("0123456789ABCDEFabcdef", p[3]) && p[3] &&
           strchr("0123456789ABCDEFabcdef", p[4]) && p[4];
}

// The SentencePiece type written for piece i.
static int piece_type(const qs_tok_spec *s, int i) {
    if (s->types) return s->types[i] >= 1 && s->types[i] <= 6 ? s->types[i] : 1;
    if (i == s->unk_id) return 2;
    if (i == s->bos_id || i == s->eos_id || i == s->pad_id) return 3;
    if (s->byte_fallback && is_byte_piece(s->pieces[i], plen(s, i))) return 6;
    return 1;
}

static qs_status check(const qs_tok_spec *s) {
    const char *nm = s->name ? s->name : "tokenizer";
    if (s->kind != QS_TOK_SPM_SCORES || !s->scores || !s->pieces || s->n_vocab < 1)
        return qs_error(QS_ERR_UNSUPPORTED, "%s: only score-based SentencePiece vocabularies can be written as tokenizer.model",
                        nm);
    for (int i = 0; i < s->n_vocab; i++) {
        if (!s->pieces[i] || plen(s, i) == 0)
            return qs_error(QS_ERR_FORMAT, "%s: piece %d is empty (SentencePiece needs non-empty pieces)", nm, i);
        if (!isfinite(s->scores[i])) return qs_error(QS_ERR_FORMAT, "%s: score of piece %d is not finite", nm, i);
    }
    const int ids[4] = {s->unk_id, s->bos_id, s->eos_id, s->pad_id};
    for (int k = 0; k < 4; k++)
        if (ids[k] < -1 || ids[k] >= s->n_vocab)
            return qs_error(QS_ERR_FORMAT, "%s: special id %d outside the %d pieces", nm, ids[k], s->n_vocab);
    return QS_OK;
}

static void put_trainer(pb_out *o, const qs_tok_spec *s, int byte_fallback) {
    pb_out t = {0};
    put_int(&t, 3, 2); // model_type BPE
    put_int(&t, 4, s->n_vocab);
    if (byte_fallback) put_int(&t, 35, 1);
    const int ids[4] = {s->unk_id, s->bos_id, s->eos_id, s->pad_id};
    for (int k = 0; k < 4; k++) put_int(&t, 40 + k, ids[k]);
    // unk_piece 45, bos_piece 46, eos_piece 47, pad_piece 48
    for (int k = 0; k < 4; k++)
        if (ids[k] >= 0) put_bytes(&t, 45 + k, s->pieces[ids[k]], plen(s, ids[k]));
    put_msg(o, 2, &t);
}

qs_status qs_tok_model_proto_build(const qs_tok_spec *s, unsigned char **buf, size_t *n) {
    if (!s || !buf || !n) return qs_error(QS_ERR_ARG, "qs_tok_model_proto_build: NULL argument");
    *buf = NULL;
    *n = 0;
    QS_TRY(check(s));
    pb_out o = {0}, sub = {0};
    int byte_fallback = s->byte_fallback;
    for (int i = 0; i < s->n_vocab; i++) {
        int ty = piece_type(s, i);
        byte_fallback |= ty == 6; // SentencePiece refuses BYTE pieces without byte_fallback
        put_bytes(&sub, 1, s->pieces[i], plen(s, i));
        put_float(&sub, 2, s->scores[i]);
        if (ty != 1) put_int(&sub, 3, ty);
        put_msg(&o, 1, &sub);
    }
    put_trainer(&o, s, byte_fallback);
    const char *nm = s->normalizer_name ? s->normalizer_name : s->precompiled_charsmap_len ? "precompiled" : "identity";
    put_bytes(&sub, 1, nm, strlen(nm));
    if (s->precompiled_charsmap_len) put_bytes(&sub, 2, s->precompiled_charsmap, s->precompiled_charsmap_len);
    put_int(&sub, 3, s->add_prefix_space != 0);
    put_int(&sub, 4, s->remove_extra_whitespaces != 0);
    put_int(&sub, 5, 1); // escape_whitespaces
    put_msg(&o, 3, &sub);
    if (o.oom) {
        free(o.p);
        return qs_error(QS_ERR_NOMEM, "%s: out of memory writing tokenizer.model", s->name ? s->name : "tokenizer");
    }
    *buf = o.p;
    *n = o.n;
    return QS_OK;
}

qs_status qs_tokenizer_write_model_proto(const qs_tok_spec *s, const char *path) {
    if (!path) return qs_error(QS_ERR_ARG, "qs_tokenizer_write_model_proto: NULL path");
    unsigned char *buf = NULL;
    size_t n = 0;
    QS_TRY(qs_tok_model_proto_build(s, &buf, &n));
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(buf);
        return qs_error(QS_ERR_IO, "%s: cannot open for writing: %s", path, strerror(errno));
    }
    size_t w = fwrite(buf, 1, n, f);
    int err = w != n ? (errno ? errno : EIO) : 0;
    free(buf);
    if (fclose(f) != 0 && !err) err = errno ? errno : EIO;
    if (err) return qs_error(QS_ERR_IO, "%s: error writing tokenizer.model: %s", path, strerror(err));
    return QS_OK;
}

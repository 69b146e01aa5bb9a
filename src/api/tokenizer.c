// tokenizer.c: public API: tokenizers on their own (qstar.h "Tokenizers on
// their own"). A qstar_tokenizer is a qs_tokenizer seen through the opaque
// public type, so a model's own tokenizer can be lent without a copy.
#include "api/api.h"
#include "tokenizer/tok_sources.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct qstar_decoder {
    qs_tok_stream st;
};

static const qs_tokenizer *T(const qstar_tokenizer *t) { return (const qs_tokenizer *)(const void *)t; }

QSTAR_API qstar_tokenizer_params qstar_tokenizer_params_default(void) {
    qstar_tokenizer_params p = {.vocab_size = 0};
    return p;
}

QSTAR_API qs_status qstar_tokenizer_load(const char *path, const qstar_tokenizer_params *params,
                                         qstar_tokenizer **out) {
    if (!out) return qs_error(QS_ERR_ARG, "qstar_tokenizer_load: NULL output handle");
    *out = NULL;
    if (!path || !path[0]) return qs_error(QS_ERR_ARG, "qstar_tokenizer_load: no tokenizer path");
    const qstar_tokenizer_params p = params ? *params : qstar_tokenizer_params_default();
    if (p.vocab_size < 0)
        return qs_error(QS_ERR_ARG, "qstar_tokenizer_load: %s: vocab_size %d is negative", path, p.vocab_size);
    qs_tokenizer *tok = NULL;
    QS_TRY(qs_tokenizer_open(&tok, path, p.vocab_size));
    *out = (qstar_tokenizer *)(void *)tok;
    return QS_OK;
}

QSTAR_API void qstar_tokenizer_free(qstar_tokenizer *t) { qs_tokenizer_free((qs_tokenizer *)(void *)t); }

QSTAR_API const qstar_tokenizer *qstar_model_tokenizer(const qstar_model *m) {
    return m ? (const qstar_tokenizer *)(const void *)m->tok : NULL;
}

QSTAR_API qs_status qstar_tokenizer_get_info(const qstar_tokenizer *t, qstar_tokenizer_info *out) {
    if (!t || !out) return qs_error(QS_ERR_ARG, "qstar_tokenizer_get_info: NULL argument");
    out->vocab_size = qs_tokenizer_vocab_size(T(t));
    out->bos_id = qs_tokenizer_bos(T(t));
    out->eos_id = qs_tokenizer_eos(T(t));
    out->add_bos = qs_tokenizer_add_bos(T(t));
    out->add_eos = qs_tokenizer_add_eos(T(t));
    out->kind = qs_tokenizer_kind_name(T(t));
    return QS_OK;
}

QSTAR_API int qstar_tokenizer_vocab_size(const qstar_tokenizer *t) { return t ? qs_tokenizer_vocab_size(T(t)) : 0; }

QSTAR_API qs_status qstar_tokenizer_encode_alloc(const qstar_tokenizer *t, const char *text, int add_bos,
                                                 int add_eos, int **ids, int *n_out) {
    if (!t || !text || !ids || !n_out) return qs_error(QS_ERR_ARG, "qstar_tokenizer_encode_alloc: NULL argument");
    *ids = NULL, *n_out = 0;
    return qs_tokenizer_encode_alloc(T(t), text, add_bos != 0, add_eos != 0, ids, n_out);
}

QSTAR_API void qstar_tokenizer_ids_free(int *ids) { free(ids); }

QSTAR_API qs_status qstar_tokenizer_encode(const qstar_tokenizer *t, const char *text, int add_bos, int add_eos,
                                           int *ids, int cap, int *n_out) {
    if (!t || !text || !n_out || cap < 0 || (cap > 0 && !ids))
        return qs_error(QS_ERR_ARG, "qstar_tokenizer_encode: NULL or inconsistent argument");
    int *all = NULL, n = 0;
    QS_TRY(qs_tokenizer_encode_alloc(T(t), text, add_bos != 0, add_eos != 0, &all, &n));
    *n_out = n;
    qs_status st = QS_OK;
    if (n > cap) st = qs_error(QS_ERR_ARG, "qstar_tokenizer_encode: %d tokens do not fit in %d", n, cap);
    else if (n > 0) memcpy(ids, all, (size_t)n * sizeof(int));
    free(all);
    return st;
}

QSTAR_API qs_status qstar_tokenizer_decode(const qstar_tokenizer *t, const int *ids, int n, char *out, size_t cap,
                                           size_t *len_out) {
    if (!t || n < 0 || (n > 0 && !ids) || !out || cap == 0)
        return qs_error(QS_ERR_ARG, "qstar_tokenizer_decode: NULL or inconsistent argument");
    QS_TRY(qs_tokenizer_decode(T(t), ids, n, out, cap));
    if (len_out) *len_out = strlen(out);
    return QS_OK;
}

QSTAR_API qs_status qstar_decoder_create(const qstar_tokenizer *t, int specials, qstar_decoder **out) {
    if (!out) return qs_error(QS_ERR_ARG, "qstar_decoder_create: NULL output handle");
    *out = NULL;
    if (!t) return qs_error(QS_ERR_ARG, "qstar_decoder_create: NULL tokenizer");
    qstar_decoder *d = calloc(1, sizeof *d);
    if (!d) return qs_error(QS_ERR_NOMEM, "out of memory for a decoder");
    qs_tok_stream_init(&d->st, T(t));
    d->st.specials = specials != 0;
    *out = d;
    return QS_OK;
}

QSTAR_API qs_status qstar_decoder_push(qstar_decoder *d, int token, char *out, size_t cap, size_t *n) {
    if (!d || !out || !n) return qs_error(QS_ERR_ARG, "qstar_decoder_push: NULL argument");
    return qs_tok_stream_push(&d->st, token, out, cap, n);
}

QSTAR_API qs_status qstar_decoder_flush(qstar_decoder *d, char *out, size_t cap, size_t *n) {
    if (!d || !out || !n) return qs_error(QS_ERR_ARG, "qstar_decoder_flush: NULL argument");
    return qs_tok_stream_flush(&d->st, out, cap, n);
}

QSTAR_API void qstar_decoder_free(qstar_decoder *d) { free(d); }

QSTAR_API qs_status qstar_tokenizer_export(const char *gguf_path, const char *dir) {
    if (!gguf_path || !gguf_path[0] || !dir || !dir[0])
        return qs_error(QS_ERR_ARG, "qstar_tokenizer_export: no GGUF file or no directory");
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return qs_error(QS_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
    return qs_tokenizer_export_gguf(gguf_path, dir);
}

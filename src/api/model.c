// model.c: public API: models, their tokenizer and configuration.
#include "api/api.h"

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

QSTAR_API const char *qstar_version(void) { return QSTAR_VERSION; }

QSTAR_API qstar_model_params qstar_model_params_default(void) {
    qstar_model_params p = {.tokenizer_path = NULL, .n_threads = 0};
    return p;
}

void qs_api_set_threads(int n) {
    if (n <= 0) return;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int qs_api_can_think(const qstar_model *m) { return m->m->has_quietstar && m->qs_present == 7; }

qs_status qs_api_resolve_think(const qstar_model *m, int think, int *out) {
    const int can = qs_api_can_think(m);
    if (think > 0 && !can)
        return qs_error(QS_ERR_ARG, "thinking needs a Quiet-STaR checkpoint, but this model has %s (train one with "
                        "qstar train, or add fresh ones with qstar convert --add-quietstar)",
                        m->m->has_quietstar ? "only some of the Quiet-STaR tensors" : "no Quiet-STaR tensors");
    *out = think < 0 ? can : think > 0;
    return QS_OK;
}

qs_status qs_api_thought_opts(const qstar_model *m, int n_ahead, float tau_sample, int greedy, qs_qstar_opts *qo) {
    return qs_qstar_opts_for_inference(qs_api_can_think(m) ? m->qs_json : NULL, m->tok, n_ahead, tau_sample, greedy, qo);
}

// The tokenizer of a model at `path`: the one given, else DIR/tokenizer.json,
// else the loader's (tokenizer.bin beside the model) -- as the CLI does.
static qs_status open_tokenizer(qstar_model *q, const char *path, const char *given) {
    const char *tp = given;
    char json[4200];
    if (!tp) {
        snprintf(json, sizeof json, "%s/tokenizer.json", path);
        if (access(json, R_OK) == 0) tp = json;
    }
    if (!tp && q->tok_path[0]) tp = q->tok_path;
    if (!tp)
        return qs_error(QS_ERR_ARG, "%s has no tokenizer.json or tokenizer.bin; give a tokenizer path", path);
    if (tp != q->tok_path) {
        if (strlen(tp) >= sizeof q->tok_path) return qs_error(QS_ERR_ARG, "tokenizer path too long: %s", tp);
        memmove(q->tok_path, tp, strlen(tp) + 1);
    }
    QS_TRY(qs_tokenizer_open(&q->tok, q->tok_path, q->m->cfg.vocab_size));
    q->own_tok = 1;
    return QS_OK;
}

QSTAR_API qs_status qstar_model_load(const char *path, const qstar_model_params *params, qstar_model **out) {
    if (!out) return qs_error(QS_ERR_ARG, "qstar_model_load: NULL output handle");
    *out = NULL;
    if (!path || !path[0]) return qs_error(QS_ERR_ARG, "qstar_model_load: no model path");
    const qstar_model_params p = params ? *params : qstar_model_params_default();
    qs_api_set_threads(p.n_threads);
    qstar_model *q = calloc(1, sizeof *q);
    if (!q) return qs_error(QS_ERR_NOMEM, "out of memory for a model handle");
    q->m = &q->own;
    qs_load_info info = {0};
    qs_status st = qs_model_load(&q->own, path, &info);
    if (st != QS_OK) {
        free(q);
        return st;
    }
    snprintf(q->tok_path, sizeof q->tok_path, "%s", info.tokenizer_path);
    snprintf(q->path, sizeof q->path, "%s", path);
    q->qs_json = info.quietstar_json, q->own_json = 1, info.quietstar_json = NULL;
    q->qs_present = info.qs_present;
    qs_load_info_free(&info);
    st = open_tokenizer(q, path, p.tokenizer_path);
    if (st != QS_OK) {
        qstar_model_free(q);
        return st;
    }
    *out = q;
    return QS_OK;
}

QSTAR_API void qstar_model_free(qstar_model *q) {
    if (!q) return;
    if (q->own_tok) qs_tokenizer_free(q->tok);
    if (q->own_json) free(q->qs_json);
    if (q->m == &q->own) qs_model_free(&q->own);
    free(q);
}

QSTAR_API qs_status qstar_model_save(const qstar_model *q, const char *dir) {
    if (!q || !dir || !dir[0]) return qs_error(QS_ERR_ARG, "qstar_model_save: NULL model or directory");
    // the directory keeps the tokenizer the model came with (qs_model_save_dir copies or exports it)
    const char *tp = q->tok && q->tok_path[0] ? q->tok_path : NULL;
    return qs_model_save_dir(q->m, dir, tp, q->qs_json);
}

static const char *arch_name(qs_arch a) {
    switch (a) {
    case QS_ARCH_MISTRAL: return "mistral";
    case QS_ARCH_QWEN2: return "qwen2";
    case QS_ARCH_GPT2: return "gpt2";
    default: return "llama";
    }
}

QSTAR_API qs_status qstar_model_config(const qstar_model *q, qstar_config *out) {
    if (!q || !out) return qs_error(QS_ERR_ARG, "qstar_model_config: NULL argument");
    const qs_config *c = &q->m->cfg;
    memset(out, 0, sizeof *out);
    out->arch = arch_name(c->arch);
    out->dim = c->dim, out->hidden_dim = c->hidden_dim, out->n_layers = c->n_layers;
    out->n_heads = c->n_heads, out->n_kv_heads = c->n_kv_heads, out->head_dim = c->head_dim;
    out->vocab_size = c->vocab_size, out->max_seq_len = c->max_seq_len;
    out->bos_id = c->bos_id, out->eos_id = c->eos_id;
    out->n_params = q->m->layout.numel;
    out->has_quietstar = qs_api_can_think(q);
    if (out->has_quietstar) {
        qs_qstar_opts o;
        qs_qstar_opts_default(&o);
        if (qs_qstar_opts_from_json(q->qs_json, &o) == QS_OK) out->n_ahead = o.n_ahead;
    }
    return QS_OK;
}

QSTAR_API qs_status qstar_tokenize(const qstar_model *q, const char *text, int add_bos, int *ids, int cap,
                                   int *n_out) {
    if (!q || !text || !n_out || (cap > 0 && !ids) || cap < 0)
        return qs_error(QS_ERR_ARG, "qstar_tokenize: NULL or inconsistent argument");
    int *all = NULL, n = 0;
    QS_TRY(qs_tokenizer_encode_alloc(q->tok, text, add_bos != 0, 0, &all, &n));
    *n_out = n;
    qs_status st = QS_OK;
    if (n > cap) st = qs_error(QS_ERR_ARG, "qstar_tokenize: %d tokens do not fit in %d", n, cap);
    else if (n > 0) memcpy(ids, all, (size_t)n * sizeof(int));
    free(all);
    return st;
}

QSTAR_API qs_status qstar_detokenize(const qstar_model *q, const int *ids, int n, char *out, size_t cap,
                                     size_t *len_out) {
    if (!q || (n > 0 && !ids) || n < 0 || !out || cap == 0)
        return qs_error(QS_ERR_ARG, "qstar_detokenize: NULL or inconsistent argument");
    QS_TRY(qs_tokenizer_decode(q->tok, ids, n, out, cap));
    if (len_out) *len_out = strlen(out);
    return QS_OK;
}

QSTAR_API const char *qstar_token_text(const qstar_model *q, int prev, int token) {
    if (!q) return "";
    return qs_tokenizer_piece(q->tok, prev, token);
}

QSTAR_API qs_status qstar_precision_parse(const char *s, qstar_precision *out) {
    qs_precision p;
    if (!s || !out) return qs_error(QS_ERR_ARG, "qstar_precision_parse: NULL argument");
    qs_status st = qs_precision_parse(s, &p);
    if (st != QS_OK) return st;
    *out = p == QS_PREC_BF16 ? QSTAR_BF16 : QSTAR_FP32;
    return QS_OK;
}

QSTAR_API const char *qstar_precision_name(qstar_precision p) {
    return qs_precision_name(p == QSTAR_BF16 ? QS_PREC_BF16 : QS_PREC_FP32);
}

QSTAR_API qs_status qstar_matmul_backend(const char **name) {
    qs_status st = qs_matmul_set_backend(NULL);
    if (name) *name = qs_matmul_backend();
    return st;
}

QSTAR_API const char *qstar_omp_wait_policy(void) {
    return strcmp(qs_matmul_backend(), "openblas") ? NULL : "passive";
}

// prepare.c: public API: `qstar prepare` (qstar.h qstar_prepare): corpora ->
// a token directory (data/shards.h).
#include "api/api.h"
#include "data/shards.h"

#include <omp.h>

QSTAR_API qstar_prepare_params qstar_prepare_params_default(void) {
    qstar_prepare_params p = {.tokenizer_path = NULL, .tokenizer = NULL, .inputs = NULL, .n_inputs = 0,
                              .out_dir = NULL, .field = NULL, .val_frac = 0.05, .n_threads = 0};
    return p;
}

typedef struct {
    qstar_prepare_cb cb;
    void *user;
} relay;

static void relay_progress(void *ud, uint64_t docs, uint64_t tokens, double secs, int file, int n_files) {
    const relay *r = ud;
    const qstar_prepare_progress p = {.docs = docs, .tokens = tokens, .seconds = secs, .file = file,
                                      .n_files = n_files};
    r->cb(r->user, &p);
}

static qs_status check_params(const qstar_prepare_params *p) {
    if (!p) return qs_error(QS_ERR_ARG, "qstar_prepare: NULL params");
    if (!p->tokenizer && (!p->tokenizer_path || !p->tokenizer_path[0]))
        return qs_error(QS_ERR_ARG, "qstar_prepare: no tokenizer (tokenizer_path or tokenizer)");
    if (!p->out_dir || !p->out_dir[0]) return qs_error(QS_ERR_ARG, "qstar_prepare: no output directory (out_dir)");
    if (p->n_inputs < 1 || !p->inputs) return qs_error(QS_ERR_ARG, "qstar_prepare: no input files (inputs)");
    for (int i = 0; i < p->n_inputs; i++)
        if (!p->inputs[i] || !p->inputs[i][0]) return qs_error(QS_ERR_ARG, "qstar_prepare: input %d has no path", i);
    if (!(p->val_frac >= 0 && p->val_frac < 1))
        return qs_error(QS_ERR_ARG, "qstar_prepare: val_frac %g is outside [0, 1)", p->val_frac);
    if (p->n_threads < 0) return qs_error(QS_ERR_ARG, "qstar_prepare: n_threads %d is negative", p->n_threads);
    return QS_OK;
}

QSTAR_API qs_status qstar_prepare(const qstar_prepare_params *params, qstar_prepare_cb on_progress, void *user,
                                  qstar_prepare_result *out) {
    QS_TRY(check_params(params));
    const qstar_prepare_params *p = params;
    if (p->n_threads > 0) omp_set_num_threads(p->n_threads);
    qs_tokenizer *own = NULL;
    const qs_tokenizer *tok = (const qs_tokenizer *)(const void *)p->tokenizer;
    if (!tok) {
        QS_TRY(qs_tokenizer_open(&own, p->tokenizer_path, 0));
        tok = own;
    }
    relay r = {on_progress, user};
    qs_prepare_opts po = {.inputs = p->inputs, .n_inputs = p->n_inputs, .out_dir = p->out_dir, .field = p->field,
                          .val_frac = p->val_frac, .n_threads = p->n_threads,
                          .progress = on_progress ? relay_progress : NULL, .progress_ud = &r};
    qs_shards_meta m;
    qs_status st = qs_shards_prepare(&po, tok, &m);
    qs_tokenizer_free(own);
    if (st == QS_OK && out) {
        out->width = m.width, out->vocab_size = m.vocab_size;
        out->n_tokens = m.n_tokens, out->n_docs = m.n_docs;
        out->train_docs = m.train_docs, out->train_tokens = m.train_tokens;
    }
    return st;
}

// viz.c: public API: qstar_viz_write, the page of `qstar viz` (per-token
// thought effects of a text, quietstar/viz.h), written atomically.
#include "api/api.h"
#include "io/fileutil.h"
#include "io/model_io.h"
#include "quietstar/viz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

QSTAR_API qstar_viz_params qstar_viz_params_default(void) {
    qstar_viz_params p;
    memset(&p, 0, sizeof p);
    p.seed = 1234, p.precision = QSTAR_FP32;
    return p;
}

QSTAR_API qs_status qstar_viz_check(const char *path, const qstar_viz_params *params) {
    const qstar_viz_params p = params ? *params : qstar_viz_params_default();
    if (!path || !path[0]) return qs_error(QS_ERR_ARG, "qstar_viz_write: no output path");
    if (p.max_tokens < 0 || p.n_ahead < 0 || p.tau_sample < 0)
        return qs_error(QS_ERR_ARG, "qstar_viz_write: negative max_tokens, n_ahead or tau_sample");
    return qs_api_out_check(path, p.force);
}

// BOS + the tokens of text without its trailing whitespace, at most max.
static qs_status encode_text(const qstar_model *q, const char *text, int max, int **ids, int *n) {
    size_t len = strlen(text);
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' ' || text[len - 1] == '\t'))
        len--;
    char *s = malloc(len + 1);
    if (!s) return qs_error(QS_ERR_NOMEM, "out of memory for the text");
    memcpy(s, text, len);
    s[len] = 0;
    qs_status st = qs_tokenizer_encode_alloc(q->tok, s, 1, 0, ids, n);
    free(s);
    QS_TRY(st);
    if (*n > max) *n = max;
    if (*n < 3) return qs_error(QS_ERR_ARG, "the text needs at least 2 tokens");
    return QS_OK;
}

static qs_status write_page(const qstar_model *q, const char *path, const int *ids, int n, const qs_nll_tokens *rec,
                            const qs_qstar_opts *qo, const qstar_viz_params *p) {
    char sub[4600];
    snprintf(sub, sizeof sub, "model %.4000s | n_ahead %d (n_thought %d), tau_sample %g, %s mixing, seed %llu", q->path,
             qo->n_ahead, qo->n_ahead - 3, (double)qo->tau_sample, qo->mixing == QS_MIX_SIGMOID ? "sigmoid" : "linear",
             (unsigned long long)p->seed);
    qs_viz_page page = {.title = p->title, .subtitle = sub, .n_ahead = qo->n_ahead};
    qs_afile af;
    QS_TRY(qs_afile_open(&af, path));
    qs_status st = qs_viz_write_html((FILE *)af.fp, q->tok, ids, n, rec, &page);
    if (st == QS_OK) st = qs_afile_commit(&af);
    if (st != QS_OK) {
        qs_afile_abort(&af);
        return qs_error_prefix(st, "cannot write %s", path);
    }
    return QS_OK;
}

QSTAR_API qs_status qstar_viz_write(qstar_model *q, const char *text, const qstar_viz_params *params, const char *path,
                                    qstar_viz_result *out) {
    if (!q || !text) return qs_error(QS_ERR_ARG, "qstar_viz_write: NULL argument");
    const qstar_viz_params p = params ? *params : qstar_viz_params_default();
    if (out) memset(out, 0, sizeof *out);
    QS_TRY(qstar_viz_check(path, &p)); // before any work
    if (!qs_api_can_think(q))
        return qs_error(QS_ERR_ARG, "%s has no Quiet-STaR tensors: viz needs a Quiet-STaR checkpoint",
                        q->path[0] ? q->path : "the model");
    qs_qstar_opts qo;
    QS_TRY(qs_api_thought_opts(q, p.n_ahead, p.tau_sample, p.greedy_thoughts, &qo));
    const int max = p.max_tokens > 0 && p.max_tokens < q->m->cfg.max_seq_len ? p.max_tokens : q->m->cfg.max_seq_len;
    int *ids = NULL, n = 0;
    qs_status st = encode_text(q, text, max, &ids, &n);
    qs_nll_tokens rec = {0};
    qs_precision saved;
    if (st == QS_OK && (st = qs_api_precision(q, p.precision, &saved)) == QS_OK) {
        qs_rng rng;
        qs_rng_seed(&rng, p.seed);
        st = qs_viz_compute(q->m, &qo, ids, n, &rng, &rec);
        q->m->precision = saved;
    }
    if (st == QS_OK) st = write_page(q, path, ids, n, &rec, &qo, &p);
    if (st == QS_OK && out) {
        double sb = 0, sk = 0;
        for (size_t k = 0; k < rec.n; k++) sb += rec.t[k].nll_base, sk += rec.t[k].nll_think;
        out->n_tokens = (int)rec.n, out->n_ahead = qo.n_ahead;
        out->nll_base = sb / rec.n, out->nll_think = sk / rec.n, out->gain = (sb - sk) / rec.n;
    }
    qs_nll_tokens_free(&rec);
    free(ids);
    return st;
}

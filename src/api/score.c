// score.c: public API: qstar_score, per-token NLL without and with thoughts.
// It runs qs_nll_eval, the code behind `qstar eval --task nll` and `qstar
// viz`, on the tokens as one document (same windows, batches and seed rule).
#include "api/api.h"
#include "quietstar/nll_eval.h"

#include <math.h>
#include <string.h>

QSTAR_API qstar_score_params qstar_score_params_default(void) {
    qstar_score_params p = {.think = -1, .n_ahead = 0, .tau_sample = 0.0f, .greedy_thoughts = 0, .seed = 1234,
                            .seq_len = 0, .batch = 0, .precision = QSTAR_FP32};
    return p;
}

static void fill_unscored(qstar_score_out *out, int n) {
    for (int i = 0; i < n; i++) {
        if (out->nll_base) out->nll_base[i] = NAN;
        if (out->nll_think) out->nll_think[i] = NAN;
        if (out->mix_weight) out->mix_weight[i] = 0.0f;
        if (out->thoughts)
            for (int u = 0; u < out->thought_cap; u++) out->thoughts[(size_t)i * out->thought_cap + u] = -1;
    }
}

QSTAR_API qs_status qstar_score(qstar_model *q, const int *tokens, int n, const qstar_score_params *params,
                                qstar_score_out *out) {
    if (!q || !out || (n > 0 && !tokens) || n < 0) return qs_error(QS_ERR_ARG, "qstar_score: NULL or negative argument");
    if (out->thoughts && out->thought_cap < 0) return qs_error(QS_ERR_ARG, "qstar_score: negative thought_cap");
    const qstar_score_params p = params ? *params : qstar_score_params_default();
    const int V = q->m->cfg.vocab_size;
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return qs_error(QS_ERR_ARG, "qstar_score: token %d (id %d) outside vocabulary of %d", i, tokens[i], V);
    int think = 0;
    QS_TRY(qs_api_resolve_think(q, p.think, &think));
    qs_qstar_opts qo;
    QS_TRY(qs_api_thought_opts(q, think ? p.n_ahead : 0, think ? p.tau_sample : 0, think && p.greedy_thoughts, &qo));
    int T = p.seq_len > 0 ? p.seq_len : q->m->cfg.max_seq_len;
    if (T > q->m->cfg.max_seq_len)
        return qs_error(QS_ERR_ARG, "qstar_score: seq_len %d exceeds the model's max_seq_len %d", T, q->m->cfg.max_seq_len);
    const int B = p.batch > 0 ? p.batch : QS_MAX(1, (think ? 1024 : 4096) / T); // as qstar eval
    fill_unscored(out, n);
    out->n_thought = think ? qo.n_ahead - 3 : 0;
    out->n_scored = 0;
    out->mean_base = out->mean_think = NAN;
    if (n < 2) return QS_OK;
    size_t doc0 = 0;
    qs_token_stream s = {.tokens = (int *)tokens, .n_tokens = (size_t)n, .doc_start = &doc0, .n_docs = 1};
    qs_rng rng;
    qs_rng_seed(&rng, p.seed);
    qs_nll_tokens rec = {0};
    qs_nll_summary sum;
    qs_precision saved;
    QS_TRY(qs_api_precision(q, p.precision, &saved));
    qs_status st = qs_nll_eval(q->m, &s, think ? &qo : NULL, think, B, T, &rng, &rec, NULL, NULL, &sum);
    q->m->precision = saved;
    if (st != QS_OK) {
        qs_nll_tokens_free(&rec);
        return st;
    }
    for (size_t k = 0; k < rec.n; k++) {
        const qs_nll_token *t = &rec.t[k];
        const size_t i = (size_t)t->window * (size_t)T + (size_t)t->pos;
        if (i >= (size_t)n) continue;
        if (out->nll_base) out->nll_base[i] = t->nll_base;
        if (out->nll_think) out->nll_think[i] = t->nll_think;
        if (out->mix_weight) out->mix_weight[i] = t->mix_w;
        if (out->thoughts && think)
            for (int u = 0; u < rec.n_thought && u < out->thought_cap; u++)
                out->thoughts[i * out->thought_cap + u] = rec.thoughts[t->thought + u];
    }
    out->n_scored = (int)sum.n_tokens;
    out->mean_base = sum.nll_base;
    out->mean_think = think ? sum.nll_think : NAN;
    qs_nll_tokens_free(&rec);
    return QS_OK;
}

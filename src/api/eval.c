// eval.c: public API: qstar_eval_nll, held-out NLL of a data file without and
// with thoughts: `qstar eval --data` and `qstar eval --task nll` both run it,
// over quietstar/nll_eval.c (the one evaluation loop; without thoughts every
// token's NLL is the model's qs_lm_token_nll, as plain-LM training evaluates).
#include "api/api.h"
#include "data/dataset.h"
#include "data/shards.h"
#include "io/fileutil.h"
#include "io/model_io.h"
#include "quietstar/nll_eval.h"

#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

QSTAR_API qstar_eval_params qstar_eval_params_default(void) {
    qstar_eval_params p;
    memset(&p, 0, sizeof p);
    p.think = -1, p.seed = 1234, p.think_min_entropy = -INFINITY, p.precision = QSTAR_FP32;
    return p;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

QSTAR_API qs_status qstar_eval_check(const qstar_eval_params *params) {
    const qstar_eval_params p = params ? *params : qstar_eval_params_default();
    if (!p.data_path || !p.data_path[0]) return qs_error(QS_ERR_ARG, "qstar_eval_nll: no data path");
    if (p.seq_len < 0 || p.batch < 0 || p.limit_tokens < 0 || p.n_ahead < 0 || p.tau_sample < 0)
        return qs_error(QS_ERR_ARG, "qstar_eval_nll: negative seq_len, batch, limit_tokens, n_ahead or tau_sample");
    QS_TRY(qs_api_think_at_check("qstar_eval_nll", p.think_at, p.n_talk, p.think_min_entropy));
    QS_TRY(qs_api_out_check(p.out_path, p.force));
    return qs_api_out_check(p.tokens_path, p.force);
}

// The token stream: the whole of a text/JSONL file (no held-out split), or
// the held-out split of a `qstar prepare` directory (ids checked against the
// vocabulary); cut to limit tokens when limit > 0. pr describes it.
static qs_status load_stream(const qstar_model *q, const qstar_eval_params *p, qs_dataset *ds, qs_token_stream *s,
                             qstar_eval_progress *pr) {
    const int vocab = q->m->cfg.vocab_size;
    if (qs_shards_is_dir(p->data_path)) {
        QS_TRY(qs_shards_load(ds, p->data_path, 0));
        *s = ds->val.n_tokens ? ds->val : ds->train;
        pr->prepared = 1, pr->heldout = ds->val.n_tokens > 0;
        for (size_t i = 0; i < s->n_tokens; i++)
            if (qs_stream_token(s, i) >= vocab)
                return qs_error(QS_ERR_FORMAT, "%s: token id %d at %zu is outside the model's vocabulary (%d)",
                                p->data_path, qs_stream_token(s, i), i, vocab);
    } else {
        qs_dataset_opts dopt = qs_dataset_opts_default();
        dopt.val_frac = 0.0; // everything in one stream
        dopt.field = p->data_field;
        if (p->data_field) dopt.format = QS_DATA_JSONL;
        QS_TRY(qs_dataset_load(ds, p->data_path, q->tok, &dopt));
        *s = ds->train;
    }
    pr->n_docs = s->n_docs, pr->n_stream_tokens = s->n_tokens;
    if (p->limit_tokens > 0 && (size_t)p->limit_tokens < s->n_tokens) s->n_tokens = (size_t)p->limit_tokens;
    return QS_OK;
}

typedef struct {
    const qstar_eval_params *p;
    qstar_eval_progress pr;
} progress_ctx;

static int on_progress(void *ud, size_t done, size_t total, long n_tokens, double nll_sum) {
    progress_ctx *c = ud;
    c->pr.windows_done = done, c->pr.windows_total = total;
    c->pr.n_tokens = n_tokens, c->pr.nll_base = n_tokens > 0 ? nll_sum / (double)n_tokens : NAN;
    return c->p->progress ? c->p->progress(c->p->progress_user, &c->pr) : 0;
}

static void thought_text(const qs_tokenizer *tok, int prev, const int *th, int n, char *out, size_t cap) {
    size_t k = 0;
    out[0] = 0;
    for (int u = 0; u < n; u++) {
        const char *piece = qs_tokenizer_piece(tok, prev, th[u]);
        size_t l = strlen(piece);
        if (k + l + 1 > cap) break;
        memcpy(out + k, piece, l + 1);
        k += l;
        prev = th[u];
    }
}

// One JSON line of the per-token file.
static qs_status token_line(const qstar_model *q, const qs_nll_tokens *rec, const qs_nll_token *t, int think,
                            qs_afile *af) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return qs_error(QS_ERR_NOMEM, "out of memory");
    cJSON_AddNumberToObject(o, "window", (double)t->window);
    cJSON_AddNumberToObject(o, "pos", t->pos);
    cJSON_AddNumberToObject(o, "id", t->token);
    qs_api_json_text(o, "text", qs_tokenizer_piece(q->tok, t->prev, t->token));
    cJSON_AddNumberToObject(o, "nll_base", t->nll_base);
    cJSON_AddNumberToObject(o, "entropy", t->entropy);
    if (think) {
        char tt[4096];
        cJSON_AddBoolToObject(o, "thought_on", t->thought_on);
        cJSON_AddNumberToObject(o, "talk", t->talk);
        cJSON_AddNumberToObject(o, "nll_think", t->nll_think);
        cJSON_AddNumberToObject(o, "mix", t->mix_w);
        const int *th = rec->thoughts + t->thought;
        cJSON_AddItemToObject(o, "thought", cJSON_CreateIntArray(th, rec->n_thought));
        thought_text(q->tok, t->prev, th, rec->n_thought, tt, sizeof tt);
        qs_api_json_text(o, "thought_text", tt);
    } else {
        cJSON_AddNullToObject(o, "nll_think");
    }
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!txt) return qs_error(QS_ERR_NOMEM, "out of memory");
    qs_status st = qs_afile_write(af, txt, strlen(txt));
    if (st == QS_OK) st = qs_afile_write(af, "\n", 1);
    free(txt);
    return st;
}

static qs_status write_tokens(const qstar_model *q, const char *path, const qs_nll_tokens *rec, int think) {
    qs_afile af;
    QS_TRY(qs_afile_open(&af, path));
    qs_status st = QS_OK;
    for (size_t k = 0; k < rec->n && st == QS_OK; k++) st = token_line(q, rec, &rec->t[k], think, &af);
    if (st == QS_OK) st = qs_afile_commit(&af);
    else qs_afile_abort(&af);
    return st;
}

static void add_nums(cJSON *root, const char *const *keys, const double *v, int n) {
    for (int k = 0; k < n; k++) cJSON_AddNumberToObject(root, keys[k], v[k]);
}

static qs_status write_results(const qstar_model *q, const qstar_eval_params *p, const qs_qstar_opts *qo,
                               const qs_think_ctl *ctl, const qstar_eval_result *r) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return qs_error(QS_ERR_NOMEM, "out of memory for the JSON results");
    cJSON_AddStringToObject(root, "task", "nll");
    qs_api_json_text(root, "model", q->path);
    qs_api_json_text(root, "data", p->data_path);
    cJSON_AddBoolToObject(root, "think", r->think);
    qs_api_json_thoughts(root, r->think, qo);
    const char *k1[] = {"seed", "n", "seq_len", "nll_base", "hard20_nll_base", "hard10_nll_base"};
    const double v1[] = {(double)p->seed, (double)r->n_tokens, r->seq_len, r->nll_base, r->hard20_base, r->hard10_base};
    add_nums(root, k1, v1, 6);
    if (r->think) {
        const char *k2[] = {"nll_think", "hard20_nll_think", "hard10_nll_think", "mix_mean", "gain",
                            "gain_window_mean", "gain_ci95", "gain_windows", "think_frac"};
        const double v2[] = {r->nll_think, r->hard20_think, r->hard10_think, r->mix_mean,
                             r->nll_base - r->nll_think, // base - think: > 0 = thoughts help
                             r->gain, isfinite(r->gain_ci95) ? r->gain_ci95 : -1, (double)r->gain_windows,
                             r->think_frac};
        add_nums(root, k2, v2, 9);
        cJSON_AddBoolToObject(root, "random_thoughts", ctl->random_thoughts);
        if (ctl->min_entropy > -INFINITY) cJSON_AddNumberToObject(root, "think_when_entropy", ctl->min_entropy);
        if (ctl->think_at) {
            qs_api_json_text(root, "think_at", ctl->think_at);
            cJSON_AddNumberToObject(root, "n_talk", ctl->n_talk);
        }
    }
    cJSON_AddNumberToObject(root, "seconds", r->seconds);
    qs_status st = qs_api_json_write(p->out_path, root);
    cJSON_Delete(root);
    return st;
}

static void fill_result(const qs_nll_summary *s, qstar_eval_result *r) {
    r->n_tokens = s->n_tokens;
    r->nll_base = s->nll_base, r->nll_think = s->nll_think;
    r->hard20_base = s->hard20_base, r->hard20_think = s->hard20_think;
    r->hard10_base = s->hard10_base, r->hard10_think = s->hard10_think;
    r->mix_mean = s->mix_mean, r->think_frac = s->think_frac;
    r->gain = s->gain, r->gain_ci95 = s->gain_ci95, r->gain_windows = s->gain_windows;
}

// Window length, batch and thoughts for this model.
static qs_status settings(const qstar_model *q, const qstar_eval_params *p, qstar_eval_result *out, qs_qstar_opts *qo,
                          qs_think_ctl *ctl) {
    const int max = q->m->cfg.max_seq_len;
    out->seq_len = p->seq_len > 0 ? p->seq_len : max;
    if (out->seq_len > max)
        return qs_error(QS_ERR_ARG, "seq_len %d exceeds the model's max_seq_len %d", out->seq_len, max);
    if (out->seq_len < 2) return qs_error(QS_ERR_ARG, "seq_len %d is too short (2 at least)", out->seq_len);
    QS_TRY(qs_api_resolve_think(q, p->think, &out->think));
    const int when = p->random_thoughts || p->think_min_entropy > -INFINITY || p->think_at;
    if (!out->think && (when || p->n_ahead || p->tau_sample > 0 || p->greedy_thoughts))
        return qs_error(QS_ERR_ARG, "thought settings need thinking (a Quiet-STaR checkpoint, think not 0)");
    out->batch = p->batch > 0 ? p->batch : QS_MAX(1, (out->think ? 1024 : 4096) / out->seq_len);
    QS_TRY(qs_api_thought_opts(q, p->n_ahead, p->tau_sample, p->greedy_thoughts, qo));
    if (out->think) {
        out->n_ahead = qo->n_ahead, out->tau_sample = qo->tau_sample;
        out->mixing = qo->mixing == QS_MIX_SIGMOID ? "sigmoid" : "linear";
    }
    *ctl = qs_think_ctl_default();
    ctl->min_entropy = p->think_min_entropy;
    ctl->random_thoughts = p->random_thoughts != 0;
    if (out->think && p->think_at)
        ctl->think_at = p->think_at, ctl->tok = q->tok, ctl->n_talk = p->n_talk ? p->n_talk : QS_MAX(1, qo->n_talk);
    return QS_OK;
}

QSTAR_API qs_status qstar_eval_nll(qstar_model *q, const qstar_eval_params *params, qstar_eval_result *out) {
    if (!q || !out) return qs_error(QS_ERR_ARG, "qstar_eval_nll: NULL argument");
    memset(out, 0, sizeof *out);
    out->mixing = "";
    out->nll_base = out->nll_think = NAN;
    const qstar_eval_params p = params ? *params : qstar_eval_params_default();
    const double t0 = now();
    QS_TRY(qstar_eval_check(&p)); // before any work
    qs_qstar_opts qo;
    qs_think_ctl ctl;
    QS_TRY(settings(q, &p, out, &qo, &ctl));
    qs_dataset ds;
    memset(&ds, 0, sizeof ds);
    progress_ctx pc = {.p = &p};
    qs_token_stream s;
    qs_nll_tokens rec = {0};
    qs_nll_summary sum;
    qs_precision saved;
    qs_status st = load_stream(q, &p, &ds, &s, &pc.pr);
    if (st == QS_OK && p.progress && p.progress(p.progress_user, &pc.pr))
        st = qs_error(QS_ERR_INTERRUPTED, "evaluation interrupted");
    if (st == QS_OK && (st = qs_api_precision(q, p.precision, &saved)) == QS_OK) {
        qs_rng rng;
        qs_rng_seed(&rng, p.seed);
        st = qs_nll_eval_ctl(q->m, &s, out->think ? &qo : NULL, out->think, &ctl, out->batch, out->seq_len, &rng,
                             p.tokens_path ? &rec : NULL, on_progress, &pc, &sum);
        q->m->precision = saved;
    }
    if (st == QS_OK && sum.n_tokens == 0)
        st = qs_error(QS_ERR_FORMAT, "%s: no tokens to score (every window holds a single token)", p.data_path);
    if (st == QS_OK) {
        fill_result(&sum, out);
        if (p.tokens_path) st = write_tokens(q, p.tokens_path, &rec, out->think);
    }
    out->seconds = now() - t0;
    if (st == QS_OK && p.out_path) st = write_results(q, &p, &qo, &ctl, out);
    qs_nll_tokens_free(&rec);
    qs_dataset_free(&ds);
    return st;
}

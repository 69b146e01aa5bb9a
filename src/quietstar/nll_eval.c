// nll_eval.c: held-out NLL of a token stream without and with thoughts (see
// nll_eval.h): the one evaluation behind `qstar eval --data`, `qstar eval
// --task nll`, `qstar viz` and qstar_score.
#include "quietstar/nll_eval.h"
#include "model/transformer.h"
#include "model/workspace.h"
#include "ops/ops.h"
#include "tokenizer/tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------
// Held-out NLL

void qs_nll_tokens_free(qs_nll_tokens *r) {
    if (!r) return;
    free(r->t);
    free(r->thoughts);
    memset(r, 0, sizeof *r);
}

static qs_status rec_push(qs_nll_tokens *r, const qs_nll_token *t, const int *thought) {
    if (r->n == r->cap) {
        size_t c = r->cap ? 2 * r->cap : 1024;
        qs_nll_token *p = realloc(r->t, c * sizeof *p);
        if (!p) return qs_error(QS_ERR_NOMEM, "out of memory for per-token records");
        r->t = p, r->cap = c;
    }
    size_t need = (r->n + 1) * (size_t)r->n_thought;
    if (need > r->th_cap) {
        size_t c = QS_MAX(need, 2 * r->th_cap);
        int *p = realloc(r->thoughts, c * sizeof *p);
        if (!p) return qs_error(QS_ERR_NOMEM, "out of memory for per-token thoughts");
        r->thoughts = p, r->th_cap = c;
    }
    r->t[r->n] = *t;
    r->t[r->n].thought = r->n * (size_t)r->n_thought;
    if (r->n_thought && thought) memcpy(r->thoughts + r->t[r->n].thought, thought, r->n_thought * sizeof(int));
    r->n++;
    return QS_OK;
}

static int cmp_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

// The thought gain (base - think NLL) with a 95% interval: per window, the
// mean difference of its tokens; t-interval over the windows (tokens of one
// window are not independent, windows nearly are).
static void gain_ci(const qs_nll_tokens *rec, qs_nll_summary *sum) {
    double S = 0, S2 = 0, d = 0;
    long nw = 0, nt = 0;
    for (size_t k = 0; k <= rec->n; k++) {
        if (k == rec->n || (k > 0 && rec->t[k].window != rec->t[k - 1].window)) {
            if (nt > 0) {
                double x = d / nt;
                S += x, S2 += x * x, nw++;
            }
            d = 0, nt = 0;
            if (k == rec->n) break;
        }
        d += (double)rec->t[k].nll_base - rec->t[k].nll_think, nt++;
    }
    sum->gain_windows = nw;
    sum->gain = nw ? S / nw : NAN;
    sum->gain_ci95 = NAN;
    if (nw >= 2) {
        double var = (S2 - S * S / nw) / (nw - 1);
        sum->gain_ci95 = qs_t95(nw - 1) * sqrt(var > 0 ? var / nw : 0);
    }
}

double qs_t95(long df) {
    static const double t[30] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                                 2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                                 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
    if (df < 1) return NAN;
    if (df <= 30) return t[df - 1];
    return 1.960 + 2.4 / (double)df; // within 0.003 of the exact quantile for df > 30
}

typedef struct { float base, think; } pairf;
static int cmp_pair_desc(const void *a, const void *b) { return cmp_desc(&((const pairf *)a)->base, &((const pairf *)b)->base); }

void qs_nll_summarize(const qs_nll_tokens *rec, int think, qs_nll_summary *sum) {
    memset(sum, 0, sizeof *sum);
    sum->n_tokens = (long)rec->n;
    const double nan = NAN;
    sum->nll_think = sum->hard10_think = sum->hard20_think = nan;
    if (rec->n == 0) {
        sum->nll_base = sum->hard10_base = sum->hard20_base = nan;
        return;
    }
    pairf *p = malloc(rec->n * sizeof *p);
    double sb = 0, st = 0, sm = 0, son = 0;
    for (size_t k = 0; k < rec->n; k++) {
        sb += rec->t[k].nll_base, st += rec->t[k].nll_think, sm += rec->t[k].mix_w, son += rec->t[k].thought_on;
        if (p) p[k].base = rec->t[k].nll_base, p[k].think = rec->t[k].nll_think;
    }
    sum->nll_base = sb / rec->n;
    sum->mix_mean = sm / rec->n;
    sum->think_frac = think ? son / rec->n : 0.0;
    if (think) {
        sum->nll_think = st / rec->n;
        gain_ci(rec, sum);
    }
    if (!p) return;
    qsort(p, rec->n, sizeof *p, cmp_pair_desc);
    const double frac[2] = {0.10, 0.20};
    for (int f = 0; f < 2; f++) {
        size_t k = (size_t)ceil(frac[f] * rec->n);
        if (k < 1) k = 1;
        double b = 0, t = 0;
        for (size_t j = 0; j < k; j++) b += p[j].base, t += p[j].think;
        double *db = f ? &sum->hard20_base : &sum->hard10_base, *dt = f ? &sum->hard20_think : &sum->hard10_think;
        *db = b / k;
        if (think) *dt = t / k;
    }
    free(p);
}

// The state of one evaluation: batch buffers, the model's base pass (the
// plain LM path, qs_lm_token_nll_ent) and, thinking, the Quiet-STaR step in
// evaluation mode.
typedef struct {
    const qs_model *m;
    int B, T, think, nT, need_ent;
    qs_qstar_opts eo;     // evaluation-mode options (thinking)
    qs_think_ctl ctl;
    qs_qstar *q;
    qs_workspace *ws;
    int *tokens, *mask;   // [B*T]
    int *forced;          // [B*nT*T] random thoughts (ctl.random_thoughts)
    float *nll, *ent;     // [B*T] base NLL / entropy of each position's prediction
    int *src;             // [T] think_at: the position whose thought scores position i's prediction (-1: none)
} nll_run;

static void run_free(nll_run *r) {
    qs_qstar_free(r->q);
    qs_workspace_free(r->ws);
    free(r->tokens), free(r->mask), free(r->forced), free(r->nll), free(r->ent), free(r->src);
}

static qs_status run_init(nll_run *r) {
    const size_t BT = (size_t)r->B * r->T;
    r->tokens = qs_malloc(BT * sizeof(int), "batch tokens");
    r->mask = qs_malloc(BT * sizeof(int), "batch mask");
    r->nll = qs_malloc(BT * sizeof(float), "per-token NLL");
    r->ent = qs_malloc(BT * sizeof(float), "per-token entropy");
    r->src = qs_malloc((size_t)r->T * sizeof(int), "thought positions");
    if (!r->tokens || !r->mask || !r->nll || !r->ent || !r->src) return QS_ERR_NOMEM;
    QS_TRY(qs_workspace_create_ex(&r->ws, &r->m->cfg, r->B, r->T, 1, 0));
    if (!r->think) return QS_OK;
    QS_TRY(qs_qstar_create(&r->q, r->m, &r->eo, r->B, r->T));
    if (r->ctl.random_thoughts && r->nT > 0 && !(r->forced = qs_malloc(BT * r->nT * sizeof(int), "random thoughts")))
        return QS_ERR_NOMEM;
    return QS_OK;
}

// think_at: for each position i of row b, the position a <= i whose thought
// predicts tokens[i+1] through talk pass i-a (-1: none): the last position
// where the decoded text of the window ends with the anchor, if i-a < n_talk.
// Decoded as qs_tokenizer_decode: BOS and EOS are no text (llama2.c's BOS
// piece "\n<s>\n" would otherwise end an anchor "\n"), and a position whose
// token adds no text is no new anchor (the text did not change there).
static void anchor_sources(const nll_run *r, const int *tok, int *src) {
    qs_anchor an = {.n = 0};
    int a = -1;
    for (int i = 0; i < r->T; i++) {
        if (qs_anchor_push(&an, r->ctl.tok, r->ctl.think_at, i ? tok[i - 1] : -1, tok[i])) a = i;
        src[i] = a >= 0 && i - a < r->eo.n_talk ? a : -1;
    }
}

// One batch of windows w0.. : base pass, thoughts, one record per scored token.
static qs_status run_batch(nll_run *r, const qs_token_stream *s, size_t w0, qs_rng *rng, qs_nll_tokens *rec) {
    const int T = r->T, nT = r->nT, V = r->m->cfg.vocab_size;
    int rows = 0;
    QS_TRY(qs_stream_eval_batch(s, w0, r->B, T, r->tokens, r->mask, &rows));
    QS_TRY(qs_lm_token_nll_ent(r->m, r->ws, r->tokens, r->mask, r->B, T, r->nll, r->need_ent ? r->ent : NULL, NULL,
                               NULL));
    qs_qstar_out out;
    if (r->think) {
        if (r->forced)
            for (size_t k = 0; k < (size_t)r->B * T * nT; k++)
                r->forced[k] = qs_random_thought_token(V, r->eo.banned, r->eo.n_banned, qs_rng_uniform(rng));
        QS_TRY(qs_qstar_step(r->q, r->m, r->tokens, r->mask, r->forced, r->forced ? NULL : rng, NULL, 0.0f, &out));
    }
    const size_t RT = (size_t)r->B * T;
    for (int b = 0; b < rows; b++) {
        if (r->think && r->ctl.think_at) anchor_sources(r, r->tokens + (size_t)b * T, r->src);
        for (int i = 0; i + 1 < T; i++) {
            if (!r->mask[b * T + i + 1]) continue;
            const size_t k = (size_t)b * T + i;
            qs_nll_token t = {.token = r->tokens[k + 1], .prev = r->tokens[k], .window = (long)(w0 + b), .pos = i + 1,
                              .nll_base = r->nll[k], .nll_think = NAN, .mix_w = 0.0f,
                              .entropy = r->need_ent ? r->ent[k] : NAN};
            int th[256];
            t.talk = -1;
            if (r->think) {
                // thinking where the base entropy exceeds the threshold, or from the thought at the anchor
                // before; elsewhere the base prediction
                const int a = r->ctl.think_at ? r->src[i] : i;
                const int on = a >= 0 && (!r->need_ent || r->ent[k] > r->ctl.min_entropy);
                const size_t kk = on ? (size_t)(i - a) * RT + (size_t)b * T + a : 0;
                for (int u = 0; u < nT; u++) th[u] = on ? out.thoughts[((size_t)b * nT + u) * T + a] : 0;
                t.nll_think = on ? out.nll_talk[kk] : t.nll_base;
                t.mix_w = on ? out.mix_weight[kk] : 0.0f;
                t.thought_on = on;
                t.talk = on ? i - a : -1;
            }
            QS_TRY(rec_push(rec, &t, r->think ? th : NULL));
        }
    }
    return QS_OK;
}

qs_status qs_nll_eval(const qs_model *m, const qs_token_stream *s, const qs_qstar_opts *o, int think, int B, int T,
                      qs_rng *rng, qs_nll_tokens *rec_out, qs_progress_fn progress, void *ud, qs_nll_summary *sum) {
    return qs_nll_eval_ctl(m, s, o, think, NULL, B, T, rng, rec_out, progress, ud, sum);
}

qs_status qs_nll_eval_ctl(const qs_model *m, const qs_token_stream *s, const qs_qstar_opts *o, int think,
                          const qs_think_ctl *ctl, int B, int T, qs_rng *rng, qs_nll_tokens *rec_out,
                          qs_progress_fn progress, void *ud, qs_nll_summary *sum) {
    nll_run r = {.m = m, .B = B, .T = T, .think = think && o, .ctl = ctl ? *ctl : qs_think_ctl_default()};
    if (B < 1 || T < 2) return qs_error(QS_ERR_ARG, "batch %dx%d too small", B, T);
    if (T > m->cfg.max_seq_len) return qs_error(QS_ERR_ARG, "window %d exceeds the model's max_seq_len %d", T, m->cfg.max_seq_len);
    if (r.think) {
        r.eo = *o; // SPEC section 5: evaluation mode
        r.eo.n_passes = 1, r.eo.n_talk = 1, r.eo.reward_baseline = QS_BASELINE_MEAN;
        QS_TRY(qs_think_ctl_check(&r.ctl));
        if (r.ctl.think_at) r.eo.n_talk = r.ctl.n_talk;
        r.eo.forward_only = 1; // no gradients: no layer inputs, activations or gradient buffers
        if (T < r.eo.n_talk + 2)
            return qs_error(QS_ERR_ARG, "window %d too short for thoughts (needs %d)", T, r.eo.n_talk + 2);
        if (r.eo.n_ahead - 3 > 256) return qs_error(QS_ERR_ARG, "n_ahead %d too long for evaluation", r.eo.n_ahead);
        r.nT = r.eo.n_ahead - 3;
    }
    // entropies: for the records the caller keeps, and for thinking only where it is high
    r.need_ent = rec_out != NULL || (r.think && r.ctl.min_entropy > -INFINITY);
    qs_nll_tokens local = {0}, *rec = rec_out ? rec_out : &local;
    if (rec->n == 0) rec->n_thought = r.nT;
    else if (rec->n_thought != r.nT) return qs_error(QS_ERR_ARG, "per-token records hold thoughts of another length");
    const size_t base_n = rec->n, nw = qs_stream_n_windows(s, T);
    qs_status st = run_init(&r);
    double nll_sum = 0;
    for (size_t w0 = 0; st == QS_OK && w0 < nw; w0 += (size_t)B) {
        const size_t n0 = rec->n;
        st = run_batch(&r, s, w0, rng, rec);
        for (size_t k = n0; st == QS_OK && k < rec->n; k++) nll_sum += rec->t[k].nll_base;
        if (st == QS_OK && progress && progress(ud, QS_MIN(w0 + (size_t)B, nw), nw, (long)(rec->n - base_n), nll_sum))
            st = qs_error(QS_ERR_INTERRUPTED, "evaluation interrupted");
    }
    if (st == QS_OK) {
        qs_nll_tokens view = *rec;
        view.t += base_n, view.n -= base_n;
        qs_nll_summarize(&view, r.think, sum);
    }
    run_free(&r);
    qs_nll_tokens_free(&local);
    return st;
}

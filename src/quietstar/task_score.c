// task_score.c: scoring one GSM8K / CommonsenseQA example: restricted
// answer-token probabilities, with or without a thought before each answer
// token (see task_score.h).
#include "quietstar/task_score.h"
#include "quietstar/think.h"
#include "model/workspace.h"
#include "ops/ops.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

double qs_restricted_prob(const float *logits, const int *valid, int n, int target, int *is_argmax, int *in_set) {
    int have = 0;
    float mx = logits[target];
    for (int k = 0; k < n; k++) {
        if (valid[k] == target) have = 1;
        if (logits[valid[k]] > mx) mx = logits[valid[k]];
    }
    double s = 0.0;
    for (int k = 0; k < n; k++) s += exp((double)logits[valid[k]] - mx);
    if (!have) s += exp((double)logits[target] - mx);
    if (in_set) *in_set = have;
    if (is_argmax) {
        // first maximum in vocabulary order among the set (target included)
        int best = -1;
        for (int k = 0; k < n; k++)
            if (best < 0 || logits[valid[k]] > logits[best] || (logits[valid[k]] == logits[best] && valid[k] < best))
                best = valid[k];
        if (!have && (best < 0 || logits[target] > logits[best] || (logits[target] == logits[best] && target < best)))
            best = target;
        *is_argmax = best == target;
    }
    return exp((double)logits[target] - mx) / s;
}

// ---------------------------------------------------------------------------
// Scoring

struct qs_task_scorer {
    const qs_model *m;
    int think, max_len;
    qs_qstar_opts o;
    qs_thinker *th;      // thinking
    qs_workspace *ws;    // plain: one block forward of the whole sequence
    float *x0, *h;       // [max_len, H]
    float *logits;       // [V]
    int *thought;        // [n_thought]
};

void qs_task_scorer_free(qs_task_scorer *s) {
    if (!s) return;
    qs_thinker_free(s->th);
    qs_workspace_free(s->ws);
    free(s->x0), free(s->h), free(s->logits), free(s->thought);
    free(s);
}

qs_status qs_task_scorer_create(qs_task_scorer **out, const qs_model *m, const qs_qstar_opts *o, int think,
                                int max_len) {
    *out = NULL;
    if (max_len < 2) return qs_error(QS_ERR_ARG, "max_len %d too small", max_len);
    qs_task_scorer *s = calloc(1, sizeof *s);
    if (!s) return qs_error(QS_ERR_NOMEM, "out of memory for the scorer");
    s->m = m, s->think = o && think, s->max_len = max_len;
    if (o) s->o = *o;
    const size_t H = m->cfg.dim, V = m->cfg.vocab_size;
    qs_status st;
    if (s->think) {
        st = qs_thinker_create(&s->th, m, o, max_len);
        if (st == QS_OK && !(s->thought = qs_calloc((size_t)QS_MAX(1, o->n_ahead - 3), sizeof(int), "thought")))
            st = QS_ERR_NOMEM;
    } else {
        st = qs_workspace_create_ex(&s->ws, &m->cfg, 1, max_len, 1, 0);
        if (st == QS_OK) {
            qs_workspace_set_mask(s->ws, NULL);
            s->x0 = qs_malloc((size_t)max_len * H * sizeof(float), "scorer input");
            s->h = qs_malloc((size_t)max_len * H * sizeof(float), "scorer hidden states");
            if (!s->x0 || !s->h) st = QS_ERR_NOMEM;
        }
    }
    if (st == QS_OK && !(s->logits = qs_malloc(V * sizeof(float), "logits"))) st = QS_ERR_NOMEM;
    if (st != QS_OK) { qs_task_scorer_free(s); return st; }
    *out = s;
    return QS_OK;
}

static void score_token(qs_task_result *r, const float *logits, const int *valid, int n_valid, int target, float w) {
    int am, in;
    double p = qs_restricted_prob(logits, valid, n_valid, target, &am, &in);
    if (r->n_ans < QS_TASK_MAX_ANS) r->prob[r->n_ans] = p, r->mix_w[r->n_ans] = w;
    r->n_ans++;
    r->score *= p;
    if (!am) r->exact = 0;
    if (!in) r->off_set++;
}

qs_status qs_task_score(qs_task_scorer *s, const qs_task_item *it, const int *valid, int n_valid, qs_rng *rng,
                        qs_task_result *r) {
    memset(r, 0, sizeof *r);
    r->score = 1.0, r->exact = 1;
    const qs_model *m = s->m;
    const int H = m->cfg.dim, V = m->cfg.vocab_size;
    if (it->n > s->max_len) return qs_error(QS_ERR_ARG, "example of %d tokens exceeds the scorer's %d", it->n, s->max_len);
    if (it->n_ans < 1) return qs_error(QS_ERR_ARG, "example has no answer tokens");
    for (int k = 0; k < n_valid; k++)
        if (valid[k] < 0 || valid[k] >= V) return qs_error(QS_ERR_ARG, "valid token %d outside vocabulary", valid[k]);
    for (int j = 0; j < it->n; j++)
        if (it->tokens[j] < 0 || it->tokens[j] >= V) return qs_error(QS_ERR_ARG, "token %d outside vocabulary", it->tokens[j]);
    const int last = it->pos[it->n_ans - 1];
    qs_status st = QS_OK;
    if (s->think) {
        // A thought at position i changes only the prediction made at i (its
        // keys/values are visible to nobody else: SPEC section 2's diagonal
        // mask; the thinker drops them). So the teacher-forced eval-mode
        // forward "thoughts at every position" gives, at the answer
        // positions, exactly what one thought at each answer position after
        // a plain prefix gives: we think only where a prediction is scored.
        // Single-position forwards: OpenMP threads only add fork/join cost.
        const int saved = omp_get_max_threads();
        omp_set_num_threads(1);
        // a fresh prefix for each example: recreate the thinker's state
        qs_thinker_free(s->th);
        s->th = NULL;
        st = qs_thinker_create(&s->th, m, &s->o, last + 1);
        int a = 0;
        for (int i = 0; st == QS_OK && i <= last; i++) {
            st = qs_thinker_feed(s->th, it->tokens[i], i);
            if (st != QS_OK || i != it->pos[a]) continue;
            float w = 0.0f;
            st = qs_thinker_think(s->th, rng, s->logits, s->thought, &w);
            if (st == QS_OK) score_token(r, s->logits, valid, n_valid, it->tokens[i + 1], w);
            a++;
        }
        omp_set_num_threads(saved);
    } else {
        const int n = last + 1;
        for (int i = 0; i < n; i++) memcpy(s->x0 + (size_t)i * H, m->w.embed + (size_t)it->tokens[i] * H, H * sizeof(float));
        st = qs_forward_block(m, s->ws, s->x0, 0, 1, 0, n, s->h);
        qs_mm mm;
        if (st == QS_OK) st = qs_model_mm(m, &mm); // the model's precision
        for (int a = 0; st == QS_OK && a < it->n_ans; a++) {
            int i = it->pos[a];
            matmul_forward_mm(&mm, s->logits, s->h + (size_t)i * H, m->w.lm_head, NULL, 1, H, V);
            score_token(r, s->logits, valid, n_valid, it->tokens[i + 1], 0.0f);
        }
    }
    return st;
}


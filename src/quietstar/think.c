// think.c: generation with thoughts (see think.h).
#include "quietstar/think.h"
#include "quietstar/mixhead.h"
#include "model/sampler.h"
#include "model/workspace.h"
#include "ops/ops.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

struct qs_thinker {
    const qs_model *m;
    qs_qstar_opts o;
    qs_workspace *ws;    // 1 row x max_len positions x n_ahead passes, inference
    int pos;             // last fed position (-1: none)
    float *h0, *h, *x;   // [H] base hidden state, scratch hidden, pass input
    float *hm, *z;       // [H] mixed state, [V] logits
    qs_mix_acts ma;      // mixing head activations for one position
    int plain;           // created without Quiet-STaR options: feed/plain logits only
};

void qs_thinker_free(qs_thinker *t) {
    if (!t) return;
    qs_workspace_free(t->ws);
    void *b[] = {t->h0, t->h, t->x, t->hm, t->z, t->ma.cat, t->ma.a1, t->ma.a2, t->ma.w, t->ma.da, t->ma.dcat};
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) free(b[i]);
    free(t);
}

qs_status qs_thinker_create(qs_thinker **out, const qs_model *m, const qs_qstar_opts *o, int max_len) {
    *out = NULL;
    if (o) {
        QS_TRY(qs_qstar_opts_validate(o, 0));
        if (!m->has_quietstar) return qs_error(QS_ERR_ARG, "thinking needs a model with Quiet-STaR tensors (a qstar train checkpoint)");
    }
    if (max_len < 1) return qs_error(QS_ERR_ARG, "thinker length %d must be positive", max_len);
    qs_thinker *t = calloc(1, sizeof *t);
    if (!t) return qs_error(QS_ERR_NOMEM, "out of memory for the thinker");
    t->m = m, t->pos = -1, t->plain = o == NULL;
    if (o) t->o = *o;
    qs_status st = qs_workspace_create_ex(&t->ws, &m->cfg, 1, max_len, o ? o->n_ahead : 1, 0);
    const size_t H = m->cfg.dim, V = m->cfg.vocab_size;
    if (st == QS_OK) {
        t->h0 = qs_calloc(H, sizeof(float), "h0"), t->h = qs_calloc(H, sizeof(float), "h");
        t->x = qs_calloc(H, sizeof(float), "x"), t->hm = qs_calloc(H, sizeof(float), "hm");
        t->z = qs_calloc(V, sizeof(float), "logits");
        t->ma.cat = qs_calloc(2 * H, sizeof(float), "mix"), t->ma.a1 = qs_calloc(H, sizeof(float), "mix");
        t->ma.a2 = qs_calloc(H, sizeof(float), "mix"), t->ma.w = qs_calloc(1, sizeof(float), "mix");
        t->ma.da = qs_calloc(H, sizeof(float), "mix"), t->ma.dcat = qs_calloc(2 * H, sizeof(float), "mix");
        if (!t->h0 || !t->h || !t->x || !t->hm || !t->z || !t->ma.cat || !t->ma.a1 || !t->ma.a2 || !t->ma.w ||
            !t->ma.da || !t->ma.dcat)
            st = QS_ERR_NOMEM;
    }
    if (st != QS_OK) { qs_thinker_free(t); return st; }
    t->ws->mask = NULL;
    *out = t;
    return QS_OK;
}

qs_workspace *qs_thinker_workspace(qs_thinker *t) { return t->ws; }

qs_status qs_thinker_feed(qs_thinker *t, int token, int pos) {
    const qs_model *m = t->m;
    if (token < 0 || token >= m->cfg.vocab_size) return qs_error(QS_ERR_ARG, "token %d outside vocabulary", token);
    if (pos != t->pos + 1) return qs_error(QS_ERR_ARG, "thinker positions must come in order (got %d after %d)", pos, t->pos);
    QS_TRY(qs_forward_block(m, t->ws, m->w.embed + (size_t)token * m->cfg.dim, 0, 1, pos, 1, t->h0));
    t->pos = pos;
    return QS_OK;
}

void qs_thinker_plain_logits(qs_thinker *t, float *logits) {
    matmul_forward(logits, t->h0, t->m->w.lm_head, NULL, 1, t->m->cfg.dim, t->m->cfg.vocab_size);
}

// One token from softmax(z / tau) (or argmax), banned ids excluded.
static int sample_thought(const qs_qstar_opts *o, float *z, int V, qs_rng *rng) {
    for (int b = 0; b < o->n_banned; b++) z[o->banned[b]] = -INFINITY;
    int best = 0;
    for (int v = 1; v < V; v++) if (z[v] > z[best]) best = v;
    if (o->greedy_thoughts) return best;
    double s = 0.0;
    for (int v = 0; v < V; v++) s += expf((z[v] - z[best]) / o->tau_sample);
    double u = qs_rng_uniform(rng) * s, c = 0.0;
    for (int v = 0; v < V; v++) {
        c += expf((z[v] - z[best]) / o->tau_sample);
        if (u < c) return v;
    }
    return best;
}

qs_status qs_thinker_think(qs_thinker *t, qs_rng *rng, float *logits, int *thought, float *mix_w) {
    const qs_model *m = t->m;
    const int H = m->cfg.dim, V = m->cfg.vocab_size, na = t->o.n_ahead, pos = t->pos;
    if (pos < 0) return qs_error(QS_ERR_ARG, "think: no token fed yet");
    if (t->plain) return qs_error(QS_ERR_ARG, "think: this thinker was created without Quiet-STaR options");
    if (!rng)
        for (int k = 0; k < na - 3; k++)
            if (thought[k] < 0 || thought[k] >= V) return qs_error(QS_ERR_ARG, "think: forced thought token %d outside vocabulary", thought[k]);
    for (int d = 1; d <= na - 1; d++) {
        const float *meta = d == 1 ? m->w.start_emb : d == na - 1 ? m->w.end_emb : NULL;
        if (meta) {
            for (int c = 0; c < H; c++) t->x[c] = t->o.embedding_scale * meta[c];
        } else {
            memcpy(t->x, m->w.embed + (size_t)thought[d - 2] * H, H * sizeof(float));
        }
        QS_TRY(qs_forward_block(m, t->ws, t->x, d, 1, pos, 1, t->h));
        if (d <= na - 3 && rng) { // this pass samples thought token d-1
            matmul_forward(t->z, t->h, m->w.lm_head, NULL, 1, H, V);
            if (rng) thought[d - 1] = sample_thought(&t->o, t->z, V, rng); // else: forced by the caller
        }
    }
    mixhead_forward(&m->w, H, 1, t->h0, t->h, t->o.mixing == QS_MIX_SIGMOID, &t->ma, t->hm);
    if (mix_w) *mix_w = t->ma.w[0];
    matmul_forward(logits, t->hm, m->w.lm_head, NULL, 1, H, V);
    return QS_OK;
}

qs_status qs_generate_think(const qs_model *m, const qs_tokenizer *tok, const int *prompt, int n_prompt,
                            const qs_gen_opts *opts, const qs_qstar_opts *qo, int think, qs_think_callback cb,
                            void *ud, qs_gen_stats *out) {
    const qs_config *c = &m->cfg;
    const int V = c->vocab_size;
    qs_gen_opts o = opts ? *opts : qs_gen_opts_default();
    if (out) memset(out, 0, sizeof *out);
    if (!prompt || n_prompt < 1) return qs_error(QS_ERR_ARG, "generate: the prompt needs at least one token");
    for (int k = 0; k < n_prompt; k++)
        if (prompt[k] < 0 || prompt[k] >= V)
            return qs_error(QS_ERR_ARG, "generate: prompt token %d (id %d) outside vocabulary of %d", k, prompt[k], V);
    int steps = o.steps;
    if (steps <= 0 || steps > c->max_seq_len) steps = c->max_seq_len;
    const int stop = o.stop_token >= 0 ? o.stop_token : c->bos_id;
    if (think && !qo) return qs_error(QS_ERR_ARG, "generate: thinking needs Quiet-STaR options");
    const int nT = qo ? qo->n_ahead - 3 : 0;

    qs_sampler smp;
    QS_TRY(qs_sampler_init(&smp, V, o.temperature, o.top_p, o.seed));
    qs_status st = qs_sampler_ban(&smp, o.banned, o.n_banned);
    if (st == QS_OK && qo) st = qs_sampler_ban(&smp, qo->banned, qo->n_banned);
    qs_thinker *t = NULL;
    // One position at a time, every OpenMP loop of the forward (they split
    // tokens, rows or heads) has a single or tiny iteration count: threads
    // only add fork/join latency (10x slower on a busy machine). BLAS keeps
    // its own threads for the matmuls. The caller's setting is restored.
    const int omp_saved = omp_get_max_threads();
    if (st == QS_OK) st = qs_thinker_create(&t, m, think ? qo : NULL, steps);
    float *logits = qs_malloc((size_t)V * sizeof(float), "logits");
    int *thought = qs_calloc(nT > 0 ? nT : 1, sizeof(int), "thought");
    if (st == QS_OK && (!logits || !thought)) st = QS_ERR_NOMEM;
    if (st != QS_OK) goto done;
    qs_rng trng; // thoughts draw from their own stream
    qs_rng_seed(&trng, o.seed ^ 0x7468696e6b000000ull);
    omp_set_num_threads(1);

    int token = prompt[0], pos = 0, stopped = 0, n_gen = 0;
    double start = 0.0;
    while (pos < steps) {
        if ((st = qs_thinker_feed(t, token, pos)) != QS_OK) goto done;
        int next, thought_made = 0;
        float w = 0.0f;
        if (pos < n_prompt - 1) {
            next = prompt[pos + 1];
        } else {
            if (think) {
                if ((st = qs_thinker_think(t, &trng, logits, thought, &w)) != QS_OK) goto done;
                thought_made = 1;
            } else {
                qs_thinker_plain_logits(t, logits);
            }
            next = qs_sampler_sample(&smp, logits);
        }
        pos++;
        if (stop >= 0 && next == stop) { stopped = 1; break; }
        if (pos > n_prompt - 1) n_gen++;
        const char *piece = tok ? qs_tokenizer_piece(tok, token, next) : NULL;
        token = next;
        if (start == 0.0) start = qs_now();
        if (cb && cb(ud, next, piece, thought_made ? thought : NULL, thought_made ? nT : 0, w)) { stopped = 2; break; }
    }
    if (out) {
        out->n_positions = pos;
        out->n_generated = n_gen;
        out->stopped = stopped;
        out->seconds = start > 0.0 ? qs_now() - start : 0.0;
        out->tok_per_s = pos > 1 && out->seconds > 0.0 ? (pos - 1) / out->seconds : 0.0;
    }
done:
    omp_set_num_threads(omp_saved);
    free(logits);
    free(thought);
    qs_thinker_free(t);
    qs_sampler_free(&smp);
    return st;
}

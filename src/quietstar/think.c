// think.c: generation with thoughts (see think.h).
#include "quietstar/think.h"
#include "quietstar/mixhead.h"
#include "model/sampler.h"
#include "model/workspace.h"
#include "ops/ops.h"
#include "tokenizer/tokenizer.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

struct qs_thinker {
    const qs_model *m;
    qs_qstar_opts o;
    qs_workspace *ws;    // 1 row x max_len positions x n_ahead passes, inference
    int pos;             // last fed position (-1: none)
    int last_token;      // the token fed there
    int n_talk;          // talk passes available: a thought can score n_talk tokens (qs_thinker_talk)
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
    return qs_thinker_create_talk(out, m, o, max_len, 1);
}

qs_status qs_thinker_create_talk(qs_thinker **out, const qs_model *m, const qs_qstar_opts *o, int max_len, int n_talk) {
    *out = NULL;
    if (n_talk < 1 || n_talk > QS_MAX_TALK) return qs_error(QS_ERR_ARG, "thinker: n_talk %d out of range 1..%d", n_talk, QS_MAX_TALK);
    if (o) {
        QS_TRY(qs_qstar_opts_validate(o, 0));
        if (!m->has_quietstar) return qs_error(QS_ERR_ARG, "thinking needs a model with Quiet-STaR tensors (a qstar train checkpoint)");
    }
    if (max_len < 1) return qs_error(QS_ERR_ARG, "thinker length %d must be positive", max_len);
    qs_thinker *t = calloc(1, sizeof *t);
    if (!t) return qs_error(QS_ERR_NOMEM, "out of memory for the thinker");
    t->m = m, t->pos = -1, t->plain = o == NULL, t->n_talk = o ? n_talk : 0;
    if (o) t->o = *o;
    qs_status st = qs_workspace_create_ex(&t->ws, &m->cfg, 1, max_len, o ? o->n_ahead + n_talk - 1 : 1, 0);
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
    qs_workspace_set_mask(t->ws, NULL);
    *out = t;
    return QS_OK;
}

qs_workspace *qs_thinker_workspace(qs_thinker *t) { return t->ws; }

qs_status qs_thinker_feed(qs_thinker *t, int token, int pos) {
    const qs_model *m = t->m;
    if (token < 0 || token >= m->cfg.vocab_size) return qs_error(QS_ERR_ARG, "token %d outside vocabulary", token);
    if (pos != t->pos + 1) return qs_error(QS_ERR_ARG, "thinker positions must come in order (got %d after %d)", pos, t->pos);
    QS_TRY(qs_forward_block(m, t->ws, m->w.embed + (size_t)token * m->cfg.dim, 0, 1, pos, 1, t->h0));
    t->pos = pos, t->last_token = token;
    return QS_OK;
}

// The lm_head products run at the model's precision (bf16: its bf16 weight
// copy, which also halves the memory traffic of these matrix-vector products).
static void head(const qs_model *m, float *logits, const float *h) {
    qs_mm mm;
    qs_model_mm(m, &mm); // failing, mm still works (bf16 weights cast per call)
    matmul_forward_mm(&mm, logits, h, m->w.lm_head, NULL, 1, m->cfg.dim, m->cfg.vocab_size);
}

void qs_thinker_plain_logits(qs_thinker *t, float *logits) { head(t->m, logits, t->h0); }

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
            head(m, t->z, t->h);
            thought[d - 1] = qs_sample_thought(t->z, V, t->o.banned, t->o.n_banned, t->o.tau_sample,
                                               t->o.greedy_thoughts, qs_rng_uniform(rng));
        }
    }
    mixhead_forward(&m->w, H, 1, t->h0, t->h, t->o.mixing == QS_MIX_SIGMOID, &t->ma, t->hm);
    if (mix_w) *mix_w = t->ma.w[0];
    head(m, logits, t->hm);
    return QS_OK;
}

qs_status qs_thinker_talk(qs_thinker *t, int col, float *logits, float *mix_w) {
    const qs_model *m = t->m;
    const int H = m->cfg.dim, k = t->pos - col, d = t->o.n_ahead - 1 + k;
    if (t->plain) return qs_error(QS_ERR_ARG, "talk: this thinker was created without Quiet-STaR options");
    if (col < 0 || k < 1 || k >= t->n_talk)
        return qs_error(QS_ERR_ARG, "talk: position %d is not 1..%d after the thought at %d", t->pos, t->n_talk - 1, col);
    // pass n_ahead-1+k at the thought's column: sees the prefix up to col, the thought and the talk so far
    QS_TRY(qs_forward_block(m, t->ws, m->w.embed + (size_t)t->last_token * H, d, 1, col, 1, t->h));
    mixhead_forward(&m->w, H, 1, t->h0, t->h, t->o.mixing == QS_MIX_SIGMOID, &t->ma, t->hm);
    if (mix_w) *mix_w = t->ma.w[0];
    head(m, logits, t->hm);
    return QS_OK;
}

// ---- generation with thoughts: a qs_gen_source for the model's generation loop
typedef struct {
    const qs_model *m;
    const qs_qstar_opts *qo;
    qs_think_ctl ctl;
    qs_thinker *t;
    qs_rng rng;   // thoughts draw from their own stream
    int *thought; // [n_ahead-3]
    // think_at: the decoded text's last bytes, where the anchor last ended, the column of the last thought
    qs_anchor anchor;
    int prev, anchor_pos, talk_col;
} think_src;

static qs_status think_begin(void *ctx, int max_len) {
    think_src *s = ctx;
    s->anchor.n = 0, s->prev = -1, s->anchor_pos = -1, s->talk_col = -1;
    QS_TRY(qs_thinker_create_talk(&s->t, s->m, s->qo, max_len, s->ctl.think_at ? s->ctl.n_talk : 1));
    s->thought = qs_calloc((size_t)QS_MAX(1, s->qo->n_ahead - 3), sizeof(int), "thought");
    return s->thought ? QS_OK : QS_ERR_NOMEM;
}

static qs_status think_feed(void *ctx, int token, int pos) {
    think_src *s = ctx;
    QS_TRY(qs_thinker_feed(s->t, token, pos));
    if (!s->ctl.think_at) return QS_OK;
    if (qs_anchor_push(&s->anchor, s->ctl.tok, s->ctl.think_at, s->prev, token)) s->anchor_pos = pos;
    s->prev = token;
    return QS_OK;
}

// One thought at the last fed position (sampled, or random tokens).
static qs_status think_once(think_src *s, float *logits, float *mix_w) {
    const int V = s->m->cfg.vocab_size, nT = s->qo->n_ahead - 3;
    if (!s->ctl.random_thoughts) return qs_thinker_think(s->t, &s->rng, logits, s->thought, mix_w);
    for (int u = 0; u < nT; u++)
        s->thought[u] = qs_random_thought_token(V, s->qo->banned, s->qo->n_banned, qs_rng_uniform(&s->rng));
    return qs_thinker_think(s->t, NULL, logits, s->thought, mix_w);
}

// think_at: a thought right after the anchor, then its talk passes for the
// next n_talk-1 tokens; elsewhere the plain logits.
static qs_status think_next_at(think_src *s, float *logits, const int **thought, int *n_thought, float *mix_w) {
    const int pos = s->anchor_pos >= 0 ? s->t->pos : -1;
    if (pos >= 0 && s->anchor_pos == pos) {
        QS_TRY(think_once(s, logits, mix_w));
        s->talk_col = pos;
    } else if (s->talk_col >= 0 && s->t->pos - s->talk_col < s->ctl.n_talk) {
        QS_TRY(qs_thinker_talk(s->t, s->talk_col, logits, mix_w));
    } else {
        qs_thinker_plain_logits(s->t, logits);
        *thought = NULL, *n_thought = 0, *mix_w = 0.0f;
        return QS_OK;
    }
    *thought = s->thought, *n_thought = s->qo->n_ahead - 3;
    return QS_OK;
}

static qs_status think_next(void *ctx, float *logits, const int **thought, int *n_thought, float *mix_w) {
    think_src *s = ctx;
    const int V = s->m->cfg.vocab_size, nT = s->qo->n_ahead - 3;
    if (s->ctl.think_at) return think_next_at(s, logits, thought, n_thought, mix_w);
    if (s->ctl.min_entropy > -INFINITY) { // base pass first: think only where it is uncertain
        qs_thinker_plain_logits(s->t, logits);
        if (!(qs_logits_entropy(logits, V) > s->ctl.min_entropy)) {
            *thought = NULL, *n_thought = 0, *mix_w = 0.0f;
            return QS_OK;
        }
    }
    QS_TRY(think_once(s, logits, mix_w));
    *thought = s->thought, *n_thought = nT;
    return QS_OK;
}

static void think_end(void *ctx) {
    think_src *s = ctx;
    qs_thinker_free(s->t);
    free(s->thought);
    s->t = NULL, s->thought = NULL;
}

qs_think_ctl qs_think_ctl_default(void) {
    qs_think_ctl c = {.min_entropy = -INFINITY, .random_thoughts = 0, .think_at = NULL, .tok = NULL, .n_talk = 0};
    return c;
}

qs_status qs_think_ctl_check(const qs_think_ctl *c) {
    if (!c->think_at) return QS_OK;
    const size_t L = strlen(c->think_at);
    if (L == 0 || L >= sizeof((qs_anchor *)0)->tail || !c->tok)
        return qs_error(QS_ERR_ARG, "think_at needs a text of 1 to 255 bytes and the tokenizer");
    if (c->min_entropy > -INFINITY) return qs_error(QS_ERR_ARG, "think_at and an entropy threshold exclude each other");
    if (c->n_talk < 1 || c->n_talk > QS_MAX_TALK)
        return qs_error(QS_ERR_ARG, "think_at: n_talk %d out of range 1..%d", c->n_talk, QS_MAX_TALK);
    return QS_OK;
}

int qs_anchor_push(qs_anchor *a, const qs_tokenizer *tok, const char *at, int prev, int token) {
    const size_t L = strlen(at); // < sizeof a->tail (qs_think_ctl_check)
    const char *piece = qs_tokenizer_is_special(tok, token) ? "" : qs_tokenizer_piece(tok, prev < 0 ? token : prev, token);
    for (const char *c = piece; *c; c++) {
        if (a->n == L) memmove(a->tail, a->tail + 1, --a->n);
        a->tail[a->n++] = *c;
    }
    return *piece && a->n == L && !memcmp(a->tail, at, L);
}

int qs_random_thought_token(int V, const int *banned, int n_banned, float coin) {
    int n_ok = V, t;
    for (int k = 0; k < n_banned; k++) n_ok -= banned[k] >= 0 && banned[k] < V;
    if (n_ok <= 0) return 0;
    int j = (int)(coin * (float)n_ok);
    if (j >= n_ok) j = n_ok - 1;
    if (j < 0) j = 0;
    for (t = 0; t < V; t++) { // the j-th allowed id
        int ban = 0;
        for (int k = 0; k < n_banned && !ban; k++) ban = banned[k] == t;
        if (!ban && j-- == 0) break;
    }
    return t < V ? t : 0;
}

qs_status qs_generate_think(const qs_model *m, const qs_tokenizer *tok, const int *prompt, int n_prompt,
                            const qs_gen_opts *opts, const qs_qstar_opts *qo, int think, qs_think_callback cb,
                            void *ud, qs_gen_stats *out) {
    return qs_generate_think_ctl(m, tok, prompt, n_prompt, opts, qo, think, NULL, cb, ud, out);
}

qs_status qs_generate_think_ctl(const qs_model *m, const qs_tokenizer *tok, const int *prompt, int n_prompt,
                                const qs_gen_opts *opts, const qs_qstar_opts *qo, int think, const qs_think_ctl *ctl,
                                qs_think_callback cb, void *ud, qs_gen_stats *out) {
    qs_gen_opts o = opts ? *opts : qs_gen_opts_default();
    if (out) memset(out, 0, sizeof *out);
    if (think && !qo) return qs_error(QS_ERR_ARG, "generate: thinking needs Quiet-STaR options");
    if (ctl) QS_TRY(qs_think_ctl_check(ctl));
    // the meta tokens of the Quiet-STaR options are banned from the text too
    int *ban = NULL;
    if (qo && qo->n_banned > 0) {
        if (o.n_banned < 0) return qs_error(QS_ERR_ARG, "generate: negative count of banned tokens");
        ban = qs_malloc(((size_t)o.n_banned + (size_t)qo->n_banned) * sizeof(int), "banned tokens");
        if (!ban) return QS_ERR_NOMEM;
        if (o.n_banned > 0) memcpy(ban, o.banned, (size_t)o.n_banned * sizeof(int));
        memcpy(ban + o.n_banned, qo->banned, (size_t)qo->n_banned * sizeof(int));
        o.banned = ban, o.n_banned += qo->n_banned;
    }
    think_src ts = {.m = m, .qo = qo, .ctl = ctl ? *ctl : qs_think_ctl_default()};
    qs_rng_seed(&ts.rng, o.seed ^ 0x7468696e6b000000ull);
    const qs_gen_source src = {&ts, think_begin, think_feed, think_next, think_end};
    qs_status st = qs_generate_from(m, tok, prompt, n_prompt, &o, think ? &src : NULL, cb, ud, out);
    free(ban);
    return st;
}

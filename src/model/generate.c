// generate.c: KV-cache generation one position at a time (see generate.h).
// The loop takes its next-token logits from a qs_gen_source: the plain
// forward below, or a thinker (Quiet-STaR) given by the caller.
#include "model/generate.h"
#include "model/sampler.h"
#include "model/workspace_impl.h"
#include "ops/ops.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

qs_gen_opts qs_gen_opts_default(void) {
    qs_gen_opts o = {.steps = 256, .temperature = 1.0f, .top_p = 0.9f, .seed = 0,
                     .banned = NULL, .n_banned = 0, .stop_token = -1};
    return o;
}

// ---- the plain source: base pass only, logits from the last hidden state
typedef struct {
    const qs_model *m;
    qs_workspace *ws; // 1 row x max_len positions x 1 pass, inference
    float *h;         // [H] last hidden state
} plain_src;

static qs_status plain_begin(void *ctx, int max_len) {
    plain_src *p = ctx;
    QS_TRY(qs_workspace_create_ex(&p->ws, &p->m->cfg, 1, max_len, 1, 0));
    p->ws->mask = NULL;
    p->h = qs_calloc((size_t)p->m->cfg.dim, sizeof(float), "hidden state");
    return p->h ? QS_OK : QS_ERR_NOMEM;
}

static qs_status plain_feed(void *ctx, int token, int pos) {
    plain_src *p = ctx;
    const qs_model *m = p->m;
    return qs_forward_block(m, p->ws, m->w.embed + (size_t)token * m->cfg.dim, 0, 1, pos, 1, p->h);
}

static qs_status plain_next(void *ctx, float *logits, const int **thought, int *n_thought, float *mix_w) {
    plain_src *p = ctx;
    *thought = NULL, *n_thought = 0, *mix_w = 0.0f;
    qs_mm mm; // the model's GEMM precision
    QS_TRY(qs_model_mm(p->m, &mm));
    matmul_forward_mm(&mm, logits, p->h, p->m->w.lm_head, NULL, 1, p->m->cfg.dim, p->m->cfg.vocab_size);
    return QS_OK;
}

static void plain_end(void *ctx) {
    plain_src *p = ctx;
    qs_workspace_free(p->ws);
    free(p->h);
    p->ws = NULL, p->h = NULL;
}

typedef struct {
    qs_gen_callback cb;
    void *ud;
} plain_cb;

static int plain_adapter(void *ud, int token, const char *piece, const int *thought, int n_thought, float w) {
    (void)thought, (void)n_thought, (void)w;
    const plain_cb *a = ud;
    return a->cb(a->ud, token, piece);
}

qs_status qs_generate(const qs_model *m, const qs_tokenizer *tok, const int *prompt, int n_prompt,
                      const qs_gen_opts *opts, qs_gen_callback cb, void *ud, qs_gen_stats *out) {
    plain_cb a = {cb, ud};
    return qs_generate_from(m, tok, prompt, n_prompt, opts, NULL, cb ? plain_adapter : NULL, &a, out);
}

// ---- the loop
static qs_status gen_loop(const qs_model *m, const qs_tokenizer *tok, const int *prompt, int n_prompt, int steps,
                          int stop, const qs_gen_source *src, qs_sampler *smp, float *logits, qs_gen_token_fn cb,
                          void *ud, qs_gen_stats *out) {
    (void)m;
    int token = prompt[0], pos = 0, stopped = 0, n_gen = 0, n_thoughts = 0;
    double start = 0.0;
    while (pos < steps) {
        QS_TRY(src->feed(src->ctx, token, pos));
        int next;
        const int *thought = NULL;
        int n_thought = 0;
        float w = 0.0f;
        if (pos < n_prompt - 1) {
            next = prompt[pos + 1];
        } else {
            QS_TRY(src->next(src->ctx, logits, &thought, &n_thought, &w));
            n_thoughts += thought != NULL;
            next = qs_sampler_sample(smp, logits);
        }
        pos++;
        if (stop >= 0 && next == stop) { stopped = 1; break; }
        if (pos > n_prompt - 1) n_gen++;
        const char *piece = tok ? qs_tokenizer_piece(tok, token, next) : NULL;
        token = next;
        if (start == 0.0) start = qs_now();
        if (cb && cb(ud, next, piece, thought, n_thought, w)) { stopped = 2; break; }
    }
    if (out) {
        out->n_positions = pos;
        out->n_generated = n_gen;
        out->n_thoughts = n_thoughts;
        out->stopped = stopped;
        out->seconds = start > 0.0 ? qs_now() - start : 0.0;
        out->tok_per_s = pos > 1 && out->seconds > 0.0 ? (pos - 1) / out->seconds : 0.0;
    }
    return QS_OK;
}

qs_status qs_generate_from(const qs_model *m, const qs_tokenizer *tok, const int *prompt, int n_prompt,
                           const qs_gen_opts *opts, const qs_gen_source *src, qs_gen_token_fn cb, void *ud,
                           qs_gen_stats *out) {
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
    plain_src ps = {.m = m};
    const qs_gen_source plain = {&ps, plain_begin, plain_feed, plain_next, plain_end};
    if (!src) src = &plain;

    qs_sampler smp;
    QS_TRY(qs_sampler_init(&smp, V, o.temperature, o.top_p, o.seed));
    qs_status st = qs_sampler_ban(&smp, o.banned, o.n_banned);
    // One position at a time, every OpenMP loop of the forward (they split
    // tokens, rows or heads) has a single or tiny iteration count: threads
    // only add fork/join latency (10x slower on a busy machine). BLAS keeps
    // its own threads for the matmuls. The caller's setting is restored.
    const int omp_saved = omp_get_max_threads();
    int begun = 0;
    if (st == QS_OK) st = src->begin(src->ctx, steps), begun = 1;
    float *logits = qs_malloc((size_t)V * sizeof(float), "logits");
    if (st == QS_OK && !logits) st = QS_ERR_NOMEM;
    if (st == QS_OK) {
        omp_set_num_threads(1);
        st = gen_loop(m, tok, prompt, n_prompt, steps, stop, src, &smp, logits, cb, ud, out);
        omp_set_num_threads(omp_saved);
    }
    if (begun) src->end(src->ctx);
    free(logits);
    qs_sampler_free(&smp);
    return st;
}

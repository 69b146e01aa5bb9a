// generate.c: KV-cache generation one position at a time (see generate.h).
#include "model/generate.h"
#include "model/sampler.h"
#include "model/workspace.h"
#include "ops/ops.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

qs_gen_opts qs_gen_opts_default(void) {
    qs_gen_opts o = {.steps = 256, .temperature = 1.0f, .top_p = 0.9f, .seed = 0,
                     .banned = NULL, .n_banned = 0, .stop_token = -1};
    return o;
}

qs_status qs_generate(const qs_model *m, const qs_tokenizer *tok, const int *prompt, int n_prompt,
                      const qs_gen_opts *opts, qs_gen_callback cb, void *ud, qs_gen_stats *out) {
    const qs_config *c = &m->cfg;
    const int H = c->dim, V = c->vocab_size;
    qs_gen_opts o = opts ? *opts : qs_gen_opts_default();
    if (out) memset(out, 0, sizeof *out);
    if (!prompt || n_prompt < 1) return qs_error(QS_ERR_ARG, "generate: the prompt needs at least one token");
    for (int k = 0; k < n_prompt; k++)
        if (prompt[k] < 0 || prompt[k] >= V)
            return qs_error(QS_ERR_ARG, "generate: prompt token %d (id %d) outside vocabulary of %d", k, prompt[k], V);
    int steps = o.steps;
    if (steps <= 0 || steps > c->max_seq_len) steps = c->max_seq_len;
    const int stop = o.stop_token >= 0 ? o.stop_token : c->bos_id;

    qs_sampler smp;
    QS_TRY(qs_sampler_init(&smp, V, o.temperature, o.top_p, o.seed));
    qs_status st = qs_sampler_ban(&smp, o.banned, o.n_banned);
    qs_workspace *ws = NULL;
    if (st == QS_OK) st = qs_workspace_create_ex(&ws, c, 1, steps, 1, 0);
    float *h = NULL, *logits = NULL;
    if (st == QS_OK) {
        h = qs_malloc((size_t)H * sizeof(float), "generate hidden state");
        logits = qs_malloc((size_t)V * sizeof(float), "generate logits");
        if (!h || !logits) st = QS_ERR_NOMEM;
    }
    if (st != QS_OK) goto done;
    ws->mask = NULL;

    // One position at a time, every OpenMP loop of the forward (they split
    // tokens, rows or heads) has a single iteration or a tiny one: threads
    // only add fork/join latency (10x slower on a busy machine). BLAS keeps
    // its own threads for the matmuls. The caller's setting is restored.
    const int omp_saved = omp_get_max_threads();
    omp_set_num_threads(1);
    int token = prompt[0], pos = 0, stopped = 0, n_gen = 0;
    double start = 0.0;
    while (pos < steps) {
        st = qs_forward_block(m, ws, m->w.embed + (size_t)token * H, 0, 1, pos, 1, h);
        if (st != QS_OK) break;
        int next;
        if (pos < n_prompt - 1) {
            next = prompt[pos + 1];
        } else {
            matmul_forward(logits, h, m->w.lm_head, NULL, 1, H, V);
            next = qs_sampler_sample(&smp, logits);
        }
        pos++;
        if (stop >= 0 && next == stop) {
            stopped = 1;
            break;
        }
        if (pos > n_prompt - 1) n_gen++;
        const char *piece = tok ? qs_tokenizer_piece(tok, token, next) : NULL;
        token = next;
        if (start == 0.0) start = qs_now();
        if (cb && cb(ud, next, piece)) {
            stopped = 2;
            break;
        }
    }
    omp_set_num_threads(omp_saved);
    if (st != QS_OK) goto done;
    if (out) {
        out->n_positions = pos;
        out->n_generated = n_gen;
        out->stopped = stopped;
        out->seconds = start > 0.0 ? qs_now() - start : 0.0;
        out->tok_per_s = pos > 1 && out->seconds > 0.0 ? (pos - 1) / out->seconds : 0.0;
    }
done:
    free(h);
    free(logits);
    qs_workspace_free(ws);
    qs_sampler_free(&smp);
    return st;
}

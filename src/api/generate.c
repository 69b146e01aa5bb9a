// generate.c: public API: qstar_generate, the library side of `qstar generate`
// (the same loop: qs_generate / qs_generate_think, the same text per token).
#include "api/api.h"
#include "model/generate.h"
#include "quietstar/think.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

QSTAR_API qstar_gen_params qstar_gen_params_default(void) {
    qstar_gen_params p = {.max_tokens = 256, .temperature = 1.0f, .top_p = 0.9f, .seed = 0, .think = -1,
                          .n_ahead = 0, .tau_sample = 0.0f, .greedy_thoughts = 0, .think_min_entropy = -INFINITY,
                          .random_thoughts = 0, .think_at = NULL, .n_talk = 0, .precision = QSTAR_FP32, .no_stop = 0};
    return p;
}

QSTAR_API qs_status qstar_think_when_parse(const char *s, float *min_entropy) {
    if (!s || !min_entropy) return qs_error(QS_ERR_ARG, "qstar_think_when_parse: NULL argument");
    if (!strcmp(s, "always")) {
        *min_entropy = -INFINITY;
        return QS_OK;
    }
    char *e = NULL;
    double x = strncmp(s, "entropy>", 8) ? NAN : strtod(s + 8, &e);
    if (!isfinite(x) || !e || e == s + 8 || *e)
        return qs_error(QS_ERR_ARG, "think-when expects entropy>X (X in nats) or always, got '%s'", s);
    *min_entropy = (float)x;
    return QS_OK;
}

typedef struct {
    const qstar_model *q;
    qstar_token_cb cb;
    void *user;
    int n_prompt, n_seen;
    int use_stream;       // non-llama2.c tokenizers: complete UTF-8 characters only
    qs_tok_stream stream;
    int prev;             // the last token (context of the next thought's text)
    char text[4096], thought_text[4096];
} gen_ctx;

// The text `qstar generate` prints for a token: llama2.c pieces as they are,
// except a single unprintable byte (run.c's safe_printf); others through the
// streaming decoder.
static void token_text(gen_ctx *g, int token, const char *piece) {
    g->text[0] = 0;
    size_t n = 0;
    if (g->use_stream) {
        if (qs_tok_stream_push(&g->stream, token, g->text, sizeof g->text, &n) != QS_OK) g->text[0] = 0;
        return;
    }
    if (!piece || !piece[0]) return;
    if (!piece[1] && !(isprint((unsigned char)piece[0]) || isspace((unsigned char)piece[0]))) return;
    snprintf(g->text, sizeof g->text, "%s", piece);
}

static int on_token(void *ud, int token, const char *piece, const int *thought, int n_thought, float w) {
    gen_ctx *g = ud;
    token_text(g, token, piece);
    g->thought_text[0] = 0;
    if (thought && n_thought > 0) {
        size_t len = 0;
        int prev = g->prev;
        for (int u = 0; u < n_thought; u++) {
            const char *p = qs_tokenizer_piece(g->q->tok, prev, thought[u]);
            const size_t pl = strlen(p);
            if (len + pl + 1 < sizeof g->thought_text) memcpy(g->thought_text + len, p, pl + 1), len += pl;
            prev = thought[u];
        }
    }
    g->n_seen++;
    qstar_token t = {.token = token, .text = g->text, .thought = thought, .n_thought = thought ? n_thought : 0,
                     .thought_text = g->thought_text, .mix_weight = thought ? w : 0.0f,
                     .generated = g->n_seen > g->n_prompt - 1, .prev = g->prev};
    g->prev = token;
    return g->cb ? g->cb(g->user, &t) : 0;
}

// The first prompt token has no callback from the loop (run.c: BOS there);
// with a tokenizer that has no BOS it is text and is reported here.
static int first_token(gen_ctx *g, int token) {
    if (token == qs_tokenizer_bos(g->q->tok)) return 0;
    token_text(g, token, qs_tokenizer_piece(g->q->tok, token, token));
    g->thought_text[0] = 0;
    qstar_token t = {.token = token, .text = g->text, .thought_text = g->thought_text, .prev = -1};
    return g->cb ? g->cb(g->user, &t) : 0;
}

// The loop: run.c's for a plain model, with a thinker for a Quiet-STaR checkpoint.
static qs_status run_loop(qstar_model *q, gen_ctx *g, const int *ids, int n_ids, const qstar_gen_params *p, int think,
                          qs_gen_stats *gs, int *n_ahead) {
    qs_gen_opts o = qs_gen_opts_default();
    o.steps = p->max_tokens;
    o.temperature = p->temperature;
    o.top_p = p->top_p;
    o.seed = p->seed;
    int ban[3];
    o.n_banned = qs_task_meta_tokens(q->tok, ban); // meta tokens of a vocabulary that has them are never emitted
    if (p->no_stop) { // the stop token (BOS) is never sampled, so that every position runs
        ban[o.n_banned++] = q->m->cfg.bos_id;
        o.stop_token = q->m->cfg.bos_id;
    }
    o.banned = ban;
    *n_ahead = 0;
    if (!qs_api_can_think(q)) return qs_generate_from(q->m, q->tok, ids, n_ids, &o, NULL, on_token, g, gs);
    qs_qstar_opts qo;
    QS_TRY(qs_api_thought_opts(q, p->n_ahead, p->tau_sample, p->greedy_thoughts, &qo));
    if (think) *n_ahead = qo.n_ahead;
    qs_think_ctl ctl = qs_think_ctl_default();
    ctl.min_entropy = p->think_min_entropy;
    ctl.random_thoughts = p->random_thoughts != 0;
    if (think && p->think_at)
        ctl.think_at = p->think_at, ctl.tok = q->tok, ctl.n_talk = p->n_talk ? p->n_talk : QS_MAX(1, qo.n_talk);
    return qs_generate_think_ctl(q->m, q->tok, ids, n_ids, &o, &qo, think, &ctl, on_token, g, gs);
}

QSTAR_API qs_status qstar_generate(qstar_model *q, const char *prompt, const qstar_gen_params *params,
                                   qstar_token_cb cb, void *user) {
    return qstar_generate_ex(q, prompt, params, cb, user, NULL);
}

QSTAR_API qs_status qstar_generate_ex(qstar_model *q, const char *prompt, const qstar_gen_params *params,
                                      qstar_token_cb cb, void *user, qstar_gen_stats *stats) {
    if (stats) memset(stats, 0, sizeof *stats);
    if (!q) return qs_error(QS_ERR_ARG, "qstar_generate: NULL model");
    const qstar_gen_params p = params ? *params : qstar_gen_params_default();
    if (!prompt) prompt = "";
    if (p.max_tokens < 0) return qs_error(QS_ERR_ARG, "qstar_generate: max_tokens %d is negative", p.max_tokens);
    QS_TRY(qs_api_think_at_check("qstar_generate", p.think_at, p.n_talk, p.think_min_entropy));
    int think = 0;
    QS_TRY(qs_api_resolve_think(q, p.think, &think));
    const int thought_opts = p.n_ahead || p.tau_sample > 0 || p.greedy_thoughts || p.random_thoughts ||
                             p.think_min_entropy > -INFINITY || p.think_at;
    if (!think && thought_opts && !qs_api_can_think(q))
        return qs_error(QS_ERR_ARG, "qstar_generate: thought settings need a Quiet-STaR checkpoint");
    int *ids = NULL, n_ids = 0;
    QS_TRY(qs_tokenizer_encode_alloc(q->tok, prompt, 1, 0, &ids, &n_ids));
    if (n_ids == 0) {
        free(ids);
        return qs_error(QS_ERR_ARG, "qstar_generate: the tokenizer has no BOS token; give a non-empty prompt");
    }
    gen_ctx *g = calloc(1, sizeof *g);
    qs_precision saved;
    qs_status st = g ? qs_api_precision(q, p.precision, &saved) : qs_error(QS_ERR_NOMEM, "out of memory");
    if (st != QS_OK) {
        free(g), free(ids);
        return st;
    }
    g->q = q, g->cb = cb, g->user = user, g->n_prompt = n_ids, g->prev = ids[n_ids - 1];
    g->use_stream = strcmp(qs_tokenizer_kind_name(q->tok), "llama2c") != 0;
    qs_tok_stream_init(&g->stream, q->tok);
    g->stream.prev = ids[n_ids - 1];
    qs_gen_stats gs = {0};
    int n_ahead = 0;
    if (!first_token(g, ids[0])) st = run_loop(q, g, ids, n_ids, &p, think, &gs, &n_ahead);
    q->m->precision = saved;
    if (stats) {
        stats->n_positions = gs.n_positions, stats->n_generated = gs.n_generated, stats->n_thoughts = gs.n_thoughts;
        stats->think = think, stats->n_ahead = n_ahead;
        stats->seconds = gs.seconds, stats->tok_per_s = gs.tok_per_s;
    }
    free(g);
    free(ids);
    return st;
}

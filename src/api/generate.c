// generate.c: public API: qstar_generate, the library side of `qstar generate`
// (the same loop: qs_generate / qs_generate_think, the same text per token).
#include "api/api.h"
#include "model/generate.h"
#include "quietstar/evaltask.h"
#include "quietstar/think.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

QSTAR_API qstar_gen_params qstar_gen_params_default(void) {
    qstar_gen_params p = {.max_tokens = 256, .temperature = 1.0f, .top_p = 0.9f, .seed = 0, .think = -1,
                          .n_ahead = 0, .tau_sample = 0.0f, .greedy_thoughts = 0};
    return p;
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
                     .generated = g->n_seen > g->n_prompt - 1};
    g->prev = token;
    return g->cb ? g->cb(g->user, &t) : 0;
}

QSTAR_API qs_status qstar_generate(qstar_model *q, const char *prompt, const qstar_gen_params *params,
                                   qstar_token_cb cb, void *user) {
    if (!q) return qs_error(QS_ERR_ARG, "qstar_generate: NULL model");
    const qstar_gen_params p = params ? *params : qstar_gen_params_default();
    if (!prompt) prompt = "";
    if (p.max_tokens < 0) return qs_error(QS_ERR_ARG, "qstar_generate: max_tokens %d is negative", p.max_tokens);
    int think = 0;
    QS_TRY(qs_api_resolve_think(q, p.think, &think));
    if (!think && (p.n_ahead || p.tau_sample > 0 || p.greedy_thoughts) && !qs_api_can_think(q))
        return qs_error(QS_ERR_ARG, "qstar_generate: thought settings need a Quiet-STaR checkpoint");
    int *ids = NULL, n_ids = 0;
    QS_TRY(qs_tokenizer_encode_alloc(q->tok, prompt, 1, 0, &ids, &n_ids));
    if (n_ids == 0) {
        free(ids);
        return qs_error(QS_ERR_ARG, "qstar_generate: the tokenizer has no BOS token; give a non-empty prompt");
    }
    gen_ctx *g = calloc(1, sizeof *g);
    if (!g) {
        free(ids);
        return qs_error(QS_ERR_NOMEM, "out of memory");
    }
    g->q = q, g->cb = cb, g->user = user, g->n_prompt = n_ids, g->prev = ids[n_ids - 1];
    g->use_stream = strcmp(qs_tokenizer_kind_name(q->tok), "llama2c") != 0;
    qs_tok_stream_init(&g->stream, q->tok);
    g->stream.prev = ids[n_ids - 1];
    qs_gen_opts o = qs_gen_opts_default();
    o.steps = p.max_tokens;
    o.temperature = p.temperature;
    o.top_p = p.top_p;
    o.seed = p.seed;
    int meta[2];
    o.n_banned = qs_task_meta_tokens(q->tok, meta); // meta tokens of a vocabulary that has them are never emitted
    o.banned = meta;
    qs_status st;
    if (!qs_api_can_think(q)) { // a plain model: exactly run.c's generation
        st = qs_generate_from(q->m, q->tok, ids, n_ids, &o, NULL, on_token, g, NULL);
    } else {
        qs_qstar_opts qo;
        st = qs_api_thought_opts(q, p.n_ahead, p.tau_sample, p.greedy_thoughts, &qo);
        if (st == QS_OK) st = qs_generate_think(q->m, q->tok, ids, n_ids, &o, &qo, think, on_token, g, NULL);
    }
    free(g);
    free(ids);
    return st;
}

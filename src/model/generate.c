// generate.c: KV-cache generation one position at a time (see generate.h).
#include "model/generate.h"
#include "quietstar/think.h"

qs_gen_opts qs_gen_opts_default(void) {
    qs_gen_opts o = {.steps = 256, .temperature = 1.0f, .top_p = 0.9f, .seed = 0,
                     .banned = NULL, .n_banned = 0, .stop_token = -1};
    return o;
}

// The generation loop lives in quietstar/think.c: plain generation is its
// case without thoughts (no Quiet-STaR tensors needed).
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
    return qs_generate_think(m, tok, prompt, n_prompt, opts, NULL, 0, cb ? plain_adapter : NULL, &a, out);
}

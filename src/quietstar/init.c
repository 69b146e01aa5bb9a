// init.c: which token initialises the start/end-of-thought embeddings (see
// qs_thought_init_id in qstar.h).
#include "quietstar/qstar.h"
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>

// Only spaces, tabs, newlines or U+2581 (SentencePiece's space marker).
static int blank_piece(const char *p) {
    if (!p) return 1;
    while (*p) {
        if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
        else if (!strncmp(p, "\xe2\x96\x81", 3)) p += 3;
        else return 0;
    }
    return 1;
}

int qs_thought_init_id(const qs_tokenizer *tok, const char *text) {
    if (!tok || !text || !text[0]) return -1;
    int *ids = NULL, n = 0, id = -1;
    if (qs_tokenizer_encode_alloc(tok, text, 0, 0, &ids, &n) != QS_OK) return -1;
    for (int k = 0; k < n && id < 0; k++)
        if (!blank_piece(qs_tokenizer_raw_piece(tok, ids[k]))) id = ids[k];
    free(ids);
    return id;
}

int qs_task_meta_tokens(const qs_tokenizer *tok, int ids[2]) {
    int n = 0;
    const char *names[2] = {"<|startthought|>", "<|endthought|>"};
    for (int k = 0; k < 2; k++) {
        int id = qs_tokenizer_find(tok, names[k]);
        if (id >= 0) ids[n++] = id;
    }
    return n;
}

qs_status qs_qstar_opts_for_inference(const char *qs_json, const qs_tokenizer *tok, int n_ahead, float tau_sample,
                                      int greedy, qs_qstar_opts *o) {
    qs_qstar_opts_default(o);
    QS_TRY(qs_qstar_opts_from_json(qs_json, o));
    if (n_ahead) o->n_ahead = n_ahead;
    if (tau_sample > 0) o->tau_sample = tau_sample;
    if (greedy) o->greedy_thoughts = 1;
    o->n_banned = tok ? qs_task_meta_tokens(tok, o->banned) : 0; // meta tokens are never sampled
    o->reward_baseline = QS_BASELINE_MEAN; // inference computes no rewards that matter
    return qs_qstar_opts_validate(o, 0);
}

// workspace.c: allocation of the forward/backward workspace.
#include "model/workspace_impl.h"
#include "ops/ops.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// In a plan (w->plan != NULL) nothing is allocated: the bytes are only
// counted, into the plan's current part (w->plan_part), so the planner and
// the allocation are the same code.
#define ALLOC(ptr, count)                                                                     \
    do {                                                                                      \
        size_t n_ = (size_t)(count);                                                          \
        w->bytes += n_ * sizeof(*(ptr));                                                      \
        if (w->plan) { *w->plan_part += n_ * sizeof(*(ptr)); (ptr) = NULL; break; }            \
        (ptr) = qs_calloc(n_ ? n_ : 1, sizeof(*(ptr)), #ptr);                                 \
        if (!(ptr)) { qs_workspace_free(w); return qs_error_prefix(QS_ERR_NOMEM, "workspace %dx%dx%d", R, T, D); } \
    } while (0)
#define PART(field) (w->plan_part = w->plan ? &w->plan->field : NULL)

// Allocates w's buffers (or, with w->plan, counts them).
static qs_status ws_build(qs_workspace *w, const qs_config *c, int R, int T, int D, int training) {
    w->c = *c;
    w->R = R, w->T = T, w->D = D, w->training = training;
    const int H = c->dim, F = c->hidden_dim, V = c->vocab_size, L = c->n_layers;
    const int qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim, half = c->head_dim / 2;
    const size_t N = training ? (size_t)D * R * T : (size_t)R * T; // TRAINING and PASSES: all D passes
    w->n_max = N;
    w->max_pos = T + D;
    w->kv_layer = (size_t)D * R * T * kvd;
    PART(kv_cache);
    ALLOC(w->kc, w->kv_layer * L);
    ALLOC(w->vc, w->kv_layer * L);
    if (training == QS_WS_PASSES) { // the input slot of every pass, nothing kept for a backward
        w->xs_layer = (size_t)D * R * T * H;
        PART(layer_inputs);
        ALLOC(w->xs, w->xs_layer);
    } else if (training) {
        w->xs_layer = (size_t)D * R * T * H;
        PART(layer_inputs);
        ALLOC(w->xs, w->xs_layer * (L + 1));
        PART(grads);
        ALLOC(w->g.dact, N * F);
        ALLOC(w->g.dgate, N * F);
        ALLOC(w->g.dup, N * F);
        ALLOC(w->g.dxn, N * H);
        ALLOC(w->g.datt, N * qd);
        ALLOC(w->g.dq, N * qd);
        ALLOC(w->g.dk, N * kvd);
        ALLOC(w->g.dv, N * kvd);
        ALLOC(w->dh, N * H);
        ALLOC(w->dx0, N * H);
    }
    PART(scratch);
    ALLOC(w->cos_t, (size_t)(w->max_pos + 1) * half);
    ALLOC(w->sin_t, (size_t)(w->max_pos + 1) * half);
    if (!w->plan) {
        const rope_scaling_t sc = {c->rope_scaling, c->rope_factor, c->rope_low_freq_factor,
                                   c->rope_high_freq_factor, c->rope_orig_max_pos};
        float inv[256];
        rope_inv_freq(inv, c->head_dim, c->rope_theta, &sc);
        rope_tables_freq(w->cos_t, w->sin_t, w->max_pos + 1, c->head_dim, inv);
    }
    ALLOC(w->pos, N);
    qs_layer_acts *a = &w->a;
    ALLOC(a->xn, N * H);
    ALLOC(a->rstd1, N);
    ALLOC(a->q, N * qd);
    ALLOC(a->k, N * kvd);
    ALLOC(a->v, N * kvd);
    ALLOC(a->att, N * qd);
    ALLOC(a->lse, N * c->n_heads);
    ALLOC(a->x2, N * H);
    ALLOC(a->xn2, N * H);
    ALLOC(a->rstd2, N);
    ALLOC(a->gate, N * F);
    ALLOC(a->up, N * F);
    ALLOC(a->act, N * F);
    if (c->arch == QS_ARCH_GPT2) {
        ALLOC(a->mean1, N);
        ALLOC(a->mean2, N);
    }
    ALLOC(w->tmp_a, N * H);
    ALLOC(w->tmp_b, N * H);
    ALLOC(w->h, N * H);
    // keep the logits chunk near 64 MB
    size_t ch = ((size_t)16 << 20) / (size_t)V;
    w->chunk = (int)QS_MAX(1, QS_MIN(ch, N));
    PART(logits);
    ALLOC(w->logits, (size_t)w->chunk * V);
    ALLOC(w->losses, (size_t)w->chunk);
    PART(scratch);
    ALLOC(w->targets, N);
    return QS_OK;
}

qs_status qs_workspace_create_ex(qs_workspace **out, const qs_config *c, int R, int T, int D, int training) {
    *out = NULL;
    if (R < 1 || T < 1 || D < 1) return qs_error(QS_ERR_ARG, "workspace shape %dx%dx%d must be positive", R, T, D);
    if (training < QS_WS_INFERENCE || training > QS_WS_PASSES) return qs_error(QS_ERR_ARG, "workspace kind %d", training);
    qs_workspace *w = calloc(1, sizeof *w);
    if (!w) return qs_error(QS_ERR_NOMEM, "out of memory for workspace");
    QS_TRY(ws_build(w, c, R, T, D, training)); // frees w on failure
    *out = w;
    return QS_OK;
}

// Floats per token of one stored layer: what the backward needs and cannot
// get cheaply. xn, xn2 (norms of x_in, x2) and act (swiglu of gate, up) are
// recomputed in the backward, elementwise; k and v live in the cache.
static size_t acts_per_token(const qs_config *c) {
    const size_t H = c->dim, F = c->hidden_dim, qd = (size_t)c->n_heads * c->head_dim;
    return H + 2 * qd + 2 * F + c->n_heads + 2;
}

static void free_stored(qs_workspace *w) {
    if (!w->stored) return;
    for (int l = 0; l < w->n_stored; l++) free(w->stored[l].q); // one block per layer
    free(w->stored);
    w->stored = NULL;
    w->n_stored = 0;
}

// Layers whose activations fit in max_bytes, and the bytes of one.
static int layers_to_store(const qs_config *c, size_t n_max, size_t max_bytes, size_t *layer_bytes) {
    *layer_bytes = n_max * acts_per_token(c) * sizeof(float);
    return (int)QS_MIN((size_t)c->n_layers, max_bytes / *layer_bytes);
}

int qs_workspace_store_activations(qs_workspace *w, size_t max_bytes) {
    if (w->training != QS_WS_TRAINING || w->stored) return w->n_stored;
    const qs_config *c = &w->c;
    const size_t N = w->n_max;
    size_t layer_bytes;
    const int n = layers_to_store(c, N, max_bytes, &layer_bytes);
    if (n == 0) return 0;
    w->stored = calloc((size_t)n, sizeof *w->stored);
    if (!w->stored) return 0;
    const size_t H = c->dim, F = c->hidden_dim, qd = (size_t)c->n_heads * c->head_dim;
    for (int l = 0; l < n; l++) {
        float *b = malloc(layer_bytes);
        if (!b) break; // keep the layers we have
        qs_layer_acts *a = &w->stored[l];
        a->q = b, b += N * qd;
        a->att = b, b += N * qd;
        a->x2 = b, b += N * H;
        a->gate = b, b += N * F;
        a->up = b, b += N * F;
        a->lse = b, b += N * c->n_heads;
        a->rstd1 = b, b += N;
        a->rstd2 = b;
        // recomputed in the backward into the shared scratch
        a->xn = w->a.xn, a->xn2 = w->a.xn2, a->act = w->a.act;
        a->mean1 = w->a.mean1, a->mean2 = w->a.mean2;
        a->k = w->a.k, a->v = w->a.v; // scratch: keys/values go to the cache
        w->n_stored = l + 1;
        w->bytes += layer_bytes;
    }
    if (w->n_stored == 0) { free(w->stored); w->stored = NULL; }
    return w->n_stored;
}

qs_status qs_workspace_create(qs_workspace **ws, const qs_config *c, int R, int T, int D) {
    return qs_workspace_create_budget(ws, c, R, T, D, QS_STORE_ACTS_DEFAULT);
}

qs_status qs_workspace_create_budget(qs_workspace **ws, const qs_config *c, int R, int T, int D, size_t act_budget) {
    QS_TRY(qs_workspace_create_ex(ws, c, R, T, D, 1));
    qs_workspace_store_activations(*ws, act_budget);
    return QS_OK;
}

qs_status qs_workspace_plan(const qs_config *c, int R, int T, int D, int training, size_t act_budget,
                            qs_ws_plan *out) {
    memset(out, 0, sizeof *out);
    if (R < 1 || T < 1 || D < 1) return qs_error(QS_ERR_ARG, "workspace shape %dx%dx%d must be positive", R, T, D);
    qs_workspace w;
    memset(&w, 0, sizeof w);
    w.plan = out;
    QS_TRY(ws_build(&w, c, R, T, D, training));
    if (training == QS_WS_TRAINING) {
        size_t layer_bytes;
        out->layers_kept = layers_to_store(c, w.n_max, act_budget, &layer_bytes);
        out->stored_acts = (size_t)out->layers_kept * layer_bytes;
        out->layers_total = c->n_layers;
    }
    out->total = out->kv_cache + out->layer_inputs + out->stored_acts + out->scratch + out->logits + out->grads;
    return QS_OK;
}

void qs_workspace_free(qs_workspace *w) {
    if (!w) return;
    free_stored(w);
    float *bufs[] = {w->kc, w->vc, w->xs, w->g.dact, w->g.dgate, w->g.dup, w->g.dxn, w->g.datt, w->g.dq,
                     w->g.dk, w->g.dv, w->dh, w->dx0, w->cos_t, w->sin_t, w->a.xn, w->a.rstd1, w->a.q,
                     w->a.k, w->a.v, w->a.att, w->a.lse, w->a.x2, w->a.xn2, w->a.rstd2, w->a.gate,
                     w->a.up, w->a.act, w->tmp_a, w->tmp_b, w->h, w->logits, w->losses,
                     w->a.mean1, w->a.mean2};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(w->pos);
    free(w->targets);
    free(w);
}

size_t qs_workspace_bytes(const qs_workspace *w) { return w ? w->bytes : 0; }

qs_ws_bufs qs_workspace_bufs(qs_workspace *w) {
    return (qs_ws_bufs){.xs = w->xs, .h = w->h, .dh = w->dh, .dx0 = w->dx0, .logits = w->logits,
                        .losses = w->losses, .targets = w->targets, .chunk = w->chunk, .n_max = w->n_max};
}

void qs_workspace_set_mask(qs_workspace *w, const int *mask) { w->mask = mask; }

int qs_workspace_layers_kept(const qs_workspace *w) { return w->n_stored; }

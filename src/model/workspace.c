// workspace.c: allocation of the forward/backward workspace.
#include "model/workspace.h"
#include "ops/ops.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ALLOC(ptr, count)                                                                     \
    do {                                                                                      \
        size_t n_ = (size_t)(count);                                                          \
        (ptr) = qs_calloc(n_ ? n_ : 1, sizeof(*(ptr)), #ptr);                                 \
        if (!(ptr)) { qs_workspace_free(w); return qs_error_prefix(QS_ERR_NOMEM, "workspace %dx%dx%d", R, T, D); } \
        w->bytes += n_ * sizeof(*(ptr));                                                      \
    } while (0)

qs_status qs_workspace_create_ex(qs_workspace **out, const qs_config *c, int R, int T, int D, int training) {
    *out = NULL;
    if (R < 1 || T < 1 || D < 1) return qs_error(QS_ERR_ARG, "workspace shape %dx%dx%d must be positive", R, T, D);
    qs_workspace *w = calloc(1, sizeof *w);
    if (!w) return qs_error(QS_ERR_NOMEM, "out of memory for workspace");
    w->c = *c;
    w->R = R, w->T = T, w->D = D, w->training = training;
    const int H = c->dim, F = c->hidden_dim, V = c->vocab_size, L = c->n_layers;
    const int qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim, half = c->head_dim / 2;
    const size_t N = training ? (size_t)D * R * T : (size_t)R * T;
    w->n_max = N;
    w->max_pos = T + D;
    w->kv_layer = (size_t)D * R * T * kvd;
    ALLOC(w->kc, w->kv_layer * L);
    ALLOC(w->vc, w->kv_layer * L);
    if (training) {
        w->xs_layer = (size_t)D * R * T * H;
        ALLOC(w->xs, w->xs_layer * (L + 1));
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
    ALLOC(w->cos_t, (size_t)(w->max_pos + 1) * half);
    ALLOC(w->sin_t, (size_t)(w->max_pos + 1) * half);
    {
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
    ALLOC(w->logits, (size_t)w->chunk * V);
    ALLOC(w->losses, (size_t)w->chunk);
    ALLOC(w->targets, N);
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

int qs_workspace_store_activations(qs_workspace *w, size_t max_bytes) {
    if (!w->training || w->stored) return w->n_stored;
    const qs_config *c = &w->c;
    const size_t N = w->n_max, per = acts_per_token(c), layer_bytes = N * per * sizeof(float);
    const int n = (int)QS_MIN((size_t)c->n_layers, max_bytes / layer_bytes);
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
    QS_TRY(qs_workspace_create_ex(ws, c, R, T, D, 1));
    size_t budget = QS_STORE_ACTS_DEFAULT;
    const char *e = getenv("QSTAR_STORE_ACTS_MB");
    if (e && *e) { // MB, fractions allowed; negative or not a number keeps nothing
        double mb = strtod(e, NULL);
        budget = !(mb > 0) ? 0 : mb < 1e12 ? (size_t)(mb * (double)(1 << 20)) : SIZE_MAX;
    }
    qs_workspace_store_activations(*ws, budget);
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

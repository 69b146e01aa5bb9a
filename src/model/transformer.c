// transformer.c: forward and backward of the Llama-family transformer over
// passes (see transformer.h). Forward runs one block of tokens at a time
// (a pass, or one position during generation) and fills the KV cache.
// Backward runs layer by layer over ALL passes at once: it recomputes the
// layer's activations from the saved layer input (one big batch of GEMMs)
// and back-propagates through it, so only the residual stream and the KV
// cache are kept between forward and backward.
#include "model/transformer.h"
#include "model/workspace_impl.h"
#include "ops/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------
// GPT-2 block (see config.h): Conv1D weights [in, out] used in place; the
// fused c_attn columns are q | k | v. No RoPE: positions enter through wpe
// at the layer-0 input (qs_forward_block).
static void scatter_kv(qs_workspace *ws, const qs_layer_acts *a, float *kc, float *vc, int kvd, int d0, int nd,
                       int i0, int ni) {
    const int R = ws->R, T = ws->T;
#pragma omp parallel for collapse(2)
    for (int dd = 0; dd < nd; dd++)
        for (int r = 0; r < R; r++) {
            size_t src = ((size_t)dd * R + r) * ni * kvd;
            size_t dst = (((size_t)(d0 + dd) * R + r) * T + i0) * kvd;
            memcpy(kc + dst, a->k + src, (size_t)ni * kvd * sizeof(float));
            memcpy(vc + dst, a->v + src, (size_t)ni * kvd * sizeof(float));
        }
}

static void gpt2_layer_forward(const qs_model *m, const qs_mm *mm, qs_workspace *ws, qs_layer_acts *a, int l,
                               const float *x_in, float *x_out, int d0, int nd, int i0, int ni) {
    const qs_config *c = &m->cfg;
    const qs_layer_ptrs *w = &m->w.layer[l];
    const int H = c->dim, F = c->hidden_dim, N = nd * ws->R * ni;
    float *kc = ws->kc + (size_t)l * ws->kv_layer, *vc = ws->vc + (size_t)l * ws->kv_layer;

    // x2 = x + c_proj(attn(q, k, v)), [q|k|v] = c_attn(ln_1(x))
    layernorm_forward(a->xn, a->mean1, a->rstd1, x_in, w->attn_norm, w->ln1_b, N, H, c->norm_eps);
    conv1d_forward_mm(mm, a->q, a->xn, w->c_attn_w, 3 * H, w->c_attn_b, N, H, H);
    conv1d_forward_mm(mm, a->k, a->xn, w->c_attn_w + H, 3 * H, w->c_attn_b + H, N, H, H);
    conv1d_forward_mm(mm, a->v, a->xn, w->c_attn_w + 2 * H, 3 * H, w->c_attn_b + 2 * H, N, H, H);
    scatter_kv(ws, a, kc, vc, H, d0, nd, i0, ni);
    attn_shape s = {ws->R, ws->T, c->n_heads, c->n_kv_heads, c->head_dim, ws->mask, 0}; // GPT-2: no sliding window
    attention_forward(a->att, a->lse, a->q, kc, vc, &s, d0, nd, i0, ni);
    memcpy(a->x2, x_in, (size_t)N * H * sizeof(float));
    qs_gemm(mm, 0, 0, N, H, H, 1.0f, a->att, H, w->c_proj_w, H, 1.0f, a->x2, H); // x2 += att W
    posembed_forward(a->x2, NULL, w->c_proj_b, N, H);                     // + bias (pos NULL: row 0)

    // out = x2 + mlp.c_proj(gelu(c_fc(ln_2(x2))))
    layernorm_forward(a->xn2, a->mean2, a->rstd2, a->x2, w->mlp_norm, w->ln2_b, N, H, c->norm_eps);
    conv1d_forward_mm(mm, a->gate, a->xn2, w->fc_w, F, w->fc_b, N, H, F);
    gelu_forward(a->act, a->gate, (size_t)N * F);
    if (x_out) {
        memcpy(x_out, a->x2, (size_t)N * H * sizeof(float));
        qs_gemm(mm, 0, 0, N, H, F, 1.0f, a->act, F, w->mproj_w, H, 1.0f, x_out, H);
        posembed_forward(x_out, NULL, w->mproj_b, N, H);
    }
}

static void gpt2_layer_backward(const qs_model *m, const qs_mm *mm, qs_workspace *ws, const qs_ptrs *g, int l,
                                float *dx) {
    const qs_config *c = &m->cfg;
    const qs_layer_ptrs *w = &m->w.layer[l];
    qs_layer_ptrs *gw = &g->layer[l];
    const int H = c->dim, F = c->hidden_dim, D = ws->D, N = D * ws->R * ws->T;
    qs_layer_acts *a = l < ws->n_stored ? &ws->stored[l] : &ws->a;
    qs_grad_scratch *gs = &ws->g;
    const float *x_in = ws->xs + (size_t)l * ws->xs_layer;
    float *kc = ws->kc + (size_t)l * ws->kv_layer, *vc = ws->vc + (size_t)l * ws->kv_layer;
    if (l < ws->n_stored) { // kept: redo the norms and the GELU (elementwise)
        layernorm_forward(a->xn, a->mean1, a->rstd1, x_in, w->attn_norm, w->ln1_b, N, H, c->norm_eps);
        layernorm_forward(a->xn2, a->mean2, a->rstd2, a->x2, w->mlp_norm, w->ln2_b, N, H, c->norm_eps);
        gelu_forward(a->act, a->gate, (size_t)N * F);
    } else {
        gpt2_layer_forward(m, mm, ws, a, l, x_in, NULL, 0, D, 0, ws->T);
    }
    // MLP
    qs_zero(gs->dact, (size_t)N * F);
    conv1d_backward_mm(mm, gs->dact, gw->mproj_w, gw->mproj_b, dx, a->act, w->mproj_w, H, N, F, H);
    qs_zero(gs->dgate, (size_t)N * F);
    gelu_backward(gs->dgate, gs->dact, a->gate, (size_t)N * F);
    qs_zero(gs->dxn, (size_t)N * H);
    conv1d_backward_mm(mm, gs->dxn, gw->fc_w, gw->fc_b, gs->dgate, a->xn2, w->fc_w, F, N, H, F);
    layernorm_backward(dx, gw->mlp_norm, gw->ln2_b, gs->dxn, a->x2, w->mlp_norm, a->mean2, a->rstd2, N, H);
    // attention
    qs_zero(gs->datt, (size_t)N * H);
    conv1d_backward_mm(mm, gs->datt, gw->c_proj_w, gw->c_proj_b, dx, a->att, w->c_proj_w, H, N, H, H);
    qs_zero(gs->dq, (size_t)N * H);
    qs_zero(gs->dk, (size_t)N * H);
    qs_zero(gs->dv, (size_t)N * H);
    attn_shape s = {ws->R, ws->T, c->n_heads, c->n_kv_heads, c->head_dim, ws->mask, 0};
    attention_backward(gs->dq, gs->dk, gs->dv, gs->datt, a->q, kc, vc, a->att, a->lse, &s, 0, D, 0, ws->T);
    qs_zero(gs->dxn, (size_t)N * H);
    conv1d_backward_mm(mm, gs->dxn, gw->c_attn_w, gw->c_attn_b, gs->dq, a->xn, w->c_attn_w, 3 * H, N, H, H);
    conv1d_backward_mm(mm, gs->dxn, gw->c_attn_w + H, gw->c_attn_b + H, gs->dk, a->xn, w->c_attn_w + H, 3 * H, N, H, H);
    conv1d_backward_mm(mm, gs->dxn, gw->c_attn_w + 2 * H, gw->c_attn_b + 2 * H, gs->dv, a->xn,
                       w->c_attn_w + 2 * H, 3 * H, N, H, H);
    layernorm_backward(dx, gw->attn_norm, gw->ln1_b, gs->dxn, x_in, w->attn_norm, a->mean1, a->rstd1, N, H);
}

// ---------------------------------------------------------------------------
// Forward of layer l on a block of N tokens ordered (pass dd, row r, pos ii)
// for passes d0..d0+nd-1 and positions i0..i0+ni-1. Keys/values go into the
// cache; the activations stay in ws->a for a following backward.
static void layer_forward(const qs_model *m, const qs_mm *mm, qs_workspace *ws, qs_layer_acts *a, int l,
                          const float *x_in, float *x_out, const int *pos, int d0, int nd, int i0, int ni) {
    const qs_config *c = &m->cfg;
    const qs_layer_ptrs *w = &m->w.layer[l];
    const int H = c->dim, F = c->hidden_dim, R = ws->R, T = ws->T;
    const int qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    const int N = nd * R * ni;
    float *kc = ws->kc + (size_t)l * ws->kv_layer, *vc = ws->vc + (size_t)l * ws->kv_layer;
    if (c->arch == QS_ARCH_GPT2) {
        gpt2_layer_forward(m, mm, ws, a, l, x_in, x_out, d0, nd, i0, ni);
        return;
    }

    // attention block: x2 = x + Wo . attn(rope(Wq xn), rope(Wk xn), Wv xn), xn = rmsnorm(x)
    rmsnorm_forward(a->xn, a->rstd1, x_in, w->attn_norm, N, H, c->norm_eps);
    const qs_linear qkv[3] = {{a->q, w->wq, w->bq, qd}, {a->k, w->wk, w->bk, kvd}, {a->v, w->wv, w->bv, kvd}};
    matmul_forward_shared_mm(mm, a->xn, N, H, 3, qkv);
    rope_forward(a->q, pos, ws->cos_t, ws->sin_t, N, c->n_heads, c->head_dim);
    rope_forward(a->k, pos, ws->cos_t, ws->sin_t, N, c->n_kv_heads, c->head_dim);
    // scatter k, v (block order) into the cache [D,R,T,kvd]
#pragma omp parallel for collapse(2)
    for (int dd = 0; dd < nd; dd++)
        for (int r = 0; r < R; r++) {
            size_t src = ((size_t)dd * R + r) * ni * kvd;
            size_t dst = (((size_t)(d0 + dd) * R + r) * T + i0) * kvd;
            memcpy(kc + dst, a->k + src, (size_t)ni * kvd * sizeof(float));
            memcpy(vc + dst, a->v + src, (size_t)ni * kvd * sizeof(float));
        }
    attn_shape s = {R, T, c->n_heads, c->n_kv_heads, c->head_dim, ws->mask, c->sliding_window};
    attention_forward(a->att, a->lse, a->q, kc, vc, &s, d0, nd, i0, ni);
    memcpy(a->x2, x_in, (size_t)N * H * sizeof(float));
    qs_gemm(mm, 0, 1, N, H, qd, 1.0f, a->att, qd, w->wo, qd, 1.0f, a->x2, H); // x2 += att Wo^T

    // MLP block: out = x2 + Wdown (silu(Wgate xn2) * Wup xn2), xn2 = rmsnorm(x2)
    rmsnorm_forward(a->xn2, a->rstd2, a->x2, w->mlp_norm, N, H, c->norm_eps);
    const qs_linear gate_up[2] = {{a->gate, w->w_gate, NULL, F}, {a->up, w->w_up, NULL, F}};
    matmul_forward_shared_mm(mm, a->xn2, N, H, 2, gate_up);
    swiglu_forward(a->act, a->gate, a->up, (size_t)N * F);
    if (x_out) {
        memcpy(x_out, a->x2, (size_t)N * H * sizeof(float));
        qs_gemm(mm, 0, 1, N, H, F, 1.0f, a->act, F, w->w_down, F, 1.0f, x_out, H);
    }
}

// The activations of layer l from token `tok` on (pass-major order): the
// stored ones for a kept layer, else the recompute scratch.
static qs_layer_acts acts_at(const qs_workspace *ws, int l, size_t tok) {
    const qs_config *c = &ws->c;
    const size_t H = c->dim, F = c->hidden_dim, qd = (size_t)c->n_heads * c->head_dim;
    qs_layer_acts a = l < ws->n_stored ? ws->stored[l] : ws->a;
    a.xn += tok * H, a.x2 += tok * H, a.xn2 += tok * H, a.q += tok * qd, a.att += tok * qd;
    a.gate += tok * F, a.up += tok * F, a.act += tok * F, a.lse += tok * c->n_heads;
    a.rstd1 += tok, a.rstd2 += tok;
    if (a.mean1) a.mean1 += tok, a.mean2 += tok;
    a.k = ws->a.k, a.v = ws->a.v; // block-order scratch, copied into the cache
    return a;
}

// Position ids of a block: i + d.
static void block_positions(int *pos, int R, int d0, int nd, int i0, int ni) {
    size_t n = 0;
    for (int dd = 0; dd < nd; dd++)
        for (int r = 0; r < R; r++)
            for (int ii = 0; ii < ni; ii++) pos[n++] = i0 + ii + d0 + dd;
}

qs_status qs_forward_block(const qs_model *m, qs_workspace *ws, const float *x0, int d0, int nd, int i0,
                           int ni, float *h_out) {
    const qs_config *c = &m->cfg;
    const int H = c->dim, R = ws->R, T = ws->T;
    if (d0 < 0 || nd < 1 || d0 + nd > ws->D || i0 < 0 || ni < 1 || i0 + ni > T)
        return qs_error(QS_ERR_ARG, "forward block passes [%d,%d) positions [%d,%d) outside workspace %dx%d",
                        d0, d0 + nd, i0, i0 + ni, ws->D, T);
    if (i0 + ni + d0 + nd - 1 > ws->max_pos)
        return qs_error(QS_ERR_ARG, "position %d beyond the RoPE table (%d)", i0 + ni + d0 + nd - 1, ws->max_pos);
    if (c->arch == QS_ARCH_GPT2 && (i0 + ni - 1) + (d0 + nd - 1) >= c->max_seq_len) // largest position id
        return qs_error(QS_ERR_ARG, "position %d beyond the model's n_positions (%d learned positions)",
                        (i0 + ni - 1) + (d0 + nd - 1), c->max_seq_len);
    const size_t N = (size_t)nd * R * ni;
    if (N > ws->n_max) return qs_error(QS_ERR_ARG, "block of %zu tokens exceeds workspace (%zu)", N, ws->n_max);
    qs_mm mm;
    QS_TRY(qs_model_mm(m, &mm));
    // Saving layer inputs (for backward) needs whole rows: ni == T.
    const int save = ws->training == QS_WS_TRAINING && ni == T;
    const size_t off = (size_t)d0 * R * T * H;
    block_positions(ws->pos, R, d0, nd, i0, ni);
    const float *x = x0;
    if (c->arch == QS_ARCH_GPT2) { // layer-0 input = x0 + wpe[pos] (saved slot, else tmp_a; in place if x0 is it)
        float *xp = save ? ws->xs + off : ws->tmp_a;
        if (xp != x0) memcpy(xp, x0, N * H * sizeof(float));
        posembed_forward(xp, ws->pos, m->w.wpe, (int)N, H);
        x = xp;
    }
    for (int l = 0; l < c->n_layers; l++) {
        float *x_out = save ? ws->xs + (size_t)(l + 1) * ws->xs_layer + off : (l % 2 ? ws->tmp_a : ws->tmp_b);
        if (save && l == 0 && x != ws->xs + off) memcpy(ws->xs + off, x0, N * H * sizeof(float));
        qs_layer_acts a = save ? acts_at(ws, l, (size_t)d0 * R * T) : ws->a;
        layer_forward(m, &mm, ws, &a, l, x, x_out, ws->pos, d0, nd, i0, ni);
        x = x_out;
    }
    if (h_out && c->arch == QS_ARCH_GPT2)
        layernorm_forward(h_out, NULL, NULL, x, m->w.final_norm, m->w.final_norm_b, (int)N, H, c->norm_eps);
    else if (h_out)
        rmsnorm_forward(h_out, NULL, x, m->w.final_norm, (int)N, H, c->norm_eps);
    return QS_OK;
}

// ---------------------------------------------------------------------------
// Backward of layer l over all D passes (N = D*R*T tokens). dx holds the
// gradient w.r.t. the layer output on entry and w.r.t. its input on return.
static void layer_backward(const qs_model *m, const qs_mm *mm, qs_workspace *ws, const qs_ptrs *g, int l,
                           float *dx) {
    const qs_config *c = &m->cfg;
    const qs_layer_ptrs *w = &m->w.layer[l];
    qs_layer_ptrs *gw = &g->layer[l];
    const int H = c->dim, F = c->hidden_dim, R = ws->R, T = ws->T, D = ws->D;
    const int qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    const int N = D * R * T;
    if (c->arch == QS_ARCH_GPT2) {
        gpt2_layer_backward(m, mm, ws, g, l, dx);
        return;
    }
    const int kept = l < ws->n_stored;
    qs_layer_acts *a = kept ? &ws->stored[l] : &ws->a;
    qs_grad_scratch *gs = &ws->g;
    const float *x_in = ws->xs + (size_t)l * ws->xs_layer;
    float *kc = ws->kc + (size_t)l * ws->kv_layer, *vc = ws->vc + (size_t)l * ws->kv_layer;

    // the layer's activations: kept from the forward (then only the norms
    // and the SwiGLU product are redone, elementwise), or recomputed for all
    // passes at once (one batch of GEMMs) from the saved layer input
    block_positions(ws->pos, R, 0, D, 0, T);
    if (kept) {
        rmsnorm_forward(a->xn, NULL, x_in, w->attn_norm, N, H, c->norm_eps);
        rmsnorm_forward(a->xn2, NULL, a->x2, w->mlp_norm, N, H, c->norm_eps);
        swiglu_forward(a->act, a->gate, a->up, (size_t)N * F);
    } else {
        layer_forward(m, mm, ws, a, l, x_in, NULL, ws->pos, 0, D, 0, T);
    }

    // MLP: out = x2 + act Wd^T  =>  dx2 = dx (residual) + rmsnorm2'(...)
    qs_zero(gs->dact, (size_t)N * F);
    matmul_backward_mm(mm, gs->dact, gw->w_down, NULL, dx, a->act, w->w_down, N, F, H);
    qs_zero(gs->dgate, (size_t)N * F);
    qs_zero(gs->dup, (size_t)N * F);
    swiglu_backward(gs->dgate, gs->dup, gs->dact, a->gate, a->up, (size_t)N * F);
    qs_zero(gs->dxn, (size_t)N * H);
    matmul_backward_mm(mm, gs->dxn, gw->w_gate, NULL, gs->dgate, a->xn2, w->w_gate, N, H, F);
    matmul_backward_mm(mm, gs->dxn, gw->w_up, NULL, gs->dup, a->xn2, w->w_up, N, H, F);
    rmsnorm_backward(dx, gw->mlp_norm, gs->dxn, a->x2, w->mlp_norm, a->rstd2, N, H); // dx is now dx2

    // attention: x2 = x + att Wo^T
    qs_zero(gs->datt, (size_t)N * qd);
    matmul_backward_mm(mm, gs->datt, gw->wo, NULL, dx, a->att, w->wo, N, qd, H);
    qs_zero(gs->dq, (size_t)N * qd);
    qs_zero(gs->dk, (size_t)N * kvd);
    qs_zero(gs->dv, (size_t)N * kvd);
    attn_shape s = {R, T, c->n_heads, c->n_kv_heads, c->head_dim, ws->mask, c->sliding_window};
    // with full ranges the cache order [D,R,T] equals the token order
    attention_backward(gs->dq, gs->dk, gs->dv, gs->datt, a->q, kc, vc, a->att, a->lse, &s, 0, D, 0, T);
    rope_backward(gs->dq, ws->pos, ws->cos_t, ws->sin_t, N, c->n_heads, c->head_dim);
    rope_backward(gs->dk, ws->pos, ws->cos_t, ws->sin_t, N, c->n_kv_heads, c->head_dim);
    qs_zero(gs->dxn, (size_t)N * H);
    matmul_backward_mm(mm, gs->dxn, gw->wq, gw->bq, gs->dq, a->xn, w->wq, N, H, qd);
    matmul_backward_mm(mm, gs->dxn, gw->wk, gw->bk, gs->dk, a->xn, w->wk, N, H, kvd);
    matmul_backward_mm(mm, gs->dxn, gw->wv, gw->bv, gs->dv, a->xn, w->wv, N, H, kvd);
    rmsnorm_backward(dx, gw->attn_norm, gs->dxn, x_in, w->attn_norm, a->rstd1, N, H); // dx is now dx_in
}

qs_status qs_backward_all(const qs_model *m, qs_workspace *ws, const float *dh, float *dx0, float *grads) {
    const qs_config *c = &m->cfg;
    const int H = c->dim;
    const size_t N = (size_t)ws->D * ws->R * ws->T;
    if (ws->training != QS_WS_TRAINING)
        return qs_error(QS_ERR_ARG, "workspace was created for a forward only; backward needs training mode");
    qs_mm mm;
    QS_TRY(qs_model_mm(m, &mm));
    qs_ptrs g;
    QS_TRY(qs_ptrs_bind(&g, c, &m->layout, grads));
    // final norm: h = rmsnorm(x_L)
    const float *xL = ws->xs + (size_t)c->n_layers * ws->xs_layer;
    qs_zero(dx0, N * H);
    if (c->arch == QS_ARCH_GPT2) {
        layernorm_forward(ws->tmp_a, ws->a.mean1, ws->a.rstd1, xL, m->w.final_norm, m->w.final_norm_b, (int)N, H,
                          c->norm_eps);
        layernorm_backward(dx0, g.final_norm, g.final_norm_b, dh, xL, m->w.final_norm, ws->a.mean1, ws->a.rstd1,
                           (int)N, H);
    } else {
        rmsnorm_forward(ws->tmp_a, ws->a.rstd1, xL, m->w.final_norm, (int)N, H, c->norm_eps);
        rmsnorm_backward(dx0, g.final_norm, dh, xL, m->w.final_norm, ws->a.rstd1, (int)N, H);
    }
    for (int l = c->n_layers - 1; l >= 0; l--) layer_backward(m, &mm, ws, &g, l, dx0);
    if (c->arch == QS_ARCH_GPT2) { // wpe: the layer-0 input gradient at each token's position
        block_positions(ws->pos, ws->R, 0, ws->D, 0, ws->T);
        embedding_backward(g.wpe, dx0, ws->pos, (int)N, H);
    }
    qs_ptrs_free(&g);
    return QS_OK;
}

// ---------------------------------------------------------------------------
// Plain language modelling (D = 1).

// target of (b,i): tokens[b,i+1] when it is real, else -1
static int lm_targets(int *tg, const int *tokens, const int *mask, int B, int T) {
    int n = 0;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < T; i++) {
            size_t k = (size_t)b * T + i;
            int ok = i < T - 1 && (!mask || (mask[k + 1] && mask[k]));
            tg[k] = ok ? tokens[k + 1] : -1;
            n += ok;
        }
    return n;
}

static qs_status check_tokens(const qs_model *m, const qs_workspace *ws, const int *tokens, int B, int T) {
    if (B != ws->R || T != ws->T || ws->D < 1)
        return qs_error(QS_ERR_ARG, "batch %dx%d does not match workspace %dx%d", B, T, ws->R, ws->T);
    for (size_t k = 0; k < (size_t)B * T; k++)
        if (tokens[k] < 0 || tokens[k] >= m->cfg.vocab_size)
            return qs_error(QS_ERR_ARG, "token id %d at index %zu outside vocabulary of %d", tokens[k], k,
                            m->cfg.vocab_size);
    return QS_OK;
}

// Forward for pass 0 of a [B,T] batch; leaves final hidden states in ws->h.
static qs_status lm_forward(const qs_model *m, qs_workspace *ws, const int *tokens, const int *mask, int B,
                            int T) {
    QS_TRY(check_tokens(m, ws, tokens, B, T));
    ws->mask = mask;
    float *x0 = ws->xs ? ws->xs : ws->tmp_a;
    embedding_forward(x0, tokens, m->w.embed, B * T, m->cfg.dim);
    return qs_forward_block(m, ws, x0, 0, 1, 0, T, ws->h);
}

qs_status qs_lm_step(const qs_model *m, qs_workspace *ws, const int *tokens, const int *mask, int B, int T,
                     float *loss, float *logits, float *grads, float grad_scale, int *n_targets) {
    const qs_config *c = &m->cfg;
    const int H = c->dim, V = c->vocab_size, N = B * T;
    if (grads && ws->D != 1)
        return qs_error(QS_ERR_ARG, "qs_lm_step needs a workspace with one pass (has %d)", ws->D);
    QS_TRY(lm_forward(m, ws, tokens, mask, B, T));
    qs_mm mm;
    QS_TRY(qs_model_mm(m, &mm));
    int nt = lm_targets(ws->targets, tokens, mask, B, T);
    if (n_targets) *n_targets = nt;
    qs_ptrs g = {0};
    if (grads) {
        QS_TRY(qs_ptrs_bind(&g, c, &m->layout, grads));
        qs_zero(ws->dh, (size_t)N * H);
    }
    // lm_head + cross-entropy in chunks of tokens, so [N,V] logits never exist at once
    double total = 0.0;
    for (int n0 = 0; n0 < N; n0 += ws->chunk) {
        int n = QS_MIN(ws->chunk, N - n0);
        float *z = ws->logits;
        const float *h = ws->h + (size_t)n0 * H;
        matmul_forward_mm(&mm, z, h, m->w.lm_head, NULL, n, H, V);
        if (logits) memcpy(logits + (size_t)n0 * V, z, (size_t)n * V * sizeof(float));
        crossentropy_forward(ws->losses, z, ws->targets + n0, n, V);
        for (int k = 0; k < n; k++) total += ws->losses[k];
        if (grads && nt > 0) {
            for (int k = 0; k < n; k++) ws->losses[k] = grad_scale / nt;
            crossentropy_backward(z, z, ws->targets + n0, ws->losses, n, V);
            matmul_backward_mm(&mm, ws->dh + (size_t)n0 * H, g.lm_head, NULL, z, h, m->w.lm_head, n, H, V);
        }
    }
    if (loss) *loss = nt > 0 ? (float)(total / nt) : 0.0f;
    if (grads) {
        qs_status st = qs_backward_all(m, ws, ws->dh, ws->dx0, grads);
        if (st == QS_OK) embedding_backward(g.embed, ws->dx0, tokens, N, H);
        qs_ptrs_free(&g);
        return st;
    }
    return QS_OK;
}

qs_status qs_lm_token_nll_ent(const qs_model *m, qs_workspace *ws, const int *tokens, const int *mask, int B, int T,
                              float *nll, float *entropy, double *nll_sum, long *n_tokens) {
    const int H = m->cfg.dim, V = m->cfg.vocab_size, N = B * T;
    QS_TRY(lm_forward(m, ws, tokens, mask, B, T));
    qs_mm mm;
    QS_TRY(qs_model_mm(m, &mm));
    int nt = lm_targets(ws->targets, tokens, mask, B, T);
    double total = 0.0;
    for (int n0 = 0; n0 < N; n0 += ws->chunk) {
        int n = QS_MIN(ws->chunk, N - n0);
        matmul_forward_mm(&mm, ws->logits, ws->h + (size_t)n0 * H, m->w.lm_head, NULL, n, H, V);
        if (entropy)
            for (int k = 0; k < n; k++) entropy[n0 + k] = (float)qs_logits_entropy(ws->logits + (size_t)k * V, V);
        crossentropy_forward(ws->losses, ws->logits, ws->targets + n0, n, V);
        for (int k = 0; k < n; k++) total += ws->losses[k];
        if (nll)
            for (int k = 0; k < n; k++) nll[n0 + k] = ws->targets[n0 + k] < 0 ? NAN : ws->losses[k];
    }
    if (nll_sum) *nll_sum = total;
    if (n_tokens) *n_tokens = nt;
    return QS_OK;
}

qs_status qs_lm_token_nll(const qs_model *m, qs_workspace *ws, const int *tokens, const int *mask, int B, int T,
                          float *nll, double *nll_sum, long *n_tokens) {
    return qs_lm_token_nll_ent(m, ws, tokens, mask, B, T, nll, NULL, nll_sum, n_tokens);
}

qs_status qs_lm_nll(const qs_model *m, qs_workspace *ws, const int *tokens, const int *mask, int B, int T,
                    double *nll_sum, long *n_tokens) {
    return qs_lm_token_nll_ent(m, ws, tokens, mask, B, T, NULL, NULL, nll_sum, n_tokens);
}

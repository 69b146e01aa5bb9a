// step.c: one Quiet-STaR step (SPEC.md sections 1-3).
//
// Forward, pass by pass (each pass's input depends on the previous one):
//   d = 0                 text x[r,i]                    -> h_0 (base)
//   d = 1                 start embedding                -> sample t[r,0,i]
//   d = 2..n_ahead-2      thought token t[r,d-2,i]       -> sample t[r,d-1,i]
//   d = n_ahead-1         end embedding                  -> talk k = 0
//   d = n_ahead-1+k       true token x[r,i+k]            -> talk k
// Then the losses: base NLL, talk NLLs through the mixing head, rewards,
// advantages and the policy loss; their gradients w.r.t. every pass's hidden
// states go into one [D,R,T,H] buffer, and a single backward runs over all
// passes at once, layer by layer (qs_backward_all).
#include "quietstar/qstar.h"
#include "quietstar/mixhead.h"
#include "model/sampler.h"
#include "model/workspace.h"
#include "ops/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct qs_qstar {
    qs_qstar_opts o;
    int B, T, P, R, D, nT, nR; // nR = T-1-n_talk reward positions
    qs_workspace *ws;          // R rows x T positions x D passes, training mode
    qs_ws_bufs wb;             // its buffers the step computes in
    int *xtok, *xmask;         // [R,T] expanded tokens and mask
    int *ptok;                 // [D,R,T] input token of each pass (-1: meta embedding)
    int *thoughts;             // [R,nT,T]
    int *tgt;                  // [R,T] scratch targets
    float *nll0, *nllk;        // [R,T], [n_talk,R,T]
    float *reward, *adv;       // [R,nR]
    float *mix;                // [n_talk,R,T]
    float *ref_nll;            // [B,T] reference (EMA) no-thought NLL, EMA baseline only
    int ref_set;
    float *hb, *hm, *dhm, *dhb; // [R*T,H] mixing head inputs/outputs
    qs_mix_acts ma;
    size_t bytes;
    int plan;             // qs_qstar_plan_bytes: count, do not allocate
    size_t bytes_fwd;     // of bytes, the buffers a forward-only step touches
};

void qs_qstar_free(qs_qstar *q) {
    if (!q) return;
    qs_workspace_free(q->ws);
    void *bufs[] = {q->xtok, q->xmask, q->ptok, q->thoughts, q->tgt, q->nll0, q->nllk, q->reward, q->adv,
                    q->mix, q->ref_nll, q->hb, q->hm, q->dhm, q->dhb, q->ma.cat, q->ma.a1, q->ma.a2, q->ma.w,
                    q->ma.da, q->ma.dcat};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(q);
}

size_t qs_qstar_bytes(const qs_qstar *q) { return q->bytes + qs_workspace_bytes(q->ws); }
int qs_qstar_layers_kept(const qs_qstar *q) { return qs_workspace_layers_kept(q->ws); }

// With q->plan the buffers are only counted (qs_qstar_plan_bytes).
#define ALLOC(ptr, count)                                                       \
    do {                                                                        \
        size_t n_ = (size_t)(count);                                            \
        if (n_ == 0) n_ = 1;                                                    \
        q->bytes += n_ * sizeof(*(ptr));                                        \
        if (q->plan) { (ptr) = NULL; break; }                                   \
        (ptr) = qs_calloc(n_, sizeof(*(ptr)), #ptr);                            \
        if (!(ptr)) { qs_qstar_free(q); return QS_ERR_NOMEM; }                  \
    } while (0)

// The step's own buffers (q->o, B, T, P, R, D, nT, nR set).
static qs_status alloc_buffers(qs_qstar *q, int H) {
    const qs_qstar_opts *o = &q->o;
    const size_t RT = (size_t)q->R * q->T;
    ALLOC(q->xtok, RT);
    ALLOC(q->xmask, RT);
    ALLOC(q->ptok, RT * q->D);
    ALLOC(q->thoughts, RT * q->nT);
    ALLOC(q->tgt, RT);
    ALLOC(q->nll0, RT);
    ALLOC(q->nllk, RT * o->n_talk);
    ALLOC(q->reward, (size_t)q->R * q->nR);
    ALLOC(q->adv, (size_t)q->R * q->nR);
    ALLOC(q->mix, RT * o->n_talk);
    ALLOC(q->ref_nll, (size_t)q->B * q->T);
    ALLOC(q->hb, RT * H);
    ALLOC(q->hm, RT * H);
    ALLOC(q->ma.cat, RT * 2 * H);
    ALLOC(q->ma.a1, RT * H);
    ALLOC(q->ma.a2, RT * H);
    ALLOC(q->ma.w, RT);
    q->bytes_fwd = q->bytes; // the rest only the backward touches
    if (o->forward_only) return QS_OK;
    ALLOC(q->dhm, RT * H);
    ALLOC(q->dhb, RT * H);
    ALLOC(q->ma.da, RT * H);
    ALLOC(q->ma.dcat, RT * 2 * H);
    return QS_OK;
}

static void set_shape(qs_qstar *q, const qs_qstar_opts *o, int B, int T) {
    q->o = *o;
    q->B = B, q->T = T, q->P = o->n_passes, q->R = B * o->n_passes;
    q->D = o->n_ahead + o->n_talk - 1, q->nT = o->n_ahead - 3, q->nR = T - 1 - o->n_talk;
}

qs_status qs_qstar_create(qs_qstar **out, const qs_model *m, const qs_qstar_opts *o, int B, int T) {
    *out = NULL;
    QS_TRY(qs_qstar_opts_validate(o, T));
    if (!m->has_quietstar) return qs_error(QS_ERR_ARG, "model has no Quiet-STaR tensors (start/end embeddings, talk head)");
    if (B < 1 || T < 2) return qs_error(QS_ERR_ARG, "batch %dx%d too small", B, T);
    qs_qstar *q = calloc(1, sizeof *q);
    if (!q) return qs_error(QS_ERR_NOMEM, "out of memory for the Quiet-STaR step");
    set_shape(q, o, B, T);
    qs_status st = o->forward_only ? qs_workspace_create_ex(&q->ws, &m->cfg, q->R, T, q->D, QS_WS_PASSES)
                                   : qs_workspace_create_budget(&q->ws, &m->cfg, q->R, T, q->D, qs_qstar_act_budget(o));
    if (st != QS_OK) { qs_qstar_free(q); return st; }
    q->wb = qs_workspace_bufs(q->ws);
    QS_TRY(alloc_buffers(q, m->cfg.dim)); // frees q on failure
    *out = q;
    return QS_OK;
}

qs_status qs_qstar_plan_bytes(const qs_config *c, const qs_qstar_opts *o, int B, int T, qs_qstar_plan *out) {
    memset(out, 0, sizeof *out);
    QS_TRY(qs_qstar_opts_validate(o, T));
    if (B < 1 || T < 2) return qs_error(QS_ERR_ARG, "batch %dx%d too small", B, T);
    qs_qstar q;
    memset(&q, 0, sizeof q);
    q.plan = 1;
    set_shape(&q, o, B, T);
    qs_ws_plan wp;
    QS_TRY(qs_workspace_plan(c, q.R, T, q.D, o->forward_only ? QS_WS_PASSES : QS_WS_TRAINING, qs_qstar_act_budget(o),
                             &wp));
    QS_TRY(alloc_buffers(&q, c->dim));
    out->kv_cache = wp.kv_cache, out->layer_inputs = wp.layer_inputs, out->stored_acts = wp.stored_acts;
    out->scratch = wp.scratch, out->logits = wp.logits, out->step = q.bytes_fwd;
    out->grads = wp.grads + (q.bytes - q.bytes_fwd);
    out->layers_kept = wp.layers_kept, out->layers_total = wp.layers_total;
    out->total = wp.total + q.bytes;
    return QS_OK;
}

qs_status qs_qstar_set_ref_nll(qs_qstar *q, const float *nll) {
    if (!nll) return qs_error(QS_ERR_ARG, "reference NLL: NULL");
    for (size_t k = 0; k < (size_t)q->B * q->T; k++) q->ref_nll[k] = isfinite(nll[k]) ? nll[k] : 0.0f;
    q->ref_set = 1;
    return QS_OK;
}

// Raw rewards and advantages (SPEC section 3 and the EMA variant, qstar.h):
// R[r,i] = sum_k base[i+k] - nll_k[r,i] with base the current model's nll_0
// (MEAN) or the reference NLL of row b = r/P (EMA); A = R - mean over the
// passes (MEAN, P > 1) or R (EMA); clamped at 0 if asked. Sums into *rsum, *asum.
static void rewards(qs_qstar *q, double *rsum, double *asum) {
    const int T = q->T, R = q->R, P = q->P, nR = q->nR, ntalk = q->o.n_talk;
    const size_t RT = (size_t)R * T;
    const int ema = q->o.reward_baseline == QS_BASELINE_EMA;
    for (int r = 0; r < R; r++) {
        const float *base = ema ? q->ref_nll + (size_t)(r / P) * T : q->nll0 + (size_t)r * T;
        for (int i = 0; i < nR; i++) {
            double s = 0.0;
            for (int k = 0; k < ntalk; k++) s += base[i + k] - q->nllk[(size_t)k * RT + (size_t)r * T + i];
            q->reward[(size_t)r * nR + i] = (float)s;
        }
    }
    *rsum = *asum = 0.0;
    for (int r = 0; r < R; r++)
        for (int i = 0; i < nR; i++) {
            float a = q->reward[(size_t)r * nR + i];
            if (P > 1 && !ema) {
                int b = r / P;
                double mu = 0.0;
                for (int p = 0; p < P; p++) mu += q->reward[(size_t)(b * P + p) * nR + i];
                a -= (float)(mu / P);
            }
            if (q->o.clamp_negative_rewards && a < 0) a = 0;
            q->adv[(size_t)r * nR + i] = a;
            *rsum += q->reward[(size_t)r * nR + i];
            *asum += a;
        }
}

// ---------------------------------------------------------------------------
// lm_head + cross-entropy over N rows of hidden states h, in chunks.
// nll[n] receives the per-row NLL (0 where tgt < 0). If dh != NULL, each
// valid row's loss is weighted by `scale` and its gradient accumulated into
// dh (w.r.t. h) and dlm (w.r.t. lm_head).
// These NLLs are the losses and, through their differences between passes,
// the rewards: their logits are computed in fp32 at every precision. In bf16,
// rounding each pass's hidden state to 8 bits moves a token's NLL by about as
// much as a thought changes it, and beta (1e6) amplifies that noise into the
// policy gradient (stories260K, paper settings: gradient cosine to fp32 0.60
// with bf16 logits, 0.996 with fp32 ones). The backward products stay bf16.
static void head_ce(const qs_model *m, const qs_ws_bufs *ws, const float *h, const int *tgt, int N, float *nll,
                    float *dh, float *dlm, float scale) {
    const int H = m->cfg.dim, V = m->cfg.vocab_size;
    qs_mm mm, mm32 = {.prec = QS_PREC_FP32};
    qs_model_mm(m, &mm); // failing, mm still works (bf16 weights cast per call)
    for (int n0 = 0; n0 < N; n0 += ws->chunk) {
        int n = QS_MIN(ws->chunk, N - n0);
        float *z = ws->logits;
        matmul_forward_mm(&mm32, z, h + (size_t)n0 * H, m->w.lm_head, NULL, n, H, V);
        crossentropy_forward(nll + n0, z, tgt + n0, n, V);
        if (!dh) continue;
        for (int k = 0; k < n; k++) ws->losses[k] = scale;
        crossentropy_backward(z, z, tgt + n0, ws->losses, n, V);
        matmul_backward_mm(&mm, dh + (size_t)n0 * H, dlm, NULL, z, h + (size_t)n0 * H, m->w.lm_head, n, H, V);
    }
}

// Samples one thought token per row from softmax(lm_head(h) / tau), banned
// ids excluded. The uniforms are drawn serially (one per row, in row order)
// so a seed gives the same thoughts at any thread count; the rows then run
// in parallel.
static void sample_tokens(const qs_model *m, const qs_ws_bufs *ws, const qs_qstar_opts *o, const float *h, int N,
                          int *out, qs_rng *rng) {
    const int H = m->cfg.dim, V = m->cfg.vocab_size;
    qs_mm mm;
    qs_model_mm(m, &mm); // failing, mm still works (bf16 weights cast per call)
    for (int n0 = 0; n0 < N; n0 += ws->chunk) {
        int n = QS_MIN(ws->chunk, N - n0);
        float *z = ws->logits, *coin = ws->losses; // losses: [chunk] scratch
        matmul_forward_mm(&mm, z, h + (size_t)n0 * H, m->w.lm_head, NULL, n, H, V);
        for (int k = 0; k < n; k++) coin[k] = qs_rng_uniform(rng);
#pragma omp parallel for schedule(static)
        for (int k = 0; k < n; k++)
            out[n0 + k] = qs_sample_thought(z + (size_t)k * V, V, o->banned, o->n_banned, o->tau_sample,
                                            o->greedy_thoughts, coin[k]);
    }
}

// REINFORCE for the thought token u (drawn from pass u+1): accumulates
//   -coef * A[r,i] * log_softmax(z/tau_rl)[t]   over rows i < nR
// into *loss and its gradient into dh (w.r.t. h of pass u+1) and dlm.
// Only rows with A != 0 contribute (to the loss and to every gradient); with
// clamped advantages and P = 2 that is at most half of them, so those rows
// are gathered (into q->hm, free after the talk passes) and only they go
// through the lm_head and its backward.
static double policy_pass(const qs_model *m, qs_qstar *q, const float *h, const int *tok, float *dh, float *dlm,
                          float coef) {
    const qs_ws_bufs *ws = &q->wb;
    const int H = m->cfg.dim, V = m->cfg.vocab_size, T = q->T, N = q->R * T;
    const float tau = q->o.tau_rl;
    int *rows = ws->targets; // [n_max] scratch: the contributing rows, in row order
    int nrows = 0;
    for (int n = 0; n < N; n++) {
        int r = n / T, i = n % T;
        if (i < q->nR && q->adv[(size_t)r * q->nR + i] != 0.0f) rows[nrows++] = n;
    }
    float *hg = q->hm, *dhg = q->dhm; // [nrows,H] gathered h and its gradient
    for (int k = 0; k < nrows; k++) memcpy(hg + (size_t)k * H, h + (size_t)rows[k] * H, H * sizeof(float));
    if (dh) qs_zero(dhg, (size_t)nrows * H);
    double total = 0.0;
    qs_mm mm;
    qs_model_mm(m, &mm); // failing, mm still works (bf16 weights cast per call)
    for (int n0 = 0; n0 < nrows; n0 += ws->chunk) {
        int n = QS_MIN(ws->chunk, nrows - n0);
        float *z = ws->logits;
        matmul_forward_mm(&mm, z, hg + (size_t)n0 * H, m->w.lm_head, NULL, n, H, V);
        float *part = ws->losses; // per-row terms, summed in row order (deterministic)
#pragma omp parallel for schedule(static)
        for (int k = 0; k < n; k++) {
            int row = rows[n0 + k], r = row / T, i = row % T;
            float *zr = z + (size_t)k * V;
            float a = q->adv[(size_t)r * q->nR + i];
            float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
            for (int v = 0; v < V; v++) mx = QS_MAX(mx, zr[v] / tau);
            const int t = tok[row];
            const float zt = zr[t] / tau;
            double s = 0.0; // zr becomes exp(z/tau - mx), one exp per logit, across the row
#pragma omp simd reduction(+ : s)
            for (int v = 0; v < V; v++) {
                zr[v] = qs_exp_neg(zr[v] / tau - mx);
                s += (double)zr[v];
            }
            float lse = mx + (float)log(s);
            part[k] = -a * (zt - lse);
            if (!dh) continue;
            // d(-a*logp)/dz = -a * (onehot - softmax(z/tau)) / tau
            const float g = coef * a / tau, gs = (float)(g / s);
#pragma omp simd
            for (int v = 0; v < V; v++) zr[v] *= gs;
            zr[t] -= g;
        }
        for (int k = 0; k < n; k++) total += part[k];
        if (dh) matmul_backward_mm(&mm, dhg + (size_t)n0 * H, dlm, NULL, z, hg + (size_t)n0 * H, m->w.lm_head, n, H, V);
    }
    if (dh)
        for (int k = 0; k < nrows; k++) {
            float *dst = dh + (size_t)rows[k] * H;
            const float *src = dhg + (size_t)k * H;
            for (int c = 0; c < H; c++) dst[c] += src[c];
        }
    return total;
}

// Input embeddings of pass d into x [R*T,H]; records the pass's tokens.
static void pass_inputs(const qs_model *m, qs_qstar *q, int d, float *x) {
    const int H = m->cfg.dim, T = q->T, R = q->R, na = q->o.n_ahead;
    int *tok = q->ptok + (size_t)d * R * T;
    const float *meta = d == 1 ? m->w.start_emb : d == na - 1 ? m->w.end_emb : NULL;
    if (meta) {
        for (size_t n = 0; n < (size_t)R * T; n++) {
            tok[n] = -1;
            for (int c = 0; c < H; c++) x[n * H + c] = q->o.embedding_scale * meta[c];
        }
        return;
    }
    for (int r = 0; r < R; r++)
        for (int i = 0; i < T; i++) {
            int t;
            if (d == 0) t = q->xtok[r * T + i];
            else if (d < na - 1) t = q->thoughts[((size_t)r * q->nT + (d - 2)) * T + i];
            else { int k = d - (na - 1); t = i + k < T ? q->xtok[r * T + i + k] : 0; }
            tok[(size_t)r * T + i] = t;
        }
    embedding_forward(x, tok, m->w.embed, R * T, H);
}

static float mean_valid(const float *v, const int *tgt, int n, int *count) {
    double s = 0.0;
    int c = 0;
    for (int k = 0; k < n; k++) if (tgt[k] >= 0) s += v[k], c++;
    if (count) *count = c;
    return c ? (float)(s / c) : 0.0f;
}

// targets of talk k (k = 0: the base targets): x[r,i+k+1] when real.
static void talk_targets(const qs_qstar *q, int k, int *tgt) {
    const int T = q->T;
    for (int r = 0; r < q->R; r++)
        for (int i = 0; i < T; i++) {
            int j = i + k + 1;
            tgt[r * T + i] = j < T && q->xmask[r * T + j] && q->xmask[r * T + i] ? q->xtok[r * T + j] : -1;
        }
}

qs_status qs_qstar_step(qs_qstar *q, const qs_model *m, const int *tokens, const int *mask, const int *forced,
                        qs_rng *rng, float *grads, float grad_scale, qs_qstar_out *out) {
    const qs_config *c = &m->cfg;
    const int H = c->dim, V = c->vocab_size, T = q->T, R = q->R, P = q->P, D = q->D, nT = q->nT;
    const int na = q->o.n_ahead, ntalk = q->o.n_talk;
    const size_t RT = (size_t)R * T, slab = RT * H;
    qs_workspace *ws = q->ws;
    const qs_ws_bufs *bf = &q->wb;
    if (!m->has_quietstar) return qs_error(QS_ERR_ARG, "model has no Quiet-STaR tensors");
    if (!forced && !rng && nT > 0) return qs_error(QS_ERR_ARG, "thought sampling needs an RNG or forced thoughts");
    if (grads && q->o.forward_only) return qs_error(QS_ERR_ARG, "this Quiet-STaR step was created forward-only (no gradients)");
    if (q->o.reward_baseline == QS_BASELINE_EMA && !q->ref_set)
        return qs_error(QS_ERR_ARG, "the EMA reward baseline needs the reference NLL of the batch (qs_qstar_set_ref_nll)");

    // expand rows: r = b*P + p holds row b
    for (int r = 0; r < R; r++)
        for (int i = 0; i < T; i++) {
            int b = r / P, t = tokens[b * T + i];
            if (t < 0 || t >= V) return qs_error(QS_ERR_ARG, "token id %d at [%d,%d] outside vocabulary of %d", t, b, i, V);
            q->xtok[r * T + i] = t;
            q->xmask[r * T + i] = mask ? (mask[b * T + i] != 0) : 1;
        }
    if (forced) {
        for (size_t k = 0; k < RT * nT; k++)
            if (forced[k] < 0 || forced[k] >= V) return qs_error(QS_ERR_ARG, "thought token %d outside vocabulary of %d", forced[k], V);
        memcpy(q->thoughts, forced, RT * nT * sizeof(int));
    }
    qs_workspace_set_mask(ws, q->xmask);
    const double t0 = qs_now();

    // ---- think: forward pass by pass; inputs go straight into the layer-0 slot.
    // Once the last thought token is sampled (pass nT), every remaining input
    // is known (that token, the end embedding, the true tokens), so passes
    // nT+1 .. D-1 run as one block: fewer, larger matrix products.
    for (int d = 0; d < D; d++) {
        const int nd = d == nT + 1 ? D - d : 1;
        float *x0 = bf->xs + (size_t)d * slab, *h = bf->h + (size_t)d * slab;
        for (int e = 0; e < nd; e++) pass_inputs(m, q, d + e, x0 + (size_t)e * slab);
        QS_TRY(qs_forward_block(m, ws, x0, d, nd, 0, T, h));
        d += nd - 1;
        if (d >= 1 && d <= nT && !forced) { // sample thought token d-1 from pass d
            int *tmp = q->tgt;
            sample_tokens(m, bf, &q->o, h, (int)RT, tmp, rng);
            for (int r = 0; r < R; r++)
                memcpy(q->thoughts + ((size_t)r * nT + (d - 1)) * T, tmp + (size_t)r * T, T * sizeof(int));
        }
    }

    const double t1 = qs_now();
    qs_mm mm; // the GEMM precision of the mixing head
    QS_TRY(qs_model_mm(m, &mm));

    // ---- talk and learn: losses and their gradients w.r.t. the hidden states
    qs_ptrs g = {0};
    if (grads) {
        QS_TRY(qs_ptrs_bind(&g, c, &m->layout, grads));
        qs_zero(bf->dh, (size_t)D * slab);
    }
    const float wb = q->o.base_loss_weight;
    float *h0 = bf->h, *dh0 = bf->dh;
    // base NLL
    talk_targets(q, 0, q->tgt);
    int n0 = 0;
    for (size_t k = 0; k < RT; k++) n0 += q->tgt[k] >= 0;
    head_ce(m, bf, h0, q->tgt, (int)RT, q->nll0, grads ? dh0 : NULL, g.lm_head, n0 ? grad_scale * wb / n0 : 0);
    float loss_base = mean_valid(q->nll0, q->tgt, (int)RT, NULL);
    // talk k: hb = h_0 at i+k (wrapping, as the released code's roll), ht = h of pass n_ahead-1+k
    double talk_sum = 0.0, mix_s = 0.0, mix_s2 = 0.0;
    long mix_n = 0;
    float loss_talk[QS_MAX_TALK];
    for (int k = 0; k < ntalk; k++) {
        const int d = na - 1 + k;
        const float *ht = bf->h + (size_t)d * slab;
        for (int r = 0; r < R; r++)
            for (int i = 0; i < T; i++)
                memcpy(q->hb + ((size_t)r * T + i) * H, h0 + ((size_t)r * T + (i + k) % T) * H, H * sizeof(float));
        mixhead_forward_mm(&mm, &m->w, H, (int)RT, q->hb, ht, q->o.mixing == QS_MIX_SIGMOID, &q->ma, q->hm);
        talk_targets(q, k, q->tgt);
        // reported mixing weights: 0 where the position predicts nothing
        for (size_t n = 0; n < RT; n++) q->mix[(size_t)k * RT + n] = q->tgt[n] >= 0 ? q->ma.w[n] : 0.0f;
        int nk = 0;
        for (size_t n = 0; n < RT; n++) nk += q->tgt[n] >= 0;
        float *nll = q->nllk + (size_t)k * RT;
        float sc = nk ? grad_scale * (1.0f - wb) / ntalk / nk : 0.0f;
        if (grads) qs_zero(q->dhm, slab);
        head_ce(m, bf, q->hm, q->tgt, (int)RT, nll, grads ? q->dhm : NULL, g.lm_head, sc);
        loss_talk[k] = mean_valid(nll, q->tgt, (int)RT, NULL);
        talk_sum += loss_talk[k];
        for (size_t n = 0; n < RT; n++)
            if (q->tgt[n] >= 0) mix_s += q->ma.w[n], mix_s2 += (double)q->ma.w[n] * q->ma.w[n], mix_n++;
        if (grads) {
            qs_zero(q->dhb, slab);
            mixhead_backward_mm(&mm, &m->w, &g, H, (int)RT, q->hb, ht, q->dhm, q->o.mixing == QS_MIX_SIGMOID, &q->ma,
                             q->dhb, bf->dh + (size_t)d * slab);
            for (int r = 0; r < R; r++)
                for (int i = 0; i < T; i++) {
                    float *dst = dh0 + ((size_t)r * T + (i + k) % T) * H;
                    const float *src = q->dhb + ((size_t)r * T + i) * H;
                    for (int cc = 0; cc < H; cc++) dst[cc] += src[cc];
                }
        }
    }
    // rewards, baseline, clamp
    const int nR = q->nR;
    double rsum, asum;
    rewards(q, &rsum, &asum);
    // policy loss over the sampled thought tokens
    double pol = 0.0;
    if (nT > 0 && nR > 0) {
        const float coef = grad_scale * q->o.policy_beta / ((float)nT * R * nR);
        int *tok = q->tgt;
        for (int u = 0; u < nT; u++) {
            for (int r = 0; r < R; r++)
                memcpy(tok + (size_t)r * T, q->thoughts + ((size_t)r * nT + u) * T, T * sizeof(int));
            const size_t off = (size_t)(u + 1) * slab;
            pol += policy_pass(m, q, bf->h + off, tok, grads ? bf->dh + off : NULL, g.lm_head, coef);
        }
        pol /= (double)nT * R * nR;
    }

    const double t2 = qs_now();

    // ---- backward through every pass at once, then the input embeddings
    if (grads) {
        qs_status st = qs_backward_all(m, ws, bf->dh, bf->dx0, grads);
        if (st != QS_OK) { qs_ptrs_free(&g); return st; }
        for (int d = 0; d < D; d++) {
            const float *dx = bf->dx0 + (size_t)d * slab;
            float *meta = d == 1 ? g.start_emb : d == na - 1 ? g.end_emb : NULL;
            if (meta) {
                for (int cc = 0; cc < H; cc++) {
                    double s = 0.0;
                    for (size_t n = 0; n < RT; n++) s += dx[n * H + cc];
                    meta[cc] += q->o.embedding_scale * (float)s;
                }
            } else {
                embedding_backward(g.embed, dx, q->ptok + (size_t)d * RT, (int)RT, H);
            }
        }
        qs_ptrs_free(&g);
    }

    float loss_lm = wb * loss_base + (1.0f - wb) * (float)(talk_sum / ntalk);
    if (out) {
        memset(out, 0, sizeof *out);
        out->loss_base = loss_base;
        out->loss_lm = loss_lm;
        out->policy_loss = (float)pol;
        out->loss = loss_lm + q->o.policy_beta * (float)pol;
        memcpy(out->loss_talk, loss_talk, ntalk * sizeof(float));
        out->reward_mean = (R * nR > 0) ? (float)(rsum / (R * nR)) : 0;
        out->advantage_mean = (R * nR > 0) ? (float)(asum / (R * nR)) : 0;
        double mu = mix_n ? mix_s / mix_n : 0;
        out->mix_mean = (float)mu;
        out->mix_std = mix_n ? (float)sqrt(fmax(0.0, mix_s2 / mix_n - mu * mu)) : 0;
        out->R = R, out->T = T, out->n_thought = nT, out->n_talk = ntalk;
        out->t_think = t1 - t0, out->t_talk = t2 - t1, out->t_backward = qs_now() - t2;
        out->reward = q->reward, out->advantage = q->adv, out->mix_weight = q->mix;
        out->thoughts = q->thoughts, out->nll_base = q->nll0, out->nll_talk = q->nllk;
    }
    return QS_OK;
}

// adamw.c: AdamW with torch.optim.AdamW semantics (decoupled weight decay,
// bias correction), global gradient-norm clipping and the learning-rate
// schedule (linear warmup + cosine decay).
#include "train/adamw.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// Tensors smaller than this are updated by one thread (avoids fork/join cost).
#define QS_ADAMW_PAR_MIN 32768

qs_status qs_adamw_create(qs_adamw *o, size_t numel) {
    if (!o) return qs_error(QS_ERR_ARG, "adamw: NULL optimizer");
    memset(o, 0, sizeof *o);
    o->m = qs_calloc(numel ? numel : 1, sizeof(float), "AdamW first moments");
    if (!o->m) return QS_ERR_NOMEM;
    o->v = qs_calloc(numel ? numel : 1, sizeof(float), "AdamW second moments");
    if (!o->v) {
        free(o->m);
        o->m = NULL;
        return QS_ERR_NOMEM;
    }
    o->numel = numel;
    o->step = 0;
    return QS_OK;
}

void qs_adamw_free(qs_adamw *o) {
    if (!o) return;
    free(o->m);
    free(o->v);
    memset(o, 0, sizeof *o);
}

// The whole buffer: the range update over [0, numel).
void qs_adamw_step(qs_adamw *o, const qs_layout *L, float *params, const float *grads,
                   const qs_adamw_hparams *hp, float lr) {
    qs_adamw_step_range(o, L, params, grads, hp, lr, 0, o->numel);
}

// torch.nn.utils.clip_grad_norm_ (norm_type 2). The sum of squares is
// accumulated in double. A non-finite norm is returned without touching the
// gradients, so the caller can skip the update.
double qs_grad_norm(const float *grads, size_t n) {
    double ss = 0.0;
    const long nn = (long)n;
#pragma omp parallel for reduction(+ : ss) schedule(static) if (n >= QS_ADAMW_PAR_MIN)
    for (long i = 0; i < nn; i++) ss += (double)grads[i] * (double)grads[i];
    return sqrt(ss);
}

float qs_clip_factor(double norm, float max_norm) {
    return max_norm > 0 && norm > (double)max_norm ? (float)((double)max_norm / (norm + 1e-6)) : 1.0f;
}

float qs_clip_grad_norm(float *grads, size_t n, float max_norm) {
    const double norm = qs_grad_norm(grads, n);
    if (!isfinite(norm)) return (float)norm;
    const float scale = qs_clip_factor(norm, max_norm);
    const long nn = (long)n;
    if (scale != 1.0f) {
#pragma omp parallel for schedule(static) if (n >= QS_ADAMW_PAR_MIN)
        for (long i = 0; i < nn; i++) grads[i] *= scale;
    }
    return (float)norm;
}

// Same shape as Hugging Face get_cosine_schedule_with_warmup, with a floor:
//   step < warmup:         lr * step / warmup          (0 at step 0)
//   warmup <= step < total: min_lr + (lr-min_lr) * 0.5 * (1 + cos(pi * p)),
//                          p = (step - warmup) / (total - warmup)
//   step >= total:         min_lr
// With total <= 0 the rate after warmup is constant lr.
float qs_lr_schedule(long step, float lr, float min_lr, long warmup, long total) {
    if (step < 0) step = 0;
    if (warmup > 0 && step < warmup) return (float)((double)lr * (double)step / (double)warmup);
    if (total <= 0) return lr;
    if (step >= total || total <= warmup) return min_lr;
    double p = (double)(step - warmup) / (double)(total - warmup);
    double c = 0.5 * (1.0 + cos(M_PI * p));
    return (float)((double)min_lr + ((double)lr - (double)min_lr) * c);
}

// Updates only the elements that belong to a tensor of the layout: the
// alignment gaps between tensors are never read or written, so they stay
// zero in params, m and v.
void qs_adamw_step_range(qs_adamw *o, const qs_layout *L, float *params, const float *grads,
                         const qs_adamw_hparams *hp, float lr, size_t lo, size_t hi) {
    const long t = o->step + 1;
    const float b1 = hp->beta1, b2 = hp->beta2, eps = hp->eps;
    // bias corrections in double (b2^t for small t is close to 1)
    const double bc1 = 1.0 - pow((double)b1, (double)t);
    const double bc2 = 1.0 - pow((double)b2, (double)t);
    const float step_size = (float)((double)lr / bc1);
    const float inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
    const float ob1 = 1.0f - b1, ob2 = 1.0f - b2, gs = hp->grad_scale == 0.0f ? 1.0f : hp->grad_scale;
    if (hi > lo + o->numel) hi = lo + o->numel; // defensive: moments cover [lo, lo + numel)
    for (int k = 0; k < L->n; k++) {
        const qs_tensor_info *ti = &L->t[k];
        size_t a = ti->offset, b = ti->offset + ti->numel;
        if (a < lo) a = lo;
        if (b > hi) b = hi;
        if (a >= b) continue;
        const float decay = ti->no_decay ? 1.0f : 1.0f - lr * hp->weight_decay;
        float *p = params + a, *mk = o->m + (a - lo), *vk = o->v + (a - lo);
        const float *g = grads + a;
        const long nn = (long)(b - a);
#pragma omp parallel for schedule(static) if (nn >= QS_ADAMW_PAR_MIN)
        for (long i = 0; i < nn; i++) {
            float gi = g[i] * gs; // (times 1 is exact)
            float mi = b1 * mk[i] + ob1 * gi;
            float vi = b2 * vk[i] + ob2 * gi * gi;
            mk[i] = mi;
            vk[i] = vi;
            float denom = sqrtf(vi) * inv_sqrt_bc2 + eps;
            p[i] = p[i] * decay - step_size * mi / denom;
        }
    }
    o->step = t;
}

// adamw.h: AdamW (torch.optim.AdamW semantics), learning-rate schedule and
// global gradient-norm clipping over one flat parameter buffer.
#ifndef QS_TRAIN_ADAMW_H
#define QS_TRAIN_ADAMW_H

#include "model/params.h"

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
    // The update uses g * grad_scale (the clip factor, qs_clip_factor), so clipping
    // costs no pass of its own over the gradients; 0 (left unset) means 1.
    float grad_scale;
} qs_adamw_hparams;

typedef struct {
    float *m, *v;  // first/second moments, layout.numel floats each
    size_t numel;
    long step;     // number of updates done (bias correction uses step+1)
} qs_adamw;

qs_status qs_adamw_create(qs_adamw *o, size_t numel);
void qs_adamw_free(qs_adamw *o);
// One update with learning rate `lr` (overrides hp->lr). Tensors flagged
// no_decay in the layout get no weight decay. Decoupled decay as in torch:
// p -= lr*wd*p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
// p -= lr * (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps).
void qs_adamw_step(qs_adamw *o, const qs_layout *L, float *params, const float *grads,
                   const qs_adamw_hparams *hp, float lr);
// The same update restricted to the elements [lo, hi) of the flat buffers
// (data-parallel training, dist.h): params and grads are the full buffers,
// the moments hold only that range (o->numel == hi - lo, element i at i - lo).
// Element for element it computes exactly what qs_adamw_step does.
void qs_adamw_step_range(qs_adamw *o, const qs_layout *L, float *params, const float *grads,
                         const qs_adamw_hparams *hp, float lr, size_t lo, size_t hi);

// Global L2 norm of grads[0..n); if max_norm > 0 and norm > max_norm, scales
// grads by max_norm/(norm+1e-6) (torch clip_grad_norm_). Returns the norm
// before clipping (non-finite if any gradient is).
float qs_clip_grad_norm(float *grads, size_t n, float max_norm);
// The two halves of it without touching grads: the global L2 norm (summed in
// double), and the factor max_norm/(norm+1e-6) it scales by (1 when max_norm <= 0
// or norm <= max_norm), for qs_adamw_hparams.grad_scale. The same bits as
// qs_clip_grad_norm's scaled gradients.
double qs_grad_norm(const float *grads, size_t n);
float qs_clip_factor(double norm, float max_norm);

// Linear warmup from 0 over `warmup` steps, then cosine decay from lr to
// min_lr at `total` steps (constant lr if total <= 0).
float qs_lr_schedule(long step, float lr, float min_lr, long warmup, long total);

#endif

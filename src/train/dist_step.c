// dist_step.c: the optimizer step of a data-parallel run (dist.h explains the
// scheme): every rank draws every micro-batch of the global batch, computes
// its own ones, the gradients are summed over ranks in a fixed order, and the
// same AdamW update is applied everywhere (or chunk by chunk with --zero 1).
#include "train/trainer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/dist.h"

qs_status qs_trainer_set_dist(qs_trainer *t, qs_dist *d) {
    t->dist = d;
    if (!d || !qs_dist_zero(d)) return QS_OK;
    // --zero 1: keep the moments of this rank's chunk only
    const size_t n = t->model->layout.numel;
    size_t lo, hi;
    qs_dist_chunk(d, n, qs_dist_rank(d), &lo, &hi);
    qs_adamw part;
    QS_TRY(qs_adamw_create(&part, hi - lo));
    memcpy(part.m, t->opt.m + lo, (hi - lo) * sizeof(float));
    memcpy(part.v, t->opt.v + lo, (hi - lo) * sizeof(float));
    part.step = t->opt.step;
    qs_adamw_free(&t->opt);
    t->opt = part;
    return QS_OK;
}

qs_status qs_trainer_dist_moments(qs_trainer *t, qs_adamw *tmp, const qs_adamw **opt) {
    memset(tmp, 0, sizeof *tmp);
    *opt = &t->opt;
    if (!t->dist || !qs_dist_zero(t->dist)) return QS_OK;
    QS_TRY(qs_dist_gather_moments(t->dist, &t->opt, t->model->layout.numel, tmp));
    *opt = tmp;
    return QS_OK;
}

qs_status qs_trainer_step_dist(qs_trainer *t, qs_train_event *ev) {
    const qs_train_opts *o = &t->o;
    qs_model *m = t->model;
    qs_dist *d = t->dist;
    const size_t numel = m->layout.numel;
    const int K = o->grad_accum, rank = qs_dist_rank(d);
    // this rank's micro-batches: a subtree of the step's balanced sum (dist.h)
    int k_lo, k_hi;
    qs_dist_block(d, K, &k_lo, &k_hi);
    double loss_sum = 0;
    QS_TRY(qs_trainer_grad_sum(t, k_lo, k_hi, &loss_sum));
    // gradients: fixed-order sum of this rank's chunk; scalars: loss and the chunk's squared norm
    QS_TRY(qs_dist_reduce_scatter(d, t->grads, numel));
    size_t lo, hi;
    qs_dist_chunk(d, numel, rank, &lo, &hi);
    double ss = 0;
    for (size_t i = lo; i < hi; i++) ss += (double)t->grads[i] * (double)t->grads[i];
    double v[2] = {loss_sum, ss};
    QS_TRY(qs_dist_sum_doubles(d, v, 2));
    const float loss = (float)(v[0] / K);
    const double norm_d = sqrt(v[1]);
    const float norm = (float)norm_d;
    const float scale = qs_clip_factor(norm_d, o->clip); // torch clip_grad_norm_
    if (isfinite(norm_d) && scale != 1.0f)
        for (size_t i = lo; i < hi; i++) t->grads[i] *= scale;
    const float lr = qs_lr_schedule(t->step, o->lr, o->min_lr, o->warmup, o->steps);
    const int skip = !isfinite(loss) || !isfinite(norm);
    qs_adamw_hparams hp = {.lr = lr, .beta1 = o->beta1, .beta2 = o->beta2, .eps = o->eps,
                           .weight_decay = o->weight_decay};
    if (qs_dist_zero(d)) { // update this rank's chunk, then share the weights
        if (!skip) {
            qs_adamw_step_range(&t->opt, &t->opt_layout, m->params, t->grads, &hp, lr, lo, hi);
            QS_TRY(qs_dist_all_gather(d, m->params, numel));
        }
    } else { // share the gradients, then the same full update everywhere
        QS_TRY(qs_dist_all_gather(d, t->grads, numel));
        if (!skip) qs_adamw_step_range(&t->opt, &t->opt_layout, m->params, t->grads, &hp, lr, 0, numel);
    }
    qs_trainer_step_done(t, ev, loss, lr, norm, skip); // bf16 copy, EMA model, step count, event
    return QS_OK;
}

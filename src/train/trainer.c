// trainer.c: plain language-model training loop (see trainer.h).
#include "train/trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/workspace.h"
#include "train/dist.h"

qs_train_opts qs_train_opts_default(void) {
    qs_train_opts o = {
        .steps = 1000,
        .batch = 32,
        .seq_len = 256,
        .grad_accum = 1,
        .lr = 5e-4f,
        .min_lr = 5e-5f,
        .warmup = 100,
        .beta1 = 0.9f,
        .beta2 = 0.95f,
        .eps = 1e-8f,
        .weight_decay = 0.1f,
        .clip = 1.0f,
        .eval_every = 100,
        .eval_batches = 20,
        .save_every = 500,
        .stop_after = 0,
    };
    o.qs.act_budget_mb = -1; // the default activation budget (plain LM uses it too)
    return o;
}

static int finite_nonneg(float x) { return isfinite(x) && x >= 0; }

qs_status qs_train_opts_validate(const qs_train_opts *o) {
    if (o->steps < 1) return qs_error(QS_ERR_ARG, "steps must be at least 1 (got %ld)", o->steps);
    if (o->batch < 1) return qs_error(QS_ERR_ARG, "batch must be at least 1 (got %d)", o->batch);
    if (o->seq_len < 2) return qs_error(QS_ERR_ARG, "seq_len must be at least 2 (got %d)", o->seq_len);
    if (o->grad_accum < 1 || o->grad_accum > (1 << 20))
        return qs_error(QS_ERR_ARG, "grad_accum must be in 1..%d (got %d)", 1 << 20, o->grad_accum);
    if (!(isfinite(o->lr) && o->lr > 0)) return qs_error(QS_ERR_ARG, "lr must be positive (got %g)", (double)o->lr);
    if (!finite_nonneg(o->min_lr)) return qs_error(QS_ERR_ARG, "min_lr must be >= 0 (got %g)", (double)o->min_lr);
    if (o->warmup < 0) return qs_error(QS_ERR_ARG, "warmup must be >= 0 (got %ld)", o->warmup);
    if (!(o->beta1 >= 0 && o->beta1 < 1)) return qs_error(QS_ERR_ARG, "beta1 must be in [0,1) (got %g)", (double)o->beta1);
    if (!(o->beta2 >= 0 && o->beta2 < 1)) return qs_error(QS_ERR_ARG, "beta2 must be in [0,1) (got %g)", (double)o->beta2);
    if (!(isfinite(o->eps) && o->eps > 0)) return qs_error(QS_ERR_ARG, "eps must be positive (got %g)", (double)o->eps);
    if (!finite_nonneg(o->weight_decay))
        return qs_error(QS_ERR_ARG, "weight_decay must be >= 0 (got %g)", (double)o->weight_decay);
    if (!finite_nonneg(o->clip)) return qs_error(QS_ERR_ARG, "clip must be >= 0 (got %g)", (double)o->clip);
    if (o->eval_every < 0) return qs_error(QS_ERR_ARG, "eval_every must be >= 0 (got %ld)", o->eval_every);
    if (o->eval_batches < 0) return qs_error(QS_ERR_ARG, "eval_batches must be >= 0 (got %d)", o->eval_batches);
    if (o->save_every < 0) return qs_error(QS_ERR_ARG, "save_every must be >= 0 (got %ld)", o->save_every);
    if (o->stop_after < 0) return qs_error(QS_ERR_ARG, "stop_after must be >= 0 (got %ld)", o->stop_after);
    return QS_OK;
}

static int is_quietstar_tensor(const char *name) {
    return !strcmp(name, "start_embedding") || !strcmp(name, "end_embedding") || !strncmp(name, "talk_head.", 10);
}

static qs_status check_ids(const qs_token_stream *s, int vocab, const char *which) {
    if (s->unmap) return QS_OK; // a mapped token directory: each batch is checked (check_batch), not the whole file
    for (size_t i = 0; i < s->n_tokens; i++)
        if (qs_stream_token(s, i) < 0 || qs_stream_token(s, i) >= vocab)
            return qs_error(QS_ERR_ARG,
                            "%s data holds token id %d but the model's vocabulary has %d entries "
                            "(tokenizer does not match the model?)",
                            which, qs_stream_token(s, i), vocab);
    return QS_OK;
}

// ---- the EMA copy of the weights (reward baseline, see trainer.h)
static qs_status ema_init(qs_trainer *t) {
    const qs_model *m = t->model;
    QS_TRY(qs_model_create(&t->ema, &m->cfg, m->has_quietstar));
    if (t->ema.layout.numel != m->layout.numel || qs_layout_hash(&t->ema.layout) != qs_layout_hash(&m->layout))
        return qs_error(QS_ERR_ARG, "EMA reward baseline: the model's parameter layout is not the standard one");
    QS_TRY(qs_workspace_create_ex(&t->ws_ref, &m->cfg, t->o.batch, t->o.seq_len, 1, 0));
    t->ref_nll = qs_malloc((size_t)t->o.batch * t->o.seq_len * sizeof(float), "reference NLL");
    return t->ref_nll ? QS_OK : QS_ERR_NOMEM;
}

// The EMA model's no-thought NLL of the current batch, handed to the step.
static qs_status ema_ref(qs_trainer *t) {
    if (!t->ema_ready) {
        memcpy(t->ema.params, t->model->params, t->model->layout.numel * sizeof(float));
        qs_model_touch(&t->ema);
        t->ema_ready = 1;
    }
    QS_TRY(qs_lm_token_nll(&t->ema, t->ws_ref, t->tokens, t->mask, t->o.batch, t->o.seq_len, t->ref_nll, NULL, NULL));
    return qs_qstar_set_ref_nll(t->qstep, t->ref_nll);
}

static void ema_update(qs_trainer *t) {
    const float d = t->o.qs.ema_decay;
    const long n = (long)t->model->layout.numel;
    float *e = t->ema.params;
    const float *p = t->model->params;
#pragma omp parallel for schedule(static)
    for (long k = 0; k < n; k++) e[k] = d * e[k] + (1.0f - d) * p[k];
    qs_model_touch(&t->ema);
}

qs_status qs_trainer_init(qs_trainer *t, qs_model *m, qs_dataset *ds, const qs_train_opts *o) {
    memset(t, 0, sizeof *t);
    t->saved_step = -1;
    QS_TRY(qs_train_opts_validate(o));
    if (o->seq_len > m->cfg.max_seq_len)
        return qs_error(QS_ERR_ARG, "seq_len %d exceeds the model's max_position_embeddings %d", o->seq_len,
                        m->cfg.max_seq_len);
    if (ds->train.n_tokens < 2)
        return qs_error(QS_ERR_ARG, "the training split has %zu tokens; need at least 2", ds->train.n_tokens);
    QS_TRY(check_ids(&ds->train, m->cfg.vocab_size, "training"));
    QS_TRY(check_ids(&ds->val, m->cfg.vocab_size, "held-out"));
    t->model = m;
    t->data = ds;
    t->o = *o;
    // AdamW only touches the language-model tensors in plain LM training
    // (Quiet-STaR tensors get no gradient, and weight decay must not shrink
    // them); Quiet-STaR training updates everything.
    t->opt_layout = m->layout;
    int n_lm = 0;
    while (n_lm < m->layout.n && !is_quietstar_tensor(m->layout.t[n_lm].name)) n_lm++;
    if (!o->quietstar) t->opt_layout.n = n_lm;
    if (o->quietstar && !m->has_quietstar)
        return qs_error(QS_ERR_ARG, "Quiet-STaR training needs the model's Quiet-STaR tensors (qs_qstar_init_tensors)");
    const size_t numel = m->layout.numel, BT = (size_t)o->batch * o->seq_len;
    qs_status st = qs_adamw_create(&t->opt, numel);
    if (st == QS_OK) {
        t->grads = qs_calloc(numel ? numel : 1, sizeof(float), "gradients");
        t->tokens = qs_malloc(BT * sizeof(int), "training batch");
        t->mask = qs_malloc(BT * sizeof(int), "training batch mask");
        if (!t->grads || !t->tokens || !t->mask) st = QS_ERR_NOMEM;
        // the balanced sum of the micro-batch gradients needs one buffer per level below the top
        for (int d = 0; st == QS_OK && (1 << d) < o->grad_accum && d < QS_GRAD_TREE_MAX; d++)
            if (!(t->gtree[d] = qs_calloc(numel ? numel : 1, sizeof(float), "micro-batch gradients")))
                st = QS_ERR_NOMEM;
    }
    if (o->quietstar) {
        qs_qstar_opts eo = o->qs; // eval mode (SPEC 5): one pass, one talk token, no policy loss
        eo.n_passes = 1, eo.n_talk = 1, eo.reward_baseline = QS_BASELINE_MEAN; // rewards unused in eval
        eo.forward_only = 1; // no layer inputs, activations or gradient buffers
        if (st == QS_OK) st = qs_qstar_create(&t->qstep, m, &o->qs, o->batch, o->seq_len);
        if (st == QS_OK) st = qs_qstar_create(&t->qeval, m, &eo, o->batch, o->seq_len);
        if (st == QS_OK && o->qs.reward_baseline == QS_BASELINE_EMA) st = ema_init(t);
    } else {
        if (st == QS_OK) st = qs_workspace_create_budget(&t->ws, &m->cfg, o->batch, o->seq_len, 1, qs_qstar_act_budget(&o->qs));
        if (st == QS_OK) st = qs_workspace_create_ex(&t->ws_eval, &m->cfg, o->batch, o->seq_len, 1, 0);
    }
    if (st != QS_OK) {
        qs_trainer_free(t);
        return st;
    }
    return QS_OK;
}

void qs_trainer_free(qs_trainer *t) {
    if (!t) return;
    qs_adamw_free(&t->opt);
    free(t->grads);
    for (int d = 0; d < QS_GRAD_TREE_MAX; d++) free(t->gtree[d]);
    free(t->tokens);
    free(t->mask);
    qs_workspace_free(t->ws);
    qs_workspace_free(t->ws_eval);
    qs_qstar_free(t->qstep);
    qs_qstar_free(t->qeval);
    if (t->ema.params) qs_model_free(&t->ema);
    qs_workspace_free(t->ws_ref);
    free(t->ref_nll);
    memset(t, 0, sizeof *t);
}

void qs_grads_add(float *dst, const float *src, size_t n) {
    const long nn = (long)n;
#pragma omp parallel for schedule(static) if (nn >= 32768)
    for (long i = 0; i < nn; i++) dst[i] += src[i];
}

// Draws micro-batch k's rows into t->tokens / t->mask (fill = 0: only the
// sampler's draws, for rows another rank computes): Quiet-STaR windows start
// at a document's BOS (right-padded), LM windows anywhere.
static qs_status draw_micro(qs_trainer *t, int fill) {
    const qs_train_opts *o = &t->o;
    int *tok = fill ? t->tokens : NULL;
    t->data_pos += (uint64_t)o->batch;
    if (t->qstep)
        return qs_stream_sample_docs(&t->data->train, &t->data->rng, o->batch, o->seq_len, tok, t->mask, NULL);
    return qs_stream_sample(&t->data->train, &t->data->rng, o->batch, o->seq_len, tok, t->mask, NULL);
}

// The gradient of the drawn micro-batch k, scaled by 1/K, into g (zeroed);
// Quiet-STaR thoughts come from a stream fixed by (seed, step, k).
static qs_status compute_micro(qs_trainer *t, int k, float *g, double *loss_sum) {
    const qs_train_opts *o = &t->o;
    const int K = o->grad_accum;
    float loss = 0;
    if (t->qstep) {
        qs_rng trng;
        qs_rng_seed(&trng, o->seed ^ ((uint64_t)t->step * 0x9E3779B97F4A7C15ull + (uint64_t)k));
        if (t->ws_ref) QS_TRY(ema_ref(t));
        QS_TRY(qs_qstar_step(t->qstep, t->model, t->tokens, t->mask, NULL, &trng, g, 1.0f / (float)K, &t->qout));
        loss = t->qout.loss;
    } else {
        QS_TRY(qs_lm_step(t->model, t->ws, t->tokens, t->mask, o->batch, o->seq_len, &loss, NULL, g,
                          1.0f / (float)K, NULL));
    }
    *loss_sum += loss;
    return QS_OK;
}

// Micro-batches [lo, hi) (drawn in order as the recursion reaches them) summed
// into dst (zeroed) as a balanced tree: left half into dst, right half into
// the scratch buffer of this depth, then one addition.
// The ids of the batch in t->tokens (a mapped corpus is not scanned up front).
static qs_status check_batch(const qs_trainer *t, const char *which) {
    const size_t n = (size_t)t->o.batch * (size_t)t->o.seq_len;
    const int vocab = t->model->cfg.vocab_size;
    for (size_t i = 0; i < n; i++)
        if (t->tokens[i] < 0 || t->tokens[i] >= vocab)
            return qs_error(QS_ERR_ARG,
                            "%s data holds token id %d but the model's vocabulary has %d entries "
                            "(prepared with another tokenizer?)",
                            which, t->tokens[i], vocab);
    return QS_OK;
}

static qs_status grad_tree(qs_trainer *t, int lo, int hi, float *dst, int depth, double *loss_sum) {
    if (hi - lo == 1) {
        QS_TRY(draw_micro(t, 1));
        if (t->data->train.unmap) QS_TRY(check_batch(t, "training"));
        return compute_micro(t, lo, dst, loss_sum);
    }
    const int mid = lo + (hi - lo) / 2;
    const size_t numel = t->model->layout.numel;
    QS_TRY(grad_tree(t, lo, mid, dst, depth + 1, loss_sum));
    float *tmp = t->gtree[depth];
    memset(tmp, 0, numel * sizeof(float));
    QS_TRY(grad_tree(t, mid, hi, tmp, depth + 1, loss_sum));
    qs_grads_add(dst, tmp, numel);
    return QS_OK;
}

qs_status qs_trainer_grad_sum(qs_trainer *t, int lo, int hi, double *loss_sum) {
    const int K = t->o.grad_accum;
    if (lo < 0 || hi > K || lo > hi) return qs_error(QS_ERR_ARG, "micro-batches [%d, %d) of %d", lo, hi, K);
    qs_zero(t->grads, t->model->layout.numel);
    *loss_sum = 0;
    for (int k = 0; k < lo; k++) QS_TRY(draw_micro(t, 0)); // others' rows: the same draws, no data read
    if (lo < hi) QS_TRY(grad_tree(t, lo, hi, t->grads, 0, loss_sum));
    for (int k = hi; k < K; k++) QS_TRY(draw_micro(t, 0));
    return QS_OK;
}

qs_status qs_trainer_step(qs_trainer *t, qs_train_event *ev) {
    if (t->dist) return qs_trainer_step_dist(t, ev); // data parallel over MPI ranks
    const qs_train_opts *o = &t->o;
    qs_model *m = t->model;
    const size_t numel = m->layout.numel;
    const int K = o->grad_accum;
    double loss_sum = 0;
    QS_TRY(qs_trainer_grad_sum(t, 0, K, &loss_sum));
    const float loss = (float)(loss_sum / K);
    const double norm_d = qs_grad_norm(t->grads, numel);
    const float norm = (float)norm_d;
    const float lr = qs_lr_schedule(t->step, o->lr, o->min_lr, o->warmup, o->steps);
    const int skip = !isfinite(loss) || !isfinite(norm);
    if (!skip) { // clipped inside the update (grad_scale)
        qs_adamw_hparams hp = {.lr = lr, .beta1 = o->beta1, .beta2 = o->beta2, .eps = o->eps,
                               .weight_decay = o->weight_decay, .grad_scale = qs_clip_factor(norm_d, o->clip)};
        qs_adamw_step(&t->opt, &t->opt_layout, m->params, t->grads, &hp, lr);
    }
    qs_trainer_step_done(t, ev, loss, lr, norm, skip);
    return QS_OK;
}

void qs_trainer_step_done(qs_trainer *t, qs_train_event *ev, float loss, float lr, float norm, int skip) {
    if (!skip) {
        qs_model_touch(t->model); // the bf16 copy of the weights follows the update
        if (t->ws_ref && t->ema_ready) ema_update(t);
    }
    t->step++;
    if (!ev) return;
    memset(ev, 0, sizeof *ev);
    ev->kind = QS_TEV_STEP;
    ev->step = t->step;
    ev->total = t->o.steps;
    ev->loss = loss;
    ev->lr = lr;
    ev->grad_norm = norm;
    ev->skipped = skip;
    // under MPI rank 0 computed the last micro-batch (qs_dist_block): its loss parts and thoughts
    if (t->qstep) ev->qs = &t->qout, ev->tokens = t->tokens;
}

// Quiet-STaR eval mode on one batch: sums of base and thought-mixed NLL over
// the tokens with a target. Thoughts are sampled from a fixed stream so that
// evaluations are comparable across steps.
static qs_status qs_eval_batch(qs_trainer *t, size_t first, double *base, double *think, long *n) {
    const int B = t->o.batch, T = t->o.seq_len;
    qs_rng r;
    qs_rng_seed(&r, t->o.seed ^ 0xe7a1ull ^ (uint64_t)first);
    qs_qstar_out out;
    QS_TRY(qs_qstar_step(t->qeval, t->model, t->tokens, t->mask, NULL, &r, NULL, 1.0f, &out));
    for (int b = 0; b < B; b++)
        for (int i = 0; i + 1 < T; i++) {
            const size_t k = (size_t)b * T + i;
            if (!t->mask[k] || !t->mask[k + 1]) continue;
            *base += out.nll_base[k];
            *think += out.nll_talk[k];
            (*n)++;
        }
    return QS_OK;
}

qs_status qs_trainer_eval(qs_trainer *t, double *nll, double *nll_think, long *n_tokens) {
    const qs_token_stream *val = &t->data->val;
    const int B = t->o.batch, T = t->o.seq_len;
    size_t limit = qs_stream_n_windows(val, T);
    if (t->o.eval_batches > 0 && limit > (size_t)t->o.eval_batches * (size_t)B)
        limit = (size_t)t->o.eval_batches * (size_t)B;
    double sum = 0, sum_think = 0;
    long count = 0;
    for (size_t first = 0; first < limit; first += (size_t)B) {
        // data parallel: batch j is evaluated by rank j mod N, the sums are added below
        if (t->dist && (int)((first / (size_t)B) % (size_t)qs_dist_size(t->dist)) != qs_dist_rank(t->dist))
            continue;
        int rows = 0;
        QS_TRY(qs_stream_eval_batch(val, first, B, T, t->tokens, t->mask, &rows));
        if (val->unmap) QS_TRY(check_batch(t, "held-out"));
        for (size_t b = limit - first; b < (size_t)B; b++) // windows past the limit are padding
            memset(t->mask + b * (size_t)T, 0, (size_t)T * sizeof(int));
        double s = 0;
        long n = 0;
        if (t->qeval) {
            QS_TRY(qs_eval_batch(t, first, &s, &sum_think, &n));
        } else {
            QS_TRY(qs_lm_nll(t->model, t->ws_eval, t->tokens, t->mask, B, T, &s, &n));
        }
        sum += s;
        count += n;
    }
    if (t->dist) {
        double v[3] = {sum, sum_think, (double)count};
        QS_TRY(qs_dist_sum_doubles(t->dist, v, 3));
        sum = v[0], sum_think = v[1], count = (long)v[2];
    }
    *nll = count > 0 ? sum / (double)count : NAN;
    if (nll_think) *nll_think = count > 0 && t->qeval ? sum_think / (double)count : NAN;
    *n_tokens = count;
    return QS_OK;
}

void qs_trainer_state(const qs_trainer *t, qs_train_state *s) {
    memset(s, 0, sizeof *s);
    s->step = t->step;
    s->adam_step = t->opt.step;
    s->rng = t->data->rng.s;
    s->data_pos = t->data_pos;
    s->data_tokens = (uint64_t)t->data->train.n_tokens;
    s->numel = t->model->layout.numel;
    s->layout_hash = qs_layout_hash(&t->model->layout);
    if (t->ws_ref && t->ema_ready) s->ema = t->ema.params; // the EMA baseline's copy: resumed exactly
}

qs_status qs_trainer_restore(qs_trainer *t, const char *ckpt_dir) {
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/%s", ckpt_dir, QS_TRAIN_STATE_FILE);
    if (n < 0 || (size_t)n >= sizeof path) return qs_error(QS_ERR_ARG, "path too long: %s", ckpt_dir);
    qs_train_state s;
    QS_TRY(qs_train_state_load(path, t->model, &s, &t->opt));
    QS_TRY(qs_checkpoint_verify(ckpt_dir, &s)); // weights and settings are the ones the state was saved with
    qs_model_touch(t->model);
    t->step = s.step;
    t->data_pos = s.data_pos;
    t->data->rng.s = s.rng;
    t->saved_step = s.step;
    t->warning[0] = 0;
    if (t->ws_ref) { // the EMA reward baseline: its copy of the weights, when the checkpoint has one
        qs_status es = qs_checkpoint_load_ema(ckpt_dir, t->ema.params, t->ema.layout.numel);
        if (es == QS_OK) {
            qs_model_touch(&t->ema);
            t->ema_ready = 1;
        } else if (es != QS_ERR_IO) {
            return es;
        } else {
            t->ema_ready = 0; // none saved: it starts again from the weights
            snprintf(t->warning, sizeof t->warning,
                     "%s holds no EMA copy of the weights (saved without --reward-baseline ema, or by an older "
                     "qstar): the EMA baseline starts again from the resumed weights",
                     ckpt_dir);
        }
    }
    if (s.data_tokens != (uint64_t)t->data->train.n_tokens)
        snprintf(t->warning, sizeof t->warning,
                 "the checkpoint was trained on a stream of %llu tokens, the data now has %zu "
                 "(different data or --val-frac?): continuing, but not as an exact resume",
                 (unsigned long long)s.data_tokens, t->data->train.n_tokens);
    return QS_OK;
}

// ---------------------------------------------------------------------------
// The loop.

static void emit(const qs_train_run_opts *ro, qs_train_event *ev) {
    if (ro && ro->cb) ro->cb(ro->cb_ctx, ev);
}

static qs_status do_eval(qs_trainer *t, const qs_train_run_opts *ro, double t0, double *nll) {
    long n = 0;
    double think = NAN;
    QS_TRY(qs_trainer_eval(t, nll, &think, &n));
    qs_train_event ev = {.kind = QS_TEV_EVAL, .step = t->step, .total = t->o.steps, .val_nll = *nll,
                         .val_nll_think = think, .val_tokens = n, .elapsed = qs_now() - t0};
    emit(ro, &ev);
    return QS_OK;
}

static int params_finite(const qs_model *m) {
    int ok = 1;
    const long n = (long)m->layout.numel;
    const float *p = m->params;
#pragma omp parallel for reduction(&& : ok) schedule(static)
    for (long i = 0; i < n; i++) ok = ok && isfinite(p[i]);
    return ok;
}

static qs_status do_save(qs_trainer *t, const qs_train_run_opts *ro, double t0, qs_train_summary *sum) {
    if (!ro || !ro->out_dir) return QS_OK;
    if (!params_finite(t->model))
        return qs_error(QS_ERR_NUMERIC, "step %ld: the model holds non-finite weights; checkpoint not saved",
                        t->step);
    qs_train_state s;
    qs_trainer_state(t, &s);
    qs_adamw full; // data parallel: rank 0 alone writes, with the moments of every rank (--zero 1)
    const qs_adamw *opt = &t->opt;
    QS_TRY(qs_trainer_dist_moments(t, &full, &opt));
    if (qs_dist_rank(t->dist) != 0) {
        t->saved_step = t->step;
        return QS_OK;
    }
    qs_status st = qs_checkpoint_save(ro->out_dir, t->model, ro->tokenizer_path, ro->quietstar_json, &s, opt,
                                      ro->args_json, sum->ckpt_dir, sizeof sum->ckpt_dir);
    qs_adamw_free(&full);
    QS_TRY(st);
    t->saved_step = t->step;
    qs_train_event ev = {.kind = QS_TEV_SAVE, .step = t->step, .total = t->o.steps,
                         .elapsed = qs_now() - t0, .message = sum->ckpt_dir};
    emit(ro, &ev);
    return QS_OK;
}

qs_status qs_trainer_run(qs_trainer *t, const qs_train_run_opts *ro, qs_train_summary *sum) {
    const qs_train_opts *o = &t->o;
    const double t0 = qs_now();
    memset(sum, 0, sizeof *sum);
    sum->nll_first = sum->nll_last = NAN;
    if (t->warning[0]) {
        qs_train_event ev = {.kind = QS_TEV_WARN, .step = t->step, .total = o->steps, .message = t->warning};
        emit(ro, &ev);
        t->warning[0] = 0;
    }
    double nll;
    QS_TRY(do_eval(t, ro, t0, &nll));
    sum->nll_first = sum->nll_last = nll;
    sum->step_first = sum->step_last = t->step;
    const double tokens_per_step = (double)o->batch * o->seq_len * o->grad_accum;
    double train_time = 0;
    int pending_save = 0;
    long last_eval = t->step;
    while (t->step < o->steps) {
        double ts = qs_now();
        qs_train_event ev;
        QS_TRY(qs_trainer_step(t, &ev));
        double now = qs_now();
        train_time += now - ts;
        sum->steps_run++;
        ev.elapsed = now - t0;
        ev.tok_per_s = train_time > 0 ? tokens_per_step * (double)sum->steps_run / train_time : 0;
        ev.eta = train_time / (double)sum->steps_run * (double)(o->steps - t->step);
        if (!ev.skipped && !params_finite(t->model)) {
            // finite gradients, but the update itself overflowed (absurd lr / weight decay): there is
            // no way back to the previous weights, so stop now; the last checkpoint stays as it was
            sum->seconds = qs_now() - t0;
            if (t->saved_step >= 0)
                return qs_error(QS_ERR_NUMERIC,
                                "step %ld: the update made the weights non-finite (learning rate or weight decay "
                                "too large?); stopped without saving (the last checkpoint, of step %ld, is kept)",
                                t->step, t->saved_step);
            return qs_error(QS_ERR_NUMERIC,
                            "step %ld: the update made the weights non-finite (learning rate or weight decay "
                            "too large?); stopped without saving",
                            t->step);
        }
        if (ev.skipped) {
            sum->skipped++;
            char msg[256];
            snprintf(msg, sizeof msg, "step %ld: non-finite %s (loss %g, grad norm %g): update skipped", t->step,
                     !isfinite(ev.loss) ? "loss" : "gradient norm", (double)ev.loss, (double)ev.grad_norm);
            qs_train_event w = {.kind = QS_TEV_WARN, .step = t->step, .total = o->steps, .elapsed = ev.elapsed,
                                .message = msg};
            emit(ro, &w);
        }
        emit(ro, &ev);
        int stop_req = ro && ro->stop && *ro->stop;
        if (t->dist) stop_req = qs_dist_any(t->dist, stop_req); // every rank stops at the same step
        const int stopping = stop_req || (o->stop_after > 0 && t->step >= o->stop_after);
        if (t->step >= o->steps || stopping) {
            sum->interrupted = t->step < o->steps;
            break;
        }
        if (o->eval_every > 0 && t->step % o->eval_every == 0) {
            QS_TRY(do_eval(t, ro, t0, &nll));
            sum->nll_last = nll;
            sum->step_last = t->step;
            last_eval = t->step;
        }
        if (o->save_every > 0 && t->step % o->save_every == 0) pending_save = 1;
        if (pending_save && !ev.skipped) { // a save due at a skipped step waits for the next good one
            QS_TRY(do_save(t, ro, t0, sum));
            pending_save = 0;
        }
    }
    if (!sum->interrupted && t->step != last_eval) {
        QS_TRY(do_eval(t, ro, t0, &nll));
        sum->nll_last = nll;
        sum->step_last = t->step;
    }
    if (t->step != t->saved_step) QS_TRY(do_save(t, ro, t0, sum));
    sum->seconds = qs_now() - t0;
    return QS_OK;
}

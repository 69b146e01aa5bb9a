// trainer.c: public API: training (qstar_trainer_*), the library code that
// `qstar finetune` / `qstar train` run: qs_run_setup, then qs_trainer_step /
// qs_trainer_run.
#include "api/api.h"
#include "io/fileutil.h"

#include <cJSON.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

QSTAR_API qstar_train_params qstar_train_params_default(void) {
    qstar_train_params p;
    memset(&p, 0, sizeof p);
    p.val_frac = 0.05;
    p.seed = 1337;
    p.steps = -1, p.batch = -1, p.seq_len = -1, p.grad_accum = -1;
    p.lr = -1, p.min_lr = -1, p.weight_decay = -1, p.beta1 = -1, p.beta2 = -1, p.eps = -1, p.clip = -1;
    p.warmup = -1, p.eval_every = -1, p.save_every = -1, p.eval_batches = -1;
    return p;
}

// train_args.json with the CLI's keys, so that `qstar train --resume` continues an API run.
static char *args_json(const qstar_train_params *p, const qs_train_opts *to) {
    cJSON *r = cJSON_CreateObject();
    if (!r) return NULL;
    if (p->data_path) cJSON_AddStringToObject(r, "data", p->data_path);
    if (p->data_field) cJSON_AddStringToObject(r, "field", p->data_field);
    const struct { const char *k; double v; } num[] = {
        {"steps", (double)to->steps}, {"batch", to->batch}, {"seq-len", to->seq_len},
        {"grad-accum", to->grad_accum}, {"warmup", (double)to->warmup}, {"eval-every", (double)to->eval_every},
        {"eval-batches", to->eval_batches}, {"save-every", (double)to->save_every}, {"seed", (double)p->seed},
        {"lr", to->lr}, {"min-lr", to->min_lr}, {"weight-decay", to->weight_decay}, {"beta1", to->beta1},
        {"beta2", to->beta2}, {"eps", to->eps}, {"clip", to->clip}, {"val-frac", p->val_frac}};
    for (size_t k = 0; k < sizeof num / sizeof num[0]; k++) cJSON_AddNumberToObject(r, num[k].k, num[k].v);
    if (p->n_threads > 0) cJSON_AddNumberToObject(r, "threads", p->n_threads);
    char *s = cJSON_Print(r);
    cJSON_Delete(r);
    return s;
}

// The caller's explicit Quiet-STaR settings, applied last (like the CLI's flags).
static int apply_params(void *ud, qs_qstar_opts *qo) {
    const qstar_train_params *p = ud;
    if (p->n_ahead > 0) qo->n_ahead = p->n_ahead;
    if (p->n_talk > 0) qo->n_talk = p->n_talk;
    if (p->n_passes > 0) qo->n_passes = p->n_passes;
    if (p->thought_init) snprintf(qo->thought_init, sizeof qo->thought_init, "%s", p->thought_init);
    if (p->policy_beta > 0) qo->policy_beta = p->policy_beta;
    return p->policy_beta > 0;
}

static qs_status create_run(qstar_trainer *t, const qstar_train_params *p, const char *ckpt, const char *run_dir);

static qs_status check_params(const qstar_train_params *p) {
    const int n_src = (p->model_path != NULL) + (p->config_path != NULL) + (p->resume_dir != NULL);
    if (n_src != 1) return qs_error(QS_ERR_ARG, "give exactly one of model_path, config_path or resume_dir");
    if (!p->data_path) return qs_error(QS_ERR_ARG, "no data_path");
    if (!(p->val_frac >= 0 && p->val_frac < 1)) return qs_error(QS_ERR_ARG, "val_frac %g must be in [0, 1)", p->val_frac);
    if (p->thought_init && strlen(p->thought_init) >= sizeof(((qs_qstar_opts *)0)->thought_init))
        return qs_error(QS_ERR_ARG, "thought_init is too long");
    return QS_OK;
}

// A resumed run takes the settings left at -1 (and data/field when NULL)
// from the checkpoint's train_args.json, as `qstar train --resume` does.
static qs_status resume_args(const char *ckpt, qstar_train_params *p, char **strings) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", ckpt, QS_TRAIN_ARGS_FILE);
    unsigned char *text = NULL;
    size_t n = 0;
    if (qs_read_file(path, &text, &n) != QS_OK) return QS_OK; // none: the defaults
    cJSON *r = cJSON_ParseWithLength((const char *)text, n);
    free(text);
    if (!cJSON_IsObject(r)) {
        cJSON_Delete(r);
        return qs_error(QS_ERR_FORMAT, "%s: not a JSON object", path);
    }
#define NUM(key, field) do { const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, key); \
        if (p->field < 0 && cJSON_IsNumber(v)) p->field = (__typeof__(p->field))v->valuedouble; } while (0)
    NUM("steps", steps); NUM("batch", batch); NUM("seq-len", seq_len); NUM("grad-accum", grad_accum);
    NUM("warmup", warmup); NUM("eval-every", eval_every); NUM("eval-batches", eval_batches);
    NUM("save-every", save_every); NUM("lr", lr); NUM("min-lr", min_lr); NUM("weight-decay", weight_decay);
    NUM("beta1", beta1); NUM("beta2", beta2); NUM("eps", eps); NUM("clip", clip);
#undef NUM
    // the run's own seed, held-out split and thread count (exact resume needs them)
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, "seed");
    if (cJSON_IsNumber(v) && v->valuedouble >= 0) p->seed = (uint64_t)v->valuedouble;
    v = cJSON_GetObjectItemCaseSensitive(r, "val-frac");
    if (cJSON_IsNumber(v)) p->val_frac = v->valuedouble;
    v = cJSON_GetObjectItemCaseSensitive(r, "threads");
    if (p->n_threads <= 0 && cJSON_IsNumber(v) && v->valuedouble >= 1 && v->valuedouble <= 4096) p->n_threads = (int)v->valuedouble;
    const char *keys[2] = {"data", "field"};
    const char **dst[2] = {&p->data_path, &p->data_field};
    for (int k = 0; k < 2; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, keys[k]);
        if (!*dst[k] && cJSON_IsString(v) && (strings[k] = strdup(v->valuestring))) *dst[k] = strings[k];
    }
    cJSON_Delete(r);
    return QS_OK;
}

static qs_status create(qstar_trainer *t, const qstar_train_params *params) {
    qstar_train_params pp = *params, *p = &pp;
    char ckpt[4096] = "", run_dir[4096] = "", *strings[2] = {NULL, NULL};
    if (p->resume_dir) {
        QS_TRY(qs_checkpoint_locate(p->resume_dir, ckpt, sizeof ckpt, run_dir, sizeof run_dir));
        QS_TRY(resume_args(ckpt, p, strings));
    }
    qs_status st = check_params(p);
    if (st == QS_OK) st = create_run(t, p, ckpt, run_dir);
    free(strings[0]);
    free(strings[1]);
    return st;
}

static qs_status create_run(qstar_trainer *t, const qstar_train_params *p, const char *ckpt, const char *run_dir) {
    qs_api_set_threads(p->n_threads);
    qs_train_opts to = qs_train_opts_default();
    to.steps = p->steps, to.batch = p->batch, to.seq_len = p->seq_len, to.grad_accum = p->grad_accum;
    to.lr = p->lr, to.min_lr = p->min_lr, to.weight_decay = p->weight_decay, to.beta1 = p->beta1;
    to.beta2 = p->beta2, to.eps = p->eps, to.clip = p->clip, to.warmup = p->warmup;
    to.eval_every = p->eval_every, to.save_every = p->save_every, to.eval_batches = p->eval_batches;
    to.stop_after = 0;
    qs_run_default_opts(&to, p->quietstar, p->config_path != NULL);
    QS_TRY(qs_train_opts_validate(&to));
    qs_run_spec s = {.model_path = p->model_path, .config_path = p->config_path,
                     .resume_ckpt = p->resume_dir ? ckpt : NULL, .tokenizer_path = p->tokenizer_path,
                     .data_path = p->data_path, .field = p->data_field, .val_frac = p->val_frac, .seed = p->seed,
                     .n_threads = p->n_threads, .to = to, .seq_given = p->seq_len > 0,
                     .quietstar = p->quietstar, .apply_qs = apply_params, .apply_ud = (void *)p};
    QS_TRY(qs_run_setup(&t->run, &s));
    const char *out = p->out_dir ? p->out_dir : p->resume_dir ? run_dir : NULL;
    if (out && !(t->out_dir = strdup(out))) return qs_error(QS_ERR_NOMEM, "out of memory");
    if (!(t->args_json = args_json(p, &t->run.tr.o))) return qs_error(QS_ERR_NOMEM, "out of memory");
    t->view.m = &t->run.m;
    t->view.tok = t->run.tok;
    t->view.qs_json = t->run.qs_json;
    t->view.qs_present = t->run.m.has_quietstar ? 7 : 0;
    snprintf(t->view.tok_path, sizeof t->view.tok_path, "%s", t->run.tok_path);
    t->cb = p->progress, t->cb_user = p->progress_user;
    return QS_OK;
}

QSTAR_API qs_status qstar_trainer_create(const qstar_train_params *params, qstar_trainer **out) {
    if (!out) return qs_error(QS_ERR_ARG, "qstar_trainer_create: NULL output handle");
    *out = NULL;
    if (!params) return qs_error(QS_ERR_ARG, "qstar_trainer_create: NULL params");
    qstar_trainer *t = calloc(1, sizeof *t);
    if (!t) return qs_error(QS_ERR_NOMEM, "out of memory for a trainer");
    qs_status st = create(t, params);
    if (st != QS_OK) {
        qstar_trainer_free(t);
        return st;
    }
    *out = t;
    return QS_OK;
}

QSTAR_API void qstar_trainer_free(qstar_trainer *t) {
    if (!t) return;
    qs_run_free(&t->run);
    free(t->out_dir);
    free(t->args_json);
    free(t);
}

static void to_progress(const qs_train_event *ev, qstar_progress *p) {
    memset(p, 0, sizeof *p);
    p->kind = (qstar_event_kind)ev->kind;
    p->step = ev->step, p->total = ev->total;
    p->loss = ev->loss, p->lr = ev->lr, p->grad_norm = ev->grad_norm, p->skipped = ev->skipped;
    p->val_nll = ev->kind == QS_TEV_EVAL ? ev->val_nll : NAN;
    p->val_nll_think = ev->kind == QS_TEV_EVAL ? ev->val_nll_think : NAN;
    if (ev->qs) {
        p->loss_lm = ev->qs->loss_lm, p->loss_base = ev->qs->loss_base, p->policy_loss = ev->qs->policy_loss;
        p->reward_mean = ev->qs->reward_mean, p->mix_mean = ev->qs->mix_mean;
    }
    p->message = ev->message;
}

QSTAR_API qs_status qstar_trainer_step(qstar_trainer *t, qstar_progress *out) {
    if (!t) return qs_error(QS_ERR_ARG, "qstar_trainer_step: NULL trainer");
    qs_train_event ev;
    QS_TRY(qs_trainer_step(&t->run.tr, &ev));
    qstar_progress p;
    to_progress(&ev, &p);
    if (out) *out = p;
    if (t->cb) t->cb(t->cb_user, &p);
    return QS_OK;
}

QSTAR_API qs_status qstar_trainer_eval(qstar_trainer *t, double *nll, double *nll_think) {
    if (!t || !nll) return qs_error(QS_ERR_ARG, "qstar_trainer_eval: NULL argument");
    long n = 0;
    double think = NAN;
    QS_TRY(qs_trainer_eval(&t->run.tr, nll, &think, &n));
    if (nll_think) *nll_think = think;
    return QS_OK;
}

QSTAR_API qs_status qstar_trainer_save(qstar_trainer *t, const char *dir, char *ckpt_dir, size_t cap) {
    if (!t) return qs_error(QS_ERR_ARG, "qstar_trainer_save: NULL trainer");
    if (!dir) dir = t->out_dir;
    if (!dir) return qs_error(QS_ERR_ARG, "qstar_trainer_save: no directory (and no out_dir in the params)");
    qs_train_state s;
    qs_trainer_state(&t->run.tr, &s);
    char where[4096];
    QS_TRY(qs_checkpoint_save(dir, &t->run.m, t->run.tok_path, t->run.qs_json, &s, &t->run.tr.opt, t->args_json,
                              where, sizeof where));
    t->run.tr.saved_step = t->run.tr.step;
    if (ckpt_dir && cap > 0) snprintf(ckpt_dir, cap, "%s", where);
    return QS_OK;
}

QSTAR_API qs_status qstar_trainer_resume(qstar_trainer *t, const char *dir) {
    if (!t || !dir) return qs_error(QS_ERR_ARG, "qstar_trainer_resume: NULL argument");
    char ckpt[4096], run_dir[4096];
    QS_TRY(qs_checkpoint_locate(dir, ckpt, sizeof ckpt, run_dir, sizeof run_dir));
    qs_model m;
    QS_TRY(qs_model_load(&m, ckpt, NULL));
    qs_status st = QS_OK;
    if (m.layout.numel != t->run.m.layout.numel || qs_layout_hash(&m.layout) != qs_layout_hash(&t->run.m.layout))
        st = qs_error(QS_ERR_ARG, "%s: the checkpoint's tensors differ from this trainer's model", ckpt);
    else
        memcpy(t->run.m.params, m.params, m.layout.numel * sizeof(float));
    qs_model_free(&m);
    QS_TRY(st);
    return qs_trainer_restore(&t->run.tr, ckpt);
}

typedef struct {
    qstar_trainer *t;
    volatile sig_atomic_t stop;
} run_ctx;

static void run_event(void *ctx, const qs_train_event *ev) {
    run_ctx *r = ctx;
    if (!r->t->cb) return;
    qstar_progress p;
    to_progress(ev, &p);
    if (r->t->cb(r->t->cb_user, &p)) r->stop = 1;
}

QSTAR_API qs_status qstar_trainer_run(qstar_trainer *t) {
    if (!t) return qs_error(QS_ERR_ARG, "qstar_trainer_run: NULL trainer");
    run_ctx rc = {t, 0};
    qs_train_run_opts ro = {.out_dir = t->out_dir, .tokenizer_path = t->run.tok_path,
                            .quietstar_json = t->run.qs_json, .args_json = t->args_json, .cb = run_event,
                            .cb_ctx = &rc, .stop = &rc.stop};
    qs_train_summary sum;
    return qs_trainer_run(&t->run.tr, &ro, &sum);
}

QSTAR_API long qstar_trainer_steps_done(const qstar_trainer *t) { return t ? t->run.tr.step : 0; }

QSTAR_API qstar_model *qstar_trainer_model(qstar_trainer *t) { return t ? &t->view : NULL; }

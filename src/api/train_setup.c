// train_setup.c: the settings of a training run, by name (qstar_train_params_set)
// and from qstar_train_params' fields, resolved the one way `qstar train` /
// `qstar finetune` resolve them: paper preset, mode defaults, a resumed run's
// train_args.json, checks (options.h holds the table).
#include "api/api.h"
#include "io/fileutil.h"
#include "api/options.h"
#include "api/train_setup.h"
#include "io/model_io.h"
#include "train/checkpoint.h"
#include "train/curriculum.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

QSTAR_API qs_status qstar_train_params_set(qstar_train_params *p, const char *name, const char *value) {
    if (!p || !name) return qs_error(QS_ERR_ARG, "qstar_train_params_set: NULL argument");
    const int k = qo_find(name);
    if (k < 0) return qs_error(QS_ERR_ARG, "unknown option '--%s'", name);
    if (k >= QO_FIRST_QSTAR && !p->quietstar)
        return qs_error(QS_ERR_ARG, "unknown option '--%s' (a Quiet-STaR option: qstar train, quietstar = 1)", name);
    if (!p->options && !(p->options = calloc(1, sizeof *p->options)))
        return qs_error(QS_ERR_NOMEM, "out of memory for the training options");
    return qo_parse(&p->options->v[k], k, value);
}

QSTAR_API qs_status qstar_thought_option_set(qstar_train_options **opts, const char *name, const char *value) {
    if (!opts || !name) return qs_error(QS_ERR_ARG, "qstar_thought_option_set: NULL argument");
    const int k = qo_find(name);
    if (k < QO_FIRST_THOUGHT) return qs_error(QS_ERR_ARG, "unknown option '--%s' (not a thought setting)", name);
    if (!*opts && !(*opts = calloc(1, sizeof **opts))) return qs_error(QS_ERR_NOMEM, "out of memory for the options");
    return qo_parse(&(*opts)->v[k], k, value);
}

QSTAR_API void qstar_train_options_free(qstar_train_options *opts) {
    if (!opts) return;
    qo_clear(opts->v);
    free(opts);
}

QSTAR_API int qstar_train_option_kind(const char *name) {
    const int k = qo_find(name);
    return k < 0 ? -1 : qo_table[k].type == QO_FLAG ? 0 : 1;
}

QSTAR_API qs_status qstar_train_params_get(const qstar_train_params *p, const char *name, char *buf, size_t cap) {
    const int k = qo_find(name);
    if (!p || k < 0) return qs_error(QS_ERR_ARG, "unknown option '--%s'", name ? name : "(null)");
    if (!buf || cap == 0) return qs_error(QS_ERR_ARG, "qstar_train_params_get: no buffer");
    buf[0] = 0;
    const qo_val *v = p->options ? &p->options->v[k] : NULL;
    if (!v || !v->set) return QS_OK;
    const qo_type t = qo_table[k].type;
    if (t == QO_STR || t == QO_ENUM) snprintf(buf, cap, "%s", v->s);
    else if (t == QO_FLT) snprintf(buf, cap, "%.17g", v->f);
    else snprintf(buf, cap, "%ld", v->i);
    return QS_OK;
}

QSTAR_API void qstar_train_params_free(qstar_train_params *p) {
    if (!p || !p->options) return;
    qo_clear(p->options->v);
    free(p->options);
    p->options = NULL;
}

// The struct's fields that hold a value (not the "unset" -1 / NULL / 0, and
// val_frac / seed when they differ from their defaults), as settings by name.
static qs_status from_fields(const qstar_train_params *p, qo_val *v) {
    const struct { int k; const char *s; } str[] = {
        {QO_MODEL, p->model_path}, {QO_CONFIG, p->config_path}, {QO_RESUME, p->resume_dir},
        {QO_TOKENIZER, p->tokenizer_path}, {QO_DATA, p->data_path}, {QO_FIELD, p->data_field},
        {QO_OUT, p->out_dir}, {QO_THOUGHT_INIT, p->quietstar ? p->thought_init : NULL}};
    for (size_t j = 0; j < sizeof str / sizeof str[0]; j++)
        if (str[j].s) QS_TRY(qo_set_str(&v[str[j].k], str[j].k, str[j].s));
    const struct { int k; double x; int given; } num[] = {
        {QO_VAL_FRAC, p->val_frac, p->val_frac != 0.05}, {QO_SEED, (double)p->seed, p->seed != 1337},
        {QO_THREADS, p->n_threads, p->n_threads > 0}, {QO_STEPS, (double)p->steps, p->steps >= 0},
        {QO_BATCH, p->batch, p->batch >= 0}, {QO_SEQ, p->seq_len, p->seq_len >= 0},
        {QO_ACCUM, p->grad_accum, p->grad_accum >= 0}, {QO_LR, p->lr, p->lr >= 0},
        {QO_MIN_LR, p->min_lr, p->min_lr >= 0}, {QO_WD, p->weight_decay, p->weight_decay >= 0},
        {QO_BETA1, p->beta1, p->beta1 >= 0}, {QO_BETA2, p->beta2, p->beta2 >= 0}, {QO_EPS, p->eps, p->eps >= 0},
        {QO_CLIP, p->clip, p->clip >= 0}, {QO_WARMUP, (double)p->warmup, p->warmup >= 0},
        {QO_EVAL_EVERY, (double)p->eval_every, p->eval_every >= 0},
        {QO_SAVE_EVERY, (double)p->save_every, p->save_every >= 0},
        {QO_EVAL_BATCHES, p->eval_batches, p->eval_batches >= 0},
        {QO_N_AHEAD, p->n_ahead, p->quietstar && p->n_ahead > 0}, {QO_N_TALK, p->n_talk, p->quietstar && p->n_talk > 0},
        {QO_N_PASSES, p->n_passes, p->quietstar && p->n_passes > 0},
        {QO_POLICY_BETA, p->policy_beta, p->quietstar && p->policy_beta > 0}};
    for (size_t j = 0; j < sizeof num / sizeof num[0]; j++)
        if (num[j].given) QS_TRY(qo_set_num(&v[num[j].k], num[j].k, num[j].x));
    return QS_OK;
}

qs_status qs_tset_values(const qstar_train_params *p, qo_val *v) {
    memset(v, 0, sizeof(qo_val) * QO_COUNT);
    qs_status st = from_fields(p, v);
    for (int k = 0; k < QO_COUNT && st == QS_OK && p->options; k++) {
        const qo_val *o = &p->options->v[k];
        if (!o->set) continue;
        free(v[k].s);
        v[k] = *o;
        v[k].s = NULL;
        if (o->s && !(v[k].s = strdup(o->s))) st = qs_error(QS_ERR_NOMEM, "out of memory");
    }
    if (st != QS_OK) qo_clear(v);
    return st;
}

// A resumed run: its checkpoint, checked, and the settings of its train_args.json not given.
static qs_status resume_settings(qo_val *v, qs_tset *r) {
    if (v[QO_MODEL].set || v[QO_CONFIG].set)
        return qs_error(QS_ERR_ARG, "--resume takes the model from the checkpoint; drop --model/--config");
    QS_TRY(qs_checkpoint_locate(v[QO_RESUME].s, r->ckpt, sizeof r->ckpt, r->run_dir, sizeof r->run_dir));
    QS_TRY(qs_checkpoint_check(r->ckpt)); // its weights and settings must be the ones its state was saved with
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", r->ckpt, QS_TRAIN_ARGS_FILE);
    unsigned char *text = NULL;
    size_t n = 0;
    FILE *f = fopen(path, "rb");
    if (f) {
        fclose(f);
        QS_TRY(qs_read_file(path, &text, &n));
        qs_status st = qo_load_args(v, (const char *)text, n, path);
        free(text);
        QS_TRY(st);
    }
    if (!v[QO_OUT].set) QS_TRY(qo_set_str(&v[QO_OUT], QO_OUT, r->run_dir));
    return QS_OK;
}

// Numeric settings and their defaults into r->to; the checks of the CLI.
static qs_status numbers(qo_val *v, int quietstar, qs_tset *r) {
    qs_train_opts to = qs_train_opts_default();
    if (v[QO_STEPS].set) to.steps = v[QO_STEPS].i;
    to.batch = (int)v[QO_BATCH].i;
    r->seq_given = v[QO_SEQ].set;
    if (v[QO_SEQ].set) to.seq_len = (int)v[QO_SEQ].i;
    if (v[QO_ACCUM].set) to.grad_accum = (int)v[QO_ACCUM].i;
    if (!(v[QO_LR].f > 0)) return qs_error(QS_ERR_ARG, "--lr must be positive");
    to.lr = (float)v[QO_LR].f;
    to.min_lr = v[QO_MIN_LR].set ? (float)v[QO_MIN_LR].f : 0.1f * to.lr;
    to.warmup = v[QO_WARMUP].set ? v[QO_WARMUP].i : QS_MIN(100, to.steps / 10);
    if (v[QO_WD].set) to.weight_decay = (float)v[QO_WD].f;
    if (v[QO_BETA1].set) to.beta1 = (float)v[QO_BETA1].f;
    if (v[QO_BETA2].set) to.beta2 = (float)v[QO_BETA2].f;
    if (v[QO_EPS].set) to.eps = (float)v[QO_EPS].f;
    if (v[QO_CLIP].set) to.clip = (float)v[QO_CLIP].f;
    if (v[QO_EVAL_EVERY].set) to.eval_every = v[QO_EVAL_EVERY].i;
    if (v[QO_EVAL_BATCHES].set) to.eval_batches = (int)v[QO_EVAL_BATCHES].i;
    if (v[QO_SAVE_EVERY].set) to.save_every = v[QO_SAVE_EVERY].i;
    if (v[QO_STOP_AFTER].set) to.stop_after = v[QO_STOP_AFTER].i;
    if (to.beta1 >= 1 || to.beta2 >= 1) return qs_error(QS_ERR_ARG, "--beta1 and --beta2 must be below 1");
    if (!(to.eps > 0)) return qs_error(QS_ERR_ARG, "--eps must be positive");
    if (v[QO_VAL_FRAC].f >= 1) return qs_error(QS_ERR_ARG, "--val-frac must be below 1 (nothing left to train on)");
    QS_TRY(qs_train_opts_validate(&to));
    if (quietstar && v[QO_N_TALK].set && to.seq_len < v[QO_N_TALK].i + 2) // before loading anything
        return qs_error(QS_ERR_ARG, "--seq-len %d is too short for --n-talk %ld (a window needs at least n_talk + 2 tokens)",
                        to.seq_len, v[QO_N_TALK].i);
    r->to = to;
    return QS_OK;
}

qs_status qs_tset_resolve(qo_val *v, int quietstar, qs_tset *r) {
    memset(r, 0, sizeof *r);
    if (v[QO_PRESET].set) qo_paper_preset(v); // optimisation settings given win over the preset
    if (quietstar && !v[QO_RESUME].set) qo_qstar_defaults(v);
    if (v[QO_RESUME].set) QS_TRY(resume_settings(v, r));
    else if (v[QO_MODEL].set == v[QO_CONFIG].set)
        return qs_error(QS_ERR_ARG, "give exactly one of --model PATH, --config FILE or --resume DIR (model_path, config_path, resume_dir)");
    if (!v[QO_DATA].set) return qs_error(QS_ERR_ARG, "--data FILE is required");
    qo_fallback_defaults(v);
    QS_TRY(numbers(v, quietstar, r));
    QS_TRY(qs_precision_parse(v[QO_PRECISION].set ? v[QO_PRECISION].s : "fp32", &r->prec));
    QS_TRY(qo_set_str(&v[QO_PRECISION], QO_PRECISION, qs_precision_name(r->prec))); // stored: a resume keeps it
    if (qs_matmul_set_backend(NULL) != QS_OK) return QS_ERR_ARG;
    return QS_OK;
}

// After the run is set up: the effective values, so that a resumed run
// continues with the same ones (train_args.json), the data path absolute.
void qs_tset_record(qo_val *v, const qs_train_opts *to, int threads) {
    const struct { int k; double x; } num[] = {
        {QO_STEPS, (double)to->steps}, {QO_BATCH, to->batch}, {QO_SEQ, to->seq_len}, {QO_ACCUM, to->grad_accum},
        {QO_LR, to->lr}, {QO_MIN_LR, to->min_lr}, {QO_WARMUP, (double)to->warmup}, {QO_WD, to->weight_decay},
        {QO_BETA1, to->beta1}, {QO_BETA2, to->beta2}, {QO_EPS, to->eps}, {QO_CLIP, to->clip},
        {QO_EVAL_EVERY, (double)to->eval_every}, {QO_EVAL_BATCHES, to->eval_batches},
        {QO_SAVE_EVERY, (double)to->save_every}, {QO_THREADS, threads}};
    for (size_t j = 0; j < sizeof num / sizeof num[0]; j++) {
        qo_val *x = &v[num[j].k];
        if (qo_table[num[j].k].type == QO_INT) x->i = (long)num[j].x;
        else x->f = num[j].x;
        x->set = 1;
    }
}

QSTAR_API qs_status qstar_curriculum_parse(const char *spec, qstar_curriculum_stage *stages, int cap, int *n) {
    if (!spec || !n || (cap > 0 && !stages)) return qs_error(QS_ERR_ARG, "qstar_curriculum_parse: NULL argument");
    qs_curriculum c;
    QS_TRY(qs_curriculum_parse(spec, strlen(spec), &c));
    if (c.n > cap) return qs_error(QS_ERR_ARG, "curriculum: %d stages, room for %d", c.n, cap);
    for (int k = 0; k < c.n; k++)
        stages[k] = (qstar_curriculum_stage){c.s[k].n_ahead, c.s[k].n_talk, c.s[k].lr, c.s[k].steps};
    *n = c.n;
    return QS_OK;
}

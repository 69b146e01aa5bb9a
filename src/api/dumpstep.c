// dumpstep.c: public API: `qstar dump-step` (qstar_dump_step): one Quiet-STaR
// step on a given batch with given thought tokens; losses, rewards, advantages,
// mixing weights and every parameter gradient written as safetensors, so that
// any independent implementation can be checked against it.
#include "api/api.h"
#include "api/options.h"
#include "io/outpath.h"
#include "io/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

QSTAR_API qstar_dump_step_params qstar_dump_step_params_default(void) {
    qstar_dump_step_params p;
    memset(&p, 0, sizeof p);
    p.seed = 1;
    p.thought_init_id = -2;
    return p;
}

static qs_status read_ints(const qs_safetensors *st, const char *name, int required, int ndim, int64_t *shape,
                           int **out) {
    *out = NULL;
    const qs_st_tensor *t = qs_st_find(st, name);
    if (!t) return required ? qs_error(QS_ERR_FORMAT, "%s: no tensor '%s'", st->path, name) : QS_OK;
    if (t->ndim != ndim) return qs_error(QS_ERR_FORMAT, "%s: '%s' has %d dims, expected %d", st->path, name, t->ndim, ndim);
    for (int k = 0; k < ndim; k++) {
        if (shape[k] >= 0 && t->shape[k] != shape[k])
            return qs_error(QS_ERR_FORMAT, "%s: '%s' dim %d is %lld, expected %lld", st->path, name, k,
                            (long long)t->shape[k], (long long)shape[k]);
        shape[k] = t->shape[k];
    }
    *out = malloc((t->numel ? t->numel : 1) * sizeof(int));
    if (!*out) return qs_error(QS_ERR_NOMEM, "out of memory reading %s", name);
    return qs_st_read_i32(st, t, *out);
}

// Initialises the Quiet-STaR tensors the model lacks (init token: the given
// id, else the thought_init rule with the tokenizer beside the model, else the mean row).
static qs_status init_missing(qs_model *m, const qs_load_info *info, const qs_qstar_opts *o, int init_id) {
    if (info->qs_present == 7) return QS_OK;
    int id = init_id;
    if (id == -2) {
        id = -1;
        qs_tokenizer *tok;
        if (info->tokenizer_path[0] && qs_tokenizer_open(&tok, info->tokenizer_path, m->cfg.vocab_size) == QS_OK) {
            id = qs_thought_init_id(tok, o->thought_init); // the library's one rule
            qs_tokenizer_free(tok);
        }
    }
    return qs_qstar_init_tensors(m, o, id, info->qs_present, 0x5eed);
}

typedef struct {
    qs_model m;
    qs_load_info info;
    qs_safetensors st;
    qs_qstar_opts o;
    int *ids, *mask, *thoughts;
    float *grads, *valid;
    qs_qstar *q;
    qs_st_writer w;
    int B, T, R, nT;
    char names[256][QS_NAME_MAX + 8];
} dump;

static qs_status add_results(dump *d, const qs_qstar_out *res, const float *scal) {
    const qs_qstar_opts *o = &d->o;
    const int R = d->R, T = d->T;
    int64_t one[1] = {1}, ntalk[1] = {o->n_talk}, rs[2] = {R, T - 1 - o->n_talk}, mw[3] = {o->n_talk, R, T},
            s3[3] = {R, d->nT, T};
    static const char *const sn[4] = {"loss", "loss_lm", "loss_base", "policy_loss"};
    for (int k = 0; k < 4; k++) QS_TRY(qs_st_writer_add(&d->w, sn[k], QS_DT_F32, 1, one, &scal[k]));
    QS_TRY(qs_st_writer_add(&d->w, "loss_talk", QS_DT_F32, 1, ntalk, res->loss_talk));
    QS_TRY(qs_st_writer_add(&d->w, "reward", QS_DT_F32, 2, rs, res->reward));
    QS_TRY(qs_st_writer_add(&d->w, "advantage", QS_DT_F32, 2, rs, res->advantage));
    QS_TRY(qs_st_writer_add(&d->w, "mix_weight", QS_DT_F32, 3, mw, res->mix_weight));
    if (d->nT > 0) QS_TRY(qs_st_writer_add(&d->w, "thought_ids", QS_DT_I32, 3, s3, res->thoughts));
    // mix_weight_valid: 1 where talk k at (r,i) has a real target x[r,i+k+1]
    if (!(d->valid = malloc(sizeof(float) * o->n_talk * R * T))) return qs_error(QS_ERR_NOMEM, "out of memory");
    for (int k = 0; k < o->n_talk; k++)
        for (int r = 0; r < R; r++)
            for (int i = 0; i < T; i++) {
                const int *mr = d->mask ? d->mask + (r / o->n_passes) * T : NULL;
                int j = i + k + 1;
                d->valid[((size_t)k * R + r) * T + i] = j < T && (!mr || (mr[i] && mr[j])) ? 1.0f : 0.0f;
            }
    QS_TRY(qs_st_writer_add(&d->w, "mix_weight_valid", QS_DT_F32, 3, mw, d->valid));
    if (d->m.layout.n > 256) return qs_error(QS_ERR_UNSUPPORTED, "more than 256 tensors");
    for (int k = 0; k < d->m.layout.n; k++) {
        const qs_tensor_info *t = &d->m.layout.t[k];
        snprintf(d->names[k], sizeof d->names[k], "grad.%s", t->name);
        QS_TRY(qs_st_writer_add(&d->w, d->names[k], QS_DT_F32, t->ndim, t->shape, d->grads + t->offset));
    }
    return QS_OK;
}

static qs_status run_dump(dump *d, const qstar_dump_step_params *p, qstar_dump_step_result *out) {
    QS_TRY(qs_model_load(&d->m, p->model_path, &d->info));
    QS_TRY(init_missing(&d->m, &d->info, &d->o, p->thought_init_id));
    QS_TRY(qs_st_open(&d->st, p->batch_path));
    int64_t s2[2] = {-1, -1};
    QS_TRY(read_ints(&d->st, "input_ids", 1, 2, s2, &d->ids));
    d->B = (int)s2[0], d->T = (int)s2[1], d->R = d->B * d->o.n_passes, d->nT = d->o.n_ahead - 3;
    int64_t sm[2] = {d->B, d->T}, s3[3] = {d->R, d->nT, d->T};
    QS_TRY(read_ints(&d->st, "attention_mask", 0, 2, sm, &d->mask));
    if (d->nT > 0) QS_TRY(read_ints(&d->st, "thought_ids", 0, 3, s3, &d->thoughts));
    QS_TRY(qs_qstar_create(&d->q, &d->m, &d->o, d->B, d->T));
    if (!(d->grads = calloc(d->m.layout.numel, sizeof(float)))) return qs_error(QS_ERR_NOMEM, "out of memory for gradients");
    qs_rng rng;
    qs_rng_seed(&rng, p->seed);
    qs_qstar_out res;
    QS_TRY(qs_qstar_step(d->q, &d->m, d->ids, d->mask, d->thoughts, &rng, d->grads, 1.0f, &res));
    const float scal[4] = {res.loss, res.loss_lm, res.loss_base, res.policy_loss};
    QS_TRY(add_results(d, &res, scal));
    QS_TRY(qs_st_writer_write(&d->w, p->out_path));
    *out = (qstar_dump_step_result){res.loss, res.loss_lm, res.loss_base, res.policy_loss,
                                    d->o.n_ahead, d->nT, d->o.n_talk, d->o.n_passes};
    return QS_OK;
}

QSTAR_API qs_status qstar_dump_step(const qstar_dump_step_params *p, qstar_dump_step_result *out) {
    if (!p || !out) return qs_error(QS_ERR_ARG, "qstar_dump_step: NULL argument");
    if (!p->model_path || !p->batch_path || !p->out_path)
        return qs_error(QS_ERR_ARG, "--model, --batch and --out are required");
    if (p->thought_init_id < -2) return qs_error(QS_ERR_ARG, "thought_init_id %d: -2, -1 or a token id", p->thought_init_id);
    dump *d = calloc(1, sizeof *d);
    if (!d) return qs_error(QS_ERR_NOMEM, "out of memory");
    qs_qstar_opts_default(&d->o);
    if (p->thought) qo_apply_thought(p->thought->v, &d->o);
    qs_status st = qs_qstar_opts_validate(&d->o, 0);
    if (st == QS_OK) st = qs_out_check(p->out_path, QS_OUT_FILE, p->force); // before any work
    if (st == QS_OK) {
        st = run_dump(d, p, out);
        if (st == QS_ERR_ARG) st = QS_ERR_FORMAT; // QS_ERR_ARG: the settings given alone
    }
    qs_st_writer_free(&d->w);
    qs_qstar_free(d->q);
    free(d->grads), free(d->valid), free(d->ids), free(d->mask), free(d->thoughts);
    qs_st_close(&d->st);
    qs_load_info_free(&d->info);
    if (d->m.params) qs_model_free(&d->m);
    free(d);
    return st;
}

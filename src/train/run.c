// run.c: setting a training run up (see run.h). This is the body that
// `qstar finetune` / `qstar train` ran in tools/ before; both the CLI and the
// public API (qstar_trainer_create) call it.
#include "train/run.h"
#include "quietstar/evaltask.h"
#include "data/shards.h"
#include "io/fileutil.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void note(const qs_run_spec *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(const qs_run_spec *s, const char *fmt, ...) {
    if (!s->note) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    s->note(s->note_ud, buf);
}

void qs_run_free(qs_run *r) {
    if (!r) return;
    if (r->have_trainer) qs_trainer_free(&r->tr);
    qs_dataset_free(&r->ds);
    qs_tokenizer_free(r->tok);
    free(r->qs_json);
    qs_load_info_free(&r->info);
    qs_model_free(&r->m);
    memset(r, 0, sizeof *r);
}

// The model: random init from a config.json, or loaded (model file or checkpoint).
static qs_status load_model(qs_run *r, const qs_run_spec *s) {
    if (s->config_path) {
        qs_config c;
        QS_TRY(qs_hf_config_read(&c, s->config_path, &r->qs_json));
        if (qs_model_create(&r->m, &c, 0) != QS_OK) return qs_error_prefix(QS_ERR_ARG, "%s", s->config_path);
        qs_model_init_random(&r->m, s->seed);
        unsigned char *ct = NULL; // checkpoints keep the config's keys (qs_model.src_config)
        size_t ctn = 0;
        if (qs_read_file(s->config_path, &ct, &ctn) == QS_OK && (r->m.src_config = realloc(ct, ctn + 1)))
            r->m.src_config[ctn] = 0;
        else
            free(ct);
    } else {
        const char *src = s->resume_ckpt ? s->resume_ckpt : s->model_path;
        if (!src) return qs_error(QS_ERR_ARG, "no model: give a model path, a config.json or a run to resume");
        QS_TRY(qs_model_load(&r->m, src, &r->info));
        r->qs_json = r->info.quietstar_json;
        r->info.quietstar_json = NULL;
    }
    const char *tp = s->tokenizer_path ? s->tokenizer_path : r->info.tokenizer_path[0] ? r->info.tokenizer_path : NULL;
    if (!tp) {
        r->usage_error = 1;
        return qs_error(QS_ERR_ARG, "no tokenizer: give --tokenizer FILE (none found beside the model)");
    }
    snprintf(r->tok_path, sizeof r->tok_path, "%s", tp);
    if (s->dtype) {
        int dt = qs_save_dtype_parse(s->dtype);
        if (dt < 0) {
            r->usage_error = 1;
            return qs_error(QS_ERR_ARG, "--dtype expects bf16, f16 or f32, got '%s'", s->dtype);
        }
        r->m.save_dtype = dt;
    }
    r->m.save_master = r->m.save_dtype != 0; // 16-bit checkpoint weights: keep exact fp32 ones for --resume
    return QS_OK;
}

// Quiet-STaR settings: SPEC defaults < the model's (checkpoint's) quietstar
// block < the paper preset < the caller's settings; then the tensors the model
// lacks are initialised (learned ones are never re-initialised).
static qs_status setup_quietstar(qs_run *r, const qs_run_spec *s, qs_train_opts *to) {
    qs_qstar_opts *qo = &r->qo;
    qs_qstar_opts_default(qo);
    if (r->qs_json) QS_TRY(qs_qstar_opts_from_json(r->qs_json, qo));
    // policy_beta is a property of the run, not of the model: a fresh run uses the
    // small-model default (QS_SMALL_POLICY_BETA) unless the paper preset or the
    // caller says otherwise; a resumed run keeps the checkpoint's own value.
    const char *beta_src = s->resume_ckpt ? "from the checkpoint" : "small-model default";
    if (!s->resume_ckpt) qo->policy_beta = QS_SMALL_POLICY_BETA;
    if (s->preset_paper) {
        qo->n_ahead = 12, qo->n_talk = 4, qo->n_passes = 2, qo->policy_beta = 1e6f;
        beta_src = "--preset paper";
    }
    if (s->apply_qs && s->apply_qs(s->apply_ud, qo)) beta_src = "--policy-beta";
    if (qs_qstar_opts_validate(qo, to->seq_len) != QS_OK) {
        r->usage_error = 1;
        return QS_ERR_ARG;
    }
    qo->n_banned = qs_task_meta_tokens(r->tok, qo->banned); // meta tokens a vocabulary may hold are never sampled
    const int present = r->info.qs_present;
    if (present != 7) {
        const int init_id = qs_thought_init_id(r->tok, qo->thought_init);
        QS_TRY(qs_qstar_init_tensors(&r->m, qo, init_id, present, s->seed));
        if (qo->thought_init_end[0] && !(present & 2)) // a separate end-of-thought init
            QS_TRY(qs_qstar_init_end(&r->m, qo, qs_thought_init_id(r->tok, qo->thought_init_end)));
        const char *pc = init_id >= 0 ? qs_tokenizer_raw_piece(r->tok, init_id) : NULL;
        note(s, "quietstar: initialised %s%s%s (thought init token %d \"%s\")", present & 1 ? "" : "start ",
             present & 2 ? "" : "end ", present & 4 ? "" : "talk head", init_id, pc ? pc : "mean row");
    }
    free(r->qs_json);
    r->qs_json = NULL;
    QS_TRY(qs_qstar_opts_to_json(qo, &r->qs_json));
    to->quietstar = 1;
    to->qs = *qo;
    to->seed = s->seed;
    note(s, "quietstar: n_ahead %d (n_thought %d), n_talk %d, n_passes %d, beta %g (%s), tau_rl %g, mixing %s",
         qo->n_ahead, qo->n_ahead - 3, qo->n_talk, qo->n_passes, (double)qo->policy_beta, beta_src,
         (double)qo->tau_rl, qo->mixing == QS_MIX_SIGMOID ? "sigmoid" : "linear");
    return QS_OK;
}

// The memory and compute plan of this process (train/plan.h).
static qs_status plan_run(qs_run *r, const qs_run_spec *s, const qs_train_opts *to) {
    const int mapped = r->ds.train.unmap != NULL; // token shards: mapped, not held
    const qs_plan_spec ps = {.cfg = &r->m.cfg, .numel = r->m.layout.numel, .quietstar = s->quietstar,
                             .qs = &to->qs, .batch = to->batch, .seq_len = to->seq_len, .grad_accum = to->grad_accum,
                             .act_budget_mb = to->qs.act_budget_mb, .precision = s->precision,
                             .ranks = s->plan_ranks > 0 ? s->plan_ranks : 1, .zero = s->plan_zero,
                             .data_tokens = mapped ? 0 : r->ds.train.n_tokens + r->ds.val.n_tokens};
    return qs_train_plan(&ps, &r->plan);
}

static qs_status setup(qs_run *r, const qs_run_spec *s) {
    qs_train_opts to = s->to;
    QS_TRY(load_model(r, s));
    if (!s->seq_given && to.seq_len > r->m.cfg.max_seq_len) to.seq_len = r->m.cfg.max_seq_len; // default fits the model
    if (to.seq_len > r->m.cfg.max_seq_len) {
        r->usage_error = 1;
        return qs_error(QS_ERR_ARG, "--seq-len %d exceeds the model's max_position_embeddings %d", to.seq_len,
                        r->m.cfg.max_seq_len);
    }
    QS_TRY(qs_tokenizer_open(&r->tok, r->tok_path, r->m.cfg.vocab_size));
    if (s->quietstar) QS_TRY(setup_quietstar(r, s, &to));
    qs_dataset_opts dopt = qs_dataset_opts_default();
    dopt.field = s->field;
    dopt.val_frac = s->val_frac;
    dopt.seed = s->seed;
    dopt.n_threads = s->n_threads;
    const double t_load = qs_now();
    if (qs_shards_is_dir(s->data_path)) // a `qstar prepare` directory: mapped, split fixed at prepare
        QS_TRY(qs_shards_load(&r->ds, s->data_path, s->seed));
    else
        QS_TRY(qs_dataset_load(&r->ds, s->data_path, r->tok, &dopt));
    note(s, "data: %s: %zu documents, %zu training / %zu held-out tokens (%.1f s)", s->data_path,
         qs_dataset_n_docs(&r->ds), r->ds.train.n_tokens, r->ds.val.n_tokens, qs_now() - t_load);
    if (s->act_budget_given) to.qs.act_budget_mb = s->act_budget_mb;
    QS_TRY(plan_run(r, s, &to));
    if (s->plan_only) { // the settings as the trainer would hold them, nothing allocated
        r->tr.o = to;
        return QS_OK;
    }
    QS_TRY(qs_plan_check(&r->plan, qs_mem_available()));
    QS_TRY(qs_trainer_init(&r->tr, &r->m, &r->ds, &to));
    r->have_trainer = 1;
    if (s->resume_ckpt) {
        QS_TRY(qs_trainer_restore(&r->tr, s->resume_ckpt));
        note(s, "resuming %s at step %ld of %ld", s->resume_ckpt, r->tr.step, to.steps);
    }
    QS_TRY(qs_trainer_set_dist(&r->tr, s->dist)); // after the restore: --zero 1 keeps a chunk of the moments
    return QS_OK;
}

qs_status qs_run_setup(qs_run *r, const qs_run_spec *s) {
    memset(r, 0, sizeof *r);
    qs_status st = setup(r, s);
    if (st != QS_OK) {
        const int usage = r->usage_error;
        qs_run_free(r);
        r->usage_error = usage;
    }
    return st;
}

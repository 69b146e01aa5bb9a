// trainer.c: public API: training (qstar_trainer_*), the library code that
// `qstar finetune` / `qstar train` run: qs_run_setup, then qs_trainer_step /
// qs_trainer_run.
#include "api/api.h"
#include "api/train_ext.h"
#include "api/train_setup.h"
#include "io/fileutil.h"
#include "io/model_io.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

static qs_dist *g_dist; // the process's MPI context while a trainer uses it (or after a failure)

QSTAR_API int qstar_mpi_available(void) { return qs_dist_built_with_mpi(); }
QSTAR_API void qstar_mpi_abort(int code) { qs_dist_abort(g_dist, code); }

static void to_progress(const qs_train_event *ev, qstar_progress *p);

// Sends an event to the log and the caller (rank 0 alone); 1 if the caller asks to stop.
static int deliver(qstar_trainer *t, const qs_train_event *ev) {
    struct qs_train_ext *x = t->ext;
    if (x && x->rank != 0) return 0;
    if (x && qs_tlog_event(x, t->run.tok, ev) < 0) {
        char msg[4400];
        snprintf(msg, sizeof msg, "cannot write the log %s", x->log_path);
        qs_train_event w = {.kind = QS_TEV_WARN, .step = ev->step, .total = ev->total, .message = msg};
        deliver(t, &w);
    }
    if (!t->cb) return 0;
    qstar_progress p;
    to_progress(ev, &p);
    return t->cb(t->cb_user, &p) != 0;
}

static void note(void *ud, const char *msg) {
    qstar_trainer *t = ud;
    qs_train_event ev = {.kind = (qs_train_event_kind)QSTAR_EV_NOTE, .message = msg};
    deliver(t, &ev);
}

static void notef(qstar_trainer *t, int kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void notef(qstar_trainer *t, int kind, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    qs_train_event ev = {.kind = (qs_train_event_kind)kind, .message = buf};
    deliver(t, &ev);
}

// The caller's explicit Quiet-STaR settings, applied over the checkpoint's
// (last, by the run setup); returns 1 if policy_beta was given.
static int apply_thought_settings(void *ud, qs_qstar_opts *qo) {
    return qo_apply_thought(((struct qs_train_ext *)ud)->v, qo);
}

// MPI ranks (not for --plan, which only plans) and the threads of this process.
static qs_status start_ranks(qstar_trainer *t) {
    struct qs_train_ext *x = t->ext;
    const qo_val *v = x->v;
    x->n_ranks = 1;
    if (!v[QO_PLAN].set) {
        QS_TRY(qs_dist_init(&x->dist, (int)v[QO_ZERO].i));
        g_dist = x->dist;
    }
    x->rank = qs_dist_rank(x->dist), x->n_ranks = qs_dist_size(x->dist);
    if (v[QO_ZERO].i && x->n_ranks == 1 && !v[QO_PLAN].set)
        notef(t, QSTAR_EV_WARN, "--zero 1 in one process: nothing to shard");
    if (v[QO_THREADS].set) {
        qs_api_set_threads((int)v[QO_THREADS].i);
    } else if (x->n_ranks > 1) { // the cores are shared by the ranks of this machine
        const char *ls = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
        const int local = ls && atoi(ls) > 0 ? atoi(ls) : x->n_ranks;
        qs_api_set_threads(QS_MAX(1, omp_get_num_procs() / local));
    }
    return QS_OK;
}

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int same_dir(const char *a, const char *b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

// Refuses to clobber another run (or a model), checks that the output directory
// is writable and locks it: all before any work. Resuming into the run's own
// directory is not clobbering. Under mpirun rank 0 alone does this.
static qs_status claim_out(qstar_trainer *t, const qs_tset *r) {
    struct qs_train_ext *x = t->ext;
    const qo_val *v = x->v;
    const char *out = v[QO_OUT].s;
    if (!v[QO_OUT].set || x->rank != 0 || v[QO_PLAN].set) return QS_OK; // --plan writes nothing
    const int force = v[QO_FORCE].set, resume = v[QO_RESUME].set;
    const int same_run = resume && is_dir(out) && same_dir(out, r->run_dir);
    QS_TRY(qs_out_check(out, QS_OUT_RUN_DIR, force || same_run));
    if (v[QO_LOG].set) QS_TRY(qs_out_check(v[QO_LOG].s, QS_OUT_FILE, force || resume));
    x->out_created = !is_dir(out);
    QS_TRY(qs_mkdir_p(out));
    return qs_out_lock_acquire(&x->lock, out);
}

// The plan of a data-parallel run: communication per optimizer step, 2 x 4
// bytes x params x (N-1)/N per rank (reduce-scatter + all-gather, dist.h).
static void make_plan(qstar_trainer *t) {
    struct qs_train_ext *x = t->ext;
    const qs_train_opts *to = &t->run.tr.o;
    const size_t numel = t->run.m.layout.numel;
    const int N = x->v[QO_RANKS].set ? (int)x->v[QO_RANKS].i : x->n_ranks;
    const double gbit = x->v[QO_BANDWIDTH].set ? x->v[QO_BANDWIDTH].f : 10, bytes = qs_dist_step_bytes(numel, N);
    const int per_rank = (to->grad_accum + N - 1) / N;
    snprintf(x->plan, sizeof x->plan,
             "data parallel: %d rank%s; micro-batches per step %d (at most %d per rank)%s%s\n"
             "all-reduce per step: %zu fp32 gradients = %.1f MB; each rank sends and receives %.1f MB "
             "(reduce-scatter + all-gather), about %.1f ms at %g Gbit/s\n",
             N, N == 1 ? "" : "s", to->grad_accum, per_rank,
             to->grad_accum % N ? "; --grad-accum not a multiple of the ranks: some idle" : "",
             x->v[QO_ZERO].i ? "; --zero 1: AdamW moments sharded" : "", numel, 4.0 * (double)numel / 1e6, bytes / 1e6,
             bytes * 8.0 / (gbit * 1e9) * 1e3, gbit);
    const size_t used = strlen(x->plan);
    snprintf(x->plan + used, sizeof x->plan - used, "memory of one process, %s, batch %d x %d tokens%s:\n",
             qs_precision_name(t->run.m.precision), to->batch, to->seq_len,
             x->quietstar ? ", every thought pass" : "");
    const size_t used2 = strlen(x->plan);
    qs_plan_format(&t->run.plan, x->plan + used2, sizeof x->plan - used2);
    const size_t avail = qs_mem_available();
    if (qs_plan_check(&t->run.plan, avail) != QS_OK) {
        const size_t used3 = strlen(x->plan);
        snprintf(x->plan + used3, sizeof x->plan - used3, "DOES NOT FIT: %s\n", qstar_last_error());
    }
}

// The run's header lines (as notes) and, under mpirun, its plan.
static void header(qstar_trainer *t) {
    const qs_train_opts *to = &t->run.tr.o;
    const struct qs_train_ext *x = t->ext;
    notef(t, QSTAR_EV_NOTE, "model: %zu parameters; %ld steps x %d x %d x %d tokens, lr %g -> %g, warmup %ld, %d threads",
          t->run.m.layout.numel, to->steps, to->batch, to->seq_len, to->grad_accum, (double)to->lr, (double)to->min_lr,
          to->warmup, omp_get_max_threads());
    notef(t, QSTAR_EV_NOTE, "matmul: %s, precision %s", qs_matmul_backend(), qs_precision_name(t->run.m.precision));
    {
        const qs_plan *pl = &t->run.plan;
        const int big = qs_plan_largest(pl);
        char a[32], b[32];
        notef(t, QSTAR_EV_NOTE, "memory plan: peak %s (largest: %s, %s; activations of %d of %d layers kept); "
              "%.3g FLOPs per step; see --plan", qs_fmt_bytes((double)pl->total, a, sizeof a),
              big >= 0 ? pl->term[big].name : "-", qs_fmt_bytes(big >= 0 ? (double)pl->term[big].bytes : 0, b, sizeof b),
              pl->layers_kept, pl->layers_total, pl->flops);
    }
    notef(t, QSTAR_EV_NOTE, "optimizer: AdamW betas (%g, %g), eps %g, weight decay %g, grad-norm clip %g%s",
          (double)to->beta1, (double)to->beta2, (double)to->eps, (double)to->weight_decay, (double)to->clip,
          x->v[QO_PRESET].set ? " (--preset paper: the released run)" : "");
    if (x->n_ranks > 1 && !x->v[QO_PLAN].set) {
        char plan[sizeof x->plan];
        snprintf(plan, sizeof plan, "%s", x->plan);
        plan[strcspn(plan, "\n")] = 0; // one note per line
        notef(t, QSTAR_EV_NOTE, "%s", plan);
        snprintf(plan, sizeof plan, "%s", strchr(x->plan, '\n') + 1);
        plan[strcspn(plan, "\n")] = 0;
        notef(t, QSTAR_EV_NOTE, "%s", plan);
    }
}

// The JSONL log (rank 0): out_dir/log.jsonl or "log"; a resumed run appends
// to it after dropping the records past its checkpoint.
static qs_status open_log(qstar_trainer *t) {
    struct qs_train_ext *x = t->ext;
    const qo_val *v = x->v;
    if (x->rank != 0 || v[QO_PLAN].set || (!v[QO_LOG].set && !v[QO_OUT].set)) return QS_OK;
    if (v[QO_LOG].set) snprintf(x->log_path, sizeof x->log_path, "%s", v[QO_LOG].s);
    else snprintf(x->log_path, sizeof x->log_path, "%s/log.jsonl", v[QO_OUT].s);
    const int resume = v[QO_RESUME].set;
    if (resume) {
        size_t dropped = 0;
        QS_TRY(qs_tlog_trim(x->log_path, t->run.tr.step, &dropped));
        if (dropped)
            notef(t, QSTAR_EV_NOTE, "log: %s: dropped %zu record%s written after the checkpoint (step %ld) or cut short",
                  x->log_path, dropped, dropped == 1 ? "" : "s", t->run.tr.step);
    }
    if (!(x->log = fopen(x->log_path, resume ? "a" : "w")))
        return qs_error(QS_ERR_IO, "%s: cannot open the log for writing: %s", x->log_path, strerror(errno));
    return QS_OK;
}

// An error that is not about the settings given is never QS_ERR_ARG (which
// callers such as the CLI report as a usage error).
static qs_status not_usage(qs_status st) { return st == QS_ERR_ARG ? QS_ERR_FORMAT : st; }

static qs_status setup_run(qstar_trainer *t, const qs_tset *r) {
    struct qs_train_ext *x = t->ext;
    qo_val *v = x->v;
    qs_run_spec s = {.model_path = v[QO_MODEL].s, .config_path = v[QO_CONFIG].s,
                     .resume_ckpt = v[QO_RESUME].set ? r->ckpt : NULL, .tokenizer_path = v[QO_TOKENIZER].s,
                     .data_path = v[QO_DATA].s, .dtype = v[QO_DTYPE].s, .field = v[QO_FIELD].s,
                     .val_frac = v[QO_VAL_FRAC].f, .seed = (uint64_t)v[QO_SEED].i,
                     .n_threads = v[QO_THREADS].set ? (int)v[QO_THREADS].i : 0, .to = r->to,
                     .seq_given = r->seq_given, .quietstar = x->quietstar, .preset_paper = v[QO_PRESET].set,
                     .apply_qs = apply_thought_settings, .apply_ud = x, .note = note, .note_ud = t, .dist = x->dist,
                     .act_budget_given = v[QO_ACT_BUDGET].set, .act_budget_mb = v[QO_ACT_BUDGET].f,
                     .precision = r->prec, .plan_only = v[QO_PLAN].set,
                     .plan_ranks = v[QO_RANKS].set ? (int)v[QO_RANKS].i : x->n_ranks, .plan_zero = (int)v[QO_ZERO].i};
    qs_status st = qs_run_setup(&t->run, &s);
    if (st != QS_OK) return t->run.usage_error ? st : not_usage(st);
    t->run.m.precision = r->prec; // a runtime option: the bf16 weight copy is made on first use
    x->show_thoughts = v[QO_SHOW_THOUGHTS].set ? (int)v[QO_SHOW_THOUGHTS].i : 2;
    x->n_passes = t->run.qo.n_passes > 0 ? t->run.qo.n_passes : 1;
    qs_tset_record(v, &t->run.tr.o, omp_get_max_threads());
    return QS_OK;
}

static qs_status create(qstar_trainer *t, const qstar_train_params *p) {
    struct qs_train_ext *x = calloc(1, sizeof *x);
    if (!(t->ext = x)) return qs_error(QS_ERR_NOMEM, "out of memory for a trainer");
    x->quietstar = p->quietstar != 0, x->n_ranks = 1;
    t->cb = p->progress, t->cb_user = p->progress_user;
    QS_TRY(qs_tset_values(p, x->v));
    qs_tset *r = calloc(1, sizeof *r);
    if (!r) return qs_error(QS_ERR_NOMEM, "out of memory");
    qs_status st = qs_tset_resolve(x->v, x->quietstar, r);
    if (st == QS_OK) st = start_ranks(t);
    if (st == QS_OK && x->v[QO_DATA].set) { // stored absolute, so that a resume works from elsewhere
        char abs[PATH_MAX];
        if (realpath(x->v[QO_DATA].s, abs)) st = qo_set_str(&x->v[QO_DATA], QO_DATA, abs);
    }
    if (st == QS_OK) st = claim_out(t, r);
    if (st == QS_OK) st = setup_run(t, r);
    free(r);
    QS_TRY(st);
    make_plan(t);
    header(t);
    QS_TRY(open_log(t));
    if (x->v[QO_OUT].set && !(t->out_dir = strdup(x->v[QO_OUT].s))) return qs_error(QS_ERR_NOMEM, "out of memory");
    if (!(t->args_json = qo_args_json(x->v))) return qs_error(QS_ERR_NOMEM, "out of memory");
    t->view.m = &t->run.m;
    t->view.tok = t->run.tok;
    t->view.qs_json = t->run.qs_json;
    t->view.qs_present = t->run.m.has_quietstar ? 7 : 0;
    snprintf(t->view.tok_path, sizeof t->view.tok_path, "%s", t->run.tok_path);
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
        if (t->ext) t->ext->failed = 1;
        qstar_trainer_free(t);
        return st;
    }
    *out = t;
    return QS_OK;
}

// Nothing of a failed fresh run stays behind: its log (if no checkpoint was
// written) and the directory, if that is then empty.
static void remove_failed(const struct qs_train_ext *x, const char *out) {
    char lp[4200], ck[4200];
    snprintf(lp, sizeof lp, "%s/log.jsonl", out);
    snprintf(ck, sizeof ck, "%s/ckpt", out);
    if (!is_dir(ck)) unlink(lp);
    (void)x;
    rmdir(out); // only if nothing else is left
}

static void free_ext(struct qs_train_ext *x) {
    if (!x) return;
    if (x->log) fclose(x->log);
    qs_out_lock_release(&x->lock);
    if (x->failed && x->out_created && x->v[QO_OUT].s) remove_failed(x, x->v[QO_OUT].s);
    if (x->failed && x->n_ranks > 1) { // kept for qstar_mpi_abort (the other ranks wait for this one)
    } else {
        if (g_dist == x->dist) g_dist = NULL;
        qs_dist_free(x->dist);
    }
    qo_clear(x->v);
    free(x);
}

QSTAR_API void qstar_trainer_free(qstar_trainer *t) {
    if (!t) return;
    qs_run_free(&t->run);
    free_ext(t->ext);
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
        p->reward_mean = ev->qs->reward_mean, p->mix_mean = ev->qs->mix_mean, p->loss_talk = ev->qs->loss_talk[0];
    }
    p->message = ev->message;
    p->tok_per_s = ev->tok_per_s, p->elapsed = ev->elapsed, p->eta = ev->eta, p->val_tokens = ev->val_tokens;
}

QSTAR_API qs_status qstar_trainer_step(qstar_trainer *t, qstar_progress *out) {
    if (!t) return qs_error(QS_ERR_ARG, "qstar_trainer_step: NULL trainer");
    qs_train_event ev;
    QS_TRY(qs_trainer_step(&t->run.tr, &ev));
    if (out) to_progress(&ev, out);
    deliver(t, &ev);
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

static void run_event(void *ctx, const qs_train_event *ev) {
    qstar_trainer *t = ctx;
    if (deliver(t, ev)) t->ext->stop = 1;
}

QSTAR_API qs_status qstar_trainer_run(qstar_trainer *t) {
    if (!t) return qs_error(QS_ERR_ARG, "qstar_trainer_run: NULL trainer");
    struct qs_train_ext *x = t->ext;
    qs_train_run_opts ro = {.out_dir = t->out_dir, .tokenizer_path = t->run.tok_path,
                            .quietstar_json = t->run.qs_json, .args_json = t->args_json, .cb = run_event,
                            .cb_ctx = t, .stop = &x->stop};
    qs_status st = qs_trainer_run(&t->run.tr, &ro, &x->sum);
    x->have_sum = st == QS_OK;
    if (st != QS_OK) x->failed = 1;
    return st;
}

QSTAR_API void qstar_trainer_request_stop(qstar_trainer *t) {
    if (t && t->ext) t->ext->stop = 1;
}

QSTAR_API qs_status qstar_trainer_summary(const qstar_trainer *t, qstar_train_summary *out) {
    if (!t || !out) return qs_error(QS_ERR_ARG, "qstar_trainer_summary: NULL argument");
    const struct qs_train_ext *x = t->ext;
    if (!x->have_sum) return qs_error(QS_ERR_ARG, "qstar_trainer_summary: no run finished");
    const qs_train_summary *s = &x->sum;
    memset(out, 0, sizeof *out);
    out->nll_first = s->nll_first, out->nll_last = s->nll_last;
    out->step_first = s->step_first, out->step_last = s->step_last;
    out->steps_run = s->steps_run, out->skipped = s->skipped, out->seconds = s->seconds;
    out->interrupted = s->interrupted, out->step = t->run.tr.step, out->total = t->run.tr.o.steps;
    snprintf(out->ckpt_dir, sizeof out->ckpt_dir, "%s", s->ckpt_dir);
    snprintf(out->out_dir, sizeof out->out_dir, "%s", t->out_dir ? t->out_dir : "");
    return QS_OK;
}

QSTAR_API const char *qstar_trainer_plan(const qstar_trainer *t) { return t && t->ext ? t->ext->plan : ""; }

QSTAR_API int qstar_trainer_rank(const qstar_trainer *t, int *n_ranks) {
    if (n_ranks) *n_ranks = t && t->ext ? t->ext->n_ranks : 1;
    return t && t->ext ? t->ext->rank : 0;
}

QSTAR_API long qstar_trainer_steps_done(const qstar_trainer *t) { return t ? t->run.tr.step : 0; }

QSTAR_API qstar_model *qstar_trainer_model(qstar_trainer *t) { return t ? &t->view : NULL; }

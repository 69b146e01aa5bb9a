// checkpoint.c: optimizer / training-position state files and the atomic
// checkpoint directory swap (see checkpoint.h).
#include "train/checkpoint.h"
#include "io/fileutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/model_io.h"
#include "io/outpath.h"
#include "io/safetensors.h"

#define PATH_CAP 4096

// ---------------------------------------------------------------------------
// Layout hash.

static uint64_t fnv(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001B3ull;
    }
    return h;
}

static uint64_t fnv_u64(uint64_t h, uint64_t x) {
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(x >> (8 * i));
    return fnv(h, b, 8);
}

uint64_t qs_layout_hash(const qs_layout *L) {
    uint64_t h = 0xCBF29CE484222325ull;
    h = fnv_u64(h, (uint64_t)L->n);
    for (int i = 0; i < L->n; i++) {
        const qs_tensor_info *t = &L->t[i];
        h = fnv(h, t->name, strlen(t->name) + 1);
        h = fnv_u64(h, (uint64_t)t->ndim);
        for (int d = 0; d < t->ndim; d++) h = fnv_u64(h, (uint64_t)t->shape[d]);
        h = fnv_u64(h, (uint64_t)t->offset);
    }
    return fnv_u64(h, (uint64_t)L->numel);
}

// ---------------------------------------------------------------------------
// State file.

qs_status qs_train_state_save(const char *path, const qs_train_state *s, const qs_adamw *opt) {
    if (opt->numel != s->numel)
        return qs_error(QS_ERR_ARG, "%s: optimizer holds %zu moments but the state says %zu parameters", path,
                        opt->numel, s->numel);
    int64_t vals[8] = {(int64_t)s->adam_step, (int64_t)s->step,         (int64_t)s->rng,
                       (int64_t)s->data_pos,  (int64_t)s->data_tokens, (int64_t)s->numel,
                       (int64_t)s->layout_hash, (int64_t)s->fingerprint};
    static const char *names[8] = {"adam.step",         "train.step",  "train.rng",         "train.data_pos",
                                   "train.data_tokens", "model.numel", "model.layout_hash", "model.fingerprint"};
    const int n_vals = s->fingerprint ? 8 : 7; // 0: no fingerprint (a state file on its own)
    qs_st_writer w = {0};
    int64_t shape_n[1] = {(int64_t)s->numel}, shape_1[1] = {1};
    qs_status st = qs_st_writer_add(&w, "adam.m", QS_DT_F32, 1, shape_n, opt->m);
    if (st == QS_OK) st = qs_st_writer_add(&w, "adam.v", QS_DT_F32, 1, shape_n, opt->v);
    for (int i = 0; i < n_vals && st == QS_OK; i++) st = qs_st_writer_add(&w, names[i], QS_DT_I64, 1, shape_1, &vals[i]);
    if (st == QS_OK) st = qs_st_writer_write(&w, path);
    qs_st_writer_free(&w);
    return st;
}

// One I64 scalar (shape [1] or []) as its 64-bit pattern.
static qs_status read_i64(const qs_safetensors *f, const char *path, const char *name, uint64_t *out) {
    const qs_st_tensor *t = qs_st_find(f, name);
    if (!t) return qs_error(QS_ERR_FORMAT, "%s: missing tensor '%s' (not a qstar training state?)", path, name);
    if (t->dtype != QS_DT_I64 || t->numel != 1)
        return qs_error(QS_ERR_FORMAT, "%s: tensor '%s' must be one I64 value", path, name);
    const unsigned char *p = f->data + t->begin;
    uint64_t x = 0;
    for (int i = 0; i < 8; i++) x |= (uint64_t)p[i] << (8 * i);
    *out = x;
    return QS_OK;
}

static qs_status read_moment(const qs_safetensors *f, const char *path, const char *name, float *out,
                             size_t numel) {
    const qs_st_tensor *t = qs_st_find(f, name);
    if (!t) return qs_error(QS_ERR_FORMAT, "%s: missing tensor '%s' (not a qstar training state?)", path, name);
    if (t->dtype != QS_DT_F32 || t->numel != numel)
        return qs_error(QS_ERR_FORMAT, "%s: tensor '%s' must be F32 with %zu elements (has %s, %zu)", path, name,
                        numel, qs_dtype_name(t->dtype), t->numel);
    return qs_st_read_f32(f, t, out);
}

static qs_status state_from(qs_safetensors *fp, const char *path, const qs_model *m, qs_train_state *s,
                            qs_adamw *opt);

qs_status qs_train_state_load(const char *path, const qs_model *m, qs_train_state *s, qs_adamw *opt) {
    const size_t numel = m->layout.numel;
    if (opt->numel != numel || !opt->m || !opt->v)
        return qs_error(QS_ERR_ARG, "%s: optimizer must be created for the model's %zu parameters", path, numel);
    qs_safetensors f;
    QS_TRY(qs_st_open(&f, path));
    return state_from(&f, path, m, s, opt);
}

qs_status qs_train_state_parse(const unsigned char *data, size_t n, const char *name, const qs_model *m,
                               qs_train_state *s, qs_adamw *opt) {
    const size_t numel = m->layout.numel;
    if (opt->numel != numel || !opt->m || !opt->v)
        return qs_error(QS_ERR_ARG, "%s: optimizer must be created for the model's %zu parameters", name, numel);
    qs_safetensors f;
    QS_TRY(qs_st_parse(&f, data, n, name));
    return state_from(&f, name, m, s, opt);
}

// Reads and checks the state in the opened file `*fp` (closed here).
static qs_status state_from(qs_safetensors *fp, const char *path, const qs_model *m, qs_train_state *s,
                            qs_adamw *opt) {
    const size_t numel = m->layout.numel;
    qs_safetensors f = *fp;
    qs_train_state t = {0};
    uint64_t v[7];
    static const char *names[7] = {"model.numel", "model.layout_hash", "adam.step",        "train.step",
                                   "train.rng",   "train.data_pos",    "train.data_tokens"};
    qs_status st = QS_OK;
    for (int i = 0; i < 7 && st == QS_OK; i++) st = read_i64(&f, path, names[i], &v[i]);
    if (st == QS_OK && qs_st_find(&f, "model.fingerprint")) st = read_i64(&f, path, "model.fingerprint", &t.fingerprint);
    if (st == QS_OK && v[0] != (uint64_t)numel)
        st = qs_error(QS_ERR_FORMAT,
                      "%s: training state is for a model with %llu parameters, but this model has %zu "
                      "(different config?)",
                      path, (unsigned long long)v[0], numel);
    uint64_t want_hash = qs_layout_hash(&m->layout);
    if (st == QS_OK && v[1] != want_hash)
        st = qs_error(QS_ERR_FORMAT,
                      "%s: training state belongs to a model with a different tensor layout "
                      "(layout hash %016llx, model %016llx)",
                      path, (unsigned long long)v[1], (unsigned long long)want_hash);
    if (st == QS_OK && ((int64_t)v[2] < 0 || (int64_t)v[3] < 0 || v[2] > v[3]))
        st = qs_error(QS_ERR_FORMAT, "%s: inconsistent step counters (adam.step %lld, train.step %lld)", path,
                      (long long)v[2], (long long)v[3]);
    // read into temporaries first so a failure leaves `opt` untouched
    float *mm = NULL, *vv = NULL;
    if (st == QS_OK) {
        mm = qs_malloc(numel * sizeof(float) + 1, "AdamW first moments");
        vv = qs_malloc(numel * sizeof(float) + 1, "AdamW second moments");
        if (!mm || !vv) st = QS_ERR_NOMEM;
    }
    if (st == QS_OK) st = read_moment(&f, path, "adam.m", mm, numel);
    if (st == QS_OK) st = read_moment(&f, path, "adam.v", vv, numel);
    qs_st_close(&f);
    if (st != QS_OK) {
        free(mm);
        free(vv);
        return st;
    }
    memcpy(opt->m, mm, numel * sizeof(float));
    memcpy(opt->v, vv, numel * sizeof(float));
    free(mm);
    free(vv);
    opt->step = (long)v[2];
    t.numel = numel;
    t.layout_hash = v[1];
    t.adam_step = (long)v[2];
    t.step = (long)v[3];
    t.rng = v[4];
    t.data_pos = v[5];
    t.data_tokens = v[6];
    *s = t;
    return QS_OK;
}

// ---------------------------------------------------------------------------
// Directories.

static qs_status join(char *out, size_t cap, const char *a, const char *b) {
    int n = snprintf(out, cap, "%s/%s", a, b);
    if (n < 0 || (size_t)n >= cap) return qs_error(QS_ERR_ARG, "path too long: %s/%s", a, b);
    return QS_OK;
}

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int is_file(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int exists(const char *p) {
    struct stat sb;
    return lstat(p, &sb) == 0;
}

static void fsync_path(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd); // not every file system supports it: not fatal
        close(fd);
    }
}

// A directory that holds a complete checkpoint.
static int is_checkpoint(const char *dir) {
    char p[PATH_CAP];
    if (join(p, sizeof p, dir, QS_TRAIN_STATE_FILE) != QS_OK || !is_file(p)) return 0;
    if (join(p, sizeof p, dir, "config.json") != QS_OK || !is_file(p)) return 0;
    return 1;
}

static qs_status save_ema(const char *path, const float *ema, size_t numel) {
    qs_st_writer w = {0};
    const int64_t shape[1] = {(int64_t)numel};
    qs_status st = qs_st_writer_add(&w, "ema", QS_DT_F32, 1, shape, ema);
    if (st == QS_OK) st = qs_st_writer_write(&w, path);
    qs_st_writer_free(&w);
    return st;
}

qs_status qs_checkpoint_load_ema(const char *ckpt_dir, float *ema, size_t numel) {
    char p[PATH_CAP];
    QS_TRY(join(p, sizeof p, ckpt_dir, QS_TRAIN_EMA_FILE));
    if (!exists(p)) return qs_error(QS_ERR_IO, "%s: no EMA copy of the weights", ckpt_dir);
    qs_safetensors f;
    QS_TRY(qs_st_open(&f, p));
    const qs_st_tensor *t = qs_st_find(&f, "ema");
    qs_status st = QS_OK;
    if (!t || t->dtype != QS_DT_F32 || t->numel != numel)
        st = qs_error(QS_ERR_FORMAT, "%s: tensor \"ema\" must be F32 with %zu values (the model's parameters)", p,
                      numel);
    if (st == QS_OK) st = qs_st_read_f32(&f, t, ema);
    qs_st_close(&f);
    return st;
}

qs_status qs_checkpoint_save(const char *run_dir, const qs_model *m, const char *tokenizer_path,
                             const char *quietstar_json, const qs_train_state *s, const qs_adamw *opt,
                             const char *args_json, char *ckpt_dir, size_t cap) {
    char ck[PATH_CAP], tmp[PATH_CAP], old[PATH_CAP], p[PATH_CAP];
    QS_TRY(join(ck, sizeof ck, run_dir, "ckpt"));
    QS_TRY(join(tmp, sizeof tmp, run_dir, "ckpt.tmp"));
    QS_TRY(join(old, sizeof old, run_dir, "ckpt.old"));
    QS_TRY(qs_mkdir_p(run_dir));
    // a checkpoint that only survives as ckpt.old (crash mid-swap) becomes ckpt again first
    if (!exists(ck) && is_checkpoint(old) && rename(old, ck) != 0)
        return qs_error(QS_ERR_IO, "%s: cannot rename to %s: %s", old, ck, strerror(errno));
    QS_TRY(qs_remove_tree(tmp));
    qs_status st = qs_model_save_dir(m, tmp, tokenizer_path, quietstar_json);
    if (st == QS_OK && args_json) {
        st = join(p, sizeof p, tmp, QS_TRAIN_ARGS_FILE);
        if (st == QS_OK) st = qs_write_file_atomic(p, args_json, strlen(args_json));
    }
    // the state records what it belongs to: the bytes of the weights and settings just written
    qs_train_state s2 = *s;
    if (st == QS_OK) st = qs_model_dir_fingerprint(tmp, &s2.fingerprint);
    if (st == QS_OK) st = join(p, sizeof p, tmp, QS_TRAIN_STATE_FILE);
    if (st == QS_OK) st = qs_train_state_save(p, &s2, opt);
    if (st == QS_OK && s->ema) {
        st = join(p, sizeof p, tmp, QS_TRAIN_EMA_FILE);
        if (st == QS_OK) st = save_ema(p, s->ema, s->numel);
    }
    if (st != QS_OK) {
        qs_error_prefix(st, "%s: checkpoint not saved (previous one kept)", run_dir);
        qs_remove_tree(tmp); // best effort; keeps the error message of the failure
        return st;
    }
    fsync_path(tmp);
    // swap in one step where the system can: ckpt <-> ckpt.tmp, then remove ckpt.tmp (the previous
    // checkpoint). RUN/ckpt is a complete checkpoint at every instant; a crash before the removal
    // leaves a stale ckpt.tmp, which the next save removes first.
    if (is_checkpoint(ck) && qs_exchange_paths(tmp, ck) == 0) {
        fsync_path(run_dir);
        if (ckpt_dir && cap) snprintf(ckpt_dir, cap, "%s", ck);
        QS_TRY(qs_remove_tree(tmp));
        return qs_remove_tree(old); // left by an earlier interrupted two-rename swap, if any
    }
    // otherwise: ckpt -> ckpt.old, ckpt.tmp -> ckpt, remove ckpt.old
    if (exists(ck)) {
        if (is_checkpoint(ck) || !is_checkpoint(old)) {
            QS_TRY(qs_remove_tree(old));
            if (rename(ck, old) != 0)
                return qs_error(QS_ERR_IO, "%s: cannot rename to %s: %s", ck, old, strerror(errno));
        } else {
            QS_TRY(qs_remove_tree(ck)); // incomplete (not written by us); ckpt.old is the good one
        }
    }
    if (rename(tmp, ck) != 0) return qs_error(QS_ERR_IO, "%s: cannot rename to %s: %s", tmp, ck, strerror(errno));
    fsync_path(run_dir);
    if (ckpt_dir && cap) snprintf(ckpt_dir, cap, "%s", ck);
    return qs_remove_tree(old);
}

qs_status qs_checkpoint_verify(const char *ckpt_dir, const qs_train_state *s) {
    if (!s->fingerprint)
        return qs_error(QS_ERR_FORMAT,
                        "%s: %s has no fingerprint of the weights and settings it belongs to (not saved by "
                        "qs_checkpoint_save, or by an older qstar); refusing to resume from it",
                        ckpt_dir, QS_TRAIN_STATE_FILE);
    uint64_t h;
    QS_TRY(qs_model_dir_fingerprint(ckpt_dir, &h));
    if (h != s->fingerprint)
        return qs_error(QS_ERR_FORMAT,
                        "%s: the weights or settings (config.json, model.safetensors, train_args.json) are not the "
                        "ones %s was saved with (replaced or edited since); refusing to resume from a mixed-up "
                        "checkpoint", ckpt_dir, QS_TRAIN_STATE_FILE);
    return QS_OK;
}

qs_status qs_checkpoint_check(const char *ckpt_dir) {
    char p[PATH_CAP];
    QS_TRY(join(p, sizeof p, ckpt_dir, QS_TRAIN_STATE_FILE));
    qs_safetensors f;
    QS_TRY(qs_st_open(&f, p));
    qs_train_state s = {0};
    qs_status st = qs_st_find(&f, "model.fingerprint") ? read_i64(&f, p, "model.fingerprint", &s.fingerprint) : QS_OK;
    qs_st_close(&f);
    return st == QS_OK ? qs_checkpoint_verify(ckpt_dir, &s) : st;
}

static qs_status copy_out(char *out, size_t cap, const char *s) {
    if (!out) return QS_OK;
    size_t n = strlen(s);
    if (n >= cap) return qs_error(QS_ERR_ARG, "path too long: %s", s);
    memcpy(out, s, n + 1);
    return QS_OK;
}

qs_status qs_checkpoint_locate(const char *path, char *ckpt_dir, size_t ckpt_cap, char *run_dir, size_t run_cap) {
    char ck[PATH_CAP], old[PATH_CAP];
    if (!is_dir(path)) return qs_error(QS_ERR_IO, "%s: no such directory (expected a run or checkpoint directory)", path);
    if (is_checkpoint(path)) {
        // path is the checkpoint itself: its run directory is the parent
        char parent[PATH_CAP];
        QS_TRY(copy_out(parent, sizeof parent, path));
        size_t n = strlen(parent);
        while (n > 1 && parent[n - 1] == '/') parent[--n] = 0;
        char *slash = strrchr(parent, '/');
        if (!slash) snprintf(parent, sizeof parent, ".");
        else if (slash == parent) parent[1] = 0;
        else *slash = 0;
        QS_TRY(copy_out(ckpt_dir, ckpt_cap, path));
        return copy_out(run_dir, run_cap, parent);
    }
    QS_TRY(join(ck, sizeof ck, path, "ckpt"));
    QS_TRY(join(old, sizeof old, path, "ckpt.old"));
    if (!is_checkpoint(ck) && is_checkpoint(old)) {
        // an interrupted swap: the previous checkpoint is ckpt.old; put it back
        if (!exists(ck) && rename(old, ck) == 0) fsync_path(path);
        else {
            QS_TRY(copy_out(ckpt_dir, ckpt_cap, old));
            return copy_out(run_dir, run_cap, path);
        }
    }
    if (!is_checkpoint(ck))
        return qs_error(QS_ERR_IO, "%s: no checkpoint found (expected %s/%s)", path, ck, QS_TRAIN_STATE_FILE);
    QS_TRY(copy_out(ckpt_dir, ckpt_cap, ck));
    return copy_out(run_dir, run_cap, path);
}

// paths.c: public API: output paths (qstar.h "Output paths"): the overwrite
// rules of io/outpath.h and the file helpers of io/fileutil.h.
#include "api/api.h"
#include "io/fileutil.h"
#include "io/outpath.h"

#include <stdint.h>
#include <stdlib.h>

struct qstar_afile {
    qs_afile f;
};

QSTAR_API qs_status qstar_out_check(const char *path, qstar_out_kind kind, int force) {
    if (!path || !path[0]) return qs_error(QS_ERR_ARG, "qstar_out_check: no output path");
    qs_out_kind k;
    switch (kind) {
    case QSTAR_OUT_FILE: k = QS_OUT_FILE; break;
    case QSTAR_OUT_MODEL_DIR: k = QS_OUT_MODEL_DIR; break;
    case QSTAR_OUT_RUN_DIR: k = QS_OUT_RUN_DIR; break;
    case QSTAR_OUT_DIR: k = QS_OUT_DIR; break;
    default: return qs_error(QS_ERR_ARG, "qstar_out_check: %s: unknown output kind %d", path, (int)kind);
    }
    return qs_out_check(path, k, force != 0);
}

QSTAR_API int qstar_is_model_dir(const char *dir) { return dir && dir[0] ? qs_is_model_dir(dir) : 0; }

QSTAR_API qs_status qstar_mkdir_p(const char *dir) {
    if (!dir || !dir[0]) return qs_error(QS_ERR_ARG, "qstar_mkdir_p: no directory");
    return qs_mkdir_p(dir);
}

QSTAR_API qs_status qstar_write_file_atomic(const char *path, const void *data, size_t n) {
    if (!path || !path[0] || (n > 0 && !data)) return qs_error(QS_ERR_ARG, "qstar_write_file_atomic: no path or data");
    return qs_write_file_atomic(path, data, n);
}

QSTAR_API qs_status qstar_read_file(const char *path, size_t max, char **data, size_t *n) {
    if (!path || !path[0] || !data || !n) return qs_error(QS_ERR_ARG, "qstar_read_file: NULL argument");
    unsigned char *buf = NULL;
    QS_TRY(qs_read_file_max(path, max < SIZE_MAX ? max : SIZE_MAX - 1, "file", &buf, n));
    *data = (char *)buf;
    return QS_OK;
}

QSTAR_API void qstar_file_free(char *data) { free(data); }

QSTAR_API qs_status qstar_afile_open(const char *path, qstar_afile **out) {
    if (!out) return qs_error(QS_ERR_ARG, "qstar_afile_open: NULL output handle");
    *out = NULL;
    if (!path || !path[0]) return qs_error(QS_ERR_ARG, "qstar_afile_open: no path");
    qstar_afile *a = calloc(1, sizeof *a);
    if (!a) return qs_error(QS_ERR_NOMEM, "out of memory for %s", path);
    qs_status st = qs_afile_open(&a->f, path);
    if (st != QS_OK) {
        free(a);
        return st;
    }
    *out = a;
    return QS_OK;
}

QSTAR_API qs_status qstar_afile_write(qstar_afile *f, const void *data, size_t n) {
    if (!f || (n > 0 && !data)) return qs_error(QS_ERR_ARG, "qstar_afile_write: NULL argument");
    return qs_afile_write(&f->f, data, n);
}

QSTAR_API qs_status qstar_afile_commit(qstar_afile *f) {
    if (!f) return qs_error(QS_ERR_ARG, "qstar_afile_commit: NULL file");
    qs_status st = qs_afile_commit(&f->f);
    qs_afile_abort(&f->f); // frees what is left (removes path.tmp after a failed commit)
    free(f);
    return st;
}

QSTAR_API void qstar_afile_abort(qstar_afile *f) {
    if (!f) return;
    qs_afile_abort(&f->f);
    free(f);
}

QSTAR_API qs_status qstar_dir_replace(const char *fresh, const char *dst) {
    if (!fresh || !fresh[0] || !dst || !dst[0]) return qs_error(QS_ERR_ARG, "qstar_dir_replace: no path");
    return qs_dir_replace(fresh, dst);
}

QSTAR_API qs_status qstar_remove_tree(const char *path) {
    if (!path || !path[0]) return qs_error(QS_ERR_ARG, "qstar_remove_tree: no path");
    return qs_remove_tree(path);
}

// outpath.h: where commands write. Checks made before any work starts, so that
// no command silently replaces a model, a checkpoint or a run, and none fails
// only at the end because its output cannot be written:
//   - qs_out_check: refuses to replace work without `force` (one error naming
//     the path) and checks that the path can be written;
//   - qs_dir_replace: puts a freshly written directory in place of an old one
//     in one step (the old one is removed completely afterwards);
//   - qs_out_lock_*: a lock file DIR/qstar.lock holding the owner's pid keeps
//     two runs from writing the same directory; a lock whose process is gone
//     is stale and is taken over;
//   - qs_file_hash / qs_model_dir_fingerprint: a 64-bit hash of file bytes,
//     which training states use to tell whether the weights and settings
//     beside them are the ones they were saved with.
#ifndef QS_IO_OUTPATH_H
#define QS_IO_OUTPATH_H

#include <stddef.h>
#include <stdint.h>
#include "core/qs.h"

#define QS_LOCK_FILE "qstar.lock"

typedef enum {
    QS_OUT_FILE,      // one output file (HTML page, JSON results, dump): it may replace a plain file, but
                      // not a directory, nor a model or checkpoint file (by name, or any file of a model
                      // directory) unless force
    QS_OUT_MODEL_DIR, // a model directory: an existing non-empty directory needs force
    QS_OUT_RUN_DIR,   // a training run directory: non-empty needs force; held by a live lock: refused
    QS_OUT_DIR,       // any other output directory (charts): non-empty needs force
} qs_out_kind;

// Refuses (QS_ERR_IO, naming the path and saying what it holds and that
// --force replaces it) to replace work unless `force`; then checks that the
// path can be created and written (a probe file is created and removed in the
// directory, or in its nearest existing parent). A lock file alone does not
// make a directory non-empty.
qs_status qs_out_check(const char *path, qs_out_kind kind, int force);

// A directory holding config.json, model.safetensors or a training state.
int qs_is_model_dir(const char *dir);

// Renames directory `fresh` to `dst`. When `dst` exists it is exchanged with
// `fresh` in one step where the system can (Linux renameat2), otherwise moved
// aside first; the old contents are then removed completely.
qs_status qs_dir_replace(const char *fresh, const char *dst);
// Atomically exchanges two existing paths (Linux renameat2 RENAME_EXCHANGE):
// 0, or -1 (errno set) where the system or the file system cannot; callers
// fall back to two renames.
int qs_exchange_paths(const char *a, const char *b);

// Removes a directory tree (like rm -rf); a missing path is not an error.
qs_status qs_remove_tree(const char *path);

typedef struct {
    char path[4200]; // DIR/qstar.lock
    int held;
} qs_out_lock;

// Takes DIR/qstar.lock (DIR must exist). Refused (QS_ERR_IO, naming DIR and
// the pid) while a live process holds it; a lock left by a process that no
// longer exists is taken over. `*l` is zeroed first.
qs_status qs_out_lock_acquire(qs_out_lock *l, const char *dir);
// Removes the lock if held (only if it still holds this process's pid).
void qs_out_lock_release(qs_out_lock *l);
// The pid recorded in DIR/qstar.lock if that process is alive, else 0.
long qs_out_lock_owner(const char *dir);

// 64-bit hash of a file's bytes, read in bounded chunks.
qs_status qs_file_hash(const char *path, uint64_t *h);
// Hash of DIR's config.json, model.safetensors and (when present)
// train_args.json: what a training state stored beside them must match.
// Never 0.
qs_status qs_model_dir_fingerprint(const char *dir, uint64_t *h);

#endif

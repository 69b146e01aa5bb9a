// fileutil.h: file and path helpers every layer uses (io/fileutil.c): whole-file
// reads with a size limit, atomic writes (temp file + fsync + rename + fsync of
// the directory), whole or streamed, and mkdir -p. Where commands may write
// (refusing to replace work, locks) is io/outpath.h.
#ifndef QS_IO_FILEUTIL_H
#define QS_IO_FILEUTIL_H

#include <stddef.h>
#include "core/qs.h"

// Atomic file write helper: writes `n` bytes to path.tmp, fsyncs, renames
// over `path` and fsyncs the directory.
qs_status qs_write_file_atomic(const char *path, const void *data, size_t n);
// Reads a whole file into a malloc'd buffer.
qs_status qs_read_file(const char *path, unsigned char **data, size_t *n);
// The same, refusing (QS_ERR_FORMAT, naming the file, `what` and the limit)
// a file larger than `max` bytes before reading it.
qs_status qs_read_file_max(const char *path, size_t max, const char *what, unsigned char **data, size_t *n);

// Streaming atomic write (what qs_write_file_atomic is built on): open writes
// to path.tmp; commit flushes, fsyncs, renames over `path` and fsyncs the
// directory; abort (also safe after a failed write/commit) removes path.tmp.
typedef struct {
    void *fp;   // FILE * of the temp file (NULL when closed)
    char *path; // final path
    char *tmp;  // path.tmp
} qs_afile;
qs_status qs_afile_open(qs_afile *f, const char *path);
qs_status qs_afile_write(qs_afile *f, const void *data, size_t n);
qs_status qs_afile_commit(qs_afile *f);
void qs_afile_abort(qs_afile *f);
// Creates `dir` and its missing parents (like mkdir -p).
qs_status qs_mkdir_p(const char *dir);

#endif

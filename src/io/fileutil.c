// fileutil.c: whole-file reads, atomic (temp + fsync + rename) writes, mkdir -p.
#include "io/fileutil.h"
#include "io/model_io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

qs_status qs_read_file(const char *path, unsigned char **data, size_t *n) {
    return qs_read_file_max(path, SIZE_MAX - 1, "file", data, n);
}

qs_status qs_read_file_max(const char *path, size_t max, const char *what, unsigned char **data, size_t *n) {
    *data = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return qs_error(QS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return qs_error(QS_ERR_IO, "%s: not a readable regular file", path);
    }
    if ((uint64_t)sb.st_size > (uint64_t)max) {
        fclose(f);
        return qs_error(QS_ERR_FORMAT, "%s: %llu bytes, larger than the %zu MiB limit for a %s", path,
                        (unsigned long long)sb.st_size, max >> 20, what);
    }
    size_t len = (size_t)sb.st_size;
    unsigned char *buf = qs_malloc(len + 1, path);
    if (!buf) { fclose(f); return QS_ERR_NOMEM; }
    size_t got = fread(buf, 1, len, f);
    int err = ferror(f);
    fclose(f);
    if (err || got != len) {
        free(buf);
        return qs_error(QS_ERR_IO, "%s: read %zu of %zu bytes", path, got, len);
    }
    buf[len] = 0; // convenient for text files
    *data = buf;
    *n = len;
    return QS_OK;
}

static void afile_clear(qs_afile *f) {
    free(f->path);
    free(f->tmp);
    memset(f, 0, sizeof *f);
}

qs_status qs_afile_open(qs_afile *f, const char *path) {
    memset(f, 0, sizeof *f);
    size_t n = strlen(path);
    f->path = malloc(n + 1);
    f->tmp = malloc(n + 5);
    if (!f->path || !f->tmp) {
        afile_clear(f);
        return qs_error(QS_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(f->path, path, n + 1);
    snprintf(f->tmp, n + 5, "%s.tmp", path);
    f->fp = fopen(f->tmp, "wb");
    if (!f->fp) {
        qs_status st = qs_error(QS_ERR_IO, "%s: cannot create: %s", f->tmp, strerror(errno));
        afile_clear(f);
        return st;
    }
    return QS_OK;
}

qs_status qs_afile_write(qs_afile *f, const void *data, size_t n) {
    if (!f->fp) return qs_error(QS_ERR_IO, "%s: write to a closed file", f->tmp ? f->tmp : "?");
    if (n && fwrite(data, 1, n, f->fp) != n)
        return qs_error(QS_ERR_IO, "%s: write failed: %s", f->tmp, strerror(errno));
    return QS_OK;
}

// fsync of the directory holding `path`, so that the rename is durable.
static void fsync_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd); // some file systems refuse fsync on directories: not fatal
        close(fd);
    }
}

qs_status qs_afile_commit(qs_afile *f) {
    if (!f->fp) return qs_error(QS_ERR_IO, "%s: commit of a closed file", f->tmp ? f->tmp : "?");
    FILE *fp = f->fp;
    f->fp = NULL;
    int bad = fflush(fp) != 0 || fsync(fileno(fp)) != 0;
    int e = errno;
    if (fclose(fp) != 0 && !bad) { bad = 1; e = errno; }
    if (bad) {
        qs_status st = qs_error(QS_ERR_IO, "%s: write failed: %s", f->tmp, strerror(e));
        qs_afile_abort(f);
        return st;
    }
    if (rename(f->tmp, f->path) != 0) {
        qs_status st = qs_error(QS_ERR_IO, "%s: cannot rename %s into place: %s", f->path, f->tmp,
                                strerror(errno));
        qs_afile_abort(f);
        return st;
    }
    fsync_dir(f->path);
    afile_clear(f);
    return QS_OK;
}

void qs_afile_abort(qs_afile *f) {
    if (f->fp) fclose(f->fp);
    if (f->tmp) unlink(f->tmp);
    afile_clear(f);
}

qs_status qs_write_file_atomic(const char *path, const void *data, size_t n) {
    qs_afile f;
    QS_TRY(qs_afile_open(&f, path));
    qs_status st = qs_afile_write(&f, data, n);
    if (st != QS_OK) { qs_afile_abort(&f); return st; }
    return qs_afile_commit(&f);
}

qs_status qs_mkdir_p(const char *dir) {
    char buf[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof buf) return qs_error(QS_ERR_ARG, "bad directory path '%s'", dir);
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        char c = buf[i];
        buf[i] = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return qs_error(QS_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
        buf[i] = c;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return qs_error(QS_ERR_IO, "%s: exists and is not a directory", dir);
    return QS_OK;
}

// outpath.c: output checks, directory replacement, run locks and file
// fingerprints (see outpath.h).
#include "io/outpath.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/syscall.h>
#endif

#define PCAP 4200

static int path_join(char *out, const char *a, const char *b) {
    int n = snprintf(out, PCAP, "%s/%s", a, b);
    return n >= 0 && n < PCAP;
}

static int file_exists(const char *dir, const char *name) {
    char p[PCAP];
    struct stat sb;
    return path_join(p, dir, name) && stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

int qs_is_model_dir(const char *dir) {
    return file_exists(dir, "config.json") || file_exists(dir, "model.safetensors") ||
           file_exists(dir, "train_state.safetensors");
}

// The directory part of a path ("." for a bare name).
static void dir_of(char *out, const char *path) {
    snprintf(out, PCAP, "%s", path);
    size_t n = strlen(out);
    while (n > 1 && out[n - 1] == '/') out[--n] = 0;
    char *s = strrchr(out, '/');
    if (!s) snprintf(out, PCAP, ".");
    else if (s == out) out[1] = 0;
    else *s = 0;
}

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && strcmp(s + n - k, suf) == 0;
}

// Names of files that hold a model, a tokenizer, a training state or a training log.
static int is_work_name(const char *path) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    static const char *const SUF[] = {".safetensors", ".bin", ".gguf", ".pt", ".pth", ".model"};
    static const char *const NAMES[] = {"config.json", "tokenizer.json", "tokenizer_config.json", "log.jsonl",
                                        "train_args.json"};
    for (size_t i = 0; i < sizeof SUF / sizeof *SUF; i++)
        if (ends_with(b, SUF[i])) return 1;
    for (size_t i = 0; i < sizeof NAMES / sizeof *NAMES; i++)
        if (!strcmp(b, NAMES[i])) return 1;
    return 0;
}

// Entries of a directory other than ".", ".." and the lock file; -1 if it cannot be read.
static int n_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, QS_LOCK_FILE)) n++;
    closedir(d);
    return n;
}

// Creates and removes a probe file in `dir` (or its nearest existing parent).
static qs_status probe_dir(const char *path, const char *dir) {
    char d[PCAP], p[PCAP];
    snprintf(d, PCAP, "%s", dir);
    struct stat sb;
    for (int guard = 0; stat(d, &sb) != 0 && guard < 256; guard++) {
        if (errno == ENOTDIR) return qs_error(QS_ERR_IO, "%s: cannot write there: a part of the path is not a directory", path);
        if (errno != ENOENT) return qs_error(QS_ERR_IO, "%s: cannot write there: %s: %s", path, d, strerror(errno));
        char up[PCAP];
        dir_of(up, d);
        if (!strcmp(up, d)) break;
        memcpy(d, up, PCAP);
    }
    if (stat(d, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return qs_error(QS_ERR_IO, "%s: cannot write there: %s is not a directory", path, d);
    if (snprintf(p, PCAP, "%s/.qstar-write-test.%ld", d, (long)getpid()) >= PCAP)
        return qs_error(QS_ERR_ARG, "%s: path too long", path);
    int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) return qs_error(QS_ERR_IO, "%s: cannot write in %s: %s", path, d, strerror(errno));
    close(fd);
    unlink(p);
    return QS_OK;
}

static const char *dir_kind(const char *dir) {
    if (file_exists(dir, "train_state.safetensors")) return "a training checkpoint";
    if (qs_is_model_dir(dir)) return "a model directory";
    char p[PCAP];
    struct stat sb;
    if (path_join(p, dir, "ckpt") && stat(p, &sb) == 0) return "a training run";
    if (path_join(p, dir, "ckpt.old") && stat(p, &sb) == 0) return "a training run";
    return "files";
}

static qs_status check_dir(const char *path, qs_out_kind kind, int force) {
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (errno == ENOTDIR) return qs_error(QS_ERR_IO, "%s: cannot write there: a part of the path is not a directory", path);
        if (errno != ENOENT) return qs_error(QS_ERR_IO, "%s: cannot write there: %s", path, strerror(errno));
        char up[PCAP];
        dir_of(up, path);
        return probe_dir(path, up);
    }
    if (!S_ISDIR(sb.st_mode)) return qs_error(QS_ERR_IO, "%s: exists and is not a directory", path);
    long owner = qs_out_lock_owner(path);
    if (kind == QS_OUT_RUN_DIR && owner > 0 && owner != (long)getpid())
        return qs_error(QS_ERR_IO, "%s: in use by another qstar run (pid %ld, see %s/%s)", path, owner, path,
                        QS_LOCK_FILE);
    int n = n_entries(path);
    if (n < 0) return qs_error(QS_ERR_IO, "%s: cannot read the directory: %s", path, strerror(errno));
    if (n > 0 && !force)
        return qs_error(QS_ERR_IO, "%s: already holds %s; pass --force to replace it%s (or choose another path)", path,
                        dir_kind(path), kind == QS_OUT_RUN_DIR ? ", or --resume it" : "");
    return probe_dir(path, path);
}

qs_status qs_out_check(const char *path, qs_out_kind kind, int force) {
    if (!path || !*path) return qs_error(QS_ERR_ARG, "empty output path");
    if (strlen(path) >= PCAP - 64) return qs_error(QS_ERR_ARG, "%s: path too long", path);
    if (kind != QS_OUT_FILE) return check_dir(path, kind, force);
    char up[PCAP];
    dir_of(up, path);
    struct stat sb;
    if (stat(path, &sb) == 0) {
        if (S_ISDIR(sb.st_mode)) return qs_error(QS_ERR_IO, "%s: is a directory (give a file name)", path);
        if (!force && (is_work_name(path) || qs_is_model_dir(up)))
            return qs_error(QS_ERR_IO, "%s: exists and holds %s; pass --force to replace it", path,
                            qs_is_model_dir(up) ? "part of a model directory" : "a model, checkpoint or log");
    } else if (errno == ENOTDIR) {
        return qs_error(QS_ERR_IO, "%s: cannot write there: a part of the path is not a directory", path);
    } else if (errno != ENOENT) {
        return qs_error(QS_ERR_IO, "%s: cannot write there: %s", path, strerror(errno));
    }
    if (stat(up, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return qs_error(QS_ERR_IO, "%s: cannot write there: directory %s does not exist", path, up);
    return probe_dir(path, up);
}

// ---------------------------------------------------------------------------
// Directory replacement.

qs_status qs_remove_tree(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) {
        if (errno == ENOENT) return QS_OK;
        return qs_error(QS_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    }
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        if (!d) return qs_error(QS_ERR_IO, "%s: cannot open directory: %s", path, strerror(errno));
        struct dirent *e;
        qs_status st = QS_OK;
        char child[PCAP];
        while (st == QS_OK && (e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            if (!path_join(child, path, e->d_name)) st = qs_error(QS_ERR_ARG, "path too long: %s/%s", path, e->d_name);
            else st = qs_remove_tree(child);
        }
        closedir(d);
        if (st != QS_OK) return st;
        if (rmdir(path) != 0) return qs_error(QS_ERR_IO, "%s: cannot remove directory: %s", path, strerror(errno));
        return QS_OK;
    }
    if (unlink(path) != 0) return qs_error(QS_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
    return QS_OK;
}

int qs_exchange_paths(const char *a, const char *b) {
#if defined(__linux__) && defined(SYS_renameat2)
    return (int)syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, 2 /* RENAME_EXCHANGE */);
#else
    (void)a, (void)b;
    errno = ENOSYS;
    return -1;
#endif
}

static void sync_dir(const char *path) {
    char d[PCAP];
    dir_of(d, path);
    int fd = open(d, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

qs_status qs_dir_replace(const char *fresh, const char *dst) {
    struct stat sb;
    if (lstat(dst, &sb) != 0) {
        if (rename(fresh, dst) != 0)
            return qs_error(QS_ERR_IO, "%s: cannot rename %s into place: %s", dst, fresh, strerror(errno));
        sync_dir(dst);
        return QS_OK;
    }
    if (S_ISDIR(sb.st_mode) && qs_exchange_paths(fresh, dst) == 0) {
        sync_dir(dst);
        return qs_remove_tree(fresh); // now the old contents
    }
    char old[PCAP];
    if (snprintf(old, PCAP, "%s.old.%ld", dst, (long)getpid()) >= PCAP) return qs_error(QS_ERR_ARG, "%s: path too long", dst);
    QS_TRY(qs_remove_tree(old));
    if (rename(dst, old) != 0) return qs_error(QS_ERR_IO, "%s: cannot move aside to %s: %s", dst, old, strerror(errno));
    if (rename(fresh, dst) != 0) {
        qs_status st = qs_error(QS_ERR_IO, "%s: cannot rename %s into place: %s", dst, fresh, strerror(errno));
        (void)rename(old, dst); // put the old one back
        return st;
    }
    sync_dir(dst);
    return qs_remove_tree(old);
}

// ---------------------------------------------------------------------------
// Locks.

static long read_pid(const char *lock) {
    char buf[32] = {0};
    int fd = open(lock, O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    char *end;
    long pid = strtol(buf, &end, 10);
    return pid > 0 && (*end == '\n' || *end == 0) ? pid : 0;
}

// A process that has exited but is not yet reaped (a zombie, state Z in
// /proc/PID/stat on Linux) holds nothing: it counts as gone.
static int zombie(long pid) {
    char p[64], buf[256];
    snprintf(p, sizeof p, "/proc/%ld/stat", pid);
    FILE *f = fopen(p, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *r = strrchr(buf, ')'); // "pid (comm) S ..."; comm may hold spaces or ')'
    return r && r[1] == ' ' && r[2] == 'Z';
}

static int alive(long pid) { return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM) && !zombie(pid); }

long qs_out_lock_owner(const char *dir) {
    char p[PCAP];
    if (!path_join(p, dir, QS_LOCK_FILE)) return 0;
    long pid = read_pid(p);
    return alive(pid) ? pid : 0;
}

qs_status qs_out_lock_acquire(qs_out_lock *l, const char *dir) {
    memset(l, 0, sizeof *l);
    char tmp[PCAP];
    if (!path_join(l->path, dir, QS_LOCK_FILE) ||
        snprintf(tmp, PCAP, "%s.%ld", l->path, (long)getpid()) >= PCAP)
        return qs_error(QS_ERR_ARG, "%s: path too long", dir);
    long me = (long)getpid();
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return qs_error(QS_ERR_IO, "%s: cannot create the lock file: %s", tmp, strerror(errno));
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld\n", me);
    int bad = write(fd, buf, (size_t)n) != n;
    close(fd);
    if (bad) {
        unlink(tmp);
        return qs_error(QS_ERR_IO, "%s: cannot write the lock file", tmp);
    }
    qs_status st = QS_OK;
    if (link(tmp, l->path) != 0) { // held already: by a live process, or stale
        long pid = read_pid(l->path);
        if (pid == me) {
        } else if (alive(pid)) {
            st = qs_error(QS_ERR_IO, "%s: in use by another qstar run (pid %ld, see %s)", dir, pid, l->path);
        } else if (rename(tmp, l->path) != 0) { // stale: take it over in one step
            st = qs_error(QS_ERR_IO, "%s: cannot take over the stale lock: %s", l->path, strerror(errno));
        } else if (read_pid(l->path) != me) { // another process took it over at the same moment
            st = qs_error(QS_ERR_IO, "%s: in use by another qstar run (pid %ld, see %s)", dir, read_pid(l->path),
                          l->path);
        }
    }
    unlink(tmp);
    if (st == QS_OK) l->held = 1;
    return st;
}

void qs_out_lock_release(qs_out_lock *l) {
    if (l->held && read_pid(l->path) == (long)getpid()) unlink(l->path);
    l->held = 0;
}

// ---------------------------------------------------------------------------
// Fingerprints.

static uint64_t mix(uint64_t h, uint64_t x) {
    h ^= x;
    h *= 0x9E3779B97F4A7C15ull;
    return h ^ (h >> 29);
}

qs_status qs_file_hash(const char *path, uint64_t *h) {
    FILE *f = fopen(path, "rb");
    if (!f) return qs_error(QS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = malloc(CHUNK);
    if (!buf) {
        fclose(f);
        return qs_error(QS_ERR_NOMEM, "%s: out of memory", path);
    }
    uint64_t x = 0xCBF29CE484222325ull, total = 0;
    size_t got;
    while ((got = fread(buf, 1, CHUNK, f)) > 0) {
        size_t i = 0;
        for (; i + 8 <= got; i += 8) {
            uint64_t w;
            memcpy(&w, buf + i, 8);
            x = mix(x, w);
        }
        for (; i < got; i++) x = mix(x, buf[i] | 0x100u);
        total += got;
    }
    int err = ferror(f);
    fclose(f);
    free(buf);
    if (err) return qs_error(QS_ERR_IO, "%s: read error", path);
    *h = mix(x, total);
    return QS_OK;
}

qs_status qs_model_dir_fingerprint(const char *dir, uint64_t *h) {
    static const char *const FILES[] = {"config.json", "model.safetensors", "train_args.json"};
    uint64_t acc = 0x51A7E5ull;
    for (int i = 0; i < 3; i++) {
        char p[PCAP];
        if (!path_join(p, dir, FILES[i])) return qs_error(QS_ERR_ARG, "path too long: %s", dir);
        if (i == 2 && !file_exists(dir, FILES[i])) break;
        uint64_t fh;
        QS_TRY(qs_file_hash(p, &fh));
        acc = mix(acc, fh + (uint64_t)i);
    }
    *h = acc ? acc : 1;
    return QS_OK;
}

// error.c: thread-local error messages and checked allocation.
#include "core/qs.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Thread_local char g_err[1024];

const char *qstar_last_error(void) { return g_err; }

const char *qstar_status_name(qs_status st) {
    switch (st) {
    case QS_OK: return "ok";
    case QS_ERR_IO: return "io";
    case QS_ERR_FORMAT: return "format";
    case QS_ERR_ARG: return "argument";
    case QS_ERR_NOMEM: return "out of memory";
    case QS_ERR_NUMERIC: return "numeric";
    case QS_ERR_UNSUPPORTED: return "unsupported";
    case QS_ERR_INTERRUPTED: return "interrupted";
    }
    return "unknown";
}

qs_status qs_error(qs_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    return st;
}

qs_status qs_error_prefix(qs_status st, const char *fmt, ...) {
    char prefix[512], old[sizeof g_err];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, g_err, sizeof old);
    size_t np = strlen(prefix);
    memcpy(g_err, prefix, np);
    memcpy(g_err + np, ": ", 2);
    size_t room = sizeof g_err - np - 3;
    size_t no = strnlen(old, room);
    memcpy(g_err + np + 2, old, no);
    g_err[np + 2 + no] = 0;
    return st;
}

void *qs_malloc(size_t n, const char *what) {
    void *p = NULL;
    size_t sz = (n + 63) & ~(size_t)63;
    if (sz == 0) sz = 64;
    if (posix_memalign(&p, 64, sz) != 0 || !p) {
        qs_error(QS_ERR_NOMEM, "out of memory allocating %zu bytes for %s", n, what ? what : "buffer");
        return NULL;
    }
    return p;
}

void *qs_calloc(size_t count, size_t size, const char *what) {
    if (size != 0 && count > SIZE_MAX / size) {
        qs_error(QS_ERR_NOMEM, "allocation size overflow for %s", what ? what : "buffer");
        return NULL;
    }
    void *p = qs_malloc(count * size, what);
    if (p) memset(p, 0, count * size);
    return p;
}

double qs_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

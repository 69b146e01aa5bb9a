// qs.h: internal common definitions for libqstar: status codes, the
// thread-local error message, checked allocation, small helpers.
// Library code never prints and never exits: it returns a qs_status and
// leaves a one-line message for qstar_last_error().
#ifndef QS_CORE_H
#define QS_CORE_H

#include <stddef.h>
#include <stdint.h>
#include "qstar.h"

// Set the thread-local error message (printf-style) and return `st`, so that
// callers can write `return qs_error(QS_ERR_FORMAT, "%s: bad magic", path);`
qs_status qs_error(qs_status st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
// Prefix the current error message with "prefix: " (adds context on the way up).
qs_status qs_error_prefix(qs_status st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

// Checked allocation: on failure they set the error message (naming `what`)
// and return NULL. Memory from qs_malloc/qs_calloc is 64-byte aligned and
// released with free().
void *qs_malloc(size_t n, const char *what);
void *qs_calloc(size_t count, size_t size, const char *what);

#define QS_MIN(a, b) ((a) < (b) ? (a) : (b))
#define QS_MAX(a, b) ((a) > (b) ? (a) : (b))
#define QS_TRY(expr) do { qs_status _st = (expr); if (_st != QS_OK) return _st; } while (0)

// Monotonic wall-clock seconds.
double qs_now(void);

#endif

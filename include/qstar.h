// qstar.h: public API of libqstar, Quiet-STaR in C.
//
// Every function that can fail returns a qs_status; on failure a one-line
// message describing the problem (naming the file, tensor or flag involved)
// is available from qstar_last_error() in the same thread. The library never
// prints to stdout and never exits the process.
#ifndef QSTAR_H
#define QSTAR_H

#ifdef __cplusplus
extern "C" {
#endif

#define QSTAR_VERSION "0.1.0"

typedef enum {
    QS_OK = 0,
    QS_ERR_IO = 1,        // a file could not be opened, read or written
    QS_ERR_FORMAT = 2,    // a file's contents are malformed, truncated or inconsistent
    QS_ERR_ARG = 3,       // an argument or option is out of range or inconsistent
    QS_ERR_NOMEM = 4,     // an allocation failed
    QS_ERR_NUMERIC = 5,   // a non-finite value where a finite one is required
    QS_ERR_UNSUPPORTED = 6, // a valid input that qstar does not handle (yet)
    QS_ERR_INTERRUPTED = 7  // stopped on request (e.g. SIGINT)
} qs_status;

// Message for the last error in this thread ("" if none).
const char *qstar_last_error(void);
// Short name of a status code ("io", "format", ...).
const char *qstar_status_name(qs_status st);

#ifdef __cplusplus
}
#endif
#endif

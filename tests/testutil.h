// testutil.h: helpers shared by the cmocka unit tests.
#ifndef QS_TESTUTIL_H
#define QS_TESTUTIL_H

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

// Path inside $QSTAR_DATA, or NULL (and the test is skipped with a message)
// when QSTAR_DATA is unset or the file is absent.
static inline const char *tu_data_path(const char *rel, char *buf, size_t n) {
    const char *d = getenv("QSTAR_DATA");
    if (!d || !*d) {
        fprintf(stderr, "[  SKIP    ] QSTAR_DATA is not set; skipping a test that needs %s\n", rel);
        return NULL;
    }
    snprintf(buf, n, "%s/%s", d, rel);
    FILE *f = fopen(buf, "rb");
    if (!f) {
        fprintf(stderr, "[  SKIP    ] %s is absent; skipping\n", buf);
        return NULL;
    }
    fclose(f);
    return buf;
}

// Compares a[n] to ref[n] within atol + rtol*|ref|; prints the worst element
// and fails the test on mismatch.
static inline void tu_assert_close(const char *what, const float *a, const float *ref, size_t n,
                                   double atol, double rtol) {
    size_t worst = 0, bad = 0;
    double worst_ex = -1;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)a[i] - (double)ref[i]);
        double tol = atol + rtol * fabs((double)ref[i]);
        if (!(err <= tol)) bad++;
        double ex = err - tol;
        if (isnan(a[i]) || ex > worst_ex) { worst_ex = isnan(a[i]) ? INFINITY : ex; worst = i; }
    }
    if (bad) {
        fprintf(stderr, "%s: %zu of %zu elements differ; worst [%zu] got %.8g want %.8g\n", what, bad, n,
                worst, (double)a[worst], (double)ref[worst]);
        fail_msg("%s mismatch", what);
    }
}

#endif

// curriculum.c: parsing a thought-length curriculum (see curriculum.h).
#include "train/curriculum.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

// One numeric field [p, end) copied into a bounded buffer and parsed whole.
static int parse_num(const char *p, const char *end, double *out) {
    while (p < end && isspace((unsigned char)*p)) p++;
    while (end > p && isspace((unsigned char)end[-1])) end--;
    char buf[64];
    size_t n = (size_t)(end - p);
    if (n == 0 || n >= sizeof buf) return 0;
    memcpy(buf, p, n);
    buf[n] = 0;
    char *e = NULL;
    double x = strtod(buf, &e);
    if (e != buf + n || !isfinite(x)) return 0;
    *out = x;
    return 1;
}

static const char *const FIELD[4] = {"n_ahead", "n_talk", "lr", "steps"};

static qs_status parse_stage(const char *p, const char *end, int k, qs_curriculum_stage *s) {
    double v[4];
    for (int f = 0; f < 4; f++) {
        const char *q = p;
        while (q < end && *q != ':') q++;
        if (f < 3 && q == end)
            return qs_error(QS_ERR_ARG, "curriculum stage %d: expected n_ahead:n_talk:lr:steps (missing %s)", k + 1, FIELD[f + 1]);
        if (f == 3 && q != end) return qs_error(QS_ERR_ARG, "curriculum stage %d: more than 4 fields", k + 1);
        if (!parse_num(p, q, &v[f])) return qs_error(QS_ERR_ARG, "curriculum stage %d: %s is not a number", k + 1, FIELD[f]);
        p = q + 1;
    }
    if (v[0] != floor(v[0]) || v[0] < 3 || v[0] > 256)
        return qs_error(QS_ERR_ARG, "curriculum stage %d: n_ahead %g must be an integer in [3, 256]", k + 1, v[0]);
    if (v[1] != floor(v[1]) || v[1] < 1 || v[1] > 64)
        return qs_error(QS_ERR_ARG, "curriculum stage %d: n_talk %g must be an integer in [1, 64]", k + 1, v[1]);
    if (!(v[2] > 0 && v[2] <= 100)) return qs_error(QS_ERR_ARG, "curriculum stage %d: lr %g must be in (0, 100]", k + 1, v[2]);
    if (v[3] != floor(v[3]) || v[3] < 1 || v[3] > 1e12)
        return qs_error(QS_ERR_ARG, "curriculum stage %d: steps %g must be an integer in [1, 1e12]", k + 1, v[3]);
    s->n_ahead = (int)v[0], s->n_talk = (int)v[1], s->lr = (float)v[2], s->steps = (long)v[3];
    return QS_OK;
}

qs_status qs_curriculum_parse(const char *text, size_t len, qs_curriculum *c) {
    memset(c, 0, sizeof *c);
    if (!text || len == 0) return qs_error(QS_ERR_ARG, "curriculum: empty (expected n_ahead:n_talk:lr:steps,...)");
    const char *p = text, *end = text + len;
    while (p <= end) {
        const char *q = p;
        while (q < end && *q != ',') q++;
        if (c->n == QS_MAX_STAGES) return qs_error(QS_ERR_ARG, "curriculum: more than %d stages", QS_MAX_STAGES);
        QS_TRY(parse_stage(p, q, c->n, &c->s[c->n]));
        c->n++;
        p = q + 1;
    }
    return QS_OK;
}

// infer_util.c: helpers of the inference half of the public API (generate,
// score, zero-shot tasks, held-out NLL, viz): precision per call, output
// files, results JSON.
#include "api/api.h"
#include "io/fileutil.h"
#include "io/outpath.h"

#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

qs_status qs_api_precision(qstar_model *q, qstar_precision p, qs_precision *saved) {
    *saved = q->m->precision;
    if (p != QSTAR_FP32 && p != QSTAR_BF16) return qs_error(QS_ERR_ARG, "precision %d is neither fp32 nor bf16", (int)p);
    q->m->precision = p == QSTAR_BF16 ? QS_PREC_BF16 : QS_PREC_FP32;
    return QS_OK;
}

qs_status qs_api_out_check(const char *path, int force) {
    if (!path) return QS_OK;
    if (!path[0]) return qs_error(QS_ERR_ARG, "empty output path");
    return qs_out_check(path, QS_OUT_FILE, force);
}

// The text with invalid UTF-8 bytes replaced by U+FFFD (malloc'd; NULL: out of memory).
static char *clean_utf8(const char *s) {
    size_t n = strlen(s);
    char *o = malloc(3 * n + 1), *p = o;
    if (!o) return NULL;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        int len = u[i] < 0x80 ? 1 : (u[i] >> 5) == 6 ? 2 : (u[i] >> 4) == 14 ? 3 : (u[i] >> 3) == 30 ? 4 : 0;
        int ok = len > 0 && i + len <= n;
        for (int k = 1; ok && k < len; k++) ok = (u[i + k] & 0xC0) == 0x80;
        if (ok) {
            memcpy(p, u + i, len), p += len, i += len;
        } else {
            memcpy(p, "\xEF\xBF\xBD", 3), p += 3, i++;
        }
    }
    *p = 0;
    return o;
}

void qs_api_json_text(cJSON *obj, const char *key, const char *text) {
    char *c = clean_utf8(text ? text : "");
    cJSON_AddStringToObject(obj, key, c ? c : "");
    free(c);
}

qs_status qs_api_json_write(const char *path, const cJSON *root) {
    char *txt = cJSON_Print(root);
    if (!txt) return qs_error(QS_ERR_NOMEM, "%s: out of memory for the JSON results", path);
    size_t n = strlen(txt);
    txt[n] = '\n'; // cJSON_Print's buffer holds the terminating NUL here
    qs_status st = qs_write_file_atomic(path, txt, n + 1);
    free(txt);
    return st;
}

void qs_api_json_thoughts(cJSON *obj, int think, const qs_qstar_opts *qo) {
    if (!think) {
        cJSON_AddNullToObject(obj, "n_ahead");
        return;
    }
    cJSON_AddNumberToObject(obj, "n_ahead", qo->n_ahead);
    cJSON_AddNumberToObject(obj, "n_thought", qo->n_ahead - 3);
    cJSON_AddNumberToObject(obj, "tau_sample", qo->tau_sample);
    cJSON_AddStringToObject(obj, "mixing", qo->mixing == QS_MIX_SIGMOID ? "sigmoid" : "linear");
}

qs_status qs_api_think_at_check(const char *fn, const char *think_at, int n_talk, float min_entropy) {
    if (isnan(min_entropy)) return qs_error(QS_ERR_ARG, "%s: think_min_entropy is NaN", fn);
    if (think_at && (!think_at[0] || strlen(think_at) > 255))
        return qs_error(QS_ERR_ARG, "%s: think_at must hold 1 to 255 bytes", fn);
    if (think_at && min_entropy > -INFINITY)
        return qs_error(QS_ERR_ARG, "%s: think_at and think_min_entropy exclude each other", fn);
    if (n_talk < 0 || n_talk > QS_MAX_TALK) return qs_error(QS_ERR_ARG, "%s: n_talk %d out of range 0..%d", fn, n_talk, QS_MAX_TALK);
    if (n_talk && !think_at) return qs_error(QS_ERR_ARG, "%s: n_talk is for think_at", fn);
    return QS_OK;
}

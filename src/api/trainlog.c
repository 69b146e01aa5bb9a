// trainlog.c: the JSONL log of a training run (train_ext.h): one record per
// optimizer step and per held-out evaluation, as `qstar train` /
// `qstar finetune` write it to DIR/log.jsonl (and the public API to the same).
#include "api/train_ext.h"
#include "io/fileutil.h"
#include "io/model_io.h"
#include "tokenizer/tokenizer.h"

#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void json_num(FILE *f, const char *key, double x, int last) {
    if (isfinite(x)) fprintf(f, "\"%s\":%.8g%s", key, x, last ? "" : ",");
    else fprintf(f, "\"%s\":null%s", key, last ? "" : ",");
}

// Length of the valid UTF-8 sequence at c (1-4), or 0 if it is not one.
static int utf8_len(const unsigned char *c) {
    int n;
    if (c[0] < 0x80) return 1;
    else if (c[0] >= 0xC2 && c[0] <= 0xDF) n = 2;
    else if (c[0] >= 0xE0 && c[0] <= 0xEF) n = 3;
    else if (c[0] >= 0xF0 && c[0] <= 0xF4) n = 4;
    else return 0;
    for (int k = 1; k < n; k++)
        if ((c[k] & 0xC0) != 0x80) return 0; // also stops at the terminating NUL
    if (n == 3 && ((c[0] == 0xE0 && c[1] < 0xA0) || (c[0] == 0xED && c[1] >= 0xA0))) return 0; // overlong, surrogate
    if (n == 4 && ((c[0] == 0xF0 && c[1] < 0x90) || (c[0] == 0xF4 && c[1] >= 0x90))) return 0;
    return n;
}

// A JSON string literal of `s` (escaped) into f. Decoded thoughts may hold
// byte tokens that are not valid UTF-8 on their own: each such byte becomes
// U+FFFD, so that every log line stays valid JSON.
static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)s; *c;) {
        int n = utf8_len(c);
        if (n == 0) {
            fputs("\\ufffd", f);
            c++;
        } else if (n > 1) {
            fwrite(c, 1, (size_t)n, f);
            c += n;
        } else {
            if (*c == '"' || *c == '\\') fprintf(f, "\\%c", *c);
            else if (*c < 0x20 || *c == 0x7F) fprintf(f, "\\u%04x", *c);
            else fputc(*c, f);
            c++;
        }
    }
    fputc('"', f);
}

// Decodes the thought sampled at (expanded row r, position i).
static void thought_text(const qs_tokenizer *tok, const qs_qstar_out *q, int r, int i, char *buf, size_t n) {
    size_t len = 0;
    buf[0] = 0;
    int prev = 0;
    for (int u = 0; u < q->n_thought && len + 1 < n; u++) {
        int t = q->thoughts[((size_t)r * q->n_thought + u) * q->T + i];
        const char *piece = qs_tokenizer_piece(tok, prev, t);
        int w = snprintf(buf + len, n - len, "%s", piece ? piece : "");
        if (w > 0) len += (size_t)w;
        if (len >= n) len = n - 1; // truncated: buf is full (and terminated)
        prev = t;
    }
}

// The Quiet-STaR quantities of a step record, and a few decoded thoughts.
static void qstar_fields(FILE *f, const struct qs_train_ext *x, const qs_tokenizer *tok, const qs_train_event *ev) {
    const qs_qstar_out *q = ev->qs;
    json_num(f, "loss_lm", q->loss_lm, 0);
    json_num(f, "loss_base", q->loss_base, 0);
    fputs("\"loss_talk\":[", f);
    for (int k = 0; k < q->n_talk; k++) {
        const double v = q->loss_talk[k];
        if (isfinite(v)) fprintf(f, "%s%.8g", k ? "," : "", v);
        else fprintf(f, "%snull", k ? "," : "");
    }
    fputs("],", f);
    json_num(f, "policy_loss", q->policy_loss, 0);
    json_num(f, "reward_mean", q->reward_mean, 0);
    json_num(f, "advantage_mean", q->advantage_mean, 0);
    json_num(f, "mix_mean", q->mix_mean, 0);
    json_num(f, "mix_std", q->mix_std, 0);
    if (!tok || x->show_thoughts <= 0 || q->n_thought <= 0 || !ev->tokens) return;
    fputs("\"thoughts\":[", f);
    for (int s = 0; s < x->show_thoughts; s++) {
        int r = s % q->R, i = (int)((7 + 13L * s) % (q->T > 1 ? q->T - 1 : 1));
        char th[512];
        thought_text(tok, q, r, i, th, sizeof th);
        fprintf(f, "%s{\"row\":%d,\"pos\":%d,\"after\":", s ? "," : "", r, i);
        json_str(f, qs_tokenizer_piece(tok, 0, ev->tokens[(size_t)(r / x->n_passes) * q->T + i]));
        fputs(",\"thought\":", f);
        json_str(f, th);
        fputc('}', f);
    }
    fputs("],", f);
}

int qs_tlog_event(struct qs_train_ext *x, const qs_tokenizer *tok, const qs_train_event *ev) {
    FILE *f = x->log;
    if (!f) return 0;
    if (ev->kind == QS_TEV_STEP) {
        fprintf(f, "{\"step\":%ld,", ev->step);
        json_num(f, "loss", ev->loss, 0);
        json_num(f, "lr", ev->lr, 0);
        json_num(f, "grad_norm", ev->grad_norm, 0);
        json_num(f, "tok_per_s", ev->tok_per_s, 0);
        json_num(f, "elapsed", ev->elapsed, 0);
        if (ev->qs) qstar_fields(f, x, tok, ev);
        fprintf(f, "\"skipped\":%s}\n", ev->skipped ? "true" : "false");
    } else if (ev->kind == QS_TEV_EVAL) {
        fprintf(f, "{\"type\":\"eval\",\"step\":%ld,", ev->step);
        json_num(f, "val_nll", ev->val_nll, 0);
        if (x->quietstar) {
            json_num(f, "val_nll_base", ev->val_nll, 0);
            json_num(f, "val_nll_think", ev->val_nll_think, 0);
        }
        json_num(f, "elapsed", ev->elapsed, 1);
        fputs("}\n", f);
    } else {
        return 0;
    }
    if (fflush(f) != 0 && !x->log_failed) {
        x->log_failed = 1;
        return -1;
    }
    return 0;
}

// A resumed run appends to the log of the run it continues. Records written
// after the checkpoint it resumes from (the process was killed after them) would
// then appear twice, and a record cut short by the kill would break the JSONL:
// keep only complete records of steps up to `step` (evaluations before it; the
// resumed run evaluates at `step` again). A missing log is fine.
qs_status qs_tlog_trim(const char *path, long step, size_t *dropped_out) {
    unsigned char *text = NULL;
    size_t n = 0, len = 0, dropped = 0;
    struct stat sb;
    *dropped_out = 0;
    if (stat(path, &sb) != 0) return QS_OK;
    QS_TRY(qs_read_file(path, &text, &n));
    char *out = malloc(n + 1);
    if (!out) {
        free(text);
        return qs_error(QS_ERR_NOMEM, "%s: out of memory", path);
    }
    for (size_t a = 0; a < n;) {
        size_t b = a;
        while (b < n && text[b] != '\n') b++;
        if (b == n) { // no newline: cut short
            if (b > a) dropped++;
            break;
        }
        cJSON *j = cJSON_ParseWithLength((const char *)text + a, b - a);
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "step");
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(j, "type");
        const int is_eval = cJSON_IsString(ty) && !strcmp(ty->valuestring, "eval");
        if (cJSON_IsNumber(st) && (is_eval ? st->valuedouble < (double)step : st->valuedouble <= (double)step)) {
            memcpy(out + len, text + a, b - a);
            len += b - a;
            out[len++] = '\n';
        } else {
            dropped++;
        }
        cJSON_Delete(j);
        a = b + 1;
    }
    free(text);
    qs_status st = dropped ? qs_write_file_atomic(path, out, len) : QS_OK;
    free(out);
    *dropped_out = dropped;
    return st;
}

// train_log.c: progress line and JSONL log of the training commands (see
// train_log.h).
#include "train_log.h"
#include "cli_internal.h"

#include <cJSON.h>
#include <math.h>
#include <sys/stat.h>

static void fmt_time(char *buf, size_t n, double s) {
    if (!(s >= 0) || s > 1e8) { snprintf(buf, n, "?"); return; }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, n, "%lds", t);
}

void train_log_end_line(progress *p) {
    if (p->line_open) {
        fputs("\r\033[K", stderr);
        p->line_open = 0;
    }
}

static void json_num(FILE *f, const char *key, double x, int last) {
    if (isfinite(x)) fprintf(f, "\"%s\":%.8g%s", key, x, last ? "" : ",");
    else fprintf(f, "\"%s\":null%s", key, last ? "" : ",");
}

static void log_flush(progress *p) {
    if (fflush(p->log) != 0 && !p->log_failed) {
        p->log_failed = 1;
        train_log_end_line(p);
        fprintf(stderr, "qstar %s: warning: cannot write the log %s\n", p->cmd, p->log_path);
    }
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
static void thought_text(const progress *p, const qs_qstar_out *q, int r, int i, char *buf, size_t n) {
    size_t len = 0;
    buf[0] = 0;
    int prev = 0;
    for (int u = 0; u < q->n_thought && len + 1 < n; u++) {
        int t = q->thoughts[((size_t)r * q->n_thought + u) * q->T + i];
        const char *piece = qs_tokenizer_piece(p->tok, prev, t);
        int w = snprintf(buf + len, n - len, "%s", piece ? piece : "");
        if (w > 0) len += (size_t)w;
        if (len >= n) len = n - 1; // truncated: buf is full (and terminated)
        prev = t;
    }
}

void train_log_event(void *ctx, const qs_train_event *ev) {
    progress *p = ctx;
    switch (ev->kind) {
    case QS_TEV_STEP: {
        if (p->log) {
            fprintf(p->log, "{\"step\":%ld,", ev->step);
            json_num(p->log, "loss", ev->loss, 0);
            json_num(p->log, "lr", ev->lr, 0);
            json_num(p->log, "grad_norm", ev->grad_norm, 0);
            json_num(p->log, "tok_per_s", ev->tok_per_s, 0);
            json_num(p->log, "elapsed", ev->elapsed, 0);
            if (ev->qs) {
                const qs_qstar_out *q = ev->qs;
                json_num(p->log, "loss_lm", q->loss_lm, 0);
                json_num(p->log, "loss_base", q->loss_base, 0);
                fputs("\"loss_talk\":[", p->log);
                for (int k = 0; k < q->n_talk; k++) {
                    const double x = q->loss_talk[k];
                    if (isfinite(x)) fprintf(p->log, "%s%.8g", k ? "," : "", x);
                    else fprintf(p->log, "%snull", k ? "," : "");
                }
                fputs("],", p->log);
                json_num(p->log, "policy_loss", q->policy_loss, 0);
                json_num(p->log, "reward_mean", q->reward_mean, 0);
                json_num(p->log, "advantage_mean", q->advantage_mean, 0);
                json_num(p->log, "mix_mean", q->mix_mean, 0);
                json_num(p->log, "mix_std", q->mix_std, 0);
                if (p->tok && p->show_thoughts > 0 && q->n_thought > 0) {
                    fputs("\"thoughts\":[", p->log);
                    for (int s = 0; s < p->show_thoughts; s++) {
                        int r = s % q->R, i = (int)((7 + 13L * s) % (q->T > 1 ? q->T - 1 : 1));
                        char th[512];
                        thought_text(p, q, r, i, th, sizeof th);
                        fprintf(p->log, "%s{\"row\":%d,\"pos\":%d,\"after\":", s ? "," : "", r, i);
                        json_str(p->log, qs_tokenizer_piece(p->tok, 0, ev->tokens[(size_t)(r / p->n_passes) * q->T + i]));
                        fputs(",\"thought\":", p->log);
                        json_str(p->log, th);
                        fputc('}', p->log);
                    }
                    fputs("],", p->log);
                }
            }
            fprintf(p->log, "\"skipped\":%s}\n", ev->skipped ? "true" : "false");
            log_flush(p);
        }
        int last = ev->step == ev->total;
        char eta[32];
        fmt_time(eta, sizeof eta, ev->eta);
        char line[400];
        if (ev->qs)
            snprintf(line, sizeof line,
                     "step %ld/%ld | loss_lm %.4f | base %.4f talk %.4f | reward %+.4f | mix %+.3f | lr %.2e | %.2fk tok/s | ETA %s",
                     ev->step, ev->total, (double)ev->qs->loss_lm, (double)ev->qs->loss_base,
                     (double)ev->qs->loss_talk[0], (double)ev->qs->reward_mean, (double)ev->qs->mix_mean,
                     (double)ev->lr, ev->tok_per_s / 1000, eta);
        else
            snprintf(line, sizeof line, "step %ld/%ld | loss %.4f | lr %.2e | grad norm %.3f | %.1fk tok/s | ETA %s",
                     ev->step, ev->total, (double)ev->loss, (double)ev->lr, (double)ev->grad_norm,
                     ev->tok_per_s / 1000, eta);
        if (p->tty) {
            if (last || ev->elapsed - p->last_print >= 0.1) {
                fprintf(stderr, "\r\033[K%s", line);
                p->line_open = 1;
                p->last_print = ev->elapsed;
            }
        } else if (ev->step % p->print_every == 0 || last) {
            fprintf(stderr, "%s\n", line);
        }
        break;
    }
    case QS_TEV_EVAL:
        if (p->log) {
            fprintf(p->log, "{\"type\":\"eval\",\"step\":%ld,", ev->step);
            json_num(p->log, "val_nll", ev->val_nll, 0);
            if (p->quietstar) {
                json_num(p->log, "val_nll_base", ev->val_nll, 0);
                json_num(p->log, "val_nll_think", ev->val_nll_think, 0);
            }
            json_num(p->log, "elapsed", ev->elapsed, 1);
            fputs("}\n", p->log);
            log_flush(p);
        }
        train_log_end_line(p);
        if (ev->val_tokens > 0 && p->quietstar)
            // one sign convention everywhere: gain = base - think, positive = the thoughts help
            fprintf(stderr, "step %ld/%ld: held-out NLL base %.4f | with thoughts %.4f (gain %+.4f) (%ld tokens)\n",
                    ev->step, ev->total, ev->val_nll, ev->val_nll_think, ev->val_nll - ev->val_nll_think,
                    ev->val_tokens);
        else if (ev->val_tokens > 0)
            fprintf(stderr, "step %ld/%ld: held-out NLL %.4f (%ld tokens)\n", ev->step, ev->total, ev->val_nll,
                    ev->val_tokens);
        else
            fprintf(stderr, "step %ld/%ld: no held-out data to evaluate\n", ev->step, ev->total);
        break;
    case QS_TEV_WARN:
        train_log_end_line(p);
        fprintf(stderr, "qstar %s: warning: %s\n", p->cmd, ev->message);
        break;
    case QS_TEV_SAVE:
        train_log_end_line(p);
        fprintf(stderr, "step %ld/%ld: checkpoint saved to %s\n", ev->step, ev->total, ev->message);
        break;
    }
    fflush(stderr);
}

// A resumed run appends to the log of the run it continues. Records written
// after the checkpoint it resumes from (the process was killed after them) would
// then appear twice, and a record cut short by the kill would break the JSONL:
// keep only complete records of steps up to `step` (evaluations before it; the
// resumed run evaluates at `step` again). A missing log is fine.
int train_log_trim(const char *cmd, const char *path, long step) {
    unsigned char *text = NULL;
    size_t n = 0;
    struct stat sb;
    if (stat(path, &sb) != 0) return 0;
    if (qs_read_file(path, &text, &n) != QS_OK) return cli_fail(cmd);
    char *out = malloc(n + 1);
    if (!out) {
        free(text);
        fprintf(stderr, "qstar %s: out of memory\n", cmd);
        return 1;
    }
    size_t len = 0, dropped = 0;
    for (size_t a = 0; a < n;) {
        size_t b = a;
        while (b < n && text[b] != '\n') b++;
        if (b == n) { // no newline: cut short
            if (b > a) dropped++;
            break;
        }
        text[b] = 0;
        cJSON *j = cJSON_Parse((const char *)text + a);
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
    if (st != QS_OK) return cli_fail(cmd);
    if (dropped)
        fprintf(stderr, "log: %s: dropped %zu record%s written after the checkpoint (step %ld) or cut short\n", path,
                dropped, dropped == 1 ? "" : "s", step);
    return 0;
}

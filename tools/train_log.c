// train_log.c: progress lines of the training commands (see train_log.h).
#include "train_log.h"
#include "cli.h"

static void fmt_time(char *buf, size_t n, double s) {
    if (!(s >= 0) || s > 1e8) { snprintf(buf, n, "?"); return; }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, n, "%lds", t);
}

// tokens per second, in thousands from 1000 on ("2.93k"), else plain ("5.2"): a
// 135M-shaped paper batch trains at a few tokens per second on a laptop
static void fmt_rate(char *buf, size_t n, double tok_per_s) {
    if (tok_per_s >= 1000) snprintf(buf, n, "%.2fk", tok_per_s / 1000);
    else snprintf(buf, n, "%.1f", tok_per_s);
}

void train_log_end_line(progress *p) {
    if (p->line_open) {
        fputs("\r\033[K", stderr);
        p->line_open = 0;
    }
}

static void step_line(progress *p, const qstar_progress *ev) {
    int last = ev->step == ev->total;
    char eta[32], rate[32];
    fmt_time(eta, sizeof eta, ev->eta);
    fmt_rate(rate, sizeof rate, ev->tok_per_s);
    char line[400];
    if (p->quietstar)
        snprintf(line, sizeof line,
                 "step %ld/%ld | loss_lm %.4f | base %.4f talk %.4f | reward %+.4f | mix %+.3f | lr %.2e | %s tok/s | ETA %s",
                 ev->step, ev->total, (double)ev->loss_lm, (double)ev->loss_base, (double)ev->loss_talk,
                 (double)ev->reward_mean, (double)ev->mix_mean, (double)ev->lr, rate, eta);
    else
        snprintf(line, sizeof line, "step %ld/%ld | loss %.4f | lr %.2e | grad norm %.3f | %s tok/s | ETA %s",
                 ev->step, ev->total, (double)ev->loss, (double)ev->lr, (double)ev->grad_norm, rate, eta);
    if (p->tty) {
        if (last || ev->elapsed - p->last_print >= 0.1) {
            fprintf(stderr, "\r\033[K%s", line);
            p->line_open = 1;
            p->last_print = ev->elapsed;
        }
    } else if (ev->step % p->print_every == 0 || last) {
        fprintf(stderr, "%s\n", line);
    }
}

int train_log_event(void *user, const qstar_progress *ev) {
    progress *p = user;
    switch (ev->kind) {
    case QSTAR_EV_STEP:
        step_line(p, ev);
        break;
    case QSTAR_EV_EVAL:
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
    case QSTAR_EV_WARN:
        train_log_end_line(p);
        fprintf(stderr, "qstar %s: warning: %s\n", p->cmd, ev->message);
        break;
    case QSTAR_EV_SAVE:
        train_log_end_line(p);
        fprintf(stderr, "step %ld/%ld: checkpoint saved to %s\n", ev->step, ev->total, ev->message);
        break;
    case QSTAR_EV_NOTE:
        train_log_end_line(p);
        fprintf(stderr, "%s\n", ev->message);
        break;
    }
    fflush(stderr);
    return 0;
}

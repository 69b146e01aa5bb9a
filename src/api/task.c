// task.c: public API: qstar_eval_task, the GSM8K / CommonsenseQA zero-shot
// evaluation (SPEC section 5) with its aggregation, over the task functions
// of quietstar/evaltask.h (the protocol, prompts, valid tokens and scoring).
#include "api/api.h"
#include "quietstar/evaltask.h"

#include <ctype.h>
#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

QSTAR_API qstar_task_params qstar_task_params_default(void) {
    qstar_task_params p = {.task = "gsm8k", .data_path = NULL, .limit = 0, .think = -1, .n_ahead = 0,
                           .tau_sample = 0.0f, .greedy_thoughts = 0, .seed = 1234};
    return p;
}

static int blank_line(const char *s, ssize_t n) {
    for (ssize_t k = 0; k < n; k++)
        if (!isspace((unsigned char)s[k])) return 0;
    return 1;
}

typedef struct {
    qs_task task;
    const char *path;
    qs_task_scorer *sc;
    const int *valid;
    int n_valid;
    int max_len;
} task_run;

// Scores every example of the file (up to limit) into *out.
static qs_status score_file(const qstar_model *q, const task_run *tr, const qstar_task_params *p, FILE *f,
                            qstar_task_cb cb, void *user, qstar_task_result *out) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    double sum_score = 0, sum_first = 0;
    qs_status st = QS_OK;
    while (st == QS_OK && (!p->limit || out->n < p->limit) && (len = getline(&line, &cap, f)) > 0) {
        lineno++;
        if (blank_line(line, len)) continue;
        qs_task_prompt pr;
        qs_task_item it;
        qs_task_result res;
        if ((st = qs_task_parse_line(tr->task, line, &pr)) != QS_OK) {
            st = qs_error_prefix(st, "%s:%ld", tr->path, lineno);
            break;
        }
        st = qs_task_encode(q->tok, &pr, 1, tr->max_len, &it);
        if (st == QS_OK) {
            // each example has its own thought stream: a limit scores the first N as the full run does
            qs_rng rng;
            qs_rng_seed(&rng, p->seed * 0x9E3779B97F4A7C15ull + (uint64_t)out->n + 1);
            st = qs_task_score(tr->sc, &it, tr->valid, tr->n_valid, &rng, &res);
            if (st == QS_OK) {
                sum_score += res.score, sum_first += res.prob[0];
                out->exact_match += res.exact;
                out->truncated += it.truncated > 0;
                out->off_set += res.off_set;
                out->n++;
                if (cb && cb(user, out->n - 1, res.score, res.exact)) st = qs_error(QS_ERR_INTERRUPTED, "stopped");
            }
            qs_task_item_free(&it);
        }
        if (st != QS_OK && st != QS_ERR_INTERRUPTED) st = qs_error_prefix(st, "%s:%ld", tr->path, lineno);
        qs_task_prompt_free(&pr);
    }
    free(line);
    if (st == QS_ERR_INTERRUPTED) st = QS_OK;
    if (st == QS_OK && out->n == 0) st = qs_error(QS_ERR_FORMAT, "%s: no examples", tr->path);
    if (out->n > 0) {
        out->accuracy = sum_score / out->n;
        out->exact_match /= out->n;
        out->first_token_prob = sum_first / out->n;
    }
    return st;
}

QSTAR_API qs_status qstar_eval_task(qstar_model *q, const qstar_task_params *params, qstar_task_cb cb, void *user,
                                    qstar_task_result *out) {
    if (!q || !out) return qs_error(QS_ERR_ARG, "qstar_eval_task: NULL argument");
    memset(out, 0, sizeof *out);
    const qstar_task_params p = params ? *params : qstar_task_params_default();
    task_run tr = {.max_len = q->m->cfg.max_seq_len};
    if (p.task && !strcmp(p.task, "gsm8k")) tr.task = QS_TASK_GSM8K;
    else if (p.task && !strcmp(p.task, "csqa")) tr.task = QS_TASK_CSQA;
    else return qs_error(QS_ERR_ARG, "qstar_eval_task: task must be gsm8k or csqa, got '%s'", p.task ? p.task : "(null)");
    char def[4096];
    tr.path = p.data_path;
    if (!tr.path) {
        const char *d = getenv("QSTAR_DATA");
        if (!d || !*d) return qs_error(QS_ERR_ARG, "qstar_eval_task: no data_path given and QSTAR_DATA is not set");
        snprintf(def, sizeof def, "%s/%s", d, tr.task == QS_TASK_GSM8K ? "gsm8k/test.jsonl" : "csqa/dev_rand_split.jsonl");
        tr.path = def;
    }
    int think = 0;
    QS_TRY(qs_api_resolve_think(q, p.think, &think));
    out->think = think;
    qs_qstar_opts qo;
    QS_TRY(qs_api_thought_opts(q, think ? p.n_ahead : 0, think ? p.tau_sample : 0, think && p.greedy_thoughts, &qo));
    int *valid = NULL;
    QS_TRY(qs_task_valid_tokens(q->tok, qs_task_chars(tr.task), &valid, &tr.n_valid));
    tr.valid = valid;
    qs_status st = qs_task_scorer_create(&tr.sc, q->m, think ? &qo : NULL, think, tr.max_len);
    FILE *f = NULL;
    if (st == QS_OK && !(f = fopen(tr.path, "r")))
        st = qs_error(QS_ERR_IO, "cannot open %s: %s", tr.path, strerror(errno));
    if (st == QS_OK) {
        // single-position forwards throughout: OpenMP threads would only add fork/join
        const int omp_saved = omp_get_max_threads();
        omp_set_num_threads(1);
        st = score_file(q, &tr, &p, f, cb, user, out);
        omp_set_num_threads(omp_saved);
    }
    if (f) fclose(f);
    qs_task_scorer_free(tr.sc);
    free(valid);
    return st;
}

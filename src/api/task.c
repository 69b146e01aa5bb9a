// task.c: public API: qstar_eval_task, the GSM8K / CommonsenseQA zero-shot
// evaluation (SPEC section 5) with its aggregation and results JSON, over the
// task functions of quietstar/task_data.h (records, prompts, valid tokens) and
// quietstar/task_score.h (scoring).
#include "api/api.h"
#include "quietstar/task_data.h"
#include "quietstar/task_score.h"

#include <cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

QSTAR_API qstar_task_params qstar_task_params_default(void) {
    qstar_task_params p = {.task = "gsm8k", .data_path = NULL, .limit = 0, .think = -1, .n_ahead = 0,
                           .tau_sample = 0.0f, .greedy_thoughts = 0, .seed = 1234, .precision = QSTAR_FP32,
                           .out_path = NULL, .force = 0};
    return p;
}

static int blank_line(const char *s, ssize_t n) {
    for (ssize_t k = 0; k < n; k++)
        if (!isspace((unsigned char)s[k])) return 0;
    return 1;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    qs_task task;
    char path[4200];
    qs_task_scorer *sc;
    const int *valid;
    int n_valid;
    int max_len;
    int think;
    cJSON *examples;      // per-example records for the results JSON (NULL: none)
} task_run;

// The task and its data file (the default under $QSTAR_DATA when none is given).
static qs_status resolve(const qstar_task_params *p, task_run *tr) {
    if (p->task && !strcmp(p->task, "gsm8k")) tr->task = QS_TASK_GSM8K;
    else if (p->task && !strcmp(p->task, "csqa")) tr->task = QS_TASK_CSQA;
    else return qs_error(QS_ERR_ARG, "task must be gsm8k or csqa, got '%s'", p->task ? p->task : "(null)");
    if (p->limit < 0) return qs_error(QS_ERR_ARG, "task limit %ld is negative", p->limit);
    if (p->data_path) {
        if (strlen(p->data_path) >= sizeof tr->path) return qs_error(QS_ERR_ARG, "data path too long");
        snprintf(tr->path, sizeof tr->path, "%s", p->data_path);
        return QS_OK;
    }
    const char *d = getenv("QSTAR_DATA");
    if (!d || !*d) return qs_error(QS_ERR_ARG, "no data path given and QSTAR_DATA is not set");
    snprintf(tr->path, sizeof tr->path, "%.4000s/%s", d,
             tr->task == QS_TASK_GSM8K ? "gsm8k/test.jsonl" : "csqa/dev_rand_split.jsonl");
    return QS_OK;
}

QSTAR_API qs_status qstar_task_check(const qstar_task_params *params) {
    const qstar_task_params p = params ? *params : qstar_task_params_default();
    task_run tr = {0};
    QS_TRY(qs_api_out_check(p.out_path, p.force));
    return resolve(&p, &tr);
}

QSTAR_API qs_status qstar_task_count(const qstar_task_params *params, long *n) {
    if (!n) return qs_error(QS_ERR_ARG, "qstar_task_count: NULL argument");
    *n = 0;
    const qstar_task_params p = params ? *params : qstar_task_params_default();
    task_run tr = {0};
    QS_TRY(resolve(&p, &tr));
    FILE *f = fopen(tr.path, "r");
    if (!f) return qs_error(QS_ERR_IO, "cannot open %s: %s", tr.path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((!p.limit || *n < p.limit) && (len = getline(&line, &cap, f)) > 0) *n += !blank_line(line, len);
    free(line);
    fclose(f);
    return QS_OK;
}

// The results JSON record of one example.
static void add_example(task_run *tr, long index, long lineno, const qs_task_prompt *pr, const qs_task_item *it,
                        const qs_task_result *res) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "index", (double)index);
    cJSON_AddNumberToObject(e, "line", (double)lineno);
    qs_api_json_text(e, "answer", pr->answer);
    cJSON_AddNumberToObject(e, "score", res->score);
    cJSON_AddBoolToObject(e, "exact", res->exact);
    cJSON_AddNumberToObject(e, "n_tokens", it->n);
    if (it->truncated) cJSON_AddNumberToObject(e, "truncated", it->truncated);
    double probs[QS_TASK_MAX_ANS];
    const int na = QS_MIN(res->n_ans, QS_TASK_MAX_ANS);
    for (int k = 0; k < na; k++) probs[k] = res->prob[k];
    cJSON_AddItemToObject(e, "token_probs", cJSON_CreateDoubleArray(probs, na));
    if (tr->think) {
        for (int k = 0; k < na; k++) probs[k] = res->mix_w[k];
        cJSON_AddItemToObject(e, "mix", cJSON_CreateDoubleArray(probs, na));
    }
    cJSON_AddItemToArray(tr->examples, e);
}

// Parses, encodes and scores one line (lineno) of the data file into *res.
static qs_status score_line(const qstar_model *q, task_run *tr, const qstar_task_params *p, const char *line,
                            long lineno, long index, qs_task_result *res, int *truncated) {
    qs_task_prompt pr;
    qs_task_item it;
    QS_TRY(qs_task_parse_line(tr->task, line, &pr));
    qs_status st = qs_task_encode(q->tok, &pr, 1, tr->max_len, &it);
    if (st == QS_OK) {
        // each example has its own thought stream: a limit scores the first N as the full run does
        qs_rng rng;
        qs_rng_seed(&rng, p->seed * 0x9E3779B97F4A7C15ull + (uint64_t)index + 1);
        st = qs_task_score(tr->sc, &it, tr->valid, tr->n_valid, &rng, res);
        *truncated = it.truncated > 0;
        if (st == QS_OK && tr->examples) add_example(tr, index, lineno, &pr, &it, res);
        qs_task_item_free(&it);
    }
    qs_task_prompt_free(&pr);
    return st;
}

// Scores every example of the file (up to limit) into *out.
static qs_status score_file(const qstar_model *q, task_run *tr, const qstar_task_params *p, FILE *f,
                            qstar_task_cb cb, void *user, qstar_task_result *out) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    double sum_score = 0, sum_first = 0, sum_chance = 0;
    qs_status st = QS_OK;
    while (st == QS_OK && (!p->limit || out->n < p->limit) && (len = getline(&line, &cap, f)) > 0) {
        lineno++;
        if (blank_line(line, len)) continue;
        qs_task_result res;
        int trunc = 0;
        st = score_line(q, tr, p, line, lineno, out->n, &res, &trunc);
        if (st != QS_OK) {
            st = qs_error_prefix(st, "%s:%ld", tr->path, lineno);
            break;
        }
        sum_score += res.score, sum_first += res.prob[0];
        sum_chance += qs_task_chance(tr->n_valid, res.n_ans);
        out->exact_match += res.exact;
        out->truncated += trunc;
        out->off_set += res.off_set;
        out->n++;
        if (cb && cb(user, out->n - 1, res.score, res.exact)) st = QS_ERR_INTERRUPTED;
    }
    free(line);
    if (st == QS_ERR_INTERRUPTED) st = QS_OK;
    if (st == QS_OK && out->n == 0) st = qs_error(QS_ERR_FORMAT, "%s: no examples", tr->path);
    if (out->n > 0) {
        out->accuracy = sum_score / out->n;
        out->exact_match /= out->n;
        out->first_token_prob = sum_first / out->n;
        out->accuracy_chance = sum_chance / out->n;
    }
    out->first_token_chance = qs_task_chance(tr->n_valid, 1);
    return st;
}

// The results JSON of a finished run (the CLI's --out).
static qs_status write_results(const qstar_model *q, task_run *tr, const qstar_task_params *p, const qs_qstar_opts *qo,
                               const qstar_task_result *r, double seconds) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return qs_error(QS_ERR_NOMEM, "out of memory for the JSON results");
    cJSON_AddStringToObject(root, "task", qs_task_name(tr->task));
    qs_api_json_text(root, "model", q->path);
    qs_api_json_text(root, "data", tr->path);
    cJSON_AddBoolToObject(root, "think", tr->think);
    qs_api_json_thoughts(root, tr->think, qo);
    cJSON_AddNumberToObject(root, "seed", (double)p->seed);
    cJSON_AddNumberToObject(root, "n", (double)r->n);
    cJSON_AddNumberToObject(root, "accuracy", r->accuracy); // = paper_score (kept for older readers)
    cJSON_AddNumberToObject(root, "paper_score", r->accuracy);
    cJSON_AddNumberToObject(root, "paper_score_chance", r->accuracy_chance);
    cJSON_AddNumberToObject(root, "first_token_chance", r->first_token_chance);
    cJSON_AddNumberToObject(root, "exact_match", r->exact_match);
    cJSON_AddNumberToObject(root, "first_token_prob", r->first_token_prob);
    cJSON_AddNumberToObject(root, "truncated", (double)r->truncated);
    cJSON_AddNumberToObject(root, "off_set_tokens", (double)r->off_set);
    cJSON_AddNumberToObject(root, "seconds", seconds);
    cJSON_AddItemToObject(root, "examples", tr->examples); // last, for readability
    tr->examples = NULL;
    qs_status st = qs_api_json_write(p->out_path, root);
    cJSON_Delete(root);
    return st;
}

// Scorer, data file and the run over it (thread count: single-position
// forwards throughout, so OpenMP threads would only add fork/join).
static qs_status run_task(qstar_model *q, task_run *tr, const qstar_task_params *p, const qs_qstar_opts *qo,
                          qstar_task_cb cb, void *user, qstar_task_result *out) {
    QS_TRY(qs_task_scorer_create(&tr->sc, q->m, tr->think ? qo : NULL, tr->think, tr->max_len));
    FILE *f = fopen(tr->path, "r");
    if (!f) return qs_error(QS_ERR_IO, "cannot open %s: %s", tr->path, strerror(errno));
    const int omp_saved = omp_get_max_threads();
    omp_set_num_threads(1);
    qs_status st = score_file(q, tr, p, f, cb, user, out);
    omp_set_num_threads(omp_saved);
    fclose(f);
    return st;
}

QSTAR_API qs_status qstar_eval_task(qstar_model *q, const qstar_task_params *params, qstar_task_cb cb, void *user,
                                    qstar_task_result *out) {
    if (!q || !out) return qs_error(QS_ERR_ARG, "qstar_eval_task: NULL argument");
    memset(out, 0, sizeof *out);
    out->mixing = "";
    const qstar_task_params p = params ? *params : qstar_task_params_default();
    const double t0 = now();
    task_run tr = {.max_len = q->m->cfg.max_seq_len};
    QS_TRY(qs_api_out_check(p.out_path, p.force)); // before any work
    QS_TRY(resolve(&p, &tr));
    QS_TRY(qs_api_resolve_think(q, p.think, &tr.think));
    out->think = tr.think;
    qs_qstar_opts qo;
    QS_TRY(qs_api_thought_opts(q, tr.think ? p.n_ahead : 0, tr.think ? p.tau_sample : 0, tr.think && p.greedy_thoughts,
                               &qo));
    if (tr.think) {
        out->n_ahead = qo.n_ahead, out->tau_sample = qo.tau_sample;
        out->mixing = qo.mixing == QS_MIX_SIGMOID ? "sigmoid" : "linear";
    }
    int *valid = NULL;
    QS_TRY(qs_task_valid_tokens(q->tok, qs_task_chars(tr.task), &valid, &tr.n_valid));
    tr.valid = valid;
    qs_precision saved;
    qs_status st = qs_api_precision(q, p.precision, &saved);
    if (st == QS_OK && p.out_path && !(tr.examples = cJSON_CreateArray()))
        st = qs_error(QS_ERR_NOMEM, "out of memory for the JSON results");
    if (st == QS_OK) st = run_task(q, &tr, &p, &qo, cb, user, out);
    q->m->precision = saved;
    if (st == QS_OK && p.out_path) st = write_results(q, &tr, &p, &qo, out, now() - t0);
    cJSON_Delete(tr.examples);
    qs_task_scorer_free(tr.sc);
    free(valid);
    return st;
}

// evaltask.c: GSM8K / CommonsenseQA scoring (SPEC.md section 5) and held-out
// NLL with and without thoughts (see evaltask.h).
#include "quietstar/evaltask.h"
#include "quietstar/think.h"
#include "model/workspace.h"
#include "ops/ops.h"

#include <cJSON.h>
#include <ctype.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *qs_task_name(qs_task t) { return t == QS_TASK_GSM8K ? "gsm8k" : "csqa"; }
const char *qs_task_metric_name(qs_task t) {
    (void)t;
    return "paper score";
}
double qs_task_chance(int n_valid, int n_ans) { return n_valid > 0 && n_ans >= 0 ? pow(1.0 / n_valid, n_ans) : 0.0; }
const char *qs_task_chars(qs_task t) { return t == QS_TASK_GSM8K ? "0123456789\n" : "ABCDE\n"; }

// ---------------------------------------------------------------------------
// Options in config.json

int qs_task_meta_tokens(const qs_tokenizer *tok, int ids[2]) {
    int n = 0;
    const char *names[2] = {"<|startthought|>", "<|endthought|>"};
    for (int k = 0; k < 2; k++) {
        int id = qs_tokenizer_find(tok, names[k]);
        if (id >= 0) ids[n++] = id;
    }
    return n;
}

// ---------------------------------------------------------------------------
// Prompts

void qs_task_prompt_free(qs_task_prompt *p) {
    if (!p) return;
    free(p->prompt);
    p->prompt = NULL;
}

qs_status qs_gsm8k_final_number(const char *answer, char *out, size_t cap) {
    const char *h = NULL;
    for (const char *s = strstr(answer, "####"); s; s = strstr(s + 4, "####")) h = s;
    if (!h) return qs_error(QS_ERR_FORMAT, "GSM8K answer has no '####' line");
    h += 4;
    while (*h && isspace((unsigned char)*h)) h++;
    size_t n = 0;
    for (const char *s = h; *s; s++) {
        if (*s == ',') continue;
        if (n + 1 >= cap) return qs_error(QS_ERR_FORMAT, "GSM8K final answer too long");
        out[n++] = *s;
    }
    while (n > 0 && isspace((unsigned char)out[n - 1])) n--;
    out[n] = '\0';
    if (n == 0) return qs_error(QS_ERR_FORMAT, "GSM8K answer has an empty '####' line");
    return QS_OK;
}

// Growing string helper.
typedef struct { char *s; size_t n, cap; int oom; } sbuf;
static void sb_add(sbuf *b, const char *s) {
    size_t k = strlen(s);
    if (b->oom) return;
    if (b->n + k + 1 > b->cap) {
        size_t c = QS_MAX(b->cap * 2, b->n + k + 64);
        char *t = realloc(b->s, c);
        if (!t) { b->oom = 1; return; }
        b->s = t, b->cap = c;
    }
    memcpy(b->s + b->n, s, k + 1);
    b->n += k;
}

static qs_status finish_prompt(sbuf *b, size_t answer_off, const char *answer, qs_task_prompt *p) {
    if (b->oom) { free(b->s); return qs_error(QS_ERR_NOMEM, "out of memory for a prompt"); }
    if (strlen(answer) >= sizeof p->answer) { free(b->s); return qs_error(QS_ERR_FORMAT, "answer '%.20s...' too long", answer); }
    p->prompt = b->s;
    p->answer_off = answer_off;
    snprintf(p->answer, sizeof p->answer, "%s", answer);
    return QS_OK;
}

qs_status qs_gsm8k_prompt(const char *question, const char *final_number, qs_task_prompt *p) {
    memset(p, 0, sizeof *p);
    sbuf b = {0};
    sb_add(&b, "Q: ");
    sb_add(&b, question);
    sb_add(&b, "\nA:");
    size_t off = b.n;
    sb_add(&b, " ");
    sb_add(&b, final_number);
    sb_add(&b, "\n");
    return finish_prompt(&b, off, final_number, p);
}

qs_status qs_csqa_prompt(const char *stem, const char *const *labels, const char *const *texts, int n,
                         const char *key, qs_task_prompt *p) {
    memset(p, 0, sizeof *p);
    sbuf b = {0};
    sb_add(&b, "Q: ");
    sb_add(&b, stem);
    for (int k = 0; k < n; k++) {
        sb_add(&b, "\n(");
        sb_add(&b, labels[k]);
        sb_add(&b, ") ");
        sb_add(&b, texts[k]);
    }
    sb_add(&b, "\nA:");
    size_t off = b.n;
    sb_add(&b, " ");
    sb_add(&b, key);
    sb_add(&b, "\n");
    return finish_prompt(&b, off, key, p);
}

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

qs_status qs_task_parse_line(qs_task task, const char *line, qs_task_prompt *p) {
    memset(p, 0, sizeof *p);
    cJSON *root = cJSON_Parse(line);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return qs_error(QS_ERR_FORMAT, "not a JSON object");
    }
    qs_status st;
    if (task == QS_TASK_GSM8K) {
        const char *q = jstr(root, "question"), *a = jstr(root, "answer");
        char num[64];
        if (!q || !a) st = qs_error(QS_ERR_FORMAT, "GSM8K record needs string fields \"question\" and \"answer\"");
        else if ((st = qs_gsm8k_final_number(a, num, sizeof num)) == QS_OK) st = qs_gsm8k_prompt(q, num, p);
    } else {
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(root, "question");
        const char *key = jstr(root, "answerKey"), *stem = q ? jstr(q, "stem") : NULL;
        const cJSON *ch = q ? cJSON_GetObjectItemCaseSensitive(q, "choices") : NULL;
        int n = cJSON_IsArray(ch) ? cJSON_GetArraySize(ch) : 0;
        if (!key || !stem || n < 1 || n > 26) {
            st = qs_error(QS_ERR_FORMAT, "CSQA record needs \"answerKey\", \"question\".\"stem\" and 1-26 \"question\".\"choices\"");
        } else {
            const char *labels[26], *texts[26];
            st = QS_OK;
            for (int k = 0; k < n && st == QS_OK; k++) {
                const cJSON *c = cJSON_GetArrayItem(ch, k);
                labels[k] = jstr(c, "label"), texts[k] = jstr(c, "text");
                if (!labels[k] || !texts[k]) st = qs_error(QS_ERR_FORMAT, "CSQA choice %d needs \"label\" and \"text\"", k + 1);
            }
            if (st == QS_OK) st = qs_csqa_prompt(stem, labels, texts, n, key, p);
        }
    }
    cJSON_Delete(root);
    return st;
}

// ---------------------------------------------------------------------------
// Tokens

static int is_byte_token(const char *raw) {
    return raw && strlen(raw) == 6 && !strncmp(raw, "<0x", 3) && isxdigit((unsigned char)raw[3]) &&
           isxdigit((unsigned char)raw[4]) && raw[5] == '>';
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

qs_status qs_task_valid_tokens(const qs_tokenizer *tok, const char *chars, int **ids, int *n) {
    *ids = NULL, *n = 0;
    const int V = qs_tokenizer_vocab_size(tok);
    const size_t nc = strlen(chars);
    int *out = qs_malloc(((size_t)V + nc) * sizeof(int), "valid tokens");
    int *found = calloc(nc + 1, sizeof(int));
    if (!out || !found) {
        free(out), free(found);
        return qs_error(QS_ERR_NOMEM, "out of memory for the valid tokens");
    }
    int cnt = 0;
    // vocabulary pieces (not byte-fallback tokens): "5", " 5", "\n"
    for (int v = 0; v < V; v++) {
        if (is_byte_token(qs_tokenizer_raw_piece(tok, v))) continue;
        // prev = -1 (not BOS): the piece as it reads mid-text
        const char *p = qs_tokenizer_piece(tok, -1, v);
        if (p[0] == ' ' && p[1]) p++;
        if (!p[0] || p[1]) continue;
        const char *c = memchr(chars, p[0], nc);
        if (!c) continue;
        out[cnt++] = v;
        found[c - chars] = 1;
    }
    // byte-fallback tokens: the newline byte always (the tokenizer writes a
    // newline as <0x0A>), any other character only when no piece spells it
    for (size_t k = 0; k < nc; k++) {
        if (found[k] && chars[k] != '\n') continue;
        char b[8];
        snprintf(b, sizeof b, "<0x%02X>", (unsigned char)chars[k]);
        int id = qs_tokenizer_find(tok, b);
        if (id >= 0) {
            int dup = 0;
            for (int j = 0; j < cnt && !dup; j++) dup = out[j] == id;
            if (!dup) out[cnt++] = id;
            found[k] = 1;
        }
        if (!found[k]) {
            free(found), free(out);
            return qs_error(QS_ERR_UNSUPPORTED, "the vocabulary has no token for the answer character %s%c",
                            chars[k] == '\n' ? "newline" : "", chars[k] == '\n' ? ' ' : chars[k]);
        }
    }
    free(found);
    qsort(out, (size_t)cnt, sizeof(int), cmp_int);
    *ids = out, *n = cnt;
    return QS_OK;
}

void qs_task_item_free(qs_task_item *it) {
    if (!it) return;
    free(it->tokens);
    free(it->pos);
    memset(it, 0, sizeof *it);
}

static int only_space(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (!isspace((unsigned char)*s)) return 0;
    return 1;
}

qs_status qs_task_encode(const qs_tokenizer *tok, const qs_task_prompt *p, int skip_space, int max_len,
                         qs_task_item *it) {
    memset(it, 0, sizeof *it);
    const size_t len = strlen(p->prompt);
    if (max_len < 2) return qs_error(QS_ERR_ARG, "max_len %d too small", max_len);
    if (len > 0x3fffffff) return qs_error(QS_ERR_ARG, "prompt too long");
    int cap = (int)len + 3, n = 0;
    int *ids = qs_malloc((size_t)cap * sizeof(int), "prompt tokens");
    if (!ids) return QS_ERR_NOMEM;
    qs_status st = qs_tokenizer_encode(tok, p->prompt, 1, 0, ids, cap, &n);
    if (st != QS_OK) { free(ids); return st; }
    // byte offset of each token in the decoded text (decode(encode(s)) == s)
    int first = -1;
    size_t off = 0;
    for (int j = 1; j < n; j++) {
        const char *piece = qs_tokenizer_piece(tok, ids[j - 1], ids[j]);
        size_t pl = strlen(piece);
        if (first < 0 && off + pl > p->answer_off) { // first token reaching into the answer
            first = j;
            if (skip_space && off >= p->answer_off && only_space(piece)) first = j + 1;
        }
        off += pl;
    }
    if (first < 0 || first >= n) {
        free(ids);
        return qs_error(QS_ERR_FORMAT, "prompt has no answer tokens");
    }
    int n_ans = n - first;
    if (n_ans + 1 > max_len) {
        free(ids);
        return qs_error(QS_ERR_ARG, "answer of %d tokens does not fit in %d positions", n_ans, max_len);
    }
    int drop = n > max_len ? n - max_len : 0;
    if (drop) { // keep BOS, drop question tokens from the front
        memmove(ids + 1, ids + 1 + drop, (size_t)(n - 1 - drop) * sizeof(int));
        n -= drop;
        first -= drop;
    }
    it->pos = qs_malloc((size_t)n_ans * sizeof(int), "answer positions");
    if (!it->pos) { free(ids); return QS_ERR_NOMEM; }
    for (int k = 0; k < n_ans; k++) it->pos[k] = first + k - 1;
    it->tokens = ids, it->n = n, it->n_ans = n_ans, it->truncated = drop;
    return QS_OK;
}

double qs_restricted_prob(const float *logits, const int *valid, int n, int target, int *is_argmax, int *in_set) {
    int have = 0;
    float mx = logits[target];
    for (int k = 0; k < n; k++) {
        if (valid[k] == target) have = 1;
        if (logits[valid[k]] > mx) mx = logits[valid[k]];
    }
    double s = 0.0;
    for (int k = 0; k < n; k++) s += exp((double)logits[valid[k]] - mx);
    if (!have) s += exp((double)logits[target] - mx);
    if (in_set) *in_set = have;
    if (is_argmax) {
        // first maximum in vocabulary order among the set (target included)
        int best = -1;
        for (int k = 0; k < n; k++)
            if (best < 0 || logits[valid[k]] > logits[best] || (logits[valid[k]] == logits[best] && valid[k] < best))
                best = valid[k];
        if (!have && (best < 0 || logits[target] > logits[best] || (logits[target] == logits[best] && target < best)))
            best = target;
        *is_argmax = best == target;
    }
    return exp((double)logits[target] - mx) / s;
}

// ---------------------------------------------------------------------------
// Scoring

struct qs_task_scorer {
    const qs_model *m;
    int think, max_len;
    qs_qstar_opts o;
    qs_thinker *th;      // thinking
    qs_workspace *ws;    // plain: one block forward of the whole sequence
    float *x0, *h;       // [max_len, H]
    float *logits;       // [V]
    int *thought;        // [n_thought]
};

void qs_task_scorer_free(qs_task_scorer *s) {
    if (!s) return;
    qs_thinker_free(s->th);
    qs_workspace_free(s->ws);
    free(s->x0), free(s->h), free(s->logits), free(s->thought);
    free(s);
}

qs_status qs_task_scorer_create(qs_task_scorer **out, const qs_model *m, const qs_qstar_opts *o, int think,
                                int max_len) {
    *out = NULL;
    if (max_len < 2) return qs_error(QS_ERR_ARG, "max_len %d too small", max_len);
    qs_task_scorer *s = calloc(1, sizeof *s);
    if (!s) return qs_error(QS_ERR_NOMEM, "out of memory for the scorer");
    s->m = m, s->think = o && think, s->max_len = max_len;
    if (o) s->o = *o;
    const size_t H = m->cfg.dim, V = m->cfg.vocab_size;
    qs_status st;
    if (s->think) {
        st = qs_thinker_create(&s->th, m, o, max_len);
        if (st == QS_OK && !(s->thought = qs_calloc((size_t)QS_MAX(1, o->n_ahead - 3), sizeof(int), "thought")))
            st = QS_ERR_NOMEM;
    } else {
        st = qs_workspace_create_ex(&s->ws, &m->cfg, 1, max_len, 1, 0);
        if (st == QS_OK) {
            s->ws->mask = NULL;
            s->x0 = qs_malloc((size_t)max_len * H * sizeof(float), "scorer input");
            s->h = qs_malloc((size_t)max_len * H * sizeof(float), "scorer hidden states");
            if (!s->x0 || !s->h) st = QS_ERR_NOMEM;
        }
    }
    if (st == QS_OK && !(s->logits = qs_malloc(V * sizeof(float), "logits"))) st = QS_ERR_NOMEM;
    if (st != QS_OK) { qs_task_scorer_free(s); return st; }
    *out = s;
    return QS_OK;
}

static void score_token(qs_task_result *r, const float *logits, const int *valid, int n_valid, int target, float w) {
    int am, in;
    double p = qs_restricted_prob(logits, valid, n_valid, target, &am, &in);
    if (r->n_ans < QS_TASK_MAX_ANS) r->prob[r->n_ans] = p, r->mix_w[r->n_ans] = w;
    r->n_ans++;
    r->score *= p;
    if (!am) r->exact = 0;
    if (!in) r->off_set++;
}

qs_status qs_task_score(qs_task_scorer *s, const qs_task_item *it, const int *valid, int n_valid, qs_rng *rng,
                        qs_task_result *r) {
    memset(r, 0, sizeof *r);
    r->score = 1.0, r->exact = 1;
    const qs_model *m = s->m;
    const int H = m->cfg.dim, V = m->cfg.vocab_size;
    if (it->n > s->max_len) return qs_error(QS_ERR_ARG, "example of %d tokens exceeds the scorer's %d", it->n, s->max_len);
    if (it->n_ans < 1) return qs_error(QS_ERR_ARG, "example has no answer tokens");
    for (int k = 0; k < n_valid; k++)
        if (valid[k] < 0 || valid[k] >= V) return qs_error(QS_ERR_ARG, "valid token %d outside vocabulary", valid[k]);
    for (int j = 0; j < it->n; j++)
        if (it->tokens[j] < 0 || it->tokens[j] >= V) return qs_error(QS_ERR_ARG, "token %d outside vocabulary", it->tokens[j]);
    const int last = it->pos[it->n_ans - 1];
    qs_status st = QS_OK;
    if (s->think) {
        // A thought at position i changes only the prediction made at i (its
        // keys/values are visible to nobody else: SPEC section 2's diagonal
        // mask; the thinker drops them). So the teacher-forced eval-mode
        // forward "thoughts at every position" gives, at the answer
        // positions, exactly what one thought at each answer position after
        // a plain prefix gives: we think only where a prediction is scored.
        // Single-position forwards: OpenMP threads only add fork/join cost.
        const int saved = omp_get_max_threads();
        omp_set_num_threads(1);
        // a fresh prefix for each example: recreate the thinker's state
        qs_thinker_free(s->th);
        s->th = NULL;
        st = qs_thinker_create(&s->th, m, &s->o, last + 1);
        int a = 0;
        for (int i = 0; st == QS_OK && i <= last; i++) {
            st = qs_thinker_feed(s->th, it->tokens[i], i);
            if (st != QS_OK || i != it->pos[a]) continue;
            float w = 0.0f;
            st = qs_thinker_think(s->th, rng, s->logits, s->thought, &w);
            if (st == QS_OK) score_token(r, s->logits, valid, n_valid, it->tokens[i + 1], w);
            a++;
        }
        omp_set_num_threads(saved);
    } else {
        const int n = last + 1;
        for (int i = 0; i < n; i++) memcpy(s->x0 + (size_t)i * H, m->w.embed + (size_t)it->tokens[i] * H, H * sizeof(float));
        st = qs_forward_block(m, s->ws, s->x0, 0, 1, 0, n, s->h);
        for (int a = 0; st == QS_OK && a < it->n_ans; a++) {
            int i = it->pos[a];
            matmul_forward(s->logits, s->h + (size_t)i * H, m->w.lm_head, NULL, 1, H, V);
            score_token(r, s->logits, valid, n_valid, it->tokens[i + 1], 0.0f);
        }
    }
    return st;
}

// ---------------------------------------------------------------------------
// Held-out NLL

void qs_nll_tokens_free(qs_nll_tokens *r) {
    if (!r) return;
    free(r->t);
    free(r->thoughts);
    memset(r, 0, sizeof *r);
}

static qs_status rec_push(qs_nll_tokens *r, const qs_nll_token *t, const int *thought) {
    if (r->n == r->cap) {
        size_t c = r->cap ? 2 * r->cap : 1024;
        qs_nll_token *p = realloc(r->t, c * sizeof *p);
        if (!p) return qs_error(QS_ERR_NOMEM, "out of memory for per-token records");
        r->t = p, r->cap = c;
    }
    size_t need = (r->n + 1) * (size_t)r->n_thought;
    if (need > r->th_cap) {
        size_t c = QS_MAX(need, 2 * r->th_cap);
        int *p = realloc(r->thoughts, c * sizeof *p);
        if (!p) return qs_error(QS_ERR_NOMEM, "out of memory for per-token thoughts");
        r->thoughts = p, r->th_cap = c;
    }
    r->t[r->n] = *t;
    r->t[r->n].thought = r->n * (size_t)r->n_thought;
    if (r->n_thought && thought) memcpy(r->thoughts + r->t[r->n].thought, thought, r->n_thought * sizeof(int));
    r->n++;
    return QS_OK;
}

static int cmp_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

// The thought gain (base - think NLL) with a 95% interval: per window, the
// mean difference of its tokens; t-interval over the windows (tokens of one
// window are not independent, windows nearly are).
static void gain_ci(const qs_nll_tokens *rec, qs_nll_summary *sum) {
    double S = 0, S2 = 0, d = 0;
    long nw = 0, nt = 0;
    for (size_t k = 0; k <= rec->n; k++) {
        if (k == rec->n || (k > 0 && rec->t[k].window != rec->t[k - 1].window)) {
            if (nt > 0) {
                double x = d / nt;
                S += x, S2 += x * x, nw++;
            }
            d = 0, nt = 0;
            if (k == rec->n) break;
        }
        d += (double)rec->t[k].nll_base - rec->t[k].nll_think, nt++;
    }
    sum->gain_windows = nw;
    sum->gain = nw ? S / nw : NAN;
    sum->gain_ci95 = NAN;
    if (nw >= 2) {
        double var = (S2 - S * S / nw) / (nw - 1);
        sum->gain_ci95 = qs_t95(nw - 1) * sqrt(var > 0 ? var / nw : 0);
    }
}

double qs_t95(long df) {
    static const double t[30] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                                 2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                                 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
    if (df < 1) return NAN;
    if (df <= 30) return t[df - 1];
    return 1.960 + 2.4 / (double)df; // within 0.003 of the exact quantile for df > 30
}

typedef struct { float base, think; } pairf;
static int cmp_pair_desc(const void *a, const void *b) { return cmp_desc(&((const pairf *)a)->base, &((const pairf *)b)->base); }

void qs_nll_summarize(const qs_nll_tokens *rec, int think, qs_nll_summary *sum) {
    memset(sum, 0, sizeof *sum);
    sum->n_tokens = (long)rec->n;
    const double nan = NAN;
    sum->nll_think = sum->hard10_think = sum->hard20_think = nan;
    if (rec->n == 0) {
        sum->nll_base = sum->hard10_base = sum->hard20_base = nan;
        return;
    }
    pairf *p = malloc(rec->n * sizeof *p);
    double sb = 0, st = 0, sm = 0, son = 0;
    for (size_t k = 0; k < rec->n; k++) {
        sb += rec->t[k].nll_base, st += rec->t[k].nll_think, sm += rec->t[k].mix_w, son += rec->t[k].thought_on;
        if (p) p[k].base = rec->t[k].nll_base, p[k].think = rec->t[k].nll_think;
    }
    sum->nll_base = sb / rec->n;
    sum->mix_mean = sm / rec->n;
    sum->think_frac = think ? son / rec->n : 0.0;
    if (think) {
        sum->nll_think = st / rec->n;
        gain_ci(rec, sum);
    }
    if (!p) return;
    qsort(p, rec->n, sizeof *p, cmp_pair_desc);
    const double frac[2] = {0.10, 0.20};
    for (int f = 0; f < 2; f++) {
        size_t k = (size_t)ceil(frac[f] * rec->n);
        if (k < 1) k = 1;
        double b = 0, t = 0;
        for (size_t j = 0; j < k; j++) b += p[j].base, t += p[j].think;
        double *db = f ? &sum->hard20_base : &sum->hard10_base, *dt = f ? &sum->hard20_think : &sum->hard10_think;
        *db = b / k;
        if (think) *dt = t / k;
    }
    free(p);
}

// Base pass of `rows` windows: per-position NLL of the next token (0 where
// none) and entropy of the base prediction, nll/ent [rows*T].
static qs_status base_pass(const qs_model *m, qs_workspace *ws, float *xin, float *logits, int *tgt, const int *tokens,
                           const int *mask, int B, int rows, int T, float *nll, float *ent) {
    const int H = m->cfg.dim, V = m->cfg.vocab_size;
    ws->mask = mask;
    for (int r = 0; r < B * T; r++) memcpy(xin + (size_t)r * H, m->w.embed + (size_t)tokens[r] * H, H * sizeof(float));
    QS_TRY(qs_forward_block(m, ws, xin, 0, 1, 0, T, ws->h));
    for (int r = 0; r < rows; r++) {
        for (int i = 0; i < T; i++) tgt[i] = i + 1 < T && mask[r * T + i + 1] ? tokens[r * T + i + 1] : -1;
        matmul_forward(logits, ws->h + (size_t)r * T * H, m->w.lm_head, NULL, T, H, V);
        for (int i = 0; i < T; i++) ent[(size_t)r * T + i] = (float)qs_logits_entropy(logits + (size_t)i * V, V);
        crossentropy_forward(nll + (size_t)r * T, logits, tgt, T, V);
    }
    return QS_OK;
}

qs_status qs_nll_eval(const qs_model *m, const qs_token_stream *s, const qs_qstar_opts *o, int think, int B, int T,
                      qs_rng *rng, qs_nll_tokens *rec_out, qs_progress_fn progress, void *ud, qs_nll_summary *sum) {
    return qs_nll_eval_ctl(m, s, o, think, NULL, B, T, rng, rec_out, progress, ud, sum);
}

qs_status qs_nll_eval_ctl(const qs_model *m, const qs_token_stream *s, const qs_qstar_opts *o, int think,
                          const qs_think_ctl *ctl_in, int B, int T, qs_rng *rng, qs_nll_tokens *rec_out,
                          qs_progress_fn progress, void *ud, qs_nll_summary *sum) {
    think = think && o;
    const qs_think_ctl ctl = ctl_in ? *ctl_in : qs_think_ctl_default();
    if (B < 1 || T < 2) return qs_error(QS_ERR_ARG, "batch %dx%d too small", B, T);
    if (T > m->cfg.max_seq_len) return qs_error(QS_ERR_ARG, "window %d exceeds the model's max_seq_len %d", T, m->cfg.max_seq_len);
    qs_nll_tokens local = {0}, *rec = rec_out ? rec_out : &local;
    qs_qstar_opts eo;
    if (think) {
        eo = *o; // SPEC section 5: evaluation mode
        eo.n_passes = 1, eo.n_talk = 1, eo.reward_baseline = QS_BASELINE_MEAN;
        if (T < eo.n_talk + 2) return qs_error(QS_ERR_ARG, "window %d too short for thoughts (needs 3)", T);
    }
    const int nT = think ? eo.n_ahead - 3 : 0, V = m->cfg.vocab_size;
    if (rec->n == 0) rec->n_thought = nT;
    else if (rec->n_thought != nT) return qs_error(QS_ERR_ARG, "per-token records hold thoughts of another length");
    const size_t base_n = rec->n, BT = (size_t)B * T;
    qs_qstar *q = NULL;
    qs_workspace *ws = NULL;
    int *tokens = malloc(BT * sizeof(int)), *mask = malloc(BT * sizeof(int)), *forced = NULL;
    float *logits = NULL, *nll = NULL, *ent = NULL, *xin = NULL;
    int *tgt = NULL;
    qs_status st = QS_OK;
    if (!tokens || !mask) st = qs_error(QS_ERR_NOMEM, "out of memory for a %dx%d batch", B, T);
    if (st == QS_OK && think) st = qs_qstar_create(&q, m, &eo, B, T);
    if (st == QS_OK && think && ctl.random_thoughts && nT > 0 &&
        !(forced = qs_malloc(BT * nT * sizeof(int), "random thoughts")))
        st = QS_ERR_NOMEM;
    if (st == QS_OK) st = qs_workspace_create_ex(&ws, &m->cfg, B, T, 1, 0);
    if (st == QS_OK) {
        logits = qs_malloc((size_t)T * V * sizeof(float), "logits");
        nll = qs_malloc(BT * sizeof(float), "nll");
        ent = qs_malloc(BT * sizeof(float), "entropy");
        tgt = qs_malloc((size_t)T * sizeof(int), "targets");
        xin = qs_malloc(BT * m->cfg.dim * sizeof(float), "input embeddings");
        if (!logits || !nll || !ent || !tgt || !xin) st = QS_ERR_NOMEM;
    }
    const size_t nw = qs_stream_n_windows(s, T);
    for (size_t w0 = 0; st == QS_OK && w0 < nw; w0 += (size_t)B) {
        int rows = 0;
        if ((st = qs_stream_eval_batch(s, w0, B, T, tokens, mask, &rows)) != QS_OK) break;
        if ((st = base_pass(m, ws, xin, logits, tgt, tokens, mask, B, rows, T, nll, ent)) != QS_OK) break;
        qs_qstar_out out;
        if (think) {
            if (forced)
                for (size_t k = 0; k < BT * nT; k++)
                    forced[k] = qs_random_thought_token(V, eo.banned, eo.n_banned, qs_rng_uniform(rng));
            if ((st = qs_qstar_step(q, m, tokens, mask, forced, forced ? NULL : rng, NULL, 0.0f, &out)) != QS_OK) break;
        }
        for (int r = 0; r < rows && st == QS_OK; r++)
            for (int i = 0; i + 1 < T && st == QS_OK; i++) {
                if (!mask[r * T + i + 1]) continue;
                const size_t k = (size_t)r * T + i;
                qs_nll_token t = {.token = tokens[k + 1], .prev = tokens[k], .window = (long)(w0 + r), .pos = i + 1,
                                  .nll_base = nll[k], .nll_think = NAN, .mix_w = 0.0f, .entropy = ent[k]};
                int th[256];
                if (think) {
                    // thinking where the base entropy exceeds the threshold; elsewhere the base prediction
                    const int on = ent[k] > ctl.min_entropy;
                    for (int u = 0; u < nT; u++) th[u] = out.thoughts[((size_t)r * nT + u) * T + i];
                    t.nll_base = out.nll_base[k];
                    t.nll_think = on ? out.nll_talk[k] : out.nll_base[k];
                    t.mix_w = on ? out.mix_weight[k] : 0.0f;
                    t.thought_on = on;
                }
                st = rec_push(rec, &t, think ? th : NULL);
            }
        if (st == QS_OK && progress && progress(ud, QS_MIN(w0 + (size_t)B, nw), nw))
            st = qs_error(QS_ERR_INTERRUPTED, "evaluation interrupted");
    }
    if (st == QS_OK) {
        qs_nll_tokens view = *rec;
        view.t += base_n, view.n -= base_n;
        qs_nll_summarize(&view, think, sum);
    }
    qs_qstar_free(q);
    qs_workspace_free(ws);
    free(tokens), free(mask), free(forced), free(logits), free(nll), free(ent), free(tgt), free(xin);
    qs_nll_tokens_free(&local);
    return st;
}

// task_data.c: the GSM8K / CommonsenseQA task files (SPEC.md section 5):
// JSONL records -> teacher-forced prompts -> token sequences with the answer
// positions, and the tokens that are valid answers (see task_data.h).
#include "quietstar/task_data.h"

#include <cJSON.h>
#include <ctype.h>
#include <math.h>
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


// dataset.c: reading documents (text / JSONL), tokenizing them (in parallel
// batches, in file order), the train/validation split and batching.
#include "data/dataset.h"

#include <cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

// Pending documents are encoded together once there are this many of them
// or they hold this many bytes.
#define PEND_DOCS 4096
#define PEND_BYTES ((size_t)16 << 20)
#define QS_DATA_LINE_CAP ((size_t)16 << 20) // one line of a text/JSONL file
#define QS_DATA_DOC_CAP ((size_t)64 << 20) // one document of a text file

qs_dataset_opts qs_dataset_opts_default(void) {
    qs_dataset_opts o = {.format = QS_DATA_AUTO, .field = NULL, .val_frac = 0.05, .seed = 1337, .n_threads = 0};
    return o;
}

size_t qs_dataset_val_count(size_t n, double f) {
    if (n == 0 || !(f > 0)) return 0;
    if (f >= 1) return n;
    size_t k = (size_t)floor(f * (double)n + 0.5);
    if (k == 0 && n >= 2) k = 1;
    if (k >= n) k = n - 1;
    return k;
}

// ---------------------------------------------------------------------------
// UTF-8 validation (strict: no overlong forms, surrogates or > U+10FFFF).
// Returns the index of the first byte of the first invalid sequence, or n.
static size_t utf8_invalid_at(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t need;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else return i;
        if (i + need >= n) return i; // truncated at the end
        unsigned c1 = s[i + 1];
        if (c1 < lo || c1 > hi) return i;
        for (size_t k = 2; k <= need; k++)
            if ((s[i + k] & 0xC0) != 0x80) return i;
        i += need + 1;
    }
    return n;
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }

// ---------------------------------------------------------------------------
// Builder: documents are queued, encoded in parallel, appended in order.

typedef struct {
    char *text;
    size_t len;
    size_t doc_no; // 1-based
    long line;     // first line in the file, 0 for in-memory documents
} pend_doc;

typedef struct {
    const char *path; // NULL for in-memory documents
    qs_encode_fn enc;
    void *ctx;
    int n_threads;
    qs_token_stream all;
    size_t tok_cap, doc_cap;
    pend_doc *pend;
    size_t n_pend, pend_cap, pend_bytes;
    size_t n_docs_seen;
    qs_doc_sink sink;  // streaming (qs_dataset_stream): documents go here instead of `all`
    void *sink_ud;
} builder;

static void stream_free(qs_token_stream *s) {
    if (s->unmap) { // a mapped token file (data/shards.h)
        s->unmap(s);
    } else {
        free(s->tokens);
        free(s->doc_start);
    }
    memset(s, 0, sizeof *s);
}

static void pend_clear(builder *b) {
    for (size_t i = 0; i < b->n_pend; i++) free(b->pend[i].text);
    b->n_pend = 0;
    b->pend_bytes = 0;
}

static void builder_free(builder *b) {
    pend_clear(b);
    free(b->pend);
    stream_free(&b->all);
}

static qs_status doc_context(const builder *b, qs_status st, const pend_doc *d) {
    if (b->path) return qs_error_prefix(st, "%s: document %zu (line %ld)", b->path, d->doc_no, d->line);
    return qs_error_prefix(st, "document %zu", d->doc_no);
}

static qs_status append_tokens(builder *b, const int *t, size_t n) {
    if (b->sink) return b->sink(b->sink_ud, t, n);
    qs_token_stream *s = &b->all;
    if (s->n_tokens + n > b->tok_cap) {
        size_t cap = b->tok_cap ? b->tok_cap : 1 << 16;
        while (cap < s->n_tokens + n) cap *= 2;
        int *p = realloc(s->tokens, cap * sizeof *p);
        if (!p) return qs_error(QS_ERR_NOMEM, "out of memory growing the token stream to %zu tokens", cap);
        s->tokens = p;
        b->tok_cap = cap;
    }
    if (s->n_docs == b->doc_cap) {
        size_t cap = b->doc_cap ? 2 * b->doc_cap : 1024;
        size_t *p = realloc(s->doc_start, cap * sizeof *p);
        if (!p) return qs_error(QS_ERR_NOMEM, "out of memory growing the document table to %zu", cap);
        s->doc_start = p;
        b->doc_cap = cap;
    }
    s->doc_start[s->n_docs++] = s->n_tokens;
    memcpy(s->tokens + s->n_tokens, t, n * sizeof *t);
    s->n_tokens += n;
    return QS_OK;
}

// Encodes the pending documents (in parallel unless n_threads == 1) and
// appends them in order. On failure reports the first failing document.
static qs_status flush(builder *b) {
    const size_t n = b->n_pend;
    if (n == 0) return QS_OK;
    for (size_t i = 0; i < n; i++)
        if (b->pend[i].len > (size_t)INT_MAX - 3) {
            qs_error(QS_ERR_UNSUPPORTED, "document of %zu bytes is too long", b->pend[i].len);
            return doc_context(b, QS_ERR_UNSUPPORTED, &b->pend[i]);
        }
    int **out = calloc(n, sizeof *out);
    int *len = calloc(n, sizeof *len);
    qs_status *st = calloc(n, sizeof *st);
    char **msg = calloc(n, sizeof *msg);
    if (!out || !len || !st || !msg) {
        free(out), free(len), free(st), free(msg);
        return qs_error(QS_ERR_NOMEM, "out of memory encoding %zu documents", n);
    }
    const int nt = b->n_threads > 0 ? b->n_threads : omp_get_max_threads();
    const long nn = (long)n;
#pragma omp parallel for schedule(dynamic, 8) num_threads(nt) if (nt > 1 && n > 1)
    for (long i = 0; i < nn; i++) {
        const pend_doc *d = &b->pend[i];
        int cap = (int)d->len + 3;
        out[i] = malloc((size_t)cap * sizeof(int));
        if (!out[i]) {
            st[i] = QS_ERR_NOMEM;
            msg[i] = NULL;
            continue;
        }
        int k = -1;
        qs_status s = b->enc(b->ctx, d->text, out[i], cap, &k);
        if (s == QS_OK && (k < 1 || k > cap)) {
            s = qs_error(QS_ERR_FORMAT, "encoder returned %d tokens (expected 1..%d)", k, cap);
        }
        if (s != QS_OK) {
            st[i] = s;
            msg[i] = strdup(qstar_last_error()); // the message is thread-local
        }
        len[i] = k;
    }
    qs_status ret = QS_OK;
    for (size_t i = 0; i < n && ret == QS_OK; i++) {
        if (st[i] != QS_OK) {
            if (st[i] == QS_ERR_NOMEM && !out[i]) qs_error(QS_ERR_NOMEM, "out of memory encoding");
            else qs_error(st[i], "%s", msg[i] ? msg[i] : "encoding failed");
            ret = doc_context(b, st[i], &b->pend[i]);
            break;
        }
        ret = append_tokens(b, out[i], (size_t)len[i]);
    }
    for (size_t i = 0; i < n; i++) {
        free(out[i]);
        free(msg[i]);
    }
    free(out), free(len), free(st), free(msg);
    pend_clear(b);
    return ret;
}

// Queues one document (text[0..len), copied); `strip` trims whitespace and
// skips documents that end up empty.
static qs_status add_doc(builder *b, const char *text, size_t len, long line, int strip) {
    if (strip) {
        while (len && is_ws(*text)) text++, len--;
        while (len && is_ws(text[len - 1])) len--;
        if (len == 0) return QS_OK;
    }
    if (b->n_pend == b->pend_cap) {
        size_t cap = b->pend_cap ? 2 * b->pend_cap : 64;
        pend_doc *p = realloc(b->pend, cap * sizeof *p);
        if (!p) return qs_error(QS_ERR_NOMEM, "out of memory queueing documents");
        b->pend = p;
        b->pend_cap = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy) return qs_error(QS_ERR_NOMEM, "out of memory copying a document of %zu bytes", len);
    memcpy(copy, text, len);
    copy[len] = 0;
    b->pend[b->n_pend++] = (pend_doc){copy, len, ++b->n_docs_seen, line};
    b->pend_bytes += len;
    if (b->n_pend >= PEND_DOCS || b->pend_bytes >= PEND_BYTES) return flush(b);
    return QS_OK;
}

// ---------------------------------------------------------------------------
// Readers

// One line (with its '\n') into *line, like getline, but a line longer than
// QS_DATA_LINE_CAP stops the read (-2) before more memory is taken: the file
// is read in bounded pieces and never held whole. -1 at the end of the file.
static ssize_t read_line(FILE *f, char **line, size_t *cap) {
    size_t n = 0;
    int c;
    while ((c = getc_unlocked(f)) != EOF) {
        if (n >= QS_DATA_LINE_CAP) return -2;
        if (n + 2 > *cap) {
            size_t nc = *cap ? *cap * 2 : 256;
            char *p = realloc(*line, nc);
            if (!p) return -3;
            *line = p;
            *cap = nc;
        }
        (*line)[n++] = (char)c;
        if (c == '\n') break;
    }
    if (n == 0 && c == EOF) return -1;
    (*line)[n] = 0;
    return (ssize_t)n;
}

static qs_status line_error(const builder *b, long line_no, ssize_t got) {
    if (got == -2)
        return qs_error(QS_ERR_FORMAT, "%s:%ld: line longer than %d MiB (not a text/JSONL dataset?)", b->path, line_no,
                        (int)(QS_DATA_LINE_CAP >> 20));
    return qs_error(QS_ERR_NOMEM, "%s:%ld: out of memory reading a line", b->path, line_no);
}

// Strips the line ending and checks for NUL bytes and invalid UTF-8.
static qs_status check_line(const builder *b, long line_no, char *line, size_t *len) {
    size_t n = *len;
    if (n && line[n - 1] == '\n') n--;
    if (n && line[n - 1] == '\r') n--;
    line[n] = 0;
    *len = n;
    const char *z = memchr(line, 0, n);
    if (z)
        return qs_error(QS_ERR_FORMAT, "%s:%ld:%zu: NUL byte in document %zu", b->path, line_no,
                        (size_t)(z - line) + 1, b->n_docs_seen + 1);
    size_t bad = utf8_invalid_at((const unsigned char *)line, n);
    if (bad < n)
        return qs_error(QS_ERR_FORMAT, "%s:%ld:%zu: invalid UTF-8 (byte 0x%02x) in document %zu", b->path,
                        line_no, bad + 1, (unsigned char)line[bad], b->n_docs_seen + 1);
    return QS_OK;
}

static int is_separator(const char *line, size_t n) {
    while (n && is_ws(*line)) line++, n--;
    while (n && is_ws(line[n - 1])) n--;
    return n == 0 || (n == 13 && memcmp(line, "<|endoftext|>", 13) == 0);
}

static qs_status read_text(builder *b, FILE *f) {
    char *line = NULL, *doc = NULL;
    size_t lcap = 0, dlen = 0, dcap = 0;
    long line_no = 0, first = 0;
    ssize_t got;
    qs_status st = QS_OK;
    while ((got = read_line(f, &line, &lcap)) >= 0) {
        size_t n = (size_t)got;
        line_no++;
        if ((st = check_line(b, line_no, line, &n)) != QS_OK) goto done;
        if (is_separator(line, n)) {
            if (dlen && (st = add_doc(b, doc, dlen, first, 1)) != QS_OK) goto done;
            dlen = 0;
            continue;
        }
        if (dlen + n + 2 > QS_DATA_DOC_CAP) {
            st = qs_error(QS_ERR_FORMAT, "%s:%ld: document starting at line %ld is longer than %d MiB (separate "
                          "documents with blank lines)", b->path, line_no, first, (int)(QS_DATA_DOC_CAP >> 20));
            goto done;
        }
        if (dlen + n + 2 > dcap) {
            size_t cap = dcap ? dcap : 4096;
            while (cap < dlen + n + 2) cap *= 2;
            char *p = realloc(doc, cap);
            if (!p) {
                st = qs_error(QS_ERR_NOMEM, "%s:%ld: out of memory (document of %zu bytes)", b->path, line_no,
                              dlen + n);
                goto done;
            }
            doc = p;
            dcap = cap;
        }
        if (dlen == 0) first = line_no;
        else doc[dlen++] = '\n';
        memcpy(doc + dlen, line, n);
        dlen += n;
    }
    if (got < -1) {
        st = line_error(b, line_no + 1, got);
        goto done;
    }
    if (ferror(f)) {
        st = qs_error(QS_ERR_IO, "%s: read error after line %ld: %s", b->path, line_no, strerror(errno));
        goto done;
    }
    if (dlen) st = add_doc(b, doc, dlen, first, 1);
done:
    free(line);
    free(doc);
    return st;
}

// The field `name`, or (if absent and `name` has dots) the nested path.
static const cJSON *json_field(const cJSON *obj, const char *name) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (it || !strchr(name, '.')) return it;
    char key[256];
    const char *p = name;
    it = obj;
    while (it) {
        const char *dot = strchr(p, '.');
        size_t k = dot ? (size_t)(dot - p) : strlen(p);
        if (k >= sizeof key || !cJSON_IsObject(it)) return NULL;
        memcpy(key, p, k);
        key[k] = 0;
        it = cJSON_GetObjectItemCaseSensitive(it, key);
        if (!dot) return it;
        p = dot + 1;
    }
    return NULL;
}

static qs_status read_jsonl(builder *b, FILE *f, const char *field) {
    char *line = NULL;
    size_t lcap = 0;
    long line_no = 0;
    ssize_t got;
    qs_status st = QS_OK;
    while ((got = read_line(f, &line, &lcap)) >= 0) {
        size_t n = (size_t)got;
        line_no++;
        if ((st = check_line(b, line_no, line, &n)) != QS_OK) goto done;
        size_t i = 0;
        while (i < n && is_ws(line[i])) i++;
        if (i == n) continue; // blank line
        const char *end = NULL;
        cJSON *obj = cJSON_ParseWithOpts(line, &end, 1);
        if (!obj) {
            size_t col = end && end >= line && end <= line + n ? (size_t)(end - line) + 1 : 1;
            st = qs_error(QS_ERR_FORMAT, "%s:%ld: not valid JSON (column %zu)", b->path, line_no, col);
            goto done;
        }
        if (!cJSON_IsObject(obj)) {
            cJSON_Delete(obj);
            st = qs_error(QS_ERR_FORMAT, "%s:%ld: not a JSON object", b->path, line_no);
            goto done;
        }
        const cJSON *v = json_field(obj, field);
        if (!v) {
            cJSON_Delete(obj);
            st = qs_error(QS_ERR_FORMAT, "%s:%ld: no field \"%s\"", b->path, line_no, field);
            goto done;
        }
        if (!cJSON_IsString(v) || !v->valuestring) {
            cJSON_Delete(obj);
            st = qs_error(QS_ERR_FORMAT, "%s:%ld: field \"%s\" is not a string", b->path, line_no, field);
            goto done;
        }
        const char *s = v->valuestring;
        size_t sl = strlen(s);
        size_t bad = utf8_invalid_at((const unsigned char *)s, sl);
        if (bad < sl) {
            cJSON_Delete(obj);
            st = qs_error(QS_ERR_FORMAT, "%s:%ld: field \"%s\" decodes to invalid UTF-8 in document %zu",
                          b->path, line_no, field, b->n_docs_seen + 1);
            goto done;
        }
        st = add_doc(b, s, sl, line_no, 1);
        cJSON_Delete(obj);
        if (st != QS_OK) goto done;
    }
    if (got < -1) st = line_error(b, line_no + 1, got);
    else if (ferror(f)) st = qs_error(QS_ERR_IO, "%s: read error after line %ld: %s", b->path, line_no, strerror(errno));
done:
    free(line);
    return st;
}

// ---------------------------------------------------------------------------
// Split and dataset assembly

static qs_status check_opts(const qs_dataset_opts *o) {
    if (!(o->val_frac >= 0 && o->val_frac <= 1))
        return qs_error(QS_ERR_ARG, "validation fraction %g is not in [0,1]", o->val_frac);
    if (o->n_threads < 0) return qs_error(QS_ERR_ARG, "n_threads %d is negative", o->n_threads);
    if (o->format != QS_DATA_AUTO && o->format != QS_DATA_TEXT && o->format != QS_DATA_JSONL)
        return qs_error(QS_ERR_ARG, "unknown dataset format %d", (int)o->format);
    return QS_OK;
}

// Moves the builder's stream into ds, holding out the last documents.
static qs_status finish(qs_dataset *ds, builder *b, const qs_dataset_opts *o) {
    QS_TRY(flush(b));
    qs_token_stream *all = &b->all;
    if (all->n_docs == 0) return qs_error(QS_ERR_FORMAT, "%s: no documents", b->path ? b->path : "input");
    size_t nv = qs_dataset_val_count(all->n_docs, o->val_frac), ntr = all->n_docs - nv;
    size_t cut = ntr < all->n_docs ? all->doc_start[ntr] : all->n_tokens;
    qs_token_stream val = {0};
    if (nv) {
        val.n_tokens = all->n_tokens - cut;
        val.n_docs = nv;
        val.tokens = malloc(val.n_tokens * sizeof *val.tokens);
        val.doc_start = malloc(nv * sizeof *val.doc_start);
        if (!val.tokens || !val.doc_start) {
            stream_free(&val);
            return qs_error(QS_ERR_NOMEM, "out of memory building the validation split (%zu tokens)",
                            all->n_tokens - cut);
        }
        memcpy(val.tokens, all->tokens + cut, val.n_tokens * sizeof *val.tokens);
        for (size_t i = 0; i < nv; i++) val.doc_start[i] = all->doc_start[ntr + i] - cut;
    }
    qs_token_stream tr = *all;
    memset(all, 0, sizeof *all);
    tr.n_tokens = cut;
    tr.n_docs = ntr;
    if (ntr == 0) {
        free(tr.tokens);
        free(tr.doc_start);
        tr.tokens = NULL;
        tr.doc_start = NULL;
    } else { // shrink to fit (failure to shrink is harmless)
        int *t = realloc(tr.tokens, cut * sizeof *t);
        if (t) tr.tokens = t;
        size_t *d = realloc(tr.doc_start, ntr * sizeof *d);
        if (d) tr.doc_start = d;
    }
    ds->train = tr;
    ds->val = val;
    qs_rng_seed(&ds->rng, o->seed);
    return QS_OK;
}

static qs_status load_stream(qs_dataset *ds, FILE *f, const char *path, int jsonl, const char *field,
                             qs_encode_fn enc, void *ctx, const qs_dataset_opts *o) {
    builder b = {.path = path, .enc = enc, .ctx = ctx, .n_threads = o->n_threads};
    qs_status st = jsonl ? read_jsonl(&b, f, field) : read_text(&b, f);
    if (st == QS_OK) st = finish(ds, &b, o);
    builder_free(&b);
    if (st != QS_OK) qs_dataset_free(ds);
    return st;
}

// An empty buffer (fmemopen refuses size 0): the same as an empty file.
static qs_status finish_empty(qs_dataset *ds, const char *path, const qs_dataset_opts *o) {
    builder b = {.path = path};
    qs_status st = finish(ds, &b, o);
    builder_free(&b);
    if (st != QS_OK) qs_dataset_free(ds);
    return st;
}

static int has_ext(const char *path, const char *ext) {
    size_t n = strlen(path), e = strlen(ext);
    return n > e && strcasecmp(path + n - e, ext) == 0;
}

// Checks the options into *o and resolves the JSONL field and the format
// (QS_DATA_AUTO: JSONL by the name's extension .jsonl/.json/.ndjson).
static qs_status resolve_opts(const qs_dataset_opts *opts, const char *name, qs_dataset_opts *o, const char **field,
                              int *jsonl) {
    *o = opts ? *opts : qs_dataset_opts_default();
    QS_TRY(check_opts(o));
    *field = o->field && *o->field ? o->field : "text";
    *jsonl = o->format == QS_DATA_JSONL ||
             (o->format == QS_DATA_AUTO &&
              (has_ext(name, ".jsonl") || has_ext(name, ".json") || has_ext(name, ".ndjson")));
    return QS_OK;
}

qs_status qs_dataset_load_with(qs_dataset *ds, const char *path, qs_encode_fn enc, void *ctx,
                               const qs_dataset_opts *opts) {
    if (!ds) return qs_error(QS_ERR_ARG, "dataset: NULL output");
    memset(ds, 0, sizeof *ds);
    if (!path || !enc) return qs_error(QS_ERR_ARG, "dataset: NULL path or encoder");
    qs_dataset_opts o;
    const char *field;
    int jsonl;
    QS_TRY(resolve_opts(opts, path, &o, &field, &jsonl));
    FILE *f = fopen(path, "rb");
    if (!f) return qs_error(QS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    qs_status st = load_stream(ds, f, path, jsonl, field, enc, ctx, &o);
    fclose(f);
    return st;
}

qs_status qs_dataset_load_mem(qs_dataset *ds, const void *data, size_t n, const char *name, qs_encode_fn enc,
                              void *ctx, const qs_dataset_opts *opts) {
    if (!ds) return qs_error(QS_ERR_ARG, "dataset: NULL output");
    memset(ds, 0, sizeof *ds);
    if (!name || !enc || (!data && n)) return qs_error(QS_ERR_ARG, "dataset: NULL name, data or encoder");
    qs_dataset_opts o;
    const char *field;
    int jsonl;
    QS_TRY(resolve_opts(opts, name, &o, &field, &jsonl));
    if (n == 0) return finish_empty(ds, name, &o);
    FILE *f = fmemopen((void *)data, n, "rb");
    if (!f) return qs_error(QS_ERR_NOMEM, "%s: cannot read from memory: %s", name, strerror(errno));
    qs_status st = load_stream(ds, f, name, jsonl, field, enc, ctx, &o);
    fclose(f);
    return st;
}

qs_status qs_dataset_stream(const char *path, qs_encode_fn enc, void *ctx, const qs_dataset_opts *opts,
                            qs_doc_sink sink, void *sink_ud) {
    if (!path || !enc || !sink) return qs_error(QS_ERR_ARG, "dataset: NULL path, encoder or sink");
    qs_dataset_opts o;
    const char *field;
    int jsonl;
    QS_TRY(resolve_opts(opts, path, &o, &field, &jsonl));
    FILE *f = fopen(path, "rb");
    if (!f) return qs_error(QS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    builder b = {.path = path, .enc = enc, .ctx = ctx, .n_threads = o.n_threads, .sink = sink, .sink_ud = sink_ud};
    qs_status st = jsonl ? read_jsonl(&b, f, field) : read_text(&b, f);
    fclose(f);
    if (st == QS_OK) st = flush(&b);
    builder_free(&b);
    return st;
}

qs_status qs_dataset_from_docs(qs_dataset *ds, const char *const *docs, size_t n_docs, qs_encode_fn enc,
                               void *ctx, const qs_dataset_opts *opts) {
    if (!ds) return qs_error(QS_ERR_ARG, "dataset: NULL output");
    memset(ds, 0, sizeof *ds);
    if ((!docs && n_docs) || !enc) return qs_error(QS_ERR_ARG, "dataset: NULL documents or encoder");
    qs_dataset_opts o = opts ? *opts : qs_dataset_opts_default();
    QS_TRY(check_opts(&o));
    builder b = {.path = NULL, .enc = enc, .ctx = ctx, .n_threads = o.n_threads};
    qs_status st = QS_OK;
    for (size_t i = 0; i < n_docs && st == QS_OK; i++) {
        if (!docs[i]) {
            st = qs_error(QS_ERR_ARG, "document %zu is NULL", i + 1);
            break;
        }
        size_t n = strlen(docs[i]), bad = utf8_invalid_at((const unsigned char *)docs[i], n);
        if (bad < n) {
            st = qs_error(QS_ERR_FORMAT, "document %zu: invalid UTF-8 (byte 0x%02x at offset %zu)", i + 1,
                          (unsigned char)docs[i][bad], bad);
            break;
        }
        st = add_doc(&b, docs[i], n, 0, 0);
    }
    if (st == QS_OK) st = finish(ds, &b, &o);
    builder_free(&b);
    if (st != QS_OK) qs_dataset_free(ds);
    return st;
}

static qs_status tokenizer_encode_cb(void *ctx, const char *text, int *out, int cap, int *n_out) {
    return qs_tokenizer_encode((const qs_tokenizer *)ctx, text, 1, 0, out, cap, n_out);
}

qs_status qs_dataset_load(qs_dataset *ds, const char *path, const qs_tokenizer *tok,
                          const qs_dataset_opts *opts) {
    if (!tok) {
        if (ds) memset(ds, 0, sizeof *ds);
        return qs_error(QS_ERR_ARG, "%s: no tokenizer", path ? path : "dataset");
    }
    return qs_dataset_load_with(ds, path, tokenizer_encode_cb, (void *)tok, opts);
}

void qs_dataset_free(qs_dataset *ds) {
    if (!ds) return;
    stream_free(&ds->train);
    stream_free(&ds->val);
}

size_t qs_dataset_n_docs(const qs_dataset *ds) { return ds->train.n_docs + ds->val.n_docs; }
size_t qs_dataset_n_tokens(const qs_dataset *ds) { return ds->train.n_tokens + ds->val.n_tokens; }

// ---------------------------------------------------------------------------
// Batching

size_t qs_stream_doc_len(const qs_token_stream *s, size_t d) {
    if (d >= s->n_docs) return 0;
    size_t end = d + 1 < s->n_docs ? s->doc_start[d + 1] : s->n_tokens;
    return end - s->doc_start[d];
}

// Row = stream[off .. off+len) then padding up to T.
static void fill_row(const qs_token_stream *s, size_t off, size_t len, int T, int *tok, int *mask) {
    if (s->tokens16) { // a mapped uint16 token file
        for (size_t i = 0; i < len; i++) tok[i] = s->tokens16[off + i];
    } else if (len) {
        memcpy(tok, s->tokens + off, len * sizeof *tok);
    }
    for (size_t i = len; i < (size_t)T; i++) tok[i] = 0;
    if (mask)
        for (size_t i = 0; i < (size_t)T; i++) mask[i] = i < len;
}

qs_status qs_stream_sample(const qs_token_stream *s, qs_rng *rng, int B, int T, int *tokens, int *mask,
                           size_t *starts) {
    if (B < 1 || T < 1) return qs_error(QS_ERR_ARG, "batch %d x %d: both must be >= 1", B, T);
    if (s->n_tokens == 0) return qs_error(QS_ERR_ARG, "cannot sample windows from an empty split");
    size_t n = s->n_tokens, span = n >= (size_t)T ? n - (size_t)T + 1 : 1;
    for (int b = 0; b < B; b++) {
        size_t off = (size_t)qs_rng_below(rng, span);
        size_t len = QS_MIN((size_t)T, n - off);
        if (tokens) fill_row(s, off, len, T, tokens + (size_t)b * T, mask ? mask + (size_t)b * T : NULL);
        if (starts) starts[b] = off;
    }
    return QS_OK;
}

size_t qs_stream_n_windows(const qs_token_stream *s, int T) {
    if (T < 1) return 0;
    return (s->n_tokens + (size_t)T - 1) / (size_t)T;
}

qs_status qs_stream_eval_batch(const qs_token_stream *s, size_t first, int B, int T, int *tokens, int *mask,
                               int *n_rows) {
    if (B < 1 || T < 1) return qs_error(QS_ERR_ARG, "batch %d x %d: both must be >= 1", B, T);
    size_t nw = qs_stream_n_windows(s, T);
    int rows = 0;
    for (int b = 0; b < B; b++) {
        size_t w = first + (size_t)b, off = 0, len = 0;
        if (w >= first && w < nw) { // (w >= first guards overflow)
            off = w * (size_t)T;
            len = QS_MIN((size_t)T, s->n_tokens - off);
            rows++;
        }
        fill_row(s, off, len, T, tokens + (size_t)b * T, mask ? mask + (size_t)b * T : NULL);
    }
    if (n_rows) *n_rows = rows;
    return QS_OK;
}

int qs_stream_doc_window(const qs_token_stream *s, size_t d, int T, int *tokens, int *mask) {
    if (T < 1) return 0;
    size_t len = QS_MIN(qs_stream_doc_len(s, d), (size_t)T);
    fill_row(s, len ? s->doc_start[d] : 0, len, T, tokens, mask);
    return (int)len;
}

qs_status qs_stream_sample_docs(const qs_token_stream *s, qs_rng *rng, int B, int T, int *tokens, int *mask,
                                size_t *docs) {
    if (B < 1 || T < 1) return qs_error(QS_ERR_ARG, "batch %d x %d: both must be >= 1", B, T);
    if (s->n_docs == 0) return qs_error(QS_ERR_ARG, "cannot sample documents from an empty split");
    for (int b = 0; b < B; b++) {
        size_t d = (size_t)qs_rng_below(rng, s->n_docs);
        if (tokens) qs_stream_doc_window(s, d, T, tokens + (size_t)b * T, mask ? mask + (size_t)b * T : NULL);
        if (docs) docs[b] = d;
    }
    return QS_OK;
}

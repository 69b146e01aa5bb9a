// shards.c: token directories (see shards.h): streaming prepare, mmap load.
#include "data/shards.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(sizeof(size_t) == 8, "token directories need 64-bit size_t (docs.idx is mapped as size_t)");

// ---------------------------------------------------------------------------
// meta.json

static qs_status get_u64(const cJSON *root, const char *path, const char *key, uint64_t max, uint64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!cJSON_IsNumber(v)) return qs_error(QS_ERR_FORMAT, "%s: missing or non-numeric \"%s\"", path, key);
    const double d = v->valuedouble;
    if (!(d >= 0) || d > (double)max || d != floor(d))
        return qs_error(QS_ERR_FORMAT, "%s: \"%s\" is %g (want an integer in 0..%llu)", path, key, d,
                        (unsigned long long)max);
    *out = (uint64_t)d;
    return QS_OK;
}

static qs_status parse_meta(const cJSON *root, const char *path, qs_shards_meta *m) {
    if (!cJSON_IsObject(root)) return qs_error(QS_ERR_FORMAT, "%s: not a JSON object", path);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "format");
    if (!cJSON_IsString(f) || strcmp(f->valuestring, "qstar-tokens"))
        return qs_error(QS_ERR_FORMAT, "%s: \"format\" is not \"qstar-tokens\" (not a qstar prepare directory)", path);
    uint64_t ver = 0, vocab = 0;
    QS_TRY(get_u64(root, path, "version", 1000, &ver));
    if (ver != 1) return qs_error(QS_ERR_UNSUPPORTED, "%s: version %llu (this qstar reads 1)", path, (unsigned long long)ver);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(root, "dtype");
    if (!cJSON_IsString(dt) || (strcmp(dt->valuestring, "uint16") && strcmp(dt->valuestring, "uint32")))
        return qs_error(QS_ERR_FORMAT, "%s: \"dtype\" must be \"uint16\" or \"uint32\"", path);
    m->width = strcmp(dt->valuestring, "uint16") ? 4 : 2;
    const uint64_t lim = (uint64_t)1 << 50; // 2^50 tokens: beyond any corpus, far from overflow
    QS_TRY(get_u64(root, path, "vocab_size", 0x7fffffff, &vocab));
    QS_TRY(get_u64(root, path, "n_tokens", lim, &m->n_tokens));
    QS_TRY(get_u64(root, path, "n_docs", lim, &m->n_docs));
    QS_TRY(get_u64(root, path, "train_docs", lim, &m->train_docs));
    QS_TRY(get_u64(root, path, "train_tokens", lim, &m->train_tokens));
    m->vocab_size = (int)vocab;
    if (vocab < 1 || (m->width == 2 && vocab > 65536))
        return qs_error(QS_ERR_FORMAT, "%s: vocab_size %llu does not fit dtype %s", path, (unsigned long long)vocab,
                        dt->valuestring);
    if (m->n_docs > m->n_tokens)
        return qs_error(QS_ERR_FORMAT, "%s: %llu documents in %llu tokens (each has a BOS)", path,
                        (unsigned long long)m->n_docs, (unsigned long long)m->n_tokens);
    if (m->train_docs > m->n_docs || m->train_tokens > m->n_tokens)
        return qs_error(QS_ERR_FORMAT, "%s: the training split (%llu documents, %llu tokens) exceeds the total", path,
                        (unsigned long long)m->train_docs, (unsigned long long)m->train_tokens);
    if ((m->train_docs == m->n_docs) != (m->train_tokens == m->n_tokens) || (m->train_docs == 0) != (m->train_tokens == 0))
        return qs_error(QS_ERR_FORMAT, "%s: train_docs and train_tokens disagree", path);
    return QS_OK;
}

qs_status qs_shards_parse_meta(const char *text, size_t len, const char *path, qs_shards_meta *m) {
    memset(m, 0, sizeof *m);
    if (!text) return qs_error(QS_ERR_ARG, "%s: no data", path);
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!root) return qs_error(QS_ERR_FORMAT, "%s: not valid JSON", path);
    qs_status st = parse_meta(root, path, m);
    cJSON_Delete(root);
    return st;
}

static qs_status read_small(const char *path, char **text, size_t *n) {
    *text = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return qs_error(QS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = malloc(65537);
    size_t got = buf ? fread(buf, 1, 65537, f) : 0;
    fclose(f);
    if (!buf) return qs_error(QS_ERR_NOMEM, "%s: out of memory", path);
    if (got > 65536) {
        free(buf);
        return qs_error(QS_ERR_FORMAT, "%s: larger than 64 KiB (not a meta.json)", path);
    }
    *text = buf, *n = got;
    return QS_OK;
}

int qs_shards_is_dir(const char *path) {
    char p[4096];
    struct stat sb;
    if (!path || stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) return 0;
    int k = snprintf(p, sizeof p, "%s/%s", path, QS_SHARDS_META);
    return k > 0 && (size_t)k < sizeof p && stat(p, &sb) == 0;
}

// ---------------------------------------------------------------------------
// prepare

typedef struct {
    FILE *tok, *idx;
    int width, vocab;
    uint64_t n_tokens, n_docs, last_report;
    const char *tok_path;
    const qs_prepare_opts *o;
    double t0;
    int file;
    unsigned char buf[1 << 16];
} writer;

static qs_status sink(void *ud, const int *ids, size_t n) {
    writer *w = ud;
    const uint64_t start = w->n_tokens;
    if (fwrite(&start, 8, 1, w->idx) != 1) return qs_error(QS_ERR_IO, "%s: write failed: %s", QS_SHARDS_DOCS, strerror(errno));
    for (size_t i = 0; i < n;) {
        size_t k = 0, cap = sizeof w->buf / (size_t)w->width;
        for (; k < cap && i < n; k++, i++) {
            if (ids[i] < 0 || ids[i] >= w->vocab)
                return qs_error(QS_ERR_FORMAT, "token id %d outside the vocabulary (%d)", ids[i], w->vocab);
            const uint32_t v = (uint32_t)ids[i];
            for (int b = 0; b < w->width; b++) w->buf[k * (size_t)w->width + (size_t)b] = (unsigned char)(v >> (8 * b));
        }
        if (fwrite(w->buf, (size_t)w->width, k, w->tok) != k)
            return qs_error(QS_ERR_IO, "%s: write failed: %s", w->tok_path, strerror(errno));
    }
    w->n_tokens += n;
    w->n_docs++;
    if (w->o->progress && w->n_docs - w->last_report >= 65536) {
        w->last_report = w->n_docs;
        w->o->progress(w->o->progress_ud, w->n_docs, w->n_tokens, qs_now() - w->t0, w->file, w->o->n_inputs);
    }
    return QS_OK;
}


static qs_status write_meta(const char *dir, const qs_shards_meta *m) {
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/%s", dir, QS_SHARDS_META);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return qs_error(QS_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    fprintf(f,
            "{\"format\": \"qstar-tokens\", \"version\": 1, \"dtype\": \"%s\", \"vocab_size\": %d,\n"
            " \"n_tokens\": %llu, \"n_docs\": %llu, \"train_docs\": %llu, \"train_tokens\": %llu}\n",
            m->width == 2 ? "uint16" : "uint32", m->vocab_size, (unsigned long long)m->n_tokens,
            (unsigned long long)m->n_docs, (unsigned long long)m->train_docs, (unsigned long long)m->train_tokens);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0 || fclose(f) != 0)
        return qs_error(QS_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
    if (rename(tmp, path) != 0) return qs_error(QS_ERR_IO, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    return QS_OK;
}

// The split: the training tokens end where the first held-out document starts.
static qs_status split(writer *w, double val_frac, const char *idx_path, qs_shards_meta *m) {
    m->n_tokens = w->n_tokens, m->n_docs = w->n_docs;
    const size_t nv = qs_dataset_val_count((size_t)w->n_docs, val_frac);
    m->train_docs = w->n_docs - nv;
    m->train_tokens = w->n_tokens;
    if (nv == 0) return QS_OK;
    FILE *f = fopen(idx_path, "rb");
    uint64_t cut = 0;
    int ok = f && fseeko(f, (off_t)(m->train_docs * 8), SEEK_SET) == 0 && fread(&cut, 8, 1, f) == 1;
    if (f) fclose(f);
    if (!ok) return qs_error(QS_ERR_IO, "%s: cannot read back document %llu", idx_path, (unsigned long long)m->train_docs);
    m->train_tokens = cut;
    return QS_OK;
}

static qs_status prepare_files(writer *w, const qs_prepare_opts *o, qs_encode_fn enc, void *ctx) {
    qs_dataset_opts dopt = qs_dataset_opts_default();
    dopt.field = o->field, dopt.n_threads = o->n_threads, dopt.val_frac = o->val_frac;
    for (int i = 0; i < o->n_inputs; i++) {
        w->file = i;
        QS_TRY(qs_dataset_stream(o->inputs[i], enc, ctx, &dopt, sink, w));
    }
    if (fflush(w->tok) != 0 || fflush(w->idx) != 0)
        return qs_error(QS_ERR_IO, "%s: write failed: %s", o->out_dir, strerror(errno));
    if (w->n_docs == 0) return qs_error(QS_ERR_FORMAT, "%s: no documents", o->n_inputs ? o->inputs[0] : "input");
    return QS_OK;
}

static qs_status tok_encode(void *ctx, const char *text, int *out, int cap, int *n_out) {
    return qs_tokenizer_encode((const qs_tokenizer *)ctx, text, 1, 0, out, cap, n_out);
}

qs_status qs_shards_prepare(const qs_prepare_opts *o, const qs_tokenizer *tok, qs_shards_meta *meta) {
    if (!tok) return qs_error(QS_ERR_ARG, "prepare: no tokenizer");
    return qs_shards_prepare_with(o, tok_encode, (void *)tok, qs_tokenizer_vocab_size(tok), meta);
}

qs_status qs_shards_prepare_with(const qs_prepare_opts *o, qs_encode_fn enc, void *ctx, int vocab,
                                 qs_shards_meta *meta) {
    if (!o || !o->out_dir || !enc || o->n_inputs < 1 || !o->inputs || vocab < 1)
        return qs_error(QS_ERR_ARG, "prepare: needs input files, an output directory and an encoder");
    if (!(o->val_frac >= 0 && o->val_frac < 1))
        return qs_error(QS_ERR_ARG, "prepare: held-out fraction %g is not in [0,1)", o->val_frac);
    if (qs_shards_is_dir(o->out_dir))
        return qs_error(QS_ERR_ARG, "%s already holds a prepared corpus (meta.json); choose another directory", o->out_dir);
    if (mkdir(o->out_dir, 0777) != 0 && errno != EEXIST)
        return qs_error(QS_ERR_IO, "%s: cannot create: %s", o->out_dir, strerror(errno));
    char tpath[4200], ipath[4200];
    snprintf(tpath, sizeof tpath, "%s/%s", o->out_dir, QS_SHARDS_TOKENS);
    snprintf(ipath, sizeof ipath, "%s/%s", o->out_dir, QS_SHARDS_DOCS);
    writer *w = calloc(1, sizeof *w);
    if (!w) return qs_error(QS_ERR_NOMEM, "prepare: out of memory");
    w->vocab = vocab;
    w->width = w->vocab <= 65536 ? 2 : 4;
    w->o = o, w->tok_path = tpath, w->t0 = qs_now();
    w->tok = fopen(tpath, "wb");
    w->idx = fopen(ipath, "wb");
    qs_status st = QS_OK;
    if (!w->tok || !w->idx) st = qs_error(QS_ERR_IO, "%s: cannot create %s: %s", o->out_dir, !w->tok ? tpath : ipath, strerror(errno));
    if (st == QS_OK) st = prepare_files(w, o, enc, ctx);
    if (w->tok && fclose(w->tok) != 0 && st == QS_OK) st = qs_error(QS_ERR_IO, "%s: write failed", tpath);
    if (w->idx && fclose(w->idx) != 0 && st == QS_OK) st = qs_error(QS_ERR_IO, "%s: write failed", ipath);
    qs_shards_meta m = {.width = w->width, .vocab_size = w->vocab};
    if (st == QS_OK) st = split(w, o->val_frac, ipath, &m);
    if (st == QS_OK) st = write_meta(o->out_dir, &m);
    if (st == QS_OK && o->progress) o->progress(o->progress_ud, w->n_docs, w->n_tokens, qs_now() - w->t0, o->n_inputs, o->n_inputs);
    free(w);
    if (st == QS_OK && meta) *meta = m;
    return st;
}

// ---------------------------------------------------------------------------
// load

static void unmap_stream(qs_token_stream *s) {
    for (int k = 0; k < 2; k++)
        if (s->map[k]) munmap(s->map[k], s->map_len[k]);
    if (!s->map[1]) free(s->doc_start); // the held-out table is a copy
}

// Maps `path` read-only; its size must be `want` bytes.
static qs_status map_file(const char *path, uint64_t want, void **base, size_t *len) {
    *base = NULL, *len = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return qs_error(QS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || (uint64_t)sb.st_size != want) {
        close(fd);
        return qs_error(QS_ERR_FORMAT, "%s: %lld bytes, meta.json says %llu (truncated or foreign file?)", path,
                        (long long)sb.st_size, (unsigned long long)want);
    }
    if (want == 0) {
        close(fd);
        return QS_OK;
    }
    void *p = mmap(NULL, (size_t)want, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return qs_error(QS_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
    *base = p, *len = (size_t)want;
    return QS_OK;
}

// The document table: starts at 0, strictly ascending (a document holds at least its BOS), below n_tokens.
static qs_status check_docs(const uint64_t *d, const qs_shards_meta *m, const char *path) {
    for (uint64_t i = 0; i < m->n_docs; i++) {
        const uint64_t lo = i ? d[i - 1] + 1 : 0;
        if ((i == 0 && d[0] != 0) || d[i] < lo || d[i] >= m->n_tokens)
            return qs_error(QS_ERR_FORMAT, "%s: document %llu starts at %llu (not ascending within %llu tokens)", path,
                            (unsigned long long)i, (unsigned long long)d[i], (unsigned long long)m->n_tokens);
    }
    if (m->train_docs < m->n_docs && d[m->train_docs] != m->train_tokens)
        return qs_error(QS_ERR_FORMAT, "%s: the held-out split starts at token %llu, meta.json says %llu", path,
                        (unsigned long long)d[m->train_docs], (unsigned long long)m->train_tokens);
    return QS_OK;
}

static qs_status load(qs_dataset *ds, const char *dir, const qs_shards_meta *m) {
    char tp[4200], ip[4200];
    snprintf(tp, sizeof tp, "%s/%s", dir, QS_SHARDS_TOKENS);
    snprintf(ip, sizeof ip, "%s/%s", dir, QS_SHARDS_DOCS);
    qs_token_stream *tr = &ds->train, *va = &ds->val;
    tr->unmap = unmap_stream;
    QS_TRY(map_file(tp, m->n_tokens * (uint64_t)m->width, &tr->map[0], &tr->map_len[0]));
    QS_TRY(map_file(ip, m->n_docs * 8, &tr->map[1], &tr->map_len[1]));
    const uint64_t *docs = tr->map[1];
    QS_TRY(check_docs(docs, m, ip));
    // the scan touched every page of the table: hand them back (they stay in the page cache and
    // come back on access), so the process's resident memory does not grow with the corpus
    if (tr->map[1]) madvise(tr->map[1], tr->map_len[1], MADV_DONTNEED);
    tr->n_tokens = (size_t)m->train_tokens, tr->n_docs = (size_t)m->train_docs;
    tr->doc_start = (size_t *)tr->map[1];
    const uint64_t nv = m->n_docs - m->train_docs;
    if (nv == 0) return QS_OK;
    va->unmap = unmap_stream;
    QS_TRY(map_file(tp, m->n_tokens * (uint64_t)m->width, &va->map[0], &va->map_len[0]));
    va->doc_start = malloc((size_t)nv * sizeof(size_t));
    if (!va->doc_start) return qs_error(QS_ERR_NOMEM, "%s: out of memory (%llu held-out documents)", ip, (unsigned long long)nv);
    for (uint64_t i = 0; i < nv; i++) va->doc_start[i] = (size_t)(docs[m->train_docs + i] - m->train_tokens);
    va->n_docs = (size_t)nv, va->n_tokens = (size_t)(m->n_tokens - m->train_tokens);
    const unsigned char *base = va->map[0];
    if (m->width == 2) va->tokens16 = (const uint16_t *)(base + m->train_tokens * 2);
    else va->tokens = (int *)(base + m->train_tokens * 4);
    return QS_OK;
}

qs_status qs_shards_load(qs_dataset *ds, const char *dir, uint64_t seed) {
    memset(ds, 0, sizeof *ds);
    char mp[4200];
    snprintf(mp, sizeof mp, "%s/%s", dir, QS_SHARDS_META);
    char *text = NULL;
    size_t n = 0;
    QS_TRY(read_small(mp, &text, &n));
    qs_shards_meta m;
    qs_status st = qs_shards_parse_meta(text, n, mp, &m);
    free(text);
    QS_TRY(st);
    st = load(ds, dir, &m);
    if (st != QS_OK) {
        qs_dataset_free(ds);
        return st;
    }
    if (m.width == 2) ds->train.tokens16 = ds->train.map[0];
    else ds->train.tokens = ds->train.map[0];
    qs_rng_seed(&ds->rng, seed);
    return QS_OK;
}

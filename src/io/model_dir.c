// model_dir.c: Hugging Face model directories (config.json + model.safetensors
// [+ tokenizer.bin]) and the qs_model_load entry point.
#include "io/model_io.h"
#include "io/safetensors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PATH_BUF 4200

static qs_status join(char *out, const char *dir, const char *name) {
    if (snprintf(out, PATH_BUF, "%s/%s", dir, name) >= PATH_BUF)
        return qs_error(QS_ERR_ARG, "path too long: %s/%s", dir, name);
    return QS_OK;
}

static int is_file(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static const char *const QS_HEAD[5] = {"talk_head.0.0.weight", "talk_head.0.0.bias", "talk_head.0.2.weight",
                                       "talk_head.0.2.bias", "talk_head.0.4.weight"};

static int is_quietstar_name(const char *n) {
    if (!strcmp(n, "start_embedding") || !strcmp(n, "end_embedding")) return 1;
    for (int i = 0; i < 5; i++)
        if (!strcmp(n, QS_HEAD[i])) return 1;
    return 0;
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++) k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

// Which Quiet-STaR tensors the file holds (qs_load_info.qs_present bits).
static qs_status quietstar_bits(const qs_safetensors *st, int *bits) {
    *bits = (qs_st_find(st, "start_embedding") ? 1 : 0) | (qs_st_find(st, "end_embedding") ? 2 : 0);
    int have = 0;
    for (int i = 0; i < 5; i++) have += qs_st_find(st, QS_HEAD[i]) != NULL;
    if (have == 5) *bits |= 4;
    else if (have > 0)
        for (int i = 0; i < 5; i++)
            if (!qs_st_find(st, QS_HEAD[i]))
                return qs_error(QS_ERR_FORMAT, "%s: has part of the talk head but lacks tensor '%s'", st->path, QS_HEAD[i]);
    return QS_OK;
}

// A tied model's file may also hold lm_head.weight: accepted only if equal to the embedding.
static qs_status check_tied_head(const qs_model *m, const qs_safetensors *st, const qs_st_tensor *t) {
    size_t n = (size_t)m->cfg.vocab_size * m->cfg.dim;
    if (t->ndim != 2 || t->shape[0] != m->cfg.vocab_size || t->shape[1] != m->cfg.dim)
        return qs_error(QS_ERR_FORMAT, "%s: tensor 'lm_head.weight' has the wrong shape for a tied model", st->path);
    float *h = qs_malloc(n * sizeof(float), "lm_head.weight");
    if (!h) return QS_ERR_NOMEM;
    qs_status s = qs_st_read_f32(st, t, h);
    if (s == QS_OK && memcmp(h, m->w.embed, n * sizeof(float)) != 0)
        s = qs_error(QS_ERR_FORMAT,
                     "%s: tensor 'lm_head.weight' differs from model.embed_tokens.weight but tie_word_embeddings is true",
                     st->path);
    free(h);
    return s;
}

static qs_status load_tensors(qs_model *m, const qs_safetensors *st) {
    char *seen = calloc((size_t)m->layout.n, 1);
    if (!seen) return qs_error(QS_ERR_NOMEM, "%s: out of memory", st->path);
    const qs_st_tensor *tied_head = NULL;
    qs_status s = QS_OK;
    for (int i = 0; i < st->n && s == QS_OK; i++) {
        const qs_st_tensor *t = &st->t[i];
        int k = qs_layout_find_hf(&m->layout, &m->cfg, t->name);
        if (k < 0 && qs_layout_ignored_hf(&m->cfg, t->name)) continue; // GPT-2 attention-mask buffers
        if (k < 0) {
            size_t nl = strlen(t->name), ns = strlen(".rotary_emb.inv_freq");
            if (m->cfg.tied_embeddings && !strcmp(t->name, "lm_head.weight")) tied_head = t;
            else if (!(nl > ns && !strcmp(t->name + nl - ns, ".rotary_emb.inv_freq"))) // old HF buffers: ignored
                s = qs_error(QS_ERR_FORMAT, "%s: unknown tensor '%s' (not part of this model's layout)", st->path, t->name);
            continue;
        }
        const qs_tensor_info *L = &m->layout.t[k];
        int same = t->ndim == L->ndim;
        for (int d = 0; d < L->ndim && same; d++) same = t->shape[d] == L->shape[d];
        if (!same) {
            char a[128], b[128];
            shape_str(a, sizeof a, t->ndim, t->shape);
            shape_str(b, sizeof b, L->ndim, L->shape);
            s = qs_error(QS_ERR_FORMAT, "%s: tensor '%s' has shape %s but the config implies %s", st->path, t->name, a, b);
            break;
        }
        s = qs_st_read_f32(st, t, m->params + L->offset);
        seen[k] = 1;
    }
    for (int k = 0; k < m->layout.n && s == QS_OK; k++)
        if (!seen[k] && !is_quietstar_name(m->layout.t[k].name))
            s = qs_error(QS_ERR_FORMAT, "%s: missing tensor '%s'", st->path, m->layout.t[k].name);
    free(seen);
    if (s == QS_OK && tied_head) s = check_tied_head(m, st, tied_head);
    return s;
}

static qs_status load_dir(qs_model *m, const char *dir, qs_load_info *info) {
    char cfg_path[PATH_BUF], st_path[PATH_BUF], tok[PATH_BUF];
    QS_TRY(join(cfg_path, dir, "config.json"));
    QS_TRY(join(st_path, dir, "model.safetensors"));
    QS_TRY(join(tok, dir, "tokenizer.bin"));
    if (!is_file(cfg_path)) return qs_error(QS_ERR_IO, "%s: missing (not a model directory?)", cfg_path);
    if (!is_file(st_path)) {
        char idx[PATH_BUF];
        QS_TRY(join(idx, dir, "model.safetensors.index.json"));
        if (is_file(idx)) return qs_error(QS_ERR_UNSUPPORTED, "%s: sharded checkpoints are not supported", idx);
        return qs_error(QS_ERR_IO, "%s: missing", st_path);
    }
    qs_config c;
    char *qs_json = NULL;
    QS_TRY(qs_hf_config_read(&c, cfg_path, &qs_json));
    qs_safetensors st;
    qs_status s = qs_st_open(&st, st_path);
    int bits = 0;
    if (s == QS_OK) s = quietstar_bits(&st, &bits);
    if (s == QS_OK) s = qs_st_check_config(&st, &c, bits != 0); // shapes first: nothing allocated yet
    if (s == QS_OK) s = qs_model_create(m, &c, bits != 0);
    if (s == QS_OK) {
        s = load_tensors(m, &st);
        if (s != QS_OK) qs_model_free(m);
    }
    qs_st_close(&st);
    if (s == QS_OK && info) {
        size_t n = strlen(tok);
        if (is_file(tok) && n < sizeof info->tokenizer_path) memcpy(info->tokenizer_path, tok, n + 1);
        info->quietstar_json = qs_json;
        info->qs_present = bits;
        qs_json = NULL;
    }
    free(qs_json);
    return s;
}

qs_status qs_model_load(qs_model *m, const char *path, qs_load_info *info) {
    memset(m, 0, sizeof *m);
    if (info) memset(info, 0, sizeof *info);
    struct stat sb;
    if (stat(path, &sb) != 0) return qs_error(QS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) return load_dir(m, path, info);
    if (!S_ISREG(sb.st_mode)) return qs_error(QS_ERR_ARG, "%s: neither a model directory nor a file", path);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (strcmp(base, "config.json") == 0) { // the config of a model directory
        char dir[PATH_BUF];
        int n = base == path ? snprintf(dir, sizeof dir, ".") : snprintf(dir, sizeof dir, "%.*s", (int)(base - path - 1), path);
        if (n >= (int)sizeof dir) return qs_error(QS_ERR_ARG, "path too long: %s", path);
        if (!dir[0]) snprintf(dir, sizeof dir, "/");
        return load_dir(m, dir, info);
    }
    return qs_llama2c_load(m, path);
}

void qs_load_info_free(qs_load_info *info) {
    if (!info) return;
    free(info->quietstar_json);
    memset(info, 0, sizeof *info);
}

qs_status qs_model_save_dir(const qs_model *m, const char *dir, const char *tokenizer_path,
                            const char *quietstar_json) {
    char path[PATH_BUF];
    QS_TRY(qs_mkdir_p(dir));
    // tokenizer first: read before anything in dir changes (it may live there)
    unsigned char *tok = NULL;
    size_t tok_n = 0;
    if (tokenizer_path && *tokenizer_path) QS_TRY(qs_read_file(tokenizer_path, &tok, &tok_n));
    // config first: it also checks that the config can be expressed in HF terms
    qs_status s = join(path, dir, "config.json");
    if (s == QS_OK) s = qs_hf_config_write(&m->cfg, path, quietstar_json);
    qs_st_writer w = {0};
    for (int i = 0; i < m->layout.n && s == QS_OK; i++) {
        const qs_tensor_info *t = &m->layout.t[i];
        s = qs_st_writer_add(&w, t->name, QS_DT_F32, t->ndim, t->shape, m->params + t->offset);
    }
    if (s == QS_OK) s = join(path, dir, "model.safetensors");
    if (s == QS_OK) s = qs_st_writer_write(&w, path);
    qs_st_writer_free(&w);
    if (s == QS_OK && tok) s = join(path, dir, "tokenizer.bin");
    if (s == QS_OK && tok) s = qs_write_file_atomic(path, tok, tok_n);
    free(tok);
    return s;
}

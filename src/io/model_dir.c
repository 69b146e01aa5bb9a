// model_dir.c: Hugging Face model directories (config.json + model.safetensors
// + the tokenizer files) and the qs_model_load entry point.
#include "io/half.h"
#include "io/model_io.h"
#include "io/safetensors.h"
#include "tokenizer/tok_sources.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/gguf.h" // GGUF files are dispatched to qs_gguf_load_model
#include "io/fileutil.h"

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

// The tokenizer a model directory holds: tokenizer.json, then tokenizer.model,
// then the llama2.c tokenizer.bin (the order qs_tokenizer_open uses).
static void find_tokenizer(const char *dir, char *out, size_t cap) {
    static const char *const NAMES[] = {"tokenizer.json", "tokenizer.model", "tokenizer.bin"};
    char p[PATH_BUF];
    out[0] = 0;
    for (int i = 0; i < 3; i++)
        if (join(p, dir, NAMES[i]) == QS_OK && is_file(p) && strlen(p) < cap) {
            memcpy(out, p, strlen(p) + 1);
            return;
        }
}

// The dtype the weights are stored in: the embedding's (else the first float tensor's).
static int stored_dtype(const qs_safetensors *st) {
    const qs_st_tensor *t = qs_st_find(st, "model.embed_tokens.weight");
    if (!t) t = qs_st_find(st, "transformer.wte.weight");
    if (!t) t = qs_st_find(st, "wte.weight");
    for (int i = 0; !t && i < st->n; i++)
        if (st->t[i].dtype == QS_DT_F32 || st->t[i].dtype == QS_DT_F16 || st->t[i].dtype == QS_DT_BF16) t = &st->t[i];
    if (!t || (t->dtype != QS_DT_F16 && t->dtype != QS_DT_BF16)) return QS_DT_F32;
    return (int)t->dtype;
}

// config.json text, kept on the model so that saving keeps its keys.
static qs_status keep_config_text(qs_model *m, const char *cfg_path) {
    unsigned char *buf;
    size_t n;
    QS_TRY(qs_read_file(cfg_path, &buf, &n));
    char *txt = realloc(buf, n + 1);
    if (!txt) {
        free(buf);
        return qs_error(QS_ERR_NOMEM, "%s: out of memory", cfg_path);
    }
    txt[n] = 0;
    m->src_config = txt;
    return QS_OK;
}

// 1 if every tensor of the 16-bit file is the rounding of the master file's
// tensor of that name (the master was written with these weights, not left
// over from other ones).
static int master_matches(const qs_safetensors *master, const qs_safetensors *w16) {
    if (master->n != w16->n) return 0;
    for (int i = 0; i < w16->n; i++) {
        const qs_st_tensor *h = &w16->t[i], *f = qs_st_find(master, h->name);
        if (!f || f->dtype != QS_DT_F32 || f->numel != h->numel) return 0;
        if (h->dtype != QS_DT_F16 && h->dtype != QS_DT_BF16) return 0;
        const unsigned char *hp = w16->data + h->begin, *fp = master->data + f->begin;
        for (size_t k = 0; k < h->numel; k++) {
            float x;
            memcpy(&x, fp + 4 * k, 4);
            const uint16_t want = h->dtype == QS_DT_BF16 ? qs_f32_to_bf16(x) : qs_f32_to_f16(x);
            if (want != (uint16_t)(hp[2 * k] | hp[2 * k + 1] << 8)) return 0;
        }
    }
    return 1;
}

// Weights: master_weights.safetensors (exact fp32, written beside 16-bit
// weights by training checkpoints) when present and consistent with
// model.safetensors, else model.safetensors; save_dtype becomes
// model.safetensors' dtype.
static qs_status load_weights(qs_model *m, const qs_config *c, const char *dir, const char *st_path, int *bits) {
    char master[PATH_BUF];
    QS_TRY(join(master, dir, QS_MASTER_WEIGHTS_FILE));
    qs_safetensors st, st32;
    QS_TRY(qs_st_open(&st, st_path));
    const int dtype = stored_dtype(&st);
    int use_master = dtype != QS_DT_F32 && is_file(master) && qs_st_open(&st32, master) == QS_OK;
    if (use_master && !master_matches(&st32, &st)) {
        qs_st_close(&st32);
        use_master = 0;
    }
    if (use_master) qs_st_close(&st), st = st32;
    qs_status s = quietstar_bits(&st, bits);
    if (s == QS_OK) s = qs_st_check_config(&st, c, *bits != 0); // shapes first: nothing allocated yet
    if (s == QS_OK) s = qs_model_create(m, c, *bits != 0);
    if (s == QS_OK) {
        s = load_tensors(m, &st);
        m->save_dtype = dtype;
        m->save_master = use_master;
        if (s != QS_OK) qs_model_free(m);
    }
    qs_st_close(&st);
    return s;
}

static qs_status load_dir(qs_model *m, const char *dir, qs_load_info *info) {
    char cfg_path[PATH_BUF], st_path[PATH_BUF];
    QS_TRY(join(cfg_path, dir, "config.json"));
    QS_TRY(join(st_path, dir, "model.safetensors"));
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
    int bits = 0;
    qs_status s = load_weights(m, &c, dir, st_path, &bits);
    if (s == QS_OK) {
        s = keep_config_text(m, cfg_path);
        if (s != QS_OK) qs_model_free(m);
    }
    if (s == QS_OK && info) {
        find_tokenizer(dir, info->tokenizer_path, sizeof info->tokenizer_path);
        info->quietstar_json = qs_json;
        info->qs_present = bits;
        info->dtype = m->save_dtype;
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
    if (qs_gguf_is_gguf_file(path)) { // GGUF: the tokenizer lives in the same file
        QS_TRY(qs_gguf_load_model(m, path));
        if (info && strlen(path) < sizeof info->tokenizer_path) memcpy(info->tokenizer_path, path, strlen(path) + 1);
        return QS_OK;
    }
    return qs_llama2c_load(m, path);
}

void qs_load_info_free(qs_load_info *info) {
    if (!info) return;
    free(info->quietstar_json);
    memset(info, 0, sizeof *info);
}

// ---- saving --------------------------------------------------------------

int qs_save_dtype_parse(const char *s) {
    if (!s) return -1;
    if (!strcmp(s, "f32") || !strcmp(s, "float32") || !strcmp(s, "fp32")) return QS_DT_F32;
    if (!strcmp(s, "f16") || !strcmp(s, "float16") || !strcmp(s, "fp16")) return QS_DT_F16;
    if (!strcmp(s, "bf16") || !strcmp(s, "bfloat16")) return QS_DT_BF16;
    return -1;
}

static const char *torch_dtype_name(int dt) {
    return dt == QS_DT_F16 ? "float16" : dt == QS_DT_BF16 ? "bfloat16" : "float32";
}

// Every tensor of the layout into path, as dtype (F32, F16 or BF16, rounded to nearest even).
static qs_status write_weights(const qs_model *m, const char *path, int dtype) {
    const int half = dtype == QS_DT_F16 || dtype == QS_DT_BF16;
    uint16_t *h = NULL;
    if (half) {
        h = malloc(sizeof(uint16_t) * (m->layout.numel ? m->layout.numel : 1));
        if (!h) return qs_error(QS_ERR_NOMEM, "%s: out of memory converting the weights", path);
        qs_f32_to_half_n(h, m->params, m->layout.numel, dtype == QS_DT_BF16);
    }
    qs_st_writer w = {0};
    qs_status s = QS_OK;
    for (int i = 0; i < m->layout.n && s == QS_OK; i++) {
        const qs_tensor_info *t = &m->layout.t[i];
        const void *data = half ? (const void *)(h + t->offset) : (const void *)(m->params + t->offset);
        s = qs_st_writer_add(&w, t->name, half ? (qs_dtype)dtype : QS_DT_F32, t->ndim, t->shape, data);
    }
    if (s == QS_OK) s = qs_st_writer_write(&w, path);
    qs_st_writer_free(&w);
    free(h);
    return s;
}

// Tokenizer files a model directory may hold, copied as they are.
enum { TK_JSON, TK_CONFIG, TK_SPECIAL, TK_MODEL, TK_BIN, N_TOK_FILES };
static const char *const TOK_FILES[N_TOK_FILES] = {"tokenizer.json", "tokenizer_config.json",
                                                   "special_tokens_map.json", "tokenizer.model", "tokenizer.bin"};

typedef struct {
    unsigned char *data[N_TOK_FILES];
    size_t n[N_TOK_FILES];
    const char *gguf; // a .gguf source: its tokenizer is exported (qs_tokenizer_export_gguf)
} tok_files;

static void tok_files_free(tok_files *t) {
    for (int i = 0; i < N_TOK_FILES; i++) free(t->data[i]);
}

static qs_status tok_read(tok_files *t, int k, const char *path) {
    free(t->data[k]);
    t->data[k] = NULL;
    return qs_read_file(path, &t->data[k], &t->n[k]);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && !strcmp(s + n - k, suffix);
}

// Reads the tokenizer files of src: a directory (every file of TOK_FILES it
// holds), or one file, by its name, else by its extension (.json =
// tokenizer.json, .model = tokenizer.model, .gguf = exported, other = llama2.c
// tokenizer.bin); a tokenizer.json or .model brings the tokenizer_config.json
// and special_tokens_map.json beside it.
static qs_status tok_collect(tok_files *t, const char *src) {
    struct stat sb;
    if (stat(src, &sb) != 0) return qs_error(QS_ERR_IO, "%s: cannot open tokenizer: %s", src, strerror(errno));
    char p[PATH_BUF], dir[PATH_BUF];
    if (S_ISDIR(sb.st_mode)) {
        for (int k = 0; k < N_TOK_FILES; k++) {
            QS_TRY(join(p, src, TOK_FILES[k]));
            if (is_file(p)) QS_TRY(tok_read(t, k, p));
        }
        return QS_OK;
    }
    if (ends_with(src, ".gguf")) {
        t->gguf = src;
        return QS_OK;
    }
    const char *base = strrchr(src, '/');
    base = base ? base + 1 : src;
    int k = -1;
    for (int i = 0; i < N_TOK_FILES; i++)
        if (!strcmp(base, TOK_FILES[i])) k = i;
    if (k < 0) k = ends_with(base, ".json") ? TK_JSON : ends_with(base, ".model") ? TK_MODEL : TK_BIN;
    if (k == TK_CONFIG || k == TK_SPECIAL)
        return qs_error(QS_ERR_ARG, "%s: not a tokenizer (give tokenizer.json or its directory)", src);
    QS_TRY(tok_read(t, k, src));
    if (k != TK_JSON && k != TK_MODEL) return QS_OK;
    if (base == src) snprintf(dir, sizeof dir, ".");
    else if (base == src + 1) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(base - src - 1), src);
    for (int i = TK_CONFIG; i <= TK_SPECIAL; i++) {
        QS_TRY(join(p, dir, TOK_FILES[i]));
        if (is_file(p)) QS_TRY(tok_read(t, i, p));
    }
    return QS_OK;
}

static qs_status remove_file(const char *path) {
    if (unlink(path) != 0 && errno != ENOENT) return qs_error(QS_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
    return QS_OK;
}

// Writes the collected files into dir (atomically each); tokenizer files of
// another kind left there by an earlier save are removed, since a loader
// would pick them first.
static qs_status tok_write(const tok_files *t, const char *dir) {
    char p[PATH_BUF];
    int any = t->gguf != NULL;
    for (int k = 0; k < N_TOK_FILES; k++) any |= t->data[k] != NULL;
    if (!any) return QS_OK;
    for (int k = 0; k < N_TOK_FILES; k++) {
        QS_TRY(join(p, dir, TOK_FILES[k]));
        if (t->data[k]) QS_TRY(qs_write_file_atomic(p, t->data[k], t->n[k]));
        else QS_TRY(remove_file(p));
    }
    return t->gguf ? qs_tokenizer_export_gguf(t->gguf, dir) : QS_OK;
}

qs_status qs_model_save_dir(const qs_model *m, const char *dir, const char *tokenizer_path,
                            const char *quietstar_json) {
    const int dt = m->save_dtype;
    if (dt != QS_DT_F32 && dt != QS_DT_F16 && dt != QS_DT_BF16)
        return qs_error(QS_ERR_ARG, "%s: weights dtype must be F32, F16 or BF16", dir);
    char path[PATH_BUF];
    QS_TRY(qs_mkdir_p(dir));
    // tokenizer first: read before anything in dir changes (it may live there)
    tok_files tf = {0};
    qs_status s = tokenizer_path && *tokenizer_path ? tok_collect(&tf, tokenizer_path) : QS_OK;
    // config first: it also checks that the config can be expressed in HF terms
    if (s == QS_OK) s = join(path, dir, "config.json");
    if (s == QS_OK) s = qs_hf_config_write_merged(&m->cfg, path, quietstar_json, m->src_config, torch_dtype_name(dt));
    if (s == QS_OK) s = join(path, dir, "model.safetensors");
    if (s == QS_OK) s = write_weights(m, path, dt);
    if (s == QS_OK) s = join(path, dir, QS_MASTER_WEIGHTS_FILE);
    if (s == QS_OK && m->save_master && dt != QS_DT_F32) s = write_weights(m, path, QS_DT_F32);
    else if (s == QS_OK) s = remove_file(path); // a stale one would shadow the new weights
    if (s == QS_OK) s = tok_write(&tf, dir);
    tok_files_free(&tf);
    return s;
}

// llama2c.c: llama2.c legacy checkpoints (7 x int32 header, then float32
// tensors stacked over layers). llama2.c rotates interleaved pairs (2j, 2j+1)
// of each head; qstar (like HF) rotates halves (j, j + hd/2), so the rows of
// wq and wk are permuted on the way in and out.
#include "io/model_io.h"
#include "io/fileutil.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

// Row permutation between the two RoPE layouts of a [n_heads*hd, cols] matrix
// (declared in model_io.h; the GGUF loader uses it too).
void qs_rope_permute_rows(float *dst, const float *src, int n_heads, int hd, int cols, int to_hf) {
    size_t rb = (size_t)cols * sizeof(float);
    for (int h = 0; h < n_heads; h++)
        for (int j = 0; j < hd / 2; j++) {
            size_t il0 = (size_t)h * hd + 2 * j, hf0 = (size_t)h * hd + j; // interleaved / rotate-half rows
            size_t il1 = il0 + 1, hf1 = hf0 + hd / 2;
            if (to_hf) {
                memcpy(dst + hf0 * cols, src + il0 * cols, rb);
                memcpy(dst + hf1 * cols, src + il1 * cols, rb);
            } else {
                memcpy(dst + il0 * cols, src + hf0 * cols, rb);
                memcpy(dst + il1 * cols, src + hf1 * cols, rb);
            }
        }
}

// Per-layer tensors in file order (each stacked over all layers in the file).
enum { T_RMS_ATT, T_WQ, T_WK, T_WV, T_WO, T_RMS_FFN, T_W1, T_W2, T_W3, N_LT };

static float *layer_tensor(const qs_model *m, int l, int k, size_t *n) {
    const qs_config *c = &m->cfg;
    const qs_layer_ptrs *w = &m->w.layer[l];
    size_t H = (size_t)c->dim, F = (size_t)c->hidden_dim, KV = (size_t)c->n_kv_heads * c->head_dim;
    switch (k) {
    case T_RMS_ATT: *n = H; return w->attn_norm;
    case T_WQ: *n = H * H; return w->wq;
    case T_WK: *n = KV * H; return w->wk;
    case T_WV: *n = KV * H; return w->wv;
    case T_WO: *n = H * H; return w->wo;
    case T_RMS_FFN: *n = H; return w->mlp_norm;
    case T_W1: *n = F * H; return w->w_gate;
    case T_W2: *n = H * F; return w->w_down;
    default: *n = F * H; return w->w_up;
    }
}

static uint64_t expected_size(const qs_config *c) {
    uint64_t H = (uint64_t)c->dim, F = (uint64_t)c->hidden_dim, L = (uint64_t)c->n_layers;
    uint64_t V = (uint64_t)c->vocab_size, KV = (uint64_t)c->n_kv_heads * c->head_dim;
    uint64_t floats = V * H + L * (2 * H + 2 * H * H + 2 * KV * H + 3 * F * H) + H +
                      (uint64_t)c->max_seq_len * (uint64_t)c->head_dim + (c->tied_embeddings ? 0 : V * H);
    return 28 + 4 * floats;
}

static qs_status read_floats(FILE *f, float *dst, size_t n, const char *path) {
    if (fread(dst, sizeof(float), n, f) != n)
        return qs_error(QS_ERR_FORMAT, "%s: unexpected end of file", path);
    return QS_OK;
}

static qs_status load_weights(qs_model *m, FILE *f, const char *path) {
    const qs_config *c = &m->cfg;
    size_t H = (size_t)c->dim, V = (size_t)c->vocab_size;
    float *tmp = qs_malloc(H * H * sizeof(float), "llama2.c q/k rows");
    if (!tmp) return QS_ERR_NOMEM;
    qs_status st = read_floats(f, m->w.embed, V * H, path);
    for (int k = 0; k < N_LT && st == QS_OK; k++)
        for (int l = 0; l < c->n_layers && st == QS_OK; l++) {
            size_t n;
            float *dst = layer_tensor(m, l, k, &n);
            if (k != T_WQ && k != T_WK) { st = read_floats(f, dst, n, path); continue; }
            st = read_floats(f, tmp, n, path);
            qs_rope_permute_rows(dst, tmp, k == T_WQ ? c->n_heads : c->n_kv_heads, c->head_dim, c->dim, 1);
        }
    free(tmp);
    if (st == QS_OK) st = read_floats(f, m->w.final_norm, H, path);
    // freq_cis_real / freq_cis_imag [seq_len, hd/2] each: recomputed, skipped
    if (st == QS_OK && fseeko(f, (off_t)c->max_seq_len * c->head_dim * 4, SEEK_CUR) != 0)
        st = qs_error(QS_ERR_IO, "%s: seek failed: %s", path, strerror(errno));
    if (st == QS_OK && !c->tied_embeddings) st = read_floats(f, m->w.lm_head, V * H, path);
    return st;
}

// Header, size check against it, weights: from `f` holding `size` bytes.
static qs_status load_from(qs_model *m, FILE *f, uint64_t size, const char *path) {
    int32_t h[7];
    qs_status st = QS_OK;
    if (fread(h, sizeof h, 1, f) != 1)
        st = qs_error(QS_ERR_FORMAT, "%s: file is %llu bytes, too short for the 28-byte llama2.c header", path,
                      (unsigned long long)size);
    qs_config c = {0};
    if (st == QS_OK) {
        c = (qs_config){.arch = QS_ARCH_LLAMA, .dim = h[0], .hidden_dim = h[1], .n_layers = h[2],
                        .n_heads = h[3], .n_kv_heads = h[4], .vocab_size = h[5] == INT32_MIN ? 0 : abs(h[5]),
                        .max_seq_len = h[6], .rope_theta = 10000.0f, .norm_eps = 1e-5f,
                        .tied_embeddings = h[5] > 0, .qkv_bias = 0, .bos_id = 1, .eos_id = 2};
        c.head_dim = c.n_heads > 0 ? c.dim / c.n_heads : 0;
        st = qs_config_validate(&c, path);
    }
    if (st == QS_OK && size != expected_size(&c))
        st = qs_error(QS_ERR_FORMAT,
                      "%s: file is %llu bytes but its header (dim %d, hidden %d, layers %d, heads %d, kv heads %d, "
                      "vocab %d, seq_len %d) implies %llu bytes",
                      path, (unsigned long long)size, h[0], h[1], h[2], h[3], h[4], h[5], h[6],
                      (unsigned long long)expected_size(&c));
    if (st == QS_OK) st = qs_model_create(m, &c, 0);
    if (st == QS_OK) {
        st = load_weights(m, f, path);
        if (st != QS_OK) qs_model_free(m);
    }
    return st;
}

qs_status qs_llama2c_load(qs_model *m, const char *path) {
    memset(m, 0, sizeof *m);
    FILE *f = fopen(path, "rb");
    if (!f) return qs_error(QS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    qs_status st;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) st = qs_error(QS_ERR_IO, "%s: not a regular file", path);
    else st = load_from(m, f, (uint64_t)sb.st_size, path);
    fclose(f);
    return st;
}

qs_status qs_llama2c_parse(qs_model *m, const unsigned char *data, size_t n, const char *name) {
    memset(m, 0, sizeof *m);
    if (n < 28)
        return qs_error(QS_ERR_FORMAT, "%s: file is %zu bytes, too short for the 28-byte llama2.c header", name, n);
    FILE *f = fmemopen((void *)data, n, "rb");
    if (!f) return qs_error(QS_ERR_NOMEM, "%s: cannot read from memory: %s", name, strerror(errno));
    qs_status st = load_from(m, f, n, name);
    fclose(f);
    return st;
}

static qs_status write_freq_cis(qs_afile *f, const qs_config *c) {
    int half = c->head_dim / 2;
    float *row = malloc((size_t)half * sizeof *row), *freq = malloc((size_t)half * sizeof *freq);
    if (!row || !freq) {
        free(row);
        free(freq);
        return qs_error(QS_ERR_NOMEM, "out of memory writing freq_cis");
    }
    // as llama2.c's model.py computes them (float32): 1/theta^(2j/hd), cos/sin(pos * freq)
    for (int j = 0; j < half; j++) freq[j] = 1.0f / powf(c->rope_theta, (float)(2 * j) / (float)c->head_dim);
    qs_status st = QS_OK;
    for (int part = 0; part < 2 && st == QS_OK; part++)
        for (int p = 0; p < c->max_seq_len && st == QS_OK; p++) {
            for (int j = 0; j < half; j++) {
                float a = (float)p * freq[j];
                row[j] = part == 0 ? cosf(a) : sinf(a);
            }
            st = qs_afile_write(f, row, (size_t)half * sizeof *row);
        }
    free(row);
    free(freq);
    return st;
}

static qs_status write_weights(qs_afile *f, const qs_model *m) {
    const qs_config *c = &m->cfg;
    size_t H = (size_t)c->dim, V = (size_t)c->vocab_size;
    int32_t h[7] = {c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
                    c->tied_embeddings ? c->vocab_size : -c->vocab_size, c->max_seq_len};
    QS_TRY(qs_afile_write(f, h, sizeof h));
    QS_TRY(qs_afile_write(f, m->w.embed, V * H * sizeof(float)));
    float *tmp = qs_malloc(H * H * sizeof(float), "llama2.c q/k rows");
    if (!tmp) return QS_ERR_NOMEM;
    qs_status st = QS_OK;
    for (int k = 0; k < N_LT && st == QS_OK; k++)
        for (int l = 0; l < c->n_layers && st == QS_OK; l++) {
            size_t n;
            const float *src = layer_tensor(m, l, k, &n);
            if (k == T_WQ || k == T_WK) {
                qs_rope_permute_rows(tmp, src, k == T_WQ ? c->n_heads : c->n_kv_heads, c->head_dim, c->dim, 0);
                src = tmp;
            }
            st = qs_afile_write(f, src, n * sizeof(float));
        }
    free(tmp);
    if (st == QS_OK) st = qs_afile_write(f, m->w.final_norm, H * sizeof(float));
    if (st == QS_OK) st = write_freq_cis(f, c);
    if (st == QS_OK && !c->tied_embeddings) st = qs_afile_write(f, m->w.lm_head, V * H * sizeof(float));
    return st;
}

static qs_status check_saveable(const qs_model *m, const char *path) {
    const qs_config *c = &m->cfg;
    if (c->qkv_bias) return qs_error(QS_ERR_UNSUPPORTED, "%s: llama2.c checkpoints cannot hold q/k/v biases", path);
    if (c->rope_theta != 10000.0f || c->norm_eps != 1e-5f)
        return qs_error(QS_ERR_UNSUPPORTED,
                        "%s: llama2.c checkpoints assume rope_theta 10000 and rms_norm_eps 1e-5 (model has %g, %g)",
                        path, (double)c->rope_theta, (double)c->norm_eps);
    return qs_config_validate(c, path);
}

qs_status qs_llama2c_save(const qs_model *m, const char *path) {
    QS_TRY(check_saveable(m, path));
    qs_afile f;
    QS_TRY(qs_afile_open(&f, path));
    qs_status st = write_weights(&f, m);
    if (st != QS_OK) {
        qs_afile_abort(&f);
        return st;
    }
    return qs_afile_commit(&f);
}

qs_status qs_llama2c_save_mem(const qs_model *m, unsigned char **out, size_t *n) {
    *out = NULL;
    *n = 0;
    QS_TRY(check_saveable(m, "llama2.c checkpoint"));
    char *buf = NULL;
    size_t len = 0;
    FILE *ms = open_memstream(&buf, &len);
    if (!ms) return qs_error(QS_ERR_NOMEM, "out of memory writing a llama2.c checkpoint");
    static char name[] = "llama2.c checkpoint (memory)";
    qs_afile f = {.fp = ms, .path = name, .tmp = name}; // qs_afile_write only writes to fp
    qs_status st = write_weights(&f, m);
    if (fclose(ms) != 0 && st == QS_OK) st = qs_error(QS_ERR_NOMEM, "out of memory writing a llama2.c checkpoint");
    if (st != QS_OK) {
        free(buf);
        return st;
    }
    *out = (unsigned char *)buf;
    *n = len;
    return QS_OK;
}

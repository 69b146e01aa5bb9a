// test_gpt2.c: the GPT-2 ops (LayerNorm, GELU tanh, Conv1D, learned positions)
// against central finite differences of L = sum(out * G), and the GPT-2
// config/loader paths (bad activation, shared fake-gpt2 forward). The whole
// model against PyTorch is in test_reference.c (fixtures gpt2_* from
// tests/reference/gpt2_ref.py).
#include "testutil.h"

#include <unistd.h>

#include "core/rng.h"
#include "io/model_io.h"
#include "model/transformer.h"
#include "model/workspace.h"
#include "ops/ops.h"

enum { N = 5, C = 7, OC = 6, LDW = 9 };

static void fill(float *x, size_t n, uint64_t seed, float scale) {
    qs_rng r;
    qs_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = scale * qs_rng_normal(&r);
}

typedef double (*loss_fn)(void *ctx);

// analytic[i] vs (L(x+e) - L(x-e)) / 2e for every element
static void fd_check(const char *what, loss_fn L, void *ctx, float *x, size_t n, const float *analytic) {
    const float e = 1e-2f;
    for (size_t i = 0; i < n; i++) {
        float old = x[i];
        x[i] = old + e;
        double lp = L(ctx);
        x[i] = old - e;
        double lm = L(ctx);
        x[i] = old;
        double fd = (lp - lm) / (2.0 * e);
        if (fabs(fd - analytic[i]) > 2e-3 + 2e-2 * fabs(fd))
            fail_msg("%s[%zu]: analytic %.6g finite difference %.6g", what, i, (double)analytic[i], fd);
    }
}

static double dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

typedef struct { float x[N * C], w[C], b[C], out[N * C], G[N * C]; } ln_ctx;
static double ln_loss(void *p) {
    ln_ctx *c = p;
    layernorm_forward(c->out, NULL, NULL, c->x, c->w, c->b, N, C, 1e-5f);
    return dot(c->out, c->G, N * C);
}

static void test_layernorm(void **state) {
    (void)state;
    ln_ctx c;
    fill(c.x, N * C, 1, 1.5f), fill(c.w, C, 2, 0.5f), fill(c.b, C, 3, 0.5f), fill(c.G, N * C, 4, 1.0f);
    for (int i = 0; i < C; i++) c.w[i] += 1.0f;
    float mean[N], rstd[N], dx[N * C] = {0}, dw[C] = {0}, db[C] = {0};
    layernorm_forward(c.out, mean, rstd, c.x, c.w, c.b, N, C, 1e-5f);
    // forward against a double computation
    for (int n = 0; n < N; n++) {
        double m = 0, v = 0;
        for (int k = 0; k < C; k++) m += c.x[n * C + k];
        m /= C;
        for (int k = 0; k < C; k++) v += (c.x[n * C + k] - m) * (c.x[n * C + k] - m);
        double r = 1.0 / sqrt(v / C + 1e-5);
        for (int k = 0; k < C; k++) {
            double want = (c.x[n * C + k] - m) * r * c.w[k] + c.b[k];
            assert_true(fabs(c.out[n * C + k] - want) < 1e-5);
        }
    }
    layernorm_backward(dx, dw, db, c.G, c.x, c.w, mean, rstd, N, C);
    fd_check("layernorm dx", ln_loss, &c, c.x, N * C, dx);
    fd_check("layernorm dw", ln_loss, &c, c.w, C, dw);
    fd_check("layernorm db", ln_loss, &c, c.b, C, db);
}

typedef struct { float x[N * C], out[N * C], G[N * C]; } gelu_ctx;
static double gelu_loss(void *p) {
    gelu_ctx *c = p;
    gelu_forward(c->out, c->x, N * C);
    return dot(c->out, c->G, N * C);
}

static void test_gelu(void **state) {
    (void)state;
    gelu_ctx c;
    fill(c.x, N * C, 5, 2.0f), fill(c.G, N * C, 6, 1.0f);
    gelu_forward(c.out, c.x, N * C);
    for (int i = 0; i < N * C; i++) {
        double v = c.x[i], want = 0.5 * v * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
        assert_true(fabs(c.out[i] - want) < 1e-6 + 1e-6 * fabs(want));
    }
    float dx[N * C] = {0};
    gelu_backward(dx, c.G, c.x, N * C);
    fd_check("gelu dx", gelu_loss, &c, c.x, N * C, dx);
}

typedef struct { float x[N * C], w[C * LDW], b[OC], out[N * OC], G[N * OC]; } conv_ctx;
static double conv_loss(void *p) {
    conv_ctx *c = p;
    conv1d_forward(c->out, c->x, c->w, LDW, c->b, N, C, OC);
    return dot(c->out, c->G, N * OC);
}

static void test_conv1d(void **state) {
    (void)state;
    conv_ctx c;
    fill(c.x, N * C, 7, 1.0f), fill(c.w, C * LDW, 8, 0.5f), fill(c.b, OC, 9, 0.5f), fill(c.G, N * OC, 10, 1.0f);
    conv1d_forward(c.out, c.x, c.w, LDW, c.b, N, C, OC);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = c.b[o];
            for (int k = 0; k < C; k++) s += (double)c.x[n * C + k] * c.w[k * LDW + o]; // weight [in, out]
            assert_true(fabs(c.out[n * OC + o] - s) < 1e-5);
        }
    float dx[N * C] = {0}, dw[C * LDW] = {0}, db[OC] = {0};
    conv1d_backward(dx, dw, db, c.G, c.x, c.w, LDW, N, C, OC);
    fd_check("conv1d dinp", conv_loss, &c, c.x, N * C, dx);
    fd_check("conv1d dweight", conv_loss, &c, c.w, C * LDW, dw); // columns >= OC: zero both ways
    fd_check("conv1d dbias", conv_loss, &c, c.b, OC, db);
    // learned positions: x += wpe[pos]
    float x[2 * C] = {0}, wpe[3 * C];
    int pos[2] = {2, 0};
    fill(wpe, 3 * C, 11, 1.0f);
    posembed_forward(x, pos, wpe, 2, C);
    assert_memory_equal(x, wpe + 2 * C, C * sizeof(float));
    assert_memory_equal(x + C, wpe, C * sizeof(float));
}

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(s, f);
    fclose(f);
}

static void test_config(void **state) {
    (void)state;
    char path[] = "/tmp/qs_gpt2_cfg_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    qs_config c;
    write_text(path, "{\"architectures\":[\"GPT2LMHeadModel\"],\"model_type\":\"gpt2\",\"n_embd\":8,\"n_layer\":1,"
                     "\"n_head\":2,\"n_positions\":16,\"vocab_size\":10,\"n_inner\":null,"
                     "\"activation_function\":\"relu\"}");
    assert_int_not_equal(qs_hf_config_read(&c, path, NULL), QS_OK);
    assert_non_null(strstr(qstar_last_error(), "activation_function \"relu\""));
    assert_non_null(strstr(qstar_last_error(), path));
    write_text(path, "{\"architectures\":[\"GPT2LMHeadModel\"],\"model_type\":\"gpt2\",\"n_embd\":8,\"n_layer\":1,"
                     "\"n_head\":2,\"n_ctx\":16,\"vocab_size\":10,\"n_inner\":null,\"layer_norm_epsilon\":1e-6,"
                     "\"activation_function\":\"gelu_new\"}");
    assert_int_equal(qs_hf_config_read(&c, path, NULL), QS_OK);
    assert_int_equal(c.arch, QS_ARCH_GPT2);
    assert_int_equal(c.hidden_dim, 32); // n_inner null => 4 * n_embd
    assert_int_equal(c.max_seq_len, 16);
    assert_int_equal(c.tied_embeddings, 1);
    assert_true(c.norm_eps == 1e-6f);
    // written back and read again: same config
    assert_int_equal(qs_hf_config_write(&c, path, NULL), QS_OK);
    qs_config d;
    assert_int_equal(qs_hf_config_read(&d, path, NULL), QS_OK);
    assert_memory_equal(&c, &d, sizeof c);
    unlink(path);
}

// The shared fake-gpt2 (HF layout) loads and runs a forward; positions
// beyond n_positions are refused.
static void test_fake_gpt2(void **state) {
    (void)state;
    char buf[4096];
    if (!tu_data_path("models/fake-gpt2/model.safetensors", buf, sizeof buf)) skip();
    *strrchr(buf, '/') = 0;
    qs_model m;
    if (qs_model_load(&m, buf, NULL) != QS_OK) fail_msg("%s", qstar_last_error());
    assert_int_equal(m.cfg.arch, QS_ARCH_GPT2);
    int toks[8] = {464, 2068, 7586, 21831, 18045, 625, 262, 50256};
    qs_workspace *ws = NULL;
    assert_int_equal(qs_workspace_create(&ws, &m.cfg, 1, 8, 1), QS_OK);
    float loss = 0;
    assert_int_equal(qs_lm_step(&m, ws, toks, NULL, 1, 8, &loss, NULL, NULL, 1.0f, NULL), QS_OK);
    assert_true(isfinite(loss) && loss > 0);
    fprintf(stderr, "  fake-gpt2: loss %.4f on 8 tokens\n", (double)loss);
    qs_workspace_free(ws);
    qs_model_free(&m);
}

// The KV-cache path (one position at a time, as generate does) gives the
// logits of the whole-sequence forward; a position >= n_positions is refused.
static void test_kv_cache(void **state) {
    (void)state;
    qs_model m;
    if (qs_model_load(&m, "tests/fixtures/llama/gpt2_untied_pad/model", NULL) != QS_OK)
        fail_msg("%s", qstar_last_error());
    enum { T = 9 };
    const int H = m.cfg.dim, V = m.cfg.vocab_size;
    int toks[T] = {3, 17, 5, 40, 2, 9, 11, 0, 33};
    float *full = malloc((size_t)T * V * sizeof(float)), *one = malloc((size_t)V * sizeof(float)), h[64];
    qs_workspace *ws = NULL;
    assert_int_equal(qs_workspace_create(&ws, &m.cfg, 1, T, 1), QS_OK);
    assert_int_equal(qs_lm_step(&m, ws, toks, NULL, 1, T, NULL, full, NULL, 1.0f, NULL), QS_OK);
    qs_workspace_free(ws);
    assert_int_equal(qs_workspace_create_ex(&ws, &m.cfg, 1, 16, 1, 0), QS_OK);
    for (int i = 0; i < T; i++) {
        assert_int_equal(qs_forward_block(&m, ws, m.w.embed + (size_t)toks[i] * H, 0, 1, i, 1, h), QS_OK);
        matmul_forward(one, h, m.w.lm_head, NULL, 1, H, V);
        tu_assert_close("kv-cache logits", one, full + (size_t)i * V, V, 1e-5, 1e-4);
    }
    // n_positions is 12: positions 12.. have no learned embedding
    assert_int_equal(qs_forward_block(&m, ws, m.w.embed, 0, 1, 11, 1, h), QS_OK);
    assert_int_not_equal(qs_forward_block(&m, ws, m.w.embed, 0, 1, 12, 1, h), QS_OK);
    assert_non_null(strstr(qstar_last_error(), "n_positions"));
    qs_workspace_free(ws);
    free(full), free(one);
    qs_model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layernorm), cmocka_unit_test(test_gelu), cmocka_unit_test(test_conv1d),
        cmocka_unit_test(test_config), cmocka_unit_test(test_fake_gpt2),
        cmocka_unit_test(test_kv_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

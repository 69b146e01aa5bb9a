// test_transformer.c: whole-model checks of the Llama forward/backward:
// finite-difference gradients of the LM loss, padding invariance, and
// forward-by-blocks (KV cache) equal to the batched forward.
#include "testutil.h"
#include "model/workspace_impl.h" // white-box: the workspace layout
#include "core/rng.h"

static void tiny_config(qs_config *c, int qkv_bias, int tied) {
    *c = (qs_config){.arch = QS_ARCH_LLAMA, .dim = 16, .hidden_dim = 24, .n_layers = 2, .n_heads = 4,
                     .n_kv_heads = 2, .head_dim = 4, .vocab_size = 11, .max_seq_len = 64,
                     .rope_theta = 10000.0f, .norm_eps = 1e-5f, .tied_embeddings = tied,
                     .qkv_bias = qkv_bias, .bos_id = 1, .eos_id = 2};
}

static void make_model(qs_model *m, int qkv_bias, int tied) {
    qs_config c;
    tiny_config(&c, qkv_bias, tied);
    assert_int_equal(qs_model_create(m, &c, 0), QS_OK);
    qs_model_init_random(m, 7);
    // larger weights than 0.02 so the loss is not flat; norms away from 1
    qs_rng r;
    qs_rng_seed(&r, 3);
    for (size_t k = 0; k < m->layout.numel; k++) m->params[k] = m->params[k] * 5.0f + 0.1f * qs_rng_normal(&r);
}

static double loss_at(qs_model *m, qs_workspace *ws, const int *tok, const int *mask, int B, int T) {
    float loss;
    assert_int_equal(qs_lm_step(m, ws, tok, mask, B, T, &loss, NULL, NULL, 1.0f, NULL), QS_OK);
    return loss;
}

static void check_grads(int qkv_bias, int tied) {
    qs_model m;
    make_model(&m, qkv_bias, tied);
    enum { B = 2, T = 6 };
    int tok[B * T] = {1, 5, 3, 9, 2, 7, 1, 4, 4, 10, 0, 0};
    int mask[B * T] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
    qs_workspace *ws;
    assert_int_equal(qs_workspace_create(&ws, &m.cfg, B, T, 1), QS_OK);
    float *g = calloc(m.layout.numel, sizeof(float));
    float loss;
    assert_int_equal(qs_lm_step(&m, ws, tok, mask, B, T, &loss, NULL, g, 1.0f, NULL), QS_OK);
    assert_true(isfinite(loss) && loss > 0);
    // every tensor: check a few elements by central differences
    qs_rng r;
    qs_rng_seed(&r, 11);
    int bad = 0;
    for (int t = 0; t < m.layout.n; t++) {
        const qs_tensor_info *ti = &m.layout.t[t];
        for (int s = 0; s < 4; s++) {
            size_t k = ti->offset + qs_rng_below(&r, ti->numel);
            float old = m.params[k], eps = 2e-3f;
            m.params[k] = old + eps;
            double lp = loss_at(&m, ws, tok, mask, B, T);
            m.params[k] = old - eps;
            double lm = loss_at(&m, ws, tok, mask, B, T);
            m.params[k] = old;
            double fd = (lp - lm) / (2 * eps);
            if (fabs(fd - g[k]) > 2e-3 + 2e-2 * fabs(fd)) {
                fprintf(stderr, "%s[%zu]: analytic %.6g fd %.6g\n", ti->name, k - ti->offset, g[k], fd);
                bad++;
            }
        }
    }
    assert_int_equal(bad, 0);
    free(g);
    qs_workspace_free(ws);
    qs_model_free(&m);
}

static void test_grads_tied(void **st) { (void)st; check_grads(0, 1); }
static void test_grads_untied_bias(void **st) { (void)st; check_grads(1, 0); }

// Padding must not change the logits of real tokens.
static void test_padding_invariance(void **st) {
    (void)st;
    qs_model m;
    make_model(&m, 0, 1);
    int a[8] = {1, 5, 3, 9, 0, 0, 0, 0}, am[8] = {1, 1, 1, 1, 0, 0, 0, 0};
    int b[8] = {1, 5, 3, 9, 7, 7, 7, 7};
    qs_workspace *ws;
    assert_int_equal(qs_workspace_create(&ws, &m.cfg, 1, 8, 1), QS_OK);
    float *la = malloc(8 * 11 * sizeof(float)), *lb = malloc(8 * 11 * sizeof(float));
    assert_int_equal(qs_lm_step(&m, ws, a, am, 1, 8, NULL, la, NULL, 1, NULL), QS_OK);
    assert_int_equal(qs_lm_step(&m, ws, b, NULL, 1, 8, NULL, lb, NULL, 1, NULL), QS_OK);
    tu_assert_close("padded logits", la, lb, 4 * 11, 1e-6, 1e-5);
    free(la), free(lb);
    qs_workspace_free(ws);
    qs_model_free(&m);
}

// Forward one position at a time (KV cache, inference workspace) equals the
// batched forward.
static void test_incremental_forward(void **st) {
    (void)st;
    qs_model m;
    make_model(&m, 1, 0);
    enum { T = 7 };
    int tok[T] = {1, 5, 3, 9, 2, 7, 4};
    qs_workspace *wa, *wb;
    assert_int_equal(qs_workspace_create(&wa, &m.cfg, 1, T, 1), QS_OK);
    assert_int_equal(qs_workspace_create_ex(&wb, &m.cfg, 1, T, 1, 0), QS_OK);
    assert_int_equal(qs_lm_step(&m, wa, tok, NULL, 1, T, NULL, NULL, NULL, 1, NULL), QS_OK);
    float x[16], h[16];
    for (int i = 0; i < T; i++) {
        memcpy(x, m.w.embed + tok[i] * 16, sizeof x);
        assert_int_equal(qs_forward_block(&m, wb, x, 0, 1, i, 1, h), QS_OK);
        tu_assert_close("incremental hidden", h, wa->h + i * 16, 16, 1e-5, 1e-4);
    }
    qs_workspace_free(wa);
    qs_workspace_free(wb);
    qs_model_free(&m);
}

static void test_bad_tokens(void **st) {
    (void)st;
    qs_model m;
    make_model(&m, 0, 1);
    int tok[4] = {1, 50, 2, 3};
    qs_workspace *ws;
    assert_int_equal(qs_workspace_create(&ws, &m.cfg, 1, 4, 1), QS_OK);
    float loss;
    assert_int_equal(qs_lm_step(&m, ws, tok, NULL, 1, 4, &loss, NULL, NULL, 1, NULL), QS_ERR_ARG);
    assert_non_null(strstr(qstar_last_error(), "outside vocabulary"));
    assert_int_equal(qs_lm_step(&m, ws, tok, NULL, 2, 4, &loss, NULL, NULL, 1, NULL), QS_ERR_ARG);
    qs_workspace_free(ws);
    qs_model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grads_tied),          cmocka_unit_test(test_grads_untied_bias),
        cmocka_unit_test(test_padding_invariance),  cmocka_unit_test(test_incremental_forward),
        cmocka_unit_test(test_bad_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

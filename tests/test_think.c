// test_think.c: generation with thoughts (SPEC section 6) against the
// training step: the mixed logits of one thought at position i equal the
// step's talk-0 prediction for the same thought, and its talk passes the
// step's talk-k predictions; the prefix cache never sees
// a thought; a fixed seed gives the same text whether or not thoughts are
// shown.
#include "testutil.h"
#include "io/model_io.h"
#include "model/workspace_impl.h" // white-box: the KV cache layout
#include "quietstar/think.h"
#include "ops/ops.h"

static void load_fixture_model(qs_model *m) {
    const char *root = getenv("QSTAR_FIXTURES");
    char d[4096];
    snprintf(d, sizeof d, "%s/quietstar/b_gqa_pad/model", root && *root ? root : "tests/fixtures");
    if (qs_model_load(m, d, NULL) != QS_OK) fail_msg("%s", qstar_last_error());
}

static void test_think_matches_step(void **st) {
    (void)st;
    qs_model m;
    load_fixture_model(&m);
    qs_qstar_opts o;
    qs_qstar_opts_default(&o);
    o.n_ahead = 6, o.n_talk = 1, o.n_passes = 1;
    enum { T = 9, NT = 3 };
    int ids[T] = {1, 5, 17, 33, 9, 40, 12, 7, 60};
    qs_qstar *q;
    assert_int_equal(qs_qstar_create(&q, &m, &o, 1, T), QS_OK);
    qs_rng rng;
    qs_rng_seed(&rng, 3);
    qs_qstar_out r;
    assert_int_equal(qs_qstar_step(q, &m, ids, NULL, NULL, &rng, NULL, 1, &r), QS_OK);
    qs_thinker *t;
    assert_int_equal(qs_thinker_create(&t, &m, &o, T), QS_OK);
    float *z = malloc(sizeof(float) * m.cfg.vocab_size), nll;
    for (int i = 0; i < T - 1; i++) {
        assert_int_equal(qs_thinker_feed(t, ids[i], i), QS_OK);
        int th[NT];
        for (int u = 0; u < NT; u++) th[u] = r.thoughts[u * T + i]; // [R=1, nT, T]
        float w;
        assert_int_equal(qs_thinker_think(t, NULL, z, th, &w), QS_OK);
        crossentropy_forward(&nll, z, &ids[i + 1], 1, m.cfg.vocab_size);
        tu_assert_close("talk nll", &nll, &r.nll_talk[i], 1, 1e-5, 1e-4);
        tu_assert_close("mix weight", &w, &r.mix_weight[i], 1, 1e-5, 1e-4);
    }
    free(z);
    qs_thinker_free(t);
    qs_qstar_free(q);
    qs_model_free(&m);
}

// Talk passes: one thought at column a, then the true tokens a+1.. fed after
// it (qs_thinker_talk) give the step's talk-k predictions (n_talk 4) for that
// thought; a talk beyond n_talk-1 or before any thought is refused.
static void test_talk_matches_step(void **st) {
    (void)st;
    qs_model m;
    load_fixture_model(&m);
    qs_qstar_opts o;
    qs_qstar_opts_default(&o);
    o.n_ahead = 6, o.n_talk = 4, o.n_passes = 1;
    enum { T = 10, NT = 3, K = 4 };
    int ids[T] = {1, 5, 17, 33, 9, 40, 12, 7, 60, 3};
    qs_qstar *q;
    assert_int_equal(qs_qstar_create(&q, &m, &o, 1, T), QS_OK);
    qs_rng rng;
    qs_rng_seed(&rng, 5);
    qs_qstar_out r;
    assert_int_equal(qs_qstar_step(q, &m, ids, NULL, NULL, &rng, NULL, 1, &r), QS_OK);
    const int V = m.cfg.vocab_size;
    float *z = malloc(sizeof(float) * V), nll, w;
    for (int a = 0; a + K < T; a += 2) {
        qs_thinker *t;
        assert_int_equal(qs_thinker_create_talk(&t, &m, &o, T, K), QS_OK);
        for (int i = 0; i <= a; i++) assert_int_equal(qs_thinker_feed(t, ids[i], i), QS_OK);
        assert_int_not_equal(qs_thinker_talk(t, a, z, &w), QS_OK); // k = 0 is the thought itself
        int th[NT];
        for (int u = 0; u < NT; u++) th[u] = r.thoughts[u * T + a];
        assert_int_equal(qs_thinker_think(t, NULL, z, th, &w), QS_OK);
        for (int k = 0; k < K; k++) {
            if (k > 0) {
                assert_int_equal(qs_thinker_feed(t, ids[a + k], a + k), QS_OK);
                assert_int_equal(qs_thinker_talk(t, a, z, &w), QS_OK);
            }
            crossentropy_forward(&nll, z, &ids[a + k + 1], 1, V);
            tu_assert_close("talk nll", &nll, &r.nll_talk[(size_t)k * T + a], 1, 1e-5, 1e-4);
            tu_assert_close("talk mix weight", &w, &r.mix_weight[(size_t)k * T + a], 1, 1e-5, 1e-4);
        }
        assert_int_equal(qs_thinker_feed(t, ids[a + K], a + K), QS_OK);
        assert_int_not_equal(qs_thinker_talk(t, a, z, &w), QS_OK); // k = n_talk: no such pass
        qs_thinker_free(t);
    }
    free(z);
    qs_qstar_free(q);
    qs_model_free(&m);
}

typedef struct { int tokens[64]; int n; int thoughts_seen; } rec;
static int record(void *ud, int token, const char *piece, const int *thought, int n_thought, float w) {
    (void)piece, (void)w;
    rec *r = ud;
    if (r->n < 64) r->tokens[r->n++] = token;
    if (thought && n_thought > 0) r->thoughts_seen++;
    return 0;
}

// After generating with thoughts the pass-0 cache equals a plain forward's.
static void test_cache_never_sees_thoughts(void **st) {
    (void)st;
    qs_model m;
    load_fixture_model(&m);
    qs_qstar_opts o;
    qs_qstar_opts_default(&o);
    o.n_ahead = 5;
    int prompt[3] = {1, 5, 17};
    enum { N = 12 };
    qs_thinker *t;
    assert_int_equal(qs_thinker_create(&t, &m, &o, N), QS_OK);
    qs_rng rng;
    qs_rng_seed(&rng, 9);
    int seq[N];
    memcpy(seq, prompt, sizeof prompt);
    float *z = malloc(sizeof(float) * m.cfg.vocab_size);
    for (int i = 0; i < N; i++) {
        assert_int_equal(qs_thinker_feed(t, seq[i], i), QS_OK);
        if (i + 1 < N && i >= 2) {
            int th[2];
            assert_int_equal(qs_thinker_think(t, &rng, z, th, NULL), QS_OK);
            int best = 0;
            for (int v = 1; v < m.cfg.vocab_size; v++) if (z[v] > z[best]) best = v;
            seq[i + 1] = best;
        }
    }
    // plain forward over the same tokens
    qs_workspace *ws;
    assert_int_equal(qs_workspace_create_ex(&ws, &m.cfg, 1, N, 1, 0), QS_OK);
    ws->mask = NULL;
    float *x = malloc(sizeof(float) * N * m.cfg.dim);
    for (int i = 0; i < N; i++) memcpy(x + i * m.cfg.dim, m.w.embed + seq[i] * m.cfg.dim, sizeof(float) * m.cfg.dim);
    assert_int_equal(qs_forward_block(&m, ws, x, 0, 1, 0, N, NULL), QS_OK);
    qs_workspace *tw = qs_thinker_workspace(t);
    const size_t kvd = (size_t)m.cfg.n_kv_heads * m.cfg.head_dim;
    for (int l = 0; l < m.cfg.n_layers; l++) {
        // pass 0 occupies the first T*kvd floats of each layer's cache in both
        tu_assert_close("prefix K cache", tw->kc + l * tw->kv_layer, ws->kc + l * ws->kv_layer, N * kvd, 1e-6, 1e-5);
        tu_assert_close("prefix V cache", tw->vc + l * tw->kv_layer, ws->vc + l * ws->kv_layer, N * kvd, 1e-6, 1e-5);
    }
    free(x), free(z);
    qs_workspace_free(ws);
    qs_thinker_free(t);
    qs_model_free(&m);
}

static void test_seed_same_text(void **st) {
    (void)st;
    qs_model m;
    load_fixture_model(&m);
    qs_qstar_opts o;
    qs_qstar_opts_default(&o);
    o.n_ahead = 6;
    int prompt[2] = {1, 5};
    qs_gen_opts g = qs_gen_opts_default();
    g.steps = 20, g.seed = 77, g.stop_token = 10000; // never stop early
    rec a = {0}, b = {0}, c = {0};
    assert_int_equal(qs_generate_think(&m, NULL, prompt, 2, &g, &o, 1, record, &a, NULL), QS_OK);
    assert_int_equal(qs_generate_think(&m, NULL, prompt, 2, &g, &o, 1, record, &b, NULL), QS_OK);
    assert_int_equal(a.n, b.n);
    assert_memory_equal(a.tokens, b.tokens, sizeof(int) * a.n);
    assert_true(a.thoughts_seen > 0);
    // without thinking: a different path, but still deterministic and thought-free
    assert_int_equal(qs_generate_think(&m, NULL, prompt, 2, &g, &o, 0, record, &c, NULL), QS_OK);
    assert_int_equal(c.thoughts_seen, 0);
    qs_model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_think_matches_step),
        cmocka_unit_test(test_talk_matches_step),
        cmocka_unit_test(test_cache_never_sees_thoughts),
        cmocka_unit_test(test_seed_same_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

// test_generate.c: the sampler (argmax, temperature, top-p, banned ids,
// determinism) and KV-cache generation on a random tiny model (run.c
// semantics, determinism, greedy == argmax of the batched forward).
#include "testutil.h"
#include "core/rng.h"
#include "model/generate.h"
#include "model/sampler.h"
#include "model/transformer.h"
#include "model/workspace.h"

// ---------------------------------------------------------------------------
// Sampler

static void test_argmax(void **st) {
    (void)st;
    float x[6] = {0.1f, 2.0f, -1.0f, 3.5f, 3.5f, 0.0f};
    assert_int_equal(qs_sample_argmax(x, 6), 3); // first of a tie
    qs_sampler s;
    assert_int_equal(qs_sampler_init(&s, 6, 0.0f, 0.9f, 1), QS_OK);
    for (int k = 0; k < 5; k++) {
        float y[6];
        memcpy(y, x, sizeof y);
        assert_int_equal(qs_sampler_sample(&s, y), 3);
    }
    qs_sampler_free(&s);
}

// Draws n samples from logits `lg` and returns frequencies in freq[V].
static void draw(qs_sampler *s, const float *lg, int V, int n, double *freq) {
    float *y = malloc((size_t)V * sizeof *y);
    for (int i = 0; i < V; i++) freq[i] = 0;
    for (int k = 0; k < n; k++) {
        memcpy(y, lg, (size_t)V * sizeof *y);
        int t = qs_sampler_sample(s, y);
        assert_true(t >= 0 && t < V);
        freq[t] += 1.0 / n;
    }
    free(y);
}

static void test_temperature_frequencies(void **st) {
    (void)st;
    enum { V = 5, N = 200000 };
    const double p[V] = {0.05, 0.1, 0.15, 0.3, 0.4};
    float lg[V];
    for (int i = 0; i < V; i++) lg[i] = (float)log(p[i]) + 1.7f; // shift does not matter
    const float temps[3] = {1.0f, 2.0f, 0.5f};
    for (int ti = 0; ti < 3; ti++) {
        // expected: softmax(log p / T) = p^(1/T) / sum
        double want[V], z = 0, freq[V];
        for (int i = 0; i < V; i++) z += want[i] = pow(p[i], 1.0 / temps[ti]);
        for (int i = 0; i < V; i++) want[i] /= z;
        qs_sampler s;
        assert_int_equal(qs_sampler_init(&s, V, temps[ti], 1.0f, 42), QS_OK); // top-p off
        draw(&s, lg, V, N, freq);
        for (int i = 0; i < V; i++) {
            if (fabs(freq[i] - want[i]) > 0.01)
                fail_msg("T=%g token %d: frequency %.4f, expected %.4f", (double)temps[ti], i, freq[i], want[i]);
        }
        qs_sampler_free(&s);
    }
}

static void test_top_p(void **st) {
    (void)st;
    enum { V = 6, N = 100000 };
    // probabilities 0.45 0.3 0.15 0.05 0.03 0.02: top-p 0.7 keeps {0,1} (0.45 + 0.3 > 0.7)
    const double p[V] = {0.45, 0.3, 0.15, 0.05, 0.03, 0.02};
    float lg[V];
    for (int i = 0; i < V; i++) lg[i] = (float)log(p[i]);
    double freq[V];
    qs_sampler s;
    assert_int_equal(qs_sampler_init(&s, V, 1.0f, 0.7f, 7), QS_OK);
    draw(&s, lg, V, N, freq);
    for (int i = 2; i < V; i++) assert_true(freq[i] == 0.0);
    assert_true(fabs(freq[0] - 0.45 / 0.75) < 0.01);
    assert_true(fabs(freq[1] - 0.30 / 0.75) < 0.01);
    qs_sampler_free(&s);
    // top-p 0.9 keeps {0,1,2} (0.9 is not > 0.9 until the 4th: 0.45+0.3+0.15 = 0.9 in float may
    // land either side, so use 0.85: {0,1,2})
    assert_int_equal(qs_sampler_init(&s, V, 1.0f, 0.85f, 7), QS_OK);
    draw(&s, lg, V, N, freq);
    for (int i = 3; i < V; i++) assert_true(freq[i] == 0.0);
    assert_true(fabs(freq[2] - 0.15 / 0.9) < 0.01);
    qs_sampler_free(&s);
    // the building block directly: coin near 1 picks the last token of the nucleus
    float probs[V];
    for (int i = 0; i < V; i++) probs[i] = (float)p[V - 1 - i]; // reversed order: sorting matters
    qs_prob_index pi[V];
    assert_int_equal(qs_sample_topp(probs, V, 0.7f, pi, 0.0f), V - 1);      // most likely
    assert_int_equal(qs_sample_topp(probs, V, 0.7f, pi, 0.9999f), V - 2);   // second
    assert_int_equal(qs_sample_mult(probs, V, 0.0f), 0);
    assert_int_equal(qs_sample_mult(probs, V, 0.9999f), V - 1);
}

static void test_banned(void **st) {
    (void)st;
    enum { V = 8, N = 50000 };
    float lg[V] = {0.0f, 1.0f, 4.0f, 0.5f, 3.9f, -1.0f, 0.2f, 0.3f};
    const int ban[2] = {2, 4};
    qs_sampler s;
    // greedy: the best unbanned token
    assert_int_equal(qs_sampler_init(&s, V, 0.0f, 0.9f, 1), QS_OK);
    assert_int_equal(qs_sampler_ban(&s, ban, 2), QS_OK);
    float y[V];
    memcpy(y, lg, sizeof y);
    assert_int_equal(qs_sampler_sample(&s, y), 1);
    qs_sampler_free(&s);
    // sampling, with and without top-p: never a banned id
    const float tps[2] = {0.9f, 1.0f};
    for (int k = 0; k < 2; k++) {
        double freq[V];
        assert_int_equal(qs_sampler_init(&s, V, 1.5f, tps[k], 3), QS_OK);
        assert_int_equal(qs_sampler_ban(&s, ban, 2), QS_OK);
        draw(&s, lg, V, N, freq);
        assert_true(freq[2] == 0.0 && freq[4] == 0.0);
        assert_true(freq[1] > 0.0);
        qs_sampler_free(&s);
    }
    // errors: out-of-range id, banning everything
    assert_int_equal(qs_sampler_init(&s, V, 1.0f, 0.9f, 3), QS_OK);
    const int bad = V;
    assert_int_equal(qs_sampler_ban(&s, &bad, 1), QS_ERR_ARG);
    assert_non_null(strstr(qstar_last_error(), "8"));
    const int all[V] = {0, 1, 2, 3, 4, 5, 6, 7};
    assert_int_equal(qs_sampler_ban(&s, all, V), QS_ERR_ARG);
    assert_int_equal(qs_sampler_ban(&s, all, V - 1), QS_OK);
    memcpy(y, lg, sizeof y);
    assert_int_equal(qs_sampler_sample(&s, y), 7); // the only one left
    qs_sampler_free(&s);
    // bad settings
    assert_int_equal(qs_sampler_init(&s, V, -1.0f, 0.9f, 3), QS_ERR_ARG);
    assert_int_equal(qs_sampler_init(&s, V, NAN, 0.9f, 3), QS_ERR_ARG);
    assert_int_equal(qs_sampler_init(&s, 0, 1.0f, 0.9f, 3), QS_ERR_ARG);
}

static void test_sampler_deterministic(void **st) {
    (void)st;
    enum { V = 16, N = 200 };
    float lg[V];
    for (int i = 0; i < V; i++) lg[i] = (float)((i * 7) % 5) * 0.3f;
    int a[N], b[N], c[N];
    int *outs[3] = {a, b, c};
    const uint64_t seeds[3] = {5, 5, 6};
    for (int r = 0; r < 3; r++) {
        qs_sampler s;
        assert_int_equal(qs_sampler_init(&s, V, 1.0f, 0.9f, seeds[r]), QS_OK);
        for (int k = 0; k < N; k++) {
            float y[V];
            memcpy(y, lg, sizeof y);
            outs[r][k] = qs_sampler_sample(&s, y);
        }
        qs_sampler_free(&s);
    }
    assert_memory_equal(a, b, sizeof a);
    assert_memory_not_equal(a, c, sizeof a);
}

static void test_tiny_temperature(void **st) {
    (void)st;
    // logits / 1e-30 overflow to +inf: still the argmax, no NaN
    float lg[4] = {1.0f, 3.0f, 2.0f, -5.0f};
    qs_sampler s;
    assert_int_equal(qs_sampler_init(&s, 4, 1e-30f, 0.9f, 1), QS_OK);
    for (int k = 0; k < 20; k++) {
        float y[4];
        memcpy(y, lg, sizeof y);
        assert_int_equal(qs_sampler_sample(&s, y), 1);
    }
    qs_sampler_free(&s);
}

// ---------------------------------------------------------------------------
// Generation on a random tiny model (no tokenizer)

static void tiny_model(qs_model *m) {
    qs_config c = {.arch = QS_ARCH_LLAMA, .dim = 16, .hidden_dim = 24, .n_layers = 2, .n_heads = 4,
                   .n_kv_heads = 2, .head_dim = 4, .vocab_size = 13, .max_seq_len = 40,
                   .rope_theta = 10000.0f, .norm_eps = 1e-5f, .tied_embeddings = 0, .qkv_bias = 0,
                   .bos_id = 1, .eos_id = 2};
    assert_int_equal(qs_model_create(m, &c, 0), QS_OK);
    qs_model_init_random(m, 99);
    // bigger weights so that the logits are far from uniform
    for (size_t k = 0; k < m->layout.numel; k++) m->params[k] *= 20.0f;
}

typedef struct {
    int tok[256];
    int n;
    int stop_after; // stop when n reaches this (0 = never)
} collect;

static int collect_cb(void *ud, int token, const char *piece) {
    collect *c = ud;
    assert_null(piece); // no tokenizer
    c->tok[c->n++] = token;
    return c->stop_after && c->n >= c->stop_after;
}

static void test_generate_deterministic(void **st) {
    (void)st;
    qs_model m;
    tiny_model(&m);
    const int prompt[3] = {1, 5, 7};
    const int ban_bos = 1;
    qs_gen_opts o = qs_gen_opts_default();
    o.steps = 30;
    o.temperature = 1.0f;
    o.top_p = 0.95f;
    o.seed = 1234;
    o.banned = &ban_bos; // never stop on BOS: run all steps
    o.n_banned = 1;
    collect a = {.n = 0}, b = {.n = 0}, c = {.n = 0};
    qs_gen_stats sa, sb;
    assert_int_equal(qs_generate(&m, NULL, prompt, 3, &o, collect_cb, &a, &sa), QS_OK);
    assert_int_equal(qs_generate(&m, NULL, prompt, 3, &o, collect_cb, &b, &sb), QS_OK);
    o.seed = 4321;
    assert_int_equal(qs_generate(&m, NULL, prompt, 3, &o, collect_cb, &c, NULL), QS_OK);
    // run.c: positions 0..steps-1 each emit the next token; the first two are the prompt
    assert_int_equal(a.n, 30);
    assert_int_equal(sa.n_positions, 30);
    assert_int_equal(sa.n_generated, 28);
    assert_int_equal(sa.stopped, 0);
    assert_int_equal(a.tok[0], 5);
    assert_int_equal(a.tok[1], 7);
    assert_int_equal(b.n, 30);
    assert_memory_equal(a.tok, b.tok, sizeof(int) * 30);
    assert_memory_not_equal(a.tok, c.tok, sizeof(int) * 30);
    for (int k = 0; k < a.n; k++) assert_true(a.tok[k] != 1 && a.tok[k] >= 0 && a.tok[k] < 13);
    // steps beyond max_seq_len (and 0) mean max_seq_len
    o.steps = 0;
    collect d = {.n = 0};
    assert_int_equal(qs_generate(&m, NULL, prompt, 3, &o, collect_cb, &d, &sa), QS_OK);
    assert_int_equal(sa.n_positions, 40);
    // the callback can stop early
    collect e = {.n = 0, .stop_after = 4};
    assert_int_equal(qs_generate(&m, NULL, prompt, 3, &o, collect_cb, &e, &sa), QS_OK);
    assert_int_equal(e.n, 4);
    assert_int_equal(sa.stopped, 2);
    // bad prompts
    const int bad[2] = {1, 13};
    assert_int_equal(qs_generate(&m, NULL, bad, 2, &o, collect_cb, &e, NULL), QS_ERR_ARG);
    assert_int_equal(qs_generate(&m, NULL, prompt, 0, &o, collect_cb, &e, NULL), QS_ERR_ARG);
    qs_model_free(&m);
}

// Greedy generation with the KV cache equals the argmax of the full batched
// forward over the sequence so far, at every step; and it stops at BOS.
static void test_generate_greedy_matches_forward(void **st) {
    (void)st;
    qs_model m;
    tiny_model(&m);
    const int V = m.cfg.vocab_size;
    const int prompt[2] = {1, 4};
    qs_gen_opts o = qs_gen_opts_default();
    o.steps = 25;
    o.temperature = 0.0f;
    o.stop_token = 99; // no stop token: compare every step
    collect a = {.n = 0};
    qs_gen_stats s;
    assert_int_equal(qs_generate(&m, NULL, prompt, 2, &o, collect_cb, &a, &s), QS_OK);
    assert_int_equal(a.n, 25);
    int seq[64] = {1, 4};
    int n = 2;
    for (int k = 1; k < a.n; k++) seq[n++] = a.tok[k];
    // seq = BOS, prompt[1], generated...; check each generated token
    int first_bos = -1;
    for (int t = 2; t < n; t++) {
        qs_workspace *ws;
        assert_int_equal(qs_workspace_create_ex(&ws, &m.cfg, 1, t, 1, 0), QS_OK);
        float *lg = malloc((size_t)t * V * sizeof *lg);
        float loss;
        assert_int_equal(qs_lm_step(&m, ws, seq, NULL, 1, t, &loss, lg, NULL, 1.0f, NULL), QS_OK);
        int want = qs_sample_argmax(lg + (size_t)(t - 1) * V, V);
        if (want != seq[t]) fail_msg("step %d: generated %d, batched forward argmax %d", t, seq[t], want);
        if (first_bos < 0 && seq[t] == 1) first_bos = t;
        free(lg);
        qs_workspace_free(ws);
    }
    // with the default stop token (BOS) generation ends right before the first BOS
    o.stop_token = -1;
    collect b = {.n = 0};
    assert_int_equal(qs_generate(&m, NULL, prompt, 2, &o, collect_cb, &b, &s), QS_OK);
    if (first_bos >= 0) {
        assert_int_equal(s.stopped, 1);
        assert_int_equal(b.n, first_bos - 1);
        assert_memory_equal(b.tok, a.tok, sizeof(int) * (size_t)b.n);
    } else {
        assert_int_equal(b.n, a.n);
    }
    qs_model_free(&m);
}

// A prompt longer than `steps` is just forced until the steps run out.
static void test_generate_long_prompt(void **st) {
    (void)st;
    qs_model m;
    tiny_model(&m);
    int prompt[12];
    for (int k = 0; k < 12; k++) prompt[k] = k == 0 ? 1 : 2 + k % 11;
    qs_gen_opts o = qs_gen_opts_default();
    o.steps = 6;
    o.temperature = 0.0f;
    collect a = {.n = 0};
    qs_gen_stats s;
    assert_int_equal(qs_generate(&m, NULL, prompt, 12, &o, collect_cb, &a, &s), QS_OK);
    assert_int_equal(a.n, 6);
    assert_int_equal(s.n_generated, 0);
    assert_memory_equal(a.tok, prompt + 1, sizeof(int) * 6);
    qs_model_free(&m);
}

// The one thought sampler: banned ids never come out (also the largest logit),
// greedy is the argmax of the rest, and over many coins the frequencies follow
// softmax(z / tau) of the allowed ids (computed here independently in double).
static void test_thought_sampler(void **state) {
    (void)state;
    enum { V = 5 };
    const float z0[V] = {1.0f, 3.0f, 0.5f, 2.0f, -1.0f};
    const int banned[1] = {1};
    float z[V];
    memcpy(z, z0, sizeof z);
    assert_int_equal(qs_sample_thought(z, V, banned, 1, 1.0f, 1, 0.5f), 3); // greedy, 1 banned
    const float tau = 2.0f;
    double p[V], s = 0;
    for (int v = 0; v < V; v++) s += p[v] = v == 1 ? 0.0 : exp((z0[v] - 2.0) / tau);
    int count[V] = {0};
    const int N = 20000;
    for (int k = 0; k < N; k++) {
        memcpy(z, z0, sizeof z);
        count[qs_sample_thought(z, V, banned, 1, tau, 0, ((float)k + 0.5f) / (float)N)]++;
    }
    assert_int_equal(count[1], 0);
    for (int v = 0; v < V; v++) assert_true(fabs(count[v] / (double)N - p[v] / s) < 1e-3);
}

// A vocabulary of several scan blocks plus a tail (the sampler skips whole blocks by
// their sums): frequencies over a grid of coins follow softmax(z / tau) within 1e-3
// and every id is reachable; a banned id 0 never comes out, not even for coin 0;
// greedy returns the first of two equal maxima.
static void test_thought_sampler_large(void **state) {
    (void)state;
    enum { V = 1000, N = 200000 };
    static float z0[V], z[V];
    static double p[V];
    for (int v = 0; v < V; v++) z0[v] = (float)(((v * 37) % 101) - 50) / 25.0f;
    const int banned[1] = {0};
    const float tau = 1.5f;
    double mx = -INFINITY, s = 0;
    for (int v = 1; v < V; v++) mx = fmax(mx, z0[v]);
    for (int v = 0; v < V; v++) s += p[v] = v == 0 ? 0.0 : exp((z0[v] - mx) / tau);
    static int count[V];
    for (int k = 0; k < N; k++) {
        memcpy(z, z0, sizeof z);
        count[qs_sample_thought(z, V, banned, 1, tau, 0, ((float)k + 0.5f) / (float)N)]++;
    }
    assert_int_equal(count[0], 0);
    for (int v = 1; v < V; v++) assert_true(count[v] > 0);
    double worst = 0;
    for (int v = 0; v < V; v++) worst = fmax(worst, fabs(count[v] / (double)N - p[v] / s));
    assert_true(worst < 1e-3);
    memcpy(z, z0, sizeof z);
    assert_int_not_equal(qs_sample_thought(z, V, banned, 1, tau, 0, 0.0f), 0);
    memcpy(z, z0, sizeof z);
    assert_true(qs_sample_thought(z, V, banned, 1, tau, 0, 0.99999994f) < V);
    memcpy(z, z0, sizeof z);
    z[700] = z[900] = 10.0f;
    assert_int_equal(qs_sample_thought(z, V, banned, 1, tau, 1, 0.5f), 700);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_argmax),
        cmocka_unit_test(test_thought_sampler),
        cmocka_unit_test(test_thought_sampler_large),
        cmocka_unit_test(test_temperature_frequencies),
        cmocka_unit_test(test_top_p),
        cmocka_unit_test(test_banned),
        cmocka_unit_test(test_sampler_deterministic),
        cmocka_unit_test(test_tiny_temperature),
        cmocka_unit_test(test_generate_deterministic),
        cmocka_unit_test(test_generate_greedy_matches_forward),
        cmocka_unit_test(test_generate_long_prompt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

// test_plan.c: the memory plan (train/plan.c).
// - The step's and the workspace's terms are the bytes their create functions
//   really allocate (counting mode vs qs_qstar_bytes / qs_workspace_bytes),
//   for several shapes, thought settings and activation budgets.
// - A real Quiet-STaR step (and its eval step, gradients, optimizer moments)
//   of a random mid-sized model raises the peak RSS by the plan's total
//   (without the runtime term) within 15%.
// - The fit check names the largest term and its flags, and passes when it fits.
#include "testutil.h"
#include "model/workspace.h"
#include "quietstar/qstar.h"
#include "train/adamw.h"
#include "train/plan.h"

static qs_config shape(int H, int F, int L, int nh, int nkv, int V) {
    qs_config c;
    qs_config_default_260k(&c);
    c.dim = H, c.hidden_dim = F, c.n_layers = L, c.n_heads = nh, c.n_kv_heads = nkv, c.head_dim = H / nh;
    c.vocab_size = V, c.max_seq_len = 512;
    return c;
}

static void test_counts_equal_allocation(void **state) {
    (void)state;
    const qs_config cs[] = {shape(64, 172, 5, 8, 4, 512), shape(96, 256, 3, 6, 6, 1000)};
    const double budgets[] = {-1, 0, 0.3};
    for (size_t ci = 0; ci < 2; ci++)
        for (size_t bi = 0; bi < 3; bi++) {
            qs_model m;
            assert_int_equal(qs_model_create(&m, &cs[ci], 1), QS_OK);
            qs_qstar_opts o;
            qs_qstar_opts_default(&o);
            o.n_ahead = 6 + (int)ci, o.n_talk = 3, o.n_passes = 2, o.act_budget_mb = budgets[bi];
            qs_qstar_plan p;
            assert_int_equal(qs_qstar_plan_bytes(&m.cfg, &o, 3, 40, &p), QS_OK);
            qs_qstar *q;
            assert_int_equal(qs_qstar_create(&q, &m, &o, 3, 40), QS_OK);
            assert_int_equal(p.total, qs_qstar_bytes(q));
            assert_int_equal(p.layers_kept, qs_qstar_layers_kept(q));
            assert_int_equal(p.total, p.kv_cache + p.layer_inputs + p.stored_acts + p.scratch + p.logits + p.step + p.grads);
            if (bi == 1) assert_int_equal(p.layers_kept, 0);
            if (bi == 0) assert_int_equal(p.layers_kept, cs[ci].n_layers);
            qs_qstar_free(q);
            // plain LM workspaces, training and inference
            for (int training = 0; training < 2; training++) {
                qs_ws_plan w;
                assert_int_equal(qs_workspace_plan(&m.cfg, 3, 40, 1, training, training ? QS_STORE_ACTS_DEFAULT : 0, &w),
                                 QS_OK);
                qs_workspace *ws;
                if (training) assert_int_equal(qs_workspace_create(&ws, &m.cfg, 3, 40, 1), QS_OK);
                else assert_int_equal(qs_workspace_create_ex(&ws, &m.cfg, 3, 40, 1, 0), QS_OK);
                assert_int_equal(w.total, qs_workspace_bytes(ws));
                qs_workspace_free(ws);
            }
            qs_model_free(&m);
        }
}

static double peak_rss_bytes(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    double kb = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kb = strtod(line + 6, NULL);
    fclose(f);
    return kb * 1024;
}

static void test_peak_rss(void **state) {
    (void)state;
    if (peak_rss_bytes() < 0) { fprintf(stderr, "[  SKIP    ] no /proc/self/status\n"); return; }
#if defined(__SANITIZE_ADDRESS__)
    fprintf(stderr, "[  SKIP    ] peak RSS under AddressSanitizer is not the program's\n");
    return;
#endif
    const qs_config c = shape(192, 512, 4, 6, 6, 2048);
    const int B = 2, T = 96;
    qs_qstar_opts o;
    qs_qstar_opts_default(&o);
    o.n_ahead = 8, o.n_talk = 4, o.n_passes = 2, o.policy_beta = 1;
    const double before = peak_rss_bytes();
    qs_model m;
    assert_int_equal(qs_model_create(&m, &c, 1), QS_OK);
    qs_model_init_random(&m, 7);
    qs_plan_spec s = {.cfg = &c, .numel = m.layout.numel, .quietstar = 1, .qs = &o, .batch = B, .seq_len = T,
                      .grad_accum = 1, .act_budget_mb = -1, .precision = QS_PREC_FP32, .ranks = 1};
    qs_plan p;
    assert_int_equal(qs_train_plan(&s, &p), QS_OK);
    // what the trainer holds in this configuration: weights, gradients, moments, both steps
    float *g = calloc(m.layout.numel, sizeof(float));
    qs_adamw opt;
    assert_int_equal(qs_adamw_create(&opt, m.layout.numel), QS_OK);
    qs_qstar *q, *qe;
    qs_qstar_opts eo = o;
    eo.n_passes = 1, eo.n_talk = 1, eo.forward_only = 1; // as the trainer
    assert_int_equal(qs_qstar_create(&q, &m, &o, B, T), QS_OK);
    assert_int_equal(qs_qstar_create(&qe, &m, &eo, B, T), QS_OK);
    int *tok = malloc(sizeof(int) * B * T);
    for (int i = 0; i < B * T; i++) tok[i] = (i * 37 + 11) % c.vocab_size;
    qs_rng rng;
    qs_rng_seed(&rng, 3);
    qs_qstar_out out;
    assert_int_equal(qs_qstar_step(q, &m, tok, NULL, NULL, &rng, g, 1.0f, &out), QS_OK);
    assert_int_equal(qs_qstar_step(qe, &m, tok, NULL, NULL, &rng, NULL, 1.0f, &out), QS_OK);
    for (size_t i = 0; i < m.layout.numel; i++) opt.m[i] = opt.v[i] = g[i]; // the moments are touched by a step
    const double grew = peak_rss_bytes() - before;
    size_t runtime = 0;
    for (int i = 0; i < p.n; i++)
        if (!strncmp(p.term[i].name, "runtime", 7)) runtime = p.term[i].bytes;
    const double planned = (double)(p.total - runtime);
    char buf[4096];
    qs_plan_format(&p, buf, sizeof buf);
    fprintf(stderr, "%s  measured peak RSS growth %.1f MB vs planned %.1f MB (ratio %.3f)\n", buf, grew / 1e6,
            planned / 1e6, grew / planned);
    assert_true(fabs(grew / planned - 1) <= 0.15);
    assert_true(p.flops > 0);
    qs_qstar_free(q), qs_qstar_free(qe), qs_adamw_free(&opt), free(g), free(tok);
    qs_model_free(&m);
}

static void test_check(void **state) {
    (void)state;
    const qs_config c = shape(64, 172, 2, 8, 8, 512);
    qs_qstar_opts o;
    qs_qstar_opts_default(&o);
    qs_plan_spec s = {.cfg = &c, .numel = 100000, .quietstar = 1, .qs = &o, .batch = 8, .seq_len = 256,
                      .grad_accum = 2, .act_budget_mb = -1, .precision = QS_PREC_BF16, .ranks = 1};
    qs_plan p;
    assert_int_equal(qs_train_plan(&s, &p), QS_OK);
    assert_int_equal(qs_plan_check(&p, 0), QS_OK);             // unknown: no check
    assert_int_equal(qs_plan_check(&p, p.total), QS_OK);       // exactly fits
    assert_int_equal(qs_plan_check(&p, p.total / 2), QS_ERR_NOMEM);
    const char *msg = qstar_last_error();
    fprintf(stderr, "%s\n", msg);
    const int big = qs_plan_largest(&p);
    assert_true(big >= 0);
    char want[256];
    snprintf(want, sizeof want, "the largest term is %s", p.term[big].name);
    assert_non_null(strstr(msg, want));
    assert_non_null(strstr(msg, "--batch"));
    // zero shards the moments; grad_accum adds a level
    qs_plan p2;
    s.ranks = 4, s.zero = 1;
    assert_int_equal(qs_train_plan(&s, &p2), QS_OK);
    assert_true(p2.total < p.total);
    // bad shapes are refused with a message
    s.batch = 0;
    assert_int_equal(qs_train_plan(&s, &p2), QS_ERR_ARG);
}

// A forward-only step (held-out evaluation) allocates far less and computes
// the same losses bit for bit; it refuses to compute gradients.
static void test_forward_only(void **state) {
    (void)state;
    const qs_config c = shape(96, 256, 3, 6, 6, 1000);
    qs_model m;
    assert_int_equal(qs_model_create(&m, &c, 1), QS_OK);
    qs_model_init_random(&m, 11);
    qs_qstar_opts o;
    qs_qstar_opts_default(&o);
    o.n_ahead = 6, o.n_talk = 1, o.n_passes = 1;
    enum { B = 2, T = 24 };
    int tok[B * T];
    for (int i = 0; i < B * T; i++) tok[i] = (i * 29 + 3) % c.vocab_size;
    qs_qstar *full, *fwd;
    assert_int_equal(qs_qstar_create(&full, &m, &o, B, T), QS_OK);
    o.forward_only = 1;
    assert_int_equal(qs_qstar_create(&fwd, &m, &o, B, T), QS_OK);
    qs_qstar_plan p;
    assert_int_equal(qs_qstar_plan_bytes(&c, &o, B, T, &p), QS_OK);
    assert_int_equal(p.total, qs_qstar_bytes(fwd));
    assert_true(qs_qstar_bytes(fwd) * 2 < qs_qstar_bytes(full));
    qs_rng r1, r2;
    qs_rng_seed(&r1, 5), qs_rng_seed(&r2, 5);
    qs_qstar_out a, b;
    assert_int_equal(qs_qstar_step(full, &m, tok, NULL, NULL, &r1, NULL, 1.0f, &a), QS_OK);
    assert_int_equal(qs_qstar_step(fwd, &m, tok, NULL, NULL, &r2, NULL, 1.0f, &b), QS_OK);
    assert_memory_equal(&a.loss, &b.loss, sizeof a.loss);
    assert_memory_equal(a.nll_base, b.nll_base, (size_t)B * T * sizeof(float));
    assert_memory_equal(a.nll_talk, b.nll_talk, (size_t)B * T * sizeof(float));
    float *g = calloc(m.layout.numel, sizeof(float));
    assert_int_equal(qs_qstar_step(fwd, &m, tok, NULL, NULL, &r2, g, 1.0f, &b), QS_ERR_ARG);
    free(g);
    qs_qstar_free(full), qs_qstar_free(fwd);
    qs_model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_equal_allocation),
        cmocka_unit_test(test_peak_rss),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_forward_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

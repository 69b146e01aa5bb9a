// test_api_infer.c: the inference half of the public API (include/qstar.h)
// on stories260K: qstar_eval_nll against an independent computation (the
// documents tokenized one by one with qstar_tokenize, packed and cut into
// windows here, each window's NLL from the model's forward on that window
// alone), its per-token file and progress calls; qstar_generate_ex's stats
// (no_stop runs every position; one callback per position); think-when
// parsing; the zero-shot task count/check; settings and output checks that
// need no model; errors for thinking on a plain model.
#include "qstar.h"
#include "testutil.h"
#include "io/model_io.h"
#include "model/transformer.h"

#include <cJSON.h>
#include <unistd.h>

static qstar_model *load_260k(void) {
    char bin[4096], tok[4096];
    if (!tu_data_path("stories260K/stories260K.bin", bin, sizeof bin) ||
        !tu_data_path("stories260K/tok512.bin", tok, sizeof tok))
        return NULL;
    qstar_model_params mp = qstar_model_params_default();
    mp.tokenizer_path = tok;
    qstar_model *m = NULL;
    assert_int_equal(qstar_model_load(bin, &mp, &m), QS_OK);
    return m;
}

static const char *DOCS[] = {
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the sun.",
    "Tom had a red ball. He liked to play with it every day in the park with his friends.",
    "The cat sat on the mat. It was a big, fluffy cat that liked to sleep all day long.",
    "One day, a boy found a shiny stone. He showed it to his mom and she smiled at him.",
};
enum { NDOC = 4, T = 24 };

static void write_docs(const char *path) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int d = 0; d < NDOC; d++) fprintf(f, "%s\n\n", DOCS[d]);
    fclose(f);
}

typedef struct {
    int calls, first_zero;
    size_t last_done, last_total;
    long last_tokens;
} prog;

static int on_progress(void *u, const qstar_eval_progress *p) {
    prog *g = u;
    if (g->calls++ == 0) g->first_zero = p->windows_done == 0 && p->n_docs == NDOC && !p->prepared;
    g->last_done = p->windows_done, g->last_total = p->windows_total, g->last_tokens = p->n_tokens;
    return 0;
}

// The reference: documents tokenized one by one (BOS first), packed, cut into
// windows of T; each window scored on its own by the model's forward.
static double reference_nll(qstar_model *m, long *count) {
    int stream[4096], n = 0;
    for (int d = 0; d < NDOC; d++) {
        int k = 0;
        assert_int_equal(qstar_tokenize(m, DOCS[d], 1, stream + n, 4096 - n, &k), QS_OK);
        n += k;
    }
    char bin[4096];
    tu_data_path("stories260K/stories260K.bin", bin, sizeof bin);
    qs_model mm;
    assert_int_equal(qs_model_load(&mm, bin, NULL), QS_OK);
    double total = 0;
    *count = 0;
    for (int w = 0; w * T < n; w++) {
        const int len = n - w * T < T ? n - w * T : T;
        qs_workspace *ws;
        assert_int_equal(qs_workspace_create(&ws, &mm.cfg, 1, len, 1), QS_OK);
        double s = 0;
        long c = 0;
        assert_int_equal(qs_lm_nll(&mm, ws, stream + w * T, NULL, 1, len, &s, &c), QS_OK);
        assert_int_equal(c, len - 1);
        total += s, *count += c;
        qs_workspace_free(ws);
    }
    qs_model_free(&mm);
    return total / *count;
}

static void test_eval_nll(void **state) {
    (void)state;
    qstar_model *m = load_260k();
    if (!m) { skip(); return; }
    char data[] = "/tmp/qs_api_infer_XXXXXX", toks[4200];
    int fd = mkstemp(data);
    assert_true(fd >= 0);
    close(fd);
    write_docs(data);
    snprintf(toks, sizeof toks, "%s.tokens.jsonl", data);
    prog g = {0};
    qstar_eval_params p = qstar_eval_params_default();
    p.data_path = data, p.seq_len = T, p.batch = 3, p.tokens_path = toks, p.progress = on_progress, p.progress_user = &g;
    qstar_eval_result r;
    assert_int_equal(qstar_eval_nll(m, &p, &r), QS_OK);
    long ref_n;
    const double ref = reference_nll(m, &ref_n);
    assert_int_equal(r.n_tokens, ref_n);
    assert_true(fabs(r.nll_base - ref) < 1e-5);
    assert_false(r.think);
    assert_true(isnan(r.nll_think));
    assert_int_equal(r.seq_len, T);
    assert_true(r.hard10_base >= r.hard20_base && r.hard20_base >= r.nll_base);
    // progress: a first call before any window, the last one at the end
    assert_true(g.first_zero && g.calls >= 2);
    assert_true(g.last_done == g.last_total && g.last_tokens == r.n_tokens);
    // the per-token file: one line per scored token, their mean the result
    FILE *f = fopen(toks, "r");
    assert_non_null(f);
    char line[8192];
    long lines = 0;
    double sum = 0;
    while (fgets(line, sizeof line, f)) {
        cJSON *o = cJSON_Parse(line);
        assert_non_null(o);
        sum += cJSON_GetObjectItem(o, "nll_base")->valuedouble;
        assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "nll_think")));
        assert_true(cJSON_GetObjectItem(o, "entropy")->valuedouble > 0);
        lines++;
        cJSON_Delete(o);
    }
    fclose(f);
    assert_int_equal(lines, r.n_tokens);
    assert_true(fabs(sum / lines - r.nll_base) < 1e-5);
    // the batch size changes nothing; a limit scores the first tokens only
    p.batch = 1, p.tokens_path = NULL, p.progress = NULL;
    qstar_eval_result r1;
    assert_int_equal(qstar_eval_nll(m, &p, &r1), QS_OK);
    assert_true(fabs(r1.nll_base - r.nll_base) < 1e-6 && r1.n_tokens == r.n_tokens);
    p.limit_tokens = 30;
    assert_int_equal(qstar_eval_nll(m, &p, &r1), QS_OK);
    assert_int_equal(r1.n_tokens, (T - 1) + (30 - T - 1));
    // bf16 products: close to fp32, not identical
    p.limit_tokens = 0, p.precision = QSTAR_BF16;
    assert_int_equal(qstar_eval_nll(m, &p, &r1), QS_OK);
    assert_true(fabs(r1.nll_base - r.nll_base) < 0.05);
    // thoughts on a plain model are an error naming Quiet-STaR
    p.precision = QSTAR_FP32, p.think = 1;
    assert_int_equal(qstar_eval_nll(m, &p, &r1), QS_ERR_ARG);
    assert_non_null(strstr(qstar_last_error(), "Quiet-STaR"));
    p.think = -1, p.random_thoughts = 1;
    assert_int_equal(qstar_eval_nll(m, &p, &r1), QS_ERR_ARG);
    p.random_thoughts = 0, p.seq_len = 100000;
    assert_int_equal(qstar_eval_nll(m, &p, &r1), QS_ERR_ARG);
    assert_non_null(strstr(qstar_last_error(), "max_seq_len"));
    unlink(toks);
    unlink(data);
    qstar_model_free(m);
}

static int count_cb(void *user, const qstar_token *t) {
    int *n = user;
    (*n)++;
    assert_true(t->prev >= 0);
    return 0;
}

static void test_generate_stats(void **state) {
    (void)state;
    qstar_model *m = load_260k();
    if (!m) { skip(); return; }
    qstar_gen_params gp = qstar_gen_params_default();
    gp.temperature = 0, gp.max_tokens = 200, gp.no_stop = 1;
    qstar_gen_stats st;
    int calls = 0;
    assert_int_equal(qstar_generate_ex(m, "Once upon a time", &gp, count_cb, &calls, &st), QS_OK);
    assert_int_equal(st.n_positions, 200); // BOS never sampled: every position runs
    assert_int_equal(calls, st.n_positions); // each position hands over the token after it
    assert_int_equal(st.n_thoughts, 0);
    assert_int_equal(st.think, 0);
    assert_true(st.n_generated > 150 && st.tok_per_s > 0 && st.seconds > 0);
    // greedy text is the same with and without stats, and in bf16 it still runs
    gp.no_stop = 0, gp.max_tokens = 40;
    assert_int_equal(qstar_generate_ex(m, "Once upon a time", &gp, NULL, NULL, &st), QS_OK);
    assert_true(st.n_positions <= 40);
    gp.precision = QSTAR_BF16;
    assert_int_equal(qstar_generate_ex(m, "Once upon a time", &gp, NULL, NULL, &st), QS_OK);
    // thought settings on a plain model
    gp.precision = QSTAR_FP32, gp.random_thoughts = 1;
    assert_int_equal(qstar_generate_ex(m, "x", &gp, NULL, NULL, &st), QS_ERR_ARG);
    assert_non_null(strstr(qstar_last_error(), "Quiet-STaR"));
    // viz needs a Quiet-STaR checkpoint
    qstar_viz_params vp = qstar_viz_params_default();
    assert_int_equal(qstar_viz_write(m, "Once upon a time there was a cat.", &vp, "/tmp/qs_api_infer_viz.html", NULL),
                     QS_ERR_ARG);
    assert_non_null(strstr(qstar_last_error(), "Quiet-STaR"));
    assert_int_equal(access("/tmp/qs_api_infer_viz.html", F_OK), -1);
    qstar_model_free(m);
}

static void test_no_model(void **state) {
    (void)state;
    float x = 0;
    assert_int_equal(qstar_think_when_parse("always", &x), QS_OK);
    assert_true(isinf(x) && x < 0);
    assert_int_equal(qstar_think_when_parse("entropy>2.5", &x), QS_OK);
    assert_true(x == 2.5f);
    assert_int_equal(qstar_think_when_parse("entropy>-1", &x), QS_OK);
    assert_true(x == -1.0f);
    const char *bad[] = {"entropy>", "entropy>x", "entropy<2", "entropy>2x", "sometimes", "", "entropy>nan"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) assert_int_equal(qstar_think_when_parse(bad[k], &x), QS_ERR_ARG);
    // task files: examples are the non-blank lines, at most limit
    char data[] = "/tmp/qs_api_infer_task_XXXXXX";
    int fd = mkstemp(data);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("{\"question\": \"a\", \"answer\": \"#### 1\"}\n\n  \n{\"question\": \"b\", \"answer\": \"#### 2\"}\n"
          "{\"question\": \"c\", \"answer\": \"#### 3\"}", f);
    fclose(f);
    qstar_task_params tp = qstar_task_params_default();
    tp.data_path = data;
    long n = -1;
    assert_int_equal(qstar_task_count(&tp, &n), QS_OK);
    assert_int_equal(n, 3);
    tp.limit = 2;
    assert_int_equal(qstar_task_count(&tp, &n), QS_OK);
    assert_int_equal(n, 2);
    assert_int_equal(qstar_task_check(&tp), QS_OK);
    tp.task = "mmlu";
    assert_int_equal(qstar_task_check(&tp), QS_ERR_ARG);
    tp.task = "csqa", tp.out_path = "/nonexistent-dir/r.json";
    assert_int_equal(qstar_task_check(&tp), QS_ERR_IO);
    assert_non_null(strstr(qstar_last_error(), "/nonexistent-dir/r.json"));
    unlink(data);
    // eval and viz outputs are checked without a model
    qstar_eval_params ep = qstar_eval_params_default();
    assert_int_equal(qstar_eval_check(&ep), QS_ERR_ARG); // no data
    ep.data_path = "x.txt", ep.tokens_path = "/nonexistent-dir/t.jsonl";
    assert_int_equal(qstar_eval_check(&ep), QS_ERR_IO);
    ep.tokens_path = NULL, ep.seq_len = -1;
    assert_int_equal(qstar_eval_check(&ep), QS_ERR_ARG);
    qstar_viz_params vp = qstar_viz_params_default();
    assert_int_equal(qstar_viz_check("/tmp", &vp), QS_ERR_IO); // a directory, never replaced
    assert_int_equal(qstar_viz_check(NULL, &vp), QS_ERR_ARG);
    assert_int_equal(qstar_eval_nll(NULL, &ep, NULL), QS_ERR_ARG);
    assert_int_equal(qstar_generate_ex(NULL, "x", NULL, NULL, NULL, NULL), QS_ERR_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_model),
        cmocka_unit_test(test_eval_nll),
        cmocka_unit_test(test_generate_stats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

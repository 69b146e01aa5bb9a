// test_api.c: the public API (include/qstar.h): argument and file errors
// (never a crash, always a message), and on stories260K: tokenize/detokenize
// round trip, qstar_score against an independent path (transformer.c's
// qs_lm_nll / qs_lm_token_nll, per token), greedy generation against the internal loop, and
// qstar_trainer_resume: 2 steps + save + a new trainer resumed + 2 steps ==
// 4 steps, bit for bit.
#include "qstar.h"
#include "testutil.h"
#include "io/model_io.h"
#include "model/generate.h"
#include "model/transformer.h"

#include <unistd.h>

static void test_errors(void **state) {
    (void)state;
    qstar_model *m = (qstar_model *)1;
    assert_int_equal(qstar_model_load("/nonexistent/model.bin", NULL, &m), QS_ERR_IO);
    assert_null(m);
    assert_non_null(strstr(qstar_last_error(), "/nonexistent/model.bin"));
    assert_int_equal(qstar_model_load(NULL, NULL, &m), QS_ERR_ARG);
    assert_int_equal(qstar_model_load("x", NULL, NULL), QS_ERR_ARG);
    assert_int_equal(qstar_generate(NULL, "x", NULL, NULL, NULL), QS_ERR_ARG);
    assert_int_equal(qstar_score(NULL, NULL, 0, NULL, NULL), QS_ERR_ARG);
    qstar_trainer *t = (qstar_trainer *)1;
    assert_int_equal(qstar_trainer_create(NULL, &t), QS_ERR_ARG);
    assert_null(t);
    qstar_train_params p = qstar_train_params_default();
    assert_int_equal(qstar_trainer_create(&p, &t), QS_ERR_ARG); // no model
    assert_non_null(strstr(qstar_last_error(), "model_path"));
    p.model_path = "/nonexistent.bin", p.data_path = "/nonexistent.txt";
    assert_int_equal(qstar_trainer_create(&p, &t), QS_ERR_IO);
    qstar_model_free(NULL);
    qstar_trainer_free(NULL);
    assert_string_equal(qstar_version(), QSTAR_VERSION);
}

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

static int collect(void *user, const qstar_token *t) {
    char *s = user;
    strncat(s, t->text, 4000 - strlen(s));
    return 0;
}

static void collect_piece(void *ud, int token, const char *piece) { (void)token, strncat(ud, piece, 4000 - strlen(ud)); }
static int collect_cb(void *ud, int token, const char *piece) { collect_piece(ud, token, piece); return 0; }

static void test_model(void **state) {
    (void)state;
    qstar_model *m = load_260k();
    if (!m) { skip(); return; }
    qstar_config c;
    assert_int_equal(qstar_model_config(m, &c), QS_OK);
    assert_int_equal(c.vocab_size, 512);
    assert_int_equal(c.has_quietstar, 0);
    const char *text = "Once upon a time, there was a little cat. The cat liked to play.";
    int ids[128], n = 0;
    assert_int_equal(qstar_tokenize(m, text, 1, ids, 3, &n), QS_ERR_ARG); // too small: count reported
    assert_true(n > 3);
    assert_int_equal(qstar_tokenize(m, text, 1, ids, 128, &n), QS_OK);
    assert_int_equal(ids[0], 1);
    char back[512];
    size_t len = 0;
    assert_int_equal(qstar_detokenize(m, ids, n, back, sizeof back, &len), QS_OK);
    assert_string_equal(back, text);
    // score vs transformer.c's qs_lm_nll on the same tokens (a separate forward + loss)
    float nll[128];
    qstar_score_out o = {.nll_base = nll};
    assert_int_equal(qstar_score(m, ids, n, NULL, &o), QS_OK);
    assert_int_equal(o.n_scored, n - 1);
    assert_true(isnan(nll[0]));
    qs_model mm;
    char bin[4096];
    tu_data_path("stories260K/stories260K.bin", bin, sizeof bin);
    assert_int_equal(qs_model_load(&mm, bin, NULL), QS_OK);
    qs_workspace *ws;
    assert_int_equal(qs_workspace_create(&ws, &mm.cfg, 1, n, 1), QS_OK);
    double sum = 0;
    long cnt = 0;
    assert_int_equal(qs_lm_nll(&mm, ws, ids, NULL, 1, n, &sum, &cnt), QS_OK);
    assert_int_equal(cnt, n - 1);
    assert_true(fabs(sum / cnt - o.mean_base) < 1e-5);
    float per[128];
    assert_int_equal(qs_lm_token_nll(&mm, ws, ids, NULL, 1, n, per, NULL, NULL), QS_OK);
    for (int i = 1; i < n; i++) assert_true(fabs(per[i - 1] - nll[i]) < 1e-5); // token i is predicted at i-1
    assert_true(isnan(per[n - 1]));
    qs_workspace_free(ws);
    // greedy generation: the API's text == the internal loop's pieces
    char a[4096] = "", b[4096] = "";
    qstar_gen_params gp = qstar_gen_params_default();
    gp.temperature = 0, gp.max_tokens = 48;
    assert_int_equal(qstar_generate(m, "Once upon a time", &gp, collect, a), QS_OK);
    qs_gen_opts go = qs_gen_opts_default();
    go.temperature = 0, go.steps = 48;
    assert_int_equal(qstar_tokenize(m, "Once upon a time", 1, ids, 128, &n), QS_OK);
    qs_tokenizer *tok;
    char tp[4096];
    tu_data_path("stories260K/tok512.bin", tp, sizeof tp);
    assert_int_equal(qs_tokenizer_load(&tok, tp, 512), QS_OK);
    assert_int_equal(qs_generate(&mm, tok, ids, n, &go, collect_cb, b, NULL), QS_OK);
    assert_string_equal(a, b);
    assert_true(strlen(a) > 60);
    // errors on a loaded model
    int bad[2] = {1, 9999};
    assert_int_equal(qstar_score(m, bad, 2, NULL, &o), QS_ERR_ARG);
    gp.think = 1;
    assert_int_equal(qstar_generate(m, "x", &gp, NULL, NULL), QS_ERR_ARG);
    qs_tokenizer_free(tok);
    qs_model_free(&mm);
    qstar_model_free(m);
}

static qstar_trainer *tiny_trainer(const char *data, const char *resume) {
    char bin[4096], tok[4096];
    tu_data_path("stories260K/stories260K.bin", bin, sizeof bin);
    tu_data_path("stories260K/tok512.bin", tok, sizeof tok);
    qstar_train_params p = qstar_train_params_default();
    p.quietstar = 1;
    p.model_path = bin, p.tokenizer_path = tok, p.data_path = data;
    p.steps = 4, p.batch = 1, p.seq_len = 24, p.n_ahead = 4, p.n_talk = 1, p.eval_batches = 1, p.seed = 3;
    qstar_trainer *t = NULL;
    assert_int_equal(qstar_trainer_create(&p, &t), QS_OK);
    if (resume) assert_int_equal(qstar_trainer_resume(t, resume), QS_OK);
    return t;
}

static void test_trainer_resume(void **state) {
    (void)state;
    char valid[4096], data[] = "/tmp/qs_test_api_XXXXXX";
    if (!tu_data_path("stories260K/stories260K.bin", valid, sizeof valid) ||
        !tu_data_path("tinystories/valid.txt", valid, sizeof valid)) { skip(); return; }
    int fd = mkstemp(data);
    assert_true(fd >= 0);
    FILE *in = fopen(valid, "r"), *out = fdopen(fd, "w");
    char line[8192];
    for (int k = 0; k < 100 && fgets(line, sizeof line, in); k++) fputs(line, out);
    fclose(in), fclose(out);
    char dir[] = "/tmp/qs_test_api_run_XXXXXX";
    assert_non_null(mkdtemp(dir));
    qstar_trainer *a = tiny_trainer(data, NULL);
    for (int k = 0; k < 4; k++) assert_int_equal(qstar_trainer_step(a, NULL), QS_OK);
    qstar_trainer *b = tiny_trainer(data, NULL);
    for (int k = 0; k < 2; k++) assert_int_equal(qstar_trainer_step(b, NULL), QS_OK);
    char ck[4096];
    assert_int_equal(qstar_trainer_save(b, dir, ck, sizeof ck), QS_OK);
    qstar_trainer_free(b);
    qstar_trainer *c = tiny_trainer(data, dir);
    assert_int_equal(qstar_trainer_steps_done(c), 2);
    for (int k = 0; k < 2; k++) assert_int_equal(qstar_trainer_step(c, NULL), QS_OK);
    double n1, t1, n2, t2;
    assert_int_equal(qstar_trainer_eval(a, &n1, &t1), QS_OK);
    assert_int_equal(qstar_trainer_eval(c, &n2, &t2), QS_OK);
    assert_true(isfinite(n1) && isfinite(t1));
    assert_true(n1 == n2 && t1 == t2); // the same weights give the same numbers, bit for bit
    assert_int_equal(qstar_trainer_resume(c, "/nonexistent-run"), QS_ERR_IO);
    qstar_trainer_free(a);
    qstar_trainer_free(c);
    unlink(data);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_model),
        cmocka_unit_test(test_trainer_resume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

// test_train_options.c: the training options table (src/api/options.c) behind
// qstar_train_params_set, train_args.json and the mode defaults: values,
// ranges and messages, unknown names, Quiet-STaR names outside train, a
// train_args.json round trip and its refusals, the defaults of each mode
// (written out here from `qstar finetune --help` / `qstar train --help`), and
// a struct field out of range caught by the same table.
#include "qstar.h"
#include "testutil.h"
#include "api/options.h"

static void expect_arg_error(qs_status st, const char *needle) {
    assert_int_equal(st, QS_ERR_ARG);
    if (!strstr(qstar_last_error(), needle)) fail_msg("message '%s' lacks '%s'", qstar_last_error(), needle);
}

static void test_set_and_get(void **state) {
    (void)state;
    for (int k = 0; k < QO_COUNT; k++) { // every setting has a name (found again) and a help entry
        assert_non_null(qo_table[k].name);
        assert_non_null(qo_table[k].help);
        assert_int_equal(qo_find(qo_table[k].name), k);
        assert_true(qstar_train_option_kind(qo_table[k].name) >= 0);
    }
    qstar_train_params p = qstar_train_params_default();
    char buf[64];
    assert_int_equal(qstar_train_params_set(&p, "lr", "0.003"), QS_OK);
    assert_int_equal(qstar_train_params_get(&p, "lr", buf, sizeof buf), QS_OK);
    assert_true(strtod(buf, NULL) == 0.003);
    assert_int_equal(qstar_train_params_set(&p, "seq-len", "64"), QS_OK);
    assert_int_equal(qstar_train_params_get(&p, "seq-len", buf, sizeof buf), QS_OK);
    assert_string_equal(buf, "64");
    assert_int_equal(qstar_train_params_set(&p, "precision", "bf16"), QS_OK);
    assert_int_equal(qstar_train_params_get(&p, "precision", buf, sizeof buf), QS_OK);
    assert_string_equal(buf, "bf16");
    assert_int_equal(qstar_train_params_set(&p, "force", NULL), QS_OK);
    assert_int_equal(qstar_train_params_get(&p, "force", buf, sizeof buf), QS_OK);
    assert_string_equal(buf, "1");
    assert_int_equal(qstar_train_params_get(&p, "steps", buf, sizeof buf), QS_OK); // not given
    assert_string_equal(buf, "");
    // bad values: the flag and its allowed range in the message
    expect_arg_error(qstar_train_params_set(&p, "lr", "-1"), "--lr expects a number in [0, 100], got '-1'");
    expect_arg_error(qstar_train_params_set(&p, "steps", "0"), "--steps expects an integer in [1, ");
    expect_arg_error(qstar_train_params_set(&p, "batch", "4x"), "--batch expects an integer");
    expect_arg_error(qstar_train_params_set(&p, "batch", NULL), "--batch needs a value");
    expect_arg_error(qstar_train_params_set(&p, "precision", "fp16"), "--precision expects fp32 or bf16, got 'fp16'");
    expect_arg_error(qstar_train_params_set(&p, "force", "maybe"), "--force is a switch");
    expect_arg_error(qstar_train_params_set(&p, "bogus", "1"), "unknown option '--bogus'");
    // Quiet-STaR names need quietstar = 1
    expect_arg_error(qstar_train_params_set(&p, "n-ahead", "6"), "unknown option '--n-ahead'");
    p.quietstar = 1;
    assert_int_equal(qstar_train_params_set(&p, "n-ahead", "6"), QS_OK);
    expect_arg_error(qstar_train_params_set(&p, "n-ahead", "2"), "--n-ahead expects an integer in [3, 256]");
    expect_arg_error(qstar_train_params_set(&p, "reward-baseline", "max"), "--reward-baseline expects mean or ema");
    assert_int_equal(qstar_train_params_set(&p, "mixing", "sigmoid"), QS_OK);
    assert_int_equal(qstar_train_option_kind("no-clamp"), 0);
    assert_int_equal(qstar_train_option_kind("lr"), 1);
    assert_int_equal(qstar_train_option_kind("nope"), -1);
    qstar_train_params_free(&p);
    assert_null(p.options);
    qstar_train_params_free(&p); // twice is fine
}

static void test_thought_options(void **state) {
    (void)state;
    qstar_train_options *o = NULL;
    assert_int_equal(qstar_thought_option_set(&o, "n-talk", "2"), QS_OK);
    expect_arg_error(qstar_thought_option_set(&o, "lr", "1e-3"), "not a thought setting");
    expect_arg_error(qstar_thought_option_set(&o, "thought-init", "0123456789012345678901234567890123456789"
                                                                  "012345678901234567890123456789"), "too long");
    qs_qstar_opts qo;
    qs_qstar_opts_default(&qo);
    assert_int_equal(qo_apply_thought(o->v, &qo), 0);
    assert_int_equal(qo.n_talk, 2);
    assert_int_equal(qo.n_ahead, 12); // untouched
    qstar_train_options_free(o);
    assert_non_null(strstr(qstar_thought_options_help(), "--reward-baseline"));
    assert_non_null(strstr(qstar_train_options_help(1), "--n-ahead"));
    assert_null(strstr(qstar_train_options_help(0), "--n-ahead"));
}

static void test_args_json_round_trip(void **state) {
    (void)state;
    qo_val v[QO_COUNT], w[QO_COUNT];
    memset(v, 0, sizeof v);
    memset(w, 0, sizeof w);
    assert_int_equal(qo_parse(&v[QO_DATA], QO_DATA, "/d/x.txt"), QS_OK);
    assert_int_equal(qo_parse(&v[QO_LR], QO_LR, "0.00012345678901234"), QS_OK);
    assert_int_equal(qo_parse(&v[QO_SEED], QO_SEED, "9007199254740991"), QS_OK);
    assert_int_equal(qo_parse(&v[QO_PRECISION], QO_PRECISION, "bf16"), QS_OK);
    assert_int_equal(qo_parse(&v[QO_OUT], QO_OUT, "/runs/a"), QS_OK);    // not stored
    assert_int_equal(qo_parse(&v[QO_STOP_AFTER], QO_STOP_AFTER, "3"), QS_OK); // not stored
    char *json = qo_args_json(v);
    assert_non_null(json);
    assert_int_equal(qo_load_args(w, json, strlen(json), "t.json"), QS_OK);
    free(json);
    assert_string_equal(w[QO_DATA].s, "/d/x.txt");
    assert_true(w[QO_LR].f == v[QO_LR].f);
    assert_true(w[QO_SEED].i == 9007199254740991L);
    assert_int_equal(w[QO_PRECISION].i, 1);
    assert_false(w[QO_OUT].set);
    assert_false(w[QO_STOP_AFTER].set);
    // given settings win over the file's
    qo_val g[QO_COUNT];
    memset(g, 0, sizeof g);
    assert_int_equal(qo_parse(&g[QO_LR], QO_LR, "0.5"), QS_OK);
    const char *file = "{\"lr\": 0.25, \"steps\": 7}";
    assert_int_equal(qo_load_args(g, file, strlen(file), "t.json"), QS_OK);
    assert_true(g[QO_LR].f == 0.5 && g[QO_STEPS].i == 7);
    // refused: out of range, wrong type, not an object
    const char *bad[] = {"{\"steps\": 0}", "{\"steps\": 1.5}", "{\"lr\": \"x\"}", "{\"precision\": \"fp64\"}", "[1]", "{"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        qo_val b[QO_COUNT];
        memset(b, 0, sizeof b);
        assert_int_equal(qo_load_args(b, bad[k], strlen(bad[k]), "bad.json"), QS_ERR_FORMAT);
        assert_non_null(strstr(qstar_last_error(), "bad.json"));
        qo_clear(b);
    }
    qo_clear(v);
    qo_clear(w);
    qo_clear(g);
}

// The defaults of each mode, as the --help texts state them.
static void test_mode_defaults(void **state) {
    (void)state;
    struct { int quietstar, config; long batch; double lr; int seq_set; long seq, eval_batches, eval_every; } want[] = {
        {0, 0, 32, 5e-4, 0, 0, 0, 0}, {0, 1, 16, 5e-3, 0, 0, 0, 0}, {1, 0, 4, 1e-4, 1, 128, 8, 50}};
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        qo_val v[QO_COUNT];
        memset(v, 0, sizeof v);
        if (want[k].config) assert_int_equal(qo_parse(&v[QO_CONFIG], QO_CONFIG, "c.json"), QS_OK);
        if (want[k].quietstar) qo_qstar_defaults(v);
        qo_fallback_defaults(v);
        assert_int_equal(v[QO_BATCH].i, want[k].batch);
        assert_true(fabs(v[QO_LR].f - want[k].lr) < 1e-12);
        assert_int_equal(v[QO_SEQ].set, want[k].seq_set);
        if (want[k].seq_set) {
            assert_int_equal(v[QO_SEQ].i, want[k].seq);
            assert_int_equal(v[QO_EVAL_BATCHES].i, want[k].eval_batches);
            assert_int_equal(v[QO_EVAL_EVERY].i, want[k].eval_every);
            assert_true(fabs(v[QO_WD].f - 0.001) < 1e-12);
        }
        assert_true(v[QO_VAL_FRAC].f == 0.05 && v[QO_SEED].i == 1337);
        qo_clear(v);
    }
    // the paper preset fills what is not given
    qo_val v[QO_COUNT];
    memset(v, 0, sizeof v);
    assert_int_equal(qo_parse(&v[QO_BATCH], QO_BATCH, "2"), QS_OK);
    qo_paper_preset(v);
    assert_int_equal(v[QO_BATCH].i, 2);
    assert_int_equal(v[QO_SEQ].i, 256);
    assert_true(v[QO_LR].f == 1e-6 && v[QO_BETA2].f == 0.999);
    qo_clear(v);
}

// A struct field out of range is refused by the same table, before anything is loaded.
static void test_fields_through_table(void **state) {
    (void)state;
    qstar_train_params p = qstar_train_params_default();
    p.model_path = "/nonexistent.bin";
    p.data_path = "/nonexistent.txt";
    p.steps = 0;
    qstar_trainer *t = NULL;
    expect_arg_error(qstar_trainer_create(&p, &t), "--steps expects an integer in [1, ");
    assert_null(t);
    p.steps = 5;
    assert_int_equal(qstar_train_params_set(&p, "steps", "0.5"), QS_ERR_ARG);
    assert_int_equal(qstar_train_params_set(&p, "beta1", "1"), QS_OK); // in range for the table ...
    expect_arg_error(qstar_trainer_create(&p, &t), "--beta1 and --beta2 must be below 1"); // ... not for AdamW
    qstar_train_params_free(&p);
    qstar_curriculum_stage st[4];
    int n = 0;
    assert_int_equal(qstar_curriculum_parse("6:4:1e-4:10, 8:2:5e-5:20", st, 4, &n), QS_OK);
    assert_int_equal(n, 2);
    assert_int_equal(st[1].n_ahead, 8);
    assert_int_equal(st[1].steps, 20);
    assert_int_equal(qstar_curriculum_parse("6:4:1e-4:10,8:2:5e-5:20", st, 1, &n), QS_ERR_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_and_get),
        cmocka_unit_test(test_thought_options),
        cmocka_unit_test(test_args_json_round_trip),
        cmocka_unit_test(test_mode_defaults),
        cmocka_unit_test(test_fields_through_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

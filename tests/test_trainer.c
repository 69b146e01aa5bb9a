// test_trainer.c: training-state files (round trip, refusal of a state that
// belongs to another model), the atomic checkpoint swap and its recovery,
// the trainer's use of the lr schedule, skipping of non-finite updates,
// and exact resume (N steps == k steps + save + load + N-k steps).
#include "testutil.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/qs.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "io/model_io.h"
#include "io/safetensors.h"
#include "train/checkpoint.h"
#include "io/outpath.h"
#include "train/trainer.h"

static void tiny_config(qs_config *c, int hidden_dim) {
    *c = (qs_config){.arch = QS_ARCH_LLAMA, .dim = 16, .hidden_dim = hidden_dim, .n_layers = 2,
                     .n_heads = 4, .n_kv_heads = 2, .head_dim = 4, .vocab_size = 40,
                     .max_seq_len = 64, .rope_theta = 10000.0f, .norm_eps = 1e-5f,
                     .tied_embeddings = 1, .qkv_bias = 0, .bos_id = 1, .eos_id = 2};
}

static void make_model(qs_model *m, int hidden_dim, uint64_t seed) {
    qs_config c;
    tiny_config(&c, hidden_dim);
    assert_int_equal(qs_model_create(m, &c, 0), QS_OK);
    qs_model_init_random(m, seed);
}

static char *make_tmpdir(void) {
    char *d = strdup("/tmp/qstar_test_trainer_XXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

static int file_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

// ---------------------------------------------------------------------------

static void test_state_round_trip(void **state) {
    (void)state;
    qs_model m;
    make_model(&m, 24, 1);
    const size_t n = m.layout.numel;
    qs_adamw a, b;
    assert_int_equal(qs_adamw_create(&a, n), QS_OK);
    assert_int_equal(qs_adamw_create(&b, n), QS_OK);
    qs_rng r;
    qs_rng_seed(&r, 7);
    for (size_t i = 0; i < n; i++) {
        a.m[i] = qs_rng_normal(&r);
        a.v[i] = qs_rng_uniform(&r) * 1e-3f;
    }
    a.step = 41;
    qs_train_state s = {.step = 43, .adam_step = 41, .rng = 0xFEDCBA9876543210ull, .data_pos = 1234567,
                        .data_tokens = 999, .numel = n, .layout_hash = qs_layout_hash(&m.layout)};
    char *dir = make_tmpdir(), path[512];
    snprintf(path, sizeof path, "%s/%s", dir, QS_TRAIN_STATE_FILE);
    assert_int_equal(qs_train_state_save(path, &s, &a), QS_OK);
    qs_train_state t;
    assert_int_equal(qs_train_state_load(path, &m, &t, &b), QS_OK);
    assert_memory_equal(a.m, b.m, n * sizeof(float));
    assert_memory_equal(a.v, b.v, n * sizeof(float));
    assert_int_equal(b.step, 41);
    assert_int_equal(t.step, 43);
    assert_int_equal(t.adam_step, 41);
    assert_true(t.rng == 0xFEDCBA9876543210ull); // all 64 bits survive
    assert_true(t.data_pos == 1234567);
    assert_true(t.data_tokens == 999);
    assert_int_equal(t.numel, n);
    assert_true(t.layout_hash == s.layout_hash);
    qs_remove_tree(dir);
    free(dir);
    qs_adamw_free(&a);
    qs_adamw_free(&b);
    qs_model_free(&m);
}

static void test_state_refuses_other_model(void **state) {
    (void)state;
    qs_model m, other;
    make_model(&m, 24, 1);
    make_model(&other, 32, 1); // different MLP width: different numel
    assert_true(other.layout.numel != m.layout.numel);
    qs_adamw a, b;
    assert_int_equal(qs_adamw_create(&a, m.layout.numel), QS_OK);
    assert_int_equal(qs_adamw_create(&b, other.layout.numel), QS_OK);
    qs_train_state s = {.step = 1, .adam_step = 1, .numel = m.layout.numel, .layout_hash = qs_layout_hash(&m.layout)};
    char *dir = make_tmpdir(), path[512];
    snprintf(path, sizeof path, "%s/%s", dir, QS_TRAIN_STATE_FILE);
    assert_int_equal(qs_train_state_save(path, &s, &a), QS_OK);
    b.m[0] = 5.0f;
    qs_train_state t;
    assert_int_equal(qs_train_state_load(path, &other, &t, &b), QS_ERR_FORMAT);
    const char *msg = qstar_last_error();
    assert_non_null(strstr(msg, path));        // names the file
    assert_non_null(strstr(msg, "parameters")); // says what is wrong
    assert_true(b.m[0] == 5.0f);                // optimizer left untouched
    // same numel, different tensor names: refused by the layout hash
    snprintf(m.layout.t[1].name, QS_NAME_MAX, "model.layers.0.renamed.weight");
    assert_int_equal(qs_train_state_load(path, &m, &t, &a), QS_ERR_FORMAT);
    assert_non_null(strstr(qstar_last_error(), "layout"));
    // not a state file at all
    char cfg[512];
    snprintf(cfg, sizeof cfg, "%s/x.safetensors", dir);
    qs_st_writer w = {0};
    int64_t shp[1] = {4};
    float x[4] = {0};
    assert_int_equal(qs_st_writer_add(&w, "x", QS_DT_F32, 1, shp, x), QS_OK);
    assert_int_equal(qs_st_writer_write(&w, cfg), QS_OK);
    qs_st_writer_free(&w);
    assert_int_equal(qs_train_state_load(cfg, &other, &t, &b), QS_ERR_FORMAT);
    assert_non_null(strstr(qstar_last_error(), "missing tensor"));
    qs_remove_tree(dir);
    free(dir);
    qs_adamw_free(&a);
    qs_adamw_free(&b);
    qs_model_free(&m);
    qs_model_free(&other);
}

static void test_checkpoint_swap_and_recovery(void **state) {
    (void)state;
    qs_model m;
    make_model(&m, 24, 3);
    qs_adamw a;
    assert_int_equal(qs_adamw_create(&a, m.layout.numel), QS_OK);
    qs_train_state s = {.step = 5, .adam_step = 5, .numel = m.layout.numel, .layout_hash = qs_layout_hash(&m.layout)};
    char *run = make_tmpdir(), ck[4096], rd[4096], p[4200], p2[4200];
    // no checkpoint yet: a clear error naming the directory
    assert_int_equal(qs_checkpoint_locate(run, ck, sizeof ck, rd, sizeof rd), QS_ERR_IO);
    assert_non_null(strstr(qstar_last_error(), run));
    assert_int_equal(qs_checkpoint_save(run, &m, NULL, NULL, &s, &a, "{\"x\":1}", ck, sizeof ck), QS_OK);
    snprintf(p, sizeof p, "%s/ckpt", run);
    assert_string_equal(ck, p);
    s.step = 9;
    assert_int_equal(qs_checkpoint_save(run, &m, NULL, NULL, &s, &a, NULL, NULL, 0), QS_OK);
    snprintf(p, sizeof p, "%s/ckpt.old", run);
    assert_false(file_exists(p));
    snprintf(p, sizeof p, "%s/ckpt.tmp", run);
    assert_false(file_exists(p));
    snprintf(p, sizeof p, "%s/ckpt/%s", run, QS_TRAIN_ARGS_FILE);
    assert_false(file_exists(p)); // the second save had no args
    // locate from the run directory and from the checkpoint directory
    assert_int_equal(qs_checkpoint_locate(run, ck, sizeof ck, rd, sizeof rd), QS_OK);
    snprintf(p, sizeof p, "%s/ckpt", run);
    assert_string_equal(ck, p);
    assert_string_equal(rd, run);
    assert_int_equal(qs_checkpoint_locate(p, ck, sizeof ck, rd, sizeof rd), QS_OK);
    assert_string_equal(ck, p);
    assert_string_equal(rd, run);
    // a crash between the two renames leaves only ckpt.old (+ a stale ckpt.tmp)
    snprintf(p2, sizeof p2, "%s/ckpt.old", run);
    assert_int_equal(rename(p, p2), 0);
    snprintf(p, sizeof p, "%s/ckpt.tmp", run);
    assert_int_equal(mkdir(p, 0755), 0);
    assert_int_equal(qs_checkpoint_locate(run, ck, sizeof ck, rd, sizeof rd), QS_OK);
    snprintf(p, sizeof p, "%s/ckpt", run);
    assert_string_equal(ck, p); // moved back into place
    assert_false(file_exists(p2));
    qs_train_state t;
    snprintf(p, sizeof p, "%s/ckpt/%s", run, QS_TRAIN_STATE_FILE);
    assert_int_equal(qs_train_state_load(p, &m, &t, &a), QS_OK);
    assert_int_equal(t.step, 9);
    // the next save replaces the stale ckpt.tmp
    assert_int_equal(qs_checkpoint_save(run, &m, NULL, NULL, &s, &a, NULL, NULL, 0), QS_OK);
    snprintf(p, sizeof p, "%s/ckpt.tmp", run);
    assert_false(file_exists(p));
    assert_int_equal(qs_remove_tree(run), QS_OK);
    assert_false(file_exists(run));
    free(run);
    qs_adamw_free(&a);
    qs_model_free(&m);
}

// A checkpoint's train_state records the bytes of the weights and settings beside
// it: a replaced model.safetensors, an edited config.json or train_args.json, or
// a state without a fingerprint is refused; the untouched checkpoint passes.
static void test_checkpoint_fingerprint(void **state) {
    (void)state;
    qs_model m;
    make_model(&m, 24, 3);
    qs_adamw a;
    assert_int_equal(qs_adamw_create(&a, m.layout.numel), QS_OK);
    qs_train_state s = {.step = 5, .adam_step = 5, .numel = m.layout.numel, .layout_hash = qs_layout_hash(&m.layout)};
    char *run = make_tmpdir(), ck[4096], p[4200];
    assert_int_equal(qs_checkpoint_save(run, &m, NULL, NULL, &s, &a, "{\"x\":1}", ck, sizeof ck), QS_OK);
    assert_int_equal(qs_checkpoint_check(ck), QS_OK);
    qs_train_state t;
    snprintf(p, sizeof p, "%s/%s", ck, QS_TRAIN_STATE_FILE);
    assert_int_equal(qs_train_state_load(p, &m, &t, &a), QS_OK);
    assert_true(t.fingerprint != 0);
    uint64_t h;
    assert_int_equal(qs_model_dir_fingerprint(ck, &h), QS_OK);
    assert_true(h == t.fingerprint);
    assert_int_equal(qs_checkpoint_verify(ck, &t), QS_OK);
    static const char *const files[3] = {"model.safetensors", "config.json", QS_TRAIN_ARGS_FILE};
    for (int k = 0; k < 3; k++) {
        // flip the last byte of one file: refused, naming the checkpoint; flipped back: accepted
        snprintf(p, sizeof p, "%s/%s", ck, files[k]);
        FILE *f = fopen(p, "r+b");
        assert_non_null(f);
        assert_int_equal(fseek(f, -1, SEEK_END), 0);
        int c = fgetc(f);
        assert_int_equal(fseek(f, -1, SEEK_END), 0);
        fputc(c ^ 1, f);
        fclose(f);
        assert_int_equal(qs_checkpoint_check(ck), QS_ERR_FORMAT);
        assert_non_null(strstr(qstar_last_error(), "mixed-up"));
        assert_non_null(strstr(qstar_last_error(), ck));
        f = fopen(p, "r+b");
        assert_int_equal(fseek(f, -1, SEEK_END), 0);
        fputc(c, f);
        fclose(f);
        assert_int_equal(qs_checkpoint_check(ck), QS_OK);
    }
    // a state saved on its own (no fingerprint) cannot vouch for the directory
    s.fingerprint = 0;
    snprintf(p, sizeof p, "%s/%s", ck, QS_TRAIN_STATE_FILE);
    assert_int_equal(qs_train_state_save(p, &s, &a), QS_OK);
    assert_int_equal(qs_checkpoint_check(ck), QS_ERR_FORMAT);
    assert_non_null(strstr(qstar_last_error(), "no fingerprint"));
    assert_int_equal(qs_remove_tree(run), QS_OK);
    free(run);
    qs_adamw_free(&a);
    qs_model_free(&m);
}

// ---------------------------------------------------------------------------
// A small synthetic corpus, encoded one byte per token.

static qs_status byte_enc(void *ctx, const char *text, int *out, int cap, int *n_out) {
    (void)ctx;
    int n = 0;
    out[n++] = 1;
    for (const char *s = text; *s && n < cap; s++) out[n++] = 3 + (unsigned char)*s % 37;
    *n_out = n;
    return QS_OK;
}

static void make_data(qs_dataset *ds) {
    static const char *docs[] = {
        "the cat sat on the mat and the dog sat on the log",
        "a cat and a dog met on the road and sat down together",
        "the sun was warm and the cat slept on the mat all day",
        "the dog ran to the park and the cat sat on the wall",
        "one day the cat saw a bird and the bird flew away",
        "the mat was red and the log was brown and the road was long",
        "the bird sat on the log and the dog sat on the mat",
        "at night the cat and the dog slept by the warm fire",
    };
    qs_dataset_opts o = qs_dataset_opts_default();
    o.val_frac = 0.25;
    o.seed = 99;
    o.n_threads = 1;
    assert_int_equal(qs_dataset_from_docs(ds, docs, sizeof docs / sizeof docs[0], byte_enc, NULL, &o), QS_OK);
    assert_true(ds->val.n_tokens > 0);
}

static qs_train_opts small_opts(long steps) {
    qs_train_opts o = qs_train_opts_default();
    o.steps = steps;
    o.batch = 4;
    o.seq_len = 16;
    o.grad_accum = 2;
    o.lr = 1e-2f;
    o.min_lr = 1e-3f;
    o.warmup = 3;
    o.eval_every = 0;
    o.eval_batches = 0;
    o.save_every = 0;
    return o;
}

static void test_lr_schedule_and_learning(void **state) {
    (void)state;
    qs_model m;
    make_model(&m, 24, 5);
    qs_dataset ds;
    make_data(&ds);
    qs_train_opts o = small_opts(30);
    qs_trainer t;
    assert_int_equal(qs_trainer_init(&t, &m, &ds, &o), QS_OK);
    double nll0, nll1;
    long nt0, nt1;
    assert_int_equal(qs_trainer_eval(&t, &nll0, NULL, &nt0), QS_OK);
    assert_true(nt0 > 0);
    assert_true(fabs(nll0 - log(40.0)) < 0.3); // random init: about ln(V)
    float *before = malloc(m.layout.numel * sizeof(float));
    memcpy(before, m.params, m.layout.numel * sizeof(float));
    for (long s = 0; s < o.steps; s++) {
        qs_train_event ev;
        assert_int_equal(qs_trainer_step(&t, &ev), QS_OK);
        assert_int_equal(ev.step, s + 1);
        assert_false(ev.skipped);
        assert_true(isfinite(ev.loss) && isfinite(ev.grad_norm));
        assert_true(ev.lr == qs_lr_schedule(s, o.lr, o.min_lr, o.warmup, o.steps));
        if (s == 0) { // warmup starts at lr 0: weights unchanged, moments updated
            assert_true(ev.lr == 0.0f);
            assert_memory_equal(before, m.params, m.layout.numel * sizeof(float));
            assert_int_equal(t.opt.step, 1);
        }
        if (s == 3) assert_true(ev.lr == o.lr); // peak right after warmup
    }
    assert_true(qs_lr_schedule(o.steps, o.lr, o.min_lr, o.warmup, o.steps) == o.min_lr);
    assert_int_equal(t.data_pos, (uint64_t)(o.steps * o.batch * o.grad_accum));
    assert_int_equal(qs_trainer_eval(&t, &nll1, NULL, &nt1), QS_OK);
    assert_int_equal(nt1, nt0);
    assert_true(nll1 < nll0 - 0.5); // it learns
    free(before);
    qs_trainer_free(&t);
    qs_dataset_free(&ds);
    qs_model_free(&m);
}

static void test_nonfinite_update_skipped(void **state) {
    (void)state;
    qs_model m;
    make_model(&m, 24, 5);
    qs_dataset ds;
    make_data(&ds);
    qs_train_opts o = small_opts(5);
    o.warmup = 0;
    qs_trainer t;
    assert_int_equal(qs_trainer_init(&t, &m, &ds, &o), QS_OK);
    m.w.final_norm[0] = NAN;
    qs_train_event ev;
    assert_int_equal(qs_trainer_step(&t, &ev), QS_OK);
    assert_true(ev.skipped);
    assert_int_equal(t.step, 1);     // the step counts ...
    assert_int_equal(t.opt.step, 0); // ... but no update was applied
    for (size_t i = 0; i < m.layout.numel; i++) assert_true(t.opt.m[i] == 0.0f);
    // and a run refuses to checkpoint non-finite weights
    char *run = make_tmpdir();
    qs_train_run_opts ro = {.out_dir = run};
    qs_train_summary sum;
    assert_int_equal(qs_trainer_run(&t, &ro, &sum), QS_ERR_NUMERIC);
    char p[4200];
    snprintf(p, sizeof p, "%s/ckpt", run);
    assert_false(file_exists(p));
    qs_remove_tree(run);
    free(run);
    qs_trainer_free(&t);
    qs_dataset_free(&ds);
    qs_model_free(&m);
}

static void test_opts_validation(void **state) {
    (void)state;
    qs_train_opts o = qs_train_opts_default();
    assert_int_equal(qs_train_opts_validate(&o), QS_OK);
    o.steps = 0;
    assert_int_equal(qs_train_opts_validate(&o), QS_ERR_ARG);
    assert_non_null(strstr(qstar_last_error(), "steps"));
    o = qs_train_opts_default();
    o.lr = -1e-3f;
    assert_int_equal(qs_train_opts_validate(&o), QS_ERR_ARG);
    assert_non_null(strstr(qstar_last_error(), "lr"));
    o = qs_train_opts_default();
    o.batch = 0;
    assert_int_equal(qs_train_opts_validate(&o), QS_ERR_ARG);
    // seq_len beyond the model's positions
    qs_model m;
    make_model(&m, 24, 5);
    qs_dataset ds;
    make_data(&ds);
    o = small_opts(5);
    o.seq_len = 65;
    qs_trainer t;
    assert_int_equal(qs_trainer_init(&t, &m, &ds, &o), QS_ERR_ARG);
    assert_non_null(strstr(qstar_last_error(), "max_position_embeddings"));
    qs_dataset_free(&ds);
    qs_model_free(&m);
}

typedef struct {
    int n_step, n_eval, n_save;
    long eval_steps[8];
} counter;

static void count_cb(void *ctx, const qs_train_event *ev) {
    counter *c = ctx;
    if (ev->kind == QS_TEV_STEP) c->n_step++;
    if (ev->kind == QS_TEV_EVAL && c->n_eval < 8) c->eval_steps[c->n_eval++] = ev->step;
    if (ev->kind == QS_TEV_SAVE) c->n_save++;
}

// Runs `steps` steps from seed-fixed init; when split > 0 it stops there,
// checkpoints, reloads everything from the checkpoint and finishes.
static void run_training(long steps, long split, float *out_params, size_t numel, counter *cnt) {
    qs_model m;
    make_model(&m, 24, 11);
    assert_int_equal(m.layout.numel, numel);
    qs_dataset ds;
    make_data(&ds);
    qs_train_opts o = small_opts(steps);
    o.eval_every = 4;
    o.save_every = 4;
    o.stop_after = split;
    qs_trainer t;
    assert_int_equal(qs_trainer_init(&t, &m, &ds, &o), QS_OK);
    char *run = make_tmpdir();
    qs_train_run_opts ro = {.out_dir = run, .cb = count_cb, .cb_ctx = cnt};
    qs_train_summary sum;
    assert_int_equal(qs_trainer_run(&t, &ro, &sum), QS_OK);
    if (split > 0) {
        assert_true(sum.interrupted);
        assert_int_equal(t.step, split);
        qs_trainer_free(&t);
        qs_dataset_free(&ds);
        qs_model_free(&m);
        // a fresh process: model from the checkpoint, data reloaded (sampler reseeded)
        char ck[4096];
        assert_int_equal(qs_checkpoint_locate(run, ck, sizeof ck, NULL, 0), QS_OK);
        assert_int_equal(qs_model_load(&m, ck, NULL), QS_OK);
        make_data(&ds);
        o.stop_after = 0;
        assert_int_equal(qs_trainer_init(&t, &m, &ds, &o), QS_OK);
        assert_int_equal(qs_trainer_restore(&t, ck), QS_OK);
        assert_int_equal(t.step, split);
        assert_int_equal(qs_trainer_run(&t, &ro, &sum), QS_OK);
    }
    assert_false(sum.interrupted);
    assert_int_equal(t.step, steps);
    assert_true(isfinite(sum.nll_last) && sum.nll_last < sum.nll_first);
    memcpy(out_params, m.params, numel * sizeof(float));
    qs_remove_tree(run);
    free(run);
    qs_trainer_free(&t);
    qs_dataset_free(&ds);
    qs_model_free(&m);
}

static void test_exact_resume(void **state) {
    (void)state;
    qs_model m;
    make_model(&m, 24, 11);
    const size_t n = m.layout.numel;
    qs_model_free(&m);
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
    counter ca = {0}, cb = {0};
    run_training(10, 0, a, n, &ca);
    run_training(10, 6, b, n, &cb);
    assert_memory_equal(a, b, n * sizeof(float));
    // straight run: evals at 0, 4, 8, 10; saves at 4, 8, 10
    assert_int_equal(ca.n_step, 10);
    assert_int_equal(ca.n_eval, 4);
    assert_int_equal(ca.eval_steps[0], 0);
    assert_int_equal(ca.eval_steps[1], 4);
    assert_int_equal(ca.eval_steps[2], 8);
    assert_int_equal(ca.eval_steps[3], 10);
    assert_int_equal(ca.n_save, 3);
    assert_int_equal(cb.n_step, 10);
    free(a);
    free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_round_trip),
        cmocka_unit_test(test_state_refuses_other_model),
        cmocka_unit_test(test_checkpoint_swap_and_recovery),
        cmocka_unit_test(test_checkpoint_fingerprint),
        cmocka_unit_test(test_lr_schedule_and_learning),
        cmocka_unit_test(test_nonfinite_update_skipped),
        cmocka_unit_test(test_opts_validation),
        cmocka_unit_test(test_exact_resume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

// test_outpath.c: output checks, directory replacement, run locks and
// fingerprints (src/io/outpath.c), and the bounded-cost checks of the readers
// (config.json out of range, shapes against the config before allocating).
#include "testutil.h"

#pragma GCC diagnostic ignored "-Wformat-truncation" // temp-dir paths are short

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/model_io.h"
#include "io/outpath.h"
#include "io/safetensors.h"

static char *tmpdir(void) {
    char *d = strdup("/tmp/qstar_test_outpath_XXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

static void put(const char *dir, const char *name, const char *text) {
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void expect_err(qs_status st, const char *a, const char *b) {
    assert_int_not_equal(st, QS_OK);
    if (a && !strstr(qstar_last_error(), a)) fail_msg("'%s' lacks '%s'", qstar_last_error(), a);
    if (b && !strstr(qstar_last_error(), b)) fail_msg("'%s' lacks '%s'", qstar_last_error(), b);
}

static void test_out_check(void **state) {
    (void)state;
    char *d = tmpdir(), p[4200], q[4200];
    // a fresh path in an existing directory: fine for every kind
    snprintf(p, sizeof p, "%s/new", d);
    for (int k = QS_OUT_FILE; k <= QS_OUT_DIR; k++) assert_int_equal(qs_out_check(p, (qs_out_kind)k, 0), QS_OK);
    // missing parents: a directory output may create them, a file output needs its directory
    snprintf(p, sizeof p, "%s/a/b/c", d);
    assert_int_equal(qs_out_check(p, QS_OUT_RUN_DIR, 0), QS_OK);
    expect_err(qs_out_check(p, QS_OUT_FILE, 0), p, "does not exist");
    // a model directory: refused without force for every directory kind, its files too
    snprintf(p, sizeof p, "%s/m", d);
    assert_int_equal(mkdir(p, 0755), 0);
    put(p, "config.json", "{}");
    expect_err(qs_out_check(p, QS_OUT_MODEL_DIR, 0), p, "a model directory; pass --force");
    expect_err(qs_out_check(p, QS_OUT_RUN_DIR, 0), p, "--force");
    assert_int_equal(qs_out_check(p, QS_OUT_MODEL_DIR, 1), QS_OK);
    snprintf(q, sizeof q, "%s/config.json", p);
    expect_err(qs_out_check(q, QS_OUT_FILE, 0), q, "part of a model directory");
    assert_int_equal(qs_out_check(q, QS_OUT_FILE, 1), QS_OK);
    snprintf(q, sizeof q, "%s/page.html", p); // a new file inside a model directory is not a replacement
    assert_int_equal(qs_out_check(q, QS_OUT_FILE, 0), QS_OK);
    // files by name: weights, logs; a plain file may be replaced; a directory never is a file
    put(d, "w.safetensors", "x");
    put(d, "log.jsonl", "x");
    put(d, "page.html", "x");
    snprintf(q, sizeof q, "%s/w.safetensors", d);
    expect_err(qs_out_check(q, QS_OUT_FILE, 0), q, "a model, checkpoint or log");
    snprintf(q, sizeof q, "%s/log.jsonl", d);
    expect_err(qs_out_check(q, QS_OUT_FILE, 0), q, NULL);
    snprintf(q, sizeof q, "%s/page.html", d);
    assert_int_equal(qs_out_check(q, QS_OUT_FILE, 0), QS_OK);
    expect_err(qs_out_check(p, QS_OUT_FILE, 1), p, "is a directory");
    // a file where a directory is wanted, and a path through a file
    expect_err(qs_out_check(q, QS_OUT_RUN_DIR, 1), q, "not a directory");
    snprintf(p, sizeof p, "%s/page.html/x", d);
    expect_err(qs_out_check(p, QS_OUT_FILE, 1), p, "cannot write there");
    // a directory holding only a lock file counts as empty
    snprintf(p, sizeof p, "%s/r", d);
    assert_int_equal(mkdir(p, 0755), 0);
    put(p, QS_LOCK_FILE, "999999999\n");
    assert_int_equal(qs_out_check(p, QS_OUT_RUN_DIR, 0), QS_OK);
    assert_int_equal(qs_remove_tree(d), QS_OK);
    free(d);
}

static void test_dir_replace(void **state) {
    (void)state;
    char *d = tmpdir(), a[4200], b[4200], p[4200];
    snprintf(a, sizeof a, "%s/fresh", d);
    snprintf(b, sizeof b, "%s/dst", d);
    assert_int_equal(mkdir(a, 0755), 0);
    put(a, "config.json", "new");
    assert_int_equal(qs_dir_replace(a, b), QS_OK); // dst absent: a rename
    assert_int_equal(mkdir(a, 0755), 0);
    put(a, "model.safetensors", "newer");
    put(b, "train_state.safetensors", "stale");
    assert_int_equal(qs_dir_replace(a, b), QS_OK); // dst present: replaced whole
    snprintf(p, sizeof p, "%s/train_state.safetensors", b);
    assert_int_not_equal(access(p, F_OK), 0); // nothing stale
    snprintf(p, sizeof p, "%s/config.json", b);
    assert_int_not_equal(access(p, F_OK), 0);
    snprintf(p, sizeof p, "%s/model.safetensors", b);
    assert_int_equal(access(p, F_OK), 0);
    assert_int_not_equal(access(a, F_OK), 0); // the old contents are gone
    assert_int_equal(qs_remove_tree(d), QS_OK);
    free(d);
}

static void test_lock(void **state) {
    (void)state;
    char *d = tmpdir(), p[4200];
    snprintf(p, sizeof p, "%s/%s", d, QS_LOCK_FILE);
    qs_out_lock l, l2;
    assert_int_equal(qs_out_lock_acquire(&l, d), QS_OK);
    assert_int_equal(qs_out_lock_owner(d), (long)getpid());
    // a live other process holds it: refused, naming the directory and the pid
    pid_t child = fork();
    if (child == 0) {
        alarm(60); // never outlives a failed test for long
        pause();
        _exit(0);
    }
    qs_out_lock_release(&l);
    assert_int_not_equal(access(p, F_OK), 0);
    char pid[32], line[40];
    snprintf(pid, sizeof pid, "pid %ld", (long)child);
    snprintf(line, sizeof line, "%ld\n", (long)child);
    put(d, QS_LOCK_FILE, line);
    expect_err(qs_out_lock_acquire(&l2, d), d, pid);
    expect_err(qs_out_check(d, QS_OUT_RUN_DIR, 1), "in use by another qstar run", NULL);
    // the process is gone: its lock is stale and taken over
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    assert_int_equal(qs_out_lock_owner(d), 0);
    assert_int_equal(qs_out_lock_acquire(&l2, d), QS_OK);
    assert_int_equal(qs_out_lock_owner(d), (long)getpid());
    qs_out_lock_release(&l2);
    assert_int_not_equal(access(p, F_OK), 0);
    assert_int_equal(qs_remove_tree(d), QS_OK);
    free(d);
}

static void test_fingerprint(void **state) {
    (void)state;
    char *d = tmpdir();
    put(d, "config.json", "{\"a\": 1}");
    put(d, "model.safetensors", "weights");
    uint64_t h1, h2, h3;
    assert_int_equal(qs_model_dir_fingerprint(d, &h1), QS_OK);
    put(d, "train_args.json", "{}");
    assert_int_equal(qs_model_dir_fingerprint(d, &h2), QS_OK);
    assert_true(h1 != h2 && h1 != 0 && h2 != 0);
    put(d, "model.safetensors", "weighty");
    assert_int_equal(qs_model_dir_fingerprint(d, &h3), QS_OK);
    assert_true(h3 != h2);
    put(d, "model.safetensors", "weights");
    assert_int_equal(qs_model_dir_fingerprint(d, &h3), QS_OK);
    assert_true(h3 == h2);
    assert_int_equal(qs_remove_tree(d), QS_OK);
    free(d);
}

// config.json numbers: out of range is said so; a float beyond float range is refused.
static void test_config_ranges(void **state) {
    (void)state;
    static const char *base = "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": %s, \"intermediate_size\": 172,"
                              "\"num_hidden_layers\": 5, \"num_attention_heads\": 8, \"num_key_value_heads\": 4,"
                              "\"vocab_size\": 512, \"max_position_embeddings\": 512, \"rope_theta\": %s}";
    char text[512];
    qs_config c;
    snprintf(text, sizeof text, base, "64", "10000");
    assert_int_equal(qs_hf_config_parse(&c, text, strlen(text), "cfg", NULL), QS_OK);
    snprintf(text, sizeof text, base, "2147483648", "10000");
    expect_err(qs_hf_config_parse(&c, text, strlen(text), "cfg", NULL), "'hidden_size' = 2147483648 is out of range", NULL);
    snprintf(text, sizeof text, base, "64.5", "10000");
    expect_err(qs_hf_config_parse(&c, text, strlen(text), "cfg", NULL), "'hidden_size' must be an integer", NULL);
    snprintf(text, sizeof text, base, "64", "1e55");
    expect_err(qs_hf_config_parse(&c, text, strlen(text), "cfg", NULL), "'rope_theta' = 1e+55 is out of range", NULL);
    // what is accepted round-trips through the writer
    snprintf(text, sizeof text, base, "64", "3.4e38");
    assert_int_equal(qs_hf_config_parse(&c, text, strlen(text), "cfg", NULL), QS_OK);
    char *out = NULL;
    qs_config c2;
    assert_int_equal(qs_hf_config_to_text(&c, NULL, &out), QS_OK);
    assert_int_equal(qs_hf_config_parse(&c2, out, strlen(out), "out", NULL), QS_OK);
    assert_memory_equal(&c, &c2, sizeof c);
    free(out);
}

// Shapes are compared with the config before the model is allocated; the
// byte count of an overflowing shape is never printed wrapped.
static void test_shapes_first(void **state) {
    (void)state;
    qs_config c;
    qs_config_default_260k(&c);
    float w[512 * 64];
    memset(w, 0, sizeof w);
    qs_st_writer wr = {0};
    int64_t shape[2] = {512, 64};
    assert_int_equal(qs_st_writer_add(&wr, "model.embed_tokens.weight", QS_DT_F32, 2, shape, w), QS_OK);
    unsigned char *buf;
    size_t n;
    assert_int_equal(qs_st_writer_to_mem(&wr, &buf, &n), QS_OK);
    qs_st_writer_free(&wr);
    qs_safetensors st;
    assert_int_equal(qs_st_parse(&st, buf, n, "m.safetensors"), QS_OK);
    assert_int_equal(qs_st_check_config(&st, &c, 0), QS_OK);
    c.vocab_size = 1 << 24;
    expect_err(qs_st_check_config(&st, &c, 0), "m.safetensors: tensor 'model.embed_tokens.weight' has shape [512,64]",
               "the config implies [16777216,64]");
    qs_st_close(&st);
    free(buf);
    static const char hdr[] = "{\"w\":{\"dtype\":\"F32\",\"shape\":[4503599627370496,2048],\"data_offsets\":[0,0]}}";
    unsigned char file[8 + sizeof hdr];
    for (int i = 0; i < 8; i++) file[i] = (unsigned char)((sizeof hdr - 1) >> (8 * i));
    memcpy(file + 8, hdr, sizeof hdr - 1);
    expect_err(qs_st_parse(&st, file, 8 + sizeof hdr - 1, "wrap"), "more bytes than the address space", NULL);
    assert_null(strstr(qstar_last_error(), "need 0"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_out_check),     cmocka_unit_test(test_dir_replace),   cmocka_unit_test(test_lock),
        cmocka_unit_test(test_fingerprint),   cmocka_unit_test(test_config_ranges), cmocka_unit_test(test_shapes_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

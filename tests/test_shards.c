// test_shards.c: token directories (src/data/shards.h). A corpus prepared
// with a fake byte encoder and mapped back must equal the same file loaded
// by qs_dataset_load_with (both splits, every id and document start) and
// give the same sampled batches for the same seed, for uint16 and uint32
// files (and draws without data advance the sampler the same); meta.json parsing rejects each kind of bad field; a damaged
// document table is an error naming the file.
#include "testutil.h"

#include <sys/stat.h>
#include <unistd.h>

#include "core/qs.h"
#include "data/shards.h"

// BOS = 1, then byte b -> b + 3 (+ 70000 - 259 when `ctx` is non-NULL: ids beyond uint16).
static qs_status fake_encode(void *ctx, const char *text, int *out, int cap, int *n_out) {
    size_t n = strlen(text);
    if ((size_t)cap < n + 1) return qs_error(QS_ERR_ARG, "fake: cap too small");
    out[0] = 1;
    for (size_t i = 0; i < n; i++) out[i + 1] = (unsigned char)text[i] + 3 + (ctx ? 70000 - 259 : 0);
    *n_out = (int)n + 1;
    return QS_OK;
}

static char g_dir[256];

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void rm_dir(const char *dir) {
    const char *names[] = {"meta.json", "tokens.bin", "docs.idx", "meta.json.tmp"};
    char p[512];
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

static void assert_same_stream(const qs_token_stream *a, const qs_token_stream *b) {
    assert_int_equal(a->n_tokens, b->n_tokens);
    assert_int_equal(a->n_docs, b->n_docs);
    for (size_t i = 0; i < a->n_tokens; i++) assert_int_equal(qs_stream_token(a, i), qs_stream_token(b, i));
    for (size_t d = 0; d < a->n_docs; d++) assert_int_equal(a->doc_start[d], b->doc_start[d]);
}

static void round_trip(int wide) {
    char text[600], out[300];
    snprintf(text, sizeof text, "%s/corpus.txt", g_dir);
    snprintf(out, sizeof out, "%s/tk%d", g_dir, wide);
    write_file(text, "first story\nwith two lines\n\nsecond\n\n\n  third one  \n<|endoftext|>\nfourth\n\nfifth "
                     "document, the longest of them all\n\nsixth\n\nseventh\n\neighth\n\nninth\n\ntenth\n");
    const char *inputs[] = {text};
    qs_prepare_opts po = {.inputs = inputs, .n_inputs = 1, .out_dir = out, .val_frac = 0.25, .n_threads = 2};
    qs_shards_meta m;
    void *ctx = wide ? (void *)1 : NULL;
    assert_int_equal(qs_shards_prepare_with(&po, fake_encode, ctx, wide ? 70000 : 259, &m), QS_OK);
    assert_int_equal(m.width, wide ? 4 : 2);
    assert_int_equal(m.n_docs, 10);
    assert_int_equal(m.train_docs, 10 - qs_dataset_val_count(10, 0.25));
    // a second prepare into the same directory is refused
    assert_int_equal(qs_shards_prepare_with(&po, fake_encode, ctx, wide ? 70000 : 259, NULL), QS_ERR_ARG);
    assert_true(qs_shards_is_dir(out));

    qs_dataset a, b;
    qs_dataset_opts dopt = qs_dataset_opts_default();
    dopt.val_frac = 0.25, dopt.seed = 77;
    assert_int_equal(qs_dataset_load_with(&a, text, fake_encode, ctx, &dopt), QS_OK);
    assert_int_equal(qs_shards_load(&b, out, 77), QS_OK);
    assert_same_stream(&a.train, &b.train);
    assert_same_stream(&a.val, &b.val);
    assert_true(wide ? b.train.tokens16 == NULL : b.train.tokens16 != NULL);
    // the same batches from the same seed: document windows and random windows
    enum { B = 3, T = 8 };
    int ta[B * T], ma[B * T], tb[B * T], mb[B * T];
    for (int rep = 0; rep < 5; rep++) {
        assert_int_equal(qs_stream_sample_docs(&a.train, &a.rng, B, T, ta, ma, NULL), QS_OK);
        assert_int_equal(qs_stream_sample_docs(&b.train, &b.rng, B, T, tb, mb, NULL), QS_OK);
        assert_memory_equal(ta, tb, sizeof ta), assert_memory_equal(ma, mb, sizeof ma);
        assert_int_equal(qs_stream_sample(&a.train, &a.rng, B, T, ta, ma, NULL), QS_OK);
        assert_int_equal(qs_stream_sample(&b.train, &b.rng, B, T, tb, mb, NULL), QS_OK);
        assert_memory_equal(ta, tb, sizeof ta), assert_memory_equal(ma, mb, sizeof ma);
    }
    // draws without data (a rank skipping rows another computes) leave the sampler where full draws do
    assert_int_equal(qs_stream_sample_docs(&a.train, &a.rng, B, T, NULL, NULL, NULL), QS_OK);
    assert_int_equal(qs_stream_sample_docs(&b.train, &b.rng, B, T, tb, mb, NULL), QS_OK);
    assert_int_equal(qs_stream_sample(&a.train, &a.rng, B, T, NULL, NULL, NULL), QS_OK);
    assert_int_equal(qs_stream_sample(&b.train, &b.rng, B, T, tb, mb, NULL), QS_OK);
    assert_memory_equal(&a.rng, &b.rng, sizeof a.rng);
    assert_int_equal(qs_stream_eval_batch(&a.val, 0, B, T, ta, ma, NULL), QS_OK);
    assert_int_equal(qs_stream_eval_batch(&b.val, 0, B, T, tb, mb, NULL), QS_OK);
    assert_memory_equal(ta, tb, sizeof ta), assert_memory_equal(ma, mb, sizeof ma);
    qs_dataset_free(&a);
    qs_dataset_free(&b);

    // a document table out of order: the error names docs.idx
    char idx[400];
    snprintf(idx, sizeof idx, "%s/docs.idx", out);
    FILE *f = fopen(idx, "r+b");
    assert_non_null(f);
    const uint64_t big = 5; // document 2 starting before document 1 ends
    fseek(f, 16, SEEK_SET);
    fwrite(&big, 8, 1, f);
    fclose(f);
    assert_int_equal(qs_shards_load(&b, out, 1), QS_ERR_FORMAT);
    assert_non_null(strstr(qstar_last_error(), "docs.idx"));
    rm_dir(out);
    unlink(text);
}

static void test_round_trip_uint16(void **state) {
    (void)state;
    round_trip(0);
}

static void test_round_trip_uint32(void **state) {
    (void)state;
    round_trip(1);
}

static void test_parse_meta(void **state) {
    (void)state;
    qs_shards_meta m;
    const char *good = "{\"format\":\"qstar-tokens\",\"version\":1,\"dtype\":\"uint16\",\"vocab_size\":512,"
                       "\"n_tokens\":100,\"n_docs\":10,\"train_docs\":9,\"train_tokens\":90}";
    assert_int_equal(qs_shards_parse_meta(good, strlen(good), "m.json", &m), QS_OK);
    assert_int_equal(m.width, 2);
    assert_int_equal(m.vocab_size, 512);
    assert_int_equal(m.train_tokens, 90);
    struct {
        const char *from, *to, *msg;
    } bad[] = {
        {"qstar-tokens", "qstar-other", "format"},
        {"\"version\":1", "\"version\":2", "version"},
        {"uint16", "int16", "dtype"},
        {"\"vocab_size\":512", "\"vocab_size\":70000", "vocab_size"},
        {"\"n_docs\":10", "\"n_docs\":101", "documents"},
        {"\"n_docs\":10", "\"n_docs\":-1", "n_docs"},
        {"\"n_docs\":10", "\"n_docs\":1.5", "n_docs"},
        {"\"train_docs\":9", "\"train_docs\":11", "exceeds"},
        {"\"train_tokens\":90", "\"train_tokens\":100", "disagree"},
        {"\"train_tokens\":90", "\"train_tokens\":\"90\"", "train_tokens"},
        {"}", "", "JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char buf[512];
        const char *p = strstr(good, bad[i].from);
        assert_non_null(p);
        snprintf(buf, sizeof buf, "%.*s%s%s", (int)(p - good), good, bad[i].to, p + strlen(bad[i].from));
        assert_int_not_equal(qs_shards_parse_meta(buf, strlen(buf), "m.json", &m), QS_OK);
        if (!strstr(qstar_last_error(), bad[i].msg) || !strstr(qstar_last_error(), "m.json"))
            fail_msg("case %zu: '%s'", i, qstar_last_error());
    }
    assert_int_not_equal(qs_shards_parse_meta(good, 20, "m.json", &m), QS_OK); // truncated
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/qs_test_shards.%d", (int)getpid());
    mkdir(g_dir, 0777);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_meta),
        cmocka_unit_test(test_round_trip_uint16),
        cmocka_unit_test(test_round_trip_uint32),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rmdir(g_dir);
    return rc;
}

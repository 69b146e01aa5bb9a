// test_dataset.c: document splitting (text / JSONL), packing into one BOS-
// prefixed stream, the held-out split, the three kinds of windows and error
// messages, with a fake byte tokenizer; plus a check with the real tok512
// tokenizer on TinyStories (skipped when $QSTAR_DATA is absent).
#include "testutil.h"

#include <unistd.h>

#include "core/qs.h"
#include "data/dataset.h"
#include "tokenizer/tokenizer.h"

// Fake tokenizer: BOS = 1, then byte b -> b + 3 (like <0xXX> fallback ids).
// Fails on documents containing "BAD".
static qs_status fake_encode(void *ctx, const char *text, int *out, int cap, int *n_out) {
    (void)ctx;
    if (strstr(text, "BAD")) return qs_error(QS_ERR_FORMAT, "fake: cannot encode BAD");
    size_t n = strlen(text);
    if ((size_t)cap < n + 1) return qs_error(QS_ERR_ARG, "fake: cap too small");
    out[0] = 1;
    for (size_t i = 0; i < n; i++) out[i + 1] = (unsigned char)text[i] + 3;
    *n_out = (int)n + 1;
    return QS_OK;
}

// Text of document d of s (fake tokenizer), into buf.
static const char *fake_doc_text(const qs_token_stream *s, size_t d, char *buf, size_t cap) {
    size_t len = qs_stream_doc_len(s, d), k = 0;
    assert_true(len >= 1);
    assert_int_equal(s->tokens[s->doc_start[d]], 1);
    for (size_t i = 1; i < len && k + 1 < cap; i++) buf[k++] = (char)(s->tokens[s->doc_start[d] + i] - 3);
    buf[k] = 0;
    return buf;
}

static char g_path[256];

// Writes `content` (len bytes) to a fresh temporary file ending in `suffix`.
static const char *write_tmp(const char *content, size_t len, const char *suffix) {
    snprintf(g_path, sizeof g_path, "/tmp/qs_test_dataset_XXXXXX%s", suffix);
    int fd = mkstemps(g_path, (int)strlen(suffix));
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    close(fd);
    return g_path;
}

static qs_dataset_opts opts_frac(double f) {
    qs_dataset_opts o = qs_dataset_opts_default();
    o.val_frac = f;
    return o;
}

static void assert_contains(const char *hay, const char *needle) {
    if (!strstr(hay, needle)) fail_msg("message \"%s\" lacks \"%s\"", hay, needle);
}

// ---------------------------------------------------------------------------

static void test_val_count(void **state) {
    (void)state;
    assert_int_equal(qs_dataset_val_count(0, 0.05), 0);
    assert_int_equal(qs_dataset_val_count(1, 0.05), 0);
    assert_int_equal(qs_dataset_val_count(2, 0.05), 1);
    assert_int_equal(qs_dataset_val_count(100, 0.05), 5);
    assert_int_equal(qs_dataset_val_count(3, 0.5), 2);
    assert_int_equal(qs_dataset_val_count(10, 0.0), 0);
    assert_int_equal(qs_dataset_val_count(10, 0.99), 9);
    assert_int_equal(qs_dataset_val_count(10, 1.0), 10);
}

static void test_pack_and_split(void **state) {
    (void)state;
    const char *docs[4] = {"ab", "c", "def", "gh"};
    qs_dataset_opts o = opts_frac(0.25);
    qs_dataset ds;
    assert_int_equal(qs_dataset_from_docs(&ds, docs, 4, fake_encode, NULL, &o), QS_OK);
    const int tr[9] = {1, 'a' + 3, 'b' + 3, 1, 'c' + 3, 1, 'd' + 3, 'e' + 3, 'f' + 3};
    assert_int_equal(ds.train.n_tokens, 9);
    assert_int_equal(ds.train.n_docs, 3);
    assert_memory_equal(ds.train.tokens, tr, sizeof tr);
    assert_int_equal(ds.train.doc_start[0], 0);
    assert_int_equal(ds.train.doc_start[1], 3);
    assert_int_equal(ds.train.doc_start[2], 5);
    assert_int_equal(qs_stream_doc_len(&ds.train, 2), 4);
    assert_int_equal(qs_stream_doc_len(&ds.train, 3), 0);
    const int va[3] = {1, 'g' + 3, 'h' + 3};
    assert_int_equal(ds.val.n_tokens, 3);
    assert_int_equal(ds.val.n_docs, 1);
    assert_int_equal(ds.val.doc_start[0], 0);
    assert_memory_equal(ds.val.tokens, va, sizeof va);
    assert_int_equal(qs_dataset_n_docs(&ds), 4);
    assert_int_equal(qs_dataset_n_tokens(&ds), 12);
    qs_dataset_free(&ds);
    assert_null(ds.train.tokens);

    // everything held out / nothing held out
    o.val_frac = 1.0;
    assert_int_equal(qs_dataset_from_docs(&ds, docs, 4, fake_encode, NULL, &o), QS_OK);
    assert_int_equal(ds.train.n_docs, 0);
    assert_int_equal(ds.train.n_tokens, 0);
    assert_int_equal(ds.val.n_docs, 4);
    assert_int_equal(ds.val.n_tokens, 12);
    assert_int_equal(ds.val.doc_start[3], 9);
    int tok[4];
    assert_int_equal(qs_stream_sample(&ds.train, &ds.rng, 1, 4, tok, NULL, NULL), QS_ERR_ARG);
    assert_int_equal(qs_stream_sample_docs(&ds.train, &ds.rng, 1, 4, tok, NULL, NULL), QS_ERR_ARG);
    qs_dataset_free(&ds);
    o.val_frac = 0.0;
    assert_int_equal(qs_dataset_from_docs(&ds, docs, 4, fake_encode, NULL, &o), QS_OK);
    assert_int_equal(ds.train.n_docs, 4);
    assert_int_equal(ds.val.n_docs, 0);
    assert_null(ds.val.tokens);
    qs_dataset_free(&ds);

    // bad options / no documents
    o.val_frac = 1.5;
    assert_int_equal(qs_dataset_from_docs(&ds, docs, 4, fake_encode, NULL, &o), QS_ERR_ARG);
    o.val_frac = 0.1;
    assert_int_equal(qs_dataset_from_docs(&ds, docs, 0, fake_encode, NULL, &o), QS_ERR_FORMAT);
    assert_contains(qstar_last_error(), "no documents");
    qs_dataset_free(&ds);
}

// Many documents (several parallel encoding batches): the stream is the same
// as with one thread, in document order.
static void test_parallel_order(void **state) {
    (void)state;
    const size_t n = 10000;
    char **docs = malloc(n * sizeof *docs);
    assert_non_null(docs);
    for (size_t i = 0; i < n; i++) {
        docs[i] = malloc(64);
        snprintf(docs[i], 64, "doc %zu %.*s", i, (int)(i % 37), "abcdefghijklmnopqrstuvwxyz0123456789!");
    }
    qs_dataset a, b;
    qs_dataset_opts o = opts_frac(0.05);
    o.n_threads = 1;
    assert_int_equal(qs_dataset_from_docs(&a, (const char *const *)docs, n, fake_encode, NULL, &o), QS_OK);
    o.n_threads = 0;
    assert_int_equal(qs_dataset_from_docs(&b, (const char *const *)docs, n, fake_encode, NULL, &o), QS_OK);
    assert_int_equal(a.train.n_docs, 9500);
    assert_int_equal(a.val.n_docs, 500);
    assert_int_equal(a.train.n_tokens, b.train.n_tokens);
    assert_int_equal(a.val.n_tokens, b.val.n_tokens);
    assert_memory_equal(a.train.tokens, b.train.tokens, a.train.n_tokens * sizeof(int));
    assert_memory_equal(a.val.tokens, b.val.tokens, a.val.n_tokens * sizeof(int));
    assert_memory_equal(a.train.doc_start, b.train.doc_start, a.train.n_docs * sizeof(size_t));
    char buf[128];
    assert_string_equal(fake_doc_text(&b.train, 1234, buf, sizeof buf), docs[1234]);
    assert_string_equal(fake_doc_text(&b.val, 0, buf, sizeof buf), docs[9500]);
    assert_string_equal(fake_doc_text(&b.val, 499, buf, sizeof buf), docs[9999]);
    qs_dataset_free(&a);
    qs_dataset_free(&b);
    for (size_t i = 0; i < n; i++) free(docs[i]);
    free(docs);
}

static void test_text_file(void **state) {
    (void)state;
    const char txt[] = "  first doc line1\nline2  \n\n\n second\r\n   \r\nthird\nstill third\n<|endoftext|>\n"
                       "fourth \xc3\xa9\n\n";
    const char *want[4] = {"first doc line1\nline2", "second", "third\nstill third", "fourth \xc3\xa9"};
    const char *path = write_tmp(txt, sizeof txt - 1, ".txt");
    qs_dataset ds;
    qs_dataset_opts o = opts_frac(0.0);
    assert_int_equal(qs_dataset_load_with(&ds, path, fake_encode, NULL, &o), QS_OK);
    assert_int_equal(ds.train.n_docs, 4);
    char buf[128];
    for (int d = 0; d < 4; d++) assert_string_equal(fake_doc_text(&ds.train, (size_t)d, buf, sizeof buf), want[d]);
    qs_dataset_free(&ds);
    unlink(path);
    // the last document without a final newline; default split keeps 1 doc for val (4 docs -> round(0.2)=0 -> 1)
    const char txt2[] = "a\n\nb\n\nc\n\nd";
    path = write_tmp(txt2, sizeof txt2 - 1, ".txt");
    o = qs_dataset_opts_default();
    assert_int_equal(qs_dataset_load_with(&ds, path, fake_encode, NULL, &o), QS_OK);
    assert_int_equal(ds.train.n_docs, 3);
    assert_int_equal(ds.val.n_docs, 1);
    assert_string_equal(fake_doc_text(&ds.val, 0, buf, sizeof buf), "d");
    qs_dataset_free(&ds);
    unlink(path);
}

static void test_jsonl_file(void **state) {
    (void)state;
    const char js[] = "{\"body\": \"hello\", \"n\": 1}\n"
                      "\n"
                      "  {\"body\": \"  caf\\u00e9\\nline \"}  \r\n"
                      "{\"body\": \"\"}\n"
                      "{\"n\": 2, \"body\": \"last\"}";
    const char *path = write_tmp(js, sizeof js - 1, ".jsonl");
    qs_dataset ds;
    qs_dataset_opts o = opts_frac(0.0);
    o.field = "body";
    assert_int_equal(qs_dataset_load_with(&ds, path, fake_encode, NULL, &o), QS_OK);
    assert_int_equal(ds.train.n_docs, 3); // the empty string is skipped
    char buf[64];
    assert_string_equal(fake_doc_text(&ds.train, 0, buf, sizeof buf), "hello");
    assert_string_equal(fake_doc_text(&ds.train, 1, buf, sizeof buf), "caf\xc3\xa9\nline");
    assert_string_equal(fake_doc_text(&ds.train, 2, buf, sizeof buf), "last");
    qs_dataset_free(&ds);
    unlink(path);

    // nested field path, format forced on a .txt name
    const char js2[] = "{\"q\": {\"stem\": \"why?\"}}\n{\"q\": {\"stem\": \"how?\"}}\n";
    path = write_tmp(js2, sizeof js2 - 1, ".txt");
    o.field = "q.stem";
    o.format = QS_DATA_JSONL;
    assert_int_equal(qs_dataset_load_with(&ds, path, fake_encode, NULL, &o), QS_OK);
    assert_int_equal(ds.train.n_docs, 2);
    assert_string_equal(fake_doc_text(&ds.train, 1, buf, sizeof buf), "how?");
    qs_dataset_free(&ds);
    unlink(path);
}

// Loads `content` as a file with suffix and expects status st and a message
// containing "PATH<after_path>" and `also`.
static void expect_error(const char *content, size_t len, const char *suffix, const char *field, qs_status st,
                         const char *after_path, const char *also) {
    const char *path = write_tmp(content, len, suffix);
    qs_dataset ds;
    qs_dataset_opts o = opts_frac(0.05);
    o.field = field;
    assert_int_equal(qs_dataset_load_with(&ds, path, fake_encode, NULL, &o), st);
    char want[512];
    snprintf(want, sizeof want, "%s%s", path, after_path);
    assert_contains(qstar_last_error(), want);
    if (also) assert_contains(qstar_last_error(), also);
    assert_null(ds.train.tokens);
    assert_null(ds.val.tokens);
    qs_dataset_free(&ds);
    unlink(path);
}

static void test_errors(void **state) {
    (void)state;
    qs_dataset ds;
    assert_int_equal(qs_dataset_load_with(&ds, "/nonexistent/dir/corpus.txt", fake_encode, NULL, NULL), QS_ERR_IO);
    assert_contains(qstar_last_error(), "/nonexistent/dir/corpus.txt");
    qs_dataset_free(&ds);
    assert_int_equal(qs_dataset_load(&ds, "x.txt", NULL, NULL), QS_ERR_ARG);

    expect_error("", 0, ".txt", NULL, QS_ERR_FORMAT, ": no documents", NULL);
    expect_error("\n  \n\n", 3, ".txt", NULL, QS_ERR_FORMAT, ": no documents", NULL);
    expect_error("", 0, ".jsonl", NULL, QS_ERR_FORMAT, ": no documents", NULL);
    const char j1[] = "{\"text\": \"ok\"}\n{\"text\": oops}\n";
    expect_error(j1, sizeof j1 - 1, ".jsonl", NULL, QS_ERR_FORMAT, ":2: not valid JSON", NULL);
    const char j2[] = "{\"text\": \"ok\"} trailing\n";
    expect_error(j2, sizeof j2 - 1, ".jsonl", NULL, QS_ERR_FORMAT, ":1: not valid JSON", NULL);
    const char j3[] = "{\"text\": \"ok\"}\n\n{\"other\": \"x\"}\n";
    expect_error(j3, sizeof j3 - 1, ".jsonl", NULL, QS_ERR_FORMAT, ":3: no field \"text\"", NULL);
    const char j4[] = "{\"question\": 5}\n";
    expect_error(j4, sizeof j4 - 1, ".jsonl", "question", QS_ERR_FORMAT, ":1: field \"question\" is not a string",
                 NULL);
    const char j5[] = "[1, 2]\n";
    expect_error(j5, sizeof j5 - 1, ".jsonl", NULL, QS_ERR_FORMAT, ":1: not a JSON object", NULL);
    const char j6[] = "{\"text\": \"ok\"}\n{\"text\": \"b\xff\"}\n";
    expect_error(j6, sizeof j6 - 1, ".jsonl", NULL, QS_ERR_FORMAT, ":2:12: invalid UTF-8 (byte 0xff)", "document 2");
    // invalid UTF-8 in a text file: file, line, column and document
    const char t1[] = "one\n\ntwo\nt\xc3(hree\n";
    expect_error(t1, sizeof t1 - 1, ".txt", NULL, QS_ERR_FORMAT, ":4:2: invalid UTF-8 (byte 0xc3)", "document 2");
    const char t2[] = "overlong \xc0\xaf\n";
    expect_error(t2, sizeof t2 - 1, ".txt", NULL, QS_ERR_FORMAT, ":1:10: invalid UTF-8", NULL);
    const char t3[] = "surrogate \xed\xa0\x80\n";
    expect_error(t3, sizeof t3 - 1, ".txt", NULL, QS_ERR_FORMAT, ":1:11: invalid UTF-8", NULL);
    const char t4[] = "truncated at end \xe2\x82";
    expect_error(t4, sizeof t4 - 1, ".txt", NULL, QS_ERR_FORMAT, ":1:18: invalid UTF-8", NULL);
    const char t5[] = "nul\0byte\n";
    expect_error(t5, sizeof t5 - 1, ".txt", NULL, QS_ERR_FORMAT, ":1:4: NUL byte", NULL);
    // an encoder error gets the file / document / line context
    const char t6[] = "fine\n\nalso fine\n\nsome\nBAD doc\n";
    expect_error(t6, sizeof t6 - 1, ".txt", NULL, QS_ERR_FORMAT, ": document 3 (line 5): fake: cannot encode BAD",
                 NULL);
    // in-memory documents
    const char *docs[2] = {"ok", "x\x80"};
    assert_int_equal(qs_dataset_from_docs(&ds, docs, 2, fake_encode, NULL, NULL), QS_ERR_FORMAT);
    assert_contains(qstar_last_error(), "document 2: invalid UTF-8");
    const char *docs2[2] = {"ok", "BAD"};
    assert_int_equal(qs_dataset_from_docs(&ds, docs2, 2, fake_encode, NULL, NULL), QS_ERR_FORMAT);
    assert_contains(qstar_last_error(), "document 2: fake: cannot encode BAD");
}

// One document of 99 distinct bytes -> a stream 0..99 of distinct ids.
static void make_stream(qs_dataset *ds, const char *const *docs, size_t n) {
    qs_dataset_opts o = opts_frac(0.0);
    assert_int_equal(qs_dataset_from_docs(ds, docs, n, fake_encode, NULL, &o), QS_OK);
}

static void test_random_windows(void **state) {
    (void)state;
    char doc[100];
    for (int i = 0; i < 99; i++) doc[i] = (char)(' ' + i % 90) ;
    doc[99] = 0;
    const char *docs[1] = {doc};
    qs_dataset ds;
    make_stream(&ds, docs, 1);
    assert_int_equal(ds.train.n_tokens, 100);
    enum { B = 4, T = 10 };
    int tok[B * T], mask[B * T], tok2[B * T];
    size_t st[B], st2[B];
    int seen_first = 0, seen_last = 0;
    for (int it = 0; it < 2000; it++) {
        assert_int_equal(qs_stream_sample(&ds.train, &ds.rng, B, T, tok, mask, st), QS_OK);
        for (int b = 0; b < B; b++) {
            assert_true(st[b] <= 90);
            seen_first |= st[b] == 0;
            seen_last |= st[b] == 90;
            assert_memory_equal(tok + b * T, ds.train.tokens + st[b], T * sizeof(int));
            for (int i = 0; i < T; i++) assert_int_equal(mask[b * T + i], 1);
        }
    }
    assert_true(seen_first && seen_last);
    // the sampler state is a qs_rng: saving and restoring it replays the batch
    qs_rng saved = ds.rng;
    assert_int_equal(qs_stream_sample(&ds.train, &ds.rng, B, T, tok, NULL, st), QS_OK);
    ds.rng = saved;
    assert_int_equal(qs_stream_sample(&ds.train, &ds.rng, B, T, tok2, NULL, st2), QS_OK);
    assert_memory_equal(tok, tok2, sizeof tok);
    assert_memory_equal(st, st2, sizeof st);
    // the seed determines the first batch
    qs_dataset ds2;
    make_stream(&ds2, docs, 1);
    qs_stream_sample(&ds.train, &ds2.rng, B, T, tok2, NULL, st2);
    qs_rng r;
    qs_rng_seed(&r, 1337);
    qs_stream_sample(&ds.train, &r, B, T, tok, NULL, st);
    assert_memory_equal(st, st2, sizeof st);
    qs_dataset_free(&ds2);
    assert_int_equal(qs_stream_sample(&ds.train, &ds.rng, 0, T, tok, NULL, NULL), QS_ERR_ARG);
    qs_dataset_free(&ds);

    // stream shorter than the window: right-padded
    const char *shortd[1] = {"abc"};
    make_stream(&ds, shortd, 1);
    assert_int_equal(qs_stream_sample(&ds.train, &ds.rng, 1, 6, tok, mask, st), QS_OK);
    const int wt[6] = {1, 'a' + 3, 'b' + 3, 'c' + 3, 0, 0}, wm[6] = {1, 1, 1, 1, 0, 0};
    assert_int_equal(st[0], 0);
    assert_memory_equal(tok, wt, sizeof wt);
    assert_memory_equal(mask, wm, sizeof wm);
    qs_dataset_free(&ds);
}

static void test_eval_windows(void **state) {
    (void)state;
    const char *docs[2] = {"abcdefghijklm", "nopqrstuvw"}; // 14 + 11 = 25 tokens
    qs_dataset ds;
    make_stream(&ds, docs, 2);
    const qs_token_stream *s = &ds.train;
    assert_int_equal(s->n_tokens, 25);
    enum { B = 2, T = 10 };
    assert_int_equal(qs_stream_n_windows(s, T), 3);
    assert_int_equal(qs_stream_n_windows(s, 5), 5);
    assert_int_equal(qs_stream_n_windows(s, 25), 1);
    assert_int_equal(qs_stream_n_windows(s, 26), 1);
    int tok[B * T], mask[B * T], rows = -1;
    int got[64], ng = 0;
    for (size_t w = 0; w < qs_stream_n_windows(s, T); w += B) {
        assert_int_equal(qs_stream_eval_batch(s, w, B, T, tok, mask, &rows), QS_OK);
        assert_int_equal(rows, w == 0 ? 2 : 1);
        for (int b = 0; b < B; b++)
            for (int i = 0; i < T; i++) {
                if (mask[b * T + i]) {
                    assert_true(b < rows);
                    got[ng++] = tok[b * T + i];
                } else {
                    assert_int_equal(tok[b * T + i], 0);
                }
            }
        if (w == 2) { // last window: 5 real tokens then padding; second row all padding
            for (int i = 0; i < T; i++) assert_int_equal(mask[i], i < 5);
            for (int i = 0; i < T; i++) assert_int_equal(mask[T + i], 0);
        }
    }
    // the windows cover the stream exactly once, in order
    assert_int_equal(ng, 25);
    assert_memory_equal(got, s->tokens, 25 * sizeof(int));
    // past the end: all padding
    assert_int_equal(qs_stream_eval_batch(s, 7, B, T, tok, mask, &rows), QS_OK);
    assert_int_equal(rows, 0);
    qs_dataset_free(&ds);
}

static void test_doc_windows(void **state) {
    (void)state;
    const char *docs[3] = {"ab", "abcdefghijk", "abcdef"}; // lengths 3, 12, 7
    qs_dataset ds;
    make_stream(&ds, docs, 3);
    const qs_token_stream *s = &ds.train;
    enum { T = 8 };
    int tok[T], mask[T];
    const int len[3] = {3, 8, 7};
    for (size_t d = 0; d < 3; d++) {
        assert_int_equal(qs_stream_doc_window(s, d, T, tok, mask), len[d]);
        assert_int_equal(tok[0], 1); // starts at the document's BOS
        assert_memory_equal(tok, s->tokens + s->doc_start[d], (size_t)len[d] * sizeof(int));
        for (int i = 0; i < T; i++) {
            assert_int_equal(mask[i], i < len[d]);
            if (i >= len[d]) assert_int_equal(tok[i], 0);
        }
    }
    assert_int_equal(qs_stream_doc_window(s, 3, T, tok, mask), 0);
    for (int i = 0; i < T; i++) assert_int_equal(mask[i], 0);

    enum { B = 5 };
    int bt[B * T], bm[B * T];
    size_t which[B];
    int hit[3] = {0};
    for (int it = 0; it < 200; it++) {
        assert_int_equal(qs_stream_sample_docs(s, &ds.rng, B, T, bt, bm, which), QS_OK);
        for (int b = 0; b < B; b++) {
            assert_true(which[b] < 3);
            hit[which[b]] = 1;
            qs_stream_doc_window(s, which[b], T, tok, mask);
            assert_memory_equal(bt + b * T, tok, sizeof tok);
            assert_memory_equal(bm + b * T, mask, sizeof mask);
        }
    }
    assert_true(hit[0] && hit[1] && hit[2]);
    qs_dataset_free(&ds);
}

// The real llama2.c tok512 tokenizer on TinyStories valid.txt.
static void test_real_tokenizer(void **state) {
    (void)state;
    char tp[1024], dp[1024], gp[1024];
    const char *tokp = tu_data_path("stories260K/tok512.bin", tp, sizeof tp);
    if (!tokp) return;
    const char *datap = tu_data_path("tinystories/valid.txt", dp, sizeof dp);
    if (!datap) return;
    qs_tokenizer *t = NULL;
    assert_int_equal(qs_tokenizer_load(&t, tokp, 512), QS_OK);
    qs_dataset ds, ds1;
    qs_dataset_opts o = qs_dataset_opts_default();
    assert_int_equal(qs_dataset_load(&ds, datap, t, &o), QS_OK);
    size_t n = qs_dataset_n_docs(&ds);
    assert_true(n > 1000);
    assert_int_equal(ds.val.n_docs, qs_dataset_val_count(n, 0.05));
    assert_true(ds.train.n_tokens > 100000);
    const qs_token_stream *sp[2] = {&ds.train, &ds.val};
    for (int k = 0; k < 2; k++) {
        const qs_token_stream *s = sp[k];
        for (size_t d = 0; d < s->n_docs; d++) {
            assert_int_equal(s->tokens[s->doc_start[d]], 1);
            assert_true(qs_stream_doc_len(s, d) >= 2);
        }
        for (size_t i = 0; i < s->n_tokens; i++) assert_true(s->tokens[i] >= 0 && s->tokens[i] < 512);
    }
    // document 0 is the first paragraph of the file, encoded with BOS
    FILE *f = fopen(datap, "rb");
    assert_non_null(f);
    char para[4096];
    assert_non_null(fgets(para, sizeof para, f));
    fclose(f);
    para[strcspn(para, "\r\n")] = 0;
    int ref[4200], nref = 0;
    assert_int_equal(qs_tokenizer_encode(t, para, 1, 0, ref, 4200, &nref), QS_OK);
    assert_int_equal(qs_stream_doc_len(&ds.train, 0), (size_t)nref);
    assert_memory_equal(ds.train.tokens, ref, (size_t)nref * sizeof(int));
    char dec[8192];
    assert_int_equal(qs_tokenizer_decode(t, ds.train.tokens, nref, dec, sizeof dec), QS_OK);
    assert_string_equal(dec, para);
    // serial encoding gives the same stream
    o.n_threads = 1;
    assert_int_equal(qs_dataset_load(&ds1, datap, t, &o), QS_OK);
    assert_int_equal(ds1.train.n_tokens, ds.train.n_tokens);
    assert_int_equal(ds1.val.n_tokens, ds.val.n_tokens);
    assert_memory_equal(ds1.train.tokens, ds.train.tokens, ds.train.n_tokens * sizeof(int));
    assert_memory_equal(ds1.val.tokens, ds.val.tokens, ds.val.n_tokens * sizeof(int));
    qs_dataset_free(&ds1);
    qs_dataset_free(&ds);

    // JSONL with a field: GSM8K questions
    const char *gsm = tu_data_path("gsm8k/test.jsonl", gp, sizeof gp);
    if (gsm) {
        o = opts_frac(0.0);
        o.field = "question";
        assert_int_equal(qs_dataset_load(&ds, gsm, t, &o), QS_OK);
        assert_int_equal(ds.train.n_docs, 1319);
        qs_dataset_free(&ds);
        o.field = "nope";
        assert_int_equal(qs_dataset_load(&ds, gsm, t, &o), QS_ERR_FORMAT);
        assert_contains(qstar_last_error(), ":1: no field \"nope\"");
    }
    qs_tokenizer_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_val_count),      cmocka_unit_test(test_pack_and_split),
        cmocka_unit_test(test_parallel_order), cmocka_unit_test(test_text_file),
        cmocka_unit_test(test_jsonl_file),     cmocka_unit_test(test_errors),
        cmocka_unit_test(test_random_windows), cmocka_unit_test(test_eval_windows),
        cmocka_unit_test(test_doc_windows),    cmocka_unit_test(test_real_tokenizer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

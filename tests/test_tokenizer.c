// test_tokenizer.c: the llama2.c tokenizer.
//  - encodings of several strings with stories260K/tok512.bin, against ids
//    produced by llama2.c's own run.c `encode` (karpathy/llama2.c) with the
//    same file;
//  - decode(encode(s)) == s (BOS strips the dummy-prefix space), piece
//    semantics (<0xXX> bytes, space after BOS), save -> byte-identical file;
//  - merge order rules (highest score, leftmost on ties) on a small
//    hand-written vocabulary that needs no data;
//  - malformed files (truncated, negative length, bad header, ...) and
//    invalid UTF-8 give errors whose messages name the path / byte offset.
#include "testutil.h"

#include <dirent.h>
#include <unistd.h>

#include "core/qs.h"
#include "tokenizer/tokenizer.h"

// ----------------------------------------------------------------------------
// helpers

static char g_dir[512]; // scratch directory for files written by the tests

static const char *scratch(const char *name, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s", g_dir, name);
    return buf;
}

static int setup_dir(void **state) {
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/qs_test_tok_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    return mkdtemp(g_dir) ? 0 : -1;
}

// Removes the scratch directory and whatever a failed test left in it.
static int teardown_dir(void **state) {
    (void)state;
    DIR *d = opendir(g_dir);
    if (d) {
        char path[1024];
        for (struct dirent *e; (e = readdir(d)) != NULL;)
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                unlink(scratch(e->d_name, path, sizeof path));
        closedir(d);
    }
    return rmdir(g_dir);
}

static unsigned char *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    unsigned char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return buf;
}

static void write_all(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

// Appends a little-endian int32 / float32 (the test host is little-endian,
// like every llama2.c user; the library itself does not assume it).
static size_t put_i32(unsigned char *p, int32_t v) { memcpy(p, &v, 4); return 4; }
static size_t put_f32(unsigned char *p, float v) { memcpy(p, &v, 4); return 4; }

// Writes a tokenizer file with the given pieces and scores into buf; returns its size.
static size_t make_vocab(unsigned char *buf, int mtl, int n, const char *const *pieces, const float *scores) {
    size_t off = put_i32(buf, mtl);
    for (int i = 0; i < n; i++) {
        int len = (int)strlen(pieces[i]);
        off += put_f32(buf + off, scores[i]);
        off += put_i32(buf + off, len);
        memcpy(buf + off, pieces[i], (size_t)len);
        off += (size_t)len;
    }
    return off;
}

static void assert_msg_has(const char *needle) {
    const char *msg = qstar_last_error();
    if (!strstr(msg, needle)) fail_msg("error message \"%s\" lacks \"%s\"", msg, needle);
}

static qs_tokenizer *load_tok512(char *buf, size_t n) {
    const char *path = tu_data_path("stories260K/tok512.bin", buf, n);
    if (!path) return NULL;
    qs_tokenizer *t = NULL;
    qs_status st = qs_tokenizer_load(&t, path, 512);
    if (st != QS_OK) fail_msg("load %s: %s", path, qstar_last_error());
    return t;
}

// ----------------------------------------------------------------------------
// reference encodings (llama2.c run.c encode with tok512.bin, bos=1, eos=0)

typedef struct {
    const char *text;
    int n;
    int ids[24];
} ref_case;

static const ref_case REFS[] = {
    {"Once upon a time", 5, {1, 403, 407, 261, 378}},
    {"Tom had a red", 7, {1, 274, 287, 381, 261, 352, 266}},
    {"Hello, world!", 9, {1, 346, 306, 414, 432, 263, 304, 341, 443}},
    // é and ☃ are not in the vocabulary: byte fallback (byte + 3)
    {"caf\xc3\xa9 \xe2\x98\x83", 9, {1, 280, 412, 431, 485, 410, 229, 155, 134}},
    {"", 1, {1}},
    {"Lily saw a dog.\nThe dog was happy.\n\nThe end.", 22,
     {1, 317, 394, 261, 400, 428, 426, 13, 434, 260, 400, 428, 286, 393, 426, 13, 13, 434, 260, 344, 264, 426}},
    {" leading and  double  spaces ", 19,
     {1, 410, 278, 411, 380, 299, 269, 410, 279, 277, 430, 305, 410, 262, 427, 412, 331, 419, 410}},
    {"\xf0\x9f\x98\x80!", 7, {1, 410, 243, 162, 155, 131, 443}}, // U+1F600 as 4 byte tokens
};
#define N_REFS ((int)(sizeof REFS / sizeof REFS[0]))

static void test_encode_matches_llama2c(void **state) {
    (void)state;
    char path[1024];
    qs_tokenizer *t = load_tok512(path, sizeof path);
    if (!t) skip();
    assert_int_equal(qs_tokenizer_vocab_size(t), 512);
    assert_int_equal(qs_tokenizer_bos(t), 1);
    assert_int_equal(qs_tokenizer_eos(t), 2);
    int out[128], n;
    for (int k = 0; k < N_REFS; k++) {
        const ref_case *r = &REFS[k];
        // bos=1, eos=0
        assert_int_equal(qs_tokenizer_encode(t, r->text, 1, 0, out, 128, &n), QS_OK);
        assert_int_equal(n, r->n);
        for (int i = 0; i < n; i++)
            if (out[i] != r->ids[i]) fail_msg("\"%s\": token %d is %d, llama2.c gives %d", r->text, i, out[i], r->ids[i]);
        // bos=0, eos=1: the same ids shifted, EOS appended
        assert_int_equal(qs_tokenizer_encode(t, r->text, 0, 1, out, 128, &n), QS_OK);
        assert_int_equal(n, r->n);
        for (int i = 0; i + 1 < n; i++) assert_int_equal(out[i], r->ids[i + 1]);
        assert_int_equal(out[n - 1], 2);
    }
    qs_tokenizer_free(t);
}

static void test_decode_round_trip(void **state) {
    (void)state;
    char path[1024];
    qs_tokenizer *t = load_tok512(path, sizeof path);
    if (!t) skip();
    int ids[128], n;
    char text[512], spaced[512];
    for (int k = 0; k < N_REFS; k++) {
        const char *s = REFS[k].text;
        // after BOS the dummy-prefix space is stripped: exact round trip
        assert_int_equal(qs_tokenizer_encode(t, s, 1, 1, ids, 128, &n), QS_OK);
        assert_int_equal(qs_tokenizer_decode(t, ids, n, text, sizeof text), QS_OK);
        assert_string_equal(text, s);
        // without BOS the dummy prefix stays: " " + s
        assert_int_equal(qs_tokenizer_encode(t, s, 0, 0, ids, 128, &n), QS_OK);
        assert_int_equal(qs_tokenizer_decode(t, ids, n, text, sizeof text), QS_OK);
        snprintf(spaced, sizeof spaced, "%s%s", *s ? " " : "", s);
        assert_string_equal(text, spaced);
    }
    qs_tokenizer_free(t);
}

static void test_pieces(void **state) {
    (void)state;
    char path[1024];
    qs_tokenizer *t = load_tok512(path, sizeof path);
    if (!t) skip();
    assert_string_equal(qs_tokenizer_raw_piece(t, 403), " Once");
    assert_string_equal(qs_tokenizer_piece(t, 5, 403), " Once");
    assert_string_equal(qs_tokenizer_piece(t, 1, 403), "Once"); // space stripped after BOS
    assert_string_equal(qs_tokenizer_raw_piece(t, 13), "<0x0A>");
    assert_string_equal(qs_tokenizer_piece(t, 400, 13), "\n"); // byte token -> raw byte
    assert_string_equal(qs_tokenizer_piece(t, 400, 229), "\xe2");
    assert_string_equal(qs_tokenizer_piece(t, 400, 3), "");     // <0x00> decodes to an empty C string
    assert_string_equal(qs_tokenizer_raw_piece(t, 1), "\n<s>\n");
    assert_string_equal(qs_tokenizer_piece(t, 0, 512), "");    // out of range
    assert_string_equal(qs_tokenizer_piece(t, 0, -1), "");
    assert_null(qs_tokenizer_raw_piece(t, 512));
    assert_null(qs_tokenizer_raw_piece(t, -1));
    assert_int_equal(qs_tokenizer_find(t, " "), 410);
    assert_int_equal(qs_tokenizer_find(t, " Once"), 403);
    assert_int_equal(qs_tokenizer_find(t, "<unk>"), 0);
    assert_int_equal(qs_tokenizer_find(t, " Oncx"), -1);
    assert_int_equal(qs_tokenizer_find(t, "a very long piece that cannot exist"), -1);

    // decode truncates to cap-1 bytes and stays NUL-terminated
    int ids[] = {1, 403, 407, 261, 378}; // "Once upon a time"
    char small[8];
    assert_int_equal(qs_tokenizer_decode(t, ids, 5, small, sizeof small), QS_OK);
    assert_string_equal(small, "Once up");
    // out-of-range ids are an argument error
    int bad[] = {1, 403, 999};
    char text[64];
    assert_int_equal(qs_tokenizer_decode(t, bad, 3, text, sizeof text), QS_ERR_ARG);
    assert_msg_has("999");
    // the output array must have room for the worst case
    int out[8], n = 123;
    assert_int_equal(qs_tokenizer_encode(t, "Once upon a time", 1, 1, out, 8, &n), QS_ERR_ARG);
    assert_int_equal(n, 0);
    qs_tokenizer_free(t);
}

// ----------------------------------------------------------------------------
// save / load round trips

static void test_save_byte_identical(void **state) {
    (void)state;
    char path[1024], out[1024];
    qs_tokenizer *t = load_tok512(path, sizeof path);
    if (!t) skip();
    size_t n0, n1;
    unsigned char *orig = read_all(path, &n0);
    scratch("saved.bin", out, sizeof out);
    assert_int_equal(qs_tokenizer_save(t, out), QS_OK);
    unsigned char *saved = read_all(out, &n1);
    assert_int_equal(n1, n0);
    assert_memory_equal(saved, orig, n0); // includes the -0.0 score of token 259
    free(saved);
    qs_tokenizer_free(t);

    // vocab_size 0 reads to the end of the file: same 512 tokens
    assert_int_equal(qs_tokenizer_load(&t, out, 0), QS_OK);
    assert_int_equal(qs_tokenizer_vocab_size(t), 512);
    assert_int_equal(qs_tokenizer_save(t, out), QS_OK);
    saved = read_all(out, &n1);
    assert_int_equal(n1, n0);
    assert_memory_equal(saved, orig, n0);
    free(saved);
    free(orig);
    qs_tokenizer_free(t);
    unlink(out);

    // saving into a missing directory is an I/O error naming the path
    snprintf(out, sizeof out, "%s/no/such/dir/tok.bin", g_dir);
    assert_int_equal(qs_tokenizer_save(NULL, out), QS_ERR_ARG);
    assert_int_equal(qs_tokenizer_load(&t, path, 512), QS_OK);
    assert_int_equal(qs_tokenizer_save(t, out), QS_ERR_IO);
    assert_msg_has(out);
    qs_tokenizer_free(t);
}

// ----------------------------------------------------------------------------
// merge rules on a hand-written vocabulary (no data needed)

static const char *const MINI[] = {"<unk>", "\n<s>\n", "\n</s>\n", " ", "a", "b", "aa", "ab", " a", "ba", "bab"};
static const float MINI_SCORES[] = {0, 0, 0, 0, 0, 0, -1, -1, -3, -2, -0.5f};
#define MINI_N ((int)(sizeof MINI / sizeof MINI[0]))

static void expect_ids(const qs_tokenizer *t, const char *text, int n, const int *ids) {
    int out[64], got;
    assert_int_equal(qs_tokenizer_encode(t, text, 0, 0, out, 64, &got), QS_OK);
    if (got != n) fail_msg("\"%s\": %d tokens, want %d", text, got, n);
    for (int i = 0; i < n; i++)
        if (out[i] != ids[i]) fail_msg("\"%s\": token %d is %d, want %d", text, i, out[i], ids[i]);
}

static void test_merge_rules(void **state) {
    (void)state;
    unsigned char buf[512];
    char path[1024];
    size_t n = make_vocab(buf, 6, MINI_N, MINI, MINI_SCORES);
    write_all(scratch("mini.bin", path, sizeof path), buf, n);
    qs_tokenizer *t = NULL;
    assert_int_equal(qs_tokenizer_load(&t, path, MINI_N), QS_OK);
    // " aaa": "aa" (-1) beats " a" (-3) and ties with itself; the leftmost "aa" wins
    expect_ids(t, "aaa", 3, (int[]){3, 6, 4});
    // " abab": "ab" (-1) at 1 and 3 beats "ba" (-2) at 2 and " a" (-3) at 0; the
    // left "ab" goes first, then the right one; "abab" and " ab" are not pieces
    expect_ids(t, "abab", 3, (int[]){3, 7, 7});
    // " bab": "ab" (-1) beats "ba" (-2) -> [" ", "b", "ab"], then b + ab = "bab" (-0.5)
    expect_ids(t, "bab", 2, (int[]){3, 10});
    // " a" (-3) merges when nothing better is available
    expect_ids(t, "a", 1, (int[]){8});
    // no byte-fallback tokens in an 11-token vocabulary: unsupported, not garbage ids
    int out[64], got = 7;
    assert_int_equal(qs_tokenizer_encode(t, "ac", 0, 0, out, 64, &got), QS_ERR_UNSUPPORTED);
    assert_int_equal(got, 0);
    assert_msg_has("offset 1");
    qs_tokenizer_free(t);
    unlink(path);
}

// ----------------------------------------------------------------------------
// malformed files

// Loads `path` expecting failure with `want`, and a message holding the path and `needle`.
static void expect_load_error(const char *path, int vocab_size, qs_status want, const char *needle) {
    static int dummy;
    qs_tokenizer *t = (qs_tokenizer *)&dummy; // load must reset it to NULL on failure
    qs_status st = qs_tokenizer_load(&t, path, vocab_size);
    if (st != want) fail_msg("%s: status %d (%s), want %d", path, st, qstar_last_error(), want);
    assert_null(t);
    assert_msg_has(path);
    if (needle) assert_msg_has(needle);
}

static void test_truncated_tok512(void **state) {
    (void)state;
    char src[1024], path[1024];
    if (!tu_data_path("stories260K/tok512.bin", src, sizeof src)) skip();
    size_t n;
    unsigned char *orig = read_all(src, &n);
    scratch("trunc.bin", path, sizeof path);
    // token 0 is at offset 4 (8 + 5 bytes "<unk>"), token 1 at 17, token 2 at 30 ...
    // `inside`: the cut falls inside a token, so reading to EOF (vocab_size 0) fails too
    struct { size_t keep; const char *needle; int inside; } cuts[] = {
        {0, "too short", 0},  {3, "too short", 0},   {4, "truncated at token 0", 0},
        {10, "token 0", 1},   {16, "token 0", 1},    {17, "truncated at token 1", 0},
        {29, "token 1", 1},   {n - 1, "token 511", 1}, {n - 8, "token 511", 1},
    };
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        write_all(path, orig, cuts[k].keep);
        expect_load_error(path, 512, QS_ERR_FORMAT, cuts[k].needle);
        if (cuts[k].inside) expect_load_error(path, 0, QS_ERR_FORMAT, cuts[k].needle);
    }
    // cut at a token boundary, reading to EOF: fine if at least 3 tokens remain
    write_all(path, orig, 17);
    expect_load_error(path, 0, QS_ERR_FORMAT, "only 1 tokens");
    // the whole file, with the wrong vocabulary size either way
    write_all(path, orig, n);
    expect_load_error(path, 513, QS_ERR_FORMAT, "token 512");
    expect_load_error(path, 511, QS_ERR_FORMAT, "trailing");
    free(orig);
    unlink(path);
}

static void test_malformed_files(void **state) {
    (void)state;
    unsigned char buf[512];
    char path[1024];
    scratch("bad.bin", path, sizeof path);
    size_t n = make_vocab(buf, 6, MINI_N, MINI, MINI_SCORES);
    // offset of token k's length field
    size_t len_at[MINI_N], off = 4;
    for (int i = 0; i < MINI_N; i++) {
        len_at[i] = off + 4;
        off += 8 + strlen(MINI[i]);
    }

    // negative length at token 4
    unsigned char bad[512];
    memcpy(bad, buf, n);
    put_i32(bad + len_at[4], -3);
    write_all(path, bad, n);
    expect_load_error(path, MINI_N, QS_ERR_FORMAT, "token 4: negative");
    expect_load_error(path, 0, QS_ERR_FORMAT, "token 4: negative");

    // a huge length (beyond max_token_length and the file) at token 7
    memcpy(bad, buf, n);
    put_i32(bad + len_at[7], 0x7fffffff);
    write_all(path, bad, n);
    expect_load_error(path, MINI_N, QS_ERR_FORMAT, "token 7");

    // a length within the file but above max_token_length: header says 2
    memcpy(bad, buf, n);
    put_i32(bad, 2);
    write_all(path, bad, n);
    expect_load_error(path, MINI_N, QS_ERR_FORMAT, "token 0: piece length 5 exceeds max_token_length 2");

    // insane max_token_length
    put_i32(bad, 0);
    write_all(path, bad, n);
    expect_load_error(path, MINI_N, QS_ERR_FORMAT, "max_token_length 0");
    put_i32(bad, -7);
    write_all(path, bad, n);
    expect_load_error(path, MINI_N, QS_ERR_FORMAT, "max_token_length -7");

    // NaN score at token 5, NUL inside piece 9
    memcpy(bad, buf, n);
    put_f32(bad + len_at[5] - 4, NAN);
    write_all(path, bad, n);
    expect_load_error(path, MINI_N, QS_ERR_FORMAT, "token 5: score");
    memcpy(bad, buf, n);
    bad[len_at[9] + 4] = 0;
    write_all(path, bad, n);
    expect_load_error(path, MINI_N, QS_ERR_FORMAT, "token 9: piece contains a NUL");

    // too few tokens for <unk>, <s>, </s>
    n = make_vocab(bad, 6, 2, MINI, MINI_SCORES);
    write_all(path, bad, n);
    expect_load_error(path, 0, QS_ERR_FORMAT, "only 2 tokens");
    // header only
    write_all(path, bad, 4);
    expect_load_error(path, 0, QS_ERR_FORMAT, "only 0 tokens");
    unlink(path);

    // nonexistent file, directory, bad arguments
    scratch("does-not-exist.bin", path, sizeof path);
    expect_load_error(path, 512, QS_ERR_IO, "cannot open");
    expect_load_error(g_dir, 0, QS_ERR_IO, NULL);
    qs_tokenizer *t = NULL;
    assert_int_equal(qs_tokenizer_load(&t, path, -1), QS_ERR_ARG);
    assert_int_equal(qs_tokenizer_load(NULL, path, 0), QS_ERR_ARG);
    qs_tokenizer_free(NULL);
}

// ----------------------------------------------------------------------------
// invalid UTF-8

static void expect_utf8_error(const qs_tokenizer *t, const char *text, const char *needle) {
    int out[64], n = 99;
    qs_status st = qs_tokenizer_encode(t, text, 1, 1, out, 64, &n);
    if (st != QS_ERR_FORMAT) fail_msg("encode of bad UTF-8 gave status %d", st);
    assert_int_equal(n, 0);
    assert_msg_has(needle);
}

static void test_invalid_utf8(void **state) {
    (void)state;
    unsigned char buf[512];
    char path[1024];
    size_t n = make_vocab(buf, 6, MINI_N, MINI, MINI_SCORES);
    write_all(scratch("utf8.bin", path, sizeof path), buf, n);
    qs_tokenizer *t = NULL;
    assert_int_equal(qs_tokenizer_load(&t, path, MINI_N), QS_OK);
    unlink(path);
    expect_utf8_error(t, "\xff", "byte offset 0: byte 0xFF cannot start");
    expect_utf8_error(t, "ab\xe2\x98", "byte offset 2: truncated 3-byte sequence");
    expect_utf8_error(t, "a\xe2\x41z", "byte offset 2: byte 0x41 in a 3-byte sequence starting at offset 1");
    expect_utf8_error(t, "ab\x80", "byte offset 2");           // stray continuation byte
    expect_utf8_error(t, "\xc0\xaf", "byte offset 0");         // overlong '/'
    expect_utf8_error(t, "aa\xed\xa0\x80", "byte offset 3");   // UTF-16 surrogate U+D800
    expect_utf8_error(t, "\xf4\x90\x80\x80", "byte offset 1"); // above U+10FFFF
    expect_utf8_error(t, "\xf0\x9f\x98", "byte offset 0: truncated 4-byte");
    qs_tokenizer_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_matches_llama2c),
        cmocka_unit_test(test_decode_round_trip),
        cmocka_unit_test(test_pieces),
        cmocka_unit_test(test_save_byte_identical),
        cmocka_unit_test(test_merge_rules),
        cmocka_unit_test(test_truncated_tok512),
        cmocka_unit_test(test_malformed_files),
        cmocka_unit_test(test_invalid_utf8),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}

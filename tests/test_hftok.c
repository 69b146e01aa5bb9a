// test_hftok.c: the tokenizer interface beyond llama2.c files: specs
// (score-based SentencePiece from a spec encodes exactly like the llama2.c
// file it came from; a byte-level spec with the default pipeline), the
// tokenizer.json parser on memory buffers (good and broken files), the
// streaming decoder on split UTF-8, qs_tokenizer_open on files and
// directories, and llama.cpp pre-tokenizer names.
#include "testutil.h"
#include "tokenizer/tok_internal.h"
#include "tokenizer/tok_sources.h"

static const char *tiny_json =
    "{\"added_tokens\":[{\"id\":6,\"content\":\"<e>\",\"special\":true}],"
    "\"normalizer\":{\"type\":\"NFKC\"},"
    "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true},"
    "\"decoder\":{\"type\":\"ByteLevel\"},"
    "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"\\u0120\":2,\"ab\":3,\"\\u0120ab\":4,\"fi\":5},"
    "\"merges\":[\"a b\",[\"\\u0120\",\"ab\"]]}}";

static qs_tokenizer *parse(const char *json, const char *cfg) {
    qs_tokenizer *t = NULL;
    qs_status st = qs_tokenizer_parse_json(&t, json, strlen(json), cfg, cfg ? strlen(cfg) : 0, "mem.json");
    if (st != QS_OK) fail_msg("parse: %s", qstar_last_error());
    return t;
}

static void expect_ids(const qs_tokenizer *t, const char *text, const int *want, int n) {
    int *ids = NULL, m = 0;
    assert_int_equal(qs_tokenizer_encode_alloc(t, text, 0, 0, &ids, &m), QS_OK);
    assert_int_equal(m, n);
    for (int i = 0; i < n; i++) assert_int_equal(ids[i], want[i]);
    free(ids);
}

static void test_json_tiny(void **state) {
    (void)state;
    qs_tokenizer *t = parse(tiny_json, "{\"eos_token\":\"<e>\",\"add_eos_token\":true}");
    assert_string_equal(qs_tokenizer_kind_name(t), "bpe-bytelevel");
    assert_int_equal(qs_tokenizer_vocab_size(t), 7);
    assert_int_equal(qs_tokenizer_bos(t), -1);
    assert_int_equal(qs_tokenizer_eos(t), 6);
    assert_int_equal(qs_tokenizer_add_eos(t), 1);
    expect_ids(t, "ab ab", (int[]){3, 4}, 2);
    expect_ids(t, "ab<e> ab", (int[]){3, 6, 4}, 3);
    // NFKC: U+FB01 (the fi ligature) becomes "fi", which is not merged (no merge) -> unknown "f"
    int *ids = NULL, m = 0;
    assert_int_equal(qs_tokenizer_encode_alloc(t, "\xEF\xAC\x81", 0, 0, &ids, &m), QS_ERR_UNSUPPORTED);
    free(ids);
    // invalid UTF-8 names the byte offset
    assert_int_equal(qs_tokenizer_encode_alloc(t, "ab\xC3", 0, 0, &ids, &m), QS_ERR_FORMAT);
    assert_non_null(strstr(qstar_last_error(), "byte offset 2"));
    char out[64];
    assert_int_equal(qs_tokenizer_decode(t, (int[]){3, 6, 4}, 3, out, sizeof out), QS_OK);
    assert_string_equal(out, "ab ab"); // the special token gives no text
    assert_int_equal(qs_tokenizer_find(t, " ab"), 4); // by decoded text
    assert_int_equal(qs_tokenizer_find(t, "\xC4\xA0" "ab"), 4); // by vocabulary piece
    qs_tokenizer_free(t);
}

static void expect_parse_error(const char *json, const char *needle) {
    qs_tokenizer *t = NULL;
    qs_status st = qs_tokenizer_parse_json(&t, json, strlen(json), NULL, 0, "bad.json");
    assert_int_not_equal(st, QS_OK);
    assert_null(t);
    if (!strstr(qstar_last_error(), needle) || !strstr(qstar_last_error(), "bad.json"))
        fail_msg("error \"%s\" lacks \"%s\"", qstar_last_error(), needle);
}

static void test_json_errors(void **state) {
    (void)state;
    expect_parse_error("{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}", "model.type \"WordPiece\"");
    expect_parse_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}}}", "model.merges is missing");
    expect_parse_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a\"]}}", "model.merges[0]");
    expect_parse_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":2},\"merges\":[]}}", "id 2 but only 2 tokens");
    expect_parse_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1000000000},\"merges\":[]}}", "only 2 tokens");
    expect_parse_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":2,\"c\":2},\"merges\":[]}}", "id 2 is given to both");
    expect_parse_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}}", "id 0 is given to both");
    expect_parse_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1},\"merges\":[]}}", "not an integer in range");
    expect_parse_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a c\"]}}", "merges[0] \"a c\"");
    expect_parse_error("{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(a\"},\"behavior\":\"Isolated\"},"
                       "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}", "pre_tokenizer regex");
    expect_parse_error("{\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}",
                       "pre_tokenizer.type \"BertPreTokenizer\"");
    expect_parse_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}", "invalid JSON");
    expect_parse_error("{\"added_tokens\":[{\"id\":\"x\",\"content\":\"<e>\"}],\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}",
                       "added_tokens[0]");
    // every truncation of a valid file is an error, never a crash
    size_t n = strlen(tiny_json);
    for (size_t k = 0; k < n; k++) {
        qs_tokenizer *t = NULL;
        char *cut = malloc(k + 1);
        memcpy(cut, tiny_json, k);
        cut[k] = 0;
        assert_int_not_equal(qs_tokenizer_parse_json(&t, cut, k, NULL, 0, "cut.json"), QS_OK);
        free(cut);
    }
}

static void test_stream(void **state) {
    (void)state;
    // byte-level pieces that split U+00E9 (C3 A9) and U+1F999 (F0 9F A6 99) across tokens
    const char *json =
        "{\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false},\"decoder\":{\"type\":\"ByteLevel\"},"
        "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"\\u00c3\":1,\"\\u00a9\":2,\"\\u00f0\":3,\"\\u0141\":4,\"\\u00a6\":5,\"\\u013b\":6},\"merges\":[]}}";
    qs_tokenizer *t = parse(json, NULL);
    qs_tok_stream s;
    qs_tok_stream_init(&s, t);
    char out[80];
    size_t n = 0;
    const int ids[] = {0, 1, 2, 3, 4, 5, 6, 0};
    const char *want[] = {"a", "", "\xC3\xA9", "", "", "", "\xF0\x9F\xA6\x99", "a"};
    for (int i = 0; i < 8; i++) {
        assert_int_equal(qs_tok_stream_push(&s, ids[i], out, sizeof out, &n), QS_OK);
        assert_string_equal(out, want[i]);
    }
    // a lone lead byte then a non-continuation: U+FFFD, then the next char
    assert_int_equal(qs_tok_stream_push(&s, 1, out, sizeof out, &n), QS_OK);
    assert_string_equal(out, "");
    assert_int_equal(qs_tok_stream_push(&s, 0, out, sizeof out, &n), QS_OK);
    assert_string_equal(out, "\xEF\xBF\xBD" "a");
    // held bytes at the end flush as one U+FFFD; out-of-range ids give nothing
    assert_int_equal(qs_tok_stream_push(&s, 3, out, sizeof out, &n), QS_OK);
    assert_int_equal(qs_tok_stream_push(&s, 999, out, sizeof out, &n), QS_OK);
    assert_int_equal(qs_tok_stream_push(&s, -5, out, sizeof out, &n), QS_OK);
    assert_int_equal(qs_tok_stream_flush(&s, out, sizeof out, &n), QS_OK);
    assert_string_equal(out, "\xEF\xBF\xBD");
    // any id sequence is safe and yields valid UTF-8 only
    unsigned x = 12345;
    for (int i = 0; i < 2000; i++) {
        x = x * 1103515245u + 12345u;
        assert_int_equal(qs_tok_stream_push(&s, (int)(x >> 16) % 9 - 1, out, sizeof out, &n), QS_OK);
        assert_int_equal(qs_tok_utf8_check(out, n), QS_OK);
    }
    qs_tokenizer_free(t);
}

// A spec of kind SPM_SCORES made from a llama2.c file encodes like it.
static void test_spec_spm_matches_llama2c(void **state) {
    (void)state;
    char buf[4096];
    const char *path = tu_data_path("stories260K/tok512.bin", buf, sizeof buf);
    if (!path) skip();
    qs_tokenizer *a = NULL, *b = NULL;
    assert_int_equal(qs_tokenizer_load(&a, path, 512), QS_OK);
    qs_tok_spec s;
    qs_tok_spec_init(&s);
    s.kind = QS_TOK_SPM_SCORES;
    s.name = "spec";
    s.n_vocab = a->vocab_size;
    s.pieces = (const char *const *)a->pieces;
    s.piece_lens = a->lens;
    s.scores = a->scores;
    s.bos_id = 1;
    s.eos_id = 2;
    s.unk_id = 0;
    s.add_bos = 1;
    s.add_prefix_space = 1;
    assert_int_equal(qs_tokenizer_from_spec(&b, &s), QS_OK);
    assert_string_equal(qs_tokenizer_kind_name(b), "spm");
    const char *texts[] = {"Once upon a time, there was a girl.", "  two  spaces\nnewline", "caf\xC3\xA9 \xF0\x9F\xA6\x99", ""};
    for (int k = 0; k < 4; k++) {
        int ia[256], ib[256], na = 0, nb = 0;
        assert_int_equal(qs_tokenizer_encode(a, texts[k], 1, 1, ia, 256, &na), QS_OK);
        assert_int_equal(qs_tokenizer_encode(b, texts[k], 1, 1, ib, 256, &nb), QS_OK);
        assert_int_equal(na, nb);
        for (int i = 0; i < na; i++) assert_int_equal(ia[i], ib[i]);
        char da[512], db[512];
        assert_int_equal(qs_tokenizer_decode(a, ia, na, da, sizeof da), QS_OK);
        assert_int_equal(qs_tokenizer_decode(b, ib, nb, db, sizeof db), QS_OK);
        assert_string_equal(da, texts[k]);
        assert_string_equal(db, texts[k]);
    }
    // a spec with a bad id is an error naming the field
    qs_tokenizer_free(b);
    b = NULL;
    s.bos_id = 9999;
    assert_int_equal(qs_tokenizer_from_spec(&b, &s), QS_ERR_FORMAT);
    assert_non_null(strstr(qstar_last_error(), "bos token id 9999"));
    qs_tokenizer_free(a);
    qs_tokenizer_free(b);
}

static void test_pre_regex_names(void **state) {
    (void)state;
    int n = 0;
    const char *const *g = qs_tok_pre_regex("gpt2", &n);
    assert_int_equal(n, 1);
    assert_non_null(strstr(g[0], " ?\\p{N}+"));
    assert_non_null(strstr(qs_tok_pre_regex("llama-bpe", &n)[0], "\\p{N}{1,3}"));
    assert_non_null(strstr(qs_tok_pre_regex("qwen2", &n)[0], "(?i:'s"));
    assert_ptr_equal(qs_tok_pre_regex(NULL, &n), g);
}

// tokenizer.json of a directory is preferred; the hooks report "not supported" clearly.
static void test_open(void **state) {
    (void)state;
    char buf[4096], dir[4096];
    const char *path = tu_data_path("tokenizers/hf-json/qwen3/tokenizer.json", buf, sizeof buf);
    if (!path) skip();
    snprintf(dir, sizeof dir, "%.*s", (int)(strrchr(path, '/') - path), path);
    qs_tokenizer *t = NULL;
    assert_int_equal(qs_tokenizer_open(&t, dir, 0), QS_OK);
    assert_string_equal(qs_tokenizer_kind_name(t), "bpe-bytelevel");
    assert_int_equal(qs_tokenizer_bos(t), -1);            // Qwen3: no BOS
    assert_int_equal(qs_tokenizer_eos(t), 151645);        // <|im_end|> from tokenizer_config.json
    assert_int_equal(qs_tokenizer_find(t, "<|im_start|>"), 151644);
    int ids[8], n = 0;
    assert_int_equal(qs_tokenizer_encode(t, "Hello world", 1, 0, ids, 8, &n), QS_OK);
    assert_int_equal(n, 2); // bos requested but there is none
    assert_int_equal(ids[0], 9707);
    assert_int_equal(ids[1], 1879);
    assert_int_equal(qs_tokenizer_save(t, "/nonexistent/x.bin"), QS_ERR_UNSUPPORTED);
    qs_tokenizer_free(t);
    // tokenizer.model files are routed to the SentencePiece loader: a missing one is an I/O error
    assert_int_equal(qs_tokenizer_open(&t, "/nonexistent-dir/tokenizer.model", 0), QS_ERR_IO);
    assert_null(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_tiny),
        cmocka_unit_test(test_json_errors),
        cmocka_unit_test(test_stream),
        cmocka_unit_test(test_spec_spm_matches_llama2c),
        cmocka_unit_test(test_pre_regex_names),
        cmocka_unit_test(test_open),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

// test_spm.c: SentencePiece tokenizer.model files. A ModelProto built by hand
// byte by byte (with unknown fields of every wire type to skip and a negative
// varint) and one written by qs_tok_model_proto_build from a spec are parsed
// and encode/decode as SentencePiece does (merge order by score, dummy
// prefix, U+2581 = space, control pieces not matched, user-defined pieces
// whole, byte fallback, fused unk); every truncation of both fails cleanly;
// bad lengths, varints and wire types give errors naming the field; write ->
// parse -> write is byte-identical; the GGUF tokenizer from memory.
#include <stdint.h>

#include "testutil.h"
#include "tokenizer/tok_internal.h"
#include "tokenizer/tok_sources.h"

#define U2581 "\xE2\x96\x81"

// The hand-built model: <unk> <s> </s> ▁ h i hi ▁hi, BPE, identity,
// remove_extra_whitespaces false.
static const unsigned char hand[] = {
    0x0A, 9, 0x0A, 5, '<', 'u', 'n', 'k', '>', 0x18, 2,                   // pieces[0] <unk> UNKNOWN
    0x0A, 7, 0x0A, 3, '<', 's', '>', 0x18, 3,                             // pieces[1] <s> CONTROL
    0x0A, 8, 0x0A, 4, '<', '/', 's', '>', 0x18, 3,                        // pieces[2] </s> CONTROL
    0x0A, 10, 0x0A, 3, 0xE2, 0x96, 0x81, 0x15, 0x00, 0x00, 0x80, 0xBF,    // pieces[3] ▁ -1
    0x0A, 8, 0x0A, 1, 'h', 0x15, 0x00, 0x00, 0x00, 0xC0,                  // pieces[4] h -2
    0x0A, 8, 0x0A, 1, 'i', 0x15, 0x00, 0x00, 0x40, 0xC0,                  // pieces[5] i -3
    0x0A, 9, 0x0A, 2, 'h', 'i', 0x15, 0x00, 0x00, 0x00, 0xBF,             // pieces[6] hi -0.5
    0x0A, 12, 0x0A, 5, 0xE2, 0x96, 0x81, 'h', 'i', 0x15, 0x00, 0x00, 0x80, 0xBE, // pieces[7] ▁hi -0.25
    0x99, 0x06, 1, 2, 3, 4, 5, 6, 7, 8,                                   // unknown field 99, fixed64
    0x12, 19, 0x18, 2,                                                    // trainer_spec: model_type BPE
    0x3A, 3, 't', 'x', 't',                                               //   unknown string field 7
    0xD8, 0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, // pad_id -1 (10-byte varint)
    0x1A, 12, 0x0A, 8, 'i', 'd', 'e', 'n', 't', 'i', 't', 'y', 0x20, 0x00, // normalizer: identity, no ws removal
    0x25, 1, 2, 3, 4,                                                     // unknown field 4, fixed32
};

static qs_tokenizer *parse_ok(const unsigned char *buf, size_t n) {
    qs_tokenizer *t = NULL;
    qs_status st = qs_tokenizer_parse_model_proto(&t, buf, n, "mem.model");
    if (st != QS_OK) fail_msg("parse: %s", qstar_last_error());
    return t;
}

static void expect_ids(const qs_tokenizer *t, const char *text, const int *want, int n) {
    int *ids = NULL, m = 0;
    if (qs_tokenizer_encode_alloc(t, text, 0, 0, &ids, &m) != QS_OK) fail_msg("encode: %s", qstar_last_error());
    if (m != n) fail_msg("'%s': %d ids, want %d", text, m, n);
    for (int i = 0; i < n; i++) assert_int_equal(ids[i], want[i]);
    free(ids);
}

static void expect_text(const qs_tokenizer *t, const int *ids, int n, const char *want) {
    char out[256];
    assert_int_equal(qs_tokenizer_decode(t, ids, n, out, sizeof out), QS_OK);
    assert_string_equal(out, want);
}

static void test_hand_built(void **state) {
    (void)state;
    qs_tokenizer *t = parse_ok(hand, sizeof hand);
    assert_string_equal(qs_tokenizer_kind_name(t), "spm");
    assert_int_equal(qs_tokenizer_vocab_size(t), 8);
    assert_int_equal(qs_tokenizer_bos(t), 1);
    assert_int_equal(qs_tokenizer_eos(t), 2);
    expect_ids(t, "hi", (int[]){7}, 1);                       // h+i (-0.5) then ▁+hi (-0.25)
    expect_ids(t, "ih", (int[]){3, 5, 4}, 3);
    expect_ids(t, " hi  hi", (int[]){3, 7, 3, 7}, 4);          // spaces kept
    expect_ids(t, "hi" U2581 "hi", (int[]){7, 7}, 2);        // U+2581 is a space
    expect_ids(t, "", NULL, 0);
    expect_ids(t, "<s>", (int[]){3, 0}, 2);                   // control piece not matched; unknowns fused
    int ids[8], n = 0;
    assert_int_equal(qs_tokenizer_encode(t, "hi", 1, 1, ids, 8, &n), QS_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[2], 2);
    expect_text(t, (int[]){7}, 1, "hi");                      // the dummy prefix is stripped
    expect_text(t, (int[]){1, 7, 3, 7, 2}, 5, "hi  hi");
    qs_tokenizer_free(t);
}

// A model written from a spec: byte fallback for 'c', a user-defined piece,
// unk for the rest, remove_extra_whitespaces.
static const char *spec_pieces[] = {"<unk>", "<s>", "</s>", U2581, "a", "b", U2581 "a", "ab", U2581 "ab",
                                    "<0x63>", "[U]", U2581 U2581};
static const float spec_scores[] = {0, 0, 0, -5, -6, -7, -1, -2, -0.5f, 0, 0, -3};
static const int spec_types[] = {2, 3, 3, 1, 1, 1, 1, 1, 1, 6, 4, 1};

static void fill_spec(qs_tok_spec *s) {
    qs_tok_spec_init(s);
    s->kind = QS_TOK_SPM_SCORES;
    s->name = "spec";
    s->n_vocab = 12;
    s->pieces = spec_pieces;
    s->scores = spec_scores;
    s->types = spec_types;
    s->unk_id = 0;
    s->bos_id = 1;
    s->eos_id = 2;
    s->byte_fallback = 1;
    s->add_prefix_space = 1;
    s->remove_extra_whitespaces = 1;
}

static void test_written(void **state) {
    (void)state;
    qs_tok_spec s;
    fill_spec(&s);
    unsigned char *buf = NULL, *buf2 = NULL;
    size_t n = 0, n2 = 0;
    assert_int_equal(qs_tok_model_proto_build(&s, &buf, &n), QS_OK);
    qs_tokenizer *t = parse_ok(buf, n);
    expect_ids(t, "ab", (int[]){8}, 1);
    expect_ids(t, "ba", (int[]){3, 5, 4}, 3);
    expect_ids(t, "c", (int[]){3, 9}, 2);               // byte fallback
    expect_ids(t, "dd", (int[]){3, 0}, 2);              // no byte piece: one unk for the run
    expect_ids(t, "a[U]b", (int[]){6, 10, 5}, 3);       // user-defined piece whole, never merged
    expect_ids(t, "  a   b  ", (int[]){6, 3, 5}, 3);    // remove_extra_whitespaces
    expect_text(t, (int[]){6, 10, 5, 9}, 4, "a[U]bc");
    // parse(write(spec)) == spec: pieces (U+2581 held as ' '), scores, classes, ids, flags
    assert_int_equal(t->vocab_size, 12);
    for (int i = 0; i < 12; i++) {
        char want[16];
        size_t m = 0;
        for (const char *q = spec_pieces[i]; *q;)
            if (!strncmp(q, U2581, 3)) want[m++] = ' ', q += 3;
            else want[m++] = *q++;
        want[m] = 0;
        assert_string_equal(t->pieces[i], want);
        assert_true(t->scores[i] == spec_scores[i]);
        int cls = spec_types[i] == 1 ? QS_SPC_NORMAL : spec_types[i] == 4 ? QS_SPC_USER : QS_SPC_NOMERGE;
        assert_int_equal(t->sp_class[i], cls);
        assert_int_equal(qs_tokenizer_is_special(t, i), spec_types[i] == 3);
    }
    assert_int_equal(t->unk_id, 0);
    assert_int_equal(t->bos_id, 1);
    assert_int_equal(t->eos_id, 2);
    assert_int_equal(t->pad_id, -1);
    assert_int_equal(t->add_prefix_space, 1);
    assert_int_equal(t->sp_remove_ws, 1);
    assert_int_equal(t->byte_id[0x63], 9);
    // writing is deterministic
    assert_int_equal(qs_tok_model_proto_build(&s, &buf2, &n2), QS_OK);
    assert_int_equal(n, n2);
    assert_memory_equal(buf, buf2, n);
    qs_tokenizer_free(t);
    free(buf);
    free(buf2);
}

// A precompiled_charsmap built by hand: one rule "A" -> "a" in a darts-clone
// trie (root offset 1 -> unit 1^'A' = 64 with label 'A' and a leaf, offset 1 ->
// unit 65 holding value 0 = the offset of "a" in the strings).
static void test_charsmap(void **state) {
    (void)state;
    unsigned char cm[4 + 66 * 4 + 2] = {0};
    uint32_t units[66] = {0};
    units[0] = 1u << 10;
    units[64] = (1u << 10) | (1u << 8) | 'A';
    units[65] = 0x80000000u | 0;
    cm[0] = (66 * 4) & 0xFF;
    cm[1] = (66 * 4) >> 8;
    for (int i = 0; i < 66; i++)
        for (int k = 0; k < 4; k++) cm[4 + i * 4 + k] = (unsigned char)(units[i] >> (8 * k));
    cm[4 + 66 * 4] = 'a';
    qs_tok_spec s;
    fill_spec(&s);
    s.precompiled_charsmap = cm;
    s.precompiled_charsmap_len = sizeof cm;
    unsigned char *buf = NULL;
    size_t n = 0;
    assert_int_equal(qs_tok_model_proto_build(&s, &buf, &n), QS_OK);
    qs_tokenizer *t = parse_ok(buf, n); // written with the charsmap, read back
    expect_ids(t, "AB", (int[]){6, 0}, 2);      // "A" -> "a": ▁a, then B is unknown
    expect_ids(t, "aAb", (int[]){6, 7}, 2);    // ▁a + ab
    qs_tokenizer_free(t);
    // a trie that points outside itself is an error, not a read out of bounds
    cm[0] = 200;
    free(buf);
    assert_int_equal(qs_tok_model_proto_build(&s, &buf, &n), QS_OK);
    t = NULL;
    assert_int_equal(qs_tokenizer_parse_model_proto(&t, buf, n, "bad.model"), QS_ERR_FORMAT);
    assert_non_null(strstr(qstar_last_error(), "precompiled_charsmap"));
    free(buf);
}

// UNUSED pieces: merged into, then split back into the pair that formed them
// (the ids Python SentencePiece gives for this vocabulary).
static void test_unused(void **state) {
    (void)state;
    static const char *pieces[] = {"<unk>", U2581, "a", "b", "c", "ab", "abc", "bc", U2581 "a", "ca", "cab", U2581 "ab"};
    static const float scores[] = {0, -1, -2, -3, -4, -0.1f, -0.2f, -0.5f, -0.3f, -0.15f, -0.05f, -0.4f};
    static const int types[] = {2, 1, 1, 1, 1, 5, 1, 1, 1, 5, 1, 5};
    qs_tok_spec s;
    qs_tok_spec_init(&s);
    s.kind = QS_TOK_SPM_SCORES;
    s.name = "unused";
    s.n_vocab = 12;
    s.pieces = pieces;
    s.scores = scores;
    s.types = types;
    s.unk_id = 0;
    s.add_prefix_space = 1;
    qs_tokenizer *t = NULL;
    assert_int_equal(qs_tokenizer_from_spec(&t, &s), QS_OK);
    expect_ids(t, "abc", (int[]){1, 6}, 2);        // ab (unused) + c -> abc
    expect_ids(t, "ab", (int[]){1, 2, 3}, 3);      // ▁ab (unused) -> ▁ + ab -> ▁ a b
    expect_ids(t, "cab", (int[]){1, 10}, 2);
    expect_ids(t, "ca", (int[]){1, 4, 2}, 3);
    expect_ids(t, "cabc", (int[]){1, 10, 4}, 3);
    qs_tokenizer_free(t);
}

// Every proper prefix of a valid model either parses (it ended between two
// fields) or fails with a message naming the file; never a crash.
static void truncations(const unsigned char *buf, size_t n) {
    for (size_t k = 0; k < n; k++) {
        unsigned char *cut = malloc(k ? k : 1);
        memcpy(cut, buf, k);
        qs_tokenizer *t = NULL;
        qs_status st = qs_tokenizer_parse_model_proto(&t, cut, k, "cut.model");
        if (st == QS_OK) assert_non_null(t);
        else {
            assert_null(t);
            assert_non_null(strstr(qstar_last_error(), "cut.model"));
        }
        qs_tokenizer_free(t);
        free(cut);
    }
}

static void test_truncations(void **state) {
    (void)state;
    truncations(hand, sizeof hand);
    qs_tok_spec s;
    fill_spec(&s);
    unsigned char *buf = NULL;
    size_t n = 0;
    assert_int_equal(qs_tok_model_proto_build(&s, &buf, &n), QS_OK);
    truncations(buf, n);
    // a cut inside the last piece's string is an error naming that piece
    qs_tokenizer *t = NULL;
    assert_int_not_equal(qs_tokenizer_parse_model_proto(&t, hand, 80, "cut.model"), QS_OK);
    assert_non_null(strstr(qstar_last_error(), "pieces[7]"));
    free(buf);
}

static void expect_error(const unsigned char *buf, size_t n, qs_status want, const char *needle) {
    qs_tokenizer *t = NULL;
    qs_status st = qs_tokenizer_parse_model_proto(&t, buf, n, "bad.model");
    if (st != want || !strstr(qstar_last_error(), needle) || !strstr(qstar_last_error(), "bad.model"))
        fail_msg("status %d, error '%s', want %d and '%s'", st, qstar_last_error(), want, needle);
    assert_null(t);
}

static void test_errors(void **state) {
    (void)state;
    unsigned char b[sizeof hand];
    // pieces[1]'s length runs past the end
    memcpy(b, hand, sizeof hand);
    b[12] = 125;
    expect_error(b, sizeof hand, QS_ERR_FORMAT, "pieces[1]: length 125");
    // the piece string inside pieces[0] claims more bytes than its message has
    memcpy(b, hand, sizeof hand);
    b[3] = 9;
    expect_error(b, sizeof hand, QS_ERR_FORMAT, "pieces[0].piece: length 9");
    // score with the wrong wire type
    memcpy(b, hand, sizeof hand);
    b[37] = 0x10; // field 2 as a varint
    expect_error(b, sizeof hand, QS_ERR_FORMAT, "pieces[3].score has wire type 0");
    // a varint that never ends
    const unsigned char endless[] = {0x12, 0x0B, 0x18, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    expect_error(endless, sizeof endless, QS_ERR_FORMAT, "trainer_spec.model_type: varint");
    // int32 out of range
    const unsigned char big[] = {0x12, 0x06, 0x18, 0x80, 0x80, 0x80, 0x80, 0x10};
    expect_error(big, sizeof big, QS_ERR_FORMAT, "trainer_spec.model_type: value");
    // field number 0, group wire type
    expect_error((const unsigned char[]){0x02, 0x00}, 2, QS_ERR_FORMAT, "invalid field number 0");
    expect_error((const unsigned char[]){0x0B}, 1, QS_ERR_FORMAT, "wire type 3");
    // unsupported: UNIGRAM (the default); a broken charsmap, bad piece type, bad ids
    memcpy(b, hand, sizeof hand);
    b[100] = 1;
    expect_error(b, sizeof hand, QS_ERR_UNSUPPORTED, "trainer_spec.model_type 1 (UNIGRAM)");
    const unsigned char nfkc[] = {0x0A, 3, 0x0A, 1, 'a', 0x12, 2, 0x18, 2,
                                  0x1A, 14, 0x0A, 8, 'n', 'm', 't', '_', 'n', 'f', 'k', 'c', 0x12, 2, 1, 2};
    expect_error(nfkc, sizeof nfkc, QS_ERR_FORMAT, "normalizer_spec.precompiled_charsmap of 2 bytes is truncated");
    memcpy(b, hand, sizeof hand);
    b[10] = 9;
    expect_error(b, sizeof hand, QS_ERR_FORMAT, "pieces[0].type 9");
    const unsigned char bos[] = {0x0A, 3, 0x0A, 1, 'a', 0x12, 4, 0x18, 2, 0xC8, 0x02};
    expect_error(bos, sizeof bos, QS_ERR_FORMAT, "varint"); // bos_id's value is missing
    const unsigned char bos2[] = {0x0A, 3, 0x0A, 1, 'a', 0x12, 5, 0x18, 2, 0xC8, 0x02, 0x05};
    expect_error(bos2, sizeof bos2, QS_ERR_FORMAT, "trainer_spec.bos_id 5 is outside the 1 pieces");
    expect_error(NULL, 0, QS_ERR_FORMAT, "ModelProto.pieces is empty");
}

// The GGUF tokenizer from memory: a llama vocabulary through the shared file.
static void test_gguf_memory(void **state) {
    (void)state;
    char p[4096];
    const char *path = tu_data_path("tokenizers/llama-spm/ggml-vocab-llama-spm.gguf", p, sizeof p);
    if (!path) skip();
    unsigned char *buf = NULL;
    size_t n = 0;
    assert_int_equal(qs_tok_read_file(path, "gguf", &buf, &n), QS_OK);
    qs_tokenizer *t = NULL;
    assert_int_equal(qs_tokenizer_parse_gguf(&t, buf, n, path), QS_OK);
    expect_ids(t, "Hello world", (int[]){15043, 3186}, 2); // llama.cpp's expected ids
    qs_tokenizer_free(t);
    // truncated: an error, no tokenizer
    assert_int_not_equal(qs_tokenizer_parse_gguf(&t, buf, n / 2, "half.gguf"), QS_OK);
    assert_null(t);
    free(buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_built),
        cmocka_unit_test(test_written),
        cmocka_unit_test(test_charsmap),
        cmocka_unit_test(test_unused),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_gguf_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

// test_gguf.c: the GGUF parser, accessors, dequantisation and model loader.
// GGUF files are built in memory by a small writer below (v2 and v3, every
// metadata type, several tensor types); expected values are computed here
// from the format definitions, or come from the independent numpy reader
// (tests/reference/gguf_ref.py: quant.gguf + quant_expected.safetensors for
// Q4_0/Q4_K/Q6_K, llama2_tiny_logits.json for the shared tiny Llama GGUF).
#include "testutil.h"

#include <cjson/cJSON.h>
#include <unistd.h>

#include "io/gguf.h"
#include "io/model_io.h"
#include "io/safetensors.h"
#include "model/transformer.h"
#include "io/fileutil.h"

// ----------------------------------------------------------------------------- writer

typedef struct {
    uint8_t *b;
    size_t n, cap;
} wbuf;

static void put(wbuf *w, const void *p, size_t k) {
    if (w->n + k > w->cap) {
        w->cap = (w->n + k) * 2 + 64;
        w->b = realloc(w->b, w->cap);
        assert_non_null(w->b);
    }
    if (k) memcpy(w->b + w->n, p, k);
    w->n += k;
}
static void p8(wbuf *w, uint8_t v) { put(w, &v, 1); }
static void p16(wbuf *w, uint16_t v) { p8(w, (uint8_t)v); p8(w, (uint8_t)(v >> 8)); }
static void p32(wbuf *w, uint32_t v) { p16(w, (uint16_t)v); p16(w, (uint16_t)(v >> 16)); }
static void p64(wbuf *w, uint64_t v) { p32(w, (uint32_t)v); p32(w, (uint32_t)(v >> 32)); }
static void pstr(wbuf *w, const char *s) { p64(w, strlen(s)); put(w, s, strlen(s)); }
static void pf32(wbuf *w, float f) { uint32_t u; memcpy(&u, &f, 4); p32(w, u); }
static void pf64(wbuf *w, double f) { uint64_t u; memcpy(&u, &f, 8); p64(w, u); }

typedef struct {
    char name[64];
    int nd;
    uint64_t dims[4];
    uint32_t type;
    const void *data;
    size_t nbytes;
    size_t pos_dims, pos_type, pos_off; // byte positions in the built file
} wtensor;

typedef struct {
    uint32_t version, align;
    wbuf kv;
    uint64_t nkv;
    wtensor t[32];
    int nt;
} gbuild;

static void kv_key(gbuild *g, const char *key, uint32_t type) {
    pstr(&g->kv, key);
    p32(&g->kv, type);
    g->nkv++;
}
static void kv_u32(gbuild *g, const char *k, uint32_t v) { kv_key(g, k, QS_GGUF_U32); p32(&g->kv, v); }
static void kv_f32(gbuild *g, const char *k, float v) { kv_key(g, k, QS_GGUF_F32); pf32(&g->kv, v); }
static void kv_str(gbuild *g, const char *k, const char *v) { kv_key(g, k, QS_GGUF_STRING); pstr(&g->kv, v); }

static void add_tensor(gbuild *g, const char *name, int nd, const uint64_t *dims, uint32_t type, const void *data,
                       size_t nbytes) {
    wtensor *t = &g->t[g->nt++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->nd = nd;
    for (int d = 0; d < nd; d++) t->dims[d] = dims[d];
    t->type = type;
    t->data = data;
    t->nbytes = nbytes;
}

// Header, metadata, tensor infos, padding, data (each tensor aligned; no
// padding after the last one, so that every truncation cuts real data).
static void build(gbuild *g, wbuf *out) {
    out->n = 0;
    uint32_t al = g->align ? g->align : 32;
    put(out, "GGUF", 4);
    p32(out, g->version);
    p64(out, (uint64_t)g->nt);
    p64(out, g->nkv);
    put(out, g->kv.b, g->kv.n);
    uint64_t off = 0;
    for (int i = 0; i < g->nt; i++) {
        wtensor *t = &g->t[i];
        pstr(out, t->name);
        p32(out, (uint32_t)t->nd);
        t->pos_dims = out->n;
        for (int d = 0; d < t->nd; d++) p64(out, t->dims[d]);
        t->pos_type = out->n;
        p32(out, t->type);
        t->pos_off = out->n;
        p64(out, off);
        off += (t->nbytes + al - 1) / al * al;
    }
    while (out->n % al) p8(out, 0);
    for (int i = 0; i < g->nt; i++) {
        put(out, g->t[i].data, g->t[i].nbytes);
        if (i + 1 < g->nt)
            while ((out->n) % al) p8(out, 0);
    }
}

static void patch64(wbuf *w, size_t pos, uint64_t v) {
    for (int i = 0; i < 8; i++) w->b[pos + i] = (uint8_t)(v >> (8 * i));
}
static void patch32(wbuf *w, size_t pos, uint32_t v) {
    for (int i = 0; i < 4; i++) w->b[pos + i] = (uint8_t)(v >> (8 * i));
}

// ----------------------------------------------------------------------------- a file with everything

// F16 bit patterns and their exact values.
static const uint16_t H16[6] = {0x3c00, 0xc000, 0x3555, 0x0001, 0x7bff, 0x8000};
static const float H16V[6] = {1.0f, -2.0f, 0.333251953125f, 5.9604644775390625e-08f, 65504.0f, -0.0f};
static const float BF_VALS[4] = {1.5f, -0.15625f, 1.7014118346046923e38f, 7.0f}; // exactly representable in bf16

typedef struct {
    float f32[6];
    uint8_t f16[12], bf16[8], q8[2 * 34];
} payloads;

static void make_payloads(payloads *p) {
    for (int i = 0; i < 6; i++) p->f32[i] = (float)i * 0.25f - 1.0f;
    for (int i = 0; i < 6; i++) { p->f16[2 * i] = (uint8_t)H16[i]; p->f16[2 * i + 1] = (uint8_t)(H16[i] >> 8); }
    for (int i = 0; i < 4; i++) {
        uint32_t u;
        memcpy(&u, &BF_VALS[i], 4);
        p->bf16[2 * i] = (uint8_t)(u >> 16);
        p->bf16[2 * i + 1] = (uint8_t)(u >> 24);
    }
    // Q8_0: block 0 d = 0.5 (0x3800), block 1 d = -0.25 (0xb400); q = k*4 - 64 (wraps to int8)
    for (int b = 0; b < 2; b++) {
        uint16_t d = b ? 0xb400 : 0x3800;
        p->q8[34 * b] = (uint8_t)d;
        p->q8[34 * b + 1] = (uint8_t)(d >> 8);
        for (int k = 0; k < 32; k++) p->q8[34 * b + 2 + k] = (uint8_t)(int8_t)(k * 4 - 64 + b);
    }
}

static void everything(gbuild *g, uint32_t version, const payloads *p) {
    memset(g, 0, sizeof *g);
    g->version = version;
    kv_str(g, "general.architecture", "test");
    kv_key(g, "v.u8", QS_GGUF_U8); p8(&g->kv, 250);
    kv_key(g, "v.i8", QS_GGUF_I8); p8(&g->kv, (uint8_t)(int8_t)-7);
    kv_key(g, "v.u16", QS_GGUF_U16); p16(&g->kv, 65535);
    kv_key(g, "v.i16", QS_GGUF_I16); p16(&g->kv, (uint16_t)(int16_t)-300);
    kv_u32(g, "v.u32", 4000000000u);
    kv_key(g, "v.i32", QS_GGUF_I32); p32(&g->kv, (uint32_t)(int32_t)-5);
    kv_f32(g, "v.f32", 0.125f);
    kv_key(g, "v.bool", QS_GGUF_BOOL); p8(&g->kv, 1);
    kv_str(g, "v.str", "h\xc3\xa9llo");
    kv_key(g, "v.u64", QS_GGUF_U64); p64(&g->kv, 1ull << 40);
    kv_key(g, "v.i64", QS_GGUF_I64); p64(&g->kv, (uint64_t)(int64_t)-(1ll << 40));
    kv_key(g, "v.f64", QS_GGUF_F64); pf64(&g->kv, 1e-6);
    kv_key(g, "tokenizer.ggml.tokens", QS_GGUF_ARRAY); p32(&g->kv, QS_GGUF_STRING); p64(&g->kv, 3);
    pstr(&g->kv, "<unk>"); pstr(&g->kv, ""); pstr(&g->kv, "\xe2\x96\x81the");
    kv_key(g, "tokenizer.ggml.scores", QS_GGUF_ARRAY); p32(&g->kv, QS_GGUF_F32); p64(&g->kv, 3);
    pf32(&g->kv, 0.0f); pf32(&g->kv, -1.5f); pf32(&g->kv, -2.25f);
    kv_key(g, "tokenizer.ggml.token_type", QS_GGUF_ARRAY); p32(&g->kv, QS_GGUF_I32); p64(&g->kv, 3);
    p32(&g->kv, 2); p32(&g->kv, 1); p32(&g->kv, (uint32_t)-1);
    kv_key(g, "a.u8", QS_GGUF_ARRAY); p32(&g->kv, QS_GGUF_U8); p64(&g->kv, 2); p8(&g->kv, 0); p8(&g->kv, 255);
    kv_key(g, "a.i16", QS_GGUF_ARRAY); p32(&g->kv, QS_GGUF_I16); p64(&g->kv, 1); p16(&g->kv, 0x8000);
    kv_key(g, "a.u64", QS_GGUF_ARRAY); p32(&g->kv, QS_GGUF_U64); p64(&g->kv, 1); p64(&g->kv, 1ull << 33);
    kv_key(g, "a.f64", QS_GGUF_ARRAY); p32(&g->kv, QS_GGUF_F64); p64(&g->kv, 1); pf64(&g->kv, -0.5);
    kv_key(g, "a.bool", QS_GGUF_ARRAY); p32(&g->kv, QS_GGUF_BOOL); p64(&g->kv, 2); p8(&g->kv, 1); p8(&g->kv, 0);
    kv_key(g, "a.empty", QS_GGUF_ARRAY); p32(&g->kv, QS_GGUF_STRING); p64(&g->kv, 0);
    kv_key(g, "tokenizer.ggml.add_bos_token", QS_GGUF_BOOL); p8(&g->kv, 0);
    kv_u32(g, "tokenizer.ggml.bos_token_id", 1);
    uint64_t d23[2] = {3, 2}, d6[1] = {6}, d4[1] = {4}, dq[2] = {32, 2};
    add_tensor(g, "t.f32", 2, d23, QS_GGML_F32, p->f32, sizeof p->f32);
    add_tensor(g, "t.f16", 1, d6, QS_GGML_F16, p->f16, sizeof p->f16);
    add_tensor(g, "t.bf16", 1, d4, QS_GGML_BF16, p->bf16, sizeof p->bf16);
    add_tensor(g, "t.q8", 2, dq, QS_GGML_Q8_0, p->q8, sizeof p->q8);
}

static qs_gguf *parse_ok(const wbuf *w) {
    qs_gguf *g = NULL;
    qs_status st = qs_gguf_parse(w->b, w->n, "mem.gguf", &g);
    if (st != QS_OK) fail_msg("parse failed: %s", qstar_last_error());
    return g;
}

static void check_everything(const qs_gguf *g) {
    uint32_t u32;
    int32_t i32;
    int64_t i64;
    float f;
    int b;
    qs_gguf_str s;
    assert_int_equal(qs_gguf_get_u32(g, "v.u8", &u32), QS_OK); assert_int_equal(u32, 250);
    assert_int_equal(qs_gguf_get_i32(g, "v.i8", &i32), QS_OK); assert_int_equal(i32, -7);
    assert_int_equal(qs_gguf_get_u32(g, "v.u16", &u32), QS_OK); assert_int_equal(u32, 65535);
    assert_int_equal(qs_gguf_get_i32(g, "v.i16", &i32), QS_OK); assert_int_equal(i32, -300);
    assert_int_equal(qs_gguf_get_u32(g, "v.u32", &u32), QS_OK); assert_true(u32 == 4000000000u);
    assert_int_equal(qs_gguf_get_i32(g, "v.i32", &i32), QS_OK); assert_int_equal(i32, -5);
    assert_int_equal(qs_gguf_get_f32(g, "v.f32", &f), QS_OK); assert_true(f == 0.125f);
    assert_int_equal(qs_gguf_get_bool(g, "v.bool", &b), QS_OK); assert_int_equal(b, 1);
    assert_int_equal(qs_gguf_get_str(g, "v.str", &s), QS_OK);
    assert_int_equal(s.len, 6); assert_memory_equal(s.s, "h\xc3\xa9llo", 6);
    assert_int_equal(qs_gguf_get_i64(g, "v.u64", &i64), QS_OK); assert_true(i64 == 1ll << 40);
    assert_int_equal(qs_gguf_get_i64(g, "v.i64", &i64), QS_OK); assert_true(i64 == -(1ll << 40));
    assert_int_equal(qs_gguf_get_f32(g, "v.f64", &f), QS_OK); assert_true(f == 1e-6f);
    const qs_gguf_str *toks;
    size_t n;
    assert_int_equal(qs_gguf_get_arr_str(g, "tokenizer.ggml.tokens", &toks, &n), QS_OK);
    assert_int_equal(n, 3);
    assert_int_equal(toks[0].len, 5); assert_memory_equal(toks[0].s, "<unk>", 5);
    assert_int_equal(toks[1].len, 0);
    assert_int_equal(toks[2].len, 6); assert_memory_equal(toks[2].s, "\xe2\x96\x81the", 6);
    float *sc;
    assert_int_equal(qs_gguf_get_arr_f32(g, "tokenizer.ggml.scores", &sc, &n), QS_OK);
    assert_int_equal(n, 3); assert_true(sc[0] == 0.0f && sc[1] == -1.5f && sc[2] == -2.25f);
    free(sc);
    int32_t *tt;
    assert_int_equal(qs_gguf_get_arr_i32(g, "tokenizer.ggml.token_type", &tt, &n), QS_OK);
    assert_int_equal(n, 3); assert_true(tt[0] == 2 && tt[1] == 1 && tt[2] == -1);
    free(tt);
    assert_int_equal(qs_gguf_get_arr_i32(g, "a.u8", &tt, &n), QS_OK);
    assert_true(n == 2 && tt[0] == 0 && tt[1] == 255); free(tt);
    assert_int_equal(qs_gguf_get_arr_i32(g, "a.i16", &tt, &n), QS_OK);
    assert_true(n == 1 && tt[0] == -32768); free(tt);
    assert_int_equal(qs_gguf_get_arr_f32(g, "a.u64", &sc, &n), QS_OK);
    assert_true(n == 1 && sc[0] == 8589934592.0f); free(sc);
    assert_int_equal(qs_gguf_get_arr_f32(g, "a.f64", &sc, &n), QS_OK);
    assert_true(n == 1 && sc[0] == -0.5f); free(sc);
    assert_int_equal(qs_gguf_get_arr_i32(g, "a.bool", &tt, &n), QS_OK);
    assert_true(n == 2 && tt[0] == 1 && tt[1] == 0); free(tt);
    assert_int_equal(qs_gguf_get_arr_str(g, "a.empty", &toks, &n), QS_OK); assert_int_equal(n, 0);
    b = 7;
    assert_int_equal(qs_gguf_opt_bool(g, "tokenizer.ggml.add_eos_token", &b), QS_OK); assert_int_equal(b, 7);
    assert_int_equal(qs_gguf_opt_bool(g, "tokenizer.ggml.add_bos_token", &b), QS_OK); assert_int_equal(b, 0);
}

static void check_tensors(const qs_gguf *g, const payloads *p) {
    assert_int_equal(g->n_tensors, 4);
    assert_int_equal(g->alignment, 32);
    assert_int_equal(g->data_offset % 32, 0);
    float out[64];
    const qs_gguf_tensor *t = qs_gguf_find_tensor(g, "t.f32");
    assert_non_null(t);
    assert_true(t->n_dims == 2 && t->ne[0] == 3 && t->ne[1] == 2 && t->ne[2] == 1 && t->numel == 6);
    assert_int_equal(qs_gguf_tensor_f32(g, t, out), QS_OK);
    assert_memory_equal(out, p->f32, sizeof p->f32);
    t = qs_gguf_find_tensor(g, "t.f16");
    assert_int_equal(qs_gguf_tensor_f32(g, t, out), QS_OK);
    for (int i = 0; i < 6; i++) assert_true(out[i] == H16V[i] && signbit(out[i]) == signbit(H16V[i]));
    t = qs_gguf_find_tensor(g, "t.bf16");
    assert_int_equal(qs_gguf_tensor_f32(g, t, out), QS_OK);
    for (int i = 0; i < 4; i++) assert_true(out[i] == BF_VALS[i]);
    t = qs_gguf_find_tensor(g, "t.q8");
    assert_true(t->numel == 64 && t->nbytes == 68);
    assert_int_equal(qs_gguf_tensor_f32(g, t, out), QS_OK);
    for (int b = 0; b < 2; b++)
        for (int k = 0; k < 32; k++) {
            int q = (int8_t)(uint8_t)(k * 4 - 64 + b); // as stored
            float want = (b ? -0.25f : 0.5f) * (float)q;
            if (out[32 * b + k] != want) fail_msg("q8 [%d,%d] got %g want %g", b, k, out[32 * b + k], want);
        }
    assert_null(qs_gguf_find_tensor(g, "t.none"));
    assert_null(qs_gguf_find(g, "v.none"));
}

static void test_parse_v2_v3(void **state) {
    (void)state;
    payloads p;
    make_payloads(&p);
    for (uint32_t v = 2; v <= 3; v++) {
        gbuild gb;
        wbuf w = {0};
        everything(&gb, v, &p);
        build(&gb, &w);
        qs_gguf *g = parse_ok(&w);
        assert_int_equal(g->version, v);
        check_everything(g);
        check_tensors(g, &p);
        qs_gguf_free(g);
        free(w.b);
        free(gb.kv.b);
    }
}

// ----------------------------------------------------------------------------- bad inputs

// Parse must fail with FORMAT and a message naming the file and `field`.
static void expect_err(const wbuf *w, const char *field) {
    qs_gguf *g = (qs_gguf *)1;
    qs_status st = qs_gguf_parse(w->b, w->n, "mem.gguf", &g);
    const char *msg = qstar_last_error();
    if (getenv("QS_TEST_VERBOSE")) fprintf(stderr, "  [%s] %s\n", field, msg);
    if (st != QS_ERR_FORMAT || g != NULL) fail_msg("'%s': expected a FORMAT error, got %d", field, st);
    if (!strstr(msg, "mem.gguf") || !strstr(msg, field)) fail_msg("'%s' not named in: %s", field, msg);
    if (strchr(msg, '\n')) fail_msg("multi-line message: %s", msg);
}

static void test_truncations(void **state) {
    (void)state;
    payloads p;
    make_payloads(&p);
    gbuild gb;
    wbuf w = {0};
    everything(&gb, 3, &p);
    build(&gb, &w);
    for (size_t n = 0; n < w.n; n++) {
        qs_gguf *g = (qs_gguf *)1;
        // a copy of exactly n bytes, so that ASan sees any read past the end
        uint8_t *c = malloc(n ? n : 1);
        assert_non_null(c);
        memcpy(c, w.b, n);
        qs_status st = qs_gguf_parse(c, n, "cut.gguf", &g);
        if (st == QS_OK || g != NULL) fail_msg("a truncation to %zu of %zu bytes parsed", n, w.n);
        if (!strstr(qstar_last_error(), "cut.gguf")) fail_msg("truncation %zu: %s", n, qstar_last_error());
        free(c);
    }
    free(w.b);
    free(gb.kv.b);
}

static void test_lies(void **state) {
    (void)state;
    payloads p;
    make_payloads(&p);
    gbuild gb;
    wbuf w = {0}, c = {0};
    everything(&gb, 3, &p);
    build(&gb, &w);
    const wtensor *q8 = &gb.t[3];
#define MUT(code, field)                    \
    do {                                    \
        c.n = 0;                            \
        put(&c, w.b, w.n);                  \
        code;                               \
        expect_err(&c, field);              \
    } while (0)
    MUT(c.b[0] = 'X', "magic");
    MUT(patch32(&c, 4, 1), "version");
    MUT(patch32(&c, 4, 4), "version");
    MUT(patch64(&c, 8, 1ull << 40), "tensor count");
    MUT(patch64(&c, 8, 5), "tensor"); // one more tensor than written: its info reads the padding/data
    MUT(patch64(&c, 16, UINT64_MAX), "metadata count");
    MUT(patch64(&c, 24, 1ull << 50), "string length");          // first key
    MUT(patch64(&c, 24 + 8 + 20 + 4, 1000000), "string length"); // value of general.architecture
    MUT(patch32(&c, 24 + 8 + 20, 13), "unknown value type");
    MUT(patch64(&c, q8->pos_off, 1ull << 62), "offset");
    MUT(patch64(&c, q8->pos_off, 64 * 1024), "offset");
    MUT(patch64(&c, q8->pos_off, 33), "offset"); // not aligned
    MUT(patch32(&c, q8->pos_type, 99), "unknown tensor type");
    MUT(patch32(&c, q8->pos_type, 17), "unknown tensor type");
    MUT(patch64(&c, q8->pos_dims + 8, 1ull << 62), "dims overflow");
    MUT(patch64(&c, q8->pos_dims, 1ull << 63), "dims overflow");
    MUT(patch64(&c, q8->pos_dims, 31), "block size");
    MUT(patch32(&c, q8->pos_dims - 4, 5), "n_dims");
    MUT(patch32(&c, q8->pos_dims - 4, 0), "n_dims");
#undef MUT
    // duplicate tensor name, duplicate key, bool 2, nested array, bad alignment
    gbuild g2;
    wbuf w2 = {0};
    uint64_t d1[1] = {6};
    float six[6] = {0};
    const char *cases[] = {"dup tensor", "dup key", "bool", "nested", "align0", "align3", "aligntype", "nul"};
    const char *field[] = {"appears twice", "appears twice", "bool", "array element type", "general.alignment",
                           "general.alignment", "general.alignment", "NUL"};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        memset(&g2, 0, sizeof g2);
        g2.version = 3;
        kv_str(&g2, "a", "x");
        if (k == 1) kv_str(&g2, "a", "y");
        if (k == 2) { kv_key(&g2, "b", QS_GGUF_BOOL); p8(&g2.kv, 2); }
        if (k == 3) { kv_key(&g2, "n", QS_GGUF_ARRAY); p32(&g2.kv, QS_GGUF_ARRAY); p64(&g2.kv, 0); }
        if (k == 4) kv_u32(&g2, "general.alignment", 0);
        if (k == 5) kv_u32(&g2, "general.alignment", 3);
        if (k == 6) kv_str(&g2, "general.alignment", "32");
        if (k == 7) { pstr(&g2.kv, "ke"); g2.kv.b[g2.kv.n - 1] = 0; p32(&g2.kv, QS_GGUF_U8); p8(&g2.kv, 0); g2.nkv++; }
        add_tensor(&g2, "w", 1, d1, QS_GGML_F32, six, sizeof six);
        if (k == 0) add_tensor(&g2, "w", 1, d1, QS_GGML_F32, six, sizeof six);
        build(&g2, &w2);
        expect_err(&w2, field[k]);
        free(g2.kv.b);
    }
    free(w2.b);
    free(w.b);
    free(c.b);
    free(gb.kv.b);
}

static void test_accessor_errors(void **state) {
    (void)state;
    payloads p;
    make_payloads(&p);
    gbuild gb;
    wbuf w = {0};
    everything(&gb, 2, &p);
    build(&gb, &w);
    qs_gguf *g = parse_ok(&w);
    uint32_t u;
    int32_t i;
    float f;
    int b;
    qs_gguf_str s;
    const qs_gguf_str *arr;
    float *fa;
    size_t n;
    struct { qs_status st; const char *key; } r[] = {
        {qs_gguf_get_u32(g, "v.i8", &u), "v.i8"},             // negative
        {qs_gguf_get_i32(g, "v.u32", &i), "v.u32"},           // too large
        {qs_gguf_get_u32(g, "v.str", &u), "v.str"},           // wrong type
        {qs_gguf_get_u32(g, "v.f32", &u), "v.f32"},           // float is not an integer
        {qs_gguf_get_f32(g, "v.str", &f), "v.str"},
        {qs_gguf_get_bool(g, "v.u8", &b), "v.u8"},
        {qs_gguf_get_str(g, "v.u8", &s), "v.u8"},
        {qs_gguf_get_str(g, "missing.key", &s), "missing.key"},
        {qs_gguf_get_arr_str(g, "tokenizer.ggml.scores", &arr, &n), "tokenizer.ggml.scores"},
        {qs_gguf_get_arr_f32(g, "tokenizer.ggml.tokens", &fa, &n), "tokenizer.ggml.tokens"},
        {qs_gguf_get_arr_f32(g, "v.u8", &fa, &n), "v.u8"},
        {qs_gguf_opt_u32(g, "v.str", &u), "v.str"},
    };
    // each call above set the message of its own failure; re-run to read them one by one
    for (size_t k = 0; k < sizeof r / sizeof *r; k++) assert_int_not_equal(r[k].st, QS_OK);
    assert_int_not_equal(qs_gguf_get_u32(g, "v.i8", &u), QS_OK);
    assert_non_null(strstr(qstar_last_error(), "mem.gguf"));
    assert_non_null(strstr(qstar_last_error(), "'v.i8'"));
    assert_int_not_equal(qs_gguf_get_arr_str(g, "tokenizer.ggml.scores", &arr, &n), QS_OK);
    assert_non_null(strstr(qstar_last_error(), "'tokenizer.ggml.scores'"));
    assert_int_not_equal(qs_gguf_get_str(g, "missing.key", &s), QS_OK);
    assert_non_null(strstr(qstar_last_error(), "missing"));
    // tensors of a type the parser knows but qstar cannot dequantise
    qs_gguf_tensor t = *qs_gguf_find_tensor(g, "t.q8");
    t.type = QS_GGML_Q5_1;
    float out[64];
    assert_int_equal(qs_gguf_tensor_f32(g, &t, out), QS_ERR_UNSUPPORTED);
    assert_non_null(strstr(qstar_last_error(), "Q5_1"));
    qs_gguf_free(g);
    free(w.b);
    free(gb.kv.b);
}

// ----------------------------------------------------------------------------- quantised blocks vs numpy

static void fixture_path(char *buf, size_t n, const char *name) {
    const char *e = getenv("QSTAR_FIXTURES");
    snprintf(buf, n, "%s/gguf/%s", e && *e ? e : "tests/fixtures", name);
}

static void test_quant_fixture(void **state) {
    (void)state;
    char gp[1024], ep[1024];
    fixture_path(gp, sizeof gp, "quant.gguf");
    fixture_path(ep, sizeof ep, "quant_expected.safetensors");
    qs_gguf *g;
    if (qs_gguf_open(gp, &g) != QS_OK) fail_msg("%s", qstar_last_error());
    assert_int_equal(g->version, 2);
    assert_int_equal(g->alignment, 64);
    int64_t v;
    float f;
    assert_int_equal(qs_gguf_get_i64(g, "t.u64", &v), QS_ERR_FORMAT); // 2^63 + 5 does not fit
    assert_int_equal(qs_gguf_get_i64(g, "t.i64", &v), QS_OK); assert_true(v == -(1ll << 62));
    assert_int_equal(qs_gguf_get_f32(g, "t.f64", &f), QS_OK); assert_true(f == -2.25f);
    const qs_gguf_str *s;
    size_t n;
    assert_int_equal(qs_gguf_get_arr_str(g, "t.strs", &s, &n), QS_OK);
    assert_true(n == 3 && s[2].len == 6 && !memcmp(s[2].s, "h\xc3\xa9llo", 6));
    qs_safetensors st;
    if (qs_st_open(&st, ep) != QS_OK) fail_msg("%s", qstar_last_error());
    int checked = 0;
    for (int i = 0; i < st.n; i++) {
        const qs_gguf_tensor *t = qs_gguf_find_tensor(g, st.t[i].name);
        assert_non_null(t);
        assert_int_equal(t->numel, st.t[i].numel);
        float *a = malloc(t->numel * sizeof *a), *ref = malloc(t->numel * sizeof *ref);
        assert_true(a && ref);
        assert_int_equal(qs_st_read_f32(&st, &st.t[i], ref), QS_OK);
        if (qs_gguf_tensor_f32(g, t, a) != QS_OK) fail_msg("%s", qstar_last_error());
        tu_assert_close(st.t[i].name, a, ref, t->numel, 0.0, 1e-6);
        fprintf(stderr, "  %s (%s, %llu elements): matches numpy\n", st.t[i].name, qs_ggml_type_name(t->type),
                (unsigned long long)t->numel);
        free(a);
        free(ref);
        checked++;
    }
    assert_int_equal(checked, 7);
    qs_st_close(&st);
    qs_gguf_free(g);
}

// ----------------------------------------------------------------------------- model loading

static char g_tmp[256];

static const char *write_tmp(const wbuf *w) {
    const char *d = getenv("TMPDIR");
    snprintf(g_tmp, sizeof g_tmp, "%s/qs_gguf_XXXXXX", d && *d ? d : "/tmp");
    int fd = mkstemp(g_tmp);
    assert_true(fd >= 0);
    assert_true(write(fd, w->b, w->n) == (ssize_t)w->n);
    close(fd);
    return g_tmp;
}

// A tiny Llama: dim 32, 4 heads, 2 kv heads (hd 8), ffn 32, vocab 16, tied,
// Q8_0 matrices with q = (seed + k) pattern, F32 norms.
enum { TD = 32, TV = 16 };
typedef struct {
    uint8_t emb[TV * 34], q[TD * 34], k[16 * 34], v[16 * 34], o[TD * 34], gate[TD * 34], up[TD * 34], down[TD * 34];
    float n1[TD], n2[TD], nf[TD], bq[TD], bk[16], bv[16];
} tiny_w;

static void q8_rows(uint8_t *b, int rows, int seed) {
    for (int r = 0; r < rows; r++) {
        uint8_t *blk = b + 34 * r;
        blk[0] = 0x00; blk[1] = 0x24; // d = 2^-6 (0x2400)
        for (int k = 0; k < 32; k++) blk[2 + k] = (uint8_t)(int8_t)((r * 7 + k * 3 + seed) % 61 - 30);
    }
}

static void tiny_llama(gbuild *g, tiny_w *w, const char *arch) {
    memset(g, 0, sizeof *g);
    g->version = 3;
    kv_str(g, "general.architecture", arch);
    const char *pre = strcmp(arch, "qwen2") ? "llama" : "qwen2";
    char k[128];
#define AK(s) (snprintf(k, sizeof k, "%s.%s", pre, s), k)
    kv_u32(g, AK("context_length"), 64);
    kv_u32(g, AK("embedding_length"), TD);
    kv_u32(g, AK("block_count"), 1);
    kv_u32(g, AK("feed_forward_length"), TD);
    kv_u32(g, AK("attention.head_count"), 4);
    kv_u32(g, AK("attention.head_count_kv"), 2);
    kv_u32(g, AK("rope.dimension_count"), 8);
    kv_f32(g, AK("attention.layer_norm_rms_epsilon"), 1e-6f);
    kv_f32(g, AK("rope.freq_base"), 5000.0f);
#undef AK
    q8_rows(w->emb, TV, 1); q8_rows(w->q, TD, 2); q8_rows(w->k, 16, 3); q8_rows(w->v, 16, 4);
    q8_rows(w->o, TD, 5); q8_rows(w->gate, TD, 6); q8_rows(w->up, TD, 7); q8_rows(w->down, TD, 8);
    for (int i = 0; i < TD; i++) { w->n1[i] = 1.0f + i * 0.01f; w->n2[i] = 0.5f; w->nf[i] = 2.0f - i * 0.01f; }
    uint64_t de[2] = {TD, TV}, dm[2] = {TD, TD}, dk[2] = {TD, 16}, dn[1] = {TD};
    add_tensor(g, "token_embd.weight", 2, de, QS_GGML_Q8_0, w->emb, sizeof w->emb);
    add_tensor(g, "blk.0.attn_norm.weight", 1, dn, QS_GGML_F32, w->n1, sizeof w->n1);
    add_tensor(g, "blk.0.attn_q.weight", 2, dm, QS_GGML_Q8_0, w->q, sizeof w->q);
    add_tensor(g, "blk.0.attn_k.weight", 2, dk, QS_GGML_Q8_0, w->k, sizeof w->k);
    add_tensor(g, "blk.0.attn_v.weight", 2, dk, QS_GGML_Q8_0, w->v, sizeof w->v);
    add_tensor(g, "blk.0.attn_output.weight", 2, dm, QS_GGML_Q8_0, w->o, sizeof w->o);
    add_tensor(g, "blk.0.ffn_norm.weight", 1, dn, QS_GGML_F32, w->n2, sizeof w->n2);
    add_tensor(g, "blk.0.ffn_gate.weight", 2, dm, QS_GGML_Q8_0, w->gate, sizeof w->gate);
    add_tensor(g, "blk.0.ffn_up.weight", 2, dm, QS_GGML_Q8_0, w->up, sizeof w->up);
    add_tensor(g, "blk.0.ffn_down.weight", 2, dm, QS_GGML_Q8_0, w->down, sizeof w->down);
    add_tensor(g, "output_norm.weight", 1, dn, QS_GGML_F32, w->nf, sizeof w->nf);
    if (strcmp(arch, "qwen2")) return;
    uint64_t dkb[1] = {16};
    for (int i = 0; i < TD; i++) w->bq[i] = 0.1f * (float)i - 1.0f;
    for (int i = 0; i < 16; i++) w->bk[i] = 0.05f * (float)i, w->bv[i] = -0.25f * (float)i;
    add_tensor(g, "blk.0.attn_q.bias", 1, dn, QS_GGML_F32, w->bq, sizeof w->bq);
    add_tensor(g, "blk.0.attn_k.bias", 1, dkb, QS_GGML_F32, w->bk, sizeof w->bk);
    add_tensor(g, "blk.0.attn_v.bias", 1, dkb, QS_GGML_F32, w->bv, sizeof w->bv);
}

static float q8_val(const uint8_t *b, int row, int col) {
    return (1.0f / 64.0f) * (float)(int8_t)b[34 * row + 2 + col];
}

static void test_model_load(void **state) {
    (void)state;
    gbuild gb;
    static tiny_w tw;
    wbuf w = {0};
    tiny_llama(&gb, &tw, "llama");
    build(&gb, &w);
    const char *path = write_tmp(&w);
    qs_model m;
    qs_load_info info;
    if (qs_model_load(&m, path, &info) != QS_OK) fail_msg("%s", qstar_last_error());
    const qs_config *c = &m.cfg;
    assert_true(c->arch == QS_ARCH_LLAMA && c->dim == TD && c->n_heads == 4 && c->n_kv_heads == 2 && c->head_dim == 8);
    assert_true(c->hidden_dim == TD && c->vocab_size == TV && c->max_seq_len == 64 && c->tied_embeddings);
    assert_true(c->rope_theta == 5000.0f && c->norm_eps == 1e-6f && !c->qkv_bias);
    assert_string_equal(info.tokenizer_path, path);
    // HF row h*hd + i*hd/2 + j holds the GGUF row h*hd + 2j + i (llama.cpp's permute undone)
    for (int which = 0; which < 2; which++) {
        const uint8_t *src = which ? tw.k : tw.q;
        const float *dst = which ? m.w.layer[0].wk : m.w.layer[0].wq;
        int nh = which ? 2 : 4;
        for (int h = 0; h < nh; h++)
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 4; j++)
                    for (int col = 0; col < TD; col++)
                        assert_true(dst[(h * 8 + i * 4 + j) * TD + col] == q8_val(src, h * 8 + 2 * j + i, col));
    }
    for (int r = 0; r < TD; r++)
        for (int col = 0; col < TD; col++) assert_true(m.w.layer[0].wv[r % 16 * TD + col] == q8_val(tw.v, r % 16, col));
    assert_true(m.w.embed[5 * TD + 7] == q8_val(tw.emb, 5, 7));
    assert_true(m.w.lm_head == m.w.embed);
    assert_true(m.w.final_norm[3] == tw.nf[3]);
    qs_model_free(&m);
    qs_load_info_free(&info);
    unlink(path);
    free(w.b);
    free(gb.kv.b);
}

// qwen2: rotate-half RoPE in llama.cpp too, so q/k rows are NOT permuted; q/k/v biases.
static void test_model_qwen2(void **state) {
    (void)state;
    gbuild gb;
    static tiny_w tw;
    wbuf w = {0};
    tiny_llama(&gb, &tw, "qwen2");
    build(&gb, &w);
    const char *path = write_tmp(&w);
    qs_model m;
    if (qs_model_load(&m, path, NULL) != QS_OK) fail_msg("%s", qstar_last_error());
    assert_true(m.cfg.arch == QS_ARCH_QWEN2 && m.cfg.qkv_bias && m.cfg.n_kv_heads == 2 && m.cfg.rope_theta == 5000.0f);
    for (int r = 0; r < TD; r++)
        for (int col = 0; col < TD; col++) assert_true(m.w.layer[0].wq[r * TD + col] == q8_val(tw.q, r, col));
    for (int r = 0; r < 16; r++)
        for (int col = 0; col < TD; col++) assert_true(m.w.layer[0].wk[r * TD + col] == q8_val(tw.k, r, col));
    assert_memory_equal(m.w.layer[0].bq, tw.bq, sizeof tw.bq);
    assert_memory_equal(m.w.layer[0].bk, tw.bk, sizeof tw.bk);
    assert_memory_equal(m.w.layer[0].bv, tw.bv, sizeof tw.bv);
    qs_model_free(&m);
    unlink(path);
    free(w.b);
    free(gb.kv.b);
}

// Model-level errors: each a one-line message naming the file and the key/tensor.
static void test_model_errors(void **state) {
    (void)state;
    static tiny_w tw;
    struct { const char *arch; int drop, bad_shape, bad_type; const char *want; qs_status st; } cases[] = {
        {"gpt-neox", 0, 0, 0, "gpt-neox", QS_ERR_UNSUPPORTED},
        {"llama", 10, 0, 0, "'blk.0.ffn_down.weight' is missing", QS_ERR_FORMAT},
        {"llama", 0, 1, 0, "'blk.0.attn_k.weight' has dims", QS_ERR_FORMAT},
        {"llama", 0, 0, 1, "Q5_0", QS_ERR_UNSUPPORTED},
        {"llama", -1, 0, 0, "llama.block_count", QS_ERR_FORMAT},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        gbuild gb;
        wbuf w = {0};
        tiny_llama(&gb, &tw, cases[k].arch);
        if (cases[k].drop > 0) gb.nt--; // ffn_down is the 10th tensor: move output_norm over it
        if (cases[k].drop > 0) gb.t[9] = gb.t[10];
        if (cases[k].bad_shape) gb.t[3].dims[1] = 32;                     // k rows: 32 instead of 16
        if (cases[k].bad_shape) gb.t[3].nbytes = sizeof tw.q, gb.t[3].data = tw.q;
        if (cases[k].bad_type) gb.t[7].type = QS_GGML_Q5_0, gb.t[7].nbytes = TD * 22; // ffn_gate as Q5_0
        if (cases[k].drop < 0) { // rebuild the metadata without block_count
            gbuild g2 = gb;
            memset(&g2.kv, 0, sizeof g2.kv);
            g2.nkv = 0;
            kv_str(&g2, "general.architecture", "llama");
            kv_u32(&g2, "llama.embedding_length", TD);
            kv_u32(&g2, "llama.feed_forward_length", TD);
            free(gb.kv.b);
            gb = g2;
        }
        build(&gb, &w);
        const char *path = write_tmp(&w);
        qs_model m;
        qs_status st = qs_model_load(&m, path, NULL);
        const char *msg = qstar_last_error();
        if (getenv("QS_TEST_VERBOSE")) fprintf(stderr, "  %s\n", msg);
        if (st != cases[k].st || !strstr(msg, path) || !strstr(msg, cases[k].want))
            fail_msg("case %zu: status %d, message '%s' (want '%s')", k, st, msg, cases[k].want);
        unlink(path);
        free(w.b);
        free(gb.kv.b);
    }
}

// ----------------------------------------------------------------------------- the shared tiny Llama-2 GGUF

static double jnum(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

static void test_real_gguf_logits(void **state) {
    (void)state;
    char buf[1024], fx[1024];
    const char *path = tu_data_path("models/llama2-tiny-random/llama-2-tiny-random.gguf", buf, sizeof buf);
    if (!path) { skip(); return; }
    const char *e = getenv("QSTAR_GGUF_LOGITS"); // a fresh reference output (tests/cli/gguf.sh)
    if (e && *e) snprintf(fx, sizeof fx, "%s", e);
    else fixture_path(fx, sizeof fx, "llama2_tiny_logits.json");
    unsigned char *js;
    size_t jn;
    if (qs_read_file(fx, &js, &jn) != QS_OK) fail_msg("%s", qstar_last_error());
    cJSON *root = cJSON_Parse((const char *)js);
    free(js);
    assert_non_null(root);
    qs_model m;
    qs_load_info info;
    if (qs_model_load(&m, path, &info) != QS_OK) fail_msg("%s", qstar_last_error());
    assert_true(m.cfg.dim == 8 && m.cfg.n_layers == 1 && m.cfg.vocab_size == 32000 && !m.cfg.tied_embeddings);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(root, "ids");
    const cJSON *probe = cJSON_GetObjectItemCaseSensitive(root, "probe_ids");
    const cJSON *pos = cJSON_GetObjectItemCaseSensitive(root, "positions");
    int T = cJSON_GetArraySize(ids), V = m.cfg.vocab_size, np = cJSON_GetArraySize(probe);
    assert_true(T > 0 && T <= 64 && cJSON_GetArraySize(pos) == T && (int)jnum(root, "vocab") == V);
    int tok[64];
    for (int i = 0; i < T; i++) tok[i] = cJSON_GetArrayItem(ids, i)->valueint;
    qs_workspace *ws;
    assert_int_equal(qs_workspace_create(&ws, &m.cfg, 1, T, 1), QS_OK);
    float *lg = malloc((size_t)T * V * sizeof *lg), loss;
    assert_non_null(lg);
    if (qs_lm_step(&m, ws, tok, NULL, 1, T, &loss, lg, NULL, 1.0f, NULL) != QS_OK) fail_msg("%s", qstar_last_error());
    double worst = 0;
    for (int i = 0; i < T; i++) {
        const cJSON *p = cJSON_GetArrayItem(pos, i);
        const float *row = lg + (size_t)i * V;
        double mx = row[0], sum = 0, sq = 0, se = 0;
        int am = 0;
        for (int v = 0; v < V; v++) {
            if (row[v] > mx) { mx = row[v]; am = v; }
            sum += row[v];
            sq += (double)row[v] * row[v];
        }
        for (int v = 0; v < V; v++) se += exp(row[v] - mx);
        double lse = mx + log(se);
        assert_int_equal(am, (int)jnum(p, "argmax"));
        const double got[3] = {lse, sum, sq}, want[3] = {jnum(p, "lse"), jnum(p, "sum"), jnum(p, "sumsq")};
        for (int k = 0; k < 3; k++) {
            double err = fabs(got[k] - want[k]), tol = 1e-5 + 1e-4 * fabs(want[k]);
            if (err > tol) fail_msg("position %d: statistic %d got %.9g want %.9g", i, k, got[k], want[k]);
        }
        const cJSON *pv = cJSON_GetObjectItemCaseSensitive(p, "probe");
        for (int k = 0; k < np; k++) {
            double want_v = cJSON_GetArrayItem(pv, k)->valuedouble;
            double got_v = row[cJSON_GetArrayItem(probe, k)->valueint];
            double err = fabs(got_v - want_v);
            if (err > 1e-6 + 1e-4 * fabs(want_v)) fail_msg("position %d probe %d: got %.9g want %.9g", i, k, got_v, want_v);
            if (err > worst) worst = err;
        }
    }
    fprintf(stderr, "  %s: %d positions x %d probed logits + argmax/logsumexp/sum/sumsq match the reference "
                    "(max |diff| %.3g) [%s]\n", path, T, np, worst, fx);
    free(lg);
    qs_workspace_free(ws);
    cJSON_Delete(root);
    qs_model_free(&m);
    qs_load_info_free(&info);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_v2_v3),     cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_lies),            cmocka_unit_test(test_accessor_errors),
        cmocka_unit_test(test_quant_fixture),   cmocka_unit_test(test_model_load),
        cmocka_unit_test(test_model_errors),    cmocka_unit_test(test_model_qwen2),
        cmocka_unit_test(test_real_gguf_logits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

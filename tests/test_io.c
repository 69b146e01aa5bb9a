// test_io.c: safetensors reader/writer (round trips, F16/BF16/F64 conversion,
// malformed files), HF config.json, llama2.c checkpoints (stories260K when
// $QSTAR_DATA has it) and model directories. Files are made in a temp dir.
#include "testutil.h"

#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/qs.h"
#include "io/model_io.h"
#include "io/safetensors.h"
#include "io/fileutil.h"

static char g_dir[256];

static void rm_rf(const char *p) {
    struct stat sb;
    if (lstat(p, &sb) != 0) return;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(p);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char q[1024];
            snprintf(q, sizeof q, "%s/%s", p, e->d_name);
            rm_rf(q);
        }
        if (d) closedir(d);
        rmdir(p);
    } else {
        unlink(p);
    }
}

static int setup(void **state) {
    (void)state;
    const char *t = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/qstar_test_io_XXXXXX", t && *t ? t : "/tmp");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    rm_rf(g_dir);
    return 0;
}

static const char *tmp(const char *name) {
    static char buf[16][512];
    static int k;
    char *b = buf[k++ & 15]; // a few stay valid at once
    snprintf(b, 512, "%s/%s", g_dir, name);
    return b;
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static void write_text(const char *path, const char *s) { write_bytes(path, s, strlen(s)); }

// A safetensors file from a header text and a data section.
static void write_st(const char *path, const char *hdr, const void *data, size_t n) {
    size_t h = strlen(hdr);
    unsigned char *b = malloc(8 + h + n + 1);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(b + 8, hdr, h);
    if (n) memcpy(b + 8 + h, data, n);
    write_bytes(path, b, 8 + h + n);
    free(b);
}

// The status is `want` and the message names every given string.
static void expect_err(qs_status got, qs_status want, const char *s1, const char *s2) {
    const char *msg = qstar_last_error();
    if (getenv("QSTAR_TEST_VERBOSE")) fprintf(stderr, "  [%s] %s\n", qstar_status_name(got), msg);
    if (got != want || (s1 && !strstr(msg, s1)) || (s2 && !strstr(msg, s2)))
        fail_msg("got status %d (want %d), message \"%s\" (want it to name '%s' and '%s')", got, want, msg,
                 s1 ? s1 : "", s2 ? s2 : "");
}

// ---- safetensors ----

static void test_st_roundtrip(void **state) {
    (void)state;
    float f[6] = {1.5f, -2.25f, 3e-8f, 1e30f, -0.0f, 7.0f};
    int32_t i32[4] = {0, -1, 2147483647, -2147483647 - 1};
    int64_t i64[4] = {5, -6, 2147483647, -2147483648LL};
    float scalar = 42.0f;
    int64_t s23[2] = {2, 3}, s4[1] = {4}, s22[2] = {2, 2}, s03[2] = {0, 3};
    qs_st_writer w = {0};
    assert_int_equal(qs_st_writer_add(&w, "w.f32", QS_DT_F32, 2, s23, f), QS_OK);
    assert_int_equal(qs_st_writer_add(&w, "ids\"quoted\\", QS_DT_I32, 1, s4, i32), QS_OK);
    assert_int_equal(qs_st_writer_add(&w, "big", QS_DT_I64, 2, s22, i64), QS_OK);
    assert_int_equal(qs_st_writer_add(&w, "scalar", QS_DT_F32, 0, NULL, &scalar), QS_OK);
    assert_int_equal(qs_st_writer_add(&w, "empty", QS_DT_F32, 2, s03, NULL), QS_OK);
    expect_err(qs_st_writer_add(&w, "big", QS_DT_F32, 1, s4, f), QS_ERR_ARG, "big", NULL);
    const char *p = tmp("rt.safetensors");
    assert_int_equal(qs_st_writer_write(&w, p), QS_OK);
    qs_st_writer_free(&w);
    assert_int_equal(access(tmp("rt.safetensors.tmp"), F_OK), -1); // temp file renamed away

    qs_safetensors st;
    assert_int_equal(qs_st_open(&st, p), QS_OK);
    assert_int_equal(st.n, 5);
    assert_int_equal((st.file_len - st.data_len) % 8, 0); // data section 8-byte aligned
    const qs_st_tensor *t = qs_st_find(&st, "w.f32");
    assert_non_null(t);
    assert_int_equal(t->dtype, QS_DT_F32);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 2);
    assert_int_equal(t->shape[1], 3);
    float fo[6];
    assert_int_equal(qs_st_read_f32(&st, t, fo), QS_OK);
    assert_memory_equal(fo, f, sizeof f);
    int32_t io[4];
    t = qs_st_find(&st, "ids\"quoted\\");
    assert_non_null(t);
    assert_int_equal(t->dtype, QS_DT_I32);
    assert_int_equal(qs_st_read_i32(&st, t, io), QS_OK);
    assert_memory_equal(io, i32, sizeof i32);
    expect_err(qs_st_read_f32(&st, t, fo), QS_ERR_FORMAT, "rt.safetensors", "ids");
    t = qs_st_find(&st, "big");
    assert_int_equal(t->dtype, QS_DT_I64);
    assert_int_equal(qs_st_read_i32(&st, t, io), QS_OK);
    for (int i = 0; i < 4; i++) assert_int_equal(io[i], i64[i]);
    t = qs_st_find(&st, "scalar");
    assert_int_equal(t->ndim, 0);
    assert_int_equal(t->numel, 1);
    assert_int_equal(qs_st_read_f32(&st, t, fo), QS_OK);
    assert_true(fo[0] == 42.0f);
    t = qs_st_find(&st, "empty");
    assert_int_equal(t->numel, 0);
    assert_null(qs_st_find(&st, "absent"));
    qs_st_close(&st);
}

static void test_st_conversions(void **state) {
    (void)state;
    // F16: 1, -2, 0.5, 65504, 2^-24 (subnormal), inf; BF16: 1, -3, 0.15625; F64: 1.5, -0.25; I64 out of int32
    uint16_t h[6] = {0x3C00, 0xC000, 0x3800, 0x7BFF, 0x0001, 0x7C00};
    uint16_t b[3] = {0x3F80, 0xC040, 0x3E20};
    double d[2] = {1.5, -0.25};
    int64_t big[2] = {1, 4294967296LL};
    unsigned char data[12 + 6 + 2 + 16 + 16];
    memcpy(data, h, 12);
    memcpy(data + 12, b, 6);
    memset(data + 18, 0, 2);
    memcpy(data + 20, d, 16);
    memcpy(data + 36, big, 16);
    const char *p = tmp("conv.safetensors");
    write_st(p,
             "{\"__metadata__\":{\"format\":\"pt\"},"
             "\"h\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,12]},"
             "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[12,18]},"
             "\"d\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[20,36]},"
             "\"i\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[36,52]}}    ",
             data, sizeof data);
    qs_safetensors st;
    assert_int_equal(qs_st_open(&st, p), QS_OK);
    float o[6];
    assert_int_equal(qs_st_read_f32(&st, qs_st_find(&st, "h"), o), QS_OK);
    float want_h[6] = {1.0f, -2.0f, 0.5f, 65504.0f, 5.9604644775390625e-08f, INFINITY};
    assert_memory_equal(o, want_h, sizeof want_h);
    assert_int_equal(qs_st_read_f32(&st, qs_st_find(&st, "b"), o), QS_OK);
    assert_true(o[0] == 1.0f && o[1] == -3.0f && o[2] == 0.15625f);
    assert_int_equal(qs_st_read_f32(&st, qs_st_find(&st, "d"), o), QS_OK);
    assert_true(o[0] == 1.5f && o[1] == -0.25f);
    int32_t io[2];
    expect_err(qs_st_read_i32(&st, qs_st_find(&st, "i"), io), QS_ERR_FORMAT, "conv.safetensors", "'i'");
    qs_st_close(&st);
}

static void test_st_bad_inputs(void **state) {
    (void)state;
    qs_safetensors st;
    float data[4] = {0};
    const char *p = tmp("short.safetensors");
    write_bytes(p, "\x02\0\0\0", 4);
    expect_err(qs_st_open(&st, p), QS_ERR_FORMAT, "short.safetensors", NULL);

    p = tmp("hlen.safetensors"); // header length beyond the file
    unsigned char b[16] = {0xff, 0xff, 0, 0, 0, 0, 0, 0, '{', '}'};
    write_bytes(p, b, 10);
    expect_err(qs_st_open(&st, p), QS_ERR_FORMAT, "hlen.safetensors", "header length");

    p = tmp("json.safetensors");
    write_st(p, "{\"x\":{\"dtype\":\"F32\",", data, 16);
    expect_err(qs_st_open(&st, p), QS_ERR_FORMAT, "json.safetensors", "JSON");

    p = tmp("range.safetensors");
    write_st(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[200],\"data_offsets\":[0,800]}}", data, 16);
    expect_err(qs_st_open(&st, p), QS_ERR_FORMAT, "range.safetensors", "tensor 'x': data_offsets [0,800]");

    p = tmp("lying.safetensors"); // shape [4] F32 needs 16 bytes, offsets give 8
    write_st(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,8]}}", data, 16);
    expect_err(qs_st_open(&st, p), QS_ERR_FORMAT, "lying.safetensors", "'x'");

    p = tmp("dtype.safetensors");
    write_st(p, "{\"x\":{\"dtype\":\"Q7\",\"shape\":[4],\"data_offsets\":[0,16]}}", data, 16);
    expect_err(qs_st_open(&st, p), QS_ERR_FORMAT, "dtype.safetensors", "'x'");

    p = tmp("neg.safetensors");
    write_st(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", data, 16);
    expect_err(qs_st_open(&st, p), QS_ERR_FORMAT, "neg.safetensors", "'x'");

    p = tmp("overlap.safetensors");
    write_st(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", data, 16);
    expect_err(qs_st_open(&st, p), QS_ERR_FORMAT, "overlap.safetensors", "overlap");

    p = tmp("order.safetensors"); // begin > end
    write_st(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", data, 16);
    expect_err(qs_st_open(&st, p), QS_ERR_FORMAT, "order.safetensors", "'x'");

    p = tmp("notobj.safetensors");
    write_st(p, "[1,2]", data, 16);
    expect_err(qs_st_open(&st, p), QS_ERR_FORMAT, "notobj.safetensors", NULL);

    expect_err(qs_st_open(&st, tmp("absent.safetensors")), QS_ERR_IO, "absent.safetensors", NULL);
    assert_null(st.t); // left cleared on failure
}

// ---- config.json ----

#define LLAMA_CFG                                                                                        \
    "{\n  \"_name_or_path\": \"meta-llama/Llama-2-7b-hf\",\n  \"architectures\": [\"LlamaForCausalLM\"],\n"   \
    "  \"attention_bias\": false, \"attention_dropout\": 0.0, \"bos_token_id\": 1, \"eos_token_id\": 2,\n" \
    "  \"hidden_act\": \"silu\", \"hidden_size\": 64, \"initializer_range\": 0.02,\n"                       \
    "  \"intermediate_size\": 172, \"max_position_embeddings\": 512, \"model_type\": \"llama\",\n"          \
    "  \"num_attention_heads\": 8, \"num_hidden_layers\": 5, \"num_key_value_heads\": 4,\n"                 \
    "  \"pretraining_tp\": 1, \"rms_norm_eps\": 1e-05, \"rope_scaling\": null, \"rope_theta\": 10000.0,\n"  \
    "  \"tie_word_embeddings\": false, \"torch_dtype\": \"float16\", \"transformers_version\": \"4.31.0\",\n" \
    "  \"use_cache\": true, \"vocab_size\": 512%s\n}\n"

static qs_status read_cfg(const char *name, const char *text, qs_config *c, char **qs) {
    write_text(tmp(name), text);
    return qs_hf_config_read(c, tmp(name), qs);
}

// LLAMA_CFG with `extra` appended and `drop` (a "key": value, text) removed.
static char *llama_cfg(const char *extra, const char *drop) {
    static char buf[4096];
    snprintf(buf, sizeof buf, LLAMA_CFG, extra ? extra : "");
    if (drop) {
        char *at = strstr(buf, drop);
        assert_non_null(at);
        memmove(at, at + strlen(drop), strlen(at + strlen(drop)) + 1);
    }
    return buf;
}

static void test_config_valid(void **state) {
    (void)state;
    qs_config c;
    char *qs = (char *)1;
    assert_int_equal(read_cfg("ok.json", llama_cfg(NULL, NULL), &c, &qs), QS_OK);
    assert_null(qs);
    assert_int_equal(c.arch, QS_ARCH_LLAMA);
    assert_int_equal(c.dim, 64);
    assert_int_equal(c.hidden_dim, 172);
    assert_int_equal(c.n_layers, 5);
    assert_int_equal(c.n_heads, 8);
    assert_int_equal(c.n_kv_heads, 4);
    assert_int_equal(c.head_dim, 8);
    assert_int_equal(c.vocab_size, 512);
    assert_int_equal(c.max_seq_len, 512);
    assert_true(c.rope_theta == 10000.0f && c.norm_eps == 1e-5f);
    assert_int_equal(c.tied_embeddings, 0);
    assert_int_equal(c.qkv_bias, 0);
    assert_int_equal(c.bos_id, 1);
    assert_int_equal(c.eos_id, 2);

    // Qwen2: q/k/v biases, eos as a list, quietstar block returned as JSON
    const char *qwen =
        "{\"architectures\":[\"Qwen2ForCausalLM\"],\"model_type\":\"qwen2\",\"hidden_size\":32,"
        "\"intermediate_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
        "\"vocab_size\":300,\"max_position_embeddings\":128,\"rope_theta\":1000000.0,\"rms_norm_eps\":1e-06,"
        "\"tie_word_embeddings\":true,\"use_sliding_window\":false,\"sliding_window\":32,"
        "\"max_window_layers\":2,\"bos_token_id\":null,\"eos_token_id\":[7,8],"
        "\"quietstar\":{\"n_ahead\":8,\"tokens\":[\"<|startthought|>\"]}}";
    assert_int_equal(read_cfg("qwen.json", qwen, &c, &qs), QS_OK);
    assert_int_equal(c.arch, QS_ARCH_QWEN2);
    assert_int_equal(c.qkv_bias, 1);
    assert_int_equal(c.tied_embeddings, 1);
    assert_int_equal(c.bos_id, -1);
    assert_int_equal(c.eos_id, 7);
    assert_true(c.rope_theta == 1e6f && c.norm_eps == 1e-6f);
    assert_string_equal(qs, "{\"n_ahead\":8,\"tokens\":[\"<|startthought|>\"]}");

    // write -> read round trip keeps every field and the quietstar block
    qs_config c2;
    char *qs2 = NULL;
    assert_int_equal(qs_hf_config_write(&c, tmp("qwen_out.json"), qs), QS_OK);
    assert_int_equal(qs_hf_config_read(&c2, tmp("qwen_out.json"), &qs2), QS_OK);
    assert_memory_equal(&c, &c2, sizeof c);
    assert_string_equal(qs, qs2);
    free(qs2);
    free(qs);
    c.norm_eps = 1e-5f;
    c.arch = QS_ARCH_MISTRAL;
    c.qkv_bias = 0;
    assert_int_equal(qs_hf_config_write(&c, tmp("mistral_out.json"), NULL), QS_OK);
    assert_int_equal(qs_hf_config_read(&c2, tmp("mistral_out.json"), NULL), QS_OK);
    assert_memory_equal(&c, &c2, sizeof c);
    c.qkv_bias = 1; // a Mistral config cannot express q/k/v biases
    expect_err(qs_hf_config_write(&c, tmp("bad_out.json"), NULL), QS_ERR_UNSUPPORTED, "bad_out.json", NULL);
    c.qkv_bias = 0;
    expect_err(qs_hf_config_write(&c, tmp("bad_out.json"), "[1]"), QS_ERR_ARG, "bad_out.json", "quietstar");
}

static void test_config_errors(void **state) {
    (void)state;
    qs_config c;
    char *qs = NULL;
    expect_err(read_cfg("missing.json", llama_cfg(NULL, "\"hidden_size\": 64,"), &c, &qs), QS_ERR_FORMAT,
               "missing.json", "hidden_size");
    assert_null(qs);
    char *t = llama_cfg(NULL, NULL);
    char *at = strstr(t, "\"hidden_size\": 64");
    memcpy(at, "\"hidden_size\":\"6\"", 17);
    expect_err(read_cfg("type.json", t, &c, NULL), QS_ERR_FORMAT, "type.json", "hidden_size");
    expect_err(read_cfg("unknown.json", llama_cfg(", \"frobnicate\": 3", NULL), &c, NULL), QS_ERR_FORMAT,
               "unknown.json", "frobnicate");
    expect_err(read_cfg("malformed.json", "{\"hidden_size\": 64,", &c, NULL), QS_ERR_FORMAT, "malformed.json", NULL);
    t = llama_cfg(NULL, NULL);
    at = strstr(t, "LlamaForCausalLM");
    memcpy(at, "GPT2LMHeadModelX", 16);
    expect_err(read_cfg("arch.json", t, &c, NULL), QS_ERR_UNSUPPORTED, "arch.json", "GPT2LMHeadModelX");
    assert_int_equal(read_cfg("rope.json", llama_cfg(NULL, "\"rope_scaling\": null,"), &c, NULL), QS_OK);
    t = llama_cfg(NULL, NULL);
    at = strstr(t, "\"rope_scaling\": null");
    memcpy(at, "\"rope_scaling\": 1234", 20);
    expect_err(read_cfg("rope.json", t, &c, NULL), QS_ERR_FORMAT, "rope.json", "rope_scaling");
    assert_int_equal(read_cfg("bias.json", llama_cfg(NULL, "\"attention_bias\": false,"), &c, NULL), QS_OK);
    t = llama_cfg(NULL, NULL);
    at = strstr(t, "\"attention_bias\": false");
    memcpy(at, "\"attention_bias\":  true", 23);
    expect_err(read_cfg("bias.json", t, &c, NULL), QS_ERR_UNSUPPORTED, "bias.json", "attention_bias");
    assert_int_equal(read_cfg("act.json", llama_cfg(NULL, "\"hidden_act\": \"silu\","), &c, NULL), QS_OK);
    t = llama_cfg(NULL, NULL);
    at = strstr(t, "\"silu\"");
    memcpy(at, "\"gelu\"", 6);
    expect_err(read_cfg("act.json", t, &c, NULL), QS_ERR_UNSUPPORTED, "act.json", "hidden_act");
    expect_err(read_cfg("dup.json", llama_cfg(", \"vocab_size\": 4", NULL), &c, NULL), QS_ERR_FORMAT, "dup.json",
               "vocab_size");
    expect_err(read_cfg("hd.json", llama_cfg(", \"head_dim\": 16", NULL), &c, NULL), QS_ERR_UNSUPPORTED, "hd.json",
               "head_dim");
    assert_int_equal(read_cfg("heads.json", llama_cfg(NULL, "\"num_key_value_heads\": 4,"), &c, NULL), QS_OK);
    assert_int_equal(c.n_kv_heads, 8); // defaults to num_attention_heads
    expect_err(read_cfg("qsbad.json", llama_cfg(", \"quietstar\": 5", NULL), &c, &qs), QS_ERR_FORMAT, "qsbad.json",
               "quietstar");
    assert_null(qs);
    // Mistral with a real sliding window (shorter than the context)
    const char *mistral =
        "{\"architectures\":[\"MistralForCausalLM\"],\"model_type\":\"mistral\",\"hidden_size\":64,"
        "\"intermediate_size\":172,\"num_hidden_layers\":2,\"num_attention_heads\":8,\"num_key_value_heads\":2,"
        "\"vocab_size\":512,\"max_position_embeddings\":32768,\"sliding_window\":4096}";
    assert_int_equal(read_cfg("sw.json", mistral, &c, NULL), QS_OK); // applied in the attention
    assert_int_equal(c.sliding_window, 4096);
    expect_err(qs_hf_config_read(&c, tmp("nope.json"), NULL), QS_ERR_IO, "nope.json", NULL);
}

// ---- model directories ----

static qs_config small_cfg(qs_arch arch, int tied) {
    qs_config c = {.arch = arch, .dim = 16, .hidden_dim = 40, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                   .head_dim = 4, .vocab_size = 37, .max_seq_len = 32, .rope_theta = 10000.0f,
                   .norm_eps = 1e-5f, .tied_embeddings = tied, .qkv_bias = arch == QS_ARCH_QWEN2,
                   .bos_id = 1, .eos_id = 2};
    return c;
}

static void assert_same_model(const qs_model *a, const qs_model *b) {
    assert_memory_equal(&a->cfg, &b->cfg, sizeof a->cfg);
    assert_int_equal(a->layout.n, b->layout.n);
    assert_int_equal(a->layout.numel, b->layout.numel);
    assert_int_equal(a->has_quietstar, b->has_quietstar);
    for (int i = 0; i < a->layout.n; i++) assert_string_equal(a->layout.t[i].name, b->layout.t[i].name);
    for (int i = 0; i < a->layout.n; i++) { // (the alignment gaps between tensors are not data)
        const qs_tensor_info *t = &a->layout.t[i];
        assert_memory_equal(a->params + t->offset, b->params + b->layout.t[i].offset, t->numel * sizeof(float));
    }
}

static void test_dir_roundtrip(void **state) {
    (void)state;
    qs_config c = small_cfg(QS_ARCH_QWEN2, 0);
    qs_model m, m2;
    assert_int_equal(qs_model_create(&m, &c, 1), QS_OK);
    qs_model_init_random(&m, 7);
    for (size_t i = 0; i < m.layout.numel; i++) m.params[i] += 1e-3f * (float)(i % 13); // biases non-zero too
    write_text(tmp("tok_src.bin"), "fake tokenizer bytes\n\x01\x02");
    const char *qsj = "{\"n_ahead\":4,\"n_talk\":2}";
    assert_int_equal(qs_model_save_dir(&m, tmp("run/ckpt"), tmp("tok_src.bin"), qsj), QS_OK);
    qs_load_info info;
    assert_int_equal(qs_model_load(&m2, tmp("run/ckpt"), &info), QS_OK);
    assert_same_model(&m, &m2);
    assert_int_equal(info.qs_present, 7);
    assert_string_equal(info.quietstar_json, qsj);
    assert_string_equal(info.tokenizer_path, tmp("run/ckpt/tokenizer.bin"));
    unsigned char *tb;
    size_t tn;
    assert_int_equal(qs_read_file(info.tokenizer_path, &tb, &tn), QS_OK);
    assert_int_equal(tn, 23);
    assert_memory_equal(tb, "fake tokenizer bytes\n\x01\x02", 23);
    free(tb);
    qs_load_info_free(&info);
    qs_model_free(&m2);
    // a path to the config.json works too; info may be NULL
    assert_int_equal(qs_model_load(&m2, tmp("run/ckpt/config.json"), NULL), QS_OK);
    assert_same_model(&m, &m2);
    qs_model_free(&m2);
    // saving over an existing checkpoint
    m.params[3] = 0.5f;
    assert_int_equal(qs_model_save_dir(&m, tmp("run/ckpt"), NULL, NULL), QS_OK);
    assert_int_equal(qs_model_load(&m2, tmp("run/ckpt"), &info), QS_OK);
    assert_same_model(&m, &m2);
    assert_null(info.quietstar_json);
    qs_load_info_free(&info);
    qs_model_free(&m2);
    qs_model_free(&m);

    // tied Llama without Quiet-STaR tensors
    c = small_cfg(QS_ARCH_LLAMA, 1);
    assert_int_equal(qs_model_create(&m, &c, 0), QS_OK);
    qs_model_init_random(&m, 8);
    assert_int_equal(qs_model_save_dir(&m, tmp("llama"), NULL, NULL), QS_OK);
    assert_int_equal(qs_model_load(&m2, tmp("llama"), &info), QS_OK);
    assert_same_model(&m, &m2);
    assert_int_equal(info.qs_present, 0);
    assert_string_equal(info.tokenizer_path, "");
    qs_load_info_free(&info);
    qs_model_free(&m2);
    qs_model_free(&m);
}

// Writes dir/model.safetensors from model `m`'s tensors, skipping `skip` and
// adding `extra` (a [2,16] tensor) if given.
static void write_tensors(const qs_model *m, const char *path, const char *skip, const char *extra,
                          const float *extra_data, int extra_rows) {
    qs_st_writer w = {0};
    for (int i = 0; i < m->layout.n; i++) {
        const qs_tensor_info *t = &m->layout.t[i];
        if (skip && !strcmp(skip, t->name)) continue;
        assert_int_equal(qs_st_writer_add(&w, t->name, QS_DT_F32, t->ndim, t->shape, m->params + t->offset), QS_OK);
    }
    int64_t s[2] = {extra_rows, m->cfg.dim};
    if (extra) assert_int_equal(qs_st_writer_add(&w, extra, QS_DT_F32, 2, s, extra_data), QS_OK);
    assert_int_equal(qs_st_writer_write(&w, path), QS_OK);
    qs_st_writer_free(&w);
}

static void test_dir_errors(void **state) {
    (void)state;
    qs_config c = small_cfg(QS_ARCH_LLAMA, 1);
    qs_model m, m2;
    qs_load_info info;
    assert_int_equal(qs_model_create(&m, &c, 0), QS_OK);
    qs_model_init_random(&m, 9);
    assert_int_equal(qs_mkdir_p(tmp("bad")), QS_OK);
    assert_int_equal(qs_hf_config_write(&c, tmp("bad/config.json"), NULL), QS_OK);
    expect_err(qs_model_load(&m2, tmp("bad"), NULL), QS_ERR_IO, "bad/model.safetensors", NULL);
    assert_null(m2.params);

    char st[512];
    snprintf(st, sizeof st, "%s", tmp("bad/model.safetensors"));
    float junk[2 * 37 * 16];
    for (size_t i = 0; i < sizeof junk / sizeof *junk; i++) junk[i] = (float)i;
    write_tensors(&m, st, NULL, "mystery.weight", junk, 2);
    expect_err(qs_model_load(&m2, tmp("bad"), NULL), QS_ERR_FORMAT, "model.safetensors", "mystery.weight");
    write_tensors(&m, st, "model.layers.1.mlp.up_proj.weight", NULL, NULL, 0);
    expect_err(qs_model_load(&m2, tmp("bad"), NULL), QS_ERR_FORMAT, "model.safetensors",
               "model.layers.1.mlp.up_proj.weight");
    write_tensors(&m, st, "model.norm.weight", "model.norm.weight", junk, 2); // [2,16] instead of [16]
    expect_err(qs_model_load(&m2, tmp("bad"), NULL), QS_ERR_FORMAT, "model.norm.weight", "[2,16]");
    // tied model: an lm_head equal to the embedding is accepted, a different one is not
    write_tensors(&m, st, NULL, "lm_head.weight", m.w.embed, 37);
    assert_int_equal(qs_model_load(&m2, tmp("bad"), NULL), QS_OK);
    assert_same_model(&m, &m2);
    qs_model_free(&m2);
    write_tensors(&m, st, NULL, "lm_head.weight", junk, 37);
    expect_err(qs_model_load(&m2, tmp("bad"), NULL), QS_ERR_FORMAT, "model.safetensors", "lm_head.weight");
    // only start_embedding present: Quiet-STaR layout, others left zero
    write_tensors(&m, st, NULL, "start_embedding", junk, 2);
    assert_int_equal(qs_model_load(&m2, tmp("bad"), &info), QS_OK);
    assert_int_equal(info.qs_present, 1);
    assert_int_equal(m2.has_quietstar, 1);
    assert_memory_equal(m2.w.start_emb, junk, 32 * sizeof(float));
    assert_true(m2.w.end_emb[0] == 0.0f && m2.w.head_w1[0] == 0.0f);
    qs_load_info_free(&info);
    qs_model_free(&m2);
    // part of the talk head is an error
    write_tensors(&m, st, NULL, "talk_head.0.4.weight", junk, 1);
    expect_err(qs_model_load(&m2, tmp("bad"), NULL), QS_ERR_FORMAT, "model.safetensors", "talk_head.0.0.weight");
    expect_err(qs_model_load(&m2, tmp("nothing_here"), NULL), QS_ERR_IO, "nothing_here", NULL);
    qs_model_free(&m);
}

// ---- llama2.c ----

static void test_llama2c_synthetic(void **state) {
    (void)state;
    qs_config c = small_cfg(QS_ARCH_LLAMA, 0);
    qs_model m, m2;
    assert_int_equal(qs_model_create(&m, &c, 0), QS_OK);
    qs_model_init_random(&m, 11);
    const char *p = tmp("syn.bin");
    assert_int_equal(qs_llama2c_save(&m, p), QS_OK);
    assert_int_equal(qs_model_load(&m2, p, NULL), QS_OK);
    assert_same_model(&m, &m2);
    // the file holds wq rows in llama2.c's interleaved order: row h*hd+2j = HF row h*hd+j
    unsigned char *b;
    size_t n;
    assert_int_equal(qs_read_file(p, &b, &n), QS_OK);
    const float *wq0 = (const float *)(b + 28) + 37 * 16 + 2 * 16; // after embeddings and rms_att
    int hd = 4, H = 16;
    for (int h = 0; h < 4; h++)
        for (int j = 0; j < hd / 2; j++) {
            assert_memory_equal(wq0 + (size_t)(h * hd + 2 * j) * H, m.w.layer[0].wq + (size_t)(h * hd + j) * H, H * 4);
            assert_memory_equal(wq0 + (size_t)(h * hd + 2 * j + 1) * H,
                                m.w.layer[0].wq + (size_t)(h * hd + j + hd / 2) * H, H * 4);
        }
    // a second save is byte-identical
    assert_int_equal(qs_llama2c_save(&m2, tmp("syn2.bin")), QS_OK);
    qs_model_free(&m2);
    unsigned char *b2;
    size_t n2;
    assert_int_equal(qs_read_file(tmp("syn2.bin"), &b2, &n2), QS_OK);
    assert_int_equal(n, n2);
    assert_memory_equal(b, b2, n);
    // header values that do not match the file size, and a truncated file
    ((int32_t *)b)[2] = 3; // n_layers
    write_bytes(tmp("hdr.bin"), b, n);
    expect_err(qs_model_load(&m2, tmp("hdr.bin"), NULL), QS_ERR_FORMAT, "hdr.bin", "bytes");
    ((int32_t *)b)[2] = 2;
    ((int32_t *)b)[3] = 5; // 16 not divisible by 5 heads
    write_bytes(tmp("heads.bin"), b, n);
    expect_err(qs_model_load(&m2, tmp("heads.bin"), NULL), QS_ERR_FORMAT, "heads.bin", NULL);
    write_bytes(tmp("tiny.bin"), b, 20);
    expect_err(qs_model_load(&m2, tmp("tiny.bin"), NULL), QS_ERR_FORMAT, "tiny.bin", NULL);
    free(b);
    free(b2);
    // biases and other rope/eps values cannot be stored
    m.cfg.norm_eps = 1e-6f;
    expect_err(qs_llama2c_save(&m, tmp("eps.bin")), QS_ERR_UNSUPPORTED, "eps.bin", NULL);
    assert_int_equal(access(tmp("eps.bin"), F_OK), -1);
    qs_model_free(&m);
}

static void test_llama2c_stories260k(void **state) {
    (void)state;
    char buf[4096];
    const char *p = tu_data_path("stories260K/stories260K.bin", buf, sizeof buf);
    if (!p) { skip(); return; }
    qs_model m, m2;
    assert_int_equal(qs_model_load(&m, p, NULL), QS_OK);
    const qs_config *c = &m.cfg;
    assert_int_equal(c->arch, QS_ARCH_LLAMA);
    assert_int_equal(c->dim, 64);
    assert_int_equal(c->hidden_dim, 172);
    assert_int_equal(c->n_layers, 5);
    assert_int_equal(c->n_heads, 8);
    assert_int_equal(c->n_kv_heads, 4);
    assert_int_equal(c->head_dim, 8);
    assert_int_equal(c->vocab_size, 512);
    assert_int_equal(c->max_seq_len, 512);
    assert_int_equal(c->tied_embeddings, 1);
    assert_int_equal(c->bos_id, 1);
    assert_int_equal(c->eos_id, 2);
    assert_true(c->rope_theta == 10000.0f && c->norm_eps == 1e-5f);
    assert_int_equal(m.has_quietstar, 0);

    // .bin -> load -> save: every byte equal, except that the (unused)
    // freq_cis tables PyTorch computed may differ from cosf/sinf by 1 ulp
    assert_int_equal(qs_llama2c_save(&m, tmp("s260.bin")), QS_OK);
    unsigned char *a, *b;
    size_t na, nb;
    assert_int_equal(qs_read_file(p, &a, &na), QS_OK);
    assert_int_equal(qs_read_file(tmp("s260.bin"), &b, &nb), QS_OK);
    assert_int_equal(na, 1056540);
    assert_int_equal(nb, na);
    size_t fc = na - (size_t)512 * 8 * 4; // freq_cis: the last 512*8 floats (tied: no wcls)
    assert_memory_equal(a, b, fc);
    size_t ndiff = 0;
    for (size_t i = fc; i < na; i += 4) {
        int32_t x, y;
        memcpy(&x, a + i, 4);
        memcpy(&y, b + i, 4);
        assert_true(abs(x - y) <= 1);
        ndiff += x != y;
    }
    if (ndiff) fprintf(stderr, "note: %zu of 4096 freq_cis floats differ by 1 ulp from PyTorch's\n", ndiff);
    // and a file written by qstar round-trips byte for byte
    assert_int_equal(qs_model_load(&m2, tmp("s260.bin"), NULL), QS_OK);
    assert_same_model(&m, &m2);
    assert_int_equal(qs_llama2c_save(&m2, tmp("s260b.bin")), QS_OK);
    free(a);
    assert_int_equal(qs_read_file(tmp("s260b.bin"), &a, &na), QS_OK);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    // through a model directory and back
    qs_model_free(&m2);
    assert_int_equal(qs_model_save_dir(&m, tmp("s260dir"), NULL, NULL), QS_OK);
    assert_int_equal(qs_model_load(&m2, tmp("s260dir"), NULL), QS_OK);
    assert_same_model(&m, &m2);
    qs_model_free(&m2);

    // truncated copy and a header claiming another size
    write_bytes(tmp("trunc.bin"), b, nb - 100);
    expect_err(qs_model_load(&m2, tmp("trunc.bin"), NULL), QS_ERR_FORMAT, "trunc.bin", "1056440");
    ((int32_t *)b)[1] = 173;
    write_bytes(tmp("wronghdr.bin"), b, nb);
    expect_err(qs_model_load(&m2, tmp("wronghdr.bin"), NULL), QS_ERR_FORMAT, "wronghdr.bin", "1056540");
    free(a);
    free(b);
    qs_model_free(&m);
}

// A real safetensors file written by Python (fake GPT-2): readable, but not a Llama.
static void test_st_real_file(void **state) {
    (void)state;
    char buf[4096];
    const char *p = tu_data_path("models/fake-gpt2/model.safetensors", buf, sizeof buf);
    if (!p) { skip(); return; }
    qs_safetensors st;
    assert_int_equal(qs_st_open(&st, p), QS_OK);
    assert_true(st.n > 0);
    for (int i = 0; i < st.n; i++) {
        const qs_st_tensor *t = &st.t[i];
        if (t->dtype != QS_DT_F32 && t->dtype != QS_DT_F16 && t->dtype != QS_DT_BF16) continue;
        float *o = malloc((t->numel ? t->numel : 1) * sizeof *o);
        assert_int_equal(qs_st_read_f32(&st, t, o), QS_OK);
        free(o);
    }
    qs_st_close(&st);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", p);
    *strrchr(dir, '/') = 0;
    qs_model m;
    // GPT-2 is supported since the gpt2 branch: the shared fake-gpt2 loads
    if (qs_model_load(&m, dir, NULL) != QS_OK) fail_msg("%s", qstar_last_error());
    assert_int_equal(m.cfg.arch, QS_ARCH_GPT2);
    qs_model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_st_roundtrip),     cmocka_unit_test(test_st_conversions),
        cmocka_unit_test(test_st_bad_inputs),    cmocka_unit_test(test_st_real_file),
        cmocka_unit_test(test_config_valid),     cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_dir_roundtrip),    cmocka_unit_test(test_dir_errors),
        cmocka_unit_test(test_llama2c_synthetic), cmocka_unit_test(test_llama2c_stories260k),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

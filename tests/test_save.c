// test_save.c: what qstar writes into a model directory (issue 8, checkpoints
// out): config.json keeps the keys of the config the model was loaded from
// (round trip, idempotent), the released Quiet-STaR config keys (head
// variants checked, max_thoughts -> n_ahead / n_talk), weights in F32 / F16 /
// BF16 with master weights for exact reloads, and the tokenizer files copied
// (tokenizer.json + tokenizer_config.json + special_tokens_map.json, or the
// llama2.c tokenizer.bin), stale ones of another kind removed.
#include "testutil.h"

#include <cJSON.h>
#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/qs.h"
#include "io/half.h"
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
    snprintf(g_dir, sizeof g_dir, "%s/qstar_test_save_XXXXXX", t && *t ? t : "/tmp");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    rm_rf(g_dir);
    return 0;
}

static const char *tmp(const char *name) {
    static char buf[8][512];
    static int k = 0;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(s, 1, strlen(s), f), strlen(s));
    fclose(f);
}

static char *read_text(const char *path) {
    unsigned char *b;
    size_t n;
    assert_int_equal(qs_read_file(path, &b, &n), QS_OK);
    char *s = realloc(b, n + 1);
    assert_non_null(s);
    s[n] = 0;
    return s;
}

static int exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

// A Mistral config as the released Quiet-STaR checkpoint writes it (its keys,
// harmless HF keys, an eos list, rope_scaling null), shrunk.
static const char RELEASED_CFG[] =
    "{\n  \"_name_or_path\": \"ezelikman/quietstar-8-ahead\",\n  \"architectures\": [\"MistralForCausalLM\"],\n"
    "  \"attention_dropout\": 0.0,\n  \"bos_token_id\": 1,\n  \"eos_token_id\": [2, 32000],\n"
    "  \"hidden_act\": \"silu\",\n  \"hidden_size\": 8,\n  \"initializer_range\": 0.02,\n"
    "  \"intermediate_size\": 12,\n  \"max_position_embeddings\": 64,\n  \"max_thoughts\": 13,\n"
    "  \"merged_lm_and_talk_heads\": false,\n  \"merged_lm_and_think_heads\": true,\n"
    "  \"merged_talk_heads\": true,\n  \"model_type\": \"mistral\",\n  \"num_attention_heads\": 2,\n"
    "  \"num_hidden_layers\": 1,\n  \"num_key_value_heads\": 1,\n  \"rms_norm_eps\": 1e-05,\n"
    "  \"rope_scaling\": null,\n  \"rope_theta\": 10000.0,\n  \"sliding_window\": 4096,\n"
    "  \"tie_word_embeddings\": false,\n  \"torch_dtype\": \"bfloat16\",\n"
    "  \"transformers_version\": \"4.37.0.dev0\",\n  \"use_cache\": true,\n  \"use_complex_talk_head\": true,\n"
    "  \"use_complex_think_head\": false,\n  \"use_concat_talk_head\": true,\n  \"use_shallow_talk\": false,\n"
    "  \"use_shallow_think\": true,\n  \"use_weighted_talk_head\": true,\n  \"vocab_size\": 40\n}\n";

static void same_config(const qs_config *a, const qs_config *b) {
    assert_int_equal(a->arch, b->arch);
    assert_int_equal(a->dim, b->dim);
    assert_int_equal(a->hidden_dim, b->hidden_dim);
    assert_int_equal(a->n_layers, b->n_layers);
    assert_int_equal(a->n_heads, b->n_heads);
    assert_int_equal(a->n_kv_heads, b->n_kv_heads);
    assert_int_equal(a->vocab_size, b->vocab_size);
    assert_int_equal(a->max_seq_len, b->max_seq_len);
    assert_true(a->rope_theta == b->rope_theta && a->norm_eps == b->norm_eps);
    assert_int_equal(a->tied_embeddings, b->tied_embeddings);
    assert_int_equal(a->bos_id, b->bos_id);
    assert_int_equal(a->eos_id, b->eos_id);
    assert_int_equal(a->sliding_window, b->sliding_window);
}

// The released keys: max_thoughts gives the thought settings when there is no
// quietstar block; head variants other than the released one are refused.
static void test_released_keys(void **state) {
    (void)state;
    qs_config c;
    char *qj = NULL;
    write_text(tmp("rel.json"), RELEASED_CFG);
    assert_int_equal(qs_hf_config_read(&c, tmp("rel.json"), &qj), QS_OK);
    assert_int_equal(c.arch, QS_ARCH_MISTRAL);
    assert_int_equal(c.eos_id, 2); // first of the list
    assert_int_equal(c.sliding_window, 4096);
    assert_non_null(qj);
    assert_string_equal(qj, "{\"n_ahead\":8,\"n_talk\":4}"); // 13 = 8 + 4 + 1
    free(qj);
    // a quietstar block wins over max_thoughts
    char buf[4096];
    snprintf(buf, sizeof buf, "%.*s,\n  \"quietstar\": {\"n_ahead\": 6, \"n_talk\": 2}\n}\n",
             (int)(strrchr(RELEASED_CFG, '}') - RELEASED_CFG - 1), RELEASED_CFG);
    write_text(tmp("rel_qs.json"), buf);
    assert_int_equal(qs_hf_config_read(&c, tmp("rel_qs.json"), &qj), QS_OK);
    assert_non_null(strstr(qj, "\"n_ahead\":6"));
    free(qj);
    // other head variants: unsupported, naming the key
    static const char *const BAD[][2] = {{"\"use_shallow_talk\": false", "\"use_shallow_talk\": true"},
                                         {"\"use_concat_talk_head\": true", "\"use_concat_talk_head\": false"},
                                         {"\"merged_talk_heads\": true", "\"merged_talk_heads\": 1"},
                                         {"\"max_thoughts\": 13", "\"max_thoughts\": 2"},
                                         {"\"max_thoughts\": 13", "\"max_thoughts\": \"13\""}};
    static const char *const MSG[] = {"use_shallow_talk", "use_concat_talk_head", "merged_talk_heads",
                                      "max_thoughts", "max_thoughts"};
    for (int k = 0; k < 5; k++) {
        const char *at = strstr(RELEASED_CFG, BAD[k][0]);
        assert_non_null(at);
        snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - RELEASED_CFG), RELEASED_CFG, BAD[k][1], at + strlen(BAD[k][0]));
        write_text(tmp("bad.json"), buf);
        qj = NULL;
        assert_int_not_equal(qs_hf_config_read(&c, tmp("bad.json"), &qj), QS_OK);
        assert_null(qj);
        assert_non_null(strstr(qstar_last_error(), MSG[k]));
        assert_non_null(strstr(qstar_last_error(), "bad.json"));
    }
}

static cJSON *parse_file(const char *path) {
    char *s = read_text(path);
    cJSON *j = cJSON_Parse(s);
    free(s);
    assert_true(cJSON_IsObject(j));
    return j;
}

// Save -> config.json: the original keys in their order with their values
// (qstar's own replace theirs, eos list kept), max_thoughts follows the
// quietstar block, torch_dtype names the written dtype; reading it gives the
// same config, and loading + saving again writes the same bytes.
static void test_config_roundtrip(void **state) {
    (void)state;
    qs_config c;
    write_text(tmp("rel.json"), RELEASED_CFG);
    assert_int_equal(qs_hf_config_read(&c, tmp("rel.json"), NULL), QS_OK);
    qs_model m, m2;
    assert_int_equal(qs_model_create(&m, &c, 1), QS_OK);
    qs_model_init_random(&m, 3);
    m.src_config = strdup(RELEASED_CFG);
    const char *qsj = "{\"n_ahead\":6,\"n_talk\":2}";
    assert_int_equal(qs_model_save_dir(&m, tmp("rt"), NULL, qsj), QS_OK);
    cJSON *orig = cJSON_Parse(RELEASED_CFG), *out = parse_file(tmp("rt/config.json"));
    const cJSON *o = orig->child, *w = out->child;
    for (; o; o = o->next, w = w->next) { // same keys first, same order
        assert_non_null(w);
        assert_string_equal(o->string, w->string);
        if (!strcmp(o->string, "max_thoughts")) assert_int_equal((int)w->valuedouble, 6 + 2 + 1);
        else if (!strcmp(o->string, "torch_dtype")) assert_string_equal(w->valuestring, "float32");
        else if (!cJSON_Compare(o, w, 1)) fail_msg("key '%s' changed", o->string);
    }
    assert_non_null(cJSON_GetObjectItemCaseSensitive(out, "quietstar"));
    cJSON_Delete(orig);
    cJSON_Delete(out);
    qs_load_info info;
    assert_int_equal(qs_model_load(&m2, tmp("rt"), &info), QS_OK);
    same_config(&m.cfg, &m2.cfg);
    assert_int_equal(info.dtype, QS_DT_F32);
    assert_non_null(strstr(info.quietstar_json, "\"n_ahead\":6"));
    char *first = read_text(tmp("rt/config.json"));
    assert_string_equal(m2.src_config, first);
    assert_int_equal(qs_model_save_dir(&m2, tmp("rt2"), NULL, info.quietstar_json), QS_OK);
    char *second = read_text(tmp("rt2/config.json"));
    assert_string_equal(first, second); // idempotent
    free(first), free(second);
    qs_load_info_free(&info);
    qs_model_free(&m2);
    // without an original config (a random-init model) the written keys are qstar's own
    free(m.src_config);
    m.src_config = NULL;
    assert_int_equal(qs_model_save_dir(&m, tmp("rt3"), NULL, NULL), QS_OK);
    out = parse_file(tmp("rt3/config.json"));
    assert_null(cJSON_GetObjectItemCaseSensitive(out, "max_thoughts"));
    assert_null(cJSON_GetObjectItemCaseSensitive(out, "transformers_version"));
    cJSON_Delete(out);
    qs_model_free(&m);
}

static qs_dtype file_dtype(const char *path, const char *name) {
    qs_safetensors st;
    assert_int_equal(qs_st_open(&st, path), QS_OK);
    const qs_st_tensor *t = qs_st_find(&st, name);
    assert_non_null(t);
    qs_dtype d = t->dtype;
    qs_st_close(&st);
    return d;
}

// 16-bit weights: written rounded to nearest even, read back into fp32 as
// exactly those values; with save_master the exact fp32 weights come back.
static void test_dtypes(void **state) {
    (void)state;
    qs_config c;
    write_text(tmp("rel.json"), RELEASED_CFG);
    assert_int_equal(qs_hf_config_read(&c, tmp("rel.json"), NULL), QS_OK);
    qs_model m, m2;
    assert_int_equal(qs_model_create(&m, &c, 1), QS_OK);
    qs_model_init_random(&m, 5);
    for (size_t i = 0; i < m.layout.numel; i++) m.params[i] *= 1.0f + 1e-3f * (float)(i % 7); // not 16-bit exact
    for (int bf = 0; bf <= 1; bf++) {
        m.save_dtype = bf ? QS_DT_BF16 : QS_DT_F16;
        m.save_master = 0;
        const char *d = bf ? tmp("bf16") : tmp("f16");
        assert_int_equal(qs_model_save_dir(&m, d, NULL, NULL), QS_OK);
        char p[600];
        snprintf(p, sizeof p, "%s/model.safetensors", d);
        assert_int_equal(file_dtype(p, "model.embed_tokens.weight"), m.save_dtype);
        assert_int_equal(file_dtype(p, "talk_head.0.4.weight"), m.save_dtype);
        qs_load_info info;
        assert_int_equal(qs_model_load(&m2, d, &info), QS_OK);
        assert_int_equal(info.dtype, m.save_dtype);
        assert_int_equal(m2.save_dtype, m.save_dtype); // default for the next save: the input's
        assert_int_equal(m2.save_master, 0);
        size_t differ = 0;
        for (size_t i = 0; i < m.layout.numel; i++) {
            float want = bf ? qs_bf16_to_f32(qs_f32_to_bf16(m.params[i])) : qs_f16_to_f32(qs_f32_to_f16(m.params[i]));
            assert_true(m2.params[i] == want);
            differ += m2.params[i] != m.params[i];
        }
        assert_true(differ > m.layout.numel / 2); // the rounding did happen
        char *cfg = read_text(tmp(bf ? "bf16/config.json" : "f16/config.json"));
        assert_non_null(strstr(cfg, bf ? "\"bfloat16\"" : "\"float16\""));
        free(cfg);
        qs_load_info_free(&info);
        qs_model_free(&m2);
        // with master weights: exact
        m.save_master = 1;
        assert_int_equal(qs_model_save_dir(&m, d, NULL, NULL), QS_OK);
        snprintf(p, sizeof p, "%s/%s", d, QS_MASTER_WEIGHTS_FILE);
        assert_true(exists(p));
        assert_int_equal(qs_model_load(&m2, d, NULL), QS_OK);
        assert_memory_equal(m2.params, m.params, m.layout.numel * sizeof(float));
        assert_int_equal(m2.save_master, 1);
        assert_int_equal(m2.save_dtype, m.save_dtype);
        // a master file that does not round to model.safetensors (weights replaced
        // by another tool) is not used: model.safetensors is what the directory says
        m.params[0] += 1.0f;
        m.save_master = 0;
        assert_int_equal(qs_model_save_dir(&m, tmp("other"), NULL, NULL), QS_OK);
        m.params[0] -= 1.0f;
        unsigned char *ob;
        size_t on;
        char q[600];
        snprintf(q, sizeof q, "%s/model.safetensors", d);
        assert_int_equal(qs_read_file(tmp("other/model.safetensors"), &ob, &on), QS_OK);
        assert_int_equal(qs_write_file_atomic(q, ob, on), QS_OK);
        free(ob);
        qs_model m3;
        assert_int_equal(qs_model_load(&m3, d, NULL), QS_OK);
        assert_int_equal(m3.save_master, 0);
        assert_true(m3.params[0] == (bf ? qs_bf16_to_f32(qs_f32_to_bf16(m.params[0] + 1.0f))
                                        : qs_f16_to_f32(qs_f32_to_f16(m.params[0] + 1.0f))));
        qs_model_free(&m3);
        // saving without them removes the stale master file
        m2.save_master = 0;
        assert_int_equal(qs_model_save_dir(&m2, d, NULL, NULL), QS_OK);
        assert_false(exists(p));
        qs_model_free(&m2);
    }
    m.save_dtype = 7;
    assert_int_equal(qs_model_save_dir(&m, tmp("bad"), NULL, NULL), QS_ERR_ARG);
    assert_int_equal(qs_save_dtype_parse("bf16"), QS_DT_BF16);
    assert_int_equal(qs_save_dtype_parse("float16"), QS_DT_F16);
    assert_int_equal(qs_save_dtype_parse("f32"), QS_DT_F32);
    assert_int_equal(qs_save_dtype_parse("int8"), -1);
    assert_int_equal(qs_save_dtype_parse(NULL), -1);
    qs_model_free(&m);
}

// Tokenizer files: a tokenizer.json brings its two companions; the saved
// directory's tokenizer is found by qs_model_load; a later save with a
// llama2.c tokenizer replaces them (no stale tokenizer.json left to win).
static void test_tokenizer_files(void **state) {
    (void)state;
    mkdir(tmp("src"), 0700);
    write_text(tmp("src/tokenizer.json"), "{\"model\": \"fake\"}\n");
    write_text(tmp("src/tokenizer_config.json"), "{\"add_bos_token\": true}\n");
    write_text(tmp("src/special_tokens_map.json"), "{\"bos_token\": \"<s>\"}\n");
    write_text(tmp("tok.bin"), "llama2c bytes");
    qs_config c;
    write_text(tmp("rel.json"), RELEASED_CFG);
    assert_int_equal(qs_hf_config_read(&c, tmp("rel.json"), NULL), QS_OK);
    qs_model m, m2;
    assert_int_equal(qs_model_create(&m, &c, 0), QS_OK);
    assert_int_equal(qs_model_save_dir(&m, tmp("out"), tmp("src/tokenizer.json"), NULL), QS_OK);
    static const char *const F[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"};
    for (int k = 0; k < 3; k++) {
        char a[64], b[64];
        snprintf(a, sizeof a, "src/%s", F[k]);
        snprintf(b, sizeof b, "out/%s", F[k]);
        char *x = read_text(tmp(a)), *y = read_text(tmp(b));
        assert_string_equal(x, y);
        free(x), free(y);
    }
    qs_load_info info;
    assert_int_equal(qs_model_load(&m2, tmp("out"), &info), QS_OK);
    assert_string_equal(info.tokenizer_path, tmp("out/tokenizer.json"));
    qs_load_info_free(&info);
    qs_model_free(&m2);
    // the directory itself as the source (copying into another directory)
    assert_int_equal(qs_model_save_dir(&m, tmp("out2"), tmp("out"), NULL), QS_OK);
    assert_true(exists(tmp("out2/special_tokens_map.json")));
    // saving with no tokenizer leaves the files; with a llama2.c one they are replaced
    assert_int_equal(qs_model_save_dir(&m, tmp("out"), NULL, NULL), QS_OK);
    assert_true(exists(tmp("out/tokenizer.json")));
    assert_int_equal(qs_model_save_dir(&m, tmp("out"), tmp("tok.bin"), NULL), QS_OK);
    assert_false(exists(tmp("out/tokenizer.json")));
    assert_false(exists(tmp("out/tokenizer_config.json")));
    assert_true(exists(tmp("out/tokenizer.bin")));
    assert_int_equal(qs_model_load(&m2, tmp("out"), &info), QS_OK);
    assert_string_equal(info.tokenizer_path, tmp("out/tokenizer.bin"));
    qs_load_info_free(&info);
    qs_model_free(&m2);
    // a missing tokenizer is an error naming it, before anything is written
    assert_int_equal(qs_model_save_dir(&m, tmp("out3"), tmp("nope.json"), NULL), QS_ERR_IO);
    assert_non_null(strstr(qstar_last_error(), "nope.json"));
    assert_false(exists(tmp("out3/model.safetensors")));
    qs_model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_released_keys),
        cmocka_unit_test(test_config_roundtrip),
        cmocka_unit_test(test_dtypes),
        cmocka_unit_test(test_tokenizer_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

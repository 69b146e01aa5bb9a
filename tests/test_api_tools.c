// test_api_tools.c: the public API of the small commands (include/qstar.h
// "Tokenizers on their own", "Output paths", "Benchmarks"), used as a
// program would use it (qstar.h only):
//   - tokenizers: encode/decode round trips, the streaming decoder, and the
//     ids agree with the `qstar tokenize` CLI (an independent entry point) on
//     the llama2.c tok512.bin and the GPT-2 tokenizer.json; a model's own
//     tokenizer encodes as the same file opened on its own; errors name the file;
//   - qstar_prepare: the token count equals the sum of the documents'
//     encodings (BOS first); a second prepare into the directory is refused;
//   - output paths: refusal without force leaves the user's files
//     byte-identical, atomic writes leave no temp file, mkdir -p;
//   - benchmarks: qstar_bench_sgemm gives finite positive GFLOP/s, and
//     qstar_bench_run's FLOPs equal bench/run_bench.py's count (Python).
#include "qstar.h"
#include "testutil.h"

#include <sys/stat.h>
#include <unistd.h>

static char g_root[4096]; // the repository (from argv[0] = ROOT/build*/tests/test_api_tools)
static char g_qstar[4200]; // the qstar CLI beside the tests

static const char *TEXT = "Once upon a time, there was a little girl named Lily. She loved to play outside.";
static const char *UTEXT = "Hello world: caf\xc3\xa9, na\xc3\xafve \xe2\x82\xac 100 \xf0\x9f\x98\x80 -- ok";

// Runs `cmd` and reads its first output line into out.
static int run_line(const char *cmd, char *out, size_t cap) {
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    out[0] = 0;
    if (!fgets(out, (int)cap, p)) out[0] = 0;
    int rc = pclose(p);
    out[strcspn(out, "\n")] = 0;
    return rc;
}

static void ids_to_string(const int *ids, int n, char *out, size_t cap) {
    size_t k = 0;
    out[0] = 0;
    for (int i = 0; i < n && k + 16 < cap; i++) k += (size_t)snprintf(out + k, cap - k, i ? " %d" : "%d", ids[i]);
}

// encode -> decode gives the text back; the cap variant agrees with the alloc
// one and reports the count needed when the cap is too small; the streaming
// decoder gives the same text.
static void check_roundtrip(const qstar_tokenizer *t, const char *text) {
    qstar_tokenizer_info ti;
    assert_int_equal(qstar_tokenizer_get_info(t, &ti), QS_OK);
    int *ids = NULL, n = 0;
    assert_int_equal(qstar_tokenizer_encode_alloc(t, text, 1, 0, &ids, &n), QS_OK);
    assert_true(n > 5);
    if (ti.bos_id >= 0) assert_int_equal(ids[0], ti.bos_id);
    char out[1024];
    size_t len = 0;
    assert_int_equal(qstar_tokenizer_decode(t, ids, n, out, sizeof out, &len), QS_OK);
    assert_string_equal(out, text);
    assert_int_equal(len, strlen(text));
    int small[4], need = 0;
    assert_int_equal(qstar_tokenizer_encode(t, text, 1, 0, small, 4, &need), QS_ERR_ARG);
    assert_int_equal(need, n);
    int *ids2 = malloc((size_t)n * sizeof *ids2);
    assert_int_equal(qstar_tokenizer_encode(t, text, 1, 0, ids2, n, &need), QS_OK);
    assert_memory_equal(ids, ids2, (size_t)n * sizeof *ids);
    free(ids2);
    qstar_decoder *d;
    assert_int_equal(qstar_decoder_create(t, 0, &d), QS_OK); // BOS gives no text
    char acc[1024] = "", piece[4096];
    size_t pn;
    for (int i = 0; i < n; i++) {
        assert_int_equal(qstar_decoder_push(d, ids[i], piece, sizeof piece, &pn), QS_OK);
        strncat(acc, piece, sizeof acc - strlen(acc) - 1);
    }
    assert_int_equal(qstar_decoder_flush(d, piece, sizeof piece, &pn), QS_OK);
    strncat(acc, piece, sizeof acc - strlen(acc) - 1);
    qstar_decoder_free(d);
    assert_string_equal(acc, text);
    qstar_tokenizer_ids_free(ids);
}

// The ids `qstar tokenize` prints (with --special: BOS/EOS as configured)
// equal the API's.
static void check_cli_agrees(const qstar_tokenizer *t, const char *tok_path, const char *text, int special) {
    if (access(g_qstar, X_OK) != 0) {
        fprintf(stderr, "[  SKIP    ] no qstar CLI at %s; the CLI comparison is skipped\n", g_qstar);
        return;
    }
    char cmd[8192], got[16384], want[16384];
    snprintf(cmd, sizeof cmd, "'%s' tokenize --tokenizer '%s' --text '%s'%s", g_qstar, tok_path, text,
             special ? " --special" : "");
    assert_int_equal(run_line(cmd, got, sizeof got), 0);
    qstar_tokenizer_info ti;
    assert_int_equal(qstar_tokenizer_get_info(t, &ti), QS_OK);
    int *ids = NULL, n = 0;
    assert_int_equal(qstar_tokenizer_encode_alloc(t, text, special && ti.add_bos, special && ti.add_eos, &ids, &n),
                     QS_OK);
    ids_to_string(ids, n, want, sizeof want);
    qstar_tokenizer_ids_free(ids);
    assert_string_equal(got, want);
}

static void test_tokenizer_llama2c(void **state) {
    (void)state;
    char tok[4096], bin[4096];
    if (!tu_data_path("stories260K/tok512.bin", tok, sizeof tok) ||
        !tu_data_path("stories260K/stories260K.bin", bin, sizeof bin)) { skip(); return; }
    qstar_tokenizer *t = NULL;
    assert_int_equal(qstar_tokenizer_load(tok, NULL, &t), QS_OK);
    qstar_tokenizer_info ti;
    assert_int_equal(qstar_tokenizer_get_info(t, &ti), QS_OK);
    assert_int_equal(ti.vocab_size, 512);
    assert_int_equal(qstar_tokenizer_vocab_size(t), 512);
    assert_int_equal(ti.bos_id, 1);
    assert_int_equal(ti.eos_id, 2);
    assert_string_equal(ti.kind, "llama2c");
    check_roundtrip(t, TEXT);
    check_cli_agrees(t, tok, TEXT, 0);
    check_cli_agrees(t, tok, TEXT, 1);
    // a model's own tokenizer (borrowed) encodes as the file on its own
    qstar_model_params mp = qstar_model_params_default();
    mp.tokenizer_path = tok;
    qstar_model *m = NULL;
    assert_int_equal(qstar_model_load(bin, &mp, &m), QS_OK);
    const qstar_tokenizer *mt = qstar_model_tokenizer(m);
    assert_non_null(mt);
    int *a = NULL, *b = NULL, na = 0, nb = 0;
    assert_int_equal(qstar_tokenizer_encode_alloc(t, TEXT, 1, 0, &a, &na), QS_OK);
    assert_int_equal(qstar_tokenizer_encode_alloc(mt, TEXT, 1, 0, &b, &nb), QS_OK);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, (size_t)na * sizeof *a);
    qstar_tokenizer_ids_free(a);
    qstar_tokenizer_ids_free(b);
    qstar_model_free(m);
    // an id outside the vocabulary
    int bad[2] = {5, 512};
    char out[64];
    assert_int_equal(qstar_tokenizer_decode(t, bad, 2, out, sizeof out, NULL), QS_ERR_ARG);
    qstar_tokenizer_free(t);
}

static void test_tokenizer_json(void **state) {
    (void)state;
    char dir[4096], f[4096];
    if (!tu_data_path("tokenizers/hf-json/gpt2/tokenizer.json", f, sizeof f)) { skip(); return; }
    snprintf(dir, sizeof dir, "%.*s", (int)(strrchr(f, '/') - f), f); // the directory form
    qstar_tokenizer *t = NULL;
    assert_int_equal(qstar_tokenizer_load(dir, NULL, &t), QS_OK);
    qstar_tokenizer_info ti;
    assert_int_equal(qstar_tokenizer_get_info(t, &ti), QS_OK);
    assert_int_equal(ti.vocab_size, 50257);
    assert_string_equal(ti.kind, "bpe-bytelevel");
    check_roundtrip(t, UTEXT);
    check_cli_agrees(t, dir, UTEXT, 0);
    check_cli_agrees(t, f, UTEXT, 1);
    // invalid UTF-8 is an error naming the byte offset
    int *ids = NULL, n = 0;
    assert_int_equal(qstar_tokenizer_encode_alloc(t, "ab\xff", 0, 0, &ids, &n), QS_ERR_FORMAT);
    assert_null(ids);
    qstar_tokenizer_free(t);
}

static void test_tokenizer_errors(void **state) {
    (void)state;
    qstar_tokenizer *t = (qstar_tokenizer *)1;
    assert_int_equal(qstar_tokenizer_load("/nonexistent/tok.bin", NULL, &t), QS_ERR_IO);
    assert_null(t);
    assert_non_null(strstr(qstar_last_error(), "/nonexistent/tok.bin"));
    assert_int_equal(qstar_tokenizer_load(NULL, NULL, &t), QS_ERR_ARG);
    assert_int_equal(qstar_tokenizer_load("x", NULL, NULL), QS_ERR_ARG);
    qstar_tokenizer_params p = qstar_tokenizer_params_default();
    p.vocab_size = -1;
    assert_int_equal(qstar_tokenizer_load("x", &p, &t), QS_ERR_ARG);
    int n;
    assert_int_equal(qstar_tokenizer_encode(NULL, "x", 0, 0, NULL, 0, &n), QS_ERR_ARG);
    qstar_decoder *d = (qstar_decoder *)1;
    assert_int_equal(qstar_decoder_create(NULL, 0, &d), QS_ERR_ARG);
    assert_null(d);
    assert_null(qstar_model_tokenizer(NULL));
    assert_int_equal(qstar_tokenizer_export("/nonexistent/x.gguf", "/nonexistent/dir/sub"), QS_ERR_IO);
    assert_non_null(strstr(qstar_last_error(), "/nonexistent/dir/sub"));
    qstar_tokenizer_free(NULL);
    qstar_decoder_free(NULL);
}

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(s, f);
    assert_int_equal(fclose(f), 0);
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static void assert_file_is(const char *path, const char *want) {
    char *d = NULL;
    size_t n = 0;
    assert_int_equal(qstar_read_file(path, 1 << 20, &d, &n), QS_OK);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(d, want, n);
    qstar_file_free(d);
}

static void test_out_paths(void **state) {
    (void)state;
    char tmp[] = "/tmp/qs_api_tools_XXXXXX";
    assert_non_null(mkdtemp(tmp));
    char charts[4200], keep[4300], model[4200], cfg[4300], sub[4200], fresh[4300], file[4300], tmpf[4400];
    snprintf(charts, sizeof charts, "%s/charts", tmp);
    snprintf(keep, sizeof keep, "%s/notes.txt", charts);
    snprintf(model, sizeof model, "%s/model", tmp);
    snprintf(cfg, sizeof cfg, "%s/config.json", model);
    snprintf(sub, sizeof sub, "%s/a/b/c", tmp);
    snprintf(fresh, sizeof fresh, "%s/new", tmp);
    snprintf(file, sizeof file, "%s/out.json", tmp);
    snprintf(tmpf, sizeof tmpf, "%s.tmp", file);
    const char *mine = "the user's notes\n", *conf = "{\"model_type\": \"llama\"}\n";
    // mkdir -p
    assert_int_equal(qstar_mkdir_p(sub), QS_OK);
    assert_true(exists(sub));
    assert_int_equal(qstar_mkdir_p(sub), QS_OK); // existing: fine
    // a non-empty directory is refused without force, and left byte-identical
    assert_int_equal(qstar_mkdir_p(charts), QS_OK);
    write_text(keep, mine);
    assert_int_equal(qstar_out_check(charts, QSTAR_OUT_DIR, 0), QS_ERR_IO);
    assert_non_null(strstr(qstar_last_error(), charts));
    assert_non_null(strstr(qstar_last_error(), "--force"));
    assert_file_is(keep, mine);
    assert_int_equal(qstar_out_check(charts, QSTAR_OUT_DIR, 1), QS_OK); // force: allowed (nothing changed yet)
    assert_file_is(keep, mine);
    assert_int_equal(qstar_out_check(fresh, QSTAR_OUT_DIR, 0), QS_OK);  // absent: fine, not created
    assert_false(exists(fresh));
    // a model directory, and a file of one, need force
    assert_int_equal(qstar_mkdir_p(model), QS_OK);
    write_text(cfg, conf);
    assert_true(qstar_is_model_dir(model));
    assert_false(qstar_is_model_dir(charts));
    assert_int_equal(qstar_out_check(model, QSTAR_OUT_MODEL_DIR, 0), QS_ERR_IO);
    assert_int_equal(qstar_out_check(cfg, QSTAR_OUT_FILE, 0), QS_ERR_IO);
    assert_file_is(cfg, conf);
    assert_int_equal(qstar_out_check(charts, QSTAR_OUT_FILE, 1), QS_ERR_IO); // a directory is never a file
    assert_int_equal(qstar_out_check(charts, (qstar_out_kind)42, 0), QS_ERR_ARG);
    // atomic writes: whole, streamed, aborted; no temp file is left
    assert_int_equal(qstar_write_file_atomic(file, "v1", 2), QS_OK);
    assert_file_is(file, "v1");
    qstar_afile *af;
    assert_int_equal(qstar_afile_open(file, &af), QS_OK);
    assert_int_equal(qstar_afile_write(af, "v2 ", 3), QS_OK);
    assert_file_is(file, "v1"); // not replaced before the commit
    qstar_afile_abort(af);
    assert_file_is(file, "v1");
    assert_false(exists(tmpf));
    assert_int_equal(qstar_afile_open(file, &af), QS_OK);
    assert_int_equal(qstar_afile_write(af, "v2 ", 3), QS_OK);
    assert_int_equal(qstar_afile_write(af, "done", 4), QS_OK);
    assert_int_equal(qstar_afile_commit(af), QS_OK);
    assert_file_is(file, "v2 done");
    assert_false(exists(tmpf));
    char *d = NULL;
    size_t n = 0;
    assert_int_equal(qstar_read_file(file, 3, &d, &n), QS_ERR_FORMAT); // over the limit
    assert_null(d);
    assert_non_null(strstr(qstar_last_error(), file));
    // dir replace: `fresh` takes the place of charts in one step
    assert_int_equal(qstar_mkdir_p(fresh), QS_OK);
    write_text(file, "x");
    char fresh_file[4400];
    snprintf(fresh_file, sizeof fresh_file, "%s/plot.gp", fresh);
    write_text(fresh_file, "plot\n");
    assert_int_equal(qstar_dir_replace(fresh, charts), QS_OK);
    assert_false(exists(fresh));
    assert_false(exists(keep));
    snprintf(fresh_file, sizeof fresh_file, "%s/plot.gp", charts);
    assert_file_is(fresh_file, "plot\n");
    assert_int_equal(qstar_remove_tree(tmp), QS_OK);
    assert_false(exists(tmp));
    assert_int_equal(qstar_remove_tree(tmp), QS_OK); // missing: fine
}

typedef struct {
    int calls, finished;
    uint64_t last_docs;
} prep_seen;

static void on_prep(void *user, const qstar_prepare_progress *p) {
    prep_seen *s = user;
    s->calls++;
    s->finished |= p->file == p->n_files;
    s->last_docs = p->docs;
}

static void test_prepare(void **state) {
    (void)state;
    char tok[4096];
    if (!tu_data_path("stories260K/tok512.bin", tok, sizeof tok)) { skip(); return; }
    char tmp[] = "/tmp/qs_api_prep_XXXXXX";
    assert_non_null(mkdtemp(tmp));
    char txt[4200], out[4200];
    snprintf(txt, sizeof txt, "%s/docs.txt", tmp);
    snprintf(out, sizeof out, "%s/tk", tmp);
    static const char *docs[] = {"Once upon a time there was a cat.", "The dog ran to the park.",
                                 "Lily and Ben played with a big red ball all day long.", "The end."};
    const int n_docs = 4;
    char all[1024] = "";
    for (int i = 0; i < n_docs; i++) {
        strcat(all, docs[i]);
        strcat(all, i + 1 < n_docs ? "\n\n" : "\n");
    }
    write_text(txt, all);
    qstar_tokenizer *t = NULL;
    assert_int_equal(qstar_tokenizer_load(tok, NULL, &t), QS_OK);
    uint64_t want = 0;
    for (int i = 0; i < n_docs; i++) {
        int *ids = NULL, n = 0;
        assert_int_equal(qstar_tokenizer_encode_alloc(t, docs[i], 1, 0, &ids, &n), QS_OK);
        want += (uint64_t)n;
        qstar_tokenizer_ids_free(ids);
    }
    const char *inputs[] = {txt};
    qstar_prepare_params p = qstar_prepare_params_default();
    p.tokenizer = t, p.inputs = inputs, p.n_inputs = 1, p.out_dir = out, p.val_frac = 0.25;
    prep_seen seen = {0};
    qstar_prepare_result r;
    assert_int_equal(qstar_prepare(&p, on_prep, &seen, &r), QS_OK);
    assert_int_equal(r.n_docs, n_docs);
    assert_int_equal(r.n_tokens, want);
    assert_int_equal(r.width, 2);
    assert_int_equal(r.vocab_size, 512);
    assert_int_equal(r.train_docs, 3); // the last document held out
    assert_true(r.train_tokens < r.n_tokens);
    assert_true(seen.calls >= 1 && seen.finished);
    assert_int_equal(seen.last_docs, n_docs);
    char meta[4300];
    snprintf(meta, sizeof meta, "%s/meta.json", out);
    assert_true(exists(meta));
    // by path, into the same directory: refused (it holds a prepared corpus)
    p.tokenizer = NULL, p.tokenizer_path = tok;
    assert_int_equal(qstar_prepare(&p, NULL, NULL, NULL) == QS_OK, 0);
    assert_non_null(strstr(qstar_last_error(), out));
    p.n_inputs = 0;
    assert_int_equal(qstar_prepare(&p, NULL, NULL, NULL), QS_ERR_ARG);
    qstar_tokenizer_free(t);
    assert_int_equal(qstar_remove_tree(tmp), QS_OK);
}

static void test_bench_sgemm(void **state) {
    (void)state;
    double g[3] = {0};
    assert_int_equal(qstar_bench_sgemm(8, 16, 32, QSTAR_FP32, 0, 3, g, NULL), QS_OK);
    for (int i = 0; i < 3; i++) assert_true(isfinite(g[i]) && g[i] > 0);
    assert_int_equal(qstar_bench_sgemm(17, 5, 9, QSTAR_BF16, 0, 1, g, NULL), QS_OK);
    assert_true(isfinite(g[0]) && g[0] > 0);
    assert_int_equal(qstar_bench_sgemm(0, 16, 32, QSTAR_FP32, 0, 1, g, NULL), QS_ERR_ARG);
    assert_int_equal(qstar_bench_sgemm(8, 16, 32, QSTAR_FP32, 0, 0, g, NULL), QS_ERR_ARG);
    assert_int_equal(qstar_bench_sgemm(8, 16, 32, (qstar_precision)7, 0, 1, g, NULL), QS_ERR_ARG);
}

// bench/run_bench.py's FLOP count of the same configuration (NAN when Python
// or the script is unavailable).
static double python_flops(const qstar_bench_params *p) {
    char cmd[8192], line[256];
    if (p->kind == QSTAR_BENCH_LM)
        snprintf(cmd, sizeof cmd, "cd '%s/bench' && python3 -c 'import run_bench as r; "
                 "print(repr(float(r.lm_flops(r.SHAPES[\"260k\"], %d, %d))))' 2>/dev/null", g_root, p->B, p->T);
    else
        snprintf(cmd, sizeof cmd, "cd '%s/bench' && python3 -c 'import run_bench as r; "
                 "print(repr(float(r.step_flops(r.SHAPES[\"260k\"], %d, %d, %d, %d, %d))))' 2>/dev/null", g_root,
                 p->B, p->T, p->n_ahead, p->n_talk, p->n_passes);
    if (run_line(cmd, line, sizeof line) != 0 || !line[0]) return NAN;
    return strtod(line, NULL);
}

static int stop_after_one(void *user, const qstar_bench_iter *it) {
    (*(int *)user)++;
    return !it->warmup;
}

static void test_bench_run(void **state) {
    (void)state;
    qstar_bench_params p = qstar_bench_params_default();
    p.shape = "260k", p.B = 1, p.T = 8, p.warmup = 1, p.iters = 2;
    qstar_bench_result *r = calloc(1, sizeof *r);
    assert_int_equal(qstar_bench_run(&p, NULL, NULL, r), QS_OK);
    assert_int_equal(r->n_params, 260032);
    assert_int_equal(r->iters, 2);
    assert_true(r->median_s > 0 && isfinite(r->loss) && r->loss > 0);
    assert_true(r->peak_rss_kb >= r->rss_after_load_kb && r->rss_after_load_kb > 0 && r->work_bytes > 0);
    double want = python_flops(&p);
    if (isnan(want)) fprintf(stderr, "[  SKIP    ] python3 or bench/run_bench.py unavailable: FLOPs not compared\n");
    else assert_true(fabs(r->flops - want) <= 1e-9 * want);
    p.kind = QSTAR_BENCH_QSTAR, p.n_ahead = 4, p.n_talk = 2;
    assert_int_equal(qstar_bench_run(&p, NULL, NULL, r), QS_OK);
    assert_int_equal(r->n_ahead, 4);
    assert_true(r->layers_kept > 0 && isfinite(r->loss));
    for (int i = 0; i < r->iters; i++)
        assert_true(r->iter[i].think_s > 0 && r->iter[i].backward_s > 0 &&
                    r->iter[i].step_s + r->iter[i].adamw_s <= r->iter[i].seconds + 1e-9);
    want = python_flops(&p);
    if (!isnan(want)) assert_true(fabs(r->flops - want) <= 1e-9 * want);
    int calls = 0;
    assert_int_equal(qstar_bench_run(&p, stop_after_one, &calls, r), QS_ERR_INTERRUPTED);
    assert_int_equal(calls, 2); // the warm-up, then the first timed step stops it
    p.shape = "7b";
    assert_int_equal(qstar_bench_run(&p, NULL, NULL, r), QS_ERR_ARG);
    assert_non_null(strstr(qstar_last_error(), "7b"));
    p.shape = "260k", p.iters = QSTAR_BENCH_MAX_ITERS + 1;
    assert_int_equal(qstar_bench_run(&p, NULL, NULL, r), QS_ERR_ARG);
    free(r);
}

int main(int argc, char **argv) {
    (void)argc;
    // ROOT/build/tests/test_api_tools -> ROOT, ROOT/build/qstar
    char self[4096];
    if (!realpath(argv[0], self)) snprintf(self, sizeof self, "%s", argv[0]);
    for (int up = 0; up < 3; up++) {
        char *sl = strrchr(self, '/');
        if (sl) *sl = 0;
        if (up == 1) snprintf(g_qstar, sizeof g_qstar, "%s/qstar", self);
    }
    snprintf(g_root, sizeof g_root, "%s", self);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokenizer_errors), cmocka_unit_test(test_tokenizer_llama2c),
        cmocka_unit_test(test_tokenizer_json),   cmocka_unit_test(test_out_paths),
        cmocka_unit_test(test_prepare),          cmocka_unit_test(test_bench_sgemm),
        cmocka_unit_test(test_bench_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

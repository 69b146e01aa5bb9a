// test_evaltask.c: the zero-shot task evaluation (SPEC section 5) and the
// held-out NLL with thoughts: answer parsing, prompts exactly as the SPEC
// writes them, valid-token sets, answer-token positions, restricted
// probabilities on hand-made logits, example scores of a small random model
// against an independent computation (full-sequence logits / a replayed
// thinker), NLL summaries, and the viz escaping helpers.
#include "testutil.h"
#include "io/model_io.h"
#include "model/transformer.h"
#include "quietstar/nll_eval.h"
#include "quietstar/task_data.h"
#include "quietstar/task_score.h"
#include "quietstar/think.h"
#include "quietstar/viz.h"

#include <unistd.h>

// ---------------------------------------------------------------------------
// A tiny llama2.c tokenizer written to a temp file: 3 specials, 256 byte
// tokens (<0xXX> = id byte+3) and a few pieces.
static const char *PIECES[] = {" ", "1", "2", "A", "B", "Q", ":", " 1", "12", " B", "Q:"};
static const float SCORES[] = {0, 0, 0, 0, 0, 0, 0, -1, -0.5f, -1, -2};
enum { NP = sizeof PIECES / sizeof PIECES[0], TV = 3 + 256 + NP };
enum { ID_SPACE = 259, ID_1, ID_2, ID_A, ID_B, ID_Q, ID_COLON, ID_SP1, ID_12, ID_SPB, ID_QCOLON };

static void put_tok(FILE *f, float score, const char *s) {
    int len = (int)strlen(s);
    fwrite(&score, 4, 1, f);
    fwrite(&len, 4, 1, f);
    fwrite(s, 1, (size_t)len, f);
}

static qs_tokenizer *tiny_tokenizer(void) {
    char path[] = "/tmp/qstar_test_tokXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "wb");
    int mtl = 8;
    fwrite(&mtl, 4, 1, f);
    put_tok(f, 0, "<unk>");
    put_tok(f, 0, "\n<s>\n");
    put_tok(f, 0, "\n</s>\n");
    for (int b = 0; b < 256; b++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        put_tok(f, 0, s);
    }
    for (int k = 0; k < NP; k++) put_tok(f, SCORES[k], PIECES[k]);
    fclose(f);
    qs_tokenizer *t;
    if (qs_tokenizer_load(&t, path, TV) != QS_OK) fail_msg("%s", qstar_last_error());
    unlink(path);
    return t;
}

// ---------------------------------------------------------------------------

static void test_gsm8k_final_number(void **st) {
    (void)st;
    char out[64];
    assert_int_equal(qs_gsm8k_final_number("Janet sells 9 eggs.\n#### 1,234", out, sizeof out), QS_OK);
    assert_string_equal(out, "1234");
    assert_int_equal(qs_gsm8k_final_number("a\n#### 18\n", out, sizeof out), QS_OK);
    assert_string_equal(out, "18");
    assert_int_equal(qs_gsm8k_final_number("x #### 5 then\n####  -3,000,000 ", out, sizeof out), QS_OK);
    assert_string_equal(out, "-3000000");
    assert_int_equal(qs_gsm8k_final_number("no answer line", out, sizeof out), QS_ERR_FORMAT);
    assert_int_equal(qs_gsm8k_final_number("#### ", out, sizeof out), QS_ERR_FORMAT);
    assert_int_equal(qs_gsm8k_final_number("#### 123456", out, 4), QS_ERR_FORMAT);
}

static void test_prompts(void **st) {
    (void)st;
    qs_task_prompt p;
    assert_int_equal(qs_gsm8k_prompt("How many?", "1234", &p), QS_OK);
    assert_string_equal(p.prompt, "Q: How many?\nA: 1234\n");
    assert_string_equal(p.prompt + p.answer_off, " 1234\n");
    assert_string_equal(p.answer, "1234");
    qs_task_prompt_free(&p);

    const char *labels[5] = {"A", "B", "C", "D", "E"};
    const char *texts[5] = {"bank", "library", "department store", "mall", "new york"};
    assert_int_equal(qs_csqa_prompt("Where is it?", labels, texts, 5, "C", &p), QS_OK);
    assert_string_equal(p.prompt, "Q: Where is it?\n(A) bank\n(B) library\n(C) department store\n(D) mall\n(E) new york\nA: C\n");
    assert_string_equal(p.prompt + p.answer_off, " C\n");
    qs_task_prompt_free(&p);

    // the data files' JSONL records
    assert_int_equal(qs_task_parse_line(QS_TASK_GSM8K,
                                        "{\"question\": \"Janet\\u2019s ducks lay 16 eggs.\", \"answer\": \"16 - 3 = <<16-3=13>>13\\n#### 1,013\"}",
                                        &p), QS_OK);
    assert_string_equal(p.prompt, "Q: Janet\xe2\x80\x99s ducks lay 16 eggs.\nA: 1013\n");
    assert_string_equal(p.answer, "1013");
    qs_task_prompt_free(&p);
    assert_int_equal(qs_task_parse_line(QS_TASK_CSQA,
                                        "{\"answerKey\": \"B\", \"id\": \"x\", \"question\": {\"question_concept\": \"c\", "
                                        "\"choices\": [{\"label\": \"A\", \"text\": \"bank\"}, {\"label\": \"B\", \"text\": \"mall\"}], "
                                        "\"stem\": \"Where?\"}}",
                                        &p), QS_OK);
    assert_string_equal(p.prompt, "Q: Where?\n(A) bank\n(B) mall\nA: B\n");
    assert_string_equal(p.answer, "B");
    qs_task_prompt_free(&p);
    assert_int_equal(qs_task_parse_line(QS_TASK_GSM8K, "{\"question\": \"q\"}", &p), QS_ERR_FORMAT);
    assert_int_equal(qs_task_parse_line(QS_TASK_CSQA, "{\"answerKey\": \"B\"}", &p), QS_ERR_FORMAT);
    assert_int_equal(qs_task_parse_line(QS_TASK_CSQA, "not json", &p), QS_ERR_FORMAT);
}

static void test_valid_tokens(void **st) {
    (void)st;
    qs_tokenizer *t = tiny_tokenizer();
    int *ids, n;
    assert_int_equal(qs_task_valid_tokens(t, qs_task_chars(QS_TASK_GSM8K), &ids, &n), QS_OK);
    // the pieces "1", "2" and " 1" (leading space ignored; not "12" or " "), the
    // newline byte and the byte tokens of the digits that have no piece
    int want[] = {0x0A + 3, 0x30 + 3, 0x33 + 3, 0x34 + 3, 0x35 + 3, 0x36 + 3, 0x37 + 3, 0x38 + 3, 0x39 + 3,
                  ID_1, ID_2, ID_SP1};
    assert_int_equal(n, (int)(sizeof want / sizeof want[0]));
    for (int k = 0; k < n; k++) assert_int_equal(ids[k], want[k]);
    free(ids);
    assert_int_equal(qs_task_valid_tokens(t, qs_task_chars(QS_TASK_CSQA), &ids, &n), QS_OK);
    int want2[] = {0x0A + 3, 0x43 + 3, 0x44 + 3, 0x45 + 3, ID_A, ID_B, ID_SPB};
    assert_int_equal(n, (int)(sizeof want2 / sizeof want2[0]));
    for (int k = 0; k < n; k++) assert_int_equal(ids[k], want2[k]);
    free(ids);
    assert_int_equal(qs_task_valid_tokens(t, "AZ", &ids, &n), QS_OK); // Z only as a byte token
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 0x5A + 3);
    assert_int_equal(ids[1], ID_A);
    free(ids);
    qs_tokenizer_free(t);
}

static void test_encode_answer_positions(void **st) {
    (void)st;
    qs_tokenizer *t = tiny_tokenizer();
    qs_task_prompt p;
    qs_task_item it;
    // " 12\n": " " (whitespace only: skipped), "12", "\n"
    assert_int_equal(qs_gsm8k_prompt("x", "12", &p), QS_OK);
    assert_int_equal(qs_task_encode(t, &p, 1, 64, &it), QS_OK);
    assert_int_equal(it.tokens[0], 1); // BOS
    char buf[256];
    assert_int_equal(qs_tokenizer_decode(t, it.tokens, it.n, buf, sizeof buf), QS_OK);
    assert_string_equal(buf, p.prompt);
    assert_int_equal(it.n_ans, 2);
    assert_int_equal(it.tokens[it.pos[0] + 1], ID_12);
    assert_int_equal(it.tokens[it.pos[1] + 1], 0x0A + 3);
    assert_int_equal(it.pos[1], it.n - 2);
    assert_int_equal(it.tokens[it.pos[0]], ID_SPACE);
    qs_task_item_free(&it);
    // without skipping, the space is the first answer token
    assert_int_equal(qs_task_encode(t, &p, 0, 64, &it), QS_OK);
    assert_int_equal(it.n_ans, 3);
    assert_int_equal(it.tokens[it.pos[0] + 1], ID_SPACE);
    qs_task_item_free(&it);
    qs_task_prompt_free(&p);
    // " 1\n": the first answer token " 1" carries the space and is kept
    assert_int_equal(qs_gsm8k_prompt("x", "1", &p), QS_OK);
    assert_int_equal(qs_task_encode(t, &p, 1, 64, &it), QS_OK);
    assert_int_equal(it.n_ans, 2);
    assert_int_equal(it.tokens[it.pos[0] + 1], ID_SP1);
    int n_full = it.n;
    qs_task_item_free(&it);
    // left truncation keeps BOS and the answer
    assert_int_equal(qs_task_encode(t, &p, 1, n_full - 2, &it), QS_OK);
    assert_int_equal(it.n, n_full - 2);
    assert_int_equal(it.truncated, 2);
    assert_int_equal(it.tokens[0], 1);
    assert_int_equal(it.tokens[it.pos[0] + 1], ID_SP1);
    assert_int_equal(it.tokens[it.n - 1], 0x0A + 3);
    qs_task_item_free(&it);
    assert_int_equal(qs_task_encode(t, &p, 1, 2, &it), QS_ERR_ARG); // answer does not fit
    qs_task_prompt_free(&p);
    // CSQA " B\n"
    const char *labels[2] = {"A", "B"}, *texts[2] = {"x", "y"};
    assert_int_equal(qs_csqa_prompt("Q", labels, texts, 2, "B", &p), QS_OK);
    assert_int_equal(qs_task_encode(t, &p, 1, 64, &it), QS_OK);
    assert_int_equal(it.n_ans, 2);
    assert_int_equal(it.tokens[it.pos[0] + 1], ID_SPB);
    qs_task_item_free(&it);
    qs_task_prompt_free(&p);
    qs_tokenizer_free(t);
}

static void test_restricted_prob(void **st) {
    (void)st;
    const float z[6] = {5.0f, 1.0f, -2.0f, 0.5f, 9.0f, 1.0f};
    const int valid[3] = {1, 3, 5};
    int am, in;
    double den = exp(1.0) + exp(0.5) + exp(1.0);
    double p = qs_restricted_prob(z, valid, 3, 3, &am, &in);
    assert_true(fabs(p - exp(0.5) / den) < 1e-12);
    assert_int_equal(am, 0);
    assert_int_equal(in, 1);
    // ties: the first id wins the argmax
    p = qs_restricted_prob(z, valid, 3, 1, &am, &in);
    assert_true(fabs(p - exp(1.0) / den) < 1e-12);
    assert_int_equal(am, 1);
    p = qs_restricted_prob(z, valid, 3, 5, &am, &in);
    assert_int_equal(am, 0);
    // a target outside the set joins it
    p = qs_restricted_prob(z, valid, 3, 0, &am, &in);
    assert_true(fabs(p - exp(5.0) / (den + exp(5.0))) < 1e-12);
    assert_int_equal(am, 1);
    assert_int_equal(in, 0);
    // large logits stay finite
    const float big[6] = {1000, 2000, 0, 2000, 0, 1999};
    p = qs_restricted_prob(big, valid, 3, 5, NULL, NULL);
    assert_true(fabs(p - exp(-1.0) / (2 + exp(-1.0))) < 1e-9);
}

static void test_opts_json(void **st) {
    (void)st;
    qs_qstar_opts o, r;
    qs_qstar_opts_default(&o);
    o.n_ahead = 8, o.n_talk = 3, o.tau_sample = 0.5f, o.mixing = QS_MIX_SIGMOID, o.embedding_scale = 10;
    char *j;
    assert_int_equal(qs_qstar_opts_to_json(&o, &j), QS_OK);
    qs_qstar_opts_default(&r);
    assert_int_equal(qs_qstar_opts_from_json(j, &r), QS_OK);
    free(j);
    assert_int_equal(r.n_ahead, 8);
    assert_int_equal(r.n_talk, 3);
    assert_true(r.tau_sample == 0.5f);
    assert_true(r.embedding_scale == 10.0f);
    assert_int_equal(r.mixing, QS_MIX_SIGMOID);
    qs_qstar_opts_default(&r);
    assert_int_equal(qs_qstar_opts_from_json("{\"n_ahead\":12,\"tau_sample\":1}", &r), QS_OK);
    assert_int_equal(r.n_ahead, 12);
    assert_int_not_equal(qs_qstar_opts_from_json("{\"n_ahead\":2}", &r), QS_OK);
    assert_int_not_equal(qs_qstar_opts_from_json("{\"mixing\":\"cubic\"}", &r), QS_OK);
    assert_int_not_equal(qs_qstar_opts_from_json("[1]", &r), QS_OK);
}

// ---------------------------------------------------------------------------
// A small random model over the tiny vocabulary, with Quiet-STaR tensors.

static void tiny_model(qs_model *m, float head_std) {
    qs_config c = {.arch = QS_ARCH_LLAMA, .dim = 16, .hidden_dim = 32, .n_layers = 2, .n_heads = 2, .n_kv_heads = 1,
                   .head_dim = 8, .vocab_size = TV, .max_seq_len = 64, .rope_theta = 10000.0f, .norm_eps = 1e-5f,
                   .tied_embeddings = 1, .qkv_bias = 0, .bos_id = 1, .eos_id = 2};
    assert_int_equal(qs_model_create(m, &c, 1), QS_OK);
    qs_model_init_random(m, 7);
    // stronger embeddings than N(0, 0.02) so that the logits differ visibly
    for (size_t k = 0; k < (size_t)TV * c.dim; k++) m->w.embed[k] *= 25.0f;
    qs_qstar_opts o;
    qs_qstar_opts_default(&o);
    assert_int_equal(qs_qstar_init_tensors(m, &o, ID_SPACE, 0, 3), QS_OK);
    qs_rng r;
    qs_rng_seed(&r, 11);
    for (int k = 0; k < c.dim; k++) m->w.head_w3[k] = head_std * qs_rng_normal(&r);
}

static qs_task_item csqa_item(qs_tokenizer *t, const char *key) {
    const char *labels[5] = {"A", "B", "C", "D", "E"};
    const char *texts[5] = {"one", "two", "three", "four", "five"};
    qs_task_prompt p;
    assert_int_equal(qs_csqa_prompt("Which 12?", labels, texts, 5, key, &p), QS_OK);
    qs_task_item it;
    assert_int_equal(qs_task_encode(t, &p, 1, 64, &it), QS_OK);
    qs_task_prompt_free(&p);
    return it;
}

// Without thoughts: the score is the product of restricted probabilities of
// the full-sequence logits (qs_lm_step), computed here independently.
static void test_score_plain(void **st) {
    (void)st;
    qs_tokenizer *t = tiny_tokenizer();
    qs_model m;
    tiny_model(&m, 0.0f);
    int *valid, nv;
    assert_int_equal(qs_task_valid_tokens(t, qs_task_chars(QS_TASK_CSQA), &valid, &nv), QS_OK);
    const char *keys[3] = {"A", "B", "E"};
    qs_task_scorer *sc;
    assert_int_equal(qs_task_scorer_create(&sc, &m, NULL, 0, 64), QS_OK);
    for (int e = 0; e < 3; e++) {
        qs_task_item it = csqa_item(t, keys[e]);
        qs_task_result r;
        assert_int_equal(qs_task_score(sc, &it, valid, nv, NULL, &r), QS_OK);
        // independent: logits of every position from one plain forward
        qs_workspace *ws;
        assert_int_equal(qs_workspace_create(&ws, &m.cfg, 1, it.n, 1), QS_OK);
        float *z = malloc(sizeof(float) * it.n * TV), loss;
        assert_int_equal(qs_lm_step(&m, ws, it.tokens, NULL, 1, it.n, &loss, z, NULL, 0, NULL), QS_OK);
        double want = 1.0;
        int exact = 1;
        assert_int_equal(r.n_ans, it.n_ans);
        for (int a = 0; a < it.n_ans; a++) {
            const float *row = z + (size_t)it.pos[a] * TV;
            int tgt = it.tokens[it.pos[a] + 1], best = -1, in = 0;
            double den = 0;
            for (int k = 0; k < nv; k++) {
                den += exp((double)row[valid[k]]);
                if (best < 0 || row[valid[k]] > row[best]) best = valid[k];
                in |= valid[k] == tgt;
            }
            assert_true(in);
            double p = exp((double)row[tgt]) / den;
            assert_true(fabs(r.prob[a] - p) < 1e-5 * p + 1e-9);
            want *= p;
            exact &= best == tgt;
        }
        assert_true(fabs(r.score - want) < 1e-5 * want + 1e-12);
        assert_int_equal(r.exact, exact);
        assert_true(r.score > 0 && r.score < 1);
        free(z);
        qs_workspace_free(ws);
        qs_task_item_free(&it);
    }
    qs_task_scorer_free(sc);
    free(valid);
    qs_model_free(&m);
    qs_tokenizer_free(t);
}

// With thoughts: a zero talk-head output layer gives w = 0, so the mixed
// logits are the plain ones; a random one changes them, and the score then
// equals one thought per answer position replayed with a thinker.
static void test_score_think(void **st) {
    (void)st;
    qs_tokenizer *t = tiny_tokenizer();
    int *valid, nv;
    assert_int_equal(qs_task_valid_tokens(t, qs_task_chars(QS_TASK_CSQA), &valid, &nv), QS_OK);
    qs_qstar_opts o;
    qs_qstar_opts_default(&o);
    o.n_ahead = 6;
    qs_task_item it = csqa_item(t, "C");
    for (int pass = 0; pass < 2; pass++) {
        qs_model m;
        tiny_model(&m, pass ? 3.0f : 0.0f);
        qs_task_scorer *plain, *think;
        assert_int_equal(qs_task_scorer_create(&plain, &m, &o, 0, 64), QS_OK);
        assert_int_equal(qs_task_scorer_create(&think, &m, &o, 1, 64), QS_OK);
        qs_task_result rp, rt;
        qs_rng rng;
        qs_rng_seed(&rng, 5);
        assert_int_equal(qs_task_score(plain, &it, valid, nv, NULL, &rp), QS_OK);
        assert_int_equal(qs_task_score(think, &it, valid, nv, &rng, &rt), QS_OK);
        assert_int_equal(rt.n_ans, it.n_ans);
        if (!pass) {
            assert_true(fabs(rt.score - rp.score) < 1e-5 * rp.score);
            for (int a = 0; a < rt.n_ans; a++) assert_true(rt.mix_w[a] == 0.0f);
        } else {
            assert_true(fabs(rt.score - rp.score) > 1e-4 * rp.score); // the thoughts matter
            // replay: feed every token, think at the answer positions in order
            qs_thinker *th;
            assert_int_equal(qs_thinker_create(&th, &m, &o, it.n), QS_OK);
            qs_rng_seed(&rng, 5);
            float *z = malloc(sizeof(float) * TV), w;
            int thought[8], a = 0;
            double want = 1.0;
            for (int i = 0; i <= it.pos[it.n_ans - 1]; i++) {
                assert_int_equal(qs_thinker_feed(th, it.tokens[i], i), QS_OK);
                if (i != it.pos[a]) continue;
                assert_int_equal(qs_thinker_think(th, &rng, z, thought, &w), QS_OK);
                double p = qs_restricted_prob(z, valid, nv, it.tokens[i + 1], NULL, NULL);
                assert_true(fabs(p - rt.prob[a]) < 1e-9);
                assert_true(w == rt.mix_w[a]);
                want *= p;
                a++;
            }
            assert_true(fabs(want - rt.score) < 1e-9 * want);
            free(z);
            qs_thinker_free(th);
        }
        // scoring the same example again with the same seed gives the same result
        qs_task_result again;
        qs_rng_seed(&rng, 5);
        assert_int_equal(qs_task_score(think, &it, valid, nv, &rng, &again), QS_OK);
        assert_true(again.score == rt.score);
        qs_task_scorer_free(plain);
        qs_task_scorer_free(think);
        qs_model_free(&m);
    }
    qs_task_item_free(&it);
    free(valid);
    qs_tokenizer_free(t);
}

// NLL: the plain path matches qs_lm_nll; with w = 0 thinking changes nothing;
// the summary's hardest-token means follow the records.
static void test_nll_eval(void **st) {
    (void)st;
    qs_model m;
    tiny_model(&m, 0.0f);
    enum { N = 150, T = 32 };
    int toks[N];
    qs_rng r;
    qs_rng_seed(&r, 99);
    for (int i = 0; i < N; i++) toks[i] = i % 40 == 0 ? 1 : 3 + (int)qs_rng_below(&r, TV - 3);
    size_t d0 = 0;
    qs_token_stream s = {.tokens = toks, .n_tokens = N, .doc_start = &d0, .n_docs = 1};
    qs_nll_tokens rec = {0};
    qs_nll_summary sum;
    assert_int_equal(qs_nll_eval(&m, &s, NULL, 0, 2, T, NULL, &rec, NULL, NULL, &sum), QS_OK);
    // windows of 32: 5 windows, 31+31+31+31+21 targets
    assert_int_equal(sum.n_tokens, 4 * 31 + 21);
    assert_int_equal((long)rec.n, sum.n_tokens);
    assert_true(isnan(sum.nll_think));
    qs_workspace *ws;
    assert_int_equal(qs_workspace_create(&ws, &m.cfg, 5, T, 1), QS_OK);
    int bt[5 * T], bm[5 * T], rows;
    assert_int_equal(qs_stream_eval_batch(&s, 0, 5, T, bt, bm, &rows), QS_OK);
    double tot;
    long cnt;
    assert_int_equal(qs_lm_nll(&m, ws, bt, bm, 5, T, &tot, &cnt), QS_OK);
    assert_int_equal(cnt, sum.n_tokens);
    assert_true(fabs(tot / cnt - sum.nll_base) < 1e-5);
    qs_workspace_free(ws);

    qs_qstar_opts o;
    qs_qstar_opts_default(&o);
    o.n_ahead = 5;
    qs_nll_tokens rec2 = {0};
    qs_nll_summary s2;
    qs_rng_seed(&r, 1);
    assert_int_equal(qs_nll_eval(&m, &s, &o, 1, 3, T, &r, &rec2, NULL, NULL, &s2), QS_OK);
    assert_int_equal((long)rec2.n, sum.n_tokens);
    assert_int_equal(rec2.n_thought, 2);
    for (size_t k = 0; k < rec2.n; k++) {
        assert_int_equal(rec2.t[k].token, rec.t[k].token);
        assert_true(fabsf(rec2.t[k].nll_base - rec.t[k].nll_base) < 1e-4f);
        assert_true(fabsf(rec2.t[k].nll_think - rec2.t[k].nll_base) < 1e-4f); // w = 0
        for (int u = 0; u < 2; u++) {
            int th = rec2.thoughts[rec2.t[k].thought + u];
            assert_true(th >= 0 && th < TV);
        }
    }
    assert_true(fabs(s2.nll_think - s2.nll_base) < 1e-4);
    qs_nll_tokens_free(&rec);
    qs_nll_tokens_free(&rec2);

    // summary on hand-made records: 10 tokens with base NLL 1..10
    qs_nll_tokens h = {0};
    h.t = calloc(10, sizeof *h.t);
    h.n = h.cap = 10;
    for (int k = 0; k < 10; k++) h.t[k].nll_base = (float)(k + 1), h.t[k].nll_think = (float)(k + 1) - 0.5f * (k == 9);
    qs_nll_summarize(&h, 1, &sum);
    assert_true(fabs(sum.nll_base - 5.5) < 1e-9);
    assert_true(fabs(sum.nll_think - 5.45) < 1e-9);
    assert_true(fabs(sum.hard10_base - 10) < 1e-9 && fabs(sum.hard10_think - 9.5) < 1e-9);
    assert_true(fabs(sum.hard20_base - 9.5) < 1e-9 && fabs(sum.hard20_think - 9.25) < 1e-9);
    qs_nll_tokens_free(&h);
    qs_model_free(&m);
}

static char *capture(void (*fn)(FILE *, const char *), const char *s) {
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    fn(f, s);
    fclose(f);
    return buf;
}

static void test_viz_escape(void **st) {
    (void)st;
    char *h = capture(qs_viz_html_escape, "<a href=\"x\">'&'</a>\xff ok \xe2\x80\x9c");
    assert_string_equal(h, "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;\xef\xbf\xbd ok \xe2\x80\x9c");
    free(h);
    char *j = capture(qs_viz_js_string, "</script>\n\"q\"\\ \xe2\x80\xa8");
    assert_string_equal(j, "\"\\u003c/script\\u003e\\n\\\"q\\\"\\\\ \\u2028\"");
    free(j);
    // an incomplete character is replaced, not passed through
    j = capture(qs_viz_js_string, "a\xe2\x80");
    assert_string_equal(j, "\"a\xef\xbf\xbd\xef\xbf\xbd\"");
    free(j);
}

// The page of a tiny model: every token's text appears, no external URL.
static void test_viz_page(void **st) {
    (void)st;
    qs_tokenizer *t = tiny_tokenizer();
    qs_model m;
    tiny_model(&m, 2.0f);
    qs_qstar_opts o;
    qs_qstar_opts_default(&o);
    o.n_ahead = 5;
    int ids[64], n;
    assert_int_equal(qs_tokenizer_encode(t, "Q: <b>&12</b>\n\xe2\x80\x9c" "B\xe2\x80\x9d", 1, 0, ids, 64, &n), QS_OK);
    qs_nll_tokens rec = {0};
    qs_rng r;
    qs_rng_seed(&r, 3);
    assert_int_equal(qs_viz_compute(&m, &o, ids, n, &r, &rec), QS_OK);
    assert_int_equal((int)rec.n, n - 1);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    qs_viz_page page = {.title = "t<1>", .subtitle = "s", .n_ahead = 5};
    assert_int_equal(qs_viz_write_html(f, t, ids, n, &rec, &page), QS_OK);
    fclose(f);
    assert_null(strstr(buf, "http:"));
    assert_null(strstr(buf, "https:"));
    assert_null(strstr(buf, "<b>&"));
    assert_null(strstr(buf, "12</b>"));
    assert_non_null(strstr(buf, ">&lt;</span>"));
    assert_non_null(strstr(buf, ">&gt;</span>"));
    assert_non_null(strstr(buf, "&amp;"));
    assert_non_null(strstr(buf, "<title>t&lt;1&gt;</title>"));
    // the curly quotes (3 byte tokens each) come out whole
    assert_non_null(strstr(buf, "\xe2\x80\x9c"));
    assert_non_null(strstr(buf, "\xe2\x80\x9d"));
    // one span per token
    size_t spans = 0;
    for (const char *p = buf; (p = strstr(p, "<span class=\"t\"")); p++) spans++;
    assert_int_equal(spans, rec.n);
    free(buf);
    qs_nll_tokens_free(&rec);
    qs_model_free(&m);
    qs_tokenizer_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gsm8k_final_number), cmocka_unit_test(test_prompts),
        cmocka_unit_test(test_valid_tokens),      cmocka_unit_test(test_encode_answer_positions),
        cmocka_unit_test(test_restricted_prob),   cmocka_unit_test(test_opts_json),
        cmocka_unit_test(test_score_plain),       cmocka_unit_test(test_score_think),
        cmocka_unit_test(test_nll_eval),          cmocka_unit_test(test_viz_escape),
        cmocka_unit_test(test_viz_page),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

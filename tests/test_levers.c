// test_levers.c: the levers of the thinking experiment.
//  - think-when: a threshold above every base entropy gives exactly the
//    no-think output, below every entropy exactly the always-think output
//    (same seed), in generation and in the held-out NLL evaluation; in
//    between, thoughts exactly where the entropy exceeds the threshold;
//  - the entropy itself against a double-precision hand computation;
//  - random thought tokens: in range, never banned, the eval uses them;
//  - think-at (anchored thinking in the held-out NLL evaluation), with a
//    72-token llama2.c tokenizer built in memory: thoughts exactly at the
//    positions where the window's decoded text (qs_tokenizer_decode: BOS and
//    EOS are no text) ends with the anchor, the next n_talk tokens scored
//    bitwise from the Quiet-STaR step's talk passes k at that anchor (a later
//    anchor within n_talk takes over; talk ranges cut at the window end and
//    at padding), every other token the base prediction; talk 0 equals
//    always thinking; an absent anchor is no thinking; bad settings refused;
//  - the EMA reward baseline against a hand computation on a tiny model;
//  - the curriculum parser.
#include "testutil.h"
#include "io/model_io.h"
#include "model/transformer.h"
#include "model/workspace.h"
#include "quietstar/nll_eval.h"
#include "quietstar/think.h"
#include "tokenizer/tokenizer.h"
#include "train/curriculum.h"
#include "ops/ops.h"

#include <math.h>

static void load_fixture_model(qs_model *m) {
    const char *root = getenv("QSTAR_FIXTURES");
    char d[4096];
    snprintf(d, sizeof d, "%s/quietstar/b_gqa_pad/model", root && *root ? root : "tests/fixtures");
    if (qs_model_load(m, d, NULL) != QS_OK) fail_msg("%s", qstar_last_error());
}

typedef struct {
    int tokens[64], has_thought[64], thoughts[64][8];
    float mix[64];
    int n;
} rec;

static int record(void *ud, int token, const char *piece, const int *thought, int n_thought, float w) {
    (void)piece;
    rec *r = ud;
    if (r->n >= 64) return 1;
    r->tokens[r->n] = token, r->mix[r->n] = w, r->has_thought[r->n] = thought != NULL;
    for (int u = 0; u < n_thought && u < 8; u++) r->thoughts[r->n][u] = thought[u];
    r->n++;
    return 0;
}

static void test_entropy_by_hand(void **st) {
    (void)st;
    float z[5] = {1.0f, -2.0f, 0.5f, 3.0f, 3.0f};
    double s = 0, h = 0;
    for (int v = 0; v < 5; v++) s += exp(z[v]);
    for (int v = 0; v < 5; v++) { double p = exp(z[v]) / s; h -= p * log(p); }
    assert_true(fabs(qs_logits_entropy(z, 5) - h) < 1e-9);
    float u[4] = {7, 7, 7, 7};
    assert_true(fabs(qs_logits_entropy(u, 4) - log(4.0)) < 1e-12);
    int ban[2] = {0, 2};
    for (int k = 0; k < 1000; k++) {
        int t = qs_random_thought_token(5, ban, 2, (float)k / 1000.0f);
        assert_true(t == 1 || t == 3 || t == 4);
    }
    assert_int_equal(qs_random_thought_token(5, ban, 2, 0.0f), 1);
    assert_int_equal(qs_random_thought_token(5, ban, 2, 0.999f), 4);
}

static void gen(const qs_model *m, const qs_qstar_opts *o, int think, const qs_think_ctl *ctl, rec *r, qs_gen_stats *s) {
    int prompt[2] = {1, 5};
    qs_gen_opts g = qs_gen_opts_default();
    g.steps = 24, g.seed = 4242, g.stop_token = 10000, g.temperature = 1.0f, g.top_p = 0.0f;
    memset(r, 0, sizeof *r);
    assert_int_equal(qs_generate_think_ctl(m, NULL, prompt, 2, &g, o, think, ctl, record, r, s), QS_OK);
}

static void test_think_when_generate(void **st) {
    (void)st;
    qs_model m;
    load_fixture_model(&m);
    qs_qstar_opts o;
    qs_qstar_opts_default(&o);
    o.n_ahead = 6;
    rec none, always, hi, lo, mid;
    qs_gen_stats s_none, s_always, s_hi, s_lo, s_mid;
    gen(&m, &o, 0, NULL, &none, &s_none);
    gen(&m, &o, 1, NULL, &always, &s_always);
    qs_think_ctl c = qs_think_ctl_default();
    c.min_entropy = 1e9f; // above every entropy
    gen(&m, &o, 1, &c, &hi, &s_hi);
    c.min_entropy = -1.0f; // below every entropy (entropies are >= 0)
    gen(&m, &o, 1, &c, &lo, &s_lo);
    assert_true(always.n > 3);
    // above every entropy == no thoughts at all, token for token
    assert_int_equal(hi.n, none.n);
    assert_memory_equal(hi.tokens, none.tokens, sizeof(int) * none.n);
    assert_int_equal(s_hi.n_thoughts, 0);
    for (int k = 0; k < hi.n; k++) assert_int_equal(hi.has_thought[k], 0);
    // below every entropy == always thinking: tokens, thoughts, mixing weights
    assert_int_equal(lo.n, always.n);
    assert_memory_equal(lo.tokens, always.tokens, sizeof(int) * always.n);
    assert_memory_equal(lo.thoughts, always.thoughts, sizeof lo.thoughts);
    assert_memory_equal(lo.mix, always.mix, sizeof(float) * always.n);
    assert_int_equal(s_lo.n_thoughts, s_always.n_thoughts);
    assert_true(s_always.n_thoughts > 0);
    // in between (the median entropy of the no-think run's positions): some but not all
    // positions think, and exactly those whose base entropy exceeds the threshold
    qs_thinker *t;
    assert_int_equal(qs_thinker_create(&t, &m, NULL, 64), QS_OK);
    float *z = malloc(sizeof(float) * m.cfg.vocab_size), ent[64];
    int seq[66] = {1, 5};
    c.min_entropy = 0; // first pass: find a threshold that splits
    gen(&m, &o, 1, &c, &mid, &s_mid);
    // record 0 is the prompt's second token; record k >= 1 was sampled at position k
    for (int k = 0; k < mid.n; k++) seq[1 + k] = mid.tokens[k];
    for (int i = 0; i < mid.n; i++) {
        assert_int_equal(qs_thinker_feed(t, seq[i], i), QS_OK);
        qs_thinker_plain_logits(t, z);
        ent[i] = (float)qs_logits_entropy(z, m.cfg.vocab_size);
    }
    float sorted[64];
    assert_true(mid.n > 2 && mid.n < 64);
    for (int k = 0; k < mid.n - 1; k++) sorted[k] = ent[1 + k];
    for (int a = 0; a < mid.n - 1; a++)
        for (int b = a + 1; b < mid.n - 1; b++)
            if (sorted[b] < sorted[a]) { float x = sorted[a]; sorted[a] = sorted[b], sorted[b] = x; }
    qs_thinker_free(t);
    c.min_entropy = sorted[(mid.n - 1) / 2];
    gen(&m, &o, 1, &c, &mid, &s_mid);
    assert_true(s_mid.n_thoughts > 0 && s_mid.n_thoughts < mid.n);
    assert_int_equal(qs_thinker_create(&t, &m, NULL, 64), QS_OK);
    for (int k = 0; k < mid.n; k++) seq[1 + k] = mid.tokens[k];
    assert_int_equal(mid.has_thought[0], 0);
    for (int i = 0; i < mid.n; i++) {
        assert_int_equal(qs_thinker_feed(t, seq[i], i), QS_OK);
        if (i < 1) continue;
        qs_thinker_plain_logits(t, z);
        assert_int_equal(mid.has_thought[i], qs_logits_entropy(z, m.cfg.vocab_size) > c.min_entropy);
    }
    qs_thinker_free(t);
    free(z);
    qs_model_free(&m);
}

static void make_stream(qs_token_stream *s, int *buf, size_t *starts, int n, int V) {
    qs_rng r;
    qs_rng_seed(&r, 5);
    for (int k = 0; k < n; k++) buf[k] = k % 20 == 0 ? 1 : 3 + (int)(qs_rng_uniform(&r) * (V - 3));
    for (int d = 0; d < n / 20; d++) starts[d] = (size_t)d * 20;
    memset(s, 0, sizeof *s);
    s->tokens = buf, s->n_tokens = (size_t)n, s->doc_start = starts, s->n_docs = (size_t)n / 20;
}

static void nll_eval(const qs_model *m, const qs_token_stream *s, const qs_qstar_opts *o, int think,
                     const qs_think_ctl *c, qs_nll_tokens *rec, qs_nll_summary *sum) {
    qs_rng r;
    qs_rng_seed(&r, 77);
    memset(rec, 0, sizeof *rec);
    assert_int_equal(qs_nll_eval_ctl(m, s, o, think, c, 2, 16, &r, rec, NULL, NULL, sum), QS_OK);
}

static void test_think_when_nll(void **st) {
    (void)st;
    qs_model m;
    load_fixture_model(&m);
    qs_qstar_opts o;
    qs_qstar_opts_default(&o);
    o.n_ahead = 5;
    int buf[100];
    size_t starts[5];
    qs_token_stream s;
    make_stream(&s, buf, starts, 100, m.cfg.vocab_size);
    qs_nll_tokens none, always, hi, lo, mid;
    qs_nll_summary snone, salways, shi, slo, smid;
    nll_eval(&m, &s, NULL, 0, NULL, &none, &snone);
    nll_eval(&m, &s, &o, 1, NULL, &always, &salways);
    qs_think_ctl c = qs_think_ctl_default();
    c.min_entropy = 1e9f;
    nll_eval(&m, &s, &o, 1, &c, &hi, &shi);
    c.min_entropy = -1.0f;
    nll_eval(&m, &s, &o, 1, &c, &lo, &slo);
    assert_int_equal(always.n, none.n);
    assert_int_equal(hi.n, none.n);
    assert_int_equal(lo.n, none.n);
    double ents[100];
    for (size_t k = 0; k < none.n; k++) {
        // above every entropy: the think NLL is the base NLL, which is the no-think NLL
        assert_true(hi.t[k].nll_think == hi.t[k].nll_base);
        assert_int_equal(hi.t[k].thought_on, 0);
        assert_true(fabsf(hi.t[k].nll_base - none.t[k].nll_base) <= 1e-5f * (1 + none.t[k].nll_base));
        // below every entropy: exactly the always-think records (same seed)
        assert_true(lo.t[k].nll_think == always.t[k].nll_think);
        assert_true(lo.t[k].mix_w == always.t[k].mix_w);
        assert_int_equal(lo.t[k].thought_on, 1);
        assert_true(none.t[k].entropy == always.t[k].entropy);
        ents[k] = always.t[k].entropy;
    }
    assert_memory_equal(lo.thoughts, always.thoughts, sizeof(int) * always.n * always.n_thought);
    assert_true(shi.nll_think == shi.nll_base && slo.nll_think == salways.nll_think);
    assert_true(shi.think_frac == 0.0 && slo.think_frac == 1.0);
    // a threshold in between: think exactly where the entropy exceeds it
    double sorted[100];
    memcpy(sorted, ents, sizeof(double) * none.n);
    for (size_t a = 0; a < none.n; a++)
        for (size_t b = a + 1; b < none.n; b++)
            if (sorted[b] < sorted[a]) { double x = sorted[a]; sorted[a] = sorted[b], sorted[b] = x; }
    c.min_entropy = (float)sorted[none.n / 2];
    nll_eval(&m, &s, &o, 1, &c, &mid, &smid);
    int n_on = 0;
    for (size_t k = 0; k < none.n; k++) {
        const int on = always.t[k].entropy > c.min_entropy;
        n_on += on;
        assert_int_equal(mid.t[k].thought_on, on);
        assert_true(mid.t[k].nll_think == (on ? always.t[k].nll_think : always.t[k].nll_base));
    }
    assert_true(n_on > 0 && n_on < (int)none.n);
    // gain interval: the mean of per-window means, by hand
    double S = 0;
    long nw = 0;
    for (size_t k = 0; k < always.n;) {
        size_t j = k;
        double d = 0;
        while (j < always.n && always.t[j].window == always.t[k].window) d += (double)always.t[j].nll_base - always.t[j].nll_think, j++;
        S += d / (double)(j - k), nw++, k = j;
    }
    assert_int_equal(salways.gain_windows, nw);
    assert_true(fabs(salways.gain - S / nw) < 1e-9);
    assert_true(salways.gain_ci95 > 0);
    qs_nll_tokens_free(&none), qs_nll_tokens_free(&always), qs_nll_tokens_free(&hi);
    qs_nll_tokens_free(&lo), qs_nll_tokens_free(&mid);
    qs_model_free(&m);
}

// Random thoughts: the eval's think NLL equals the step with those thought
// tokens forced, and they are not the sampled ones.
static void test_random_thoughts(void **st) {
    (void)st;
    qs_model m;
    load_fixture_model(&m);
    qs_qstar_opts o;
    qs_qstar_opts_default(&o);
    o.n_ahead = 6, o.banned[0] = 7, o.n_banned = 1;
    int buf[40];
    size_t starts[2];
    qs_token_stream s;
    make_stream(&s, buf, starts, 32, m.cfg.vocab_size);
    qs_nll_tokens sampled, rnd;
    qs_nll_summary a, b;
    qs_think_ctl c = qs_think_ctl_default();
    c.random_thoughts = 1;
    nll_eval(&m, &s, &o, 1, NULL, &sampled, &a);
    nll_eval(&m, &s, &o, 1, &c, &rnd, &b);
    assert_int_equal(sampled.n, rnd.n);
    int differ = 0;
    for (size_t k = 0; k < rnd.n * rnd.n_thought; k++) {
        assert_true(rnd.thoughts[k] >= 0 && rnd.thoughts[k] < m.cfg.vocab_size && rnd.thoughts[k] != 7);
        differ += rnd.thoughts[k] != sampled.thoughts[k];
    }
    assert_true(differ > 0);
    // the first window again through the step with these thoughts forced
    qs_qstar_opts eo = o;
    eo.n_passes = 1, eo.n_talk = 1;
    qs_qstar *q;
    assert_int_equal(qs_qstar_create(&q, &m, &eo, 1, 16), QS_OK);
    int forced[3 * 16] = {0};
    for (size_t k = 0; k < rnd.n && rnd.t[k].window == 0; k++)
        for (int u = 0; u < 3; u++) forced[u * 16 + rnd.t[k].pos - 1] = rnd.thoughts[rnd.t[k].thought + u];
    qs_qstar_out out;
    assert_int_equal(qs_qstar_step(q, &m, buf, NULL, forced, NULL, NULL, 0, &out), QS_OK);
    for (size_t k = 0; k < rnd.n && rnd.t[k].window == 0; k++)
        tu_assert_close("random-thought nll", &rnd.t[k].nll_think, &out.nll_talk[rnd.t[k].pos - 1], 1, 1e-6, 1e-5);
    qs_qstar_free(q);
    qs_nll_tokens_free(&sampled), qs_nll_tokens_free(&rnd);
    qs_model_free(&m);
}

// ---- think-at: anchored thinking in the held-out NLL evaluation ----
// A llama2.c tokenizer of the fixture's 72 tokens, built in memory: 0 <unk>,
// 1 "\n<s>\n", 2 "\n</s>\n" (as llama2.c's), 3 "\n", 4..69 one character
// each from '!' to 'b', 70 "qab", 71 "bq".
enum { TA_V = 72, TA_NL = 3, TA_A = 68, TA_B = 69, TA_QAB = 70, TA_BQ = 71, TA_N = 60, TA_T = 16, TA_B2 = 2,
       TA_K = 3, TA_NT = 2, TA_RT = TA_B2 * TA_T, TA_W = (TA_N + TA_T - 1) / TA_T };

static void ta_piece(int id, char *out) {
    static const char *fixed[] = {"<unk>", "\n<s>\n", "\n</s>\n", "\n"};
    if (id < 4) strcpy(out, fixed[id]);
    else if (id < TA_QAB) out[0] = (char)('!' + id - 4), out[1] = 0;
    else strcpy(out, id == TA_QAB ? "qab" : "bq");
}

static qs_tokenizer *ta_tokenizer(void) {
    unsigned char buf[2048];
    const int mtl = 8;
    size_t n = 4;
    memcpy(buf, &mtl, 4);
    for (int id = 0; id < TA_V; id++) {
        char p[8];
        ta_piece(id, p);
        const float score = 0.0f;
        const int len = (int)strlen(p);
        memcpy(buf + n, &score, 4), memcpy(buf + n + 4, &len, 4), memcpy(buf + n + 8, p, (size_t)len);
        n += 8 + (size_t)len;
    }
    qs_tokenizer *t = NULL;
    if (qs_tokenizer_parse_llama2c(&t, buf, n, TA_V, "think-at tokenizer") != QS_OK) fail_msg("%s", qstar_last_error());
    assert_int_equal(qs_tokenizer_vocab_size(t), TA_V);
    assert_string_equal(qs_tokenizer_piece(t, 5, TA_A), "a");
    assert_string_equal(qs_tokenizer_piece(t, 5, TA_B), "b");
    return t;
}

// make_stream's 60 tokens (BOS at 0, 20, 40) with no anchor text by chance,
// then the planted text; window w holds tokens [16w, 16w+16) (window 3: 12).
static void ta_stream(qs_token_stream *s, int *buf, size_t *starts) {
    make_stream(s, buf, starts, TA_N, TA_V);
    for (int k = 0; k < TA_N; k++)
        if (buf[k] == TA_NL || buf[k] >= TA_A) buf[k] = 4;
    static const int plant[][2] = {
        {2, TA_A},   {3, TA_B},   {4, TA_A},     {5, TA_B},   {8, TA_NL}, {13, TA_A}, {14, TA_B}, // window 0: "abab", "\n", "ab" at 13
        {18, TA_A},  {19, TA_B},  {25, TA_NL},   {30, TA_A},  {31, TA_B},                         // window 1: "ab" before BOS, "ab" at its end
        {34, TA_A},  {35, TA_BQ}, {42, TA_QAB},  {47, TA_A},                                      // window 2: "abq", "qab", "a" at its end
        {48, TA_B},  {56, TA_A},  {57, TA_B}};                                                    // window 3: "b" at its start
    for (size_t k = 0; k < sizeof plant / sizeof plant[0]; k++) buf[plant[k][0]] = plant[k][1];
}

// The anchors of one window by decoding each prefix with qs_tokenizer_decode
// (the positions whose token adds text that makes it end with `at`; BOS and
// EOS add none), and src[i]: the last anchor a <= i with i - a < K, else -1.
static void ta_sources(const qs_tokenizer *t, const int *tok, int len, const char *at, int K, int *anchor, int *src) {
    char text[1024];
    const size_t L = strlen(at);
    size_t before = 0;
    int a = -1;
    for (int i = 0; i < TA_T; i++) {
        anchor[i] = 0, src[i] = -1;
        if (i >= len) continue;
        assert_int_equal(qs_tokenizer_decode(t, tok, i + 1, text, sizeof text), QS_OK);
        const size_t n = strlen(text);
        anchor[i] = n > before && n >= L && !strcmp(text + n - L, at);
        before = n;
        if (anchor[i]) a = i;
        src[i] = a >= 0 && i - a < K ? a : -1;
    }
}

static void ta_expect_anchors(const int *anchor, const int *want, int n_want) {
    int n = 0;
    for (int i = 0; i < TA_T; i++) n += anchor[i];
    assert_int_equal(n, n_want);
    for (int k = 0; k < n_want; k++) assert_int_equal(anchor[want[k]], 1);
}

// The Quiet-STaR step in evaluation mode (n_passes 1, n_talk K, forward
// only, mean baseline) on the eval's batches, with the thoughts drawn as the
// eval draws random thoughts (seed 77, as nll_eval): talk NLLs and mixing
// weights [batch][k*RT + b*T + i], the thoughts [batch][(b*nT + u)*T + i].
typedef struct {
    float talk[2][TA_K * TA_RT], mix[2][TA_K * TA_RT];
    int forced[2][TA_RT * TA_NT];
} ta_ref;

static void ta_reference(const qs_model *m, const qs_token_stream *s, const qs_qstar_opts *o, ta_ref *ref) {
    qs_qstar_opts eo = *o;
    eo.n_passes = 1, eo.n_talk = TA_K, eo.forward_only = 1, eo.reward_baseline = QS_BASELINE_MEAN;
    assert_int_equal(qs_n_thought(&eo), TA_NT);
    qs_qstar *q;
    assert_int_equal(qs_qstar_create(&q, m, &eo, TA_B2, TA_T), QS_OK);
    qs_rng r;
    qs_rng_seed(&r, 77);
    for (int bt = 0; bt * TA_B2 < TA_W; bt++) {
        int tokens[TA_RT], mask[TA_RT], rows = 0;
        assert_int_equal(qs_stream_eval_batch(s, (size_t)bt * TA_B2, TA_B2, TA_T, tokens, mask, &rows), QS_OK);
        for (int k = 0; k < TA_RT * TA_NT; k++)
            ref->forced[bt][k] = qs_random_thought_token(TA_V, eo.banned, eo.n_banned, qs_rng_uniform(&r));
        qs_qstar_out out;
        assert_int_equal(qs_qstar_step(q, m, tokens, mask, ref->forced[bt], NULL, NULL, 0.0f, &out), QS_OK);
        assert_int_equal(out.n_talk, TA_K);
        assert_memory_equal(out.thoughts, ref->forced[bt], sizeof ref->forced[bt]);
        memcpy(ref->talk[bt], out.nll_talk, sizeof ref->talk[bt]);
        memcpy(ref->mix[bt], out.mix_weight, sizeof ref->mix[bt]);
    }
    qs_qstar_free(q);
}

// Every record of an anchored run against src (per window) and the step:
// bitwise. Counts the thought-scored tokens by talk pass into n_talk[K].
static void ta_check(const qs_nll_tokens *rec, const qs_nll_tokens *alw, int src[TA_W][TA_T], const ta_ref *ref,
                     int *n_talk) {
    assert_int_equal(rec->n, alw->n);
    assert_int_equal(rec->n_thought, TA_NT);
    for (int k = 0; k < TA_K; k++) n_talk[k] = 0;
    for (size_t n = 0; n < rec->n; n++) {
        const qs_nll_token *t = &rec->t[n];
        const int w = (int)t->window, bt = w / TA_B2, b = w % TA_B2, i = t->pos - 1;
        assert_true(w >= 0 && w < TA_W && i >= 0 && i + 1 < TA_T);
        assert_int_equal(t->window, alw->t[n].window), assert_int_equal(t->pos, alw->t[n].pos);
        assert_true(t->nll_base == alw->t[n].nll_base);
        const int a = src[w][i];
        if (a < 0) { // no thought: the base prediction
            if (!(t->nll_think == t->nll_base) || t->mix_w != 0.0f || t->thought_on != 0 || t->talk != -1)
                fail_msg("window %d pos %d: no anchor before it, yet talk %d thought_on %d nll %.9g (base %.9g)", w,
                         t->pos, t->talk, t->thought_on, (double)t->nll_think, (double)t->nll_base);
            continue;
        }
        const int k = i - a;
        const size_t x = (size_t)k * TA_RT + (size_t)b * TA_T + a;
        if (!(t->nll_think == ref->talk[bt][x]) || !(t->mix_w == ref->mix[bt][x]))
            fail_msg("window %d pos %d (talk %d from %d): nll %.9g mix %.9g, step %.9g %.9g", w, t->pos, k, a,
                     (double)t->nll_think, (double)t->mix_w, (double)ref->talk[bt][x], (double)ref->mix[bt][x]);
        assert_int_equal(t->thought_on, 1);
        assert_int_equal(t->talk, k);
        const int *th = rec->thoughts + t->thought;
        for (int u = 0; u < TA_NT; u++) assert_int_equal(th[u], ref->forced[bt][((size_t)b * TA_NT + u) * TA_T + a]);
        n_talk[k]++;
        if (k == 0) { // talk 0 is pass n_ahead-1 of the always-thinking eval, with the same thought
            const qs_nll_token *al = &alw->t[n];
            assert_int_equal(al->thought_on, 1), assert_int_equal(al->talk, 0);
            if (!(t->nll_think == al->nll_think) || !(t->mix_w == al->mix_w))
                fail_msg("window %d pos %d: talk 0 nll %.9g mix %.9g, always thinking %.9g %.9g", w, t->pos,
                         (double)t->nll_think, (double)t->mix_w, (double)al->nll_think, (double)al->mix_w);
            assert_memory_equal(th, alw->thoughts + al->thought, sizeof(int) * TA_NT);
        }
    }
}

static const qs_nll_token *ta_find(const qs_nll_tokens *rec, long w, int pos) {
    for (size_t n = 0; n < rec->n; n++)
        if (rec->t[n].window == w && rec->t[n].pos == pos) return &rec->t[n];
    return NULL;
}

// The fixture model, the in-memory tokenizer, options with TA_NT thought tokens and the planted stream.
static void ta_setup(qs_model *m, qs_tokenizer **tok, qs_qstar_opts *o, qs_token_stream *s, int *buf, size_t *starts) {
    load_fixture_model(m);
    assert_int_equal(m->cfg.vocab_size, TA_V);
    *tok = ta_tokenizer();
    qs_qstar_opts_default(o);
    o->n_ahead = TA_NT + 3;
    ta_stream(s, buf, starts);
}

static void test_think_at_nll(void **st) {
    (void)st;
    qs_model m;
    qs_tokenizer *tok;
    qs_qstar_opts o;
    int buf[TA_N];
    size_t starts[TA_N / 20];
    qs_token_stream s;
    ta_setup(&m, &tok, &o, &s, buf, starts);
    // the anchors, by decoding: where the plants put them ("abq" and a window's
    // first "b" after the last one's "a" are none; "qab" is one; BOS is no text)
    int anchor[TA_W][TA_T], src[TA_W][TA_T], nl_anchor[TA_W][TA_T], nl_src[TA_W][TA_T];
    for (int w = 0; w < TA_W; w++) {
        const int len = QS_MIN(TA_T, TA_N - w * TA_T);
        ta_sources(tok, buf + w * TA_T, len, "ab", TA_K, anchor[w], src[w]);
        ta_sources(tok, buf + w * TA_T, len, "\n", TA_K, nl_anchor[w], nl_src[w]);
    }
    ta_expect_anchors(anchor[0], (const int[]){3, 5, 14}, 3);
    ta_expect_anchors(anchor[1], (const int[]){3, 15}, 2);
    ta_expect_anchors(anchor[2], (const int[]){10}, 1);
    ta_expect_anchors(anchor[3], (const int[]){9}, 1);
    ta_expect_anchors(nl_anchor[0], (const int[]){8}, 1);
    ta_expect_anchors(nl_anchor[1], (const int[]){9}, 1);
    ta_expect_anchors(nl_anchor[2], NULL, 0);
    ta_expect_anchors(nl_anchor[3], NULL, 0);
    assert_int_equal(buf[20], 1), assert_int_equal(buf[40], 1); // BOS ("\n<s>\n") in windows 1 and 2

    ta_ref ref;
    ta_reference(&m, &s, &o, &ref);
    qs_think_ctl ca = qs_think_ctl_default(), c = ca;
    ca.random_thoughts = 1;
    c.random_thoughts = 1, c.think_at = "ab", c.tok = tok, c.n_talk = TA_K;
    qs_nll_tokens alw, at, nl;
    qs_nll_summary salw, sat, snl;
    nll_eval(&m, &s, &o, 1, &ca, &alw, &salw);
    nll_eval(&m, &s, &o, 1, &c, &at, &sat);
    assert_int_equal(alw.n, TA_N - TA_W); // every position but each window's first
    int n_talk[TA_K];
    ta_check(&at, &alw, src, &ref, n_talk);
    // talk 0: 3, 5, 14 | 3 | 10 | 9; talk 1: 4, 6 | 4 | 11 | 10; talk 2: 7 | 5 | 12 (window 0 position 5
    // is talk 0 of the anchor at 5, not talk 2 of the one at 3; windows 0 and 3 end inside a talk range,
    // window 1's last anchor has nothing left to score)
    assert_int_equal(n_talk[0], 6), assert_int_equal(n_talk[1], 5), assert_int_equal(n_talk[2], 3);
    assert_int_equal(ta_find(&at, 0, 5)->talk, 1);
    assert_int_equal(ta_find(&at, 0, 6)->talk, 0);
    assert_int_equal(ta_find(&at, 0, 8)->talk, 2);
    assert_int_equal(ta_find(&at, 0, 9)->talk, -1);
    assert_int_equal(ta_find(&at, 0, 15)->talk, 0);
    assert_int_equal(ta_find(&at, 1, 7)->talk, -1);
    assert_int_equal(ta_find(&at, 2, 13)->talk, 2);
    assert_int_equal(ta_find(&at, 3, 1)->talk, -1);
    assert_int_equal(ta_find(&at, 3, 11)->talk, 1);
    assert_null(ta_find(&at, 3, 12));
    assert_true(sat.think_frac == 14.0 / (double)at.n);
    // "\n": after the "\n" tokens only, not after BOS, whose piece "\n<s>\n" is no text
    c.think_at = "\n";
    nll_eval(&m, &s, &o, 1, &c, &nl, &snl);
    ta_check(&nl, &alw, nl_src, &ref, n_talk);
    assert_int_equal(n_talk[0], 2), assert_int_equal(n_talk[1], 2), assert_int_equal(n_talk[2], 2);
    assert_int_equal(ta_find(&nl, 1, 5)->talk, -1); // the token after BOS
    qs_nll_tokens_free(&alw), qs_nll_tokens_free(&at), qs_nll_tokens_free(&nl);
    qs_tokenizer_free(tok);
    qs_model_free(&m);
}

// An anchor that never occurs: no thought anywhere, the think NLL is the base NLL.
static void test_think_at_absent(void **st) {
    (void)st;
    qs_model m;
    qs_tokenizer *tok;
    qs_qstar_opts o;
    int buf[TA_N];
    size_t starts[TA_N / 20];
    qs_token_stream s;
    ta_setup(&m, &tok, &o, &s, buf, starts);
    qs_think_ctl c = qs_think_ctl_default();
    c.think_at = "bb", c.tok = tok, c.n_talk = TA_K; // sampled thoughts this time
    qs_nll_tokens rec, alw;
    qs_nll_summary sum, salw;
    nll_eval(&m, &s, &o, 1, &c, &rec, &sum);
    nll_eval(&m, &s, &o, 1, NULL, &alw, &salw);
    assert_int_equal(rec.n, TA_N - TA_W);
    assert_int_equal(rec.n, alw.n);
    int differ = 0;
    for (size_t n = 0; n < rec.n; n++) {
        assert_true(rec.t[n].nll_think == rec.t[n].nll_base);
        assert_true(rec.t[n].nll_base == alw.t[n].nll_base);
        assert_true(rec.t[n].mix_w == 0.0f);
        assert_int_equal(rec.t[n].thought_on, 0);
        assert_int_equal(rec.t[n].talk, -1);
        differ += alw.t[n].nll_think != alw.t[n].nll_base;
    }
    assert_true(differ > 0); // thinking would have changed the NLL
    assert_true(sum.think_frac == 0.0);
    assert_true(sum.nll_think == sum.nll_base && sum.mix_mean == 0.0);
    qs_nll_tokens_free(&rec), qs_nll_tokens_free(&alw);
    qs_tokenizer_free(tok);
    qs_model_free(&m);
}

static void ta_refused(const qs_model *m, const qs_token_stream *s, const qs_qstar_opts *o, const qs_think_ctl *c,
                       const char *what) {
    qs_rng r;
    qs_rng_seed(&r, 77);
    qs_nll_tokens rec = {0};
    qs_nll_summary sum;
    if (qs_nll_eval_ctl(m, s, o, 1, c, TA_B2, TA_T, &r, &rec, NULL, NULL, &sum) == QS_OK)
        fail_msg("think_at '%s' n_talk %d min_entropy %g tok %p accepted", c->think_at, c->n_talk,
                 (double)c->min_entropy, (const void *)c->tok);
    if (!strstr(qstar_last_error(), what)) fail_msg("error '%s' does not mention '%s'", qstar_last_error(), what);
    assert_int_equal(rec.n, 0);
    qs_nll_tokens_free(&rec);
}

// Bad think-at settings: the evaluation, generation and the public API refuse them.
static void test_think_at_errors(void **st) {
    (void)st;
    qs_model m;
    qs_tokenizer *tok;
    qs_qstar_opts o;
    int buf[TA_N];
    size_t starts[TA_N / 20];
    qs_token_stream s;
    ta_setup(&m, &tok, &o, &s, buf, starts);
    const qs_think_ctl ok = {.min_entropy = -INFINITY, .think_at = "ab", .tok = tok, .n_talk = TA_K};
    qs_think_ctl c = ok;
    c.min_entropy = 1.0f;
    ta_refused(&m, &s, &o, &c, "entropy");
    c = ok, c.n_talk = 0;
    ta_refused(&m, &s, &o, &c, "n_talk 0 out of range");
    c = ok, c.n_talk = QS_MAX_TALK + 1;
    ta_refused(&m, &s, &o, &c, "n_talk 65 out of range");
    c = ok, c.think_at = "";
    ta_refused(&m, &s, &o, &c, "think_at needs a text");
    c = ok, c.tok = NULL;
    ta_refused(&m, &s, &o, &c, "the tokenizer");
    char longest[257];
    memset(longest, 'a', 256), longest[256] = 0;
    c = ok, c.think_at = longest;
    ta_refused(&m, &s, &o, &c, "1 to 255 bytes");
    c = ok, c.n_talk = TA_T - 1; // a window of T holds talk passes up to T-2
    ta_refused(&m, &s, &o, &c, "too short");
    qs_rng r;
    qs_rng_seed(&r, 1);
    qs_nll_summary sum;
    c = ok, c.n_talk = TA_T - 2, c.think_at = longest + 1; // 255 bytes, the most
    assert_int_equal(qs_nll_eval_ctl(&m, &s, &o, 1, &c, TA_B2, TA_T, &r, NULL, NULL, NULL, &sum), QS_OK);
    // generation takes the same settings and refuses the same mistakes
    int prompt[2] = {1, 5};
    qs_gen_opts g = qs_gen_opts_default();
    g.steps = 4;
    assert_int_equal(qs_generate_think_ctl(&m, tok, prompt, 2, &g, &o, 1, &ok, NULL, NULL, NULL), QS_OK);
    c = ok, c.min_entropy = 1.0f;
    assert_int_not_equal(qs_generate_think_ctl(&m, tok, prompt, 2, &g, &o, 1, &c, NULL, NULL, NULL), QS_OK);
    assert_non_null(strstr(qstar_last_error(), "exclude each other"));
    c = ok, c.n_talk = 0;
    assert_int_not_equal(qs_generate_think_ctl(&m, tok, prompt, 2, &g, &o, 1, &c, NULL, NULL, NULL), QS_OK);
    assert_non_null(strstr(qstar_last_error(), "n_talk 0 out of range"));
    c = ok, c.tok = NULL;
    assert_int_not_equal(qs_generate_think_ctl(&m, tok, prompt, 2, &g, &o, 1, &c, NULL, NULL, NULL), QS_OK);
    assert_non_null(strstr(qstar_last_error(), "the tokenizer"));
    // the public parameters
    qstar_eval_params p = qstar_eval_params_default();
    p.data_path = "x.txt", p.think_at = "ab", p.n_talk = 3;
    assert_int_equal(qstar_eval_check(&p), QS_OK);
    p.think_at = "";
    assert_int_equal(qstar_eval_check(&p), QS_ERR_ARG);
    assert_non_null(strstr(qstar_last_error(), "think_at must hold 1 to 255 bytes"));
    p.think_at = longest;
    assert_int_equal(qstar_eval_check(&p), QS_ERR_ARG);
    p.think_at = "ab", p.think_min_entropy = 0.5f;
    assert_int_equal(qstar_eval_check(&p), QS_ERR_ARG);
    assert_non_null(strstr(qstar_last_error(), "exclude each other"));
    p.think_min_entropy = -INFINITY, p.n_talk = 65;
    assert_int_equal(qstar_eval_check(&p), QS_ERR_ARG);
    assert_non_null(strstr(qstar_last_error(), "n_talk 65"));
    p.n_talk = -1;
    assert_int_equal(qstar_eval_check(&p), QS_ERR_ARG);
    p.think_at = NULL, p.n_talk = 3;
    assert_int_equal(qstar_eval_check(&p), QS_ERR_ARG);
    assert_non_null(strstr(qstar_last_error(), "n_talk is for think_at"));
    qs_tokenizer_free(tok);
    qs_model_free(&m);
}

// EMA baseline: R[r,i] = sum_k nll_ema[b,i+k] - nll_k[r,i], advantage = max(R, 0),
// with nll_ema computed by hand (a plain forward of an EMA copy of the
// weights, logits -> log-softmax in double).
static void test_ema_reward_by_hand(void **st) {
    (void)st;
    qs_model m, ema;
    load_fixture_model(&m);
    assert_int_equal(qs_model_create(&ema, &m.cfg, m.has_quietstar), QS_OK);
    // EMA copy: d * (weights before) + (1-d) * (weights after an "update")
    const float d = 0.9f;
    qs_rng r;
    qs_rng_seed(&r, 11);
    for (size_t k = 0; k < m.layout.numel; k++) ema.params[k] = d * m.params[k] + (1 - d) * (m.params[k] + 0.05f * qs_rng_normal(&r));
    enum { B = 2, T = 10, P = 2, NT = 2, NTALK = 3 };
    const int V = m.cfg.vocab_size, H = m.cfg.dim;
    int tok[B * T], mask[B * T];
    for (int k = 0; k < B * T; k++) tok[k] = k % T == 0 ? 1 : 3 + (k * 37) % (V - 3), mask[k] = 1;
    mask[B * T - 1] = mask[B * T - 2] = 0; // some padding
    // hand: per-token NLL of the EMA model
    qs_workspace *ws;
    assert_int_equal(qs_workspace_create_ex(&ws, &m.cfg, B, T, 1, 0), QS_OK);
    qs_workspace_set_mask(ws, mask);
    float *x = malloc(sizeof(float) * B * T * H), *z = malloc(sizeof(float) * V);
    for (int k = 0; k < B * T; k++) memcpy(x + (size_t)k * H, ema.w.embed + (size_t)tok[k] * H, sizeof(float) * H);
    assert_int_equal(qs_forward_block(&ema, ws, x, 0, 1, 0, T, qs_workspace_bufs(ws).h), QS_OK);
    float ref[B * T];
    for (int k = 0; k < B * T; k++) {
        const int i = k % T;
        ref[k] = 0;
        if (i + 1 >= T || !mask[k] || !mask[k + 1]) continue;
        matmul_forward(z, qs_workspace_bufs(ws).h + (size_t)k * H, ema.w.lm_head, NULL, 1, H, V);
        double mx = -INFINITY, s = 0;
        for (int v = 0; v < V; v++) mx = fmax(mx, z[v]);
        for (int v = 0; v < V; v++) s += exp(z[v] - mx);
        ref[k] = (float)(mx + log(s) - z[tok[k + 1]]);
    }
    // the library's own reference NLL agrees
    qs_workspace *ws2;
    assert_int_equal(qs_workspace_create_ex(&ws2, &m.cfg, B, T, 1, 0), QS_OK);
    float lib[B * T];
    assert_int_equal(qs_lm_token_nll(&ema, ws2, tok, mask, B, T, lib, NULL, NULL), QS_OK);
    for (int k = 0; k < B * T; k++)
        if (isfinite(lib[k])) tu_assert_close("EMA token nll", &lib[k], &ref[k], 1, 1e-5, 1e-4);
    // the step with the EMA baseline
    qs_qstar_opts o;
    qs_qstar_opts_default(&o);
    o.n_ahead = NT + 3, o.n_talk = NTALK, o.n_passes = P, o.reward_baseline = QS_BASELINE_EMA, o.policy_beta = 1;
    qs_qstar *q;
    assert_int_equal(qs_qstar_create(&q, &m, &o, B, T), QS_OK);
    int forced[B * P * NT * T];
    for (int k = 0; k < B * P * NT * T; k++) forced[k] = 3 + (k * 13) % (V - 3);
    qs_qstar_out out;
    assert_int_equal(qs_qstar_step(q, &m, tok, mask, forced, NULL, NULL, 1, &out), QS_ERR_ARG); // no reference yet
    assert_int_equal(qs_qstar_set_ref_nll(q, ref), QS_OK);
    assert_int_equal(qs_qstar_step(q, &m, tok, mask, forced, NULL, NULL, 1, &out), QS_OK);
    const int R = B * P, nR = T - 1 - NTALK, RT = R * T;
    double pos = 0;
    for (int rr = 0; rr < R; rr++)
        for (int i = 0; i < nR; i++) {
            double s = 0;
            for (int k = 0; k < NTALK; k++) s += (double)ref[(rr / P) * T + i + k] - out.nll_talk[k * RT + rr * T + i];
            float want = (float)s, adv = want > 0 ? want : 0;
            tu_assert_close("EMA reward", &out.reward[rr * nR + i], &want, 1, 1e-5, 1e-4);
            tu_assert_close("EMA advantage", &out.advantage[rr * nR + i], &adv, 1, 1e-5, 1e-4);
            pos += adv > 0;
        }
    assert_true(pos > 0);
    // the talk NLLs do not depend on the baseline; the mean baseline's advantages differ
    float talk_ema[NTALK * R * T], adv_ema[R * (T - 1 - NTALK)];
    memcpy(talk_ema, out.nll_talk, sizeof talk_ema);
    memcpy(adv_ema, out.advantage, sizeof adv_ema);
    qs_qstar *q2;
    o.reward_baseline = QS_BASELINE_MEAN;
    assert_int_equal(qs_qstar_create(&q2, &m, &o, B, T), QS_OK);
    assert_int_equal(qs_qstar_step(q2, &m, tok, mask, forced, NULL, NULL, 1, &out), QS_OK);
    assert_memory_equal(out.nll_talk, talk_ema, sizeof talk_ema);
    assert_memory_not_equal(out.advantage, adv_ema, sizeof adv_ema);
    // options round trip through config.json
    char *js = NULL;
    o.reward_baseline = QS_BASELINE_EMA, o.ema_decay = 0.95f;
    assert_int_equal(qs_qstar_opts_to_json(&o, &js), QS_OK);
    qs_qstar_opts back;
    qs_qstar_opts_default(&back);
    assert_int_equal(qs_qstar_opts_from_json(js, &back), QS_OK);
    assert_int_equal(back.reward_baseline, QS_BASELINE_EMA);
    assert_true(back.ema_decay == 0.95f);
    assert_int_not_equal(qs_qstar_opts_from_json("{\"reward_baseline\": \"median\"}", &back), QS_OK);
    assert_int_not_equal(qs_qstar_opts_from_json("{\"ema_decay\": 1.5}", &back), QS_OK);
    free(js);
    qs_qstar_free(q), qs_qstar_free(q2);
    qs_workspace_free(ws), qs_workspace_free(ws2);
    free(x), free(z);
    qs_model_free(&ema), qs_model_free(&m);
}

// --thought-init-end: only the end embedding changes, to E[id] / scale; the
// option survives config.json.
static void test_init_end(void **st) {
    (void)st;
    qs_model m;
    load_fixture_model(&m);
    const int H = m.cfg.dim;
    qs_qstar_opts o;
    qs_qstar_opts_default(&o);
    o.embedding_scale = 50;
    float *start = malloc(sizeof(float) * 2 * H);
    memcpy(start, m.w.start_emb, sizeof(float) * 2 * H);
    assert_int_equal(qs_qstar_init_end(&m, &o, 7), QS_OK);
    for (int c = 0; c < H; c++) {
        float want = m.w.embed[(size_t)7 * H + c] / 50.0f;
        tu_assert_close("end embedding", &m.w.end_emb[c], &want, 1, 1e-7, 1e-6);
        assert_true(m.w.end_emb[H + c] == 0.0f);
    }
    assert_memory_equal(start, m.w.start_emb, sizeof(float) * 2 * H);
    assert_int_not_equal(qs_qstar_init_end(&m, &o, m.cfg.vocab_size), QS_OK);
    snprintf(o.thought_init_end, sizeof o.thought_init_end, ")");
    char *js = NULL;
    assert_int_equal(qs_qstar_opts_to_json(&o, &js), QS_OK);
    qs_qstar_opts back;
    qs_qstar_opts_default(&back);
    assert_int_equal(qs_qstar_opts_from_json(js, &back), QS_OK);
    assert_string_equal(back.thought_init_end, ")");
    free(js), free(start);
    qs_model_free(&m);
}

static void test_curriculum_parse(void **st) {
    (void)st;
    qs_curriculum c;
    const char *ok = "6:4:1e-4:100, 10:4:5e-5:200 ,14 : 2 : 0.001 : 7";
    assert_int_equal(qs_curriculum_parse(ok, strlen(ok), &c), QS_OK);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.s[0].n_ahead, 6), assert_int_equal(c.s[0].n_talk, 4), assert_int_equal(c.s[0].steps, 100);
    assert_true(c.s[0].lr == 1e-4f && c.s[1].lr == 5e-5f && c.s[2].lr == 0.001f);
    assert_int_equal(c.s[1].n_ahead, 10), assert_int_equal(c.s[2].n_talk, 2), assert_int_equal(c.s[2].steps, 7);
    // length-bounded: the text after len is not read
    assert_int_equal(qs_curriculum_parse("12:4:1e-4:50,XXXX", 12, &c), QS_OK);
    assert_int_equal(c.n, 1), assert_int_equal(c.s[0].steps, 50);
    const char *bad[] = {"", "12:4:1e-4", "12:4:1e-4:50:9", "2:4:1e-4:50", "12.5:4:1e-4:50", "12:0:1e-4:50",
                         "12:4:0:50", "12:4:-1:50", "12:4:1e-4:0", "12:4:1e-4:5.5", "12:4:1e-4:50,", ",12:4:1e-4:50",
                         "12:4:abc:50", "12:4:1e-4:50x", "12:4:nan:50", "300:4:1e-4:50", "12:4:inf:50"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        if (qs_curriculum_parse(bad[k], strlen(bad[k]), &c) == QS_OK) fail_msg("accepted bad curriculum '%s'", bad[k]);
        assert_true(strstr(qstar_last_error(), "curriculum") != NULL);
    }
    char many[2000] = "";
    for (int k = 0; k < QS_MAX_STAGES + 1; k++) strcat(many, k ? ",5:1:1e-3:1" : "5:1:1e-3:1");
    assert_int_not_equal(qs_curriculum_parse(many, strlen(many), &c), QS_OK);
    many[strlen(many) - strlen(",5:1:1e-3:1")] = 0;
    assert_int_equal(qs_curriculum_parse(many, strlen(many), &c), QS_OK);
    assert_int_equal(c.n, QS_MAX_STAGES);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_entropy_by_hand),
        cmocka_unit_test(test_think_when_generate),
        cmocka_unit_test(test_think_when_nll),
        cmocka_unit_test(test_random_thoughts),
        cmocka_unit_test(test_think_at_nll),
        cmocka_unit_test(test_think_at_absent),
        cmocka_unit_test(test_think_at_errors),
        cmocka_unit_test(test_ema_reward_by_hand),
        cmocka_unit_test(test_curriculum_parse),
        cmocka_unit_test(test_init_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

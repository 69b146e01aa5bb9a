// test_reference.c: the plain language model against the PyTorch reference
// (tests/reference/llama_ref.py, fixtures in tests/fixtures/llama/<name>/).
// For every fixture directory: logits, loss and the gradient of every
// parameter from qs_lm_step, then 3 steps of clip + AdamW on the same batch
// (loss before each step and every parameter after it). Tolerance
// atol + rtol*|ref| with atol 1e-5, rtol 1e-4 (the reference is float64
// rounded to float32). Tests run from the repo root; QSTAR_FIXTURES
// overrides the fixture root (either tests/fixtures or tests/fixtures/llama).
// Regenerate the fixtures with scripts/reference.sh.
#include "testutil.h"

#include <dirent.h>
#include <sys/stat.h>

#include "io/model_io.h"
#include "io/safetensors.h"
#include "model/transformer.h"
#include "train/adamw.h"

#ifndef ATOL
#define ATOL 1e-5
#endif
#ifndef RTOL
#define RTOL 1e-4
#endif
#define MAX_FIXTURES 64

typedef struct {
    char name[256];
    char dir[1300];
} fixture;

static fixture g_fix[MAX_FIXTURES];
static int g_nfix;

static int is_dir(const char *p) {
    struct stat s;
    return stat(p, &s) == 0 && S_ISDIR(s.st_mode);
}

static int is_file(const char *p) {
    struct stat s;
    return stat(p, &s) == 0 && S_ISREG(s.st_mode);
}

static int cmp_fixture(const void *a, const void *b) {
    return strcmp(((const fixture *)a)->name, ((const fixture *)b)->name);
}

// Finds the fixture root and lists its fixture directories (those holding
// model/config.json), sorted by name. Returns the root used.
static const char *find_fixtures(char *root, size_t n) {
    const char *env = getenv("QSTAR_FIXTURES");
    if (env && *env) {
        snprintf(root, n, "%s/llama", env);
        if (!is_dir(root)) snprintf(root, n, "%s", env);
    } else {
        snprintf(root, n, "tests/fixtures/llama");
    }
    DIR *d = opendir(root);
    if (!d) return root;
    struct dirent *e;
    while ((e = readdir(d)) && g_nfix < MAX_FIXTURES) {
        if (e->d_name[0] == '.') continue;
        fixture *f = &g_fix[g_nfix];
        char cfg[1400];
        snprintf(f->name, sizeof f->name, "%s", e->d_name);
        snprintf(f->dir, sizeof f->dir, "%s/%s", root, e->d_name);
        snprintf(cfg, sizeof cfg, "%s/model/config.json", f->dir);
        if (is_file(cfg)) g_nfix++;
    }
    closedir(d);
    qsort(g_fix, (size_t)g_nfix, sizeof g_fix[0], cmp_fixture);
    return root;
}

// hparams.txt: "key value" lines, '#' comments.
typedef struct {
    qs_adamw_hparams hp;
    float clip;
    int steps;
} ref_hparams;

static void read_hparams(const char *dir, ref_hparams *h) {
    char path[1400], line[256], key[64];
    double val;
    int seen = 0;
    snprintf(path, sizeof path, "%s/hparams.txt", dir);
    FILE *f = fopen(path, "r");
    if (!f) fail_msg("%s: cannot open", path);
    memset(h, 0, sizeof *h);
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || sscanf(line, "%63s %lf", key, &val) != 2) continue;
        if (!strcmp(key, "lr")) h->hp.lr = (float)val, seen |= 1;
        else if (!strcmp(key, "beta1")) h->hp.beta1 = (float)val, seen |= 2;
        else if (!strcmp(key, "beta2")) h->hp.beta2 = (float)val, seen |= 4;
        else if (!strcmp(key, "eps")) h->hp.eps = (float)val, seen |= 8;
        else if (!strcmp(key, "weight_decay")) h->hp.weight_decay = (float)val, seen |= 16;
        else if (!strcmp(key, "clip_grad_norm")) h->clip = (float)val, seen |= 32;
        else if (!strcmp(key, "steps")) h->steps = (int)val, seen |= 64;
    }
    fclose(f);
    if (seen != 127) fail_msg("%s: missing keys (have mask %d of 127)", path, seen);
}

// Number of elements outside atol + rtol*|ref|; prints the worst one.
static size_t count_bad(const char *what, const float *a, const float *ref, size_t n) {
    size_t worst = 0, bad = 0;
    double worst_ex = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)a[i] - (double)ref[i]);
        double tol = ATOL + RTOL * fabs((double)ref[i]);
        double ex = isnan(a[i]) ? INFINITY : err - tol;
        if (!(err <= tol)) bad++;
        if (ex > worst_ex) { worst_ex = ex; worst = i; }
    }
    if (bad)
        fprintf(stderr, "  MISMATCH %s: %zu of %zu elements differ; worst [%zu] got %.8g want %.8g\n", what, bad,
                n, worst, (double)a[worst], (double)ref[worst]);
    return bad;
}

// Reads expected tensor `name` (numel must be n) into buf.
static void read_expected(const qs_safetensors *st, const char *fx, const char *name, float *buf, size_t n) {
    const qs_st_tensor *t = qs_st_find(st, name);
    if (!t) fail_msg("%s: expected.safetensors has no tensor %s", fx, name);
    if (t->numel != n) fail_msg("%s: %s has %zu elements, the model has %zu", fx, name, t->numel, n);
    if (qs_st_read_f32(st, t, buf) != QS_OK) fail_msg("%s: %s: %s", fx, name, qstar_last_error());
}

// Compares `n` floats at `got` with expected tensor `name`; returns 1 if they
// differ (and records the first failing name in first_bad[256]).
static int check_tensor(const qs_safetensors *exp, const char *fx, const char *name, const float *got,
                        size_t n, float *scratch, char *first_bad) {
    char what[300];
    read_expected(exp, fx, name, scratch, n);
    snprintf(what, sizeof what, "%s: %s", fx, name);
    if (!count_bad(what, got, scratch, n)) return 0;
    if (!first_bad[0]) snprintf(first_bad, 256, "%s", name);
    return 1;
}

// Compares every model tensor as `prefix + name` against `buf` (laid out as the model).
static int check_all(const qs_model *m, const qs_safetensors *exp, const char *fx, const char *prefix,
                     const float *buf, float *scratch, char *first_bad) {
    char key[160];
    int nbad = 0;
    for (int i = 0; i < m->layout.n; i++) {
        const qs_tensor_info *ti = &m->layout.t[i];
        snprintf(key, sizeof key, "%s%s", prefix, ti->name);
        nbad += check_tensor(exp, fx, key, buf + ti->offset, ti->numel, scratch, first_bad);
    }
    return nbad;
}

static void test_fixture(void **state) {
    const fixture *fx = *state;
    const char *name = fx->name;
    char path[1400], first_bad[256] = "";
    qs_model m;
    memset(&m, 0, sizeof m);

    snprintf(path, sizeof path, "%s/model", fx->dir);
    if (qs_model_load(&m, path, NULL) != QS_OK) fail_msg("%s: qs_model_load: %s", name, qstar_last_error());

    qs_safetensors batch, exp;
    memset(&batch, 0, sizeof batch);
    memset(&exp, 0, sizeof exp);
    snprintf(path, sizeof path, "%s/batch.safetensors", fx->dir);
    if (qs_st_open(&batch, path) != QS_OK) fail_msg("%s: %s", name, qstar_last_error());
    snprintf(path, sizeof path, "%s/expected.safetensors", fx->dir);
    if (qs_st_open(&exp, path) != QS_OK) fail_msg("%s: %s", name, qstar_last_error());

    const qs_st_tensor *ti = qs_st_find(&batch, "input_ids"), *tm = qs_st_find(&batch, "attention_mask");
    if (!ti || !tm || ti->ndim != 2 || tm->ndim != 2 || ti->shape[0] != tm->shape[0] || ti->shape[1] != tm->shape[1])
        fail_msg("%s: batch.safetensors needs input_ids and attention_mask of the same shape [B,T]", name);
    const int B = (int)ti->shape[0], T = (int)ti->shape[1], V = m.cfg.vocab_size;
    int32_t *tokens = malloc((size_t)B * T * sizeof *tokens), *mask = malloc((size_t)B * T * sizeof *mask);
    assert_non_null(tokens);
    assert_non_null(mask);
    if (qs_st_read_i32(&batch, ti, tokens) != QS_OK || qs_st_read_i32(&batch, tm, mask) != QS_OK)
        fail_msg("%s: batch: %s", name, qstar_last_error());

    ref_hparams hp;
    read_hparams(fx->dir, &hp);

    // Every expected grad.* must be a model tensor (catches a missing lm_head / tying mix-up).
    for (int i = 0; i < exp.n; i++)
        if (!strncmp(exp.t[i].name, "grad.", 5) && qs_layout_find(&m.layout, exp.t[i].name + 5) < 0)
            fail_msg("%s: expected %s but the loaded model has no tensor %s", name, exp.t[i].name,
                     exp.t[i].name + 5);

    qs_workspace *ws = NULL;
    if (qs_workspace_create(&ws, &m.cfg, B, T, 1) != QS_OK)
        fail_msg("%s: qs_workspace_create: %s", name, qstar_last_error());
    const size_t numel = m.layout.numel, nlog = (size_t)B * T * V;
    float *grads = calloc(numel, sizeof(float));
    float *logits = malloc(nlog * sizeof(float));
    float *scratch = malloc((nlog > numel ? nlog : numel) * sizeof(float));
    assert_non_null(grads);
    assert_non_null(logits);
    assert_non_null(scratch);

    // ---- forward + backward
    float loss = NAN;
    int nt = 0;
    if (qs_lm_step(&m, ws, tokens, mask, B, T, &loss, logits, grads, 1.0f, &nt) != QS_OK)
        fail_msg("%s: qs_lm_step: %s", name, qstar_last_error());
    int nbad = 0;
    nbad += check_tensor(&exp, name, "logits", logits, nlog, scratch, first_bad);
    nbad += check_tensor(&exp, name, "loss", &loss, 1, scratch, first_bad);
    nbad += check_all(&m, &exp, name, "grad.", grads, scratch, first_bad);
    if (nbad) fail_msg("%s: %d tensors differ from the reference (first: %s)", name, nbad, first_bad);
    fprintf(stderr, "  %s: B=%d T=%d V=%d targets=%d loss %.6f; logits and %d gradients match\n", name, B, T, V,
            nt, (double)loss, m.layout.n);

    // ---- AdamW steps on the same batch
    qs_adamw opt;
    memset(&opt, 0, sizeof opt);
    if (qs_adamw_create(&opt, numel) != QS_OK) fail_msg("%s: qs_adamw_create: %s", name, qstar_last_error());
    for (int k = 1; k <= hp.steps; k++) {
        char key[64], prefix[32];
        memset(grads, 0, numel * sizeof(float));
        if (qs_lm_step(&m, ws, tokens, mask, B, T, &loss, NULL, grads, 1.0f, NULL) != QS_OK)
            fail_msg("%s: step %d: qs_lm_step: %s", name, k, qstar_last_error());
        snprintf(key, sizeof key, "loss_step%d", k);
        nbad += check_tensor(&exp, name, key, &loss, 1, scratch, first_bad);
        qs_clip_grad_norm(grads, numel, hp.clip);
        qs_adamw_step(&opt, &m.layout, m.params, grads, &hp.hp, hp.hp.lr);
        snprintf(prefix, sizeof prefix, "step%d.", k);
        nbad += check_all(&m, &exp, name, prefix, m.params, scratch, first_bad);
        if (nbad) fail_msg("%s: AdamW step %d: %d tensors differ from the reference (first: %s)", name, k, nbad,
                           first_bad);
    }
    fprintf(stderr, "  %s: %d AdamW steps match (loss before last step %.6f)\n", name, hp.steps, (double)loss);

    qs_adamw_free(&opt);
    free(scratch);
    free(logits);
    free(grads);
    qs_workspace_free(ws);
    free(tokens);
    free(mask);
    qs_st_close(&exp);
    qs_st_close(&batch);
    qs_model_free(&m);
}

int main(void) {
    char root[1024];
    find_fixtures(root, sizeof root);
    if (g_nfix == 0) {
        fprintf(stderr, "test_reference: no fixtures under %s (run from the repo root, set QSTAR_FIXTURES, "
                        "or regenerate with scripts/reference.sh)\n", root);
        return 1;
    }
    struct CMUnitTest tests[MAX_FIXTURES];
    for (int i = 0; i < g_nfix; i++) {
        struct CMUnitTest t = {g_fix[i].name, test_fixture, NULL, NULL, &g_fix[i]};
        tests[i] = t;
    }
    return _cmocka_run_group_tests("reference", tests, (size_t)g_nfix, NULL, NULL);
}

// test_adamw.c: AdamW update (against a double-precision reference written
// out here), no_decay handling, alignment gaps, gradient clipping and the
// learning-rate schedule.
#include "testutil.h"

#include "core/qs.h"
#include "train/adamw.h"

// A small layout with alignment gaps: w[3] (decay) at 0, b[5] (no_decay) at
// 16, x[2,3] (decay) at 32; numel 38.
static void small_layout(qs_layout *L) {
    memset(L, 0, sizeof *L);
    int64_t s3[1] = {3}, s5[1] = {5}, s23[2] = {2, 3};
    assert_int_equal(qs_layout_add(L, "w", 1, s3, 0), QS_OK);
    assert_int_equal(qs_layout_add(L, "b", 1, s5, 1), QS_OK);
    assert_int_equal(qs_layout_add(L, "x", 2, s23, 0), QS_OK);
    assert_int_equal(L->t[0].offset, 0);
    assert_int_equal(L->t[1].offset, 16);
    assert_int_equal(L->t[2].offset, 32);
    assert_int_equal(L->numel, 38);
}

static int in_tensor(const qs_layout *L, size_t i, int *no_decay) {
    for (int k = 0; k < L->n; k++)
        if (i >= L->t[k].offset && i < L->t[k].offset + L->t[k].numel) {
            *no_decay = L->t[k].no_decay;
            return 1;
        }
    return 0;
}

// Reference AdamW in double, torch.optim.AdamW algorithm (t = 1-based step).
static void ref_step(const qs_layout *L, double *p, double *m, double *v, const float *g, double lr,
                     double b1, double b2, double eps, double wd, long t) {
    for (size_t i = 0; i < L->numel; i++) {
        int nd;
        if (!in_tensor(L, i, &nd)) continue;
        if (!nd) p[i] *= 1.0 - lr * wd;
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * (double)g[i] * g[i];
        double mh = m[i] / (1 - pow(b1, (double)t));
        double vh = v[i] / (1 - pow(b2, (double)t));
        p[i] -= lr * mh / (sqrt(vh) + eps);
    }
}

static void fill_grads(const qs_layout *L, float *g, int step) {
    for (size_t i = 0; i < L->numel; i++) {
        int nd;
        // gaps hold garbage on purpose: the optimizer must not read them into params
        g[i] = in_tensor(L, i, &nd) ? (float)(0.3 * sin(1.7 * (double)i + step) + 0.05 * step) : 123.0f;
    }
}

static void test_adamw_one_and_three_steps(void **state) {
    (void)state;
    qs_layout L;
    small_layout(&L);
    const size_t N = L.numel;
    float p[38], g[38];
    double pr[38], mr[38] = {0}, vr[38] = {0};
    for (size_t i = 0; i < N; i++) {
        int nd;
        p[i] = in_tensor(&L, i, &nd) ? (float)(0.5 + 0.1 * cos((double)i)) : 0.0f;
        pr[i] = p[i];
    }
    qs_adamw o;
    assert_int_equal(qs_adamw_create(&o, N), QS_OK);
    assert_int_equal(o.numel, N);
    assert_int_equal(o.step, 0);
    qs_adamw_hparams hp = {.lr = 999.0f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
    const float lrs[3] = {1e-2f, 5e-3f, 2e-2f};

    // One step, hand-checked: after the first step m_hat = g and
    // v_hat = g^2, so p1 = p0 (1 - lr wd) - lr g / (|g| + eps).
    fill_grads(&L, g, 0);
    qs_adamw_step(&o, &L, p, g, &hp, lrs[0]);
    assert_int_equal(o.step, 1);
    {
        size_t i = 1; // in w (decay)
        double want = pr[i] * (1 - 0.01 * 0.1) - 0.01 * g[i] / (fabs(g[i]) + 1e-8);
        assert_true(fabs(p[i] - want) < 1e-6);
        i = 17; // in b (no decay)
        want = pr[i] - 0.01 * g[i] / (fabs(g[i]) + 1e-8);
        assert_true(fabs(p[i] - want) < 1e-6);
    }
    ref_step(&L, pr, mr, vr, g, lrs[0], hp.beta1, hp.beta2, hp.eps, hp.weight_decay, 1);
    float want[38];
    for (size_t i = 0; i < N; i++) want[i] = (float)pr[i];
    tu_assert_close("adamw step 1", p, want, N, 1e-6, 1e-5);

    for (int s = 1; s < 3; s++) {
        fill_grads(&L, g, s);
        qs_adamw_step(&o, &L, p, g, &hp, lrs[s]);
        ref_step(&L, pr, mr, vr, g, lrs[s], hp.beta1, hp.beta2, hp.eps, hp.weight_decay, s + 1);
    }
    assert_int_equal(o.step, 3);
    for (size_t i = 0; i < N; i++) want[i] = (float)pr[i];
    tu_assert_close("adamw step 3", p, want, N, 1e-6, 1e-5);
    for (size_t i = 0; i < N; i++) want[i] = (float)mr[i];
    tu_assert_close("adamw m after 3", o.m, want, N, 1e-7, 1e-5);
    for (size_t i = 0; i < N; i++) want[i] = (float)vr[i];
    tu_assert_close("adamw v after 3", o.v, want, N, 1e-9, 1e-5);

    // alignment gaps stay zero in params and in both moments
    for (size_t i = 0; i < N; i++) {
        int nd;
        if (in_tensor(&L, i, &nd)) continue;
        assert_true(p[i] == 0.0f);
        assert_true(o.m[i] == 0.0f);
        assert_true(o.v[i] == 0.0f);
    }
    qs_adamw_free(&o);
    assert_null(o.m);
    qs_layout_free(&L);
}

// With zero gradients the Adam part is exactly 0, so only decoupled weight
// decay acts: decay tensors shrink by (1 - lr wd) per step, no_decay ones not at all.
static void test_adamw_no_decay(void **state) {
    (void)state;
    qs_layout L;
    small_layout(&L);
    float p[38] = {0}, g[38] = {0};
    for (int k = 0; k < L.n; k++)
        for (size_t j = 0; j < L.t[k].numel; j++) p[L.t[k].offset + j] = 2.0f;
    qs_adamw o;
    assert_int_equal(qs_adamw_create(&o, L.numel), QS_OK);
    qs_adamw_hparams hp = {.lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.5f};
    for (int s = 0; s < 2; s++) qs_adamw_step(&o, &L, p, g, &hp, hp.lr);
    float shrunk = 2.0f * (1.0f - 0.05f) * (1.0f - 0.05f);
    for (int k = 0; k < L.n; k++)
        for (size_t j = 0; j < L.t[k].numel; j++) {
            float x = p[L.t[k].offset + j];
            if (L.t[k].no_decay) assert_true(x == 2.0f);
            else assert_true(fabsf(x - shrunk) < 1e-6f);
        }
    qs_adamw_free(&o);
    qs_layout_free(&L);
}

// qs_adamw_step_range (data-parallel training, --zero 1): updating the buffer
// chunk by chunk, with moments holding only each chunk, gives exactly the
// bytes of one full qs_adamw_step, over three steps, with chunk boundaries
// inside tensors and inside alignment gaps.
static void test_adamw_range_equals_full(void **state) {
    (void)state;
    qs_layout L;
    small_layout(&L);
    const size_t n = L.numel;
    float *p_full = calloc(n, sizeof(float)), *p_part = calloc(n, sizeof(float)), *g = calloc(n, sizeof(float));
    assert_non_null(p_full), assert_non_null(p_part), assert_non_null(g);
    for (size_t i = 0; i < n; i++) p_full[i] = p_part[i] = 0.1f * (float)((int)(i % 7) - 3);
    const size_t cuts[] = {0, 2, 18, 34, n}; // inside w, b and x
    const int n_chunks = 4;
    qs_adamw full, part[4];
    assert_int_equal(qs_adamw_create(&full, n), QS_OK);
    for (int c = 0; c < n_chunks; c++) assert_int_equal(qs_adamw_create(&part[c], cuts[c + 1] - cuts[c]), QS_OK);
    qs_adamw_hparams hp = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
    for (int step = 1; step <= 3; step++) {
        fill_grads(&L, g, step);
        qs_adamw_step(&full, &L, p_full, g, &hp, hp.lr);
        for (int c = 0; c < n_chunks; c++) qs_adamw_step_range(&part[c], &L, p_part, g, &hp, hp.lr, cuts[c], cuts[c + 1]);
        assert_memory_equal(p_full, p_part, n * sizeof(float));
        for (int c = 0; c < n_chunks; c++) {
            assert_memory_equal(full.m + cuts[c], part[c].m, (cuts[c + 1] - cuts[c]) * sizeof(float));
            assert_memory_equal(full.v + cuts[c], part[c].v, (cuts[c + 1] - cuts[c]) * sizeof(float));
            assert_int_equal(part[c].step, full.step);
        }
    }
    qs_adamw_free(&full);
    for (int c = 0; c < n_chunks; c++) qs_adamw_free(&part[c]);
    free(p_full), free(p_part), free(g);
    qs_layout_free(&L);
}

static void test_clip_grad_norm(void **state) {
    (void)state;
    float g[2] = {3.0f, 4.0f};
    // below the threshold and disabled clipping: untouched
    assert_true(fabsf(qs_clip_grad_norm(g, 2, 10.0f) - 5.0f) < 1e-6f);
    assert_true(g[0] == 3.0f && g[1] == 4.0f);
    assert_true(fabsf(qs_clip_grad_norm(g, 2, 0.0f) - 5.0f) < 1e-6f);
    assert_true(g[0] == 3.0f && g[1] == 4.0f);
    // above: scaled by max/(norm+1e-6), returns the norm before clipping
    assert_true(fabsf(qs_clip_grad_norm(g, 2, 1.0f) - 5.0f) < 1e-6f);
    assert_true(fabs(g[0] - 3.0 / (5.0 + 1e-6)) < 1e-7);
    assert_true(fabs(g[1] - 4.0 / (5.0 + 1e-6)) < 1e-7);
    assert_true(fabsf(qs_clip_grad_norm(g, 2, 0.0f) - 1.0f) < 1e-5f);

    // large buffer (parallel reduction) against a sequential double sum
    const size_t n = 300001;
    float *big = malloc(n * sizeof *big);
    assert_non_null(big);
    double ss = 0;
    for (size_t i = 0; i < n; i++) {
        big[i] = (float)(1e-3 * sin((double)i * 0.37) + ((i % 1000) == 0 ? 0.5 : 0.0));
        ss += (double)big[i] * big[i];
    }
    float norm = qs_clip_grad_norm(big, n, 0.25f);
    assert_true(fabs(norm - sqrt(ss)) < 1e-6 * sqrt(ss));
    double ss2 = 0;
    for (size_t i = 0; i < n; i++) ss2 += (double)big[i] * big[i];
    assert_true(fabs(sqrt(ss2) - 0.25) < 1e-5);

    // a non-finite gradient: the norm says so and gradients are left alone
    big[7] = NAN;
    big[8] = 1.0f;
    assert_false(isfinite(qs_clip_grad_norm(big, n, 1.0f)));
    assert_true(big[8] == 1.0f);
    big[7] = INFINITY;
    assert_false(isfinite(qs_clip_grad_norm(big, n, 1.0f)));
    assert_true(big[8] == 1.0f);
    free(big);
}

// Clipping folded into the update (grad_scale = qs_clip_factor of qs_grad_norm, as the
// trainer does) gives the same bytes as clipping the gradients first, over three
// steps, clipped (max 0.5) and not (max 0: factor exactly 1, as is grad_scale 0).
static void test_adamw_grad_scale(void **state) {
    (void)state;
    qs_layout L;
    small_layout(&L);
    const size_t n = L.numel;
    for (int clip = 0; clip < 2; clip++) {
        const float max_norm = clip ? 0.5f : 0.0f;
        float *pa = calloc(n, sizeof(float)), *pb = calloc(n, sizeof(float)), *g = calloc(n, sizeof(float));
        assert_non_null(pa), assert_non_null(pb), assert_non_null(g);
        qs_adamw a, b;
        assert_int_equal(qs_adamw_create(&a, n), QS_OK);
        assert_int_equal(qs_adamw_create(&b, n), QS_OK);
        qs_adamw_hparams hp = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
        for (int step = 1; step <= 3; step++) {
            fill_grads(&L, g, step);
            const double norm = qs_grad_norm(g, n);
            const float f = qs_clip_factor(norm, max_norm);
            assert_true(clip ? f < 1.0f : f == 1.0f);
            qs_adamw_hparams hs = hp;
            hs.grad_scale = clip ? f : 0.0f;
            qs_adamw_step(&b, &L, pb, g, &hs, hp.lr); // g untouched
            assert_true(fabsf(qs_clip_grad_norm(g, n, max_norm) - (float)norm) == 0.0f);
            qs_adamw_step(&a, &L, pa, g, &hp, hp.lr);
            assert_memory_equal(pa, pb, n * sizeof(float));
            assert_memory_equal(a.m, b.m, n * sizeof(float));
            assert_memory_equal(a.v, b.v, n * sizeof(float));
        }
        qs_adamw_free(&a), qs_adamw_free(&b);
        free(pa), free(pb), free(g);
    }
    qs_layout_free(&L);
}

static void test_lr_schedule(void **state) {
    (void)state;
    const float lr = 1e-3f, mn = 1e-4f;
    const long W = 10, T = 110;
#define NEAR(a, b) assert_true(fabs((double)(a) - (double)(b)) < 1e-9)
    NEAR(qs_lr_schedule(0, lr, mn, W, T), 0.0);             // warmup start
    NEAR(qs_lr_schedule(5, lr, mn, W, T), 0.5e-3);          // warmup midpoint
    NEAR(qs_lr_schedule(W, lr, mn, W, T), lr);              // warmup end = peak
    NEAR(qs_lr_schedule(60, lr, mn, W, T), (1e-3 + 1e-4) / 2); // cosine midpoint
    double q = 0.5 * (1 + cos(M_PI * 0.25));
    NEAR(qs_lr_schedule(35, lr, mn, W, T), 1e-4 + (1e-3 - 1e-4) * q);
    NEAR(qs_lr_schedule(T, lr, mn, W, T), mn);              // end
    NEAR(qs_lr_schedule(T + 1000, lr, mn, W, T), mn);       // past the end
    // monotone non-increasing after warmup
    for (long s = W; s < T; s++) assert_true(qs_lr_schedule(s + 1, lr, mn, W, T) <= qs_lr_schedule(s, lr, mn, W, T));
    // no warmup: starts at peak
    NEAR(qs_lr_schedule(0, lr, mn, 0, 100), lr);
    NEAR(qs_lr_schedule(50, lr, 0.0f, 0, 100), 0.5e-3);
    // total <= 0: constant after warmup
    NEAR(qs_lr_schedule(2, lr, mn, 4, 0), 0.5e-3);
    NEAR(qs_lr_schedule(4, lr, mn, 4, 0), lr);
    NEAR(qs_lr_schedule(100000, lr, mn, 4, 0), lr);
#undef NEAR
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adamw_one_and_three_steps),
        cmocka_unit_test(test_adamw_no_decay),
        cmocka_unit_test(test_adamw_range_equals_full),
        cmocka_unit_test(test_adamw_grad_scale),
        cmocka_unit_test(test_clip_grad_norm),
        cmocka_unit_test(test_lr_schedule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

// test_ops.c: every op in src/ops/ against references written out here.
// Forwards are compared with naive double-precision implementations (for
// attention: a dense score matrix with an explicit Quiet-STaR visibility
// mask, structurally unlike the op's online softmax). Backwards are compared
// with central finite differences of L = sum(out * G) for a fixed random G,
// evaluated with the op's own float forward and accumulated in double; the
// accumulate (+=) / overwrite semantics of each backward are checked too.
#include "testutil.h"

#include <stdint.h>

#include "ops/ops.h"

// ---- helpers ----------------------------------------------------------------

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static void rng_seed(uint64_t s) { rng_state = s * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull; }

// uniform in [-1, 1)
static float frand(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    uint64_t x = rng_state * 0x2545F4914F6CDD1Dull;
    return (float)((double)(x >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0);
}

static float *falloc(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    assert_non_null(p);
    return p;
}

static double *dalloc(size_t n) {
    double *p = calloc(n ? n : 1, sizeof(double));
    assert_non_null(p);
    return p;
}

static float *frandom(size_t n, float scale) {
    float *p = falloc(n);
    for (size_t i = 0; i < n; i++) p[i] = scale * frand();
    return p;
}

static float *fcopy(const float *a, size_t n) {
    float *p = falloc(n);
    memcpy(p, a, n * sizeof(float));
    return p;
}

static float *to_float(const double *a, size_t n) {
    float *p = falloc(n);
    for (size_t i = 0; i < n; i++) p[i] = (float)a[i];
    return p;
}

static double dotfd(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * (double)b[i];
    return s;
}

static void fill(float *a, size_t n, float v) {
    for (size_t i = 0; i < n; i++) a[i] = v;
}

// Compare, optionally reporting the margin (max err/tol) with QS_TEST_VERBOSE.
static void check_close(const char *what, const float *a, const float *ref, size_t n, double atol, double rtol) {
    if (getenv("QS_TEST_VERBOSE")) {
        double worst = 0;
        for (size_t i = 0; i < n; i++) {
            double r = fabs((double)a[i] - (double)ref[i]) / (atol + rtol * fabs((double)ref[i]));
            if (r > worst || isnan(r)) worst = r;
        }
        fprintf(stderr, "    %-40s n=%-5zu max err/tol = %.3g\n", what, n, worst);
    }
    tu_assert_close(what, a, ref, n, atol, rtol);
}

// Central finite differences of loss(ctx) with respect to each element of x
// (which loss reads through ctx). The step actually taken is measured after
// rounding to float. Returns a malloc'd array of n derivatives.
typedef double (*loss_fn)(void *ctx);
static float *fd_grad(loss_fn loss, void *ctx, float *x, size_t n, float eps) {
    float *g = falloc(n);
    for (size_t i = 0; i < n; i++) {
        const float save = x[i];
        x[i] = save + eps;
        const float xp = x[i];
        const double lp = loss(ctx);
        x[i] = save - eps;
        const float xm = x[i];
        const double lm = loss(ctx);
        x[i] = save;
        g[i] = (float)((lp - lm) / ((double)xp - (double)xm));
    }
    return g;
}

// FD tolerances: float forward, eps 1e-2, double accumulation of L.
#define FD_EPS 1e-2f
#define FD_ATOL 2e-4
#define FD_RTOL 2e-3

static void fd_check(const char *what, loss_fn loss, void *ctx, float *x, size_t n, const float *analytic) {
    float *num = fd_grad(loss, ctx, x, n, FD_EPS);
    check_close(what, analytic, num, n, FD_ATOL, FD_RTOL);
    free(num);
}

// acc must equal prefill + fresh (the backward accumulated into a pre-filled buffer).
static void check_accum(const char *what, const float *acc, const float *prefill, const float *fresh, size_t n) {
    float *want = falloc(n);
    for (size_t i = 0; i < n; i++) want[i] = prefill[i] + fresh[i];
    check_close(what, acc, want, n, 1e-6, 1e-6);
    free(want);
}

// ---- matmul -----------------------------------------------------------------

typedef struct {
    int N, C, OC;
    float *inp, *w, *b, *out, *G;
    int use_bias;
} mm_ctx;

static double mm_loss(void *p) {
    mm_ctx *c = p;
    matmul_forward(c->out, c->inp, c->w, c->use_bias ? c->b : NULL, c->N, c->C, c->OC);
    return dotfd(c->out, c->G, (size_t)c->N * c->OC);
}

static void ref_matmul(double *out, const float *inp, const float *w, const float *b, int N, int C, int OC) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = b ? b[o] : 0.0;
            for (int k = 0; k < C; k++) s += (double)inp[(size_t)n * C + k] * w[(size_t)o * C + k];
            out[(size_t)n * OC + o] = s;
        }
}

static void test_matmul(void **state) {
    (void)state;
    static const int shapes[][3] = {{4, 6, 5}, {7, 33, 17}, {1, 3, 1}};
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        const int N = shapes[si][0], C = shapes[si][1], OC = shapes[si][2];
        const size_t nI = (size_t)N * C, nW = (size_t)OC * C, nO = (size_t)N * OC;
        rng_seed(100 + si);
        mm_ctx c = {N, C, OC, frandom(nI, 1), frandom(nW, 1), frandom(OC, 1), falloc(nO), frandom(nO, 1), 0};
        double *ref = dalloc(nO);
        for (int ub = 0; ub <= 1; ub++) {
            c.use_bias = ub;
            // forward; out pre-filled with garbage (NaN) must be overwritten
            fill(c.out, nO, NAN);
            matmul_forward(c.out, c.inp, c.w, ub ? c.b : NULL, N, C, OC);
            ref_matmul(ref, c.inp, c.w, ub ? c.b : NULL, N, C, OC);
            float *reff = to_float(ref, nO);
            check_close(ub ? "matmul fwd (bias)" : "matmul fwd", c.out, reff, nO, 1e-5, 1e-5);
            free(reff);

            // backward vs finite differences (dinp, dweight, dbias)
            float *dI = falloc(nI), *dW = falloc(nW), *dB = falloc(OC);
            matmul_backward(dI, dW, ub ? dB : NULL, c.G, c.inp, c.w, N, C, OC);
            fd_check("matmul dinp", mm_loss, &c, c.inp, nI, dI);
            fd_check("matmul dweight", mm_loss, &c, c.w, nW, dW);
            if (ub) fd_check("matmul dbias", mm_loss, &c, c.b, OC, dB);

            // accumulation into pre-filled buffers
            float *pI = frandom(nI, 3), *pW = frandom(nW, 3), *pB = frandom(OC, 3);
            float *aI = fcopy(pI, nI), *aW = fcopy(pW, nW), *aB = fcopy(pB, OC);
            matmul_backward(aI, aW, ub ? aB : NULL, c.G, c.inp, c.w, N, C, OC);
            check_accum("matmul dinp +=", aI, pI, dI, nI);
            check_accum("matmul dweight +=", aW, pW, dW, nW);
            if (ub) check_accum("matmul dbias +=", aB, pB, dB, OC);
            else tu_assert_close("matmul dbias untouched", aB, pB, OC, 0, 0);

            // each output may be NULL independently
            memcpy(aI, pI, nI * sizeof(float));
            memcpy(aW, pW, nW * sizeof(float));
            memcpy(aB, pB, OC * sizeof(float));
            matmul_backward(aI, NULL, NULL, c.G, c.inp, c.w, N, C, OC);
            check_accum("matmul dinp only", aI, pI, dI, nI);
            matmul_backward(NULL, aW, NULL, c.G, c.inp, c.w, N, C, OC);
            check_accum("matmul dweight only", aW, pW, dW, nW);
            if (ub) {
                matmul_backward(NULL, NULL, aB, c.G, c.inp, c.w, N, C, OC);
                check_accum("matmul dbias only", aB, pB, dB, OC);
            }
            free(dI), free(dW), free(dB), free(pI), free(pW), free(pB), free(aI), free(aW), free(aB);
        }
        free(ref), free(c.inp), free(c.w), free(c.b), free(c.out), free(c.G);
    }
}

// ---- rmsnorm ----------------------------------------------------------------

typedef struct {
    int N, C;
    float eps;
    float *x, *w, *out, *rstd, *G;
} rms_ctx;

static double rms_loss(void *p) {
    rms_ctx *c = p;
    rmsnorm_forward(c->out, c->rstd, c->x, c->w, c->N, c->C, c->eps);
    return dotfd(c->out, c->G, (size_t)c->N * c->C);
}

static void test_rmsnorm(void **state) {
    (void)state;
    const int N = 3, C = 16;
    const size_t n = (size_t)N * C;
    rng_seed(200);
    rms_ctx c = {N, C, 1e-5f, frandom(n, 2), frandom(C, 1.5f), falloc(n), falloc(N), frandom(n, 1)};
    c.x[5] = 0.0f;

    // forward vs double
    rmsnorm_forward(c.out, c.rstd, c.x, c.w, N, C, c.eps);
    double *ro = dalloc(n), *rr = dalloc(N);
    for (int i = 0; i < N; i++) {
        double ss = 0;
        for (int k = 0; k < C; k++) ss += (double)c.x[i * C + k] * c.x[i * C + k];
        rr[i] = 1.0 / sqrt(ss / C + (double)c.eps);
        for (int k = 0; k < C; k++) ro[i * C + k] = c.x[i * C + k] * rr[i] * c.w[k];
    }
    float *rof = to_float(ro, n), *rrf = to_float(rr, N);
    check_close("rmsnorm fwd", c.out, rof, n, 1e-6, 1e-5);
    check_close("rmsnorm rstd", c.rstd, rrf, N, 0, 1e-5);
    // rstd may be NULL
    float *out2 = falloc(n);
    rmsnorm_forward(out2, NULL, c.x, c.w, N, C, c.eps);
    tu_assert_close("rmsnorm fwd (rstd NULL)", out2, c.out, n, 0, 0);

    // eps matters for small rows: a row of 1e-3's (mean x^2 = 1e-6 vs eps 1e-5)
    // and an all-zero row (rstd = 1/sqrt(eps), out = 0)
    {
        float xs[2 * 16], os[2 * 16], rs[2];
        double want[2 * 16];
        for (int k = 0; k < C; k++) xs[k] = (k % 2 ? 1e-3f : -1e-3f), xs[C + k] = 0.0f;
        rmsnorm_forward(os, rs, xs, c.w, 2, C, c.eps);
        for (int k = 0; k < 2 * C; k++) want[k] = xs[k] / sqrt(1e-6 + (double)c.eps) * c.w[k % C];
        float *wf = to_float(want, 2 * (size_t)C);
        check_close("rmsnorm fwd (eps-dominated rows)", os, wf, 2 * (size_t)C, 1e-7, 1e-5);
        if (!(fabs(rs[1] - 1.0 / sqrt((double)c.eps)) <= 1e-5 / sqrt((double)c.eps)))
            fail_msg("rmsnorm rstd of a zero row: %g", (double)rs[1]);
        free(wf);
    }

    // backward vs finite differences
    float *dx = falloc(n), *dw = falloc(C);
    rmsnorm_backward(dx, dw, c.G, c.x, c.w, c.rstd, N, C);
    fd_check("rmsnorm dx", rms_loss, &c, c.x, n, dx);
    fd_check("rmsnorm dw", rms_loss, &c, c.w, C, dw);

    // accumulation, and dw NULL
    float *px = frandom(n, 3), *pw = frandom(C, 3), *ax = fcopy(px, n), *aw = fcopy(pw, C);
    rmsnorm_backward(ax, aw, c.G, c.x, c.w, c.rstd, N, C);
    check_accum("rmsnorm dx +=", ax, px, dx, n);
    check_accum("rmsnorm dw +=", aw, pw, dw, C);
    memcpy(ax, px, n * sizeof(float));
    rmsnorm_backward(ax, NULL, c.G, c.x, c.w, c.rstd, N, C);
    check_accum("rmsnorm dx (dw NULL)", ax, px, dx, n);

    free(ro), free(rr), free(rof), free(rrf), free(out2), free(dx), free(dw), free(px), free(pw), free(ax), free(aw);
    free(c.x), free(c.w), free(c.out), free(c.rstd), free(c.G);
}

// ---- rope -------------------------------------------------------------------

static void test_rope(void **state) {
    (void)state;
    const int N = 5, nh = 3, hd = 8, half = hd / 2, max_pos = 16;
    const float theta = 10000.0f;
    const int pos[5] = {0, 5, 2, 15, 7};
    const size_t n = (size_t)N * nh * hd, nt = (size_t)max_pos * half;
    float *ct = falloc(nt), *st = falloc(nt);
    rope_tables(ct, st, max_pos, hd, theta);

    // tables vs the double formula cos/sin(p * theta^(-2j/hd))
    double *rc = dalloc(nt), *rs = dalloc(nt);
    for (int p = 0; p < max_pos; p++)
        for (int j = 0; j < half; j++) {
            double a = p * pow((double)theta, -2.0 * j / hd);
            rc[p * half + j] = cos(a), rs[p * half + j] = sin(a);
        }
    float *rcf = to_float(rc, nt), *rsf = to_float(rs, nt);
    check_close("rope cos table", ct, rcf, nt, 1e-5, 0);
    check_close("rope sin table", st, rsf, nt, 1e-5, 0);
    for (int j = 0; j < half; j++) assert_true(ct[j] == 1.0f && st[j] == 0.0f);

    // forward vs explicit rotate-half with the tables
    rng_seed(300);
    float *x = frandom(n, 1), *y = fcopy(x, n);
    rope_forward(y, pos, ct, st, N, nh, hd);
    double *ref = dalloc(n);
    for (int t = 0; t < N; t++)
        for (int h = 0; h < nh; h++)
            for (int j = 0; j < hd; j++) {
                const float *v = x + ((size_t)t * nh + h) * hd;
                int k = j % half;
                double c = ct[pos[t] * half + k], s = st[pos[t] * half + k];
                double rot = j < half ? -(double)v[j + half] : (double)v[j - half]; // rotate_half(x)[j]
                ref[((size_t)t * nh + h) * hd + j] = v[j] * c + rot * s;
            }
    float *reff = to_float(ref, n);
    check_close("rope fwd", y, reff, n, 1e-6, 1e-6);
    // position 0 is the identity
    tu_assert_close("rope fwd pos 0", y, x, (size_t)nh * hd, 0, 0);

    // backward is the transpose: <rope(x), z> == <x, rope_backward(z)>
    float *z = frandom(n, 1), *bz = fcopy(z, n);
    rope_backward(bz, pos, ct, st, N, nh, hd);
    double lhs = dotfd(y, z, n), rhs = dotfd(x, bz, n);
    if (!(fabs(lhs - rhs) <= 1e-5 * (1 + fabs(lhs)))) fail_msg("rope adjoint: %.9g vs %.9g", lhs, rhs);
    // per-element: rope_backward(z) vs the explicit transposed rotation
    for (int t = 0; t < N; t++)
        for (int h = 0; h < nh; h++)
            for (int j = 0; j < hd; j++) {
                const float *v = z + ((size_t)t * nh + h) * hd;
                int k = j % half;
                double c = ct[pos[t] * half + k], s = st[pos[t] * half + k];
                double rot = j < half ? (double)v[j + half] : -(double)v[j - half];
                ref[((size_t)t * nh + h) * hd + j] = v[j] * c + rot * s;
            }
    free(reff);
    reff = to_float(ref, n);
    check_close("rope bwd", bz, reff, n, 1e-6, 1e-6);
    // orthogonal: backward(forward(x)) == x
    rope_backward(y, pos, ct, st, N, nh, hd);
    check_close("rope roundtrip", y, x, n, 1e-6, 1e-6);

    free(ct), free(st), free(rc), free(rs), free(rcf), free(rsf), free(x), free(y), free(ref), free(reff), free(z),
        free(bz);
}

// ---- swiglu -----------------------------------------------------------------

typedef struct {
    size_t n;
    float *gate, *up, *out, *G;
} sw_ctx;

static double sw_loss(void *p) {
    sw_ctx *c = p;
    swiglu_forward(c->out, c->gate, c->up, c->n);
    return dotfd(c->out, c->G, c->n);
}

static void test_swiglu(void **state) {
    (void)state;
    const size_t n = 37;
    rng_seed(400);
    sw_ctx c = {n, frandom(n, 4), frandom(n, 2), falloc(n), frandom(n, 1)};
    swiglu_forward(c.out, c.gate, c.up, n);
    double *ref = dalloc(n);
    for (size_t i = 0; i < n; i++) ref[i] = c.gate[i] / (1.0 + exp(-(double)c.gate[i])) * c.up[i];
    float *reff = to_float(ref, n);
    check_close("swiglu fwd", c.out, reff, n, 1e-6, 1e-5);

    float *dg = falloc(n), *du = falloc(n);
    swiglu_backward(dg, du, c.G, c.gate, c.up, n);
    fd_check("swiglu dgate", sw_loss, &c, c.gate, n, dg);
    fd_check("swiglu dup", sw_loss, &c, c.up, n, du);

    float *pg = frandom(n, 3), *pu = frandom(n, 3), *ag = fcopy(pg, n), *au = fcopy(pu, n);
    swiglu_backward(ag, au, c.G, c.gate, c.up, n);
    check_accum("swiglu dgate +=", ag, pg, dg, n);
    check_accum("swiglu dup +=", au, pu, du, n);

    // saturated gates stay finite: silu(-100) ~ 0, silu(100) ~ 100
    float g[4] = {-100, -30, 30, 100}, u[4] = {1, 1, 1, 1}, o[4], d1[4] = {1, 1, 1, 1}, gg[4] = {0}, gu[4] = {0};
    swiglu_forward(o, g, u, 4);
    swiglu_backward(gg, gu, d1, g, u, 4);
    for (int i = 0; i < 4; i++) assert_true(isfinite(o[i]) && isfinite(gg[i]) && isfinite(gu[i]));
    assert_true(fabsf(o[0]) < 1e-30f && fabsf(o[3] - 100.0f) < 1e-4f);
    assert_true(fabsf(gg[0]) < 1e-30f && fabsf(gg[3] - 1.0f) < 1e-6f);

    free(ref), free(reff), free(dg), free(du), free(pg), free(pu), free(ag), free(au);
    free(c.gate), free(c.up), free(c.out), free(c.G);
}

// ---- embedding --------------------------------------------------------------

typedef struct {
    int N, C;
    const int *tok;
    float *table, *out, *G;
} emb_ctx;

static double emb_loss(void *p) {
    emb_ctx *c = p;
    embedding_forward(c->out, c->tok, c->table, c->N, c->C);
    return dotfd(c->out, c->G, (size_t)c->N * c->C);
}

static void test_embedding(void **state) {
    (void)state;
    const int V = 6, C = 4, N = 7;
    const int tok[7] = {3, 1, 3, 0, 3, 5, 1}; // 3 three times, 1 twice, 2 and 4 never
    const size_t nT = (size_t)V * C, nO = (size_t)N * C;
    rng_seed(500);
    emb_ctx c = {N, C, tok, frandom(nT, 1), falloc(nO), frandom(nO, 1)};
    embedding_forward(c.out, tok, c.table, N, C);
    for (int t = 0; t < N; t++) tu_assert_close("embedding fwd", c.out + t * C, c.table + tok[t] * C, C, 0, 0);

    float *pre = frandom(nT, 3), *dt = fcopy(pre, nT);
    embedding_backward(dt, c.G, tok, N, C);
    double *ref = dalloc(nT);
    for (size_t i = 0; i < nT; i++) ref[i] = pre[i];
    for (int t = 0; t < N; t++)
        for (int k = 0; k < C; k++) ref[tok[t] * C + k] += c.G[t * C + k];
    float *reff = to_float(ref, nT);
    check_close("embedding bwd (repeated tokens, +=)", dt, reff, nT, 1e-6, 1e-6);
    tu_assert_close("embedding unused row 2", dt + 2 * C, pre + 2 * C, C, 0, 0);
    tu_assert_close("embedding unused row 4", dt + 4 * C, pre + 4 * C, C, 0, 0);

    float *d0 = falloc(nT);
    embedding_backward(d0, c.G, tok, N, C);
    fd_check("embedding dtable", emb_loss, &c, c.table, nT, d0);

    free(pre), free(dt), free(ref), free(reff), free(d0), free(c.table), free(c.out), free(c.G);
}

// ---- crossentropy -----------------------------------------------------------

typedef struct {
    int N, V;
    const int *tgt;
    float *logits, *losses, *G;
} ce_ctx;

static double ce_loss(void *p) {
    ce_ctx *c = p;
    crossentropy_forward(c->losses, c->logits, c->tgt, c->N, c->V);
    return dotfd(c->losses, c->G, (size_t)c->N);
}

static void test_crossentropy(void **state) {
    (void)state;
    const int N = 6, V = 11;
    const int tgt[6] = {3, -1, 0, 10, -100, 7};
    const size_t n = (size_t)N * V;
    rng_seed(600);
    ce_ctx c = {N, V, tgt, frandom(n, 3), falloc(N), frandom(N, 1)};
    for (int v = 0; v < V; v++) c.logits[5 * V + v] += 90.0f; // large logits: must not overflow

    // forward vs double
    fill(c.losses, N, NAN);
    crossentropy_forward(c.losses, c.logits, tgt, N, V);
    double *rl = dalloc(N), *rg = dalloc(n);
    for (int i = 0; i < N; i++) {
        const float *z = c.logits + (size_t)i * V;
        double mx = -INFINITY, s = 0;
        for (int v = 0; v < V; v++) mx = fmax(mx, z[v]);
        for (int v = 0; v < V; v++) s += exp(z[v] - mx);
        double lse = mx + log(s);
        rl[i] = tgt[i] < 0 ? 0.0 : lse - z[tgt[i]];
        for (int v = 0; v < V; v++)
            rg[(size_t)i * V + v] = tgt[i] < 0 ? 0.0 : c.G[i] * (exp(z[v] - lse) - (v == tgt[i]));
    }
    float *rlf = to_float(rl, N), *rgf = to_float(rg, n);
    check_close("crossentropy fwd", c.losses, rlf, N, 2e-5, 1e-5);
    assert_true(c.losses[1] == 0.0f && c.losses[4] == 0.0f);

    // backward OVERWRITES: garbage in dlogits must not leak into the result
    float *dl = falloc(n);
    fill(dl, n, 7.0f);
    crossentropy_backward(dl, c.logits, tgt, c.G, N, V);
    check_close("crossentropy bwd vs double", dl, rgf, n, 1e-6, 1e-5);
    for (int v = 0; v < V; v++) assert_true(dl[1 * V + v] == 0.0f && dl[4 * V + v] == 0.0f);
    // finite differences on the rows with logits of order 1 (near 90 the float
    // rounding of the loss, ~8e-6, is too coarse for a 1e-2 step)
    c.N = N - 1;
    fd_check("crossentropy dlogits", ce_loss, &c, c.logits, n - V, dl);
    c.N = N;

    // dlogits may alias logits
    float *al = fcopy(c.logits, n);
    crossentropy_backward(al, al, tgt, c.G, N, V);
    tu_assert_close("crossentropy bwd aliased", al, dl, n, 0, 0);

    free(rl), free(rg), free(rlf), free(rgf), free(dl), free(al), free(c.logits), free(c.losses), free(c.G);
}

// ---- attention --------------------------------------------------------------

// Dense reference. For row r, every query slot (pass d, position i) and every
// cache slot (pass e, position j) gets vis(d,i,e,j) from the rule in ops.h;
// scores for all D*T cache slots are computed, invisible ones set to -inf,
// then a plain softmax. out/lse are laid out like the op: [nd,R,ni,nh(*hd)].
static int ref_visible(const attn_shape *s, int r, int d, int i, int e, int j) {
    if (s->window > 0 && (i + d) - (j + e) >= s->window) return 0; // sliding window on position ids
    if (e == 0) return j <= i && (!s->mask || s->mask[r * s->T + j] != 0);
    return e <= d && j == i;
}

static void ref_attention(double *out, double *lse, const float *q, const float *kc, const float *vc,
                          const attn_shape *s, int D, int d0, int nd, int i0, int ni) {
    const int R = s->R, T = s->T, nh = s->nh, nkv = s->nkv, hd = s->hd, K = D * T;
    const int kvw = nkv * hd;
    double *S = dalloc((size_t)K);
    for (int dd = 0; dd < nd; dd++)
        for (int r = 0; r < R; r++)
            for (int ii = 0; ii < ni; ii++)
                for (int h = 0; h < nh; h++) {
                    const int d = d0 + dd, i = i0 + ii, g = h * nkv / nh;
                    const size_t qt = ((size_t)dd * R + r) * ni + ii;
                    const float *qv = q + (qt * nh + h) * hd;
                    double mx = -INFINITY;
                    for (int e = 0; e < D; e++)
                        for (int j = 0; j < T; j++) {
                            const float *kv = kc + (((size_t)e * R + r) * T + j) * kvw + (size_t)g * hd;
                            double sc = 0;
                            for (int k = 0; k < hd; k++) sc += (double)qv[k] * kv[k];
                            sc /= sqrt((double)hd);
                            S[e * T + j] = ref_visible(s, r, d, i, e, j) ? sc : -INFINITY;
                            mx = fmax(mx, S[e * T + j]);
                        }
                    double *o = out + (qt * nh + h) * hd;
                    for (int k = 0; k < hd; k++) o[k] = 0;
                    if (mx == -INFINITY) {
                        lse[qt * nh + h] = -INFINITY;
                        continue;
                    }
                    double sum = 0;
                    for (int kk = 0; kk < K; kk++) sum += exp(S[kk] - mx); // exp(-inf) = 0
                    for (int kk = 0; kk < K; kk++) {
                        double p = exp(S[kk] - mx) / sum;
                        const float *vv = vc + ((size_t)kk / T * R * T + (size_t)r * T + kk % T) * kvw + (size_t)g * hd;
                        for (int k = 0; k < hd; k++) o[k] += p * vv[k];
                    }
                    lse[qt * nh + h] = mx + log(sum);
                }
    free(S);
}

typedef struct {
    attn_shape s;
    int D, d0, nd, i0, ni;
    float *q, *kc, *vc, *G, *out, *lse;
} at_ctx;

static size_t at_nq(const at_ctx *c) { return (size_t)c->nd * c->s.R * c->ni * c->s.nh * c->s.hd; }
static size_t at_nl(const at_ctx *c) { return (size_t)c->nd * c->s.R * c->ni * c->s.nh; }
static size_t at_nc(const at_ctx *c) { return (size_t)c->D * c->s.R * c->s.T * c->s.nkv * c->s.hd; }

static double at_loss(void *p) {
    at_ctx *c = p;
    attention_forward(c->out, c->lse, c->q, c->kc, c->vc, &c->s, c->d0, c->nd, c->i0, c->ni);
    return dotfd(c->out, c->G, at_nq(c));
}

static void at_init(at_ctx *c, int R, int T, int D, int nh, int nkv, int hd, const int *mask, int d0, int nd,
                    int i0, int ni, uint64_t seed) {
    memset(c, 0, sizeof *c);
    c->s = (attn_shape){R, T, nh, nkv, hd, mask, 0};
    c->D = D, c->d0 = d0, c->nd = nd, c->i0 = i0, c->ni = ni;
    rng_seed(seed);
    c->q = frandom(at_nq(c), 2.0f);
    c->kc = frandom(at_nc(c), 1.0f);
    c->vc = frandom(at_nc(c), 1.0f);
    c->G = frandom(at_nq(c), 1.0f);
    c->out = falloc(at_nq(c));
    c->lse = falloc(at_nl(c));
}

static void at_free(at_ctx *c) { free(c->q), free(c->kc), free(c->vc), free(c->G), free(c->out), free(c->lse); }

// Forward vs the dense reference (out and lse), then dq/dkc/dvc vs finite
// differences, then accumulation into pre-filled buffers.
static void attention_case(const char *name, at_ctx *c) {
    const size_t nq = at_nq(c), nl = at_nl(c), nc = at_nc(c);
    char what[128];
    double *ro = dalloc(nq), *rl = dalloc(nl);
    ref_attention(ro, rl, c->q, c->kc, c->vc, &c->s, c->D, c->d0, c->nd, c->i0, c->ni);
    fill(c->out, nq, NAN);
    fill(c->lse, nl, NAN);
    attention_forward(c->out, c->lse, c->q, c->kc, c->vc, &c->s, c->d0, c->nd, c->i0, c->ni);
    float *rof = to_float(ro, nq), *rlf = to_float(rl, nl);
    snprintf(what, sizeof what, "%s: out", name);
    check_close(what, c->out, rof, nq, 1e-5, 1e-4);
    for (size_t k = 0; k < nl; k++) {
        if (isinf(rlf[k])) { // no visible key: lse = -inf (tu_assert_close cannot compare infinities)
            if (!(c->lse[k] == -INFINITY)) fail_msg("%s: lse[%zu] = %g, want -inf", name, k, (double)c->lse[k]);
            rlf[k] = c->lse[k] = 0.0f;
        }
    }
    snprintf(what, sizeof what, "%s: lse", name);
    check_close(what, c->lse, rlf, nl, 1e-5, 1e-5);
    attention_forward(c->out, c->lse, c->q, c->kc, c->vc, &c->s, c->d0, c->nd, c->i0, c->ni); // restore lse

    float *dq = falloc(nq), *dk = falloc(nc), *dv = falloc(nc);
    attention_backward(dq, dk, dv, c->G, c->q, c->kc, c->vc, c->out, c->lse, &c->s, c->d0, c->nd, c->i0, c->ni);
    snprintf(what, sizeof what, "%s: dq", name);
    fd_check(what, at_loss, c, c->q, nq, dq);
    snprintf(what, sizeof what, "%s: dkc", name);
    fd_check(what, at_loss, c, c->kc, nc, dk);
    snprintf(what, sizeof what, "%s: dvc", name);
    fd_check(what, at_loss, c, c->vc, nc, dv);

    attention_forward(c->out, c->lse, c->q, c->kc, c->vc, &c->s, c->d0, c->nd, c->i0, c->ni);
    float *pq = frandom(nq, 3), *pk = frandom(nc, 3), *pv = frandom(nc, 3);
    float *aq = fcopy(pq, nq), *ak = fcopy(pk, nc), *av = fcopy(pv, nc);
    attention_backward(aq, ak, av, c->G, c->q, c->kc, c->vc, c->out, c->lse, &c->s, c->d0, c->nd, c->i0, c->ni);
    snprintf(what, sizeof what, "%s: dq +=", name);
    check_accum(what, aq, pq, dq, nq);
    snprintf(what, sizeof what, "%s: dkc +=", name);
    check_accum(what, ak, pk, dk, nc);
    snprintf(what, sizeof what, "%s: dvc +=", name);
    check_accum(what, av, pv, dv, nc);

    free(ro), free(rl), free(rof), free(rlf), free(dq), free(dk), free(dv), free(pq), free(pk), free(pv), free(aq),
        free(ak), free(av);
}

static void test_attention_quietstar(void **state) {
    (void)state;
    const int R = 2, T = 5, D = 3, nh = 4, nkv = 2, hd = 8;
    static const int mask[10] = {1, 1, 1, 1, 1, /* row 1: right padding */ 1, 1, 1, 0, 0};
    static const int ranges[][4] = {
        {0, 3, 0, 5}, // everything
        {1, 2, 2, 3}, // passes 1..2, positions 2..4
        {0, 1, 0, 5}, // pass 0 only
        {2, 1, 4, 1}, // one query slot per row
    };
    for (size_t k = 0; k < sizeof ranges / sizeof *ranges; k++)
        for (int m = 0; m < 2; m++) {
            at_ctx c;
            at_init(&c, R, T, D, nh, nkv, hd, m ? mask : NULL, ranges[k][0], ranges[k][1], ranges[k][2],
                    ranges[k][3], 700 + 10 * k + m);
            char name[96];
            snprintf(name, sizeof name, "attn d0=%d nd=%d i0=%d ni=%d mask=%s", ranges[k][0], ranges[k][1],
                     ranges[k][2], ranges[k][3], m ? "pad" : "NULL");
            attention_case(name, &c);
            at_free(&c);
        }
}

// Mistral sliding window (W = 3 < T): prefix and own-thought keys whose
// position id (i + pass) is W or more behind the query's are hidden, on both
// the transposed-prefix and the key-by-key paths; W = 1 hides all but the key
// at the query's own position id.
static void test_attention_window(void **state) {
    (void)state;
    const int R = 2, T = 7, D = 4, nh = 4, nkv = 2, hd = 8;
    static const int mask[14] = {1, 1, 1, 1, 1, 1, 1, /* row 1: right padding */ 1, 1, 1, 1, 1, 0, 0};
    static const int ranges[][4] = {{0, 4, 0, 7}, {1, 3, 2, 5}, {0, 1, 0, 7}, {3, 1, 6, 1}};
    static const int windows[] = {3, 1, 2};
    for (size_t k = 0; k < sizeof ranges / sizeof *ranges; k++)
        for (int w = 0; w < 3; w++) {
            at_ctx c;
            at_init(&c, R, T, D, nh, nkv, hd, w == 0 ? mask : NULL, ranges[k][0], ranges[k][1], ranges[k][2],
                    ranges[k][3], 900 + 10 * k + w);
            c.s.window = windows[w];
            char name[96];
            snprintf(name, sizeof name, "attn window %d d0=%d nd=%d i0=%d ni=%d", windows[w], ranges[k][0],
                     ranges[k][1], ranges[k][2], ranges[k][3]);
            attention_case(name, &c);
            at_free(&c);
        }
}

// Head sizes with their own compiled own-thought-key loops (64, 128) and one
// without (16), on the GEMM path and key by key.
static void test_attention_head_sizes(void **state) {
    (void)state;
    static const int hds[] = {16, 64, 128};
    static const int mask[4] = {1, 1, 1, 0};
    for (size_t k = 0; k < sizeof hds / sizeof *hds; k++)
        for (int small = 0; small < 2; small++) {
            at_ctx c;
            at_init(&c, 1, 4, 3, 2, 1, hds[k], mask, small ? 2 : 0, small ? 1 : 3, small ? 2 : 0, small ? 1 : 4,
                    1200 + 10 * (int)k + small);
            char name[96];
            snprintf(name, sizeof name, "attn hd=%d %s", hds[k], small ? "one query" : "all queries");
            attention_case(name, &c);
            at_free(&c);
        }
}

// Long rows: the backward's GEMM path takes 64 positions at a time, so 133
// positions make three blocks (the last one short), with right padding, a
// window reaching across blocks, and a query range not starting at 0.
static void test_attention_long(void **state) {
    (void)state;
    enum { T = 133 };
    const int R = 1, D = 2, nh = 2, nkv = 1, hd = 8;
    static int mask[T];
    for (int j = 0; j < T; j++) mask[j] = j < 120; // the last 13 positions padded
    static const int ranges[][4] = {{0, 2, 0, T}, {1, 1, 3, T - 3}};
    for (size_t k = 0; k < sizeof ranges / sizeof *ranges; k++)
        for (int w = 0; w < 2; w++) {
            at_ctx c;
            at_init(&c, R, T, D, nh, nkv, hd, w ? NULL : mask, ranges[k][0], ranges[k][1], ranges[k][2], ranges[k][3],
                    1100 + 10 * k + w);
            c.s.window = w ? 50 : 0;
            char name[96];
            snprintf(name, sizeof name, "attn long T=%d d0=%d nd=%d i0=%d window %d", T, ranges[k][0], ranges[k][1],
                     ranges[k][2], c.s.window);
            attention_case(name, &c);
            at_free(&c);
        }
}

// Dense double backward of the reference above for the whole range (d0 = 0, nd = D,
// i0 = 0, ni = T), with p = softmax and Dq = G . out:
//   dv += p G;  ds = p (G . v - Dq) / sqrt(hd);  dq += ds k;  dk += ds q.
static void ref_attention_backward(double *dq, double *dk, double *dv, const float *q, const float *kc,
                                   const float *vc, const float *G, const double *out, const double *lse,
                                   const attn_shape *s, int D) {
    const int R = s->R, T = s->T, nh = s->nh, nkv = s->nkv, hd = s->hd, kvw = nkv * hd;
    for (int d = 0; d < D; d++)
        for (int r = 0; r < R; r++)
            for (int i = 0; i < T; i++)
                for (int h = 0; h < nh; h++) {
                    const size_t qt = (((size_t)d * R + r) * T + i) * nh + h;
                    if (lse[qt] == -INFINITY) continue;
                    const float *qv = q + qt * hd, *gv = G + qt * hd;
                    double Dq = 0;
                    for (int k = 0; k < hd; k++) Dq += (double)gv[k] * out[qt * hd + k];
                    for (int e = 0; e < D; e++)
                        for (int j = 0; j < T; j++) {
                            if (!ref_visible(s, r, d, i, e, j)) continue;
                            const size_t kt = (((size_t)e * R + r) * T + j) * kvw + (size_t)(h * nkv / nh) * hd;
                            double sc = 0, gd = 0;
                            for (int k = 0; k < hd; k++) sc += (double)qv[k] * kc[kt + k], gd += (double)gv[k] * vc[kt + k];
                            const double p = exp(sc / sqrt((double)hd) - lse[qt]);
                            const double ds = p * (gd - Dq) / sqrt((double)hd);
                            for (int k = 0; k < hd; k++) {
                                dv[kt + k] += p * gv[k];
                                dq[qt * hd + k] += ds * kc[kt + k];
                                dk[kt + k] += ds * qv[k];
                            }
                        }
                }
}

// Rows long and deep enough that the backward takes its queries in chunks of one pass
// (64 positions x 4 heads x 133 keys exceed its budget of scores) and, at head size
// 64, gathers the own-thought keys of 21 positions at a time (the last block short);
// against the dense double reference (finite differences would take too long here).
static void test_attention_chunks(void **state) {
    (void)state;
    enum { T = 133, D = 6 };
    static int mask[T];
    for (int j = 0; j < T; j++) mask[j] = j < 125;
    static const int hds[] = {8, 64};
    for (int k = 0; k < 2; k++)
        for (int w = 0; w < 2; w++) {
            at_ctx c;
            at_init(&c, 1, T, D, 4, 1, hds[k], w ? NULL : mask, 0, D, 0, T, 1300 + 10 * k + w);
            c.s.window = w ? 40 : 0;
            const size_t nq = at_nq(&c), nl = at_nl(&c), nc = at_nc(&c);
            double *ro = dalloc(nq), *rl = dalloc(nl), *rq = dalloc(nq), *rk = dalloc(nc), *rv = dalloc(nc);
            ref_attention(ro, rl, c.q, c.kc, c.vc, &c.s, D, 0, D, 0, T);
            attention_forward(c.out, c.lse, c.q, c.kc, c.vc, &c.s, 0, D, 0, T);
            float *rof = to_float(ro, nq), *dq = falloc(nq), *dk = falloc(nc), *dv = falloc(nc);
            char what[96];
            snprintf(what, sizeof what, "attn chunks hd=%d window %d: out", hds[k], c.s.window);
            check_close(what, c.out, rof, nq, 1e-5, 1e-4);
            attention_backward(dq, dk, dv, c.G, c.q, c.kc, c.vc, c.out, c.lse, &c.s, 0, D, 0, T);
            ref_attention_backward(rq, rk, rv, c.q, c.kc, c.vc, c.G, ro, rl, &c.s, D);
            float *fq = to_float(rq, nq), *fk = to_float(rk, nc), *fv = to_float(rv, nc);
            snprintf(what, sizeof what, "attn chunks hd=%d window %d: dq", hds[k], c.s.window);
            check_close(what, dq, fq, nq, 1e-4, 1e-3);
            snprintf(what, sizeof what, "attn chunks hd=%d window %d: dkc", hds[k], c.s.window);
            check_close(what, dk, fk, nc, 1e-4, 1e-3);
            snprintf(what, sizeof what, "attn chunks hd=%d window %d: dvc", hds[k], c.s.window);
            check_close(what, dv, fv, nc, 1e-4, 1e-3);
            free(ro), free(rl), free(rq), free(rk), free(rv), free(rof), free(dq), free(dk), free(dv), free(fq),
                free(fk), free(fv);
            at_free(&c);
        }
}

// Left padding: the pass-0 query at a masked-out first position sees no key
// (out = 0, lse = -inf, no gradient), but its thought passes still see
// themselves.
static void test_attention_empty_query(void **state) {
    (void)state;
    static const int mask[10] = {0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
    at_ctx c;
    at_init(&c, 2, 5, 3, 4, 2, 8, mask, 0, 3, 0, 5, 800);
    attention_case("attn left padding", &c);
    // pass 0, row 0, positions 0 and 1: exactly zero output
    const size_t w = (size_t)c.s.nh * c.s.hd;
    for (size_t k = 0; k < 2 * w; k++) assert_true(c.out[k] == 0.0f);
    for (int h = 0; h < 2 * c.s.nh; h++) assert_true(c.lse[h] == -INFINITY);
    // pass 1, row 0, position 0: sees only its own pass-1 key => out = v(1,0,0)
    const size_t qt = ((size_t)1 * c.s.R + 0) * c.ni + 0;
    for (int h = 0; h < c.s.nh; h++) {
        const float *v = c.vc + (((size_t)1 * c.s.R + 0) * c.s.T + 0) * c.s.nkv * c.s.hd + (size_t)(h / 2) * c.s.hd;
        tu_assert_close("attn thought-only query", c.out + (qt * c.s.nh + h) * c.s.hd, v, c.s.hd, 1e-6, 1e-6);
    }
    at_free(&c);
}

// With D = 1 the op is plain causal attention. The reference here is the
// textbook one over [R,T] tensors; its gradient is taken by finite
// differences in double, independently of the op.
typedef struct {
    int R, T, nh, nkv, hd;
    const float *G;
    double *q, *k, *v, *out;
} causal_ctx;

static double causal_forward(causal_ctx *c) {
    const int nh = c->nh, nkv = c->nkv, hd = c->hd, T = c->T;
    double L = 0, *sc = dalloc((size_t)T);
    for (int r = 0; r < c->R; r++)
        for (int i = 0; i < T; i++)
            for (int h = 0; h < nh; h++) {
                const int g = h / (nh / nkv);
                const double *qv = c->q + (((size_t)r * T + i) * nh + h) * hd;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j <= i; j++) {
                    const double *kv = c->k + (((size_t)r * T + j) * nkv + g) * hd;
                    double s = 0;
                    for (int k = 0; k < hd; k++) s += qv[k] * kv[k];
                    sc[j] = s / sqrt((double)hd);
                    mx = fmax(mx, sc[j]);
                }
                for (int j = 0; j <= i; j++) sum += exp(sc[j] - mx);
                double *o = c->out + (((size_t)r * T + i) * nh + h) * hd;
                for (int k = 0; k < hd; k++) o[k] = 0;
                for (int j = 0; j <= i; j++) {
                    const double *vv = c->v + (((size_t)r * T + j) * nkv + g) * hd;
                    for (int k = 0; k < hd; k++) o[k] += exp(sc[j] - mx) / sum * vv[k];
                }
                for (int k = 0; k < hd; k++) L += o[k] * c->G[(((size_t)r * T + i) * nh + h) * hd + k];
            }
    free(sc);
    return L;
}

static float *causal_grad(causal_ctx *c, double *x, size_t n) {
    float *g = falloc(n);
    const double h = 1e-6;
    for (size_t i = 0; i < n; i++) {
        const double save = x[i];
        x[i] = save + h;
        double lp = causal_forward(c);
        x[i] = save - h;
        double lm = causal_forward(c);
        x[i] = save;
        g[i] = (float)((lp - lm) / (2 * h));
    }
    return g;
}

static void test_attention_causal_d1(void **state) {
    (void)state;
    static const int heads[][2] = {{4, 2}, {4, 1}, {2, 2}};
    for (size_t hi = 0; hi < sizeof heads / sizeof *heads; hi++) {
        const int R = 2, T = 6, nh = heads[hi][0], nkv = heads[hi][1], hd = 8;
        at_ctx a;
        at_init(&a, R, T, 1, nh, nkv, hd, NULL, 0, 1, 0, T, 900 + hi);
        const size_t nq = at_nq(&a), nc = at_nc(&a);
        double *q = dalloc(nq), *k = dalloc(nc), *v = dalloc(nc), *o = dalloc(nq);
        for (size_t i = 0; i < nq; i++) q[i] = a.q[i];
        for (size_t i = 0; i < nc; i++) k[i] = a.kc[i], v[i] = a.vc[i];
        causal_ctx c = {R, T, nh, nkv, hd, a.G, q, k, v, o};
        causal_forward(&c);
        float *of = to_float(o, nq);
        attention_forward(a.out, a.lse, a.q, a.kc, a.vc, &a.s, 0, 1, 0, T);
        check_close("attn D=1 vs causal: out", a.out, of, nq, 1e-5, 1e-4);

        float *dq = falloc(nq), *dk = falloc(nc), *dv = falloc(nc);
        attention_backward(dq, dk, dv, a.G, a.q, a.kc, a.vc, a.out, a.lse, &a.s, 0, 1, 0, T);
        float *gq = causal_grad(&c, q, nq), *gk = causal_grad(&c, k, nc), *gv = causal_grad(&c, v, nc);
        check_close("attn D=1 vs causal: dq", dq, gq, nq, 2e-5, 1e-4);
        check_close("attn D=1 vs causal: dk", dk, gk, nc, 2e-5, 1e-4);
        check_close("attn D=1 vs causal: dv", dv, gv, nc, 2e-5, 1e-4);
        free(q), free(k), free(v), free(o), free(of), free(dq), free(dk), free(dv), free(gq), free(gk), free(gv);
        at_free(&a);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_swiglu),
        cmocka_unit_test(test_embedding),
        cmocka_unit_test(test_crossentropy),
        cmocka_unit_test(test_attention_quietstar),
        cmocka_unit_test(test_attention_window),
        cmocka_unit_test(test_attention_empty_query),
        cmocka_unit_test(test_attention_long),
        cmocka_unit_test(test_attention_chunks),
        cmocka_unit_test(test_attention_head_sizes),
        cmocka_unit_test(test_attention_causal_d1),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

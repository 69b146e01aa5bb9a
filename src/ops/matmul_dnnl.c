// matmul_dnnl.c: qs_sgemm / qs_gemm_bf16 on oneDNN matmul primitives.
// A primitive is created once per (dtype, transposes, M, N, K, lda, ldb, ldc,
// alpha, beta, threads) and kept in a small hash map: creating one costs JIT
// code generation, executing it only the product. The map is guarded by a
// mutex; primitives are immutable once created and every call uses its own
// thread's stream and scratchpad, so GEMMs may run from several threads.
// When the map is full (many shapes: e.g. one forward per example length)
// the entries no call is using are dropped and the map fills again.
#ifdef QS_HAVE_DNNL
#include "ops/matmul_dnnl.h"
#include "core/qs.h"

#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int32_t bf16, ta, tb, nthr;
    int64_t M, N, K, lda, ldb, ldc;
    uint32_t alpha, beta; // bit patterns
    int32_t packed;       // B in the blocked layout of packed weights (below), ldb unused
} pkey;

typedef struct {
    pkey key;
    dnnl_primitive_t prim;
    dnnl_memory_desc_t src, wei, dst, pad;
    size_t pad_bytes;
    int users; // calls running it (under g_mu)
} pentry;

#define CACHE_SLOTS 1024 // open addressing, power of two, > CACHE_MAX
#define CACHE_MAX QS_DNNL_CACHE_MAX

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static dnnl_engine_t g_engine;
static pentry *g_slot[CACHE_SLOTS];
static size_t g_count, g_created;
static _Thread_local dnnl_stream_t tl_stream;
static _Thread_local void *tl_pad;
static _Thread_local size_t tl_pad_cap;

static uint64_t key_hash(const pkey *k) {
    const unsigned char *p = (const unsigned char *)k;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < sizeof *k; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

// Memory descriptors and primitive for key k (the caller holds g_mu); wmd: the
// weights' blocked layout when k->packed.
static int entry_create(const pkey *k, const dnnl_memory_desc_t *wmd, pentry *e) {
    const dnnl_data_type_t dt = k->bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_dims_t sd = {k->M, k->K}, ss = {k->ta ? 1 : k->lda, k->ta ? k->lda : 1};
    dnnl_dims_t wd = {k->K, k->N}, wstr = {k->tb ? 1 : k->ldb, k->tb ? k->ldb : 1};
    dnnl_dims_t dd = {k->M, k->N}, ds = {k->ldc, 1};
    if (dnnl_memory_desc_init_by_strides(&e->src, 2, sd, dt, ss) != dnnl_success ||
        (k->packed ? (e->wei = *wmd, dnnl_success) : dnnl_memory_desc_init_by_strides(&e->wei, 2, wd, dt, wstr)) !=
            dnnl_success ||
        dnnl_memory_desc_init_by_strides(&e->dst, 2, dd, dnnl_f32, ds) != dnnl_success)
        return -1;
    dnnl_matmul_desc_t md;
    if (dnnl_matmul_desc_init(&md, &e->src, &e->wei, NULL, &e->dst) != dnnl_success) return -1;
    dnnl_primitive_attr_t attr;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success) return -1;
    int ok = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) == dnnl_success &&
             dnnl_primitive_attr_set_fpmath_mode(attr, dnnl_fpmath_mode_strict) == dnnl_success;
    float alpha, beta;
    memcpy(&alpha, &k->alpha, sizeof alpha);
    memcpy(&beta, &k->beta, sizeof beta);
    if (ok && alpha != 1.0f) ok = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &alpha) == dnnl_success;
    if (ok && beta != 0.0f) { // C = alpha * A@B + beta * C: the sum post-op
        dnnl_post_ops_t po;
        ok = dnnl_post_ops_create(&po) == dnnl_success;
        if (ok) {
            ok = dnnl_post_ops_append_sum(po, beta) == dnnl_success &&
                 dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success;
            dnnl_post_ops_destroy(po);
        }
    }
    dnnl_primitive_desc_t pd = NULL;
    if (ok) ok = dnnl_primitive_desc_create(&pd, &md, attr, g_engine, NULL) == dnnl_success;
    dnnl_primitive_attr_destroy(attr);
    if (!ok) return -1;
    const char *impl = "";
    if (k->packed && (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success ||
                      !strncmp(impl, "ref", 3))) { // packed weights only where they run at full speed
        dnnl_primitive_desc_destroy(pd);
        return -1;
    }
    const dnnl_memory_desc_t *pad = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (pad) e->pad = *pad;
    e->pad_bytes = pad ? dnnl_memory_desc_get_size(pad) : 0;
    ok = dnnl_primitive_create(&e->prim, pd) == dnnl_success;
    dnnl_primitive_desc_destroy(pd);
    if (!ok) return -1;
    e->key = *k;
    g_created++;
    return 0;
}

static int entry_run(const pentry *e, const void *A, const void *B, float *C) {
    if (!tl_stream && dnnl_stream_create(&tl_stream, g_engine, dnnl_stream_default_flags) != dnnl_success) {
        tl_stream = NULL;
        return -1;
    }
    if (e->pad_bytes > tl_pad_cap) {
        free(tl_pad);
        tl_pad = malloc(e->pad_bytes);
        tl_pad_cap = tl_pad ? e->pad_bytes : 0;
        if (!tl_pad) return -1;
    }
    dnnl_memory_t mem[4] = {NULL, NULL, NULL, NULL};
    const int n = e->pad_bytes ? 4 : 3;
    int ok = dnnl_memory_create(&mem[0], &e->src, g_engine, (void *)A) == dnnl_success &&
             dnnl_memory_create(&mem[1], &e->wei, g_engine, (void *)B) == dnnl_success &&
             dnnl_memory_create(&mem[2], &e->dst, g_engine, C) == dnnl_success &&
             (n == 3 || dnnl_memory_create(&mem[3], &e->pad, g_engine, tl_pad) == dnnl_success);
    if (ok) {
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, mem[0]}, {DNNL_ARG_WEIGHTS, mem[1]}, {DNNL_ARG_DST, mem[2]},
                                   {DNNL_ARG_SCRATCHPAD, mem[3]}};
        ok = dnnl_primitive_execute(e->prim, tl_stream, n, args) == dnnl_success &&
             dnnl_stream_wait(tl_stream) == dnnl_success;
    }
    for (int i = 0; i < 4; i++)
        if (mem[i]) dnnl_memory_destroy(mem[i]);
    return ok ? 0 : -1;
}

static size_t slot_of(const pkey *k) {
    size_t i = (size_t)key_hash(k) & (CACHE_SLOTS - 1);
    while (g_slot[i] && memcmp(&g_slot[i]->key, k, sizeof *k)) i = (i + 1) & (CACHE_SLOTS - 1);
    return i;
}

// Drops the entries no call is running and re-inserts the others (g_mu held).
static void flush_unused(void) {
    pentry *keep[CACHE_SLOTS];
    size_t n = 0;
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        pentry *e = g_slot[i];
        g_slot[i] = NULL;
        if (!e) continue;
        if (e->users > 0) {
            keep[n++] = e;
        } else {
            dnnl_primitive_destroy(e->prim);
            free(e);
        }
    }
    for (size_t j = 0; j < n; j++) g_slot[slot_of(&keep[j]->key)] = keep[j];
    g_count = n;
}

// The cached entry for k (created on a miss), marked in use; NULL when it
// cannot be made.
static pentry *acquire_locked(const pkey *k, const dnnl_memory_desc_t *wmd);

static pentry *acquire(const pkey *k) {
    pthread_mutex_lock(&g_mu);
    pentry *found = acquire_locked(k, NULL);
    pthread_mutex_unlock(&g_mu);
    return found;
}

// acquire with g_mu held
static pentry *acquire_locked(const pkey *k, const dnnl_memory_desc_t *wmd) {
    pentry *found = NULL;
    if (!g_engine && dnnl_engine_create(&g_engine, dnnl_cpu, 0) != dnnl_success) g_engine = NULL;
    if (g_engine) {
        size_t i = slot_of(k);
        if (!g_slot[i] && g_count >= CACHE_MAX) {
            flush_unused();
            i = slot_of(k);
        }
        if (g_slot[i]) {
            found = g_slot[i];
        } else if (g_count < CACHE_MAX) {
            pentry *e = calloc(1, sizeof *e);
            if (e && entry_create(k, wmd, e) == 0) {
                g_slot[i] = e;
                g_count++;
                found = e;
            } else {
                free(e);
            }
        }
        if (found) found->users++;
    }
    return found;
}

static void release(pentry *e) {
    pthread_mutex_lock(&g_mu);
    e->users--;
    pthread_mutex_unlock(&g_mu);
}

int qs_dnnl_gemm(int bf16, int transA, int transB, int M, int N, int K, float alpha, const void *A, int lda,
                 const void *B, int ldb, float beta, float *C, int ldc) {
    pkey k;
    memset(&k, 0, sizeof k); // padding bytes take part in the hash
    k.bf16 = bf16 != 0, k.ta = transA != 0, k.tb = transB != 0;
    k.nthr = omp_in_parallel() ? 1 : omp_get_max_threads();
    k.M = M, k.N = N, k.K = K, k.lda = lda, k.ldb = ldb, k.ldc = ldc;
    k.alpha = bits(alpha), k.beta = bits(beta);
    pentry *e = acquire(&k);
    if (!e) return -1;
    int r = entry_run(e, A, B, C);
    release(e);
    return r;
}

// ---- weights packed into oneDNN's blocked layout -----------------------------
// With a plain weight matrix, every product first copies it into the layout its
// kernel reads (per call, from memory when the weights are not in cache: the
// think passes' products of 128 rows ran 12-25% slower than with packed weights).
// A bf16 weight W [N, K] of the model's bf16 copy is packed once per generation of
// that copy and read packed by every X W^T after that.
typedef struct {
    const void *B; // the plain matrix [N, K], leading dimension ldb
    int64_t N, K, ldb;
    uint64_t gen;  // the generation of the bf16 copy it was packed from
    dnnl_memory_desc_t md;
    void *data;    // NULL: cannot be packed (plain products)
    size_t bytes;
} wpack;

#define PACK_SLOTS 4096 // open addressing, power of two
#define PACK_MAX (PACK_SLOTS / 2)
static wpack *g_pack[PACK_SLOTS];
static size_t g_npack, g_pack_bytes;

static size_t pack_slot(const void *B, int64_t N, int64_t K, int64_t ldb) {
    size_t i = (size_t)(((uintptr_t)B >> 4) * 0x9E3779B97F4A7C15ull >> 20) & (PACK_SLOTS - 1);
    while (g_pack[i] && (g_pack[i]->B != B || g_pack[i]->N != N || g_pack[i]->K != K || g_pack[i]->ldb != ldb))
        i = (i + 1) & (PACK_SLOTS - 1);
    return i;
}

// The blocked layout oneDNN's bf16 matmul prefers for weights [K, N] (the same for
// every M; asked with 128 rows), or -1.
static int packed_md(int64_t N, int64_t K, dnnl_memory_desc_t *md) {
    dnnl_memory_desc_t src, wei, dst;
    dnnl_dims_t sd = {128, K}, wd = {K, N}, dd = {128, N};
    if (dnnl_memory_desc_init_by_tag(&src, 2, sd, dnnl_bf16, dnnl_ab) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&wei, 2, wd, dnnl_bf16, dnnl_format_tag_any) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&dst, 2, dd, dnnl_f32, dnnl_ab) != dnnl_success)
        return -1;
    dnnl_matmul_desc_t mdesc;
    dnnl_primitive_desc_t pd;
    if (dnnl_matmul_desc_init(&mdesc, &src, &wei, NULL, &dst) != dnnl_success ||
        dnnl_primitive_desc_create(&pd, &mdesc, NULL, g_engine, NULL) != dnnl_success)
        return -1;
    *md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_primitive_desc_destroy(pd);
    return md->format_kind == dnnl_blocked ? 0 : -1;
}

// Packs w->B into w->data (allocated on the first call) with a reorder; -1 on failure.
static int pack_run(wpack *w) {
    dnnl_memory_desc_t plain;
    dnnl_dims_t wd = {w->K, w->N}, ws = {1, w->ldb};
    if (!w->data && (w->bytes = dnnl_memory_desc_get_size(&w->md)) > 0)
        w->data = aligned_alloc(64, (w->bytes + 63) / 64 * 64);
    if (!w->data) return -1;
    if (!tl_stream && dnnl_stream_create(&tl_stream, g_engine, dnnl_stream_default_flags) != dnnl_success) {
        tl_stream = NULL;
        return -1;
    }
    dnnl_memory_t from = NULL, to = NULL;
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t r = NULL;
    int ok = dnnl_memory_desc_init_by_strides(&plain, 2, wd, dnnl_bf16, ws) == dnnl_success &&
             dnnl_memory_create(&from, &plain, g_engine, (void *)w->B) == dnnl_success &&
             dnnl_memory_create(&to, &w->md, g_engine, w->data) == dnnl_success &&
             dnnl_reorder_primitive_desc_create(&rpd, &plain, g_engine, &w->md, g_engine, NULL) == dnnl_success &&
             dnnl_primitive_create(&r, rpd) == dnnl_success;
    if (ok) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
        ok = dnnl_primitive_execute(r, tl_stream, 2, args) == dnnl_success && dnnl_stream_wait(tl_stream) == dnnl_success;
    }
    if (r) dnnl_primitive_destroy(r);
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    if (from) dnnl_memory_destroy(from);
    if (to) dnnl_memory_destroy(to);
    return ok ? 0 : -1;
}

// The packed copy of B at generation gen (packed or refreshed now), or NULL (g_mu held).
static wpack *pack_get(const void *B, int64_t N, int64_t K, int64_t ldb, uint64_t gen) {
    if (!g_engine && dnnl_engine_create(&g_engine, dnnl_cpu, 0) != dnnl_success) g_engine = NULL;
    if (!g_engine) return NULL;
    size_t i = pack_slot(B, N, K, ldb);
    wpack *w = g_pack[i];
    if (!w) {
        if (g_npack >= PACK_MAX || !(w = calloc(1, sizeof *w))) return NULL;
        w->B = B, w->N = N, w->K = K, w->ldb = ldb;
        if (packed_md(N, K, &w->md) != 0) w->gen = UINT64_MAX; // never packed: plain products
        g_pack[i] = w;
        g_npack++;
    }
    if (w->gen == UINT64_MAX) return NULL;
    if (w->gen != gen) {
        const size_t had = w->data ? w->bytes : 0;
        if (pack_run(w) != 0) {
            free(w->data);
            w->data = NULL, w->gen = UINT64_MAX;
            g_pack_bytes -= had;
            return NULL;
        }
        g_pack_bytes += w->bytes - had;
        w->gen = gen;
    }
    return w;
}

int qs_dnnl_gemm_packed(int M, int N, int K, float alpha, const void *A, int lda, const void *B, int ldb,
                        uint64_t gen, float beta, float *C, int ldc) {
    if (gen == 0 || gen == UINT64_MAX) return -1;
    pkey k;
    memset(&k, 0, sizeof k);
    k.bf16 = 1, k.tb = 1, k.packed = 1;
    k.nthr = omp_in_parallel() ? 1 : omp_get_max_threads();
    k.M = M, k.N = N, k.K = K, k.lda = lda, k.ldc = ldc;
    k.alpha = bits(alpha), k.beta = bits(beta);
    pthread_mutex_lock(&g_mu);
    wpack *w = pack_get(B, N, K, ldb, gen);
    pentry *e = w ? acquire_locked(&k, &w->md) : NULL;
    if (w && !e) { // no fast primitive for this layout: plain products from now on
        g_pack_bytes -= w->data ? w->bytes : 0;
        free(w->data);
        w->data = NULL, w->gen = UINT64_MAX;
    }
    const void *data = e ? w->data : NULL;
    pthread_mutex_unlock(&g_mu);
    if (!e) return -1;
    int r = entry_run(e, A, data, C);
    release(e);
    return r;
}

// Drops every packed copy (g_mu held).
static void packs_clear(void) {
    for (size_t i = 0; i < PACK_SLOTS; i++) {
        if (!g_pack[i]) continue;
        free(g_pack[i]->data);
        free(g_pack[i]);
        g_pack[i] = NULL;
    }
    g_npack = g_pack_bytes = 0;
}

void qs_dnnl_forget(const void *p, size_t bytes) {
    const uintptr_t lo = (uintptr_t)p, hi = lo + bytes;
    pthread_mutex_lock(&g_mu);
    wpack *keep[PACK_SLOTS];
    size_t n = 0;
    for (size_t i = 0; i < PACK_SLOTS; i++) {
        wpack *w = g_pack[i];
        g_pack[i] = NULL;
        if (!w) continue;
        if ((uintptr_t)w->B >= lo && (uintptr_t)w->B < hi) {
            g_pack_bytes -= w->data ? w->bytes : 0;
            free(w->data);
            free(w);
        } else {
            keep[n++] = w;
        }
    }
    for (size_t j = 0; j < n; j++) g_pack[pack_slot(keep[j]->B, keep[j]->N, keep[j]->K, keep[j]->ldb)] = keep[j];
    g_npack = n;
    pthread_mutex_unlock(&g_mu);
}

size_t qs_dnnl_packed_bytes(void) {
    pthread_mutex_lock(&g_mu);
    size_t n = g_pack_bytes;
    pthread_mutex_unlock(&g_mu);
    return n;
}

size_t qs_dnnl_primitives(void) {
    pthread_mutex_lock(&g_mu);
    size_t n = g_created;
    pthread_mutex_unlock(&g_mu);
    return n;
}

void qs_dnnl_release(void) {
    pthread_mutex_lock(&g_mu);
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        if (!g_slot[i]) continue;
        dnnl_primitive_destroy(g_slot[i]->prim);
        free(g_slot[i]);
        g_slot[i] = NULL;
    }
    g_count = 0;
    packs_clear();
    pthread_mutex_unlock(&g_mu);
    // the engine stays (other threads' streams refer to it); this thread's
    // stream and scratchpad go
    if (tl_stream) dnnl_stream_destroy(tl_stream);
    tl_stream = NULL;
    free(tl_pad);
    tl_pad = NULL;
    tl_pad_cap = 0;
}
#else
typedef int qs_matmul_dnnl_unused; // oneDNN not available at build time
#endif

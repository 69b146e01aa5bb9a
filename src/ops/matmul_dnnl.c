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

// Memory descriptors and primitive for key k (the caller holds g_mu).
static int entry_create(const pkey *k, pentry *e) {
    const dnnl_data_type_t dt = k->bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_dims_t sd = {k->M, k->K}, ss = {k->ta ? 1 : k->lda, k->ta ? k->lda : 1};
    dnnl_dims_t wd = {k->K, k->N}, wstr = {k->tb ? 1 : k->ldb, k->tb ? k->ldb : 1};
    dnnl_dims_t dd = {k->M, k->N}, ds = {k->ldc, 1};
    if (dnnl_memory_desc_init_by_strides(&e->src, 2, sd, dt, ss) != dnnl_success ||
        dnnl_memory_desc_init_by_strides(&e->wei, 2, wd, dt, wstr) != dnnl_success ||
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
static pentry *acquire(const pkey *k) {
    pthread_mutex_lock(&g_mu);
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
            if (e && entry_create(k, e) == 0) {
                g_slot[i] = e;
                g_count++;
                found = e;
            } else {
                free(e);
            }
        }
        if (found) found->users++;
    }
    pthread_mutex_unlock(&g_mu);
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

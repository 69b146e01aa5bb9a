// dist.c: the MPI layer of data-parallel training (see dist.h). Built with
// -DQS_HAVE_MPI when pkg-config finds ompi-c; otherwise single-process stubs.
#include "train/dist.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#ifdef QS_HAVE_MPI
#include <mpi.h>
#endif

#define QS_DIST_NOMPI_MSG \
    "built without MPI: install openmpi-bin libopenmpi-dev and rebuild (make) to run under mpirun"

int qs_dist_launched(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK") || getenv("PMI_SIZE");
}

void qs_dist_block(const qs_dist *d, int K, int *lo, int *hi) {
    const int N = qs_dist_size(d), b = N - 1 - qs_dist_rank(d); // rank 0 holds the last block
    if ((N & (N - 1)) == 0 && N <= K) { // a subtree log2(N) levels down the step's midpoint tree
        int a = 0, z = K;
        for (int bit = N >> 1; bit; bit >>= 1) {
            const int mid = a + (z - a) / 2;
            if (b & bit) a = mid;
            else z = mid;
        }
        *lo = a, *hi = z;
    } else { // any other N: equal contiguous blocks (some empty when N > K)
        *lo = (int)((long)K * b / N), *hi = (int)((long)K * (b + 1) / N);
    }
}

void qs_dist_chunk(const qs_dist *d, size_t n, int r, size_t *lo, size_t *hi) {
    const size_t N = (size_t)qs_dist_size(d);
    // boundaries on multiples of 16 floats (64 bytes), the last chunk takes the rest
    size_t a = (size_t)r * (n / N), b = (size_t)(r + 1) * (n / N);
    a = r == 0 ? 0 : a & ~(size_t)15;
    b = (size_t)r + 1 == N ? n : b & ~(size_t)15;
    if (a > n) a = n;
    if (b < a) b = a;
    *lo = a, *hi = b;
}

double qs_dist_step_bytes(size_t n, int N) {
    if (N <= 1) return 0;
    return 2.0 * 4.0 * (double)n * (double)(N - 1) / (double)N;
}

#ifdef QS_HAVE_MPI

struct qs_dist {
    int rank, size, zero;
    float *rbuf;   // reduce-scatter receive buffer: N pieces of this rank's chunk
    size_t rcap;
    int *cnt, *dsp, *rcnt, *rdsp; // per-rank counts / displacements
};

int qs_dist_built_with_mpi(void) { return 1; }

qs_status qs_dist_init(qs_dist **out, int zero) {
    *out = NULL;
    if (!qs_dist_launched()) return QS_OK;
    int inited = 0, provided = 0;
    MPI_Initialized(&inited);
    if (!inited && MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return qs_error(QS_ERR_IO, "MPI_Init failed (started by mpirun?)");
    qs_dist *d = calloc(1, sizeof *d);
    if (!d) return qs_error(QS_ERR_NOMEM, "out of memory (MPI context)");
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    d->zero = zero;
    const size_t N = (size_t)d->size;
    d->cnt = calloc(4 * N, sizeof(int));
    if (!d->cnt) {
        free(d);
        return qs_error(QS_ERR_NOMEM, "out of memory (MPI context)");
    }
    d->dsp = d->cnt + N, d->rcnt = d->cnt + 2 * N, d->rdsp = d->cnt + 3 * N;
    *out = d;
    return QS_OK;
}

void qs_dist_free(qs_dist *d) {
    if (!d) return;
    free(d->rbuf);
    free(d->cnt);
    free(d);
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin) MPI_Finalize();
}

void qs_dist_abort(qs_dist *d, int code) {
    if (d && d->size > 1) MPI_Abort(MPI_COMM_WORLD, code);
}

int qs_dist_rank(const qs_dist *d) { return d ? d->rank : 0; }
int qs_dist_size(const qs_dist *d) { return d ? d->size : 1; }
int qs_dist_zero(const qs_dist *d) { return d ? d->zero : 0; }

qs_status qs_dist_sum_doubles(qs_dist *d, double *v, int n) {
    if (!d || d->size == 1) return QS_OK;
    if (n < 1 || n > 64) return qs_error(QS_ERR_ARG, "dist: %d scalars to sum (1..64)", n);
    double *all = malloc((size_t)d->size * (size_t)n * sizeof(double));
    if (!all) return qs_error(QS_ERR_NOMEM, "out of memory (MPI scalars)");
    if (MPI_Allgather(v, n, MPI_DOUBLE, all, n, MPI_DOUBLE, MPI_COMM_WORLD) != MPI_SUCCESS) {
        free(all);
        return qs_error(QS_ERR_IO, "MPI_Allgather of %d scalars failed", n);
    }
    for (int j = 0; j < n; j++) {
        double s = all[j];
        for (int r = 1; r < d->size; r++) s += all[(size_t)r * n + j];
        v[j] = s;
    }
    free(all);
    return QS_OK;
}

int qs_dist_any(qs_dist *d, int flag) {
    if (!d || d->size == 1) return flag;
    int in = flag ? 1 : 0, outv = 0;
    if (MPI_Allreduce(&in, &outv, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD) != MPI_SUCCESS) return 1;
    return outv;
}

// counts/displacements of every rank's chunk of n elements (checked to fit int)
static qs_status chunk_table(qs_dist *d, size_t n, int *cnt, int *dsp) {
    for (int r = 0; r < d->size; r++) {
        size_t lo, hi;
        qs_dist_chunk(d, n, r, &lo, &hi);
        if (hi - lo > (size_t)INT_MAX || lo > (size_t)INT_MAX)
            return qs_error(QS_ERR_ARG, "dist: %zu parameters are too many for one MPI message per rank "
                                        "(use more ranks)", n);
        cnt[r] = (int)(hi - lo), dsp[r] = (int)lo;
    }
    return QS_OK;
}

qs_status qs_dist_reduce_scatter(qs_dist *d, float *g, size_t n) {
    if (!d || d->size == 1) return QS_OK;
    const int N = d->size;
    QS_TRY(chunk_table(d, n, d->cnt, d->dsp));
    const size_t m = (size_t)d->cnt[d->rank], lo = (size_t)d->dsp[d->rank];
    if (d->rcap < m * (size_t)N) {
        free(d->rbuf);
        d->rcap = 0;
        d->rbuf = malloc((m > 0 ? m * (size_t)N : 1) * sizeof(float));
        if (!d->rbuf) return qs_error(QS_ERR_NOMEM, "out of memory (gradient reduction buffer)");
        d->rcap = m * (size_t)N;
    }
    for (int r = 0; r < N; r++) d->rcnt[r] = (int)m, d->rdsp[r] = (int)((size_t)r * m);
    if (MPI_Alltoallv(g, d->cnt, d->dsp, MPI_FLOAT, d->rbuf, d->rcnt, d->rdsp, MPI_FLOAT, MPI_COMM_WORLD) !=
        MPI_SUCCESS)
        return qs_error(QS_ERR_IO, "MPI_Alltoallv of the gradients failed");
    // the pieces summed as a balanced tree over the blocks (block b = rank N-1-b): level by
    // level, left += right, which for N a power of two is the top of the step's midpoint tree
    // (trainer.c), so the sum equals one process's; always the same float additions
    float *rb = d->rbuf;
    for (int s = 1; s < N; s <<= 1)
        for (int b = 0; b + s < N; b += 2 * s) {
            float *left = rb + (size_t)(N - 1 - b) * m;
            const float *right = rb + (size_t)(N - 1 - b - s) * m;
            for (size_t i = 0; i < m; i++) left[i] += right[i];
        }
    memcpy(g + lo, rb + (size_t)(N - 1) * m, m * sizeof(float));
    return QS_OK;
}

qs_status qs_dist_all_gather(qs_dist *d, float *x, size_t n) {
    if (!d || d->size == 1) return QS_OK;
    QS_TRY(chunk_table(d, n, d->cnt, d->dsp));
    if (MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, x, d->cnt, d->dsp, MPI_FLOAT, MPI_COMM_WORLD) !=
        MPI_SUCCESS)
        return qs_error(QS_ERR_IO, "MPI_Allgatherv failed");
    return QS_OK;
}

qs_status qs_dist_gather_moments(qs_dist *d, const qs_adamw *part, size_t n, qs_adamw *full) {
    memset(full, 0, sizeof *full);
    if (!d) return qs_error(QS_ERR_ARG, "dist: gathering moments without MPI");
    QS_TRY(chunk_table(d, n, d->cnt, d->dsp));
    if ((size_t)d->cnt[d->rank] != part->numel)
        return qs_error(QS_ERR_ARG, "dist: moment shard of %zu elements, expected %d", part->numel, d->cnt[d->rank]);
    if (d->rank == 0) {
        QS_TRY(qs_adamw_create(full, n));
        full->step = part->step;
    }
    int ok = MPI_Gatherv(part->m, (int)part->numel, MPI_FLOAT, full->m, d->cnt, d->dsp, MPI_FLOAT, 0,
                         MPI_COMM_WORLD) == MPI_SUCCESS;
    ok = ok && MPI_Gatherv(part->v, (int)part->numel, MPI_FLOAT, full->v, d->cnt, d->dsp, MPI_FLOAT, 0,
                           MPI_COMM_WORLD) == MPI_SUCCESS;
    if (!ok) {
        qs_adamw_free(full);
        return qs_error(QS_ERR_IO, "MPI_Gatherv of the AdamW moments failed");
    }
    return QS_OK;
}

#else // without MPI: one process

struct qs_dist {
    int unused;
};

int qs_dist_built_with_mpi(void) { return 0; }

qs_status qs_dist_init(qs_dist **out, int zero) {
    *out = NULL;
    if (qs_dist_launched()) return qs_error(QS_ERR_ARG, "%s", QS_DIST_NOMPI_MSG);
    if (zero) return qs_error(QS_ERR_ARG, "--zero needs MPI; %s", QS_DIST_NOMPI_MSG);
    return QS_OK;
}

void qs_dist_free(qs_dist *d) { (void)d; }
void qs_dist_abort(qs_dist *d, int code) { (void)d, (void)code; }
int qs_dist_rank(const qs_dist *d) { return (void)d, 0; }
int qs_dist_size(const qs_dist *d) { return (void)d, 1; }
int qs_dist_zero(const qs_dist *d) { return (void)d, 0; }
qs_status qs_dist_sum_doubles(qs_dist *d, double *v, int n) { return (void)d, (void)v, (void)n, QS_OK; }
int qs_dist_any(qs_dist *d, int flag) { return (void)d, flag; }
qs_status qs_dist_reduce_scatter(qs_dist *d, float *g, size_t n) { return (void)d, (void)g, (void)n, QS_OK; }
qs_status qs_dist_all_gather(qs_dist *d, float *x, size_t n) { return (void)d, (void)x, (void)n, QS_OK; }
qs_status qs_dist_gather_moments(qs_dist *d, const qs_adamw *part, size_t n, qs_adamw *full) {
    (void)d, (void)part, (void)n;
    memset(full, 0, sizeof *full);
    return qs_error(QS_ERR_ARG, "%s", QS_DIST_NOMPI_MSG);
}

#endif

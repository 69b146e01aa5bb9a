// dist.h: data-parallel training over MPI (Open MPI): `mpirun -np N qstar
// train ...`. Without MPI at build time (pkg-config ompi-c absent) this
// compiles to single-process stubs: qs_dist_init returns no context outside
// mpirun and an error naming the packages to install under it.
//
// The scheme (trainer.h's step, split over ranks):
//   * Every rank draws every row of the global batch from the same sampler
//     (ds->rng), so the data of global row g is the same whatever N is.
//     Thoughts of micro-batch k use the stream (seed, step, k) as in one
//     process, so the same rows get the same thoughts whatever N is.
//   * One process sums the K micro-batch gradients as a balanced binary
//     tree (halves split at the midpoint, trainer.h). With N a power of two
//     and N <= K, rank r computes the subtree of block N-1-r, log2(N) levels
//     down (qs_dist_block); otherwise equal contiguous blocks. Rank 0 thus
//     always holds the last micro-batch, whose loss parts and thoughts the
//     log shows, as in one process.
//   * Fixed-order reduction: the flat gradient buffer is cut into N
//     contiguous chunks; an all-to-all (pure data movement) sends chunk c of
//     every rank to rank c, which adds the N pieces as a balanced tree over
//     the blocks (the top of the same midpoint tree when N is a power of
//     two); an all-gather (data movement) returns the sums to everyone. So
//     the sums are a fixed function of the ranks' buffers: two runs with the
//     same N are byte-identical, and for N a power of two dividing the tree
//     evenly (N <= K) the gradients are bit for bit one process's. (A plain
//     MPI_Allreduce does not promise an order: its algorithm may change with
//     the message size or the library's tuning.)
//   * Scalars (loss, held-out sums, the squared gradient norm per chunk) are
//     all-gathered and added in rank order.
//   * --zero 1: each rank keeps the AdamW moments of its chunk only, updates
//     its chunk of the weights and all-gathers the weights instead of the
//     gradients. The update is elementwise and the norm is computed the same
//     way, so the weights are byte-identical to the default.
//   * Rank 0 alone logs and writes checkpoints (moments gathered to it);
//     checkpoints are independent of N, so --resume works with another N.
#ifndef QS_TRAIN_DIST_H
#define QS_TRAIN_DIST_H

#include <stddef.h>
#include "core/qs.h"
#include "train/adamw.h"

typedef struct qs_dist qs_dist;

// 1 if qstar was built with MPI.
int qs_dist_built_with_mpi(void);
// 1 if this process was started by mpirun/mpiexec (Open MPI / PMIx env).
int qs_dist_launched(void);
// Under mpirun: MPI_Init and a context (*d) for the N ranks, N >= 1. Outside
// mpirun: *d = NULL (single process). Built without MPI and launched by
// mpirun: an error telling what to install.
qs_status qs_dist_init(qs_dist **d, int zero);
// MPI_Finalize and free (NULL is fine).
void qs_dist_free(qs_dist *d);
// Ends every rank of the job (after a rank's error: the others would wait).
void qs_dist_abort(qs_dist *d, int code);

int qs_dist_rank(const qs_dist *d);  // 0 for NULL
int qs_dist_size(const qs_dist *d);  // 1 for NULL
int qs_dist_zero(const qs_dist *d);  // the --zero stage (0 or 1)

// The micro-batches [*lo, *hi) of K that this rank computes (see above).
void qs_dist_block(const qs_dist *d, int K, int *lo, int *hi);

// v[0..n) := the sum over ranks of v, added in rank order (n <= 64).
qs_status qs_dist_sum_doubles(qs_dist *d, double *v, int n);
// Logical OR of flag over ranks.
int qs_dist_any(qs_dist *d, int flag);

// Chunk of rank r of an n-element buffer: [*lo, *hi).
void qs_dist_chunk(const qs_dist *d, size_t n, int r, size_t *lo, size_t *hi);

// Fixed-order reduce-scatter of g[0..n): afterwards g[lo..hi) of this rank's
// chunk holds the sum over ranks (the tree above). Other elements are undefined.
qs_status qs_dist_reduce_scatter(qs_dist *d, float *g, size_t n);
// All-gather: every rank's chunk of x[0..n) to every rank.
qs_status qs_dist_all_gather(qs_dist *d, float *x, size_t n);
// The full moments on rank 0 from the ranks' chunks (--zero 1): `part` holds
// this rank's chunk (part->numel = its size); on rank 0 *full is allocated
// (n elements, step copied); on the others it is left empty.
qs_status qs_dist_gather_moments(qs_dist *d, const qs_adamw *part, size_t n, qs_adamw *full);

// Bytes each rank sends (and receives) per optimizer step for n floats:
// reduce-scatter + all-gather = 2 * 4 * n * (N-1)/N.
double qs_dist_step_bytes(size_t n, int N);

#endif

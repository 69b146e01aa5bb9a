// sampler.c: argmax / multinomial / nucleus sampling (see sampler.h).
#include "model/sampler.h"
#include "ops/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

qs_status qs_sampler_init(qs_sampler *s, int vocab_size, float temperature, float top_p, uint64_t seed) {
    memset(s, 0, sizeof *s);
    if (vocab_size < 1) return qs_error(QS_ERR_ARG, "sampler: vocabulary size %d must be positive", vocab_size);
    if (!isfinite(temperature) || temperature < 0.0f)
        return qs_error(QS_ERR_ARG, "sampler: temperature %g must be finite and >= 0", (double)temperature);
    if (!isfinite(top_p)) return qs_error(QS_ERR_ARG, "sampler: top-p %g must be finite", (double)top_p);
    s->vocab_size = vocab_size;
    s->temperature = temperature;
    s->top_p = top_p;
    qs_rng_seed(&s->rng, seed);
    s->probindex = qs_malloc((size_t)vocab_size * sizeof *s->probindex, "sampler buffer");
    if (!s->probindex) return QS_ERR_NOMEM;
    return QS_OK;
}

void qs_sampler_free(qs_sampler *s) {
    if (!s) return;
    free(s->probindex);
    free(s->banned);
    memset(s, 0, sizeof *s);
}

qs_status qs_sampler_ban(qs_sampler *s, const int *ids, int n) {
    if (n <= 0) return QS_OK;
    for (int k = 0; k < n; k++)
        if (ids[k] < 0 || ids[k] >= s->vocab_size)
            return qs_error(QS_ERR_ARG, "sampler: banned token id %d outside vocabulary of %d", ids[k],
                            s->vocab_size);
    if (!s->banned) {
        s->banned = qs_calloc((size_t)s->vocab_size, 1, "sampler ban mask");
        if (!s->banned) return QS_ERR_NOMEM;
    }
    int added = 0;
    for (int k = 0; k < n; k++) added += !s->banned[ids[k]];
    if (s->n_banned + added >= s->vocab_size)
        return qs_error(QS_ERR_ARG, "sampler: cannot ban all %d tokens", s->vocab_size);
    for (int k = 0; k < n; k++) s->banned[ids[k]] = 1;
    s->n_banned += added;
    return QS_OK;
}

int qs_sample_argmax(const float *x, int n) {
    int best = 0;
    float bv = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > bv) bv = x[i], best = i;
    return best;
}

int qs_sample_mult(const float *probs, int n, float coin) {
    float cdf = 0.0f;
    for (int i = 0; i < n; i++) {
        cdf += probs[i];
        if (coin < cdf) return i;
    }
    // rounding: the last token with nonzero probability
    for (int i = n - 1; i > 0; i--)
        if (probs[i] > 0.0f) return i;
    return 0;
}

static int cmp_desc(const void *a, const void *b) {
    const qs_prob_index *x = a, *y = b;
    if (x->prob > y->prob) return -1;
    if (x->prob < y->prob) return 1;
    return x->index - y->index; // stable order for ties (qsort is not stable)
}

int qs_sample_topp(const float *probs, int n, float top_p, qs_prob_index *pi, float coin) {
    // tokens below (1 - top_p) / (n - 1) can never be in the nucleus: drop them before sorting
    const float cutoff = n > 1 ? (1.0f - top_p) / (float)(n - 1) : 0.0f;
    int n0 = 0;
    for (int i = 0; i < n; i++)
        if (probs[i] >= cutoff && probs[i] > 0.0f) pi[n0].index = i, pi[n0].prob = probs[i], n0++;
    if (n0 == 0) return qs_sample_argmax(probs, n);
    qsort(pi, (size_t)n0, sizeof *pi, cmp_desc);
    // keep the shortest prefix whose cumulative probability exceeds top_p
    float cum = 0.0f;
    int last = n0 - 1;
    for (int i = 0; i < n0; i++) {
        cum += pi[i].prob;
        if (cum > top_p) {
            last = i;
            break;
        }
    }
    const float r = coin * cum;
    float cdf = 0.0f;
    for (int i = 0; i <= last; i++) {
        cdf += pi[i].prob;
        if (r < cdf) return pi[i].index;
    }
    return pi[last].index;
}

void qs_softmax_inplace(float *x, int n) {
    float mx = x[0];
    for (int i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        // an overflowed +inf (tiny temperature) shares the mass with the other +inf entries
        x[i] = isinf(mx) && mx > 0 ? (x[i] == mx ? 1.0f : 0.0f) : expf(x[i] - mx);
        sum += x[i];
    }
    for (int i = 0; i < n; i++) x[i] /= sum;
}

int qs_sampler_sample(qs_sampler *s, float *logits) {
    const int V = s->vocab_size;
    if (s->banned)
        for (int i = 0; i < V; i++)
            if (s->banned[i]) logits[i] = -INFINITY;
    if (s->temperature == 0.0f) return qs_sample_argmax(logits, V);
    for (int i = 0; i < V; i++) logits[i] /= s->temperature;
    qs_softmax_inplace(logits, V);
    const float coin = qs_rng_uniform(&s->rng);
    if (s->top_p <= 0.0f || s->top_p >= 1.0f) return qs_sample_mult(logits, V, coin);
    return qs_sample_topp(logits, V, s->top_p, s->probindex, coin);
}

// Vectorised for large vocabularies (a 135M model samples 49152 logits per thought
// token): the max, the exponentials (qs_exp_neg, exactly 0 for banned ids) and the sum
// run across the row; the cumulative scan skips whole blocks by their sums and walks
// one id at a time only inside the block where the coin falls.
#define QS_SAMPLE_BLOCK 256
int qs_sample_thought(float *z, int V, const int *banned, int n_banned, float tau, int greedy, float coin) {
    for (int b = 0; b < n_banned; b++)
        if (banned[b] >= 0 && banned[b] < V) z[banned[b]] = -INFINITY;
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int v = 0; v < V; v++) mx = z[v] > mx ? z[v] : mx;
    int best = 0; // the first maximum: the first block holding it, then the id in it
    for (int v0 = 0, hit = 0; v0 < V && !hit; v0 += QS_SAMPLE_BLOCK) {
        const int v1 = v0 + QS_SAMPLE_BLOCK < V ? v0 + QS_SAMPLE_BLOCK : V;
#pragma omp simd reduction(| : hit)
        for (int v = v0; v < v1; v++) hit |= z[v] == mx;
        for (int v = v0; hit && v < v1; v++)
            if (z[v] == mx) {
                best = v;
                break;
            }
    }
    if (greedy) return best;
    // unnormalised probabilities in place (one exp per logit), summed in double
    // (two loops: GCC 12 left the fused one scalar)
#pragma omp simd
    for (int v = 0; v < V; v++) z[v] = z[v] == -INFINITY ? 0.0f : qs_exp_neg((z[v] - mx) / tau);
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int v = 0; v < V; v++) s += z[v];
    const double u = (double)coin * s;
    double c = 0.0;
    int v = 0;
    for (; v + QS_SAMPLE_BLOCK <= V; v += QS_SAMPLE_BLOCK) {
        double bs = 0.0;
#pragma omp simd reduction(+ : bs)
        for (int k = v; k < v + QS_SAMPLE_BLOCK; k++) bs += z[k];
        if (u < c + bs) break;
        c += bs;
    }
    for (; v < V; v++) { // (past the block too, should rounding leave u beyond its last id)
        c += z[v];
        if (u < c) return v;
    }
    return best; // rounding (unreachable for coin < 1): the most likely token
}

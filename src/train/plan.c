// plan.c: the memory and compute plan of a training run (plan.h).
#include "train/plan.h"
#include "model/workspace.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// What the process holds besides the run's buffers: code, the BLAS/oneDNN/
// OpenMP runtimes and their thread buffers, the tokenizer (measured: 14 MB
// resident after loading stories260K and its data, about 24 MB once the
// GEMM libraries have run).
#define RUNTIME_BYTES ((size_t)24 << 20)

static void add(qs_plan *p, const char *name, size_t bytes, const char *shrink) {
    if (bytes == 0 || p->n >= QS_PLAN_MAX_TERMS) return;
    p->term[p->n++] = (qs_plan_term){name, bytes, shrink};
    p->total += bytes;
}

// Model FLOPs of one LM forward+backward on B x T tokens (backward = 2x
// forward, no recompute), and of one Quiet-STaR step as SPEC computes it:
// the D passes with their i+1+d visible keys per query, the lm_head products
// (base and talk CE forward+backward, n_thought sampling passes, n_thought
// policy passes forward+backward) and the mixing head. The same formulas as
// bench/run_bench.py, so its GFLOP/s and this plan agree.
static double linear_params(const qs_config *c) {
    const double H = c->dim, F = c->hidden_dim, qd = (double)c->n_heads * c->head_dim,
                 kvd = (double)c->n_kv_heads * c->head_dim;
    return c->n_layers * (2 * H * qd + 2 * H * kvd + 3 * H * F);
}

static double lm_flops(const qs_config *c, int B, int T) {
    const double N = (double)B * T, att = (double)c->n_layers * 4 * c->n_heads * c->head_dim;
    return 3 * (2 * linear_params(c) * N + att * B * (double)T * (T + 1) / 2 + 2 * N * c->dim * c->vocab_size);
}

static double qstar_flops(const qs_config *c, const qs_qstar_opts *o, int B, int T) {
    const double R = (double)B * o->n_passes, N = R * T, H = c->dim, V = c->vocab_size;
    const int D = o->n_ahead + o->n_talk - 1, nT = o->n_ahead - 3;
    double keys = 0;
    for (int d = 0; d < D; d++) keys += R * ((double)T * (T + 1) / 2 + (double)T * d);
    const double att = (double)c->n_layers * 4 * c->n_heads * c->head_dim;
    const double model = 3 * (2 * linear_params(c) * N * D + att * keys);
    const double head = ((1 + o->n_talk + 2 * nT) + 2 * (1 + o->n_talk + nT)) * 2 * N * H * V;
    const double mix = o->n_talk * 3 * 2 * N * (3 * H * H + H);
    return model + head + mix;
}

// bf16 GEMM operands are cast into per-thread scratch (ops/matmul.c): the
// largest activation operand, the second operand of a weight-gradient
// product and the output gradient, each up to n_max x max(F, qd) bf16 values.
static size_t bf16_scratch(const qs_config *c, size_t n_max) {
    const size_t w = (size_t)QS_MAX(c->hidden_dim, c->n_heads * c->head_dim);
    return 3 * n_max * w * 2;
}

// On oneDNN, the bf16 weights of the X W^T products (every linear layer of the
// llama family, and the lm_head) are also kept packed in its blocked layout.
static size_t packed_weights(const qs_config *c) {
    if (strcmp(qs_matmul_backend(), "onednn")) return 0;
    const double lin = c->arch == QS_ARCH_GPT2 ? 0 : linear_params(c);
    return (size_t)(2 * (lin + (double)c->vocab_size * c->dim));
}

static qs_status add_step(const qs_plan_spec *s, qs_plan *p) {
    const qs_config *c = s->cfg;
    if (s->quietstar) {
        qs_qstar_plan q, e;
        QS_TRY(qs_qstar_plan_bytes(c, s->qs, s->batch, s->seq_len, &q));
        qs_qstar_opts eo = *s->qs; // the trainer's eval-mode step: 1 pass, 1 talk token
        eo.n_passes = 1, eo.n_talk = 1, eo.reward_baseline = QS_BASELINE_MEAN, eo.forward_only = 1;
        QS_TRY(qs_qstar_plan_bytes(c, &eo, s->batch, s->seq_len, &e));
        add(p, "KV cache of all passes", q.kv_cache, "--batch, --seq-len, --n-ahead, --n-talk, --n-passes");
        add(p, "layer inputs of all passes", q.layer_inputs, "--batch, --seq-len, --n-ahead, --n-talk, --n-passes");
        add(p, "activations kept for the backward", q.stored_acts, "--act-budget-mb");
        add(p, "one layer's activations", q.scratch, "--batch, --seq-len, --n-ahead");
        add(p, "one layer's gradients", q.grads, "--batch, --seq-len, --n-ahead");
        add(p, "logits chunk", q.logits, "");
        add(p, "thoughts, rewards, mixing head", q.step, "--batch, --seq-len, --n-passes");
        add(p, "held-out evaluation step (forward only)", e.total, "--batch, --seq-len, --n-ahead");
        p->layers_kept = q.layers_kept, p->layers_total = q.layers_total;
        const int D = s->qs->n_ahead + s->qs->n_talk - 1;
        if (s->precision == QS_PREC_BF16)
            add(p, "bf16 GEMM operands", bf16_scratch(c, (size_t)D * s->batch * s->qs->n_passes * s->seq_len),
                "--batch, --seq-len, --precision fp32");
        p->flops = qstar_flops(c, s->qs, s->batch, s->seq_len) * s->grad_accum;
    } else {
        const size_t budget = s->act_budget_mb < 0 ? QS_STORE_ACTS_DEFAULT
                              : s->act_budget_mb < 1e12 ? (size_t)(s->act_budget_mb * (double)(1 << 20)) : SIZE_MAX;
        qs_ws_plan w, e;
        QS_TRY(qs_workspace_plan(c, s->batch, s->seq_len, 1, 1, budget, &w));
        QS_TRY(qs_workspace_plan(c, s->batch, s->seq_len, 1, 0, 0, &e));
        add(p, "KV cache", w.kv_cache, "--batch, --seq-len");
        add(p, "layer inputs", w.layer_inputs, "--batch, --seq-len");
        add(p, "activations kept for the backward", w.stored_acts, "--act-budget-mb");
        add(p, "one layer's activations", w.scratch, "--batch, --seq-len");
        add(p, "one layer's gradients", w.grads, "--batch, --seq-len");
        add(p, "logits chunk", w.logits, "");
        add(p, "held-out evaluation", e.total, "--batch, --seq-len");
        p->layers_kept = w.layers_kept, p->layers_total = w.layers_total;
        if (s->precision == QS_PREC_BF16)
            add(p, "bf16 GEMM operands", bf16_scratch(c, (size_t)s->batch * s->seq_len),
                "--batch, --seq-len, --precision fp32");
        p->flops = lm_flops(c, s->batch, s->seq_len) * s->grad_accum;
    }
    return QS_OK;
}

qs_status qs_train_plan(const qs_plan_spec *s, qs_plan *p) {
    memset(p, 0, sizeof *p);
    if (!s->cfg || s->batch < 1 || s->seq_len < 2 || s->grad_accum < 1 || (s->quietstar && !s->qs))
        return qs_error(QS_ERR_ARG, "plan: batch %d x seq_len %d x grad_accum %d is not a run", s->batch, s->seq_len,
                        s->grad_accum);
    const size_t W = s->numel * sizeof(float);
    const int ranks = s->ranks > 0 ? s->ranks : 1;
    add(p, "weights (fp32 masters)", W, "a smaller model");
    add(p, "gradients", W, "a smaller model");
    add(p, s->zero && ranks > 1 ? "AdamW moments (sharded, --zero 1)" : "AdamW moments", 2 * W / (s->zero ? ranks : 1),
        "--zero 1 with more ranks");
    int levels = 0;
    while ((1 << levels) < s->grad_accum && levels < 21) levels++;
    add(p, "micro-batch gradient sums", (size_t)levels * W, "--grad-accum");
    if (s->precision == QS_PREC_BF16) {
        add(p, "bf16 copy of the weights", s->numel * 2, "--precision fp32");
        add(p, "bf16 weights packed for oneDNN", packed_weights(s->cfg), "--precision fp32");
    }
    if (s->quietstar && s->qs->reward_baseline == QS_BASELINE_EMA) {
        qs_ws_plan r;
        QS_TRY(qs_workspace_plan(s->cfg, s->batch, s->seq_len, 1, 0, 0, &r));
        add(p, "EMA copy of the model and its evaluation",
            W + r.total + (s->precision == QS_PREC_BF16 ? s->numel * 2 + packed_weights(s->cfg) : 0),
            "--reward-baseline mean");
    }
    QS_TRY(add_step(s, p));
    add(p, "training data in memory", s->data_tokens * sizeof(int), "qstar prepare (mapped token shards)");
    add(p, "runtime (code, BLAS and thread buffers, tokenizer)", RUNTIME_BYTES, "");
    p->flops *= ranks;
    return QS_OK;
}

const char *qs_fmt_bytes(double b, char *buf, size_t cap) {
    if (b >= 1e9) snprintf(buf, cap, "%.2f GB", b / 1e9);
    else if (b >= 1e6) snprintf(buf, cap, "%.0f MB", b / 1e6);
    else snprintf(buf, cap, "%.0f kB", b / 1e3);
    return buf;
}

void qs_plan_format(const qs_plan *p, char *buf, size_t cap) {
    int order[QS_PLAN_MAX_TERMS];
    for (int i = 0; i < p->n; i++) order[i] = i;
    for (int i = 1; i < p->n; i++) // largest first (insertion sort: <= 20 terms)
        for (int j = i; j > 0 && p->term[order[j]].bytes > p->term[order[j - 1]].bytes; j--) {
            int t = order[j];
            order[j] = order[j - 1], order[j - 1] = t;
        }
    size_t o = 0;
    char b[32];
    for (int i = 0; i < p->n && o < cap; i++) {
        const qs_plan_term *t = &p->term[order[i]];
        o += (size_t)snprintf(buf + o, cap - o, "  %-52s %10s\n", t->name, qs_fmt_bytes((double)t->bytes, b, sizeof b));
    }
    if (o < cap)
        o += (size_t)snprintf(buf + o, cap - o, "  %-52s %10s   (%d of %d layers' activations kept)\n",
                              "peak memory (one process)", qs_fmt_bytes((double)p->total, b, sizeof b),
                              p->layers_kept, p->layers_total);
    if (o < cap) snprintf(buf + o, cap - o, "  %-52s %10.3g\n", "FLOPs per optimizer step", p->flops);
    if (o >= cap && cap > 4) memcpy(buf + cap - 4, "...", 4);
}

// A number from the first line of `path` starting with `key` (kB in
// /proc/meminfo), or -1.
static double read_key(const char *path, const char *key) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[256];
    double v = -1;
    const size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl)) {
            v = strtod(line + kl, NULL);
            break;
        }
    fclose(f);
    return v;
}

size_t qs_mem_available(void) {
    const char *e = getenv("QSTAR_MEM_AVAILABLE_MB");
    if (e && *e) {
        double mb = strtod(e, NULL);
        return mb > 0 ? (size_t)(mb * (double)(1 << 20)) : 0;
    }
    const double kb = read_key("/proc/meminfo", "MemAvailable:");
    size_t avail = kb > 0 ? (size_t)(kb * 1024) : 0;
    // cgroup v2 limit ("max" reads as -1 here: no limit)
    const double lim = read_key("/sys/fs/cgroup/memory.max", "");
    const double cur = read_key("/sys/fs/cgroup/memory.current", "");
    if (lim > 0 && cur >= 0 && lim > cur && (avail == 0 || lim - cur < (double)avail)) avail = (size_t)(lim - cur);
    return avail;
}

int qs_plan_largest(const qs_plan *p) {
    int big = -1;
    for (int i = 0; i < p->n; i++)
        if (*p->term[i].shrink && (big < 0 || p->term[i].bytes > p->term[big].bytes)) big = i;
    return big;
}

qs_status qs_plan_check(const qs_plan *p, size_t available) {
    if (available == 0 || p->total <= available) return QS_OK;
    const int big = qs_plan_largest(p);
    if (big < 0) return qs_error(QS_ERR_NOMEM, "the run needs more memory than is available");
    char a[32], b[32], c[32];
    const qs_plan_term *t = &p->term[big];
    return qs_error(QS_ERR_NOMEM,
                    "the run needs %s at its peak but %s is available; the largest term is %s (%s)%s%s; "
                    "see qstar train --plan",
                    qs_fmt_bytes((double)p->total, a, sizeof a), qs_fmt_bytes((double)available, b, sizeof b), t->name,
                    qs_fmt_bytes((double)t->bytes, c, sizeof c), *t->shrink ? ": shrink it with " : "", t->shrink);
}

// plan.h: the memory and compute plan of a training run (`qstar train
// --plan`, and the header of every run): the peak memory of one process by
// term (weights, optimizer, the step's activations, KV cache of all passes,
// logits, ...) and the FLOPs of one optimizer step, computed before anything
// is allocated. The step's and the workspace's terms come from their own
// allocation code run in counting mode (qs_qstar_plan_bytes,
// qs_workspace_plan), so the plan cannot drift from what is allocated.
#ifndef QS_TRAIN_PLAN_H
#define QS_TRAIN_PLAN_H

#include "quietstar/qstar.h"

#define QS_PLAN_MAX_TERMS 20

typedef struct {
    const char *name;   // "KV cache (15 passes)", ...
    size_t bytes;
    const char *shrink; // the flags that make it smaller ("--batch, --seq-len, --n-ahead")
} qs_plan_term;

typedef struct {
    qs_plan_term term[QS_PLAN_MAX_TERMS];
    int n;
    size_t total;       // peak bytes of one process (the sum of the terms)
    double flops;       // model FLOPs of one optimizer step (all micro-batches, all ranks)
    int layers_kept, layers_total; // layers whose activations the step keeps (the activation budget)
} qs_plan;

typedef struct {
    const qs_config *cfg;
    size_t numel;           // floats in the parameter buffer (with the Quiet-STaR tensors)
    int quietstar;          // 1: Quiet-STaR step (qs below), 0: plain LM
    const qs_qstar_opts *qs;
    int batch, seq_len, grad_accum;
    double act_budget_mb;   // plain LM: activations kept (< 0: default); Quiet-STaR: qs->act_budget_mb
    qs_precision precision;
    int ranks;              // processes (1: single process)
    int zero;               // 1: AdamW moments sharded over the ranks
    size_t data_tokens;     // tokens of the training data held in memory (0: mapped token shards)
} qs_plan_spec;

qs_status qs_train_plan(const qs_plan_spec *s, qs_plan *p);

// The plan as text: one line per term, largest first, then the total and the
// FLOPs; at most cap bytes (truncated with "...").
void qs_plan_format(const qs_plan *p, char *buf, size_t cap);

// Memory the run may use: MemAvailable of /proc/meminfo, or a cgroup limit
// when lower; 0 when unknown (no check then). QSTAR_MEM_AVAILABLE_MB
// overrides it (tests, or to plan for another machine).
size_t qs_mem_available(void);

// The largest term that flags can shrink (not the runtime), or -1.
int qs_plan_largest(const qs_plan *p);

// QS_OK when p->total fits in `available` (0: unknown, always fits); else
// QS_ERR_NOMEM with a one-line message naming the total, the available
// memory, the largest term that flags can shrink and those flags.
qs_status qs_plan_check(const qs_plan *p, size_t available);

// "1.23 GB" / "456 MB" / "789 kB" into buf.
const char *qs_fmt_bytes(double bytes, char *buf, size_t cap);

#endif

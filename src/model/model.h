// model.h: a loaded Llama-family model: config + parameter layout + weights.
#ifndef QS_MODEL_MODEL_H
#define QS_MODEL_MODEL_H

#include "model/config.h"
#include "model/params.h"
#include "ops/ops.h"

typedef struct qs_shadow qs_shadow; // bf16 copy of params (model.c)

typedef struct {
    qs_config cfg;
    qs_layout layout;
    float *params;     // layout.numel floats, one contiguous buffer
    qs_ptrs w;         // named pointers into params
    int has_quietstar; // layout holds the Quiet-STaR tensors
    // ---- appended: how qs_model_save_dir writes the model back (io/model_io.h) ----
    char *src_config;  // config.json text the model was loaded from (malloc'd, owned) or NULL:
                       // its keys are kept when saving
    int save_dtype;    // qs_dtype of the saved weights: 0 = F32, 1 = F16, 2 = BF16 (as loaded)
    int save_master;   // 1: with a 16-bit save_dtype also save exact fp32 master weights
    // runtime options (not saved with the model)
    qs_precision precision; // GEMM precision: fp32 (default) or bf16 (fp32 masters, bf16 products)
    uint64_t version;  // bumped whenever params change (qs_model_touch): the bf16 copy follows it
    qs_shadow *shadow; // bf16 copy of params, made on first bf16 use, refreshed when version moves
} qs_model;

// Allocates a model of config `c` with all parameters zero.
qs_status qs_model_create(qs_model *m, const qs_config *c, int with_quietstar);
// Random init: matrices N(0, 0.02), norms 1, biases 0 (deterministic in seed).
void qs_model_init_random(qs_model *m, uint64_t seed);
void qs_model_free(qs_model *m);
// Adds the Quiet-STaR tensors to a model that has none (keeps all weights);
// they are zero: the caller initialises them (quietstar init).
qs_status qs_model_add_quietstar(qs_model *m);
// Call after writing m->params directly (optimizer update, loading into an
// existing model): the bf16 copy is refreshed on its next use.
static inline void qs_model_touch(qs_model *m) { m->version++; }
// The GEMM context of m's precision (fp32: prec only; bf16: the bf16 copy of
// params, cast now if params changed since the last cast). Thread-safe.
qs_status qs_model_mm(const qs_model *m, qs_mm *mm);

#endif

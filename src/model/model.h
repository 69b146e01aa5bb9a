// model.h: a loaded Llama-family model: config + parameter layout + weights.
#ifndef QS_MODEL_MODEL_H
#define QS_MODEL_MODEL_H

#include "model/config.h"
#include "model/params.h"

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
} qs_model;

// Allocates a model of config `c` with all parameters zero.
qs_status qs_model_create(qs_model *m, const qs_config *c, int with_quietstar);
// Random init: matrices N(0, 0.02), norms 1, biases 0 (deterministic in seed).
void qs_model_init_random(qs_model *m, uint64_t seed);
void qs_model_free(qs_model *m);
// Adds the Quiet-STaR tensors to a model that has none (keeps all weights);
// they are zero: the caller initialises them (quietstar init).
qs_status qs_model_add_quietstar(qs_model *m);

#endif

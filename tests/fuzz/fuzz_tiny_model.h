// fuzz_tiny_model.h: the tiny model of the train_state harness and its seed writer.
#ifndef QS_FUZZ_TINY_MODEL_H
#define QS_FUZZ_TINY_MODEL_H
#include "model/model.h"
#include "train/adamw.h"

static inline qs_status fuzz_tiny_model(qs_model *m) {
    qs_config c = {.arch = QS_ARCH_LLAMA, .dim = 8, .hidden_dim = 12, .n_layers = 1, .n_heads = 2, .n_kv_heads = 1,
                   .head_dim = 4, .vocab_size = 16, .max_seq_len = 16, .rope_theta = 10000.0f, .norm_eps = 1e-5f,
                   .tied_embeddings = 1, .bos_id = 1, .eos_id = 2};
    return qs_model_create(m, &c, 1);
}
#endif

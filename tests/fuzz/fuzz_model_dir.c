// fuzz_model_dir.c: a model directory as far as one buffer allows: the first
// two bytes give the length of a config.json, the rest is model.safetensors.
// The config is parsed, the safetensors header validated, and every tensor's
// shape compared with the config before anything of the model's size is
// allocated (qs_st_check_config, as qs_model_load does); small accepted
// models are then created.
#include "fuzz_common.h"
#include "io/model_io.h"
#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
    if (n < 2) return 0;
    size_t k = (size_t)d[0] | (size_t)d[1] << 8;
    if (k > n - 2) return 0;
    qs_config c;
    char *qs = NULL;
    if (qs_hf_config_parse(&c, (const char *)d + 2, k, "config.json", &qs) != QS_OK) return 0;
    qs_safetensors st;
    if (qs_st_parse(&st, d + 2 + k, n - 2 - k, "model.safetensors") == QS_OK) {
        int with_qs = qs_st_find(&st, "start_embedding") != NULL;
        if (qs_st_check_config(&st, &c, with_qs) == QS_OK) {
            // every tensor named by the layout has the configured shape: a model this
            // small may be created (the check itself allocated nothing of its size)
            size_t params = (size_t)c.vocab_size * c.dim * 2 + (size_t)c.n_layers * c.dim * c.hidden_dim * 3;
            qs_model m;
            if (params < (1u << 20) && qs_model_create(&m, &c, with_qs) == QS_OK) qs_model_free(&m);
        }
        qs_st_close(&st);
    }
    free(qs);
    return 0;
}

// opts.c: Quiet-STaR options (SPEC defaults) and initialisation of the
// learned meta embeddings and mixing head.
#include "quietstar/qstar.h"

#include <cJSON.h>
#include <stdio.h>
#include <string.h>

void qs_qstar_opts_default(qs_qstar_opts *o) {
    memset(o, 0, sizeof *o);
    o->n_ahead = 12;
    o->n_talk = 4;
    o->n_passes = 2;
    o->base_loss_weight = 0.5f;
    o->policy_beta = 1e6f;
    o->tau_sample = 1.0f;
    o->tau_rl = 3.0f;
    o->clamp_negative_rewards = 1;
    o->embedding_scale = 100.0f;
    o->mixing = QS_MIX_LINEAR;
    snprintf(o->thought_init, sizeof o->thought_init, "---");
}

qs_status qs_qstar_opts_validate(const qs_qstar_opts *o, int T) {
    if (o->n_ahead < 3 || o->n_ahead > 256)
        return qs_error(QS_ERR_ARG, "n_ahead %d out of range [3, 256] (a thought is start + n_ahead-3 tokens + end)", o->n_ahead);
    if (o->n_talk < 1 || o->n_talk > QS_MAX_TALK)
        return qs_error(QS_ERR_ARG, "n_talk %d out of range [1, %d]", o->n_talk, QS_MAX_TALK);
    if (o->n_passes < 1 || o->n_passes > 64) return qs_error(QS_ERR_ARG, "n_passes %d out of range [1, 64]", o->n_passes);
    if (!(o->base_loss_weight >= 0 && o->base_loss_weight <= 1))
        return qs_error(QS_ERR_ARG, "base_loss_weight %g out of range [0, 1]", (double)o->base_loss_weight);
    if (!(o->policy_beta >= 0) || o->policy_beta > 1e12f)
        return qs_error(QS_ERR_ARG, "policy_beta %g out of range [0, 1e12]", (double)o->policy_beta);
    if (!(o->tau_sample > 0) || o->tau_sample > 1e6f) return qs_error(QS_ERR_ARG, "tau_sample %g must be > 0", (double)o->tau_sample);
    if (!(o->tau_rl > 0) || o->tau_rl > 1e6f) return qs_error(QS_ERR_ARG, "tau_rl %g must be > 0", (double)o->tau_rl);
    if (!(o->embedding_scale > 0) || o->embedding_scale > 1e6f)
        return qs_error(QS_ERR_ARG, "embedding_scale %g must be > 0", (double)o->embedding_scale);
    if (o->mixing != QS_MIX_LINEAR && o->mixing != QS_MIX_SIGMOID) return qs_error(QS_ERR_ARG, "unknown mixing variant %d", o->mixing);
    if (o->n_banned < 0 || o->n_banned > QS_MAX_BANNED) return qs_error(QS_ERR_ARG, "too many banned tokens");
    if (T > 0 && T < o->n_talk + 2)
        return qs_error(QS_ERR_ARG, "sequence length %d too short for n_talk %d (needs at least n_talk + 2)", T, o->n_talk);
    return QS_OK;
}

qs_status qs_qstar_init_tensors(qs_model *m, const qs_qstar_opts *o, int init_id, int present, uint64_t seed) {
    if (!m->has_quietstar) QS_TRY(qs_model_add_quietstar(m));
    const int H = m->cfg.dim, V = m->cfg.vocab_size;
    qs_ptrs *w = &m->w;
    if (init_id >= V) return qs_error(QS_ERR_ARG, "thought init token id %d outside vocabulary %d", init_id, V);
    float row[H > 0 ? H : 1];
    for (int c = 0; c < H; c++) {
        if (init_id >= 0) {
            row[c] = w->embed[(size_t)init_id * H + c];
        } else { // mean embedding row
            double s = 0;
            for (int v = 0; v < V; v++) s += w->embed[(size_t)v * H + c];
            row[c] = (float)(s / V);
        }
        row[c] /= o->embedding_scale;
    }
    if (!(present & 1)) {
        memset(w->start_emb, 0, 2 * H * sizeof(float));
        memcpy(w->start_emb, row, H * sizeof(float));
    }
    if (!(present & 2)) {
        memset(w->end_emb, 0, 2 * H * sizeof(float));
        memcpy(w->end_emb, row, H * sizeof(float));
    }
    if (!(present & 4)) {
        qs_rng r;
        qs_rng_seed(&r, seed);
        for (size_t k = 0; k < (size_t)H * 2 * H; k++) w->head_w1[k] = 0.02f * qs_rng_normal(&r);
        for (size_t k = 0; k < (size_t)H * H; k++) w->head_w2[k] = 0.02f * qs_rng_normal(&r);
        memset(w->head_b1, 0, H * sizeof(float));
        memset(w->head_b2, 0, H * sizeof(float));
        memset(w->head_w3, 0, H * sizeof(float));
    }
    return QS_OK;
}

// ---- the "quietstar" block of config.json ----------------------------------

char *qs_qstar_opts_to_json(const qs_qstar_opts *o) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    cJSON_AddNumberToObject(j, "n_ahead", o->n_ahead);
    cJSON_AddNumberToObject(j, "n_thought", o->n_ahead - 3);
    cJSON_AddNumberToObject(j, "n_talk", o->n_talk);
    cJSON_AddNumberToObject(j, "n_passes", o->n_passes);
    cJSON_AddNumberToObject(j, "base_loss_weight", o->base_loss_weight);
    cJSON_AddNumberToObject(j, "policy_beta", o->policy_beta);
    cJSON_AddNumberToObject(j, "tau_sample", o->tau_sample);
    cJSON_AddNumberToObject(j, "tau_rl", o->tau_rl);
    cJSON_AddBoolToObject(j, "clamp_negative_rewards", o->clamp_negative_rewards);
    cJSON_AddNumberToObject(j, "embedding_scale", o->embedding_scale);
    cJSON_AddStringToObject(j, "mixing", o->mixing == QS_MIX_SIGMOID ? "sigmoid" : "linear");
    cJSON_AddBoolToObject(j, "greedy_thoughts", o->greedy_thoughts);
    cJSON_AddStringToObject(j, "thought_init", o->thought_init);
    char *s = cJSON_Print(j);
    cJSON_Delete(j);
    return s;
}

qs_status qs_qstar_opts_from_json(qs_qstar_opts *o, const char *json, const char *src) {
    cJSON *j = cJSON_Parse(json);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return qs_error(QS_ERR_FORMAT, "%s: the \"quietstar\" block is not a JSON object", src);
    }
    qs_status st = QS_OK;
    const cJSON *v;
#define NUM(key, field)                                                                               \
    if ((v = cJSON_GetObjectItemCaseSensitive(j, key))) {                                             \
        if (!cJSON_IsNumber(v)) st = qs_error(QS_ERR_FORMAT, "%s: quietstar.%s must be a number", src, key); \
        else o->field = (__typeof__(o->field))v->valuedouble;                                         \
    }
#define BOOL(key, field)                                                                              \
    if ((v = cJSON_GetObjectItemCaseSensitive(j, key))) {                                             \
        if (!cJSON_IsBool(v)) st = qs_error(QS_ERR_FORMAT, "%s: quietstar.%s must be true or false", src, key); \
        else o->field = cJSON_IsTrue(v);                                                              \
    }
    NUM("n_ahead", n_ahead) NUM("n_talk", n_talk) NUM("n_passes", n_passes)
    NUM("base_loss_weight", base_loss_weight) NUM("policy_beta", policy_beta) NUM("tau_sample", tau_sample)
    NUM("tau_rl", tau_rl) NUM("embedding_scale", embedding_scale)
    BOOL("clamp_negative_rewards", clamp_negative_rewards) BOOL("greedy_thoughts", greedy_thoughts)
#undef NUM
#undef BOOL
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "mixing"))) {
        if (cJSON_IsString(v) && !strcmp(v->valuestring, "sigmoid")) o->mixing = QS_MIX_SIGMOID;
        else if (cJSON_IsString(v) && !strcmp(v->valuestring, "linear")) o->mixing = QS_MIX_LINEAR;
        else st = qs_error(QS_ERR_FORMAT, "%s: quietstar.mixing must be \"linear\" or \"sigmoid\"", src);
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "thought_init")) && cJSON_IsString(v) &&
        strlen(v->valuestring) < sizeof o->thought_init)
        snprintf(o->thought_init, sizeof o->thought_init, "%s", v->valuestring);
    cJSON_Delete(j);
    if (st == QS_OK) st = qs_qstar_opts_validate(o, 0);
    if (st != QS_OK && !strstr(qstar_last_error(), src)) qs_error_prefix(st, "%s", src);
    return st;
}

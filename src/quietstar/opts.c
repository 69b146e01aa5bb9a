// opts.c: Quiet-STaR options (SPEC defaults) and initialisation of the
// learned meta embeddings and mixing head.
#include "quietstar/qstar.h"
#include "model/workspace.h"

#include <stdint.h>

#include <cJSON.h>
#include <float.h>
#include <math.h>
#include <stddef.h>
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
    o->reward_baseline = QS_BASELINE_MEAN;
    o->ema_decay = 0.99f;
    snprintf(o->thought_init, sizeof o->thought_init, "---");
    o->act_budget_mb = -1;
}

size_t qs_qstar_act_budget(const qs_qstar_opts *o) {
    const double mb = o->act_budget_mb;
    if (mb < 0 || mb != mb) return QS_STORE_ACTS_DEFAULT;
    return mb < 1e12 ? (size_t)(mb * (double)(1 << 20)) : SIZE_MAX;
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
    if (o->reward_baseline != QS_BASELINE_MEAN && o->reward_baseline != QS_BASELINE_EMA)
        return qs_error(QS_ERR_ARG, "unknown reward baseline %d", o->reward_baseline);
    if (!(o->ema_decay >= 0 && o->ema_decay < 1))
        return qs_error(QS_ERR_ARG, "ema_decay %g out of range [0, 1)", (double)o->ema_decay);
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
    qs_model_touch(m);
    return QS_OK;
}

qs_status qs_qstar_init_end(qs_model *m, const qs_qstar_opts *o, int end_id) {
    if (!m->has_quietstar) return qs_error(QS_ERR_ARG, "model has no Quiet-STaR tensors");
    const int H = m->cfg.dim, V = m->cfg.vocab_size;
    if (end_id >= V) return qs_error(QS_ERR_ARG, "end-of-thought init token id %d outside vocabulary %d", end_id, V);
    float *e = m->w.end_emb;
    memset(e, 0, 2 * (size_t)H * sizeof(float));
    for (int c = 0; c < H; c++) {
        double x = 0;
        if (end_id >= 0) x = m->w.embed[(size_t)end_id * H + c];
        else
            for (int v = 0; v < V; v++) x += m->w.embed[(size_t)v * H + c] / V;
        e[c] = (float)x / o->embedding_scale;
    }
    return QS_OK;
}

// ---- the "quietstar" block of config.json ----------------------------------

qs_status qs_qstar_opts_to_json(const qs_qstar_opts *o, char **json) {
    *json = NULL;
    cJSON *r = cJSON_CreateObject();
    if (!r) return qs_error(QS_ERR_NOMEM, "out of memory for JSON");
    cJSON_AddNumberToObject(r, "n_ahead", o->n_ahead);
    cJSON_AddNumberToObject(r, "n_thought", o->n_ahead - 3);
    cJSON_AddNumberToObject(r, "n_talk", o->n_talk);
    cJSON_AddNumberToObject(r, "n_passes", o->n_passes);
    cJSON_AddNumberToObject(r, "base_loss_weight", o->base_loss_weight);
    cJSON_AddNumberToObject(r, "policy_beta", o->policy_beta);
    cJSON_AddNumberToObject(r, "tau_sample", o->tau_sample);
    cJSON_AddNumberToObject(r, "tau_rl", o->tau_rl);
    cJSON_AddBoolToObject(r, "clamp_negative_rewards", o->clamp_negative_rewards != 0);
    cJSON_AddNumberToObject(r, "embedding_scale", o->embedding_scale);
    cJSON_AddStringToObject(r, "mixing", o->mixing == QS_MIX_SIGMOID ? "sigmoid" : "linear");
    cJSON_AddBoolToObject(r, "greedy_thoughts", o->greedy_thoughts != 0);
    cJSON_AddStringToObject(r, "thought_init", o->thought_init);
    if (o->thought_init_end[0]) cJSON_AddStringToObject(r, "thought_init_end", o->thought_init_end);
    // absent = the released mean baseline; ema_decay is kept whenever it is not
    // the default, so a run switched to the EMA baseline later still has it
    if (o->reward_baseline == QS_BASELINE_EMA) cJSON_AddStringToObject(r, "reward_baseline", "ema");
    if (o->reward_baseline == QS_BASELINE_EMA || o->ema_decay != 0.99f)
        cJSON_AddNumberToObject(r, "ema_decay", o->ema_decay);
    *json = cJSON_Print(r);
    cJSON_Delete(r);
    if (!*json) return qs_error(QS_ERR_NOMEM, "out of memory for JSON");
    return QS_OK;
}

qs_status qs_qstar_opts_from_json(const char *json, qs_qstar_opts *o) {
    if (!json) return QS_OK;
    cJSON *root = cJSON_Parse(json);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return qs_error(QS_ERR_FORMAT, "config.json quietstar: not a JSON object");
    }
    qs_status st = QS_OK;
    // is_int 2: a flag (true/false or 0/1), written back as a JSON boolean
    static const struct { const char *key; int is_int; size_t off; } num[] = {
        {"n_ahead", 1, offsetof(qs_qstar_opts, n_ahead)},
        {"n_talk", 1, offsetof(qs_qstar_opts, n_talk)},
        {"n_passes", 1, offsetof(qs_qstar_opts, n_passes)},
        {"clamp_negative_rewards", 2, offsetof(qs_qstar_opts, clamp_negative_rewards)},
        {"greedy_thoughts", 2, offsetof(qs_qstar_opts, greedy_thoughts)},
        {"base_loss_weight", 0, offsetof(qs_qstar_opts, base_loss_weight)},
        {"policy_beta", 0, offsetof(qs_qstar_opts, policy_beta)},
        {"tau_sample", 0, offsetof(qs_qstar_opts, tau_sample)},
        {"tau_rl", 0, offsetof(qs_qstar_opts, tau_rl)},
        {"embedding_scale", 0, offsetof(qs_qstar_opts, embedding_scale)},
        {"ema_decay", 0, offsetof(qs_qstar_opts, ema_decay)},
    };
    for (size_t k = 0; k < sizeof num / sizeof num[0] && st == QS_OK; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, num[k].key);
        if (!v) continue;
        double x;
        if (cJSON_IsNumber(v)) x = v->valuedouble;
        else if (cJSON_IsBool(v)) x = cJSON_IsTrue(v) ? 1 : 0;
        else { st = qs_error(QS_ERR_FORMAT, "quietstar.%s must be a number", num[k].key); break; }
        if (!isfinite(x)) { st = qs_error(QS_ERR_FORMAT, "quietstar.%s is not finite", num[k].key); break; }
        if (num[k].is_int == 2 && x != 0 && x != 1) {
            st = qs_error(QS_ERR_FORMAT, "quietstar.%s must be true or false", num[k].key);
            break;
        }
        if (!num[k].is_int && fabs(x) > FLT_MAX) { // would be written back as inf
            st = qs_error(QS_ERR_FORMAT, "quietstar.%s = %g is out of range", num[k].key, x);
            break;
        }
        if (num[k].is_int) {
            if (x != floor(x)) { st = qs_error(QS_ERR_FORMAT, "quietstar.%s must be an integer", num[k].key); break; }
            if (fabs(x) > 1e9) { st = qs_error(QS_ERR_FORMAT, "quietstar.%s = %g is out of range", num[k].key, x); break; }
            *(int *)((char *)o + num[k].off) = (int)x;
        } else {
            *(float *)((char *)o + num[k].off) = (float)x;
        }
    }
    const cJSON *mx = cJSON_GetObjectItemCaseSensitive(root, "mixing");
    if (st == QS_OK && mx) {
        if (cJSON_IsString(mx) && !strcmp(mx->valuestring, "linear")) o->mixing = QS_MIX_LINEAR;
        else if (cJSON_IsString(mx) && !strcmp(mx->valuestring, "sigmoid")) o->mixing = QS_MIX_SIGMOID;
        else st = qs_error(QS_ERR_FORMAT, "quietstar.mixing must be \"linear\" or \"sigmoid\"");
    }
    const cJSON *rb = cJSON_GetObjectItemCaseSensitive(root, "reward_baseline");
    if (st == QS_OK && rb) {
        if (cJSON_IsString(rb) && !strcmp(rb->valuestring, "mean")) o->reward_baseline = QS_BASELINE_MEAN;
        else if (cJSON_IsString(rb) && !strcmp(rb->valuestring, "ema")) o->reward_baseline = QS_BASELINE_EMA;
        else st = qs_error(QS_ERR_FORMAT, "quietstar.reward_baseline must be \"mean\" or \"ema\"");
    }
    const cJSON *ti = cJSON_GetObjectItemCaseSensitive(root, "thought_init");
    if (st == QS_OK && ti) {
        if (!cJSON_IsString(ti) || strlen(ti->valuestring) >= sizeof o->thought_init)
            st = qs_error(QS_ERR_FORMAT, "quietstar.thought_init must be a string of at most %zu bytes",
                          sizeof o->thought_init - 1);
        else
            snprintf(o->thought_init, sizeof o->thought_init, "%s", ti->valuestring);
    }
    const cJSON *te = cJSON_GetObjectItemCaseSensitive(root, "thought_init_end");
    if (st == QS_OK && te) {
        if (!cJSON_IsString(te) || strlen(te->valuestring) >= sizeof o->thought_init_end)
            st = qs_error(QS_ERR_FORMAT, "quietstar.thought_init_end must be a string of at most %zu bytes",
                          sizeof o->thought_init_end - 1);
        else
            snprintf(o->thought_init_end, sizeof o->thought_init_end, "%s", te->valuestring);
    }
    cJSON_Delete(root);
    if (st == QS_OK) st = qs_qstar_opts_validate(o, 0);
    if (st != QS_OK) return qs_error_prefix(st, "config.json quietstar");
    return QS_OK;
}

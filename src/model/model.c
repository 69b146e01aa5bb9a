// model.c: creation, random init and destruction of qs_model.
#include "model/model.h"
#include "core/rng.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct qs_shadow {
    qs_bf16 *data;      // numel bf16 values, the layout of params
    size_t numel;
    const float *src;   // the params buffer it was cast from
    uint64_t version;   // the model version it was cast at
    uint64_t gen;       // unique per cast (qs_mm.gen)
};

static pthread_mutex_t g_shadow_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t g_shadow_gen; // casts so far, of every model (under g_shadow_mu)

static void shadow_free(qs_shadow *s) {
    if (s->data) qs_gemm_forget(s->data, s->numel * sizeof(qs_bf16));
    free(s->data);
    s->data = NULL, s->numel = 0;
}

qs_status qs_model_create(qs_model *m, const qs_config *c, int with_quietstar) {
    memset(m, 0, sizeof *m);
    QS_TRY(qs_config_validate(c, "model config"));
    m->cfg = *c;
    qs_status st = qs_layout_build(&m->layout, c, with_quietstar);
    if (st != QS_OK) { qs_model_free(m); return st; }
    m->params = qs_calloc(m->layout.numel, sizeof(float), "model parameters");
    m->shadow = qs_calloc(1, sizeof *m->shadow, "model bf16 state");
    if (!m->params || !m->shadow) { qs_model_free(m); return QS_ERR_NOMEM; }
    st = qs_ptrs_bind(&m->w, c, &m->layout, m->params);
    if (st != QS_OK) { qs_model_free(m); return st; }
    m->has_quietstar = with_quietstar;
    return QS_OK;
}

void qs_model_init_random(qs_model *m, uint64_t seed) {
    qs_rng r;
    qs_rng_seed(&r, seed);
    for (int i = 0; i < m->layout.n; i++) {
        const qs_tensor_info *t = &m->layout.t[i];
        float *p = m->params + t->offset;
        int is_norm = strstr(t->name, "norm") != NULL || (strstr(t->name, ".ln_") && strstr(t->name, ".weight"));
        int is_bias = strstr(t->name, "bias") != NULL;
        for (size_t k = 0; k < t->numel; k++)
            p[k] = is_norm ? 1.0f : is_bias ? 0.0f : 0.02f * qs_rng_normal(&r);
    }
    qs_model_touch(m);
}

void qs_model_free(qs_model *m) {
    qs_ptrs_free(&m->w);
    qs_layout_free(&m->layout);
    free(m->params);
    free(m->src_config);
    if (m->shadow) {
        pthread_mutex_lock(&g_shadow_mu);
        shadow_free(m->shadow);
        pthread_mutex_unlock(&g_shadow_mu);
    }
    free(m->shadow);
    memset(m, 0, sizeof *m);
}

qs_status qs_model_add_quietstar(qs_model *m) {
    if (m->has_quietstar) return QS_OK;
    qs_model n;
    QS_TRY(qs_model_create(&n, &m->cfg, 1));
    for (int i = 0; i < m->layout.n; i++) {
        const qs_tensor_info *t = &m->layout.t[i];
        int j = qs_layout_find(&n.layout, t->name);
        memcpy(n.params + n.layout.t[j].offset, m->params + t->offset, t->numel * sizeof(float));
    }
    n.src_config = m->src_config, n.save_dtype = m->save_dtype, n.save_master = m->save_master;
    m->src_config = NULL;
    n.precision = m->precision;
    qs_model_free(m);
    *m = n;
    return QS_OK;
}

qs_status qs_model_mm(const qs_model *m, qs_mm *mm) {
    mm->prec = m->precision;
    mm->params = m->params;
    mm->numel = m->layout.numel;
    mm->params16 = NULL;
    mm->gen = 0;
    if (m->precision != QS_PREC_BF16) return QS_OK;
    qs_shadow *s = m->shadow;
    if (!s) return qs_error(QS_ERR_ARG, "bf16 precision: the model was not made by qs_model_create");
    qs_status st = QS_OK;
    pthread_mutex_lock(&g_shadow_mu);
    if (!s->data || s->numel != mm->numel || s->src != m->params || s->version != m->version) {
        if (s->numel != mm->numel || !s->data) {
            shadow_free(s);
            s->data = qs_malloc((mm->numel ? mm->numel : 1) * sizeof(qs_bf16), "bf16 copy of the weights");
        }
        if (s->data) {
            qs_bf16_from_f32(s->data, m->params, mm->numel); // the weights, cast once per change
            s->numel = mm->numel, s->src = m->params, s->version = m->version, s->gen = ++g_shadow_gen;
        } else {
            st = qs_error_prefix(QS_ERR_NOMEM, "bf16 precision");
        }
    }
    mm->params16 = s->data;
    mm->gen = s->data ? s->gen : 0;
    pthread_mutex_unlock(&g_shadow_mu);
    return st;
}

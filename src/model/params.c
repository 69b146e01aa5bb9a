// params.c: the parameter layout (named tensors in one flat buffer).
#include "model/params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

qs_status qs_layout_add(qs_layout *L, const char *name, int ndim, const int64_t *shape, int no_decay) {
    if (ndim < 1 || ndim > 4) return qs_error(QS_ERR_ARG, "tensor %s: bad ndim %d", name, ndim);
    if (strlen(name) >= QS_NAME_MAX) return qs_error(QS_ERR_ARG, "tensor name too long: %s", name);
    if (L->n == L->cap) {
        int cap = L->cap ? 2 * L->cap : 64;
        qs_tensor_info *t = realloc(L->t, (size_t)cap * sizeof *t);
        if (!t) return qs_error(QS_ERR_NOMEM, "out of memory growing the parameter table");
        L->t = t;
        L->cap = cap;
    }
    qs_tensor_info *t = &L->t[L->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->numel *= (size_t)shape[i];
    }
    // keep every tensor 16-float aligned inside the buffer (64 bytes)
    t->offset = (L->numel + 15) & ~(size_t)15;
    L->numel = t->offset + t->numel;
    t->no_decay = no_decay;
    return QS_OK;
}

int qs_layout_find(const qs_layout *L, const char *name) {
    for (int i = 0; i < L->n; i++)
        if (strcmp(L->t[i].name, name) == 0) return i;
    return -1;
}

void qs_layout_free(qs_layout *L) {
    free(L->t);
    memset(L, 0, sizeof *L);
}

#define ADD1(nm, a, nd) do { int64_t s_[1] = {a}; QS_TRY(qs_layout_add(L, nm, 1, s_, nd)); } while (0)
#define ADD2(nm, a, b, nd) do { int64_t s_[2] = {a, b}; QS_TRY(qs_layout_add(L, nm, 2, s_, nd)); } while (0)

qs_status qs_layout_build(qs_layout *L, const qs_config *c, int with_quietstar) {
    memset(L, 0, sizeof *L);
    const int H = c->dim, F = c->hidden_dim, V = c->vocab_size;
    const int q = c->n_heads * c->head_dim, kv = c->n_kv_heads * c->head_dim;
    char nm[QS_NAME_MAX];
    ADD2("model.embed_tokens.weight", V, H, 0);
    for (int l = 0; l < c->n_layers; l++) {
#define LN(s) (snprintf(nm, sizeof nm, "model.layers.%d.%s", l, s), nm)
        ADD1(LN("input_layernorm.weight"), H, 1);
        ADD2(LN("self_attn.q_proj.weight"), q, H, 0);
        ADD2(LN("self_attn.k_proj.weight"), kv, H, 0);
        ADD2(LN("self_attn.v_proj.weight"), kv, H, 0);
        if (c->qkv_bias) {
            ADD1(LN("self_attn.q_proj.bias"), q, 1);
            ADD1(LN("self_attn.k_proj.bias"), kv, 1);
            ADD1(LN("self_attn.v_proj.bias"), kv, 1);
        }
        ADD2(LN("self_attn.o_proj.weight"), H, q, 0);
        ADD1(LN("post_attention_layernorm.weight"), H, 1);
        ADD2(LN("mlp.gate_proj.weight"), F, H, 0);
        ADD2(LN("mlp.up_proj.weight"), F, H, 0);
        ADD2(LN("mlp.down_proj.weight"), H, F, 0);
#undef LN
    }
    ADD1("model.norm.weight", H, 1);
    if (!c->tied_embeddings) ADD2("lm_head.weight", V, H, 0);
    if (with_quietstar) {
        ADD2("start_embedding", 2, H, 1);
        ADD2("end_embedding", 2, H, 1);
        ADD2("talk_head.0.0.weight", H, 2 * H, 0);
        ADD1("talk_head.0.0.bias", H, 1);
        ADD2("talk_head.0.2.weight", H, H, 0);
        ADD1("talk_head.0.2.bias", H, 1);
        ADD2("talk_head.0.4.weight", 1, H, 0);
    }
    return QS_OK;
}

static float *at(const qs_layout *L, float *base, const char *name) {
    int i = qs_layout_find(L, name);
    return i < 0 ? NULL : base + L->t[i].offset;
}

qs_status qs_ptrs_bind(qs_ptrs *p, const qs_config *c, const qs_layout *L, float *base) {
    memset(p, 0, sizeof *p);
    p->layer = calloc((size_t)c->n_layers, sizeof *p->layer);
    if (!p->layer) return qs_error(QS_ERR_NOMEM, "out of memory binding parameters");
    char nm[QS_NAME_MAX];
    p->embed = at(L, base, "model.embed_tokens.weight");
    for (int l = 0; l < c->n_layers; l++) {
        qs_layer_ptrs *w = &p->layer[l];
#define LP(s) (snprintf(nm, sizeof nm, "model.layers.%d.%s", l, s), at(L, base, nm))
        w->attn_norm = LP("input_layernorm.weight");
        w->wq = LP("self_attn.q_proj.weight");
        w->wk = LP("self_attn.k_proj.weight");
        w->wv = LP("self_attn.v_proj.weight");
        w->bq = LP("self_attn.q_proj.bias");
        w->bk = LP("self_attn.k_proj.bias");
        w->bv = LP("self_attn.v_proj.bias");
        w->wo = LP("self_attn.o_proj.weight");
        w->mlp_norm = LP("post_attention_layernorm.weight");
        w->w_gate = LP("mlp.gate_proj.weight");
        w->w_up = LP("mlp.up_proj.weight");
        w->w_down = LP("mlp.down_proj.weight");
#undef LP
        if (!w->attn_norm || !w->wq || !w->wk || !w->wv || !w->wo || !w->mlp_norm || !w->w_gate ||
            !w->w_up || !w->w_down) {
            qs_ptrs_free(p);
            return qs_error(QS_ERR_FORMAT, "parameter layout lacks tensors of layer %d", l);
        }
    }
    p->final_norm = at(L, base, "model.norm.weight");
    p->lm_head = c->tied_embeddings ? p->embed : at(L, base, "lm_head.weight");
    if (!p->embed || !p->final_norm || !p->lm_head) {
        qs_ptrs_free(p);
        return qs_error(QS_ERR_FORMAT, "parameter layout lacks embedding, final norm or lm_head");
    }
    p->start_emb = at(L, base, "start_embedding");
    p->end_emb = at(L, base, "end_embedding");
    p->head_w1 = at(L, base, "talk_head.0.0.weight");
    p->head_b1 = at(L, base, "talk_head.0.0.bias");
    p->head_w2 = at(L, base, "talk_head.0.2.weight");
    p->head_b2 = at(L, base, "talk_head.0.2.bias");
    p->head_w3 = at(L, base, "talk_head.0.4.weight");
    return QS_OK;
}

void qs_ptrs_free(qs_ptrs *p) {
    free(p->layer);
    p->layer = NULL;
}

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

static qs_status add_quietstar(qs_layout *L, int H) {
    ADD2("start_embedding", 2, H, 1);
    ADD2("end_embedding", 2, H, 1);
    ADD2("talk_head.0.0.weight", H, 2 * H, 0);
    ADD1("talk_head.0.0.bias", H, 1);
    ADD2("talk_head.0.2.weight", H, H, 0);
    ADD1("talk_head.0.2.bias", H, 1);
    ADD2("talk_head.0.4.weight", 1, H, 0);
    return QS_OK;
}

// GPT2LMHeadModel, Hugging Face names and stored shapes (Conv1D: [in, out]).
static qs_status layout_gpt2(qs_layout *L, const qs_config *c, int with_quietstar) {
    const int H = c->dim, F = c->hidden_dim, V = c->vocab_size, P = c->max_seq_len;
    char nm[QS_NAME_MAX];
    ADD2("transformer.wte.weight", V, H, 0);
    ADD2("transformer.wpe.weight", P, H, 0);
    for (int l = 0; l < c->n_layers; l++) {
#define LN(s) (snprintf(nm, sizeof nm, "transformer.h.%d.%s", l, s), nm)
        ADD1(LN("ln_1.weight"), H, 1);
        ADD1(LN("ln_1.bias"), H, 1);
        ADD2(LN("attn.c_attn.weight"), H, 3 * H, 0);
        ADD1(LN("attn.c_attn.bias"), 3 * H, 1);
        ADD2(LN("attn.c_proj.weight"), H, H, 0);
        ADD1(LN("attn.c_proj.bias"), H, 1);
        ADD1(LN("ln_2.weight"), H, 1);
        ADD1(LN("ln_2.bias"), H, 1);
        ADD2(LN("mlp.c_fc.weight"), H, F, 0);
        ADD1(LN("mlp.c_fc.bias"), F, 1);
        ADD2(LN("mlp.c_proj.weight"), F, H, 0);
        ADD1(LN("mlp.c_proj.bias"), H, 1);
#undef LN
    }
    ADD1("transformer.ln_f.weight", H, 1);
    ADD1("transformer.ln_f.bias", H, 1);
    if (!c->tied_embeddings) ADD2("lm_head.weight", V, H, 0);
    return with_quietstar ? add_quietstar(L, H) : QS_OK;
}

qs_status qs_layout_build(qs_layout *L, const qs_config *c, int with_quietstar) {
    memset(L, 0, sizeof *L);
    if (c->arch == QS_ARCH_GPT2) return layout_gpt2(L, c, with_quietstar);
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
    if (with_quietstar) QS_TRY(add_quietstar(L, H));
    return QS_OK;
}

static float *at(const qs_layout *L, float *base, const char *name) {
    int i = qs_layout_find(L, name);
    return i < 0 ? NULL : base + L->t[i].offset;
}

static void bind_quietstar(qs_ptrs *p, const qs_layout *L, float *base) {
    p->start_emb = at(L, base, "start_embedding");
    p->end_emb = at(L, base, "end_embedding");
    p->head_w1 = at(L, base, "talk_head.0.0.weight");
    p->head_b1 = at(L, base, "talk_head.0.0.bias");
    p->head_w2 = at(L, base, "talk_head.0.2.weight");
    p->head_b2 = at(L, base, "talk_head.0.2.bias");
    p->head_w3 = at(L, base, "talk_head.0.4.weight");
}

static qs_status bind_gpt2(qs_ptrs *p, const qs_config *c, const qs_layout *L, float *base) {
    char nm[QS_NAME_MAX];
    p->embed = at(L, base, "transformer.wte.weight");
    p->wpe = at(L, base, "transformer.wpe.weight");
    for (int l = 0; l < c->n_layers; l++) {
        qs_layer_ptrs *w = &p->layer[l];
#define LP(s) (snprintf(nm, sizeof nm, "transformer.h.%d.%s", l, s), at(L, base, nm))
        w->attn_norm = LP("ln_1.weight");
        w->ln1_b = LP("ln_1.bias");
        w->c_attn_w = LP("attn.c_attn.weight");
        w->c_attn_b = LP("attn.c_attn.bias");
        w->c_proj_w = LP("attn.c_proj.weight");
        w->c_proj_b = LP("attn.c_proj.bias");
        w->mlp_norm = LP("ln_2.weight");
        w->ln2_b = LP("ln_2.bias");
        w->fc_w = LP("mlp.c_fc.weight");
        w->fc_b = LP("mlp.c_fc.bias");
        w->mproj_w = LP("mlp.c_proj.weight");
        w->mproj_b = LP("mlp.c_proj.bias");
#undef LP
        if (!w->attn_norm || !w->ln1_b || !w->c_attn_w || !w->c_attn_b || !w->c_proj_w || !w->c_proj_b ||
            !w->mlp_norm || !w->ln2_b || !w->fc_w || !w->fc_b || !w->mproj_w || !w->mproj_b)
            return qs_error(QS_ERR_FORMAT, "parameter layout lacks tensors of GPT-2 block %d", l);
    }
    p->final_norm = at(L, base, "transformer.ln_f.weight");
    p->final_norm_b = at(L, base, "transformer.ln_f.bias");
    p->lm_head = c->tied_embeddings ? p->embed : at(L, base, "lm_head.weight");
    if (!p->embed || !p->wpe || !p->final_norm || !p->final_norm_b || !p->lm_head)
        return qs_error(QS_ERR_FORMAT, "parameter layout lacks wte, wpe, ln_f or lm_head");
    bind_quietstar(p, L, base);
    return QS_OK;
}

qs_status qs_ptrs_bind(qs_ptrs *p, const qs_config *c, const qs_layout *L, float *base) {
    memset(p, 0, sizeof *p);
    p->layer = calloc((size_t)c->n_layers, sizeof *p->layer);
    if (!p->layer) return qs_error(QS_ERR_NOMEM, "out of memory binding parameters");
    if (c->arch == QS_ARCH_GPT2) {
        qs_status st = bind_gpt2(p, c, L, base);
        if (st != QS_OK) qs_ptrs_free(p);
        return st;
    }
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
    bind_quietstar(p, L, base);
    return QS_OK;
}

void qs_ptrs_free(qs_ptrs *p) {
    free(p->layer);
    p->layer = NULL;
}

int qs_layout_find_hf(const qs_layout *L, const qs_config *c, const char *name) {
    int k = qs_layout_find(L, name);
    if (k >= 0 || c->arch != QS_ARCH_GPT2 || strncmp(name, "transformer.", 12) == 0) return k;
    if (strncmp(name, "h.", 2) && strncmp(name, "wte.", 4) && strncmp(name, "wpe.", 4) && strncmp(name, "ln_f.", 5))
        return -1;
    char nm[QS_NAME_MAX];
    if (snprintf(nm, sizeof nm, "transformer.%s", name) >= (int)sizeof nm) return -1;
    return qs_layout_find(L, nm);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

int qs_layout_ignored_hf(const qs_config *c, const char *name) {
    return c->arch == QS_ARCH_GPT2 && (ends_with(name, ".attn.bias") || ends_with(name, ".attn.masked_bias"));
}

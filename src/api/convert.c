// convert.c: public API: model conversion (`qstar convert`): a model in any
// format into a qstar model directory, optionally with fresh Quiet-STaR
// tensors; and the thought_init rule for callers (qstar_thought_init_token).
#include "api/api.h"
#include "io/fileutil.h"
#include "api/options.h"
#include "io/outpath.h"
#include "quietstar/evaltask.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

QSTAR_API int qstar_thought_init_token(const qstar_model *m, const char *text) {
    return m ? qs_thought_init_id(m->tok, text) : -1;
}

QSTAR_API qstar_convert_params qstar_convert_params_default(void) {
    qstar_convert_params p;
    memset(&p, 0, sizeof p);
    p.seed = 1;
    return p;
}

// The tokenizer to copy: the one given, else DIR/tokenizer.json of a model
// directory, else the one found beside the model. Opened against the model's
// vocabulary (so a bad one is refused before anything is written).
static qs_status open_tokenizer(const qstar_convert_params *p, const qs_load_info *info, int vocab, char *path,
                                size_t cap, qs_tokenizer **tok) {
    snprintf(path, cap, "%s", p->tokenizer_path ? p->tokenizer_path : "");
    if (!path[0]) {
        snprintf(path, cap, "%s/tokenizer.json", p->model_path);
        if (access(path, R_OK) != 0) snprintf(path, cap, "%s", info->tokenizer_path);
    }
    if (!path[0]) return qs_error(QS_ERR_IO, "%s has no tokenizer.json or tokenizer.bin; pass --tokenizer FILE", p->model_path);
    return qs_tokenizer_open(tok, path, vocab);
}

// Quiet-STaR tensors and settings: a checkpoint's own settings when none are
// given, else the defaults with the given ones; tensors present are kept.
static qs_status add_quietstar(const qstar_convert_params *p, qs_model *m, const qs_load_info *info,
                               const qs_tokenizer *tok, char **qs_json, qstar_convert_result *r) {
    qs_qstar_opts qo;
    qs_qstar_opts_default(&qo);
    if (info->quietstar_json && !p->thought) {
        qs_qstar_opts base;
        qs_qstar_opts_default(&base);
        if (qs_qstar_opts_from_json(info->quietstar_json, &base) == QS_OK) qo = base;
    }
    if (p->thought) qo_apply_thought(p->thought->v, &qo);
    const int init_id = qs_thought_init_id(tok, qo.thought_init); // the library's one rule
    QS_TRY(qs_qstar_opts_validate(&qo, 0));
    QS_TRY(qs_qstar_init_tensors(m, &qo, init_id, m->has_quietstar ? info->qs_present : 0, p->seed));
    QS_TRY(qs_qstar_opts_to_json(&qo, qs_json));
    if (p->talk_head_std > 0 && !(m->has_quietstar && (info->qs_present & 4))) {
        qs_rng g;
        qs_rng_seed(&g, p->seed ^ 0x5eedull);
        for (int c = 0; c < m->cfg.dim; c++) m->w.head_w3[c] = p->talk_head_std * qs_rng_normal(&g);
    }
    r->added_quietstar = 1, r->n_ahead = qo.n_ahead, r->thought_init_id = init_id;
    return QS_OK;
}

// Written beside DIR, then swapped in whole: an old DIR is replaced completely or not at all.
static qs_status write_dir(const qstar_convert_params *p, const qs_model *m, const char *tok_path, const char *qs_json) {
    char fresh[4300];
    snprintf(fresh, sizeof fresh, "%.4096s.tmp-convert", p->out_dir);
    qs_status st = qs_remove_tree(fresh);
    if (st == QS_OK) st = qs_model_save_dir(m, fresh, tok_path, qs_json);
    if (st == QS_OK) st = qs_dir_replace(fresh, p->out_dir);
    if (st != QS_OK) qs_remove_tree(fresh); // best effort: DIR itself is untouched
    return st;
}

QSTAR_API qs_status qstar_convert(const qstar_convert_params *p, qstar_convert_result *out) {
    if (!p || !out) return qs_error(QS_ERR_ARG, "qstar_convert: NULL argument");
    memset(out, 0, sizeof *out);
    out->thought_init_id = -1;
    if (!p->model_path) return qs_error(QS_ERR_ARG, "--model is required");
    if (!p->out_dir || !*p->out_dir) return qs_error(QS_ERR_ARG, "--out is required");
    if ((p->thought || p->talk_head_std > 0) && !p->add_quietstar)
        return qs_error(QS_ERR_ARG, "Quiet-STaR options need --add-quietstar");
    if (!(p->talk_head_std >= 0 && p->talk_head_std <= 1e3))
        return qs_error(QS_ERR_ARG, "--talk-head-std expects a number in [0, 1000], got %g", (double)p->talk_head_std);
    const int dtype = p->dtype ? qs_save_dtype_parse(p->dtype) : 0;
    if (dtype < 0) return qs_error(QS_ERR_ARG, "--dtype expects bf16, f16 or f32, got '%s'", p->dtype);
    QS_TRY(qs_out_check(p->out_dir, QS_OUT_MODEL_DIR, p->force));
    qs_model m;
    qs_load_info info;
    qs_status st = qs_model_load(&m, p->model_path, &info);
    if (st != QS_OK) return st == QS_ERR_ARG ? QS_ERR_FORMAT : st; // QS_ERR_ARG: the settings given alone
    m.save_master = 0; // the 16-bit weights are the export: no fp32 master copy beside them
    if (p->dtype) m.save_dtype = dtype;
    char tok_path[4200];
    qs_tokenizer *tok = NULL;
    char *qs_json = NULL;
    st = open_tokenizer(p, &info, m.cfg.vocab_size, tok_path, sizeof tok_path, &tok);
    if (st == QS_OK && p->add_quietstar) st = add_quietstar(p, &m, &info, tok, &qs_json, out);
    if (st == QS_ERR_ARG) st = QS_ERR_FORMAT;
    if (st == QS_OK) st = write_dir(p, &m, tok_path, qs_json ? qs_json : info.quietstar_json);
    if (st == QS_OK) {
        out->n_layers = m.cfg.n_layers, out->dim = m.cfg.dim, out->vocab_size = m.cfg.vocab_size;
        out->n_params = m.layout.numel;
    }
    free(qs_json);
    qs_tokenizer_free(tok);
    qs_load_info_free(&info);
    qs_model_free(&m);
    return st;
}

// cmd_dumpstep.c: `qstar dump-step`: one Quiet-STaR step on a given batch with
// given thought tokens; writes losses, rewards, advantages, mixing weights and
// every parameter gradient as safetensors (DESIGN.md, "Interfaces other tools
// depend on"), so any independent implementation can be checked against it.
#include "cli_internal.h"
#include "io/model_io.h"
#include "io/outpath.h"
#include "io/safetensors.h"
#include "quietstar/qstar.h"
#include "tokenizer/tokenizer.h"

static void help(void) {
    printf("usage: qstar dump-step --model MODEL_DIR --batch IN.safetensors --out OUT.safetensors [options]\n\n"
           "IN: input_ids [B,T] (I32/I64), optional attention_mask [B,T], optional thought_ids\n"
           "    [B*n_passes, n_ahead-3, T] (sampled with --seed when absent).\n"
           "OUT (F32): loss, loss_lm, loss_base, policy_loss [1], loss_talk [n_talk], reward and\n"
           "    advantage [B*n_passes, T-1-n_talk], mix_weight [n_talk, B*n_passes, T],\n"
           "    thought_ids (I32), grad.<name> for every trainable tensor.\n\n"
           "  --force                replace an existing OUT (refused otherwise)\n"
           "  --seed S               seed for sampling thoughts when the batch has none (1)\n"
           "  --thought-init-id N    init token for absent start/end embeddings (default: first\n"
           "                         token of --thought-init via the model's tokenizer, else mean row)\n\n%s",
           cli_qstar_help);
}

static qs_status read_ints(const qs_safetensors *st, const char *name, int required, int ndim, int64_t *shape,
                           int **out) {
    *out = NULL;
    const qs_st_tensor *t = qs_st_find(st, name);
    if (!t) return required ? qs_error(QS_ERR_FORMAT, "%s: no tensor '%s'", st->path, name) : QS_OK;
    if (t->ndim != ndim) return qs_error(QS_ERR_FORMAT, "%s: '%s' has %d dims, expected %d", st->path, name, t->ndim, ndim);
    for (int k = 0; k < ndim; k++) {
        if (shape[k] >= 0 && t->shape[k] != shape[k])
            return qs_error(QS_ERR_FORMAT, "%s: '%s' dim %d is %lld, expected %lld", st->path, name, k,
                            (long long)t->shape[k], (long long)shape[k]);
        shape[k] = t->shape[k];
    }
    *out = malloc((t->numel ? t->numel : 1) * sizeof(int));
    if (!*out) return qs_error(QS_ERR_NOMEM, "out of memory reading %s", name);
    return qs_st_read_i32(st, t, *out);
}

int cmd_dump_step(int argc, char **argv) {
    const char *model_path = NULL, *batch_path = NULL, *out_path = NULL;
    long seed = 1, init_id = -2;
    qs_qstar_opts o;
    qs_qstar_opts_default(&o);
    int force = 0;
    for (int i = 1; i < argc; i++) {
        int r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { help(); return 0; }
        if (!strcmp(argv[i], "--force")) { force = 1; continue; }
        if ((r = cli_str(argc, argv, &i, "--model", &model_path)) ||
            (r = cli_str(argc, argv, &i, "--batch", &batch_path)) ||
            (r = cli_str(argc, argv, &i, "--out", &out_path)) ||
            (r = cli_int(argc, argv, &i, "--seed", &seed, 0, 0x7fffffffffffffffL)) ||
            (r = cli_int(argc, argv, &i, "--thought-init-id", &init_id, -1, 1 << 24)) ||
            (r = cli_qstar_flag(argc, argv, &i, &o))) {
            if (r < 0) return 2;
            continue;
        }
        return cli_usage_error("dump-step", "unknown option '%s'", argv[i]);
    }
    if (!model_path || !batch_path || !out_path)
        return cli_usage_error("dump-step", "--model, --batch and --out are required");
    if (qs_out_check(out_path, QS_OUT_FILE, force) != QS_OK) return cli_fail("dump-step"); // before any work

    qs_model m;
    qs_load_info info = {0};
    if (qs_model_load(&m, model_path, &info) != QS_OK) return cli_fail("dump-step");
    int rc = 1;
    qs_safetensors st = {0};
    int *ids = NULL, *mask = NULL, *thoughts = NULL;
    float *grads = NULL, *valid = NULL;
    qs_qstar *q = NULL;
    qs_st_writer w = {0};
    if (info.qs_present != 7) {
        int id = (int)init_id;
        if (id == -2) { // from the tokenizer beside the model, else the mean row
            id = -1;
            qs_tokenizer *tok;
            if (info.tokenizer_path[0] && qs_tokenizer_open(&tok, info.tokenizer_path, m.cfg.vocab_size) == QS_OK) {
                id = qs_thought_init_id(tok, o.thought_init); // the library's one rule
                qs_tokenizer_free(tok);
            }
        }
        if (qs_qstar_init_tensors(&m, &o, id, info.qs_present, 0x5eed) != QS_OK) goto done;
    }
    if (qs_st_open(&st, batch_path) != QS_OK) goto done;
    int64_t s2[2] = {-1, -1};
    if (read_ints(&st, "input_ids", 1, 2, s2, &ids) != QS_OK) goto done;
    const int B = (int)s2[0], T = (int)s2[1], R = B * o.n_passes, nT = o.n_ahead - 3;
    int64_t sm[2] = {B, T}, s3[3] = {R, nT, T};
    if (read_ints(&st, "attention_mask", 0, 2, sm, &mask) != QS_OK) goto done;
    if (nT > 0 && read_ints(&st, "thought_ids", 0, 3, s3, &thoughts) != QS_OK) goto done;
    if (qs_qstar_create(&q, &m, &o, B, T) != QS_OK) goto done;
    grads = calloc(m.layout.numel, sizeof(float));
    if (!grads) { qs_error(QS_ERR_NOMEM, "out of memory for gradients"); goto done; }
    qs_rng rng;
    qs_rng_seed(&rng, (uint64_t)seed);
    qs_qstar_out res;
    if (qs_qstar_step(q, &m, ids, mask, thoughts, &rng, grads, 1.0f, &res) != QS_OK) goto done;

    float scal[4] = {res.loss, res.loss_lm, res.loss_base, res.policy_loss};
    int64_t one[1] = {1}, ntalk[1] = {o.n_talk}, rs[2] = {R, T - 1 - o.n_talk}, mw[3] = {o.n_talk, R, T};
    qs_status s = QS_OK;
    s = s ? s : qs_st_writer_add(&w, "loss", QS_DT_F32, 1, one, &scal[0]);
    s = s ? s : qs_st_writer_add(&w, "loss_lm", QS_DT_F32, 1, one, &scal[1]);
    s = s ? s : qs_st_writer_add(&w, "loss_base", QS_DT_F32, 1, one, &scal[2]);
    s = s ? s : qs_st_writer_add(&w, "policy_loss", QS_DT_F32, 1, one, &scal[3]);
    s = s ? s : qs_st_writer_add(&w, "loss_talk", QS_DT_F32, 1, ntalk, res.loss_talk);
    s = s ? s : qs_st_writer_add(&w, "reward", QS_DT_F32, 2, rs, res.reward);
    s = s ? s : qs_st_writer_add(&w, "advantage", QS_DT_F32, 2, rs, res.advantage);
    s = s ? s : qs_st_writer_add(&w, "mix_weight", QS_DT_F32, 3, mw, res.mix_weight);
    if (nT > 0) s = s ? s : qs_st_writer_add(&w, "thought_ids", QS_DT_I32, 3, s3, res.thoughts);
    // mix_weight_valid: 1 where talk k at (r,i) has a real target x[r,i+k+1]
    valid = malloc(sizeof(float) * o.n_talk * R * T);
    if (!valid) { s = qs_error(QS_ERR_NOMEM, "out of memory"); goto done; }
    for (int k = 0; k < o.n_talk; k++)
        for (int r = 0; r < R; r++)
            for (int i = 0; i < T; i++) {
                const int *mr = mask ? mask + (r / o.n_passes) * T : NULL;
                int j = i + k + 1;
                valid[((size_t)k * R + r) * T + i] = j < T && (!mr || (mr[i] && mr[j])) ? 1.0f : 0.0f;
            }
    s = s ? s : qs_st_writer_add(&w, "mix_weight_valid", QS_DT_F32, 3, mw, valid);
    char names[256][QS_NAME_MAX + 8];
    for (int k = 0; k < m.layout.n && k < 256 && s == QS_OK; k++) {
        const qs_tensor_info *t = &m.layout.t[k];
        snprintf(names[k], sizeof names[k], "grad.%s", t->name);
        s = qs_st_writer_add(&w, names[k], QS_DT_F32, t->ndim, t->shape, grads + t->offset);
    }
    if (m.layout.n > 256) s = qs_error(QS_ERR_UNSUPPORTED, "more than 256 tensors");
    if (s == QS_OK) s = qs_st_writer_write(&w, out_path);
    if (s != QS_OK) goto done;
    fprintf(stderr, "loss %.6f  loss_lm %.6f  loss_base %.6f  policy_loss %.6g  (n_ahead %d, n_thought %d, n_talk %d, n_passes %d)\n",
            res.loss, res.loss_lm, res.loss_base, res.policy_loss, o.n_ahead, nT, o.n_talk, o.n_passes);
    rc = 0;
done:
    if (rc) cli_fail("dump-step");
    qs_st_writer_free(&w);
    qs_qstar_free(q);
    free(grads), free(valid), free(ids), free(mask), free(thoughts);
    qs_st_close(&st);
    qs_load_info_free(&info);
    qs_model_free(&m);
    return rc;
}

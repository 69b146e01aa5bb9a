// cmd_dumpstep.c: `qstar dump-step`: one Quiet-STaR step on a given batch with
// given thought tokens; writes losses, rewards, advantages, mixing weights and
// every parameter gradient as safetensors (DESIGN.md, "Interfaces other tools
// depend on"). Flag parsing and printing over the public API (qstar_dump_step).
#include "cli.h"

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
           "                         token of --thought-init via the model's tokenizer, else mean row)\n\n"
           "Quiet-STaR options (defaults: the released code's, see docs/algorithm.md):\n%s",
           qstar_thought_options_help());
}

// Flags into p; 0, or the exit code after printing the error.
static int parse(int argc, char **argv, qstar_dump_step_params *p) {
    const char *C = "dump-step";
    long seed = 1, init_id = -2;
    for (int i = 1; i < argc; i++) {
        int r;
        if (!strcmp(argv[i], "--force")) { p->force = 1; continue; }
        if ((r = cli_str(argc, argv, &i, "--model", &p->model_path)) ||
            (r = cli_str(argc, argv, &i, "--batch", &p->batch_path)) ||
            (r = cli_str(argc, argv, &i, "--out", &p->out_path)) ||
            (r = cli_int(argc, argv, &i, "--seed", &seed, 0, 0x7fffffffffffffffL)) ||
            (r = cli_int(argc, argv, &i, "--thought-init-id", &init_id, -1, 1 << 24))) {
            if (r < 0) return 2;
            continue;
        }
        if (cli_thought_flag(C, argc, argv, &i, &p->thought)) return 2; // the library's table
    }
    p->seed = (uint64_t)seed;
    p->thought_init_id = (int)init_id;
    return 0;
}

int cmd_dump_step(int argc, char **argv) {
    const char *C = "dump-step";
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            help();
            return 0;
        }
    qstar_dump_step_params p = qstar_dump_step_params_default();
    int rc = parse(argc, argv, &p);
    qstar_dump_step_result r;
    qs_status st = rc ? QS_OK : qstar_dump_step(&p, &r);
    qstar_train_options_free(p.thought);
    if (rc) return rc;
    if (st != QS_OK) return st == QS_ERR_ARG ? cli_usage_error(C, "%s", qstar_last_error()) : cli_fail(C);
    fprintf(stderr, "loss %.6f  loss_lm %.6f  loss_base %.6f  policy_loss %.6g  (n_ahead %d, n_thought %d, n_talk %d, n_passes %d)\n",
            r.loss, r.loss_lm, r.loss_base, r.policy_loss, r.n_ahead, r.n_thought, r.n_talk, r.n_passes);
    return 0;
}

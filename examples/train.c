// train.c: train with libqstar: a few Quiet-STaR (or plain LM) steps, the
// held-out NLL before and after, and a checkpoint that `qstar generate` and
// `qstar train --resume` read.
//   cc train.c $(pkg-config --cflags --libs qstar) -o train
//   ./train MODEL TOKENIZER DATA OUT_DIR [STEPS] [--plain]
#include <qstar.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int on_progress(void *user, const qstar_progress *p) {
    (void)user;
    if (p->kind == QSTAR_EV_STEP)
        fprintf(stderr, "step %ld/%ld  loss %.4f  lr %.2e  grad norm %.3f\n", p->step, p->total, (double)p->loss,
                (double)p->lr, (double)p->grad_norm);
    return 0; // nonzero would stop the run
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s MODEL TOKENIZER DATA OUT_DIR [STEPS] [--plain]\n", argv[0]);
        return 2;
    }
    qstar_train_params p = qstar_train_params_default(); // -1 fields: the CLI's defaults
    p.quietstar = !(argc > 6 && !strcmp(argv[6], "--plain"));
    p.model_path = argv[1], p.tokenizer_path = argv[2], p.data_path = argv[3], p.out_dir = argv[4];
    p.steps = argc > 5 ? atol(argv[5]) : 10;
    p.batch = 2, p.seq_len = 64, p.eval_batches = 2;
    p.progress = on_progress;
    // any other `qstar train` / `qstar finetune` flag by name (the library's options table)
    if (qstar_train_params_set(&p, "grad-accum", "1") != QS_OK) {
        fprintf(stderr, "train: %s\n", qstar_last_error());
        return 2;
    }
    qstar_trainer *t;
    qs_status cst = qstar_trainer_create(&p, &t);
    qstar_train_params_free(&p); // the trainer keeps its own copy
    if (cst != QS_OK) {
        fprintf(stderr, "train: %s\n", qstar_last_error());
        return 1;
    }
    double before, after, think_before, think_after;
    qs_status st = qstar_trainer_eval(t, &before, &think_before);
    while (st == QS_OK && qstar_trainer_steps_done(t) < p.steps) st = qstar_trainer_step(t, NULL);
    if (st == QS_OK) st = qstar_trainer_eval(t, &after, &think_after);
    char ckpt[4096];
    if (st == QS_OK) st = qstar_trainer_save(t, NULL, ckpt, sizeof ckpt);
    if (st != QS_OK) {
        fprintf(stderr, "train: %s\n", qstar_last_error());
        qstar_trainer_free(t);
        return 1;
    }
    printf("held-out NLL: %.4f -> %.4f", before, after);
    if (p.quietstar) printf(" (with thoughts %.4f -> %.4f)", think_before, think_after);
    printf("\ncheckpoint: %s\n", ckpt);
    qstar_trainer_free(t);
    return 0;
}

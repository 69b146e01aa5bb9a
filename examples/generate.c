// generate.c: the smallest libqstar program: continue a prompt, with a
// thought before every token when the model is a Quiet-STaR checkpoint.
//   cc generate.c $(pkg-config --cflags --libs qstar) -o generate
//   ./generate MODEL [TOKENIZER] [--prompt TEXT] [--max-tokens N]
//              [--temperature X] [--seed S] [--think|--no-think] [--show-thoughts]
// Prints the same text as `qstar generate` with the same settings.
#include <qstar.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int show_thoughts = 0;

static int on_token(void *user, const qstar_token *t) {
    (void)user;
    if (show_thoughts && t->n_thought > 0) printf("[%s]", t->thought_text);
    fputs(t->text, stdout);
    fflush(stdout);
    return 0; // keep going
}

int main(int argc, char **argv) {
    qstar_model_params mp = qstar_model_params_default();
    qstar_gen_params gp = qstar_gen_params_default();
    const char *model = NULL, *prompt = "";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--prompt") && v) prompt = v, i++;
        else if (!strcmp(a, "--max-tokens") && v) gp.max_tokens = atoi(v), i++;
        else if (!strcmp(a, "--temperature") && v) gp.temperature = (float)atof(v), i++;
        else if (!strcmp(a, "--seed") && v) gp.seed = strtoull(v, NULL, 10), i++;
        else if (!strcmp(a, "--think")) gp.think = 1;
        else if (!strcmp(a, "--no-think")) gp.think = 0;
        else if (!strcmp(a, "--show-thoughts")) show_thoughts = 1;
        else if (!model) model = a;
        else mp.tokenizer_path = a;
    }
    if (!model) {
        fprintf(stderr, "usage: %s MODEL [TOKENIZER] [--prompt TEXT] [--max-tokens N] ...\n", argv[0]);
        return 2;
    }
    qstar_model *m;
    if (qstar_model_load(model, &mp, &m) != QS_OK) {
        fprintf(stderr, "generate: %s\n", qstar_last_error());
        return 1;
    }
    qs_status st = qstar_generate(m, prompt, &gp, on_token, NULL);
    printf("\n");
    if (st != QS_OK) fprintf(stderr, "generate: %s\n", qstar_last_error());
    qstar_model_free(m);
    return st == QS_OK ? 0 : 1;
}

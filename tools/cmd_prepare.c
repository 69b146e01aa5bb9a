// cmd_prepare.c: `qstar prepare`: text / JSONL corpora -> a token directory
// (src/data/shards.h) that `qstar train` / `finetune` read by mmap.
#include "cli.h"

#include <limits.h>

static void help(void) {
    printf("usage: qstar prepare --tokenizer FILE --data FILE [--data FILE...] --out DIR [options]\n"
           "\n"
           "Tokenizes the corpora once, streaming (memory stays bounded whatever their size) and\n"
           "in parallel, into DIR: tokens.bin (uint16 ids, uint32 for vocabularies over 65536),\n"
           "docs.idx (where each document starts) and meta.json. Documents are read exactly as\n"
           "train/finetune read a text or JSONL file (blank-line separated text, or --field of\n"
           "JSONL), so `qstar train --data DIR` draws the same batches as `--data FILE` with the\n"
           "same seed. The last documents (--val-frac) are held out.\n"
           "\n"
           "  --tokenizer FILE   tokenizer.bin / tok512.bin / tokenizer.json (any supported one)\n"
           "  --data FILE        input file (repeat for several; concatenated in order)\n"
           "  --out DIR          output directory (created; must not hold a prepared corpus)\n"
           "  --field NAME       JSONL field holding the text (text)\n"
           "  --val-frac F       fraction of documents held out (0.05)\n"
           "  --threads N        encoder threads (all cores)\n");
}

typedef struct {
    int tty;
    const char *const *inputs;
} prog;

static void progress(void *ud, const qstar_prepare_progress *pr) {
    const prog *p = ud;
    const uint64_t docs = pr->docs, tokens = pr->tokens;
    const double secs = pr->seconds;
    const int file = pr->file, n_files = pr->n_files;
    const double tps = secs > 0 ? (double)tokens / secs : 0;
    if (file < n_files)
        fprintf(stderr, "%sprepare: %s (file %d of %d): %llu documents, %llu tokens, %.2fM tok/s%s",
                p->tty ? "\r\033[K" : "", p->inputs[file], file + 1, n_files, (unsigned long long)docs,
                (unsigned long long)tokens, tps / 1e6, p->tty ? "" : "\n");
    else
        fprintf(stderr, "%sprepare: %llu documents, %llu tokens in %.1f s (%.2fM tok/s)\n", p->tty ? "\r\033[K" : "",
                (unsigned long long)docs, (unsigned long long)tokens, secs, tps / 1e6);
}

int cmd_prepare(int argc, char **argv) {
    const char *tok_path = NULL, *out = NULL, *field = NULL;
    const char **inputs = calloc((size_t)argc + 1, sizeof *inputs);
    if (!inputs) return cli_fail("prepare");
    int n_inputs = 0, rc = 2;
    double val_frac = 0.05;
    long threads = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            help();
            free(inputs);
            return 0;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *d = NULL;
        int r = cli_str(argc, argv, &i, "--data", &d);
        if (r > 0) inputs[n_inputs++] = d;
        if (r == 0) r = cli_str(argc, argv, &i, "--tokenizer", &tok_path);
        if (r == 0) r = cli_str(argc, argv, &i, "--out", &out);
        if (r == 0) r = cli_str(argc, argv, &i, "--field", &field);
        if (r == 0) r = cli_float(argc, argv, &i, "--val-frac", &val_frac, 0, 0.999999);
        if (r == 0) r = cli_int(argc, argv, &i, "--threads", &threads, 1, 4096);
        if (r < 0) goto done;
        if (r == 0) {
            rc = cli_usage_error("prepare", "unknown argument '%s'", argv[i]);
            goto done;
        }
    }
    if (!tok_path || !out || n_inputs == 0) {
        rc = cli_usage_error("prepare", "--tokenizer FILE, --data FILE and --out DIR are required");
        goto done;
    }
    rc = 1;
    prog p = {cli_is_tty(), inputs};
    qstar_prepare_params pp = qstar_prepare_params_default();
    pp.tokenizer_path = tok_path, pp.inputs = inputs, pp.n_inputs = n_inputs, pp.out_dir = out, pp.field = field;
    pp.val_frac = val_frac, pp.n_threads = (int)threads;
    qstar_prepare_result m;
    if (qstar_prepare(&pp, progress, &p, &m) != QS_OK) {
        cli_fail("prepare");
    } else {
        printf("%s: %llu documents, %llu tokens (%s); training %llu documents / %llu tokens, held out %llu / %llu\n",
               out, (unsigned long long)m.n_docs, (unsigned long long)m.n_tokens, m.width == 2 ? "uint16" : "uint32",
               (unsigned long long)m.train_docs, (unsigned long long)m.train_tokens,
               (unsigned long long)(m.n_docs - m.train_docs), (unsigned long long)(m.n_tokens - m.train_tokens));
        rc = 0;
    }
done:
    free(inputs);
    return rc;
}

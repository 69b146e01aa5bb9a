// cmd_tokenize.c: `qstar tokenize --tokenizer FILE_OR_DIR (--text TEXT |
// --file FILE) [--special] [--decode]`: prints the token ids of the text on
// one line, separated by spaces (with the BOS/EOS the tokenizer's
// configuration adds when --special is given); with --decode the input holds
// ids (separated by whitespace) and the decoded text is printed.
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: qstar tokenize --tokenizer FILE_OR_DIR (--text TEXT | --file FILE) [--special] [--decode]\n\n"
            "  --tokenizer PATH   tokenizer.json, tokenizer.model, llama2.c .bin, .gguf, or a model directory\n"
            "  --text TEXT        the text to encode (or the ids to decode)\n"
            "  --file FILE        read it from FILE instead (\"-\" = stdin)\n"
            "  --special          add BOS/EOS as tokenizer_config.json (or the file) says\n"
            "  --decode           the input is token ids; print their text\n");
}

static char *read_input(const char *C, const char *path) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        fprintf(stderr, "qstar %s: cannot open %s: %s\n", C, path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *b = realloc(buf, cap * 2 + 1);
        if (!b) { free(buf); buf = NULL; break; }
        buf = b;
        cap *= 2;
    }
    int err = ferror(f);
    if (f != stdin) fclose(f);
    if (!buf || err) {
        fprintf(stderr, "qstar %s: error reading %s\n", C, path);
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    if (memchr(buf, 0, n)) {
        fprintf(stderr, "qstar %s: %s: contains a NUL byte at offset %zu\n", C, path, (size_t)((char *)memchr(buf, 0, n) - buf));
        free(buf);
        return NULL;
    }
    return buf;
}

static int decode_ids(const char *C, const qs_tokenizer *tok, const char *in) {
    qs_tok_stream st;
    qs_tok_stream_init(&st, tok);
    char out[4096];
    size_t n = 0;
    long count = 0;
    for (const char *p = in;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ',') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v >= qs_tokenizer_vocab_size(tok)) {
            fprintf(stderr, "qstar %s: --decode: item %ld (\"%.20s\") is not a token id in [0, %d)\n", C, count, p,
                    qs_tokenizer_vocab_size(tok));
            return 1;
        }
        p = end;
        count++;
        if (qs_tok_stream_push(&st, (int)v, out, sizeof out, &n) != QS_OK) return cli_fail(C);
        fwrite(out, 1, n, stdout);
    }
    if (qs_tok_stream_flush(&st, out, sizeof out, &n) != QS_OK) return cli_fail(C);
    fwrite(out, 1, n, stdout);
    fputc('\n', stdout);
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    const char *C = "tokenize";
    const char *tok_path = NULL, *text = NULL, *file = NULL;
    int special = 0, decode = 0;
    for (int i = 1; i < argc; i++) {
        int r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
        if (!strcmp(argv[i], "--special")) { special = 1; continue; }
        if (!strcmp(argv[i], "--decode")) { decode = 1; continue; }
        if ((r = cli_str(argc, argv, &i, "--tokenizer", &tok_path)) || (r = cli_str(argc, argv, &i, "--text", &text)) ||
            (r = cli_str(argc, argv, &i, "--file", &file))) {
            if (r < 0) return 2;
            continue;
        }
        return cli_usage_error(C, "unknown argument '%s'", argv[i]);
    }
    if (!tok_path) return cli_usage_error(C, "--tokenizer FILE_OR_DIR is required");
    if (!text == !file) return cli_usage_error(C, "give exactly one of --text TEXT and --file FILE");
    char *buf = NULL;
    if (file && !(text = buf = read_input(C, file))) return 1;
    qs_tokenizer *tok = NULL;
    if (qs_tokenizer_open(&tok, tok_path, 0) != QS_OK) { free(buf); return cli_fail(C); }
    int rc = 0;
    if (decode) {
        rc = decode_ids(C, tok, text);
    } else {
        int *ids = NULL, n = 0;
        if (qs_tokenizer_encode_alloc(tok, text, special && qs_tokenizer_add_bos(tok), special && qs_tokenizer_add_eos(tok),
                                      &ids, &n) != QS_OK) {
            fprintf(stderr, "qstar %s: %s: %s\n", C, file ? file : "--text", qstar_last_error());
            rc = 1;
        } else {
            for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
            printf("\n");
        }
        free(ids);
    }
    qs_tokenizer_free(tok);
    free(buf);
    return rc;
}

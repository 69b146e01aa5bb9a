// cmd_tokenize.c: `qstar tokenize --tokenizer FILE_OR_DIR (--text TEXT |
// --file FILE) [--special] [--decode]`: prints the token ids of the text on
// one line, separated by spaces (with the BOS/EOS the tokenizer's
// configuration adds when --special is given); with --decode the input holds
// ids (separated by whitespace) and the decoded text is printed.
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L // getline, clock_gettime, fork (also when built without the Makefile's flags)
#endif
#include "cli.h"

#if defined(__has_include) && !__has_include(<cJSON.h>)
#include <cjson/cJSON.h> // the system's include path without pkg-config's -I.../cjson
#else
#include <cJSON.h>
#endif
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: qstar tokenize --tokenizer FILE_OR_DIR (--text TEXT | --file FILE) [--special] [--decode]\n\n"
            "  --tokenizer PATH   tokenizer.json, tokenizer.model, llama2.c .bin, .gguf, or a model directory\n"
            "  --text TEXT        the text to encode (or the ids to decode)\n"
            "  --file FILE        read it from FILE instead (\"-\" = stdin)\n"
            "  --special          add BOS/EOS as tokenizer_config.json (or the file) says\n"
            "  --decode           the input is token ids; print their text\n"
            "  --jsonl            batch mode: every input line is a JSON string (with --decode: a line of ids);\n"
            "                     prints one line of ids (with --decode: one JSON string) per input line\n"
            "  --time             print the encoding throughput to stderr (\"encode: B bytes, N tokens, X MB/s\")\n"
            "  --export DIR       (a .gguf) write its tokenizer into DIR as a Hugging Face directory has it\n"
            "                     (tokenizer.model or tokenizer.json, and tokenizer_config.json), then stop\n");
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

// Decodes the ids in `in` (stopping at a newline if one_line) to f, or, if
// json, into a JSON string printed on one line.
static int decode_ids(const char *C, const qstar_tokenizer *tok, const char *in, int one_line, int json) {
    qstar_decoder *st;
    // the text of special tokens too, so that decode(encode(s)) == s
    if (qstar_decoder_create(tok, 1, &st) != QS_OK) return cli_fail(C);
    const int vocab = qstar_tokenizer_vocab_size(tok);
    char out[4096];
    size_t n = 0, tn = 0, tcap = 1024;
    char *text = json ? malloc(tcap) : NULL;
    if (json && !text) { qstar_decoder_free(st); return 1; }
    long count = 0;
    int rc = 0;
    for (const char *p = in;;) {
        while (*p == ' ' || *p == '\t' || (*p == '\n' && !one_line) || *p == '\r' || *p == ',') p++;
        if (!*p || *p == '\n') break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v >= vocab) {
            fprintf(stderr, "qstar %s: --decode: item %ld (\"%.20s\") is not a token id in [0, %d)\n", C, count, p,
                    vocab);
            rc = 1;
            break;
        }
        p = end;
        count++;
        if (qstar_decoder_push(st, (int)v, out, sizeof out, &n) != QS_OK) { rc = cli_fail(C); break; }
        if (!json) { fwrite(out, 1, n, stdout); continue; }
        while (tn + n + 1 > tcap) {
            char *b = realloc(text, tcap *= 2);
            if (!b) { rc = 1; break; }
            text = b;
        }
        if (rc) break;
        memcpy(text + tn, out, n);
        tn += n;
    }
    if (!rc && qstar_decoder_flush(st, out, sizeof out, &n) != QS_OK) rc = cli_fail(C);
    qstar_decoder_free(st);
    if (rc) { free(text); return rc; }
    if (!json) {
        fwrite(out, 1, n, stdout);
        fputc('\n', stdout);
        return 0;
    }
    char *t2 = realloc(text, tn + n + 1);
    if (!t2) { free(text); return 1; }
    memcpy(t2 + tn, out, n);
    t2[tn + n] = 0;
    cJSON *js = cJSON_CreateString(t2);
    char *line = js ? cJSON_PrintUnformatted(js) : NULL;
    if (line) printf("%s\n", line);
    free(line);
    cJSON_Delete(js);
    free(t2);
    return line ? 0 : 1;
}

static int encode_one(const char *C, const qstar_tokenizer *tok, const char *text, int special, const char *what,
                      int timed) {
    int *ids = NULL, n = 0;
    qstar_tokenizer_info ti;
    qstar_tokenizer_get_info(tok, &ti);
    double t0 = now_s();
    if (qstar_tokenizer_encode_alloc(tok, text, special && ti.add_bos, special && ti.add_eos, &ids, &n) != QS_OK) {
        fprintf(stderr, "qstar %s: %s: %s\n", C, what, qstar_last_error());
        return 1;
    }
    double dt = now_s() - t0;
    if (timed)
        fprintf(stderr, "encode: %zu bytes, %d tokens, %.3f MB/s\n", strlen(text), n, strlen(text) / 1e6 / (dt > 0 ? dt : 1e-9));
    for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
    printf("\n");
    qstar_tokenizer_ids_free(ids);
    return 0;
}

// --jsonl: one text (a JSON string) or one line of ids per input line.
static int batch(const char *C, const qstar_tokenizer *tok, const char *in, int special, int decode) {
    long lineno = 0;
    char what[64];
    for (const char *p = in; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        lineno++;
        int rc = 0;
        if (decode) {
            rc = decode_ids(C, tok, p, 1, 1);
        } else {
            cJSON *js = cJSON_ParseWithLength(p, len);
            snprintf(what, sizeof what, "line %ld", lineno);
            if (!cJSON_IsString(js)) {
                fprintf(stderr, "qstar %s: line %ld: not a JSON string\n", C, lineno);
                rc = 1;
            } else {
                rc = encode_one(C, tok, js->valuestring, special, what, 0);
            }
            cJSON_Delete(js);
        }
        if (rc) return rc;
        p += len + (nl != NULL);
    }
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    const char *C = "tokenize";
    const char *tok_path = NULL, *text = NULL, *file = NULL, *export_dir = NULL;
    int special = 0, decode = 0, jsonl = 0, timed = 0;
    for (int i = 1; i < argc; i++) {
        int r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
        if (!strcmp(argv[i], "--special")) { special = 1; continue; }
        if (!strcmp(argv[i], "--decode")) { decode = 1; continue; }
        if (!strcmp(argv[i], "--jsonl")) { jsonl = 1; continue; }
        if (!strcmp(argv[i], "--time")) { timed = 1; continue; }
        if ((r = cli_str(argc, argv, &i, "--tokenizer", &tok_path)) || (r = cli_str(argc, argv, &i, "--text", &text)) ||
            (r = cli_str(argc, argv, &i, "--file", &file)) || (r = cli_str(argc, argv, &i, "--export", &export_dir))) {
            if (r < 0) return 2;
            continue;
        }
        return cli_usage_error(C, "unknown argument '%s'", argv[i]);
    }
    if (!tok_path) return cli_usage_error(C, "--tokenizer FILE_OR_DIR is required");
    if (export_dir) {
        return qstar_tokenizer_export(tok_path, export_dir) == QS_OK ? 0 : cli_fail(C);
    }
    if (!text == !file) return cli_usage_error(C, "give exactly one of --text TEXT and --file FILE");
    char *buf = NULL;
    if (file && !(text = buf = read_input(C, file))) return 1;
    qstar_tokenizer *tok = NULL;
    if (qstar_tokenizer_load(tok_path, NULL, &tok) != QS_OK) { free(buf); return cli_fail(C); }
    int rc = 0;
    if (jsonl) rc = batch(C, tok, text, special, decode);
    else if (decode) rc = decode_ids(C, tok, text, 0, 0);
    else rc = encode_one(C, tok, text, special, file ? file : "--text", timed);
    qstar_tokenizer_free(tok);
    free(buf);
    return rc;
}

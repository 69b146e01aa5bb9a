// tok_open.c: qs_tokenizer_open (tokenizer.json, tokenizer.model, .gguf,
// llama2.c .bin, or a directory holding one of them) and the bounded file
// read shared by every tokenizer loader.
#include "tokenizer/tok_internal.h"
#include "tokenizer/tok_sources.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

qs_status qs_tok_read_file(const char *path, const char *what, unsigned char **out, size_t *size) {
    *out = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return qs_error(QS_ERR_IO, "%s: cannot open %s: %s", path, what, strerror(errno));
    struct stat sb; // a regular file larger than the cap is refused before reading any of it
    if (fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) && (uint64_t)sb.st_size > (uint64_t)QS_TOK_FILE_CAP) {
        fclose(f);
        return qs_error(QS_ERR_FORMAT, "%s: %s is larger than %zu MiB", path, what, QS_TOK_FILE_CAP >> 20);
    }
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break; // end of file or error
        if (cap >= QS_TOK_FILE_CAP) {
            // one more byte tells a file of exactly the cap from a larger one
            if (fgetc(f) == EOF) break;
            free(buf);
            fclose(f);
            return qs_error(QS_ERR_FORMAT, "%s: %s is larger than %zu MiB", path, what, QS_TOK_FILE_CAP >> 20);
        }
        size_t ncap = QS_MIN(cap * 2, QS_TOK_FILE_CAP);
        unsigned char *bigger = realloc(buf, ncap + 1);
        if (!bigger) { free(buf); buf = NULL; break; }
        buf = bigger;
        cap = ncap;
    }
    if (!buf) {
        fclose(f);
        return qs_error(QS_ERR_NOMEM, "%s: out of memory reading the %s", path, what);
    }
    int err = ferror(f) ? (errno ? errno : EIO) : 0;
    fclose(f);
    if (err) {
        free(buf);
        return qs_error(QS_ERR_IO, "%s: error reading %s: %s", path, what, strerror(err));
    }
    buf[n] = 0;
    *out = buf;
    *size = n;
    return QS_OK;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

// Copies the directory part of `path` ("." if none) followed by "/name".
static int sibling(char *out, size_t cap, const char *path, const char *name) {
    const char *slash = strrchr(path, '/');
    int n = slash ? snprintf(out, cap, "%.*s/%s", (int)(slash - path), path, name)
                  : snprintf(out, cap, "%s", name);
    return n >= 0 && (size_t)n < cap;
}

static qs_status open_json(qs_tokenizer **out, const char *path) {
    unsigned char *json = NULL, *cfg = NULL;
    size_t n = 0, n2 = 0;
    QS_TRY(qs_tok_read_file(path, "tokenizer.json", &json, &n));
    char cfg_path[4096];
    if (sibling(cfg_path, sizeof cfg_path, path, "tokenizer_config.json") && exists(cfg_path)) {
        qs_status st = qs_tok_read_file(cfg_path, "tokenizer_config.json", &cfg, &n2);
        if (st != QS_OK) { free(json); return st; }
    }
    qs_status st = qs_tokenizer_parse_json(out, (const char *)json, n, (const char *)cfg, n2, path);
    free(json);
    free(cfg);
    return st;
}

// A file: by name, then by content (GGUF magic, '{' for JSON).
static qs_status open_file(qs_tokenizer **out, const char *path, int vocab_size) {
    if (ends_with(path, ".json")) return open_json(out, path);
    if (ends_with(path, ".gguf")) return qs_tokenizer_open_gguf(out, path);
    if (ends_with(path, ".model") || ends_with(path, ".model.v1") || ends_with(path, ".model.v3"))
        return qs_tokenizer_open_model_proto(out, path);
    FILE *f = fopen(path, "rb");
    if (!f) return qs_error(QS_ERR_IO, "%s: cannot open tokenizer: %s", path, strerror(errno));
    unsigned char head[4] = {0};
    size_t got = fread(head, 1, 4, f);
    fclose(f);
    if (got == 4 && memcmp(head, "GGUF", 4) == 0) return qs_tokenizer_open_gguf(out, path);
    if (got >= 1 && head[0] == '{') return open_json(out, path);
    return qs_tokenizer_load(out, path, vocab_size);
}

qs_status qs_tokenizer_open(qs_tokenizer **out, const char *path, int vocab_size) {
    if (!out || !path) return qs_error(QS_ERR_ARG, "qs_tokenizer_open: NULL argument");
    *out = NULL;
    if (!is_dir(path)) return open_file(out, path, vocab_size);
    static const char *const names[] = {"tokenizer.json", "tokenizer.model", "tokenizer.bin"};
    char p[4096];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int n = snprintf(p, sizeof p, "%s/%s", path, names[i]);
        if (n < 0 || (size_t)n >= sizeof p) return qs_error(QS_ERR_ARG, "%s: path too long", path);
        if (exists(p)) return open_file(out, p, vocab_size);
    }
    return qs_error(QS_ERR_IO, "%s: directory has no tokenizer.json, tokenizer.model or tokenizer.bin", path);
}

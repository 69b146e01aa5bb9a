// tok_export.c: qs_tokenizer_export_gguf, the tokenizer of a GGUF file
// written into a model directory the way Hugging Face keeps it:
//   llama -> tokenizer.model (tok_spm_write.c) + tokenizer_config.json
//            (tokenizer_class LlamaTokenizer, add_bos_token, add_eos_token,
//            bos/eos/unk/pad tokens);
//   gpt2  -> tokenizer.json (BPE: vocab, merges, added_tokens for CONTROL and
//            USER_DEFINED tokens, a Sequence of Split(regex, Isolated) for the
//            `pre` name then ByteLevel, ByteLevel decoder, TemplateProcessing
//            when BOS/EOS are added) + tokenizer_config.json.
// The result is loaded back and checked to encode a few texts (with BOS/EOS)
// exactly like the GGUF's own tokenizer.
#include "tokenizer/tok_gguf.h"
#include "tokenizer/tok_internal.h"
#include "tokenizer/tok_sources.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// A NUL-terminated copy of piece i (NULL if out of memory).
static char *piece_dup(const qs_tok_spec *s, int i) {
    size_t n = (size_t)s->piece_lens[i];
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s->pieces[i], n);
        p[n] = 0;
    }
    return p;
}

static cJSON *piece_json(const qs_tok_spec *s, int id) {
    if (id < 0) return cJSON_CreateNull();
    char *p = piece_dup(s, id);
    cJSON *j = p ? cJSON_CreateString(p) : NULL;
    free(p);
    return j;
}

static qs_status write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return qs_error(QS_ERR_IO, "%s: cannot open for writing: %s", path, strerror(errno));
    size_t n = strlen(text), w = fwrite(text, 1, n, f);
    int err = w != n ? (errno ? errno : EIO) : 0;
    if (fclose(f) != 0 && !err) err = errno ? errno : EIO;
    if (err) return qs_error(QS_ERR_IO, "%s: error writing: %s", path, strerror(err));
    return QS_OK;
}

static qs_status write_json(const char *path, cJSON *j) {
    char *text = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!text) return qs_error(QS_ERR_NOMEM, "%s: out of memory building the JSON", path);
    qs_status st = write_text(path, text);
    free(text);
    return st;
}

static int path_in(char *out, size_t cap, const char *dir, const char *name) {
    int n = snprintf(out, cap, "%s/%s", dir, name);
    return n > 0 && (size_t)n < cap;
}

static qs_status write_config(const char *dir, const qs_tok_spec *s, int llama) {
    char path[4096];
    if (!path_in(path, sizeof path, dir, "tokenizer_config.json")) return qs_error(QS_ERR_ARG, "%s: path too long", dir);
    cJSON *j = cJSON_CreateObject();
    if (j) {
        cJSON_AddBoolToObject(j, "add_bos_token", s->add_bos && s->bos_id >= 0);
        cJSON_AddBoolToObject(j, "add_eos_token", s->add_eos && s->eos_id >= 0);
        cJSON_AddItemToObject(j, "bos_token", piece_json(s, s->bos_id));
        cJSON_AddItemToObject(j, "eos_token", piece_json(s, s->eos_id));
        cJSON_AddItemToObject(j, "unk_token", piece_json(s, s->unk_id));
        cJSON_AddItemToObject(j, "pad_token", piece_json(s, s->pad_id));
        cJSON_AddBoolToObject(j, "clean_up_tokenization_spaces", 0);
        if (llama) cJSON_AddBoolToObject(j, "legacy", 0);
        cJSON_AddStringToObject(j, "tokenizer_class", llama ? "LlamaTokenizer" : "PreTrainedTokenizerFast");
    }
    return write_json(path, j);
}

static cJSON *added_tokens(const qs_tok_spec *s) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && s->types && i < s->n_vocab; i++) {
        int ty = s->types[i];
        if (ty != QS_TOKT_CONTROL && ty != QS_TOKT_USER_DEFINED) continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(a, o);
        cJSON_AddNumberToObject(o, "id", i);
        cJSON_AddItemToObject(o, "content", piece_json(s, i));
        cJSON_AddBoolToObject(o, "single_word", 0);
        cJSON_AddBoolToObject(o, "lstrip", 0);
        cJSON_AddBoolToObject(o, "rstrip", 0);
        cJSON_AddBoolToObject(o, "normalized", ty == QS_TOKT_USER_DEFINED);
        cJSON_AddBoolToObject(o, "special", ty == QS_TOKT_CONTROL);
    }
    return a;
}

static cJSON *pre_tokenizer(const qs_tok_spec *s) {
    cJSON *seq = cJSON_CreateObject(), *list = cJSON_CreateArray();
    cJSON_AddStringToObject(seq, "type", "Sequence");
    cJSON_AddItemToObject(seq, "pretokenizers", list);
    for (int k = 0; k < s->n_pre_regex; k++) {
        cJSON *sp = cJSON_CreateObject(), *pat = cJSON_CreateObject();
        cJSON_AddStringToObject(sp, "type", "Split");
        cJSON_AddStringToObject(pat, "Regex", s->pre_regex[k]);
        cJSON_AddItemToObject(sp, "pattern", pat);
        cJSON_AddStringToObject(sp, "behavior", "Isolated");
        cJSON_AddBoolToObject(sp, "invert", 0);
        cJSON_AddItemToArray(list, sp);
    }
    cJSON *bl = cJSON_CreateObject();
    cJSON_AddStringToObject(bl, "type", "ByteLevel");
    cJSON_AddBoolToObject(bl, "add_prefix_space", 0);
    cJSON_AddBoolToObject(bl, "trim_offsets", 1);
    cJSON_AddBoolToObject(bl, "use_regex", 0);
    cJSON_AddItemToArray(list, bl);
    return seq;
}

// One "SpecialToken" / "Sequence" item of a TemplateProcessing.
static void template_item(cJSON *arr, const char *kind, const char *id) {
    cJSON *o = cJSON_CreateObject(), *in = cJSON_CreateObject();
    cJSON_AddStringToObject(in, "id", id);
    cJSON_AddNumberToObject(in, "type_id", 0);
    cJSON_AddItemToObject(o, kind, in);
    cJSON_AddItemToArray(arr, o);
}

static cJSON *post_processor(const qs_tok_spec *s) {
    int bos = s->add_bos && s->bos_id >= 0, eos = s->add_eos && s->eos_id >= 0;
    if (!bos && !eos) return cJSON_CreateNull();
    char *b = bos ? piece_dup(s, s->bos_id) : NULL, *e = eos ? piece_dup(s, s->eos_id) : NULL;
    cJSON *pp = cJSON_CreateObject(), *single = cJSON_CreateArray(), *sp = cJSON_CreateObject();
    cJSON_AddStringToObject(pp, "type", "TemplateProcessing");
    if (b) template_item(single, "SpecialToken", b);
    template_item(single, "Sequence", "A");
    if (e) template_item(single, "SpecialToken", e);
    cJSON_AddItemToObject(pp, "single", single);
    cJSON_AddItemToObject(pp, "pair", cJSON_Duplicate(single, 1));
    for (int k = 0; k < 2; k++) {
        const char *p = k ? e : b;
        if (!p) continue;
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "id", p);
        cJSON_AddItemToObject(t, "ids", cJSON_CreateIntArray((int[]){k ? s->eos_id : s->bos_id}, 1));
        cJSON_AddItemToObject(t, "tokens", cJSON_CreateStringArray(&p, 1));
        cJSON_AddItemToObject(sp, p, t);
    }
    cJSON_AddItemToObject(pp, "special_tokens", sp);
    free(b);
    free(e);
    return pp;
}

static cJSON *bpe_model(const qs_tok_spec *s) {
    cJSON *m = cJSON_CreateObject(), *vocab = cJSON_CreateObject(), *merges = cJSON_CreateArray();
    cJSON_AddStringToObject(m, "type", "BPE");
    cJSON_AddNullToObject(m, "dropout");
    cJSON_AddNullToObject(m, "unk_token");
    cJSON_AddBoolToObject(m, "fuse_unk", 0);
    cJSON_AddBoolToObject(m, "byte_fallback", 0);
    cJSON_AddBoolToObject(m, "ignore_merges", s->ignore_merges != 0);
    for (int i = 0; vocab && i < s->n_vocab; i++) {
        char *p = piece_dup(s, i);
        if (p) cJSON_AddItemToObject(vocab, p, cJSON_CreateNumber(i));
        free(p);
    }
    for (int i = 0; merges && i < s->n_merges; i++) cJSON_AddItemToArray(merges, cJSON_CreateString(s->merges[i]));
    cJSON_AddItemToObject(m, "vocab", vocab);
    cJSON_AddItemToObject(m, "merges", merges);
    return m;
}

static qs_status write_tokenizer_json(const char *dir, const qs_tok_spec *s) {
    char path[4096];
    if (!path_in(path, sizeof path, dir, "tokenizer.json")) return qs_error(QS_ERR_ARG, "%s: path too long", dir);
    cJSON *j = cJSON_CreateObject();
    if (!j) return qs_error(QS_ERR_NOMEM, "%s: out of memory", path);
    cJSON_AddStringToObject(j, "version", "1.0");
    cJSON_AddNullToObject(j, "truncation");
    cJSON_AddNullToObject(j, "padding");
    cJSON_AddItemToObject(j, "added_tokens", added_tokens(s));
    cJSON_AddNullToObject(j, "normalizer");
    cJSON_AddItemToObject(j, "pre_tokenizer", pre_tokenizer(s));
    cJSON_AddItemToObject(j, "post_processor", post_processor(s));
    cJSON *dec = cJSON_CreateObject();
    cJSON_AddStringToObject(dec, "type", "ByteLevel");
    cJSON_AddBoolToObject(dec, "add_prefix_space", 1);
    cJSON_AddBoolToObject(dec, "trim_offsets", 1);
    cJSON_AddBoolToObject(dec, "use_regex", 1);
    cJSON_AddItemToObject(j, "decoder", dec);
    cJSON_AddItemToObject(j, "model", bpe_model(s));
    return write_json(path, j);
}

// The written directory must load back and encode like the GGUF itself
// (texts without control tokens, which the GGUF does not match in text).
static qs_status verify(const qs_tok_spec *s, const char *dir, int llama) {
    static const char *const probes[] = {
        "Hello world", " Hello  world!\n\n", "it's 1234567 I'M here\t\tnow", "caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\xA6\x99",
        "   ", "",
    };
    qs_tokenizer *a = NULL, *b = NULL;
    qs_status st = qs_tokenizer_from_spec(&a, s);
    char path[4096];
    if (st == QS_OK && !path_in(path, sizeof path, dir, llama ? "tokenizer.model" : "tokenizer.json"))
        st = qs_error(QS_ERR_ARG, "%s: path too long", dir);
    if (st == QS_OK) st = qs_tokenizer_open(&b, path, 0);
    for (size_t k = 0; st == QS_OK && k < sizeof probes / sizeof probes[0]; k++) {
        int *x = NULL, *y = NULL, nx = 0, ny = 0;
        // a probe the vocabulary cannot encode (no byte tokens for it) is skipped
        if (qs_tokenizer_encode_alloc(a, probes[k], 1, 1, &x, &nx) != QS_OK) continue;
        if (qs_tokenizer_encode_alloc(b, probes[k], 1, 1, &y, &ny) != QS_OK)
            st = qs_error_prefix(QS_ERR_FORMAT, "%s: the written tokenizer cannot encode \"%s\"", path, probes[k]);
        if (st == QS_OK && (nx != ny || (nx && memcmp(x, y, (size_t)nx * sizeof *x))))
            st = qs_error(QS_ERR_FORMAT, "%s: the written tokenizer encodes \"%s\" differently from %s", path, probes[k],
                          s->name);
        free(x);
        free(y);
    }
    qs_tokenizer_free(a);
    qs_tokenizer_free(b);
    return st;
}

qs_status qs_tokenizer_export_gguf(const char *gguf_path, const char *dir) {
    if (!gguf_path || !dir) return qs_error(QS_ERR_ARG, "qs_tokenizer_export_gguf: NULL argument");
    qs_gguf *g = NULL;
    QS_TRY(qs_gguf_open(gguf_path, &g));
    qs_tok_spec s;
    qs_tok_gguf h;
    qs_status st = qs_tok_gguf_spec(g, &s, &h);
    int llama = s.kind == QS_TOK_SPM_SCORES;
    char path[4096];
    if (st == QS_OK && llama) {
        if (!path_in(path, sizeof path, dir, "tokenizer.model")) st = qs_error(QS_ERR_ARG, "%s: path too long", dir);
        else st = qs_tokenizer_write_model_proto(&s, path);
    } else if (st == QS_OK) {
        st = write_tokenizer_json(dir, &s);
    }
    if (st == QS_OK) st = write_config(dir, &s, llama);
    if (st == QS_OK) st = verify(&s, dir, llama);
    qs_tok_gguf_free(&h);
    qs_gguf_free(g);
    return st;
}

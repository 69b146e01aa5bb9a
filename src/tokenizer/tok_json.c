// tok_json.c: Hugging Face tokenizer.json (+ tokenizer_config.json) ->
// qs_tok_spec -> qs_tokenizer. Supports model BPE (byte-level or
// SentencePiece-style with byte fallback), the normalizers NFC/NFKC/NFD/NFKD/
// Lowercase/Prepend/Replace/Strip/Sequence, the pre-tokenizers Split/
// ByteLevel/Metaspace/Digits/WhitespaceSplit/Sequence, the decoders
// ByteLevel/Replace/ByteFallback/Fuse/Strip/Metaspace/Sequence and the
// TemplateProcessing / ByteLevel post-processors. Anything else is an error
// naming the file and the field.
#include "tokenizer/tok_internal.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;  // file, for messages
    qs_tok_spec spec;
    const char **pieces;
    const char **ml, **mr; // merges split into left/right
    char *merge_buf;       // copies of "a b" strings split at the space
    qs_tok_added *added;
} json_ctx;

static const char *jstr(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int jbool(const cJSON *o, const char *key, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

// An integer field; absent: dflt; a number outside int's range (or NaN): -1,
// which every caller rejects as out of range.
static int jint(const cJSON *o, const char *key, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) return dflt;
    const double d = v->valuedouble;
    return d >= INT_MIN && d <= INT_MAX ? (int)d : -1;
}

// An id from a JSON number that must be an integer in [0, INT_MAX/2].
static int json_id(const cJSON *v) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= INT_MAX / 2) || d != (double)(int)d) return -1;
    return (int)d;
}

// ----------------------------------------------------------------------------
// model: vocab, merges, added tokens

static qs_status parse_added(json_ctx *c, const cJSON *root, int *max_id) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!arr || cJSON_IsNull(arr)) return QS_OK;
    if (!cJSON_IsArray(arr)) return qs_error(QS_ERR_FORMAT, "%s: added_tokens is not an array", c->name);
    int n = cJSON_GetArraySize(arr);
    c->added = qs_calloc((size_t)n + 1, sizeof *c->added, "added tokens");
    if (!c->added) return QS_ERR_NOMEM;
    int k = 0;
    const cJSON *a;
    cJSON_ArrayForEach(a, arr) {
        const char *content = jstr(a, "content");
        int id = json_id(cJSON_GetObjectItemCaseSensitive(a, "id"));
        if (!content || !content[0] || id < 0)
            return qs_error(QS_ERR_FORMAT, "%s: added_tokens[%d]: needs a non-empty \"content\" and an integer \"id\" >= 0",
                            c->name, k);
        c->added[k] = (qs_tok_added){.content = content, .id = id, .special = jbool(a, "special", 0),
                                     .lstrip = jbool(a, "lstrip", 0), .rstrip = jbool(a, "rstrip", 0),
                                     .single_word = jbool(a, "single_word", 0), .normalized = jbool(a, "normalized", 0)};
        *max_id = QS_MAX(*max_id, id);
        k++;
    }
    c->spec.added = c->added;
    c->spec.n_added = k;
    return QS_OK;
}

// vocab {piece: id} plus added tokens => pieces[0..n), every id filled.
static qs_status parse_vocab(json_ctx *c, const cJSON *model, const cJSON *root) {
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsObject(vocab)) return qs_error(QS_ERR_FORMAT, "%s: model.vocab is missing or not an object", c->name);
    int max_id = -1;
    const cJSON *v;
    cJSON_ArrayForEach(v, vocab) {
        int id = json_id(v);
        if (id < 0) return qs_error(QS_ERR_FORMAT, "%s: model.vocab[\"%.40s\"]: id is not an integer in range", c->name, v->string);
        max_id = QS_MAX(max_id, id);
    }
    QS_TRY(parse_added(c, root, &max_id));
    if (max_id < 0) return qs_error(QS_ERR_FORMAT, "%s: model.vocab is empty", c->name);
    // every id 0..max_id must be taken, so there are at least max_id + 1 entries
    int entries = cJSON_GetArraySize(vocab) + c->spec.n_added;
    if (max_id >= entries)
        return qs_error(QS_ERR_FORMAT, "%s: model.vocab: id %d but only %d tokens (ids must be 0..%d)", c->name, max_id,
                        entries, entries - 1);
    int n = max_id + 1;
    c->pieces = qs_calloc((size_t)n, sizeof *c->pieces, "vocabulary");
    if (!c->pieces) return QS_ERR_NOMEM;
    cJSON_ArrayForEach(v, vocab) {
        int id = json_id(v);
        if (c->pieces[id])
            return qs_error(QS_ERR_FORMAT, "%s: model.vocab: id %d is given to both \"%.40s\" and \"%.40s\"", c->name, id,
                            c->pieces[id], v->string);
        c->pieces[id] = v->string;
    }
    for (int k = 0; k < c->spec.n_added; k++)
        if (!c->pieces[c->added[k].id]) c->pieces[c->added[k].id] = c->added[k].content;
    for (int i = 0; i < n; i++)
        if (!c->pieces[i]) return qs_error(QS_ERR_FORMAT, "%s: model.vocab: no token has id %d (ids must be 0..%d)", c->name, i, n - 1);
    c->spec.n_vocab = n;
    c->spec.pieces = c->pieces;
    return QS_OK;
}

static qs_status parse_merges(json_ctx *c, const cJSON *model) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsArray(m)) return qs_error(QS_ERR_FORMAT, "%s: model.merges is missing or not an array", c->name);
    int n = cJSON_GetArraySize(m);
    size_t bytes = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, m) if (cJSON_IsString(e)) bytes += strlen(e->valuestring) + 1;
    c->ml = qs_malloc(((size_t)n + 1) * sizeof *c->ml, "merges");
    c->mr = qs_malloc(((size_t)n + 1) * sizeof *c->mr, "merges");
    c->merge_buf = qs_malloc(bytes + 1, "merges");
    if (!c->ml || !c->mr || !c->merge_buf) return QS_ERR_NOMEM;
    char *p = c->merge_buf;
    int k = 0;
    cJSON_ArrayForEach(e, m) {
        if (cJSON_IsString(e)) {
            const char *sp = strchr(e->valuestring, ' ');
            if (!sp || sp == e->valuestring || !sp[1] || strchr(sp + 1, ' '))
                return qs_error(QS_ERR_FORMAT, "%s: model.merges[%d] \"%.60s\" is not two pieces separated by one space",
                                c->name, k, e->valuestring);
            size_t len = strlen(e->valuestring);
            memcpy(p, e->valuestring, len + 1);
            p[sp - e->valuestring] = 0;
            c->ml[k] = p;
            c->mr[k] = p + (sp - e->valuestring) + 1;
            p += len + 1;
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
            c->ml[k] = cJSON_GetArrayItem(e, 0)->valuestring;
            c->mr[k] = cJSON_GetArrayItem(e, 1)->valuestring;
        } else {
            return qs_error(QS_ERR_FORMAT, "%s: model.merges[%d] is neither \"a b\" nor [\"a\", \"b\"]", c->name, k);
        }
        k++;
    }
    c->spec.n_merges = k;
    c->spec.merge_left = c->ml;
    c->spec.merge_right = c->mr;
    return QS_OK;
}

static int find_piece(const json_ctx *c, const char *s) {
    if (!s) return -1;
    for (int k = 0; k < c->spec.n_added; k++)
        if (!strcmp(c->added[k].content, s)) return c->added[k].id;
    for (int i = 0; i < c->spec.n_vocab; i++)
        if (!strcmp(c->pieces[i], s)) return i;
    return -1;
}

static qs_status parse_model(json_ctx *c, const cJSON *root) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) return qs_error(QS_ERR_FORMAT, "%s: \"model\" is missing or not an object", c->name);
    const char *type = jstr(model, "type");
    if (!type && cJSON_GetObjectItemCaseSensitive(model, "merges")) type = "BPE"; // old files omit it
    if (!type || strcmp(type, "BPE") != 0)
        return qs_error(QS_ERR_UNSUPPORTED, "%s: model.type \"%s\" is not supported (only BPE)", c->name,
                        type ? type : "(missing)");
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (cJSON_IsNumber(dropout) && dropout->valuedouble > 0)
        return qs_error(QS_ERR_UNSUPPORTED, "%s: model.dropout %g is not supported", c->name, dropout->valuedouble);
    const char *csp = jstr(model, "continuing_subword_prefix"), *eows = jstr(model, "end_of_word_suffix");
    if ((csp && csp[0]) || (eows && eows[0]))
        return qs_error(QS_ERR_UNSUPPORTED, "%s: model.continuing_subword_prefix / end_of_word_suffix are not supported",
                        c->name);
    QS_TRY(parse_vocab(c, model, root));
    QS_TRY(parse_merges(c, model));
    c->spec.byte_fallback = jbool(model, "byte_fallback", 0);
    c->spec.fuse_unk = jbool(model, "fuse_unk", 0);
    c->spec.ignore_merges = jbool(model, "ignore_merges", 0);
    const char *unk = jstr(model, "unk_token");
    if (unk) {
        c->spec.unk_id = find_piece(c, unk);
        if (c->spec.unk_id < 0) return qs_error(QS_ERR_FORMAT, "%s: model.unk_token \"%.40s\" is not in the vocabulary", c->name, unk);
    }
    return QS_OK;
}

// ----------------------------------------------------------------------------
// pipeline: normalizer, pre_tokenizer, decoder, post_processor

static qs_status add_op(json_ctx *c, qs_tok_op *ops, int *n, const char *field, qs_tok_op op) {
    if (*n >= QS_TOK_MAX_OPS) return qs_error(QS_ERR_UNSUPPORTED, "%s: %s: more than %d steps", c->name, field, QS_TOK_MAX_OPS);
    ops[(*n)++] = op;
    return QS_OK;
}

// The string of a Replace/Split "pattern": {"String": s} (or {"Regex": r} when allowed).
static const char *pattern_of(const cJSON *o, int *is_regex) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "pattern");
    *is_regex = 0;
    if (!cJSON_IsObject(p)) return NULL;
    const char *s = jstr(p, "String");
    if (s) return s;
    *is_regex = 1;
    return jstr(p, "Regex");
}

static qs_status parse_normalizer(json_ctx *c, const cJSON *o, int depth) {
    if (!o || cJSON_IsNull(o)) return QS_OK;
    const char *type = jstr(o, "type");
    qs_tok_spec *s = &c->spec;
    if (!type || depth > 4) return qs_error(QS_ERR_FORMAT, "%s: normalizer: missing \"type\"", c->name);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "normalizers"), *e;
        if (!cJSON_IsArray(list)) return qs_error(QS_ERR_FORMAT, "%s: normalizer.normalizers is not an array", c->name);
        cJSON_ArrayForEach(e, list) QS_TRY(parse_normalizer(c, e, depth + 1));
        return QS_OK;
    }
    static const struct { const char *name; int kind; } simple[] = {
        {"NFC", QS_TOKN_NFC}, {"NFKC", QS_TOKN_NFKC}, {"NFD", QS_TOKN_NFD}, {"NFKD", QS_TOKN_NFKD},
        {"Lowercase", QS_TOKN_LOWERCASE}};
    for (size_t i = 0; i < sizeof simple / sizeof simple[0]; i++)
        if (!strcmp(type, simple[i].name)) return add_op(c, s->norm, &s->n_norm, "normalizer", (qs_tok_op){.kind = simple[i].kind});
    if (!strcmp(type, "Prepend")) {
        const char *p = jstr(o, "prepend");
        if (!p) return qs_error(QS_ERR_FORMAT, "%s: normalizer Prepend: missing \"prepend\"", c->name);
        return add_op(c, s->norm, &s->n_norm, "normalizer", (qs_tok_op){.kind = QS_TOKN_PREPEND, .a = p});
    }
    if (!strcmp(type, "Replace")) {
        int rx = 0;
        const char *p = pattern_of(o, &rx), *content = jstr(o, "content");
        if (!p || !p[0] || !content || rx)
            return qs_error(rx ? QS_ERR_UNSUPPORTED : QS_ERR_FORMAT, "%s: normalizer Replace: needs pattern.String and content",
                            c->name);
        return add_op(c, s->norm, &s->n_norm, "normalizer", (qs_tok_op){.kind = QS_TOKN_REPLACE, .a = p, .b = content});
    }
    if (!strcmp(type, "Strip"))
        return add_op(c, s->norm, &s->n_norm, "normalizer",
                      (qs_tok_op){.kind = QS_TOKN_STRIP, .flag1 = jbool(o, "strip_left", 1), .flag2 = jbool(o, "strip_right", 1)});
    return qs_error(QS_ERR_UNSUPPORTED, "%s: normalizer.type \"%s\" is not supported", c->name, type);
}

static int prepend_scheme(const cJSON *o) {
    const char *p = jstr(o, "prepend_scheme");
    if (p) return !strcmp(p, "first") ? QS_TOK_PREPEND_FIRST : !strcmp(p, "never") ? QS_TOK_PREPEND_NEVER : QS_TOK_PREPEND_ALWAYS;
    return jbool(o, "add_prefix_space", 1) ? QS_TOK_PREPEND_ALWAYS : QS_TOK_PREPEND_NEVER;
}

static qs_status parse_split(json_ctx *c, const cJSON *o) {
    int rx = 0;
    const char *p = pattern_of(o, &rx), *beh = jstr(o, "behavior");
    if (!p || !p[0]) return qs_error(QS_ERR_FORMAT, "%s: pre_tokenizer Split: missing pattern", c->name);
    static const char *const names[] = {"Isolated", "Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
    int b = -1;
    for (int i = 0; i < 5; i++)
        if (beh && !strcmp(beh, names[i])) b = i;
    if (b < 0) return qs_error(QS_ERR_FORMAT, "%s: pre_tokenizer Split: unknown behavior \"%s\"", c->name, beh ? beh : "(missing)");
    return add_op(c, c->spec.pre, &c->spec.n_pre, "pre_tokenizer",
                  (qs_tok_op){.kind = QS_TOKP_SPLIT, .a = p, .flag1 = b, .flag2 = !rx, .flag3 = jbool(o, "invert", 0)});
}

static qs_status parse_pre(json_ctx *c, const cJSON *o, int depth) {
    if (!o || cJSON_IsNull(o)) return QS_OK;
    const char *type = jstr(o, "type");
    qs_tok_spec *s = &c->spec;
    if (!type || depth > 4) return qs_error(QS_ERR_FORMAT, "%s: pre_tokenizer: missing \"type\"", c->name);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "pretokenizers"), *e;
        if (!cJSON_IsArray(list)) return qs_error(QS_ERR_FORMAT, "%s: pre_tokenizer.pretokenizers is not an array", c->name);
        cJSON_ArrayForEach(e, list) QS_TRY(parse_pre(c, e, depth + 1));
        return QS_OK;
    }
    if (!strcmp(type, "Split")) return parse_split(c, o);
    if (!strcmp(type, "ByteLevel")) {
        s->kind = QS_TOK_BPE_BYTELEVEL;
        return add_op(c, s->pre, &s->n_pre, "pre_tokenizer",
                      (qs_tok_op){.kind = QS_TOKP_BYTELEVEL, .flag1 = jbool(o, "add_prefix_space", 1), .flag2 = jbool(o, "use_regex", 1)});
    }
    if (!strcmp(type, "Metaspace")) {
        const char *r = jstr(o, "replacement");
        return add_op(c, s->pre, &s->n_pre, "pre_tokenizer",
                      (qs_tok_op){.kind = QS_TOKP_METASPACE, .a = r ? r : "\xE2\x96\x81", .flag1 = prepend_scheme(o),
                                  .flag2 = jbool(o, "split", 1)});
    }
    if (!strcmp(type, "Digits"))
        return add_op(c, s->pre, &s->n_pre, "pre_tokenizer", (qs_tok_op){.kind = QS_TOKP_DIGITS, .flag1 = jbool(o, "individual_digits", 0)});
    if (!strcmp(type, "WhitespaceSplit"))
        return add_op(c, s->pre, &s->n_pre, "pre_tokenizer", (qs_tok_op){.kind = QS_TOKP_WHITESPACE_SPLIT});
    return qs_error(QS_ERR_UNSUPPORTED, "%s: pre_tokenizer.type \"%s\" is not supported", c->name, type);
}

static qs_status parse_decoder(json_ctx *c, const cJSON *o, int depth) {
    if (!o || cJSON_IsNull(o)) return QS_OK;
    const char *type = jstr(o, "type");
    qs_tok_spec *s = &c->spec;
    if (!type || depth > 4) return qs_error(QS_ERR_FORMAT, "%s: decoder: missing \"type\"", c->name);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "decoders"), *e;
        if (!cJSON_IsArray(list)) return qs_error(QS_ERR_FORMAT, "%s: decoder.decoders is not an array", c->name);
        cJSON_ArrayForEach(e, list) QS_TRY(parse_decoder(c, e, depth + 1));
        return QS_OK;
    }
    qs_tok_op op = {0};
    if (!strcmp(type, "ByteLevel")) op.kind = QS_TOKD_BYTELEVEL;
    else if (!strcmp(type, "ByteFallback")) op.kind = QS_TOKD_BYTEFALLBACK;
    else if (!strcmp(type, "Fuse")) op.kind = QS_TOKD_FUSE;
    else if (!strcmp(type, "Replace")) {
        int rx = 0;
        op = (qs_tok_op){.kind = QS_TOKD_REPLACE, .a = pattern_of(o, &rx), .b = jstr(o, "content")};
        if (!op.a || !op.a[0] || !op.b || rx)
            return qs_error(QS_ERR_FORMAT, "%s: decoder Replace: needs pattern.String and content", c->name);
    } else if (!strcmp(type, "Strip")) {
        op = (qs_tok_op){.kind = QS_TOKD_STRIP, .a = jstr(o, "content"), .flag1 = jint(o, "start", 0), .flag2 = jint(o, "stop", 0)};
        if (!op.a || !op.a[0] || op.flag1 < 0 || op.flag2 < 0)
            return qs_error(QS_ERR_FORMAT, "%s: decoder Strip: needs content, start >= 0, stop >= 0", c->name);
    } else if (!strcmp(type, "Metaspace")) {
        const char *r = jstr(o, "replacement");
        op = (qs_tok_op){.kind = QS_TOKD_METASPACE, .a = r ? r : "\xE2\x96\x81", .flag1 = prepend_scheme(o)};
    } else {
        return qs_error(QS_ERR_UNSUPPORTED, "%s: decoder.type \"%s\" is not supported", c->name, type);
    }
    return add_op(c, s->dec, &s->n_dec, "decoder", op);
}

// TemplateProcessing "single": special tokens before $A => add_bos, after => add_eos.
static qs_status parse_post(json_ctx *c, const cJSON *o, int depth) {
    if (!o || cJSON_IsNull(o)) return QS_OK;
    const char *type = jstr(o, "type");
    if (!type || depth > 4) return qs_error(QS_ERR_FORMAT, "%s: post_processor: missing \"type\"", c->name);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "processors"), *e;
        cJSON_ArrayForEach(e, list) QS_TRY(parse_post(c, e, depth + 1));
        return QS_OK;
    }
    if (strcmp(type, "TemplateProcessing") != 0) return QS_OK; // ByteLevel, RobertaProcessing...: offsets only
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(o, "single"), *e;
    int seen_a = 0;
    cJSON_ArrayForEach(e, single) {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(e, "SpecialToken");
        if (cJSON_GetObjectItemCaseSensitive(e, "Sequence")) { seen_a = 1; continue; }
        if (!sp) continue;
        int id = find_piece(c, jstr(sp, "id"));
        if (id < 0) return qs_error(QS_ERR_FORMAT, "%s: post_processor: special token \"%.40s\" is not in the vocabulary", c->name, jstr(sp, "id"));
        if (!seen_a) { c->spec.bos_id = id; c->spec.add_bos = 1; }
        else { c->spec.eos_id = id; c->spec.add_eos = 1; }
    }
    return QS_OK;
}

// A tokenizer_config.json token: "text" or {"content": "text"}.
static const char *config_token(const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsObject(v)) return jstr(v, "content");
    return NULL;
}

static qs_status parse_config(json_ctx *c, const char *config, size_t n2) {
    if (!config) return QS_OK;
    cJSON *cfg = cJSON_ParseWithLength(config, n2);
    if (!cfg || !cJSON_IsObject(cfg)) {
        cJSON_Delete(cfg);
        return qs_error(QS_ERR_FORMAT, "%s: tokenizer_config.json beside it is not a JSON object", c->name);
    }
    qs_status st = QS_OK;
    const char *keys[2] = {"bos_token", "eos_token"};
    int *ids[2] = {&c->spec.bos_id, &c->spec.eos_id};
    for (int k = 0; k < 2 && st == QS_OK; k++) {
        const char *tok = config_token(cfg, keys[k]);
        if (!tok) continue;
        int id = find_piece(c, tok);
        if (id < 0) st = qs_error(QS_ERR_FORMAT, "%s: tokenizer_config.json %s \"%.40s\" is not in the vocabulary", c->name, keys[k], tok);
        else *ids[k] = id;
    }
    c->spec.add_bos = jbool(cfg, "add_bos_token", c->spec.add_bos);
    c->spec.add_eos = jbool(cfg, "add_eos_token", c->spec.add_eos);
    cJSON_Delete(cfg);
    return st;
}

static qs_status parse_all(json_ctx *c, const cJSON *root, const char *config, size_t n2) {
    if (!cJSON_IsObject(root)) return qs_error(QS_ERR_FORMAT, "%s: not a JSON object", c->name);
    QS_TRY(parse_model(c, root));
    c->spec.kind = QS_TOK_BPE_SPM;
    QS_TRY(parse_normalizer(c, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), 0));
    QS_TRY(parse_pre(c, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), 0));
    QS_TRY(parse_decoder(c, cJSON_GetObjectItemCaseSensitive(root, "decoder"), 0));
    QS_TRY(parse_post(c, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), 0));
    for (int i = 0; i < c->spec.n_dec; i++)
        if (c->spec.dec[i].kind == QS_TOKD_BYTELEVEL) c->spec.kind = QS_TOK_BPE_BYTELEVEL;
    QS_TRY(parse_config(c, config, n2));
    c->spec.explicit_pipeline = 1;
    return QS_OK;
}

qs_status qs_tokenizer_parse_json(qs_tokenizer **out, const char *json, size_t n, const char *config, size_t n2,
                                  const char *name) {
    if (!name) name = "tokenizer.json";
    if (!out || (!json && n > 0)) return qs_error(QS_ERR_ARG, "qs_tokenizer_parse_json: NULL argument");
    *out = NULL;
    cJSON *root = cJSON_ParseWithLength(json ? json : "", n);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && json && at >= json && at <= json + n ? (size_t)(at - json) : 0;
        return qs_error(QS_ERR_FORMAT, "%s: invalid JSON near byte offset %zu", name, off);
    }
    json_ctx c = {.name = name};
    qs_tok_spec_init(&c.spec);
    c.spec.name = name;
    qs_status st = parse_all(&c, root, config, n2);
    if (st == QS_OK) st = qs_tokenizer_from_spec(out, &c.spec);
    cJSON_Delete(root);
    free(c.pieces);
    free(c.ml);
    free(c.mr);
    free(c.merge_buf);
    free(c.added);
    return st;
}

// dataset.h: a tokenized corpus for language-model training and evaluation.
//
// A corpus is a list of documents. Each document is encoded to token ids
// beginning with BOS (the tokenizer's bos=1, eos=0, as llama2.c pretokenizes)
// and all documents are concatenated into one token stream. The last
// documents (a configurable fraction) are held out as the validation stream,
// so the split is deterministic and does not depend on the seed.
//
// Input formats
//   text   documents are separated by blank lines (a line holding only
//          whitespace, or exactly "<|endoftext|>"). Lines of one document
//          are joined with '\n'. (TinyStories stories may contain blank lines
//          themselves; those simply split a story in two.)
//   jsonl  one JSON object per line; the string in field `field` is the
//          document (a dotted path "a.b" reaches into nested objects when no
//          key of that exact name exists). Blank lines are skipped.
// Documents are stripped of leading/trailing whitespace; empty ones are
// skipped. Every line must be valid UTF-8 without NUL bytes. Errors name the
// file and line ("valid.txt:12:7: invalid UTF-8 (byte 0xff)"; a tokenizer
// error is prefixed "FILE: document D (line L)"). A file without documents
// is the error "FILE: no documents".
//
// Tokenization is separable: qs_dataset_load uses a qs_tokenizer, while
// qs_dataset_load_with / qs_dataset_from_docs take any encoder callback.
//
// Batches (all row-major [B,T], pad token 0, mask 1 = real / 0 = padding;
// the model's loss predicts tokens[b,i+1] from positions <= i in the row):
//   qs_stream_sample       random windows of T tokens (training)
//   qs_stream_eval_batch   consecutive non-overlapping windows covering the
//                          stream; the last one right-padded (evaluation)
//   qs_stream_sample_docs  windows starting at a document's BOS, truncated
//   qs_stream_doc_window   to T or right-padded (Quiet-STaR)
// Random choices use a qs_rng that the caller owns (ds->rng by convention),
// so a sampler is checkpointed by saving ds->rng.s.
#ifndef QS_DATA_DATASET_H
#define QS_DATA_DATASET_H

#include <stddef.h>
#include <stdint.h>
#include "core/qs.h"
#include "core/rng.h"
#include "tokenizer/tokenizer.h"

// One split: the concatenated tokens and where each document starts.
typedef struct qs_token_stream {
    int *tokens;        // n_tokens ids; document d is tokens[doc_start[d] .. doc_start[d+1])
    size_t n_tokens;
    size_t *doc_start;  // n_docs ascending offsets, doc_start[0] == 0; tokens[doc_start[d]] is BOS
    size_t n_docs;
    // A split read from a token directory (data/shards.h) by mmap: the ids are
    // tokens16 (uint16 files; tokens is NULL then) or tokens (uint32 files),
    // and unmap releases the mapping (qs_dataset_free calls it).
    const uint16_t *tokens16;
    void (*unmap)(struct qs_token_stream *s);
    void *map[2];
    size_t map_len[2];
} qs_token_stream;

// Id of token i of a split (either storage).
static inline int qs_stream_token(const qs_token_stream *s, size_t i) {
    return s->tokens16 ? (int)s->tokens16[i] : s->tokens[i];
}

typedef struct {
    qs_token_stream train;
    qs_token_stream val;  // the last documents of the file
    qs_rng rng;           // sampler state, seeded from opts.seed; save/restore rng.s
} qs_dataset;

typedef enum {
    QS_DATA_AUTO = 0, // .jsonl / .json / .ndjson extension => JSONL, otherwise text
    QS_DATA_TEXT = 1,
    QS_DATA_JSONL = 2
} qs_data_format;

typedef struct {
    qs_data_format format;
    const char *field;   // JSONL field holding the document; NULL => "text"
    double val_frac;     // fraction of documents held out, in [0,1] (see below)
    uint64_t seed;       // seeds ds->rng
    int n_threads;       // encoder threads: 0 = OpenMP default, 1 = serial
} qs_dataset_opts;

// format AUTO, field "text", val_frac 0.05, seed 1337, n_threads 0.
qs_dataset_opts qs_dataset_opts_default(void);

// Number of validation documents for n documents: round(val_frac * n),
// at least 1 when val_frac > 0 and n >= 2, at most n - 1 when val_frac < 1.
size_t qs_dataset_val_count(size_t n_docs, double val_frac);

// Encodes one document (UTF-8, NUL-terminated) into at most `cap` ids,
// starting with BOS; cap >= strlen(text) + 3. Returns QS_OK or an error set
// with qs_error (the dataset adds the file/document context). Unless
// opts.n_threads == 1 it is called concurrently from OpenMP threads.
typedef qs_status (*qs_encode_fn)(void *ctx, const char *text, int *out, int cap, int *n_out);

// Loads `path` and tokenizes with `tok` (qs_tokenizer_encode, bos=1, eos=0).
// `opts` may be NULL (defaults). On error *ds is left empty (safe to free).
qs_status qs_dataset_load(qs_dataset *ds, const char *path, const qs_tokenizer *tok,
                          const qs_dataset_opts *opts);
// Same with any encoder.
// The same from a buffer (the format from opts, or `name`'s extension).
qs_status qs_dataset_load_mem(qs_dataset *ds, const void *data, size_t n, const char *name, qs_encode_fn enc,
                              void *ctx, const qs_dataset_opts *opts);
qs_status qs_dataset_load_with(qs_dataset *ds, const char *path, qs_encode_fn enc, void *ctx,
                               const qs_dataset_opts *opts);
// Builds a dataset from documents already in memory (no stripping or
// skipping: every docs[i] is one document; format and field are ignored).
// Errors name document i as "document i+1".
qs_status qs_dataset_from_docs(qs_dataset *ds, const char *const *docs, size_t n_docs, qs_encode_fn enc,
                               void *ctx, const qs_dataset_opts *opts);
void qs_dataset_free(qs_dataset *ds);

// Streaming: reads `path` exactly as qs_dataset_load_with does (same
// documents, same encoding, in order) but hands each encoded document to
// `sink` instead of keeping it, so memory stays bounded (one encoding batch)
// whatever the file size. No split, no RNG (qs_shards_prepare does those).
typedef qs_status (*qs_doc_sink)(void *ud, const int *ids, size_t n);
qs_status qs_dataset_stream(const char *path, qs_encode_fn enc, void *ctx, const qs_dataset_opts *opts,
                            qs_doc_sink sink, void *sink_ud);

// Total documents / tokens over both splits.
size_t qs_dataset_n_docs(const qs_dataset *ds);
size_t qs_dataset_n_tokens(const qs_dataset *ds);

// Length in tokens of document d (BOS included).
size_t qs_stream_doc_len(const qs_token_stream *s, size_t d);

// (a) Random windows: for each row b a start offset uniform over
// [0, n_tokens - T] and tokens[b,:] = stream[start .. start+T). If the
// stream is shorter than T the single window is right-padded. `mask` may be
// NULL; `tokens` may be NULL: the same draws without reading the data (a
// data-parallel rank skipping rows another rank computes). `starts` (may be
// NULL) receives the B offsets. Errors on an empty
// stream or B, T < 1.
qs_status qs_stream_sample(const qs_token_stream *s, qs_rng *rng, int B, int T, int *tokens, int *mask,
                           size_t *starts);

// (b) Evaluation windows: window w covers stream[w*T .. min((w+1)*T, n)).
// There are qs_stream_n_windows(s, T) = ceil(n_tokens / T) of them. Fills
// rows b = 0..B-1 with windows first+b; rows past the last window are all
// padding. *n_rows (may be NULL) receives the number of real rows.
size_t qs_stream_n_windows(const qs_token_stream *s, int T);
qs_status qs_stream_eval_batch(const qs_token_stream *s, size_t first, int B, int T, int *tokens,
                               int *mask, int *n_rows);

// (c) Document windows: row = document d from its BOS, truncated to T tokens
// or right-padded (token 0, mask 0). Returns the number of real tokens
// (min(doc length, T)), or 0 if d is out of range (the row is all padding).
int qs_stream_doc_window(const qs_token_stream *s, size_t d, int T, int *tokens, int *mask);
// B documents drawn uniformly (with replacement) with `rng`; `docs` (may be
// NULL) receives their indices; `tokens` NULL: only the draws (as above). Errors on a stream without documents.
qs_status qs_stream_sample_docs(const qs_token_stream *s, qs_rng *rng, int B, int T, int *tokens,
                                int *mask, size_t *docs);

#endif

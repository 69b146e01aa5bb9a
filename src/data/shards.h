// shards.h: token directories for corpora bigger than memory.
//
// `qstar prepare` tokenizes text / JSONL files once, streaming (documents are
// read and encoded in bounded batches, in parallel, exactly as
// qs_dataset_load does) into a directory:
//   tokens.bin  every document's ids, concatenated (BOS first), little-endian
//               uint16 when the vocabulary has <= 65536 entries, else uint32
//   docs.idx    uint64 little-endian: where each document starts in tokens.bin
//   meta.json   {"format":"qstar-tokens","version":1,"dtype":"uint16"|"uint32",
//                "vocab_size":V,"n_tokens":N,"n_docs":D,"train_docs":Dt,
//                "train_tokens":Nt}, written last (a directory without it is
//               an unfinished prepare)
// The held-out split is the last documents (qs_dataset_val_count of the
// total, as for a text file): documents [0, Dt) / tokens [0, Nt) train,
// the rest held out. So training from the directory draws exactly the
// batches that training from the text file draws with the same seed.
//
// Training and evaluation read it by mmap (qs_shards_load): the process
// holds the document table of the held-out split only; the token file and
// the training document table stay in the page cache.
#ifndef QS_DATA_SHARDS_H
#define QS_DATA_SHARDS_H

#include <stddef.h>
#include <stdint.h>
#include "data/dataset.h"

#define QS_SHARDS_META "meta.json"
#define QS_SHARDS_TOKENS "tokens.bin"
#define QS_SHARDS_DOCS "docs.idx"

typedef struct {
    int width;              // bytes per token: 2 or 4
    int vocab_size;         // ids are < vocab_size
    uint64_t n_tokens, n_docs;
    uint64_t train_docs, train_tokens; // the held-out split is the rest
} qs_shards_meta;

// meta.json from memory (fuzzed: tests/fuzz/fuzz_shards_meta.c). `path` names
// the file in messages. Checks every field and their consistency.
qs_status qs_shards_parse_meta(const char *text, size_t len, const char *path, qs_shards_meta *m);

// 1 if `path` is a directory holding meta.json.
int qs_shards_is_dir(const char *path);

typedef void (*qs_prepare_progress)(void *ud, uint64_t docs, uint64_t tokens, double seconds, int file,
                                    int n_files);

typedef struct {
    const char *const *inputs; // text / JSONL files, concatenated in this order
    int n_inputs;
    const char *out_dir;       // created if missing (its parent must exist); must not hold meta.json
    const char *field;         // JSONL field (NULL: "text")
    double val_frac;           // held-out fraction of the documents (as qs_dataset_opts)
    int n_threads;             // encoder threads (0: OpenMP default)
    qs_prepare_progress progress; // called every ~65k documents and at the end (may be NULL)
    void *progress_ud;
} qs_prepare_opts;

// Tokenizes the inputs with `tok` (bos=1, eos=0) into out_dir. *meta (may
// be NULL) receives the result.
qs_status qs_shards_prepare(const qs_prepare_opts *o, const qs_tokenizer *tok, qs_shards_meta *meta);
// Same with any encoder (ids must be < vocab; as qs_dataset_load_with).
qs_status qs_shards_prepare_with(const qs_prepare_opts *o, qs_encode_fn enc, void *ctx, int vocab,
                                 qs_shards_meta *meta);

// Maps a prepared directory as a dataset (ds->rng seeded with seed). The
// document table and file sizes are validated against meta.json; the ids
// against the model's vocabulary are checked by the trainer.
qs_status qs_shards_load(qs_dataset *ds, const char *dir, uint64_t seed);

#endif

// checkpoint.h: training checkpoints.
//
// A run directory RUN holds its latest checkpoint in RUN/ckpt, a complete
// qstar model directory (config.json, model.safetensors, tokenizer.bin) plus
//   train_state.safetensors  AdamW moments and the training position:
//       adam.m, adam.v       F32 [numel]   first / second moments
//       adam.step            I64 [1]       AdamW updates applied
//       train.step           I64 [1]       optimizer steps done (skipped ones included)
//       train.rng            I64 [1]       data sampler state (qs_rng.s, bit pattern)
//       train.data_pos       I64 [1]       training windows drawn so far
//       train.data_tokens    I64 [1]       tokens in the training stream (sanity check)
//       model.numel          I64 [1]       parameter count the state belongs to
//       model.layout_hash    I64 [1]       hash of tensor names / shapes / offsets
//       model.fingerprint    I64 [1]       hash of the bytes of config.json, model.safetensors
//                                          and train_args.json beside it (qs_model_dir_fingerprint)
//   train_args.json          (optional) the caller's run settings, opaque here
//
// Saving never damages the previous checkpoint: everything is written into
// RUN/ckpt.tmp, then RUN/ckpt and RUN/ckpt.tmp are exchanged in one atomic
// step (Linux renameat2 RENAME_EXCHANGE) and RUN/ckpt.tmp, now the previous
// checkpoint, is removed: RUN/ckpt is complete at every instant. Where the
// exchange is not available, RUN/ckpt is renamed to RUN/ckpt.old, RUN/ckpt.tmp
// to RUN/ckpt, and RUN/ckpt.old is removed; a crash between those two renames
// leaves RUN/ckpt.old, which qs_checkpoint_locate() (and the next save) moves
// back into place. A stale RUN/ckpt.tmp is never read and is removed by the
// next save.
#ifndef QS_TRAIN_CHECKPOINT_H
#define QS_TRAIN_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>
#include "model/model.h"
#include "train/adamw.h"

#define QS_TRAIN_STATE_FILE "train_state.safetensors"
#define QS_TRAIN_ARGS_FILE "train_args.json"
// The EMA copy of the weights of a run with the EMA reward baseline (one F32
// tensor "ema" of the model's numel), so that --resume continues it exactly.
#define QS_TRAIN_EMA_FILE "ema.safetensors"

typedef struct {
    long step;             // optimizer steps done
    long adam_step;        // AdamW updates applied (steps minus skipped ones)
    uint64_t rng;          // data sampler state
    uint64_t data_pos;     // training windows drawn
    uint64_t data_tokens;  // tokens in the training stream
    size_t numel;          // model parameter count
    uint64_t layout_hash;  // qs_layout_hash of the model
    uint64_t fingerprint;  // qs_model_dir_fingerprint of the checkpoint it was saved in (0 = none)
    const float *ema;      // qs_checkpoint_save: numel floats written as QS_TRAIN_EMA_FILE (NULL: none)
} qs_train_state;

// FNV-1a hash of every tensor's name, shape and offset, and the total numel.
uint64_t qs_layout_hash(const qs_layout *L);

// Writes the state file atomically. `opt` holds s->numel moments.
qs_status qs_train_state_save(const char *path, const qs_train_state *s, const qs_adamw *opt);

// Reads a state file for model `m`: refuses (QS_ERR_FORMAT, naming the file)
// one whose numel or layout hash differs from the model's, or that lacks a
// tensor or has a wrong dtype/shape. `opt` must have been created with the
// model's numel; its moments and step are overwritten. `s` receives the rest.
qs_status qs_train_state_load(const char *path, const qs_model *m, qs_train_state *s, qs_adamw *opt);
// The same from a buffer (`name` names it in messages).
qs_status qs_train_state_parse(const unsigned char *data, size_t n, const char *name, const qs_model *m,
                               qs_train_state *s, qs_adamw *opt);

// Saves a checkpoint of `m` (+ tokenizer copy, + quietstar_json, + state and
// moments, + args_json when non-NULL) as run_dir/ckpt, atomically as above.
// `ckpt_dir` (may be NULL) receives the path of the checkpoint directory.
qs_status qs_checkpoint_save(const char *run_dir, const qs_model *m, const char *tokenizer_path,
                             const char *quietstar_json, const qs_train_state *s, const qs_adamw *opt,
                             const char *args_json, char *ckpt_dir, size_t cap);

// Reads ckpt_dir's QS_TRAIN_EMA_FILE into ema[numel]: QS_OK, QS_ERR_IO when
// the checkpoint has none (saved without the EMA baseline or by an older
// qstar), QS_ERR_FORMAT (naming the file) when it is not one of numel floats.
qs_status qs_checkpoint_load_ema(const char *ckpt_dir, float *ema, size_t numel);

// Checks that the weights and settings in ckpt_dir are the ones the state
// `s` (read from it) was saved with: refuses (QS_ERR_FORMAT, naming the
// directory) a state without a fingerprint or one that does not match.
qs_status qs_checkpoint_verify(const char *ckpt_dir, const qs_train_state *s);
// The same check reading the fingerprint from ckpt_dir's state file (before
// anything is loaded).
qs_status qs_checkpoint_check(const char *ckpt_dir);

// Finds the checkpoint for `path`, which is either a checkpoint directory
// (holding train_state.safetensors) or a run directory (holding ckpt, or only
// ckpt.old after an interrupted save, which is then renamed back to ckpt).
// ckpt_dir receives the checkpoint directory and run_dir (may be NULL) the
// run directory it belongs to. Error (QS_ERR_IO) naming `path` if none.
qs_status qs_checkpoint_locate(const char *path, char *ckpt_dir, size_t ckpt_cap, char *run_dir,
                               size_t run_cap);

// Removes a directory tree (like rm -rf); a missing path is not an error.
qs_status qs_remove_tree(const char *path);

#endif

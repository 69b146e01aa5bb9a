// cli_internal.h: TRANSITIONAL: the CLI helpers that still use libqstar's
// internal headers (src/). A command that includes this is not yet on the
// public API alone; when none does, this header and cli_internal.c are deleted
// and tools/ builds without -Isrc.
#ifndef QS_CLI_INTERNAL_H
#define QS_CLI_INTERNAL_H

#include "cli.h"
#include "quietstar/qstar.h"
#include "io/model_io.h"
#include "tokenizer/tokenizer.h"

// --think-when entropy>X | always (generate, eval): 1 parsed into *min_entropy,
// 0 not this flag, -1 bad value (message printed).
int cli_think_when(int argc, char **argv, int *i, float *min_entropy);
extern const char *cli_think_when_help;
// The thought options of a checkpoint for generate/eval/viz: SPEC defaults <
// its config.json "quietstar" block (qs_json, may be NULL) < the flags given
// (n_ahead 0, tau_sample <= 0, greedy 0 mean "not given"); meta tokens of the
// vocabulary are banned. Returns 0, or prints the error and returns 1.
int cli_thought_opts(const char *cmd, const char *qs_json, const qs_tokenizer *tok, long n_ahead, double tau_sample,
                     int greedy, qs_qstar_opts *qo);

// Loads the tokenizer for a model loaded from model_path: *tok_path if given,
// else the model directory's tokenizer.bin (then *tok_path points to it).
// Returns 0, or prints the error and returns 1.
int cli_load_tokenizer(const char *cmd, const char *model_path, const qs_load_info *info, int vocab_size,
                       const char **tok_path, qs_tokenizer **tok);

// --precision fp32|bf16 (NULL: fp32) into *p, and the matmul backend (env
// QSTAR_MATMUL=openblas|onednn). Returns 0, or prints the error and returns 2.
int cli_precision(const char *cmd, const char *s, qs_precision *p);
// The run header line "matmul: <backend>, precision <fp32|bf16>" (stderr).
void cli_print_matmul(const qs_model *m);

#endif

// cli_internal.h: TRANSITIONAL: the CLI helpers that still use libqstar's
// internal headers (src/). A command that includes this is not yet on the
// public API alone; when none does, this header, cli_internal.c and qs_flags.c's
// internal parts are deleted and tools/ builds without -Isrc.
#ifndef QS_CLI_INTERNAL_H
#define QS_CLI_INTERNAL_H

#include "cli.h"
#include "quietstar/qstar.h"
#include "io/model_io.h"
#include "tokenizer/tokenizer.h"
#include "io/fileutil.h" // (transitional: the file helpers the commands not yet on qstar.h use)

// Quiet-STaR flags (tools/qs_flags.c): same return convention as cli_int.
struct qs_qstar_opts_s;
int cli_qstar_flag(int argc, char **argv, int *i, void *opts /* qs_qstar_opts* */);
extern const char *cli_qstar_help;
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

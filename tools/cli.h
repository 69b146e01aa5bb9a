// cli.h: shared helpers of the qstar command-line tool. Each command lives in
// tools/cmd_<name>.c and has the signature `int cmd_<name>(int argc, char **argv)`
// (argv[0] is the command name); it returns the process exit code:
// 0 success, 1 runtime failure (bad file, ...), 2 usage error (bad flag).
#ifndef QS_CLI_H
#define QS_CLI_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "qstar.h"
#include "quietstar/qstar.h"
#include "io/model_io.h"
#include "tokenizer/tokenizer.h"

int cmd_generate(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_finetune(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_dump_step(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_viz(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_prepare(int argc, char **argv);

// Quiet-STaR flags (tools/qs_flags.c): same return convention as cli_int.
struct qs_qstar_opts_s;
int cli_qstar_flag(int argc, char **argv, int *i, void *opts /* qs_qstar_opts* */);
extern const char *cli_qstar_help;
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

// Prints "qstar CMD: <library error>" to stderr and returns 1.
int cli_fail(const char *cmd);
// Prints "qstar CMD: <formatted message>" to stderr and returns 2 (usage).
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Flag parsing: call with the current index; they consume "--flag VALUE" and
// return 1 when argv[*i] matched `name` (value parsed into *out), 0 when it
// did not match, -1 (message printed) when the value is missing or invalid
// or outside [lo, hi].
int cli_int(int argc, char **argv, int *i, const char *name, long *out, long lo, long hi);
int cli_float(int argc, char **argv, int *i, const char *name, double *out, double lo, double hi);
int cli_str(int argc, char **argv, int *i, const char *name, const char **out);
// True when stderr is a terminal (progress lines use \r there).
int cli_is_tty(void);

// --precision fp32|bf16 (NULL: fp32) into *p, and the matmul backend (env
// QSTAR_MATMUL=openblas|onednn). Returns 0, or prints the error and returns 2.
int cli_precision(const char *cmd, const char *s, qs_precision *p);
// The run header line "matmul: <backend>, precision <fp32|bf16>" (stderr).
void cli_print_matmul(const qs_model *m);
extern const char *cli_precision_help;

#endif

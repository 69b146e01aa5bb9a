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
// A Quiet-STaR thought setting at argv[*i] (--n-ahead N, --no-clamp, ...: the
// library's options table, qstar_thought_option_set) into *opts, *i advanced
// past its value: 0, or prints the usage error (unknown option, missing or bad
// value) and returns 2.
int cli_thought_flag(const char *cmd, int argc, char **argv, int *i, qstar_train_options **opts);
// True when stderr is a terminal (progress lines use \r there).
int cli_is_tty(void);
// Seconds of a monotonic clock, and CPU seconds used by this process (all threads).
double cli_wall_seconds(void);
double cli_cpu_seconds(void);

// --precision fp32|bf16 (NULL: fp32) into *p, and the matmul backend (env
// QSTAR_MATMUL=openblas|onednn). Returns 0, or prints the error and returns 2.
int cli_precision_flag(const char *cmd, const char *s, qstar_precision *p);
// The run header line "matmul: <backend>, precision <fp32|bf16>" (stderr).
void cli_print_backend(qstar_precision p);
extern const char *cli_precision_help;
// --think-when entropy>X | always (generate, eval): 1 parsed into *min_entropy,
// 0 not this flag, -1 bad value (message printed).
int cli_think_when(int argc, char **argv, int *i, float *min_entropy);
extern const char *cli_think_when_help;

#endif

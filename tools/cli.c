// cli.c: flag parsing and error printing shared by the qstar commands.
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <time.h>
#include <unistd.h>

int cli_fail(const char *cmd) {
    fprintf(stderr, "qstar %s: %s\n", cmd, qstar_last_error());
    return 1;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "qstar %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see qstar %s --help)\n", cmd);
    va_end(ap);
    return 2;
}

static const char MISSING[] = "";

static const char *value_of(int argc, char **argv, int *i, const char *name) {
    if (strcmp(argv[*i], name) != 0) return NULL;
    if (*i + 1 >= argc) {
        fprintf(stderr, "qstar %s: %s needs a value\n", argv[0], name);
        return MISSING;
    }
    return argv[++*i];
}

int cli_int(int argc, char **argv, int *i, const char *name, long *out, long lo, long hi) {
    const char *v = value_of(argc, argv, i, name);
    if (!v) return 0;
    if (v == MISSING) return -1;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v || x < lo || x > hi) {
        fprintf(stderr, "qstar %s: %s expects an integer in [%ld, %ld], got '%s'\n", argv[0], name, lo, hi, v);
        return -1;
    }
    *out = x;
    return 1;
}

int cli_float(int argc, char **argv, int *i, const char *name, double *out, double lo, double hi) {
    const char *v = value_of(argc, argv, i, name);
    if (!v) return 0;
    if (v == MISSING) return -1;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || *end || end == v || !isfinite(x) || x < lo || x > hi) {
        fprintf(stderr, "qstar %s: %s expects a number in [%g, %g], got '%s'\n", argv[0], name, lo, hi, v);
        return -1;
    }
    *out = x;
    return 1;
}

int cli_str(int argc, char **argv, int *i, const char *name, const char **out) {
    const char *v = value_of(argc, argv, i, name);
    if (!v) return 0;
    if (v == MISSING) return -1;
    *out = v;
    return 1;
}

int cli_is_tty(void) { return isatty(2); }

const char *cli_precision_help =
    "  --precision P          GEMM precision: fp32, or bf16 (bf16 inputs, fp32 accumulation;\n"
    "                         weights, gradients and optimizer state stay fp32) (fp32)\n";

int cli_precision_flag(const char *cmd, const char *s, qstar_precision *p) {
    if (qstar_precision_parse(s ? s : "fp32", p) != QS_OK)
        return cli_usage_error(cmd, "--precision: %s", qstar_last_error());
    const char *backend;
    if (qstar_matmul_backend(&backend) != QS_OK) {
        fprintf(stderr, "qstar %s: %s\n", cmd, qstar_last_error());
        return 2;
    }
    return 0;
}

void cli_print_backend(qstar_precision p) {
    const char *backend = "?";
    qstar_matmul_backend(&backend);
    fprintf(stderr, "matmul: %s, precision %s\n", backend, qstar_precision_name(p));
}

int cli_think_when(int argc, char **argv, int *i, float *min_entropy) {
    const char *s;
    int r = cli_str(argc, argv, i, "--think-when", &s);
    if (r <= 0) return r;
    if (qstar_think_when_parse(s, min_entropy) != QS_OK) {
        fprintf(stderr, "qstar %s: --think-when expects entropy>X (X in nats) or always, got '%s'\n", argv[0], s);
        return -1;
    }
    return 1;
}

const char *cli_think_when_help =
    "  --think-when entropy>X  base pass first; think only at positions whose base prediction\n"
    "                       entropy (nats) exceeds X, elsewhere use the base prediction\n"
    "                       (always: at every position, the default)\n"
    "  --random-thoughts    thought tokens drawn uniformly from the vocabulary instead of\n"
    "                       from the model (content control: same start/end, length, head)\n";

static double clock_s(clockid_t id) {
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0) return 0.0;
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double cli_wall_seconds(void) { return clock_s(CLOCK_MONOTONIC); }
double cli_cpu_seconds(void) { return clock_s(CLOCK_PROCESS_CPUTIME_ID); }

int cli_thought_flag(const char *cmd, int argc, char **argv, int *i, qstar_train_options **opts) {
    const char *name = strncmp(argv[*i], "--", 2) ? "" : argv[*i] + 2;
    const int kind = qstar_train_option_kind(name);
    if (kind < 0) return cli_usage_error(cmd, "unknown option '%s'", argv[*i]);
    if (kind > 0 && *i + 1 >= argc) return cli_usage_error(cmd, "%s needs a value", argv[*i]);
    const char *value = kind > 0 ? argv[++*i] : NULL;
    if (qstar_thought_option_set(opts, name, value) != QS_OK) return cli_usage_error(cmd, "%s", qstar_last_error());
    return 0;
}

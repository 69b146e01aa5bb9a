// cmd_plot.c: `qstar plot LOG.jsonl --out DIR`: PNG charts of a Quiet-STaR
// training log, drawn by gnuplot. The log holds one JSON object per step
// ("step", "loss", "loss_lm", "loss_base", "loss_talk" [array], "policy_loss",
// "reward_mean", "advantage_mean", "mix_mean", "mix_std", "tok_per_s", "lr")
// and eval records ("type": "eval", "val_nll_base", "val_nll_think"). Missing
// keys are fine: each chart shows the series that exist. The data files and
// the gnuplot script are left in DIR (re-run with `gnuplot plot.gp` there).
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L // getline, clock_gettime, fork (also when built without the Makefile's flags)
#endif
#include "cli.h"

#if defined(__has_include) && !__has_include(<cJSON.h>)
#include <cjson/cJSON.h> // the system's include path without pkg-config's -I.../cjson
#else
#include <cJSON.h>
#endif
#include <errno.h>
#include <math.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: qstar plot LOG.jsonl --out DIR [--force]\n\n"
            "  LOG.jsonl            training log (one JSON object per line)\n"
            "  --out DIR            output directory (created if needed) for the charts:\n"
            "                         nll.png     base vs talk NLL (+ eval NLL with/without thoughts;\n"
            "                                     \"val_nll\" of a plain finetune log too)\n"
            "                         reward.png  reward and advantage means\n"
            "                         mix.png     mixing weight, mean +- std\n"
            "                         speed.png   tokens/s\n"
            "                         loss.png    total, LM and policy loss\n"
            "                       plus the gnuplot data files and plot.gp\n"
            "  --force              replace the charts of a non-empty DIR (refused otherwise)\n\n"
            "Needs gnuplot (Debian: apt-get install gnuplot-nox).\n");
}

#define MAX_TALK 64

// One series: a data file "name.dat" of "step value [value2]" lines.
typedef struct {
    const char *key;   // JSON key
    char file[64];
    FILE *f;
    long n;
} series;

enum { S_LOSS, S_LM, S_BASE, S_POLICY, S_REWARD, S_ADV, S_MIX, S_SPEED, S_LR, S_VBASE, S_VTHINK, S_VAL, N_SERIES };
static const char *keys[N_SERIES] = {"loss", "loss_lm", "loss_base", "policy_loss", "reward_mean", "advantage_mean",
                                     "mix_mean", "tok_per_s", "lr", "val_nll_base", "val_nll_think", "val_nll"};
// eval series are read from any record; the others only from training records
static int is_val(int k) { return k == S_VBASE || k == S_VTHINK || k == S_VAL; }

static int num(const cJSON *o, const char *k, double *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble)) return 0;
    *v = x->valuedouble;
    return 1;
}

static int open_series(const char *C, const char *dir, series *s, const char *name) {
    char path[4200];
    snprintf(s->file, sizeof s->file, "%s.dat", name);
    snprintf(path, sizeof path, "%s/%s", dir, s->file);
    s->f = fopen(path, "w");
    if (!s->f) {
        fprintf(stderr, "qstar %s: cannot write %s: %s\n", C, path, strerror(errno));
        return 1;
    }
    return 0;
}

// gnuplot string literal (single quotes; '' inside)
static void gp_str(FILE *f, const char *s) {
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'') fputc('\'', f);
        fputc(*s, f);
    }
    fputc('\'', f);
}

static const char *style(long n) { return n < 40 ? "linespoints pt 7 ps 0.6" : "lines"; }

// Removes what plot wrote in DIR (data files, plot.gp, gnuplot.log, PNGs) and
// DIR itself when plot created it, so a failed run leaves nothing behind.
static void cleanup(const char *dir, int created) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char path[4200];
        while ((e = readdir(d))) {
            const char *x = strrchr(e->d_name, '.');
            if (!x || (strcmp(x, ".dat") && strcmp(x, ".png") && strcmp(x, ".gp") && strcmp(x, ".log"))) continue;
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    if (created) rmdir(dir);
}

// Writes the charts of the log IN (named LOG_PATH in messages) into DIR, which exists; closes IN.
static int plot_into(const char *C, FILE *in, const char *log_path, const char *dir);

int cmd_plot(int argc, char **argv) {
    const char *C = "plot";
    const char *log_path = NULL, *dir = NULL;
    int force = 0;
    for (int i = 1; i < argc; i++) {
        int r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--force")) {
            force = 1;
            continue;
        }
        if ((r = cli_str(argc, argv, &i, "--out", &dir))) {
            if (r < 0) return 2;
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1]) return cli_usage_error(C, "unknown option '%s'", argv[i]);
        if (log_path) return cli_usage_error(C, "one log file expected, got '%s' and '%s'", log_path, argv[i]);
        log_path = argv[i];
    }
    if (!log_path) return cli_usage_error(C, "a log file (LOG.jsonl) is required");
    if (!dir || !*dir) return cli_usage_error(C, "--out DIR is required");
    if (qstar_out_check(dir, QSTAR_OUT_DIR, force) != QS_OK) return cli_fail(C); // non-empty, or not writable
    FILE *in = fopen(log_path, "r");
    if (!in) {
        fprintf(stderr, "qstar %s: cannot open %s: %s\n", C, log_path, strerror(errno));
        return 1;
    }
    struct stat st;
    const int created = stat(dir, &st) != 0;
    if (qstar_mkdir_p(dir) != QS_OK) {
        fclose(in);
        return cli_fail(C);
    }
    int rc = plot_into(C, in, log_path, dir);
    if (rc) cleanup(dir, created);
    return rc;
}

// ---- reading the log into the data files ----

// The series of one log: a data file per known key, per talk position
// (loss_talk_K.dat, opened when a record first has position K) and the
// mix_mean +- mix_std band; and what was read.
typedef struct {
    series s[N_SERIES], talk[MAX_TALK], mix;
    int n_talk;                 // talk series opened (or attempted): talk[0..n_talk-1]
    long n_train, n_eval, bad;  // records with a training / an eval value; lines that were not JSON objects
} plot_data;

// The "loss_talk" of training record O (an array, one value per position
// after the thought, at most MAX_TALK; or a scalar, taken as position 0) into
// the talk series; *ANY set when a value was written.
static int read_talk(const char *C, const char *dir, plot_data *d, const cJSON *o, double step, int *any) {
    int rc = 0;
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(o, "loss_talk");
    if (cJSON_IsNumber(lt)) lt = NULL; // a scalar: treat as talk 0 below
    double v;
    int nt = cJSON_IsArray(lt) ? (cJSON_GetArraySize(lt) < MAX_TALK ? cJSON_GetArraySize(lt) : MAX_TALK) : 0;
    if (!lt && num(o, "loss_talk", &v)) nt = -1;
    for (int k = 0; k < (nt < 0 ? 1 : nt) && !rc; k++) {
        const cJSON *x = nt < 0 ? cJSON_GetObjectItemCaseSensitive(o, "loss_talk") : cJSON_GetArrayItem(lt, k);
        if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble)) continue;
        if (k >= d->n_talk) {
            for (int j = d->n_talk; j <= k && !rc; j++) {
                char name[32];
                snprintf(name, sizeof name, "loss_talk_%d", j);
                rc = open_series(C, dir, &d->talk[j], name);
            }
            d->n_talk = k + 1;
        }
        if (rc) break;
        fprintf(d->talk[k].f, "%.10g %.10g\n", step, x->valuedouble);
        d->talk[k].n++, *any = 1;
    }
    return rc;
}

// One JSON object of the log into the series: an eval record ("type":
// "eval") gives only the eval series; a record without "step" takes the
// number of records counted so far.
static int read_record(const char *C, const char *dir, plot_data *d, const cJSON *o) {
    int rc = 0;
    double step;
    if (!num(o, "step", &step)) step = (double)(d->n_train + d->n_eval);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(o, "type");
    const int is_eval = cJSON_IsString(type) && !strcmp(type->valuestring, "eval");
    int any = 0, any_val = 0;
    for (int k = 0; k < N_SERIES; k++) {
        double v;
        if (is_eval && !is_val(k)) continue;
        if (!num(o, keys[k], &v)) continue;
        fprintf(d->s[k].f, "%.10g %.10g\n", step, v);
        d->s[k].n++;
        if (is_val(k)) any_val = 1;
        else any = 1;
    }
    if (!is_eval) {
        rc = read_talk(C, dir, d, o, step, &any);
        double mm, ms;
        if (num(o, "mix_mean", &mm) && num(o, "mix_std", &ms)) {
            fprintf(d->mix.f, "%.10g %.10g %.10g\n", step, mm - ms, mm + ms);
            d->mix.n++;
        }
    }
    if (any) d->n_train++;
    if (any_val) d->n_eval++;
    return rc;
}

// Reads the log IN (and closes it) into data files in DIR; closes them. Fails
// on a file that cannot be written and on a log without a known key; lines
// that are not JSON objects are skipped and counted (the first is reported).
static int read_log(const char *C, FILE *in, const char *log_path, const char *dir, plot_data *d) {
    int rc = 0;
    for (int k = 0; k < N_SERIES && !rc; k++) {
        d->s[k].key = keys[k];
        rc = open_series(C, dir, &d->s[k], keys[k]);
    }
    if (!rc) rc = open_series(C, dir, &d->mix, "mix_band");
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    ssize_t len;
    while (!rc && (len = getline(&line, &cap, in)) > 0) {
        lineno++;
        int blank = 1;
        for (ssize_t k = 0; k < len && blank; k++) blank = line[k] == ' ' || line[k] == '\t' || line[k] == '\n' || line[k] == '\r';
        if (blank) continue;
        cJSON *o = cJSON_Parse(line);
        if (!cJSON_IsObject(o)) {
            if (d->bad++ == 0) fprintf(stderr, "qstar %s: %s:%ld: not a JSON object (skipped)\n", C, log_path, lineno);
            cJSON_Delete(o);
            continue;
        }
        rc = read_record(C, dir, d, o);
        cJSON_Delete(o);
    }
    free(line);
    fclose(in);
    int werr = 0;
    for (int k = 0; k < N_SERIES; k++) if (d->s[k].f && fclose(d->s[k].f)) werr = 1;
    for (int k = 0; k < d->n_talk; k++) if (d->talk[k].f && fclose(d->talk[k].f)) werr = 1;
    if (d->mix.f && fclose(d->mix.f)) werr = 1;
    if (rc) return rc;
    if (werr) {
        fprintf(stderr, "qstar %s: writing the data files in %s failed\n", C, dir);
        return 1;
    }
    if (d->n_train + d->n_eval == 0) {
        fprintf(stderr, "qstar %s: %s has no records with any known key (step, loss, loss_lm, loss_base, loss_talk, "
                        "policy_loss, reward_mean, advantage_mean, mix_mean, mix_std, tok_per_s, val_nll_base, "
                        "val_nll_think, val_nll)\n", C, log_path);
        return 1;
    }
    return 0;
}

// ---- the gnuplot script: one chart per function, drawn when its series exist ----

// One line of a plot command, if SER has points: ", \" before all but the
// first (*FIRST). AXES ("" or "axes x1y2") must precede "with": gnuplot
// rejects it after the style.
static void gp_add_on(FILE *g, int *first, const series *ser, const char *title, const char *axes, const char *extra) {
    if (!ser->n) return;
    fprintf(g, "%s", *first ? "" : ", \\\n     ");
    gp_str(g, ser->file);
    fprintf(g, " using 1:2 %s with %s %s title ", axes, style(ser->n), extra);
    gp_str(g, title);
    *first = 0;
}

static void gp_add(FILE *g, int *first, const series *ser, const char *title, const char *extra) {
    gp_add_on(g, first, ser, title, "", extra);
}

// Each chart writer returns the name of its PNG, or NULL when it has nothing to draw.

// NLL: base vs talk (+ eval)
static const char *gp_nll(FILE *g, const plot_data *d) {
    const series *s = d->s;
    if (!(s[S_BASE].n || d->n_talk || s[S_VBASE].n || s[S_VTHINK].n || s[S_VAL].n)) return NULL;
    int first = 1;
    fprintf(g, "set output 'nll.png'\nset title 'NLL: base vs talk (after thought)'\nset ylabel 'nats/token'\nplot ");
    gp_add(g, &first, &s[S_BASE], "train base NLL (no thought)", "lw 2 lc rgb '#1f77b4'");
    for (int k = 0; k < d->n_talk; k++) {
        char t[64];
        snprintf(t, sizeof t, "train talk NLL, token %d after thought", k + 1);
        char ex[64];
        static const char *cols[] = {"#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#bcbd22"};
        snprintf(ex, sizeof ex, "lw %d lc rgb '%s'", k == 0 ? 2 : 1, cols[k % 6]);
        gp_add(g, &first, &d->talk[k], t, ex);
    }
    gp_add(g, &first, &s[S_VBASE], "eval NLL without thoughts", "lw 2 dt 2 lc rgb '#17becf'");
    gp_add(g, &first, &s[S_VTHINK], "eval NLL with thoughts", "lw 2 dt 2 lc rgb '#2ca02c'");
    gp_add(g, &first, &s[S_VAL], "eval NLL", "lw 2 dt 2 lc rgb '#7f7f7f'");
    fprintf(g, "\n");
    return "nll.png";
}

static const char *gp_reward(FILE *g, const plot_data *d) {
    const series *s = d->s;
    if (!(s[S_REWARD].n || s[S_ADV].n)) return NULL;
    int first = 1;
    fprintf(g, "set output 'reward.png'\nset title 'reward and advantage (means over thoughts)'\nset ylabel 'nats'\nplot ");
    gp_add(g, &first, &s[S_REWARD], "reward mean", "lw 2 lc rgb '#1f77b4'");
    gp_add(g, &first, &s[S_ADV], "advantage mean (after baseline and clamp)", "lw 2 lc rgb '#ff7f0e'");
    fprintf(g, "\n");
    return "reward.png";
}

// the mean as a line over the mean +- std band (where mix_std was logged)
static const char *gp_mix(FILE *g, const plot_data *d) {
    if (!d->s[S_MIX].n) return NULL;
    int first = 1;
    fprintf(g, "set output 'mix.png'\nset title 'mixing weight w (mean +- std)'\nset ylabel 'w'\nplot ");
    if (d->mix.n) {
        gp_str(g, d->mix.file);
        fprintf(g, " using 1:2:3 with filledcurves fc rgb '#1f77b4' fs transparent solid 0.25 noborder title 'mean +- std'");
        first = 0;
    }
    gp_add(g, &first, &d->s[S_MIX], "mean", "lw 2 lc rgb '#1f77b4'");
    fprintf(g, "\n");
    return "mix.png";
}

static const char *gp_speed(FILE *g, const plot_data *d) {
    if (!d->s[S_SPEED].n) return NULL;
    int first = 1;
    fprintf(g, "set output 'speed.png'\nset title 'training throughput'\nset ylabel 'tokens/s'\nplot ");
    gp_add(g, &first, &d->s[S_SPEED], "tokens/s", "lw 2 lc rgb '#2ca02c'");
    fprintf(g, "\n");
    return "speed.png";
}

// total and LM loss on the left axis, the policy loss on the right one
static const char *gp_loss(FILE *g, const plot_data *d) {
    const series *s = d->s;
    if (!(s[S_LOSS].n || s[S_LM].n || s[S_POLICY].n)) return NULL;
    int first = 1;
    fprintf(g, "set output 'loss.png'\nset title 'losses'\nset ylabel 'loss'\n");
    if (s[S_POLICY].n) fprintf(g, "set y2label 'policy loss'\nset y2tics\nset ytics nomirror\n");
    fprintf(g, "plot ");
    gp_add(g, &first, &s[S_LOSS], "total loss", "lw 2 lc rgb '#1f77b4'");
    gp_add(g, &first, &s[S_LM], "LM loss", "lw 2 lc rgb '#ff7f0e'");
    gp_add_on(g, &first, &s[S_POLICY], "policy loss (right axis)", "axes x1y2", "lw 1 lc rgb '#9467bd'");
    fprintf(g, "\nunset y2label\nunset y2tics\nset ytics mirror\n");
    return "loss.png";
}

// The chart writers, in the order they are drawn and listed.
typedef const char *chart_fn(FILE *g, const plot_data *d);
static chart_fn *const charts[] = {gp_nll, gp_reward, gp_mix, gp_speed, gp_loss};
#define N_CHARTS ((int)(sizeof charts / sizeof charts[0]))

// Writes the gnuplot script GP (DIR/plot.gp) drawing the charts that have
// data; their PNG names go to MADE (*N_MADE of them). Fails when it cannot
// be written, or when no chart has data.
static int write_script(const char *C, const char *gp, const char *log_path, const plot_data *d,
                        const char *made[N_CHARTS], int *n_made) {
    FILE *g = fopen(gp, "w");
    if (!g) {
        fprintf(stderr, "qstar %s: cannot write %s: %s\n", C, gp, strerror(errno));
        return 1;
    }
    fprintf(g, "# written by qstar plot from ");
    for (const char *c = log_path; *c; c++) fputc(*c == '\n' ? ' ' : *c, g);
    fprintf(g, "; run in this directory: gnuplot plot.gp\n"
               "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
               "  set terminal pngcairo size 960,540 enhanced font 'sans,10'\n"
               "} else {\n"
               "  set terminal png size 960,540\n"
               "}\n"
               "set grid lc rgb '#dddddd'\nset key inside top right opaque box lc rgb '#cccccc'\nset xlabel 'step'\n"
               "set border lc rgb '#555555'\n");
    *n_made = 0;
    for (int k = 0; k < N_CHARTS; k++) {
        const char *png = charts[k](g, d);
        if (png) made[(*n_made)++] = png;
    }
    fprintf(g, "unset output\n");
    if (fclose(g) != 0) {
        fprintf(stderr, "qstar %s: writing %s failed\n", C, gp);
        return 1;
    }
    if (*n_made == 0) {
        fprintf(stderr, "qstar %s: %s has no plottable series (only lr?)\n", C, log_path);
        return 1;
    }
    return 0;
}

// ---- drawing ----

// Runs gnuplot on plot.gp in DIR (GP is its path, for messages), its
// messages to DIR/gnuplot.log.
static int run_gnuplot(const char *C, const char *dir, const char *gp) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "qstar %s: fork failed: %s\n", C, strerror(errno));
        return 1;
    }
    if (pid == 0) {
        if (chdir(dir) != 0) _exit(126);
        FILE *lf = freopen("gnuplot.log", "w", stderr); // gnuplot's warnings (e.g. one-point ranges)
        (void)lf;
        execlp("gnuplot", "gnuplot", "plot.gp", (char *)NULL);
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            fprintf(stderr, "qstar %s: waiting for gnuplot failed: %s\n", C, strerror(errno));
            return 1;
        }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
        fprintf(stderr, "qstar %s: gnuplot not found; install it (Debian/Ubuntu: apt-get install gnuplot-nox), "
                        "or run gnuplot plot.gp in %s elsewhere\n", C, dir);
        return 1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "qstar %s: gnuplot failed on %s (exit status %d; its messages: %s/gnuplot.log)\n", C, gp,
                WIFEXITED(status) ? WEXITSTATUS(status) : -1, dir);
        return 1;
    }
    return 0;
}

static int plot_into(const char *C, FILE *in, const char *log_path, const char *dir) {
    plot_data d;
    memset(&d, 0, sizeof d);
    int rc = read_log(C, in, log_path, dir, &d);
    if (rc) return rc;
    char gp[4200];
    snprintf(gp, sizeof gp, "%s/plot.gp", dir);
    const char *made[N_CHARTS];
    int n_made = 0;
    if ((rc = write_script(C, gp, log_path, &d, made, &n_made))) return rc;
    if ((rc = run_gnuplot(C, dir, gp))) return rc;
    printf("%s: %ld training and %ld eval records;", log_path, d.n_train, d.n_eval);
    for (int k = 0; k < n_made; k++) printf(" %s/%s", dir, made[k]);
    printf("\n");
    if (d.bad) fprintf(stderr, "qstar %s: %ld line(s) of %s were not JSON objects and were skipped\n", C, d.bad, log_path);
    return 0;
}

/*
 * kvstat - answers and pictures from a capture of kvtap NDJSON
 * (docs/ndjson.md): per-pod summary, rates over time, block lifetimes,
 * prefix sharing across pods, a router what-if, and a live view.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "input.h"
#include "plot.h"
#include "report.h"
#include "route.h"
#include "table.h"
#include "top.h"
#include "track.h"

/* Bad lines reported one by one before they are only counted. */
#define MAX_LINE_WARNINGS 10

static const char usage_text[] =
    "Usage: kvstat COMMAND [options] [FILE...]\n"
    "Answer questions about a capture of kvtap NDJSON (what kvsub and\n"
    "kvreplay print), read from the FILEs in order, or from stdin when\n"
    "there is none or a FILE is -.\n"
    "\n"
    "Commands:\n"
    "  summary   per (pod, dp_rank): events by type, blocks stored and\n"
    "            removed, peak and final occupancy, first and last ts,\n"
    "            events/s, gaps, restarts, decode errors\n"
    "  rate      per (pod, dp_rank) and interval: blocks stored/s and\n"
    "            removed/s, occupancy, in the capture's own timestamps\n"
    "  lifetime  per (pod, dp_rank, medium): how long blocks lived from\n"
    "            store to removal (p50, p90, p99, max); blocks still held\n"
    "            at the end or at a restart are counted as censored\n"
    "  sharing   per (pod, dp_rank) and for all: distinct block keys,\n"
    "            blocks computed, and how many of them another pod held\n"
    "            at the time (what a prefix-aware router could have saved)\n"
    "  route     hits of the capture's requests under longest-prefix,\n"
    "            round-robin and random routing, against the capture's own\n"
    "  top       a live view of a pipeline on stdin, redrawn every second\n"
    "\n"
    "Options:\n"
    "  --tsv              tab-separated values with a header line\n"
    "  -H, --human        an aligned table for people\n"
    "  --plot FILE        also draw the command's figure into FILE, a .png\n"
    "                     or .svg (with gnuplot)\n"
    "  --every DUR        rate: length of an interval (default 10s)\n"
    "  --hist             lifetime: histogram rows (log2 bins) instead\n"
    "  --holders          sharing: keys held by exactly N pods instead\n"
    "  --hash SCHEME      sharing, route: block keys as aibrix (default),\n"
    "                     dynamo or llmd compute them\n"
    "  --seed N           aibrix: root seed (default 0)\n"
    "  --hash-seed S      llmd: hash seed (default empty)\n"
    "  -m, --model NAME   llmd: the model of lines without \"model\"\n"
    "  --capacity N       route: blocks each simulated pod holds (default:\n"
    "                     the pod's peak in the capture; 0: unlimited)\n"
    "  --random-seed N    route: seed of the random policy (default 1)\n"
    "  --requests FILE    route: real prompts, one JSON array of token ids\n"
    "                     per line, instead of the capture's chains\n"
    "  --block-size N     route --requests: tokens per block (default: the\n"
    "                     capture's)\n"
    "  -q, --quiet        errors only on stderr\n"
    "  -v, --verbose      more diagnostics\n"
    "  -V, --version      print the version and library versions\n"
    "  -h, --help         print this help\n"
    "\n"
    "OUTPUT\n"
    "  One JSON object per row on stdout (NDJSON); --tsv and -H print the\n"
    "  same rows as TSV or as a table.  Rows come sorted by pod, then\n"
    "  dp_rank (null first).  route and sharing read the whole capture and\n"
    "  replay it in ts order; the others in input order.  With stderr on\n"
    "  a terminal, progress is shown there while reading.\n"
    "\n"
    "EXIT STATUS\n"
    "  0    done (lines that are not kvtap NDJSON are reported and skipped)\n"
    "  1    a file cannot be read, an unknown format version, gnuplot\n"
    "       failed, a write error\n"
    "  2    usage error\n"
    "  130  interrupted (SIGINT), after printing what was read; 143 SIGTERM\n"
    "\n"
    "EXAMPLES\n"
    "  kvstat summary -H capture.ndjson\n"
    "  kvstat rate --every 1s --plot rate.png capture.ndjson\n"
    "  kvstat lifetime --hist --tsv pod-*.ndjson > life.tsv\n"
    "  kvstat route -H --capacity 4096 capture.ndjson\n"
    "  kvsub pod-a=tcp://10.0.0.5:5557 | kvstat top\n";

enum cmd {
    CMD_SUMMARY,
    CMD_RATE,
    CMD_LIFETIME,
    CMD_SHARING,
    CMD_ROUTE,
    CMD_TOP
};

struct opts {
    enum cmd cmd;
    enum table_format fmt;
    const char *plot;
    double every;
    int hist, holders;
    enum blockkey_scheme scheme;
    uint64_t seed, random_seed, capacity;
    int capacity_set;
    const char *requests;
    uint64_t block_size;
    const char *hash_seed;
    const char *model;
    char **files;
    size_t n_files;
};

static int
parse_cmd(const char *s, enum cmd *out)
{
    static const char *const names[] = {"summary", "rate",  "lifetime",
                                        "sharing", "route", "top"};

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (enum cmd)i;
            return 0;
        }
    }
    return -1;
}

enum {
    OPT_TSV = 256,
    OPT_PLOT,
    OPT_EVERY,
    OPT_HIST,
    OPT_HOLDERS,
    OPT_HASH,
    OPT_SEED,
    OPT_HASH_SEED,
    OPT_CAPACITY,
    OPT_RANDOM_SEED,
    OPT_REQUESTS,
    OPT_BLOCK_SIZE
};

static const struct option longopts[] = {
    {"tsv", no_argument, NULL, OPT_TSV},
    {"human", no_argument, NULL, 'H'},
    {"plot", required_argument, NULL, OPT_PLOT},
    {"every", required_argument, NULL, OPT_EVERY},
    {"hist", no_argument, NULL, OPT_HIST},
    {"holders", no_argument, NULL, OPT_HOLDERS},
    {"hash", required_argument, NULL, OPT_HASH},
    {"seed", required_argument, NULL, OPT_SEED},
    {"hash-seed", required_argument, NULL, OPT_HASH_SEED},
    {"model", required_argument, NULL, 'm'},
    {"capacity", required_argument, NULL, OPT_CAPACITY},
    {"random-seed", required_argument, NULL, OPT_RANDOM_SEED},
    {"requests", required_argument, NULL, OPT_REQUESTS},
    {"block-size", required_argument, NULL, OPT_BLOCK_SIZE},
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"version", no_argument, NULL, 'V'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0}};

static void
parse_number_opt(const char *flag, const char *arg, uint64_t *out)
{
    *out = cli_arg_count(flag, arg, 0, UINT64_MAX);
}

/* Options that only some commands take. */
static void
check_opts(const struct opts *o, int every_set)
{
    static const char *const names[] = {"summary", "rate",  "lifetime",
                                        "sharing", "route", "top"};
    const char *c = names[o->cmd];

    if (every_set && o->cmd != CMD_RATE)
        cli_usage_error("--every: only for rate, not %s", c);
    if (o->hist && o->cmd != CMD_LIFETIME)
        cli_usage_error("--hist: only for lifetime, not %s", c);
    if (o->holders && o->cmd != CMD_SHARING)
        cli_usage_error("--holders: only for sharing, not %s", c);
    if (o->capacity_set && o->cmd != CMD_ROUTE)
        cli_usage_error("--capacity: only for route, not %s", c);
    if (o->requests != NULL && o->cmd != CMD_ROUTE)
        cli_usage_error("--requests: only for route, not %s", c);
    if (o->block_size != 0 && o->requests == NULL)
        cli_usage_error("--block-size: only with route --requests");
    if (o->plot != NULL && (o->cmd == CMD_SUMMARY || o->cmd == CMD_TOP))
        cli_usage_error("--plot: %s has no figure (rate, lifetime, sharing "
                        "and route do)",
                        c);
    if (o->plot != NULL && plot_format(o->plot) < 0)
        cli_usage_error("--plot: '%s' does not end in .png or .svg", o->plot);
    if (o->cmd == CMD_TOP && o->n_files > 1)
        cli_usage_error("top: one input only (got %zu)", o->n_files);
}

static void
parse_args(int argc, char **argv, struct opts *o)
{
    int c, every_set = 0;

    memset(o, 0, sizeof *o);
    o->every = 10;
    o->random_seed = 1;
    o->hash_seed = "";
    o->scheme = BLOCKKEY_AIBRIX;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":Hm:qvVh", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_TSV:
            o->fmt = TABLE_TSV;
            break;
        case 'H':
            o->fmt = TABLE_HUMAN;
            break;
        case OPT_PLOT:
            o->plot = optarg;
            break;
        case OPT_EVERY:
            o->every = (double)cli_arg_duration("--every", optarg, 1) / 1000;
            every_set = 1;
            break;
        case OPT_HIST:
            o->hist = 1;
            break;
        case OPT_HOLDERS:
            o->holders = 1;
            break;
        case OPT_HASH:
            if (blockkey_scheme_parse(optarg, &o->scheme) == -1)
                cli_usage_error("--hash: '%s' is not aibrix, dynamo or llmd",
                                optarg);
            break;
        case OPT_SEED:
            parse_number_opt("--seed", optarg, &o->seed);
            break;
        case OPT_HASH_SEED:
            o->hash_seed = optarg;
            break;
        case 'm':
            o->model = optarg;
            break;
        case OPT_CAPACITY:
            parse_number_opt("--capacity", optarg, &o->capacity);
            o->capacity_set = 1;
            break;
        case OPT_RANDOM_SEED:
            parse_number_opt("--random-seed", optarg, &o->random_seed);
            break;
        case OPT_REQUESTS:
            o->requests = optarg;
            break;
        case OPT_BLOCK_SIZE:
            o->block_size =
                cli_arg_count("--block-size", optarg, 1, UINT32_MAX);
            break;
        default:
            if (!cli_common_option(c, usage_text))
                cli_bad_option(c, argv);
        }
    }
    /* getopt_long moved the non-options to the end: command, then files. */
    if (optind >= argc)
        cli_usage_error("missing command (summary, rate, lifetime, sharing, "
                        "route or top)");
    if (parse_cmd(argv[optind], &o->cmd) == -1)
        cli_usage_error("'%s' is not a command (summary, rate, lifetime, "
                        "sharing, route or top)",
                        argv[optind]);
    o->files = argv + optind + 1;
    o->n_files = (size_t)(argc - optind - 1);
    check_opts(o, every_set);
}

struct ui {
    uint64_t warnings;
    int progress_shown;
    long long t0;
};

static void
on_warn(void *ctx, const char *name, uint64_t lineno, const char *msg)
{
    struct ui *ui = ctx;

    if (++ui->warnings > MAX_LINE_WARNINGS)
        return;
    if (ui->progress_shown)
        fputs("\r\033[K", stderr);
    log_warn("%s:%llu: %s%s", name, (unsigned long long)lineno, msg,
             ui->warnings == MAX_LINE_WARNINGS
                 ? " (further bad lines are only counted)"
                 : "");
}

/* "12.3 MiB" and the like, into out. */
static void
human_bytes(char *out, size_t n, double v)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;

    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(out, n, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
}

/* A pv-like status line on stderr: bytes, events, rate, percent, ETA. */
static void
on_progress(void *ctx, uint64_t bytes, uint64_t total, uint64_t events)
{
    struct ui *ui = ctx;
    double secs = (double)(cli_now_ms() - ui->t0) / 1000;
    char b[32];

    human_bytes(b, sizeof b, (double)bytes);
    fprintf(stderr, "\r\033[Kkvstat: %s  %llu events  %.0f events/s", b,
            (unsigned long long)events, secs > 0 ? (double)events / secs : 0);
    if (total > 0 && bytes > 0 && bytes <= total) {
        double eta = secs * (double)(total - bytes) / (double)bytes;

        fprintf(stderr, "  %3.0f%%  ETA %d:%02d", 100.0 * bytes / total,
                (int)eta / 60, (int)eta % 60);
    }
    ui->progress_shown = 1;
}

/*
 * route: every simulated pod holds what its real one held at most; a
 * stream that never held a keyed block (decode errors only, say) is a pod
 * we know nothing about, taken to be as large as the largest.
 */
static void
route_capacities(const struct opts *o, const struct track *t, uint64_t *cap,
                 size_t n)
{
    uint64_t largest = 0;

    for (size_t i = 0; i < n; i++) {
        cap[i] = o->capacity_set ? o->capacity
                                 : track_stream_at(t, i)->held_keys_peak;
        if (cap[i] > largest)
            largest = cap[i];
    }
    for (size_t i = 0; i < n && !o->capacity_set; i++) {
        if (cap[i] == 0)
            cap[i] = largest;
    }
}

/* Prints the command's rows; returns 0, or -1 (reason in err). */
static int
report(const struct opts *o, struct track *t, struct route *rt, struct buf *out,
       char *err, size_t errlen)
{
    struct table tb;
    struct route_result res[ROUTE_POLICY_COUNT];
    struct track_stream **st;
    uint64_t *cap = NULL;
    size_t n;
    int ret = -1;

    memset(res, 0, sizeof res);
    st = report_sorted(t, &n);
    if (st == NULL && n > 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    switch (o->cmd) {
    case CMD_SUMMARY:
        table_init(&tb, o->fmt, out, report_summary_cols, report_summary_ncols);
        report_summary(&tb, st, n);
        break;
    case CMD_RATE:
        table_init(&tb, o->fmt, out, report_rate_cols, report_rate_ncols);
        report_rate(&tb, st, n, o->every);
        break;
    case CMD_LIFETIME:
        if (o->hist) {
            table_init(&tb, o->fmt, out, report_hist_cols, report_hist_ncols);
            report_hist(&tb, t, st, n);
        } else {
            table_init(&tb, o->fmt, out, report_lifetime_cols,
                       report_lifetime_ncols);
            report_lifetime(&tb, t, st, n);
        }
        break;
    case CMD_SHARING:
        if (o->holders) {
            table_init(&tb, o->fmt, out, report_holders_cols,
                       report_holders_ncols);
            report_holders(&tb, t);
        } else {
            table_init(&tb, o->fmt, out, report_sharing_cols,
                       report_sharing_ncols);
            report_sharing(&tb, t, st, n);
        }
        break;
    default:
        n = track_stream_count(t);
        cap = calloc(n ? n : 1, sizeof *cap);
        if (cap == NULL)
            goto oom;
        route_capacities(o, t, cap, n);
        if (route_failed(rt) || route_run(rt, n, cap, res) == -1)
            goto oom;
        table_init(&tb, o->fmt, out, report_route_cols, report_route_ncols);
        report_route(&tb, res, route_external(rt));
        break;
    }
    if (table_finish(&tb) == -1) {
        table_free(&tb);
        goto oom;
    }
    table_free(&tb);
    ret = 0;
    if (o->plot != NULL)
        ret = plot_draw(o->plot,
                        o->cmd == CMD_RATE       ? PLOT_RATE
                        : o->cmd == CMD_LIFETIME ? PLOT_LIFETIME
                        : o->cmd == CMD_SHARING  ? PLOT_SHARING
                                                 : PLOT_ROUTE,
                        t, o->every, res, err, errlen);
    goto out;
oom:
    snprintf(err, errlen, "out of memory");
out:
    free(cap);
    free(st);
    return ret;
}

static struct track *
make_track(const struct opts *o, struct route *rt)
{
    struct track_opts to;

    memset(&to, 0, sizeof to);
    to.every = o->cmd == CMD_RATE ? o->every : 0;
    to.lifetimes = o->cmd == CMD_LIFETIME;
    to.keys = o->cmd == CMD_SHARING || o->cmd == CMD_ROUTE;
    to.key_cfg.scheme = o->scheme;
    to.key_cfg.seed = o->seed;
    to.hash_seed = o->hash_seed;
    to.default_model = o->model;
    if (o->cmd == CMD_ROUTE && o->requests == NULL) {
        to.on_request = route_request;
        to.ctx = rt;
    }
    return track_new(&to);
}

/* route --requests: the real prompts, keyed like the capture's blocks. */
static int
load_requests(const struct opts *o, const struct track *t, struct route *rt,
              char *err, size_t errlen)
{
    struct blockkey_cfg cfg = {o->scheme, o->seed, 0};
    uint32_t bs = o->block_size ? (uint32_t)o->block_size : track_block_size(t);
    const char *model = o->model ? o->model : "";

    if (bs == 0) {
        snprintf(err, errlen,
                 "--requests: the capture has no block size; "
                 "give --block-size");
        return -1;
    }
    if (o->scheme == BLOCKKEY_LLMD)
        cfg.llmd_root = blockkey_llmd_root(o->hash_seed, strlen(o->hash_seed),
                                           model, strlen(model));
    return route_load_prompts(rt, o->requests, bs, &cfg, err, errlen);
}

/* The whole run; returns the exit status (a signal: via *sig). */
static int
run(const struct opts *o, int *sig)
{
    struct ui ui = {0, 0, cli_now_ms()};
    struct input_opts io = {
        o->files, o->n_files, o->cmd == CMD_SHARING || o->cmd == CMD_ROUTE,
        on_warn,  NULL,       &ui};
    struct input_stats st;
    struct cli_out out;
    struct route *rt = NULL;
    struct track *t = NULL;
    char err[512];
    int status = 1;

    cli_out_init(&out, STDOUT_FILENO);
    if (isatty(STDERR_FILENO) && cli_verbosity > 0)
        io.progress = on_progress;
    if ((o->cmd == CMD_ROUTE && (rt = route_new(o->random_seed)) == NULL) ||
        (t = make_track(o, rt)) == NULL) {
        log_error("out of memory");
        goto out;
    }
    if (input_run(&io, t, &st, err, sizeof err) == -1) {
        if (ui.progress_shown)
            fputs("\r\033[K", stderr);
        log_error("%s", err);
        goto out;
    }
    if (ui.progress_shown)
        fputs("\r\033[K", stderr);
    if (ui.warnings > 0)
        log_warn("%llu lines were not kvtap NDJSON and were skipped",
                 (unsigned long long)ui.warnings);
    track_finish(t);
    if (o->requests != NULL && load_requests(o, t, rt, err, sizeof err)) {
        log_error("%s", err);
        goto out;
    }
    if (report(o, t, rt, &out.buf, err, sizeof err) == -1) {
        cli_out_flush(&out);
        log_error("%s", err);
        goto out;
    }
    status = 0;
    if (st.interrupted)
        *sig = cli_signal;
out:
    cli_out_flush(&out);
    if (out.err) {
        log_error("writing output: %s", strerror(out.err));
        status = 1;
    }
    cli_out_free(&out);
    track_free(t);
    route_free(rt);
    return status;
}

/* kvstat top: the live view on stdout, from stdin or one FILE. */
static int
top(const char *path, int *sig)
{
    struct cli_out out;
    char err[512];
    int fd = STDIN_FILENO, interrupted, status = 0;

    if (strcmp(path, "-") != 0 &&
        (fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
        log_error("%s: %s", path, strerror(errno));
        return 1;
    }
    cli_out_init(&out, STDOUT_FILENO);
    if (top_run(fd, &out, &interrupted, err, sizeof err) == -1) {
        if (!out.closed) {
            log_error("%s", err);
            status = 1;
        }
    } else if (interrupted) {
        *sig = cli_signal;
    }
    cli_out_flush(&out);
    cli_out_free(&out);
    if (fd != STDIN_FILENO)
        close(fd);
    return status;
}

int
main(int argc, char **argv)
{
    struct opts o;
    int sig = 0, status;

    cli_prog = "kvstat";
    parse_args(argc, argv, &o);
    if (cli_signals_install() == -1) {
        log_error("cannot install signal handlers: %s", strerror(errno));
        return 1;
    }
    if (o.cmd == CMD_TOP)
        status = top(o.n_files ? o.files[0] : "-", &sig);
    else
        status = run(&o, &sig);
    if (sig != 0)
        cli_reraise(sig);
    return status;
}

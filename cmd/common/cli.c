/*
 * cli.c - diagnostics, signals and checked output shared by the commands.
 */
#include "cli.h"

#include "parse.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#ifndef KVTAP_VERSION
#define KVTAP_VERSION "0.1.0"
#endif

const char *cli_prog = "kvtap";
int cli_verbosity = 1;
volatile sig_atomic_t cli_signal;
static volatile sig_atomic_t got_usr1;
static int wake_pipe[2] = {-1, -1};

void
cli_log(int level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warning", "info", "debug"};
    char msg[1024];
    va_list ap;

    if (level > cli_verbosity)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* One fprintf per line so concurrent writers do not interleave. */
    fprintf(stderr, "%s: %s: %s\n", cli_prog, names[level > 3 ? 3 : level],
            msg);
}

void
cli_note(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    if (cli_verbosity < LOG_WARN)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s\n", cli_prog, msg);
}

void
cli_usage_error(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s\nTry '%s --help'.\n", cli_prog, msg, cli_prog);
    exit(2);
}

/* A duration as the user would write it: the largest unit that is exact. */
static void
format_ms(char *out, size_t len, uint64_t ms)
{
    if (ms == 0)
        snprintf(out, len, "0");
    else if (ms % 3600000 == 0)
        snprintf(out, len, "%lluh", (unsigned long long)(ms / 3600000));
    else if (ms % 60000 == 0)
        snprintf(out, len, "%llum", (unsigned long long)(ms / 60000));
    else if (ms % 1000 == 0)
        snprintf(out, len, "%llus", (unsigned long long)(ms / 1000));
    else
        snprintf(out, len, "%llums", (unsigned long long)ms);
}

/* A size as the user would write it: the largest suffix that is exact. */
static void
format_size(char *out, size_t len, uint64_t v)
{
    static const char suffix[] = "GMK";

    for (int i = 0; i < 3; i++) {
        unsigned shift = 10 * (unsigned)(3 - i);
        if (v != 0 && v % (1ull << shift) == 0) {
            snprintf(out, len, "%llu%c", (unsigned long long)(v >> shift),
                     suffix[i]);
            return;
        }
    }
    snprintf(out, len, "%llu", (unsigned long long)v);
}

static void
format_count(char *out, size_t len, uint64_t v)
{
    snprintf(out, len, "%llu", (unsigned long long)v);
}

/*
 * Ends the process unless parsing s returned rc 0 with v in [min, max]:
 * a malformed value "is not" what not_a says, a well-formed one out of
 * range names the range, written by fmt as the user would write it.
 */
static void
arg_check(const char *flag, const char *s, int rc, uint64_t v, uint64_t min,
          uint64_t max, const char *not_a,
          void (*fmt)(char *, size_t, uint64_t))
{
    char lo[32], hi[32];

    if (rc == -1 && errno == EINVAL)
        cli_usage_error("%s: '%s' is not %s", flag, s, not_a);
    if (rc == -1 || v < min || v > max) {
        fmt(lo, sizeof lo, min);
        fmt(hi, sizeof hi, max);
        cli_usage_error("%s: '%s' is out of range (%s..%s)", flag, s, lo, hi);
    }
}

uint64_t
cli_arg_duration(const char *flag, const char *s, uint64_t min_ms)
{
    return cli_arg_duration_in(flag, s, min_ms, CLI_DURATION_MAX_MS);
}

uint64_t
cli_arg_duration_in(const char *flag, const char *s, uint64_t min_ms,
                    uint64_t max_ms)
{
    uint64_t ms = 0;
    int rc = parse_duration_ms(s, &ms);

    arg_check(flag, s, rc, ms, min_ms, max_ms,
              "a duration (e.g. 250ms, 5s, 2m)", format_ms);
    return ms;
}

uint64_t
cli_arg_interval(const char *flag, const char *s, int off_ok)
{
    uint64_t ms = 0;
    char hi[32];

    if (!off_ok)
        return cli_arg_duration(flag, s, CLI_INTERVAL_MIN_MS);
    int rc = parse_duration_ms(s, &ms);

    if (rc == 0 &&
        (ms == 0 || (ms >= CLI_INTERVAL_MIN_MS && ms <= CLI_DURATION_MAX_MS)))
        return ms;
    /* Malformed: the usual message; else the range, naming 0 as well. */
    if (rc == -1 && errno == EINVAL)
        cli_arg_duration(flag, s, 0);
    format_ms(hi, sizeof hi, CLI_DURATION_MAX_MS);
    cli_usage_error("%s: '%s' is out of range (0 or %ums..%s)", flag, s,
                    (unsigned)CLI_INTERVAL_MIN_MS, hi);
}

uint64_t
cli_arg_count(const char *flag, const char *s, uint64_t min, uint64_t max)
{
    uint64_t v = 0;
    /* The range is checked here, so that any number parses. */
    int rc = parse_u64(s, 0, UINT64_MAX, &v);

    arg_check(flag, s, rc, v, min, max, "a whole number", format_count);
    return v;
}

uint64_t
cli_arg_size(const char *flag, const char *s, uint64_t min, uint64_t max)
{
    uint64_t v = 0;
    int rc = parse_size(s, &v);

    arg_check(flag, s, rc, v, min, max, "a size (e.g. 4096, 64K, 1M)",
              format_size);
    return v;
}

double
cli_arg_rate(const char *flag, const char *s)
{
    double v;

    if (parse_rate(s, &v) == -1)
        cli_usage_error("%s: '%s' is not a rate (e.g. 100, 100/s, 5/m)", flag,
                        s);
    return v;
}

enum kv_engine
cli_arg_engine(const char *flag, const char *s)
{
    static const struct {
        const char *name;
        enum kv_engine engine;
    } names[] = {
        {"auto", KV_ENGINE_AUTO},       {"vllm", KV_ENGINE_VLLM},
        {"sglang", KV_ENGINE_SGLANG},   {"trtllm", KV_ENGINE_TRTLLM},
        {"atom", KV_ENGINE_ATOM},       {"mooncake", KV_ENGINE_MOONCAKE},
        {"llmd-fs", KV_ENGINE_LLMD_FS},
    };

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0)
            return names[i].engine;
    cli_usage_error("%s: expected auto, vllm, sglang, trtllm, atom, mooncake "
                    "or llmd-fs, not '%s'",
                    flag, s);
}

void
cli_bad_option(int c, char *const argv[])
{
    const char *arg = argv[optind - 1];
    char shortopt[3] = {'-', (char)optopt, '\0'};

    /*
     * An unknown short option inside a cluster ("-bx") leaves optind on
     * the cluster; optopt names the letter.  Long options set optopt to 0
     * when unknown, and argv[optind - 1] is the option as typed.
     */
    if (c == '?' && optopt != 0)
        arg = shortopt;
    else if (c == ':' && arg[0] == '-' && arg[1] != '-' && optopt > 0 &&
             optopt < 128)
        arg = shortopt;
    if (c == ':')
        cli_usage_error("option '%s' needs a value", arg);
    cli_usage_error("unknown option '%s'", arg);
}

int
cli_common_option(int c, const char *help)
{
    switch (c) {
    case 'q':
        cli_verbosity = LOG_ERROR;
        return 1;
    case 'v':
        cli_verbosity = cli_verbosity < LOG_INFO ? LOG_INFO : cli_verbosity + 1;
        return 1;
    case 'V':
        cli_print_version();
        exit(fflush(stdout) == 0 ? 0 : 1);
    case 'h':
        fputs(help, stdout);
        exit(fflush(stdout) == 0 ? 0 : 1);
    default:
        return 0;
    }
}

void
cli_print_version(void)
{
    int major, minor, patch;

    zmq_version(&major, &minor, &patch);
    printf("%s %s (libzmq %d.%d.%d, msgpack-c %s, jansson %s)\n", cli_prog,
           KVTAP_VERSION, major, minor, patch, msgpack_version(),
           jansson_version_str());
}

static void
on_signal(int sig)
{
    int saved = errno;

    if (sig == SIGUSR1)
        got_usr1 = 1;
    else
        cli_signal = sig;
    /* write(2) is async-signal-safe; a full pipe already means "wake up". */
    if (wake_pipe[1] != -1) {
        ssize_t n = write(wake_pipe[1], "", 1);
        (void)n;
    }
    errno = saved;
}

int
cli_signal_fd(void)
{
    return wake_pipe[0];
}

void
cli_signal_drain(void)
{
    char tmp[64];

    while (wake_pipe[0] != -1 && read(wake_pipe[0], tmp, sizeof tmp) > 0)
        ;
}

int
cli_take_usr1(void)
{
    if (!got_usr1)
        return 0;
    got_usr1 = 0;
    return 1;
}

int
cli_signals_install(void)
{
    struct sigaction sa;
    const int sigs[] = {SIGINT, SIGTERM, SIGUSR1};

    if (wake_pipe[0] == -1 && pipe2(wake_pipe, O_NONBLOCK | O_CLOEXEC) == -1)
        return -1;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: blocking calls must return EINTR */
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        if (sigaction(sigs[i], &sa, NULL) == -1)
            return -1;
    }
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &sa, NULL) == -1)
        return -1;
    return 0;
}

void
cli_reraise(int sig)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
    raise(sig);
    /* Only reached if the signal was blocked. */
    _exit(128 + sig);
}

void
cli_out_init(struct cli_out *o, int fd)
{
    memset(o, 0, sizeof *o);
    o->fd = fd;
    o->high_water = 64 * 1024;
}

int
cli_out_flush(struct cli_out *o)
{
    size_t off = 0;

    if (o->closed || o->err) {
        o->buf.len = 0;
        return -1;
    }
    if (o->buf.oom) {
        o->err = ENOMEM;
        return -1;
    }
    while (off < o->buf.len) {
        ssize_t n = write(o->fd, o->buf.p + off, o->buf.len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EPIPE)
                o->closed = 1;
            else
                o->err = errno;
            o->buf.len = 0;
            return -1;
        }
        off += (size_t)n;
    }
    o->buf.len = 0;
    return 0;
}

int
cli_out_maybe_flush(struct cli_out *o)
{
    if (o->buf.len < o->high_water && !o->buf.oom)
        return 0;
    return cli_out_flush(o);
}

void
cli_out_free(struct cli_out *o)
{
    if (o == NULL)
        return;
    buf_free(&o->buf);
}

long long
cli_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long
cli_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

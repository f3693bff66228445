/*
 * cli.h - what every kvtap command shares: diagnostics on stderr, usage
 * errors, signals, checked output on stdout, --version.  This is the only
 * code besides each main.c that prints or exits (docs/cli.md).
 */
#ifndef KVTAP_CLI_H
#define KVTAP_CLI_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "event.h"

enum { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* Set once by main: the program name and the -q/-v level (default 1). */
extern const char *cli_prog;
extern int cli_verbosity;

/* "prog: level: message\n" on stderr when level <= cli_verbosity. */
void cli_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_error(...) cli_log(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) cli_log(LOG_WARN, __VA_ARGS__)
#define log_info(...) cli_log(LOG_INFO, __VA_ARGS__)
#define log_debug(...) cli_log(LOG_DEBUG, __VA_ARGS__)

/*
 * "prog: message\n" on stderr at the default verbosity and above (not with
 * -q): news the user asked for by running the command, such as where a
 * subscriber joined a stream, that is neither a warning nor debug noise.
 */
void cli_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "prog: message" and "Try 'prog --help'." on stderr, then exit(2). */
void cli_usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

/*
 * Option values, parsed with lib/parse.c and checked against the same
 * limits in every tool (docs/cli.md#options).  A bad value ends the process
 * through cli_usage_error with one message format, for example
 *   "kvsub: --idle: 'x' is not a duration (e.g. 250ms, 5s, 2m)"
 *   "kvsub: --idle: '0' is out of range (1ms..168h)"
 * flag is the option as the user knows it ("--timeout").
 */

/* The longest duration any option takes: one week, and it fits an int. */
#define CLI_DURATION_MAX_MS (168ull * 3600 * 1000)

/*
 * A duration in milliseconds in [min_ms, CLI_DURATION_MAX_MS]; min_ms is 1
 * where 0 would make no sense (a timeout, an interval), else 0.
 */
uint64_t cli_arg_duration(const char *flag, const char *s, uint64_t min_ms);

/*
 * The shortest period of work a tool repeats on its own (a snapshot, a
 * stats line, a warning, a redelivery): below it the work is all the tool
 * does (docs/cli.md#options).
 */
#define CLI_INTERVAL_MIN_MS 100

/*
 * A period in [CLI_INTERVAL_MIN_MS, CLI_DURATION_MAX_MS], or 0 (off) when
 * off_ok; out of range is "'5ms' is out of range (0 or 100ms..168h)".
 */
uint64_t cli_arg_interval(const char *flag, const char *s, int off_ok);

/* The same for the rare option whose range is another (a retention). */
uint64_t cli_arg_duration_in(const char *flag, const char *s, uint64_t min_ms,
                             uint64_t max_ms);

/* A whole number (a count, a seq, a seed) in [min, max]. */
uint64_t cli_arg_count(const char *flag, const char *s, uint64_t min,
                       uint64_t max);

/* A size in bytes with an optional K, M or G suffix, in [min, max]. */
uint64_t cli_arg_size(const char *flag, const char *s, uint64_t min,
                      uint64_t max);

/* A rate "N[/s|/m|/h]" in events per second, above 0. */
double cli_arg_rate(const char *flag, const char *s);

/*
 * An engine name for --engine: "auto", "vllm", "sglang", "trtllm", "atom",
 * "mooncake" or "llmd-fs" (docs/protocol.md#which-engine-auto).
 */
enum kv_engine cli_arg_engine(const char *flag, const char *s);

/*
 * Ends the process with the usage error for what getopt_long returned when
 * it did not return an option: "option '--x' needs a value" (c == ':', for
 * an optstring that starts with ':') or "unknown option '--x'".  Callers
 * set opterr = 0 so that getopt prints nothing itself.
 */
void cli_bad_option(int c, char *const argv[]) __attribute__((noreturn));

/*
 * The options every tool spells the same: -q (errors only), -v (repeatable:
 * info, then debug), -V (version) and -h (help, the tool's --help text).
 * Returns 1 when c was one of them, 0 otherwise; -V and -h print on stdout
 * and end the process (exit 0, or 1 when stdout cannot be written).  A
 * tool's option switch ends with
 *     default: if (!cli_common_option(c, help)) cli_bad_option(c, argv);
 */
int cli_common_option(int c, const char *help);

/* "prog VERSION (libzmq x, msgpack-c y, jansson z)" on stdout. */
void cli_print_version(void);

/*
 * The last SIGINT/SIGTERM received (0 if none) and whether SIGUSR1 arrived
 * since cli_take_usr1() last returned true.  Handlers only set these.
 */
extern volatile sig_atomic_t cli_signal;
int cli_take_usr1(void);

/*
 * Installs the handlers without SA_RESTART, so blocking calls return EINTR,
 * and ignores SIGPIPE so that writes return EPIPE.  Returns 0 or -1.
 */
int cli_signals_install(void);

/*
 * The read end of a self-pipe that becomes readable when a signal arrives
 * (-1 before cli_signals_install).  A loop adds it to its poll set, so a
 * signal that lands between checking cli_signal and blocking in poll still
 * wakes it; cli_signal_drain() empties the pipe after a wake-up.
 */
int cli_signal_fd(void);
void cli_signal_drain(void);

/*
 * Ends the process the way the signal would have (exit status 128+sig), after
 * the caller has flushed and closed everything (docs/cli.md).
 */
void cli_reraise(int sig) __attribute__((noreturn));

/*
 * Checked, block-buffered output to a descriptor.  Data is appended to buf
 * and written in large chunks; a reader that went away (EPIPE) sets closed,
 * any other failure sets err.  Both stop further writes.
 */
struct cli_out {
    int fd;
    struct buf buf;
    int closed;        /* EPIPE: the reader left, a normal end (exit 0) */
    int err;           /* errno of a failed write, 0 if none */
    size_t high_water; /* flush when buf.len reaches this (default 64 KiB) */
};

void cli_out_init(struct cli_out *o, int fd);

/* Writes what is buffered.  Returns 0, or -1 when closed or err is set. */
int cli_out_flush(struct cli_out *o);

/* Flushes when the buffer is past its high-water mark. */
int cli_out_maybe_flush(struct cli_out *o);

void cli_out_free(struct cli_out *o);

/* Milliseconds from a monotonic clock. */
long long cli_now_ms(void);

/* Microseconds from the same clock, for round trips and time shares. */
long long cli_now_us(void);

#endif

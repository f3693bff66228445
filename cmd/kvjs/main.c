/*
 * kvjs - kvtap's event stream through NATS JetStream: `pub` writes kvtap
 * NDJSON into a durable, replicated stream, `sub` reads it back
 * (docs/cluster.md).  The only kvtap tool that links libnats.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "conn.h"
#include "parse.h"
#include "pub.h"
#include "snap.h"
#include "sub.h"

static const char usage_text[] =
    "Usage: kvjs pub [OPTION]...\n"
    "  or:  kvjs sub [OPTION]...\n"
    "  or:  kvjs info [OPTION]...\n"
    "  or:  kvjs snap put|get|info NAME [OPTION]...\n"
    "Carry kvtap NDJSON through a NATS JetStream stream: `pub` reads\n"
    "kvsub's output on stdin and stores each engine batch (the lines with\n"
    "the same pod, dp_rank and seq) as one message; `sub` writes the\n"
    "stream's lines back on stdout with \"js_seq\" added; `info` prints\n"
    "the stream's state as one JSON line; `snap` stores (put, from stdin),\n"
    "fetches (get, to stdout) or describes (info) an index snapshot in a\n"
    "JetStream key-value bucket, checked by length and hash.\n"
    "\n"
    "Options for every command:\n"
    "  -s, --server URLS       NATS server URLs, comma-separated (default\n"
    "                          nats://127.0.0.1:4222)\n"
    "      --stream NAME       the stream (default KVTAP)\n"
    "      --prefix SUBJ       subject prefix (default kvtap.ev); a pod's\n"
    "                          batches go to PREFIX.<escaped pod>\n"
    "      --connect-retries N  connection attempts before giving up\n"
    "                          (default 5, 1s apart)\n"
    "      --stats             print counters as one JSON line on stderr\n"
    "  -q, --quiet             errors only on stderr\n"
    "  -v, --verbose           more diagnostics (-vv: debug)\n"
    "  -h, --help              show this help and exit\n"
    "  -V, --version           show version information and exit\n"
    "\n"
    "Options for pub:\n"
    "      --no-create         fail when the stream is missing instead of\n"
    "                          creating it\n"
    "      --max-age DUR       new stream: drop messages older than DUR\n"
    "                          (default: keep)\n"
    "      --max-bytes N       new stream: keep at most N bytes (default:\n"
    "                          unlimited)\n"
    "      --replicas N        new stream: copies on N servers (default 1)\n"
    "      --dup-window DUR    new stream: how long a Nats-Msg-Id is\n"
    "                          remembered for dedup (default 2m)\n"
    "      --max-pending N     batches sent since the oldest one not yet\n"
    "                          acknowledged (default 1024)\n"
    "      --ack-timeout DUR   give up on a batch not acknowledged within\n"
    "                          DUR despite resends (default 30s)\n"
    "      --linger DUR        wait this long for the rest of a batch when\n"
    "                          input pauses (default 5ms)\n"
    "\n"
    "Options for sub:\n"
    "      --durable NAME      a durable consumer: resume where it stopped\n"
    "      --from POS          first, last, new, a stream sequence number,\n"
    "                          or a TIME (default first)\n"
    "      --until TIME        stop at the first message stored after TIME\n"
    "      --pod NAME          only this pod's batches\n"
    "  -f, --follow            wait for new messages instead of exiting at\n"
    "                          the end of the stream\n"
    "      --ack-wait DUR      new consumer: redeliver a message not\n"
    "                          acknowledged within DUR (default 10s, at\n"
    "                          least 100ms)\n"
    "      --batch N           messages per fetch (default 1024)\n"
    "\n"
    "Options for snap:\n"
    "      --bucket NAME       the key-value bucket (default KVTAP_SNAP,\n"
    "                          created by put with --replicas copies)\n"
    "      --js-seq N          put: the last stream sequence the snapshot\n"
    "                          holds, kept in its manifest (default: the\n"
    "                          js_seq in the snapshot's header line)\n"
    "\n"
    "DUR is 250ms, 5s, 2m, 1h or a number of seconds.  TIME is\n"
    "2026-11-30T09:00:00Z (UTC), @UNIXSECONDS, or -DUR (that long ago).\n"
    "\n"
    "OUTPUT\n"
    "  sub: one JSON object per line, the kvtap NDJSON line as it was\n"
    "  published with \"js_seq\" (the stream sequence of its message) as\n"
    "  its last key.  A message whose lines are not kvtap NDJSON is\n"
    "  skipped with a warning and counted.  Each message is acknowledged\n"
    "  after its lines are written and flushed; one delivered again after\n"
    "  this run wrote it (its acknowledgment was lost) is acknowledged and\n"
    "  counted, not written twice, and deliveries lost on the way (a\n"
    "  connection broke) are read again at once, in order.  info: "
    "{\"stream\",\n"
    "  \"messages\", \"bytes\", \"first_seq\", \"last_seq\", \"last_ns\" "
    "(when\n"
    "  the last message was stored, ns since the epoch), \"consumers\",\n"
    "  \"replicas\"}.  snap put and snap info: the manifest,\n"
    "  {\"name\", \"gen\", \"chunks\", \"bytes\", \"xxh64\", \"js_seq\"}.\n"
    "\n"
    "EXIT STATUS\n"
    "  0    end of input (pub: every batch acknowledged), end of stream\n"
    "       (sub without --follow), or the reader closed the pipe\n"
    "  1    runtime failure (server unreachable, stream missing, a\n"
    "       permission denied by the server, a batch not acknowledged,\n"
    "       write error)\n"
    "  2    usage error\n"
    "  130  interrupted by SIGINT; 143 by SIGTERM (after draining)\n"
    "\n"
    "EXAMPLES\n"
    "  kvsub pod-a=tcp://10.0.0.5:5557,tcp://10.0.0.5:5600 | kvjs pub \\\n"
    "      -s nats://n1:4222,nats://n2:4222 --replicas 3 --max-age 24h\n"
    "  kvjs sub -s nats://n1:4222 --durable router-1 --follow |\n"
    "      kvindex serve -s /run/kv.sock\n"
    "  kvjs sub --pod pod-a --from 2026-11-30T09:00:00Z \\\n"
    "      --until 2026-11-30T09:05:00Z\n"
    "  kvjs info --stream KVTAP\n"
    "  kvindex dump -s /run/kv.sock | kvjs snap put router\n"
    "  kvjs snap get router > snap.ndjson\n";

enum {
    OPT_STREAM = 256,
    OPT_PREFIX,
    OPT_CONNECT_RETRIES,
    OPT_STATS,
    OPT_NO_CREATE,
    OPT_MAX_AGE,
    OPT_MAX_BYTES,
    OPT_REPLICAS,
    OPT_DUP_WINDOW,
    OPT_MAX_PENDING,
    OPT_ACK_TIMEOUT,
    OPT_LINGER,
    OPT_DURABLE,
    OPT_FROM,
    OPT_UNTIL,
    OPT_POD,
    OPT_ACK_WAIT,
    OPT_BATCH,
    OPT_BUCKET,
    OPT_JS_SEQ
};

static const struct option long_opts[] = {
    {"server", required_argument, NULL, 's'},
    {"stream", required_argument, NULL, OPT_STREAM},
    {"prefix", required_argument, NULL, OPT_PREFIX},
    {"connect-retries", required_argument, NULL, OPT_CONNECT_RETRIES},
    {"stats", no_argument, NULL, OPT_STATS},
    {"no-create", no_argument, NULL, OPT_NO_CREATE},
    {"max-age", required_argument, NULL, OPT_MAX_AGE},
    {"max-bytes", required_argument, NULL, OPT_MAX_BYTES},
    {"replicas", required_argument, NULL, OPT_REPLICAS},
    {"dup-window", required_argument, NULL, OPT_DUP_WINDOW},
    {"max-pending", required_argument, NULL, OPT_MAX_PENDING},
    {"ack-timeout", required_argument, NULL, OPT_ACK_TIMEOUT},
    {"linger", required_argument, NULL, OPT_LINGER},
    {"durable", required_argument, NULL, OPT_DURABLE},
    {"from", required_argument, NULL, OPT_FROM},
    {"until", required_argument, NULL, OPT_UNTIL},
    {"pod", required_argument, NULL, OPT_POD},
    {"follow", no_argument, NULL, 'f'},
    {"ack-wait", required_argument, NULL, OPT_ACK_WAIT},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"bucket", required_argument, NULL, OPT_BUCKET},
    {"js-seq", required_argument, NULL, OPT_JS_SEQ},
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* Retention and the duplicate window may be long: ten years. */
#define MAX_AGE_MS (3650ull * 24 * 3600 * 1000)

static void
defaults(struct js_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->servers = "nats://127.0.0.1:4222";
    o->stream = "KVTAP";
    o->prefix = "kvtap.ev";
    o->connect_retries = 5;
    o->connect_wait = 1000;
    o->create = 1;
    o->max_bytes = -1;
    o->replicas = 1;
    o->dup_window_ms = 120000;
    o->max_pending = 1024;
    o->ack_timeout = 30000;
    o->linger_ms = 5;
    o->ack_wait_ms = 10000;
    o->fetch_batch = 1024;
    o->bucket = "KVTAP_SNAP";
}

/* Options that take a value and only set a field of o. */
static int
set_value(struct js_opts *o, int c, const char *a)
{
    switch (c) {
    case 's':
        o->servers = a;
        break;
    case OPT_STREAM:
        o->stream = a;
        break;
    case OPT_PREFIX:
        o->prefix = a;
        break;
    case OPT_CONNECT_RETRIES:
        o->connect_retries =
            (int)cli_arg_count("--connect-retries", a, 1, 1000);
        break;
    case OPT_MAX_AGE:
        o->max_age_ms = cli_arg_duration_in("--max-age", a, 0, MAX_AGE_MS);
        break;
    case OPT_MAX_BYTES:
        o->max_bytes = (int64_t)cli_arg_size("--max-bytes", a, 1, INT64_MAX);
        break;
    case OPT_REPLICAS:
        o->replicas = (int)cli_arg_count("--replicas", a, 1, 5);
        break;
    case OPT_DUP_WINDOW:
        o->dup_window_ms =
            cli_arg_duration_in("--dup-window", a, 0, MAX_AGE_MS);
        break;
    case OPT_MAX_PENDING:
        o->max_pending = (int64_t)cli_arg_count("--max-pending", a, 1, 1000000);
        break;
    case OPT_ACK_TIMEOUT:
        o->ack_timeout = cli_arg_duration("--ack-timeout", a, 1);
        break;
    case OPT_LINGER:
        o->linger_ms = cli_arg_duration("--linger", a, 0);
        break;
    case OPT_DURABLE:
        o->durable = a;
        break;
    case OPT_FROM:
        o->from = a;
        break;
    case OPT_UNTIL:
        o->until = a;
        break;
    case OPT_POD:
        o->pod = a;
        break;
    case OPT_ACK_WAIT:
        o->ack_wait_ms = cli_arg_interval("--ack-wait", a, 0);
        break;
    case OPT_BATCH:
        o->fetch_batch = (int)cli_arg_count("--batch", a, 1, 100000);
        break;
    case OPT_BUCKET:
        o->bucket = a;
        break;
    case OPT_JS_SEQ:
        o->js_seq = cli_arg_count("--js-seq", a, 0, UINT64_MAX);
        o->has_js_seq = 1;
        break;
    default:
        return -1;
    }
    return 0;
}

static void
print_version(void)
{
    printf("%s %s (libnats %s)\n", cli_prog, KVTAP_VERSION, nats_GetVersion());
}

/* Parses argv; returns the operands (the command first), *n of them. */
static char **
parse_args(int argc, char **argv, struct js_opts *o, int *n)
{
    int64_t t;
    int c;

    defaults(o);
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":s:fqvhV", long_opts, NULL)) != -1) {
        if (optarg != NULL && set_value(o, c, optarg) == 0)
            continue;
        switch (c) {
        case OPT_STATS:
            o->stats = 1;
            break;
        case OPT_NO_CREATE:
            o->create = 0;
            break;
        case 'f':
            o->follow = 1;
            break;
        case 'V':
            /* kvjs's version line names libnats too. */
            print_version();
            exit(fflush(stdout) == 0 ? 0 : 1);
        default:
            if (!cli_common_option(c, usage_text))
                cli_bad_option(c, argv);
        }
    }
    if (optind >= argc)
        cli_usage_error("missing command: pub, sub, info or snap");
    if (o->from != NULL && sub_from_check(o->from) == -1)
        cli_usage_error("--from %s: not first, last, new, a sequence "
                        "number or a time",
                        o->from);
    if (o->until != NULL && sub_time_parse(o->until, &t) == -1)
        cli_usage_error("--until %s: not a time", o->until);
    if (o->durable != NULL && strpbrk(o->durable, ".*> \t") != NULL)
        cli_usage_error("--durable %s: may not contain '.', '*', '>' or "
                        "white space",
                        o->durable);
    *n = argc - optind;
    return argv + optind;
}

/* Runs the command args[0..n). */
static int
run_command(const struct js_opts *o, char **args, int n)
{
    const char *cmd = args[0];
    int want = strcmp(cmd, "snap") == 0 ? 3 : 1;

    if (n < want)
        cli_usage_error("snap: missing %s",
                        n == 1 ? "put, get or info" : "the snapshot name");
    if (n > want)
        cli_usage_error("unexpected argument: %s", args[want]);
    if (strcmp(cmd, "pub") == 0)
        return pub_run(o);
    if (strcmp(cmd, "sub") == 0)
        return sub_run(o);
    if (strcmp(cmd, "info") == 0)
        return sub_info(o);
    if (strcmp(cmd, "snap") == 0 &&
        (strcmp(args[1], "put") == 0 || strcmp(args[1], "get") == 0 ||
         strcmp(args[1], "info") == 0))
        return snap_run(o, args[1], args[2]);
    if (strcmp(cmd, "snap") == 0)
        cli_usage_error("snap: unknown command %s (put, get or info)", args[1]);
    cli_usage_error("unknown command: %s (pub, sub, info or snap)", cmd);
}

int
main(int argc, char **argv)
{
    struct js_opts o;
    char **args;
    int n, rc;

    cli_prog = "kvjs";
    args = parse_args(argc, argv, &o, &n);
    if (cli_signals_install() == -1) {
        log_error("cannot install signal handlers");
        return 1;
    }
    rc = run_command(&o, args, n);
    nats_Close();
    if (rc > 128)
        cli_reraise(rc - 128);
    return rc;
}

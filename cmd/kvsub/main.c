/*
 * kvsub - subscribe to LLM engines' KV-cache event streams and write them
 * as NDJSON, one line per event, with sequence gaps repaired by replay.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "curveopt.h"
#include "ndjson_write.h"
#include "probe.h"
#include "run.h"
#include "zsock.h"

static const char usage_text[] =
    "Usage: kvsub [OPTION]... SPEC...\n"
    "Subscribe to the KV-cache event streams of LLM engines (vLLM, SGLang)\n"
    "and write every event as one line of NDJSON on stdout.  Sequence gaps\n"
    "are filled through the engine's replay socket when the spec names one.\n"
    "\n"
    "SPEC is [NAME=]PUB_URI[,REPLAY_URI[,SNAPSHOT_URI]] (tcp://, ipc://\n"
    "or inproc://); with the snapshot ROUTER of vLLM's snapshot mode,\n"
    "kvsub starts from the engine's snapshot, and takes a fresh one after\n"
    "a restart or a hole that replay cannot fill.\n"
    "NAME becomes the \"pod\" of every line; without it the pod (and,\n"
    "unless -m, the model) of a topic kv@<pod>@<model> does, else the\n"
    "PUB URI.\n"
    "\n"
    "Options:\n"
    "  -o, --offset WHERE      where each source starts: beginning (default;\n"
    "                          what the replay socket still buffers, then\n"
    "                          live), now (live only) or a seq number\n"
    "  -b, --bind              bind the SUB sockets (engines that connect)\n"
    "      --curve-server-key FILE  connect with CURVE to a kvpub serving\n"
    "                          the key pair whose public key FILE holds\n"
    "      --curve-secret FILE with -b: serve the SUB sockets with this CURVE\n"
    "                          key pair (secret key file, mode 0600);\n"
    "                          else the client's own key pair\n"
    "      --curve-allow FILE  with -b: admit only the clients whose public\n"
    "                          keys FILE lists (needs --curve-secret)\n"
    "      --topic PREFIX      subscribe to this topic prefix (default: all)\n"
    "  -m, --model NAME        add \"model\":NAME to every line\n"
    "      --engine E          the producer: auto (default: told by the\n"
    "                          payload), vllm, sglang, trtllm, atom,\n"
    "                          mooncake or llmd-fs\n"
    "      --dp-size N         expand each SPEC into N data-parallel ranks:\n"
    "                          rank r uses port+r on every URI, name NAME/r\n"
    "      --endpoints FILE    read more SPECs from FILE (one per line,\n"
    "                          '#' starts a comment)\n"
    "  -c, --count N           exit after N lines\n"
    "      --idle DUR          exit after DUR without a message\n"
    "      --duration DUR      exit after DUR\n"
    "      --warn-idle DUR     warn about a source silent for DUR (default\n"
    "                          30s, at least 100ms; 0: never)\n"
    "      --stats-interval DUR  every DUR, one line on stderr: per source\n"
    "                          events/s, gaps, lag and connection state\n"
    "                          (at least 100ms)\n"
    "      --replay-timeout DUR  longest wait for a replay reply that\n"
    "                          brings a new batch (default 2s)\n"
    "      --hwm N             SUB receive high-water mark (default "
    "1000000)\n"
    "      --max-msg SIZE      refuse messages over SIZE (default 16M):\n"
    "                          libzmq drops the connection, kvsub warns,\n"
    "                          reconnects and reports the gap\n"
    "  -u, --unbuffered        flush after every batch's lines\n"
    "      --probe             check that each PUB and replay endpoint\n"
    "                          answers (waiting --replay-timeout for each),\n"
    "                          print one line per endpoint, and exit\n"
    "      --stats             print per-source counters, the producer and\n"
    "                          its layout as one JSON line on stderr at exit\n"
    "                          (and on SIGUSR1)\n"
    "  -q, --quiet             errors only on stderr\n"
    "  -v, --verbose           more diagnostics (-vv: debug)\n"
    "  -h, --help              show this help and exit\n"
    "  -V, --version           show version information and exit\n"
    "\n"
    "DUR is 250ms, 5s, 2m, 1h or a number of seconds.\n"
    "\n"
    "OUTPUT\n"
    "  One compact JSON object per line (kvtap NDJSON format, version 1).\n"
    "  Envelope, in this order: \"pod\", \"model\" (with -m), \"dp_rank\"\n"
    "  (integer or null), \"stream\" (vLLM snapshot mode's stream id, hex;\n"
    "  a new one is a restart), \"seq\" (the batch's sequence number), \"i\" "
    "(the\n"
    "  event's index in its batch; engine events only), \"ts\" (batch time,\n"
    "  seconds), \"type\".  Engine events (BlockStored, BlockRemoved,\n"
    "  AllBlocksCleared) carry the engine's own field names; block hashes\n"
    "  are decimal strings of the unsigned 64-bit value.  Stream records:\n"
    "    gap           \"from\",\"to\": seqs lost that replay could not fill\n"
    "                  (first line of a source: the engine's buffer no\n"
    "                  longer reaches back to the -o seq)\n"
    "    restart       \"last_seq\": the sequence went backwards, or after\n"
    "                  a reconnect the engine holds other bytes at the\n"
    "                  last seq seen (the publisher restarted); its seq\n"
    "                  is 0, the new process's first, and batches of the\n"
    "                  new process missed before are fetched by replay\n"
    "                  too\n"
    "    decode_error  \"error\",\"bytes\": a batch or event that could not\n"
    "                  be decoded; the stream goes on (no \"seq\" when\n"
    "                  the message had no valid seq frame)\n"
    "    skipped       \"tag\",\"count\": events with an unknown tag\n"
    "    snapshot_begin, snapshot_end  around the events of an engine's\n"
    "                  snapshot (its whole state at their seq)\n"
    "  Filled gaps leave no trace: the replayed events appear in seq order,\n"
    "  each once.  Duplicates (replay overlapping live) are dropped.\n"
    "  Diagnostics go to stderr as \"kvsub: warning: POD: gap 120..124\";\n"
    "  once per source \"kvsub: POD: joined at seq N (replayed K batches\n"
    "  from M)\" says where the output met the live stream.  Connection\n"
    "  trouble (refused, unknown host, missing ipc path, disconnected) is\n"
    "  said once per change of state (-v: every socket event), and a\n"
    "  source silent for --warn-idle gets a warning.\n"
    "\n"
    "EXIT STATUS\n"
    "  0    count, idle or duration reached, or the reader closed the pipe\n"
    "  1    runtime failure (cannot connect or bind, write error);\n"
    "       --probe: an endpoint did not answer\n"
    "  2    usage error (also: two sources with the same NAME and rank)\n"
    "  130  interrupted by SIGINT; 143 by SIGTERM (after flushing)\n"
    "\n"
    "EXAMPLES\n"
    "  kvsub pod-a=tcp://10.0.0.5:5557,tcp://10.0.0.5:5600\n"
    "  kvsub --dp-size 2 pod-a=tcp://10.0.0.5:5557,tcp://10.0.0.5:5600\n"
    "  kvsub --endpoints fleet.txt -m llama | kvindex serve -s /run/kv.sock\n"
    "  kvsub -c 100 tcp://127.0.0.1:5557 | jq -c 'select(.type==\"gap\")'\n"
    "  kvsub --idle 5s --stats tcp://127.0.0.1:5557 > capture.ndjson\n"
    "  kvsub --probe --endpoints fleet.txt | jq -c 'select(.state!=\"up\")'\n";

enum {
    OPT_TOPIC = 256,
    OPT_ENGINE,
    OPT_DP_SIZE,
    OPT_ENDPOINTS,
    OPT_IDLE,
    OPT_DURATION,
    OPT_REPLAY_TIMEOUT,
    OPT_HWM,
    OPT_STATS,
    OPT_WARN_IDLE,
    OPT_STATS_INTERVAL,
    OPT_PROBE,
    OPT_MAX_MSG
};

static const struct option long_opts[] = {
    {"offset", required_argument, NULL, 'o'},
    {"bind", no_argument, NULL, 'b'},
    {"topic", required_argument, NULL, OPT_TOPIC},
    {"model", required_argument, NULL, 'm'},
    {"engine", required_argument, NULL, OPT_ENGINE},
    {"dp-size", required_argument, NULL, OPT_DP_SIZE},
    {"endpoints", required_argument, NULL, OPT_ENDPOINTS},
    {"count", required_argument, NULL, 'c'},
    {"idle", required_argument, NULL, OPT_IDLE},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"replay-timeout", required_argument, NULL, OPT_REPLAY_TIMEOUT},
    {"hwm", required_argument, NULL, OPT_HWM},
    {"max-msg", required_argument, NULL, OPT_MAX_MSG},
    {"warn-idle", required_argument, NULL, OPT_WARN_IDLE},
    {"stats-interval", required_argument, NULL, OPT_STATS_INTERVAL},
    {"probe", no_argument, NULL, OPT_PROBE},
    CURVEOPT_SECRET_OPTION,
    CURVEOPT_SERVER_KEY_OPTION,
    CURVEOPT_ALLOW_OPTION,
    {"unbuffered", no_argument, NULL, 'u'},
    {"stats", no_argument, NULL, OPT_STATS},
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* The specs given, before --dp-size expansion. */
struct spec_list {
    struct zsock_spec *v;
    int n, cap;
};

/* Makes room for k more specs; returns 0 or -1. */
static int
spec_reserve(struct spec_list *l, int k)
{
    if (l->n + k > l->cap) {
        int cap = l->cap ? l->cap : 8;
        while (cap < l->n + k)
            cap *= 2;
        struct zsock_spec *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (v == NULL) {
            log_error("out of memory");
            return -1;
        }
        l->v = v;
        l->cap = cap;
    }
    return 0;
}

static int
spec_push(struct spec_list *l, const char *text, const char *where)
{
    char err[512];

    if (spec_reserve(l, 1) == -1)
        return -1;
    if (zsock_spec_parse(text, &l->v[l->n], err, sizeof err) == -1)
        cli_usage_error("%s%s", where, err);
    l->n++;
    return 0;
}

/* Appends the dp_size ranks of one spec (a copy when dp_size is 1). */
static int
spec_expand_into(struct spec_list *l, const struct zsock_spec *sp, int dp_size)
{
    char err[512];
    struct zsock_spec *d;

    if (spec_reserve(l, dp_size) == -1)
        return -1;
    d = &l->v[l->n];
    if (dp_size > 1) {
        if (zsock_spec_expand(sp, dp_size, d, err, sizeof err) == -1)
            cli_usage_error("--dp-size %d: %s", dp_size, err);
        l->n += dp_size;
        return 0;
    }
    d->name = strdup(sp->name);
    d->pub = strdup(sp->pub);
    d->replay = sp->replay ? strdup(sp->replay) : NULL;
    d->snapshot = sp->snapshot ? strdup(sp->snapshot) : NULL;
    l->n++;
    if (d->name == NULL || d->pub == NULL || (sp->replay && !d->replay) ||
        (sp->snapshot && !d->snapshot)) {
        log_error("out of memory");
        return -1;
    }
    return 0;
}

static void
spec_list_free(struct spec_list *l)
{
    for (int i = 0; i < l->n; i++)
        zsock_spec_free(&l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Reads one spec per line; '#' at the start or after a blank is a comment. */
static int
read_endpoints(struct spec_list *l, const char *path)
{
    FILE *f = fopen(path, "r");
    char *line = NULL, where[600];
    size_t cap = 0;
    ssize_t n;
    int lineno = 0, rc = 0;

    if (f == NULL) {
        log_error("%s: %s", path, strerror(errno));
        return -1;
    }
    while (rc == 0 && (n = getline(&line, &cap, f)) != -1) {
        char *s = line, *e;
        lineno++;
        for (char *h = strchr(s, '#'); h != NULL; h = strchr(h + 1, '#')) {
            if (h == s || h[-1] == ' ' || h[-1] == '\t') {
                *h = '\0';
                break;
            }
        }
        while (*s == ' ' || *s == '\t')
            s++;
        e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' ||
                         e[-1] == '\r'))
            *--e = '\0';
        if (*s == '\0')
            continue;
        snprintf(where, sizeof where, "%s:%d: ", path, lineno);
        rc = spec_push(l, s, where);
    }
    if (rc == 0 && ferror(f)) {
        log_error("%s: %s", path, strerror(errno));
        rc = -1;
    }
    free(line);
    fclose(f);
    return rc;
}

/* What the command line asks for besides the specs. */
struct args {
    struct kvsub_opts o;
    const char *endpoints;
    int dp_size;
    int probe;
    struct curveopt curve; /* --curve-* key files */
};

/* Parses the options into a; exits for --help, --version and usage errors. */
static void
parse_args(int argc, char **argv, struct args *a)
{
    struct kvsub_opts *o = &a->o;
    int c;

    memset(a, 0, sizeof *a);
    a->dp_size = 1;
    o->topic = "";
    o->engine = KV_ENGINE_AUTO;
    o->replay_timeout_ms = 2000;
    o->rcvhwm = 1000000;
    o->max_msg = NDJSON_MAX_MSG_DEFAULT;
    o->warn_idle_ms = 30000;
    o->warn_idle_text = "30s";
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:bm:c:uqvhV", long_opts, NULL)) !=
           -1) {
        switch (c) {
        case 'o':
            o->offset_now = strcmp(optarg, "now") == 0;
            if (!o->offset_now && strcmp(optarg, "beginning") != 0) {
                if (optarg[0] < '0' || optarg[0] > '9')
                    cli_usage_error("--offset: expected beginning, now or a "
                                    "seq, not '%s'",
                                    optarg);
                o->offset_seq =
                    cli_arg_count("--offset", optarg, 0, UINT64_MAX - 1);
            }
            break;
        case 'b':
            o->bind = 1;
            break;
        case OPT_TOPIC:
            o->topic = optarg;
            break;
        case 'm':
            o->model = optarg;
            break;
        case OPT_ENGINE:
            o->engine = cli_arg_engine("--engine", optarg);
            break;
        case OPT_DP_SIZE:
            a->dp_size = (int)cli_arg_count("--dp-size", optarg, 1, 1024);
            break;
        case OPT_ENDPOINTS:
            a->endpoints = optarg;
            break;
        case 'c':
            o->count = cli_arg_count("--count", optarg, 1, UINT64_MAX);
            break;
        case OPT_IDLE:
            o->idle_ms = cli_arg_duration("--idle", optarg, 1);
            break;
        case OPT_DURATION:
            o->duration_ms = cli_arg_duration("--duration", optarg, 1);
            break;
        case OPT_REPLAY_TIMEOUT:
            o->replay_timeout_ms =
                cli_arg_duration("--replay-timeout", optarg, 1);
            break;
        case OPT_STATS_INTERVAL:
            o->stats_interval_ms =
                cli_arg_interval("--stats-interval", optarg, 0);
            break;
        case OPT_WARN_IDLE:
            o->warn_idle_ms = cli_arg_interval("--warn-idle", optarg, 1);
            o->warn_idle_text = optarg;
            break;
        case OPT_PROBE:
            a->probe = 1;
            break;
        case OPT_MAX_MSG:
            o->max_msg = cli_arg_size("--max-msg", optarg, 1024, 1ull << 32);
            break;
        case OPT_HWM:
            o->rcvhwm = (int)cli_arg_count("--hwm", optarg, 0, 1000000000);
            break;
        case 'u':
            o->unbuffered = 1;
            break;
        case OPT_STATS:
            o->stats = 1;
            break;
        default:
            if (!curveopt_option(c, optarg, &a->curve) &&
                !cli_common_option(c, usage_text))
                cli_bad_option(c, argv);
        }
    }
}

int
main(int argc, char **argv)
{
    struct args a;
    struct spec_list given = {0}, all = {0};
    int rc = 1;

    cli_prog = "kvsub";
    parse_args(argc, argv, &a);
    for (int i = optind; i < argc; i++) {
        if (spec_push(&given, argv[i], "") == -1)
            goto out;
    }
    if (a.endpoints != NULL && read_endpoints(&given, a.endpoints) == -1)
        goto out;
    if (given.n == 0)
        cli_usage_error("no endpoint SPEC given");
    if (a.probe && a.o.bind)
        cli_usage_error("--probe connects to engines; it cannot be used "
                        "with -b");
    for (int i = 0; i < given.n; i++) {
        if (spec_expand_into(&all, &given.v[i], a.dp_size) == -1)
            goto out;
    }
    /* Two sources with one name would mix their seqs in kvindex's pod. */
    for (int i = 0; i < all.n; i++) {
        for (int j = 0; j < i; j++) {
            if (strcmp(all.v[i].name, all.v[j].name) == 0)
                cli_usage_error("two sources are named '%s' (%s and %s); "
                                "give each NAME= a different name",
                                all.v[i].name, all.v[j].pub, all.v[i].pub);
        }
    }
    if (a.curve.allow != NULL && !a.o.bind)
        cli_usage_error("--curve-allow is for -b (kvsub serves the clients "
                        "that connect to it)");
    curveopt_load(&a.curve);
    if (cli_signals_install() == -1) {
        log_error("cannot install signal handlers: %s", strerror(errno));
        goto out;
    }
    a.o.specs = all.v;
    a.o.nspecs = all.n;
    rc = a.probe ? kvsub_probe(&a.o) : kvsub_run(&a.o);
out:
    spec_list_free(&given);
    spec_list_free(&all);
    return rc;
}

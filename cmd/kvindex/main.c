/*
 * main.c - kvindex: `serve` (the prefix index daemon) and the client
 * subcommands that talk to it (docs/kvindex.md, docs/cli.md).
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomicfile.h"
#include "cli.h"
#include "ndjson_write.h"
#include "client.h"
#include "dumpout.h"
#include "jscan.h"
#include "prom.h"
#include "server.h"
#include "sock.h"

#define DEFAULT_TIMEOUT_MS 5000
/* kvsub writes no longer line (ndjson_write.h). */
#define DEFAULT_MAX_LINE NDJSON_MAX_LINE

/* serve's synopsis, in the overall usage and in serve's own help. */
#define SERVE_SYNOPSIS                                                         \
    "Usage: kvindex serve [-qv] [-s path] [--socket-mode mode] [--hash "       \
    "scheme]\n"                                                                \
    "                     [--seed n] [--hash-seed str] [-m model]\n"           \
    "                     [--snapshot file] [--snapshot-every dur]\n"          \
    "                     [--max-blocks n] [--max-line bytes] "                \
    "[--exit-on-eof]\n"                                                        \
    "                     [--degraded-orphans n] [--stats]\n"                  \
    "                     [--max-clients n] [--max-request bytes]\n"           \
    "                     [--write-timeout dur]\n"                             \
    "                     [--idle-timeout dur] [--request-timeout dur]\n"      \
    "                     [--allow-uid ids] [--allow-gid ids]\n"               \
    "                     [--admin-gid ids] [--reader-thread when] [file "     \
    "...]\n"

static const char usage_all[] = SERVE_SYNOPSIS
    "       kvindex query [-r] [-s path] [-t timeout] request-json | -\n"
    "       kvindex match [-r] [-s path] [-t timeout] [-m model]\n"
    "                     [--lora-name name] [--pods pod,...] [--batch]\n"
    "                     [tokens-json]\n"
    "       kvindex keys  [-r] [-s path] [-t timeout] [-m model]\n"
    "                     [--lora-name name] [--block-size n] [tokens-json]\n"
    "       kvindex stats [-r] [-s path] [-t timeout] [--prom] [-o file]\n"
    "       kvindex pods  [-r] [-s path] [-t timeout]\n"
    "       kvindex dump  [-s path] [-t timeout] [--pod name]\n"
    "       kvindex ping  [-s path] [-t timeout]\n"
    "       kvindex -h | --help | -V | --version\n";

static const char help_main[] =
    "\n"
    "kvindex keeps a prefix index of which pod holds which KV-cache block,\n"
    "built from the NDJSON events of kvsub or kvreplay, and answers on a Unix\n"
    "socket.  `kvindex SUBCOMMAND --help` describes each subcommand.\n"
    "\n"
    "Options:\n"
    "  -h, --help       this help (`kvindex SUBCOMMAND --help`: that one's)\n"
    "  -V, --version    the version and those of the libraries\n"
    "\n"
    "SOCKET\n"
    "  -s PATH, or $KVINDEX_SOCKET, else $XDG_RUNTIME_DIR/kvindex.sock, else\n"
    "  /tmp/kvindex-$UID/kvindex.sock.  Only the server's user and root may\n"
    "  connect (serve --allow-uid, --allow-gid widen it), and a client\n"
    "  refuses a server run by another user (--server-uid trusts one).\n"
    "  The protocol is one JSON object per\n"
    "  line each way: {\"id\":1,\"op\":\"ping\"} -> "
    "{\"id\":1,\"ok\":true,\"data\":{...}}.\n"
    "  Ops: ping match keys lookup pods stats dump clear.\n"
    "\n"
    "OUTPUT\n"
    "  serve: nothing on stdout, diagnostics on stderr.  Clients: the reply\n"
    "  as one JSON line (-r: its data only); dump: the snapshot lines.\n"
    "\n"
    "EXIT STATUS\n"
    "  0 success; 1 runtime failure (cannot bind or connect, timeout, the\n"
    "  server answered ok:false); 2 usage error.\n"
    "\n"
    "EXAMPLES\n"
    "  kvsub pod-a=tcp://10.0.0.5:5557 | kvindex serve\n"
    "  kvindex ping -t 5s\n"
    "  echo '[1,2,3,4]' | kvindex match -m llama\n";

static const char help_serve[] = SERVE_SYNOPSIS
    "\n"
    "Reads NDJSON events from the files (\"-\" is stdin; none: stdin), keeps\n"
    "the prefix index and answers requests on the Unix socket.  At the end of\n"
    "the input it keeps serving.\n"
    "\n"
    "Options:\n"
    "  -s, --socket PATH       socket path (default: see kvindex --help)\n"
    "      --socket-mode MODE  octal permissions of the socket (default 0600)\n"
    "      --hash SCHEME       block keys: aibrix (default), dynamo, llmd\n"
    "      --seed N            aibrix XXH64 seed and root parent (default 0)\n"
    "      --hash-seed STR     llmd seed string (default \"\")\n"
    "  -m, --model MODEL       model of lines without \"model\"\n"
    "      --snapshot FILE     load FILE at start, write it atomically\n"
    "      --snapshot-every DUR  snapshot interval (default 60s, min 100ms)\n"
    "      --max-blocks N      cap on (pod, block) entries, LRU eviction\n"
    "                          (default 0: none)\n"
    "      --max-line BYTES    longest input or request line (default 64M,\n"
    "                          the longest line kvsub writes; K, M, G\n"
    "                          suffixes)\n"
    "      --exit-on-eof       exit 0 at the end of the input\n"
    "      --degraded-orphans N  a pod with more than N orphaned stores since\n"
    "                          its last clear or restart is degraded (default\n"
    "                          100; 0: never)\n"
    "      --stats             one JSON stats line on stderr at exit\n"
    "                          (SIGUSR1: print it now)\n"
    "      --max-clients N     clients at once; one more gets an error line\n"
    "                          and is closed (default 1000)\n"
    "      --max-request BYTES longest request line (default 1M; at most\n"
    "                          --max-line)\n"
    "      --write-timeout DUR drop a client that reads nothing of its\n"
    "                          replies or dump for DUR (default 10s)\n"
    "      --idle-timeout DUR  drop a client silent for DUR (default 0: "
    "never)\n"
    "      --request-timeout DUR  drop a client whose request line is not\n"
    "                          complete DUR after it began (default 10s;\n"
    "                          0: never)\n"
    "      --allow-uid IDS     also let these users connect (names or\n"
    "                          numbers, comma lists, repeatable; the socket\n"
    "                          is then 0666 unless --socket-mode)\n"
    "      --allow-gid IDS     also let members of these groups connect\n"
    "      --admin-gid IDS     let members of these groups clear too (by\n"
    "                          default only the server's user and root)\n"
    "      --reader-thread WHEN  read and parse the input on a thread of its\n"
    "                          own: auto (default: with three CPUs or more,\n"
    "                          or two when every input is a file;\n"
    "                          $KVINDEX_READER_THREAD), on, off\n"
    "  -q, --quiet             errors only;  -v, --verbose: more (-vv debug)\n"
    "  -h, --help              this help;  -V, --version: versions\n"
    "\n"
    "OUTPUT\n"
    "  Nothing on stdout.  On stderr: warnings such as\n"
    "  \"kvindex: warning: stdin:12: <reason>\" for a bad input line "
    "(counted,\n"
    "  the rest goes on), one for the first events without \"model\" when\n"
    "  -m is not given, and one each time a pod becomes degraded for its\n"
    "  orphaned stores.  A client that stops reading its replies is not\n"
    "  read from until it does.  Warnings also name every client refused or\n"
    "  dropped (with its uid and pid) and every clear.\n"
    "\n"
    "EXIT STATUS\n"
    "  0 stopped by SIGTERM/SIGINT (snapshot written, socket removed) or end\n"
    "  of input with --exit-on-eof; 1 cannot bind (\"already running\", path\n"
    "  not a socket), bad snapshot, unreadable input or unknown format\n"
    "  version; 2 usage error.\n"
    "\n"
    "EXAMPLES\n"
    "  kvsub pod-a=tcp://10.0.0.5:5557 | kvindex serve\n"
    "  kvindex serve -s /srv/kv/kv.sock --allow-gid router --idle-timeout 5m\n"
    "  kvindex serve --exit-on-eof --stats capture.ndjson\n"
    "  kvindex serve --snapshot /var/lib/kvindex.ndjson --snapshot-every 30s\n";

/* The options every client subcommand takes, after its own. */
static const char help_client_opts[] =
    "  -s, --socket PATH   server socket (default: see kvindex --help)\n"
    "  -t, --timeout DUR   longest wait for a reply (default 5s)\n"
    "      --server-uid UID  trust a server run by this user too (by\n"
    "                      default only one run by this user or root)\n"
    "  -r, --raw           print only the reply's data member\n"
    "  -h, --help          this help\n";

static const char help_client_tail[] =
    "\n"
    "OUTPUT\n"
    "  The reply as one JSON line on stdout:\n"
    "  {\"id\":...,\"ok\":true,\"data\":{...}} (with -r: the data only).\n"
    "  An ok:false reply prints \"kvindex: error: <reason>\" on stderr.\n"
    "\n"
    "EXIT STATUS\n"
    "  0 the server answered ok; 1 it answered ok:false, or no server\n"
    "  answered in time; 2 usage error.\n";

struct subcmd_help {
    const char *name;
    const char *usage;   /* the Usage: line and what the subcommand does */
    const char *options; /* its own options, or "" */
    const char *examples;
};

static const struct subcmd_help client_helps[] = {
    {"query",
     "Usage: kvindex query [-r] [-s path] [-t timeout] request-json | -\n"
     "\nSends a request as is; with \"-\", one request per line of stdin\n"
     "(one reply line each).\n",
     "",
     "  kvindex query '{\"op\":\"pods\"}'\n"
     "  printf '%s\\n' '{\"id\":1,\"op\":\"ping\"}' | kvindex query -\n"},
    {"match",
     "Usage: kvindex match [-r] [-s path] [-t timeout] [-m model]\n"
     "                     [--lora-name name] [--pods pod,...] "
     "[--batch]\n"
     "                     [tokens-json]\n"
     "\nWhich pods hold the longest prefix of the tokens (a JSON array, as\n"
     "the argument or on stdin): deepest first; equal depths put the pod\n"
     "holding the fewest blocks first, then order by name.  A model or LoRA\n"
     "the index has never seen is an error that lists the known ones.\n",
     "  -m, --model M       the model (default: the server's -m)\n"
     "      --lora-name L   the LoRA adapter (default: the base model)\n"
     "      --pods a,b      only these pods are candidates\n"
     "      --batch         one prompt per line of stdin, sent as one\n"
     "                      batched match (at most 1024); the data is\n"
     "                      {\"results\":[...]}, one match per prompt\n",
     "  echo '[1,2,3,4,5,6,7,8]' | kvindex match -m llama\n"
     "  kvindex match -r -m llama --pods pod-a,pod-b '[1,2,3,4]'\n"},
    {"keys",
     "Usage: kvindex keys [-r] [-s path] [-t timeout] [-m model]\n"
     "                    [--lora-name name] [--block-size n] "
     "[tokens-json]\n"
     "\nThe block keys of the tokens under the server's scheme (decimal\n"
     "strings), for debugging a router.  An unknown model or LoRA is an\n"
     "error unless --block-size is given.\n",
     "  -m, --model M       the model (default: the server's -m)\n"
     "      --lora-name L   the LoRA adapter (default: the base model)\n"
     "      --block-size N  used when the namespace has no block size yet\n",
     "  kvindex keys -m llama --block-size 16 \"$(seq -s, 0 31 | sed "
     "'s/.*/[&]/')\"\n"},
    {"stats",
     "Usage: kvindex stats [-r] [-s path] [-t timeout] [--prom] [-o file]\n"
     "\nCounters and sizes; --prom prints them, and each pod's blocks,\n"
     "orphaned stores, last seq, seconds since its last event and degraded\n"
     "flag, in the Prometheus text format (for node_exporter's textfile\n"
     "collector).\n",
     "      --prom          the Prometheus text format instead of JSON\n"
     "  -o, --output FILE   write FILE atomically (a temporary file renamed\n"
     "                      over it) instead of stdout\n",
     "  kvindex stats --prom -o /var/lib/node-exporter/kvindex.prom\n"},
    {"pods",
     "Usage: kvindex pods [-r] [-s path] [-t timeout]\n"
     "\nPer pod: blocks held, last seq and ts, degraded, rejected stores.\n",
     "", "  kvindex pods -r | jq '.pods[] | select(.degraded)'\n"},
    {"dump",
     "Usage: kvindex dump [-s path] [-t timeout] [--pod name]\n"
     "\nPrints the index (or one pod's part) as NDJSON lines, the snapshot\n"
     "format (docs/kvindex-snapshot.md), one per line, then the end line\n"
     "(entry count and checksum): the output loads as a snapshot.\n",
     "      --pod NAME      only this pod's part\n",
     "  kvindex dump > index.ndjson\n"
     "  kvindex dump --pod pod-a | grep -c '\"type\":\"entry\"'\n"},
    {"ping",
     "Usage: kvindex ping [-s path] [-t timeout]\n"
     "\nAsks the server for its version.  With -t it also waits for the\n"
     "server to appear, retrying until the timeout (readiness checks).\n",
     "",
     "  kvindex serve < events.ndjson &\n"
     "  kvindex ping -t 10s && echo ready\n"},
};

static void
print_help(const char *text)
{
    fputs(text, stdout);
    fflush(stdout);
    exit(ferror(stdout) ? 1 : 0);
}

static void
print_client_help(const struct subcmd_help *h)
{
    printf("%s\nOptions:\n%s%s%s\nEXAMPLES\n%s", h->usage, h->options,
           help_client_opts, help_client_tail, h->examples);
    fflush(stdout);
    exit(ferror(stdout) ? 1 : 0);
}

enum {
    OPT_SOCKET_MODE = 256,
    OPT_HASH,
    OPT_SEED,
    OPT_HASH_SEED,
    OPT_SNAPSHOT,
    OPT_SNAPSHOT_EVERY,
    OPT_MAX_BLOCKS,
    OPT_MAX_LINE,
    OPT_EXIT_ON_EOF,
    OPT_STATS,
    OPT_LORA,
    OPT_PODS,
    OPT_BATCH,
    OPT_BLOCK_SIZE,
    OPT_PROM,
    OPT_POD,
    OPT_DEGRADED_ORPHANS,
    OPT_MAX_CLIENTS,
    OPT_MAX_REQUEST,
    OPT_WRITE_TIMEOUT,
    OPT_IDLE_TIMEOUT,
    OPT_REQUEST_TIMEOUT,
    OPT_ALLOW_UID,
    OPT_ALLOW_GID,
    OPT_ADMIN_GID,
    OPT_SERVER_UID,
    OPT_READER_THREAD
};

static const struct option serve_long_opts[] = {
    {"socket", required_argument, NULL, 's'},
    {"socket-mode", required_argument, NULL, OPT_SOCKET_MODE},
    {"hash", required_argument, NULL, OPT_HASH},
    {"seed", required_argument, NULL, OPT_SEED},
    {"hash-seed", required_argument, NULL, OPT_HASH_SEED},
    {"model", required_argument, NULL, 'm'},
    {"snapshot", required_argument, NULL, OPT_SNAPSHOT},
    {"snapshot-every", required_argument, NULL, OPT_SNAPSHOT_EVERY},
    {"max-blocks", required_argument, NULL, OPT_MAX_BLOCKS},
    {"max-line", required_argument, NULL, OPT_MAX_LINE},
    {"exit-on-eof", no_argument, NULL, OPT_EXIT_ON_EOF},
    {"degraded-orphans", required_argument, NULL, OPT_DEGRADED_ORPHANS},
    {"stats", no_argument, NULL, OPT_STATS},
    {"max-clients", required_argument, NULL, OPT_MAX_CLIENTS},
    {"max-request", required_argument, NULL, OPT_MAX_REQUEST},
    {"write-timeout", required_argument, NULL, OPT_WRITE_TIMEOUT},
    {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
    {"request-timeout", required_argument, NULL, OPT_REQUEST_TIMEOUT},
    {"allow-uid", required_argument, NULL, OPT_ALLOW_UID},
    {"allow-gid", required_argument, NULL, OPT_ALLOW_GID},
    {"admin-gid", required_argument, NULL, OPT_ADMIN_GID},
    {"reader-thread", required_argument, NULL, OPT_READER_THREAD},
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0}};

/* The limits on clients (docs/kvindex.md#limits-on-clients). */
#define DEFAULT_MAX_CLIENTS 1000
#define DEFAULT_MAX_REQUEST (1u << 20)
#define DEFAULT_WRITE_TIMEOUT_MS 10000
#define DEFAULT_REQUEST_TIMEOUT_MS 10000

/* --allow-uid, --allow-gid, --admin-gid: repeatable comma lists. */
static void
add_ids(const char *flag, const char *arg, int is_group, unsigned **v,
        size_t *n)
{
    char err[160];

    if (sock_parse_ids(arg, is_group, v, n, err, sizeof err) < 0)
        cli_usage_error("%s: %s", flag, err);
}

/* --reader-thread WHEN, or KVINDEX_READER_THREAD (named by what). */
static enum serve_reader
reader_thread_arg(const char *what, const char *arg)
{
    if (strcmp(arg, "auto") == 0)
        return SERVE_READER_AUTO;
    if (strcmp(arg, "on") == 0)
        return SERVE_READER_ON;
    if (strcmp(arg, "off") == 0)
        return SERVE_READER_OFF;
    cli_usage_error("%s: '%s' is not auto, on or off", what, arg);
    return SERVE_READER_AUTO;
}

/* The options of serve about its clients
 * (docs/kvindex.md#limits-on-clients) and its reader thread
 * (docs/kvindex.md#reading-the-input).  Returns 0 when c is not one of
 * them. */
static int
serve_client_option(int c, struct serve_opts *o)
{
    switch (c) {
    case OPT_MAX_CLIENTS:
        o->max_clients =
            (size_t)cli_arg_count("--max-clients", optarg, 1, 1000000);
        return 1;
    case OPT_MAX_REQUEST:
        o->max_request =
            (size_t)cli_arg_size("--max-request", optarg, 64, 1u << 30);
        return 1;
    case OPT_WRITE_TIMEOUT:
        o->write_timeout_ms = cli_arg_duration("--write-timeout", optarg, 1);
        return 1;
    case OPT_IDLE_TIMEOUT:
        o->idle_timeout_ms = cli_arg_duration("--idle-timeout", optarg, 0);
        return 1;
    case OPT_REQUEST_TIMEOUT:
        o->request_timeout_ms =
            cli_arg_duration("--request-timeout", optarg, 0);
        return 1;
    case OPT_ALLOW_UID:
        add_ids("--allow-uid", optarg, 0, &o->allow_uids, &o->n_allow_uids);
        return 1;
    case OPT_ALLOW_GID:
        add_ids("--allow-gid", optarg, 1, &o->allow_gids, &o->n_allow_gids);
        return 1;
    case OPT_ADMIN_GID:
        add_ids("--admin-gid", optarg, 1, &o->admin_gids, &o->n_admin_gids);
        return 1;
    case OPT_READER_THREAD:
        o->reader_thread = reader_thread_arg("--reader-thread", optarg);
        return 1;
    default:
        return 0;
    }
}

/* serve's options before its command line. */
static void
serve_defaults(struct serve_opts *o)
{
    const char *env = getenv("KVINDEX_READER_THREAD");

    memset(o, 0, sizeof *o);
    o->socket_mode = 0600;
    o->ix.scheme = BLOCKKEY_AIBRIX;
    o->ix.hash_seed = "";
    o->snapshot_every_ms = 60000;
    o->max_line = DEFAULT_MAX_LINE;
    o->degraded_orphans = INDEX_DEGRADED_ORPHANS;
    o->max_clients = DEFAULT_MAX_CLIENTS;
    o->max_request = DEFAULT_MAX_REQUEST;
    o->write_timeout_ms = DEFAULT_WRITE_TIMEOUT_MS;
    o->request_timeout_ms = DEFAULT_REQUEST_TIMEOUT_MS;
    if (env != NULL && env[0] != '\0')
        o->reader_thread = reader_thread_arg("KVINDEX_READER_THREAD", env);
}

static int
cmd_serve(int argc, char **argv)
{
    struct serve_opts o;
    const char *sock = NULL;
    char path[256], err[256];
    int c, mode_set = 0, rc;

    serve_defaults(&o);
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":s:m:qvhV", serve_long_opts, NULL)) !=
           -1) {
        switch (c) {
        case 's':
            sock = optarg;
            break;
        case OPT_SOCKET_MODE: {
            char *end;
            unsigned long m = strtoul(optarg, &end, 8);
            if (*optarg == '\0' || *end != '\0' || m > 0777)
                cli_usage_error("--socket-mode: invalid mode '%s'", optarg);
            o.socket_mode = (mode_t)m;
            mode_set = 1;
            break;
        }
        case OPT_HASH:
            if (blockkey_scheme_parse(optarg, &o.ix.scheme) < 0)
                cli_usage_error("--hash: unknown scheme '%s' (aibrix, "
                                "dynamo, llmd)",
                                optarg);
            break;
        case OPT_SEED:
            o.ix.seed = cli_arg_count("--seed", optarg, 0, UINT64_MAX);
            break;
        case OPT_HASH_SEED:
            o.ix.hash_seed = optarg;
            break;
        case 'm':
            o.ix.default_model = optarg;
            break;
        case OPT_SNAPSHOT:
            o.snapshot = optarg;
            break;
        case OPT_SNAPSHOT_EVERY:
            o.snapshot_every_ms =
                cli_arg_interval("--snapshot-every", optarg, 0);
            break;
        case OPT_MAX_BLOCKS:
            o.ix.max_blocks =
                cli_arg_count("--max-blocks", optarg, 0, UINT64_MAX);
            break;
        case OPT_MAX_LINE:
            o.max_line =
                (size_t)cli_arg_size("--max-line", optarg, 64, 1u << 30);
            break;
        case OPT_EXIT_ON_EOF:
            o.exit_on_eof = 1;
            break;
        case OPT_DEGRADED_ORPHANS:
            o.degraded_orphans =
                cli_arg_count("--degraded-orphans", optarg, 0, UINT32_MAX);
            break;
        case OPT_STATS:
            o.stats = 1;
            break;
        default:
            if (!serve_client_option(c, &o) &&
                !cli_common_option(c, help_serve))
                cli_bad_option(c, argv);
        }
    }
    /* The users let in must be able to reach the socket: the credentials
     * check at connect is then the gate. */
    if (!mode_set && o.n_allow_uids + o.n_allow_gids > 0)
        o.socket_mode = 0666;
    o.files = argv + optind;
    if (sock_path(sock, 1, path, sizeof path, err, sizeof err) < 0) {
        log_error("%s", err);
        return 1;
    }
    o.socket_path = path;
    if (cli_signals_install() < 0) {
        log_error("cannot install signal handlers");
        return 1;
    }
    rc = serve_run(&o);
    free(o.allow_uids);
    free(o.allow_gids);
    free(o.admin_gids);
    return rc;
}

/* What every client subcommand shares. */
struct copts {
    const char *sock;
    long long timeout_ms;
    int timeout_set;
    int raw;
    const char *model, *lora, *pods, *pod;
    uint64_t block_size;
    int prom;
    int batch;            /* match --batch: one prompt per stdin line */
    const char *output;   /* stats -o */
    long long server_uid; /* --server-uid, -1: ours or root only */
};

static void
parse_client(int argc, char **argv, const struct subcmd_help *h,
             struct copts *co)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},
        {"timeout", required_argument, NULL, 't'},
        {"raw", no_argument, NULL, 'r'},
        {"model", required_argument, NULL, 'm'},
        {"lora-name", required_argument, NULL, OPT_LORA},
        {"pods", required_argument, NULL, OPT_PODS},
        {"batch", no_argument, NULL, OPT_BATCH},
        {"pod", required_argument, NULL, OPT_POD},
        {"block-size", required_argument, NULL, OPT_BLOCK_SIZE},
        {"prom", no_argument, NULL, OPT_PROM},
        {"output", required_argument, NULL, 'o'},
        {"server-uid", required_argument, NULL, OPT_SERVER_UID},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int c, li = -1;

    memset(co, 0, sizeof *co);
    co->timeout_ms = DEFAULT_TIMEOUT_MS;
    co->server_uid = -1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":s:t:rm:o:h", opts, &li)) != -1) {
        int ok = 1;
        switch (c) {
        case 's':
            co->sock = optarg;
            break;
        case 't':
            co->timeout_ms =
                (long long)cli_arg_duration("--timeout", optarg, 1);
            co->timeout_set = 1;
            break;
        case 'r':
            co->raw = 1;
            break;
        case 'm':
            ok = !strcmp(h->name, "match") || !strcmp(h->name, "keys");
            co->model = optarg;
            break;
        case OPT_LORA:
            ok = !strcmp(h->name, "match") || !strcmp(h->name, "keys");
            co->lora = optarg;
            break;
        case OPT_PODS:
            ok = !strcmp(h->name, "match");
            co->pods = optarg;
            break;
        case OPT_BATCH:
            ok = !strcmp(h->name, "match");
            co->batch = 1;
            break;
        case OPT_POD:
            ok = !strcmp(h->name, "dump");
            co->pod = optarg;
            break;
        case OPT_BLOCK_SIZE:
            ok = !strcmp(h->name, "keys");
            co->block_size =
                cli_arg_count("--block-size", optarg, 1, UINT32_MAX);
            break;
        case OPT_PROM:
            ok = !strcmp(h->name, "stats");
            co->prom = 1;
            break;
        case 'o':
            ok = !strcmp(h->name, "stats");
            co->output = optarg;
            break;
        case OPT_SERVER_UID:
            co->server_uid =
                (long long)cli_arg_count("--server-uid", optarg, 0, UINT32_MAX);
            break;
        case 'h':
            print_client_help(h);
            break;
        default:
            cli_bad_option(c, argv);
        }
        /* Named as typed: argv[optind - 1] may be the option's value. */
        if (!ok && li >= 0)
            cli_usage_error("option '--%s' is not valid for %s", opts[li].name,
                            h->name);
        if (!ok)
            cli_usage_error("option '-%c' is not valid for %s", c, h->name);
        li = -1;
    }
}

/* Writes text and '\n' to stdout; EPIPE is a quiet normal end. */
static int
emit(const char *p, size_t n)
{
    if (fwrite(p, 1, n, stdout) != n || putchar('\n') == EOF)
        return -1;
    return 0;
}

/* Reads all of stdin into a NUL-terminated string (caller frees). */
static char *
slurp_stdin(size_t *n)
{
    size_t cap = 65536, len = 0;
    char *p = malloc(cap);

    while (p != NULL) {
        size_t r = fread(p + len, 1, cap - len - 1, stdin);
        len += r;
        if (r == 0)
            break;
        if (cap - len < 4096) {
            char *np = realloc(p, cap * 2);
            if (np == NULL) {
                free(p);
                return NULL;
            }
            p = np;
            cap *= 2;
        }
    }
    if (p != NULL) {
        p[len] = '\0';
        *n = len;
    }
    return p;
}

/* Appends text with newlines turned into blanks, so it stays one line. */
static void
put_oneline(struct buf *b, const char *p, size_t n)
{
    size_t start = b->len;

    buf_put(b, p, n);
    if (b->oom)
        return;
    for (size_t i = start; i < b->len; i++)
        if (b->p[i] == '\n' || b->p[i] == '\r')
            b->p[i] = ' ';
}

/* Returns 1 for an ok:true reply; for any other, logs its error and returns
 * 0. */
static int
reply_ok(const char *r, size_t n)
{
    struct kv_str ok, error;
    json_t *e = NULL;

    if (jscan_find(r, n, "ok", &ok) == 1 && ok.n == 4 &&
        memcmp(ok.p, "true", 4) == 0)
        return 1;
    if (jscan_find(r, n, "error", &error) == 1)
        e = json_loadb(error.p, error.n, JSON_DECODE_ANY, NULL);
    log_error("%s",
              json_is_string(e) ? json_string_value(e) : "malformed reply");
    json_decref(e);
    return 0;
}

/* Prints one reply as asked; returns 0 for ok:true, 1 for ok:false. */
static int
print_reply(const struct copts *co, const char *cmd, const char *r, size_t n)
{
    struct kv_str data;

    if (!reply_ok(r, n)) {
        if (!co->raw && !strcmp(cmd, "query"))
            emit(r, n);
        return 1;
    }
    if (jscan_find(r, n, "data", &data) != 1) {
        data.p = "null";
        data.n = 4;
    }
    if (!strcmp(cmd, "dump")) {
        struct jscan s;
        struct kv_str lines, line;
        int first = 1;
        if (jscan_find(data.p, data.n, "lines", &lines) != 1)
            return 1;
        jscan_init(&s, lines.p, lines.n, NULL, NULL, 0);
        if (jscan_expect(&s, '[') < 0)
            return 1;
        while (jscan_element(&s, first) == 1) {
            first = 0;
            if (jscan_skip(&s, &line) < 0)
                return 1;
            emit(line.p, line.n);
        }
        return 0;
    }
    if (co->raw)
        emit(data.p, data.n);
    else
        emit(r, n);
    return 0;
}

/*
 * Appends the prompts of match --batch, one JSON array per line of in
 * (blank lines skipped), as the "prompts" of a batched match.
 */
static void
put_prompts(struct buf *b, const char *in, size_t n)
{
    const char *end = in + n;
    int first = 1;

    buf_puts(b, ",\"prompts\":[");
    while (in < end) {
        const char *nl = memchr(in, '\n', (size_t)(end - in));
        size_t len = nl ? (size_t)(nl - in) : (size_t)(end - in);
        size_t k = 0;
        while (k < len && (in[k] == ' ' || in[k] == '\t' || in[k] == '\r'))
            k++;
        if (k < len) {
            if (!first)
                buf_putc(b, ',');
            put_oneline(b, in, len);
            first = 0;
        }
        in += len + (nl != NULL);
    }
    buf_putc(b, ']');
}

/* Builds the request of a subcommand (not query) into b. */
static int
build_request(const struct copts *co, const char *cmd, const char *arg,
              struct buf *b)
{
    buf_puts(b, "{\"op\":");
    buf_put_json_str(b, cmd, strlen(cmd));
    if (co->model != NULL) {
        buf_puts(b, ",\"model\":");
        buf_put_json_str(b, co->model, strlen(co->model));
    }
    if (co->lora != NULL) {
        buf_puts(b, ",\"lora_name\":");
        buf_put_json_str(b, co->lora, strlen(co->lora));
    }
    if (co->block_size) {
        buf_puts(b, ",\"block_size\":");
        buf_put_u64(b, co->block_size);
    }
    if (co->pod != NULL) {
        buf_puts(b, ",\"pod\":");
        buf_put_json_str(b, co->pod, strlen(co->pod));
    }
    if (co->pods != NULL) {
        const char *p = co->pods;
        buf_puts(b, ",\"pods\":[");
        while (*p) {
            const char *comma = strchr(p, ',');
            size_t n = comma ? (size_t)(comma - p) : strlen(p);
            if (p != co->pods)
                buf_putc(b, ',');
            buf_put_json_str(b, p, n);
            p += n + (comma != NULL);
        }
        buf_putc(b, ']');
    }
    if (!strcmp(cmd, "match") || !strcmp(cmd, "keys")) {
        size_t n = 0;
        char *in = NULL;
        if (arg != NULL && strcmp(arg, "-") != 0) {
            buf_puts(b, ",\"tokens\":");
            put_oneline(b, arg, strlen(arg));
        } else {
            in = slurp_stdin(&n);
            if (in == NULL)
                return -1;
            if (co->batch) {
                put_prompts(b, in, n);
            } else {
                buf_puts(b, ",\"tokens\":");
                put_oneline(b, in, n);
            }
            free(in);
        }
    }
    buf_putc(b, '}');
    return b->oom ? -1 : 0;
}

/*
 * Sends req and parses the data member of its reply into *data (caller
 * decrefs); with text, appends the reply (-r: its data) and '\n' there as
 * received.  Returns 0, or 1 after logging why not.
 */
static int
call_data(struct client *cl, const char *req, int raw, json_t **data,
          struct buf *text)
{
    const char *r;
    size_t n;
    char err[256];
    struct kv_str d;

    *data = NULL;
    if (client_call(cl, req, strlen(req), &r, &n, err, sizeof err) < 0) {
        log_error("%s", err);
        return 1;
    }
    if (!reply_ok(r, n))
        return 1;
    if (jscan_find(r, n, "data", &d) != 1 ||
        (*data = json_loadb(d.p, d.n, 0, NULL)) == NULL) {
        log_error("malformed reply");
        return 1;
    }
    if (text != NULL) {
        buf_put(text, raw ? d.p : r, raw ? d.n : n);
        buf_putc(text, '\n');
    }
    return 0;
}

/* Writes out to path atomically, or to stdout when path is NULL. */
static int
write_output(const char *path, const struct buf *out)
{
    char err[256];
    int rc;

    if (path == NULL)
        return fwrite(out->p, 1, out->len, stdout) == out->len ? 0 : 1;
    /* Readable by the node_exporter user, as a textfile collector needs. */
    rc = atomicfile_put(path, 0644, out->p, out->len, err, sizeof err);
    if (rc < 0) {
        log_error("%s: %s", path, err);
        return 1;
    }
    if (rc > 0)
        log_warn("%s: %s", path, err);
    return 0;
}

/*
 * stats: the reply as JSON, or with --prom the stats and pods replies in
 * the Prometheus text format; to stdout or, with -o, atomically to a file.
 */
static int
run_stats(const struct copts *co, struct client *cl)
{
    json_t *stats = NULL, *pods = NULL;
    struct buf out = {0};
    int rc = 1;

    if (call_data(cl, "{\"op\":\"stats\"}", co->raw, &stats,
                  co->prom ? NULL : &out) != 0)
        goto done;
    if (co->prom) {
        if (call_data(cl, "{\"op\":\"pods\",\"ages\":true}", 0, &pods, NULL) !=
            0)
            goto done;
        prom_render(stats, pods, &out);
    }
    if (out.oom) {
        log_error("out of memory");
        goto done;
    }
    rc = write_output(co->output, &out);
done:
    json_decref(stats);
    json_decref(pods);
    buf_free(&out);
    return rc;
}

/*
 * dump: the snapshot lines printed as they arrive, so that a dump as large
 * as the index never has to fit in memory.  Returns the exit status.
 */
static int
run_dump(const struct copts *co, struct client *cl, const struct buf *req)
{
    struct dumpout d = {.out = stdout};
    char err[256];
    int rc = 1;

    if (client_call_stream(cl, req->p, req->len, dumpout_feed, &d, err,
                           sizeof err) < 0) {
        /* A reader that left (| head) is a normal end (docs/cli.md). */
        if (d.out_errno == EPIPE)
            rc = 0;
        else
            log_error("%s", err);
        goto out;
    }
    switch (dumpout_end(&d)) {
    case 1:
        rc = 0;
        break;
    case 0:
        rc = print_reply(co, "dump", d.kept.p, d.kept.len);
        break;
    default:
        log_error("malformed dump reply (after %lu lines)", d.n);
        break;
    }
out:
    dumpout_free(&d);
    return rc;
}

static int
cmd_client(const struct subcmd_help *h, int argc, char **argv)
{
    struct copts co;
    struct client cl;
    struct buf req = {0};
    char path[256], err[256];
    const char *reply, *arg;
    size_t rlen;
    int rc = 1, is_query = !strcmp(h->name, "query");
    int is_ping = !strcmp(h->name, "ping");
    int takes_arg =
        is_query || !strcmp(h->name, "match") || !strcmp(h->name, "keys");

    parse_client(argc, argv, h, &co);
    if (optind < argc - 1 || (!takes_arg && optind < argc))
        cli_usage_error("%s: too many arguments", h->name);
    if (is_query && optind == argc)
        cli_usage_error("query: a request (JSON) or '-' is required");
    if (co.batch && optind < argc && strcmp(argv[optind], "-") != 0)
        cli_usage_error("match: --batch reads its prompts from stdin");
    arg = optind < argc ? argv[optind] : NULL;
    if (cli_signals_install() < 0)
        return 1;
    if (sock_path(co.sock, 0, path, sizeof path, err, sizeof err) < 0) {
        log_error("%s", err);
        return 1;
    }
    if (client_open(&cl, path, co.timeout_ms,
                    is_ping && co.timeout_set ? co.timeout_ms : 0,
                    co.server_uid, err, sizeof err) < 0) {
        log_error("%s", err);
        return 1;
    }
    if (is_query && strcmp(arg, "-") == 0) {
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        rc = 0;
        while ((n = getline(&line, &cap, stdin)) > 0) {
            while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
                n--;
            if (n == 0)
                continue;
            if (client_call(&cl, line, (size_t)n, &reply, &rlen, err,
                            sizeof err) < 0) {
                log_error("%s", err);
                rc = 1;
                break;
            }
            if (print_reply(&co, h->name, reply, rlen) != 0)
                rc = 1;
        }
        free(line);
        goto done;
    }
    if (!strcmp(h->name, "stats")) {
        rc = run_stats(&co, &cl);
        goto done;
    }
    if (is_query)
        put_oneline(&req, arg, strlen(arg));
    else if (build_request(&co, h->name, arg, &req) < 0) {
        log_error("cannot read the tokens");
        goto done;
    }
    if (!strcmp(h->name, "dump")) {
        rc = run_dump(&co, &cl, &req);
        goto done;
    }
    if (client_call(&cl, req.p, req.len, &reply, &rlen, err, sizeof err) < 0) {
        log_error("%s", err);
        goto done;
    }
    rc = print_reply(&co, h->name, reply, rlen);
done:
    client_close(&cl);
    buf_free(&req);
    if (fflush(stdout) == EOF && errno != EPIPE) {
        log_error("write error: %s", strerror(errno));
        rc = 1;
    }
    if (cli_signal)
        cli_reraise(cli_signal);
    return rc;
}

int
main(int argc, char **argv)
{
    const char *cmd;

    cli_prog = "kvindex";
    if (argc < 2)
        cli_usage_error("a subcommand is required (serve, query, match, "
                        "keys, stats, pods, dump, ping)");
    cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
        fputs(usage_all, stdout);
        print_help(help_main);
    }
    if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
        cli_print_version();
        return 0;
    }
    if (!strcmp(cmd, "serve"))
        return cmd_serve(argc - 1, argv + 1);
    for (size_t i = 0; i < sizeof client_helps / sizeof client_helps[0]; i++)
        if (!strcmp(cmd, client_helps[i].name))
            return cmd_client(&client_helps[i], argc - 1, argv + 1);
    cli_usage_error("unknown subcommand '%s'", cmd);
}

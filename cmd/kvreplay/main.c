/*
 * kvreplay - fetch an engine's buffered KV-cache event batches and print
 * them as NDJSON (docs/ndjson.md), then exit.  One-shot, cron-friendly.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "cli.h"
#include "curve.h"
#include "curveopt.h"
#include "event.h"
#include "ndjson_write.h"
#include "parse.h"
#include "replay.h"
#include "state.h"
#include "wire.h"
#include "zsock.h"

#define MAX_DP 1024

/* Exit status: another run holds the --state file's lock. */
#define EXIT_LOCKED 4

static const char usage_text[] =
    "Usage: kvreplay [OPTION]... [NAME=]REPLAY_URI\n"
    "Fetch the batches an engine still holds in its replay buffer (the\n"
    "ROUTER of vLLM's replay_endpoint) and print them as NDJSON, then exit.\n"
    "\n"
    "Options:\n"
    "  --from SEQ         first seq to fetch (default 0: everything buffered)\n"
    "  --to SEQ           last seq to fetch (default: up to the newest)\n"
    "  -t, --timeout DUR  longest wait for a reply that brings a new batch\n"
    "                     (default 5s; stale or malformed replies do not\n"
    "                     count, so a ROUTER that never goes quiet cannot\n"
    "                     keep it waiting)\n"
    "  --state FILE       read the seq to start from FILE (absent: 0) and\n"
    "                     write the next one back after a complete or\n"
    "                     truncated run (atomically), for incremental runs;\n"
    "                     the ts of the batch before it is kept too, so a\n"
    "                     restarted engine is found even past that seq;\n"
    "                     FILE.lock keeps a second run out (exit 4)\n"
    "  --deadline DUR     end the whole run after DUR, however the engine\n"
    "                     answers (exit 1, what came is printed; default:\n"
    "                     none, each request ends by -t)\n"
    "  --lock-wait DUR    wait up to DUR for another run's lock on the\n"
    "                     --state file (default 0: exit 4 at once)\n"
    "  --curve-server-key FILE  connect with CURVE to a kvpub serving the\n"
    "                     key pair whose public key FILE holds\n"
    "  --curve-secret FILE  the client's own CURVE key pair (secret key\n"
    "                     file, mode 0600), for a kvpub with --curve-allow\n"
    "  -m, --model NAME   add \"model\":NAME to every line\n"
    "  --engine E         the producer: auto (default), vllm, sglang,\n"
    "                     trtllm, atom, mooncake or llmd-fs\n"
    "  --dp-size N        N data-parallel ranks: rank r at port + r, asked\n"
    "                     in order; pods are NAME/r\n"
    "  --stats            one JSON line of counters on stderr at exit\n"
    "  -q, --quiet        errors only on stderr\n"
    "  -v, --verbose      more diagnostics (-vv: debug)\n"
    "  -V, --version      print the version and library versions\n"
    "  -h, --help         print this help\n"
    "\n"
    "OUTPUT\n"
    "  One JSON object per engine event on stdout, in seq order, exactly as\n"
    "  kvsub prints them: pod, model (with -m), dp_rank, seq, i, ts, type,\n"
    "  then the engine's fields (hashes as decimal strings).  Records kvtap\n"
    "  adds: gap (from, to: seqs the engine no longer holds, 0 included),\n"
    "  restart (last_seq: the engine restarted since the --state run: its\n"
    "  newest seq is below the saved one, or the saved seq now holds a\n"
    "  batch with another ts; then everything from its seq 0),\n"
    "  decode_error (error, bytes: a batch or event that does not decode;\n"
    "  the run goes on).  Diagnostics go to stderr only.\n"
    "\n"
    "EXIT STATUS\n"
    "  0    complete: every batch asked for that the engine had was printed\n"
    "       (also when the reader closed the pipe)\n"
    "  1    no reply within the timeout, socket or write error; a state file\n"
    "       that is empty, malformed or cannot be written (nothing printed)\n"
    "  2    usage error\n"
    "  3    incomplete: the engine no longer held the first seqs asked for\n"
    "       (seq 0 included: its buffer has wrapped), or lacks some in\n"
    "       between; gap records say which, the batches it had are printed\n"
    "  4    another kvreplay holds the --state file's lock (past "
    "--lock-wait);\n"
    "       nothing printed\n"
    "  130  interrupted (SIGINT); 143 terminated (SIGTERM)\n"
    "\n"
    "EXAMPLES\n"
    "  kvreplay tcp://127.0.0.1:5600\n"
    "  kvreplay --from 1200 --to 1300 pod-a=tcp://10.0.0.7:5600\n"
    "  kvreplay --dp-size 2 -m llama pod-a=tcp://10.0.0.7:5600 | jq -c .\n"
    "  # crontab: append new events every minute; exit 3 means a hole\n"
    "  * * * * * kvreplay -q --state /var/lib/kvtap/a.seq "
    "pod-a=tcp://10.0.0.7:5600 >> /var/log/kvtap/a.ndjson\n";

struct opts {
    uint64_t from;
    int from_set;
    uint64_t to;
    uint64_t timeout_ms;
    const char *model;
    enum kv_engine engine;
    int dp_size;
    int stats;
    const char *state;
    uint64_t lock_wait_ms;
    uint64_t deadline_ms;  /* --deadline: the whole run; 0 = none */
    struct curveopt curve; /* --curve-* key files */
    const char *spec;
};

struct counters {
    uint64_t batches, events, bytes, decode_errors, gaps, lost, retries,
        bad_replies, restarts;
    long long t0; /* start, cli_now_ms() */
};

/* What one rank's fetch needs in its callbacks. */
struct rank_run {
    struct cli_out *out;
    struct counters *cnt;
    struct ndjson_source src;
    struct wire_opts wopts;
    struct arena arena;
    uint64_t expect;     /* next seq to print */
    int claim_loss;      /* a seq above expect means the engine lost some */
    int printed;         /* a batch was printed: any later jump is a loss */
    uint64_t seen;       /* batches the replay delivered, printed or not */
    int pending_restart; /* write a restart record before the first batch */
    uint64_t restart_last;
    int lost;        /* a gap record was written */
    int stop_reason; /* 1: output closed or failed, 2: signal */
    /* The engine's identity (docs/cli.md#kvreplay-state-and-restarts): the
     * ts the state file recorded for the batch at anchor_seq. */
    int check_ts;
    uint64_t anchor_seq;
    double anchor_ts;
    int ts_changed; /* the anchor now holds another batch: a restart */
    double new_ts;
    /* The last batch printed and its ts (for the next state file). */
    uint64_t last_printed;
    int has_last_ts;
    double last_ts;
    int restarted; /* a restart record was written */
};

static void
put_env(struct kv_env *env, const struct rank_run *r, uint64_t seq)
{
    memset(env, 0, sizeof *env);
    env->pod = r->src.pod;
    env->model = r->src.model;
    env->has_seq = 1;
    env->seq = seq;
}

static void
write_gap(struct rank_run *r, uint64_t from, uint64_t to, int has_rank,
          int64_t rank)
{
    struct kv_env env;
    struct kv_event ev;

    put_env(&env, r, to);
    env.has_rank = has_rank;
    env.rank = rank;
    kv_event_init(&ev, KV_GAP);
    ev.from = from;
    ev.to = to;
    ndjson_write_event(&r->out->buf, &env, &ev);
    r->cnt->gaps++;
    r->cnt->lost += to - from + 1;
    r->lost = 1;
    log_warn("%.*s: seqs %llu..%llu are no longer in the engine's buffer",
             (int)r->src.pod.n, r->src.pod.p, (unsigned long long)from,
             (unsigned long long)to);
}

/* ts as its shortest exact decimal, in out. */
static const char *
fmt_ts(char *out, size_t n, double ts)
{
    struct buf b = {0};

    buf_put_double(&b, ts);
    snprintf(out, n, "%.*s", b.oom ? 0 : (int)b.len, b.oom ? "" : b.p);
    buf_free(&b);
    return out;
}

static void
write_restart(struct rank_run *r, uint64_t seq, const struct kv_batch *b)
{
    struct kv_env env;
    struct kv_event ev;

    put_env(&env, r, seq);
    if (b != NULL) {
        env.has_rank = b->has_rank;
        env.rank = b->rank;
        env.has_ts = b->has_ts;
        env.ts = b->ts;
    }
    kv_event_init(&ev, KV_RESTART);
    ev.last_seq = r->restart_last;
    ndjson_write_event(&r->out->buf, &env, &ev);
    r->cnt->restarts++;
    r->pending_restart = 0;
    r->restarted = 1;
    if (r->ts_changed) {
        char was[40], now[40];

        log_warn("%.*s: the engine restarted (seq %llu is another batch: ts "
                 "%s, was %s); fetching from 0",
                 (int)r->src.pod.n, r->src.pod.p,
                 (unsigned long long)r->restart_last,
                 fmt_ts(now, sizeof now, r->new_ts),
                 fmt_ts(was, sizeof was, r->anchor_ts));
    } else {
        log_warn("%.*s: the engine restarted (state said seq %llu); "
                 "fetching from 0",
                 (int)r->src.pod.n, r->src.pod.p,
                 (unsigned long long)r->restart_last + 1);
    }
}

/*
 * The anchor batch (the last one printed by the run that wrote the state)
 * came again: when its ts differs, the engine is another process that has
 * already passed the saved seq.  Returns 1 to stop the fetch then.
 */
static int
check_anchor(struct rank_run *r, const uint8_t *payload, size_t len)
{
    struct kv_batch b;
    char err[256];

    memset(&b, 0, sizeof b);
    if (wire_decode(payload, len, &r->wopts, &r->arena, &b, err, sizeof err) !=
            0 ||
        !b.has_ts) {
        arena_reset(&r->arena);
        return 0; /* nothing to compare: trust the seq, as before */
    }
    arena_reset(&r->arena);
    if (b.ts == r->anchor_ts)
        return 0;
    r->ts_changed = 1;
    r->new_ts = b.ts;
    return 1;
}

static int
on_batch(void *ctx, uint64_t seq, const uint8_t *payload, size_t len)
{
    struct rank_run *r = ctx;
    struct kv_batch b;
    char err[256];
    int ok;

    if (cli_signal) {
        r->stop_reason = 2;
        return 1;
    }
    r->seen++;
    /* The anchor seq of an incremental run was printed last time. */
    if (seq < r->expect)
        return r->check_ts && seq == r->anchor_seq
                   ? check_anchor(r, payload, len)
                   : 0;
    memset(&b, 0, sizeof b);
    ok = wire_decode(payload, len, &r->wopts, &r->arena, &b, err, sizeof err) ==
         0;
    if (r->pending_restart)
        write_restart(r, seq, ok ? &b : NULL);
    if (seq > r->expect && (r->claim_loss || r->printed))
        write_gap(r, r->expect, seq - 1, ok && b.has_rank, ok ? b.rank : 0);
    r->has_last_ts = ok && b.has_ts;
    r->last_ts = b.ts;
    if (ok) {
        b.seq = seq;
        ndjson_write_batch(&r->out->buf, &r->src, &b);
        r->cnt->events += b.n_events;
    } else {
        struct kv_env env;
        struct kv_event ev;

        put_env(&env, r, seq);
        kv_event_init(&ev, KV_DECODE_ERROR);
        ev.error.p = err;
        ev.error.n = strlen(err);
        ev.bytes = len;
        ndjson_write_event(&r->out->buf, &env, &ev);
        r->cnt->decode_errors++;
        log_warn("%.*s: seq %llu: %s", (int)r->src.pod.n, r->src.pod.p,
                 (unsigned long long)seq, err);
    }
    r->cnt->batches++;
    r->cnt->bytes += len;
    r->expect = seq + 1;
    r->last_printed = seq;
    r->printed = 1;
    arena_reset(&r->arena);
    if (cli_out_maybe_flush(r->out) == -1) {
        r->stop_reason = 1;
        return 1;
    }
    return 0;
}

static void
on_bad(void *ctx, const char *why, size_t bytes)
{
    struct rank_run *r = ctx;
    struct kv_env env;
    struct kv_event ev;

    /* A malformed reply carries no usable seq: the envelope omits it. */
    put_env(&env, r, 0);
    env.has_seq = 0;
    kv_event_init(&ev, KV_DECODE_ERROR);
    ev.error.p = why;
    ev.error.n = strlen(why);
    ev.bytes = bytes;
    ndjson_write_event(&r->out->buf, &env, &ev);
    r->cnt->bad_replies++;
    log_warn("%.*s: %s", (int)r->src.pod.n, r->src.pod.p, why);
}

/* Outcome of one rank, in increasing severity. */
enum outcome { OUT_OK = 0, OUT_LOST = 3, OUT_FAIL = 1 };

static void
print_stats(const struct counters *c, long long ms)
{
    fprintf(stderr,
            "{\"batches\":%llu,\"events\":%llu,\"bytes\":%llu,"
            "\"decode_errors\":%llu,\"bad_replies\":%llu,\"gaps\":%llu,"
            "\"lost\":%llu,\"restarts\":%llu,\"retries\":%llu,"
            "\"elapsed_ms\":%lld}\n",
            (unsigned long long)c->batches, (unsigned long long)c->events,
            (unsigned long long)c->bytes, (unsigned long long)c->decode_errors,
            (unsigned long long)c->bad_replies, (unsigned long long)c->gaps,
            (unsigned long long)c->lost, (unsigned long long)c->restarts,
            (unsigned long long)c->retries, ms);
}

/*
 * What is left of --deadline for the next fetch: at least 1 ms, so that a
 * fetch begun after the deadline ends at once; 0 without --deadline.
 */
static uint64_t
run_left_ms(const struct opts *o, const struct counters *c)
{
    long long left;

    if (o->deadline_ms == 0)
        return 0;
    left = (long long)o->deadline_ms - (cli_now_ms() - c->t0);
    return left > 0 ? (uint64_t)left : 1;
}

/*
 * One fetch on a fresh DEALER.  Returns the replay_rc; *res is filled.
 */
static int
fetch_once(void *zctx, const char *uri, struct rank_run *r, uint64_t from,
           uint64_t to, const struct opts *o, struct replay_result *res,
           char *err, size_t errlen)
{
    struct replay_client *rc;
    struct replay_request req;
    int ret;

    memset(res, 0, sizeof *res);
    rc = replay_open(zctx, uri, err, errlen);
    if (rc == NULL)
        return REPLAY_ERROR;
    memset(&req, 0, sizeof req);
    req.from = from;
    req.to = to;
    req.timeout_ms = o->timeout_ms > INT_MAX ? INT_MAX : (int)o->timeout_ms;
    req.deadline_ms = run_left_ms(o, r->cnt);
    log_info("%s: replay from %llu", uri, (unsigned long long)from);
    for (;;) {
        ret = replay_fetch(rc, &req, on_batch, on_bad, r, res, err, errlen);
        r->cnt->retries += res->retries;
        if (ret != REPLAY_INTR || cli_signal)
            break;
        /*
         * Not SIGINT/SIGTERM: SIGUSR1, or a stop and continue (Ctrl-Z,
         * fg), which Linux also turns into EINTR.  Go on from the first
         * seq not yet delivered, on the same socket.
         */
        if (cli_take_usr1() && o->stats)
            print_stats(r->cnt, cli_now_ms() - r->cnt->t0);
        if (res->next > to)
            break;
        req.from = res->next;
    }
    replay_close(rc);
    return ret;
}

/* After a restart was found: the new process, from its seq 0. */
static int
fetch_restarted(void *zctx, const char *uri, struct rank_run *r,
                const struct opts *o, struct replay_result *res, char *err,
                size_t errlen)
{
    int ret;

    r->pending_restart = 1;
    r->expect = 0;
    r->check_ts = 0;
    ret = fetch_once(zctx, uri, r, 0, o->to, o, res, err, errlen);
    if (ret == REPLAY_OK && r->pending_restart)
        write_restart(r, 0, NULL);
    return ret;
}

/*
 * An incremental run: asks from the last seq printed before (the anchor).
 * The same process still holds it (or anything newer), with the ts the
 * state file recorded; a restart shows as an answer of nothing but the end
 * marker (the new process has not reached the anchor yet) or as another
 * ts at the anchor (it has passed it).
 */
static int
fetch_from_state(void *zctx, const char *uri, struct rank_run *r,
                 const struct opts *o, const struct rank_state *st,
                 struct replay_result *res, char *err, size_t errlen)
{
    int ret;

    r->check_ts = st->has_ts;
    r->anchor_seq = st->seq - 1;
    r->anchor_ts = st->ts;
    ret = fetch_once(zctx, uri, r, st->seq - 1, o->to, o, res, err, errlen);
    if ((ret == REPLAY_OK && r->seen == 0 && res->got_end) ||
        (ret == REPLAY_STOPPED && r->ts_changed)) {
        r->restart_last = st->seq - 1;
        ret = fetch_restarted(zctx, uri, r, o, res, err, errlen);
    }
    return ret;
}

/*
 * The next state of a rank after a complete or truncated run: the next seq,
 * and the ts of the batch before it when this run printed that batch (or
 * the state's, when nothing moved).
 */
static void
state_update(const struct rank_run *r, struct rank_state *st)
{
    if (!r->printed && !r->restarted && st->have && r->expect == st->seq)
        return; /* nothing new: the anchor and its ts stay */
    st->has_ts =
        r->printed && r->last_printed + 1 == r->expect && r->has_last_ts;
    st->ts = r->last_ts;
    st->seq = r->expect;
}

/*
 * Fetches one rank.  *st is the rank's state (st->have: it came from the
 * state file) and receives the next one on success.
 */
static int
run_rank(void *zctx, const char *pod, const char *uri, const struct opts *o,
         struct cli_out *out, struct counters *cnt, struct rank_state *st,
         int *stop_reason)
{
    struct rank_run r;
    struct replay_result res;
    char err[512];
    uint64_t start;
    int ret, outcome = OUT_OK;

    memset(&r, 0, sizeof r);
    r.out = out;
    r.cnt = cnt;
    r.src.pod.p = pod;
    r.src.pod.n = strlen(pod);
    if (o->model != NULL) {
        r.src.model.p = o->model;
        r.src.model.n = strlen(o->model);
    }
    r.wopts.engine = o->engine;
    start = o->from_set || !st->have ? o->from : st->seq;
    r.expect = start;
    /*
     * Whatever the start, 0 included: a buffer that no longer reaches back
     * to it is a hole the output must show
     * (docs/cli.md#kvreplay-state-and-restarts).
     */
    r.claim_loss = 1;
    if (st->have && !o->from_set && start > 0)
        ret = fetch_from_state(zctx, uri, &r, o, st, &res, err, sizeof err);
    else
        ret = fetch_once(zctx, uri, &r, start, o->to, o, &res, err, sizeof err);

    switch (ret) {
    case REPLAY_OK:
        /*
         * Lost seqs followed by no batch in range (e.g. --to below the
         * oldest one buffered) never reached the callback.
         */
        if (res.has_lost && (r.claim_loss || r.printed) &&
            r.expect <= res.lost_to) {
            write_gap(&r, r.expect, res.lost_to, 0, 0);
            r.expect = res.lost_to + 1;
        }
        outcome = r.lost ? OUT_LOST : OUT_OK;
        state_update(&r, st);
        break;
    case REPLAY_STOPPED:
    case REPLAY_INTR:
        *stop_reason = r.stop_reason ? r.stop_reason : 2;
        outcome = OUT_OK;
        break;
    default:
        /* A CURVE handshake that fails looks like silence to a DEALER. */
        log_error("%s%s", err,
                  curve_connects() ? " (CURVE: is --curve-server-key the "
                                     "server's public key, and does it "
                                     "admit this client?)"
                                   : "");
        outcome = OUT_FAIL;
        break;
    }
    if (ret == REPLAY_INTR)
        *stop_reason = 2;
    arena_free(&r.arena);
    return outcome;
}

/*
 * Locks, reads and prepares the state file before anything is fetched, so
 * that an overlapping run, a bad state or one that cannot be written stops
 * the run before it prints batches (docs/cli.md#kvreplay-state-and-restarts).
 * Returns the exit status to end with, or -1 to go on.
 */
static int
state_begin(const struct opts *o, struct state_file *sf, struct rank_state *st,
            int nranks)
{
    char err[4400];
    int rc;

    rc = state_lock(sf, o->state, o->lock_wait_ms, err, sizeof err);
    if (rc == 0 && state_read(sf, st, nranks, err, sizeof err) == 0 &&
        state_prepare(sf, err, sizeof err) == 0)
        return -1;
    log_error("%s", err);
    return rc == -2 ? EXIT_LOCKED : 1;
}

/* The ranks of the spec (one, or --dp-size of them), in *ranks (caller
 * frees each with zsock_spec_free, then the array).  Returns 0 or -1. */
static int
ranks_of(const struct opts *o, struct zsock_spec *spec,
         struct zsock_spec **ranks)
{
    char err[512];
    int nranks = o->dp_size;

    if (zsock_spec_parse(o->spec, spec, err, sizeof err) == -1)
        cli_usage_error("%s", err);
    if (spec->replay != NULL)
        cli_usage_error("'%s': kvreplay takes one REPLAY_URI (no ',')",
                        o->spec);
    *ranks = calloc((size_t)nranks, sizeof **ranks);
    if (*ranks == NULL)
        return -1;
    if (nranks == 1) {
        (*ranks)[0].name = strdup(spec->name);
        (*ranks)[0].pub = strdup(spec->pub);
        return (*ranks)[0].name == NULL || (*ranks)[0].pub == NULL ? -1 : 0;
    }
    if (zsock_spec_expand(spec, nranks, *ranks, err, sizeof err) == -1)
        cli_usage_error("%s", err);
    return 0;
}

/* Fetches every rank in order; returns the exit status so far. */
static int
run_ranks(const struct opts *o, const struct zsock_spec *ranks,
          struct cli_out *out, struct counters *cnt, struct rank_state *st,
          int *stop_reason)
{
    void *zctx = zmq_ctx_new();
    int status = 0;

    if (zctx == NULL) {
        log_error("zmq_ctx_new: %s", zmq_strerror(errno));
        return 1;
    }
    for (int r = 0; r < o->dp_size && !*stop_reason; r++) {
        int oc = run_rank(zctx, ranks[r].name, ranks[r].pub, o, out, cnt,
                          &st[r], stop_reason);

        /* Severity: failure (1) over incomplete (3) over complete (0). */
        if (oc == OUT_FAIL)
            status = 1;
        else if (oc == OUT_LOST && status == 0)
            status = 3;
        if (cli_signal)
            *stop_reason = 2;
    }
    zmq_ctx_term(zctx);
    return status;
}

/* The whole run; returns the exit status (signals: via *sig). */
static int
run(const struct opts *o, int *sig)
{
    struct zsock_spec spec = {0}, *ranks = NULL;
    struct cli_out out;
    struct counters cnt = {0};
    struct rank_state st[MAX_DP];
    struct state_file sf;
    char err[4400];
    int status = 0, stop_reason = 0, nranks = o->dp_size;

    cnt.t0 = cli_now_ms();
    cli_out_init(&out, STDOUT_FILENO);
    out.high_water = 256 * 1024;
    state_init(&sf);
    memset(st, 0, sizeof st);
    if (ranks_of(o, &spec, &ranks) == -1) {
        log_error("out of memory");
        status = 1;
        goto out;
    }
    if (o->state != NULL && (status = state_begin(o, &sf, st, nranks)) >= 0)
        goto out;
    status = run_ranks(o, ranks, &out, &cnt, st, &stop_reason);
    cli_out_flush(&out);
    if (out.err) {
        log_error("writing output: %s", strerror(out.err));
        status = 1;
    } else if (out.closed) {
        /* The reader left (| head): a normal end, and nothing more to do. */
        status = 0;
    } else if (stop_reason == 2 || cli_signal) {
        *sig = cli_signal ? cli_signal : SIGINT;
    } else if (o->state != NULL && status != 1) {
        if (state_write(&sf, st, nranks, err, sizeof err) == -1) {
            log_error("%s", err);
            status = 1;
        }
    }
    if (o->stats)
        print_stats(&cnt, cli_now_ms() - cnt.t0);
out:
    state_close(&sf);
    if (ranks != NULL) {
        for (int r = 0; r < nranks; r++)
            zsock_spec_free(&ranks[r]);
        free(ranks);
    }
    zsock_spec_free(&spec);
    cli_out_free(&out);
    return status;
}

enum {
    OPT_FROM = 256,
    OPT_TO,
    OPT_STATE,
    OPT_LOCK_WAIT,
    OPT_DEADLINE,
    OPT_ENGINE,
    OPT_DP_SIZE,
    OPT_STATS
};

static const struct option longopts[] = {
    {"from", required_argument, NULL, OPT_FROM},
    {"to", required_argument, NULL, OPT_TO},
    {"timeout", required_argument, NULL, 't'},
    {"state", required_argument, NULL, OPT_STATE},
    {"lock-wait", required_argument, NULL, OPT_LOCK_WAIT},
    {"deadline", required_argument, NULL, OPT_DEADLINE},
    {"model", required_argument, NULL, 'm'},
    {"engine", required_argument, NULL, OPT_ENGINE},
    {"dp-size", required_argument, NULL, OPT_DP_SIZE},
    {"stats", no_argument, NULL, OPT_STATS},
    CURVEOPT_SECRET_OPTION,
    CURVEOPT_SERVER_KEY_OPTION,
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"version", no_argument, NULL, 'V'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0}};

static void
parse_args(int argc, char **argv, struct opts *o)
{
    int c;

    memset(o, 0, sizeof *o);
    o->to = UINT64_MAX;
    o->timeout_ms = 5000;
    o->engine = KV_ENGINE_AUTO;
    o->dp_size = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":t:m:qvVh", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_FROM:
            o->from = cli_arg_count("--from", optarg, 0, UINT64_MAX - 1);
            o->from_set = 1;
            break;
        case OPT_TO:
            o->to = cli_arg_count("--to", optarg, 0, UINT64_MAX - 1);
            break;
        case 't':
            o->timeout_ms = cli_arg_duration("--timeout", optarg, 1);
            break;
        case OPT_STATE:
            if (optarg[0] == '\0')
                cli_usage_error("--state: empty file name");
            o->state = optarg;
            break;
        case OPT_LOCK_WAIT:
            o->lock_wait_ms = cli_arg_duration("--lock-wait", optarg, 0);
            break;
        case OPT_DEADLINE:
            o->deadline_ms = cli_arg_duration("--deadline", optarg, 1);
            break;
        case 'm':
            o->model = optarg;
            break;
        case OPT_ENGINE:
            o->engine = cli_arg_engine("--engine", optarg);
            break;
        case OPT_DP_SIZE:
            o->dp_size = (int)cli_arg_count("--dp-size", optarg, 1, MAX_DP);
            break;
        case OPT_STATS:
            o->stats = 1;
            break;
        default:
            if (!curveopt_option(c, optarg, &o->curve) &&
                !cli_common_option(c, usage_text))
                cli_bad_option(c, argv);
        }
    }
    if (optind >= argc)
        cli_usage_error("missing endpoint spec ([NAME=]REPLAY_URI)");
    if (argc - optind > 1)
        cli_usage_error("one endpoint spec only (got %d)", argc - optind);
    if (o->to < o->from)
        cli_usage_error("--to %llu is below --from %llu",
                        (unsigned long long)o->to, (unsigned long long)o->from);
    o->spec = argv[optind];
    curveopt_load(&o->curve);
}

int
main(int argc, char **argv)
{
    struct opts o;
    int sig = 0, status;

    cli_prog = "kvreplay";
    parse_args(argc, argv, &o);
    if (cli_signals_install() == -1) {
        log_error("cannot install signal handlers: %s", strerror(errno));
        return 1;
    }
    status = run(&o, &sig);
    if (sig != 0)
        cli_reraise(sig);
    return status;
}

/*
 * test_replay.c - the replay client against a scripted ROUTER in a thread
 * (inproc://), table-driven.  The ROUTER follows docs/protocol.md#replay
 * and can drop chosen replies, leave out the end marker, answer in the
 * 4-frame layout, send malformed replies or stay silent, so that every
 * repair path of lib/replay.c is exercised deterministically.  The
 * protocol claims themselves are also tested against the independent
 * Python peer (tests/cli/kvreplay.bats).
 */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <zmq.h>

#include "replay.h"
#include "unit.h"

#define MAX_PLAN 4
#define MAX_DROP 4
#define MAX_GOT 4096

/* How the ROUTER answers one request. */
struct plan {
    uint64_t drop[MAX_DROP]; /* seqs left out */
    int ndrop;
    int no_end; /* leave out the end marker */
    int bad;    /* send a malformed reply first */
    int mute;   /* no answer at all */
};

struct engine {
    void *sock;
    uint64_t lo, hi; /* buffered seqs lo..hi; hi < lo: empty */
    int topic;       /* 4-frame replies */
    int atom;        /* no empty delimiter, end marker msgpack([lo, hi]) */
    int sloppy;      /* ignore start: replay from lo every time */
    struct plan plan[MAX_PLAN];
    int nplan;         /* requests beyond use the last plan if sticky */
    int sticky;        /* the last plan applies to every later request */
    int requests;      /* out */
    volatile int stop; /* set by the test when done */
};

static void
put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
}

static void
send_reply(struct engine *e, zmq_msg_t *id, const void *seq8,
           const void *payload, size_t len)
{
    zmq_msg_t copy;

    zmq_msg_init(&copy);
    zmq_msg_copy(&copy, id);
    zmq_msg_send(&copy, e->sock, ZMQ_SNDMORE);
    if (!e->atom)
        zmq_send(e->sock, "", 0, ZMQ_SNDMORE);
    if (e->topic)
        zmq_send(e->sock, "kv", 2, ZMQ_SNDMORE);
    zmq_send(e->sock, seq8, 8, ZMQ_SNDMORE);
    zmq_send(e->sock, payload, len, 0);
}

static void *
engine_main(void *arg)
{
    struct engine *e = arg;

    while (!e->stop) {
        zmq_pollitem_t it = {e->sock, 0, ZMQ_POLLIN, 0};
        zmq_msg_t part[4];
        int n = 0, more = 1;
        const struct plan *p;
        static const struct plan none;
        uint64_t start = 0;

        if (zmq_poll(&it, 1, 10) <= 0)
            continue;
        while (more) {
            zmq_msg_t m;

            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, e->sock, 0) == -1)
                break;
            more = zmq_msg_more(&m);
            if (n < 4)
                part[n] = m;
            else
                zmq_msg_close(&m);
            n++;
        }
        if (n == 3 && zmq_msg_size(&part[1]) == 0 &&
            zmq_msg_size(&part[2]) == 8) {
            const uint8_t *s = zmq_msg_data(&part[2]);

            for (int i = 0; i < 8; i++)
                start = (start << 8) | s[i];
            p = e->requests < e->nplan
                    ? &e->plan[e->requests]
                    : (e->sticky && e->nplan ? &e->plan[e->nplan - 1] : &none);
            e->requests++;
            if (!p->mute) {
                uint8_t seq8[8];
                char payload[32];

                if (p->bad) {
                    zmq_msg_t copy;

                    zmq_msg_init(&copy);
                    zmq_msg_copy(&copy, &part[0]);
                    zmq_msg_send(&copy, e->sock, ZMQ_SNDMORE);
                    zmq_send(e->sock, "", 0, ZMQ_SNDMORE);
                    zmq_send(e->sock, "bad", 3, 0);
                }
                for (uint64_t q = e->sloppy || start < e->lo ? e->lo : start;
                     q <= e->hi && e->hi >= e->lo; q++) {
                    int dropped = 0;

                    for (int d = 0; d < p->ndrop; d++)
                        dropped |= p->drop[d] == q;
                    if (dropped)
                        continue;
                    put_be64(seq8, q);
                    snprintf(payload, sizeof payload, "p%llu",
                             (unsigned long long)q);
                    send_reply(e, &part[0], seq8, payload, strlen(payload));
                }
                if (!p->no_end) {
                    /* ATOM: msgpack([oldest, latest]) as two fixints. */
                    uint8_t bounds[3] = {0x92, (uint8_t)(e->lo & 0x7f),
                                         (uint8_t)(e->hi & 0x7f)};

                    memset(seq8, 0xff, sizeof seq8);
                    send_reply(e, &part[0], seq8, bounds,
                               e->atom ? sizeof bounds : 0);
                }
            }
        }
        for (int i = 0; i < n && i < 4; i++)
            zmq_msg_close(&part[i]);
    }
    return NULL;
}

struct got {
    uint64_t seq[MAX_GOT];
    size_t n;
    int payload_ok;
    int order_ok;  /* strictly ascending */
    int contig_ok; /* no seq skipped */
    uint64_t bad;
    uint64_t stop_after; /* 0: never stop */
};

static int
on_batch(void *ctx, uint64_t seq, const uint8_t *payload, size_t len)
{
    struct got *g = ctx;
    char want[32];

    snprintf(want, sizeof want, "p%llu", (unsigned long long)seq);
    if (len != strlen(want) || memcmp(payload, want, len) != 0)
        g->payload_ok = 0;
    if (g->n > 0 && seq <= g->seq[g->n - 1])
        g->order_ok = 0;
    if (g->n > 0 && seq != g->seq[g->n - 1] + 1)
        g->contig_ok = 0;
    if (g->n < MAX_GOT)
        g->seq[g->n] = seq;
    g->n++;
    return g->stop_after != 0 && g->n >= g->stop_after;
}

static void
on_bad(void *ctx, const char *why, size_t bytes)
{
    struct got *g = ctx;

    (void)why;
    (void)bytes;
    g->bad++;
}

static long long
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct tcase {
    const char *name;
    uint64_t lo, hi;
    int topic, atom, sloppy, sticky, bind;
    struct plan plan[MAX_PLAN];
    int nplan;
    uint64_t from, to;
    int max_retries;
    /* Expectations. */
    int rc;
    uint64_t n, first, last;
    int has_lost;
    uint64_t lost_from, lost_to;
    uint64_t min_retries, max_retries_seen;
    uint64_t bad;
    int got_end;
    long long max_ms; /* the fetch must end within this */
};

#define TIMEOUT_MS 400

static const struct tcase cases[] = {
    {.name = "complete, 3-frame replies",
     .lo = 0,
     .hi = 99,
     .bind = 1,
     .from = 0,
     .to = UINT64_MAX,
     .rc = REPLAY_OK,
     .n = 100,
     .first = 0,
     .last = 99,
     .got_end = 1,
     .max_ms = 2000},
    {.name = "complete, 4-frame replies with a topic",
     .lo = 0,
     .hi = 99,
     .topic = 1,
     .bind = 1,
     .from = 0,
     .to = UINT64_MAX,
     .rc = REPLAY_OK,
     .n = 100,
     .first = 0,
     .last = 99,
     .got_end = 1,
     .max_ms = 2000},
    {.name = "ATOM: no delimiter, msgpack([oldest, latest]) end marker",
     .lo = 0,
     .hi = 99,
     .atom = 1,
     .bind = 1,
     .from = 0,
     .to = UINT64_MAX,
     .rc = REPLAY_OK,
     .n = 100,
     .first = 0,
     .last = 99,
     .got_end = 1,
     .max_ms = 2000},
    {.name = "ATOM with a topic: [topic, seq, payload]",
     .lo = 5,
     .hi = 60,
     .atom = 1,
     .topic = 1,
     .bind = 1,
     .from = 5,
     .to = UINT64_MAX,
     .rc = REPLAY_OK,
     .n = 56,
     .first = 5,
     .last = 60,
     .got_end = 1,
     .max_ms = 2000},
    {.name = "a range: stops at to without the end marker",
     .lo = 0,
     .hi = 99,
     .bind = 1,
     .plan = {{.no_end = 1}},
     .nplan = 1,
     .sticky = 1,
     .from = 40,
     .to = 59,
     .rc = REPLAY_OK,
     .n = 20,
     .first = 40,
     .last = 59,
     .max_ms = TIMEOUT_MS / 2},
    {.name = "truncation: first reply above from",
     .lo = 10,
     .hi = 19,
     .bind = 1,
     .from = 5,
     .to = UINT64_MAX,
     .rc = REPLAY_OK,
     .n = 10,
     .first = 10,
     .last = 19,
     .has_lost = 1,
     .lost_from = 5,
     .lost_to = 9,
     .got_end = 1,
     .max_ms = 2000},
    {.name = "truncation capped at to",
     .lo = 10,
     .hi = 19,
     .bind = 1,
     .from = 2,
     .to = 6,
     .rc = REPLAY_OK,
     .n = 0,
     .has_lost = 1,
     .lost_from = 2,
     .lost_to = 6,
     .max_ms = 2000},
    {.name = "start above the newest: only the end marker",
     .lo = 0,
     .hi = 9,
     .bind = 1,
     .from = 50,
     .to = UINT64_MAX,
     .rc = REPLAY_OK,
     .n = 0,
     .got_end = 1,
     .max_ms = 2000},
    {.name = "empty buffer: only the end marker",
     .lo = 1,
     .hi = 0,
     .bind = 1,
     .from = 0,
     .to = UINT64_MAX,
     .rc = REPLAY_OK,
     .n = 0,
     .got_end = 1,
     .max_ms = 2000},
    {.name = "a hole mid-stream is re-requested",
     .lo = 0,
     .hi = 49,
     .bind = 1,
     .plan = {{.drop = {20, 21}, .ndrop = 2}},
     .nplan = 1,
     .from = 0,
     .to = UINT64_MAX,
     .rc = REPLAY_OK,
     .n = 50,
     .first = 0,
     .last = 49,
     .min_retries = 1,
     .max_retries_seen = 2,
     .got_end = 1,
     .max_ms = 2000},
    {.name = "tail dropped, end marker kept: a long stream is confirmed",
     .lo = 0,
     .hi = 1499,
     .bind = 1,
     .plan = {{.drop = {1498, 1499}, .ndrop = 2}},
     .nplan = 1,
     .from = 0,
     .to = UINT64_MAX,
     .rc = REPLAY_OK,
     .n = 1500,
     .first = 0,
     .last = 1499,
     .min_retries = 1,
     .max_retries_seen = 1,
     .got_end = 1,
     .max_ms = 3000},
    {.name = "end marker lost, to open: re-request, lone end marker ends",
     .lo = 0,
     .hi = 9,
     .bind = 1,
     .plan = {{.no_end = 1}},
     .nplan = 1,
     .from = 0,
     .to = UINT64_MAX,
     .rc = REPLAY_OK,
     .n = 10,
     .first = 0,
     .last = 9,
     .min_retries = 1,
     .max_retries_seen = 1,
     .got_end = 1,
     .max_ms = 2000},
    /*
     * Request 1: 5 dropped and the end marker lost (silence, re-request);
     * request 2 starts above 5 while something may still be in flight:
     * not proof of loss, so 5 is asked for again; request 3 has it; a
     * fourth confirms the end.
     */
    {.name = "head dropped after a lost end marker: re-requested, no loss",
     .lo = 0,
     .hi = 9,
     .bind = 1,
     .plan = {{.drop = {5}, .ndrop = 1, .no_end = 1},
              {.drop = {5}, .ndrop = 1}},
     .nplan = 2,
     .from = 0,
     .to = UINT64_MAX,
     .rc = REPLAY_OK,
     .n = 10,
     .first = 0,
     .last = 9,
     .min_retries = 3,
     .max_retries_seen = 3,
     .got_end = 1,
     .max_ms = 3000},
    {.name = "malformed replies are counted, the fetch goes on",
     .lo = 0,
     .hi = 9,
     .bind = 1,
     .plan = {{.bad = 1}},
     .nplan = 1,
     .from = 0,
     .to = UINT64_MAX,
     .rc = REPLAY_OK,
     .n = 10,
     .first = 0,
     .last = 9,
     .bad = 1,
     .got_end = 1,
     .max_ms = 2000},
    {.name = "an engine that ignores start: below-from and dups dropped",
     .lo = 0,
     .hi = 9,
     .bind = 1,
     .sloppy = 1,
     .from = 5,
     .to = UINT64_MAX,
     .rc = REPLAY_OK,
     .n = 5,
     .first = 5,
     .last = 9,
     .got_end = 1,
     .max_ms = 2000},
    /*
     * An engine that holds 6 but not 5 (a seq consumed by a failed encode,
     * docs/protocol.md#sequence-numbers): a clean re-request from 5 starts
     * at 6, which proves the loss.
     */
    {.name = "a seq the engine never buffered: a loss, proven by a clean "
             "re-request",
     .lo = 0,
     .hi = 9,
     .bind = 1,
     .plan = {{.drop = {5}, .ndrop = 1}},
     .nplan = 1,
     .sticky = 1,
     .from = 0,
     .to = UINT64_MAX,
     .rc = REPLAY_OK,
     .n = 9,
     .first = 0,
     .last = 9,
     .has_lost = 1,
     .lost_from = 5,
     .lost_to = 5,
     .min_retries = 1,
     .max_retries_seen = 2,
     .got_end = 1,
     .max_ms = 2000},
    {.name = "a hole and no end marker every time: bounded retries, timeout",
     .lo = 0,
     .hi = 9,
     .bind = 1,
     .plan = {{.drop = {5}, .ndrop = 1, .no_end = 1}},
     .nplan = 1,
     .sticky = 1,
     .from = 0,
     .to = UINT64_MAX,
     .max_retries = 3,
     .rc = REPLAY_TIMEOUT,
     .n = 5,
     .first = 0,
     .last = 4,
     .min_retries = 3,
     .max_retries_seen = 3,
     .max_ms = 3000},
    {.name = "a silent ROUTER: timeout",
     .lo = 0,
     .hi = 9,
     .bind = 1,
     .plan = {{.mute = 1}},
     .nplan = 1,
     .sticky = 1,
     .from = 0,
     .to = UINT64_MAX,
     .rc = REPLAY_TIMEOUT,
     .n = 0,
     .max_ms = TIMEOUT_MS + 600},
    {.name = "nobody bound: timeout",
     .lo = 0,
     .hi = 9,
     .bind = 0,
     .from = 0,
     .to = UINT64_MAX,
     .rc = REPLAY_TIMEOUT,
     .n = 0,
     .max_ms = TIMEOUT_MS + 600},
};

static void
run_case(void *zctx, const struct tcase *tc, int idx)
{
    struct engine e;
    struct got g;
    struct replay_client *rc;
    struct replay_request req;
    struct replay_result res;
    pthread_t th;
    char uri[64], err[256], what[256];
    long long t0, ms;
    int ret, started = 0;

    memset(&e, 0, sizeof e);
    memset(&g, 0, sizeof g);
    g.payload_ok = g.order_ok = g.contig_ok = 1;
    snprintf(uri, sizeof uri, "inproc://replay-%d", idx);
    e.lo = tc->lo;
    e.hi = tc->hi;
    e.topic = tc->topic;
    e.atom = tc->atom;
    e.sloppy = tc->sloppy;
    e.sticky = tc->sticky;
    e.nplan = tc->nplan;
    memcpy(e.plan, tc->plan, sizeof e.plan);
    if (tc->bind) {
        int linger = 0;

        e.sock = zmq_socket(zctx, ZMQ_ROUTER);
        zmq_setsockopt(e.sock, ZMQ_LINGER, &linger, sizeof linger);
        if (!CHECK(zmq_bind(e.sock, uri) == 0, "engine binds"))
            return;
        started = pthread_create(&th, NULL, engine_main, &e) == 0;
    }
    rc = replay_open(zctx, uri, err, sizeof err);
    if (!CHECK(rc != NULL, "replay_open"))
        goto out;
    req.from = tc->from;
    req.to = tc->to;
    req.timeout_ms = TIMEOUT_MS;
    req.max_retries = tc->max_retries;
    t0 = now_ms();
    ret = replay_fetch(rc, &req, on_batch, on_bad, &g, &res, err, sizeof err);
    ms = now_ms() - t0;

    snprintf(what, sizeof what, "%s: return code", tc->name);
    CHECK_U64((uint64_t)(ret + 10), (uint64_t)(tc->rc + 10), what);
    snprintf(what, sizeof what, "%s: batches delivered", tc->name);
    CHECK_U64(g.n, tc->n, what);
    CHECK_U64(res.delivered, tc->n, what);
    if (tc->n > 0 && g.n > 0) {
        snprintf(what, sizeof what, "%s: first and last seq", tc->name);
        CHECK(g.seq[0] == tc->first && g.seq[g.n - 1] == tc->last, what);
    }
    snprintf(what, sizeof what, "%s: ascending, contiguous, right payloads",
             tc->name);
    CHECK(g.order_ok && (g.contig_ok || tc->has_lost) && g.payload_ok, what);
    snprintf(what, sizeof what, "%s: loss claimed only when real", tc->name);
    if (tc->has_lost && tc->lost_to >= tc->lost_from)
        CHECK(res.has_lost && res.lost_from == tc->lost_from &&
                  res.lost_to == tc->lost_to,
              what);
    else
        CHECK(!res.has_lost, what);
    snprintf(what, sizeof what, "%s: re-requests %llu in [%llu, %llu]",
             tc->name, (unsigned long long)res.retries,
             (unsigned long long)tc->min_retries,
             (unsigned long long)tc->max_retries_seen);
    CHECK(res.retries >= tc->min_retries && res.retries <= tc->max_retries_seen,
          what);
    snprintf(what, sizeof what, "%s: malformed replies counted", tc->name);
    CHECK_U64(res.bad, tc->bad, what);
    CHECK_U64(g.bad, tc->bad, what);
    if (tc->rc == REPLAY_OK) {
        snprintf(what, sizeof what, "%s: end marker seen", tc->name);
        CHECK_U64(res.got_end, tc->got_end, what);
    } else {
        snprintf(what, sizeof what, "%s: the error names the endpoint",
                 tc->name);
        CHECK(strstr(err, uri) != NULL, what);
    }
    snprintf(what, sizeof what, "%s: done in %lld ms (limit %lld)", tc->name,
             ms, tc->max_ms);
    CHECK(ms <= tc->max_ms, what);
out:
    replay_close(rc);
    if (started) {
        e.stop = 1;
        pthread_join(th, NULL);
    }
    if (e.sock != NULL)
        zmq_close(e.sock);
}

/*
 * Binds e's ROUTER to uri and runs fn(e) in thread *th.  Returns 1, or 0
 * (checked) when that failed.
 */
static int
start_engine(void *zctx, struct engine *e, const char *uri, void *(*fn)(void *),
             pthread_t *th)
{
    int linger = 0;

    e->sock = zmq_socket(zctx, ZMQ_ROUTER);
    zmq_setsockopt(e->sock, ZMQ_LINGER, &linger, sizeof linger);
    return CHECK(zmq_bind(e->sock, uri) == 0, "engine binds") &&
           CHECK(pthread_create(th, NULL, fn, e) == 0, "thread");
}

/*
 * A second fetch on the same client while the first one's stream is still
 * arriving: the stale tail must neither be claimed as a loss nor cost a
 * timeout.
 */
static void
test_stale_stream(void *zctx)
{
    struct engine e;
    struct got g1, g2;
    struct replay_client *rc;
    struct replay_request req;
    struct replay_result res;
    pthread_t th;
    char err[256];
    int ret;
    long long t0, ms;

    memset(&e, 0, sizeof e);
    memset(&g1, 0, sizeof g1);
    memset(&g2, 0, sizeof g2);
    g1.payload_ok = g1.order_ok = g1.contig_ok = 1;
    g2.payload_ok = g2.order_ok = g2.contig_ok = 1;
    e.lo = 0;
    e.hi = 1999;
    if (!start_engine(zctx, &e, "inproc://replay-stale", engine_main, &th))
        return;
    rc = replay_open(zctx, "inproc://replay-stale", err, sizeof err);
    req.from = 0;
    req.to = 9;
    req.timeout_ms = TIMEOUT_MS;
    req.max_retries = 0;
    ret = replay_fetch(rc, &req, on_batch, on_bad, &g1, &res, err, sizeof err);
    CHECK(ret == REPLAY_OK && g1.n == 10, "stale: first fetch 0..9");
    req.from = 1500;
    req.to = UINT64_MAX;
    t0 = now_ms();
    ret = replay_fetch(rc, &req, on_batch, on_bad, &g2, &res, err, sizeof err);
    ms = now_ms() - t0;
    CHECK(ret == REPLAY_OK, "stale: second fetch succeeds");
    CHECK_U64(g2.n, 500, "stale: second fetch delivers 1500..1999");
    CHECK(g2.n > 0 && g2.seq[0] == 1500 && g2.contig_ok && g2.payload_ok,
          "stale: in order from 1500");
    CHECK(!res.has_lost, "stale: no loss claimed");
    CHECK(ms < TIMEOUT_MS, "stale: no timeout-length wait");
    replay_close(rc);
    e.stop = 1;
    pthread_join(th, NULL);
    zmq_close(e.sock);
}

/* A callback that asks to stop ends the fetch with REPLAY_STOPPED. */
static void
test_stop(void *zctx)
{
    struct engine e;
    struct got g;
    struct replay_client *rc;
    struct replay_request req;
    struct replay_result res;
    pthread_t th;
    char err[256];
    int ret;

    memset(&e, 0, sizeof e);
    memset(&g, 0, sizeof g);
    g.payload_ok = g.order_ok = g.contig_ok = 1;
    g.stop_after = 3;
    e.lo = 0;
    e.hi = 9;
    if (!start_engine(zctx, &e, "inproc://replay-stop", engine_main, &th))
        return;
    rc = replay_open(zctx, "inproc://replay-stop", err, sizeof err);
    req.from = 0;
    req.to = UINT64_MAX;
    req.timeout_ms = TIMEOUT_MS;
    req.max_retries = 0;
    ret = replay_fetch(rc, &req, on_batch, on_bad, &g, &res, err, sizeof err);
    CHECK(ret == REPLAY_STOPPED, "stop: REPLAY_STOPPED");
    CHECK_U64(g.n, 3, "stop: three batches delivered");
    CHECK_U64(res.next, 3, "stop: next is the first not delivered");
    replay_close(rc);
    e.stop = 1;
    pthread_join(th, NULL);
    zmq_close(e.sock);
}

/*
 * A ROUTER that answers a request with one new batch every 50 ms and never
 * ends: each reply is progress, so only an overall deadline stops it.
 * Uses only sock and stop of the engine.
 */
static void *
drip_main(void *arg)
{
    struct engine *d = arg;
    zmq_msg_t id;
    uint64_t next = 0;
    int asked = 0;

    zmq_msg_init(&id);
    while (!d->stop) {
        zmq_pollitem_t it = {d->sock, 0, ZMQ_POLLIN, 0};

        if (zmq_poll(&it, 1, 50) > 0) {
            zmq_msg_t part;
            int more = 1, n = 0;

            while (more) {
                zmq_msg_init(&part);
                zmq_msg_recv(&part, d->sock, 0);
                more = zmq_msg_more(&part);
                if (n++ == 0)
                    zmq_msg_copy(&id, &part);
                zmq_msg_close(&part);
            }
            asked = 1;
        }
        if (asked) {
            uint8_t seq8[8];
            char payload[32];

            put_be64(seq8, next);
            snprintf(payload, sizeof payload, "p%llu",
                     (unsigned long long)next);
            send_reply(d, &id, seq8, payload, strlen(payload));
            next++;
        }
    }
    zmq_msg_close(&id);
    return NULL;
}

/*
 * deadline_ms ends a fetch that makes progress for ever, through
 * replay_fetch and through the non-blocking replay_start/replay_step.
 */
static void
test_deadline(void *zctx)
{
    struct engine d;
    struct got g;
    struct replay_client *rc;
    struct replay_request req;
    struct replay_result res;
    pthread_t th;
    char err[256];
    int ret;
    long long t0, ms;

    memset(&d, 0, sizeof d);
    memset(&g, 0, sizeof g);
    g.payload_ok = g.order_ok = g.contig_ok = 1;
    if (!start_engine(zctx, &d, "inproc://replay-drip", drip_main, &th))
        return;
    rc = replay_open(zctx, "inproc://replay-drip", err, sizeof err);
    memset(&req, 0, sizeof req);
    req.to = UINT64_MAX;
    req.timeout_ms = TIMEOUT_MS;
    req.deadline_ms = 600;
    t0 = now_ms();
    ret = replay_fetch(rc, &req, on_batch, on_bad, &g, &res, err, sizeof err);
    ms = now_ms() - t0;
    CHECK(ret == REPLAY_TIMEOUT, "deadline: a fetch that never ends times out");
    CHECK(ms >= 600 && ms < 1500, "deadline: at the deadline, not later");
    CHECK(g.n >= 3 && g.contig_ok && g.payload_ok,
          "deadline: the batches that came were delivered");
    CHECK(strstr(err, "inproc://replay-drip: replay deadline passed") == err,
          "deadline: the error says so and names the endpoint");
    /* The same without blocking: the caller polls and steps. */
    req.from = res.next;
    req.deadline_ms = 300;
    t0 = now_ms();
    ret = replay_start(rc, &req, on_batch, on_bad, &g);
    while (ret == REPLAY_MORE) {
        zmq_pollitem_t it = {replay_socket(rc), 0, ZMQ_POLLIN, 0};
        long long left = replay_due(rc) - replay_now_ms();

        zmq_poll(&it, 1, (long)(left > 0 ? left : 0));
        ret = replay_step(rc);
    }
    ms = now_ms() - t0;
    CHECK(ret == REPLAY_TIMEOUT && replay_result(rc, &res) == REPLAY_TIMEOUT,
          "deadline: replay_step ends at the deadline too");
    CHECK(ms >= 300 && ms < 1200, "deadline: replay_step on time");
    CHECK(strstr(replay_error(rc), "replay deadline passed") != NULL,
          "deadline: replay_error says why");
    replay_close(rc);
    d.stop = 1;
    pthread_join(th, NULL);
    zmq_close(d.sock);
}

int
main(void)
{
    void *zctx = zmq_ctx_new();
    char err[128];

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(zctx, &cases[i], (int)i);
    test_stale_stream(zctx);
    test_stop(zctx);
    test_deadline(zctx);
    CHECK(replay_open(zctx, "bogus://x", err, sizeof err) == NULL &&
              strstr(err, "bogus://x") != NULL,
          "replay_open rejects a bad URI and names it");
    replay_close(NULL);
    zmq_ctx_term(zctx);
    return unit_done();
}

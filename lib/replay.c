/*
 * replay.c - the DEALER side of the engines' replay protocol.
 *
 * The engine's ROUTER answers each request ["", start] with a stream: one
 * message per buffered batch with seq >= start, in ascending order, then
 * the end marker.  It keeps libzmq's default send high-water mark, so any
 * message of a stream may be dropped, the end marker included.  The client
 * therefore delivers only contiguous seqs and repairs holes by asking
 * again from the first missing one.
 *
 * Stale replies.  A re-request is sent while the tail of the previous
 * stream (and, in kvsub, of a previous fetch) may still be in flight.  The
 * ROUTER serves requests one after the other on one pipe, so the replies
 * form consecutive streams, each ascending.  The client numbers streams as
 * they arrive: a new stream starts after an end marker or when a seq does
 * not ascend.  Only the stream that answers the newest request may report
 * truncation or decide that a hole needs another request; batches of any
 * stream are still delivered when they are the next seq wanted, because a
 * seq names the same batch whichever stream carries it.  When a stream's
 * end marker is lost the client notices the silence (a short quiet
 * period), asks again and re-synchronises its count to the newest request.
 * Truncation is claimed only when the evidence is unambiguous: the first
 * message of the newest request's stream is newer than the seq asked for,
 * and either nothing was in flight when the request went out (the
 * ROUTER's pipe was empty, so it cannot have dropped the head), or two
 * requests in a row, each clearly a new stream (the seq went down),
 * started above it.  Since the ROUTER can drop the last batches of a long
 * stream yet still fit the end marker, a stream of 1000 batches or more,
 * or any sign of drops, is confirmed by one more request from the next
 * seq; an answer of just the end marker ends the fetch.
 */
#include "replay.h"

#include "zsock.h"
#include "curve.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#define REPLAY_RCVHWM 1000000
#define REPLAY_DEFAULT_RETRIES 8
/* Messages one replay_step reads before it lets the caller go on. */
#define REPLAY_STEP_BUDGET 1024
/* libzmq's default SNDHWM, which the engines' ROUTER keeps. */
#define REPLAY_ROUTER_HWM 1000
/* Silence after which a started stream is taken as ended (marker lost). */
#define REPLAY_QUIET_MIN_MS 200
#define REPLAY_QUIET_MAX_MS 1000

/* The state of one fetch. */
struct fetch {
    struct replay_client *rc;
    const struct replay_request *req;
    struct replay_result *res;
    replay_cb cb;
    replay_bad_cb bad;
    void *ctx;
    int timeout_ms; /* wait for the first reply to a request */
    int quiet_ms;   /* silence that ends a stream once replies flow */
    int max_retries;
    int stopped;           /* cb asked to stop */
    long long deadline;    /* the fetch ends here whatever comes; 0: none */
    long long progress_ms; /* the newest request, or batch delivered */
    uint64_t req_start;    /* seq asked for by the newest request */
    int cur_first;         /* no message of the newest request's stream yet */
    int rx_since_req;      /* a message arrived since the newest request */
    int sure;              /* nothing was in flight when it was sent */
    int has_suspect;       /* a stream started above next without proof */
    uint64_t suspect;      /* ... the next seq it skipped */
    int hole;              /* the current stream skipped the next seq */
    int drops;             /* this fetch saw evidence of dropped replies */
    uint64_t stream_n;     /* batches in the newest request's stream */
    int barren;            /* re-requests in a row that brought no batch */
    long long last_ms;     /* last message received or request sent */
    int seen_any;          /* any message at all during this fetch */
};

struct replay_client {
    void *sock;
    char *uri;
    /*
     * Stream accounting across fetches: requests sent, streams seen, whether
     * the last message was a batch (a stream is open) and its seq.
     */
    uint64_t req_no;
    uint64_t rx_stream;
    int in_stream;
    uint64_t last_rx;
    /* The newest request's end marker arrived: nothing is in flight. */
    int clean;
    /* The fetch under way (replay_start .. the end of replay_step). */
    int active;
    int last_rc; /* how the last fetch ended */
    struct replay_request req;
    struct replay_result res;
    struct fetch f;
    char err[256];
};

static long long
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct replay_client *
replay_open(void *zctx, const char *uri, char *err, size_t errlen)
{
    struct replay_client *rc = NULL;
    int hwm = REPLAY_RCVHWM;

    rc = calloc(1, sizeof *rc);
    if (rc == NULL || (rc->uri = strdup(uri)) == NULL) {
        snprintf(err, errlen, "%s: out of memory", uri);
        goto fail;
    }
    rc->sock = zmq_socket(zctx, ZMQ_DEALER);
    if (rc->sock == NULL) {
        snprintf(err, errlen, "%s: %s", uri, zmq_strerror(errno));
        goto fail;
    }
    if (zmq_setsockopt(rc->sock, ZMQ_RCVHWM, &hwm, sizeof hwm) == -1 ||
        zsock_set_common(rc->sock) == -1 || curve_apply(rc->sock, 0) == -1) {
        snprintf(err, errlen, "%s: setsockopt: %s", uri, zmq_strerror(errno));
        goto fail;
    }
    if (zmq_connect(rc->sock, uri) == -1) {
        snprintf(err, errlen, "%s: cannot connect: %s", uri,
                 zmq_strerror(errno));
        goto fail;
    }
    rc->clean = 1;
    return rc;
fail:
    replay_close(rc);
    return NULL;
}

int
replay_reconnect(struct replay_client *rc, char *err, size_t errlen)
{
    /* ENOENT: libzmq already dropped the endpoint; connect again anyway. */
    if (zmq_disconnect(rc->sock, rc->uri) == -1 && errno != ENOENT) {
        snprintf(err, errlen, "%s: disconnect: %s", rc->uri,
                 zmq_strerror(errno));
        return -1;
    }
    if (zmq_connect(rc->sock, rc->uri) == -1) {
        snprintf(err, errlen, "%s: cannot connect: %s", rc->uri,
                 zmq_strerror(errno));
        return -1;
    }
    /* Nothing sent before can be answered any more. */
    rc->rx_stream = rc->req_no;
    rc->in_stream = 0;
    rc->clean = 1;
    return 0;
}

int
replay_set_max_msg(struct replay_client *rc, int64_t bytes, char *err,
                   size_t errlen)
{
    int64_t v = bytes > 0 ? bytes : -1;

    if (zmq_setsockopt(rc->sock, ZMQ_MAXMSGSIZE, &v, sizeof v) == -1) {
        snprintf(err, errlen, "%s: setsockopt: %s", rc->uri,
                 zmq_strerror(errno));
        return -1;
    }
    return replay_reconnect(rc, err, errlen);
}

void
replay_close(struct replay_client *rc)
{
    if (rc == NULL)
        return;
    if (rc->sock != NULL)
        zmq_close(rc->sock);
    free(rc->uri);
    free(rc);
}

/*
 * Sends ["", start] (8-byte big-endian) without waiting: a DEALER queues
 * it on the pipe that connect() made even before the connection is up, so
 * EAGAIN means there is no pipe at all (libzmq dropped it and is not
 * reconnecting).  Returns 0, or -1 with errno.
 */
static int
send_request(struct replay_client *rc, uint64_t start)
{
    uint8_t s8[8];

    zsock_put_be64(s8, start);
    if (zmq_send(rc->sock, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1)
        return -1;
    /* The parts of one message go together: the second cannot fail. */
    if (zmq_send(rc->sock, s8, sizeof s8, ZMQ_DONTWAIT) == -1)
        return -1;
    rc->req_no++;
    rc->clean = 0;
    return 0;
}

enum step { STEP_MORE, STEP_DONE, STEP_REREQUEST };

/*
 * Handles one batch message of seq s.  Returns STEP_MORE, or STEP_DONE
 * when everything up to `to` is held.
 */
static enum step
on_batch(struct fetch *f, uint64_t s, const uint8_t *payload, size_t len)
{
    struct replay_client *rc = f->rc;
    struct replay_result *res = f->res;
    int descent = rc->in_stream && s <= rc->last_rx;
    int current, first = 0;

    if (!rc->in_stream || descent) {
        /* A new stream; never count past the newest request. */
        if (rc->rx_stream < rc->req_no)
            rc->rx_stream++;
        rc->in_stream = 1;
        first = 1;
    }
    rc->last_rx = s;
    current = rc->rx_stream == rc->req_no;
    if (current)
        f->stream_n++;
    if (current && f->cur_first && first && s > res->next) {
        /*
         * The stream starts above the seq asked for.  When nothing was in
         * flight, the ROUTER's pipe was empty and cannot have dropped the
         * head: the engine no longer holds next .. s-1.  Otherwise the
         * head may have been dropped behind a stale tail; believe it when
         * a second request, clearly a new stream, starts above it too.
         */
        int proven =
            f->sure || (descent && f->has_suspect && f->suspect == res->next);

        if (proven) {
            uint64_t lost_to = s - 1;

            if (lost_to > f->req->to)
                lost_to = f->req->to;
            if (!res->has_lost) {
                res->has_lost = 1;
                res->lost_from = res->next;
            }
            res->lost_to = lost_to;
            res->next = s;
            f->has_suspect = 0;
        } else {
            f->has_suspect = 1;
            f->suspect = res->next;
        }
    }
    if (current)
        f->cur_first = 0;
    if (s == res->next && s <= f->req->to) {
        if (f->cb(f->ctx, s, payload, len) != 0)
            f->stopped = 1;
        res->delivered++;
        res->next = s + 1;
        f->progress_ms = now_ms();
        if (f->stopped)
            return STEP_DONE;
    } else if (s > res->next && current) {
        f->hole = 1;
        f->drops = 1;
    }
    if (f->req->to != UINT64_MAX && res->next > f->req->to)
        return STEP_DONE;
    return STEP_MORE;
}

/* Handles an end marker. */
static enum step
on_end(struct fetch *f)
{
    struct replay_client *rc = f->rc;

    if (!rc->in_stream && rc->rx_stream < rc->req_no) {
        /* A stream with no batch at all. */
        rc->rx_stream++;
    }
    rc->in_stream = 0;
    if (rc->rx_stream != rc->req_no)
        return STEP_MORE; /* the end of a stale stream */
    rc->clean = 1;
    f->progress_ms = now_ms();
    if (f->cur_first) {
        /* The engine holds nothing at or after the seq asked for. */
        f->cur_first = 0;
        f->res->got_end = 1;
        return STEP_DONE;
    }
    if (f->hole)
        return STEP_REREQUEST;
    /*
     * The ROUTER drops only while more than its high-water mark (1000) of
     * replies are queued, and it may drop the last batches yet fit the end
     * marker.  After a long stream, or once drops were seen, confirm with
     * one more request from next: an answer of just the end marker ends it.
     */
    if (f->stream_n >= REPLAY_ROUTER_HWM || f->drops)
        return STEP_REREQUEST;
    f->res->got_end = 1;
    return STEP_DONE;
}

/*
 * Classifies one message: returns 1 for a batch (seq, payload set), 2 for
 * the end marker, 0 for a malformed message (why set).
 *
 * Four layouts reach a DEALER (docs/protocol.md#replay): ["", seq, payload]
 * and ["", topic, seq, payload] from vLLM, and the same without the empty
 * delimiter from ROUTERs written after ATOM's, which also put
 * msgpack([oldest, latest]) in the end marker's payload.  An empty first
 * part of three or more is the delimiter (an empty topic would parse the
 * same); after it, two parts are seq and payload, three are topic, seq and
 * payload.  The end marker is seq 2^64-1 whatever its payload says.
 */
static int
classify(const struct zsock_msg *m, uint64_t *seq, const uint8_t **payload,
         size_t *len, const char **why)
{
    size_t l0, ls;
    const uint8_t *sp;
    int first = 0, seq_i;

    if (m->nparts >= 3) {
        zsock_part(m, 0, &l0);
        first = l0 == 0;
    }
    if (m->nparts - first < 2 || m->nparts - first > 3) {
        *why = "replay reply with a wrong number of parts";
        return 0;
    }
    seq_i = m->nparts - first == 2 ? first : first + 1;
    sp = zsock_part(m, seq_i, &ls);
    if (ls != 8) {
        *why = "replay reply with a seq that is not 8 bytes";
        return 0;
    }
    *seq = zsock_get_be64(sp);
    *payload = zsock_part(m, seq_i + 1, len);
    return *seq == UINT64_MAX ? 2 : 1;
}

static size_t
msg_bytes(const struct zsock_msg *m)
{
    size_t n = 0, l;

    for (int i = 0; i < m->kept; i++) {
        zsock_part(m, i, &l);
        n += l;
    }
    return n;
}

/* Reads and files away every message already queued, without waiting. */
static void
drain_stale(struct replay_client *rc)
{
    struct zsock_msg m;
    uint64_t seq;
    const uint8_t *payload;
    size_t len;
    const char *why;

    while (zsock_msg_recv(rc->sock, &m, ZMQ_DONTWAIT) == 0) {
        int k = classify(&m, &seq, &payload, &len, &why);

        if (k == 2) {
            rc->in_stream = 0;
        } else if (k == 1) {
            if (!rc->in_stream || seq <= rc->last_rx) {
                if (rc->rx_stream < rc->req_no)
                    rc->rx_stream++;
            }
            rc->in_stream = 1;
            rc->last_rx = seq;
        }
        zsock_msg_close(&m);
    }
    /* Every earlier request is over for this client's purposes. */
    rc->rx_stream = rc->req_no;
}

/* Ends the fetch with rc and the reason (printf-style) in rc->err. */
static int finish(struct fetch *f, int ret, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
finish(struct fetch *f, int ret, const char *fmt, ...)
{
    struct replay_client *rc = f->rc;

    rc->active = 0;
    rc->last_rc = ret;
    rc->err[0] = '\0';
    if (fmt != NULL) {
        va_list ap;
        int n = snprintf(rc->err, sizeof rc->err, "%s: ", rc->uri);

        va_start(ap, fmt);
        if (n >= 0 && (size_t)n < sizeof rc->err)
            vsnprintf(rc->err + n, sizeof rc->err - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return ret;
}

/* Ends the fetch after a failed zmq call, naming it. */
static int
zmq_failure(struct fetch *f, const char *what)
{
    if (errno == EINTR)
        return finish(f, REPLAY_INTR, NULL);
    return finish(f, REPLAY_ERROR, "%s: %s", what, zmq_strerror(errno));
}

/* Files one whole message away; returns the step it leads to. */
static enum step
on_message(struct fetch *f, const struct zsock_msg *m)
{
    uint64_t seq;
    const uint8_t *payload;
    size_t len;
    const char *why;
    int k = classify(m, &seq, &payload, &len, &why);

    f->seen_any = 1;
    f->rx_since_req = 1;
    f->last_ms = now_ms();
    if (k == 1)
        return on_batch(f, seq, payload, len);
    if (k == 2)
        return on_end(f);
    f->res->bad++;
    if (f->bad != NULL)
        f->bad(f->ctx, why, msg_bytes(m));
    return STEP_MORE;
}

/*
 * (Re-)requests from the first seq not yet held.  Returns REPLAY_MORE, or
 * the end of the fetch.
 */
static int
request_next(struct fetch *f)
{
    struct replay_client *rc = f->rc;

    f->sure = rc->clean;
    if (send_request(rc, f->res->next) == -1) {
        if (errno == EAGAIN)
            return finish(f, REPLAY_TIMEOUT, "cannot send the replay request");
        return zmq_failure(f, "send");
    }
    f->req_start = f->res->next;
    f->cur_first = 1;
    f->rx_since_req = 0;
    f->hole = 0;
    f->stream_n = 0;
    f->last_ms = now_ms();
    /* Barren re-requests are bounded by max_retries: each may take the
     * timeout. */
    f->progress_ms = f->last_ms;
    return REPLAY_MORE;
}

/*
 * The newest request needs another one (a hole, or a stream whose end
 * marker was lost).  Returns REPLAY_MORE, or the end of the fetch.
 */
static int
rerequest(struct fetch *f)
{
    struct replay_result *res = f->res;

    /*
     * A ROUTER at its high-water mark cuts every long stream short, so a
     * long replay takes one request per thousand batches or so: only
     * re-requests in a row that brought nothing count against the bound.
     */
    if (res->next != f->req_start)
        f->barren = 0;
    if (f->barren >= f->max_retries) {
        /*
         * Contiguous so far and only the end marker keeps getting lost:
         * what came is all the engine had.
         */
        if (!f->hole && !f->cur_first)
            return finish(f, REPLAY_OK, NULL);
        return finish(f, REPLAY_TIMEOUT,
                      "replay incomplete after %d re-requests (next seq "
                      "%llu)",
                      f->max_retries, (unsigned long long)res->next);
    }
    f->barren++;
    res->retries++;
    return request_next(f);
}

/* The wait, in ms from f->last_ms, after which silence means something. */
static long long
silence_ms(const struct fetch *f)
{
    /*
     * Until something answers the newest request, give the engine the full
     * timeout; once replies flow, silence means an end marker was lost (or
     * a stream boundary went unnoticed).
     */
    return f->rx_since_req ? f->quiet_ms : f->timeout_ms;
}

/* Applies the fetch's clocks at now.  Returns REPLAY_MORE or its end. */
static int
check_clocks(struct fetch *f, long long now)
{
    struct replay_client *rc = f->rc;

    if (f->deadline > 0 && now >= f->deadline)
        return finish(f, REPLAY_TIMEOUT,
                      "replay deadline passed (next seq %llu, %llu "
                      "malformed replies)",
                      (unsigned long long)f->res->next,
                      (unsigned long long)f->res->bad);
    if (!f->seen_any && now >= f->last_ms + f->timeout_ms) {
        if (f->timeout_ms % 1000 == 0)
            return finish(f, REPLAY_TIMEOUT, "no reply in %ds",
                          f->timeout_ms / 1000);
        return finish(f, REPLAY_TIMEOUT, "no reply in %dms", f->timeout_ms);
    }
    /*
     * Replies that bring nothing new (stale streams, malformed messages)
     * must not keep a fetch alive: the timeout also bounds the wait for
     * the next batch delivered.
     */
    if (now >= f->progress_ms + f->timeout_ms)
        return finish(f, REPLAY_TIMEOUT, "no new batch in %dms (next seq %llu)",
                      f->timeout_ms, (unsigned long long)f->res->next);
    if (now < f->last_ms + silence_ms(f))
        return REPLAY_MORE;
    f->drops = 1;
    /* Whatever was in flight is now older than the new request. */
    rc->in_stream = 0;
    rc->rx_stream = rc->req_no;
    return rerequest(f);
}

int
replay_step(struct replay_client *rc)
{
    struct fetch *f = &rc->f;

    if (!rc->active)
        return REPLAY_ERROR;
    for (int i = 0; i < REPLAY_STEP_BUDGET; i++) {
        struct zsock_msg m;
        enum step st;

        if (zsock_msg_recv(rc->sock, &m, ZMQ_DONTWAIT) == -1) {
            if (errno == EAGAIN)
                break;
            return zmq_failure(f, "receive");
        }
        st = on_message(f, &m);
        zsock_msg_close(&m);
        if (f->stopped)
            return finish(f, REPLAY_STOPPED, NULL);
        if (st == STEP_DONE)
            return finish(f, REPLAY_OK, NULL);
        if (st == STEP_REREQUEST && rerequest(f) != REPLAY_MORE)
            return rc->last_rc;
    }
    return check_clocks(f, now_ms());
}

long long
replay_due(const struct replay_client *rc)
{
    const struct fetch *f = &rc->f;
    long long due = f->last_ms + silence_ms(f);

    if (f->progress_ms + f->timeout_ms < due)
        due = f->progress_ms + f->timeout_ms;
    if (f->deadline > 0 && f->deadline < due)
        due = f->deadline;
    return due;
}

long long
replay_now_ms(void)
{
    return now_ms();
}

void *
replay_socket(const struct replay_client *rc)
{
    return rc->sock;
}

int
replay_start(struct replay_client *rc, const struct replay_request *req,
             replay_cb cb, replay_bad_cb bad, void *ctx)
{
    struct fetch *f = &rc->f;

    memset(f, 0, sizeof *f);
    memset(&rc->res, 0, sizeof rc->res);
    rc->req = *req;
    rc->res.next = req->from;
    rc->last_rc = REPLAY_MORE;
    rc->err[0] = '\0';
    rc->active = 1;
    f->rc = rc;
    f->req = &rc->req;
    f->res = &rc->res;
    f->cb = cb;
    f->bad = bad;
    f->ctx = ctx;
    f->max_retries =
        req->max_retries > 0 ? req->max_retries : REPLAY_DEFAULT_RETRIES;
    f->timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : 1;
    f->quiet_ms = f->timeout_ms / 10;
    if (f->quiet_ms < REPLAY_QUIET_MIN_MS)
        f->quiet_ms = REPLAY_QUIET_MIN_MS;
    if (f->quiet_ms > REPLAY_QUIET_MAX_MS)
        f->quiet_ms = REPLAY_QUIET_MAX_MS;
    if (f->quiet_ms > f->timeout_ms)
        f->quiet_ms = f->timeout_ms;
    f->progress_ms = now_ms();
    if (req->deadline_ms > 0)
        f->deadline = f->progress_ms + (long long)req->deadline_ms;
    if (req->from > req->to)
        return finish(f, REPLAY_OK, NULL);
    drain_stale(rc);
    return request_next(f);
}

int
replay_result(const struct replay_client *rc, struct replay_result *res)
{
    if (res != NULL)
        *res = rc->res;
    return rc->last_rc;
}

const char *
replay_error(const struct replay_client *rc)
{
    return rc->err;
}

int
replay_fetch(struct replay_client *rc, const struct replay_request *req,
             replay_cb cb, replay_bad_cb bad, void *ctx,
             struct replay_result *res, char *err, size_t errlen)
{
    int ret = replay_start(rc, req, cb, bad, ctx);

    while (ret == REPLAY_MORE) {
        zmq_pollitem_t item = {rc->sock, 0, ZMQ_POLLIN, 0};
        long long left = replay_due(rc) - now_ms();

        if (zmq_poll(&item, 1, (long)(left < 0 ? 0 : left)) == -1) {
            ret = zmq_failure(&rc->f, "poll");
            break;
        }
        ret = replay_step(rc);
    }
    *res = rc->res;
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s", rc->err);
    return ret;
}

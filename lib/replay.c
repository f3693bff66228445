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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#define REPLAY_RCVHWM 1000000
#define REPLAY_DEFAULT_RETRIES 8
/* libzmq's default SNDHWM, which the engines' ROUTER keeps. */
#define REPLAY_ROUTER_HWM 1000
/* Silence after which a started stream is taken as ended (marker lost). */
#define REPLAY_QUIET_MIN_MS 200
#define REPLAY_QUIET_MAX_MS 1000

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

/* Sends ["", start] (8-byte big-endian).  Returns 0, or -1 with errno. */
static int
send_request(struct replay_client *rc, uint64_t start, int timeout_ms)
{
    uint8_t s8[8];

    zsock_put_be64(s8, start);
    if (zmq_setsockopt(rc->sock, ZMQ_SNDTIMEO, &timeout_ms,
                       sizeof timeout_ms) == -1)
        return -1;
    if (zmq_send(rc->sock, "", 0, ZMQ_SNDMORE) == -1)
        return -1;
    if (zmq_send(rc->sock, s8, sizeof s8, 0) == -1)
        return -1;
    rc->req_no++;
    rc->clean = 0;
    return 0;
}

/* The state of one fetch. */
struct fetch {
    struct replay_client *rc;
    const struct replay_request *req;
    struct replay_result *res;
    uint64_t req_start; /* seq asked for by the newest request */
    int cur_first;      /* no message of the newest request's stream yet */
    int rx_since_req;   /* a message arrived since the newest request */
    int sure;           /* nothing was in flight when it was sent */
    int has_suspect;    /* a stream started above next without proof */
    uint64_t suspect;   /* ... the next seq it skipped */
    int hole;           /* the current stream skipped the next seq */
    int drops;          /* this fetch saw evidence of dropped replies */
    uint64_t stream_n;  /* batches in the newest request's stream */
    long long last_ms;  /* last message received or request sent */
    int seen_any;       /* any message at all during this fetch */
};

enum step { STEP_MORE, STEP_DONE, STEP_REREQUEST };

/*
 * Handles one batch message of seq s.  Returns STEP_MORE, or STEP_DONE
 * when everything up to `to` is held.
 */
static enum step
on_batch(struct fetch *f, uint64_t s, const uint8_t *payload, size_t len,
         replay_cb cb, void *ctx, int *stopped)
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
        if (cb(ctx, s, payload, len) != 0)
            *stopped = 1;
        res->delivered++;
        res->next = s + 1;
        if (*stopped)
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

/* What one wait for replies needs besides the fetch state. */
struct wait_ctx {
    replay_cb cb;
    replay_bad_cb bad;
    void *ctx;
    int timeout_ms; /* wait for the first reply to a request */
    int quiet_ms;   /* silence that ends a stream once replies flow */
    int stopped;    /* cb asked to stop */
    char *err;
    size_t errlen;
};

/* Maps a failed zmq call to an enum replay_rc, naming it in err. */
static int
zmq_failure(struct fetch *f, struct wait_ctx *w, const char *what)
{
    if (errno == EINTR)
        return REPLAY_INTR;
    snprintf(w->err, w->errlen, "%s: %s: %s", f->rc->uri, what,
             zmq_strerror(errno));
    return REPLAY_ERROR;
}

/* Files one whole message away; returns the step it leads to. */
static enum step
on_message(struct fetch *f, struct wait_ctx *w, const struct zsock_msg *m)
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
        return on_batch(f, seq, payload, len, w->cb, w->ctx, &w->stopped);
    if (k == 2)
        return on_end(f);
    f->res->bad++;
    if (w->bad != NULL)
        w->bad(w->ctx, why, msg_bytes(m));
    return STEP_MORE;
}

/*
 * Reads replies to the newest request until it is answered (STEP_DONE),
 * needs another request (STEP_REREQUEST), or fails: then *rc_out is set
 * and -1 returned.
 */
static int
await_replies(struct fetch *f, struct wait_ctx *w, enum step *st, int *rc_out)
{
    struct replay_client *rc = f->rc;

    *st = STEP_MORE;
    while (*st == STEP_MORE) {
        zmq_pollitem_t item = {rc->sock, 0, ZMQ_POLLIN, 0};
        struct zsock_msg m;
        /*
         * Until something answers the newest request, give the engine the
         * full timeout; once replies flow, silence means an end marker was
         * lost (or a stream boundary went unnoticed).
         */
        long long wait = f->rx_since_req ? w->quiet_ms : w->timeout_ms;
        long long left = f->last_ms + wait - now_ms();
        int n = zmq_poll(&item, 1, (long)(left < 0 ? 0 : left));

        if (n == -1) {
            *rc_out = zmq_failure(f, w, "poll");
            return -1;
        }
        if (n == 0) {
            if (now_ms() < f->last_ms + wait)
                continue;
            if (!f->seen_any) {
                if (w->timeout_ms % 1000 == 0)
                    snprintf(w->err, w->errlen, "%s: no reply in %ds", rc->uri,
                             w->timeout_ms / 1000);
                else
                    snprintf(w->err, w->errlen, "%s: no reply in %dms", rc->uri,
                             w->timeout_ms);
                *rc_out = REPLAY_TIMEOUT;
                return -1;
            }
            *st = STEP_REREQUEST;
            f->drops = 1;
            /* Whatever was in flight is now older than the new request. */
            rc->in_stream = 0;
            rc->rx_stream = rc->req_no;
            break;
        }
        if (zsock_msg_recv(rc->sock, &m, ZMQ_DONTWAIT) == -1) {
            if (errno == EAGAIN)
                continue;
            *rc_out = zmq_failure(f, w, "receive");
            return -1;
        }
        *st = on_message(f, w, &m);
        zsock_msg_close(&m);
    }
    return 0;
}

/* (Re-)requests from the first seq not yet held; 0, or -1 with *rc_out. */
static int
request_next(struct fetch *f, struct wait_ctx *w, int *rc_out)
{
    struct replay_client *rc = f->rc;

    f->sure = rc->clean;
    if (send_request(rc, f->res->next, w->timeout_ms) == -1) {
        if (errno == EAGAIN) {
            snprintf(w->err, w->errlen, "%s: cannot send the replay request",
                     rc->uri);
            *rc_out = REPLAY_TIMEOUT;
        } else {
            *rc_out = zmq_failure(f, w, "send");
        }
        return -1;
    }
    f->req_start = f->res->next;
    f->cur_first = 1;
    f->rx_since_req = 0;
    f->hole = 0;
    f->stream_n = 0;
    f->last_ms = now_ms();
    return 0;
}

int
replay_fetch(struct replay_client *rc, const struct replay_request *req,
             replay_cb cb, replay_bad_cb bad, void *ctx,
             struct replay_result *res, char *err, size_t errlen)
{
    struct fetch f;
    struct wait_ctx w = {cb, bad, ctx, 0, 0, 0, err, errlen};
    int max_retries =
        req->max_retries > 0 ? req->max_retries : REPLAY_DEFAULT_RETRIES;
    int rc_out = REPLAY_OK;

    memset(res, 0, sizeof *res);
    res->next = req->from;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (req->from > req->to)
        return REPLAY_OK;
    w.timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : 1;
    w.quiet_ms = w.timeout_ms / 10;
    if (w.quiet_ms < REPLAY_QUIET_MIN_MS)
        w.quiet_ms = REPLAY_QUIET_MIN_MS;
    if (w.quiet_ms > REPLAY_QUIET_MAX_MS)
        w.quiet_ms = REPLAY_QUIET_MAX_MS;
    if (w.quiet_ms > w.timeout_ms)
        w.quiet_ms = w.timeout_ms;

    memset(&f, 0, sizeof f);
    f.rc = rc;
    f.req = req;
    f.res = res;
    drain_stale(rc);

    for (;;) {
        enum step st;

        if (request_next(&f, &w, &rc_out) == -1 ||
            await_replies(&f, &w, &st, &rc_out) == -1)
            goto out;
        if (w.stopped) {
            rc_out = REPLAY_STOPPED;
            goto out;
        }
        if (st == STEP_DONE)
            goto out;
        /* STEP_REREQUEST: a hole, or a stream whose end marker was lost. */
        if (res->retries >= (uint64_t)max_retries) {
            if (!f.hole && !f.cur_first) {
                /*
                 * Contiguous so far and only the end marker keeps getting
                 * lost: what came is all the engine had.
                 */
                goto out;
            }
            snprintf(err, errlen,
                     "%s: replay incomplete after %d re-requests "
                     "(next seq %llu)",
                     rc->uri, max_retries, (unsigned long long)res->next);
            rc_out = REPLAY_TIMEOUT;
            goto out;
        }
        res->retries++;
    }
out:
    return rc_out;
}

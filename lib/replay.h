/*
 * replay.h - the client side of the engines' replay protocol (DEALER).
 *
 * Used by kvsub to fill sequence gaps and by kvreplay
 * (docs/protocol.md#replay).  It sends
 * ["", start_seq], reads replies in the layouts ["", seq, payload] and
 * ["", topic, seq, payload], and both without the empty delimiter, and
 * stops at the end marker (seq 2^64-1, whatever its payload: ATOM-style
 * ROUTERs send msgpack([oldest, latest]) there).  Because the
 * engine's ROUTER drops messages to a DEALER whose pipe is full (high-water
 * mark 1000, end marker included), the client reads as fast as it can,
 * checks that seqs are contiguous, re-requests from the first missing seq
 * (bounded retries) and never waits for an end marker once it holds what it
 * asked for.
 */
#ifndef KVTAP_REPLAY_H
#define KVTAP_REPLAY_H

#include <stddef.h>
#include <stdint.h>

struct replay_client;

/*
 * Connects a DEALER to uri (receive high-water mark raised).  Returns the
 * client, or NULL with the reason in err.  zctx is borrowed.
 */
struct replay_client *replay_open(void *zctx, const char *uri, char *err,
                                  size_t errlen);

/*
 * Caps the size of a reply (ZMQ_MAXMSGSIZE; bytes <= 0: no cap) and
 * reconnects so that the cap applies.  libzmq closes a connection that
 * carries a bigger message and does not reconnect it by itself: the fetch
 * then times out, and replay_reconnect() makes the next one possible.
 * Returns 0, or -1 with the reason in err.
 */
int replay_set_max_msg(struct replay_client *rc, int64_t bytes, char *err,
                       size_t errlen);

/*
 * Drops the connection and everything in flight on it, and connects
 * again (after a failed fetch).  Returns 0, or -1 with the reason in err.
 */
int replay_reconnect(struct replay_client *rc, char *err, size_t errlen);

/* Closes the socket.  Accepts NULL. */
void replay_close(struct replay_client *rc);

/*
 * Called once per batch, in ascending seq order, each seq at most once.
 * payload is borrowed for the duration of the call.  A non-zero return stops
 * the fetch (replay_fetch then returns REPLAY_STOPPED).
 */
typedef int (*replay_cb)(void *ctx, uint64_t seq, const uint8_t *payload,
                         size_t len);

/*
 * Called for a reply that is not a valid replay message (wrong part count,
 * seq not 8 bytes); the fetch goes on.  May be NULL.
 */
typedef void (*replay_bad_cb)(void *ctx, const char *why, size_t bytes);

struct replay_request {
    uint64_t from;   /* first seq wanted */
    uint64_t to;     /* last seq wanted; UINT64_MAX = up to the end marker */
    int timeout_ms;  /* longest wait for the next reply */
    int max_retries; /* re-requests in a row that bring no new batch;
                        0 = a default (8) */
    /*
     * The whole fetch ends (REPLAY_TIMEOUT) this long after it started,
     * however the engine answers; 0 = no overall deadline.  Without one, a
     * fetch still ends after timeout_ms without a new batch: replies that
     * bring nothing new (stale streams, malformed messages) do not count.
     */
    uint64_t deadline_ms;
};

struct replay_result {
    uint64_t delivered; /* batches passed to cb */
    uint64_t next;      /* first seq not delivered (from if none) */
    int got_end;        /* the end marker was seen */
    /*
     * Seqs the engine no longer has: its first reply was newer than the seq
     * asked for.  lost_from..lost_to inclusive; valid when has_lost.
     */
    int has_lost;
    uint64_t lost_from, lost_to;
    uint64_t retries; /* re-requests made */
    uint64_t bad;     /* malformed replies */
};

enum replay_rc {
    REPLAY_OK = 0,       /* everything asked for (that the engine had) came */
    REPLAY_TIMEOUT = -1, /* no reply within timeout_ms (nothing at all, or
                            max_retries barren re-requests in a row); err
                            names the endpoint */
    REPLAY_ERROR = -2,   /* socket error; err says which */
    REPLAY_STOPPED = -3, /* cb asked to stop */
    REPLAY_INTR = -4,    /* interrupted by a signal */
    REPLAY_MORE = 1      /* replay_start/replay_step: still under way */
};

/*
 * Fetches [req->from, req->to] and passes each batch to cb.  Batches below
 * from or above to are discarded.  Returns an enum replay_rc and fills *res
 * in every case.
 */
int replay_fetch(struct replay_client *rc, const struct replay_request *req,
                 replay_cb cb, replay_bad_cb bad, void *ctx,
                 struct replay_result *res, char *err, size_t errlen);

/*
 * The same fetch without blocking, for a caller that polls many sockets
 * (kvsub fills one gap per source at a time this way).  replay_start sends
 * the first request; then call replay_step whenever replay_socket() is
 * readable or replay_due() has come, until it returns something other
 * than REPLAY_MORE (an enum replay_rc; REPLAY_INTR is never returned).
 * Each step reads a bounded number of replies, so one engine cannot keep
 * the caller busy.  cb, bad and ctx are kept until the fetch ends;
 * replay_result and replay_error tell how the last fetch went (err names
 * the endpoint; empty when there is nothing to say).  One fetch at a time
 * per client.
 */
int replay_start(struct replay_client *rc, const struct replay_request *req,
                 replay_cb cb, replay_bad_cb bad, void *ctx);
int replay_step(struct replay_client *rc);

/* When (replay_now_ms clock) replay_step is due even without a reply. */
long long replay_due(const struct replay_client *rc);

/* The monotonic clock of replay_due, in ms. */
long long replay_now_ms(void);

/* The DEALER, to poll for ZMQ_POLLIN; borrowed. */
void *replay_socket(const struct replay_client *rc);

/* Fills *res (may be NULL) and returns the last fetch's enum replay_rc. */
int replay_result(const struct replay_client *rc, struct replay_result *res);

/* Why the last fetch ended (empty when complete); borrowed. */
const char *replay_error(const struct replay_client *rc);

#endif

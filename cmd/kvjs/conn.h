/*
 * conn.h - kvjs's connection to NATS JetStream: connecting with retries,
 * the stream kvtap writes to, and the subject and message-id naming
 * (docs/cluster.md#subjects-and-headers).  The only kvtap module besides
 * pub and sub that includes nats.h.
 */
#ifndef KVJS_CONN_H
#define KVJS_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <nats/nats.h>

/* Everything the subcommands take from the command line. */
struct js_opts {
    const char *servers; /* comma-separated URLs */
    const char *stream;
    const char *prefix;    /* subject prefix, default "kvtap.ev" */
    int connect_retries;   /* attempts before giving up */
    uint64_t connect_wait; /* ms between attempts */
    int create;            /* create the stream when missing */
    uint64_t max_age_ms;   /* 0: unlimited */
    int64_t max_bytes;     /* -1: unlimited */
    int replicas;
    uint64_t dup_window_ms; /* the stream's Nats-Msg-Id window */
    int64_t max_pending;    /* pub: batches in flight */
    uint64_t ack_timeout;   /* pub: ms a batch may stay unacknowledged */
    uint64_t linger_ms;     /* pub: wait for the rest of a batch */
    const char *durable;    /* sub */
    const char *from;       /* sub: first|last|new|SEQ|TIME */
    const char *until;      /* sub: TIME */
    const char *pod;        /* sub: only this pod */
    int follow;
    uint64_t ack_wait_ms; /* sub: the consumer's redelivery delay */
    int fetch_batch;
    int stats;
    const char *bucket; /* snap: the key-value bucket */
    int has_js_seq;     /* snap put: --js-seq given */
    uint64_t js_seq;
};

/* A connected client.  conn_close accepts a zeroed or half-open one. */
struct js_conn {
    natsConnection *nc;
    jsCtx *js;
    natsOptions *nopts;
};

/*
 * Connects to o->servers, trying o->connect_retries times o->connect_wait
 * apart and logging each failed attempt, and creates the JetStream
 * context.  With pub_opts (may be NULL) the context's asynchronous-publish
 * options are taken from it.  Returns 0, or -1 with the reason in err.
 */
int conn_open(struct js_conn *c, const struct js_opts *o,
              const jsOptions *pub_opts, char *err, size_t errlen);

/*
 * Drains c's connection: what is on its way in is handled (asynchronous
 * acknowledgments included), and the connection is closed.  libnats gives
 * the drain a second; this waits two at most for the close.  For a caller
 * that may still receive messages it did not ask for when it ends;
 * conn_close then frees the connection.  Costs about 100 ms.  A connection
 * that is not connected is left to conn_close.
 */
void conn_drain(struct js_conn *c);

/* Closes and frees c.  Accepts a zeroed or half-open one. */
void conn_close(struct js_conn *c);

/*
 * Whether the server refused an operation of this process for lack of
 * permission (its connection is closed then, so that no call waits for an
 * answer that will never come).  Returns 1 with "permission denied by the
 * server: ..." in err, else 0 with err untouched.
 */
int conn_denied(char *err, size_t errlen);

/*
 * Makes sure the stream exists: looks it up, and when it is missing
 * creates it (file storage, the retention in o) unless o->create is 0.
 * Returns 0, or -1 with the reason in err.
 */
int conn_stream_ensure(struct js_conn *c, const struct js_opts *o, char *err,
                       size_t errlen);

/*
 * Looks the stream up.  Returns 0 with *info set (caller frees with
 * jsStreamInfo_Destroy), or -1 with the reason in err ("stream X not
 * found" when it does not exist).
 */
int conn_stream_info(struct js_conn *c, const char *stream, jsStreamInfo **info,
                     char *err, size_t errlen);

/*
 * Writes the subject token for a pod into out (NUL-terminated): bytes
 * [A-Za-z0-9_-] as they are, every other byte as %XX, an empty pod as
 * "%".  The token then contains no '.', '*', '>' or white space.  Returns
 * 0, or -1 when out is too small.
 */
int conn_pod_token(const char *pod, size_t n, char *out, size_t outlen);

/*
 * "text of status: last error detail" into err, for a failed NATS call;
 * the server's denial instead when there was one (conn_denied).
 */
void conn_strerror(natsStatus s, const char *what, char *err, size_t errlen);

#endif

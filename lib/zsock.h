/*
 * zsock.h - endpoint specs, socket set-up and whole-message receive.
 *
 * An endpoint spec is "[NAME=]PUB_URI[,REPLAY_URI[,SNAPSHOT_URI]]"
 * (docs/cli.md#endpoints).
 * Messages are always received whole (every part, following ZMQ_RCVMORE), so a
 * malformed message can never desynchronise the ones after it.
 */
#ifndef KVTAP_ZSOCK_H
#define KVTAP_ZSOCK_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

/* One source.  Strings are heap copies owned by the spec. */
struct zsock_spec {
    char *name;     /* pod name: NAME= or, when absent, the PUB URI */
    char *pub;      /* PUB (or, for kvreplay, the ROUTER) URI */
    char *replay;   /* replay ROUTER URI, or NULL */
    char *snapshot; /* vLLM's snapshot ROUTER URI, or NULL */
};

/*
 * Parses one spec.  Only tcp://, ipc:// and inproc:// URIs are accepted.
 * Returns 0, or -1 with the reason in err.  Free with zsock_spec_free().
 */
int zsock_spec_parse(const char *s, struct zsock_spec *out, char *err,
                     size_t errlen);

/*
 * Applies the engine's data-parallel port rule for rank r to uri (tcp: port
 * after the last colon + r; inproc: "_dp<r>" appended; rank 0 unchanged;
 * anything else with r > 0 is an error).  Writes the result to out.
 */
int zsock_offset_uri(const char *uri, int rank, char *out, size_t outlen,
                     char *err, size_t errlen);

/*
 * Expands in into dp_size specs (rank r: every URI offset by r, name
 * "NAME/r").  out must have room for dp_size specs; the caller frees each.
 */
int zsock_spec_expand(const struct zsock_spec *in, int dp_size,
                      struct zsock_spec *out, char *err, size_t errlen);

/* Frees the strings of a spec.  Accepts NULL. */
void zsock_spec_free(struct zsock_spec *s);

#define ZSOCK_MAX_PARTS 4

/*
 * A received multipart message: up to ZSOCK_MAX_PARTS parts are kept; nparts
 * counts every part, including any beyond the ones kept.
 */
struct zsock_msg {
    zmq_msg_t part[ZSOCK_MAX_PARTS];
    int kept;
    int nparts;
};

/*
 * Receives one whole message (flags as zmq_msg_recv, e.g. ZMQ_DONTWAIT).
 * Returns 0, or -1 with errno (EAGAIN, EINTR, ...).  On success the caller
 * must zsock_msg_close(); on failure nothing needs closing.
 */
int zsock_msg_recv(void *sock, struct zsock_msg *m, int flags);
void zsock_msg_close(struct zsock_msg *m);

/*
 * Moves every kept part of src into dst (which must not hold a message):
 * afterwards dst owns them and src holds nothing (closing it is a no-op).
 */
void zsock_msg_move(struct zsock_msg *dst, struct zsock_msg *src);

/* Data and size of kept part i. */
const uint8_t *zsock_part(const struct zsock_msg *m, int i, size_t *len);

/* Bytes of the per-process stream id of vLLM's snapshot mode. */
#define ZSOCK_STREAM_ID_LEN 16

/*
 * Validates a live message: exactly 3 parts, a seq frame of 8 bytes (a
 * big-endian seq that is not the replay end marker) or, in vLLM's snapshot
 * mode, 24 bytes (that seq, then the publisher's 16-byte stream id;
 * docs/ndjson.md#the-envelope).  On success *seq, the payload and *stream
 * (borrowed from m; NULL for an 8-byte frame) are set.  Returns 0, or -1
 * with the reason in err.
 */
int zsock_live_parse(const struct zsock_msg *m, uint64_t *seq,
                     const uint8_t **stream, const uint8_t **payload,
                     size_t *len, char *err, size_t errlen);

/* Big-endian 8-byte helpers. */
uint64_t zsock_get_be64(const uint8_t *p);
void zsock_put_be64(uint8_t *p, uint64_t v);

/*
 * Sets the options every kvtap socket gets: ZMQ_LINGER 0 (exit never hangs).
 * Returns 0 or -1 with errno.
 */
int zsock_set_common(void *sock);

#endif

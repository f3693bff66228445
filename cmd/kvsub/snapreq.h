/*
 * snapreq.h - one request to the snapshot ROUTER of vLLM's snapshot mode.
 *
 * Any request is answered with [seq (i64 big-endian; -1: nothing published
 * yet, -2: no snapshot to give), stream id (16 bytes), chunk, chunk, ...];
 * each chunk is an encoded event batch of up to 256 events, the stores
 * first, then BlockRemoved corrections (docs/ndjson.md#the-envelope).
 */
#ifndef KVSUB_SNAPREQ_H
#define KVSUB_SNAPREQ_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "zsock.h"

struct snapreq_reply {
    int64_t seq;
    uint8_t stream[ZSOCK_STREAM_ID_LEN];
    zmq_msg_t *chunk; /* n messages, owned; snapreq_free releases them */
    size_t n;
};

/*
 * Sends one request through a new DEALER to uri (so a late reply to an
 * earlier request can never be taken for this one) and waits up to
 * timeout_ms for the reply.  Returns 0 with *r filled (free it with
 * snapreq_free), or -1 with the reason in err.  zctx is borrowed.
 */
int snapreq_fetch(void *zctx, const char *uri, long timeout_ms,
                  struct snapreq_reply *r, char *err, size_t errlen);

/* Releases the chunks.  Accepts a zeroed reply. */
void snapreq_free(struct snapreq_reply *r);

#endif

/*
 * snapsrv.h - kvpub --snapshot: the snapshot ROUTER of vLLM's snapshot mode
 * (docs/protocol.md#snapshots), served from what kvpub published.
 *
 * vLLM folds its events into a compacted state; kvpub keeps the encoded
 * batches it published instead and answers with them, one chunk per batch
 * in publishing order: applied in order to an empty pod they give the same
 * state.  Past a budget (SNAPSRV_MAX_BATCHES, SNAPSRV_MAX_BYTES) it can no
 * longer give a whole snapshot and answers seq -2, as vLLM does when its
 * budget is exceeded.
 */
#ifndef KVPUB_SNAPSRV_H
#define KVPUB_SNAPSRV_H

#include <stddef.h>
#include <stdint.h>

#include "ring.h"
#include "zsock.h"

#define SNAPSRV_MAX_BATCHES 1000000
#define SNAPSRV_MAX_BYTES (256u << 20)

struct snapsrv {
    void *router; /* owned */
    uint8_t stream[ZSOCK_STREAM_ID_LEN];
    struct ring hist; /* every batch published, encoded */
    size_t bytes;
    int failed;   /* over budget: no whole snapshot any more */
    int64_t last; /* the last seq recorded; -1: none yet */
};

/*
 * Binds a ROUTER to uri and draws the stream id.  zctx is borrowed.
 * Returns 0, or -1 with the reason in err.
 */
int snapsrv_open(struct snapsrv *s, void *zctx, const char *uri, char *err,
                 size_t errlen);

/* Records a published batch (copied).  Over budget, the server fails. */
void snapsrv_record(struct snapsrv *s, uint64_t seq, const void *payload,
                    size_t len);

/*
 * Answers every queued request without blocking: the request's envelope
 * (up to its empty delimiter), seq (i64 big-endian), the stream id, then
 * the chunks.
 */
void snapsrv_serve(struct snapsrv *s);

/* Closes the socket and frees the history.  Accepts a zeroed server. */
void snapsrv_close(struct snapsrv *s);

#endif

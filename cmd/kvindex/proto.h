/*
 * proto.h - the kvindex socket protocol (docs/kvindex.md): one JSON request
 * line in, one JSON reply line out, against an index the caller owns.
 */
#ifndef KVINDEX_PROTO_H
#define KVINDEX_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "event.h"
#include "index.h"

enum proto_op {
    PROTO_PING,
    PROTO_MATCH,
    PROTO_KEYS,
    PROTO_LOOKUP,
    PROTO_PODS,
    PROTO_STATS,
    PROTO_DUMP,
    PROTO_CLEAR,
    PROTO_OP_COUNT
};

/* "ping", "match", ...  Static storage. */
const char *proto_op_name(enum proto_op op);

/*
 * What the server adds to answers: its own counters for "stats".  The
 * callback appends members (",\"name\":value" ...) to the data object.
 */
typedef void (*proto_stats_fn)(void *ctx, struct buf *out);

struct proto {
    struct kv_index *ix;         /* borrowed */
    const struct index_opts *io; /* borrowed: the scheme, for dump */
    proto_stats_fn stats_fn;
    void *stats_ctx;
    struct arena arena; /* per request */
    struct index_match_result mr;
    uint32_t *tokens;
    size_t tokens_cap;
    uint64_t *u64s;
    size_t u64s_cap;
    struct index_pod_ref *pods;
    size_t pods_cap;
    uint64_t served[PROTO_OP_COUNT]; /* requests answered ok, per op */
    uint64_t errors;                 /* requests answered ok:false */
};

/* Sets up p for index ix built with io (both borrowed).  Cannot fail. */
void proto_init(struct proto *p, struct kv_index *ix,
                const struct index_opts *io, proto_stats_fn fn, void *ctx);

/* Frees what p allocated.  Accepts NULL. */
void proto_free(struct proto *p);

/*
 * Answers one request line (without its '\n'): appends exactly one reply
 * line, '\n' included, to out.  Check out->oom afterwards.
 */
void proto_handle(struct proto *p, const char *line, size_t len,
                  struct buf *out);

/* Appends an error reply without an id (for lines that were never read,
 * such as over-long ones) and counts it. */
void proto_reply_error(struct proto *p, struct buf *out, const char *msg);

#endif

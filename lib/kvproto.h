/*
 * kvproto.h - kvindex's socket protocol (kvindex(1), PROTOCOL): one JSON
 * request line in, one JSON reply line out, against an index the caller
 * owns.  Parsing and replying only: the caller does the I/O.
 */
#ifndef KVTAP_KVPROTO_H
#define KVTAP_KVPROTO_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "event.h"
#include "index.h"

enum kvproto_op {
    KVPROTO_PING,
    KVPROTO_MATCH,
    KVPROTO_KEYS,
    KVPROTO_LOOKUP,
    KVPROTO_PODS,
    KVPROTO_STATS,
    KVPROTO_DUMP,
    KVPROTO_CLEAR,
    KVPROTO_OP_COUNT
};

/* The most prompts one batched match ("prompts") may carry. */
#define KVPROTO_MAX_PROMPTS 1024

/* "ping", "match", ...  Static storage. */
const char *kvproto_op_name(enum kvproto_op op);

/*
 * What the server adds to answers: its own counters for "stats".  The
 * callback appends members (",\"name\":value" ...) to the data object.
 */
typedef void (*kvproto_stats_fn)(void *ctx, struct buf *out);

/*
 * A server that streams dumps sets this: a dump request then gets only its
 * reply's head in out, and dump_fn (called with the caller's dump_ctx and
 * the pod filter, NULL for all; both borrowed for the call) takes on the
 * rest, writing kvproto_dump_body later.  Returns 0, or -1 with the reason
 * in err to answer an error instead.
 */
typedef int (*kvproto_dump_fn)(void *ctx, const struct index_pod_ref *ref,
                               char *err, size_t errlen);

struct kvproto {
    struct kv_index *ix;         /* borrowed */
    const struct index_opts *io; /* borrowed: the scheme, for dump */
    kvproto_stats_fn stats_fn;
    void *stats_ctx;
    struct arena arena; /* per request */
    struct index_match_result mr;
    struct buf media; /* a match's media list, kept across requests */
    /*
     * A match element's first members, {"pod":...,"dp_rank":..., per pod,
     * made when the pod first matches and kept: an index keeps its pods,
     * their names and ranks, for its life.  The head of pod id is
     * head_len[id] bytes at head_at[id] in heads (0 bytes: not made yet),
     * for ids below heads_cap.
     */
    struct buf heads;
    uint32_t *head_at, *head_len;
    uint32_t heads_cap;
    struct buf tail; /* a match element's members after dp_rank */
    uint32_t *tokens;
    size_t tokens_cap;
    size_t *prompt_ends; /* a batched match: where each prompt's tokens end */
    size_t prompt_ends_cap;
    uint64_t *u64s;
    size_t u64s_cap;
    struct index_pod_ref *pods;
    size_t pods_cap;
    uint64_t served[KVPROTO_OP_COUNT]; /* requests answered ok, per op */
    uint64_t errors;                   /* requests answered ok:false */
    double now; /* set by the caller before kvproto_handle: the clock of
                   index_set_clock, for the pods' last_event_age_s */
    /* Also set by the caller before each kvproto_handle: */
    int may_change;          /* the client may run ops that change state */
    kvproto_dump_fn dump_fn; /* NULL: dumps are answered whole in out */
    void *dump_ctx;
    /* Set by kvproto_handle: what the request was (-1: unparsed) and
     * whether it was answered ok, for the caller's audit log. */
    int last_op;
    int last_ok;
};

/* Sets up p for index ix built with io (both borrowed).  Cannot fail. */
void kvproto_init(struct kvproto *p, struct kv_index *ix,
                  const struct index_opts *io, kvproto_stats_fn fn, void *ctx);

/* Frees what p allocated.  Accepts NULL. */
void kvproto_free(struct kvproto *p);

/*
 * Answers one request line (without its '\n'): appends exactly one reply
 * line, '\n' included, to out.  Check out->oom afterwards.  Returns 0, or 1
 * when dump_fn took on the rest of a dump's reply (out holds its head).
 */
int kvproto_handle(struct kvproto *p, const char *line, size_t len,
                   struct buf *out);

/*
 * The rest of a dump reply whose head kvproto_handle wrote: the snapshot
 * lines of the pods matching ref (all when NULL) and the reply's end, into
 * b, which flush empties whenever it holds a good chunk (see snapshot_dump;
 * flush is called a last time at the end).  Returns 0, or -1 when flush
 * failed or b ran out of memory.
 */
int kvproto_dump_body(const struct kvproto *p, const struct index_pod_ref *ref,
                      struct buf *b, int (*flush)(void *ctx, struct buf *b),
                      void *ctx);

/* Appends an error reply without an id (for lines that were never read,
 * such as over-long ones) and counts it. */
void kvproto_reply_error(struct kvproto *p, struct buf *out, const char *msg);

#endif

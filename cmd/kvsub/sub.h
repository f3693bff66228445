/*
 * sub.h - kvsub's sources and output, shared by run.c (the receive loop
 * and the output) and fill.c (replay fills in the poll loop).  Private to
 * cmd/kvsub.
 */
#ifndef KVSUB_SUB_H
#define KVSUB_SUB_H

#include <stdint.h>

#include "buf.h"
#include "cli.h"
#include "curve.h"
#include "event.h"
#include "monitor.h"
#include "ndjson_write.h"
#include "replay.h"
#include "run.h"
#include "seqtrack.h"
#include "wire.h"
#include "zsock.h"

struct src_stats {
    uint64_t received;      /* live messages */
    uint64_t batches;       /* batches written, live or replayed */
    uint64_t events;        /* engine events written */
    uint64_t gaps;          /* gap records */
    uint64_t lost;          /* seqs in gap records */
    uint64_t replayed;      /* batches written from replay */
    uint64_t restarts;      /* restart records */
    uint64_t duplicates;    /* live batches dropped as already delivered */
    uint64_t decode_errors; /* decode_error records */
    uint64_t snapshots;     /* snapshots printed */
};

/* What a source's replay fill is for. */
enum fill_kind {
    FILL_NONE,    /* no fill under way */
    FILL_CATCHUP, /* -o: from the offset to the end of the buffer */
    FILL_GAP,     /* seqs missing before a live batch */
    FILL_VERIFY   /* after a reconnect: is it still the same process? */
};

/* A fill under way: the context of the replay callbacks. */
struct fill {
    struct kvsub *k;
    struct source *s;
    enum fill_kind kind;
    uint64_t from, to;   /* the seqs asked for */
    uint64_t expect;     /* next seq the fill should deliver */
    int has_env;         /* env holds the envelope of the live batch */
    struct kv_batch env; /* ... that revealed the gap (no events) */
    int resnap; /* stop at a hole: a snapshot replaces the gap record */
    int lost;   /* ... and there was one */
    int same;   /* FILL_VERIFY: 1 the same bytes came, -1 other bytes */
};

struct source {
    const struct zsock_spec *spec;
    void *sub;
    struct replay_client *rc;
    struct seqtrack st;
    struct ndjson_source nsrc;
    struct src_stats stats;
    struct kvmon mon;      /* the SUB socket's connection state */
    long long last_rx;     /* when a live message last arrived */
    int silent;            /* warned: nothing for --warn-idle */
    int joined;            /* the "joined at seq" note was printed */
    int has_stream;        /* stream_hex holds the live stream id */
    int from_snapshot;     /* the output started with a snapshot */
    uint64_t snapshot_seq; /* ... taken at this seq */
    char stream_hex[2 * ZSOCK_STREAM_ID_LEN + 1];
    uint64_t first_replayed; /* seq of the first replayed batch */
    /* For --stats-interval: the newest batch's engine ts, and the events
     * counted at the previous line. */
    int has_last_ts;
    double last_ts;
    uint64_t events_at_line;
    unsigned shape; /* WIRE_SHAPE_* of every batch decoded, for --stats */
    /*
     * A source given without NAME= takes its pod (and model) from topics
     * kv@<pod>@<model> (topic_names); they are kept here.
     */
    int topic_names;
    char topic_pod[128], topic_model[128];
    /*
     * Gap fills run in the poll loop: while one is under way its SUB is not
     * read, and the live message that revealed the gap waits in held.
     */
    struct fill fill;
    struct zsock_msg held;
    int has_held;
    long long backoff_ms, backoff_until;
    /*
     * The payload of the last batch written, so that after a reconnect a
     * re-fetch of that seq can tell the same process from a new one.
     */
    struct buf last_payload;
    int has_last_payload;
    uint64_t last_payload_seq;
    unsigned long reconnects_seen; /* mon.reconnects already looked at */
    long long mon_checked_us;      /* when the monitor was last drained */
    int force_restart;             /* the held batch comes from a new process */
    int unchecked;   /* reconnected, and no way to check: say so unless the
                        seqs show a restart anyway */
    int no_seq_said; /* warned: messages without a seq frame came */
};

struct kvsub {
    const struct kvsub_opts *o;
    void *zctx;
    struct curve_zap *zap; /* --curve-allow with -b */
    struct source *src;
    int nsrc;
    struct cli_out out;
    struct wire_opts wopts;
    unsigned shape; /* the last decoded payload's (wopts.shape points here) */
    struct arena live_arena, replay_arena;
    uint64_t lines;
    int done; /* count reached, or the reader left */
    long long start_ms;
    long long last_rx; /* when a message last arrived (--idle) */
};

/* run.c: the output. */

/* Writes a gap record for from..to (why on stderr) and advances to to. */
void run_write_gap(struct kvsub *k, struct source *s,
                   const struct kv_batch *live, uint64_t from, uint64_t to,
                   const char *why);

/* Writes a decoded batch (or, !decoded, a decode_error record for why). */
void run_write_payload(struct kvsub *k, struct source *s, uint64_t seq,
                       const struct kv_batch *b, int decoded, const char *why,
                       size_t len);

/*
 * Decodes payload p into b, resetting arena a first.  Returns 1, or 0 with
 * the reason in err.  b points into a until its next reset.
 */
int run_decode(struct kvsub *k, struct arena *a, uint64_t seq, const uint8_t *p,
               size_t len, struct kv_batch *b, char *err, size_t errlen);

/* Prints the engine's snapshot; returns 1 when it did (see run.c). */
int run_print_snapshot(struct kvsub *k, struct source *s, const char *why);

/* Says once per source where its output joined the live stream. */
void run_note_joined(struct source *s, uint64_t seq);

/*
 * Handles one live message (again: a held one, back after a check); m is
 * borrowed, or moved into s->held when it has to wait for a fill.
 */
void run_handle_live(struct kvsub *k, struct source *s, struct zsock_msg *m,
                     int again);

/* Writes a held live message whose verdict was acted on.  m is borrowed. */
void run_write_held(struct kvsub *k, struct source *s,
                    const struct zsock_msg *m);

/* fill.c: replay fills in the poll loop. */

/* Keeps a copy of the payload of the last batch written (for a check). */
void fill_keep_payload(struct source *s, uint64_t seq, const uint8_t *p,
                       size_t len);

/*
 * Starts a fill of from..to (live: the envelope for gap records, copied;
 * NULL for none).  Returns 1 when it is under way, 0 when it is over
 * already (a gap record was written when it had to be).
 */
int fill_start(struct kvsub *k, struct source *s, enum fill_kind kind,
               const struct kv_batch *live, uint64_t from, uint64_t to);

/* Advances the source's fill; at its end, writes the held live batch. */
void fill_step(struct kvsub *k, struct source *s);

/* -o: starts the catch-up (after the snapshot, in snapshot mode). */
void fill_catch_up(struct kvsub *k, struct source *s);

/*
 * After a reconnect: starts the check that the engine is the same process.
 * Returns 1 when it is under way (the live batch must wait for it).
 */
int fill_check_reconnect(struct kvsub *k, struct source *s,
                         const uint8_t *stream);

#endif

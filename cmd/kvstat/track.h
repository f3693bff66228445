/*
 * track.h - kvstat's model of a capture: one pass over kvtap NDJSON events
 * (docs/ndjson.md) that keeps, per stream (pod, dp_rank), the blocks it
 * holds and the counters every subcommand reports.
 *
 * A block is an (engine hash, medium) pair, as kvindex keeps them
 * (docs/kvindex.md#how-events-apply): a null or empty medium is "GPU" when
 * stored and every medium when removed.  AllBlocksCleared and restart empty
 * the stream; gap only counts (the events lost in it are unknown).
 *
 * Ownership: the tracker owns everything it hands out; pointers into it are
 * borrowed until track_free.
 */
#ifndef KVSTAT_TRACK_H
#define KVSTAT_TRACK_H

#include <stddef.h>
#include <stdint.h>

#include "blockkey.h"
#include "event.h"
#include "pmap.h"

#define TRACK_MAX_MEDIA 32

/*
 * A request for the route simulation: one BlockStored event whose chain
 * reaches a root, as the chained keys of its whole prompt (the ancestors
 * the stream held, then the event's blocks).  keys is borrowed for the
 * call.
 */
typedef void track_request_fn(void *ctx, size_t stream, const uint64_t *keys,
                              size_t n_keys, size_t n_new);

struct track_opts {
    double every;  /* rate bucket in seconds; 0 = no time series */
    int lifetimes; /* record lifetimes */
    int keys;      /* compute chained keys (sharing, route) */
    struct blockkey_cfg key_cfg;
    const char *hash_seed;     /* llmd */
    const char *default_model; /* llmd root for lines without "model" */
    track_request_fn *on_request;
    void *ctx;
};

/* One interval of the rate series; occupancy after its last event. */
struct track_bucket {
    uint64_t events, stored, removed, occupancy;
    int touched;
};

/* Lifetimes that ended, in seconds, and the blocks that never did. */
struct track_life {
    double *v;
    size_t n, cap;
    uint64_t censored; /* alive at the end or at a restart */
    uint64_t negative; /* removed "before" stored: out-of-order ts */
};

struct track_stream {
    char *pod; /* owned, NUL-terminated */
    size_t pod_len;
    int has_rank;
    int64_t rank;
    uint64_t events;
    uint64_t by_type[KV_TYPE_COUNT];
    uint64_t blocks_stored, blocks_removed, unknown_removed, orphans;
    uint64_t held, peak;
    uint64_t lost_seqs, ts_backwards;
    int has_ts;
    double ts_min, ts_max;
    /* Sharing: stores of keys the stream did not hold (computed), those
     * another stream held at the time, blocks without a key, distinct keys
     * ever stored. */
    uint64_t computed, elsewhere, unkeyed, distinct, held_keys_peak;
    uint64_t held_keys;
    struct pmap blocks; /* (engine hash, medium) -> block pool index */
    struct track_bucket *rate;
    int64_t rate_base;
    size_t rate_n;
    struct track_life *life[TRACK_MAX_MEDIA]; /* by medium, NULL if none */
    /* Free for the caller (kvstat top): events and time at its last look. */
    uint64_t mark_events;
    long long mark_ms;
};

struct track;

/* Returns a new tracker, or NULL (out of memory). */
struct track *track_new(const struct track_opts *o);

/* Frees everything.  Accepts NULL. */
void track_free(struct track *t);

/*
 * Applies one event.  Returns 0, or -1 with the reason in err (out of
 * memory, too many media or a rate series too long for --every).
 */
int track_event(struct track *t, const struct kv_env *env,
                const struct kv_event *ev, char *err, size_t errlen);

/*
 * A hint, changing nothing: loads the table slots ev will touch into the
 * cache, so that applying it after the next line is parsed does not wait
 * for memory (the tables of a long capture are far larger than a cache).
 */
void track_prefetch(const struct track *t, const struct kv_env *env,
                    const struct kv_event *ev);

/* Ends the capture: blocks still held are counted as censored. */
void track_finish(struct track *t);

/* Streams in order of first appearance (the route's stream numbers). */
size_t track_stream_count(const struct track *t);
struct track_stream *track_stream_at(const struct track *t, size_t i);

/* The block size of the first store that has one (0: none yet). */
uint32_t track_block_size(const struct track *t);

/* Medium names by id; id 0 is "GPU".  Borrowed until track_free. */
size_t track_media_count(const struct track *t);
const char *track_medium_name(const struct track *t, size_t id);

/*
 * Sharing across streams: distinct keys ever stored, and how many keys
 * were held by exactly n streams at the end and at most at once
 * (n = 1 .. *n_max).  Arrays are borrowed until track_free.
 */
void track_holders(const struct track *t, uint64_t *distinct,
                   const uint64_t **end, const uint64_t **peak, size_t *n_max);

#endif

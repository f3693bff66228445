/*
 * index.h - the prefix index (docs/kvindex.md#what-it-keeps): which pod holds
 * which block key, per namespace (model, LoRA).  No I/O: kvindex's server feeds
 * it parsed events and asks it questions.  One thread owns an index.
 *
 * Contract between lib/index*.c and cmd/kvindex.  Strings handed out by the
 * index (pod names, model and LoRA names, media names) are borrowed until
 * index_free: pods, namespaces and media are interned and never forgotten.
 */
#ifndef KVTAP_INDEX_H
#define KVTAP_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "blockkey.h"
#include "event.h"

struct kv_index;
struct index_pod_info;

struct index_opts {
    enum blockkey_scheme scheme; /* --hash, default aibrix */
    uint64_t seed;               /* --seed (aibrix root), default 0 */
    const char *hash_seed;       /* --hash-seed (llmd), default "" */
    const char *default_model;   /* --model, for lines without "model" */
    uint64_t max_blocks;         /* --max-blocks: (pod, block) cap, 0 = none */
};

/* kvindex's default --degraded-orphans (docs/kvindex.md#how-events-apply). */
#define INDEX_DEGRADED_ORPHANS 100

/* Creates an empty index.  Returns NULL with the reason in err. */
struct kv_index *index_new(const struct index_opts *o, char *err,
                           size_t errlen);

/* Frees everything.  Accepts NULL. */
void index_free(struct kv_index *ix);

/*
 * --degraded-orphans: from now on, a pod with more than n orphaned stores
 * since its last clear or restart is degraded; 0 (the default of a new
 * index) = never.
 */
void index_set_degraded_orphans(struct kv_index *ix, uint64_t n);

/* Why index_apply rejected an event (counted in stats under these names). */
enum index_reject {
    INDEX_REJ_NONE = 0,
    INDEX_REJ_ORPHAN,     /* parent_block_hash unknown to the pod */
    INDEX_REJ_MISALIGNED, /* len(token_ids) != len(block_hashes)*block_size */
    INDEX_REJ_BLOCK_SIZE, /* block size differs from the namespace's */
    INDEX_REJ_INVALID,    /* missing or ill-typed fields */
    INDEX_REJ_NOMEM,
    INDEX_REJ_NAME, /* a new pod, model, LoRA or medium name that is not
                       valid UTF-8 or holds U+0000 */
    INDEX_REJ_COUNT
};

/* "orphan", "misaligned", ... Static storage. */
const char *index_reject_name(enum index_reject r);

/*
 * Applies one event read from NDJSON (env gives pod, dp_rank, model, seq,
 * ts).  Returns 0 when applied (a removal naming unknown hashes still applies
 * the rest; they are counted), or -1 when the event was rejected, with the
 * reason in *why.  Stream records gap/restart act as
 * docs/kvindex.md#how-events-apply says; other records are ignored.
 *
 * Details the spec leaves open: a null or "" medium is "GPU" when stored and
 * "all media" when removed; a removal naming a medium nothing was stored on
 * removes nothing.  SGLang bigram pages (token_pairs) key on the first token
 * of each [a, b] pair, so len(token_ids) counts pairs.  A store of an engine
 * hash the pod already maps keeps its key, adds the medium, counts as a use
 * for the LRU, and the event's next block chains on that key.  Every event
 * naming a pod, rejected or not, updates its last seq and ts.  At most 32
 * media names are kept; a store naming a 33rd is rejected as invalid.  A
 * gap or restart record with a null dp_rank applies to every known rank of
 * its pod (the record cannot say which stream it was), or to (pod, null)
 * when none is known.  Each pod it names gets the clock of
 * index_set_clock as the time of its last event.
 *
 * A pod restored from a snapshot (index_restore_pod with a seq) resumes its
 * stream (docs/kvindex.md#resuming-after-a-restart): lines it already
 * applied (same engine, seq not past the snapshot's) are skipped, counted in
 * resume_skipped, and return 0 without counting as applied; a first line
 * that leaves a hole after the snapshot's seq, or comes from another engine
 * process without a restart record, degrades the pod (index_resume_alarm).
 */
int index_apply(struct kv_index *ix, const struct kv_env *env,
                const struct kv_event *ev, enum index_reject *why);

/*
 * Sets the time (seconds on any clock; kvindex uses its monotonic clock)
 * that index_apply records as the last event of the pods it names.  The
 * caller sets it as often as it wants the record to be precise.
 */
void index_set_clock(struct kv_index *ix, double now);

/*
 * Returns 1 when the last index_apply took a pod's orphaned stores since its
 * last clear or restart past index_set_degraded_orphans's n (once per such run:
 * the pod is degraded from then on), filling *out with that pod's state; else
 * 0.  For the caller's warning.
 */
int index_orphan_alarm(const struct kv_index *ix, struct index_pod_info *out);

/* Why the last index_apply degraded a restored pod, for the caller's
 * warning. */
struct index_resume_alarm {
    const char *pod; /* borrowed until index_free */
    int has_rank;
    int64_t rank;
    uint64_t snap_seq; /* the pod's last seq in the snapshot */
    int other_engine;  /* 1: the line came from another engine process */
    uint64_t from, to; /* else: the seqs missing after the snapshot */
};

/* Returns 1 and fills *out when the last index_apply degraded a restored
 * pod (once per pod and restore), else 0. */
int index_resume_alarm(const struct kv_index *ix,
                       struct index_resume_alarm *out);

/*
 * The JetStream sequence of a line from kvjs sub ("js_seq").  Returns 1
 * when the line is already in the index (js_seq at or below the one a
 * loaded snapshot recorded): the caller skips it, and it is counted in
 * js_skipped.  Else records js_seq as seen (the highest seen is what a
 * snapshot saves) and returns 0.
 */
int index_js_seq(struct kv_index *ix, uint64_t js_seq);

/* Returns 1 and sets *out to the highest js_seq seen or restored, or 0
 * when no line carried one. */
int index_js_seq_get(const struct kv_index *ix, uint64_t *out);

/* Restores a snapshot's js_seq: later lines at or below it are skipped. */
void index_restore_js_seq(struct kv_index *ix, uint64_t js_seq);

/*
 * Returns 0 when the index has seen blocks of the namespace (model, LoRA):
 * model.p == NULL means the default model, lora.p == NULL or lora.n == 0
 * the base model.  Else -1, with a message in err that names it and lists
 * the models (or that model's LoRAs) the index knows.
 */
int index_ns_check(struct kv_index *ix, struct kv_str model, struct kv_str lora,
                   char *err, size_t errlen);

/* A pod named in a query: (pod, dp_rank); has_rank 0 matches any rank. */
struct index_pod_ref {
    struct kv_str pod;
    int has_rank;
    int64_t rank;
};

struct index_query {
    struct kv_str model;     /* p == NULL: the default model */
    struct kv_str lora_name; /* p == NULL or n == 0: the base model */
    const uint32_t *tokens;  /* either tokens ... */
    size_t n_tokens;
    const uint64_t *keys; /* ... or already computed block keys */
    size_t n_keys;
    const struct index_pod_ref *pods; /* candidate filter, NULL = all */
    size_t n_pods;
    uint32_t block_size; /* for keys when the namespace has none yet */
};

/*
 * A match's answers, deepest first; among pods of equal depth the one
 * holding the fewest blocks (of all namespaces: the load proxy of
 * docs/kvindex.md#answers) comes first, then by pod name, then by rank.
 */
struct index_match {
    const char *pod; /* borrowed until index_free */
    uint32_t pod_id; /* 0 to pods - 1, the pod's for the index's life */
    int has_rank;
    int64_t rank;
    uint32_t depth; /* the pod's unbroken run of blocks from block 0 */
    uint32_t media; /* union along the run: bit i = index_medium_name(ix, i) */
    int degraded;
};

struct index_match_result {
    uint32_t block_size;
    size_t blocks;         /* full blocks in the query */
    struct index_match *m; /* in the order of struct index_match */
    size_t n;
    size_t cap; /* owned by the result; reused across calls */
};

/*
 * Answers "match": fills *out (its array is grown as needed and reused;
 * free with index_match_result_free).  Returns 0, or -1 with the reason in
 * err (an unknown namespace is an error, as index_ns_check says, so that a
 * misspelt model never looks like a cold cache).  With max_blocks set,
 * the entries on every matched run count as used for the LRU.
 */
int index_match(struct kv_index *ix, const struct index_query *q,
                struct index_match_result *out, char *err, size_t errlen);

void index_match_result_free(struct index_match_result *r);

/*
 * Computes the block keys of q->tokens under the index's scheme for q's
 * namespace (block size from the namespace, else q->block_size).  *keys is
 * allocated (caller frees).  Returns 0, or -1 with the reason in err: an
 * unknown namespace without q->block_size is index_ns_check's error.
 */
int index_keys(struct kv_index *ix, const struct index_query *q,
               uint64_t **keys, size_t *n_keys, char *err, size_t errlen);

/* The model of lines and queries without one (opts.default_model, "" when
 * none).  Borrowed until index_free. */
const char *index_default_model(const struct kv_index *ix);

/* The name of medium bit i ("GPU" for nil media).  Static to the index. */
const char *index_medium_name(const struct kv_index *ix, int bit);

/*
 * Drops every entry of the pod (all ranks when ref->has_rank is 0); the pod
 * stays known, its degraded flag and counters unchanged (only the stream's
 * AllBlocksCleared and restart clear degraded).  Returns the number of
 * entries removed.
 */
uint64_t index_clear_pod(struct kv_index *ix, const struct index_pod_ref *ref);

/*
 * Interns a medium name ("GPU", "CPU", ...) and returns its bit, or -1 when
 * the index already knows 32 media.  Used to restore dumped entries.
 */
int index_medium_intern(struct kv_index *ix, const char *name, size_t n);

/* Counters and sizes for the "stats" op. */
struct index_stats {
    uint64_t namespaces;
    uint64_t keys;       /* distinct block keys held by some pod */
    uint64_t entries;    /* (pod, engine hash) entries */
    uint64_t pods;       /* every pod ever seen, cleared ones included */
    uint64_t bytes_used; /* every byte the index allocated (tables, strings,
                            mapped pages), without malloc's overhead */
    uint64_t applied[KV_TYPE_COUNT];    /* events applied, by enum kv_type */
    uint64_t rejected[INDEX_REJ_COUNT]; /* events rejected, by reason */
    uint64_t unknown_removed;    /* BlockRemoved hashes the pod did not map */
    uint64_t max_blocks_dropped; /* entries dropped by max_blocks (LRU) */
    uint64_t matches;            /* index_match calls answered */
    uint64_t resume_skipped;     /* lines a restored pod had already applied */
    uint64_t js_skipped;         /* lines at or below the snapshot's js_seq */
    int has_js_seq;
    uint64_t js_seq; /* index_js_seq_get */
};

void index_stats(const struct kv_index *ix, struct index_stats *out);

/* The state of one pod, for the "pods" op and for snapshots. */
struct index_pod_info {
    const char *pod; /* borrowed until index_free */
    int has_rank;
    int64_t rank;
    uint64_t blocks; /* entries held (ignored by index_restore_pod) */
    int has_seq;
    uint64_t last_seq;
    int has_ts;
    double last_ts;
    int degraded;        /* a gap, or more than degraded_orphans orphaned
                            stores, since the last clear/restart */
    uint64_t orphans;    /* stores rejected as orphan */
    uint64_t misaligned; /* stores rejected as misaligned */
    uint64_t orphan_run; /* orphans since the last clear/restart (ignored by
                            index_restore_pod: it restarts at 0) */
    int has_event_at;    /* 0 until index_apply names the pod (restored pods
                            too) */
    double event_at;     /* the index_set_clock time of its last event */
    /* The engine's identity and the position in its stream, saved by
     * snapshots so that a restored pod can resume
     * (docs/kvindex.md#resuming-after-a-restart). */
    const char *stream; /* its last stream id (32 hex digits), or NULL;
                           borrowed until the index next changes */
    int has_seq_ts;
    double seq_ts;      /* the ts of the batch at last_seq */
    uint64_t seq_lines; /* lines applied at last_seq */
};

/* Pods are numbered 0..index_pod_count()-1 in order of first appearance. */
size_t index_pod_count(const struct kv_index *ix);

/* Fills *out for pod i; returns 0, or -1 when i is out of range. */
int index_pod_info(const struct kv_index *ix, size_t i,
                   struct index_pod_info *out);

/* A namespace (model, LoRA) and its block size. */
struct index_ns_info {
    const char *model;     /* borrowed until index_free */
    const char *lora_name; /* "" for the base model */
    uint32_t block_size;
    uint64_t keys;
};

size_t index_ns_count(const struct kv_index *ix);
int index_ns_info(const struct kv_index *ix, size_t i,
                  struct index_ns_info *out);

/* One answer of "lookup": a pod that maps an engine hash, and to what. */
struct index_lookup_hit {
    const char *pod; /* borrowed until index_free */
    int has_rank;
    int64_t rank;
    uint64_t key;
    uint32_t media;
    const char *model;     /* the key's namespace */
    const char *lora_name; /* "" for the base model */
};

/*
 * Finds which pods (only those matching ref, all when ref is NULL) map the
 * engine hash.  Writes up to cap hits (index_pod_count() is always enough)
 * and returns how many there are.
 */
size_t index_lookup(const struct kv_index *ix, const struct index_pod_ref *ref,
                    uint64_t engine_hash, struct index_lookup_hit *hits,
                    size_t cap);

/* One (pod, block) entry, as dumped and restored. */
struct index_dump_entry {
    const char *pod;
    int has_rank;
    int64_t rank;
    const char *model;
    const char *lora_name; /* "" for the base model */
    uint32_t block_size;   /* the namespace's */
    uint64_t engine_hash;
    uint64_t key;
    uint32_t media; /* bits, named by index_medium_name */
};

/*
 * Iterates over entries.  Under max_blocks the order is least recently used
 * first, so that restoring them in this order reproduces the eviction
 * order; without it the order is unspecified.  Start zeroed; the cursor is
 * invalidated by any call that changes the index.
 */
struct index_cursor {
    uint32_t pos;
    int started;
};

/*
 * Fills *out with the next entry (of the pods matching ref, all when ref is
 * NULL).  Strings are borrowed until index_free.  Returns 1, or 0 at the end.
 */
int index_dump_next(const struct kv_index *ix, struct index_cursor *c,
                    const struct index_pod_ref *ref,
                    struct index_dump_entry *out);

/*
 * Restore, for snapshots: a dump loaded back into a new index (namespaces,
 * then pods, then entries in dump order) answers match identically.
 * Each returns 0, or -1 with the reason in err.
 */
int index_restore_ns(struct kv_index *ix, struct kv_str model,
                     struct kv_str lora_name, uint32_t block_size, char *err,
                     size_t errlen);

/*
 * Creates the pod if needed and sets its seq, ts, stream, degraded and
 * counters.  A pod restored with a seq resumes its stream (index_apply).
 */
int index_restore_pod(struct kv_index *ix, const struct index_pod_info *info,
                      char *err, size_t errlen);

/*
 * Adds one entry (the namespace is created with e->block_size if needed; a
 * different block size is an error).  media bits come from
 * index_medium_intern of this index.  Counts against max_blocks.
 */
int index_restore_entry(struct kv_index *ix, const struct index_dump_entry *e,
                        char *err, size_t errlen);

#endif

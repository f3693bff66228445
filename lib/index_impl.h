/*
 * index_impl.h - the prefix index's internals, PRIVATE to the index module:
 * only lib/index*.c include it.  The public API is lib/index.h; nothing here
 * is a contract with any other code.
 *
 * The index is one data structure split over four files by concern:
 * index.c keeps the tables (memory, the entry pool and LRU, engine maps, the
 * key table, entries, pods, namespaces, media) and the index's lifetime;
 * index_apply.c applies events; index_query.c answers queries; index_dump.c
 * reads the index out and restores it.  The files share the structs below,
 * the prototypes of the table operations index.c exports to them, and, as
 * static inline functions, the small helpers the apply and match loops call
 * per block, so that the split costs no call on those paths.
 *
 * Layout, chosen for one writer thread and small per-entry memory:
 *
 * - Entries: one struct entry per (pod, engine hash), 24 bytes, in one pool
 *   addressed by 32-bit ids.  An entry is on the holder list of its key
 *   (singly linked through next_holder) and in its pod's engine map; under
 *   max_blocks also on the LRU (doubly linked, oldest to newest, in a
 *   parallel array that costs nothing without a cap).  Freed ids go to a
 *   free list; when more than half the pool is free it is compacted and
 *   shrunk, so memory follows the live entries.
 * - Keys: one open-addressing table (linear probing, backward-shift deletion)
 *   of (namespace, key) -> first holder and a bitmap of the holders among
 *   pods 0..62 (one more bit says "and some later pod").  The holder set of
 *   a key is the list of its entries: a key held by a few pods costs nothing
 *   beyond them, with no per-key heap allocation.  A key with no holder
 *   leaves the table.
 * - Engine maps: per pod, an open-addressing table of entry ids keyed by the
 *   entry's engine hash.  Per pod because engines seed their hashes per
 *   process and one pod's removal must not touch another's.
 * - match follows pods 0..62 with one probe and one AND per block (the
 *   bitmaps) and later pods by walking the holders they appear in; it
 *   hashes and prefetches each block's key 16 blocks ahead of its probe, so
 *   that the cache misses of a long prompt overlap each other and the
 *   probes overlap the hashing.
 * - Tables of 64 KiB or more are mmap'd (huge pages from 2 MiB), so that a
 *   table freed by a shrink or a rehash returns its memory at once.
 *
 * Ids are stable between public calls except across compaction
 * (pool_compact), which runs only at the end of a public call.
 *
 * Memory per (pod, block) when nothing is shared: the entry (24 bytes,
 * dense), a key slot (24 bytes) and an engine-map slot (8 bytes), the two
 * tables between 0.375 and 0.75 full as they double, so 67 to 88 bytes
 * resident over 0.6M to 1.5M entries (bench_index -m; the worst point is
 * just past a doubling).  Fuller tables were measured and are not worth
 * it: capacities of any size held between 0.7 and 0.875 full (Lemire's
 * range reduction, linear probing) cost 68 to 69 bytes at all three sizes
 * but applied stores 1.9 to 2.8 times slower and matched 20% slower (four
 * times the rehashing, each relinking every key's entries, and longer
 * probes of 24-byte slots); the engine maps alone, in Robin Hood order,
 * saved 2 to 6 bytes for stores 1.2 to 1.5 times slower.  Under 64 bytes
 * at every size needs fewer bytes per slot (56 today), not only fuller
 * tables.  Two such layouts were built and measured (bench_index, best of
 * four to six interleaved runs against this layout, pinned to one core):
 * 20-byte key slots (the namespace XORed into the key instead of stored)
 * with 20-byte entries (pod, namespace and media as one shared, counted
 * "feed" id) cost 76 bytes at 1M entries with doubling tables and 62.5
 * with tables growing by half steps (Lemire's multiply-shift for any
 * capacity, 0.5 to 0.75 full), but matched 15 to 20% slower even at the
 * same load, and with half steps applied unshared stores up to 25% slower
 * (twice the rehashing, even with holders relinked in one ordered pass
 * over the pool).  Both were left out: the target is less memory with
 * match and apply no slower.
 */
#ifndef KVTAP_INDEX_IMPL_H
#define KVTAP_INDEX_IMPL_H

#include "index.h"

#include <stddef.h>
#include <stdint.h>

#define NONE UINT32_MAX
#define MAX_MEDIA 32
#define GOLDEN 0x9E3779B97F4A7C15ull
#define NS_MIX 0xD6E8FEB86659FD93ull

struct entry {
    uint64_t engine_hash;
    uint32_t key_slot; /* slot in ix->ks; NONE when the entry is free */
    uint32_t pod;
    uint32_t next_holder; /* the free list when free */
    uint32_t media;
};

/* LRU links, parallel to the pool, kept only under max_blocks. */
struct lru_link {
    uint32_t prev; /* older */
    uint32_t next; /* newer */
};

/*
 * pods holds bit p for every pod p < LO_PODS holding the key, and HI_BIT if
 * any later pod does, so that match follows most pods with one AND per
 * block instead of walking holders.
 */
struct key_slot {
    uint64_t key;
    uint64_t pods;
    uint32_t ns;
    uint32_t head; /* first holder; NONE marks an empty slot */
};

/* An engine map: tagged entry ids, EM_EMPTY for empty slots. */
struct emap {
    uint64_t *slot; /* tag << 32 | entry id */
    uint32_t cap;   /* 0 or a power of two */
    uint32_t n;
    unsigned shift;
};

struct pod {
    char *name;
    size_t name_len;
    int has_rank;
    int64_t rank;
    struct emap map;
    uint64_t blocks;
    int has_seq;
    uint64_t last_seq;
    int has_ts;
    double last_ts;
    int degraded;
    uint64_t orphans, misaligned;
    uint64_t orphan_run; /* orphans since the last clear or restart */
    int has_event_at;
    double event_at;
    /* Where the pod's stream stands (docs/kvindex.md#resuming-after-a-restart):
     * the engine's stream id, the ts of the batch at last_seq, how many
     * lines were applied at last_seq; and, while resuming (restored from a
     * snapshot, no new line yet), how many lines at last_seq came again. */
    char stream[33]; /* "" when unknown */
    int has_seq_ts;
    double seq_ts;
    uint64_t seq_lines;
    int resuming;
    uint64_t resume_lines;
    /* Scratch of index_match, valid when stamp == ix->gen. */
    uint32_t stamp, allow, depth, media;
};

struct ns {
    char *model, *lora;
    size_t model_len, lora_len;
    uint32_t block_size;
    uint64_t keys;
    struct blockkey_cfg cfg;
};

struct kv_index {
    enum blockkey_scheme scheme;
    uint64_t seed;
    char *hash_seed;
    char *default_model;
    uint64_t max_blocks;
    uint64_t degraded_orphans;
    double clock;          /* index_set_clock */
    uint32_t orphan_alarm; /* the pod the last apply degraded, or NONE */
    uint32_t resume_alarm; /* the restored pod the last apply degraded */
    struct index_resume_alarm resume_why;
    int has_js_seq, has_js_floor;
    uint64_t js_seq, js_floor; /* highest seen; skipped at or below floor */

    struct entry *ent;
    uint32_t ent_len, ent_cap; /* ids below ent_len are live or free */
    uint32_t n_live, n_free, free_head;
    struct lru_link *lru; /* only with max_blocks */
    uint32_t lru_cap;
    uint32_t lru_old, lru_new;

    struct key_slot *ks;
    uint32_t ks_cap, ks_n;
    unsigned ks_shift;

    struct pod *pods;
    uint32_t n_pods, pods_cap, last_pod;

    struct ns *ns;
    uint32_t n_ns, ns_cap, last_ns;
    uint32_t *ns_tab;

    char *media[MAX_MEDIA];
    int n_media;

    /* Scratch reused across calls. */
    uint64_t *qkeys;
    uint32_t *qslots;
    size_t q_cap;
    uint32_t *tok;
    size_t tok_cap;
    uint32_t *active;
    uint64_t *sortk;
    size_t active_cap;
    /* Pods in name order (name, then rank): order[pod] and its inverse. */
    uint32_t *order, *by_order;
    /*
     * Pods in answer order among equal depths (docs/kvindex.md#answers):
     * fewest blocks, then name order.  Blocks change with every store and
     * removal, so the order is rebuilt by a match that finds it stale
     * rather than kept up on the apply path.
     */
    uint32_t *lorder, *by_lorder;
    int lorder_stale;
    uint32_t *pod_tab; /* open addressing over pods, 2 * pods_cap slots */
    uint32_t gen;

    uint64_t applied[KV_TYPE_COUNT];
    uint64_t rejected[INDEX_REJ_COUNT];
    uint64_t unknown_removed, max_blocks_dropped, matches;
    uint64_t resume_skipped, js_skipped;
};

/* Fibonacci hashing: the top bits of x * golden ratio. */
static inline uint32_t
home_of(uint64_t x, unsigned shift)
{
    return (uint32_t)((x * GOLDEN) >> shift);
}

/* ---- the key table ----------------------------------------------------- */

static inline uint32_t
ks_home(const struct kv_index *ix, uint32_t ns, uint64_t key)
{
    return home_of(key ^ ((uint64_t)(ns + 1) * NS_MIX), ix->ks_shift);
}

/*
 * A key's holder bitmap: bit p for pods 0..62, and HI_BIT when some holder
 * is pod 63 or later (those are found by walking the holder list).
 */
#define LO_PODS 63u
#define HI_BIT (1ull << 63)

static inline uint64_t
pod_bit(uint32_t p)
{
    return p < LO_PODS ? 1ull << p : HI_BIT;
}

/* Returns the slot of (ns, key), or NONE; j is ks_home(ix, ns, key), and
 * the table is not empty. */
static inline uint32_t
ks_find_from(const struct kv_index *ix, uint32_t j, uint32_t ns, uint64_t key)
{
    for (;;) {
        const struct key_slot *s = &ix->ks[j];

        if (s->head == NONE)
            return NONE;
        if (s->key == key && s->ns == ns)
            return j;
        j = (j + 1) & (ix->ks_cap - 1);
    }
}

/* Makes sure extra more keys fit without failing. */
int ks_reserve(struct kv_index *ix, size_t extra);

/* ---- the entry pool and the LRU ---------------------------------------- */

/* Makes sure n more entries can be allocated without failing. */
int ent_reserve(struct kv_index *ix, size_t n);

static inline void
lru_unlink(struct kv_index *ix, uint32_t id)
{
    struct lru_link *l = ix->lru;

    if (ix->max_blocks == 0)
        return;
    if (l[id].prev != NONE)
        l[l[id].prev].next = l[id].next;
    else
        ix->lru_old = l[id].next;
    if (l[id].next != NONE)
        l[l[id].next].prev = l[id].prev;
    else
        ix->lru_new = l[id].prev;
}

static inline void
lru_push_new(struct kv_index *ix, uint32_t id)
{
    struct lru_link *l = ix->lru;

    if (ix->max_blocks == 0)
        return;
    l[id].next = NONE;
    l[id].prev = ix->lru_new;
    if (ix->lru_new != NONE)
        l[ix->lru_new].next = id;
    else
        ix->lru_old = id;
    ix->lru_new = id;
}

/* Marks entry id as the most recently used. */
static inline void
lru_touch(struct kv_index *ix, uint32_t id)
{
    if (ix->max_blocks == 0 || ix->lru_new == id)
        return;
    lru_unlink(ix, id);
    lru_push_new(ix, id);
}

/* ---- engine maps ------------------------------------------------------- */

/*
 * A slot is (tag << 32 | entry id), the tag being 32 bits of the engine
 * hash: probes compare tags without touching the entry, and the home slot
 * is a function of the tag alone, so rehashing and deletion never read
 * entries either.  EM_EMPTY has id NONE.
 */
#define EM_EMPTY UINT64_MAX

static inline uint32_t
em_tag(uint64_t h)
{
    return (uint32_t)(h ^ (h >> 32));
}

static inline uint32_t
em_id(const struct emap *m, uint32_t s)
{
    return (uint32_t)m->slot[s];
}

static inline void
em_prefetch(const struct emap *m, uint64_t h)
{
    if (m->cap)
        __builtin_prefetch(&m->slot[home_of(em_tag(h), m->shift)]);
}

/* Returns the slot holding engine hash h, or NONE. */
uint32_t em_find(const struct kv_index *ix, const struct emap *m, uint64_t h);

/* Makes sure extra more entries fit in m without failing. */
int em_reserve(struct emap *m, size_t extra);

/* Empties slot i, shrinking m when it is mostly empty. */
void em_delete_slot(struct emap *m, uint32_t i);

/* ---- entries ----------------------------------------------------------- */

/*
 * Adds pod p's entry for engine hash h under (nsid, key), on the given
 * media bits, as the most recently used.  The pod must not map h yet, and
 * ent_reserve, ks_reserve and em_reserve must have made room.  Returns its
 * id.
 */
uint32_t entry_add(struct kv_index *ix, uint32_t p, uint32_t nsid, uint64_t key,
                   uint64_t h, uint32_t media);

/* Drops an entry everywhere but its pod's engine map. */
void entry_drop(struct kv_index *ix, uint32_t id);

/* Drops the oldest entries while there are more than max_blocks. */
void lru_evict(struct kv_index *ix);

/*
 * Returns memory when most of the pool is free; moves entries, so it runs
 * only at the end of a public call, when no caller holds an id.
 */
void pool_compact(struct kv_index *ix);

/* Clears every entry of pod p; returns how many went. */
uint64_t pod_clear(struct kv_index *ix, uint32_t p);

/* ---- pods, namespaces, media ------------------------------------------- */

/*
 * Whether name[0..n) may name a pod, namespace or medium: valid UTF-8
 * without U+0000, so that it reads back the same from a reply or a
 * snapshot and a C string holds all of it.
 */
int name_ok(const char *name, size_t n);

/* The id of pod (name, rank), or NONE when the index has not seen it. */
uint32_t pod_find(const struct kv_index *ix, const char *name, size_t n,
                  int has_rank, int64_t rank);

/*
 * The id of pod (name, rank), created when new (rank ignored without
 * has_rank), or NONE with errno: ENOMEM, or EILSEQ when a new pod's name
 * fails name_ok.
 */
uint32_t pod_intern(struct kv_index *ix, const char *name, size_t n,
                    int has_rank, int64_t rank);

/* Whether pod p is one that ref names (any rank when ref has none). */
int pod_ref_matches(const struct pod *p, const struct index_pod_ref *r);

/* The id of namespace (model, lora), or NONE. */
uint32_t ns_find(struct kv_index *ix, const char *model, size_t mn,
                 const char *lora, size_t ln);

/* Creates namespace (model, lora); returns its id, or NONE with errno
 * ENOMEM, or EILSEQ when a name fails name_ok.  ns_find must have found
 * none. */
uint32_t ns_create(struct kv_index *ix, const char *model, size_t mn,
                   const char *lora, size_t ln, uint32_t block_size);

/* The block-key configuration of namespace (model, lora). */
void ns_cfg(const struct kv_index *ix, struct blockkey_cfg *c,
            const char *model, size_t mn, const char *lora, size_t ln);

/* The bit of the medium name[0..n), or -1 when never seen. */
int medium_find(const struct kv_index *ix, const char *name, size_t n);

#endif

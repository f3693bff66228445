/*
 * index.c - the prefix index (docs/kvindex.md#how-events-apply).
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
 *   bitmaps) and later pods by walking the holders they appear in; it probes
 *   16 blocks ahead so that the cache misses of a long prompt overlap.
 * - Tables of 64 KiB or more are mmap'd (huge pages from 2 MiB), so that a
 *   table freed by a shrink or a rehash returns its memory at once.
 *
 * Ids are stable between public calls except across compaction, which runs
 * only at the end of a public call.
 */
#include "index.h"

#include "fmt.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define NONE UINT32_MAX
#define MAX_MEDIA 32
#define GOLDEN 0x9E3779B97F4A7C15ull
#define NS_MIX 0xD6E8FEB86659FD93ull
#define MIN_TABLE 16u
#define MIN_POOL 1024u
#define STORE_CHUNK 16

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
};

static const char *const reject_names[INDEX_REJ_COUNT] = {
    [INDEX_REJ_NONE] = "none",
    [INDEX_REJ_ORPHAN] = "orphan",
    [INDEX_REJ_MISALIGNED] = "misaligned",
    [INDEX_REJ_BLOCK_SIZE] = "block_size",
    [INDEX_REJ_INVALID] = "invalid",
    [INDEX_REJ_NOMEM] = "nomem",
};

const char *
index_reject_name(enum index_reject r)
{
    if ((unsigned)r >= INDEX_REJ_COUNT)
        return "?";
    return reject_names[r];
}

static char *
dup_mem(const char *p, size_t n)
{
    char *s = malloc(n + 1);

    if (s == NULL)
        return NULL;
    if (n)
        memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/* Fibonacci hashing: the top bits of x * golden ratio. */
static inline uint32_t
home_of(uint64_t x, unsigned shift)
{
    return (uint32_t)((x * GOLDEN) >> shift);
}

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

static unsigned
shift_for(uint32_t cap)
{
    return 64u - (unsigned)__builtin_ctz(cap);
}

/* ---- memory ------------------------------------------------------------
 *
 * Tables of BIG bytes or more are mapped directly, so that freeing one
 * returns its pages at once (malloc keeps freed chunks of its heap, and a
 * rehash frees the old table just as the new one fills).  Those of 2 MiB or
 * more ask for huge pages: they are probed at random, and huge pages spare
 * the TLB misses.
 */
#define BIG ((size_t)64 << 10)
#define HUGE ((size_t)2 << 20)

static size_t
big_round(size_t n)
{
    size_t page = n >= HUGE ? HUGE : 4096;

    return (n + page - 1) & ~(page - 1);
}

static void
big_advise(void *p, size_t n)
{
#ifdef MADV_HUGEPAGE
    if (n >= HUGE)
        (void)madvise(p, big_round(n), MADV_HUGEPAGE);
#endif
}

static void *
big_alloc(size_t n)
{
    void *p;

    if (n < BIG)
        return malloc(n);
    p = mmap(NULL, big_round(n), PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    big_advise(p, n);
    return p;
}

static void
big_free(void *p, size_t n)
{
    if (p == NULL)
        return;
    if (n < BIG)
        free(p);
    else
        munmap(p, big_round(n));
}

/* Resizes from old to n bytes, keeping min(old, n) bytes. */
static void *
big_realloc(void *p, size_t old, size_t n)
{
    void *q;

    if (p == NULL)
        return big_alloc(n);
    if (old < BIG && n < BIG)
        return realloc(p, n);
    if (old >= BIG && n >= BIG) {
        q = mremap(p, big_round(old), big_round(n), MREMAP_MAYMOVE);
        if (q == MAP_FAILED)
            return NULL;
        big_advise(q, n);
        return q;
    }
    q = big_alloc(n);
    if (q == NULL)
        return NULL;
    memcpy(q, p, old < n ? old : n);
    big_free(p, old);
    return q;
}

/* ---- the entry pool and the LRU ---------------------------------------- */

static void
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

static void
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

static void
lru_touch(struct kv_index *ix, uint32_t id)
{
    if (ix->max_blocks == 0 || ix->lru_new == id)
        return;
    lru_unlink(ix, id);
    lru_push_new(ix, id);
}

/* Resizes the pool (and the LRU links) to cap entries, cap > 0. */
static int
pool_resize(struct kv_index *ix, size_t cap)
{
    struct entry *p;

    if (ix->max_blocks && cap != ix->lru_cap) {
        struct lru_link *l = big_realloc(
            ix->lru, (size_t)ix->lru_cap * sizeof *l, cap * sizeof *l);

        if (l == NULL)
            return -1;
        ix->lru = l;
        ix->lru_cap = (uint32_t)cap;
    }
    p = big_realloc(ix->ent, (size_t)ix->ent_cap * sizeof *p, cap * sizeof *p);
    if (p == NULL)
        return -1;
    ix->ent = p;
    ix->ent_cap = (uint32_t)cap;
    return 0;
}

static void
pool_free(struct kv_index *ix)
{
    big_free(ix->ent, (size_t)ix->ent_cap * sizeof *ix->ent);
    big_free(ix->lru, (size_t)ix->lru_cap * sizeof *ix->lru);
    ix->ent = NULL;
    ix->lru = NULL;
    ix->ent_cap = ix->lru_cap = 0;
}

/* Makes sure n more entries can be allocated without failing. */
static int
ent_reserve(struct kv_index *ix, size_t n)
{
    size_t need, cap;

    if (n <= ix->n_free)
        return 0;
    need = (size_t)ix->ent_len + (n - ix->n_free);
    if (need <= ix->ent_cap)
        return 0;
    if (need >= NONE)
        return -1;
    cap = ix->ent_cap ? ix->ent_cap : MIN_POOL;
    while (cap < need)
        cap *= 2;
    if (cap >= NONE)
        cap = NONE - 1;
    return pool_resize(ix, cap);
}

/* Takes an id; ent_reserve must have made room. */
static uint32_t
ent_take(struct kv_index *ix)
{
    uint32_t id;

    if (ix->free_head != NONE) {
        id = ix->free_head;
        ix->free_head = ix->ent[id].next_holder;
        ix->n_free--;
    } else {
        id = ix->ent_len++;
    }
    ix->n_live++;
    return id;
}

static void
ent_give(struct kv_index *ix, uint32_t id)
{
    ix->ent[id].key_slot = NONE;
    ix->ent[id].next_holder = ix->free_head;
    ix->free_head = id;
    ix->n_free++;
    ix->n_live--;
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

static inline uint32_t
em_home(const struct emap *m, uint64_t slot)
{
    return home_of(slot >> 32, m->shift);
}

static int
em_rehash(struct emap *m, uint32_t cap)
{
    uint64_t *s = NULL;
    struct emap nm = {NULL, cap, m->n, cap ? shift_for(cap) : 0};

    if (cap) {
        s = big_alloc((size_t)cap * sizeof *s);
        if (s == NULL)
            return -1;
        memset(s, 0xff, (size_t)cap * sizeof *s);
        nm.slot = s;
        for (uint32_t i = 0; i < m->cap; i++) {
            uint32_t j;

            if (m->slot[i] == EM_EMPTY)
                continue;
            j = em_home(&nm, m->slot[i]);
            while (s[j] != EM_EMPTY)
                j = (j + 1) & (cap - 1);
            s[j] = m->slot[i];
        }
    }
    big_free(m->slot, (size_t)m->cap * sizeof *m->slot);
    *m = nm;
    return 0;
}

static int
em_reserve(struct emap *m, size_t extra)
{
    uint64_t need = (uint64_t)m->n + extra;
    uint64_t cap = m->cap ? m->cap : MIN_TABLE;

    if (need * 4 <= (uint64_t)m->cap * 3)
        return 0;
    while (need * 4 > cap * 3)
        cap *= 2;
    if (cap > (1ull << 31))
        return -1;
    return em_rehash(m, (uint32_t)cap);
}

static inline void
em_prefetch(const struct emap *m, uint64_t h)
{
    if (m->cap)
        __builtin_prefetch(&m->slot[home_of(em_tag(h), m->shift)]);
}

/* Returns the slot holding engine hash h, or NONE. */
static uint32_t
em_find(const struct kv_index *ix, const struct emap *m, uint64_t h)
{
    uint32_t j, tag = em_tag(h);

    if (m->cap == 0)
        return NONE;
    j = home_of(tag, m->shift);
    for (;;) {
        uint64_t v = m->slot[j];

        if (v == EM_EMPTY)
            return NONE;
        if ((uint32_t)(v >> 32) == tag && ix->ent[(uint32_t)v].engine_hash == h)
            return j;
        j = (j + 1) & (m->cap - 1);
    }
}

static void
em_insert(struct kv_index *ix, struct emap *m, uint32_t id)
{
    uint64_t v = (uint64_t)em_tag(ix->ent[id].engine_hash) << 32 | id;
    uint32_t j = em_home(m, v);

    while (m->slot[j] != EM_EMPTY)
        j = (j + 1) & (m->cap - 1);
    m->slot[j] = v;
    m->n++;
}

static void
em_set_id(struct emap *m, uint32_t s, uint32_t id)
{
    m->slot[s] = (m->slot[s] & ~(uint64_t)UINT32_MAX) | id;
}

/* Backward-shift deletion keeps probe runs unbroken without tombstones. */
static void
em_delete_slot(struct emap *m, uint32_t i)
{
    uint32_t mask = m->cap - 1, j = i;

    for (;;) {
        uint32_t home;

        j = (j + 1) & mask;
        if (m->slot[j] == EM_EMPTY)
            break;
        home = em_home(m, m->slot[j]);
        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->slot[i] = m->slot[j];
            i = j;
        }
    }
    m->slot[i] = EM_EMPTY;
    m->n--;
    if (m->n == 0)
        em_rehash(m, 0);
    else if (m->cap > MIN_TABLE && (uint64_t)m->n * 4 < m->cap)
        (void)em_rehash(m, m->cap / 2);
}

/* ---- the key table ----------------------------------------------------- */

static void
ks_relink(struct kv_index *ix, uint32_t slot)
{
    for (uint32_t e = ix->ks[slot].head; e != NONE; e = ix->ent[e].next_holder)
        ix->ent[e].key_slot = slot;
}

static int
ks_rehash(struct kv_index *ix, uint32_t cap)
{
    struct key_slot *s = NULL, *old = ix->ks;
    uint32_t old_cap = ix->ks_cap;

    if (cap) {
        s = big_alloc((size_t)cap * sizeof *s);
        if (s == NULL)
            return -1;
        for (uint32_t i = 0; i < cap; i++)
            s[i].head = NONE;
    }
    ix->ks = s;
    ix->ks_cap = cap;
    ix->ks_shift = cap ? shift_for(cap) : 0;
    for (uint32_t i = 0; i < old_cap; i++) {
        uint32_t j;

        if (old[i].head == NONE)
            continue;
        j = ks_home(ix, old[i].ns, old[i].key);
        while (s[j].head != NONE)
            j = (j + 1) & (cap - 1);
        s[j] = old[i];
        ks_relink(ix, j);
    }
    big_free(old, (size_t)old_cap * sizeof *old);
    return 0;
}

static int
ks_reserve(struct kv_index *ix, size_t extra)
{
    uint64_t need = (uint64_t)ix->ks_n + extra;
    uint64_t cap = ix->ks_cap ? ix->ks_cap : MIN_TABLE;

    if (need * 4 <= (uint64_t)ix->ks_cap * 3)
        return 0;
    while (need * 4 > cap * 3)
        cap *= 2;
    if (cap > (1ull << 31))
        return -1;
    return ks_rehash(ix, (uint32_t)cap);
}

static uint32_t
ks_find(const struct kv_index *ix, uint32_t ns, uint64_t key)
{
    uint32_t j;

    if (ix->ks_cap == 0)
        return NONE;
    j = ks_home(ix, ns, key);
    for (;;) {
        const struct key_slot *s = &ix->ks[j];

        if (s->head == NONE)
            return NONE;
        if (s->key == key && s->ns == ns)
            return j;
        j = (j + 1) & (ix->ks_cap - 1);
    }
}

/*
 * Finds or inserts (ns, key); ks_reserve must have made room.  A new slot
 * has no holder yet (it reads as empty until holder_insert).
 */
static uint32_t
ks_get(struct kv_index *ix, uint32_t ns, uint64_t key)
{
    uint32_t j = ks_home(ix, ns, key);

    for (;;) {
        struct key_slot *s = &ix->ks[j];

        if (s->head == NONE) {
            s->key = key;
            s->ns = ns;
            s->pods = 0;
            ix->ks_n++;
            ix->ns[ns].keys++;
            return j;
        }
        if (s->key == key && s->ns == ns)
            return j;
        j = (j + 1) & (ix->ks_cap - 1);
    }
}

static void
ks_delete(struct kv_index *ix, uint32_t i)
{
    uint32_t mask = ix->ks_cap - 1, j = i;

    ix->ns[ix->ks[i].ns].keys--;
    for (;;) {
        struct key_slot *s;
        uint32_t home;

        j = (j + 1) & mask;
        s = &ix->ks[j];
        if (s->head == NONE)
            break;
        home = ks_home(ix, s->ns, s->key);
        if (((j - home) & mask) >= ((j - i) & mask)) {
            ix->ks[i] = *s;
            ks_relink(ix, i);
            i = j;
        }
    }
    ix->ks[i].head = NONE;
    ix->ks_n--;
    if (ix->ks_n == 0)
        ks_rehash(ix, 0);
    else if (ix->ks_cap > MIN_TABLE && (uint64_t)ix->ks_n * 4 < ix->ks_cap)
        (void)ks_rehash(ix, ix->ks_cap / 2);
}

/* ---- entries ----------------------------------------------------------- */

/*
 * Links entry id into its key's holders.  Entries of pods past LO_PODS come
 * first, so that match walks only them (it stops at the first pod below).
 */
static void
holder_insert(struct kv_index *ix, uint32_t slot, uint32_t id)
{
    uint32_t *link = &ix->ks[slot].head;

    if (ix->ent[id].pod < LO_PODS) {
        while (*link != NONE && ix->ent[*link].pod >= LO_PODS)
            link = &ix->ent[*link].next_holder;
    }
    ix->ent[id].next_holder = *link;
    *link = id;
    ix->ks[slot].pods |= pod_bit(ix->ent[id].pod);
}

/* Takes the entry off its key's holder list, freeing the key if it was the
 * last holder. */
static void
holder_unlink(struct kv_index *ix, uint32_t id)
{
    uint32_t slot = ix->ent[id].key_slot;
    uint32_t *link = &ix->ks[slot].head, *at = NULL;
    uint64_t bit = pod_bit(ix->ent[id].pod);
    int other = 0;

    /* The whole list: the bit stays while another holder has it (the same
     * pod under another engine hash, or another pod past LO_PODS). */
    for (; *link != NONE; link = &ix->ent[*link].next_holder) {
        if (*link == id)
            at = link;
        else if (pod_bit(ix->ent[*link].pod) == bit)
            other = 1;
    }
    *at = ix->ent[id].next_holder;
    if (!other)
        ix->ks[slot].pods &= ~bit;
    if (ix->ks[slot].head == NONE)
        ks_delete(ix, slot);
}

/* Drops an entry everywhere but its pod's engine map. */
static void
entry_drop(struct kv_index *ix, uint32_t id)
{
    holder_unlink(ix, id);
    lru_unlink(ix, id);
    ix->pods[ix->ent[id].pod].blocks--;
    ix->lorder_stale = 1;
    ent_give(ix, id);
}

/* Drops an entry and its engine mapping. */
static void
entry_remove(struct kv_index *ix, uint32_t id)
{
    struct emap *m = &ix->pods[ix->ent[id].pod].map;
    uint32_t slot = em_find(ix, m, ix->ent[id].engine_hash);

    entry_drop(ix, id);
    em_delete_slot(m, slot);
}

static void
evict(struct kv_index *ix)
{
    if (ix->max_blocks == 0)
        return;
    while (ix->n_live > ix->max_blocks && ix->lru_old != NONE) {
        entry_remove(ix, ix->lru_old);
        ix->max_blocks_dropped++;
    }
}

/* Moves live entry src to free id dst, fixing every reference to it. */
static void
relocate(struct kv_index *ix, uint32_t src, uint32_t dst)
{
    struct entry *e = &ix->ent[src];
    struct emap *m = &ix->pods[e->pod].map;
    uint32_t *link = &ix->ks[e->key_slot].head;
    uint32_t slot;

    while (*link != src)
        link = &ix->ent[*link].next_holder;
    *link = dst;
    if (ix->max_blocks) {
        struct lru_link *l = ix->lru;

        if (l[src].prev != NONE)
            l[l[src].prev].next = dst;
        else
            ix->lru_old = dst;
        if (l[src].next != NONE)
            l[l[src].next].prev = dst;
        else
            ix->lru_new = dst;
        l[dst] = l[src];
    }
    slot = em_find(ix, m, e->engine_hash);
    em_set_id(m, slot, dst);
    ix->ent[dst] = *e;
}

/*
 * Returns memory when most of the pool is free: live entries move into the
 * holes below n_live and the pool shrinks.  Runs only between public calls,
 * when no caller holds an id.
 */
static void
compact(struct kv_index *ix)
{
    uint32_t dst = 0, src;
    size_t cap;

    if (ix->n_free == 0 || ix->n_free < ix->n_live ||
        (ix->ent_cap <= MIN_POOL && ix->n_live))
        return;
    src = ix->ent_len;
    for (;;) {
        while (dst < src && ix->ent[dst].key_slot != NONE)
            dst++;
        while (src > dst && ix->ent[src - 1].key_slot == NONE)
            src--;
        if (src <= dst)
            break;
        relocate(ix, src - 1, dst);
        ix->ent[src - 1].key_slot = NONE;
        src--;
    }
    ix->ent_len = ix->n_live;
    ix->n_free = 0;
    ix->free_head = NONE;
    if (ix->n_live == 0) {
        pool_free(ix);
        return;
    }
    cap = MIN_POOL;
    while (cap < (size_t)ix->n_live + ix->n_live / 2)
        cap *= 2;
    if (cap < ix->ent_cap)
        (void)pool_resize(ix, cap);
}

/* ---- pods, namespaces, media ------------------------------------------- */

static int
pod_is(const struct pod *p, const char *name, size_t n, int has_rank,
       int64_t rank)
{
    return p->name_len == n && memcmp(p->name, name, n) == 0 &&
           p->has_rank == has_rank && (!has_rank || p->rank == rank);
}

static int
pod_ref_matches(const struct pod *p, const struct index_pod_ref *r)
{
    if (r->pod.n != p->name_len || memcmp(r->pod.p, p->name, p->name_len))
        return 0;
    return !r->has_rank || (p->has_rank && p->rank == r->rank);
}

/* Answer order of pods: name bytes, then no rank before ranks, then rank. */
static int
pod_cmp(const struct pod *a, const struct pod *b)
{
    size_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
    int c = memcmp(a->name, b->name, n);

    if (c)
        return c;
    if (a->name_len != b->name_len)
        return a->name_len < b->name_len ? -1 : 1;
    if (a->has_rank != b->has_rank)
        return a->has_rank - b->has_rank;
    return (a->rank > b->rank) - (a->rank < b->rank);
}

static uint32_t
pod_hash(const char *name, size_t n, int has_rank, int64_t rank)
{
    uint64_t h = blockkey_fnv1a64(name, n);

    return (uint32_t)((h ^ (has_rank ? (uint64_t)rank * GOLDEN + 1 : 0)) >> 16);
}

/* Resizes *a to cap elements; *a is unchanged on failure. */
static int
realloc_u32(uint32_t **a, uint32_t cap)
{
    uint32_t *n = realloc(*a, (size_t)cap * sizeof *n);

    if (n == NULL)
        return -1;
    *a = n;
    return 0;
}

/* Grows the pod arrays and the name table for one more pod. */
static int
pods_grow(struct kv_index *ix)
{
    uint32_t cap = ix->pods_cap ? ix->pods_cap * 2 : 8;
    struct pod *p;
    uint32_t *t;

    p = realloc(ix->pods, (size_t)cap * sizeof *p);
    if (p == NULL)
        return -1;
    ix->pods = p;
    if (realloc_u32(&ix->order, cap) || realloc_u32(&ix->by_order, cap) ||
        realloc_u32(&ix->lorder, cap) || realloc_u32(&ix->by_lorder, cap))
        return -1;
    /* The name table stays at most half full. */
    t = malloc((size_t)cap * 2 * sizeof *t);
    if (t == NULL)
        return -1;
    memset(t, 0xff, (size_t)cap * 2 * sizeof *t);
    for (uint32_t i = 0; i < ix->n_pods; i++) {
        const struct pod *q = &ix->pods[i];
        uint32_t j = pod_hash(q->name, q->name_len, q->has_rank, q->rank) &
                     (cap * 2 - 1);

        while (t[j] != NONE)
            j = (j + 1) & (cap * 2 - 1);
        t[j] = i;
    }
    free(ix->pod_tab);
    ix->pod_tab = t;
    ix->pods_cap = cap;
    return 0;
}

static uint32_t
pod_intern(struct kv_index *ix, const char *name, size_t n, int has_rank,
           int64_t rank)
{
    struct pod *p;
    uint32_t j, id, lo, hi;

    rank = has_rank ? rank : 0;
    if (ix->last_pod < ix->n_pods &&
        pod_is(&ix->pods[ix->last_pod], name, n, has_rank, rank))
        return ix->last_pod;
    if (ix->pods_cap) {
        j = pod_hash(name, n, has_rank, rank) & (ix->pods_cap * 2 - 1);
        for (; ix->pod_tab[j] != NONE; j = (j + 1) & (ix->pods_cap * 2 - 1)) {
            if (pod_is(&ix->pods[ix->pod_tab[j]], name, n, has_rank, rank))
                return ix->last_pod = ix->pod_tab[j];
        }
    }
    if (ix->n_pods == ix->pods_cap && pods_grow(ix) != 0)
        return NONE;
    id = ix->n_pods;
    p = &ix->pods[id];
    memset(p, 0, sizeof *p);
    p->name = dup_mem(name, n);
    if (p->name == NULL)
        return NONE;
    p->name_len = n;
    p->has_rank = has_rank;
    p->rank = rank;
    j = pod_hash(name, n, has_rank, rank) & (ix->pods_cap * 2 - 1);
    while (ix->pod_tab[j] != NONE)
        j = (j + 1) & (ix->pods_cap * 2 - 1);
    ix->pod_tab[j] = id;
    /* Insert into the answer order (pods are few and never forgotten). */
    lo = 0;
    hi = id;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;

        if (pod_cmp(&ix->pods[ix->by_order[mid]], p) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    memmove(ix->by_order + lo + 1, ix->by_order + lo,
            (size_t)(id - lo) * sizeof *ix->by_order);
    ix->by_order[lo] = id;
    for (uint32_t k = lo; k <= id; k++)
        ix->order[ix->by_order[k]] = k;
    ix->n_pods++;
    ix->lorder_stale = 1;
    return ix->last_pod = id;
}

static uint32_t
ns_hash(const char *model, size_t mn, const char *lora, size_t ln)
{
    return (uint32_t)((blockkey_fnv1a64(model, mn) ^
                       blockkey_fnv1a64(lora, ln) * GOLDEN) >>
                      20);
}

static int
ns_is(const struct ns *s, const char *model, size_t mn, const char *lora,
      size_t ln)
{
    return s->model_len == mn && s->lora_len == ln &&
           memcmp(s->model, model, mn) == 0 && memcmp(s->lora, lora, ln) == 0;
}

/* A table of namespace ids, 2 * ns_cap slots: engines may serve hundreds of
 * LoRA adapters, and every event looks its namespace up. */
static uint32_t
ns_find(struct kv_index *ix, const char *model, size_t mn, const char *lora,
        size_t ln)
{
    uint32_t mask = ix->ns_cap * 2 - 1, j;

    if (ix->last_ns < ix->n_ns &&
        ns_is(&ix->ns[ix->last_ns], model, mn, lora, ln))
        return ix->last_ns;
    if (ix->n_ns == 0)
        return NONE;
    for (j = ns_hash(model, mn, lora, ln) & mask; ix->ns_tab[j] != NONE;
         j = (j + 1) & mask) {
        if (ns_is(&ix->ns[ix->ns_tab[j]], model, mn, lora, ln))
            return ix->last_ns = ix->ns_tab[j];
    }
    return NONE;
}

static int
ns_grow(struct kv_index *ix)
{
    uint32_t cap = ix->ns_cap ? ix->ns_cap * 2 : 4, mask = cap * 2 - 1;
    struct ns *s = realloc(ix->ns, (size_t)cap * sizeof *s);
    uint32_t *t;

    if (s == NULL)
        return -1;
    ix->ns = s;
    t = malloc((size_t)cap * 2 * sizeof *t);
    if (t == NULL)
        return -1;
    memset(t, 0xff, (size_t)cap * 2 * sizeof *t);
    for (uint32_t i = 0; i < ix->n_ns; i++) {
        uint32_t j =
            ns_hash(s[i].model, s[i].model_len, s[i].lora, s[i].lora_len) &
            mask;

        while (t[j] != NONE)
            j = (j + 1) & mask;
        t[j] = i;
    }
    free(ix->ns_tab);
    ix->ns_tab = t;
    ix->ns_cap = cap;
    return 0;
}

static void
ns_cfg(const struct kv_index *ix, struct blockkey_cfg *c, const char *model,
       size_t mn, const char *lora, size_t ln)
{
    c->scheme = ix->scheme;
    c->seed = ix->seed;
    c->llmd_root = 0;
    if (ix->scheme == BLOCKKEY_LLMD)
        c->llmd_root =
            ln ? blockkey_llmd_root(ix->hash_seed, strlen(ix->hash_seed), lora,
                                    ln)
               : blockkey_llmd_root(ix->hash_seed, strlen(ix->hash_seed), model,
                                    mn);
}

static uint32_t
ns_create(struct kv_index *ix, const char *model, size_t mn, const char *lora,
          size_t ln, uint32_t block_size)
{
    struct ns *s;
    uint32_t mask, j;

    if (ix->n_ns == ix->ns_cap && ns_grow(ix) != 0)
        return NONE;
    s = &ix->ns[ix->n_ns];
    memset(s, 0, sizeof *s);
    s->model = dup_mem(model, mn);
    s->lora = dup_mem(lora, ln);
    if (s->model == NULL || s->lora == NULL) {
        free(s->model);
        free(s->lora);
        return NONE;
    }
    s->model_len = mn;
    s->lora_len = ln;
    s->block_size = block_size;
    ns_cfg(ix, &s->cfg, model, mn, lora, ln);
    mask = ix->ns_cap * 2 - 1;
    j = ns_hash(model, mn, lora, ln) & mask;
    while (ix->ns_tab[j] != NONE)
        j = (j + 1) & mask;
    ix->ns_tab[j] = ix->n_ns;
    return ix->last_ns = ix->n_ns++;
}

static int
medium_find(const struct kv_index *ix, const char *name, size_t n)
{
    for (int i = 0; i < ix->n_media; i++) {
        if (strlen(ix->media[i]) == n && memcmp(ix->media[i], name, n) == 0)
            return i;
    }
    return -1;
}

int
index_medium_intern(struct kv_index *ix, const char *name, size_t n)
{
    int i = medium_find(ix, name, n);

    if (i >= 0)
        return i;
    if (ix->n_media == MAX_MEDIA || memchr(name, '\0', n))
        return -1;
    ix->media[ix->n_media] = dup_mem(name, n);
    if (ix->media[ix->n_media] == NULL)
        return -1;
    return ix->n_media++;
}

const char *
index_default_model(const struct kv_index *ix)
{
    return ix->default_model;
}

const char *
index_medium_name(const struct kv_index *ix, int bit)
{
    if (bit < 0 || bit >= ix->n_media)
        return NULL;
    return ix->media[bit];
}

/* ---- lifetime ---------------------------------------------------------- */

struct kv_index *
index_new(const struct index_opts *o, char *err, size_t errlen)
{
    struct kv_index *ix;
    const char *hs = o->hash_seed ? o->hash_seed : "";
    const char *dm = o->default_model ? o->default_model : "";

    if ((unsigned)o->scheme > BLOCKKEY_LLMD) {
        snprintf(err, errlen, "unknown block-key scheme %d", (int)o->scheme);
        return NULL;
    }
    ix = calloc(1, sizeof *ix);
    if (ix == NULL)
        goto nomem;
    ix->scheme = o->scheme;
    ix->seed = o->seed;
    ix->max_blocks = o->max_blocks;
    ix->orphan_alarm = NONE;
    ix->hash_seed = dup_mem(hs, strlen(hs));
    ix->default_model = dup_mem(dm, strlen(dm));
    ix->free_head = ix->lru_old = ix->lru_new = NONE;
    if (ix->hash_seed == NULL || ix->default_model == NULL ||
        index_medium_intern(ix, "GPU", 3) != 0)
        goto nomem;
    return ix;
nomem:
    index_free(ix);
    snprintf(err, errlen, "out of memory");
    return NULL;
}

void
index_free(struct kv_index *ix)
{
    if (ix == NULL)
        return;
    for (uint32_t i = 0; i < ix->n_pods; i++) {
        free(ix->pods[i].name);
        big_free(ix->pods[i].map.slot,
                 (size_t)ix->pods[i].map.cap * sizeof(uint64_t));
    }
    for (uint32_t i = 0; i < ix->n_ns; i++) {
        free(ix->ns[i].model);
        free(ix->ns[i].lora);
    }
    for (int i = 0; i < ix->n_media; i++)
        free(ix->media[i]);
    free(ix->pods);
    free(ix->ns);
    free(ix->ns_tab);
    pool_free(ix);
    big_free(ix->ks, (size_t)ix->ks_cap * sizeof *ix->ks);
    free(ix->qkeys);
    free(ix->qslots);
    free(ix->tok);
    free(ix->active);
    free(ix->sortk);
    free(ix->order);
    free(ix->by_order);
    free(ix->lorder);
    free(ix->by_lorder);
    free(ix->pod_tab);
    free(ix->hash_seed);
    free(ix->default_model);
    free(ix);
}

/* ---- applying events --------------------------------------------------- */

static int
has_value(const struct kv_event *ev, enum kv_field f)
{
    return (ev->present & KV_BIT(f)) && !(ev->isnull & KV_BIT(f));
}

/*
 * The event's LoRA: lora_name when non-empty, else lora_id in decimal (older
 * engines), else the base model ("").
 */
static size_t
event_lora(const struct kv_event *ev, char *buf, size_t cap, const char **out)
{
    if (has_value(ev, KV_F_LORA_NAME) && ev->str[KV_F_LORA_NAME].n) {
        *out = ev->str[KV_F_LORA_NAME].p;
        return ev->str[KV_F_LORA_NAME].n;
    }
    if (has_value(ev, KV_F_LORA_ID)) {
        assert(cap >= 21);
        *out = buf;
        return fmt_i64(buf, ev->num[KV_F_LORA_ID]);
    }
    *out = "";
    return 0;
}

/* Clears every entry of pod p; returns how many went. */
static uint64_t
clear_pod(struct kv_index *ix, uint32_t p)
{
    struct emap *m = &ix->pods[p].map;
    uint64_t n = 0;

    for (uint32_t i = 0; i < m->cap; i++) {
        if (m->slot[i] != EM_EMPTY) {
            entry_drop(ix, em_id(m, i));
            n++;
        }
    }
    big_free(m->slot, (size_t)m->cap * sizeof *m->slot);
    memset(m, 0, sizeof *m);
    return n;
}

/* The token of each position: SGLang bigram pages carry [a, b] pairs, of
 * which the first token is the position's token. */
static const uint32_t *
event_tokens(struct kv_index *ix, const struct kv_event *ev)
{
    if (!ev->token_pairs)
        return ev->tokens;
    if (ev->n_tokens > ix->tok_cap) {
        uint32_t *t = realloc(ix->tok, ev->n_tokens * sizeof *t);

        if (t == NULL)
            return NULL;
        ix->tok = t;
        ix->tok_cap = ev->n_tokens;
    }
    for (size_t i = 0; i < ev->n_tokens; i++)
        ix->tok[i] = ev->tokens[2 * i];
    return ix->tok;
}

/*
 * Stores up to STORE_CHUNK blocks of one event in three passes, so that the
 * cache misses of a chunk overlap instead of queueing: prefetch the engine
 * map slots; resolve each block (already mapped, a repeat of an earlier
 * block of the chunk, or new: hash its key and prefetch its key slot); then
 * link.  The result is that of storing block by block: a mapped hash is a
 * re-store (adds the medium) and the chain goes on from its key.
 */
static void
store_chunk(struct kv_index *ix, uint32_t p, uint32_t nsid,
            const struct kv_hash *hs, size_t n, const uint32_t *tok,
            uint32_t bs, uint32_t media, uint64_t *parent, int *has_parent)
{
    enum { OLD, NEW, REPEAT };
    struct pod *pod = &ix->pods[p];
    uint64_t keys[STORE_CHUNK];
    uint32_t ids[STORE_CHUNK];
    uint8_t kind[STORE_CHUNK];

    for (size_t i = 0; i < n; i++)
        em_prefetch(&pod->map, hs[i].v);
    for (size_t i = 0; i < n; i++) {
        uint32_t s = em_find(ix, &pod->map, hs[i].v);

        if (s != NONE) {
            kind[i] = OLD;
            ids[i] = em_id(&pod->map, s);
            keys[i] = ix->ks[ix->ent[ids[i]].key_slot].key;
        } else {
            kind[i] = NEW;
            for (size_t j = 0; j < i; j++) {
                if (hs[j].v == hs[i].v) {
                    kind[i] = REPEAT;
                    ids[i] = (uint32_t)j;
                    keys[i] = keys[j];
                    break;
                }
            }
            if (kind[i] == NEW) {
                keys[i] = blockkey_next(&ix->ns[nsid].cfg,
                                        *has_parent ? parent : NULL,
                                        tok + i * bs, bs);
                __builtin_prefetch(&ix->ks[ks_home(ix, nsid, keys[i])]);
            }
        }
        *parent = keys[i];
        *has_parent = 1;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t id, slot;

        if (kind[i] != NEW) {
            id = kind[i] == OLD ? ids[i] : ids[ids[i]];
            ix->ent[id].media |= media;
            lru_touch(ix, id);
            continue;
        }
        slot = ks_get(ix, nsid, keys[i]);
        id = ent_take(ix);
        ix->ent[id] = (struct entry){
            .engine_hash = hs[i].v, .key_slot = slot, .pod = p, .media = media};
        holder_insert(ix, slot, id);
        lru_push_new(ix, id);
        em_insert(ix, &pod->map, id);
        pod->blocks++;
        ids[i] = id;
    }
    ix->lorder_stale = 1;
}

/*
 * Counts an orphaned store of pod p.  Past the threshold the pod is
 * degraded: it has missed the stores its engine chains on (it joined
 * mid-stream, or lost events without a gap record), so its answers can be
 * short, and the caller is told once per run (index_orphan_alarm).
 */
static void
pod_orphaned(struct kv_index *ix, uint32_t p)
{
    struct pod *pod = &ix->pods[p];

    pod->orphans++;
    if (ix->degraded_orphans && ++pod->orphan_run == ix->degraded_orphans + 1) {
        pod->degraded = 1;
        ix->orphan_alarm = p;
    }
}

static enum index_reject
apply_stored(struct kv_index *ix, uint32_t p, const struct kv_env *env,
             const struct kv_event *ev)
{
    struct pod *pod = &ix->pods[p];
    char lbuf[24];
    const char *model, *lora;
    size_t mn, ln;
    int64_t bs64;
    uint32_t bs, nsid;
    uint64_t parent = 0;
    int has_parent = 0, bit = 0;
    const uint32_t *tok;

    if (!has_value(ev, KV_F_BLOCK_HASHES) || !has_value(ev, KV_F_TOKEN_IDS) ||
        !has_value(ev, KV_F_BLOCK_SIZE))
        return INDEX_REJ_INVALID;
    bs64 = ev->num[KV_F_BLOCK_SIZE];
    if (bs64 <= 0 || bs64 > UINT32_MAX)
        return INDEX_REJ_INVALID;
    bs = (uint32_t)bs64;
    if (env->model.p) {
        model = env->model.p;
        mn = env->model.n;
    } else {
        model = ix->default_model;
        mn = strlen(model);
    }
    ln = event_lora(ev, lbuf, sizeof lbuf, &lora);
    nsid = ns_find(ix, model, mn, lora, ln);
    if (nsid != NONE && ix->ns[nsid].block_size != bs)
        return INDEX_REJ_BLOCK_SIZE;
    if (ev->n_tokens / bs != ev->n_hashes || ev->n_tokens % bs) {
        pod->misaligned++;
        return INDEX_REJ_MISALIGNED;
    }
    /* The parent's and the first blocks' engine-map slots miss the cache
     * together rather than one after the other. */
    for (size_t i = 0; i < ev->n_hashes && i < STORE_CHUNK; i++)
        em_prefetch(&pod->map, ev->hashes[i].v);
    if (has_value(ev, KV_F_PARENT_BLOCK_HASH)) {
        uint32_t s = em_find(ix, &pod->map, ev->parent.v);

        if (s == NONE) {
            pod_orphaned(ix, p);
            return INDEX_REJ_ORPHAN;
        }
        parent = ix->ks[ix->ent[em_id(&pod->map, s)].key_slot].key;
        has_parent = 1;
    }
    if (has_value(ev, KV_F_MEDIUM) && ev->str[KV_F_MEDIUM].n) {
        bit = index_medium_intern(ix, ev->str[KV_F_MEDIUM].p,
                                  ev->str[KV_F_MEDIUM].n);
        if (bit < 0)
            return INDEX_REJ_INVALID;
    }
    if (nsid == NONE) {
        nsid = ns_create(ix, model, mn, lora, ln, bs);
        if (nsid == NONE)
            return INDEX_REJ_NOMEM;
    }
    tok = event_tokens(ix, ev);
    if ((ev->n_tokens && tok == NULL) || ent_reserve(ix, ev->n_hashes) ||
        ks_reserve(ix, ev->n_hashes) || em_reserve(&pod->map, ev->n_hashes))
        return INDEX_REJ_NOMEM;
    for (size_t c0 = 0; c0 < ev->n_hashes; c0 += STORE_CHUNK) {
        size_t n =
            ev->n_hashes - c0 < STORE_CHUNK ? ev->n_hashes - c0 : STORE_CHUNK;

        store_chunk(ix, p, nsid, ev->hashes + c0, n, tok + c0 * bs, bs,
                    1u << bit, &parent, &has_parent);
    }
    evict(ix);
    return INDEX_REJ_NONE;
}

static void
apply_removed(struct kv_index *ix, uint32_t p, const struct kv_event *ev)
{
    struct pod *pod = &ix->pods[p];
    uint32_t mask = UINT32_MAX;

    if (has_value(ev, KV_F_MEDIUM) && ev->str[KV_F_MEDIUM].n) {
        int bit =
            medium_find(ix, ev->str[KV_F_MEDIUM].p, ev->str[KV_F_MEDIUM].n);

        /* A medium nobody stored holds nothing to remove. */
        mask = bit < 0 ? 0 : 1u << bit;
    }
    for (size_t i = 0; i < ev->n_hashes; i++) {
        uint32_t s = em_find(ix, &pod->map, ev->hashes[i].v), id;

        if (s == NONE) {
            ix->unknown_removed++;
            continue;
        }
        id = em_id(&pod->map, s);
        ix->ent[id].media &= ~mask;
        if (ix->ent[id].media == 0) {
            entry_drop(ix, id);
            em_delete_slot(&pod->map, s);
        }
    }
}

/* Notes that pod p was named by an event at env's seq and ts. */
static void
pod_seen(struct kv_index *ix, struct pod *pod, const struct kv_env *env)
{
    pod->has_event_at = 1;
    pod->event_at = ix->clock;
    if (env->has_seq) {
        pod->has_seq = 1;
        pod->last_seq = env->seq;
    }
    if (env->has_ts) {
        pod->has_ts = 1;
        pod->last_ts = env->ts;
    }
}

/*
 * gap and restart for one pod: a restart empties it like AllBlocksCleared,
 * a gap marks it degraded until then.
 */
static void
apply_record(struct kv_index *ix, uint32_t p, enum kv_type t)
{
    if (t == KV_GAP) {
        ix->pods[p].degraded = 1;
    } else {
        clear_pod(ix, p);
        ix->pods[p].degraded = 0;
        ix->pods[p].orphan_run = 0;
    }
}

/*
 * A gap or restart record whose dp_rank is unknown (kvsub writes null when
 * it lost the batch that would tell) concerns every rank of the pod: each
 * rank is its own stream, but the record cannot say which, and holding a
 * stale rank is worse than re-learning one.  With no such pod yet, the
 * record names (pod, null).
 */
static int
apply_unranked(struct kv_index *ix, const struct kv_env *env,
               const struct kv_event *ev, struct kv_str name)
{
    struct index_pod_ref ref = {name, 0, 0};
    int found = 0;

    for (uint32_t p = 0; p < ix->n_pods; p++) {
        if (pod_ref_matches(&ix->pods[p], &ref)) {
            pod_seen(ix, &ix->pods[p], env);
            apply_record(ix, p, ev->type);
            found = 1;
        }
    }
    return found;
}

int
index_apply(struct kv_index *ix, const struct kv_env *env,
            const struct kv_event *ev, enum index_reject *why)
{
    enum index_reject r = INDEX_REJ_NONE;
    struct kv_str name = {"-", 1};
    uint32_t p;

    *why = INDEX_REJ_NONE;
    ix->orphan_alarm = NONE;
    if (ev->type != KV_BLOCK_STORED && ev->type != KV_BLOCK_REMOVED &&
        ev->type != KV_ALL_BLOCKS_CLEARED && ev->type != KV_GAP &&
        ev->type != KV_RESTART)
        return 0;
    if (env->pod.p)
        name = env->pod;
    if ((ev->type == KV_GAP || ev->type == KV_RESTART) && !env->has_rank &&
        apply_unranked(ix, env, ev, name))
        goto done;
    p = pod_intern(ix, name.p, name.n, env->has_rank, env->rank);
    if (p == NONE) {
        r = INDEX_REJ_NOMEM;
        goto done;
    }
    pod_seen(ix, &ix->pods[p], env);
    switch (ev->type) {
    case KV_BLOCK_STORED:
        r = apply_stored(ix, p, env, ev);
        break;
    case KV_BLOCK_REMOVED:
        if (!has_value(ev, KV_F_BLOCK_HASHES))
            r = INDEX_REJ_INVALID;
        else
            apply_removed(ix, p, ev);
        break;
    case KV_ALL_BLOCKS_CLEARED:
        apply_record(ix, p, KV_RESTART);
        break;
    default:
        apply_record(ix, p, ev->type);
        break;
    }
done:
    compact(ix);
    if (r != INDEX_REJ_NONE) {
        ix->rejected[r]++;
        *why = r;
        return -1;
    }
    ix->applied[ev->type]++;
    return 0;
}

uint64_t
index_clear_pod(struct kv_index *ix, const struct index_pod_ref *ref)
{
    uint64_t n = 0;

    for (uint32_t p = 0; p < ix->n_pods; p++) {
        if (pod_ref_matches(&ix->pods[p], ref))
            n += clear_pod(ix, p);
    }
    compact(ix);
    return n;
}

void
index_set_degraded_orphans(struct kv_index *ix, uint64_t n)
{
    ix->degraded_orphans = n;
}

void
index_set_clock(struct kv_index *ix, double now)
{
    ix->clock = now;
}

int
index_orphan_alarm(const struct kv_index *ix, struct index_pod_info *out)
{
    if (ix->orphan_alarm == NONE)
        return 0;
    return index_pod_info(ix, ix->orphan_alarm, out) == 0;
}

/* ---- queries ----------------------------------------------------------- */

/*
 * Appends ", NAME" (quoted, the first without the comma) to err at *len
 * while it fits with room for the " and N more" that list_more adds.
 * Returns 0 when it did not fit.
 */
static int
list_name(char *err, size_t errlen, size_t *len, int first, const char *name)
{
    int n;

    if (*len + 24 >= errlen)
        return 0;
    n = snprintf(err + *len, errlen - *len - 20, "%s\"%s\"", first ? "" : ", ",
                 name);
    if (n < 0 || (size_t)n >= errlen - *len - 20) {
        err[*len] = '\0';
        return 0;
    }
    *len += (size_t)n;
    return 1;
}

/* Whether namespace s belongs to the model m[0..mn). */
static int
ns_of_model(const struct ns *s, const char *m, size_t mn)
{
    return s->model_len == mn && memcmp(s->model, m, mn) == 0;
}

/*
 * Lists the distinct models the index knows, or with model set the LoRAs
 * of the model model[0..mn), after the text already in err (len bytes).
 * Returns how many.
 */
static size_t
list_known(const struct kv_index *ix, const char *model, size_t mn, char *err,
           size_t errlen, size_t len)
{
    size_t listed = 0, more = 0;

    for (uint32_t i = 0; i < ix->n_ns; i++) {
        const struct ns *s = &ix->ns[i];
        const char *name = model ? s->lora : s->model;
        int dup = 0;

        if (model != NULL && (!ns_of_model(s, model, mn) || s->lora_len == 0))
            continue;
        for (uint32_t k = 0; k < i && !model && !dup; k++)
            dup = ns_of_model(&ix->ns[k], s->model, s->model_len);
        if (dup)
            continue;
        if (more || !list_name(err, errlen, &len, listed == 0, name))
            more++;
        else
            listed++;
    }
    if (more)
        snprintf(err + len, errlen - len, " and %zu more", more);
    return listed + more;
}

int
index_ns_check(struct kv_index *ix, struct kv_str model, struct kv_str lora,
               char *err, size_t errlen)
{
    const char *m = model.p ? model.p : ix->default_model;
    size_t mn = model.p ? model.n : strlen(ix->default_model);
    size_t ln = lora.p ? lora.n : 0, len;
    int known_model = 0;
    char name[256];

    if (ns_find(ix, m, mn, ln ? lora.p : "", ln) != NONE)
        return 0;
    /* Names are compared whole and shown cut to 200 bytes. */
    snprintf(name, sizeof name, "%.*s", (int)(mn > 200 ? 200 : mn), m);
    for (uint32_t i = 0; i < ix->n_ns && !known_model; i++)
        known_model = ns_of_model(&ix->ns[i], m, mn);
    if (!known_model) {
        snprintf(err, errlen, "unknown model \"%s\"; %s", name,
                 ix->n_ns ? "known models: "
                          : "the index has seen no model yet");
        list_known(ix, NULL, 0, err, errlen, strlen(err));
    } else if (ln == 0) {
        snprintf(
            err, errlen,
            "model \"%s\" has no blocks without a LoRA; its LoRAs: ", name);
        list_known(ix, m, mn, err, errlen, strlen(err));
    } else {
        snprintf(err, errlen, "unknown LoRA \"%.*s\" of model \"%s\"; ",
                 (int)(ln > 200 ? 200 : ln), lora.p, name);
        len = strlen(err);
        snprintf(err + len, errlen - len, "its LoRAs: ");
        if (list_known(ix, m, mn, err, errlen, strlen(err)) == 0)
            snprintf(err + len, errlen - len, "it has blocks of no LoRA");
    }
    return -1;
}

static int
scratch_keys(struct kv_index *ix, size_t n)
{
    if (n <= ix->q_cap)
        return 0;
    uint64_t *k = realloc(ix->qkeys, n * sizeof *k);
    if (k == NULL)
        return -1;
    ix->qkeys = k;
    uint32_t *s = realloc(ix->qslots, n * sizeof *s);
    if (s == NULL)
        return -1;
    ix->qslots = s;
    ix->q_cap = n;
    return 0;
}

static int
scratch_active(struct kv_index *ix)
{
    uint32_t *a;
    uint64_t *k;

    if (ix->n_pods <= ix->active_cap)
        return 0;
    a = realloc(ix->active, (size_t)ix->n_pods * sizeof *a);
    if (a == NULL)
        return -1;
    ix->active = a;
    k = realloc(ix->sortk, (size_t)ix->n_pods * sizeof *k);
    if (k == NULL)
        return -1;
    ix->sortk = k;
    ix->active_cap = ix->n_pods;
    return 0;
}

/* The namespace a query names, or NONE; also returns its names. */
static uint32_t
query_ns(struct kv_index *ix, const struct index_query *q, const char **model,
         size_t *mn, const char **lora, size_t *ln)
{
    if (q->model.p) {
        *model = q->model.p;
        *mn = q->model.n;
    } else {
        *model = ix->default_model;
        *mn = strlen(*model);
    }
    *lora = q->lora_name.p && q->lora_name.n ? q->lora_name.p : "";
    *ln = q->lora_name.p ? q->lora_name.n : 0;
    return ns_find(ix, *model, *mn, *lora, *ln);
}

int
index_keys(struct kv_index *ix, const struct index_query *q, uint64_t **keys,
           size_t *n_keys, char *err, size_t errlen)
{
    const char *model, *lora;
    size_t mn, ln, n;
    uint32_t nsid = query_ns(ix, q, &model, &mn, &lora, &ln);
    uint32_t bs = nsid != NONE ? ix->ns[nsid].block_size : q->block_size;
    struct blockkey_cfg c;
    uint64_t *out;

    *keys = NULL;
    *n_keys = 0;
    /* With a block size given, the keys are a function of the tokens alone
     * and the caller asked for exactly that. */
    if (nsid == NONE && bs == 0) {
        size_t len;

        index_ns_check(ix, q->model, q->lora_name, err, errlen);
        len = strlen(err);
        snprintf(err + len, errlen - len,
                 "; give block_size to compute keys anyway");
        return -1;
    }
    if (nsid != NONE)
        c = ix->ns[nsid].cfg;
    else
        ns_cfg(ix, &c, model, mn, lora, ln);
    n = q->n_tokens / bs;
    out = malloc((n ? n : 1) * sizeof *out);
    if (out == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    *n_keys = blockkey_chain(&c, NULL, q->tokens, q->n_tokens, bs, out);
    *keys = out;
    return 0;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return (x > y) - (x < y);
}

/* Shell sort (Ciura's gaps) for the few dozen answers of a match, where
 * qsort's calls and insertion sort's moves both cost more. */
static void
sort_u64(uint64_t *a, size_t n)
{
    static const size_t gaps[] = {57, 23, 10, 4, 1};

    if (n > 512) {
        qsort(a, n, sizeof *a, cmp_u64);
        return;
    }
    for (size_t g = 0; g < sizeof gaps / sizeof gaps[0]; g++) {
        size_t gap = gaps[g];

        for (size_t i = gap; i < n; i++) {
            uint64_t v = a[i];
            size_t j = i;

            for (; j >= gap && a[j - gap] > v; j -= gap)
                a[j] = a[j - gap];
            a[j] = v;
        }
    }
}

/* Marks the LRU: every entry on a matched run was just used. */
static void
match_touch(struct kv_index *ix, size_t depth)
{
    for (size_t i = 0; i < depth; i++) {
        uint32_t e = ix->ks[ix->qslots[i]].head;

        while (e != NONE) {
            const struct pod *p = &ix->pods[ix->ent[e].pod];
            uint32_t next = ix->ent[e].next_holder;

            if (p->stamp == ix->gen && p->depth > i)
                lru_touch(ix, e);
            e = next;
        }
    }
}

/* The union of media along each matched run: one walk of the holders of
 * every block up to the deepest run. */
static void
match_media(struct kv_index *ix, size_t depth)
{
    for (size_t i = 0; i < depth; i++) {
        for (uint32_t e = ix->ks[ix->qslots[i]].head; e != NONE;
             e = ix->ent[e].next_holder) {
            struct pod *p = &ix->pods[ix->ent[e].pod];

            if (p->stamp == ix->gen && p->depth > i)
                p->media |= ix->ent[e].media;
        }
    }
}

/*
 * The query's keys: given, or hashed from its tokens only as far as the walk
 * gets (plus the prefetch distance), so a prompt that misses at block 0
 * costs a few hashes, not all of them.
 */
struct qkeys {
    struct kv_index *ix;
    uint32_t nsid;
    const uint64_t *k;
    uint64_t *buf; /* where hashed keys go; NULL when given */
    size_t have, n;
    const uint32_t *tokens;
    uint32_t bs;
};

/* Blocks probed ahead of the one being looked at. */
#define PREFETCH_AHEAD 16

static inline uint64_t
qkey(struct qkeys *q, size_t i)
{
    while (q->have <= i) {
        size_t j = q->have;

        q->buf[j] =
            blockkey_next(&q->ix->ns[q->nsid].cfg, j ? &q->buf[j - 1] : NULL,
                          q->tokens + j * q->bs, q->bs);
        q->have++;
    }
    return q->k[i];
}

static inline void
qprefetch(struct qkeys *q, size_t i)
{
    if (i < q->n)
        __builtin_prefetch(&q->ix->ks[ks_home(q->ix, q->nsid, qkey(q, i))]);
}

/* Records that pod p's run ends at depth d (d > 0). */
static void
match_hit(struct kv_index *ix, uint32_t p, size_t d, size_t *n_active)
{
    ix->pods[p].stamp = ix->gen;
    ix->pods[p].depth = (uint32_t)d;
    ix->active[(*n_active)++] = p;
}

/*
 * Follows every candidate pod's run.  Pods 0..62 cost one AND per block
 * (the key's bitmap); later pods are found by walking the holders of the
 * keys that have any (HI_BIT), and only while one of them is still on its
 * run.  A pod's depth is the block at which it drops out.  Returns the
 * deepest run.
 */
static size_t
match_run(struct kv_index *ix, struct qkeys *q, uint64_t allow, int filtered,
          size_t *n_active)
{
    uint64_t active = allow;
    size_t i, hi = 0, max = 0;
    int hi_pods = ix->n_pods > LO_PODS;

    for (i = 0; i < PREFETCH_AHEAD; i++)
        qprefetch(q, i);
    for (i = 0; i < q->n && (active || hi || (i == 0 && hi_pods)); i++) {
        uint32_t slot;
        uint64_t bits, gone;

        qprefetch(q, i + PREFETCH_AHEAD);
        slot = ks_find(ix, q->nsid, qkey(q, i));
        bits = slot == NONE ? 0 : ix->ks[slot].pods;
        ix->qslots[i] = slot;
        for (gone = active & ~bits; i > 0 && gone; gone &= gone - 1)
            match_hit(ix, (uint32_t)__builtin_ctzll(gone), i, n_active);
        active &= bits;
        if ((bits & HI_BIT) && (hi || i == 0)) {
            hi = 0;
            for (uint32_t e = ix->ks[slot].head; e != NONE;
                 e = ix->ent[e].next_holder) {
                uint32_t pid = ix->ent[e].pod;
                struct pod *p = &ix->pods[pid];

                if (pid < LO_PODS)
                    break; /* the rest are below: holder_insert */
                if (i == 0) {
                    if (filtered && p->allow != ix->gen)
                        continue;
                    if (p->stamp != ix->gen)
                        match_hit(ix, pid, 0, n_active);
                } else if (p->stamp != ix->gen) {
                    continue;
                }
                if (p->depth == i) {
                    p->depth = (uint32_t)i + 1;
                    hi++;
                }
            }
        } else {
            hi = 0;
        }
        if (active || hi)
            max = i + 1;
    }
    for (; active; active &= active - 1)
        match_hit(ix, (uint32_t)__builtin_ctzll(active), i, n_active);
    return max;
}

/*
 * Rebuilds the answer order of the pods (lorder, by_lorder: fewest blocks,
 * then name order) when a store or removal changed it since the last
 * match.  Uses sortk, which scratch_active made big enough.  A pod's blocks
 * fit 32 bits because entry ids do.
 */
static void
lorder_refresh(struct kv_index *ix)
{
    if (!ix->lorder_stale)
        return;
    for (uint32_t k = 0; k < ix->n_pods; k++)
        ix->sortk[k] = ix->pods[ix->by_order[k]].blocks << 32 | k;
    sort_u64(ix->sortk, ix->n_pods);
    for (uint32_t k = 0; k < ix->n_pods; k++) {
        uint32_t id = ix->by_order[(uint32_t)ix->sortk[k]];

        ix->by_lorder[k] = id;
        ix->lorder[id] = k;
    }
    ix->lorder_stale = 0;
}

/*
 * Puts the n answers (sortk: depth descending, then the answer order of
 * lorder_refresh, one integer per pod) in order.  Most answers share a few
 * depths (a common prefix, then each pod's own run), so when they are many, one
 * walk of the pods in answer order per distinct depth does it without
 * comparisons; with many distinct depths, sort.
 */
static void
match_order(struct kv_index *ix, size_t n, size_t n_active)
{
    uint32_t prev = UINT32_MAX;
    size_t out = 0;

    if (n < 16 || n * 2 < ix->n_pods) {
        sort_u64(ix->sortk, n);
        return;
    }
    for (int pass = 0; pass < 4 && out < n; pass++) {
        uint32_t cur = 0;

        for (size_t k = 0; k < n_active; k++) {
            uint32_t d = ix->pods[ix->active[k]].depth;

            if (d < prev && d > cur)
                cur = d;
        }
        if (cur == 0)
            break;
        for (uint32_t k = 0; k < ix->n_pods; k++) {
            const struct pod *p = &ix->pods[ix->by_lorder[k]];

            if (p->stamp == ix->gen && p->depth == cur)
                ix->sortk[out++] = (uint64_t)(UINT32_MAX - cur) << 32 | k;
        }
        prev = cur;
    }
    if (out == n)
        return;
    n = 0;
    for (size_t k = 0; k < n_active; k++) {
        uint32_t id = ix->active[k];

        if (ix->pods[id].depth)
            ix->sortk[n++] = (uint64_t)(UINT32_MAX - ix->pods[id].depth) << 32 |
                             ix->lorder[id];
    }
    sort_u64(ix->sortk, n);
}

int
index_match(struct kv_index *ix, const struct index_query *q,
            struct index_match_result *out, char *err, size_t errlen)
{
    const char *model, *lora;
    size_t mn, ln, nkeys, n_active = 0, depth, n = 0;
    uint32_t nsid = query_ns(ix, q, &model, &mn, &lora, &ln);
    struct qkeys qk;
    uint64_t allow = 0;

    out->n = 0;
    out->blocks = 0;
    out->block_size = nsid != NONE ? ix->ns[nsid].block_size : q->block_size;
    ix->matches++;
    if (q->keys) {
        nkeys = q->n_keys;
    } else {
        nkeys = out->block_size ? q->n_tokens / out->block_size : 0;
    }
    out->blocks = nkeys;
    if (nsid == NONE)
        return index_ns_check(ix, q->model, q->lora_name, err, errlen);
    if (nkeys == 0 || ix->ks_cap == 0)
        return 0;
    if (scratch_keys(ix, nkeys) || scratch_active(ix)) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    qk = (struct qkeys){.ix = ix,
                        .nsid = nsid,
                        .k = q->keys ? q->keys : ix->qkeys,
                        .buf = q->keys ? NULL : ix->qkeys,
                        .have = q->keys ? nkeys : 0,
                        .n = nkeys,
                        .tokens = q->tokens,
                        .bs = out->block_size};
    if (++ix->gen == 0) {
        /* The stamp wrapped: old stamps could look current. */
        for (uint32_t p = 0; p < ix->n_pods; p++)
            ix->pods[p].stamp = ix->pods[p].allow = 0;
        ix->gen = 1;
    }
    if (q->pods) {
        for (size_t r = 0; r < q->n_pods; r++) {
            for (uint32_t p = 0; p < ix->n_pods; p++) {
                if (pod_ref_matches(&ix->pods[p], &q->pods[r])) {
                    ix->pods[p].allow = ix->gen;
                    allow |= pod_bit(p) & ~HI_BIT;
                }
            }
        }
    } else {
        allow = ix->n_pods >= LO_PODS ? ~HI_BIT : (1ull << ix->n_pods) - 1;
    }
    lorder_refresh(ix);
    depth = match_run(ix, &qk, allow, q->pods != NULL, &n_active);
    for (size_t i = 0; i < n_active; i++) {
        struct pod *p = &ix->pods[ix->active[i]];

        /* With one medium ever seen, every run is on it. */
        p->media = ix->n_media > 1 ? 0 : 1;
        if (p->depth)
            ix->sortk[n++] = (uint64_t)(UINT32_MAX - p->depth) << 32 |
                             ix->lorder[ix->active[i]];
    }
    if (ix->n_media > 1)
        match_media(ix, depth);
    if (out->cap < n) {
        struct index_match *m = realloc(out->m, n * sizeof *m);

        if (m == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        out->m = m;
        out->cap = n;
    }
    match_order(ix, n, n_active);
    for (size_t i = 0; i < n; i++) {
        uint32_t id = ix->by_lorder[(uint32_t)ix->sortk[i]];
        const struct pod *p = &ix->pods[id];

        out->m[i] = (struct index_match){
            .pod = p->name,
            .has_rank = p->has_rank,
            .rank = p->rank,
            .depth = p->depth,
            .media = p->media,
            .degraded = p->degraded,
        };
    }
    out->n = n;
    if (ix->max_blocks && depth)
        match_touch(ix, depth);
    return 0;
}

void
index_match_result_free(struct index_match_result *r)
{
    if (r == NULL)
        return;
    free(r->m);
    r->m = NULL;
    r->n = r->cap = 0;
}

/* ---- introspection ----------------------------------------------------- */

/* What a table of n bytes from big_alloc occupies: mapped ones take whole
 * pages. */
static uint64_t
big_size(size_t n)
{
    return n < BIG ? n : big_round(n);
}

/*
 * Every heap byte the index owns, table by table, in the order of struct
 * kv_index (index_free frees the same list): the requested sizes, so malloc's
 * own chunk headers are not included (test_index.c holds this against
 * mallinfo2 with that tolerance).
 */
static uint64_t
index_bytes(const struct kv_index *ix)
{
    uint64_t bytes = sizeof *ix;

    bytes += strlen(ix->hash_seed) + 1 + strlen(ix->default_model) + 1;
    bytes += big_size((size_t)ix->ent_cap * sizeof *ix->ent);
    bytes += big_size((size_t)ix->lru_cap * sizeof *ix->lru);
    bytes += big_size((size_t)ix->ks_cap * sizeof *ix->ks);
    bytes += (uint64_t)ix->pods_cap * sizeof *ix->pods;
    for (uint32_t i = 0; i < ix->n_pods; i++)
        bytes += ix->pods[i].name_len + 1 +
                 big_size((size_t)ix->pods[i].map.cap *
                          sizeof *ix->pods[i].map.slot);
    bytes += (uint64_t)ix->ns_cap * sizeof *ix->ns;
    bytes += (uint64_t)ix->ns_cap * 2 * sizeof *ix->ns_tab;
    for (uint32_t i = 0; i < ix->n_ns; i++)
        bytes += ix->ns[i].model_len + ix->ns[i].lora_len + 2;
    for (int i = 0; i < ix->n_media; i++)
        bytes += strlen(ix->media[i]) + 1;
    bytes += ix->q_cap * (sizeof *ix->qkeys + sizeof *ix->qslots);
    bytes += ix->tok_cap * sizeof *ix->tok;
    bytes += ix->active_cap * (sizeof *ix->active + sizeof *ix->sortk);
    bytes += (uint64_t)ix->pods_cap *
             (sizeof *ix->order + sizeof *ix->by_order + sizeof *ix->lorder +
              sizeof *ix->by_lorder + 2 * sizeof *ix->pod_tab);
    return bytes;
}

void
index_stats(const struct kv_index *ix, struct index_stats *out)
{
    memset(out, 0, sizeof *out);
    out->namespaces = ix->n_ns;
    out->keys = ix->ks_n;
    out->entries = ix->n_live;
    out->pods = ix->n_pods;
    memcpy(out->applied, ix->applied, sizeof out->applied);
    memcpy(out->rejected, ix->rejected, sizeof out->rejected);
    out->unknown_removed = ix->unknown_removed;
    out->max_blocks_dropped = ix->max_blocks_dropped;
    out->matches = ix->matches;
    out->bytes_used = index_bytes(ix);
}

size_t
index_pod_count(const struct kv_index *ix)
{
    return ix->n_pods;
}

int
index_pod_info(const struct kv_index *ix, size_t i, struct index_pod_info *out)
{
    const struct pod *p;

    if (i >= ix->n_pods)
        return -1;
    p = &ix->pods[i];
    *out = (struct index_pod_info){
        .pod = p->name,
        .has_rank = p->has_rank,
        .rank = p->rank,
        .blocks = p->blocks,
        .has_seq = p->has_seq,
        .last_seq = p->last_seq,
        .has_ts = p->has_ts,
        .last_ts = p->last_ts,
        .degraded = p->degraded,
        .orphans = p->orphans,
        .misaligned = p->misaligned,
        .orphan_run = p->orphan_run,
        .has_event_at = p->has_event_at,
        .event_at = p->event_at,
    };
    return 0;
}

size_t
index_ns_count(const struct kv_index *ix)
{
    return ix->n_ns;
}

int
index_ns_info(const struct kv_index *ix, size_t i, struct index_ns_info *out)
{
    if (i >= ix->n_ns)
        return -1;
    out->model = ix->ns[i].model;
    out->lora_name = ix->ns[i].lora;
    out->block_size = ix->ns[i].block_size;
    out->keys = ix->ns[i].keys;
    return 0;
}

size_t
index_lookup(const struct kv_index *ix, const struct index_pod_ref *ref,
             uint64_t engine_hash, struct index_lookup_hit *hits, size_t cap)
{
    size_t n = 0;

    for (uint32_t p = 0; p < ix->n_pods; p++) {
        const struct pod *pod = &ix->pods[p];
        uint32_t s, id;

        if (ref && !pod_ref_matches(pod, ref))
            continue;
        s = em_find(ix, &pod->map, engine_hash);
        if (s == NONE)
            continue;
        if (n < cap) {
            const struct entry *e;
            const struct key_slot *k;

            id = em_id(&pod->map, s);
            e = &ix->ent[id];
            k = &ix->ks[e->key_slot];
            hits[n] = (struct index_lookup_hit){
                .pod = pod->name,
                .has_rank = pod->has_rank,
                .rank = pod->rank,
                .key = k->key,
                .media = e->media,
                .model = ix->ns[k->ns].model,
                .lora_name = ix->ns[k->ns].lora,
            };
        }
        n++;
    }
    return n;
}

int
index_dump_next(const struct kv_index *ix, struct index_cursor *c,
                const struct index_pod_ref *ref, struct index_dump_entry *out)
{
    /* Under max_blocks the LRU gives the order; otherwise the pool's. */
    if (!c->started) {
        c->started = 1;
        c->pos = ix->max_blocks ? ix->lru_old : 0;
    }
    while (c->pos != NONE && c->pos < ix->ent_len) {
        const struct entry *e = &ix->ent[c->pos];
        const struct pod *p;
        const struct key_slot *k;
        const struct ns *s;

        c->pos = ix->max_blocks ? ix->lru[c->pos].next : c->pos + 1;
        if (e->key_slot == NONE)
            continue;
        p = &ix->pods[e->pod];
        if (ref && !pod_ref_matches(p, ref))
            continue;
        k = &ix->ks[e->key_slot];
        s = &ix->ns[k->ns];
        *out = (struct index_dump_entry){
            .pod = p->name,
            .has_rank = p->has_rank,
            .rank = p->rank,
            .model = s->model,
            .lora_name = s->lora,
            .block_size = s->block_size,
            .engine_hash = e->engine_hash,
            .key = k->key,
            .media = e->media,
        };
        return 1;
    }
    return 0;
}

/* ---- restore ----------------------------------------------------------- */

static uint32_t
restore_ns(struct kv_index *ix, const char *model, size_t mn, const char *lora,
           size_t ln, uint32_t block_size, char *err, size_t errlen)
{
    uint32_t nsid;

    if (block_size == 0) {
        snprintf(err, errlen, "block_size must be positive");
        return NONE;
    }
    nsid = ns_find(ix, model, mn, lora, ln);
    if (nsid != NONE) {
        if (ix->ns[nsid].block_size != block_size) {
            snprintf(err, errlen,
                     "block_size %" PRIu32
                     " differs from the namespace's %" PRIu32,
                     block_size, ix->ns[nsid].block_size);
            return NONE;
        }
        return nsid;
    }
    nsid = ns_create(ix, model, mn, lora, ln, block_size);
    if (nsid == NONE)
        snprintf(err, errlen, "out of memory");
    return nsid;
}

int
index_restore_ns(struct kv_index *ix, struct kv_str model,
                 struct kv_str lora_name, uint32_t block_size, char *err,
                 size_t errlen)
{
    const char *m = model.p ? model.p : ix->default_model;
    size_t mn = model.p ? model.n : strlen(ix->default_model);

    return restore_ns(ix, m, mn, lora_name.p ? lora_name.p : "",
                      lora_name.p ? lora_name.n : 0, block_size, err,
                      errlen) == NONE
               ? -1
               : 0;
}

int
index_restore_pod(struct kv_index *ix, const struct index_pod_info *info,
                  char *err, size_t errlen)
{
    uint32_t p;
    struct pod *pod;

    if (info->pod == NULL) {
        snprintf(err, errlen, "pod missing");
        return -1;
    }
    p = pod_intern(ix, info->pod, strlen(info->pod), info->has_rank,
                   info->rank);
    if (p == NONE) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pod = &ix->pods[p];
    pod->has_seq = info->has_seq;
    pod->last_seq = info->last_seq;
    pod->has_ts = info->has_ts;
    pod->last_ts = info->last_ts;
    pod->degraded = info->degraded;
    pod->orphans = info->orphans;
    pod->misaligned = info->misaligned;
    return 0;
}

int
index_restore_entry(struct kv_index *ix, const struct index_dump_entry *e,
                    char *err, size_t errlen)
{
    const char *model = e->model ? e->model : ix->default_model;
    const char *lora = e->lora_name ? e->lora_name : "";
    uint32_t nsid, p, s, id, slot;
    struct pod *pod;

    if (e->pod == NULL) {
        snprintf(err, errlen, "pod missing");
        return -1;
    }
    if (e->media == 0 || (ix->n_media < 32 && (e->media >> ix->n_media) != 0)) {
        snprintf(err, errlen, "media bits 0x%" PRIx32 " name no known medium",
                 e->media);
        return -1;
    }
    nsid = restore_ns(ix, model, strlen(model), lora, strlen(lora),
                      e->block_size, err, errlen);
    if (nsid == NONE)
        return -1;
    p = pod_intern(ix, e->pod, strlen(e->pod), e->has_rank, e->rank);
    if (p == NONE)
        goto nomem;
    pod = &ix->pods[p];
    s = em_find(ix, &pod->map, e->engine_hash);
    if (s != NONE) {
        ix->ent[em_id(&pod->map, s)].media |= e->media;
        return 0;
    }
    if (ent_reserve(ix, 1) || ks_reserve(ix, 1) || em_reserve(&pod->map, 1))
        goto nomem;
    slot = ks_get(ix, nsid, e->key);
    id = ent_take(ix);
    ix->ent[id] = (struct entry){
        .engine_hash = e->engine_hash,
        .key_slot = slot,
        .pod = p,
        .media = e->media,
    };
    holder_insert(ix, slot, id);
    lru_push_new(ix, id);
    em_insert(ix, &pod->map, id);
    pod->blocks++;
    ix->lorder_stale = 1;
    evict(ix);
    compact(ix);
    return 0;
nomem:
    snprintf(err, errlen, "out of memory");
    return -1;
}

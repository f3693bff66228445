/*
 * index.c - the prefix index's tables and lifetime
 * (docs/kvindex.md#what-it-keeps): memory, the entry pool and the LRU,
 * engine maps, the key table, entries, pods, namespaces and media, and
 * index_new, index_free and index_stats, which walk every table.  The layout
 * and the reasons for it are in index_impl.h; applying events, queries and
 * the dump and restore live in index_apply.c, index_query.c and
 * index_dump.c, on top of the operations this file exports there.
 */
#include "index_impl.h"

#include "fmt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <xxhash.h>

#define MIN_TABLE 16u
#define MIN_POOL 1024u

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

int
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

int
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

uint32_t
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
void
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

/*
 * Moves the key table to cap slots.  Every entry names its key's slot, so
 * every live entry must learn its new one.  Walking each key's holders to
 * tell them made one cache miss per entry in an order the entries are not
 * in (42 to 58 ms, every query waiting, when a table of 1.5M keys doubled;
 * 33 to 39 ms this way, and stores of shared keys a quarter faster), so
 * the move records each old slot's new one in moved[], and then one pass
 * over the pool in order looks its entries' slots up there (a table a
 * sixth of the key table's size, mostly in cache).  With Fibonacci hashing
 * a key's new home is its old home doubled (or halved), plus a bit, so
 * the move itself writes the new table almost in order.
 */
static int
ks_rehash(struct kv_index *ix, uint32_t cap)
{
    struct key_slot *s = NULL, *old = ix->ks;
    uint32_t old_cap = ix->ks_cap, *moved = NULL;

    if (cap) {
        s = big_alloc((size_t)cap * sizeof *s);
        moved = big_alloc((size_t)old_cap * sizeof *moved);
        if (s == NULL || (old_cap && moved == NULL)) {
            big_free(s, (size_t)cap * sizeof *s);
            big_free(moved, (size_t)old_cap * sizeof *moved);
            return -1;
        }
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
        moved[i] = j;
    }
    /* A live entry's slot holds its key: slots are filled and given their
     * first holder in one step (entry_add), never across a rehash. */
    if (cap)
        for (uint32_t id = 0; id < ix->ent_len; id++)
            if (ix->ent[id].key_slot != NONE)
                ix->ent[id].key_slot = moved[ix->ent[id].key_slot];
    big_free(moved, (size_t)old_cap * sizeof *moved);
    big_free(old, (size_t)old_cap * sizeof *old);
    return 0;
}

int
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

/* Tells the holders of the key in slot (moved there) where it is now. */
static void
ks_relink(struct kv_index *ix, uint32_t slot)
{
    for (uint32_t e = ix->ks[slot].head; e != NONE; e = ix->ent[e].next_holder)
        ix->ent[e].key_slot = slot;
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

void
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

/*
 * The one place an entry is created (index_apply's stores and the restore
 * both come here), so that the tables and the pod's block count agree.  The
 * pod's block count changes, so the answer order is stale, as in entry_drop.
 */
uint32_t
entry_add(struct kv_index *ix, uint32_t p, uint32_t nsid, uint64_t key,
          uint64_t h, uint32_t media)
{
    struct pod *pod = &ix->pods[p];
    uint32_t slot = ks_get(ix, nsid, key), id = ent_take(ix);

    ix->ent[id] = (struct entry){
        .engine_hash = h, .key_slot = slot, .pod = p, .media = media};
    holder_insert(ix, slot, id);
    lru_push_new(ix, id);
    em_insert(ix, &pod->map, id);
    pod->blocks++;
    ix->lorder_stale = 1;
    return id;
}

void
lru_evict(struct kv_index *ix)
{
    if (ix->max_blocks == 0)
        return;
    while (ix->n_live > ix->max_blocks && ix->lru_old != NONE) {
        entry_remove(ix, ix->lru_old);
        ix->max_blocks_dropped++;
    }
}

uint64_t
pod_clear(struct kv_index *ix, uint32_t p)
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
void
pool_compact(struct kv_index *ix)
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
    return p->name_len == n && kv_bytes_eq(p->name, name, n) &&
           p->has_rank == has_rank && (!has_rank || p->rank == rank);
}

int
pod_ref_matches(const struct pod *p, const struct index_pod_ref *r)
{
    if (r->pod.n != p->name_len || !kv_bytes_eq(r->pod.p, p->name, r->pod.n))
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

/*
 * The name tables' hashes.  Pods of a fleet and LoRAs of a model are named
 * alike ("pod-07", "pod-08"), so the hash must spread names that differ
 * in their last bytes: FNV-1a's middle bits do not (64 such pods made one
 * run of the table, and each lookup compared names along it), XXH3's high
 * bits do (tests/unit/test_index_names.c).
 */
static uint32_t
pod_hash(const char *name, size_t n, int has_rank, int64_t rank)
{
    uint64_t h = XXH3_64bits(name, n);

    return (uint32_t)((h ^ (has_rank ? (uint64_t)rank * GOLDEN + 1 : 0)) >> 32);
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

uint32_t
pod_find(const struct kv_index *ix, const char *name, size_t n, int has_rank,
         int64_t rank)
{
    rank = has_rank ? rank : 0;
    if (ix->pods_cap == 0)
        return NONE;
    for (uint32_t j =
             pod_hash(name, n, has_rank, rank) & (ix->pods_cap * 2 - 1);
         ix->pod_tab[j] != NONE; j = (j + 1) & (ix->pods_cap * 2 - 1)) {
        if (pod_is(&ix->pods[ix->pod_tab[j]], name, n, has_rank, rank))
            return ix->pod_tab[j];
    }
    return NONE;
}

uint32_t
pod_intern(struct kv_index *ix, const char *name, size_t n, int has_rank,
           int64_t rank)
{
    struct pod *p;
    uint32_t j, id, lo, hi;

    rank = has_rank ? rank : 0;
    if (ix->last_pod < ix->n_pods &&
        pod_is(&ix->pods[ix->last_pod], name, n, has_rank, rank))
        return ix->last_pod;
    id = pod_find(ix, name, n, has_rank, rank);
    if (id != NONE)
        return ix->last_pod = id;
    if (!name_ok(name, n)) {
        errno = EILSEQ;
        return NONE;
    }
    if (ix->n_pods == ix->pods_cap && pods_grow(ix) != 0) {
        errno = ENOMEM;
        return NONE;
    }
    id = ix->n_pods;
    p = &ix->pods[id];
    memset(p, 0, sizeof *p);
    p->name = dup_mem(name, n);
    if (p->name == NULL) {
        errno = ENOMEM;
        return NONE;
    }
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
    uint64_t h = XXH3_64bits(model, mn) ^ XXH3_64bits(lora, ln) * GOLDEN;

    return (uint32_t)(h >> 32);
}

static int
ns_is(const struct ns *s, const char *model, size_t mn, const char *lora,
      size_t ln)
{
    return s->model_len == mn && s->lora_len == ln &&
           kv_bytes_eq(s->model, model, mn) && kv_bytes_eq(s->lora, lora, ln);
}

/* A table of namespace ids, 2 * ns_cap slots: engines may serve hundreds of
 * LoRA adapters, and every event looks its namespace up. */
uint32_t
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

void
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

uint32_t
ns_create(struct kv_index *ix, const char *model, size_t mn, const char *lora,
          size_t ln, uint32_t block_size)
{
    struct ns *s;
    uint32_t mask, j;

    errno = EILSEQ;
    if (!name_ok(model, mn) || !name_ok(lora, ln))
        return NONE;
    errno = ENOMEM;
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

int
medium_find(const struct kv_index *ix, const char *name, size_t n)
{
    for (int i = 0; i < ix->n_media; i++) {
        if (strlen(ix->media[i]) == n && kv_bytes_eq(ix->media[i], name, n))
            return i;
    }
    return -1;
}

int
name_ok(const char *name, size_t n)
{
    const unsigned char *s = (const unsigned char *)name;
    size_t bad;

    for (size_t i = 0; i < n;) {
        size_t k;

        if (s[i] - 1u < 0x7fu) { /* ASCII but NUL: the common case */
            i++;
            continue;
        }
        if (s[i] == 0)
            return 0;
        k = fmt_utf8_seq(s + i, n - i, &bad);
        if (k == 0)
            return 0;
        i += k;
    }
    return 1;
}

int
index_medium_intern(struct kv_index *ix, const char *name, size_t n)
{
    int i = medium_find(ix, name, n);

    if (i >= 0)
        return i;
    if (ix->n_media == MAX_MEDIA || !name_ok(name, n))
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
    ix->orphan_alarm = ix->resume_alarm = NONE;
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

/* ---- accounting -------------------------------------------------------- */

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
 * own chunk headers are not included (test_index_memory.c holds this against
 * the bytes malloc was asked for, counted by wrapping malloc and free).
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
    out->resume_skipped = ix->resume_skipped;
    out->js_skipped = ix->js_skipped;
    out->has_js_seq = ix->has_js_seq;
    out->js_seq = ix->js_seq;
    out->bytes_used = index_bytes(ix);
}

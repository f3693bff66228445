/*
 * pmap.h - an open-addressing hash map from a (u64, u32) pair to a u32,
 * for kvstat's block tables: (engine hash, medium) -> block, (block key,
 * pod) -> count, block key -> holders.
 *
 * Linear probing with backward-shift deletion, so a table that sees many
 * stores and removals never fills with tombstones.  The map owns its slot
 * array; values are plain numbers (indexes into the caller's pools).
 */
#ifndef KVSTAT_PMAP_H
#define KVSTAT_PMAP_H

#include <stddef.h>
#include <stdint.h>

/*
 * 16 bytes, so a million blocks take 16 MiB of slots at most twice over:
 * the tables of a long capture stay small enough not to be page-fault
 * bound.  tag is b + 1, 0 marking an empty slot (b < UINT32_MAX).
 */
struct pmap_slot {
    uint64_t a;
    uint32_t tag;
    uint32_t v;
};

struct pmap {
    struct pmap_slot *s;
    size_t cap; /* a power of two, or 0 before the first insert */
    size_t n;
};

/* Returns the value of (a, b), or NULL when absent.  Valid until a put. */
uint32_t *pmap_get(const struct pmap *m, uint64_t a, uint32_t b);

/*
 * Returns the value of (a, b), inserting it as 0 when absent (*created then
 * set to 1).  NULL when out of memory.  Valid until the next put or del.
 */
uint32_t *pmap_put(struct pmap *m, uint64_t a, uint32_t b, int *created);

/* Removes (a, b); returns 1 when it was there, 0 otherwise. */
int pmap_del(struct pmap *m, uint64_t a, uint32_t b);

/* A hint: loads the home slot of (a, b) into the cache. */
void pmap_prefetch(const struct pmap *m, uint64_t a, uint32_t b);

/* Forgets every entry, keeping the slot array. */
void pmap_clear(struct pmap *m);

/* Frees the slot array.  Accepts a zeroed map. */
void pmap_free(struct pmap *m);

#endif

/*
 * ring.c - the replay buffer of kvpub.
 */
#include "ring.h"

#include <stdlib.h>
#include <string.h>

int
ring_init(struct ring *r, size_t cap)
{
    memset(r, 0, sizeof *r);
    if (cap == 0)
        return -1;
    r->slot = calloc(cap, sizeof *r->slot);
    if (r->slot == NULL)
        return -1;
    r->cap = cap;
    return 0;
}

int
ring_push(struct ring *r, uint64_t seq, const void *data, size_t len)
{
    /* malloc(0) may return NULL: keep at least one byte. */
    uint8_t *copy = malloc(len ? len : 1);

    if (copy == NULL)
        return -1;
    memcpy(copy, data, len);
    if (r->count == r->cap) {
        free(r->slot[r->head].data);
        r->slot[r->head].data = NULL;
        r->head = (r->head + 1) % r->cap;
        r->count--;
    }
    struct ring_slot *s = &r->slot[(r->head + r->count) % r->cap];
    s->seq = seq;
    s->data = copy;
    s->len = len;
    r->count++;
    return 0;
}

const struct ring_slot *
ring_at(const struct ring *r, size_t i)
{
    return &r->slot[(r->head + i) % r->cap];
}

size_t
ring_find(const struct ring *r, uint64_t start)
{
    size_t lo = 0, hi = r->count;

    /* Binary search: seqs are ascending from the oldest slot. */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ring_at(r, mid)->seq < start)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void
ring_free(struct ring *r)
{
    if (r == NULL || r->slot == NULL)
        return;
    for (size_t i = 0; i < r->cap; i++)
        free(r->slot[i].data);
    free(r->slot);
    memset(r, 0, sizeof *r);
}

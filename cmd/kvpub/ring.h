/*
 * ring.h - the replay buffer of kvpub: the last N encoded batches.
 *
 * The engine keeps deque(maxlen=buffer_steps) of (seq, payload) and appends
 * a batch only after it was sent on the PUB socket; this is the same ring.
 * Payloads are stored encoded, so a replayed batch is byte-identical to the
 * live one.
 */
#ifndef KVPUB_RING_H
#define KVPUB_RING_H

#include <stddef.h>
#include <stdint.h>

struct ring_slot {
    uint64_t seq;
    uint8_t *data; /* owned by the ring */
    size_t len;
};

struct ring {
    struct ring_slot *slot;
    size_t cap;   /* capacity in batches */
    size_t head;  /* index of the oldest batch */
    size_t count; /* batches held */
};

/* Sets up an empty ring for cap batches (cap >= 1).  Returns 0 or -1. */
int ring_init(struct ring *r, size_t cap);

/*
 * Appends a copy of a payload, dropping the oldest batch when full.
 * Returns 0, or -1 when out of memory (the ring is unchanged).
 */
int ring_push(struct ring *r, uint64_t seq, const void *data, size_t len);

/*
 * The index (0 = oldest) of the first batch with seq >= start, or
 * r->count when there is none.  Seqs in the ring are ascending.
 */
size_t ring_find(const struct ring *r, uint64_t start);

/* The i-th batch from the oldest (i < r->count).  Borrowed. */
const struct ring_slot *ring_at(const struct ring *r, size_t i);

/* Frees every payload and the slots.  Accepts NULL. */
void ring_free(struct ring *r);

#endif

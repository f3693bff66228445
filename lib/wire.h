/*
 * wire.h - the engines' msgpack payload -> struct kv_batch, every layout.
 *
 * Decoding accepts every layout of docs/protocol.md#batches and
 * docs/protocol.md#events: array batches of 2 or 3+ elements and map batches;
 * legacy array events of any length and tagged map events; integer (positive or
 * negative) and byte-string hashes.  It reads the payload with a bounds-checked
 * cursor, never builds a msgpack tree and never allocates from a size a header
 * claims before checking it against the bytes that remain.
 *
 * Encoding, the mirror, is lib/wire_encode.h.
 */
#ifndef KVTAP_WIRE_H
#define KVTAP_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "event.h"

/* Hard caps, on top of the check against the bytes remaining. */
#define WIRE_MAX_EVENTS 65536
#define WIRE_MAX_HASHES 1048576
#define WIRE_MAX_TOKENS (16u * 1024 * 1024)
/* A kept value's length is 32 bits (struct kv_raw): bigger payloads fail. */
#define WIRE_MAX_PAYLOAD UINT32_MAX

/*
 * An integer batch ts at or above this is in milliseconds (Mooncake's
 * master, docs/protocol.md#mooncake): as seconds it would be past the year
 * 5000, as milliseconds it is after 1973.
 */
#define WIRE_TS_MS_MIN 100000000000ull

/*
 * What a decoded payload showed of its producer (wire_opts.shape), for
 * kvsub --stats and the first-seq rule (docs/protocol.md#which-engine-auto).
 */
enum {
    WIRE_SHAPE_ARRAY2 = 1u << 0,    /* [ts, events] */
    WIRE_SHAPE_ARRAY3 = 1u << 1,    /* [ts, events, rank, ...] */
    WIRE_SHAPE_MAP_BATCH = 1u << 2, /* {"ts", "events", ...} */
    WIRE_SHAPE_TS_MS = 1u << 3,     /* an integer ts in milliseconds */
    WIRE_SHAPE_ARRAY_EV = 1u << 4,  /* array events */
    WIRE_SHAPE_MAP_EV = 1u << 5,    /* tagged-map events */
    WIRE_SHAPE_PACKED_EV = 1u << 6, /* events packed in byte strings */
    WIRE_SHAPE_SGLANG = 1u << 7,    /* attn_dp_rank, a slot-7 map, pairs */
    WIRE_SHAPE_TRTLLM = 1u << 8,    /* placeholder tokens, mm_keys */
    WIRE_SHAPE_MOONCAKE = 1u << 9,  /* event_type maps */
    WIRE_SHAPE_ATOM = 1u << 10,     /* token_offset, BlockTransferred */
    WIRE_SHAPE_NO_SEQ = 1u << 11    /* a message without a seq frame */
};

/*
 * The producer a shape points at: "llmd-fs", "mooncake", "atom", "trtllm",
 * "sglang" or "vllm" (the default when nothing else shows).  Static
 * storage.
 */
const char *wire_producer(unsigned shape, enum kv_engine engine);

/*
 * The layout a shape shows, as short text: its batch and event forms
 * separated by spaces, such as "[ts,events,rank] maps" (a source whose
 * batches differed shows each form seen).  Writes at most cap bytes with
 * a NUL; returns buf.
 */
char *wire_layout_text(unsigned shape, char *buf, size_t cap);

/*
 * The seq a producer's stream starts at: 1 for llm-d's storage tier, 0
 * for every other (docs/protocol.md#llm-d-storage-tier).
 */
uint64_t wire_first_seq(unsigned shape, enum kv_engine engine);

struct wire_opts {
    enum kv_engine engine; /* positional meaning of array slots 7 and up */
    size_t max_events;     /* 0 = WIRE_MAX_EVENTS */
    size_t max_tokens;     /* per event; 0 = WIRE_MAX_TOKENS */
    /*
     * When non-NULL, each wire_decode that returns 0 stores there what the
     * payload showed of its producer (WIRE_SHAPE_*).
     */
    unsigned *shape;
};

/*
 * Decodes one payload into *out.  Returns 0 when the envelope is valid: the
 * batch's events are in out->events, where an event that could not be decoded
 * is replaced by a KV_DECODE_ERROR record and events with an unknown tag are
 * counted in KV_SKIPPED records after the engine events.  Returns -1 when the
 * envelope itself is bad (the whole batch is lost); the reason is in err.
 *
 * Strings, digests and raw values in *out point into payload (borrowed until
 * the payload is released); arrays are allocated from arena (valid until
 * arena_reset).  out->seq is left for the caller to fill.
 */
int wire_decode(const uint8_t *payload, size_t len,
                const struct wire_opts *opts, struct arena *arena,
                struct kv_batch *out, char *err, size_t errlen);

#endif

/*
 * wire_encode.h - struct kv_batch -> the engines' msgpack payload: exactly
 * the bytes the engines' msgspec structs produce for the same events, in
 * each layout kvpub offers (docs/protocol.md#batches, #events).
 */
#ifndef KVTAP_WIRE_ENCODE_H
#define KVTAP_WIRE_ENCODE_H

#include <stddef.h>

#include "buf.h"
#include "event.h"

/* The shapes kvpub can publish. */
enum wire_layout {
    WIRE_LAYOUT_VLLM,       /* [ts, events, rank], tagged-map events */
    WIRE_LAYOUT_VLLM_ARRAY, /* [ts, events, rank], legacy 12/4-slot arrays */
    WIRE_LAYOUT_VLLM_MAP_BATCH, /* {"ts", "events", "data_parallel_rank"} */
    WIRE_LAYOUT_SGLANG,         /* [ts, events, attn_dp_rank], SGLang maps */
    WIRE_LAYOUT_TRTLLM,         /* vLLM's maps with signed hashes and mm_keys */
    WIRE_LAYOUT_LLMD_FS, /* [ts, [bin...]]: llm-d's packed storage events */
    WIRE_LAYOUT_ATOM     /* [ts, events, rank], ROCm ATOM's 13/4/2/5-slot
                            arrays */
};

/*
 * Parses "vllm", "vllm-array", "vllm-map-batch", "sglang", "trtllm",
 * "llmd-fs", "atom"; -1 if unknown.
 */
int wire_layout_parse(const char *s, enum wire_layout *out);

struct wire_enc_opts {
    enum wire_layout layout;
    int bytes_hashes; /* publish digests as bin where the event has them */
};

/*
 * Appends the msgpack payload for a batch of engine events to out (stream
 * records in b->events are skipped), written by lib/pack.h with msgspec's
 * encodings.  Kept values (raw fields and unknowns) are copied when they
 * are msgpack and converted when they are JSON text (pack_json); a kept
 * value of no bytes is written as nil.
 *
 * Returns 0, or -1 with the reason in err ("event N: field: why") and out
 * as it was before the call.  It refuses what msgspec could not have sent
 * either: a string, byte string, array or map longer than 2^32-1 (checked
 * before the bytes or elements are read, so a bogus length is harmless);
 * a msgpack kept value that is not exactly one well-formed object; a JSON
 * kept value that is not exactly one JSON value, holds an integer outside
 * [-2^63, 2^64-1] or a number beyond a double, or nests deeper than
 * PACK_JSON_MAX_DEPTH; and out of memory.  Integers of the event model
 * (int64 fields, u64 hashes, u32 tokens) always fit, and NaN timestamps
 * are float64 NaN, as msgspec writes them.  String bytes are not checked
 * for UTF-8.
 */
int wire_encode(const struct kv_batch *b, const struct wire_enc_opts *opts,
                struct buf *out, char *err, size_t errlen);

#endif

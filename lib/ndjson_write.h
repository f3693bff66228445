/*
 * ndjson_write.h - struct kv_event -> one line of kvtap NDJSON
 * (docs/ndjson.md#exact-rules-what-the-writer-does-and-the-tests-hold-it-to).
 *
 * The hot path of kvsub: lines are appended straight into a struct buf,
 * with no JSON DOM, hashes as decimal strings, keys in the documented
 * order.  Nothing is read past an event's strings or generic values.
 *
 * Ownership: the functions only append to the caller's buffer; nothing
 * they are given is kept.
 */
#ifndef KVTAP_NDJSON_WRITE_H
#define KVTAP_NDJSON_WRITE_H

#include "buf.h"
#include "event.h"

/*
 * Size limits shared by the writer (kvsub) and the reader (kvindex), so
 * that the two agree (docs/cli.md#limits-and-security): kvsub refuses
 * messages over --max-msg (default NDJSON_MAX_MSG_DEFAULT) and never
 * writes a line longer than NDJSON_MAX_LINE, which is also kvindex's
 * default --max-line.  A real engine batch is well under 1 MiB.
 */
#define NDJSON_MAX_MSG_DEFAULT (16u << 20)
#define NDJSON_MAX_LINE (64u << 20)

/* Where a batch came from: the pod name and the --model, if any. */
struct ndjson_source {
    struct kv_str pod;
    struct kv_str model;  /* p == NULL: absent */
    struct kv_str stream; /* as in struct kv_env; p == NULL: absent */
};

/*
 * Appends one line per event of b (engine events with "i", then the batch's
 * stream records without it).  The ts text is formatted once per batch.
 * Out of memory marks out (buf.h) and may leave a partial line.
 */
void ndjson_write_batch(struct buf *out, const struct ndjson_source *src,
                        const struct kv_batch *b);

/*
 * Appends one line for ev under an explicit envelope: stream records that
 * belong to no decoded batch (gap, restart, a batch-level decode_error), and
 * single events re-written by other tools.  "i" is written when env->has_i.
 */
void ndjson_write_event(struct buf *out, const struct kv_env *env,
                        const struct kv_event *ev);

/*
 * Appends a generic value (extra_keys, an unknown field) as JSON: a
 * KV_RAW_JSON value verbatim (its text is the reader's, already checked),
 * a KV_RAW_MSGPACK one converted by docs/ndjson.md's rules for generic
 * values.  Writes null when r is empty or is not exactly one sound msgpack
 * object.
 */
void ndjson_write_raw(struct buf *out, struct kv_raw r);

#endif

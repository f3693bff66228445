/*
 * ndjson.h - struct kv_event <-> one line of kvtap NDJSON (docs/ndjson.md).
 *
 * The writer is the hot path of kvsub: it appends straight into a struct buf,
 * with no JSON DOM, hashes as decimal strings, keys in the documented order.
 * The reader is the hot path of kvindex ingest: a single-pass parser over the
 * line, also without a DOM.
 */
#ifndef KVTAP_NDJSON_H
#define KVTAP_NDJSON_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "event.h"

/* The envelope of one line (everything but the event's own fields). */
struct ndjson_env {
    struct kv_str pod;   /* the reader sets "-" when the line has none */
    struct kv_str model; /* p == NULL: absent */
    int has_rank;        /* 0: dp_rank is null */
    int64_t rank;
    int has_seq;
    uint64_t seq;
    int has_i;
    uint32_t i;
    int has_ts;
    double ts;
    /* vLLM snapshot mode's publisher stream id, 32 lower-case hex digits. */
    struct kv_str stream; /* p == NULL: absent */
};

/* Where a batch came from: the pod name and the --model, if any. */
struct ndjson_source {
    struct kv_str pod;
    struct kv_str model;  /* p == NULL: absent */
    struct kv_str stream; /* as in ndjson_env; p == NULL: absent */
};

/*
 * Appends one line per event of b (engine events with "i", then the batch's
 * stream records without it).  The ts text is formatted once per batch.
 */
void ndjson_write_batch(struct buf *out, const struct ndjson_source *src,
                        const struct kv_batch *b);

/*
 * Appends one line for ev under an explicit envelope: stream records that
 * belong to no decoded batch (gap, restart, a batch-level decode_error), and
 * single events re-written by other tools.  "i" is written when env->has_i.
 */
void ndjson_write_event(struct buf *out, const struct ndjson_env *env,
                        const struct kv_event *ev);

enum ndjson_rc {
    NDJSON_EVENT = 0, /* *env and *ev hold a line's event */
    NDJSON_SKIP = 1,  /* nothing to do: blank line or a version-1 header */
    NDJSON_BAD = -1,  /* malformed line: count it, report it, read on */
    NDJSON_FATAL = -2 /* a format version this reader does not know: stop */
};

/*
 * Parses one line (without its '\n').  Strings in *env and *ev point into
 * line or into arena; generic values (extra_keys, unknown keys) are converted
 * to msgpack in arena, so an event read here encodes like one decoded from
 * the wire.  Returns an enum ndjson_rc; for BAD and FATAL the reason is in
 * err.
 */
int ndjson_parse_line(const char *line, size_t len, struct arena *arena,
                      struct ndjson_env *env, struct kv_event *ev, char *err,
                      size_t errlen);

#endif

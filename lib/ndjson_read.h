/*
 * ndjson_read.h - one line of kvtap NDJSON -> struct kv_event
 * (docs/ndjson.md#reading).
 *
 * The hot path of kvindex ingest and of kvpub's input: a single-pass
 * parser over the line, without a DOM.
 */
#ifndef KVTAP_NDJSON_READ_H
#define KVTAP_NDJSON_READ_H

#include <stddef.h>

#include "event.h"

enum ndjson_rc {
    NDJSON_EVENT = 0, /* *env and *ev hold a line's event */
    NDJSON_SKIP = 1,  /* nothing to do: blank line or a version-1 header */
    NDJSON_BAD = -1,  /* malformed line: count it, report it, read on */
    NDJSON_FATAL = -2 /* a format version this reader does not know: stop */
};

/*
 * Parses one line (without its '\n').  Strings in *env and *ev point into
 * line or into arena, so both must outlive the event.  Generic values
 * (extra_keys, unknown keys, "@N" slots) are validated and kept as their
 * JSON text (KV_RAW_JSON, pointing into line): the writer copies them as
 * they are and wire_encode converts them to msgpack.  Returns an enum
 * ndjson_rc; for BAD and FATAL the reason is in err.
 */
int ndjson_parse_line(const char *line, size_t len, struct arena *arena,
                      struct kv_env *env, struct kv_event *ev, char *err,
                      size_t errlen);

#endif

/*
 * json_mp.h - one JSON value, read with the jscan cursor, as one msgpack
 * object: how the NDJSON reader keeps generic values (extra_keys, unknown
 * fields) so that an event read from a line encodes like one decoded from
 * the wire.  The encodings are msgspec's smallest (docs/ndjson.md#reading).
 *
 * Ownership: the msgpack bytes live in the arena given to the converter and
 * stay valid until that arena is reset.
 */
#ifndef KVTAP_JSON_MP_H
#define KVTAP_JSON_MP_H

#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "jscan.h"

/* Values nest at most this deep (the text is for messages). */
#define JSON_MP_MAX_DEPTH 64
#define JSON_MP_DEPTH_TEXT "64"

/*
 * The converter's scratch, zero-initialised with .arena set.  [val, len)
 * of p is the value being built; finished values stay where they are.
 */
struct json_mp {
    struct arena *arena; /* borrowed */
    uint8_t *p;
    size_t len, cap, val;
    struct jscan *sc; /* the cursor of the current call */
    const char *why;  /* after a failure the scanner did not word */
};

/*
 * Converts the JSON value at sc's cursor and moves the cursor past it;
 * out->kind is KV_RAW_MSGPACK.  Returns 0, or -1: then m->why holds a
 * message (static storage) or, when it is NULL, sc->error says what the
 * scanner refused at sc->i.
 */
int json_mp_value(struct json_mp *m, struct jscan *sc, struct kv_raw *out);

#endif

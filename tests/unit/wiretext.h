/*
 * wiretext.h - the wire tests' text forms (tests/unit/test_wire*.c):
 * msgpack written in a small notation, and a decoded batch rendered as one
 * line, so that a table row holds a whole case.
 *
 * The notation: [..] arrays, {k: v} maps, "str", h"00ff" bin, integers,
 * floats (with a '.'), nil/true/false, and x"dd ff" for raw bytes copied
 * verbatim (hostile headers, forced widths).  It is compiled with lib/pack,
 * which test_pack holds to python msgpack's bytes, so the tests have no
 * msgpack encoding rules of their own.
 */
#ifndef KVTAP_TEST_WIRETEXT_H
#define KVTAP_TEST_WIRETEXT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "event.h"

/* Compiled notation; large, so tests allocate it. */
struct wiretext_bytes {
    uint8_t p[1 << 16];
    size_t n;
};

/* Appends n raw bytes to b (past 64 KiB: exits 2). */
void wiretext_put(struct wiretext_bytes *b, const void *p, size_t n);

/*
 * Compiles a sequence of values (usually one) into b.  Bad notation or a
 * payload over 64 KiB is a broken test: it exits 2 with a message.
 */
void wiretext_parse(const char *s, struct wiretext_bytes *b);

/*
 * Renders wire_decode's outcome into o as one NUL-terminated line:
 * "ts=.. rank=..; event; event" (every field, bit and unknown slot), or
 * "FAIL reason" when rc != 0.  o is cleared first.
 */
void wiretext_dump(struct buf *o, int rc, const struct kv_batch *b,
                   const char *err);

#endif

/*
 * pack.h - the one msgpack writer: msgpack-c's packer appending to a
 * struct buf, plus JSON text converted to msgpack.
 *
 * Every encoding is the one msgspec (the engines' encoder) writes for the
 * same Python value: integers in their smallest form (positive values
 * always unsigned), str8 from 32 bytes, floats as float64, byte strings as
 * bin8/16/32.  msgpack-c's packer already picks exactly these; this module
 * adds what it does not check: a length or count over 2^32-1, which
 * msgpack-c would silently truncate to 32 bits, is refused.
 *
 * Errors are sticky, like struct buf's oom: the first failure is recorded
 * in the struct pack, every later call is a no-op, and the caller checks
 * once with pack_error().  Functions that take a length or count also
 * return -1 on failure, so a caller can stop before reading the bytes or
 * elements the length claims (a kv_str with a bogus n is never read).
 * After a failure the buffer holds a partial value; the caller truncates
 * it back (pack_init records where it started).
 */
#ifndef KVTAP_PACK_H
#define KVTAP_PACK_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack/pack.h>

#include "buf.h"
#include "event.h"

/* The largest length or element count msgpack can express (2^32-1). */
#define PACK_MAX_LEN 0xffffffffu

struct pack {
    msgpack_packer pk; /* writes into out */
    struct buf *out;   /* borrowed for the writer's lifetime */
    size_t start;      /* out->len when pack_init was called */
    struct arena tmp;  /* pack_json's decoded escaped strings */
    int failed;        /* the first failure's text is in error */
    char error[160];
};

/*
 * Starts writing at the end of out (borrowed: it must outlive the
 * writer); out->len at this point is kept in p->start.
 */
void pack_init(struct pack *p, struct buf *out);

/* Frees pack_json's scratch memory (not out).  Accepts NULL. */
void pack_free(struct pack *p);

/*
 * NULL while every value so far was written, else why not (owned by p):
 * a length over PACK_MAX_LEN, a value pack_msgpack or pack_json refused,
 * or "out of memory" (out->oom).
 */
const char *pack_error(const struct pack *p);

/*
 * The scalars are inline: the encoder writes one per token id, and a call
 * less per value is what keeps it as fast as the hand-written writer was.
 */
static inline void
pack_nil(struct pack *p)
{
    if (!p->failed)
        msgpack_pack_nil(&p->pk);
}

static inline void
pack_bool(struct pack *p, int v)
{
    if (!p->failed)
        (void)(v ? msgpack_pack_true(&p->pk) : msgpack_pack_false(&p->pk));
}

/* Integers, each in its smallest form; non-negative values as unsigned. */
static inline void
pack_uint(struct pack *p, uint64_t v)
{
    if (!p->failed)
        msgpack_pack_uint64(&p->pk, v);
}

static inline void
pack_int(struct pack *p, int64_t v)
{
    if (!p->failed)
        msgpack_pack_int64(&p->pk, v);
}

/* Always float64, as msgspec writes a Python float (NaN included). */
static inline void
pack_f64(struct pack *p, double v)
{
    if (!p->failed)
        msgpack_pack_double(&p->pk, v);
}

/*
 * A str or bin of n bytes, or the header of an array of n elements or a
 * map of n pairs (the caller writes them).  Returns 0, or -1 when n is
 * over PACK_MAX_LEN or the writer has already failed; s is then not read.
 * The bytes of a str are not checked for UTF-8.
 */
int pack_str(struct pack *p, const char *s, size_t n);
int pack_bin(struct pack *p, const uint8_t *s, size_t n);
int pack_array(struct pack *p, size_t n);
int pack_map(struct pack *p, size_t n);

/*
 * Copies v[0..n) verbatim after checking that it is exactly one
 * well-formed msgpack object (nothing truncated, nothing after it, no
 * never-used byte 0xc1).  Returns 0, or -1 with the reason recorded.
 */
int pack_msgpack(struct pack *p, const uint8_t *v, size_t n);

/* JSON containers nested deeper than this are refused by pack_json. */
#define PACK_JSON_MAX_DEPTH 64

/*
 * Converts exactly one JSON value (RFC 8259; blanks around it allowed)
 * in text[0..n) to the msgpack msgspec writes for what json.loads
 * returns: objects as maps (members in text order, duplicated keys kept),
 * arrays, strings as str (escapes decoded, surrogate pairs joined, a lone
 * surrogate as U+FFFD), integers in their smallest form (-0 is 0), other
 * numbers as float64, true/false/null.  Refused (-1, the reason and the
 * byte offset recorded): malformed JSON, an integer outside [-2^63,
 * 2^64-1] (msgspec cannot encode it), a number whose magnitude overflows
 * a double (JSON has no infinity), nesting deeper than
 * PACK_JSON_MAX_DEPTH, more than PACK_MAX_LEN bytes or elements.  As
 * with pack_str, string bytes are not checked for UTF-8.  On failure
 * nothing of the value stays in the buffer.
 */
int pack_json(struct pack *p, const char *text, size_t n);

/* Appends the raw value in its own kind: pack_msgpack or pack_json. */
int pack_raw(struct pack *p, const struct kv_raw *v);

#endif

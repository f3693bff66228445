/*
 * mpk.h - a small bounds-checked msgpack cursor.
 *
 * The decoder reads payloads straight from the receive buffer with this
 * cursor instead of building msgpack-c object trees: nothing is allocated,
 * and every array or map header is checked against the bytes that remain
 * (at least one byte per array element, two per map entry) before the
 * caller can act on its count.  A hostile header therefore fails here, as
 * "declared size exceeds payload", instead of reserving gigabytes.
 */
#ifndef KVTAP_MPK_H
#define KVTAP_MPK_H

#include <stddef.h>
#include <stdint.h>

/* A read position inside one buffer.  Borrows the buffer. */
struct mpk {
    const uint8_t *p;
    const uint8_t *end;
};

enum mpk_type {
    MPK_NIL,
    MPK_BOOL,
    MPK_UINT,  /* any non-negative integer, whatever its wire format */
    MPK_INT,   /* a negative integer */
    MPK_FLOAT, /* float32 or float64, widened to double */
    MPK_STR,
    MPK_BIN,
    MPK_EXT,
    MPK_ARRAY, /* only the header: n elements follow */
    MPK_MAP    /* only the header: n key/value pairs follow */
};

/* One header, with its scalar value.  p points into the cursor's buffer. */
struct mpk_val {
    enum mpk_type type;
    uint32_t n; /* bytes of str/bin/ext data, or array/map count */
    union {
        uint64_t u;
        int64_t i;
        double f;
        int b;
    } v;
    const uint8_t *p; /* str/bin/ext data */
    int8_t ext_type;
};

/* Why a read failed. */
enum mpk_err {
    MPK_OK = 0,
    MPK_ETRUNC = -1, /* the buffer ends inside an object */
    MPK_EBYTE = -2,  /* the never-used byte 0xc1 */
    MPK_ESIZE = -3   /* a count larger than the bytes that remain */
};

/* The big-endian integers msgpack stores, read from p (the caller has
 * checked that the bytes are there). */
static inline uint16_t
mpk_be16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t
mpk_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static inline uint64_t
mpk_be64(const uint8_t *p)
{
    return (uint64_t)mpk_be32(p) << 32 | mpk_be32(p + 4);
}

static inline void
mpk_init(struct mpk *c, const uint8_t *p, size_t n)
{
    /* An empty payload may come as (NULL, 0), and NULL + 0 is undefined. */
    c->p = p;
    c->end = p != NULL ? p + n : p;
}

static inline size_t
mpk_left(const struct mpk *c)
{
    return (size_t)(c->end - c->p);
}

/* mpk_next for every header the inline fast path does not handle. */
int mpk_next_slow(struct mpk *c, struct mpk_val *v);

/*
 * Reads one header (and a scalar's value) and advances past it; for arrays
 * and maps the elements are left to read.  Returns MPK_OK or an enum
 * mpk_err; on error the cursor is unchanged.  The one-byte headers that
 * make up most of a payload (fixint, fixstr, fixarray, fixmap, nil) are
 * handled inline.
 */
static inline int
mpk_next(struct mpk *c, struct mpk_val *v)
{
    const uint8_t *p = c->p;
    size_t left = (size_t)(c->end - p);

    if (left == 0)
        return MPK_ETRUNC;
    uint8_t b = p[0];
    if (b <= 0x7f) {
        v->type = MPK_UINT;
        v->v.u = b;
        c->p = p + 1;
        return MPK_OK;
    }
    if (b >= 0xa0 && b <= 0xbf) {
        uint32_t n = b & 0x1f;
        if (left - 1 < n)
            return MPK_ETRUNC;
        v->type = MPK_STR;
        v->n = n;
        v->p = p + 1;
        c->p = p + 1 + n;
        return MPK_OK;
    }
    if (b >= 0x80 && b <= 0x9f) {
        uint32_t n = b & 0x0f;
        int map = b <= 0x8f;
        if (left - 1 < (map ? 2 * (size_t)n : n))
            return MPK_ESIZE;
        v->type = map ? MPK_MAP : MPK_ARRAY;
        v->n = n;
        c->p = p + 1;
        return MPK_OK;
    }
    if (b == 0xc0) {
        v->type = MPK_NIL;
        c->p = p + 1;
        return MPK_OK;
    }
    return mpk_next_slow(c, v);
}

/*
 * Skips one whole object, nested values included, without recursion.
 * Returns MPK_OK or an enum mpk_err (the cursor is then undefined).
 */
int mpk_skip(struct mpk *c);

/* A short English text for an enum mpk_err.  Static storage. */
const char *mpk_strerror(int err);

#endif

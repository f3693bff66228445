/*
 * mpk.c - bounds-checked msgpack cursor (see mpk.h).
 */
#include "mpk.h"

#include <string.h>

/* Fills v with a str/bin/ext body of n bytes that starts at p. */
static int
body(struct mpk *c, struct mpk_val *v, const uint8_t *p, uint32_t n,
     enum mpk_type t)
{
    if ((size_t)(c->end - p) < n)
        return MPK_ETRUNC;
    v->type = t;
    v->n = n;
    v->p = p;
    c->p = p + n;
    return MPK_OK;
}

/* Fills v with an array or map header whose count is n. */
static int
container(struct mpk *c, struct mpk_val *v, const uint8_t *p, uint32_t n,
          enum mpk_type t)
{
    /* Each element needs a byte, each map entry two: anything more is a lie. */
    uint64_t need = t == MPK_MAP ? 2 * (uint64_t)n : n;

    if ((uint64_t)(c->end - p) < need)
        return MPK_ESIZE;
    v->type = t;
    v->n = n;
    c->p = p;
    return MPK_OK;
}

/*
 * The numbers with a fixed-width payload after marker b (0xca-0xd3): the
 * payload starts at p, and left bytes remain.
 */
static int
fixed_number(struct mpk *c, struct mpk_val *v, uint8_t b, const uint8_t *p,
             size_t left)
{
    /* The payload width per marker, from 0xca. */
    static const uint8_t width[10] = {4, 8, 1, 2, 4, 8, 1, 2, 4, 8};
    size_t w = width[b - 0xca];

    if (left < w)
        return MPK_ETRUNC;
    uint64_t u = w == 1   ? p[0]
                 : w == 2 ? mpk_be16(p)
                 : w == 4 ? mpk_be32(p)
                          : mpk_be64(p);
    c->p = p + w;
    if (b == 0xca) {
        float f;
        uint32_t u32 = (uint32_t)u;
        memcpy(&f, &u32, sizeof f);
        v->type = MPK_FLOAT;
        v->v.f = f;
    } else if (b == 0xcb) {
        v->type = MPK_FLOAT;
        memcpy(&v->v.f, &u, sizeof u);
    } else if (b <= 0xcf) {
        v->type = MPK_UINT;
        v->v.u = u;
    } else {
        /* Sign-extend from the format's width. */
        int64_t i = w == 1   ? (int8_t)u
                    : w == 2 ? (int16_t)u
                    : w == 4 ? (int32_t)u
                             : (int64_t)u;
        if (i >= 0) {
            v->type = MPK_UINT;
            v->v.u = (uint64_t)i;
        } else {
            v->type = MPK_INT;
            v->v.i = i;
        }
    }
    return MPK_OK;
}

/* The ext formats (0xc7-0xc9, 0xd4-0xd8): a length, a type byte, data. */
static int
ext(struct mpk *c, struct mpk_val *v, uint8_t b, const uint8_t *p, size_t left)
{
    if (b >= 0xd4) {
        if (left < 1)
            return MPK_ETRUNC;
        v->ext_type = (int8_t)p[0];
        return body(c, v, p + 1, 1u << (b - 0xd4), MPK_EXT);
    }
    size_t w = (size_t)1 << (b - 0xc7); /* 1, 2 or 4 length bytes */
    if (left < w + 1)
        return MPK_ETRUNC;
    uint32_t n = w == 1 ? p[0] : w == 2 ? mpk_be16(p) : mpk_be32(p);
    v->ext_type = (int8_t)p[w];
    return body(c, v, p + w + 1, n, MPK_EXT);
}

int
mpk_next_slow(struct mpk *c, struct mpk_val *v)
{
    const uint8_t *p = c->p;
    size_t left = (size_t)(c->end - p);

    if (left == 0)
        return MPK_ETRUNC;
    uint8_t b = *p++;
    left--;
    if (b <= 0x7f) {
        v->type = MPK_UINT;
        v->v.u = b;
        c->p = p;
        return MPK_OK;
    }
    if (b >= 0xe0) {
        v->type = MPK_INT;
        v->v.i = (int8_t)b;
        c->p = p;
        return MPK_OK;
    }
    if (b <= 0x8f)
        return container(c, v, p, b & 0x0f, MPK_MAP);
    if (b <= 0x9f)
        return container(c, v, p, b & 0x0f, MPK_ARRAY);
    if (b <= 0xbf)
        return body(c, v, p, b & 0x1f, MPK_STR);
    if (b >= 0xca && b <= 0xd3)
        return fixed_number(c, v, b, p, left);
    if ((b >= 0xc7 && b <= 0xc9) || (b >= 0xd4 && b <= 0xd8))
        return ext(c, v, b, p, left);
    switch (b) {
    case 0xc0:
        v->type = MPK_NIL;
        c->p = p;
        return MPK_OK;
    case 0xc2:
    case 0xc3:
        v->type = MPK_BOOL;
        v->v.b = b == 0xc3;
        c->p = p;
        return MPK_OK;
    case 0xc4:
    case 0xd9:
        if (left < 1)
            return MPK_ETRUNC;
        return body(c, v, p + 1, p[0], b == 0xc4 ? MPK_BIN : MPK_STR);
    case 0xc5:
    case 0xda:
        if (left < 2)
            return MPK_ETRUNC;
        return body(c, v, p + 2, mpk_be16(p), b == 0xc5 ? MPK_BIN : MPK_STR);
    case 0xc6:
    case 0xdb:
        if (left < 4)
            return MPK_ETRUNC;
        return body(c, v, p + 4, mpk_be32(p), b == 0xc6 ? MPK_BIN : MPK_STR);
    case 0xdc:
    case 0xde:
        if (left < 2)
            return MPK_ETRUNC;
        return container(c, v, p + 2, mpk_be16(p),
                         b == 0xdc ? MPK_ARRAY : MPK_MAP);
    case 0xdd:
    case 0xdf:
        if (left < 4)
            return MPK_ETRUNC;
        return container(c, v, p + 4, mpk_be32(p),
                         b == 0xdd ? MPK_ARRAY : MPK_MAP);
    default:
        return MPK_EBYTE; /* 0xc1, never used */
    }
}

int
mpk_skip(struct mpk *c)
{
    /*
     * Values still to read: a counter, not a stack, so hostile nesting
     * costs neither memory nor recursion, and every iteration consumes at
     * least one byte.
     */
    uint64_t pending = 1;
    struct mpk_val v;

    while (pending > 0) {
        int rc = mpk_next(c, &v);
        if (rc != MPK_OK)
            return rc;
        pending--;
        if (v.type == MPK_ARRAY)
            pending += v.n;
        else if (v.type == MPK_MAP)
            pending += 2 * (uint64_t)v.n;
    }
    return MPK_OK;
}

const char *
mpk_strerror(int err)
{
    switch (err) {
    case MPK_OK:
        return "success";
    case MPK_ETRUNC:
        return "truncated msgpack";
    case MPK_EBYTE:
        return "invalid msgpack byte";
    case MPK_ESIZE:
        return "declared size exceeds payload";
    default:
        return "msgpack error";
    }
}

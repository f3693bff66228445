/*
 * json_mp.c - JSON value -> msgpack object (see json_mp.h).
 */
#include "json_mp.h"

#include <string.h>

static int
fail(struct json_mp *m, const char *why)
{
    m->why = why;
    return -1;
}

/* Room for k more scratch bytes; moves the value being built if needed. */
static uint8_t *
mp_room(struct json_mp *m, size_t k)
{
    if (m->cap - m->len >= k)
        return m->p + m->len;
    size_t cur = m->len - m->val;
    size_t cap = 2 * m->cap;
    if (cap < cur + k + 256)
        cap = cur + k + 256;
    uint8_t *p = arena_alloc(m->arena, cap);
    if (p == NULL) {
        fail(m, "out of memory");
        return NULL;
    }
    if (cur > 0)
        memcpy(p, m->p + m->val, cur);
    m->p = p;
    m->cap = cap;
    m->val = 0;
    m->len = cur;
    return p + cur;
}

static int
mp_put(struct json_mp *m, const void *src, size_t k)
{
    uint8_t *q = mp_room(m, k);
    if (q == NULL)
        return -1;
    memcpy(q, src, k);
    m->len += k;
    return 0;
}

/* A marker byte followed by v big-endian in w bytes. */
static int
mp_put_be(struct json_mp *m, uint8_t marker, uint64_t v, size_t w)
{
    uint8_t tmp[9];
    tmp[0] = marker;
    for (size_t k = 0; k < w; k++)
        tmp[1 + k] = (uint8_t)(v >> (8 * (w - 1 - k)));
    return mp_put(m, tmp, 1 + w);
}

static int
mp_put_str(struct json_mp *m, const char *s, size_t n)
{
    int rc;
    if (n < 32) {
        uint8_t b = (uint8_t)(0xa0 | n);
        rc = mp_put(m, &b, 1);
    } else if (n <= 0xff) {
        rc = mp_put_be(m, 0xd9, n, 1);
    } else if (n <= 0xffff) {
        rc = mp_put_be(m, 0xda, n, 2);
    } else if (n <= 0xffffffffu) {
        rc = mp_put_be(m, 0xdb, n, 4);
    } else {
        return fail(m, "string too long");
    }
    return rc == -1 ? -1 : mp_put(m, s, n);
}

/* The smallest msgpack integer form, as msgspec writes it. */
static int
mp_put_int(struct json_mp *m, int neg, uint64_t mag)
{
    if (!neg || mag == 0) {
        if (mag <= 0x7f) {
            uint8_t b = (uint8_t)mag;
            return mp_put(m, &b, 1);
        }
        if (mag <= 0xff)
            return mp_put_be(m, 0xcc, mag, 1);
        if (mag <= 0xffff)
            return mp_put_be(m, 0xcd, mag, 2);
        if (mag <= 0xffffffffu)
            return mp_put_be(m, 0xce, mag, 4);
        return mp_put_be(m, 0xcf, mag, 8);
    }
    uint64_t v = (uint64_t)0 - mag; /* two's complement of -mag */
    if (mag <= 32) {
        uint8_t b = (uint8_t)v;
        return mp_put(m, &b, 1);
    }
    if (mag <= 0x80)
        return mp_put_be(m, 0xd0, v & 0xff, 1);
    if (mag <= 0x8000)
        return mp_put_be(m, 0xd1, v & 0xffff, 2);
    if (mag <= 0x80000000u)
        return mp_put_be(m, 0xd2, v & 0xffffffffu, 4);
    return mp_put_be(m, 0xd3, v, 8);
}

static int mp_value(struct json_mp *m, int depth);

/* An array or object: a 5-byte header is reserved and shrunk at the end. */
static int
mp_container(struct json_mp *m, int depth, int is_map)
{
    size_t rel = m->len - m->val;
    uint64_t count = 0;

    if (mp_room(m, 5) == NULL)
        return -1;
    m->len += 5;
    m->sc->i++;
    for (int first = 1;; first = 0) {
        int rc;
        if (is_map) {
            struct kv_str key;
            rc = jscan_member(m->sc, first, &key);
            if (rc == 1 && mp_put_str(m, key.p, key.n) == -1)
                return -1;
        } else {
            rc = jscan_element(m->sc, first);
        }
        if (rc == -1)
            return -1;
        if (rc == 0)
            break;
        jscan_ws(m->sc);
        if (mp_value(m, depth + 1) == -1)
            return -1;
        count++;
    }

    uint8_t hdr[5];
    size_t hlen;
    if (count < 16) {
        hdr[0] = (uint8_t)((is_map ? 0x80 : 0x90) | count);
        hlen = 1;
    } else if (count <= 0xffff) {
        hdr[0] = is_map ? 0xde : 0xdc;
        hdr[1] = (uint8_t)(count >> 8);
        hdr[2] = (uint8_t)count;
        hlen = 3;
    } else if (count <= 0xffffffffu) {
        hdr[0] = is_map ? 0xdf : 0xdd;
        for (int k = 0; k < 4; k++)
            hdr[1 + k] = (uint8_t)(count >> (24 - 8 * k));
        hlen = 5;
    } else {
        return fail(m, "array too long");
    }
    uint8_t *h = m->p + m->val + rel;
    size_t body = m->len - (m->val + rel + 5);
    memmove(h + hlen, h + 5, body);
    memcpy(h, hdr, hlen);
    m->len -= 5 - hlen;
    return 0;
}

/* Converts the JSON value at the cursor to msgpack in the scratch. */
static int
mp_value(struct json_mp *m, int depth)
{
    static const uint8_t nil = 0xc0, f = 0xc2, t = 0xc3;

    if (depth > JSON_MP_MAX_DEPTH)
        return fail(m, "values nest deeper than " JSON_MP_DEPTH_TEXT " levels");
    switch (jscan_peek(m->sc)) {
    case '{':
        return mp_container(m, depth, 1);
    case '[':
        return mp_container(m, depth, 0);
    case '"': {
        struct kv_str str;
        if (jscan_string(m->sc, &str) == -1)
            return -1;
        return mp_put_str(m, str.p, str.n);
    }
    case 'n':
        if (jscan_null(m->sc))
            return mp_put(m, &nil, 1);
        break;
    case 't':
        if (m->sc->n - m->sc->i >= 4 &&
            memcmp(m->sc->s + m->sc->i, "true", 4) == 0) {
            m->sc->i += 4;
            return mp_put(m, &t, 1);
        }
        break;
    case 'f':
        if (m->sc->n - m->sc->i >= 5 &&
            memcmp(m->sc->s + m->sc->i, "false", 5) == 0) {
            m->sc->i += 5;
            return mp_put(m, &f, 1);
        }
        break;
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9': {
        struct jscan_num num;
        if (jscan_number(m->sc, &num) == -1)
            return -1;
        int fits = num.is_int && !num.ovf &&
                   (!num.neg || num.mag <= (uint64_t)1 << 63);
        if (fits)
            return mp_put_int(m, num.neg, num.mag);
        /* Fractions, exponents and integers beyond 64 bits: float64. */
        double d;
        uint64_t bits;
        if (jscan_num_double(m->sc, &num, &d) == -1)
            return -1;
        memcpy(&bits, &d, sizeof bits);
        return mp_put_be(m, 0xcb, bits, 8);
    }
    default:
        break;
    }
    m->sc->error = JSCAN_E_LITERAL; /* the reader words it "invalid value" */
    return -1;
}

int
json_mp_value(struct json_mp *m, struct jscan *sc, struct kv_raw *out)
{
    m->sc = sc;
    m->why = NULL;
    m->val = m->len;
    if (mp_value(m, 1) == -1)
        return -1;
    out->p = m->p + m->val;
    out->n = m->len - m->val;
    out->kind = KV_RAW_MSGPACK;
    m->val = m->len;
    return 0;
}

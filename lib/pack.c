/*
 * pack.c - the msgpack writer (see pack.h): msgpack-c's packer into a
 * struct buf, and JSON text to msgpack on top of it.
 */
#include "pack.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jscan.h"
#include "mpk.h"

/*
 * pack_write when the buffer must grow, or has failed to.  Kept out of
 * line so that the usual case saves no registers.
 */
static __attribute__((noinline)) int
pack_write_slow(struct buf *b, const char *s, size_t n)
{
    if (b->oom || buf_reserve(b, n) == -1)
        return -1;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

/*
 * msgpack-c's write callback.  The packer calls it for every header and
 * scalar (a token id is one byte), so the usual case is a leaf: the room
 * is there and a header's 1, 2, 3, 5 or 9 bytes are copied inline.
 * After an allocation failure nothing more is appended, as struct buf
 * promises.  n == 0 is an empty string's body, whose s may be NULL.
 */
static int
pack_write(void *data, const char *s, size_t n)
{
    struct buf *b = data;

    if (b->cap - b->len < n || b->oom)
        return pack_write_slow(b, s, n);
    char *d = b->p + b->len;
    b->len += n;
    /*
     * A header is a marker byte the packer stored alone, then 1, 2, 4 or
     * 8 bytes it stored as one value: copying in the same pieces keeps
     * each load within one store, so the CPU forwards it instead of
     * stalling, and constant sizes are copied inline.
     */
    switch (n) {
    case 0:
        break;
    case 1:
        d[0] = s[0];
        break;
    case 2:
        d[0] = s[0];
        d[1] = s[1];
        break;
    case 3:
        d[0] = s[0];
        memcpy(d + 1, s + 1, 2);
        break;
    case 5:
        d[0] = s[0];
        memcpy(d + 1, s + 1, 4);
        break;
    case 9:
        d[0] = s[0];
        memcpy(d + 1, s + 1, 8);
        break;
    default:
        memcpy(d, s, n);
    }
    return 0;
}

void
pack_init(struct pack *p, struct buf *out)
{
    msgpack_packer_init(&p->pk, out, pack_write);
    p->out = out;
    p->start = out->len;
    memset(&p->tmp, 0, sizeof p->tmp);
    p->failed = 0;
    p->error[0] = '\0';
}

void
pack_free(struct pack *p)
{
    if (p != NULL)
        arena_free(&p->tmp);
}

/* Records the first failure; always returns -1. */
static int fail(struct pack *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
fail(struct pack *p, const char *fmt, ...)
{
    va_list ap;

    if (p->failed)
        return -1;
    p->failed = 1;
    va_start(ap, fmt);
    vsnprintf(p->error, sizeof p->error, fmt, ap);
    va_end(ap);
    return -1;
}

const char *
pack_error(const struct pack *p)
{
    if (p->failed)
        return p->error;
    return p->out->oom ? "out of memory" : NULL;
}

/* Whether a length or count can be written; what names it in an error. */
static int
len_ok(struct pack *p, size_t n, const char *what)
{
    if (p->failed)
        return 0;
    if (n > PACK_MAX_LEN) {
        fail(p, "%s of %zu exceeds msgpack's limit of 4294967295", what, n);
        return 0;
    }
    return 1;
}

int
pack_str(struct pack *p, const char *s, size_t n)
{
    if (!len_ok(p, n, "string length"))
        return -1;
    msgpack_pack_str_with_body(&p->pk, s, n);
    return 0;
}

int
pack_bin(struct pack *p, const uint8_t *s, size_t n)
{
    if (!len_ok(p, n, "byte string length"))
        return -1;
    msgpack_pack_bin_with_body(&p->pk, s, n);
    return 0;
}

int
pack_array(struct pack *p, size_t n)
{
    if (!len_ok(p, n, "array length"))
        return -1;
    msgpack_pack_array(&p->pk, n);
    return 0;
}

int
pack_map(struct pack *p, size_t n)
{
    if (!len_ok(p, n, "map size"))
        return -1;
    msgpack_pack_map(&p->pk, n);
    return 0;
}

int
pack_msgpack(struct pack *p, const uint8_t *v, size_t n)
{
    struct mpk c;
    int rc;

    if (p->failed)
        return -1;
    mpk_init(&c, v, n);
    rc = mpk_skip(&c);
    if (rc != MPK_OK)
        return fail(p, "raw msgpack value: %s", mpk_strerror(rc));
    if (c.p != c.end)
        return fail(p, "raw msgpack value: %zu trailing byte%s", mpk_left(&c),
                    mpk_left(&c) == 1 ? "" : "s");
    buf_put(p->out, v, n);
    return 0;
}

int
pack_raw(struct pack *p, const struct kv_raw *v)
{
    if (v->kind == KV_RAW_JSON)
        return pack_json(p, (const char *)v->p, v->n);
    return pack_msgpack(p, v->p, v->n);
}

/* ---- JSON text -> msgpack -------------------------------------------- */

/* One JSON value being converted: the scanner and its error text. */
struct jconv {
    struct pack *p;
    struct jscan s;
    char msg[64]; /* the scanner's own wording of a lexical error */
};

/* Records a conversion failure at the scanner's position; returns -1. */
static int
jfail(struct jconv *j, const char *why)
{
    return fail(j->p, "JSON at byte %zu: %s", j->s.i, why);
}

/* A lexical error the scanner has just reported. */
static int
jlex(struct jconv *j)
{
    return jfail(j, j->msg);
}

static int jvalue(struct jconv *j, int depth);

/* A msgpack header for n elements, as msgpack-c writes it, into h[0..5). */
struct hdr {
    char b[5];
    size_t n;
};

static int
hdr_write(void *data, const char *s, size_t n)
{
    struct hdr *h = data;

    memcpy(h->b + h->n, s, n);
    h->n += n;
    return 0;
}

/*
 * An array or object.  Its size is known only at the end, so five bytes
 * (the largest header) are reserved and the body moved down over the
 * unused ones once the count is known.
 */
static int
jcontainer(struct jconv *j, int depth, int is_map)
{
    struct buf *out = j->p->out;
    size_t at = out->len, count = 0;

    if (depth > PACK_JSON_MAX_DEPTH)
        return fail(j->p, "JSON at byte %zu: nested deeper than %d levels",
                    j->s.i, PACK_JSON_MAX_DEPTH);
    if (buf_reserve(out, 5) == -1)
        return -1;
    out->len += 5;
    j->s.i++;
    for (int first = 1;; first = 0) {
        struct kv_str key;
        int rc = is_map ? jscan_member(&j->s, first, &key)
                        : jscan_element(&j->s, first);
        if (rc == -1)
            return jlex(j);
        if (rc == 0)
            break;
        if (is_map && pack_str(j->p, key.p, key.n) == -1)
            return -1;
        if (jvalue(j, depth + 1) == -1)
            return -1;
        count++;
    }
    if (!len_ok(j->p, count, is_map ? "map size" : "array length"))
        return -1;

    struct hdr h = {{0}, 0};
    msgpack_packer hp;
    msgpack_packer_init(&hp, &h, hdr_write);
    if (is_map)
        msgpack_pack_map(&hp, count);
    else
        msgpack_pack_array(&hp, count);
    memmove(out->p + at + h.n, out->p + at + 5, out->len - at - 5);
    memcpy(out->p + at, h.b, h.n);
    out->len -= 5 - h.n;
    return 0;
}

/* A number: an integer in its smallest form, anything else as float64. */
static int
jnumber(struct jconv *j)
{
    struct jscan_num num;

    if (jscan_number(&j->s, &num) == -1)
        return jlex(j);
    if (num.is_int) {
        if (num.ovf || (num.neg && num.mag > (uint64_t)1 << 63)) {
            j->s.i = num.start;
            return jfail(j, "integer outside the 64-bit range");
        }
        if (num.neg && num.mag != 0)
            pack_int(j->p, (int64_t)((uint64_t)0 - num.mag));
        else
            pack_uint(j->p, num.mag);
        return 0;
    }
    /* Rounded as strtod rounds, as Python reads it. */
    double d;
    if (jscan_num_double(&j->s, &num, &d) == -1)
        return fail(j->p, "out of memory");
    if (isinf(d)) {
        j->s.i = num.start;
        return jfail(j, "number outside the range of a double");
    }
    pack_f64(j->p, d);
    return 0;
}

/* Consumes the literal w (n bytes) if it is next. */
static int
jword(struct jconv *j, const char *w, size_t n)
{
    if (j->s.n - j->s.i < n || memcmp(j->s.s + j->s.i, w, n) != 0)
        return 0;
    j->s.i += n;
    return 1;
}

/* Converts the value at the cursor; depth counts its enclosing levels. */
static int
jvalue(struct jconv *j, int depth)
{
    struct kv_str str;
    int c = jscan_peek(&j->s);

    switch (c) {
    case '{':
    case '[':
        return jcontainer(j, depth, c == '{');
    case '"':
        if (jscan_string(&j->s, &str) == -1)
            return jlex(j);
        return pack_str(j->p, str.p, str.n);
    case 't':
    case 'f':
    case 'n':
        if (jword(j, "true", 4))
            pack_bool(j->p, 1);
        else if (jword(j, "false", 5))
            pack_bool(j->p, 0);
        else if (jword(j, "null", 4))
            pack_nil(j->p);
        else
            return jfail(j, "unexpected character");
        return 0;
    case -1:
        return jfail(j, "unexpected end of input");
    default:
        if (c == '-' || (c >= '0' && c <= '9'))
            return jnumber(j);
        return jfail(j, "unexpected character");
    }
}

int
pack_json(struct pack *p, const char *text, size_t n)
{
    struct jconv j;
    size_t at = p->out->len;

    if (p->failed)
        return -1;
    j.p = p;
    j.msg[0] = '\0';
    arena_reset(&p->tmp);
    jscan_init(&j.s, text, n, &p->tmp, j.msg, sizeof j.msg);
    int rc = jvalue(&j, 1);
    if (rc == 0) {
        jscan_ws(&j.s);
        if (j.s.i != n)
            rc = jfail(&j, "text after the value");
    }
    if (rc == 0 && p->out->oom)
        rc = fail(p, "out of memory");
    if (rc == -1 && !p->out->oom)
        p->out->len = at;
    return rc;
}

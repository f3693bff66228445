/*
 * ndjson.c - struct kv_event <-> kvtap NDJSON lines (docs/ndjson.md and the
 * team's format decisions).
 *
 * The writer appends straight into a struct buf: it reserves an upper
 * bound for a line once and then writes keys, digits and escapes through a
 * raw pointer, because kvsub prints every event it decodes (token ids from
 * a 3-digit table, hashes and other integers 8 digits at a time in a
 * register, timestamps without printf).  The reader is a single-pass JSON
 * parser over one line that fills a struct kv_event directly; its lexical
 * work (strings borrowed wherever no unescaping is needed, numbers, hash
 * text, token ids and string bytes 8 at a time) is jscan.c's, and the
 * event semantics, the messages and the JSON->msgpack conversion are
 * here.  Both keep to the bytes they are given: nothing is read past a
 * line, a generic value or a string.
 */
#include "ndjson.h"

#include "jscan.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Generic values (extra_keys, unknown fields) nest at most this deep. */
#define NDJSON_MAX_DEPTH 64

/* ------------------------------------------------------------------ */
/* Writer                                                              */
/* ------------------------------------------------------------------ */

static const char digits2[] = "00010203040506070809"
                              "10111213141516171819"
                              "20212223242526272829"
                              "30313233343536373839"
                              "40414243444546474849"
                              "50515253545556575859"
                              "60616263646566676869"
                              "70717273747576777879"
                              "80818283848586878889"
                              "90919293949596979899";

static const char hexdig[] = "0123456789abcdef";

/* Room for n more bytes at the end of out, or NULL once out is oom. */
static char *
wr_room(struct buf *out, size_t n)
{
    if (buf_reserve(out, n) == -1)
        return NULL;
    return out->p + out->len;
}

/* Writes v's digits ending at end, two at a time; returns their start. */
static char *
put_digits32(char *end, uint32_t v)
{
    while (v >= 100) {
        uint32_t r = v % 100;
        v /= 100;
        end -= 2;
        memcpy(end, digits2 + 2 * r, 2);
    }
    if (v >= 10) {
        end -= 2;
        memcpy(end, digits2 + 2 * v, 2);
    } else {
        *--end = (char)('0' + v);
    }
    return end;
}

/* Number of decimal digits of v. */
static size_t
ndigits32(uint32_t v)
{
    if (v < 100000) {
        if (v < 100)
            return v < 10 ? 1 : 2;
        return v < 1000 ? 3 : v < 10000 ? 4 : 5;
    }
    if (v < 10000000)
        return v < 1000000 ? 6 : 7;
    return v < 100000000 ? 8 : v < 1000000000 ? 9 : 10;
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define NDJSON_SWAR 1

/*
 * The 8 decimal digits of v < 10^8 as 8 digit values (0-9) in the bytes of
 * a word, most significant first in memory: split 4+4, then 2+2 per half,
 * then 1+1, each step a multiply-shift in every lane at once.
 */
static inline uint64_t
swar8(uint32_t v)
{
    uint64_t x = (uint64_t)(v / 10000) | (uint64_t)(v % 10000) << 32;
    uint64_t q = (x * 10486) >> 20 & 0x0000007f0000007full; /* /100 */
    x = q | (x - q * 100) << 16;
    q = (x * 103) >> 10 & 0x000f000f000f000full; /* /10 */
    return q | (x - q * 10) << 8;
}
#endif

/*
 * Writes v in decimal at dst (room for 10 bytes); returns the length.  The
 * digits are made in a register and stored with one 8-byte move: no
 * branch on the length, and no temporary to copy from (that stalls on
 * store-to-load forwarding).
 */
static inline size_t
fmt_u32(char *dst, uint32_t v)
{
#ifdef NDJSON_SWAR
    if (v < 100000000) {
        if (v < 10) {
            *dst = (char)('0' + v);
            return 1;
        }
        uint64_t x = swar8(v);
        int lz = __builtin_ctzll(x) / 8; /* leading zero digits */
        x = (x >> (8 * lz)) + 0x3030303030303030ull;
        memcpy(dst, &x, 8);
        return (size_t)(8 - lz);
    }
#endif
    size_t n = ndigits32(v);
    put_digits32(dst + n, v);
    return n;
}

/* Writes v < 10^8 as exactly 8 digits, leading zeros included. */
static void
fmt_8digits(char *dst, uint32_t v)
{
#ifdef NDJSON_SWAR
    uint64_t x = swar8(v) + 0x3030303030303030ull;
    memcpy(dst, &x, 8);
#else
    for (int k = 7; k >= 0; k--) {
        dst[k] = (char)('0' + v % 10);
        v /= 10;
    }
#endif
}

/* Writes v in decimal at dst (room for 20 bytes); returns the length. */
static size_t
fmt_u64(char *dst, uint64_t v)
{
    if (v < 100000000)
        return fmt_u32(dst, (uint32_t)v);
    uint32_t lo = (uint32_t)(v % 100000000);
    uint64_t hi = v / 100000000;
    size_t n;
    if (hi < 100000000) {
        n = fmt_u32(dst, (uint32_t)hi);
    } else {
        n = fmt_u32(dst, (uint32_t)(hi / 100000000));
        fmt_8digits(dst + n, (uint32_t)(hi % 100000000));
        n += 8;
    }
    fmt_8digits(dst + n, lo);
    return n + 8;
}

/*
 * buf_put_double()'s text, without printf, for 1 <= |v| < 10^14 (every
 * timestamp): the first of 15, 16, 17 significant digits that reads back
 * as v.  Rounding and the read-back test are exact integer arithmetic on
 * v = M * 2^-s, so the result is what glibc's correctly rounded %.*g and
 * strtod give.  Returns the length (at most 24), or 0 outside that range.
 */
static size_t
fmt_double_fast(char *dst, double v)
{
    typedef unsigned __int128 u128;
    static const uint64_t pow10[] = {1,
                                     10,
                                     100,
                                     1000,
                                     10000,
                                     100000,
                                     1000000,
                                     10000000,
                                     100000000,
                                     1000000000,
                                     10000000000ull,
                                     100000000000ull,
                                     1000000000000ull,
                                     10000000000000ull,
                                     100000000000000ull,
                                     1000000000000000ull,
                                     10000000000000000ull};
    double a = fabs(v);
    char *q = dst;

    if (!(a >= 1.0 && a < 1e14))
        return 0;
    if (v < 0)
        *q++ = '-';
    uint64_t ipart = (uint64_t)a;
    if ((double)ipart == a)
        return (size_t)(q - dst) + fmt_u64(q, ipart);

    int e;
    double fr = frexp(a, &e); /* a = fr * 2^e, fr in [0.5, 1) */
    uint64_t m = (uint64_t)ldexp(fr, 53);
    int sh = 53 - e; /* a = m * 2^-sh, 6 <= sh <= 52 here */
    int ndig = 1;
    while (ndig < 14 && ipart >= pow10[ndig])
        ndig++;

    uint64_t digits = 0;
    int dec = 0;
    for (int prec = 15; prec <= 17; prec++) {
        dec = prec - ndig;
        u128 n = (u128)m * pow10[dec];
        u128 rem = n & (((u128)1 << sh) - 1);
        u128 half = (u128)1 << (sh - 1);
        digits = (uint64_t)(n >> sh);
        if (rem > half || (rem == half && (digits & 1)))
            digits++;
        if (prec == 17)
            break;
        /* Reads back iff |digits/10^dec - v| is under half an ulp of v. */
        u128 back = (u128)digits << sh;
        u128 diff = back >= n ? back - n : n - back;
        u128 twice = 2 * diff;
        u128 unit = pow10[dec];
        if (back < n && m == (uint64_t)1 << 52)
            twice *= 2; /* the gap below a power of two is half as wide */
        if (twice < unit || (twice == unit && !(m & 1)))
            break;
    }
    uint64_t ip = digits / pow10[dec], fp = digits % pow10[dec];
    q += fmt_u64(q, ip);
    if (fp != 0) {
        while (fp % 10 == 0) {
            fp /= 10;
            dec--;
        }
        *q++ = '.';
        char tmp[20];
        char *end = tmp + sizeof tmp;
        for (int k = 0; k < dec; k++) {
            *--end = (char)('0' + fp % 10);
            fp /= 10;
        }
        memcpy(q, end, (size_t)dec);
        q += dec;
    }
    return (size_t)(q - dst);
}

/* A double as buf_put_double() writes it, with the fast path first. */
static void
wr_double(struct buf *out, double v)
{
    char *q = wr_room(out, 48);
    if (q == NULL)
        return;
    size_t n = fmt_double_fast(q, v);
    if (n > 0)
        out->len += n;
    else
        buf_put_double(out, v);
}

static void
wr_lit(struct buf *out, const char *s, size_t n)
{
    buf_put(out, s, n);
}

#define WR_LIT(out, s) wr_lit((out), (s), sizeof(s) - 1)

static void
wr_u64(struct buf *out, uint64_t v)
{
    char *q = wr_room(out, 20);
    if (q != NULL)
        out->len += fmt_u64(q, v);
}

static void
wr_i64(struct buf *out, int64_t v)
{
    char *q = wr_room(out, 21);
    if (q == NULL)
        return;
    if (v < 0) {
        *q++ = '-';
        out->len++;
        /* Negate in unsigned arithmetic so INT64_MIN does not overflow. */
        out->len += fmt_u64(q, (uint64_t)0 - (uint64_t)v);
    } else {
        out->len += fmt_u64(q, (uint64_t)v);
    }
}

/*
 * Length of the well-formed UTF-8 sequence at s[0..n), or 0 when the bytes
 * there start an ill-formed one; *bad is then the length of its maximal
 * subpart (the bytes one U+FFFD replaces, as Unicode and Python's
 * errors="replace" count them).
 */
static size_t
utf8_seq(const unsigned char *s, size_t n, size_t *bad)
{
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xbf;

    if (c >= 0xc2 && c <= 0xdf) {
        need = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else {
        *bad = 1;
        return 0;
    }
    size_t k = 1;
    while (k < need && k < n) {
        unsigned char d = s[k];
        if (k == 1 ? (d < lo || d > hi) : (d < 0x80 || d > 0xbf))
            break;
        k++;
    }
    if (k == need)
        return need;
    *bad = k;
    return 0;
}

/* Whether any of the 8 bytes in x is a control byte, '"', '\\' or >= 0x80. */
static int
needs_escape8(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101ull;
    const uint64_t high = 0x8080808080808080ull;
    uint64_t q = x ^ (ones * '"');
    uint64_t b = x ^ (ones * '\\');
    uint64_t m = (x - ones * 0x20) & ~x; /* bytes below 0x20 */
    m |= (q - ones) & ~q;                /* bytes equal to '"' */
    m |= (b - ones) & ~b;                /* bytes equal to '\\' */
    return ((m | x) & high) != 0;        /* x & high: bytes >= 0x80 */
}

/*
 * A JSON string literal: \" \\ \n \r \t escaped, other control bytes as
 * \u00XX, valid UTF-8 copied, each maximal ill-formed subpart replaced by
 * U+FFFD.  Writes at q, which has room for str_bound(n) bytes; returns
 * the end.
 */
static char *
put_str(char *q, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;

    *q++ = '"';
    while (i < n) {
        /* Eight plain bytes at a time, then byte by byte. */
        while (n - i >= 8) {
            uint64_t x;
            memcpy(&x, s + i, 8);
            if (needs_escape8(x))
                break;
            memcpy(q, &x, 8);
            q += 8;
            i += 8;
        }
        if (i == n)
            break;
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            *q++ = (char)c;
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t bad = 0;
            size_t k = utf8_seq(s + i, n - i, &bad);
            if (k != 0) {
                memcpy(q, s + i, k);
                q += k;
                i += k;
            } else {
                memcpy(q, "\xef\xbf\xbd", 3);
                q += 3;
                i += bad;
            }
            continue;
        }
        *q++ = '\\';
        switch (c) {
        case '"':
            *q++ = '"';
            break;
        case '\\':
            *q++ = '\\';
            break;
        case '\n':
            *q++ = 'n';
            break;
        case '\r':
            *q++ = 'r';
            break;
        case '\t':
            *q++ = 't';
            break;
        default:
            memcpy(q, "u00", 3);
            q[3] = hexdig[c >> 4];
            q[4] = hexdig[c & 15];
            q += 5;
        }
        i++;
    }
    *q++ = '"';
    return q;
}

/* Room put_str() may need for n bytes: each can become \u00XX. */
static size_t
str_bound(size_t n)
{
    return n > (SIZE_MAX - 2) / 6 ? SIZE_MAX : 6 * n + 2;
}

static void
wr_str(struct buf *out, const char *s, size_t n)
{
    char *q = wr_room(out, str_bound(n));
    if (q != NULL)
        out->len = (size_t)(put_str(q, s, n) - out->p);
}

static void
wr_hexstr(struct buf *out, const uint8_t *p, size_t n)
{
    buf_putc(out, '"');
    buf_put_hex(out, p, n);
    buf_putc(out, '"');
}

/* ---- msgpack -> JSON, for extra_keys and unknown fields ---- */

struct mp_cur {
    const uint8_t *p;
    const uint8_t *end;
};

static int
mp_take(struct mp_cur *c, size_t n, const uint8_t **out)
{
    if ((size_t)(c->end - c->p) < n)
        return -1;
    *out = c->p;
    c->p += n;
    return 0;
}

static uint64_t
be_read(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Reads a big-endian length of n bytes. */
static int
mp_len(struct mp_cur *c, size_t n, uint64_t *len)
{
    const uint8_t *p;
    if (mp_take(c, n, &p) == -1)
        return -1;
    *len = be_read(p, n);
    return 0;
}

static int mp_to_json(struct buf *out, struct mp_cur *c, int depth);

/* Writes a non-string map key as a JSON string (ndjson decisions). */
static int
mp_key_to_json(struct buf *out, struct mp_cur *c, int depth)
{
    uint8_t t = *c->p;
    size_t mark = out->len;

    /* Strings are keys as they are; everything else is stringified. */
    if ((t >= 0xa0 && t <= 0xbf) || (t >= 0xd9 && t <= 0xdb))
        return mp_to_json(out, c, depth);
    int isint = t <= 0x7f || t >= 0xe0 || (t >= 0xcc && t <= 0xd3);
    if (isint)
        buf_putc(out, '"');
    if (mp_to_json(out, c, depth) == -1)
        return -1;
    if (isint) {
        buf_putc(out, '"');
        return 0;
    }
    /* Re-quote the value's JSON text as a string. */
    size_t n = out->len - mark;
    char *tmp = malloc(n ? n : 1);
    if (tmp == NULL)
        return -1;
    memcpy(tmp, out->p + mark, n);
    out->len = mark;
    wr_str(out, tmp, n);
    free(tmp);
    return 0;
}

/*
 * Converts exactly one msgpack object at c to JSON.  Returns 0, or -1 when
 * the bytes are truncated, use the reserved byte 0xc1 or nest deeper than
 * NDJSON_MAX_DEPTH (the caller then rolls back and writes null).
 */
static int
mp_to_json(struct buf *out, struct mp_cur *c, int depth)
{
    const uint8_t *p;
    uint64_t n = 0;
    int is_map = 0;

    if (depth > NDJSON_MAX_DEPTH || mp_take(c, 1, &p) == -1)
        return -1;
    uint8_t t = p[0];
    if (t <= 0x7f) {
        wr_u64(out, t);
        return 0;
    }
    if (t >= 0xe0) {
        wr_i64(out, (int8_t)t);
        return 0;
    }
    if (t >= 0xa0 && t <= 0xbf) {
        n = t & 0x1f;
        goto str;
    }
    if (t >= 0x90 && t <= 0x9f) {
        n = t & 0x0f;
        goto array;
    }
    if (t >= 0x80 && t <= 0x8f) {
        n = t & 0x0f;
        is_map = 1;
        goto array;
    }
    switch (t) {
    case 0xc0:
        WR_LIT(out, "null");
        return 0;
    case 0xc2:
        WR_LIT(out, "false");
        return 0;
    case 0xc3:
        WR_LIT(out, "true");
        return 0;
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf: {
        size_t w = (size_t)1 << (t - 0xcc);
        if (mp_take(c, w, &p) == -1)
            return -1;
        wr_u64(out, be_read(p, w));
        return 0;
    }
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
        size_t w = (size_t)1 << (t - 0xd0);
        if (mp_take(c, w, &p) == -1)
            return -1;
        uint64_t u = be_read(p, w);
        /* Sign-extend from w bytes. */
        if (w < 8 && (u >> (8 * w - 1)) & 1)
            u |= ~(uint64_t)0 << (8 * w);
        wr_i64(out, (int64_t)u);
        return 0;
    }
    case 0xca: {
        if (mp_take(c, 4, &p) == -1)
            return -1;
        uint32_t u = (uint32_t)be_read(p, 4);
        float f;
        memcpy(&f, &u, sizeof f);
        wr_double(out, (double)f);
        return 0;
    }
    case 0xcb: {
        if (mp_take(c, 8, &p) == -1)
            return -1;
        uint64_t u = be_read(p, 8);
        double d;
        memcpy(&d, &u, sizeof d);
        wr_double(out, d);
        return 0;
    }
    case 0xd9:
    case 0xda:
    case 0xdb:
        if (mp_len(c, (size_t)1 << (t - 0xd9), &n) == -1)
            return -1;
        goto str;
    case 0xc4:
    case 0xc5:
    case 0xc6:
        if (mp_len(c, (size_t)1 << (t - 0xc4), &n) == -1 ||
            mp_take(c, n, &p) == -1)
            return -1;
        wr_hexstr(out, p, n);
        return 0;
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
        /* fixext: a type byte, then 1, 2, 4, 8 or 16 data bytes. */
        n = (uint64_t)1 << (t - 0xd4);
        if (mp_take(c, 1, &p) == -1 || mp_take(c, n, &p) == -1)
            return -1;
        wr_hexstr(out, p, n);
        return 0;
    case 0xc7:
    case 0xc8:
    case 0xc9:
        if (mp_len(c, (size_t)1 << (t - 0xc7), &n) == -1 ||
            mp_take(c, 1, &p) == -1 || mp_take(c, n, &p) == -1)
            return -1;
        wr_hexstr(out, p, n);
        return 0;
    case 0xdc:
    case 0xdd:
        if (mp_len(c, t == 0xdc ? 2 : 4, &n) == -1)
            return -1;
        goto array;
    case 0xde:
    case 0xdf:
        if (mp_len(c, t == 0xde ? 2 : 4, &n) == -1)
            return -1;
        is_map = 1;
        goto array;
    default:
        return -1; /* 0xc1 */
    }

str:
    if (mp_take(c, n, &p) == -1)
        return -1;
    wr_str(out, (const char *)p, n);
    return 0;

array:
    /* Every element takes at least one byte: reject a lying header now. */
    if (n > (uint64_t)(c->end - c->p) / (is_map ? 2 : 1))
        return -1;
    buf_putc(out, is_map ? '{' : '[');
    for (uint64_t k = 0; k < n; k++) {
        if (k > 0)
            buf_putc(out, ',');
        if (is_map) {
            if (c->p >= c->end || mp_key_to_json(out, c, depth + 1) == -1)
                return -1;
            buf_putc(out, ':');
        }
        if (mp_to_json(out, c, depth + 1) == -1)
            return -1;
    }
    buf_putc(out, is_map ? '}' : ']');
    return 0;
}

/* A kv_raw value as JSON; null when it is not exactly one sound object. */
static void
wr_raw(struct buf *out, struct kv_raw r)
{
    size_t mark = out->len;
    struct mp_cur c = {r.p, r.p + r.n};

    /* vLLM's usual extra_keys, [None] * blocks, written directly. */
    if (r.p != NULL && r.n >= 2 && r.n <= 16 && r.p[0] == (0x90 | (r.n - 1))) {
        size_t k = 1;
        while (k < r.n && r.p[k] == 0xc0)
            k++;
        char *q = k == r.n ? wr_room(out, 5 * r.n + 1) : NULL;
        if (q != NULL) {
            *q++ = '[';
            for (k = 1; k < r.n; k++) {
                memcpy(q, "null,", 5);
                q += 5;
            }
            q[-1] = ']';
            out->len = (size_t)(q - out->p);
            return;
        }
    }
    if (r.p == NULL || mp_to_json(out, &c, 1) == -1 || c.p != c.end) {
        if (!out->oom)
            out->len = mark;
        WR_LIT(out, "null");
    }
}

/* ---- event bodies ---- */

/*
 * Keys are copied with a constant size from zero-padded slots, so that the
 * copy is a few moves instead of a library call; the room reserved for a
 * line therefore includes KEYPAD bytes of slack.
 */
#define KEYPAD 40

struct padded {
    char s[KEYPAD];
    size_t n;
};

#define PAD(lit)                                                               \
    {                                                                          \
        lit, sizeof(lit) - 1                                                   \
    }

/* ,"name": for each field, in enum kv_field order. */
static const struct padded field_keys[KV_F_COUNT] = {
    [KV_F_BLOCK_HASHES] = PAD(",\"block_hashes\":"),
    [KV_F_PARENT_BLOCK_HASH] = PAD(",\"parent_block_hash\":"),
    [KV_F_TOKEN_IDS] = PAD(",\"token_ids\":"),
    [KV_F_BLOCK_SIZE] = PAD(",\"block_size\":"),
    [KV_F_LORA_ID] = PAD(",\"lora_id\":"),
    [KV_F_MEDIUM] = PAD(",\"medium\":"),
    [KV_F_LORA_NAME] = PAD(",\"lora_name\":"),
    [KV_F_EXTRA_KEYS] = PAD(",\"extra_keys\":"),
    [KV_F_GROUP_IDX] = PAD(",\"group_idx\":"),
    [KV_F_KV_CACHE_SPEC_KIND] = PAD(",\"kv_cache_spec_kind\":"),
    [KV_F_KV_CACHE_SPEC_SLIDING_WINDOW] =
        PAD(",\"kv_cache_spec_sliding_window\":"),
    [KV_F_LOCALITY] = PAD(",\"locality\":"),
    [KV_F_OWNERSHIP] = PAD(",\"ownership\":"),
    [KV_F_CACHE_SALT] = PAD(",\"cache_salt\":"),
    [KV_F_SESSION_ID] = PAD(",\"session_id\":"),
};

/* ,"type":"Name" for each type. */
static const struct padded type_keys[KV_TYPE_COUNT] = {
    [KV_BLOCK_STORED] = PAD(",\"type\":\"BlockStored\""),
    [KV_BLOCK_REMOVED] = PAD(",\"type\":\"BlockRemoved\""),
    [KV_ALL_BLOCKS_CLEARED] = PAD(",\"type\":\"AllBlocksCleared\""),
    [KV_GAP] = PAD(",\"type\":\"gap\""),
    [KV_RESTART] = PAD(",\"type\":\"restart\""),
    [KV_DECODE_ERROR] = PAD(",\"type\":\"decode_error\""),
    [KV_SKIPPED] = PAD(",\"type\":\"skipped\""),
    [KV_SNAPSHOT_BEGIN] = PAD(",\"type\":\"snapshot_begin\""),
    [KV_SNAPSHOT_END] = PAD(",\"type\":\"snapshot_end\""),
};

static char *
put_padded(char *q, const struct padded *k)
{
    memcpy(q, k->s, KEYPAD);
    return q + k->n;
}

/* a + b, saturating: an impossible size makes the reservation fail. */
static size_t
add_sat(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

static size_t
mul_sat(size_t a, size_t b)
{
    return b != 0 && a > SIZE_MAX / b ? SIZE_MAX : a * b;
}

/* A hash as "digits" (22 bytes of room). */
static char *
put_hash(char *q, uint64_t v)
{
    *q++ = '"';
    q += fmt_u64(q, v);
    *q++ = '"';
    return q;
}

/*
 * Per hash: a quote, 20 digits, a quote, a comma; fmt_u64 needs 20 bytes of
 * room after the quote, which the next hash's budget (or the 2 bytes of
 * brackets plus the caller's slack) covers.
 */
static char *
put_hashes(char *q, const struct kv_hash *h, size_t n)
{
    *q++ = '[';
    for (size_t k = 0; k < n; k++) {
        if (k > 0)
            *q++ = ',';
        q = put_hash(q, h[k].v);
    }
    *q++ = ']';
    return q;
}

/* "000" to "999", each with a NUL: 4 KiB that stay in cache. */
#define T10(p)                                                                 \
    p "0", p "1", p "2", p "3", p "4", p "5", p "6", p "7", p "8", p "9"
#define T100(p)                                                                \
    T10(p "0"), T10(p "1"), T10(p "2"), T10(p "3"), T10(p "4"), T10(p "5"),    \
        T10(p "6"), T10(p "7"), T10(p "8"), T10(p "9")
static const char dig3[1000][4] = {T100("0"), T100("1"), T100("2"), T100("3"),
                                   T100("4"), T100("5"), T100("6"), T100("7"),
                                   T100("8"), T100("9")};
#undef T100
#undef T10

/*
 * A token id (room for 10 bytes): vocabularies are below 10^6, so this is
 * at most two lookups of three digits, with the length of the first group
 * computed without a branch.  Larger values take fmt_u32().
 */
static inline size_t
fmt_token(char *q, uint32_t v)
{
    if (v >= 1000000)
        return fmt_u32(q, v);
    uint32_t hi = v / 1000, lo = v % 1000;
    uint32_t first = hi != 0 ? hi : lo;
    size_t len = 1 + (first >= 10) + (first >= 100);
    /* The last len digits of the entry (reads stay inside the table). */
    memcpy(q, (const char *)dig3 + 4 * first + 3 - len, 4);
    if (hi == 0)
        return len;
    memcpy(q + len, dig3[lo], 4);
    return len + 3;
}

/* 10 digits and a comma per value, plus "[]," around each pair. */
static char *
put_tokens(char *q, const struct kv_event *ev)
{
    const uint32_t *t = ev->tokens;

    *q++ = '[';
    if (ev->token_pairs) {
        for (size_t k = 0; k < ev->n_tokens; k++) {
            if (k > 0)
                *q++ = ',';
            *q++ = '[';
            q += fmt_token(q, t[2 * k]);
            *q++ = ',';
            q += fmt_token(q, t[2 * k + 1]);
            *q++ = ']';
        }
    } else if (ev->n_tokens > 0) {
        q += fmt_token(q, t[0]);
        for (size_t k = 1; k < ev->n_tokens; k++) {
            *q++ = ',';
            q += fmt_token(q, t[k]);
        }
    }
    *q++ = ']';
    return q;
}

static char *
put_i64(char *q, int64_t v)
{
    if (v < 0) {
        *q++ = '-';
        /* Negate in unsigned arithmetic so INT64_MIN does not overflow. */
        return q + fmt_u64(q, (uint64_t)0 - (uint64_t)v);
    }
    return q + fmt_u64(q, (uint64_t)v);
}

/* Room a field's value may take (RAW values are written separately). */
static size_t
field_bound(const struct kv_event *ev, enum kv_field f, uint32_t live)
{
    if (!(live & KV_BIT(f)))
        return 4; /* null */
    switch (kv_fields[f].kind) {
    case KV_K_HASHES:
        return add_sat(mul_sat(ev->n_hashes, 23), 24);
    case KV_K_HASH:
        return 24;
    case KV_K_TOKENS:
        return add_sat(mul_sat(ev->n_tokens, ev->token_pairs ? 28 : 14), 12);
    case KV_K_INT:
        return 24;
    case KV_K_STR:
        return str_bound(ev->str[f].n);
    case KV_K_RAW:
        return 0;
    }
    return 0;
}

/* A value into room reserved by field_bound(). */
static char *
put_field(char *q, const struct kv_event *ev, enum kv_field f)
{
    switch (kv_fields[f].kind) {
    case KV_K_HASHES:
        return put_hashes(q, ev->hashes, ev->n_hashes);
    case KV_K_HASH:
        return put_hash(q, ev->parent.v);
    case KV_K_TOKENS:
        return put_tokens(q, ev);
    case KV_K_INT:
        /*
         * lora_id is the one signed field; the others are unsigned on the
         * wire and kept as their u64 bit pattern.
         */
        if (f == KV_F_LORA_ID)
            return put_i64(q, ev->num[f]);
        return q + fmt_u64(q, (uint64_t)ev->num[f]);
    case KV_K_STR:
        return put_str(q, ev->str[f].p, ev->str[f].n);
    case KV_K_RAW:
        break;
    }
    return q;
}

/* block_digests, parent_block_digest and unknown fields (rare). */
static void
wr_engine_extras(struct buf *out, const struct kv_event *ev, uint32_t live)
{
    int any_digest = 0;
    for (size_t k = 0;
         (live & KV_BIT(KV_F_BLOCK_HASHES)) && k < ev->n_hashes && !any_digest;
         k++)
        any_digest = ev->hashes[k].digest != NULL;
    if (any_digest) {
        WR_LIT(out, ",\"block_digests\":[");
        for (size_t k = 0; k < ev->n_hashes; k++) {
            if (k > 0)
                buf_putc(out, ',');
            if (ev->hashes[k].digest != NULL)
                wr_hexstr(out, ev->hashes[k].digest, ev->hashes[k].digest_len);
            else
                WR_LIT(out, "null");
        }
        buf_putc(out, ']');
    }
    if ((live & KV_BIT(KV_F_PARENT_BLOCK_HASH)) && ev->parent.digest != NULL) {
        WR_LIT(out, ",\"parent_block_digest\":");
        wr_hexstr(out, ev->parent.digest, ev->parent.digest_len);
    }
    for (size_t k = 0; k < ev->n_unknown; k++) {
        const struct kv_unknown *u = &ev->unknown[k];
        buf_putc(out, ',');
        if (u->pos >= 0) {
            WR_LIT(out, "\"@");
            wr_u64(out, (uint64_t)u->pos);
            buf_putc(out, '"');
        } else {
            wr_str(out, u->key.p, u->key.n);
        }
        buf_putc(out, ':');
        wr_raw(out, u->val);
    }
}

/*
 * The fields of an engine event: written when present, and the required
 * ones always (null when absent).  Room for everything but generic values
 * is reserved once; a generic value goes through the buffer API and the
 * room is reserved again after it.
 */
static void
wr_engine_body(struct buf *out, const struct kv_event *ev)
{
    uint32_t want = ev->present | kv_required_fields(ev->type);
    uint32_t live = ev->present & ~ev->isnull;
    size_t bound = KEYPAD + 2;

    want &= KV_BIT(KV_F_COUNT) - 1;
    for (uint32_t m = want; m != 0; m &= m - 1) {
        int f = __builtin_ctz(m);
        bound = add_sat(bound, add_sat(KEYPAD, field_bound(ev, f, live)));
    }
    char *q = wr_room(out, bound);
    if (q == NULL)
        return;
    for (uint32_t m = want; m != 0; m &= m - 1) {
        int f = __builtin_ctz(m);
        q = put_padded(q, &field_keys[f]);
        if (!(live & KV_BIT(f))) {
            memcpy(q, "null", 4);
            q += 4;
        } else if (kv_fields[f].kind == KV_K_RAW) {
            out->len = (size_t)(q - out->p);
            wr_raw(out, ev->raw[f]);
            if ((q = wr_room(out, bound)) == NULL)
                return;
        } else {
            q = put_field(q, ev, (enum kv_field)f);
        }
    }
    int extras =
        ev->n_unknown > 0 ||
        ((live & KV_BIT(KV_F_PARENT_BLOCK_HASH)) && ev->parent.digest != NULL);
    for (size_t k = 0;
         !extras && (live & KV_BIT(KV_F_BLOCK_HASHES)) && k < ev->n_hashes; k++)
        extras = ev->hashes[k].digest != NULL;
    if (extras) {
        out->len = (size_t)(q - out->p);
        wr_engine_extras(out, ev, live);
        WR_LIT(out, "}\n");
        return;
    }
    memcpy(q, "}\n", 2);
    out->len = (size_t)(q + 2 - out->p);
}

static int
is_engine(enum kv_type t)
{
    return t == KV_BLOCK_STORED || t == KV_BLOCK_REMOVED ||
           t == KV_ALL_BLOCKS_CLEARED;
}

/* Everything after "type":"...", up to and including the newline. */
static void
wr_body(struct buf *out, const struct kv_event *ev)
{
    switch (ev->type) {
    case KV_BLOCK_STORED:
    case KV_BLOCK_REMOVED:
    case KV_ALL_BLOCKS_CLEARED:
        wr_engine_body(out, ev);
        return;
    case KV_GAP:
        WR_LIT(out, ",\"from\":");
        wr_u64(out, ev->from);
        WR_LIT(out, ",\"to\":");
        wr_u64(out, ev->to);
        break;
    case KV_RESTART:
        WR_LIT(out, ",\"last_seq\":");
        wr_u64(out, ev->last_seq);
        break;
    case KV_DECODE_ERROR:
        WR_LIT(out, ",\"error\":");
        wr_str(out, ev->error.p, ev->error.n);
        WR_LIT(out, ",\"bytes\":");
        wr_u64(out, ev->bytes);
        break;
    case KV_SKIPPED:
        WR_LIT(out, ",\"tag\":");
        wr_str(out, ev->tag.p, ev->tag.n);
        WR_LIT(out, ",\"count\":");
        wr_u64(out, ev->count);
        break;
    default:
        break;
    }
    WR_LIT(out, "}\n");
}

static void
wr_type(struct buf *out, enum kv_type t)
{
    if ((unsigned)t >= KV_TYPE_COUNT) {
        WR_LIT(out, ",\"type\":\"unknown\"");
        return;
    }
    char *q = wr_room(out, KEYPAD);
    if (q != NULL)
        out->len = (size_t)(put_padded(q, &type_keys[t]) - out->p);
}

/* {"pod":…,"model":…,"dp_rank":…,"stream":…  (without seq, i, ts, type). */
static void
wr_env_start(struct buf *out, struct kv_str pod, struct kv_str model,
             int has_rank, int64_t rank, struct kv_str stream)
{
    WR_LIT(out, "{\"pod\":");
    wr_str(out, pod.p, pod.n);
    if (model.p != NULL) {
        WR_LIT(out, ",\"model\":");
        wr_str(out, model.p, model.n);
    }
    WR_LIT(out, ",\"dp_rank\":");
    if (has_rank)
        wr_i64(out, rank);
    else
        WR_LIT(out, "null");
    if (stream.p != NULL) {
        WR_LIT(out, ",\"stream\":");
        wr_str(out, stream.p, stream.n);
    }
}

void
ndjson_write_event(struct buf *out, const struct ndjson_env *env,
                   const struct kv_event *ev)
{
    wr_env_start(out, env->pod, env->model, env->has_rank, env->rank,
                 env->stream);
    if (env->has_seq) {
        WR_LIT(out, ",\"seq\":");
        wr_u64(out, env->seq);
    }
    if (env->has_i) {
        WR_LIT(out, ",\"i\":");
        wr_u64(out, env->i);
    }
    if (env->has_ts) {
        WR_LIT(out, ",\"ts\":");
        wr_double(out, env->ts);
    }
    wr_type(out, ev->type);
    wr_body(out, ev);
}

void
ndjson_write_batch(struct buf *out, const struct ndjson_source *src,
                   const struct kv_batch *b)
{
    /* ,"ts":X is at most 6 + 24 bytes; copied with a constant size. */
    char ts[48] = {0};
    size_t ts_len = 0;

    if (b->n_events == 0)
        return;

    /* Format ,"ts":X once, at the end of out, and keep a copy. */
    if (b->has_ts) {
        size_t mark = out->len;
        WR_LIT(out, ",\"ts\":");
        wr_double(out, b->ts);
        if (out->oom)
            return;
        ts_len = out->len - mark;
        if (ts_len > 32)
            ts_len = 32; /* cannot happen: %.17g is at most 24 */
        memcpy(ts, out->p + mark, ts_len);
        out->len = mark;
    }

    /* The first line's {"pod":…,"seq":N is copied for every later line. */
    size_t pre_off = out->len;
    wr_env_start(out, src->pod, src->model, b->has_rank, b->rank, src->stream);
    WR_LIT(out, ",\"seq\":");
    wr_u64(out, b->seq);
    size_t pre_len = out->len - pre_off;

    for (size_t k = 0; k < b->n_events; k++) {
        const struct kv_event *ev = &b->events[k];
        char *q = wr_room(out, pre_len + 16 + 32 + KEYPAD);
        if (q == NULL)
            return;
        if (k > 0) {
            memcpy(q, out->p + pre_off, pre_len);
            q += pre_len;
        }
        if (is_engine(ev->type)) {
            memcpy(q, ",\"i\":", 5);
            q += 5 + fmt_u32(q + 5, ev->index);
        }
        memcpy(q, ts, 32);
        q += ts_len;
        if ((unsigned)ev->type < KV_TYPE_COUNT) {
            q = put_padded(q, &type_keys[ev->type]);
            out->len = (size_t)(q - out->p);
        } else {
            out->len = (size_t)(q - out->p);
            wr_type(out, ev->type);
        }
        wr_body(out, ev);
    }
}

/* ------------------------------------------------------------------ */
/* Reader                                                              */
/* ------------------------------------------------------------------ */

/* One line being parsed. */
struct jp {
    struct jscan sc; /* the cursor; errors are worded here (err NULL) */
    struct arena *arena;
    char *err;
    size_t errlen;
    /*
     * Scratch for generic values converted to msgpack.  [mp_val, mp_len)
     * is the value being built; finished values stay where they are.
     */
    uint8_t *mp;
    size_t mp_len, mp_cap, mp_val;
};

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int
jp_fail(struct jp *j, const char *fmt, ...)
{
    va_list ap;

    if (j->err != NULL && j->errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(j->err, j->errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* A short printable copy of s for error messages. */
static const char *
jp_show(char *dst, size_t cap, const char *s, size_t n)
{
    size_t k = 0;

    for (size_t i = 0; i < n && k + 4 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[k++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    if (n > 0 && k + 4 >= cap) {
        memcpy(dst + k, "...", 3);
        k += 3;
    }
    dst[k] = '\0';
    return dst;
}

static int
jp_syntax(struct jp *j, const char *what)
{
    if (j->sc.i >= j->sc.n)
        return jp_fail(j, "invalid JSON: %s at end of line", what);
    return jp_fail(j, "invalid JSON: %s at byte %zu", what, j->sc.i + 1);
}

static void
jp_ws(struct jp *j)
{
    jscan_ws(&j->sc);
}

static int
jp_peek(struct jp *j)
{
    return jscan_peek(&j->sc);
}

/* Words the scanner's last error the way the reader reports it. */
static int
jp_lex(struct jp *j)
{
    const char *what = "invalid value";
    char buf[32];

    switch (j->sc.error) {
    case JSCAN_E_NOMEM:
        return jp_fail(j, "out of memory");
    case JSCAN_E_CONTROL:
        what = "control character in a string";
        break;
    case JSCAN_E_UNTERMINATED:
        what = "unterminated string";
        break;
    case JSCAN_E_UESCAPE:
        what = "invalid \\u escape";
        break;
    case JSCAN_E_ESCAPE:
        what = "invalid escape in a string";
        break;
    case JSCAN_E_NUMBER:
        what = "invalid number";
        break;
    case JSCAN_E_NOT_STRING:
        what = "expected a string key";
        break;
    case JSCAN_E_EXPECT:
        snprintf(buf, sizeof buf, "expected '%c'", j->sc.want);
        what = buf;
        break;
    case JSCAN_E_OBJECT_SEP:
        what = "expected ',' or '}'";
        break;
    case JSCAN_E_ARRAY_SEP:
        what = "expected ',' or ']'";
        break;
    default:
        break;
    }
    return jp_syntax(j, what);
}

static int
jp_expect(struct jp *j, char c, const char *what)
{
    if (jscan_expect(&j->sc, c) == -1)
        return jp_syntax(j, what);
    jscan_ws(&j->sc);
    return 0;
}

static int
jp_null(struct jp *j)
{
    return jscan_null(&j->sc);
}

static void *
jp_alloc(struct jp *j, size_t n)
{
    void *p = arena_alloc(j->arena, n);
    if (p == NULL)
        jp_fail(j, "out of memory");
    return p;
}

/* Grows an arena array of *cap elements of size sz holding n of them. */
static void *
jp_grow(struct jp *j, void *old, size_t n, size_t *cap, size_t sz)
{
    size_t ncap = *cap ? 2 * *cap : 8;
    if (ncap > SIZE_MAX / sz / 2) {
        jp_fail(j, "out of memory");
        return NULL;
    }
    void *p = jp_alloc(j, ncap * sz);
    if (p == NULL)
        return NULL;
    if (n > 0)
        memcpy(p, old, n * sz);
    *cap = ncap;
    return p;
}

/* At an opening quote: a string, borrowed when it has no escapes. */
static int
jp_string(struct jp *j, struct kv_str *out)
{
    return jscan_string(&j->sc, out) == -1 ? jp_lex(j) : 0;
}

static int
is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* Reads a number per RFC 8259's grammar. */
static int
jp_number(struct jp *j, struct jscan_num *num)
{
    return jscan_number(&j->sc, num) == -1 ? jp_lex(j) : 0;
}

/* The number's value as a double (strtod needs a terminated copy). */
static int
jp_num_double(struct jp *j, const struct jscan_num *num, double *out)
{
    size_t len = num->end - num->start;
    char small[64];
    char *tmp = small;

    if (num->is_int && !num->ovf) {
        *out = num->neg ? -(double)num->mag : (double)num->mag;
        return 0;
    }
    /*
     * A decimal fraction m / 10^k with m <= 2^53 and k <= 22 is the exact
     * quotient of two exact doubles, so one division rounds it correctly,
     * as strtod would (every timestamp takes this path).
     */
    {
        static const double p10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,
                                     1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                     1e12, 1e13, 1e14, 1e15, 1e16, 1e17,
                                     1e18, 1e19, 1e20, 1e21, 1e22};
        const char *s = j->sc.s;
        size_t i = num->start + (size_t)num->neg;
        uint64_t m = 0;
        int k = -1, nd = 0;
        for (; i < num->end && nd <= 19; i++) {
            if (s[i] == '.') {
                k = 0;
                continue;
            }
            if (!is_digit((unsigned char)s[i]))
                break;
            m = m * 10 + (uint64_t)(s[i] - '0');
            nd++;
            if (k >= 0)
                k++;
        }
        if (i == num->end && nd <= 19 && k >= 0 && k <= 22 &&
            m <= (uint64_t)1 << 53) {
            double d = (double)m / p10[k];
            *out = num->neg ? -d : d;
            return 0;
        }
    }
    if (len >= sizeof small) {
        tmp = jp_alloc(j, len + 1);
        if (tmp == NULL)
            return -1;
    }
    memcpy(tmp, j->sc.s + num->start, len);
    tmp[len] = '\0';
    *out = strtod(tmp, NULL);
    return 0;
}

/* ---- JSON -> msgpack, for generic values ---- */

/* Room for k more scratch bytes; moves the value being built if needed. */
static uint8_t *
mp_room(struct jp *j, size_t k)
{
    if (j->mp_cap - j->mp_len >= k)
        return j->mp + j->mp_len;
    size_t cur = j->mp_len - j->mp_val;
    size_t cap = 2 * j->mp_cap;
    if (cap < cur + k + 256)
        cap = cur + k + 256;
    uint8_t *p = jp_alloc(j, cap);
    if (p == NULL)
        return NULL;
    if (cur > 0)
        memcpy(p, j->mp + j->mp_val, cur);
    j->mp = p;
    j->mp_cap = cap;
    j->mp_val = 0;
    j->mp_len = cur;
    return p + cur;
}

static int
mp_put(struct jp *j, const void *src, size_t k)
{
    uint8_t *q = mp_room(j, k);
    if (q == NULL)
        return -1;
    memcpy(q, src, k);
    j->mp_len += k;
    return 0;
}

/* A marker byte followed by v big-endian in w bytes. */
static int
mp_put_be(struct jp *j, uint8_t marker, uint64_t v, size_t w)
{
    uint8_t tmp[9];
    tmp[0] = marker;
    for (size_t k = 0; k < w; k++)
        tmp[1 + k] = (uint8_t)(v >> (8 * (w - 1 - k)));
    return mp_put(j, tmp, 1 + w);
}

static int
mp_put_str(struct jp *j, const char *s, size_t n)
{
    int rc;
    if (n < 32) {
        uint8_t m = (uint8_t)(0xa0 | n);
        rc = mp_put(j, &m, 1);
    } else if (n <= 0xff) {
        rc = mp_put_be(j, 0xd9, n, 1);
    } else if (n <= 0xffff) {
        rc = mp_put_be(j, 0xda, n, 2);
    } else if (n <= 0xffffffffu) {
        rc = mp_put_be(j, 0xdb, n, 4);
    } else {
        return jp_fail(j, "string too long");
    }
    return rc == -1 ? -1 : mp_put(j, s, n);
}

/* The smallest msgpack integer form, as msgspec writes it. */
static int
mp_put_int(struct jp *j, int neg, uint64_t mag)
{
    if (!neg || mag == 0) {
        if (mag <= 0x7f) {
            uint8_t m = (uint8_t)mag;
            return mp_put(j, &m, 1);
        }
        if (mag <= 0xff)
            return mp_put_be(j, 0xcc, mag, 1);
        if (mag <= 0xffff)
            return mp_put_be(j, 0xcd, mag, 2);
        if (mag <= 0xffffffffu)
            return mp_put_be(j, 0xce, mag, 4);
        return mp_put_be(j, 0xcf, mag, 8);
    }
    uint64_t v = (uint64_t)0 - mag; /* two's complement of -mag */
    if (mag <= 32) {
        uint8_t m = (uint8_t)v;
        return mp_put(j, &m, 1);
    }
    if (mag <= 0x80)
        return mp_put_be(j, 0xd0, v & 0xff, 1);
    if (mag <= 0x8000)
        return mp_put_be(j, 0xd1, v & 0xffff, 2);
    if (mag <= 0x80000000u)
        return mp_put_be(j, 0xd2, v & 0xffffffffu, 4);
    return mp_put_be(j, 0xd3, v, 8);
}

static int mp_value(struct jp *j, int depth);

/* An array or object: a 5-byte header is reserved and shrunk at the end. */
static int
mp_container(struct jp *j, int depth, int is_map)
{
    size_t rel = j->mp_len - j->mp_val;
    uint64_t count = 0;

    if (mp_room(j, 5) == NULL)
        return -1;
    j->mp_len += 5;
    j->sc.i++;
    for (int first = 1;; first = 0) {
        int rc;
        if (is_map) {
            struct kv_str key;
            rc = jscan_member(&j->sc, first, &key);
            if (rc == 1 && mp_put_str(j, key.p, key.n) == -1)
                return -1;
        } else {
            rc = jscan_element(&j->sc, first);
        }
        if (rc == -1)
            return jp_lex(j);
        if (rc == 0)
            break;
        jp_ws(j);
        if (mp_value(j, depth + 1) == -1)
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
        return jp_fail(j, "array too long");
    }
    uint8_t *h = j->mp + j->mp_val + rel;
    size_t body = j->mp_len - (j->mp_val + rel + 5);
    memmove(h + hlen, h + 5, body);
    memcpy(h, hdr, hlen);
    j->mp_len -= 5 - hlen;
    return 0;
}

/* Converts the JSON value at the cursor to msgpack in the scratch. */
static int
mp_value(struct jp *j, int depth)
{
    static const uint8_t nil = 0xc0, f = 0xc2, t = 0xc3;

    if (depth > NDJSON_MAX_DEPTH)
        return jp_fail(j, "values nest deeper than %d levels",
                       NDJSON_MAX_DEPTH);
    switch (jp_peek(j)) {
    case '{':
        return mp_container(j, depth, 1);
    case '[':
        return mp_container(j, depth, 0);
    case '"': {
        struct kv_str str;
        if (jp_string(j, &str) == -1)
            return -1;
        return mp_put_str(j, str.p, str.n);
    }
    case 'n':
        if (jp_null(j))
            return mp_put(j, &nil, 1);
        break;
    case 't':
        if (j->sc.n - j->sc.i >= 4 &&
            memcmp(j->sc.s + j->sc.i, "true", 4) == 0) {
            j->sc.i += 4;
            return mp_put(j, &t, 1);
        }
        break;
    case 'f':
        if (j->sc.n - j->sc.i >= 5 &&
            memcmp(j->sc.s + j->sc.i, "false", 5) == 0) {
            j->sc.i += 5;
            return mp_put(j, &f, 1);
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
        if (jp_number(j, &num) == -1)
            return -1;
        int fits = num.is_int && !num.ovf &&
                   (!num.neg || num.mag <= (uint64_t)1 << 63);
        if (fits)
            return mp_put_int(j, num.neg, num.mag);
        /* Fractions, exponents and integers beyond 64 bits: float64. */
        double d;
        uint64_t bits;
        if (jp_num_double(j, &num, &d) == -1)
            return -1;
        memcpy(&bits, &d, sizeof bits);
        return mp_put_be(j, 0xcb, bits, 8);
    }
    default:
        break;
    }
    return jp_syntax(j, "invalid value");
}

/* The JSON value at the cursor as one msgpack object in the arena. */
static int
jp_raw(struct jp *j, struct kv_raw *out)
{
    j->mp_val = j->mp_len;
    if (mp_value(j, 1) == -1)
        return -1;
    out->p = j->mp + j->mp_val;
    out->n = j->mp_len - j->mp_val;
    j->mp_val = j->mp_len;
    return 0;
}

/* ---- typed values ---- */

/* An integer: *neg and *mag, rejecting fractions and overflow. */
static int
jp_integer(struct jp *j, const char *key, int *neg, uint64_t *mag)
{
    struct jscan_num num;
    int c = jp_peek(j);

    if (c != '-' && !is_digit(c))
        return jp_fail(j, "%s: expected an integer", key);
    if (jp_number(j, &num) == -1)
        return -1;
    if (!num.is_int)
        return jp_fail(
            j, "%s: expected an integer, not %.*s", key,
            (int)(num.end - num.start > 32 ? 32 : num.end - num.start),
            j->sc.s + num.start);
    if (num.ovf)
        return jp_fail(j, "%s: integer out of range", key);
    *neg = num.neg && num.mag != 0;
    *mag = num.mag;
    return 0;
}

static int
jp_u64(struct jp *j, const char *key, uint64_t max, uint64_t *out)
{
    int neg;
    uint64_t mag;

    if (jp_integer(j, key, &neg, &mag) == -1)
        return -1;
    if (neg || mag > max)
        return jp_fail(j, "%s: integer out of range [0, %llu]", key,
                       (unsigned long long)max);
    *out = mag;
    return 0;
}

static int
jp_i64(struct jp *j, const char *key, int64_t *out)
{
    int neg;
    uint64_t mag;

    if (jp_integer(j, key, &neg, &mag) == -1)
        return -1;
    if (neg ? mag > (uint64_t)1 << 63 : mag > INT64_MAX)
        return jp_fail(j, "%s: integer out of the signed 64-bit range", key);
    *out = neg ? (int64_t)((uint64_t)0 - mag) : (int64_t)mag;
    return 0;
}

static int
jp_str_value(struct jp *j, const char *key, struct kv_str *out)
{
    if (jp_peek(j) != '"')
        return jp_fail(j, "%s: expected a string", key);
    return jp_string(j, out);
}

/* A hash: "decimal", "0xhex", or a signed/unsigned 64-bit integer. */
static int
jp_hash(struct jp *j, const char *key, uint64_t *out)
{
    int c = jp_peek(j);

    if (c == '"') {
        struct kv_str str;
        char show[40];
        if (jp_string(j, &str) == -1)
            return -1;
        enum jscan_error why;
        if (jscan_hash_text(str.p, str.n, out, &why) == -1)
            return jp_fail(j,
                           "%s: \"%s\" is not a decimal or 0x-hex 64-bit "
                           "hash",
                           key, jp_show(show, sizeof show, str.p, str.n));
        return 0;
    }
    if (c == '-' || is_digit(c)) {
        int neg;
        uint64_t mag;
        if (jp_integer(j, key, &neg, &mag) == -1)
            return -1;
        if (neg && mag > (uint64_t)1 << 63)
            return jp_fail(j, "%s: integer out of the 64-bit range", key);
        *out = neg ? (uint64_t)0 - mag : mag;
        return 0;
    }
    return jp_fail(j, "%s: expected a hash (string or integer)", key);
}

/* After an array element: ',' (returns 0) or the closing ']' (returns 1). */
static int
jp_next_elem(struct jp *j)
{
    int rc = jscan_element(&j->sc, 0);

    if (rc == -1)
        return jp_lex(j);
    jscan_ws(&j->sc);
    return !rc;
}

/* Opens an array; returns 1 when it is empty (and consumed). */
static int
jp_open_array(struct jp *j, const char *key, const char *what)
{
    if (jp_peek(j) != '[')
        return jp_fail(j, "%s: expected %s", key, what);
    j->sc.i++;
    jp_ws(j);
    if (jp_peek(j) == ']') {
        j->sc.i++;
        return 1;
    }
    return 0;
}

static int
jp_hashes(struct jp *j, struct kv_event *ev)
{
    const char *key = "block_hashes";
    struct kv_hash *h = NULL;
    size_t n = 0, cap = 0;
    int rc = jp_open_array(j, key, "an array of hashes or null");

    if (rc == -1)
        return -1;
    while (rc == 0) {
        if (n == cap && (h = jp_grow(j, h, n, &cap, sizeof *h)) == NULL)
            return -1;
        if (jp_hash(j, key, &h[n].v) == -1)
            return -1;
        h[n].digest = NULL;
        h[n].digest_len = 0;
        n++;
        if ((rc = jp_next_elem(j)) == -1)
            return -1;
    }
    ev->hashes = h;
    ev->n_hashes = n;
    return 0;
}

/*
 * One token id the scanner's fast path refused: the general integer path
 * decides, for its checks and errors (it also takes "-0").
 */
static int
jp_token(struct jp *j, uint32_t *out)
{
    uint64_t v;

    if (jp_u64(j, "token_ids", UINT32_MAX, &v) == -1)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/*
 * The ids of a flat token array, the cursor at its first one: the scanner
 * reads runs of them 8 digits at a time, and whatever it refuses goes
 * through jp_token for the reader's own checks and messages.
 */
static int
jp_token_list(struct jp *j, uint32_t **t, size_t *cap, size_t *n)
{
    for (;;) {
        size_t got;
        if (*n == *cap && (*t = jp_grow(j, *t, *n, cap, sizeof **t)) == NULL)
            return -1;
        int rc = jscan_tokens(&j->sc, 0, *t + *n, *cap - *n, &got);
        *n += got;
        if (rc == 1)
            return 0;
        if (rc == 0)
            continue;
        if (j->sc.error != JSCAN_E_NOT_UINT && j->sc.error != JSCAN_E_TOKEN)
            return jp_lex(j);
        if (jp_peek(j) == '[')
            return jp_fail(j, "token_ids: mixes integers and [a,b] pairs");
        if (*n == *cap && (*t = jp_grow(j, *t, *n, cap, sizeof **t)) == NULL)
            return -1;
        if (jp_token(j, *t + *n) == -1)
            return -1;
        (*n)++;
        if ((rc = jp_next_elem(j)) == -1)
            return -1;
        if (rc == 1)
            return 0;
    }
}

static int
jp_tokens(struct jp *j, struct kv_event *ev)
{
    const char *key = "token_ids";
    uint32_t *t = NULL;
    size_t n = 0, cap = 0; /* n values, so 2 per pair */
    int rc = jp_open_array(j, key, "an array of token ids or null");
    int pairs = jp_peek(j) == '[';

    if (rc == -1)
        return -1;
    if (rc == 0 && !pairs) {
        if (jp_token_list(j, &t, &cap, &n) == -1)
            return -1;
        rc = 1;
    }
    while (rc == 0) {
        if (n + 2 > cap && (t = jp_grow(j, t, n, &cap, sizeof *t)) == NULL)
            return -1;
        if (jp_peek(j) != '[')
            return jp_fail(j, "%s: mixes integers and [a,b] pairs", key);
        j->sc.i++;
        jp_ws(j);
        if (jp_token(j, &t[n]) == -1 ||
            jp_expect(j, ',', "expected a [a,b] token pair") == -1 ||
            jp_token(j, &t[n + 1]) == -1 ||
            jp_expect(j, ']', "expected a [a,b] token pair") == -1)
            return -1;
        n += 2;
        if ((rc = jp_next_elem(j)) == -1)
            return -1;
    }
    ev->tokens = t;
    ev->n_tokens = pairs ? n / 2 : n;
    ev->token_pairs = pairs && n > 0;
    return 0;
}

/* One engine field's value (the key has been read). */
static int
jp_field(struct jp *j, struct kv_event *ev, enum kv_field f)
{
    const char *key = kv_fields[f].name;
    uint32_t bit = KV_BIT(f);

    ev->present |= bit;
    if (jp_null(j)) {
        ev->isnull |= bit;
        return 0;
    }
    ev->isnull &= ~bit;
    switch (kv_fields[f].kind) {
    case KV_K_HASHES:
        return jp_hashes(j, ev);
    case KV_K_HASH:
        ev->parent.digest = NULL;
        ev->parent.digest_len = 0;
        return jp_hash(j, key, &ev->parent.v);
    case KV_K_TOKENS:
        return jp_tokens(j, ev);
    case KV_K_INT:
        if (f == KV_F_LORA_ID)
            return jp_i64(j, key, &ev->num[f]);
        uint64_t u;
        if (jp_u64(j, key, UINT64_MAX, &u) == -1)
            return -1;
        ev->num[f] = (int64_t)u;
        return 0;
    case KV_K_STR:
        return jp_str_value(j, key, &ev->str[f]);
    case KV_K_RAW:
        return jp_raw(j, &ev->raw[f]);
    }
    return jp_fail(j, "%s: unsupported field", key);
}

/* Hex text of a digest into arena bytes; at least 8 bytes. */
static int
jp_digest(struct jp *j, const char *key, struct kv_str hex, const uint8_t **out,
          uint32_t *len)
{
    char show[40];

    if (hex.n < 16 || hex.n % 2 != 0 || hex.n / 2 > UINT32_MAX)
        return jp_fail(j,
                       "%s: \"%s\" is not the hex of a digest of 8 bytes "
                       "or more",
                       key, jp_show(show, sizeof show, hex.p, hex.n));
    uint8_t *d = jp_alloc(j, hex.n / 2);
    if (d == NULL)
        return -1;
    for (size_t k = 0; k < hex.n / 2; k++) {
        int hi = jscan_hex_digit((unsigned char)hex.p[2 * k]);
        int lo = jscan_hex_digit((unsigned char)hex.p[2 * k + 1]);
        if (hi < 0 || lo < 0)
            return jp_fail(j, "%s: \"%s\" is not hex", key,
                           jp_show(show, sizeof show, hex.p, hex.n));
        d[k] = (uint8_t)(hi << 4 | lo);
    }
    *out = d;
    *len = (uint32_t)(hex.n / 2);
    return 0;
}

/* The canonical value of a digest: its last 8 bytes big-endian. */
static uint64_t
digest_value(const uint8_t *d, uint32_t len)
{
    return be_read(d + len - 8, 8);
}

/* Keys the reader knows, besides the engine fields. */
enum jkey {
    JK_POD,
    JK_MODEL,
    JK_DP_RANK,
    JK_SEQ,
    JK_I,
    JK_TS,
    JK_TYPE,
    JK_STREAM,
    JK_BLOCK_DIGESTS,
    JK_PARENT_DIGEST,
    /* Keys of stream records and of the format line. */
    JK_FROM,
    JK_TO,
    JK_LAST_SEQ,
    JK_ERROR,
    JK_BYTES,
    JK_TAG,
    JK_COUNT,
    JK_VERSION,
    JK_COUNT_KEYS
};

static const struct {
    const char *s;
    size_t n;
} jkeys[JK_COUNT_KEYS] = {
#define JKEY(k, lit) [k] = {lit, sizeof(lit) - 1}
    JKEY(JK_POD, "pod"),
    JKEY(JK_MODEL, "model"),
    JKEY(JK_DP_RANK, "dp_rank"),
    JKEY(JK_SEQ, "seq"),
    JKEY(JK_I, "i"),
    JKEY(JK_TS, "ts"),
    JKEY(JK_TYPE, "type"),
    JKEY(JK_STREAM, "stream"),
    JKEY(JK_BLOCK_DIGESTS, "block_digests"),
    JKEY(JK_PARENT_DIGEST, "parent_block_digest"),
    JKEY(JK_FROM, "from"),
    JKEY(JK_TO, "to"),
    JKEY(JK_LAST_SEQ, "last_seq"),
    JKEY(JK_ERROR, "error"),
    JKEY(JK_BYTES, "bytes"),
    JKEY(JK_TAG, "tag"),
    JKEY(JK_COUNT, "count"),
    JKEY(JK_VERSION, "version"),
#undef JKEY
};

/*
 * Returns a jkey, JK_COUNT_KEYS + field for an engine field, or -1.  A
 * switch on the length, then comparisons of constant size, which compile
 * to a few word compares.
 */
static int
key_lookup(struct kv_str k)
{
    const char *p = k.p;

#define K(lit, id)                                                             \
    if (memcmp(p, lit, sizeof(lit) - 1) == 0)                                  \
    return (id)
#define F(lit, f) K(lit, JK_COUNT_KEYS + (f))
    switch (k.n) {
    case 1:
        K("i", JK_I);
        break;
    case 2:
        K("ts", JK_TS);
        K("to", JK_TO);
        break;
    case 3:
        K("pod", JK_POD);
        K("seq", JK_SEQ);
        K("tag", JK_TAG);
        break;
    case 4:
        K("type", JK_TYPE);
        K("from", JK_FROM);
        break;
    case 5:
        K("model", JK_MODEL);
        K("error", JK_ERROR);
        K("bytes", JK_BYTES);
        K("count", JK_COUNT);
        break;
    case 6:
        F("medium", KV_F_MEDIUM);
        K("stream", JK_STREAM);
        break;
    case 7:
        K("dp_rank", JK_DP_RANK);
        F("lora_id", KV_F_LORA_ID);
        K("version", JK_VERSION);
        break;
    case 8:
        K("last_seq", JK_LAST_SEQ);
        F("locality", KV_F_LOCALITY);
        break;
    case 9:
        F("token_ids", KV_F_TOKEN_IDS);
        F("lora_name", KV_F_LORA_NAME);
        F("group_idx", KV_F_GROUP_IDX);
        F("ownership", KV_F_OWNERSHIP);
        break;
    case 10:
        F("block_size", KV_F_BLOCK_SIZE);
        F("extra_keys", KV_F_EXTRA_KEYS);
        F("cache_salt", KV_F_CACHE_SALT);
        F("session_id", KV_F_SESSION_ID);
        break;
    case 12:
        F("block_hashes", KV_F_BLOCK_HASHES);
        break;
    case 13:
        K("block_digests", JK_BLOCK_DIGESTS);
        break;
    case 17:
        F("parent_block_hash", KV_F_PARENT_BLOCK_HASH);
        break;
    case 18:
        F("kv_cache_spec_kind", KV_F_KV_CACHE_SPEC_KIND);
        break;
    case 19:
        K("parent_block_digest", JK_PARENT_DIGEST);
        break;
    case 28:
        F("kv_cache_spec_sliding_window", KV_F_KV_CACHE_SPEC_SLIDING_WINDOW);
        break;
    default:
        break;
    }
#undef F
#undef K
    return -1;
}

#define TYPE_NONE (-1)
#define TYPE_FORMAT (-2)

/* Which record keys belong to a record type (bits of 1 << jkey). */
static uint32_t
record_keys(int type)
{
    switch (type) {
    case KV_GAP:
        return 1u << JK_FROM | 1u << JK_TO;
    case KV_RESTART:
        return 1u << JK_LAST_SEQ;
    case KV_DECODE_ERROR:
        return 1u << JK_ERROR | 1u << JK_BYTES;
    case KV_SKIPPED:
        return 1u << JK_TAG | 1u << JK_COUNT;
    case TYPE_FORMAT:
        return 1u << JK_VERSION;
    default:
        return 0;
    }
}

/* State gathered over one line, resolved once "type" is known. */
struct jline {
    int type;
    uint32_t rec_seen, rec_ok; /* record keys met / well typed */
    struct jscan_num version;
    int has_digests;
    struct kv_str *digests; /* hex text, p == NULL for null */
    size_t n_digests;
    int has_parent_digest;
    struct kv_str parent_digest;
    size_t cap_unknown;
};

static int
jp_add_unknown(struct jp *j, struct kv_event *ev, struct jline *st,
               struct kv_str key)
{
    if (ev->n_unknown == st->cap_unknown &&
        (ev->unknown = jp_grow(j, ev->unknown, ev->n_unknown, &st->cap_unknown,
                               sizeof *ev->unknown)) == NULL)
        return -1;
    struct kv_unknown *u = &ev->unknown[ev->n_unknown];
    u->key = key;
    u->pos = -1;
    /* "@N": a positional slot of an array event (ndjson decisions). */
    if (key.n >= 2 && key.n <= 10 && key.p[0] == '@' &&
        is_digit((unsigned char)key.p[1]) && (key.p[1] != '0' || key.n == 2)) {
        long pos = 0;
        size_t k = 1;
        while (k < key.n && is_digit((unsigned char)key.p[k]))
            pos = pos * 10 + (key.p[k++] - '0');
        if (k == key.n && pos <= 0x7fffffff) {
            u->key.p = NULL;
            u->key.n = 0;
            u->pos = (int)pos;
        }
    }
    if (jp_raw(j, &u->val) == -1)
        return -1;
    ev->n_unknown++;
    return 0;
}

/* A stream record's key: kept as unknown and read typed, decided later. */
static int
jp_record_key(struct jp *j, struct kv_event *ev, struct jline *st, int k,
              struct kv_str key)
{
    size_t start = j->sc.i;

    if (jp_add_unknown(j, ev, st, key) == -1)
        return -1;
    size_t end = j->sc.i;
    j->sc.i = start;
    st->rec_seen |= 1u << k;
    int rc;
    switch (k) {
    case JK_FROM:
        rc = jp_u64(j, "from", UINT64_MAX, &ev->from);
        break;
    case JK_TO:
        rc = jp_u64(j, "to", UINT64_MAX, &ev->to);
        break;
    case JK_LAST_SEQ:
        rc = jp_u64(j, "last_seq", UINT64_MAX, &ev->last_seq);
        break;
    case JK_BYTES:
        rc = jp_u64(j, "bytes", UINT64_MAX, &ev->bytes);
        break;
    case JK_COUNT:
        rc = jp_u64(j, "count", UINT64_MAX, &ev->count);
        break;
    case JK_ERROR:
        rc = jp_str_value(j, "error", &ev->error);
        break;
    case JK_TAG:
        rc = jp_str_value(j, "tag", &ev->tag);
        break;
    default: /* JK_VERSION: its text is kept for the error message */
        rc = -1;
        if (jp_peek(j) == '-' || is_digit(jp_peek(j)))
            rc = jp_number(j, &st->version);
        st->version.start = start;
        st->version.end = end;
        break;
    }
    if (rc == 0 && j->sc.i == end)
        st->rec_ok |= 1u << k;
    else
        st->rec_ok &= ~(1u << k);
    j->sc.i = end;
    return 0;
}

static int
jp_digests(struct jp *j, struct jline *st)
{
    const char *key = "block_digests";
    size_t cap = 0;
    int rc;

    st->digests = NULL;
    st->n_digests = 0;
    st->has_digests = 0;
    if (jp_null(j))
        return 0;
    rc = jp_open_array(j, key, "an array of hex digests or null");
    if (rc == -1)
        return -1;
    st->has_digests = 1;
    while (rc == 0) {
        if (st->n_digests == cap &&
            (st->digests = jp_grow(j, st->digests, st->n_digests, &cap,
                                   sizeof *st->digests)) == NULL)
            return -1;
        struct kv_str *d = &st->digests[st->n_digests];
        if (jp_null(j)) {
            d->p = NULL;
            d->n = 0;
        } else if (jp_str_value(j, key, d) == -1) {
            return -1;
        }
        st->n_digests++;
        if ((rc = jp_next_elem(j)) == -1)
            return -1;
    }
    return 0;
}

/* One key's value: dispatch on the key. */
static int
jp_member(struct jp *j, struct ndjson_env *env, struct kv_event *ev,
          struct jline *st, struct kv_str key)
{
    int k = key_lookup(key);

    if (k >= JK_COUNT_KEYS)
        return jp_field(j, ev, (enum kv_field)(k - JK_COUNT_KEYS));
    switch (k) {
    case JK_POD:
        return jp_str_value(j, "pod", &env->pod);
    case JK_MODEL:
        if (jp_null(j)) {
            env->model.p = NULL;
            env->model.n = 0;
            return 0;
        }
        return jp_str_value(j, "model", &env->model);
    case JK_DP_RANK:
        if (jp_null(j)) {
            env->has_rank = 0;
            return 0;
        }
        env->has_rank = 1;
        return jp_i64(j, "dp_rank", &env->rank);
    case JK_SEQ:
        env->has_seq = 1;
        return jp_u64(j, "seq", UINT64_MAX, &env->seq);
    case JK_STREAM:
        if (jp_null(j)) {
            env->stream.p = NULL;
            env->stream.n = 0;
            return 0;
        }
        return jp_str_value(j, "stream", &env->stream);
    case JK_I: {
        uint64_t v;
        if (jp_u64(j, "i", UINT32_MAX, &v) == -1)
            return -1;
        env->has_i = 1;
        env->i = (uint32_t)v;
        return 0;
    }
    case JK_TS: {
        struct jscan_num num;
        if (jp_null(j)) {
            env->has_ts = 0;
            return 0;
        }
        int c = jp_peek(j);
        if (c != '-' && !is_digit(c))
            return jp_fail(j, "ts: expected a number");
        if (jp_number(j, &num) == -1 || jp_num_double(j, &num, &env->ts) == -1)
            return -1;
        env->has_ts = 1;
        return 0;
    }
    case JK_TYPE: {
        struct kv_str t;
        char show[40];
        enum kv_type type;
        if (jp_str_value(j, "type", &t) == -1)
            return -1;
        if (kv_type_parse(t.p, t.n, &type) == 0)
            st->type = (int)type;
        else if (t.n == 6 && memcmp(t.p, "format", 6) == 0)
            st->type = TYPE_FORMAT;
        else
            return jp_fail(j, "unknown type \"%s\"",
                           jp_show(show, sizeof show, t.p, t.n));
        return 0;
    }
    case JK_BLOCK_DIGESTS:
        return jp_digests(j, st);
    case JK_PARENT_DIGEST:
        st->has_parent_digest = 0;
        if (jp_null(j))
            return 0;
        st->has_parent_digest = 1;
        return jp_str_value(j, "parent_block_digest", &st->parent_digest);
    case -1:
        return jp_add_unknown(j, ev, st, key);
    default:
        return jp_record_key(j, ev, st, k, key);
    }
}

/* Attaches block_digests / parent_block_digest to their hashes. */
static int
jp_apply_digests(struct jp *j, struct kv_event *ev, const struct jline *st)
{
    uint32_t live = ev->present & ~ev->isnull;

    if (st->has_digests) {
        if (!(live & KV_BIT(KV_F_BLOCK_HASHES)) ||
            st->n_digests != ev->n_hashes)
            return jp_fail(j,
                           "block_digests: %zu digests for %zu "
                           "block_hashes",
                           st->n_digests,
                           live & KV_BIT(KV_F_BLOCK_HASHES) ? ev->n_hashes
                                                            : (size_t)0);
        for (size_t k = 0; k < st->n_digests; k++) {
            struct kv_hash *h = &ev->hashes[k];
            if (st->digests[k].p == NULL)
                continue;
            if (jp_digest(j, "block_digests", st->digests[k], &h->digest,
                          &h->digest_len) == -1)
                return -1;
            if (digest_value(h->digest, h->digest_len) != h->v)
                return jp_fail(j,
                               "block_digests: digest %zu does not end "
                               "with block_hashes[%zu]",
                               k, k);
        }
    }
    if (st->has_parent_digest) {
        if (!(live & KV_BIT(KV_F_PARENT_BLOCK_HASH)))
            return jp_fail(j, "parent_block_digest without a "
                              "parent_block_hash");
        if (jp_digest(j, "parent_block_digest", st->parent_digest,
                      &ev->parent.digest, &ev->parent.digest_len) == -1)
            return -1;
        if (digest_value(ev->parent.digest, ev->parent.digest_len) !=
            ev->parent.v)
            return jp_fail(j, "parent_block_digest does not end with "
                              "parent_block_hash");
    }
    return 0;
}

/* Drops the unknown entries that were the record's own keys. */
static void
drop_record_unknowns(struct kv_event *ev, uint32_t keys)
{
    size_t w = 0;

    for (size_t r = 0; r < ev->n_unknown; r++) {
        const struct kv_unknown *u = &ev->unknown[r];
        int own = 0;
        if (u->pos < 0 && u->key.n > 0) {
            int k = key_lookup(u->key);
            own = k >= 0 && k < JK_COUNT_KEYS && (keys >> k & 1);
        }
        if (!own)
            ev->unknown[w++] = *u;
    }
    ev->n_unknown = w;
}

/* Decides the line once the whole object has been read. */
static int
jp_finish(struct jp *j, struct ndjson_env *env, struct kv_event *ev,
          struct jline *st)
{
    char show[40];

    if (st->type == TYPE_NONE)
        return jp_fail(j, "no \"type\" key");
    if (st->type == TYPE_FORMAT) {
        const struct jscan_num *v = &st->version;
        if (!(st->rec_seen & 1u << JK_VERSION))
            return jp_fail(j, "format line without a \"version\"");
        if ((st->rec_ok & 1u << JK_VERSION) && v->is_int && !v->neg &&
            v->mag == 1 && !v->ovf)
            return NDJSON_SKIP;
        jp_fail(
            j, "unsupported NDJSON format version %s",
            jp_show(show, sizeof show, j->sc.s + v->start, v->end - v->start));
        return NDJSON_FATAL;
    }
    uint32_t own = record_keys(st->type);
    for (int k = JK_FROM; k < JK_VERSION; k++) {
        if ((own >> k & 1) && (st->rec_seen >> k & 1) &&
            !(st->rec_ok >> k & 1)) {
            const char *want = k == JK_ERROR || k == JK_TAG
                                   ? "a string"
                                   : "an unsigned integer";
            return jp_fail(j, "%s: expected %s", jkeys[k].s, want);
        }
    }
    if (own != 0) {
        drop_record_unknowns(ev, own);
    } else {
        ev->from = ev->to = ev->last_seq = ev->bytes = ev->count = 0;
        ev->error.p = ev->tag.p = NULL;
        ev->error.n = ev->tag.n = 0;
    }
    if (jp_apply_digests(j, ev, st) == -1)
        return -1;
    ev->type = (enum kv_type)st->type;
    ev->index = env->has_i ? env->i : 0;
    return NDJSON_EVENT;
}

int
ndjson_parse_line(const char *line, size_t len, struct arena *arena,
                  struct ndjson_env *env, struct kv_event *ev, char *err,
                  size_t errlen)
{
    struct jp j = {.arena = arena, .err = err, .errlen = errlen};
    struct jline st = {.type = TYPE_NONE};
    struct kv_str key;
    int m, first = 1;

    jscan_init(&j.sc, line, len, arena, NULL, 0);
    memset(env, 0, sizeof *env);
    env->pod.p = "-";
    env->pod.n = 1;
    kv_event_init(ev, KV_BLOCK_STORED);
    if (err != NULL && errlen > 0)
        err[0] = '\0';

    jp_ws(&j);
    if (j.sc.i == j.sc.n)
        return NDJSON_SKIP;
    if (jp_peek(&j) != '{') {
        jp_fail(&j, "not a JSON object");
        return NDJSON_BAD;
    }
    j.sc.i++;
    while ((m = jscan_member(&j.sc, first, &key)) == 1) {
        first = 0;
        jscan_ws(&j.sc);
        if (jp_member(&j, env, ev, &st, key) == -1)
            return NDJSON_BAD;
    }
    if (m == -1) {
        jp_lex(&j);
        return NDJSON_BAD;
    }
    jp_ws(&j);
    if (j.sc.i != j.sc.n) {
        jp_syntax(&j, "trailing characters after the object");
        return NDJSON_BAD;
    }
    int rc = jp_finish(&j, env, ev, &st);
    return rc == -1 ? NDJSON_BAD : rc;
}

/*
 * json.c - the small JSON scanner of kvindex (see json.h).
 */
#include "json.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Nesting deeper than this is refused, so hostile input cannot exhaust the
 * stack. */
#define JSON_MAX_DEPTH 64

static int
fail(struct jscan *s, const char *fmt, ...)
{
    va_list ap;

    if (s->err != NULL && s->errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(s->err, s->errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void
jscan_init(struct jscan *s, const char *p, size_t n, struct arena *a, char *err,
           size_t errlen)
{
    s->p = p;
    s->end = p + n;
    s->arena = a;
    s->err = err;
    s->errlen = errlen;
}

int
jscan_peek(struct jscan *s)
{
    while (s->p < s->end &&
           (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
    return s->p < s->end ? (unsigned char)*s->p : -1;
}

int
jscan_expect(struct jscan *s, char c)
{
    if (jscan_peek(s) != (unsigned char)c)
        return fail(s, "expected '%c'", c);
    s->p++;
    return 0;
}

static int
hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int
read_u4(const char *p, const char *end, unsigned *out)
{
    unsigned v = 0;

    if (end - p < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        int h = hexval((unsigned char)p[i]);
        if (h < 0)
            return -1;
        v = v << 4 | (unsigned)h;
    }
    *out = v;
    return 0;
}

static size_t
put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/*
 * Scans a string starting at its opening quote.  With out == NULL only
 * validates; otherwise decodes (pointing into the input when there is no
 * escape).
 */
static int
scan_string(struct jscan *s, struct kv_str *out)
{
    const char *start, *q;
    int escaped = 0;
    char *o, *dst;

    if (jscan_peek(s) != '"')
        return fail(s, "expected a string");
    start = ++s->p;
    for (q = start; q < s->end && *q != '"'; q++) {
        if ((unsigned char)*q < 0x20)
            return fail(s, "control character in string");
        if (*q == '\\') {
            escaped = 1;
            if (++q >= s->end)
                break;
        }
    }
    if (q >= s->end)
        return fail(s, "unterminated string");
    s->p = q + 1;
    if (out == NULL)
        return 0;
    /* Without an arena (json_find_member) escaped text stays as it is: it
     * then simply matches no name. */
    if (!escaped || s->arena == NULL) {
        out->p = start;
        out->n = (size_t)(q - start);
        return 0;
    }
    /* Decoded text is never longer than its escaped form. */
    if ((dst = arena_alloc(s->arena, (size_t)(q - start) + 1)) == NULL)
        return fail(s, "out of memory");
    o = dst;
    for (const char *r = start; r < q; r++) {
        unsigned cp, lo;
        if (*r != '\\') {
            *o++ = *r;
            continue;
        }
        r++;
        switch (*r) {
        case '"':
        case '\\':
        case '/':
            *o++ = *r;
            break;
        case 'b':
            *o++ = '\b';
            break;
        case 'f':
            *o++ = '\f';
            break;
        case 'n':
            *o++ = '\n';
            break;
        case 'r':
            *o++ = '\r';
            break;
        case 't':
            *o++ = '\t';
            break;
        case 'u':
            if (read_u4(r + 1, q, &cp) < 0)
                return fail(s, "bad \\u escape");
            r += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && q - r > 6 && r[1] == '\\' &&
                r[2] == 'u' && read_u4(r + 3, q, &lo) == 0 && lo >= 0xdc00 &&
                lo < 0xe000) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                r += 6;
            } else if (cp >= 0xd800 && cp < 0xe000) {
                cp = 0xfffd; /* a lone surrogate has no UTF-8 form */
            }
            o += put_utf8(o, cp);
            break;
        default:
            return fail(s, "bad escape in string");
        }
    }
    *o = '\0';
    out->p = dst;
    out->n = (size_t)(o - dst);
    return 0;
}

int
jscan_string(struct jscan *s, struct kv_str *out)
{
    return scan_string(s, out);
}

static int
scan_number(struct jscan *s)
{
    const char *p = s->p;

    if (p < s->end && *p == '-')
        p++;
    if (p >= s->end || *p < '0' || *p > '9')
        return fail(s, "bad number");
    if (*p == '0')
        p++;
    else
        while (p < s->end && *p >= '0' && *p <= '9')
            p++;
    if (p < s->end && *p == '.') {
        p++;
        if (p >= s->end || *p < '0' || *p > '9')
            return fail(s, "bad number");
        while (p < s->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < s->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < s->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= s->end || *p < '0' || *p > '9')
            return fail(s, "bad number");
        while (p < s->end && *p >= '0' && *p <= '9')
            p++;
    }
    s->p = p;
    return 0;
}

static int
scan_word(struct jscan *s, const char *w)
{
    size_t n = strlen(w);

    if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n) != 0)
        return fail(s, "unexpected character");
    s->p += n;
    return 0;
}

static int
skip_depth(struct jscan *s, int depth)
{
    int c = jscan_peek(s), first = 1, r;
    struct kv_str key;

    if (depth > JSON_MAX_DEPTH)
        return fail(s, "nested too deeply");
    switch (c) {
    case '{':
        s->p++;
        while ((r = jscan_member(s, first, &key)) == 1) {
            first = 0;
            if (skip_depth(s, depth + 1) < 0)
                return -1;
        }
        return r;
    case '[':
        s->p++;
        while ((r = jscan_element(s, first)) == 1) {
            first = 0;
            if (skip_depth(s, depth + 1) < 0)
                return -1;
        }
        return r;
    case '"':
        return scan_string(s, NULL);
    case 't':
        return scan_word(s, "true");
    case 'f':
        return scan_word(s, "false");
    case 'n':
        return scan_word(s, "null");
    case -1:
        return fail(s, "unexpected end of input");
    default:
        return scan_number(s);
    }
}

int
jscan_skip(struct jscan *s, struct kv_str *raw)
{
    const char *start;

    jscan_peek(s);
    start = s->p;
    if (skip_depth(s, 0) < 0)
        return -1;
    if (raw != NULL) {
        raw->p = start;
        raw->n = (size_t)(s->p - start);
    }
    return 0;
}

int
jscan_member(struct jscan *s, int first, struct kv_str *key)
{
    int c = jscan_peek(s);

    if (c == '}') {
        s->p++;
        return 0;
    }
    if (!first) {
        if (c != ',')
            return fail(s, "expected ',' or '}'");
        s->p++;
    }
    /* Keys are decoded only when they are escaped, which requests never
     * need: an escaped key simply matches nothing we know. */
    if (scan_string(s, key) < 0)
        return -1;
    if (jscan_expect(s, ':') < 0)
        return -1;
    return 1;
}

int
jscan_element(struct jscan *s, int first)
{
    int c = jscan_peek(s);

    if (c == ']') {
        s->p++;
        return 0;
    }
    if (!first) {
        if (c != ',')
            return fail(s, "expected ',' or ']'");
        s->p++;
    }
    return 1;
}

int
jscan_null(struct jscan *s)
{
    if (jscan_peek(s) == 'n' && scan_word(s, "null") == 0)
        return 1;
    return 0;
}

/* Reads decimal digits into *v; returns the count, or -1 on overflow. */
static int
digits_u64(const char **pp, const char *end, uint64_t *v)
{
    const char *p = *pp;
    uint64_t x = 0;

    while (p < end && *p >= '0' && *p <= '9') {
        unsigned d = (unsigned)(*p - '0');
        if (x > (UINT64_MAX - d) / 10)
            return -1;
        x = x * 10 + d;
        p++;
    }
    *v = x;
    *pp = p;
    return 0;
}

int
jscan_u64(struct jscan *s, uint64_t max, uint64_t *out)
{
    const char *start;
    uint64_t v;

    if (jscan_peek(s) < '0' || jscan_peek(s) > '9')
        return fail(s, "expected a non-negative integer");
    start = s->p;
    if (digits_u64(&s->p, s->end, &v) < 0 || v > max)
        return fail(s, "integer out of range");
    if (s->p < s->end && (*s->p == '.' || *s->p == 'e' || *s->p == 'E' ||
                          (*start == '0' && s->p - start > 1)))
        return fail(s, "expected an integer");
    *out = v;
    return 0;
}

int
jscan_i64(struct jscan *s, int64_t *out)
{
    int neg = 0;
    uint64_t v;

    if (jscan_peek(s) == '-') {
        neg = 1;
        s->p++;
    }
    if (jscan_u64(s, neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, &v) <
        0)
        return -1;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

int
jscan_hash(struct jscan *s, uint64_t *out)
{
    struct kv_str t;
    int64_t i;
    uint64_t v = 0;

    if (jscan_peek(s) != '"') {
        if (jscan_peek(s) == '-') {
            if (jscan_i64(s, &i) < 0)
                return -1;
            *out = (uint64_t)i;
            return 0;
        }
        return jscan_u64(s, UINT64_MAX, out);
    }
    if (scan_string(s, &t) < 0)
        return -1;
    if (t.n > 2 && t.p[0] == '0' && (t.p[1] == 'x' || t.p[1] == 'X')) {
        if (t.n > 18)
            return fail(s, "hash out of range");
        for (size_t k = 2; k < t.n; k++) {
            int h = hexval((unsigned char)t.p[k]);
            if (h < 0)
                return fail(s, "bad hex hash");
            v = v << 4 | (unsigned)h;
        }
    } else {
        const char *p = t.p;
        if (t.n == 0 || digits_u64(&p, t.p + t.n, &v) < 0 || p != t.p + t.n)
            return fail(s, "bad hash string");
    }
    *out = v;
    return 0;
}

int
json_find_member(const char *p, size_t n, const char *name, struct kv_str *raw)
{
    struct jscan s;
    struct kv_str key, val;
    int r, first = 1;
    size_t nl = strlen(name);

    jscan_init(&s, p, n, NULL, NULL, 0);
    if (jscan_expect(&s, '{') < 0)
        return -1;
    while ((r = jscan_member(&s, first, &key)) == 1) {
        first = 0;
        if (jscan_skip(&s, &val) < 0)
            return -1;
        /* Stop at the member: the rest of a long reply (a dump) is not
         * scanned again for every member looked up. */
        if (key.n == nl && memcmp(key.p, name, nl) == 0) {
            *raw = val;
            return 1;
        }
    }
    if (r < 0 || jscan_peek(&s) != -1)
        return -1;
    return 0;
}

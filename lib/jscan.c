/*
 * jscan.c - the JSON lexical layer (see jscan.h).
 *
 * Strings and token ids are read 8 bytes at a time in a register: they are
 * the bulk of both an NDJSON event line and a kvindex match request.
 */
#include "jscan.h"

#include "fmt.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define JSCAN_SWAR 1
#if defined(__SSE2__)
#include <emmintrin.h>
#define JSCAN_SSE2 1
#endif
/* The AVX-512 token reader is compiled for any x86-64 and chosen at run
 * time (jscan_tokens), so one binary runs on every machine. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define JSCAN_VBMI 1
#define VBMI_TARGET                                                            \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi,"              \
                          "avx512vbmi2,popcnt,bmi,bmi2")))
#endif
#endif

/* The plain wording of each error, for scanners with an err buffer. */
static const char *const plain_msgs[] = {
    [JSCAN_E_NONE] = "no error",
    [JSCAN_E_EXPECT] = "expected '%c'",
    [JSCAN_E_NOT_STRING] = "expected a string",
    [JSCAN_E_CONTROL] = "control character in string",
    [JSCAN_E_UNTERMINATED] = "unterminated string",
    [JSCAN_E_UESCAPE] = "bad \\u escape",
    [JSCAN_E_ESCAPE] = "bad escape in string",
    [JSCAN_E_UTF8] = "string is not valid UTF-8",
    [JSCAN_E_NOMEM] = "out of memory",
    [JSCAN_E_NUMBER] = "bad number",
    [JSCAN_E_LITERAL] = "unexpected character",
    [JSCAN_E_END] = "unexpected end of input",
    [JSCAN_E_DEPTH] = "nested too deeply",
    [JSCAN_E_OBJECT_SEP] = "expected ',' or '}'",
    [JSCAN_E_ARRAY_SEP] = "expected ',' or ']'",
    [JSCAN_E_NOT_UINT] = "expected a non-negative integer",
    [JSCAN_E_RANGE] = "integer out of range",
    [JSCAN_E_NOT_INT] = "expected an integer",
    [JSCAN_E_HASH_RANGE] = "hash out of range",
    [JSCAN_E_HASH_HEX] = "bad hex hash",
    [JSCAN_E_HASH_TEXT] = "bad hash string",
    [JSCAN_E_TOKEN] = "bad token (a leading zero, or over 4294967295)",
    [JSCAN_E_NOT_BOOL] = "expected true or false",
};

/* Records why the scan failed at byte at; always returns -1. */
static int
fail_at(struct jscan *s, size_t at, enum jscan_error e)
{
    s->i = at;
    s->error = e;
    if (s->err != NULL && s->errlen > 0) {
        if (e == JSCAN_E_EXPECT)
            snprintf(s->err, s->errlen, "expected '%c'", s->want);
        else
            snprintf(s->err, s->errlen, "%s", plain_msgs[e]);
    }
    return -1;
}

void
jscan_init(struct jscan *s, const char *p, size_t n, struct arena *a, char *err,
           size_t errlen)
{
    s->s = p;
    s->n = n;
    s->i = 0;
    s->arena = a;
    s->err = err;
    s->errlen = errlen;
    s->error = JSCAN_E_NONE;
    s->want = 0;
}

int
jscan_expect(struct jscan *s, char c)
{
    if (jscan_peek(s) != (unsigned char)c) {
        s->want = c;
        return fail_at(s, s->i, JSCAN_E_EXPECT);
    }
    s->i++;
    return 0;
}

int
jscan_hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The four hex digits of a \u escape at p, or -1. */
static long
hex4(const char *p)
{
    long v = 0;

    for (int k = 0; k < 4; k++) {
        int h = jscan_hex_digit((unsigned char)p[k]);
        if (h < 0)
            return -1;
        v = v << 4 | h;
    }
    return v;
}

/*
 * The code point of the \u escape whose four hex digits start at h, with
 * left bytes from h to the string's end: a high surrogate followed by an
 * escaped low one is joined into one code point (*used = 10 bytes from h,
 * else 4).  Returns -1 for bad hex digits; a surrogate that is not half of
 * a pair comes back as itself (0xd800 to 0xdfff), for the caller to judge.
 */
static long
u_escape(const char *h, size_t left, size_t *used)
{
    long cp = left >= 4 ? hex4(h) : -1, lo;

    *used = 4;
    if (cp >= 0xd800 && cp <= 0xdbff && left >= 10 && h[4] == '\\' &&
        h[5] == 'u' && (lo = hex4(h + 6)) >= 0xdc00 && lo <= 0xdfff) {
        *used = 10;
        return 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    }
    return cp;
}

static char *
utf8_put(char *d, unsigned long cp)
{
    if (cp < 0x80) {
        *d++ = (char)cp;
    } else if (cp < 0x800) {
        *d++ = (char)(0xc0 | cp >> 6);
        *d++ = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *d++ = (char)(0xe0 | cp >> 12);
        *d++ = (char)(0x80 | (cp >> 6 & 0x3f));
        *d++ = (char)(0x80 | (cp & 0x3f));
    } else {
        *d++ = (char)(0xf0 | cp >> 18);
        *d++ = (char)(0x80 | (cp >> 12 & 0x3f));
        *d++ = (char)(0x80 | (cp >> 6 & 0x3f));
        *d++ = (char)(0x80 | (cp & 0x3f));
    }
    return d;
}

/* Decodes the escaped string body s[start, end) into the arena. */
static int
unescape(struct jscan *s, size_t start, size_t end, struct kv_str *out)
{
    const char *p = s->s;
    /* Decoded text is never longer than its escaped form. */
    char *dst = arena_alloc(s->arena, end - start + 1);
    char *d = dst;
    size_t i = start;

    if (dst == NULL)
        return fail_at(s, start, JSCAN_E_NOMEM);
    while (i < end) {
        char c = p[i];
        if (c != '\\') {
            *d++ = c;
            i++;
            continue;
        }
        char e = p[i + 1];
        i += 2;
        switch (e) {
        case '"':
        case '\\':
        case '/':
            *d++ = e;
            break;
        case 'b':
            *d++ = '\b';
            break;
        case 'f':
            *d++ = '\f';
            break;
        case 'n':
            *d++ = '\n';
            break;
        case 'r':
            *d++ = '\r';
            break;
        case 't':
            *d++ = '\t';
            break;
        case 'u': {
            size_t used;
            long cp = u_escape(p + i, end - i, &used);
            if (cp < 0)
                return fail_at(s, i - 2, JSCAN_E_UESCAPE);
            i += used;
            if (cp >= 0xd800 && cp <= 0xdfff)
                cp = 0xfffd;
            d = utf8_put(d, (unsigned long)cp);
            break;
        }
        default:
            return fail_at(s, i - 2, JSCAN_E_ESCAPE);
        }
    }
    *d = '\0';
    out->p = dst;
    out->n = (size_t)(d - dst);
    return 0;
}

/*
 * At an opening quote: finds the closing one.  Returns the body's end
 * (the cursor goes past the quote) and whether it has escapes, or -1.
 */
static inline int
scan_string(struct jscan *s, size_t *end, int *esc)
{
    const char *p = s->s;
    size_t n = s->n;
    size_t i = s->i + 1;

    *esc = 0;
    while (i < n) {
#ifdef JSCAN_SWAR
        /* Eight bytes at a time, straight to the first special one. */
        while (n - i >= 8) {
            uint64_t x;
            memcpy(&x, p + i, 8);
            uint64_t m = fmt_special8(x);
            if (m != 0) {
                i += (size_t)__builtin_ctzll(m) / 8;
                break;
            }
            i += 8;
        }
        if (i >= n)
            break;
#endif
        unsigned char c = (unsigned char)p[i];
        if (c == '"')
            break;
        if (c == '\\') {
            *esc = 1;
            i += 2;
            continue;
        }
        if (c < 0x20)
            return fail_at(s, i, JSCAN_E_CONTROL);
        i++;
    }
    if (i >= n)
        return fail_at(s, n, JSCAN_E_UNTERMINATED);
    *end = i;
    s->i = i + 1;
    return 0;
}

int
jscan_string(struct jscan *s, struct kv_str *out)
{
    size_t start, end;
    int esc;

    if (jscan_peek(s) != '"')
        return fail_at(s, s->i, JSCAN_E_NOT_STRING);
    start = s->i + 1;
    if (scan_string(s, &end, &esc) < 0)
        return -1;
    if (!esc || s->arena == NULL) {
        out->p = s->s + start;
        out->n = end - start;
        return 0;
    }
    if (unescape(s, start, end, out) < 0)
        return -1;
    s->i = end + 1;
    return 0;
}

static int
is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/*
 * Reads the digits of p[i, n) on into *m, setting *ovf (and keeping *m)
 * once they no longer fit; returns the index after them.
 */
static inline size_t
digits_on(const char *p, size_t n, size_t i, uint64_t *m, int *ovf)
{
    uint64_t x = *m;

    for (; i < n && is_digit((unsigned char)p[i]); i++) {
        unsigned d = (unsigned)(p[i] - '0');

        if (x > (UINT64_MAX - d) / 10)
            *ovf = 1;
        else
            x = x * 10 + d;
    }
    *m = x;
    return i;
}

int
jscan_number(struct jscan *s, struct jscan_num *num)
{
    const char *p = s->s;
    size_t n = s->n;
    size_t i = s->i;

    uint64_t m = 0;

    memset(num, 0, sizeof *num);
    num->start = i;
    num->is_int = 1;
    if (i < n && p[i] == '-') {
        num->neg = 1;
        i++;
    }
    if (i >= n || !is_digit((unsigned char)p[i]))
        return fail_at(s, i, JSCAN_E_NUMBER);
    if (p[i] == '0')
        i++;
    else
        i = digits_on(p, n, i, &m, &num->ovf);
    if (i < n && p[i] == '.') {
        size_t f = ++i;

        num->is_int = 0;
        if (i >= n || !is_digit((unsigned char)p[i]))
            return fail_at(s, i, JSCAN_E_NUMBER);
        /* The digits go on into m, so that jscan_num_double need not read
         * them again. */
        i = digits_on(p, n, i, &m, &num->ovf);
        num->frac = i - f > INT_MAX ? INT_MAX : (int)(i - f);
    }
    num->mag = m;
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        num->is_int = 0;
        num->frac = -1;
        i++;
        if (i < n && (p[i] == '+' || p[i] == '-'))
            i++;
        if (i >= n || !is_digit((unsigned char)p[i]))
            return fail_at(s, i, JSCAN_E_NUMBER);
        while (i < n && is_digit((unsigned char)p[i]))
            i++;
    }
    num->end = i;
    s->i = i;
    return 0;
}

/* Reads decimal digits of p[*i, n) into *v; returns -1 on overflow. */
static int
digits_u64(const char *p, size_t n, size_t *i, uint64_t *v)
{
    uint64_t x = 0;
    size_t k = *i;

    while (k < n && is_digit((unsigned char)p[k])) {
        unsigned d = (unsigned)(p[k] - '0');
        if (x > (UINT64_MAX - d) / 10)
            return -1;
        x = x * 10 + d;
        k++;
    }
    *v = x;
    *i = k;
    return 0;
}

int
jscan_u64(struct jscan *s, uint64_t max, uint64_t *out)
{
    size_t start, i;
    uint64_t v;
    int c = jscan_peek(s);

    if (c < '0' || c > '9')
        return fail_at(s, s->i, JSCAN_E_NOT_UINT);
    start = i = s->i;
    if (digits_u64(s->s, s->n, &i, &v) < 0 || v > max)
        return fail_at(s, start, JSCAN_E_RANGE);
    if ((s->s[start] == '0' && i - start > 1) ||
        (i < s->n && (s->s[i] == '.' || s->s[i] == 'e' || s->s[i] == 'E')))
        return fail_at(s, start, JSCAN_E_NOT_INT);
    s->i = i;
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
        s->i++;
    }
    if (jscan_u64(s, neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, &v) <
        0)
        return -1;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

#ifdef __SIZEOF_INT128__
__extension__ typedef unsigned __int128 u128;

/* How many bits x takes: its highest set bit's position plus one (x != 0). */
static int
bits128(u128 x)
{
    uint64_t hi = (uint64_t)(x >> 64);

    return hi ? 128 - __builtin_clzll(hi) : 64 - __builtin_clzll((uint64_t)x);
}

/*
 * m / 10^k rounded to the nearest double, ties to even, exactly as strtod
 * rounds it, for 0 < m < 2^64 and k <= 19: the case Clinger's division
 * cannot take because m has more than 53 bits, which is every timestamp
 * with 17 significant digits (time.time() in Python gives microseconds).
 * m is shifted up to 127 bits and divided once in integers, which leaves
 * at least 63 bits of quotient, so 53 of them, the next bit and whether
 * anything below it (in the quotient or the remainder) is set decide the
 * rounding.  The result lies between 10^-19 and 2^64, where every double
 * is normal.
 */
static __attribute__((noinline)) double
div_pow10(uint64_t m, unsigned k)
{
    int shift = 127 - (64 - __builtin_clzll(m));
    u128 n = (u128)m << shift;
    u128 q = n / fmt_pow10[k];
    int below = n - q * fmt_pow10[k] != 0;
    int drop = bits128(q) - 53;
    uint64_t mant = (uint64_t)(q >> drop);
    u128 rest = q & (((u128)1 << drop) - 1);
    u128 half = (u128)1 << (drop - 1);
    uint64_t scale;
    double d;

    if (rest > half || (rest == half && (below || (mant & 1))))
        mant++; /* 2^53 at most, still exact */
    /* d * 2^(drop - shift), exact: a power of two in the normal range. */
    scale = (uint64_t)(1023 + drop - shift) << 52;
    memcpy(&d, &scale, sizeof d);
    return (double)mant * d;
}
#endif

/*
 * A fraction jscan_number kept as one integer (its digits, the point left
 * out), m / 10^frac, as strtod rounds it; -1 when it did not keep one or
 * neither division takes it.  m / 10^k with m <= 2^53 and k <= 22 is the
 * exact quotient of two exact doubles, so one division rounds it right; a
 * wider m takes the division in integers.
 */
static int
fraction_double(const struct jscan_num *num, double *d)
{
    static const double p10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

    if (num->frac <= 0 || num->ovf)
        return -1;
    if (num->frac <= 22 && num->mag <= (uint64_t)1 << 53) {
        *d = (double)num->mag / p10[num->frac];
        return 0;
    }
#ifdef __SIZEOF_INT128__
    if (num->frac <= 19 && num->mag != 0) {
        *d = div_pow10(num->mag, (unsigned)num->frac);
        return 0;
    }
#endif
    return -1;
}

/* What strtod reads of the number's text, through a terminated copy.  Out
 * of line, to keep jscan_num_double's common paths without its frame. */
static __attribute__((noinline)) int
text_double(struct jscan *sc, const struct jscan_num *num, double *out)
{
    size_t len = num->end - num->start;
    char small[64];
    char *tmp = small;

    if (len >= sizeof small) {
        tmp = sc->arena != NULL ? arena_alloc(sc->arena, len + 1) : NULL;
        if (tmp == NULL)
            return fail_at(sc, sc->i, JSCAN_E_NOMEM);
    }
    memcpy(tmp, sc->s + num->start, len);
    tmp[len] = '\0';
    *out = strtod(tmp, NULL);
    return 0;
}

int
jscan_num_double(struct jscan *sc, const struct jscan_num *num, double *out)
{
    double d;

    if (num->is_int && !num->ovf) {
        *out = num->neg ? -(double)num->mag : (double)num->mag;
        return 0;
    }
    if (fraction_double(num, &d) == 0) {
        *out = num->neg ? -d : d;
        return 0;
    }
    /* The rest (an exponent, more digits than 64 bits hold, a fraction
     * longer than either division takes). */
    return text_double(sc, num, out);
}

#ifdef JSCAN_SWAR
/*
 * Number of leading decimal digits among the 8 bytes of x (8 when all
 * are).  A byte >= 0xfa can carry into the next byte's test, but only
 * after a byte that already failed, so the first failure is exact.
 */
static int
digits_run8(uint64_t x)
{
    const uint64_t hi = 0xf0f0f0f0f0f0f0f0ull, zeros = 0x3030303030303030ull;
    uint64_t bad =
        ((x & hi) ^ zeros) | (((x + 0x0606060606060606ull) & hi) ^ zeros);
    return bad == 0 ? 8 : __builtin_ctzll(bad) / 8;
}

/* The value of the first len (1-8) digit bytes of x, first byte first. */
static uint32_t
digits_value8(uint64_t x, int len)
{
    /* Borrows from the bytes past len only reach later bytes, shifted out. */
    x = (x - 0x3030303030303030ull) << (8 * (8 - len));
    x = (x * 10 + (x >> 8)) & 0x00ff00ff00ff00ffull;
    x = (x * 100 + (x >> 16)) & 0x0000ffff0000ffffull;
    return (uint32_t)((x * 10000 + (x >> 32)) & 0xffffffffull);
}
#endif

int
jscan_hash_text(const char *p, size_t n, uint64_t *out, enum jscan_error *why)
{
    uint64_t v = 0;
    size_t k = 0;

    if (n > 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        if (n - 2 > 16) {
            *why = JSCAN_E_HASH_RANGE;
            return -1;
        }
        for (k = 2; k < n; k++) {
            int h = jscan_hex_digit((unsigned char)p[k]);
            if (h < 0) {
                *why = JSCAN_E_HASH_HEX;
                return -1;
            }
            v = v << 4 | (uint64_t)h;
        }
        *out = v;
        return 0;
    }
    *why = JSCAN_E_HASH_TEXT;
    if (n == 0 || n > 20)
        return -1;
#ifdef JSCAN_SWAR
    /* Up to 19 digits cannot overflow: take them 8 at a time. */
    for (; k + 8 <= n && k + 8 <= 19; k += 8) {
        uint64_t x;
        memcpy(&x, p + k, 8);
        if (digits_run8(x) != 8)
            return -1;
        v = v * 100000000 + digits_value8(x, 8);
    }
#endif
    for (; k < n; k++) {
        if (!is_digit((unsigned char)p[k]))
            return -1;
        unsigned d = (unsigned)(p[k] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int
jscan_hash_digits(struct jscan *s, uint64_t *out)
{
#ifdef JSCAN_SWAR
    const char *p = s->s + s->i + 1;
    uint64_t w[3], v;
    int len, run;

    /* The quote and the three words after it: 25 bytes from the cursor. */
    if (s->n - s->i < 25 || p[-1] != '"')
        return 0;
    memcpy(w, p, sizeof w);
    len = run = digits_run8(w[0]);
    if (run == 8) {
        len += run = digits_run8(w[1]);
        if (run == 8)
            len += digits_run8(w[2]);
    }
    if (len == 0 || len > 20 || p[len] != '"')
        return 0;
    if (len <= 8) {
        v = digits_value8(w[0], len);
    } else if (len <= 16) {
        v = (uint64_t)digits_value8(w[0], 8) * fmt_pow10[len - 8] +
            digits_value8(w[1], len - 8);
    } else {
        uint64_t hi = (uint64_t)digits_value8(w[0], 8) * 100000000 +
                      digits_value8(w[1], 8);
        /* 20 digits can pass 2^64 - 1: the general path says so. */
        if (__builtin_mul_overflow(hi, fmt_pow10[len - 16], &v) ||
            __builtin_add_overflow(v, digits_value8(w[2], len - 16), &v))
            return 0;
    }
    *out = v;
    s->i += (size_t)len + 2;
    return 1;
#else
    (void)s;
    (void)out;
    return 0;
#endif
}

int
jscan_hash(struct jscan *s, uint64_t *out)
{
    struct kv_str t;
    enum jscan_error why;
    int64_t i;
    size_t start;
    int c = jscan_peek(s);

    if (c == '-') {
        if (jscan_i64(s, &i) < 0)
            return -1;
        *out = (uint64_t)i;
        return 0;
    }
    if (c != '"')
        return jscan_u64(s, UINT64_MAX, out);
    if (jscan_hash_digits(s, out))
        return 0;
    start = s->i;
    if (jscan_string(s, &t) < 0)
        return -1;
    if (jscan_hash_text(t.p, t.n, out, &why) < 0)
        return fail_at(s, start, why);
    return 0;
}

/*
 * One token id at s[i, n) into *out, the cursor into *i.  Returns 0, or
 * the error and leaves *i alone.
 */
static inline enum jscan_error
token_at(const char *p, size_t n, size_t *i, uint32_t *out)
{
    size_t k = *i, start = *i;
    uint64_t v = 0;

#ifdef JSCAN_SWAR
    /* The usual case: up to 7 digits, then ',' or ']', all in one word. */
    if (n - k >= 8) {
        uint64_t x;
        memcpy(&x, p + k, 8);
        int len = digits_run8(x);
        if (len >= 1 && len < 8 && (p[k] != '0' || len == 1) &&
            p[k + len] != '.' && p[k + len] != 'e' && p[k + len] != 'E') {
            *i = k + (size_t)len;
            *out = digits_value8(x, len);
            return JSCAN_E_NONE;
        }
    }
#endif
    /* At most 11 digits: enough to see a value over 2^32. */
    while (k < n && k - start < 11 && is_digit((unsigned char)p[k]))
        v = v * 10 + (uint64_t)(p[k++] - '0');
    if (k == start || (k < n && (p[k] == '.' || p[k] == 'e' || p[k] == 'E')))
        return JSCAN_E_NOT_UINT;
    if (v > UINT32_MAX || (p[start] == '0' && k - start > 1))
        return JSCAN_E_TOKEN;
    *i = k;
    *out = (uint32_t)v;
    return JSCAN_E_NONE;
}

/* The first non-blank at or after i. */
static inline size_t
skip_blanks(const char *p, size_t n, size_t i)
{
    while (i < n &&
           (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    return i;
}

#ifdef JSCAN_SSE2
/* Bit j of the result: p[j] (of p[0..16)) is a decimal digit; of *commas:
 * p[j] is ','. */
static inline uint32_t
digits16(const char *p, uint32_t *commas)
{
    const __m128i zero = _mm_set1_epi8('0'), nine = _mm_set1_epi8(9);
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i d = _mm_sub_epi8(v, zero);

    *commas =
        (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(',')));
    return (uint32_t)_mm_movemask_epi8(
        _mm_cmpeq_epi8(_mm_min_epu8(d, nine), d));
}

/*
 * The compact run of token ids ("12,345,6,") starting at p[*i], into
 * dst[0..room); returns how many it stored, with *i at the first id it
 * left.  It takes only ids that token_at would take with the same value
 * (1 to 8 digits, no leading zero, each followed by ',') and leaves
 * anything else (blanks, the last id before ']', an error) to it, so the
 * result and every error stay token_at's.  Found by profiling `kvindex
 * serve` under a stream of 2,048-token matches: token_at's loop costs
 * about 20 cycles an id, as each id's end decides where the next load
 * starts.  Here the digits and commas of 64-byte windows at fixed steps
 * are found first, with nothing waiting on the ids; an id may straddle
 * two windows, as only its start carries over.
 */
static size_t
tokens_run(const char *p, size_t n, size_t *i, uint32_t *dst, size_t room)
{
    size_t start = *i, w = *i, k = 0;

    /* 72 bytes of room: an id starts in the window and is read as 8. */
    while (k < room && n - w >= 72) {
        uint32_t c0, c1, c2, c3;
        uint64_t digits = (uint64_t)digits16(p + w, &c0) |
                          (uint64_t)digits16(p + w + 16, &c1) << 16 |
                          (uint64_t)digits16(p + w + 32, &c2) << 32 |
                          (uint64_t)digits16(p + w + 48, &c3) << 48;
        uint64_t commas = (uint64_t)c0 | (uint64_t)c1 << 16 |
                          (uint64_t)c2 << 32 | (uint64_t)c3 << 48;
        /* Only the commas before the first byte that is neither count. */
        uint64_t other = ~(digits | commas);
        uint64_t c = commas & ((other & -other) - 1);

        for (; c != 0; c &= c - 1) {
            size_t end = w + (size_t)__builtin_ctzll(c), len = end - start;
            uint64_t x;

            if (len - 1 > 7 || (len > 1 && p[start] == '0'))
                goto done;
            memcpy(&x, p + start, 8);
            dst[k++] = digits_value8(x, (int)len);
            start = end + 1;
            if (k == room)
                goto done;
        }
        if (other != 0)
            break;
        w += 64;
    }
done:
    *i = start;
    return k;
}
#endif

#ifdef JSCAN_VBMI
/*
 * tokens_run's contract (the same ids, stopping where it stops, or
 * earlier) for CPUs with AVX-512 VBMI2, without a branch per id.  The
 * input is read in 64-byte windows at fixed steps, so that finding a
 * window's digits and commas waits on nothing the ids decide; an id that
 * straddles two windows is read from the pair (vpermi2b), as only its
 * start carries over.  A window's commas are packed into bytes
 * (vpcompressb), each id's digits are moved into an 8-byte lane of its
 * own, right-aligned and zero-filled, and eight lanes are converted at
 * once (multiply-adds by 10, 100 and 10,000).  The ids are checked as
 * tokens_run checks them, and the run ends before the first bad one,
 * which the byte-wise readers then see.
 */
VBMI_TARGET static size_t
tokens_vbmi(const char *p, size_t n, size_t *i, uint32_t *dst, size_t room)
{
    const __m512i ascii0 = _mm512_set1_epi8('0'), one = _mm512_set1_epi8(1);
    /* Places in a pair of windows: the previous one is 0..63, the current
     * one 64..127.  Byte j of lane_of: j / 8, the id whose lane byte j is
     * in; of lane_pos: j % 8 - 8, its place counted back from the id's
     * end. */
    const __m512i iota = _mm512_set_epi64(
        0x3f3e3d3c3b3a3938, 0x3736353433323130, 0x2f2e2d2c2b2a2928,
        0x2726252423222120, 0x1f1e1d1c1b1a1918, 0x1716151413121110,
        0x0f0e0d0c0b0a0908, 0x0706050403020100);
    const __m512i lane_of =
        _mm512_srli_epi16(_mm512_and_si512(iota, _mm512_set1_epi8(0x38)), 3);
    const __m512i lane_pos = _mm512_sub_epi8(
        _mm512_and_si512(iota, _mm512_set1_epi8(7)), _mm512_set1_epi8(8));
    const __m512i prev_id = _mm512_sub_epi8(iota, one);
    __m512i before = _mm512_setzero_si512();
    size_t w = *i, k = 0;
    /* The first id's start, in the pair's places. */
    unsigned first = 64;

    while (k < room && n - w >= 64) {
        __m512i v = _mm512_loadu_si512((const void *)(p + w));
        uint64_t digits = _mm512_cmplt_epu8_mask(_mm512_sub_epi8(v, ascii0),
                                                 _mm512_set1_epi8(10));
        uint64_t commas = _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(','));
        uint64_t other = ~(digits | commas);
        /* Only the commas before the first byte that is neither count. */
        uint64_t c = commas & ((other & -other) - 1);
        unsigned m, g, take;

        m = (unsigned)_mm_popcnt_u64(c);
        /* Where each id ends (its comma) and starts, one byte an id. */
        __m512i ends = _mm512_add_epi8(_mm512_maskz_compress_epi8(c, iota),
                                       _mm512_set1_epi8(64));
        __m512i starts = _mm512_mask_set1_epi8(
            _mm512_add_epi8(_mm512_permutexvar_epi8(prev_id, ends), one), 1,
            (char)first);
        __m512i len = _mm512_sub_epi8(ends, starts);
        __m512i lead = _mm512_permutex2var_epi8(before, starts, v);
        uint64_t ids = _bzhi_u64(~0ull, m);
        /* Lengths 1 to 8, and no '0' that starts an id of two or more. */
        uint64_t bad =
            _mm512_mask_cmpgt_epu8_mask(ids, _mm512_sub_epi8(len, one),
                                        _mm512_set1_epi8(7)) |
            (_mm512_mask_cmpeq_epi8_mask(ids, lead, ascii0) &
             _mm512_cmpgt_epu8_mask(len, one));

        take = bad ? (unsigned)__builtin_ctzll(bad) : m;
        if (take > room - k)
            take = (unsigned)(room - k);
        for (g = 0; g < take; g += 8) {
            __m512i sel = _mm512_add_epi8(lane_of, _mm512_set1_epi8((char)g));
            __m512i src =
                _mm512_add_epi8(_mm512_permutexvar_epi8(sel, ends), lane_pos);
            __mmask64 in = _mm512_cmpge_epu8_mask(
                src, _mm512_permutexvar_epi8(sel, starts));
            __m512i d = _mm512_maskz_sub_epi8(
                in, _mm512_maskz_permutex2var_epi8(in, before, src, v), ascii0);
            __m512i pairs = _mm512_maddubs_epi16(d, _mm512_set1_epi16(0x010a));
            __m512i quads =
                _mm512_madd_epi16(pairs, _mm512_set1_epi32(0x10064));
            __m512i val = _mm512_add_epi64(
                _mm512_mul_epu32(quads, _mm512_set1_epi64(10000)),
                _mm512_srli_epi64(quads, 32));
            __m256i ids32 = _mm512_cvtepi64_epi32(val);

            if (take - g >= 8)
                _mm256_storeu_si256((__m256i *)(void *)(dst + k + g), ids32);
            else
                _mm256_mask_storeu_epi32(
                    dst + k + g, (__mmask8)((1u << (take - g)) - 1), ids32);
        }
        k += take;
        if (take < m || other != 0 || m == 0) {
            /* Past the comma of the last id taken. */
            if (take > 0)
                *i = w +
                     (size_t)__builtin_ctzll(_pdep_u64(1ull << (take - 1), c)) +
                     1;
            return k;
        }
        /* The next id starts past the window's last comma. */
        first = 64u - (unsigned)__builtin_clzll(c);
        *i = w + first;
        before = v;
        w += 64;
    }
    return k;
}

static int jscan_vbmi_off;

static int
vbmi_ok(void)
{
    return !jscan_vbmi_off && fmt_cpu_vbmi2();
}
#endif

/*
 * The widest run reader the CPU has (tokens_run's contract); whatever it
 * leaves (blanks, the last id, an error) is token_at's.  0 ids where none
 * is compiled in.
 */
static inline size_t
tokens_fast(const char *p, size_t n, size_t *i, uint32_t *dst, size_t room)
{
#ifdef JSCAN_VBMI
    if (vbmi_ok())
        return tokens_vbmi(p, n, i, dst, room);
#endif
#ifdef JSCAN_SSE2
    return tokens_run(p, n, i, dst, room);
#else
    (void)p;
    (void)n;
    (void)i;
    (void)dst;
    (void)room;
    return 0;
#endif
}

const char *
jscan_tokens_simd(int portable)
{
#ifdef JSCAN_VBMI
    jscan_vbmi_off = portable;
    if (vbmi_ok())
        return "avx512vbmi2";
#else
    (void)portable;
#endif
#ifdef JSCAN_SSE2
    return "sse2";
#else
    return "swar";
#endif
}

int
jscan_tokens(struct jscan *s, int first, uint32_t *dst, size_t room,
             size_t *got)
{
    /* The cursor stays in a register: this loop is a match request's bulk. */
    const char *p = s->s;
    size_t n = s->n, i = skip_blanks(p, n, s->i), k = 0;
    enum jscan_error e;

    *got = 0;
    if (first && i < n && p[i] == ']') {
        s->i = i + 1;
        return 1;
    }
    for (;;) {
        k += tokens_fast(p, n, &i, dst + k, room - k);
        /* Only the run reader fills the room before a comma is read. */
        if (k == room) {
            s->i = i;
            *got = k;
            return 0;
        }
        i = skip_blanks(p, n, i);
        if ((e = token_at(p, n, &i, &dst[k])) != JSCAN_E_NONE) {
            *got = k;
            return fail_at(s, i, e);
        }
        k++;
        i = skip_blanks(p, n, i);
        if (i < n && p[i] == ',') {
            i++;
            if (k == room) {
                s->i = i;
                *got = k;
                return 0;
            }
            continue;
        }
        *got = k;
        if (i < n && p[i] == ']') {
            s->i = i + 1;
            return 1;
        }
        return fail_at(s, i, JSCAN_E_ARRAY_SEP);
    }
}

/*
 * Consumes what comes before an object member: 0 when the object ends
 * here (its '}' consumed), 1 when a member name is due, -1 on error.
 */
static int
member_due(struct jscan *s, int first)
{
    int c = jscan_peek(s);

    if (c == '}') {
        s->i++;
        return 0;
    }
    if (!first) {
        if (c != ',')
            return fail_at(s, s->i, JSCAN_E_OBJECT_SEP);
        s->i++;
    }
    return 1;
}

int
jscan_member(struct jscan *s, int first, struct kv_str *key)
{
    int r = member_due(s, first);

    if (r <= 0)
        return r;
    if (jscan_string(s, key) < 0 || jscan_expect(s, ':') < 0)
        return -1;
    return 1;
}

int
jscan_element(struct jscan *s, int first)
{
    int c = jscan_peek(s);

    if (c == ']') {
        s->i++;
        return 0;
    }
    if (!first) {
        if (c != ',')
            return fail_at(s, s->i, JSCAN_E_ARRAY_SEP);
        s->i++;
    }
    return 1;
}

/* Consumes the literal w, or fails with JSCAN_E_LITERAL. */
static int
scan_word(struct jscan *s, const char *w, size_t n)
{
    if (s->n - s->i < n || memcmp(s->s + s->i, w, n) != 0)
        return fail_at(s, s->i, JSCAN_E_LITERAL);
    s->i += n;
    return 0;
}

/*
 * Checks a string body s[start, end) that scan_string found: every escape
 * and the UTF-8 of every byte >= 0x80, so that skipped text is as valid as
 * decoded text.  A body with neither (esc clear, no high byte) is the
 * common case and costs one pass over bytes already in cache.
 */
static int
check_string(struct jscan *s, size_t start, size_t end, int esc)
{
    const unsigned char *p = (const unsigned char *)s->s;
    size_t i = start, bad;

    if (!esc) {
        while (i < end && p[i] < 0x80)
            i++;
    }
    while (i < end) {
        unsigned char c = p[i];
        if (c < 0x80 && c != '\\') {
            i++;
        } else if (c >= 0x80) {
            size_t k = fmt_utf8_seq(p + i, end - i, &bad);
            if (k == 0)
                return fail_at(s, i, JSCAN_E_UTF8);
            i += k;
        } else if (p[i + 1] == 'u') {
            size_t used;
            long cp = u_escape(s->s + i + 2, end - i - 2, &used);
            /* A surrogate must come in a pair: skipped text is echoed as
             * it is (a request id), and strict readers refuse a lone one
             * (decoded strings turn it into U+FFFD instead). */
            if (cp < 0 || (cp >= 0xd800 && cp <= 0xdfff))
                return fail_at(s, i, JSCAN_E_UESCAPE);
            i += 2 + used;
        } else if (memchr("\"\\/bfnrt", p[i + 1], 8) != NULL) {
            i += 2;
        } else {
            return fail_at(s, i, JSCAN_E_ESCAPE);
        }
    }
    return 0;
}

int
jscan_bool(struct jscan *s, int *out)
{
    jscan_ws(s);
    if (s->n - s->i >= 4 && memcmp(s->s + s->i, "true", 4) == 0) {
        s->i += 4;
        *out = 1;
        return 0;
    }
    if (s->n - s->i >= 5 && memcmp(s->s + s->i, "false", 5) == 0) {
        s->i += 5;
        *out = 0;
        return 0;
    }
    return fail_at(s, s->i, JSCAN_E_NOT_BOOL);
}

/* One scalar, or the opening of a container (then *open is its byte). */
static int
skip_scalar(struct jscan *s, char *open)
{
    struct jscan_num num;
    size_t end;
    int esc;

    *open = 0;
    switch (jscan_peek(s)) {
    case '{':
    case '[':
        *open = s->s[s->i++];
        return 0;
    case '"': {
        size_t start = s->i + 1;
        if (scan_string(s, &end, &esc) < 0)
            return -1;
        return check_string(s, start, end, esc);
    }
    case 't':
        return scan_word(s, "true", 4);
    case 'f':
        return scan_word(s, "false", 5);
    case 'n':
        return scan_word(s, "null", 4);
    case -1:
        return fail_at(s, s->i, JSCAN_E_END);
    default:
        if (s->s[s->i] != '-' && !is_digit(s->s[s->i]))
            return fail_at(s, s->i, JSCAN_E_LITERAL);
        return jscan_number(s, &num);
    }
}

/*
 * jscan_member for jscan_skip: the name is checked like every skipped string
 * (escapes, UTF-8) and not decoded, since nobody reads it.  An echoed
 * request id is skipped text, and a name in it that is not UTF-8 would make
 * the reply invalid JSON.
 */
static int
skip_member(struct jscan *s, int first)
{
    size_t start, end;
    int esc, r = member_due(s, first);

    if (r <= 0)
        return r;
    if (jscan_peek(s) != '"')
        return fail_at(s, s->i, JSCAN_E_NOT_STRING);
    start = s->i + 1;
    if (scan_string(s, &end, &esc) < 0 ||
        check_string(s, start, end, esc) < 0 || jscan_expect(s, ':') < 0)
        return -1;
    return 1;
}

int
jscan_skip(struct jscan *s, struct kv_str *raw)
{
    /* The open containers, innermost last. */
    char stack[JSCAN_MAX_DEPTH];
    size_t depth = 0, start;
    char open;
    int r;

    jscan_ws(s);
    start = s->i;
    for (;;) {
        /* A value is due here, nested depth containers deep. */
        if (skip_scalar(s, &open) < 0)
            return -1;
        if (open != 0) {
            /* At most JSCAN_MAX_DEPTH containers, empty or not. */
            if (depth == JSCAN_MAX_DEPTH)
                return fail_at(s, s->i - 1, JSCAN_E_DEPTH);
            stack[depth++] = open;
            r = open == '{' ? skip_member(s, 1) : jscan_element(s, 1);
        } else {
            r = 0;
            if (depth == 0)
                break;
            r = stack[depth - 1] == '{' ? skip_member(s, 0)
                                        : jscan_element(s, 0);
        }
        /* Close every container that ends here. */
        while (r == 0) {
            if (--depth == 0)
                goto done;
            r = stack[depth - 1] == '{' ? skip_member(s, 0)
                                        : jscan_element(s, 0);
        }
        if (r < 0)
            return -1;
    }
done:
    if (raw != NULL) {
        raw->p = s->s + start;
        raw->n = s->i - start;
    }
    return 0;
}

int
jscan_find(const char *p, size_t n, const char *name, struct kv_str *raw)
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

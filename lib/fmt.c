/*
 * fmt.c - shared text formatting (see fmt.h).
 */
#include "fmt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char hexdig[] = "0123456789abcdef";

/* "000" to "999", each with a NUL: 4 KiB that stay in cache. */
#define T10(p)                                                                 \
    p "0", p "1", p "2", p "3", p "4", p "5", p "6", p "7", p "8", p "9"
#define T100(p)                                                                \
    T10(p "0"), T10(p "1"), T10(p "2"), T10(p "3"), T10(p "4"), T10(p "5"),    \
        T10(p "6"), T10(p "7"), T10(p "8"), T10(p "9")
const char fmt_dig3[1000][4] = {T100("0"), T100("1"), T100("2"), T100("3"),
                                T100("4"), T100("5"), T100("6"), T100("7"),
                                T100("8"), T100("9")};
#undef T100
#undef T10

/*
 * fmt_double()'s text without printf for 1 <= |v| < 10^14 (every
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

size_t
fmt_double(char *dst, double v)
{
    if (!isfinite(v)) {
        memcpy(dst, "null", 4);
        return 4;
    }
    size_t n = fmt_double_fast(dst, v);
    if (n > 0)
        return n;
    /* The range check first: converting a double outside int64_t is UB. */
    if (fabs(v) < 9007199254740992.0 && v == (double)(int64_t)v)
        return fmt_i64(dst, (int64_t)v);
    /* Fewest digits that read back exactly: 15 usually suffice. */
    int len = 0;
    for (int prec = 15; prec <= 17; prec++) {
        len = snprintf(dst, FMT_DOUBLE_MAX, "%.*g", prec, v);
        if (prec == 17 || strtod(dst, NULL) == v)
            break;
    }
    return (size_t)len;
}

size_t
fmt_utf8_seq(const unsigned char *s, size_t n, size_t *bad)
{
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xbf;

    if (c >= 0xc2 && c <= 0xdf) {
        need = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* beyond U+10FFFF */
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

/* One byte that is not plain ASCII text, at q; returns the new end. */
static char *
put_escape(char *q, unsigned char c)
{
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
    return q;
}

char *
fmt_json_str(char *q, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;

    *q++ = '"';
    while (i < n) {
        /* Eight plain bytes at a time, then byte by byte. */
        while (n - i >= 8) {
            uint64_t x;
            memcpy(&x, s + i, 8);
            if ((fmt_special8(x) | (x & FMT_HIGH8)) != 0)
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
        } else if (c < 0x80) {
            q = put_escape(q, c);
            i++;
        } else {
            size_t bad = 0;
            size_t k = fmt_utf8_seq(s + i, n - i, &bad);
            if (k != 0) {
                memcpy(q, s + i, k);
                q += k;
                i += k;
            } else {
                memcpy(q, "\xef\xbf\xbd", 3);
                q += 3;
                i += bad;
            }
        }
    }
    *q++ = '"';
    return q;
}

/*
 * fmt.c - shared text formatting (see fmt.h).
 */
#include "fmt.h"

#include <string.h>

static const char hexdig[] = "0123456789abcdef";

/*
 * Length of the well-formed UTF-8 sequence at s[0..n), or 0 when the bytes
 * there start an ill-formed one; *bad is then the length of its maximal
 * subpart (the bytes one U+FFFD replaces).
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
        }
    }
    *q++ = '"';
    return q;
}

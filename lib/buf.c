/*
 * buf.c - growable byte buffer with the few formatters the writers need.
 */
#include "buf.h"

#include "fmt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
buf_reserve(struct buf *b, size_t n)
{
    if (b->oom)
        return -1;
    if (b->cap - b->len >= n)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n) {
        if (cap > SIZE_MAX / 2) {
            b->oom = 1;
            return -1;
        }
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (p == NULL) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void
buf_put(struct buf *b, const void *p, size_t n)
{
    if (n == 0 || buf_reserve(b, n) == -1)
        return;
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

void
buf_putc(struct buf *b, char c)
{
    if (buf_reserve(b, 1) == -1)
        return;
    b->p[b->len++] = c;
}

void
buf_puts(struct buf *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

void
buf_put_u64(struct buf *b, uint64_t v)
{
    char tmp[20];
    size_t i = sizeof tmp;

    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    buf_put(b, tmp + i, sizeof tmp - i);
}

void
buf_put_i64(struct buf *b, int64_t v)
{
    if (v < 0) {
        buf_putc(b, '-');
        /* Negate in unsigned arithmetic so INT64_MIN does not overflow. */
        buf_put_u64(b, (uint64_t)0 - (uint64_t)v);
    } else {
        buf_put_u64(b, (uint64_t)v);
    }
}

void
buf_put_double(struct buf *b, double v)
{
    char tmp[40];

    if (!isfinite(v)) {
        buf_puts(b, "null");
        return;
    }
    if (v == (double)(int64_t)v && fabs(v) < 9007199254740992.0) {
        buf_put_i64(b, (int64_t)v);
        return;
    }
    /* Fewest digits that read back exactly: 15 usually suffice. */
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (prec == 17 || strtod(tmp, NULL) == v)
            break;
    }
    buf_puts(b, tmp);
}

void
buf_put_json_str(struct buf *b, const char *s, size_t n)
{
    if (buf_reserve(b, fmt_json_str_bound(n)) == -1)
        return;
    b->len = (size_t)(fmt_json_str(b->p + b->len, s, n) - b->p);
}

void
buf_put_hex(struct buf *b, const uint8_t *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";

    if (buf_reserve(b, 2 * n) == -1)
        return;
    for (size_t i = 0; i < n; i++) {
        b->p[b->len++] = hex[p[i] >> 4];
        b->p[b->len++] = hex[p[i] & 15];
    }
}

void
buf_clear(struct buf *b)
{
    b->len = 0;
}

void
buf_free(struct buf *b)
{
    if (b == NULL)
        return;
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}

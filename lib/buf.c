/*
 * buf.c - growable byte buffer; its formatters are lib/fmt's.
 */
#include "buf.h"

#include "fmt.h"

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
    if (buf_reserve(b, 20) == 0)
        b->len += fmt_u64(b->p + b->len, v);
}

void
buf_put_i64(struct buf *b, int64_t v)
{
    if (buf_reserve(b, 21) == 0)
        b->len += fmt_i64(b->p + b->len, v);
}

void
buf_put_double(struct buf *b, double v)
{
    if (buf_reserve(b, FMT_DOUBLE_MAX) == 0)
        b->len += fmt_double(b->p + b->len, v);
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

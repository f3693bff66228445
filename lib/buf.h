/*
 * buf.h - a growable byte buffer, the output side of every encoder.
 *
 * The NDJSON writer appends lines here and the tool writes the buffer to its
 * file descriptor in large chunks; the msgpack encoder builds payloads here.
 * Appends never fail silently: after an allocation failure the buffer is
 * marked (oom) and every later append is a no-op, so callers check once.
 */
#ifndef KVTAP_BUF_H
#define KVTAP_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
    char *p;
    size_t len;
    size_t cap;
    int oom;
};

/* Makes room for n more bytes; returns 0, or -1 (and sets oom). */
int buf_reserve(struct buf *b, size_t n);

void buf_put(struct buf *b, const void *p, size_t n);
void buf_putc(struct buf *b, char c);
void buf_puts(struct buf *b, const char *s);

/* Decimal forms (fmt.h's formatters, appended). */
void buf_put_u64(struct buf *b, uint64_t v);
void buf_put_i64(struct buf *b, int64_t v);

/*
 * The shortest decimal that reads back as the same double (fmt_double()),
 * so timestamps round-trip; integral values print without a fraction.
 * Non-finite values print as null (JSON has no NaN).
 */
void buf_put_double(struct buf *b, double v);

/*
 * A JSON string literal, quotes included: fmt_json_str()'s rules, so
 * invalid UTF-8 comes out as U+FFFD and the text is always valid JSON.
 */
void buf_put_json_str(struct buf *b, const char *s, size_t n);

/* Lower-case hex of n bytes, without quotes. */
void buf_put_hex(struct buf *b, const uint8_t *p, size_t n);

/* Drops the contents, keeps the memory. */
void buf_clear(struct buf *b);

/* Frees the memory.  Accepts NULL. */
void buf_free(struct buf *b);

#endif

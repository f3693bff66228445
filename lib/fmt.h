/*
 * fmt.h - the text formatting every writer shares: JSON string literals
 * and the SWAR byte classifier under them.
 *
 * Functions write at a caller pointer that has room for the bound each
 * states; nothing here allocates, and nothing here owns memory.  struct buf
 * (buf.h) and the NDJSON writer are built on these, so every JSON text the
 * tools write escapes strings the same way.
 */
#ifndef KVTAP_FMT_H
#define KVTAP_FMT_H

#include <stddef.h>
#include <stdint.h>

/*
 * The bytes of the 8 in x that are '"', '\\' or a control byte (< 0x20),
 * as their high bits (x is read as in memory on a little-endian machine).
 * Borrows can mark bytes after a marked one, never before, so the lowest
 * mark is exact; bytes >= 0x80 are not marked (test x & FMT_HIGH8).
 */
#define FMT_ONES8 0x0101010101010101ull
#define FMT_HIGH8 0x8080808080808080ull

static inline uint64_t
fmt_special8(uint64_t x)
{
    uint64_t q = x ^ (FMT_ONES8 * '"');
    uint64_t b = x ^ (FMT_ONES8 * '\\');
    uint64_t m = (x - FMT_ONES8 * 0x20) & ~x; /* bytes below 0x20 */
    m |= (q - FMT_ONES8) & ~q;                /* bytes equal to '"' */
    m |= (b - FMT_ONES8) & ~b;                /* bytes equal to '\\' */
    return m & FMT_HIGH8;
}

/* Room fmt_json_str() may need for n bytes (each can become \u00XX). */
static inline size_t
fmt_json_str_bound(size_t n)
{
    return n > (SIZE_MAX - 2) / 6 ? SIZE_MAX : 6 * n + 2;
}

/*
 * Writes s[0..n) as a JSON string literal, quotes included, at dst (room
 * for fmt_json_str_bound(n) bytes); returns the end.  \" \\ \n \r \t are
 * escaped, other control bytes written as \u00XX, valid UTF-8 copied, and
 * each maximal ill-formed UTF-8 subpart replaced by U+FFFD (as Unicode and
 * Python's errors="replace" count them), so the result is always valid
 * JSON in valid UTF-8 whatever the input bytes.
 */
char *fmt_json_str(char *dst, const char *s, size_t n);

#endif

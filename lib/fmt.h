/*
 * fmt.h - the text formatting every writer shares: decimal integers and
 * doubles, JSON string literals, and the SWAR byte classifier that the
 * escaper and the JSON scanner (jscan.c) both use.
 *
 * Functions write at a caller pointer that has room for the bound each
 * states; nothing here allocates, and nothing here owns memory.  struct buf
 * (buf.h) and the NDJSON writer are built on these, so every JSON text the
 * tools write prints numbers and escapes strings the same way.
 *
 * The integer formatters are inline: the NDJSON writer calls them once per
 * token id and hash, and kvsub prints every event it decodes.
 */
#ifndef KVTAP_FMT_H
#define KVTAP_FMT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* "000" to "999", each with a NUL (fmt_u32_small's table).  Static storage. */
extern const char fmt_dig3[1000][4];

/* 10^0 to 10^19: every power of ten a uint64_t holds.  Static storage. */
extern const uint64_t fmt_pow10[20];

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define FMT_SWAR 1

/*
 * The 8 decimal digits of v < 10^8 as 8 digit values (0-9) in the bytes of
 * a word, most significant first in memory: split 4+4, then 2+2 per half,
 * then 1+1, each step a multiply-shift in every lane at once.
 */
static inline uint64_t
fmt_swar8(uint32_t v)
{
    uint64_t x = (uint64_t)(v / 10000) | (uint64_t)(v % 10000) << 32;
    uint64_t q = (x * 10486) >> 20 & 0x0000007f0000007full; /* /100 */
    x = q | (x - q * 100) << 16;
    q = (x * 103) >> 10 & 0x000f000f000f000full; /* /10 */
    return q | (x - q * 10) << 8;
}
#endif

/* Writes v < 10^8 as exactly 8 digits, leading zeros included. */
static inline void
fmt_8digits(char *dst, uint32_t v)
{
#ifdef FMT_SWAR
    uint64_t x = fmt_swar8(v) + 0x3030303030303030ull;
    memcpy(dst, &x, 8);
#else
    for (int k = 7; k >= 0; k--) {
        dst[k] = (char)('0' + v % 10);
        v /= 10;
    }
#endif
}

/*
 * Writes v in decimal at dst, which has room for 10 bytes (8 more than
 * the digits may be overwritten below 10^8); returns the length.  The
 * digits are made in a register and stored with one 8-byte move: no
 * branch on the length, and no temporary to copy from (that stalls on
 * store-to-load forwarding).
 */
static inline size_t
fmt_u32(char *dst, uint32_t v)
{
    if (v < 10) {
        *dst = (char)('0' + v);
        return 1;
    }
    if (v < 100000000) {
#ifdef FMT_SWAR
        uint64_t x = fmt_swar8(v);
        int lz = __builtin_ctzll(x) / 8; /* leading zero digits */
        x = (x >> (8 * lz)) + 0x3030303030303030ull;
        memcpy(dst, &x, 8);
        return (size_t)(8 - lz);
#else
        char tmp[8];
        size_t n = 0;
        fmt_8digits(tmp, v);
        while (tmp[n] == '0')
            n++;
        memcpy(dst, tmp + n, 8 - n);
        return 8 - n;
#endif
    }
    size_t n = v < 1000000000 ? 1 : 2;
    uint32_t hi = v / 100000000;
    if (n == 2) {
        dst[0] = (char)('0' + hi / 10);
        dst[1] = (char)('0' + hi % 10);
    } else {
        dst[0] = (char)('0' + hi);
    }
    fmt_8digits(dst + n, v % 100000000);
    return n + 8;
}

/* Writes v in decimal at dst (room for 20 bytes); returns the length. */
static inline size_t
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

/* Writes v in decimal at dst (room for 21 bytes); returns the length. */
static inline size_t
fmt_i64(char *dst, int64_t v)
{
    if (v >= 0)
        return fmt_u64(dst, (uint64_t)v);
    *dst = '-';
    /* Negate in unsigned arithmetic so INT64_MIN does not overflow. */
    return 1 + fmt_u64(dst + 1, (uint64_t)0 - (uint64_t)v);
}

/*
 * fmt_u32 for values that are mostly below 10^6 (token ids: vocabularies
 * are that small): at most two lookups of three digits, the length of the
 * first group computed without a branch.  Room for 10 bytes.
 */
static inline size_t
fmt_u32_small(char *q, uint32_t v)
{
    if (v >= 1000000)
        return fmt_u32(q, v);
    uint32_t hi = v / 1000, lo = v % 1000;
    uint32_t first = hi != 0 ? hi : lo;
    size_t len = 1 + (first >= 10) + (first >= 100);
    /* The last len digits of the entry (reads stay inside the table). */
    memcpy(q, (const char *)fmt_dig3 + 4 * first + 3 - len, 4);
    if (hi == 0)
        return len;
    memcpy(q + len, fmt_dig3[lo], 4);
    return len + 3;
}

/* Room fmt_u32_list() needs per id. */
#define FMT_LIST_ROOM 11

/*
 * Writes ids t[0..n) in decimal, each followed by a comma, at dst, which
 * has room for FMT_LIST_ROOM bytes per id; returns the end (the caller
 * drops or keeps the last comma).  Where the CPU has AVX-512 VBMI2
 * (fmt_list_simd), eight ids below 10^7 at a time are made in one
 * register and packed with their commas by one vpcompressb; fmt_u32_small
 * writes the rest.
 */
char *fmt_u32_list(char *dst, const uint32_t *t, size_t n);

/*
 * Whether this CPU can run kvtap's AVX-512 paths (jscan's token reader,
 * fmt_u32_list): AVX-512 F, BW, VL, VBMI and VBMI2, POPCNT and BMI2.
 * 0 where the compiler cannot build them.
 */
int fmt_cpu_vbmi2(void);

/*
 * fmt_u32_list writes with AVX-512 where fmt_cpu_vbmi2() says so; with
 * portable = 1 it keeps to fmt_u32_small until called again with 0, so
 * tests and benchmarks can check and time both on one machine; not to be
 * called while another thread writes.  Returns "avx512vbmi2" or "scalar",
 * the path now taken.  Static storage.
 */
const char *fmt_list_simd(int portable);

/* Room fmt_double() needs. */
#define FMT_DOUBLE_MAX 32

/*
 * Writes the shortest decimal that reads back as the same double (the
 * first of 15, 16, 17 significant digits that does, as "%.*g" and strtod
 * give it), so timestamps round-trip; integral values print without a
 * fraction and non-finite ones as null (JSON has no NaN).  dst has room
 * for FMT_DOUBLE_MAX bytes; returns the length.
 */
size_t fmt_double(char *dst, double v);

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

/*
 * Length of the well-formed UTF-8 sequence at s[0..n) (n >= 1), or 0 when
 * the bytes there start an ill-formed one; *bad is then the length of its
 * maximal subpart (the bytes one U+FFFD replaces).
 */
size_t fmt_utf8_seq(const unsigned char *s, size_t n, size_t *bad);

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

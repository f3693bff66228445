/*
 * fmt.c - shared text formatting (see fmt.h).
 */
#include "fmt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define FMT_VBMI 1
#define FMT_VBMI_TARGET                                                        \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi,"              \
                          "avx512vbmi2,popcnt,bmi,bmi2")))
#endif

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

const uint64_t fmt_pow10[20] = {1ull,
                                10ull,
                                100ull,
                                1000ull,
                                10000ull,
                                100000ull,
                                1000000ull,
                                10000000ull,
                                100000000ull,
                                1000000000ull,
                                10000000000ull,
                                100000000000ull,
                                1000000000000ull,
                                10000000000000ull,
                                100000000000000ull,
                                1000000000000000ull,
                                10000000000000000ull,
                                100000000000000000ull,
                                1000000000000000000ull,
                                10000000000000000000ull};

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
    while (ndig < 14 && ipart >= fmt_pow10[ndig])
        ndig++;

    uint64_t digits = 0;
    int dec = 0;
    for (int prec = 15; prec <= 17; prec++) {
        dec = prec - ndig;
        u128 n = (u128)m * fmt_pow10[dec];
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
        u128 unit = fmt_pow10[dec];
        if (back < n && m == (uint64_t)1 << 52)
            twice *= 2; /* the gap below a power of two is half as wide */
        if (twice < unit || (twice == unit && !(m & 1)))
            break;
    }
    uint64_t ip = digits / fmt_pow10[dec], fp = digits % fmt_pow10[dec];
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

int
fmt_cpu_vbmi2(void)
{
#ifdef FMT_VBMI
    return __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512vbmi") &&
           __builtin_cpu_supports("avx512vbmi2") &&
           __builtin_cpu_supports("popcnt") && __builtin_cpu_supports("bmi2");
#else
    return 0;
#endif
}

#ifdef FMT_VBMI
static int fmt_vbmi_off;

/*
 * Eight ids at a time while all are below 10^7, the rest left to the
 * caller; returns the end and sets *done.  Each id becomes 8 digits in a
 * 64-bit lane as fmt_swar8 makes them (the first always 0 below 10^7),
 * moved down a byte so that byte 7 takes the comma; the bytes from each
 * lane's first nonzero digit (its last digit at least) to its comma are
 * then packed together.  The 64-byte store needs no more room than the
 * eight ids' FMT_LIST_ROOM.
 */
FMT_VBMI_TARGET static char *
list_vbmi(char *dst, const uint32_t *t, size_t n, size_t *done)
{
    const __m256i below = _mm256_set1_epi32(10000000);
    const __m512i ascii = _mm512_set1_epi64(0x2c30303030303030ll);
    size_t k = 0;

    for (; k + 8 <= n; k += 8) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(t + k));
        if (_mm256_cmpge_epu32_mask(v, below) != 0)
            break;
        /* v / 10^4 | (v % 10^4) << 32 in each 64-bit lane (exact for
         * v < 4.9 * 10^8), then /100 in 32-bit lanes and /10 in 16-bit
         * lanes, as fmt_swar8 does in one word. */
        __m512i x = _mm512_cvtepu32_epi64(v);
        __m512i hi = _mm512_srli_epi64(
            _mm512_mul_epu32(x, _mm512_set1_epi64(109951163)), 40);
        x = _mm512_or_si512(
            hi, _mm512_slli_epi64(
                    _mm512_sub_epi64(
                        x, _mm512_mul_epu32(hi, _mm512_set1_epi64(10000))),
                    32));
        __m512i q = _mm512_srli_epi32(
            _mm512_mullo_epi32(x, _mm512_set1_epi32(10486)), 20);
        x = _mm512_or_si512(
            q, _mm512_slli_epi32(
                   _mm512_sub_epi32(
                       x, _mm512_mullo_epi32(q, _mm512_set1_epi32(100))),
                   16));
        q = _mm512_srli_epi16(_mm512_mullo_epi16(x, _mm512_set1_epi16(103)),
                              10);
        x = _mm512_or_si512(
            q, _mm512_slli_epi16(
                   _mm512_sub_epi16(
                       x, _mm512_mullo_epi16(q, _mm512_set1_epi16(10))),
                   8));
        x = _mm512_srli_epi64(x, 8);
        /*
         * Per lane (8 mask bits): the nonzero digits, and the last digit
         * (bit 6) always; then every bit from the lowest set one up, which
         * is m | -m in each byte.  Bit 6 being set, ~m + 1 cannot carry
         * into the next byte.
         */
        uint64_t m = _mm512_test_epi8_mask(x, x) | 0x4040404040404040ull;
        uint64_t keep = m | (~m + 0x0101010101010101ull);
        __m512i out =
            _mm512_maskz_compress_epi8(keep, _mm512_or_si512(x, ascii));
        _mm512_storeu_si512((void *)dst, out);
        dst += _mm_popcnt_u64(keep);
    }
    *done = k;
    return dst;
}
#endif

const char *
fmt_list_simd(int portable)
{
#ifdef FMT_VBMI
    fmt_vbmi_off = portable;
    if (!portable && fmt_cpu_vbmi2())
        return "avx512vbmi2";
#else
    (void)portable;
#endif
    return "scalar";
}

char *
fmt_u32_list(char *dst, const uint32_t *t, size_t n)
{
    size_t k = 0;

#ifdef FMT_VBMI
    if (n >= 8 && !fmt_vbmi_off && fmt_cpu_vbmi2())
        dst = list_vbmi(dst, t, n, &k);
#endif
    for (; k < n; k++) {
        dst += fmt_u32_small(dst, t[k]);
        *dst++ = ',';
    }
    return dst;
}

/*
 * test_fmt.c - the shared formatters: decimal integers, id lists and
 * doubles (against printf), JSON string literals (through buf_put_json_str,
 * which kvindex replies use) and the byte classifier.
 *
 * Expected texts are written by hand from RFC 8259 and Unicode's "maximal
 * subpart" rule; every escaped string must also be accepted by jansson, a
 * strict parser that refuses invalid UTF-8.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>

#include "buf.h"
#include "fmt.h"
#include "unit.h"

/* U+FFFD in UTF-8. */
#define R "\xef\xbf\xbd"

/* buf_put_json_str's text for s[0..n), NUL-terminated in b. */
static const char *
json_str(struct buf *b, const char *s, size_t n)
{
    buf_clear(b);
    buf_put_json_str(b, s, n);
    buf_putc(b, '\0');
    b->len--;
    return b->oom ? "(oom)" : b->p;
}

/* Whether jansson reads text as one JSON string equal to want. */
static int
parses_as(const char *text, const char *want)
{
    json_error_t e;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &e);
    int ok = v != NULL && json_is_string(v) &&
             strcmp(json_string_value(v), want) == 0;
    if (v == NULL)
        printf("#   jansson: %s\n", e.text);
    json_decref(v);
    return ok;
}

static void
test_json_str(void)
{
    static const struct {
        const char *in;
        size_t n;
        const char *want;    /* the literal */
        const char *decoded; /* what a JSON reader gets back */
    } cases[] = {
        {"a\"b\\c", 5, "\"a\\\"b\\\\c\"", "a\"b\\c"},
        {"\n\r\t\x01", 4, "\"\\n\\r\\t\\u0001\"", "\n\r\t\x01"},
        {"\xc3\xa9\xe2\x82\xac", 5, "\"\xc3\xa9\xe2\x82\xac\"",
         "\xc3\xa9\xe2\x82\xac"},
        /* The request of issue 13: two bytes that never occur in UTF-8. */
        {"\xfe\xff", 2, "\"" R R "\"", R R},
        /* Truncated sequences: one U+FFFD per maximal subpart. */
        {"a\xc3", 2, "\"a" R "\"", "a" R},
        {"\xe2\x82x", 3, "\"" R "x\"", R "x"},
        {"\xf0\x9f\x98", 3, "\"" R "\"", R},
        /* Overlong forms. */
        {"\xc0\xaf", 2, "\"" R R "\"", R R},
        {"\xe0\x80\x80", 3, "\"" R R R "\"", R R R},
        {"\xf0\x80\x80\x80", 4, "\"" R R R R "\"", R R R R},
        /* A UTF-16 surrogate, and a code point beyond U+10FFFF. */
        {"\xed\xa0\x80", 3, "\"" R R R "\"", R R R},
        {"\xf4\x90\x80\x80", 4, "\"" R R R R "\"", R R R R},
        /* A lone continuation byte inside the 8-byte fast path. */
        {"abcdefgh\x80ijklmnop", 17, "\"abcdefgh" R "ijklmnop\"",
         "abcdefgh" R "ijklmnop"},
    };
    struct buf b = {0};

    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char what[64];
        const char *got = json_str(&b, cases[k].in, cases[k].n);
        snprintf(what, sizeof what, "json string case %zu", k);
        CHECK_STR(got, cases[k].want, what);
        snprintf(what, sizeof what, "json string case %zu parses", k);
        CHECK(parses_as(got, cases[k].decoded), what);
    }

    /* Every byte value, alone and after 8 plain bytes, is valid JSON. */
    int all_ok = 1;
    for (int c = 0; c < 256; c++) {
        char in[9] = "........";
        in[8] = (char)c;
        const char *got = json_str(&b, in + 8, 1);
        json_t *v = json_loads(got, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        all_ok &= v != NULL && strchr(got, 0xfe) == NULL;
        json_decref(v);
        got = json_str(&b, in, 9);
        v = json_loads(got, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        all_ok &= v != NULL;
        json_decref(v);
    }
    CHECK(all_ok, "every single byte escapes to valid JSON");

    /* fmt_json_str writes exactly where it says and stays in its bound. */
    char dst[64];
    memset(dst, '#', sizeof dst);
    size_t bound = fmt_json_str_bound(3);
    char *end = fmt_json_str(dst, "\x01\x02\x03", 3);
    CHECK_U64((size_t)(end - dst), 20, "three controls take 20 bytes");
    CHECK(bound == 20 && dst[20] == '#', "bound is exact for controls");
    buf_free(&b);
}

/*
 * Integers against printf, the independent peer: every power of ten and
 * its neighbours, every power of two and its neighbours, the extremes.
 */
static void
test_integers(void)
{
    uint64_t vals[200];
    size_t n = 0;
    uint64_t p = 1;

    for (int k = 0; k < 20; k++, p *= 10) {
        vals[n++] = p - 1;
        vals[n++] = p;
        vals[n++] = p + 1;
    }
    for (int k = 0; k < 64; k++)
        vals[n++] = (uint64_t)1 << k;
    vals[n++] = UINT64_MAX;
    vals[n++] = UINT32_MAX;
    vals[n++] = 999999999;
    vals[n++] = 1000000;
    vals[n++] = (uint64_t)INT64_MAX;
    vals[n++] = (uint64_t)INT64_MAX + 1;
    vals[n++] = 12345678901234567890ull;

    int u64_ok = 1, i64_ok = 1, u32_ok = 1;
    for (size_t k = 0; k < n; k++) {
        char got[32], want[32];
        size_t len = fmt_u64(got, vals[k]);
        got[len] = '\0';
        snprintf(want, sizeof want, "%" PRIu64, vals[k]);
        u64_ok &= strcmp(got, want) == 0;
        int64_t s = (int64_t)vals[k];
        len = fmt_i64(got, s);
        got[len] = '\0';
        snprintf(want, sizeof want, "%" PRId64, s);
        i64_ok &= strcmp(got, want) == 0;
        if (vals[k] <= UINT32_MAX) {
            len = fmt_u32(got, (uint32_t)vals[k]);
            got[len] = '\0';
            snprintf(want, sizeof want, "%" PRIu64, vals[k]);
            u32_ok &= strcmp(got, want) == 0;
            len = fmt_u32_small(got, (uint32_t)vals[k]);
            got[len] = '\0';
            u32_ok &= strcmp(got, want) == 0;
            if (!u32_ok)
                printf("#   %s, want %s\n", got, want);
        }
    }
    CHECK(u64_ok, "fmt_u64 agrees with printf");
    CHECK(i64_ok, "fmt_i64 agrees with printf (INT64_MIN included)");
    CHECK(u32_ok, "fmt_u32 and fmt_u32_small agree with printf");

    int small_ok = 1;
    for (uint32_t v = 0; v < 2000000; v += 7) {
        char got[16], want[16];
        size_t len = fmt_u32_small(got, v);
        got[len] = '\0';
        snprintf(want, sizeof want, "%" PRIu32, v);
        small_ok &= strcmp(got, want) == 0;
    }
    CHECK(small_ok, "fmt_u32_small: every 7th value below 2e6");
}

/* Doubles: the shortest text that strtod reads back, as printf finds it. */
static void
test_doubles(void)
{
    static const double vals[] = {1700000000.25,
                                  1700000000.0,
                                  0.1,
                                  -0.5,
                                  1e300,
                                  -1e-300,
                                  1732761234.512345,
                                  9007199254740993.0,
                                  123456789012345.6,
                                  99999999999999.99,
                                  1.5,
                                  5e-324,
                                  -2.0};
    int ok = 1;

    for (size_t k = 0; k < sizeof vals / sizeof vals[0]; k++) {
        char got[FMT_DOUBLE_MAX + 1], want[40];
        size_t len = fmt_double(got, vals[k]);
        got[len] = '\0';
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(want, sizeof want, "%.*g", prec, vals[k]);
            if (strtod(want, NULL) == vals[k])
                break;
        }
        if (fabs(vals[k]) < 9.0e15 && vals[k] == (double)(int64_t)vals[k])
            snprintf(want, sizeof want, "%" PRId64, (int64_t)vals[k]);
        if (strcmp(got, want) != 0) {
            ok = 0;
            printf("#   got %s, want %s\n", got, want);
        }
    }
    CHECK(ok, "fmt_double: shortest round-trip text");

    /* Every timestamp-like value takes the fast path: compare many. */
    int fast_ok = 1;
    double v = 1700000000.0;
    for (int k = 0; k < 100000; k++) {
        char got[FMT_DOUBLE_MAX + 1], want[40];
        v += 0.000123457;
        size_t len = fmt_double(got, v);
        got[len] = '\0';
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(want, sizeof want, "%.*g", prec, v);
            if (strtod(want, NULL) == v)
                break;
        }
        fast_ok &= strcmp(got, want) == 0;
    }
    CHECK(fast_ok, "fmt_double: 100000 timestamps agree with printf");

    char t[FMT_DOUBLE_MAX];
    CHECK_U64(fmt_double(t, NAN), 4, "NaN is null");
    CHECK(memcmp(t, "null", 4) == 0, "NaN text");
    CHECK_U64(fmt_double(t, -INFINITY), 4, "-inf is null");
}

static void
test_special8(void)
{
    uint64_t x;

    memcpy(&x, "abcdefgh", 8);
    CHECK_U64(fmt_special8(x), 0, "plain bytes are not special");
    memcpy(&x, "abc\"efgh", 8);
    CHECK(fmt_special8(x) != 0, "a quote is special");
    memcpy(&x, "abcdefg\\", 8);
    CHECK(fmt_special8(x) != 0, "a backslash is special");
    memcpy(&x, "\x1f\x62\x63\x64\x65\x66\x67\x68", 8);
    CHECK(fmt_special8(x) != 0, "a control byte is special");
    memcpy(&x, "abc\x80\xff\x7f !", 8);
    CHECK_U64(fmt_special8(x), 0, "high bytes, DEL, space: not special");
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(&x, "ab\x01\"efgh", 8);
    CHECK_U64(__builtin_ctzll(fmt_special8(x)) / 8, 2,
              "the lowest mark is the first special byte");
#endif
}

/*
 * fmt_u32_list against snprintf, with each path: lists of 0 to 40 ids of
 * every digit length (10^7 and up, which the AVX-512 path leaves to the
 * scalar one, mixed in), and no byte written past FMT_LIST_ROOM per id.
 */
static void
test_u32_list(const char *path)
{
    static uint32_t t[64];
    static char got[64 * FMT_LIST_ROOM + 16], want[64 * FMT_LIST_ROOM];
    static const uint32_t edges[] = {0,        9,        10,        99,
                                     100,      999999,   1000000,   9999999,
                                     10000000, 99999999, 100000000, UINT32_MAX};
    uint64_t r = 0xda942042e4dd58b5ull;
    size_t bad = 0, n_lists = 0;
    char first[96] = "", what[160];

    for (int trial = 0; trial < 20000; trial++) {
        size_t n = (size_t)trial % 41, len = 0;
        for (size_t k = 0; k < n; k++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            /* Mostly below 10^7, as token ids are; any length now and then. */
            if (r >> 60 == 0)
                t[k] = edges[(r >> 20) % (sizeof edges / sizeof edges[0])];
            else if (r >> 60 == 1)
                t[k] = (uint32_t)(r >> 32);
            else
                t[k] = (uint32_t)(r >> 20) % (r >> 40 & 1 ? 10000000u : 1000u);
            len += (size_t)snprintf(want + len, sizeof want - len, "%u,",
                                    (unsigned)t[k]);
        }
        memset(got, 0x55, sizeof got);
        char *end = fmt_u32_list(got, t, n);
        int ok = (size_t)(end - got) == len && memcmp(got, want, len) == 0;
        for (size_t k = n * FMT_LIST_ROOM; ok && k < sizeof got; k++)
            ok = got[k] == 0x55;
        if (!ok && bad++ == 0)
            snprintf(first, sizeof first, "trial %d, %zu ids", trial, n);
        n_lists++;
    }
    snprintf(what, sizeof what,
             "fmt_u32_list (%s): %zu lists as snprintf writes them, within "
             "their room (first wrong: %s)",
             path, n_lists, first);
    CHECK_U64(bad, 0, what);
}

int
main(void)
{
    test_json_str();
    test_integers();
    test_doubles();
    test_special8();
    /* The machine's widest path, then the portable one. */
    for (int portable = 0; portable < 2; portable++)
        test_u32_list(fmt_list_simd(portable));
    fmt_list_simd(0);
    return unit_done();
}

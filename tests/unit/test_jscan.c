/*
 * test_jscan.c - the JSON lexical layer (lib/jscan.c), table-driven: strings
 * and escapes, numbers and integer bounds, hash forms, token arrays of
 * every digit length, skipping with its depth limit, and iteration.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jscan.h"
#include "unit.h"

static struct arena arena;

static void
test_strings(void)
{
    static const struct {
        const char *in;
        const char *want; /* decoded text, NULL when an error is due */
        size_t want_n;
        enum jscan_error err;
        size_t at; /* the cursor after the call */
    } cases[] = {
        {"\"abc\"", "abc", 3, JSCAN_E_NONE, 5},
        {"  \"\"", "", 0, JSCAN_E_NONE, 4},
        {"\"0123456789abcdefghij\"", "0123456789abcdefghij", 20, JSCAN_E_NONE,
         22},
        {"\"a\\\"b\\\\c\\/d\"", "a\"b\\c/d", 7, JSCAN_E_NONE, 12},
        {"\"\\b\\f\\n\\r\\t\"", "\b\f\n\r\t", 5, JSCAN_E_NONE, 12},
        {"\"\\u0041\\u00e9\\u20ac\"", "A\xc3\xa9\xe2\x82\xac", 6, JSCAN_E_NONE,
         20},
        {"\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80", 4, JSCAN_E_NONE, 14},
        {"\"\\ud800x\"", "\xef\xbf\xbdx", 4, JSCAN_E_NONE, 9},
        {"\"\\udc00\"", "\xef\xbf\xbd", 3, JSCAN_E_NONE, 8},
        {"\"\\ud800\\u0041\"",
         "\xef\xbf\xbd"
         "A",
         4, JSCAN_E_NONE, 14},
        {"\"a\\u00e9\\ud83d\\ude00\\ud800x\\n\"",
         "a\xc3\xa9\xf0\x9f\x98\x80\xef\xbf\xbdx\n", 12, JSCAN_E_NONE, 30},
        {"\"0123456789\x01\"", NULL, 0, JSCAN_E_CONTROL, 11},
        {"\"a\tb\"", NULL, 0, JSCAN_E_CONTROL, 2},
        {"\"abc", NULL, 0, JSCAN_E_UNTERMINATED, 4},
        {"\"abc\\\"", NULL, 0, JSCAN_E_UNTERMINATED, 6},
        {"\"\\q\"", NULL, 0, JSCAN_E_ESCAPE, 1},
        {"\"ab\\u12g4\"", NULL, 0, JSCAN_E_UESCAPE, 3},
        {"\"\\u12\"", NULL, 0, JSCAN_E_UESCAPE, 1},
        {"abc", NULL, 0, JSCAN_E_NOT_STRING, 0},
        {"", NULL, 0, JSCAN_E_NOT_STRING, 0},
    };
    char what[96], err[64];

    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct jscan s;
        struct kv_str out = {0};
        int rc;

        jscan_init(&s, cases[k].in, strlen(cases[k].in), &arena, err,
                   sizeof err);
        rc = jscan_string(&s, &out);
        snprintf(what, sizeof what, "string case %zu: %s", k, cases[k].in);
        if (cases[k].want != NULL)
            CHECK(rc == 0 && out.n == cases[k].want_n &&
                      memcmp(out.p, cases[k].want, out.n) == 0,
                  what);
        else
            CHECK(rc < 0 && s.error == cases[k].err, what);
        snprintf(what, sizeof what, "string case %zu: cursor", k);
        CHECK_U64(s.i, cases[k].at, what);
    }
}

static void
test_string_borrowing(void)
{
    static const char plain[] = "\"plain\"", esc[] = "\"e\\n\"";
    struct jscan s;
    struct kv_str out;
    char err[64];

    jscan_init(&s, plain, sizeof plain - 1, &arena, err, sizeof err);
    CHECK(jscan_string(&s, &out) == 0 && out.p == plain + 1,
          "a string without escapes borrows the input");
    jscan_init(&s, esc, sizeof esc - 1, &arena, err, sizeof err);
    CHECK(jscan_string(&s, &out) == 0 && out.p != esc + 1 && out.n == 2,
          "an escaped string is decoded into the arena");
    jscan_init(&s, esc, sizeof esc - 1, NULL, err, sizeof err);
    CHECK(jscan_string(&s, &out) == 0 && out.p == esc + 1 && out.n == 3,
          "without an arena an escaped string stays as it is");
    jscan_init(&s, "\"a\x01\"", 4, &arena, err, sizeof err);
    CHECK(jscan_string(&s, &out) < 0 &&
              strcmp(err, "control character in string") == 0,
          "the err buffer gets the plain message");
    jscan_init(&s, "x", 1, &arena, err, sizeof err);
    CHECK(jscan_expect(&s, ':') < 0 && strcmp(err, "expected ':'") == 0,
          "expect names the byte it wanted");
}

static void
test_numbers(void)
{
    /* mag is checked unless ovf or an exponent (frac -1) leave it open. */
    static const struct {
        const char *in;
        int ok, is_int, neg, ovf;
        uint64_t mag;
        int frac;
        size_t end;
    } cases[] = {
        {"0", 1, 1, 0, 0, 0, 0, 1},
        {"-0", 1, 1, 1, 0, 0, 0, 2},
        {"123,", 1, 1, 0, 0, 123, 0, 3},
        {"-9223372036854775808", 1, 1, 1, 0, 9223372036854775808ull, 0, 20},
        {"18446744073709551615", 1, 1, 0, 0, UINT64_MAX, 0, 20},
        {"18446744073709551616", 1, 1, 0, 1, 0, 0, 20},
        {"1.5", 1, 0, 0, 0, 15, 1, 3},
        {"12.50", 1, 0, 0, 0, 1250, 2, 5},
        {"0.000123", 1, 0, 0, 0, 123, 6, 8},
        {"-0.0", 1, 0, 1, 0, 0, 1, 4},
        {"1844674407370955161.6", 1, 0, 0, 1, 0, 1, 21},
        {"-2e10", 1, 0, 1, 0, 0, -1, 5},
        {"3E+2]", 1, 0, 0, 0, 0, -1, 4},
        {"1.25e-3", 1, 0, 0, 0, 0, -1, 7},
        {"01", 1, 1, 0, 0, 0, 0, 1},
        {"-", 0, 0, 0, 0, 0, 0, 1},
        {"1.", 0, 0, 0, 0, 0, 0, 2},
        {"1.e5", 0, 0, 0, 0, 0, 0, 2},
        {"1e", 0, 0, 0, 0, 0, 0, 2},
        {"1e+", 0, 0, 0, 0, 0, 0, 3},
        {".5", 0, 0, 0, 0, 0, 0, 0},
        {"+1", 0, 0, 0, 0, 0, 0, 0},
    };
    char what[96];

    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct jscan s;
        struct jscan_num num;
        int rc;

        jscan_init(&s, cases[k].in, strlen(cases[k].in), NULL, NULL, 0);
        rc = jscan_number(&s, &num);
        snprintf(what, sizeof what, "number %s", cases[k].in);
        if (cases[k].ok)
            CHECK(rc == 0 && num.is_int == cases[k].is_int &&
                      num.neg == cases[k].neg && num.ovf == cases[k].ovf &&
                      num.frac == cases[k].frac &&
                      (num.ovf || num.frac < 0 || num.mag == cases[k].mag) &&
                      num.end == cases[k].end,
                  what);
        else
            CHECK(rc < 0 && s.error == JSCAN_E_NUMBER, what);
        snprintf(what, sizeof what, "number %s: cursor", cases[k].in);
        CHECK_U64(s.i, cases[k].end, what);
    }
}

/* Whether jscan_num_double reads text as strtod does, bit for bit. */
static int
double_agrees(const char *text)
{
    struct jscan s;
    struct jscan_num num;
    double got, want = strtod(text, NULL);

    jscan_init(&s, text, strlen(text), &arena, NULL, 0);
    if (jscan_number(&s, &num) != 0 || s.i != s.n ||
        jscan_num_double(&s, &num, &got) != 0)
        return 0;
    return memcmp(&got, &want, sizeof got) == 0;
}

/*
 * Decimal fractions are rounded as strtod rounds them.  Those with more
 * than 53 bits of digits (a timestamp with 17 significant digits) are the
 * hard ones: the halfway points between two doubles, and the decimals a
 * thousandth or a tenth on either side of them, where rounding twice (the
 * digits to a double, then the quotient) goes wrong.  The cases closer to
 * a halfway point than that were found with Python's exact fractions.
 */
static void
test_doubles(void)
{
    static const char *const cases[] = {
        "1700000000.0235858",
        "1764547200.123456",
        "-1764547200.1234567",
        "0.5",
        "1.5",
        "123.456",
        "9007199254740993.0",
        "9007199254740995.0",
        "4503599627370497.5",
        "4503599627370496.5",
        "2251799813685248.25",
        "2251799813685248.75",
        "0.0000000000000000001",
        "9999999999999999999",
        "9999999999999999.999",
        "999999999999999999.9",
        "1e3",
        "-0.0",
        "12345678901234567890.5",
        "0.30000000000000000444",
        /* 20 digits that fit 64 bits: the division in integers. */
        "0.1234567890123456789",
        "1844674407370955.1615",
        "-9.999999999999999999",
        /* Above a halfway point by less than the quotient's last bit, so
         * only the remainder says to round up. */
        "405.0727679193905999",
        "1749.602629605775860",
        "52.27526402450317633",
        "6.037315958323514753",
    };
    char text[64], what[96], first[64] = "";
    uint64_t r = 0x9e3779b97f4a7c15ull;
    size_t bad = 0;

    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        snprintf(what, sizeof what, "double %s", cases[k]);
        CHECK(double_agrees(cases[k]), what);
    }
    for (int n = 0; n < 300000; n++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        int e = 50 + (int)(r >> 60) % 8; /* a double x in [2^e, 2^(e+1)) */
        int side = (int)((r >> 1) % 3);  /* on, above or below halfway */
        uint64_t x = (uint64_t)1 << e | (r >> 11 & (((uint64_t)1 << e) - 1));
        if (e < 53) {
            /* The doubles here are multiples of 2^(e-52) >= 1/4, so the
             * midpoint above x is a whole number of eighths, written in
             * thousandths (19 digits at most). */
            uint64_t m1000 = (x * 8 + ((uint64_t)1 << (e - 50))) * 125;
            m1000 += side == 1 ? 1 : 0;
            m1000 -= side == 2 ? 1 : 0;
            snprintf(text, sizeof text, "%s%llu.%03u", r >> 3 & 1 ? "-" : "",
                     (unsigned long long)(m1000 / 1000),
                     (unsigned)(m1000 % 1000));
        } else {
            /* Multiples of 2^(e-52) >= 2: the midpoint is a whole number,
             * written with a tenth (18 digits at most). */
            x &= ~(((uint64_t)1 << (e - 52)) - 1);
            uint64_t mid = x + ((uint64_t)1 << (e - 53));
            if (mid >= 100000000000000000ull)
                continue;
            snprintf(text, sizeof text, "%s%llu.%c", r >> 3 & 1 ? "-" : "",
                     (unsigned long long)(side == 2 ? mid - 1 : mid),
                     "019"[side]);
        }
        if (!double_agrees(text) && bad++ == 0)
            snprintf(first, sizeof first, "%s", text);
    }
    snprintf(what, sizeof what,
             "decimals near halfway points read as strtod "
             "does (first apart: %s)",
             first);
    CHECK_U64(bad, 0, what);
    bad = 0;
    first[0] = '\0';
    for (int n = 0; n < 300000; n++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        /* 1 to 19 digits, 1 to all of them before the point. */
        int nd = 1 + (int)(r >> 59) % 19, before = 1 + (int)(r >> 40) % nd;
        uint64_t d = r * 0x2545f4914f6cdd1dull;
        char *o = text;
        if (r & 1)
            *o++ = '-';
        for (int i = 0; i < nd; i++, d = d * 6364136223846793005ull + 1) {
            int digit = (int)(d >> 60) % 10;
            if (i == 0 && before > 1 && digit == 0)
                digit = 1; /* no leading zero */
            if (i == before)
                *o++ = '.';
            *o++ = (char)('0' + digit);
        }
        *o = '\0';
        if (!double_agrees(text) && bad++ == 0)
            snprintf(first, sizeof first, "%s", text);
    }
    snprintf(what, sizeof what,
             "random decimals read as strtod does "
             "(first apart: %s)",
             first);
    CHECK_U64(bad, 0, what);
}

static void
test_integers(void)
{
    static const struct {
        const char *in;
        int is_signed;
        uint64_t max;
        enum jscan_error err;
        uint64_t want; /* int64 values as their bit pattern */
    } cases[] = {
        {"0", 0, UINT64_MAX, JSCAN_E_NONE, 0},
        {" 42", 0, 42, JSCAN_E_NONE, 42},
        {"43", 0, 42, JSCAN_E_RANGE, 0},
        {"18446744073709551615", 0, UINT64_MAX, JSCAN_E_NONE, UINT64_MAX},
        {"18446744073709551616", 0, UINT64_MAX, JSCAN_E_RANGE, 0},
        {"4294967295", 0, UINT32_MAX, JSCAN_E_NONE, UINT32_MAX},
        {"4294967296", 0, UINT32_MAX, JSCAN_E_RANGE, 0},
        {"-1", 0, UINT64_MAX, JSCAN_E_NOT_UINT, 0},
        {"\"1\"", 0, UINT64_MAX, JSCAN_E_NOT_UINT, 0},
        {"1.0", 0, UINT64_MAX, JSCAN_E_NOT_INT, 0},
        {"1e3", 0, UINT64_MAX, JSCAN_E_NOT_INT, 0},
        {"01", 0, UINT64_MAX, JSCAN_E_NOT_INT, 0},
        {"-9223372036854775808", 1, 0, JSCAN_E_NONE, 1ull << 63},
        {"9223372036854775807", 1, 0, JSCAN_E_NONE, INT64_MAX},
        {"9223372036854775808", 1, 0, JSCAN_E_RANGE, 0},
        {"-9223372036854775809", 1, 0, JSCAN_E_RANGE, 0},
        {"-1", 1, 0, JSCAN_E_NONE, UINT64_MAX},
        {"-", 1, 0, JSCAN_E_NOT_UINT, 0},
        {"-0.5", 1, 0, JSCAN_E_NOT_INT, 0},
    };
    char what[96];

    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct jscan s;
        uint64_t u = 0;
        int64_t i = 0;
        int rc;

        jscan_init(&s, cases[k].in, strlen(cases[k].in), NULL, NULL, 0);
        if (cases[k].is_signed) {
            rc = jscan_i64(&s, &i);
            u = (uint64_t)i;
        } else {
            rc = jscan_u64(&s, cases[k].max, &u);
        }
        snprintf(what, sizeof what, "integer %s", cases[k].in);
        if (cases[k].err == JSCAN_E_NONE)
            CHECK(rc == 0 && u == cases[k].want && s.i == s.n, what);
        else
            CHECK(rc < 0 && s.error == cases[k].err, what);
    }
    /* A NUL after a backslash is no escape either (strchr would say it is). */
    static const char nul[] = "\"\\\0\"";
    struct jscan s;
    jscan_init(&s, nul, sizeof nul - 1, NULL, NULL, 0);
    CHECK(jscan_skip(&s, NULL) < 0 && s.error == JSCAN_E_ESCAPE,
          "skip: backslash, NUL");

    /* Member names inside a skipped value are checked like its strings:
     * the fuzzer found an echoed id [1,{"a\xe0":null}] that made a reply
     * jansson refuses. */
    static const struct {
        const char *in;
        enum jscan_error err;
    } names[] = {
        {"[1,{\"a\xe0\":null}]", JSCAN_E_UTF8},
        {"{\"ok\":{\"\xfe\xff\":1}}", JSCAN_E_UTF8},
        {"{\"a\\q\":1}", JSCAN_E_ESCAPE},
        {"{\"a\\u12\":1}", JSCAN_E_UESCAPE},
        {"{\"\xc3\xa9\\u00e9\\n\":[{\"\":{}}]}", JSCAN_E_NONE},
        /* Surrogates only in pairs (the fuzzer echoed an id "n\uD922"). */
        {"[\"n\\uD922\"]", JSCAN_E_UESCAPE},
        {"[\"\\uDE00\"]", JSCAN_E_UESCAPE},
        {"[\"\\uD83D\\u0041\"]", JSCAN_E_UESCAPE},
        {"{\"\\ud922x\":1}", JSCAN_E_UESCAPE},
        {"[\"\\uD83D\\uDE00\\u00e9\"]", JSCAN_E_NONE},
    };
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        jscan_init(&s, names[k].in, strlen(names[k].in), NULL, NULL, 0);
        snprintf(what, sizeof what, "skip: member names of case %zu", k);
        if (names[k].err == JSCAN_E_NONE)
            CHECK(jscan_skip(&s, NULL) == 0 && s.i == s.n, what);
        else
            CHECK(jscan_skip(&s, NULL) < 0 && s.error == names[k].err, what);
    }
}

static void
test_hashes(void)
{
    static const struct {
        const char *in;
        enum jscan_error err;
        uint64_t want;
    } cases[] = {
        {"\"0\"", JSCAN_E_NONE, 0},
        {"\"12345678901234567890\"", JSCAN_E_NONE, 12345678901234567890ull},
        {"\"18446744073709551615\"", JSCAN_E_NONE, UINT64_MAX},
        {"\"18446744073709551616\"", JSCAN_E_HASH_TEXT, 0},
        {"\"123456789012345678\"", JSCAN_E_NONE, 123456789012345678ull},
        {"\"0xff\"", JSCAN_E_NONE, 255},
        {"\"0XFFFFFFFFFFFFFFFF\"", JSCAN_E_NONE, UINT64_MAX},
        {"\"0x1ffffffffffffffff\"", JSCAN_E_HASH_RANGE, 0},
        {"\"0xfg\"", JSCAN_E_HASH_HEX, 0},
        {"\"0x\"", JSCAN_E_HASH_TEXT, 0},
        {"\"\"", JSCAN_E_HASH_TEXT, 0},
        {"\"12a\"", JSCAN_E_HASH_TEXT, 0},
        {"\"1234567a9012\"", JSCAN_E_HASH_TEXT, 0},
        {"\"-1\"", JSCAN_E_HASH_TEXT, 0},
        {"7", JSCAN_E_NONE, 7},
        {"18446744073709551615", JSCAN_E_NONE, UINT64_MAX},
        {"-1", JSCAN_E_NONE, UINT64_MAX},
        {"-9223372036854775808", JSCAN_E_NONE, 1ull << 63},
        {"-9223372036854775809", JSCAN_E_RANGE, 0},
        {"1.5", JSCAN_E_NOT_INT, 0},
        {"true", JSCAN_E_NOT_UINT, 0},
    };
    char what[96], text[64];

    /* Each alone, then with room after it: quoted decimals then take
     * jscan_hash_digits, which needs 25 bytes from the quote. */
    for (int pad = 0; pad < 2; pad++) {
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            struct jscan s;
            uint64_t v = 0;
            size_t len = strlen(cases[k].in);
            int rc;

            snprintf(text, sizeof text, "%s%s", cases[k].in,
                     pad ? ",                        " : "");
            jscan_init(&s, text, strlen(text), &arena, NULL, 0);
            rc = jscan_hash(&s, &v);
            snprintf(what, sizeof what, "hash %s%s", cases[k].in,
                     pad ? " (and room after)" : "");
            if (cases[k].err == JSCAN_E_NONE)
                CHECK(rc == 0 && v == cases[k].want && s.i == len, what);
            else
                CHECK(rc < 0 && s.error == cases[k].err, what);
        }
    }
}

/*
 * jscan_hash_digits takes a quoted decimal of 1 to 20 digits below 2^64
 * when 25 bytes from its quote are there to read, and leaves everything
 * else, its cursor unmoved, to the general path.
 */
static void
test_hash_digits(void)
{
    static const struct {
        const char *in;
        int taken;
        uint64_t want;
    } cases[] = {
        {"\"7\"                      ", 1, 7},
        {"\"7\"                     ", 0, 0}, /* 24 bytes */
        {"\"12345678\"                 ", 1, 12345678},
        {"\"123456789\"                ", 1, 123456789},
        {"\"1234567890123456\"         ", 1, 1234567890123456ull},
        {"\"12345678901234567\"        ", 1, 12345678901234567ull},
        {"\"18446744073709551615\"     ", 1, UINT64_MAX},
        {"\"18446744073709551616\"     ", 0, 0},
        {"\"99999999999999999999\"     ", 0, 0},
        {"\"000000000000000000001\"    ", 0, 0},
        {"\"00000000000000000001\"     ", 1, 1},
        {"\"\"                         ", 0, 0},
        {"\"0x1f\"                     ", 0, 0},
        {"\"12\\u0033\"                 ", 0, 0},
        {"\"1234567a\"                 ", 0, 0},
        {"\"123456789012345678901234567", 0, 0},
        {"7                          ", 0, 0},
    };
    char what[96];

    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct jscan s;
        uint64_t v = 0;
        const char *close = strchr(cases[k].in + 1, '"');
        size_t end = close != NULL ? (size_t)(close + 1 - cases[k].in) : 0;

        jscan_init(&s, cases[k].in, strlen(cases[k].in), &arena, NULL, 0);
        int rc = jscan_hash_digits(&s, &v);
        snprintf(what, sizeof what, "hash digits %s", cases[k].in);
        if (cases[k].taken)
            CHECK(rc == 1 && v == cases[k].want && s.i == end, what);
        else
            CHECK(rc == 0 && s.i == 0, what);
    }
}

/* The instruction set the token tests run with (jscan_tokens_simd). */
static const char *simd = "";

/* Token arrays with ids of every digit length, at every alignment. */
static void
test_token_lengths(void)
{
    static const uint32_t vals[] = {0,        7,         42,         999,
                                    1000,     65535,     1234567,    12345678,
                                    99999999, 123456789, 4294967295u};
    size_t nv = sizeof vals / sizeof vals[0];
    char text[512], what[96];

    for (size_t pad = 0; pad < 8; pad++) {
        uint32_t got[16];
        size_t o = 0, n = 0, total = 0;
        struct jscan s;
        int rc, first = 1;

        o += (size_t)snprintf(text + o, sizeof text - o, "%*s[", (int)pad, "");
        for (size_t k = 0; k < nv; k++)
            o += (size_t)snprintf(text + o, sizeof text - o, "%s%u",
                                  k ? (k % 3 ? "," : " , ") : "", vals[k]);
        o += (size_t)snprintf(text + o, sizeof text - o, "]");
        jscan_init(&s, text, o, NULL, NULL, 0);
        jscan_expect(&s, '[');
        /* A small buffer, so reading resumes across calls. */
        do {
            rc = jscan_tokens(&s, first, got + total, 3, &n);
            total += n;
            first = 0;
        } while (rc == 0 && total + 3 <= 16);
        snprintf(what, sizeof what, "tokens of every length, pad %zu (%s)", pad,
                 simd);
        CHECK(rc == 1 && total == nv && s.i == o &&
                  memcmp(got, vals, sizeof vals) == 0,
              what);
    }
}

static void
test_token_errors(void)
{
    static const struct {
        const char *in; /* after the '[' */
        int rc;
        size_t got;
        enum jscan_error err;
    } cases[] = {
        {"]", 1, 0, JSCAN_E_NONE},
        {" ] ", 1, 0, JSCAN_E_NONE},
        {"1,-2]", -1, 1, JSCAN_E_NOT_UINT},
        {"01]", -1, 0, JSCAN_E_TOKEN},
        {"00000001,2]", -1, 0, JSCAN_E_TOKEN},
        {"4294967296]", -1, 0, JSCAN_E_TOKEN},
        {"42949672950]", -1, 0, JSCAN_E_TOKEN},
        {"1.0]", -1, 0, JSCAN_E_NOT_UINT},
        {"1e3,2,3,4,5]", -1, 0, JSCAN_E_NOT_UINT},
        {"1 2]", -1, 1, JSCAN_E_ARRAY_SEP},
        {"1,]", -1, 1, JSCAN_E_NOT_UINT},
        {"1,2", -1, 2, JSCAN_E_ARRAY_SEP},
        {"\"1\"]", -1, 0, JSCAN_E_NOT_UINT},
    };
    char what[96];

    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct jscan s;
        uint32_t got[8];
        size_t n = 99;
        int rc;

        jscan_init(&s, cases[k].in, strlen(cases[k].in), NULL, NULL, 0);
        rc = jscan_tokens(&s, 1, got, 8, &n);
        snprintf(what, sizeof what, "tokens [%s (%s)", cases[k].in, simd);
        CHECK(rc == cases[k].rc && n == cases[k].got &&
                  (rc >= 0 || s.error == cases[k].err),
              what);
    }
}

/*
 * The contract of jscan_tokens, one byte at a time: what the fast paths
 * must give for every input.  Returns the rc; fills vals, *n, *at (the
 * cursor: after ']', or at the bad token or separator) and *err.
 */
static int
ref_tokens(const char *p, size_t len, uint32_t *vals, size_t *n, size_t *at,
           enum jscan_error *err)
{
    size_t i = 0;

    *n = 0;
    while (i < len && p[i] == ' ')
        i++;
    if (i < len && p[i] == ']') {
        *at = i + 1;
        return 1;
    }
    for (;;) {
        size_t start;
        uint64_t v = 0;
        while (i < len && p[i] == ' ')
            i++;
        start = i;
        while (i < len && i - start < 11 && p[i] >= '0' && p[i] <= '9')
            v = v * 10 + (uint64_t)(p[i++] - '0');
        *at = start;
        if (i == start || (i < len && (p[i] == '.' || p[i] == 'e'))) {
            *err = JSCAN_E_NOT_UINT;
            return -1;
        }
        if (v > UINT32_MAX || (p[start] == '0' && i - start > 1)) {
            *err = JSCAN_E_TOKEN;
            return -1;
        }
        vals[(*n)++] = (uint32_t)v;
        while (i < len && p[i] == ' ')
            i++;
        if (i < len && p[i] == ',') {
            i++;
            continue;
        }
        *at = i;
        if (i < len && p[i] == ']') {
            *at = i + 1;
            return 1;
        }
        *err = JSCAN_E_ARRAY_SEP;
        return -1;
    }
}

/* One id of 1 to 10 digits (some over 2^32), or now and then a defect. */
static size_t
random_token(char *o, uint64_t *rng)
{
    static const char *const defects[] = {"01", "",   "1.5",        "2e3",
                                          "-3", "00", "4294967296", " 7 "};
    uint64_t r;

    *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
    r = *rng >> 33;
    if (r % 97 == 0)
        return (size_t)sprintf(o, "%s", defects[(r / 97) % 8]);
    switch (r % 7) {
    case 0:
        return (size_t)sprintf(o, "%u", (unsigned)(r % 10));
    case 1:
        return (size_t)sprintf(o, "%llu",
                               (unsigned long long)(r % 1000000000ull * 5));
    default:
        return (size_t)sprintf(o, "%u", (unsigned)(r % 32000));
    }
}

/* Reads text[0..len) after its '[' with room ids per call, against
 * ref_tokens.  Returns 1 when both agree (up to TOKENS_MAX ids). */
#define TOKENS_MAX 1024

static int
tokens_agree(const char *text, size_t len, size_t room)
{
    uint32_t want[TOKENS_MAX], got[TOKENS_MAX];
    size_t want_n = 0, want_at = 0, total = 0, got_n;
    enum jscan_error want_err = JSCAN_E_NONE;
    int want_rc = ref_tokens(text, len, want, &want_n, &want_at, &want_err);
    int rc, first = 1;
    struct jscan s;

    jscan_init(&s, text, len, NULL, NULL, 0);
    do {
        rc = jscan_tokens(&s, first, got + total,
                          room < TOKENS_MAX - total ? room : TOKENS_MAX - total,
                          &got_n);
        total += got_n;
        first = 0;
    } while (rc == 0 && total < TOKENS_MAX);
    return rc == want_rc && total == want_n && s.i == want_at &&
           (rc >= 0 || s.error == want_err) &&
           memcmp(got, want, total * sizeof got[0]) == 0;
}

/*
 * Long arrays, the size of a match request's, against ref_tokens: ids of
 * every length, compact and spaced separators, defects anywhere, read
 * through buffers of many sizes (the bulk readers take 64 bytes at once
 * and must stop exactly where the one-id reader would).
 */
static void
test_token_runs(void)
{
    static char text[8192];
    uint64_t rng = 12345;
    char what[96];
    int bad = 0;

    for (int round = 0; round < 400 && !bad; round++) {
        size_t o = 0, room = 1 + (size_t)round % 70;
        int ntok = 1 + round % 300;

        for (int k = 0; k < ntok; k++) {
            if (k > 0)
                o += (size_t)sprintf(text + o, "%s",
                                     round % 5 == 4 ? ", " : ",");
            o += random_token(text + o, &rng);
        }
        /* Every third array is left unterminated. */
        if (round % 3 != 2)
            text[o++] = ']';
        bad = !tokens_agree(text, o, room);
        snprintf(what, sizeof what, "token run %d (%d ids, room %zu, %s)",
                 round, ntok, room, simd);
        CHECK(!bad, what);
    }
}

/*
 * Every defect at every place of a long array, for the readers of 64-byte
 * windows: ids that straddle two windows at every offset, a bad id in any
 * lane of a group of eight or at a window's edge, and room that runs out
 * mid-window.  One check per defect, naming the first disagreement.
 */
static void
test_token_edges(void)
{
    static const char *const defects[] = {NULL,        "01", "",    "123456789",
                                          "12345678",  "0",  "1.5", " 7",
                                          "4294967296"};
    static const size_t rooms[] = {1, 3, 7, 8, 9, 31, 64, 256};
    char text[1024], what[128];

    for (size_t d = 0; d < sizeof defects / sizeof defects[0]; d++) {
        size_t bad_at = SIZE_MAX, bad_room = 0;

        for (size_t at = 0; at < 90 && bad_at == SIZE_MAX; at++) {
            size_t o = 0;

            /* 100 ids of 1 to 8 digits, the defect in place of id at. */
            for (size_t k = 0; k < 100; k++) {
                if (k > 0)
                    text[o++] = ',';
                if (k == at && defects[d] != NULL)
                    o += (size_t)sprintf(text + o, "%s", defects[d]);
                else
                    o += (size_t)sprintf(
                        text + o, "%u",
                        (unsigned)((k * 7919u + at) %
                                   (k % 8 == 7 ? 100000000u
                                               : 1000u << (k % 4) * 3)));
            }
            text[o++] = ']';
            for (size_t r = 0; r < sizeof rooms / sizeof rooms[0]; r++) {
                if (!tokens_agree(text, o, rooms[r])) {
                    bad_at = at;
                    bad_room = rooms[r];
                    break;
                }
            }
        }
        snprintf(what, sizeof what, "tokens with %s%s%s at every place (%s)%s",
                 d ? "\"" : "", d ? defects[d] : "no defect", d ? "\"" : "",
                 simd, bad_at == SIZE_MAX ? "" : ": disagrees");
        if (bad_at != SIZE_MAX)
            fprintf(stderr, "# first at id %zu, room %zu\n", bad_at, bad_room);
        CHECK(bad_at == SIZE_MAX, what);
    }
}

static void
test_skip(void)
{
    static const struct {
        const char *in;
        int ok;
        size_t raw_n;
        enum jscan_error err;
    } cases[] = {
        {" {\"a\":[1,2.5e3,{\"b\":null}],\"c\":\"\\t\"} x", 1, 35, 0},
        /* Skipped text is checked like decoded text: escapes and UTF-8. */
        {"\"\\q\"", 0, 0, JSCAN_E_ESCAPE},
        {"[\"a\\\x01\"]", 0, 0, JSCAN_E_ESCAPE},
        {"\"\\u12\"", 0, 0, JSCAN_E_UESCAPE},
        {"\"\\u12g4\"", 0, 0, JSCAN_E_UESCAPE},
        /* A lone surrogate escape is refused: skipped text is echoed. */
        {"\"\\ud800\\/\\u00e9\"", 0, 0, JSCAN_E_UESCAPE},
        {"\"\\ud800\\udc00\\/\\u00e9\"", 1, 22, 0},
        {"\"\xc3\xa9\xe2\x82\xac\"", 1, 7, 0},
        {"{\"k\":\"\xfe\"}", 0, 0, JSCAN_E_UTF8},
        {"\"\xc3\"", 0, 0, JSCAN_E_UTF8},
        {"\"\xed\xa0\x80\"", 0, 0, JSCAN_E_UTF8},
        {"\"\xc0\xaf\"", 0, 0, JSCAN_E_UTF8},
        {"[]", 1, 2, 0},
        {"{}", 1, 2, 0},
        {"[[],{},[[]]]", 1, 12, 0},
        {"true,", 1, 4, 0},
        {"false", 1, 5, 0},
        {"-1.5e-3", 1, 7, 0},
        {"\"s\"", 1, 3, 0},
        {"tru", 0, 0, JSCAN_E_LITERAL},
        {"nul", 0, 0, JSCAN_E_LITERAL},
        {"", 0, 0, JSCAN_E_END},
        {"[1,", 0, 0, JSCAN_E_END},
        {"[1 2]", 0, 0, JSCAN_E_ARRAY_SEP},
        {"{\"a\":1 \"b\":2}", 0, 0, JSCAN_E_OBJECT_SEP},
        {"{\"a\" 1}", 0, 0, JSCAN_E_EXPECT},
        {"{1:2}", 0, 0, JSCAN_E_NOT_STRING},
        {"[1,}", 0, 0, JSCAN_E_LITERAL},
        {"[\"a\x01\"]", 0, 0, JSCAN_E_CONTROL},
    };
    char what[96];

    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct jscan s;
        struct kv_str raw = {0};
        int rc;

        jscan_init(&s, cases[k].in, strlen(cases[k].in), NULL, NULL, 0);
        rc = jscan_skip(&s, &raw);
        snprintf(what, sizeof what, "skip %s", cases[k].in);
        if (cases[k].ok)
            CHECK(rc == 0 && raw.n == cases[k].raw_n &&
                      raw.p == cases[k].in + (cases[k].in[0] == ' '),
                  what);
        else
            CHECK(rc < 0 && s.error == cases[k].err, what);
    }
}

/* true and false, after blanks; anything else is JSCAN_E_NOT_BOOL. */
static void
test_bool(void)
{
    static const struct {
        const char *in;
        int rc, val;
        size_t end;
    } cases[] = {
        {"true", 0, 1, 4},   {" false,", 0, 0, 6}, {"tru", -1, 0, 0},
        {"null", -1, 0, 0},  {"1", -1, 0, 0},      {"\"true\"", -1, 0, 0},
        {"falsey", 0, 0, 5},
    };

    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct jscan s;
        char what[64];
        int v = -7;

        jscan_init(&s, cases[k].in, strlen(cases[k].in), NULL, NULL, 0);
        int rc = jscan_bool(&s, &v);
        snprintf(what, sizeof what, "bool %s", cases[k].in);
        if (cases[k].rc == 0)
            CHECK(rc == 0 && v == cases[k].val && s.i == cases[k].end, what);
        else
            CHECK(rc < 0 && s.error == JSCAN_E_NOT_BOOL && v == -7, what);
    }
}

/* JSCAN_MAX_DEPTH levels of containers are skipped, one more is not. */
static void
test_skip_depth(void)
{
    char text[2 * (JSCAN_MAX_DEPTH + 2) + 8];
    char what[64];

    for (int extra = 0; extra <= 1; extra++) {
        int levels = JSCAN_MAX_DEPTH + extra;
        struct jscan s;
        size_t o = 0;

        for (int k = 0; k < levels; k++)
            text[o++] = k % 2 ? '[' : '{';
        /* Objects need keys: use arrays only. */
        for (size_t k = 0; k < o; k++)
            text[k] = '[';
        for (int k = 0; k < levels; k++)
            text[o++] = ']';
        jscan_init(&s, text, o, NULL, NULL, 0);
        snprintf(what, sizeof what, "skip %d nested arrays", levels);
        if (extra == 0)
            CHECK(jscan_skip(&s, NULL) == 0 && s.i == o, what);
        else
            CHECK(jscan_skip(&s, NULL) < 0 && s.error == JSCAN_E_DEPTH, what);
    }
    /* A scalar one level below the deepest container is refused too. */
    {
        char deep[2 * (JSCAN_MAX_DEPTH + 1) + 8];
        size_t o = 0;
        struct jscan s;

        for (int k = 0; k <= JSCAN_MAX_DEPTH; k++)
            deep[o++] = '[';
        deep[o++] = '1';
        for (int k = 0; k <= JSCAN_MAX_DEPTH; k++)
            deep[o++] = ']';
        jscan_init(&s, deep, o, NULL, NULL, 0);
        CHECK(jscan_skip(&s, NULL) < 0 && s.error == JSCAN_E_DEPTH,
              "a value nested deeper than the limit is refused");
    }
    {
        /* Far past the limit: refused without recursion. */
        size_t n = 1 << 20;
        char *big = malloc(n);
        struct jscan s;

        if (CHECK(big != NULL, "malloc")) {
            memset(big, '[', n);
            jscan_init(&s, big, n, NULL, NULL, 0);
            CHECK(jscan_skip(&s, NULL) < 0 && s.error == JSCAN_E_DEPTH,
                  "a million open brackets are refused");
        }
        free(big);
    }
}

static void
test_iteration(void)
{
    static const char obj[] = "{ \"a\" : 1 , \"b\\u0021\":[ true ,null ], "
                              "\"c\":{} }";
    struct jscan s;
    struct kv_str key, raw;
    char keys[64] = "", err[64];
    int first = 1, r, elems = 0;

    jscan_init(&s, obj, sizeof obj - 1, &arena, err, sizeof err);
    CHECK(jscan_expect(&s, '{') == 0, "object opens");
    while ((r = jscan_member(&s, first, &key)) == 1) {
        first = 0;
        strncat(keys, key.p, key.n);
        strcat(keys, ";");
        if (key.n == 2 && key.p[1] == '!') {
            CHECK(jscan_expect(&s, '[') == 0, "array opens");
            for (int f = 1; (r = jscan_element(&s, f)) == 1; f = 0) {
                elems++;
                if (jscan_skip(&s, &raw) < 0)
                    break;
            }
            CHECK(r == 0, "array ends at ']'");
        } else if (jscan_skip(&s, &raw) < 0) {
            break;
        }
    }
    CHECK(r == 0 && jscan_peek(&s) == -1, "object ends at '}'");
    CHECK_STR(keys, "a;b!;c;", "member keys in order, escapes decoded");
    CHECK(elems == 2, "two array elements");

    static const struct {
        const char *in;
        int is_obj;
        enum jscan_error err;
    } bad[] = {
        {"{\"a\":1,}", 1, JSCAN_E_NOT_STRING},
        {"{,}", 1, JSCAN_E_NOT_STRING},
        {"{\"a\":1 \"b\":2}", 1, JSCAN_E_OBJECT_SEP},
        {"{\"a\":1", 1, JSCAN_E_OBJECT_SEP},
        {"{\"a\" 1}", 1, JSCAN_E_EXPECT},
        {"[1 2]", 0, JSCAN_E_ARRAY_SEP},
        {"[1", 0, JSCAN_E_ARRAY_SEP},
    };
    char what[64];
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        jscan_init(&s, bad[k].in, strlen(bad[k].in), &arena, NULL, 0);
        s.i = 1;
        first = 1;
        for (;;) {
            r = bad[k].is_obj ? jscan_member(&s, first, &key)
                              : jscan_element(&s, first);
            first = 0;
            if (r != 1 || jscan_skip(&s, NULL) < 0)
                break;
        }
        snprintf(what, sizeof what, "iteration %s", bad[k].in);
        CHECK(r < 0 && s.error == bad[k].err, what);
    }
}

static void
test_find(void)
{
    static const struct {
        const char *in, *name;
        int rc;
        const char *raw;
    } cases[] = {
        {"{\"a\":1,\"b\":[2,{\"c\":3}]}", "b", 1, "[2,{\"c\":3}]"},
        {" { \"a\" : \"x\" } ", "a", 1, "\"x\""},
        {"{\"a\":1,\"a\":2}", "a", 1, "1"},
        {"{\"a\":1}", "b", 0, NULL},
        {"{}", "b", 0, NULL},
        {"{\"a\":", "b", -1, NULL},
        {"{\"a\":1} x", "b", -1, NULL},
        {"{\"a\":1,\"b\":2 x", "b", 1, "2"},
        {"[1]", "a", -1, NULL},
    };
    char what[96];

    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct kv_str raw = {0};
        int rc =
            jscan_find(cases[k].in, strlen(cases[k].in), cases[k].name, &raw);
        snprintf(what, sizeof what, "find %s in %s", cases[k].name,
                 cases[k].in);
        CHECK(rc == cases[k].rc &&
                  (rc != 1 || (raw.n == strlen(cases[k].raw) &&
                               memcmp(raw.p, cases[k].raw, raw.n) == 0)),
              what);
    }
}

int
main(void)
{
    test_strings();
    test_string_borrowing();
    test_numbers();
    test_doubles();
    test_integers();
    test_hashes();
    test_hash_digits();
    /* The token readers of the machine's widest instruction set, then
     * the portable ones: both must give token_at's answers. */
    for (int portable = 0; portable < 2; portable++) {
        simd = jscan_tokens_simd(portable);
        test_token_lengths();
        test_token_errors();
        test_token_runs();
        test_token_edges();
    }
    jscan_tokens_simd(0);
    test_skip();
    test_skip_depth();
    test_bool();
    test_iteration();
    test_find();
    arena_free(&arena);
    return unit_done();
}

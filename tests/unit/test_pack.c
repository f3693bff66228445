/*
 * test_pack.c - lib/pack against python msgpack's bytes.
 *
 * Every expected encoding comes from tests/data/pack_expect.txt, written
 * by tests/peer/pack_expect.py with python msgpack (use_bin_type=True):
 * integers at every width boundary, floats, str/bin/array/map headers at
 * every length boundary, and JSON texts converted by pack_json.  What
 * python cannot say (kvtap's refusals and their messages) is checked here
 * against exact texts.
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "expect.h"
#include "pack.h"
#include "unit.h"

/* Whether out holds exactly want[0..n); prints both when not. */
static int
same_bytes(const struct buf *out, const uint8_t *want, size_t n,
           const char *what)
{
    int ok = out->len == n && memcmp(out->p, want, n) == 0;

    if (!CHECK(ok, what)) {
        struct buf h = {0};
        buf_puts(&h, "#   got  ");
        buf_put_hex(&h, (const uint8_t *)out->p, out->len > 64 ? 64 : out->len);
        buf_puts(&h, "\n#   want ");
        buf_put_hex(&h, want, n > 64 ? 64 : n);
        buf_putc(&h, '\0');
        printf("%s\n", h.p);
        buf_free(&h);
    }
    return ok;
}

/* A str or bin of n 'x' bytes: python's header, then the body. */
static void
check_body(const struct expect_row *r, int is_str, const char *what)
{
    size_t n = strtoull(r->arg, NULL, 10);
    char *body = malloc(n + 1);
    uint8_t *want = malloc(r->n + n + 1);
    struct buf out = {0};
    struct pack pk;

    memset(body, 'x', n);
    memcpy(want, r->want, r->n);
    memset(want + r->n, 'x', n);
    pack_init(&pk, &out);
    int rc = is_str ? pack_str(&pk, body, n)
                    : pack_bin(&pk, (const uint8_t *)body, n);
    CHECK(rc == 0 && pack_error(&pk) == NULL, what);
    same_bytes(&out, want, r->n + n, what);
    pack_free(&pk);
    buf_free(&out);
    free(body);
    free(want);
}

/* One scalar or header row. */
static void
check_scalar(const struct expect_row *r)
{
    struct buf out = {0};
    struct pack pk;
    char what[96];

    snprintf(what, sizeof what, "%s %s", r->kind, r->arg);
    if (strcmp(r->kind, "str") == 0 || strcmp(r->kind, "bin") == 0) {
        check_body(r, r->kind[0] == 's', what);
        return;
    }
    pack_init(&pk, &out);
    if (strcmp(r->kind, "nil") == 0)
        pack_nil(&pk);
    else if (strcmp(r->kind, "bool") == 0)
        pack_bool(&pk, atoi(r->arg));
    else if (strcmp(r->kind, "uint") == 0)
        pack_uint(&pk, strtoull(r->arg, NULL, 10));
    else if (strcmp(r->kind, "int") == 0)
        pack_int(&pk, strtoll(r->arg, NULL, 10));
    else if (strcmp(r->kind, "f64") == 0)
        pack_f64(&pk, strtod(r->arg, NULL));
    else if (strcmp(r->kind, "array") == 0)
        pack_array(&pk, strtoull(r->arg, NULL, 10));
    else if (strcmp(r->kind, "map") == 0)
        pack_map(&pk, strtoull(r->arg, NULL, 10));
    else
        CHECK(0, "known row kind");
    same_bytes(&out, r->want, r->n, what);
    pack_free(&pk);
    buf_free(&out);
}

/* One JSON text: pack_json's bytes must be python's. */
static void
check_json(const struct expect_row *r)
{
    size_t n;
    uint8_t *text = expect_unhex(r->arg, &n);
    struct buf out = {0};
    struct pack pk;
    char what[96];

    snprintf(what, sizeof what, "json %.*s", n > 40 ? 40 : (int)n,
             (const char *)text);
    for (char *c = what; *c != '\0'; c++)
        if ((unsigned char)*c < ' ')
            *c = '.';
    pack_init(&pk, &out);
    if (!CHECK(pack_json(&pk, (const char *)text, n) == 0, what))
        printf("#   %s\n", pack_error(&pk));
    same_bytes(&out, r->want, r->n, what);

    /* The same bytes are a valid kept msgpack value, copied verbatim. */
    buf_clear(&out);
    pack_free(&pk);
    pack_init(&pk, &out);
    snprintf(what, sizeof what, "pack_msgpack keeps python's bytes #%zu", n);
    CHECK(pack_msgpack(&pk, r->want, r->n) == 0, what);
    same_bytes(&out, r->want, r->n, what);
    pack_free(&pk);
    buf_free(&out);
    free(text);
}

static void
test_python_rows(void)
{
    size_t n, kinds[2] = {0, 0};
    struct expect_row *rows = expect_load(EXPECT_PACK, &n);

    if (!CHECK(rows != NULL, "read " EXPECT_PACK))
        return;
    for (size_t i = 0; i < n; i++) {
        int json = strcmp(rows[i].kind, "json") == 0;
        kinds[json]++;
        if (json)
            check_json(&rows[i]);
        else
            check_scalar(&rows[i]);
    }
    CHECK(kinds[0] >= 89 && kinds[1] >= 57, "every python row present");
    expect_free(rows, n);
}

/* Refused JSON: the exact message, and nothing left in the buffer. */
static void
test_json_refused(void)
{
    static char deep[2 * 65 + 1];
    static const struct {
        const char *text;
        const char *error;
    } cases[] = {
        {"", "JSON at byte 0: unexpected end of input"},
        {"  ", "JSON at byte 2: unexpected end of input"},
        {"[1,]", "JSON at byte 3: unexpected character"},
        {"[1 2]", "JSON at byte 3: expected ',' or ']'"},
        {"{1:2}", "JSON at byte 1: expected a string"},
        {"{\"a\" 2}", "JSON at byte 5: expected ':'"},
        {"\"abc", "JSON at byte 4: unterminated string"},
        {"\"a\x01\"", "JSON at byte 2: control character in string"},
        {"\"\\x\"", "JSON at byte 1: bad escape in string"},
        {"tru", "JSON at byte 0: unexpected character"},
        {"NaN", "JSON at byte 0: unexpected character"},
        {"-", "JSON at byte 1: bad number"},
        {"1.", "JSON at byte 2: bad number"},
        {"01", "JSON at byte 1: text after the value"},
        {"[1] 2", "JSON at byte 4: text after the value"},
        {"18446744073709551616",
         "JSON at byte 0: integer outside the 64-bit range"},
        {"[-9223372036854775809]",
         "JSON at byte 1: integer outside the 64-bit range"},
        {"1e400", "JSON at byte 0: number outside the range of a double"},
        {"-1e400", "JSON at byte 0: number outside the range of a double"},
        {deep, "JSON at byte 64: nested deeper than 64 levels"},
    };

    memset(deep, '[', 65);
    memset(deep + 65, ']', 65);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct buf out = {0};
        struct pack pk;
        char what[96];

        buf_puts(&out, "ab");
        pack_init(&pk, &out);
        snprintf(what, sizeof what, "json refused: %.40s", cases[i].text);
        CHECK(pack_json(&pk, cases[i].text, strlen(cases[i].text)) == -1, what);
        CHECK_STR(pack_error(&pk), cases[i].error, what);
        CHECK(out.len == 2 && memcmp(out.p, "ab", 2) == 0,
              "a refused value leaves nothing behind");
        pack_free(&pk);
        buf_free(&out);
    }
}

/* Lengths msgpack cannot hold are refused before the bytes are read. */
static void
test_lengths(void)
{
    const size_t big = (size_t)PACK_MAX_LEN + 1;
    static const char *const errors[] = {
        "string length of 4294967296 exceeds msgpack's limit of 4294967295",
        ("byte string length of 4294967296 exceeds msgpack's limit of "
         "4294967295"),
        "array length of 4294967296 exceeds msgpack's limit of 4294967295",
        "map size of 4294967296 exceeds msgpack's limit of 4294967295",
    };

    for (int k = 0; k < 4; k++) {
        struct buf out = {0};
        struct pack pk;
        int rc;

        pack_init(&pk, &out);
        /* A small buffer behind a huge length: read, it would crash. */
        if (k == 0)
            rc = pack_str(&pk, "GPU", big);
        else if (k == 1)
            rc = pack_bin(&pk, (const uint8_t *)"GPU", big);
        else if (k == 2)
            rc = pack_array(&pk, big);
        else
            rc = pack_map(&pk, big);
        CHECK(rc == -1, "length over 2^32-1 refused");
        CHECK_STR(pack_error(&pk), errors[k], "length error text");
        /* Sticky: later values are not written, and fail too. */
        pack_uint(&pk, 1);
        CHECK(pack_str(&pk, "a", 1) == -1 && out.len == 0,
              "nothing is written after a failure");
        CHECK_STR(pack_error(&pk), errors[k], "the first failure is kept");
        pack_free(&pk);
        buf_free(&out);
    }
}

/* Kept msgpack values must be exactly one well-formed object. */
static void
test_msgpack_refused(void)
{
    static const struct {
        const char *bytes;
        size_t n;
        const char *error;
    } cases[] = {
        {"", 0, "raw msgpack value: truncated msgpack"},
        {"\xd9\x05"
         "ab",
         4, "raw msgpack value: truncated msgpack"},
        {"\x92\x01", 2, "raw msgpack value: declared size exceeds payload"},
        {"\xc1", 1, "raw msgpack value: invalid msgpack byte"},
        {"\x01\x02", 2, "raw msgpack value: 1 trailing byte"},
        {"\xc0\x91\xc0", 3, "raw msgpack value: 2 trailing bytes"},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct buf out = {0};
        struct pack pk;

        pack_init(&pk, &out);
        CHECK(pack_msgpack(&pk, (const uint8_t *)cases[i].bytes, cases[i].n) ==
                      -1 &&
                  out.len == 0,
              "malformed kept msgpack refused");
        CHECK_STR(pack_error(&pk), cases[i].error, "kept msgpack error text");
        pack_free(&pk);
        buf_free(&out);
    }
}

/* pack_raw dispatches on the kind; pack_init appends after what is there. */
static void
test_raw_kinds(void)
{
    struct buf out = {0};
    struct pack pk;
    struct kv_raw js = {(const uint8_t *)"[null]", 6, KV_RAW_JSON};
    struct kv_raw mp = {(const uint8_t *)"\x91\xc0", 2, KV_RAW_MSGPACK};

    buf_puts(&out, "x");
    pack_init(&pk, &out);
    CHECK(pk.start == 1, "pack_init records where it starts");
    CHECK(pack_raw(&pk, &js) == 0 && pack_raw(&pk, &mp) == 0,
          "raw values of both kinds");
    CHECK(out.len == 5 && memcmp(out.p, "x\x91\xc0\x91\xc0", 5) == 0,
          "a JSON and a msgpack kept value give the same bytes");
    pack_free(&pk);
    pack_free(NULL);
    buf_free(&out);
}

int
main(void)
{
    test_python_rows();
    test_json_refused();
    test_lengths();
    test_msgpack_refused();
    test_raw_kinds();
    return unit_done();
}

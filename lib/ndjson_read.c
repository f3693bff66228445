/*
 * ndjson_read.c - one line of kvtap NDJSON -> struct kv_event (see
 * ndjson_read.h).
 *
 * A single-pass parser over one line that fills a struct kv_event
 * directly.  Its lexical work (strings borrowed wherever no unescaping is
 * needed, numbers, hash text, token ids and string bytes 8 at a time) is
 * jscan.c's, generic values are kept as their validated JSON text, and the
 * event semantics and the messages are here.  Nothing is read past the line.
 */
#include "ndjson_read.h"

#include "jscan.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One line being parsed. */
struct jp {
    struct jscan sc; /* the cursor; errors are worded here (err NULL) */
    struct arena *arena;
    char *err;
    size_t errlen;
};

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int
jp_fail(struct jp *j, const char *fmt, ...)
{
    va_list ap;

    if (j->err != NULL && j->errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(j->err, j->errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* A short printable copy of s for error messages. */
static const char *
jp_show(char *dst, size_t cap, const char *s, size_t n)
{
    size_t k = 0;

    for (size_t i = 0; i < n && k + 4 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[k++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    if (n > 0 && k + 4 >= cap) {
        memcpy(dst + k, "...", 3);
        k += 3;
    }
    dst[k] = '\0';
    return dst;
}

static int
jp_syntax(struct jp *j, const char *what)
{
    if (j->sc.i >= j->sc.n)
        return jp_fail(j, "invalid JSON: %s at end of line", what);
    return jp_fail(j, "invalid JSON: %s at byte %zu", what, j->sc.i + 1);
}

static void
jp_ws(struct jp *j)
{
    jscan_ws(&j->sc);
}

static int
jp_peek(struct jp *j)
{
    return jscan_peek(&j->sc);
}

/* Words the scanner's last error the way the reader reports it. */
static int
jp_lex(struct jp *j)
{
    const char *what = "invalid value";
    char buf[32];

    switch (j->sc.error) {
    case JSCAN_E_NOMEM:
        return jp_fail(j, "out of memory");
    case JSCAN_E_CONTROL:
        what = "control character in a string";
        break;
    case JSCAN_E_UNTERMINATED:
        what = "unterminated string";
        break;
    case JSCAN_E_UESCAPE:
        what = "invalid \\u escape";
        break;
    case JSCAN_E_ESCAPE:
        what = "invalid escape in a string";
        break;
    case JSCAN_E_NUMBER:
        what = "invalid number";
        break;
    case JSCAN_E_UTF8:
        what = "invalid UTF-8 in a string";
        break;
    case JSCAN_E_DEPTH:
        snprintf(buf, sizeof buf, "values nest deeper than %d",
                 JSCAN_MAX_DEPTH);
        what = buf;
        break;
    case JSCAN_E_NOT_STRING:
        what = "expected a string key";
        break;
    case JSCAN_E_EXPECT:
        snprintf(buf, sizeof buf, "expected '%c'", j->sc.want);
        what = buf;
        break;
    case JSCAN_E_OBJECT_SEP:
        what = "expected ',' or '}'";
        break;
    case JSCAN_E_ARRAY_SEP:
        what = "expected ',' or ']'";
        break;
    default:
        break;
    }
    return jp_syntax(j, what);
}

static int
jp_expect(struct jp *j, char c, const char *what)
{
    if (jscan_expect(&j->sc, c) == -1)
        return jp_syntax(j, what);
    jscan_ws(&j->sc);
    return 0;
}

static int
jp_null(struct jp *j)
{
    return jscan_null(&j->sc);
}

static void *
jp_alloc(struct jp *j, size_t n)
{
    void *p = arena_alloc(j->arena, n);
    if (p == NULL)
        jp_fail(j, "out of memory");
    return p;
}

/* Grows an arena array of *cap elements of size sz holding n of them. */
static void *
jp_grow(struct jp *j, void *old, size_t n, size_t *cap, size_t sz)
{
    size_t ncap = *cap ? 2 * *cap : 8;
    if (ncap > SIZE_MAX / sz / 2) {
        jp_fail(j, "out of memory");
        return NULL;
    }
    void *p = jp_alloc(j, ncap * sz);
    if (p == NULL)
        return NULL;
    if (n > 0)
        memcpy(p, old, n * sz);
    *cap = ncap;
    return p;
}

/* At an opening quote: a string, borrowed when it has no escapes. */
static int
jp_string(struct jp *j, struct kv_str *out)
{
    return jscan_string(&j->sc, out) == -1 ? jp_lex(j) : 0;
}

static int
is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* Reads a number per RFC 8259's grammar. */
static int
jp_number(struct jp *j, struct jscan_num *num)
{
    return jscan_number(&j->sc, num) == -1 ? jp_lex(j) : 0;
}

/*
 * The JSON value at the cursor, validated and kept as its text: a tool that
 * only passes it on never converts it, and one that publishes it
 * (wire_encode, through lib/pack) converts it then.
 */
static int
jp_raw(struct jp *j, struct kv_raw *out)
{
    struct kv_str text;

    if (jscan_skip(&j->sc, &text) == -1)
        return jp_lex(j);
    out->p = (const uint8_t *)text.p;
    out->n = text.n;
    out->kind = KV_RAW_JSON;
    return 0;
}

/* ---- typed values ---- */

/* An integer: *neg and *mag, rejecting fractions and overflow. */
static int
jp_integer(struct jp *j, const char *key, int *neg, uint64_t *mag)
{
    struct jscan_num num;
    int c = jp_peek(j);

    if (c != '-' && !is_digit(c))
        return jp_fail(j, "%s: expected an integer", key);
    if (jp_number(j, &num) == -1)
        return -1;
    if (!num.is_int)
        return jp_fail(
            j, "%s: expected an integer, not %.*s", key,
            (int)(num.end - num.start > 32 ? 32 : num.end - num.start),
            j->sc.s + num.start);
    if (num.ovf)
        return jp_fail(j, "%s: integer out of range", key);
    *neg = num.neg && num.mag != 0;
    *mag = num.mag;
    return 0;
}

static int
jp_u64(struct jp *j, const char *key, uint64_t max, uint64_t *out)
{
    int neg;
    uint64_t mag;

    if (jp_integer(j, key, &neg, &mag) == -1)
        return -1;
    if (neg || mag > max)
        return jp_fail(j, "%s: integer out of range [0, %llu]", key,
                       (unsigned long long)max);
    *out = mag;
    return 0;
}

static int
jp_i64(struct jp *j, const char *key, int64_t *out)
{
    int neg;
    uint64_t mag;

    if (jp_integer(j, key, &neg, &mag) == -1)
        return -1;
    if (neg ? mag > (uint64_t)1 << 63 : mag > INT64_MAX)
        return jp_fail(j, "%s: integer out of the signed 64-bit range", key);
    *out = neg ? (int64_t)((uint64_t)0 - mag) : (int64_t)mag;
    return 0;
}

static int
jp_str_value(struct jp *j, const char *key, struct kv_str *out)
{
    if (jp_peek(j) != '"')
        return jp_fail(j, "%s: expected a string", key);
    return jp_string(j, out);
}

/* A hash: "decimal", "0xhex", or a signed/unsigned 64-bit integer. */
static int
jp_hash(struct jp *j, const char *key, uint64_t *out)
{
    int c = jp_peek(j);

    if (c == '"') {
        struct kv_str str;
        char show[40];
        if (jscan_hash_digits(&j->sc, out))
            return 0;
        if (jp_string(j, &str) == -1)
            return -1;
        enum jscan_error why;
        if (jscan_hash_text(str.p, str.n, out, &why) == -1)
            return jp_fail(j,
                           "%s: \"%s\" is not a decimal or 0x-hex 64-bit "
                           "hash",
                           key, jp_show(show, sizeof show, str.p, str.n));
        return 0;
    }
    if (c == '-' || is_digit(c)) {
        int neg;
        uint64_t mag;
        if (jp_integer(j, key, &neg, &mag) == -1)
            return -1;
        if (neg && mag > (uint64_t)1 << 63)
            return jp_fail(j, "%s: integer out of the 64-bit range", key);
        *out = neg ? (uint64_t)0 - mag : mag;
        return 0;
    }
    return jp_fail(j, "%s: expected a hash (string or integer)", key);
}

/* After an array element: ',' (returns 0) or the closing ']' (returns 1). */
static int
jp_next_elem(struct jp *j)
{
    int rc = jscan_element(&j->sc, 0);

    if (rc == -1)
        return jp_lex(j);
    jscan_ws(&j->sc);
    return !rc;
}

/* Opens an array; returns 1 when it is empty (and consumed). */
static int
jp_open_array(struct jp *j, const char *key, const char *what)
{
    if (jp_peek(j) != '[')
        return jp_fail(j, "%s: expected %s", key, what);
    j->sc.i++;
    jp_ws(j);
    if (jp_peek(j) == ']') {
        j->sc.i++;
        return 1;
    }
    return 0;
}

static int
jp_hashes(struct jp *j, struct kv_event *ev)
{
    const char *key = "block_hashes";
    struct kv_hash *h = NULL;
    size_t n = 0, cap = 0;
    int rc = jp_open_array(j, key, "an array of hashes or null");

    if (rc == -1)
        return -1;
    while (rc == 0) {
        if (n == cap && (h = jp_grow(j, h, n, &cap, sizeof *h)) == NULL)
            return -1;
        if (jp_hash(j, key, &h[n].v) == -1)
            return -1;
        h[n].digest = NULL;
        h[n].digest_len = 0;
        n++;
        if ((rc = jp_next_elem(j)) == -1)
            return -1;
    }
    ev->hashes = h;
    ev->n_hashes = n;
    return 0;
}

/*
 * One token id the scanner's fast path refused: the general integer path
 * decides, for its checks and errors (it also takes "-0").
 */
static int
jp_token(struct jp *j, uint32_t *out)
{
    uint64_t v;

    if (jp_u64(j, "token_ids", UINT32_MAX, &v) == -1)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/*
 * The ids of a flat token array, the cursor at its first one: the scanner
 * reads runs of them 8 digits at a time, and whatever it refuses goes
 * through jp_token for the reader's own checks and messages.
 */
static int
jp_token_list(struct jp *j, uint32_t **t, size_t *cap, size_t *n, int *mixed)
{
    for (;;) {
        size_t got;
        if (*n == *cap && (*t = jp_grow(j, *t, *n, cap, sizeof **t)) == NULL)
            return -1;
        int rc = jscan_tokens(&j->sc, 0, *t + *n, *cap - *n, &got);
        *n += got;
        if (rc == 1)
            return 0;
        if (rc == 0)
            continue;
        if (j->sc.error != JSCAN_E_NOT_UINT && j->sc.error != JSCAN_E_TOKEN)
            return jp_lex(j);
        if (jp_peek(j) == '[')
            return jp_fail(j, "token_ids: mixes integers and [a,b] pairs");
        if (*n == *cap && (*t = jp_grow(j, *t, *n, cap, sizeof **t)) == NULL)
            return -1;
        if (jp_peek(j) == '"') {
            /* A placeholder (TensorRT-LLM, docs/protocol.md#tensorrt-llm). */
            struct kv_str s;
            if (jp_string(j, &s) == -1)
                return -1;
            (*t)[*n] = kv_token_placeholder(s.p, s.n);
            *mixed = 1;
        } else if (jp_token(j, *t + *n) == -1) {
            return -1;
        }
        (*n)++;
        if ((rc = jp_next_elem(j)) == -1)
            return -1;
        if (rc == 1)
            return 0;
    }
}

/* The most token ids jp_tokens reserves room for before it reads any. */
#define TOKENS_RESERVE 65536

static int
jp_tokens(struct jp *j, struct kv_event *ev)
{
    const char *key = "token_ids";
    const size_t start = j->sc.i;
    uint32_t *t = NULL;
    size_t n = 0, cap = 0; /* n values, so 2 per pair */
    int rc = jp_open_array(j, key, "an array of token ids or null");
    int pairs = jp_peek(j) == '[', mixed = 0;

    if (rc == -1)
        return -1;
    if (rc == 0 && !pairs) {
        /* Room for as many ids as the rest of the line could hold (each
         * takes a digit and a comma), up to a bound, and the unused end
         * given back: one allocation and one scanner call for a list of
         * any usual length instead of a doubling array. */
        cap = (j->sc.n - j->sc.i + 1) / 2;
        cap = cap < TOKENS_RESERVE ? cap : TOKENS_RESERVE;
        if ((t = jp_alloc(j, cap * sizeof *t)) == NULL)
            return -1;
        if (jp_token_list(j, &t, &cap, &n, &mixed) == -1)
            return -1;
        arena_trim(j->arena, t, cap * sizeof *t, n * sizeof *t);
        rc = 1;
    }
    ev->token_mixed = mixed;
    if (mixed) {
        ev->raw[KV_F_TOKEN_IDS].p = (const uint8_t *)j->sc.s + start;
        ev->raw[KV_F_TOKEN_IDS].n = j->sc.i - start;
        ev->raw[KV_F_TOKEN_IDS].kind = KV_RAW_JSON;
    }
    while (rc == 0) {
        if (n + 2 > cap && (t = jp_grow(j, t, n, &cap, sizeof *t)) == NULL)
            return -1;
        if (jp_peek(j) != '[')
            return jp_fail(j, "%s: mixes integers and [a,b] pairs", key);
        j->sc.i++;
        jp_ws(j);
        if (jp_token(j, &t[n]) == -1 ||
            jp_expect(j, ',', "expected a [a,b] token pair") == -1 ||
            jp_token(j, &t[n + 1]) == -1 ||
            jp_expect(j, ']', "expected a [a,b] token pair") == -1)
            return -1;
        n += 2;
        if ((rc = jp_next_elem(j)) == -1)
            return -1;
    }
    ev->tokens = t;
    ev->n_tokens = pairs ? n / 2 : n;
    ev->token_pairs = pairs && n > 0;
    return 0;
}

/* One engine field's value (the key has been read). */
static int
jp_field(struct jp *j, struct kv_event *ev, enum kv_field f)
{
    const char *key = kv_fields[f].name;
    uint32_t bit = KV_BIT(f);

    ev->present |= bit;
    if (jp_null(j)) {
        ev->isnull |= bit;
        return 0;
    }
    ev->isnull &= ~bit;
    switch (kv_fields[f].kind) {
    case KV_K_HASHES:
        return jp_hashes(j, ev);
    case KV_K_HASH:
        ev->parent.digest = NULL;
        ev->parent.digest_len = 0;
        return jp_hash(j, key, &ev->parent.v);
    case KV_K_TOKENS:
        return jp_tokens(j, ev);
    case KV_K_INT:
        if (f == KV_F_LORA_ID)
            return jp_i64(j, key, &ev->num[f]);
        uint64_t u;
        if (jp_u64(j, key, UINT64_MAX, &u) == -1)
            return -1;
        ev->num[f] = (int64_t)u;
        return 0;
    case KV_K_STR:
        return jp_str_value(j, key, &ev->str[f]);
    case KV_K_RAW:
        return jp_raw(j, &ev->raw[f]);
    case KV_K_HASHV: {
        uint64_t h;
        if (jp_hash(j, key, &h) == -1)
            return -1;
        ev->num[f] = (int64_t)h;
        return 0;
    }
    }
    return jp_fail(j, "%s: unsupported field", key);
}

/* Hex text of a digest into arena bytes; at least 8 bytes. */
static int
jp_digest(struct jp *j, const char *key, struct kv_str hex, const uint8_t **out,
          uint32_t *len)
{
    char show[40];

    if (hex.n < 16 || hex.n % 2 != 0 || hex.n / 2 > UINT32_MAX)
        return jp_fail(j,
                       "%s: \"%s\" is not the hex of a digest of 8 bytes "
                       "or more",
                       key, jp_show(show, sizeof show, hex.p, hex.n));
    uint8_t *d = jp_alloc(j, hex.n / 2);
    if (d == NULL)
        return -1;
    for (size_t k = 0; k < hex.n / 2; k++) {
        int hi = jscan_hex_digit((unsigned char)hex.p[2 * k]);
        int lo = jscan_hex_digit((unsigned char)hex.p[2 * k + 1]);
        if (hi < 0 || lo < 0)
            return jp_fail(j, "%s: \"%s\" is not hex", key,
                           jp_show(show, sizeof show, hex.p, hex.n));
        d[k] = (uint8_t)(hi << 4 | lo);
    }
    *out = d;
    *len = (uint32_t)(hex.n / 2);
    return 0;
}

/* The canonical value of a digest: its last 8 bytes big-endian. */
static uint64_t
digest_value(const uint8_t *d, uint32_t len)
{
    uint64_t v = 0;

    for (uint32_t k = len - 8; k < len; k++)
        v = v << 8 | d[k];
    return v;
}

/* Keys the reader knows, besides the engine fields. */
enum jkey {
    JK_POD,
    JK_MODEL,
    JK_DP_RANK,
    JK_SEQ,
    JK_I,
    JK_TS,
    JK_TYPE,
    JK_STREAM,
    JK_BLOCK_DIGESTS,
    JK_PARENT_DIGEST,
    /* Keys of stream records and of the format line. */
    JK_FROM,
    JK_TO,
    JK_LAST_SEQ,
    JK_ERROR,
    JK_BYTES,
    JK_TAG,
    JK_COUNT,
    JK_VERSION,
    JK_COUNT_KEYS
};

static const struct {
    const char *s;
    size_t n;
} jkeys[JK_COUNT_KEYS] = {
#define JKEY(k, lit) [k] = {lit, sizeof(lit) - 1}
    JKEY(JK_POD, "pod"),
    JKEY(JK_MODEL, "model"),
    JKEY(JK_DP_RANK, "dp_rank"),
    JKEY(JK_SEQ, "seq"),
    JKEY(JK_I, "i"),
    JKEY(JK_TS, "ts"),
    JKEY(JK_TYPE, "type"),
    JKEY(JK_STREAM, "stream"),
    JKEY(JK_BLOCK_DIGESTS, "block_digests"),
    JKEY(JK_PARENT_DIGEST, "parent_block_digest"),
    JKEY(JK_FROM, "from"),
    JKEY(JK_TO, "to"),
    JKEY(JK_LAST_SEQ, "last_seq"),
    JKEY(JK_ERROR, "error"),
    JKEY(JK_BYTES, "bytes"),
    JKEY(JK_TAG, "tag"),
    JKEY(JK_COUNT, "count"),
    JKEY(JK_VERSION, "version"),
#undef JKEY
};

/*
 * Returns a jkey, JK_COUNT_KEYS + field for an engine field, or -1.  The
 * envelope's keys take a switch on the length, then comparisons of
 * constant size, which compile to a few word compares; engine fields take
 * the one field lookup, kv_field_parse.
 */
static int
key_lookup(struct kv_str k)
{
    const char *p = k.p;

#define K(lit, id)                                                             \
    if (memcmp(p, lit, sizeof(lit) - 1) == 0)                                  \
    return (id)
    switch (k.n) {
    case 1:
        K("i", JK_I);
        break;
    case 2:
        K("ts", JK_TS);
        K("to", JK_TO);
        break;
    case 3:
        K("pod", JK_POD);
        K("seq", JK_SEQ);
        K("tag", JK_TAG);
        break;
    case 4:
        K("type", JK_TYPE);
        K("from", JK_FROM);
        break;
    case 5:
        K("model", JK_MODEL);
        K("error", JK_ERROR);
        K("bytes", JK_BYTES);
        K("count", JK_COUNT);
        break;
    case 6:
        K("stream", JK_STREAM);
        break;
    case 7:
        K("dp_rank", JK_DP_RANK);
        K("version", JK_VERSION);
        break;
    case 8:
        K("last_seq", JK_LAST_SEQ);
        break;
    case 13:
        K("block_digests", JK_BLOCK_DIGESTS);
        break;
    case 19:
        K("parent_block_digest", JK_PARENT_DIGEST);
        break;
    default:
        break;
    }
#undef K
    enum kv_field f;
    if (kv_field_parse(p, k.n, &f) == 0)
        return JK_COUNT_KEYS + (int)f;
    return -1;
}

/*
 * The keys in the order ndjson_write.c writes them (envelope, type, the
 * engine fields in fields.def's order, the digests), as key_lookup ids.
 * kvsub's lines, and most NDJSON a program writes, keep one order, so the
 * key after key k is most likely one of those after it here.
 */
static const struct {
    int8_t id;
    uint8_t n;
    const char *s; /* the key's name, n bytes */
} key_order[] = {
#define KO(id, lit)                                                            \
    {                                                                          \
        id, sizeof(lit) - 1, lit                                               \
    }
    KO(JK_POD, "pod"),
    KO(JK_MODEL, "model"),
    KO(JK_DP_RANK, "dp_rank"),
    KO(JK_STREAM, "stream"),
    KO(JK_SEQ, "seq"),
    KO(JK_I, "i"),
    KO(JK_TS, "ts"),
    KO(JK_TYPE, "type"),
#define KEY_ORDER_FIELD(a, id, name, ...)                                      \
    {JK_COUNT_KEYS + KV_F_##id, sizeof #name - 1, #name},
    KV_FIELD_LIST(KEY_ORDER_FIELD, ~)
#undef KEY_ORDER_FIELD
        KO(JK_BLOCK_DIGESTS, "block_digests"),
    KO(JK_PARENT_DIGEST, "parent_block_digest"),
#undef KO
};

#define KEY_ORDER_N (sizeof key_order / sizeof key_order[0])

/* The position of key id k in key_order, or KEY_ORDER_N. */
static size_t
key_order_pos(int k)
{
    for (size_t i = 0; i < KEY_ORDER_N; i++)
        if (key_order[i].id == k)
            return i;
    return KEY_ORDER_N;
}

/*
 * After the value of the key at key_order[*pos]: when the text at the
 * cursor is exactly ,"NAME": for a key after it in key_order, consumes it
 * and returns that key's id (its name borrowed from the line, *pos moved
 * to it), which is what jscan_member and key_lookup would have given;
 * otherwise returns -1 and leaves the cursor alone.  Names have no quote,
 * backslash or control byte, so the bytes match only where the general
 * path would read the same key.
 */
static int
key_guess(struct jscan *sc, size_t *pos, struct kv_str *key)
{
    const char *p = sc->s + sc->i;
    size_t left = sc->n - sc->i;

    if (left < 4 || p[0] != ',' || p[1] != '"')
        return -1;
    for (size_t g = *pos + 1; g < KEY_ORDER_N; g++) {
        size_t n = key_order[g].n;
        const char *name = key_order[g].s;

        /* The closing quote and colon first: they rule out most
         * candidates without a compare of the name. */
        if (name[0] != p[2] || left < n + 4 || p[2 + n] != '"' ||
            p[3 + n] != ':' || !kv_bytes_eq(p + 2, name, n))
            continue;
        key->p = p + 2;
        key->n = n;
        sc->i += n + 4;
        *pos = g;
        return key_order[g].id;
    }
    return -1;
}

#define TYPE_NONE (-1)
#define TYPE_FORMAT (-2)

/* Which record keys belong to a record type (bits of 1 << jkey). */
static uint32_t
record_keys(int type)
{
    switch (type) {
    case KV_GAP:
        return 1u << JK_FROM | 1u << JK_TO;
    case KV_RESTART:
        return 1u << JK_LAST_SEQ;
    case KV_DECODE_ERROR:
        return 1u << JK_ERROR | 1u << JK_BYTES;
    case KV_SKIPPED:
        return 1u << JK_TAG | 1u << JK_COUNT;
    case TYPE_FORMAT:
        return 1u << JK_VERSION;
    default:
        return 0;
    }
}

/* State gathered over one line, resolved once "type" is known. */
struct jline {
    int type;
    uint32_t rec_seen, rec_ok; /* record keys met / well typed */
    struct jscan_num version;
    int has_digests;
    struct kv_str *digests; /* hex text, p == NULL for null */
    size_t n_digests;
    int has_parent_digest;
    struct kv_str parent_digest;
    size_t cap_unknown;
};

/* Field by field, for the reason given at env_init. */
static void
jline_init(struct jline *st)
{
    st->type = TYPE_NONE;
    st->rec_seen = st->rec_ok = 0;
    st->version = (struct jscan_num){.start = 0};
    st->has_digests = st->has_parent_digest = 0;
    st->digests = NULL;
    st->n_digests = 0;
    st->parent_digest = (struct kv_str){NULL, 0};
    st->cap_unknown = 0;
}

/*
 * The envelope of a line that names nothing: pod "-", nothing else.  Set
 * field by field because GCC compiles a memset or an initializer of its
 * 104 bytes to `rep stos`, about 20 ns on the 2-core Xeon VMs against
 * 3 ns for stores (a loop of 50M calls each): two of them were a fifth of
 * the CPU of a two-member line.  The assertion is there to make whoever
 * adds a field add it here.
 */
#if UINTPTR_MAX == UINT64_MAX
_Static_assert(sizeof(struct kv_env) == 104,
               "env_init sets each field of struct kv_env: add the new one");
#endif

static void
env_init(struct kv_env *env)
{
    env->pod = (struct kv_str){"-", 1};
    /* Not model = stream = ...: GCC then reloads stream as one 16-byte
     * word right after storing its halves, and the load waits. */
    env->model = (struct kv_str){NULL, 0};
    env->stream = (struct kv_str){NULL, 0};
    env->has_rank = env->has_seq = env->has_i = env->has_ts = 0;
    env->rank = 0;
    env->seq = 0;
    env->i = 0;
    env->ts = 0;
}

static int
jp_add_unknown(struct jp *j, struct kv_event *ev, struct jline *st,
               struct kv_str key)
{
    if (ev->n_unknown == st->cap_unknown &&
        (ev->unknown = jp_grow(j, ev->unknown, ev->n_unknown, &st->cap_unknown,
                               sizeof *ev->unknown)) == NULL)
        return -1;
    struct kv_unknown *u = &ev->unknown[ev->n_unknown];
    u->key = key;
    u->pos = -1;
    /* "@N": a positional slot (docs/ndjson.md#engine-events). */
    if (key.n >= 2 && key.n <= 10 && key.p[0] == '@' &&
        is_digit((unsigned char)key.p[1]) && (key.p[1] != '0' || key.n == 2)) {
        long pos = 0;
        size_t k = 1;
        while (k < key.n && is_digit((unsigned char)key.p[k]))
            pos = pos * 10 + (key.p[k++] - '0');
        if (k == key.n && pos <= 0x7fffffff) {
            u->key.p = NULL;
            u->key.n = 0;
            u->pos = (int)pos;
        }
    }
    if (jp_raw(j, &u->val) == -1)
        return -1;
    ev->n_unknown++;
    return 0;
}

/* A stream record's key: kept as unknown and read typed, decided later. */
static int
jp_record_key(struct jp *j, struct kv_event *ev, struct jline *st, int k,
              struct kv_str key)
{
    size_t start = j->sc.i;

    if (jp_add_unknown(j, ev, st, key) == -1)
        return -1;
    size_t end = j->sc.i;
    j->sc.i = start;
    st->rec_seen |= 1u << k;
    int rc;
    switch (k) {
    case JK_FROM:
        rc = jp_u64(j, "from", UINT64_MAX, &ev->from);
        break;
    case JK_TO:
        rc = jp_u64(j, "to", UINT64_MAX, &ev->to);
        break;
    case JK_LAST_SEQ:
        rc = jp_u64(j, "last_seq", UINT64_MAX, &ev->last_seq);
        break;
    case JK_BYTES:
        rc = jp_u64(j, "bytes", UINT64_MAX, &ev->bytes);
        break;
    case JK_COUNT:
        rc = jp_u64(j, "count", UINT64_MAX, &ev->count);
        break;
    case JK_ERROR:
        rc = jp_str_value(j, "error", &ev->error);
        break;
    case JK_TAG:
        rc = jp_str_value(j, "tag", &ev->tag);
        break;
    default: /* JK_VERSION: its text is kept for the error message */
        rc = -1;
        if (jp_peek(j) == '-' || is_digit(jp_peek(j)))
            rc = jp_number(j, &st->version);
        st->version.start = start;
        st->version.end = end;
        break;
    }
    if (rc == 0 && j->sc.i == end)
        st->rec_ok |= 1u << k;
    else
        st->rec_ok &= ~(1u << k);
    j->sc.i = end;
    return 0;
}

static int
jp_digests(struct jp *j, struct jline *st)
{
    const char *key = "block_digests";
    size_t cap = 0;
    int rc;

    st->digests = NULL;
    st->n_digests = 0;
    st->has_digests = 0;
    if (jp_null(j))
        return 0;
    rc = jp_open_array(j, key, "an array of hex digests or null");
    if (rc == -1)
        return -1;
    st->has_digests = 1;
    while (rc == 0) {
        if (st->n_digests == cap &&
            (st->digests = jp_grow(j, st->digests, st->n_digests, &cap,
                                   sizeof *st->digests)) == NULL)
            return -1;
        struct kv_str *d = &st->digests[st->n_digests];
        if (jp_null(j)) {
            d->p = NULL;
            d->n = 0;
        } else if (jp_str_value(j, key, d) == -1) {
            return -1;
        }
        st->n_digests++;
        if ((rc = jp_next_elem(j)) == -1)
            return -1;
    }
    return 0;
}

/* One key's value (k is key_lookup(key)): dispatch on the key. */
static int
jp_member(struct jp *j, struct kv_env *env, struct kv_event *ev,
          struct jline *st, struct kv_str key, int k)
{
    if (k >= JK_COUNT_KEYS)
        return jp_field(j, ev, (enum kv_field)(k - JK_COUNT_KEYS));
    switch (k) {
    case JK_POD:
        return jp_str_value(j, "pod", &env->pod);
    case JK_MODEL:
        if (jp_null(j)) {
            env->model.p = NULL;
            env->model.n = 0;
            return 0;
        }
        return jp_str_value(j, "model", &env->model);
    case JK_DP_RANK:
        if (jp_null(j)) {
            env->has_rank = 0;
            return 0;
        }
        env->has_rank = 1;
        return jp_i64(j, "dp_rank", &env->rank);
    case JK_SEQ:
        env->has_seq = 1;
        return jp_u64(j, "seq", UINT64_MAX, &env->seq);
    case JK_STREAM:
        if (jp_null(j)) {
            env->stream.p = NULL;
            env->stream.n = 0;
            return 0;
        }
        return jp_str_value(j, "stream", &env->stream);
    case JK_I: {
        uint64_t v;
        if (jp_u64(j, "i", UINT32_MAX, &v) == -1)
            return -1;
        env->has_i = 1;
        env->i = (uint32_t)v;
        return 0;
    }
    case JK_TS: {
        struct jscan_num num;
        if (jp_null(j)) {
            env->has_ts = 0;
            return 0;
        }
        int c = jp_peek(j);
        if (c != '-' && !is_digit(c))
            return jp_fail(j, "ts: expected a number");
        if (jp_number(j, &num) == -1)
            return -1;
        if (jscan_num_double(&j->sc, &num, &env->ts) == -1)
            return jp_lex(j);
        /* JSON has no infinity: 1e400 would be written back as null, and
         * a line read twice must say the same thing both times. */
        if (!isfinite(env->ts))
            return jp_fail(j, "ts: out of range");
        env->has_ts = 1;
        return 0;
    }
    case JK_TYPE: {
        struct kv_str t;
        char show[40];
        enum kv_type type;
        if (jp_str_value(j, "type", &t) == -1)
            return -1;
        if (kv_type_parse(t.p, t.n, &type) == 0)
            st->type = (int)type;
        else if (t.n == 6 && memcmp(t.p, "format", 6) == 0)
            st->type = TYPE_FORMAT;
        else
            return jp_fail(j, "unknown type \"%s\"",
                           jp_show(show, sizeof show, t.p, t.n));
        return 0;
    }
    case JK_BLOCK_DIGESTS:
        return jp_digests(j, st);
    case JK_PARENT_DIGEST:
        st->has_parent_digest = 0;
        if (jp_null(j))
            return 0;
        st->has_parent_digest = 1;
        return jp_str_value(j, "parent_block_digest", &st->parent_digest);
    case -1:
        return jp_add_unknown(j, ev, st, key);
    default:
        return jp_record_key(j, ev, st, k, key);
    }
}

/* Attaches block_digests / parent_block_digest to their hashes. */
static int
jp_apply_digests(struct jp *j, struct kv_event *ev, const struct jline *st)
{
    uint32_t live = ev->present & ~ev->isnull;

    if (st->has_digests) {
        if (!(live & KV_BIT(KV_F_BLOCK_HASHES)) ||
            st->n_digests != ev->n_hashes)
            return jp_fail(j,
                           "block_digests: %zu digests for %zu "
                           "block_hashes",
                           st->n_digests,
                           live & KV_BIT(KV_F_BLOCK_HASHES) ? ev->n_hashes
                                                            : (size_t)0);
        for (size_t k = 0; k < st->n_digests; k++) {
            struct kv_hash *h = &ev->hashes[k];
            if (st->digests[k].p == NULL)
                continue;
            if (jp_digest(j, "block_digests", st->digests[k], &h->digest,
                          &h->digest_len) == -1)
                return -1;
            if (digest_value(h->digest, h->digest_len) != h->v)
                return jp_fail(j,
                               "block_digests: digest %zu does not end "
                               "with block_hashes[%zu]",
                               k, k);
        }
    }
    if (st->has_parent_digest) {
        if (!(live & KV_BIT(KV_F_PARENT_BLOCK_HASH)))
            return jp_fail(j, "parent_block_digest without a "
                              "parent_block_hash");
        if (jp_digest(j, "parent_block_digest", st->parent_digest,
                      &ev->parent.digest, &ev->parent.digest_len) == -1)
            return -1;
        if (digest_value(ev->parent.digest, ev->parent.digest_len) !=
            ev->parent.v)
            return jp_fail(j, "parent_block_digest does not end with "
                              "parent_block_hash");
    }
    return 0;
}

/* Drops the unknown entries that were the record's own keys. */
static void
drop_record_unknowns(struct kv_event *ev, uint32_t keys)
{
    size_t w = 0;

    for (size_t r = 0; r < ev->n_unknown; r++) {
        const struct kv_unknown *u = &ev->unknown[r];
        int own = 0;
        if (u->pos < 0 && u->key.n > 0) {
            int k = key_lookup(u->key);
            own = k >= 0 && k < JK_COUNT_KEYS && (keys >> k & 1);
        }
        if (!own)
            ev->unknown[w++] = *u;
    }
    ev->n_unknown = w;
}

/* Decides the line once the whole object has been read. */
static int
jp_finish(struct jp *j, struct kv_env *env, struct kv_event *ev,
          struct jline *st)
{
    char show[40];

    if (st->type == TYPE_NONE)
        return jp_fail(j, "no \"type\" key");
    if (st->type == TYPE_FORMAT) {
        const struct jscan_num *v = &st->version;
        if (!(st->rec_seen & 1u << JK_VERSION))
            return jp_fail(j, "format line without a \"version\"");
        if ((st->rec_ok & 1u << JK_VERSION) && v->is_int && !v->neg &&
            v->mag == 1 && !v->ovf)
            return NDJSON_SKIP;
        jp_fail(
            j, "unsupported NDJSON format version %s",
            jp_show(show, sizeof show, j->sc.s + v->start, v->end - v->start));
        return NDJSON_FATAL;
    }
    uint32_t own = record_keys(st->type);
    for (int k = JK_FROM; k < JK_VERSION; k++) {
        if ((own >> k & 1) && (st->rec_seen >> k & 1) &&
            !(st->rec_ok >> k & 1)) {
            const char *want = k == JK_ERROR || k == JK_TAG
                                   ? "a string"
                                   : "an unsigned integer";
            return jp_fail(j, "%s: expected %s", jkeys[k].s, want);
        }
    }
    if (own != 0) {
        drop_record_unknowns(ev, own);
    } else {
        ev->from = ev->to = ev->last_seq = ev->bytes = ev->count = 0;
        ev->error.p = ev->tag.p = NULL;
        ev->error.n = ev->tag.n = 0;
    }
    if (jp_apply_digests(j, ev, st) == -1)
        return -1;
    ev->type = (enum kv_type)st->type;
    ev->index = env->has_i ? env->i : 0;
    return NDJSON_EVENT;
}

int
ndjson_parse_line(const char *line, size_t len, struct arena *arena,
                  struct kv_env *env, struct kv_event *ev, char *err,
                  size_t errlen)
{
    struct jp j; /* j, st and env are set field by field: see env_init */
    struct jline st;
    struct kv_str key;
    int m, k, first = 1;
    size_t pos = KEY_ORDER_N; /* where the last key is in key_order */

    j.arena = arena;
    j.err = err;
    j.errlen = errlen;
    jscan_init(&j.sc, line, len, arena, NULL, 0);
    jline_init(&st);
    env_init(env);
    kv_event_reset(ev, KV_BLOCK_STORED);
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    /* A kept value's length is 32 bits (struct kv_raw). */
    if (len > UINT32_MAX) {
        jp_fail(&j, "line longer than 4 GiB");
        return NDJSON_BAD;
    }

    jp_ws(&j);
    if (j.sc.i == j.sc.n)
        return NDJSON_SKIP;
    if (jp_peek(&j) != '{') {
        jp_fail(&j, "not a JSON object");
        return NDJSON_BAD;
    }
    j.sc.i++;
    for (;;) {
        if (first || (k = key_guess(&j.sc, &pos, &key)) < 0) {
            if ((m = jscan_member(&j.sc, first, &key)) != 1)
                break;
            k = key_lookup(key);
            pos = key_order_pos(k);
        }
        first = 0;
        jscan_ws(&j.sc);
        if (jp_member(&j, env, ev, &st, key, k) == -1)
            return NDJSON_BAD;
    }
    if (m == -1) {
        jp_lex(&j);
        return NDJSON_BAD;
    }
    jp_ws(&j);
    if (j.sc.i != j.sc.n) {
        jp_syntax(&j, "trailing characters after the object");
        return NDJSON_BAD;
    }
    int rc = jp_finish(&j, env, ev, &st);
    return rc == -1 ? NDJSON_BAD : rc;
}

/*
 * ndjson.c - struct kv_event <-> kvtap NDJSON lines (docs/ndjson.md and the
 * team's format decisions).
 *
 * The writer appends straight into a struct buf: it reserves once per
 * variable-length item and then formats digits and escapes through a raw
 * pointer, because kvsub prints every event it decodes.  The reader is a
 * single-pass JSON parser over one line that fills a struct kv_event
 * directly, borrowing strings from the line wherever no unescaping is needed.
 */
#include "ndjson.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Generic values (extra_keys, unknown fields) nest at most this deep. */
#define NDJSON_MAX_DEPTH 64

/* ------------------------------------------------------------------ */
/* Writer                                                              */
/* ------------------------------------------------------------------ */

static const char digits2[] = "00010203040506070809"
                              "10111213141516171819"
                              "20212223242526272829"
                              "30313233343536373839"
                              "40414243444546474849"
                              "50515253545556575859"
                              "60616263646566676869"
                              "70717273747576777879"
                              "80818283848586878889"
                              "90919293949596979899";

static const char hexdig[] = "0123456789abcdef";

/* Writes v in decimal at dst (room for 20 bytes); returns the length. */
static size_t
fmt_u64(char *dst, uint64_t v)
{
    char tmp[20];
    char *p = tmp + sizeof tmp;

    while (v >= 100) {
        unsigned r = (unsigned)(v % 100);
        v /= 100;
        p -= 2;
        memcpy(p, digits2 + 2 * r, 2);
    }
    if (v >= 10) {
        p -= 2;
        memcpy(p, digits2 + 2 * v, 2);
    } else {
        *--p = (char)('0' + v);
    }
    size_t n = (size_t)(tmp + sizeof tmp - p);
    memcpy(dst, p, n);
    return n;
}

/* Writes v in decimal at dst (room for 10 bytes); returns the length. */
static size_t
fmt_u32(char *dst, uint32_t v)
{
    char tmp[10];
    char *p = tmp + sizeof tmp;

    while (v >= 100) {
        uint32_t r = v % 100;
        v /= 100;
        p -= 2;
        memcpy(p, digits2 + 2 * r, 2);
    }
    if (v >= 10) {
        p -= 2;
        memcpy(p, digits2 + 2 * v, 2);
    } else {
        *--p = (char)('0' + v);
    }
    size_t n = (size_t)(tmp + sizeof tmp - p);
    memcpy(dst, p, n);
    return n;
}

/* Room for n more bytes at the end of out, or NULL once out is oom. */
static char *
wr_room(struct buf *out, size_t n)
{
    if (buf_reserve(out, n) == -1)
        return NULL;
    return out->p + out->len;
}

static void
wr_lit(struct buf *out, const char *s, size_t n)
{
    buf_put(out, s, n);
}

#define WR_LIT(out, s) wr_lit((out), (s), sizeof(s) - 1)

static void
wr_u64(struct buf *out, uint64_t v)
{
    char *q = wr_room(out, 20);
    if (q != NULL)
        out->len += fmt_u64(q, v);
}

static void
wr_i64(struct buf *out, int64_t v)
{
    char *q = wr_room(out, 21);
    if (q == NULL)
        return;
    if (v < 0) {
        *q++ = '-';
        out->len++;
        /* Negate in unsigned arithmetic so INT64_MIN does not overflow. */
        out->len += fmt_u64(q, (uint64_t)0 - (uint64_t)v);
    } else {
        out->len += fmt_u64(q, (uint64_t)v);
    }
}

/*
 * Length of the well-formed UTF-8 sequence at s[0..n), or 0 when the bytes
 * there start an ill-formed one; *bad is then the length of its maximal
 * subpart (the bytes one U+FFFD replaces, as Unicode and Python's
 * errors="replace" count them).
 */
static size_t
utf8_seq(const unsigned char *s, size_t n, size_t *bad)
{
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xbf;

    if (c >= 0xc2 && c <= 0xdf) {
        need = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
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

/*
 * A JSON string literal: \" \\ \n \r \t escaped, other control bytes as
 * \u00XX, valid UTF-8 copied, each maximal ill-formed subpart replaced by
 * U+FFFD.
 */
static void
wr_str(struct buf *out, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;

    /* Worst case: every byte becomes \u00XX (6) or U+FFFD (3). */
    if (n > (SIZE_MAX - 2) / 6) {
        out->oom = 1;
        return;
    }
    char *q = wr_room(out, 6 * n + 2);
    if (q == NULL)
        return;
    char *start = q;
    *q++ = '"';
    while (i < n) {
        size_t run = i;
        while (i < n && s[i] >= 0x20 && s[i] < 0x80 && s[i] != '"' &&
               s[i] != '\\')
            i++;
        memcpy(q, s + run, i - run);
        q += i - run;
        if (i == n)
            break;
        unsigned char c = s[i];
        if (c >= 0x80) {
            size_t bad = 0;
            size_t k = utf8_seq(s + i, n - i, &bad);
            if (k != 0) {
                memcpy(q, s + i, k);
                q += k;
                i += k;
            } else {
                memcpy(q, "\xef\xbf\xbd", 3);
                q += 3;
                i += bad;
            }
            continue;
        }
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
        i++;
    }
    *q++ = '"';
    out->len += (size_t)(q - start);
}

static void
wr_hexstr(struct buf *out, const uint8_t *p, size_t n)
{
    buf_putc(out, '"');
    buf_put_hex(out, p, n);
    buf_putc(out, '"');
}

/* ---- msgpack -> JSON, for extra_keys and unknown fields ---- */

struct mp_cur {
    const uint8_t *p;
    const uint8_t *end;
};

static int
mp_take(struct mp_cur *c, size_t n, const uint8_t **out)
{
    if ((size_t)(c->end - c->p) < n)
        return -1;
    *out = c->p;
    c->p += n;
    return 0;
}

static uint64_t
be_read(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Reads a big-endian length of n bytes. */
static int
mp_len(struct mp_cur *c, size_t n, uint64_t *len)
{
    const uint8_t *p;
    if (mp_take(c, n, &p) == -1)
        return -1;
    *len = be_read(p, n);
    return 0;
}

static int mp_to_json(struct buf *out, struct mp_cur *c, int depth);

/* Writes a non-string map key as a JSON string (ndjson decisions). */
static int
mp_key_to_json(struct buf *out, struct mp_cur *c, int depth)
{
    uint8_t t = *c->p;
    size_t mark = out->len;

    /* Strings are keys as they are; everything else is stringified. */
    if ((t >= 0xa0 && t <= 0xbf) || (t >= 0xd9 && t <= 0xdb))
        return mp_to_json(out, c, depth);
    int isint = t <= 0x7f || t >= 0xe0 || (t >= 0xcc && t <= 0xd3);
    if (isint)
        buf_putc(out, '"');
    if (mp_to_json(out, c, depth) == -1)
        return -1;
    if (isint) {
        buf_putc(out, '"');
        return 0;
    }
    /* Re-quote the value's JSON text as a string. */
    size_t n = out->len - mark;
    char *tmp = malloc(n ? n : 1);
    if (tmp == NULL)
        return -1;
    memcpy(tmp, out->p + mark, n);
    out->len = mark;
    wr_str(out, tmp, n);
    free(tmp);
    return 0;
}

/*
 * Converts exactly one msgpack object at c to JSON.  Returns 0, or -1 when
 * the bytes are truncated, use the reserved byte 0xc1 or nest deeper than
 * NDJSON_MAX_DEPTH (the caller then rolls back and writes null).
 */
static int
mp_to_json(struct buf *out, struct mp_cur *c, int depth)
{
    const uint8_t *p;
    uint64_t n = 0;
    int is_map = 0;

    if (depth > NDJSON_MAX_DEPTH || mp_take(c, 1, &p) == -1)
        return -1;
    uint8_t t = p[0];
    if (t <= 0x7f) {
        wr_u64(out, t);
        return 0;
    }
    if (t >= 0xe0) {
        wr_i64(out, (int8_t)t);
        return 0;
    }
    if (t >= 0xa0 && t <= 0xbf) {
        n = t & 0x1f;
        goto str;
    }
    if (t >= 0x90 && t <= 0x9f) {
        n = t & 0x0f;
        goto array;
    }
    if (t >= 0x80 && t <= 0x8f) {
        n = t & 0x0f;
        is_map = 1;
        goto array;
    }
    switch (t) {
    case 0xc0:
        WR_LIT(out, "null");
        return 0;
    case 0xc2:
        WR_LIT(out, "false");
        return 0;
    case 0xc3:
        WR_LIT(out, "true");
        return 0;
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf: {
        size_t w = (size_t)1 << (t - 0xcc);
        if (mp_take(c, w, &p) == -1)
            return -1;
        wr_u64(out, be_read(p, w));
        return 0;
    }
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
        size_t w = (size_t)1 << (t - 0xd0);
        if (mp_take(c, w, &p) == -1)
            return -1;
        uint64_t u = be_read(p, w);
        /* Sign-extend from w bytes. */
        if (w < 8 && (u >> (8 * w - 1)) & 1)
            u |= ~(uint64_t)0 << (8 * w);
        wr_i64(out, (int64_t)u);
        return 0;
    }
    case 0xca: {
        if (mp_take(c, 4, &p) == -1)
            return -1;
        uint32_t u = (uint32_t)be_read(p, 4);
        float f;
        memcpy(&f, &u, sizeof f);
        buf_put_double(out, (double)f);
        return 0;
    }
    case 0xcb: {
        if (mp_take(c, 8, &p) == -1)
            return -1;
        uint64_t u = be_read(p, 8);
        double d;
        memcpy(&d, &u, sizeof d);
        buf_put_double(out, d);
        return 0;
    }
    case 0xd9:
    case 0xda:
    case 0xdb:
        if (mp_len(c, (size_t)1 << (t - 0xd9), &n) == -1)
            return -1;
        goto str;
    case 0xc4:
    case 0xc5:
    case 0xc6:
        if (mp_len(c, (size_t)1 << (t - 0xc4), &n) == -1 ||
            mp_take(c, n, &p) == -1)
            return -1;
        wr_hexstr(out, p, n);
        return 0;
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
        /* fixext: a type byte, then 1, 2, 4, 8 or 16 data bytes. */
        n = (uint64_t)1 << (t - 0xd4);
        if (mp_take(c, 1, &p) == -1 || mp_take(c, n, &p) == -1)
            return -1;
        wr_hexstr(out, p, n);
        return 0;
    case 0xc7:
    case 0xc8:
    case 0xc9:
        if (mp_len(c, (size_t)1 << (t - 0xc7), &n) == -1 ||
            mp_take(c, 1, &p) == -1 || mp_take(c, n, &p) == -1)
            return -1;
        wr_hexstr(out, p, n);
        return 0;
    case 0xdc:
    case 0xdd:
        if (mp_len(c, t == 0xdc ? 2 : 4, &n) == -1)
            return -1;
        goto array;
    case 0xde:
    case 0xdf:
        if (mp_len(c, t == 0xde ? 2 : 4, &n) == -1)
            return -1;
        is_map = 1;
        goto array;
    default:
        return -1; /* 0xc1 */
    }

str:
    if (mp_take(c, n, &p) == -1)
        return -1;
    wr_str(out, (const char *)p, n);
    return 0;

array:
    /* Every element takes at least one byte: reject a lying header now. */
    if (n > (uint64_t)(c->end - c->p) / (is_map ? 2 : 1))
        return -1;
    buf_putc(out, is_map ? '{' : '[');
    for (uint64_t k = 0; k < n; k++) {
        if (k > 0)
            buf_putc(out, ',');
        if (is_map) {
            if (c->p >= c->end || mp_key_to_json(out, c, depth + 1) == -1)
                return -1;
            buf_putc(out, ':');
        }
        if (mp_to_json(out, c, depth + 1) == -1)
            return -1;
    }
    buf_putc(out, is_map ? '}' : ']');
    return 0;
}

/* A kv_raw value as JSON; null when it is not exactly one sound object. */
static void
wr_raw(struct buf *out, struct kv_raw r)
{
    size_t mark = out->len;
    struct mp_cur c = {r.p, r.p + r.n};

    if (r.p == NULL || mp_to_json(out, &c, 1) == -1 || c.p != c.end) {
        if (!out->oom)
            out->len = mark;
        WR_LIT(out, "null");
    }
}

/* ---- event bodies ---- */

/* ,"name": for each field, with lengths, in enum kv_field order. */
static const struct {
    const char *s;
    size_t n;
} field_keys[KV_F_COUNT] = {
#define FK(f, lit) [f] = {lit, sizeof(lit) - 1}
    FK(KV_F_BLOCK_HASHES, ",\"block_hashes\":"),
    FK(KV_F_PARENT_BLOCK_HASH, ",\"parent_block_hash\":"),
    FK(KV_F_TOKEN_IDS, ",\"token_ids\":"),
    FK(KV_F_BLOCK_SIZE, ",\"block_size\":"),
    FK(KV_F_LORA_ID, ",\"lora_id\":"),
    FK(KV_F_MEDIUM, ",\"medium\":"),
    FK(KV_F_LORA_NAME, ",\"lora_name\":"),
    FK(KV_F_EXTRA_KEYS, ",\"extra_keys\":"),
    FK(KV_F_GROUP_IDX, ",\"group_idx\":"),
    FK(KV_F_KV_CACHE_SPEC_KIND, ",\"kv_cache_spec_kind\":"),
    FK(KV_F_KV_CACHE_SPEC_SLIDING_WINDOW, ",\"kv_cache_spec_sliding_window\":"),
    FK(KV_F_LOCALITY, ",\"locality\":"),
    FK(KV_F_OWNERSHIP, ",\"ownership\":"),
    FK(KV_F_CACHE_SALT, ",\"cache_salt\":"),
    FK(KV_F_SESSION_ID, ",\"session_id\":"),
#undef FK
};

static void
wr_hashes(struct buf *out, const struct kv_hash *h, size_t n)
{
    /* "20 digits", plus a comma, per hash. */
    if (n > (SIZE_MAX - 2) / 23) {
        out->oom = 1;
        return;
    }
    char *q = wr_room(out, 23 * n + 2);
    if (q == NULL)
        return;
    char *start = q;
    *q++ = '[';
    for (size_t k = 0; k < n; k++) {
        if (k > 0)
            *q++ = ',';
        *q++ = '"';
        q += fmt_u64(q, h[k].v);
        *q++ = '"';
    }
    *q++ = ']';
    out->len += (size_t)(q - start);
}

static void
wr_tokens(struct buf *out, const struct kv_event *ev)
{
    size_t vals = ev->token_pairs ? 2 * ev->n_tokens : ev->n_tokens;

    /* 10 digits and a comma per value, plus "[]," around each pair. */
    if (vals > (SIZE_MAX - 2) / 14) {
        out->oom = 1;
        return;
    }
    char *q = wr_room(out, 14 * vals + 2);
    if (q == NULL)
        return;
    char *start = q;
    const uint32_t *t = ev->tokens;
    *q++ = '[';
    for (size_t k = 0; k < ev->n_tokens; k++) {
        if (k > 0)
            *q++ = ',';
        if (ev->token_pairs) {
            *q++ = '[';
            q += fmt_u32(q, t[2 * k]);
            *q++ = ',';
            q += fmt_u32(q, t[2 * k + 1]);
            *q++ = ']';
        } else {
            q += fmt_u32(q, t[k]);
        }
    }
    *q++ = ']';
    out->len += (size_t)(q - start);
}

static void
wr_field(struct buf *out, const struct kv_event *ev, enum kv_field f)
{
    switch (kv_fields[f].kind) {
    case KV_K_HASHES:
        wr_hashes(out, ev->hashes, ev->n_hashes);
        break;
    case KV_K_HASH: {
        char *q = wr_room(out, 22);
        if (q == NULL)
            return;
        q[0] = '"';
        size_t n = fmt_u64(q + 1, ev->parent.v);
        q[n + 1] = '"';
        out->len += n + 2;
        break;
    }
    case KV_K_TOKENS:
        wr_tokens(out, ev);
        break;
    case KV_K_INT:
        /*
         * lora_id is the one signed field; the others are unsigned on the
         * wire and kept as their u64 bit pattern.
         */
        if (f == KV_F_LORA_ID)
            wr_i64(out, ev->num[f]);
        else
            wr_u64(out, (uint64_t)ev->num[f]);
        break;
    case KV_K_STR:
        wr_str(out, ev->str[f].p, ev->str[f].n);
        break;
    case KV_K_RAW:
        wr_raw(out, ev->raw[f]);
        break;
    }
}

static void
wr_engine_body(struct buf *out, const struct kv_event *ev)
{
    uint32_t req = kv_required_fields(ev->type);
    uint32_t want = ev->present | req;

    for (int f = 0; f < KV_F_COUNT; f++) {
        uint32_t bit = KV_BIT(f);
        if (!(want & bit))
            continue;
        wr_lit(out, field_keys[f].s, field_keys[f].n);
        if (!(ev->present & bit) || (ev->isnull & bit))
            WR_LIT(out, "null");
        else
            wr_field(out, ev, (enum kv_field)f);
    }

    uint32_t hashes_ok =
        (ev->present & ~ev->isnull) & KV_BIT(KV_F_BLOCK_HASHES);
    int any_digest = 0;
    for (size_t k = 0; hashes_ok && k < ev->n_hashes && !any_digest; k++)
        any_digest = ev->hashes[k].digest != NULL;
    if (any_digest) {
        WR_LIT(out, ",\"block_digests\":[");
        for (size_t k = 0; k < ev->n_hashes; k++) {
            if (k > 0)
                buf_putc(out, ',');
            if (ev->hashes[k].digest != NULL)
                wr_hexstr(out, ev->hashes[k].digest, ev->hashes[k].digest_len);
            else
                WR_LIT(out, "null");
        }
        buf_putc(out, ']');
    }
    uint32_t parent_ok =
        (ev->present & ~ev->isnull) & KV_BIT(KV_F_PARENT_BLOCK_HASH);
    if (parent_ok && ev->parent.digest != NULL) {
        WR_LIT(out, ",\"parent_block_digest\":");
        wr_hexstr(out, ev->parent.digest, ev->parent.digest_len);
    }

    for (size_t k = 0; k < ev->n_unknown; k++) {
        const struct kv_unknown *u = &ev->unknown[k];
        buf_putc(out, ',');
        if (u->pos >= 0) {
            WR_LIT(out, "\"@");
            wr_u64(out, (uint64_t)u->pos);
            buf_putc(out, '"');
        } else {
            wr_str(out, u->key.p, u->key.n);
        }
        buf_putc(out, ':');
        wr_raw(out, u->val);
    }
}

/* Everything after "type":"...", up to and including the newline. */
static void
wr_body(struct buf *out, const struct kv_event *ev)
{
    switch (ev->type) {
    case KV_BLOCK_STORED:
    case KV_BLOCK_REMOVED:
    case KV_ALL_BLOCKS_CLEARED:
        wr_engine_body(out, ev);
        break;
    case KV_GAP:
        WR_LIT(out, ",\"from\":");
        wr_u64(out, ev->from);
        WR_LIT(out, ",\"to\":");
        wr_u64(out, ev->to);
        break;
    case KV_RESTART:
        WR_LIT(out, ",\"last_seq\":");
        wr_u64(out, ev->last_seq);
        break;
    case KV_DECODE_ERROR:
        WR_LIT(out, ",\"error\":");
        wr_str(out, ev->error.p, ev->error.n);
        WR_LIT(out, ",\"bytes\":");
        wr_u64(out, ev->bytes);
        break;
    case KV_SKIPPED:
        WR_LIT(out, ",\"tag\":");
        wr_str(out, ev->tag.p, ev->tag.n);
        WR_LIT(out, ",\"count\":");
        wr_u64(out, ev->count);
        break;
    default:
        break;
    }
    WR_LIT(out, "}\n");
}

static int
is_engine(enum kv_type t)
{
    return t == KV_BLOCK_STORED || t == KV_BLOCK_REMOVED ||
           t == KV_ALL_BLOCKS_CLEARED;
}

static void
wr_type(struct buf *out, enum kv_type t)
{
    WR_LIT(out, ",\"type\":\"");
    buf_puts(out, kv_type_name(t));
    buf_putc(out, '"');
}

/* {"pod":…,"model":…,"dp_rank":…  (without seq, i, ts, type). */
static void
wr_env_start(struct buf *out, struct kv_str pod, struct kv_str model,
             int has_rank, int64_t rank)
{
    WR_LIT(out, "{\"pod\":");
    wr_str(out, pod.p, pod.n);
    if (model.p != NULL) {
        WR_LIT(out, ",\"model\":");
        wr_str(out, model.p, model.n);
    }
    WR_LIT(out, ",\"dp_rank\":");
    if (has_rank)
        wr_i64(out, rank);
    else
        WR_LIT(out, "null");
}

void
ndjson_write_event(struct buf *out, const struct ndjson_env *env,
                   const struct kv_event *ev)
{
    wr_env_start(out, env->pod, env->model, env->has_rank, env->rank);
    if (env->has_seq) {
        WR_LIT(out, ",\"seq\":");
        wr_u64(out, env->seq);
    }
    if (env->has_i) {
        WR_LIT(out, ",\"i\":");
        wr_u64(out, env->i);
    }
    if (env->has_ts) {
        WR_LIT(out, ",\"ts\":");
        buf_put_double(out, env->ts);
    }
    wr_type(out, ev->type);
    wr_body(out, ev);
}

void
ndjson_write_batch(struct buf *out, const struct ndjson_source *src,
                   const struct kv_batch *b)
{
    char ts[48];
    size_t ts_len = 0;

    if (b->n_events == 0)
        return;

    /* Format ,"ts":X once, at the end of out, and keep a copy. */
    if (b->has_ts) {
        size_t mark = out->len;
        WR_LIT(out, ",\"ts\":");
        buf_put_double(out, b->ts);
        if (out->oom)
            return;
        ts_len = out->len - mark;
        if (ts_len > sizeof ts)
            ts_len = sizeof ts; /* cannot happen: %.17g is at most 24 */
        memcpy(ts, out->p + mark, ts_len);
        out->len = mark;
    }

    /* The first line's {"pod":…,"seq":N is copied for every later line. */
    size_t pre_off = out->len;
    wr_env_start(out, src->pod, src->model, b->has_rank, b->rank);
    WR_LIT(out, ",\"seq\":");
    wr_u64(out, b->seq);
    size_t pre_len = out->len - pre_off;

    for (size_t k = 0; k < b->n_events; k++) {
        const struct kv_event *ev = &b->events[k];
        if (k > 0) {
            char *q = wr_room(out, pre_len);
            if (q == NULL)
                return;
            memcpy(q, out->p + pre_off, pre_len);
            out->len += pre_len;
        }
        if (is_engine(ev->type)) {
            char *q = wr_room(out, 16);
            if (q == NULL)
                return;
            memcpy(q, ",\"i\":", 5);
            out->len += 5 + fmt_u32(q + 5, ev->index);
        }
        wr_lit(out, ts, ts_len);
        wr_type(out, ev->type);
        wr_body(out, ev);
    }
}

/*
 * ndjson_write.c - struct kv_event -> kvtap NDJSON lines (see
 * ndjson_write.h).
 *
 * Lines are appended straight into a struct buf: an upper bound for a
 * line is reserved once and then keys, digits and escapes are written
 * through a raw pointer, because kvsub prints every event it decodes.  The
 * digits and escapes are lib/fmt's.
 */
#include "ndjson_write.h"

#include "fmt.h"
#include "mpk.h"

#include <stdlib.h>
#include <string.h>

/* Generic values (extra_keys, unknown fields) nest at most this deep. */
#define NDJSON_MAX_DEPTH 64

/*
 * The JSON of one generic value may be at most this many times its
 * msgpack size, plus RAW_GROWTH_SLACK bytes.  Plain values stay far below
 * (a string's escapes are at most 6 bytes per byte), but a map key that is
 * itself a map is re-quoted as a string, so that k keys nested in keys
 * double the text k times: the fuzzer found 1,339 bytes that asked for
 * 2 GiB.  Past the limit the value is written as null, like a malformed
 * one
 * (docs/ndjson.md#exact-rules-what-the-writer-does-and-the-tests-hold-it-to).
 */
#define RAW_GROWTH 16
#define RAW_GROWTH_SLACK 4096

/* Room for n more bytes at the end of out, or NULL once out is oom. */
static char *
wr_room(struct buf *out, size_t n)
{
    if (buf_reserve(out, n) == -1)
        return NULL;
    return out->p + out->len;
}

static void
wr_double(struct buf *out, double v)
{
    char *q = wr_room(out, FMT_DOUBLE_MAX);
    if (q != NULL)
        out->len += fmt_double(q, v);
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
    if (q != NULL)
        out->len += fmt_i64(q, v);
}

static void
wr_str(struct buf *out, const char *s, size_t n)
{
    char *q = wr_room(out, fmt_json_str_bound(n));
    if (q != NULL)
        out->len = (size_t)(fmt_json_str(q, s, n) - out->p);
}

static void
wr_hexstr(struct buf *out, const uint8_t *p, size_t n)
{
    buf_putc(out, '"');
    buf_put_hex(out, p, n);
    buf_putc(out, '"');
}

/* ---- generic values (extra_keys, unknown fields) as JSON ---- */

/* A value mpk_next() has read whole: a scalar or a str/bin/ext body. */
static void
wr_scalar(struct buf *out, const struct mpk_val *v)
{
    switch (v->type) {
    case MPK_NIL:
        WR_LIT(out, "null");
        break;
    case MPK_BOOL:
        if (v->v.b)
            WR_LIT(out, "true");
        else
            WR_LIT(out, "false");
        break;
    case MPK_UINT:
        wr_u64(out, v->v.u);
        break;
    case MPK_INT:
        wr_i64(out, v->v.i);
        break;
    case MPK_FLOAT:
        wr_double(out, v->v.f);
        break;
    case MPK_STR:
        wr_str(out, (const char *)v->p, v->n);
        break;
    case MPK_BIN:
    case MPK_EXT:
        wr_hexstr(out, v->p, v->n);
        break;
    case MPK_ARRAY:
    case MPK_MAP:
        break;
    }
}

static int wr_mp_value(struct buf *out, struct mpk *c, int depth, size_t limit);

/*
 * A map key, which JSON wants as a string (docs/ndjson.md, "Exact rules"):
 * strings as they are, integers in decimal, anything else as its JSON
 * text quoted.
 */
static int
wr_mp_key(struct buf *out, struct mpk *c, int depth, size_t limit)
{
    struct mpk peek = *c;
    struct mpk_val v;

    if (depth > NDJSON_MAX_DEPTH || mpk_next(&peek, &v) != MPK_OK)
        return -1;
    if (v.type == MPK_STR || v.type == MPK_UINT || v.type == MPK_INT) {
        int quote = v.type != MPK_STR;
        *c = peek;
        if (quote)
            buf_putc(out, '"');
        wr_scalar(out, &v);
        if (quote)
            buf_putc(out, '"');
        return 0;
    }
    /* Re-quote the value's JSON text as a string. */
    size_t mark = out->len;
    if (wr_mp_value(out, c, depth, limit) == -1 || out->oom)
        return -1;
    size_t n = out->len - mark;
    if (mark + fmt_json_str_bound(n) > limit)
        return -1;
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
 * Converts exactly one msgpack object at c to JSON, through the bounded
 * mpk cursor.  Returns 0, or -1 when the bytes are truncated, use the
 * reserved byte 0xc1, declare more elements than remain or nest deeper
 * than NDJSON_MAX_DEPTH, or when out would grow past limit (the caller then
 * rolls back and writes null).
 */
static int
wr_mp_value(struct buf *out, struct mpk *c, int depth, size_t limit)
{
    struct mpk_val v;

    if (depth > NDJSON_MAX_DEPTH || mpk_next(c, &v) != MPK_OK)
        return -1;
    if (v.type != MPK_ARRAY && v.type != MPK_MAP) {
        wr_scalar(out, &v);
        return 0;
    }
    int is_map = v.type == MPK_MAP;
    buf_putc(out, is_map ? '{' : '[');
    for (uint32_t k = 0; k < v.n; k++) {
        if (k > 0)
            buf_putc(out, ',');
        if (is_map) {
            if (wr_mp_key(out, c, depth + 1, limit) == -1)
                return -1;
            buf_putc(out, ':');
        }
        if (wr_mp_value(out, c, depth + 1, limit) == -1 || out->len > limit)
            return -1;
    }
    buf_putc(out, is_map ? '}' : ']');
    return 0;
}

/* vLLM's usual extra_keys, [None] * blocks, written directly; 0 if not. */
static int
wr_nulls(struct buf *out, struct kv_raw r)
{
    if (r.n < 2 || r.n > 16 || r.p[0] != (0x90 | (r.n - 1)))
        return 0;
    for (size_t k = 1; k < r.n; k++)
        if (r.p[k] != 0xc0)
            return 0;
    char *q = wr_room(out, 5 * r.n + 1);
    if (q == NULL)
        return 1;
    *q++ = '[';
    for (size_t k = 1; k < r.n; k++) {
        memcpy(q, "null,", 5);
        q += 5;
    }
    q[-1] = ']';
    out->len = (size_t)(q - out->p);
    return 1;
}

void
ndjson_write_raw(struct buf *out, struct kv_raw r)
{
    size_t mark = out->len;
    struct mpk c;

    if (r.p == NULL || r.n == 0) {
        WR_LIT(out, "null");
        return;
    }
    if (r.kind == KV_RAW_JSON) {
        buf_put(out, r.p, r.n);
        return;
    }
    if (wr_nulls(out, r))
        return;
    mpk_init(&c, r.p, r.n);
    if (wr_mp_value(out, &c, 1, mark + RAW_GROWTH * r.n + RAW_GROWTH_SLACK) ==
            -1 ||
        mpk_left(&c) != 0) {
        if (!out->oom)
            out->len = mark;
        WR_LIT(out, "null");
    }
}

/* ---- event bodies ---- */

/*
 * Keys are copied with a constant size from zero-padded slots, so that the
 * copy is a few moves instead of a library call; the room reserved for a
 * line therefore includes KEYPAD bytes of slack.
 */
#define KEYPAD 40

struct padded {
    char s[KEYPAD];
    size_t n;
};

#define PAD(lit)                                                               \
    {                                                                          \
        lit, sizeof(lit) - 1                                                   \
    }

/* ,"name": for each field, in enum kv_field order. */
#define FIELD_KEY(a, id, name, ...) [KV_F_##id] = PAD(",\"" #name "\":"),
static const struct padded field_keys[KV_F_COUNT] = {
    KV_FIELD_LIST(FIELD_KEY, ~)};
#undef FIELD_KEY

/* ,"type":"Name" for each type. */
static const struct padded type_keys[KV_TYPE_COUNT] = {
    [KV_BLOCK_STORED] = PAD(",\"type\":\"BlockStored\""),
    [KV_BLOCK_REMOVED] = PAD(",\"type\":\"BlockRemoved\""),
    [KV_ALL_BLOCKS_CLEARED] = PAD(",\"type\":\"AllBlocksCleared\""),
    [KV_GAP] = PAD(",\"type\":\"gap\""),
    [KV_RESTART] = PAD(",\"type\":\"restart\""),
    [KV_DECODE_ERROR] = PAD(",\"type\":\"decode_error\""),
    [KV_SKIPPED] = PAD(",\"type\":\"skipped\""),
    [KV_SNAPSHOT_BEGIN] = PAD(",\"type\":\"snapshot_begin\""),
    [KV_SNAPSHOT_END] = PAD(",\"type\":\"snapshot_end\""),
    [KV_BLOCK_TRANSFERRED] = PAD(",\"type\":\"BlockTransferred\""),
    [KV_BLOCK_INACTIVE] = PAD(",\"type\":\"BlockInactive\""),
};

static char *
put_padded(char *q, const struct padded *k)
{
    memcpy(q, k->s, KEYPAD);
    return q + k->n;
}

/* a + b, saturating: an impossible size makes the reservation fail. */
static size_t
add_sat(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

static size_t
mul_sat(size_t a, size_t b)
{
    return b != 0 && a > SIZE_MAX / b ? SIZE_MAX : a * b;
}

/* A hash as "digits" (22 bytes of room). */
static char *
put_hash(char *q, uint64_t v)
{
    *q++ = '"';
    q += fmt_u64(q, v);
    *q++ = '"';
    return q;
}

/*
 * Per hash: a quote, 20 digits, a quote, a comma; fmt_u64 needs 20 bytes of
 * room after the quote, which the next hash's budget (or the 2 bytes of
 * brackets plus the caller's slack) covers.
 */
static char *
put_hashes(char *q, const struct kv_hash *h, size_t n)
{
    *q++ = '[';
    for (size_t k = 0; k < n; k++) {
        if (k > 0)
            *q++ = ',';
        q = put_hash(q, h[k].v);
    }
    *q++ = ']';
    return q;
}

/* 10 digits and a comma per value, plus "[]," around each pair. */
static char *
put_tokens(char *q, const struct kv_event *ev)
{
    const uint32_t *t = ev->tokens;

    *q++ = '[';
    if (ev->token_pairs) {
        for (size_t k = 0; k < ev->n_tokens; k++) {
            if (k > 0)
                *q++ = ',';
            *q++ = '[';
            q += fmt_u32_small(q, t[2 * k]);
            *q++ = ',';
            q += fmt_u32_small(q, t[2 * k + 1]);
            *q++ = ']';
        }
    } else if (ev->n_tokens > 0) {
        q = fmt_u32_list(q, t, ev->n_tokens) - 1; /* no comma at the end */
    }
    *q++ = ']';
    return q;
}

/* Room a field's value may take (RAW values are written separately). */
static size_t
field_bound(const struct kv_event *ev, enum kv_field f, uint32_t live)
{
    if (!(live & KV_BIT(f)))
        return 4; /* null */
    switch (kv_fields[f].kind) {
    case KV_K_HASHES:
        return add_sat(mul_sat(ev->n_hashes, 23), 24);
    case KV_K_HASH:
        return 24;
    case KV_K_TOKENS:
        if (ev->token_mixed)
            return 0; /* written from raw[], like a RAW field */
        return add_sat(mul_sat(ev->n_tokens, ev->token_pairs ? 28 : 14), 12);
    case KV_K_INT:
        return 24;
    case KV_K_STR:
        return fmt_json_str_bound(ev->str[f].n);
    case KV_K_RAW:
        return 0;
    case KV_K_HASHV:
        return 24;
    }
    return 0;
}

/* A value into room reserved by field_bound(). */
static char *
put_field(char *q, const struct kv_event *ev, enum kv_field f)
{
    switch (kv_fields[f].kind) {
    case KV_K_HASHES:
        return put_hashes(q, ev->hashes, ev->n_hashes);
    case KV_K_HASH:
        return put_hash(q, ev->parent.v);
    case KV_K_TOKENS:
        return put_tokens(q, ev);
    case KV_K_INT:
        /*
         * lora_id is the one signed field; the others are unsigned on the
         * wire and kept as their u64 bit pattern.
         */
        if (f == KV_F_LORA_ID)
            return q + fmt_i64(q, ev->num[f]);
        return q + fmt_u64(q, (uint64_t)ev->num[f]);
    case KV_K_STR:
        return fmt_json_str(q, ev->str[f].p, ev->str[f].n);
    case KV_K_RAW:
        break;
    case KV_K_HASHV:
        return put_hash(q, (uint64_t)ev->num[f]);
    }
    return q;
}

/* block_digests, parent_block_digest and unknown fields (rare). */
static void
wr_engine_extras(struct buf *out, const struct kv_event *ev, uint32_t live)
{
    int any_digest = 0;
    for (size_t k = 0;
         (live & KV_BIT(KV_F_BLOCK_HASHES)) && k < ev->n_hashes && !any_digest;
         k++)
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
    if ((live & KV_BIT(KV_F_PARENT_BLOCK_HASH)) && ev->parent.digest != NULL) {
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
        ndjson_write_raw(out, u->val);
    }
}

/*
 * The fields of an engine event: written when present, and the required
 * ones always (null when absent).  Room for everything but generic values
 * is reserved once; a generic value goes through the buffer API and the
 * room is reserved again after it.
 */
static void
wr_engine_body(struct buf *out, const struct kv_event *ev)
{
    uint32_t want = ev->present | kv_required_fields(ev->type);
    uint32_t live = ev->present & ~ev->isnull;
    size_t bound = KEYPAD + 2;

    want &= KV_BIT(KV_F_COUNT) - 1;
    for (uint32_t m = want; m != 0; m &= m - 1) {
        int f = __builtin_ctz(m);
        bound = add_sat(bound, add_sat(KEYPAD, field_bound(ev, f, live)));
    }
    char *q = wr_room(out, bound);
    if (q == NULL)
        return;
    for (uint32_t m = want; m != 0; m &= m - 1) {
        int f = __builtin_ctz(m);
        q = put_padded(q, &field_keys[f]);
        if (!(live & KV_BIT(f))) {
            memcpy(q, "null", 4);
            q += 4;
        } else if (kv_fields[f].kind == KV_K_RAW ||
                   (f == KV_F_TOKEN_IDS && ev->token_mixed)) {
            out->len = (size_t)(q - out->p);
            ndjson_write_raw(out, ev->raw[f]);
            if ((q = wr_room(out, bound)) == NULL)
                return;
        } else {
            q = put_field(q, ev, (enum kv_field)f);
        }
    }
    int extras =
        ev->n_unknown > 0 ||
        ((live & KV_BIT(KV_F_PARENT_BLOCK_HASH)) && ev->parent.digest != NULL);
    for (size_t k = 0;
         !extras && (live & KV_BIT(KV_F_BLOCK_HASHES)) && k < ev->n_hashes; k++)
        extras = ev->hashes[k].digest != NULL;
    if (extras) {
        out->len = (size_t)(q - out->p);
        wr_engine_extras(out, ev, live);
        WR_LIT(out, "}\n");
        return;
    }
    memcpy(q, "}\n", 2);
    out->len = (size_t)(q + 2 - out->p);
}

static int
is_engine(enum kv_type t)
{
    return kv_type_is_engine(t);
}

/* Everything after "type":"...", up to and including the newline. */
static void
wr_body(struct buf *out, const struct kv_event *ev)
{
    switch (ev->type) {
    case KV_BLOCK_STORED:
    case KV_BLOCK_REMOVED:
    case KV_ALL_BLOCKS_CLEARED:
    case KV_BLOCK_TRANSFERRED:
    case KV_BLOCK_INACTIVE:
        wr_engine_body(out, ev);
        return;
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

static void
wr_type(struct buf *out, enum kv_type t)
{
    if ((unsigned)t >= KV_TYPE_COUNT) {
        WR_LIT(out, ",\"type\":\"unknown\"");
        return;
    }
    char *q = wr_room(out, KEYPAD);
    if (q != NULL)
        out->len = (size_t)(put_padded(q, &type_keys[t]) - out->p);
}

/* {"pod":…,"model":…,"dp_rank":…,"stream":…  (without seq, i, ts, type). */
static void
wr_env_start(struct buf *out, struct kv_str pod, struct kv_str model,
             int has_rank, int64_t rank, struct kv_str stream)
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
    if (stream.p != NULL) {
        WR_LIT(out, ",\"stream\":");
        wr_str(out, stream.p, stream.n);
    }
}

void
ndjson_write_event(struct buf *out, const struct kv_env *env,
                   const struct kv_event *ev)
{
    wr_env_start(out, env->pod, env->model, env->has_rank, env->rank,
                 env->stream);
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
        wr_double(out, env->ts);
    }
    wr_type(out, ev->type);
    wr_body(out, ev);
}

void
ndjson_write_batch(struct buf *out, const struct ndjson_source *src,
                   const struct kv_batch *b)
{
    /* ,"ts":X is at most 6 + 24 bytes; copied with a constant size. */
    char ts[48] = {0};
    size_t ts_len = 0;

    if (b->n_events == 0)
        return;

    /* Format ,"ts":X once, at the end of out, and keep a copy. */
    if (b->has_ts) {
        size_t mark = out->len;
        WR_LIT(out, ",\"ts\":");
        wr_double(out, b->ts);
        if (out->oom)
            return;
        ts_len = out->len - mark;
        if (ts_len > 32)
            ts_len = 32; /* cannot happen: %.17g is at most 24 */
        memcpy(ts, out->p + mark, ts_len);
        out->len = mark;
    }

    /* The first line's {"pod":…,"seq":N (no seq for a batch without one)
     * is copied for every later line. */
    size_t pre_off = out->len;
    wr_env_start(out, src->pod, src->model, b->has_rank, b->rank, src->stream);
    size_t seq_off = out->len;
    WR_LIT(out, ",\"seq\":");
    wr_u64(out, b->seq);
    /* Taken back rather than skipped: vLLM's path stays as it was. */
    if (b->no_seq && !out->oom)
        out->len = seq_off;
    size_t pre_len = out->len - pre_off;

    for (size_t k = 0; k < b->n_events; k++) {
        const struct kv_event *ev = &b->events[k];
        char *q = wr_room(out, pre_len + 16 + 32 + KEYPAD);
        if (q == NULL)
            return;
        if (k > 0) {
            memcpy(q, out->p + pre_off, pre_len);
            q += pre_len;
        }
        if (is_engine(ev->type)) {
            memcpy(q, ",\"i\":", 5);
            q += 5 + fmt_u32(q + 5, ev->index);
        }
        memcpy(q, ts, 32);
        q += ts_len;
        if ((unsigned)ev->type < KV_TYPE_COUNT) {
            q = put_padded(q, &type_keys[ev->type]);
            out->len = (size_t)(q - out->p);
        } else {
            out->len = (size_t)(q - out->p);
            wr_type(out, ev->type);
        }
        wr_body(out, ev);
    }
}

/*
 * wire.c - the engines' msgpack payloads -> struct kv_batch (see wire.h and
 * docs/protocol.md#events).
 *
 * Decoding is one pass over the payload with the mpk cursor.  An event that
 * fails a check is re-skipped from its first byte: if the skip succeeds the
 * payload is well formed and only that event is lost (a decode_error record
 * takes its place); if the skip fails the payload is truncated or hostile
 * and the whole batch is lost.
 */
#include "wire.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mpk.h"

/* Decoder state for one payload. */
struct dec {
    struct mpk c;
    const struct wire_opts *opts;
    struct arena *arena;
    size_t max_events;
    size_t max_tokens;
    size_t len;
    int in_map;     /* decoding a tagged-map event */
    unsigned shape; /* WIRE_SHAPE_* seen so far */
    char msg[128];  /* why the current event failed */
};

/* The unknown-field list of the event being decoded. */
struct unk {
    struct kv_unknown *v;
    size_t n, cap;
};

static int fail(struct dec *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
fail(struct dec *d, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(d->msg, sizeof d->msg, fmt, ap);
    va_end(ap);
    return -1;
}

static int
wrong_type(struct dec *d, enum kv_field f)
{
    return fail(d, "%s: wrong type", kv_fields[f].name);
}

static int
str_eq(const struct mpk_val *v, const char *s, size_t n)
{
    return v->n == n && memcmp(v->p, s, n) == 0;
}

/* The engine event types a tag may name (stream record names never). */
static int
engine_type(const struct mpk_val *v, enum kv_type *t)
{
    if (str_eq(v, "BlockStored", 11))
        *t = KV_BLOCK_STORED;
    else if (str_eq(v, "BlockRemoved", 12))
        *t = KV_BLOCK_REMOVED;
    else if (str_eq(v, "AllBlocksCleared", 16))
        *t = KV_ALL_BLOCKS_CLEARED;
    else if (str_eq(v, "BlockTransferred", 16))
        *t = KV_BLOCK_TRANSFERRED;
    else if (str_eq(v, "BlockInactive", 13))
        *t = KV_BLOCK_INACTIVE;
    else
        return -1;
    return 0;
}

/* Converts a hash value that has been read; 0 or -1 (message set). */
static int
hash_from(struct dec *d, const struct mpk_val *v, struct kv_hash *h,
          enum kv_field f)
{
    switch (v->type) {
    case MPK_UINT:
        h->v = v->v.u;
        h->digest = NULL;
        h->digest_len = 0;
        return 0;
    case MPK_INT:
        h->v = (uint64_t)v->v.i;
        h->digest = NULL;
        h->digest_len = 0;
        return 0;
    case MPK_BIN: {
        if (v->n < 8)
            return fail(d, "%s: digest shorter than 8 bytes",
                        kv_fields[f].name);
        /* vLLM's own int form: the last 8 bytes, big-endian. */
        h->v = mpk_be64(v->p + v->n - 8);
        h->digest = v->p;
        h->digest_len = v->n;
        return 0;
    }
    default:
        return wrong_type(d, f);
    }
}

static int
dec_hashes(struct dec *d, struct kv_event *ev)
{
    struct mpk_val v;

    if (mpk_next(&d->c, &v) != MPK_OK || v.type != MPK_ARRAY)
        return wrong_type(d, KV_F_BLOCK_HASHES);
    if (v.n > WIRE_MAX_HASHES)
        return fail(d, "block_hashes: too many hashes");
    struct kv_hash *h = NULL;
    if (v.n > 0) {
        h = arena_alloc(d->arena, v.n * sizeof *h);
        if (h == NULL)
            return fail(d, "block_hashes: out of memory");
    }
    for (uint32_t i = 0; i < v.n; i++) {
        const uint8_t *p = d->c.p;
        /* The common case, a u64 hash: cf + 8 bytes. */
        if (d->c.end - p >= 9 && p[0] == 0xcf) {
            h[i].v = mpk_be64(p + 1);
            h[i].digest = NULL;
            h[i].digest_len = 0;
            d->c.p = p + 9;
            continue;
        }
        struct mpk_val e;
        if (mpk_next(&d->c, &e) != MPK_OK)
            return wrong_type(d, KV_F_BLOCK_HASHES);
        if (hash_from(d, &e, &h[i], KV_F_BLOCK_HASHES) == -1)
            return -1;
    }
    ev->hashes = h;
    ev->n_hashes = v.n;
    return 0;
}

/*
 * Reads one token id in the common encodings (fixint, cc, cd, ce: enough
 * for vocabularies of any size) and advances *pp; 0 when the next token is
 * something else (or too close to the end) for the slow path.
 */
static inline int
token_fast(const uint8_t **pp, const uint8_t *end, uint32_t *out)
{
    const uint8_t *p = *pp;

    if (p < end && p[0] <= 0x7f) {
        *out = p[0];
        *pp = p + 1;
        return 1;
    }
    if (end - p < 5)
        return 0;
    switch (p[0]) {
    case 0xcc:
        *out = p[1];
        *pp = p + 2;
        return 1;
    case 0xcd:
        *out = mpk_be16(p + 1);
        *pp = p + 3;
        return 1;
    case 0xce:
        *out = mpk_be32(p + 1);
        *pp = p + 5;
        return 1;
    default:
        return 0;
    }
}

/*
 * Reads two token ids when both are cd or ce (16- or 32-bit), the two
 * forms a vocabulary past 65,536 mixes in any order, and advances *pp;
 * 0 for anything else.  16 bytes must be readable at *pp.  A branch on
 * each id's form would be mispredicted about half the time, and reading
 * the second id's form only after the first's would chain two loads per
 * id: both places the second form can be (3 or 5 bytes on) are read with
 * the first, and the choices are arithmetic.
 */
static inline int
token_pair(const uint8_t **pp, uint32_t *out)
{
    const uint8_t *p = *pp;
    unsigned b0 = p[0], c3 = p[3], c5 = p[5];
    unsigned wide0 = ~b0 & 1; /* ce: 1, cd: 0 */
    unsigned b1 = c3 ^ ((c3 ^ c5) & (0u - wide0));
    unsigned wide1 = ~b1 & 1;

    if (b0 - 0xcd > 1u || b1 - 0xcd > 1u)
        return 0;
    const uint8_t *q = p + 3 + 2 * wide0;
    out[0] = mpk_be32(p + 1) >> (16 - 16 * wide0);
    out[1] = mpk_be32(q + 1) >> (16 - 16 * wide1);
    *pp = q + 3 + 2 * wide1;
    return 1;
}

/*
 * Reads one token id in any encoding; 0 or -1 (message set).  With mixed
 * non-NULL a string is accepted as a placeholder (TensorRT-LLM's
 * multimodal tokens, docs/protocol.md#tensorrt-llm) and sets *mixed.
 */
static int
dec_token(struct dec *d, uint32_t *out, int *mixed)
{
    struct mpk_val v;

    if (token_fast(&d->c.p, d->c.end, out))
        return 0;
    if (mpk_next(&d->c, &v) != MPK_OK)
        return wrong_type(d, KV_F_TOKEN_IDS);
    if (v.type == MPK_STR && mixed != NULL) {
        *out = kv_token_placeholder((const char *)v.p, v.n);
        *mixed = 1;
        return 0;
    }
    if (v.type == MPK_INT || (v.type == MPK_UINT && v.v.u > UINT32_MAX))
        return fail(d, "token_ids: token out of range");
    if (v.type != MPK_UINT)
        return wrong_type(d, KV_F_TOKEN_IDS);
    *out = (uint32_t)v.v.u;
    return 0;
}

static int
dec_tokens(struct dec *d, struct kv_event *ev)
{
    const uint8_t *list = d->c.p;
    struct mpk_val v;
    int mixed = 0;

    if (mpk_next(&d->c, &v) != MPK_OK || v.type != MPK_ARRAY)
        return wrong_type(d, KV_F_TOKEN_IDS);
    if (v.n > d->max_tokens)
        return fail(d, "token_ids: too many tokens");
    ev->tokens = NULL;
    ev->n_tokens = 0;
    ev->token_pairs = 0;
    ev->token_mixed = 0;
    if (v.n == 0)
        return 0;
    /* SGLang bigram pages: every element is a [a, b] pair. */
    const uint8_t b0 = *d->c.p;
    int pairs = (b0 >= 0x90 && b0 <= 0x9f) || b0 == 0xdc || b0 == 0xdd;
    uint32_t *t =
        arena_alloc(d->arena, (pairs ? 2 : 1) * (size_t)v.n * sizeof *t);
    if (t == NULL)
        return fail(d, "token_ids: out of memory");
    if (!pairs) {
        const uint8_t *p = d->c.p, *end = d->c.end;
        for (uint32_t i = 0; i < v.n; i++) {
            if (i + 1 < v.n && end - p >= 16 && token_pair(&p, &t[i])) {
                i++;
                continue;
            }
            if (token_fast(&p, end, &t[i]))
                continue;
            d->c.p = p;
            if (dec_token(d, &t[i], &mixed) == -1)
                return -1;
            p = d->c.p;
        }
        d->c.p = p;
        if (mixed) {
            ev->raw[KV_F_TOKEN_IDS].p = list;
            ev->raw[KV_F_TOKEN_IDS].n = (size_t)(p - list);
            ev->raw[KV_F_TOKEN_IDS].kind = KV_RAW_MSGPACK;
        }
    } else {
        for (uint32_t i = 0; i < v.n; i++) {
            struct mpk_val pv;
            if (mpk_next(&d->c, &pv) != MPK_OK || pv.type != MPK_ARRAY ||
                pv.n != 2)
                return fail(d, "token_ids: malformed pair");
            if (dec_token(d, &t[2 * i], NULL) == -1 ||
                dec_token(d, &t[2 * i + 1], NULL) == -1)
                return -1;
        }
    }
    ev->tokens = t;
    ev->n_tokens = v.n;
    ev->token_pairs = pairs;
    ev->token_mixed = mixed;
    return 0;
}

/* The fields whose value may be nil (fields.def's nullable column). */
#define NULLABLE(a, id, name, kind, nullable, ...)                             \
    | ((nullable) ? KV_BIT(KV_F_##id) : 0u)
static const uint32_t nullable_fields = 0u KV_FIELD_LIST(NULLABLE, ~);
#undef NULLABLE

/*
 * Mooncake's master sends nil for the token ids and block size it does not
 * know (docs/protocol.md#mooncake); only map events do that, and array
 * events keep vLLM's rule that these slots hold a value.
 */
static const uint32_t map_nullable_fields =
    KV_BIT(KV_F_TOKEN_IDS) | KV_BIT(KV_F_BLOCK_SIZE);

/* Whether a nil is an acceptable value for the field. */
static int
nullable(const struct dec *d, enum kv_field f)
{
    uint32_t ok = nullable_fields | (d->in_map ? map_nullable_fields : 0u);

    return (ok & KV_BIT(f)) != 0;
}

/*
 * Decodes the value at the cursor into field f of ev.  Sets the present and
 * isnull bits only on success.  Returns 0, or -1 with the reason in d->msg
 * (the cursor is then somewhere inside the value).
 */
static int
dec_field(struct dec *d, struct kv_event *ev, enum kv_field f)
{
    const uint8_t *start = d->c.p;
    struct mpk_val v;

    if (start < d->c.end && *start == 0xc0) {
        if (!nullable(d, f))
            return wrong_type(d, f);
        d->c.p++;
        ev->present |= KV_BIT(f);
        ev->isnull |= KV_BIT(f);
        return 0;
    }
    switch (kv_fields[f].kind) {
    case KV_K_HASHES:
        if (dec_hashes(d, ev) == -1)
            return -1;
        break;
    case KV_K_TOKENS:
        if (dec_tokens(d, ev) == -1)
            return -1;
        break;
    case KV_K_HASH:
        if (mpk_next(&d->c, &v) != MPK_OK)
            return wrong_type(d, f);
        if (hash_from(d, &v, &ev->parent, f) == -1)
            return -1;
        break;
    case KV_K_INT:
        if (mpk_next(&d->c, &v) != MPK_OK)
            return wrong_type(d, f);
        if (v.type == MPK_UINT && v.v.u <= INT64_MAX)
            ev->num[f] = (int64_t)v.v.u;
        else if (v.type == MPK_INT && f == KV_F_LORA_ID)
            ev->num[f] = v.v.i;
        else
            return wrong_type(d, f);
        break;
    case KV_K_STR:
        if (mpk_next(&d->c, &v) != MPK_OK || v.type != MPK_STR)
            return wrong_type(d, f);
        ev->str[f].p = (const char *)v.p;
        ev->str[f].n = v.n;
        break;
    case KV_K_HASHV: {
        struct kv_hash h;
        if (mpk_next(&d->c, &v) != MPK_OK)
            return wrong_type(d, f);
        if (hash_from(d, &v, &h, f) == -1)
            return -1;
        ev->num[f] = (int64_t)h.v;
        break;
    }
    case KV_K_RAW:
        /*
         * Kept verbatim, converted by the writer: extra_keys and mm_keys
         * are arrays, the other generic fields any value.
         */
        if (mpk_next(&d->c, &v) != MPK_OK ||
            (v.type != MPK_ARRAY &&
             (f == KV_F_EXTRA_KEYS || f == KV_F_MM_KEYS)))
            return wrong_type(d, f);
        d->c.p = start;
        if (mpk_skip(&d->c) != MPK_OK)
            return wrong_type(d, f);
        ev->raw[f].p = start;
        ev->raw[f].n = (size_t)(d->c.p - start);
        ev->raw[f].kind = KV_RAW_MSGPACK;
        break;
    }
    ev->present |= KV_BIT(f);
    ev->isnull &= ~KV_BIT(f);
    return 0;
}

/*
 * SGLang PR #30827 put a metadata map {"cache_salt": str} at array index 7,
 * and #37482 made it {"cache_salt"?: str, "session_id"?: str} with unset
 * keys left out; other SGLang builds put the salt there as a plain str.
 * A map with any other key fails, so that the caller keeps it as "@7".
 */
static int
dec_sglang_salt(struct dec *d, struct kv_event *ev)
{
    const uint8_t *start = d->c.p;
    struct mpk_val v;

    if (mpk_next(&d->c, &v) != MPK_OK)
        return wrong_type(d, KV_F_CACHE_SALT);
    if (v.type != MPK_MAP) {
        d->c.p = start;
        return dec_field(d, ev, KV_F_CACHE_SALT);
    }
    d->shape |= WIRE_SHAPE_SGLANG;
    for (uint32_t i = 0; i < v.n; i++) {
        struct mpk_val k;
        if (mpk_next(&d->c, &k) != MPK_OK)
            return wrong_type(d, KV_F_CACHE_SALT);
        if (k.type == MPK_STR && str_eq(&k, "cache_salt", 10)) {
            if (dec_field(d, ev, KV_F_CACHE_SALT) == -1)
                return -1;
            continue;
        }
        if (k.type == MPK_STR && str_eq(&k, "session_id", 10)) {
            if (dec_field(d, ev, KV_F_SESSION_ID) == -1)
                return -1;
            continue;
        }
        /* Another key: the map is not one we know; "@7" keeps it whole. */
        return wrong_type(d, KV_F_CACHE_SALT);
    }
    return 0;
}

/*
 * Whether array slot i holds SGLang's metadata map where vLLM's table has
 * lora_name: under every --engine but a strict vllm, a map there cannot
 * be a LoRA name (docs/protocol.md#which-engine-auto).
 */
static int
sglang_map_at(const struct dec *d, enum kv_engine eng, uint32_t i)
{
    const uint8_t b = d->c.p < d->c.end ? *d->c.p : 0;

    return i == 7 && eng != KV_ENGINE_VLLM &&
           ((b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf);
}

/* Appends an unknown field; cap is the event's element count. */
static int
unk_add(struct dec *d, struct kv_event *ev, struct unk *u, size_t cap,
        struct kv_str key, int pos, const uint8_t *p, size_t n)
{
    if (pos < 0) {
        /* Duplicate named keys: the last value wins, at the first place. */
        for (size_t i = 0; i < u->n; i++) {
            if (u->v[i].pos < 0 && u->v[i].key.n == key.n &&
                memcmp(u->v[i].key.p, key.p, key.n) == 0) {
                u->v[i].val.p = p;
                u->v[i].val.n = n;
                u->v[i].val.kind = KV_RAW_MSGPACK;
                return 0;
            }
        }
    }
    if (u->v == NULL) {
        u->v = arena_alloc(d->arena, cap * sizeof *u->v);
        if (u->v == NULL)
            return fail(d, "out of memory");
        u->cap = cap;
    }
    if (u->n >= u->cap)
        return fail(d, "too many unknown fields");
    struct kv_unknown *x = &u->v[u->n++];
    x->key = key;
    x->pos = pos;
    x->val.p = p;
    x->val.n = n;
    x->val.kind = KV_RAW_MSGPACK;
    ev->unknown = u->v;
    ev->n_unknown = u->n;
    return 0;
}

/*
 * Decodes a legacy array event of n elements whose header has been read.
 * Returns 0, 1 for an unknown tag (in *tag), or -1 (reason in d->msg).
 */
static int
dec_array_event(struct dec *d, struct kv_event *ev, uint32_t n,
                struct kv_str *tag)
{
    struct mpk_val v;
    struct unk u = {NULL, 0, 0};

    if (n == 0)
        return fail(d, "empty array");
    if (mpk_next(&d->c, &v) != MPK_OK || v.type != MPK_STR)
        return fail(d, "tag is not a string");
    if (engine_type(&v, &ev->type) == -1) {
        tag->p = (const char *)v.p;
        tag->n = v.n;
        return 1;
    }
    if (ev->type == KV_BLOCK_STORED && n < 6)
        return fail(d, "BlockStored array has fewer than 6 elements");
    if (ev->type == KV_BLOCK_REMOVED && n < 2)
        return fail(d, "BlockRemoved array has fewer than 2 elements");
    if (ev->type == KV_BLOCK_TRANSFERRED && n < 4)
        return fail(d, "BlockTransferred array has fewer than 4 elements");
    uint32_t mandatory = ev->type == KV_BLOCK_STORED         ? 4
                         : ev->type == KV_ALL_BLOCKS_CLEARED ? 0
                                                             : 1;
    enum kv_engine eng = d->opts != NULL ? d->opts->engine : KV_ENGINE_VLLM;
    for (uint32_t i = 1; i < n; i++) {
        const uint8_t *start = d->c.p;
        int f = kv_field_at_slot(ev->type, eng, i);
        if (f == KV_F_LORA_NAME && sglang_map_at(d, eng, i))
            f = KV_F_CACHE_SALT;
        if (f >= 0) {
            int rc;
            if (f == KV_F_CACHE_SALT)
                rc = dec_sglang_salt(d, ev);
            else
                rc = dec_field(d, ev, (enum kv_field)f);
            if (rc == 0)
                continue;
            if (i <= mandatory)
                return -1;
            /* A fork's shape (docs/protocol.md#events): keep it as "@N". */
            d->c.p = start;
        }
        if (mpk_skip(&d->c) != MPK_OK)
            return fail(d, "truncated");
        struct kv_str nokey = {"", 0};
        if (unk_add(d, ev, &u, n, nokey, (int)i, start,
                    (size_t)(d->c.p - start)) == -1)
            return -1;
    }
    return 0;
}

/*
 * Decodes an event packed into a byte string (llm-d's storage-tier
 * publisher, docs/protocol.md#llm-d-storage-tier): the bytes hold exactly
 * one array event, and there a parent of 0 means no parent.  The outer
 * cursor is left after the byte string whatever happens.  Returns what
 * dec_array_event returns.
 */
static int
dec_packed_event(struct dec *d, struct kv_event *ev, const struct mpk_val *bin,
                 struct kv_str *tag)
{
    const struct mpk outer = d->c;
    struct mpk_val v;
    int rc;

    mpk_init(&d->c, bin->p, bin->n);
    if (mpk_next(&d->c, &v) != MPK_OK || v.type != MPK_ARRAY)
        rc = fail(d, "packed event is not an array");
    else if ((rc = dec_array_event(d, ev, v.n, tag)) == 0 && d->c.p != d->c.end)
        rc = fail(d, "trailing bytes after packed event");
    d->c = outer;
    if (rc == 0 && (ev->present & KV_BIT(KV_F_PARENT_BLOCK_HASH)) &&
        !(ev->isnull & KV_BIT(KV_F_PARENT_BLOCK_HASH)) && ev->parent.v == 0 &&
        ev->parent.digest == NULL)
        ev->isnull |= KV_BIT(KV_F_PARENT_BLOCK_HASH);
    return rc;
}

/* The fields each map event may carry by name (fields.def's map column). */
#define MAP_BIT(t, id, name, kind, nullable, required, map, ...)               \
    | ((KV_TYPES_##map) & (t) ? KV_BIT(KV_F_##id) : 0u)
static const uint32_t map_fields[] = {
    [KV_BLOCK_STORED] = 0u KV_FIELD_LIST(MAP_BIT, KV_TYPES_S),
    [KV_BLOCK_REMOVED] = 0u KV_FIELD_LIST(MAP_BIT, KV_TYPES_R),
    [KV_ALL_BLOCKS_CLEARED] = 0u KV_FIELD_LIST(MAP_BIT, KV_TYPES_C),
    [KV_BLOCK_TRANSFERRED] = 0u KV_FIELD_LIST(MAP_BIT, KV_TYPES_T),
    [KV_BLOCK_INACTIVE] = 0u KV_FIELD_LIST(MAP_BIT, KV_TYPES_I),
};
#undef MAP_BIT

/* Whether a map event of type t may carry field f by name. */
static int
map_known(enum kv_type t, enum kv_field f)
{
    return (unsigned)t < sizeof map_fields / sizeof map_fields[0] &&
           (map_fields[t] & KV_BIT(f)) != 0;
}

/*
 * Mooncake's event_type ("stored", "removed", "cleared") as the tag its
 * legacy "type" key would have carried, for a map without that key
 * (docs/protocol.md#mooncake).  0, or -1 for another value.
 */
static int
mooncake_type(const struct mpk_val *v, struct mpk_val *type)
{
    static const char *const tags[][2] = {
        {"stored", "BlockStored"},
        {"removed", "BlockRemoved"},
        {"cleared", "AllBlocksCleared"},
    };

    for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++) {
        if (v->n > 0 && str_eq(v, tags[i][0], strlen(tags[i][0]))) {
            type->type = MPK_STR;
            type->p = (const uint8_t *)tags[i][1];
            type->n = (uint32_t)strlen(tags[i][1]);
            return 0;
        }
    }
    return -1;
}

/*
 * Finds the last "type" key of a map of n entries whose body starts at the
 * cursor.  Returns 0 with its value in *type, or -1 (reason in d->msg).
 */
static int
find_type(struct dec *d, uint32_t n, struct mpk_val *type)
{
    int found = 0, ok = 0;
    struct mpk_val alt = {0};

    for (uint32_t i = 0; i < n; i++) {
        struct mpk_val k;
        const uint8_t *kstart = d->c.p;
        if (mpk_next(&d->c, &k) != MPK_OK)
            return fail(d, "truncated");
        if (k.type == MPK_STR && str_eq(&k, "type", 4)) {
            found = 1;
            const uint8_t *vstart = d->c.p;
            ok = mpk_next(&d->c, type) == MPK_OK && type->type == MPK_STR;
            d->c.p = vstart;
        } else if (k.type == MPK_STR && str_eq(&k, "event_type", 10)) {
            const uint8_t *vstart = d->c.p;
            d->shape |= WIRE_SHAPE_MOONCAKE;
            if (mpk_next(&d->c, &alt) != MPK_OK || alt.type != MPK_STR)
                alt.n = 0;
            d->c.p = vstart;
        } else {
            d->c.p = kstart;
            if (mpk_skip(&d->c) != MPK_OK)
                return fail(d, "truncated");
        }
        if (mpk_skip(&d->c) != MPK_OK)
            return fail(d, "truncated");
    }
    if (!found && mooncake_type(&alt, type) == 0)
        return 0;
    if (!found || !ok)
        return fail(d, "no string type key");
    return 0;
}

/*
 * Decodes a tagged-map event of n entries whose header has been read.
 * Returns 0, 1 for an unknown tag (in *tag), or -1 (reason in d->msg).
 */
static int
dec_map_event(struct dec *d, struct kv_event *ev, uint32_t n,
              struct kv_str *tag)
{
    const uint8_t *body = d->c.p;
    const uint32_t index = ev->index;
    struct mpk_val k, type;
    int guessed = 0;

    /*
     * msgspec writes "type" first, so take it from there; duplicate keys
     * are resolved by the last one, which the field pass below checks.
     */
    if (n > 0 && mpk_next(&d->c, &k) == MPK_OK && k.type == MPK_STR &&
        str_eq(&k, "type", 4) && mpk_next(&d->c, &type) == MPK_OK &&
        type.type == MPK_STR) {
        guessed = 1;
    } else {
        d->c.p = body;
        if (find_type(d, n, &type) == -1)
            return -1;
    }
    /* The caller handed over a fresh event; later passes start again. */
    for (int pass = 0;; pass++) {
        d->c.p = body;
        if (pass > 0) {
            kv_event_reset(ev, KV_BLOCK_STORED);
            ev->index = index;
        }
        if (engine_type(&type, &ev->type) == -1) {
            if (guessed) {
                guessed = 0;
                if (find_type(d, n, &type) == -1)
                    return -1;
                continue;
            }
            tag->p = (const char *)type.p;
            tag->n = type.n;
            return 1;
        }
        struct unk u = {NULL, 0, 0};
        struct mpk_val last = type;
        int last_ok = 1;
        for (uint32_t i = 0; i < n; i++) {
            if (mpk_next(&d->c, &k) != MPK_OK)
                return fail(d, "truncated");
            if (k.type != MPK_STR)
                return fail(d, "map key is not a string");
            const uint8_t *start = d->c.p;
            enum kv_field f;
            if (str_eq(&k, "type", 4)) {
                last_ok =
                    mpk_next(&d->c, &last) == MPK_OK && last.type == MPK_STR;
                d->c.p = start;
                if (mpk_skip(&d->c) != MPK_OK)
                    return fail(d, "truncated");
                continue;
            }
            if (kv_field_parse((const char *)k.p, k.n, &f) == 0 &&
                map_known(ev->type, f)) {
                if (dec_field(d, ev, f) == -1)
                    return -1;
                continue;
            }
            if (mpk_skip(&d->c) != MPK_OK)
                return fail(d, "truncated");
            struct kv_str key = {(const char *)k.p, k.n};
            if (unk_add(d, ev, &u, n, key, -1, start,
                        (size_t)(d->c.p - start)) == -1)
                return -1;
        }
        if (!last_ok)
            return fail(d, "no string type key");
        if (last.n == type.n && memcmp(last.p, type.p, type.n) == 0)
            return 0;
        /* A later "type" disagrees with the first: the last one wins. */
        type = last;
        guessed = 0;
    }
}

/* Fields that only some producers send (docs/protocol.md#producers). */
static const uint32_t producer_fields = KV_BIT(KV_F_MM_KEYS);

/* What one decoded event shows of its producer. */
static unsigned
event_shape(const struct kv_event *ev)
{
    unsigned s = 0;

    if (ev->token_mixed || (ev->present & KV_BIT(KV_F_MM_KEYS)))
        s |= WIRE_SHAPE_TRTLLM;
    if (ev->token_pairs)
        s |= WIRE_SHAPE_SGLANG;
    return s;
}

/* Copies an event error text ("event N: why") into the arena. */
static struct kv_str
event_error(struct dec *d, uint32_t i)
{
    char tmp[192];
    struct kv_str s = {"event: out of memory", 20};
    int n = snprintf(tmp, sizeof tmp, "event %u: %s", (unsigned)i, d->msg);

    if (n < 0)
        return s;
    if ((size_t)n >= sizeof tmp)
        n = sizeof tmp - 1;
    char *p = arena_alloc(d->arena, (size_t)n);
    if (p == NULL)
        return s;
    memcpy(p, tmp, (size_t)n);
    s.p = p;
    s.n = (size_t)n;
    return s;
}

/*
 * Decodes the events array (header read, n elements) into out.  Returns 0,
 * or -1 when the batch is lost (the reason in err).
 */
static int
dec_events(struct dec *d, uint32_t n, struct kv_batch *out, char *err,
           size_t errlen)
{
    out->events = NULL;
    out->n_events = 0;
    if (n > d->max_events) {
        snprintf(err, errlen, "too many events (%u)", (unsigned)n);
        return -1;
    }
    if (n == 0)
        return 0;
    struct kv_event *evs = arena_alloc(d->arena, n * sizeof *evs);
    /* Skipped tags, first seen first; at most one per wire event. */
    struct kv_event *skipped = NULL;
    size_t n_skipped = 0, k = 0;
    if (evs == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *start = d->c.p;
        struct kv_event *ev = &evs[k];
        struct kv_str tag = {NULL, 0};
        struct mpk_val v;
        int rc;

        kv_event_reset(ev, KV_BLOCK_STORED);
        ev->index = i;
        rc = mpk_next(&d->c, &v);
        if (rc != MPK_OK) {
            snprintf(err, errlen, "%s", mpk_strerror(rc));
            return -1;
        }
        if (v.type == MPK_ARRAY) {
            d->shape |= WIRE_SHAPE_ARRAY_EV;
            rc = dec_array_event(d, ev, v.n, &tag);
        } else if (v.type == MPK_MAP) {
            d->shape |= WIRE_SHAPE_MAP_EV;
            d->in_map = 1;
            rc = dec_map_event(d, ev, v.n, &tag);
            d->in_map = 0;
        } else if (v.type == MPK_BIN) {
            d->shape |= WIRE_SHAPE_PACKED_EV;
            rc = dec_packed_event(d, ev, &v, &tag);
        } else {
            rc = fail(d, "not an array or map");
        }
        if (rc == 0) {
            if (ev->token_mixed | ev->token_pairs |
                (ev->present & producer_fields))
                d->shape |= event_shape(ev);
            k++;
            continue;
        }
        d->c.p = start;
        int src = mpk_skip(&d->c);
        if (src != MPK_OK) {
            snprintf(err, errlen, "%s", mpk_strerror(src));
            return -1;
        }
        if (rc == 1) {
            size_t j;
            if (skipped == NULL) {
                skipped = arena_alloc(d->arena, n * sizeof *skipped);
                if (skipped == NULL) {
                    snprintf(err, errlen, "out of memory");
                    return -1;
                }
            }
            for (j = 0; j < n_skipped; j++) {
                if (skipped[j].tag.n == tag.n &&
                    memcmp(skipped[j].tag.p, tag.p, tag.n) == 0)
                    break;
            }
            if (j == n_skipped) {
                kv_event_init(&skipped[j], KV_SKIPPED);
                skipped[j].tag = tag;
                n_skipped++;
            }
            skipped[j].count++;
            continue;
        }
        kv_event_init(ev, KV_DECODE_ERROR);
        ev->index = i;
        ev->error = event_error(d, i);
        ev->bytes = d->len;
        k++;
    }
    /* k + n_skipped <= n: each skipped record stands for a missing slot. */
    for (size_t j = 0; j < n_skipped; j++)
        evs[k++] = skipped[j];
    out->events = evs;
    out->n_events = k;
    return 0;
}

/* Reads a batch timestamp: float64, float32 or an integer. */
static int
dec_ts(struct dec *d, struct kv_batch *out, char *err, size_t errlen)
{
    struct mpk_val v;
    int rc = mpk_next(&d->c, &v);

    if (rc != MPK_OK) {
        snprintf(err, errlen, "%s", mpk_strerror(rc));
        return -1;
    }
    if (v.type == MPK_FLOAT)
        out->ts = v.v.f;
    else if (v.type == MPK_UINT && v.v.u >= WIRE_TS_MS_MIN) {
        out->ts = (double)v.v.u / 1000.0; /* Mooncake's milliseconds */
        d->shape |= WIRE_SHAPE_TS_MS;
    } else if (v.type == MPK_UINT)
        out->ts = (double)v.v.u;
    else if (v.type == MPK_INT)
        out->ts = (double)v.v.i;
    else {
        snprintf(err, errlen, "ts is not a number");
        return -1;
    }
    out->has_ts = 1;
    return 0;
}

static int
dec_rank(struct dec *d, struct kv_batch *out, char *err, size_t errlen)
{
    struct mpk_val v;
    int rc = mpk_next(&d->c, &v);

    if (rc != MPK_OK) {
        snprintf(err, errlen, "%s", mpk_strerror(rc));
        return -1;
    }
    if (v.type == MPK_NIL) {
        out->has_rank = 0;
        return 0;
    }
    if (v.type == MPK_UINT && v.v.u <= INT64_MAX) {
        out->has_rank = 1;
        out->rank = (int64_t)v.v.u;
        return 0;
    }
    if (v.type == MPK_INT) {
        out->has_rank = 1;
        out->rank = v.v.i;
        return 0;
    }
    snprintf(err, errlen, "dp rank is not an integer or nil");
    return -1;
}

static int
dec_events_value(struct dec *d, struct kv_batch *out, char *err, size_t errlen)
{
    struct mpk_val v;
    int rc = mpk_next(&d->c, &v);

    if (rc != MPK_OK) {
        snprintf(err, errlen, "%s", mpk_strerror(rc));
        return -1;
    }
    if (v.type != MPK_ARRAY) {
        snprintf(err, errlen, "events is not an array");
        return -1;
    }
    return dec_events(d, v.n, out, err, errlen);
}

static int
skip_value(struct dec *d, char *err, size_t errlen)
{
    int rc = mpk_skip(&d->c);

    if (rc != MPK_OK) {
        snprintf(err, errlen, "%s", mpk_strerror(rc));
        return -1;
    }
    return 0;
}

static int
dec_map_batch(struct dec *d, uint32_t n, struct kv_batch *out, char *err,
              size_t errlen)
{
    int have_events = 0;

    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *kstart = d->c.p;
        struct mpk_val k;
        int rc = mpk_next(&d->c, &k);
        if (rc != MPK_OK) {
            snprintf(err, errlen, "%s", mpk_strerror(rc));
            return -1;
        }
        if (k.type == MPK_STR && str_eq(&k, "ts", 2)) {
            if (dec_ts(d, out, err, errlen) == -1)
                return -1;
        } else if (k.type == MPK_STR && str_eq(&k, "events", 6)) {
            if (dec_events_value(d, out, err, errlen) == -1)
                return -1;
            have_events = 1;
        } else if (k.type == MPK_STR && (str_eq(&k, "data_parallel_rank", 18) ||
                                         str_eq(&k, "attn_dp_rank", 12))) {
            if (k.n == 12)
                d->shape |= WIRE_SHAPE_SGLANG;
            if (dec_rank(d, out, err, errlen) == -1)
                return -1;
        } else {
            /* Other keys (a "type", a future field): skip key and value. */
            d->c.p = kstart;
            if (skip_value(d, err, errlen) == -1 ||
                skip_value(d, err, errlen) == -1)
                return -1;
        }
    }
    if (!out->has_ts) {
        snprintf(err, errlen, "ts missing");
        return -1;
    }
    if (!have_events) {
        snprintf(err, errlen, "events missing");
        return -1;
    }
    return 0;
}

int
wire_decode(const uint8_t *payload, size_t len, const struct wire_opts *opts,
            struct arena *arena, struct kv_batch *out, char *err, size_t errlen)
{
    struct dec d;
    struct mpk_val v;
    int rc;

    d.opts = opts;
    d.arena = arena;
    d.max_events =
        opts != NULL && opts->max_events ? opts->max_events : WIRE_MAX_EVENTS;
    d.max_tokens =
        opts != NULL && opts->max_tokens ? opts->max_tokens : WIRE_MAX_TOKENS;
    d.len = len;
    d.in_map = 0;
    d.shape = 0;
    d.msg[0] = '\0';
    mpk_init(&d.c, payload, len);

    uint64_t seq = out->seq;
    memset(out, 0, sizeof *out);
    out->seq = seq;
    if (len > WIRE_MAX_PAYLOAD) {
        snprintf(err, errlen, "payload larger than 4 GiB");
        return -1;
    }

    rc = mpk_next(&d.c, &v);
    if (rc != MPK_OK) {
        snprintf(err, errlen, "%s", mpk_strerror(rc));
        return -1;
    }
    if (v.type == MPK_ARRAY) {
        if (v.n < 2) {
            snprintf(err, errlen, "batch array has fewer than 2 elements");
            return -1;
        }
        d.shape |= v.n == 2 ? WIRE_SHAPE_ARRAY2 : WIRE_SHAPE_ARRAY3;
        if (dec_ts(&d, out, err, errlen) == -1 ||
            dec_events_value(&d, out, err, errlen) == -1)
            return -1;
        if (v.n >= 3 && dec_rank(&d, out, err, errlen) == -1)
            return -1;
        /* Later elements: whatever a future engine adds there. */
        for (uint32_t i = 3; i < v.n; i++)
            if (skip_value(&d, err, errlen) == -1)
                return -1;
    } else if (v.type == MPK_MAP) {
        d.shape |= WIRE_SHAPE_MAP_BATCH;
        if (dec_map_batch(&d, v.n, out, err, errlen) == -1)
            return -1;
    } else {
        snprintf(err, errlen, "batch is not an array or map");
        return -1;
    }
    if (d.c.p != d.c.end) {
        snprintf(err, errlen, "trailing bytes after batch");
        return -1;
    }
    if (opts != NULL && opts->shape != NULL)
        *opts->shape = d.shape;
    return 0;
}

const char *
wire_producer(unsigned shape, enum kv_engine engine)
{
    static const char *const named[] = {
        [KV_ENGINE_VLLM] = "vllm",       [KV_ENGINE_SGLANG] = "sglang",
        [KV_ENGINE_AUTO] = "vllm",       [KV_ENGINE_TRTLLM] = "trtllm",
        [KV_ENGINE_ATOM] = "atom",       [KV_ENGINE_MOONCAKE] = "mooncake",
        [KV_ENGINE_LLMD_FS] = "llmd-fs",
    };

    /* The payload's own evidence first, strongest first. */
    if (shape & WIRE_SHAPE_PACKED_EV)
        return "llmd-fs";
    if (shape & (WIRE_SHAPE_TS_MS | WIRE_SHAPE_MOONCAKE))
        return "mooncake";
    if (shape & (WIRE_SHAPE_ATOM | WIRE_SHAPE_NO_SEQ))
        return "atom";
    if (shape & WIRE_SHAPE_TRTLLM)
        return "trtllm";
    if (shape & WIRE_SHAPE_SGLANG)
        return "sglang";
    if ((unsigned)engine < sizeof named / sizeof named[0])
        return named[engine];
    return "vllm";
}

char *
wire_layout_text(unsigned shape, char *buf, size_t cap)
{
    static const struct {
        unsigned bit;
        const char *text;
    } parts[] = {
        {WIRE_SHAPE_ARRAY2, "[ts,events]"},
        {WIRE_SHAPE_ARRAY3, "[ts,events,rank]"},
        {WIRE_SHAPE_MAP_BATCH, "{ts,events,rank}"},
        {WIRE_SHAPE_TS_MS, "ts_ms"},
        {WIRE_SHAPE_ARRAY_EV, "arrays"},
        {WIRE_SHAPE_MAP_EV, "maps"},
        {WIRE_SHAPE_PACKED_EV, "packed"},
        {WIRE_SHAPE_NO_SEQ, "no_seq"},
    };
    size_t n = 0;

    if (cap == 0)
        return buf;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        if (!(shape & parts[i].bit))
            continue;
        int w = snprintf(buf + n, cap - n, "%s%s", n ? " " : "", parts[i].text);
        if (w < 0 || (size_t)w >= cap - n)
            break;
        n += (size_t)w;
    }
    return buf;
}

uint64_t
wire_first_seq(unsigned shape, enum kv_engine engine)
{
    return (engine == KV_ENGINE_LLMD_FS || (shape & WIRE_SHAPE_PACKED_EV)) ? 1
                                                                           : 0;
}

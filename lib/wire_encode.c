/*
 * wire_encode.c - struct kv_batch -> the engines' msgpack payload, in each
 * layout kvpub offers (see wire_encode.h).
 *
 * Every byte goes through lib/pack (msgpack-c's packer), which picks the
 * smallest encodings msgspec picks, so a payload equals the engine's for
 * the same events.  The fields, their order and their array slots come
 * from lib/fields.def, as they do for the decoder.
 */
#include "wire_encode.h"

#include <stdio.h>
#include <string.h>

#include "pack.h"

int
wire_layout_parse(const char *s, enum wire_layout *out)
{
    static const struct {
        const char *name;
        enum wire_layout layout;
    } names[] = {
        {"vllm", WIRE_LAYOUT_VLLM},
        {"vllm-array", WIRE_LAYOUT_VLLM_ARRAY},
        {"vllm-map-batch", WIRE_LAYOUT_VLLM_MAP_BATCH},
        {"sglang", WIRE_LAYOUT_SGLANG},
        {"trtllm", WIRE_LAYOUT_TRTLLM},
        {"llmd-fs", WIRE_LAYOUT_LLMD_FS},
        {"atom", WIRE_LAYOUT_ATOM},
    };

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].layout;
            return 0;
        }
    }
    return -1;
}

/* One payload being encoded. */
struct enc {
    struct pack pk;
    const struct wire_enc_opts *o;
    const char *where; /* the field being written, for an error */
};

/* Names what is written next, unless an earlier value already failed. */
static void
enc_at(struct enc *e, const char *where)
{
    if (!e->pk.failed)
        e->where = where;
}

/* A hash as the layout's engine sends it. */
static void
put_hash(struct enc *e, const struct kv_hash *h)
{
    if (e->o->bytes_hashes && h->digest != NULL)
        pack_bin(&e->pk, h->digest, h->digest_len);
    else if (e->o->layout == WIRE_LAYOUT_SGLANG ||
             e->o->layout == WIRE_LAYOUT_TRTLLM)
        pack_int(&e->pk, (int64_t)h->v); /* signed first-8-bytes ids */
    else
        pack_uint(&e->pk, h->v);
}

/* A kept value; one without bytes stands for nil. */
static void
put_raw(struct enc *e, const struct kv_raw *v)
{
    if (v->n == 0)
        pack_nil(&e->pk);
    else
        pack_raw(&e->pk, v);
}

static void
put_tokens(struct enc *e, const struct kv_event *ev)
{
    /* Placeholder strings among the ids: the list as it came. */
    if (ev->token_mixed) {
        put_raw(e, &ev->raw[KV_F_TOKEN_IDS]);
        return;
    }
    /* A count msgpack cannot hold stops here, before tokens is read. */
    if (pack_array(&e->pk, ev->n_tokens) == -1)
        return;
    for (size_t i = 0; i < ev->n_tokens; i++) {
        if (ev->token_pairs) {
            pack_array(&e->pk, 2);
            pack_uint(&e->pk, ev->tokens[2 * i]);
            pack_uint(&e->pk, ev->tokens[2 * i + 1]);
        } else {
            pack_uint(&e->pk, ev->tokens[i]);
        }
    }
}

/* Field f's value, or nil when the event does not carry it. */
static void
put_field(struct enc *e, const struct kv_event *ev, enum kv_field f)
{
    enc_at(e, kv_fields[f].name);
    if (!(ev->present & KV_BIT(f)) || (ev->isnull & KV_BIT(f))) {
        pack_nil(&e->pk);
        return;
    }
    switch (kv_fields[f].kind) {
    case KV_K_HASHES:
        if (pack_array(&e->pk, ev->n_hashes) == -1)
            break;
        for (size_t i = 0; i < ev->n_hashes; i++)
            put_hash(e, &ev->hashes[i]);
        break;
    case KV_K_HASH:
        put_hash(e, &ev->parent);
        break;
    case KV_K_TOKENS:
        put_tokens(e, ev);
        break;
    case KV_K_INT:
        pack_int(&e->pk, ev->num[f]);
        break;
    case KV_K_STR:
        pack_str(&e->pk, ev->str[f].p, ev->str[f].n);
        break;
    case KV_K_RAW:
        put_raw(e, &ev->raw[f]);
        break;
    case KV_K_HASHV: {
        const struct kv_hash h = {(uint64_t)ev->num[f], NULL, 0};
        put_hash(e, &h);
        break;
    }
    }
}

/* A string the encoder itself supplies (a key or a type name). */
static void
put_name(struct enc *e, const char *s)
{
    pack_str(&e->pk, s, strlen(s));
}

/* Fields the engine's struct declares without a default (never omitted). */
static uint32_t
enc_required(enum kv_type t, enum wire_layout layout)
{
    if (layout == WIRE_LAYOUT_SGLANG) {
        if (t == KV_BLOCK_STORED)
            return KV_BIT(KV_F_BLOCK_HASHES) | KV_BIT(KV_F_PARENT_BLOCK_HASH) |
                   KV_BIT(KV_F_TOKEN_IDS) | KV_BIT(KV_F_BLOCK_SIZE) |
                   KV_BIT(KV_F_LORA_ID);
        if (t == KV_BLOCK_REMOVED)
            return KV_BIT(KV_F_BLOCK_HASHES);
        return 0;
    }
    if (t == KV_BLOCK_STORED)
        return kv_required_fields(t) | KV_BIT(KV_F_LORA_NAME);
    return kv_required_fields(t);
}

/*
 * Fields the engine's struct declares for a map event: msgspec cannot send
 * any other (SGLang has no lora_name, vLLM no cache_salt).
 */
static uint32_t
enc_declared(enum kv_type t, enum wire_layout layout)
{
    if (layout == WIRE_LAYOUT_SGLANG) {
        if (t == KV_BLOCK_STORED)
            return enc_required(t, layout) | KV_BIT(KV_F_MEDIUM) |
                   KV_BIT(KV_F_CACHE_SALT) | KV_BIT(KV_F_SESSION_ID);
        if (t == KV_BLOCK_REMOVED)
            return KV_BIT(KV_F_BLOCK_HASHES) | KV_BIT(KV_F_MEDIUM);
        return 0;
    }
    if (t == KV_BLOCK_STORED)
        return (KV_BIT(KV_F_COUNT) - 1) & ~KV_BIT(KV_F_CACHE_SALT);
    if (t == KV_BLOCK_REMOVED)
        return KV_BIT(KV_F_BLOCK_HASHES) | KV_BIT(KV_F_MEDIUM) |
               KV_BIT(KV_F_GROUP_IDX) | KV_BIT(KV_F_LOCALITY) |
               KV_BIT(KV_F_OWNERSHIP) | KV_BIT(KV_F_REMAINING_COPY_COUNTS) |
               KV_BIT(KV_F_ORIGIN);
    /* vLLM's BlockInactive (#50732); ATOM's transfer and cleared medium. */
    if (t == KV_BLOCK_INACTIVE)
        return KV_BIT(KV_F_BLOCK_HASHES) | KV_BIT(KV_F_MEDIUM) |
               KV_BIT(KV_F_GROUP_IDX);
    if (t == KV_BLOCK_TRANSFERRED)
        return KV_BIT(KV_F_BLOCK_HASHES) | KV_BIT(KV_F_FROM_MEDIUM) |
               KV_BIT(KV_F_TO_MEDIUM) | KV_BIT(KV_F_GROUP_IDX);
    if (t == KV_ALL_BLOCKS_CLEARED)
        return KV_BIT(KV_F_MEDIUM);
    return 0;
}

/* Whether a named unknown would collide with a key the encoder writes. */
static int
reserved_key(const struct kv_str *k)
{
    enum kv_field f;

    return (k->n == 4 && memcmp(k->p, "type", 4) == 0) ||
           kv_field_parse(k->p, k->n, &f) == 0;
}

static void
enc_map_event(struct enc *e, const struct kv_event *ev)
{
    const enum wire_layout layout = e->o->layout;
    const uint32_t req = enc_required(ev->type, layout);
    size_t n = 1;

    /* Optional fields are written only when they hold a value. */
    uint32_t write =
        req | (ev->present & ~ev->isnull & enc_declared(ev->type, layout));
    for (int f = 0; f < KV_F_COUNT; f++)
        if (write & KV_BIT(f))
            n++;
    for (size_t i = 0; i < ev->n_unknown; i++)
        if (ev->unknown[i].pos < 0 && !reserved_key(&ev->unknown[i].key))
            n++;
    pack_map(&e->pk, n);
    put_name(e, "type");
    put_name(e, kv_type_name(ev->type));
    for (int f = 0; f < KV_F_COUNT; f++) {
        if (!(write & KV_BIT(f)))
            continue;
        put_name(e, kv_fields[f].name);
        put_field(e, ev, (enum kv_field)f);
    }
    /* Named unknowns after the known ones, so a capture round-trips. */
    for (size_t i = 0; i < ev->n_unknown; i++) {
        const struct kv_unknown *u = &ev->unknown[i];
        if (u->pos >= 0 || reserved_key(&u->key))
            continue;
        enc_at(e, "unknown field");
        pack_str(&e->pk, u->key.p, u->key.n);
        put_raw(e, &u->val);
    }
}

/*
 * An array event of at least n elements in vLLM's slots (more when an "@N"
 * slot lies beyond).  With zero_parent a missing parent is written as 0,
 * llm-d's "no parent".
 */
static void
enc_array_slots(struct enc *e, const struct kv_event *ev, size_t n,
                int zero_parent)
{
    for (size_t i = 0; i < ev->n_unknown; i++)
        if (ev->unknown[i].pos >= (int)n)
            n = (size_t)ev->unknown[i].pos + 1;
    pack_array(&e->pk, n);
    put_name(e, kv_type_name(ev->type));
    for (size_t slot = 1; slot < n; slot++) {
        int f = kv_field_at_slot(ev->type, KV_ENGINE_VLLM, (uint32_t)slot);
        if (zero_parent && f == KV_F_PARENT_BLOCK_HASH &&
            (!(ev->present & KV_BIT(f)) || (ev->isnull & KV_BIT(f)))) {
            pack_uint(&e->pk, 0);
            continue;
        }
        if (f >= 0 && (ev->present & KV_BIT(f))) {
            put_field(e, ev, (enum kv_field)f);
            continue;
        }
        /* An "@N" slot of a fork's shape goes back to its place. */
        const struct kv_unknown *u = NULL;
        for (size_t i = 0; i < ev->n_unknown; i++)
            if (ev->unknown[i].pos == (int)slot)
                u = &ev->unknown[i];
        enc_at(e, "unknown slot");
        if (u != NULL)
            put_raw(e, &u->val);
        else
            pack_nil(&e->pk);
    }
}

static void
enc_array_event(struct enc *e, const struct kv_event *ev)
{
    /* vLLM's last array-era shapes: 12 / 4 / 1 elements. */
    enc_array_slots(e, ev,
                    ev->type == KV_BLOCK_STORED    ? 12
                    : ev->type == KV_BLOCK_REMOVED ? 4
                                                   : 1,
                    0);
}

/*
 * ROCm ATOM's msgspec array structs (docs/protocol.md#rocm-atom): vLLM's
 * 12 store slots and token_offset, vLLM's 4 removal slots, a clear that
 * names its medium (nil for all), and BlockTransferred's 5 slots.
 */
static void
enc_atom_event(struct enc *e, const struct kv_event *ev)
{
    size_t n;

    switch (ev->type) {
    case KV_BLOCK_STORED:
        n = 13;
        break;
    case KV_ALL_BLOCKS_CLEARED:
        n = 2;
        break;
    case KV_BLOCK_TRANSFERRED:
        n = 5;
        break;
    default:
        n = 4;
        break;
    }
    enc_array_slots(e, ev, n, 0);
}

/*
 * llm-d's storage-tier publisher (docs/protocol.md#llm-d-storage-tier):
 * each event is a 7- or 3-element array packed into a byte string.
 */
static void
enc_packed_event(struct enc *e, const struct kv_event *ev)
{
    struct buf tmp = {0};
    struct enc sub = {.o = e->o, .where = e->where};

    pack_init(&sub.pk, &tmp);
    enc_array_slots(&sub, ev,
                    ev->type == KV_BLOCK_STORED    ? 7
                    : ev->type == KV_BLOCK_REMOVED ? 3
                                                   : 1,
                    1);
    if (sub.pk.failed) {
        e->pk.failed = 1;
        snprintf(e->pk.error, sizeof e->pk.error, "%s", sub.pk.error);
        e->where = sub.where;
    } else {
        pack_bin(&e->pk, (const uint8_t *)tmp.p, tmp.len);
    }
    pack_free(&sub.pk);
    buf_free(&tmp);
}

/* The envelope's first half: the header, ts and the events' count. */
static void
enc_head(struct enc *e, const struct kv_batch *bt, size_t n)
{
    if (e->o->layout == WIRE_LAYOUT_VLLM_MAP_BATCH) {
        pack_map(&e->pk, bt->has_rank ? 3 : 2);
        put_name(e, "ts");
    } else {
        pack_array(&e->pk, e->o->layout == WIRE_LAYOUT_LLMD_FS ? 2 : 3);
    }
    pack_f64(&e->pk, bt->has_ts ? bt->ts : 0.0);
    if (e->o->layout == WIRE_LAYOUT_VLLM_MAP_BATCH)
        put_name(e, "events");
    pack_array(&e->pk, n);
}

/* The envelope's second half: the rank. */
static void
enc_tail(struct enc *e, const struct kv_batch *bt)
{
    if (e->o->layout == WIRE_LAYOUT_LLMD_FS)
        return; /* [ts, events]: no rank */
    if (e->o->layout == WIRE_LAYOUT_VLLM_MAP_BATCH) {
        if (bt->has_rank) {
            put_name(e, "data_parallel_rank");
            pack_int(&e->pk, bt->rank);
        }
    } else if (bt->has_rank) {
        pack_int(&e->pk, bt->rank);
    } else {
        pack_nil(&e->pk);
    }
}

int
wire_encode(const struct kv_batch *bt, const struct wire_enc_opts *o,
            struct buf *out, char *err, size_t errlen)
{
    struct enc e = {.o = o, .where = "batch"};
    size_t n = 0;
    int rc = 0;

    pack_init(&e.pk, out);
    for (size_t i = 0; i < bt->n_events; i++)
        if (kv_type_is_engine(bt->events[i].type))
            n++;
    enc_head(&e, bt, n);
    for (size_t i = 0; i < bt->n_events && !e.pk.failed; i++) {
        const struct kv_event *ev = &bt->events[i];
        if (!kv_type_is_engine(ev->type))
            continue;
        e.where = "type";
        if (o->layout == WIRE_LAYOUT_VLLM_ARRAY)
            enc_array_event(&e, ev);
        else if (o->layout == WIRE_LAYOUT_ATOM)
            enc_atom_event(&e, ev);
        else if (o->layout == WIRE_LAYOUT_LLMD_FS)
            enc_packed_event(&e, ev);
        else
            enc_map_event(&e, ev);
        if (e.pk.failed) {
            snprintf(err, errlen, "event %zu: %s: %s", i, e.where,
                     pack_error(&e.pk));
            rc = -1;
        }
    }
    enc_tail(&e, bt);
    if (rc == 0 && pack_error(&e.pk) != NULL) {
        snprintf(err, errlen, "%s", pack_error(&e.pk));
        rc = -1;
    }
    if (rc == -1)
        out->len = e.pk.start;
    pack_free(&e.pk);
    return rc;
}

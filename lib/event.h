/*
 * event.h - the in-memory event model every kvtap tool shares.
 *
 * One struct kv_event is one line of NDJSON (docs/ndjson.md): an engine event
 * (BlockStored, BlockRemoved, AllBlocksCleared) or a stream record written by
 * kvtap itself (gap, restart, decode_error, skipped).  Engine fields are kept
 * in a table indexed by enum kv_field so that the decoder, the encoder and the
 * NDJSON writer and reader can all walk the same declaration order.
 *
 * Ownership: an event never owns memory.  Strings, digests and raw values
 * (msgpack or JSON text) point into the buffer the event was decoded from (a
 * ZeroMQ frame or an input line) or into a struct arena; both must outlive the
 * event.
 */
#ifndef KVTAP_EVENT_H
#define KVTAP_EVENT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A byte string that is not NUL-terminated.  Borrowed. */
struct kv_str {
    const char *p;
    size_t n;
};

/* The 8 or 4 bytes at p, any alignment, in host order. */
static inline uint64_t
kv_load64(const char *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof v);
    return v;
}

static inline uint32_t
kv_load32(const char *p)
{
    uint32_t v;

    memcpy(&v, p, sizeof v);
    return v;
}

/*
 * Whether a[0, n) and b[0, n) hold the same bytes.  Up to 24 bytes it is
 * two or three loads a side, which may overlap: names (pods, models, JSON
 * keys, media) are a few bytes, and a call of memcmp costs more than
 * comparing them.
 */
static inline int
kv_bytes_eq(const void *a, const void *b, size_t n)
{
    const char *x = a, *y = b;

    if (n > 24)
        return memcmp(x, y, n) == 0;
    /* cppcheck takes a short literal from kv_str_eq into this branch, which
     * only n > 16 reaches. */
    if (n > 16)
        return ((kv_load64(x) ^ kv_load64(y)) |
                /* cppcheck-suppress pointerOutOfBounds */
                (kv_load64(x + 8) ^ kv_load64(y + 8)) |
                /* cppcheck-suppress pointerOutOfBoundsCond */
                (kv_load64(x + n - 8) ^ kv_load64(y + n - 8))) == 0;
    if (n >= 8)
        return ((kv_load64(x) ^ kv_load64(y)) |
                (kv_load64(x + n - 8) ^ kv_load64(y + n - 8))) == 0;
    if (n >= 4)
        return ((kv_load32(x) ^ kv_load32(y)) |
                (kv_load32(x + n - 4) ^ kv_load32(y + n - 4))) == 0;
    return n == 0 ||
           (x[0] == y[0] && x[n / 2] == y[n / 2] && x[n - 1] == y[n - 1]);
}

/* Whether s holds exactly the NUL-terminated text lit. */
static inline int
kv_str_eq(struct kv_str s, const char *lit)
{
    size_t n = strlen(lit);
    return s.n == n && kv_bytes_eq(s.p, lit, n);
}

/*
 * A generic value kept verbatim: exactly one msgpack object when it came off
 * the wire, or exactly one JSON value (its text) when it came from an NDJSON
 * line.  Each side converts only when it must cross to the other format, so a
 * field that a tool merely passes through is never re-encoded.
 */
enum kv_raw_kind { KV_RAW_MSGPACK = 0, KV_RAW_JSON = 1 };

struct kv_raw {
    const uint8_t *p;
    /*
     * 32 bits keep the struct at 16 bytes (an event has one per field):
     * a kept value comes from a payload or a line, both refused above
     * UINT32_MAX bytes (WIRE_MAX_PAYLOAD, the readers' line limits).
     */
    uint32_t n;
    enum kv_raw_kind kind;
};

/*
 * An engine block hash.  v is the canonical value (docs/ndjson.md): the u64
 * bit pattern of an integer, or the last 8 bytes big-endian of a digest.
 * digest is non-NULL when the hash arrived as a byte string.
 */
struct kv_hash {
    uint64_t v;
    const uint8_t *digest;
    uint32_t digest_len;
};

enum kv_type {
    KV_BLOCK_STORED,
    KV_BLOCK_REMOVED,
    KV_ALL_BLOCKS_CLEARED,
    KV_GAP,
    KV_RESTART,
    KV_DECODE_ERROR,
    KV_SKIPPED,
    /*
     * kvsub printed an engine's snapshot (vLLM's snapshot mode) between
     * these two: the pod's whole state at the record's seq
     * (docs/ndjson.md#records-written-by-kvtap).
     */
    KV_SNAPSHOT_BEGIN,
    KV_SNAPSHOT_END,
    /*
     * Engine events that came later, kept after the records so that the
     * numbering of the others does not change: ATOM's move between media
     * and vLLM's (#50732) block that no request uses any more.
     */
    KV_BLOCK_TRANSFERRED,
    KV_BLOCK_INACTIVE,
    KV_TYPE_COUNT
};

/* Whether t is an event an engine sends (not a record kvtap writes). */
static inline int
kv_type_is_engine(enum kv_type t)
{
    return t <= KV_ALL_BLOCKS_CLEARED || t == KV_BLOCK_TRANSFERRED ||
           t == KV_BLOCK_INACTIVE;
}

/*
 * Engine fields in NDJSON order, from the one list in fields.def (which
 * says how to add a field).
 */
#include "fields.def"

#define KV_FIELD_ENUM(a, id, ...) KV_F_##id,
enum kv_field { KV_FIELD_LIST(KV_FIELD_ENUM, ~) KV_F_COUNT };
#undef KV_FIELD_ENUM

/* How a field's value is stored in struct kv_event. */
enum kv_kind {
    KV_K_HASHES, /* hashes, n_hashes */
    KV_K_HASH,   /* parent */
    KV_K_TOKENS, /* tokens, n_tokens, token_pairs */
    KV_K_INT,    /* num[field] */
    KV_K_STR,    /* str[field] */
    KV_K_RAW,    /* raw[field]: a generic value, msgpack or JSON text */
    KV_K_HASHV   /* num[field]: a hash's canonical u64, as a decimal string */
};

#define KV_BIT(f) (1u << (f))

/*
 * The event-type codes of fields.def's required and map columns: S
 * BlockStored, R BlockRemoved, C AllBlocksCleared, T BlockTransferred, I
 * BlockInactive.
 */
#define KV_TYPES_0 0u
#define KV_TYPES_S KV_BIT(KV_BLOCK_STORED)
#define KV_TYPES_R KV_BIT(KV_BLOCK_REMOVED)
#define KV_TYPES_C KV_BIT(KV_ALL_BLOCKS_CLEARED)
#define KV_TYPES_T KV_BIT(KV_BLOCK_TRANSFERRED)
#define KV_TYPES_I KV_BIT(KV_BLOCK_INACTIVE)
#define KV_TYPES_SR (KV_TYPES_S | KV_TYPES_R)
#define KV_TYPES_SRI (KV_TYPES_SR | KV_TYPES_I)
#define KV_TYPES_SRTI (KV_TYPES_SRI | KV_TYPES_T)
#define KV_TYPES_SRCI (KV_TYPES_SRI | KV_TYPES_C)

struct kv_field_info {
    const char *name;
    enum kv_kind kind;
};

/* Table of every field, indexed by enum kv_field.  Static storage. */
extern const struct kv_field_info kv_fields[KV_F_COUNT];

/*
 * A field the decoder could not place: a named map entry this version does
 * not know (pos == -1), or a positional array slot that is unknown or failed
 * its type check (key empty, pos = index in the event array, tag = 0).
 */
struct kv_unknown {
    struct kv_str key;
    int pos;
    struct kv_raw val;
};

struct kv_event {
    enum kv_type type;
    uint32_t index;   /* position in the batch's event array (engine events) */
    uint32_t present; /* KV_BIT(field): the wire carried the field */
    uint32_t isnull;  /* KV_BIT(field): carried as nil */

    struct kv_hash *hashes;
    size_t n_hashes;
    struct kv_hash parent;
    /*
     * Token ids.  With token_pairs set (SGLang bigram pages) the field is an
     * array of n_tokens [a, b] pairs stored flat, so tokens has 2*n_tokens
     * values.  With token_mixed set (TensorRT-LLM) some ids were strings
     * standing for multimodal placeholders: raw[KV_F_TOKEN_IDS] keeps the
     * list as it came, and tokens holds kv_token_placeholder() at those
     * positions so that block keys can still be computed.
     */
    uint32_t *tokens;
    size_t n_tokens;
    int token_pairs;
    int token_mixed;
    int64_t num[KV_F_COUNT];
    struct kv_str str[KV_F_COUNT];
    struct kv_raw raw[KV_F_COUNT];

    struct kv_unknown *unknown;
    size_t n_unknown;

    /* Stream records. */
    uint64_t from, to;   /* gap: inclusive seq range */
    uint64_t last_seq;   /* restart */
    struct kv_str error; /* decode_error */
    uint64_t bytes;      /* decode_error: payload length */
    struct kv_str tag;   /* skipped */
    uint64_t count;      /* skipped */
};

/*
 * One decoded batch.  rank is meaningful only when has_rank; events holds the
 * engine events in wire order followed by the batch's stream records
 * (decode_error for a bad event, skipped per unknown tag).
 */
struct kv_batch {
    uint64_t seq;
    double ts;
    int has_ts;
    int has_rank;
    int64_t rank;
    struct kv_event *events;
    size_t n_events;
    /* 1: the message had no seq frame (older ATOM, docs/protocol.md#rocm-atom):
     * seq is meaningless and the lines carry none. */
    int no_seq;
};

/*
 * The envelope of one event, as an NDJSON line carries it (docs/ndjson.md,
 * "The envelope"): where it came from and its place in the stream.  The
 * index applies events under it, the NDJSON writer and reader write and
 * read it.  Strings are borrowed like the event's.
 */
struct kv_env {
    struct kv_str pod;   /* the reader sets "-" when the line has none */
    struct kv_str model; /* p == NULL: absent */
    int has_rank;        /* 0: dp_rank is null */
    int64_t rank;
    int has_seq;
    uint64_t seq;
    int has_i;
    uint32_t i;
    int has_ts;
    double ts;
    /* vLLM snapshot mode's publisher stream id, 32 lower-case hex digits. */
    struct kv_str stream; /* p == NULL: absent */
};

/*
 * The producer --engine names (docs/protocol.md#which-engine-auto).  Only
 * SGLang has array slots of its own; vllm is vLLM's table strictly, and
 * the others read vLLM's table plus what the payload itself shows (an
 * SGLang metadata map at slot 7, ATOM's token_offset at slot 12).
 */
enum kv_engine {
    KV_ENGINE_VLLM,
    KV_ENGINE_SGLANG,
    KV_ENGINE_AUTO,
    KV_ENGINE_TRTLLM,
    KV_ENGINE_ATOM,
    KV_ENGINE_MOONCAKE,
    KV_ENGINE_LLMD_FS
};

/*
 * Array events' slots (fields.def's vs, vr, ss, sr columns), for the wire
 * decoder and encoder alike: kv_slots[engine][removed][i] is the field at
 * index i of a BlockStored (removed 0) or BlockRemoved (removed 1) array,
 * plus 1, or 0 where no field is known.  Indexes past KV_WIRE_SLOTS are
 * the table's own bookkeeping.
 */
#define KV_WIRE_SLOTS 13
extern const uint8_t kv_slots[2][2][KV_WIRE_SLOTS + KV_F_COUNT];

/*
 * The field at index i of an array event of type t, for the wire decoder
 * and encoder alike, or -1 where no field is known: kv_slots for stores
 * and removals (vLLM's BlockInactive is laid out like a removal), and the
 * slots of ATOM's events (docs/protocol.md#rocm-atom): a medium at 1 of
 * AllBlocksCleared, and [tag, hashes, from_medium, to_medium, group_idx]
 * for BlockTransferred.
 */
static inline int
kv_field_at_slot(enum kv_type t, enum kv_engine eng, uint32_t i)
{
    static const int8_t transferred[] = {-1, KV_F_BLOCK_HASHES,
                                         KV_F_FROM_MEDIUM, KV_F_TO_MEDIUM,
                                         KV_F_GROUP_IDX};

    switch (t) {
    case KV_ALL_BLOCKS_CLEARED:
        return i == 1 ? KV_F_MEDIUM : -1;
    case KV_BLOCK_TRANSFERRED:
        return i < sizeof transferred ? transferred[i] : -1;
    case KV_BLOCK_INACTIVE:
        t = KV_BLOCK_REMOVED;
        break;
    case KV_BLOCK_STORED:
    case KV_BLOCK_REMOVED:
        break;
    default:
        return -1;
    }
    if (i >= KV_WIRE_SLOTS)
        return -1;
    return (int)kv_slots[eng == KV_ENGINE_SGLANG][t == KV_BLOCK_REMOVED][i] - 1;
}

/* Returns the NDJSON type name ("BlockStored", "gap", ...).  Static storage. */
const char *kv_type_name(enum kv_type t);

/* Maps a type name to its enum; returns -1 for an unknown name. */
int kv_type_parse(const char *s, size_t n, enum kv_type *out);

/*
 * Maps a field name to its enum; returns -1 for an unknown name.  The one
 * name lookup: the wire decoder and the NDJSON reader call it for every
 * key.  It is inline and expands the field list into tests of a constant
 * length and memcmps of a constant size, which the compiler turns into a
 * switch on the length and a few word compares, as a hand-written lookup
 * would be.
 */
static inline int
kv_field_parse(const char *s, size_t n, enum kv_field *out)
{
#define KV_FIELD_TRY(a, id, name, ...)                                         \
    if (n == sizeof #name - 1 && memcmp(s, #name, sizeof #name - 1) == 0) {    \
        *out = KV_F_##id;                                                      \
        return 0;                                                              \
    }
    KV_FIELD_LIST(KV_FIELD_TRY, ~)
#undef KV_FIELD_TRY
    return -1;
}
/*
 * The token id a placeholder string of a token list (TensorRT-LLM's
 * multimodal tokens) stands for in block keys: FNV-1a (32 bits) of its
 * bytes with the top bit set, so that different placeholders key apart
 * (docs/protocol.md#tensorrt-llm).
 */
static inline uint32_t
kv_token_placeholder(const char *s, size_t n)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h | 0x80000000u;
}

/* Resets ev to an empty event of the given type (every field absent). */
void kv_event_init(struct kv_event *ev, enum kv_type type);

/*
 * The same without clearing num[], str[] and raw[] (most of the struct):
 * for the decoder's hot path.  Those slots are then meaningful only for
 * fields whose present bit is set and isnull bit clear, which is all any
 * reader of an event may rely on anyway.
 */
void kv_event_reset(struct kv_event *ev, enum kv_type type);

/*
 * Fields vLLM declares as required for this event type: they are written to
 * NDJSON (null when nil) even when the wire did not carry them.
 */
uint32_t kv_required_fields(enum kv_type t);

/*
 * A bump allocator for the memory of one batch or one line: reset between
 * batches instead of freeing piece by piece.
 */
struct arena {
    struct arena_chunk *head;
    size_t used_total;
};

/* Returns n bytes aligned for any type, or NULL when out of memory. */
void *arena_alloc(struct arena *a, size_t n);

/*
 * Shrinks the newest allocation, p of old_n bytes, to its first n bytes
 * (n <= old_n), so a reader can reserve for the most it may need and keep
 * what it used.  When p is not the newest allocation nothing changes: its
 * bytes stay allocated until the reset.
 */
void arena_trim(struct arena *a, void *p, size_t old_n, size_t n);

/* Forgets every allocation but keeps the largest chunk for reuse. */
void arena_reset(struct arena *a);

/* Frees all memory.  Accepts an arena that never allocated. */
void arena_free(struct arena *a);

#endif

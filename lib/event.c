/*
 * event.c - names and defaults of the shared event model, and the arena that
 * holds a batch's variable-length parts.
 */
#include "event.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define FIELD_INFO(a, id, name, kind, ...) [KV_F_##id] = {#name, KV_K_##kind},
const struct kv_field_info kv_fields[KV_F_COUNT] = {
    KV_FIELD_LIST(FIELD_INFO, ~)};
#undef FIELD_INFO

/* The fields vLLM declares as required, for event types in mask t. */
#define REQUIRED(t, id, name, kind, nullable, required, ...)                   \
    | ((KV_TYPES_##required) & (t) ? KV_BIT(KV_F_##id) : 0u)
static const uint32_t required_stored = 0u KV_FIELD_LIST(REQUIRED, KV_TYPES_S);
static const uint32_t required_removed = 0u KV_FIELD_LIST(REQUIRED, KV_TYPES_R);
#undef REQUIRED

static const char *const type_names[KV_TYPE_COUNT] = {
    [KV_BLOCK_STORED] = "BlockStored",
    [KV_BLOCK_REMOVED] = "BlockRemoved",
    [KV_ALL_BLOCKS_CLEARED] = "AllBlocksCleared",
    [KV_GAP] = "gap",
    [KV_RESTART] = "restart",
    [KV_DECODE_ERROR] = "decode_error",
    [KV_SKIPPED] = "skipped",
    [KV_SNAPSHOT_BEGIN] = "snapshot_begin",
    [KV_SNAPSHOT_END] = "snapshot_end",
    [KV_BLOCK_TRANSFERRED] = "BlockTransferred",
    [KV_BLOCK_INACTIVE] = "BlockInactive",
};

const char *
kv_type_name(enum kv_type t)
{
    return (unsigned)t < KV_TYPE_COUNT ? type_names[t] : "unknown";
}

int
kv_type_parse(const char *s, size_t n, enum kv_type *out)
{
    for (int t = 0; t < KV_TYPE_COUNT; t++) {
        if (strlen(type_names[t]) == n && memcmp(type_names[t], s, n) == 0) {
            *out = (enum kv_type)t;
            return 0;
        }
    }
    return -1;
}

void
kv_event_init(struct kv_event *ev, enum kv_type type)
{
    memset(ev, 0, sizeof *ev);
    ev->type = type;
}

/*
 * The stream records' fields are copied from an empty event rather than
 * cleared with memset: GCC compiles a memset of their 88 bytes to
 * `rep stos`, which costs about 20 ns on the 2-core Xeon VMs against 3 ns
 * for a copy (a loop of 50M calls each), a tenth of what parsing a short
 * NDJSON line costs.
 */
static const struct kv_event empty_event;

void
kv_event_reset(struct kv_event *ev, enum kv_type type)
{
    const size_t head = offsetof(struct kv_event, num);
    const size_t tail = offsetof(struct kv_event, unknown);

    memset(ev, 0, head);
    memcpy((char *)ev + tail, (const char *)&empty_event + tail,
           sizeof *ev - tail);
    ev->type = type;
}

uint32_t
kv_required_fields(enum kv_type t)
{
    switch (t) {
    case KV_BLOCK_STORED:
        return required_stored;
    case KV_BLOCK_REMOVED:
        return required_removed;
    default:
        return 0;
    }
}

/* Chunks form a list, newest first; each serves bump allocations. */
struct arena_chunk {
    struct arena_chunk *next;
    size_t cap;
    size_t used;
    max_align_t data[];
};

#define ARENA_MIN_CHUNK 4096

void *
arena_alloc(struct arena *a, size_t n)
{
    const size_t align = sizeof(max_align_t);
    struct arena_chunk *c = a->head;

    n = (n + align - 1) & ~(align - 1);
    if (n == 0)
        n = align;
    if (c == NULL || c->cap - c->used < n) {
        size_t cap = ARENA_MIN_CHUNK;
        if (c != NULL && c->cap * 2 > cap)
            cap = c->cap * 2;
        while (cap < n)
            cap *= 2;
        c = malloc(sizeof *c + cap);
        if (c == NULL)
            return NULL;
        c->next = a->head;
        c->cap = cap;
        c->used = 0;
        a->head = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    a->used_total += n;
    return p;
}

void
arena_trim(struct arena *a, void *p, size_t old_n, size_t n)
{
    const size_t align = sizeof(max_align_t);
    struct arena_chunk *c = a->head;

    assert(n <= old_n);
    old_n = old_n == 0 ? align : (old_n + align - 1) & ~(align - 1);
    n = n == 0 ? align : (n + align - 1) & ~(align - 1);
    if (c == NULL || (char *)p + old_n != (char *)c->data + c->used)
        return;
    c->used -= old_n - n;
    a->used_total -= old_n - n;
}

void
arena_reset(struct arena *a)
{
    struct arena_chunk *keep = a->head;

    if (keep == NULL)
        return;
    /* The newest chunk is the largest: keep it, free the rest. */
    struct arena_chunk *c = keep->next;
    while (c != NULL) {
        struct arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    keep->next = NULL;
    keep->used = 0;
    a->used_total = 0;
}

void
arena_free(struct arena *a)
{
    if (a == NULL)
        return;
    struct arena_chunk *c = a->head;
    while (c != NULL) {
        struct arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->used_total = 0;
}

/*
 * Legacy array slots (fields.def's vs, vr, ss, sr columns): field + 1 at
 * each slot, 0 where no field is known.  A field without a slot writes its
 * 0 at an index of its own past KV_WIRE_SLOTS, so every index is set once.
 */
#define SLOT(col, id)                                                          \
    [(col) ? (col) : KV_WIRE_SLOTS + KV_F_##id] =                              \
        (uint8_t)((col) ? KV_F_##id + 1 : 0),
#define SLOT_VS(a, id, name, kind, nl, req, map, vs, vr, ss, sr) SLOT(vs, id)
#define SLOT_VR(a, id, name, kind, nl, req, map, vs, vr, ss, sr) SLOT(vr, id)
#define SLOT_SS(a, id, name, kind, nl, req, map, vs, vr, ss, sr) SLOT(ss, id)
#define SLOT_SR(a, id, name, kind, nl, req, map, vs, vr, ss, sr) SLOT(sr, id)
#define SLOT_FITS(a, id, name, kind, nl, req, map, vs, vr, ss, sr)             \
    _Static_assert((vs) < KV_WIRE_SLOTS && (vr) < KV_WIRE_SLOTS &&             \
                       (ss) < KV_WIRE_SLOTS && (sr) < KV_WIRE_SLOTS,           \
                   #name ": slot past KV_WIRE_SLOTS");
KV_FIELD_LIST(SLOT_FITS, ~)
#undef SLOT_FITS
const uint8_t kv_slots[2][2][KV_WIRE_SLOTS + KV_F_COUNT] = {
    [KV_ENGINE_VLLM] = {{KV_FIELD_LIST(SLOT_VS, ~)},
                        {KV_FIELD_LIST(SLOT_VR, ~)}},
    [KV_ENGINE_SGLANG] = {{KV_FIELD_LIST(SLOT_SS, ~)},
                          {KV_FIELD_LIST(SLOT_SR, ~)}},
};
#undef SLOT_VS
#undef SLOT_VR
#undef SLOT_SS
#undef SLOT_SR
#undef SLOT

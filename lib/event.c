/*
 * event.c - names and defaults of the shared event model, and the arena that
 * holds a batch's variable-length parts.
 */
#include "event.h"

#include <stdlib.h>
#include <string.h>

const struct kv_field_info kv_fields[KV_F_COUNT] = {
    [KV_F_BLOCK_HASHES] = {"block_hashes", KV_K_HASHES},
    [KV_F_PARENT_BLOCK_HASH] = {"parent_block_hash", KV_K_HASH},
    [KV_F_TOKEN_IDS] = {"token_ids", KV_K_TOKENS},
    [KV_F_BLOCK_SIZE] = {"block_size", KV_K_INT},
    [KV_F_LORA_ID] = {"lora_id", KV_K_INT},
    [KV_F_MEDIUM] = {"medium", KV_K_STR},
    [KV_F_LORA_NAME] = {"lora_name", KV_K_STR},
    [KV_F_EXTRA_KEYS] = {"extra_keys", KV_K_RAW},
    [KV_F_GROUP_IDX] = {"group_idx", KV_K_INT},
    [KV_F_KV_CACHE_SPEC_KIND] = {"kv_cache_spec_kind", KV_K_STR},
    [KV_F_KV_CACHE_SPEC_SLIDING_WINDOW] = {"kv_cache_spec_sliding_window",
                                           KV_K_INT},
    [KV_F_LOCALITY] = {"locality", KV_K_STR},
    [KV_F_OWNERSHIP] = {"ownership", KV_K_STR},
    [KV_F_CACHE_SALT] = {"cache_salt", KV_K_STR},
    [KV_F_SESSION_ID] = {"session_id", KV_K_STR},
};

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

int
kv_field_parse(const char *s, size_t n, enum kv_field *out)
{
    for (int f = 0; f < KV_F_COUNT; f++) {
        if (strlen(kv_fields[f].name) == n &&
            memcmp(kv_fields[f].name, s, n) == 0) {
            *out = (enum kv_field)f;
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

void
kv_event_reset(struct kv_event *ev, enum kv_type type)
{
    const size_t head = offsetof(struct kv_event, num);
    const size_t tail = offsetof(struct kv_event, unknown);

    memset(ev, 0, head);
    memset((char *)ev + tail, 0, sizeof *ev - tail);
    ev->type = type;
}

uint32_t
kv_required_fields(enum kv_type t)
{
    switch (t) {
    case KV_BLOCK_STORED:
        return KV_BIT(KV_F_BLOCK_HASHES) | KV_BIT(KV_F_PARENT_BLOCK_HASH) |
               KV_BIT(KV_F_TOKEN_IDS) | KV_BIT(KV_F_BLOCK_SIZE) |
               KV_BIT(KV_F_LORA_ID) | KV_BIT(KV_F_MEDIUM);
    case KV_BLOCK_REMOVED:
        return KV_BIT(KV_F_BLOCK_HASHES) | KV_BIT(KV_F_MEDIUM);
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

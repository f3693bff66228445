/*
 * synth.c - the synthetic engine workload of kvpub --synth.
 */
#include "synth.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "pack.h"

#define SYNTH_SYSTEMS 4
#define SYNTH_HISTORY 16
#define SYNTH_MAX_BLOCKS 48 /* a conversation longer than this starts over */
#define SYNTH_BOS 128000u
#define SYNTH_VOCAB 128000u
/* The chain root, vLLM's NONE_HASH: fixed, so pods agree on hashes. */
#define SYNTH_ROOT 0x6b7674617073796eULL
#define NIL UINT32_MAX
#define SYNTH_MAX_BS 64

/* Length in blocks of each shared system prompt, and how often it is used. */
static const uint32_t system_blocks[SYNTH_SYSTEMS] = {6, 4, 8, 3};
static const uint32_t system_weight[SYNTH_SYSTEMS] = {50, 25, 15, 10};

/* One cached block: a node of the hash table and of the LRU list. */
struct sblock {
    uint64_t hash;
    uint32_t prev, next; /* LRU list, head = least recently used */
};

/* A conversation whose next turn extends its whole token prefix. */
struct convo {
    uint32_t *tokens;
    size_t n; /* a multiple of the block size */
};

struct synth {
    uint64_t rng;
    uint32_t bs;
    size_t cap;
    struct sblock *blk; /* cap slots */
    uint32_t *free_list;
    size_t n_free;
    uint32_t lru_head, lru_tail;
    uint32_t *tab; /* open addressing, slot index + 1, 0 = empty */
    size_t tab_mask;
    uint32_t *system[SYNTH_SYSTEMS];
    struct convo hist[SYNTH_HISTORY];
    size_t hist_next;
    /* Scratch for the current request. */
    uint32_t *prompt;
    uint64_t *chain;
    uint32_t *touched;
    struct buf extra; /* the msgpack of the event's extra_keys */
};

static uint64_t
splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, n). */
static uint32_t
rnd_below(uint64_t *x, uint32_t n)
{
    return (uint32_t)((splitmix64(x) >> 32) * n >> 32);
}

static uint32_t
rnd_token(uint64_t *x)
{
    return 1000 + rnd_below(x, SYNTH_VOCAB - 1000);
}

/* The block hash: parent as LE64, then the tokens as BE32 (n <= 64). */
static uint64_t
block_hash(uint64_t parent, const uint32_t *tok, uint32_t n)
{
    uint8_t buf[8 + 4 * SYNTH_MAX_BS];
    size_t len = 0;

    for (int i = 0; i < 8; i++)
        buf[len++] = (uint8_t)(parent >> (8 * i));
    for (uint32_t i = 0; i < n; i++) {
        buf[len++] = (uint8_t)(tok[i] >> 24);
        buf[len++] = (uint8_t)(tok[i] >> 16);
        buf[len++] = (uint8_t)(tok[i] >> 8);
        buf[len++] = (uint8_t)tok[i];
    }
    return XXH64(buf, len, 0);
}

static size_t
tab_pos(const struct synth *s, uint64_t hash)
{
    return (size_t)(hash ^ (hash >> 29)) & s->tab_mask;
}

/* The slot of a cached block, or NIL. */
static uint32_t
tab_get(const struct synth *s, uint64_t hash)
{
    for (size_t i = tab_pos(s, hash);; i = (i + 1) & s->tab_mask) {
        uint32_t v = s->tab[i];
        if (v == 0)
            return NIL;
        if (s->blk[v - 1].hash == hash)
            return v - 1;
    }
}

static void
tab_put(struct synth *s, uint32_t slot)
{
    size_t i = tab_pos(s, s->blk[slot].hash);

    while (s->tab[i] != 0)
        i = (i + 1) & s->tab_mask;
    s->tab[i] = slot + 1;
}

/* Linear-probing deletion by backward shift: no tombstones pile up. */
static void
tab_del(struct synth *s, uint64_t hash)
{
    size_t i = tab_pos(s, hash);

    while (s->blk[s->tab[i] - 1].hash != hash)
        i = (i + 1) & s->tab_mask;
    for (size_t j = (i + 1) & s->tab_mask; s->tab[j] != 0;
         j = (j + 1) & s->tab_mask) {
        size_t home = tab_pos(s, s->blk[s->tab[j] - 1].hash);
        /* Move j into the hole at i unless its home lies in (i, j]. */
        int between =
            i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!between) {
            s->tab[i] = s->tab[j];
            i = j;
        }
    }
    s->tab[i] = 0;
}

static void
lru_unlink(struct synth *s, uint32_t k)
{
    struct sblock *b = &s->blk[k];

    if (b->prev != NIL)
        s->blk[b->prev].next = b->next;
    else
        s->lru_head = b->next;
    if (b->next != NIL)
        s->blk[b->next].prev = b->prev;
    else
        s->lru_tail = b->prev;
}

static void
lru_append(struct synth *s, uint32_t k)
{
    s->blk[k].prev = s->lru_tail;
    s->blk[k].next = NIL;
    if (s->lru_tail != NIL)
        s->blk[s->lru_tail].next = k;
    else
        s->lru_head = k;
    s->lru_tail = k;
}

struct synth *
synth_new(const struct synth_opts *opts)
{
    struct synth *s = calloc(1, sizeof *s);
    size_t tabcap = 16;

    if (s == NULL)
        return NULL;
    s->bs = opts->block_size ? opts->block_size : 16;
    if (s->bs > SYNTH_MAX_BS)
        s->bs = SYNTH_MAX_BS;
    s->cap = opts->capacity ? opts->capacity : 1024;
    if (s->cap < 2 * SYNTH_MAX_BLOCKS)
        s->cap = 2 * SYNTH_MAX_BLOCKS;
    s->rng = opts->seed;
    while (tabcap < 2 * s->cap)
        tabcap *= 2;
    s->tab_mask = tabcap - 1;
    s->blk = calloc(s->cap, sizeof *s->blk);
    s->free_list = calloc(s->cap, sizeof *s->free_list);
    s->tab = calloc(tabcap, sizeof *s->tab);
    s->prompt = calloc((size_t)SYNTH_MAX_BLOCKS * 2 * s->bs, sizeof *s->prompt);
    s->chain = calloc((size_t)SYNTH_MAX_BLOCKS * 2, sizeof *s->chain);
    s->touched = calloc((size_t)SYNTH_MAX_BLOCKS * 2, sizeof *s->touched);
    if (s->blk == NULL || s->free_list == NULL || s->tab == NULL ||
        s->prompt == NULL || s->chain == NULL || s->touched == NULL)
        goto fail;
    for (size_t i = 0; i < s->cap; i++)
        s->free_list[i] = (uint32_t)(s->cap - 1 - i);
    s->n_free = s->cap;
    s->lru_head = s->lru_tail = NIL;
    for (int k = 0; k < SYNTH_SYSTEMS; k++) {
        /* System prompts come from a fixed stream, not from the seed. */
        uint64_t x = 0x73797374656d0000ULL + (uint64_t)k;
        size_t n = (size_t)system_blocks[k] * s->bs;
        s->system[k] = malloc(n * sizeof **s->system);
        if (s->system[k] == NULL)
            goto fail;
        s->system[k][0] = SYNTH_BOS;
        for (size_t i = 1; i < n; i++)
            s->system[k][i] = rnd_token(&x);
    }
    return s;
fail:
    synth_free(s);
    return NULL;
}

void
synth_free(struct synth *s)
{
    if (s == NULL)
        return;
    for (int k = 0; k < SYNTH_SYSTEMS; k++)
        free(s->system[k]);
    for (int k = 0; k < SYNTH_HISTORY; k++)
        free(s->hist[k].tokens);
    free(s->blk);
    free(s->free_list);
    free(s->tab);
    free(s->prompt);
    free(s->chain);
    buf_free(&s->extra);
    free(s->touched);
    free(s);
}

/* Builds the next request's prompt into s->prompt; returns its length. */
static size_t
make_prompt(struct synth *s)
{
    size_t n = 0, max = (size_t)SYNTH_MAX_BLOCKS * s->bs;
    struct convo *prev = NULL;

    if (rnd_below(&s->rng, 100) < 35) {
        prev = &s->hist[rnd_below(&s->rng, SYNTH_HISTORY)];
        if (prev->n == 0 || prev->n + 4 * (size_t)s->bs > max)
            prev = NULL;
    }
    if (prev != NULL) {
        memcpy(s->prompt, prev->tokens, prev->n * sizeof *s->prompt);
        n = prev->n;
    } else {
        uint32_t w = rnd_below(&s->rng, 100), k = 0;
        while (k + 1 < SYNTH_SYSTEMS && w >= system_weight[k])
            w -= system_weight[k++];
        n = (size_t)system_blocks[k] * s->bs;
        memcpy(s->prompt, s->system[k], n * sizeof *s->prompt);
    }
    /* The user's turn, then the block the answer filled. */
    size_t add = (size_t)(1 + rnd_below(&s->rng, 3)) * s->bs;
    for (size_t i = 0; i < add; i++)
        s->prompt[n++] = rnd_token(&s->rng);
    return n;
}

static void
remember(struct synth *s, size_t n)
{
    struct convo *c = &s->hist[s->hist_next];
    uint32_t *t = realloc(c->tokens, n * sizeof *t);

    /* Out of memory only costs a conversation: forget the slot. */
    if (t == NULL) {
        free(c->tokens);
        c->tokens = NULL;
        c->n = 0;
    } else {
        memcpy(t, s->prompt, n * sizeof *t);
        c->tokens = t;
        c->n = n;
    }
    s->hist_next = (s->hist_next + 1) % SYNTH_HISTORY;
}

/* A msgpack array of n nils: extra_keys as vLLM 0.26 sends it. */
static int
nil_array(struct synth *s, struct arena *a, size_t n, struct kv_raw *out)
{
    struct pack pk;
    uint8_t *p;

    buf_clear(&s->extra);
    pack_init(&pk, &s->extra);
    if (pack_array(&pk, n) == 0)
        for (size_t i = 0; i < n; i++)
            pack_nil(&pk);
    int failed = pack_error(&pk) != NULL;
    pack_free(&pk);
    if (failed || (p = arena_alloc(a, s->extra.len)) == NULL)
        return -1;
    memcpy(p, s->extra.p, s->extra.len);
    *out = (struct kv_raw){p, s->extra.len, KV_RAW_MSGPACK};
    return 0;
}

static const char medium_gpu[] = "GPU";
static const char spec_kind[] = "full_attention";

static void
set_str(struct kv_event *ev, enum kv_field f, const char *s)
{
    ev->present |= KV_BIT(f);
    ev->str[f].p = s;
    ev->str[f].n = strlen(s);
}

static void
set_int(struct kv_event *ev, enum kv_field f, int64_t v)
{
    ev->present |= KV_BIT(f);
    ev->num[f] = v;
}

static void
set_nil(struct kv_event *ev, enum kv_field f)
{
    ev->present |= KV_BIT(f);
    ev->isnull |= KV_BIT(f);
}

int
synth_next(struct synth *s, struct arena *arena, struct kv_batch *b)
{
    size_t n = make_prompt(s);
    size_t nb = n / s->bs, first_new = nb, n_evict = 0;
    uint64_t parent = SYNTH_ROOT;

    for (size_t i = 0; i < nb; i++) {
        s->chain[i] = block_hash(parent, s->prompt + i * s->bs, s->bs);
        parent = s->chain[i];
        if (first_new == nb && tab_get(s, s->chain[i]) == NIL)
            first_new = i;
    }
    /*
     * The answer block is new random tokens, so first_new < nb unless two
     * chains collide; then the last block is simply stored again, as an
     * engine does with a second physical copy.
     */
    if (first_new == nb)
        first_new = nb - 1;
    size_t n_new = nb - first_new;
    if (n_new > s->n_free)
        n_evict = n_new - s->n_free;

    struct kv_event *ev = arena_alloc(arena, (n_evict + 1) * sizeof *ev);
    struct kv_hash *hs = arena_alloc(arena, (n_evict + n_new) * sizeof *hs);
    uint32_t *tok = arena_alloc(arena, n_new * s->bs * sizeof *tok);
    if (ev == NULL || hs == NULL || tok == NULL)
        return -1;

    /* Touch the cached prefix leaf-first so its root stays most recent. */
    for (size_t i = first_new; i-- > 0;) {
        uint32_t k = tab_get(s, s->chain[i]);
        lru_unlink(s, k);
        lru_append(s, k);
    }
    for (size_t e = 0; e < n_evict; e++) {
        uint32_t k = s->lru_head;
        struct kv_event *r = &ev[e];
        lru_unlink(s, k);
        tab_del(s, s->blk[k].hash);
        s->free_list[s->n_free++] = k;
        kv_event_init(r, KV_BLOCK_REMOVED);
        r->index = (uint32_t)e;
        hs[e].v = s->blk[k].hash;
        r->hashes = &hs[e];
        r->n_hashes = 1;
        r->present |= KV_BIT(KV_F_BLOCK_HASHES);
        set_str(r, KV_F_MEDIUM, medium_gpu);
        set_int(r, KV_F_GROUP_IDX, 0);
    }
    /* Store leaf-last so that eviction takes a request's tail first. */
    for (size_t i = nb; i-- > first_new;) {
        uint32_t k = tab_get(s, s->chain[i]);
        /* A block can outlive its evicted parent: reuse its slot. */
        if (k != NIL) {
            lru_unlink(s, k);
        } else {
            k = s->free_list[--s->n_free];
            s->blk[k].hash = s->chain[i];
            tab_put(s, k);
        }
        lru_append(s, k);
    }

    struct kv_event *st = &ev[n_evict];
    kv_event_init(st, KV_BLOCK_STORED);
    st->index = (uint32_t)n_evict;
    st->hashes = &hs[n_evict];
    st->n_hashes = n_new;
    for (size_t i = 0; i < n_new; i++)
        hs[n_evict + i].v = s->chain[first_new + i];
    st->present |= KV_BIT(KV_F_BLOCK_HASHES) | KV_BIT(KV_F_TOKEN_IDS);
    if (first_new == 0) {
        set_nil(st, KV_F_PARENT_BLOCK_HASH);
    } else {
        st->present |= KV_BIT(KV_F_PARENT_BLOCK_HASH);
        st->parent.v = s->chain[first_new - 1];
    }
    memcpy(tok, s->prompt + first_new * s->bs, n_new * s->bs * sizeof *tok);
    st->tokens = tok;
    st->n_tokens = n_new * s->bs;
    set_int(st, KV_F_BLOCK_SIZE, s->bs);
    set_nil(st, KV_F_LORA_ID);
    set_str(st, KV_F_MEDIUM, medium_gpu);
    set_nil(st, KV_F_LORA_NAME);
    if (nil_array(s, arena, n_new, &st->raw[KV_F_EXTRA_KEYS]) == -1)
        return -1;
    st->present |= KV_BIT(KV_F_EXTRA_KEYS);
    set_int(st, KV_F_GROUP_IDX, 0);
    set_str(st, KV_F_KV_CACHE_SPEC_KIND, spec_kind);

    remember(s, n);
    b->events = ev;
    b->n_events = n_evict + 1;
    return 0;
}

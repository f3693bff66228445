/*
 * track.c - see track.h.
 */
#include "track.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vec.h"

/* The longest rate series kept per stream (intervals). */
#define RATE_MAX_BUCKETS 10000000
/* The deepest chain walked to rebuild a prompt (hostile input may loop). */
#define CHAIN_MAX 65536

/* One held block. */
struct blk {
    double ts;
    uint64_t key;
    uint64_t parent;
    uint32_t next_free;
    uint8_t has_ts, has_key, has_parent, medium;
};

struct track {
    struct track_opts o;
    /* Blocks carry a pool entry (ts, key, parent) only when lifetimes or
     * keys need it; summary and rate keep the bare set, which is what
     * makes them fast. */
    int need_blk;
    struct track_stream **st;
    size_t n_st, cap_st, last;
    struct pmap by_pod; /* (FNV-1a of pod, rank code) -> stream + 1 */
    char *media[TRACK_MAX_MEDIA];
    size_t n_media;
    struct blk *pool;
    uint32_t pool_n, pool_cap, free_head; /* free_head: index + 1, 0 none */
    /* Sharing: (key, stream + 1) -> blocks of the stream with that key;
     * (key, 0) -> streams holding it.  ever: keys ever stored. */
    struct pmap kc, ever;
    uint64_t *hold_end, *hold_peak; /* by number of holders */
    size_t hold_cap;
    uint64_t distinct;
    uint64_t *kbuf, *pbuf; /* event keys, prompt keys */
    size_t kcap, pcap;
    uint32_t *tbuf; /* first tokens of bigram pairs */
    size_t tcap;
    uint32_t block_size; /* of the first store that has one */
};

struct track *
track_new(const struct track_opts *o)
{
    struct track *t = calloc(1, sizeof *t);

    if (t == NULL)
        return NULL;
    t->o = *o;
    t->need_blk = o->lifetimes || o->keys;
    t->media[0] = strdup("GPU");
    if (t->media[0] == NULL) {
        free(t);
        return NULL;
    }
    t->n_media = 1;
    return t;
}

static void
stream_free(struct track_stream *s)
{
    if (s == NULL)
        return;
    free(s->pod);
    pmap_free(&s->blocks);
    free(s->rate);
    for (int m = 0; m < TRACK_MAX_MEDIA; m++) {
        if (s->life[m] != NULL)
            free(s->life[m]->v);
        free(s->life[m]);
    }
    free(s);
}

void
track_free(struct track *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n_st; i++)
        stream_free(t->st[i]);
    free(t->st);
    for (size_t m = 0; m < t->n_media; m++)
        free(t->media[m]);
    free(t->pool);
    pmap_free(&t->kc);
    pmap_free(&t->ever);
    pmap_free(&t->by_pod);
    free(t->hold_end);
    free(t->hold_peak);
    free(t->kbuf);
    free(t->pbuf);
    free(t->tbuf);
    free(t);
}

/* Room for every possible holder count, 0 .. streams, zeroed. */
static int
hold_grow(struct track *t, size_t need)
{
    size_t cap = t->hold_cap ? t->hold_cap : 16;
    uint64_t *e, *p;

    if (need <= t->hold_cap)
        return 0;
    while (cap < need)
        cap *= 2;
    e = realloc(t->hold_end, cap * sizeof *e);
    if (e == NULL)
        return -1;
    t->hold_end = e;
    p = realloc(t->hold_peak, cap * sizeof *p);
    if (p == NULL)
        return -1;
    t->hold_peak = p;
    memset(e + t->hold_cap, 0, (cap - t->hold_cap) * sizeof *e);
    memset(p + t->hold_cap, 0, (cap - t->hold_cap) * sizeof *p);
    t->hold_cap = cap;
    return 0;
}

static int
same_stream(const struct track_stream *s, const struct kv_env *env)
{
    return s->pod_len == env->pod.n &&
           memcmp(s->pod, env->pod.p, env->pod.n) == 0 &&
           s->has_rank == env->has_rank &&
           (!s->has_rank || s->rank == env->rank);
}

/* The by_pod key of env: a hash of the pod and a code for the rank. */
static uint64_t
pod_key(const struct kv_env *env, uint32_t *code)
{
    *code = env->has_rank ? (uint32_t)env->rank * 2u + 1u : 0;
    return blockkey_fnv1a64(env->pod.p, env->pod.n) ^
           (uint64_t)(env->has_rank ? env->rank : 0) << 32;
}

/* The stream of env if known, else -1; t->last is left alone. */
static long
stream_find(const struct track *t, const struct kv_env *env)
{
    uint32_t code;
    uint64_t key;
    const uint32_t *v;

    if (t->n_st > 0 && same_stream(t->st[t->last], env))
        return (long)t->last;
    key = pod_key(env, &code);
    v = pmap_get(&t->by_pod, key, code);
    if (v != NULL && *v < t->n_st && same_stream(t->st[*v], env))
        return (long)*v;
    /* Two streams whose keys collide: the second is found by a scan. */
    for (size_t i = 0; v != NULL && i < t->n_st; i++) {
        if (same_stream(t->st[i], env))
            return (long)i;
    }
    return -1;
}

/* The stream of env, created on first sight; -1 when out of memory. */
static long
stream_of(struct track *t, const struct kv_env *env)
{
    struct track_stream *s;
    uint32_t code, *v;
    uint64_t key;
    long found = stream_find(t, env);
    int created;

    if (found >= 0) {
        t->last = (size_t)found;
        return found;
    }
    key = pod_key(env, &code);
    v = pmap_put(&t->by_pod, key, code, &created);
    if (v == NULL)
        return -1;
    if (created)
        *v = (uint32_t)t->n_st;
    if (vec_grow((void **)&t->st, &t->cap_st, t->n_st + 1, sizeof *t->st))
        return -1;
    if (hold_grow(t, t->n_st + 2) == -1)
        return -1;
    s = calloc(1, sizeof *s);
    if (s == NULL || (s->pod = malloc(env->pod.n + 1)) == NULL) {
        free(s);
        return -1;
    }
    memcpy(s->pod, env->pod.p, env->pod.n);
    s->pod[env->pod.n] = '\0';
    s->pod_len = env->pod.n;
    s->has_rank = env->has_rank;
    s->rank = env->rank;
    t->st[t->n_st] = s;
    t->last = t->n_st++;
    return (long)t->last;
}

/*
 * The id of a medium; -2 for "every medium" (a null or empty medium on a
 * removal), -1 when TRACK_MAX_MEDIA names are already known.
 */
static int
medium_of(struct track *t, const struct kv_event *ev, int removal)
{
    uint32_t bit = KV_BIT(KV_F_MEDIUM);
    const struct kv_str *m = &ev->str[KV_F_MEDIUM];

    if (!(ev->present & bit) || (ev->isnull & bit) || m->n == 0)
        return removal ? -2 : 0;
    for (size_t i = 0; i < t->n_media; i++) {
        if (strlen(t->media[i]) == m->n && memcmp(t->media[i], m->p, m->n) == 0)
            return (int)i;
    }
    if (t->n_media == TRACK_MAX_MEDIA || memchr(m->p, '\0', m->n) != NULL)
        return -1;
    t->media[t->n_media] = strndup(m->p, m->n);
    if (t->media[t->n_media] == NULL)
        return -1;
    return (int)t->n_media++;
}

/* The id of the medium a store of ev names, without interning; -1 if new. */
static int
medium_find(const struct track *t, const struct kv_event *ev)
{
    uint32_t bit = KV_BIT(KV_F_MEDIUM);
    const struct kv_str *m = &ev->str[KV_F_MEDIUM];

    if (!(ev->present & bit) || (ev->isnull & bit) || m->n == 0)
        return 0;
    for (size_t i = 0; i < t->n_media; i++) {
        if (strlen(t->media[i]) == m->n && memcmp(t->media[i], m->p, m->n) == 0)
            return (int)i;
    }
    return -1;
}

/* How many of an event's blocks track_prefetch asks for. */
#define PREFETCH_MAX 8

void
track_prefetch(const struct track *t, const struct kv_env *env,
               const struct kv_event *ev)
{
    long sid;
    int m;

    if (ev->type != KV_BLOCK_STORED && ev->type != KV_BLOCK_REMOVED)
        return;
    if ((sid = stream_find(t, env)) < 0 || (m = medium_find(t, ev)) < 0)
        return;
    const struct pmap *blocks = &t->st[sid]->blocks;
    uint32_t pbit = KV_BIT(KV_F_PARENT_BLOCK_HASH);

    if (ev->type == KV_BLOCK_STORED && (ev->present & pbit) &&
        !(ev->isnull & pbit))
        pmap_prefetch(blocks, ev->parent.v, 0);
    for (size_t i = 0; i < ev->n_hashes && i < PREFETCH_MAX; i++)
        pmap_prefetch(blocks, ev->hashes[i].v, (uint32_t)m);
}

static long
blk_alloc(struct track *t)
{
    if (t->free_head != 0) {
        uint32_t i = t->free_head - 1;

        t->free_head = t->pool[i].next_free;
        return i;
    }
    size_t cap = t->pool_cap;
    if (t->pool_n == UINT32_MAX ||
        vec_grow((void **)&t->pool, &cap, (size_t)t->pool_n + 1,
                 sizeof *t->pool))
        return -1;
    t->pool_cap = (uint32_t)cap;
    return t->pool_n++;
}

static void
life_add(struct track_stream *s, int medium, const struct blk *b, int has_end,
         double end, int censor)
{
    struct track_life *l = s->life[medium];

    if (l == NULL) {
        l = s->life[medium] = calloc(1, sizeof *l);
        if (l == NULL)
            return;
    }
    if (censor || !has_end || !b->has_ts) {
        l->censored++;
        return;
    }
    if (end < b->ts) {
        l->negative++;
        return;
    }
    if (vec_grow((void **)&l->v, &l->cap, l->n + 1, sizeof *l->v) == 0)
        l->v[l->n++] = end - b->ts;
}

/* One more stream holds key (it held no block with it before). */
static int
holders_inc(struct track *t, uint64_t key, uint32_t *old)
{
    int created;
    uint32_t *h = pmap_put(&t->kc, key, 0, &created);

    if (h == NULL)
        return -1;
    *old = (*h)++;
    if (*old > 0)
        t->hold_end[*old]--;
    if (++t->hold_end[*h] > t->hold_peak[*h])
        t->hold_peak[*h] = t->hold_end[*h];
    return 0;
}

static void
holders_dec(struct track *t, uint64_t key)
{
    uint32_t *h = pmap_get(&t->kc, key, 0);

    if (h == NULL)
        return;
    t->hold_end[*h]--;
    if (--*h == 0) {
        pmap_del(&t->kc, key, 0);
        return;
    }
    /* Fewer holders of this key can mean a new peak of keys with that
     * many. */
    if (++t->hold_end[*h] > t->hold_peak[*h])
        t->hold_peak[*h] = t->hold_end[*h];
}

/* Forgets one block of stream sid (its map slot is removed by the caller). */
static void
blk_drop(struct track *t, size_t sid, uint32_t bi, int has_end, double end,
         int censor)
{
    struct track_stream *s = t->st[sid];
    struct blk *b;

    if (!t->need_blk) {
        s->held--;
        return;
    }
    b = &t->pool[bi];
    if (t->o.lifetimes)
        life_add(s, b->medium, b, has_end, end, censor);
    if (b->has_key) {
        uint32_t *c = pmap_get(&t->kc, b->key, (uint32_t)sid + 1);

        if (c != NULL && --*c == 0) {
            pmap_del(&t->kc, b->key, (uint32_t)sid + 1);
            holders_dec(t, b->key);
            s->held_keys--;
        }
    }
    b->next_free = t->free_head;
    t->free_head = bi + 1;
    s->held--;
}

/* Empties a stream: AllBlocksCleared (ends lifetimes) or restart (censors). */
static void
stream_clear(struct track *t, size_t sid, int has_end, double end, int censor)
{
    struct track_stream *s = t->st[sid];

    for (size_t i = 0; i < s->blocks.cap; i++) {
        if (s->blocks.s[i].tag != 0)
            blk_drop(t, sid, (uint32_t)s->blocks.s[i].v, has_end, end, censor);
    }
    pmap_clear(&s->blocks);
}

/* The map value of an engine hash under any medium, or NULL. */
static const uint32_t *
held_any(struct track *t, struct track_stream *s, uint64_t hash)
{
    for (size_t m = 0; m < t->n_media; m++) {
        const uint32_t *v = pmap_get(&s->blocks, hash, (uint32_t)m);

        if (v != NULL)
            return v;
    }
    return NULL;
}

/* The block of an engine hash under any medium, or NULL (need_blk only). */
static struct blk *
find_any(struct track *t, struct track_stream *s, uint64_t hash)
{
    const uint32_t *v = held_any(t, s, hash);

    return v != NULL ? &t->pool[*v] : NULL;
}

/* Why an event's blocks have no chained keys. */
enum keyed { KEYED = 0, UNKEYED = 1, ORPHAN = 2 };

/* The block size an event implies: its own, or tokens / hashes. */
static size_t
block_size_of(const struct kv_event *ev)
{
    uint32_t bit = KV_BIT(KV_F_BLOCK_SIZE);

    if ((ev->present & bit) && !(ev->isnull & bit) &&
        ev->num[KV_F_BLOCK_SIZE] > 0)
        return (size_t)ev->num[KV_F_BLOCK_SIZE];
    if (ev->n_hashes > 0 && ev->n_tokens % ev->n_hashes == 0)
        return ev->n_tokens / ev->n_hashes;
    return 0;
}

/* Fills t->kbuf with the event's chained keys (docs/kvindex.md#what-it-keeps).
 */
static int
event_keys(struct track *t, const struct kv_env *env, const struct kv_event *ev,
           const struct blk *parent)
{
    struct blockkey_cfg cfg = t->o.key_cfg;
    const uint32_t *tok = ev->tokens;
    size_t bs = block_size_of(ev);

    if (bs == 0 || ev->n_tokens != ev->n_hashes * bs)
        return UNKEYED;
    if (vec_grow((void **)&t->kbuf, &t->kcap, ev->n_hashes, sizeof *t->kbuf))
        return UNKEYED;
    if (ev->token_pairs) {
        /* SGLang bigram pages key on each pair's first token, as kvindex. */
        if (vec_grow((void **)&t->tbuf, &t->tcap, ev->n_tokens,
                     sizeof *t->tbuf))
            return UNKEYED;
        for (size_t i = 0; i < ev->n_tokens; i++)
            t->tbuf[i] = ev->tokens[2 * i];
        tok = t->tbuf;
    }
    if (cfg.scheme == BLOCKKEY_LLMD) {
        const struct kv_str *lora = &ev->str[KV_F_LORA_NAME];
        uint32_t lb = KV_BIT(KV_F_LORA_NAME);
        const char *name = t->o.default_model ? t->o.default_model : "";
        size_t nlen = strlen(name);

        if ((ev->present & lb) && !(ev->isnull & lb) && lora->n > 0) {
            name = lora->p;
            nlen = lora->n;
        } else if (env->model.p != NULL) {
            name = env->model.p;
            nlen = env->model.n;
        }
        cfg.llmd_root = blockkey_llmd_root(t->o.hash_seed,
                                           strlen(t->o.hash_seed), name, nlen);
    }
    blockkey_chain(&cfg, parent != NULL ? &parent->key : NULL, tok,
                   ev->n_tokens, (uint32_t)bs, t->kbuf);
    return KEYED;
}

/*
 * Rebuilds the prompt of a keyed store: the keys of its ancestors (walked
 * through parent hashes) then its own.  Returns the number of keys, 0 when
 * an ancestor is gone or has no key.
 */
static size_t
prompt_keys(struct track *t, struct track_stream *s, const struct blk *parent,
            size_t n_new)
{
    size_t n = 0;

    for (const struct blk *b = parent; b != NULL; n++) {
        if (!b->has_key || n == CHAIN_MAX ||
            vec_grow((void **)&t->pbuf, &t->pcap, n + 1, sizeof *t->pbuf))
            return 0;
        t->pbuf[n] = b->key;
        if (!b->has_parent) {
            b = NULL;
        } else if ((b = find_any(t, s, b->parent)) == NULL) {
            return 0;
        }
    }
    if (vec_grow((void **)&t->pbuf, &t->pcap, n + n_new, sizeof *t->pbuf))
        return 0;
    for (size_t i = 0; i < n / 2; i++) {
        uint64_t k = t->pbuf[i];

        t->pbuf[i] = t->pbuf[n - 1 - i];
        t->pbuf[n - 1 - i] = k;
    }
    memcpy(t->pbuf + n, t->kbuf, n_new * sizeof *t->pbuf);
    return n + n_new;
}

/* Sharing bookkeeping for a block the stream did not hold before. */
static int
share_add(struct track *t, size_t sid, uint64_t key)
{
    struct track_stream *s = t->st[sid];
    uint32_t *c, old;
    int created;

    c = pmap_put(&t->kc, key, (uint32_t)sid + 1, &created);
    if (c == NULL)
        return -1;
    if ((*c)++ == 0) {
        if (holders_inc(t, key, &old) == -1)
            return -1;
        s->computed++;
        if (old > 0)
            s->elsewhere++;
        if (++s->held_keys > s->held_keys_peak)
            s->held_keys_peak = s->held_keys;
    }
    if (pmap_put(&t->ever, key, (uint32_t)sid + 1, &created) == NULL)
        return -1;
    s->distinct += (uint64_t)created;
    if (pmap_put(&t->ever, key, 0, &created) == NULL)
        return -1;
    t->distinct += (uint64_t)created;
    return 0;
}

static int
store_one(struct track *t, size_t sid, const struct kv_env *env, int medium,
          uint64_t hash, int has_parent, uint64_t parent, const uint64_t *key)
{
    struct track_stream *s = t->st[sid];
    uint32_t *v;
    long bi;
    int created;

    v = pmap_put(&s->blocks, hash, (uint32_t)medium, &created);
    if (v == NULL)
        return -1;
    if (!created)
        return 0;
    if (!t->need_blk) {
        if (++s->held > s->peak)
            s->peak = s->held;
        return 0;
    }
    if ((bi = blk_alloc(t)) == -1) {
        pmap_del(&s->blocks, hash, (uint32_t)medium);
        return -1;
    }
    *v = (uint64_t)bi;
    struct blk *b = &t->pool[bi];
    memset(b, 0, sizeof *b);
    b->ts = env->ts;
    b->has_ts = (uint8_t)env->has_ts;
    b->medium = (uint8_t)medium;
    b->has_parent = (uint8_t)has_parent;
    b->parent = parent;
    if (++s->held > s->peak)
        s->peak = s->held;
    if (key == NULL) {
        s->unkeyed++;
        return 0;
    }
    b->has_key = 1;
    b->key = *key;
    return share_add(t, sid, *key);
}

static int
on_stored(struct track *t, size_t sid, const struct kv_env *env,
          const struct kv_event *ev)
{
    struct track_stream *s = t->st[sid];
    uint32_t pbit = KV_BIT(KV_F_PARENT_BLOCK_HASH);
    int has_parent = (ev->present & pbit) && !(ev->isnull & pbit);
    int medium = medium_of(t, ev, 0), k = UNKEYED;
    const struct blk *pb = NULL;

    if (medium < 0)
        return -1;
    if (t->block_size == 0 && block_size_of(ev) <= UINT32_MAX)
        t->block_size = (uint32_t)block_size_of(ev);
    if (has_parent) {
        const uint32_t *pv = held_any(t, s, ev->parent.v);

        if (pv == NULL) {
            s->orphans++;
            k = ORPHAN;
        } else if (t->need_blk) {
            pb = &t->pool[*pv];
        }
    }
    if (t->o.keys && k != ORPHAN && (pb == NULL || pb->has_key))
        k = event_keys(t, env, ev, pb);
    if (k == KEYED && t->o.on_request != NULL) {
        size_t n = prompt_keys(t, s, pb, ev->n_hashes);

        if (n > 0)
            t->o.on_request(t->o.ctx, sid, t->pbuf, n, ev->n_hashes);
    }
    /* pb may move from here on: the stores below can grow the pool. */
    s->blocks_stored += ev->n_hashes;
    for (size_t i = 0; i < ev->n_hashes; i++) {
        if (store_one(t, sid, env, medium, ev->hashes[i].v,
                      i > 0 ? 1 : has_parent,
                      i > 0 ? ev->hashes[i - 1].v : ev->parent.v,
                      k == KEYED ? &t->kbuf[i] : NULL) == -1)
            return -1;
    }
    return 0;
}

static int
drop_hash(struct track *t, size_t sid, const struct kv_env *env, uint64_t hash,
          int medium)
{
    struct track_stream *s = t->st[sid];
    uint32_t *v = pmap_get(&s->blocks, hash, (uint32_t)medium);

    if (v == NULL)
        return 0;
    blk_drop(t, sid, (uint32_t)*v, env->has_ts, env->ts, 0);
    pmap_del(&s->blocks, hash, (uint32_t)medium);
    return 1;
}

static int
on_removed(struct track *t, size_t sid, const struct kv_env *env,
           const struct kv_event *ev)
{
    struct track_stream *s = t->st[sid];
    int medium = medium_of(t, ev, 1);

    if (medium == -1)
        return -1;
    s->blocks_removed += ev->n_hashes;
    for (size_t i = 0; i < ev->n_hashes; i++) {
        int found = 0;

        if (medium >= 0) {
            found = drop_hash(t, sid, env, ev->hashes[i].v, medium);
        } else {
            for (size_t m = 0; m < t->n_media; m++)
                found |= drop_hash(t, sid, env, ev->hashes[i].v, (int)m);
        }
        if (!found)
            s->unknown_removed++;
    }
    return 0;
}

/* The interval of ts in the stream's series, grown as needed; NULL if the
 * series would be too long. */
static struct track_bucket *
bucket_of(struct track_stream *s, int64_t idx)
{
    size_t n = s->rate_n, front = 0, need;
    struct track_bucket *nb;

    if (n > 0 && idx >= s->rate_base && idx < s->rate_base + (int64_t)n)
        return &s->rate[idx - s->rate_base];
    if (n == 0) {
        need = 1;
    } else if (idx < s->rate_base) {
        if (s->rate_base - idx > RATE_MAX_BUCKETS)
            return NULL;
        front = (size_t)(s->rate_base - idx);
        need = n + front;
    } else {
        if (idx - s->rate_base >= RATE_MAX_BUCKETS)
            return NULL;
        need = (size_t)(idx - s->rate_base) + 1;
    }
    if (need > RATE_MAX_BUCKETS ||
        (nb = realloc(s->rate, need * sizeof *nb)) == NULL)
        return NULL;
    memmove(nb + front, nb, n * sizeof *nb);
    memset(nb, 0, front * sizeof *nb);
    memset(nb + front + n, 0, (need - front - n) * sizeof *nb);
    s->rate = nb;
    s->rate_n = need;
    if (n == 0 || front > 0)
        s->rate_base = idx;
    return &s->rate[idx - s->rate_base];
}

static int
rate_note(struct track *t, struct track_stream *s, const struct kv_env *env,
          const struct kv_event *ev)
{
    struct track_bucket *b;
    double q;

    if (t->o.every <= 0 || !env->has_ts)
        return 0;
    q = floor(env->ts / t->o.every);
    if (!(fabs(q) < 1e15))
        return 0;
    if ((b = bucket_of(s, (int64_t)q)) == NULL)
        return -1;
    b->events++;
    if (ev->type == KV_BLOCK_STORED)
        b->stored += ev->n_hashes;
    else if (ev->type == KV_BLOCK_REMOVED)
        b->removed += ev->n_hashes;
    b->occupancy = s->held;
    b->touched = 1;
    return 0;
}

static void
note_ts(struct track_stream *s, const struct kv_env *env)
{
    if (!env->has_ts)
        return;
    if (!s->has_ts) {
        s->ts_min = s->ts_max = env->ts;
        s->has_ts = 1;
        return;
    }
    if (env->ts < s->ts_max)
        s->ts_backwards++;
    else
        s->ts_max = env->ts;
    if (env->ts < s->ts_min)
        s->ts_min = env->ts;
}

/* Applies one event to stream sid. */
static int
apply(struct track *t, long sid, const struct kv_env *env,
      const struct kv_event *ev, char *err, size_t errlen)
{
    struct track_stream *s;
    int rc = 0;

    if (sid < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s = t->st[sid];
    s->events++;
    s->by_type[ev->type]++;
    note_ts(s, env);
    switch (ev->type) {
    case KV_BLOCK_STORED:
        rc = on_stored(t, (size_t)sid, env, ev);
        break;
    case KV_BLOCK_REMOVED:
        rc = on_removed(t, (size_t)sid, env, ev);
        break;
    case KV_ALL_BLOCKS_CLEARED:
        stream_clear(t, (size_t)sid, env->has_ts, env->ts, 0);
        break;
    case KV_RESTART:
        stream_clear(t, (size_t)sid, 0, 0, 1);
        break;
    case KV_GAP:
        if (ev->to >= ev->from)
            s->lost_seqs += ev->to - ev->from + 1;
        break;
    default:
        break;
    }
    if (rc == -1) {
        snprintf(err, errlen, "out of memory, or more than %d media",
                 TRACK_MAX_MEDIA);
        return -1;
    }
    if (rate_note(t, s, env, ev) == -1) {
        snprintf(err, errlen,
                 "%s: the rate series would exceed %d intervals; "
                 "use a longer --every",
                 s->pod, RATE_MAX_BUCKETS);
        return -1;
    }
    return 0;
}

int
track_event(struct track *t, const struct kv_env *env,
            const struct kv_event *ev, char *err, size_t errlen)
{
    size_t n = t->n_st, hits = 0;

    /*
     * A gap or restart with a null dp_rank cannot say which stream it was:
     * like kvindex (docs/kvindex.md#how-events-apply) it applies to every
     * known rank of its pod, or to (pod, null) when none is known.
     */
    if ((ev->type == KV_GAP || ev->type == KV_RESTART) && !env->has_rank) {
        for (size_t i = 0; i < n; i++) {
            const struct track_stream *s = t->st[i];

            if (!s->has_rank || s->pod_len != env->pod.n ||
                memcmp(s->pod, env->pod.p, env->pod.n) != 0)
                continue;
            hits++;
            if (apply(t, (long)i, env, ev, err, errlen) == -1)
                return -1;
        }
        if (hits > 0)
            return 0;
    }
    return apply(t, stream_of(t, env), env, ev, err, errlen);
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

void
track_finish(struct track *t)
{
    for (size_t i = 0; i < t->n_st; i++) {
        struct track_stream *s = t->st[i];

        for (size_t j = 0; t->o.lifetimes && j < s->blocks.cap; j++) {
            if (s->blocks.s[j].tag != 0)
                life_add(s, t->pool[s->blocks.s[j].v].medium,
                         &t->pool[s->blocks.s[j].v], 0, 0, 1);
        }
        for (int m = 0; m < TRACK_MAX_MEDIA; m++) {
            if (s->life[m] != NULL && s->life[m]->n > 1)
                qsort(s->life[m]->v, s->life[m]->n, sizeof(double), cmp_double);
        }
        /* An interval without events keeps the occupancy before it. */
        for (size_t j = 1; j < s->rate_n; j++) {
            if (!s->rate[j].touched)
                s->rate[j].occupancy = s->rate[j - 1].occupancy;
        }
    }
}

size_t
track_stream_count(const struct track *t)
{
    return t->n_st;
}

struct track_stream *
track_stream_at(const struct track *t, size_t i)
{
    return i < t->n_st ? t->st[i] : NULL;
}

uint32_t
track_block_size(const struct track *t)
{
    return t->block_size;
}

size_t
track_media_count(const struct track *t)
{
    return t->n_media;
}

const char *
track_medium_name(const struct track *t, size_t id)
{
    return id < t->n_media ? t->media[id] : NULL;
}

void
track_holders(const struct track *t, uint64_t *distinct, const uint64_t **end,
              const uint64_t **peak, size_t *n_max)
{
    *distinct = t->distinct;
    *end = t->hold_end;
    *peak = t->hold_peak;
    *n_max = t->n_st;
}

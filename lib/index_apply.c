/*
 * index_apply.c - applying events to the prefix index
 * (docs/kvindex.md#how-events-apply): stores, removals, clears, and the gap
 * and restart records, with the counters and the orphan alarm they keep.
 * Its own file because it is the index's write path, built on the table
 * operations of index.c (index_impl.h).  Per block, the hot loop
 * (store_chunk) calls two of them, em_find and entry_add, each a probe or an
 * insertion that costs far more than the call; the other helpers it uses are
 * inline in index_impl.h.
 */
#include "index_impl.h"

#include "fmt.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define STORE_CHUNK 16

static const char *const reject_names[INDEX_REJ_COUNT] = {
    [INDEX_REJ_NONE] = "none",
    [INDEX_REJ_ORPHAN] = "orphan",
    [INDEX_REJ_MISALIGNED] = "misaligned",
    [INDEX_REJ_BLOCK_SIZE] = "block_size",
    [INDEX_REJ_INVALID] = "invalid",
    [INDEX_REJ_NOMEM] = "nomem",
    [INDEX_REJ_NAME] = "bad_name",
};

const char *
index_reject_name(enum index_reject r)
{
    if ((unsigned)r >= INDEX_REJ_COUNT)
        return "?";
    return reject_names[r];
}

static int
has_value(const struct kv_event *ev, enum kv_field f)
{
    return (ev->present & KV_BIT(f)) && !(ev->isnull & KV_BIT(f));
}

/*
 * The event's LoRA: lora_name when non-empty, else lora_id in decimal (older
 * engines), else the base model ("").
 */
static size_t
event_lora(const struct kv_event *ev, char *buf, size_t cap, const char **out)
{
    if (has_value(ev, KV_F_LORA_NAME) && ev->str[KV_F_LORA_NAME].n) {
        *out = ev->str[KV_F_LORA_NAME].p;
        return ev->str[KV_F_LORA_NAME].n;
    }
    if (has_value(ev, KV_F_LORA_ID)) {
        assert(cap >= 21);
        *out = buf;
        return fmt_i64(buf, ev->num[KV_F_LORA_ID]);
    }
    *out = "";
    return 0;
}

/* The token of each position: SGLang bigram pages carry [a, b] pairs, of
 * which the first token is the position's token. */
static const uint32_t *
event_tokens(struct kv_index *ix, const struct kv_event *ev)
{
    if (!ev->token_pairs)
        return ev->tokens;
    if (ev->n_tokens > ix->tok_cap) {
        uint32_t *t = realloc(ix->tok, ev->n_tokens * sizeof *t);

        if (t == NULL)
            return NULL;
        ix->tok = t;
        ix->tok_cap = ev->n_tokens;
    }
    for (size_t i = 0; i < ev->n_tokens; i++)
        ix->tok[i] = ev->tokens[2 * i];
    return ix->tok;
}

/*
 * Stores up to STORE_CHUNK blocks of one event so that the chunk's cache
 * misses overlap instead of queueing.  First the engine-map slots are
 * prefetched, and every block's key is hashed as if all were new, its key
 * slot prefetched: the hashing runs under the engine-map misses, and the
 * key-slot misses under each other.  Then each block is resolved (already
 * mapped, a repeat of an earlier block of the chunk, or new), then linked.
 * The result is that of storing block by block: a mapped hash is a
 * re-store (adds the medium) and the chain goes on from its key, so when
 * that key is not the guessed one, the keys after it are hashed again.
 */
static void
store_chunk(struct kv_index *ix, uint32_t p, uint32_t nsid,
            const struct kv_hash *hs, size_t n, const uint32_t *tok,
            uint32_t bs, uint32_t media, uint64_t *parent, int *has_parent)
{
    enum { OLD, NEW, REPEAT };
    struct pod *pod = &ix->pods[p];
    const struct blockkey_cfg *cfg = &ix->ns[nsid].cfg;
    uint64_t keys[STORE_CHUNK], guess[STORE_CHUNK];
    uint32_t ids[STORE_CHUNK];
    uint8_t kind[STORE_CHUNK];
    int guessed = 1;

    for (size_t i = 0; i < n; i++)
        em_prefetch(&pod->map, hs[i].v);
    blockkey_chain(cfg, *has_parent ? parent : NULL, tok, n * bs, bs, guess);
    for (size_t i = 0; i < n; i++)
        __builtin_prefetch(&ix->ks[ks_home(ix, nsid, guess[i])]);
    for (size_t i = 0; i < n; i++) {
        uint32_t s = em_find(ix, &pod->map, hs[i].v);

        if (s != NONE) {
            kind[i] = OLD;
            ids[i] = em_id(&pod->map, s);
            keys[i] = ix->ks[ix->ent[ids[i]].key_slot].key;
        } else {
            kind[i] = NEW;
            for (size_t j = 0; j < i; j++) {
                if (hs[j].v == hs[i].v) {
                    kind[i] = REPEAT;
                    ids[i] = (uint32_t)j;
                    keys[i] = keys[j];
                    break;
                }
            }
            if (kind[i] == NEW)
                keys[i] = guessed
                              ? guess[i]
                              : blockkey_next(cfg, *has_parent ? parent : NULL,
                                              tok + i * bs, bs);
        }
        guessed = guessed && keys[i] == guess[i];
        *parent = keys[i];
        *has_parent = 1;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t id;

        if (kind[i] != NEW) {
            id = kind[i] == OLD ? ids[i] : ids[ids[i]];
            ix->ent[id].media |= media;
            lru_touch(ix, id);
            continue;
        }
        ids[i] = entry_add(ix, p, nsid, keys[i], hs[i].v, media);
    }
}

/*
 * Counts an orphaned store of pod p.  Past the threshold the pod is
 * degraded: it has missed the stores its engine chains on (it joined
 * mid-stream, or lost events without a gap record), so its answers can be
 * short, and the caller is told once per run (index_orphan_alarm).
 */
static void
pod_orphaned(struct kv_index *ix, uint32_t p)
{
    struct pod *pod = &ix->pods[p];

    pod->orphans++;
    if (ix->degraded_orphans && ++pod->orphan_run == ix->degraded_orphans + 1) {
        pod->degraded = 1;
        ix->orphan_alarm = p;
    }
}

static enum index_reject
apply_stored(struct kv_index *ix, uint32_t p, const struct kv_env *env,
             const struct kv_event *ev)
{
    struct pod *pod = &ix->pods[p];
    char lbuf[24];
    const char *model, *lora;
    size_t mn, ln;
    int64_t bs64;
    uint32_t bs, nsid;
    uint64_t parent = 0;
    int has_parent = 0, bit = 0;
    const uint32_t *tok;

    if (!has_value(ev, KV_F_BLOCK_HASHES) || !has_value(ev, KV_F_TOKEN_IDS) ||
        !has_value(ev, KV_F_BLOCK_SIZE))
        return INDEX_REJ_INVALID;
    bs64 = ev->num[KV_F_BLOCK_SIZE];
    if (bs64 <= 0 || bs64 > UINT32_MAX)
        return INDEX_REJ_INVALID;
    bs = (uint32_t)bs64;
    if (env->model.p) {
        model = env->model.p;
        mn = env->model.n;
    } else {
        model = ix->default_model;
        mn = strlen(model);
    }
    ln = event_lora(ev, lbuf, sizeof lbuf, &lora);
    nsid = ns_find(ix, model, mn, lora, ln);
    if (nsid != NONE && ix->ns[nsid].block_size != bs)
        return INDEX_REJ_BLOCK_SIZE;
    if (ev->n_tokens / bs != ev->n_hashes || ev->n_tokens % bs) {
        pod->misaligned++;
        return INDEX_REJ_MISALIGNED;
    }
    /* The parent's and the first blocks' engine-map slots miss the cache
     * together rather than one after the other. */
    for (size_t i = 0; i < ev->n_hashes && i < STORE_CHUNK; i++)
        em_prefetch(&pod->map, ev->hashes[i].v);
    if (has_value(ev, KV_F_PARENT_BLOCK_HASH)) {
        uint32_t s = em_find(ix, &pod->map, ev->parent.v);

        if (s == NONE) {
            pod_orphaned(ix, p);
            return INDEX_REJ_ORPHAN;
        }
        parent = ix->ks[ix->ent[em_id(&pod->map, s)].key_slot].key;
        has_parent = 1;
    }
    if (has_value(ev, KV_F_MEDIUM) && ev->str[KV_F_MEDIUM].n) {
        bit = index_medium_intern(ix, ev->str[KV_F_MEDIUM].p,
                                  ev->str[KV_F_MEDIUM].n);
        if (bit < 0)
            return name_ok(ev->str[KV_F_MEDIUM].p, ev->str[KV_F_MEDIUM].n)
                       ? INDEX_REJ_INVALID
                       : INDEX_REJ_NAME;
    }
    if (nsid == NONE) {
        nsid = ns_create(ix, model, mn, lora, ln, bs);
        if (nsid == NONE)
            return errno == EILSEQ ? INDEX_REJ_NAME : INDEX_REJ_NOMEM;
    }
    tok = event_tokens(ix, ev);
    if ((ev->n_tokens && tok == NULL) || ent_reserve(ix, ev->n_hashes) ||
        ks_reserve(ix, ev->n_hashes) || em_reserve(&pod->map, ev->n_hashes))
        return INDEX_REJ_NOMEM;
    for (size_t c0 = 0; c0 < ev->n_hashes; c0 += STORE_CHUNK) {
        size_t n =
            ev->n_hashes - c0 < STORE_CHUNK ? ev->n_hashes - c0 : STORE_CHUNK;

        store_chunk(ix, p, nsid, ev->hashes + c0, n, tok + c0 * bs, bs,
                    1u << bit, &parent, &has_parent);
    }
    lru_evict(ix);
    return INDEX_REJ_NONE;
}

static void
apply_removed(struct kv_index *ix, uint32_t p, const struct kv_event *ev)
{
    struct pod *pod = &ix->pods[p];
    uint32_t mask = UINT32_MAX;

    if (has_value(ev, KV_F_MEDIUM) && ev->str[KV_F_MEDIUM].n) {
        int bit =
            medium_find(ix, ev->str[KV_F_MEDIUM].p, ev->str[KV_F_MEDIUM].n);

        /* A medium nobody stored holds nothing to remove. */
        mask = bit < 0 ? 0 : 1u << bit;
    }
    for (size_t i = 0; i < ev->n_hashes; i++) {
        uint32_t s = em_find(ix, &pod->map, ev->hashes[i].v), id;

        if (s == NONE) {
            ix->unknown_removed++;
            continue;
        }
        id = em_id(&pod->map, s);
        ix->ent[id].media &= ~mask;
        if (ix->ent[id].media == 0) {
            entry_drop(ix, id);
            em_delete_slot(&pod->map, s);
        }
    }
}

/*
 * The bit of the medium an event names in field f: 0 (the GPU) when it
 * names none, -1 for a medium nothing was stored in yet (intern 0: look
 * only) or when the table is full (intern 1).
 */
static int
event_medium(struct kv_index *ix, const struct kv_event *ev, enum kv_field f,
             int intern)
{
    if (!has_value(ev, f) || ev->str[f].n == 0)
        return 0;
    if (intern)
        return index_medium_intern(ix, ev->str[f].p, ev->str[f].n);
    return medium_find(ix, ev->str[f].p, ev->str[f].n);
}

/*
 * ATOM's BlockTransferred (docs/kvindex.md#how-events-apply): each block
 * the pod holds leaves from_medium and is held in to_medium; a block the
 * pod does not hold is counted like an unknown removal.
 */
static enum index_reject
apply_transferred(struct kv_index *ix, uint32_t p, const struct kv_event *ev)
{
    struct pod *pod = &ix->pods[p];
    int from = event_medium(ix, ev, KV_F_FROM_MEDIUM, 0);
    int to = event_medium(ix, ev, KV_F_TO_MEDIUM, 1);

    if (!has_value(ev, KV_F_BLOCK_HASHES) || to < 0)
        return INDEX_REJ_INVALID;
    for (size_t i = 0; i < ev->n_hashes; i++) {
        uint32_t s = em_find(ix, &pod->map, ev->hashes[i].v);

        if (s == NONE) {
            ix->unknown_removed++;
            continue;
        }
        struct entry *e = &ix->ent[em_id(&pod->map, s)];
        if (from >= 0)
            e->media &= ~(1u << from);
        e->media |= 1u << to;
    }
    return INDEX_REJ_NONE;
}

/*
 * An AllBlocksCleared that names a medium (ATOM, Mooncake) empties only
 * that medium: blocks held elsewhere too stay, the others go.
 */
static enum index_reject
apply_cleared_medium(struct kv_index *ix, uint32_t p, const struct kv_event *ev)
{
    struct emap *m = &ix->pods[p].map;
    int bit = event_medium(ix, ev, KV_F_MEDIUM, 0);
    uint64_t *gone = NULL;
    size_t n = 0;

    if (bit < 0)
        return INDEX_REJ_NONE; /* nothing was ever stored there */
    if (m->cap > 0 && (gone = malloc(m->cap * sizeof *gone)) == NULL)
        return INDEX_REJ_NOMEM;
    /* Drop after the walk: a deletion moves other slots of the table. */
    for (uint32_t i = 0; i < m->cap; i++) {
        if (m->slot[i] == EM_EMPTY)
            continue;
        struct entry *e = &ix->ent[em_id(m, i)];
        e->media &= ~(1u << bit);
        if (e->media == 0)
            gone[n++] = e->engine_hash;
    }
    for (size_t k = 0; k < n; k++) {
        uint32_t s = em_find(ix, m, gone[k]);
        entry_drop(ix, em_id(m, s));
        em_delete_slot(m, s);
    }
    free(gone);
    return INDEX_REJ_NONE;
}

/*
 * Notes that pod p was named by an event at env's seq and ts, and where its
 * stream stands.  A gap record carries the ts of the batch after the hole,
 * not of its own seq, so it never sets seq_ts.
 */
static void
pod_seen(struct kv_index *ix, struct pod *pod, const struct kv_env *env,
         enum kv_type t)
{
    pod->has_event_at = 1;
    pod->event_at = ix->clock;
    if (env->has_seq) {
        if (pod->has_seq && pod->last_seq == env->seq) {
            pod->seq_lines++;
        } else {
            pod->seq_lines = 1;
            pod->has_seq_ts = 0;
        }
        pod->has_seq = 1;
        pod->last_seq = env->seq;
        if (env->has_ts && t != KV_GAP) {
            pod->has_seq_ts = 1;
            pod->seq_ts = env->ts;
        }
    }
    if (env->has_ts) {
        pod->has_ts = 1;
        pod->last_ts = env->ts;
    }
    if (env->stream.p && env->stream.n == sizeof pod->stream - 1)
        memcpy(pod->stream, env->stream.p, env->stream.n);
}

/*
 * Whether env comes from another engine process than the one pod's
 * snapshot saw: another stream id; or, for an engine event (records carry
 * another batch's ts), a ts that cannot belong to the same process's seq:
 * a different one at the same seq, a later one at an earlier seq, an
 * earlier one at a later seq.
 */
static int
other_engine(const struct pod *pod, const struct kv_env *env, enum kv_type t)
{
    if (env->stream.p && pod->stream[0])
        return env->stream.n != sizeof pod->stream - 1 ||
               !kv_bytes_eq(env->stream.p, pod->stream, env->stream.n);
    if (!env->has_ts || (t != KV_BLOCK_STORED && t != KV_BLOCK_REMOVED &&
                         t != KV_ALL_BLOCKS_CLEARED))
        return 0;
    if (env->seq == pod->last_seq)
        return pod->has_seq_ts && env->ts != pod->seq_ts;
    if (!pod->has_ts)
        return 0;
    return env->seq < pod->last_seq ? env->ts > pod->last_ts
                                    : env->ts < pod->last_ts;
}

static void
resume_degrade(struct kv_index *ix, uint32_t p, int other, uint64_t from,
               uint64_t to)
{
    struct pod *pod = &ix->pods[p];

    pod->degraded = 1;
    ix->resume_alarm = p;
    ix->resume_why = (struct index_resume_alarm){
        .pod = pod->name,
        .has_rank = pod->has_rank,
        .rank = pod->rank,
        .snap_seq = pod->last_seq,
        .other_engine = other,
        .from = from,
        .to = to,
    };
}

/*
 * The first lines a pod restored from a snapshot sees
 * (docs/kvindex.md#resuming-after-a-restart).  Returns 1 when the line was
 * applied before the snapshot (skip it), else 0, degrading the pod when
 * the history between the snapshot and the line is not available.  The
 * pod resumes until a line past its snapshot's seq, or one from another
 * engine.
 */
static int
resume_check(struct kv_index *ix, uint32_t p, const struct kv_env *env,
             const struct kv_event *ev)
{
    struct pod *pod = &ix->pods[p];
    int reset = ev->type == KV_RESTART || ev->type == KV_SNAPSHOT_BEGIN ||
                ev->type == KV_ALL_BLOCKS_CLEARED;
    uint64_t last = pod->last_seq, to;

    if (!env->has_seq) {
        pod->resuming = 0;
        return 0;
    }
    if (other_engine(pod, env, ev->type)) {
        pod->resuming = 0;
        if (!reset)
            resume_degrade(ix, p, 1, 0, 0);
        return 0;
    }
    if (env->seq < last || (env->seq == last && ev->type == KV_GAP))
        return 1;
    if (env->seq == last)
        return pod->resume_lines++ < pod->seq_lines;
    pod->resuming = 0;
    /* A gap record's seq is the last seq it lost; a batch lost only the
     * seqs before its own. */
    to = ev->type == KV_GAP ? env->seq : env->seq - 1;
    if (!reset && to > last)
        resume_degrade(ix, p, 0, last + 1, to);
    return 0;
}

/*
 * gap and restart for one pod: a restart empties it like AllBlocksCleared,
 * a gap marks it degraded until then.
 */
static void
apply_record(struct kv_index *ix, uint32_t p, enum kv_type t)
{
    struct pod *pod = &ix->pods[p];

    switch (t) {
    case KV_GAP:
        pod->degraded = 1;
        break;
    case KV_SNAPSHOT_END:
        /* The engine's whole state has arrived: the pod is whole again. */
        pod->degraded = 0;
        pod->orphan_run = 0;
        break;
    default:
        /*
         * A restart, a clear, or an engine snapshot about to be printed:
         * what the pod held is gone.  Until snapshot_end the pod holds only
         * part of its state, so it is degraded meanwhile.
         */
        pod_clear(ix, p);
        pod->degraded = t == KV_SNAPSHOT_BEGIN;
        pod->orphan_run = 0;
        break;
    }
}

/*
 * A gap or restart record whose dp_rank is unknown (kvsub writes null when
 * it lost the batch that would tell) concerns every rank of the pod: each
 * rank is its own stream, but the record cannot say which, and holding a
 * stale rank is worse than re-learning one.  With no such pod yet, the
 * record names (pod, null).
 */
static int
apply_unranked(struct kv_index *ix, const struct kv_env *env,
               const struct kv_event *ev, struct kv_str name)
{
    struct index_pod_ref ref = {name, 0, 0};
    int found = 0;

    for (uint32_t p = 0; p < ix->n_pods; p++) {
        if (!pod_ref_matches(&ix->pods[p], &ref))
            continue;
        found = 1;
        if (ix->pods[p].resuming && resume_check(ix, p, env, ev)) {
            ix->resume_skipped++;
            continue;
        }
        pod_seen(ix, &ix->pods[p], env, ev->type);
        apply_record(ix, p, ev->type);
    }
    return found;
}

int
index_apply(struct kv_index *ix, const struct kv_env *env,
            const struct kv_event *ev, enum index_reject *why)
{
    enum index_reject r = INDEX_REJ_NONE;
    struct kv_str name = {"-", 1};
    uint32_t p;

    *why = INDEX_REJ_NONE;
    ix->orphan_alarm = ix->resume_alarm = NONE;
    int record = ev->type == KV_GAP || ev->type == KV_RESTART ||
                 ev->type == KV_SNAPSHOT_BEGIN || ev->type == KV_SNAPSHOT_END;
    if (!kv_type_is_engine(ev->type) && !record)
        return 0;
    if (env->pod.p)
        name = env->pod;
    /*
     * An unranked snapshot record for a pod kvindex does not hold yet has
     * nothing to reset: the snapshot's own events create the pod.
     */
    if (record && !env->has_rank &&
        (apply_unranked(ix, env, ev, name) || ev->type == KV_SNAPSHOT_BEGIN ||
         ev->type == KV_SNAPSHOT_END))
        goto done;
    p = pod_intern(ix, name.p, name.n, env->has_rank, env->rank);
    if (p == NONE) {
        r = errno == EILSEQ ? INDEX_REJ_NAME : INDEX_REJ_NOMEM;
        goto done;
    }
    if (ix->pods[p].resuming && resume_check(ix, p, env, ev)) {
        ix->resume_skipped++;
        return 0;
    }
    pod_seen(ix, &ix->pods[p], env, ev->type);
    switch (ev->type) {
    case KV_BLOCK_STORED:
        r = apply_stored(ix, p, env, ev);
        break;
    case KV_BLOCK_REMOVED:
        if (!has_value(ev, KV_F_BLOCK_HASHES))
            r = INDEX_REJ_INVALID;
        else
            apply_removed(ix, p, ev);
        break;
    case KV_ALL_BLOCKS_CLEARED:
        if (has_value(ev, KV_F_MEDIUM) && ev->str[KV_F_MEDIUM].n)
            r = apply_cleared_medium(ix, p, ev);
        else
            apply_record(ix, p, KV_RESTART);
        break;
    case KV_BLOCK_TRANSFERRED:
        r = apply_transferred(ix, p, ev);
        break;
    case KV_BLOCK_INACTIVE:
        /* Still cached, only unused: the index keeps it (docs/kvindex.md). */
        break;
    default:
        apply_record(ix, p, ev->type);
        break;
    }
done:
    pool_compact(ix);
    if (r != INDEX_REJ_NONE) {
        ix->rejected[r]++;
        *why = r;
        return -1;
    }
    ix->applied[ev->type]++;
    return 0;
}

int
index_resume_alarm(const struct kv_index *ix, struct index_resume_alarm *out)
{
    if (ix->resume_alarm == NONE)
        return 0;
    *out = ix->resume_why;
    return 1;
}

int
index_js_seq(struct kv_index *ix, uint64_t js_seq)
{
    if (ix->has_js_floor && js_seq <= ix->js_floor) {
        ix->js_skipped++;
        return 1;
    }
    if (!ix->has_js_seq || js_seq > ix->js_seq)
        ix->js_seq = js_seq;
    ix->has_js_seq = 1;
    return 0;
}

int
index_js_seq_get(const struct kv_index *ix, uint64_t *out)
{
    *out = ix->js_seq;
    return ix->has_js_seq;
}

void
index_restore_js_seq(struct kv_index *ix, uint64_t js_seq)
{
    ix->has_js_seq = ix->has_js_floor = 1;
    ix->js_seq = ix->js_floor = js_seq;
}

uint64_t
index_clear_pod(struct kv_index *ix, const struct index_pod_ref *ref)
{
    uint64_t n = 0;

    for (uint32_t p = 0; p < ix->n_pods; p++) {
        if (pod_ref_matches(&ix->pods[p], ref))
            n += pod_clear(ix, p);
    }
    pool_compact(ix);
    return n;
}

void
index_set_degraded_orphans(struct kv_index *ix, uint64_t n)
{
    ix->degraded_orphans = n;
}

void
index_set_clock(struct kv_index *ix, double now)
{
    ix->clock = now;
}

int
index_orphan_alarm(const struct kv_index *ix, struct index_pod_info *out)
{
    if (ix->orphan_alarm == NONE)
        return 0;
    return index_pod_info(ix, ix->orphan_alarm, out) == 0;
}

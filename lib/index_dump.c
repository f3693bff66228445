/*
 * index_dump.c - reading the prefix index out and writing it back: the
 * pods, namespaces and entries that `kvindex` shows and that its snapshot
 * (docs/kvindex-snapshot.md#lines-in-this-order) saves, and the restore of
 * each.  Its own file because none of it is on the apply or match path.
 */
#include "index_impl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* ---- introspection ----------------------------------------------------- */

size_t
index_pod_count(const struct kv_index *ix)
{
    return ix->n_pods;
}

int
index_pod_info(const struct kv_index *ix, size_t i, struct index_pod_info *out)
{
    const struct pod *p;

    if (i >= ix->n_pods)
        return -1;
    p = &ix->pods[i];
    *out = (struct index_pod_info){
        .pod = p->name,
        .has_rank = p->has_rank,
        .rank = p->rank,
        .blocks = p->blocks,
        .has_seq = p->has_seq,
        .last_seq = p->last_seq,
        .has_ts = p->has_ts,
        .last_ts = p->last_ts,
        .degraded = p->degraded,
        .orphans = p->orphans,
        .misaligned = p->misaligned,
        .orphan_run = p->orphan_run,
        .has_event_at = p->has_event_at,
        .event_at = p->event_at,
        .stream = p->stream[0] ? p->stream : NULL,
        .has_seq_ts = p->has_seq_ts,
        .seq_ts = p->seq_ts,
        .seq_lines = p->seq_lines,
    };
    return 0;
}

size_t
index_ns_count(const struct kv_index *ix)
{
    return ix->n_ns;
}

int
index_ns_info(const struct kv_index *ix, size_t i, struct index_ns_info *out)
{
    if (i >= ix->n_ns)
        return -1;
    out->model = ix->ns[i].model;
    out->lora_name = ix->ns[i].lora;
    out->block_size = ix->ns[i].block_size;
    out->keys = ix->ns[i].keys;
    return 0;
}

size_t
index_lookup(const struct kv_index *ix, const struct index_pod_ref *ref,
             uint64_t engine_hash, struct index_lookup_hit *hits, size_t cap)
{
    size_t n = 0;

    for (uint32_t p = 0; p < ix->n_pods; p++) {
        const struct pod *pod = &ix->pods[p];
        uint32_t s, id;

        if (ref && !pod_ref_matches(pod, ref))
            continue;
        s = em_find(ix, &pod->map, engine_hash);
        if (s == NONE)
            continue;
        if (n < cap) {
            const struct entry *e;
            const struct key_slot *k;

            id = em_id(&pod->map, s);
            e = &ix->ent[id];
            k = &ix->ks[e->key_slot];
            hits[n] = (struct index_lookup_hit){
                .pod = pod->name,
                .has_rank = pod->has_rank,
                .rank = pod->rank,
                .key = k->key,
                .media = e->media,
                .model = ix->ns[k->ns].model,
                .lora_name = ix->ns[k->ns].lora,
            };
        }
        n++;
    }
    return n;
}

int
index_dump_next(const struct kv_index *ix, struct index_cursor *c,
                const struct index_pod_ref *ref, struct index_dump_entry *out)
{
    /* Under max_blocks the LRU gives the order; otherwise the pool's. */
    if (!c->started) {
        c->started = 1;
        c->pos = ix->max_blocks ? ix->lru_old : 0;
    }
    while (c->pos != NONE && c->pos < ix->ent_len) {
        const struct entry *e = &ix->ent[c->pos];
        const struct pod *p;
        const struct key_slot *k;
        const struct ns *s;

        c->pos = ix->max_blocks ? ix->lru[c->pos].next : c->pos + 1;
        if (e->key_slot == NONE)
            continue;
        p = &ix->pods[e->pod];
        if (ref && !pod_ref_matches(p, ref))
            continue;
        k = &ix->ks[e->key_slot];
        s = &ix->ns[k->ns];
        *out = (struct index_dump_entry){
            .pod = p->name,
            .has_rank = p->has_rank,
            .rank = p->rank,
            .model = s->model,
            .lora_name = s->lora,
            .block_size = s->block_size,
            .engine_hash = e->engine_hash,
            .key = k->key,
            .media = e->media,
        };
        return 1;
    }
    return 0;
}

/* ---- restore ----------------------------------------------------------- */

/* The reason pod_intern failed, in err; returns -1. */
static int
pod_error(char *err, size_t errlen)
{
    snprintf(err, errlen, "%s",
             errno == EILSEQ
                 ? "a pod name that is not valid UTF-8 or holds U+0000"
                 : "out of memory");
    return -1;
}

static uint32_t
restore_ns(struct kv_index *ix, const char *model, size_t mn, const char *lora,
           size_t ln, uint32_t block_size, char *err, size_t errlen)
{
    uint32_t nsid;

    if (block_size == 0) {
        snprintf(err, errlen, "block_size must be positive");
        return NONE;
    }
    nsid = ns_find(ix, model, mn, lora, ln);
    if (nsid != NONE) {
        if (ix->ns[nsid].block_size != block_size) {
            snprintf(err, errlen,
                     "block_size %" PRIu32
                     " differs from the namespace's %" PRIu32,
                     block_size, ix->ns[nsid].block_size);
            return NONE;
        }
        return nsid;
    }
    nsid = ns_create(ix, model, mn, lora, ln, block_size);
    if (nsid == NONE)
        snprintf(err, errlen, "%s",
                 errno == EILSEQ ? "a model or LoRA name that is not valid "
                                   "UTF-8 or holds U+0000"
                                 : "out of memory");
    return nsid;
}

int
index_restore_ns(struct kv_index *ix, struct kv_str model,
                 struct kv_str lora_name, uint32_t block_size, char *err,
                 size_t errlen)
{
    const char *m = model.p ? model.p : ix->default_model;
    size_t mn = model.p ? model.n : strlen(ix->default_model);

    return restore_ns(ix, m, mn, lora_name.p ? lora_name.p : "",
                      lora_name.p ? lora_name.n : 0, block_size, err,
                      errlen) == NONE
               ? -1
               : 0;
}

int
index_restore_pod(struct kv_index *ix, const struct index_pod_info *info,
                  char *err, size_t errlen)
{
    uint32_t p;
    struct pod *pod;

    if (info->pod == NULL) {
        snprintf(err, errlen, "pod missing");
        return -1;
    }
    p = pod_intern(ix, info->pod, strlen(info->pod), info->has_rank,
                   info->rank);
    if (p == NONE)
        return pod_error(err, errlen);
    if (info->stream != NULL &&
        strlen(info->stream) != sizeof pod->stream - 1) {
        snprintf(err, errlen, "stream is not 32 hex digits");
        return -1;
    }
    pod = &ix->pods[p];
    pod->has_seq = info->has_seq;
    pod->last_seq = info->last_seq;
    pod->has_ts = info->has_ts;
    pod->last_ts = info->last_ts;
    pod->degraded = info->degraded;
    pod->orphans = info->orphans;
    pod->misaligned = info->misaligned;
    memset(pod->stream, 0, sizeof pod->stream);
    if (info->stream != NULL)
        memcpy(pod->stream, info->stream, sizeof pod->stream - 1);
    pod->has_seq_ts = info->has_seq_ts;
    pod->seq_ts = info->seq_ts;
    pod->seq_lines = info->seq_lines;
    pod->resuming = info->has_seq;
    pod->resume_lines = 0;
    return 0;
}

int
index_restore_entry(struct kv_index *ix, const struct index_dump_entry *e,
                    char *err, size_t errlen)
{
    const char *model = e->model ? e->model : ix->default_model;
    const char *lora = e->lora_name ? e->lora_name : "";
    uint32_t nsid, p, s;
    struct pod *pod;

    if (e->pod == NULL) {
        snprintf(err, errlen, "pod missing");
        return -1;
    }
    if (e->media == 0 || (ix->n_media < 32 && (e->media >> ix->n_media) != 0)) {
        snprintf(err, errlen, "media bits 0x%" PRIx32 " name no known medium",
                 e->media);
        return -1;
    }
    nsid = restore_ns(ix, model, strlen(model), lora, strlen(lora),
                      e->block_size, err, errlen);
    if (nsid == NONE)
        return -1;
    p = pod_intern(ix, e->pod, strlen(e->pod), e->has_rank, e->rank);
    if (p == NONE)
        return pod_error(err, errlen);
    pod = &ix->pods[p];
    s = em_find(ix, &pod->map, e->engine_hash);
    if (s != NONE) {
        ix->ent[em_id(&pod->map, s)].media |= e->media;
        return 0;
    }
    if (ent_reserve(ix, 1) || ks_reserve(ix, 1) || em_reserve(&pod->map, 1))
        goto nomem;
    (void)entry_add(ix, p, nsid, e->key, e->engine_hash, e->media);
    lru_evict(ix);
    pool_compact(ix);
    return 0;
nomem:
    snprintf(err, errlen, "out of memory");
    return -1;
}

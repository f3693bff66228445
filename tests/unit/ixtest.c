/*
 * ixtest.c - the index tests' shared helpers (ixtest.h).
 */
#include "ixtest.h"

#include <stdio.h>
#include <string.h>

uint32_t ixtest_T[IXTEST_TOKENS];

struct kv_env
ixtest_env(const char *pod, int has_rank, int64_t rank, const char *model,
           uint64_t seq)
{
    struct kv_env env;

    memset(&env, 0, sizeof env);
    env.pod.p = pod;
    env.pod.n = strlen(pod);
    env.has_rank = has_rank;
    env.rank = rank;
    if (model) {
        env.model.p = model;
        env.model.n = strlen(model);
    }
    env.has_seq = 1;
    env.seq = seq;
    env.has_ts = 1;
    env.ts = 1700000000.0 + (double)seq;
    return env;
}

void
ixtest_set_str(struct kv_event *ev, enum kv_field f, const char *s)
{
    ev->present |= KV_BIT(f);
    if (s == NULL) {
        ev->isnull |= KV_BIT(f);
        return;
    }
    ev->str[f].p = s;
    ev->str[f].n = strlen(s);
}

int
ixtest_store(struct kv_index *ix, const struct ixtest_st *s,
             enum index_reject *why)
{
    struct kv_env env =
        ixtest_env(s->pod, s->has_rank, s->rank, s->model, s->seq);
    struct kv_event ev;
    struct kv_hash hs[256];
    enum index_reject dummy;

    kv_event_init(&ev, KV_BLOCK_STORED);
    for (size_t i = 0; i < s->n; i++)
        hs[i] = (struct kv_hash){s->h[i], NULL, 0};
    ev.present = KV_BIT(KV_F_BLOCK_HASHES) | KV_BIT(KV_F_PARENT_BLOCK_HASH) |
                 KV_BIT(KV_F_TOKEN_IDS) | KV_BIT(KV_F_BLOCK_SIZE);
    ev.hashes = hs;
    ev.n_hashes = s->n;
    if (s->has_parent)
        ev.parent.v = s->parent;
    else
        ev.isnull |= KV_BIT(KV_F_PARENT_BLOCK_HASH);
    ev.tokens = (uint32_t *)s->tok;
    ev.n_tokens = s->ntok;
    ev.token_pairs = s->pairs;
    ev.num[KV_F_BLOCK_SIZE] = s->bs;
    if (s->lora)
        ixtest_set_str(&ev, KV_F_LORA_NAME, s->lora);
    if (s->has_lora_id) {
        ev.present |= KV_BIT(KV_F_LORA_ID);
        ev.num[KV_F_LORA_ID] = s->lora_id;
    }
    if (s->medium)
        ixtest_set_str(&ev, KV_F_MEDIUM, s->medium);
    return index_apply(ix, &env, &ev, why ? why : &dummy);
}

int
ixtest_removed(struct kv_index *ix, const char *pod, const uint64_t *h,
               size_t n, const char *medium)
{
    struct kv_env env = ixtest_env(pod, 0, 0, NULL, 0);
    struct kv_event ev;
    struct kv_hash hs[256];
    enum index_reject why;

    kv_event_init(&ev, KV_BLOCK_REMOVED);
    for (size_t i = 0; i < n; i++)
        hs[i] = (struct kv_hash){h[i], NULL, 0};
    ev.present = KV_BIT(KV_F_BLOCK_HASHES);
    ev.hashes = hs;
    ev.n_hashes = n;
    if (medium)
        ixtest_set_str(&ev, KV_F_MEDIUM, medium);
    return index_apply(ix, &env, &ev, &why);
}

int
ixtest_record(struct kv_index *ix, const char *pod, enum kv_type t)
{
    struct kv_env env = ixtest_env(pod, 0, 0, NULL, 0);
    struct kv_event ev;
    enum index_reject why;

    kv_event_init(&ev, t);
    return index_apply(ix, &env, &ev, &why);
}

struct kv_index *
ixtest_new(enum blockkey_scheme scheme, uint64_t seed, uint64_t max_blocks)
{
    struct index_opts o = {scheme, seed, "", "m", max_blocks};
    char err[128];
    struct kv_index *ix = index_new(&o, err, sizeof err);

    if (ix == NULL)
        printf("# index_new: %s\n", err);
    return ix;
}

struct index_match_result ixtest_R;
char ixtest_match_err[512];

size_t
ixtest_match(struct kv_index *ix, const char *lora, const uint32_t *tok,
             size_t n, const struct index_pod_ref *pods, size_t n_pods)
{
    struct index_query q;

    memset(&q, 0, sizeof q);
    ixtest_match_err[0] = '\0';
    if (lora) {
        q.lora_name.p = lora;
        q.lora_name.n = strlen(lora);
    }
    q.tokens = tok;
    q.n_tokens = n;
    q.pods = pods;
    q.n_pods = n_pods;
    if (index_match(ix, &q, &ixtest_R, ixtest_match_err,
                    sizeof ixtest_match_err) != 0)
        return (size_t)-1;
    return ixtest_R.n;
}

uint32_t
ixtest_depth(const char *pod)
{
    for (size_t i = 0; i < ixtest_R.n; i++) {
        if (strcmp(ixtest_R.m[i].pod, pod) == 0)
            return ixtest_R.m[i].depth;
    }
    return 0;
}

const struct index_match *
ixtest_match_of(const char *pod)
{
    for (size_t i = 0; i < ixtest_R.n; i++) {
        if (strcmp(ixtest_R.m[i].pod, pod) == 0)
            return &ixtest_R.m[i];
    }
    return NULL;
}

uint64_t
ixtest_key(struct kv_index *ix, const char *pod, uint64_t engine_hash)
{
    struct index_pod_ref ref = {{pod, strlen(pod)}, 0, 0};
    struct index_lookup_hit hit;

    if (index_lookup(ix, &ref, engine_hash, &hit, 1) != 1)
        return 0;
    return hit.key;
}

struct index_stats
ixtest_stats(const struct kv_index *ix)
{
    struct index_stats s;

    index_stats(ix, &s);
    return s;
}

int
ixtest_store_root(struct kv_index *ix, const char *pod, const char *model,
                  const char *lora, uint32_t first, uint64_t h)
{
    return ixtest_store(ix,
                        &(struct ixtest_st){.pod = pod,
                                            .model = model,
                                            .lora = lora,
                                            .h = &h,
                                            .n = 1,
                                            .tok = ixtest_T + first,
                                            .ntok = 16,
                                            .bs = 16},
                        NULL);
}

void
ixtest_init(void)
{
    for (size_t i = 0; i < IXTEST_TOKENS; i++)
        ixtest_T[i] = (uint32_t)i;
}

void
ixtest_fini(void)
{
    index_match_result_free(&ixtest_R);
}

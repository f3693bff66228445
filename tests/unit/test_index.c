/*
 * test_index.c - the prefix index against docs/kvindex.md#how-events-apply, the
 * AIBrix indexer defects listed below as regressions, LRU eviction,
 * memory returning, dump -> restore equivalence, and randomized runs
 * against a brute-force model written here.
 *
 * The defects that concern an index, and where they are checked:
 *   D1 query/event block units     test_d1_units
 *   D2 removal wipes every pod     test_per_pod_removal
 *   D3 blocks chained on the event's parent   test_store_and_match
 *   D4 unknown parent taken as root            test_orphan
 *   D5 one engine map for all pods             test_per_pod_maps
 *   D6 LoRA namespaces that never meet         test_namespaces
 *   D7 random, unconfigurable seed             test_seed
 *   D8 missed events ignored                   test_clear_restart_gap
 *   D9 digest vs integer hash forms            test_d9_digest
 */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "unit.h"

static uint32_t T[8192]; /* T[i] = i: token ranges are T + first */

/* One BlockStored, described with designated initializers. */
struct st {
    const char *pod;
    int has_rank;
    int64_t rank;
    const char *model;
    const char *lora;
    int has_lora_id;
    int64_t lora_id;
    int has_parent;
    uint64_t parent;
    const uint64_t *h;
    size_t n;
    const uint32_t *tok;
    size_t ntok; /* positions; with pairs, tok holds 2*ntok values */
    int64_t bs;
    const char *medium;
    int pairs;
    uint64_t seq;
};

static struct kv_env
env_of(const char *pod, int has_rank, int64_t rank, const char *model,
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

static void
set_str(struct kv_event *ev, enum kv_field f, const char *s)
{
    ev->present |= KV_BIT(f);
    if (s == NULL) {
        ev->isnull |= KV_BIT(f);
        return;
    }
    ev->str[f].p = s;
    ev->str[f].n = strlen(s);
}

static int
store(struct kv_index *ix, const struct st *s, enum index_reject *why)
{
    struct kv_env env = env_of(s->pod, s->has_rank, s->rank, s->model, s->seq);
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
        set_str(&ev, KV_F_LORA_NAME, s->lora);
    if (s->has_lora_id) {
        ev.present |= KV_BIT(KV_F_LORA_ID);
        ev.num[KV_F_LORA_ID] = s->lora_id;
    }
    if (s->medium)
        set_str(&ev, KV_F_MEDIUM, s->medium);
    return index_apply(ix, &env, &ev, why ? why : &dummy);
}

static int
removed(struct kv_index *ix, const char *pod, const uint64_t *h, size_t n,
        const char *medium)
{
    struct kv_env env = env_of(pod, 0, 0, NULL, 0);
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
        set_str(&ev, KV_F_MEDIUM, medium);
    return index_apply(ix, &env, &ev, &why);
}

static int
record(struct kv_index *ix, const char *pod, enum kv_type t)
{
    struct kv_env env = env_of(pod, 0, 0, NULL, 0);
    struct kv_event ev;
    enum index_reject why;

    kv_event_init(&ev, t);
    return index_apply(ix, &env, &ev, &why);
}

static struct kv_index *
new_index(enum blockkey_scheme scheme, uint64_t seed, uint64_t max_blocks)
{
    struct index_opts o = {scheme, seed, "", "m", max_blocks};
    char err[128];
    struct kv_index *ix = index_new(&o, err, sizeof err);

    if (ix == NULL)
        printf("# index_new: %s\n", err);
    return ix;
}

/* Matches tokens first..first+n-1 of the given namespace and returns the
 * result; depth_of() reads it. */
static struct index_match_result R;
static char match_err[512]; /* the last error of match_q */

static size_t
match_q(struct kv_index *ix, const char *lora, const uint32_t *tok, size_t n,
        const struct index_pod_ref *pods, size_t n_pods)
{
    struct index_query q;

    memset(&q, 0, sizeof q);
    match_err[0] = '\0';
    if (lora) {
        q.lora_name.p = lora;
        q.lora_name.n = strlen(lora);
    }
    q.tokens = tok;
    q.n_tokens = n;
    q.pods = pods;
    q.n_pods = n_pods;
    if (index_match(ix, &q, &R, match_err, sizeof match_err) != 0)
        return (size_t)-1;
    return R.n;
}

static uint32_t
depth_of(const char *pod)
{
    for (size_t i = 0; i < R.n; i++) {
        if (strcmp(R.m[i].pod, pod) == 0)
            return R.m[i].depth;
    }
    return 0;
}

static const struct index_match *
match_of(const char *pod)
{
    for (size_t i = 0; i < R.n; i++) {
        if (strcmp(R.m[i].pod, pod) == 0)
            return &R.m[i];
    }
    return NULL;
}

static uint64_t
key_of(struct kv_index *ix, const char *pod, uint64_t engine_hash)
{
    struct index_pod_ref ref = {{pod, strlen(pod)}, 0, 0};
    struct index_lookup_hit hit;

    if (index_lookup(ix, &ref, engine_hash, &hit, 1) != 1)
        return 0;
    return hit.key;
}

static struct index_stats
stats(const struct kv_index *ix)
{
    struct index_stats s;

    index_stats(ix, &s);
    return s;
}

static void
test_store_and_match(void)
{
    struct kv_index *ix = new_index(BLOCKKEY_AIBRIX, 0, 0);
    uint64_t h[] = {101, 102};
    struct index_stats s;

    /* D3: both blocks of one event; block 1 chains on block 0. */
    CHECK(store(ix,
                &(struct st){
                    .pod = "a", .h = h, .n = 2, .tok = T, .ntok = 32, .bs = 16},
                NULL) == 0,
          "store two blocks in one event");
    CHECK_U64(key_of(ix, "a", 101), 13063670922251535405ull,
              "block 0 key is the aibrix vector");
    CHECK_U64(key_of(ix, "a", 102), 15794143472128267642ull,
              "D3: block 1 chains on block 0 of the same event");
    CHECK_U64(match_q(ix, NULL, T, 32, NULL, 0), 1, "one pod matches");
    CHECK_U64(depth_of("a"), 2, "D3: depth 2 (AIBrix reports 50%)");
    CHECK_U64(R.blocks, 2, "query has 2 blocks");
    CHECK_U64(R.block_size, 16, "namespace block size reported");
    CHECK_U64(R.m[0].media, 1, "medium GPU for a null medium");
    CHECK_STR(index_medium_name(ix, 0), "GPU", "bit 0 is GPU");
    CHECK(R.m[0].has_rank == 0 && R.m[0].degraded == 0, "rank null, healthy");
    CHECK_U64(match_q(ix, NULL, T, 47, NULL, 0), 1, "partial tail ignored");
    CHECK_U64(R.blocks, 2, "47 tokens are 2 full blocks");
    CHECK_U64(match_q(ix, NULL, T + 1, 32, NULL, 0), 0,
              "other tokens do not match");
    s = stats(ix);
    CHECK_U64(s.entries, 2, "two entries");
    CHECK_U64(s.keys, 2, "two keys");
    CHECK_U64(s.namespaces, 1, "one namespace");
    CHECK_U64(s.applied[KV_BLOCK_STORED], 1, "one store applied");
    index_free(ix);
}

static void
test_chain_across_events(void)
{
    struct kv_index *ix = new_index(BLOCKKEY_AIBRIX, 0, 0);
    uint64_t h0 = 7, h1 = 8;

    store(ix,
          &(struct st){
              .pod = "a", .h = &h0, .n = 1, .tok = T, .ntok = 16, .bs = 16},
          NULL);
    CHECK(store(ix,
                &(struct st){.pod = "a",
                             .has_parent = 1,
                             .parent = 7,
                             .h = &h1,
                             .n = 1,
                             .tok = T + 16,
                             .ntok = 16,
                             .bs = 16},
                NULL) == 0,
          "store with a known parent");
    CHECK_U64(key_of(ix, "a", 8), 15794143472128267642ull,
              "parent resolved through the pod's engine map");
    match_q(ix, NULL, T, 32, NULL, 0);
    CHECK_U64(depth_of("a"), 2, "depth 2 across events");
    index_free(ix);
}

static void
test_orphan(void)
{
    struct kv_index *ix = new_index(BLOCKKEY_AIBRIX, 0, 0);
    uint64_t h = 9;
    enum index_reject why = INDEX_REJ_NONE;
    struct index_pod_info pi;

    CHECK(store(ix,
                &(struct st){.pod = "a",
                             .has_parent = 1,
                             .parent = 12345,
                             .h = &h,
                             .n = 1,
                             .tok = T + 16,
                             .ntok = 16,
                             .bs = 16},
                &why) == -1,
          "D4: unknown parent rejected");
    CHECK_U64(why, INDEX_REJ_ORPHAN, "reason orphan");
    CHECK_STR(index_reject_name(why), "orphan", "reject name");
    CHECK_U64(stats(ix).rejected[INDEX_REJ_ORPHAN], 1, "orphan counted");
    CHECK_U64(stats(ix).entries, 0, "nothing stored");
    CHECK_U64(match_q(ix, NULL, T + 16, 16, NULL, 0), (size_t)-1,
              "D4: not stored as a root (not even its namespace)");
    CHECK_STR(match_err, "unknown model \"m\"; the index has seen no model yet",
              "an unknown namespace is an error, not an empty answer");
    CHECK(index_pod_info(ix, 0, &pi) == 0 && pi.orphans == 1,
          "pod counts its orphans");
    index_free(ix);
}

static void
test_per_pod_maps(void)
{
    struct kv_index *ix = new_index(BLOCKKEY_AIBRIX, 0, 0);
    uint64_t h = 1, h2 = 2;
    enum index_reject why;

    /* Engines seed hashes per process: the same engine hash names other
     * content on another pod. */
    store(ix,
          &(struct st){
              .pod = "a", .h = &h, .n = 1, .tok = T, .ntok = 16, .bs = 16},
          NULL);
    store(
        ix,
        &(struct st){
            .pod = "b", .h = &h, .n = 1, .tok = T + 100, .ntok = 16, .bs = 16},
        NULL);
    CHECK(key_of(ix, "a", 1) != key_of(ix, "b", 1),
          "D5: one engine hash, two pods, two keys");
    CHECK_U64(match_q(ix, NULL, T, 16, NULL, 0), 1, "a's content");
    CHECK_U64(depth_of("a"), 1, "a holds it");
    removed(ix, "b", &h, 1, NULL);
    CHECK_U64(match_q(ix, NULL, T, 16, NULL, 0), 1,
              "D5: b's removal leaves a's mapping");
    CHECK_U64(match_q(ix, NULL, T + 100, 16, NULL, 0), 0, "b's block gone");
    CHECK(store(ix,
                &(struct st){.pod = "c",
                             .has_parent = 1,
                             .parent = 1,
                             .h = &h2,
                             .n = 1,
                             .tok = T + 16,
                             .ntok = 16,
                             .bs = 16},
                &why) == -1 &&
              why == INDEX_REJ_ORPHAN,
          "D5: a parent known only to another pod is an orphan");
    index_free(ix);
}

static void
test_per_pod_removal(void)
{
    struct kv_index *ix = new_index(BLOCKKEY_AIBRIX, 0, 0);
    uint64_t ha = 11, hb = 22, unknown[] = {999, 11};

    store(ix,
          &(struct st){
              .pod = "a", .h = &ha, .n = 1, .tok = T, .ntok = 16, .bs = 16},
          NULL);
    store(ix,
          &(struct st){
              .pod = "b", .h = &hb, .n = 1, .tok = T, .ntok = 16, .bs = 16},
          NULL);
    CHECK_U64(stats(ix).keys, 1, "two pods, one key");
    CHECK_U64(stats(ix).entries, 2, "two entries");
    CHECK(removed(ix, "a", unknown, 2, NULL) == 0,
          "removal with an unknown hash applies");
    CHECK_U64(stats(ix).unknown_removed, 1, "unknown hash counted");
    CHECK_U64(match_q(ix, NULL, T, 16, NULL, 0), 1,
              "D2: a's removal keeps b's claim");
    CHECK_U64(depth_of("b"), 1, "b still holds the key");
    CHECK_U64(depth_of("a"), 0, "a's known hash was removed");
    removed(ix, "b", &hb, 1, NULL);
    CHECK_U64(stats(ix).keys, 0, "key freed with its last holder");
    CHECK_U64(stats(ix).entries, 0, "no entries");
    index_free(ix);
}

static void
test_namespaces(void)
{
    struct kv_index *ix = new_index(BLOCKKEY_AIBRIX, 0, 0);
    uint64_t h1 = 1, h2 = 2, h3 = 3, h4 = 4;

    store(ix,
          &(struct st){.pod = "a",
                       .lora = "sql",
                       .h = &h1,
                       .n = 1,
                       .tok = T,
                       .ntok = 16,
                       .bs = 16},
          NULL);
    store(ix,
          &(struct st){.pod = "b",
                       .has_lora_id = 1,
                       .lora_id = 7,
                       .h = &h2,
                       .n = 1,
                       .tok = T,
                       .ntok = 16,
                       .bs = 16},
          NULL);
    store(ix,
          &(struct st){.pod = "c",
                       .lora = "",
                       .h = &h3,
                       .n = 1,
                       .tok = T,
                       .ntok = 16,
                       .bs = 16},
          NULL);
    store(ix,
          &(struct st){.pod = "d",
                       .model = "other",
                       .h = &h4,
                       .n = 1,
                       .tok = T,
                       .ntok = 16,
                       .bs = 16},
          NULL);
    CHECK_U64(stats(ix).namespaces, 4, "four namespaces");
    match_q(ix, NULL, T, 16, NULL, 0);
    CHECK(R.n == 1 && depth_of("c") == 1,
          "D6: base query sees only the base model (\"\" lora is base)");
    match_q(ix, "sql", T, 16, NULL, 0);
    CHECK(R.n == 1 && depth_of("a") == 1, "lora_name namespace");
    match_q(ix, "7", T, 16, NULL, 0);
    CHECK(R.n == 1 && depth_of("b") == 1, "lora_id only: named by the id");
    index_free(ix);

    /* Many adapters: every namespace stays separate and found. */
    ix = new_index(BLOCKKEY_AIBRIX, 0, 0);
    for (int i = 0; i < 300; i++) {
        char lora[16];
        uint64_t h = (uint64_t)i + 1;

        snprintf(lora, sizeof lora, "adapter-%d", i);
        store(ix,
              &(struct st){.pod = i % 2 ? "odd" : "even",
                           .lora = lora,
                           .h = &h,
                           .n = 1,
                           .tok = T + i,
                           .ntok = 16,
                           .bs = 16},
              NULL);
    }
    int all = 1;
    for (int i = 0; i < 300; i++) {
        char lora[16];

        snprintf(lora, sizeof lora, "adapter-%d", i);
        match_q(ix, lora, T + i, 16, NULL, 0);
        all &= R.n == 1 && depth_of(i % 2 ? "odd" : "even") == 1;
        match_q(ix, lora, T + i + 1, 16, NULL, 0);
        all &= R.n == 0;
    }
    CHECK(all, "300 LoRA namespaces, each its own");
    CHECK_U64(stats(ix).namespaces, 300, "300 namespaces counted");
    index_free(ix);
}

static void
test_seed(void)
{
    struct kv_index *ix = new_index(BLOCKKEY_AIBRIX, 12345, 0);
    uint64_t h[] = {1, 2};
    struct index_query q = {.tokens = T, .n_tokens = 32};
    uint64_t *keys = NULL;
    size_t n = 0;
    char err[128];

    store(ix,
          &(struct st){
              .pod = "a", .h = h, .n = 2, .tok = T, .ntok = 32, .bs = 16},
          NULL);
    CHECK_U64(key_of(ix, "a", 2), 9446283537318736241ull,
              "D7: the configured seed gives the vector");
    CHECK(index_keys(ix, &q, &keys, &n, err, sizeof err) == 0 && n == 2 &&
              keys[0] == 826599923864855889ull,
          "keys op uses the namespace's block size and the seed");
    free(keys);
    index_free(ix);
}

static void
test_keys_op(void)
{
    struct kv_index *ix = new_index(BLOCKKEY_LLMD, 0, 0);
    struct index_query q = {
        .model = {"test-model", 10}, .tokens = T, .n_tokens = 32};
    uint64_t *keys = NULL;
    size_t n = 0;
    char err[128] = "";

    CHECK(index_keys(ix, &q, &keys, &n, err, sizeof err) == -1,
          "keys without any block size is an error");
    CHECK_STR(err,
              "unknown model \"test-model\"; the index has seen no model yet; "
              "give block_size to compute keys anyway",
              "the error names the model and block_size");
    q.block_size = 16;
    CHECK(index_keys(ix, &q, &keys, &n, err, sizeof err) == 0 && n == 2,
          "keys with the query's block size");
    CHECK(keys && keys[0] == 9511908804403680034ull &&
              keys[1] == 10377907571738399248ull,
          "llmd keys of test-model");
    free(keys);
    index_free(ix);

    ix = new_index(BLOCKKEY_DYNAMO, 0, 0);
    q.block_size = 16;
    CHECK(index_keys(ix, &q, &keys, &n, err, sizeof err) == 0 && n == 2 &&
              keys[1] == 13769157705258532664ull,
          "dynamo keys");
    free(keys);
    index_free(ix);
}

static void
test_llmd_lora_root(void)
{
    struct kv_index *ix = new_index(BLOCKKEY_LLMD, 0, 0);
    uint64_t h = 5;

    /* llm-d roots a LoRA's chain on the LoRA name instead of the model. */
    store(ix,
          &(struct st){.pod = "a",
                       .model = "base",
                       .lora = "test-model",
                       .h = &h,
                       .n = 1,
                       .tok = T,
                       .ntok = 16,
                       .bs = 16},
          NULL);
    CHECK_U64(key_of(ix, "a", 5), 9511908804403680034ull,
              "llmd: root from the lora name");
    index_free(ix);
}

static void
test_rejects(void)
{
    struct kv_index *ix = new_index(BLOCKKEY_AIBRIX, 0, 0);
    uint64_t h[] = {1, 2};
    enum index_reject why = INDEX_REJ_NONE;
    struct index_pod_info pi;

    CHECK(store(ix,
                &(struct st){
                    .pod = "a", .h = h, .n = 2, .tok = T, .ntok = 31, .bs = 16},
                &why) == -1 &&
              why == INDEX_REJ_MISALIGNED,
          "tokens != hashes*block_size rejected as misaligned");
    CHECK_U64(stats(ix).namespaces, 0, "a rejected store teaches nothing");
    CHECK(index_pod_info(ix, 0, &pi) == 0 && pi.misaligned == 1,
          "pod counts misaligned stores");
    CHECK(store(ix,
                &(struct st){
                    .pod = "a", .h = h, .n = 1, .tok = T, .ntok = 16, .bs = 16},
                NULL) == 0,
          "block size 16 learned");
    CHECK(
        store(
            ix,
            &(struct st){
                .pod = "a", .h = h + 1, .n = 1, .tok = T, .ntok = 32, .bs = 32},
            &why) == -1 &&
            why == INDEX_REJ_BLOCK_SIZE,
        "another block size rejected");
    CHECK(store(ix,
                &(struct st){.pod = "a",
                             .lora = "x",
                             .h = h + 1,
                             .n = 1,
                             .tok = T,
                             .ntok = 32,
                             .bs = 32},
                NULL) == 0,
          "another namespace has its own block size");
    CHECK(store(ix,
                &(struct st){
                    .pod = "a", .h = h, .n = 1, .tok = T, .ntok = 16, .bs = 0},
                &why) == -1 &&
              why == INDEX_REJ_INVALID,
          "block size 0 is invalid");
    CHECK_U64(stats(ix).rejected[INDEX_REJ_MISALIGNED], 1, "misaligned count");
    CHECK_U64(stats(ix).rejected[INDEX_REJ_BLOCK_SIZE], 1, "block_size count");
    CHECK_U64(stats(ix).rejected[INDEX_REJ_INVALID], 1, "invalid count");
    index_free(ix);
}

static void
test_media(void)
{
    struct kv_index *ix = new_index(BLOCKKEY_AIBRIX, 0, 0);
    uint64_t h = 1;
    int cpu;

    store(ix,
          &(struct st){
              .pod = "a", .h = &h, .n = 1, .tok = T, .ntok = 16, .bs = 16},
          NULL);
    store(ix,
          &(struct st){.pod = "a",
                       .h = &h,
                       .n = 1,
                       .tok = T,
                       .ntok = 16,
                       .bs = 16,
                       .medium = "CPU"},
          NULL);
    cpu = index_medium_intern(ix, "CPU", 3);
    CHECK_U64(stats(ix).entries, 1, "re-store is idempotent");
    match_q(ix, NULL, T, 16, NULL, 0);
    CHECK_U64(R.m[0].media, 1u | 1u << cpu, "re-store adds the medium");
    removed(ix, "a", &h, 1, "CPU");
    match_q(ix, NULL, T, 16, NULL, 0);
    CHECK(R.n == 1 && R.m[0].media == 1, "removal of CPU keeps GPU");
    removed(ix, "a", &h, 1, "DISK");
    CHECK_U64(stats(ix).entries, 1, "removal of a medium never stored");
    store(ix,
          &(struct st){.pod = "a",
                       .h = &h,
                       .n = 1,
                       .tok = T,
                       .ntok = 16,
                       .bs = 16,
                       .medium = "CPU"},
          NULL);
    removed(ix, "a", &h, 1, NULL);
    CHECK_U64(stats(ix).entries, 0, "null medium removes all media");
    CHECK_U64(stats(ix).keys, 0, "and frees the key");
    index_free(ix);
}

static void
test_clear_restart_gap(void)
{
    struct kv_index *ix = new_index(BLOCKKEY_AIBRIX, 0, 0);
    uint64_t ha[] = {1, 2}, hb[] = {3, 4};
    struct index_pod_ref ref = {{"b", 1}, 0, 0};

    store(ix,
          &(struct st){
              .pod = "a", .h = ha, .n = 2, .tok = T, .ntok = 32, .bs = 16},
          NULL);
    store(ix,
          &(struct st){
              .pod = "b", .h = hb, .n = 2, .tok = T, .ntok = 32, .bs = 16},
          NULL);
    record(ix, "a", KV_GAP);
    match_q(ix, NULL, T, 32, NULL, 0);
    CHECK(match_of("a") && match_of("a")->degraded,
          "D8: a gap is not silently ignored: a is degraded in answers");
    CHECK(match_of("b") && !match_of("b")->degraded, "b healthy");
    CHECK_U64(depth_of("a"), 2, "gap keeps entries");
    record(ix, "a", KV_ALL_BLOCKS_CLEARED);
    match_q(ix, NULL, T, 32, NULL, 0);
    CHECK(R.n == 1 && depth_of("b") == 2, "AllBlocksCleared: a's entries go");
    CHECK_U64(index_pod_count(ix), 2, "a stays known");
    record(ix, "a", KV_GAP);
    record(ix, "a", KV_RESTART);
    store(ix,
          &(struct st){
              .pod = "a", .h = ha, .n = 2, .tok = T, .ntok = 32, .bs = 16},
          NULL);
    match_q(ix, NULL, T, 32, NULL, 0);
    CHECK(match_of("a") && !match_of("a")->degraded, "restart clears degraded");
    /* An engine snapshot replaces the pod's state as a whole. */
    record(ix, "a", KV_GAP);
    record(ix, "a", KV_SNAPSHOT_BEGIN);
    match_q(ix, NULL, T, 32, NULL, 0);
    CHECK(match_of("a") == NULL && depth_of("b") == 2,
          "snapshot_begin drops the pod's entries");
    store(ix,
          &(struct st){
              .pod = "a", .h = ha, .n = 2, .tok = T, .ntok = 32, .bs = 16},
          NULL);
    match_q(ix, NULL, T, 32, NULL, 0);
    CHECK(match_of("a") && match_of("a")->degraded,
          "inside a snapshot the pod is degraded (not whole yet)");
    record(ix, "a", KV_SNAPSHOT_END);
    match_q(ix, NULL, T, 32, NULL, 0);
    CHECK(match_of("a") && !match_of("a")->degraded && depth_of("a") == 2,
          "snapshot_end: the pod is whole, its snapshot's entries stay");
    size_t pods = index_pod_count(ix);
    record(ix, "new", KV_SNAPSHOT_BEGIN);
    record(ix, "new", KV_SNAPSHOT_END);
    CHECK_U64(index_pod_count(ix), pods,
              "an unranked snapshot of a pod not held yet creates no pod");
    record(ix, "b", KV_RESTART);
    CHECK_U64(stats(ix).entries, 2, "restart clears the pod");
    CHECK_U64(index_clear_pod(ix, &(struct index_pod_ref){{"a", 1}, 0, 0}), 2,
              "index_clear_pod returns the count");
    CHECK_U64(index_clear_pod(ix, &ref), 0, "clearing an empty pod");
    CHECK_U64(stats(ix).entries, 0, "all gone");
    CHECK_U64(stats(ix).keys, 0, "all keys gone");
    index_free(ix);
}

static void
test_depth_semantics(void)
{
    struct kv_index *ix = new_index(BLOCKKEY_AIBRIX, 0, 0);
    uint64_t ha[] = {1, 2}, hb[] = {1, 2, 3, 4}, hc[] = {1, 2, 3};

    store(ix,
          &(struct st){
              .pod = "a", .h = ha, .n = 2, .tok = T, .ntok = 32, .bs = 16},
          NULL);
    store(ix,
          &(struct st){
              .pod = "b", .h = hb, .n = 4, .tok = T, .ntok = 64, .bs = 16},
          NULL);
    store(ix,
          &(struct st){
              .pod = "c", .h = hc, .n = 3, .tok = T, .ntok = 48, .bs = 16},
          NULL);
    store(ix,
          &(struct st){.pod = "c0",
                       .has_rank = 1,
                       .rank = 1,
                       .h = ha,
                       .n = 2,
                       .tok = T,
                       .ntok = 32,
                       .bs = 16},
          NULL);
    store(ix,
          &(struct st){.pod = "c0",
                       .has_rank = 1,
                       .rank = 0,
                       .h = ha,
                       .n = 2,
                       .tok = T,
                       .ntok = 32,
                       .bs = 16},
          NULL);
    removed(ix, "c", hc, 1, NULL); /* c keeps blocks 1, 2 but not 0 */
    CHECK_U64(match_q(ix, NULL, T, 64, NULL, 0), 4, "c omitted: depth 0");
    CHECK(strcmp(R.m[0].pod, "b") == 0 && R.m[0].depth == 4, "b first, 4");
    CHECK(strcmp(R.m[1].pod, "a") == 0 && R.m[1].depth == 2,
          "equal depths by pod name");
    CHECK(strcmp(R.m[2].pod, "c0") == 0 && R.m[2].rank == 0 &&
              strcmp(R.m[3].pod, "c0") == 0 && R.m[3].rank == 1,
          "then by rank");
    CHECK_U64(depth_of("c"), 0,
              "a pod's own run from block 0, not AIBrix's shared walk");
    CHECK_U64(
        match_q(ix, NULL, T, 64,
                (struct index_pod_ref[]){{{"a", 1}, 0, 0}, {{"c0", 2}, 1, 1}},
                2),
        2, "candidate filter");
    CHECK(depth_of("a") == 2 && R.m[1].rank == 1, "filter by pod and rank");
    index_free(ix);
}

static void
test_bigram_pages(void)
{
    struct kv_index *ix = new_index(BLOCKKEY_AIBRIX, 0, 0);
    uint32_t pairs[32];
    uint64_t h = 1;

    for (int i = 0; i < 16; i++) {
        pairs[2 * i] = (uint32_t)i;
        pairs[2 * i + 1] = (uint32_t)i + 1;
    }
    CHECK(store(ix,
                &(struct st){.pod = "a",
                             .h = &h,
                             .n = 1,
                             .tok = pairs,
                             .ntok = 16,
                             .bs = 16,
                             .pairs = 1},
                NULL) == 0,
          "bigram page stored");
    CHECK_U64(key_of(ix, "a", 1), 13063670922251535405ull,
              "SGLang bigram pages key on the first token of each pair");
    index_free(ix);
}

static void
test_lru(void)
{
    struct kv_index *ix = new_index(BLOCKKEY_AIBRIX, 0, 3);
    uint64_t h[] = {1, 2, 3, 4};

    for (int i = 0; i < 3; i++)
        store(ix,
              &(struct st){.pod = "a",
                           .h = &h[i],
                           .n = 1,
                           .tok = T + 16 * i,
                           .ntok = 16,
                           .bs = 16},
              NULL);
    match_q(ix, NULL, T, 16, NULL, 0); /* touches block of hash 1 */
    store(ix,
          &(struct st){.pod = "a",
                       .h = &h[3],
                       .n = 1,
                       .tok = T + 48,
                       .ntok = 16,
                       .bs = 16},
          NULL);
    CHECK_U64(stats(ix).entries, 3, "capped at max_blocks");
    CHECK_U64(stats(ix).max_blocks_dropped, 1, "eviction counted");
    CHECK(key_of(ix, "a", 1) != 0, "matched entry kept");
    CHECK(key_of(ix, "a", 2) == 0, "least recently used entry evicted");
    store(ix,
          &(struct st){.pod = "a",
                       .h = &h[2],
                       .n = 1,
                       .tok = T + 32,
                       .ntok = 16,
                       .bs = 16},
          NULL); /* re-store touches 3 */
    store(ix,
          &(struct st){.pod = "a",
                       .h = &h[1],
                       .n = 1,
                       .tok = T + 16,
                       .ntok = 16,
                       .bs = 16},
          NULL);
    CHECK(key_of(ix, "a", 1) == 0 && key_of(ix, "a", 3) != 0,
          "re-store counts as use");
    index_free(ix);
}

static void
test_memory_returns(void)
{
    struct kv_index *ix = new_index(BLOCKKEY_DYNAMO, 0, 0);
    uint64_t base, peak, h[128];
    struct index_stats s;

    base = stats(ix).bytes_used;
    for (int p = 0; p < 8; p++) {
        char pod[8];

        snprintf(pod, sizeof pod, "p%d", p);
        for (int e = 0; e < 40; e++) {
            for (int i = 0; i < 128; i++)
                h[i] = (uint64_t)e * 1000 + (uint64_t)i + 1;
            store(ix,
                  &(struct st){.pod = pod,
                               .h = h,
                               .n = 128,
                               .tok = T + 16 * e,
                               .ntok = 2048,
                               .bs = 16},
                  NULL);
        }
    }
    s = stats(ix);
    peak = s.bytes_used;
    CHECK_U64(s.entries, 8 * 40 * 128, "40960 entries");
    CHECK_U64(s.keys, 40 * 128, "shared keys");
    for (int p = 0; p < 8; p++) {
        char pod[8];

        snprintf(pod, sizeof pod, "p%d", p);
        for (int e = 0; e < 40; e++) {
            for (int i = 0; i < 128; i++)
                h[i] = (uint64_t)e * 1000 + (uint64_t)i + 1;
            removed(ix, pod, h, 128, NULL);
        }
        if (p == 3) {
            s = stats(ix);
            CHECK_U64(s.entries, 4 * 40 * 128, "half removed");
            CHECK(s.bytes_used < peak * 3 / 4, "half the memory returns");
            match_q(ix, NULL, T, 16 * 10, NULL, 0);
            CHECK(R.n == 4 && depth_of("p7") == 10,
                  "after compaction the rest still matches");
        }
    }
    s = stats(ix);
    CHECK_U64(s.entries, 0, "entries back to 0");
    CHECK_U64(s.keys, 0, "keys back to 0");
    CHECK(s.bytes_used < base + 4096, "bytes used back near the start");
    printf("# bytes: start %llu, peak %llu, end %llu\n",
           (unsigned long long)base, (unsigned long long)peak,
           (unsigned long long)s.bytes_used);
    index_free(ix);
}

/*
 * bytes_used against what malloc hands out.  This binary interposes the
 * malloc family (forwarding to glibc's __libc_* entry points) and, while
 * `counting` is set, sums malloc_usable_size of what is allocated and
 * freed.  Built from nothing inside the window, the index must report that
 * sum up to malloc's rounding (usable sizes exceed requests by less than 24
 * bytes, and the index makes fewer than 64 allocations here).  Every table
 * stays under 64 KiB, where the index mallocs instead of mapping pages.
 * mallinfo2 cannot serve: glibc counts chunks parked in its thread cache
 * as in use, so frees inside the window would not show.  AddressSanitizer
 * brings its own malloc, so the check is left out of sanitizer builds.
 */
#if defined(__SANITIZE_ADDRESS__)
#define BYTES_CHECK 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BYTES_CHECK 0
#endif
#endif
#ifndef BYTES_CHECK
#define BYTES_CHECK 1

void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t n);
void __libc_free(void *p);

static int counting;
static int64_t counted;

static void
count(void *p, int sign)
{
    if (counting && p != NULL)
        counted += sign * (int64_t)malloc_usable_size(p);
}

void *
malloc(size_t n)
{
    void *p = __libc_malloc(n);

    count(p, 1);
    return p;
}

void *
calloc(size_t n, size_t size)
{
    void *p = __libc_calloc(n, size);

    count(p, 1);
    return p;
}

void *
realloc(void *p, size_t n)
{
    void *q;

    count(p, -1);
    q = __libc_realloc(p, n);
    if (q == NULL && n > 0)
        count(p, 1); /* the old block lives on */
    count(q, 1);
    return q;
}

void
free(void *p)
{
    count(p, -1);
    __libc_free(p);
}
#endif

static void
test_bytes_vs_allocator(uint64_t max_blocks)
{
#if BYTES_CHECK
    const int64_t tolerance = 64 * 24;
    struct index_match_result mr = {0};
    struct index_query q;
    struct kv_index *ix;
    uint64_t h[64];
    int64_t used;
    char err[128], pod[16];

    memset(&q, 0, sizeof q);
    q.tokens = T;
    q.n_tokens = 64 * 16;
    counted = 0;
    counting = 1;
    ix = new_index(BLOCKKEY_AIBRIX, 0, max_blocks);
    for (int p = 0; p < 12; p++) {
        snprintf(pod, sizeof pod, "pod-%d", p);
        for (int i = 0; i < 64; i++)
            h[i] = (uint64_t)p * 1000 + (uint64_t)i + 1;
        store(ix,
              &(struct st){.pod = pod,
                           .has_rank = 1,
                           .rank = p % 3,
                           .h = h,
                           .n = 64,
                           .tok = T,
                           .ntok = 64 * 16,
                           .bs = 16},
              NULL);
        store(ix,
              &(struct st){.pod = pod,
                           .lora = p % 2 ? "adapter-a" : "adapter-b",
                           .h = h,
                           .n = 8,
                           .tok = T + 16,
                           .ntok = 8 * 16,
                           .bs = 16,
                           .medium = "CPU",
                           .seq = 1},
              NULL);
    }
    index_match(ix, &q, &mr, err, sizeof err);
    index_match_result_free(&mr);
    used = (int64_t)stats(ix).bytes_used;
    counting = 0;
    CHECK(counted >= used && counted - used <= tolerance,
          max_blocks ? "bytes_used is what malloc holds (with an LRU)"
                     : "bytes_used is what malloc holds");
    printf("# bytes_used %lld, malloc holds %lld\n", (long long)used,
           (long long)counted);
    counting = 1;
    index_free(ix);
    counting = 0;
    CHECK(counted == 0, "index_free gives back every byte");
#else
    (void)max_blocks;
    printf("# bytes vs allocator: not checked under AddressSanitizer\n");
#endif
}

static void
test_bookkeeping(void)
{
    struct kv_index *ix = new_index(BLOCKKEY_AIBRIX, 0, 0);
    uint64_t h[] = {1, 2};
    struct index_pod_info pi;
    struct index_lookup_hit hits[4];
    struct index_stats s;
    struct kv_env env = env_of("a", 1, 3, "m2", 41);
    struct kv_event ev;
    enum index_reject why;
    char name[8];

    store(ix,
          &(struct st){.pod = "a",
                       .h = h,
                       .n = 1,
                       .tok = T,
                       .ntok = 16,
                       .bs = 16,
                       .seq = 40},
          NULL);
    store(ix,
          &(struct st){.pod = "b",
                       .lora = "x",
                       .h = h,
                       .n = 1,
                       .tok = T,
                       .ntok = 16,
                       .bs = 16},
          NULL);
    CHECK_U64(index_lookup(ix, NULL, 1, hits, 4), 2,
              "lookup: both pods map the hash");
    CHECK(strcmp(hits[0].pod, "a") == 0 && strcmp(hits[0].model, "m") == 0 &&
              strcmp(hits[0].lora_name, "") == 0 &&
              hits[0].key == 13063670922251535405ull,
          "lookup: pod, namespace and key");
    CHECK(strcmp(hits[1].lora_name, "x") == 0, "lookup: the other namespace");
    CHECK_U64(index_lookup(ix, NULL, 99, hits, 4), 0, "lookup: unknown hash");
    CHECK_U64(index_lookup(ix, NULL, 1, hits, 1), 2,
              "lookup counts beyond cap");

    kv_event_init(&ev, KV_DECODE_ERROR);
    CHECK(index_apply(ix, &env, &ev, &why) == 0 && index_pod_count(ix) == 2,
          "decode_error is ignored");
    kv_event_init(&ev, KV_GAP);
    index_apply(ix, &env, &ev, &why);
    CHECK(index_pod_count(ix) == 3 && index_pod_info(ix, 2, &pi) == 0 &&
              strcmp(pi.pod, "a") == 0 && pi.has_rank && pi.rank == 3 &&
              pi.has_seq && pi.last_seq == 41 && pi.has_ts &&
              pi.last_ts == 1700000041.0 && pi.degraded,
          "pods: (a, rank 3) is its own pod with seq, ts, degraded");
    CHECK(index_pod_info(ix, 0, &pi) == 0 && pi.blocks == 1 &&
              pi.last_seq == 40 && !pi.degraded,
          "pods: blocks and last seq");
    CHECK(index_pod_info(ix, 3, &pi) == -1, "pods: out of range");
    removed(ix, "a", h, 1, NULL);
    record(ix, "a", KV_ALL_BLOCKS_CLEARED);
    record(ix, "a", KV_RESTART);
    s = stats(ix);
    CHECK(s.applied[KV_BLOCK_STORED] == 2 && s.applied[KV_BLOCK_REMOVED] == 1 &&
              s.applied[KV_ALL_BLOCKS_CLEARED] == 1 && s.applied[KV_GAP] == 1 &&
              s.applied[KV_RESTART] == 1 && s.applied[KV_DECODE_ERROR] == 0,
          "stats: applied by type");
    CHECK_U64(s.pods, 3, "stats: pods");

    /* Hostile or broken events are rejected, never trusted. */
    kv_event_init(&ev, KV_BLOCK_REMOVED);
    CHECK(index_apply(ix, &env, &ev, &why) == -1 && why == INDEX_REJ_INVALID,
          "BlockRemoved without block_hashes is invalid");
    kv_event_init(&ev, KV_BLOCK_STORED);
    ev.present = KV_BIT(KV_F_BLOCK_HASHES) | KV_BIT(KV_F_BLOCK_SIZE);
    ev.num[KV_F_BLOCK_SIZE] = 16;
    CHECK(index_apply(ix, &env, &ev, &why) == -1 && why == INDEX_REJ_INVALID,
          "BlockStored without token_ids is invalid");
    CHECK(store(ix,
                &(struct st){.pod = "a",
                             .h = h,
                             .n = 1,
                             .tok = T,
                             .ntok = 16,
                             .bs = (int64_t)1 << 33},
                &why) == -1 &&
              why == INDEX_REJ_INVALID,
          "a block size beyond 32 bits is invalid");
    CHECK(store(ix,
                &(struct st){
                    .pod = "a", .h = h, .n = 2, .tok = T, .ntok = 16, .bs = 8},
                &why) == -1 &&
              why == INDEX_REJ_BLOCK_SIZE,
          "block size checked before alignment");
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "M%d", i);
        if (store(ix,
                  &(struct st){.pod = "a",
                               .h = h,
                               .n = 1,
                               .tok = T,
                               .ntok = 16,
                               .bs = 16,
                               .medium = name},
                  &why) != 0)
            break;
    }
    CHECK(why == INDEX_REJ_INVALID, "a 33rd medium name is refused");
    CHECK_STR(index_medium_name(ix, 31), "M30", "32 media kept");
    CHECK(index_medium_name(ix, 32) == NULL, "no bit 32");
    index_free(ix);
}

static void
test_restore_errors(void)
{
    struct kv_index *ix = new_index(BLOCKKEY_AIBRIX, 0, 0);
    char err[128] = "";
    struct index_dump_entry e = {.pod = "a",
                                 .model = "m",
                                 .lora_name = "",
                                 .block_size = 16,
                                 .engine_hash = 5,
                                 .key = 77,
                                 .media = 1};
    struct index_opts bad = {(enum blockkey_scheme)9, 0, "", "m", 0};

    CHECK(index_restore_entry(ix, &e, err, sizeof err) == 0,
          "restore an entry");
    CHECK(index_restore_entry(ix, &e, err, sizeof err) == 0 &&
              stats(ix).entries == 1,
          "restoring it twice is idempotent");
    e.block_size = 32;
    CHECK(index_restore_entry(ix, &e, err, sizeof err) == -1 &&
              strstr(err, "block_size"),
          "a block size that differs from the namespace's");
    e.block_size = 16;
    e.media = 1u << 5;
    CHECK(index_restore_entry(ix, &e, err, sizeof err) == -1,
          "media bits nobody interned");
    e.media = 0;
    CHECK(index_restore_entry(ix, &e, err, sizeof err) == -1, "no media");
    CHECK(index_restore_ns(ix, (struct kv_str){"m", 1}, (struct kv_str){"", 0},
                           0, err, sizeof err) == -1,
          "namespace block size 0");
    CHECK(index_restore_pod(ix, &(struct index_pod_info){.pod = NULL}, err,
                            sizeof err) == -1,
          "pod without a name");
    match_q(ix, NULL, NULL, 0, NULL, 0);
    CHECK(R.n == 0 && R.blocks == 0, "empty query");
    CHECK(index_match(
              ix, &(struct index_query){.keys = (uint64_t[]){77}, .n_keys = 1},
              &R, err, sizeof err) == 0 &&
              R.n == 1 && R.m[0].depth == 1,
          "a restored key matches by key");
    CHECK(index_new(&bad, err, sizeof err) == NULL && err[0],
          "index_new refuses an unknown scheme");
    index_free(ix);
    index_free(NULL);
}

/* Many answers: the order is depth descending, then pod name, then rank,
 * whatever order the pods were first seen in. */
static void
test_many_answers(void)
{
    for (int distinct = 2; distinct <= 9; distinct += 7) {
        struct kv_index *ix = new_index(BLOCKKEY_AIBRIX, 0, 0);
        uint64_t h[16];
        int ok = 1, n = 0;

        for (int i = 0; i < 16; i++)
            h[i] = (uint64_t)i + 1;
        for (int i = 0; i < 40; i++) {
            int k = (i * 17) % 40; /* first seen out of name order */
            char pod[16];
            int d = distinct == 2 ? (k % 3 ? 5 : 2) : 1 + k % 9;

            snprintf(pod, sizeof pod, "pod-%02d", k / 2);
            store(ix,
                  &(struct st){.pod = pod,
                               .has_rank = 1,
                               .rank = k % 2,
                               .h = h,
                               .n = (size_t)d,
                               .tok = T,
                               .ntok = (size_t)d * 16,
                               .bs = 16},
                  NULL);
        }
        match_q(ix, NULL, T, 16 * 16, NULL, 0);
        for (size_t i = 0; i < R.n; i++) {
            int k = atoi(R.m[i].pod + 4) * 2 + (int)R.m[i].rank;
            int d = distinct == 2 ? (k % 3 ? 5 : 2) : 1 + k % 9;

            ok &= (int)R.m[i].depth == d;
            if (i > 0) {
                const struct index_match *a = &R.m[i - 1], *b = &R.m[i];
                int c = strcmp(a->pod, b->pod);

                ok &= a->depth > b->depth ||
                      (a->depth == b->depth &&
                       (c < 0 || (c == 0 && a->rank < b->rank)));
            }
            n++;
        }
        CHECK(ok && n == 40, distinct == 2
                                 ? "40 answers over 2 depths in order"
                                 : "40 answers over 9 depths in order");
        index_free(ix);
    }
}

/* D1: AIBrix chunks queries in bytes and events in tokens, so the two never
 * meet.  Here the keys op, match by tokens and the event path agree for
 * every block size. */
static void
test_d1_units(void)
{
    int ok = 1;

    for (uint32_t bs = 1; bs <= 64; bs *= 4) {
        struct kv_index *ix = new_index(BLOCKKEY_AIBRIX, 0, 0);
        uint64_t h[4] = {1, 2, 3, 4}, *keys = NULL;
        size_t n = 0;
        char err[64];
        struct index_query q = {.tokens = T, .n_tokens = 4 * bs};

        store(
            ix,
            &(struct st){
                .pod = "a", .h = h, .n = 4, .tok = T, .ntok = 4 * bs, .bs = bs},
            NULL);
        ok &= index_keys(ix, &q, &keys, &n, err, sizeof err) == 0 && n == 4;
        for (size_t i = 0; ok && i < 4; i++)
            ok &= keys[i] == key_of(ix, "a", h[i]);
        free(keys);
        match_q(ix, NULL, T, 4 * bs, NULL, 0);
        ok &= R.n == 1 && R.m[0].depth == 4;
        index_free(ix);
    }
    CHECK(ok, "D1: query and event keys agree at block sizes 1, 4, 16, 64");
}

/* D9: a hash that arrived as a digest and the same hash as an integer are
 * one engine hash (the canonical value: last 8 bytes big-endian). */
static void
test_d9_digest(void)
{
    struct kv_index *ix = new_index(BLOCKKEY_AIBRIX, 0, 0);
    static const uint8_t digest[32] = {[24] = 0x01, [31] = 0x02};
    uint64_t v = 0x0100000000000002ull;
    struct kv_env env = env_of("a", 0, 0, NULL, 1);
    struct kv_event ev;
    struct kv_hash hs = {v, digest, 32};
    enum index_reject why;

    kv_event_init(&ev, KV_BLOCK_STORED);
    ev.present = KV_BIT(KV_F_BLOCK_HASHES) | KV_BIT(KV_F_TOKEN_IDS) |
                 KV_BIT(KV_F_BLOCK_SIZE) | KV_BIT(KV_F_PARENT_BLOCK_HASH);
    ev.isnull = KV_BIT(KV_F_PARENT_BLOCK_HASH);
    ev.hashes = &hs;
    ev.n_hashes = 1;
    ev.tokens = T;
    ev.n_tokens = 16;
    ev.num[KV_F_BLOCK_SIZE] = 16;
    CHECK(index_apply(ix, &env, &ev, &why) == 0, "store by digest");
    removed(ix, "a", &v, 1, NULL);
    CHECK(stats(ix).entries == 0 && stats(ix).unknown_removed == 0,
          "D9: removal by the integer form of the digest");
    index_free(ix);
}

/* A gap or restart record without a dp_rank concerns every rank of the pod;
 * with a rank, only that rank. */
static void
test_unranked_records(void)
{
    struct kv_index *ix = new_index(BLOCKKEY_AIBRIX, 0, 0);
    uint64_t h = 1;
    struct kv_env env = env_of("a", 1, 1, NULL, 9);
    struct kv_event ev;
    enum index_reject why;

    for (int r = 0; r < 2; r++)
        store(ix,
              &(struct st){.pod = "a",
                           .has_rank = 1,
                           .rank = r,
                           .h = &h,
                           .n = 1,
                           .tok = T,
                           .ntok = 16,
                           .bs = 16},
              NULL);
    store(ix,
          &(struct st){
              .pod = "b", .h = &h, .n = 1, .tok = T, .ntok = 16, .bs = 16},
          NULL);
    kv_event_init(&ev, KV_GAP);
    index_apply(ix, &env, &ev, &why);
    match_q(ix, NULL, T, 16, NULL, 0);
    CHECK(R.n == 3 && !R.m[0].degraded && R.m[1].degraded && !R.m[2].degraded,
          "gap with rank 1: only (a, 1) degraded");
    record(ix, "a", KV_GAP); /* dp_rank null */
    match_q(ix, NULL, T, 16, NULL, 0);
    CHECK(R.n == 3 && R.m[0].degraded && R.m[1].degraded && !R.m[2].degraded,
          "gap without rank: every rank of a degraded, b not");
    CHECK_U64(index_pod_count(ix), 3, "no (a, null) pod made up");
    record(ix, "a", KV_RESTART);
    match_q(ix, NULL, T, 16, NULL, 0);
    CHECK(R.n == 1 && strcmp(R.m[0].pod, "b") == 0,
          "restart without rank: every rank of a cleared");
    record(ix, "c", KV_RESTART);
    CHECK_U64(index_pod_count(ix), 4, "an unknown pod is learned as (c, null)");
    index_free(ix);
}

/* ---- dump -> restore --------------------------------------------------- */

static struct kv_index *
dump_restore(struct kv_index *src, uint64_t max_blocks, int *ok)
{
    struct kv_index *dst = new_index(BLOCKKEY_AIBRIX, 0, max_blocks);
    struct index_cursor c = {0};
    struct index_dump_entry e;
    char err[128];

    *ok = 1;
    for (size_t i = 0; i < index_ns_count(src); i++) {
        struct index_ns_info ni;

        index_ns_info(src, i, &ni);
        if (index_restore_ns(
                dst, (struct kv_str){ni.model, strlen(ni.model)},
                (struct kv_str){ni.lora_name, strlen(ni.lora_name)},
                ni.block_size, err, sizeof err))
            *ok = 0;
    }
    for (size_t i = 0; i < index_pod_count(src); i++) {
        struct index_pod_info pi;

        index_pod_info(src, i, &pi);
        if (index_restore_pod(dst, &pi, err, sizeof err))
            *ok = 0;
    }
    while (index_dump_next(src, &c, NULL, &e)) {
        /* Media travel by name: bit numbers belong to each index. */
        uint32_t media = 0;

        for (int b = 0; b < 32; b++) {
            const char *name = index_medium_name(src, b);

            if ((e.media >> b & 1) && name)
                media |= 1u << index_medium_intern(dst, name, strlen(name));
        }
        e.media = media;
        if (index_restore_entry(dst, &e, err, sizeof err)) {
            printf("# restore: %s\n", err);
            *ok = 0;
        }
    }
    return dst;
}

static int
same_results(const struct index_match_result *a,
             const struct index_match_result *b, const struct kv_index *ia,
             const struct kv_index *ib)
{
    if (a->n != b->n || a->blocks != b->blocks)
        return 0;
    for (size_t i = 0; i < a->n; i++) {
        const struct index_match *x = &a->m[i], *y = &b->m[i];

        if (strcmp(x->pod, y->pod) || x->has_rank != y->has_rank ||
            x->rank != y->rank || x->depth != y->depth ||
            x->degraded != y->degraded)
            return 0;
        for (int bit = 0; bit < 32; bit++) {
            if (x->media >> bit & 1) {
                const char *n = index_medium_name(ia, bit);
                int found = 0;

                for (int c = 0; c < 32; c++)
                    if ((y->media >> c & 1) && index_medium_name(ib, c) &&
                        strcmp(index_medium_name(ib, c), n) == 0)
                        found = 1;
                if (!found)
                    return 0;
            }
        }
    }
    return 1;
}

static void
test_dump_restore(void)
{
    struct kv_index *a = new_index(BLOCKKEY_AIBRIX, 0, 0), *b;
    struct index_match_result ra = {0}, rb = {0};
    struct index_stats sa, sb;
    uint64_t h[8];
    int ok, same = 1;
    char err[64];
    struct index_cursor c = {0};
    struct index_dump_entry e;
    size_t n_b = 0;

    for (int p = 0; p < 5; p++) {
        char pod[8];

        snprintf(pod, sizeof pod, "p%d", p);
        for (int i = 0; i < 8; i++)
            h[i] = (uint64_t)(p * 100 + i);
        store(a,
              &(struct st){.pod = pod,
                           .has_rank = p & 1,
                           .rank = p,
                           .h = h,
                           .n = (size_t)(2 + p),
                           .tok = T + p % 2,
                           .ntok = (size_t)(2 + p) * 16,
                           .bs = 16,
                           .medium = p == 3 ? "CPU" : NULL},
              NULL);
        store(a,
              &(struct st){.pod = pod,
                           .has_rank = p & 1,
                           .rank = p,
                           .lora = "x",
                           .h = h + 7,
                           .n = 1,
                           .tok = T,
                           .ntok = 4,
                           .bs = 4},
              NULL);
    }
    record(a, "p2", KV_GAP);
    b = dump_restore(a, 0, &ok);
    CHECK(ok, "restore accepted every dumped item");
    sa = stats(a);
    sb = stats(b);
    CHECK_U64(sb.entries, sa.entries, "same entries");
    CHECK_U64(sb.keys, sa.keys, "same keys");
    CHECK_U64(sb.namespaces, sa.namespaces, "same namespaces");
    for (int off = 0; off < 2; off++) {
        for (size_t len = 0; len <= 128; len += 8) {
            struct index_query q = {.tokens = T + off, .n_tokens = len};
            index_match(a, &q, &ra, err, sizeof err);
            index_match(b, &q, &rb, err, sizeof err);
            same &= same_results(&ra, &rb, a, b);
            q.lora_name = (struct kv_str){"x", 1};
            index_match(a, &q, &ra, err, sizeof err);
            index_match(b, &q, &rb, err, sizeof err);
            same &= same_results(&ra, &rb, a, b);
        }
    }
    CHECK(same, "restored index answers match identically");
    index_match(a, &(struct index_query){.tokens = T, .n_tokens = 112}, &ra,
                err, sizeof err);
    CHECK(ra.n > 0, "the comparison saw matches");
    while (index_dump_next(a, &c, &(struct index_pod_ref){{"p1", 2}, 1, 1}, &e))
        n_b++;
    CHECK_U64(n_b, 4, "dump filtered to one pod");
    index_free(b);
    index_match_result_free(&ra);
    index_match_result_free(&rb);
    index_free(a);
}

static void
test_restore_lru_order(void)
{
    struct kv_index *a = new_index(BLOCKKEY_AIBRIX, 0, 3), *b;
    uint64_t h[] = {1, 2, 3, 4};
    int ok;

    for (int i = 0; i < 3; i++)
        store(a,
              &(struct st){.pod = "a",
                           .h = &h[i],
                           .n = 1,
                           .tok = T + 16 * i,
                           .ntok = 16,
                           .bs = 16},
              NULL);
    match_q(a, NULL, T, 16, NULL, 0);
    b = dump_restore(a, 3, &ok);
    /* A later batch: one at the restored seq would be taken for a line
     * the snapshot already holds. */
    store(b,
          &(struct st){.pod = "a",
                       .seq = 1,
                       .h = &h[3],
                       .n = 1,
                       .tok = T + 48,
                       .ntok = 16,
                       .bs = 16},
          NULL);
    CHECK(ok && key_of(b, "a", 1) != 0 && key_of(b, "a", 2) == 0,
          "dump order preserves LRU order");
    index_free(a);
    index_free(b);
}

/* A root store of one block: tokens first..first+15, engine hash h. */
static int
store_root(struct kv_index *ix, const char *pod, const char *model,
           const char *lora, uint32_t first, uint64_t h)
{
    return store(ix,
                 &(struct st){.pod = pod,
                              .model = model,
                              .lora = lora,
                              .h = &h,
                              .n = 1,
                              .tok = T + first,
                              .ntok = 16,
                              .bs = 16},
                 NULL);
}

static void
test_ties(void)
{
    struct kv_index *ix = new_index(BLOCKKEY_AIBRIX, 0, 0);
    char name[16];
    int order_ok = 1;

    /* c and b hold the prefix only; a holds one more block elsewhere. */
    store_root(ix, "a", NULL, NULL, 0, 1);
    store_root(ix, "a", NULL, NULL, 1000, 2);
    store_root(ix, "c", NULL, NULL, 0, 3);
    store_root(ix, "b", NULL, NULL, 0, 4);
    CHECK_U64(match_q(ix, NULL, T, 16, NULL, 0), 3, "three pods tie");
    CHECK(R.n == 3 && !strcmp(R.m[0].pod, "b") && !strcmp(R.m[1].pod, "c") &&
              !strcmp(R.m[2].pod, "a"),
          "ties: fewest blocks first, then name (b, c, a)");
    /* Twenty tied pods take match_order's walk in name order; p00..p09
     * hold one more block each, so p10..p19 come first. */
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof name, "p%02d", i);
        store_root(ix, name, NULL, NULL, 0, 100 + (uint64_t)i);
        if (i < 10)
            store_root(ix, name, NULL, NULL, 2000, 200 + (uint64_t)i);
    }
    CHECK_U64(match_q(ix, NULL, T, 16, NULL, 0), 23, "23 pods tie");
    for (int i = 0; i < 23; i++) {
        const char *want = name;

        if (i == 0 || i == 1)
            want = i == 0 ? "b" : "c";
        else if (i <= 11)
            snprintf(name, sizeof name, "p%02d", i + 8);
        else if (i == 12)
            want = "a";
        else
            snprintf(name, sizeof name, "p%02d", i - 13);
        if (strcmp(R.m[i].pod, want) != 0)
            order_ok = 0;
    }
    CHECK(order_ok, "many ties: b, c, p10..p19 (one block), then a, p00..p09");
    index_free(ix);
}

static void
test_unknown_namespace(void)
{
    struct kv_index *ix = new_index(BLOCKKEY_AIBRIX, 0, 0);
    struct index_query q = {.tokens = T, .n_tokens = 16};
    struct index_match_result r = {0};
    char err[512], name[32];
    size_t n;

    store_root(ix, "a", "llama", NULL, 0, 1);
    store_root(ix, "a", "llama", "sql", 0, 2);
    store_root(ix, "a", "qwen", NULL, 0, 3);
    store_root(ix, "a", "mistral", "l1", 0, 4);
    q.model = (struct kv_str){"nope", 4};
    CHECK(index_match(ix, &q, &r, err, sizeof err) == -1,
          "match: unknown model");
    CHECK_STR(err,
              "unknown model \"nope\"; known models: \"llama\", \"qwen\", "
              "\"mistral\"",
              "the error lists the known models once each");
    q.model = (struct kv_str){"llama", 5};
    q.lora_name = (struct kv_str){"x", 1};
    CHECK(index_match(ix, &q, &r, err, sizeof err) == -1,
          "match: unknown LoRA");
    CHECK_STR(err, "unknown LoRA \"x\" of model \"llama\"; its LoRAs: \"sql\"",
              "the error lists the model's LoRAs");
    q.model = (struct kv_str){"qwen", 4};
    CHECK(index_match(ix, &q, &r, err, sizeof err) == -1, "qwen has no LoRA");
    CHECK_STR(err,
              "unknown LoRA \"x\" of model \"qwen\"; it has blocks of no LoRA",
              "a model without LoRAs says so");
    q.model = (struct kv_str){"mistral", 7};
    q.lora_name = (struct kv_str){NULL, 0};
    CHECK(index_match(ix, &q, &r, err, sizeof err) == -1,
          "mistral has no base-model blocks");
    CHECK_STR(err,
              "model \"mistral\" has no blocks without a LoRA; its LoRAs: "
              "\"l1\"",
              "the base model of a LoRA-only model");
    q.lora_name = (struct kv_str){"l1", 2};
    CHECK(index_match(ix, &q, &r, err, sizeof err) == 0 && r.n == 1,
          "a known namespace answers");
    CHECK(index_ns_check(ix, (struct kv_str){"qwen", 4}, (struct kv_str){"", 0},
                         err, sizeof err) == 0,
          "an empty LoRA is the base model");
    {
        /* A name longer than the 200 bytes an error shows is still compared
         * whole: its model is known, its LoRA is not. */
        char longm[251], want[512];

        memset(longm, 'x', 250);
        longm[250] = '\0';
        store_root(ix, "a", longm, NULL, 0, 9);
        q.model = (struct kv_str){longm, 250};
        q.lora_name = (struct kv_str){"y", 1};
        CHECK(index_match(ix, &q, &r, err, sizeof err) == -1,
              "a long model name, an unknown LoRA");
        snprintf(want, sizeof want,
                 "unknown LoRA \"y\" of model \"%.200s\"; it has blocks of "
                 "no LoRA",
                 longm);
        CHECK_STR(err, want, "the model of a long name is known");
    }
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "model-with-a-long-name-%02d", i);
        store_root(ix, "a", name, NULL, 0, 10 + (uint64_t)i);
    }
    q.model = (struct kv_str){"nope", 4};
    q.lora_name = (struct kv_str){NULL, 0};
    CHECK(index_match(ix, &q, &r, err, sizeof err) == -1, "still unknown");
    n = strlen(err);
    CHECK(n < sizeof err - 1 && n > 20 &&
              strcmp(err + n - 12, " and 34 more") == 0,
          "a long list ends with how many it left out");
    index_match_result_free(&r);
    index_free(ix);
}

static void
test_orphan_degraded(void)
{
    struct kv_index *ix = new_index(BLOCKKEY_AIBRIX, 0, 0);
    struct index_pod_info pi;
    uint64_t h = 50;
    int alarms = 0;
    struct st orphan = {.pod = "a",
                        .has_parent = 1,
                        .parent = 999,
                        .h = &h,
                        .n = 1,
                        .tok = T,
                        .ntok = 16,
                        .bs = 16};

    for (int i = 0; i < 10; i++) {
        store(ix, &orphan, NULL);
        alarms += index_orphan_alarm(ix, &pi);
    }
    CHECK(alarms == 0 && index_pod_info(ix, 0, &pi) == 0 && !pi.degraded &&
              pi.orphans == 10,
          "no threshold: orphans are counted, the pod stays healthy");
    index_set_degraded_orphans(ix, 3);
    record(ix, "a", KV_RESTART);
    for (int i = 0; i < 3; i++) {
        store(ix, &orphan, NULL);
        alarms += index_orphan_alarm(ix, &pi);
    }
    CHECK(alarms == 0 && index_pod_info(ix, 0, &pi) == 0 && !pi.degraded &&
              pi.orphan_run == 3,
          "3 orphans with --degraded-orphans 3: not yet");
    store(ix, &orphan, NULL);
    CHECK(index_orphan_alarm(ix, &pi) == 1 && !strcmp(pi.pod, "a") &&
              pi.degraded && pi.orphan_run == 4 && pi.orphans == 14,
          "the 4th degrades the pod and raises the alarm");
    store(ix, &orphan, NULL);
    CHECK(index_orphan_alarm(ix, &pi) == 0, "the alarm is raised once");
    store_root(ix, "a", NULL, NULL, 0, 1);
    CHECK(index_orphan_alarm(ix, &pi) == 0, "a good store clears the alarm");
    CHECK(match_q(ix, NULL, T, 16, NULL, 0) == 1 && R.m[0].degraded,
          "matches show the pod degraded");
    record(ix, "a", KV_ALL_BLOCKS_CLEARED);
    CHECK(index_pod_info(ix, 0, &pi) == 0 && !pi.degraded && pi.orphan_run == 0,
          "AllBlocksCleared resets degraded and the run");
    for (int i = 0; i < 4; i++)
        store(ix, &orphan, NULL);
    CHECK(index_orphan_alarm(ix, &pi) == 1, "a new run raises it again");
    record(ix, "a", KV_RESTART);
    CHECK(index_pod_info(ix, 0, &pi) == 0 && !pi.degraded && pi.orphan_run == 0,
          "a restart resets degraded and the run");
    index_free(ix);
}

static void
test_event_clock(void)
{
    struct kv_index *ix = new_index(BLOCKKEY_AIBRIX, 0, 0);
    struct index_pod_info pi;
    struct index_pod_info restored = {.pod = "b"};
    char err[128];

    index_set_clock(ix, 12.5);
    store_root(ix, "a", NULL, NULL, 0, 1);
    CHECK(index_pod_info(ix, 0, &pi) == 0 && pi.has_event_at &&
              pi.event_at == 12.5,
          "a pod's last event is stamped with the clock");
    index_set_clock(ix, 20.0);
    record(ix, "a", KV_GAP);
    CHECK(index_pod_info(ix, 0, &pi) == 0 && pi.event_at == 20.0,
          "records count as events");
    CHECK(index_restore_pod(ix, &restored, err, sizeof err) == 0 &&
              index_pod_info(ix, 1, &pi) == 0 && !pi.has_event_at,
          "a restored pod has seen no event yet");
    index_free(ix);
}

/* ---- randomized against a brute-force model ---------------------------- */

struct m_ent {
    int pod;
    uint64_t engine_hash;
    int ns;
    uint64_t key;
    uint32_t media; /* bit 0 GPU, bit 1 CPU (model-local bits) */
};

static struct m_ent M[40000];
static size_t M_n;

static struct m_ent *
m_find(int pod, uint64_t h)
{
    for (size_t i = 0; i < M_n; i++)
        if (M[i].pod == pod && M[i].engine_hash == h)
            return &M[i];
    return NULL;
}

static void
m_del(struct m_ent *e)
{
    *e = M[--M_n];
}

/* The model's count of the entries of the pod named pod (names[i] is pod
 * i), in every namespace: the load proxy that orders ties. */
static uint64_t
m_blocks(const char *const *names, const char *pod)
{
    uint64_t n = 0;

    for (size_t i = 0; i < M_n; i++)
        n += strcmp(names[M[i].pod], pod) == 0;
    return n;
}

static uint64_t rng = 88172645463325252ull;

static uint64_t
rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Token of document d at position i: documents share their first 64
 * positions in pairs, so prefixes overlap across documents. */
static uint32_t
doc_tok(int d, size_t i)
{
    return i < 64 ? (uint32_t)((d / 2) * 100000 + i)
                  : (uint32_t)(d * 100000 + i);
}

/* An engine's hash of block b of document d on pod p (per-process seeds:
 * every pod hashes differently; shared prefixes share the engine hash on
 * one pod). */
static uint64_t
eng_hash(int p, int d, size_t b)
{
    int dd = b < 4 ? d / 2 : d;

    return ((uint64_t)p << 48) ^ ((uint64_t)dd << 24) ^ (b + 1);
}

static void
test_random(int DOCS, int STEPS, int clear_every, int pad_pods,
            uint64_t max_blocks, enum blockkey_scheme scheme)
{
    enum { PODS = 5, BS = 16 };
    static const char *const names[PODS] = {"p0", "p1", "p2", "p3", "p4"};
    static const char *loras[2] = {"", "L"};
    struct kv_index *ix = new_index(scheme, 7, max_blocks);
    /* The model's own key configuration per namespace (llm-d roots the
     * LoRA's chain on its name, the base model's on the model). */
    struct blockkey_cfg cfgs[2] = {
        {scheme, 7, blockkey_llmd_root("", 0, "m", 1)},
        {scheme, 7, blockkey_llmd_root("", 0, "L", 1)},
    };
    struct index_match_result r = {0};
    uint32_t tok[16 * BS];
    int cpu = index_medium_intern(ix, "CPU", 3);

    M_n = 0;
    /* Pods interned first push the tested ones past 64, onto the path that
     * walks holder lists instead of pod bitmaps. */
    for (int i = 0; i < pad_pods; i++) {
        char pad[16];

        snprintf(pad, sizeof pad, "pad%d", i);
        record(ix, pad, KV_GAP);
    }
    int bad = 0, queries = 0, hits = 0, entries_bad = 0, ns_known[2] = {0};
    uint64_t evicted = 0;
    size_t max_n = 0;
    char err[64];

    for (int step = 0; step < STEPS; step++) {
        int p = (int)(rnd() % PODS), op = (int)(rnd() % 10);
        int d = (int)(rnd() % DOCS), ns = (int)(rnd() % 2);

        if (op < 6) {
            /* Store blocks [b0, b0+n) of document d. */
            size_t b0 = rnd() % 12, n = 1 + rnd() % 4;
            uint64_t h[4], parent_key = 0;
            int has_parent = b0 > 0, medium = (int)(rnd() % 4 == 0);
            int expect_ok = 1;
            uint64_t parent = 0;
            struct m_ent *pe = NULL;
            int rc;

            if (has_parent) {
                parent = rnd() % 16 == 0 ? 777 : eng_hash(p, d, b0 - 1);
                pe = m_find(p, parent);
                if (pe == NULL)
                    expect_ok = 0;
                else
                    parent_key = pe->key;
            }
            for (size_t i = 0; i < n; i++) {
                h[i] = eng_hash(p, d, b0 + i);
                for (size_t t = 0; t < BS; t++)
                    tok[i * BS + t] = doc_tok(d, (b0 + i) * BS + t);
            }
            rc = store(ix,
                       &(struct st){.pod = names[p],
                                    .lora = loras[ns],
                                    .has_parent = has_parent,
                                    .parent = parent,
                                    .h = h,
                                    .n = n,
                                    .tok = tok,
                                    .ntok = n * BS,
                                    .bs = BS,
                                    .medium = medium ? "CPU" : NULL},
                       NULL);
            if ((rc == 0) != expect_ok)
                bad++;
            if (!expect_ok)
                continue;
            ns_known[ns] = 1;
            for (size_t i = 0; i < n; i++) {
                struct m_ent *e = m_find(p, h[i]);
                uint64_t key;

                if (e) {
                    e->media |= 1u << medium;
                    parent_key = e->key;
                    has_parent = 1;
                    continue;
                }
                key = blockkey_next(&cfgs[ns], has_parent ? &parent_key : NULL,
                                    tok + i * BS, BS);
                M[M_n++] = (struct m_ent){p, h[i], ns, key, 1u << medium};
                parent_key = key;
                has_parent = 1;
            }
        } else if (op < 8 && rnd() % 2) {
            /* Remove a few of the pod's hashes, some unknown. */
            uint64_t h[3];
            int medium = (int)(rnd() % 3); /* 0 GPU, 1 CPU, 2 all */

            for (int i = 0; i < 3; i++)
                h[i] = eng_hash(p, d, rnd() % 14);
            removed(ix, names[p], h, 3,
                    medium == 2 ? NULL
                    : medium    ? "CPU"
                                : "GPU");
            for (int i = 0; i < 3; i++) {
                struct m_ent *e = m_find(p, h[i]);

                if (e == NULL)
                    continue;
                e->media &= medium == 2 ? 0 : ~(1u << medium);
                if (e->media == 0)
                    m_del(e);
            }
        } else if (op == 8 && rnd() % (uint64_t)clear_every == 0) {
            record(ix, names[p], KV_ALL_BLOCKS_CLEARED);
            for (size_t i = M_n; i-- > 0;)
                if (M[i].pod == p)
                    m_del(&M[i]);
        } else {
            /* Query a prefix of a document, maybe with a divergent tail. */
            size_t nb = 1 + rnd() % 16, depth[PODS] = {0};
            uint64_t keys[16];
            struct index_query q = {.lora_name = {loras[ns], strlen(loras[ns])},
                                    .tokens = tok,
                                    .n_tokens = nb * BS,
                                    .block_size = BS};
            int okq = 1;
            uint32_t media[PODS] = {0};

            for (size_t t = 0; t < nb * BS; t++)
                tok[t] = doc_tok(d, t);
            if (rnd() % 4 == 0)
                tok[(rnd() % nb) * BS] ^= 1;
            blockkey_chain(&cfgs[ns], NULL, tok, nb * BS, BS, keys);
            for (int pp = 0; pp < PODS; pp++) {
                while (depth[pp] < nb) {
                    int found = 0;

                    for (size_t i = 0; i < M_n; i++)
                        if (M[i].pod == pp && M[i].ns == ns &&
                            M[i].key == keys[depth[pp]]) {
                            found = 1;
                            media[pp] |= M[i].media;
                        }
                    if (!found)
                        break;
                    depth[pp]++;
                }
            }
            queries++;
            if (!ns_known[ns]) {
                /* Never stored in: an error, not an empty answer. */
                if (index_match(ix, &q, &r, err, sizeof err) != -1)
                    bad++;
                continue;
            }
            if (index_match(ix, &q, &r, err, sizeof err) != 0)
                okq = 0;
            for (int pp = 0; pp < PODS; pp++) {
                uint32_t got = 0, gmedia = 0;

                for (size_t i = 0; i < r.n; i++)
                    if (strcmp(r.m[i].pod, names[pp]) == 0) {
                        got = r.m[i].depth;
                        gmedia = r.m[i].media;
                    }
                if (got != depth[pp])
                    okq = 0;
                if (got &&
                    gmedia != ((media[pp] & 1) | (media[pp] >> 1 & 1) << cpu))
                    okq = 0;
                if (got)
                    hits++;
            }
            for (size_t i = 1; i < r.n; i++) {
                /* Depth, then fewer blocks held, then name. */
                uint64_t b0 = m_blocks(names, r.m[i - 1].pod);
                uint64_t b1 = m_blocks(names, r.m[i].pod);

                if (r.m[i - 1].depth < r.m[i].depth ||
                    (r.m[i - 1].depth == r.m[i].depth &&
                     (b0 > b1 ||
                      (b0 == b1 && strcmp(r.m[i - 1].pod, r.m[i].pod) >= 0))))
                    okq = 0; /* unsorted, or a pod twice */
            }
            if (!okq)
                bad++;
        }
        if (max_blocks) {
            /* The index chose what to evict: drop those from the model
             * (every one must have been counted), then compare as usual. */
            uint64_t gone = 0, ev = stats(ix).max_blocks_dropped;

            for (size_t i = M_n; i-- > 0;) {
                struct index_pod_ref ref = {
                    {names[M[i].pod], strlen(names[M[i].pod])}, 0, 0};
                struct index_lookup_hit hit;

                if (index_lookup(ix, &ref, M[i].engine_hash, &hit, 1) == 0) {
                    m_del(&M[i]);
                    gone++;
                }
            }
            if (gone != ev - evicted || M_n > max_blocks)
                entries_bad++;
            evicted = ev;
        }
        max_n = M_n > max_n ? M_n : max_n;
        if (stats(ix).entries != M_n)
            entries_bad++;
    }
    CHECK_U64(bad, 0, "random: every store/match agrees with the model");
    CHECK_U64(entries_bad, 0, "random: entry counts agree after every step");
    CHECK(queries > 500 && hits > 200, "random: the run exercised matches");
    printf("# random: %d queries, %d pod hits, %zu entries at most\n", queries,
           hits, max_n);
    index_match_result_free(&r);
    index_free(ix);
}

int
main(void)
{
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++)
        T[i] = (uint32_t)i;
    test_store_and_match();
    test_chain_across_events();
    test_orphan();
    test_per_pod_maps();
    test_per_pod_removal();
    test_namespaces();
    test_seed();
    test_keys_op();
    test_llmd_lora_root();
    test_rejects();
    test_media();
    test_clear_restart_gap();
    test_depth_semantics();
    test_bigram_pages();
    test_bookkeeping();
    test_d1_units();
    test_d9_digest();
    test_unranked_records();
    test_many_answers();
    test_restore_errors();
    test_ties();
    test_unknown_namespace();
    test_orphan_degraded();
    test_event_clock();
    test_lru();
    test_memory_returns();
    test_bytes_vs_allocator(0);
    test_bytes_vs_allocator(100000);
    test_dump_restore();
    test_restore_lru_order();
    test_random(8, 6000, 8, 0, 0, BLOCKKEY_DYNAMO);
    test_random(64, 30000, 200, 0, 0, BLOCKKEY_AIBRIX);
    test_random(16, 10000, 50, 64, 0, BLOCKKEY_LLMD);
    test_random(64, 30000, 200, 0, 1200, BLOCKKEY_DYNAMO);
    /* Pods 60..64: both sides of the bitmap's last bit. */
    test_random(16, 10000, 50, 60, 0, BLOCKKEY_DYNAMO);
    test_random(32, 10000, 200, 61, 600, BLOCKKEY_AIBRIX);
    index_match_result_free(&R);
    return unit_done();
}

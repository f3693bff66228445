/*
 * test_index.c - the prefix index against docs/kvindex.md#how-events-apply
 * and the AIBrix indexer defects listed below as regressions.  LRU
 * eviction, memory and dump -> restore are in test_index_memory.c, the
 * randomized runs against a brute-force model in test_index_model.c; the
 * helpers they share in ixtest.h.
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
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "ixtest.h"
#include "unit.h"

static void
test_store_and_match(void)
{
    struct kv_index *ix = ixtest_new(BLOCKKEY_AIBRIX, 0, 0);
    uint64_t h[] = {101, 102};
    struct index_stats s;

    /* D3: both blocks of one event; block 1 chains on block 0. */
    CHECK(ixtest_store(ix,
                       &(struct ixtest_st){.pod = "a",
                                           .h = h,
                                           .n = 2,
                                           .tok = ixtest_T,
                                           .ntok = 32,
                                           .bs = 16},
                       NULL) == 0,
          "store two blocks in one event");
    CHECK_U64(ixtest_key(ix, "a", 101), 13063670922251535405ull,
              "block 0 key is the aibrix vector");
    CHECK_U64(ixtest_key(ix, "a", 102), 15794143472128267642ull,
              "D3: block 1 chains on block 0 of the same event");
    CHECK_U64(ixtest_match(ix, NULL, ixtest_T, 32, NULL, 0), 1,
              "one pod matches");
    CHECK_U64(ixtest_depth("a"), 2, "D3: depth 2 (AIBrix reports 50%)");
    CHECK_U64(ixtest_R.blocks, 2, "query has 2 blocks");
    CHECK_U64(ixtest_R.block_size, 16, "namespace block size reported");
    CHECK_U64(ixtest_R.m[0].media, 1, "medium GPU for a null medium");
    CHECK_STR(index_medium_name(ix, 0), "GPU", "bit 0 is GPU");
    CHECK(ixtest_R.m[0].has_rank == 0 && ixtest_R.m[0].degraded == 0,
          "rank null, healthy");
    CHECK_U64(ixtest_match(ix, NULL, ixtest_T, 47, NULL, 0), 1,
              "partial tail ignored");
    CHECK_U64(ixtest_R.blocks, 2, "47 tokens are 2 full blocks");
    CHECK_U64(ixtest_match(ix, NULL, ixtest_T + 1, 32, NULL, 0), 0,
              "other tokens do not match");
    s = ixtest_stats(ix);
    CHECK_U64(s.entries, 2, "two entries");
    CHECK_U64(s.keys, 2, "two keys");
    CHECK_U64(s.namespaces, 1, "one namespace");
    CHECK_U64(s.applied[KV_BLOCK_STORED], 1, "one store applied");
    index_free(ix);
}

static void
test_chain_across_events(void)
{
    struct kv_index *ix = ixtest_new(BLOCKKEY_AIBRIX, 0, 0);
    uint64_t h0 = 7, h1 = 8;

    ixtest_store(ix,
                 &(struct ixtest_st){.pod = "a",
                                     .h = &h0,
                                     .n = 1,
                                     .tok = ixtest_T,
                                     .ntok = 16,
                                     .bs = 16},
                 NULL);
    CHECK(ixtest_store(ix,
                       &(struct ixtest_st){.pod = "a",
                                           .has_parent = 1,
                                           .parent = 7,
                                           .h = &h1,
                                           .n = 1,
                                           .tok = ixtest_T + 16,
                                           .ntok = 16,
                                           .bs = 16},
                       NULL) == 0,
          "store with a known parent");
    CHECK_U64(ixtest_key(ix, "a", 8), 15794143472128267642ull,
              "parent resolved through the pod's engine map");
    ixtest_match(ix, NULL, ixtest_T, 32, NULL, 0);
    CHECK_U64(ixtest_depth("a"), 2, "depth 2 across events");
    index_free(ix);
}

static void
test_orphan(void)
{
    struct kv_index *ix = ixtest_new(BLOCKKEY_AIBRIX, 0, 0);
    uint64_t h = 9;
    enum index_reject why = INDEX_REJ_NONE;
    struct index_pod_info pi;

    CHECK(ixtest_store(ix,
                       &(struct ixtest_st){.pod = "a",
                                           .has_parent = 1,
                                           .parent = 12345,
                                           .h = &h,
                                           .n = 1,
                                           .tok = ixtest_T + 16,
                                           .ntok = 16,
                                           .bs = 16},
                       &why) == -1,
          "D4: unknown parent rejected");
    CHECK_U64(why, INDEX_REJ_ORPHAN, "reason orphan");
    CHECK_STR(index_reject_name(why), "orphan", "reject name");
    CHECK_U64(ixtest_stats(ix).rejected[INDEX_REJ_ORPHAN], 1, "orphan counted");
    CHECK_U64(ixtest_stats(ix).entries, 0, "nothing stored");
    CHECK_U64(ixtest_match(ix, NULL, ixtest_T + 16, 16, NULL, 0), (size_t)-1,
              "D4: not stored as a root (not even its namespace)");
    CHECK_STR(ixtest_match_err,
              "unknown model \"m\"; the index has seen no model yet",
              "an unknown namespace is an error, not an empty answer");
    CHECK(index_pod_info(ix, 0, &pi) == 0 && pi.orphans == 1,
          "pod counts its orphans");
    index_free(ix);
}

static void
test_per_pod_maps(void)
{
    struct kv_index *ix = ixtest_new(BLOCKKEY_AIBRIX, 0, 0);
    uint64_t h = 1, h2 = 2;
    enum index_reject why;

    /* Engines seed hashes per process: the same engine hash names other
     * content on another pod. */
    ixtest_store(
        ix,
        &(struct ixtest_st){
            .pod = "a", .h = &h, .n = 1, .tok = ixtest_T, .ntok = 16, .bs = 16},
        NULL);
    ixtest_store(ix,
                 &(struct ixtest_st){.pod = "b",
                                     .h = &h,
                                     .n = 1,
                                     .tok = ixtest_T + 100,
                                     .ntok = 16,
                                     .bs = 16},
                 NULL);
    CHECK(ixtest_key(ix, "a", 1) != ixtest_key(ix, "b", 1),
          "D5: one engine hash, two pods, two keys");
    CHECK_U64(ixtest_match(ix, NULL, ixtest_T, 16, NULL, 0), 1, "a's content");
    CHECK_U64(ixtest_depth("a"), 1, "a holds it");
    ixtest_removed(ix, "b", &h, 1, NULL);
    CHECK_U64(ixtest_match(ix, NULL, ixtest_T, 16, NULL, 0), 1,
              "D5: b's removal leaves a's mapping");
    CHECK_U64(ixtest_match(ix, NULL, ixtest_T + 100, 16, NULL, 0), 0,
              "b's block gone");
    CHECK(ixtest_store(ix,
                       &(struct ixtest_st){.pod = "c",
                                           .has_parent = 1,
                                           .parent = 1,
                                           .h = &h2,
                                           .n = 1,
                                           .tok = ixtest_T + 16,
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
    struct kv_index *ix = ixtest_new(BLOCKKEY_AIBRIX, 0, 0);
    uint64_t ha = 11, hb = 22, unknown[] = {999, 11};

    ixtest_store(ix,
                 &(struct ixtest_st){.pod = "a",
                                     .h = &ha,
                                     .n = 1,
                                     .tok = ixtest_T,
                                     .ntok = 16,
                                     .bs = 16},
                 NULL);
    ixtest_store(ix,
                 &(struct ixtest_st){.pod = "b",
                                     .h = &hb,
                                     .n = 1,
                                     .tok = ixtest_T,
                                     .ntok = 16,
                                     .bs = 16},
                 NULL);
    CHECK_U64(ixtest_stats(ix).keys, 1, "two pods, one key");
    CHECK_U64(ixtest_stats(ix).entries, 2, "two entries");
    CHECK(ixtest_removed(ix, "a", unknown, 2, NULL) == 0,
          "removal with an unknown hash applies");
    CHECK_U64(ixtest_stats(ix).unknown_removed, 1, "unknown hash counted");
    CHECK_U64(ixtest_match(ix, NULL, ixtest_T, 16, NULL, 0), 1,
              "D2: a's removal keeps b's claim");
    CHECK_U64(ixtest_depth("b"), 1, "b still holds the key");
    CHECK_U64(ixtest_depth("a"), 0, "a's known hash was removed");
    ixtest_removed(ix, "b", &hb, 1, NULL);
    CHECK_U64(ixtest_stats(ix).keys, 0, "key freed with its last holder");
    CHECK_U64(ixtest_stats(ix).entries, 0, "no entries");
    index_free(ix);
}

static void
test_namespaces(void)
{
    struct kv_index *ix = ixtest_new(BLOCKKEY_AIBRIX, 0, 0);
    uint64_t h1 = 1, h2 = 2, h3 = 3, h4 = 4;

    ixtest_store(ix,
                 &(struct ixtest_st){.pod = "a",
                                     .lora = "sql",
                                     .h = &h1,
                                     .n = 1,
                                     .tok = ixtest_T,
                                     .ntok = 16,
                                     .bs = 16},
                 NULL);
    ixtest_store(ix,
                 &(struct ixtest_st){.pod = "b",
                                     .has_lora_id = 1,
                                     .lora_id = 7,
                                     .h = &h2,
                                     .n = 1,
                                     .tok = ixtest_T,
                                     .ntok = 16,
                                     .bs = 16},
                 NULL);
    ixtest_store(ix,
                 &(struct ixtest_st){.pod = "c",
                                     .lora = "",
                                     .h = &h3,
                                     .n = 1,
                                     .tok = ixtest_T,
                                     .ntok = 16,
                                     .bs = 16},
                 NULL);
    ixtest_store(ix,
                 &(struct ixtest_st){.pod = "d",
                                     .model = "other",
                                     .h = &h4,
                                     .n = 1,
                                     .tok = ixtest_T,
                                     .ntok = 16,
                                     .bs = 16},
                 NULL);
    CHECK_U64(ixtest_stats(ix).namespaces, 4, "four namespaces");
    ixtest_match(ix, NULL, ixtest_T, 16, NULL, 0);
    CHECK(ixtest_R.n == 1 && ixtest_depth("c") == 1,
          "D6: base query sees only the base model (\"\" lora is base)");
    ixtest_match(ix, "sql", ixtest_T, 16, NULL, 0);
    CHECK(ixtest_R.n == 1 && ixtest_depth("a") == 1, "lora_name namespace");
    ixtest_match(ix, "7", ixtest_T, 16, NULL, 0);
    CHECK(ixtest_R.n == 1 && ixtest_depth("b") == 1,
          "lora_id only: named by the id");
    index_free(ix);

    /* Many adapters: every namespace stays separate and found. */
    ix = ixtest_new(BLOCKKEY_AIBRIX, 0, 0);
    for (int i = 0; i < 300; i++) {
        char lora[16];
        uint64_t h = (uint64_t)i + 1;

        snprintf(lora, sizeof lora, "adapter-%d", i);
        ixtest_store(ix,
                     &(struct ixtest_st){.pod = i % 2 ? "odd" : "even",
                                         .lora = lora,
                                         .h = &h,
                                         .n = 1,
                                         .tok = ixtest_T + i,
                                         .ntok = 16,
                                         .bs = 16},
                     NULL);
    }
    int all = 1;
    for (int i = 0; i < 300; i++) {
        char lora[16];

        snprintf(lora, sizeof lora, "adapter-%d", i);
        ixtest_match(ix, lora, ixtest_T + i, 16, NULL, 0);
        all &= ixtest_R.n == 1 && ixtest_depth(i % 2 ? "odd" : "even") == 1;
        ixtest_match(ix, lora, ixtest_T + i + 1, 16, NULL, 0);
        all &= ixtest_R.n == 0;
    }
    CHECK(all, "300 LoRA namespaces, each its own");
    CHECK_U64(ixtest_stats(ix).namespaces, 300, "300 namespaces counted");
    index_free(ix);
}

static void
test_seed(void)
{
    struct kv_index *ix = ixtest_new(BLOCKKEY_AIBRIX, 12345, 0);
    uint64_t h[] = {1, 2};
    struct index_query q = {.tokens = ixtest_T, .n_tokens = 32};
    uint64_t *keys = NULL;
    size_t n = 0;
    char err[128];

    ixtest_store(
        ix,
        &(struct ixtest_st){
            .pod = "a", .h = h, .n = 2, .tok = ixtest_T, .ntok = 32, .bs = 16},
        NULL);
    CHECK_U64(ixtest_key(ix, "a", 2), 9446283537318736241ull,
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
    struct kv_index *ix = ixtest_new(BLOCKKEY_LLMD, 0, 0);
    struct index_query q = {
        .model = {"test-model", 10}, .tokens = ixtest_T, .n_tokens = 32};
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

    ix = ixtest_new(BLOCKKEY_DYNAMO, 0, 0);
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
    struct kv_index *ix = ixtest_new(BLOCKKEY_LLMD, 0, 0);
    uint64_t h = 5;

    /* llm-d roots a LoRA's chain on the LoRA name instead of the model. */
    ixtest_store(ix,
                 &(struct ixtest_st){.pod = "a",
                                     .model = "base",
                                     .lora = "test-model",
                                     .h = &h,
                                     .n = 1,
                                     .tok = ixtest_T,
                                     .ntok = 16,
                                     .bs = 16},
                 NULL);
    CHECK_U64(ixtest_key(ix, "a", 5), 9511908804403680034ull,
              "llmd: root from the lora name");
    index_free(ix);
}

static void
test_rejects(void)
{
    struct kv_index *ix = ixtest_new(BLOCKKEY_AIBRIX, 0, 0);
    uint64_t h[] = {1, 2};
    enum index_reject why = INDEX_REJ_NONE;
    struct index_pod_info pi;

    CHECK(ixtest_store(ix,
                       &(struct ixtest_st){.pod = "a",
                                           .h = h,
                                           .n = 2,
                                           .tok = ixtest_T,
                                           .ntok = 31,
                                           .bs = 16},
                       &why) == -1 &&
              why == INDEX_REJ_MISALIGNED,
          "tokens != hashes*block_size rejected as misaligned");
    CHECK_U64(ixtest_stats(ix).namespaces, 0,
              "a rejected store teaches nothing");
    CHECK(index_pod_info(ix, 0, &pi) == 0 && pi.misaligned == 1,
          "pod counts misaligned stores");
    CHECK(ixtest_store(ix,
                       &(struct ixtest_st){.pod = "a",
                                           .h = h,
                                           .n = 1,
                                           .tok = ixtest_T,
                                           .ntok = 16,
                                           .bs = 16},
                       NULL) == 0,
          "block size 16 learned");
    CHECK(ixtest_store(ix,
                       &(struct ixtest_st){.pod = "a",
                                           .h = h + 1,
                                           .n = 1,
                                           .tok = ixtest_T,
                                           .ntok = 32,
                                           .bs = 32},
                       &why) == -1 &&
              why == INDEX_REJ_BLOCK_SIZE,
          "another block size rejected");
    CHECK(ixtest_store(ix,
                       &(struct ixtest_st){.pod = "a",
                                           .lora = "x",
                                           .h = h + 1,
                                           .n = 1,
                                           .tok = ixtest_T,
                                           .ntok = 32,
                                           .bs = 32},
                       NULL) == 0,
          "another namespace has its own block size");
    CHECK(ixtest_store(ix,
                       &(struct ixtest_st){.pod = "a",
                                           .h = h,
                                           .n = 1,
                                           .tok = ixtest_T,
                                           .ntok = 16,
                                           .bs = 0},
                       &why) == -1 &&
              why == INDEX_REJ_INVALID,
          "block size 0 is invalid");
    CHECK_U64(ixtest_stats(ix).rejected[INDEX_REJ_MISALIGNED], 1,
              "misaligned count");
    CHECK_U64(ixtest_stats(ix).rejected[INDEX_REJ_BLOCK_SIZE], 1,
              "block_size count");
    CHECK_U64(ixtest_stats(ix).rejected[INDEX_REJ_INVALID], 1, "invalid count");
    index_free(ix);
}

static void
test_media(void)
{
    struct kv_index *ix = ixtest_new(BLOCKKEY_AIBRIX, 0, 0);
    uint64_t h = 1;
    int cpu;

    ixtest_store(
        ix,
        &(struct ixtest_st){
            .pod = "a", .h = &h, .n = 1, .tok = ixtest_T, .ntok = 16, .bs = 16},
        NULL);
    ixtest_store(ix,
                 &(struct ixtest_st){.pod = "a",
                                     .h = &h,
                                     .n = 1,
                                     .tok = ixtest_T,
                                     .ntok = 16,
                                     .bs = 16,
                                     .medium = "CPU"},
                 NULL);
    cpu = index_medium_intern(ix, "CPU", 3);
    CHECK_U64(ixtest_stats(ix).entries, 1, "re-store is idempotent");
    ixtest_match(ix, NULL, ixtest_T, 16, NULL, 0);
    CHECK_U64(ixtest_R.m[0].media, 1u | 1u << cpu, "re-store adds the medium");
    ixtest_removed(ix, "a", &h, 1, "CPU");
    ixtest_match(ix, NULL, ixtest_T, 16, NULL, 0);
    CHECK(ixtest_R.n == 1 && ixtest_R.m[0].media == 1,
          "removal of CPU keeps GPU");
    ixtest_removed(ix, "a", &h, 1, "DISK");
    CHECK_U64(ixtest_stats(ix).entries, 1, "removal of a medium never stored");
    ixtest_store(ix,
                 &(struct ixtest_st){.pod = "a",
                                     .h = &h,
                                     .n = 1,
                                     .tok = ixtest_T,
                                     .ntok = 16,
                                     .bs = 16,
                                     .medium = "CPU"},
                 NULL);
    ixtest_removed(ix, "a", &h, 1, NULL);
    CHECK_U64(ixtest_stats(ix).entries, 0, "null medium removes all media");
    CHECK_U64(ixtest_stats(ix).keys, 0, "and frees the key");
    index_free(ix);
}

static void
test_clear_restart_gap(void)
{
    struct kv_index *ix = ixtest_new(BLOCKKEY_AIBRIX, 0, 0);
    uint64_t ha[] = {1, 2}, hb[] = {3, 4};
    struct index_pod_ref ref = {{"b", 1}, 0, 0};

    ixtest_store(
        ix,
        &(struct ixtest_st){
            .pod = "a", .h = ha, .n = 2, .tok = ixtest_T, .ntok = 32, .bs = 16},
        NULL);
    ixtest_store(
        ix,
        &(struct ixtest_st){
            .pod = "b", .h = hb, .n = 2, .tok = ixtest_T, .ntok = 32, .bs = 16},
        NULL);
    ixtest_record(ix, "a", KV_GAP);
    ixtest_match(ix, NULL, ixtest_T, 32, NULL, 0);
    CHECK(ixtest_match_of("a") && ixtest_match_of("a")->degraded,
          "D8: a gap is not silently ignored: a is degraded in answers");
    CHECK(ixtest_match_of("b") && !ixtest_match_of("b")->degraded, "b healthy");
    CHECK_U64(ixtest_depth("a"), 2, "gap keeps entries");
    ixtest_record(ix, "a", KV_ALL_BLOCKS_CLEARED);
    ixtest_match(ix, NULL, ixtest_T, 32, NULL, 0);
    CHECK(ixtest_R.n == 1 && ixtest_depth("b") == 2,
          "AllBlocksCleared: a's entries go");
    CHECK_U64(index_pod_count(ix), 2, "a stays known");
    ixtest_record(ix, "a", KV_GAP);
    ixtest_record(ix, "a", KV_RESTART);
    ixtest_store(
        ix,
        &(struct ixtest_st){
            .pod = "a", .h = ha, .n = 2, .tok = ixtest_T, .ntok = 32, .bs = 16},
        NULL);
    ixtest_match(ix, NULL, ixtest_T, 32, NULL, 0);
    CHECK(ixtest_match_of("a") && !ixtest_match_of("a")->degraded,
          "restart clears degraded");
    /* An engine snapshot replaces the pod's state as a whole. */
    ixtest_record(ix, "a", KV_GAP);
    ixtest_record(ix, "a", KV_SNAPSHOT_BEGIN);
    ixtest_match(ix, NULL, ixtest_T, 32, NULL, 0);
    CHECK(ixtest_match_of("a") == NULL && ixtest_depth("b") == 2,
          "snapshot_begin drops the pod's entries");
    ixtest_store(
        ix,
        &(struct ixtest_st){
            .pod = "a", .h = ha, .n = 2, .tok = ixtest_T, .ntok = 32, .bs = 16},
        NULL);
    ixtest_match(ix, NULL, ixtest_T, 32, NULL, 0);
    CHECK(ixtest_match_of("a") && ixtest_match_of("a")->degraded,
          "inside a snapshot the pod is degraded (not whole yet)");
    ixtest_record(ix, "a", KV_SNAPSHOT_END);
    ixtest_match(ix, NULL, ixtest_T, 32, NULL, 0);
    CHECK(ixtest_match_of("a") && !ixtest_match_of("a")->degraded &&
              ixtest_depth("a") == 2,
          "snapshot_end: the pod is whole, its snapshot's entries stay");
    size_t pods = index_pod_count(ix);
    ixtest_record(ix, "new", KV_SNAPSHOT_BEGIN);
    ixtest_record(ix, "new", KV_SNAPSHOT_END);
    CHECK_U64(index_pod_count(ix), pods,
              "an unranked snapshot of a pod not held yet creates no pod");
    ixtest_record(ix, "b", KV_RESTART);
    CHECK_U64(ixtest_stats(ix).entries, 2, "restart clears the pod");
    CHECK_U64(index_clear_pod(ix, &(struct index_pod_ref){{"a", 1}, 0, 0}), 2,
              "index_clear_pod returns the count");
    CHECK_U64(index_clear_pod(ix, &ref), 0, "clearing an empty pod");
    CHECK_U64(ixtest_stats(ix).entries, 0, "all gone");
    CHECK_U64(ixtest_stats(ix).keys, 0, "all keys gone");
    index_free(ix);
}

static void
test_depth_semantics(void)
{
    struct kv_index *ix = ixtest_new(BLOCKKEY_AIBRIX, 0, 0);
    uint64_t ha[] = {1, 2}, hb[] = {1, 2, 3, 4}, hc[] = {1, 2, 3};

    ixtest_store(
        ix,
        &(struct ixtest_st){
            .pod = "a", .h = ha, .n = 2, .tok = ixtest_T, .ntok = 32, .bs = 16},
        NULL);
    ixtest_store(
        ix,
        &(struct ixtest_st){
            .pod = "b", .h = hb, .n = 4, .tok = ixtest_T, .ntok = 64, .bs = 16},
        NULL);
    ixtest_store(
        ix,
        &(struct ixtest_st){
            .pod = "c", .h = hc, .n = 3, .tok = ixtest_T, .ntok = 48, .bs = 16},
        NULL);
    ixtest_store(ix,
                 &(struct ixtest_st){.pod = "c0",
                                     .has_rank = 1,
                                     .rank = 1,
                                     .h = ha,
                                     .n = 2,
                                     .tok = ixtest_T,
                                     .ntok = 32,
                                     .bs = 16},
                 NULL);
    ixtest_store(ix,
                 &(struct ixtest_st){.pod = "c0",
                                     .has_rank = 1,
                                     .rank = 0,
                                     .h = ha,
                                     .n = 2,
                                     .tok = ixtest_T,
                                     .ntok = 32,
                                     .bs = 16},
                 NULL);
    ixtest_removed(ix, "c", hc, 1, NULL); /* c keeps blocks 1, 2 but not 0 */
    CHECK_U64(ixtest_match(ix, NULL, ixtest_T, 64, NULL, 0), 4,
              "c omitted: depth 0");
    CHECK(strcmp(ixtest_R.m[0].pod, "b") == 0 && ixtest_R.m[0].depth == 4,
          "b first, 4");
    CHECK(strcmp(ixtest_R.m[1].pod, "a") == 0 && ixtest_R.m[1].depth == 2,
          "equal depths by pod name");
    CHECK(strcmp(ixtest_R.m[2].pod, "c0") == 0 && ixtest_R.m[2].rank == 0 &&
              strcmp(ixtest_R.m[3].pod, "c0") == 0 && ixtest_R.m[3].rank == 1,
          "then by rank");
    CHECK_U64(ixtest_depth("c"), 0,
              "a pod's own run from block 0, not AIBrix's shared walk");
    CHECK_U64(ixtest_match(
                  ix, NULL, ixtest_T, 64,
                  (struct index_pod_ref[]){{{"a", 1}, 0, 0}, {{"c0", 2}, 1, 1}},
                  2),
              2, "candidate filter");
    CHECK(ixtest_depth("a") == 2 && ixtest_R.m[1].rank == 1,
          "filter by pod and rank");
    index_free(ix);
}

static void
test_bigram_pages(void)
{
    struct kv_index *ix = ixtest_new(BLOCKKEY_AIBRIX, 0, 0);
    uint32_t pairs[32];
    uint64_t h = 1;

    for (int i = 0; i < 16; i++) {
        pairs[2 * i] = (uint32_t)i;
        pairs[2 * i + 1] = (uint32_t)i + 1;
    }
    CHECK(ixtest_store(ix,
                       &(struct ixtest_st){.pod = "a",
                                           .h = &h,
                                           .n = 1,
                                           .tok = pairs,
                                           .ntok = 16,
                                           .bs = 16,
                                           .pairs = 1},
                       NULL) == 0,
          "bigram page stored");
    CHECK_U64(ixtest_key(ix, "a", 1), 13063670922251535405ull,
              "SGLang bigram pages key on the first token of each pair");
    index_free(ix);
}

static void
test_bookkeeping(void)
{
    struct kv_index *ix = ixtest_new(BLOCKKEY_AIBRIX, 0, 0);
    uint64_t h[] = {1, 2};
    struct index_pod_info pi;
    struct index_lookup_hit hits[4];
    struct index_stats s;
    struct kv_env env = ixtest_env("a", 1, 3, "m2", 41);
    struct kv_event ev;
    enum index_reject why;
    char name[8];

    ixtest_store(ix,
                 &(struct ixtest_st){.pod = "a",
                                     .h = h,
                                     .n = 1,
                                     .tok = ixtest_T,
                                     .ntok = 16,
                                     .bs = 16,
                                     .seq = 40},
                 NULL);
    ixtest_store(ix,
                 &(struct ixtest_st){.pod = "b",
                                     .lora = "x",
                                     .h = h,
                                     .n = 1,
                                     .tok = ixtest_T,
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
    ixtest_removed(ix, "a", h, 1, NULL);
    ixtest_record(ix, "a", KV_ALL_BLOCKS_CLEARED);
    ixtest_record(ix, "a", KV_RESTART);
    s = ixtest_stats(ix);
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
    CHECK(ixtest_store(ix,
                       &(struct ixtest_st){.pod = "a",
                                           .h = h,
                                           .n = 1,
                                           .tok = ixtest_T,
                                           .ntok = 16,
                                           .bs = (int64_t)1 << 33},
                       &why) == -1 &&
              why == INDEX_REJ_INVALID,
          "a block size beyond 32 bits is invalid");
    CHECK(ixtest_store(ix,
                       &(struct ixtest_st){.pod = "a",
                                           .h = h,
                                           .n = 2,
                                           .tok = ixtest_T,
                                           .ntok = 16,
                                           .bs = 8},
                       &why) == -1 &&
              why == INDEX_REJ_BLOCK_SIZE,
          "block size checked before alignment");
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "M%d", i);
        if (ixtest_store(ix,
                         &(struct ixtest_st){.pod = "a",
                                             .h = h,
                                             .n = 1,
                                             .tok = ixtest_T,
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

/* Many answers: the order is depth descending, then pod name, then rank,
 * whatever order the pods were first seen in. */
static void
test_many_answers(void)
{
    for (int distinct = 2; distinct <= 9; distinct += 7) {
        struct kv_index *ix = ixtest_new(BLOCKKEY_AIBRIX, 0, 0);
        uint64_t h[16];
        int ok = 1, n = 0;

        for (int i = 0; i < 16; i++)
            h[i] = (uint64_t)i + 1;
        for (int i = 0; i < 40; i++) {
            int k = (i * 17) % 40; /* first seen out of name order */
            char pod[16];
            int d = distinct == 2 ? (k % 3 ? 5 : 2) : 1 + k % 9;

            snprintf(pod, sizeof pod, "pod-%02d", k / 2);
            ixtest_store(ix,
                         &(struct ixtest_st){.pod = pod,
                                             .has_rank = 1,
                                             .rank = k % 2,
                                             .h = h,
                                             .n = (size_t)d,
                                             .tok = ixtest_T,
                                             .ntok = (size_t)d * 16,
                                             .bs = 16},
                         NULL);
        }
        ixtest_match(ix, NULL, ixtest_T, 16 * 16, NULL, 0);
        for (size_t i = 0; i < ixtest_R.n; i++) {
            int k = atoi(ixtest_R.m[i].pod + 4) * 2 + (int)ixtest_R.m[i].rank;
            int d = distinct == 2 ? (k % 3 ? 5 : 2) : 1 + k % 9;

            ok &= (int)ixtest_R.m[i].depth == d;
            if (i > 0) {
                const struct index_match *a = &ixtest_R.m[i - 1],
                                         *b = &ixtest_R.m[i];
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
        struct kv_index *ix = ixtest_new(BLOCKKEY_AIBRIX, 0, 0);
        uint64_t h[4] = {1, 2, 3, 4}, *keys = NULL;
        size_t n = 0;
        char err[64];
        struct index_query q = {.tokens = ixtest_T, .n_tokens = 4 * bs};

        ixtest_store(ix,
                     &(struct ixtest_st){.pod = "a",
                                         .h = h,
                                         .n = 4,
                                         .tok = ixtest_T,
                                         .ntok = 4 * bs,
                                         .bs = bs},
                     NULL);
        ok &= index_keys(ix, &q, &keys, &n, err, sizeof err) == 0 && n == 4;
        for (size_t i = 0; ok && i < 4; i++)
            ok &= keys[i] == ixtest_key(ix, "a", h[i]);
        free(keys);
        ixtest_match(ix, NULL, ixtest_T, 4 * bs, NULL, 0);
        ok &= ixtest_R.n == 1 && ixtest_R.m[0].depth == 4;
        index_free(ix);
    }
    CHECK(ok, "D1: query and event keys agree at block sizes 1, 4, 16, 64");
}

/* The keys of tok[0..n) as a query computes them. */
static int
query_keys(struct kv_index *ix, const uint32_t *tok, size_t n, uint64_t *out)
{
    struct index_query q = {.tokens = tok, .n_tokens = n};
    uint64_t *keys = NULL;
    size_t nk = 0;
    char err[64];
    int ok =
        index_keys(ix, &q, &keys, &nk, err, sizeof err) == 0 && nk == n / 16;

    for (size_t i = 0; ok && i < nk; i++)
        out[i] = keys[i];
    free(keys);
    return ok;
}

/*
 * A store whose first block is already stored (or repeated within the
 * event) under other tokens: that block keeps the key it has, and the
 * blocks after it chain on that key, not on the key its new tokens would
 * give.  index_apply computes an event's keys before it knows which blocks
 * are new, so this is where its guess must be thrown away.
 */
static void
test_restore_keeps_key(void)
{
    static const enum blockkey_scheme schemes[] = {
        BLOCKKEY_AIBRIX, BLOCKKEY_DYNAMO, BLOCKKEY_LLMD};
    int ok = 1, differ = 1;

    for (size_t k = 0; k < sizeof schemes / sizeof *schemes; k++) {
        struct kv_index *ix = ixtest_new(schemes[k], 0, 0);
        uint64_t h12[] = {1, 2}, h556[] = {5, 5, 6};
        uint64_t want[3], other[3];
        uint32_t tok[48];

        ixtest_store_root(ix, "a", NULL, NULL, 0, 1);
        ixtest_store(ix,
                     &(struct ixtest_st){.pod = "a",
                                         .h = h12,
                                         .n = 2,
                                         .tok = ixtest_T + 64,
                                         .ntok = 32,
                                         .bs = 16},
                     NULL);
        memcpy(tok, ixtest_T, 16 * sizeof *tok);
        memcpy(tok + 16, ixtest_T + 80, 16 * sizeof *tok);
        ok &= query_keys(ix, tok, 32, want) &&
              query_keys(ix, ixtest_T + 64, 32, other);
        ok &= ixtest_key(ix, "a", 1) == want[0] &&
              ixtest_key(ix, "a", 2) == want[1];
        differ &= want[1] != other[1];

        ixtest_store(ix,
                     &(struct ixtest_st){.pod = "b",
                                         .h = h556,
                                         .n = 3,
                                         .tok = ixtest_T + 200,
                                         .ntok = 48,
                                         .bs = 16},
                     NULL);
        memcpy(tok, ixtest_T + 200, 16 * sizeof *tok);
        memcpy(tok + 16, ixtest_T + 232, 16 * sizeof *tok);
        ok &= query_keys(ix, tok, 32, want) &&
              query_keys(ix, ixtest_T + 200, 48, other);
        ok &= ixtest_key(ix, "b", 5) == want[0] &&
              ixtest_key(ix, "b", 6) == want[1];
        differ &= want[1] != other[2];
        ixtest_match(ix, NULL, tok, 32, NULL, 0);
        ok &= ixtest_depth("b") == 2;
        index_free(ix);
    }
    CHECK(differ, "the test's two chains differ (aibrix, dynamo, llm-d)");
    CHECK(ok, "a block stored before keeps its key, and the next chain on "
              "it (aibrix, dynamo, llm-d)");
}

/* D9: a hash that arrived as a digest and the same hash as an integer are
 * one engine hash (the canonical value: last 8 bytes big-endian). */
static void
test_d9_digest(void)
{
    struct kv_index *ix = ixtest_new(BLOCKKEY_AIBRIX, 0, 0);
    static const uint8_t digest[32] = {[24] = 0x01, [31] = 0x02};
    uint64_t v = 0x0100000000000002ull;
    struct kv_env env = ixtest_env("a", 0, 0, NULL, 1);
    struct kv_event ev;
    struct kv_hash hs = {v, digest, 32};
    enum index_reject why;

    kv_event_init(&ev, KV_BLOCK_STORED);
    ev.present = KV_BIT(KV_F_BLOCK_HASHES) | KV_BIT(KV_F_TOKEN_IDS) |
                 KV_BIT(KV_F_BLOCK_SIZE) | KV_BIT(KV_F_PARENT_BLOCK_HASH);
    ev.isnull = KV_BIT(KV_F_PARENT_BLOCK_HASH);
    ev.hashes = &hs;
    ev.n_hashes = 1;
    ev.tokens = ixtest_T;
    ev.n_tokens = 16;
    ev.num[KV_F_BLOCK_SIZE] = 16;
    CHECK(index_apply(ix, &env, &ev, &why) == 0, "store by digest");
    ixtest_removed(ix, "a", &v, 1, NULL);
    CHECK(ixtest_stats(ix).entries == 0 &&
              ixtest_stats(ix).unknown_removed == 0,
          "D9: removal by the integer form of the digest");
    index_free(ix);
}

/* A gap or restart record without a dp_rank concerns every rank of the pod;
 * with a rank, only that rank. */
static void
test_unranked_records(void)
{
    struct kv_index *ix = ixtest_new(BLOCKKEY_AIBRIX, 0, 0);
    uint64_t h = 1;
    struct kv_env env = ixtest_env("a", 1, 1, NULL, 9);
    struct kv_event ev;
    enum index_reject why;

    for (int r = 0; r < 2; r++)
        ixtest_store(ix,
                     &(struct ixtest_st){.pod = "a",
                                         .has_rank = 1,
                                         .rank = r,
                                         .h = &h,
                                         .n = 1,
                                         .tok = ixtest_T,
                                         .ntok = 16,
                                         .bs = 16},
                     NULL);
    ixtest_store(
        ix,
        &(struct ixtest_st){
            .pod = "b", .h = &h, .n = 1, .tok = ixtest_T, .ntok = 16, .bs = 16},
        NULL);
    kv_event_init(&ev, KV_GAP);
    index_apply(ix, &env, &ev, &why);
    ixtest_match(ix, NULL, ixtest_T, 16, NULL, 0);
    CHECK(ixtest_R.n == 3 && !ixtest_R.m[0].degraded &&
              ixtest_R.m[1].degraded && !ixtest_R.m[2].degraded,
          "gap with rank 1: only (a, 1) degraded");
    ixtest_record(ix, "a", KV_GAP); /* dp_rank null */
    ixtest_match(ix, NULL, ixtest_T, 16, NULL, 0);
    CHECK(ixtest_R.n == 3 && ixtest_R.m[0].degraded && ixtest_R.m[1].degraded &&
              !ixtest_R.m[2].degraded,
          "gap without rank: every rank of a degraded, b not");
    CHECK_U64(index_pod_count(ix), 3, "no (a, null) pod made up");
    ixtest_record(ix, "a", KV_RESTART);
    ixtest_match(ix, NULL, ixtest_T, 16, NULL, 0);
    CHECK(ixtest_R.n == 1 && strcmp(ixtest_R.m[0].pod, "b") == 0,
          "restart without rank: every rank of a cleared");
    ixtest_record(ix, "c", KV_RESTART);
    CHECK_U64(index_pod_count(ix), 4, "an unknown pod is learned as (c, null)");
    index_free(ix);
}

static void
test_ties(void)
{
    struct kv_index *ix = ixtest_new(BLOCKKEY_AIBRIX, 0, 0);
    char name[16];
    int order_ok = 1;

    /* c and b hold the prefix only; a holds one more block elsewhere. */
    ixtest_store_root(ix, "a", NULL, NULL, 0, 1);
    ixtest_store_root(ix, "a", NULL, NULL, 1000, 2);
    ixtest_store_root(ix, "c", NULL, NULL, 0, 3);
    ixtest_store_root(ix, "b", NULL, NULL, 0, 4);
    CHECK_U64(ixtest_match(ix, NULL, ixtest_T, 16, NULL, 0), 3,
              "three pods tie");
    CHECK(ixtest_R.n == 3 && !strcmp(ixtest_R.m[0].pod, "b") &&
              !strcmp(ixtest_R.m[1].pod, "c") &&
              !strcmp(ixtest_R.m[2].pod, "a"),
          "ties: fewest blocks first, then name (b, c, a)");
    /* Twenty tied pods take match_order's walk in name order; p00..p09
     * hold one more block each, so p10..p19 come first. */
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof name, "p%02d", i);
        ixtest_store_root(ix, name, NULL, NULL, 0, 100 + (uint64_t)i);
        if (i < 10)
            ixtest_store_root(ix, name, NULL, NULL, 2000, 200 + (uint64_t)i);
    }
    CHECK_U64(ixtest_match(ix, NULL, ixtest_T, 16, NULL, 0), 23, "23 pods tie");
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
        if (strcmp(ixtest_R.m[i].pod, want) != 0)
            order_ok = 0;
    }
    CHECK(order_ok, "many ties: b, c, p10..p19 (one block), then a, p00..p09");
    index_free(ix);
}

static void
test_unknown_namespace(void)
{
    struct kv_index *ix = ixtest_new(BLOCKKEY_AIBRIX, 0, 0);
    struct index_query q = {.tokens = ixtest_T, .n_tokens = 16};
    struct index_match_result r = {0};
    char err[512], name[32];
    size_t n;

    ixtest_store_root(ix, "a", "llama", NULL, 0, 1);
    ixtest_store_root(ix, "a", "llama", "sql", 0, 2);
    ixtest_store_root(ix, "a", "qwen", NULL, 0, 3);
    ixtest_store_root(ix, "a", "mistral", "l1", 0, 4);
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
        ixtest_store_root(ix, "a", longm, NULL, 0, 9);
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
        ixtest_store_root(ix, "a", name, NULL, 0, 10 + (uint64_t)i);
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
    struct kv_index *ix = ixtest_new(BLOCKKEY_AIBRIX, 0, 0);
    struct index_pod_info pi;
    uint64_t h = 50;
    int alarms = 0;
    struct ixtest_st orphan = {.pod = "a",
                               .has_parent = 1,
                               .parent = 999,
                               .h = &h,
                               .n = 1,
                               .tok = ixtest_T,
                               .ntok = 16,
                               .bs = 16};

    for (int i = 0; i < 10; i++) {
        ixtest_store(ix, &orphan, NULL);
        alarms += index_orphan_alarm(ix, &pi);
    }
    CHECK(alarms == 0 && index_pod_info(ix, 0, &pi) == 0 && !pi.degraded &&
              pi.orphans == 10,
          "no threshold: orphans are counted, the pod stays healthy");
    index_set_degraded_orphans(ix, 3);
    ixtest_record(ix, "a", KV_RESTART);
    for (int i = 0; i < 3; i++) {
        ixtest_store(ix, &orphan, NULL);
        alarms += index_orphan_alarm(ix, &pi);
    }
    CHECK(alarms == 0 && index_pod_info(ix, 0, &pi) == 0 && !pi.degraded &&
              pi.orphan_run == 3,
          "3 orphans with --degraded-orphans 3: not yet");
    ixtest_store(ix, &orphan, NULL);
    CHECK(index_orphan_alarm(ix, &pi) == 1 && !strcmp(pi.pod, "a") &&
              pi.degraded && pi.orphan_run == 4 && pi.orphans == 14,
          "the 4th degrades the pod and raises the alarm");
    ixtest_store(ix, &orphan, NULL);
    CHECK(index_orphan_alarm(ix, &pi) == 0, "the alarm is raised once");
    ixtest_store_root(ix, "a", NULL, NULL, 0, 1);
    CHECK(index_orphan_alarm(ix, &pi) == 0, "a good store clears the alarm");
    CHECK(ixtest_match(ix, NULL, ixtest_T, 16, NULL, 0) == 1 &&
              ixtest_R.m[0].degraded,
          "matches show the pod degraded");
    ixtest_record(ix, "a", KV_ALL_BLOCKS_CLEARED);
    CHECK(index_pod_info(ix, 0, &pi) == 0 && !pi.degraded && pi.orphan_run == 0,
          "AllBlocksCleared resets degraded and the run");
    for (int i = 0; i < 4; i++)
        ixtest_store(ix, &orphan, NULL);
    CHECK(index_orphan_alarm(ix, &pi) == 1, "a new run raises it again");
    ixtest_record(ix, "a", KV_RESTART);
    CHECK(index_pod_info(ix, 0, &pi) == 0 && !pi.degraded && pi.orphan_run == 0,
          "a restart resets degraded and the run");
    index_free(ix);
}

static void
test_event_clock(void)
{
    struct kv_index *ix = ixtest_new(BLOCKKEY_AIBRIX, 0, 0);
    struct index_pod_info pi;
    struct index_pod_info restored = {.pod = "b"};
    char err[128];

    index_set_clock(ix, 12.5);
    ixtest_store_root(ix, "a", NULL, NULL, 0, 1);
    CHECK(index_pod_info(ix, 0, &pi) == 0 && pi.has_event_at &&
              pi.event_at == 12.5,
          "a pod's last event is stamped with the clock");
    index_set_clock(ix, 20.0);
    ixtest_record(ix, "a", KV_GAP);
    CHECK(index_pod_info(ix, 0, &pi) == 0 && pi.event_at == 20.0,
          "records count as events");
    CHECK(index_restore_pod(ix, &restored, err, sizeof err) == 0 &&
              index_pod_info(ix, 1, &pi) == 0 && !pi.has_event_at,
          "a restored pod has seen no event yet");
    index_free(ix);
}

int
main(void)
{
    ixtest_init();
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
    test_restore_keeps_key();
    test_d9_digest();
    test_unranked_records();
    test_many_answers();
    test_ties();
    test_unknown_namespace();
    test_orphan_degraded();
    test_event_clock();
    ixtest_fini();
    return unit_done();
}

/*
 * test_index_model.c - the prefix index in randomized runs against a
 * brute-force model written here: stores, removals, clears and matches,
 * with pods on both sides of the holder bitmap's last bit.
 */
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "ixtest.h"
#include "unit.h"

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
    return unit_rand(&rng);
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
    struct kv_index *ix = ixtest_new(scheme, 7, max_blocks);
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
        ixtest_record(ix, pad, KV_GAP);
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
            rc = ixtest_store(
                ix,
                &(struct ixtest_st){.pod = names[p],
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
            ixtest_removed(ix, names[p], h, 3,
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
            ixtest_record(ix, names[p], KV_ALL_BLOCKS_CLEARED);
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
            uint64_t gone = 0, ev = ixtest_stats(ix).max_blocks_dropped;

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
        if (ixtest_stats(ix).entries != M_n)
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
    ixtest_init();
    test_random(8, 6000, 8, 0, 0, BLOCKKEY_DYNAMO);
    test_random(64, 30000, 200, 0, 0, BLOCKKEY_AIBRIX);
    test_random(16, 10000, 50, 64, 0, BLOCKKEY_LLMD);
    test_random(64, 30000, 200, 0, 1200, BLOCKKEY_DYNAMO);
    /* Pods 60..64: both sides of the bitmap's last bit. */
    test_random(16, 10000, 50, 60, 0, BLOCKKEY_DYNAMO);
    test_random(32, 10000, 200, 61, 600, BLOCKKEY_AIBRIX);
    ixtest_fini();
    return unit_done();
}

/*
 * test_blockkey.c - every test vector of docs/kvindex.md#block-key-test-vectors
 * for the three block-key schemes and their primitives, and the chained
 * (lane-parallel) path against a plain reference built on libxxhash over
 * random token arrays.
 */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "blockkey.h"
#include "unit.h"

struct vec {
    const char *name;
    enum blockkey_scheme scheme;
    uint64_t seed;
    const char *hash_seed; /* llmd */
    const char *model;     /* llmd */
    uint32_t block_size;
    uint32_t first, count; /* tokens first..first+count-1, unless list */
    const uint32_t *list;
    size_t n_keys;
    uint64_t keys[4];
};

static const uint32_t granite_tokens[] = {8197, 438,   322, 18926,
                                          432,  45600, 49};

static const struct vec vecs[] = {
    {"aibrix S=0 B=16 tokens 0..31",
     BLOCKKEY_AIBRIX,
     0,
     NULL,
     NULL,
     16,
     0,
     32,
     NULL,
     2,
     {13063670922251535405ull, 15794143472128267642ull}},
    {"aibrix S=12345 B=16 tokens 0..31",
     BLOCKKEY_AIBRIX,
     12345,
     NULL,
     NULL,
     16,
     0,
     32,
     NULL,
     2,
     {826599923864855889ull, 9446283537318736241ull}},
    {"aibrix S=0 B=16 tokens 1000..1031",
     BLOCKKEY_AIBRIX,
     0,
     NULL,
     NULL,
     16,
     1000,
     32,
     NULL,
     2,
     {1449979319522525991ull, 1153750677558858376ull}},
    {"aibrix S=0 B=4 tokens 0..31 (AIBrix default chunk)",
     BLOCKKEY_AIBRIX,
     0,
     NULL,
     NULL,
     4,
     0,
     16,
     NULL,
     4,
     {9939166772727399345ull, 15140103497445870513ull, 8602470900083200999ull,
      16397820962489627673ull}},
    {"dynamo B=16 tokens 0..31",
     BLOCKKEY_DYNAMO,
     0,
     NULL,
     NULL,
     16,
     0,
     32,
     NULL,
     2,
     {15310707395893867146ull, 13769157705258532664ull}},
    {"dynamo B=64 tokens 0..63 (local)",
     BLOCKKEY_DYNAMO,
     0,
     NULL,
     NULL,
     64,
     0,
     64,
     NULL,
     1,
     {3480597578098033343ull}},
    {"llmd seed \"\" granite B=4",
     BLOCKKEY_LLMD,
     0,
     "",
     "ibm-granite/granite-3.1-8b-instruct",
     4,
     0,
     7,
     granite_tokens,
     1,
     {1334984470577408192ull}},
    {"llmd seed \"\" test-model B=16 tokens 0..31",
     BLOCKKEY_LLMD,
     0,
     "",
     "test-model",
     16,
     0,
     32,
     NULL,
     2,
     {9511908804403680034ull, 10377907571738399248ull}},
    {"llmd seed \"42\" test-model B=16 tokens 0..31",
     BLOCKKEY_LLMD,
     0,
     "42",
     "test-model",
     16,
     0,
     32,
     NULL,
     2,
     {5773668644506991617ull, 15857176180198655025ull}},
};

static void
test_vectors(void)
{
    for (size_t v = 0; v < sizeof vecs / sizeof vecs[0]; v++) {
        const struct vec *t = &vecs[v];
        uint32_t tok[64];
        uint64_t out[16];
        struct blockkey_cfg c = {t->scheme, t->seed, 0};
        size_t n;
        char what[160];

        for (uint32_t i = 0; i < t->count; i++)
            tok[i] = t->list ? t->list[i] : t->first + i;
        if (t->scheme == BLOCKKEY_LLMD)
            c.llmd_root = blockkey_llmd_root(t->hash_seed, strlen(t->hash_seed),
                                             t->model, strlen(t->model));
        n = blockkey_chain(&c, NULL, tok, t->count, t->block_size, out);
        snprintf(what, sizeof what, "%s: number of keys", t->name);
        CHECK_U64(n, t->n_keys, what);
        for (size_t i = 0; i < t->n_keys && i < n; i++) {
            snprintf(what, sizeof what, "%s: key %zu", t->name, i);
            CHECK_U64(out[i], t->keys[i], what);
        }
    }
}

static void
test_primitives(void)
{
    uint32_t tok[32];

    CHECK_U64(blockkey_xxh64("", 0, 0), 17241709254077376921ull,
              "XXH64 seed 0 of \"\"");
    CHECK_U64(blockkey_dynamo_bytes("test data", 9), 13226331709069118873ull,
              "dynamo: XXH3 seed 1337 of \"test data\"");
    CHECK_U64(blockkey_fnv1a64("", 0), 14695981039346656037ull,
              "FNV-1a of \"\" is the offset basis");
    CHECK_U64(blockkey_fnv1a64("42", 2), 571532774284038691ull,
              "llmd: initHash of seed \"42\"");
    CHECK_U64(blockkey_llmd_root("", 0, "test-model", 10),
              17515353698173365712ull, "llmd: root of test-model, seed \"\"");
    for (uint32_t i = 0; i < 32; i++)
        tok[i] = i;
    CHECK_U64(blockkey_dynamo_bytes(tok, 64), 15310707395893867146ull,
              "dynamo local tokens 0..15");
    CHECK_U64(blockkey_dynamo_bytes(tok + 16, 64), 15292316782987903195ull,
              "dynamo local tokens 16..31");
}

/* AIBrix's event path hashes block 1 on the event's parent
 * (docs/kvindex.md#block-key-test-vectors).  Our chain must give the query's
 * key, not AIBrix's. */
static void
test_aibrix_d3(void)
{
    struct blockkey_cfg c = {BLOCKKEY_AIBRIX, 0, 0};
    uint32_t tok[32];
    uint64_t k1;

    for (uint32_t i = 0; i < 32; i++)
        tok[i] = i;
    k1 = blockkey_next(&c, NULL, tok + 16, 16);
    CHECK_U64(k1, 13520139738120667654ull,
              "D3: block 1 on the root gives AIBrix's wrong stored key");
    uint64_t k0 = blockkey_next(&c, NULL, tok, 16);
    CHECK(blockkey_next(&c, &k0, tok + 16, 16) != k1,
          "D3: chained block 1 differs from AIBrix's stored key");
}

static void
test_long_blocks(void)
{
    /* Blocks longer than the stack chunk take the streaming path; both
     * paths must agree with a hash of the whole byte string. */
    enum { B = 600 };
    uint32_t *tok = malloc(B * sizeof *tok);
    uint8_t *bytes = malloc(8 + 4 * B);
    struct blockkey_cfg c = {BLOCKKEY_AIBRIX, 7, 0};

    if (!CHECK(tok && bytes, "alloc")) {
        free(tok);
        free(bytes);
        return;
    }
    for (uint32_t i = 0; i < B; i++)
        tok[i] = i * 2654435761u;
    for (int i = 0; i < 8; i++)
        bytes[i] = (uint8_t)((uint64_t)7 >> (8 * i));
    for (uint32_t i = 0; i < B; i++) {
        bytes[8 + 4 * i] = (uint8_t)(tok[i] >> 24);
        bytes[9 + 4 * i] = (uint8_t)(tok[i] >> 16);
        bytes[10 + 4 * i] = (uint8_t)(tok[i] >> 8);
        bytes[11 + 4 * i] = (uint8_t)tok[i];
    }
    CHECK_U64(blockkey_next(&c, NULL, tok, B),
              blockkey_xxh64(bytes, 8 + 4 * B, 7),
              "aibrix: a 600-token block hashes as one byte string");
    free(tok);
    free(bytes);
}

/* A plain CBOR writer, independent of blockkey.c's streaming one. */
static size_t
cbor_head(uint8_t *b, uint8_t major, uint64_t v)
{
    int n = v < 24             ? 0
            : v <= 0xff        ? 1
            : v <= 0xffff      ? 2
            : v <= 0xffffffffu ? 4
                               : 8;

    b[0] = (uint8_t)(major << 5 | (n == 0   ? v
                                   : n == 1 ? 24
                                   : n == 2 ? 25
                                   : n == 4 ? 26
                                            : 27));
    for (int i = 0; i < n; i++)
        b[1 + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    return (size_t)(1 + n);
}

/* Every CBOR width of a token (and of the parent) against the plain writer:
 * the vectors alone have no token above 65535. */
static void
test_llmd_widths(void)
{
    static const uint32_t tok[8] = {0,   23,    24,    255,
                                    256, 65535, 65536, 4294967295u};
    static const uint64_t parents[3] = {5, 70000, 0xfedcba9876543210ull};
    int ok = 1;

    for (int p = 0; p < 3; p++) {
        uint8_t buf[128];
        size_t n = 0;
        struct blockkey_cfg c = {BLOCKKEY_LLMD, 0, 0};

        n += cbor_head(buf + n, 4, 3);
        n += cbor_head(buf + n, 0, parents[p]);
        n += cbor_head(buf + n, 4, 8);
        for (int i = 0; i < 8; i++)
            n += cbor_head(buf + n, 0, tok[i]);
        buf[n++] = 0xf6;
        ok &=
            blockkey_next(&c, &parents[p], tok, 8) == blockkey_fnv1a64(buf, n);
    }
    CHECK(ok, "llmd: every CBOR width of tokens and parent");
}

/* ---- the chain against a plain reference ---------------------------------
 * The reference builds each block's byte string exactly as
 * docs/kvindex.md#block-key-test-vectors states it and hashes it with
 * libxxhash (linked, not blockkey.c's inlined copy) or a plain FNV-1a. */

static uint64_t
splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static size_t
put_le(uint8_t *b, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    return (size_t)bytes;
}

static uint64_t
fnv_plain(const uint8_t *b, size_t n)
{
    uint64_t h = 14695981039346656037ull;

    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* One block's key from its byte string; buf has room for 16 + 5 * bs. */
static uint64_t
ref_block(const struct blockkey_cfg *c, const uint64_t *parent,
          const uint32_t *t, uint32_t bs, uint8_t *buf)
{
    size_t n = 0;
    uint64_t local;

    switch (c->scheme) {
    case BLOCKKEY_AIBRIX:
        n += put_le(buf, parent ? *parent : c->seed, 8);
        for (uint32_t i = 0; i < bs; i++)
            n += put_le(buf + n, __builtin_bswap32(t[i]), 4);
        return XXH64(buf, n, c->seed);
    case BLOCKKEY_DYNAMO:
        for (uint32_t i = 0; i < bs; i++)
            n += put_le(buf + n, t[i], 4);
        local = XXH3_64bits_withSeed(buf, n, 1337);
        if (parent == NULL)
            return local;
        put_le(buf, *parent, 8);
        put_le(buf + 8, local, 8);
        return XXH3_64bits_withSeed(buf, 16, 1337);
    case BLOCKKEY_LLMD:
        n += cbor_head(buf + n, 4, 3);
        n += cbor_head(buf + n, 0, parent ? *parent : c->llmd_root);
        n += cbor_head(buf + n, 4, bs);
        for (uint32_t i = 0; i < bs; i++)
            n += cbor_head(buf + n, 0, t[i]);
        buf[n++] = 0xf6;
        return fnv_plain(buf, n);
    }
    return 0;
}

/* A random token: every CBOR width and byte pattern turns up. */
static uint32_t
random_token(uint64_t *s)
{
    uint64_t r = splitmix(s);

    switch (r & 3) {
    case 0:
        return (uint32_t)(r >> 8) % 24;
    case 1:
        return (uint32_t)(r >> 8) % 300;
    case 2:
        return (uint32_t)(r >> 8) % 200000;
    }
    return (uint32_t)(r >> 32);
}

/* Returns how many of the keys differ from the reference, for one random
 * case of scheme sc: block size, block count, seed, parent and tokens. */
static int
chain_case(enum blockkey_scheme sc, uint64_t *rng, uint32_t bs, size_t nb)
{
    uint32_t *t = malloc(bs * nb * sizeof *t);
    uint64_t *got = malloc(nb * sizeof *got), *one = malloc(nb * sizeof *one);
    uint8_t *buf = malloc(16 + 5 * (size_t)bs);
    struct blockkey_cfg c = {sc, splitmix(rng), splitmix(rng)};
    uint64_t pv = splitmix(rng), want;
    const uint64_t *parent = (pv & 1) ? &pv : NULL, *p;
    struct blockkey_step st;
    int bad = 0;

    if (t == NULL || got == NULL || one == NULL || buf == NULL) {
        bad = 1;
        goto out;
    }
    if (pv & 2)
        c.seed = 0;
    for (size_t i = 0; i < bs * nb; i++)
        t[i] = random_token(rng);
    /* One token more than the blocks hold: a partial tail has no key. */
    if (blockkey_chain(&c, parent, t, bs * nb + (bs > 1), bs, got) != nb)
        bad++;
    blockkey_step_init(&st, &c, parent, t, bs * nb + (bs > 1), bs);
    bad += st.left != nb;
    p = parent;
    for (size_t i = 0; i < nb; i++) {
        want = ref_block(&c, p, t + i * bs, bs, buf);
        one[i] = blockkey_next(&c, p, t + i * bs, bs);
        bad += got[i] != want;
        bad += one[i] != want;
        bad += st.left == 0 || blockkey_step_next(&st) != want;
        p = &one[i];
    }
    bad += st.left != 0;
out:
    free(t);
    free(got);
    free(one);
    free(buf);
    return bad;
}

/* Every block size from 1 to 70 (every XXH64 tail shape, both sides of the
 * smallest block the lanes take) and a few long ones, with and without a
 * parent, in each scheme. */
static void
test_chain_random(void)
{
    static const enum blockkey_scheme schemes[] = {
        BLOCKKEY_AIBRIX, BLOCKKEY_DYNAMO, BLOCKKEY_LLMD};
    static const uint32_t long_bs[] = {128, 255, 256, 257, 600};

    for (size_t k = 0; k < 3; k++) {
        uint64_t rng = 42 + k;
        int bad = 0, cases = 0;
        char what[120];

        for (uint32_t bs = 1; bs <= 70; bs++)
            for (int r = 0; r < 4; r++, cases++)
                bad +=
                    chain_case(schemes[k], &rng, bs, 1 + splitmix(&rng) % 12);
        for (size_t i = 0; i < sizeof long_bs / sizeof long_bs[0]; i++)
            for (int r = 0; r < 2; r++, cases++)
                bad += chain_case(schemes[k], &rng, long_bs[i], 3);
        snprintf(what, sizeof what,
                 "%s: chain, next and the stepper agree with the plain "
                 "reference (%d random cases)",
                 blockkey_scheme_name(schemes[k]), cases);
        if (!CHECK(bad == 0, what))
            printf("#   %d keys differ\n", bad);
    }
}

static void
test_parse(void)
{
    enum blockkey_scheme s;

    CHECK(blockkey_scheme_parse("dynamo", &s) == 0 && s == BLOCKKEY_DYNAMO,
          "parse dynamo");
    CHECK(blockkey_scheme_parse("llmd", &s) == 0 && s == BLOCKKEY_LLMD,
          "parse llmd");
    CHECK(blockkey_scheme_parse("aibrix", &s) == 0 && s == BLOCKKEY_AIBRIX,
          "parse aibrix");
    CHECK(blockkey_scheme_parse("sha256", &s) == -1, "parse rejects unknown");
    CHECK_STR(blockkey_scheme_name(BLOCKKEY_LLMD), "llmd", "scheme name");
}

int
main(void)
{
    test_vectors();
    test_primitives();
    test_aibrix_d3();
    test_long_blocks();
    test_llmd_widths();
    test_chain_random();
    test_parse();
    return unit_done();
}

/*
 * blockkey.c - the chained block-key schemes (docs/kvindex.md): AIBrix's
 * XXH64 chain, Dynamo's XXH3 local hash plus chain, and llm-d's FNV-1a over
 * canonical CBOR.  The CBOR items llm-d hashes are few (an array header, an
 * unsigned int, null, a text string), so they are fed straight into the
 * FNV-1a state without building a buffer.
 */
#define XXH_STATIC_LINKING_ONLY
#define XXH_INLINE_ALL
#include "blockkey.h"

#include <assert.h>
#include <string.h>
#include <xxhash.h>

#define DYNAMO_SEED 1337u
#define FNV_OFFSET 14695981039346656037ull
#define FNV_PRIME 1099511628211ull

/* Tokens hashed per step when a block does not fit the stack. */
#define CHUNK_TOKENS 256

int
blockkey_scheme_parse(const char *s, enum blockkey_scheme *out)
{
    if (strcmp(s, "aibrix") == 0)
        *out = BLOCKKEY_AIBRIX;
    else if (strcmp(s, "dynamo") == 0)
        *out = BLOCKKEY_DYNAMO;
    else if (strcmp(s, "llmd") == 0)
        *out = BLOCKKEY_LLMD;
    else
        return -1;
    return 0;
}

const char *
blockkey_scheme_name(enum blockkey_scheme s)
{
    switch (s) {
    case BLOCKKEY_AIBRIX:
        return "aibrix";
    case BLOCKKEY_DYNAMO:
        return "dynamo";
    case BLOCKKEY_LLMD:
        return "llmd";
    }
    return "?";
}

uint64_t
blockkey_fnv1a64(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = FNV_OFFSET;

    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= FNV_PRIME;
    }
    return h;
}

uint64_t
blockkey_dynamo_bytes(const void *p, size_t n)
{
    return XXH3_64bits_withSeed(p, n, DYNAMO_SEED);
}

uint64_t
blockkey_xxh64(const void *p, size_t n, uint64_t seed)
{
    return XXH64(p, n, seed);
}

static void
put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void
put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* XXH64(seed, LE64(parent) || BE32 tokens) for a block too short for
 * blockkey_aibrix_lanes, through a buffer. */
static uint64_t
aibrix_block(uint64_t seed, uint64_t parent, const uint32_t *t, size_t n)
{
    uint8_t buf[8 + 4 * BLOCKKEY_LANES_MIN];

    assert(n < BLOCKKEY_LANES_MIN);
    put_le64(buf, parent);
    for (size_t i = 0; i < n; i++)
        put_be32(buf + 8 + 4 * i, t[i]);
    return XXH64(buf, 8 + 4 * n, seed);
}

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
static void
put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
#endif

/* XXH3(1337, LE32 tokens): on a little-endian host the array is the input. */
static uint64_t
dynamo_local(const uint32_t *t, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return XXH3_64bits_withSeed(t, 4 * n, DYNAMO_SEED);
#else
    uint8_t buf[4 * CHUNK_TOKENS];
    XXH3_state_t st;

    XXH3_64bits_reset_withSeed(&st, DYNAMO_SEED);
    for (size_t off = 0; off < n; off += CHUNK_TOKENS) {
        size_t m = n - off < CHUNK_TOKENS ? n - off : CHUNK_TOKENS;
        for (size_t i = 0; i < m; i++)
            put_le32(buf + 4 * i, t[off + i]);
        XXH3_64bits_update(&st, buf, 4 * m);
    }
    return XXH3_64bits_digest(&st);
#endif
}

static uint64_t
dynamo_block(const uint64_t *parent, const uint32_t *t, size_t n)
{
    uint64_t local = dynamo_local(t, n);
    uint8_t buf[16];

    if (parent == NULL)
        return local;
    put_le64(buf, *parent);
    put_le64(buf + 8, local);
    return XXH3_64bits_withSeed(buf, sizeof buf, DYNAMO_SEED);
}

/* FNV-1a over bytes, continuing from h. */
static uint64_t
fnv_bytes(uint64_t h, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= FNV_PRIME;
    }
    return h;
}

/* A CBOR head (major type, argument) in its shortest form, as canonical CBOR
 * requires. */
static uint64_t
fnv_cbor_head(uint64_t h, uint8_t major, uint64_t v)
{
    uint8_t b[9];
    size_t n;

    major = (uint8_t)(major << 5);
    if (v < 24) {
        b[0] = (uint8_t)(major | v);
        n = 1;
    } else if (v <= 0xff) {
        b[0] = major | 24;
        b[1] = (uint8_t)v;
        n = 2;
    } else if (v <= 0xffff) {
        b[0] = major | 25;
        b[1] = (uint8_t)(v >> 8);
        b[2] = (uint8_t)v;
        n = 3;
    } else if (v <= 0xffffffffu) {
        b[0] = major | 26;
        for (int i = 0; i < 4; i++)
            b[1 + i] = (uint8_t)(v >> (24 - 8 * i));
        n = 5;
    } else {
        b[0] = major | 27;
        for (int i = 0; i < 8; i++)
            b[1 + i] = (uint8_t)(v >> (56 - 8 * i));
        n = 9;
    }
    return fnv_bytes(h, b, n);
}

enum { CBOR_UINT = 0, CBOR_TEXT = 3, CBOR_ARRAY = 4 };
static const uint8_t cbor_null = 0xf6;

static inline uint64_t
fnv_byte(uint64_t h, uint32_t b)
{
    return (h ^ (b & 0xff)) * FNV_PRIME;
}

/* A token as a CBOR unsigned int, straight into FNV: the hot loop of llmd,
 * so without fnv_cbor_head's buffer. */
static inline uint64_t
fnv_cbor_u32(uint64_t h, uint32_t v)
{
    if (v < 24)
        return fnv_byte(h, v);
    if (v <= 0xff)
        return fnv_byte(fnv_byte(h, 0x18), v);
    if (v <= 0xffff)
        return fnv_byte(fnv_byte(fnv_byte(h, 0x19), v >> 8), v);
    h = fnv_byte(fnv_byte(h, 0x1a), v >> 24);
    return fnv_byte(fnv_byte(fnv_byte(h, v >> 16), v >> 8), v);
}

/* FNV1a64(CBOR [parent, [tokens], null]). */
static uint64_t
llmd_block(uint64_t parent, const uint32_t *t, size_t n)
{
    uint64_t h = FNV_OFFSET;

    h = fnv_cbor_head(h, CBOR_ARRAY, 3);
    h = fnv_cbor_head(h, CBOR_UINT, parent);
    h = fnv_cbor_head(h, CBOR_ARRAY, n);
    for (size_t i = 0; i < n; i++)
        h = fnv_cbor_u32(h, t[i]);
    return fnv_bytes(h, &cbor_null, 1);
}

uint64_t
blockkey_llmd_root(const char *hash_seed, size_t seed_len, const char *name,
                   size_t name_len)
{
    uint64_t h = FNV_OFFSET;

    h = fnv_cbor_head(h, CBOR_ARRAY, 3);
    h = fnv_cbor_head(h, CBOR_UINT, blockkey_fnv1a64(hash_seed, seed_len));
    h = fnv_bytes(h, &cbor_null, 1);
    h = fnv_cbor_head(h, CBOR_TEXT, name_len);
    return fnv_bytes(h, (const uint8_t *)name, name_len);
}

/* Keys of n blocks of bs >= BLOCKKEY_LANES_MIN tokens: block i + 1's lanes
 * are issued before block i's finish, which is all that waits. */
static void
aibrix_chain(uint64_t seed, uint64_t parent, const uint32_t *t, size_t n,
             uint32_t bs, uint64_t *out)
{
    struct blockkey_pre next = blockkey_aibrix_lanes(seed, t, bs);

    for (size_t i = 0; i < n; i++) {
        struct blockkey_pre pre = next;
        const uint32_t *bt = t + i * bs;

        if (i + 1 < n)
            next = blockkey_aibrix_lanes(seed, bt + bs, bs);
        parent = blockkey_aibrix_finish(seed, parent, bt, bs, &pre);
        out[i] = parent;
    }
}

/* Dynamo's local hashes are independent of each other: all of a run's are
 * computed first, then the chain of 16-byte XXH3s over them. */
static void
dynamo_chain(const uint64_t *parent, const uint32_t *t, size_t n, uint32_t bs,
             uint64_t *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = dynamo_local(t + i * bs, bs);
    for (size_t i = 0; i < n; i++) {
        uint8_t buf[16];

        if (parent == NULL) {
            parent = &out[i];
            continue;
        }
        put_le64(buf, *parent);
        put_le64(buf + 8, out[i]);
        out[i] = XXH3_64bits_withSeed(buf, sizeof buf, DYNAMO_SEED);
        parent = &out[i];
    }
}

uint64_t
blockkey_next(const struct blockkey_cfg *c, const uint64_t *parent,
              const uint32_t *tokens, size_t n)
{
    switch (c->scheme) {
    case BLOCKKEY_AIBRIX:
        if (n >= BLOCKKEY_LANES_MIN) {
            struct blockkey_pre pre = blockkey_aibrix_lanes(c->seed, tokens, n);

            return blockkey_aibrix_finish(c->seed, parent ? *parent : c->seed,
                                          tokens, n, &pre);
        }
        return aibrix_block(c->seed, parent ? *parent : c->seed, tokens, n);
    case BLOCKKEY_DYNAMO:
        return dynamo_block(parent, tokens, n);
    case BLOCKKEY_LLMD:
        return llmd_block(parent ? *parent : c->llmd_root, tokens, n);
    }
    return 0;
}

/*
 * The chain, two stages per block so the CPU overlaps them: the part of a
 * block's hash that its tokens alone decide (lanes) is computed one block
 * ahead of the part that needs the parent's key (finish), so while block
 * i waits on block i - 1's key, block i + 1's lanes are already running.
 * Only the finish is serial: for aibrix that is XXH64's first lane, its
 * merge and its avalanche; for dynamo, the 16-byte XXH3 of the chain step.
 * llm-d's FNV-1a starts with the parent, so nothing of it can run ahead.
 */
size_t
blockkey_chain(const struct blockkey_cfg *c, const uint64_t *parent,
               const uint32_t *tokens, size_t n_tokens, uint32_t block_size,
               uint64_t *out)
{
    size_t n;

    if (block_size == 0)
        return 0;
    n = n_tokens / block_size;
    if (n == 0)
        return 0;
    if (c->scheme == BLOCKKEY_AIBRIX && block_size >= BLOCKKEY_LANES_MIN)
        aibrix_chain(c->seed, parent ? *parent : c->seed, tokens, n, block_size,
                     out);
    else if (c->scheme == BLOCKKEY_DYNAMO)
        dynamo_chain(parent, tokens, n, block_size, out);
    else
        for (size_t i = 0; i < n; i++) {
            out[i] =
                blockkey_next(c, parent, tokens + i * block_size, block_size);
            parent = &out[i];
        }
    return n;
}

/*
 * blockkey.h - the chained block-key schemes of docs/kvindex.md.
 *
 * A block key is a hash of a block's tokens chained on its parent's key, so
 * equal keys mean equal whole prefixes.  Only full blocks have keys.
 */
#ifndef KVTAP_BLOCKKEY_H
#define KVTAP_BLOCKKEY_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum blockkey_scheme { BLOCKKEY_AIBRIX, BLOCKKEY_DYNAMO, BLOCKKEY_LLMD };

/* Parses "aibrix", "dynamo", "llmd"; -1 if unknown. */
int blockkey_scheme_parse(const char *s, enum blockkey_scheme *out);

/* "aibrix", "dynamo", "llmd".  Static storage. */
const char *blockkey_scheme_name(enum blockkey_scheme s);

/* What one namespace needs to compute keys. */
struct blockkey_cfg {
    enum blockkey_scheme scheme;
    uint64_t seed;      /* aibrix: XXH64 seed and root parent */
    uint64_t llmd_root; /* llmd: blockkey_llmd_root() of the namespace */
};

/*
 * The key of one block of n tokens.  parent is the previous block's key, or
 * NULL for block 0 (aibrix chains on the seed, llmd on llmd_root, dynamo
 * uses the local hash alone).
 */
uint64_t blockkey_next(const struct blockkey_cfg *c, const uint64_t *parent,
                       const uint32_t *tokens, size_t n);

/*
 * Keys of the n_tokens / block_size full blocks of tokens, chained from
 * parent (NULL = root), written to out (room for that many).  Returns the
 * number of keys; a partial tail block is ignored.  The same keys as
 * blockkey_next block after block, faster for aibrix and dynamo: the part
 * of a block's hash its tokens alone decide is computed while the previous
 * block's key is still being finished, so only the parent's part is serial.
 */
size_t blockkey_chain(const struct blockkey_cfg *c, const uint64_t *parent,
                      const uint32_t *tokens, size_t n_tokens,
                      uint32_t block_size, uint64_t *out);

/* ---- keys block by block ---------------------------------------------- */

/*
 * aibrix's XXH64 of LE64(parent) || BE32 tokens, in two stages so that the
 * parent enters only the first of XXH64's four lanes.  Lanes 2-4 and their
 * merge inputs are the tokens' alone (blockkey_aibrix_lanes); the rest
 * waits on the parent (blockkey_aibrix_finish).  The byte string is never
 * built: each 8-byte word of it is two byte-swapped tokens.  Needs one
 * whole 32-byte stripe, so blocks of at least BLOCKKEY_LANES_MIN tokens.
 * Inline in this header, with the stepper below, and by force, because the
 * caller's loop must keep the chain in registers: a call per block would
 * pass it through memory.  Not for other use.
 */
#define BLOCKKEY_LANES_MIN 6

struct blockkey_pre {
    uint64_t sum, m2, m3, m4;
};

#define BLOCKKEY_P1 0x9E3779B185EBCA87ull
#define BLOCKKEY_P2 0xC2B2AE3D27D4EB4Full
#define BLOCKKEY_P3 0x165667B19E3779F9ull
#define BLOCKKEY_P4 0x85EBCA77C2B2AE63ull

static inline uint64_t
blockkey_rotl64(uint64_t x, int r)
{
    return x << r | x >> (64 - r);
}

static inline uint64_t
blockkey_xxh64_round(uint64_t acc, uint64_t in)
{
    return blockkey_rotl64(acc + in * BLOCKKEY_P2, 31) * BLOCKKEY_P1;
}

/* Word w >= 1 of the byte string (bytes 8w..8w+7), as XXH64 reads it
 * (little-endian): tokens 2w-2 and 2w-1, each big-endian.  On a
 * little-endian host that is the two tokens' 8 bytes reversed, then
 * rotated by 32: one load, one bswap, one rotate, where two of each and a
 * shift and an or did. */
static inline uint64_t
blockkey_aibrix_word(const uint32_t *t, size_t w)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t x;

    memcpy(&x, t + 2 * w - 2, sizeof x);
    return blockkey_rotl64(__builtin_bswap64(x), 32);
#else
    return (uint64_t)__builtin_bswap32(t[2 * w - 2]) |
           (uint64_t)__builtin_bswap32(t[2 * w - 1]) << 32;
#endif
}

/* What a block's tokens alone decide: lanes 2-4 summed as XXH64 sums them,
 * and each merged through a round as XXH64's merge does. */
static inline __attribute__((always_inline)) struct blockkey_pre
blockkey_aibrix_lanes(uint64_t seed, const uint32_t *t, size_t n)
{
    size_t stripes = (8 + 4 * n) / 32;
    uint64_t v2 = seed + BLOCKKEY_P2, v3 = seed, v4 = seed - BLOCKKEY_P1;

    for (size_t s = 0; s < stripes; s++) {
        v2 = blockkey_xxh64_round(v2, blockkey_aibrix_word(t, 4 * s + 1));
        v3 = blockkey_xxh64_round(v3, blockkey_aibrix_word(t, 4 * s + 2));
        v4 = blockkey_xxh64_round(v4, blockkey_aibrix_word(t, 4 * s + 3));
    }
    return (struct blockkey_pre){
        blockkey_rotl64(v2, 7) + blockkey_rotl64(v3, 12) +
            blockkey_rotl64(v4, 18),
        blockkey_xxh64_round(0, v2),
        blockkey_xxh64_round(0, v3),
        blockkey_xxh64_round(0, v4),
    };
}

static inline uint64_t
blockkey_xxh64_merge(uint64_t h, uint64_t m)
{
    return (h ^ m) * BLOCKKEY_P1 + BLOCKKEY_P4;
}

/* The rest of XXH64: lane 1 from the parent, the merge, the tail (whole
 * words, then an odd last token) and the avalanche. */
static inline __attribute__((always_inline)) uint64_t
blockkey_aibrix_finish(uint64_t seed, uint64_t parent, const uint32_t *t,
                       size_t n, const struct blockkey_pre *pre)
{
    size_t len = 8 + 4 * n, stripes = len / 32, words = len / 8;
    uint64_t v1 =
        blockkey_xxh64_round(seed + BLOCKKEY_P1 + BLOCKKEY_P2, parent);
    uint64_t h;

    for (size_t s = 1; s < stripes; s++)
        v1 = blockkey_xxh64_round(v1, blockkey_aibrix_word(t, 4 * s));
    h = blockkey_rotl64(v1, 1) + pre->sum;
    h = blockkey_xxh64_merge(h, blockkey_xxh64_round(0, v1));
    h = blockkey_xxh64_merge(h, pre->m2);
    h = blockkey_xxh64_merge(h, pre->m3);
    h = blockkey_xxh64_merge(h, pre->m4) + len;
    for (size_t w = 4 * stripes; w < words; w++)
        h = blockkey_rotl64(
                h ^ blockkey_xxh64_round(0, blockkey_aibrix_word(t, w)), 27) *
                BLOCKKEY_P1 +
            BLOCKKEY_P4;
    if (n & 1)
        h = blockkey_rotl64(
                h ^ (uint64_t)__builtin_bswap32(t[n - 1]) * BLOCKKEY_P1, 23) *
                BLOCKKEY_P2 +
            BLOCKKEY_P3;
    h ^= h >> 33;
    h *= BLOCKKEY_P2;
    h ^= h >> 29;
    h *= BLOCKKEY_P3;
    return h ^ h >> 32;
}

#undef BLOCKKEY_P1
#undef BLOCKKEY_P2
#undef BLOCKKEY_P3
#undef BLOCKKEY_P4

/*
 * The keys of blockkey_chain one block at a time, for a loop that does
 * other work between them: index_match probes the key table for one block
 * while it hashes a block further on, so that the probes run in the
 * shadow of the chain's serial multiplies instead of after a batch of
 * them.  The fields are the stepper's own; tokens are borrowed.
 */
struct blockkey_step {
    const struct blockkey_cfg *cfg;
    const uint32_t *tokens; /* the next block's */
    size_t left;            /* blocks not keyed yet */
    uint32_t bs;
    int lanes; /* aibrix in two stages */
    int has_parent;
    uint64_t seed; /* cfg's, where the loop's stores cannot alias it */
    uint64_t parent;
};

/* Starts stepping through the n_tokens / block_size full blocks of tokens,
 * chained from parent (NULL = root), as blockkey_chain would. */
static inline void
blockkey_step_init(struct blockkey_step *s, const struct blockkey_cfg *c,
                   const uint64_t *parent, const uint32_t *tokens,
                   size_t n_tokens, uint32_t block_size)
{
    s->cfg = c;
    s->tokens = tokens;
    s->left = block_size ? n_tokens / block_size : 0;
    s->bs = block_size;
    s->lanes = c->scheme == BLOCKKEY_AIBRIX && block_size >= BLOCKKEY_LANES_MIN;
    s->has_parent = parent != NULL;
    s->seed = c->seed;
    s->parent = parent ? *parent : c->seed;
}

/*
 * One aibrix step with blocks of bs tokens, both stages.  Unlike
 * blockkey_chain, the step does not compute the next block's lanes ahead:
 * in a loop that does other work between steps, the processor overlaps
 * them with the finish on its own, and holding them would take four
 * registers the loop needs (bench/ab measured no difference).
 */
static inline __attribute__((always_inline)) uint64_t
blockkey_step_lanes(struct blockkey_step *s, uint32_t bs)
{
    struct blockkey_pre pre = blockkey_aibrix_lanes(s->seed, s->tokens, bs);

    return blockkey_aibrix_finish(s->seed, s->parent, s->tokens, bs, &pre);
}

/* Moves s past the block whose key is k. */
static inline __attribute__((always_inline)) void
blockkey_step_past(struct blockkey_step *s, uint64_t k)
{
    s->parent = k;
    s->has_parent = 1;
    s->tokens += s->bs;
    s->left--;
}

/*
 * blockkey_step_next for a stepper that hashes aibrix blocks of 16 tokens
 * (vLLM's default; s->lanes set and s->bs 16): a copy of the step compiled
 * for that size, whose loops unroll and whose tail is known, for a caller
 * that tests the case once rather than per block.
 */
static inline __attribute__((always_inline)) uint64_t
blockkey_step_next16(struct blockkey_step *s)
{
    uint64_t k = blockkey_step_lanes(s, 16);

    blockkey_step_past(s, k);
    return k;
}

/* The next block's key; s->left must be above 0. */
static inline __attribute__((always_inline)) uint64_t
blockkey_step_next(struct blockkey_step *s)
{
    uint64_t k;

    if (s->lanes) {
        if (s->bs == 16)
            return blockkey_step_next16(s);
        k = blockkey_step_lanes(s, s->bs);
    } else {
        /* A copy, so that the stepper's address never leaves the caller
         * and its fields can live in registers. */
        uint64_t parent = s->parent;

        k = blockkey_next(s->cfg, s->has_parent ? &parent : NULL, s->tokens,
                          s->bs);
    }
    blockkey_step_past(s, k);
    return k;
}

/*
 * llm-d's root: FNV1a64(CBOR [FNV1a64(hash_seed), null, name]) where name is
 * the LoRA name, or the model for the base model.
 */
uint64_t blockkey_llmd_root(const char *hash_seed, size_t seed_len,
                            const char *name, size_t name_len);

/* The primitives, exposed for the test vectors. */
uint64_t blockkey_fnv1a64(const void *p, size_t n);
uint64_t blockkey_dynamo_bytes(const void *p, size_t n); /* XXH3, seed 1337 */
uint64_t blockkey_xxh64(const void *p, size_t n, uint64_t seed);

#endif

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

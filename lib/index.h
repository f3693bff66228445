/*
 * index.h - the prefix index (docs/kvindex.md): which pod holds which block
 * key, per namespace (model, LoRA).  No I/O: kvindex's server feeds it parsed
 * events and asks it questions.  One thread owns an index.
 *
 * DRAFT CONTRACT between lib/index.c and cmd/kvindex: the functions below are
 * the agreed minimum; lib/index.c may add functions (pods, stats, lookup,
 * dump/restore iteration) but must not change these signatures.
 */
#ifndef KVTAP_INDEX_H
#define KVTAP_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "blockkey.h"
#include "event.h"
#include "ndjson.h"

struct kv_index;

struct index_opts {
    enum blockkey_scheme scheme; /* --hash, default aibrix */
    uint64_t seed;               /* --seed (aibrix root), default 0 */
    const char *hash_seed;       /* --hash-seed (llmd), default "" */
    const char *default_model;   /* --model, for lines without "model" */
    uint64_t max_blocks;         /* --max-blocks: (pod, block) cap, 0 = none */
};

/* Creates an empty index.  Returns NULL with the reason in err. */
struct kv_index *index_new(const struct index_opts *o, char *err,
                           size_t errlen);

/* Frees everything.  Accepts NULL. */
void index_free(struct kv_index *ix);

/* Why index_apply rejected an event (counted in stats under these names). */
enum index_reject {
    INDEX_REJ_NONE = 0,
    INDEX_REJ_ORPHAN,     /* parent_block_hash unknown to the pod */
    INDEX_REJ_MISALIGNED, /* len(token_ids) != len(block_hashes)*block_size */
    INDEX_REJ_BLOCK_SIZE, /* block size differs from the namespace's */
    INDEX_REJ_INVALID,    /* missing or ill-typed fields */
    INDEX_REJ_NOMEM,
    INDEX_REJ_COUNT
};

/* "orphan", "misaligned", ... Static storage. */
const char *index_reject_name(enum index_reject r);

/*
 * Applies one event read from NDJSON (env gives pod, dp_rank, model, seq,
 * ts).  Returns 0 when applied (a removal naming unknown hashes still applies
 * the rest; they are counted), or -1 when the event was rejected, with the
 * reason in *why.  Stream records gap/restart act as kvindex.md says; other
 * records are ignored.
 */
int index_apply(struct kv_index *ix, const struct ndjson_env *env,
                const struct kv_event *ev, enum index_reject *why);

/* A pod named in a query: (pod, dp_rank); has_rank 0 matches any rank. */
struct index_pod_ref {
    struct kv_str pod;
    int has_rank;
    int64_t rank;
};

struct index_query {
    struct kv_str model;     /* p == NULL: the default model */
    struct kv_str lora_name; /* p == NULL or n == 0: the base model */
    const uint32_t *tokens;  /* either tokens ... */
    size_t n_tokens;
    const uint64_t *keys; /* ... or already computed block keys */
    size_t n_keys;
    const struct index_pod_ref *pods; /* candidate filter, NULL = all */
    size_t n_pods;
    uint32_t block_size; /* for keys when the namespace has none yet */
};

struct index_match {
    const char *pod; /* borrowed until the pod is forgotten */
    int has_rank;
    int64_t rank;
    uint32_t depth; /* the pod's unbroken run of blocks from block 0 */
    uint32_t media; /* bit i = medium index_medium_name(ix, i) */
    int degraded;
};

struct index_match_result {
    uint32_t block_size;
    size_t blocks;         /* full blocks in the query */
    struct index_match *m; /* sorted by depth desc, then pod, then rank */
    size_t n;
    size_t cap; /* owned by the result; reused across calls */
};

/*
 * Answers "match": fills *out (its array is grown as needed and reused;
 * free with index_match_result_free).  Returns 0, or -1 with the reason in
 * err (unknown namespace is not an error: no matches).
 */
int index_match(struct kv_index *ix, const struct index_query *q,
                struct index_match_result *out, char *err, size_t errlen);

void index_match_result_free(struct index_match_result *r);

/*
 * Computes the block keys of q->tokens under the index's scheme for q's
 * namespace (block size from the namespace, else q->block_size).  *keys is
 * allocated (caller frees).  Returns 0, or -1 with the reason in err.
 */
int index_keys(struct kv_index *ix, const struct index_query *q,
               uint64_t **keys, size_t *n_keys, char *err, size_t errlen);

/* The name of medium bit i ("GPU" for nil media).  Static to the index. */
const char *index_medium_name(const struct kv_index *ix, int bit);

/*
 * Drops every entry of the pod (all ranks when ref->has_rank is 0); the pod
 * stays known.  Returns the number of entries removed.
 */
uint64_t index_clear_pod(struct kv_index *ix, const struct index_pod_ref *ref);

#endif

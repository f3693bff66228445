/*
 * ixtest.h - helpers shared by the prefix index's unit tests
 * (test_index.c, test_index_memory.c, test_index_model.c): events built
 * from a few fields and applied, and matches whose result the accessors
 * read.
 */
#ifndef KVTAP_TEST_IXTEST_H
#define KVTAP_TEST_IXTEST_H

#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "index.h"

#define IXTEST_TOKENS 8192

/* ixtest_T[i] = i once ixtest_init ran: token ranges are ixtest_T + first. */
extern uint32_t ixtest_T[IXTEST_TOKENS];

/* The result of the last ixtest_match, and its error when it failed. */
extern struct index_match_result ixtest_R;
extern char ixtest_match_err[512];

/* Fills ixtest_T; every test program calls it first. */
void ixtest_init(void);

/* Frees ixtest_R; every test program calls it last. */
void ixtest_fini(void);

/* One BlockStored, described with designated initializers. */
struct ixtest_st {
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

/* The envelope of an event of pod (rank), model, seq; ts is 1.7e9 + seq. */
struct kv_env ixtest_env(const char *pod, int has_rank, int64_t rank,
                         const char *model, uint64_t seq);

/* Sets string field f of ev (NULL: present and null); s is borrowed. */
void ixtest_set_str(struct kv_event *ev, enum kv_field f, const char *s);

/* Applies the BlockStored s describes; index_apply's return, why may be
 * NULL. */
int ixtest_store(struct kv_index *ix, const struct ixtest_st *s,
                 enum index_reject *why);

/* Applies a BlockRemoved of pod's hashes h[0..n) on medium (NULL: all). */
int ixtest_removed(struct kv_index *ix, const char *pod, const uint64_t *h,
                   size_t n, const char *medium);

/* Applies an event of type t without fields (a clear, a stream record). */
int ixtest_record(struct kv_index *ix, const char *pod, enum kv_type t);

/* A new index of default model "m"; NULL after printing why. */
struct kv_index *ixtest_new(enum blockkey_scheme scheme, uint64_t seed,
                            uint64_t max_blocks);

/* Matches tok[0..n) in the default model's namespace lora (NULL: base),
 * among pods (NULL: all), into ixtest_R; returns the number of answers, or
 * (size_t)-1 with the reason in ixtest_match_err. */
size_t ixtest_match(struct kv_index *ix, const char *lora, const uint32_t *tok,
                    size_t n, const struct index_pod_ref *pods, size_t n_pods);

/* The depth ixtest_R gives pod (0 when absent), and its whole answer. */
uint32_t ixtest_depth(const char *pod);
const struct index_match *ixtest_match_of(const char *pod);

/* The block key pod's engine_hash maps to, or 0. */
uint64_t ixtest_key(struct kv_index *ix, const char *pod, uint64_t engine_hash);

struct index_stats ixtest_stats(const struct kv_index *ix);

/* A root store of one block: tokens first..first+15, engine hash h. */
int ixtest_store_root(struct kv_index *ix, const char *pod, const char *model,
                      const char *lora, uint32_t first, uint64_t h);

#endif

/*
 * route.h - kvstat route: the router what-if.  Every request (a BlockStored
 * chain, as track.h hands it over) is kept, then replayed in order through
 * one simulated cluster per policy: N pods, each an LRU cache of block
 * keys, where a request hits the longest run of its prompt's keys from
 * block 0 that the chosen pod holds.  The assumptions are listed in
 * man/kvstat.1 (ROUTE MODEL).
 */
#ifndef KVSTAT_ROUTE_H
#define KVSTAT_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "blockkey.h"

enum route_policy {
    ROUTE_CAPTURE,     /* what the capture's pods had (its own events) */
    ROUTE_CAPTURE_LRU, /* the capture's choice of pod, in the model */
    ROUTE_PREFIX,      /* longest prefix match, ties to the least used */
    ROUTE_ROUND_ROBIN,
    ROUTE_RANDOM, /* uniform, splitmix64 from --random-seed */
    ROUTE_POLICY_COUNT
};

struct route_result {
    uint64_t requests, blocks, hits;
};

struct route;

/* Returns an empty simulation, or NULL (out of memory). */
struct route *route_new(uint64_t random_seed);

/* Frees everything.  Accepts NULL. */
void route_free(struct route *r);

/* track.h's track_request_fn: keeps one request (ctx is the route). */
void route_request(void *ctx, size_t stream, const uint64_t *keys,
                   size_t n_keys, size_t n_new);

/*
 * Loads real prompts instead of the capture's chains: path holds one
 * request per line, a JSON array of token ids or an object with
 * "token_ids" (kvindex match's input), in the order they arrived.  Each
 * prompt's full blocks of block_size tokens are keyed with cfg; a prompt
 * shorter than one block is skipped.  The capture then only sizes the
 * cluster, and route_run leaves the capture's rows empty.  Returns 0, or
 * -1 with the reason in err (cannot read, a line that is not a prompt).
 */
int route_load_prompts(struct route *r, const char *path, uint32_t block_size,
                       const struct blockkey_cfg *cfg, char *err,
                       size_t errlen);

/* Nonzero when prompts came from route_load_prompts. */
int route_external(const struct route *r);

/* Nonzero when a request could not be kept (out of memory). */
int route_failed(const struct route *r);

/*
 * Replays the requests kept through every policy, on n_pods pods whose
 * capacities in blocks are cap[0..n_pods) (0: unlimited).  Fills
 * res[ROUTE_POLICY_COUNT].  Returns 0, or -1 when memory ran out.
 */
int route_run(struct route *r, size_t n_pods, const uint64_t *cap,
              struct route_result *res);

/* "capture", "capture_lru", ...  Static storage. */
const char *route_policy_name(enum route_policy p);

#endif

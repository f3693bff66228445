/*
 * route.c - see route.h.
 */
#include "route.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pmap.h"
#include "vec.h"

struct req {
    size_t stream, off, n, n_new;
};

struct route {
    uint64_t seed;
    struct req *req;
    size_t n_req, cap_req;
    uint64_t *keys;
    size_t n_keys, cap_keys;
    int failed;
    int external; /* prompts from a request log */
};

/* One simulated pod: an LRU list of keys, most recent at head. */
struct node {
    uint64_t key;
    uint32_t prev, next; /* UINT32_MAX: none */
};

struct pod {
    struct pmap map; /* key -> node index */
    struct node *nodes;
    size_t n, cap_nodes;
    uint64_t cap; /* 0: unlimited */
    uint32_t head, tail, free_head;
    uint64_t used; /* requests routed here */
};

#define NIL UINT32_MAX

struct route *
route_new(uint64_t random_seed)
{
    struct route *r = calloc(1, sizeof *r);

    if (r != NULL)
        r->seed = random_seed;
    return r;
}

void
route_free(struct route *r)
{
    if (r == NULL)
        return;
    free(r->req);
    free(r->keys);
    free(r);
}

int
route_external(const struct route *r)
{
    return r->external;
}

/* The token ids of one request line into *tok (grown); -1 if not one. */
static int
prompt_tokens(const char *line, size_t len, uint32_t **tok, size_t *cap,
              size_t *n)
{
    json_t *root = json_loadb(line, len, 0, NULL), *arr = root;
    int ret = -1;

    if (json_is_object(root))
        arr = json_object_get(root, "token_ids");
    if (!json_is_array(arr) ||
        vec_grow((void **)tok, cap, json_array_size(arr) + 1, sizeof **tok))
        goto out;
    *n = json_array_size(arr);
    for (size_t i = 0; i < *n; i++) {
        json_t *v = json_array_get(arr, i);

        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) > UINT32_MAX)
            goto out;
        (*tok)[i] = (uint32_t)json_integer_value(v);
    }
    ret = 0;
out:
    json_decref(root);
    return ret;
}

int
route_load_prompts(struct route *r, const char *path, uint32_t block_size,
                   const struct blockkey_cfg *cfg, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t lcap = 0, tcap = 0, kcap = 0, n, lineno = 0;
    uint32_t *tok = NULL;
    uint64_t *keys = NULL;
    ssize_t len;
    int ret = -1;

    if (f == NULL) {
        snprintf(err, errlen, "--requests: %s: %s", path, strerror(errno));
        return -1;
    }
    r->external = 1;
    while ((len = getline(&line, &lcap, f)) != -1) {
        lineno++;
        if (len <= 1)
            continue;
        if (prompt_tokens(line, (size_t)len, &tok, &tcap, &n) == -1) {
            snprintf(err, errlen,
                     "--requests: %s:%zu: not a JSON array of token ids", path,
                     lineno);
            goto out;
        }
        if (n / block_size == 0)
            continue;
        if (vec_grow((void **)&keys, &kcap, n / block_size, sizeof *keys))
            goto oom;
        n = blockkey_chain(cfg, NULL, tok, n, block_size, keys);
        route_request(r, 0, keys, n, n);
        if (r->failed)
            goto oom;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "--requests: %s: read error", path);
        goto out;
    }
    ret = 0;
    goto out;
oom:
    snprintf(err, errlen, "out of memory");
out:
    fclose(f);
    free(line);
    free(tok);
    free(keys);
    return ret;
}

int
route_failed(const struct route *r)
{
    return r->failed;
}

void
route_request(void *ctx, size_t stream, const uint64_t *keys, size_t n_keys,
              size_t n_new)
{
    struct route *r = ctx;

    if (r->failed ||
        vec_grow((void **)&r->req, &r->cap_req, r->n_req + 1, sizeof *r->req) ||
        vec_grow((void **)&r->keys, &r->cap_keys, r->n_keys + n_keys,
                 sizeof *r->keys)) {
        r->failed = 1;
        return;
    }
    memcpy(r->keys + r->n_keys, keys, n_keys * sizeof *keys);
    r->req[r->n_req++] = (struct req){stream, r->n_keys, n_keys, n_new};
    r->n_keys += n_keys;
}

const char *
route_policy_name(enum route_policy p)
{
    static const char *const names[ROUTE_POLICY_COUNT] = {
        "capture", "capture_lru", "longest_prefix", "round_robin", "random"};

    return names[p];
}

static void
unlink_node(struct pod *p, uint32_t i)
{
    struct node *x = &p->nodes[i];

    if (x->prev != NIL)
        p->nodes[x->prev].next = x->next;
    else
        p->head = x->next;
    if (x->next != NIL)
        p->nodes[x->next].prev = x->prev;
    else
        p->tail = x->prev;
}

static void
push_front(struct pod *p, uint32_t i)
{
    p->nodes[i].prev = NIL;
    p->nodes[i].next = p->head;
    if (p->head != NIL)
        p->nodes[p->head].prev = i;
    p->head = i;
    if (p->tail == NIL)
        p->tail = i;
}

/* Makes key the most recent entry, inserting it (and evicting) if absent. */
static int
pod_use(struct pod *p, uint64_t key)
{
    int created;
    uint32_t *v = pmap_put(&p->map, key, 0, &created);
    uint32_t i;

    if (v == NULL)
        return -1;
    if (!created) {
        unlink_node(p, (uint32_t)*v);
        push_front(p, (uint32_t)*v);
        return 0;
    }
    if (p->free_head != NIL) {
        i = p->free_head;
        p->free_head = p->nodes[i].next;
    } else {
        if (p->n >= NIL || vec_grow((void **)&p->nodes, &p->cap_nodes, p->n + 1,
                                    sizeof *p->nodes))
            return -1;
        i = (uint32_t)p->n++;
    }
    *v = i;
    p->nodes[i].key = key;
    push_front(p, i);
    if (p->cap > 0 && p->map.n > p->cap) {
        uint32_t old = p->tail;

        unlink_node(p, old);
        pmap_del(&p->map, p->nodes[old].key, 0);
        p->nodes[old].next = p->free_head;
        p->free_head = old;
    }
    return 0;
}

/* The run of keys from block 0 that the pod holds. */
static size_t
pod_depth(const struct pod *p, const uint64_t *keys, size_t n)
{
    size_t d = 0;

    while (d < n && pmap_get(&p->map, keys[d], 0) != NULL)
        d++;
    return d;
}

static uint64_t
splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The pod with the longest match; ties go to the least used, then the
 * first. */
static size_t
pick_prefix(const struct pod *pods, size_t n_pods, const uint64_t *keys,
            size_t n)
{
    size_t best = 0, best_d = 0;

    for (size_t i = 0; i < n_pods; i++) {
        size_t d = pod_depth(&pods[i], keys, n);

        if (i == 0 || d > best_d ||
            (d == best_d && pods[i].used < pods[best].used)) {
            best = i;
            best_d = d;
        }
    }
    return best;
}

/*
 * Serves one request on pod p: counts the hits, then uses the prompt's keys
 * from the last to the first, so that block 0 is the most recent and a
 * prefix is evicted from its tail.
 */
static int
serve(struct pod *p, const uint64_t *keys, size_t n, struct route_result *res)
{
    res->requests++;
    res->blocks += n;
    res->hits += pod_depth(p, keys, n);
    p->used++;
    for (size_t i = n; i-- > 0;) {
        if (pod_use(p, keys[i]) == -1)
            return -1;
    }
    return 0;
}

static void
pods_free(struct pod *pods, size_t n)
{
    for (size_t i = 0; pods != NULL && i < n; i++) {
        pmap_free(&pods[i].map);
        free(pods[i].nodes);
    }
    free(pods);
}

static int
run_policy(struct route *r, enum route_policy pol, size_t n_pods,
           const uint64_t *cap, struct route_result *res)
{
    struct pod *pods = calloc(n_pods, sizeof *pods);
    uint64_t rng = r->seed;
    int ret = -1;

    if (pods == NULL)
        return -1;
    for (size_t i = 0; i < n_pods; i++) {
        pods[i].cap = cap[i];
        pods[i].head = pods[i].tail = pods[i].free_head = NIL;
    }
    for (size_t q = 0; q < r->n_req; q++) {
        const struct req *rq = &r->req[q];
        const uint64_t *k = r->keys + rq->off;
        size_t p = rq->stream;

        if (pol == ROUTE_PREFIX)
            p = pick_prefix(pods, n_pods, k, rq->n);
        else if (pol == ROUTE_ROUND_ROBIN)
            p = q % n_pods;
        else if (pol == ROUTE_RANDOM)
            p = (size_t)(splitmix64(&rng) % n_pods);
        if (serve(&pods[p], k, rq->n, res) == -1)
            goto out;
    }
    ret = 0;
out:
    pods_free(pods, n_pods);
    return ret;
}

int
route_run(struct route *r, size_t n_pods, const uint64_t *cap,
          struct route_result *res)
{
    memset(res, 0, ROUTE_POLICY_COUNT * sizeof *res);
    for (size_t q = 0; q < r->n_req && !r->external; q++) {
        res[ROUTE_CAPTURE].requests++;
        res[ROUTE_CAPTURE].blocks += r->req[q].n;
        res[ROUTE_CAPTURE].hits += r->req[q].n - r->req[q].n_new;
    }
    if (n_pods == 0)
        return 0;
    /* Real prompts have no pod of the capture to replay them on. */
    for (int pol = r->external ? ROUTE_PREFIX : ROUTE_CAPTURE_LRU;
         pol < ROUTE_POLICY_COUNT; pol++) {
        if (run_policy(r, (enum route_policy)pol, n_pods, cap, &res[pol]))
            return -1;
    }
    return 0;
}

/*
 * bench_index.c - the prefix index in process: apply rate of already-parsed
 * BlockStored events, match latency of a 2,048-token prompt (128 blocks),
 * the same prompts as request lines through kvproto_handle (what kvindex
 * serve spends on a match besides the socket), and resident memory per
 * (pod, block) entry at about 1M entries across 64 pods.  A naive index
 * (chained hash tables, one malloc per node, the shape of the Go and Python
 * indexers) runs the same workload in the same invocation, and the ratios are
 * printed against it and against the targets of issue 4.
 *
 * Each measurement runs in a forked child so that its resident-memory delta
 * is its own.
 *
 * Usage: bench_index [-q] [-m] [-d DOCS] [-n QUERIES] [-e BLOCKS] [-p PODS]
 * [-s HASH] -q quick run (fewer entries) for a smoke test; -m only the
 *   memory per (pod, block) with nothing shared, at about 0.6M, 1M and 1.5M
 *   entries (the tables grow in steps, so one size alone says little about
 *   the others); -e blocks per event (default 16; a divisor of 128); -p
 *   pods (default 64; a multiple of 16, at most 1024: with -p 512 -d 16 the
 *   index still holds 1M entries); -s aibrix (default), dynamo or llmd.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "blockkey.h"
#include "buf.h"
#include "index.h"
#include "kvproto.h"

#define MAX_PODS 1024
#define BS 16
#define BLOCKS 128 /* per document: 2,048 tokens */
#define MAX_EV_BLOCKS 128
#define PREFIX_BLOCKS 4 /* shared by the 16 documents of a group */
#define GROUP 16
#define COPIES 4 /* pods holding each document */

struct workload {
    int shared; /* 1: documents share prefixes and sit on 4 pods */
    uint32_t docs;
    uint32_t docs_per_pod;
    uint32_t *tokens; /* docs * BLOCKS * BS */
    uint32_t n_queries;
    uint32_t ev_blocks; /* blocks per BlockStored event, divides BLOCKS */
    uint32_t pods;
    enum blockkey_scheme scheme;
    int mem_only; /* run_index stops after the memory figures */
};

struct result {
    double apply_s;
    uint64_t blocks_applied;
    uint64_t entries, keys, bytes_used;
    long rss_delta;
    double match_ns_mean, match_ns_p50, match_ns_p99; /* mean: CPU time */
    double keys_match_ns_mean;
    double request_ns_mean;        /* kvproto_handle: parse, match, reply */
    double chain_ns, chain_ref_ns; /* keys of one prompt: ours, reference */
    double mean_depth;
    int ok;
};

/*
 * CPU time of this process: the machines are shared, and wall time would
 * count the time other processes held the CPU.  Per-query percentiles use
 * wall time (CPU clocks are too coarse per call) and are noisy under load.
 */
static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double
wall(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long
rss_bytes(void)
{
    long size = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    if (f == NULL)
        return 0;
    if (fscanf(f, "%ld %ld", &size, &res) != 2)
        res = 0;
    fclose(f);
    return res * sysconf(_SC_PAGESIZE);
}

static uint64_t
mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* The document d's placement: pod p holds it when in_pod(). */
static uint32_t
doc_pod(const struct workload *w, uint32_t d, uint32_t j)
{
    if (!w->shared)
        return d / w->docs_per_pod;
    return (d + j * GROUP) % w->pods;
}

static int
copies(const struct workload *w)
{
    return w->shared ? COPIES : 1;
}

/* An engine's hash of block b of document d on pod p: per-pod (engines
 * seed per process); shared prefix blocks hash alike on one pod. */
static uint64_t
engine_hash(const struct workload *w, uint32_t p, uint32_t d, uint32_t b)
{
    uint64_t id = w->shared && b < PREFIX_BLOCKS ? d / GROUP + (1u << 30) : d;

    return mix(((uint64_t)p << 56) ^ (id << 16) ^ b);
}

static void
make_tokens(struct workload *w)
{
    for (uint32_t d = 0; d < w->docs; d++) {
        uint32_t *t = w->tokens + (size_t)d * BLOCKS * BS;

        for (uint32_t i = 0; i < BLOCKS * BS; i++) {
            if (w->shared && i < PREFIX_BLOCKS * BS)
                t[i] = (d / GROUP) * 3000 + i;
            else
                t[i] = (uint32_t)(mix((uint64_t)d << 20 | i) % 150000);
        }
    }
}

/* ---- the naive baseline -------------------------------------------------
 * Chained hash tables with a heap node per key, per holder and per engine
 * mapping. */

struct n_holder {
    uint32_t pod, media;
    struct n_holder *next;
};

struct n_key {
    uint64_t key;
    struct n_holder *holders;
    struct n_key *next;
};

struct n_map {
    uint64_t engine_hash, key;
    struct n_map *next;
};

struct n_table {
    void **b;
    size_t nb, n;
};

struct naive {
    struct n_table keys;
    struct n_table maps[MAX_PODS];
};

static size_t
n_bucket(uint64_t k, size_t nb)
{
    return (size_t)(mix(k) & (nb - 1));
}

static void
n_grow(struct n_table *t, int is_key)
{
    size_t nb = t->nb ? t->nb * 2 : 64;
    void **b = calloc(nb, sizeof *b);

    for (size_t i = 0; i < t->nb; i++) {
        void *n = t->b[i];

        while (n) {
            void *next;
            size_t j;

            if (is_key) {
                struct n_key *k = n;

                next = k->next;
                j = n_bucket(k->key, nb);
                k->next = b[j];
            } else {
                struct n_map *m = n;

                next = m->next;
                j = n_bucket(m->engine_hash, nb);
                m->next = b[j];
            }
            b[j] = n;
            n = next;
        }
    }
    free(t->b);
    t->b = b;
    t->nb = nb;
}

static struct n_map *
n_map_find(struct n_table *t, uint64_t h)
{
    if (t->nb == 0)
        return NULL;
    for (struct n_map *m = t->b[n_bucket(h, t->nb)]; m; m = m->next)
        if (m->engine_hash == h)
            return m;
    return NULL;
}

static struct n_key *
n_key_find(const struct n_table *t, uint64_t key)
{
    if (t->nb == 0)
        return NULL;
    for (struct n_key *k = t->b[n_bucket(key, t->nb)]; k; k = k->next)
        if (k->key == key)
            return k;
    return NULL;
}

static int
naive_store(struct naive *nv, uint32_t pod, const uint64_t *parent_hash,
            const uint64_t *hashes, size_t n, const uint32_t *tok,
            const struct blockkey_cfg *cfg)
{
    uint64_t parent = 0;
    int has_parent = 0;
    struct n_table *mt = &nv->maps[pod];

    if (parent_hash) {
        struct n_map *m = n_map_find(mt, *parent_hash);

        if (m == NULL)
            return -1;
        parent = m->key;
        has_parent = 1;
    }
    for (size_t i = 0; i < n; i++) {
        struct n_map *m = n_map_find(mt, hashes[i]);
        struct n_key *k;
        struct n_holder *h;
        size_t j;

        if (m) {
            parent = m->key;
            has_parent = 1;
            continue;
        }
        parent =
            blockkey_next(cfg, has_parent ? &parent : NULL, tok + i * BS, BS);
        has_parent = 1;
        if (mt->n >= mt->nb)
            n_grow(mt, 0);
        m = malloc(sizeof *m);
        m->engine_hash = hashes[i];
        m->key = parent;
        j = n_bucket(hashes[i], mt->nb);
        m->next = mt->b[j];
        mt->b[j] = m;
        mt->n++;
        k = n_key_find(&nv->keys, parent);
        if (k == NULL) {
            if (nv->keys.n >= nv->keys.nb)
                n_grow(&nv->keys, 1);
            k = calloc(1, sizeof *k);
            k->key = parent;
            j = n_bucket(parent, nv->keys.nb);
            k->next = nv->keys.b[j];
            nv->keys.b[j] = k;
            nv->keys.n++;
        }
        h = malloc(sizeof *h);
        h->pod = pod;
        h->media = 1;
        h->next = k->holders;
        k->holders = h;
    }
    return 0;
}

/* Per pod depth of its own run from block 0; returns pods with depth > 0. */
static size_t
naive_match(const struct naive *nv, const uint64_t *keys, size_t n,
            uint32_t *depth, uint32_t pods)
{
    size_t hits = 0;

    memset(depth, 0, pods * sizeof *depth);
    for (size_t i = 0; i < n; i++) {
        const struct n_key *k = n_key_find(&nv->keys, keys[i]);
        int advanced = 0;

        if (k == NULL)
            break;
        for (const struct n_holder *h = k->holders; h; h = h->next) {
            if (depth[h->pod] == i) {
                depth[h->pod] = (uint32_t)i + 1;
                advanced = 1;
                if (i == 0)
                    hits++;
            }
        }
        if (!advanced)
            break;
    }
    return hits;
}

/* ---- the runs ---------------------------------------------------------- */

/* Calls fn(pod, parent or NULL, hashes, n, tokens) for every event of the
 * workload, in a pod-interleaved order like a router's merged stream. */
typedef int (*apply_fn)(void *ctx, uint32_t pod, const uint64_t *parent,
                        const uint64_t *hashes, size_t n, const uint32_t *tok);

static uint64_t
feed(const struct workload *w, apply_fn fn, void *ctx, int *ok)
{
    uint64_t blocks = 0;
    uint64_t hashes[MAX_EV_BLOCKS], parent;
    uint32_t evb = w->ev_blocks;

    for (uint32_t d = 0; d < w->docs; d++) {
        for (int j = 0; j < copies(w); j++) {
            uint32_t p = doc_pod(w, d, (uint32_t)j);
            const uint32_t *t = w->tokens + (size_t)d * BLOCKS * BS;

            for (uint32_t e = 0; e < BLOCKS / evb; e++) {
                for (uint32_t i = 0; i < evb; i++)
                    hashes[i] = engine_hash(w, p, d, e * evb + i);
                if (e)
                    parent = engine_hash(w, p, d, e * evb - 1);
                if (fn(ctx, p, e ? &parent : NULL, hashes, evb,
                       t + (size_t)e * evb * BS) != 0)
                    *ok = 0;
                blocks += evb;
            }
        }
    }
    return blocks;
}

struct ix_ctx {
    struct kv_index *ix;
    struct kv_event ev;
    struct kv_hash hs[MAX_EV_BLOCKS];
    char names[MAX_PODS][8];
};

static int
ix_apply(void *c, uint32_t pod, const uint64_t *parent, const uint64_t *hashes,
         size_t n, const uint32_t *tok)
{
    struct ix_ctx *x = c;
    struct kv_env env = {.pod = {x->names[pod], strlen(x->names[pod])}};
    enum index_reject why;

    for (size_t i = 0; i < n; i++)
        x->hs[i].v = hashes[i];
    x->ev.n_hashes = n;
    x->ev.tokens = (uint32_t *)tok;
    x->ev.n_tokens = n * BS;
    if (parent) {
        x->ev.parent.v = *parent;
        x->ev.isnull &= ~KV_BIT(KV_F_PARENT_BLOCK_HASH);
    } else {
        x->ev.isnull |= KV_BIT(KV_F_PARENT_BLOCK_HASH);
    }
    return index_apply(x->ix, &env, &x->ev, &why);
}

struct nv_ctx {
    struct naive *nv;
    struct blockkey_cfg cfg;
};

static int
nv_apply(void *c, uint32_t pod, const uint64_t *parent, const uint64_t *hashes,
         size_t n, const uint32_t *tok)
{
    struct nv_ctx *x = c;

    return naive_store(x->nv, pod, parent, hashes, n, tok, &x->cfg);
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/*
 * The reference chain, the way blockkey.c computed keys before its lanes:
 * per block, the byte string (LE64 parent, BE32 tokens for aibrix; LE32
 * tokens then LE64 parent and local for dynamo) built and hashed whole by
 * libxxhash.  llmd has no lanes; its reference is blockkey_next.
 */
static void
ref_chain(const struct blockkey_cfg *c, const uint32_t *t, uint64_t *out)
{
    uint8_t buf[8 + 4 * BS];

    for (size_t i = 0; i < BLOCKS; i++) {
        const uint32_t *bt = t + i * BS;
        uint64_t parent = i ? out[i - 1] : c->seed, local;

        if (c->scheme == BLOCKKEY_LLMD) {
            out[i] = blockkey_next(c, i ? &out[i - 1] : NULL, bt, BS);
            continue;
        }
        if (c->scheme == BLOCKKEY_DYNAMO) {
            memcpy(buf, bt, 4 * BS); /* LE32: the host's order here */
            local = XXH3_64bits_withSeed(buf, 4 * BS, 1337);
            if (i) {
                memcpy(buf, &parent, 8);
                memcpy(buf + 8, &local, 8);
                local = XXH3_64bits_withSeed(buf, 16, 1337);
            }
            out[i] = local;
            continue;
        }
        memcpy(buf, &parent, 8);
        for (size_t j = 0; j < BS; j++) {
            uint32_t be = __builtin_bswap32(bt[j]);

            memcpy(buf + 8 + 4 * j, &be, 4);
        }
        out[i] = XXH64(buf, sizeof buf, c->seed);
    }
}

/* CPU ns per prompt of the reference chain and of blockkey_chain over the
 * queries' prompts; -1 in chain_ns when they give other keys. */
static void
run_chain(const struct workload *w, struct result *r)
{
    struct blockkey_cfg c = {w->scheme, 0, blockkey_llmd_root("", 0, "m", 1)};
    uint64_t a[BLOCKS], b[BLOCKS], sink = 0;
    double t0;

    for (uint32_t q = 0; q < w->n_queries; q += 97) {
        const uint32_t *t =
            w->tokens + (size_t)(mix(q + 12345) % w->docs) * BLOCKS * BS;

        ref_chain(&c, t, a);
        blockkey_chain(&c, NULL, t, BLOCKS * BS, BS, b);
        if (memcmp(a, b, sizeof a) != 0) {
            r->chain_ns = -1;
            return;
        }
    }
    t0 = now();
    for (uint32_t q = 0; q < w->n_queries; q++) {
        ref_chain(&c,
                  w->tokens + (size_t)(mix(q + 12345) % w->docs) * BLOCKS * BS,
                  a);
        sink += a[BLOCKS - 1];
    }
    r->chain_ref_ns = (now() - t0) / w->n_queries * 1e9;
    t0 = now();
    for (uint32_t q = 0; q < w->n_queries; q++) {
        blockkey_chain(&c, NULL,
                       w->tokens +
                           (size_t)(mix(q + 12345) % w->docs) * BLOCKS * BS,
                       BLOCKS * BS, BS, b);
        sink += b[BLOCKS - 1];
    }
    r->chain_ns = (now() - t0) / w->n_queries * 1e9;
    if (sink == 42)
        printf(" "); /* keeps the loops from being optimised away */
}

/*
 * The same queries as request lines through kvproto_handle, as kvindex
 * serve answers them without the socket: the JSON parse, the match and
 * the reply, CPU time per request.  Each line is first copied into one
 * buffer, as the server's read(2) does, so it is read from the cache.
 */
static void
run_requests(const struct workload *w, struct kv_index *ix,
             const struct index_opts *o, struct result *r)
{
    struct kvproto p;
    struct buf req = {0}, out = {0};
    size_t *at = malloc(((size_t)w->docs + 1) * sizeof *at), longest = 0;
    char *line = NULL;
    double t0;

    if (at == NULL) {
        r->ok = 0;
        return;
    }
    for (uint32_t d = 0; d < w->docs; d++) {
        const uint32_t *t = w->tokens + (size_t)d * BLOCKS * BS;

        at[d] = req.len;
        buf_puts(&req, "{\"op\":\"match\",\"model\":\"m\",\"tokens\":[");
        for (size_t k = 0; k < BLOCKS * BS; k++) {
            if (k > 0)
                buf_putc(&req, ',');
            buf_put_u64(&req, t[k]);
        }
        buf_puts(&req, "]}");
    }
    at[w->docs] = req.len;
    for (uint32_t d = 0; d < w->docs; d++)
        longest = at[d + 1] - at[d] > longest ? at[d + 1] - at[d] : longest;
    if (req.oom || (line = malloc(longest)) == NULL) {
        r->ok = 0;
        goto done;
    }
    kvproto_init(&p, ix, o, NULL, NULL);
    t0 = now();
    for (uint32_t q = 0; q < w->n_queries; q++) {
        uint32_t d = (uint32_t)(mix(q + 12345) % w->docs);

        buf_clear(&out);
        memcpy(line, req.p + at[d], at[d + 1] - at[d]);
        kvproto_handle(&p, line, at[d + 1] - at[d], &out);
        if (out.oom || p.last_ok != 1)
            r->ok = 0;
    }
    r->request_ns_mean = (now() - t0) / w->n_queries * 1e9;
    kvproto_free(&p);
done:
    buf_free(&req);
    buf_free(&out);
    free(line);
    free(at);
}

static void
run_index(const struct workload *w, uint64_t max_blocks, struct result *r)
{
    struct index_opts o = {w->scheme, 0, "", "m", max_blocks};
    struct ix_ctx *x = calloc(1, sizeof *x);
    struct index_match_result mr = {0};
    struct index_stats s;
    double *lat = malloc(w->n_queries * sizeof *lat), t0, c0, depth_sum = 0;
    uint64_t *keys;
    size_t nkeys;
    char err[128];
    long rss0 = rss_bytes();

    x->ix = index_new(&o, err, sizeof err);
    for (uint32_t p = 0; p < w->pods; p++)
        snprintf(x->names[p], sizeof x->names[p], "pod%02d", p);
    kv_event_init(&x->ev, KV_BLOCK_STORED);
    x->ev.present = KV_BIT(KV_F_BLOCK_HASHES) | KV_BIT(KV_F_TOKEN_IDS) |
                    KV_BIT(KV_F_BLOCK_SIZE) | KV_BIT(KV_F_PARENT_BLOCK_HASH);
    x->ev.num[KV_F_BLOCK_SIZE] = BS;
    x->ev.hashes = x->hs;
    r->ok = 1;
    t0 = now();
    r->blocks_applied = feed(w, ix_apply, x, &r->ok);
    r->apply_s = now() - t0;
    index_stats(x->ix, &s);
    r->rss_delta = rss_bytes() - rss0;
    r->entries = s.entries;
    r->keys = s.keys;
    r->bytes_used = s.bytes_used;
    if (w->mem_only) {
        index_free(x->ix);
        free(x);
        free(lat);
        return;
    }

    c0 = now();
    for (uint32_t q = 0; q < w->n_queries; q++) {
        uint32_t d = (uint32_t)(mix(q + 12345) % w->docs);
        struct index_query iq = {
            .tokens = w->tokens + (size_t)d * BLOCKS * BS,
            .n_tokens = BLOCKS * BS,
        };

        t0 = wall();
        index_match(x->ix, &iq, &mr, err, sizeof err);
        lat[q] = wall() - t0;
        depth_sum += mr.n ? mr.m[0].depth : 0;
    }
    r->match_ns_mean = (now() - c0) / w->n_queries * 1e9;
    r->mean_depth = depth_sum / w->n_queries;
    qsort(lat, w->n_queries, sizeof *lat, cmp_double);
    r->match_ns_p50 = lat[w->n_queries / 2] * 1e9;
    r->match_ns_p99 = lat[w->n_queries * 99 / 100] * 1e9;

    /* Precomputed keys: the index's own cost without hashing. */
    {
        struct index_query iq = {.tokens = w->tokens, .n_tokens = BLOCKS * BS};
        uint64_t *all = malloc((size_t)w->docs * BLOCKS * sizeof *all);

        for (uint32_t d = 0; d < w->docs; d++) {
            iq.tokens = w->tokens + (size_t)d * BLOCKS * BS;
            index_keys(x->ix, &iq, &keys, &nkeys, err, sizeof err);
            memcpy(all + (size_t)d * BLOCKS, keys, BLOCKS * sizeof *keys);
            free(keys);
        }
        t0 = now();
        for (uint32_t q = 0; q < w->n_queries; q++) {
            uint32_t d = (uint32_t)(mix(q + 12345) % w->docs);
            struct index_query kq = {.keys = all + (size_t)d * BLOCKS,
                                     .n_keys = BLOCKS};

            index_match(x->ix, &kq, &mr, err, sizeof err);
        }
        r->keys_match_ns_mean = (now() - t0) / w->n_queries * 1e9;
        free(all);
    }
    index_match_result_free(&mr);
    run_requests(w, x->ix, &o, r);
    index_free(x->ix);
    free(x);
    free(lat);
    run_chain(w, r);
}

static void
run_naive(const struct workload *w, struct result *r)
{
    struct nv_ctx x = {calloc(1, sizeof *x.nv),
                       {w->scheme, 0, blockkey_llmd_root("", 0, "m", 1)}};
    double *lat = malloc(w->n_queries * sizeof *lat), t0, c0, depth_sum = 0;
    uint64_t keys[BLOCKS];
    uint32_t depth[MAX_PODS];
    long rss0 = rss_bytes();

    r->ok = 1;
    t0 = now();
    r->blocks_applied = feed(w, nv_apply, &x, &r->ok);
    r->apply_s = now() - t0;
    r->rss_delta = rss_bytes() - rss0;
    r->keys = x.nv->keys.n;
    for (uint32_t p = 0; p < w->pods; p++)
        r->entries += x.nv->maps[p].n;
    c0 = now();
    for (uint32_t q = 0; q < w->n_queries; q++) {
        uint32_t d = (uint32_t)(mix(q + 12345) % w->docs), best = 0;

        t0 = wall();
        blockkey_chain(&x.cfg, NULL, w->tokens + (size_t)d * BLOCKS * BS,
                       BLOCKS * BS, BS, keys);
        naive_match(x.nv, keys, BLOCKS, depth, w->pods);
        lat[q] = wall() - t0;
        for (uint32_t p = 0; p < w->pods; p++)
            best = depth[p] > best ? depth[p] : best;
        depth_sum += best;
    }
    r->match_ns_mean = (now() - c0) / w->n_queries * 1e9;
    r->mean_depth = depth_sum / w->n_queries;
    qsort(lat, w->n_queries, sizeof *lat, cmp_double);
    r->match_ns_p50 = lat[w->n_queries / 2] * 1e9;
    r->match_ns_p99 = lat[w->n_queries * 99 / 100] * 1e9;
    free(lat);
    /* The process exits right after: the baseline's nodes die with it. */
}

/* Runs one measurement in a child so its memory delta is its own. */
static int
measure(const struct workload *w, int naive, uint64_t max_blocks,
        struct result *r)
{
    int fd[2], status;
    pid_t pid;

    if (pipe(fd) != 0)
        return -1;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        struct result cr;

        memset(&cr, 0, sizeof cr);
        close(fd[0]);
        if (naive)
            run_naive(w, &cr);
        else
            run_index(w, max_blocks, &cr);
        if (write(fd[1], &cr, sizeof cr) != (ssize_t)sizeof cr)
            _exit(1);
        _exit(0);
    }
    close(fd[1]);
    memset(r, 0, sizeof *r);
    if (read(fd[0], r, sizeof *r) != (ssize_t)sizeof *r)
        r->ok = 0;
    close(fd[0]);
    waitpid(pid, &status, 0);
    return r->ok ? 0 : -1;
}

static void
report(const char *name, const struct result *r)
{
    printf("  %-22s apply %6.2f M blocks/s (%" PRIu64 " blocks, %.3f s)\n",
           name, r->blocks_applied / r->apply_s / 1e6, r->blocks_applied,
           r->apply_s);
    printf("  %-22s entries %" PRIu64 ", keys %" PRIu64
           ", RSS %.1f B/entry%s\n",
           "", r->entries, r->keys,
           r->entries ? (double)r->rss_delta / (double)r->entries : 0.0,
           r->bytes_used ? "" : " (no self count)");
    if (r->bytes_used)
        printf("  %-22s bytes_used %.1f B/entry\n", "",
               (double)r->bytes_used / (double)r->entries);
    printf("  %-22s match (tokens) mean %.2f us CPU; wall p50 %.2f us, p99 "
           "%.2f us; mean best depth %.1f\n",
           "", r->match_ns_mean / 1e3, r->match_ns_p50 / 1e3,
           r->match_ns_p99 / 1e3, r->mean_depth);
    if (r->keys_match_ns_mean > 0)
        printf("  %-22s match (keys given) mean %.2f us\n", "",
               r->keys_match_ns_mean / 1e3);
    if (r->request_ns_mean > 0)
        printf("  %-22s request (kvproto_handle: parse, match, reply) mean "
               "%.2f us\n",
               "", r->request_ns_mean / 1e3);
    if (r->chain_ns < 0)
        printf("  %-22s MISMATCH: block keys differ from the reference\n", "");
    else if (r->chain_ns > 0)
        printf("  %-22s block keys of a prompt: %.2f us (reference, one "
               "libxxhash call per block: %.2f us; %.2fx as fast)\n",
               "", r->chain_ns / 1e3, r->chain_ref_ns / 1e3,
               r->chain_ref_ns / r->chain_ns);
}

/*
 * Appends one figure to the table `make bench` ends with (bench/summary.py
 * reads the file KVTAP_BENCH_SUMMARY names; ratio < 0 prints as "-").
 */
static void
summary_add(const char *key, const char *now_text, double ratio)
{
    const char *path = getenv("KVTAP_BENCH_SUMMARY");
    FILE *f;

    if (path == NULL || *path == '\0' || (f = fopen(path, "a")) == NULL)
        return;
    if (ratio < 0)
        fprintf(f, "%s\t%s\t-\n", key, now_text);
    else
        fprintf(f, "%s\t%s\t%.4f\n", key, now_text, ratio);
    fclose(f);
}

/*
 * Memory per (pod, block) with nothing shared at about 0.6M, 1M and 1.5M
 * entries (-m): resident (the figure of issue 12) and as the index counts
 * its own tables (index_stats bytes_used).
 */
static int
memory_sizes(struct workload *w)
{
    static const uint32_t per_pod[] = {77, 128, 192};
    int rc = 0;

    w->shared = 0;
    w->mem_only = 1;
    for (size_t i = 0; i < sizeof per_pod / sizeof *per_pod; i++) {
        struct result r;

        w->docs_per_pod = per_pod[i];
        w->docs = per_pod[i] * w->pods;
        w->tokens = malloc((size_t)w->docs * BLOCKS * BS * sizeof *w->tokens);
        if (w->tokens == NULL)
            return 1;
        make_tokens(w);
        if (measure(w, 0, 0, &r) != 0 || r.entries == 0) {
            printf("memory: a run failed\n");
            rc = 1;
        } else {
            printf("memory, nothing shared, %u pods: %8" PRIu64
                   " entries, RSS %.1f B per (pod, block), counted %.1f B\n",
                   w->pods, r.entries, (double)r.rss_delta / (double)r.entries,
                   (double)r.bytes_used / (double)r.entries);
        }
        free(w->tokens);
    }
    return rc;
}

/* The figures of issue 12 this benchmark measures, for one workload. */
static void
summary_figures(int shared, const struct result *ix)
{
    char t[64];

    snprintf(t, sizeof t, "%.2f us", ix->match_ns_mean / 1e3);
    summary_add(shared ? "match_tokens_shared" : "match_tokens_unique", t,
                5000.0 / ix->match_ns_mean);
    if (shared && ix->request_ns_mean > 0) {
        snprintf(t, sizeof t, "%.2f us", ix->request_ns_mean / 1e3);
        summary_add("request_inproc", t, -1);
    }
    if (shared && ix->chain_ns > 0) {
        snprintf(t, sizeof t, "%.2f us (%.2fx ref)", ix->chain_ns / 1e3,
                 ix->chain_ref_ns / ix->chain_ns);
        summary_add("block_keys", t, -1);
    }
    if (!shared) {
        double b = (double)ix->rss_delta / (double)ix->entries;

        snprintf(t, sizeof t, "%.1f B", b);
        summary_add("rss", t, 64.0 / b);
    }
}

int
main(int argc, char **argv)
{
    struct workload w = {0};
    struct result ix, nv, capped;
    int quick = 0, mem = 0, c, rc = 0;
    uint32_t per_pod = 128;

    w.n_queries = 20000;
    w.ev_blocks = 16;
    w.pods = 64;
    w.scheme = BLOCKKEY_AIBRIX;
    while ((c = getopt(argc, argv, "qmd:n:e:p:s:")) != -1) {
        switch (c) {
        case 'q':
            quick = 1;
            break;
        case 'm':
            mem = 1;
            break;
        case 'd':
            per_pod = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'n':
            w.n_queries = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'e':
            w.ev_blocks = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'p':
            w.pods = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 's':
            if (blockkey_scheme_parse(optarg, &w.scheme) != 0) {
                fprintf(stderr, "bench_index: unknown scheme %s\n", optarg);
                return 2;
            }
            break;
        default:
            fprintf(stderr, "usage: bench_index [-q] [-m] [-d DOCS_PER_POD] "
                            "[-n QUERIES] [-e BLOCKS_PER_EVENT] [-p PODS] "
                            "[-s SCHEME]\n");
            return 2;
        }
    }
    if (quick) {
        per_pod = 8;
        w.n_queries = 2000;
    }
    if (per_pod == 0 || w.n_queries == 0 || w.ev_blocks == 0 ||
        w.pods < COPIES || w.pods > MAX_PODS || w.pods % GROUP ||
        w.ev_blocks > MAX_EV_BLOCKS || BLOCKS % w.ev_blocks)
        return 2;
    if (mem)
        return memory_sizes(&w);
    for (int shared = 1; shared >= 0; shared--) {
        w.shared = shared;
        w.docs_per_pod = per_pod;
        w.docs = shared ? per_pod * w.pods / COPIES : per_pod * w.pods;
        w.tokens = malloc((size_t)w.docs * BLOCKS * BS * sizeof *w.tokens);
        if (w.tokens == NULL)
            return 1;
        make_tokens(&w);
        printf("workload %s (%s keys): %d pods, %u documents of %d blocks x "
               "%d tokens in events of %u blocks, %s\n",
               shared ? "shared" : "unique", blockkey_scheme_name(w.scheme),
               w.pods, w.docs, BLOCKS, BS, w.ev_blocks,
               shared ? "each on 4 pods, 4-block prefix shared by 16 documents"
                      : "each on one pod, nothing shared (worst case for "
                        "memory)");
        if (measure(&w, 0, 0, &ix) || measure(&w, 1, 0, &nv)) {
            printf("  a run failed\n");
            rc = 1;
        }
        report("kvtap index", &ix);
        report("naive chained tables", &nv);
        printf(
            "  ratio, index vs naive: apply %.2fx as fast, match %.2fx as "
            "fast, memory %.2fx as small\n",
            (ix.blocks_applied / ix.apply_s) / (nv.blocks_applied / nv.apply_s),
            nv.match_ns_mean / ix.match_ns_mean,
            (double)nv.rss_delta / (double)(ix.rss_delta ? ix.rss_delta : 1));
        printf("  vs targets (<= 1 meets): 2M blocks/s / apply %.2f, match "
               "from tokens / 5 us %.2f, match with keys / 5 us %.2f, RSS per "
               "entry / 64 B %.2f\n",
               2e6 / (ix.blocks_applied / ix.apply_s),
               ix.match_ns_mean / 5000.0, ix.keys_match_ns_mean / 5000.0,
               (double)ix.rss_delta / (double)ix.entries / 64.0);
        if (shared) {
            if (measure(&w, 0, ix.entries / 2, &capped) != 0)
                rc = 1;
            printf("  with --max-blocks %" PRIu64
                   " (LRU on): apply %.2f M blocks/s, match %.2f us mean, "
                   "%.2f us with keys\n",
                   ix.entries / 2, capped.blocks_applied / capped.apply_s / 1e6,
                   capped.match_ns_mean / 1e3, capped.keys_match_ns_mean / 1e3);
        }
        if (ix.entries != nv.entries)
            printf("  note: entry counts differ (%" PRIu64 " vs %" PRIu64 ")\n",
                   ix.entries, nv.entries);
        if (ix.chain_ns < 0)
            rc = 1;
        if (!quick && ix.ok && w.scheme == BLOCKKEY_AIBRIX)
            summary_figures(shared, &ix);
        if (ix.mean_depth != nv.mean_depth) {
            printf("  MISMATCH: mean best depth differs\n");
            rc = 1;
        }
        free(w.tokens);
    }
    return rc;
}

/*
 * index_query.c - questions to the prefix index (docs/kvindex.md#answers):
 * which pods hold the longest prefix of a prompt (index_match), the block
 * keys of a prompt (index_keys), and why a namespace is unknown
 * (index_ns_check).  Its own file because it is the index's read path: it
 * changes nothing but the LRU order and its scratch, and its per-block loop
 * (match_run) uses only the inline helpers of index_impl.h.
 */
#include "index_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- queries ----------------------------------------------------------- */

/*
 * Appends ", NAME" (quoted, the first without the comma) to err at *len
 * while it fits with room for the " and N more" that list_more adds.
 * Returns 0 when it did not fit.
 */
static int
list_name(char *err, size_t errlen, size_t *len, int first, const char *name)
{
    int n;

    if (*len + 24 >= errlen)
        return 0;
    n = snprintf(err + *len, errlen - *len - 20, "%s\"%s\"", first ? "" : ", ",
                 name);
    if (n < 0 || (size_t)n >= errlen - *len - 20) {
        err[*len] = '\0';
        return 0;
    }
    *len += (size_t)n;
    return 1;
}

/* Whether namespace s belongs to the model m[0..mn). */
static int
ns_of_model(const struct ns *s, const char *m, size_t mn)
{
    return s->model_len == mn && memcmp(s->model, m, mn) == 0;
}

/*
 * Lists the distinct models the index knows, or with model set the LoRAs
 * of the model model[0..mn), after the text already in err (len bytes).
 * Returns how many.
 */
static size_t
list_known(const struct kv_index *ix, const char *model, size_t mn, char *err,
           size_t errlen, size_t len)
{
    size_t listed = 0, more = 0;

    for (uint32_t i = 0; i < ix->n_ns; i++) {
        const struct ns *s = &ix->ns[i];
        const char *name = model ? s->lora : s->model;
        int dup = 0;

        if (model != NULL && (!ns_of_model(s, model, mn) || s->lora_len == 0))
            continue;
        for (uint32_t k = 0; k < i && !model && !dup; k++)
            dup = ns_of_model(&ix->ns[k], s->model, s->model_len);
        if (dup)
            continue;
        if (more || !list_name(err, errlen, &len, listed == 0, name))
            more++;
        else
            listed++;
    }
    if (more)
        snprintf(err + len, errlen - len, " and %zu more", more);
    return listed + more;
}

int
index_ns_check(struct kv_index *ix, struct kv_str model, struct kv_str lora,
               char *err, size_t errlen)
{
    const char *m = model.p ? model.p : ix->default_model;
    size_t mn = model.p ? model.n : strlen(ix->default_model);
    size_t ln = lora.p ? lora.n : 0, len;
    int known_model = 0;
    char name[256];

    if (ns_find(ix, m, mn, ln ? lora.p : "", ln) != NONE)
        return 0;
    /* Names are compared whole and shown cut to 200 bytes. */
    snprintf(name, sizeof name, "%.*s", (int)(mn > 200 ? 200 : mn), m);
    for (uint32_t i = 0; i < ix->n_ns && !known_model; i++)
        known_model = ns_of_model(&ix->ns[i], m, mn);
    if (!known_model) {
        snprintf(err, errlen, "unknown model \"%s\"; %s", name,
                 ix->n_ns ? "known models: "
                          : "the index has seen no model yet");
        list_known(ix, NULL, 0, err, errlen, strlen(err));
    } else if (ln == 0) {
        snprintf(
            err, errlen,
            "model \"%s\" has no blocks without a LoRA; its LoRAs: ", name);
        list_known(ix, m, mn, err, errlen, strlen(err));
    } else {
        snprintf(err, errlen, "unknown LoRA \"%.*s\" of model \"%s\"; ",
                 (int)(ln > 200 ? 200 : ln), lora.p, name);
        len = strlen(err);
        snprintf(err + len, errlen - len, "its LoRAs: ");
        if (list_known(ix, m, mn, err, errlen, strlen(err)) == 0)
            snprintf(err + len, errlen - len, "it has blocks of no LoRA");
    }
    return -1;
}

static int
scratch_keys(struct kv_index *ix, size_t n)
{
    if (n <= ix->q_cap)
        return 0;
    uint64_t *k = realloc(ix->qkeys, n * sizeof *k);
    if (k == NULL)
        return -1;
    ix->qkeys = k;
    uint32_t *s = realloc(ix->qslots, n * sizeof *s);
    if (s == NULL)
        return -1;
    ix->qslots = s;
    ix->q_cap = n;
    return 0;
}

static int
scratch_active(struct kv_index *ix)
{
    uint32_t *a;
    uint64_t *k;

    if (ix->n_pods <= ix->active_cap)
        return 0;
    a = realloc(ix->active, (size_t)ix->n_pods * sizeof *a);
    if (a == NULL)
        return -1;
    ix->active = a;
    k = realloc(ix->sortk, (size_t)ix->n_pods * sizeof *k);
    if (k == NULL)
        return -1;
    ix->sortk = k;
    ix->active_cap = ix->n_pods;
    return 0;
}

/* The namespace a query names, or NONE; also returns its names. */
static uint32_t
query_ns(struct kv_index *ix, const struct index_query *q, const char **model,
         size_t *mn, const char **lora, size_t *ln)
{
    if (q->model.p) {
        *model = q->model.p;
        *mn = q->model.n;
    } else {
        *model = ix->default_model;
        *mn = strlen(*model);
    }
    *lora = q->lora_name.p && q->lora_name.n ? q->lora_name.p : "";
    *ln = q->lora_name.p ? q->lora_name.n : 0;
    return ns_find(ix, *model, *mn, *lora, *ln);
}

int
index_keys(struct kv_index *ix, const struct index_query *q, uint64_t **keys,
           size_t *n_keys, char *err, size_t errlen)
{
    const char *model, *lora;
    size_t mn, ln, n;
    uint32_t nsid = query_ns(ix, q, &model, &mn, &lora, &ln);
    uint32_t bs = nsid != NONE ? ix->ns[nsid].block_size : q->block_size;
    struct blockkey_cfg c;
    uint64_t *out;

    *keys = NULL;
    *n_keys = 0;
    /* With a block size given, the keys are a function of the tokens alone
     * and the caller asked for exactly that. */
    if (nsid == NONE && bs == 0) {
        size_t len;

        index_ns_check(ix, q->model, q->lora_name, err, errlen);
        len = strlen(err);
        snprintf(err + len, errlen - len,
                 "; give block_size to compute keys anyway");
        return -1;
    }
    if (nsid != NONE)
        c = ix->ns[nsid].cfg;
    else
        ns_cfg(ix, &c, model, mn, lora, ln);
    n = q->n_tokens / bs;
    out = malloc((n ? n : 1) * sizeof *out);
    if (out == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    *n_keys = blockkey_chain(&c, NULL, q->tokens, q->n_tokens, bs, out);
    *keys = out;
    return 0;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return (x > y) - (x < y);
}

/* Shell sort (Ciura's gaps) for the few dozen answers of a match, where
 * qsort's calls and insertion sort's moves both cost more. */
static void
sort_u64(uint64_t *a, size_t n)
{
    static const size_t gaps[] = {57, 23, 10, 4, 1};

    if (n > 512) {
        qsort(a, n, sizeof *a, cmp_u64);
        return;
    }
    for (size_t g = 0; g < sizeof gaps / sizeof gaps[0]; g++) {
        size_t gap = gaps[g];

        for (size_t i = gap; i < n; i++) {
            uint64_t v = a[i];
            size_t j = i;

            for (; j >= gap && a[j - gap] > v; j -= gap)
                a[j] = a[j - gap];
            a[j] = v;
        }
    }
}

/* Marks the LRU: every entry on a matched run was just used. */
static void
match_touch(struct kv_index *ix, size_t depth)
{
    for (size_t i = 0; i < depth; i++) {
        uint32_t e = ix->ks[ix->qslots[i]].head;

        while (e != NONE) {
            const struct pod *p = &ix->pods[ix->ent[e].pod];
            uint32_t next = ix->ent[e].next_holder;

            if (p->stamp == ix->gen && p->depth > i)
                lru_touch(ix, e);
            e = next;
        }
    }
}

/* The union of media along each matched run: one walk of the holders of
 * every block up to the deepest run. */
static void
match_media(struct kv_index *ix, size_t depth)
{
    for (size_t i = 0; i < depth; i++) {
        for (uint32_t e = ix->ks[ix->qslots[i]].head; e != NONE;
             e = ix->ent[e].next_holder) {
            struct pod *p = &ix->pods[ix->ent[e].pod];

            if (p->stamp == ix->gen && p->depth > i)
                p->media |= ix->ent[e].media;
        }
    }
}

/*
 * The query's keys: given, or hashed from its tokens only as far as the walk
 * gets (plus the prefetch distance), so that a prompt that misses at block
 * 0 costs a few hashes, not all of them.
 */
struct qkeys {
    struct kv_index *ix;
    uint32_t nsid;
    const uint64_t *k;
    uint64_t *buf;  /* where hashed keys go; NULL when given */
    size_t have, n; /* keys ready (their slots prefetched), and all */
    const uint32_t *tokens;
    size_t n_tokens;
    uint32_t bs;
};

/*
 * Blocks probed ahead of the one being looked at, each with two lines:
 * its slot's and the next.  A quarter of the 24-byte slots straddle two
 * lines, and a hit at load 1/2 reads one and a half slots on average, so
 * the next line is read about half the time.  bench/ab's match path (1M
 * entries, nothing shared) measured the second line at 0.79 of the CPU of
 * one line, the slot's own last byte instead at 0.87, and three lines at
 * 0.90; 8 and 32 blocks ahead at 0.81 and 0.86 against 16's 0.79.  With
 * the keys hashed beside the probes, one line costs 1.63 to 1.66 of two,
 * and the second line only for slots that start past byte 16 of theirs
 * (chosen without a branch) 1.08 to 1.10: a probe that waits for memory
 * stalls the hashing behind it, which costs more than the lines saved.
 */
#define PREFETCH_AHEAD 16

/* Where match_walk's keys come from: given, hashed as aibrix blocks of 16
 * tokens, or hashed otherwise.  A constant in each copy of the walk. */
enum { QK_GIVEN, QK_AIBRIX16, QK_HASHED };

/*
 * Readies the next key and prefetches its slot.  A key is hashed here,
 * PREFETCH_AHEAD blocks ahead of its probe and one per block walked, so
 * that the probes run in the shadow of the chain's serial multiplies
 * (about 58 cycles a block) rather than after them.  Hashing batches of 16
 * with blockkey_chain ahead of 16 probes made the two add up: the
 * processor's window holds a few blocks' work, not a batch's.  bench/ab's
 * match from tokens at 1M entries took 0.83 to 0.86 of the CPU of the
 * batches; keeping the next block's lanes one ahead, as blockkey_chain
 * does, made no difference; hashing and probing in groups of 4 took 1.02
 * to 1.12 of one at a time, and 8 or 24 ahead 1.00 to 1.04 of 16.  Inlined
 * by force: GCC kept it out of line, and the call passed the chain
 * through memory.
 */
static inline __attribute__((always_inline)) void
qnext(struct qkeys *q, struct blockkey_step *st, int how)
{
    uint64_t key;

    if (how == QK_GIVEN)
        key = q->k[q->have];
    else if (how == QK_AIBRIX16)
        q->buf[q->have] = key = blockkey_step_next16(st);
    else
        q->buf[q->have] = key = blockkey_step_next(st);
    /* The home slot waits where the probe's result will go. */
    uint32_t home = ks_home(q->ix, q->nsid, key);
    q->ix->qslots[q->have++] = home;
    uintptr_t s = (uintptr_t)&q->ix->ks[home];
    /* As integers: the next line may lie past the table's end. */
    __builtin_prefetch((const void *)s);
    __builtin_prefetch((const void *)(s + 64));
}

/* Records that pod p's run ends at depth d (d > 0). */
static void
match_hit(struct kv_index *ix, uint32_t p, size_t d, size_t *n_active)
{
    ix->pods[p].stamp = ix->gen;
    ix->pods[p].depth = (uint32_t)d;
    ix->active[(*n_active)++] = p;
}

/*
 * Follows every candidate pod's run.  Pods 0..62 cost one AND per block
 * (the key's bitmap); later pods are found by walking the holders of the
 * keys that have any (HI_BIT), and only while one of them is still on its
 * run.  A pod's depth is the block at which it drops out.  Returns the
 * deepest run.
 */
static inline __attribute__((always_inline)) size_t
match_walk(struct kv_index *ix, struct qkeys *q, uint64_t allow, int filtered,
           size_t *n_active, int how)
{
    uint64_t active = allow;
    size_t i, hi = 0, max = 0;
    int hi_pods = ix->n_pods > LO_PODS;
    /* Here rather than in q, so that its fields can live in registers. */
    struct blockkey_step st;

    blockkey_step_init(&st, &ix->ns[q->nsid].cfg, NULL, q->tokens,
                       q->buf ? q->n_tokens : 0, q->bs);
    while (q->have < q->n && q->have < PREFETCH_AHEAD)
        qnext(q, &st, how);
    for (i = 0; i < q->n && (active || hi || (i == 0 && hi_pods)); i++) {
        uint32_t slot;
        uint64_t bits, gone;

        if (q->have < q->n)
            qnext(q, &st, how);
        slot = ks_find_from(ix, ix->qslots[i], q->nsid, q->k[i]);
        bits = slot == NONE ? 0 : ix->ks[slot].pods;
        ix->qslots[i] = slot;
        for (gone = active & ~bits; i > 0 && gone; gone &= gone - 1)
            match_hit(ix, (uint32_t)__builtin_ctzll(gone), i, n_active);
        active &= bits;
        if ((bits & HI_BIT) && (hi || i == 0)) {
            hi = 0;
            for (uint32_t e = ix->ks[slot].head; e != NONE;
                 e = ix->ent[e].next_holder) {
                uint32_t pid = ix->ent[e].pod;
                struct pod *p = &ix->pods[pid];

                if (pid < LO_PODS)
                    break; /* the rest are below: holder_insert */
                if (i == 0) {
                    if (filtered && p->allow != ix->gen)
                        continue;
                    if (p->stamp != ix->gen)
                        match_hit(ix, pid, 0, n_active);
                } else if (p->stamp != ix->gen) {
                    continue;
                }
                if (p->depth == i) {
                    p->depth = (uint32_t)i + 1;
                    hi++;
                }
            }
        } else {
            hi = 0;
        }
        if (active || hi)
            max = i + 1;
    }
    for (; active; active &= active - 1)
        match_hit(ix, (uint32_t)__builtin_ctzll(active), i, n_active);
    return max;
}

/*
 * match_walk, compiled once for each source of keys, so that the walk
 * does not test per block how to get the next key.
 */
static size_t
match_run(struct kv_index *ix, struct qkeys *q, uint64_t allow, int filtered,
          size_t *n_active)
{
    const struct blockkey_cfg *c = &ix->ns[q->nsid].cfg;

    if (q->buf == NULL)
        return match_walk(ix, q, allow, filtered, n_active, QK_GIVEN);
    /* blockkey_step_next16 needs the stepper's lanes: aibrix, and blocks
     * of at least BLOCKKEY_LANES_MIN tokens. */
    _Static_assert(BLOCKKEY_LANES_MIN <= 16, "16 tokens take the lanes");
    if (c->scheme == BLOCKKEY_AIBRIX && q->bs == 16)
        return match_walk(ix, q, allow, filtered, n_active, QK_AIBRIX16);
    return match_walk(ix, q, allow, filtered, n_active, QK_HASHED);
}

/*
 * Rebuilds the answer order of the pods (lorder, by_lorder: fewest blocks,
 * then name order) when a store or removal changed it since the last
 * match.  Uses sortk, which scratch_active made big enough.  A pod's blocks
 * fit 32 bits because entry ids do.
 */
static void
lorder_refresh(struct kv_index *ix)
{
    if (!ix->lorder_stale)
        return;
    for (uint32_t k = 0; k < ix->n_pods; k++)
        ix->sortk[k] = ix->pods[ix->by_order[k]].blocks << 32 | k;
    sort_u64(ix->sortk, ix->n_pods);
    for (uint32_t k = 0; k < ix->n_pods; k++) {
        uint32_t id = ix->by_order[(uint32_t)ix->sortk[k]];

        ix->by_lorder[k] = id;
        ix->lorder[id] = k;
    }
    ix->lorder_stale = 0;
}

/*
 * Puts the n answers (sortk: depth descending, then the answer order of
 * lorder_refresh, one integer per pod) in order.  Most answers share a few
 * depths (a common prefix, then each pod's own run), so when they are many, one
 * walk of the pods in answer order per distinct depth does it without
 * comparisons; with many distinct depths, sort.
 */
static void
match_order(struct kv_index *ix, size_t n, size_t n_active)
{
    uint32_t prev = UINT32_MAX;
    size_t out = 0;

    if (n < 16 || n * 2 < ix->n_pods) {
        sort_u64(ix->sortk, n);
        return;
    }
    for (int pass = 0; pass < 4 && out < n; pass++) {
        uint32_t cur = 0;

        for (size_t k = 0; k < n_active; k++) {
            uint32_t d = ix->pods[ix->active[k]].depth;

            if (d < prev && d > cur)
                cur = d;
        }
        if (cur == 0)
            break;
        for (uint32_t k = 0; k < ix->n_pods; k++) {
            const struct pod *p = &ix->pods[ix->by_lorder[k]];

            if (p->stamp == ix->gen && p->depth == cur)
                ix->sortk[out++] = (uint64_t)(UINT32_MAX - cur) << 32 | k;
        }
        prev = cur;
    }
    if (out == n)
        return;
    n = 0;
    for (size_t k = 0; k < n_active; k++) {
        uint32_t id = ix->active[k];

        if (ix->pods[id].depth)
            ix->sortk[n++] = (uint64_t)(UINT32_MAX - ix->pods[id].depth) << 32 |
                             ix->lorder[id];
    }
    sort_u64(ix->sortk, n);
}

int
index_match(struct kv_index *ix, const struct index_query *q,
            struct index_match_result *out, char *err, size_t errlen)
{
    const char *model, *lora;
    size_t mn, ln, nkeys, n_active = 0, depth, n = 0;
    uint32_t nsid = query_ns(ix, q, &model, &mn, &lora, &ln);
    struct qkeys qk;
    uint64_t allow = 0;

    out->n = 0;
    out->blocks = 0;
    out->block_size = nsid != NONE ? ix->ns[nsid].block_size : q->block_size;
    ix->matches++;
    if (q->keys) {
        nkeys = q->n_keys;
    } else {
        nkeys = out->block_size ? q->n_tokens / out->block_size : 0;
    }
    out->blocks = nkeys;
    if (nsid == NONE)
        return index_ns_check(ix, q->model, q->lora_name, err, errlen);
    if (nkeys == 0 || ix->ks_cap == 0)
        return 0;
    if (scratch_keys(ix, nkeys) || scratch_active(ix)) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    qk = (struct qkeys){.ix = ix,
                        .nsid = nsid,
                        .k = q->keys ? q->keys : ix->qkeys,
                        .buf = q->keys ? NULL : ix->qkeys,
                        .n = nkeys,
                        .tokens = q->tokens,
                        .n_tokens = q->n_tokens,
                        .bs = out->block_size};
    if (++ix->gen == 0) {
        /* The stamp wrapped: old stamps could look current. */
        for (uint32_t p = 0; p < ix->n_pods; p++)
            ix->pods[p].stamp = ix->pods[p].allow = 0;
        ix->gen = 1;
    }
    if (q->pods) {
        for (size_t r = 0; r < q->n_pods; r++) {
            for (uint32_t p = 0; p < ix->n_pods; p++) {
                if (pod_ref_matches(&ix->pods[p], &q->pods[r])) {
                    ix->pods[p].allow = ix->gen;
                    allow |= pod_bit(p) & ~HI_BIT;
                }
            }
        }
    } else {
        allow = ix->n_pods >= LO_PODS ? ~HI_BIT : (1ull << ix->n_pods) - 1;
    }
    lorder_refresh(ix);
    depth = match_run(ix, &qk, allow, q->pods != NULL, &n_active);
    for (size_t i = 0; i < n_active; i++) {
        struct pod *p = &ix->pods[ix->active[i]];

        /* With one medium ever seen, every run is on it. */
        p->media = ix->n_media > 1 ? 0 : 1;
        if (p->depth)
            ix->sortk[n++] = (uint64_t)(UINT32_MAX - p->depth) << 32 |
                             ix->lorder[ix->active[i]];
    }
    if (ix->n_media > 1)
        match_media(ix, depth);
    if (out->cap < n) {
        struct index_match *m = realloc(out->m, n * sizeof *m);

        if (m == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        out->m = m;
        out->cap = n;
    }
    match_order(ix, n, n_active);
    for (size_t i = 0; i < n; i++) {
        uint32_t id = ix->by_lorder[(uint32_t)ix->sortk[i]];
        const struct pod *p = &ix->pods[id];

        out->m[i] = (struct index_match){
            .pod = p->name,
            .pod_id = id,
            .has_rank = p->has_rank,
            .rank = p->rank,
            .depth = p->depth,
            .media = p->media,
            .degraded = p->degraded,
        };
    }
    out->n = n;
    if (ix->max_blocks && depth)
        match_touch(ix, depth);
    return 0;
}

void
index_match_result_free(struct index_match_result *r)
{
    if (r == NULL)
        return;
    free(r->m);
    r->m = NULL;
    r->n = r->cap = 0;
}

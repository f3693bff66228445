/*
 * test_index_memory.c - the prefix index's memory: LRU eviction under
 * --max-blocks, memory returned as entries go, the index's own byte count
 * against the allocator's, and dump -> restore giving the same answers
 * and LRU order (and refusing broken input).
 */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "ixtest.h"
#include "unit.h"

static void
test_lru(void)
{
    struct kv_index *ix = ixtest_new(BLOCKKEY_AIBRIX, 0, 3);
    uint64_t h[] = {1, 2, 3, 4};

    for (int i = 0; i < 3; i++)
        ixtest_store(ix,
                     &(struct ixtest_st){.pod = "a",
                                         .h = &h[i],
                                         .n = 1,
                                         .tok = ixtest_T + 16 * i,
                                         .ntok = 16,
                                         .bs = 16},
                     NULL);
    ixtest_match(ix, NULL, ixtest_T, 16, NULL, 0); /* touches block of hash 1 */
    ixtest_store(ix,
                 &(struct ixtest_st){.pod = "a",
                                     .h = &h[3],
                                     .n = 1,
                                     .tok = ixtest_T + 48,
                                     .ntok = 16,
                                     .bs = 16},
                 NULL);
    CHECK_U64(ixtest_stats(ix).entries, 3, "capped at max_blocks");
    CHECK_U64(ixtest_stats(ix).max_blocks_dropped, 1, "eviction counted");
    CHECK(ixtest_key(ix, "a", 1) != 0, "matched entry kept");
    CHECK(ixtest_key(ix, "a", 2) == 0, "least recently used entry evicted");
    ixtest_store(ix,
                 &(struct ixtest_st){.pod = "a",
                                     .h = &h[2],
                                     .n = 1,
                                     .tok = ixtest_T + 32,
                                     .ntok = 16,
                                     .bs = 16},
                 NULL); /* re-store touches 3 */
    ixtest_store(ix,
                 &(struct ixtest_st){.pod = "a",
                                     .h = &h[1],
                                     .n = 1,
                                     .tok = ixtest_T + 16,
                                     .ntok = 16,
                                     .bs = 16},
                 NULL);
    CHECK(ixtest_key(ix, "a", 1) == 0 && ixtest_key(ix, "a", 3) != 0,
          "re-store counts as use");
    index_free(ix);
}

static void
test_memory_returns(void)
{
    struct kv_index *ix = ixtest_new(BLOCKKEY_DYNAMO, 0, 0);
    uint64_t base, peak, h[128];
    struct index_stats s;

    base = ixtest_stats(ix).bytes_used;
    for (int p = 0; p < 8; p++) {
        char pod[8];

        snprintf(pod, sizeof pod, "p%d", p);
        for (int e = 0; e < 40; e++) {
            for (int i = 0; i < 128; i++)
                h[i] = (uint64_t)e * 1000 + (uint64_t)i + 1;
            ixtest_store(ix,
                         &(struct ixtest_st){.pod = pod,
                                             .h = h,
                                             .n = 128,
                                             .tok = ixtest_T + 16 * e,
                                             .ntok = 2048,
                                             .bs = 16},
                         NULL);
        }
    }
    s = ixtest_stats(ix);
    peak = s.bytes_used;
    CHECK_U64(s.entries, 8 * 40 * 128, "40960 entries");
    CHECK_U64(s.keys, 40 * 128, "shared keys");
    for (int p = 0; p < 8; p++) {
        char pod[8];

        snprintf(pod, sizeof pod, "p%d", p);
        for (int e = 0; e < 40; e++) {
            for (int i = 0; i < 128; i++)
                h[i] = (uint64_t)e * 1000 + (uint64_t)i + 1;
            ixtest_removed(ix, pod, h, 128, NULL);
        }
        if (p == 3) {
            s = ixtest_stats(ix);
            CHECK_U64(s.entries, 4 * 40 * 128, "half removed");
            CHECK(s.bytes_used < peak * 3 / 4, "half the memory returns");
            ixtest_match(ix, NULL, ixtest_T, 16 * 10, NULL, 0);
            CHECK(ixtest_R.n == 4 && ixtest_depth("p7") == 10,
                  "after compaction the rest still matches");
        }
    }
    s = ixtest_stats(ix);
    CHECK_U64(s.entries, 0, "entries back to 0");
    CHECK_U64(s.keys, 0, "keys back to 0");
    CHECK(s.bytes_used < base + 4096, "bytes used back near the start");
    printf("# bytes: start %llu, peak %llu, end %llu\n",
           (unsigned long long)base, (unsigned long long)peak,
           (unsigned long long)s.bytes_used);
    index_free(ix);
}

/*
 * bytes_used against what malloc hands out.  This binary interposes the
 * malloc family (forwarding to glibc's __libc_* entry points) and, while
 * `counting` is set, sums malloc_usable_size of what is allocated and
 * freed.  Built from nothing inside the window, the index must report that
 * sum up to malloc's rounding (usable sizes exceed requests by less than 24
 * bytes, and the index makes fewer than 64 allocations here).  Every table
 * stays under 64 KiB, where the index mallocs instead of mapping pages.
 * mallinfo2 cannot serve: glibc counts chunks parked in its thread cache
 * as in use, so frees inside the window would not show.  AddressSanitizer
 * brings its own malloc, so the check is left out of sanitizer builds.
 */
#if defined(__SANITIZE_ADDRESS__)
#define BYTES_CHECK 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BYTES_CHECK 0
#endif
#endif
#ifndef BYTES_CHECK
#define BYTES_CHECK 1

void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t n);
void __libc_free(void *p);

static int counting;
static int64_t counted;

static void
count(void *p, int sign)
{
    if (counting && p != NULL)
        counted += sign * (int64_t)malloc_usable_size(p);
}

void *
malloc(size_t n)
{
    void *p = __libc_malloc(n);

    count(p, 1);
    return p;
}

void *
calloc(size_t n, size_t size)
{
    void *p = __libc_calloc(n, size);

    count(p, 1);
    return p;
}

void *
realloc(void *p, size_t n)
{
    void *q;

    count(p, -1);
    q = __libc_realloc(p, n);
    if (q == NULL && n > 0)
        count(p, 1); /* the old block lives on */
    count(q, 1);
    return q;
}

void
free(void *p)
{
    count(p, -1);
    __libc_free(p);
}
#endif

static void
test_bytes_vs_allocator(uint64_t max_blocks)
{
#if BYTES_CHECK
    const int64_t tolerance = 64 * 24;
    struct index_match_result mr = {0};
    struct index_query q;
    struct kv_index *ix;
    uint64_t h[64];
    int64_t used;
    char err[128], pod[16];

    memset(&q, 0, sizeof q);
    q.tokens = ixtest_T;
    q.n_tokens = 64 * 16;
    counted = 0;
    counting = 1;
    ix = ixtest_new(BLOCKKEY_AIBRIX, 0, max_blocks);
    for (int p = 0; p < 12; p++) {
        snprintf(pod, sizeof pod, "pod-%d", p);
        for (int i = 0; i < 64; i++)
            h[i] = (uint64_t)p * 1000 + (uint64_t)i + 1;
        ixtest_store(ix,
                     &(struct ixtest_st){.pod = pod,
                                         .has_rank = 1,
                                         .rank = p % 3,
                                         .h = h,
                                         .n = 64,
                                         .tok = ixtest_T,
                                         .ntok = 64 * 16,
                                         .bs = 16},
                     NULL);
        ixtest_store(
            ix,
            &(struct ixtest_st){.pod = pod,
                                .lora = p % 2 ? "adapter-a" : "adapter-b",
                                .h = h,
                                .n = 8,
                                .tok = ixtest_T + 16,
                                .ntok = 8 * 16,
                                .bs = 16,
                                .medium = "CPU",
                                .seq = 1},
            NULL);
    }
    index_match(ix, &q, &mr, err, sizeof err);
    index_match_result_free(&mr);
    used = (int64_t)ixtest_stats(ix).bytes_used;
    counting = 0;
    CHECK(counted >= used && counted - used <= tolerance,
          max_blocks ? "bytes_used is what malloc holds (with an LRU)"
                     : "bytes_used is what malloc holds");
    printf("# bytes_used %lld, malloc holds %lld\n", (long long)used,
           (long long)counted);
    counting = 1;
    index_free(ix);
    counting = 0;
    CHECK(counted == 0, "index_free gives back every byte");
#else
    (void)max_blocks;
    printf("# bytes vs allocator: not checked under AddressSanitizer\n");
#endif
}

/* ---- dump -> restore --------------------------------------------------- */

static struct kv_index *
dump_restore(struct kv_index *src, uint64_t max_blocks, int *ok)
{
    struct kv_index *dst = ixtest_new(BLOCKKEY_AIBRIX, 0, max_blocks);
    struct index_cursor c = {0};
    struct index_dump_entry e;
    char err[128];

    *ok = 1;
    for (size_t i = 0; i < index_ns_count(src); i++) {
        struct index_ns_info ni;

        index_ns_info(src, i, &ni);
        if (index_restore_ns(
                dst, (struct kv_str){ni.model, strlen(ni.model)},
                (struct kv_str){ni.lora_name, strlen(ni.lora_name)},
                ni.block_size, err, sizeof err))
            *ok = 0;
    }
    for (size_t i = 0; i < index_pod_count(src); i++) {
        struct index_pod_info pi;

        index_pod_info(src, i, &pi);
        if (index_restore_pod(dst, &pi, err, sizeof err))
            *ok = 0;
    }
    while (index_dump_next(src, &c, NULL, &e)) {
        /* Media travel by name: bit numbers belong to each index. */
        uint32_t media = 0;

        for (int b = 0; b < 32; b++) {
            const char *name = index_medium_name(src, b);

            if ((e.media >> b & 1) && name)
                media |= 1u << index_medium_intern(dst, name, strlen(name));
        }
        e.media = media;
        if (index_restore_entry(dst, &e, err, sizeof err)) {
            printf("# restore: %s\n", err);
            *ok = 0;
        }
    }
    return dst;
}

static int
same_results(const struct index_match_result *a,
             const struct index_match_result *b, const struct kv_index *ia,
             const struct kv_index *ib)
{
    if (a->n != b->n || a->blocks != b->blocks)
        return 0;
    for (size_t i = 0; i < a->n; i++) {
        const struct index_match *x = &a->m[i], *y = &b->m[i];

        if (strcmp(x->pod, y->pod) || x->has_rank != y->has_rank ||
            x->rank != y->rank || x->depth != y->depth ||
            x->degraded != y->degraded)
            return 0;
        for (int bit = 0; bit < 32; bit++) {
            if (x->media >> bit & 1) {
                const char *n = index_medium_name(ia, bit);
                int found = 0;

                for (int c = 0; c < 32; c++)
                    if ((y->media >> c & 1) && index_medium_name(ib, c) &&
                        strcmp(index_medium_name(ib, c), n) == 0)
                        found = 1;
                if (!found)
                    return 0;
            }
        }
    }
    return 1;
}

static void
test_dump_restore(void)
{
    struct kv_index *a = ixtest_new(BLOCKKEY_AIBRIX, 0, 0), *b;
    struct index_match_result ra = {0}, rb = {0};
    struct index_stats sa, sb;
    uint64_t h[8];
    int ok, same = 1;
    char err[64];
    struct index_cursor c = {0};
    struct index_dump_entry e;
    size_t n_b = 0;

    for (int p = 0; p < 5; p++) {
        char pod[8];

        snprintf(pod, sizeof pod, "p%d", p);
        for (int i = 0; i < 8; i++)
            h[i] = (uint64_t)(p * 100 + i);
        ixtest_store(a,
                     &(struct ixtest_st){.pod = pod,
                                         .has_rank = p & 1,
                                         .rank = p,
                                         .h = h,
                                         .n = (size_t)(2 + p),
                                         .tok = ixtest_T + p % 2,
                                         .ntok = (size_t)(2 + p) * 16,
                                         .bs = 16,
                                         .medium = p == 3 ? "CPU" : NULL},
                     NULL);
        ixtest_store(a,
                     &(struct ixtest_st){.pod = pod,
                                         .has_rank = p & 1,
                                         .rank = p,
                                         .lora = "x",
                                         .h = h + 7,
                                         .n = 1,
                                         .tok = ixtest_T,
                                         .ntok = 4,
                                         .bs = 4},
                     NULL);
    }
    ixtest_record(a, "p2", KV_GAP);
    b = dump_restore(a, 0, &ok);
    CHECK(ok, "restore accepted every dumped item");
    sa = ixtest_stats(a);
    sb = ixtest_stats(b);
    CHECK_U64(sb.entries, sa.entries, "same entries");
    CHECK_U64(sb.keys, sa.keys, "same keys");
    CHECK_U64(sb.namespaces, sa.namespaces, "same namespaces");
    for (int off = 0; off < 2; off++) {
        for (size_t len = 0; len <= 128; len += 8) {
            struct index_query q = {.tokens = ixtest_T + off, .n_tokens = len};
            index_match(a, &q, &ra, err, sizeof err);
            index_match(b, &q, &rb, err, sizeof err);
            same &= same_results(&ra, &rb, a, b);
            q.lora_name = (struct kv_str){"x", 1};
            index_match(a, &q, &ra, err, sizeof err);
            index_match(b, &q, &rb, err, sizeof err);
            same &= same_results(&ra, &rb, a, b);
        }
    }
    CHECK(same, "restored index answers match identically");
    index_match(a, &(struct index_query){.tokens = ixtest_T, .n_tokens = 112},
                &ra, err, sizeof err);
    CHECK(ra.n > 0, "the comparison saw matches");
    while (index_dump_next(a, &c, &(struct index_pod_ref){{"p1", 2}, 1, 1}, &e))
        n_b++;
    CHECK_U64(n_b, 4, "dump filtered to one pod");
    index_free(b);
    index_match_result_free(&ra);
    index_match_result_free(&rb);
    index_free(a);
}

static void
test_restore_lru_order(void)
{
    struct kv_index *a = ixtest_new(BLOCKKEY_AIBRIX, 0, 3), *b;
    uint64_t h[] = {1, 2, 3, 4};
    int ok;

    for (int i = 0; i < 3; i++)
        ixtest_store(a,
                     &(struct ixtest_st){.pod = "a",
                                         .h = &h[i],
                                         .n = 1,
                                         .tok = ixtest_T + 16 * i,
                                         .ntok = 16,
                                         .bs = 16},
                     NULL);
    ixtest_match(a, NULL, ixtest_T, 16, NULL, 0);
    b = dump_restore(a, 3, &ok);
    /* A later batch: one at the restored seq would be taken for a line
     * the snapshot already holds. */
    ixtest_store(b,
                 &(struct ixtest_st){.pod = "a",
                                     .seq = 1,
                                     .h = &h[3],
                                     .n = 1,
                                     .tok = ixtest_T + 48,
                                     .ntok = 16,
                                     .bs = 16},
                 NULL);
    CHECK(ok && ixtest_key(b, "a", 1) != 0 && ixtest_key(b, "a", 2) == 0,
          "dump order preserves LRU order");
    index_free(a);
    index_free(b);
}

static void
test_restore_errors(void)
{
    struct kv_index *ix = ixtest_new(BLOCKKEY_AIBRIX, 0, 0);
    char err[128] = "";
    struct index_dump_entry e = {.pod = "a",
                                 .model = "m",
                                 .lora_name = "",
                                 .block_size = 16,
                                 .engine_hash = 5,
                                 .key = 77,
                                 .media = 1};
    struct index_opts bad = {(enum blockkey_scheme)9, 0, "", "m", 0};

    CHECK(index_restore_entry(ix, &e, err, sizeof err) == 0,
          "restore an entry");
    CHECK(index_restore_entry(ix, &e, err, sizeof err) == 0 &&
              ixtest_stats(ix).entries == 1,
          "restoring it twice is idempotent");
    e.block_size = 32;
    CHECK(index_restore_entry(ix, &e, err, sizeof err) == -1 &&
              strstr(err, "block_size"),
          "a block size that differs from the namespace's");
    e.block_size = 16;
    e.media = 1u << 5;
    CHECK(index_restore_entry(ix, &e, err, sizeof err) == -1,
          "media bits nobody interned");
    e.media = 0;
    CHECK(index_restore_entry(ix, &e, err, sizeof err) == -1, "no media");
    CHECK(index_restore_ns(ix, (struct kv_str){"m", 1}, (struct kv_str){"", 0},
                           0, err, sizeof err) == -1,
          "namespace block size 0");
    CHECK(index_restore_pod(ix, &(struct index_pod_info){.pod = NULL}, err,
                            sizeof err) == -1,
          "pod without a name");
    ixtest_match(ix, NULL, NULL, 0, NULL, 0);
    CHECK(ixtest_R.n == 0 && ixtest_R.blocks == 0, "empty query");
    CHECK(index_match(
              ix, &(struct index_query){.keys = (uint64_t[]){77}, .n_keys = 1},
              &ixtest_R, err, sizeof err) == 0 &&
              ixtest_R.n == 1 && ixtest_R.m[0].depth == 1,
          "a restored key matches by key");
    CHECK(index_new(&bad, err, sizeof err) == NULL && err[0],
          "index_new refuses an unknown scheme");
    index_free(ix);
    index_free(NULL);
}

int
main(void)
{
    ixtest_init();
    test_lru();
    test_memory_returns();
    test_bytes_vs_allocator(0);
    test_bytes_vs_allocator(100000);
    test_dump_restore();
    test_restore_errors();
    test_restore_lru_order();
    ixtest_fini();
    return unit_done();
}

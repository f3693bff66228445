/*
 * bench_ingest.c - NDJSON writer and reader throughput.
 *
 * Builds a deterministic stream shaped like a vLLM prefix-cache workload
 * (mostly BlockStored of 1-8 blocks of 16 tokens, removals, a few clears;
 * about 4.5 events per batch), then measures in one run:
 *   - ndjson_write_batch, events/s (kvsub's output side), with the token
 *     ids' widest path and the portable one (fmt_list_simd);
 *   - ndjson_parse_line over the lines in memory, and jansson's json_loads
 *     of the same lines as the baseline (a DOM parse, what a naive reader
 *     would do), printed as a ratio;
 *   - lines_fill/lines_next + ndjson_parse_line from a file (kvindex's
 *     ingest path without the index);
 *   - the token ids of a 2,048-token match request, jscan_tokens against
 *     jansson's json_loadb of the same array.
 * With a FILE argument the stream is also saved there as NDJSON; with -r
 * FILE only FILE's lines are parsed (bench/60's reader share).
 * Each figure is the best of three runs in CPU time, because the machines
 * are shared.
 */
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fmt.h"
#include "jscan.h"
#include "lines.h"
#include "ndjson_read.h"
#include "ndjson_write.h"

#define N_BATCHES 40000
#define RUNS 3
#define WRITE_SET 64 /* divides N_BATCHES */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t
next_rand(void)
{
    /* xorshift64*: deterministic and fast. */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ull;
}

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct stream {
    struct kv_batch *batches;
    size_t n_batches;
    size_t n_events;
    struct arena arena;
};

/* extra_keys [None] * n for n blocks: a fixarray of nils. */
static const uint8_t extra_nils[] = {0x98, 0xc0, 0xc0, 0xc0, 0xc0,
                                     0xc0, 0xc0, 0xc0, 0xc0};

static uint64_t live[4096];
static size_t n_live;

/* The mix of bench/gen_stream.py (the decode benchmark's stream). */
static void
make_event(struct arena *a, struct kv_event *ev, uint32_t index)
{
    uint64_t r = next_rand() % 1000;

    if (r < 5) {
        kv_event_init(ev, KV_ALL_BLOCKS_CLEARED);
        n_live = 0;
    } else if (r < 560 || n_live == 0) {
        size_t b1 = 1 + next_rand() % 8, b2 = 1 + next_rand() % 8;
        size_t blocks = b1 < b2 ? b1 : b2;
        kv_event_init(ev, KV_BLOCK_STORED);
        ev->present = kv_required_fields(KV_BLOCK_STORED) |
                      KV_BIT(KV_F_LORA_NAME) | KV_BIT(KV_F_EXTRA_KEYS) |
                      KV_BIT(KV_F_GROUP_IDX) | KV_BIT(KV_F_KV_CACHE_SPEC_KIND);
        ev->isnull = KV_BIT(KV_F_LORA_ID) | KV_BIT(KV_F_LORA_NAME);
        if (n_live > 0 && next_rand() % 10 < 7)
            ev->parent.v = live[next_rand() % n_live];
        else
            ev->isnull |= KV_BIT(KV_F_PARENT_BLOCK_HASH);
        ev->hashes = arena_alloc(a, blocks * sizeof *ev->hashes);
        for (size_t k = 0; k < blocks; k++) {
            ev->hashes[k].v = next_rand();
            ev->hashes[k].digest = NULL;
            if (n_live < sizeof live / sizeof live[0])
                live[n_live++] = ev->hashes[k].v;
        }
        ev->n_hashes = blocks;
        ev->tokens = arena_alloc(a, blocks * 16 * sizeof *ev->tokens);
        for (size_t k = 0; k < blocks * 16; k++)
            ev->tokens[k] = (uint32_t)(next_rand() % 150000);
        ev->n_tokens = blocks * 16;
        ev->num[KV_F_BLOCK_SIZE] = 16;
        ev->str[KV_F_MEDIUM].p = "GPU";
        ev->str[KV_F_MEDIUM].n = 3;
        ev->str[KV_F_KV_CACHE_SPEC_KIND].p = "full_attention";
        ev->str[KV_F_KV_CACHE_SPEC_KIND].n = 14;
        ev->raw[KV_F_EXTRA_KEYS].p = arena_alloc(a, 1 + blocks);
        memcpy((uint8_t *)ev->raw[KV_F_EXTRA_KEYS].p, extra_nils, 1 + blocks);
        ((uint8_t *)ev->raw[KV_F_EXTRA_KEYS].p)[0] = (uint8_t)(0x90 | blocks);
        ev->raw[KV_F_EXTRA_KEYS].n = 1 + blocks;
    } else {
        size_t at = next_rand() % n_live;
        kv_event_init(ev, KV_BLOCK_REMOVED);
        ev->present = KV_BIT(KV_F_BLOCK_HASHES) | KV_BIT(KV_F_MEDIUM) |
                      KV_BIT(KV_F_GROUP_IDX);
        ev->hashes = arena_alloc(a, sizeof *ev->hashes);
        ev->hashes[0].v = live[at];
        ev->hashes[0].digest = NULL;
        live[at] = live[--n_live];
        ev->n_hashes = 1;
        ev->str[KV_F_MEDIUM].p = "GPU";
        ev->str[KV_F_MEDIUM].n = 3;
    }
    ev->index = index;
}

static void
make_stream(struct stream *s)
{
    memset(s, 0, sizeof *s);
    s->n_batches = N_BATCHES;
    s->batches = calloc(N_BATCHES, sizeof *s->batches);
    double ts = 1700000000.0;
    for (size_t b = 0; b < N_BATCHES; b++) {
        struct kv_batch *kb = &s->batches[b];
        size_t n = 1 + next_rand() % 8; /* mean 4.5 */
        kb->seq = b;
        ts += 0.001 + (double)(next_rand() % 49000) * 1e-6;
        kb->ts = ts;
        kb->has_ts = 1;
        kb->has_rank = 1;
        kb->rank = 0;
        kb->events = arena_alloc(&s->arena, n * sizeof *kb->events);
        kb->n_events = n;
        for (size_t k = 0; k < n; k++)
            make_event(&s->arena, &kb->events[k], (uint32_t)k);
        s->n_events += n;
    }
}

/*
 * kvindex's ingest path without the index: lines_fill/lines_next and
 * ndjson_parse_line over the file fd, best of RUNS in CPU seconds.  Counts
 * into *bad the lines that are not events, and a run that does not see
 * want lines (want 0: whatever the first run saw).
 */
static double
parse_fd(int fd, struct arena *a, size_t want, size_t *bad)
{
    double best = 1e9;

    for (int run = 0; run < RUNS; run++) {
        struct lines l;
        size_t got = 0;
        lseek(fd, 0, SEEK_SET);
        lines_init(&l, fd, 1 << 20);
        double t0 = now();
        for (;;) {
            const char *ln;
            size_t n;
            int rc;
            while ((rc = lines_next(&l, &ln, &n)) != LINES_NONE) {
                struct kv_env env;
                struct kv_event ev;
                char err[128];
                arena_reset(a);
                if (rc != LINES_OK ||
                    ndjson_parse_line(ln, n, a, &env, &ev, err, sizeof err) !=
                        NDJSON_EVENT)
                    (*bad)++;
                got++;
            }
            if (l.eof || lines_fill(&l) < 0)
                break;
        }
        double dt = now() - t0;
        if (want == 0)
            want = got;
        if (got != want)
            (*bad)++;
        if (dt < best)
            best = dt;
        lines_free(&l);
    }
    return best;
}

/*
 * The token ids of a 2,048-token match request, the bulk of what kvindex's
 * server parses per match (kvproto reads them with jscan_tokens): REQS
 * arrays of ids below 32,000 (as bench/kvindex_gen.py writes them), read
 * with jscan_tokens and, the baseline, with jansson's json_loadb.  Prints
 * the microseconds per array of both, best of RUNS in CPU time.
 */
#define REQS 256
#define REQ_IDS 2048

static int
request_ids(void)
{
    static uint32_t ids[REQ_IDS];
    struct buf text = {0};
    size_t at[REQS + 1];
    double best[2] = {1e9, 1e9}, best_jansson = 1e9;
    const char *simd[2];
    int bad = 0;

    for (size_t r = 0; r < REQS; r++) {
        at[r] = text.len;
        buf_putc(&text, '[');
        for (size_t k = 0; k < REQ_IDS; k++) {
            if (k > 0)
                buf_putc(&text, ',');
            buf_put_u64(&text, next_rand() % 32000);
        }
        buf_putc(&text, ']');
    }
    at[REQS] = text.len;
    if (text.oom)
        return -1;
    /* The instruction set the machine has, then the portable one. */
    for (int portable = 0; portable < 2; portable++) {
        simd[portable] = jscan_tokens_simd(portable);
        for (int run = 0; run < RUNS; run++) {
            double t0 = now();
            for (size_t r = 0; r < REQS; r++) {
                struct jscan j;
                size_t got;
                jscan_init(&j, text.p + at[r] + 1, at[r + 1] - at[r] - 1, NULL,
                           NULL, 0);
                bad |= jscan_tokens(&j, 1, ids, REQ_IDS, &got) != 1 ||
                       got != REQ_IDS || ids[REQ_IDS - 1] >= 32000;
            }
            double dt = now() - t0;
            best[portable] = dt < best[portable] ? dt : best[portable];
        }
    }
    jscan_tokens_simd(0);
    for (int run = 0; run < RUNS; run++) {
        double t0 = now();
        for (size_t r = 0; r < REQS; r++) {
            json_error_t jerr;
            json_t *j = json_loadb(text.p + at[r], at[r + 1] - at[r], 0, &jerr);
            bad |= j == NULL || json_array_size(j) != REQ_IDS;
            json_decref(j);
        }
        double dt = now() - t0;
        best_jansson = dt < best_jansson ? dt : best_jansson;
    }
    buf_free(&text);
    printf("request ids (2,048 a request): jscan_tokens %.2f us (%s), "
           "%.2f us (%s), json_loadb (baseline) %.2f us, ratio %.2fx\n",
           best[0] / REQS * 1e6, simd[0], best[1] / REQS * 1e6, simd[1],
           best_jansson / REQS * 1e6, best_jansson / best[0]);
    return bad ? -1 : 0;
}

/*
 * bench_ingest -r FILE: the parse side of bench/60's ingest alone, one
 * line "parse N events X events per CPU second", so the script can tell
 * the reader's share of kvindex serve's CPU from the index's.
 */
static int
parse_only(const char *path)
{
    struct arena a = {0};
    size_t bad = 0, n = 0;
    char buf[1 << 16];
    ssize_t r;
    int fd = open(path, O_RDONLY);

    if (fd == -1) {
        perror(path);
        return 1;
    }
    while ((r = read(fd, buf, sizeof buf)) > 0)
        for (ssize_t k = 0; k < r; k++)
            n += buf[k] == '\n';
    double t = parse_fd(fd, &a, n, &bad);
    close(fd);
    arena_free(&a);
    printf("parse %zu events %.0f events per CPU second\n", n, (double)n / t);
    if (bad != 0) {
        fprintf(stderr, "bench_ingest: %zu lines failed to parse\n", bad);
        return 1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    struct stream s;
    struct buf out = {0};
    struct ndjson_source src = {{"pod-a", 5}, {NULL, 0}, {NULL, 0}};
    double best_write = 1e9, best_parse = 1e9, best_jansson = 1e9,
           best_file = 1e9;
    size_t bad = 0;

    if (argc == 3 && strcmp(argv[1], "-r") == 0)
        return parse_only(argv[2]);
    /* A mistyped option must not become the name of the file written. */
    if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
        fprintf(stderr, "usage: bench_ingest [FILE] | bench_ingest -r FILE\n");
        return 2;
    }
    make_stream(&s);

    /*
     * The writer's figure.  In kvsub a batch is written right after it was
     * decoded, so its events are in cache, and the buffer goes to write(2)
     * in chunks: here the first WRITE_SET batches are written over and
     * over (their events stay in cache) into a buffer cleared at 256 KiB.
     */
    /* Each run times the token ids' widest path, then the portable one
     * (fmt_list_simd), so both see the same machine. */
    size_t wr_events = 0;
    double best_write_portable = 1e9;
    const char *wr_simd = fmt_list_simd(0);
    for (size_t b = 0; b < WRITE_SET; b++)
        wr_events += s.batches[b].n_events;
    for (int run = 0; run < 2 * RUNS; run++) {
        int portable = run % 2;
        fmt_list_simd(portable);
        double t0 = now();
        for (size_t b = 0; b < N_BATCHES; b++) {
            ndjson_write_batch(&out, &src, &s.batches[b % WRITE_SET]);
            if (out.len >= 256 * 1024)
                buf_clear(&out);
        }
        double dt = now() - t0;
        double *best = portable ? &best_write_portable : &best_write;
        if (dt < *best)
            *best = dt;
    }
    fmt_list_simd(0);
    double write_events = (double)wr_events * (N_BATCHES / WRITE_SET);
    /* The whole stream as text, for the readers. */
    buf_clear(&out);
    for (size_t b = 0; b < s.n_batches; b++)
        ndjson_write_batch(&out, &src, &s.batches[b]);
    if (out.oom) {
        fprintf(stderr, "bench_ingest: out of memory\n");
        return 1;
    }

    /* bench_ingest FILE also saves the stream, for other benchmarks. */
    if (argc > 1) {
        FILE *f = fopen(argv[1], "w");
        if (f == NULL || fwrite(out.p, 1, out.len, f) != out.len ||
            fclose(f) != 0) {
            perror(argv[1]);
            return 1;
        }
    }

    /* Split the output into lines once. */
    size_t n_lines = 0;
    for (size_t k = 0; k < out.len; k++)
        n_lines += out.p[k] == '\n';
    const char **line = malloc(n_lines * sizeof *line);
    size_t *len = malloc(n_lines * sizeof *len);
    size_t at = 0;
    for (size_t k = 0; k < n_lines; k++) {
        const char *nl = memchr(out.p + at, '\n', out.len - at);
        line[k] = out.p + at;
        len[k] = (size_t)(nl - (out.p + at));
        at += len[k] + 1;
    }

    struct arena a = {0};
    for (int run = 0; run < RUNS; run++) {
        double t0 = now();
        for (size_t k = 0; k < n_lines; k++) {
            struct kv_env env;
            struct kv_event ev;
            char err[128];
            arena_reset(&a);
            if (ndjson_parse_line(line[k], len[k], &a, &env, &ev, err,
                                  sizeof err) != NDJSON_EVENT)
                bad++;
        }
        double dt = now() - t0;
        if (dt < best_parse)
            best_parse = dt;
    }

    for (int run = 0; run < RUNS; run++) {
        double t0 = now();
        for (size_t k = 0; k < n_lines; k++) {
            json_error_t jerr;
            json_t *j = json_loadb(line[k], len[k], 0, &jerr);
            if (j == NULL)
                bad++;
            json_decref(j);
        }
        double dt = now() - t0;
        if (dt < best_jansson)
            best_jansson = dt;
    }

    char path[] = "/tmp/bench_ingest.XXXXXX";
    int fd = mkstemp(path);
    if (fd == -1 || write(fd, out.p, out.len) != (ssize_t)out.len) {
        perror("bench_ingest: temp file");
        return 1;
    }
    unlink(path);
    best_file = parse_fd(fd, &a, n_lines, &bad);
    close(fd);

    printf("stream: %zu events in %zu batches, %.1f MB of NDJSON "
           "(%.0f bytes/line)\n",
           s.n_events, s.n_batches, (double)out.len / 1e6,
           (double)out.len / (double)n_lines);
    printf("ndjson_write_batch:            %10.0f events/s (token ids: "
           "%s; scalar %.0f events/s)\n",
           write_events / best_write, wr_simd,
           write_events / best_write_portable);
    printf("ndjson_parse_line (memory):    %10.0f lines/s\n",
           (double)n_lines / best_parse);
    printf("jansson json_loadb (baseline): %10.0f lines/s\n",
           (double)n_lines / best_jansson);
    printf("lines + ndjson_parse_line:     %10.0f lines/s (from a file)\n",
           (double)n_lines / best_file);
    printf("ratio parse/jansson: %.2fx\n", best_jansson / best_parse);
    if (request_ids() != 0)
        bad++;
    if (bad != 0) {
        fprintf(stderr, "bench_ingest: %zu lines failed to parse\n", bad);
        return 1;
    }
    free(line);
    free(len);
    buf_free(&out);
    arena_free(&a);
    arena_free(&s.arena);
    free(s.batches);
    return 0;
}

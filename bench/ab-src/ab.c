/*
 * ab.c - the hot paths of two builds of lib/ timed in one process, for
 * bench/ab: side a is a git revision, side b the working tree, each a
 * whole copy of the library with its symbols prefixed a_ or b_.
 *
 *   ab STREAM ROUNDS [DOCS]
 *
 * STREAM is a recorded stream (bench/gen_stream.py: 4-byte big-endian
 * length, payload) or NDJSON lines (a file that starts with '{', such as
 * bench/kvindex_gen.py's ingest stream), which only the parse and ingest
 * paths take; DOCS (default 8,192) sizes the match path's index
 * (match_set).  Per path, the same items go through side a and side
 * b in alternating chunks (which side goes first alternates too), so that
 * a machine whose speed drifts by half within minutes slows both alike;
 * CPU time of this thread, best of ROUNDS and over all of them.  Paths:
 * wire_decode of the payloads, ndjson_write_batch of decoded batches (the
 * first WRITE_SET, over and over, as bench_ingest does), and
 * ndjson_parse_line of the lines side b wrote (kvsub's lines), and
 * ingest: each line parsed and applied to an index (index_apply), a new
 * index per side and round, which is kvindex's work per line, and
 * index_match of prompts from their tokens.  Each path also checks that
 * both sides give the same result (events, bytes, parse codes, index
 * contents, answers) and says so when they do not, because the harness
 * assumes both sides' structs are laid out alike.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "event.h"
#include "index.h"
#include "ndjson_read.h"
#include "ndjson_write.h"
#include "wire.h"

#define SIDE(p)                                                                \
    int p##wire_decode(const uint8_t *, size_t, const struct wire_opts *,      \
                       struct arena *, struct kv_batch *, char *, size_t);     \
    void p##ndjson_write_batch(struct buf *, const struct ndjson_source *,     \
                               const struct kv_batch *);                       \
    int p##ndjson_parse_line(const char *, size_t, struct arena *,             \
                             struct kv_env *, struct kv_event *, char *,       \
                             size_t);                                          \
    void p##arena_reset(struct arena *);                                       \
    void p##kv_event_init(struct kv_event *, enum kv_type);                    \
    struct kv_index *p##index_new(const struct index_opts *, char *, size_t);  \
    int p##index_apply(struct kv_index *, const struct kv_env *,               \
                       const struct kv_event *, enum index_reject *);          \
    void p##index_stats(const struct kv_index *, struct index_stats *);        \
    void p##index_free(struct kv_index *);                                     \
    int p##index_match(struct kv_index *, const struct index_query *,          \
                       struct index_match_result *, char *, size_t);           \
    void p##index_match_result_free(struct index_match_result *);              \
    void p##arena_free(struct arena *);                                        \
    void p##buf_free(struct buf *);
SIDE(a_)
SIDE(b_)
#undef SIDE

/* Items per turn of one side: small enough to alternate often, large
 * enough that a turn is far longer than reading the clock. */
#define CHUNK 256
/*
 * The writers go over the first WRITE_SET batches again and again: kvsub
 * writes a batch right after decoding it, so its events are in cache, and
 * 20,000 batches decoded beforehand would time cache misses instead.
 */
#define WRITE_SET 64

static double
cpu_now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

struct stream {
    const uint8_t **payload;
    size_t *len, n;
    struct kv_batch *batch; /* decoded by side b, for the writers */
    size_t write_set;       /* WRITE_SET, or n when there are fewer */
    size_t events;
    char **line; /* side b's NDJSON, for the parsers */
    size_t *line_len, n_lines;
};

/*
 * The match path's index, one per side, as bench_index's unique workload
 * builds it: DOCS documents of MATCH_BLOCKS blocks of 16 tokens, each
 * stored on one of 64 pods in events of 16 blocks, nothing shared (1M
 * entries at 8,192 documents).  The prompts are documents, every other one
 * changed from a token picked at random on, so that the match also stops
 * short.
 */
#define MATCH_PODS 64
#define MATCH_BLOCKS 128
#define MATCH_BS 16
#define MATCH_EVENT 16
#define MATCH_PROMPTS 4096

struct match_set {
    struct kv_index *ix[2];
    uint32_t *prompt; /* MATCH_PROMPTS prompts of MATCH_BLOCKS blocks */
};

enum path { DECODE, WRITE, PARSE, INGEST, MATCH };

/* What one side's turns keep between them. */
struct side {
    struct arena arena;
    struct buf out;
    struct kv_index *ix; /* the ingest path's, new each round */
    struct index_match_result mr;
};

static struct match_set match_set;

/* One side's turn over items [from, to) of a path; with check, returns a
 * checksum of what it produced (outside the timed turns). */
static uint64_t
turn(int b, enum path path, const struct stream *s, size_t from, size_t to,
     struct side *sd, int check)
{
    struct arena *arena = &sd->arena;
    struct buf *out = &sd->out;
    uint64_t sum = 0;
    char err[256];

    for (size_t k = from; k < to; k++) {
        if (path == DECODE) {
            struct kv_batch kb;
            struct wire_opts o = {0};
            (b ? b_arena_reset : a_arena_reset)(arena);
            int rc = (b ? b_wire_decode : a_wire_decode)(
                s->payload[k], s->len[k], &o, arena, &kb, err, sizeof err);
            sum += rc == 0 ? kb.n_events : 1000000;
        } else if (path == WRITE) {
            struct ndjson_source src = {
                {"tcp://127.0.0.1:5557", 20}, {NULL, 0}, {NULL, 0}};
            out->len = 0;
            (b ? b_ndjson_write_batch
               : a_ndjson_write_batch)(out, &src, &s->batch[k % s->write_set]);
            for (size_t i = 0; check && i < out->len; i++)
                sum = sum * 31 + (unsigned char)out->p[i];
        } else if (path == MATCH) {
            struct index_query q = {.tokens = match_set.prompt +
                                              k * MATCH_BLOCKS * MATCH_BS,
                                    .n_tokens = MATCH_BLOCKS * MATCH_BS};
            int rc = (b ? b_index_match : a_index_match)(
                match_set.ix[b], &q, &sd->mr, err, sizeof err);
            sum = sum * 31 + (uint64_t)rc + sd->mr.n;
            for (size_t i = 0; check && i < sd->mr.n; i++)
                sum = sum * 31 + sd->mr.m[i].pod_id * 1000 + sd->mr.m[i].depth;
        } else {
            struct kv_env env;
            struct kv_event ev;
            enum index_reject why = INDEX_REJ_NONE;
            (b ? b_arena_reset : a_arena_reset)(arena);
            int rc = (b ? b_ndjson_parse_line : a_ndjson_parse_line)(
                s->line[k], s->line_len[k], arena, &env, &ev, err, sizeof err);
            if (path == INGEST && rc == 0)
                rc = (b ? b_index_apply : a_index_apply)(sd->ix, &env, &ev,
                                                         &why);
            sum = sum * 31 + (uint64_t)rc + ev.n_tokens + ev.n_hashes + why;
        }
    }
    return sum;
}

/* Frees each side's ingest index, first adding what it holds to sum
 * (unless NULL), and with make gives it a new one. */
static void
new_indexes(struct side sd[2], int make, uint64_t sum[2])
{
    struct index_opts o = {.default_model = "m"};
    char err[256];

    for (int b = 0; b < 2; b++) {
        if (sd[b].ix && sum) {
            struct index_stats st;
            (b ? b_index_stats : a_index_stats)(sd[b].ix, &st);
            sum[b] = sum[b] * 31 + st.keys * 7 + st.entries;
        }
        (b ? b_index_free : a_index_free)(sd[b].ix);
        sd[b].ix = NULL;
        if (make) {
            sd[b].ix = (b ? b_index_new : a_index_new)(&o, err, sizeof err);
            if (sd[b].ix == NULL) {
                fprintf(stderr, "ab: index_new: %s\n", err);
                exit(1);
            }
        }
    }
}

static void
compare(const char *name, const char *unit, enum path path,
        const struct stream *s, size_t n, size_t per, int rounds)
{
    struct side sd[2] = {{{0}}, {{0}}};
    double best[2] = {1e30, 1e30}, all[2] = {0, 0};
    uint64_t sum[2] = {0, 0};

    new_indexes(sd, path == INGEST, NULL);
    for (int b = 0; b < 2; b++)
        sum[b] = turn(b, path, s, 0, n, &sd[b], 1);
    new_indexes(sd, path == INGEST, sum);
    for (int r = 0; r < rounds; r++) {
        double t[2] = {0, 0};
        for (size_t from = 0; from < n; from += CHUNK) {
            size_t to = from + CHUNK < n ? from + CHUNK : n;
            for (int i = 0; i < 2; i++) {
                int b = (i + r + (int)(from / CHUNK)) & 1;
                double t0 = cpu_now();
                turn(b, path, s, from, to, &sd[b], 0);
                t[b] += cpu_now() - t0;
            }
        }
        new_indexes(sd, path == INGEST, NULL);
        for (int b = 0; b < 2; b++) {
            all[b] += t[b];
            if (t[b] < best[b])
                best[b] = t[b];
        }
    }
    printf("%-7s rev %6.0f ns/%s  tree %6.0f ns/%s  tree/rev %.3f (best of "
           "%d), %.3f (all)%s\n",
           name, best[0] / (double)per * 1e9, unit, best[1] / (double)per * 1e9,
           unit, best[1] / best[0], rounds, all[1] / all[0],
           sum[0] == sum[1] ? "" : "  OUTPUTS DIFFER");
    new_indexes(sd, 0, NULL);
    a_index_match_result_free(&sd[0].mr);
    b_index_match_result_free(&sd[1].mr);
    a_arena_free(&sd[0].arena);
    b_arena_free(&sd[1].arena);
    a_buf_free(&sd[0].out);
    b_buf_free(&sd[1].out);
}

static uint64_t
mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ x >> 30) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ x >> 27) * 0x94d049bb133111ebull;
    return x ^ x >> 31;
}

/* Builds match_set over docs documents; 0, or -1 when out of memory. */
static int
match_build(size_t docs)
{
    const size_t per_doc = MATCH_BLOCKS * MATCH_BS;
    uint32_t *tok = malloc(docs * per_doc * sizeof *tok);
    struct index_opts o = {.default_model = "m"};
    struct kv_hash hs[MATCH_EVENT];
    struct kv_event ev;
    char name[MATCH_PODS][8], err[256];

    match_set.prompt = malloc(MATCH_PROMPTS * per_doc * sizeof *tok);
    if (tok == NULL || match_set.prompt == NULL)
        return -1;
    for (size_t i = 0; i < docs * per_doc; i++)
        tok[i] = (uint32_t)(mix64(i) % 150000);
    for (size_t p = 0; p < MATCH_PODS; p++)
        snprintf(name[p], sizeof name[p], "pod%02zu", p);
    b_kv_event_init(&ev, KV_BLOCK_STORED);
    ev.present = KV_BIT(KV_F_BLOCK_HASHES) | KV_BIT(KV_F_TOKEN_IDS) |
                 KV_BIT(KV_F_BLOCK_SIZE) | KV_BIT(KV_F_PARENT_BLOCK_HASH);
    ev.num[KV_F_BLOCK_SIZE] = MATCH_BS;
    ev.hashes = hs;
    ev.n_hashes = MATCH_EVENT;
    ev.n_tokens = MATCH_EVENT * MATCH_BS;
    for (int b = 0; b < 2; b++) {
        match_set.ix[b] = (b ? b_index_new : a_index_new)(&o, err, sizeof err);
        if (match_set.ix[b] == NULL)
            return -1;
        for (size_t d = 0; d < docs; d++) {
            struct kv_env env = {.pod = {name[d % MATCH_PODS], 5}};
            enum index_reject why;

            for (size_t e = 0; e < MATCH_BLOCKS; e += MATCH_EVENT) {
                for (size_t i = 0; i < MATCH_EVENT; i++)
                    hs[i] =
                        (struct kv_hash){d * MATCH_BLOCKS + e + i + 1, NULL, 0};
                ev.parent.v = d * MATCH_BLOCKS + e;
                if (e == 0)
                    ev.isnull |= KV_BIT(KV_F_PARENT_BLOCK_HASH);
                else
                    ev.isnull &= ~KV_BIT(KV_F_PARENT_BLOCK_HASH);
                ev.tokens = tok + d * per_doc + e * MATCH_BS;
                if ((b ? b_index_apply : a_index_apply)(match_set.ix[b], &env,
                                                        &ev, &why) != 0)
                    return -1;
            }
        }
    }
    for (size_t q = 0; q < MATCH_PROMPTS; q++) {
        uint32_t *pr = match_set.prompt + q * per_doc;
        size_t cut = q & 1 ? mix64(q + docs) % per_doc : per_doc;

        memcpy(pr, tok + mix64(q) % docs * per_doc, per_doc * sizeof *pr);
        for (size_t i = cut; i < per_doc; i++)
            pr[i] = (uint32_t)(mix64(q * per_doc + i) % 150000 + 150000);
    }
    free(tok);
    return 0;
}

/* Points s->line at the lines of text[0, len), which must outlive s; a
 * last line without its newline is a line too, as kvindex reads it. */
static int
split_lines(struct stream *s, char *text, size_t len)
{
    char *p = text, *end = text + len;

    for (size_t k = 0; k < len; k++)
        s->n_lines += text[k] == '\n';
    if (len > 0 && text[len - 1] != '\n')
        s->n_lines++;
    s->line = malloc((s->n_lines + 1) * sizeof *s->line);
    s->line_len = malloc((s->n_lines + 1) * sizeof *s->line_len);
    if (s->line == NULL || s->line_len == NULL)
        return -1;
    for (size_t k = 0; k < s->n_lines; k++) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            nl = end;
        s->line[k] = p;
        s->line_len[k] = (size_t)(nl - p);
        p = nl + 1;
    }
    return s->n_lines > 0 ? 0 : -1;
}

/* Decodes the recorded stream in data[0, have) into batches (side b's),
 * and has side b write them as the lines the parsers take. */
static int
load_batches(struct stream *s, struct arena *keep, const uint8_t *data,
             size_t have)
{
    struct buf text = {0};
    char err[256];

    for (size_t at = 0; at + 4 <= have;) {
        size_t len = (size_t)data[at] << 24 | (size_t)data[at + 1] << 16 |
                     (size_t)data[at + 2] << 8 | data[at + 3];
        if (len > have - at - 4)
            break;
        if ((s->n & (s->n - 1)) == 0) {
            size_t c = s->n ? 2 * s->n : 1;
            s->payload = realloc(s->payload, c * sizeof *s->payload);
            s->len = realloc(s->len, c * sizeof *s->len);
            s->batch = realloc(s->batch, c * sizeof *s->batch);
            if (!s->payload || !s->len || !s->batch)
                return -1;
        }
        s->payload[s->n] = data + at + 4;
        s->len[s->n] = len;
        struct wire_opts o = {0};
        if (b_wire_decode(s->payload[s->n], len, &o, keep, &s->batch[s->n], err,
                          sizeof err) != 0)
            return -1;
        s->events += s->batch[s->n].n_events;
        s->n++;
        at += 4 + len;
    }
    if (s->n == 0)
        return -1;
    s->write_set = s->n < WRITE_SET ? s->n : WRITE_SET;
    struct ndjson_source src = {
        {"tcp://127.0.0.1:5557", 20}, {NULL, 0}, {NULL, 0}};
    for (size_t k = 0; k < s->n; k++)
        b_ndjson_write_batch(&text, &src, &s->batch[k]);
    if (text.oom)
        return -1;
    return split_lines(s, text.p, text.len);
}

/* Reads STREAM and makes the batches and lines the paths take: NDJSON
 * lines as they are, a recorded stream decoded and written by side b. */
static int
load(const char *path, struct stream *s, struct arena *keep, uint8_t **data)
{
    FILE *f = fopen(path, "rb");
    size_t cap = 0, have = 0, n;

    *data = NULL;
    if (f == NULL)
        return -1;
    do {
        if (have == cap) {
            cap = cap ? 2 * cap : 1 << 20;
            uint8_t *p = realloc(*data, cap);
            if (p == NULL)
                return -1;
            *data = p;
        }
        n = fread(*data + have, 1, cap - have, f);
        have += n;
    } while (n > 0);
    fclose(f);
    memset(s, 0, sizeof *s);
    if (have > 0 && (*data)[0] == '{')
        return split_lines(s, (char *)*data, have);
    return load_batches(s, keep, *data, have);
}

int
main(int argc, char **argv)
{
    struct stream s;
    struct arena keep = {0};
    uint8_t *data;

    if (argc < 3 || argc > 4 || atoi(argv[2]) < 1 ||
        (argc == 4 && atoi(argv[3]) < 1)) {
        fprintf(stderr, "usage: ab STREAM ROUNDS [DOCS]\n");
        return 2;
    }
    if (load(argv[1], &s, &keep, &data) != 0) {
        fprintf(stderr, "ab: %s: cannot read or decode the stream\n", argv[1]);
        return 1;
    }
    int rounds = atoi(argv[2]);
    printf("%zu batches, %zu events, %zu lines; CPU per item, side a = "
           "the revision, b = the working tree\n",
           s.n, s.events, s.n_lines);
    if (s.n > 0) {
        compare("decode", "event", DECODE, &s, s.n, s.events, rounds);
        size_t write_events = 0;
        for (size_t k = 0; k < s.n; k++)
            write_events += s.batch[k % s.write_set].n_events;
        compare("write", "event", WRITE, &s, s.n, write_events, rounds);
    }
    compare("parse", "line", PARSE, &s, s.n_lines, s.n_lines, rounds);
    compare("ingest", "line", INGEST, &s, s.n_lines, s.n_lines, rounds);
    size_t docs = argc == 4 ? (size_t)atoi(argv[3]) : 8192;
    if (match_build(docs) != 0) {
        fprintf(stderr, "ab: cannot build the match path's indexes\n");
        return 1;
    }
    compare("match", "prompt", MATCH, &s, MATCH_PROMPTS, MATCH_PROMPTS, rounds);
    return 0;
}

/*
 * bench_decode.c - events/s of kvsub's decode path on a recorded stream.
 *
 *   bench_decode STREAM [SECONDS]
 *
 * STREAM is bench/gen_stream.py's output (4-byte big-endian length, then a
 * payload, repeated).  Measures, on the same payloads:
 *   decode+ndjson  wire_decode + ndjson_write_batch into a buffer that is
 *                  emptied every 1 MiB, as kvsub's writer does;
 *   decode         wire_decode alone (where the time goes);
 *   unpack floor   msgpack-c's msgpack_unpack_next of each payload, building
 *                  its object tree and nothing else.
 * Each is run for at least SECONDS (default 1) of whole passes, and prints
 * one "NAME EVENTS_PER_SECOND" line for bench/10-decode.sh.
 */
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "event.h"
#include "ndjson_write.h"
#include "wire.h"

struct stream {
    uint8_t *data;
    size_t len;
    const uint8_t **p; /* payload starts */
    size_t *n;         /* payload lengths */
    size_t count;
    size_t events; /* engine events in one pass */
};

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
load(const char *path, struct stream *s)
{
    FILE *f = fopen(path, "rb");
    size_t cap = 0;

    memset(s, 0, sizeof *s);
    if (f == NULL)
        return -1;
    if (fseek(f, 0, SEEK_END) != 0 || (s->len = (size_t)ftell(f)) == 0 ||
        fseek(f, 0, SEEK_SET) != 0 || (s->data = malloc(s->len)) == NULL ||
        fread(s->data, 1, s->len, f) != s->len) {
        fclose(f);
        return -1;
    }
    fclose(f);
    for (size_t off = 0; off + 4 <= s->len;) {
        size_t n = (size_t)s->data[off] << 24 | (size_t)s->data[off + 1] << 16 |
                   (size_t)s->data[off + 2] << 8 | s->data[off + 3];
        off += 4;
        if (n > s->len - off)
            return -1;
        if (s->count == cap) {
            cap = cap ? 2 * cap : 1024;
            s->p = realloc(s->p, cap * sizeof *s->p);
            s->n = realloc(s->n, cap * sizeof *s->n);
            if (s->p == NULL || s->n == NULL)
                return -1;
        }
        s->p[s->count] = s->data + off;
        s->n[s->count++] = n;
        off += n;
    }
    return 0;
}

/*
 * One pass of decode+NDJSON (decode only when out is NULL); returns the
 * engine events seen, or -1.
 */
static long
pass_decode(const struct stream *s, struct arena *a, struct buf *out)
{
    /* kvsub's default: the producer is told by the payload. */
    static const struct wire_opts opts = {.engine = KV_ENGINE_AUTO};
    const struct ndjson_source src = {{"bench", 5}, {NULL, 0}, {NULL, 0}};
    long events = 0;
    char err[128];

    for (size_t i = 0; i < s->count; i++) {
        struct kv_batch b = {0};
        b.seq = i;
        arena_reset(a);
        if (wire_decode(s->p[i], s->n[i], &opts, a, &b, err, sizeof err) != 0)
            return -1;
        if (out != NULL)
            ndjson_write_batch(out, &src, &b);
        for (size_t k = 0; k < b.n_events; k++)
            events += kv_type_is_engine(b.events[k].type);
        if (out != NULL && out->len >= (1u << 20))
            buf_clear(out);
    }
    return out != NULL && out->oom ? -1 : events;
}

/* One pass of msgpack-c's unpacker; returns the events seen, or -1. */
static long
pass_unpack(const struct stream *s, msgpack_unpacked *u)
{
    long events = 0;

    for (size_t i = 0; i < s->count; i++) {
        size_t off = 0;
        if (msgpack_unpack_next(u, (const char *)s->p[i], s->n[i], &off) !=
                MSGPACK_UNPACK_SUCCESS ||
            u->data.type != MSGPACK_OBJECT_ARRAY || u->data.via.array.size < 2)
            return -1;
        events += u->data.via.array.ptr[1].via.array.size;
    }
    return events;
}

int
main(int argc, char **argv)
{
    struct stream s;
    struct arena a = {0};
    struct buf out = {0};
    msgpack_unpacked u;
    double secs = argc > 2 ? atof(argv[2]) : 1.0;
    int rc = 1;

    if (argc < 2 || load(argv[1], &s) == -1 || s.count == 0) {
        fprintf(stderr, "usage: bench_decode STREAM [SECONDS]\n");
        return 2;
    }
    msgpack_unpacked_init(&u);

    /* Warm up (and check the stream decodes) before timing. */
    long per_pass = pass_decode(&s, &a, &out);
    if (per_pass <= 0 || pass_unpack(&s, &u) != per_pass) {
        fprintf(stderr, "bench_decode: stream does not decode\n");
        goto out;
    }

    long events = 0;
    double t0 = now(), t;
    do {
        events += pass_decode(&s, &a, &out);
    } while ((t = now() - t0) < secs);
    printf("decode+ndjson %.0f\n", (double)events / t);

    events = 0;
    t0 = now();
    do {
        events += pass_decode(&s, &a, NULL);
    } while ((t = now() - t0) < secs);
    printf("decode %.0f\n", (double)events / t);

    events = 0;
    t0 = now();
    do {
        events += pass_unpack(&s, &u);
    } while ((t = now() - t0) < secs);
    printf("unpack %.0f\n", (double)events / t);
    printf("events_per_pass %ld\nbytes_per_batch %.0f\n", per_pass,
           (double)(s.len - 4 * s.count) / (double)s.count);
    rc = 0;
out:
    msgpack_unpacked_destroy(&u);
    arena_free(&a);
    buf_free(&out);
    free(s.data);
    free(s.p);
    free(s.n);
    return rc;
}

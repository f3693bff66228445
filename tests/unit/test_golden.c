/*
 * test_golden.c - the payload fixtures of docs/protocol.md#fixtures: payload
 * bytes in, exact NDJSON out.
 *
 * Every tests/data/fixtures/NAME.bin is decoded with wire_decode (seq 7,
 * pod "golden", options from NAME.opts when present) and written with
 * ndjson_write_batch, or, when the envelope is bad, as one decode_error
 * record through ndjson_write_event; the text must equal NAME.ndjson byte for
 * byte.  The expectations are computed independently, in Python, by
 * tests/data/gen_fixtures.py.
 *
 * Only the payload part of the catalogue lives here: F18 (frame level) is
 * covered by the zsock tests, F19 (replay exchanges) by the replay tests and
 * F20 (sequence bookkeeping) by the seqtrack tests.
 *
 * The hostile-size fixtures (F17) must be rejected before any large
 * allocation, so the whole run is under an address-space limit.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "buf.h"
#include "event.h"
#include "ndjson_write.h"
#include "unit.h"
#include "wire.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GOLDEN_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define GOLDEN_ASAN 1
#endif

#define FIXTURES "tests/data/fixtures"
#define MEM_LIMIT (512ul << 20)

/* Reads a whole file into *out (caller frees); returns 0 or -1. */
static int
slurp(const char *path, struct buf *out)
{
    FILE *f = fopen(path, "rb");
    char tmp[65536];
    size_t n;

    if (f == NULL)
        return -1;
    buf_clear(out);
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        buf_put(out, tmp, n);
    int bad = ferror(f) || out->oom;
    fclose(f);
    return bad ? -1 : 0;
}

/*
 * Applies NAME.opts ("engine=sglang", "engine=auto", "max_tokens=N",
 * "max_events=N"); -1 for a line it does not know, so that a fixture never
 * runs with options other than it asks for.
 */
static int
read_opts(const char *path, struct wire_opts *o)
{
    FILE *f = fopen(path, "r");
    char line[128];
    int rc = 0;

    if (f == NULL)
        return errno == ENOENT ? 0 : -1;
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (strcmp(line, "engine=sglang") == 0)
            o->engine = KV_ENGINE_SGLANG;
        else if (strcmp(line, "engine=auto") == 0)
            o->engine = KV_ENGINE_AUTO;
        else if (strncmp(line, "max_tokens=", 11) == 0)
            o->max_tokens = strtoul(line + 11, NULL, 10);
        else if (strncmp(line, "max_events=", 11) == 0)
            o->max_events = strtoul(line + 11, NULL, 10);
        else
            rc = -1;
    }
    fclose(f);
    return rc;
}

static int
by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Shows where two texts first differ, in a TAP comment. */
static void
show_diff(const struct buf *got, const struct buf *want)
{
    size_t i = 0;

    while (i < got->len && i < want->len && got->p[i] == want->p[i])
        i++;
    size_t from = i > 60 ? i - 60 : 0;
    printf("#   first difference at byte %zu\n", i);
    printf("#   got  ...%.*s\n",
           (int)(got->len - from < 160 ? got->len - from : 160), got->p + from);
    printf("#   want ...%.*s\n",
           (int)(want->len - from < 160 ? want->len - from : 160),
           want->p + from);
}

static void
run_fixture(const char *name)
{
    char path[512];
    struct buf bin = {0}, want = {0}, got = {0};
    struct wire_opts opts = {0};
    struct arena arena = {0};
    struct kv_batch b = {0};
    char err[256] = "";
    char what[300];

    snprintf(what, sizeof what, "golden %s", name);
    snprintf(path, sizeof path, FIXTURES "/%s.bin", name);
    int ok = slurp(path, &bin) == 0;
    snprintf(path, sizeof path, FIXTURES "/%s.ndjson", name);
    ok = ok && slurp(path, &want) == 0;
    snprintf(path, sizeof path, FIXTURES "/%s.opts", name);
    ok = ok && read_opts(path, &opts) == 0;
    if (!CHECK(ok, what))
        goto out;

    struct ndjson_source src = {{"golden", 6}, {NULL, 0}, {NULL, 0}};
    b.seq = 7;
    if (wire_decode((const uint8_t *)bin.p, bin.len, &opts, &arena, &b, err,
                    sizeof err) == 0) {
        ndjson_write_batch(&got, &src, &b);
    } else {
        struct kv_env env = {0};
        struct kv_event ev;
        env.pod = src.pod;
        env.has_seq = 1;
        env.seq = 7;
        kv_event_init(&ev, KV_DECODE_ERROR);
        ev.error.p = err;
        ev.error.n = strlen(err);
        ev.bytes = bin.len;
        ndjson_write_event(&got, &env, &ev);
    }
    if (!CHECK(!got.oom && got.len == want.len &&
                   memcmp(got.p, want.p, got.len) == 0,
               what))
        show_diff(&got, &want);
out:
    arena_free(&arena);
    buf_free(&bin);
    buf_free(&want);
    buf_free(&got);
}

int
main(void)
{
#ifndef GOLDEN_ASAN
    struct rlimit rl = {MEM_LIMIT, MEM_LIMIT};
    CHECK(setrlimit(RLIMIT_AS, &rl) == 0, "address space limited to 512 MiB");
#endif
    DIR *d = opendir(FIXTURES);
    char **names = NULL;
    size_t n = 0, cap = 0;

    if (!CHECK(d != NULL, "fixtures directory " FIXTURES))
        return unit_done();
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".bin") != 0)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **p = realloc(names, cap * sizeof *names);
            if (p == NULL)
                break;
            names = p;
        }
        names[n] = strndup(e->d_name, len - 4);
        if (names[n] != NULL)
            n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_name);
    /* The catalogue has 37 payload cases; losing files must not pass. */
    CHECK(n >= 37, "all payload fixtures present");
    for (size_t i = 0; i < n; i++) {
        run_fixture(names[i]);
        free(names[i]);
    }
    free(names);
    return unit_done();
}

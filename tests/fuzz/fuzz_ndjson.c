/*
 * fuzz_ndjson.c - libFuzzer harness for the NDJSON reader
 * (ndjson_parse_line), the input path of kvindex serve and kvpub.
 *
 *   make fuzz FUZZ_SECONDS=60      (every harness; corpus in
 *                                   build/fuzz/corpus/fuzz_ndjson)
 *
 * The input is split into lines, as the tools split their input, and each
 * line is handed over in a buffer of its exact length so that ASan sees any
 * read past it.  A line that parses as an event is written back with
 * ndjson_write_event; that line must parse again, and writing it a second
 * time must give the same bytes (the writer's output is a fixed point of
 * reader + writer, docs/ndjson.md).  ASan/UBSan catch memory errors; the
 * checks below catch logic ones.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "event.h"
#include "ndjson_read.h"
#include "ndjson_write.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Parses line, writes the event it holds to out; returns ndjson_rc. */
static int
parse_and_write(const char *line, size_t len, struct arena *a, struct buf *out)
{
    struct kv_env env;
    struct kv_event ev;
    char err[256];
    int rc;

    memset(&env, 0, sizeof env);
    memset(&ev, 0, sizeof ev);
    rc = ndjson_parse_line(line, len, a, &env, &ev, err, sizeof err);
    if (rc == NDJSON_EVENT) {
        buf_clear(out);
        ndjson_write_event(out, &env, &ev);
        if (out->oom)
            abort();
    }
    return rc;
}

/* Checks one line; aborts when the round trip does not hold. */
static void
check_line(const char *p, size_t n)
{
    static struct arena a1, a2;
    static struct buf first, second;
    char *line = malloc(n ? n : 1);
    size_t len;

    if (line == NULL)
        return;
    memcpy(line, p, n);
    arena_reset(&a1);
    if (parse_and_write(line, n, &a1, &first) != NDJSON_EVENT)
        goto done;
    /* The writer ends the line; the reader takes it without '\n'. */
    if (first.len == 0 || first.p[first.len - 1] != '\n')
        abort();
    len = first.len - 1;
    arena_reset(&a2);
    if (parse_and_write(first.p, len, &a2, &second) != NDJSON_EVENT)
        abort();
    if (second.len != first.len || memcmp(second.p, first.p, first.len) != 0)
        abort();
done:
    free(line);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);

        check_line(p, n);
        p += n + 1;
    }
    return 0;
}

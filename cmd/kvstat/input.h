/*
 * input.h - kvstat's reading of kvtap NDJSON (docs/ndjson.md#reading) from
 * files and stdin into the tracker, in input order or in time order.
 *
 * Time order (route, sharing) holds the whole capture in memory and sorts
 * its lines by ts, stably, so files captured one per pod interleave as the
 * events happened; a line without ts keeps the ts of the line before it.
 */
#ifndef KVSTAT_INPUT_H
#define KVSTAT_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include "track.h"

/* Called for a line that is skipped (name "-" is stdin). */
typedef void input_warn_fn(void *ctx, const char *name, uint64_t lineno,
                           const char *msg);

/* Called now and then while reading: bytes so far and in all (0: unknown). */
typedef void input_progress_fn(void *ctx, uint64_t bytes, uint64_t total,
                               uint64_t events);

struct input_opts {
    char *const *files; /* "-" is stdin; none means stdin */
    size_t n_files;
    int time_order;
    input_warn_fn *warn;
    input_progress_fn *progress; /* NULL: none */
    void *ctx;
};

struct input_stats {
    uint64_t lines, events, bad_lines, bytes;
    int interrupted; /* a signal stopped the reading */
};

/*
 * Reads every input into t.  Returns 0 (also when a signal stopped it:
 * st->interrupted), or -1 with the reason in err (cannot open or read a
 * file, a format version this reader does not know, out of memory).
 */
int input_run(const struct input_opts *o, struct track *t,
              struct input_stats *st, char *err, size_t errlen);

#endif

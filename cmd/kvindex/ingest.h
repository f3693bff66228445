/*
 * ingest.h - kvindex serve's NDJSON input: read, parse, apply.
 *
 * The input (stdin or files, in order) is read in lines of at most
 * --max-line bytes and parsed (ndjson_parse_line); the server's thread
 * alone applies the events to the index, so the index keeps one owner.
 * With a reader thread the reading and parsing run on it, and parsed
 * batches reach the server's thread through a bounded ring; without one
 * both run in the server's turn.  Either way the index ends the same and
 * stderr says the same things in the same order: every diagnostic of the
 * reader travels with the batch, in line order, and is printed where the
 * line is applied (docs/kvindex.md#reading-the-input).
 */
#ifndef KVINDEX_INGEST_H
#define KVINDEX_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "index.h"

struct ingest_opts {
    char **files; /* NULL-terminated; NULL or empty: stdin.  Borrowed. */
    size_t max_line;
    const char *default_model; /* -m; NULL: warn about lines without */
    uint64_t degraded_orphans; /* --degraded-orphans, for its warning */
    int reader_thread;         /* 1: read and parse on a thread */
};

/* What the stats op reports of the input. */
struct ingest_counts {
    uint64_t lines, bad_lines, long_lines;
};

struct ingest;

/*
 * A new input over ix (borrowed; only ingest_turn touches it, on the
 * caller's thread).  o->files must outlive it.  Nothing is read yet.
 * Returns NULL with the reason in err.
 */
struct ingest *ingest_new(const struct ingest_opts *o, struct kv_index *ix,
                          char *err, size_t errlen);

/* Starts the reader thread when o->reader_thread asked for one.  Returns 0,
 * or -1 with the reason in err. */
int ingest_start(struct ingest *g, char *err, size_t errlen);

/*
 * The descriptor the caller's poll loop waits on for POLLIN before the
 * next ingest_turn (the input itself, or the reader thread's wake pipe),
 * or -1 when there is nothing to wait for.
 */
int ingest_pollfd(const struct ingest *g);

/*
 * The input's turn: applies at least one chunk of lines (when one is
 * ready), then more while more is ready and less than slice_us has gone.
 * Returns 1 when more may be ready right away (call again without
 * waiting), 0 when the caller should wait on ingest_pollfd.
 */
int ingest_turn(struct ingest *g, long long slice_us);

/* Every input was read to its end and applied. */
int ingest_done(const struct ingest *g);

/* The input cannot go on (unreadable file, unknown format version): the
 * error was logged; the server exits 1. */
int ingest_fatal(const struct ingest *g);

void ingest_counts(const struct ingest *g, struct ingest_counts *c);

/* Stops and joins the reader thread, closes the input (stdin gets its
 * flags back) and frees everything.  Accepts NULL. */
void ingest_free(struct ingest *g);

#endif

/*
 * sub.h - `kvjs sub`: a JetStream stream back to kvtap NDJSON on stdout,
 * each line with its "js_seq" (docs/cluster.md#reading-the-stream).
 */
#ifndef KVJS_SUB_H
#define KVJS_SUB_H

#include <stdint.h>

#include "conn.h"

/*
 * Reads the stream from o->from (or where o->durable stopped) and writes
 * its lines, acknowledging each message after its lines are flushed.
 * Returns the exit status (0, 1, or 128+signal).
 */
int sub_run(const struct js_opts *o);

/*
 * TIME is "@SECONDS" (Unix time), "-DUR" (that long ago), or
 * "YYYY-MM-DDTHH:MM:SS[.frac][Z]" in UTC.  Returns 0 with *ns
 * (nanoseconds since the epoch), or -1.
 */
int sub_time_parse(const char *s, int64_t *ns);

/* Whether --from FROM is valid.  Returns 0 or -1. */
int sub_from_check(const char *from);

/* `kvjs info`: the stream's state as one JSON line.  Returns 0 or 1. */
int sub_info(const struct js_opts *o);

#endif

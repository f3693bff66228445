/*
 * snap.h - `kvjs snap put|get|info NAME`: index snapshots kept in a
 * JetStream key-value bucket (docs/cluster.md#retention-and-snapshots).
 */
#ifndef KVJS_SNAP_H
#define KVJS_SNAP_H

#include "conn.h"

/*
 * Runs one snap command: "put" stores stdin under name (with o->js_seq
 * when set), "get" writes the stored bytes to stdout after checking their
 * length and hash, "info" prints the manifest.  Returns the exit status.
 */
int snap_run(const struct js_opts *o, const char *cmd, const char *name);

#endif

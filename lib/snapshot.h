/*
 * snapshot.h - the index as NDJSON lines
 * (docs/kvindex-snapshot.md#lines-in-this-order): what kvindex's "dump" op
 * answers and what its --snapshot file holds.  Reads and writes files; never
 * prints.
 */
#ifndef KVTAP_SNAPSHOT_H
#define KVTAP_SNAPSHOT_H

#include <stddef.h>

#include "buf.h"
#include "index.h"

/* Called when the buffer holds a good chunk; returns 0 or -1 to stop. */
typedef int (*snapshot_flush_fn)(void *ctx, struct buf *b);

/*
 * Appends the dump of the pods matching ref (all when NULL): a header line,
 * the namespaces, the pods, the entries least recently used first, then the
 * end line with their count and the XXH64 of the lines before it (each
 * counted with its '\n', in either form).
 * With in_array the lines are JSON values separated by commas (for a reply),
 * else each ends with '\n'.  flush may be NULL (everything stays in b).
 * Returns 0, or -1 when flush failed or b ran out of memory.
 */
int snapshot_dump(const struct kv_index *ix, const struct index_opts *o,
                  const struct index_pod_ref *ref, int in_array, struct buf *b,
                  snapshot_flush_fn flush, void *ctx);

/*
 * Writes the whole index to path (mode 0600) through lib/atomicfile: a crash
 * at any point leaves the previous snapshot intact.  Returns 0, or -1 with
 * the reason in err.  0 with err set means the snapshot is in place but the
 * fsync of its directory failed.
 */
int snapshot_write(const struct kv_index *ix, const struct index_opts *o,
                   const char *path, char *err, size_t errlen);

/*
 * Loads path into ix (which should be empty).  Returns 1 when loaded, 0
 * when path does not exist, -1 with the reason in err (a malformed file, one
 * without a valid end line, or one written under another hash scheme or
 * seed).  1 with err set is a warning: a version 1 file, whose completeness
 * cannot be checked.
 */
int snapshot_load(struct kv_index *ix, const struct index_opts *o,
                  const char *path, char *err, size_t errlen);

#endif

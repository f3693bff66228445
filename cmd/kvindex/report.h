/*
 * report.h - the index's state as JSON for the "stats", "pods" and
 * "lookup" ops.  Each function appends JSON text to a buffer.
 */
#ifndef KVINDEX_REPORT_H
#define KVINDEX_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "index.h"

/* Appends the index's members of the stats object (",\"keys\":N", ...). */
void report_stats(const struct kv_index *ix, struct buf *b);

/* Appends the data object of "pods". */
void report_pods(const struct kv_index *ix, struct buf *b);

/*
 * Appends the data object of "lookup": per engine hash, the pods that map
 * it (only those matching ref, all when ref is NULL).  Returns 0, or -1 when
 * out of memory.
 */
int report_lookup(const struct kv_index *ix, const struct index_pod_ref *ref,
                  const uint64_t *hashes, size_t n, struct buf *b);

/* Appends ["GPU","CPU"] for the media bits. */
void report_media(const struct kv_index *ix, uint32_t media, struct buf *b);

/* Appends a JSON string, or null for NULL. */
void report_str(struct buf *b, const char *s);

#endif

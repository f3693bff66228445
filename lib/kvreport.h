/*
 * kvreport.h - the index's state as JSON text, for kvindex's replies and
 * snapshot lines (kvindex(1), PROTOCOL;
 * docs/kvindex-snapshot.md#lines-in-this-order). Each function appends to a
 * buffer; check b->oom once at the end.  Pods are written only by kvreport_pod
 * and kvreport_pod_state, so that every reply and snapshot names a pod the same
 * way.
 */
#ifndef KVTAP_KVREPORT_H
#define KVTAP_KVREPORT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "index.h"

/* Appends the index's members of the stats object (",\"keys\":N", ...). */
void kvreport_stats(const struct kv_index *ix, struct buf *b);

/*
 * Appends the data object of "pods": each pod's state and, with ages,
 * "last_event_age_s", the seconds from its last event to now (the clock of
 * index_set_clock; null before its first event).
 */
void kvreport_pods(const struct kv_index *ix, int ages, double now,
                   struct buf *b);

/*
 * Appends the data object of "lookup": per engine hash, the pods that map
 * it (only those matching ref, all when ref is NULL; only in the namespace
 * (model, lora) when model is not NULL, lora "" being the base model).
 * Returns 0, or -1 when out of memory.
 */
int kvreport_lookup(const struct kv_index *ix, const struct index_pod_ref *ref,
                    const char *model, const char *lora, const uint64_t *hashes,
                    size_t n, struct buf *b);

/* Appends ["GPU","CPU"] for the media bits. */
void kvreport_media(const struct kv_index *ix, uint32_t media, struct buf *b);

/* Appends a JSON string, or null for NULL. */
void kvreport_str(struct buf *b, const char *s);

/* Appends the members naming a pod: "pod":NAME,"dp_rank":RANK (null when
 * has_rank is 0), without braces or a leading comma. */
void kvreport_pod(struct buf *b, const char *pod, int has_rank, int64_t rank);

/* Appends the members of a pod's state: kvreport_pod's, then ,"blocks",
 * "last_seq", "last_ts", "degraded", "orphans" and "misaligned". */
void kvreport_pod_state(struct buf *b, const struct index_pod_info *pi);

#endif

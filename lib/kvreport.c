/*
 * kvreport.c - stats, pods and lookup answers (kvreport.h).
 */
#include "kvreport.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void
kvreport_str(struct buf *b, const char *s)
{
    if (s == NULL)
        buf_puts(b, "null");
    else
        buf_put_json_str(b, s, strlen(s));
}

void
kvreport_media(const struct kv_index *ix, uint32_t media, struct buf *b)
{
    int first = 1;

    buf_putc(b, '[');
    for (int bit = 0; bit < 32; bit++) {
        if (!(media & (1u << bit)))
            continue;
        if (!first)
            buf_putc(b, ',');
        first = 0;
        kvreport_str(b, index_medium_name(ix, bit));
    }
    buf_putc(b, ']');
}

static void
member_u64(struct buf *b, const char *name, uint64_t v)
{
    buf_puts(b, ",\"");
    buf_puts(b, name);
    buf_puts(b, "\":");
    buf_put_u64(b, v);
}

void
kvreport_pod(struct buf *b, const char *pod, int has_rank, int64_t rank)
{
    buf_puts(b, "\"pod\":");
    kvreport_str(b, pod);
    buf_puts(b, ",\"dp_rank\":");
    if (has_rank)
        buf_put_i64(b, rank);
    else
        buf_puts(b, "null");
}

void
kvreport_pod_state(struct buf *b, const struct index_pod_info *pi)
{
    kvreport_pod(b, pi->pod, pi->has_rank, pi->rank);
    member_u64(b, "blocks", pi->blocks);
    buf_puts(b, ",\"last_seq\":");
    if (pi->has_seq)
        buf_put_u64(b, pi->last_seq);
    else
        buf_puts(b, "null");
    buf_puts(b, ",\"last_ts\":");
    if (pi->has_ts)
        buf_put_double(b, pi->last_ts);
    else
        buf_puts(b, "null");
    buf_puts(b, pi->degraded ? ",\"degraded\":true" : ",\"degraded\":false");
    member_u64(b, "orphans", pi->orphans);
    member_u64(b, "misaligned", pi->misaligned);
}

void
kvreport_stats(const struct kv_index *ix, struct buf *b)
{
    struct index_stats st;

    memset(&st, 0, sizeof st);
    index_stats(ix, &st);
    member_u64(b, "namespaces", st.namespaces);
    member_u64(b, "keys", st.keys);
    member_u64(b, "entries", st.entries);
    member_u64(b, "pods", st.pods);
    member_u64(b, "bytes", st.bytes_used);
    buf_puts(b, ",\"events\":{");
    for (int t = 0; t < KV_TYPE_COUNT; t++) {
        if (t > 0)
            buf_putc(b, ',');
        kvreport_str(b, kv_type_name((enum kv_type)t));
        buf_putc(b, ':');
        buf_put_u64(b, st.applied[t]);
    }
    buf_puts(b, "},\"rejected\":{");
    for (int r = 1; r < INDEX_REJ_COUNT; r++) {
        if (r > 1)
            buf_putc(b, ',');
        kvreport_str(b, index_reject_name((enum index_reject)r));
        buf_putc(b, ':');
        buf_put_u64(b, st.rejected[r]);
    }
    buf_putc(b, '}');
    member_u64(b, "unknown_removed", st.unknown_removed);
    member_u64(b, "max_blocks_dropped", st.max_blocks_dropped);
    member_u64(b, "resume_skipped", st.resume_skipped);
    member_u64(b, "js_skipped", st.js_skipped);
    buf_puts(b, ",\"js_seq\":");
    if (st.has_js_seq)
        buf_put_u64(b, st.js_seq);
    else
        buf_puts(b, "null");
}

/* ,"last_event_age_s":S, to the millisecond (the precision of kvindex's
 * clock), so that it prints as 0.098 rather than 0.09799999999999998. */
static void
put_age(struct buf *b, const struct index_pod_info *pi, double now)
{
    buf_puts(b, ",\"last_event_age_s\":");
    if (!pi->has_event_at)
        buf_puts(b, "null");
    else if (now <= pi->event_at)
        buf_putc(b, '0');
    else
        buf_put_double(b, round((now - pi->event_at) * 1000.0) / 1000.0);
}

void
kvreport_pods(const struct kv_index *ix, int ages, double now, struct buf *b)
{
    size_t n = index_pod_count(ix);
    struct index_pod_info pi;
    int first = 1;

    buf_puts(b, "{\"pods\":[");
    for (size_t i = 0; i < n; i++) {
        if (index_pod_info(ix, i, &pi) < 0)
            continue;
        if (!first)
            buf_putc(b, ',');
        first = 0;
        buf_putc(b, '{');
        kvreport_pod_state(b, &pi);
        if (ages)
            put_age(b, &pi, now);
        buf_putc(b, '}');
    }
    buf_puts(b, "]}");
}

int
kvreport_lookup(const struct kv_index *ix, const struct index_pod_ref *ref,
                const char *model, const char *lora, const uint64_t *hashes,
                size_t n, struct buf *b)
{
    size_t cap = index_pod_count(ix) + 1;
    struct index_lookup_hit *hits = calloc(cap, sizeof *hits);

    if (hits == NULL)
        return -1;
    buf_puts(b, "{\"hashes\":[");
    for (size_t i = 0; i < n; i++) {
        size_t nh = index_lookup(ix, ref, hashes[i], hits, cap);
        if (i > 0)
            buf_putc(b, ',');
        buf_puts(b, "{\"block_hash\":\"");
        buf_put_u64(b, hashes[i]);
        buf_puts(b, "\",\"pods\":[");
        for (size_t k = 0, first = 1; k < nh && k < cap; k++) {
            const struct index_lookup_hit *h = &hits[k];
            if (model != NULL && (strcmp(h->model, model) != 0 ||
                                  strcmp(h->lora_name, lora) != 0))
                continue;
            if (!first)
                buf_putc(b, ',');
            first = 0;
            buf_putc(b, '{');
            kvreport_pod(b, h->pod, h->has_rank, h->rank);
            buf_puts(b, ",\"key\":\"");
            buf_put_u64(b, h->key);
            buf_puts(b, "\",\"model\":");
            kvreport_str(b, h->model);
            buf_puts(b, ",\"lora_name\":");
            kvreport_str(b, h->lora_name);
            buf_puts(b, ",\"media\":");
            kvreport_media(ix, h->media, b);
            buf_putc(b, '}');
        }
        buf_puts(b, "]}");
    }
    buf_puts(b, "]}");
    free(hits);
    return 0;
}

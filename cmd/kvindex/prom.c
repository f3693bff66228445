/*
 * prom.c - the Prometheus text format of kvindex's stats (prom.h).
 *
 * Names and labels follow the Prometheus naming conventions: a kvindex_
 * prefix, base units in the name (_seconds), _total on counters only, and
 * one label per dimension (type, reason, op; pod and dp_rank per pod).
 */
#include "prom.h"

#include <string.h>

/* The stats members, in the order they are written. */
static const struct {
    const char *key, *metric, *type, *label, *help;
} stats_metrics[] = {
    {"uptime_s", "kvindex_uptime_seconds", "gauge", NULL,
     "Seconds since the server started."},
    {"namespaces", "kvindex_namespaces", "gauge", NULL,
     "Namespaces (model, LoRA) known."},
    {"keys", "kvindex_keys", "gauge", NULL,
     "Distinct block keys held by some pod."},
    {"entries", "kvindex_entries", "gauge", NULL, "(pod, block) entries held."},
    {"pods", "kvindex_pods", "gauge", NULL, "Pods known."},
    {"bytes", "kvindex_bytes", "gauge", NULL,
     "Heap bytes of the index tables."},
    {"events", "kvindex_events_applied_total", "counter", "type",
     "Events applied, by type."},
    {"rejected", "kvindex_events_rejected_total", "counter", "reason",
     "Events rejected, by reason."},
    {"unknown_removed", "kvindex_unknown_removed_total", "counter", NULL,
     "Removed block hashes the pod did not hold."},
    {"max_blocks_dropped", "kvindex_max_blocks_dropped_entries_total",
     "counter", NULL,
     "Entries the index dropped itself to stay under --max-blocks (least "
     "recently used first); engine BlockRemoved events are not counted "
     "here."},
    {"resume_skipped", "kvindex_resume_skipped_lines_total", "counter", NULL,
     "Lines a pod restored from the snapshot had applied already."},
    {"js_skipped", "kvindex_js_skipped_lines_total", "counter", NULL,
     "Lines skipped because the snapshot's js_seq covers them."},
    {"js_seq", "kvindex_js_seq", "gauge", NULL,
     "The highest JetStream sequence (js_seq) applied."},
    {"lines", "kvindex_input_lines_total", "counter", NULL,
     "Input lines read."},
    {"bad_lines", "kvindex_input_bad_lines_total", "counter", NULL,
     "Input lines that were not valid events."},
    {"long_lines", "kvindex_input_long_lines_total", "counter", NULL,
     "Input lines longer than --max-line."},
    {"clients", "kvindex_clients", "gauge", NULL, "Clients connected now."},
    {"connections", "kvindex_connections_total", "counter", NULL,
     "Client connections accepted."},
    {"refused_connections", "kvindex_refused_connections_total", "counter",
     NULL,
     "Client connections refused: over --max-clients, or a user not let "
     "in."},
    {"snapshots", "kvindex_snapshots_total", "counter", NULL,
     "Snapshots written."},
    {"snapshot_errors", "kvindex_snapshot_errors_total", "counter", NULL,
     "Snapshots that failed."},
    {"queries", "kvindex_queries_total", "counter", "op",
     "Requests answered, by op."},
    {"query_errors", "kvindex_query_errors_total", "counter", NULL,
     "Requests answered with ok:false."},
};

/* The members of each pod of the pods reply, labelled pod and dp_rank. */
static const struct {
    const char *key, *metric, *type, *help;
} pod_metrics[] = {
    {"blocks", "kvindex_pod_blocks", "gauge",
     "Blocks the pod holds in the index."},
    {"orphans", "kvindex_pod_orphaned_stores_total", "counter",
     "Stores of the pod rejected because it did not hold their parent."},
    {"last_seq", "kvindex_pod_last_seq", "gauge",
     "Seq of the pod's last event."},
    {"last_event_age_s", "kvindex_pod_last_event_age_seconds", "gauge",
     "Seconds since the index applied the pod's last event."},
    {"degraded", "kvindex_pod_degraded", "gauge",
     "1 while the pod's answers may be short: a gap, or more orphaned stores "
     "than --degraded-orphans, since its last clear or restart."},
};

static void
put_header(struct buf *out, const char *metric, const char *type,
           const char *help)
{
    buf_puts(out, "# HELP ");
    buf_puts(out, metric);
    buf_putc(out, ' ');
    buf_puts(out, help);
    buf_puts(out, "\n# TYPE ");
    buf_puts(out, metric);
    buf_putc(out, ' ');
    buf_puts(out, type);
    buf_putc(out, '\n');
}

/* A label value, escaped as the exposition format requires. */
static void
put_label_value(struct buf *out, const char *v)
{
    buf_putc(out, '"');
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            buf_putc(out, '\\');
        if (*v == '\n')
            buf_puts(out, "\\n");
        else
            buf_putc(out, *v);
    }
    buf_putc(out, '"');
}

/* A sample value: numbers as their shortest exact decimal, booleans as 0
 * and 1.  Returns 0 when v is neither (null: no sample). */
static int
put_value(struct buf *out, json_t *v)
{
    if (json_is_boolean(v)) {
        buf_puts(out, json_is_true(v) ? " 1\n" : " 0\n");
        return 1;
    }
    if (!json_is_number(v))
        return 0;
    buf_putc(out, ' ');
    buf_put_double(out, json_number_value(v));
    buf_putc(out, '\n');
    return 1;
}

static void
render_stats(json_t *data, struct buf *out)
{
    for (size_t i = 0; i < sizeof stats_metrics / sizeof stats_metrics[0];
         i++) {
        json_t *v = json_object_get(data, stats_metrics[i].key), *sub;
        const char *k;

        if (v == NULL)
            continue;
        put_header(out, stats_metrics[i].metric, stats_metrics[i].type,
                   stats_metrics[i].help);
        if (stats_metrics[i].label != NULL && json_is_object(v)) {
            json_object_foreach(v, k, sub)
            {
                buf_puts(out, stats_metrics[i].metric);
                buf_putc(out, '{');
                buf_puts(out, stats_metrics[i].label);
                buf_putc(out, '=');
                put_label_value(out, k);
                buf_putc(out, '}');
                put_value(out, sub);
            }
        } else if (json_is_number(v)) {
            buf_puts(out, stats_metrics[i].metric);
            put_value(out, v);
        }
    }
}

/* One pod's sample of a metric, labelled pod and dp_rank ("" when null, the
 * same as no label to Prometheus). */
static void
render_pod(json_t *pod, const char *key, const char *metric, struct buf *out)
{
    json_t *name = json_object_get(pod, "pod");
    json_t *rank = json_object_get(pod, "dp_rank");
    size_t mark = out->len;

    buf_puts(out, metric);
    buf_puts(out, "{pod=");
    put_label_value(out, json_is_string(name) ? json_string_value(name) : "");
    buf_puts(out, ",dp_rank=\"");
    if (json_is_integer(rank))
        buf_put_i64(out, (int64_t)json_integer_value(rank));
    buf_puts(out, "\"}");
    if (!put_value(out, json_object_get(pod, key)))
        out->len = mark;
}

void
prom_render(json_t *stats, json_t *pods, struct buf *out)
{
    json_t *list = json_object_get(pods, "pods"), *pod;
    size_t k;

    render_stats(stats, out);
    for (size_t i = 0; i < sizeof pod_metrics / sizeof pod_metrics[0]; i++) {
        put_header(out, pod_metrics[i].metric, pod_metrics[i].type,
                   pod_metrics[i].help);
        json_array_foreach(list, k, pod)
        {
            render_pod(pod, pod_metrics[i].key, pod_metrics[i].metric, out);
        }
    }
}

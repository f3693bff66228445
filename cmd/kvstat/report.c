/*
 * report.c - see report.h.
 */
#include "report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int
cmp_stream(const void *a, const void *b)
{
    const struct track_stream *x = *(struct track_stream *const *)a;
    const struct track_stream *y = *(struct track_stream *const *)b;
    size_t n = x->pod_len < y->pod_len ? x->pod_len : y->pod_len;
    int c = memcmp(x->pod, y->pod, n);

    if (c != 0)
        return c;
    if (x->pod_len != y->pod_len)
        return x->pod_len < y->pod_len ? -1 : 1;
    if (x->has_rank != y->has_rank)
        return x->has_rank - y->has_rank;
    return (x->rank > y->rank) - (x->rank < y->rank);
}

struct track_stream **
report_sorted(const struct track *t, size_t *n)
{
    struct track_stream **v;

    *n = track_stream_count(t);
    if (*n == 0 || (v = malloc(*n * sizeof *v)) == NULL)
        return NULL;
    for (size_t i = 0; i < *n; i++)
        v[i] = track_stream_at(t, i);
    qsort(v, *n, sizeof *v, cmp_stream);
    return v;
}

static void
put_stream(struct table *tb, const struct track_stream *s)
{
    table_str(tb, s->pod, s->pod_len);
    if (s->has_rank)
        table_i64(tb, s->rank);
    else
        table_null(tb);
}

#define NCOLS(a) (sizeof(a) / sizeof(a)[0])

const char *const report_summary_cols[] = {
    "pod",           "dp_rank",        "events",
    "stored_events", "removed_events", "cleared",
    "blocks_stored", "blocks_removed", "unknown_removed",
    "orphans",       "peak_blocks",    "final_blocks",
    "ts_first",      "ts_last",        "events_per_s",
    "gaps",          "lost_seqs",      "restarts",
    "decode_errors", "skipped",        "ts_backwards"};
const size_t report_summary_ncols = NCOLS(report_summary_cols);

void
report_summary(struct table *tb, struct track_stream **st, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct track_stream *s = st[i];
        double span = s->ts_max - s->ts_min;

        put_stream(tb, s);
        table_u64(tb, s->events);
        table_u64(tb, s->by_type[KV_BLOCK_STORED]);
        table_u64(tb, s->by_type[KV_BLOCK_REMOVED]);
        table_u64(tb, s->by_type[KV_ALL_BLOCKS_CLEARED]);
        table_u64(tb, s->blocks_stored);
        table_u64(tb, s->blocks_removed);
        table_u64(tb, s->unknown_removed);
        table_u64(tb, s->orphans);
        table_u64(tb, s->peak);
        table_u64(tb, s->held);
        if (s->has_ts) {
            table_double(tb, s->ts_min);
            table_double(tb, s->ts_max);
        } else {
            table_null(tb);
            table_null(tb);
        }
        if (s->has_ts && span > 0)
            table_double(tb, (double)s->events / span);
        else
            table_null(tb);
        table_u64(tb, s->by_type[KV_GAP]);
        table_u64(tb, s->lost_seqs);
        table_u64(tb, s->by_type[KV_RESTART]);
        table_u64(tb, s->by_type[KV_DECODE_ERROR]);
        table_u64(tb, s->by_type[KV_SKIPPED]);
        table_u64(tb, s->ts_backwards);
        table_end_row(tb);
    }
}

const char *const report_rate_cols[] = {
    "pod",          "dp_rank",       "t",        "events",
    "stored_per_s", "removed_per_s", "occupancy"};
const size_t report_rate_ncols = NCOLS(report_rate_cols);

void
report_rate(struct table *tb, struct track_stream **st, size_t n, double every)
{
    for (size_t i = 0; i < n; i++) {
        const struct track_stream *s = st[i];

        for (size_t j = 0; j < s->rate_n; j++) {
            const struct track_bucket *b = &s->rate[j];

            put_stream(tb, s);
            table_double(tb, (double)(s->rate_base + (int64_t)j) * every);
            table_u64(tb, b->events);
            table_double(tb, (double)b->stored / every);
            table_double(tb, (double)b->removed / every);
            table_u64(tb, b->occupancy);
            table_end_row(tb);
        }
    }
}

double
report_pct(const double *v, size_t n, unsigned pct)
{
    /* Nearest rank: the smallest value with at least pct% at or below. */
    size_t rank = (n * pct + 99) / 100;

    return v[rank > 0 ? rank - 1 : 0];
}

const char *const report_lifetime_cols[] = {
    "pod",      "dp_rank", "medium", "ended", "censored",
    "negative", "p50",     "p90",    "p99",   "max"};
const size_t report_lifetime_ncols = NCOLS(report_lifetime_cols);

static void
put_medium(struct table *tb, const struct track *t, int m)
{
    const char *name = track_medium_name(t, (size_t)m);

    table_str(tb, name, strlen(name));
}

void
report_lifetime(struct table *tb, const struct track *t,
                struct track_stream **st, size_t n)
{
    static const unsigned pcts[] = {50, 90, 99, 100};

    for (size_t i = 0; i < n; i++) {
        for (int m = 0; m < TRACK_MAX_MEDIA; m++) {
            const struct track_life *l = st[i]->life[m];

            if (l == NULL)
                continue;
            put_stream(tb, st[i]);
            put_medium(tb, t, m);
            table_u64(tb, l->n);
            table_u64(tb, l->censored);
            table_u64(tb, l->negative);
            for (size_t k = 0; k < 4; k++) {
                if (l->n > 0)
                    table_double(tb, report_pct(l->v, l->n, pcts[k]));
                else
                    table_null(tb);
            }
            table_end_row(tb);
        }
    }
}

int
report_bin(double v)
{
    int e;
    double m = frexp(v, &e);

    if (!(v > 0))
        return REPORT_BIN_MIN;
    /* v = m * 2^e with m in [0.5, 1): a power of two sits in bin e - 1. */
    if (m == 0.5)
        e--;
    if (e < REPORT_BIN_MIN)
        return REPORT_BIN_MIN;
    return e > REPORT_BIN_MAX ? REPORT_BIN_MAX : e;
}

const char *const report_hist_cols[] = {"pod", "dp_rank", "medium",
                                        "le",  "count",   "cdf"};
const size_t report_hist_ncols = NCOLS(report_hist_cols);

static void
hist_rows(struct table *tb, const struct track *t, const struct track_stream *s,
          int m, const struct track_life *l)
{
    size_t i = 0, cum = 0;
    int lo = report_bin(l->v[0]), hi = report_bin(l->v[l->n - 1]);

    for (int k = lo; k <= hi; k++) {
        size_t c = 0;

        while (i < l->n && report_bin(l->v[i]) == k) {
            i++;
            c++;
        }
        cum += c;
        put_stream(tb, s);
        put_medium(tb, t, m);
        table_double(tb, ldexp(1, k));
        table_u64(tb, c);
        table_double(tb, (double)cum / (double)l->n);
        table_end_row(tb);
    }
}

void
report_hist(struct table *tb, const struct track *t, struct track_stream **st,
            size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (int m = 0; m < TRACK_MAX_MEDIA; m++) {
            if (st[i]->life[m] != NULL && st[i]->life[m]->n > 0)
                hist_rows(tb, t, st[i], m, st[i]->life[m]);
        }
    }
}

const char *const report_sharing_cols[] = {
    "pod", "dp_rank", "distinct", "computed", "elsewhere", "share", "unkeyed"};
const size_t report_sharing_ncols = NCOLS(report_sharing_cols);

static void
sharing_row(struct table *tb, uint64_t distinct, uint64_t computed,
            uint64_t elsewhere, uint64_t unkeyed)
{
    table_u64(tb, distinct);
    table_u64(tb, computed);
    table_u64(tb, elsewhere);
    if (computed > 0)
        table_double(tb, (double)elsewhere / (double)computed);
    else
        table_null(tb);
    table_u64(tb, unkeyed);
    table_end_row(tb);
}

void
report_sharing(struct table *tb, const struct track *t,
               struct track_stream **st, size_t n)
{
    uint64_t c = 0, e = 0, u = 0, distinct;
    const uint64_t *end, *peak;
    size_t n_max;

    for (size_t i = 0; i < n; i++) {
        put_stream(tb, st[i]);
        sharing_row(tb, st[i]->distinct, st[i]->computed, st[i]->elsewhere,
                    st[i]->unkeyed);
        c += st[i]->computed;
        e += st[i]->elsewhere;
        u += st[i]->unkeyed;
    }
    /* The whole capture: pod and dp_rank null. */
    track_holders(t, &distinct, &end, &peak, &n_max);
    table_null(tb);
    table_null(tb);
    sharing_row(tb, distinct, c, e, u);
}

const char *const report_holders_cols[] = {"holders", "blocks_end",
                                           "blocks_peak"};
const size_t report_holders_ncols = NCOLS(report_holders_cols);

void
report_holders(struct table *tb, const struct track *t)
{
    uint64_t distinct;
    const uint64_t *end, *peak;
    size_t n_max;

    track_holders(t, &distinct, &end, &peak, &n_max);
    for (size_t k = 1; k <= n_max; k++) {
        table_u64(tb, k);
        table_u64(tb, end[k]);
        table_u64(tb, peak[k]);
        table_end_row(tb);
    }
}

const char *const report_route_cols[] = {"policy", "requests", "blocks",
                                         "hits",   "hit_rate", "computed"};
const size_t report_route_ncols = NCOLS(report_route_cols);

void
report_route(struct table *tb, const struct route_result *res, int external)
{
    for (int p = external ? ROUTE_PREFIX : 0; p < ROUTE_POLICY_COUNT; p++) {
        const char *name = route_policy_name((enum route_policy)p);

        table_str(tb, name, strlen(name));
        table_u64(tb, res[p].requests);
        table_u64(tb, res[p].blocks);
        table_u64(tb, res[p].hits);
        if (res[p].blocks > 0)
            table_double(tb, (double)res[p].hits / (double)res[p].blocks);
        else
            table_null(tb);
        table_u64(tb, res[p].blocks - res[p].hits);
        table_end_row(tb);
    }
}

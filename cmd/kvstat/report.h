/*
 * report.h - the rows each kvstat subcommand prints, from a finished
 * tracker (track_finish called).  Streams come out sorted by pod, then
 * dp_rank with null first, so the output does not depend on input order.
 */
#ifndef KVSTAT_REPORT_H
#define KVSTAT_REPORT_H

#include <stddef.h>

#include "route.h"
#include "table.h"
#include "track.h"

/*
 * The tracker's streams in report order (caller frees the array; the
 * streams stay the tracker's).  NULL when out of memory or when there are
 * none (*n says which).
 */
struct track_stream **report_sorted(const struct track *t, size_t *n);

/* The column names of each table.  Static storage. */
extern const char *const report_summary_cols[];
extern const size_t report_summary_ncols;
extern const char *const report_rate_cols[];
extern const size_t report_rate_ncols;
extern const char *const report_lifetime_cols[];
extern const size_t report_lifetime_ncols;
extern const char *const report_hist_cols[];
extern const size_t report_hist_ncols;
extern const char *const report_sharing_cols[];
extern const size_t report_sharing_ncols;
extern const char *const report_holders_cols[];
extern const size_t report_holders_ncols;
extern const char *const report_route_cols[];
extern const size_t report_route_ncols;

void report_summary(struct table *tb, struct track_stream **st, size_t n);
void report_rate(struct table *tb, struct track_stream **st, size_t n,
                 double every);
void report_lifetime(struct table *tb, const struct track *t,
                     struct track_stream **st, size_t n);
void report_hist(struct table *tb, const struct track *t,
                 struct track_stream **st, size_t n);
void report_sharing(struct table *tb, const struct track *t,
                    struct track_stream **st, size_t n);
void report_holders(struct table *tb, const struct track *t);
/* external: prompts came from a request log, no capture rows. */
void report_route(struct table *tb, const struct route_result *res,
                  int external);

/*
 * The histogram bin of a lifetime: the smallest k in [REPORT_BIN_MIN,
 * REPORT_BIN_MAX] with v <= 2^k seconds.
 */
#define REPORT_BIN_MIN (-10)
#define REPORT_BIN_MAX 40
int report_bin(double v);

/* The nearest-rank percentile pct (1..100) of n sorted values. */
double report_pct(const double *v, size_t n, unsigned pct);

#endif

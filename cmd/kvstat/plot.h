/*
 * plot.h - kvstat's figures, drawn by gnuplot (Debian gnuplot-nox): the
 * data and a script go to a temporary directory, gnuplot runs on them, and
 * the directory is removed.  gnuplot's own messages reach stderr.
 */
#ifndef KVSTAT_PLOT_H
#define KVSTAT_PLOT_H

#include <stddef.h>

#include "route.h"
#include "track.h"

enum plot_kind {
    PLOT_RATE,     /* blocks stored/s and occupancy over time, per pod */
    PLOT_LIFETIME, /* CDF of lifetimes per (pod, medium), log time axis */
    PLOT_SHARING,  /* bars: keys held by 1, 2, ... pods, at end and peak */
    PLOT_ROUTE     /* bars: hit rate per routing policy */
};

/* 0 for a .png path, 1 for .svg, -1 otherwise. */
int plot_format(const char *path);

/*
 * Draws the figure of kind into path from a finished tracker (every: the
 * rate interval; res: route's results, for PLOT_ROUTE).  Returns 0, or -1
 * with the reason in err (no gnuplot, gnuplot failed, I/O error).
 */
int plot_draw(const char *path, enum plot_kind kind, const struct track *t,
              double every, const struct route_result *res, char *err,
              size_t errlen);

#endif

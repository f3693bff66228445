/*
 * top.h - kvstat top: a live view of a pipeline.  Reads kvtap NDJSON from
 * a descriptor as it arrives and redraws, once a second, a table of the
 * streams seen: events/s over the last second, occupancy, gaps, restarts
 * and how long ago each was last heard from.
 */
#ifndef KVSTAT_TOP_H
#define KVSTAT_TOP_H

#include "cli.h"

/*
 * Runs until end of input or a signal, drawing screens into out (flushed
 * after each).  Returns 0, or -1 with the reason in err.  *interrupted is
 * set when a signal ended it.
 */
int top_run(int fd, struct cli_out *out, int *interrupted, char *err,
            size_t errlen);

#endif

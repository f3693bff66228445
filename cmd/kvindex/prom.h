/*
 * prom.h - `kvindex stats --prom`: the stats and pods replies in the
 * Prometheus text exposition format, for node_exporter's textfile collector
 * (docs/kvindex.md#monitoring).
 */
#ifndef KVINDEX_PROM_H
#define KVINDEX_PROM_H

#include <jansson.h>

#include "buf.h"

/*
 * Appends the metrics of stats (the data object of a stats reply) and, per
 * pod, of pods (the data object of a pods reply) to out.  Check out->oom.
 */
void prom_render(json_t *stats, json_t *pods, struct buf *out);

#endif

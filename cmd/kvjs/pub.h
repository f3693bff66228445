/*
 * pub.h - `kvjs pub`: kvtap NDJSON on stdin into a JetStream stream, one
 * message per engine batch (docs/cluster.md#subjects-and-headers).
 */
#ifndef KVJS_PUB_H
#define KVJS_PUB_H

#include "conn.h"

/*
 * Runs the publisher until end of input or a signal, and waits for every
 * batch's acknowledgment.  Returns the exit status: 0 when every batch was
 * acknowledged, 1 otherwise (each unacknowledged batch is logged), or
 * 128+signal.
 */
int pub_run(const struct js_opts *o);

#endif

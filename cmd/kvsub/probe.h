/*
 * probe.h - kvsub --probe: does every endpoint answer?  (kcat -L)
 */
#ifndef KVSUB_PROBE_H
#define KVSUB_PROBE_H

#include "run.h"

/*
 * Checks each source's PUB endpoint (a ZeroMQ peer completes the
 * handshake), replay endpoint (an end marker comes back for a request past
 * every seq) and snapshot endpoint (a snapshot comes back), waiting up to
 * o->replay_timeout_ms for each, and prints one NDJSON line per endpoint on
 * stdout.  Returns the exit status: 0 when every endpoint answered, else 1.
 */
int kvsub_probe(const struct kvsub_opts *o);

#endif

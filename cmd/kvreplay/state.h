/*
 * state.h - kvreplay's --state file: one line per rank, "SEQ ts=TS"
 * (docs/cli.md#kvreplay-state-and-restarts), guarded by a lock so that two
 * overlapping runs (cron) never print the same batches twice, and prepared
 * for writing before anything is printed, so that a state that cannot be
 * written fails the run before it prints batches it could not record.
 *
 * Use:
 *     struct state_file sf;
 *     state_init(&sf);
 *     state_lock(&sf, path, wait_ms, err, errlen);    (-2: held by another)
 *     state_read(&sf, st, n, err, errlen);
 *     state_prepare(&sf, err, errlen);
 *     ... fetch and print ...
 *     state_write(&sf, st, n, err, errlen);           (or skip it)
 *     state_close(&sf);                               (always)
 */
#ifndef KVREPLAY_STATE_H
#define KVREPLAY_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "atomicfile.h"

/* One rank's line: the next seq, and the ts of the batch just before it
 * when known. */
struct rank_state {
    int have; /* the line was in the file */
    uint64_t seq;
    int has_ts;
    double ts;
};

struct state_file {
    const char *path;    /* borrowed from the caller until state_close */
    int lock_fd;         /* PATH.lock, flock'ed; -1 when not held */
    struct atomicfile f; /* the next state, open after state_prepare */
};

void state_init(struct state_file *sf);

/*
 * Takes an exclusive flock on PATH.lock (created 0600 if missing, never
 * through a symlink), retrying for up to wait_ms (0: once).  The state file
 * itself cannot carry the lock: every write renames a new file over it.
 * Returns 0; -2 when another process still holds the lock after wait_ms
 * (err says so); -1 on any other failure or a signal (err).
 */
int state_lock(struct state_file *sf, const char *path, uint64_t wait_ms,
               char *err, size_t errlen);

/*
 * Reads up to n ranks' states, one per line, into st (zeroed by the
 * caller).  A missing file means "start from 0"; an empty one is an error
 * (a file kvreplay wrote always has a line).  Returns 0 or -1 (err).
 */
int state_read(const struct state_file *sf, struct rank_state *st, int n,
               char *err, size_t errlen);

/*
 * Creates the temporary file the next state goes to (lib/atomicfile), which
 * proves the directory can take it.  Returns 0 or -1 (err).
 */
int state_prepare(struct state_file *sf, char *err, size_t errlen);

/*
 * Writes the n states to the prepared file and renames it over the state
 * file.  Returns 0, or -1 with the reason in err.  A failed fsync of the
 * directory still counts as written (the file is in place) and only leaves
 * a warning in err.
 */
int state_write(struct state_file *sf, const struct rank_state *st, int n,
                char *err, size_t errlen);

/* Removes an unused temporary file and releases the lock.  Accepts NULL
 * and an sf that was only initialised. */
void state_close(struct state_file *sf);

#endif

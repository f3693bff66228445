/*
 * server.h - `kvindex serve`: one poll loop that owns the index, reads the
 * NDJSON input and answers clients on the Unix socket.
 */
#ifndef KVINDEX_SERVER_H
#define KVINDEX_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "index.h"

/* --reader-thread: auto is on when more than one CPU is online. */
enum serve_reader { SERVE_READER_AUTO = 0, SERVE_READER_ON, SERVE_READER_OFF };

struct serve_opts {
    const char *socket_path; /* resolved by the caller */
    mode_t socket_mode;      /* default 0600 */
    struct index_opts ix;
    uint64_t degraded_orphans; /* --degraded-orphans, 0 = never */
    const char *snapshot;      /* NULL: none */
    uint64_t snapshot_every_ms;
    size_t max_line;
    size_t max_request; /* request lines: the smaller of this and max_line */
    int exit_on_eof;
    /* Whether a thread reads and parses the input while the loop's thread
     * applies it (docs/kvindex.md#reading-the-input). */
    enum serve_reader reader_thread;
    int stats; /* --stats: one JSON line on stderr at exit */
    /* Clients (docs/kvindex.md#limits-on-clients); timeouts 0: none. */
    size_t max_clients;
    uint64_t write_timeout_ms;
    uint64_t idle_timeout_ms;
    uint64_t request_timeout_ms;
    /* Who may connect besides the server's uid and root, and who may
     * change state besides them (docs/kvindex.md#who-may-do-what). */
    unsigned *allow_uids, *allow_gids, *admin_gids;
    size_t n_allow_uids, n_allow_gids, n_admin_gids;
    char **files; /* NULL-terminated; empty: stdin */
};

/*
 * Runs the server until SIGTERM/SIGINT (or the end of input with
 * exit_on_eof).  Diagnostics go to stderr through cli_log.  Returns the exit
 * status: 0 after a clean stop, 1 on a failure (cannot bind, bad snapshot,
 * unknown input format version).
 */
int serve_run(const struct serve_opts *o);

#endif

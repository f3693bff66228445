/*
 * run.h - kvsub's receive loop: SUB sockets -> seqtrack -> replay -> NDJSON.
 */
#ifndef KVSUB_RUN_H
#define KVSUB_RUN_H

#include <stdint.h>

#include "event.h"
#include "zsock.h"

struct kvsub_opts {
    struct zsock_spec *specs; /* borrowed */
    int nspecs;
    int bind;          /* bind the SUB sockets instead of connecting */
    const char *topic; /* subscription prefix ("" = everything) */
    const char *model; /* NULL: no "model" key */
    enum kv_engine engine;
    uint64_t count;       /* stop after this many lines; 0 = no limit */
    uint64_t idle_ms;     /* stop after this long without a message */
    uint64_t duration_ms; /* stop after this long */
    uint64_t replay_timeout_ms;
    /*
     * Where each source starts (-o): offset_now prints only what arrives
     * live; otherwise the first seq printed is offset_seq (0: beginning),
     * fetched from the replay buffer before going live.
     */
    int offset_now;
    uint64_t offset_seq;
    uint64_t warn_idle_ms;      /* warn about a source silent this long */
    uint64_t stats_interval_ms; /* a rolling stats line this often; 0: off */
    const char *warn_idle_text; /* the same, as the user wrote it */
    uint64_t max_msg;           /* ZMQ_MAXMSGSIZE of every socket (--max-msg) */
    int rcvhwm;
    int unbuffered;
    int stats;
};

/*
 * Runs until count, idle or duration is reached, the reader closes stdout,
 * or a signal arrives.  Returns the exit status (0 or 1); on SIGINT/SIGTERM
 * it flushes, closes and re-raises the signal instead of returning.
 */
int kvsub_run(const struct kvsub_opts *o);

#endif

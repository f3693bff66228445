/*
 * monitor.h - what kvsub says about a source's connection: ZeroMQ's socket
 * monitor (zmq_socket_monitor) turned into stderr lines.
 *
 * A wrong port, an unknown host or an ipc path in a missing directory make
 * libzmq retry forever without a word; this module watches the monitor
 * events of a source's SUB socket and says so.  At the default verbosity it
 * reports the first failure of a source and every later change of state
 * (down with another reason, up again, disconnected); with -v every event.
 */
#ifndef KVSUB_MONITOR_H
#define KVSUB_MONITOR_H

#include <stddef.h>

enum kvmon_state {
    KVMON_CONNECTING, /* no outcome yet */
    KVMON_UP,         /* connected (or, bound, a peer connected) */
    KVMON_DOWN        /* the last attempt failed, or the peer went away */
};

/* The monitor of one source.  Plain data apart from the PAIR socket. */
struct kvmon {
    void *pair;       /* reads the monitor stream; owned */
    const char *name; /* the source's name; borrowed */
    const char *uri;  /* the monitored endpoint; borrowed */
    enum kvmon_state state;
    int reported; /* a failure was reported: later changes are news */
    int delayed;  /* a TCP connect was under way since the last retry */
    int greeted;  /* the ZMTP handshake succeeded: a ZeroMQ peer answers */
    /*
     * A handshake failed and none has succeeded since: the reconnect
     * cycle that follows (connected, handshake failed, disconnected) is
     * not news until a handshake succeeds.
     */
    int hs_failed;
    int was_up; /* it has been connected before */
    /*
     * Connections made after the first one: the peer at the other end may
     * be another process (kvsub checks, run.c).
     */
    unsigned long reconnects;
    /*
     * When the connection was lost (0: it was not, or libzmq is retrying).
     * libzmq closes a connection that carried a message over
     * ZMQ_MAXMSGSIZE (or broke the protocol) and never retries it.
     */
    long long dropped_ms;
    char reason[256];
};

/*
 * Starts monitoring sock (not yet connected or bound) through inproc
 * address "inproc://kvsub-mon-<idx>".  name and uri are borrowed for the
 * monitor's life.  Returns 0, or -1 with the reason in err.
 */
int kvmon_open(struct kvmon *m, void *zctx, void *sock, int idx,
               const char *name, const char *uri, char *err, size_t errlen);

/*
 * Whether the connection was lost ms or more before now and libzmq has not
 * tried to reconnect since (then the caller must).  Says nothing.
 */
int kvmon_abandoned(const struct kvmon *m, long long now, long long ms);

/* Closes the PAIR socket.  Accepts a monitor that was never opened. */
void kvmon_close(struct kvmon *m);

/*
 * Reads every pending event without blocking and says what changed on
 * stderr.  Returns the number of events read.
 */
int kvmon_drain(struct kvmon *m);

/*
 * Waits up to timeout_ms for the first outcome -- a ZeroMQ peer that
 * completed the handshake (KVMON_UP) or a failure (KVMON_DOWN) -- and
 * returns it, or KVMON_CONNECTING after the timeout; *why gets the
 * failure's reason (borrowed from m).  For --probe: nothing is printed.
 */
enum kvmon_state kvmon_wait(struct kvmon *m, long timeout_ms, const char **why);

#endif

/*
 * conn.h - one client connection of `kvindex serve`: its buffers, its
 * non-blocking I/O, its deadlines and its dump, which a forked child
 * streams (docs/kvindex.md#limits-on-clients).
 */
#ifndef KVINDEX_CONN_H
#define KVINDEX_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "index.h"
#include "kvproto.h"
#include "lines.h"
#include "sock.h"

/* How a dump child ended (conn_dump_finish). */
enum conn_dump_end {
    CONN_DUMP_DONE,    /* the whole reply was sent */
    CONN_DUMP_STALLED, /* the client read nothing for --write-timeout */
    CONN_DUMP_GONE,    /* the client went away */
    CONN_DUMP_FAILED   /* out of memory, or the child died */
};

struct conn {
    int fd;
    struct sock_peer peer;
    int admin; /* may run ops that change state */
    struct lines in;
    int eof; /* the client shut down its side */
    struct buf out;
    size_t out_off;
    long long stalled_since; /* 0: output is moving */
    long long active_at;     /* the last request read or reply byte sent */
    long long partial_since; /* 0: no unfinished request buffered */
    /* A dump waiting for a child (dump_wait) or being streamed by one. */
    int dump_wait;
    struct index_pod_ref dump_ref; /* dump_ref.pod owned (NULL: all) */
    pid_t dump_pid;                /* 0: none */
    int dump_fd;                   /* the child's status pipe, -1: none */
};

/* A connection on fd (owned from now on), or NULL without memory. */
struct conn *conn_new(int fd, size_t max_line, long long now);

/* Closes and frees; a dump child still running is killed.  Accepts NULL. */
void conn_free(struct conn *c);

/* Reads what the client sent.  Returns -1 when c must be dropped. */
int conn_read(struct conn *c, long long now);

/* Writes what c has pending.  Returns -1 when c must be dropped. */
int conn_write(struct conn *c, long long now);

/* Bytes of replies not sent yet. */
size_t conn_pending(const struct conn *c);

/* Remembers a dump request (ref borrowed, NULL: all pods) until a child
 * can take it.  Returns 0, or -1 without memory. */
int conn_dump_defer(struct conn *c, const struct index_pod_ref *ref);

/*
 * Forks the child that sends c's pending output and then the dump reply,
 * from the index as it was at the fork, giving up when the client reads
 * nothing for write_timeout_ms.  The child first calls close_others(ctx)
 * to drop every descriptor but c's.  Returns 0, or -1 with errno (fork or
 * pipe failed).
 */
int conn_dump_start(struct conn *c, const struct kvproto *p,
                    long long write_timeout_ms, void (*close_others)(void *),
                    void *ctx);

/* Collects the child once its status pipe (dump_fd) is readable. */
enum conn_dump_end conn_dump_finish(struct conn *c);

#endif

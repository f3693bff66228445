/*
 * server.c - the kvindex serve loop (server.h).
 *
 * One thread, one poll(2) loop, owns everything: the listening socket,
 * every client and the index; the input is read by ingest.c (on a reader
 * thread of its own where there is a core for it), whose events this loop
 * alone applies.  Each turn answers a bounded number
 * of requests per client and then gives the input as much time as the
 * clients took, so neither starves the other; every client socket is
 * non-blocking with its own output buffer, so a slow or vanished client
 * never blocks ingest or the others; dumps are streamed by forked children
 * (conn.c).  Who may connect and who may change the index is decided by
 * the peer's credentials (docs/kvindex.md#who-may-do-what).
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "atomicfile.h"
#include "cli.h"
#include "conn.h"
#include "ingest.h"
#include "jscan.h"
#include "lines.h"
#include "kvproto.h"
#include "snapshot.h"
#include "sock.h"

/* A client whose unsent replies exceed this is not read from until it
 * catches up: backpressure instead of unbounded buffering. */
#define OUT_PAUSE (1u << 20)
/* A single reply larger than this is refused by disconnecting rather than
 * by exhausting memory (dumps are streamed and never count). */
#define OUT_CAP ((size_t)1 << 30)
/* Requests answered per client per turn: a client that pipelines
 * thousands waits its turn like the others. */
#define REQ_BATCH 16
/* Dumps streamed at once (each is a forked child): more wait their turn. */
#define DUMP_MAX 4
/* The longest turn the input gets, however long the clients took. */
#define INGEST_SLICE_MAX_MS 50
/* At most this many warnings about users refused; the rest are
 * counted. */
#define MAX_LINE_WARNINGS 100

struct server {
    const struct serve_opts *o;
    struct kv_index *ix;
    struct kvproto proto;
    int lfd;
    struct conn **conns;
    size_t n_conns, cap_conns;
    struct pollfd *pfd;
    size_t cap_pfd;
    struct ingest *in;
    long long started_ms;
    long long next_snapshot_ms;
    pid_t snap_child; /* a periodic snapshot being written, 0 if none */
    long long accept_paused_until; /* out of descriptors: retry then */
    size_t n_dumps;                /* dump children running */
    uint64_t refused_full;         /* refused in a row for --max-clients */
    uint64_t refused_users;        /* refused for who they are */
    int backlog; /* a client has requests left over from its turn */
    /* Counters for stats. */
    uint64_t accepted, dropped, refused;
    uint64_t snapshots, snapshot_errors;
};

static void
drop_conn(struct server *s, size_t i, const char *why)
{
    struct conn *c = s->conns[i];

    if (why != NULL)
        log_warn("client %d (uid %u, pid %ld): %s, disconnected", c->fd,
                 (unsigned)c->peer.uid, (long)c->peer.pid, why);
    if (c->dump_pid > 0)
        s->n_dumps--;
    conn_free(c);
    s->conns[i] = s->conns[--s->n_conns];
    s->dropped++;
}

static void
put_counter(struct buf *b, const char *name, uint64_t v)
{
    buf_puts(b, ",\"");
    buf_puts(b, name);
    buf_puts(b, "\":");
    buf_put_u64(b, v);
}

/* The server's part of the stats object (proto.c adds the queries). */
static void
stats_members(void *ctx, struct buf *b)
{
    struct server *s = ctx;
    long long up = cli_now_ms() - s->started_ms;
    struct ingest_counts ic;

    ingest_counts(s->in, &ic);
    buf_puts(b, ",\"uptime_s\":");
    buf_put_double(b, (double)up / 1000.0);
    put_counter(b, "lines", ic.lines);
    put_counter(b, "bad_lines", ic.bad_lines);
    put_counter(b, "long_lines", ic.long_lines);
    put_counter(b, "clients", s->n_conns);
    put_counter(b, "connections", s->accepted);
    put_counter(b, "refused_connections", s->refused);
    put_counter(b, "snapshots", s->snapshots);
    put_counter(b, "snapshot_errors", s->snapshot_errors);
}

/* The --stats / SIGUSR1 line on stderr: the stats op's data object. */
static void
print_stats(struct server *s)
{
    struct buf b = {0};
    static const char req[] = "{\"op\":\"stats\"}";
    struct kv_str data;

    kvproto_handle(&s->proto, req, sizeof req - 1, &b);
    s->proto.served[KVPROTO_STATS]--; /* not a client's query */
    if (!b.oom && b.len > 0 && jscan_find(b.p, b.len - 1, "data", &data) == 1)
        fprintf(stderr, "%.*s\n", (int)data.n, data.p);
    buf_free(&b);
}

/* Writes the snapshot if one is configured; returns -1 when that failed. */
static int
do_snapshot(struct server *s)
{
    char err[256];

    if (s->o->snapshot == NULL)
        return 0;
    if (snapshot_write(s->ix, &s->o->ix, s->o->snapshot, err, sizeof err) < 0) {
        log_error("snapshot: %s", err);
        s->snapshot_errors++;
        return -1;
    }
    s->snapshots++;
    log_debug("snapshot written to %s", s->o->snapshot);
    return 0;
}

/* Collects a finished snapshot writer (waiting for it with block). */
static void
reap_snapshot(struct server *s, int block)
{
    pid_t r;
    int st = 0;

    if (s->snap_child <= 0)
        return;
    do
        r = waitpid(s->snap_child, &st, block ? 0 : WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == 0)
        return;
    s->snap_child = 0;
    if (r > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        s->snapshots++;
        log_debug("snapshot written to %s", s->o->snapshot);
    } else {
        s->snapshot_errors++;
    }
}

/*
 * What a forked child (a snapshot or a dump writer) must not hold: the
 * socket, or connects would queue on a listener nobody serves and a
 * restarted server would take that for "already running"; the clients but
 * its own, or one that the server drops would not see its end.
 */
static void
close_for_child(struct server *s, const struct conn *keep)
{
    close(s->lfd);
    for (size_t i = 0; i < s->n_conns; i++) {
        if (s->conns[i] == keep)
            continue;
        close(s->conns[i]->fd);
        if (s->conns[i]->dump_fd >= 0)
            close(s->conns[i]->dump_fd);
    }
}

struct child_ctx {
    struct server *s;
    const struct conn *keep;
};

static void
close_others(void *ctx)
{
    struct child_ctx *k = ctx;

    close_for_child(k->s, k->keep);
}

/*
 * Periodic snapshots are written by a forked child, like redis's BGSAVE: it
 * sees the index as it was at the fork (copy-on-write) while this loop goes
 * on serving, so a large index never stalls queries or ingest.
 */
static void
snapshot_background(struct server *s)
{
    char err[256];
    pid_t pid;
    int rc;

    if (s->o->snapshot == NULL)
        return;
    reap_snapshot(s, 0);
    if (s->snap_child > 0) {
        log_debug("the previous snapshot is still being written");
        return;
    }
    fflush(stderr);
    pid = fork();
    if (pid < 0) {
        log_warn("fork: %s; writing the snapshot in the loop", strerror(errno));
        do_snapshot(s);
        return;
    }
    if (pid == 0) {
        close_for_child(s, NULL);
        rc = snapshot_write(s->ix, &s->o->ix, s->o->snapshot, err, sizeof err);
        if (rc < 0)
            log_error("snapshot: %s", err);
        _exit(rc < 0 ? 1 : 0);
    }
    s->snap_child = pid;
}

/*
 * Removes what killed writers left, then loads the snapshot file.  Returns
 * -1 when it cannot be loaded (a server never starts with half an index).
 */
static int
load_snapshot(struct server *s)
{
    const char *path = s->o->snapshot;
    char err[256] = "";
    int r = atomicfile_sweep(path, err, sizeof err);

    if (r < 0)
        log_warn("%s", err);
    else if (r > 0)
        log_info("%s: removed %d temporary file%s a killed writer left", path,
                 r, r == 1 ? "" : "s");
    r = snapshot_load(s->ix, &s->o->ix, path, err, sizeof err);
    if (r < 0) {
        log_error("%s: %s", path, err);
        return -1;
    }
    if (r > 0 && err[0] != '\0')
        log_warn("%s: %s", path, err);
    if (r > 0)
        log_info("%s: snapshot loaded", path);
    s->next_snapshot_ms = s->started_ms + (long long)s->o->snapshot_every_ms;
    return 0;
}

/* Sends a refused client its one error line and closes it.  The socket
 * is new and empty, so the short line fits its buffer whole. */
static void
refuse(struct server *s, int fd, const char *msg)
{
    struct buf b = {0};

    kvproto_reply_error(&s->proto, &b, msg);
    if (!b.oom)
        (void)!send(fd, b.p, b.len, MSG_NOSIGNAL | MSG_DONTWAIT);
    buf_free(&b);
    close(fd);
    s->refused++;
}

/* Whether the peer may connect: ours, root, or in --allow-uid/-gid. */
static int
peer_allowed(const struct serve_opts *o, const struct sock_peer *p)
{
    if (p->uid == 0 || p->uid == geteuid())
        return 1;
    for (size_t i = 0; i < o->n_allow_uids; i++)
        if (p->uid == (uid_t)o->allow_uids[i])
            return 1;
    return sock_peer_in_groups(p, o->allow_gids, o->n_allow_gids);
}

/*
 * The longest request line.  Input lines may be long (--max-line follows
 * kvsub's longest line) but a request is at most a prompt's tokens, and a
 * thousand slow clients each holding one must not hold gigabytes.
 */
static size_t
request_cap(const struct serve_opts *o)
{
    return o->max_request < o->max_line ? o->max_request : o->max_line;
}

/* Checks and admits one accepted client; refuses it with a reason. */
static void
admit(struct server *s, int fd)
{
    const struct serve_opts *o = s->o;
    struct sock_peer peer;
    struct conn *c;
    char msg[160];

    if (sock_peer(fd, &peer) < 0 || !peer_allowed(o, &peer)) {
        /* Another user connecting in a loop must not fill the log. */
        if (++s->refused_users <= MAX_LINE_WARNINGS)
            log_warn("refused a client: uid %u (pid %ld) is not allowed "
                     "(--allow-uid, --allow-gid)%s",
                     (unsigned)peer.uid, (long)peer.pid,
                     s->refused_users == MAX_LINE_WARNINGS
                         ? " (further refusals are only counted)"
                         : "");
        refuse(s, fd, "permission denied: this user may not use this server");
        return;
    }
    if (s->n_conns >= o->max_clients) {
        snprintf(msg, sizeof msg, "too many clients (--max-clients %zu)",
                 o->max_clients);
        if (s->refused_full++ == 0)
            log_warn("refusing clients: %s", msg);
        refuse(s, fd, msg);
        return;
    }
    s->refused_full = 0;
    if (s->n_conns == s->cap_conns) {
        size_t nc = s->cap_conns ? s->cap_conns * 2 : 16;
        struct conn **nv = realloc(s->conns, nc * sizeof *nv);
        if (nv == NULL) {
            close(fd);
            return;
        }
        s->conns = nv;
        s->cap_conns = nc;
    }
    c = conn_new(fd, request_cap(o), cli_now_ms());
    if (c == NULL)
        return;
    c->peer = peer;
    /* Root can do anything to the server anyway: refusing it would secure
     * nothing. */
    c->admin = peer.uid == geteuid() || peer.uid == 0 ||
               sock_peer_in_groups(&peer, o->admin_gids, o->n_admin_gids);
    s->conns[s->n_conns++] = c;
    s->accepted++;
}

static void
accept_clients(struct server *s)
{
    for (int k = 0; k < 64; k++) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                errno == ENOMEM) {
                /* Out of descriptors: the pending connection stays ready,
                 * so stop polling for it a moment instead of spinning. */
                if (s->accept_paused_until == 0)
                    log_warn("accept: %s", strerror(errno));
                s->accept_paused_until = cli_now_ms() + 100;
            } else if (errno != EAGAIN && errno != EWOULDBLOCK &&
                       errno != EINTR && errno != ECONNABORTED) {
                log_warn("accept: %s", strerror(errno));
            }
            return;
        }
        s->accept_paused_until = 0;
        admit(s, fd);
    }
}

static int
blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
            return 0;
    return 1;
}

/* kvproto's dump_fn: the conn streams the rest once a child is free. */
static int
defer_dump(void *ctx, const struct index_pod_ref *ref, char *err, size_t errlen)
{
    if (conn_dump_defer(ctx, ref) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* Answers one request of c; every op that changes state is logged with
 * who asked, allowed or not. */
static void
answer(struct server *s, struct conn *c, const char *line, size_t len)
{
    struct kvproto *p = &s->proto;

    p->now = (double)cli_now_ms() / 1000.0;
    p->may_change = c->admin;
    p->dump_ctx = c;
    kvproto_handle(p, line, len, &c->out);
    if (p->last_op == KVPROTO_CLEAR)
        log_warn("clear by uid %u (pid %ld): %s", (unsigned)c->peer.uid,
                 (long)c->peer.pid, p->last_ok ? "done" : "refused or failed");
}

/* Answers up to REQ_BATCH of the complete request lines buffered for c,
 * while its output is below the pause mark and no dump is under way.
 * Returns -1 when c must be dropped. */
static int
conn_process(struct server *s, struct conn *c, long long now)
{
    const char *line;
    size_t len;
    int rc, n = 0;

    while (!c->dump_wait && c->dump_pid == 0 && conn_pending(c) < OUT_PAUSE) {
        if (n == REQ_BATCH) {
            s->backlog = 1; /* the rest next turn, without waiting */
            break;
        }
        rc = lines_next(&c->in, &line, &len);
        if (rc == LINES_NONE)
            break;
        n++;
        if (rc == LINES_TOO_LONG)
            kvproto_reply_error(&s->proto, &c->out,
                                s->o->max_request < s->o->max_line
                                    ? "request line longer than --max-request"
                                    : "request line longer than --max-line");
        else if (!blank(line, len) && line[0] != '#')
            answer(s, c, line, len);
        if (c->out.oom || conn_pending(c) > OUT_CAP)
            return -1;
    }
    /* What is left unread is an unfinished request: its clock runs from
     * when its first byte came. */
    if (lines_buffered(&c->in) == 0)
        c->partial_since = 0;
    else if (n > 0)
        c->partial_since = now;
    return 0;
}

/* Starts c's waiting dump when a child slot is free. */
static void
start_dump(struct server *s, struct conn *c)
{
    struct child_ctx ctx = {s, c};

    if (!c->dump_wait || s->n_dumps >= DUMP_MAX)
        return;
    if (conn_dump_start(c, &s->proto, (long long)s->o->write_timeout_ms,
                        close_others, &ctx) < 0) {
        /* The head of the reply is out already: all that can be said now
         * is by closing the connection. */
        log_warn("dump: %s", strerror(errno));
        c->dump_wait = 0;
        c->eof = 1;
        return;
    }
    s->n_dumps++;
}

/* The reason to drop c for a deadline it missed, or NULL. */
static const char *
missed_deadline(const struct serve_opts *o, const struct conn *c, long long now)
{
    if (c->dump_pid > 0)
        return NULL; /* the child keeps the write deadline */
    if (c->stalled_since != 0 &&
        now - c->stalled_since > (long long)o->write_timeout_ms)
        return "not reading its replies (--write-timeout)";
    if (c->partial_since != 0 && !c->dump_wait && o->request_timeout_ms > 0 &&
        now - c->partial_since > (long long)o->request_timeout_ms)
        return "request not finished in time (--request-timeout)";
    if (o->idle_timeout_ms > 0 && conn_pending(c) == 0 && !c->dump_wait &&
        now - c->active_at > (long long)o->idle_timeout_ms)
        return "idle (--idle-timeout)";
    return NULL;
}

/* A reason to drop a client without a log line: it is simply gone. */
static const char quietly[] = "";

/* Collects c's dump child.  Returns the reason to drop c, or NULL. */
static const char *
end_dump(struct server *s, struct conn *c, long long now)
{
    enum conn_dump_end e = conn_dump_finish(c);

    s->n_dumps--;
    switch (e) {
    case CONN_DUMP_DONE:
        /* Requests that came during the dump get a fresh clock. */
        c->active_at = now;
        c->partial_since = lines_buffered(&c->in) > 0 ? now : 0;
        return NULL;
    case CONN_DUMP_STALLED:
        return "not reading its dump (--write-timeout)";
    case CONN_DUMP_GONE:
        return quietly;
    default:
        return "dump failed";
    }
}

/* Services client c, whose poll entry came back with re.  Returns the
 * reason to drop it (quietly: without a log line), or NULL. */
static const char *
serve_one(struct server *s, struct conn *c, short re, long long now)
{
    const char *why;

    if (c->dump_pid > 0) {
        if (!(re & (POLLIN | POLLHUP | POLLERR)))
            return NULL;
        if ((why = end_dump(s, c, now)) != NULL)
            return why;
    } else {
        if (re & (POLLERR | POLLNVAL))
            return quietly;
        if ((re & (POLLIN | POLLHUP)) && !c->eof && conn_read(c, now) < 0)
            return quietly;
    }
    if (conn_process(s, c, now) < 0)
        return "reply buffer over its cap";
    start_dump(s, c);
    if (c->dump_pid == 0 && conn_write(c, now) < 0)
        return quietly;
    if (c->eof && conn_pending(c) == 0 && !c->dump_wait && c->dump_pid == 0 &&
        lines_buffered(&c->in) == 0)
        return quietly;
    return missed_deadline(s->o, c, now);
}

/* Services every client (poll entry at pfd[base + i]); the last one first,
 * as drop_conn moves the last client into the dropped one's slot. */
static void
serve_clients(struct server *s, size_t base, size_t n_polled, long long now)
{
    size_t i = n_polled;

    s->backlog = 0;
    while (i-- > 0) {
        const char *why =
            serve_one(s, s->conns[i], s->pfd[base + i].revents, now);
        if (why != NULL)
            drop_conn(s, i, why[0] != '\0' ? why : NULL);
    }
}

static int
grow_pfd(struct server *s, size_t n)
{
    struct pollfd *nv;

    if (n <= s->cap_pfd)
        return 0;
    nv = realloc(s->pfd, n * 2 * sizeof *nv);
    if (nv == NULL)
        return -1;
    s->pfd = nv;
    s->cap_pfd = n * 2;
    return 0;
}

/* The poll entry of client c: its dump child's status pipe while a child
 * streams to it, else its socket. */
static void
poll_entry(const struct conn *c, struct pollfd *p)
{
    p->revents = 0;
    if (c->dump_pid > 0) {
        p->fd = c->dump_fd;
        p->events = POLLIN;
        return;
    }
    p->fd = c->fd;
    p->events = 0;
    if (!c->eof && conn_pending(c) < OUT_PAUSE)
        p->events |= POLLIN;
    if (conn_pending(c) > 0)
        p->events |= POLLOUT;
}

/*
 * The input's turn lasts as long as the clients' turn before it (capped),
 * so that busy clients and a busy input share the loop about equally.  In
 * microseconds: a turn of 200 clients takes about one millisecond.
 */
static long long
ingest_slice(long long clients_us)
{
    return clients_us < INGEST_SLICE_MAX_MS * 1000 ? clients_us
                                                   : INGEST_SLICE_MAX_MS * 1000;
}

/* The poll timeout of this turn, in ms. */
static int
turn_timeout(const struct server *s, int hot, long long now)
{
    int timeout = 1000;

    if (hot || s->backlog)
        timeout = 0;
    if (now < s->accept_paused_until && timeout > 100)
        timeout = 100;
    if (s->o->snapshot != NULL && s->next_snapshot_ms - now < timeout)
        timeout =
            (int)(s->next_snapshot_ms - now < 0 ? 0
                                                : s->next_snapshot_ms - now);
    return timeout;
}

static int
loop(struct server *s)
{
    int hot = 1; /* input may have more ready right away */

    while (!cli_signal) {
        long long now = cli_now_ms(), served_us;
        size_t n = 0, base, n_polled;
        int in_slot = -1, pr;

        if (ingest_fatal(s->in))
            return 1;
        if (ingest_done(s->in) && s->o->exit_on_eof)
            return 0;
        reap_snapshot(s, 0);
        if (s->o->snapshot != NULL && now >= s->next_snapshot_ms) {
            snapshot_background(s);
            s->next_snapshot_ms = now + (long long)s->o->snapshot_every_ms;
        }
        if (cli_take_usr1())
            print_stats(s);
        if (grow_pfd(s, s->n_conns + 2) < 0) {
            log_error("out of memory");
            return 1;
        }
        s->pfd[n].fd = s->lfd;
        s->pfd[n++].events = now < s->accept_paused_until ? 0 : POLLIN;
        if (!hot && ingest_pollfd(s->in) >= 0) {
            in_slot = (int)n;
            s->pfd[n].fd = ingest_pollfd(s->in);
            s->pfd[n++].events = POLLIN;
        }
        base = n;
        n_polled = s->n_conns;
        for (size_t i = 0; i < s->n_conns; i++)
            poll_entry(s->conns[i], &s->pfd[n++]);
        pr = poll(s->pfd, n, turn_timeout(s, hot, now));
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            log_error("poll: %s", strerror(errno));
            return 1;
        }
        now = cli_now_ms();
        served_us = cli_now_us();
        if (n_polled > 0)
            serve_clients(s, base, n_polled, now);
        if (s->pfd[0].revents & POLLIN)
            accept_clients(s);
        served_us = cli_now_us() - served_us;
        if (hot || (in_slot >= 0 && s->pfd[in_slot].revents))
            hot = ingest_turn(s->in, ingest_slice(served_us));
    }
    return 0;
}

/* Whether input path ("-": stdin) is a regular file. */
static int
input_is_file(const char *path)
{
    struct stat st;
    int rc = strcmp(path, "-") == 0 ? fstat(0, &st) : stat(path, &st);

    return rc == 0 && S_ISREG(st.st_mode);
}

/*
 * Whether the input gets a reader thread (auto).  On one CPU it would only
 * take turns with the loop's, and pay the handover.  On two, only when
 * every input is a regular file: a pipe's producer (kvsub, in the pipeline
 * kvtap is for) keeps one of the two CPUs busy already, and there the
 * thread's extra CPU costs more than its overlap gains.  Eight alternating
 * runs of `kvsub | kvindex serve` (bench/e2e_zmq's publisher, 135,081
 * events) on a 2-CPU VM: 0.88 s of wall clock and 0.60 s of CPU (medians)
 * without it, 0.99 s and 0.69 s with it.
 */
static int
reader_thread(const struct serve_opts *o)
{
    long cpus;

    if (o->reader_thread != SERVE_READER_AUTO)
        return o->reader_thread == SERVE_READER_ON;
    cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus != 2)
        return cpus > 2;
    if (o->files == NULL || o->files[0] == NULL)
        return input_is_file("-");
    for (size_t i = 0; o->files[i] != NULL; i++)
        if (!input_is_file(o->files[i]))
            return 0;
    return 1;
}

int
serve_run(const struct serve_opts *o)
{
    struct server s;
    char err[256];
    int rc = 1, thread = reader_thread(o);

    memset(&s, 0, sizeof s);
    s.o = o;
    s.lfd = -1;
    s.started_ms = cli_now_ms();
    s.ix = index_new(&o->ix, err, sizeof err);
    if (s.ix == NULL) {
        log_error("%s", err);
        goto done;
    }
    index_set_degraded_orphans(s.ix, o->degraded_orphans);
    s.in = ingest_new(
        &(struct ingest_opts){.files = o->files,
                              .max_line = o->max_line,
                              .default_model = o->ix.default_model,
                              .degraded_orphans = o->degraded_orphans,
                              .reader_thread = thread},
        s.ix, err, sizeof err);
    if (s.in == NULL) {
        log_error("%s", err);
        goto done;
    }
    kvproto_init(&s.proto, s.ix, &o->ix, stats_members, &s);
    s.proto.dump_fn = defer_dump;
    if (o->snapshot != NULL && load_snapshot(&s) < 0)
        goto done;
    s.lfd = sock_listen(o->socket_path, o->socket_mode, err, sizeof err);
    if (s.lfd < 0) {
        log_error("%s", err);
        goto done;
    }
    log_info("listening on %s", o->socket_path);
    log_info("reading the input %s",
             thread ? "on a thread of its own" : "in the server's loop");
    if (ingest_start(s.in, err, sizeof err) < 0) {
        log_error("%s", err);
        goto done;
    }
    rc = loop(&s);
    if (cli_signal)
        log_info("stopping on signal %d", (int)cli_signal);
    /* A background writer finishes first, so that its rename cannot land
     * after the final one.  The last snapshot failing is a failure: its
     * events would be lost. */
    reap_snapshot(&s, 1);
    if (rc == 0 && do_snapshot(&s) < 0)
        rc = 1;
    if (o->stats)
        print_stats(&s);
done:
    if (s.lfd >= 0) {
        close(s.lfd);
        unlink(o->socket_path);
    }
    ingest_free(s.in);
    while (s.n_conns > 0)
        drop_conn(&s, s.n_conns - 1, NULL);
    free(s.conns);
    free(s.pfd);
    kvproto_free(&s.proto);
    index_free(s.ix);
    return rc;
}

/*
 * server.c - the kvindex serve loop (server.h).
 *
 * One thread, one poll(2) loop, owns everything: the input, the listening
 * socket, every client and the index.  Each turn reads at most one chunk of
 * input, so ingest never starves queries, and every client socket is
 * non-blocking with its own output buffer, so a slow or vanished client
 * never blocks ingest or the others.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "atomicfile.h"
#include "cli.h"
#include "jscan.h"
#include "lines.h"
#include "kvproto.h"
#include "ndjson_read.h"
#include "snapshot.h"
#include "sock.h"

/* A client whose unsent replies exceed this is not read from until it
 * catches up: backpressure instead of unbounded buffering. */
#define OUT_PAUSE (1u << 20)
/* A single reply larger than this (a dump of a huge index) is refused by
 * disconnecting rather than by exhausting memory. */
#define OUT_CAP ((size_t)1 << 30)
/* A client that accepts no byte of its pending replies for this long is
 * gone in all but name: disconnect it. */
#define STALL_MS 30000
/* At most this many warnings about bad input lines; the rest are counted. */
#define MAX_LINE_WARNINGS 100

struct conn {
    int fd;
    struct lines in; /* request lines, capped at --max-line */
    int eof;         /* the client shut down its side */
    struct buf out;
    size_t out_off;
    long long stalled_since; /* 0: output is moving */
};

struct input {
    char **files; /* NULL-terminated list, or NULL for stdin */
    size_t next;  /* index of the next file to open */
    const char *name;
    int fd; /* -1: no current input */
    int own_fd;
    int stdin_flags; /* to restore stdin's flags at exit */
    struct lines lines;
    int done; /* every input reached its end */
    int fatal;
};

struct server {
    const struct serve_opts *o;
    struct kv_index *ix;
    struct kvproto proto;
    int lfd;
    struct conn **conns;
    size_t n_conns, cap_conns;
    struct pollfd *pfd;
    size_t cap_pfd;
    struct input in;
    struct arena arena;
    long long started_ms;
    long long next_snapshot_ms;
    pid_t snap_child; /* a periodic snapshot being written, 0 if none */
    long long accept_paused_until; /* out of descriptors: retry then */
    /* Counters for stats. */
    uint64_t lines, bad_lines, long_lines;
    uint64_t accepted, dropped;
    uint64_t snapshots, snapshot_errors;
    int warned_model;   /* the one warning about lines without "model" */
    uint64_t bad_names; /* lines rejected for their names, for warnings */
};

static void
conn_free(struct conn *c)
{
    if (c == NULL)
        return;
    if (c->fd >= 0)
        close(c->fd);
    lines_free(&c->in);
    buf_free(&c->out);
    free(c);
}

static void
drop_conn(struct server *s, size_t i, const char *why)
{
    if (why != NULL)
        log_info("client %d: %s, disconnected", s->conns[i]->fd, why);
    conn_free(s->conns[i]);
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

    buf_puts(b, ",\"uptime_s\":");
    buf_put_double(b, (double)up / 1000.0);
    put_counter(b, "lines", s->lines);
    put_counter(b, "bad_lines", s->bad_lines);
    put_counter(b, "long_lines", s->long_lines);
    put_counter(b, "clients", s->n_conns);
    put_counter(b, "connections", s->accepted);
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
        /* The child must not hold the socket: while it lives, connects
         * would queue on a listener nobody serves, and a restarted server
         * would take that for "already running". */
        close(s->lfd);
        for (size_t i = 0; i < s->n_conns; i++)
            close(s->conns[i]->fd);
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

/* Opens the next input; sets in->done when there is none left. */
static int
input_open_next(struct input *in, size_t max_line)
{
    const char *f;

    if (in->files == NULL || in->files[0] == NULL) {
        if (in->next++ > 0) {
            in->done = 1;
            return 0;
        }
        f = "-";
    } else {
        f = in->files[in->next];
        if (f == NULL) {
            in->done = 1;
            return 0;
        }
        in->next++;
    }
    if (strcmp(f, "-") == 0) {
        in->name = "stdin";
        in->fd = 0;
        in->own_fd = 0;
        in->stdin_flags = fcntl(0, F_GETFL);
        if (in->stdin_flags != -1)
            fcntl(0, F_SETFL, in->stdin_flags | O_NONBLOCK);
    } else {
        in->name = f;
        in->fd = open(f, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (in->fd < 0) {
            log_error("%s: %s", f, strerror(errno));
            return -1;
        }
        in->own_fd = 1;
    }
    if (lines_init(&in->lines, in->fd, max_line) < 0) {
        log_error("%s: out of memory", in->name);
        return -1;
    }
    return 0;
}

static void
input_close(struct input *in)
{
    if (in->fd < 0)
        return;
    lines_free(&in->lines);
    if (in->own_fd)
        close(in->fd);
    else if (in->stdin_flags != -1)
        fcntl(0, F_SETFL, in->stdin_flags);
    in->fd = -1;
}

/* " (dp_rank R)" after a pod's name in a warning, or "". */
static const char *
rank_note(char *buf, size_t n, int has_rank, int64_t rank)
{
    buf[0] = '\0';
    if (has_rank)
        snprintf(buf, n, " (dp_rank %lld)", (long long)rank);
    return buf;
}

/* The warning of a pod that index_apply just degraded for its orphans. */
static void
warn_orphans(struct server *s)
{
    struct index_pod_info pi;
    char rank[32];

    if (!index_orphan_alarm(s->ix, &pi))
        return;
    rank_note(rank, sizeof rank, pi.has_rank, pi.rank);
    log_warn("%s%s: degraded: %llu orphaned stores since its last clear or "
             "restart (--degraded-orphans %llu): its matches may be short",
             pi.pod, rank, (unsigned long long)pi.orphan_run,
             (unsigned long long)s->o->degraded_orphans);
}

/* The warning of a restored pod that index_apply just degraded. */
static void
warn_resume(struct server *s)
{
    struct index_resume_alarm a;
    char rank[32];

    if (!index_resume_alarm(s->ix, &a))
        return;
    rank_note(rank, sizeof rank, a.has_rank, a.rank);
    if (a.other_engine)
        log_warn("%s%s: degraded: the stream comes from another engine "
                 "process than the snapshot's (seq %llu) and has no restart "
                 "record: its entries may be stale",
                 a.pod, rank, (unsigned long long)a.snap_seq);
    else if (a.from == a.to)
        log_warn("%s%s: degraded: seq %llu after the snapshot's seq %llu is "
                 "missing: its entries may be stale",
                 a.pod, rank, (unsigned long long)a.from,
                 (unsigned long long)a.snap_seq);
    else
        log_warn("%s%s: degraded: seqs %llu..%llu after the snapshot's seq "
                 "%llu are missing: its entries may be stale",
                 a.pod, rank, (unsigned long long)a.from,
                 (unsigned long long)a.to, (unsigned long long)a.snap_seq);
}

/*
 * The "js_seq" kvjs sub adds to each line (an unknown key to the reader).
 * Returns 1 when the index already holds the line: a snapshot recorded a
 * js_seq at or past it (docs/kvindex-snapshot.md#lines-in-this-order).
 */
static int
js_seq_skip(struct server *s, const struct kv_event *ev)
{
    for (size_t i = 0; i < ev->n_unknown; i++) {
        const struct kv_unknown *u = &ev->unknown[i];
        struct jscan j;
        uint64_t v;

        if (!kv_str_eq(u->key, "js_seq"))
            continue;
        jscan_init(&j, (const char *)u->val.p, u->val.n, NULL, NULL, 0);
        return jscan_u64(&j, UINT64_MAX, &v) == 0 && index_js_seq(s->ix, v);
    }
    return 0;
}

static void
ingest_line(struct server *s, const char *line, size_t len)
{
    struct kv_env env;
    struct kv_event ev;
    enum index_reject why = INDEX_REJ_NONE;
    char err[256];
    int rc;

    s->lines++;
    arena_reset(&s->arena);
    rc = ndjson_parse_line(line, len, &s->arena, &env, &ev, err, sizeof err);
    if (rc == NDJSON_SKIP)
        return;
    if (rc == NDJSON_FATAL) {
        log_error("%s:%llu: %s", s->in.name,
                  (unsigned long long)s->in.lines.lineno, err);
        s->in.fatal = 1;
        return;
    }
    if (rc != NDJSON_EVENT) {
        if (++s->bad_lines <= MAX_LINE_WARNINGS)
            log_warn("%s:%llu: %s%s", s->in.name,
                     (unsigned long long)s->in.lines.lineno, err,
                     s->bad_lines == MAX_LINE_WARNINGS
                         ? " (further bad lines are only counted)"
                         : "");
        return;
    }
    if (env.model.p == NULL && s->o->ix.default_model == NULL &&
        !s->warned_model && ev.type == KV_BLOCK_STORED) {
        /* Queries naming a model would then all find nothing. */
        log_warn("%s:%llu: events without \"model\" and no -m: they are "
                 "indexed under the model \"\" (give kvsub -m or kvindex "
                 "serve -m)",
                 s->in.name, (unsigned long long)s->in.lines.lineno);
        s->warned_model = 1;
    }
    if (ev.n_unknown > 0 && js_seq_skip(s, &ev))
        return;
    /* The index counts what it applies and rejects (stats). */
    if (index_apply(s->ix, &env, &ev, &why) < 0) {
        log_debug("%s:%llu: %s rejected: %s", s->in.name,
                  (unsigned long long)s->in.lines.lineno, kv_type_name(ev.type),
                  index_reject_name(why));
        if (why == INDEX_REJ_ORPHAN)
            warn_orphans(s);
        if (why == INDEX_REJ_NAME && ++s->bad_names <= MAX_LINE_WARNINGS)
            log_warn("%s:%llu: a pod, model, LoRA or medium name that is not "
                     "valid UTF-8 or holds U+0000: rejected",
                     s->in.name, (unsigned long long)s->in.lines.lineno);
    }
    warn_resume(s);
}

/*
 * Reads one chunk of input and applies its complete lines.  Returns 1 when
 * more input may be ready right away, 0 when the input would block.
 */
static int
ingest_step(struct server *s)
{
    struct input *in = &s->in;
    const char *line;
    size_t len;
    long n;
    int rc;

    if (in->done || in->fatal)
        return 0;
    if (in->fd < 0 && input_open_next(in, s->o->max_line) < 0) {
        in->fatal = 1;
        return 0;
    }
    if (in->done)
        return 0;
    n = lines_fill(&in->lines);
    index_set_clock(s->ix, (double)cli_now_ms() / 1000.0);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        log_error("%s: read: %s", in->name, strerror(errno));
        in->lines.eof = 1;
    }
    while ((rc = lines_next(&in->lines, &line, &len)) != LINES_NONE &&
           !in->fatal) {
        if (rc == LINES_TOO_LONG) {
            s->lines++;
            if (++s->long_lines <= MAX_LINE_WARNINGS)
                log_warn("%s:%llu: line longer than --max-line (%zu bytes), "
                         "skipped",
                         in->name, (unsigned long long)in->lines.lineno,
                         s->o->max_line);
            continue;
        }
        ingest_line(s, line, len);
    }
    if (in->lines.eof) {
        log_info("%s: end of input after %llu lines", in->name,
                 (unsigned long long)in->lines.lineno);
        input_close(in);
        return 1; /* the next file, or done */
    }
    return n > 0;
}

static void
accept_clients(struct server *s)
{
    for (int k = 0; k < 64; k++) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        struct conn *c;
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
        c = calloc(1, sizeof *c);
        if (c == NULL || lines_init(&c->in, fd, s->o->max_line) < 0) {
            free(c);
            close(fd);
            return;
        }
        c->fd = fd;
        s->conns[s->n_conns++] = c;
        s->accepted++;
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

/* Answers the complete request lines buffered for c, while its output is
 * below the pause mark.  Returns -1 when c must be dropped. */
static int
conn_process(struct server *s, struct conn *c)
{
    const char *line;
    size_t len;
    int rc;

    while (c->out.len - c->out_off < OUT_PAUSE &&
           (rc = lines_next(&c->in, &line, &len)) != LINES_NONE) {
        if (rc == LINES_TOO_LONG)
            kvproto_reply_error(&s->proto, &c->out,
                                "request line longer than --max-line");
        else if (!blank(line, len) && line[0] != '#') {
            s->proto.now = (double)cli_now_ms() / 1000.0;
            kvproto_handle(&s->proto, line, len, &c->out);
        }
        if (c->out.oom || c->out.len - c->out_off > OUT_CAP)
            return -1;
    }
    return 0;
}

/* Reads what the client sent.  Returns -1 when c must be dropped. */
static int
conn_read(struct conn *c)
{
    long n = lines_fill(&c->in);

    if (n == 0)
        c->eof = 1; /* a last request without '\n' is still answered */
    if (n >= 0)
        return 0;
    /* ENOBUFS: the buffer holds requests not answered yet (the client is
     * paused); they are taken before more is read. */
    return errno == EAGAIN || errno == EINTR || errno == ENOBUFS ? 0 : -1;
}

/* Writes what c has pending.  Returns -1 when c must be dropped. */
static int
conn_write(struct conn *c, long long now)
{
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off,
                         MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (c->stalled_since == 0)
                    c->stalled_since = now;
                return 0;
            }
            return -1;
        }
        c->out_off += (size_t)n;
        c->stalled_since = 0;
    }
    /* A big reply (a dump) gives its memory back once it is sent. */
    if (c->out.cap > OUT_PAUSE)
        buf_free(&c->out);
    else
        buf_clear(&c->out);
    c->out_off = 0;
    c->stalled_since = 0;
    return 0;
}

/* Services every client whose poll entry (at pfd[base + i]) is ready. */
static void
serve_clients(struct server *s, size_t base, size_t n_polled, long long now)
{
    size_t i = n_polled;

    /* Walk backwards: drop_conn moves the last client into slot i. */
    while (i-- > 0) {
        struct conn *c = s->conns[i];
        short re = s->pfd[base + i].revents;
        const char *why = NULL;

        if (re & (POLLERR | POLLNVAL)) {
            drop_conn(s, i, NULL);
            continue;
        }
        if ((re & (POLLIN | POLLHUP)) && !c->eof && conn_read(c) < 0) {
            drop_conn(s, i, NULL);
            continue;
        }
        if (conn_process(s, c) < 0) {
            why = "reply buffer over its cap";
        } else if (conn_write(c, now) < 0) {
            drop_conn(s, i, NULL);
            continue;
        } else if (c->stalled_since != 0 && now - c->stalled_since > STALL_MS) {
            why = "not reading its replies";
        } else if (c->eof && c->out.len == c->out_off &&
                   lines_buffered(&c->in) == 0) {
            drop_conn(s, i, NULL);
            continue;
        }
        if (why != NULL)
            drop_conn(s, i, why);
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

static int
loop(struct server *s)
{
    int hot = 1; /* input may have more ready right away */

    while (!cli_signal) {
        long long now = cli_now_ms();
        size_t n = 0, base, n_polled;
        int timeout = 1000, in_slot = -1, pr;

        if (s->in.fatal)
            return 1;
        if (s->in.done && s->o->exit_on_eof)
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
        if (!s->in.done && s->in.fd >= 0 && !hot) {
            in_slot = (int)n;
            s->pfd[n].fd = s->in.fd;
            s->pfd[n++].events = POLLIN;
        }
        base = n;
        n_polled = s->n_conns;
        for (size_t i = 0; i < s->n_conns; i++) {
            struct conn *c = s->conns[i];
            short ev = 0;
            if (!c->eof && c->out.len - c->out_off < OUT_PAUSE)
                ev |= POLLIN;
            if (c->out_off < c->out.len)
                ev |= POLLOUT;
            s->pfd[n].fd = c->fd;
            s->pfd[n++].events = ev;
        }
        if (hot || (!s->in.done && s->in.fd < 0))
            timeout = 0;
        if (now < s->accept_paused_until && timeout > 100)
            timeout = 100;
        if (s->o->snapshot != NULL && s->next_snapshot_ms - now < timeout)
            timeout = (int)(s->next_snapshot_ms - now < 0
                                ? 0
                                : s->next_snapshot_ms - now);
        pr = poll(s->pfd, n, timeout);
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            log_error("poll: %s", strerror(errno));
            return 1;
        }
        now = cli_now_ms();
        if (n_polled > 0)
            serve_clients(s, base, n_polled, now);
        if (s->pfd[0].revents & POLLIN)
            accept_clients(s);
        if (hot || (in_slot >= 0 && s->pfd[in_slot].revents) ||
            (!s->in.done && s->in.fd < 0))
            hot = ingest_step(s);
        if (s->in.done && s->in.fd < 0 && hot)
            hot = 0;
    }
    return 0;
}

int
serve_run(const struct serve_opts *o)
{
    struct server s;
    char err[256];
    int rc = 1;

    memset(&s, 0, sizeof s);
    s.o = o;
    s.lfd = -1;
    s.in.fd = -1;
    s.in.stdin_flags = -1;
    s.in.files = o->files;
    s.started_ms = cli_now_ms();
    s.ix = index_new(&o->ix, err, sizeof err);
    if (s.ix == NULL) {
        log_error("%s", err);
        goto done;
    }
    index_set_degraded_orphans(s.ix, o->degraded_orphans);
    kvproto_init(&s.proto, s.ix, &o->ix, stats_members, &s);
    if (o->snapshot != NULL && load_snapshot(&s) < 0)
        goto done;
    s.lfd = sock_listen(o->socket_path, o->socket_mode, err, sizeof err);
    if (s.lfd < 0) {
        log_error("%s", err);
        goto done;
    }
    log_info("listening on %s", o->socket_path);
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
    input_close(&s.in);
    while (s.n_conns > 0)
        drop_conn(&s, s.n_conns - 1, NULL);
    free(s.conns);
    free(s.pfd);
    arena_free(&s.arena);
    kvproto_free(&s.proto);
    index_free(s.ix);
    return rc;
}

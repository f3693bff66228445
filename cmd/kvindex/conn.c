/*
 * conn.c - a client connection of `kvindex serve` (conn.h).
 *
 * A dump is the one reply that can be huge (a million entries make about
 * 200 MB of JSON).  Built in the loop it stalled every other client and,
 * for a client that never reads, sat in memory whole.  It is written by a
 * forked child instead, like the periodic snapshot: the child sees the
 * index as it was at the fork (copy-on-write), makes the reply through the
 * snapshot writer one chunk at a time and makes the next chunk only when
 * the client has taken the last one, so its memory is one chunk and the
 * socket's buffer.
 */
#include "conn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

/* A reply buffer that grew past this gives its memory back once sent. */
#define OUT_SHRINK (1u << 20)

struct conn *
conn_new(int fd, size_t max_line, long long now)
{
    struct conn *c = calloc(1, sizeof *c);

    if (c == NULL || lines_init(&c->in, fd, max_line) < 0) {
        free(c);
        close(fd);
        return NULL;
    }
    c->fd = fd;
    c->dump_fd = -1;
    c->active_at = now;
    return c;
}

void
conn_free(struct conn *c)
{
    if (c == NULL)
        return;
    if (c->dump_pid > 0) {
        kill(c->dump_pid, SIGKILL);
        while (waitpid(c->dump_pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    if (c->dump_fd >= 0)
        close(c->dump_fd);
    if (c->fd >= 0)
        close(c->fd);
    free((char *)c->dump_ref.pod.p);
    lines_free(&c->in);
    buf_free(&c->out);
    free(c);
}

int
conn_read(struct conn *c, long long now)
{
    long n = lines_fill(&c->in);

    if (n == 0)
        c->eof = 1; /* a last request without '\n' is still answered */
    if (n > 0) {
        c->active_at = now;
        if (c->partial_since == 0)
            c->partial_since = now;
    }
    if (n >= 0)
        return 0;
    /* ENOBUFS: the buffer holds requests not answered yet (the client is
     * paused); they are taken before more is read. */
    return errno == EAGAIN || errno == EINTR || errno == ENOBUFS ? 0 : -1;
}

size_t
conn_pending(const struct conn *c)
{
    return c->out.len - c->out_off;
}

int
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
        c->active_at = now;
    }
    if (c->out.cap > OUT_SHRINK)
        buf_free(&c->out);
    else
        buf_clear(&c->out);
    c->out_off = 0;
    c->stalled_since = 0;
    return 0;
}

int
conn_dump_defer(struct conn *c, const struct index_pod_ref *ref)
{
    char *pod = NULL;

    if (ref != NULL) {
        pod = malloc(ref->pod.n + 1);
        if (pod == NULL)
            return -1;
        memcpy(pod, ref->pod.p, ref->pod.n);
        pod[ref->pod.n] = '\0';
        c->dump_ref = *ref;
    } else {
        memset(&c->dump_ref, 0, sizeof c->dump_ref);
    }
    c->dump_ref.pod.p = pod;
    c->dump_wait = 1;
    return 0;
}

/* The dump child's socket: blocking in poll, never in send, so that the
 * write deadline holds. */
struct dump_sink {
    int fd;
    long long timeout_ms;
    enum conn_dump_end end;
};

static int
sink_send(struct dump_sink *k, const char *p, size_t n)
{
    while (n > 0) {
        struct pollfd pfd = {k->fd, POLLOUT, 0};
        ssize_t w = send(k->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        int r;
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
            errno != EINTR) {
            k->end = CONN_DUMP_GONE;
            return -1;
        }
        r = poll(&pfd, 1, (int)k->timeout_ms);
        if (cli_signal) {
            k->end = CONN_DUMP_GONE;
            return -1;
        }
        if (r == 0) {
            k->end = CONN_DUMP_STALLED;
            return -1;
        }
    }
    return 0;
}

static int
sink_flush(void *ctx, struct buf *b)
{
    struct dump_sink *k = ctx;

    if (sink_send(k, b->p, b->len) < 0)
        return -1;
    buf_clear(b);
    return 0;
}

/* The child's whole life: returns its exit status, an enum conn_dump_end. */
static int
dump_child(struct conn *c, const struct kvproto *p, long long timeout_ms)
{
    struct dump_sink k = {c->fd, timeout_ms, CONN_DUMP_FAILED};
    struct buf b = {0};
    int rc;

    if (sink_send(&k, c->out.p + c->out_off, conn_pending(c)) < 0)
        return (int)k.end;
    rc = kvproto_dump_body(p, c->dump_ref.pod.p ? &c->dump_ref : NULL, &b,
                           sink_flush, &k);
    buf_free(&b);
    return rc < 0 ? (int)k.end : CONN_DUMP_DONE;
}

int
conn_dump_start(struct conn *c, const struct kvproto *p,
                long long write_timeout_ms, void (*close_others)(void *),
                void *ctx)
{
    int st[2];
    pid_t pid;

    if (pipe2(st, O_CLOEXEC) < 0)
        return -1;
    fflush(stderr);
    pid = fork();
    if (pid < 0) {
        int e = errno;
        close(st[0]);
        close(st[1]);
        errno = e;
        return -1;
    }
    if (pid == 0) {
        unsigned char code;
        close(st[0]);
        close_others(ctx);
        code = (unsigned char)dump_child(c, p, write_timeout_ms);
        /* The byte wakes the server's poll; the exit follows at once. */
        (void)!write(st[1], &code, 1);
        _exit(code);
    }
    close(st[1]);
    c->dump_wait = 0;
    c->dump_pid = pid;
    c->dump_fd = st[0];
    /* The child sends what was pending: the server forgets it. */
    buf_clear(&c->out);
    c->out_off = 0;
    c->stalled_since = 0;
    return 0;
}

enum conn_dump_end
conn_dump_finish(struct conn *c)
{
    unsigned char code = CONN_DUMP_FAILED;
    int st = 0;
    ssize_t n;

    do
        n = read(c->dump_fd, &code, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1)
        code = CONN_DUMP_FAILED; /* it died without a word */
    while (waitpid(c->dump_pid, &st, 0) < 0 && errno == EINTR)
        ;
    close(c->dump_fd);
    c->dump_fd = -1;
    c->dump_pid = 0;
    free((char *)c->dump_ref.pod.p);
    memset(&c->dump_ref, 0, sizeof c->dump_ref);
    return code <= CONN_DUMP_FAILED ? (enum conn_dump_end)code
                                    : CONN_DUMP_FAILED;
}

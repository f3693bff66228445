/*
 * client.c - talking to a kvindex server (client.h).
 */
#include "client.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "sock.h"

int
client_open(struct client *c, const char *path, long long timeout_ms,
            long long wait_ms, char *err, size_t errlen)
{
    long long deadline = cli_now_ms() + wait_ms;

    memset(c, 0, sizeof *c);
    c->timeout_ms = timeout_ms;
    for (;;) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        c->fd = sock_connect(path);
        if (c->fd >= 0)
            return 0;
        if (wait_ms <= 0 || cli_now_ms() >= deadline ||
            (errno != ENOENT && errno != ECONNREFUSED))
            break;
        if (cli_signal)
            break;
        nanosleep(&ts, NULL);
    }
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return -1;
}

/* Waits for fd to be ready for events until the deadline. */
static int
wait_fd(int fd, short events, long long deadline)
{
    struct pollfd p = {fd, events, 0};
    long long left;
    int r;

    for (;;) {
        left = deadline - cli_now_ms();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        r = poll(&p, 1, left > 1000000 ? 1000000 : (int)left);
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return -1;
        if (cli_signal) {
            errno = EINTR;
            return -1;
        }
    }
}

static int
send_all(struct client *c, const char *p, size_t n, long long deadline)
{
    while (n > 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return -1;
            if (wait_fd(c->fd, POLLOUT, deadline) < 0)
                return -1;
            continue;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int
client_call(struct client *c, const char *req, size_t n, const char **reply,
            size_t *rlen, char *err, size_t errlen)
{
    long long deadline = cli_now_ms() + c->timeout_ms;
    char *nl;

    /* Drop the previous reply. */
    if (c->used > 0) {
        memmove(c->in, c->in + c->used, c->len - c->used);
        c->len -= c->used;
        c->used = 0;
    }
    if (send_all(c, req, n, deadline) < 0 ||
        send_all(c, "\n", 1, deadline) < 0) {
        snprintf(err, errlen, "send: %s", strerror(errno));
        return -1;
    }
    /* Only new bytes are searched: a dump reply can be very long. */
    for (size_t scanned = 0;
         (nl = c->len > scanned
                   ? memchr(c->in + scanned, '\n', c->len - scanned)
                   : NULL) == NULL;) {
        ssize_t r;
        scanned = c->len;
        if (c->cap - c->len < 65536) {
            size_t nc = c->cap ? c->cap * 2 : 65536;
            char *nv = realloc(c->in, nc);
            if (nv == NULL) {
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            c->in = nv;
            c->cap = nc;
        }
        if (wait_fd(c->fd, POLLIN, deadline) < 0) {
            snprintf(err, errlen, "%s",
                     errno == ETIMEDOUT ? "timed out waiting for the reply"
                                        : strerror(errno));
            return -1;
        }
        r = recv(c->fd, c->in + c->len, c->cap - c->len, MSG_DONTWAIT);
        if (r == 0) {
            snprintf(err, errlen, "the server closed the connection");
            return -1;
        }
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            snprintf(err, errlen, "recv: %s", strerror(errno));
            return -1;
        }
        c->len += (size_t)r;
    }
    *reply = c->in;
    *rlen = (size_t)(nl - c->in);
    c->used = *rlen + 1;
    return 0;
}

void
client_close(struct client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->in);
    c->in = NULL;
}

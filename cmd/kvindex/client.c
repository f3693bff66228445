/*
 * client.c - talking to a kvindex server (client.h).
 */
#include "client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "sock.h"

int
client_open(struct client *c, const char *path, long long timeout_ms,
            long long wait_ms, long long trusted_uid, char *err, size_t errlen)
{
    long long deadline = cli_now_ms() + wait_ms;

    memset(c, 0, sizeof *c);
    c->timeout_ms = timeout_ms;
    for (;;) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        c->fd = sock_connect(path);
        if (c->fd >= 0) {
            if (sock_check_server(c->fd, path, trusted_uid, err, errlen) < 0) {
                client_close(c);
                return -1;
            }
            /* Reads wait in poll(2), with the deadline, never in read. */
            if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) ==
                    0 &&
                lines_init(&c->in, c->fd, CLIENT_MAX_REPLY) == 0)
                return 0;
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            client_close(c);
            return -1;
        }
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

/* Sends p[0..n) and its '\n' in one message (one syscall for a small
 * request, and no moment where the server holds a line without its end). */
static int
send_line(struct client *c, const char *p, size_t n, long long deadline)
{
    struct iovec iov[2] = {{(void *)p, n}, {(void *)"\n", 1}};
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2};

    while (m.msg_iovlen > 0) {
        ssize_t w = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return -1;
            if (wait_fd(c->fd, POLLOUT, deadline) < 0)
                return -1;
            continue;
        }
        while (m.msg_iovlen > 0 && (size_t)w >= m.msg_iov->iov_len) {
            w -= (ssize_t)m.msg_iov->iov_len;
            m.msg_iov++;
            m.msg_iovlen--;
        }
        if (m.msg_iovlen > 0) {
            m.msg_iov->iov_base = (char *)m.msg_iov->iov_base + w;
            m.msg_iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

/* Waits until more of a reply can be read, or says why not in err. */
static int
wait_reply(const struct client *c, long long deadline, char *err, size_t errlen)
{
    if (wait_fd(c->fd, POLLIN, deadline) == 0)
        return 0;
    snprintf(err, errlen, "%s",
             errno == ETIMEDOUT ? "timed out waiting for the reply"
                                : strerror(errno));
    return -1;
}

/* Waits for the next reply line until the deadline. */
static int
read_reply(struct client *c, long long deadline, const char **reply,
           size_t *rlen, char *err, size_t errlen)
{
    for (;;) {
        int rc = lines_next(&c->in, reply, rlen);
        long n;
        if (rc == LINES_OK)
            return 0;
        if (rc == LINES_TOO_LONG) {
            snprintf(err, errlen, "a reply longer than %zu bytes",
                     (size_t)CLIENT_MAX_REPLY);
            return -1;
        }
        if (wait_reply(c, deadline, err, errlen) < 0)
            return -1;
        n = lines_fill(&c->in);
        /* Every complete line was taken above: what is left at the end is
         * a reply cut short, not one to hand out. */
        if (n == 0) {
            snprintf(err, errlen, "the server closed the connection");
            return -1;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            snprintf(err, errlen, "recv: %s", strerror(errno));
            return -1;
        }
    }
}

int
client_call(struct client *c, const char *req, size_t n, const char **reply,
            size_t *rlen, char *err, size_t errlen)
{
    long long deadline = cli_now_ms() + c->timeout_ms;

    if (send_line(c, req, n, deadline) < 0) {
        int e = errno;
        /* A server that refuses a client says why before it closes: that
         * line is a better answer than the broken pipe. */
        if ((e == EPIPE || e == ECONNRESET) &&
            read_reply(c, deadline, reply, rlen, err, errlen) == 0)
            return 0;
        snprintf(err, errlen, "send: %s", strerror(e));
        return -1;
    }
    return read_reply(c, deadline, reply, rlen, err, errlen);
}

int
client_call_stream(struct client *c, const char *req, size_t n,
                   int (*sink)(void *ctx, const char *p, size_t n), void *ctx,
                   char *err, size_t errlen)
{
    long long deadline = cli_now_ms() + c->timeout_ms;
    char chunk[65536];

    if (send_line(c, req, n, deadline) < 0) {
        snprintf(err, errlen, "send: %s", strerror(errno));
        return -1;
    }
    for (;;) {
        ssize_t got = recv(c->fd, chunk, sizeof chunk, 0);
        const char *nl;

        if (got > 0) {
            nl = memchr(chunk, '\n', (size_t)got);
            if (sink(ctx, chunk, nl ? (size_t)(nl - chunk) : (size_t)got) < 0) {
                snprintf(err, errlen, "%s", strerror(errno));
                return -1;
            }
            if (nl != NULL)
                return 0;
            /* The timeout bounds each wait, not the whole reply: a large
             * dump may take longer, as long as it keeps coming. */
            deadline = cli_now_ms() + c->timeout_ms;
            continue;
        }
        if (got == 0) {
            snprintf(err, errlen, "the server closed the connection");
            return -1;
        }
        if (errno == EINTR && !cli_signal)
            continue;
        if (errno != EAGAIN) {
            snprintf(err, errlen, "recv: %s", strerror(errno));
            return -1;
        }
        if (wait_reply(c, deadline, err, errlen) < 0)
            return -1;
    }
}

void
client_close(struct client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    lines_free(&c->in);
}

/*
 * monitor.c - a source's connection state from ZeroMQ's socket monitor
 * (see monitor.h).
 *
 * libzmq 4.3 reports a refused TCP connection as CONNECT_DELAYED, CLOSED,
 * CONNECT_RETRIED without the errno, a host name that does not resolve as
 * CONNECT_RETRIED alone (no connect was started), and an ipc path with no
 * socket as CLOSED, CONNECT_RETRIED.  The reason is therefore inferred from
 * the sequence, and for ipc from the file system.
 */
#include "monitor.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#include "cli.h"

int
kvmon_open(struct kvmon *m, void *zctx, void *sock, int idx, const char *name,
           const char *uri, char *err, size_t errlen)
{
    char addr[64];

    memset(m, 0, sizeof *m);
    m->name = name;
    m->uri = uri;
    snprintf(addr, sizeof addr, "inproc://kvsub-mon-%d", idx);
    if (zmq_socket_monitor(sock, addr, ZMQ_EVENT_ALL) == -1)
        goto fail;
    m->pair = zmq_socket(zctx, ZMQ_PAIR);
    if (m->pair == NULL)
        goto fail;
    if (zmq_setsockopt(m->pair, ZMQ_LINGER, &(int){0}, sizeof(int)) == -1 ||
        zmq_connect(m->pair, addr) == -1)
        goto fail;
    return 0;
fail:
    snprintf(err, errlen, "socket monitor: %s", zmq_strerror(errno));
    kvmon_close(m);
    return -1;
}

void
kvmon_close(struct kvmon *m)
{
    if (m->pair != NULL)
        zmq_close(m->pair);
    m->pair = NULL;
}

/* Why an ipc connect failed: the directory or the socket file is missing. */
static void
ipc_reason(const char *path, char *out, size_t outlen)
{
    char dir[200];
    const char *slash = strrchr(path, '/');
    struct stat st;

    if (slash != NULL && slash != path && (size_t)(slash - path) < sizeof dir) {
        memcpy(dir, path, (size_t)(slash - path));
        dir[slash - path] = '\0';
        if (stat(dir, &st) == -1) {
            snprintf(out, outlen, "directory %.199s: %.40s", dir,
                     strerror(errno));
            return;
        }
    }
    if (stat(path, &st) == -1)
        snprintf(out, outlen, "no socket at %.200s (is the engine running?)",
                 path);
    else
        snprintf(out, outlen, "connection refused");
}

/* Sets m->reason for a failed attempt, from what preceded the retry. */
static void
failure_reason(struct kvmon *m)
{
    if (strncmp(m->uri, "ipc://", 6) == 0) {
        ipc_reason(m->uri + 6, m->reason, sizeof m->reason);
    } else if (strncmp(m->uri, "tcp://", 6) == 0 && !m->delayed) {
        const char *host = m->uri + 6, *colon = strrchr(host, ':');
        int n = colon ? (int)(colon - host) : (int)strlen(host);
        snprintf(m->reason, sizeof m->reason, "cannot resolve host '%.*s'", n,
                 host);
    } else {
        snprintf(m->reason, sizeof m->reason, "connection refused");
    }
}

static const char *
event_name(unsigned ev)
{
    switch (ev) {
    case ZMQ_EVENT_CONNECTED:
        return "connected";
    case ZMQ_EVENT_CONNECT_DELAYED:
        return "connect delayed";
    case ZMQ_EVENT_CONNECT_RETRIED:
        return "connect retried";
    case ZMQ_EVENT_LISTENING:
        return "listening";
    case ZMQ_EVENT_BIND_FAILED:
        return "bind failed";
    case ZMQ_EVENT_ACCEPTED:
        return "accepted";
    case ZMQ_EVENT_ACCEPT_FAILED:
        return "accept failed";
    case ZMQ_EVENT_CLOSED:
        return "closed";
    case ZMQ_EVENT_DISCONNECTED:
        return "disconnected";
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        return "handshake succeeded";
    default:
        return ev & (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                     ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                     ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
                   ? "handshake failed"
                   : "other";
    }
}

/*
 * Reads one event (flags as zmq_msg_recv).  Returns 0 with *ev and *value,
 * or -1 (nothing pending, or an interrupted wait).
 */
static int
read_event(struct kvmon *m, int flags, unsigned *ev, uint32_t *value)
{
    zmq_msg_t part;
    int rc = -1, more;

    zmq_msg_init(&part);
    if (zmq_msg_recv(&part, m->pair, flags) == -1)
        goto out;
    if (zmq_msg_size(&part) >= 6) {
        const uint8_t *p = zmq_msg_data(&part);
        uint16_t e;
        memcpy(&e, p, 2);
        memcpy(value, p + 2, 4);
        *ev = e;
        rc = 0;
    }
    /* The second part names the endpoint, which m already knows. */
    more = zmq_msg_more(&part);
    while (more) {
        if (zmq_msg_recv(&part, m->pair, 0) == -1)
            break;
        more = zmq_msg_more(&part);
    }
out:
    zmq_msg_close(&part);
    return rc;
}

/*
 * Applies one event to the state.  Returns 1 when it is news worth a line
 * at the default verbosity (loud), else 0; *line gets the text either way
 * when the state changed (empty when it did not).
 */
static int
apply(struct kvmon *m, unsigned ev, char *line, size_t linelen)
{
    enum kvmon_state was = m->state;
    char old[sizeof m->reason];
    int first_hs = 0;

    line[0] = '\0';
    memcpy(old, m->reason, sizeof old);
    m->dropped_ms = ev == ZMQ_EVENT_DISCONNECTED ? cli_now_ms() : 0;
    switch (ev) {
    case ZMQ_EVENT_CONNECT_DELAYED:
        m->delayed = 1;
        return 0;
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        m->greeted = 1;
        if (!m->hs_failed)
            return 0;
        m->hs_failed = 0;
        snprintf(line, linelen, "%s: connected to %s (handshake succeeded)",
                 m->name, m->uri);
        return 1;
    case ZMQ_EVENT_CONNECTED:
    case ZMQ_EVENT_ACCEPTED:
        if (m->was_up)
            m->reconnects++;
        m->was_up = 1;
        m->state = KVMON_UP;
        m->reason[0] = '\0';
        if (was != KVMON_UP)
            snprintf(line, linelen, "%s: connected to %s", m->name, m->uri);
        return was != KVMON_UP && m->reported && !m->hs_failed;
    case ZMQ_EVENT_CONNECT_RETRIED:
        failure_reason(m);
        m->delayed = 0;
        break;
    case ZMQ_EVENT_DISCONNECTED:
        snprintf(m->reason, sizeof m->reason, "disconnected");
        break;
    default:
        if (!(ev & (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                    ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                    ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)))
            return 0;
        snprintf(m->reason, sizeof m->reason, "ZMTP handshake failed");
        first_hs = !m->hs_failed;
        m->hs_failed = 1;
    }
    m->state = KVMON_DOWN;
    if (was == KVMON_DOWN && strcmp(old, m->reason) == 0)
        return 0;
    if (strcmp(m->reason, "disconnected") == 0)
        snprintf(line, linelen, "%s: disconnected from %s (reconnecting)",
                 m->name, m->uri);
    else
        snprintf(line, linelen, "%s: cannot connect to %s: %s (retrying)",
                 m->name, m->uri, m->reason);
    m->reported = 1;
    /* The first handshake failure was the news; the rest is its echo. */
    return !m->hs_failed || first_hs;
}

int
kvmon_abandoned(const struct kvmon *m, long long now, long long ms)
{
    return m->dropped_ms > 0 && now - m->dropped_ms >= ms;
}

int
kvmon_drain(struct kvmon *m)
{
    unsigned ev;
    uint32_t value;
    char line[1024];
    int n = 0;

    while (m->pair != NULL && read_event(m, ZMQ_DONTWAIT, &ev, &value) == 0) {
        n++;
        log_info("%s: %s: %s (%" PRIu32 ")", m->name, m->uri, event_name(ev),
                 value);
        if (apply(m, ev, line, sizeof line)) {
            if (m->state == KVMON_UP)
                cli_note("%s", line);
            else
                log_warn("%s", line);
        } else if (line[0] != '\0') {
            log_info("%s", line);
        }
    }
    return n;
}

enum kvmon_state
kvmon_wait(struct kvmon *m, long timeout_ms, const char **why)
{
    long long end = cli_now_ms() + timeout_ms;
    char line[1024];

    *why = "no answer within the timeout";
    while (m->pair != NULL) {
        zmq_pollitem_t it = {m->pair, 0, ZMQ_POLLIN, 0};
        long long left = end - cli_now_ms();
        unsigned ev;
        uint32_t value;

        if (left <= 0 || zmq_poll(&it, 1, (long)left) <= 0)
            break;
        if (read_event(m, ZMQ_DONTWAIT, &ev, &value) == -1)
            continue;
        apply(m, ev, line, sizeof line);
        if (m->state == KVMON_DOWN) {
            *why = m->reason;
            return m->state;
        }
        if (m->state == KVMON_UP && m->greeted)
            return KVMON_UP;
    }
    return KVMON_CONNECTING;
}

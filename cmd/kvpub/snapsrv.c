/*
 * snapsrv.c - kvpub's snapshot ROUTER (see snapsrv.h).
 */
#include "snapsrv.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <zmq.h>

#include "curve.h"

int
snapsrv_open(struct snapsrv *s, void *zctx, const char *uri, char *err,
             size_t errlen)
{
    memset(s, 0, sizeof *s);
    s->last = -1;
    /* A uuid4 in vLLM; any 16 random bytes tell processes apart. */
    if (getrandom(s->stream, sizeof s->stream, 0) != sizeof s->stream) {
        snprintf(err, errlen, "stream id: %s", strerror(errno));
        return -1;
    }
    if (ring_init(&s->hist, SNAPSRV_MAX_BATCHES) == -1) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->router = zmq_socket(zctx, ZMQ_ROUTER);
    if (s->router == NULL || zsock_set_common(s->router) == -1 ||
        curve_apply(s->router, 1) == -1) {
        snprintf(err, errlen, "zmq: %s", zmq_strerror(errno));
        return -1;
    }
    if (zmq_bind(s->router, uri) == -1) {
        snprintf(err, errlen, "bind %s: %s", uri, zmq_strerror(errno));
        return -1;
    }
    return 0;
}

void
snapsrv_record(struct snapsrv *s, uint64_t seq, const void *payload, size_t len)
{
    s->last = (int64_t)seq;
    if (s->failed)
        return;
    if (s->hist.count == s->hist.cap || s->bytes + len > SNAPSRV_MAX_BYTES ||
        ring_push(&s->hist, seq, payload, len) == -1) {
        s->failed = 1;
        return;
    }
    s->bytes += len;
}

/* Sends the reply after the envelope parts of request m. */
static void
reply(struct snapsrv *s, const struct zsock_msg *m)
{
    int64_t seq = s->failed ? -2 : s->last;
    uint8_t seq8[8];
    int nenv = 1;

    /* The envelope: up to the empty delimiter, or the identity alone. */
    for (int i = 1; i < m->kept; i++) {
        size_t len;
        zsock_part(m, i, &len);
        if (len == 0) {
            nenv = i + 1;
            break;
        }
    }
    for (int i = 0; i < nenv; i++) {
        size_t len;
        const uint8_t *p = zsock_part(m, i, &len);
        zmq_send(s->router, p, len, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    }
    zsock_put_be64(seq8, (uint64_t)seq);
    zmq_send(s->router, seq8, 8, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    size_t n = seq >= 0 ? s->hist.count : 0;
    zmq_send(s->router, s->stream, sizeof s->stream,
             (n > 0 ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT);
    for (size_t i = 0; i < n; i++) {
        const struct ring_slot *sl = ring_at(&s->hist, i);
        zmq_send(s->router, sl->data, sl->len,
                 (i + 1 < n ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT);
    }
}

void
snapsrv_serve(struct snapsrv *s)
{
    struct zsock_msg m;

    while (s->router != NULL &&
           zsock_msg_recv(s->router, &m, ZMQ_DONTWAIT) == 0) {
        reply(s, &m);
        zsock_msg_close(&m);
    }
}

void
snapsrv_close(struct snapsrv *s)
{
    if (s->router != NULL)
        zmq_close(s->router);
    s->router = NULL;
    ring_free(&s->hist);
}

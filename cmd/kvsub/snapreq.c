/*
 * snapreq.c - one request to vLLM's snapshot ROUTER (see snapreq.h).
 */
#include "snapreq.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "curve.h"

/* Appends one received part to r's chunks; returns 0 or -1 (no memory). */
static int
keep_chunk(struct snapreq_reply *r, zmq_msg_t *part)
{
    zmq_msg_t *v = realloc(r->chunk, (r->n + 1) * sizeof *v);

    if (v == NULL)
        return -1;
    r->chunk = v;
    zmq_msg_init(&v[r->n]);
    zmq_msg_move(&v[r->n], part);
    r->n++;
    return 0;
}

/*
 * Reads every part of the reply: the empty delimiter, the seq, the stream
 * id, then the chunks.  Returns 0, or -1 with the reason in err.
 */
static int
read_reply(void *dealer, struct snapreq_reply *r, char *err, size_t errlen)
{
    zmq_msg_t part;
    int n = 0, rc = 0, more;

    zmq_msg_init(&part);
    do {
        if (zmq_msg_recv(&part, dealer, 0) == -1) {
            snprintf(err, errlen, "receive: %s", zmq_strerror(errno));
            rc = -1;
            break;
        }
        /* Before keep_chunk moves the part away. */
        more = zmq_msg_more(&part);
        size_t len = zmq_msg_size(&part);
        const uint8_t *p = zmq_msg_data(&part);
        if (n == 1 && len == 8)
            r->seq = (int64_t)zsock_get_be64(p);
        else if (n == 2 && len == ZSOCK_STREAM_ID_LEN)
            memcpy(r->stream, p, len);
        else if (n >= 3 && keep_chunk(r, &part) == -1)
            rc = -1;
        if ((n == 0 && len != 0) || (n == 1 && len != 8) ||
            (n == 2 && len != ZSOCK_STREAM_ID_LEN))
            rc = -1;
        n++;
    } while (more);
    zmq_msg_close(&part);
    if (rc == 0 && n < 3)
        rc = -1;
    if (rc == -1 && err[0] == '\0')
        snprintf(err, errlen, "not a snapshot reply (%d parts)", n);
    return rc;
}

int
snapreq_fetch(void *zctx, const char *uri, long timeout_ms,
              struct snapreq_reply *r, char *err, size_t errlen)
{
    void *dealer = zmq_socket(zctx, ZMQ_DEALER);
    int rc = -1;

    memset(r, 0, sizeof *r);
    err[0] = '\0';
    if (dealer == NULL || zsock_set_common(dealer) == -1 ||
        curve_apply(dealer, 0) == -1 || zmq_connect(dealer, uri) == -1) {
        snprintf(err, errlen, "%s: %s", uri, zmq_strerror(errno));
        goto out;
    }
    zmq_pollitem_t it = {dealer, 0, ZMQ_POLLIN, 0};
    if (zmq_send(dealer, "", 0, ZMQ_SNDMORE) == -1 ||
        zmq_send(dealer, "snapshot", 8, 0) == -1) {
        snprintf(err, errlen, "%s: send: %s", uri, zmq_strerror(errno));
        goto out;
    }
    if (zmq_poll(&it, 1, timeout_ms) <= 0) {
        snprintf(err, errlen, "%s: no reply in %ldms", uri, timeout_ms);
        goto out;
    }
    rc = read_reply(dealer, r, err, errlen);
out:
    if (rc == -1)
        snapreq_free(r);
    if (dealer != NULL)
        zmq_close(dealer);
    return rc;
}

void
snapreq_free(struct snapreq_reply *r)
{
    for (size_t i = 0; i < r->n; i++)
        zmq_msg_close(&r->chunk[i]);
    free(r->chunk);
    r->chunk = NULL;
    r->n = 0;
}

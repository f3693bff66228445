/*
 * e2e_zmq.c - the C ends of bench/40-e2e.sh: a publisher that sends a
 * recorded stream as fast as libzmq can, and the transport floor (a
 * subscriber that only receives and counts).
 *
 *   e2e_zmq pub URI STREAM     bind an XPUB on URI, wait for one
 *                              subscription, send every payload of STREAM
 *                              as [topic, seq8, payload]; prints the
 *                              CLOCK_MONOTONIC times of the first and
 *                              last send
 *   e2e_zmq count URI BATCHES  connect a SUB (RCVHWM 1000000), receive
 *                              until BATCHES messages or 1 s of silence;
 *                              prints the number received
 *
 * STREAM is bench/gen_stream.py's output: a 4-byte big-endian length, then
 * the payload, repeated.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "zsock.h"

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint8_t *
slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *p = NULL;
    long n;

    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0)
        goto out;
    p = malloc((size_t)n + 1);
    if (p != NULL && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    *len = (size_t)n;
out:
    if (f != NULL)
        fclose(f);
    return p;
}

static int
run_pub(void *ctx, const char *uri, const char *path)
{
    size_t len = 0, off = 0;
    uint8_t *data = slurp(path, &len), seq8[8], sub[256];
    void *s = zmq_socket(ctx, ZMQ_XPUB);
    int hwm = 100000, linger = 10000;
    uint64_t seq = 0;
    double t0;

    if (data == NULL) {
        fprintf(stderr, "e2e_zmq: cannot read %s\n", path);
        return 1;
    }
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(s, uri) == -1) {
        fprintf(stderr, "e2e_zmq: bind %s: %s\n", uri, zmq_strerror(errno));
        return 1;
    }
    /* The subscription message says a subscriber has joined. */
    if (zmq_recv(s, sub, sizeof sub, 0) == -1)
        return 1;
    t0 = now();
    while (off + 4 <= len) {
        uint32_t n = (uint32_t)data[off] << 24 | (uint32_t)data[off + 1] << 16 |
                     (uint32_t)data[off + 2] << 8 | data[off + 3];
        if (n > len - off - 4)
            break;
        zsock_put_be64(seq8, seq++);
        zmq_send(s, "", 0, ZMQ_SNDMORE);
        zmq_send(s, seq8, 8, ZMQ_SNDMORE);
        zmq_send(s, data + off + 4, n, 0);
        off += 4 + (size_t)n;
    }
    /* CLOCK_MONOTONIC, the clock of Python's time.monotonic(). */
    printf("%.6f %.6f\n", t0, now());
    fflush(stdout);
    zmq_close(s);
    free(data);
    return 0;
}

static int
run_count(void *ctx, const char *uri, long want)
{
    void *s = zmq_socket(ctx, ZMQ_SUB);
    int hwm = 1000000, linger = 0, timeout = 1000;
    long got = 0;

    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0);
    if (zmq_connect(s, uri) == -1)
        return 1;
    while (got < want) {
        struct zsock_msg m;
        if (zsock_msg_recv(s, &m, 0) == -1)
            break;
        zsock_msg_close(&m);
        got++;
    }
    printf("%ld\n", got);
    zmq_close(s);
    return 0;
}

int
main(int argc, char **argv)
{
    void *ctx;
    int rc;

    if (argc != 4 || (strcmp(argv[1], "pub") && strcmp(argv[1], "count"))) {
        fprintf(stderr, "usage: e2e_zmq pub URI STREAM | count URI N\n");
        return 2;
    }
    ctx = zmq_ctx_new();
    if (strcmp(argv[1], "pub") == 0)
        rc = run_pub(ctx, argv[2], argv[3]);
    else
        rc = run_count(ctx, argv[2], atol(argv[3]));
    zmq_ctx_term(ctx);
    return rc;
}

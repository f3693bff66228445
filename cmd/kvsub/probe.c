/*
 * probe.c - kvsub --probe (see probe.h).
 *
 * A PUB socket sends nothing to a new subscriber, so "answers" means the
 * ZMTP handshake completed (the socket monitor says so); a TCP listener
 * that is not ZeroMQ fails the handshake.  A replay socket answers a
 * request from seq 2^63-1, past anything an engine holds, with just its end
 * marker: that round trip is the replay endpoint's.  A snapshot socket (vLLM's
 * snapshot mode) answers any request with its snapshot.
 */
#include "probe.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "buf.h"
#include "cli.h"
#include "curve.h"
#include "monitor.h"
#include "replay.h"
#include "snapreq.h"

/* One NDJSON line: up with its round trip, or down with the reason. */
static void
put_line(struct buf *b, const struct zsock_spec *sp, const char *role,
         const char *uri, int up, long long rtt_us, const char *why)
{
    buf_puts(b, "{\"pod\":");
    buf_put_json_str(b, sp->name, strlen(sp->name));
    buf_puts(b, ",\"role\":\"");
    buf_puts(b, role);
    buf_puts(b, "\",\"endpoint\":");
    buf_put_json_str(b, uri, strlen(uri));
    if (up) {
        buf_puts(b, ",\"state\":\"up\",\"rtt_ms\":");
        buf_put_double(b, (double)rtt_us / 1000.0);
    } else {
        buf_puts(b, ",\"state\":\"down\",\"error\":");
        buf_put_json_str(b, why, strlen(why));
    }
    buf_puts(b, "}\n");
}

/* Probes a PUB endpoint; returns 1 when it answered. */
static int
probe_pub(void *zctx, const struct kvsub_opts *o, const struct zsock_spec *sp,
          int idx, struct buf *out)
{
    struct kvmon mon = {0};
    const char *why = "no answer within the timeout";
    char err[256];
    void *sub = zmq_socket(zctx, ZMQ_SUB);
    long long t0 = cli_now_us();
    int up = 0;

    if (sub == NULL || zsock_set_common(sub) == -1 ||
        curve_apply(sub, 0) == -1) {
        why = zmq_strerror(errno);
    } else if (kvmon_open(&mon, zctx, sub, idx, sp->name, sp->pub, err,
                          sizeof err) == -1) {
        why = err;
    } else if (zmq_connect(sub, sp->pub) == -1) {
        why = zmq_strerror(errno);
    } else {
        up = kvmon_wait(&mon, (long)o->replay_timeout_ms, &why) == KVMON_UP;
    }
    put_line(out, sp, "pub", sp->pub, up, cli_now_us() - t0, why);
    kvmon_close(&mon);
    if (sub != NULL)
        zmq_close(sub);
    return up;
}

static int
ignore_batch(void *ctx, uint64_t seq, const uint8_t *payload, size_t len)
{
    return 0;
}

/* Probes a replay endpoint; returns 1 when its end marker came back. */
static int
probe_replay(void *zctx, const struct kvsub_opts *o,
             const struct zsock_spec *sp, struct buf *out)
{
    struct replay_request req = {0};
    struct replay_result res;
    char err[256] = "";
    const char *why = err;
    long long t0 = cli_now_us();
    struct replay_client *rc = replay_open(zctx, sp->replay, err, sizeof err);
    int up = 0;

    if (rc != NULL) {
        req.from = INT64_MAX;
        req.to = UINT64_MAX;
        req.timeout_ms = (int)o->replay_timeout_ms;
        if (replay_fetch(rc, &req, ignore_batch, NULL, NULL, &res, err,
                         sizeof err) == REPLAY_OK &&
            res.got_end)
            up = 1;
        else if (err[0] == '\0')
            why = "no end marker within the timeout";
    }
    put_line(out, sp, "replay", sp->replay, up, cli_now_us() - t0, why);
    replay_close(rc);
    return up;
}

/* Probes a snapshot endpoint; returns 1 when it answered with one. */
static int
probe_snapshot(void *zctx, const struct kvsub_opts *o,
               const struct zsock_spec *sp, struct buf *out)
{
    char why[256];
    struct snapreq_reply r;
    long long t0 = cli_now_us();
    int up = snapreq_fetch(zctx, sp->snapshot, (long)o->replay_timeout_ms, &r,
                           why, sizeof why) == 0;

    if (up && r.seq == -2) {
        snprintf(why, sizeof why,
                 "the engine has no snapshot to give (seq -2)");
        up = 0;
    }
    put_line(out, sp, "snapshot", sp->snapshot, up, cli_now_us() - t0, why);
    if (up) {
        /* Replace the closing "}\n" with the snapshot's seq. */
        out->len -= 2;
        buf_puts(out, ",\"snapshot_seq\":");
        buf_put_i64(out, r.seq);
        buf_puts(out, "}\n");
    }
    snapreq_free(&r);
    return up;
}

int
kvsub_probe(const struct kvsub_opts *o)
{
    struct buf out = {0};
    void *zctx = zmq_ctx_new();
    int down = 0;

    if (zctx == NULL) {
        log_error("cannot create a ZeroMQ context: %s", zmq_strerror(errno));
        return 1;
    }
    for (int i = 0; i < o->nspecs && !cli_signal; i++) {
        const struct zsock_spec *sp = &o->specs[i];
        down += !probe_pub(zctx, o, sp, i, &out);
        if (sp->replay != NULL)
            down += !probe_replay(zctx, o, sp, &out);
        if (sp->snapshot != NULL)
            down += !probe_snapshot(zctx, o, sp, &out);
        /* One line at a time, so a long probe shows progress. */
        if (out.oom || fwrite(out.p, 1, out.len, stdout) != out.len ||
            fflush(stdout) != 0) {
            log_error("write: %s", out.oom ? "out of memory" : strerror(errno));
            down++;
            break;
        }
        buf_clear(&out);
    }
    buf_free(&out);
    zmq_ctx_term(zctx);
    return down == 0 && !cli_signal ? 0 : 1;
}

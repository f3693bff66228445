/*
 * kvpub - the engine side of the protocol.
 *
 * Reads NDJSON events (or generates a synthetic workload), groups them into
 * batches and publishes each as [topic, seq, payload] on a PUB socket, with
 * the payload in an engine's msgpack layout; a ROUTER replays the last
 * batches to DEALER clients exactly as vLLM and SGLang do.
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "buf.h"
#include "cli.h"
#include "curve.h"
#include "curveopt.h"
#include "event.h"
#include "input.h"
#include "pack.h"
#include "ring.h"
#include "snapsrv.h"
#include "synth.h"
#include "wire.h"
#include "wire_encode.h"
#include "zsock.h"

/* The engine's hwm (KVEventsConfig.hwm), applied to the PUB's send side. */
#define ENGINE_HWM 100000
/*
 * How long closing may wait for queued messages to leave.  The consumers
 * use LINGER 0 because nothing they send matters at exit; kvpub is the
 * producer, and with LINGER 0 the batches still queued in libzmq's I/O
 * thread (often the whole tail of a short input) would be dropped at
 * exit.  Bounded, so a subscriber that stopped reading cannot hang us.
 */
#define PUB_LINGER_MS 2000
#define DEFAULT_BUFFER 10000
#define SIGNAL_POLL_MS 250
/* An idle engine in snapshot mode sends an empty batch this often. */
#define HEARTBEAT_MS 1000

struct opts {
    const char *pub_uri;
    const char *replay_uri;
    const char *snapshot_uri; /* --snapshot: vLLM's snapshot mode */
    int connect;
    enum wire_layout layout;
    int bytes_hashes;
    const char *topic;
    uint64_t buffer;
    int replay_hwm; /* -1: libzmq's default */
    int reply_topic;
    double rate; /* batches per second, 0 = as fast as possible */
    int loop;
    uint64_t wait_subs;
    uint64_t delay_ms;
    uint64_t hold_ms;
    int synth;
    uint64_t synth_n;
    uint64_t seed;
    const char *input;
    const char *pod;
    int stats;
    struct curveopt curve; /* --curve-* key files */
};

struct counters {
    uint64_t batches, events, bytes, encode_errors, bad_lines;
    uint64_t replay_requests, replay_invalid, replayed;
    uint64_t subscribers;
    long long start_ms;
};

struct pub {
    const struct opts *o;
    void *ctx, *pub, *router;
    struct ring ring;
    struct snapsrv snap; /* router NULL: not in snapshot mode */
    long long last_send; /* cli_now_ms() of the last batch sent */
    uint64_t seq;
    struct counters st;
    struct input *in;
    struct buf payload;
    struct arena arena;
    struct curve_zap *zap; /* --curve-allow: admits listed clients only */
};

enum { W_TIMEOUT, W_READY, W_SIGNAL, W_ERROR };

static const char usage_text[] =
    "Usage: kvpub [OPTION]... PUB_URI [REPLAY_URI] [< events.ndjson]\n"
    "\n"
    "Publish KV-cache events the way an inference engine does: NDJSON\n"
    "events are grouped into batches by seq, encoded in an engine's\n"
    "msgpack layout and sent as [topic, seq, payload] on a PUB socket;\n"
    "a ROUTER on REPLAY_URI replays the last batches to DEALER clients.\n"
    "The sockets bind (the ROUTER always does).  seq counts from 0, one\n"
    "per batch, like the engine's; the input's seq only groups lines.\n"
    "\n"
    "Options:\n"
    "  -c, --connect         connect the PUB socket instead of binding "
    "it\n"
    "      --layout L        vllm (default), vllm-array, "
    "vllm-map-batch, sglang,\n"
    "                        trtllm, llmd-fs, atom (its replay too)\n"
    "      --bytes-hashes    publish 32-byte digests where a line has "
    "block_digests\n"
    "      --topic T         the topic frame (default: empty)\n"
    "  -i, --input FILE      read FILE instead of standard input\n"
    "      --pod NAME        publish only the lines whose pod is NAME\n"
    "      --synth N         publish N batches of a synthetic busy "
    "engine instead:\n"
    "                        shared system prompts, 16-token blocks, "
    "evictions\n"
    "      --seed S          seed of --synth (default 0); other seeds "
    "act as other\n"
    "                        pods of the same deployment\n"
    "      --rate N[/s|/m|/h]  batches per second (default: as fast as "
    "possible)\n"
    "      --loop            start over at the end of the input, "
    "forever\n"
    "      --wait-subs N     publish only once N subscribers joined\n"
    "      --delay DUR       wait DUR before publishing\n"
    "      --hold DUR        after the input ends, serve replay for "
    "DUR\n"
    "      --buffer N        replay buffer in batches (default 10000)\n"
    "      --reply-topic     replies carry the topic frame (newer vLLM)\n"
    "      --snapshot URI    vLLM's snapshot mode: 24-byte seq frames\n"
    "                        (seq + stream id), an empty batch after 1s\n"
    "                        idle, and a snapshot ROUTER on URI that\n"
    "                        answers with every batch published\n"
    "      --replay-hwm N    the ROUTER's send high-water mark "
    "(default: libzmq's)\n"
    "      --curve-secret FILE  serve with this CURVE key pair (secret key\n"
    "                        file, mode 0600); with -c, the client's own\n"
    "      --curve-server-key FILE  with -c: the kvsub -b's public key\n"
    "      --curve-allow FILE  admit only the clients whose public keys\n"
    "                        FILE lists (needs --curve-secret)\n"
    "      --curve-keygen PREFIX  write a new key pair to PREFIX.key and\n"
    "                        PREFIX.pub, print them as JSON, and exit\n"
    "      --stats           counters as one JSON line on stderr at "
    "exit\n"
    "  -q, --quiet           errors only\n"
    "  -v, --verbose         more diagnostics (-vv: debug)\n"
    "  -V, --version         print the version and exit\n"
    "  -h, --help            print this help and exit\n"
    "\n"
    "Durations: 250ms, 5s, 2m, 1h or a bare number of seconds.\n"
    "\n"
    "OUTPUT\n"
    "  Nothing on stdout.  Diagnostics on stderr; --stats (and SIGUSR1)\n"
    "  print {\"batches\":N,\"events\":N,\"bytes\":N,...} on stderr.\n"
    "\n"
    "EXIT STATUS\n"
    "  0    the input was published (and --hold is over)\n"
    "  1    runtime failure: cannot bind/connect, unreadable input\n"
    "  2    usage error\n"
    "  130, 143  interrupted by SIGINT / SIGTERM\n"
    "\n"
    "EXAMPLES\n"
    "  kvpub tcp://*:5557 tcp://*:5600 < capture.ndjson\n"
    "  kvpub --pod pod-a --layout vllm-array --rate 100/s "
    "--hold 1m \\\n"
    "        tcp://127.0.0.1:5557 tcp://127.0.0.1:5600 < capture.ndjson\n"
    "  kvpub --synth 1000 --seed 2 --wait-subs 1 ipc:///tmp/kv.pub\n";

static void
print_stats(const struct pub *p)
{
    const struct counters *s = &p->st;
    const struct input *in = p->in;

    fprintf(stderr,
            "{\"batches\":%llu,\"events\":%llu,\"bytes\":%llu,"
            "\"encode_errors\":%llu,\"bad_lines\":%llu,"
            "\"records_skipped\":%llu,\"filtered\":%llu,"
            "\"replay_requests\":%llu,\"replay_invalid\":%llu,"
            "\"replayed\":%llu,\"subscribers\":%llu,\"seconds\":%.3f}\n",
            (unsigned long long)s->batches, (unsigned long long)s->events,
            (unsigned long long)s->bytes, (unsigned long long)s->encode_errors,
            (unsigned long long)s->bad_lines,
            (unsigned long long)(in ? in->records : 0),
            (unsigned long long)(in ? in->filtered : 0),
            (unsigned long long)s->replay_requests,
            (unsigned long long)s->replay_invalid,
            (unsigned long long)s->replayed, (unsigned long long)s->subscribers,
            (double)(cli_now_ms() - s->start_ms) / 1000.0);
}

static int
send_part(void *sock, const void *data, size_t len, int flags)
{
    for (;;) {
        if (zmq_send(sock, data, len, flags) != -1)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

/*
 * Appends the payload of ATOM's end marker to out: msgpack [oldest,
 * latest] of the seqs buffered, -1 for each when none.
 */
static void
atom_end_payload(const struct ring *r, struct buf *out)
{
    struct pack pk;

    pack_init(&pk, out);
    pack_array(&pk, 2);
    for (int k = 0; k < 2; k++) {
        if (r->count == 0)
            pack_int(&pk, -1);
        else
            pack_uint(&pk, ring_at(r, k == 0 ? 0 : r->count - 1)->seq);
    }
    pack_free(&pk);
}

/*
 * Answers every queued replay request.  Like the engine: exactly three
 * frames [identity, "", start] or no reply at all; one message per buffered
 * batch with seq >= start, then the end marker.  ATOM's ROUTER (--layout
 * atom) also takes [identity, start], answers without the empty delimiter,
 * and ends with msgpack [oldest, latest] as the marker's payload.  The
 * ROUTER never blocks and, without ROUTER_MANDATORY, drops what does not
 * fit the peer's pipe.
 */
static void
serve_replay(struct pub *p)
{
    static const uint8_t end_seq[8] = {0xff, 0xff, 0xff, 0xff,
                                       0xff, 0xff, 0xff, 0xff};
    const char *topic = p->o->topic;
    size_t tlen = strlen(topic);
    int rt = p->o->reply_topic;
    int atom = p->o->layout == WIRE_LAYOUT_ATOM;

    for (;;) {
        struct zsock_msg m;
        size_t idlen, slen;
        struct buf end = {0};

        if (zsock_msg_recv(p->router, &m, ZMQ_DONTWAIT) == -1)
            return;
        p->st.replay_requests++;
        if (m.nparts != 3 && !(atom && m.nparts == 2)) {
            log_warn("invalid replay request (%d frames)", m.nparts);
            p->st.replay_invalid++;
            zsock_msg_close(&m);
            continue;
        }
        const uint8_t *id = zsock_part(&m, 0, &idlen);
        const uint8_t *sb = zsock_part(&m, m.nparts - 1, &slen);
        /* Any length, big-endian, as int.from_bytes reads it. */
        uint64_t start = 0;
        int beyond = 0;
        for (size_t i = 0; i < slen; i++) {
            if (start >> 56)
                beyond = 1;
            start = start << 8 | sb[i];
        }
        size_t i = beyond ? p->ring.count : ring_find(&p->ring, start);
        log_debug("replay from %llu: %zu batches", (unsigned long long)start,
                  p->ring.count - i);
        for (; i < p->ring.count; i++) {
            const struct ring_slot *s = ring_at(&p->ring, i);
            uint8_t seq8[8];
            zsock_put_be64(seq8, s->seq);
            send_part(p->router, id, idlen, ZMQ_SNDMORE | ZMQ_DONTWAIT);
            if (!atom)
                send_part(p->router, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
            if (rt)
                send_part(p->router, topic, tlen, ZMQ_SNDMORE | ZMQ_DONTWAIT);
            send_part(p->router, seq8, 8, ZMQ_SNDMORE | ZMQ_DONTWAIT);
            send_part(p->router, s->data, s->len, ZMQ_DONTWAIT);
            p->st.replayed++;
        }
        if (atom)
            atom_end_payload(&p->ring, &end);
        send_part(p->router, id, idlen, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        if (!atom)
            send_part(p->router, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        if (rt)
            send_part(p->router, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        send_part(p->router, end_seq, 8, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        send_part(p->router, end.len ? end.p : "", end.len, ZMQ_DONTWAIT);
        buf_free(&end);
        zsock_msg_close(&m);
    }
}

/* XPUB: a subscription message is 1 + topic, an unsubscription 0 + topic. */
static void
read_subscriptions(struct pub *p)
{
    for (;;) {
        struct zsock_msg m;
        size_t len;

        if (zsock_msg_recv(p->pub, &m, ZMQ_DONTWAIT) == -1)
            return;
        const uint8_t *d = zsock_part(&m, 0, &len);
        if (len >= 1 && d[0] == 1) {
            p->st.subscribers++;
            log_info("subscriber joined (%llu)",
                     (unsigned long long)p->st.subscribers);
        } else if (len >= 1 && d[0] == 0 && p->st.subscribers > 0) {
            p->st.subscribers--;
        }
        zsock_msg_close(&m);
    }
}

/*
 * Serves replay and subscriptions until the monotonic deadline (ms; -1:
 * none), until fd (if >= 0) is readable, or until a signal.  A deadline in
 * the past polls once without waiting.
 */
static void heartbeat(struct pub *p);

static int
wait_until(struct pub *p, long long deadline, int fd)
{
    for (;;) {
        zmq_pollitem_t it[4];
        int n = 0, ir = -1, ip = -1, ifd = -1, is = -1;
        long timeout = -1;

        if (cli_signal)
            return W_SIGNAL;
        if (cli_take_usr1())
            print_stats(p);
        memset(it, 0, sizeof it);
        if (p->router != NULL) {
            it[n].socket = p->router;
            it[n].events = ZMQ_POLLIN;
            ir = n++;
        }
        if (p->snap.router != NULL) {
            it[n].socket = p->snap.router;
            it[n].events = ZMQ_POLLIN;
            is = n++;
            heartbeat(p);
        }
        if (p->o->wait_subs > 0) {
            it[n].socket = p->pub;
            it[n].events = ZMQ_POLLIN;
            ip = n++;
        }
        if (fd >= 0) {
            it[n].fd = fd;
            it[n].events = ZMQ_POLLIN;
            ifd = n++;
        }
        if (deadline >= 0) {
            long long left = deadline - cli_now_ms();
            timeout = left > 0 ? (long)left : 0;
        }
        /*
         * A signal that lands between the check above and the poll would
         * otherwise be noticed only at the next event: wake up regularly.
         */
        if (timeout < 0 || timeout > SIGNAL_POLL_MS)
            timeout = SIGNAL_POLL_MS;
        if (zmq_poll(it, n, timeout) == -1) {
            if (errno == EINTR)
                continue;
            return W_ERROR;
        }
        if (ir >= 0 && (it[ir].revents & ZMQ_POLLIN))
            serve_replay(p);
        if (is >= 0 && (it[is].revents & ZMQ_POLLIN))
            snapsrv_serve(&p->snap);
        if (ip >= 0 && (it[ip].revents & ZMQ_POLLIN))
            read_subscriptions(p);
        /* End of file shows as POLLERR (POLLHUP): read() then says so. */
        if (ifd >= 0 && (it[ifd].revents & (ZMQ_POLLIN | ZMQ_POLLERR)))
            return W_READY;
        if (deadline >= 0 && cli_now_ms() >= deadline)
            return W_TIMEOUT;
    }
}

static double
now_real(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Encodes and sends one batch under the next seq, then keeps it for
 * replay.  Returns 0, or -1 with the reason in err.
 */
static int
publish(struct pub *p, struct kv_batch *b, char *err, size_t errlen)
{
    struct wire_enc_opts eo = {p->o->layout, p->o->bytes_hashes};
    const char *topic = p->o->topic;
    uint64_t seq = p->seq++;
    uint8_t seq8[8 + ZSOCK_STREAM_ID_LEN];
    size_t seqlen = 8;
    char e[256];

    if (!b->has_ts) {
        b->ts = now_real();
        b->has_ts = 1;
    }
    b->seq = seq;
    buf_clear(&p->payload);
    if (wire_encode(b, &eo, &p->payload, e, sizeof e) == -1) {
        /*
         * The engine takes the number before encoding, so a batch msgspec
         * cannot encode is a permanent gap there too: do the same.
         */
        log_warn("seq %llu not published: %s", (unsigned long long)seq, e);
        p->st.encode_errors++;
        return 0;
    }
    zsock_put_be64(seq8, seq);
    /* Snapshot mode: the seq, then the process's stream id. */
    if (p->snap.router != NULL) {
        memcpy(seq8 + 8, p->snap.stream, ZSOCK_STREAM_ID_LEN);
        seqlen += ZSOCK_STREAM_ID_LEN;
        snapsrv_record(&p->snap, seq, p->payload.p, p->payload.len);
    }
    p->last_send = cli_now_ms();
    if (send_part(p->pub, topic, strlen(topic), ZMQ_SNDMORE) == -1 ||
        send_part(p->pub, seq8, seqlen, ZMQ_SNDMORE) == -1 ||
        send_part(p->pub, p->payload.p, p->payload.len, 0) == -1) {
        snprintf(err, errlen, "send: %s", zmq_strerror(errno));
        return -1;
    }
    if (p->router != NULL &&
        ring_push(&p->ring, seq, p->payload.p, p->payload.len) == -1) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    p->st.batches++;
    for (size_t i = 0; i < b->n_events; i++)
        p->st.events += kv_type_is_engine(b->events[i].type);
    p->st.bytes += p->payload.len;
    return 0;
}

/*
 * Snapshot mode: an engine idle for a second publishes an empty batch
 * [ts, [], rank] under the next seq (docs/protocol.md#snapshots).
 */
static void
heartbeat(struct pub *p)
{
    struct kv_batch b;
    char err[256];

    if (cli_now_ms() - p->last_send < HEARTBEAT_MS)
        return;
    memset(&b, 0, sizeof b);
    b.has_rank = 1;
    if (publish(p, &b, err, sizeof err) == -1)
        log_warn("heartbeat: %s", err);
}

static int
open_sockets(struct pub *p, char *err, size_t errlen)
{
    const struct opts *o = p->o;
    int hwm = ENGINE_HWM, one = 1;

    p->ctx = zmq_ctx_new();
    if (p->ctx == NULL)
        goto fail;
    /* Before the first bind, so that no client gets in unchecked. */
    if (curve_allows() &&
        (p->zap = curve_zap_start(p->ctx, err, errlen)) == NULL)
        return -1;
    /* XPUB sees every subscription (VERBOSE), so --wait-subs can count. */
    p->pub = zmq_socket(p->ctx, o->wait_subs ? ZMQ_XPUB : ZMQ_PUB);
    if (p->pub == NULL || zsock_set_common(p->pub) == -1 ||
        curve_apply(p->pub, !o->connect) == -1 ||
        zmq_setsockopt(p->pub, ZMQ_SNDHWM, &hwm, sizeof hwm) == -1)
        goto fail;
    if (o->wait_subs &&
        zmq_setsockopt(p->pub, ZMQ_XPUB_VERBOSE, &one, sizeof one) == -1)
        goto fail;
    if ((o->connect ? zmq_connect(p->pub, o->pub_uri)
                    : zmq_bind(p->pub, o->pub_uri)) == -1) {
        snprintf(err, errlen, "%s %s: %s", o->connect ? "connect" : "bind",
                 o->pub_uri, zmq_strerror(errno));
        return -1;
    }
    if (o->snapshot_uri != NULL &&
        snapsrv_open(&p->snap, p->ctx, o->snapshot_uri, err, errlen) == -1)
        return -1;
    p->last_send = cli_now_ms();
    if (o->replay_uri == NULL)
        return 0;
    if (ring_init(&p->ring, (size_t)o->buffer) == -1) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    p->router = zmq_socket(p->ctx, ZMQ_ROUTER);
    if (p->router == NULL || zsock_set_common(p->router) == -1 ||
        curve_apply(p->router, 1) == -1)
        goto fail;
    if (o->replay_hwm >= 0 &&
        zmq_setsockopt(p->router, ZMQ_SNDHWM, &o->replay_hwm,
                       sizeof o->replay_hwm) == -1)
        goto fail;
    if (zmq_bind(p->router, o->replay_uri) == -1) {
        snprintf(err, errlen, "bind %s: %s", o->replay_uri,
                 zmq_strerror(errno));
        return -1;
    }
    return 0;
fail:
    snprintf(err, errlen, "zmq: %s", zmq_strerror(errno));
    return -1;
}

static void
close_sockets(struct pub *p)
{
    int linger = PUB_LINGER_MS;

    if (p->pub != NULL) {
        zmq_setsockopt(p->pub, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(p->pub);
    }
    if (p->router != NULL) {
        zmq_setsockopt(p->router, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(p->router);
    }
    snapsrv_close(&p->snap);
    curve_zap_stop(p->zap);
    p->zap = NULL;
    if (p->ctx != NULL) {
        while (zmq_ctx_term(p->ctx) == -1 && errno == EINTR)
            ;
    }
    p->pub = p->router = p->ctx = NULL;
}

/* The next batch from the synthetic workload, as input_next reports. */
static int
synth_batch(struct pub *p, struct synth **sy, uint64_t *left,
            struct kv_batch *b, char *err, size_t errlen)
{
    if (*left == 0)
        return INPUT_END;
    memset(b, 0, sizeof *b);
    if (synth_next(*sy, &p->arena, b) == -1) {
        snprintf(err, errlen, "out of memory");
        return INPUT_ERR;
    }
    b->has_rank = 1;
    (*left)--;
    return INPUT_BATCH;
}

static int
restart_synth(const struct opts *o, struct synth **sy, uint64_t *left)
{
    struct synth_opts so = {o->seed, 16, 0};

    synth_free(*sy);
    *sy = synth_new(&so);
    *left = o->synth_n;
    return *sy != NULL ? 0 : -1;
}

/* Publishes the whole input (or --synth), looping if asked. */
static int
publish_all(struct pub *p, struct synth **sy, char *err, size_t errlen)
{
    const struct opts *o = p->o;
    uint64_t left = 0, pass = 0, k = 0;
    long long t0 = cli_now_ms();

    if (o->synth && restart_synth(o, sy, &left) == -1) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    while (!cli_signal) {
        struct kv_batch b;
        int rc = o->synth ? synth_batch(p, sy, &left, &b, err, errlen)
                          : input_next(p->in, &p->arena, &b, err, errlen);

        switch (rc) {
        case INPUT_MORE:
            if (wait_until(p, -1, p->in->fd) == W_READY &&
                input_fill(p->in) == -1 && errno != EINTR && errno != EAGAIN) {
                snprintf(err, errlen, "read: %s", strerror(errno));
                return -1;
            }
            continue;
        case INPUT_BAD:
            log_warn("%s", err);
            p->st.bad_lines++;
            continue;
        case INPUT_ERR:
            return -1;
        case INPUT_END:
            if (!o->loop)
                return 0;
            if (pass == 0) {
                log_warn("nothing to publish: not looping");
                return 0;
            }
            pass = 0;
            arena_reset(&p->arena);
            if (o->synth ? restart_synth(o, sy, &left)
                         : input_rewind(p->in, err, errlen)) {
                if (o->synth)
                    snprintf(err, errlen, "out of memory");
                return -1;
            }
            continue;
        default:
            break;
        }
        if (o->rate > 0) {
            long long due = t0 + (long long)((double)k * 1000.0 / o->rate);
            if (wait_until(p, due, -1) == W_SIGNAL)
                return 0;
        }
        if (publish(p, &b, err, errlen) == -1)
            return -1;
        k++;
        pass++;
        /* Answer replay requests between batches, as the engine does. */
        wait_until(p, 0, -1);
        arena_reset(&p->arena);
    }
    return 0;
}

static int
run(const struct opts *o)
{
    struct pub p;
    struct input in;
    struct synth *sy = NULL;
    char err[512] = "";
    int code = 1;

    memset(&p, 0, sizeof p);
    memset(&in, 0, sizeof in);
    p.o = o;
    p.st.start_ms = cli_now_ms();
    if (!o->synth) {
        if (input_open(&in, o->input, o->loop, o->pod, err, sizeof err) == -1) {
            log_error("%s", err);
            goto out;
        }
        p.in = &in;
    }
    if (open_sockets(&p, err, sizeof err) == -1) {
        log_error("%s", err);
        goto out;
    }
    while (p.st.subscribers < o->wait_subs && !cli_signal)
        wait_until(&p, cli_now_ms() + 100, -1);
    if (o->delay_ms > 0)
        wait_until(&p, cli_now_ms() + (long long)o->delay_ms, -1);
    if (!cli_signal && publish_all(&p, &sy, err, sizeof err) == -1) {
        log_error("%s", err);
        goto out;
    }
    if (o->hold_ms > 0 && !cli_signal)
        wait_until(&p, cli_now_ms() + (long long)o->hold_ms, -1);
    log_info("published %llu batches", (unsigned long long)p.st.batches);
    code = 0;
out:
    close_sockets(&p);
    if (o->stats)
        print_stats(&p);
    synth_free(sy);
    input_close(p.in);
    ring_free(&p.ring);
    buf_free(&p.payload);
    arena_free(&p.arena);
    return code;
}

enum {
    OPT_LAYOUT = 256,
    OPT_BYTES_HASHES,
    OPT_TOPIC,
    OPT_BUFFER,
    OPT_REPLAY_HWM,
    OPT_REPLY_TOPIC,
    OPT_RATE,
    OPT_LOOP,
    OPT_WAIT_SUBS,
    OPT_DELAY,
    OPT_HOLD,
    OPT_SYNTH,
    OPT_SEED,
    OPT_POD,
    OPT_STATS,
    OPT_SNAPSHOT
};

static int
is_uri(const char *s)
{
    return strncmp(s, "tcp://", 6) == 0 || strncmp(s, "ipc://", 6) == 0 ||
           strncmp(s, "inproc://", 9) == 0;
}

static const struct option long_opts[] = {
    {"connect", no_argument, NULL, 'c'},
    {"layout", required_argument, NULL, OPT_LAYOUT},
    {"bytes-hashes", no_argument, NULL, OPT_BYTES_HASHES},
    {"topic", required_argument, NULL, OPT_TOPIC},
    {"input", required_argument, NULL, 'i'},
    {"pod", required_argument, NULL, OPT_POD},
    {"synth", required_argument, NULL, OPT_SYNTH},
    {"seed", required_argument, NULL, OPT_SEED},
    {"rate", required_argument, NULL, OPT_RATE},
    {"loop", no_argument, NULL, OPT_LOOP},
    {"wait-subs", required_argument, NULL, OPT_WAIT_SUBS},
    {"delay", required_argument, NULL, OPT_DELAY},
    {"hold", required_argument, NULL, OPT_HOLD},
    {"buffer", required_argument, NULL, OPT_BUFFER},
    {"reply-topic", no_argument, NULL, OPT_REPLY_TOPIC},
    {"replay-hwm", required_argument, NULL, OPT_REPLAY_HWM},
    {"stats", no_argument, NULL, OPT_STATS},
    {"snapshot", required_argument, NULL, OPT_SNAPSHOT},
    CURVEOPT_SECRET_OPTION,
    CURVEOPT_SERVER_KEY_OPTION,
    CURVEOPT_ALLOW_OPTION,
    CURVEOPT_KEYGEN_OPTION,
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"version", no_argument, NULL, 'V'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* The operands after the options: PUB_URI [REPLAY_URI]; exits if wrong. */
static void
parse_operands(int argc, char **argv, struct opts *o)
{
    if (optind >= argc)
        cli_usage_error("missing PUB_URI");
    if (argc - optind > 2)
        cli_usage_error("too many arguments");
    o->pub_uri = argv[optind];
    o->replay_uri = optind + 1 < argc ? argv[optind + 1] : NULL;
    if (!is_uri(o->pub_uri))
        cli_usage_error("not a tcp://, ipc:// or inproc:// URI: '%s'",
                        o->pub_uri);
    if (o->replay_uri != NULL && !is_uri(o->replay_uri))
        cli_usage_error("not a tcp://, ipc:// or inproc:// URI: '%s'",
                        o->replay_uri);
    if (o->synth && (o->input != NULL || o->pod != NULL))
        cli_usage_error("--synth reads no input (--input, --pod)");
}

static void
parse_args(int argc, char **argv, struct opts *o)
{
    int c;

    memset(o, 0, sizeof *o);
    o->layout = WIRE_LAYOUT_VLLM;
    o->topic = "";
    o->buffer = DEFAULT_BUFFER;
    o->replay_hwm = -1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":ci:qvVh", long_opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            o->connect = 1;
            break;
        case OPT_LAYOUT:
            if (wire_layout_parse(optarg, &o->layout) == -1)
                cli_usage_error("--layout: unknown layout '%s' (vllm, "
                                "vllm-array, vllm-map-batch, sglang, trtllm, "
                                "llmd-fs, atom)",
                                optarg);
            break;
        case OPT_BYTES_HASHES:
            o->bytes_hashes = 1;
            break;
        case OPT_TOPIC:
            o->topic = optarg;
            break;
        case 'i':
            o->input = optarg;
            break;
        case OPT_POD:
            o->pod = optarg;
            break;
        case OPT_SYNTH:
            o->synth_n = cli_arg_count("--synth", optarg, 1, UINT64_MAX);
            o->synth = 1;
            break;
        case OPT_SEED:
            o->seed = cli_arg_count("--seed", optarg, 0, UINT64_MAX);
            break;
        case OPT_RATE:
            o->rate = cli_arg_rate("--rate", optarg);
            break;
        case OPT_LOOP:
            o->loop = 1;
            break;
        case OPT_WAIT_SUBS:
            o->wait_subs = cli_arg_count("--wait-subs", optarg, 0, 1000000);
            break;
        case OPT_DELAY:
            o->delay_ms = cli_arg_duration("--delay", optarg, 0);
            break;
        case OPT_HOLD:
            o->hold_ms = cli_arg_duration("--hold", optarg, 0);
            break;
        case OPT_BUFFER:
            o->buffer = cli_arg_count("--buffer", optarg, 1, 100000000);
            break;
        case OPT_REPLY_TOPIC:
            o->reply_topic = 1;
            break;
        case OPT_REPLAY_HWM:
            o->replay_hwm =
                (int)cli_arg_count("--replay-hwm", optarg, 0, INT32_MAX);
            break;
        case OPT_STATS:
            o->stats = 1;
            break;
        case OPT_SNAPSHOT:
            if (!is_uri(optarg))
                cli_usage_error("--snapshot: '%s' is not a tcp://, ipc:// or "
                                "inproc:// URI",
                                optarg);
            o->snapshot_uri = optarg;
            break;
        default:
            if (!curveopt_option(c, optarg, &o->curve) &&
                !cli_common_option(c, usage_text))
                cli_bad_option(c, argv);
        }
    }
    parse_operands(argc, argv, o);
    if (o->curve.server != NULL && !o->connect)
        cli_usage_error("--curve-server-key is for -c (kvpub connects to "
                        "a bound kvsub); a bound kvpub serves with "
                        "--curve-secret");
    curveopt_load(&o->curve);
}

int
main(int argc, char **argv)
{
    struct opts o;

    cli_prog = "kvpub";
    parse_args(argc, argv, &o);
    if (cli_signals_install() == -1) {
        log_error("cannot install signal handlers");
        return 1;
    }
    int code = run(&o);
    if (cli_signal)
        cli_reraise(cli_signal);
    return code;
}

/*
 * test_zsock.c - endpoint specs, the DP port rule, whole-message receive and
 * live frame validation (docs/protocol.md#frames, fixture F18 of
 * docs/protocol.md#fixtures).
 */
#include <errno.h>
#include <stdlib.h>
#include <zmq.h>

#include "unit.h"
#include "zsock.h"

static void
test_spec_parse(void)
{
    static const struct {
        const char *in;
        int rc;
        const char *name, *pub, *replay; /* replay NULL: none */
        const char *snapshot;            /* NULL: none */
    } cases[] = {
        {"tcp://127.0.0.1:5557", 0, "tcp://127.0.0.1:5557",
         "tcp://127.0.0.1:5557", NULL, NULL},
        {"pod-a=tcp://h:5557,tcp://h:5558", 0, "pod-a", "tcp://h:5557",
         "tcp://h:5558", NULL},
        {"tcp://h:5557,tcp://h:5558", 0, "tcp://h:5557", "tcp://h:5557",
         "tcp://h:5558", NULL},
        {"a=ipc:///tmp/x.sock", 0, "a", "ipc:///tmp/x.sock", NULL, NULL},
        {"a=ipc:///tmp/a,b.sock,ipc:///tmp/r", 0, "a", "ipc:///tmp/a,b.sock",
         "ipc:///tmp/r", NULL},
        {"inproc://pub,inproc://rep", 0, "inproc://pub", "inproc://pub",
         "inproc://rep", NULL},
        {"n=x=tcp://h:1", -1, NULL, NULL, NULL, NULL},
        {"tcp://*:5557", 0, "tcp://*:5557", "tcp://*:5557", NULL, NULL},
        {"", -1, NULL, NULL, NULL, NULL},
        {"=tcp://h:1", -1, NULL, NULL, NULL, NULL},
        {"a=", -1, NULL, NULL, NULL, NULL},
        {"udp://h:1", -1, NULL, NULL, NULL, NULL},
        {"a=http://h:1", -1, NULL, NULL, NULL, NULL},
        {"tcp://", -1, NULL, NULL, NULL, NULL},
        {"tcp://h", -1, NULL, NULL, NULL, NULL},
        {"tcp://h:", -1, NULL, NULL, NULL, NULL},
        {"tcp://:5", -1, NULL, NULL, NULL, NULL},
        {"tcp://h:1,", -1, NULL, NULL, NULL, NULL},
        {"tcp://h:1,h:2", -1, NULL, NULL, NULL, NULL},
        {"tcp://h:1,ws://h:2", -1, NULL, NULL, NULL, NULL},
        {"p=tcp://h:5557,tcp://h:5600,tcp://h:5700", 0, "p", "tcp://h:5557",
         "tcp://h:5600", "tcp://h:5700"},
        {"ipc:///t/p,ipc:///t/r,x,ipc:///t/s", 0, "ipc:///t/p", "ipc:///t/p",
         "ipc:///t/r,x", "ipc:///t/s"},
        {"tcp://h:1,tcp://h:2,udp://h:3", -1, NULL, NULL, NULL, NULL},
        {"tcp://h:1,ipc:///t/r,x", 0, "tcp://h:1", "tcp://h:1", "ipc:///t/r,x",
         NULL},
        {"tcp://h:1,tcp://h:2,tcp://h", -1, NULL, NULL, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct zsock_spec sp;
        char err[256] = "", what[160];
        int rc = zsock_spec_parse(cases[i].in, &sp, err, sizeof err);

        snprintf(what, sizeof what, "spec '%s' rc %d", cases[i].in,
                 cases[i].rc);
        CHECK(rc == cases[i].rc, what);
        if (rc == -1) {
            snprintf(what, sizeof what, "spec '%s' has a reason", cases[i].in);
            CHECK(err[0] != '\0', what);
            continue;
        }
        if (cases[i].rc != 0) {
            zsock_spec_free(&sp);
            continue;
        }
        snprintf(what, sizeof what, "spec '%s' name", cases[i].in);
        CHECK_STR(sp.name, cases[i].name, what);
        snprintf(what, sizeof what, "spec '%s' pub", cases[i].in);
        CHECK_STR(sp.pub, cases[i].pub, what);
        snprintf(what, sizeof what, "spec '%s' replay", cases[i].in);
        if (cases[i].replay == NULL)
            CHECK(sp.replay == NULL, what);
        else
            CHECK_STR(sp.replay, cases[i].replay, what);
        snprintf(what, sizeof what, "spec '%s' snapshot", cases[i].in);
        if (cases[i].snapshot == NULL)
            CHECK(sp.snapshot == NULL, what);
        else
            CHECK_STR(sp.snapshot, cases[i].snapshot, what);
        zsock_spec_free(&sp);
    }
    zsock_spec_free(NULL);
}

static void
test_offset(void)
{
    static const struct {
        const char *in;
        int rank, rc;
        const char *out;
    } cases[] = {
        {"tcp://*:5557", 0, 0, "tcp://*:5557"},
        {"tcp://*:5557", 1, 0, "tcp://*:5558"},
        {"tcp://10.0.0.5:5557", 3, 0, "tcp://10.0.0.5:5560"},
        {"tcp://[::1]:5557", 2, 0, "tcp://[::1]:5559"},
        {"tcp://*:0", 4, 0, "tcp://*:0"},
        {"tcp://h:65535", 1, -1, NULL},
        {"tcp://h:*", 1, -1, NULL},
        {"tcp://h:12x", 1, -1, NULL},
        {"inproc://kv", 0, 0, "inproc://kv"},
        {"inproc://kv", 2, 0, "inproc://kv_dp2"},
        {"ipc:///tmp/kv", 0, 0, "ipc:///tmp/kv"},
        {"ipc:///tmp/kv", 1, -1, NULL},
        {"", 3, 0, ""},
        {"tcp://h:1", -1, -1, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[128] = "", err[256] = "", what[160];
        int rc = zsock_offset_uri(cases[i].in, cases[i].rank, out, sizeof out,
                                  err, sizeof err);
        snprintf(what, sizeof what, "offset '%s' rank %d rc", cases[i].in,
                 cases[i].rank);
        CHECK(rc == cases[i].rc, what);
        snprintf(what, sizeof what, "offset '%s' rank %d result", cases[i].in,
                 cases[i].rank);
        if (cases[i].rc == 0)
            CHECK_STR(out, cases[i].out, what);
        else
            CHECK(err[0] != '\0', what);
    }
    char small[8], err[64];
    CHECK(zsock_offset_uri("tcp://host:5557", 1, small, sizeof small, err,
                           sizeof err) == -1,
          "offset result too long for the buffer");
}

static void
test_expand(void)
{
    struct zsock_spec in, out[3];
    char err[256];

    CHECK(zsock_spec_parse("pod=tcp://h:5557,tcp://h:5657,tcp://h:5700", &in,
                           err, sizeof err) == 0,
          "expand: parse");
    CHECK(zsock_spec_expand(&in, 3, out, err, sizeof err) == 0, "expand 3");
    CHECK_STR(out[0].name, "pod/0", "expand rank 0 name");
    CHECK_STR(out[2].name, "pod/2", "expand rank 2 name");
    CHECK_STR(out[0].pub, "tcp://h:5557", "expand rank 0 pub");
    CHECK_STR(out[1].pub, "tcp://h:5558", "expand rank 1 pub");
    CHECK_STR(out[2].replay, "tcp://h:5659", "expand rank 2 replay");
    CHECK_STR(out[1].snapshot, "tcp://h:5701", "expand rank 1 snapshot");
    for (int i = 0; i < 3; i++)
        zsock_spec_free(&out[i]);
    zsock_spec_free(&in);

    CHECK(zsock_spec_parse("a=ipc:///tmp/p", &in, err, sizeof err) == 0,
          "expand ipc: parse");
    CHECK(zsock_spec_expand(&in, 1, out, err, sizeof err) == 0 &&
              out[0].replay == NULL && out[0].snapshot == NULL,
          "expand ipc to 1 rank works");
    zsock_spec_free(&out[0]);
    CHECK(zsock_spec_expand(&in, 2, out, err, sizeof err) == -1,
          "expand ipc to 2 ranks is refused");
    CHECK(zsock_spec_expand(&in, 0, out, err, sizeof err) == -1,
          "expand to 0 ranks is refused");
    zsock_spec_free(&in);
}

static void
test_be64(void)
{
    static const uint64_t vals[] = {
        0, 1, 255, 256, 0x0102030405060708ull, (uint64_t)1 << 63, UINT64_MAX};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        uint8_t b[8];
        zsock_put_be64(b, vals[i]);
        CHECK_U64(zsock_get_be64(b), vals[i], "be64 round trip");
    }
    uint8_t b[8];
    zsock_put_be64(b, 0x0102030405060708ull);
    CHECK(b[0] == 1 && b[7] == 8, "be64 is big-endian");
}

/* Sends a message of n parts from pair a. */
static void
send_parts(void *a, const void *const *p, const size_t *len, int n)
{
    for (int i = 0; i < n; i++)
        zmq_send(a, p[i], len[i], i + 1 < n ? ZMQ_SNDMORE : 0);
}

/* Fixture F18 plus whole-message receive, over an inproc PAIR. */
static void
test_live(void)
{
    void *ctx = zmq_ctx_new();
    void *a = zmq_socket(ctx, ZMQ_PAIR), *b = zmq_socket(ctx, ZMQ_PAIR);
    uint8_t s5[8], sff[8], s24[24] = {0}, s7[7] = {0};
    /* seq 5 and stream id 0x10..0x1f. */
    s24[7] = 5;
    for (int k = 0; k < 16; k++)
        s24[8 + k] = (uint8_t)(0x10 + k);
    static const uint8_t payload[] = {0x93, 0xc0, 0x90, 0xc0};
    static const struct {
        int nparts;
        int seq_kind; /* 0: seq 5 (8 bytes), 1: 7 bytes, 2: 24, 3: ff x8 */
        const char *topic;
        int rc;
        const char *what;
    } cases[] = {
        {3, 0, "", 0, "F18e empty topic, 3 parts: accepted"},
        {3, 0, "kv-events", 0, "topic kv-events: accepted"},
        {2, 0, "", -1, "F18a 2 parts: rejected"},
        {4, 0, "", -1, "F18b 4 parts: rejected"},
        {6, 0, "", -1, "6 parts (more than kept): rejected"},
        {3, 1, "", -1, "F18c 7-byte seq: rejected"},
        {3, 2, "", 0, "F18d 24-byte seq (snapshot mode): accepted"},
        {3, 3, "", -1, "F18f end-marker seq on live: rejected"},
        {1, 0, "", -1, "1 part: rejected"},
    };

    CHECK(zsock_set_common(a) == 0 && zsock_set_common(b) == 0,
          "set_common on PAIR sockets");
    CHECK(zmq_bind(a, "inproc://zsock-test") == 0 &&
              zmq_connect(b, "inproc://zsock-test") == 0,
          "inproc pair connected");
    zsock_put_be64(s5, 5);
    zsock_put_be64(sff, UINT64_MAX);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const void *p[8];
        size_t len[8];
        int n = cases[i].nparts;
        struct zsock_msg m;
        uint64_t seq = 0;
        const uint8_t *pl = NULL, *stream = NULL;
        size_t pllen = 0;
        char err[128] = "";

        p[0] = cases[i].topic;
        len[0] = strlen(cases[i].topic);
        switch (cases[i].seq_kind) {
        case 1:
            p[1] = s7, len[1] = sizeof s7;
            break;
        case 2:
            p[1] = s24, len[1] = sizeof s24;
            break;
        case 3:
            p[1] = sff, len[1] = 8;
            break;
        default:
            p[1] = s5, len[1] = 8;
        }
        for (int k = 2; k < 8; k++)
            p[k] = payload, len[k] = sizeof payload;
        send_parts(a, p, len, n);
        /* A sentinel message after each case proves nothing desynced. */
        zmq_send(a, "next", 4, 0);

        if (!CHECK(zsock_msg_recv(b, &m, 0) == 0, cases[i].what))
            continue;
        CHECK(m.nparts == n, "nparts counts every part");
        CHECK(m.kept == (n < ZSOCK_MAX_PARTS ? n : ZSOCK_MAX_PARTS),
              "kept is capped at ZSOCK_MAX_PARTS");
        int rc =
            zsock_live_parse(&m, &seq, &stream, &pl, &pllen, err, sizeof err);
        CHECK(rc == cases[i].rc, cases[i].what);
        if (rc == 0 && cases[i].seq_kind == 2) {
            /* The snapshot-mode frame: seq 5, then the stream id. */
            CHECK_U64(seq, 5, "24-byte frame: seq from its first 8 bytes");
            CHECK(stream != NULL && memcmp(stream, s24 + 8, 16) == 0,
                  "24-byte frame: the stream id is its last 16 bytes");
        } else if (rc == 0) {
            CHECK(stream == NULL, "8-byte frame: no stream id");
            CHECK_U64(seq, 5, "seq decoded big-endian");
            CHECK(pllen == sizeof payload && memcmp(pl, payload, pllen) == 0,
                  "payload borrowed intact");
        } else {
            CHECK(err[0] != '\0', "rejection has a reason");
        }
        zsock_msg_close(&m);

        size_t sl;
        const uint8_t *sp;
        CHECK(zsock_msg_recv(b, &m, 0) == 0 && m.nparts == 1 &&
                  (sp = zsock_part(&m, 0, &sl)) != NULL && sl == 4 &&
                  memcmp(sp, "next", 4) == 0,
              "the following message is intact");
        zsock_msg_close(&m);
    }

    struct zsock_msg m;
    size_t l = 99;
    CHECK(zsock_msg_recv(b, &m, ZMQ_DONTWAIT) == -1 && errno == EAGAIN,
          "DONTWAIT on an empty socket is EAGAIN");
    zmq_send(a, "x", 1, 0);
    CHECK(zsock_msg_recv(b, &m, 0) == 0, "receive one part");
    CHECK(zsock_part(&m, 1, &l) == NULL && l == 0, "part beyond kept is NULL");
    zsock_msg_close(&m);
    zsock_msg_close(NULL);

    zmq_close(a);
    zmq_close(b);
    zmq_ctx_term(ctx);
}

int
main(void)
{
    test_spec_parse();
    test_offset();
    test_expand();
    test_be64();
    test_live();
    return unit_done();
}

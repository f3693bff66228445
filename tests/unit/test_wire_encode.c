/*
 * test_wire_encode.c - wire_encode, table-driven.
 *
 * The encoder's expected bytes are never computed here: they are the
 * "hex:" lines of tests/data/wire_encode.txt, written by python msgpack
 * (tests/peer/pack_expect.py).  Inputs are in the msgpack notation of
 * tests/unit/wiretext.h.
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "event.h"
#include "expect.h"
#include "pack.h"
#include "unit.h"
#include "wire.h"
#include "wire_encode.h"
#include "wiretext.h"

/* ---- encode cases ---------------------------------------------------- */

#define WIRE_CASES "tests/data/wire_encode.txt"

/*
 * One case of WIRE_CASES: in (notation) is decoded with the engine's
 * positional layout, encoded in layout, and compared with hex (python's
 * bytes).  Without a "want:" line the case must also round-trip.
 */
struct ecase {
    char *name, *layout, *in, *hex;
    int bytes_hashes;
    int sglang;
    int has_want;
};

static void
ecase_free(struct ecase *c)
{
    free(c->name);
    free(c->layout);
    free(c->in);
    free(c->hex);
    memset(c, 0, sizeof *c);
}

/* Stores one "key: value" line of a case; 1 when it was the last (hex). */
static int
ecase_line(struct ecase *c, const char *line)
{
    const char *v = strchr(line, ':');

    if (v == NULL || line[0] == '#')
        return 0;
    size_t k = (size_t)(v - line);
    v += 2;
    if (strncmp(line, "case", k) == 0)
        c->name = strdup(v);
    else if (strncmp(line, "layout", k) == 0)
        c->layout = strdup(v);
    else if (strncmp(line, "bytes_hashes", k) == 0)
        c->bytes_hashes = atoi(v);
    else if (strncmp(line, "engine", k) == 0)
        c->sglang = strcmp(v, "sglang") == 0;
    else if (strncmp(line, "in", k) == 0)
        c->in = strdup(v);
    else if (strncmp(line, "want", k) == 0)
        c->has_want = 1;
    else if (strncmp(line, "hex", k) == 0)
        c->hex = strdup(v);
    return strncmp(line, "hex", k) == 0;
}

static void
dump_hex(const char *label, const void *p, size_t n)
{
    struct buf h = {0};

    buf_put_hex(&h, p, n);
    buf_putc(&h, '\0');
    printf("#   %s %s\n", label, h.p);
    buf_free(&h);
}

/* Runs one case: decode, encode, compare; decode again to round-trip. */
static void
run_ecase(const struct ecase *c, struct wiretext_bytes *in)
{
    struct arena a = {0}, a2 = {0};
    struct buf out = {0}, d1 = {0}, d2 = {0};
    struct wire_opts opts = {0};
    struct wire_enc_opts eo = {0};
    struct kv_batch b = {0}, b2 = {0};
    char err[128] = "", name[160];
    size_t want_n = 0;
    uint8_t *want = expect_unhex(c->hex, &want_n);

    opts.engine = c->sglang ? KV_ENGINE_SGLANG : KV_ENGINE_VLLM;
    CHECK(wire_layout_parse(c->layout, &eo.layout) == 0, "layout name");
    eo.bytes_hashes = c->bytes_hashes;
    wiretext_parse(c->in, in);
    int rc = wire_decode(in->p, in->n, &opts, &a, &b, err, sizeof err);
    if (rc == 0)
        rc = wire_encode(&b, &eo, &out, err, sizeof err);
    snprintf(name, sizeof name, "encode: %s", c->name);
    int same = want != NULL && rc == 0 && out.len == want_n &&
               memcmp(out.p, want, want_n) == 0;
    if (!CHECK(same, name)) {
        printf("#   rc %d %s\n", rc, err);
        dump_hex("got ", out.p, out.len);
        dump_hex("want", want, want_n);
    }
    /* decode(encode(x)) == x whenever the layout can hold all of x. */
    if (!c->has_want && rc == 0) {
        int rc2 = wire_decode((const uint8_t *)out.p, out.len, &opts, &a2, &b2,
                              err, sizeof err);
        wiretext_dump(&d1, 0, &b, "");
        wiretext_dump(&d2, rc2, &b2, err);
        snprintf(name, sizeof name, "round trip: %s", c->name);
        CHECK_STR(d2.p, d1.p, name);
    }
    free(want);
    arena_free(&a);
    arena_free(&a2);
    buf_free(&out);
    buf_free(&d1);
    buf_free(&d2);
}

static void
test_encode_table(void)
{
    FILE *f = fopen(WIRE_CASES, "r");
    struct wiretext_bytes *in = malloc(sizeof *in);
    struct ecase c = {0};
    char *line = NULL;
    size_t len = 0, n = 0;
    ssize_t got;

    if (!CHECK(f != NULL, "read " WIRE_CASES)) {
        free(in);
        return;
    }
    while ((got = getline(&line, &len, f)) != -1) {
        if (got > 0 && line[got - 1] == '\n')
            line[got - 1] = '\0';
        if (!ecase_line(&c, line))
            continue;
        if (CHECK(c.name && c.layout && c.in && c.hex, "complete case")) {
            run_ecase(&c, in);
            n++;
        }
        ecase_free(&c);
    }
    CHECK(n >= 27, "every encode case ran");
    CHECK(wire_layout_parse("vllm-maps", &(enum wire_layout){0}) == -1,
          "unknown layout name rejected");
    ecase_free(&c);
    free(line);
    fclose(f);
    free(in);
}

/* Events built by hand (no decoder involved) encode to msgspec's bytes. */
static void
test_encode_by_hand(void)
{
    struct kv_event ev[2];
    struct kv_hash h = {(1ull << 63) + 1, NULL, 0};
    struct kv_batch b = {0};
    struct wire_enc_opts eo = {WIRE_LAYOUT_VLLM_ARRAY, 0};
    struct buf out = {0};
    struct wiretext_bytes *want = malloc(sizeof *want);
    char err[64];

    kv_event_init(&ev[0], KV_BLOCK_REMOVED);
    ev[0].hashes = &h;
    ev[0].n_hashes = 1;
    ev[0].present = KV_BIT(KV_F_BLOCK_HASHES) | KV_BIT(KV_F_MEDIUM) |
                    KV_BIT(KV_F_GROUP_IDX);
    ev[0].str[KV_F_MEDIUM].p = "GPU";
    ev[0].str[KV_F_MEDIUM].n = 3;
    ev[0].num[KV_F_GROUP_IDX] = 0;
    kv_event_init(&ev[1], KV_GAP);
    b.ts = 1700000000.5;
    b.has_ts = 1;
    b.has_rank = 1;
    b.rank = 0;
    b.events = ev;
    b.n_events = 2;
    CHECK(wire_encode(&b, &eo, &out, err, sizeof err) == 0, "encode by hand");
    /* The seed of docs/protocol.md#fixtures, as raw hex. */
    wiretext_parse(
        "x\"93 cb 41 d9 54 fc 40 20 00 00 91 94 ac 42 6c 6f 63 6b 52 65 "
        "6d 6f 76 65 64 91 cf 80 00 00 00 00 00 00 01 a3 47 50 55 00 "
        "00\"",
        want);
    CHECK(out.len == want->n && memcmp(out.p, want->p, want->n) == 0,
          "hand-built removal equals the seed bytes");
    buf_free(&out);
    free(want);
}

/* A batch of one BlockStored event (engine fields unset) and a gap first. */
static void
refuse_batch(struct kv_batch *b, struct kv_event ev[2])
{
    memset(b, 0, sizeof *b);
    kv_event_init(&ev[0], KV_GAP);
    kv_event_init(&ev[1], KV_BLOCK_STORED);
    b->events = ev;
    b->n_events = 2;
}

/*
 * What msgspec could not encode is refused with the event, the field and
 * the reason, and the buffer is left as it was.  Huge lengths point at
 * small buffers: the length is checked before anything is read.
 */
static void
test_encode_refuses(void)
{
    static const struct {
        const char *layout;
        const char *error;
    } cases[] = {
        {"vllm", "event 1: medium: string length of 4294967296 exceeds "
                 "msgpack's limit of 4294967295"},
        {"vllm", "event 1: block_hashes: array length of 4294967296 exceeds "
                 "msgpack's limit of 4294967295"},
        {"vllm-array", "event 1: token_ids: array length of 4294967296 "
                       "exceeds msgpack's limit of 4294967295"},
        {"vllm", "event 1: unknown field: string length of 4294967296 "
                 "exceeds msgpack's limit of 4294967295"},
        {"vllm", "event 1: extra_keys: raw msgpack value: declared size "
                 "exceeds payload"},
        {"vllm", "event 1: extra_keys: raw msgpack value: 1 trailing byte"},
        {"vllm", "event 1: extra_keys: JSON at byte 3: unexpected character"},
        {"vllm", "event 1: extra_keys: JSON at byte 1: integer outside the "
                 "64-bit range"},
        {"vllm-array", "event 1: unknown slot: JSON at byte 0: number "
                       "outside the range of a double"},
    };
    const size_t big = (size_t)1 << 32;
    struct kv_hash h = {1, NULL, 0};
    uint32_t tok = 1;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct kv_event ev[2];
        struct kv_batch b;
        struct kv_unknown u = {{"k", 1}, -1, {NULL, 0, KV_RAW_MSGPACK}};
        struct kv_raw *ek = &ev[1].raw[KV_F_EXTRA_KEYS];
        struct wire_enc_opts eo = {0};
        struct buf out = {0};
        char err[160] = "";

        refuse_batch(&b, ev);
        ev[1].present = KV_BIT(KV_F_EXTRA_KEYS) | KV_BIT(KV_F_MEDIUM) |
                        KV_BIT(KV_F_BLOCK_HASHES) | KV_BIT(KV_F_TOKEN_IDS);
        ev[1].str[KV_F_MEDIUM] = (struct kv_str){"GPU", 3};
        ev[1].hashes = &h;
        ev[1].n_hashes = 1;
        ev[1].tokens = &tok;
        ev[1].n_tokens = 1;
        *ek = (struct kv_raw){(const uint8_t *)"\x90", 1, KV_RAW_MSGPACK};
        ev[1].unknown = &u;
        ev[1].n_unknown = 1;
        if (i == 0)
            ev[1].str[KV_F_MEDIUM].n = big;
        else if (i == 1)
            ev[1].n_hashes = big;
        else if (i == 2)
            ev[1].n_tokens = big;
        else if (i == 3)
            u.key.n = big;
        else if (i == 4)
            *ek = (struct kv_raw){(const uint8_t *)"\x92\xc0", 2, 0};
        else if (i == 5)
            *ek = (struct kv_raw){(const uint8_t *)"\x90\xc0", 2, 0};
        else if (i == 6)
            *ek = (struct kv_raw){(const uint8_t *)"[1,]", 4, KV_RAW_JSON};
        else if (i == 7)
            *ek = (struct kv_raw){(const uint8_t *)"[18446744073709551616]", 22,
                                  KV_RAW_JSON};
        else
            u = (struct kv_unknown){
                {"", 0}, 13, {(const uint8_t *)"1e999", 5, KV_RAW_JSON}};
        CHECK(wire_layout_parse(cases[i].layout, &eo.layout) == 0, "layout");
        buf_puts(&out, "keep");
        CHECK(wire_encode(&b, &eo, &out, err, sizeof err) == -1,
              "unencodable value refused");
        CHECK_STR(err, cases[i].error, "refusal names event and field");
        CHECK(out.len == 4 && memcmp(out.p, "keep", 4) == 0,
              "a refused batch leaves the buffer as it was");
        buf_free(&out);
    }
}

/* Encodes b with extra_keys set to v; returns the payload (caller frees). */
static struct buf
encode_extra(struct kv_batch *b, struct kv_event *ev, struct kv_raw v,
             enum wire_layout layout)
{
    struct wire_enc_opts eo = {layout, 0};
    struct buf out = {0};
    char err[160];

    ev->present = KV_BIT(KV_F_EXTRA_KEYS);
    ev->raw[KV_F_EXTRA_KEYS] = v;
    if (wire_encode(b, &eo, &out, err, sizeof err) == -1)
        printf("#   %s\n", err);
    return out;
}

/*
 * A kept value gives the same payload whether it is held as JSON text or
 * as msgpack: every JSON row of the python table, as extra_keys.
 */
static void
test_encode_json_raw(void)
{
    size_t n, same = 0, json_rows = 0;
    struct expect_row *rows = expect_load(EXPECT_PACK, &n);

    if (!CHECK(rows != NULL, "read " EXPECT_PACK))
        return;
    for (size_t i = 0; i < n; i++) {
        struct kv_event ev[2];
        struct kv_batch b;
        size_t tn;

        if (strcmp(rows[i].kind, "json") != 0)
            continue;
        json_rows++;
        uint8_t *text = expect_unhex(rows[i].arg, &tn);
        refuse_batch(&b, ev);
        for (int l = WIRE_LAYOUT_VLLM; l <= WIRE_LAYOUT_VLLM_ARRAY; l++) {
            struct buf j = encode_extra(
                &b, &ev[1], (struct kv_raw){text, tn, KV_RAW_JSON}, l);
            struct buf m = encode_extra(
                &b, &ev[1],
                (struct kv_raw){rows[i].want, rows[i].n, KV_RAW_MSGPACK}, l);
            if (j.len > 0 && j.len == m.len && memcmp(j.p, m.p, j.len) == 0)
                same++;
            buf_free(&j);
            buf_free(&m);
        }
        free(text);
    }
    CHECK(json_rows >= 57, "JSON rows read");
    CHECK_U64(same, 2 * json_rows, "JSON text and msgpack encode the same");
    expect_free(rows, n);
}

/*
 * The decoder does not clear an event's value slots (docs/ndjson.md's speed
 * note in wire.c), so every slot it fills must be filled whole: a raw
 * value's kind once came from whatever the arena held before, and a stale
 * KV_RAW_JSON made the writer copy msgpack bytes into NDJSON and the
 * encoder refuse the batch (found by fuzz_wire).
 */
static void
test_raw_kind_over_garbage(void)
{
    /* [ts, [{"type":"BlockStored", ..., "extra_keys":[nil], "x":[1]}], 0] */
    static const uint8_t payload[] =
        "\x93\xcb\x41\xd9\x54\xfc\x40\x00\x00\x00\x91\x87"
        "\xa4type\xab"
        "BlockStored"
        "\xac"
        "block_hashes\x91\x01"
        "\xb1parent_block_hash\xc0"
        "\xa9token_ids\x92\x01\x02"
        "\xaa"
        "block_size\x02"
        "\xaa"
        "extra_keys\x91\xc0"
        "\xa1x\x91\x01"
        "\x00";
    struct arena a = {0};
    struct kv_batch b = {0};
    struct wire_opts o = {0};
    struct buf enc = {0};
    char err[256];

    /* Fill the arena's chunk with 0x01 bytes, then let the decoder reuse it. */
    void *junk = arena_alloc(&a, 1 << 16);
    if (!CHECK(junk != NULL, "arena"))
        return;
    memset(junk, 1, 1 << 16);
    arena_reset(&a);
    int rc =
        wire_decode(payload, sizeof payload - 1, &o, &a, &b, err, sizeof err);
    if (!CHECK(rc == 0 && b.n_events == 1, "decode over a dirty arena"))
        return;
    const struct kv_event *ev = &b.events[0];
    CHECK(ev->raw[KV_F_EXTRA_KEYS].kind == KV_RAW_MSGPACK,
          "extra_keys decoded from the wire is msgpack, whatever was there");
    CHECK(ev->n_unknown == 1 && ev->unknown[0].val.kind == KV_RAW_MSGPACK,
          "an unknown key's value is msgpack too");
    struct wire_enc_opts eo = {WIRE_LAYOUT_VLLM, 0};
    CHECK(wire_encode(&b, &eo, &enc, err, sizeof err) == 0,
          "and the batch encodes again");
    buf_free(&enc);
    arena_free(&a);
}

int
main(void)
{
    test_encode_table();
    test_encode_by_hand();
    test_encode_refuses();
    test_encode_json_raw();
    test_raw_kind_over_garbage();
    return unit_done();
}

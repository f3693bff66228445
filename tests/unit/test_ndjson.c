/*
 * test_ndjson.c - the NDJSON writer, and hostile input for the writer and
 * the reader (the reader's own tests are in test_ndjson_read.c).
 *
 * Expected lines are written by hand from
 * docs/ndjson.md#exact-rules-what-the-writer-does-and-the-tests-hold-it-to,
 * never copied from the writer's output.
 */
#include <math.h>
#include <stdlib.h>

#include "ndjson_read.h"
#include "ndjson_write.h"
#include "pack.h"
#include "unit.h"

/* U+FFFD in UTF-8. */
#define R "\xef\xbf\xbd"

static struct buf out;

/* The buffer as a C string (the writer does not terminate it). */
static const char *
text(void)
{
    buf_putc(&out, '\0');
    out.len--;
    return out.p;
}

static struct kv_str
S(const char *s) {
    struct kv_str k = {s, strlen(s)};
    return k;
}

static const struct kv_str NOSTR = {NULL, 0};

/* ---- writer ---- */

static void
test_spec_examples(void)
{
    struct kv_hash h = {15760518052499183552ull, NULL, 0};
    uint32_t tok[16];
    static const uint8_t ek[] = {0x91, 0xc0}; /* [nil] */
    struct kv_event ev;
    struct ndjson_source src = {S("pod-a"), NOSTR, NOSTR};

    for (int k = 0; k < 16; k++)
        tok[k] = (uint32_t)k + 1;
    kv_event_init(&ev, KV_BLOCK_STORED);
    ev.present = KV_BIT(KV_F_BLOCK_HASHES) | KV_BIT(KV_F_PARENT_BLOCK_HASH) |
                 KV_BIT(KV_F_TOKEN_IDS) | KV_BIT(KV_F_BLOCK_SIZE) |
                 KV_BIT(KV_F_LORA_ID) | KV_BIT(KV_F_MEDIUM) |
                 KV_BIT(KV_F_LORA_NAME) | KV_BIT(KV_F_EXTRA_KEYS) |
                 KV_BIT(KV_F_GROUP_IDX) | KV_BIT(KV_F_KV_CACHE_SPEC_KIND);
    ev.isnull = KV_BIT(KV_F_PARENT_BLOCK_HASH) | KV_BIT(KV_F_LORA_ID) |
                KV_BIT(KV_F_LORA_NAME);
    ev.hashes = &h;
    ev.n_hashes = 1;
    ev.tokens = tok;
    ev.n_tokens = 16;
    ev.num[KV_F_BLOCK_SIZE] = 16;
    ev.num[KV_F_GROUP_IDX] = 0;
    ev.str[KV_F_MEDIUM] = S("GPU");
    ev.str[KV_F_KV_CACHE_SPEC_KIND] = S("full_attention");
    ev.raw[KV_F_EXTRA_KEYS].p = ek;
    ev.raw[KV_F_EXTRA_KEYS].n = sizeof ek;
    struct kv_batch b = {41, 1700000000.25, 1, 1, 0, &ev, 1, 0};

    buf_clear(&out);
    ndjson_write_batch(&out, &src, &b);
    CHECK_STR(text(),
              "{\"pod\":\"pod-a\",\"dp_rank\":0,\"seq\":41,\"i\":0,\"ts\":"
              "1700000000.25,\"type\":\"BlockStored\",\"block_hashes\":["
              "\"15760518052499183552\"],\"parent_block_hash\":null,"
              "\"token_ids\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16],"
              "\"block_size\":16,\"lora_id\":null,\"medium\":\"GPU\","
              "\"lora_name\":null,\"extra_keys\":[null],\"group_idx\":0,"
              "\"kv_cache_spec_kind\":\"full_attention\"}\n",
              "spec example 1 (BlockStored)");

    struct kv_event rm;
    kv_event_init(&rm, KV_BLOCK_REMOVED);
    rm.present = KV_BIT(KV_F_BLOCK_HASHES) | KV_BIT(KV_F_MEDIUM);
    rm.hashes = &h;
    rm.n_hashes = 1;
    rm.str[KV_F_MEDIUM] = S("GPU");
    struct kv_batch b2 = {42, 1700000000.5, 1, 1, 0, &rm, 1, 0};
    buf_clear(&out);
    ndjson_write_batch(&out, &src, &b2);
    CHECK_STR(text(),
              "{\"pod\":\"pod-a\",\"dp_rank\":0,\"seq\":42,\"i\":0,\"ts\":"
              "1700000000.5,\"type\":\"BlockRemoved\",\"block_hashes\":["
              "\"15760518052499183552\"],\"medium\":\"GPU\"}\n",
              "spec example 2 (BlockRemoved)");

    struct kv_event cl;
    kv_event_init(&cl, KV_ALL_BLOCKS_CLEARED);
    struct kv_batch b3 = {43, 1700000001.0, 1, 1, 0, &cl, 1, 0};
    buf_clear(&out);
    ndjson_write_batch(&out, &src, &b3);
    CHECK_STR(text(),
              "{\"pod\":\"pod-a\",\"dp_rank\":0,\"seq\":43,\"i\":0,\"ts\":"
              "1700000001,\"type\":\"AllBlocksCleared\"}\n",
              "spec example 3 (AllBlocksCleared, integral ts)");

    /* Older ATOM's messages have no seq frame: no line of theirs has one. */
    b3.no_seq = 1;
    buf_clear(&out);
    ndjson_write_batch(&out, &src, &b3);
    CHECK_STR(text(),
              "{\"pod\":\"pod-a\",\"dp_rank\":0,\"i\":0,\"ts\":"
              "1700000001,\"type\":\"AllBlocksCleared\"}\n",
              "a batch without a seq frame is written without seq");
}

static void
test_batch_records(void)
{
    struct kv_event ev[4];
    struct ndjson_source src = {S("p"), S("m"), NOSTR};

    kv_event_init(&ev[0], KV_ALL_BLOCKS_CLEARED);
    ev[0].index = 0;
    kv_event_init(&ev[1], KV_DECODE_ERROR);
    ev[1].error = S("event 1: bad \"x\"");
    ev[1].bytes = 99;
    kv_event_init(&ev[2], KV_BLOCK_REMOVED); /* nothing present */
    ev[2].index = 2;
    kv_event_init(&ev[3], KV_SKIPPED);
    ev[3].tag = S("BlockMigrated");
    ev[3].count = 2;
    struct kv_batch b = {7, 0, 0, 0, 0, ev, 4, 0};

    buf_clear(&out);
    ndjson_write_batch(&out, &src, &b);
    CHECK_STR(text(),
              "{\"pod\":\"p\",\"model\":\"m\",\"dp_rank\":null,\"seq\":7,\"i\":"
              "0,\"type\":\"AllBlocksCleared\"}\n"
              "{\"pod\":\"p\",\"model\":\"m\",\"dp_rank\":null,\"seq\":7,"
              "\"type\":\"decode_error\",\"error\":\"event 1: bad "
              "\\\"x\\\"\",\"bytes\":99}\n"
              "{\"pod\":\"p\",\"model\":\"m\",\"dp_rank\":null,\"seq\":7,\"i\":"
              "2,\"type\":\"BlockRemoved\",\"block_hashes\":null,\"medium\":"
              "null}\n"
              "{\"pod\":\"p\",\"model\":\"m\",\"dp_rank\":null,\"seq\":7,"
              "\"type\":\"skipped\",\"tag\":\"BlockMigrated\",\"count\":2}\n",
              "batch: model, null rank, no ts, records without i, required "
              "nulls");

    struct kv_batch empty = {8, 1.0, 1, 1, -3, ev, 0, 0};
    buf_clear(&out);
    ndjson_write_batch(&out, &src, &empty);
    CHECK_U64(out.len, 0, "an empty batch writes nothing");

    /* Negative rank, ts with many digits. */
    struct kv_batch b4 = {9, 1732761234.512345, 1, 1, -3, ev, 1, 0};
    buf_clear(&out);
    ndjson_write_batch(&out, &src, &b4);
    CHECK_STR(text(),
              "{\"pod\":\"p\",\"model\":\"m\",\"dp_rank\":-3,\"seq\":9,\"i\":0,"
              "\"ts\":1732761234.512345,\"type\":\"AllBlocksCleared\"}\n",
              "batch: negative rank, fractional ts");
}

static void
test_event_records(void)
{
    struct kv_event ev;
    struct kv_env env = {0};

    env.pod = S("pod-a");
    env.has_rank = 1;
    env.rank = 1;
    env.has_seq = 1;
    env.seq = 12;
    env.has_ts = 1;
    env.ts = 1700000000.5;

    kv_event_init(&ev, KV_GAP);
    ev.from = 5;
    ev.to = 12;
    buf_clear(&out);
    ndjson_write_event(&out, &env, &ev);
    CHECK_STR(text(),
              "{\"pod\":\"pod-a\",\"dp_rank\":1,\"seq\":12,\"ts\":1700000000.5,"
              "\"type\":\"gap\",\"from\":5,\"to\":12}\n",
              "gap record");

    kv_event_init(&ev, KV_RESTART);
    ev.last_seq = 18446744073709551615ull;
    env.has_ts = 0;
    env.has_rank = 0;
    env.seq = 0;
    buf_clear(&out);
    ndjson_write_event(&out, &env, &ev);
    CHECK_STR(text(),
              "{\"pod\":\"pod-a\",\"dp_rank\":null,\"seq\":0,\"type\":"
              "\"restart\",\"last_seq\":18446744073709551615}\n",
              "restart record, no ts, null rank");

    kv_event_init(&ev, KV_DECODE_ERROR);
    ev.error = S("truncated");
    ev.bytes = 0;
    env.has_i = 1;
    env.i = 4;
    env.has_seq = 0;
    buf_clear(&out);
    ndjson_write_event(&out, &env, &ev);
    CHECK_STR(text(),
              "{\"pod\":\"pod-a\",\"dp_rank\":null,\"i\":4,\"type\":"
              "\"decode_error\",\"error\":\"truncated\",\"bytes\":0}\n",
              "write_event: i when has_i, no seq when !has_seq");
}

static void
test_fields(void)
{
    static const uint8_t d1[32] = {
        [0] = 0xab, [24] = 0x00, [25] = 0, [26] = 0, [27] = 0,
        [28] = 0,   [29] = 0,    [30] = 1, [31] = 2};
    static const uint8_t d2[8] = {0, 0, 0, 0, 0, 0, 0, 9};
    struct kv_hash h[2] = {{258, d1, 32}, {7, NULL, 0}};
    uint32_t pairs[4] = {21, 22, 4294967295u, 0};
    static const uint8_t unk1[] = {0x81, 0xa6, 'n', 'e', 's',
                                   't',  'e',  'd', 0xc3};
    static const uint8_t unk2[] = {0x92, 0x00, 0x01};
    struct kv_unknown u[2] = {
        {S("future_field"), -1, {unk1, sizeof unk1, KV_RAW_MSGPACK}},
        {NOSTR, 9, {unk2, sizeof unk2, KV_RAW_MSGPACK}}};
    struct kv_event ev;
    struct kv_env env = {.pod = S("p")};

    kv_event_init(&ev, KV_BLOCK_STORED);
    ev.present = KV_BIT(KV_F_BLOCK_HASHES) | KV_BIT(KV_F_PARENT_BLOCK_HASH) |
                 KV_BIT(KV_F_TOKEN_IDS) | KV_BIT(KV_F_LORA_ID) |
                 KV_BIT(KV_F_GROUP_IDX) |
                 KV_BIT(KV_F_KV_CACHE_SPEC_SLIDING_WINDOW) |
                 KV_BIT(KV_F_LOCALITY) | KV_BIT(KV_F_OWNERSHIP) |
                 KV_BIT(KV_F_CACHE_SALT) | KV_BIT(KV_F_SESSION_ID);
    ev.hashes = h;
    ev.n_hashes = 2;
    ev.parent.v = 9;
    ev.parent.digest = d2;
    ev.parent.digest_len = 8;
    ev.tokens = pairs;
    ev.n_tokens = 2;
    ev.token_pairs = 1;
    ev.num[KV_F_LORA_ID] = -5;
    ev.num[KV_F_GROUP_IDX] = -1; /* u64 max, kept as its bit pattern */
    ev.num[KV_F_KV_CACHE_SPEC_SLIDING_WINDOW] = 4096;
    ev.str[KV_F_LOCALITY] = S("LOCAL");
    ev.str[KV_F_OWNERSHIP] = S("kvcr");
    ev.str[KV_F_CACHE_SALT] = S("tenant-a");
    ev.str[KV_F_SESSION_ID] = S("");
    ev.unknown = u;
    ev.n_unknown = 2;
    buf_clear(&out);
    ndjson_write_event(&out, &env, &ev);
    CHECK_STR(
        text(),
        "{\"pod\":\"p\",\"dp_rank\":null,\"type\":\"BlockStored\","
        "\"block_hashes\":[\"258\",\"7\"],\"parent_block_hash\":\"9\","
        "\"token_ids\":[[21,22],[4294967295,0]],\"block_size\":null,"
        "\"lora_id\":-5,\"medium\":null,\"group_idx\":18446744073709551615,"
        "\"kv_cache_spec_sliding_window\":4096,\"locality\":\"LOCAL\","
        "\"ownership\":\"kvcr\",\"cache_salt\":\"tenant-a\",\"session_id\":"
        "\"\",\"block_digests\":[\"ab000000000000000000000000000000000000"
        "00000000000000000000000102\",null],\"parent_block_digest\":"
        "\"0000000000000009\",\"future_field\":{\"nested\":true},\"@9\":[0,"
        "1]}\n",
        "every field kind, digests, named and positional unknowns");

    /* Null markers beat values; parent digest only with a live parent. */
    ev.isnull = KV_BIT(KV_F_PARENT_BLOCK_HASH) | KV_BIT(KV_F_TOKEN_IDS);
    ev.present &=
        ~(KV_BIT(KV_F_LOCALITY) | KV_BIT(KV_F_OWNERSHIP) |
          KV_BIT(KV_F_CACHE_SALT) | KV_BIT(KV_F_SESSION_ID) |
          KV_BIT(KV_F_GROUP_IDX) | KV_BIT(KV_F_KV_CACHE_SPEC_SLIDING_WINDOW));
    ev.hashes = &h[1];
    ev.n_hashes = 1;
    ev.n_unknown = 0;
    buf_clear(&out);
    ndjson_write_event(&out, &env, &ev);
    CHECK_STR(text(),
              "{\"pod\":\"p\",\"dp_rank\":null,\"type\":\"BlockStored\","
              "\"block_hashes\":[\"7\"],\"parent_block_hash\":null,"
              "\"token_ids\":null,\"block_size\":null,\"lora_id\":-5,"
              "\"medium\":null}\n",
              "isnull wins, no block_digests without digests");

    kv_event_init(&ev, KV_BLOCK_STORED);
    ev.present = KV_BIT(KV_F_TOKEN_IDS) | KV_BIT(KV_F_BLOCK_HASHES);
    ev.n_tokens = 0;
    ev.n_hashes = 0;
    buf_clear(&out);
    ndjson_write_event(&out, &env, &ev);
    CHECK_STR(text(),
              "{\"pod\":\"p\",\"dp_rank\":null,\"type\":\"BlockStored\","
              "\"block_hashes\":[],\"parent_block_hash\":null,"
              "\"token_ids\":[],\"block_size\":null,\"lora_id\":null,"
              "\"medium\":null}\n",
              "empty arrays");
}

static void
test_escaping(void)
{
    static const struct {
        const char *in;
        size_t n;
        const char *want;
    } cases[] = {
        {"a\"b\\c", 5, "\"a\\\"b\\\\c\""},
        {"\n\r\t", 3, "\"\\n\\r\\t\""},
        {"\x01\x1f\b\f", 4, "\"\\u0001\\u001f\\u0008\\u000c\""},
        {"\0x", 2, "\"\\u0000x\""},
        {"\x7f/", 2, "\"\x7f/\""},
        {"\xc3\xa9\xf0\x9f\x98\x80\xe2\x82\xac", 9,
         "\"\xc3\xa9\xf0\x9f\x98\x80\xe2\x82\xac\""},
        {"\xff", 1, "\"" R "\""},
        {"a\xc3", 2, "\"a" R "\""},
        {"\xe2\x82x", 3, "\"" R "x\""},
        {"\xed\xa0\x80", 3, "\"" R R R "\""},
        {"\xc0\xaf", 2, "\"" R R "\""},
        {"\xf4\x90\x80\x80", 4, "\"" R R R R "\""},
        {"\xf0\x9f\x98", 3, "\"" R "\""},
        {"\xe0\x80\x80", 3, "\"" R R R "\""},
        {"\x80\"", 2, "\"" R "\\\"\""},
        {"\xf0\x9f\x98\x80\xf0", 5, "\"\xf0\x9f\x98\x80" R "\""},
    };
    struct kv_event ev;
    struct kv_env env = {.pod = S("p")};

    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char want[128], what[64];
        kv_event_init(&ev, KV_SKIPPED);
        ev.tag.p = cases[k].in;
        ev.tag.n = cases[k].n;
        snprintf(want, sizeof want,
                 "{\"pod\":\"p\",\"dp_rank\":null,\"type\":\"skipped\","
                 "\"tag\":%s,\"count\":0}\n",
                 cases[k].want);
        buf_clear(&out);
        ndjson_write_event(&out, &env, &ev);
        snprintf(what, sizeof what, "escape case %zu", k);
        CHECK_STR(text(), want, what);
    }
    /*
     * Long strings take the 8-bytes-at-a-time path: put each special byte
     * at every position of a 24-byte string; the expected text is built
     * here byte by byte.
     */
    static const struct {
        const char *b;
        size_t n;
        const char *esc;
    } specials[] = {
        {"\"", 1, "\\\""},      {"\\", 1, "\\\\"},
        {"\x01", 1, "\\u0001"}, {"\x1f", 1, "\\u001f"},
        {"\n", 1, "\\n"},       {"\x7f", 1, "\x7f"},
        {"\x80", 1, R},         {"\xc3\xa9", 2, "\xc3\xa9"},
        {" ", 1, " "},
    };
    int long_ok = 1;
    for (size_t sp = 0; sp < sizeof specials / sizeof specials[0]; sp++) {
        for (size_t at = 0; at < 24; at++) {
            char in[32], want[128];
            size_t n = 0, w = 0;
            memset(in, 'a', sizeof in);
            memcpy(in + at, specials[sp].b, specials[sp].n);
            n = 24 + specials[sp].n;
            want[w++] = '"';
            memset(want + w, 'a', at);
            w += at;
            w += (size_t)sprintf(want + w, "%s", specials[sp].esc);
            memset(want + w, 'a', 24 - at);
            w += 24 - at;
            want[w++] = '"';
            want[w] = '\0';
            struct kv_event e2;
            kv_event_init(&e2, KV_SKIPPED);
            e2.tag.p = in;
            e2.tag.n = n;
            buf_clear(&out);
            ndjson_write_event(&out, &env, &e2);
            const char *t = strstr(text(), "\"tag\":");
            if (t == NULL || strncmp(t + 6, want, w) != 0 ||
                strcmp(t + 6 + w, ",\"count\":0}\n") != 0) {
                long_ok = 0;
                printf("#   special %zu at %zu: %s\n", sp, at, text());
            }
        }
    }
    CHECK(long_ok, "long strings: every special byte at every position");

    /* The pod is escaped too. */
    env.pod.p = "a\"\xff";
    env.pod.n = 3;
    kv_event_init(&ev, KV_ALL_BLOCKS_CLEARED);
    buf_clear(&out);
    ndjson_write_event(&out, &env, &ev);
    CHECK_STR(text(),
              "{\"pod\":\"a\\\"" R "\",\"dp_rank\":null,\"type\":"
              "\"AllBlocksCleared\"}\n",
              "pod escaped");
}

/* Writes raw as the value of an unknown key "v"; returns the JSON. */
static const char *
conv(const uint8_t *p, size_t n)
{
    struct kv_unknown u = {{"v", 1}, -1, {p, n, KV_RAW_MSGPACK}};
    struct kv_event ev;
    struct kv_env env = {.pod = {"p", 1}};
    static const char pre[] =
        "{\"pod\":\"p\",\"dp_rank\":null,\"type\":\"AllBlocksCleared\",\"v\":";

    kv_event_init(&ev, KV_ALL_BLOCKS_CLEARED);
    ev.unknown = &u;
    ev.n_unknown = 1;
    buf_clear(&out);
    ndjson_write_event(&out, &env, &ev);
    const char *t = text();
    if (strncmp(t, pre, sizeof pre - 1) != 0 || out.len < sizeof pre + 1)
        return "(bad envelope)";
    /* Drop the envelope and the closing "}\n". */
    out.p[out.len - 2] = '\0';
    return t + sizeof pre - 1;
}

static void
test_generic(void)
{
    static const struct {
        const char *bytes; /* msgpack, written by hand */
        size_t n;
        const char *want;
    } cases[] = {
        {"\xc0", 1, "null"},
        {"\xc3", 1, "true"},
        {"\xc2", 1, "false"},
        {"\x00", 1, "0"},
        {"\x7f", 1, "127"},
        {"\xcc\xff", 2, "255"},
        {"\xcd\x01\x00", 3, "256"},
        {"\xce\xff\xff\xff\xff", 5, "4294967295"},
        {"\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9, "18446744073709551615"},
        {"\xff", 1, "-1"},
        {"\xe0", 1, "-32"},
        {"\xd0\xdf", 2, "-33"},
        {"\xd0\x7f", 2, "127"},
        {"\xd1\xff\x7f", 3, "-129"},
        {"\xd2\x80\x00\x00\x00", 5, "-2147483648"},
        {"\xd3\x80\x00\x00\x00\x00\x00\x00\x00", 9, "-9223372036854775808"},
        {"\xd3\xff\xff\xff\xff\xff\xff\xff\xfb", 9, "-5"},
        {"\xca\x3f\xc0\x00\x00", 5, "1.5"},
        {"\xca\x3f\x8c\xcc\xcd", 5, "1.100000023841858"},
        {"\xcb\x3f\xb9\x99\x99\x99\x99\x99\x9a", 9, "0.1"},
        {"\xcb\x40\x00\x00\x00\x00\x00\x00\x00", 9, "2"},
        {"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00", 9, "null"},
        {"\xcb\x7f\xf0\x00\x00\x00\x00\x00\x00", 9, "null"},
        {"\xca\xff\x80\x00\x00", 5, "null"},
        {"\xa0", 1, "\"\""},
        {"\xa3"
         "abc",
         4, "\"abc\""},
        {"\xd9\x02"
         "a\n",
         4, "\"a\\n\""},
        {"\xda\x00\x02"
         "\xc3\xa9",
         5, "\"\xc3\xa9\""},
        {"\xdb\x00\x00\x00\x01\xff", 6, "\"" R "\""},
        {"\xc4\x02\x0a\xff", 4, "\"0aff\""},
        {"\xc5\x00\x01\x01", 4, "\"01\""},
        {"\xc6\x00\x00\x00\x00", 5, "\"\""},
        {"\xd4\x05\xab", 3, "\"ab\""},
        {"\xd5\x05\x01\x02", 4, "\"0102\""},
        {"\xd8\x01"
         "0123456789abcdef",
         18, "\"30313233343536373839616263646566\""},
        {"\xc7\x02\x09\xde\xad", 5, "\"dead\""},
        {"\xc8\x00\x01\x09\xee", 5, "\"ee\""},
        {"\xc9\x00\x00\x00\x00\x09", 6, "\"\""},
        {"\x90", 1, "[]"},
        {"\x93\xc0\x01\xa1x", 5, "[null,1,\"x\"]"},
        {"\xdc\x00\x02\x01\x02", 5, "[1,2]"},
        {"\xdd\x00\x00\x00\x01\x90", 6, "[[]]"},
        {"\x80", 1, "{}"},
        {"\x82\xa1"
         "a\x01\xa1"
         "b\x92\xc2\xc3",
         9, "{\"a\":1,\"b\":[false,true]}"},
        {"\x81\x07\xa1x", 4, "{\"7\":\"x\"}"},
        {"\x81\xff\xc0", 3, "{\"-1\":null}"},
        {"\x81\xcf\xff\xff\xff\xff\xff\xff\xff\xff\x00", 11,
         "{\"18446744073709551615\":0}"},
        {"\x81\xc0\x00", 3, "{\"null\":0}"},
        {"\x81\xc3\x00", 3, "{\"true\":0}"},
        {"\x81\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00\x00", 11, "{\"1.5\":0}"},
        {"\x81\x92\x01\x02\x00", 5, "{\"[1,2]\":0}"},
        {"\x81\xc4\x01\xab\x00", 5, "{\"\\\"ab\\\"\":0}"},
        {"\xde\x00\x01\xa1k\xc0", 6, "{\"k\":null}"},
        {"\xdf\x00\x00\x00\x01\xa1k\x80", 8, "{\"k\":{}}"},
        {"\x91\x94\xa7"
         "adapter\x92\xa6mm-abc\x00\xa6salt-1\xc4\x02\x00\x1f",
         30, "[[\"adapter\",[\"mm-abc\",0],\"salt-1\",\"001f\"]]"},
        {"\x93\xc0\xc0\xc0", 4, "[null,null,null]"},
        {"\x9f\xc0\xc0\xc0\xc0\xc0\xc0\xc0\xc0\xc0\xc0\xc0\xc0\xc0\xc0\xc0", 16,
         "[null,null,null,null,null,null,null,null,null,null,null,null,"
         "null,null,null]"},
        /* Malformed: each becomes null, never a crash. */
        {"\x92\xc0", 2, "null"},
        {"\x91\xc0\xc0", 3, "null"},
        {"", 0, "null"},
        {"\xc1", 1, "null"},
        {"\xcf\x01\x02", 3, "null"},
        {"\xa5"
         "ab",
         3, "null"},
        {"\xdd\xff\xff\xff\xff\x01", 6, "null"},
        {"\xdf\xff\xff\xff\xff", 5, "null"},
        {"\x92\x01", 2, "null"},
        {"\x81\xa1k", 3, "null"},
        {"\x01\x02", 2, "null"},
        {"\xc7\x05\x01\x00", 4, "null"},
        {"\xd8\x01\x00", 3, "null"},
        {"\x91\xc1", 2, "null"},
    };

    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char what[64];
        snprintf(what, sizeof what, "msgpack->JSON case %zu (%s)", k,
                 cases[k].want);
        CHECK_STR(conv((const uint8_t *)cases[k].bytes, cases[k].n),
                  cases[k].want, what);
    }

    /* Depth: 64 nested arrays convert, 65 do not. */
    uint8_t deep[66];
    memset(deep, 0x91, sizeof deep);
    deep[63] = 0x90;
    const char *t = conv(deep, 64);
    CHECK(strlen(t) == 128 && t[0] == '[' && t[63] == '[' && t[64] == ']',
          "64 levels convert");
    deep[64] = 0x90;
    CHECK_STR(conv(deep, 65), "null", "65 levels become null");

    struct kv_unknown u = {{"v", 1}, -1, {NULL, 0, KV_RAW_MSGPACK}};
    CHECK(u.val.p == NULL && strcmp(conv(NULL, 0), "null") == 0,
          "NULL raw is null");

    /*
     * Maps used as keys of maps: each level re-quotes the one inside it,
     * so the text doubles per level.  Two levels are written as usual; 30
     * (fewer than 100 bytes, 2^30 bytes of JSON: the fuzzer's 2 GiB
     * allocation) stay within the growth limit by becoming null.
     */
    CHECK_STR(conv((const uint8_t *)"\x81\x81\xa1k\xc0\xc0", 6),
              "{\"{\\\"k\\\":null}\":null}", "a map as a key is quoted");
    uint8_t keys[64];
    size_t n = 0;
    for (int k = 0; k < 30; k++)
        keys[n++] = 0x81; /* a map of one pair whose key follows */
    keys[n++] = 0xc0;     /* the innermost key */
    for (int k = 0; k < 30; k++)
        keys[n++] = 0xc0; /* every pair's value */
    buf_clear(&out);
    ndjson_write_raw(&out, (struct kv_raw){keys, (uint32_t)n, KV_RAW_MSGPACK});
    CHECK(out.cap < (1u << 20) && strcmp(text(), "null") == 0,
          "30 maps nested as keys: null, no 1 GiB buffer");
}

/* A KV_RAW_JSON value is the reader's checked text: written verbatim. */
static void
test_raw_json(void)
{
    static const char js[] = "[{\"k\":[1,2.50,\"\\u00e9\"]},null]";
    struct kv_raw j = {(const uint8_t *)js, sizeof js - 1, KV_RAW_JSON};
    struct kv_raw empty = {(const uint8_t *)"", 0, KV_RAW_JSON};
    /* Read as msgpack, the same bytes are a fixint and trailing bytes. */
    struct kv_raw mp = {(const uint8_t *)js, sizeof js - 1, KV_RAW_MSGPACK};

    buf_clear(&out);
    ndjson_write_raw(&out, j);
    CHECK_STR(text(), js, "JSON raw written verbatim");
    buf_clear(&out);
    ndjson_write_raw(&out, empty);
    CHECK_STR(text(), "null", "empty JSON raw is null");
    buf_clear(&out);
    ndjson_write_raw(&out, mp);
    CHECK_STR(text(), "null", "the same bytes as msgpack are not one object");

    /* As extra_keys and as an unknown field of an event. */
    struct kv_unknown u = {
        {"x", 1}, -1, {(const uint8_t *)"{\"a\":true}", 10, KV_RAW_JSON}};
    struct kv_env env = {.pod = S("p")};
    struct kv_event ev;
    kv_event_init(&ev, KV_BLOCK_REMOVED);
    ev.present = KV_BIT(KV_F_EXTRA_KEYS);
    ev.raw[KV_F_EXTRA_KEYS] = j;
    ev.unknown = &u;
    ev.n_unknown = 1;
    buf_clear(&out);
    ndjson_write_event(&out, &env, &ev);
    CHECK_STR(text(),
              "{\"pod\":\"p\",\"dp_rank\":null,\"type\":\"BlockRemoved\","
              "\"block_hashes\":null,\"medium\":null,"
              "\"extra_keys\":[{\"k\":[1,2.50,\"\\u00e9\"]},null],"
              "\"x\":{\"a\":true}}\n",
              "JSON raw fields in an event");
}

/* The hostile test's reader side. */
static struct arena arena;

/*
 * Hostile input: random msgpack bytes for the writer's converter, and
 * random mutations of valid lines for the reader.  Nothing may crash (the
 * sanitizer build checks memory), and whatever the reader accepts, the
 * writer must turn into a line the reader accepts again.
 */
static void
test_hostile(void)
{
    static const char *seeds[] = {
        "{\"pod\":\"a\",\"dp_rank\":0,\"seq\":41,\"i\":0,\"ts\":1700000000.25,"
        "\"type\":\"BlockStored\",\"block_hashes\":[\"15760518052499183552\","
        "-5,\"0x1f\"],\"parent_block_hash\":null,\"token_ids\":[1,2,3,4],"
        "\"block_size\":16,\"lora_id\":null,\"medium\":\"G\\u00e9PU\","
        "\"extra_keys\":[[\"a\",[\"mm\",0],1.5,{\"k\":[true,null]}]],"
        "\"@9\":[0,1],\"x\":{\"y\":\"\\ud83d\\ude00\"}}",
        "{\"type\":\"BlockStored\",\"token_ids\":[[1,2],[3,4]],\"block_"
        "hashes\":"
        "[\"258\"],\"block_digests\":[\"0000000000000102\"]}",
        "{\"type\":\"gap\",\"from\":1,\"to\":2}",
        "{\"type\":\"decode_error\",\"error\":\"x\\\"y\",\"bytes\":3}",
        "{\"type\":\"format\",\"version\":1}",
    };
    static const char alphabet[] = "{}[]\",:0123456789-.eE\\u tfnal@x\x00\xff";
    uint64_t r = 0x9e3779b97f4a7c15ull;
    int crashes_ok = 1, rewrite_ok = 1, accepted = 0;
    char line[1024];

    for (int rep = 0; rep < 60000; rep++) {
        const char *seed = seeds[rep % (sizeof seeds / sizeof seeds[0])];
        size_t n = strlen(seed);
        memcpy(line, seed, n);
        int muts = 1 + rep % 4;
        for (int m = 0; m < muts; m++) {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            size_t at = n ? (size_t)(r % n) : 0;
            char c = alphabet[(r >> 20) % (sizeof alphabet - 1)];
            switch ((r >> 40) % 4) {
            case 0:
                if (n > 0)
                    line[at] = c;
                break;
            case 1:
                if (n + 1 < sizeof line) {
                    memmove(line + at + 1, line + at, n - at);
                    line[at] = c;
                    n++;
                }
                break;
            case 2:
                if (n > 0) {
                    memmove(line + at, line + at + 1, n - at - 1);
                    n--;
                }
                break;
            default:
                n = at;
                break;
            }
        }
        struct kv_env env, env2;
        struct kv_event ev, ev2;
        char err[256];
        arena_reset(&arena);
        int rc = ndjson_parse_line(line, n, &arena, &env, &ev, err, sizeof err);
        if (rc != NDJSON_EVENT && rc != NDJSON_SKIP && rc != NDJSON_BAD &&
            rc != NDJSON_FATAL)
            crashes_ok = 0;
        if (rc != NDJSON_EVENT)
            continue;
        accepted++;
        buf_clear(&out);
        ndjson_write_event(&out, &env, &ev);
        rc = ndjson_parse_line(out.p, out.len - 1, &arena, &env2, &ev2, err,
                               sizeof err);
        if (rc != NDJSON_EVENT) {
            rewrite_ok = 0;
            printf("#   rewrite refused (%s): %.*s", err, (int)out.len, out.p);
        }
    }
    CHECK(crashes_ok, "60000 mutated lines: only the four return codes");
    CHECK(rewrite_ok && accepted > 2000,
          "every accepted mutant is re-written as a valid line");
    printf("# %d of 60000 mutants accepted\n", accepted);

    int conv_ok = 1;
    for (int rep = 0; rep < 60000; rep++) {
        uint8_t raw[48];
        size_t n = (size_t)(rep % 48);
        for (size_t k = 0; k < n; k++) {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            /* Mostly headers and small values, so structures nest. */
            raw[k] = (uint8_t)(r % 3 == 0   ? 0x90 | (r >> 8) % 4
                               : r % 3 == 1 ? (r >> 8)
                                            : 0xc0 + (r >> 8) % 0x20);
        }
        const char *t = conv(raw, n);
        if (strcmp(t, "(bad envelope)") == 0)
            conv_ok = 0;
    }
    CHECK(conv_ok, "60000 random msgpack values convert without harm");
}

int
main(void)
{
    test_spec_examples();
    test_batch_records();
    test_event_records();
    test_fields();
    test_escaping();
    test_generic();
    test_raw_json();
    test_hostile();
    buf_free(&out);
    arena_free(&arena);
    return unit_done();
}

/*
 * test_ndjson.c - the NDJSON writer and reader.
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

/* ---- reader ---- */

static struct arena arena;

static int
parse(const char *line, struct kv_env *env, struct kv_event *ev, char *err,
      size_t errlen)
{
    arena_reset(&arena);
    return ndjson_parse_line(line, strlen(line), &arena, env, ev, err, errlen);
}

static int
str_eq(struct kv_str s, const char *want)
{
    return s.p != NULL && s.n == strlen(want) && memcmp(s.p, want, s.n) == 0;
}

static int
raw_eq(struct kv_raw r, const char *bytes, size_t n)
{
    return r.p != NULL && r.n == n && memcmp(r.p, bytes, n) == 0;
}

static void
test_read_envelope(void)
{
    struct kv_env env;
    struct kv_event ev;
    char err[256];
    int rc;

    rc = parse("{\"pod\":\"pod-a\",\"model\":\"m\",\"dp_rank\":-2,\"seq\":"
               "18446744073709551615,\"i\":4294967295,\"ts\":1700000000.25,"
               "\"type\":\"AllBlocksCleared\"}",
               &env, &ev, err, sizeof err);
    CHECK(rc == NDJSON_EVENT && str_eq(env.pod, "pod-a") &&
              str_eq(env.model, "m") && env.has_rank && env.rank == -2 &&
              env.has_seq && env.seq == UINT64_MAX && env.has_i &&
              env.i == 4294967295u && ev.index == 4294967295u && env.has_ts &&
              env.ts == 1700000000.25 && ev.type == KV_ALL_BLOCKS_CLEARED,
          "full envelope");

    rc = parse(" {\"type\":\"AllBlocksCleared\"} \r", &env, &ev, err,
               sizeof err);
    CHECK(rc == NDJSON_EVENT && str_eq(env.pod, "-") && env.model.p == NULL &&
              !env.has_rank && !env.has_seq && !env.has_i && !env.has_ts,
          "defaults: pod \"-\", the rest absent; whitespace and CR ok");

    rc = parse("{\"type\":\"AllBlocksCleared\",\"dp_rank\":null,\"model\":"
               "null,\"ts\":null,\"seq\":0,\"ts\":1700000001}",
               &env, &ev, err, sizeof err);
    CHECK(rc == NDJSON_EVENT && !env.has_rank && env.model.p == NULL &&
              env.has_ts && env.ts == 1700000001.0 && env.has_seq &&
              env.seq == 0,
          "null rank/model, integer ts, duplicate key: last wins");

    rc = parse("{\"type\":\"AllBlocksCleared\",\"ts\":1.5e3}", &env, &ev, err,
               sizeof err);
    CHECK(rc == NDJSON_EVENT && env.ts == 1500.0, "ts with exponent");

    const char *line = "{\"pod\":\"plain\",\"type\":\"AllBlocksCleared\"}";
    arena_reset(&arena);
    rc = ndjson_parse_line(line, strlen(line), &arena, &env, &ev, err,
                           sizeof err);
    CHECK(rc == NDJSON_EVENT && env.pod.p == line + 8,
          "plain strings are borrowed from the line");

    rc = parse("{\"pod\":\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\\ud83d"
               "\\ude00\\ud800x\\udc00\\u0000\",\"type\":"
               "\"AllBlocksCleared\"}",
               &env, &ev, err, sizeof err);
    CHECK(rc == NDJSON_EVENT && env.pod.n == 26 &&
              memcmp(env.pod.p,
                     "a\"b\\c/d\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80" R "x" R "\0",
                     26) == 0,
          "escapes, surrogate pair, lone surrogates become U+FFFD");
}

static void
test_read_fields(void)
{
    struct kv_env env;
    struct kv_event ev;
    char err[256];
    int rc;

    rc = parse("{\"type\":\"BlockStored\",\"block_hashes\":["
               "\"15760518052499183552\",-5,18446744073709551615,"
               "\"0xFFfe\",\"0x0\",-9223372036854775808,\"007\"],"
               "\"parent_block_hash\":7,\"token_ids\":[0,4294967295],"
               "\"block_size\":16,\"lora_id\":-9223372036854775808,"
               "\"medium\":\"GPU\",\"lora_name\":null,\"group_idx\":"
               "18446744073709551615,\"kv_cache_spec_kind\":\"full\","
               "\"kv_cache_spec_sliding_window\":0,\"locality\":\"L\","
               "\"ownership\":\"o\",\"cache_salt\":\"s\",\"session_id\":"
               "\"q\"}",
               &env, &ev, err, sizeof err);
    CHECK(rc == NDJSON_EVENT, "BlockStored with every field parses");
    CHECK(ev.n_hashes == 7 && ev.hashes[0].v == 15760518052499183552ull &&
              ev.hashes[1].v == 18446744073709551611ull &&
              ev.hashes[2].v == UINT64_MAX && ev.hashes[3].v == 0xfffe &&
              ev.hashes[4].v == 0 && ev.hashes[5].v == 9223372036854775808ull &&
              ev.hashes[6].v == 7 && ev.hashes[0].digest == NULL,
          "hashes: decimal string, negative int, u64 int, 0x hex");
    CHECK(ev.parent.v == 7 && ev.n_tokens == 2 && ev.tokens[0] == 0 &&
              ev.tokens[1] == 4294967295u && !ev.token_pairs,
          "parent and tokens");
    CHECK(ev.num[KV_F_BLOCK_SIZE] == 16 && ev.num[KV_F_LORA_ID] == INT64_MIN &&
              (uint64_t)ev.num[KV_F_GROUP_IDX] == UINT64_MAX &&
              ev.num[KV_F_KV_CACHE_SPEC_SLIDING_WINDOW] == 0,
          "integer fields");
    CHECK(str_eq(ev.str[KV_F_MEDIUM], "GPU") &&
              str_eq(ev.str[KV_F_KV_CACHE_SPEC_KIND], "full") &&
              str_eq(ev.str[KV_F_LOCALITY], "L") &&
              str_eq(ev.str[KV_F_OWNERSHIP], "o") &&
              str_eq(ev.str[KV_F_CACHE_SALT], "s") &&
              str_eq(ev.str[KV_F_SESSION_ID], "q"),
          "string fields");
    /* The line names vLLM's and SGLang's fields, those of other
     * producers (after session_id) none. */
    uint32_t want_present =
        (KV_BIT(KV_F_SESSION_ID + 1) - 1) & ~KV_BIT(KV_F_EXTRA_KEYS);
    CHECK_U64(ev.present, want_present, "present bits");
    CHECK_U64(ev.isnull, KV_BIT(KV_F_LORA_NAME), "isnull bits");

    rc = parse("{\"type\":\"BlockStored\",\"token_ids\":[[1,2],[3,"
               "4294967295]],\"block_hashes\":null,\"parent_block_hash\":"
               "null}",
               &env, &ev, err, sizeof err);
    CHECK(rc == NDJSON_EVENT && ev.token_pairs && ev.n_tokens == 2 &&
              ev.tokens[0] == 1 && ev.tokens[3] == 4294967295u &&
              (ev.isnull & KV_BIT(KV_F_BLOCK_HASHES)) &&
              (ev.isnull & KV_BIT(KV_F_PARENT_BLOCK_HASH)),
          "token pairs, null hashes");

    rc = parse("{\"type\":\"BlockStored\",\"token_ids\":[]}", &env, &ev, err,
               sizeof err);
    CHECK(rc == NDJSON_EVENT && ev.n_tokens == 0 && !ev.token_pairs &&
              (ev.present & KV_BIT(KV_F_TOKEN_IDS)),
          "empty token_ids");

    /*
     * extra_keys and unknown keys are kept as their JSON text, exactly as
     * written (lib/pack converts them when a tool publishes them).
     */
    static const char ekt[] =
        "[[\"adapter\",[\"mm\",-4],\"s\",1.5,true,false,null,128,-33,65536,"
        "4294967296,-2147483649,{\"k\":{}}]]";
    rc = parse("{\"type\":\"BlockStored\",\"extra_keys\": [[\"adapter\","
               "[\"mm\",-4],\"s\",1.5,true,false,null,128,-33,65536,"
               "4294967296,-2147483649,{\"k\":{}}]] ,\"future\":{\"nested\":"
               "true},\"@9\":[0,1],\"@0x\":1,\"@07\":2}",
               &env, &ev, err, sizeof err);
    CHECK(rc == NDJSON_EVENT && ev.raw[KV_F_EXTRA_KEYS].kind == KV_RAW_JSON &&
              raw_eq(ev.raw[KV_F_EXTRA_KEYS], ekt, sizeof ekt - 1),
          "extra_keys kept as JSON text, without the blanks around it");
    CHECK(ev.n_unknown == 4 && str_eq(ev.unknown[0].key, "future") &&
              ev.unknown[0].pos == -1 &&
              ev.unknown[0].val.kind == KV_RAW_JSON &&
              raw_eq(ev.unknown[0].val, "{\"nested\":true}", 15) &&
              ev.unknown[1].pos == 9 && ev.unknown[1].key.n == 0 &&
              raw_eq(ev.unknown[1].val, "[0,1]", 5) &&
              ev.unknown[2].pos == -1 && str_eq(ev.unknown[2].key, "@0x") &&
              ev.unknown[3].pos == -1 && str_eq(ev.unknown[3].key, "@07"),
          "unknown keys in order; \"@N\" positional");

    /* Such a value is still validated, as strictly as a decoder would. */
    rc = parse("{\"type\":\"BlockStored\",\"extra_keys\":[\"\\q\"]}", &env, &ev,
               err, sizeof err);
    CHECK(rc == NDJSON_BAD && strstr(err, "invalid escape in a string"),
          "extra_keys with a bad escape is refused");
    rc = parse("{\"type\":\"BlockStored\",\"x\":\"\xfe\"}", &env, &ev, err,
               sizeof err);
    CHECK(rc == NDJSON_BAD && strstr(err, "invalid UTF-8 in a string"),
          "an unknown key whose string is not UTF-8 is refused");

    /* Digests. */
    rc = parse("{\"type\":\"BlockStored\",\"block_hashes\":[\"258\",\"3\"],"
               "\"block_digests\":[\"AB000000000000000000000000000000"
               "00000000000000000000000000000102\",null],"
               "\"parent_block_hash\":\"9\",\"parent_block_digest\":"
               "\"0000000000000009\"}",
               &env, &ev, err, sizeof err);
    CHECK(rc == NDJSON_EVENT && ev.hashes[0].digest_len == 32 &&
              ev.hashes[0].digest[0] == 0xab &&
              ev.hashes[0].digest[31] == 0x02 && ev.hashes[1].digest == NULL &&
              ev.parent.digest_len == 8 && ev.parent.digest[7] == 9,
          "block_digests and parent_block_digest become digest bytes");

    /* Digests may come before the hashes they belong to. */
    rc = parse("{\"block_digests\":[\"0000000000000001\"],\"type\":"
               "\"BlockRemoved\",\"block_hashes\":[1]}",
               &env, &ev, err, sizeof err);
    CHECK(rc == NDJSON_EVENT && ev.hashes[0].digest_len == 8,
          "digests before hashes");
}

static void
test_read_records(void)
{
    struct kv_env env;
    struct kv_event ev;
    char err[256];
    int rc;

    rc = parse("{\"pod\":\"a\",\"dp_rank\":0,\"seq\":9,\"type\":\"gap\","
               "\"from\":5,\"to\":9}",
               &env, &ev, err, sizeof err);
    CHECK(rc == NDJSON_EVENT && ev.type == KV_GAP && ev.from == 5 &&
              ev.to == 9 && ev.n_unknown == 0,
          "gap");
    rc = parse("{\"from\":5,\"to\":9,\"extra\":1,\"type\":\"gap\"}", &env, &ev,
               err, sizeof err);
    CHECK(rc == NDJSON_EVENT && ev.type == KV_GAP && ev.from == 5 &&
              ev.to == 9 && ev.n_unknown == 1 &&
              str_eq(ev.unknown[0].key, "extra"),
          "gap with its keys before type");
    rc = parse("{\"type\":\"restart\",\"last_seq\":18446744073709551615}", &env,
               &ev, err, sizeof err);
    CHECK(rc == NDJSON_EVENT && ev.type == KV_RESTART &&
              ev.last_seq == UINT64_MAX,
          "restart");
    rc = parse("{\"type\":\"decode_error\",\"error\":\"event 1: \\\"x\\\"\","
               "\"bytes\":12}",
               &env, &ev, err, sizeof err);
    CHECK(rc == NDJSON_EVENT && ev.type == KV_DECODE_ERROR &&
              str_eq(ev.error, "event 1: \"x\"") && ev.bytes == 12,
          "decode_error");
    rc = parse("{\"type\":\"skipped\",\"tag\":\"BlockMigrated\",\"count\":3}",
               &env, &ev, err, sizeof err);
    CHECK(rc == NDJSON_EVENT && ev.type == KV_SKIPPED &&
              str_eq(ev.tag, "BlockMigrated") && ev.count == 3,
          "skipped");
    rc = parse("{\"from\":\"x\",\"type\":\"BlockRemoved\",\"tag\":7}", &env,
               &ev, err, sizeof err);
    CHECK(rc == NDJSON_EVENT && ev.n_unknown == 2 &&
              str_eq(ev.unknown[0].key, "from") &&
              raw_eq(ev.unknown[0].val, "\"x\"", 3) &&
              str_eq(ev.unknown[1].key, "tag") && ev.tag.p == NULL &&
              ev.from == 0,
          "record keys on an engine event are unknowns");

    rc = parse("{\"type\":\"format\",\"version\":1}", &env, &ev, err,
               sizeof err);
    CHECK(rc == NDJSON_SKIP, "format version 1 is skipped");
    rc = parse("{\"version\":2,\"type\":\"format\"}", &env, &ev, err,
               sizeof err);
    CHECK(rc == NDJSON_FATAL &&
              strcmp(err, "unsupported NDJSON format version 2") == 0,
          "format version 2 is fatal");
    rc = parse("{\"type\":\"format\",\"version\":\"1\"}", &env, &ev, err,
               sizeof err);
    CHECK(rc == NDJSON_FATAL && strstr(err, "version \"1\"") != NULL,
          "format version \"1\" (a string) is fatal");
    rc = parse("{\"type\":\"format\",\"version\":1.0}", &env, &ev, err,
               sizeof err);
    CHECK(rc == NDJSON_FATAL, "format version 1.0 is fatal");
    rc = parse("{\"type\":\"format\"}", &env, &ev, err, sizeof err);
    CHECK(rc == NDJSON_BAD && strstr(err, "version") != NULL,
          "format line without a version is bad");
    rc = parse("", &env, &ev, err, sizeof err);
    CHECK(rc == NDJSON_SKIP, "empty line is skipped");
    rc = parse(" \t\r", &env, &ev, err, sizeof err);
    CHECK(rc == NDJSON_SKIP, "blank line is skipped");
}

static void
test_read_errors(void)
{
    static const struct {
        const char *line;
        const char *why; /* a substring of the reason */
    } cases[] = {
        {"[1]", "not a JSON object"},
        {"\"x\"", "not a JSON object"},
        {"nul", "not a JSON object"},
        {"{}", "no \"type\""},
        {"{\"pod\":\"a\"}", "no \"type\""},
        {"{\"type\":\"Foo\"}", "unknown type \"Foo\""},
        {"{\"type\":\"blockstored\"}", "unknown type"},
        {"{\"type\":7}", "type: expected a string"},
        {"{\"type\":\"gap\"} x", "trailing characters"},
        {"{\"type\":\"gap\"}}", "trailing characters"},
        {"{\"type\":\"gap\"", "expected ',' or '}' at end of line"},
        {"{\"type\":\"gap", "unterminated string"},
        {"{\"type\":\"gap\",}", "expected a string key"},
        {"{\"type\" \"gap\"}", "expected ':'"},
        {"{type:\"gap\"}", "expected a string key"},
        {"{\"type\":\"gap\",\"x\":01}", "expected ',' or '}'"},
        {"{\"type\":\"gap\",\"x\":1.}", "invalid number"},
        {"{\"type\":\"gap\",\"x\":-}", "invalid number"},
        {"{\"type\":\"gap\",\"x\":1e}", "invalid number"},
        {"{\"type\":\"gap\",\"x\":+1}", "invalid value"},
        {"{\"type\":\"gap\",\"x\":.5}", "invalid value"},
        {"{\"type\":\"gap\",\"x\":tru}", "invalid value"},
        {"{\"type\":\"gap\",\"x\":[1,]}", "invalid value"},
        {"{\"type\":\"gap\",\"x\":[1 2]}", "expected ',' or ']'"},
        {"{\"type\":\"gap\",\"x\":{\"a\" 1}}", "expected ':'"},
        {"{\"type\":\"gap\",\"x\":{1:1}}", "expected a string key"},
        {"{\"type\":\"gap\",\"x\":\"a\tb\"}", "control character"},
        {"{\"type\":\"gap\",\"x\":\"\\q\"}", "invalid escape"},
        {"{\"type\":\"gap\",\"x\":\"\\u12g4\"}", "invalid \\u escape"},
        {"{\"type\":\"gap\",\"x\":\"\\u12\"}", "invalid \\u escape"},
        {"{\"type\":\"gap\",\"x\":\"\\", "unterminated string"},
        {"{\"type\":\"gap\",\"from\":-1}", "from: expected an unsigned"},
        {"{\"type\":\"gap\",\"to\":\"9\"}", "to: expected an unsigned"},
        {"{\"type\":\"decode_error\",\"error\":1}", "error: expected a string"},
        {"{\"type\":\"skipped\",\"count\":1.5}", "count: expected an unsigned"},
        {"{\"type\":\"gap\",\"pod\":1}", "pod: expected a string"},
        {"{\"type\":\"gap\",\"pod\":null}", "pod: expected a string"},
        {"{\"type\":\"gap\",\"seq\":-1}", "seq: integer out of range"},
        {"{\"type\":\"gap\",\"seq\":18446744073709551616}",
         "seq: integer out of range"},
        {"{\"type\":\"gap\",\"i\":4294967296}", "i: integer out of range"},
        {"{\"type\":\"gap\",\"dp_rank\":\"0\"}",
         "dp_rank: expected an integer"},
        {"{\"type\":\"gap\",\"dp_rank\":9223372036854775808}", "dp_rank:"},
        {"{\"type\":\"gap\",\"ts\":\"now\"}", "ts: expected a number"},
        {"{\"type\":\"gap\",\"ts\":1e400}", "ts: out of range"},
        {"{\"type\":\"gap\",\"ts\":-17000e01700000000}", "ts: out of range"},
        {"{\"type\":\"gap\",\"model\":1}", "model: expected a string"},
        {"{\"type\":\"BlockStored\",\"block_hashes\":\"nope\"}",
         "block_hashes: expected an array"},
        {"{\"type\":\"BlockStored\",\"block_hashes\":[1.5]}",
         "block_hashes: expected an integer"},
        {"{\"type\":\"BlockStored\",\"block_hashes\":[\"12a\"]}",
         "block_hashes: \"12a\" is not a decimal or 0x-hex"},
        {"{\"type\":\"BlockStored\",\"block_hashes\":[\"\"]}",
         "is not a decimal"},
        {"{\"type\":\"BlockStored\",\"block_hashes\":[\"0x\"]}",
         "is not a decimal"},
        {"{\"type\":\"BlockStored\",\"block_hashes\":["
         "\"0x10000000000000000\"]}",
         "is not a decimal"},
        {"{\"type\":\"BlockStored\",\"block_hashes\":["
         "\"18446744073709551616\"]}",
         "is not a decimal"},
        {"{\"type\":\"BlockStored\",\"block_hashes\":[-9223372036854775809]}",
         "out of the 64-bit range"},
        {"{\"type\":\"BlockStored\",\"block_hashes\":[null]}",
         "block_hashes: expected a hash"},
        {"{\"type\":\"BlockStored\",\"parent_block_hash\":[1]}",
         "parent_block_hash: expected a hash"},
        {"{\"type\":\"BlockStored\",\"token_ids\":[-1]}",
         "token_ids: integer out of range"},
        {"{\"type\":\"BlockStored\",\"token_ids\":[4294967296]}",
         "token_ids: integer out of range"},
        {"{\"type\":\"BlockStored\",\"token_ids\":[true]}",
         "token_ids: expected an integer"},
        {"{\"type\":\"BlockStored\",\"token_ids\":[[1,2],3]}", "mixes"},
        {"{\"type\":\"BlockStored\",\"token_ids\":[1,[2,3]]}", "mixes"},
        {"{\"type\":\"BlockStored\",\"token_ids\":[[1,2,3]]}", "pair"},
        {"{\"type\":\"BlockStored\",\"token_ids\":[[1]]}", "pair"},
        {"{\"type\":\"BlockStored\",\"token_ids\":7}",
         "token_ids: expected an array"},
        {"{\"type\":\"BlockStored\",\"block_size\":1.0}",
         "block_size: expected an integer, not 1.0"},
        {"{\"type\":\"BlockStored\",\"block_size\":-1}",
         "block_size: integer out of range"},
        {"{\"type\":\"BlockStored\",\"block_size\":\"16\"}",
         "block_size: expected an integer"},
        {"{\"type\":\"BlockStored\",\"lora_id\":9223372036854775808}",
         "lora_id: integer out of the signed"},
        {"{\"type\":\"BlockStored\",\"medium\":1}",
         "medium: expected a string"},
        {"{\"type\":\"BlockStored\",\"lora_name\":[]}",
         "lora_name: expected a string"},
        {"{\"type\":\"BlockStored\",\"extra_keys\":[1,}", "invalid value"},
        {"{\"type\":\"BlockStored\",\"block_hashes\":[1],\"block_digests\":"
         "[]}",
         "block_digests: 0 digests for 1"},
        {"{\"type\":\"BlockStored\",\"block_digests\":[\"00000000000000"
         "01\"]}",
         "block_digests: 1 digests for 0"},
        {"{\"type\":\"BlockStored\",\"block_hashes\":[2],\"block_digests\":"
         "[\"0000000000000001\"]}",
         "does not end with block_hashes[0]"},
        {"{\"type\":\"BlockStored\",\"block_hashes\":[1],\"block_digests\":"
         "[\"00000000000001\"]}",
         "digest of 8 bytes or more"},
        {"{\"type\":\"BlockStored\",\"block_hashes\":[1],\"block_digests\":"
         "[\"000000000000000g\"]}",
         "is not hex"},
        {"{\"type\":\"BlockStored\",\"block_hashes\":[1],\"block_digests\":"
         "[1]}",
         "block_digests: expected a string"},
        {"{\"type\":\"BlockStored\",\"block_digests\":7}",
         "block_digests: expected an array"},
        {"{\"type\":\"BlockStored\",\"parent_block_digest\":\"00000000000000"
         "01\"}",
         "parent_block_digest without a parent_block_hash"},
        {"{\"type\":\"BlockStored\",\"parent_block_hash\":2,"
         "\"parent_block_digest\":\"0000000000000001\"}",
         "parent_block_digest does not end"},
    };
    struct kv_env env;
    struct kv_event ev;

    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char err[256] = "", what[160];
        int rc = parse(cases[k].line, &env, &ev, err, sizeof err);
        snprintf(what, sizeof what, "bad line %zu: %s", k, cases[k].why);
        if (!CHECK(rc == NDJSON_BAD && strstr(err, cases[k].why) != NULL, what))
            printf("#   rc %d, err: %s\n", rc, err);
    }

    /* Nesting: 64 levels are fine, 65 are refused, 100000 do not recurse. */
    char line[200100];
    for (int depth = 64; depth <= 65; depth++) {
        size_t k =
            (size_t)snprintf(line, sizeof line, "{\"type\":\"gap\",\"x\":");
        memset(line + k, '[', (size_t)depth);
        memset(line + k + depth, ']', (size_t)depth);
        snprintf(line + k + 2 * (size_t)depth, 3, "}");
        char err[256] = "";
        int rc = parse(line, &env, &ev, err, sizeof err);
        if (depth == 64)
            CHECK(rc == NDJSON_EVENT, "64 nested arrays parse");
        else
            CHECK(rc == NDJSON_BAD && strstr(err, "nest deeper than 64"),
                  "65 nested arrays are refused");
    }
    size_t k = (size_t)snprintf(line, sizeof line, "{\"type\":\"gap\",\"x\":");
    memset(line + k, '[', 100000);
    line[k + 100000] = '\0';
    char err[256] = "";
    CHECK(parse(line, &env, &ev, err, sizeof err) == NDJSON_BAD,
          "100000 open brackets: refused, no stack overflow");

    /* No err buffer: still a clean return. */
    CHECK(parse("[", &env, &ev, NULL, 0) == NDJSON_BAD, "NULL err buffer");
}

/*
 * Token and hash digits are read several at a time: check every length
 * and position against values formatted here with snprintf.
 */
static void
test_read_numbers(void)
{
    static char line[1 << 20];
    static uint32_t want[20000];
    struct kv_env env;
    struct kv_event ev;
    char err[256];
    uint64_t r = 0x2545f4914f6cdd1dull;
    size_t n = 0, k;

    k = (size_t)snprintf(line, sizeof line,
                         "{\"type\":\"BlockStored\",\"token_ids\":[");
    for (uint32_t d = 0; d <= 10; d++) {
        /* 0, 9, 10, 99, 100, ... and 4294967295 at the end. */
        uint64_t p = 1;
        for (uint32_t e = 0; e < d; e++)
            p *= 10;
        want[n++] = (uint32_t)(p - 1 > UINT32_MAX ? UINT32_MAX : p - 1);
        if (p <= UINT32_MAX)
            want[n++] = (uint32_t)p;
    }
    while (n < 20000) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        want[n++] = (uint32_t)(r >> (r % 33));
    }
    for (size_t x = 0; x < n; x++)
        k += (size_t)snprintf(line + k, sizeof line - k, "%s%" PRIu32,
                              x ? "," : "", want[x]);
    snprintf(line + k, sizeof line - k, "]}");
    int rc = parse(line, &env, &ev, err, sizeof err);
    int same = rc == NDJSON_EVENT && ev.n_tokens == n;
    for (size_t x = 0; same && x < n; x++)
        same = ev.tokens[x] == want[x];
    CHECK(same, "20000 token ids of every length read back");
    /* And the writer prints them as snprintf did. */
    buf_clear(&out);
    ndjson_write_event(&out, &env, &ev);
    const char *list = strstr(line, "\"token_ids\":[");
    size_t list_len = strlen(list) - 1; /* without the final '}' */
    CHECK(memmem(out.p, out.len, list, list_len) != NULL,
          "20000 token ids of every length written back");

    static const char *bad_tokens[] = {
        "[01]",         "[00]",          "[1.0]",     "[1e2]",
        "[4294967296]", "[99999999999]", "[1a]",      "[12345678a]",
        "[-0]",         "[1234567.5]",   "[0123456]", "[1234567e1]",
    };
    for (size_t x = 0; x < sizeof bad_tokens / sizeof bad_tokens[0]; x++) {
        char what[96];
        snprintf(line, sizeof line,
                 "{\"type\":\"BlockStored\",\"token_ids\":%s,"
                 "\"medium\":\"GPU\"}",
                 bad_tokens[x]);
        rc = parse(line, &env, &ev, err, sizeof err);
        snprintf(what, sizeof what, "token_ids %s rejected", bad_tokens[x]);
        if (strcmp(bad_tokens[x], "[-0]") == 0)
            CHECK(rc == NDJSON_EVENT && ev.tokens[0] == 0, "token -0 is 0");
        else
            CHECK(rc == NDJSON_BAD, what);
    }

    int hashes_ok = 1;
    for (int len = 1; len <= 20; len++) {
        for (int rep = 0; rep < 200; rep++) {
            char digits[24];
            for (int x = 0; x < len; x++) {
                r ^= r << 13;
                r ^= r >> 7;
                r ^= r << 17;
                digits[x] = (char)('0' + r % 10);
            }
            if (len == 20) {
                digits[0] = '1'; /* stays below 2^64 */
                digits[1] = (char)('0' + r % 8);
            }
            digits[len] = '\0';
            uint64_t v = strtoull(digits, NULL, 10);
            snprintf(line, sizeof line,
                     "{\"type\":\"BlockRemoved\",\"block_hashes\":[\"%s\"]}",
                     digits);
            rc = parse(line, &env, &ev, err, sizeof err);
            if (rc != NDJSON_EVENT || ev.hashes[0].v != v) {
                hashes_ok = 0;
                printf("#   hash %s: rc %d\n", digits, rc);
            }
            /* A non-digit at any position is refused. */
            digits[rep % len] = rep % 2 ? '/' : ':';
            snprintf(line, sizeof line,
                     "{\"type\":\"BlockRemoved\",\"block_hashes\":[\"%s\"]}",
                     digits);
            if (parse(line, &env, &ev, err, sizeof err) != NDJSON_BAD) {
                hashes_ok = 0;
                printf("#   hash %s accepted\n", digits);
            }
        }
    }
    CHECK(hashes_ok, "decimal hashes of every length read back exactly");
    rc = parse("{\"type\":\"BlockRemoved\",\"block_hashes\":["
               "\"18446744073709551615\",\"00000000000000000000001\"]}",
               &env, &ev, err, sizeof err);
    CHECK(rc == NDJSON_BAD, "a 23-digit hash is refused");
    rc = parse("{\"type\":\"BlockRemoved\",\"block_hashes\":["
               "\"18446744073709551615\",\"19000000000000000000\"]}",
               &env, &ev, err, sizeof err);
    CHECK(rc == NDJSON_BAD && strstr(err, "19000000000000000000"),
          "a hash above 2^64-1 is refused");

    /* Timestamps: the fast division path and strtod agree with the writer. */
    int ts_ok = 1;
    for (int rep = 0; rep < 20000; rep++) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        struct kv_env e = {.pod = {"p", 1}, .has_ts = 1};
        e.ts = rep % 3 == 0   ? 1700000000.0 + (double)(r % 100000000) / 1e6
               : rep % 3 == 1 ? (double)(r >> 11) / (double)(1 + r % 1000)
                              : -(double)(r % 1000000) / 1e3;
        struct kv_event cl;
        kv_event_init(&cl, KV_ALL_BLOCKS_CLEARED);
        buf_clear(&out);
        ndjson_write_event(&out, &e, &cl);
        arena_reset(&arena);
        rc = ndjson_parse_line(out.p, out.len - 1, &arena, &env, &ev, err,
                               sizeof err);
        if (rc != NDJSON_EVENT || !env.has_ts || env.ts != e.ts) {
            ts_ok = 0;
            printf("#   ts %.17g: %.*s", e.ts, (int)out.len, out.p);
        }
    }
    CHECK(ts_ok, "20000 timestamps round-trip exactly");
}

/*
 * The msgpack a raw value publishes as: its bytes for a msgpack raw, the
 * conversion by lib/pack (held to python3-msgpack's bytes by test_pack) for
 * JSON text.  Two raws are the same value when these agree.
 */
static int
raw_msgpack(struct kv_raw r, struct buf *dst)
{
    struct pack pk;
    int ok;

    pack_init(&pk, dst);
    pack_raw(&pk, &r);
    ok = pack_error(&pk) == NULL;
    pack_free(&pk);
    return ok ? 0 : -1;
}

static int
raw_same(struct kv_raw a, struct kv_raw b)
{
    struct buf x = {0}, y = {0};
    int same = raw_msgpack(a, &x) == 0 && raw_msgpack(b, &y) == 0 &&
               x.len == y.len && memcmp(x.p, y.p, x.len) == 0;

    buf_free(&x);
    buf_free(&y);
    return same;
}

/* Field-by-field equality of two events (what the reader can restore). */
static int
event_eq(const struct kv_event *a, const struct kv_event *b)
{
    if (a->type != b->type || a->present != b->present ||
        a->isnull != b->isnull)
        return 0;
    uint32_t live = a->present & ~a->isnull;
    if (live & KV_BIT(KV_F_BLOCK_HASHES)) {
        if (a->n_hashes != b->n_hashes)
            return 0;
        for (size_t k = 0; k < a->n_hashes; k++) {
            const struct kv_hash *x = &a->hashes[k], *y = &b->hashes[k];
            if (x->v != y->v || (x->digest == NULL) != (y->digest == NULL))
                return 0;
            if (x->digest != NULL &&
                (x->digest_len != y->digest_len ||
                 memcmp(x->digest, y->digest, x->digest_len) != 0))
                return 0;
        }
    }
    if ((live & KV_BIT(KV_F_PARENT_BLOCK_HASH)) && a->parent.v != b->parent.v)
        return 0;
    if (live & KV_BIT(KV_F_TOKEN_IDS)) {
        size_t n = a->token_pairs ? 2 * a->n_tokens : a->n_tokens;
        if (a->n_tokens != b->n_tokens || a->token_pairs != b->token_pairs ||
            (n > 0 && memcmp(a->tokens, b->tokens, n * 4) != 0))
            return 0;
    }
    for (int f = 0; f < KV_F_COUNT; f++) {
        if (!(live & KV_BIT(f)))
            continue;
        switch (kv_fields[f].kind) {
        case KV_K_INT:
        case KV_K_HASHV:
            if (a->num[f] != b->num[f])
                return 0;
            break;
        case KV_K_STR:
            if (a->str[f].n != b->str[f].n ||
                (a->str[f].n > 0 &&
                 memcmp(a->str[f].p, b->str[f].p, a->str[f].n) != 0))
                return 0;
            break;
        case KV_K_RAW:
            if (!raw_same(a->raw[f], b->raw[f]))
                return 0;
            break;
        default:
            break;
        }
    }
    if (a->n_unknown != b->n_unknown)
        return 0;
    for (size_t k = 0; k < a->n_unknown; k++) {
        const struct kv_unknown *x = &a->unknown[k], *y = &b->unknown[k];
        if (x->pos != y->pos || !raw_same(x->val, y->val))
            return 0;
        if (x->pos < 0 &&
            (x->key.n != y->key.n || memcmp(x->key.p, y->key.p, x->key.n) != 0))
            return 0;
    }
    return a->from == b->from && a->to == b->to && a->last_seq == b->last_seq &&
           a->bytes == b->bytes && a->count == b->count &&
           a->error.n == b->error.n &&
           (a->error.n == 0 ||
            memcmp(a->error.p, b->error.p, a->error.n) == 0) &&
           a->tag.n == b->tag.n &&
           (a->tag.n == 0 || memcmp(a->tag.p, b->tag.p, a->tag.n) == 0);
}

static void
test_round_trip(void)
{
    static const uint8_t dg[32] = {1, 2, 3, [31] = 0x2a};
    static struct kv_hash hs[3] = {
        {0x2a, dg, 32}, {UINT64_MAX, NULL, 0}, {0, NULL, 0}};
    static uint32_t toks[6] = {0, 1, 4294967295u, 7, 8, 9};
    /* Generic values in the smallest forms the reader produces. */
    static const uint8_t ek[] = {0x92, 0xc0, 0x93, 0xa1, 'a',  0x92, 0xa2,
                                 'm',  'm',  0xfc, 0xcb, 0x3f, 0xf8, 0,
                                 0,    0,    0,    0,    0};
    static const uint8_t uv[] = {0x82, 0xa1, 'k', 0xcd, 0x01, 0x00,
                                 0xa2, 'k',  '2', 0xd3, 0x80, 0,
                                 0,    0,    0,   0,    0,    0};
    static struct kv_unknown uk[3] = {
        {{"locality2", 9}, -1, {uv, sizeof uv, KV_RAW_MSGPACK}},
        {{NULL, 0},
         12,
         {(const uint8_t *)"\x91\xcd\x01\x00", 4, KV_RAW_MSGPACK}},
        {{"we\"ird", 6},
         -1,
         {(const uint8_t *)"\xa3\xc3\xa9!", 4, KV_RAW_MSGPACK}},
    };
    struct kv_event evs[8];
    int n = 0;

    struct kv_event *e = &evs[n++];
    kv_event_init(e, KV_BLOCK_STORED);
    e->present = (KV_BIT(KV_F_COUNT) - 1);
    e->isnull = KV_BIT(KV_F_LORA_NAME);
    e->hashes = hs;
    e->n_hashes = 3;
    e->parent = hs[0];
    e->tokens = toks;
    e->n_tokens = 6;
    e->num[KV_F_BLOCK_SIZE] = 2;
    e->num[KV_F_LORA_ID] = -7;
    e->num[KV_F_GROUP_IDX] = 3;
    e->num[KV_F_KV_CACHE_SPEC_SLIDING_WINDOW] = -1;
    e->str[KV_F_MEDIUM] = S("GPU");
    e->str[KV_F_KV_CACHE_SPEC_KIND] = S("sliding\twindow");
    e->str[KV_F_LOCALITY] = S("LOCAL");
    e->str[KV_F_OWNERSHIP] = S("\xc3\xa9");
    e->str[KV_F_CACHE_SALT] = S("");
    e->str[KV_F_SESSION_ID] = S("s\"1");
    e->raw[KV_F_EXTRA_KEYS].p = ek;
    e->raw[KV_F_EXTRA_KEYS].n = sizeof ek;
    e->raw[KV_F_MM_KEYS] = e->raw[KV_F_EXTRA_KEYS];
    /* Generic fields without a value: null, as a reader reads them. */
    e->isnull |= KV_BIT(KV_F_REMAINING_COPY_COUNTS) | KV_BIT(KV_F_ORIGIN) |
                 KV_BIT(KV_F_SKIPPED_TOKEN_IDS) |
                 KV_BIT(KV_F_SKIPPED_EXTRA_KEYS);
    e->num[KV_F_SKIPPED_PARENT_BLOCK_HASH] = -2;
    e->unknown = uk;
    e->n_unknown = 3;

    e = &evs[n++];
    kv_event_init(e, KV_BLOCK_STORED);
    e->present = kv_required_fields(KV_BLOCK_STORED);
    e->isnull = KV_BIT(KV_F_PARENT_BLOCK_HASH) | KV_BIT(KV_F_LORA_ID) |
                KV_BIT(KV_F_MEDIUM);
    e->hashes = &hs[1];
    e->n_hashes = 2;
    e->tokens = toks;
    e->n_tokens = 3;
    e->token_pairs = 1;
    e->num[KV_F_BLOCK_SIZE] = 1;

    e = &evs[n++];
    kv_event_init(e, KV_BLOCK_REMOVED);
    e->present = kv_required_fields(KV_BLOCK_REMOVED) | KV_BIT(KV_F_GROUP_IDX);
    e->hashes = hs;
    e->n_hashes = 1;
    e->str[KV_F_MEDIUM] = S("CPU");
    e->unknown = &uk[1];
    e->n_unknown = 1;

    e = &evs[n++];
    kv_event_init(e, KV_ALL_BLOCKS_CLEARED);

    e = &evs[n++];
    kv_event_init(e, KV_GAP);
    e->from = 1;
    e->to = UINT64_MAX;

    e = &evs[n++];
    kv_event_init(e, KV_RESTART);
    e->last_seq = 77;

    e = &evs[n++];
    kv_event_init(e, KV_DECODE_ERROR);
    e->error = S("event 3: \x01 bad \\ \"");
    e->bytes = 1234;

    e = &evs[n++];
    kv_event_init(e, KV_SKIPPED);
    e->tag = S("BlockMigrated");
    e->count = 2;

    struct kv_env env = {.pod = S("pod/\"a\""),
                         .model = S("m"),
                         .has_rank = 1,
                         .rank = -1,
                         .has_seq = 1,
                         .seq = 1ull << 60,
                         .has_ts = 1,
                         .ts = 1732761234.512345};
    for (int k = 0; k < n; k++) {
        struct kv_env env2;
        struct kv_event back;
        char err[256], what[64];

        env.has_i = evs[k].type <= KV_ALL_BLOCKS_CLEARED;
        env.i = (uint32_t)k;
        evs[k].index = env.has_i ? (uint32_t)k : 0;
        buf_clear(&out);
        ndjson_write_event(&out, &env, &evs[k]);
        CHECK(out.len > 0 && out.p[out.len - 1] == '\n' &&
                  memchr(out.p, '\n', out.len - 1) == NULL,
              "one line, newline-terminated");
        arena_reset(&arena);
        int rc = ndjson_parse_line(out.p, out.len - 1, &arena, &env2, &back,
                                   err, sizeof err);
        snprintf(what, sizeof what, "round trip %d (%s)", k,
                 kv_type_name(evs[k].type));
        if (!CHECK(rc == NDJSON_EVENT && event_eq(&evs[k], &back) &&
                       back.index == evs[k].index && env2.pod.n == env.pod.n &&
                       memcmp(env2.pod.p, env.pod.p, env.pod.n) == 0 &&
                       str_eq(env2.model, "m") && env2.has_rank &&
                       env2.rank == -1 && env2.seq == env.seq &&
                       env2.has_i == env.has_i && env2.ts == env.ts,
                   what))
            printf("#   rc %d err %s line %.*s", rc, err, (int)out.len, out.p);
        /* Writing the parsed event again gives the same line. */
        struct buf again = {0};
        ndjson_write_event(&again, &env2, &back);
        CHECK(again.len == out.len && memcmp(again.p, out.p, out.len) == 0,
              "write(parse(line)) == line");
        buf_free(&again);
    }
}

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

/*
 * TensorRT-LLM's placeholder tokens (docs/protocol.md#tensorrt-llm): kept
 * as the list's text, keyed by FNV-1a-32 with the top bit set, written
 * back as they were read.
 */
static void
test_read_placeholders(void)
{
    static const char line[] =
        "{\"type\":\"BlockStored\",\"token_ids\":[1, \"<img>\",\"a\\u0062\"]}";
    struct kv_env env;
    struct kv_event ev;
    char err[128] = "";
    int rc = parse(line, &env, &ev, err, sizeof err);

    if (!CHECK(rc == NDJSON_EVENT && ev.token_mixed && ev.n_tokens == 3,
               "placeholder strings among token ids are read"))
        return;
    /* FNV-1a-32("<img>") | top bit = 0xbeaedda4, ("ab") 0xcd2505ca. */
    CHECK_U64(ev.tokens[0], 1, "an integer token stays");
    CHECK_U64(ev.tokens[1], 0xbeaedda4u, "\"<img>\" keys as its FNV-1a-32");
    CHECK_U64(ev.tokens[2], 0xcd2505cau, "an escaped placeholder is decoded");
    CHECK(ev.raw[KV_F_TOKEN_IDS].kind == KV_RAW_JSON &&
              ev.raw[KV_F_TOKEN_IDS].n == 22 &&
              memcmp(ev.raw[KV_F_TOKEN_IDS].p, "[1, \"<img>\",\"a\\u0062\"]",
                     22) == 0,
          "the list is kept as it was written");
    buf_clear(&out);
    ndjson_write_event(&out, &env, &ev);
    CHECK(out.len > 0 &&
              strstr(out.p, "\"token_ids\":[1, \"<img>\",\"a\\u0062\"]") !=
                  NULL,
          "and written back as it came");
    rc = parse("{\"type\":\"BlockStored\",\"token_ids\":[1,2]}", &env, &ev, err,
               sizeof err);
    CHECK(rc == NDJSON_EVENT && !ev.token_mixed, "plain ids are not mixed");
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
    test_read_envelope();
    test_read_fields();
    test_read_placeholders();
    test_read_records();
    test_read_errors();
    test_read_numbers();
    test_round_trip();
    test_hostile();
    buf_free(&out);
    arena_free(&arena);
    return unit_done();
}

/*
 * test_ndjson_read.c - the NDJSON reader: envelopes, fields, records,
 * errors, numbers, and round trips through the writer (hostile lines are
 * in test_ndjson.c, beside the writer's converter they also feed).
 *
 * Expected values are written by hand from docs/ndjson.md, never copied
 * from the reader's output.
 */
#include <math.h>
#include <stdlib.h>

#include "ndjson_read.h"
#include "ndjson_write.h"
#include "pack.h"
#include "unit.h"

/* U+FFFD in UTF-8. */
#define R "\xef\xbf\xbd"

/* What the round trips write. */
static struct buf out;

static struct kv_str
S(const char *s) {
    struct kv_str k = {s, strlen(s)};
    return k;
}

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
               "\"stream\":\"0123456789abcdef0123456789abcdef\","
               "\"type\":\"AllBlocksCleared\"}",
               &env, &ev, err, sizeof err);
    CHECK(rc == NDJSON_EVENT && str_eq(env.pod, "pod-a") &&
              str_eq(env.stream, "0123456789abcdef0123456789abcdef") &&
              str_eq(env.model, "m") && env.has_rank && env.rank == -2 &&
              env.has_seq && env.seq == UINT64_MAX && env.has_i &&
              env.i == 4294967295u && ev.index == 4294967295u && env.has_ts &&
              env.ts == 1700000000.25 && ev.type == KV_ALL_BLOCKS_CLEARED,
          "full envelope");

    rc = parse(" {\"type\":\"AllBlocksCleared\"} \r", &env, &ev, err,
               sizeof err);
    /* Into the env of the full envelope: nothing of it may stay. */
    CHECK(rc == NDJSON_EVENT && str_eq(env.pod, "-") && env.model.p == NULL &&
              env.stream.p == NULL && !env.has_rank && !env.has_seq &&
              !env.has_i && !env.has_ts,
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
    static uint32_t want[70000];
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
    /* More than jp_tokens reserves room for before it reads (65,536). */
    while (n < 70000) {
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
    CHECK(same, "70000 token ids of every length read back");
    /* And the writer prints them as snprintf did. */
    buf_clear(&out);
    ndjson_write_event(&out, &env, &ev);
    const char *list = strstr(line, "\"token_ids\":[");
    size_t list_len = strlen(list) - 1; /* without the final '}' */
    CHECK(memmem(out.p, out.len, list, list_len) != NULL,
          "70000 token ids of every length written back");

    /* The room given back after the ids is where the line's next values
     * go (a string's unescaped copy, an unknown key): the ids stay whole. */
    k = (size_t)snprintf(line, sizeof line,
                         "{\"type\":\"BlockStored\",\"token_ids\":[");
    for (size_t x = 0; x < 300; x++)
        k += (size_t)snprintf(line + k, sizeof line - k, "%s%" PRIu32,
                              x ? "," : "", want[x]);
    snprintf(line + k, sizeof line - k,
             "],\"lora_name\":\"tab\\there\",\"zz\":[1,2],"
             "\"extra_keys\":[\"%s\"]}",
             "a long enough value to need more than the kept room");
    rc = parse(line, &env, &ev, err, sizeof err);
    same = rc == NDJSON_EVENT && ev.n_tokens == 300 && ev.n_unknown == 1 &&
           ev.str[KV_F_LORA_NAME].n == 8 &&
           memcmp(ev.str[KV_F_LORA_NAME].p, "tab\there", 8) == 0;
    for (size_t x = 0; same && x < 300; x++)
        same = ev.tokens[x] == want[x];
    CHECK(same, "token ids and the values read after them");

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
            /* Every other one with a member after it: a hash with 25
             * bytes from its quote to the end takes the word-wise path. */
            const char *after = rep >> 1 & 1 ? ",\"medium\":\"GPU\"" : "";
            snprintf(line, sizeof line,
                     "{\"type\":\"BlockRemoved\",\"block_hashes\":[\"%s\"]%s}",
                     digits, after);
            rc = parse(line, &env, &ev, err, sizeof err);
            if (rc != NDJSON_EVENT || ev.hashes[0].v != v) {
                hashes_ok = 0;
                printf("#   hash %s: rc %d\n", digits, rc);
            }
            /* A non-digit at any position is refused. */
            digits[rep % len] = rep % 2 ? '/' : ':';
            snprintf(line, sizeof line,
                     "{\"type\":\"BlockRemoved\",\"block_hashes\":[\"%s\"]%s}",
                     digits, after);
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
    rc = parse("{\"type\":\"BlockRemoved\",\"block_hashes\":["
               "\"18446744073709551616\",\"1\"],\"medium\":\"GPU\"}",
               &env, &ev, err, sizeof err);
    CHECK(rc == NDJSON_BAD && strstr(err, "18446744073709551616"),
          "a hash of 2^64 with room after it is refused");

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
    /* One event parsed into line after line, as kvindex reuses its
     * batches' items: the first line sets every field, so a slot the
     * parser failed to reset would show through in the lines after it. */
    struct kv_event reused;
    struct arena arena2 = {0};

    for (int k = 0; k < n; k++) {
        struct kv_env env2, env3;
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
        arena_reset(&arena2);
        rc = ndjson_parse_line(out.p, out.len - 1, &arena2, &env3, &reused, err,
                               sizeof err);
        buf_clear(&again);
        if (rc == NDJSON_EVENT)
            ndjson_write_event(&again, &env3, &reused);
        snprintf(what, sizeof what, "round trip %d (%s), event reused", k,
                 kv_type_name(evs[k].type));
        CHECK(rc == NDJSON_EVENT && event_eq(&evs[k], &reused) &&
                  again.len == out.len && memcmp(again.p, out.p, out.len) == 0,
              what);
        buf_free(&again);
    }
    arena_free(&arena2);
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
    test_read_envelope();
    test_read_fields();
    test_read_placeholders();
    test_read_records();
    test_read_errors();
    test_read_numbers();
    test_round_trip();
    buf_free(&out);
    arena_free(&arena);
    return unit_done();
}

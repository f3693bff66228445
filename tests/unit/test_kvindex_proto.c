/*
 * test_kvindex_proto.c - kvindex's request parsing and protocol replies
 * (lib/kvproto.c), table-driven against a real index.  The JSON lexical
 * layer under it has its own tests (test_jscan.c).  The version in replies
 * is the Makefile's KVTAP_VERSION.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockkey.h"
#include "index.h"
#include "kvproto.h"
#include "ndjson_read.h"
#include "unit.h"

/* Runs one request; returns the reply without its '\n' (static storage). */
static const char *
ask(struct kvproto *p, const char *req)
{
    static struct buf out;

    buf_clear(&out);
    kvproto_handle(p, req, strlen(req), &out);
    if (out.oom || out.len == 0 || out.p[out.len - 1] != '\n')
        return "(no reply line)";
    out.p[out.len - 1] = '\0';
    return out.p;
}

static void
test_replies(struct kvproto *p)
{
    static const struct {
        const char *req, *want;
    } cases[] = {
        {"{\"op\":\"ping\"}",
         "{\"id\":null,\"ok\":true,\"data\":{\"version\":\"" KVTAP_VERSION
         "\"}}"},
        {" {\"id\":{\"a\":[1,\"}\"]},\"op\":\"ping\"} ",
         "{\"id\":{\"a\":[1,\"}\"]},\"ok\":true,\"data\":{\"version\":"
         "\"" KVTAP_VERSION "\"}}"},
        {"{\"op\":\"nope\",\"id\":-1.5e3}",
         "{\"id\":-1.5e3,\"ok\":false,\"error\":\"unknown op \\\"nope\\\"\"}"},
        {"{\"id\":2}",
         "{\"id\":2,\"ok\":false,\"error\":\"missing \\\"op\\\"\"}"},
        {"[1]",
         "{\"id\":null,\"ok\":false,\"error\":\"a request is a JSON object\"}"},
        {"{\"op\":\"ping\"} x", "{\"id\":null,\"ok\":false,\"error\":"
                                "\"trailing text after the request object\"}"},
        {"{\"op\":\"ping\",}",
         "{\"id\":null,\"ok\":false,\"error\":\"expected a string\"}"},
        /* The id is found even after the member that failed. */
        {"{\"op\":\"match\",\"tokens\":[1,-2],\"id\":\"z\"}",
         "{\"id\":\"z\",\"ok\":false,\"error\":\"tokens: expected a "
         "non-negative integer\"}"},
        {"{\"op\":\"match\",\"model\":\"m\"}",
         "{\"id\":null,\"ok\":false,\"error\":\"match needs \\\"tokens\\\" or "
         "\\\"keys\\\"\"}"},
        {"{\"op\":\"keys\",\"model\":\"m\",\"tokens\":[01]}",
         "{\"id\":null,\"ok\":false,\"error\":\"tokens: bad token (a leading "
         "zero, or over 4294967295)\"}"},
        {"{\"op\":\"keys\",\"model\":\"m\",\"tokens\":[4294967296]}",
         "{\"id\":null,\"ok\":false,\"error\":\"tokens: bad token (a leading "
         "zero, or over 4294967295)\"}"},
        {"{\"op\":\"keys\",\"model\":\"m\",\"tokens\":[1.0]}",
         "{\"id\":null,\"ok\":false,\"error\":\"tokens: expected a "
         "non-negative integer\"}"},
        {"{\"op\":\"keys\",\"model\":\"m\",\"tokens\":[1 2]}",
         "{\"id\":null,\"ok\":false,\"error\":\"tokens: expected ',' or "
         "']'\"}"},
        {"{\"op\":\"keys\",\"model\":\"m\",\"tokens\":[1,]}",
         "{\"id\":null,\"ok\":false,\"error\":\"tokens: expected a "
         "non-negative integer\"}"},
        {"{\"op\":\"keys\",\"model\":\"m\",\"block_size\":2,\"tokens\":[ ]}",
         "{\"id\":null,\"ok\":true,\"data\":{\"keys\":[]}}"},
        {"{\"op\":\"clear\"}",
         "{\"id\":null,\"ok\":false,\"error\":\"clear needs \\\"pod\\\"\"}"},
        {"{\"op\":\"clear\",\"pod\":\"nobody\"}",
         "{\"id\":null,\"ok\":true,\"data\":{\"removed\":0}}"},
        {"{\"op\":\"lookup\"}", "{\"id\":null,\"ok\":false,\"error\":\"lookup "
                                "needs \\\"block_hashes\\\"\"}"},
        {"{\"op\":\"lookup\",\"block_hashes\":[\"0x10\",16,-1]}",
         "{\"id\":null,\"ok\":true,\"data\":{\"hashes\":[{\"block_hash\":"
         "\"16\",\"pods\":[]},{\"block_hash\":\"16\",\"pods\":[]},{\"block_"
         "hash\":\"18446744073709551615\",\"pods\":[]}]}}"},
        {"{\"op\":\"lookup\",\"block_hashes\":[\"12x\"]}",
         "{\"id\":null,\"ok\":false,\"error\":\"block_hashes: bad hash "
         "string\"}"},
        {"{\"op\":\"match\",\"keys\":[\"1\"],\"block_hashes\":[\"1\"]}",
         "{\"id\":null,\"ok\":false,\"error\":\"give keys or block_hashes, "
         "not both\"}"},
        {"{\"op\":\"pods\"}",
         "{\"id\":null,\"ok\":true,\"data\":{\"pods\":[]}}"},
        /* Batched matches that fail as a whole (test_batch has the rest). */
        {"{\"op\":\"match\",\"prompts\":[]}",
         "{\"id\":null,\"ok\":false,\"error\":\"prompts: an empty "
         "list\"}"},
        {"{\"op\":\"match\",\"prompts\":[[1],[1,-2]],\"id\":3}",
         "{\"id\":3,\"ok\":false,\"error\":\"prompts: prompt 1: "
         "expected a non-negative integer\"}"},
        {"{\"op\":\"match\",\"prompts\":[[1]],\"tokens\":[1]}",
         "{\"id\":null,\"ok\":false,\"error\":\"tokens: give tokens "
         "or prompts, not both\"}"},
        {"{\"op\":\"match\",\"tokens\":[1],\"prompts\":[[1]]}",
         "{\"id\":null,\"ok\":false,\"error\":\"prompts: give tokens "
         "or prompts, not both\"}"},
        {"{\"op\":\"match\",\"prompts\":[[1]],\"keys\":[\"1\"]}",
         "{\"id\":null,\"ok\":false,\"error\":\"give keys or "
         "prompts, not both\"}"},
        /* Ids are echoed byte for byte: one that is not UTF-8 would make
         * the reply invalid JSON (found by tests/fuzz/fuzz_request.c). */
        {"{\"id\":\"\xc3\xa9\xf0\x9f\x98\x80\",\"op\":\"ping\"}",
         "{\"id\":\"\xc3\xa9\xf0\x9f\x98\x80\",\"ok\":true,\"data\":{"
         "\"version\":\"" KVTAP_VERSION "\"}}"},
        {"{\"id\":\"\xe9x\",\"op\":\"ping\"}",
         "{\"id\":null,\"ok\":false,\"error\":\"id: string is not valid "
         "UTF-8\"}"},
        {"{\"id\":[\"\xc0\xaf\"],\"op\":\"ping\"}",
         "{\"id\":null,\"ok\":false,\"error\":\"id: string is not valid "
         "UTF-8\"}"},
        {"{\"id\":\"\xed\xa0\x80\",\"op\":\"ping\"}",
         "{\"id\":null,\"ok\":false,\"error\":\"id: string is not valid "
         "UTF-8\"}"},
        {"{\"id\":\"\xf4\x90\x80\x80\",\"op\":\"ping\"}",
         "{\"id\":null,\"ok\":false,\"error\":\"id: string is not valid "
         "UTF-8\"}"},
        {"{\"op\":\"nope\",\"id\":\"\xf0\x9f\x98\"}",
         "{\"id\":null,\"ok\":false,\"error\":\"id: string is not valid "
         "UTF-8\"}"},
        /* Nor one with escapes JSON does not have (skipping a value does
         * not check them, and the error path finds the id without it). */
        {"{\"id\":\"a\\p\",\"op\":\"ping\"}",
         "{\"id\":null,\"ok\":false,\"error\":\"id: bad escape in "
         "string\"}"},
        {"{\"id\":[\"\\u12\"],\"op\":\"ping\"}",
         "{\"id\":null,\"ok\":false,\"error\":\"id: bad \\\\u escape\"}"},
        {"{\"op\":1,\"id\":\"a\\p\"}",
         "{\"id\":null,\"ok\":false,\"error\":\"op: expected a string\"}"},
        {"{\"op\":1,\"id\":{\"k\":\"\\u00e9\\n\\\"\"}}",
         "{\"id\":{\"k\":\"\\u00e9\\n\\\"\"},\"ok\":false,\"error\":"
         "\"op: expected a string\"}"},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_STR(ask(p, cases[i].req), cases[i].want, cases[i].req);
}

/* The first key of tokens [v] when v ends the line (byte loop) and when
 * more follows (8-byte SWAR path) must both be blockkey's own. */
static void
test_token_digits(struct kvproto *p)
{
    static const uint32_t vals[] = {
        0,       7,        10,        99,         100,       12345,
        999999,  1000000,  9999999,   10000000,   12345678,  99999999,
        1 << 30, 31999999, 123456789, 4294967295, 4294967294};
    struct blockkey_cfg cfg = {BLOCKKEY_AIBRIX, 0, 0};
    char req[256], want[64], name[96];

    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        uint64_t key = blockkey_next(&cfg, NULL, &vals[i], 1);
        /* Alone and last (the byte loop), followed by more (8-byte
         * loads), and between blanks. */
        static const char *const pre[] = {"", "", " "};
        static const char *const post[] = {"", ",0,0,0,0,0,0,0,0", " ,1"};
        snprintf(want, sizeof want, "\"keys\":[\"%" PRIu64 "\"", key);
        for (size_t f = 0; f < 3; f++) {
            const char *got;
            snprintf(req, sizeof req,
                     "{\"op\":\"keys\",\"model\":\"m\",\"block_size\":1,"
                     "\"tokens\":[%s%" PRIu32 "%s]}",
                     pre[f], vals[i], post[f]);
            got = ask(p, req);
            snprintf(name, sizeof name, "token %" PRIu32 " form %zu", vals[i],
                     f);
            if (!CHECK(strstr(got, want) != NULL, name))
                printf("#   got  %s\n#   want %s\n", got, want);
        }
    }
}

/* Applies one NDJSON event line to p's index. */
static int
feed(struct kvproto *p, const char *line)
{
    struct arena a = {0};
    struct kv_env env;
    struct kv_event ev;
    enum index_reject why;
    char err[128];
    int rc = -1;

    if (ndjson_parse_line(line, strlen(line), &a, &env, &ev, err, sizeof err) ==
        NDJSON_EVENT)
        rc = index_apply(p->ix, &env, &ev, &why);
    arena_free(&a);
    return rc;
}

/* A batched match answers each prompt as a single match would, in order;
 * too many prompts or an unknown model fail the whole request (the other
 * errors are in test_replies' table).  Run once test_health has stored block
 * [1,2] of pod a in (m, l). */
static void
test_batch(struct kvproto *p)
{
    struct buf want = {0}, req = {0};
    static const char ok[] = "{\"id\":null,\"ok\":true,\"data\":";
    const char *one[] = {"[1,2,3]", "[9,9]", "[]", "[1,2]"};

    buf_puts(&want, "{\"id\":7,\"ok\":true,\"data\":{\"results\":[");
    for (size_t i = 0; i < 4; i++) {
        char single[128];
        const char *got;
        snprintf(single, sizeof single,
                 "{\"op\":\"match\",\"lora_name\":\"l\",\"tokens\":%s}",
                 one[i]);
        got = ask(p, single);
        CHECK(strncmp(got, ok, sizeof ok - 1) == 0, "single match ok");
        if (i > 0)
            buf_putc(&want, ',');
        /* The data object, without the reply's closing brace. */
        buf_put(&want, got + sizeof ok - 1, strlen(got) - sizeof ok);
    }
    buf_puts(&want, "]}}");
    buf_putc(&want, '\0');
    CHECK(strstr(want.p, "\"depth\":1") != NULL, "a prompt with a hit");
    CHECK_STR(ask(p, "{\"op\":\"match\",\"id\":7,\"lora_name\":\"l\","
                     "\"prompts\":[[1,2,3],[9,9],[],[1,2]]}"),
              want.p, "batched match = the single matches, in order");
    CHECK_STR(ask(p, "{\"op\":\"match\",\"model\":\"x\",\"prompts\":[[1]]}"),
              "{\"id\":null,\"ok\":false,\"error\":\"unknown model "
              "\\\"x\\\"; known models: \\\"m\\\"\"}",
              "a namespace error fails the batch as it fails a match");
    buf_puts(&req, "{\"op\":\"match\",\"lora_name\":\"l\",\"prompts\":[");
    for (int i = 0; i <= KVPROTO_MAX_PROMPTS; i++)
        buf_puts(&req, i > 0 ? ",[1]" : "[1]");
    buf_puts(&req, "]}");
    buf_putc(&req, '\0');
    CHECK_STR(ask(p, req.p),
              "{\"id\":null,\"ok\":false,\"error\":\"prompts: more than "
              "1024 prompts\"}",
              "too many prompts");
    req.len -= 7; /* ",[1]]}" and the NUL: exactly KVPROTO_MAX_PROMPTS */
    buf_puts(&req, "]}");
    buf_putc(&req, '\0');
    CHECK(strncmp(ask(p, req.p), ok, sizeof ok - 1) == 0,
          "the most prompts allowed");
    buf_free(&want);
    buf_free(&req);
}

/* Issue 8, §4: unknown namespaces, the lookup filter, pods' ages and the
 * renamed counter, on an index that starts empty. */
static void
test_health(struct kvproto *p)
{
    static const char hit[] =
        "{\"id\":null,\"ok\":true,\"data\":{\"hashes\":[{\"block_hash\":\"5\","
        "\"pods\":[{\"pod\":\"a\",\"dp_rank\":null,\"key\":"
        "\"8838177419264114116\",\"model\":\"m\",\"lora_name\":\"l\","
        "\"media\":[\"GPU\"]}]}]}}";
    const char *got;

    CHECK_STR(
        ask(p, "{\"op\":\"match\",\"tokens\":[1,2]}"),
        "{\"id\":null,\"ok\":false,\"error\":\"unknown model \\\"m\\\"; the "
        "index has seen no model yet\"}",
        "match on an empty index: an error, not an empty answer");
    CHECK_STR(
        ask(p, "{\"op\":\"lookup\",\"model\":\"x\",\"block_"
               "hashes\":[\"1\"]}"),
        "{\"id\":null,\"ok\":false,\"error\":\"unknown model \\\"x\\\"; the "
        "index has seen no model yet\"}",
        "lookup naming an unknown model");
    index_set_clock(p->ix, 10.0);
    CHECK(feed(p, "{\"pod\":\"a\",\"type\":\"BlockStored\",\"block_hashes\":["
                  "\"5\"],\"parent_block_hash\":null,\"token_ids\":[1,2],"
                  "\"block_size\":2,\"lora_name\":\"l\"}") == 0,
          "store into (m, l)");
    CHECK_STR(ask(p, "{\"op\":\"lookup\",\"block_hashes\":[\"5\"]}"), hit,
              "lookup without a namespace: every namespace");
    CHECK_STR(ask(p, "{\"op\":\"lookup\",\"lora_name\":\"l\",\"block_"
                     "hashes\":[\"5\"]}"),
              hit, "lookup in the namespace that holds it");
    CHECK_STR(ask(p, "{\"op\":\"lookup\",\"model\":\"m\",\"block_hashes\":["
                     "\"5\"]}"),
              "{\"id\":null,\"ok\":false,\"error\":\"model \\\"m\\\" has no "
              "blocks without a LoRA; its LoRAs: \\\"l\\\"\"}",
              "lookup in the base model that holds nothing");
    p->now = 12.25;
    CHECK_STR(ask(p, "{\"op\":\"pods\",\"ages\":true}"),
              "{\"id\":null,\"ok\":true,\"data\":{\"pods\":[{\"pod\":\"a\","
              "\"dp_rank\":null,\"blocks\":1,\"last_seq\":null,\"last_ts\":"
              "null,\"degraded\":false,\"orphans\":0,\"misaligned\":0,"
              "\"last_event_age_s\":2.25}]}}",
              "pods with ages: seconds since the pod's last event");
    CHECK(strstr(ask(p, "{\"op\":\"pods\"}"), "last_event_age_s") == NULL,
          "pods without ages as before");
    CHECK_STR(ask(p, "{\"op\":\"pods\",\"ages\":1}"),
              "{\"id\":null,\"ok\":false,\"error\":\"ages: expected true or "
              "false\"}",
              "ages is a boolean");
    /* Names quoted in errors are not checked by the scanner: bytes that
     * are not UTF-8 become U+FFFD (found by fuzz_request.c). */
    CHECK_STR(ask(p, "{\"\xf6\xf6\":-}"),
              "{\"id\":null,\"ok\":false,\"error\":\"\xef\xbf\xbd\xef\xbf\xbd: "
              "bad number\"}",
              "a member name that is not UTF-8, in an error");
    CHECK_STR(ask(p, "{\"op\":\"match\",\"model\":\"\xc3\xa9\xff\","
                     "\"tokens\":[1]}"),
              "{\"id\":null,\"ok\":false,\"error\":\"unknown model "
              "\\\"\xc3\xa9\xef\xbf\xbd\\\"; known models: \\\"m\\\"\"}",
              "a model name that is not UTF-8, in an error");
    test_batch(p);
    got = ask(p, "{\"op\":\"stats\"}");
    CHECK(strstr(got, ",\"max_blocks_dropped\":0") != NULL &&
              strstr(got, "evictions") == NULL,
          "stats: max_blocks_dropped, and no evictions");
}

/* A protocol on a new, empty index built with o (borrowed for p's life). */
static int
proto_open(struct kvproto *p, const struct index_opts *o)
{
    char err[128];
    struct kv_index *ix = index_new(o, err, sizeof err);

    if (!CHECK(ix != NULL, "index_new"))
        return -1;
    kvproto_init(p, ix, o, NULL, NULL);
    return 0;
}

static void
proto_close(struct kvproto *p)
{
    struct kv_index *ix = p->ix;

    kvproto_free(p);
    index_free(ix);
}

/*
 * Every member of a match's elements byte for byte, on an index of its
 * own: a pod name that needs escapes, a null and a numeric dp_rank, two
 * media, a degraded pod (put_match writes them without buf_puts).
 */
static void
test_match_members(void)
{
    static const struct index_opts o = {BLOCKKEY_AIBRIX, 0, "", "m", 0};
    struct kvproto p;

    if (proto_open(&p, &o) < 0)
        return;
    CHECK(feed(&p, "{\"pod\":\"q\\\"\\u0001\xc3\xa9/\",\"type\":"
                   "\"BlockStored\",\"block_hashes\":[\"1\",\"2\"],"
                   "\"parent_block_hash\":null,\"token_ids\":[1,2,3,4],"
                   "\"block_size\":2,\"medium\":\"GPU\"}") == 0 &&
              feed(&p, "{\"pod\":\"b\",\"dp_rank\":3,\"type\":"
                       "\"BlockStored\",\"block_hashes\":[\"7\"],"
                       "\"parent_block_hash\":null,\"token_ids\":[1,2],"
                       "\"block_size\":2,\"medium\":\"GPU\"}") == 0 &&
              feed(&p, "{\"pod\":\"b\",\"dp_rank\":3,\"type\":"
                       "\"BlockStored\",\"block_hashes\":[\"7\"],"
                       "\"parent_block_hash\":null,\"token_ids\":[1,2],"
                       "\"block_size\":2,\"medium\":\"CPU\"}") == 0 &&
              feed(&p, "{\"pod\":\"b\",\"dp_rank\":3,\"seq\":9,\"type\":"
                       "\"gap\",\"from\":5,\"to\":9}") == 0,
          "two pods stored, b degraded");
    CHECK_STR(ask(&p, "{\"id\":1,\"op\":\"match\",\"tokens\":[1,2,3,4,5]}"),
              "{\"id\":1,\"ok\":true,\"data\":{\"block_size\":2,\"blocks\":2,"
              "\"matches\":[{\"pod\":\"q\\\"\\u0001\xc3\xa9/\",\"dp_rank\":"
              "null,\"depth\":2,\"tokens\":4,\"percent\":100,\"media\":"
              "[\"GPU\"],\"degraded\":false},{\"pod\":\"b\",\"dp_rank\":3,"
              "\"depth\":1,\"tokens\":2,\"percent\":50,\"media\":[\"GPU\","
              "\"CPU\"],\"degraded\":true}]}}",
              "match members, escapes, null rank, media, degraded");
    proto_close(&p);
}

/*
 * The expected element of pod k in test_match_cache's index: depth k % 3
 * + 1 of blocks, on the CPU when k % 5 == 0, degraded when k % 7 == 0,
 * dp_rank k when k is even.
 */
static size_t
cache_element(char *o, size_t room, unsigned k, unsigned blocks)
{
    unsigned d = k % 3 + 1 < blocks ? k % 3 + 1 : blocks;
    char rank[16] = "null";

    if (k % 2 == 0)
        snprintf(rank, sizeof rank, "%u", k);
    return (size_t)snprintf(
        o, room,
        "{\"pod\":\"p%02u\",\"dp_rank\":%s,\"depth\":%u,\"tokens\":%u,"
        "\"percent\":%u,\"media\":[\"%s\"],\"degraded\":%s}",
        k, rank, d, 2 * d, d * 100 / blocks, k % 5 ? "GPU" : "CPU",
        k % 7 ? "false" : "true");
}

/*
 * A match's elements are copied from pieces made once (each pod's name and
 * rank, each run of equal depth, media and degraded): 70 pods, past the
 * first 64 the pieces have room for, at three depths, the media and the
 * degraded flag changing within one depth; asked twice and then for fewer
 * blocks, each reply against one written here member by member.
 */
static void
test_match_cache(void)
{
    static const struct index_opts o = {BLOCKKEY_AIBRIX, 0, "", "m", 0};
    static const char *const asks[] = {"[1,2,3,4,5,6]", "[1,2,3,4,5,6]",
                                       "[1,2,3,4]"};
    struct kvproto p;
    char line[512], rank[32], *want = malloc(70 * 200 + 200);
    int fed = 0;

    if (want == NULL || proto_open(&p, &o) < 0) {
        free(want);
        return;
    }
    for (unsigned k = 0; k < 70; k++) {
        const char *toks[] = {"[1,2]", "[1,2,3,4]", "[1,2,3,4,5,6]"};
        const char *hashes[] = {"[\"1\"]", "[\"1\",\"2\"]",
                                "[\"1\",\"2\",\"3\"]"};

        snprintf(rank, sizeof rank, k % 2 ? "null" : "%u", k);
        snprintf(line, sizeof line,
                 "{\"pod\":\"p%02u\",\"dp_rank\":%s,\"type\":"
                 "\"BlockStored\",\"block_hashes\":%s,\"parent_block_hash\":"
                 "null,\"token_ids\":%s,\"block_size\":2,\"medium\":\"%s\"}",
                 k, rank, hashes[k % 3], toks[k % 3], k % 5 ? "GPU" : "CPU");
        fed += feed(&p, line) != 0;
        if (k % 7 == 0) {
            snprintf(line, sizeof line,
                     "{\"pod\":\"p%02u\",\"dp_rank\":%s,\"seq\":9,"
                     "\"type\":\"gap\",\"from\":5,\"to\":9}",
                     k, rank);
            fed += feed(&p, line) != 0;
        }
    }
    CHECK(fed == 0, "70 pods stored, every seventh degraded");
    for (size_t a = 0; a < sizeof asks / sizeof asks[0]; a++) {
        unsigned blocks = a < 2 ? 3 : 2;
        size_t n = (size_t)sprintf(want,
                                   "{\"id\":%zu,\"ok\":true,\"data\":{"
                                   "\"block_size\":2,\"blocks\":%u,"
                                   "\"matches\":[",
                                   a, blocks);
        int first = 1;

        /* Deepest first, then fewest blocks, then name order. */
        for (unsigned d = blocks; d >= 1; d--) {
            for (unsigned k3 = 0; k3 < 70 * 3; k3++) {
                unsigned k = k3 % 70, held = k3 / 70 + 1;
                unsigned kd = k % 3 + 1 < blocks ? k % 3 + 1 : blocks;

                if (kd != d || k % 3 + 1 != held)
                    continue;
                if (!first)
                    want[n++] = ',';
                first = 0;
                n += cache_element(want + n, 200, k, blocks);
            }
        }
        sprintf(want + n, "]}}");
        snprintf(line, sizeof line,
                 "{\"id\":%zu,\"op\":\"match\",\"tokens\":%s}", a, asks[a]);
        snprintf(rank, sizeof rank, "match of 70 pods, ask %zu", a + 1);
        CHECK_STR(ask(&p, line), want, rank);
    }
    /* A kept piece that ran out of memory fails that request only: the
     * next one makes the pieces afresh (the last want is ask 3's). */
    p.tail.oom = 1;
    CHECK_STR(ask(&p, "{\"id\":2,\"op\":\"match\",\"tokens\":[1,2,3,4]}"),
              "{\"id\":2,\"ok\":false,\"error\":\"out of memory\"}",
              "a match whose reply pieces ran out of memory: an error");
    CHECK_STR(ask(&p, "{\"id\":2,\"op\":\"match\",\"tokens\":[1,2,3,4]}"), want,
              "the match after it: answered in full");
    proto_close(&p);
    free(want);
}

int
main(void)
{
    static const struct index_opts o = {BLOCKKEY_AIBRIX, 0, "", "m", 0};
    struct kvproto p;

    if (proto_open(&p, &o) < 0)
        return unit_done();
    test_replies(&p);
    test_token_digits(&p);
    test_health(&p);
    test_match_members();
    test_match_cache();
    proto_close(&p);
    return unit_done();
}

/*
 * test_ndjson_keys.c - the reader's key guess (ndjson_read.c key_guess):
 * a line whose keys come in the writer's order takes the guessed keys,
 * and must read exactly as the same line does through the general path.
 * The general path is forced by a blank before every separating comma
 * (the guess only takes ,"NAME": right after a value), and both readings
 * are compared by what they write back, their return code and message.
 */
#include <stdlib.h>

#include "ndjson_read.h"
#include "ndjson_write.h"
#include "unit.h"

/* line with a blank before each comma that separates top-level members
 * (the test lines have no comma inside a string). */
static char *
spaced(const char *line)
{
    size_t n = strlen(line), k = 0;
    char *s = malloc(2 * n + 1);
    int depth = 0, in_str = 0;

    if (s == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        char c = line[i];

        if (in_str) {
            in_str = !(c == '"' && line[i - 1] != '\\');
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            depth--;
        } else if (c == ',' && depth == 1) {
            s[k++] = ' ';
        }
        s[k++] = c;
    }
    s[k] = '\0';
    return s;
}

/* One reading of line: "rc|message|the line written back". */
static void
reading(const char *line, struct buf *b)
{
    struct arena a = {0};
    struct kv_env env;
    struct kv_event ev;
    char err[200];
    int rc =
        ndjson_parse_line(line, strlen(line), &a, &env, &ev, err, sizeof err);
    char head[240];

    buf_clear(b);
    snprintf(head, sizeof head, "%d|%s|", rc, err);
    buf_put(b, head, strlen(head));
    if (rc == NDJSON_EVENT)
        ndjson_write_event(b, &env, &ev);
    arena_free(&a);
}

static void
same_reading(const char *line, const char *what)
{
    struct buf fast = {0}, slow = {0};
    char *sp = spaced(line);

    reading(line, &fast);
    reading(sp ? sp : "", &slow);
    if (!CHECK(sp && fast.len == slow.len &&
                   memcmp(fast.p, slow.p, fast.len) == 0,
               what))
        printf("#   guessed: %.*s#   general: %.*s\n", (int)fast.len, fast.p,
               (int)slow.len, slow.p);
    free(sp);
    buf_free(&fast);
    buf_free(&slow);
}

static const char *const lines[][2] = {
    {"{\"pod\":\"p\",\"dp_rank\":0,\"seq\":1,\"i\":0,\"ts\":1.5,\"type\":"
     "\"BlockStored\",\"block_hashes\":[\"1\",\"2\"],\"parent_block_hash\":"
     "null,\"token_ids\":[1,2,3,4],\"block_size\":2,\"lora_id\":null,"
     "\"medium\":\"GPU\",\"lora_name\":null,\"extra_keys\":null,"
     "\"group_idx\":0,\"kv_cache_spec_kind\":\"full_attention\"}",
     "a stored event in the writer's order"},
    {"{\"pod\":\"p\",\"model\":\"m\",\"dp_rank\":1,\"stream\":\"s\",\"seq\":3,"
     "\"i\":2,\"ts\":2,\"type\":\"BlockRemoved\",\"block_hashes\":[\"9\"],"
     "\"medium\":\"GPU\"}",
     "a removal with model and stream, fields skipped in the order"},
    {"{\"pod\":\"p\",\"seq\":1,\"type\":\"gap\",\"from\":5,\"to\":9}",
     "a gap record: its keys are not in the order"},
    {"{\"pod\":\"p\",\"seq\":1,\"i\":0,\"tsx\":7,\"ts\":1,\"type\":"
     "\"AllBlocksCleared\"}",
     "a key that starts like the guess is not the guess"},
    {"{\"pod\":\"p\",\"seq\":1,\"seq\":2,\"type\":\"AllBlocksCleared\"}",
     "a repeated key"},
    {"{\"type\":\"AllBlocksCleared\",\"pod\":\"p\",\"seq\":4}",
     "keys against the order"},
    {"{\"pod\":\"p\",\"t\\u0073\":1.5,\"type\":\"AllBlocksCleared\"}",
     "an escaped key"},
    {"{\"pod\":\"p\",\"type\":\"BlockStored\",\"block_hashes\":[\"1\"],"
     "\"token_ids\":[1],\"block_size\":\"x\"}",
     "an error after guessed keys has the same message"},
    {"{\"pod\":\"p\",\"type\":\"BlockRemoved\",\"block_hashes\":[\"1\"],"
     "\"medium\":\"GPU\",\"locality\":\"L\",\"zz\":[1,{\"a\":2}],"
     "\"session_id\":\"s\"}",
     "an unknown key between known ones"},
    {"{\"pod\":\"p\",\"type\":\"BlockRemoved\",\"block_hashes\":[\"1\"],"
     "\"medium\"",
     "a line cut inside a guessed key"},
};

/*
 * Every key the guess knows, with each of its bytes changed in turn, right
 * after "pod" (where every later key is a candidate): none may be taken
 * for the key it nearly is.  The guess compares names in overlapping
 * words, so a byte that no word covers would slip through.
 */
static void
near_misses(void)
{
    static const char *const envelope[] = {
        "pod",    "model",         "dp_rank",
        "stream", "seq",           "i",
        "ts",     "type",          "from",
        "to",     "block_digests", "parent_block_digest",
    };
    const char *names[sizeof envelope / sizeof envelope[0] + KV_F_COUNT];
    size_t n_names = 0, bad = 0;
    char line[256], first[256] = "";

    for (size_t k = 0; k < sizeof envelope / sizeof envelope[0]; k++)
        names[n_names++] = envelope[k];
    for (int f = 0; f < KV_F_COUNT; f++)
        names[n_names++] = kv_fields[f].name;
    for (size_t k = 0; k < n_names; k++) {
        size_t n = strlen(names[k]);

        for (size_t at = 0; at < n; at++) {
            char key[64];
            struct buf fast = {0}, slow = {0};

            snprintf(key, sizeof key, "%s", names[k]);
            key[at] = key[at] == 'Z' ? 'Y' : 'Z';
            snprintf(line, sizeof line,
                     "{\"pod\":\"p\",\"%s\":1,\"type\":\"AllBlocksCleared\"}",
                     key);
            char *sp = spaced(line);
            reading(line, &fast);
            reading(sp ? sp : "", &slow);
            if ((sp == NULL || fast.len != slow.len ||
                 memcmp(fast.p, slow.p, fast.len) != 0) &&
                bad++ == 0)
                snprintf(first, sizeof first, "%s", line);
            free(sp);
            buf_free(&fast);
            buf_free(&slow);
        }
    }
    char what[320];
    snprintf(what, sizeof what,
             "keys one byte away from a known one read as the general path "
             "reads them (first apart: %s)",
             first);
    CHECK_U64(bad, 0, what);
}

int
main(void)
{
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        same_reading(lines[i][0], lines[i][1]);
    near_misses();
    return unit_done();
}

/*
 * test_snapshot.c - the snapshot format (lib/snapshot.c,
 * docs/kvindex-snapshot.md#lines-in-this-order): the exact lines of a
 * dump, a file written and loaded back answering the same, and the
 * reasons a file is refused (docs/kvindex-snapshot.md#rules-for-readers).
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "buf.h"
#include "index.h"
#include "snapshot.h"
#include "unit.h"

static const struct index_opts opts = {BLOCKKEY_AIBRIX, 7, "", "m", 0};

/* The lines before the end line (which test_dump_lines checks apart). */
static const char want_body[] =
    "{\"type\":\"kvindex_snapshot\",\"version\":2,\"hash\":\"aibrix\","
    "\"seed\":\"7\",\"hash_seed\":\"\",\"js_seq\":1234}\n"
    "{\"type\":\"namespace\",\"model\":\"m\",\"lora_name\":\"\","
    "\"block_size\":4}\n"
    "{\"type\":\"pod\",\"pod\":\"pod-a\",\"dp_rank\":null,\"blocks\":1,"
    "\"last_seq\":41,\"last_ts\":1700000000.25,\"degraded\":true,"
    "\"orphans\":2,\"misaligned\":3,"
    "\"stream\":\"0123456789abcdef0123456789abcdef\","
    "\"seq_ts\":1700000000.25,\"seq_lines\":2}\n"
    "{\"type\":\"pod\",\"pod\":\"pod \\\"b\\\"\",\"dp_rank\":1,\"blocks\":1,"
    "\"last_seq\":null,\"last_ts\":null,\"degraded\":false,\"orphans\":0,"
    "\"misaligned\":0,\"stream\":null,\"seq_ts\":null,\"seq_lines\":0}\n"
    "{\"type\":\"entry\",\"pod\":\"pod-a\",\"dp_rank\":null,\"model\":\"m\","
    "\"lora_name\":\"\",\"block_size\":4,\"block_hash\":\"100\","
    "\"key\":\"5\",\"media\":[\"GPU\"]}\n"
    "{\"type\":\"entry\",\"pod\":\"pod \\\"b\\\"\",\"dp_rank\":1,"
    "\"model\":\"m\",\"lora_name\":\"\",\"block_size\":4,"
    "\"block_hash\":\"18446744073709551615\",\"key\":\"6\","
    "\"media\":[\"GPU\",\"CPU\"]}\n";

/* The whole dump: want_body and its end line, computed here in one go
 * (the dump hashes line by line).  Static storage. */
static const char *
want_dump(void)
{
    static char out[sizeof want_body + 100];

    snprintf(out, sizeof out,
             "%s{\"type\":\"end\",\"entries\":2,\"xxh64\":\"%016llx\"}\n",
             want_body,
             (unsigned long long)XXH64(want_body, sizeof want_body - 1, 0));
    return out;
}

static struct kv_index *
build(void)
{
    char err[128];
    struct kv_index *ix = index_new(&opts, err, sizeof err);
    struct index_pod_info a = {.pod = "pod-a",
                               .has_seq = 1,
                               .last_seq = 41,
                               .has_ts = 1,
                               .last_ts = 1700000000.25,
                               .degraded = 1,
                               .orphans = 2,
                               .misaligned = 3,
                               .stream = "0123456789abcdef0123456789abcdef",
                               .has_seq_ts = 1,
                               .seq_ts = 1700000000.25,
                               .seq_lines = 2};
    struct index_pod_info b = {.pod = "pod \"b\"", .has_rank = 1, .rank = 1};
    struct index_dump_entry ea = {"pod-a", 0, 0, "m", "", 4, 100, 5, 1};
    struct index_dump_entry eb = {"pod \"b\"", 1,          1, "m", "",
                                  4,           UINT64_MAX, 6, 0};

    if (ix == NULL)
        return NULL;
    index_restore_js_seq(ix, 1234);
    eb.media = 1u | 1u << index_medium_intern(ix, "CPU", 3);
    if (index_restore_ns(ix, (struct kv_str){"m", 1}, (struct kv_str){"", 0}, 4,
                         err, sizeof err) < 0 ||
        index_restore_pod(ix, &a, err, sizeof err) < 0 ||
        index_restore_pod(ix, &b, err, sizeof err) < 0 ||
        index_restore_entry(ix, &ea, err, sizeof err) < 0 ||
        index_restore_entry(ix, &eb, err, sizeof err) < 0) {
        printf("# restore: %s\n", err);
        index_free(ix);
        return NULL;
    }
    return ix;
}

/* The dump of ix as text (static storage). */
static const char *
dump(const struct kv_index *ix)
{
    static struct buf b;

    buf_clear(&b);
    if (snapshot_dump(ix, &opts, NULL, 0, &b, NULL, NULL) < 0 || b.oom)
        return "(dump failed)";
    buf_putc(&b, '\0');
    return b.p;
}

/* The dump op's answer for pod "b": array elements, whose end line
 * hashes each element with a '\n' (the lines the client prints). */
static const char *
want_one(void)
{
    static const char *const el[] = {
        "{\"type\":\"kvindex_snapshot\",\"version\":2,\"hash\":\"aibrix\","
        "\"seed\":\"7\",\"hash_seed\":\"\",\"js_seq\":1234}",
        "{\"type\":\"namespace\",\"model\":\"m\",\"lora_name\":\"\","
        "\"block_size\":4}",
        "{\"type\":\"pod\",\"pod\":\"pod \\\"b\\\"\",\"dp_rank\":1,"
        "\"blocks\":1,\"last_seq\":null,\"last_ts\":null,\"degraded\":"
        "false,\"orphans\":0,\"misaligned\":0,\"stream\":null,"
        "\"seq_ts\":null,\"seq_lines\":0}",
        "{\"type\":\"entry\",\"pod\":\"pod \\\"b\\\"\",\"dp_rank\":1,"
        "\"model\":\"m\",\"lora_name\":\"\",\"block_size\":4,"
        "\"block_hash\":\"18446744073709551615\",\"key\":\"6\","
        "\"media\":[\"GPU\",\"CPU\"]}"};
    static char lines[1024], out[1200];
    size_t n = 0;

    for (size_t i = 0; i < 4; i++)
        n += (size_t)snprintf(lines + n, sizeof lines - n, "%s\n", el[i]);
    snprintf(out, sizeof out,
             "%s,%s,%s,%s,{\"type\":\"end\",\"entries\":1,\"xxh64\":"
             "\"%016llx\"}",
             el[0], el[1], el[2], el[3],
             (unsigned long long)XXH64(lines, n, 0));
    return out;
}

static void
test_dump_lines(void)
{
    struct kv_index *ix = build();
    struct index_pod_ref ref = {{"pod \"b\"", 7}, 0, 0};
    struct buf b = {0};

    if (!CHECK(ix != NULL, "an index to dump"))
        return;
    CHECK_STR(dump(ix), want_dump(), "the dump's lines, pods written alike");
    CHECK(snapshot_dump(ix, &opts, &ref, 1, &b, NULL, NULL) == 0, "dump one");
    buf_putc(&b, '\0');
    CHECK_STR(b.p, want_one(),
              "one pod's dump as array elements (the dump op)");
    buf_free(&b);
    index_free(ix);
}

static char dir[1024];

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    if (f != NULL) {
        fputs(text, f);
        fclose(f);
    }
}

static void
test_write_and_load(void)
{
    struct kv_index *ix = build(), *back;
    char path[PATH_MAX], tmp[PATH_MAX + 32], err[256] = "";
    struct stat st;

    if (!CHECK(ix != NULL, "an index to write"))
        return;
    snprintf(path, sizeof path, "%s/snap.ndjson", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    CHECK(snapshot_write(ix, &opts, path, err, sizeof err) == 0 && !err[0],
          "written");
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "mode 0600");
    CHECK(access(tmp, F_OK) < 0, "no temporary file left");
    back = index_new(&opts, err, sizeof err);
    CHECK(snapshot_load(back, &opts, path, err, sizeof err) == 1, "loaded");
    CHECK_STR(dump(back), want_dump(), "loaded back, it dumps the same lines");
    index_free(back);
    index_free(ix);
}

static void
test_refused(void)
{
    static const struct {
        const char *text, *why;
    } cases[] = {
        {"", "empty file (not a kvindex snapshot)"},
        {"{\"type\":\"namespace\"}\n",
         "line 1: not a kvindex snapshot (no header line)"},
        {"{\"type\":\"kvindex_snapshot\",\"version\":3}\n",
         "line 1: snapshot version 3 is not supported"},
        {"{\"type\":\"kvindex_snapshot\",\"version\":2,\"hash\":\"aibrix\","
         "\"seed\":\"7\"}\n{\"type\":\"namespace\",\"model\":\"m\","
         "\"lora_name\":\"\",\"block_size\":4}\n",
         "no end line: the file is cut short (0 entries read)"},
        {"{\"type\":\"kvindex_snapshot\",\"version\":2,\"hash\":\"aibrix\","
         "\"seed\":\"7\"}\n{\"type\":\"pod\",\"pod\":\"a\\u0000b\"}\n",
         "line 2: a pod name that is not valid UTF-8 or holds U+0000"},
        {"{\"type\":\"kvindex_snapshot\",\"version\":2,\"hash\":\"aibrix\","
         "\"seed\":\"7\"}\n{\"type\":\"entry\",\"pod\":\"a\\u0000b\","
         "\"model\":\"m\",\"lora_name\":\"\",\"block_size\":4,"
         "\"block_hash\":\"1\",\"key\":\"2\",\"media\":[\"GPU\"]}\n",
         "line 2: a pod name that is not valid UTF-8 or holds U+0000"},
        {"{\"type\":\"kvindex_snapshot\",\"version\":2,\"hash\":\"aibrix\","
         "\"seed\":\"7\"}\n{\"type\":\"namespace\",\"model\":\"m\xff\","
         "\"lora_name\":\"\",\"block_size\":4}\n",
         "line 2: a model or LoRA name that is not valid UTF-8 or holds "
         "U+0000"},
        {"{\"type\":\"kvindex_snapshot\",\"version\":2,\"hash\":\"aibrix\","
         "\"seed\":\"7\"}\n{\"type\":\"namespace\",\"model\":\"m\","
         "\"lora_name\":\"x\\u0000\",\"block_size\":4}\n",
         "line 2: a model or LoRA name that is not valid UTF-8 or holds "
         "U+0000"},
        {"{\"type\":\"kvindex_snapshot\",\"version\":2,\"hash\":\"aibrix\","
         "\"seed\":\"7\"}\n{\"type\":\"end\",\"entries\":0}\n",
         "line 2: the end line lacks its entries or xxh64"},
        {"{\"type\":\"kvindex_snapshot\",\"version\":1,\"hash\":\"aibrix\","
         "\"seed\":\"8\"}\n",
         "line 1: written with another --hash/--seed/--hash-seed (aibrix); "
         "its keys would not match"},
        {"{\"type\":\"kvindex_snapshot\",\"version\":1,\"hash\":\"aibrix\","
         "\"seed\":\"7\"}\n\n{\"type\":\"pod\",\"pod\":",
         "line 3: expected a string"},
    };
    char path[PATH_MAX], err[256];

    snprintf(path, sizeof path, "%s/bad.ndjson", dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct kv_index *ix = index_new(&opts, err, sizeof err);
        write_file(path, cases[i].text);
        err[0] = '\0';
        CHECK(snapshot_load(ix, &opts, path, err, sizeof err) == -1, "refused");
        CHECK_STR(err, cases[i].why, cases[i].why);
        index_free(ix);
    }
    snprintf(path, sizeof path, "%s/none.ndjson", dir);
    {
        struct kv_index *ix = index_new(&opts, err, sizeof err);
        CHECK(snapshot_load(ix, &opts, path, err, sizeof err) == 0,
              "a missing file loads nothing");
        index_free(ix);
    }
}

/* Loads text; returns snapshot_load's result, the reason in err. */
static int
load_text(const char *text, struct kv_index **ix, char *err, size_t errlen)
{
    char path[PATH_MAX];

    snprintf(path, sizeof path, "%s/t.ndjson", dir);
    write_file(path, text);
    err[0] = '\0';
    *ix = index_new(&opts, err, errlen);
    return snapshot_load(*ix, &opts, path, err, errlen);
}

/* A whole dump cut short, damaged or extended is refused, each saying so. */
static void
test_end_line(void)
{
    static char text[2048];
    const char *whole = want_dump();
    size_t body = sizeof want_body - 1;
    const char *last_entry = strstr(want_body, "{\"type\":\"entry\",\"pod\":"
                                               "\"pod \\\"b\\\"\"");
    const char *key = strstr(want_body, "\"key\":\"5\"");
    char err[256], want[256];
    struct kv_index *ix;

    CHECK(load_text(whole, &ix, err, sizeof err) == 1 && !err[0],
          "a whole dump loads, no warning");
    CHECK(index_js_seq(ix, 1234) == 1 && index_js_seq(ix, 1235) == 0,
          "lines at or below the header's js_seq are skipped, later ones "
          "not");
    index_free(ix);

    /* Cut at the line boundary before the end line. */
    snprintf(text, sizeof text, "%.*s", (int)body, whole);
    CHECK(load_text(text, &ix, err, sizeof err) == -1, "cut: refused");
    CHECK_STR(err, "no end line: the file is cut short (2 entries read)",
              "cut: says so");
    index_free(ix);

    /* An entry line gone, the end line kept. */
    snprintf(text, sizeof text, "%.*s%s", (int)(last_entry - want_body),
             want_body, whole + body);
    CHECK(load_text(text, &ix, err, sizeof err) == -1, "a lost line: refused");
    CHECK_STR(err, "line 6: the end line counts 2 entries, the file holds 1",
              "a lost line: the count says so");
    index_free(ix);

    /* One byte changed. */
    snprintf(text, sizeof text, "%s", whole);
    text[key - want_body + 7] = '9';
    snprintf(want, sizeof want,
             "line 7: checksum mismatch (xxh64 %.16s in the end line, "
             "%016llx of the bytes before it): the file is damaged",
             whole + body +
                 strlen("{\"type\":\"end\",\"entries\":2,"
                        "\"xxh64\":\""),
             (unsigned long long)XXH64(text, body, 0));
    CHECK(load_text(text, &ix, err, sizeof err) == -1, "damaged: refused");
    CHECK_STR(err, want, "damaged: the checksum says so");
    index_free(ix);

    snprintf(text, sizeof text, "%s\n", whole);
    CHECK(load_text(text, &ix, err, sizeof err) == -1, "more: refused");
    CHECK_STR(err, "line 8: a line after the end line", "more: says so");
    index_free(ix);
}

/* Version 1 (no end line, no stream position) still loads, with a warning;
 * its pods resume as if their last batch had been applied whole. */
static void
test_version_1(void)
{
    static const char v1[] =
        "{\"type\":\"kvindex_snapshot\",\"version\":1,\"hash\":\"aibrix\","
        "\"seed\":\"7\",\"hash_seed\":\"\"}\n"
        "{\"type\":\"pod\",\"pod\":\"p\",\"dp_rank\":0,\"blocks\":0,"
        "\"last_seq\":9,\"last_ts\":5,\"degraded\":false,\"orphans\":0,"
        "\"misaligned\":0}\n";
    struct index_pod_info pi;
    struct kv_index *ix;
    char err[256];

    CHECK(load_text(v1, &ix, err, sizeof err) == 1, "version 1 loads");
    CHECK_STR(err,
              "a version 1 snapshot: it has no end line, so whether it is "
              "whole cannot be checked",
              "with a warning");
    CHECK(index_pod_info(ix, 0, &pi) == 0 && pi.seq_lines == UINT64_MAX &&
              pi.stream == NULL && !pi.has_seq_ts,
          "its pod: every line of its last batch counts as applied");
    CHECK(strstr(dump(ix), "\"version\":2") != NULL &&
              strstr(dump(ix), "\"js_seq\"") == NULL,
          "it is written back as version 2, without a js_seq it never had");
    index_free(ix);
}

int
main(void)
{
    char tmpl[] = "/tmp/test_snapshot.XXXXXX";
    char cmd[sizeof dir + 16];

    if (!CHECK(mkdtemp(tmpl) != NULL && strlen(tmpl) < sizeof dir,
               "a scratch directory"))
        return unit_done();
    memcpy(dir, tmpl, strlen(tmpl) + 1);
    test_dump_lines();
    test_write_and_load();
    test_refused();
    test_end_line();
    test_version_1();
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", dir);
    return unit_done();
}

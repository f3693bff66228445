/*
 * test_snapshot.c - the snapshot format (lib/snapshot.c,
 * docs/kvindex-snapshot.md#lines-in-this-order): the exact lines of a
 * dump, a file written and loaded back answering the same, and the
 * reasons a file is refused (docs/kvindex-snapshot.md#rules-for-readers).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "index.h"
#include "snapshot.h"
#include "unit.h"

static const struct index_opts opts = {BLOCKKEY_AIBRIX, 7, "", "m", 0};

static const char want_dump[] =
    "{\"type\":\"kvindex_snapshot\",\"version\":1,\"hash\":\"aibrix\","
    "\"seed\":\"7\",\"hash_seed\":\"\"}\n"
    "{\"type\":\"namespace\",\"model\":\"m\",\"lora_name\":\"\","
    "\"block_size\":4}\n"
    "{\"type\":\"pod\",\"pod\":\"pod-a\",\"dp_rank\":null,\"blocks\":1,"
    "\"last_seq\":41,\"last_ts\":1700000000.25,\"degraded\":true,"
    "\"orphans\":2,\"misaligned\":3}\n"
    "{\"type\":\"pod\",\"pod\":\"pod \\\"b\\\"\",\"dp_rank\":1,\"blocks\":1,"
    "\"last_seq\":null,\"last_ts\":null,\"degraded\":false,\"orphans\":0,"
    "\"misaligned\":0}\n"
    "{\"type\":\"entry\",\"pod\":\"pod-a\",\"dp_rank\":null,\"model\":\"m\","
    "\"lora_name\":\"\",\"block_size\":4,\"block_hash\":\"100\","
    "\"key\":\"5\",\"media\":[\"GPU\"]}\n"
    "{\"type\":\"entry\",\"pod\":\"pod \\\"b\\\"\",\"dp_rank\":1,"
    "\"model\":\"m\",\"lora_name\":\"\",\"block_size\":4,"
    "\"block_hash\":\"18446744073709551615\",\"key\":\"6\","
    "\"media\":[\"GPU\",\"CPU\"]}\n";

static struct kv_index *
build(void)
{
    char err[128];
    struct kv_index *ix = index_new(&opts, err, sizeof err);
    struct index_pod_info a = {"pod-a",       0, 0, 0, 1, 41, 1,
                               1700000000.25, 1, 2, 3, 0, 0,  0};
    struct index_pod_info b = {"pod \"b\"", 1, 1, 0, 0, 0, 0,
                               0,           0, 0, 0, 0, 0, 0};
    struct index_dump_entry ea = {"pod-a", 0, 0, "m", "", 4, 100, 5, 1};
    struct index_dump_entry eb = {"pod \"b\"", 1,          1, "m", "",
                                  4,           UINT64_MAX, 6, 0};

    if (ix == NULL)
        return NULL;
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

static void
test_dump_lines(void)
{
    struct kv_index *ix = build();
    struct index_pod_ref ref = {{"pod \"b\"", 7}, 0, 0};
    struct buf b = {0};

    if (!CHECK(ix != NULL, "an index to dump"))
        return;
    CHECK_STR(dump(ix), want_dump, "the dump's lines, pods written alike");
    CHECK(snapshot_dump(ix, &opts, &ref, 1, &b, NULL, NULL) == 0, "dump one");
    buf_putc(&b, '\0');
    CHECK_STR(b.p,
              "{\"type\":\"kvindex_snapshot\",\"version\":1,\"hash\":"
              "\"aibrix\",\"seed\":\"7\",\"hash_seed\":\"\"},"
              "{\"type\":\"namespace\",\"model\":\"m\",\"lora_name\":\"\","
              "\"block_size\":4},"
              "{\"type\":\"pod\",\"pod\":\"pod \\\"b\\\"\",\"dp_rank\":1,"
              "\"blocks\":1,\"last_seq\":null,\"last_ts\":null,\"degraded\":"
              "false,\"orphans\":0,\"misaligned\":0},"
              "{\"type\":\"entry\",\"pod\":\"pod \\\"b\\\"\",\"dp_rank\":1,"
              "\"model\":\"m\",\"lora_name\":\"\",\"block_size\":4,"
              "\"block_hash\":\"18446744073709551615\",\"key\":\"6\","
              "\"media\":[\"GPU\",\"CPU\"]}",
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
    CHECK_STR(dump(back), want_dump, "loaded back, it dumps the same lines");
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
        {"{\"type\":\"kvindex_snapshot\",\"version\":2}\n",
         "line 1: snapshot version 2 is not supported"},
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
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", dir);
    return unit_done();
}

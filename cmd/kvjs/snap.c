/*
 * snap.c - snapshots in a JetStream key-value bucket
 * (docs/cluster.md#retention-and-snapshots).
 *
 * libnats 3.4 has no object store and a value must fit in one message, so
 * a snapshot is stored as chunks under NAME.gGEN.I and a manifest under
 * NAME, written last.  A reader follows the manifest, so it never mixes
 * two snapshots; the chunks of the previous generation are purged after
 * the new manifest is in place.
 */
#include "snap.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "buf.h"
#include "cli.h"

#define CHUNK (512u * 1024u)

struct manifest {
    uint64_t gen, chunks, bytes, xxh64;
    int has_js_seq;
    uint64_t js_seq;
};

static int
name_ok(const char *name)
{
    if (*name == '\0' || strlen(name) > 200)
        return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
            return 0;
    return 1;
}

/* Opens the bucket; creates it for put.  Returns 0 or -1 (logged). */
static int
bucket_open(struct js_conn *c, const struct js_opts *o, int create,
            kvStore **kv)
{
    natsStatus s = js_KeyValue(kv, c->js, o->bucket);
    char err[512];

    if (s != NATS_OK && create) {
        kvConfig cfg;

        kvConfig_Init(&cfg);
        cfg.Bucket = o->bucket;
        cfg.History = 1;
        cfg.Replicas = o->replicas;
        cfg.StorageType = js_FileStorage;
        s = js_CreateKeyValue(kv, c->js, &cfg);
    }
    if (s == NATS_OK)
        return 0;
    if (s == NATS_NOT_FOUND)
        snprintf(err, sizeof(err), "bucket %s not found", o->bucket);
    else
        conn_strerror(s, o->bucket, err, sizeof(err));
    log_error("%s", err);
    return -1;
}

/* Reads the manifest under name.  Returns 0, or -1 with err set. */
static int
manifest_get(kvStore *kv, const char *name, struct manifest *m, char *err,
             size_t errlen)
{
    kvEntry *e = NULL;
    json_t *j = NULL;
    json_error_t je;
    json_int_t gen = 0, chunks = 0, bytes = 0;
    json_t *seq = NULL;
    const char *hash = NULL;
    natsStatus s;
    int rc = -1;

    s = kvStore_Get(&e, kv, name);
    if (s == NATS_NOT_FOUND) {
        snprintf(err, errlen, "snapshot %s not found", name);
        goto out;
    }
    if (s != NATS_OK) {
        conn_strerror(s, name, err, errlen);
        goto out;
    }
    j = json_loadb(kvEntry_Value(e), (size_t)kvEntry_ValueLen(e), 0, &je);
    if (j == NULL ||
        json_unpack(j, "{s:I,s:I,s:I,s:s,s?o}", "gen", &gen, "chunks", &chunks,
                    "bytes", &bytes, "xxh64", &hash, "js_seq", &seq) != 0 ||
        (seq != NULL && !json_is_null(seq) && !json_is_integer(seq))) {
        snprintf(err, errlen, "snapshot %s: bad manifest", name);
        goto out;
    }
    m->gen = (uint64_t)gen;
    m->chunks = (uint64_t)chunks;
    m->bytes = (uint64_t)bytes;
    m->xxh64 = strtoull(hash, NULL, 16);
    m->has_js_seq = json_is_integer(seq);
    m->js_seq = m->has_js_seq ? (uint64_t)json_integer_value(seq) : 0;
    rc = 0;
out:
    json_decref(j);
    kvEntry_Destroy(e);
    return rc;
}

static void
chunk_key(char *out, size_t n, const char *name, uint64_t gen, uint64_t i)
{
    snprintf(out, n, "%s.g%llu.%llu", name, (unsigned long long)gen,
             (unsigned long long)i);
}

static void
manifest_print(const char *name, const struct manifest *m, FILE *f)
{
    fprintf(f,
            "{\"name\":\"%s\",\"gen\":%llu,\"chunks\":%llu,\"bytes\":%llu,"
            "\"xxh64\":\"%016llx\",\"js_seq\":",
            name, (unsigned long long)m->gen, (unsigned long long)m->chunks,
            (unsigned long long)m->bytes, (unsigned long long)m->xxh64);
    if (m->has_js_seq)
        fprintf(f, "%llu}\n", (unsigned long long)m->js_seq);
    else
        fputs("null}\n", f);
}

/* Writes the manifest, which makes the new chunks the snapshot. */
static int
manifest_store(kvStore *kv, const char *name, const struct manifest *m)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    natsStatus s;
    char err[512];

    if (f == NULL)
        return -1;
    manifest_print(name, m, f);
    fclose(f);
    s = kvStore_Put(NULL, kv, name, text, (int)len);
    free(text);
    if (s != NATS_OK) {
        conn_strerror(s, name, err, sizeof(err));
        log_error("%s", err);
        return -1;
    }
    return 0;
}

static int
read_all(struct buf *b)
{
    for (;;) {
        ssize_t r;

        if (buf_reserve(b, 1u << 20) == -1)
            return -1;
        r = read(0, b->p + b->len, 1u << 20);
        if (r == 0)
            return 0;
        if (r < 0)
            return -1;
        b->len += (size_t)r;
    }
}

/*
 * The js_seq a kvindex snapshot records in its header, its first line
 * (docs/kvindex-snapshot.md): the highest stream sequence the index had
 * applied when it was written, so a snapshot and its sequence always come
 * from the same dump.  Only the first line is parsed; a snapshot is large.
 * Returns 1 with *seq set, 0 when the input is not a kvindex snapshot or
 * its header has no js_seq (null counts as none), or -1 with the reason
 * in err when the header names a js_seq that is not a sequence number.
 */
static int
header_js_seq(const struct buf *in, uint64_t *seq, char *err, size_t errlen)
{
    const char *nl = memchr(in->p, '\n', in->len);
    size_t n = nl != NULL ? (size_t)(nl - in->p) : in->len;
    json_t *h = json_loadb(in->p, n, 0, NULL);
    json_t *v = json_object_get(h, "js_seq");
    const char *type = json_string_value(json_object_get(h, "type"));
    int rc = 0;

    if (type == NULL || strcmp(type, "kvindex_snapshot") != 0 || v == NULL ||
        json_is_null(v)) {
        rc = 0;
    } else if (!json_is_integer(v) || json_integer_value(v) < 0) {
        snprintf(err, errlen,
                 "the snapshot's header has a js_seq that is not a stream "
                 "sequence number");
        rc = -1;
    } else {
        *seq = (uint64_t)json_integer_value(v);
        rc = 1;
    }
    json_decref(h);
    return rc;
}

/* The manifest's js_seq: --js-seq, else the snapshot's header. */
static int
put_js_seq(const struct buf *in, const struct js_opts *o, struct manifest *m)
{
    char err[256];
    uint64_t hseq = 0;
    int h = header_js_seq(in, &hseq, err, sizeof(err));

    if (h == -1 && !o->has_js_seq) {
        log_error("%s; give it with --js-seq", err);
        return -1;
    }
    if (o->has_js_seq && h == 1 && hseq != o->js_seq)
        log_warn("--js-seq %llu overrides the snapshot header's js_seq %llu",
                 (unsigned long long)o->js_seq, (unsigned long long)hseq);
    m->has_js_seq = o->has_js_seq || h == 1;
    m->js_seq = o->has_js_seq ? o->js_seq : hseq;
    return 0;
}

static int
snap_put(kvStore *kv, const struct js_opts *o, const char *name)
{
    struct buf in = {0};
    struct manifest m = {0}, old;
    char key[300], err[512];
    int had_old, rc = 1;
    struct timespec ts;

    if (read_all(&in) == -1) {
        log_error("stdin: cannot read");
        goto out;
    }
    if (put_js_seq(&in, o, &m) == -1)
        goto out;
    had_old = manifest_get(kv, name, &old, err, sizeof(err)) == 0;
    clock_gettime(CLOCK_REALTIME, &ts);
    m.gen = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    m.bytes = in.len;
    m.chunks = (in.len + CHUNK - 1) / CHUNK;
    m.xxh64 = XXH64(in.p, in.len, 0);
    for (uint64_t i = 0; i < m.chunks; i++) {
        size_t off = (size_t)i * CHUNK;
        size_t n = in.len - off < CHUNK ? in.len - off : CHUNK;
        natsStatus s;

        chunk_key(key, sizeof(key), name, m.gen, i);
        s = kvStore_Put(NULL, kv, key, in.p + off, (int)n);
        if (s != NATS_OK) {
            conn_strerror(s, key, err, sizeof(err));
            log_error("%s", err);
            goto out;
        }
    }
    if (manifest_store(kv, name, &m) == -1)
        goto out;
    for (uint64_t i = 0; had_old && i < old.chunks; i++) {
        chunk_key(key, sizeof(key), name, old.gen, i);
        kvStore_Purge(kv, key, NULL);
    }
    manifest_print(name, &m, stdout);
    rc = fflush(stdout) == 0 ? 0 : 1;
out:
    buf_free(&in);
    return rc;
}

/* Appends chunk i of m to out.  Returns 0, or -1 with err set. */
static int
chunk_get(kvStore *kv, const char *name, const struct manifest *m, uint64_t i,
          struct buf *out, char *err, size_t errlen)
{
    char key[300];
    kvEntry *e = NULL;

    chunk_key(key, sizeof(key), name, m->gen, i);
    if (kvStore_Get(&e, kv, key) != NATS_OK) {
        snprintf(err, errlen, "snapshot %s: chunk %s missing", name, key);
        return -1;
    }
    buf_put(out, kvEntry_Value(e), (size_t)kvEntry_ValueLen(e));
    kvEntry_Destroy(e);
    return 0;
}

/*
 * Fetches the snapshot the manifest names.  A put that lands meanwhile
 * purges the chunks being read, so a missing chunk starts over once from
 * the new manifest.
 */
static int
snap_get(kvStore *kv, const char *name)
{
    struct buf out = {0};
    struct manifest m;
    char err[512];
    int rc = 1;

    for (int attempt = 0; attempt < 2; attempt++) {
        int ok = 1;

        buf_clear(&out);
        if (manifest_get(kv, name, &m, err, sizeof(err)) == -1)
            break;
        for (uint64_t i = 0; ok && i < m.chunks; i++)
            ok = chunk_get(kv, name, &m, i, &out, err, sizeof(err)) == 0;
        if (!ok)
            continue;
        if (out.len != m.bytes || XXH64(out.p, out.len, 0) != m.xxh64) {
            snprintf(err, sizeof(err),
                     "snapshot %s: %zu bytes do not match the manifest", name,
                     out.len);
            break;
        }
        rc = 0;
        break;
    }
    if (rc != 0)
        log_error("%s", err);
    else if (fwrite(out.p, 1, out.len, stdout) != out.len ||
             fflush(stdout) != 0)
        rc = 1;
    buf_free(&out);
    return rc;
}

int
snap_run(const struct js_opts *o, const char *cmd, const char *name)
{
    struct js_conn c;
    kvStore *kv = NULL;
    struct manifest m;
    char err[512];
    int rc = 1;

    if (!name_ok(name)) {
        log_error("snapshot name %s: use letters, digits, '-' and '_'", name);
        return 2;
    }
    if (conn_open(&c, o, NULL, err, sizeof(err)) == -1) {
        log_error("%s", err);
        goto out;
    }
    if (bucket_open(&c, o, strcmp(cmd, "put") == 0, &kv) == -1)
        goto out;
    if (strcmp(cmd, "put") == 0) {
        rc = snap_put(kv, o, name);
    } else if (strcmp(cmd, "get") == 0) {
        rc = snap_get(kv, name);
    } else if (manifest_get(kv, name, &m, err, sizeof(err)) == 0) {
        manifest_print(name, &m, stdout);
        rc = fflush(stdout) == 0 ? 0 : 1;
    } else {
        log_error("%s", err);
    }
out:
    kvStore_Destroy(kv);
    conn_close(&c);
    return rc;
}

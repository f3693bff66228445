/*
 * snapshot.c - dump, snapshot files and loading them back (snapshot.h,
 * docs/kvindex-snapshot.md#lines-in-this-order).
 */
#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomicfile.h"
#include "jscan.h"
#include "kvreport.h"
#include "lines.h"

#define SNAPSHOT_VERSION 1
#define FLUSH_AT (1u << 20)
/* A line longer than this is refused: the longest a server writes is an
 * entry naming a pod and a model, each shorter than its --max-line. */
#define SNAPSHOT_MAX_LINE ((size_t)64 << 20)

static int
ref_matches(const struct index_pod_ref *ref, const char *pod, int has_rank,
            int64_t rank)
{
    if (ref == NULL)
        return 1;
    if (strlen(pod) != ref->pod.n || memcmp(pod, ref->pod.p, ref->pod.n) != 0)
        return 0;
    return !ref->has_rank || (has_rank && rank == ref->rank);
}

/* The members naming a namespace, in namespace and entry lines. */
static void
put_ns(struct buf *b, const char *model, const char *lora, uint32_t block_size)
{
    buf_puts(b, "\"model\":");
    kvreport_str(b, model);
    buf_puts(b, ",\"lora_name\":");
    kvreport_str(b, lora);
    buf_puts(b, ",\"block_size\":");
    buf_put_u64(b, block_size);
}

/* Starts a line: a comma between array elements. */
static void
begin(struct buf *b, int in_array, int *first)
{
    if (in_array && !*first)
        buf_putc(b, ',');
    *first = 0;
}

static void
end(struct buf *b, int in_array)
{
    if (!in_array)
        buf_putc(b, '\n');
}

int
snapshot_dump(const struct kv_index *ix, const struct index_opts *o,
              const struct index_pod_ref *ref, int in_array, struct buf *b,
              snapshot_flush_fn flush, void *ctx)
{
    struct index_ns_info ns;
    struct index_pod_info pi;
    struct index_dump_entry e;
    struct index_cursor cur;
    int first = 1;

    begin(b, in_array, &first);
    buf_puts(b, "{\"type\":\"kvindex_snapshot\",\"version\":");
    buf_put_u64(b, SNAPSHOT_VERSION);
    buf_puts(b, ",\"hash\":");
    kvreport_str(b, blockkey_scheme_name(o->scheme));
    buf_puts(b, ",\"seed\":\"");
    buf_put_u64(b, o->seed);
    buf_puts(b, "\",\"hash_seed\":");
    kvreport_str(b, o->hash_seed ? o->hash_seed : "");
    buf_putc(b, '}');
    end(b, in_array);
    for (size_t i = 0; i < index_ns_count(ix); i++) {
        if (index_ns_info(ix, i, &ns) < 0)
            continue;
        begin(b, in_array, &first);
        buf_puts(b, "{\"type\":\"namespace\",");
        put_ns(b, ns.model, ns.lora_name, ns.block_size);
        buf_putc(b, '}');
        end(b, in_array);
    }
    for (size_t i = 0; i < index_pod_count(ix); i++) {
        if (index_pod_info(ix, i, &pi) < 0 ||
            !ref_matches(ref, pi.pod, pi.has_rank, pi.rank))
            continue;
        begin(b, in_array, &first);
        buf_puts(b, "{\"type\":\"pod\",");
        kvreport_pod_state(b, &pi);
        buf_putc(b, '}');
        end(b, in_array);
    }
    memset(&cur, 0, sizeof cur);
    while (index_dump_next(ix, &cur, ref, &e) == 1) {
        begin(b, in_array, &first);
        buf_puts(b, "{\"type\":\"entry\",");
        kvreport_pod(b, e.pod, e.has_rank, e.rank);
        buf_putc(b, ',');
        put_ns(b, e.model, e.lora_name, e.block_size);
        buf_puts(b, ",\"block_hash\":\"");
        buf_put_u64(b, e.engine_hash);
        buf_puts(b, "\",\"key\":\"");
        buf_put_u64(b, e.key);
        buf_puts(b, "\",\"media\":");
        kvreport_media(ix, e.media, b);
        buf_putc(b, '}');
        end(b, in_array);
        if (b->oom)
            return -1;
        if (flush != NULL && b->len >= FLUSH_AT && flush(ctx, b) < 0)
            return -1;
    }
    if (b->oom)
        return -1;
    return flush != NULL ? flush(ctx, b) : 0;
}

struct file_sink {
    struct atomicfile f;
    char *err;
    size_t errlen;
};

static int
write_chunk(void *ctx, struct buf *b)
{
    struct file_sink *fs = ctx;

    if (atomicfile_write(&fs->f, b->p, b->len, fs->err, fs->errlen) < 0)
        return -1;
    buf_clear(b);
    return 0;
}

int
snapshot_write(const struct kv_index *ix, const struct index_opts *o,
               const char *path, char *err, size_t errlen)
{
    struct file_sink fs = {.err = err, .errlen = errlen};
    struct buf b = {0};
    int rc = -1;

    err[0] = '\0';
    if (atomicfile_open(&fs.f, path, 0600, err, errlen) < 0)
        goto done;
    if (snapshot_dump(ix, o, NULL, 0, &b, write_chunk, &fs) < 0) {
        if (err[0] == '\0')
            snprintf(err, errlen, "%s: out of memory", path);
        goto done;
    }
    /* A failed fsync of the directory leaves the snapshot in place, only
     * its durability late: a success, with the reason left in err. */
    rc = atomicfile_commit(&fs.f, err, errlen) < 0 ? -1 : 0;
done:
    atomicfile_abort(&fs.f);
    buf_free(&b);
    return rc;
}

/* Everything one snapshot line may carry. */
struct snapline {
    struct kv_str type, hash, hash_seed, model, lora, pod;
    uint64_t version, seed, block_size, blocks, last_seq, orphans, misaligned,
        block_hash, key;
    int has_rank, has_seq, has_ts, degraded, has_hash_seed;
    int64_t rank;
    double last_ts;
    uint32_t media;
};

static int
read_double(struct jscan *s, double *out)
{
    struct kv_str raw;
    char tmp[64];
    char *end;

    if (jscan_skip(s, &raw) < 0 || raw.n == 0 || raw.n >= sizeof tmp)
        return -1;
    memcpy(tmp, raw.p, raw.n);
    tmp[raw.n] = '\0';
    *out = strtod(tmp, &end);
    return *end == '\0' ? 0 : -1;
}

static int
read_media(struct kv_index *ix, struct jscan *s, uint32_t *media)
{
    int first = 1, e;
    struct kv_str name;

    *media = 0;
    if (jscan_expect(s, '[') < 0)
        return -1;
    while ((e = jscan_element(s, first)) == 1) {
        int bit;
        first = 0;
        if (jscan_string(s, &name) < 0)
            return -1;
        bit = index_medium_intern(ix, name.p, name.n);
        if (bit < 0 || bit > 31)
            return -1;
        *media |= 1u << bit;
    }
    return e;
}

static int
parse_snapline(struct kv_index *ix, const char *line, size_t len,
               struct arena *a, struct snapline *l, char *err, size_t errlen)
{
    struct jscan s;
    struct kv_str k;
    int first = 1, m;

    memset(l, 0, sizeof *l);
    jscan_init(&s, line, len, a, err, errlen);
    if (jscan_expect(&s, '{') < 0)
        return -1;
    while ((m = jscan_member(&s, first, &k)) == 1) {
        int rc = 0;
        first = 0;
        if (kv_str_eq(k, "type"))
            rc = jscan_string(&s, &l->type);
        else if (kv_str_eq(k, "version"))
            rc = jscan_u64(&s, UINT64_MAX, &l->version);
        else if (kv_str_eq(k, "hash"))
            rc = jscan_string(&s, &l->hash);
        else if (kv_str_eq(k, "seed"))
            rc = jscan_hash(&s, &l->seed);
        else if (kv_str_eq(k, "hash_seed")) {
            rc = jscan_string(&s, &l->hash_seed);
            l->has_hash_seed = 1;
        } else if (kv_str_eq(k, "model"))
            rc = jscan_string(&s, &l->model);
        else if (kv_str_eq(k, "lora_name"))
            rc = jscan_string(&s, &l->lora);
        else if (kv_str_eq(k, "pod"))
            rc = jscan_string(&s, &l->pod);
        else if (kv_str_eq(k, "dp_rank")) {
            if (!jscan_null(&s)) {
                rc = jscan_i64(&s, &l->rank);
                l->has_rank = 1;
            }
        } else if (kv_str_eq(k, "block_size"))
            rc = jscan_u64(&s, UINT32_MAX, &l->block_size);
        else if (kv_str_eq(k, "blocks"))
            rc = jscan_u64(&s, UINT64_MAX, &l->blocks);
        else if (kv_str_eq(k, "last_seq")) {
            if (!jscan_null(&s)) {
                rc = jscan_u64(&s, UINT64_MAX, &l->last_seq);
                l->has_seq = 1;
            }
        } else if (kv_str_eq(k, "last_ts")) {
            if (!jscan_null(&s)) {
                rc = read_double(&s, &l->last_ts);
                l->has_ts = 1;
            }
        } else if (kv_str_eq(k, "degraded")) {
            rc = jscan_bool(&s, &l->degraded);
        } else if (kv_str_eq(k, "orphans"))
            rc = jscan_u64(&s, UINT64_MAX, &l->orphans);
        else if (kv_str_eq(k, "misaligned"))
            rc = jscan_u64(&s, UINT64_MAX, &l->misaligned);
        else if (kv_str_eq(k, "block_hash"))
            rc = jscan_hash(&s, &l->block_hash);
        else if (kv_str_eq(k, "key"))
            rc = jscan_hash(&s, &l->key);
        else if (kv_str_eq(k, "media"))
            rc = read_media(ix, &s, &l->media);
        else
            rc = jscan_skip(&s, NULL);
        if (rc < 0) {
            if (err[0] == '\0')
                snprintf(err, errlen, "bad value");
            return -1;
        }
    }
    if (m < 0)
        return -1;
    return 0;
}

/* NUL-terminated copy in the arena (index strings are C strings). */
static const char *
cstr(struct arena *a, struct kv_str s)
{
    char *p = arena_alloc(a, s.n + 1);

    if (p == NULL)
        return NULL;
    if (s.n > 0)
        memcpy(p, s.p, s.n);
    p[s.n] = '\0';
    return p;
}

static int
check_header(const struct index_opts *o, const struct snapline *l, char *err,
             size_t errlen)
{
    const char *want = blockkey_scheme_name(o->scheme);
    const char *hs = o->hash_seed ? o->hash_seed : "";

    if (!kv_str_eq(l->type, "kvindex_snapshot")) {
        snprintf(err, errlen, "not a kvindex snapshot (no header line)");
        return -1;
    }
    if (l->version != SNAPSHOT_VERSION) {
        snprintf(err, errlen, "snapshot version %llu is not supported",
                 (unsigned long long)l->version);
        return -1;
    }
    if (!kv_str_eq(l->hash, want) ||
        (o->scheme == BLOCKKEY_AIBRIX && l->seed != o->seed) ||
        (o->scheme == BLOCKKEY_LLMD && !kv_str_eq(l->hash_seed, hs))) {
        snprintf(err, errlen,
                 "written with another --hash/--seed/--hash-seed (%.*s); "
                 "its keys would not match",
                 (int)(l->hash.n > 20 ? 20 : l->hash.n), l->hash.p);
        return -1;
    }
    return 0;
}

static int
apply_snapline(struct kv_index *ix, struct arena *a, const struct snapline *l,
               char *err, size_t errlen)
{
    if (kv_str_eq(l->type, "namespace")) {
        return index_restore_ns(ix, l->model, l->lora, (uint32_t)l->block_size,
                                err, errlen);
    }
    if (kv_str_eq(l->type, "pod")) {
        struct index_pod_info pi;
        memset(&pi, 0, sizeof pi);
        pi.pod = cstr(a, l->pod);
        pi.has_rank = l->has_rank;
        pi.rank = l->rank;
        pi.has_seq = l->has_seq;
        pi.last_seq = l->last_seq;
        pi.has_ts = l->has_ts;
        pi.last_ts = l->last_ts;
        pi.degraded = l->degraded;
        pi.orphans = l->orphans;
        pi.misaligned = l->misaligned;
        if (pi.pod == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        return index_restore_pod(ix, &pi, err, errlen);
    }
    if (kv_str_eq(l->type, "entry")) {
        struct index_dump_entry e;
        memset(&e, 0, sizeof e);
        e.pod = cstr(a, l->pod);
        e.has_rank = l->has_rank;
        e.rank = l->rank;
        e.model = cstr(a, l->model);
        e.lora_name = cstr(a, l->lora);
        e.block_size = (uint32_t)l->block_size;
        e.engine_hash = l->block_hash;
        e.key = l->key;
        e.media = l->media;
        if (e.pod == NULL || e.model == NULL || e.lora_name == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        return index_restore_entry(ix, &e, err, errlen);
    }
    return 0; /* a line type from a later version: ignored */
}

/* Parses and applies one line (the header when *header is 0). */
static int
load_line(struct kv_index *ix, const struct index_opts *o, struct arena *a,
          int *header, const char *line, size_t len, uint64_t lineno, char *err,
          size_t errlen)
{
    struct snapline l;
    char why[200] = "";

    arena_reset(a);
    if (parse_snapline(ix, line, len, a, &l, why, sizeof why) < 0 ||
        (!*header && check_header(o, &l, why, sizeof why) < 0) ||
        (*header && apply_snapline(ix, a, &l, why, sizeof why) < 0)) {
        snprintf(err, errlen, "line %llu: %s", (unsigned long long)lineno,
                 why[0] ? why : "malformed");
        return -1;
    }
    *header = 1;
    return 0;
}

int
snapshot_load(struct kv_index *ix, const struct index_opts *o, const char *path,
              char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc = -1, header = 0, r;
    struct lines in = {0};
    struct arena a = {0};
    const char *line;
    size_t len;

    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "%s", strerror(errno));
        return -1;
    }
    if (lines_init(&in, fd, SNAPSHOT_MAX_LINE) < 0) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    for (;;) {
        while ((r = lines_next(&in, &line, &len)) != LINES_NONE) {
            if (r == LINES_TOO_LONG) {
                snprintf(err, errlen, "line %llu: longer than %zu bytes",
                         (unsigned long long)in.lineno, SNAPSHOT_MAX_LINE);
                goto done;
            }
            if (len > 0 && load_line(ix, o, &a, &header, line, len, in.lineno,
                                     err, errlen) < 0)
                goto done;
        }
        if (in.eof)
            break;
        if (lines_fill(&in) < 0 && errno != EINTR) {
            snprintf(err, errlen, "read: %s", strerror(errno));
            goto done;
        }
    }
    if (!header) {
        snprintf(err, errlen, "empty file (not a kvindex snapshot)");
        goto done;
    }
    rc = 1;
done:
    lines_free(&in);
    arena_free(&a);
    close(fd);
    return rc;
}

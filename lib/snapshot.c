/*
 * snapshot.c - dump, snapshot files and loading them back (snapshot.h,
 * docs/kvindex-snapshot.md#lines-in-this-order).
 */
#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "atomicfile.h"
#include "jscan.h"
#include "kvreport.h"
#include "lines.h"

#define SNAPSHOT_VERSION 2
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

/*
 * A dump being written: lines go to b (as array elements with in_array),
 * and each line's text plus '\n' -- the file's bytes, whichever the form --
 * into the trailer's checksum (docs/kvindex-snapshot.md#the-end-line).
 */
struct dumper {
    struct buf *b;
    int in_array, first;
    size_t start; /* where the current line begins in b */
    XXH64_state_t *h;
    uint64_t entries;
};

static void
begin(struct dumper *d)
{
    if (d->in_array && !d->first)
        buf_putc(d->b, ',');
    d->first = 0;
    d->start = d->b->len;
}

static void
end(struct dumper *d)
{
    if (!d->in_array)
        buf_putc(d->b, '\n');
    if (d->b->oom)
        return;
    XXH64_update(d->h, d->b->p + d->start, d->b->len - d->start);
    if (d->in_array)
        XXH64_update(d->h, "\n", 1);
}

static void
dump_header(struct dumper *d, const struct kv_index *ix,
            const struct index_opts *o)
{
    uint64_t js;

    begin(d);
    buf_puts(d->b, "{\"type\":\"kvindex_snapshot\",\"version\":");
    buf_put_u64(d->b, SNAPSHOT_VERSION);
    buf_puts(d->b, ",\"hash\":");
    kvreport_str(d->b, blockkey_scheme_name(o->scheme));
    buf_puts(d->b, ",\"seed\":\"");
    buf_put_u64(d->b, o->seed);
    buf_puts(d->b, "\",\"hash_seed\":");
    kvreport_str(d->b, o->hash_seed ? o->hash_seed : "");
    if (index_js_seq_get(ix, &js)) {
        buf_puts(d->b, ",\"js_seq\":");
        buf_put_u64(d->b, js);
    }
    buf_putc(d->b, '}');
    end(d);
}

/* A pod line: its state, then where its stream stands. */
static void
dump_pod(struct dumper *d, const struct index_pod_info *pi)
{
    begin(d);
    buf_puts(d->b, "{\"type\":\"pod\",");
    kvreport_pod_state(d->b, pi);
    buf_puts(d->b, ",\"stream\":");
    if (pi->stream != NULL)
        kvreport_str(d->b, pi->stream);
    else
        buf_puts(d->b, "null");
    buf_puts(d->b, ",\"seq_ts\":");
    if (pi->has_seq_ts)
        buf_put_double(d->b, pi->seq_ts);
    else
        buf_puts(d->b, "null");
    buf_puts(d->b, ",\"seq_lines\":");
    buf_put_u64(d->b, pi->seq_lines);
    buf_putc(d->b, '}');
    end(d);
}

static void
dump_entry(struct dumper *d, const struct kv_index *ix,
           const struct index_dump_entry *e)
{
    begin(d);
    buf_puts(d->b, "{\"type\":\"entry\",");
    kvreport_pod(d->b, e->pod, e->has_rank, e->rank);
    buf_putc(d->b, ',');
    put_ns(d->b, e->model, e->lora_name, e->block_size);
    buf_puts(d->b, ",\"block_hash\":\"");
    buf_put_u64(d->b, e->engine_hash);
    buf_puts(d->b, "\",\"key\":\"");
    buf_put_u64(d->b, e->key);
    buf_puts(d->b, "\",\"media\":");
    kvreport_media(ix, e->media, d->b);
    buf_putc(d->b, '}');
    end(d);
    d->entries++;
}

/* The end line: the entry count and the checksum of every line before. */
static void
dump_trailer(struct dumper *d)
{
    char hex[17];

    snprintf(hex, sizeof hex, "%016" PRIx64, (uint64_t)XXH64_digest(d->h));
    if (d->in_array && !d->first)
        buf_putc(d->b, ',');
    buf_puts(d->b, "{\"type\":\"end\",\"entries\":");
    buf_put_u64(d->b, d->entries);
    buf_puts(d->b, ",\"xxh64\":\"");
    buf_puts(d->b, hex);
    buf_puts(d->b, "\"}");
    if (!d->in_array)
        buf_putc(d->b, '\n');
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
    struct dumper d = {.b = b, .in_array = in_array, .first = 1};
    int rc = -1;

    d.h = XXH64_createState();
    if (d.h == NULL || XXH64_reset(d.h, 0) != XXH_OK)
        goto done;
    dump_header(&d, ix, o);
    for (size_t i = 0; i < index_ns_count(ix); i++) {
        if (index_ns_info(ix, i, &ns) < 0)
            continue;
        begin(&d);
        buf_puts(b, "{\"type\":\"namespace\",");
        put_ns(b, ns.model, ns.lora_name, ns.block_size);
        buf_putc(b, '}');
        end(&d);
    }
    for (size_t i = 0; i < index_pod_count(ix); i++) {
        if (index_pod_info(ix, i, &pi) == 0 &&
            ref_matches(ref, pi.pod, pi.has_rank, pi.rank))
            dump_pod(&d, &pi);
    }
    memset(&cur, 0, sizeof cur);
    while (index_dump_next(ix, &cur, ref, &e) == 1) {
        dump_entry(&d, ix, &e);
        if (b->oom)
            goto done;
        if (flush != NULL && b->len >= FLUSH_AT && flush(ctx, b) < 0)
            goto done;
    }
    dump_trailer(&d);
    if (b->oom)
        goto done;
    rc = flush != NULL ? flush(ctx, b) : 0;
done:
    XXH64_freeState(d.h);
    return rc;
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
    struct kv_str type, hash, hash_seed, model, lora, pod, stream, xxh64;
    uint64_t version, seed, block_size, blocks, last_seq, orphans, misaligned,
        block_hash, key, js_seq, seq_lines, entries;
    int has_rank, has_seq, has_ts, degraded, has_hash_seed, has_js_seq,
        has_stream, has_seq_ts, has_entries;
    int64_t rank;
    double last_ts, seq_ts;
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

/* The members version 2 added (pod stream position, js_seq, the end line). */
static int
parse_v2_member(struct jscan *s, struct kv_str k, struct snapline *l)
{
    if (kv_str_eq(k, "js_seq")) {
        if (jscan_null(s))
            return 0;
        l->has_js_seq = 1;
        return jscan_u64(s, UINT64_MAX, &l->js_seq);
    }
    if (kv_str_eq(k, "stream")) {
        if (jscan_null(s))
            return 0;
        l->has_stream = 1;
        return jscan_string(s, &l->stream);
    }
    if (kv_str_eq(k, "seq_ts")) {
        if (jscan_null(s))
            return 0;
        l->has_seq_ts = 1;
        return read_double(s, &l->seq_ts);
    }
    if (kv_str_eq(k, "seq_lines"))
        return jscan_u64(s, UINT64_MAX, &l->seq_lines);
    if (kv_str_eq(k, "entries")) {
        l->has_entries = 1;
        return jscan_u64(s, UINT64_MAX, &l->entries);
    }
    if (kv_str_eq(k, "xxh64"))
        return jscan_string(s, &l->xxh64);
    return jscan_skip(s, NULL);
}

static int
parse_snapline(struct kv_index *ix, const char *line, size_t len,
               struct arena *a, struct snapline *l, char *err, size_t errlen)
{
    struct jscan s;
    struct kv_str k;
    int first = 1, m;

    memset(l, 0, sizeof *l);
    /* Version 1 did not say how much of its last batch a pod had: all of it
     * is the likelier (a snapshot is mostly taken between batches). */
    l->seq_lines = UINT64_MAX;
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
            rc = parse_v2_member(&s, k, l);
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
    if (l->version != 1 && l->version != SNAPSHOT_VERSION) {
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

/*
 * Index names are C strings: a U+0000 inside one would cut it short here,
 * and the index would hold another name than the file.  (Invalid UTF-8 is
 * the index's own check, index_restore_*.)
 */
static int
names_hold_nul(const struct snapline *l, char *err, size_t errlen)
{
    if (memchr(l->pod.p ? l->pod.p : "", '\0', l->pod.n)) {
        snprintf(err, errlen,
                 "a pod name that is not valid UTF-8 or holds U+0000");
        return 1;
    }
    if (memchr(l->model.p ? l->model.p : "", '\0', l->model.n) ||
        memchr(l->lora.p ? l->lora.p : "", '\0', l->lora.n)) {
        snprintf(err, errlen,
                 "a model or LoRA name that is not valid UTF-8 "
                 "or holds U+0000");
        return 1;
    }
    return 0;
}

static int
apply_snapline(struct kv_index *ix, struct arena *a, const struct snapline *l,
               char *err, size_t errlen)
{
    if (names_hold_nul(l, err, errlen))
        return -1;
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
        pi.stream = l->has_stream ? cstr(a, l->stream) : NULL;
        pi.has_seq_ts = l->has_seq_ts;
        pi.seq_ts = l->seq_ts;
        pi.seq_lines = l->seq_lines;
        if (pi.pod == NULL || (l->has_stream && pi.stream == NULL)) {
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

/* A file being loaded. */
struct loader {
    struct kv_index *ix;
    const struct index_opts *o;
    struct arena a;
    XXH64_state_t *h; /* of every byte before the end line */
    uint64_t version; /* 0 until the header */
    uint64_t entries;
    int ended; /* the end line was read */
};

/* Checks the end line against what was read before it. */
static int
check_end(struct loader *ld, const struct snapline *l, char *err, size_t errlen)
{
    char hex[17];

    snprintf(hex, sizeof hex, "%016" PRIx64, (uint64_t)XXH64_digest(ld->h));
    if (!l->has_entries || l->xxh64.n != 16) {
        snprintf(err, errlen, "the end line lacks its entries or xxh64");
        return -1;
    }
    if (l->entries != ld->entries) {
        snprintf(err, errlen,
                 "the end line counts %" PRIu64 " entries, the file holds "
                 "%" PRIu64,
                 l->entries, ld->entries);
        return -1;
    }
    if (memcmp(l->xxh64.p, hex, 16) != 0) {
        snprintf(err, errlen,
                 "checksum mismatch (xxh64 %.16s in the end line, %s of the "
                 "bytes before it): the file is damaged",
                 l->xxh64.p, hex);
        return -1;
    }
    ld->ended = 1;
    return 0;
}

/* Parses and applies one line: the header, the end line, or the rest. */
static int
load_one(struct loader *ld, const char *line, size_t len, char *why,
         size_t whylen)
{
    struct snapline l;

    if (ld->ended) {
        snprintf(why, whylen, "a line after the end line");
        return -1;
    }
    if (len == 0)
        return 0;
    if (parse_snapline(ld->ix, line, len, &ld->a, &l, why, whylen) < 0)
        return -1;
    if (ld->version == 0) {
        if (check_header(ld->o, &l, why, whylen) < 0)
            return -1;
        ld->version = l.version;
        if (l.has_js_seq)
            index_restore_js_seq(ld->ix, l.js_seq);
        return 0;
    }
    if (kv_str_eq(l.type, "end") && ld->version >= 2)
        return check_end(ld, &l, why, whylen);
    if (kv_str_eq(l.type, "entry"))
        ld->entries++;
    return apply_snapline(ld->ix, &ld->a, &l, why, whylen);
}

static int
load_line(struct loader *ld, const char *line, size_t len, uint64_t lineno,
          char *err, size_t errlen)
{
    char why[200] = "";

    arena_reset(&ld->a);
    if (load_one(ld, line, len, why, sizeof why) < 0) {
        snprintf(err, errlen, "line %llu: %s", (unsigned long long)lineno,
                 why[0] ? why : "malformed");
        return -1;
    }
    if (!ld->ended) {
        XXH64_update(ld->h, line, len);
        XXH64_update(ld->h, "\n", 1);
    }
    return 0;
}

/* After the last line: whether the file was whole. */
static int
load_finish(const struct loader *ld, char *err, size_t errlen)
{
    if (ld->version == 0) {
        snprintf(err, errlen, "empty file (not a kvindex snapshot)");
        return -1;
    }
    if (ld->version >= 2 && !ld->ended) {
        snprintf(err, errlen,
                 "no end line: the file is cut short (%" PRIu64
                 " entries read)",
                 ld->entries);
        return -1;
    }
    if (ld->version == 1)
        snprintf(err, errlen,
                 "a version 1 snapshot: it has no end line, so whether it "
                 "is whole cannot be checked");
    return 0;
}

int
snapshot_load(struct kv_index *ix, const struct index_opts *o, const char *path,
              char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc = -1, r;
    struct lines in = {0};
    struct loader ld = {.ix = ix, .o = o};
    const char *line;
    size_t len;

    err[0] = '\0';
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "%s", strerror(errno));
        return -1;
    }
    ld.h = XXH64_createState();
    if (ld.h == NULL || XXH64_reset(ld.h, 0) != XXH_OK ||
        lines_init(&in, fd, SNAPSHOT_MAX_LINE) < 0) {
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
            if (load_line(&ld, line, len, in.lineno, err, errlen) < 0)
                goto done;
        }
        if (in.eof)
            break;
        if (lines_fill(&in) < 0 && errno != EINTR) {
            snprintf(err, errlen, "read: %s", strerror(errno));
            goto done;
        }
    }
    if (load_finish(&ld, err, errlen) == 0)
        rc = 1;
done:
    lines_free(&in);
    arena_free(&ld.a);
    XXH64_freeState(ld.h);
    close(fd);
    return rc;
}

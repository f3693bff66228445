/*
 * input.c - see input.h.
 */
#include "input.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "cli.h"
#include "lines.h"
#include "ndjson_read.h"
#include "vec.h"

/* The longest line read; a longer one is skipped with a warning. */
#define INPUT_MAX_LINE (64u << 20)

/* One line kept for time order. */
struct kept {
    double ts;
    size_t off, len, idx;
};

/*
 * An event parsed but not yet applied.  Events are applied one line late:
 * track_prefetch asks for the table slots an event needs, and parsing the
 * next line hides the wait for memory.
 */
struct pending {
    struct arena arena; /* the event's memory */
    struct kv_env env;
    struct kv_event ev;
    int has;
};

struct reader {
    const struct input_opts *o;
    struct track *t;
    struct input_stats *st;
    struct pending pend[2];
    int cur; /* pend[cur] receives the next line */
    const char *name;
    uint64_t total;
    long long next_progress;
    /* Time order. */
    struct buf store;
    struct kept *kept;
    size_t n_kept, cap_kept;
    double last_ts;
    char *err;
    size_t errlen;
};

static void
progress(struct reader *r)
{
    long long now;

    if (r->o->progress == NULL)
        return;
    now = cli_now_ms();
    if (now < r->next_progress)
        return;
    r->next_progress = now + 200;
    r->o->progress(r->o->ctx, r->st->bytes, r->total, r->st->events);
}

static int
keep_line(struct reader *r, const char *line, size_t len,
          const struct kv_env *env)
{
    if (vec_grow((void **)&r->kept, &r->cap_kept, r->n_kept + 1,
                 sizeof *r->kept))
        return -1;
    if (env->has_ts)
        r->last_ts = env->ts;
    r->kept[r->n_kept] =
        (struct kept){r->last_ts, r->store.len, len, r->n_kept};
    r->n_kept++;
    buf_put(&r->store, line, len);
    return r->store.oom ? -1 : 0;
}

/* Applies the event parsed before the last one, if any. */
static int
flush_one(struct reader *r)
{
    struct pending *p = &r->pend[!r->cur];

    if (!p->has)
        return 0;
    p->has = 0;
    return track_event(r->t, &p->env, &p->ev, r->err, r->errlen);
}

/* Applies every pending event: before the lines they point into move. */
static int
flush_all(struct reader *r)
{
    if (flush_one(r) == -1)
        return -1;
    r->cur = !r->cur;
    return flush_one(r);
}

/* Parses one line and applies or keeps it.  Returns 0 or -1 (fatal). */
static int
one_line(struct reader *r, const char *line, size_t len, uint64_t lineno,
         int keep)
{
    struct pending *p = &r->pend[r->cur];
    char msg[256];
    int rc;

    arena_reset(&p->arena);
    rc = ndjson_parse_line(line, len, &p->arena, &p->env, &p->ev, msg,
                           sizeof msg);
    if (rc == NDJSON_SKIP)
        return 0;
    if (rc == NDJSON_FATAL) {
        snprintf(r->err, r->errlen, "%s:%llu: %s", r->name,
                 (unsigned long long)lineno, msg);
        return -1;
    }
    if (rc != NDJSON_EVENT) {
        r->st->bad_lines++;
        r->o->warn(r->o->ctx, r->name, lineno, msg);
        return 0;
    }
    r->st->events++;
    if (keep) {
        if (keep_line(r, line, len, &p->env) == 0)
            return 0;
        snprintf(r->err, r->errlen, "out of memory");
        return -1;
    }
    track_prefetch(r->t, &p->env, &p->ev);
    p->has = 1;
    if (flush_one(r) == -1)
        return -1;
    r->cur = !r->cur;
    return 0;
}

/* Reads one open descriptor to its end. */
static int
read_fd(struct reader *r, int fd, int keep)
{
    struct lines l;
    const char *line;
    size_t len;
    int ret = -1;

    if (lines_init(&l, fd, INPUT_MAX_LINE) == -1) {
        snprintf(r->err, r->errlen, "out of memory");
        return -1;
    }
    for (;;) {
        int rc = lines_next(&l, &line, &len);

        if (rc == LINES_OK) {
            r->st->lines++;
            if (one_line(r, line, len, l.lineno, keep) == -1)
                goto out;
            continue;
        }
        if (rc == LINES_TOO_LONG) {
            r->st->bad_lines++;
            r->o->warn(r->o->ctx, r->name, l.lineno, "line too long, skipped");
            continue;
        }
        if (l.eof)
            break;
        progress(r);
        if (flush_all(r) == -1)
            goto out;
        long n = lines_fill(&l);
        if (n > 0)
            r->st->bytes += (uint64_t)n;
        if (n == -1 && errno == EINTR && cli_signal) {
            r->st->interrupted = 1;
            break;
        }
        if (n == -1 && errno != EINTR) {
            snprintf(r->err, r->errlen, "%s: %s", r->name, strerror(errno));
            goto out;
        }
    }
    ret = flush_all(r);
out:
    lines_free(&l);
    return ret;
}

static uint64_t
total_size(const struct input_opts *o)
{
    uint64_t total = 0;
    struct stat sb;

    for (size_t i = 0; i < o->n_files; i++) {
        if (strcmp(o->files[i], "-") == 0 || stat(o->files[i], &sb) == -1 ||
            !S_ISREG(sb.st_mode))
            return 0;
        total += (uint64_t)sb.st_size;
    }
    return total;
}

static int
cmp_kept(const void *a, const void *b)
{
    const struct kept *x = a, *y = b;

    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* Time order: applies the kept lines sorted by ts. */
static int
replay_kept(struct reader *r)
{
    qsort(r->kept, r->n_kept, sizeof *r->kept, cmp_kept);
    r->name = "(sorted input)";
    for (size_t i = 0; i < r->n_kept; i++) {
        if (one_line(r, r->store.p + r->kept[i].off, r->kept[i].len,
                     r->kept[i].idx + 1, 0) == -1)
            return -1;
    }
    return flush_all(r);
}

static int
read_all(struct reader *r)
{
    static char *const stdin_only[] = {"-"};
    char *const *files = r->o->n_files ? r->o->files : stdin_only;
    size_t n = r->o->n_files ? r->o->n_files : 1;

    for (size_t i = 0; i < n && !r->st->interrupted; i++) {
        int fd = STDIN_FILENO, rc;

        r->name = files[i];
        if (strcmp(files[i], "-") != 0 &&
            (fd = open(files[i], O_RDONLY | O_CLOEXEC)) == -1) {
            snprintf(r->err, r->errlen, "%s: %s", files[i], strerror(errno));
            return -1;
        }
        rc = read_fd(r, fd, r->o->time_order);
        if (fd != STDIN_FILENO)
            close(fd);
        if (rc == -1)
            return -1;
    }
    return 0;
}

int
input_run(const struct input_opts *o, struct track *t, struct input_stats *st,
          char *err, size_t errlen)
{
    struct reader r;
    int ret;

    memset(&r, 0, sizeof r);
    memset(st, 0, sizeof *st);
    r.o = o;
    r.t = t;
    r.st = st;
    r.err = err;
    r.errlen = errlen;
    r.total = total_size(o);
    /* A run shorter than one refresh shows no progress at all. */
    r.next_progress = cli_now_ms() + 200;
    ret = read_all(&r);
    if (ret == 0 && o->time_order) {
        uint64_t events = st->events;

        ret = replay_kept(&r);
        st->events = events;
    }
    arena_free(&r.pend[0].arena);
    arena_free(&r.pend[1].arena);
    buf_free(&r.store);
    free(r.kept);
    return ret;
}

/*
 * ingest.c - kvindex serve's NDJSON input (ingest.h).
 *
 * The reader turns input into batches: each item is one line's parse (an
 * event, a skip, a bad line with its reason, an over-long line) or one of
 * the reader's own diagnostics (an input that cannot be opened or read,
 * the end of an input).  The applier walks a batch in order on the
 * server's thread: it counts, warns and applies the events, so stderr
 * reads the same whether the reader ran on a thread of its own or not.
 *
 * With a reader thread, batches travel through a ring of RING slots: the
 * reader fills the slot after the last one published, the server empties
 * the oldest; a full ring stops the reader, so the input backs up into
 * the pipe as it did without the thread.  The line bytes are copied into
 * the batch's arena, next to what the parser decoded, so every string an
 * event borrows lives as long as its batch.  Without the thread the batch
 * is applied before the next read, and borrows the line buffer itself.
 */
#include "ingest.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "jscan.h"
#include "lines.h"
#include "ndjson_read.h"

/* At most this many warnings about bad input lines; the rest are
 * counted. */
#define MAX_LINE_WARNINGS 100
/* A batch is handed over at this many lines or line bytes, or when the
 * input would block. */
#define BATCH_ITEMS 256
#define BATCH_BYTES (256u * 1024)
/*
 * Batches in flight between the reader thread and the server.  Few, so
 * that what the reader parsed is still in cache when the loop applies it
 * (32 cost 30% more CPU per event than 4); the loop's turn waits for the
 * reader's next batch instead (turn_threaded).
 */
#define RING 4
/* A batch arena that a long line grew past this is freed, not kept, so
 * memory follows the lines in flight (as lines.c's buffer does). */
#define ARENA_KEEP ((size_t)4 << 20)

enum item_kind {
    ITEM_EVENT, /* env and ev hold the line's event */
    ITEM_SKIP,  /* a blank line or a version header */
    ITEM_BAD,   /* msg: why the line is malformed */
    ITEM_LONG,  /* a line over --max-line, skipped unread */
    ITEM_FATAL, /* msg: a format version the reader does not know */
    ITEM_ERROR, /* msg: an input that cannot be opened or read */
    ITEM_EOF    /* the end of the input, after lineno lines */
};

struct item {
    enum item_kind kind;
    int fatal;        /* ITEM_ERROR: the input cannot go on */
    const char *name; /* the input's name ("stdin" or its path) */
    uint64_t lineno;
    const char *msg; /* in the batch's arena */
    struct kv_env env;
    struct kv_event ev;
};

struct batch {
    struct item *items; /* BATCH_ITEMS */
    size_t n;
    size_t bytes;       /* line bytes copied into the arena */
    struct arena arena; /* line copies and what the parser decoded */
    int end;            /* nothing comes after this batch */
};

/* The reader's state: its thread's alone while there is one. */
struct input {
    char **files; /* NULL-terminated list, or NULL for stdin */
    size_t next;  /* index of the next file to open */
    const char *name;
    int fd; /* -1: no current input */
    int own_fd;
    int stdin_flags; /* to restore stdin's flags at exit */
    struct lines lines;
    int closing; /* at its end: closed before the next read, as the last
                  * batch may borrow its buffer */
    int done;    /* every input reached its end */
    int fatal;
};

struct ingest {
    struct ingest_opts o;
    struct kv_index *ix;
    struct input in;
    /* The server's side: what has been applied. */
    struct ingest_counts counts;
    uint64_t bad_names; /* lines rejected for their names, for warnings */
    int warned_model;   /* the one warning about lines without "model" */
    int done, fatal;
    /* The ring (slot 0 alone without a reader thread). */
    struct batch ring[RING];
    int started;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;    /* the reader waits for a free slot */
    pthread_cond_t ready; /* the server waits for a published batch */
    size_t head, count;   /* under mu: the oldest published slot, how many */
    int idle;             /* under mu: the reader waits for input, or ended */
    int stop;             /* under mu: the server asks the reader to end */
    int wake[2];          /* reader -> server: a batch was published */
    int quit[2];          /* server -> reader: stop waiting on the input */
};

/* Opens the next input; sets in->done when there is none left.  Returns
 * -1 with the reason in err. */
static int
input_open_next(struct input *in, size_t max_line, char *err, size_t errlen)
{
    const char *f;

    if (in->files == NULL || in->files[0] == NULL) {
        if (in->next++ > 0) {
            in->done = 1;
            return 0;
        }
        f = "-";
    } else {
        f = in->files[in->next];
        if (f == NULL) {
            in->done = 1;
            return 0;
        }
        in->next++;
    }
    if (strcmp(f, "-") == 0) {
        in->name = "stdin";
        in->fd = 0;
        in->own_fd = 0;
        in->stdin_flags = fcntl(0, F_GETFL);
        if (in->stdin_flags != -1)
            fcntl(0, F_SETFL, in->stdin_flags | O_NONBLOCK);
    } else {
        in->name = f;
        in->fd = open(f, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (in->fd < 0) {
            snprintf(err, errlen, "%s: %s", f, strerror(errno));
            return -1;
        }
        in->own_fd = 1;
    }
    if (lines_init(&in->lines, in->fd, max_line) < 0) {
        snprintf(err, errlen, "%s: out of memory", in->name);
        return -1;
    }
    return 0;
}

static void
input_close(struct input *in)
{
    if (in->fd < 0)
        return;
    lines_free(&in->lines);
    if (in->own_fd)
        close(in->fd);
    else if (in->stdin_flags != -1)
        fcntl(0, F_SETFL, in->stdin_flags);
    in->fd = -1;
}

static struct item *
batch_add(struct batch *b, enum item_kind kind, const struct input *in)
{
    struct item *it = &b->items[b->n++];

    it->kind = kind;
    it->fatal = 0;
    it->name = in->name;
    it->lineno = in->lines.lineno;
    it->msg = NULL;
    return it;
}

/* A copy of s in b's arena (a message that must outlive the reader's
 * buffer). */
static const char *
batch_strdup(struct batch *b, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = arena_alloc(&b->arena, n);

    if (p == NULL)
        return "out of memory";
    memcpy(p, s, n);
    return p;
}

static int
batch_full(const struct batch *b)
{
    return b->n == BATCH_ITEMS || b->bytes >= BATCH_BYTES;
}

/* Empties b for the next use. */
static void
batch_reset(struct batch *b)
{
    b->n = 0;
    b->bytes = 0;
    b->end = 0;
    if (b->arena.used_total > ARENA_KEEP)
        arena_free(&b->arena);
    else
        arena_reset(&b->arena);
}

/* Parses one line into a new item of b; with copy, from a copy of it in
 * b's arena. */
static void
parse_line(struct ingest *g, struct batch *b, const char *line, size_t len,
           int copy)
{
    struct item *it = batch_add(b, ITEM_EVENT, &g->in);
    char err[256];
    int rc;

    if (copy && len > 0) {
        char *p = arena_alloc(&b->arena, len);
        if (p == NULL) {
            it->kind = ITEM_BAD;
            it->msg = "out of memory";
            return;
        }
        memcpy(p, line, len);
        line = p;
        b->bytes += len;
    }
    rc = ndjson_parse_line(line, len, &b->arena, &it->env, &it->ev, err,
                           sizeof err);
    if (rc == NDJSON_SKIP) {
        it->kind = ITEM_SKIP;
    } else if (rc == NDJSON_FATAL) {
        it->kind = ITEM_FATAL;
        it->msg = batch_strdup(b, err);
        g->in.fatal = 1;
    } else if (rc != NDJSON_EVENT) {
        it->kind = ITEM_BAD;
        it->msg = batch_strdup(b, err);
    }
}

/* Adds the complete lines the input holds to b until b is full or a line
 * is fatal. */
static void
read_lines(struct ingest *g, struct batch *b, int copy)
{
    const char *line;
    size_t len;
    int rc;

    while (!batch_full(b) && !g->in.fatal) {
        rc = lines_next(&g->in.lines, &line, &len);
        if (rc == LINES_NONE)
            return;
        if (rc == LINES_TOO_LONG)
            batch_add(b, ITEM_LONG, &g->in);
        else
            parse_line(g, b, line, len, copy);
    }
}

/*
 * One step of the reader: closes an input that ended, opens the next,
 * adds the lines already buffered to b and, while b has room, reads once
 * more.  Returns 1 when more may be read right away, 0 when the input
 * would block or b->end is set (nothing comes after b).  Without copy,
 * b borrows the line buffer, so it is applied before the next step.
 */
static int
reader_step(struct ingest *g, struct batch *b, int copy)
{
    struct input *in = &g->in;
    char err[512];
    long n;

    if (in->closing) {
        input_close(in);
        in->closing = 0;
    }
    if (!in->done && !in->fatal && in->fd < 0 &&
        input_open_next(in, g->o.max_line, err, sizeof err) < 0) {
        struct item *it = batch_add(b, ITEM_ERROR, in);
        it->msg = batch_strdup(b, err);
        it->fatal = 1;
        in->fatal = 1;
    }
    if (in->done || in->fatal) {
        b->end = 1;
        return 0;
    }
    read_lines(g, b, copy);
    if (in->fatal) {
        b->end = 1;
        return 0;
    }
    if (batch_full(b) || (!copy && b->n > 0))
        return 1;
    n = lines_fill(&in->lines);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        struct item *it = batch_add(b, ITEM_ERROR, in);
        snprintf(err, sizeof err, "%s: read: %s", in->name, strerror(errno));
        it->msg = batch_strdup(b, err);
        in->lines.eof = 1;
    }
    read_lines(g, b, copy);
    if (in->fatal) {
        b->end = 1;
        return 0;
    }
    if (batch_full(b))
        return 1;
    if (in->lines.eof) {
        batch_add(b, ITEM_EOF, in);
        in->closing = 1;
        return 1; /* the next file, or done */
    }
    return n > 0;
}

/* " (dp_rank R)" after a pod's name in a warning, or "". */
static const char *
rank_note(char *buf, size_t n, int has_rank, int64_t rank)
{
    buf[0] = '\0';
    if (has_rank)
        snprintf(buf, n, " (dp_rank %lld)", (long long)rank);
    return buf;
}

/* The warning of a pod that index_apply just degraded for its orphans. */
static void
warn_orphans(struct ingest *g)
{
    struct index_pod_info pi;
    char rank[32];

    if (!index_orphan_alarm(g->ix, &pi))
        return;
    rank_note(rank, sizeof rank, pi.has_rank, pi.rank);
    log_warn("%s%s: degraded: %llu orphaned stores since its last clear or "
             "restart (--degraded-orphans %llu): its matches may be short",
             pi.pod, rank, (unsigned long long)pi.orphan_run,
             (unsigned long long)g->o.degraded_orphans);
}

/* The warning of a restored pod that index_apply just degraded. */
static void
warn_resume(struct ingest *g)
{
    struct index_resume_alarm a;
    char rank[32];

    if (!index_resume_alarm(g->ix, &a))
        return;
    rank_note(rank, sizeof rank, a.has_rank, a.rank);
    if (a.other_engine)
        log_warn("%s%s: degraded: the stream comes from another engine "
                 "process than the snapshot's (seq %llu) and has no restart "
                 "record: its entries may be stale",
                 a.pod, rank, (unsigned long long)a.snap_seq);
    else if (a.from == a.to)
        log_warn("%s%s: degraded: seq %llu after the snapshot's seq %llu is "
                 "missing: its entries may be stale",
                 a.pod, rank, (unsigned long long)a.from,
                 (unsigned long long)a.snap_seq);
    else
        log_warn("%s%s: degraded: seqs %llu..%llu after the snapshot's seq "
                 "%llu are missing: its entries may be stale",
                 a.pod, rank, (unsigned long long)a.from,
                 (unsigned long long)a.to, (unsigned long long)a.snap_seq);
}

/*
 * The "js_seq" kvjs sub adds to each line (an unknown key to the reader).
 * Returns 1 when the index already holds the line: a snapshot recorded a
 * js_seq at or past it (docs/kvindex-snapshot.md#lines-in-this-order).
 */
static int
js_seq_skip(struct ingest *g, const struct kv_event *ev)
{
    for (size_t i = 0; i < ev->n_unknown; i++) {
        const struct kv_unknown *u = &ev->unknown[i];
        struct jscan j;
        uint64_t v;

        if (!kv_str_eq(u->key, "js_seq"))
            continue;
        jscan_init(&j, (const char *)u->val.p, u->val.n, NULL, NULL, 0);
        return jscan_u64(&j, UINT64_MAX, &v) == 0 && index_js_seq(g->ix, v);
    }
    return 0;
}

/* Applies the event of one line, with the warnings it calls for. */
static void
apply_event(struct ingest *g, const struct item *it)
{
    enum index_reject why = INDEX_REJ_NONE;

    if (it->env.model.p == NULL && g->o.default_model == NULL &&
        !g->warned_model && it->ev.type == KV_BLOCK_STORED) {
        /* Queries naming a model would then all find nothing. */
        log_warn("%s:%llu: events without \"model\" and no -m: they are "
                 "indexed under the model \"\" (give kvsub -m or kvindex "
                 "serve -m)",
                 it->name, (unsigned long long)it->lineno);
        g->warned_model = 1;
    }
    if (it->ev.n_unknown > 0 && js_seq_skip(g, &it->ev))
        return;
    /* The index counts what it applies and rejects (stats). */
    if (index_apply(g->ix, &it->env, &it->ev, &why) < 0) {
        log_debug("%s:%llu: %s rejected: %s", it->name,
                  (unsigned long long)it->lineno, kv_type_name(it->ev.type),
                  index_reject_name(why));
        if (why == INDEX_REJ_ORPHAN)
            warn_orphans(g);
        if (why == INDEX_REJ_NAME && ++g->bad_names <= MAX_LINE_WARNINGS)
            log_warn("%s:%llu: a pod, model, LoRA or medium name that is not "
                     "valid UTF-8 or holds U+0000: rejected",
                     it->name, (unsigned long long)it->lineno);
    }
    warn_resume(g);
}

/* Counts, reports and applies one item. */
static void
apply_item(struct ingest *g, const struct item *it)
{
    struct ingest_counts *c = &g->counts;

    if (it->kind != ITEM_ERROR && it->kind != ITEM_EOF)
        c->lines++;
    switch (it->kind) {
    case ITEM_EVENT:
        apply_event(g, it);
        break;
    case ITEM_SKIP:
        break;
    case ITEM_BAD:
        if (++c->bad_lines <= MAX_LINE_WARNINGS)
            log_warn("%s:%llu: %s%s", it->name, (unsigned long long)it->lineno,
                     it->msg,
                     c->bad_lines == MAX_LINE_WARNINGS
                         ? " (further bad lines are only counted)"
                         : "");
        break;
    case ITEM_LONG:
        if (++c->long_lines <= MAX_LINE_WARNINGS)
            log_warn("%s:%llu: line longer than --max-line (%zu bytes), "
                     "skipped",
                     it->name, (unsigned long long)it->lineno, g->o.max_line);
        break;
    case ITEM_FATAL:
        log_error("%s:%llu: %s", it->name, (unsigned long long)it->lineno,
                  it->msg);
        g->fatal = 1;
        break;
    case ITEM_ERROR:
        log_error("%s", it->msg);
        g->fatal |= it->fatal;
        break;
    case ITEM_EOF:
        log_info("%s: end of input after %llu lines", it->name,
                 (unsigned long long)it->lineno);
        break;
    }
}

/*
 * Applies a batch's items in order.  Prefetching what the next events
 * will read (their engine-map slots, then entries, then key slots, a few
 * items ahead) was measured and left out: 50 to 100 ns an event slower on
 * bench/60's stream, the lookups of the pods it needs costing more than
 * the misses it hid.  Measured again with the engine-map home slots alone,
 * 1 to 8 items ahead, the same parsed items applied to two indexes in
 * alternating chunks of 256: 4 to 6% slower, with the engine maps on huge
 * pages too.  em_find's time did not move with the prefetches (about 240
 * cycles a call, 2.3 calls an event), while plain loads of the same slots
 * moved half of it into the loop that made them.
 */
static void
apply_batch(struct ingest *g, const struct batch *b)
{
    if (b->n > 0)
        index_set_clock(g->ix, (double)cli_now_ms() / 1000.0);
    for (size_t i = 0; i < b->n && !g->fatal; i++)
        apply_item(g, &b->items[i]);
    if (b->end && !g->fatal)
        g->done = 1;
}

/* Waits until the input is readable.  Returns -1 when the server asked
 * the reader to stop. */
static int
reader_wait(struct ingest *g)
{
    struct pollfd p[2] = {{.fd = g->in.fd, .events = POLLIN},
                          {.fd = g->quit[0], .events = POLLIN}};

    while (poll(p, 2, -1) < 0)
        if (errno != EINTR)
            return -1;
    return p[1].revents ? -1 : 0;
}

/* Says whether the reader waits for input (or has ended): a turn waiting
 * for its next batch (next_batch) stops waiting then. */
static void
reader_idle(struct ingest *g, int idle)
{
    pthread_mutex_lock(&g->mu);
    g->idle = idle;
    if (idle)
        pthread_cond_signal(&g->ready);
    pthread_mutex_unlock(&g->mu);
}

/* Fills b: until it is full, the input would block with lines in b, or
 * nothing comes after it.  Returns -1 when the server asked to stop. */
static int
reader_fill(struct ingest *g, struct batch *b)
{
    int rc;

    while (!b->end && !batch_full(b)) {
        if (reader_step(g, b, 1))
            continue;
        if (b->end || b->n > 0)
            break;
        reader_idle(g, 1);
        rc = reader_wait(g);
        reader_idle(g, 0);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static void *
reader_main(void *arg)
{
    struct ingest *g = arg;
    struct batch *b;
    int end = 0, first;

    while (!end) {
        pthread_mutex_lock(&g->mu);
        while (g->count == RING && !g->stop)
            pthread_cond_wait(&g->cv, &g->mu);
        b = g->stop ? NULL : &g->ring[(g->head + g->count) % RING];
        pthread_mutex_unlock(&g->mu);
        if (b == NULL || reader_fill(g, b) < 0)
            break;
        end = b->end;
        pthread_mutex_lock(&g->mu);
        first = g->count++ == 0;
        pthread_cond_signal(&g->ready);
        pthread_mutex_unlock(&g->mu);
        /* The server waits on the pipe only after it found the ring empty
         * (turn_threaded); while it is not, the server finds this batch
         * itself.  A full pipe already wakes it. */
        if (first)
            (void)!write(g->wake[1], "", 1);
    }
    reader_idle(g, 1);
    input_close(&g->in);
    return NULL;
}

struct ingest *
ingest_new(const struct ingest_opts *o, struct kv_index *ix, char *err,
           size_t errlen)
{
    struct ingest *g = calloc(1, sizeof *g);

    if (g == NULL)
        goto fail;
    g->o = *o;
    g->ix = ix;
    g->in.fd = -1;
    g->in.stdin_flags = -1;
    g->in.files = o->files;
    g->wake[0] = g->wake[1] = g->quit[0] = g->quit[1] = -1;
    for (size_t i = 0; i < (o->reader_thread ? RING : 1); i++) {
        g->ring[i].items = malloc(BATCH_ITEMS * sizeof *g->ring[i].items);
        if (g->ring[i].items == NULL)
            goto fail;
    }
    return g;
fail:
    snprintf(err, errlen, "out of memory");
    ingest_free(g);
    return NULL;
}

int
ingest_start(struct ingest *g, char *err, size_t errlen)
{
    pthread_condattr_t ca;
    sigset_t all, old;
    int rc;

    if (!g->o.reader_thread)
        return 0;
    if (pipe2(g->wake, O_NONBLOCK | O_CLOEXEC) < 0 ||
        pipe2(g->quit, O_NONBLOCK | O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->ready, &ca);
    pthread_condattr_destroy(&ca);
    /* Signals stay with the server's thread, whose poll they wake. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&g->thread, NULL, reader_main, g);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "reader thread: %s", strerror(rc));
        return -1;
    }
    g->started = 1;
    return 0;
}

int
ingest_pollfd(const struct ingest *g)
{
    if (g->done || g->fatal)
        return -1;
    if (g->o.reader_thread)
        return g->wake[0];
    return g->in.fd;
}

/*
 * Waits (mu held) until the reader publishes a batch or waits for input,
 * or until start + slice_us.  Returns the oldest published batch, or NULL.
 */
static struct batch *
next_batch(struct ingest *g, long long start, long long slice_us)
{
    while (g->count == 0 && !g->idle) {
        long long end = start + slice_us;
        struct timespec ts;

        if (cli_now_us() >= end)
            break;
        ts.tv_sec = (time_t)(end / 1000000);
        ts.tv_nsec = (long)(end % 1000000) * 1000;
        pthread_cond_timedwait(&g->ready, &g->mu, &ts);
    }
    return g->count > 0 ? &g->ring[g->head] : NULL;
}

/*
 * The turn with a reader thread: the published batches, oldest first, for
 * the turn's whole slice while the reader is busy.  A ring of four batches
 * is soon empty; returning then would hand the loop back to the clients
 * after 1,024 lines however long they had taken (200 busy clients cut
 * ingest to 0.23 lines a query), so the turn waits for the next batch.
 */
static int
turn_threaded(struct ingest *g, long long start, long long slice_us)
{
    char drain[64];
    struct batch *b;
    int more;

    /* Emptied before the ring is looked at, so a batch published from now
     * on leaves the pipe readable. */
    while (read(g->wake[0], drain, sizeof drain) > 0)
        ;
    for (;;) {
        /* An empty ring ends the turn: the loop then sleeps on the pipe
         * (it would spin if it came back for a batch not yet there). */
        pthread_mutex_lock(&g->mu);
        b = next_batch(g, start, slice_us);
        pthread_mutex_unlock(&g->mu);
        if (b == NULL)
            return 0;
        apply_batch(g, b);
        batch_reset(b);
        pthread_mutex_lock(&g->mu);
        g->head = (g->head + 1) % RING;
        more = --g->count > 0;
        pthread_cond_signal(&g->cv);
        pthread_mutex_unlock(&g->mu);
        if (g->done || g->fatal)
            return 0;
        if (cli_now_us() - start >= slice_us)
            return more;
    }
}

int
ingest_turn(struct ingest *g, long long slice_us)
{
    long long start = cli_now_us();
    struct batch *b = &g->ring[0];
    int hot;

    if (g->done || g->fatal)
        return 0;
    if (g->o.reader_thread)
        return turn_threaded(g, start, slice_us);
    do {
        hot = reader_step(g, b, 0);
        apply_batch(g, b);
        batch_reset(b);
    } while (hot && !g->done && !g->fatal && cli_now_us() - start < slice_us);
    return hot && !g->done && !g->fatal;
}

int
ingest_done(const struct ingest *g)
{
    return g->done;
}

int
ingest_fatal(const struct ingest *g)
{
    return g->fatal;
}

void
ingest_counts(const struct ingest *g, struct ingest_counts *c)
{
    *c = g->counts;
}

void
ingest_free(struct ingest *g)
{
    if (g == NULL)
        return;
    if (g->started) {
        pthread_mutex_lock(&g->mu);
        g->stop = 1;
        pthread_cond_signal(&g->cv);
        pthread_mutex_unlock(&g->mu);
        (void)!write(g->quit[1], "", 1);
        pthread_join(g->thread, NULL);
        pthread_cond_destroy(&g->cv);
        pthread_cond_destroy(&g->ready);
        pthread_mutex_destroy(&g->mu);
    } else {
        input_close(&g->in);
    }
    for (size_t i = 0; i < RING; i++) {
        free(g->ring[i].items);
        arena_free(&g->ring[i].arena);
    }
    for (size_t i = 0; i < 2; i++) {
        if (g->wake[i] >= 0)
            close(g->wake[i]);
        if (g->quit[i] >= 0)
            close(g->quit[i]);
    }
    free(g);
}

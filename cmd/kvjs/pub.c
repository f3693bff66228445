/*
 * pub.c - `kvjs pub` (docs/cluster.md#publishing).
 *
 * The main thread reads lines, groups the lines of one engine batch and
 * publishes each group asynchronously.  libnats calls ack_handler on its
 * own thread for every acknowledgment or failure.  Every batch sent stays
 * in a window, in the order it was read, until it and all before it are
 * acknowledged, because a pod's batches must be stored in their order: a
 * replica that applies a batch before the one that stored its parent
 * block drops it as an orphan.  The window spans at most --max-pending
 * batches (win_wait), so that a lost batch is noticed while the batches
 * behind it are few.  When one fails, later ones may already be
 * stored; so the main thread stops, lets every batch in flight settle,
 * sends the first failed one under its own Nats-Msg-Id until the stream
 * takes it, and then every one after it again, in order, under a new id:
 * a copy the stream holds may precede the first failed one (stored too
 * early, or failed with its acknowledgment lost), and under its old id
 * the new copy would be dropped as a duplicate.  Applying a batch twice is
 * harmless; applying it out of order is not.
 */
#include "pub.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cli.h"
#include "event.h"
#include "ndjson_read.h"

/* Larger groups are split so a message stays under NATS's 1 MiB payload. */
#define GROUP_MAX (768u * 1024u)

enum { W_SENT, W_ACKED, W_FAILED, W_LOST };

/* A batch sent and not yet settled, in the order the batches were read. */
struct sent {
    natsMsg *msg; /* held by libnats while W_SENT, by the window otherwise */
    int state;
    int counted;       /* its first acknowledgment was counted */
    unsigned again;    /* times it was sent again after a failure */
    long long fail_ms; /* when it first failed, 0 if it never did */
};

struct pub {
    const struct js_opts *o;
    struct js_conn c;
    jsPubOptions popts;

    pthread_mutex_t mu;  /* guards everything down to last_err */
    pthread_cond_t news; /* an acknowledgment or a failure came */
    struct sent *win;    /* win[head..n): sent, oldest first */
    size_t head, n, cap;
    size_t nfailed;  /* entries W_FAILED */
    uint64_t acked;  /* distinct batches stored or found duplicate */
    uint64_t dups;   /* acknowledged as duplicates */
    uint64_t failed; /* given up on */
    uint64_t resent; /* batches sent again to restore the order */
    long long last_progress_ms;
    char last_err[256];

    /* The group being collected (main thread only). */
    struct buf group;
    struct buf key_pod;
    int has_rank, has_seq, has_ts, has_i;
    int64_t rank;
    uint64_t seq, i0;
    uint64_t nlines; /* lines in the group */
    double ts;
    const char *rec; /* type of the group's first record, or NULL */
    uint64_t batches, lines, bad;
    long long last_recover_ms;
};

/* The entry of msg, or NULL.  Acknowledgments come mostly in order, so
 * the search from the oldest entry is short. */
static struct sent *
win_find(struct pub *p, const natsMsg *msg)
{
    for (size_t k = p->head; k < p->n; k++)
        if (p->win[k].msg == msg)
            return &p->win[k];
    return NULL;
}

/*
 * Drops the settled entries at the front.  Caller holds mu and is the main
 * thread: only it moves entries, so its indices stay valid without mu.
 */
static void
win_slide(struct pub *p)
{
    while (p->head < p->n && (p->win[p->head].state == W_ACKED ||
                              p->win[p->head].state == W_LOST)) {
        natsMsg_Destroy(p->win[p->head].msg);
        p->head++;
    }
    if (p->head == p->n) {
        p->head = p->n = 0;
    } else if (p->head > p->cap / 2) {
        memmove(p->win, p->win + p->head, (p->n - p->head) * sizeof(*p->win));
        p->n -= p->head;
        p->head = 0;
    }
}

/* Appends a sent batch.  Returns 0 or -1 (out of memory). */
static int
win_push(struct pub *p, natsMsg *msg)
{
    int rc = 0;

    pthread_mutex_lock(&p->mu);
    if (p->n == p->cap) {
        size_t nc = p->cap ? p->cap * 2 : 256;
        struct sent *nv = realloc(p->win, nc * sizeof(*nv));

        if (nv == NULL)
            rc = -1;
        else {
            p->win = nv;
            p->cap = nc;
        }
    }
    if (rc == 0)
        p->win[p->n++] = (struct sent){msg, W_SENT, 0, 0, 0};
    win_slide(p);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

/* Marks e failed (caller holds mu). */
static void
mark_failed(struct pub *p, struct sent *e, long long now)
{
    e->state = W_FAILED;
    if (e->fail_ms == 0)
        e->fail_ms = now;
    p->nfailed++;
}

static void
ack_handler(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae,
            void *closure)
{
    struct pub *p = closure;
    struct sent *e;

    pthread_mutex_lock(&p->mu);
    p->last_progress_ms = cli_now_ms();
    e = win_find(p, msg);
    if (e == NULL || e->state != W_SENT) {
        /* Settled already (taken back as stalled): this answer is late. */
        pthread_mutex_unlock(&p->mu);
        return;
    }
    if (pa != NULL) {
        e->state = W_ACKED;
        if (!e->counted) {
            e->counted = 1;
            p->acked++;
            p->dups += pa->Duplicate ? 1 : 0;
        }
    } else {
        snprintf(p->last_err, sizeof(p->last_err), "%s",
                 pae && pae->ErrText ? pae->ErrText
                 : pae               ? natsStatus_GetText(pae->Err)
                                     : "no acknowledgment");
        mark_failed(p, e, cli_now_ms());
    }
    pthread_cond_signal(&p->news);
    pthread_mutex_unlock(&p->mu);
}

/* Names a batch given up on (why: after --ack-timeout, or why not). */
static void
give_up(struct pub *p, natsMsg *msg, int timed_out, const char *why)
{
    const char *id = NULL;

    natsMsgHeader_Get(msg, "Nats-Msg-Id", &id);
    if (timed_out)
        log_error("batch %s on %s not acknowledged within %llums: %s",
                  id ? id : "?", natsMsg_GetSubject(msg),
                  (unsigned long long)p->o->ack_timeout, why);
    else
        log_error("batch %s on %s not acknowledged: %s", id ? id : "?",
                  natsMsg_GetSubject(msg), why);
    p->failed++;
}

/*
 * Batches whose acknowledgment never came (the server holding them died)
 * are taken back from the library and count as failed.
 */
static void
reclaim_stalled(struct pub *p)
{
    natsMsgList pend = {0};
    long long now = cli_now_ms();
    long long quiet;

    pthread_mutex_lock(&p->mu);
    quiet = now - p->last_progress_ms;
    pthread_mutex_unlock(&p->mu);
    if (quiet < 2000 ||
        js_PublishAsyncGetPendingList(&pend, p->c.js) != NATS_OK)
        return;
    pthread_mutex_lock(&p->mu);
    for (int k = 0; k < pend.Count; k++) {
        struct sent *e = win_find(p, pend.Msgs[k]);

        if (e != NULL && e->state == W_SENT) {
            mark_failed(p, e, now - quiet);
            pend.Msgs[k] = NULL;
        }
    }
    snprintf(p->last_err, sizeof(p->last_err), "no acknowledgment");
    p->last_progress_ms = now;
    pthread_mutex_unlock(&p->mu);
    natsMsgList_Destroy(&pend);
}

/* Whether a batch is in flight (caller holds mu). */
static int
any_sent(const struct pub *p)
{
    for (size_t k = p->head; k < p->n; k++)
        if (p->win[k].state == W_SENT)
            return 1;
    return 0;
}

/* Waits up to 200 ms for acknowledgments, then takes back stalled ones. */
static void
settle_some(struct pub *p)
{
    jsPubOptions wait;

    jsPubOptions_Init(&wait);
    wait.MaxWait = 200;
    js_PublishAsyncComplete(p->c.js, &wait);
    reclaim_stalled(p);
}

/* Gives the id of a batch sent again after a failure a new suffix:
 * ".again<N>". */
static int
id_again(natsMsg *m, unsigned n)
{
    const char *id = NULL;
    char buf[600];
    size_t len;

    if (natsMsgHeader_Get(m, "Nats-Msg-Id", &id) != NATS_OK || id == NULL)
        return -1;
    snprintf(buf, sizeof(buf), "%s", id);
    len = strlen(buf);
    /* A later overtake replaces the suffix of the earlier one. */
    for (size_t k = len; k-- > 0;)
        if (buf[k] == '.') {
            if (strncmp(buf + k, ".again", 6) == 0)
                len = k;
            break;
        }
    snprintf(buf + len, sizeof(buf) - len, ".again%u", n);
    return natsMsgHeader_Set(m, "Nats-Msg-Id", buf) == NATS_OK ? 0 : -1;
}

/*
 * Sends entry k again under a new id (the window holds it; mu not held).
 * New even when it failed: a batch whose acknowledgment was lost may be
 * stored, before the one it follows, and a copy under the old id would be
 * dropped.  Returns 0, or -1 when the library refused it (then it is
 * failed again).
 */
static int
resend(struct pub *p, size_t k)
{
    natsMsg *m;
    natsStatus st;
    int rc = 0;

    pthread_mutex_lock(&p->mu);
    m = p->win[k].msg;
    if (id_again(m, ++p->win[k].again) == -1)
        log_warn("cannot renew a message id; sending it under the old one");
    if (p->win[k].state == W_FAILED)
        p->nfailed--;
    p->win[k].state = W_SENT;
    p->resent++;
    pthread_mutex_unlock(&p->mu);
    st = js_PublishMsgAsync(p->c.js, &m, &p->popts);
    if (st != NATS_OK) {
        pthread_mutex_lock(&p->mu);
        mark_failed(p, &p->win[k], cli_now_ms());
        pthread_mutex_unlock(&p->mu);
        rc = -1;
    }
    return rc;
}

/*
 * Sends failed entry k alone and waits for its acknowledgment (mu not
 * held): once the stream takes it, whatever this connection sent before it
 * has been stored or dropped, so no old copy can land after the batches
 * sent again behind it.  Returns 0, or -1 when it failed again.
 */
static int
probe(struct pub *p, size_t k)
{
    jsPubOptions po = p->popts;
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    natsStatus st;

    po.MaxWait = 2000;
    st = js_PublishMsg(&pa, p->c.js, p->win[k].msg, &po, &jerr);
    pthread_mutex_lock(&p->mu);
    p->resent++;
    if (st == NATS_OK) {
        p->win[k].state = W_ACKED;
        p->nfailed--;
        if (!p->win[k].counted) {
            p->win[k].counted = 1;
            p->acked++;
            p->dups += pa->Duplicate ? 1 : 0;
        }
    } else {
        conn_strerror(st, "publish", p->last_err, sizeof(p->last_err));
        log_debug("the stream does not take batch %zu yet: %s", k, p->last_err);
    }
    p->last_progress_ms = cli_now_ms();
    pthread_mutex_unlock(&p->mu);
    jsPubAck_Destroy(pa);
    return st == NATS_OK ? 0 : -1;
}

/*
 * After a failure: lets every batch in flight settle, gives up on those
 * failed for longer than --ack-timeout, sends the first failed one alone
 * until the stream takes it, then every batch after it again, in order.
 * At most every 100 ms, so that a server that refuses everything is not
 * hammered.
 */
static void
recover(struct pub *p)
{
    long long now;
    size_t first;

    for (;;) {
        int busy;

        pthread_mutex_lock(&p->mu);
        busy = any_sent(p);
        pthread_mutex_unlock(&p->mu);
        if (!busy || natsConnection_IsClosed(p->c.nc))
            break;
        settle_some(p);
    }
    now = cli_now_ms();
    if (now - p->last_recover_ms < 100)
        usleep((useconds_t)(100 - (now - p->last_recover_ms)) * 1000);
    p->last_recover_ms = now = cli_now_ms();
    pthread_mutex_lock(&p->mu);
    first = p->head;
    while (first < p->n && p->win[first].state != W_FAILED)
        first++;
    for (size_t k = first; k < p->n; k++) {
        struct sent *e = &p->win[k];

        if (e->state == W_FAILED &&
            now - e->fail_ms >= (long long)p->o->ack_timeout) {
            give_up(p, e->msg, 1, p->last_err);
            e->state = W_LOST;
            p->nfailed--;
        }
    }
    while (first < p->n && p->win[first].state == W_LOST)
        first++;
    pthread_mutex_unlock(&p->mu);
    if (first < p->n && probe(p, first) == -1)
        return;
    for (size_t k = first + 1; k < p->n; k++) {
        int lost;

        pthread_mutex_lock(&p->mu);
        lost = p->win[k].state == W_LOST;
        pthread_mutex_unlock(&p->mu);
        if (!lost && resend(p, k) == -1)
            break;
    }
    pthread_mutex_lock(&p->mu);
    win_slide(p);
    pthread_mutex_unlock(&p->mu);
}

/*
 * The connection is closed for good (the server denied a permission, or
 * every reconnect failed): says why, then names every batch not
 * acknowledged and gives up on it.
 */
static void
abandon_all(struct pub *p)
{
    natsMsgList pend = {0};
    char why[400];

    if (!conn_denied(why, sizeof(why)))
        snprintf(why, sizeof(why), "the connection to NATS is closed");
    log_error("%s", why);
    if (js_PublishAsyncGetPendingList(&pend, p->c.js) == NATS_OK)
        for (int k = 0; k < pend.Count; k++)
            pend.Msgs[k] = NULL; /* the window names and frees them */
    natsMsgList_Destroy(&pend);
    pthread_mutex_lock(&p->mu);
    for (size_t k = p->head; k < p->n; k++) {
        struct sent *e = &p->win[k];

        if (!e->counted && e->state != W_LOST)
            give_up(p, e->msg, 0, "the connection is closed");
        e->state = W_LOST;
    }
    p->nfailed = 0;
    win_slide(p);
    pthread_mutex_unlock(&p->mu);
}

/* Whether a failed batch waits to be sent again. */
static int
has_failed(struct pub *p)
{
    int yes;

    pthread_mutex_lock(&p->mu);
    yes = p->nfailed > 0;
    pthread_mutex_unlock(&p->mu);
    return yes;
}

/* Whether the window spans --max-pending batches (caller holds mu). */
static int
win_full(const struct pub *p)
{
    return p->n - p->head >= (size_t)p->o->max_pending;
}

/*
 * Waits while the window spans --max-pending batches.  libnats bounds only
 * the batches in flight; a batch lost while later ones are acknowledged
 * (written just before the connection broke) stays in flight alone, and
 * without this bound the window behind it would grow until the input
 * ended, the stream lacking the batch all that time and every batch after
 * it sent again at the end.  Stopping here lets the later ones settle, so
 * that the acknowledgments stop, the lost batch is taken back after 2 s
 * and recover() sends again at most --max-pending batches.  In the common
 * case the window is full because the batches in flight are, and the next
 * acknowledgment frees a place: waiting for that one, not for all of them
 * (settle_some), keeps the flow steady.
 */
static void
win_wait(struct pub *p)
{
    for (;;) {
        long long end = cli_now_ms() + 100; /* news's clock is monotonic */
        struct timespec until = {(time_t)(end / 1000),
                                 (long)(end % 1000) * 1000000L};
        int full;

        pthread_mutex_lock(&p->mu);
        win_slide(p);
        if (win_full(p) && p->nfailed == 0) {
            pthread_cond_timedwait(&p->news, &p->mu, &until);
            win_slide(p);
        }
        full = win_full(p);
        pthread_mutex_unlock(&p->mu);
        if (!full || cli_signal || natsConnection_IsClosed(p->c.nc))
            return;
        reclaim_stalled(p);
        if (has_failed(p))
            recover(p);
    }
}

/* Publishes one message, waiting while too many are in flight. */
static int
publish_msg(struct pub *p, natsMsg *m)
{
    natsMsg *held = m;

    win_wait(p);
    if (win_push(p, held) == -1) {
        log_error("out of memory");
        natsMsg_Destroy(m);
        p->failed++;
        return -1;
    }
    for (;;) {
        natsStatus s = js_PublishMsgAsync(p->c.js, &m, &p->popts);

        if (s == NATS_OK)
            return 0;
        if (s == NATS_CONNECTION_CLOSED)
            return -1; /* named with the others by abandon_all */
        if (cli_signal) {
            pthread_mutex_lock(&p->mu);
            mark_failed(p, win_find(p, held), cli_now_ms());
            pthread_mutex_unlock(&p->mu);
            return -1;
        }
        if (s != NATS_TIMEOUT) {
            char err[256];

            /*
             * A write that failed as the connection broke (ECONNRESET,
             * EPIPE) reaches the publisher before libnats has noticed the
             * loss and begun to reconnect.  The batch failed like one
             * whose acknowledgment never came: it is sent again, in order,
             * until the stream takes it or --ack-timeout runs out.
             */
            conn_strerror(s, "publish", err, sizeof(err));
            log_debug("%s; the batch is sent again", err);
            pthread_mutex_lock(&p->mu);
            snprintf(p->last_err, sizeof(p->last_err), "%s", err);
            mark_failed(p, win_find(p, held), cli_now_ms());
            pthread_mutex_unlock(&p->mu);
            return 0;
        }
        /* Too many in flight: let some settle. */
        reclaim_stalled(p);
        if (has_failed(p)) {
            /* The order matters: this one goes after the failed ones. */
            pthread_mutex_lock(&p->mu);
            mark_failed(p, win_find(p, held), cli_now_ms());
            pthread_mutex_unlock(&p->mu);
            recover(p);
            return 0;
        }
    }
}

static void
put_id_part(struct buf *b, int has, int is_double, double d, uint64_t u)
{
    buf_putc(b, '.');
    if (!has)
        buf_putc(b, 'n');
    else if (is_double)
        buf_put_double(b, d);
    else
        buf_put_u64(b, u);
}

/* Publishes the collected group, if any, and starts an empty one. */
static int
group_flush(struct pub *p)
{
    char token[512];
    struct buf subj = {0}, id = {0};
    natsMsg *m = NULL;
    int rc = -1;

    if (p->group.len == 0)
        return 0;
    if (conn_pod_token(p->key_pod.p, p->key_pod.len, token, sizeof(token))) {
        log_error("pod name too long for a subject: %.*s", (int)p->key_pod.len,
                  p->key_pod.p);
        goto out;
    }
    buf_puts(&subj, p->o->prefix);
    buf_putc(&subj, '.');
    buf_puts(&subj, token);
    buf_putc(&subj, '\0');
    buf_puts(&id, token);
    buf_putc(&id, '.');
    if (p->has_rank)
        buf_put_i64(&id, p->rank);
    else
        buf_putc(&id, 'n');
    put_id_part(&id, p->has_seq, 0, 0, p->seq);
    put_id_part(&id, p->has_ts, 1, p->ts, 0);
    put_id_part(&id, p->has_i, 0, 0, p->i0);
    /*
     * The line count keeps a part of a batch from taking the whole batch's
     * id: a relay whose kvsub died in the middle of a batch publishes the
     * lines it got, and the restarted relay's whole batch must not be
     * dropped as their duplicate.
     */
    put_id_part(&id, 1, 0, 0, p->nlines);
    if (p->rec != NULL) {
        buf_putc(&id, '.');
        buf_puts(&id, p->rec);
    }
    buf_putc(&id, '\0');
    if (natsMsg_Create(&m, (const char *)subj.p, NULL, (const char *)p->group.p,
                       (int)p->group.len) != NATS_OK ||
        natsMsgHeader_Set(m, "Nats-Msg-Id", (const char *)id.p) != NATS_OK) {
        log_error("cannot build a message: out of memory");
        natsMsg_Destroy(m);
        goto out;
    }
    p->batches++;
    if (publish_msg(p, m) == -1)
        goto out;
    /*
     * A failure stops the reading until the order is restored: a batch
     * read later must not be stored before the failed one.
     */
    if (has_failed(p))
        recover(p);
    rc = 0;
out:
    buf_clear(&p->group);
    buf_free(&subj);
    buf_free(&id);
    return rc;
}

static int
same_batch(const struct pub *p, const struct kv_env *env)
{
    return p->key_pod.len == env->pod.n &&
           memcmp(p->key_pod.p, env->pod.p, env->pod.n) == 0 &&
           p->has_rank == env->has_rank &&
           (!env->has_rank || p->rank == env->rank) &&
           p->has_seq == env->has_seq && (!env->has_seq || p->seq == env->seq);
}

/* Adds a parsed line to the group, publishing the previous group first. */
static int
group_add(struct pub *p, const char *line, size_t len, const struct kv_env *env,
          const struct kv_event *ev)
{
    if (p->group.len > 0 &&
        (!same_batch(p, env) || p->group.len + len >= GROUP_MAX))
        if (group_flush(p) == -1)
            return -1;
    if (p->group.len == 0) {
        buf_clear(&p->key_pod);
        buf_put(&p->key_pod, env->pod.p, env->pod.n);
        p->has_rank = env->has_rank;
        p->rank = env->rank;
        p->has_seq = env->has_seq;
        p->seq = env->seq;
        p->has_ts = p->has_i = 0;
        p->nlines = 0;
        p->rec = NULL;
    }
    if (!p->has_ts && env->has_ts) {
        p->has_ts = 1;
        p->ts = env->ts;
    }
    if (!p->has_i && env->has_i) {
        p->has_i = 1;
        p->i0 = env->i;
    }
    if (p->rec == NULL && !kv_type_is_engine(ev->type))
        p->rec = kv_type_name(ev->type);
    buf_put(&p->group, line, len);
    buf_putc(&p->group, '\n');
    p->nlines++;
    return 0;
}

/* Returns 0, 1 for a line skipped, -1 to stop. */
static int
take_line(struct pub *p, struct arena *arena, const char *line, size_t len)
{
    struct kv_env env;
    struct kv_event ev;
    char err[256];
    int rc;

    p->lines++;
    if (len > 0 && line[len - 1] == '\r')
        len--;
    arena_reset(arena);
    rc = ndjson_parse_line(line, len, arena, &env, &ev, err, sizeof(err));
    if (rc == NDJSON_SKIP)
        return 1;
    if (rc == NDJSON_BAD) {
        p->bad++;
        log_warn("line %llu: %s; skipped", (unsigned long long)p->lines, err);
        return 1;
    }
    if (rc == NDJSON_FATAL) {
        log_error("line %llu: %s", (unsigned long long)p->lines, err);
        return -1;
    }
    return group_add(p, line, len, &env, &ev);
}

/* Takes every complete line in in[0..*n) and keeps the rest. */
static int
take_lines(struct pub *p, struct arena *arena, char *in, size_t *n)
{
    size_t start = 0;

    for (;;) {
        char *nl = memchr(in + start, '\n', *n - start);

        if (nl == NULL)
            break;
        if (take_line(p, arena, in + start, (size_t)(nl - (in + start))) == -1)
            return -1;
        start = (size_t)(nl - in) + 1;
    }
    memmove(in, in + start, *n - start);
    *n -= start;
    return 0;
}

/*
 * Waits up to ms for stdin or a signal.  Returns 1 when stdin is readable
 * (or at its end), 0 on timeout.
 */
static int
wait_input(int ms)
{
    struct pollfd fds[2] = {{0, POLLIN, 0}, {cli_signal_fd(), POLLIN, 0}};
    int n = poll(fds, 2, ms);

    if (n > 0 && (fds[1].revents & POLLIN))
        cli_signal_drain();
    return n > 0 && fds[0].revents != 0;
}

/* The reading loop.  Returns 0 at end of input, -1 on a fatal error. */
static int
read_input(struct pub *p)
{
    size_t cap = 1u << 20, n = 0;
    char *in = malloc(cap);
    struct arena arena = {0};
    int rc = -1;

    if (in == NULL)
        goto out;
    while (!cli_signal) {
        ssize_t r;

        if (natsConnection_IsClosed(p->c.nc))
            goto out;
        if (!wait_input(0)) {
            /* Idle: the batch is complete unless more comes right away. */
            if (!wait_input((int)p->o->linger_ms) && group_flush(p) == -1)
                goto out;
            if (has_failed(p))
                recover(p);
            if (!wait_input(100))
                continue;
        }
        if (n == cap) {
            char *ni = realloc(in, cap * 2);

            if (ni == NULL)
                goto out;
            in = ni;
            cap *= 2;
        }
        r = read(0, in + n, cap - n);
        if (r == -1 && errno == EINTR)
            continue;
        if (r == -1) {
            log_error("stdin: %s", strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (take_lines(p, &arena, in, &n) == -1)
            goto out;
    }
    if (n > 0 && take_line(p, &arena, in, n) == -1)
        goto out;
    rc = group_flush(p);
out:
    arena_free(&arena);
    free(in);
    return rc;
}

/* Waits until every batch is acknowledged or given up on. */
static void
drain(struct pub *p)
{
    for (;;) {
        int busy;

        if (natsConnection_IsClosed(p->c.nc)) {
            abandon_all(p);
            return;
        }
        if (has_failed(p))
            recover(p);
        pthread_mutex_lock(&p->mu);
        win_slide(p);
        busy = p->n > p->head;
        pthread_mutex_unlock(&p->mu);
        if (!busy)
            return;
        settle_some(p);
    }
}

static void
print_stats(struct pub *p)
{
    pthread_mutex_lock(&p->mu);
    fprintf(stderr,
            "{\"lines\":%llu,\"bad_lines\":%llu,\"batches\":%llu,"
            "\"acked\":%llu,\"duplicates\":%llu,\"failed\":%llu,"
            "\"resent\":%llu}\n",
            (unsigned long long)p->lines, (unsigned long long)p->bad,
            (unsigned long long)p->batches, (unsigned long long)p->acked,
            (unsigned long long)p->dups, (unsigned long long)p->failed,
            (unsigned long long)p->resent);
    pthread_mutex_unlock(&p->mu);
}

int
pub_run(const struct js_opts *o)
{
    struct pub p = {0};
    jsOptions jo;
    pthread_condattr_t ca;
    char err[512];
    int rc = 1;

    p.o = o;
    pthread_mutex_init(&p.mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p.news, &ca);
    pthread_condattr_destroy(&ca);
    p.last_progress_ms = cli_now_ms();
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = o->max_pending;
    jo.PublishAsync.AckHandler = ack_handler;
    jo.PublishAsync.AckHandlerClosure = &p;
    jsPubOptions_Init(&p.popts);
    p.popts.ExpectStream = o->stream;
    if (conn_open(&p.c, o, &jo, err, sizeof(err)) == -1 ||
        conn_stream_ensure(&p.c, o, err, sizeof(err)) == -1) {
        log_error("%s", err);
        goto out;
    }
    rc = read_input(&p) == -1 ? 1 : 0;
    drain(&p);
    if (p.failed > 0) {
        log_error("%llu of %llu batches not acknowledged",
                  (unsigned long long)p.failed, (unsigned long long)p.batches);
        rc = 1;
    }
    if (o->stats)
        print_stats(&p);
    if (rc == 0 && cli_signal)
        rc = 128 + cli_signal;
out:
    /* Acknowledgments of batches taken back as stalled may still come. */
    conn_drain(&p.c);
    conn_close(&p.c);
    buf_free(&p.group);
    buf_free(&p.key_pod);
    for (size_t k = p.head; k < p.n; k++)
        if (p.win[k].state != W_SENT)
            natsMsg_Destroy(p.win[k].msg);
    free(p.win);
    pthread_cond_destroy(&p.news);
    pthread_mutex_destroy(&p.mu);
    return rc;
}

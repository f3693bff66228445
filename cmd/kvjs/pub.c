/*
 * pub.c - `kvjs pub` (docs/cluster.md#publishing).
 *
 * The main thread reads lines, groups the lines of one engine batch and
 * publishes each group asynchronously.  libnats calls ack_handler on its
 * own thread for every acknowledgment or failure; a failed batch is queued
 * and the main thread sends it again until it is acknowledged or
 * --ack-timeout has passed.  Resending is safe because the stream drops a
 * second copy with the same Nats-Msg-Id.
 */
#include "pub.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "cli.h"
#include "event.h"
#include "ndjson_read.h"

/* Larger groups are split so a message stays under NATS's 1 MiB payload. */
#define GROUP_MAX (768u * 1024u)

/* A batch that failed once, with when it first failed. */
struct retry {
    natsMsg *msg;
    long long first_ms;
};

struct pub {
    const struct js_opts *o;
    struct js_conn c;
    jsPubOptions popts;

    pthread_mutex_t mu;  /* guards everything down to last_err */
    struct retry *queue; /* failed, waiting to be sent again (owned) */
    size_t nqueue, capqueue;
    struct retry *tries; /* sent again, waiting for an answer */
    size_t ntries, captries;
    uint64_t sent;   /* publish calls that succeeded, resends included */
    uint64_t done;   /* acknowledgments and failures reported */
    uint64_t acked;  /* distinct batches stored or found duplicate */
    uint64_t dups;   /* acknowledged as duplicates */
    uint64_t failed; /* given up on */
    long long last_progress_ms;
    char last_err[256];

    /* The group being collected (main thread only). */
    struct buf group;
    struct buf key_pod;
    int has_rank, has_seq, has_ts, has_i;
    int64_t rank;
    uint64_t seq, i0;
    double ts;
    const char *rec; /* type of the group's first record, or NULL */
    uint64_t batches, lines, bad;
};

static int
retry_push(struct retry **v, size_t *n, size_t *cap, struct retry r)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        struct retry *nv = realloc(*v, nc * sizeof(*nv));

        if (nv == NULL)
            return -1;
        *v = nv;
        *cap = nc;
    }
    (*v)[(*n)++] = r;
    return 0;
}

/* Removes msg from tries; returns when it first failed, or 0. */
static long long
tries_take(struct pub *p, const natsMsg *msg)
{
    for (size_t k = 0; k < p->ntries; k++) {
        if (p->tries[k].msg == msg) {
            long long t = p->tries[k].first_ms;

            p->tries[k] = p->tries[--p->ntries];
            return t;
        }
    }
    return 0;
}

static void
ack_handler(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae,
            void *closure)
{
    struct pub *p = closure;
    long long first;

    pthread_mutex_lock(&p->mu);
    p->done++;
    p->last_progress_ms = cli_now_ms();
    first = tries_take(p, msg);
    if (pa != NULL) {
        p->acked++;
        p->dups += pa->Duplicate ? 1 : 0;
        natsMsg_Destroy(msg);
    } else {
        struct retry r = {msg, first ? first : cli_now_ms()};

        snprintf(p->last_err, sizeof(p->last_err), "%s",
                 pae && pae->ErrText ? pae->ErrText
                 : pae               ? natsStatus_GetText(pae->Err)
                                     : "no acknowledgment");
        if (retry_push(&p->queue, &p->nqueue, &p->capqueue, r) == -1) {
            p->failed++;
            natsMsg_Destroy(msg);
        }
    }
    pthread_mutex_unlock(&p->mu);
}

static void
give_up(struct pub *p, natsMsg *msg, const char *why)
{
    const char *id = NULL;

    natsMsgHeader_Get(msg, "Nats-Msg-Id", &id);
    log_error("batch %s on %s not acknowledged within %llums: %s",
              id ? id : "?", natsMsg_GetSubject(msg),
              (unsigned long long)p->o->ack_timeout, why);
    pthread_mutex_lock(&p->mu);
    p->failed++;
    pthread_mutex_unlock(&p->mu);
    natsMsg_Destroy(msg);
}

/* Sends the failed batches again, or gives up on those past the timeout. */
static void
retry_pump(struct pub *p)
{
    struct retry *q;
    size_t n;
    long long now = cli_now_ms();
    char why[256];

    pthread_mutex_lock(&p->mu);
    if (p->nqueue == 0) {
        pthread_mutex_unlock(&p->mu);
        return;
    }
    q = p->queue;
    n = p->nqueue;
    p->queue = NULL;
    p->nqueue = p->capqueue = 0;
    snprintf(why, sizeof(why), "%s", p->last_err);
    pthread_mutex_unlock(&p->mu);
    for (size_t k = 0; k < n; k++) {
        natsMsg *m = q[k].msg;
        natsStatus s;

        if (now - q[k].first_ms >= (long long)p->o->ack_timeout) {
            give_up(p, m, why);
            continue;
        }
        pthread_mutex_lock(&p->mu);
        retry_push(&p->tries, &p->ntries, &p->captries, q[k]);
        p->sent++;
        pthread_mutex_unlock(&p->mu);
        s = js_PublishMsgAsync(p->c.js, &m, &p->popts);
        if (s != NATS_OK) {
            pthread_mutex_lock(&p->mu);
            tries_take(p, m);
            p->sent--;
            retry_push(&p->queue, &p->nqueue, &p->capqueue, q[k]);
            pthread_mutex_unlock(&p->mu);
        }
    }
    free(q);
}

/*
 * Batches whose acknowledgment never came (the server holding them died)
 * are taken back from the library and queued to be sent again.
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
        long long first = tries_take(p, pend.Msgs[k]);
        struct retry r = {pend.Msgs[k], first ? first : now - quiet};

        p->done++;
        if (retry_push(&p->queue, &p->nqueue, &p->capqueue, r) == 0)
            pend.Msgs[k] = NULL;
    }
    snprintf(p->last_err, sizeof(p->last_err), "no acknowledgment");
    p->last_progress_ms = now;
    pthread_mutex_unlock(&p->mu);
    natsMsgList_Destroy(&pend);
}

/* Publishes one message, waiting while too many are in flight. */
static int
publish_msg(struct pub *p, natsMsg *m)
{
    for (;;) {
        natsStatus s;

        pthread_mutex_lock(&p->mu);
        p->sent++;
        pthread_mutex_unlock(&p->mu);
        s = js_PublishMsgAsync(p->c.js, &m, &p->popts);
        if (s == NATS_OK)
            return 0;
        pthread_mutex_lock(&p->mu);
        p->sent--;
        pthread_mutex_unlock(&p->mu);
        if (s != NATS_TIMEOUT || cli_signal) {
            char err[512];

            conn_strerror(s, "publish", err, sizeof(err));
            log_error("%s", err);
            natsMsg_Destroy(m);
            return -1;
        }
        retry_pump(p);
        reclaim_stalled(p);
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
    if (publish_msg(p, m) == -1)
        goto out;
    p->batches++;
    /*
     * Failed batches are resent between batches too, not only when input
     * pauses: under steady input they would otherwise wait until
     * --ack-timeout and be given up without a second try.
     */
    retry_pump(p);
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

        if (!wait_input(0)) {
            /* Idle: the batch is complete unless more comes right away. */
            if (!wait_input((int)p->o->linger_ms) && group_flush(p) == -1)
                goto out;
            retry_pump(p);
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
        jsPubOptions wait;
        int busy;

        retry_pump(p);
        pthread_mutex_lock(&p->mu);
        busy = p->sent > p->done || p->nqueue > 0;
        pthread_mutex_unlock(&p->mu);
        if (!busy)
            return;
        jsPubOptions_Init(&wait);
        wait.MaxWait = 200;
        js_PublishAsyncComplete(p->c.js, &wait);
        reclaim_stalled(p);
    }
}

static void
print_stats(struct pub *p)
{
    pthread_mutex_lock(&p->mu);
    fprintf(stderr,
            "{\"lines\":%llu,\"bad_lines\":%llu,\"batches\":%llu,"
            "\"acked\":%llu,\"duplicates\":%llu,\"failed\":%llu}\n",
            (unsigned long long)p->lines, (unsigned long long)p->bad,
            (unsigned long long)p->batches, (unsigned long long)p->acked,
            (unsigned long long)p->dups, (unsigned long long)p->failed);
    pthread_mutex_unlock(&p->mu);
}

int
pub_run(const struct js_opts *o)
{
    struct pub p = {0};
    jsOptions jo;
    char err[512];
    int rc = 1;

    p.o = o;
    pthread_mutex_init(&p.mu, NULL);
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
    conn_close(&p.c);
    buf_free(&p.group);
    buf_free(&p.key_pod);
    free(p.queue);
    free(p.tries);
    pthread_mutex_destroy(&p.mu);
    return rc;
}

/*
 * sub.c - `kvjs sub` and `kvjs info` (docs/cluster.md#reading-the-stream).
 *
 * A pull consumer fetches messages in batches; their lines are checked
 * with the NDJSON reader, written with "js_seq" added, flushed, and only
 * then acknowledged, so a consumer killed at any point resumes (on its
 * durable) with nothing lost: at worst the lines of one fetch come twice.
 */
#include "sub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "cli.h"
#include "event.h"
#include "ndjson_read.h"
#include "parse.h"
#include "seqwin.h"

/* How long a consumer's creation may take (consumer_find_or_add). */
#define CREATE_WAIT_MS 20000

struct sub {
    const struct js_opts *o;
    struct js_conn c;
    jsStreamInfo *si; /* the stream at start (owned) */
    natsSubscription *sub;
    char *consumer; /* its name (owned) */
    int ephemeral;
    int ack_all;      /* the consumer's policy: one ack covers what precedes */
    int64_t until_ns; /* 0: none */
    struct cli_out out;
    struct arena arena;
    const char *filter;    /* the consumer's subject filter (borrowed) */
    struct seqwin written; /* stream sequences this run has handled */
    int dseq_known;        /* last_dseq holds; 0 after a message without
                              metadata */
    uint64_t last_dseq;    /* the consumer's last delivery */
    int64_t held;          /* unacknowledged when the consumer was opened */
    char why[96];          /* why consumer_restart runs, for its warning */
    uint64_t messages, lines, skipped, again, rereads;
    uint64_t last_pending; /* NumPending after the last message taken */
};

int
sub_time_parse(const char *s, int64_t *ns)
{
    struct tm tm = {0};
    const char *rest;
    char *end;

    if (s[0] == '@') {
        double v = strtod(s + 1, &end);

        if (end == s + 1 || *end != '\0' || v < 0)
            return -1;
        *ns = (int64_t)(v * 1e9);
        return 0;
    }
    if (s[0] == '-') {
        uint64_t ms;
        struct timespec now;

        if (parse_duration_ms(s + 1, &ms) == -1)
            return -1;
        clock_gettime(CLOCK_REALTIME, &now);
        *ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec -
              (int64_t)ms * 1000000;
        return 0;
    }
    rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (rest == NULL)
        return -1;
    *ns = (int64_t)timegm(&tm) * 1000000000;
    if (*rest == '.') {
        double frac = strtod(rest, &end);

        *ns += (int64_t)(frac * 1e9);
        rest = end;
    }
    if (*rest == 'Z')
        rest++;
    return *rest == '\0' ? 0 : -1;
}

/* Fills the consumer's start position from --from.  Returns 0 or -1. */
static int
config_start(jsConsumerConfig *cc, const char *from, char *err, size_t errlen)
{
    uint64_t seq;

    if (from == NULL || strcmp(from, "first") == 0) {
        cc->DeliverPolicy = js_DeliverAll;
    } else if (strcmp(from, "last") == 0) {
        cc->DeliverPolicy = js_DeliverLast;
    } else if (strcmp(from, "new") == 0) {
        cc->DeliverPolicy = js_DeliverNew;
    } else if (parse_u64(from, 1, UINT64_MAX, &seq) == 0) {
        cc->DeliverPolicy = js_DeliverByStartSequence;
        cc->OptStartSeq = seq;
    } else if (sub_time_parse(from, &cc->OptStartTime) == 0) {
        cc->DeliverPolicy = js_DeliverByStartTime;
    } else {
        snprintf(err, errlen,
                 "--from %s: not first, last, new, a sequence number or a "
                 "time",
                 from);
        return -1;
    }
    return 0;
}

int
sub_from_check(const char *from)
{
    jsConsumerConfig cc;
    char err[8];

    jsConsumerConfig_Init(&cc);
    return config_start(&cc, from, err, sizeof(err));
}

/*
 * The store time of the first message at or after seq (messages may have
 * been deleted), with its sequence in *at.  Returns 0, or -1 when none
 * exists before end.
 */
static int
msg_time_from(struct sub *s, uint64_t seq, uint64_t end, uint64_t *at,
              int64_t *ns)
{
    for (; seq < end; seq++) {
        natsMsg *m = NULL;

        if (js_GetMsg(&m, s->c.js, s->o->stream, seq, NULL, NULL) != NATS_OK)
            continue;
        *ns = natsMsg_GetTime(m);
        *at = seq;
        natsMsg_Destroy(m);
        return 0;
    }
    return -1;
}

/*
 * The first sequence stored at or after ns, by binary search over the
 * stream (log2 of its length in round trips).  The server's own start-time
 * lookup (DeliverByStartTime) is not used: in the test suite, nats-server
 * 2.9 repeatedly reported nothing pending for a window that held 20
 * messages.
 */
static uint64_t
time_to_seq(struct sub *s, int64_t ns)
{
    uint64_t lo = s->si->State.FirstSeq, hi = s->si->State.LastSeq + 1;

    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2, at;
        int64_t t;

        if (msg_time_from(s, mid, hi, &at, &t) == -1 || t >= ns)
            hi = mid;
        else
            lo = at + 1;
    }
    return lo > 0 ? lo : 1; /* an empty stream reports FirstSeq 0 */
}

/*
 * The consumer --durable, --from, --ack-wait and --pod describe; from
 * stream sequence restart instead of --from when restart is not 0.
 */
static int
consumer_config(struct sub *s, uint64_t restart, jsConsumerConfig *cc,
                char *err, size_t errlen)
{
    const struct js_opts *o = s->o;

    jsConsumerConfig_Init(cc);
    cc->Durable = o->durable;
    /*
     * Each message is acknowledged on its own, after it was written and
     * flushed.  Under ack-all one ack per fetch was cheaper, but it also
     * covers messages a reader killed earlier had fetched and never
     * written: a durable resumed before their ack wait ran out fetched the
     * next ones, acknowledged them, and those were lost.
     */
    cc->AckPolicy = js_AckExplicit;
    cc->AckWait = (int64_t)o->ack_wait_ms * 1000000;
    cc->MaxAckPending = 65536;
    cc->FilterSubject = s->filter;
    if (o->durable == NULL) {
        cc->InactiveThreshold = (int64_t)60 * 1000000000;
        /*
         * An ephemeral consumer of a replicated stream is replicated like
         * the stream, as a durable is by default.  nats-server 2.9 (Debian
         * 12's, up to 2.11) otherwise places it on one server, drawn at
         * random among the stream's, down ones included (nats-server PR
         * #7165): with one server of three down, one creation in three
         * timed out, and five in a row failed the reader.  Replicated, it
         * needs only a quorum of them.
         */
        if (s->si != NULL && s->si->Config != NULL &&
            s->si->Config->Replicas > 1)
            cc->Replicas = s->si->Config->Replicas;
    }
    if (restart) {
        cc->DeliverPolicy = js_DeliverByStartSequence;
        cc->OptStartSeq = restart;
        return 0;
    }
    if (config_start(cc, o->from, err, errlen) == -1)
        return -1;
    if (cc->DeliverPolicy == js_DeliverByStartTime) {
        cc->DeliverPolicy = js_DeliverByStartSequence;
        cc->OptStartSeq = time_to_seq(s, cc->OptStartTime);
        cc->OptStartTime = 0;
        log_debug("--from %s: stream sequence %llu", o->from,
                  (unsigned long long)cc->OptStartSeq);
    }
    return 0;
}

/*
 * Whether a consumer call that failed with st is worth another of five
 * attempts: a cluster that is electing a leader (a server just died)
 * answers with a timeout.  Says so when it is.
 */
static int
retry_electing(natsStatus st, const char *what, int attempt)
{
    if ((st != NATS_TIMEOUT && st != NATS_NO_RESPONDERS) || attempt >= 5 ||
        cli_signal)
        return 0;
    log_warn("%s: %s (attempt %d of 5); retrying", what, natsStatus_GetText(st),
             attempt);
    return 1;
}

/*
 * Looks the durable up, or creates the consumer, retrying while a cluster
 * elects a leader: a durable that a timed-out call did create is found by
 * the next lookup.  A replicated consumer is answered for by its leader,
 * and when the server nats-server preferred for that is down, the others
 * elect one first: 4 to 9 s in nats-server 2.9, hence the longer wait of
 * a creation (CREATE_WAIT_MS) than of the other calls.
 */
static natsStatus
consumer_find_or_add(struct sub *s, const jsConsumerConfig *cc,
                     jsConsumerInfo **ci)
{
    const struct js_opts *o = s->o;
    natsStatus st;

    for (int attempt = 1;; attempt++) {
        jsErrCode jerr = 0;

        st = NATS_NOT_FOUND;
        if (o->durable != NULL)
            st = js_GetConsumerInfo(ci, s->c.js, o->stream, o->durable, NULL,
                                    &jerr);
        if (st == NATS_OK && o->from != NULL)
            log_warn("durable %s exists: resuming it, --from ignored",
                     o->durable);
        if (st == NATS_NOT_FOUND || jerr == JSConsumerNotFoundErr) {
            jsOptions jo;

            jsOptions_Init(&jo);
            jo.Wait = CREATE_WAIT_MS;
            st = js_AddConsumer(ci, s->c.js, o->stream, (jsConsumerConfig *)cc,
                                &jo, &jerr);
        }
        if (!retry_electing(st, "creating the consumer", attempt))
            return st;
    }
}

/*
 * Creates the consumer unless the durable exists, then binds to it;
 * restart as consumer_config says.
 */
static int
consumer_open(struct sub *s, uint64_t restart, char *err, size_t errlen)
{
    jsConsumerConfig cc;
    jsConsumerInfo *ci = NULL;
    jsSubOptions so;
    jsErrCode jerr = 0;
    natsStatus st;

    if (consumer_config(s, restart, &cc, err, errlen) == -1)
        return -1;
    st = consumer_find_or_add(s, &cc, &ci);
    if (st != NATS_OK) {
        conn_strerror(st, "cannot create the consumer", err, errlen);
        return -1;
    }
    s->consumer = strdup(ci->Name);
    /* A durable resumed numbers its deliveries on from its last one. */
    s->dseq_known = 1;
    s->last_dseq = ci->Delivered.Consumer;
    s->held = ci->NumAckPending;
    s->ephemeral = s->o->durable == NULL;
    s->ack_all = ci->Config != NULL && ci->Config->AckPolicy == js_AckAll;
    jsConsumerInfo_Destroy(ci);
    if (s->consumer == NULL)
        return -1;
    jsSubOptions_Init(&so);
    so.Stream = s->o->stream;
    so.Consumer = s->consumer;
    st = js_PullSubscribe(&s->sub, s->c.js, s->filter, s->consumer, NULL, &so,
                          &jerr);
    if (st != NATS_OK) {
        conn_strerror(st, "cannot bind to the consumer", err, errlen);
        return -1;
    }
    return 0;
}

/*
 * Writes a message's lines with "js_seq" added, or counts the message as
 * skipped when a line is not kvtap NDJSON.
 */
static void
emit(struct sub *s, natsMsg *m, uint64_t js_seq)
{
    const char *d = natsMsg_GetData(m);
    size_t n = (size_t)natsMsg_GetDataLength(m);
    char err[256];

    s->messages++;
    for (int pass = 0; pass < 2; pass++) {
        size_t at = 0, lineno = 0;

        while (at < n) {
            const char *nl = memchr(d + at, '\n', n - at);
            size_t len = (nl ? (size_t)(nl - d) : n) - at;
            const char *line = d + at;
            struct kv_env env;
            struct kv_event ev;
            int rc;

            at += len + 1;
            lineno++;
            while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' '))
                len--;
            arena_reset(&s->arena);
            rc = ndjson_parse_line(line, len, &s->arena, &env, &ev, err,
                                   sizeof(err));
            if (rc == NDJSON_SKIP)
                continue;
            if (rc != NDJSON_EVENT) {
                s->skipped++;
                log_warn("js_seq %llu on %s is not kvtap NDJSON (line %zu: "
                         "%s); skipped",
                         (unsigned long long)js_seq, natsMsg_GetSubject(m),
                         lineno, err);
                return;
            }
            if (pass == 0)
                continue;
            s->lines++;
            buf_put(&s->out.buf, line, len - 1);
            buf_puts(&s->out.buf, ",\"js_seq\":");
            buf_put_u64(&s->out.buf, js_seq);
            buf_puts(&s->out.buf, "}\n");
        }
    }
}

/* The consumer has delivered everything and nothing awaits redelivery. */
static int
at_end(struct sub *s)
{
    jsConsumerInfo *ci = NULL;
    natsStatus st;
    int end;

    natsConnection_FlushTimeout(s->c.nc, 2000);
    st =
        js_GetConsumerInfo(&ci, s->c.js, s->o->stream, s->consumer, NULL, NULL);
    if (st != NATS_OK) {
        log_debug("consumer info: %s", natsStatus_GetText(st));
        return 0;
    }
    end = ci->NumPending == 0 && ci->NumAckPending == 0;
    log_debug("consumer %s: %llu pending, %lld awaiting ack", ci->Name,
              (unsigned long long)ci->NumPending, (long long)ci->NumAckPending);
    jsConsumerInfo_Destroy(ci);
    return end;
}

/*
 * Notes the message as handled by this run, and returns 1 when it was
 * already: written (or skipped) before, and delivered again because the
 * server did not get its acknowledgment (lost with a consumer leader that
 * changed, say), or by the consumer that replaced one (consumer_restart).
 * Such a copy comes after newer messages, so written again it would put
 * an old batch after them: the caller acknowledges it and writes nothing.
 */
static int
note_handled(struct sub *s, const jsMsgMetaData *meta)
{
    uint64_t seq = meta->Sequence.Stream;
    int seen = seqwin_has(&s->written, seq);

    if (seen == 1) {
        s->again++;
        log_debug("js_seq %llu came again (delivery %llu of it), already "
                  "written: skipped",
                  (unsigned long long)seq,
                  (unsigned long long)meta->NumDelivered);
        return 1;
    }
    /* Below the window nothing tells whether this run wrote it: it is
     * written, once too often rather than lost. */
    if (seen == -1)
        log_warn("js_seq %llu delivered again long after newer ones: "
                 "written again",
                 (unsigned long long)seq);
    if (seqwin_add(&s->written, seq) == -1)
        log_warn("js_seq %llu: out of memory noting it as written",
                 (unsigned long long)seq);
    return 0;
}

/*
 * Whether deliveries before this one were lost on the way: the consumer
 * numbers its deliveries, and a connection that broke while some were in
 * flight leaves a hole.  Those messages would come again after --ack-wait,
 * after newer ones; the caller reads again from the consumer's
 * acknowledgment floor instead (consumer_restart).
 */
static int
deliveries_lost(struct sub *s, const jsMsgMetaData *meta)
{
    uint64_t d = meta->Sequence.Consumer;

    if (s->dseq_known && d != s->last_dseq + 1) {
        if (d == s->last_dseq + 2)
            snprintf(s->why, sizeof s->why, "delivery %llu lost on the way",
                     (unsigned long long)d - 1);
        else
            snprintf(s->why, sizeof s->why,
                     "deliveries %llu to %llu lost on the way",
                     (unsigned long long)s->last_dseq + 1,
                     (unsigned long long)d - 1);
        return 1;
    }
    s->dseq_known = 1;
    s->last_dseq = d;
    return 0;
}

/*
 * Handles one fetched list.  Returns 1 to go on, 2 when deliveries were
 * lost (what came before the hole was written), 0 at --until or when the
 * reader left, -1 on a write error.
 */
static int
take_list(struct sub *s, natsMsgList *list)
{
    int go = 1, taken = 0;

    for (int k = 0; k < list->Count; k++) {
        jsMsgMetaData *meta = NULL;

        /* Without metadata the delivery's number is unknown too: the
         * next one is not checked against it. */
        if (natsMsg_GetMetaData(&meta, list->Msgs[k]) != NATS_OK) {
            s->dseq_known = 0;
            continue;
        }
        if (deliveries_lost(s, meta)) {
            jsMsgMetaData_Destroy(meta);
            go = 2;
            break;
        }
        if (s->until_ns && meta->Timestamp > s->until_ns) {
            jsMsgMetaData_Destroy(meta);
            go = 0;
            break;
        }
        if (!note_handled(s, meta))
            emit(s, list->Msgs[k], meta->Sequence.Stream);
        s->last_pending = meta->NumPending;
        jsMsgMetaData_Destroy(meta);
        taken = k + 1;
    }
    if (cli_out_flush(&s->out) == -1)
        return s->out.closed ? 0 : -1;
    for (int k = s->ack_all && taken ? taken - 1 : 0; k < taken; k++)
        natsMsg_Ack(list->Msgs[k], NULL);
    return go;
}

/*
 * Replaces the consumer by one that starts right after its acknowledgment
 * floor, so that what the old one would deliver again only after
 * --ack-wait, behind newer messages, comes next and in order: deliveries
 * lost on the way, and the messages an earlier run of a durable held when
 * it died.  Everything up to the floor was handled (by this run, or by an
 * earlier run of a durable); above it come those, and copies of messages
 * this run handled, which note_handled skips.  A durable keeps its name.
 * s->why says why, for the warning.
 */
static int
consumer_restart(struct sub *s, char *err, size_t errlen)
{
    jsConsumerInfo *ci = NULL;
    uint64_t from = 0;
    natsStatus st;

    natsSubscription_Destroy(s->sub);
    s->sub = NULL;
    for (int attempt = 1;; attempt++) {
        st = js_GetConsumerInfo(&ci, s->c.js, s->o->stream, s->consumer, NULL,
                                NULL);
        if (!retry_electing(st, "reading the consumer", attempt))
            break;
    }
    if (st == NATS_OK) {
        from = ci->AckFloor.Stream + 1;
        log_warn("%s: reading consumer %s again from js_seq %llu", s->why,
                 s->consumer, (unsigned long long)from);
    }
    jsConsumerInfo_Destroy(ci);
    for (int attempt = 1; st == NATS_OK; attempt++) {
        jsErrCode jerr = 0;

        st = js_DeleteConsumer(s->c.js, s->o->stream, s->consumer, NULL, &jerr);
        if (st == NATS_NOT_FOUND || jerr == JSConsumerNotFoundErr)
            st = NATS_OK;
        if (!retry_electing(st, "deleting the consumer", attempt))
            break;
    }
    if (st != NATS_OK) {
        conn_strerror(st, "cannot replace the consumer", err, errlen);
        return -1;
    }
    free(s->consumer);
    s->consumer = NULL;
    s->rereads++;
    return consumer_open(s, from, err, errlen);
}

/*
 * An ephemeral consumer would expire by itself after its inactivity
 * threshold; deleting it at exit keeps `kvjs info` honest.  Skipped when
 * the server is gone, and bounded, so that exit never hangs on it.
 */
static void
consumer_delete(struct sub *s)
{
    jsOptions jo;

    if (natsConnection_Status(s->c.nc) != NATS_CONN_STATUS_CONNECTED)
        return;
    jsOptions_Init(&jo);
    jo.Wait = 1000;
    js_DeleteConsumer(s->c.js, s->o->stream, s->consumer, &jo, NULL);
}

/*
 * How many messages to fetch.  libnats 3.4 (Debian 12's; fixed in 3.10)
 * overruns the list it returns when the subscription already holds more
 * than half a batch when Fetch is called: it takes those, asks the server
 * for the rest, then waits for a count it has already passed, writing
 * past the list.  Messages pile up there when deliveries for an earlier
 * request arrive after it returned, as a burst of redeliveries does after
 * a reconnect.  Asking for exactly what is held, when anything is, fills
 * the list before any request is sent.  (A burst that lands between this
 * count and Fetch's own is not covered; it would have to be more than half
 * a batch within microseconds.)
 */
static int
fetch_size(const struct sub *s)
{
    int held = 0;

    if (natsSubscription_GetPending(s->sub, &held, NULL) == NATS_OK &&
        held > 0 && held < s->o->fetch_batch)
        return held;
    return s->o->fetch_batch;
}

static int
fetch_loop(struct sub *s)
{
    int ends = 0;

    while (!cli_signal) {
        natsMsgList list = {0};
        jsErrCode jerr = 0;
        natsStatus st;
        int go;

        st = natsSubscription_Fetch(&list, s->sub, fetch_size(s),
                                    s->o->follow ? 1000 : 300, &jerr);
        if (st == NATS_TIMEOUT || (st == NATS_OK && list.Count == 0)) {
            natsMsgList_Destroy(&list);
            /*
             * The end is believed when the server says so after two
             * empty fetches in a row: one empty fetch of a consumer
             * created a moment ago is weak evidence, and the second
             * costs one fetch timeout only at the end of a quiet stream.
             */
            ends = !s->o->follow && at_end(s) ? ends + 1 : 0;
            if (ends >= 2)
                return 0;
            continue;
        }
        if (st != NATS_OK) {
            char err[512];

            natsMsgList_Destroy(&list);
            conn_strerror(st, "fetch", err, sizeof(err));
            if (st == NATS_CONNECTION_CLOSED || st == NATS_NOT_FOUND ||
                st == NATS_INVALID_SUBSCRIPTION) {
                log_error("%s", err);
                return -1;
            }
            log_warn("%s; retrying", err);
            continue;
        }
        ends = 0;
        go = take_list(s, &list);
        natsMsgList_Destroy(&list);
        if (go == 2) {
            char err[512];

            if (consumer_restart(s, err, sizeof(err)) == -1) {
                log_error("%s", err);
                return -1;
            }
            continue;
        }
        if (go <= 0)
            return go;
        /* The last message said nothing follows: ask instead of waiting. */
        if (!s->o->follow && s->last_pending == 0 && at_end(s))
            return 0;
    }
    return 0;
}

static int
filter_make(const struct js_opts *o, char *out, size_t outlen)
{
    char token[512];

    if (o->pod == NULL)
        return snprintf(out, outlen, "%s.>", o->prefix) < (int)outlen ? 0 : -1;
    if (conn_pod_token(o->pod, strlen(o->pod), token, sizeof(token)) == -1)
        return -1;
    return snprintf(out, outlen, "%s.%s", o->prefix, token) < (int)outlen ? 0
                                                                          : -1;
}

int
sub_run(const struct js_opts *o)
{
    struct sub s = {0};
    char err[512], filter[600];
    int rc = 1;

    s.o = o;
    s.filter = filter;
    cli_out_init(&s.out, 1);
    if (filter_make(o, filter, sizeof(filter)) == -1) {
        log_error("--pod too long");
        goto out;
    }
    if (o->until != NULL && sub_time_parse(o->until, &s.until_ns) == -1) {
        log_error("--until %s: not a time", o->until);
        goto out;
    }
    if (conn_open(&s.c, o, NULL, err, sizeof(err)) == -1 ||
        conn_stream_info(&s.c, o->stream, &s.si, err, sizeof(err)) == -1 ||
        consumer_open(&s, 0, err, sizeof(err)) == -1) {
        log_error("%s", err);
        goto out;
    }
    if (o->durable != NULL && s.held > 0) {
        snprintf(s.why, sizeof s.why,
                 "%lld messages held unacknowledged by an earlier run",
                 (long long)s.held);
        if (consumer_restart(&s, err, sizeof(err)) == -1) {
            log_error("%s", err);
            goto out;
        }
    }
    rc = fetch_loop(&s) == -1 ? 1 : 0;
    if (s.out.err)
        log_error("stdout: %s", strerror(s.out.err));
    if (o->stats)
        fprintf(stderr,
                "{\"messages\":%llu,\"lines\":%llu,\"skipped\":%llu,"
                "\"again\":%llu,\"rereads\":%llu}\n",
                (unsigned long long)s.messages, (unsigned long long)s.lines,
                (unsigned long long)s.skipped, (unsigned long long)s.again,
                (unsigned long long)s.rereads);
    if (rc == 0 && cli_signal)
        rc = 128 + cli_signal;
out:
    if (s.c.nc != NULL &&
        natsConnection_Status(s.c.nc) == NATS_CONN_STATUS_CONNECTED)
        natsConnection_FlushTimeout(s.c.nc, 2000);
    natsSubscription_Destroy(s.sub);
    if (s.ephemeral && s.consumer != NULL)
        consumer_delete(&s);
    free(s.consumer);
    jsStreamInfo_Destroy(s.si);
    conn_close(&s.c);
    cli_out_free(&s.out);
    arena_free(&s.arena);
    seqwin_free(&s.written);
    return rc;
}

int
sub_info(const struct js_opts *o)
{
    struct js_conn c;
    jsStreamInfo *si = NULL;
    char err[512];
    int rc = 1;

    if (conn_open(&c, o, NULL, err, sizeof(err)) == -1 ||
        conn_stream_info(&c, o->stream, &si, err, sizeof(err)) == -1) {
        log_error("%s", err);
        goto out;
    }
    printf("{\"stream\":\"%s\",\"messages\":%llu,\"bytes\":%llu,"
           "\"first_seq\":%llu,\"last_seq\":%llu,\"last_ns\":%lld,"
           "\"consumers\":%lld,\"replicas\":%lld}\n",
           si->Config->Name, (unsigned long long)si->State.Msgs,
           (unsigned long long)si->State.Bytes,
           (unsigned long long)si->State.FirstSeq,
           (unsigned long long)si->State.LastSeq,
           (long long)(si->State.LastSeq ? si->State.LastTime : 0),
           (long long)si->State.Consumers, (long long)si->Config->Replicas);
    rc = fflush(stdout) == 0 ? 0 : 1;
out:
    jsStreamInfo_Destroy(si);
    conn_close(&c);
    return rc;
}

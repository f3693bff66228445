/*
 * run.c - kvsub's receive loop.
 *
 * Every source has a SUB socket, an optional replay DEALER and a seqtrack.
 * All SUB sockets are polled together; each readable one is drained without
 * blocking.  A live batch is classified by its source's seqtrack: a gap is
 * filled through replay before the live batch is written (so the output is
 * in seq order, each seq once), a duplicate is dropped, a restart gets a
 * record.  Before the first poll every source with a replay endpoint catches
 * up from its offset (-o) to the end of the engine's buffer; the live copies
 * queued meanwhile are duplicates to seqtrack, so the seam between replay and
 * live has neither a hole nor a repeat.  Output goes through a block-buffered
 * cli_out that is flushed before every blocking wait.
 */
#include "run.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>
#include <zmq.h>

#include "cli.h"
#include "curve.h"
#include "monitor.h"
#include "ndjson_write.h"
#include "replay.h"
#include "seqtrack.h"
#include "snapreq.h"
#include "sub.h"
#include "wire.h"

/* Messages read from one socket before the others get their turn. */
#define DRAIN_BUDGET 4096
/* How often, at most, a busy source's monitor is looked at (drain_source). */
#define MONITOR_CHECK_US 20
/*
 * A connection lost this long ago without a retry since was closed by
 * libzmq for a message over --max-msg (or a protocol error): it never
 * reconnects such a connection, so kvsub does.
 */
#define REVIVE_MS 500

static void
kvs_from_cstr(struct kv_str *s, const char *c)
{
    s->p = c;
    s->n = c ? strlen(c) : 0;
}

/*
 * Called after lines were appended from offset mark: counts them, cuts the
 * buffer after the count-th line when --count is reached, and flushes when
 * unbuffered or past the high-water mark.
 */
static void
after_write(struct kvsub *k, size_t mark, uint64_t nlines)
{
    if (k->o->count > 0 && k->lines + nlines >= k->o->count) {
        uint64_t want = k->o->count - k->lines;
        size_t pos = mark;
        for (uint64_t i = 0; i < want; i++) {
            const char *nl =
                memchr(k->out.buf.p + pos, '\n', k->out.buf.len - pos);
            if (nl == NULL)
                break;
            pos = (size_t)(nl - k->out.buf.p) + 1;
        }
        k->out.buf.len = pos;
        nlines = want;
        k->done = 1;
    }
    k->lines += nlines;
    if (k->o->unbuffered || k->done)
        cli_out_flush(&k->out);
    else
        cli_out_maybe_flush(&k->out);
    if (k->out.closed || k->out.err)
        k->done = 1;
}

/* Writes one stream record under the source's envelope. */
static void
write_record(struct kvsub *k, struct source *s, const struct kv_batch *b,
             int has_seq, uint64_t seq, const struct kv_event *ev)
{
    struct kv_env env;
    size_t mark = k->out.buf.len;

    if (k->done)
        return;
    memset(&env, 0, sizeof env);
    env.pod = s->nsrc.pod;
    env.model = s->nsrc.model;
    env.stream = s->nsrc.stream;
    env.has_seq = has_seq;
    env.seq = seq;
    if (b != NULL) {
        env.has_rank = b->has_rank;
        env.rank = b->rank;
        env.has_ts = b->has_ts;
        env.ts = b->ts;
    }
    /* ndjson_write_event ends the line itself. */
    ndjson_write_event(&k->out.buf, &env, ev);
    after_write(k, mark, 1);
}

static void
write_decode_error(struct kvsub *k, struct source *s, int has_seq, uint64_t seq,
                   const char *why, size_t bytes)
{
    struct kv_event ev;

    kv_event_init(&ev, KV_DECODE_ERROR);
    kvs_from_cstr(&ev.error, why);
    ev.bytes = bytes;
    s->stats.decode_errors++;
    if (has_seq)
        log_warn("%s: seq %" PRIu64 ": %s", s->spec->name, seq, why);
    else
        log_warn("%s: %s", s->spec->name, why);
    write_record(k, s, NULL, has_seq, seq, &ev);
}

void
run_write_gap(struct kvsub *k, struct source *s, const struct kv_batch *live,
              uint64_t from, uint64_t to, const char *why)
{
    struct kv_event ev;

    kv_event_init(&ev, KV_GAP);
    ev.from = from;
    ev.to = to;
    s->stats.gaps++;
    s->stats.lost += to - from + 1;
    log_warn("%s: gap %" PRIu64 "..%" PRIu64 " (%s)", s->spec->name, from, to,
             why);
    write_record(k, s, live, 1, to, &ev);
    seqtrack_advance(&s->st, to);
}

/*
 * The longest line written since mark, when it is over NDJSON_MAX_LINE
 * (kvindex's default --max-line); else 0.  Only a batch whose lines
 * together pass the limit is looked at line by line.
 */
static size_t
line_over_limit(const struct buf *out, size_t mark)
{
    size_t longest = 0;

    if (out->len - mark <= NDJSON_MAX_LINE)
        return 0;
    for (size_t pos = mark; pos < out->len;) {
        const char *nl = memchr(out->p + pos, '\n', out->len - pos);
        size_t end = nl ? (size_t)(nl - out->p) + 1 : out->len;
        if (end - pos > longest)
            longest = end - pos;
        pos = end;
    }
    return longest > NDJSON_MAX_LINE ? longest : 0;
}

/*
 * Decodes and writes one batch (live or replayed).  Its payload and the
 * decoded events live until the arena is reset.
 */
void
run_write_payload(struct kvsub *k, struct source *s, uint64_t seq,
                  const struct kv_batch *b, int decoded, const char *why,
                  size_t len)
{
    size_t mark;

    if (k->done)
        return;
    if (!decoded) {
        write_decode_error(k, s, 1, seq, why, len);
        return;
    }
    mark = k->out.buf.len;
    ndjson_write_batch(&k->out.buf, &s->nsrc, b);
    size_t longest = line_over_limit(&k->out.buf, mark);
    if (longest > 0) {
        char too_long[128];
        /* A line kvindex would refuse: the batch becomes one record. */
        k->out.buf.len = mark;
        snprintf(too_long, sizeof too_long,
                 "an event line of %zu bytes is over the %u-byte line limit",
                 longest, (unsigned)NDJSON_MAX_LINE);
        write_decode_error(k, s, 1, seq, too_long, len);
        return;
    }
    s->stats.batches++;
    s->shape |= k->shape;
    if (b->has_ts) {
        s->has_last_ts = 1;
        s->last_ts = b->ts;
    }
    for (size_t i = 0; i < b->n_events; i++) {
        const struct kv_event *ev = &b->events[i];
        if (ev->type == KV_DECODE_ERROR) {
            s->stats.decode_errors++;
            log_warn("%s: seq %" PRIu64 ": %.*s", s->spec->name, seq,
                     (int)ev->error.n, ev->error.p);
        } else if (kv_type_is_engine(ev->type)) {
            s->stats.events++;
        }
    }
    after_write(k, mark, b->n_events);
}

int
run_decode(struct kvsub *k, struct arena *a, uint64_t seq, const uint8_t *p,
           size_t len, struct kv_batch *b, char *err, size_t errlen)
{
    arena_reset(a);
    memset(b, 0, sizeof *b);
    if (wire_decode(p, len, &k->wopts, a, b, err, errlen) == -1)
        return 0;
    b->seq = seq;
    return 1;
}

/*
 * Says once per source where its output joined the live stream: at seq (the
 * first one that comes live) after the replayed batches.
 */
void
run_note_joined(struct source *s, uint64_t seq)
{
    if (s->joined)
        return;
    s->joined = 1;
    if (s->from_snapshot)
        cli_note("%s: joined at seq %" PRIu64 " (snapshot at seq %" PRIu64
                 ", then replayed %" PRIu64 " batches)",
                 s->spec->name, seq, s->snapshot_seq, s->stats.replayed);
    else if (s->stats.replayed == 0)
        cli_note("%s: joined at seq %" PRIu64 " (replayed 0 batches)",
                 s->spec->name, seq);
    else
        cli_note("%s: joined at seq %" PRIu64 " (replayed %" PRIu64
                 " batches from %" PRIu64 ")",
                 s->spec->name, seq, s->stats.replayed, s->first_replayed);
}

/* Sets the source's stream id (hex on the envelope) from 16 bytes. */
static void
set_stream(struct source *s, const uint8_t *id)
{
    for (int i = 0; i < ZSOCK_STREAM_ID_LEN; i++)
        snprintf(s->stream_hex + 2 * i, 3, "%02x", id[i]);
    s->has_stream = 1;
    kvs_from_cstr(&s->nsrc.stream, s->stream_hex);
}

/* Writes a record without a batch (snapshot_begin/_end) at seq. */
static void
write_mark(struct kvsub *k, struct source *s, enum kv_type t, uint64_t seq)
{
    struct kv_event ev;

    kv_event_init(&ev, t);
    write_record(k, s, NULL, 1, seq, &ev);
}

/*
 * Prints the engine's snapshot: its chunks' events under the snapshot's
 * seq between snapshot_begin and snapshot_end records
 * (docs/ndjson.md#records-written-by-kvtap), and takes that seq as
 * delivered.  why says on stderr what it was taken for (NULL: the start,
 * said by the "joined" note).  Returns 1 when it did; 0 when there is no
 * snapshot (nothing published yet, seq -1) or none to be had (warned).
 */
int
run_print_snapshot(struct kvsub *k, struct source *s, const char *why)
{
    struct snapreq_reply r;
    char err[256];
    uint64_t seq;

    if (snapreq_fetch(k->zctx, s->spec->snapshot, (long)k->o->replay_timeout_ms,
                      &r, err, sizeof err) == -1) {
        log_warn("%s: snapshot %s", s->spec->name, err);
        return 0;
    }
    if (r.seq < 0) {
        if (r.seq == -2)
            log_warn("%s: snapshot: the engine has none to give",
                     s->spec->name);
        snapreq_free(&r);
        return 0;
    }
    seq = (uint64_t)r.seq;
    if (why != NULL)
        log_warn("%s: snapshot at seq %" PRIu64 " (%s)", s->spec->name, seq,
                 why);
    set_stream(s, r.stream);
    write_mark(k, s, KV_SNAPSHOT_BEGIN, seq);
    for (size_t i = 0; i < r.n && !k->done; i++) {
        struct kv_batch b;
        size_t len = zmq_msg_size(&r.chunk[i]);
        int ok = run_decode(k, &k->replay_arena, seq, zmq_msg_data(&r.chunk[i]),
                            len, &b, err, sizeof err);
        run_write_payload(k, s, seq, &b, ok, err, len);
    }
    write_mark(k, s, KV_SNAPSHOT_END, seq);
    seqtrack_advance(&s->st, seq);
    s->snapshot_seq = seq;
    s->stats.snapshots++;
    snapreq_free(&r);
    return 1;
}

/*
 * Notes the stream id of a live batch from vLLM's snapshot mode.  A new id
 * is a new publisher process, whatever its seq does: the tracker starts
 * over and the verdict becomes a restart (returns 1; v is set as
 * seqtrack_live would, last_seq the last seq of the old process).
 */
static int
stream_changed(struct source *s, const uint8_t *id, uint64_t seq,
               struct seqtrack_verdict *v)
{
    char old[sizeof s->stream_hex];
    int had = s->has_stream;
    uint64_t last = s->st.last;

    if (id == NULL)
        return 0;
    memcpy(old, s->stream_hex, sizeof old);
    set_stream(s, id);
    if (had && strcmp(old, s->stream_hex) == 0)
        return 0;
    if (!had || !s->st.started)
        return 0;
    seqtrack_init(&s->st);
    seqtrack_live(&s->st, seq, v);
    v->kind = SEQTRACK_RESTART;
    v->last_seq = last;
    return 1;
}

/*
 * Writes the restart record for a live batch b (NULL: it did not decode)
 * at seq, then starts fetching what the new process published before it.
 * Returns 1 when a fill is under way (the batch must wait for it).
 */
static int
write_restart(struct kvsub *k, struct source *s, const struct kv_batch *b,
              uint64_t seq, uint64_t last_seq, const char *how)
{
    struct kv_event ev;

    kv_event_init(&ev, KV_RESTART);
    ev.last_seq = last_seq;
    s->stats.restarts++;
    log_warn("%s: restart: seq %" PRIu64 " after %" PRIu64 "%s", s->spec->name,
             seq, last_seq, how);
    /*
     * A new publisher counts from 0 (docs/protocol.md#sequence-numbers).
     * When its first batches were missed, the restart record names 0, the
     * first seq of the new process, and the missed ones are fetched from
     * its replay buffer (or reported as a gap) before this batch.
     */
    write_record(k, s, b, 1, 0, &ev);
    s->has_last_payload = 0;
    /* The new process's state from its snapshot, then what follows it. */
    if (s->spec->snapshot != NULL &&
        run_print_snapshot(k, s, "the engine restarted"))
        return s->snapshot_seq + 1 < seq &&
               fill_start(k, s, FILL_GAP, b, s->snapshot_seq + 1, seq - 1);
    return seq > 0 && fill_start(k, s, FILL_GAP, b, 0, seq - 1);
}

/* Classifies a live seq: a new stream id or a failed check is a restart. */
static void
classify_live(struct source *s, const uint8_t *stream, uint64_t seq,
              struct seqtrack_verdict *v, const char **how)
{
    uint64_t last = s->st.last;

    *how = "";
    if (stream_changed(s, stream, seq, v)) {
        *how = " (new stream id)";
        return;
    }
    if (s->force_restart) {
        s->force_restart = 0;
        *how = " (after a reconnect, the engine holds other bytes at the "
               "last seq seen)";
        seqtrack_init(&s->st);
        seqtrack_live(&s->st, seq, v);
        v->kind = SEQTRACK_RESTART;
        v->last_seq = last;
        return;
    }
    seqtrack_live(&s->st, seq, v);
}

/*
 * Writes a live batch whose verdict has been acted on (and whose fill, if
 * any, is over).
 */
static void
write_live(struct kvsub *k, struct source *s, uint64_t seq,
           const uint8_t *payload, size_t len)
{
    char err[256];
    struct kv_batch b;
    int ok;

    if (k->done || cli_signal)
        return;
    /* A snapshot taken for a restart or a hole may already hold it. */
    if (s->st.started && !s->st.rebase && s->st.last >= seq) {
        s->stats.duplicates++;
        return;
    }
    ok = run_decode(k, &k->live_arena, seq, payload, len, &b, err, sizeof err);
    run_write_payload(k, s, seq, &b, ok, err, len);
    fill_keep_payload(s, seq, payload, len);
    seqtrack_advance(&s->st, seq);
    run_note_joined(s, seq);
}

/* write_live for a held message (it parsed when it arrived). */
void
run_write_held(struct kvsub *k, struct source *s, const struct zsock_msg *m)
{
    uint64_t seq;
    const uint8_t *payload, *stream;
    size_t len;
    char err[256];

    if (zsock_live_parse(m, &seq, &stream, &payload, &len, err, sizeof err) ==
        0)
        write_live(k, s, seq, payload, len);
}

/*
 * The first seq -o beginning asks for: the producer's first (1 for llm-d's
 * storage tier, docs/protocol.md#llm-d-storage-tier), told by --engine or
 * by the batch just decoded (decoded != 0).
 */
static uint64_t
first_seq(const struct kvsub *k, int decoded)
{
    if (k->o->offset_seq > 0)
        return k->o->offset_seq;
    return wire_first_seq(decoded ? k->shape : 0, k->o->engine);
}

/*
 * A topic kv@<pod>@<model> names the source (docs/protocol.md#frames): for a
 * source given without NAME=, the pod becomes <pod> and, unless -m was
 * given, the model <model>.  Names too long for the source's room are not
 * taken.
 */
static void
topic_names(struct kvsub *k, struct source *s, const struct zsock_msg *m)
{
    size_t n;
    const uint8_t *t = zsock_part(m, 0, &n);
    const uint8_t *at = n > 3 ? memchr(t + 3, '@', n - 3) : NULL;

    if (at == NULL || memcmp(t, "kv@", 3) != 0)
        return;
    size_t pn = (size_t)(at - t) - 3, mn = n - pn - 4;
    if (pn == 0 || pn >= sizeof s->topic_pod || mn >= sizeof s->topic_model)
        return;
    if (s->nsrc.pod.p == s->topic_pod && s->nsrc.pod.n == pn &&
        memcmp(s->topic_pod, t + 3, pn) == 0 &&
        (k->o->model != NULL ||
         (s->nsrc.model.n == mn && memcmp(s->topic_model, at + 1, mn) == 0)))
        return;
    memcpy(s->topic_pod, t + 3, pn);
    s->nsrc.pod.p = s->topic_pod;
    s->nsrc.pod.n = pn;
    if (k->o->model == NULL) {
        memcpy(s->topic_model, at + 1, mn);
        s->nsrc.model.p = s->topic_model;
        s->nsrc.model.n = mn;
    }
}

/* Makes the source's SUB wait: m is kept until the fill ends. */
static void
hold(struct source *s, struct zsock_msg *m)
{
    zsock_msg_move(&s->held, m);
    s->has_held = 1;
}

/*
 * Older ATOM's messages without a seq frame, [topic, payload] and [payload]
 * (docs/protocol.md#rocm-atom).  Returns 1 when m is one (exactly 1 or 2
 * parts, the last a batch): its events are written without "seq".  The
 * sequence tracker never sees it, since such a message can show no gap and
 * cannot be replayed.  Returns 0 for any other message.
 */
static int
write_unsequenced(struct kvsub *k, struct source *s, const struct zsock_msg *m)
{
    const uint8_t *payload;
    size_t len;
    char err[256];
    struct kv_batch b;

    if (m->nparts != 1 && m->nparts != 2)
        return 0;
    payload = zsock_part(m, m->nparts - 1, &len);
    if (!run_decode(k, &k->live_arena, 0, payload, len, &b, err, sizeof err))
        return 0;
    if (k->done || cli_signal)
        return 1;
    /* A single frame is the payload: there is no topic to take names from. */
    if (m->nparts == 2 && s->topic_names)
        topic_names(k, s, m);
    if (!s->no_seq_said) {
        s->no_seq_said = 1;
        log_warn("%s: messages without a seq frame (older ATOM): their "
                 "lines have no \"seq\", and a lost one cannot be seen or "
                 "replayed",
                 s->spec->name);
    }
    b.no_seq = 1;
    k->shape |= WIRE_SHAPE_NO_SEQ;
    run_write_payload(k, s, 0, &b, 1, "", len);
    return 1;
}

/*
 * One live message.  again: it is a held message coming back after a fill
 * (not counted twice).
 */
void
run_handle_live(struct kvsub *k, struct source *s, struct zsock_msg *m,
                int again)
{
    uint64_t seq;
    const uint8_t *payload, *stream;
    const char *how;
    size_t len;
    char err[256];
    struct kv_batch b;
    struct seqtrack_verdict v;
    int ok, waits = 0;

    if (!again)
        s->stats.received++;
    if (zsock_live_parse(m, &seq, &stream, &payload, &len, err, sizeof err) ==
        -1) {
        size_t plen = 0;
        if (write_unsequenced(k, s, m))
            return;
        if (m->kept > 0)
            zsock_part(m, m->kept - 1, &plen);
        write_decode_error(k, s, 0, 0, err, plen);
        return;
    }
    if (s->topic_names)
        topic_names(k, s, m);
    if (!s->st.started && !k->o->offset_now && seq < k->o->offset_seq) {
        log_debug("%s: seq %" PRIu64 " is before -o %" PRIu64, s->spec->name,
                  seq, k->o->offset_seq);
        return;
    }
    if (fill_check_reconnect(k, s, stream)) {
        hold(s, m);
        return;
    }
    classify_live(s, stream, seq, &v, &how);
    if (s->unchecked && v.kind != SEQTRACK_RESTART)
        log_warn("%s: reconnected; without %s, a restart of the engine "
                 "shows only if its seqs go backwards",
                 s->spec->name,
                 s->rc == NULL ? "a replay endpoint" : "a batch to compare");
    s->unchecked = 0;
    if (v.kind == SEQTRACK_DUP) {
        s->stats.duplicates++;
        log_debug("%s: seq %" PRIu64 " already delivered", s->spec->name, seq);
        return;
    }
    if (v.kind == SEQTRACK_NEXT ||
        (v.kind == SEQTRACK_FIRST &&
         (k->o->offset_now || seq <= k->o->offset_seq))) {
        write_live(k, s, seq, payload, len);
        return;
    }
    /* The batch's envelope goes on the records written before it. */
    ok = run_decode(k, &k->live_arena, seq, payload, len, &b, err, sizeof err);
    if (v.kind == SEQTRACK_RESTART)
        waits = write_restart(k, s, ok ? &b : NULL, seq, v.last_seq, how);
    else if (v.kind == SEQTRACK_GAP)
        waits = fill_start(k, s, FILL_GAP, ok ? &b : NULL, v.from, v.to);
    else if (v.kind == SEQTRACK_FIRST && !k->o->offset_now &&
             seq > first_seq(k, ok))
        /* Nothing came by catch-up: what precedes the first live batch. */
        waits = fill_start(k, s, FILL_GAP, ok ? &b : NULL, first_seq(k, ok),
                           seq - 1);
    if (waits)
        hold(s, m);
    else
        write_live(k, s, seq, payload, len);
}

static int
open_source(struct kvsub *k, struct source *s, const struct zsock_spec *sp,
            int idx)
{
    const struct kvsub_opts *o = k->o;
    int64_t max_msg = (int64_t)o->max_msg; /* ZMQ_MAXMSGSIZE's type */
    char err[256];

    s->spec = sp;
    seqtrack_init(&s->st);
    kvs_from_cstr(&s->nsrc.pod, sp->name);
    kvs_from_cstr(&s->nsrc.model, o->model);
    s->topic_names = strcmp(sp->name, sp->pub) == 0;
    s->sub = zmq_socket(k->zctx, ZMQ_SUB);
    if (s->sub == NULL || zsock_set_common(s->sub) == -1 ||
        curve_apply(s->sub, o->bind) == -1)
        goto fail;
    /*
     * The high-water mark and the size cap only apply to connections made
     * after them.
     */
    if (zmq_setsockopt(s->sub, ZMQ_RCVHWM, &o->rcvhwm, sizeof o->rcvhwm) ==
            -1 ||
        zmq_setsockopt(s->sub, ZMQ_MAXMSGSIZE, &max_msg, sizeof max_msg) ==
            -1 ||
        zmq_setsockopt(s->sub, ZMQ_SUBSCRIBE, o->topic, strlen(o->topic)) == -1)
        goto fail;
    /* Before connecting, so that not even the first failure goes unseen. */
    if (kvmon_open(&s->mon, k->zctx, s->sub, idx, sp->name, sp->pub, err,
                   sizeof err) == -1) {
        log_error("%s: %s", sp->name, err);
        return -1;
    }
    if ((o->bind ? zmq_bind(s->sub, sp->pub) : zmq_connect(s->sub, sp->pub)) ==
        -1) {
        log_error("%s: cannot %s %s: %s", sp->name,
                  o->bind ? "bind" : "connect to", sp->pub,
                  zmq_strerror(errno));
        return -1;
    }
    if (sp->replay != NULL) {
        s->rc = replay_open(k->zctx, sp->replay, err, sizeof err);
        if (s->rc != NULL && replay_set_max_msg(s->rc, (int64_t)o->max_msg, err,
                                                sizeof err) == -1) {
            replay_close(s->rc);
            s->rc = NULL;
        }
        if (s->rc == NULL) {
            log_error("%s: replay %s: %s", sp->name, sp->replay, err);
            return -1;
        }
    }
    return 0;
fail:
    log_error("%s: socket set-up: %s", sp->name, zmq_strerror(errno));
    return -1;
}

static void
print_stats(const struct kvsub *k)
{
    struct buf b = {0};

    buf_puts(&b, "{\"lines\":");
    buf_put_u64(&b, k->lines);
    buf_puts(&b, ",\"elapsed_ms\":");
    buf_put_u64(&b, (uint64_t)(cli_now_ms() - k->start_ms));
    buf_puts(&b, ",\"sources\":[");
    for (int i = 0; i < k->nsrc; i++) {
        const struct src_stats *st = &k->src[i].stats;
        const struct {
            const char *key;
            uint64_t v;
        } f[] = {
            {"received", st->received},
            {"batches", st->batches},
            {"events", st->events},
            {"gaps", st->gaps},
            {"lost", st->lost},
            {"replayed", st->replayed},
            {"restarts", st->restarts},
            {"duplicates", st->duplicates},
            {"decode_errors", st->decode_errors},
            {"snapshots", st->snapshots},
        };
        char layout[96];
        buf_puts(&b, i ? ",{\"pod\":" : "{\"pod\":");
        buf_put_json_str(&b, k->src[i].nsrc.pod.p, k->src[i].nsrc.pod.n);
        /* What the source speaks (docs/protocol.md#which-engine-auto). */
        buf_puts(&b, ",\"producer\":");
        const char *producer = wire_producer(k->src[i].shape, k->o->engine);
        buf_put_json_str(&b, producer, strlen(producer));
        wire_layout_text(k->src[i].shape, layout, sizeof layout);
        buf_puts(&b, ",\"layout\":");
        buf_put_json_str(&b, layout, strlen(layout));
        for (size_t j = 0; j < sizeof f / sizeof f[0]; j++) {
            buf_puts(&b, ",\"");
            buf_puts(&b, f[j].key);
            buf_puts(&b, "\":");
            buf_put_u64(&b, f[j].v);
        }
        buf_putc(&b, '}');
    }
    buf_puts(&b, "]}\n");
    if (!b.oom)
        fwrite(b.p, 1, b.len, stderr);
    fflush(stderr);
    buf_free(&b);
}

/* Milliseconds until the nearest of idle, duration and t; -1 if none. */
static long
poll_timeout(const struct kvsub *k, long long now, long long last_rx,
             long long t)
{
    if (k->o->idle_ms > 0) {
        long long d = last_rx + (long long)k->o->idle_ms - now;
        if (t < 0 || d < t)
            t = d;
    }
    if (k->o->duration_ms > 0) {
        long long d = k->start_ms + (long long)k->o->duration_ms - now;
        if (t < 0 || d < t)
            t = d;
    }
    if (t == -1)
        return -1;
    return t < 0 ? 0 : (long)t;
}

/*
 * Warns once about each source that has been silent for --warn-idle (any
 * message counts, an idle engine's empty batches too).  Returns the
 * milliseconds until the next source would be due, or -1.
 */
static long long
check_silence(struct kvsub *k, long long now)
{
    long long next = -1;

    if (k->o->warn_idle_ms == 0)
        return -1;
    for (int i = 0; i < k->nsrc; i++) {
        struct source *s = &k->src[i];
        long long due = s->last_rx + (long long)k->o->warn_idle_ms - now;
        if (s->silent)
            continue;
        if (due <= 0) {
            s->silent = 1;
            log_warn("%s: nothing received for %s", s->spec->name,
                     k->o->warn_idle_text);
        } else if (next < 0 || due < next) {
            next = due;
        }
    }
    return next;
}

/* What --stats-interval says of a source's connection. */
static const char *
source_state(const struct source *s)
{
    if (s->silent)
        return "silent";
    switch (s->mon.state) {
    case KVMON_UP:
        return "up";
    case KVMON_DOWN:
        return "down";
    default:
        return "connecting";
    }
}

/*
 * One rolling line on stderr (redis-cli --stat style) for --stats-interval:
 * per source the events per second since the last line, the gaps so far,
 * the lag (this machine's clock minus the newest batch's engine ts) and the
 * connection state.
 */
static void
print_stat_line(struct kvsub *k, long long elapsed_ms)
{
    struct timespec now;
    struct buf b = {0};
    char part[96];

    clock_gettime(CLOCK_REALTIME, &now);
    double wall = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
    for (int i = 0; i < k->nsrc; i++) {
        struct source *s = &k->src[i];
        uint64_t ev = s->stats.events - s->events_at_line;
        s->events_at_line = s->stats.events;
        buf_puts(&b, i ? "; " : "");
        buf_puts(&b, s->spec->name);
        snprintf(part, sizeof part, " %.0f ev/s, gaps %" PRIu64 ", lag ",
                 elapsed_ms > 0 ? (double)ev * 1000.0 / (double)elapsed_ms
                                : 0.0,
                 s->stats.gaps);
        buf_puts(&b, part);
        if (s->has_last_ts)
            snprintf(part, sizeof part, "%.0fms", (wall - s->last_ts) * 1000.0);
        else
            snprintf(part, sizeof part, "-");
        buf_puts(&b, part);
        buf_puts(&b, ", ");
        buf_puts(&b, source_state(s));
    }
    if (!b.oom)
        cli_note("stats: %.*s", (int)b.len, b.p);
    buf_free(&b);
}

/*
 * Prints the stats line when it is due.  Returns the milliseconds until the
 * next one, or -1 without --stats-interval.
 */
static long long
check_stat_line(struct kvsub *k, long long now, long long *last_line)
{
    long long every = (long long)k->o->stats_interval_ms;

    if (every == 0)
        return -1;
    if (now - *last_line >= every) {
        print_stat_line(k, now - *last_line);
        *last_line = now;
    }
    return *last_line + every - now;
}

/* The monotonic clock in microseconds. */
static long long
now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * Reads up to DRAIN_BUDGET live messages of s without blocking, stopping
 * early when one has to wait for a fill.  Returns the number read, or -1
 * after a receive error (logged).
 */
static int
drain_source(struct kvsub *k, struct source *s)
{
    int j;

    for (j = 0; j < DRAIN_BUDGET && !k->done && !cli_signal && !s->has_held;
         j++) {
        struct zsock_msg m;
        if (zsock_msg_recv(s->sub, &m, ZMQ_DONTWAIT) == -1) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            log_error("%s: receive: %s", s->spec->name, zmq_strerror(errno));
            return -1;
        }
        /*
         * A reconnect is posted to the monitor when the TCP or ipc connect
         * completes; the new connection's first message comes a ZMTP
         * handshake (several round trips between two I/O threads) later.
         * Looking at the monitor that often, rather than before every
         * message (a poll() system call each), still sees the reconnect
         * before any message of the new process is handled.
         */
        long long us = now_us();
        if (us - s->mon_checked_us >= MONITOR_CHECK_US) {
            kvmon_drain(&s->mon);
            s->mon_checked_us = us;
        }
        run_handle_live(k, s, &m, 0);
        zsock_msg_close(&m);
    }
    if (j > 0) {
        s->last_rx = cli_now_ms();
        if (s->silent)
            cli_note("%s: receiving again", s->spec->name);
        s->silent = 0;
    }
    return j;
}

/*
 * Sets what each source waits for: its SUB, or its DEALER while a fill is
 * under way.  Returns the milliseconds until the nearest fill clock, or
 * due when it is nearer (-1: none).
 */
static long long
arm_items(struct kvsub *k, zmq_pollitem_t *items, long long due)
{
    long long now = replay_now_ms();

    for (int i = 0; i < k->nsrc; i++) {
        struct source *s = &k->src[i];
        int filling = s->fill.kind != FILL_NONE;

        items[i].events = filling ? 0 : ZMQ_POLLIN;
        items[2 * k->nsrc + i].events = filling ? ZMQ_POLLIN : 0;
        if (filling) {
            long long d = replay_due(s->rc) - now;
            if (d < 0)
                d = 0;
            if (due < 0 || d < due)
                due = d;
        }
    }
    return due;
}

/*
 * Reconnects the SUB of every source whose connection libzmq closed and
 * abandoned (a message over --max-msg): the messages lost with it show as
 * a gap when the next one arrives.  Returns the milliseconds until the
 * next check is due, or -1.
 */
static long long
revive_sources(struct kvsub *k, long long now)
{
    long long due = -1;

    for (int i = 0; i < k->nsrc && !k->o->bind; i++) {
        struct source *s = &k->src[i];

        if (s->mon.dropped_ms == 0)
            continue;
        if (!kvmon_abandoned(&s->mon, now, REVIVE_MS)) {
            long long d = s->mon.dropped_ms + REVIVE_MS - now;
            if (due < 0 || d < due)
                due = d;
            continue;
        }
        s->mon.dropped_ms = 0;
        log_warn("%s: %s closed the connection and does not retry: a "
                 "message over --max-msg (%" PRIu64 " bytes) or a protocol "
                 "error; reconnecting",
                 s->spec->name, s->spec->pub, k->o->max_msg);
        zmq_disconnect(s->sub, s->spec->pub);
        if (zmq_connect(s->sub, s->spec->pub) == -1)
            log_error("%s: cannot connect to %s: %s", s->spec->name,
                      s->spec->pub, zmq_strerror(errno));
    }
    return due;
}

/* Whether a source has a fill under way. */
static int
any_filling(const struct kvsub *k)
{
    for (int i = 0; i < k->nsrc; i++) {
        if (k->src[i].fill.kind != FILL_NONE)
            return 1;
    }
    return 0;
}

/* Advances every fill whose DEALER is readable or whose clock is due. */
static void
step_fills(struct kvsub *k, const zmq_pollitem_t *items)
{
    for (int i = 0; i < k->nsrc && !k->done && !cli_signal; i++) {
        struct source *s = &k->src[i];

        if (s->fill.kind == FILL_NONE)
            continue;
        if ((items[2 * k->nsrc + i].revents & ZMQ_POLLIN) ||
            replay_now_ms() >= replay_due(s->rc)) {
            uint64_t before = s->stats.replayed;
            fill_step(k, s);
            if (s->stats.replayed != before)
                k->last_rx = cli_now_ms();
        }
    }
}

/*
 * Polls and drains the sources until something ends the run.  items holds
 * the nsrc SUB sockets, their nsrc monitors, their nsrc replay DEALERs,
 * then the signal pipe.
 */
static int
loop(struct kvsub *k, zmq_pollitem_t *items)
{
    long long last_line = cli_now_ms();
    int nitems = 3 * k->nsrc + 1;

    k->last_rx = last_line;
    for (int i = 0; i < k->nsrc; i++)
        k->src[i].last_rx = last_line;
    while (!k->done && !cli_signal) {
        long long now = cli_now_ms();
        long long warn_due;
        int n, got = 0;

        if (cli_take_usr1())
            print_stats(k);
        /* A fill under way is not idleness: its live batch still waits. */
        if ((k->o->idle_ms > 0 && !any_filling(k) &&
             now - k->last_rx >= (long long)k->o->idle_ms) ||
            (k->o->duration_ms > 0 &&
             now - k->start_ms >= (long long)k->o->duration_ms))
            break;
        warn_due = check_silence(k, now);
        long long line_due = check_stat_line(k, now, &last_line);
        if (line_due >= 0 && (warn_due < 0 || line_due < warn_due))
            warn_due = line_due;
        long long revive_due = revive_sources(k, now);
        if (revive_due >= 0 && (warn_due < 0 || revive_due < warn_due))
            warn_due = revive_due;
        warn_due = arm_items(k, items, warn_due);
        /*
         * Busy: take what is there.  Idle: flush, then block.  The last
         * item is the signal pipe, so a signal always ends the wait.
         */
        n = zmq_poll(items, nitems, 0);
        if (n == 0) {
            if (k->out.buf.len > 0 && cli_out_flush(&k->out) == -1)
                break;
            n = zmq_poll(items, nitems,
                         poll_timeout(k, now, k->last_rx, warn_due));
        }
        if (n > 0 && (items[nitems - 1].revents & ZMQ_POLLIN))
            cli_signal_drain();
        if (n == -1) {
            if (errno == EINTR)
                continue;
            log_error("poll: %s", zmq_strerror(errno));
            return 1;
        }
        for (int i = 0; i < k->nsrc; i++) {
            if (items[k->nsrc + i].revents & ZMQ_POLLIN)
                kvmon_drain(&k->src[i].mon);
        }
        step_fills(k, items);
        for (int i = 0; i < k->nsrc && !k->done && !cli_signal; i++) {
            int r;
            if (!(items[i].revents & ZMQ_POLLIN) || k->src[i].has_held)
                continue;
            if ((r = drain_source(k, &k->src[i])) == -1)
                return 1;
            got += r;
        }
        if (got > 0)
            k->last_rx = cli_now_ms();
    }
    return 0;
}

/*
 * With --curve-allow, starts the ZAP handler that admits only the listed
 * clients.  Before the first bind, so that no client gets in unchecked.
 */
static int
start_zap(struct kvsub *k)
{
    char err[256];

    if (!curve_allows())
        return 0;
    k->zap = curve_zap_start(k->zctx, err, sizeof err);
    if (k->zap == NULL) {
        log_error("%s", err);
        return -1;
    }
    return 0;
}

static void
stop_zap(struct kvsub *k)
{
    if (k->zap != NULL && curve_zap_refused(k->zap) > 0)
        log_info("CURVE: refused %lu handshakes of clients not in "
                 "--curve-allow",
                 curve_zap_refused(k->zap));
    curve_zap_stop(k->zap);
}

int
kvsub_run(const struct kvsub_opts *o)
{
    struct kvsub k;
    zmq_pollitem_t *items = NULL;
    int rc = 1, sig;

    memset(&k, 0, sizeof k);
    k.o = o;
    k.nsrc = o->nspecs;
    k.wopts.engine = o->engine;
    k.wopts.shape = &k.shape;
    k.start_ms = cli_now_ms();
    cli_out_init(&k.out, STDOUT_FILENO);
    k.zctx = zmq_ctx_new();
    k.src = calloc((size_t)o->nspecs, sizeof *k.src);
    items = calloc(3 * (size_t)o->nspecs + 1, sizeof *items);
    if (k.zctx == NULL || k.src == NULL || items == NULL) {
        log_error("out of memory");
        goto out;
    }
    if (start_zap(&k) == -1)
        goto out;
    for (int i = 0; i < o->nspecs; i++) {
        if (open_source(&k, &k.src[i], &o->specs[i], i) == -1)
            goto out;
        items[i].socket = k.src[i].sub;
        items[i].events = ZMQ_POLLIN;
        items[o->nspecs + i].socket = k.src[i].mon.pair;
        items[o->nspecs + i].events = ZMQ_POLLIN;
        /* A source without a replay endpoint never polls a DEALER. */
        items[2 * o->nspecs + i].socket =
            k.src[i].rc ? replay_socket(k.src[i].rc) : NULL;
        items[2 * o->nspecs + i].fd = -1;
    }
    items[3 * o->nspecs].fd = cli_signal_fd();
    items[3 * o->nspecs].events = ZMQ_POLLIN;
    /*
     * Every SUB is connected first, so that live batches queue meanwhile;
     * the catch-ups run in the loop, side by side.
     */
    for (int i = 0; i < o->nspecs && !k.done && !cli_signal; i++)
        fill_catch_up(&k, &k.src[i]);
    rc = loop(&k, items);
    cli_out_flush(&k.out);
    if (k.out.err) {
        log_error("write: %s", strerror(k.out.err));
        rc = 1;
    }
out:
    sig = cli_signal;
    if (o->stats && k.src != NULL)
        print_stats(&k);
    for (int i = 0; k.src != NULL && i < o->nspecs; i++) {
        kvmon_close(&k.src[i].mon);
        if (k.src[i].has_held)
            zsock_msg_close(&k.src[i].held);
        buf_free(&k.src[i].last_payload);
        replay_close(k.src[i].rc);
        if (k.src[i].sub != NULL)
            zmq_close(k.src[i].sub);
    }
    stop_zap(&k);
    if (k.zctx != NULL)
        zmq_ctx_term(k.zctx);
    arena_free(&k.live_arena);
    arena_free(&k.replay_arena);
    cli_out_free(&k.out);
    free(k.src);
    free(items);
    if (sig != 0 && rc == 0)
        cli_reraise(sig);
    return rc;
}

/*
 * fill.c - kvsub's replay fills, run in the poll loop (see sub.h).
 *
 * A fill fetches seqs through the source's replay DEALER without blocking:
 * while it is under way the source's SUB is not read and the live message
 * that revealed the gap waits in s->held, so the output stays in seq
 * order, while every other source goes on.  Three kinds: the catch-up of
 * -o, a gap before a live batch, and the check after a reconnect that the
 * engine is still the process it was (the payload of the last batch
 * written is fetched again and compared).
 */
#include <inttypes.h>
#include <string.h>

#include "sub.h"

/*
 * Replay policy (docs/protocol.md#replay): one fill in flight per engine,
 * ending at the latest FILL_DEADLINE_FACTOR x --replay-timeout after it
 * started; after a fill that failed, the engine's replay socket is left
 * alone for a backoff that starts at FILL_BACKOFF_MIN_MS and doubles up to
 * FILL_BACKOFF_MAX_MS, and gaps meanwhile are reported without asking.
 */
#define FILL_DEADLINE_FACTOR 5
#define FILL_BACKOFF_MIN_MS 1000
#define FILL_BACKOFF_MAX_MS 60000

/* Keeps a copy of the last batch written, for a check after a reconnect. */
void
fill_keep_payload(struct source *s, uint64_t seq, const uint8_t *p, size_t len)
{
    buf_clear(&s->last_payload);
    buf_put(&s->last_payload, p, len);
    s->has_last_payload = !s->last_payload.oom;
    s->last_payload_seq = seq;
}

static int
on_replay(void *ctx, uint64_t seq, const uint8_t *payload, size_t len)
{
    struct fill *f = ctx;
    struct kv_batch b;
    char err[256];
    int ok;

    if (f->kind == FILL_VERIFY) {
        const struct buf *lp = &f->s->last_payload;
        f->same = lp->len == len && memcmp(lp->p, payload, len) == 0 ? 1 : -1;
        return 1;
    }
    if (seq < f->expect)
        return 0;
    ok = run_decode(f->k, &f->k->replay_arena, seq, payload, len, &b, err,
                    sizeof err);
    /*
     * Without a live batch (a catch-up), the gap record takes the rank of
     * the first batch the engine still has, so that it lands on that pod.
     */
    if (seq > f->expect && f->resnap) {
        f->lost = 1;
        return 1;
    }
    if (seq > f->expect) {
        const struct kv_batch *env = f->has_env ? &f->env : NULL;
        if (env == NULL && ok)
            env = &b;
        run_write_gap(f->k, f->s, env, f->expect, seq - 1,
                      "the engine no longer has them");
    }
    run_write_payload(f->k, f->s, seq, &b, ok, err, len);
    fill_keep_payload(f->s, seq, payload, len);
    if (f->s->stats.replayed++ == 0)
        f->s->first_replayed = seq;
    seqtrack_advance(&f->s->st, seq);
    f->expect = seq + 1;
    return f->k->done || cli_signal ? 1 : 0;
}

static void
on_bad_reply(void *ctx, const char *why, size_t bytes)
{
    struct fill *f = ctx;
    log_debug("%s: bad replay reply (%s, %zu bytes)", f->s->spec->name, why,
              bytes);
}

/*
 * Starts fetching from..to from the source's replay socket in the poll
 * loop, the answers going to on_replay.  live (NULL for none) is the
 * envelope for gap records.  Returns 1 when the fill is under way, 0 when
 * it is already over: no replay endpoint or a backoff (the gap record is
 * written), or nothing to fetch.
 */
int
fill_start(struct kvsub *k, struct source *s, enum fill_kind kind,
           const struct kv_batch *live, uint64_t from, uint64_t to)
{
    struct fill *f = &s->fill;
    struct replay_request req;
    long long now = cli_now_ms();

    if (s->rc == NULL || now < s->backoff_until) {
        if (kind == FILL_GAP)
            run_write_gap(k, s, live, from, to,
                          s->rc == NULL ? "no replay endpoint"
                                        : "replay backing off after a failed "
                                          "fill");
        return 0;
    }
    memset(f, 0, sizeof *f);
    f->k = k;
    f->s = s;
    f->kind = kind;
    f->from = f->expect = from;
    f->to = to;
    f->resnap = kind == FILL_GAP && s->spec->snapshot != NULL;
    if (live != NULL) {
        f->has_env = 1;
        f->env = *live;
        f->env.events = NULL;
        f->env.n_events = 0;
    }
    memset(&req, 0, sizeof req);
    req.from = from;
    req.to = to;
    req.timeout_ms = (int)k->o->replay_timeout_ms;
    req.deadline_ms = FILL_DEADLINE_FACTOR * k->o->replay_timeout_ms;
    if (replay_start(s->rc, &req, on_replay, on_bad_reply, f) != REPLAY_MORE) {
        /* Nothing to fetch, or the request could not even be sent. */
        f->kind = FILL_NONE;
        if (kind == FILL_GAP && replay_result(s->rc, NULL) != REPLAY_OK)
            run_write_gap(k, s, live, from, to, replay_error(s->rc));
        return 0;
    }
    return 1;
}

/* After a fill: back off from an engine whose replay failed. */
static void
note_fill_outcome(struct source *s, int rc)
{
    if (rc == REPLAY_TIMEOUT || rc == REPLAY_ERROR) {
        s->backoff_ms =
            s->backoff_ms == 0 ? FILL_BACKOFF_MIN_MS : 2 * s->backoff_ms;
        if (s->backoff_ms > FILL_BACKOFF_MAX_MS)
            s->backoff_ms = FILL_BACKOFF_MAX_MS;
        s->backoff_until = cli_now_ms() + s->backoff_ms;
        log_info("%s: replay backs off for %lldms", s->spec->name,
                 s->backoff_ms);
    } else if (rc == REPLAY_OK) {
        s->backoff_ms = 0;
    }
}

/*
 * The end of a gap fill: what replay could not fill becomes a fresh
 * snapshot (when the engine has one) or a gap record.  Returns 1 when
 * another fill was started (after a snapshot).
 */
static int
end_gap_fill(struct kvsub *k, struct source *s, int rc,
             const struct replay_result *res)
{
    struct fill *f = &s->fill;
    const struct kv_batch *live = f->has_env ? &f->env : NULL;
    const char *why, *err = replay_error(s->rc);
    uint64_t to = f->to;

    /*
     * What replay cannot fill, a fresh snapshot replaces when the engine
     * has one (docs/ndjson.md#records-written-by-kvtap): it holds the
     * state after the hole, so no gap record is needed.
     */
    if ((f->lost || (rc != REPLAY_STOPPED && f->expect <= to)) && f->resnap &&
        run_print_snapshot(k, s, "replay cannot fill a gap")) {
        return s->snapshot_seq < to &&
               fill_start(k, s, FILL_GAP, live, s->snapshot_seq + 1, to);
    }
    if (rc == REPLAY_STOPPED && f->expect <= to)
        return 0;
    if (f->expect > to) {
        log_info("%s: replayed %" PRIu64 "..%" PRIu64 " (%" PRIu64
                 " re-requests)",
                 s->spec->name, f->from, to, res->retries);
        return 0;
    }
    switch (rc) {
    case REPLAY_OK:
        why = "the engine no longer has them";
        break;
    case REPLAY_TIMEOUT:
        why = strstr(err, "deadline") ? "replay deadline passed"
                                      : "replay timed out";
        break;
    default:
        why = err[0] ? err : "replay failed";
    }
    run_write_gap(k, s, live, f->expect, to, why);
    return 0;
}

/* The end of a catch-up (-o): says where it stands. */
static void
end_catch_up(struct source *s, int rc)
{
    const char *err = replay_error(s->rc);

    /* A wrong replay port would otherwise only show as a gap, if at all. */
    if (rc == REPLAY_TIMEOUT && s->stats.replayed == 0)
        log_warn("%s: replay %s (catching up at the first live batch)",
                 s->spec->name, err);
    else if (rc == REPLAY_TIMEOUT || rc == REPLAY_ERROR)
        log_warn("%s: replay: %s", s->spec->name, err);
    if (s->stats.replayed > 0 || s->from_snapshot)
        run_note_joined(s, s->fill.expect);
}

/*
 * The end of a check after a reconnect: another payload at the last seq
 * written, or an engine that has not reached it, is another process.
 */
static void
end_verify(struct source *s, int rc, const struct replay_result *res)
{
    const struct fill *f = &s->fill;

    if (f->same == 1) {
        log_info("%s: reconnected to the same engine process (seq %" PRIu64
                 " unchanged)",
                 s->spec->name, f->from);
    } else if (f->same == -1 ||
               (rc == REPLAY_OK && res->got_end && !res->has_lost)) {
        s->force_restart = 1;
    } else {
        log_warn("%s: reconnected, but cannot tell whether the engine "
                 "restarted (%s)",
                 s->spec->name,
                 res->has_lost ? "it no longer holds the last seq seen"
                               : replay_error(s->rc));
    }
}

/*
 * Advances the source's fill (its DEALER was readable or a clock is due).
 * When the fill ends, the live batch that waited for it is written and
 * the SUB is read again.
 */
void
fill_step(struct kvsub *k, struct source *s)
{
    struct replay_result res;
    struct zsock_msg m;
    char err[256];
    enum fill_kind kind = s->fill.kind;
    int rc = replay_step(s->rc), again = 0;

    if (rc == REPLAY_MORE)
        return;
    replay_result(s->rc, &res);
    s->fill.kind = FILL_NONE;
    /*
     * Whatever is still in flight after a failure is of no use, and libzmq
     * does not reconnect a connection it closed for a reply over --max-msg.
     */
    if ((rc == REPLAY_TIMEOUT || rc == REPLAY_ERROR) &&
        replay_reconnect(s->rc, err, sizeof err) == -1)
        log_warn("%s: replay: %s", s->spec->name, err);
    /* An engine not up yet fails a catch-up; that is no reason to wait. */
    if (kind == FILL_GAP)
        note_fill_outcome(s, rc);
    if (kind == FILL_GAP)
        again = end_gap_fill(k, s, rc, &res);
    else if (kind == FILL_CATCHUP)
        end_catch_up(s, rc);
    else
        end_verify(s, rc, &res);
    if (again || !s->has_held)
        return;
    /*
     * After a check the batch is classified now (handle_live may hold it
     * again for a gap); after a fill its verdict was acted on.
     */
    s->has_held = 0;
    zsock_msg_move(&m, &s->held);
    if (kind == FILL_VERIFY)
        run_handle_live(k, s, &m, 1);
    else
        run_write_held(k, s, &m);
    zsock_msg_close(&m);
}

/*
 * -o beginning or SEQ: prints what the engine's replay buffer holds from the
 * offset on, up to its end marker, before the first live batch is looked
 * at.  Seqs the buffer no longer has become a gap record first.  When the
 * engine does not answer (not up yet), the first live batch fills the range
 * instead (handle_live).
 */
void
fill_catch_up(struct kvsub *k, struct source *s)
{
    uint64_t from = k->o->offset_seq;

    if (k->o->offset_now)
        return;
    if (s->spec->snapshot != NULL && k->o->offset_seq == 0 &&
        run_print_snapshot(k, s, NULL)) {
        s->from_snapshot = 1;
        from = s->snapshot_seq + 1;
    }
    if (s->rc == NULL) {
        if (s->from_snapshot)
            run_note_joined(s, from);
        return;
    }
    fill_start(k, s, FILL_CATCHUP, NULL, from, UINT64_MAX);
}

/*
 * After a reconnect of the SUB (its monitor counts them), the engine may
 * be a new process whose seqs happen to go on from the old ones: starts
 * re-fetching the last seq written to compare its bytes (FILL_VERIFY).
 * A stream id answers the question by itself.  Returns 1 when the check
 * is under way (the live batch must wait for it).
 */
int
fill_check_reconnect(struct kvsub *k, struct source *s, const uint8_t *stream)
{
    if (s->mon.reconnects == s->reconnects_seen)
        return 0;
    s->reconnects_seen = s->mon.reconnects;
    if (stream != NULL || !s->st.started)
        return 0;
    if (s->rc == NULL || !s->has_last_payload) {
        s->unchecked = 1;
        return 0;
    }
    return fill_start(k, s, FILL_VERIFY, NULL, s->last_payload_seq,
                      s->last_payload_seq);
}

/*
 * seqtrack.h - per-source sequence bookkeeping: baseline, next, gap,
 * duplicate, restart (docs/protocol.md#sequence-numbers).  No I/O.
 *
 * A publisher numbers its batches 0, 1, 2, ... and starts again at 0 when it
 * restarts.  The tracker classifies every seq that arrives on the live stream
 * and remembers which seqs have been delivered, so that the caller can fill
 * a gap through replay, drop a batch that replay already delivered, and tell
 * a restart from an overlap.
 *
 * Usage: call seqtrack_live() for each live seq.  FIRST, NEXT, RESTART: write
 * the batch, then seqtrack_advance(seq).  GAP: fill from..to (replay), calling
 * seqtrack_advance() for each seq delivered or given up (a gap record), then
 * write the live batch and seqtrack_advance(seq).  DUP: drop it.
 */
#ifndef KVTAP_SEQTRACK_H
#define KVTAP_SEQTRACK_H

#include <stdint.h>

enum seqtrack_kind {
    SEQTRACK_FIRST,  /* the first seq seen: the baseline, no gap */
    SEQTRACK_NEXT,   /* exactly the one expected */
    SEQTRACK_GAP,    /* seqs from..to are missing before this one */
    SEQTRACK_DUP,    /* already delivered (replay overlapped live): drop */
    SEQTRACK_RESTART /* went backwards: the publisher restarted */
};

struct seqtrack_verdict {
    enum seqtrack_kind kind;
    uint64_t from, to; /* GAP: the missing seqs, inclusive */
    uint64_t last_seq; /* RESTART: the last seq delivered before it */
};

/*
 * The state of one source.  Plain data: zero it (or seqtrack_init) to start.
 * last is the last seq delivered or given up; live_hi the highest seq seen on
 * the live stream.  A seq in (live_hi, last] can only have come through
 * replay, so seeing it live again is an overlap, not a restart.  live_seen
 * is 0 while everything delivered came by replay (a subscriber that caught
 * up from the replay buffer before its first live batch): then every live
 * seq up to last is a copy queued while replay ran, seq 0 included.
 */
struct seqtrack {
    int started;
    int rebase;    /* FIRST or RESTART seen: the next advance sets last */
    int live_seen; /* seqtrack_live() was called since the baseline */
    uint64_t last;
    uint64_t live_hi;
};

void seqtrack_init(struct seqtrack *t);

/*
 * Classifies a seq received on the live stream and notes it as seen live.
 * A seq below the next expected one is a duplicate when it equals the last
 * delivered seq or lies above everything seen live (so it came by replay);
 * or when nothing has been seen live yet (the caught-up seam); otherwise the
 * stream went backwards: a restart, after which the tracker
 * starts over with seq as its baseline (the caller still advances to it).
 */
void seqtrack_live(struct seqtrack *t, uint64_t seq,
                   struct seqtrack_verdict *v);

/*
 * The next seq to deliver: last + 1, or the baseline seq right after a FIRST
 * or RESTART verdict; 0 before any seq.
 */
uint64_t seqtrack_next(const struct seqtrack *t);

/*
 * Records that every seq up to and including seq has been delivered or given
 * up.  Moving backwards is ignored except right after a RESTART verdict.
 */
void seqtrack_advance(struct seqtrack *t, uint64_t seq);

#endif

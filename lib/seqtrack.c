/*
 * seqtrack.c - per-source sequence bookkeeping (see seqtrack.h).
 */
#include "seqtrack.h"

#include <string.h>

void
seqtrack_init(struct seqtrack *t)
{
    memset(t, 0, sizeof *t);
}

uint64_t
seqtrack_next(const struct seqtrack *t)
{
    if (!t->started)
        return 0;
    /* After FIRST or RESTART the live seq itself is the one to deliver. */
    return t->rebase ? t->live_hi : t->last + 1;
}

void
seqtrack_live(struct seqtrack *t, uint64_t seq, struct seqtrack_verdict *v)
{
    int seen = t->live_seen;

    memset(v, 0, sizeof *v);
    t->live_seen = 1;
    if (!t->started) {
        v->kind = SEQTRACK_FIRST;
        t->started = 1;
        t->rebase = 1;
        t->live_hi = seq;
        return;
    }
    if (seq > t->last) {
        if (seq == t->last + 1) {
            v->kind = SEQTRACK_NEXT;
        } else {
            v->kind = SEQTRACK_GAP;
            v->from = t->last + 1;
            v->to = seq - 1;
        }
        if (seq > t->live_hi)
            t->live_hi = seq;
        return;
    }
    /*
     * Below the next expected seq.  The publisher sends each seq once and in
     * order, so a seq at or below the highest one seen live means it went
     * backwards -- except the last delivered seq itself, which replay and live
     * can both hand over.  Above live_hi it can only have come by replay, and
     * so can anything before the first live seq when replay set the baseline.
     */
    if (seq == t->last || seq > t->live_hi || !seen) {
        v->kind = SEQTRACK_DUP;
        if (seq > t->live_hi)
            t->live_hi = seq;
        return;
    }
    v->kind = SEQTRACK_RESTART;
    v->last_seq = t->last;
    t->rebase = 1;
    t->live_hi = seq;
}

void
seqtrack_advance(struct seqtrack *t, uint64_t seq)
{
    if (t->rebase) {
        /*
         * Not live_hi: a seq above it here came by a snapshot, and the live
         * copies queued up to it are duplicates, not a restart.
         */
        t->last = seq;
        t->rebase = 0;
        t->started = 1;
        return;
    }
    if (!t->started) {
        /* Advancing before any live seq: a baseline set from replay. */
        t->started = 1;
        t->last = seq;
        return;
    }
    if (seq > t->last)
        t->last = seq;
}

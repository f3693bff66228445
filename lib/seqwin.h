/*
 * seqwin.h - which sequence numbers of a recent window were seen.  No I/O.
 *
 * A bitmap over the SEQWIN_SPAN sequence numbers below the highest one
 * added so far, kept as a ring of words, so that memory stays fixed however
 * long the numbers run.  kvjs sub adds the stream sequence of each message
 * it writes, and asks about a message delivered again whether it was
 * written already (docs/cluster.md#reading-the-stream).
 */
#ifndef KVTAP_SEQWIN_H
#define KVTAP_SEQWIN_H

#include <stdint.h>

/* The window's size: 4,194,304 numbers in 64-number words, up to and
 * including the word of the highest number added; 512 KiB, allocated at
 * the first seqwin_add. */
#define SEQWIN_SPAN ((uint64_t)1 << 22)

/* Zero it to start; seqwin_free when done. */
struct seqwin {
    uint64_t *bits; /* SEQWIN_SPAN bits, a ring of words; NULL before an add */
    uint64_t top;   /* 1 + the word of the highest number added; 0: none */
};

/*
 * Notes seq as seen.  A number below the window (about SEQWIN_SPAN or more
 * below the highest one) is not kept: seqwin_has says -1 for it either way.
 * A higher number moves the window up and forgets what falls out of it.
 * Returns 0, or -1 with errno ENOMEM.
 */
int seqwin_add(struct seqwin *w, uint64_t seq);

/*
 * Returns 1 when seq was added and is still in the window, 0 when it was
 * not added (nothing added yet, or above or in the window without its
 * bit), -1 when it lies below the window, where the answer is forgotten.
 */
int seqwin_has(const struct seqwin *w, uint64_t seq);

/* Frees the bitmap; w is then as if zeroed.  Accepts a zeroed w. */
void seqwin_free(struct seqwin *w);

#endif

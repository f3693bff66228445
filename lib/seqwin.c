/*
 * seqwin.c - which sequence numbers of a recent window were seen.
 */
#include "seqwin.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define WORDS (SEQWIN_SPAN / 64)

/* Whether word lies below the window, whose last word is top - 1. */
static int
below(const struct seqwin *w, uint64_t word)
{
    return w->top > WORDS && word < w->top - WORDS;
}

int
seqwin_add(struct seqwin *w, uint64_t seq)
{
    uint64_t word = seq >> 6;

    if (w->bits == NULL) {
        w->bits = calloc(WORDS, sizeof *w->bits);
        if (w->bits == NULL) {
            errno = ENOMEM;
            return -1;
        }
    }
    if (word >= w->top) {
        /* The words the window moves over held numbers that have fallen
         * out of it. */
        if (word - w->top >= WORDS)
            memset(w->bits, 0, WORDS * sizeof *w->bits);
        else
            for (uint64_t j = w->top; j <= word; j++)
                w->bits[j % WORDS] = 0;
        w->top = word + 1;
    } else if (below(w, word)) {
        return 0;
    }
    w->bits[word % WORDS] |= (uint64_t)1 << (seq & 63);
    return 0;
}

int
seqwin_has(const struct seqwin *w, uint64_t seq)
{
    uint64_t word = seq >> 6;

    if (word >= w->top)
        return 0;
    if (below(w, word))
        return -1;
    return (int)(w->bits[word % WORDS] >> (seq & 63) & 1);
}

void
seqwin_free(struct seqwin *w)
{
    free(w->bits);
    w->bits = NULL;
    w->top = 0;
}

/*
 * dumpout.h - prints a dump reply as it arrives: the reply
 * {"id":null,"ok":true,"data":{"lines":[L1,L2,...]}} becomes the lines L1,
 * L2, ...
 * on a stream, one per line, without holding the reply (a dump is as large
 * as the index).  Any other reply (an error) is kept whole for the caller.
 */
#ifndef KVINDEX_DUMPOUT_H
#define KVINDEX_DUMPOUT_H

#include <stddef.h>
#include <stdio.h>

#include "buf.h"

/* The parser's state; zero it, then set out.  Plain data apart from kept. */
struct dumpout {
    FILE *out;      /* where the lines go; borrowed */
    int state;      /* where in the reply the next byte is */
    size_t matched; /* bytes of the ok prefix seen */
    size_t depth;   /* nesting inside the current line */
    int in_str, esc;
    int bad;         /* the reply broke the dump's shape */
    unsigned long n; /* lines printed */
    int out_errno;   /* why writing to out failed (EPIPE: the reader left) */
    struct buf line; /* the line being read */
    struct buf kept; /* a reply that is not an ok dump, whole */
};

/*
 * Takes the next piece of the reply (without its final '\n') and prints
 * every line it completes.  Returns 0, or -1 with errno set when writing
 * to out failed (also in out_errno) or memory ran out.
 */
int dumpout_feed(void *d, const char *p, size_t n);

/*
 * After the whole reply: 1 when it was an ok dump, all printed; 0 when it
 * was another reply, kept whole in d->kept (for the usual error report);
 * -1 when it was cut short or malformed, or another reply was over 1 MiB.
 */
int dumpout_end(struct dumpout *d);

/* Frees what dumpout kept.  Accepts a zeroed dumpout. */
void dumpout_free(struct dumpout *d);

#endif

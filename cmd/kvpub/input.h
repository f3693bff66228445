/*
 * input.h - NDJSON events grouped back into the batches they came in.
 *
 * Lines are grouped by a change of (pod, dp_rank, seq): a capture written by
 * kvsub keeps a batch's lines together, so the change marks the end of a
 * batch.  A line without seq is a batch of its own.  Stream records (gap,
 * restart, decode_error, skipped) are not engine events and are skipped.
 *
 * The reader never blocks: when it needs more bytes it says so, and the
 * caller waits on in->fd together with its sockets (replay keeps being
 * served while the input is slow).
 */
#ifndef KVPUB_INPUT_H
#define KVPUB_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "event.h"
#include "lines.h"

struct input {
    int fd;
    int own_fd;
    int seekable;
    int keep;        /* not seekable and --loop: keep every line in kept */
    struct buf kept; /* the lines of the first pass, each '\n'-terminated */
    int from_memory; /* after a rewind of a non-seekable input */
    size_t mem_off;
    struct lines lines;
    const char *pod;    /* publish only this pod's lines, or NULL */
    struct buf pending; /* the first line of the next batch */
    int has_pending;
    uint64_t pending_no; /* its line number */
    uint64_t lineno;     /* line number in the current pass */
    /* The batch being collected. */
    struct kv_event *ev;
    size_t n_ev, cap_ev;
    struct kv_str key_pod;
    int key_has_rank, key_has_seq, key_has_ts;
    int64_t key_rank;
    uint64_t key_seq;
    double key_ts;
    int collecting;
    /* Counters. */
    uint64_t records;  /* stream records skipped */
    uint64_t filtered; /* lines of other pods */
};

enum input_rc {
    INPUT_END = 0,   /* end of input */
    INPUT_BATCH = 1, /* *b holds a batch */
    INPUT_MORE = 2,  /* wait until in->fd is readable, then input_fill() */
    INPUT_BAD = 3,   /* a bad line was skipped; the reason is in err */
    INPUT_ERR = -1   /* cannot go on; the reason is in err */
};

/*
 * Opens path ("-" or NULL: standard input).  keep_for_loop asks to keep the
 * lines in memory when the input cannot be read again from its start.  pod,
 * when not NULL, is borrowed for the life of the reader.  Returns 0, or -1
 * with the reason in err.
 */
int input_open(struct input *in, const char *path, int keep_for_loop,
               const char *pod, char *err, size_t errlen);

/*
 * Collects the next batch.  Its events and the strings they point to live
 * in arena and in the reader (valid until the next input_next call or
 * arena_reset).  The arena must hold nothing else: the reader resets it
 * while no batch is being collected, to drop the lines it skipped. b->ts/has_ts
 * and b->rank/has_rank come from the batch's first line; b->seq is left to the
 * caller.  Returns an enum input_rc.
 */
int input_next(struct input *in, struct arena *arena, struct kv_batch *b,
               char *err, size_t errlen);

/*
 * Reads what the descriptor has (after INPUT_MORE).  Returns 0, or -1 with
 * errno (EINTR when a signal arrived, EAGAIN when nothing was there).
 */
int input_fill(struct input *in);

/*
 * Starts over from the first line (--loop).  Returns 0, or -1 with the
 * reason in err.
 */
int input_rewind(struct input *in, char *err, size_t errlen);

/* Closes the file (not standard input) and frees memory.  Accepts NULL. */
void input_close(struct input *in);

#endif

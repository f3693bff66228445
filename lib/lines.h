/*
 * lines.h - reading '\n'-terminated lines from a file descriptor with a cap.
 *
 * A line longer than the cap is reported as too long and skipped without
 * ever being held in memory whole (kvindex --max-line).  Works on blocking
 * and non-blocking descriptors: lines_fill() reads what is available, and
 * lines_next() hands out the complete lines buffered so far.  The one line
 * reader of the tools: kvindex's input, its server's request lines and its
 * client's reply lines, and kvpub's input.
 */
#ifndef KVTAP_LINES_H
#define KVTAP_LINES_H

#include <stddef.h>
#include <stdint.h>

struct lines {
    int fd;
    size_t max_line;
    char *buf;
    size_t cap, start, end;
    size_t scanned; /* buf[start..start+scanned) is known to hold no '\n' */
    int skipping;   /* inside an over-long line: drop bytes until '\n' */
    int eof;
    uint64_t lineno; /* number of the line last returned (from 1) */
};

/* Sets up a reader on fd (not owned) with the given cap.  Returns 0 or -1. */
int lines_init(struct lines *l, int fd, size_t max_line);

/*
 * Reads once from the descriptor.  Returns the number of bytes read, 0 at
 * end of file (l->eof is set), or -1 with errno (EAGAIN on an empty
 * non-blocking descriptor, EINTR on a signal, ENOBUFS when the buffer is
 * full of complete lines: take them with lines_next first).  When every
 * line has been handed out, a buffer grown past 256 KiB by a long line
 * shrinks back first, so memory follows the lines in flight.
 */
long lines_fill(struct lines *l);

enum lines_rc { LINES_NONE = 0, LINES_OK = 1, LINES_TOO_LONG = 2 };

/*
 * Hands out the next complete line (without '\n'; borrowed until the next
 * lines_fill).  At end of file an unterminated last line counts as a line.
 * LINES_TOO_LONG reports a line that exceeded the cap (its bytes are gone);
 * LINES_NONE means no complete line is buffered.
 */
int lines_next(struct lines *l, const char **line, size_t *len);

/* Bytes read but not handed out yet: a partial line, or lines that
 * lines_next has still to hand out. */
size_t lines_buffered(const struct lines *l);

/* Frees the buffer (not the descriptor).  Accepts NULL. */
void lines_free(struct lines *l);

#endif

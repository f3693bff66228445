/*
 * lines.c - '\n'-terminated lines from a descriptor, with a cap.
 *
 * The buffer starts small and grows up to max_line + 1 bytes (a full line
 * and its newline), so memory follows the longest line actually seen, never
 * the cap.  A partial line that already exceeds the cap is reported at once
 * and the rest of it is dropped as it arrives.
 */
#include "lines.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LINES_INITIAL (64 * 1024)
#define LINES_SHRINK (4 * LINES_INITIAL)

int
lines_init(struct lines *l, int fd, size_t max_line)
{
    memset(l, 0, sizeof *l);
    l->fd = fd;
    if (max_line == 0 || max_line >= SIZE_MAX / 2) {
        errno = EINVAL;
        return -1;
    }
    l->max_line = max_line;
    l->cap = max_line + 1 < LINES_INITIAL ? max_line + 1 : LINES_INITIAL;
    l->buf = malloc(l->cap);
    if (l->buf == NULL)
        return -1;
    return 0;
}

long
lines_fill(struct lines *l)
{
    /* Lines handed out so far are released: keep only the partial one. */
    if (l->start == l->end) {
        l->start = l->end = 0;
        if (l->cap > LINES_SHRINK) {
            char *p = realloc(l->buf, LINES_INITIAL);
            if (p != NULL) {
                l->buf = p;
                l->cap = LINES_INITIAL;
            }
        }
    } else if (l->start > 0) {
        memmove(l->buf, l->buf + l->start, l->end - l->start);
        l->end -= l->start;
        l->start = 0;
    }
    if (l->end == l->cap) {
        if (l->cap > l->max_line) {
            /*
             * Full with a cap-sized partial line: lines_next() was not
             * called to drain it (it would have reported it too long).
             */
            errno = ENOBUFS;
            return -1;
        }
        size_t cap =
            l->cap * 2 > l->max_line + 1 ? l->max_line + 1 : l->cap * 2;
        char *p = realloc(l->buf, cap);
        if (p == NULL)
            return -1;
        l->buf = p;
        l->cap = cap;
    }
    ssize_t n = read(l->fd, l->buf + l->end, l->cap - l->end);
    if (n < 0)
        return -1;
    if (n == 0) {
        l->eof = 1;
        return 0;
    }
    l->end += (size_t)n;
    return (long)n;
}

int
lines_next(struct lines *l, const char **line, size_t *len)
{
    for (;;) {
        char *base = l->buf + l->start;
        size_t avail = l->end - l->start;
        /* A long line arriving in many reads is searched once. */
        char *nl = avail > l->scanned
                       ? memchr(base + l->scanned, '\n', avail - l->scanned)
                       : NULL;

        l->scanned = nl == NULL ? avail : 0;

        if (l->skipping) {
            if (nl == NULL) {
                /* Still inside the over-long line: drop what came. */
                l->start = l->end = l->scanned = 0;
                if (l->eof)
                    l->skipping = 0;
                return LINES_NONE;
            }
            l->start += (size_t)(nl - base) + 1;
            l->skipping = 0;
            continue;
        }
        if (nl != NULL) {
            size_t n = (size_t)(nl - base);
            l->start += n + 1;
            l->lineno++;
            if (n > l->max_line)
                return LINES_TOO_LONG;
            *line = base;
            *len = n;
            return LINES_OK;
        }
        if (avail > l->max_line) {
            l->start = l->end = l->scanned = 0;
            l->skipping = !l->eof;
            l->lineno++;
            return LINES_TOO_LONG;
        }
        if (l->eof && avail > 0) {
            l->start = l->end;
            l->scanned = 0;
            l->lineno++;
            *line = base;
            *len = avail;
            return LINES_OK;
        }
        return LINES_NONE;
    }
}

size_t
lines_buffered(const struct lines *l)
{
    return l->end - l->start;
}

void
lines_free(struct lines *l)
{
    if (l == NULL)
        return;
    free(l->buf);
    l->buf = NULL;
    l->cap = l->start = l->end = 0;
}

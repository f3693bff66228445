/*
 * dumpout.c - a dump reply printed as it arrives (dumpout.h).
 *
 * The server writes a dump as {"id":null,"ok":true,"data":{"lines":[ then
 * the snapshot lines as JSON objects separated by commas, then ]}}.  The
 * scanner follows strings and nesting only as far as it needs to find
 * where each object ends; the objects are the server's snapshot writer's
 * lines and pass through byte for byte, each printed once it is whole.
 */
#include "dumpout.h"

#include <errno.h>
#include <string.h>

/* The client's dump request carries no id, so the server's "id" is null. */
static const char ok_prefix[] =
    "{\"id\":null,\"ok\":true,\"data\":{\"lines\":[";
static const char ok_suffix[] = "]}}";

/* An error reply is one short line; a longer one that is not a dump is
 * not kvindex's. */
#define KEEP_MAX ((size_t)1 << 20)

enum {
    D_PREFIX, /* matching ok_prefix */
    D_KEEP,   /* not an ok dump: keeping the reply whole */
    D_GAP,    /* between lines: ',' or the ']' that ends them */
    D_LINE,   /* inside a line */
    D_SUFFIX, /* matching the rest of ok_suffix */
    D_DONE
};

/* Scans the bytes of a line from p; returns how many belong to it, and
 * leaves the line (state D_GAP) when its object closed. */
static size_t
scan_line(struct dumpout *d, const char *p, size_t n)
{
    size_t i = 0;

    for (; i < n; i++) {
        char c = p[i];
        if (d->in_str) {
            if (d->esc)
                d->esc = 0;
            else if (c == '\\')
                d->esc = 1;
            else if (c == '"')
                d->in_str = 0;
            continue;
        }
        if (c == '"') {
            d->in_str = 1;
        } else if (c == '{' || c == '[') {
            d->depth++;
        } else if (c == '}' || c == ']') {
            if (--d->depth == 0) {
                d->state = D_GAP;
                return i + 1;
            }
        }
    }
    return i;
}

int
dumpout_feed(void *ctx, const char *p, size_t n)
{
    struct dumpout *d = ctx;
    size_t i = 0;

    while (i < n && !d->bad) {
        switch (d->state) {
        case D_PREFIX:
            if (p[i] != ok_prefix[d->matched]) {
                buf_put(&d->kept, ok_prefix, d->matched);
                d->state = D_KEEP;
                break;
            }
            i++;
            if (++d->matched == sizeof ok_prefix - 1)
                d->state = D_GAP;
            break;
        case D_KEEP:
            if (d->kept.len + (n - i) > KEEP_MAX) {
                d->bad = 1;
                break;
            }
            buf_put(&d->kept, p + i, n - i);
            i = n;
            break;
        case D_GAP:
            if (p[i] == ']') {
                d->state = D_SUFFIX;
                d->matched = 1;
            } else if (p[i] == '{') {
                d->state = D_LINE;
                d->depth = 0;
                continue;
            } else if (p[i] != ',' || d->n == 0) {
                d->bad = 1;
            }
            i++;
            break;
        case D_LINE: {
            size_t k = scan_line(d, p + i, n - i);
            buf_put(&d->line, p + i, k);
            i += k;
            if (d->line.oom) {
                errno = ENOMEM;
                return -1;
            }
            if (d->state == D_GAP) {
                buf_putc(&d->line, '\n');
                if (fwrite(d->line.p, 1, d->line.len, d->out) != d->line.len) {
                    d->out_errno = errno;
                    return -1;
                }
                buf_clear(&d->line);
                d->n++;
            }
            break;
        }
        case D_SUFFIX:
            if (d->matched >= sizeof ok_suffix - 1 ||
                p[i] != ok_suffix[d->matched])
                d->bad = 1;
            else if (++d->matched == sizeof ok_suffix - 1)
                d->state = D_DONE;
            i++;
            break;
        default:
            d->bad = 1;
            break;
        }
    }
    return 0;
}

int
dumpout_end(struct dumpout *d)
{
    if (d->state == D_PREFIX) {
        /* Shorter than the prefix: not a dump. */
        buf_put(&d->kept, ok_prefix, d->matched);
        d->state = D_KEEP;
    }
    if (d->state == D_KEEP)
        return d->bad || d->kept.oom ? -1 : 0;
    return d->state == D_DONE && !d->bad ? 1 : -1;
}

void
dumpout_free(struct dumpout *d)
{
    buf_free(&d->kept);
    buf_free(&d->line);
}

/*
 * top.c - see top.h.
 */
#include "top.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lines.h"
#include "ndjson_read.h"
#include "report.h"
#include "table.h"
#include "track.h"

#define TOP_MAX_LINE (64u << 20)

static const char *const top_cols[] = {"pod",      "dp_rank",   "events",
                                       "events/s", "occupancy", "peak",
                                       "gaps",     "restarts",  "last_seen"};

struct top {
    struct track *t;
    struct lines lines;
    struct arena arena;
    uint64_t events, bad;
    long long last_draw;
};

/* Draws one screen: clear, a title line, the table. */
static int
draw(struct top *tp, struct cli_out *out, long long now, int done)
{
    struct table tb;
    struct track_stream **st;
    double dt = (double)(now - tp->last_draw) / 1000;
    size_t n;
    int ret;

    st = report_sorted(tp->t, &n);
    if (st == NULL && n > 0)
        return -1;
    buf_puts(&out->buf, "\033[H\033[2J");
    buf_puts(&out->buf, "kvstat top: ");
    buf_put_u64(&out->buf, n);
    buf_puts(&out->buf, " streams, ");
    buf_put_u64(&out->buf, tp->events);
    buf_puts(&out->buf, " events, ");
    buf_put_u64(&out->buf, tp->bad);
    buf_puts(&out->buf, done ? " bad lines; input ended\n\n"
                             : " bad lines; Ctrl-C quits\n\n");
    table_init(&tb, TABLE_HUMAN, &out->buf, top_cols,
               sizeof top_cols / sizeof top_cols[0]);
    for (size_t i = 0; i < n; i++) {
        struct track_stream *s = st[i];
        char ago[32];

        if (s->events != s->mark_events || s->mark_ms == 0)
            s->mark_ms = now;
        table_str(&tb, s->pod, s->pod_len);
        if (s->has_rank)
            table_i64(&tb, s->rank);
        else
            table_null(&tb);
        table_u64(&tb, s->events);
        table_u64(
            &tb,
            dt > 0 ? (uint64_t)((double)(s->events - s->mark_events) / dt + 0.5)
                   : 0);
        table_u64(&tb, s->held);
        table_u64(&tb, s->peak);
        table_u64(&tb, s->by_type[KV_GAP]);
        table_u64(&tb, s->by_type[KV_RESTART]);
        snprintf(ago, sizeof ago, "%llds ago", (now - s->mark_ms) / 1000);
        table_str(&tb, ago, strlen(ago));
        table_end_row(&tb);
        s->mark_events = s->events;
    }
    ret = table_finish(&tb);
    table_free(&tb);
    free(st);
    tp->last_draw = now;
    return ret == 0 && cli_out_flush(out) == 0 ? 0 : -1;
}

/* Applies the complete lines buffered so far. */
static int
apply_lines(struct top *tp, char *err, size_t errlen)
{
    const char *line;
    size_t len;
    int rc;

    while ((rc = lines_next(&tp->lines, &line, &len)) != LINES_NONE) {
        struct kv_env env;
        struct kv_event ev;
        char msg[256];

        if (rc == LINES_TOO_LONG) {
            tp->bad++;
            continue;
        }
        arena_reset(&tp->arena);
        rc = ndjson_parse_line(line, len, &tp->arena, &env, &ev, msg,
                               sizeof msg);
        if (rc == NDJSON_FATAL) {
            snprintf(err, errlen, "line %llu: %s",
                     (unsigned long long)tp->lines.lineno, msg);
            return -1;
        }
        if (rc == NDJSON_BAD)
            tp->bad++;
        if (rc != NDJSON_EVENT)
            continue;
        tp->events++;
        if (track_event(tp->t, &env, &ev, err, errlen) == -1)
            return -1;
    }
    return 0;
}

/* Waits for input or the next redraw; reads what came.  1 at the end. */
static int
step(struct top *tp, long long wait_ms, char *err, size_t errlen)
{
    struct pollfd pfd[2] = {{tp->lines.fd, POLLIN, 0},
                            {cli_signal_fd(), POLLIN, 0}};
    long n;

    if (poll(pfd, 2, (int)wait_ms) == -1 && errno != EINTR) {
        snprintf(err, errlen, "poll: %s", strerror(errno));
        return -1;
    }
    if (pfd[1].revents)
        cli_signal_drain();
    if (!(pfd[0].revents & (POLLIN | POLLHUP)))
        return 0;
    n = lines_fill(&tp->lines);
    if (n == -1 && errno != EAGAIN && errno != EINTR) {
        snprintf(err, errlen, "reading input: %s", strerror(errno));
        return -1;
    }
    if (apply_lines(tp, err, errlen) == -1)
        return -1;
    return tp->lines.eof ? 1 : 0;
}

int
top_run(int fd, struct cli_out *out, int *interrupted, char *err, size_t errlen)
{
    struct track_opts to;
    struct top tp;
    int ret = -1, rc = 0;

    memset(&tp, 0, sizeof tp);
    memset(&to, 0, sizeof to);
    *interrupted = 0;
    tp.t = track_new(&to);
    if (tp.t == NULL || lines_init(&tp.lines, fd, TOP_MAX_LINE) == -1) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    tp.last_draw = cli_now_ms();
    while (rc == 0) {
        long long now = cli_now_ms();

        if (cli_signal) {
            *interrupted = 1;
            break;
        }
        if (now - tp.last_draw >= 1000 && draw(&tp, out, now, 0) == -1)
            goto io;
        rc = step(&tp, 1000 - (cli_now_ms() - tp.last_draw), err, errlen);
    }
    if (rc == -1)
        goto out;
    if (draw(&tp, out, cli_now_ms(), 1) == -1)
        goto io;
    ret = 0;
    goto out;
io:
    snprintf(err, errlen, "%s",
             out->closed ? "output closed"
                         : "out of memory "
                           "or write error");
out:
    lines_free(&tp.lines);
    arena_free(&tp.arena);
    track_free(tp.t);
    return ret;
}

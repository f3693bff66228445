/*
 * input.c - NDJSON events grouped back into batches.
 */
#include "input.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ndjson_read.h"
#include "vec.h"

/* A batch of many stores fits easily; a runaway line does not. */
#define INPUT_MAX_LINE (64u << 20)

enum { RAW_LINE, RAW_MORE, RAW_END, RAW_TOO_LONG };

int
input_open(struct input *in, const char *path, int keep_for_loop,
           const char *pod, char *err, size_t errlen)
{
    struct stat st;

    memset(in, 0, sizeof *in);
    in->fd = 0;
    if (path != NULL && strcmp(path, "-") != 0) {
        in->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (in->fd == -1) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            return -1;
        }
        in->own_fd = 1;
    }
    in->seekable = fstat(in->fd, &st) == 0 && S_ISREG(st.st_mode) &&
                   lseek(in->fd, 0, SEEK_CUR) != -1;
    in->keep = keep_for_loop && !in->seekable;
    in->pod = pod;
    if (lines_init(&in->lines, in->fd, INPUT_MAX_LINE) == -1) {
        snprintf(err, errlen, "out of memory");
        if (in->own_fd)
            close(in->fd);
        in->own_fd = 0;
        return -1;
    }
    return 0;
}

/* The next raw line of the current pass, from the file or from memory. */
static int
next_raw(struct input *in, const char **line, size_t *len)
{
    if (in->from_memory) {
        if (in->mem_off >= in->kept.len)
            return RAW_END;
        const char *p = in->kept.p + in->mem_off;
        const char *nl = memchr(p, '\n', in->kept.len - in->mem_off);
        *line = p;
        *len = nl != NULL ? (size_t)(nl - p) : in->kept.len - in->mem_off;
        in->mem_off += *len + 1;
        in->lineno++;
        return RAW_LINE;
    }
    int rc = lines_next(&in->lines, line, len);
    if (rc == LINES_OK) {
        in->lineno = in->lines.lineno;
        if (in->keep) {
            buf_put(&in->kept, *line, *len);
            buf_putc(&in->kept, '\n');
        }
        return RAW_LINE;
    }
    if (rc == LINES_TOO_LONG) {
        in->lineno = in->lines.lineno;
        return RAW_TOO_LONG;
    }
    return in->lines.eof ? RAW_END : RAW_MORE;
}

static int
same_batch(const struct input *in, const struct kv_env *env)
{
    if (!env->has_seq || !in->key_has_seq || env->seq != in->key_seq)
        return 0;
    if (env->has_rank != in->key_has_rank ||
        (env->has_rank && env->rank != in->key_rank))
        return 0;
    return env->pod.n == in->key_pod.n &&
           memcmp(env->pod.p, in->key_pod.p, env->pod.n) == 0;
}

static int
finish(struct input *in, struct kv_batch *b)
{
    memset(b, 0, sizeof *b);
    b->events = in->ev;
    b->n_events = in->n_ev;
    b->has_ts = in->key_has_ts;
    b->ts = in->key_ts;
    b->has_rank = in->key_has_rank;
    b->rank = in->key_rank;
    in->collecting = 0;
    return INPUT_BATCH;
}

static int
append(struct input *in, const struct kv_event *ev)
{
    if (vec_grow((void **)&in->ev, &in->cap_ev, in->n_ev + 1, sizeof *in->ev) ==
        -1)
        return -1;
    in->ev[in->n_ev] = *ev;
    in->ev[in->n_ev].index = (uint32_t)in->n_ev;
    in->n_ev++;
    return 0;
}

/*
 * The next line to look at: the one a finished batch gave back, or a new
 * one from the reader.  Returns -2 when there is one (in *line, *len, *no),
 * or the INPUT_ code input_next must return (INPUT_END stands for "the
 * input ended": the caller finishes a batch being collected first).
 */
static int
take_line(struct input *in, const char **line, size_t *len, uint64_t *no,
          char *err, size_t errlen)
{
    if (in->has_pending) {
        *line = in->pending.p;
        *len = in->pending.len;
        *no = in->pending_no;
        in->has_pending = 0;
        return -2;
    }
    int rc = next_raw(in, line, len);
    if (in->kept.oom) {
        snprintf(err, errlen, "out of memory keeping lines for --loop");
        return INPUT_ERR;
    }
    if (rc == RAW_MORE)
        return INPUT_MORE;
    if (rc == RAW_END)
        return INPUT_END;
    *no = in->lineno;
    if (rc == RAW_TOO_LONG) {
        snprintf(err, errlen, "line %llu: longer than %u bytes",
                 (unsigned long long)*no, INPUT_MAX_LINE);
        return INPUT_BAD;
    }
    return -2;
}

/* Whether a parsed line is left out: a record, or another pod's event. */
static int
left_out(struct input *in, int rc, const struct kv_env *env,
         const struct kv_event *ev)
{
    if (rc == NDJSON_SKIP)
        return 1;
    if (!kv_type_is_engine(ev->type)) {
        in->records++;
        return 1;
    }
    if (in->pod != NULL && !kv_str_eq(env->pod, in->pod)) {
        in->filtered++;
        return 1;
    }
    return 0;
}

/* The first event of a batch: its envelope is what the next must share. */
static void
open_batch(struct input *in, const struct kv_env *env)
{
    in->collecting = 1;
    in->key_pod = env->pod;
    in->key_has_rank = env->has_rank;
    in->key_rank = env->rank;
    in->key_has_seq = env->has_seq;
    in->key_seq = env->seq;
    in->key_has_ts = env->has_ts;
    in->key_ts = env->ts;
}

int
input_next(struct input *in, struct arena *arena, struct kv_batch *b, char *err,
           size_t errlen)
{
    if (!in->collecting)
        in->n_ev = 0;
    for (;;) {
        const char *line;
        size_t len;
        uint64_t no = 0;
        char perr[256];

        int t = take_line(in, &line, &len, &no, err, errlen);
        if (t == INPUT_END)
            return in->collecting ? finish(in, b) : INPUT_END;
        if (t != -2)
            return t;

        /* The reader's buffer moves on the next fill: keep a copy. */
        char *copy = arena_alloc(arena, len + 1);
        if (copy == NULL) {
            snprintf(err, errlen, "out of memory");
            return INPUT_ERR;
        }
        memcpy(copy, line, len);
        copy[len] = '\0';

        struct kv_env env;
        struct kv_event ev;
        int rc =
            ndjson_parse_line(copy, len, arena, &env, &ev, perr, sizeof perr);
        if (rc == NDJSON_BAD || rc == NDJSON_FATAL) {
            snprintf(err, errlen, "line %llu: %s", (unsigned long long)no,
                     perr);
            if (!in->collecting)
                arena_reset(arena);
            return rc == NDJSON_BAD ? INPUT_BAD : INPUT_ERR;
        }
        if (left_out(in, rc, &env, &ev)) {
            /*
             * Nothing of this line is kept: free its copy now, unless a
             * batch being collected still points into the arena.
             */
            if (!in->collecting)
                arena_reset(arena);
            continue;
        }
        if (in->collecting && !same_batch(in, &env)) {
            /* This line opens the next batch: parse it again then. */
            buf_clear(&in->pending);
            buf_put(&in->pending, copy, len);
            if (in->pending.oom) {
                snprintf(err, errlen, "out of memory");
                return INPUT_ERR;
            }
            in->has_pending = 1;
            in->pending_no = no;
            return finish(in, b);
        }
        if (!in->collecting)
            open_batch(in, &env);
        if (append(in, &ev) == -1) {
            snprintf(err, errlen, "out of memory");
            return INPUT_ERR;
        }
        if (!env.has_seq)
            return finish(in, b);
    }
}

int
input_fill(struct input *in)
{
    if (in->from_memory)
        return 0;
    return lines_fill(&in->lines) < 0 ? -1 : 0;
}

int
input_rewind(struct input *in, char *err, size_t errlen)
{
    if (in->seekable) {
        if (lseek(in->fd, 0, SEEK_SET) == -1) {
            snprintf(err, errlen, "rewind: %s", strerror(errno));
            return -1;
        }
        lines_free(&in->lines);
        if (lines_init(&in->lines, in->fd, INPUT_MAX_LINE) == -1) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    } else if (in->keep || in->from_memory) {
        in->keep = 0;
        in->from_memory = 1;
        in->mem_off = 0;
    } else {
        snprintf(err, errlen, "input cannot be read again");
        return -1;
    }
    in->lineno = 0;
    in->has_pending = 0;
    in->collecting = 0;
    in->n_ev = 0;
    return 0;
}

void
input_close(struct input *in)
{
    if (in == NULL)
        return;
    lines_free(&in->lines);
    if (in->own_fd)
        close(in->fd);
    buf_free(&in->kept);
    buf_free(&in->pending);
    free(in->ev);
    memset(in, 0, sizeof *in);
}

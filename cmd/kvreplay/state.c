/*
 * state.c - kvreplay's --state file: lock, read, prepare, write (state.h).
 */
#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cli.h"
#include "parse.h"

void
state_init(struct state_file *sf)
{
    memset(sf, 0, sizeof *sf);
    sf->lock_fd = -1;
    sf->f.fd = -1;
}

/* Opens PATH.lock, not through a symlink planted in a shared directory. */
static int
lock_open(const char *path, char *err, size_t errlen)
{
    char lock[4096];
    int fd;

    if ((size_t)snprintf(lock, sizeof lock, "%s.lock", path) >= sizeof lock) {
        snprintf(err, errlen, "state file %s: name too long", path);
        return -1;
    }
    fd = open(lock, O_RDONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        snprintf(err, errlen, "state file lock %s: %s", lock, strerror(errno));
    return fd;
}

int
state_lock(struct state_file *sf, const char *path, uint64_t wait_ms, char *err,
           size_t errlen)
{
    long long deadline = cli_now_ms() + (long long)wait_ms;
    const struct timespec pause = {0, 20 * 1000 * 1000};

    sf->path = path;
    sf->lock_fd = lock_open(path, err, errlen);
    if (sf->lock_fd < 0)
        return -1;
    /* Polled rather than blocking, so that the wait is bounded and a
     * signal ends it at once. */
    while (flock(sf->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) {
            snprintf(err, errlen, "state file lock %s.lock: %s", path,
                     strerror(errno));
            return -1;
        }
        if (cli_signal) {
            snprintf(err, errlen, "interrupted waiting for %s.lock", path);
            return -1;
        }
        if (cli_now_ms() >= deadline) {
            snprintf(err, errlen,
                     "state file %s is in use by another kvreplay (%s.lock "
                     "is locked); not running",
                     path, path);
            return -2;
        }
        nanosleep(&pause, NULL);
    }
    return 0;
}

/*
 * Parses one line of the state file: "SEQ", as 0.1 wrote it, or
 * "SEQ ts=TS" (docs/cli.md#kvreplay-state-and-restarts); later words are
 * ignored, so that a newer kvreplay can add some.  Returns 0, or -1 with
 * what was wrong in *why.
 */
static int
parse_line(char *line, struct rank_state *st, const char **why)
{
    char *words = strchr(line, ' '), *w, *save = NULL;

    if (words != NULL)
        *words++ = '\0';
    if (parse_u64(line, 0, UINT64_MAX - 1, &st->seq) == -1) {
        *why = "not a sequence number";
        return -1;
    }
    st->have = 1;
    for (w = words ? strtok_r(words, " ", &save) : NULL; w != NULL;
         w = strtok_r(NULL, " ", &save)) {
        char *end;

        if (strncmp(w, "ts=", 3) != 0)
            continue;
        st->ts = strtod(w + 3, &end);
        if (end == w + 3 || *end != '\0' || !isfinite(st->ts)) {
            *why = "ts= is not a number";
            return -1;
        }
        st->has_ts = 1;
    }
    return 0;
}

int
state_read(const struct state_file *sf, struct rank_state *st, int n, char *err,
           size_t errlen)
{
    FILE *f;
    char line[256];
    const char *why;
    int r = 0, ret = 0;

    f = fopen(sf->path, "r");
    if (f == NULL) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "state file %s: %s", sf->path, strerror(errno));
        return -1;
    }
    while (r < n && fgets(line, sizeof line, f) != NULL) {
        size_t l = strcspn(line, "\r\n");

        line[l] = '\0';
        if (l == 0)
            break;
        if (parse_line(line, &st[r], &why) == -1) {
            snprintf(err, errlen, "state file %s: line %d: %s", sf->path, r + 1,
                     why);
            ret = -1;
            break;
        }
        r++;
    }
    if (ret == 0 && ferror(f)) {
        snprintf(err, errlen, "state file %s: read error", sf->path);
        ret = -1;
    } else if (ret == 0 && r == 0) {
        /* Truncated by something else: starting from 0 would print the
         * whole buffer again, unasked. */
        snprintf(err, errlen,
                 "state file %s: line 1: empty (remove the file to start "
                 "from seq 0)",
                 sf->path);
        ret = -1;
    }
    fclose(f);
    return ret;
}

int
state_prepare(struct state_file *sf, char *err, size_t errlen)
{
    char why[4200];

    /* Under the lock no other kvreplay writes this state, so what a killed
     * run left (FILE.tmp.PID) can go; one with our own PID would otherwise
     * refuse every write. */
    atomicfile_sweep(sf->path, why, sizeof why);
    if (atomicfile_open(&sf->f, sf->path, 0644, why, sizeof why) < 0) {
        snprintf(err, errlen, "state file %s cannot be written: %s", sf->path,
                 why);
        return -1;
    }
    return 0;
}

/*
 * The ts is written as its shortest exact decimal, so that it reads back
 * equal.
 */
int
state_write(struct state_file *sf, const struct rank_state *st, int n,
            char *err, size_t errlen)
{
    struct buf b = {0};
    char why[4200];
    int ret = -1;

    for (int r = 0; r < n; r++) {
        buf_put_u64(&b, st[r].seq);
        if (st[r].has_ts) {
            buf_puts(&b, " ts=");
            buf_put_double(&b, st[r].ts);
        }
        buf_putc(&b, '\n');
    }
    if (b.oom) {
        snprintf(err, errlen, "state file %s: out of memory", sf->path);
        goto out;
    }
    if (atomicfile_write(&sf->f, b.p, b.len, why, sizeof why) == 0)
        ret = atomicfile_commit(&sf->f, why, sizeof why);
    if (ret != 0)
        snprintf(err, errlen, "state file %s: %s", sf->path, why);
    if (ret == 1)
        ret = 0;
out:
    buf_free(&b);
    return ret;
}

void
state_close(struct state_file *sf)
{
    if (sf == NULL)
        return;
    atomicfile_abort(&sf->f);
    if (sf->lock_fd >= 0)
        close(sf->lock_fd);
    sf->lock_fd = -1;
}

/*
 * test_lines.c - capped line reading from pipes and files.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lines.h"
#include "unit.h"

/* One event seen by drain(): a line's text, or "<too long>". */
struct seen {
    char text[64];
    size_t len;
    uint64_t lineno;
};

/*
 * Reads fd to the end with lines_fill/lines_next, recording up to max
 * events.  Returns the number of events.
 */
static size_t
drain(struct lines *l, struct seen *s, size_t max)
{
    size_t n = 0;

    for (;;) {
        const char *line;
        size_t len;
        int rc;
        while ((rc = lines_next(l, &line, &len)) != LINES_NONE) {
            if (n < max) {
                if (rc == LINES_OK) {
                    size_t c =
                        len < sizeof s[n].text - 1 ? len : sizeof s[n].text - 1;
                    memcpy(s[n].text, line, c);
                    s[n].text[c] = '\0';
                    s[n].len = len;
                } else {
                    strcpy(s[n].text, "<too long>");
                    s[n].len = 0;
                }
                s[n].lineno = l->lineno;
            }
            n++;
        }
        if (l->eof)
            return n;
        long r = lines_fill(l);
        if (r < 0 && errno != EINTR)
            return n;
    }
}

/* A pipe whose write end gets data then closes; returns the read end. */
static int
pipe_with(const char *data, size_t n)
{
    int p[2];
    if (pipe(p) == -1)
        return -1;
    if (write(p[1], data, n) != (ssize_t)n)
        return -1;
    close(p[1]);
    return p[0];
}

static void
test_basic(void)
{
    static const char data[] = "a\nbb\n\ncccc\nddddd\neeeeeeeeeee\nff\ngg";
    struct lines l;
    struct seen s[16];
    int fd = pipe_with(data, sizeof data - 1);

    CHECK(fd >= 0 && lines_init(&l, fd, 4) == 0, "init with cap 4");
    size_t n = drain(&l, s, 16);
    CHECK_U64(n, 8, "eight lines");
    CHECK_STR(s[0].text, "a", "line 1");
    CHECK_STR(s[1].text, "bb", "line 2");
    CHECK(s[2].len == 0 && s[2].text[0] == '\0', "line 3 empty");
    CHECK_STR(s[3].text, "cccc", "line 4: exactly the cap");
    CHECK_STR(s[4].text, "<too long>", "line 5: cap + 1 is too long");
    CHECK_STR(s[5].text, "<too long>", "line 6: far over the cap");
    CHECK_STR(s[6].text, "ff", "line 7 after the long ones");
    CHECK_STR(s[7].text, "gg", "unterminated last line");
    CHECK_U64(s[4].lineno, 5, "lineno of a too-long line");
    CHECK_U64(s[7].lineno, 8, "lineno of the last line");
    lines_free(&l);
    close(fd);
    lines_free(NULL);
}

static void
test_unterminated_long(void)
{
    static const char data[] = "ok\n123456789";
    struct lines l;
    struct seen s[4];
    int fd = pipe_with(data, sizeof data - 1);

    lines_init(&l, fd, 5);
    size_t n = drain(&l, s, 4);
    CHECK(n == 2 && strcmp(s[0].text, "ok") == 0 &&
              strcmp(s[1].text, "<too long>") == 0,
          "an over-long unterminated last line is reported");
    lines_free(&l);
    close(fd);

    fd = pipe_with("", 0);
    lines_init(&l, fd, 5);
    CHECK_U64(drain(&l, s, 4), 0, "empty input: no lines");
    lines_free(&l);
    close(fd);

    fd = pipe_with("\n", 1);
    lines_init(&l, fd, 5);
    CHECK(drain(&l, s, 4) == 1 && s[0].len == 0, "a lone newline: one line");
    lines_free(&l);
    close(fd);

    CHECK(lines_init(&l, 0, 0) == -1 && errno == EINVAL, "cap 0 refused");
}

/*
 * Long lines through a pipe that holds less than one of them, from a
 * writer process, so that they arrive across many reads.
 */
static void
test_big(void)
{
    const size_t cap = 100000;
    int p[2];

    if (!CHECK(pipe(p) == 0, "pipe"))
        return;
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        char *big = malloc(3 * cap);
        if (big == NULL)
            _exit(1);
        memset(big, 'x', 3 * cap);
        /* 1: cap bytes (fits), 2: 3*cap (too long), 3: "end". */
        if (write(p[1], big, cap) != (ssize_t)cap || write(p[1], "\n", 1) != 1)
            _exit(1);
        for (int k = 0; k < 3; k++)
            if (write(p[1], big, cap) != (ssize_t)cap)
                _exit(1);
        if (write(p[1], "\nend\n", 5) != 5)
            _exit(1);
        _exit(0);
    }
    close(p[1]);
    struct lines l;
    struct seen s[4];
    lines_init(&l, p[0], cap);
    size_t n = drain(&l, s, 4);
    CHECK(n == 3 && s[0].len == cap && s[0].text[0] == 'x' &&
              strcmp(s[1].text, "<too long>") == 0 &&
              strcmp(s[2].text, "end") == 0,
          "a cap-sized line, a 3x line skipped, then the next line");
    CHECK(l.cap <= cap + 1, "the buffer never exceeds cap + 1");
    lines_free(&l);
    close(p[0]);
    int st;
    waitpid(pid, &st, 0);
}

static void
test_nonblocking(void)
{
    int p[2];
    struct lines l;
    const char *line;
    size_t len;

    if (!CHECK(pipe(p) == 0, "pipe"))
        return;
    fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_NONBLOCK);
    lines_init(&l, p[0], 16);
    errno = 0;
    CHECK(lines_fill(&l) == -1 && errno == EAGAIN, "empty: EAGAIN");
    CHECK(lines_next(&l, &line, &len) == LINES_NONE, "nothing buffered");
    CHECK(write(p[1], "ab", 2) == 2 && lines_fill(&l) == 2, "read a part");
    CHECK(lines_next(&l, &line, &len) == LINES_NONE,
          "a partial line is not handed out");
    CHECK(write(p[1], "c\nd", 3) == 3 && lines_fill(&l) == 3, "read more");
    CHECK(lines_next(&l, &line, &len) == LINES_OK && len == 3 &&
              memcmp(line, "abc", 3) == 0,
          "the joined line");
    CHECK(lines_next(&l, &line, &len) == LINES_NONE, "then none");
    CHECK(lines_fill(&l) == -1 && errno == EAGAIN, "EAGAIN again");
    CHECK(!l.eof, "not at eof");
    /* An over-long line is reported before its end arrives. */
    CHECK(write(p[1], "0123456789abcdefXYZ", 19) == 19 && lines_fill(&l) > 0,
          "read a long partial line");
    CHECK(lines_next(&l, &line, &len) == LINES_TOO_LONG,
          "too long before its newline");
    CHECK(write(p[1], "more\nnext\n", 10) == 10 && lines_fill(&l) > 0,
          "read the rest");
    CHECK(lines_next(&l, &line, &len) == LINES_OK && len == 4 &&
              memcmp(line, "next", 4) == 0,
          "the tail of the long line is dropped");
    close(p[1]);
    CHECK(lines_fill(&l) == 0 && l.eof, "eof");
    CHECK(lines_next(&l, &line, &len) == LINES_NONE, "nothing after eof");
    CHECK_U64(l.lineno, 3, "three lines counted");
    lines_free(&l);
    close(p[0]);
}

/*
 * A long line arriving in many reads (each read searched once), then the
 * buffer shrinking back once it is handed out; and a buffer full of
 * complete lines, which lines_fill refuses until they are taken.
 */
static void
test_shrink_and_full(void)
{
    static char chunk[60000];
    int p[2];
    struct lines l;
    const char *line;
    size_t len, sent = 0;
    int partial_ok = 1;

    if (!CHECK(pipe(p) == 0, "pipe"))
        return;
    fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_NONBLOCK);
    memset(chunk, 'x', sizeof chunk);
    lines_init(&l, p[0], 1 << 20);
    while (sent < 300000) {
        if (write(p[1], chunk, sizeof chunk) != (ssize_t)sizeof chunk)
            partial_ok = 0;
        sent += sizeof chunk;
        while (lines_fill(&l) > 0)
            partial_ok &= lines_next(&l, &line, &len) == LINES_NONE;
    }
    CHECK(partial_ok, "300000 bytes without a newline: no line yet");
    CHECK_U64(lines_buffered(&l), 300000, "all of it buffered");
    CHECK(write(p[1], "\nz", 2) == 2 && lines_fill(&l) == 2, "its end");
    CHECK(lines_next(&l, &line, &len) == LINES_OK && len == 300000 &&
              line[0] == 'x' && line[len - 1] == 'x',
          "the whole long line");
    CHECK(l.cap > 256 * 1024, "the buffer grew for it");
    CHECK(lines_next(&l, &line, &len) == LINES_NONE, "then no line");
    CHECK_U64(lines_buffered(&l), 1, "one byte of the next line");
    CHECK(lines_fill(&l) == -1 && errno == EAGAIN, "nothing more to read");
    CHECK(l.cap > 256 * 1024, "a partial line keeps the buffer");
    CHECK(write(p[1], "\n", 1) == 1 && lines_fill(&l) == 1 &&
              lines_next(&l, &line, &len) == LINES_OK && len == 1 &&
              line[0] == 'z',
          "the short line after it");
    CHECK(lines_fill(&l) == -1 && errno == EAGAIN, "EAGAIN");
    CHECK_U64(l.cap, 64 * 1024, "once empty, the buffer shrinks back");
    lines_free(&l);

    lines_init(&l, p[0], 8);
    CHECK(write(p[1], "a\nb\nc\nd\ne\n", 10) == 10 && lines_fill(&l) == 9,
          "cap 8: a buffer of 9 bytes, filled with lines");
    CHECK(lines_fill(&l) == -1 && errno == ENOBUFS,
          "full of complete lines: ENOBUFS");
    CHECK(lines_next(&l, &line, &len) == LINES_OK && len == 1 && line[0] == 'a',
          "the first line");
    CHECK_U64(lines_buffered(&l), 7, "seven bytes still to hand out");
    CHECK(lines_fill(&l) == 1, "then room for the rest");
    lines_free(&l);
    close(p[0]);
    close(p[1]);
}

int
main(void)
{
    test_basic();
    test_unterminated_long();
    test_big();
    test_nonblocking();
    test_shrink_and_full();
    return unit_done();
}

/*
 * echo_floor.c - the floor under kvindex's server CPU per request, for
 * bench/60-kvindex-socket.sh: a server that does nothing but what every
 * request costs kvindex serve in system calls (poll, read, send) and
 * answers each request line with kvindex's ping reply.
 *
 *   echo_floor SOCKET
 *
 * Serves one client at a time on the Unix socket SOCKET until SIGTERM.
 * kvindex_rtt measured against it, with its pid, gives the CPU a request
 * costs the kernel (wake-ups, copies) under the same placement as kvindex.
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static const char reply[] =
    "{\"id\":null,\"ok\":true,\"data\":{\"version\":\"" KVTAP_VERSION "\"}}\n";

/* Answers the lines of one client until it goes away. */
static void
serve(int fd)
{
    static char buf[1 << 20];
    size_t have = 0;

    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        ssize_t n;
        char *nl;
        if (poll(&p, 1, -1) < 0)
            return;
        n = read(fd, buf + have, sizeof buf - have);
        if (n <= 0)
            return;
        have += (size_t)n;
        while ((nl = memchr(buf, '\n', have)) != NULL) {
            size_t k = (size_t)(nl + 1 - buf);
            if (send(fd, reply, sizeof reply - 1, MSG_NOSIGNAL) < 0)
                return;
            memmove(buf, nl + 1, have - k);
            have -= k;
        }
        if (have == sizeof buf)
            return; /* a line longer than any request */
    }
}

int
main(int argc, char **argv)
{
    struct sockaddr_un sa;
    int lfd;

    if (argc != 2) {
        fprintf(stderr, "usage: echo_floor SOCKET\n");
        return 2;
    }
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", argv[1]);
    unlink(argv[1]);
    lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        listen(lfd, 8) < 0) {
        perror(argv[1]);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            continue;
        serve(fd);
        close(fd);
    }
}

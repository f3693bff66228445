/*
 * sock.c - the kvindex socket file rules (see sock.h).
 */
#include "sock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int
fill_addr(struct sockaddr_un *sa, const char *path)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa->sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sa->sun_path, path, strlen(path) + 1);
    return 0;
}

/*
 * Like tmux: the per-user directory must be a directory we own that nobody
 * else can enter, or someone could swap the socket under us.
 */
static int
check_user_dir(const char *dir, int make_dir, char *err, size_t errlen)
{
    struct stat st;

    if (make_dir && mkdir(dir, 0700) == -1 && errno != EEXIST) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    if (lstat(dir, &st) == -1) {
        if (errno == ENOENT && !make_dir)
            return 0; /* the client then reports the missing socket */
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode) || st.st_uid != getuid() ||
        (st.st_mode & 077) != 0) {
        snprintf(err, errlen, "%s: not a private directory owned by this user",
                 dir);
        return -1;
    }
    return 0;
}

int
sock_path(const char *explicit_path, int make_dir, char *out, size_t outlen,
          char *err, size_t errlen)
{
    const char *env = explicit_path;
    char dir[256];
    int n;

    if (env == NULL || *env == '\0')
        env = getenv("KVINDEX_SOCKET");
    if (env != NULL && *env != '\0') {
        n = snprintf(out, outlen, "%s", env);
    } else if ((env = getenv("XDG_RUNTIME_DIR")) != NULL && *env != '\0') {
        n = snprintf(out, outlen, "%s/kvindex.sock", env);
    } else {
        snprintf(dir, sizeof dir, "/tmp/kvindex-%u", (unsigned)getuid());
        if (check_user_dir(dir, make_dir, err, errlen) < 0)
            return -1;
        n = snprintf(out, outlen, "%s/kvindex.sock", dir);
    }
    if (n < 0 || (size_t)n >= outlen ||
        (size_t)n >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        snprintf(err, errlen, "socket path too long (at most %zu bytes)",
                 sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
        return -1;
    }
    return 0;
}

int
sock_connect(const char *path)
{
    struct sockaddr_un sa;
    int fd, e;

    if (fill_addr(&sa, path) < 0)
        return -1;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == -1) {
        e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/*
 * Decides what to do with a path that already exists: 0 = free to bind
 * (a stale socket was removed or nothing was there), -1 = refuse.
 */
static int
take_over(const char *path, char *err, size_t errlen)
{
    struct stat st;
    int fd;

    if (lstat(path, &st) == -1) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "%s: exists and is not a socket", path);
        return -1;
    }
    fd = sock_connect(path);
    if (fd >= 0) {
        close(fd);
        snprintf(err, errlen, "%s: already running (a server answers there)",
                 path);
        return -1;
    }
    if (errno != ECONNREFUSED) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    /* Nobody listens: a leftover of a crashed server. */
    if (unlink(path) == -1 && errno != ENOENT) {
        snprintf(err, errlen, "%s: cannot remove stale socket: %s", path,
                 strerror(errno));
        return -1;
    }
    return 0;
}

int
sock_listen(const char *path, mode_t mode, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    mode_t old;
    int fd = -1, rc;

    if (fill_addr(&sa, path) < 0) {
        snprintf(err, errlen, "%s: socket path too long", path);
        return -1;
    }
    if (take_over(path, err, errlen) < 0)
        return -1;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    /* The mode is set by the umask at bind time, so the file is never
     * briefly more open than asked (redis chmods after bind: a race). */
    old = umask((mode_t)(~mode & 0777));
    rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (rc == -1) {
        snprintf(err, errlen, "%s: bind: %s", path, strerror(errno));
        goto fail;
    }
    if (listen(fd, 128) == -1) {
        snprintf(err, errlen, "%s: listen: %s", path, strerror(errno));
        unlink(path);
        goto fail;
    }
    return fd;
fail:
    close(fd);
    return -1;
}

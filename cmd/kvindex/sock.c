/*
 * sock.c - the kvindex socket file rules (see sock.h).
 */
#include "sock.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
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

int
sock_peer(int fd, struct sock_peer *p)
{
    struct ucred cr;
    socklen_t len = sizeof cr;

    memset(p, 0, sizeof *p);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == -1)
        return -1;
    p->pid = cr.pid;
    p->uid = cr.uid;
    p->gid = cr.gid;
#ifdef SO_PEERGROUPS
    len = sizeof p->groups;
    /* Older kernels lack it, and more groups than fit give ERANGE: the
     * primary group is then all that is known. */
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, p->groups, &len) == 0)
        p->n_groups = len / sizeof p->groups[0];
#endif
    return 0;
}

int
sock_peer_in_groups(const struct sock_peer *p, const unsigned *gids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (gids[i] == p->gid)
            return 1;
        for (size_t k = 0; k < p->n_groups; k++)
            if (gids[i] == p->groups[k])
                return 1;
    }
    return 0;
}

/* One user or group: a number, or a name looked up in passwd/group. */
static int
parse_id(const char *s, size_t len, int is_group, unsigned *out)
{
    char name[256], *end;
    unsigned long v;

    if (len == 0 || len >= sizeof name)
        return -1;
    memcpy(name, s, len);
    name[len] = '\0';
    errno = 0;
    v = strtoul(name, &end, 10);
    if (*end == '\0' && errno == 0 && name[0] != '-' && v < (unsigned)-1) {
        *out = (unsigned)v;
        return 0;
    }
    if (is_group) {
        struct group *g = getgrnam(name);
        if (g == NULL)
            return -1;
        *out = (unsigned)g->gr_gid;
    } else {
        struct passwd *pw = getpwnam(name);
        if (pw == NULL)
            return -1;
        *out = (unsigned)pw->pw_uid;
    }
    return 0;
}

int
sock_parse_ids(const char *list, int is_group, unsigned **v, size_t *n,
               char *err, size_t errlen)
{
    const char *p = list;

    for (;;) {
        size_t len = strcspn(p, ",");
        unsigned id, *nv;
        if (parse_id(p, len, is_group, &id) < 0) {
            snprintf(err, errlen, "'%.*s' is not a %s id or name",
                     (int)(len > 64 ? 64 : len), p,
                     is_group ? "group" : "user");
            return -1;
        }
        nv = realloc(*v, (*n + 1) * sizeof *nv);
        if (nv == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        *v = nv;
        (*v)[(*n)++] = id;
        if (p[len] == '\0')
            return 0;
        p += len + 1;
    }
}

int
sock_check_server(int fd, const char *path, long long trusted_uid, char *err,
                  size_t errlen)
{
    struct sock_peer peer;

    if (sock_peer(fd, &peer) < 0) {
        snprintf(err, errlen, "%s: cannot tell who serves it: %s", path,
                 strerror(errno));
        return -1;
    }
    if (peer.uid == getuid() || peer.uid == 0 ||
        (trusted_uid >= 0 && (long long)peer.uid == trusted_uid))
        return 0;
    snprintf(err, errlen,
             "%s: served by uid %u, neither this user nor root; refusing it "
             "(--server-uid %u trusts it)",
             path, (unsigned)peer.uid, (unsigned)peer.uid);
    return -1;
}

/*
 * atomicfile.c - write, fsync, rename, fsync the directory (atomicfile.h).
 */
#include "atomicfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int
atomicfile_open(struct atomicfile *f, const char *path, mode_t mode, char *err,
                size_t errlen)
{
    size_t n = strlen(path) + sizeof ".tmp." + 3 * sizeof(long);
    struct stat st;

    f->fd = -1;
    f->tmp = NULL;
    f->path = strdup(path);
    if (f->path != NULL)
        f->tmp = malloc(n);
    if (f->tmp == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    snprintf(f->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    /*
     * Only a file this call creates is written: in a shared directory a
     * symlink or a file planted at the temporary path by another user would
     * otherwise be followed or written through (and then renamed over the
     * target).  O_EXCL refuses both, O_NOFOLLOW says so for the symlink.
     */
    f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                 mode);
    if (f->fd < 0) {
        if (errno == EEXIST)
            snprintf(err, errlen,
                     "%s: already exists (refusing to write through a file "
                     "or symlink this process did not create; remove it)",
                     f->tmp);
        else
            snprintf(err, errlen, "%s: %s", f->tmp, strerror(errno));
        return -1;
    }
    if (fstat(f->fd, &st) < 0) {
        snprintf(err, errlen, "%s: fstat: %s", f->tmp, strerror(errno));
        close(f->fd);
        f->fd = -1;
        unlink(f->tmp);
        return -1;
    }
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    return 0;
}

int
atomicfile_write(struct atomicfile *f, const void *p, size_t n, char *err,
                 size_t errlen)
{
    const char *c = p;

    while (n > 0) {
        ssize_t w = write(f->fd, c, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            snprintf(err, errlen, "%s: %s", f->tmp, strerror(errno));
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* fsync of the directory holding path, so that a rename in it is durable. */
static int
sync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    int fd, rc = -1;

    if (slash == NULL)
        dir = strdup(".");
    else if (slash == path)
        dir = strdup("/");
    else
        dir = strndup(path, (size_t)(slash - path));
    if (dir == NULL)
        return -1;
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        rc = fsync(fd);
        close(fd);
    }
    free(dir);
    return rc;
}

/* Whether path names the file f created (not a symlink to it). */
static int
same_file(const char *path, const struct atomicfile *f)
{
    struct stat st;

    return lstat(path, &st) == 0 && S_ISREG(st.st_mode) &&
           st.st_dev == f->dev && st.st_ino == f->ino;
}

int
atomicfile_commit(struct atomicfile *f, char *err, size_t errlen)
{
    int fd = f->fd, rc = -1;

    f->fd = -1;
    if (fsync(fd) < 0) {
        snprintf(err, errlen, "%s: fsync: %s", f->tmp, strerror(errno));
        close(fd);
        goto done;
    }
    if (close(fd) < 0) {
        snprintf(err, errlen, "%s: close: %s", f->tmp, strerror(errno));
        goto done;
    }
    if (!same_file(f->tmp, f)) {
        snprintf(err, errlen,
                 "%s: was replaced by another file before the rename; "
                 "not renaming it over %s",
                 f->tmp, f->path);
        /* Not ours any more: leave it for whoever put it there. */
        free(f->tmp);
        f->tmp = NULL;
        goto done;
    }
    if (rename(f->tmp, f->path) < 0) {
        snprintf(err, errlen, "%s: rename: %s", f->path, strerror(errno));
        goto done;
    }
    rc = 0;
    if (sync_dir(f->path) < 0) {
        snprintf(err, errlen, "%s: fsync of its directory: %s", f->path,
                 strerror(errno));
        rc = 1;
    }
done:
    if (rc < 0 && f->tmp != NULL)
        unlink(f->tmp);
    atomicfile_abort(f);
    return rc;
}

void
atomicfile_abort(struct atomicfile *f)
{
    if (f == NULL)
        return;
    if (f->fd >= 0) {
        close(f->fd);
        unlink(f->tmp);
    }
    f->fd = -1;
    free(f->path);
    free(f->tmp);
    f->path = f->tmp = NULL;
}

int
atomicfile_put(const char *path, mode_t mode, const void *p, size_t n,
               char *err, size_t errlen)
{
    struct atomicfile f;
    int rc = -1;

    if (atomicfile_open(&f, path, mode, err, errlen) == 0 &&
        atomicfile_write(&f, p, n, err, errlen) == 0)
        rc = atomicfile_commit(&f, err, errlen);
    atomicfile_abort(&f);
    return rc;
}

/* The PID in NAME when it is BASE.tmp.PID, else 0. */
static long
tmp_pid(const char *name, const char *base, size_t bn)
{
    const char *p = name + bn + 5;
    char *end;
    long pid;

    if (strncmp(name, base, bn) != 0 || strncmp(name + bn, ".tmp.", 5) != 0 ||
        *p < '1' || *p > '9')
        return 0;
    errno = 0;
    pid = strtol(p, &end, 10);
    return *end == '\0' && errno == 0 ? pid : 0;
}

int
atomicfile_sweep(const char *path, char *err, size_t errlen)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    char *dir = slash ? strndup(path, (size_t)(slash - path + 1)) : strdup(".");
    size_t bn = strlen(base);
    struct dirent *de;
    struct stat st;
    DIR *d = NULL;
    int n = -1, dfd;

    if (dir == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto done;
    }
    d = opendir(dir);
    if (d == NULL) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        goto done;
    }
    dfd = dirfd(d);
    n = 0;
    while ((de = readdir(d)) != NULL) {
        long pid = tmp_pid(de->d_name, base, bn);

        /* A live PID may be another writer of PATH: its file is not
         * ours to take.  Our own PID is not one: the caller has not
         * written PATH yet, so such a file is a dead process's that had
         * our PID (a container restarted gives the same PIDs again), and
         * left there it would make every atomicfile_open of ours fail.
         * Only our own regular files are removed. */
        if (pid <= 0 ||
            (pid != (long)getpid() &&
             (kill((pid_t)pid, 0) == 0 || errno != ESRCH)) ||
            fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            !S_ISREG(st.st_mode) || st.st_uid != geteuid())
            continue;
        if (unlinkat(dfd, de->d_name, 0) == 0)
            n++;
    }
done:
    if (d != NULL)
        closedir(d);
    free(dir);
    return n;
}

/*
 * atomicfile.c - write, fsync, rename, fsync the directory (atomicfile.h).
 */
#include "atomicfile.h"

#include <errno.h>
#include <fcntl.h>
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

/*
 * atomicfile.h - replacing a file so that a reader, or the next start after
 * a crash, finds either the old contents or the new ones, never a mix.
 *
 * The new contents go to PATH.tmp.PID in the same directory; committing
 * fsyncs that file, renames it over PATH and fsyncs the directory, so the
 * rename itself is durable.  Until the commit PATH is untouched.  A crash
 * before the commit can leave a PATH.tmp.PID behind (nothing reads it).
 *
 * In a directory other users can write to, the temporary path is the point
 * of attack: a symlink planted there would make the writer overwrite its
 * target, a planted file would be written and renamed into place.  So the
 * temporary file is created with O_EXCL|O_NOFOLLOW (anything already at
 * PATH.tmp.PID, a stale one of this writer's too, is refused, and the
 * caller says so), and the commit renames only the very file it created.
 *
 * Use:
 *     struct atomicfile f;
 *     if (atomicfile_open(&f, path, 0600, err, errlen) < 0) return -1;
 *     if (atomicfile_write(&f, p, n, err, errlen) < 0) goto fail;
 *     ... more writes ...
 *     rc = atomicfile_commit(&f, err, errlen);   (closes f either way)
 *   fail:
 *     atomicfile_abort(&f);                       (always safe)
 * or, for contents already in memory, atomicfile_put().
 */
#ifndef KVTAP_ATOMICFILE_H
#define KVTAP_ATOMICFILE_H

#include <stddef.h>
#include <sys/types.h>

struct atomicfile {
    int fd;     /* the temporary file; -1 once committed or aborted */
    char *path; /* owned: the file to replace */
    char *tmp;  /* owned: PATH.tmp.PID */
    dev_t dev;  /* the temporary file as created, checked before the rename */
    ino_t ino;
};

/*
 * Creates PATH.tmp.PID with the given mode, subject to the umask; refuses a
 * file or symlink already there ("PATH.tmp.PID: already exists (...)").
 * Returns 0, or -1 with the reason in err (f is then safe to abort).
 */
int atomicfile_open(struct atomicfile *f, const char *path, mode_t mode,
                    char *err, size_t errlen);

/* Appends n bytes to the temporary file.  Returns 0, or -1 with the reason
 * in err. */
int atomicfile_write(struct atomicfile *f, const void *p, size_t n, char *err,
                     size_t errlen);

/*
 * fsyncs and closes the temporary file, renames it over PATH and fsyncs the
 * directory.  The rename happens only while PATH.tmp.PID is still the file
 * atomicfile_open created (same device and inode, not a symlink); another
 * file put there meanwhile is left alone and the commit fails.
 * Returns 0 when PATH holds the new contents durably; 1 when
 * it holds them but the fsync of the directory failed (the reason in err;
 * a crash could still bring the old contents back); -1 when PATH is
 * unchanged (the reason in err, the temporary file removed).  Frees what f
 * holds either way.
 */
int atomicfile_commit(struct atomicfile *f, char *err, size_t errlen);

/* Closes and removes the temporary file unless committed, and frees what f
 * holds.  Accepts NULL and a committed or already aborted f. */
void atomicfile_abort(struct atomicfile *f);

/* open + write + commit of n bytes at p.  Returns as atomicfile_commit. */
int atomicfile_put(const char *path, mode_t mode, const void *p, size_t n,
                   char *err, size_t errlen);

/*
 * Removes the PATH.tmp.PID files that writers killed before their commit
 * left behind: ours (the effective uid's), regular files, whose PID is no
 * running process or this one.  A live PID may be another writer of PATH,
 * so its file stays.  Call it before this process writes PATH: a file with
 * its own PID is taken for a dead process's that had the same PID.
 * Returns how many were removed, or -1 with the reason in err when PATH's
 * directory cannot be read.
 */
int atomicfile_sweep(const char *path, char *err, size_t errlen);

#endif

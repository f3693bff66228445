/*
 * test_atomicfile.c - replacing files: contents, what a reader sees before
 * the commit, aborts, failures with their exact reasons, a writer that dies
 * before committing, and that the file and then its directory are fsynced.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "atomicfile.h"
#include "unit.h"

/* fsync is interposed: each call records what the descriptor names. */
static char synced[8][PATH_MAX];
static int n_synced;

int
fsync(int fd)
{
    char link[64];
    ssize_t n;

    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    if (n_synced < 8) {
        n = readlink(link, synced[n_synced], PATH_MAX - 1);
        synced[n_synced][n < 0 ? 0 : n] = '\0';
        n_synced++;
    }
    return (int)syscall(SYS_fsync, fd);
}

static char dir[1024]; /* short enough that every path fits PATH_MAX */

/* The contents of path (static storage), or "(missing)". */
static const char *
slurp(const char *path)
{
    static char text[256];
    FILE *f = fopen(path, "r");
    size_t n;

    if (f == NULL)
        return "(missing)";
    n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

static void
path_of(char *out, const char *name)
{
    snprintf(out, PATH_MAX, "%s/%s", dir, name);
}

static void
tmp_of(char *out, const char *path, long pid)
{
    snprintf(out, PATH_MAX + 32, "%s.tmp.%ld", path, pid);
}

static void
test_put(void)
{
    char path[PATH_MAX], tmp[PATH_MAX + 32], err[256] = "";
    struct stat st;

    path_of(path, "state");
    tmp_of(tmp, path, (long)getpid());
    n_synced = 0;
    CHECK(atomicfile_put(path, 0640, "one\n", 4, err, sizeof err) == 0,
          "put a new file");
    CHECK_STR(slurp(path), "one\n", "its contents");
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0640,
          "the mode asked for");
    CHECK(access(tmp, F_OK) < 0 && errno == ENOENT, "no temporary file left");
    CHECK_U64(n_synced, 2, "two fsyncs");
    CHECK_STR(synced[0], tmp, "first the file, under its temporary name");
    CHECK_STR(synced[1], dir, "then the directory, after the rename");
    CHECK(atomicfile_put(path, 0640, "two\n", 4, err, sizeof err) == 0,
          "put over it");
    CHECK_STR(slurp(path), "two\n", "replaced");
}

static void
test_stream_and_abort(void)
{
    char path[PATH_MAX], tmp[PATH_MAX + 32], err[256] = "";
    struct atomicfile f;

    path_of(path, "snap");
    tmp_of(tmp, path, (long)getpid());
    atomicfile_put(path, 0600, "old", 3, err, sizeof err);
    CHECK(atomicfile_open(&f, path, 0600, err, sizeof err) == 0, "open");
    CHECK(atomicfile_write(&f, "ne", 2, err, sizeof err) == 0 &&
              atomicfile_write(&f, "w", 1, err, sizeof err) == 0,
          "two writes");
    CHECK_STR(slurp(path), "old", "before the commit readers see the old");
    CHECK_STR(slurp(tmp), "new", "the new contents wait in PATH.tmp.PID");
    CHECK(atomicfile_commit(&f, err, sizeof err) == 0, "commit");
    CHECK_STR(slurp(path), "new", "after it, the new");
    atomicfile_abort(&f); /* after a commit: nothing to do */
    CHECK_STR(slurp(path), "new", "an abort after the commit changes nothing");

    CHECK(atomicfile_open(&f, path, 0600, err, sizeof err) == 0 &&
              atomicfile_write(&f, "half", 4, err, sizeof err) == 0,
          "open and write again");
    atomicfile_abort(&f);
    CHECK_STR(slurp(path), "new", "an abort leaves the file alone");
    CHECK(access(tmp, F_OK) < 0 && errno == ENOENT,
          "and removes the temporary file");
    atomicfile_abort(&f);
    atomicfile_abort(NULL);
}

static void
test_failures(void)
{
    char path[PATH_MAX], want[PATH_MAX + 64], err[PATH_MAX + 64] = "";
    struct atomicfile f;

    path_of(path, "missing/file");
    snprintf(want, sizeof want, "%s.tmp.%ld: No such file or directory", path,
             (long)getpid());
    CHECK(atomicfile_open(&f, path, 0600, err, sizeof err) == -1,
          "open in a missing directory fails");
    CHECK_STR(err, want, "naming the temporary file and why");
    atomicfile_abort(&f);

    /* A non-empty directory where the file should go: rename fails. */
    path_of(path, "taken");
    mkdir(path, 0700);
    path_of(want, "taken/x");
    close(open(want, O_WRONLY | O_CREAT, 0600));
    CHECK(atomicfile_put(path, 0600, "x", 1, err, sizeof err) == -1,
          "a failed rename fails");
    snprintf(want, sizeof want, "%s: rename: Is a directory", path);
    CHECK_STR(err, want, "naming the file and the step");
    tmp_of(want, path, (long)getpid());
    CHECK(access(want, F_OK) < 0 && errno == ENOENT,
          "the temporary file is removed");
}

/*
 * Something planted at the temporary path (a shared directory, another
 * user): a symlink to a file the writer may write, or a file of its own.
 * Both are refused, and neither they nor the target change.
 */
static void
test_planted(void)
{
    char path[PATH_MAX], tmp[PATH_MAX + 32], victim[PATH_MAX],
        want[2 * PATH_MAX + 200], err[2 * PATH_MAX + 200] = "";
    struct atomicfile f;

    path_of(path, "planted");
    path_of(victim, "victim");
    tmp_of(tmp, path, (long)getpid());
    atomicfile_put(path, 0600, "target", 6, err, sizeof err);
    atomicfile_put(victim, 0600, "victim", 6, err, sizeof err);
    snprintf(want, sizeof want,
             "%s: already exists (refusing to write through a file or "
             "symlink this process did not create; remove it)",
             tmp);
    CHECK(symlink(victim, tmp) == 0, "a symlink planted at PATH.tmp.PID");
    CHECK(atomicfile_put(path, 0600, "evil", 4, err, sizeof err) == -1,
          "is refused");
    CHECK_STR(err, want, "with the reason");
    CHECK_STR(slurp(victim), "victim", "its target is not written");
    CHECK_STR(slurp(path), "target", "nor is the file");
    unlink(tmp);

    close(open(tmp, O_WRONLY | O_CREAT, 0666));
    CHECK(atomicfile_put(path, 0600, "evil", 4, err, sizeof err) == -1,
          "a file planted at PATH.tmp.PID is refused");
    CHECK_STR(err, want, "with the same reason");
    CHECK_STR(slurp(tmp), "", "the planted file is not written");
    CHECK_STR(slurp(path), "target", "the file is untouched");
    unlink(tmp);

    /* Swapped for another file between the open and the commit. */
    CHECK(atomicfile_open(&f, path, 0600, err, sizeof err) == 0 &&
              atomicfile_write(&f, "mine", 4, err, sizeof err) == 0,
          "open and write");
    unlink(tmp);
    CHECK(symlink(victim, tmp) == 0, "the temporary file swapped for a link");
    CHECK(atomicfile_commit(&f, err, sizeof err) == -1, "the commit fails");
    snprintf(want, sizeof want,
             "%s: was replaced by another file before the rename; not "
             "renaming it over %s",
             tmp, path);
    CHECK_STR(err, want, "saying why");
    CHECK_STR(slurp(path), "target", "the file is untouched");
    CHECK_STR(slurp(victim), "victim", "so is the link's target");
    {
        struct stat st;
        CHECK(lstat(tmp, &st) == 0 && S_ISLNK(st.st_mode),
              "the planted link is left for its owner");
    }
    unlink(tmp);
}

/* A writer that dies between its writes and the commit. */
static void
test_crash(void)
{
    char path[PATH_MAX], tmp[PATH_MAX + 32], err[256];
    pid_t pid;
    int st = 0;

    path_of(path, "crash");
    atomicfile_put(path, 0600, "intact", 6, err, sizeof err);
    pid = fork();
    if (pid == 0) {
        struct atomicfile f;
        if (atomicfile_open(&f, path, 0600, err, sizeof err) == 0)
            atomicfile_write(&f, "torn", 4, err, sizeof err);
        _exit(0);
    }
    waitpid(pid, &st, 0);
    tmp_of(tmp, path, (long)pid);
    CHECK_STR(slurp(path), "intact",
              "a writer dying before its commit "
              "leaves the file intact");
    CHECK_STR(slurp(tmp), "torn", "its work stays in its own PATH.tmp.PID");
}

/* Writes a one-line file at the temporary path of path for pid. */
static void
plant(const char *path, long pid)
{
    char tmp[PATH_MAX + 32];
    FILE *f;

    tmp_of(tmp, path, pid);
    f = fopen(tmp, "w");
    if (f != NULL) {
        fputs("partial\n", f);
        fclose(f);
    }
}

/*
 * The sweep before a first write: a dead writer's file goes, and so does
 * one that carries this process's own PID (a dead process's that had the
 * same PID, as after a container restart); a live writer's stays.
 */
static void
test_sweep(void)
{
    char path[PATH_MAX], tmp[PATH_MAX + 32], err[256] = "";
    struct atomicfile f;

    path_of(path, "swept");
    plant(path, (long)getpid());
    plant(path, 2147483646L);
    plant(path, (long)getppid());
    CHECK(atomicfile_sweep(path, err, sizeof err) == 2,
          "sweep: two stale temporary files removed");
    tmp_of(tmp, path, (long)getpid());
    CHECK(access(tmp, F_OK) != 0, "sweep: our own PID's leftover is gone");
    tmp_of(tmp, path, 2147483646L);
    CHECK(access(tmp, F_OK) != 0, "sweep: a dead PID's leftover is gone");
    tmp_of(tmp, path, (long)getppid());
    CHECK(access(tmp, F_OK) == 0, "sweep: a live PID's file stays");
    CHECK(atomicfile_open(&f, path, 0600, err, sizeof err) == 0,
          "sweep: then the first write can begin");
    atomicfile_abort(&f);
    unlink(tmp);
}

int
main(void)
{
    char tmpl[] = "/tmp/test_atomicfile.XXXXXX";
    char real[PATH_MAX], cmd[sizeof dir + 16];

    if (!CHECK(mkdtemp(tmpl) != NULL && realpath(tmpl, real) != NULL &&
                   strlen(real) < sizeof dir,
               "a scratch directory"))
        return unit_done();
    memcpy(dir, real, strlen(real) + 1);
    umask(022);
    test_put();
    test_stream_and_abort();
    test_failures();
    test_planted();
    test_crash();
    test_sweep();
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", dir);
    return unit_done();
}

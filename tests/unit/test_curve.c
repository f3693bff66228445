/*
 * test_curve.c - CURVE key files: a key pair made and read back, the public
 * key derived from the secret one, secret keys others may read refused,
 * malformed and empty files refused with their reasons, allow lists, and a
 * pair never replaced.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "curve.h"
#include "unit.h"

static char dir[1024];

static void
put(const char *name, const char *text, mode_t mode, char *path)
{
    FILE *f;

    snprintf(path, PATH_MAX, "%s/%s", dir, name);
    f = fopen(path, "w");
    if (f != NULL) {
        fputs(text, f);
        fclose(f);
    }
    chmod(path, mode);
}

static void
test_keygen_and_load(void)
{
    char prefix[PATH_MAX], path[PATH_MAX + 8], pub[CURVE_KEY_Z85 + 1];
    char err[PATH_MAX + 200] = "", want[PATH_MAX + 200];
    struct curve_keys k;
    struct stat st;

    memset(&k, 0, sizeof k);
    snprintf(prefix, sizeof prefix, "%s/srv", dir);
    CHECK(curve_keygen(prefix, pub, err, sizeof err) == 0, "a key pair made");
    snprintf(path, sizeof path, "%s.key", prefix);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600,
          "the secret key file is 0600");
    CHECK(curve_load_secret(&k, path, err, sizeof err) == 0,
          "the secret key reads back");
    CHECK_STR(k.public, pub, "and gives the public key printed");
    snprintf(path, sizeof path, "%s.pub", prefix);
    CHECK(curve_load_server(&k, path, err, sizeof err) == 0,
          "the public key file reads back");
    CHECK_STR(k.server, pub, "the same key");
    CHECK(curve_keygen(prefix, pub, err, sizeof err) == -1,
          "a second keygen to the same prefix fails");
    snprintf(want, sizeof want, "%s.key: File exists", prefix);
    CHECK_STR(err, want, "naming the file it would replace");

    chmod(path, 0644);
    snprintf(path, sizeof path, "%s.key", prefix);
    chmod(path, 0604);
    CHECK(curve_load_secret(&k, path, err, sizeof err) == -1,
          "a secret key others may read is refused");
    snprintf(want, sizeof want,
             "%s: a secret key others may access (mode 0604); chmod 600 it",
             path);
    CHECK_STR(err, want, "with the mode and the fix");
}

static void
test_bad_files(void)
{
    char path[PATH_MAX], err[PATH_MAX + 200] = "", want[PATH_MAX + 200];
    struct curve_keys k;

    memset(&k, 0, sizeof k);
    put("short.pub", "# a comment\n\nabc\n", 0644, path);
    CHECK(curve_load_server(&k, path, err, sizeof err) == -1,
          "a line that is not a key is refused");
    snprintf(want, sizeof want,
             "%s: line 3: not a CURVE key (40 characters of Z85)", path);
    CHECK_STR(err, want, "naming the line");
    /* 40 characters, but '"' is not in the Z85 alphabet. */
    put("quote.pub", "\"123456789012345678901234567890123456789\n", 0644, path);
    CHECK(curve_load_server(&k, path, err, sizeof err) == -1,
          "40 characters outside Z85 are refused");
    put("empty.pub", "# nothing\n", 0644, path);
    CHECK(curve_load_server(&k, path, err, sizeof err) == -1,
          "a file without a key is refused");
    snprintf(want, sizeof want, "%s: no CURVE key in the file", path);
    CHECK_STR(err, want, "saying so");
}

static void
test_allow(void)
{
    char a[CURVE_KEY_Z85 + 1], b[CURVE_KEY_Z85 + 1], sec[CURVE_KEY_Z85 + 1];
    char text[200], path[PATH_MAX], err[PATH_MAX + 200] = "";
    struct curve_keys k;

    memset(&k, 0, sizeof k);
    zmq_curve_keypair(a, sec);
    zmq_curve_keypair(b, sec);
    snprintf(text, sizeof text, "# clients\n  %s  \n\n%s\n", a, b);
    put("allow", text, 0644, path);
    CHECK(curve_load_allow(&k, path, err, sizeof err) == 0, "an allow list");
    CHECK_U64(k.nallow, 2, "two keys, blanks and comments skipped");
    CHECK(k.allow != NULL && memcmp(k.allow, a, CURVE_KEY_Z85) == 0 &&
              memcmp(k.allow + CURVE_KEY_Z85, b, CURVE_KEY_Z85) == 0,
          "in order");
    curve_keys_free(&k);
    curve_keys_free(NULL);
    CHECK(k.allow == NULL && k.nallow == 0, "freed");
}

int
main(void)
{
    char tmpl[] = "/tmp/test_curve.XXXXXX", cmd[sizeof dir + 16];

    if (!CHECK(mkdtemp(tmpl) != NULL && strlen(tmpl) < sizeof dir,
               "a scratch directory"))
        return unit_done();
    memcpy(dir, tmpl, strlen(tmpl) + 1);
    umask(022);
    test_keygen_and_load();
    test_bad_files();
    test_allow();
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", dir);
    return unit_done();
}

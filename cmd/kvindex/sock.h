/*
 * sock.h - the kvindex Unix socket file: where it lives, how it is created
 * safely, and how a client reaches it (docs/kvindex.md, "Socket file").
 */
#ifndef KVINDEX_SOCK_H
#define KVINDEX_SOCK_H

#include <stddef.h>
#include <sys/types.h>

/*
 * The socket path to use: explicit if not NULL, else $KVINDEX_SOCKET, else
 * $XDG_RUNTIME_DIR/kvindex.sock, else /tmp/kvindex-$UID/kvindex.sock.  With
 * make_dir the per-user /tmp directory is created 0700 (and must be ours and
 * closed to others).  Returns 0, or -1 with the reason in err.
 */
int sock_path(const char *explicit_path, int make_dir, char *out, size_t outlen,
              char *err, size_t errlen);

/*
 * Binds and listens on path with the given mode (never more open: the
 * socket is created under a umask).  An existing path is taken over only
 * when it is a socket nobody answers on.  Returns a non-blocking listening
 * descriptor, or -1 with the reason in err.
 */
int sock_listen(const char *path, mode_t mode, char *err, size_t errlen);

/*
 * Connects to the server at path.  Returns a blocking descriptor, or -1
 * with errno set (ENOENT, ECONNREFUSED: nobody serves there).
 */
int sock_connect(const char *path);

#endif

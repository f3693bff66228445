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

/* Who is at the other end of a connected Unix socket (SO_PEERCRED). */
struct sock_peer {
    pid_t pid;
    uid_t uid;
    gid_t gid;
    gid_t groups[64]; /* supplementary groups (SO_PEERGROUPS), truncated */
    size_t n_groups;
};

/* Fills *p for the connected socket fd.  Returns 0, or -1 with errno. */
int sock_peer(int fd, struct sock_peer *p);

/* Whether the peer's primary or one of its supplementary groups is in
 * gids[0..n). */
int sock_peer_in_groups(const struct sock_peer *p, const unsigned *gids,
                        size_t n);

/*
 * Appends the ids of a comma list ("1000,alice" for users, group names
 * with is_group) to *v (caller frees), growing *n.  Returns 0, or -1 with
 * the reason in err.
 */
int sock_parse_ids(const char *list, int is_group, unsigned **v, size_t *n,
                   char *err, size_t errlen);

/*
 * The client's check that the server at fd is not someone else's in
 * disguise: its uid must be ours, root's or trusted_uid (-1: none).
 * Returns 0, or -1 with the reason in err.
 */
int sock_check_server(int fd, const char *path, long long trusted_uid,
                      char *err, size_t errlen);

#endif
